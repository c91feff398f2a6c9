//! AMF0 (Adobe's Action Message Format 0), the encoding of RTMP's commands and metadata: the
//! values a publisher sends (`connect`, `publish`, `@setDataFrame`), decoded with a limit on
//! nesting, and the few our answers need, encoded.
//!
//! Decoding never recurses without bound: a value nested deeper than [`MAX_DEPTH`] is an error,
//! however small each level is. Lengths are checked against what is there before anything is
//! allocated.

use std::fmt;

/// Objects and arrays nest at most this deep (metadata nests one or two levels).
pub const MAX_DEPTH: usize = 16;

#[derive(Clone, Debug, PartialEq)]
pub enum Amf0 {
    Number(f64),
    Bool(bool),
    String(String),
    /// An anonymous object, an ECMA array (`onMetaData`'s usual form) or a typed object:
    /// properties in the order sent.
    Object(Vec<(String, Amf0)>),
    Null,
    Undefined,
    StrictArray(Vec<Amf0>),
    /// Milliseconds since the Unix epoch.
    Date(f64),
}

impl Amf0 {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Amf0::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// A property of an object.
    pub fn get(&self, key: &str) -> Option<&Amf0> {
        match self {
            Amf0::Object(props) => props.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Amf0Error {
    /// Byte offset in the message where decoding stopped.
    pub offset: usize,
    pub what: &'static str,
}

impl fmt::Display for Amf0Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AMF0 at byte {}: {}", self.offset, self.what)
    }
}

/// Every value in `data`, in order.
pub fn decode_all(data: &[u8]) -> Result<Vec<Amf0>, Amf0Error> {
    let mut r = Reader { data, pos: 0 };
    let mut out = Vec::new();
    while r.pos < data.len() {
        out.push(r.value(0)?);
    }
    Ok(out)
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn fail<T>(&self, what: &'static str) -> Result<T, Amf0Error> {
        Err(Amf0Error {
            offset: self.pos,
            what,
        })
    }

    fn take(&mut self, n: usize) -> Result<&[u8], Amf0Error> {
        let end = match self.pos.checked_add(n) {
            Some(end) if end <= self.data.len() => end,
            _ => return self.fail("cut short"),
        };
        let b = &self.data[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn u8(&mut self) -> Result<u8, Amf0Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Amf0Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Amf0Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64, Amf0Error> {
        let b = self.take(8)?;
        Ok(f64::from_be_bytes(b.try_into().expect("eight bytes")))
    }

    fn string(&mut self, len: usize) -> Result<String, Amf0Error> {
        let b = self.take(len)?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }

    fn short_string(&mut self) -> Result<String, Amf0Error> {
        let len = self.u16()? as usize;
        self.string(len)
    }

    fn value(&mut self, depth: usize) -> Result<Amf0, Amf0Error> {
        if depth > MAX_DEPTH {
            return self.fail("nested too deep");
        }
        let marker = self.u8()?;
        Ok(match marker {
            0x00 => Amf0::Number(self.f64()?),
            0x01 => Amf0::Bool(self.u8()? != 0),
            0x02 => Amf0::String(self.short_string()?),
            0x03 => Amf0::Object(self.properties(depth)?),
            0x05 => Amf0::Null,
            0x06 => Amf0::Undefined,
            // A reference to an earlier object: we keep none, so it stands for nothing.
            0x07 => {
                self.u16()?;
                Amf0::Undefined
            }
            0x08 => {
                self.u32()?; // the count is a hint; the end marker decides
                Amf0::Object(self.properties(depth)?)
            }
            0x0a => {
                let n = self.u32()? as usize;
                // Each element takes at least a byte: a count past what is left is a lie.
                if n > self.data.len() - self.pos {
                    return self.fail("array longer than the message");
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Amf0::StrictArray(items)
            }
            0x0b => {
                let ms = self.f64()?;
                self.u16()?; // time zone, unused
                Amf0::Date(ms)
            }
            0x0c | 0x0f => {
                let len = self.u32()? as usize;
                Amf0::String(self.string(len)?)
            }
            0x0d => Amf0::Undefined, // "unsupported"
            0x10 => {
                self.short_string()?; // class name
                Amf0::Object(self.properties(depth)?)
            }
            0x09 => return self.fail("object end outside an object"),
            0x11 => return self.fail("AMF3 values are not taken"),
            _ => return self.fail("unknown type marker"),
        })
    }

    /// Properties up to the object end marker (an empty name, then 0x09).
    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Amf0)>, Amf0Error> {
        let mut props = Vec::new();
        loop {
            let key = self.short_string()?;
            if key.is_empty() && self.data.get(self.pos) == Some(&0x09) {
                self.pos += 1;
                return Ok(props);
            }
            let value = self.value(depth + 1)?;
            props.push((key, value));
        }
    }
}

/// Appends `v` to `out`.
pub fn encode(v: &Amf0, out: &mut Vec<u8>) {
    match v {
        Amf0::Number(n) => {
            out.push(0x00);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Amf0::Bool(b) => out.extend_from_slice(&[0x01, *b as u8]),
        Amf0::String(s) if s.len() <= u16::MAX as usize => {
            out.push(0x02);
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Amf0::String(s) => {
            out.push(0x0c);
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Amf0::Object(props) => {
            out.push(0x03);
            for (k, v) in props {
                let k = &k.as_bytes()[..k.len().min(u16::MAX as usize)];
                out.extend_from_slice(&(k.len() as u16).to_be_bytes());
                out.extend_from_slice(k);
                encode(v, out);
            }
            out.extend_from_slice(&[0, 0, 0x09]);
        }
        Amf0::Null => out.push(0x05),
        Amf0::Undefined => out.push(0x06),
        Amf0::StrictArray(items) => {
            out.push(0x0a);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for v in items {
                encode(v, out);
            }
        }
        Amf0::Date(ms) => {
            out.push(0x0b);
            out.extend_from_slice(&ms.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
        }
    }
}

/// An object from `(name, value)` pairs.
pub fn object<const N: usize>(props: [(&str, Amf0); N]) -> Amf0 {
    Amf0::Object(props.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

pub fn string(s: &str) -> Amf0 {
    Amf0::String(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v = vec![
            string("connect"),
            Amf0::Number(1.0),
            object([
                ("app", string("live")),
                ("flashVer", string("FMLE/3.0")),
                ("fpad", Amf0::Bool(false)),
                ("nested", object([("n", Amf0::Null)])),
            ]),
            Amf0::StrictArray(vec![Amf0::Undefined, Amf0::Date(5.0)]),
        ];
        let mut bytes = Vec::new();
        for x in &v {
            encode(x, &mut bytes);
        }
        assert_eq!(decode_all(&bytes).unwrap(), v);
    }

    #[test]
    fn ecma_arrays_and_typed_objects_are_objects() {
        // ECMA array with one property ("width": 1280), count field saying 5.
        let mut b = vec![0x08, 0, 0, 0, 5, 0, 5];
        b.extend_from_slice(b"width");
        b.push(0x00);
        b.extend_from_slice(&1280f64.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0x09]);
        let v = decode_all(&b).unwrap();
        assert_eq!(v[0].get("width").and_then(Amf0::as_number), Some(1280.0));
    }

    /// The bomb: a megabyte of objects, each inside the last. Refused at the depth limit,
    /// without recursing through it.
    #[test]
    fn deep_nesting_is_refused_not_recursed() {
        let mut b = Vec::new();
        for _ in 0..300_000 {
            b.extend_from_slice(&[0x03, 0, 1, b'a']);
        }
        let e = decode_all(&b).unwrap_err();
        assert_eq!(e.what, "nested too deep");
        assert!(e.offset < 100, "stopped early: {e}");
        let mut arrays = Vec::new();
        for _ in 0..300_000 {
            arrays.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
        }
        assert_eq!(decode_all(&arrays).unwrap_err().what, "nested too deep");
    }

    #[test]
    fn lies_about_lengths_are_errors() {
        assert_eq!(
            decode_all(&[0x02, 0xff, 0xff, b'a']).unwrap_err().what,
            "cut short"
        );
        assert_eq!(
            decode_all(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x05])
                .unwrap_err()
                .what,
            "array longer than the message"
        );
        assert_eq!(
            decode_all(&[0x0c, 0xff, 0xff, 0xff, 0xff])
                .unwrap_err()
                .what,
            "cut short"
        );
        assert!(decode_all(&[0x11, 0x01]).is_err(), "AMF3");
        assert!(decode_all(&[0x42]).is_err());
        assert!(
            decode_all(&[0x03, 0, 1, b'a']).is_err(),
            "an object never ended"
        );
    }
}
