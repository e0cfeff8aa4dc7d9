//! The small binary encoding shared by stored events and rollups: LEB128 varints, little-endian
//! `f64`s and length-prefixed UTF-8 strings. A reader that meets a truncated or malformed record
//! returns [`DecodeError`] instead of panicking, because the bytes come from disk.

use std::fmt;

/// A stored record could not be decoded (truncated, corrupt, or from an unknown version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError(pub &'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "corrupt metrics record: {}", self.0)
    }
}

pub(crate) fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A cursor over one stored record.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError("varint too long"))
    }

    pub(crate) fn f64(&mut self) -> Result<f64, DecodeError> {
        let end = self.pos + 8;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or(DecodeError("truncated"))?;
        let mut a = [0u8; 8];
        a.copy_from_slice(bytes);
        self.pos = end;
        Ok(f64::from_le_bytes(a))
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = usize::try_from(self.u64()?).map_err(|_| DecodeError("bad length"))?;
        let end = self.pos.checked_add(len).ok_or(DecodeError("bad length"))?;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or(DecodeError("truncated"))?;
        self.pos = end;
        std::str::from_utf8(bytes).map_err(|_| DecodeError("invalid UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_every_width() {
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut buf = Vec::new();
            put_u64(&mut buf, v);
            assert_eq!(Reader::new(&buf).u64(), Ok(v));
        }
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        put_str(&mut buf, "deepseek-chat");
        for cut in 0..buf.len() {
            assert!(Reader::new(&buf[..cut]).str().is_err());
        }
        assert!(Reader::new(&[0x80; 11]).u64().is_err());
    }
}
