//! The little-endian byte codec of snapshots: a growable writer and a bounds-checked reader.
//!
//! Every integer is fixed-width little-endian; a sequence is its length (`u64`) followed by its
//! elements; `Money` and other fixed-point values are their raw bits (`i128`). The reader never
//! panics and never allocates more than the bytes it was given can describe: a length is checked
//! against the bytes left before anything is reserved.

/// Why snapshot bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end before the value at `at`.
    #[error("cut short at byte {at}: {need} more byte(s) needed")]
    Truncated {
        /// Offset of the value that did not fit.
        at: usize,
        /// Bytes it needed.
        need: usize,
    },
    /// A value is outside its domain.
    #[error("byte {at}: {what}")]
    Invalid {
        /// Offset just after the value.
        at: usize,
        /// What was wrong.
        what: &'static str,
    },
    /// Bytes are left over after the last value.
    #[error("{left} unexpected byte(s) after the end of the state")]
    Trailing {
        /// How many.
        left: usize,
    },
}

/// Appends little-endian values to a byte buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// An empty writer with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Writer {
        Writer {
            buf: Vec::with_capacity(bytes),
        }
    }

    /// The bytes written so far, to patch a placeholder in place.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// A boolean as one byte (0 or 1).
    pub fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    /// Four bytes.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Eight bytes.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Eight bytes, two's complement.
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Sixteen bytes, two's complement.
    pub fn i128(&mut self, v: i128) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A sequence length.
    pub fn len_of(&mut self, n: usize) {
        self.u64(n as u64);
    }

    /// Raw bytes (no length).
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// A sequence of `u32`.
    pub fn u32s(&mut self, v: &[u32]) {
        self.len_of(v.len());
        for &x in v {
            self.u32(x);
        }
    }

    /// A sequence of `u64`.
    pub fn u64s(&mut self, v: &[u64]) {
        self.len_of(v.len());
        for &x in v {
            self.u64(x);
        }
    }
}

/// Reads little-endian values from a byte slice, checking every bound.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    /// The current offset.
    pub fn position(&self) -> usize {
        self.at
    }

    /// An error about the value just read.
    pub fn invalid(&self, what: &'static str) -> DecodeError {
        DecodeError::Invalid { at: self.at, what }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(DecodeError::Truncated {
                at: self.at,
                need: n - (self.bytes.len() - self.at).min(n),
            });
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// A boolean (0 or 1).
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.invalid("a boolean other than 0 or 1")),
        }
    }

    /// Four bytes.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Eight bytes.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Eight bytes, two's complement.
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// Sixteen bytes, two's complement.
    pub fn i128(&mut self) -> Result<i128, DecodeError> {
        Ok(i128::from_le_bytes(self.array()?))
    }

    /// A sequence length whose elements take at least `min_elem` bytes each: refused when the
    /// bytes left cannot hold that many, so a corrupt length never reserves memory.
    pub fn len_of(&mut self, min_elem: usize) -> Result<usize, DecodeError> {
        let n = self.u64()?;
        let left = (self.bytes.len() - self.at) as u64;
        if n.saturating_mul(min_elem.max(1) as u64) > left {
            return Err(self.invalid("a sequence longer than the bytes left"));
        }
        Ok(n as usize)
    }

    /// A sequence of `u32`.
    pub fn u32s(&mut self) -> Result<Vec<u32>, DecodeError> {
        let n = self.len_of(4)?;
        (0..n).map(|_| self.u32()).collect()
    }

    /// A sequence of `u64`.
    pub fn u64s(&mut self) -> Result<Vec<u64>, DecodeError> {
        let n = self.len_of(8)?;
        (0..n).map(|_| self.u64()).collect()
    }

    /// Succeeds when every byte was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.bytes.len() - self.at {
            0 => Ok(()),
            left => Err(DecodeError::Trailing { left }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_bounds_are_checked() {
        let mut w = Writer::new();
        w.u8(7);
        w.bool(true);
        w.u32(0xDEAD_BEEF);
        w.i64(-5);
        w.i128(i128::MIN + 3);
        w.u32s(&[1, 2, 3]);
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8(), Ok(7));
        assert_eq!(r.bool(), Ok(true));
        assert_eq!(r.u32(), Ok(0xDEAD_BEEF));
        assert_eq!(r.i64(), Ok(-5));
        assert_eq!(r.i128(), Ok(i128::MIN + 3));
        assert_eq!(r.u32s(), Ok(vec![1, 2, 3]));
        assert_eq!(r.finish(), Ok(()));
        assert!(matches!(r.u8(), Err(DecodeError::Truncated { .. })));
        // A huge length is refused before any allocation.
        let mut w = Writer::new();
        w.u64(u64::MAX);
        let bytes = w.into_bytes();
        assert!(matches!(
            Reader::new(&bytes).u32s(),
            Err(DecodeError::Invalid { .. })
        ));
    }
}
