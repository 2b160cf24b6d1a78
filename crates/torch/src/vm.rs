//! A restricted pickle machine: it builds plain values (numbers, strings, lists, dicts),
//! storage and tensor *references*, and inert records of the classes a pickle names. It calls
//! nothing: "calling" one of the few allowed rebuild functions builds a reference, and
//! "calling" an allowed class records its name and arguments. Every global is checked against
//! the same allow-list as [`crate::pickle_scan`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use effnet_ir::DType;

use crate::pickle_scan::{ScanError, is_allowed};

/// Deepest nesting of values walked, and most values on the stack.
pub const MAX_DEPTH: usize = 10_000;

/// A storage as a tensor refers to it.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    /// The key (`data/<key>` in a zip archive).
    pub key: String,
    /// Element type, from the storage class.
    pub dtype: Option<DType>,
    /// The storage class (`FloatStorage`, …).
    pub class: String,
    /// Elements the pickle declares.
    pub numel: u64,
}

/// A tensor: a view into a storage.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    /// The storage.
    pub storage: StorageRef,
    /// Offset into the storage, in elements.
    pub offset: u64,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides, in elements.
    pub stride: Vec<usize>,
}

/// A mutable container shared between the stack and the memo.
pub type Shared<T> = Rc<RefCell<T>>;

/// A value the machine builds.
#[derive(Clone, Debug)]
pub enum Value {
    /// `None`.
    None,
    /// A bool.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(Rc<str>),
    /// Bytes.
    Bytes(Rc<[u8]>),
    /// A tuple.
    Tuple(Rc<[Value]>),
    /// A list (or set).
    List(Shared<Vec<Value>>),
    /// A dict in insertion order.
    Dict(Shared<Vec<(Value, Value)>>),
    /// A global named by the pickle (`module.name`).
    Global(String),
    /// A storage reference (persistent id).
    Storage(StorageRef),
    /// A tensor.
    Tensor(TensorRef),
    /// An instance of a named class: its constructor arguments and `__setstate__` state.
    Object(Shared<Object>),
    /// The MARK sentinel.
    Mark,
}

/// An inert record of a class instance.
#[derive(Clone, Debug)]
pub struct Object {
    /// `module.Class`.
    pub class: String,
    /// Arguments it was "constructed" with.
    pub args: Vec<Value>,
    /// The state BUILD gave it.
    pub state: Option<Value>,
}

/// Why a pickle could not be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VmError {
    /// A scan-level refusal (forbidden global, unknown opcode, truncation).
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// The pickle is structurally wrong (popping an empty stack, a call on a non-callable, …).
    #[error("malformed pickle at byte {offset}: {message}")]
    Malformed {
        /// Where.
        offset: usize,
        /// What.
        message: String,
    },
}

fn storage_dtype(class: &str) -> Option<DType> {
    Some(match class {
        "FloatStorage" => DType::F32,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "DoubleStorage" => DType::F64,
        "LongStorage" => DType::I64,
        _ => return None,
    })
}

/// Evaluates one pickle starting at `start`; returns the value and the offset after STOP.
pub fn evaluate(data: &[u8], start: usize) -> Result<(Value, usize), VmError> {
    Machine {
        data,
        pos: start,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    }
    .run()
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
}

