//! SQL values and types with PostgreSQL's semantics: integer overflow is an error (22003),
//! integer division truncates, NUMERIC is exact, floats print in the shortest form that reads
//! back to the same value, text compares by bytes (the C collation).
//!
//! `Value` is what rows hold. `DataType` is what columns and expressions have. `Value::Null` has
//! no type of its own; an expression's type says what a NULL of it would be.

use std::cmp::Ordering;
use std::fmt;

use rust_decimal::prelude::*;
use rust_decimal::Decimal;

use crate::datetime;
use crate::error::Result;
use crate::{bail, err};

/// A column or expression type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DataType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// NUMERIC(precision, scale); None = unconstrained.
    Numeric(Option<(u32, u32)>),
    Text,
    /// VARCHAR(n); None = no limit.
    Varchar(Option<u32>),
    /// CHAR(n), blank-padded.
    Char(u32),
    Bytea,
    Date,
    Timestamp,
    TimestampTz,
    Interval,
    /// The type of a bare NULL or of a string literal not yet resolved by context.
    Unknown,
}

impl DataType {
    pub fn is_integer(&self) -> bool {
        matches!(self, DataType::Int2 | DataType::Int4 | DataType::Int8)
    }
    pub fn is_numeric(&self) -> bool {
        self.is_integer()
            || matches!(
                self,
                DataType::Float4 | DataType::Float8 | DataType::Numeric(_)
            )
    }
    pub fn is_text(&self) -> bool {
        matches!(
            self,
            DataType::Text | DataType::Varchar(_) | DataType::Char(_)
        )
    }
    pub fn is_temporal(&self) -> bool {
        matches!(
            self,
            DataType::Date | DataType::Timestamp | DataType::TimestampTz
        )
    }

    /// The rank used to pick the common type of two numeric types (PostgreSQL's preferred
    /// type order: int2 < int4 < int8 < numeric < float4 < float8).
    fn numeric_rank(&self) -> u8 {
        match self {
            DataType::Int2 => 1,
            DataType::Int4 => 2,
            DataType::Int8 => 3,
            DataType::Numeric(_) => 4,
            DataType::Float4 => 5,
            DataType::Float8 => 6,
            _ => 0,
        }
    }

    /// The type both sides of a comparison, a UNION column or a CASE branch convert to.
    pub fn common(a: &DataType, b: &DataType) -> Option<DataType> {
        use DataType::*;
        if a == b {
            return Some(a.clone());
        }
        Some(match (a, b) {
            (Unknown, t) | (t, Unknown) => {
                if *t == Unknown {
                    Text
                } else {
                    t.clone()
                }
            }
            (x, y) if x.is_numeric() && y.is_numeric() => {
                let t = if x.numeric_rank() >= y.numeric_rank() {
                    x
                } else {
                    y
                };
                match t {
                    Numeric(_) => Numeric(None),
                    t => t.clone(),
                }
            }
            (x, y) if x.is_text() && y.is_text() => Text,
            (Date, Timestamp) | (Timestamp, Date) => Timestamp,
            (Date | Timestamp, TimestampTz) | (TimestampTz, Date | Timestamp) => TimestampTz,
            _ => return None,
        })
    }

    /// PostgreSQL's name, as `format_type` prints it.
    pub fn name(&self) -> String {
        match self {
            DataType::Bool => "boolean".into(),
            DataType::Int2 => "smallint".into(),
            DataType::Int4 => "integer".into(),
            DataType::Int8 => "bigint".into(),
            DataType::Float4 => "real".into(),
            DataType::Float8 => "double precision".into(),
            DataType::Numeric(None) => "numeric".into(),
            DataType::Numeric(Some((p, s))) => format!("numeric({p},{s})"),
            DataType::Text => "text".into(),
            DataType::Varchar(None) => "character varying".into(),
            DataType::Varchar(Some(n)) => format!("character varying({n})"),
            DataType::Char(n) => format!("character({n})"),
            DataType::Bytea => "bytea".into(),
            DataType::Date => "date".into(),
            DataType::Timestamp => "timestamp without time zone".into(),
            DataType::TimestampTz => "timestamp with time zone".into(),
            DataType::Interval => "interval".into(),
            DataType::Unknown => "unknown".into(),
        }
    }

