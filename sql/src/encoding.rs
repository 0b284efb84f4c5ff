//! Byte encodings of values: order-preserving keys and compact rows.
//!
//! **Keys** (primary keys and index entries): byte order equals SQL order, so the engine's
//! B+trees sort rows as SQL does. Each value is a tag byte then a payload; NULL is the tag `0xFF`
//! alone, so NULLs sort last, as in PostgreSQL's default ascending order. Every encoding is
//! self-delimiting, so a composite key is the concatenation of its parts and a prefix of parts
//! is a byte prefix (range scans on the leading columns of an index).
//!
//! | type                  | encoding after the tag `0x02`                                      |
//! |-----------------------|--------------------------------------------------------------------|
//! | bool                  | 0 or 1                                                             |
//! | integers, date, times | i64 in 1 to 9 bytes: a length byte, then the significant bytes (below) |
//! | floats                | f64 bits, sign-flipped (negatives: all bits inverted); NaN last    |
//! | numeric               | 0x01 negative / 0x02 zero / 0x03 positive; exponent u16; digits 1..=10 ended by 0 (negatives: all complemented) |
//! | text, bytea           | bytes with 0x00 escaped as 0x00 0xFF, ended by 0x00 0x00           |
//! | interval              | total microseconds (months as 30 days) as i128, sign flipped       |
//!
//! An integer `v` takes a length byte `0x80 + n` then its `n` significant bytes big-endian when
//! `v >= 0` (0 is `0x80` alone), or `0x7F - n` then its `n` low bytes when `v < 0`, `n` being
//! the significant bytes of `!v` (-1 is `0x7F` alone). Longer positives are larger and longer
//! negatives smaller, so byte order is numeric order, and small numbers (most keys) take 1 to 4
//! bytes instead of 8. Integers of every width share this encoding, so an INTEGER column and a
//! BIGINT value compare as keys.
//!
//! **Rows**: a column count (u16) then, per column, a tag and a fixed-size or length-prefixed
//! payload. Rows shorter than the table (never written by this version) read as NULL-padded.

use rust_decimal::Decimal;

use crate::error::Result;
use crate::value::{DataType, Interval, Value};
use crate::{bail, err};

const KEY_NULL: u8 = 0xFF;
const KEY_VALUE: u8 = 0x02;

/// Appends the order-preserving encoding of `v` to `out`.
pub fn encode_key(v: &Value, out: &mut Vec<u8>) {
    if v.is_null() {
        out.push(KEY_NULL);
        return;
    }
    out.push(KEY_VALUE);
    match v {
        Value::Null => unreachable!("handled above"),
        Value::Bool(b) => out.push(*b as u8),
        Value::Int2(_) | Value::Int4(_) | Value::Int8(_) => {
            encode_int(v.as_i64().expect("integer"), out)
        }
        Value::Date(d) => encode_int(*d as i64, out),
        Value::Timestamp(t) | Value::TimestampTz(t) => encode_int(*t, out),
        Value::Float4(f) => encode_f64(*f as f64, out),
        Value::Float8(f) => encode_f64(*f, out),
        Value::Numeric(d) => encode_decimal(d, out),
        Value::Text(s) => encode_bytes(s.as_bytes(), out),
        Value::Bytea(b) => encode_bytes(b, out),
        Value::Interval(i) => {
            let t = i.total_micros() ^ (1i128 << 127);
            out.extend_from_slice(&t.to_be_bytes());
        }
    }
}

/// The key encoding of several values.
pub fn key_of(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 9);
    for v in values {
        encode_key(v, &mut out);
    }
    out
}

/// True for the types whose key encoding gives the value back exactly ([`decode_key`]); the
/// others lose something (a numeric's trailing zeros, an interval's months, a float's -0).
pub fn key_decodes(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Bool
            | DataType::Int2
            | DataType::Int4
            | DataType::Int8
            | DataType::Date
            | DataType::Timestamp
            | DataType::TimestampTz
            | DataType::Text
            | DataType::Varchar(_)
            | DataType::Bytea
    )
}

