//! The protobuf wire format of the `onnx.proto` subset effnet reads, parsed by hand.
//!
//! Every message is read by a function that knows its fields (field numbers from the public
//! `onnx/onnx.proto`); fields it does not know are skipped in one step, as any protobuf reader
//! skips them. The parser recurses only along the schema (model → graph → node → attribute →
//! tensor → external-data entry: six levels), never as deep as the input: a sub-graph
//! attribute (`If`, `Loop`, `Scan`) is recorded as present and skipped, whatever it nests.
//! Groups (wire types 3 and 4), which ONNX never writes, are refused. Every string, vector
//! and message is charged to the [`Budget`] before it is allocated, every field as work;
//! `raw_data` stays a range of the mapped file.

use effnet_io::Budget;

/// A field value as the wire has it; `Len` is an absolute range of the input.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Value {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Len(usize, usize),
}

/// What went wrong, as one line.
pub(crate) type WireResult<T> = Result<T, String>;

/// A cursor over `buf[pos..end]`.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

fn budget_err(e: effnet_io::BudgetError) -> String {
    e.to_string()
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], start: usize, len: usize) -> Self {
        Cursor {
            buf,
            pos: start,
            end: start + len,
        }
    }

    fn varint(&mut self) -> WireResult<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos).filter(|_| self.pos < self.end) else {
                return Err("the protobuf ends inside a varint".into());
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a varint longer than 10 bytes".into())
    }

    /// The next field, or `None` at the end of the message.
    pub(crate) fn next(&mut self, budget: &Budget) -> WireResult<Option<(u32, Value)>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        budget
            .work(1, || "the ONNX protobuf".into())
            .map_err(budget_err)?;
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| "a field number out of range")?;
        if field == 0 {
            return Err("field number 0 (not a protobuf message)".into());
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                let bytes = self.take(8)?;
                Value::Fixed64(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
            }
            5 => {
                let bytes = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "a length out of range")?;
                let start = self.pos;
                if len > self.end - self.pos {
                    return Err(format!(
                        "a field of {len} bytes runs past the end of its message ({} bytes left)",
                        self.end - self.pos
                    ));
                }
                self.pos += len;
                Value::Len(start, len)
            }
            3 | 4 => return Err("a protobuf group (ONNX never writes them)".into()),
            other => return Err(format!("wire type {other} (not a protobuf message)")),
        };
        Ok(Some((field, value)))
    }

    fn take(&mut self, n: usize) -> WireResult<&'a [u8]> {
        if n > self.end - self.pos {
            return Err("the protobuf ends inside a fixed-size field".into());
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }
}

/// A string field, charged.
fn string(buf: &[u8], v: Value, budget: &Budget, what: &str) -> WireResult<String> {
    let Value::Len(start, len) = v else {
        return Err(format!("{what} is not a string"));
    };
    budget
        .memory(len as u64 + 24, || format!("the string {what}"))
        .map_err(budget_err)?;
    Ok(String::from_utf8_lossy(&buf[start..start + len]).into_owned())
}

fn int(v: Value, what: &str) -> WireResult<i64> {
    match v {
        Value::Varint(x) => Ok(x as i64),
        _ => Err(format!("{what} is not an integer")),
    }
}

/// A repeated varint field, packed or not, appended to `out` (charged).
fn ints(buf: &[u8], v: Value, out: &mut Vec<i64>, budget: &Budget, what: &str) -> WireResult<()> {
    match v {
        Value::Varint(x) => {
            budget.memory(8, || what.into()).map_err(budget_err)?;
            out.push(x as i64);
        }
        Value::Len(start, len) => {
            budget
                .memory(8 * len as u64, || what.into())
                .map_err(budget_err)?;
            let mut c = Cursor::new(buf, start, len);
            while c.pos < c.end {
                out.push(c.varint()? as i64);
            }
        }
        _ => return Err(format!("{what}: not integers")),
    }
    Ok(())
}

/// A repeated fixed32 field (floats), packed or not.
fn fixed32s(
    buf: &[u8],
    v: Value,
    out: &mut Vec<u32>,
    budget: &Budget,
    what: &str,
) -> WireResult<()> {
    match v {
        Value::Fixed32(x) => {
            budget.memory(4, || what.into()).map_err(budget_err)?;
            out.push(x);
        }
        Value::Len(start, len) => {
            if len % 4 != 0 {
                return Err(format!(
                    "{what}: {len} bytes is not a whole number of floats"
                ));
            }
            budget
                .memory(len as u64, || what.into())
                .map_err(budget_err)?;
            out.extend(
                buf[start..start + len]
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))),
            );
        }
        _ => return Err(format!("{what}: not floats")),
    }
    Ok(())
}

