//! A pickle opcode walker that executes nothing: it lists every global a pickle names
//! (`GLOBAL`, `INST`, `STACK_GLOBAL`) so that anything outside an allow-list is refused before
//! the file is read for real.
//!
//! `STACK_GLOBAL` takes its module and name from the stack. Python's pickler pushes them as two
//! string literals (or memo references to them) right before the opcode; any other way of
//! producing them is refused, since its operands cannot be known without running the pickle.

use std::collections::HashSet;
use std::rc::Rc;

use effnet_io::{Budget, BudgetError};

pub use crate::allow_list::is_allowed;
use crate::memo::Memo;
use crate::op_reader::OpReader;

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// The pickle names a global effnet does not allow.
    #[error(
        "the pickle references `{}`, which effnet does not allow (it could run code)",
        crate::vm::operand(.0)
    )]
    Forbidden(String),
    /// An opcode this scanner does not know (or that only serves code execution).
    #[error("unsupported pickle opcode 0x{opcode:02x} at byte {offset}")]
    Opcode {
        /// The opcode byte.
        opcode: u8,
        /// Its offset in the pickle.
        offset: usize,
    },
    /// A `STACK_GLOBAL` whose operands are not string literals.
    #[error("a STACK_GLOBAL at byte {0} takes operands that are not literal strings")]
    DynamicGlobal(usize),
    /// The pickle ends inside an opcode or before its STOP.
    #[error("the pickle is truncated at byte {0}")]
    Truncated(usize),
    /// A length or count beyond the limits.
    #[error("the pickle declares {what} of {size} at byte {offset}, beyond the limit")]
    TooLarge {
        /// What was declared.
        what: &'static str,
        /// Its size.
        size: u64,
        /// Where.
        offset: usize,
    },
    /// Scanning would exceed the memory or work budget of the file.
    #[error(transparent)]
    Budget(#[from] BudgetError),
}

/// The most bytes one pickle literal may declare.
const MAX_LITERAL: u64 = 1 << 30;

/// The next `n` bytes of `ops`: a literal, at most [`MAX_LITERAL`] bytes.
fn literal<'a>(ops: &mut OpReader<'a>, n: u64) -> Result<&'a [u8], ScanError> {
    if n > MAX_LITERAL {
        return Err(ScanError::TooLarge {
            what: "a literal",
            size: n,
            offset: ops.pos(),
        });
    }
    ops.bytes(n)
}

/// A value as far as the scanner tracks it.
#[derive(Clone, Debug)]
enum Slot {
    Str(Rc<str>),
    Other,
}

/// A memo entry with the hash table's slack.
const MEMO_ENTRY: u64 = 2 * (8 + std::mem::size_of::<Slot>() as u64);
/// Opcodes counted locally before they are charged to the budget.
const WORK_BATCH: u64 = 4096;

