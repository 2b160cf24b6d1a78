//! Reading a pickle's opcodes and their arguments from its bytes: the one decoder the scanner
//! ([`crate::pickle_scan`]) and the machine ([`crate::vm`]) share.

use crate::pickle_scan::ScanError;

/// A cursor over a pickle: each opcode with its offset, then the argument bytes the opcode
/// takes (fixed-width little-endian integers, length-prefixed literals, newline-terminated
/// text). Reading past the end is [`ScanError::Truncated`].
pub(crate) struct OpReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> OpReader<'a> {
    /// A reader at byte `start` of `data`.
    pub(crate) fn new(data: &'a [u8], start: usize) -> Self {
        OpReader { data, pos: start }
    }

    /// The offset of the next byte to read.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    fn truncated(&self) -> ScanError {
        ScanError::Truncated(self.data.len())
    }

    /// The next opcode and its offset.
    pub(crate) fn opcode(&mut self) -> Result<(usize, u8), ScanError> {
        let offset = self.pos;
        let &op = self.data.get(self.pos).ok_or(self.truncated())?;
        self.pos += 1;
        Ok((offset, op))
    }

    /// The next `n` bytes.
    pub(crate) fn bytes(&mut self, n: u64) -> Result<&'a [u8], ScanError> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&e| e <= self.data.len())
            .ok_or(self.truncated())?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// A little-endian unsigned integer of `n` bytes (1 to 8).
    pub(crate) fn uint(&mut self, n: u64) -> Result<u64, ScanError> {
        Ok(self
            .bytes(n)?
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// The bytes up to the next newline; the newline is read too.
    pub(crate) fn line(&mut self) -> Result<&'a [u8], ScanError> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(self.truncated())?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_read_in_their_layouts() {
        let data = [b'K', 7, 0x01, 0x02, b'a', b'b', b'\n', 0xff];
        let mut ops = OpReader::new(&data, 0);
        assert_eq!(ops.opcode(), Ok((0, b'K')));
        assert_eq!(ops.uint(1), Ok(7));
        assert_eq!(ops.uint(2), Ok(0x0201));
        assert_eq!(ops.line(), Ok(&b"ab"[..]));
        assert_eq!(ops.pos(), 7);
        assert_eq!(ops.bytes(2), Err(ScanError::Truncated(8)));
        assert_eq!(ops.line(), Err(ScanError::Truncated(8)));
        assert_eq!(ops.bytes(u64::MAX), Err(ScanError::Truncated(8)));
        assert_eq!(ops.opcode(), Ok((7, 0xff)));
        assert_eq!(ops.opcode(), Err(ScanError::Truncated(8)));
    }
}
