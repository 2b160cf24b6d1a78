//! The walk that finds a pickle's tensors and names them the way `state_dict()` does.

use std::collections::HashSet;
use std::mem::size_of;

use effnet_io::Budget;

use super::{Pickle, TensorRef, Value, VmError};

/// Most values the tensor walk visits.
pub const MAX_VISITS: usize = 1_000_000;
/// Deepest nesting the tensor walk follows (module trees nest a few levels).
pub const MAX_WALK_DEPTH: usize = 200;

/// One step of a tensor's name: a dict key or a list index.
#[derive(Clone, Copy)]
enum Key<'p> {
    Str(&'p str),
    Int(i64),
}

/// A name as a chain of keys: `(parent, key)`; the root's children have no parent.
struct PathNode<'p> {
    parent: Option<u32>,
    key: Key<'p>,
}

/// A value still to walk, under the name `path` (None: the root's name, empty).
struct Frame<'p> {
    value: &'p Value,
    path: Option<u32>,
    depth: usize,
}

impl Pickle {
    /// Every tensor reachable from the root, named by its path the way `state_dict()` names
    /// it: dict keys, and for module objects their parameters, persistent buffers and
    /// submodules (`nn.Module` pickles keep them in `_parameters`/`_buffers`/`_modules`;
    /// TorchScript keeps them as attributes).
    ///
    /// The walk keeps its own stack (no recursion), follows at most [`MAX_WALK_DEPTH`] levels
    /// and [`MAX_VISITS`] values, charges every step to `budget` as work, and builds a dotted
    /// name only for a tensor it finds (charged before it is built): a pickle that references
    /// one container from many places, or a container from itself, is refused, not multiplied.
    pub fn tensors(&self, budget: &Budget) -> Result<Vec<(String, TensorRef)>, VmError> {
        let mut out = Vec::new();
        let mut paths: Vec<PathNode<'_>> = Vec::new();
        let mut stack = vec![Frame {
            value: &self.root,
            path: None,
            depth: 0,
        }];
        let mut visits = 1usize;
        let mut children: Vec<(&Value, Option<Key<'_>>)> = Vec::new();
        while let Some(Frame { value, path, depth }) = stack.pop() {
            budget.work(1, || "walking the pickle's objects".into())?;
            children.clear();
            match value {
                Value::Tensor(t) => {
                    let name = self.name(&paths, path, budget)?;
                    let copy = size_of::<(String, TensorRef)>()
                        + 16 * t.shape.len()
                        + t.storage.key.len()
                        + t.storage.class.len();
                    budget.memory(copy as u64, || "the list of tensors".into())?;
                    out.push((name, (**t).clone()));
                    continue;
                }
                Value::Dict(_) => {
                    let items = self.pairs(value).unwrap_or_default();
                    budget.work(items.len() as u64, || "walking the pickle's objects".into())?;
                    for (k, v) in items {
                        let key = match k {
                            Value::Str(s) => Key::Str(s),
                            Value::Int(i) => Key::Int(*i),
                            _ => continue,
                        };
                        children.push((v, Some(key)));
                    }
                }
                Value::List(_) | Value::Tuple(_) => {
                    let items = self.items(value).unwrap_or_default();
                    budget.work(items.len() as u64, || "walking the pickle's objects".into())?;
                    children.extend(
                        items
                            .iter()
                            .enumerate()
                            .map(|(i, v)| (v, Some(Key::Int(i as i64)))),
                    );
                }
                Value::Object(_) => {
                    let Some(Value::Dict(_)) = self.object(value).and_then(|o| o.state.as_ref())
                    else {
                        continue;
                    };
                    let state_value = self.object(value).and_then(|o| o.state.as_ref());
                    let state = state_value.and_then(|s| self.pairs(s)).unwrap_or_default();
                    // Up to four lookups below, each a pass over the state.
                    budget.work(4 * state.len() as u64, || {
                        "walking the pickle's objects".into()
                    })?;
                    let get = |key: &str| {
                        state
                            .iter()
                            .find(|(k, _)| matches!(k, Value::Str(s) if &**s == key))
                            .map(|(_, v)| v)
                    };
                    if let Some(params @ Value::Dict(_)) = get("_parameters") {
                        // nn.Module: parameters, persistent buffers, then submodules.
                        children.push((params, None));
                        let skipped = get("_non_persistent_buffers_set")
                            .and_then(|l| self.items(l))
                            .unwrap_or_default();
                        budget.work(skipped.len() as u64, || {
                            "walking the pickle's objects".into()
                        })?;
                        let skip: HashSet<&str> = skipped
                            .iter()
                            .filter_map(|v| match v {
                                Value::Str(s) => Some(&**s),
                                _ => None,
                            })
                            .collect();
                        if let Some(buffers) = get("_buffers").and_then(|b| self.pairs(b)) {
                            budget.work(buffers.len() as u64, || {
                                "walking the pickle's objects".into()
                            })?;
                            for (k, v) in buffers {
                                if let Value::Str(name) = k {
                                    if !skip.contains(&**name) {
                                        children.push((v, Some(Key::Str(name))));
                                    }
                                }
                            }
                        }
                        if let Some(modules) = get("_modules") {
                            children.push((modules, None));
                        }
                    } else {
                        // TorchScript modules and other objects: tensor and object attributes.
                        for (k, v) in state {
                            if let (Value::Str(name), Value::Tensor(_) | Value::Object(_)) = (k, v)
                            {
                                children.push((v, Some(Key::Str(name))));
                            }
                        }
                    }
                }
                _ => continue,
            }
            // Only values that can hold tensors are walked further.
            children.retain(|(v, _)| {
                matches!(
                    v,
                    Value::Tensor(_)
                        | Value::Dict(_)
                        | Value::List(_)
                        | Value::Tuple(_)
                        | Value::Object(_)
                )
            });
            if children.is_empty() {
                continue;
            }
            if depth >= MAX_WALK_DEPTH {
                return Err(VmError::Walk(format!(
                    "its objects nest deeper than {MAX_WALK_DEPTH} levels (or contain themselves)"
                )));
            }
            visits = visits.saturating_add(children.len());
            if visits > MAX_VISITS {
                return Err(VmError::Walk(format!(
                    "walking its objects takes more than {MAX_VISITS} steps (shared references multiplying?)"
                )));
            }
            let keyed = children.iter().filter(|(_, k)| k.is_some()).count();
            budget.memory(
                (children.len() * size_of::<Frame>() + keyed * size_of::<PathNode>()) as u64,
                || "walking the pickle's objects".into(),
            )?;
            // Pushed in reverse, so that they are walked in order.
            for &(v, key) in children.iter().rev() {
                let child_path = match key {
                    Some(key) => {
                        let id = u32::try_from(paths.len())
                            .map_err(|_| VmError::Walk("too many names".into()))?;
                        paths.push(PathNode { parent: path, key });
                        Some(id)
                    }
                    None => path,
                };
                stack.push(Frame {
                    value: v,
                    path: child_path,
                    depth: depth + 1,
                });
            }
        }
        Ok(out)
    }

    /// The dotted name of `path`, charged to `budget` before it is built.
    fn name(
        &self,
        paths: &[PathNode<'_>],
        path: Option<u32>,
        budget: &Budget,
    ) -> Result<String, VmError> {
        let mut keys = Vec::new();
        let mut at = path;
        while let Some(i) = at {
            let node = &paths[i as usize];
            keys.push(node.key);
            at = node.parent;
        }
        let len: u64 = keys
            .iter()
            .map(|k| match k {
                Key::Str(s) => s.len() as u64 + 1,
                Key::Int(_) => 21,
            })
            .sum();
        budget.work(len, || "naming the pickle's tensors".into())?;
        budget.memory(len, || "the names of the pickle's tensors".into())?;
        let mut name = String::with_capacity(len as usize);
        for key in keys.iter().rev() {
            if !name.is_empty() {
                name.push('.');
            }
            match key {
                Key::Str(s) => name.push_str(s),
                Key::Int(i) => name.push_str(&i.to_string()),
            }
        }
        Ok(name)
    }
}
