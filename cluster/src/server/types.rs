//! Values on the wire: PostgreSQL's text and binary formats for Strata's types.
//!
//! Text format is what `Value::to_text` prints (PostgreSQL's output functions). Binary format
//! follows PostgreSQL's `send`/`recv` functions: big-endian integers and floats, dates as days
//! and timestamps as microseconds since 2000-01-01, intervals as (micros, days, months),
//! numerics as base-10000 digit groups. Decoding never panics: malformed input is a 22P03
//! (invalid_binary_representation) or 22P02 error.

use strata_sql::value::{parse_as, Interval};
use strata_sql::{DataType, Error, Result, Value};

/// Days from 1970-01-01 (Strata's epoch) to 2000-01-01 (PostgreSQL's).
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS as i64 * 86_400_000_000;

const INVALID_BINARY: &str = "22P03";

/// The Strata type for a parameter type OID sent by a client (0 or an unknown OID: inferred).
pub fn type_of_oid(oid: u32) -> DataType {
    match oid {
        16 => DataType::Bool,
        17 => DataType::Bytea,
        20 => DataType::Int8,
        21 => DataType::Int2,
        23 => DataType::Int4,
        25 | 19 | 705 => DataType::Text,
        700 => DataType::Float4,
        701 => DataType::Float8,
        1042 => DataType::Char(1),
        1043 => DataType::Varchar(None),
        1082 => DataType::Date,
        1114 => DataType::Timestamp,
        1184 => DataType::TimestampTz,
        1186 => DataType::Interval,
        1700 => DataType::Numeric(None),
        _ => DataType::Unknown,
    }
}

/// The type size column of a RowDescription (-1: variable length).
pub fn type_size(ty: &DataType) -> i16 {
    match ty {
        DataType::Bool => 1,
        DataType::Int2 => 2,
        DataType::Int4 | DataType::Float4 | DataType::Date => 4,
        DataType::Int8 | DataType::Float8 | DataType::Timestamp | DataType::TimestampTz => 8,
        DataType::Interval => 16,
        _ => -1,
    }
}

/// The type modifier column of a RowDescription (-1: none), as PostgreSQL computes it.
pub fn type_modifier(ty: &DataType) -> i32 {
    match ty {
        DataType::Varchar(Some(n)) => *n as i32 + 4,
        DataType::Char(n) => *n as i32 + 4,
        DataType::Numeric(Some((p, s))) => (((*p as i32) << 16) | *s as i32) + 4,
        _ => -1,
    }
}

/// Encodes a non-null value in text format.
pub fn encode_text(v: &Value) -> Option<Vec<u8>> {
    v.to_text().map(String::into_bytes)
}

/// Encodes a value in binary format as a column of type `ty` (None for NULL).
pub fn encode_binary(v: &Value, ty: &DataType) -> Result<Option<Vec<u8>>> {
    if v.is_null() {
        return Ok(None);
    }
    let same = v.data_type() == *ty
        || matches!(ty, DataType::Unknown)
        || (ty.is_text() && matches!(v, Value::Text(_)));
    let v = if same {
        v.clone()
    } else {
        strata_sql::value::cast(v.clone(), ty)?
    };
    Ok(Some(match v {
        Value::Null => return Ok(None),
        Value::Bool(b) => vec![b as u8],
        Value::Int2(i) => i.to_be_bytes().to_vec(),
        Value::Int4(i) => i.to_be_bytes().to_vec(),
        Value::Int8(i) => i.to_be_bytes().to_vec(),
        Value::Float4(f) => f.to_bits().to_be_bytes().to_vec(),
        Value::Float8(f) => f.to_bits().to_be_bytes().to_vec(),
        Value::Text(s) => s.into_bytes(),
        Value::Bytea(b) => b,
        Value::Date(d) => d.wrapping_sub(PG_EPOCH_DAYS).to_be_bytes().to_vec(),
        Value::Timestamp(t) | Value::TimestampTz(t) => {
            t.wrapping_sub(PG_EPOCH_MICROS).to_be_bytes().to_vec()
        }
        Value::Interval(i) => {
            let mut out = Vec::with_capacity(16);
            out.extend_from_slice(&i.micros.to_be_bytes());
            out.extend_from_slice(&i.days.to_be_bytes());
            out.extend_from_slice(&i.months.to_be_bytes());
            out
        }
        Value::Numeric(d) => encode_numeric(&d.to_string()),
    }))
}