/// A repeated fixed64 field (doubles), packed or not.
fn fixed64s(
    buf: &[u8],
    v: Value,
    out: &mut Vec<u64>,
    budget: &Budget,
    what: &str,
) -> WireResult<()> {
    match v {
        Value::Fixed64(x) => {
            budget.memory(8, || what.into()).map_err(budget_err)?;
            out.push(x);
        }
        Value::Len(start, len) => {
            if len % 8 != 0 {
                return Err(format!(
                    "{what}: {len} bytes is not a whole number of doubles"
                ));
            }
            budget
                .memory(len as u64, || what.into())
                .map_err(budget_err)?;
            out.extend(
                buf[start..start + len]
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))),
            );
        }
        _ => return Err(format!("{what}: not doubles")),
    }
    Ok(())
}

fn sub(v: Value, what: &str) -> WireResult<(usize, usize)> {
    match v {
        Value::Len(s, l) => Ok((s, l)),
        _ => Err(format!("{what} is not a message")),
    }
}

/// `ModelProto`.
#[derive(Debug, Default)]
pub(crate) struct Model {
    pub ir_version: Option<i64>,
    pub opsets: Vec<(String, i64)>,
    pub producer_name: String,
    pub producer_version: String,
    pub graph: Option<Graph>,
    pub metadata: Vec<(String, String)>,
    /// Model-local functions or training information (effnet refuses both).
    pub functions: bool,
    pub training_info: bool,
}

/// `GraphProto`.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    pub nodes: Vec<Node>,
    pub initializers: Vec<TensorMsg>,
    pub sparse_initializers: usize,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
}

/// `NodeProto`.
#[derive(Debug, Default)]
pub(crate) struct Node {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub name: String,
    pub op_type: String,
    pub domain: String,
    pub attributes: Vec<Attribute>,
}

/// `AttributeProto` (sub-graphs recorded as present, never read).
#[derive(Debug, Default)]
pub(crate) struct Attribute {
    pub name: String,
    pub f: Option<f32>,
    pub i: Option<i64>,
    pub s: Option<String>,
    pub t: Option<TensorMsg>,
    pub floats: Vec<f32>,
    pub ints: Vec<i64>,
    pub graphs: usize,
    pub ref_attr_name: Option<String>,
}

/// `TensorProto`; `raw` is an absolute range of the input.
#[derive(Debug, Default, Clone)]
pub(crate) struct TensorMsg {
    pub dims: Vec<i64>,
    pub data_type: i32,
    pub name: String,
    pub raw: Option<(usize, usize)>,
    pub float_data: Vec<u32>,
    pub int32_data: Vec<i64>,
    pub int64_data: Vec<i64>,
    pub double_data: Vec<u64>,
    pub external: Vec<(String, String)>,
    pub data_location: i64,
    pub segment: bool,
    pub string_data: bool,
}

/// `ValueInfoProto` of a tensor: name, element type and dimensions (`None`: symbolic).
#[derive(Debug, Default)]
pub(crate) struct ValueInfo {
    pub name: String,
    pub elem_type: Option<i64>,
    pub dims: Option<Vec<Option<i64>>>,
}

/// Reads a `ModelProto` spanning `buf[start..start + len]`.
pub(crate) fn model(buf: &[u8], budget: &Budget) -> WireResult<Model> {
    let mut m = Model::default();
    let mut c = Cursor::new(buf, 0, buf.len());
    while let Some((field, v)) = c.next(budget)? {
        match field {
            1 => m.ir_version = Some(int(v, "ir_version")?),
            2 => m.producer_name = string(buf, v, budget, "producer_name")?,
            3 => m.producer_version = string(buf, v, budget, "producer_version")?,
            7 => {
                if m.graph.is_some() {
                    return Err("two graphs in one model".into());
                }
                let (s, l) = sub(v, "graph")?;
                m.graph = Some(graph(buf, s, l, budget)?);
            }
            8 => {
                let (s, l) = sub(v, "opset_import")?;
                budget
                    .memory(40, || "an opset".into())
                    .map_err(budget_err)?;
                let mut c = Cursor::new(buf, s, l);
                let (mut domain, mut version) = (String::new(), 0);
                while let Some((f, v)) = c.next(budget)? {
                    match f {
                        1 => domain = string(buf, v, budget, "an opset domain")?,
                        2 => version = int(v, "an opset version")?,
                        _ => {}
                    }
                }
                m.opsets.push((domain, version));
            }
            14 => {
                let (s, l) = sub(v, "metadata_props")?;
                m.metadata.push(entry(buf, s, l, budget)?);
            }
            20 => m.training_info = true,
            25 => m.functions = true,
            _ => {}
        }
    }
    Ok(m)
}

