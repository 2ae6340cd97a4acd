//! A bounds-checked cursor over a caller's output buffer.
//!
//! Every head and response gatehouse produces is written through this: it never panics and
//! never writes past the end; when the buffer is too small the whole write reports
//! [`OutputFull`] and the caller answers with its named error.

use core::fmt;

/// The caller's output buffer was too small for what had to be written into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputFull;

impl fmt::Display for OutputFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("output buffer too small")
    }
}

pub(crate) struct Cursor<'o> {
    out: &'o mut [u8],
    len: usize,
    full: bool,
}

impl<'o> Cursor<'o> {
    pub(crate) fn new(out: &'o mut [u8]) -> Self {
        Cursor {
            out,
            len: 0,
            full: false,
        }
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) -> &mut Self {
        if self.full {
            return self;
        }
        match self.out.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => self.full = true,
        }
        self
    }

    pub(crate) fn put_str(&mut self, s: &str) -> &mut Self {
        self.put(s.as_bytes())
    }

    pub(crate) fn put_u64(&mut self, mut n: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.put(&digits[i..])
    }

    pub(crate) fn put_hex(&mut self, mut n: u64) -> &mut Self {
        let mut digits = [0u8; 16];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = HEX_UPPER[(n & 0xf) as usize];
            n >>= 4;
            if n == 0 {
                break;
            }
        }
        self.put(&digits[i..])
    }

    /// Writes `name: value\r\n`.
    pub(crate) fn header(&mut self, name: &str, value: &[u8]) -> &mut Self {
        self.put_str(name).put(b": ").put(value).put(b"\r\n")
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The buffer and the length written, unless the writes overflowed.
    pub(crate) fn into_parts(self) -> Result<(&'o mut [u8], usize), OutputFull> {
        if self.full {
            Err(OutputFull)
        } else {
            Ok((self.out, self.len))
        }
    }

    pub(crate) fn finish(self) -> Result<usize, OutputFull> {
        if self.full {
            Err(OutputFull)
        } else {
            Ok(self.len)
        }
    }
}

impl fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put_str(s);
        if self.full { Err(fmt::Error) } else { Ok(()) }
    }
}

pub(crate) const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_in_decimal_and_hex() {
        let mut buf = [0u8; 64];
        let mut c = Cursor::new(&mut buf);
        c.put_u64(0)
            .put(b" ")
            .put_u64(u64::MAX)
            .put(b" ")
            .put_hex(0)
            .put(b" ");
        c.put_hex(0x1f);
        let n = c.finish().unwrap();
        assert_eq!(&buf[..n], b"0 18446744073709551615 0 1F");
    }

    #[test]
    fn overflow_is_reported_not_truncated_silently() {
        let mut buf = [0u8; 4];
        let mut c = Cursor::new(&mut buf);
        c.put(b"abc").put(b"de");
        assert_eq!(c.len(), 3);
        assert_eq!(c.finish(), Err(OutputFull));
    }
}
