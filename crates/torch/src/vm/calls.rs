//! What the machine's calls build from the allowed globals (REDUCE, NEWOBJ) and persistent ids
//! (BINPERSID): tensor and storage references, containers, inert records of classes.

use std::mem::size_of;
use std::rc::Rc;

use effnet_ir::DType;

use super::machine::Machine;
use super::{MAX_RANK, Node, Object, StorageRef, TensorRef, Value, VmError};

impl Machine<'_> {
    /// "Calls" an allowed global: rebuild functions build references, containers build
    /// containers, classes become inert records.
    pub(super) fn call(
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
    pub(super) fn persistent_storage(&self, pid: &Value) -> Option<StorageRef> {
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

fn as_usize(v: &Value) -> Option<usize> {
    match v {
        Value::Int(i) => usize::try_from(*i).ok(),
        _ => None,
    }
}
