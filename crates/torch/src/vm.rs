//! A restricted pickle machine: it builds plain values (numbers, strings, lists, dicts),
//! storage and tensor *references*, and inert records of the classes a pickle names. It calls
//! nothing: "calling" one of the few allowed rebuild functions builds a reference, and
//! "calling" an allowed class records its name and arguments. Every global is checked against
//! the same allow-list as [`crate::pickle_scan`].
//!
//! Containers (tuples, lists, dicts, objects) live in an arena ([`Pickle`]) and refer to each
//! other by index, so a value nested 150,000 levels deep or a list containing itself is built,
//! walked and freed without recursion: nothing here recurses on anything a file controls.
//! Every allocation is charged to the reader's [`Budget`](effnet_io::Budget) before it is
//! made, and every opcode and walk step as work.

mod calls;
mod machine;
mod value;
mod walk;

use effnet_io::{BudgetError, escape};

pub use self::machine::evaluate;
pub use self::value::{Node, NodeId, Object, StorageRef, TensorRef, Value};
pub use self::walk::{MAX_VISITS, MAX_WALK_DEPTH};
use crate::pickle_scan::ScanError;

/// Most nested MARKs.
pub const MAX_DEPTH: usize = 10_000;
/// Most values on the machine's stack.
pub const MAX_STACK: usize = 100_000;
/// Most dimensions a tensor may have (PyTorch's own limit is 64 too).
pub const MAX_RANK: usize = 64;

/// An evaluated pickle: its root value and the arena its containers live in (freed as one
/// flat vector, whatever the nesting).
#[derive(Debug)]
pub struct Pickle {
    nodes: Vec<Node>,
    root: Value,
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

/// The text of a pickle operand for a message: escaped, and cut to 200 characters.
pub fn operand(text: &str) -> String {
    let cut: String = text.chars().take(200).collect();
    let more = if cut.len() < text.len() { "…" } else { "" };
    format!("{}{more}", escape(&cut))
}

#[cfg(test)]
mod tests {
    use effnet_io::Budget;
    use effnet_ir::DType;

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