/// Walks one pickle from `start` to its STOP. Returns the globals it names (`module.name`) and
/// the offset after the STOP. Refuses forbidden globals as it meets them. Every opcode is
/// charged to `budget` as work, every memo entry as memory.
pub fn scan(data: &[u8], start: usize, budget: &Budget) -> Result<(Vec<String>, usize), ScanError> {
    let mut globals = Globals::default();
    let mut pending_work = 0u64;
    let mut ops = OpReader::new(data, start);
    // The last values pushed, enough to resolve STACK_GLOBAL operands.
    let mut recent: Vec<Slot> = Vec::new();
    let mut memo: Memo<Slot> = Memo::new();
    let memoize = |memo: &mut Memo<Slot>, index: u64, slot: Slot| {
        if memo.is_new(index) {
            let text = match &slot {
                Slot::Str(s) => s.len() as u64,
                Slot::Other => 0,
            };
            budget.memory(MEMO_ENTRY + text, || "the pickle's memo".into())?;
        }
        memo.put(index, slot);
        Ok::<(), ScanError>(())
    };
    let line = |ops: &mut OpReader<'_>| -> Result<String, ScanError> {
        Ok(String::from_utf8_lossy(ops.line()?).into_owned())
    };
    let push = |recent: &mut Vec<Slot>, slot: Slot| {
        recent.push(slot);
        if recent.len() > 2 {
            recent.remove(0);
        }
    };
    loop {
        let (offset, op) = ops.opcode()?;
        pending_work += 1;
        if pending_work == WORK_BATCH || op == b'.' {
            budget.work(pending_work, || "scanning the pickle".into())?;
            pending_work = 0;
        }
        match op {
            b'.' => return Ok((globals.list, ops.pos())),
            // No argument, no value we track.
            b'(' | b'0' | b'1' | b'2' | b'a' | b'e' | b'l' | b'd' | b's' | b'u' | b't' | b'b'
            | b'R' | b'o' | b'Q' | 0x81 | 0x85 | 0x86 | 0x87 | 0x90 | 0x91 | 0x92 | 0x97 | 0x98 => {
                push(&mut recent, Slot::Other)
            }
            b'N' | 0x88 | 0x89 | b'}' | b']' | b')' | 0x8f => push(&mut recent, Slot::Other),
            0x94 => {
                // MEMOIZE: the top of the stack goes to the next memo index.
                let index = memo.len();
                memoize(
                    &mut memo,
                    index,
                    recent.last().cloned().unwrap_or(Slot::Other),
                )?;
            }
            // Fixed-size arguments.
            b'J' => {
                ops.bytes(4)?;
                push(&mut recent, Slot::Other);
            }
            b'K' => {
                ops.bytes(1)?;
                push(&mut recent, Slot::Other);
            }
            b'M' => {
                ops.bytes(2)?;
                push(&mut recent, Slot::Other);
            }
            b'G' => {
                ops.bytes(8)?;
                push(&mut recent, Slot::Other);
            }
            0x80 => {
                ops.bytes(1)?;
            }
            0x95 => {
                ops.bytes(8)?;
            }
            b'h' | b'j' => {
                let n = if op == b'h' { 1 } else { 4 };
                let index = ops.uint(n)?;
                let slot = memo.get(index).cloned().unwrap_or(Slot::Other);
                push(&mut recent, slot);
            }
            b'q' | b'r' => {
                let n = if op == b'q' { 1 } else { 4 };
                let index = ops.uint(n)?;
                memoize(
                    &mut memo,
                    index,
                    recent.last().cloned().unwrap_or(Slot::Other),
                )?;
            }
            // Length-prefixed literals.
            b'U' | b'C' | 0x8c | 0x8a => {
                let n = ops.uint(1)?;
                let bytes = literal(&mut ops, n)?;
                push(&mut recent, string_slot(op == 0x8c, bytes));
            }
            b'T' | b'B' | b'X' | 0x8b => {
                let n = ops.uint(4)?;
                let bytes = literal(&mut ops, n)?;
                push(&mut recent, string_slot(op == b'X', bytes));
            }
            0x8e | 0x8d | 0x96 => {
                let n = ops.uint(8)?;
                let bytes = literal(&mut ops, n)?;
                push(&mut recent, string_slot(op == 0x8d, bytes));
            }
            // Newline-terminated arguments.
            b'I' | b'L' | b'F' | b'S' | b'P' => {
                line(&mut ops)?;
                push(&mut recent, Slot::Other);
            }
            b'V' => {
                let text = line(&mut ops)?;
                push(&mut recent, Slot::Str(text.into()));
            }
            b'g' => {
                let index: u64 = line(&mut ops)?.trim().parse().unwrap_or(u64::MAX);
                let slot = memo.get(index).cloned().unwrap_or(Slot::Other);
                push(&mut recent, slot);
            }
            b'p' => {
                let index: u64 = line(&mut ops)?.trim().parse().unwrap_or(u64::MAX);
                memoize(
                    &mut memo,
                    index,
                    recent.last().cloned().unwrap_or(Slot::Other),
                )?;
            }
            b'c' | b'i' => {
                let module = line(&mut ops)?;
                let name = line(&mut ops)?;
                check(&module, &name, &mut globals, budget)?;
                push(&mut recent, Slot::Other);
            }
            0x93 => {
                let (Some(Slot::Str(module)), Some(Slot::Str(name))) =
                    (recent.first().cloned(), recent.get(1).cloned())
                else {
                    return Err(ScanError::DynamicGlobal(offset));
                };
                if recent.len() != 2 {
                    return Err(ScanError::DynamicGlobal(offset));
                }
                check(&module, &name, &mut globals, budget)?;
                recent.clear();
                push(&mut recent, Slot::Other);
            }
            // EXT1/2/4 reach globals through copyreg's registry; anything else is unknown.
            _ => return Err(ScanError::Opcode { opcode: op, offset }),
        }
    }
}

