//! The few protobuf wire-format pieces an event needs, by hand: varints, the four wire
//! types, and a field iterator that skips what it does not know.

/// Wire types (protobuf encoding guide).
pub(crate) const VARINT: u8 = 0;
pub(crate) const FIXED64: u8 = 1;
pub(crate) const LEN: u8 = 2;
pub(crate) const FIXED32: u8 = 5;

pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub(crate) fn put_key(buf: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(buf, (u64::from(field) << 3) | u64::from(wire));
}

/// `int64` and enum fields; negative values take ten bytes, as protobuf sign-extends them.
pub(crate) fn put_int(buf: &mut Vec<u8>, field: u32, v: i64) {
    put_key(buf, field, VARINT);
    put_varint(buf, v as u64);
}

pub(crate) fn put_double(buf: &mut Vec<u8>, field: u32, v: f64) {
    put_key(buf, field, FIXED64);
    buf.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_float(buf: &mut Vec<u8>, field: u32, v: f32) {
    put_key(buf, field, FIXED32);
    buf.extend_from_slice(&v.to_le_bytes());
}

/// `string`, `bytes` and embedded messages.
pub(crate) fn put_bytes(buf: &mut Vec<u8>, field: u32, v: &[u8]) {
    put_key(buf, field, LEN);
    put_varint(buf, v.len() as u64);
    buf.extend_from_slice(v);
}

/// One field's value as it sits on the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wire<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Len(&'a [u8]),
    Fixed32([u8; 4]),
}

impl<'a> Wire<'a> {
    pub(crate) fn int(self, what: &str) -> Result<i64, String> {
        match self {
            Wire::Varint(v) => Ok(v as i64),
            _ => Err(format!("{what} is not a varint")),
        }
    }

    pub(crate) fn double(self, what: &str) -> Result<f64, String> {
        match self {
            Wire::Fixed64(b) => Ok(f64::from_le_bytes(b)),
            _ => Err(format!("{what} is not a 64-bit field")),
        }
    }

    pub(crate) fn float(self, what: &str) -> Result<f32, String> {
        match self {
            Wire::Fixed32(b) => Ok(f32::from_le_bytes(b)),
            _ => Err(format!("{what} is not a 32-bit field")),
        }
    }

    pub(crate) fn bytes(self, what: &str) -> Result<&'a [u8], String> {
        match self {
            Wire::Len(b) => Ok(b),
            _ => Err(format!("{what} is not length-delimited")),
        }
    }

    pub(crate) fn string(self, what: &str) -> Result<String, String> {
        String::from_utf8(self.bytes(what)?.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }
}

/// The fields of one message, in order, as `(field number, value)`.
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Fields { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("a varint runs past the message")?;
            self.pos += 1;
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a varint is longer than ten bytes".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or("a field runs past the message")?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn field(&mut self) -> Result<(u32, Wire<'a>), String> {
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| "a field number is out of range")?;
        let value = match (key & 7) as u8 {
            VARINT => Wire::Varint(self.varint()?),
            FIXED64 => Wire::Fixed64(self.take(8)?.try_into().map_err(|_| "short 64-bit field")?),
            LEN => {
                let n = usize::try_from(self.varint()?).map_err(|_| "a length is out of range")?;
                Wire::Len(self.take(n)?)
            }
            FIXED32 => Wire::Fixed32(self.take(4)?.try_into().map_err(|_| "short 32-bit field")?),
            w => return Err(format!("wire type {w} (field {field}) is not one an event uses")),
        };
        Ok((field, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Wire<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let item = self.field();
        if item.is_err() {
            // Stop after the first error: the rest of the message cannot be framed.
            self.pos = self.buf.len();
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_including_negative_ints() {
        for v in [0i64, 1, 127, 128, 300, i64::MAX, -1, i64::MIN] {
            let mut buf = Vec::new();
            put_int(&mut buf, 2, v);
            let fields: Vec<_> = Fields::new(&buf).collect::<Result<_, _>>().unwrap();
            assert_eq!(fields.len(), 1);
            assert_eq!(fields[0].0, 2);
            assert_eq!(fields[0].1.int("step").unwrap(), v);
        }
        // 300 is the protobuf guide's example: 0xAC 0x02.
        let mut buf = Vec::new();
        put_varint(&mut buf, 300);
        assert_eq!(buf, [0xAC, 0x02]);
    }

    #[test]
    fn truncated_messages_are_errors() {
        let mut buf = Vec::new();
        put_bytes(&mut buf, 3, b"brain.Event:2");
        buf.pop();
        let err = Fields::new(&buf).next().unwrap().unwrap_err();
        assert!(err.contains("past the message"), "{err}");
    }
}