/// PostgreSQL's binary numeric from a plain decimal string (`-12.3400`).
fn encode_numeric(text: &str) -> Vec<u8> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    let int_part = int_part.trim_start_matches('0');
    let dscale = frac_part.len() as i16;
    // Integer digits grouped by 4 from the right, fraction digits by 4 from the left.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let int_digits: String = "0".repeat(int_pad) + int_part;
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let frac_digits: String = frac_part.to_string() + &"0".repeat(frac_pad);
    let group = |s: &str| -> Vec<i16> {
        s.as_bytes()
            .chunks(4)
            .map(|c| {
                c.iter()
                    .fold(0i16, |acc, d| acc * 10 + (d.wrapping_sub(b'0') as i16))
            })
            .collect()
    };
    let int_groups = group(&int_digits);
    let frac_groups = group(&frac_digits);
    let mut weight = int_groups.len() as i16 - 1;
    let mut all: Vec<i16> = int_groups.into_iter().chain(frac_groups).collect();
    // Strip leading zero groups (each lowers the weight) and trailing zero groups.
    let leading = all.iter().take_while(|g| **g == 0).count();
    all.drain(..leading);
    weight -= leading as i16;
    while all.last() == Some(&0) {
        all.pop();
    }
    if all.is_empty() {
        weight = 0;
    }
    let sign: u16 = if negative && !all.is_empty() {
        0x4000
    } else {
        0
    };
    let mut out = Vec::with_capacity(8 + 2 * all.len());
    out.extend_from_slice(&(all.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in all {
        out.extend_from_slice(&g.to_be_bytes());
    }
    out
}

fn binary_error(ty: &DataType) -> Error {
    Error::new(
        INVALID_BINARY,
        format!("incorrect binary data format in bind parameter of type {ty}"),
    )
}

fn fixed<const N: usize>(data: &[u8], ty: &DataType) -> Result<[u8; N]> {
    data.try_into().map_err(|_| binary_error(ty))
}

/// Decodes a parameter sent in binary format as type `ty`.
pub fn decode_binary(data: &[u8], ty: &DataType) -> Result<Value> {
    Ok(match ty {
        DataType::Bool => Value::Bool(fixed::<1>(data, ty)?[0] != 0),
        DataType::Int2 => Value::Int2(i16::from_be_bytes(fixed(data, ty)?)),
        DataType::Int4 => Value::Int4(i32::from_be_bytes(fixed(data, ty)?)),
        DataType::Int8 => Value::Int8(i64::from_be_bytes(fixed(data, ty)?)),
        DataType::Float4 => Value::Float4(f32::from_bits(u32::from_be_bytes(fixed(data, ty)?))),
        DataType::Float8 => Value::Float8(f64::from_bits(u64::from_be_bytes(fixed(data, ty)?))),
        DataType::Bytea => Value::Bytea(data.to_vec()),
        DataType::Date => {
            Value::Date(i32::from_be_bytes(fixed(data, ty)?).wrapping_add(PG_EPOCH_DAYS))
        }
        DataType::Timestamp => {
            Value::Timestamp(i64::from_be_bytes(fixed(data, ty)?).wrapping_add(PG_EPOCH_MICROS))
        }
        DataType::TimestampTz => {
            Value::TimestampTz(i64::from_be_bytes(fixed(data, ty)?).wrapping_add(PG_EPOCH_MICROS))
        }
        DataType::Interval => {
            let b: [u8; 16] = fixed(data, ty)?;
            Value::Interval(Interval {
                micros: i64::from_be_bytes(b[0..8].try_into().map_err(|_| binary_error(ty))?),
                days: i32::from_be_bytes(b[8..12].try_into().map_err(|_| binary_error(ty))?),
                months: i32::from_be_bytes(b[12..16].try_into().map_err(|_| binary_error(ty))?),
            })
        }
        DataType::Numeric(_) => {
            let text = decode_numeric(data).ok_or_else(|| binary_error(ty))?;
            parse_as(&text, ty)?
        }
        DataType::Text | DataType::Varchar(_) | DataType::Char(_) | DataType::Unknown => {
            let s = std::str::from_utf8(data)
                .map_err(|_| Error::new("22021", "invalid byte sequence for encoding \"UTF8\""))?;
            if matches!(ty, DataType::Unknown) {
                Value::Text(s.to_string())
            } else {
                parse_as(s, ty)?
            }
        }
    })
}

/// PostgreSQL's binary numeric as a decimal string.
fn decode_numeric(data: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<i16> {
        Some(i16::from_be_bytes(data.get(i..i + 2)?.try_into().ok()?))
    };
    let ndigits = usize::try_from(word(0)?).ok()?;
    let weight = word(2)? as i32;
    let sign = word(4)? as u16;
    let dscale = usize::try_from(word(6)?).ok()?;
    if sign == 0xC000 {
        return Some("NaN".into());
    }
    let digits: Vec<i16> = (0..ndigits)
        .map(|i| word(8 + 2 * i))
        .collect::<Option<_>>()?;
    if digits.iter().any(|d| !(0..10_000).contains(d)) {
        return None;
    }
    let group = |pos: i32| -> i16 {
        // Digit group with weight `pos` (10000^pos).
        let idx = weight - pos;
        if idx >= 0 && (idx as usize) < digits.len() {
            digits[idx as usize]
        } else {
            0
        }
    };
    let mut int_part = String::new();
    for pos in (0..=weight.max(0)).rev() {
        int_part.push_str(&format!("{:04}", group(pos)));
    }
    let int_part = int_part.trim_start_matches('0');
    let int_part = if int_part.is_empty() { "0" } else { int_part };
    let mut frac = String::new();
    let mut pos = -1;
    while frac.len() < dscale {
        frac.push_str(&format!("{:04}", group(pos)));
        pos -= 1;
    }
    frac.truncate(dscale);
    let sign = if sign == 0x4000 { "-" } else { "" };
    Some(if frac.is_empty() {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        decode_numeric(&encode_numeric(text)).expect("decodes")
    }

    #[test]
    fn numerics_round_trip() {
        for t in [
            "0",
            "1",
            "-1",
            "12.34",
            "-0.0001",
            "10000",
            "123456789.987654321",
            "0.50",
            "100.00",
        ] {
            assert_eq!(round_trip(t), t, "{t}");
        }
    }

    #[test]
    fn numeric_layout_matches_postgres() {
        // 12.34: ndigits 2, weight 0, sign +, dscale 2, digits [12, 3400].
        assert_eq!(
            encode_numeric("12.34"),
            vec![0, 2, 0, 0, 0, 0, 0, 2, 0, 12, 0x0d, 0x48]
        );
    }

    #[test]
    fn bad_binary_is_an_error() {
        assert!(decode_binary(&[1, 2, 3], &DataType::Int4).is_err());
        assert!(decode_binary(&[0xff], &DataType::Numeric(None)).is_err());
        assert!(decode_binary(&[0xff, 0xfe], &DataType::Text).is_err());
    }

    #[test]
    fn dates_use_the_2000_epoch() {
        let v = Value::Date(PG_EPOCH_DAYS);
        assert_eq!(
            encode_binary(&v, &DataType::Date).unwrap(),
            Some(vec![0, 0, 0, 0])
        );
        assert_eq!(
            decode_binary(&[0, 0, 0, 0], &DataType::Date).unwrap(),
            Value::Date(PG_EPOCH_DAYS)
        );
    }
}