impl Machine<'_> {
    fn malformed(&self, offset: usize, message: impl Into<String>) -> VmError {
        VmError::Malformed {
            offset,
            message: message.into(),
        }
    }

    fn take(&mut self, n: u64) -> Result<&[u8], VmError> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&e| e <= self.data.len())
            .ok_or(ScanError::Truncated(self.data.len()))?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn uint(&mut self, n: u64) -> Result<u64, VmError> {
        Ok(self
            .take(n)?
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn line(&mut self) -> Result<String, VmError> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(ScanError::Truncated(self.data.len()))?;
        let text = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(text)
    }

    fn push(&mut self, v: Value, offset: usize) -> Result<(), VmError> {
        if self.stack.len() >= MAX_DEPTH * 10 {
            return Err(self.malformed(offset, "stack too deep"));
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self, offset: usize) -> Result<Value, VmError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.malformed(offset, "pop from an empty stack"));
        }
        Ok(self.stack.pop().expect("checked"))
    }

    fn pop_mark(&mut self, offset: usize) -> Result<Vec<Value>, VmError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| self.malformed(offset, "no MARK"))?;
        Ok(self.stack.split_off(mark))
    }

    fn top(&mut self, offset: usize) -> Result<&mut Value, VmError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.malformed(offset, "empty stack"));
        }
        Ok(self.stack.last_mut().expect("checked"))
    }

    fn global(&self, module: &str, name: &str) -> Result<Value, VmError> {
        if !is_allowed(module, name) {
            return Err(ScanError::Forbidden(format!("{module}.{name}")).into());
        }
        Ok(Value::Global(format!("{module}.{name}")))
    }

    fn run(mut self) -> Result<(Value, usize), VmError> {
        loop {
            let offset = self.pos;
            let &op = self
                .data
                .get(self.pos)
                .ok_or(ScanError::Truncated(self.data.len()))?;
            self.pos += 1;
            match op {
                b'.' => {
                    let v = self.pop(offset)?;
                    return Ok((v, self.pos));
                }
                0x80 => {
                    self.take(1)?;
                }
                0x95 => {
                    self.take(8)?;
                }
                b'(' => {
                    if self.marks.len() >= MAX_DEPTH {
                        return Err(self.malformed(offset, "too many nested MARKs"));
                    }
                    self.marks.push(self.stack.len());
                }
                b'N' => self.push(Value::None, offset)?,
                0x88 => self.push(Value::Bool(true), offset)?,
                0x89 => self.push(Value::Bool(false), offset)?,
                b'}' => self.push(Value::Dict(Rc::default()), offset)?,
                b']' => self.push(Value::List(Rc::default()), offset)?,
                b')' => self.push(Value::Tuple(Rc::new([])), offset)?,
                0x8f => self.push(Value::List(Rc::default()), offset)?,
                b'J' => {
                    let v = self.uint(4)? as u32 as i32;
                    self.push(Value::Int(i64::from(v)), offset)?;
                }
                b'K' => {
                    let v = self.uint(1)?;
                    self.push(Value::Int(v as i64), offset)?;
                }
                b'M' => {
                    let v = self.uint(2)?;
                    self.push(Value::Int(v as i64), offset)?;
                }
                0x8a => {
                    let n = self.uint(1)?;
                    let bytes = self.take(n)?.to_vec();
                    self.push(Value::Int(long_to_i64(&bytes)), offset)?;
                }
                b'G' => {
                    let raw = self.take(8)?;
                    let v = f64::from_be_bytes(raw.try_into().expect("8 bytes"));
                    self.push(Value::Float(v), offset)?;
                }
                b'X' | 0x8c | 0x8d => {
                    let width = match op {
                        0x8c => 1,
                        b'X' => 4,
                        _ => 8,
                    };
                    let n = self.uint(width)?;
                    let s: Rc<str> = String::from_utf8_lossy(self.take(n)?).into();
                    self.push(Value::Str(s), offset)?;
                }
                b'U' | b'T' | b'C' | b'B' | 0x8e | 0x96 => {
                    let width = match op {
                        b'U' | b'C' => 1,
                        b'T' | b'B' => 4,
                        _ => 8,
                    };
                    let n = self.uint(width)?;
                    let b: Rc<[u8]> = self.take(n)?.into();
                    self.push(Value::Bytes(b), offset)?;
                }
                b'V' => {
                    let s = self.line()?;
                    self.push(Value::Str(s.into()), offset)?;
                }
                b'I' | b'L' => {
                    let s = self.line()?;
                    let v = match s.trim().trim_end_matches('L') {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        t => Value::Int(t.parse().map_err(|_| self.malformed(offset, "bad INT"))?),
                    };
                    self.push(v, offset)?;
                }
                b'F' => {
                    let s = self.line()?;
                    let v = s
                        .trim()
                        .parse()
                        .map_err(|_| self.malformed(offset, "bad FLOAT"))?;
                    self.push(Value::Float(v), offset)?;
                }
                b'q' | b'r' | 0x94 | b'p' => {
                    let index = match op {
                        b'q' => self.uint(1)?,
                        b'r' => self.uint(4)?,
                        b'p' => self
                            .line()?
                            .trim()
                            .parse()
                            .map_err(|_| self.malformed(offset, "bad PUT"))?,
                        _ => self.memo.len() as u64,
                    };
                    let v = self.top(offset)?.clone();
                    self.memo.insert(index, v);
                }
                b'h' | b'j' | b'g' => {
                    let index = match op {
                        b'h' => self.uint(1)?,
                        b'j' => self.uint(4)?,
                        _ => self
                            .line()?
                            .trim()
                            .parse()
                            .map_err(|_| self.malformed(offset, "bad GET"))?,
                    };
                    let v = self
                        .memo
                        .get(&index)
                        .cloned()
                        .ok_or_else(|| self.malformed(offset, format!("memo {index} unset")))?;
                    self.push(v, offset)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = self.global(&module, &name)?;
                    self.push(g, offset)?;
                }
                0x93 => {
                    let name = self.pop(offset)?;
                    let module = self.pop(offset)?;
                    let (Value::Str(module), Value::Str(name)) = (&module, &name) else {
                        return Err(ScanError::DynamicGlobal(offset).into());
                    };
                    let g = self.global(module, name)?;
                    self.push(g, offset)?;
                }
                b'0' => {
                    self.pop(offset)?;
                }
                b'1' => {
                    self.pop_mark(offset)?;
                }
                b'2' => {
                    let v = self.top(offset)?.clone();
                    self.push(v, offset)?;
                }
                b't' => {
                    let items = self.pop_mark(offset)?;
                    self.push(Value::Tuple(items.into()), offset)?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop(offset)?);
                    }
                    items.reverse();
                    self.push(Value::Tuple(items.into()), offset)?;
                }
                b'l' => {
                    let items = self.pop_mark(offset)?;
                    self.push(Value::List(Rc::new(RefCell::new(items))), offset)?;
                }
                b'd' => {
                    let items = self.pop_mark(offset)?;
                    let pairs = pairs(items).ok_or_else(|| self.malformed(offset, "odd DICT"))?;
                    self.push(Value::Dict(Rc::new(RefCell::new(pairs))), offset)?;
                }
                b'a' => {
                    let v = self.pop(offset)?;
                    self.append(offset, vec![v])?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark(offset)?;
                    self.append(offset, items)?;
                }
                b's' => {
                    let v = self.pop(offset)?;
                    let k = self.pop(offset)?;
                    self.set_items(offset, vec![(k, v)])?;
                }
                b'u' => {
                    let items = self.pop_mark(offset)?;
                    let pairs =
                        pairs(items).ok_or_else(|| self.malformed(offset, "odd SETITEMS"))?;
                    self.set_items(offset, pairs)?;
                }
                0x91 => {
                    let items = self.pop_mark(offset)?;
                    self.push(Value::List(Rc::new(RefCell::new(items))), offset)?;
                }
                b'Q' => {
                    let pid = self.pop(offset)?;
                    let storage = persistent_storage(&pid).ok_or_else(|| {
                        self.malformed(offset, "a persistent id that is not a storage")
                    })?;
                    self.push(Value::Storage(storage), offset)?;
                }
                b'R' => {
                    let args = self.pop(offset)?;
                    let callable = self.pop(offset)?;
                    let Value::Tuple(args) = args else {
                        return Err(self.malformed(offset, "REDUCE arguments are not a tuple"));
                    };
                    let v = self.call(offset, callable, args.to_vec())?;
                    self.push(v, offset)?;
                }
                0x81 => {
                    let args = self.pop(offset)?;
                    let class = self.pop(offset)?;
                    let Value::Tuple(args) = args else {
                        return Err(self.malformed(offset, "NEWOBJ arguments are not a tuple"));
                    };
                    let v = self.call(offset, class, args.to_vec())?;
                    self.push(v, offset)?;
                }
                b'b' => {
                    let state = self.pop(offset)?;
                    if let Value::Object(o) = self.top(offset)? {
                        o.borrow_mut().state = Some(state);
                    }
                }
                _ => return Err(ScanError::Opcode { opcode: op, offset }.into()),
            }
        }
    }

    fn append(&mut self, offset: usize, items: Vec<Value>) -> Result<(), VmError> {
        match self.top(offset)? {
            Value::List(list) => {
                list.borrow_mut().extend(items);
                Ok(())
            }
            _ => Err(self.malformed(offset, "APPEND to a non-list")),
        }
    }

    fn set_items(&mut self, offset: usize, pairs: Vec<(Value, Value)>) -> Result<(), VmError> {
        match self.top(offset)? {
            Value::Dict(dict) => {
                dict.borrow_mut().extend(pairs);
                Ok(())
            }
            // An object's dict items (e.g. an OrderedDict subclass) are kept as its state.
            Value::Object(o) => {
                let mut o = o.borrow_mut();
                let state = o.state.get_or_insert_with(|| Value::Dict(Rc::default()));
                if let Value::Dict(d) = state {
                    d.borrow_mut().extend(pairs);
                }
                Ok(())
            }
            _ => Err(self.malformed(offset, "SETITEM on a non-dict")),
        }
    }

    /// "Calls" an allowed global: rebuild functions build references, containers build
    /// containers, classes become inert records.
    fn call(&self, offset: usize, callable: Value, mut args: Vec<Value>) -> Result<Value, VmError> {
        let Value::Global(name) = callable else {
            return Err(self.malformed(offset, "a call of something that is not a named global"));
        };
        Ok(match name.as_str() {
            "torch._utils._rebuild_tensor" | "torch._utils._rebuild_tensor_v2" => {
                let tensor = rebuild_tensor(&args)
                    .ok_or_else(|| self.malformed(offset, "bad _rebuild_tensor arguments"))?;
                Value::Tensor(tensor)
            }
            "torch._utils._rebuild_parameter" | "torch._utils._rebuild_parameter_with_state" => {
                if args.is_empty() {
                    return Err(self.malformed(offset, "_rebuild_parameter without data"));
                }
                args.swap_remove(0)
            }
            "collections.OrderedDict" => Value::Dict(Rc::default()),
            "__builtin__.set"
            | "builtins.set"
            | "__builtin__.frozenset"
            | "builtins.frozenset"
            | "torch.jit._pickle.build_intlist"
            | "torch.jit._pickle.build_doublelist"
            | "torch.jit._pickle.build_boollist"
            | "torch.jit._pickle.build_tensorlist"
            | "torch.jit._pickle.restore_type_tag" => args
                .into_iter()
                .next()
                .unwrap_or(Value::List(Rc::default())),
            _ => Value::Object(Rc::new(RefCell::new(Object {
                class: name,
                args,
                state: None,
            }))),
        })
    }
}

