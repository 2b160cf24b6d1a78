//! What a protobuf message will take in memory once prost decodes it, computed from its bytes
//! before decoding, so the reader's budget is charged first.
//!
//! A linear scan of the wire format guided by a description of the fields effnet declares
//! ([`Schema`]): every sub-message, string, bytes field, packed array and map entry a decode
//! would allocate is counted at its in-memory size (doubled for the growth of the vector or
//! map holding it); fields effnet does not declare are skipped, as prost skips them. The scan
//! keeps an explicit stack as deep as the schema (a handful of levels), never as deep as the
//! input. Groups (wire types 3 and 4), which TensorFlow never writes, are refused.

use std::mem::size_of;

use crate::proto;
use crate::saved_model as sm;

/// A message type: its in-memory size and the fields that allocate.
pub(crate) struct Schema {
    size: u64,
    fields: &'static [(u32, Field)],
}

/// A field that allocates when decoded.
#[derive(Clone, Copy)]
enum Field {
    /// A (repeated or optional) sub-message.
    Msg(&'static Schema),
    /// A string or bytes field (repeated or not).
    Bytes,
    /// A repeated scalar of this many bytes in memory (packed or not).
    Scalar(u64),
    /// A `map<string, V>` entry: the key and a `V` in a hash map slot.
    Map(&'static Schema),
}

const fn schema<T>(fields: &'static [(u32, Field)]) -> Schema {
    Schema {
        size: size_of::<T>() as u64,
        fields,
    }
}

/// The schema of a map entry whose value is `value`.
static STRING_SLOT: u64 = size_of::<String>() as u64;

pub(crate) static DIM: Schema = schema::<proto::Dim>(&[]);
pub(crate) static SHAPE: Schema = schema::<proto::TensorShapeProto>(&[(2, Field::Msg(&DIM))]);
pub(crate) static BUNDLE_ENTRY: Schema =
    schema::<proto::BundleEntryProto>(&[(2, Field::Msg(&SHAPE)), (7, Field::Bytes)]);
static OBJECT_REFERENCE: Schema = schema::<proto::ObjectReference>(&[(2, Field::Bytes)]);
static SERIALIZED_TENSOR: Schema =
    schema::<proto::SerializedTensor>(&[(1, Field::Bytes), (2, Field::Bytes), (3, Field::Bytes)]);
static SLOT_VARIABLE: Schema = schema::<proto::SlotVariableReference>(&[(2, Field::Bytes)]);
static TRACKABLE_OBJECT: Schema = schema::<proto::TrackableObject>(&[
    (1, Field::Msg(&OBJECT_REFERENCE)),
    (2, Field::Msg(&SERIALIZED_TENSOR)),
    (3, Field::Msg(&SLOT_VARIABLE)),
]);
pub(crate) static OBJECT_GRAPH: Schema =
    schema::<proto::TrackableObjectGraph>(&[(1, Field::Msg(&TRACKABLE_OBJECT))]);

static ARG_DEF: Schema = schema::<sm::ArgDef>(&[(1, Field::Bytes)]);
static OP_DEF: Schema = schema::<sm::OpDef>(&[(1, Field::Bytes), (2, Field::Msg(&ARG_DEF))]);
static ATTR_LIST: Schema = schema::<sm::AttrList>(&[(3, Field::Scalar(8))]);
static NAME_ATTR_LIST: Schema = schema::<sm::NameAttrList>(&[(1, Field::Bytes)]);
static TENSOR_PROTO: Schema = schema::<sm::TensorProto>(&[
    (4, Field::Bytes),
    (7, Field::Scalar(4)),
    (10, Field::Scalar(8)),
]);
static ATTR_VALUE: Schema = schema::<sm::AttrValue>(&[
    (1, Field::Msg(&ATTR_LIST)),
    (2, Field::Bytes),
    (8, Field::Msg(&TENSOR_PROTO)),
    (10, Field::Msg(&NAME_ATTR_LIST)),
]);
static ATTR_ENTRY: Schema =
    schema::<sm::AttrValue>(&[(1, Field::Bytes), (2, Field::Msg(&ATTR_VALUE))]);
static NODE_DEF: Schema = schema::<sm::NodeDef>(&[
    (1, Field::Bytes),
    (2, Field::Bytes),
    (3, Field::Bytes),
    (5, Field::Map(&ATTR_ENTRY)),
]);
static FUNCTION_DEF: Schema =
    schema::<sm::FunctionDef>(&[(1, Field::Msg(&OP_DEF)), (3, Field::Msg(&NODE_DEF))]);
static LIBRARY: Schema = schema::<sm::FunctionDefLibrary>(&[(1, Field::Msg(&FUNCTION_DEF))]);
static GRAPH_DEF: Schema = schema::<sm::GraphDef>(&[(2, Field::Msg(&LIBRARY))]);
static TENSOR_INFO: Schema = schema::<sm::TensorInfo>(&[(3, Field::Msg(&SHAPE))]);
static TENSOR_INFO_ENTRY: Schema =
    schema::<sm::TensorInfo>(&[(1, Field::Bytes), (2, Field::Msg(&TENSOR_INFO))]);
static SIGNATURE_DEF: Schema = schema::<sm::SignatureDef>(&[(1, Field::Map(&TENSOR_INFO_ENTRY))]);
static SIGNATURE_ENTRY: Schema =
    schema::<sm::SignatureDef>(&[(1, Field::Bytes), (2, Field::Msg(&SIGNATURE_DEF))]);
static SAVED_VARIABLE: Schema = schema::<sm::SavedVariable>(&[(6, Field::Bytes)]);
static SAVED_BARE: Schema = schema::<sm::SavedBareConcreteFunction>(&[(1, Field::Bytes)]);
static SAVED_FUNCTION: Schema = schema::<sm::SavedFunction>(&[(1, Field::Bytes)]);
static SAVED_OBJECT: Schema = schema::<sm::SavedObject>(&[
    (1, Field::Msg(&OBJECT_REFERENCE)),
    (6, Field::Msg(&SAVED_FUNCTION)),
    (7, Field::Msg(&SAVED_VARIABLE)),
    (8, Field::Msg(&SAVED_BARE)),
]);
static CONCRETE_FUNCTION: Schema = schema::<sm::SavedConcreteFunction>(&[(2, Field::Scalar(4))]);
static CONCRETE_ENTRY: Schema =
    schema::<sm::SavedConcreteFunction>(&[(1, Field::Bytes), (2, Field::Msg(&CONCRETE_FUNCTION))]);
static SAVED_OBJECT_GRAPH: Schema = schema::<sm::SavedObjectGraph>(&[
    (1, Field::Msg(&SAVED_OBJECT)),
    (2, Field::Map(&CONCRETE_ENTRY)),
]);
static META_GRAPH: Schema = schema::<sm::MetaGraphDef>(&[
    (2, Field::Msg(&GRAPH_DEF)),
    (5, Field::Map(&SIGNATURE_ENTRY)),
    (7, Field::Msg(&SAVED_OBJECT_GRAPH)),
]);
pub(crate) static SAVED_MODEL: Schema =
    schema::<sm::SavedModelProto>(&[(2, Field::Msg(&META_GRAPH))]);
static META_GRAPH_OBJECTS: Schema =
    schema::<sm::MetaGraphObjects>(&[(7, Field::Msg(&SAVED_OBJECT_GRAPH))]);
/// `saved_model.pb` decoded as [`sm::SavedModelObjects`] (the graphs skipped).
pub(crate) static SAVED_MODEL_OBJECTS: Schema =
    schema::<sm::SavedModelObjects>(&[(2, Field::Msg(&META_GRAPH_OBJECTS))]);
static KERAS_OBJECT: Schema =
    schema::<sm::KerasObject>(&[(3, Field::Bytes), (4, Field::Bytes), (5, Field::Bytes)]);
pub(crate) static SAVED_METADATA: Schema =
    schema::<sm::SavedMetadata>(&[(1, Field::Msg(&KERAS_OBJECT))]);

fn varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..10 {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The bytes decoding `bytes` as a `schema` message may allocate (an upper bound). Malformed
/// input ends the scan with what was counted (the decode then reports the error); groups are
/// refused.
pub(crate) fn decoded_size(bytes: &[u8], schema: &'static Schema) -> Result<u64, &'static str> {
    let mut total = schema.size;
    // (schema, end of its bytes)
    let mut stack: Vec<(&'static Schema, usize)> = vec![(schema, bytes.len())];
    let mut pos = 0usize;
    while let Some(&(current, end)) = stack.last() {
        if pos >= end {
            stack.pop();
            continue;
        }
        let Some(key) = varint(bytes, &mut pos) else {
            break;
        };
        let tag = u32::try_from(key >> 3).unwrap_or(0);
        let field = current
            .fields
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, f)| *f);
        match key & 7 {
            0 => {
                if varint(bytes, &mut pos).is_none() {
                    break;
                }
                if let Some(Field::Scalar(size)) = field {
                    total = total.saturating_add(2 * size);
                }
            }
            1 => pos = pos.saturating_add(8),
            5 => pos = pos.saturating_add(4),
            2 => {
                let Some(len) = varint(bytes, &mut pos).and_then(|l| usize::try_from(l).ok())
                else {
                    break;
                };
                let Some(field_end) = pos.checked_add(len).filter(|&e| e <= end) else {
                    break;
                };
                match field {
                    Some(Field::Msg(inner)) => {
                        total = total.saturating_add(2 * inner.size);
                        stack.push((inner, field_end));
                        continue;
                    }
                    Some(Field::Map(entry)) => {
                        // A hash map slot (key, value, control byte) at most half full.
                        total = total.saturating_add(2 * (STRING_SLOT + entry.size + 8));
                        stack.push((entry, field_end));
                        continue;
                    }
                    Some(Field::Bytes) => {
                        total = total.saturating_add(len as u64 + 2 * STRING_SLOT);
                    }
                    Some(Field::Scalar(size)) => {
                        total = total.saturating_add((len as u64).saturating_mul(2 * size));
                    }
                    None => {}
                }
                pos = field_end;
            }
            _ => return Err("a protobuf group (wire type 3 or 4), which TensorFlow never writes"),
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn empty_sub_messages_are_counted_at_their_size_in_memory() {
        // 100,000 empty nodes: 200 KB on the wire, megabytes once decoded.
        let graph = proto::TrackableObjectGraph {
            nodes: vec![proto::TrackableObject::default(); 100_000],
        };
        let bytes = graph.encode_to_vec();
        let size = decoded_size(&bytes, &OBJECT_GRAPH).unwrap();
        assert!(
            size >= 100_000 * size_of::<proto::TrackableObject>() as u64,
            "{size}"
        );
    }

    #[test]
    fn skipped_fields_cost_nothing_and_groups_are_refused() {
        // Field 15 is not declared: skipped.
        let bytes = [0x7a, 0x03, 1, 2, 3];
        assert_eq!(
            decoded_size(&bytes, &OBJECT_GRAPH).unwrap(),
            size_of::<proto::TrackableObjectGraph>() as u64
        );
        assert!(decoded_size(&[0x0b, 0x0c], &OBJECT_GRAPH).is_err());
    }
}
