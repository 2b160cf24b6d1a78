//! `.npy` arrays (NumPy's format, versions 1.0–3.0): float32, float16 and float64 in either
//! byte order, C order, read into f32; f32 written (version 1.0).
//!
//! Layout: the magic `\x93NUMPY`, a major and minor version byte, the header length (u16
//! little-endian in 1.0, u32 in 2.0 and 3.0), an ASCII (3.0: UTF-8) Python dict literal
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 224, 224), }` padded with spaces
//! and a newline, then the data. The reader accepts exactly those three keys, checks every
//! dimension product for overflow and requires the data to fill the rest of the file exactly,
//! so nothing is allocated beyond the file's own size.

use std::path::Path;

use half::f16;

use crate::{Array, ExecError};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Parses `.npy` bytes (`path` names the file in errors).
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<Array, ExecError> {
    let err = |message: String| ExecError::Npy {
        path: path.to_owned(),
        message,
    };
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(err("not a .npy file (no \\x93NUMPY magic)".into()));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, start): (usize, usize) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(err("truncated header length".into()));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        _ => return Err(err(format!("unsupported .npy version {major}.{minor}"))),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            err(format!(
                "header of {header_len} bytes runs past the end of the {}-byte file",
                bytes.len()
            ))
        })?;
    let header = std::str::from_utf8(&bytes[start..end])
        .map_err(|_| err("the header is not text".into()))?;
    let header = parse_header(header).map_err(|m| err(format!("header: {m}")))?;
    let size = match header.descr.as_str() {
        "<f4" | ">f4" | "=f4" => 4,
        "<f2" | ">f2" | "=f2" => 2,
        "<f8" | ">f8" | "=f8" => 8,
        other => {
            return Err(err(format!(
                "dtype `{other}` is not float32, float16 or float64"
            )));
        }
    };
    if header.fortran_order {
        return Err(err(
            "Fortran-order arrays are not read; save with np.ascontiguousarray".into(),
        ));
    }
    let numel = header
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| err(format!("shape {:?} overflows", header.shape)))?;
    let data = &bytes[end..];
    if numel.checked_mul(size) != Some(data.len()) {
        return Err(err(format!(
            "shape {:?} of {} needs {} data bytes, the file has {}",
            header.shape,
            header.descr,
            numel.saturating_mul(size),
            data.len()
        )));
    }
    let big = header.descr.starts_with('>');
    let values: Vec<f32> = match size {
        4 => data
            .chunks_exact(4)
            .map(|c| {
                let b = [c[0], c[1], c[2], c[3]];
                if big {
                    f32::from_be_bytes(b)
                } else {
                    f32::from_le_bytes(b)
                }
            })
            .collect(),
        2 => data
            .chunks_exact(2)
            .map(|c| {
                let b = [c[0], c[1]];
                if big {
                    f16::from_be_bytes(b)
                } else {
                    f16::from_le_bytes(b)
                }
                .to_f32()
            })
            .collect(),
        _ => data
            .chunks_exact(8)
            .map(|c| {
                let b: [u8; 8] = c.try_into().expect("chunk of 8");
                (if big {
                    f64::from_be_bytes(b)
                } else {
                    f64::from_le_bytes(b)
                }) as f32
            })
            .collect(),
    };
    Ok(Array {
        shape: header.shape,
        data: values,
    })
}

/// Reads a `.npy` file (a regular file, checked on the open descriptor).
pub fn read_npy(path: &Path) -> Result<Array, ExecError> {
    let bytes = effnet_io::input::read_regular(path, 1 << 40).map_err(|reason| ExecError::Io {
        path: path.to_owned(),
        reason,
    })?;
    parse_npy(&bytes, path)
}

/// `array` as `.npy` bytes (version 1.0, little-endian float32).
pub fn encode_npy(array: &Array) -> Vec<u8> {
    let dims: Vec<String> = array.shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n', padded to a multiple of 64.
    let total = (10 + header.len() + 1).next_multiple_of(64);
    header.push_str(&" ".repeat(total - 10 - header.len() - 1));
    header.push('\n');
    let mut out = Vec::with_capacity(total + array.data.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in &array.data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// The header dict: exactly the keys `descr`, `fortran_order` and `shape`, in any order.
fn parse_header(text: &str) -> Result<Header, String> {
    let text = text.trim_end_matches(['\n', ' ', '\0']).trim();
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or("not a dict literal")?;
    let mut p = Cursor {
        s: inner.trim(),
        pos: 0,
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.ws();
        if p.done() {
            break;
        }
        let key = p.string()?;
        p.ws();
        p.expect(':')?;
        p.ws();
        match key.as_str() {
            "descr" if descr.is_none() => descr = Some(p.string()?),
            "fortran_order" if fortran.is_none() => fortran = Some(p.boolean()?),
            "shape" if shape.is_none() => shape = Some(p.tuple()?),
            other => return Err(format!("unexpected or repeated key `{other}`")),
        }
        p.ws();
        if p.done() {
            break;
        }
        p.expect(',')?;
    }
    Ok(Header {
        descr: descr.ok_or("no `descr`")?,
        fortran_order: fortran.ok_or("no `fortran_order`")?,
        shape: shape.ok_or("no `shape`")?,
    })
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }
    fn done(&self) -> bool {
        self.pos >= self.s.len()
    }
    fn ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.s.len() - trimmed.len();
    }
    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            Ok(())
        } else {
            Err(format!(
                "expected `{c}` at `{}`",
                self.rest().chars().take(20).collect::<String>()
            ))
        }
    }
    fn string(&mut self) -> Result<String, String> {
        let quote = self.rest().chars().next().ok_or("unexpected end")?;
        if quote != '\'' && quote != '"' {
            return Err("expected a quoted string".into());
        }
        self.pos += 1;
        let len = self.rest().find(quote).ok_or("unterminated string")?;
        let value = self.rest()[..len].to_owned();
        self.pos += len + 1;
        Ok(value)
    }
    fn boolean(&mut self) -> Result<bool, String> {
        for (word, value) in [("True", true), ("False", false)] {
            if self.rest().starts_with(word) {
                self.pos += word.len();
                return Ok(value);
            }
        }
        Err("expected True or False".into())
    }
    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect('(')?;
        let mut dims = Vec::new();
        loop {
            self.ws();
            if self.rest().starts_with(')') {
                self.pos += 1;
                return Ok(dims);
            }
            let digits = self
                .rest()
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if digits == 0 || digits > 19 {
                return Err("expected a dimension".into());
            }
            dims.push(
                self.rest()[..digits]
                    .parse()
                    .map_err(|_| "dimension out of range".to_owned())?,
            );
            self.pos += digits;
            if dims.len() > 32 {
                return Err("more than 32 dimensions".into());
            }
            self.ws();
            if self.rest().starts_with(',') {
                self.pos += 1;
            } else if !self.rest().starts_with(')') {
                return Err("expected `,` or `)` in the shape".into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_other_dtypes() {
        let a = Array {
            shape: vec![2, 3],
            data: vec![1.0, -2.5, 3.25, 0.0, 1e-3, 7.0],
        };
        let bytes = encode_npy(&a);
        assert_eq!((bytes.len() - 24) % 64, 0);
        let b = parse_npy(&bytes, Path::new("t.npy")).unwrap();
        assert_eq!(b.shape, a.shape);
        assert_eq!(b.data, a.data);
        // float64, big-endian float16, a 1-d shape
        let mut f8 = b"\x93NUMPY\x01\x00".to_vec();
        let h = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }\n";
        f8.extend_from_slice(&(h.len() as u16).to_le_bytes());
        f8.extend_from_slice(h.as_bytes());
        f8.extend_from_slice(&0.5f64.to_le_bytes());
        f8.extend_from_slice(&(-4.0f64).to_le_bytes());
        assert_eq!(
            parse_npy(&f8, Path::new("t")).unwrap().data,
            vec![0.5, -4.0]
        );
        let mut f2 = b"\x93NUMPY\x02\x00".to_vec();
        let h = "{'shape': (1, 1), 'fortran_order': False, 'descr': '>f2'}\n";
        f2.extend_from_slice(&(h.len() as u32).to_le_bytes());
        f2.extend_from_slice(h.as_bytes());
        f2.extend_from_slice(&f16::from_f32(1.5).to_be_bytes());
        assert_eq!(parse_npy(&f2, Path::new("t")).unwrap().data, vec![1.5]);
    }

    #[test]
    fn rejects_lies_and_other_dtypes() {
        let good = encode_npy(&Array {
            shape: vec![4],
            data: vec![0.0; 4],
        });
        let bad = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            edit(&mut b);
            parse_npy(&b, Path::new("t")).unwrap_err().to_string()
        };
        assert!(bad(&|b| b.truncate(b.len() - 1)).contains("needs 16 data bytes"));
        assert!(bad(&|b| b[8] = 0xff).contains("past the end"));
        assert!(bad(&|b| b[0] = b'x').contains("magic"));
        let swap = |from: &str, to: &str| {
            let at = good
                .windows(from.len())
                .position(|w| w == from.as_bytes())
                .unwrap();
            let mut b = good[..at].to_vec();
            b.extend_from_slice(to.as_bytes());
            b.extend_from_slice(&good[at + from.len()..]);
            parse_npy(&b, Path::new("t")).map(|_| ())
        };
        assert!(
            swap("<f4", "<i4")
                .unwrap_err()
                .to_string()
                .contains("not float32")
        );
        assert!(
            swap("False", "True ")
                .unwrap_err()
                .to_string()
                .contains("Fortran")
        );
        assert!(swap("(4,)", "(99999999999999999999,)").is_err());
        assert!(swap("'shape'", "'shapf'").is_err());
    }
}