fn pairs(items: Vec<Value>) -> Option<Vec<(Value, Value)>> {
    if items.len() % 2 != 0 {
        return None;
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Some(out)
}

fn long_to_i64(bytes: &[u8]) -> i64 {
    if bytes.is_empty() {
        return 0;
    }
    let mut buf = if bytes.last().is_some_and(|b| b & 0x80 != 0) {
        [0xffu8; 8]
    } else {
        [0u8; 8]
    };
    let n = bytes.len().min(8);
    buf[..n].copy_from_slice(&bytes[..n]);
    i64::from_le_bytes(buf)
}

fn as_usize(v: &Value) -> Option<usize> {
    match v {
        Value::Int(i) => usize::try_from(*i).ok(),
        _ => None,
    }
}

fn as_usizes(v: &Value) -> Option<Vec<usize>> {
    match v {
        Value::Tuple(items) => items.iter().map(as_usize).collect(),
        Value::List(items) => items.borrow().iter().map(as_usize).collect(),
        _ => None,
    }
}

/// `('storage', StorageClass, key, location, numel[, view metadata])`.
fn persistent_storage(pid: &Value) -> Option<StorageRef> {
    let Value::Tuple(items) = pid else {
        return None;
    };
    match &items[..] {
        [
            Value::Str(kind),
            Value::Global(class),
            key,
            _location,
            numel,
            rest @ ..,
        ] if &**kind == "storage" => {
            // A sixth element describes a storage view (PyTorch < 0.4): not supported.
            if rest.iter().any(|v| !matches!(v, Value::None)) {
                return None;
            }
            let key = match key {
                Value::Str(s) => s.to_string(),
                Value::Int(i) => i.to_string(),
                _ => return None,
            };
            let class = class.rsplit('.').next().unwrap_or_default().to_owned();
            Some(StorageRef {
                key,
                dtype: storage_dtype(&class),
                class,
                numel: u64::try_from(as_usize(numel)?).ok()?,
            })
        }
        _ => None,
    }
}

/// `_rebuild_tensor_v2(storage, offset, size, stride, …)`.
fn rebuild_tensor(args: &[Value]) -> Option<TensorRef> {
    let [Value::Storage(storage), offset, size, stride, ..] = args else {
        return None;
    };
    let shape = as_usizes(size)?;
    let stride = as_usizes(stride)?;
    if shape.len() != stride.len() {
        return None;
    }
    Some(TensorRef {
        storage: storage.clone(),
        offset: u64::try_from(as_usize(offset)?).ok()?,
        shape,
        stride,
    })
}

/// Every tensor reachable from `root`, named by its path the way `state_dict()` names it:
/// dict keys, and for module objects their parameters, persistent buffers and submodules
/// (`nn.Module` pickles keep them in `_parameters`/`_buffers`/`_modules`; TorchScript keeps
/// them as attributes).
///
/// The walk visits at most [`MAX_VISITS`] values: a pickle can reference one container from
/// many places, and a walk that multiplies through such sharing is refused.
pub fn tensors(root: &Value) -> Result<Vec<(String, TensorRef)>, VmError> {
    let mut walk = Walk {
        out: Vec::new(),
        visits: 0,
        too_deep: false,
    };
    walk.collect(root, "", 0);
    if walk.too_deep {
        return Err(VmError::Malformed {
            offset: 0,
            message: format!("its objects nest deeper than {MAX_WALK_DEPTH} levels"),
        });
    }
    if walk.visits > MAX_VISITS {
        return Err(VmError::Malformed {
            offset: 0,
            message: format!(
                "walking its objects takes more than {MAX_VISITS} steps (shared references multiplying?)"
            ),
        });
    }
    Ok(walk.out)
}

/// Most values the tensor walk visits.
pub const MAX_VISITS: usize = 1_000_000;
/// Deepest nesting the tensor walk follows (module trees nest a few levels).
pub const MAX_WALK_DEPTH: usize = 200;

struct Walk {
    out: Vec<(String, TensorRef)>,
    visits: usize,
    too_deep: bool,
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

fn dict_get(dict: &[(Value, Value)], key: &str) -> Option<Value> {
    dict.iter()
        .find(|(k, _)| matches!(k, Value::Str(s) if &**s == key))
        .map(|(_, v)| v.clone())
}

impl Walk {
    fn collect(&mut self, value: &Value, prefix: &str, depth: usize) {
        self.visits += 1;
        if depth > MAX_WALK_DEPTH {
            self.too_deep = true;
            return;
        }
        if self.visits > MAX_VISITS {
            return;
        }
        match value {
            Value::Tensor(t) => self.out.push((prefix.to_owned(), t.clone())),
            Value::Dict(d) => {
                let items = d.borrow().clone();
                for (k, v) in &items {
                    let key = match k {
                        Value::Str(s) => s.to_string(),
                        Value::Int(i) => i.to_string(),
                        _ => continue,
                    };
                    self.collect(v, &join(prefix, &key), depth + 1);
                }
            }
            Value::List(l) => {
                let items = l.borrow().clone();
                for (i, v) in items.iter().enumerate() {
                    self.collect(v, &join(prefix, &i.to_string()), depth + 1);
                }
            }
            Value::Tuple(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.collect(v, &join(prefix, &i.to_string()), depth + 1);
                }
            }
            Value::Object(o) => {
                let state = o.borrow().state.clone();
                let Some(Value::Dict(state)) = state else {
                    return;
                };
                let state = state.borrow().clone();
                if let Some(Value::Dict(params)) = dict_get(&state, "_parameters") {
                    // nn.Module: parameters, persistent buffers, then submodules.
                    self.collect(&Value::Dict(params), prefix, depth + 1);
                    let skip: Vec<String> = match dict_get(&state, "_non_persistent_buffers_set") {
                        Some(Value::List(l)) => l
                            .borrow()
                            .iter()
                            .filter_map(|v| match v {
                                Value::Str(s) => Some(s.to_string()),
                                _ => None,
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                    if let Some(Value::Dict(buffers)) = dict_get(&state, "_buffers") {
                        for (k, v) in buffers.borrow().iter() {
                            if let Value::Str(name) = k {
                                if !skip.iter().any(|s| **s == **name) {
                                    self.collect(v, &join(prefix, name), depth + 1);
                                }
                            }
                        }
                    }
                    if let Some(modules) = dict_get(&state, "_modules") {
                        self.collect(&modules, prefix, depth + 1);
                    }
                } else {
                    // TorchScript modules and other objects: tensor and object attributes.
                    for (k, v) in &state {
                        if let (Value::Str(name), Value::Tensor(_) | Value::Object(_)) = (k, v) {
                            self.collect(v, &join(prefix, name), depth + 1);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_containing_itself_is_refused() {
        // EMPTY_LIST, BINPUT 0, BINGET 0, APPEND, STOP
        let p = [b']', b'q', 0, b'h', 0, b'a', b'.'];
        let (root, _) = evaluate(&p, 0).unwrap();
        assert!(matches!(tensors(&root), Err(VmError::Malformed { .. })));
    }

    #[test]
    fn exponential_sharing_is_refused() {
        // L0 = []; L(i+1) = [Li, Li]; 40 levels reach 2^40 values through 80 references.
        let mut p = vec![b']', b'q', 0];
        for i in 0..40u8 {
            p.extend_from_slice(&[b'0', b']', b'(', b'h', i, b'h', i, b'e', b'q', i + 1]);
        }
        p.push(b'.');
        let (root, _) = evaluate(&p, 0).unwrap();
        assert!(matches!(tensors(&root), Err(VmError::Malformed { .. })));
    }

    #[test]
    fn rebuild_tensor_v2_builds_a_reference_and_calls_nothing() {
        // {'w': _rebuild_tensor_v2(pid('storage', FloatStorage, '0', 'cpu', 6), 0, (2, 3), (3, 1), False, OrderedDict())}
        let mut p = vec![0x80, 2, b'}', b'X', 1, 0, 0, 0, b'w'];
        p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        p.extend_from_slice(&[b'X', 7, 0, 0, 0]);
        p.extend_from_slice(b"storage");
        p.extend_from_slice(b"ctorch\nFloatStorage\n");
        p.extend_from_slice(&[
            b'X', 1, 0, 0, 0, b'0', b'X', 3, 0, 0, 0, b'c', b'p', b'u', b'K', 6, b't', b'Q',
        ]);
        p.extend_from_slice(&[
            b'K', 0, b'K', 2, b'K', 3, 0x86, b'K', 3, b'K', 1, 0x86, 0x89,
        ]);
        p.extend_from_slice(b"ccollections\nOrderedDict\n)R");
        p.extend_from_slice(b"tRs.");
        let (root, end) = evaluate(&p, 0).unwrap();
        assert_eq!(end, p.len());
        let found = tensors(&root).unwrap();
        assert_eq!(found.len(), 1);
        let (name, t) = &found[0];
        assert_eq!(name, "w");
        assert_eq!(t.storage.key, "0");
        assert_eq!(t.storage.dtype, Some(DType::F32));
        assert_eq!(t.storage.numel, 6);
        assert_eq!(
            (t.shape.clone(), t.stride.clone()),
            (vec![2, 3], vec![3, 1])
        );
    }

    #[test]
    fn forbidden_globals_stop_the_machine_too() {
        let mut p = vec![0x80, 2];
        p.extend_from_slice(b"cposix\nsystem\n(X\x02\x00\x00\x00lstR.");
        assert!(matches!(
            evaluate(&p, 0),
            Err(VmError::Scan(ScanError::Forbidden(_)))
        ));
    }
}
