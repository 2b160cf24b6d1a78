//! A restricted pickle machine: it builds plain values (numbers, strings, lists, dicts),
//! storage and tensor *references*, and inert records of the classes a pickle names. It calls
//! nothing: "calling" one of the few allowed rebuild functions builds a reference, and
//! "calling" an allowed class records its name and arguments. Every global is checked against
//! the same allow-list as [`crate::pickle_scan`].
//!
//! Containers (tuples, lists, dicts, objects) live in an arena ([`Pickle`]) and refer to each
//! other by index, so a value nested 150,000 levels deep or a list containing itself is built,
//! walked and freed without recursion: nothing here recurses on anything a file controls.
//! Every allocation is charged to the reader's [`Budget`] before it is made, and every opcode
//! and walk step as work.

use std::collections::{HashMap, HashSet};
use std::mem::size_of;
use std::rc::Rc;

use effnet_io::{Budget, BudgetError, escape};
use effnet_ir::DType;

use crate::memo::Memo;
use crate::op_reader::OpReader;
use crate::pickle_scan::{ScanError, is_allowed};

/// Most nested MARKs.
pub const MAX_DEPTH: usize = 10_000;
/// Most values on the machine's stack.
pub const MAX_STACK: usize = 100_000;
/// Most dimensions a tensor may have (PyTorch's own limit is 64 too).
pub const MAX_RANK: usize = 64;

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

/// The index of a container in its [`Pickle`]'s arena.
pub type NodeId = usize;

/// A value the machine builds. Containers are indices into the arena of their [`Pickle`];
/// cloning a value never copies a container.
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
    Tuple(NodeId),
    /// A list (or set).
    List(NodeId),
    /// A dict in insertion order.
    Dict(NodeId),
    /// A global named by the pickle (`module.name`).
    Global(Rc<str>),
    /// A storage reference (persistent id).
    Storage(Rc<StorageRef>),
    /// A tensor.
    Tensor(Rc<TensorRef>),
    /// An instance of a named class: its constructor arguments and `__setstate__` state.
    Object(NodeId),
}

/// A container in the arena.
#[derive(Debug)]
pub enum Node {
    /// A tuple's or list's items.
    Seq(Vec<Value>),
    /// A dict's items in insertion order.
    Dict(Vec<(Value, Value)>),
    /// An object (boxed: most nodes are sequences).
    Object(Box<Object>),
}

/// An inert record of a class instance.
#[derive(Clone, Debug)]
pub struct Object {
    /// `module.Class`.
    pub class: Rc<str>,
    /// Arguments it was "constructed" with.
    pub args: Vec<Value>,
    /// The state BUILD gave it.
    pub state: Option<Value>,
}

/// An evaluated pickle: its root value and the arena its containers live in (freed as one
/// flat vector, whatever the nesting).
#[derive(Debug)]
pub struct Pickle {
    nodes: Vec<Node>,
    root: Value,
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
    /// The pickle's objects cannot be walked for tensors (nested too deep, shared too often).
    #[error("{0}")]
    Walk(String),
    /// Evaluating or walking the pickle would exceed the memory or work budget of the file.
    #[error(transparent)]
    Budget(#[from] BudgetError),
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

const VALUE: u64 = size_of::<Value>() as u64;
const NODE: u64 = size_of::<Node>() as u64;
/// A memo entry with the hash table's slack.
const MEMO_ENTRY: u64 = 2 * (8 + VALUE);
/// Opcodes counted locally before they are charged to the budget.
const WORK_BATCH: u64 = 4096;

/// Evaluates one pickle starting at `start`, charging `budget`; returns the value and the
/// offset after STOP.
pub fn evaluate(data: &[u8], start: usize, budget: &Budget) -> Result<(Pickle, usize), VmError> {
    Machine {
        ops: OpReader::new(data, start),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Memo::new(),
        nodes: Vec::new(),
        empty_tuple: None,
        globals: HashMap::new(),
        budget,
        pending_work: 0,
    }
    .run()
}

struct Machine<'a> {
    ops: OpReader<'a>,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: Memo<Value>,
    nodes: Vec<Node>,
    empty_tuple: Option<NodeId>,
    /// Globals already named and allowed, each built once.
    globals: HashMap<String, Rc<str>>,
    budget: &'a Budget,
    pending_work: u64,
}

impl Machine<'_> {
    fn malformed(&self, offset: usize, message: impl Into<String>) -> VmError {
        VmError::Malformed {
            offset,
            message: message.into(),
        }
    }

