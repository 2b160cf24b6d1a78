//! The machine's loop: each opcode read (through [`OpReader`]) and applied to the stack, the
//! memo and the arena.

use std::collections::HashMap;
use std::mem::size_of;
use std::rc::Rc;

use effnet_io::Budget;

use super::{MAX_DEPTH, MAX_STACK, Node, NodeId, Pickle, StorageRef, Value, VmError};
use crate::allow_list::is_allowed;
use crate::memo::Memo;
use crate::op_reader::OpReader;
use crate::pickle_scan::ScanError;

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

/// The machine: its stack, MARKs, memo and arena, reading one pickle.
pub(super) struct Machine<'a> {
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
    pub(super) fn malformed(&self, offset: usize, message: impl Into<String>) -> VmError {
        VmError::Malformed {
            offset,
            message: message.into(),
        }
    }

    pub(super) fn memory(&self, bytes: u64, offset: usize) -> Result<(), VmError> {
        self.budget
            .memory(bytes, || format!("the pickle's values (at byte {offset})"))
            .map_err(VmError::from)
    }

    pub(super) fn node(&mut self, node: Node, offset: usize) -> Result<NodeId, VmError> {
        self.memory(NODE, offset)?;
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    pub(super) fn seq(&self, id: NodeId) -> &[Value] {
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
