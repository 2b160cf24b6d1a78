//! How much memory and work a reader may spend on a file's metadata.
//!
//! The rule every reader follows: metadata (names, pickle values, configs, protobuf messages,
//! index keys, the graphs built from them) may take at most [`MEMORY_BASE`] + [`MEMORY_PER_BYTE`]
//! × the input's size in bytes, and a reader may do at most [`WORK_BASE`] + [`WORK_PER_BYTE`] ×
//! the input's size steps of work (an opcode, a key compared, a node or edge visited, a byte
//! copied). Both are charged *before* the allocation or the work, with checked arithmetic.
//! Tensor data is not charged: it is mapped from the file, never copied beyond what an output
//! needs.

use std::sync::atomic::{AtomicU64, Ordering};

/// Memory every input may use for metadata, whatever its size (64 MiB).
pub const MEMORY_BASE: u64 = 64 << 20;
/// Memory allowed for each byte of input.
pub const MEMORY_PER_BYTE: u64 = 8;
/// Work every input may take, whatever its size.
pub const WORK_BASE: u64 = 1 << 26;
/// Work allowed for each byte of input.
pub const WORK_PER_BYTE: u64 = 64;

/// A budget exceeded: what asked, how much, and the limit.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error(
    "{what} would need more than the {limit} {unit} of {kind} allowed for a {input_bytes}-byte input"
)]
pub struct BudgetError {
    /// What asked for the memory or work.
    pub what: String,
    /// `memory` or `work`.
    pub kind: &'static str,
    /// `bytes` or `steps`.
    pub unit: &'static str,
    /// The limit.
    pub limit: u64,
    /// The input's size the limit was derived from.
    pub input_bytes: u64,
}

/// The memory and work a reader may still spend; shareable across threads.
#[derive(Debug)]
pub struct Budget {
    input_bytes: u64,
    memory_limit: u64,
    work_limit: u64,
    memory: AtomicU64,
    work: AtomicU64,
}

impl Budget {
    /// The budget for an input of `input_bytes` bytes (for a folder: the sum of the files read).
    pub fn for_input(input_bytes: u64) -> Self {
        Self::with_limits(
            input_bytes,
            MEMORY_BASE.saturating_add(MEMORY_PER_BYTE.saturating_mul(input_bytes)),
            WORK_BASE.saturating_add(WORK_PER_BYTE.saturating_mul(input_bytes)),
        )
    }

    /// A budget with explicit limits (tests, fuzzing).
    pub fn with_limits(input_bytes: u64, memory_limit: u64, work_limit: u64) -> Self {
        Self {
            input_bytes,
            memory_limit,
            work_limit,
            memory: AtomicU64::new(0),
            work: AtomicU64::new(0),
        }
    }

    /// The memory limit in bytes.
    pub fn memory_limit(&self) -> u64 {
        self.memory_limit
    }

    /// The work limit in steps.
    pub fn work_limit(&self) -> u64 {
        self.work_limit
    }

    /// Memory charged so far.
    pub fn memory_used(&self) -> u64 {
        self.memory.load(Ordering::Relaxed)
    }

    /// Work charged so far.
    pub fn work_used(&self) -> u64 {
        self.work.load(Ordering::Relaxed)
    }

    /// Charges `bytes` of memory for `what` (called before allocating).
    pub fn memory(&self, bytes: u64, what: impl FnOnce() -> String) -> Result<(), BudgetError> {
        charge(&self.memory, bytes, self.memory_limit).map_err(|()| BudgetError {
            what: what(),
            kind: "memory",
            unit: "bytes",
            limit: self.memory_limit,
            input_bytes: self.input_bytes,
        })
    }

    /// Charges memory for `count` items of `size` bytes each, with checked arithmetic.
    pub fn memory_for(
        &self,
        count: u64,
        size: u64,
        what: impl FnOnce() -> String,
    ) -> Result<(), BudgetError> {
        self.memory(count.saturating_mul(size), what)
    }

    /// Charges `steps` of work for `what` (called before doing it).
    pub fn work(&self, steps: u64, what: impl FnOnce() -> String) -> Result<(), BudgetError> {
        charge(&self.work, steps, self.work_limit).map_err(|()| BudgetError {
            what: what(),
            kind: "work",
            unit: "steps",
            limit: self.work_limit,
            input_bytes: self.input_bytes,
        })
    }

    /// Returns `bytes` of memory to the budget (a value freed while reading goes on).
    pub fn release(&self, bytes: u64) {
        let _ = self
            .memory
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(bytes))
            });
    }
}

fn charge(counter: &AtomicU64, amount: u64, limit: u64) -> Result<(), ()> {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
            used.checked_add(amount).filter(|&total| total <= limit)
        })
        .map(|_| ())
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_the_input_size() {
        let budget = Budget::for_input(1000);
        assert_eq!(budget.memory_limit(), MEMORY_BASE + 8000);
        assert_eq!(budget.work_limit(), WORK_BASE + 64_000);
    }

    #[test]
    fn charges_accumulate_and_refuse_before_exceeding() {
        let budget = Budget::with_limits(10, 100, 100);
        budget.memory(60, || "a".into()).unwrap();
        let err = budget.memory(41, || "names".into()).unwrap_err();
        assert_eq!(err.limit, 100);
        assert!(
            err.to_string()
                .contains("names would need more than the 100 bytes of memory")
        );
        assert_eq!(budget.memory_used(), 60);
        budget.release(60);
        budget.memory(100, || "b".into()).unwrap();
    }

    #[test]
    fn overflowing_requests_are_refused() {
        let budget = Budget::for_input(1);
        assert!(budget.memory_for(1 << 40, 1 << 40, || "x".into()).is_err());
        assert!(budget.work(u64::MAX, || "x".into()).is_err());
    }
}