/// Decodes the key-encoded value of type `ty` at the start of `key` and moves past it. Only
/// for types where [`key_decodes`] holds.
pub fn decode_key(key: &mut &[u8], ty: &DataType) -> Result<Value> {
    let corrupt = || err!(DATA_CORRUPTED, "index key does not decode as {ty}");
    let (&tag, rest) = key.split_first().ok_or_else(corrupt)?;
    *key = rest;
    if tag == KEY_NULL {
        return Ok(Value::Null);
    }
    if tag != KEY_VALUE {
        return Err(corrupt());
    }
    let int = |key: &mut &[u8]| decode_int(key).ok_or_else(corrupt);
    Ok(match ty {
        DataType::Bool => {
            let (&b, rest) = key.split_first().ok_or_else(corrupt)?;
            *key = rest;
            Value::Bool(b != 0)
        }
        DataType::Int2 => Value::Int2(int(key)?.try_into().map_err(|_| corrupt())?),
        DataType::Int4 => Value::Int4(int(key)?.try_into().map_err(|_| corrupt())?),
        DataType::Int8 => Value::Int8(int(key)?),
        DataType::Date => Value::Date(int(key)?.try_into().map_err(|_| corrupt())?),
        DataType::Timestamp => Value::Timestamp(int(key)?),
        DataType::TimestampTz => Value::TimestampTz(int(key)?),
        DataType::Text | DataType::Varchar(_) | DataType::Bytea => {
            let mut bytes = Vec::new();
            let mut i = 0;
            loop {
                match (key.get(i), key.get(i + 1)) {
                    (Some(0), Some(0)) => break,
                    (Some(0), Some(0xFF)) => {
                        bytes.push(0);
                        i += 2;
                    }
                    (Some(&c), _) if c != 0 => {
                        bytes.push(c);
                        i += 1;
                    }
                    _ => return Err(corrupt()),
                }
            }
            *key = &key[i + 2..];
            if *ty == DataType::Bytea {
                Value::Bytea(bytes)
            } else {
                Value::Text(String::from_utf8(bytes).map_err(|_| corrupt())?)
            }
        }
        _ => bail!(
            INTERNAL_ERROR,
            "values of type {ty} cannot be read back from an index key"
        ),
    })
}

/// Appends the variable-length, order-preserving encoding of an integer (see the module doc).
fn encode_int(v: i64, out: &mut Vec<u8>) {
    let bytes = v.to_be_bytes();
    if v >= 0 {
        let n = 8 - (v.leading_zeros() / 8) as usize;
        out.push(0x80 + n as u8);
        out.extend_from_slice(&bytes[8 - n..]);
    } else {
        let n = 8 - ((!v).leading_zeros() / 8) as usize;
        out.push(0x7F - n as u8);
        out.extend_from_slice(&bytes[8 - n..]);
    }
}

/// Decodes an `encode_int` at the start of `key` and moves past it; None if it is malformed.
fn decode_int(key: &mut &[u8]) -> Option<i64> {
    let (&len, rest) = key.split_first()?;
    let (negative, n) = match len {
        0x80..=0x88 => (false, (len - 0x80) as usize),
        0x77..=0x7F => (true, (0x7F - len) as usize),
        _ => return None,
    };
    let body = rest.get(..n)?;
    let mut v: i64 = if negative { -1 } else { 0 };
    for &b in body {
        v = (v << 8) | b as i64;
    }
    // Eight bytes replace the sign entirely; they must agree with the length byte.
    if (v < 0) != negative {
        return None;
    }
    *key = &rest[n..];
    Some(v)
}

