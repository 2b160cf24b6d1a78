//! A pickle's memo, shared by the scanner and the machine.

use std::collections::HashMap;

/// A pickle's memo: the indices 0, 1, 2, … that MEMOIZE and Python's pickler use live in a
/// vector (a flood of MEMOIZE opcodes costs a push each), any others in a map.
#[derive(Debug)]
pub(crate) struct Memo<T> {
    dense: Vec<T>,
    sparse: HashMap<u64, T>,
}

impl<T> Memo<T> {
    pub(crate) fn new() -> Self {
        Memo {
            dense: Vec::new(),
            sparse: HashMap::new(),
        }
    }

    /// Entries held (the index MEMOIZE uses next).
    pub(crate) fn len(&self) -> u64 {
        (self.dense.len() + self.sparse.len()) as u64
    }

    pub(crate) fn get(&self, index: u64) -> Option<&T> {
        match usize::try_from(index) {
            Ok(i) if i < self.dense.len() => self.dense.get(i),
            _ => self.sparse.get(&index),
        }
    }

    /// Whether `index` holds nothing yet (a put there takes memory).
    pub(crate) fn is_new(&self, index: u64) -> bool {
        self.get(index).is_none()
    }

    pub(crate) fn put(&mut self, index: u64, value: T) {
        match usize::try_from(index) {
            Ok(i) if i < self.dense.len() => self.dense[i] = value,
            Ok(i) if i == self.dense.len() => {
                self.dense.push(value);
                // Entries put ahead of the vector join it once it reaches them.
                while !self.sparse.is_empty() {
                    match self.sparse.remove(&(self.dense.len() as u64)) {
                        Some(v) => self.dense.push(v),
                        None => break,
                    }
                }
            }
            _ => {
                self.sparse.insert(index, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memo_keeps_dense_and_sparse_indices() {
        let mut memo = Memo::new();
        memo.put(0, 'a');
        memo.put(2, 'c');
        assert_eq!(memo.len(), 2);
        assert!(memo.is_new(1));
        memo.put(1, 'b');
        assert_eq!(
            (memo.get(0), memo.get(1), memo.get(2)),
            (Some(&'a'), Some(&'b'), Some(&'c'))
        );
        assert_eq!(memo.dense.len(), 3, "the sparse entry joined the vector");
        memo.put(1, 'B');
        memo.put(u64::MAX, 'z');
        assert_eq!(
            (memo.get(1), memo.get(u64::MAX), memo.len()),
            (Some(&'B'), Some(&'z'), 4)
        );
    }
}