fn entry(buf: &[u8], s: usize, l: usize, budget: &Budget) -> WireResult<(String, String)> {
    budget
        .memory(48, || "a key/value entry".into())
        .map_err(budget_err)?;
    let mut c = Cursor::new(buf, s, l);
    let (mut key, mut value) = (String::new(), String::new());
    while let Some((f, v)) = c.next(budget)? {
        match f {
            1 => key = string(buf, v, budget, "a key")?,
            2 => value = string(buf, v, budget, "a value")?,
            _ => {}
        }
    }
    Ok((key, value))
}

fn graph(buf: &[u8], s: usize, l: usize, budget: &Budget) -> WireResult<Graph> {
    let mut g = Graph::default();
    let mut c = Cursor::new(buf, s, l);
    while let Some((field, v)) = c.next(budget)? {
        match field {
            1 => {
                let (s, l) = sub(v, "node")?;
                budget
                    .memory_for(1, std::mem::size_of::<Node>() as u64 * 2, || {
                        "a node".into()
                    })
                    .map_err(budget_err)?;
                g.nodes.push(node(buf, s, l, budget)?);
            }
            5 => {
                let (s, l) = sub(v, "initializer")?;
                budget
                    .memory_for(1, std::mem::size_of::<TensorMsg>() as u64 * 2, || {
                        "an initializer".into()
                    })
                    .map_err(budget_err)?;
                g.initializers.push(tensor(buf, s, l, budget)?);
            }
            11 | 12 => {
                let (s, l) = sub(v, "a graph input or output")?;
                budget
                    .memory(std::mem::size_of::<ValueInfo>() as u64 * 2, || {
                        "a graph input or output".into()
                    })
                    .map_err(budget_err)?;
                let info = value_info(buf, s, l, budget)?;
                if field == 11 {
                    g.inputs.push(info);
                } else {
                    g.outputs.push(info);
                }
            }
            15 => g.sparse_initializers += 1,
            _ => {}
        }
    }
    Ok(g)
}

fn node(buf: &[u8], s: usize, l: usize, budget: &Budget) -> WireResult<Node> {
    let mut n = Node::default();
    let mut c = Cursor::new(buf, s, l);
    while let Some((field, v)) = c.next(budget)? {
        match field {
            1 => n.inputs.push(string(buf, v, budget, "a node input")?),
            2 => n.outputs.push(string(buf, v, budget, "a node output")?),
            3 => n.name = string(buf, v, budget, "a node name")?,
            4 => n.op_type = string(buf, v, budget, "an op type")?,
            7 => n.domain = string(buf, v, budget, "a node domain")?,
            5 => {
                let (s, l) = sub(v, "attribute")?;
                budget
                    .memory(std::mem::size_of::<Attribute>() as u64 * 2, || {
                        "an attribute".into()
                    })
                    .map_err(budget_err)?;
                n.attributes.push(attribute(buf, s, l, budget)?);
            }
            _ => {}
        }
    }
    Ok(n)
}