    /// The PostgreSQL type OID (for the wire protocol and pg_catalog).
    pub fn oid(&self) -> u32 {
        match self {
            DataType::Bool => 16,
            DataType::Bytea => 17,
            DataType::Int8 => 20,
            DataType::Int2 => 21,
            DataType::Int4 => 23,
            DataType::Text => 25,
            DataType::Float4 => 700,
            DataType::Float8 => 701,
            DataType::Unknown => 705,
            DataType::Char(_) => 1042,
            DataType::Varchar(_) => 1043,
            DataType::Date => 1082,
            DataType::Timestamp => 1114,
            DataType::TimestampTz => 1184,
            DataType::Interval => 1186,
            DataType::Numeric(_) => 1700,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// An interval as PostgreSQL keeps it: months, days and microseconds, kept apart because a month
/// has no fixed number of days and a day no fixed number of seconds (DST).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Interval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

impl Interval {
    /// The span in microseconds, a month counted as 30 days (PostgreSQL's comparison rule).
    pub fn total_micros(&self) -> i128 {
        (self.months as i128 * 30 + self.days as i128) * 86_400_000_000 + self.micros as i128
    }
}

/// A SQL value.
#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    Int2(i16),
    Int4(i32),
    Int8(i64),
    Float4(f32),
    Float8(f64),
    Numeric(Decimal),
    Text(String),
    Bytea(Vec<u8>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01 00:00:00 (no time zone).
    Timestamp(i64),
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    TimestampTz(i64),
    Interval(Interval),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The type of a non-null value (Unknown for NULL).
    pub fn data_type(&self) -> DataType {
        match self {
            Value::Null => DataType::Unknown,
            Value::Bool(_) => DataType::Bool,
            Value::Int2(_) => DataType::Int2,
            Value::Int4(_) => DataType::Int4,
            Value::Int8(_) => DataType::Int8,
            Value::Float4(_) => DataType::Float4,
            Value::Float8(_) => DataType::Float8,
            Value::Numeric(_) => DataType::Numeric(None),
            Value::Text(_) => DataType::Text,
            Value::Bytea(_) => DataType::Bytea,
            Value::Date(_) => DataType::Date,
            Value::Timestamp(_) => DataType::Timestamp,
            Value::TimestampTz(_) => DataType::TimestampTz,
            Value::Interval(_) => DataType::Interval,
        }
    }

    /// The value as i64, for any integer type.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int2(v) => Some(v as i64),
            Value::Int4(v) => Some(v as i64),
            Value::Int8(v) => Some(v),
            _ => None,
        }
    }

    /// The value as f64, for any numeric type.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float4(v) => Some(*v as f64),
            Value::Float8(v) => Some(*v),
            Value::Numeric(d) => d.to_f64(),
            v => v.as_i64().map(|i| i as f64),
        }
    }

    /// The value as an exact decimal, for integer and numeric types.
    pub fn as_decimal(&self) -> Option<Decimal> {
        match self {
            Value::Numeric(d) => Some(*d),
            v => v.as_i64().map(Decimal::from),
        }
    }

    /// SQL truth: NULL is unknown (None).
    pub fn truth(&self) -> Result<Option<bool>> {
        match self {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(*b)),
            other => bail!(
                DATATYPE_MISMATCH,
                "argument of WHERE/CASE must be type boolean, not type {}",
                other.data_type()
            ),
        }
    }

    /// Compares two non-null values of comparable types (numbers with numbers, text with text,
    /// times with times). NULLs sort after everything (PostgreSQL's default NULLS LAST).
    pub fn compare(&self, other: &Value) -> Result<Ordering> {
        use Value::*;
        Ok(match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Null, _) => Ordering::Greater,
            (_, Null) => Ordering::Less,
            (Bool(a), Bool(b)) => a.cmp(b),
            (Text(a), Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Bytea(a), Bytea(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) | (TimestampTz(a), TimestampTz(b)) => a.cmp(b),
            (Date(d), Timestamp(t)) | (Date(d), TimestampTz(t)) => {
                (*d as i128 * datetime::USECS_PER_DAY as i128).cmp(&(*t as i128))
            }
            (Timestamp(t), Date(d)) | (TimestampTz(t), Date(d)) => {
                (*t as i128).cmp(&(*d as i128 * datetime::USECS_PER_DAY as i128))
            }
            (Timestamp(a), TimestampTz(b)) | (TimestampTz(a), Timestamp(b)) => a.cmp(b),
            (Interval(a), Interval(b)) => a.total_micros().cmp(&b.total_micros()),
            (a, b) => match (a.as_i64(), b.as_i64()) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ => match (a, b) {
                    (Float4(_) | Float8(_), _) | (_, Float4(_) | Float8(_)) => {
                        let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
                            return Err(incomparable(a, b));
                        };
                        float_cmp(x, y)
                    }
                    _ => match (a.as_decimal(), b.as_decimal()) {
                        (Some(x), Some(y)) => x.cmp(&y),
                        _ => return Err(incomparable(a, b)),
                    },
                },
            },
        })
    }

    /// Equality for grouping and DISTINCT: NULLs are equal to each other.
    pub fn group_eq(&self, other: &Value) -> bool {
        matches!(self.compare(other), Ok(Ordering::Equal))
    }

    /// The text form PostgreSQL prints (NULL prints as None).
    /// Appends the text form ([`Value::to_text`]) to `out`; false for NULL (nothing appended).
    pub fn write_text(&self, out: &mut String) -> bool {
        use std::fmt::Write;
        match self {
            Value::Null => return false,
            Value::Text(s) => out.push_str(s),
            Value::Int2(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Int4(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Int8(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Bool(b) => out.push(if *b { 't' } else { 'f' }),
            v => out.push_str(&v.to_text().unwrap_or_default()),
        }
        true
    }

    /// [`Value::to_text`], moving a text value's string instead of copying it.
    pub fn into_text(self) -> Option<String> {
        match self {
            Value::Text(s) => Some(s),
            v => v.to_text(),
        }
    }

    pub fn to_text(&self) -> Option<String> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(true) => "t".into(),
            Value::Bool(false) => "f".into(),
            Value::Int2(v) => v.to_string(),
            Value::Int4(v) => v.to_string(),
            Value::Int8(v) => v.to_string(),
            Value::Float4(v) => format_float(*v as f64, 6, Some(*v)),
            Value::Float8(v) => format_float(*v, 15, None),
            Value::Numeric(d) => d.to_string(),
            Value::Text(s) => s.clone(),
            Value::Bytea(b) => {
                let mut s = String::with_capacity(2 + 2 * b.len());
                s.push_str("\\x");
                for byte in b {
                    s.push_str(&format!("{byte:02x}"));
                }
                s
            }
            Value::Date(d) => datetime::format_date(*d),
            Value::Timestamp(t) => datetime::format_timestamp(*t),
            Value::TimestampTz(t) => datetime::format_timestamptz(*t),
            Value::Interval(i) => datetime::format_interval(i),
        })
    }
}