fn string_slot(is_text: bool, bytes: &[u8]) -> Slot {
    match (is_text, std::str::from_utf8(bytes)) {
        (true, Ok(s)) => Slot::Str(s.into()),
        _ => Slot::Other,
    }
}

/// The globals a pickle names, each once, in the order first named.
#[derive(Default)]
struct Globals {
    list: Vec<String>,
    seen: HashSet<String>,
}

fn check(
    module: &str,
    name: &str,
    globals: &mut Globals,
    budget: &Budget,
) -> Result<(), ScanError> {
    let full = format!("{module}.{name}");
    if globals.seen.contains(&full) {
        return Ok(());
    }
    if !is_allowed(module, name) {
        return Err(ScanError::Forbidden(full));
    }
    {
        budget.memory(2 * full.len() as u64 + 64, || {
            "the globals the pickle names".into()
        })?;
        globals.seen.insert(full.clone());
        globals.list.push(full);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Budget {
        Budget::for_input(1 << 20)
    }

    #[test]
    fn protocol_2_global_is_refused() {
        // PROTO 2, GLOBAL 'posix system', SHORT_BINUNICODE? no: BINUNICODE 'ls', TUPLE1, REDUCE, STOP
        let mut p = vec![0x80, 2];
        p.extend_from_slice(b"cposix\nsystem\n");
        p.extend_from_slice(&[b'X', 2, 0, 0, 0, b'l', b's', 0x85, b'R', b'.']);
        assert_eq!(
            scan(&p, 0, &budget()),
            Err(ScanError::Forbidden("posix.system".into()))
        );
    }

    #[test]
    fn protocol_4_stack_global_resolves_memoized_strings() {
        let mut p = vec![0x80, 4];
        for s in ["collections", "OrderedDict"] {
            p.push(0x8c);
            p.push(s.len() as u8);
            p.extend_from_slice(s.as_bytes());
            p.push(0x94);
        }
        p.extend_from_slice(&[0x93, 0x94, b')', b'R', b'.']);
        let (globals, end) = scan(&p, 0, &budget()).unwrap();
        assert_eq!(globals, vec!["collections.OrderedDict".to_owned()]);
        assert_eq!(end, p.len());
        // The same names through the memo: h 0, h 1 → builtins eval is refused.
        let mut q = vec![0x80, 4];
        for s in ["builtins", "eval"] {
            q.push(0x8c);
            q.push(s.len() as u8);
            q.extend_from_slice(s.as_bytes());
            q.push(0x94);
        }
        q.extend_from_slice(&[b'0', b'0', b'h', 0, b'h', 1, 0x93, b'.']);
        assert_eq!(
            scan(&q, 0, &budget()),
            Err(ScanError::Forbidden("builtins.eval".into()))
        );
    }

    #[test]
    fn truncation_and_unknown_opcodes_are_errors() {
        assert!(matches!(
            scan(&[0x80, 2, b'X', 9, 0], 0, &budget()),
            Err(ScanError::Truncated(_))
        ));
        assert!(matches!(
            scan(&[0x80], 0, &budget()),
            Err(ScanError::Truncated(_))
        ));
        assert!(matches!(
            scan(&[0x82, 1, b'.'], 0, &budget()),
            Err(ScanError::Opcode { opcode: 0x82, .. })
        ));
    }
}