fn attribute(buf: &[u8], s: usize, l: usize, budget: &Budget) -> WireResult<Attribute> {
    let mut a = Attribute::default();
    let mut c = Cursor::new(buf, s, l);
    while let Some((field, v)) = c.next(budget)? {
        match field {
            1 => a.name = string(buf, v, budget, "an attribute name")?,
            2 => match v {
                Value::Fixed32(x) => a.f = Some(f32::from_bits(x)),
                _ => return Err("attribute `f` is not a float".into()),
            },
            3 => a.i = Some(int(v, "attribute `i`")?),
            4 => a.s = Some(string(buf, v, budget, "attribute `s`")?),
            5 => {
                let (s, l) = sub(v, "attribute `t`")?;
                a.t = Some(tensor(buf, s, l, budget)?);
            }
            6 | 11 => a.graphs += 1,
            7 => {
                let mut bits = Vec::new();
                fixed32s(buf, v, &mut bits, budget, "attribute `floats`")?;
                a.floats.extend(bits.into_iter().map(f32::from_bits));
            }
            8 => ints(buf, v, &mut a.ints, budget, "attribute `ints`")?,
            21 => a.ref_attr_name = Some(string(buf, v, budget, "ref_attr_name")?),
            _ => {}
        }
    }
    Ok(a)
}

fn tensor(buf: &[u8], s: usize, l: usize, budget: &Budget) -> WireResult<TensorMsg> {
    let mut t = TensorMsg::default();
    let mut c = Cursor::new(buf, s, l);
    while let Some((field, v)) = c.next(budget)? {
        match field {
            1 => ints(buf, v, &mut t.dims, budget, "tensor dims")?,
            2 => t.data_type = int(v, "data_type")? as i32,
            3 => t.segment = true,
            4 => fixed32s(buf, v, &mut t.float_data, budget, "float_data")?,
            5 => ints(buf, v, &mut t.int32_data, budget, "int32_data")?,
            6 => t.string_data = true,
            7 => ints(buf, v, &mut t.int64_data, budget, "int64_data")?,
            8 => t.name = string(buf, v, budget, "a tensor name")?,
            9 => t.raw = Some(sub(v, "raw_data")?),
            10 => fixed64s(buf, v, &mut t.double_data, budget, "double_data")?,
            13 => {
                let (s, l) = sub(v, "external_data")?;
                t.external.push(entry(buf, s, l, budget)?);
            }
            14 => t.data_location = int(v, "data_location")?,
            _ => {}
        }
    }
    Ok(t)
}

fn value_info(buf: &[u8], s: usize, l: usize, budget: &Budget) -> WireResult<ValueInfo> {
    let mut info = ValueInfo::default();
    let mut c = Cursor::new(buf, s, l);
    while let Some((field, v)) = c.next(budget)? {
        match field {
            1 => info.name = string(buf, v, budget, "a value name")?,
            2 => {
                // TypeProto → tensor_type (1) → elem_type (1), shape (2) → dim (1).
                let (s, l) = sub(v, "a type")?;
                let mut c = Cursor::new(buf, s, l);
                while let Some((f, v)) = c.next(budget)? {
                    if f != 1 {
                        continue;
                    }
                    let (s, l) = sub(v, "a tensor type")?;
                    let mut c = Cursor::new(buf, s, l);
                    while let Some((f, v)) = c.next(budget)? {
                        match f {
                            1 => info.elem_type = Some(int(v, "elem_type")?),
                            2 => {
                                let (s, l) = sub(v, "a shape")?;
                                let mut dims = Vec::new();
                                let mut c = Cursor::new(buf, s, l);
                                while let Some((f, v)) = c.next(budget)? {
                                    if f != 1 {
                                        continue;
                                    }
                                    budget
                                        .memory(16, || "a dimension".into())
                                        .map_err(budget_err)?;
                                    let (s, l) = sub(v, "a dimension")?;
                                    let mut c = Cursor::new(buf, s, l);
                                    let mut value = None;
                                    while let Some((f, v)) = c.next(budget)? {
                                        if f == 1 {
                                            value = Some(int(v, "dim_value")?);
                                        }
                                    }
                                    dims.push(value);
                                }
                                info.dims = Some(dims);
                            }
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_lengths_and_field_zero_are_refused() {
        let budget = Budget::for_input(16);
        // field 1, wire type 3 (start group)
        assert!(model(&[0x0b], &budget).unwrap_err().contains("group"));
        // field 7 (graph) claiming 100 bytes in a 3-byte input
        assert!(
            model(&[0x3a, 100, 0], &budget)
                .unwrap_err()
                .contains("runs past")
        );
        assert!(
            model(&[0x00], &budget)
                .unwrap_err()
                .contains("field number 0")
        );
        let m = model(&[0x08, 0x08], &budget).unwrap();
        assert_eq!(m.ir_version, Some(8));
    }
}