fn incomparable(a: &Value, b: &Value) -> crate::error::Error {
    err!(
        UNDEFINED_FUNCTION,
        "operator does not exist: {} = {}",
        a.data_type(),
        b.data_type()
    )
}

/// Float order as PostgreSQL defines it: NaN equals NaN and sorts above everything else.
pub fn float_cmp(x: f64, y: f64) -> Ordering {
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => x.partial_cmp(&y).expect("invariant: neither is NaN"),
    }
}

/// Formats a float as PostgreSQL does with `extra_float_digits = 1`: the shortest digits that
/// read back to the same value, in exponent form when the exponent is below -4 or at least
/// `precision` (15 for double precision, 6 for real).
pub fn format_float(v: f64, precision: i32, as_f32: Option<f32>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` prints the shortest round-trip digits: "1.2345e-7".
    let sci = match as_f32 {
        Some(f) => format!("{f:e}"),
        None => format!("{v:e}"),
    };
    let (mantissa, exp) = sci
        .split_once('e')
        .expect("invariant: {:e} has an exponent");
    let exp: i32 = exp.parse().expect("invariant: exponent is an integer");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if exp < -4 || exp >= precision {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}
impl From<i32> for Value {
    fn from(i: i32) -> Value {
        Value::Int4(i)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int8(i)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float8(f)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map(Into::into).unwrap_or(Value::Null)
    }
}

/// Structural equality (same type and same content; floats by bits): what makes two bound
/// expressions the same, not SQL's `=` (see [`Value::compare`]).
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int2(a), Int2(b)) => a == b,
            (Int4(a), Int4(b)) => a == b,
            (Int8(a), Int8(b)) => a == b,
            (Float4(a), Float4(b)) => a.to_bits() == b.to_bits(),
            (Float8(a), Float8(b)) => a.to_bits() == b.to_bits(),
            (Numeric(a), Numeric(b)) => a == b && a.scale() == b.scale(),
            (Text(a), Text(b)) => a == b,
            (Bytea(a), Bytea(b)) => a == b,
            (Date(a), Date(b)) => a == b,
            (Timestamp(a), Timestamp(b)) | (TimestampTz(a), TimestampTz(b)) => a == b,
            (Interval(a), Interval(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_text() {
            Some(s) => f.write_str(&s),
            None => f.write_str("NULL"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Numeric helpers

/// Weight (in base-10000 digits) and first base-10000 digit of a non-zero decimal, as
/// PostgreSQL's numeric code sees it.
fn nbase_weight(d: &Decimal) -> (i32, u32) {
    if d.is_zero() {
        return (0, 0);
    }
    let m = d.mantissa().unsigned_abs();
    let digits = m.to_string();
    // Decimal exponent of the leading digit.
    let e = digits.len() as i32 - 1 - d.scale() as i32;
    let weight = e.div_euclid(4);
    let lead_len = (e - weight * 4 + 1) as usize;
    let first: u32 = digits[..lead_len.min(digits.len())].parse().unwrap_or(0);
    let first = first * 10u32.pow((lead_len.saturating_sub(digits.len())) as u32);
    (weight, first)
}

/// NUMERIC division with PostgreSQL's result scale: at least 16 significant digits, and no less
/// than either input's scale.
pub fn numeric_div(a: Decimal, b: Decimal) -> Result<Decimal> {
    if b.is_zero() {
        bail!(DIVISION_BY_ZERO, "division by zero");
    }
    let (w1, f1) = nbase_weight(&a);
    let (w2, f2) = nbase_weight(&b);
    let mut qweight = w1 - w2;
    if f1 <= f2 {
        qweight -= 1;
    }
    let rscale = (16 - qweight * 4)
        .max(a.scale() as i32)
        .max(b.scale() as i32)
        .clamp(0, 28) as u32;
    let q = a
        .checked_div(b)
        .ok_or_else(|| err!(NUMERIC_VALUE_OUT_OF_RANGE, "value overflows numeric format"))?;
    let mut r = q.round_dp_with_strategy(rscale, RoundingStrategy::MidpointAwayFromZero);
    if r.scale() < rscale {
        r.rescale(rscale);
    }
    Ok(r)
}

/// Rounds to `scale` digits and checks the precision of NUMERIC(p, s).
pub fn numeric_fit(d: Decimal, typmod: Option<(u32, u32)>) -> Result<Decimal> {
    let Some((p, s)) = typmod else {
        return Ok(d);
    };
    let mut r = d.round_dp_with_strategy(s, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(s);
    let int_digits = r.trunc().abs().to_string().trim_start_matches('0').len() as u32;
    if int_digits > p - s {
        bail!(
            NUMERIC_VALUE_OUT_OF_RANGE,
            "numeric field overflow: a field with precision {p}, scale {s} must round to an absolute value less than 10^{}",
            p - s
        );
    }
    Ok(r)
}

pub fn parse_numeric(s: &str) -> Result<Decimal> {
    let t = s.trim();
    Decimal::from_str_exact(t)
        .or_else(|_| Decimal::from_scientific(t))
        .map_err(|_| {
            err!(
                INVALID_TEXT_REPRESENTATION,
                "invalid input syntax for type numeric: \"{s}\""
            )
        })
}

fn parse_int(s: &str, ty: &DataType) -> Result<i64> {
    let t = s.trim();
    let v: i64 = t.parse().map_err(|e: std::num::ParseIntError| {
        if matches!(
            e.kind(),
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow
        ) {
            err!(
                NUMERIC_VALUE_OUT_OF_RANGE,
                "value \"{s}\" is out of range for type {ty}"
            )
        } else {
            err!(
                INVALID_TEXT_REPRESENTATION,
                "invalid input syntax for type {ty}: \"{s}\""
            )
        }
    })?;
    Ok(v)
}

fn parse_float(s: &str, ty: &DataType) -> Result<f64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "nan" => return Ok(f64::NAN),
        "infinity" | "+infinity" | "inf" | "+inf" => return Ok(f64::INFINITY),
        "-infinity" | "-inf" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    t.parse::<f64>().map_err(|_| {
        err!(
            INVALID_TEXT_REPRESENTATION,
            "invalid input syntax for type {ty}: \"{s}\""
        )
    })
}

fn parse_bool(s: &str) -> Result<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Ok(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Ok(false),
        _ => bail!(
            INVALID_TEXT_REPRESENTATION,
            "invalid input syntax for type boolean: \"{s}\""
        ),
    }
}

fn parse_bytea(s: &str) -> Result<Vec<u8>> {
    if let Some(hex) = s.strip_prefix("\\x") {
        // PostgreSQL's hex format: pairs of hex digits, whitespace allowed between pairs.
        let digit = |c: char| {
            c.to_digit(16).ok_or_else(|| {
                err!(
                    INVALID_PARAMETER_VALUE,
                    "invalid hexadecimal digit: \"{c}\""
                )
            })
        };
        let mut out = Vec::with_capacity(hex.len() / 2);
        let mut chars = hex.chars();
        while let Some(c) = chars.next() {
            if matches!(c, ' ' | '\t' | '\n' | '\r') {
                continue;
            }
            let hi = digit(c)?;
            let Some(c2) = chars.next() else {
                bail!(
                    INVALID_PARAMETER_VALUE,
                    "invalid hexadecimal data: odd number of digits"
                );
            };
            out.push((hi * 16 + digit(c2)?) as u8);
        }
        return Ok(out);
    }
    // The escape format: backslash-octal or a doubled backslash.
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
            } else if i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = (b[i + 1] - b'0') as u32 * 64
                    + (b[i + 2] - b'0') as u32 * 8
                    + (b[i + 3] - b'0') as u32;
                out.push(v as u8);
                i += 4;
            } else {
                bail!(
                    INVALID_TEXT_REPRESENTATION,
                    "invalid input syntax for type bytea"
                );
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn int_range(v: i64, ty: &DataType) -> Result<Value> {
    Ok(match ty {
        DataType::Int2 => Value::Int2(
            i16::try_from(v)
                .map_err(|_| err!(NUMERIC_VALUE_OUT_OF_RANGE, "smallint out of range"))?,
        ),
        DataType::Int4 => Value::Int4(
            i32::try_from(v)
                .map_err(|_| err!(NUMERIC_VALUE_OUT_OF_RANGE, "integer out of range"))?,
        ),
        _ => Value::Int8(v),
    })
}

fn float_to_int(f: f64, ty: &DataType) -> Result<Value> {
    if f.is_nan() || f.is_infinite() {
        bail!(NUMERIC_VALUE_OUT_OF_RANGE, "{ty} out of range");
    }
    // PostgreSQL rounds half to even when casting floats to integers (rint).
    let r = f.round_ties_even();
    if r < i64::MIN as f64 || r >= i64::MAX as f64 {
        bail!(NUMERIC_VALUE_OUT_OF_RANGE, "{} out of range", ty);
    }
    int_range(r as i64, ty)
}

fn decimal_to_int(d: Decimal, ty: &DataType) -> Result<Value> {
    let r = d.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    let v = r
        .to_i64()
        .ok_or_else(|| err!(NUMERIC_VALUE_OUT_OF_RANGE, "{ty} out of range"))?;
    int_range(v, ty)
}

/// Casts a value to a type, with PostgreSQL's rules and errors.
pub fn cast(v: Value, ty: &DataType) -> Result<Value> {
    use DataType as T;
    if v.is_null() || *ty == T::Unknown {
        return Ok(v);
    }
    let from = v.data_type();
    if from == *ty && !matches!(ty, T::Numeric(Some(_)) | T::Varchar(Some(_)) | T::Char(_)) {
        return Ok(v);
    }
    Ok(match (v, ty) {
        // To text types.
        (Value::Text(s), T::Varchar(Some(n))) => {
            // (No more bytes than the limit means no more characters: no count needed.)
            if s.len() > *n as usize && s.chars().count() > *n as usize {
                // Only spaces may be cut, and only those past the limit: 'abc   ' in
                // varchar(5) is 'abc  '.
                if s.chars().skip(*n as usize).any(|c| c != ' ') {
                    bail!(
                        STRING_DATA_RIGHT_TRUNCATION,
                        "value too long for type character varying({n})"
                    );
                }
                Value::Text(s.chars().take(*n as usize).collect())
            } else {
                Value::Text(s)
            }
        }
        (Value::Text(s), T::Char(n)) => {
            let len = s.chars().count();
            let n = *n as usize;
            if len > n {
                if s.chars().skip(n).any(|c| c != ' ') {
                    bail!(
                        STRING_DATA_RIGHT_TRUNCATION,
                        "value too long for type character({n})"
                    );
                }
                Value::Text(s.chars().take(n).collect())
            } else {
                let mut s = s;
                s.extend(std::iter::repeat_n(' ', n - len));
                Value::Text(s)
            }
        }
        (Value::Text(s), T::Text | T::Varchar(None)) => Value::Text(s),
        // boolean's cast to text spells the word out (its output form is t / f).
        (Value::Bool(b), T::Text | T::Varchar(_) | T::Char(_)) => {
            let word = if b { "true" } else { "false" };
            return cast(Value::Text(word.into()), ty);
        }
        (v, T::Text | T::Varchar(_) | T::Char(_)) => {
            let text = Value::Text(v.to_text().expect("invariant: not null"));
            return cast(text, ty);
        }
        // From text: parse.
        (Value::Text(s), t) => parse_as(&s, t)?,
        // Numbers.
        (v, T::Int2 | T::Int4 | T::Int8) => match v {
            Value::Int2(_) | Value::Int4(_) | Value::Int8(_) => {
                int_range(v.as_i64().expect("integer"), ty)?
            }
            Value::Float4(f) => float_to_int(f as f64, ty)?,
            Value::Float8(f) => float_to_int(f, ty)?,
            Value::Numeric(d) => decimal_to_int(d, ty)?,
            Value::Bool(b) if *ty == T::Int4 => Value::Int4(b as i32),
            v => return Err(cannot_cast(&v, ty)),
        },
        (v, T::Float4 | T::Float8) => {
            let f = match v {
                Value::Float4(f) => f as f64,
                Value::Float8(f) => f,
                Value::Numeric(d) => d.to_f64().unwrap_or(f64::NAN),
                ref v if v.as_i64().is_some() => v.as_i64().expect("integer") as f64,
                v => return Err(cannot_cast(&v, ty)),
            };
            if *ty == T::Float4 {
                let g = f as f32;
                if g.is_infinite() && f.is_finite() {
                    bail!(NUMERIC_VALUE_OUT_OF_RANGE, "value out of range: overflow");
                }
                Value::Float4(g)
            } else {
                Value::Float8(f)
            }
        }
        (v, T::Numeric(typmod)) => {
            let d = match v {
                Value::Numeric(d) => d,
                Value::Float4(f) => float_to_decimal(f as f64)?,
                Value::Float8(f) => float_to_decimal(f)?,
                ref v if v.as_i64().is_some() => Decimal::from(v.as_i64().expect("integer")),
                v => return Err(cannot_cast(&v, ty)),
            };
            Value::Numeric(numeric_fit(d, *typmod)?)
        }
        (Value::Int4(i), T::Bool) => Value::Bool(i != 0),
        (Value::Date(d), T::Timestamp) => Value::Timestamp(datetime::date_to_timestamp(d)?),
        (Value::Date(d), T::TimestampTz) => Value::TimestampTz(datetime::date_to_timestamp(d)?),
        (Value::Timestamp(t) | Value::TimestampTz(t), T::Date) => {
            Value::Date(t.div_euclid(datetime::USECS_PER_DAY) as i32)
        }
        (Value::Timestamp(t), T::TimestampTz) => Value::TimestampTz(t),
        (Value::TimestampTz(t), T::Timestamp) => Value::Timestamp(t),
        (v, _) => return Err(cannot_cast(&v, ty)),
    })
}

fn float_to_decimal(f: f64) -> Result<Decimal> {
    if !f.is_finite() {
        bail!(
            NUMERIC_VALUE_OUT_OF_RANGE,
            "cannot convert {} to numeric",
            format_float(f, 15, None)
        );
    }
    // Through the shortest text form, as PostgreSQL does, so 0.1::float8::numeric is 0.1.
    parse_numeric(&format_float(f, 30, None))
}

fn cannot_cast(v: &Value, ty: &DataType) -> crate::error::Error {
    err!(
        CANNOT_COERCE,
        "cannot cast type {} to {}",
        v.data_type(),
        ty
    )
}

/// Parses the text form of a value of type `ty` (what input functions and COPY do).
pub fn parse_as(s: &str, ty: &DataType) -> Result<Value> {
    use DataType as T;
    Ok(match ty {
        T::Bool => Value::Bool(parse_bool(s)?),
        T::Int2 | T::Int4 | T::Int8 => int_range(parse_int(s, ty)?, ty).map_err(|_| {
            err!(
                NUMERIC_VALUE_OUT_OF_RANGE,
                "value \"{s}\" is out of range for type {ty}"
            )
        })?,
        T::Float4 => {
            let f = parse_float(s, ty)?;
            Value::Float4(f as f32)
        }
        T::Float8 => Value::Float8(parse_float(s, ty)?),
        T::Numeric(typmod) => Value::Numeric(numeric_fit(parse_numeric(s)?, *typmod)?),
        T::Text | T::Unknown => Value::Text(s.to_string()),
        T::Varchar(_) | T::Char(_) => cast(Value::Text(s.to_string()), ty)?,
        T::Bytea => Value::Bytea(parse_bytea(s)?),
        T::Date => Value::Date(datetime::parse_date(s)?),
        T::Timestamp => Value::Timestamp(datetime::parse_timestamp(s)?),
        T::TimestampTz => Value::TimestampTz(datetime::parse_timestamptz(s)?),
        T::Interval => Value::Interval(datetime::parse_interval(s)?),
    })
}

// ---------------------------------------------------------------------------------------------
// Arithmetic

/// Binary arithmetic operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl ArithOp {
    pub fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
        }
    }
}

/// The result type of `a op b`, or None if the operator does not exist for these types.
pub fn arith_type(op: ArithOp, a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType as T;
    let a = if *a == T::Unknown { b } else { a };
    let b = if *b == T::Unknown { a } else { b };
    if a.is_numeric() && b.is_numeric() {
        let t = DataType::common(a, b)?;
        return Some(match t {
            T::Numeric(_) => T::Numeric(None),
            // real op real is real, but real with any other number resolves to the real/double
            // operators (double precision is the category's preferred type): 1.5::real * 2 is
            // double precision.
            T::Float4 if a != b => T::Float8,
            // int2 op int2 is int4 in PostgreSQL only for some operators; keep the wider.
            t => t,
        });
    }
    Some(match (op, a, b) {
        (ArithOp::Add, T::Date, t) | (ArithOp::Add, t, T::Date) if t.is_integer() => T::Date,
        (ArithOp::Sub, T::Date, t) if t.is_integer() => T::Date,
        (ArithOp::Sub, T::Date, T::Date) => T::Int4,
        (ArithOp::Add, T::Date, T::Interval) | (ArithOp::Add, T::Interval, T::Date) => T::Timestamp,
        (ArithOp::Sub, T::Date, T::Interval) => T::Timestamp,
        (ArithOp::Add | ArithOp::Sub, T::Timestamp, T::Interval) => T::Timestamp,
        (ArithOp::Add, T::Interval, T::Timestamp) => T::Timestamp,
        (ArithOp::Add | ArithOp::Sub, T::TimestampTz, T::Interval) => T::TimestampTz,
        (ArithOp::Add, T::Interval, T::TimestampTz) => T::TimestampTz,
        (ArithOp::Sub, T::Timestamp, T::Timestamp)
        | (ArithOp::Sub, T::TimestampTz, T::TimestampTz) => T::Interval,
        (ArithOp::Add | ArithOp::Sub, T::Interval, T::Interval) => T::Interval,
        (ArithOp::Mul, T::Interval, t) | (ArithOp::Mul, t, T::Interval) if t.is_numeric() => {
            T::Interval
        }
        (ArithOp::Div, T::Interval, t) if t.is_numeric() => T::Interval,
        _ => return None,
    })
}

fn overflow(ty: &str) -> crate::error::Error {
    err!(NUMERIC_VALUE_OUT_OF_RANGE, "{ty} out of range")
}

fn int_arith(op: ArithOp, x: i64, y: i64, ty: &DataType) -> Result<Value> {
    let name = match ty {
        DataType::Int2 => "smallint",
        DataType::Int4 => "integer",
        _ => "bigint",
    };
    let r = match op {
        ArithOp::Add => x.checked_add(y),
        ArithOp::Sub => x.checked_sub(y),
        ArithOp::Mul => x.checked_mul(y),
        ArithOp::Div => {
            if y == 0 {
                bail!(DIVISION_BY_ZERO, "division by zero");
            }
            x.checked_div(y)
        }
        ArithOp::Mod => {
            if y == 0 {
                bail!(DIVISION_BY_ZERO, "division by zero");
            }
            Some(x.wrapping_rem(y))
        }
    }
    .ok_or_else(|| overflow(name))?;
    int_range(r, ty).map_err(|_| overflow(name))
}

/// Evaluates `a op b` for non-null operands whose result type is `ty` (from [`arith_type`]).
pub fn arith(op: ArithOp, a: &Value, b: &Value, ty: &DataType) -> Result<Value> {
    use DataType as T;
    if a.is_null() || b.is_null() {
        return Ok(Value::Null);
    }
    match ty {
        T::Int2 | T::Int4 | T::Int8 => {
            let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) else {
                return datetime::arith(op, a, b, ty);
            };
            int_arith(op, x, y, ty)
        }
        T::Float4 | T::Float8 => {
            let (x, y) = (
                a.as_f64().ok_or_else(|| bad_operands(op, a, b))?,
                b.as_f64().ok_or_else(|| bad_operands(op, a, b))?,
            );
            let r = match op {
                ArithOp::Add => x + y,
                ArithOp::Sub => x - y,
                ArithOp::Mul => x * y,
                ArithOp::Div => {
                    if y == 0.0 {
                        bail!(DIVISION_BY_ZERO, "division by zero");
                    }
                    x / y
                }
                ArithOp::Mod => bail!(UNDEFINED_FUNCTION, "operator does not exist: {ty} % {ty}"),
            };
            if r.is_infinite() && x.is_finite() && y.is_finite() {
                bail!(NUMERIC_VALUE_OUT_OF_RANGE, "value out of range: overflow");
            }
            if *ty == T::Float4 {
                Ok(Value::Float4(r as f32))
            } else {
                Ok(Value::Float8(r))
            }
        }
        T::Numeric(_) => {
            let (x, y) = (
                a.as_decimal().ok_or_else(|| bad_operands(op, a, b))?,
                b.as_decimal().ok_or_else(|| bad_operands(op, a, b))?,
            );
            let out = || err!(NUMERIC_VALUE_OUT_OF_RANGE, "value overflows numeric format");
            Ok(Value::Numeric(match op {
                ArithOp::Add => x.checked_add(y).ok_or_else(out)?,
                ArithOp::Sub => x.checked_sub(y).ok_or_else(out)?,
                ArithOp::Mul => x.checked_mul(y).ok_or_else(out)?,
                ArithOp::Div => numeric_div(x, y)?,
                ArithOp::Mod => {
                    if y.is_zero() {
                        bail!(DIVISION_BY_ZERO, "division by zero");
                    }
                    x.checked_rem(y).ok_or_else(out)?
                }
            }))
        }
        _ => datetime::arith(op, a, b, ty),
    }
}

pub(crate) fn bad_operands(op: ArithOp, a: &Value, b: &Value) -> crate::error::Error {
    err!(
        UNDEFINED_FUNCTION,
        "operator does not exist: {} {} {}",
        a.data_type(),
        op.symbol(),
        b.data_type()
    )
}

/// Unary minus.
pub fn negate(v: &Value) -> Result<Value> {
    Ok(match v {
        Value::Null => Value::Null,
        Value::Int2(i) => Value::Int2(i.checked_neg().ok_or_else(|| overflow("smallint"))?),
        Value::Int4(i) => Value::Int4(i.checked_neg().ok_or_else(|| overflow("integer"))?),
        Value::Int8(i) => Value::Int8(i.checked_neg().ok_or_else(|| overflow("bigint"))?),
        Value::Float4(f) => Value::Float4(-f),
        Value::Float8(f) => Value::Float8(-f),
        Value::Numeric(d) => Value::Numeric(-*d),
        Value::Interval(i) => Value::Interval(Interval {
            months: -i.months,
            days: -i.days,
            micros: -i.micros,
        }),
        v => bail!(
            UNDEFINED_FUNCTION,
            "operator does not exist: - {}",
            v.data_type()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_postgres() {
        assert_eq!(format_float(0.9, 15, None), "0.9");
        assert_eq!(format_float(1e20, 15, None), "1e+20");
        assert_eq!(format_float(123456789012345.0, 15, None), "123456789012345");
        assert_eq!(
            format_float(1234567890123456.0, 15, None),
            "1.234567890123456e+15"
        );
        assert_eq!(format_float(0.0001, 15, None), "0.0001");
        assert_eq!(format_float(0.00001, 15, None), "1e-05");
        assert_eq!(format_float(-2.5, 15, None), "-2.5");
        assert_eq!(format_float(100.0, 15, None), "100");
        assert_eq!(Value::Float4(0.1).to_text().unwrap(), "0.1");
        assert_eq!(Value::Float4(1234567.0).to_text().unwrap(), "1.234567e+06");
    }

    #[test]
    fn numeric_division_scale_matches_postgres() {
        let d = |s: &str| Decimal::from_str_exact(s).unwrap();
        assert_eq!(
            numeric_div(d("3"), d("2")).unwrap().to_string(),
            "1.5000000000000000"
        );
        assert_eq!(
            numeric_div(d("1"), d("3")).unwrap().to_string(),
            "0.33333333333333333333"
        );
        assert_eq!(
            numeric_div(d("10"), d("4")).unwrap().to_string(),
            "2.5000000000000000"
        );
        assert_eq!(
            numeric_div(d("100000"), d("3")).unwrap().to_string(),
            "33333.333333333333"
        );
        assert!(numeric_div(d("1"), d("0")).is_err());
    }

    #[test]
    fn integer_overflow_is_an_error() {
        let e = arith(
            ArithOp::Add,
            &Value::Int4(i32::MAX),
            &Value::Int4(1),
            &DataType::Int4,
        )
        .unwrap_err();
        assert_eq!(e.code, "22003");
        let e = arith(
            ArithOp::Div,
            &Value::Int4(1),
            &Value::Int4(0),
            &DataType::Int4,
        )
        .unwrap_err();
        assert_eq!(e.code, "22012");
        assert_eq!(
            arith(
                ArithOp::Div,
                &Value::Int4(-7),
                &Value::Int4(2),
                &DataType::Int4
            )
            .unwrap()
            .to_text()
            .unwrap(),
            "-3"
        );
    }

    #[test]
    fn casts_follow_postgres() {
        assert_eq!(
            cast(Value::Float8(2.5), &DataType::Int4).unwrap().as_i64(),
            Some(2)
        );
        assert_eq!(
            cast(Value::Float8(3.5), &DataType::Int4).unwrap().as_i64(),
            Some(4)
        );
        assert_eq!(
            cast(
                Value::Numeric(Decimal::from_str_exact("2.5").unwrap()),
                &DataType::Int4
            )
            .unwrap()
            .as_i64(),
            Some(3)
        );
        assert_eq!(
            cast(Value::Text("abcd".into()), &DataType::Varchar(Some(3)))
                .unwrap_err()
                .code,
            "22001"
        );
        assert_eq!(
            cast(Value::Text("x".into()), &DataType::Int4)
                .unwrap_err()
                .code,
            "22P02"
        );
        assert_eq!(
            cast(Value::Int8(1 << 40), &DataType::Int4)
                .unwrap_err()
                .code,
            "22003"
        );
        assert_eq!(
            cast(
                Value::Text("12.345".into()),
                &DataType::Numeric(Some((5, 2)))
            )
            .unwrap()
            .to_text()
            .unwrap(),
            "12.35"
        );
        assert_eq!(
            cast(
                Value::Text("1234.5".into()),
                &DataType::Numeric(Some((5, 2)))
            )
            .unwrap_err()
            .code,
            "22003"
        );
    }

    #[test]
    fn text_casts_follow_postgres() {
        let text = |v: Value, ty: DataType| cast(v, &ty).map(|v| v.to_text().unwrap());
        // Spaces past a varchar's limit are cut, the ones within it stay.
        assert_eq!(
            text(Value::Text("abc     ".into()), DataType::Varchar(Some(5))).unwrap(),
            "abc  "
        );
        assert_eq!(
            text(Value::Text("abcdef ".into()), DataType::Varchar(Some(5)))
                .unwrap_err()
                .code,
            "22001"
        );
        assert_eq!(
            text(Value::Text("ab".into()), DataType::Char(4)).unwrap(),
            "ab  "
        );
        // boolean to text spells the word; its output form stays t / f.
        assert_eq!(text(Value::Bool(true), DataType::Text).unwrap(), "true");
        assert_eq!(
            text(Value::Bool(false), DataType::Varchar(None)).unwrap(),
            "false"
        );
        assert_eq!(text(Value::Bool(true), DataType::Char(5)).unwrap(), "true ");
        assert_eq!(Value::Bool(true).to_text().unwrap(), "t");
    }

    #[test]
    fn bytea_input_follows_postgres() {
        let bytea = |s: &str| parse_as(s, &DataType::Bytea);
        assert_eq!(bytea("\\x00ff10").unwrap(), Value::Bytea(vec![0, 255, 16]));
        assert_eq!(
            bytea("\\x 12 AB\n").unwrap(),
            Value::Bytea(vec![0x12, 0xab])
        );
        assert_eq!(bytea("\\x").unwrap(), Value::Bytea(vec![]));
        let e = bytea("\\xzz").unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            ("22023", "invalid hexadecimal digit: \"z\"")
        );
        let e = bytea("\\x1 2").unwrap_err();
        assert_eq!(e.message, "invalid hexadecimal digit: \" \"");
        let e = bytea("\\x12 3").unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            ("22023", "invalid hexadecimal data: odd number of digits")
        );
        assert_eq!(bytea("a\\\\b").unwrap(), Value::Bytea(b"a\\b".to_vec()));
        assert_eq!(bytea("a\\9").unwrap_err().code, "22P02");
    }

    #[test]
    fn real_with_another_number_is_double() {
        use DataType as T;
        let ty = |a: T, b: T| arith_type(ArithOp::Mul, &a, &b).unwrap();
        assert_eq!(ty(T::Float4, T::Float4), T::Float4);
        assert_eq!(ty(T::Float4, T::Unknown), T::Float4);
        assert_eq!(ty(T::Float4, T::Int4), T::Float8);
        assert_eq!(ty(T::Int2, T::Float4), T::Float8);
        assert_eq!(ty(T::Float4, T::Numeric(Some((4, 1)))), T::Float8);
        assert_eq!(ty(T::Float4, T::Float8), T::Float8);
        assert_eq!(ty(T::Int4, T::Int8), T::Int8);
        let v = arith(
            ArithOp::Mul,
            &Value::Float4(0.1),
            &Value::Int4(2),
            &T::Float8,
        )
        .unwrap();
        assert_eq!(v.to_text().unwrap(), "0.20000000298023224");
    }
}