fn encode_f64(f: f64, out: &mut Vec<u8>) {
    let f = if f.is_nan() {
        f64::NAN
    } else if f == 0.0 {
        0.0
    } else {
        f
    };
    let bits = f.to_bits();
    let b = if bits >> 63 == 1 {
        !bits
    } else {
        bits ^ (1 << 63)
    };
    out.extend_from_slice(&b.to_be_bytes());
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    for &c in b {
        out.push(c);
        if c == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

fn encode_decimal(d: &Decimal, out: &mut Vec<u8>) {
    if d.is_zero() {
        out.push(0x02);
        return;
    }
    let m = d.mantissa().unsigned_abs().to_string();
    let trimmed = m.trim_end_matches('0');
    // Value = 0.d1d2d3... x 10^exp
    let exp = m.len() as i32 - d.scale() as i32;
    let mut body = Vec::with_capacity(trimmed.len() + 3);
    body.extend_from_slice(&((exp + 0x8000) as u16).to_be_bytes());
    for c in trimmed.bytes() {
        body.push(c - b'0' + 1);
    }
    body.push(0);
    if d.is_sign_negative() {
        out.push(0x01);
        out.extend(body.iter().map(|b| !b));
    } else {
        out.push(0x03);
        out.extend_from_slice(&body);
    }
}

// ---------------------------------------------------------------------------------------------
// Rows

const T_NULL: u8 = 0;
const T_FALSE: u8 = 1;
const T_TRUE: u8 = 2;
const T_INT2: u8 = 3;
const T_INT4: u8 = 4;
const T_INT8: u8 = 5;
const T_FLOAT4: u8 = 6;
const T_FLOAT8: u8 = 7;
const T_NUMERIC: u8 = 8;
const T_TEXT: u8 = 9;
const T_BYTEA: u8 = 10;
const T_DATE: u8 = 11;
const T_TIMESTAMP: u8 = 12;
const T_TIMESTAMPTZ: u8 = 13;
const T_INTERVAL: u8 = 14;

fn put_len(n: usize, out: &mut Vec<u8>) {
    // LEB128.
    let mut n = n as u64;
    loop {
        let b = (n & 0x7F) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Encodes a row.
pub fn encode_row(row: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + row.len() * 6);
    out.extend_from_slice(&(row.len() as u16).to_le_bytes());
    for v in row {
        match v {
            Value::Null => out.push(T_NULL),
            Value::Bool(false) => out.push(T_FALSE),
            Value::Bool(true) => out.push(T_TRUE),
            Value::Int2(i) => {
                out.push(T_INT2);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Int4(i) => {
                out.push(T_INT4);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Int8(i) => {
                out.push(T_INT8);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Float4(f) => {
                out.push(T_FLOAT4);
                out.extend_from_slice(&f.to_le_bytes());
            }
            Value::Float8(f) => {
                out.push(T_FLOAT8);
                out.extend_from_slice(&f.to_le_bytes());
            }
            Value::Numeric(d) => {
                out.push(T_NUMERIC);
                out.extend_from_slice(&d.serialize());
            }
            Value::Text(s) => {
                out.push(T_TEXT);
                put_len(s.len(), &mut out);
                out.extend_from_slice(s.as_bytes());
            }
            Value::Bytea(b) => {
                out.push(T_BYTEA);
                put_len(b.len(), &mut out);
                out.extend_from_slice(b);
            }
            Value::Date(d) => {
                out.push(T_DATE);
                out.extend_from_slice(&d.to_le_bytes());
            }
            Value::Timestamp(t) => {
                out.push(T_TIMESTAMP);
                out.extend_from_slice(&t.to_le_bytes());
            }
            Value::TimestampTz(t) => {
                out.push(T_TIMESTAMPTZ);
                out.extend_from_slice(&t.to_le_bytes());
            }
            Value::Interval(i) => {
                out.push(T_INTERVAL);
                out.extend_from_slice(&i.months.to_le_bytes());
                out.extend_from_slice(&i.days.to_le_bytes());
                out.extend_from_slice(&i.micros.to_le_bytes());
            }
        }
    }
    out
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.pos + n > self.b.len() {
            bail!(
                DATA_CORRUPTED,
                "row encoding is truncated at byte {}",
                self.pos
            );
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("invariant: N bytes"))
    }
    fn len(&mut self) -> Result<usize> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            n |= ((b & 0x7F) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(n as usize);
            }
        }
        bail!(DATA_CORRUPTED, "row encoding has a bad length")
    }
}

/// Decodes a row of a table with `width` columns.
pub fn decode_row(bytes: &[u8], width: usize) -> Result<Vec<Value>> {
    decode_columns(bytes, width, None)
}

/// Decodes a row, only the columns `wanted` marks (all if None): the others are NULL, their
/// bytes skipped unread.
pub fn decode_columns(bytes: &[u8], width: usize, wanted: Option<&[bool]>) -> Result<Vec<Value>> {
    let mut r = Reader { b: bytes, pos: 0 };
    let n = u16::from_le_bytes(r.arr()?) as usize;
    let mut row = Vec::with_capacity(width.max(n));
    for i in 0..n {
        let tag = r.take(1)?[0];
        if wanted.is_some_and(|w| !w.get(i).copied().unwrap_or(false)) {
            let skip = match tag {
                T_NULL | T_FALSE | T_TRUE => 0,
                T_INT2 => 2,
                T_INT4 | T_FLOAT4 | T_DATE => 4,
                T_INT8 | T_FLOAT8 | T_TIMESTAMP | T_TIMESTAMPTZ => 8,
                T_NUMERIC | T_INTERVAL => 16,
                T_TEXT | T_BYTEA => r.len()?,
                t => bail!(DATA_CORRUPTED, "row holds an unknown value tag {t}"),
            };
            r.take(skip)?;
            row.push(Value::Null);
            continue;
        }
        row.push(match tag {
            T_NULL => Value::Null,
            T_FALSE => Value::Bool(false),
            T_TRUE => Value::Bool(true),
            T_INT2 => Value::Int2(i16::from_le_bytes(r.arr()?)),
            T_INT4 => Value::Int4(i32::from_le_bytes(r.arr()?)),
            T_INT8 => Value::Int8(i64::from_le_bytes(r.arr()?)),
            T_FLOAT4 => Value::Float4(f32::from_le_bytes(r.arr()?)),
            T_FLOAT8 => Value::Float8(f64::from_le_bytes(r.arr()?)),
            T_NUMERIC => Value::Numeric(Decimal::deserialize(r.arr()?)),
            T_TEXT => {
                let len = r.len()?;
                let s = r.take(len)?;
                Value::Text(
                    String::from_utf8(s.to_vec())
                        .map_err(|_| err!(DATA_CORRUPTED, "row holds text that is not UTF-8"))?,
                )
            }
            T_BYTEA => {
                let len = r.len()?;
                Value::Bytea(r.take(len)?.to_vec())
            }
            T_DATE => Value::Date(i32::from_le_bytes(r.arr()?)),
            T_TIMESTAMP => Value::Timestamp(i64::from_le_bytes(r.arr()?)),
            T_TIMESTAMPTZ => Value::TimestampTz(i64::from_le_bytes(r.arr()?)),
            T_INTERVAL => Value::Interval(Interval {
                months: i32::from_le_bytes(r.arr()?),
                days: i32::from_le_bytes(r.arr()?),
                micros: i64::from_le_bytes(r.arr()?),
            }),
            t => bail!(DATA_CORRUPTED, "row holds an unknown value tag {t}"),
        });
    }
    row.resize(width.max(n), Value::Null);
    row.truncate(width);
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(v: Value) -> Vec<u8> {
        key_of(&[v])
    }

    #[test]
    fn keys_decode_to_their_values() {
        let cases = [
            (Value::Bool(true), DataType::Bool),
            (Value::Int2(-3), DataType::Int2),
            (Value::Int4(i32::MIN), DataType::Int4),
            (Value::Int8(i64::MAX), DataType::Int8),
            (Value::Date(-7), DataType::Date),
            (Value::Timestamp(1_700_000_000_000_000), DataType::Timestamp),
            (Value::TimestampTz(-1), DataType::TimestampTz),
            (Value::Text("a\0b\u{e9}".into()), DataType::Text),
            (Value::Text(String::new()), DataType::Varchar(Some(3))),
            (Value::Bytea(vec![0, 0xFF, 0, 1]), DataType::Bytea),
            (Value::Null, DataType::Int4),
        ];
        let mut key = Vec::new();
        for (v, _) in &cases {
            encode_key(v, &mut key);
        }
        let mut rest = key.as_slice();
        for (v, ty) in &cases {
            assert!(key_decodes(ty));
            assert_eq!(decode_key(&mut rest, ty).unwrap(), *v, "{ty}");
        }
        assert!(rest.is_empty());
        assert!(decode_key(&mut &[KEY_VALUE, 1, 2][..], &DataType::Int8).is_err());
        assert!(!key_decodes(&DataType::Numeric(None)));
    }

    #[test]
    fn decoding_some_columns_skips_the_others_exactly() {
        let row = vec![
            Value::Text("skipped text".into()),
            Value::Int4(7),
            Value::Numeric(Decimal::new(12345, 2)),
            Value::Null,
            Value::Interval(Interval {
                months: 1,
                days: 2,
                micros: 3,
            }),
            Value::Bytea(vec![1, 2, 3]),
            Value::Text("kept".into()),
            Value::Bool(true),
            Value::Int8(-9),
        ];
        let bytes = encode_row(&row);
        assert_eq!(decode_row(&bytes, row.len()).unwrap(), row);
        for mask in 0u32..(1 << row.len()) {
            let wanted: Vec<bool> = (0..row.len()).map(|i| mask & (1 << i) != 0).collect();
            let got = decode_columns(&bytes, row.len(), Some(&wanted)).unwrap();
            for (i, v) in got.iter().enumerate() {
                let want = if wanted[i] {
                    row[i].clone()
                } else {
                    Value::Null
                };
                assert_eq!(*v, want, "mask {mask:b}, column {i}");
            }
        }
    }

    #[test]
    fn integer_keys_order_numerically_round_trip_and_stay_short() {
        let mut ints = vec![i64::MIN, i64::MAX, 0, -1, 1];
        for n in 0..8 {
            let p = 1i64 << (8 * n);
            for v in [p - 1, p, p + 1, -p - 1, -p, -p + 1, p.wrapping_mul(127)] {
                ints.push(v);
            }
        }
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ints.push((x as i64) >> (x % 64)); // values of every magnitude
        }
        ints.sort_unstable();
        ints.dedup();
        for w in ints.windows(2) {
            assert!(
                k(Value::Int8(w[0])) < k(Value::Int8(w[1])),
                "{} < {}",
                w[0],
                w[1]
            );
        }
        for &v in &ints {
            let key = k(Value::Int8(v));
            let mut rest = key.as_slice();
            assert_eq!(
                decode_key(&mut rest, &DataType::Int8).unwrap(),
                Value::Int8(v)
            );
            assert!(rest.is_empty());
        }
        assert_eq!(k(Value::Int4(0)).len(), 2);
        assert_eq!(k(Value::Int4(100)).len(), 3);
        assert_eq!(k(Value::Int4(-100)).len(), 3);
        assert_eq!(k(Value::Int4(100_000)).len(), 5);
        assert_eq!(k(Value::Int8(i64::MIN)).len(), 10);
        // Widths share one encoding, so keys of different integer types compare.
        assert_eq!(k(Value::Int2(-3)), k(Value::Int8(-3)));
        // A length byte out of range, a short body, or eight bytes whose sign contradicts the
        // length byte do not decode.
        for bad in [
            &[KEY_VALUE, 0x89][..],
            &[KEY_VALUE, 0x82, 1],
            &[KEY_VALUE, 0x88, 0x80, 0, 0, 0, 0, 0, 0, 0],
        ] {
            assert!(
                decode_key(&mut &bad[..], &DataType::Int8).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn key_order_is_sql_order() {
        let ints = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        for w in ints.windows(2) {
            assert!(k(Value::Int8(w[0])) < k(Value::Int8(w[1])));
        }
        let floats = [
            f64::NEG_INFINITY,
            -2.5,
            -0.1,
            0.0,
            1e-9,
            3.0,
            f64::INFINITY,
            f64::NAN,
        ];
        for w in floats.windows(2) {
            assert!(
                k(Value::Float8(w[0])) < k(Value::Float8(w[1])),
                "{} < {}",
                w[0],
                w[1]
            );
        }
        let d = |s: &str| Value::Numeric(Decimal::from_str_exact(s).unwrap());
        let nums = [
            "-100", "-12", "-1.5", "-1", "-0.01", "0", "0.001", "0.5", "1", "1.05", "9.99", "10",
            "12",
        ];
        for w in nums.windows(2) {
            assert!(k(d(w[0])) < k(d(w[1])), "{} < {}", w[0], w[1]);
        }
        assert_eq!(k(d("1.50")), k(d("1.5")));
        let texts = ["", "\0", "\0a", "a", "a\0", "ab", "b"];
        for w in texts.windows(2) {
            assert!(k(Value::Text(w[0].into())) < k(Value::Text(w[1].into())));
        }
        assert!(k(Value::Int8(i64::MAX)) < k(Value::Null));
        // Composite keys: the first column decides.
        assert!(
            key_of(&[Value::Text("a".into()), Value::Int4(9)])
                < key_of(&[Value::Text("ab".into()), Value::Int4(1)])
        );
    }

    #[test]
    fn rows_round_trip() {
        let row = vec![
            Value::Null,
            Value::Bool(true),
            Value::Int2(-3),
            Value::Int4(70000),
            Value::Int8(-1 << 40),
            Value::Float4(1.5),
            Value::Float8(-0.25),
            Value::Numeric(Decimal::from_str_exact("-12.340").unwrap()),
            Value::Text("héllo".into()),
            Value::Bytea(vec![0, 1, 255]),
            Value::Date(-3),
            Value::Timestamp(123),
            Value::TimestampTz(-456),
            Value::Interval(Interval {
                months: 1,
                days: -2,
                micros: 3,
            }),
        ];
        let back = decode_row(&encode_row(&row), row.len()).unwrap();
        assert_eq!(format!("{row:?}"), format!("{back:?}"));
        // Wider schema: padded with NULLs; damaged bytes: an error, not a panic.
        assert_eq!(decode_row(&encode_row(&row[..2]), 3).unwrap().len(), 3);
        let enc = encode_row(&row);
        for cut in 0..enc.len() {
            let _ = decode_row(&enc[..cut], row.len());
        }
    }
}