    fn memory(&self, bytes: u64, offset: usize) -> Result<(), VmError> {
        self.budget
            .memory(bytes, || format!("the pickle's values (at byte {offset})"))
            .map_err(VmError::from)
    }

    fn node(&mut self, node: Node, offset: usize) -> Result<NodeId, VmError> {
        self.memory(NODE, offset)?;
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    fn seq(&self, id: NodeId) -> &[Value] {
        match &self.nodes[id] {
            Node::Seq(items) => items,
            _ => &[],
        }
    }

    fn line(&mut self, offset: usize) -> Result<String, VmError> {
        let line = self.ops.line()?;
        self.memory(line.len() as u64, offset)?;
        Ok(String::from_utf8_lossy(line).into_owned())
    }

    fn push(&mut self, v: Value, offset: usize) -> Result<(), VmError> {
        if self.stack.len() >= MAX_STACK {
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
        self.memory((self.stack.len() - mark) as u64 * VALUE, offset)?;
        Ok(self.stack.split_off(mark))
    }

    fn top(&mut self, offset: usize) -> Result<&mut Value, VmError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.malformed(offset, "empty stack"));
        }
        Ok(self.stack.last_mut().expect("checked"))
    }

    fn global(&mut self, module: &str, name: &str, offset: usize) -> Result<Value, VmError> {
        let full = format!("{module}.{name}");
        if let Some(g) = self.globals.get(&full) {
            return Ok(Value::Global(g.clone()));
        }
        if !is_allowed(module, name) {
            return Err(ScanError::Forbidden(full).into());
        }
        self.memory(3 * full.len() as u64 + 64, offset)?;
        let g: Rc<str> = full.as_str().into();
        self.globals.insert(full, g.clone());
        Ok(Value::Global(g))
    }

    fn memo_put(&mut self, index: u64, offset: usize) -> Result<(), VmError> {
        let v = self.top(offset)?.clone();
        if self.memo.is_new(index) {
            self.memory(MEMO_ENTRY, offset)?;
        }
        self.memo.put(index, v);
        Ok(())
    }

    fn tuple(&mut self, items: Vec<Value>, offset: usize) -> Result<Value, VmError> {
        if items.is_empty() {
            if let Some(id) = self.empty_tuple {
                return Ok(Value::Tuple(id));
            }
            let id = self.node(Node::Seq(items), offset)?;
            self.empty_tuple = Some(id);
            return Ok(Value::Tuple(id));
        }
        Ok(Value::Tuple(self.node(Node::Seq(items), offset)?))
    }

    fn run(mut self) -> Result<(Pickle, usize), VmError> {
        loop {
            let (offset, op) = self.ops.opcode()?;
            self.pending_work += 1;
            if self.pending_work == WORK_BATCH {
                self.budget
                    .work(WORK_BATCH, || "evaluating the pickle".into())?;
                self.pending_work = 0;
            }
            match op {
                b'.' => {
                    let root = self.pop(offset)?;
                    self.budget
                        .work(self.pending_work, || "evaluating the pickle".into())?;
                    return Ok((
                        Pickle {
                            nodes: self.nodes,
                            root,
                        },
                        self.ops.pos(),
                    ));
                }
                0x80 => {
                    self.ops.bytes(1)?;
                }
                0x95 => {
                    self.ops.bytes(8)?;
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
                b'}' => {
                    let id = self.node(Node::Dict(Vec::new()), offset)?;
                    self.push(Value::Dict(id), offset)?;
                }
                b']' | 0x8f => {
                    let id = self.node(Node::Seq(Vec::new()), offset)?;
                    self.push(Value::List(id), offset)?;
                }
                b')' => {
                    let v = self.tuple(Vec::new(), offset)?;
                    self.push(v, offset)?;
                }
                b'J' => {
                    let v = self.ops.uint(4)? as u32 as i32;
                    self.push(Value::Int(i64::from(v)), offset)?;
                }
                b'K' => {
                    let v = self.ops.uint(1)?;
                    self.push(Value::Int(v as i64), offset)?;
                }
                b'M' => {
                    let v = self.ops.uint(2)?;
                    self.push(Value::Int(v as i64), offset)?;
                }
                0x8a => {
                    let n = self.ops.uint(1)?;
                    let v = long_to_i64(self.ops.bytes(n)?);
                    self.push(Value::Int(v), offset)?;
                }
                b'G' => {
                    let raw = self.ops.bytes(8)?;
                    let v = f64::from_be_bytes(raw.try_into().expect("8 bytes"));
                    self.push(Value::Float(v), offset)?;
                }
                b'X' | 0x8c | 0x8d => {
                    let width = match op {
                        0x8c => 1,
                        b'X' => 4,
                        _ => 8,
                    };
                    let n = self.ops.uint(width)?;
                    self.memory(n.saturating_add(16), offset)?;
                    let s: Rc<str> = String::from_utf8_lossy(self.ops.bytes(n)?).into();
                    self.push(Value::Str(s), offset)?;
                }
                b'U' | b'T' | b'C' | b'B' | 0x8e | 0x96 => {
                    let width = match op {
                        b'U' | b'C' => 1,
                        b'T' | b'B' => 4,
                        _ => 8,
                    };
                    let n = self.ops.uint(width)?;
                    self.memory(n.saturating_add(16), offset)?;
                    let b: Rc<[u8]> = self.ops.bytes(n)?.into();
                    self.push(Value::Bytes(b), offset)?;
                }
                b'V' => {
                    let s = self.line(offset)?;
                    self.push(Value::Str(s.into()), offset)?;
                }
                b'I' | b'L' => {
                    let s = self.line(offset)?;
                    let v = match s.trim().trim_end_matches('L') {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        t => Value::Int(t.parse().map_err(|_| self.malformed(offset, "bad INT"))?),
                    };
                    self.push(v, offset)?;
                }
                b'F' => {
                    let s = self.line(offset)?;
                    let v = s
                        .trim()
                        .parse()
                        .map_err(|_| self.malformed(offset, "bad FLOAT"))?;
                    self.push(Value::Float(v), offset)?;
                }
                b'q' | b'r' | 0x94 | b'p' => {
                    let index = match op {
                        b'q' => self.ops.uint(1)?,
                        b'r' => self.ops.uint(4)?,
                        b'p' => self
                            .line(offset)?
                            .trim()
                            .parse()
                            .map_err(|_| self.malformed(offset, "bad PUT"))?,
                        _ => self.memo.len(),
                    };
                    self.memo_put(index, offset)?;
                }
                b'h' | b'j' | b'g' => {
                    let index = match op {
                        b'h' => self.ops.uint(1)?,
                        b'j' => self.ops.uint(4)?,
                        _ => self
                            .line(offset)?
                            .trim()
                            .parse()
                            .map_err(|_| self.malformed(offset, "bad GET"))?,
                    };
                    let v = self
                        .memo
                        .get(index)
                        .cloned()
                        .ok_or_else(|| self.malformed(offset, format!("memo {index} unset")))?;
                    self.push(v, offset)?;
                }
                b'c' => {
                    let module = self.line(offset)?;
                    let name = self.line(offset)?;
                    let g = self.global(&module, &name, offset)?;
                    self.push(g, offset)?;
                }
                0x93 => {
                    let name = self.pop(offset)?;
                    let module = self.pop(offset)?;
                    let (Value::Str(module), Value::Str(name)) = (&module, &name) else {
                        return Err(ScanError::DynamicGlobal(offset).into());
                    };
                    let g = self.global(module, name, offset)?;
                    self.push(g, offset)?;
                }
                b'0' => {
                    self.pop(offset)?;
                }
                b'1' => {
                    let mark = self
                        .marks
                        .pop()
                        .ok_or_else(|| self.malformed(offset, "no MARK"))?;
                    self.stack.truncate(mark);
                }
                b'2' => {
                    let v = self.top(offset)?.clone();
                    self.push(v, offset)?;
                }
                b't' => {
                    let items = self.pop_mark(offset)?;
                    let v = self.tuple(items, offset)?;
                    self.push(v, offset)?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    self.memory(n as u64 * VALUE, offset)?;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop(offset)?);
                    }
                    items.reverse();
                    let v = self.tuple(items, offset)?;
                    self.push(v, offset)?;
                }
                b'l' | 0x91 => {
                    let items = self.pop_mark(offset)?;
                    let id = self.node(Node::Seq(items), offset)?;
                    self.push(Value::List(id), offset)?;
                }
                b'd' => {
                    let items = self.pop_mark(offset)?;
                    let pairs = pairs(items).ok_or_else(|| self.malformed(offset, "odd DICT"))?;
                    let id = self.node(Node::Dict(pairs), offset)?;
                    self.push(Value::Dict(id), offset)?;
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
                b'Q' => {
                    let pid = self.pop(offset)?;
                    let storage = self.persistent_storage(&pid).ok_or_else(|| {
                        self.malformed(offset, "a persistent id that is not a storage")
                    })?;
                    self.memory(
                        (size_of::<StorageRef>() + storage.key.len() + storage.class.len()) as u64,
                        offset,
                    )?;
                    self.push(Value::Storage(Rc::new(storage)), offset)?;
                }
                b'R' | 0x81 => {
                    let args = self.pop(offset)?;
                    let callable = self.pop(offset)?;
                    let Value::Tuple(args) = args else {
                        return Err(self.malformed(offset, "call arguments are not a tuple"));
                    };
                    let n = self.seq(args).len() as u64;
                    self.memory(n * VALUE, offset)?;
                    let args = self.seq(args).to_vec();
                    let v = self.call(offset, callable, args)?;
                    self.push(v, offset)?;
                }
                b'b' => {
                    let state = self.pop(offset)?;
                    if let Value::Object(id) = *self.top(offset)? {
                        if let Node::Object(o) = &mut self.nodes[id] {
                            o.state = Some(state);
                        }
                    }
                }
                _ => return Err(ScanError::Opcode { opcode: op, offset }.into()),
            }
        }
    }

    fn append(&mut self, offset: usize, items: Vec<Value>) -> Result<(), VmError> {
        let Value::List(id) = *self.top(offset)? else {
            return Err(self.malformed(offset, "APPEND to a non-list"));
        };
        self.memory(items.len() as u64 * VALUE, offset)?;
        if let Node::Seq(list) = &mut self.nodes[id] {
            list.extend(items);
        }
        Ok(())
    }

    fn set_items(&mut self, offset: usize, pairs: Vec<(Value, Value)>) -> Result<(), VmError> {
        let target = match *self.top(offset)? {
            Value::Dict(id) => id,
            // An object's dict items (e.g. an OrderedDict subclass) are kept as its state.
            Value::Object(id) => {
                let state = match &self.nodes[id] {
                    Node::Object(o) => o.state.clone(),
                    _ => None,
                };
                match state {
                    Some(Value::Dict(d)) => d,
                    Some(_) => return Ok(()),
                    None => {
                        let d = self.node(Node::Dict(Vec::new()), offset)?;
                        if let Node::Object(o) = &mut self.nodes[id] {
                            o.state = Some(Value::Dict(d));
                        }
                        d
                    }
                }
            }
            _ => return Err(self.malformed(offset, "SETITEM on a non-dict")),
        };
        self.memory(pairs.len() as u64 * 2 * VALUE, offset)?;
        if let Node::Dict(dict) = &mut self.nodes[target] {
            dict.extend(pairs);
        }
        Ok(())
    }

    /// "Calls" an allowed global: rebuild functions build references, containers build
    /// containers, classes become inert records.
    fn call(
        &mut self,
        offset: usize,
        callable: Value,
        mut args: Vec<Value>,
    ) -> Result<Value, VmError> {
        let Value::Global(name) = callable else {
            return Err(self.malformed(offset, "a call of something that is not a named global"));
        };
        Ok(match &*name {
            "torch._utils._rebuild_tensor" | "torch._utils._rebuild_tensor_v2" => {
                let tensor = self
                    .rebuild_tensor(&args)
                    .ok_or_else(|| self.malformed(offset, "bad _rebuild_tensor arguments"))?;
                self.memory(
                    (size_of::<TensorRef>() + 16 * tensor.shape.len()) as u64,
                    offset,
                )?;
                Value::Tensor(Rc::new(tensor))
            }
            "torch._utils._rebuild_parameter" | "torch._utils._rebuild_parameter_with_state" => {
                if args.is_empty() {
                    return Err(self.malformed(offset, "_rebuild_parameter without data"));
                }
                args.swap_remove(0)
            }
            "collections.OrderedDict" => Value::Dict(self.node(Node::Dict(Vec::new()), offset)?),
            "__builtin__.set"
            | "builtins.set"
            | "__builtin__.frozenset"
            | "builtins.frozenset"
            | "torch.jit._pickle.build_intlist"
            | "torch.jit._pickle.build_doublelist"
            | "torch.jit._pickle.build_boollist"
            | "torch.jit._pickle.build_tensorlist"
            | "torch.jit._pickle.restore_type_tag" => match args.into_iter().next() {
                Some(v) => v,
                None => Value::List(self.node(Node::Seq(Vec::new()), offset)?),
            },
            _ => Value::Object(self.node(
                Node::Object(Box::new(Object {
                    class: name,
                    args,
                    state: None,
                })),
                offset,
            )?),
        })
    }

    fn as_usizes(&self, v: &Value) -> Option<Vec<usize>> {
        match v {
            Value::Tuple(id) | Value::List(id) => self.seq(*id).iter().map(as_usize).collect(),
            _ => None,
        }
    }

    /// `('storage', StorageClass, key, location, numel[, view metadata])`.
    fn persistent_storage(&self, pid: &Value) -> Option<StorageRef> {
        let Value::Tuple(id) = pid else {
            return None;
        };
        match self.seq(*id) {
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
    fn rebuild_tensor(&self, args: &[Value]) -> Option<TensorRef> {
        let [Value::Storage(storage), offset, size, stride, ..] = args else {
            return None;
        };
        let shape = self.as_usizes(size)?;
        let stride = self.as_usizes(stride)?;
        if shape.len() != stride.len() || shape.len() > MAX_RANK {
            return None;
        }
        Some(TensorRef {
            storage: (**storage).clone(),
            offset: u64::try_from(as_usize(offset)?).ok()?,
            shape,
            stride,
        })
    }
}

fn pairs(items: Vec<Value>) -> Option<Vec<(Value, Value)>> {
    if items.len() % 2 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
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
    /// The pickled object.
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// The items of a tuple or list.
    pub fn items(&self, value: &Value) -> Option<&[Value]> {
        match value {
            Value::Tuple(id) | Value::List(id) => match &self.nodes[*id] {
                Node::Seq(items) => Some(items),
                _ => None,
            },
            _ => None,
        }
    }

    /// The items of a dict.
    pub fn pairs(&self, value: &Value) -> Option<&[(Value, Value)]> {
        match value {
            Value::Dict(id) => match &self.nodes[*id] {
                Node::Dict(items) => Some(items),
                _ => None,
            },
            _ => None,
        }
    }

    /// An object record.
    pub fn object(&self, value: &Value) -> Option<&Object> {
        match value {
            Value::Object(id) => match &self.nodes[*id] {
                Node::Object(o) => Some(o),
                _ => None,
            },
            _ => None,
        }
    }

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

/// The text of a pickle operand for a message: escaped, and cut to 200 characters.
pub fn operand(text: &str) -> String {
    let cut: String = text.chars().take(200).collect();
    let more = if cut.len() < text.len() { "…" } else { "" };
    format!("{}{more}", escape(&cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Budget {
        Budget::for_input(1 << 20)
    }

    fn tensors_of(p: &[u8]) -> Result<Vec<(String, TensorRef)>, VmError> {
        let b = budget();
        let (pickle, _) = evaluate(p, 0, &b)?;
        pickle.tensors(&b)
    }

    #[test]
    fn a_list_containing_itself_is_refused() {
        // EMPTY_LIST, BINPUT 0, BINGET 0, APPEND, STOP
        let p = [b']', b'q', 0, b'h', 0, b'a', b'.'];
        assert!(matches!(tensors_of(&p), Err(VmError::Walk(_))));
        // ... and 100,000 times: refused quickly, within the budget.
        let mut p = vec![b']', b'q', 0];
        for _ in 0..100_000 {
            p.extend_from_slice(&[b'h', 0, b'a']);
        }
        p.push(b'.');
        assert!(tensors_of(&p).is_err());
    }

    #[test]
    fn exponential_sharing_is_refused() {
        // L0 = [t]; L(i+1) = [Li, Li]; 40 levels reach 2^40 values through 80 references.
        let mut p = vec![b']', b'q', 0];
        for i in 0..40u8 {
            p.extend_from_slice(&[b'0', b']', b'(', b'h', i, b'h', i, b'e', b'q', i + 1]);
        }
        p.push(b'.');
        let b = budget();
        let (pickle, _) = evaluate(&p, 0, &b).unwrap();
        // Nothing that can hold a tensor but lists: walked until the visit limit.
        assert!(pickle.tensors(&b).is_err());
    }

    #[test]
    fn deep_nesting_is_built_walked_and_freed_without_recursion() {
        // {'deep': ((((…)))) 300,000 levels}: TUPLE1 applied 300,000 times.
        let mut p = vec![0x80, 2, b'}', b'X', 4, 0, 0, 0];
        p.extend_from_slice(b"deep");
        p.push(b')');
        p.extend(std::iter::repeat_n(0x85u8, 300_000));
        p.extend_from_slice(b"s.");
        let b = Budget::for_input(p.len() as u64);
        let (pickle, _) = evaluate(&p, 0, &b).unwrap();
        let err = pickle.tensors(&b).unwrap_err();
        assert!(err.to_string().contains("nest deeper"), "{err}");
        drop(pickle);
    }

    #[test]
    fn memoize_floods_are_charged_to_the_budget() {
        let mut p = vec![0x80, 4, b'N'];
        p.extend(std::iter::repeat_n(0x94u8, 10_000_000));
        p.push(b'.');
        let b = Budget::with_limits(1000, 64 << 20, 1 << 30);
        let err = evaluate(&p, 0, &b).unwrap_err();
        assert!(matches!(err, VmError::Budget(_)), "{err}");
        assert!(b.memory_used() <= 64 << 20);
    }

    #[test]
    fn a_long_key_shared_by_many_tensors_is_charged_before_its_names_are_built() {
        // d = {K: tensor}; [d, d, …] 50,000 times with a 1 MB key.
        let mut p = vec![0x80, 2, b']', b'(', b'}', b'q', 1];
        p.push(b'X');
        p.extend_from_slice(&(1u32 << 20).to_le_bytes());
        p.extend(std::iter::repeat_n(b'A', 1 << 20));
        p.extend_from_slice(&tensor_pickle());
        p.push(b's');
        for _ in 0..49_999 {
            p.extend_from_slice(&[b'h', 1]);
        }
        p.extend_from_slice(b"e.");
        let b = Budget::for_input(p.len() as u64);
        let (pickle, _) = evaluate(&p, 0, &b).unwrap();
        let err = pickle.tensors(&b).unwrap_err();
        assert!(matches!(err, VmError::Budget(_)), "{err}");
    }

    fn tensor_pickle() -> Vec<u8> {
        // _rebuild_tensor_v2(pid('storage', FloatStorage, '0', 'cpu', 6), 0, (2, 3), (3, 1), False, OrderedDict())
        let mut p = b"ctorch._utils\n_rebuild_tensor_v2\n((".to_vec();
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
        p.extend_from_slice(b"tR");
        p
    }

    #[test]
    fn rebuild_tensor_v2_builds_a_reference_and_calls_nothing() {
        let mut p = vec![0x80, 2, b'}', b'X', 1, 0, 0, 0, b'w'];
        p.extend_from_slice(&tensor_pickle());
        p.extend_from_slice(b"s.");
        let b = budget();
        let (pickle, end) = evaluate(&p, 0, &b).unwrap();
        assert_eq!(end, p.len());
        let found = pickle.tensors(&b).unwrap();
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
            evaluate(&p, 0, &budget()),
            Err(VmError::Scan(ScanError::Forbidden(_)))
        ));
    }

    #[test]
    fn operands_are_escaped_and_cut() {
        assert_eq!(operand("a\nerror: x"), "a\\nerror: x");
        assert!(operand(&"x".repeat(1000)).ends_with('…'));
    }
}
