//! Built-in scalar functions with PostgreSQL 15's names, argument types, results and errors:
//! string, math, date/time (including `to_char`, `to_date` and `to_timestamp`) and a few misc.
//!
//! [`resolve`] picks the overload for a name and argument types from one table, the way
//! PostgreSQL does in the simple cases (most exact matches, then preferred types), and says what
//! each argument must be cast to. The implementations then receive exactly those types (or NULL).

use std::cell::Cell;
use std::cmp::Ordering;

use rust_decimal::prelude::*;
use rust_decimal::Decimal;

use crate::datetime::{self, Tm, USECS_PER_DAY, USECS_PER_SEC};
use crate::error::{Error, Result};
use crate::value::{format_float, DataType, Interval, Value};
use crate::{bail, err};

/// What a scalar function may read besides its arguments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FnContext {
    /// When the current statement started (microseconds since the epoch, UTC).
    pub statement_ts: i64,
    /// When the current transaction started: `now()`, `current_timestamp`.
    pub txn_ts: i64,
}

/// A scalar function's implementation.
pub type ScalarImpl = fn(&[Value], &FnContext) -> Result<Value>;

/// The overload [`resolve`] chose.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub return_type: DataType,
    /// The type each argument must be cast to before the call.
    pub arg_types: Vec<DataType>,
    pub call: ScalarImpl,
    /// True: the result is NULL when any argument is NULL, without calling.
    pub strict: bool,
    /// True: the result may change between calls with the same arguments.
    pub volatile: bool,
}

/// SQLSTATEs that error.rs does not name.
const INVALID_ARGUMENT_FOR_LOG: &str = "2201E";
const INVALID_ARGUMENT_FOR_POWER: &str = "2201F";
const SUBSTRING_ERROR: &str = "22011";
const INVALID_TIME_ZONE_DISPLACEMENT: &str = "22009";
const INVALID_ARGUMENT_FOR_WIDTH_BUCKET: &str = "2201G";

/// The most bytes a function may build (PostgreSQL's 1 GB limit).
const MAX_ALLOC: usize = 0x3fff_ffff;

// ---------------------------------------------------------------------------------------------
// The table

/// A parameter type in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum P {
    Bool,
    Int2,
    Int4,
    Int8,
    Float8,
    Numeric,
    Text,
    Bytea,
    Date,
    Ts,
    TsTz,
    Interval,
}

impl P {
    fn ty(self) -> DataType {
        match self {
            P::Bool => DataType::Bool,
            P::Int2 => DataType::Int2,
            P::Int4 => DataType::Int4,
            P::Int8 => DataType::Int8,
            P::Float8 => DataType::Float8,
            P::Numeric => DataType::Numeric(None),
            P::Text => DataType::Text,
            P::Bytea => DataType::Bytea,
            P::Date => DataType::Date,
            P::Ts => DataType::Timestamp,
            P::TsTz => DataType::TimestampTz,
            P::Interval => DataType::Interval,
        }
    }
}

/// Flags of a table entry.
const STRICT: u8 = 0;
const LAX: u8 = 1;
const VOLATILE: u8 = 2;

struct Def {
    name: &'static str,
    params: &'static [P],
    ret: P,
    call: ScalarImpl,
    flags: u8,
}

macro_rules! def {
    ($name:literal, [$($p:ident),*], $ret:ident, $call:expr) => {
        Def { name: $name, params: &[$(P::$p),*], ret: P::$ret, call: $call, flags: STRICT }
    };
    ($name:literal, [$($p:ident),*], $ret:ident, $call:expr, $flags:expr) => {
        Def { name: $name, params: &[$(P::$p),*], ret: P::$ret, call: $call, flags: $flags }
    };
}

/// Every overload, preferred first among equals (one line each: rustfmt leaves it alone).
#[rustfmt::skip]
static DEFS: &[Def] = &[
    // Strings.
    def!("length", [Text], Int4, |a, _| Ok(Value::Int4(char_len(text(a, 0)?)))),
    def!("length", [Bytea], Int4, |a, _| Ok(Value::Int4(byte_len(bytes(a, 0)?.len())))),
    def!("char_length", [Text], Int4, |a, _| Ok(Value::Int4(char_len(text(a, 0)?)))),
    def!("character_length", [Text], Int4, |a, _| Ok(Value::Int4(char_len(text(a, 0)?)))),
    def!("octet_length", [Text], Int4, |a, _| Ok(Value::Int4(byte_len(text(a, 0)?.len())))),
    def!("octet_length", [Bytea], Int4, |a, _| Ok(Value::Int4(byte_len(bytes(a, 0)?.len())))),
    def!("bit_length", [Text], Int4, |a, _| Ok(Value::Int4(byte_len(text(a, 0)?.len()).saturating_mul(8)))),
    def!("bit_length", [Bytea], Int4, |a, _| Ok(Value::Int4(byte_len(bytes(a, 0)?.len()).saturating_mul(8)))),
    def!("lower", [Text], Text, |a, _| Ok(Value::Text(text(a, 0)?.to_ascii_lowercase()))),
    def!("upper", [Text], Text, |a, _| Ok(Value::Text(text(a, 0)?.to_ascii_uppercase()))),
    def!("initcap", [Text], Text, |a, _| Ok(Value::Text(initcap(text(a, 0)?)))),
    def!("substr", [Text, Int4], Text, |a, _| substr(text(a, 0)?, int(a, 1)?, None)),
    def!("substr", [Text, Int4, Int4], Text, |a, _| substr(text(a, 0)?, int(a, 1)?, Some(int(a, 2)?))),
    def!("substring", [Text, Int4], Text, |a, _| substr(text(a, 0)?, int(a, 1)?, None)),
    def!("substring", [Text, Int4, Int4], Text, |a, _| substr(text(a, 0)?, int(a, 1)?, Some(int(a, 2)?))),
    def!("strpos", [Text, Text], Int4, |a, _| Ok(Value::Int4(strpos(text(a, 0)?, text(a, 1)?)))),
    def!("position", [Text, Text], Int4, |a, _| Ok(Value::Int4(strpos(text(a, 0)?, text(a, 1)?)))),
    def!("replace", [Text, Text, Text], Text, |a, _| replace(text(a, 0)?, text(a, 1)?, text(a, 2)?)),
    def!("btrim", [Text], Text, |a, _| Ok(trim(text(a, 0)?, " ", true, true))),
    def!("btrim", [Text, Text], Text, |a, _| Ok(trim(text(a, 0)?, text(a, 1)?, true, true))),
    def!("trim", [Text], Text, |a, _| Ok(trim(text(a, 0)?, " ", true, true))),
    def!("trim", [Text, Text], Text, |a, _| Ok(trim(text(a, 0)?, text(a, 1)?, true, true))),
    def!("ltrim", [Text], Text, |a, _| Ok(trim(text(a, 0)?, " ", true, false))),
    def!("ltrim", [Text, Text], Text, |a, _| Ok(trim(text(a, 0)?, text(a, 1)?, true, false))),
    def!("rtrim", [Text], Text, |a, _| Ok(trim(text(a, 0)?, " ", false, true))),
    def!("rtrim", [Text, Text], Text, |a, _| Ok(trim(text(a, 0)?, text(a, 1)?, false, true))),
    def!("lpad", [Text, Int4], Text, |a, _| pad(text(a, 0)?, int(a, 1)?, " ", true)),
    def!("lpad", [Text, Int4, Text], Text, |a, _| pad(text(a, 0)?, int(a, 1)?, text(a, 2)?, true)),
    def!("rpad", [Text, Int4], Text, |a, _| pad(text(a, 0)?, int(a, 1)?, " ", false)),
    def!("rpad", [Text, Int4, Text], Text, |a, _| pad(text(a, 0)?, int(a, 1)?, text(a, 2)?, false)),
    def!("left", [Text, Int4], Text, |a, _| Ok(Value::Text(left(text(a, 0)?, int(a, 1)?)))),
    def!("right", [Text, Int4], Text, |a, _| Ok(Value::Text(right(text(a, 0)?, int(a, 1)?)))),
    def!("repeat", [Text, Int4], Text, |a, _| repeat(text(a, 0)?, int(a, 1)?)),
    def!("reverse", [Text], Text, |a, _| Ok(Value::Text(text(a, 0)?.chars().rev().collect()))),
    def!("split_part", [Text, Text, Int4], Text, |a, _| split_part(text(a, 0)?, text(a, 1)?, int(a, 2)?)),
    def!("md5", [Text], Text, |a, _| Ok(Value::Text(md5_hex(text(a, 0)?.as_bytes())))),
    def!("md5", [Bytea], Text, |a, _| Ok(Value::Text(md5_hex(bytes(a, 0)?)))),
    def!("ascii", [Text], Int4, |a, _| Ok(Value::Int4(text(a, 0)?.chars().next().map_or(0, |c| c as i32)))),
    def!("chr", [Int4], Text, |a, _| chr(int(a, 0)?)),
    def!("starts_with", [Text, Text], Bool, |a, _| Ok(Value::Bool(text(a, 0)?.starts_with(text(a, 1)?)))),
    def!("to_hex", [Int4], Text, |a, _| Ok(Value::Text(format!("{:x}", int(a, 0)? as u32)))),
    def!("to_hex", [Int8], Text, |a, _| Ok(Value::Text(format!("{:x}", big(a, 0)? as u64)))),
    def!("quote_ident", [Text], Text, |a, _| Ok(Value::Text(quote_ident(text(a, 0)?)))),
    def!("quote_literal", [Text], Text, |a, _| Ok(Value::Text(quote_literal(text(a, 0)?)))),
    def!("translate", [Text, Text, Text], Text, |a, _| Ok(Value::Text(translate(text(a, 0)?, text(a, 1)?, text(a, 2)?)))),
    // Math.
    def!("abs", [Int2], Int2, |a, _| abs_int(a, DataType::Int2)),
    def!("abs", [Int4], Int4, |a, _| abs_int(a, DataType::Int4)),
    def!("abs", [Int8], Int8, |a, _| abs_int(a, DataType::Int8)),
    def!("abs", [Numeric], Numeric, |a, _| Ok(Value::Numeric(dec(a, 0)?.abs()))),
    def!("abs", [Float8], Float8, |a, _| Ok(Value::Float8(float(a, 0)?.abs()))),
    def!("ceil", [Float8], Float8, |a, _| Ok(Value::Float8(float(a, 0)?.ceil()))),
    def!("ceil", [Numeric], Numeric, |a, _| Ok(num(dec(a, 0)?.ceil()))),
    def!("ceiling", [Float8], Float8, |a, _| Ok(Value::Float8(float(a, 0)?.ceil()))),
    def!("ceiling", [Numeric], Numeric, |a, _| Ok(num(dec(a, 0)?.ceil()))),
    def!("floor", [Float8], Float8, |a, _| Ok(Value::Float8(float(a, 0)?.floor()))),
    def!("floor", [Numeric], Numeric, |a, _| Ok(num(dec(a, 0)?.floor()))),
    def!("round", [Float8], Float8, |a, _| Ok(Value::Float8(float(a, 0)?.round_ties_even()))),
    def!("round", [Numeric], Numeric, |a, _| round_numeric(dec(a, 0)?, 0, false)),
    def!("round", [Numeric, Int4], Numeric, |a, _| round_numeric(dec(a, 0)?, int(a, 1)?, false)),
    def!("trunc", [Float8], Float8, |a, _| Ok(Value::Float8(float(a, 0)?.trunc()))),
    def!("trunc", [Numeric], Numeric, |a, _| round_numeric(dec(a, 0)?, 0, true)),
    def!("trunc", [Numeric, Int4], Numeric, |a, _| round_numeric(dec(a, 0)?, int(a, 1)?, true)),
    def!("sign", [Float8], Float8, |a, _| Ok(Value::Float8(float_sign(float(a, 0)?)))),
    def!("sign", [Numeric], Numeric, |a, _| Ok(Value::Numeric(Decimal::from(dec_sign(dec(a, 0)?))))),
    def!("sqrt", [Float8], Float8, |a, _| float_sqrt(float(a, 0)?)),
    def!("sqrt", [Numeric], Numeric, |a, _| numeric_sqrt(dec(a, 0)?)),
    def!("cbrt", [Float8], Float8, |a, _| Ok(Value::Float8(float(a, 0)?.cbrt()))),
    def!("power", [Float8, Float8], Float8, |a, _| float_power(float(a, 0)?, float(a, 1)?)),
    def!("power", [Numeric, Numeric], Numeric, |a, _| numeric_power(dec(a, 0)?, dec(a, 1)?)),
    def!("pow", [Float8, Float8], Float8, |a, _| float_power(float(a, 0)?, float(a, 1)?)),
    def!("pow", [Numeric, Numeric], Numeric, |a, _| numeric_power(dec(a, 0)?, dec(a, 1)?)),
    def!("exp", [Float8], Float8, |a, _| float_exp(float(a, 0)?)),
    def!("exp", [Numeric], Numeric, |a, _| numeric_exp(dec(a, 0)?)),
    def!("ln", [Float8], Float8, |a, _| float_log(float(a, 0)?, f64::ln)),
    def!("ln", [Numeric], Numeric, |a, _| numeric_ln(dec(a, 0)?)),
    def!("log", [Float8], Float8, |a, _| float_log(float(a, 0)?, f64::log10)),
    def!("log", [Numeric], Numeric, |a, _| numeric_log(Decimal::TEN, dec(a, 0)?)),
    def!("log", [Numeric, Numeric], Numeric, |a, _| numeric_log(dec(a, 0)?, dec(a, 1)?)),
    def!("log10", [Float8], Float8, |a, _| float_log(float(a, 0)?, f64::log10)),
    def!("log10", [Numeric], Numeric, |a, _| numeric_log(Decimal::TEN, dec(a, 0)?)),
    def!("mod", [Int2, Int2], Int2, |a, _| int_mod(a, DataType::Int2)),
    def!("mod", [Int4, Int4], Int4, |a, _| int_mod(a, DataType::Int4)),
    def!("mod", [Int8, Int8], Int8, |a, _| int_mod(a, DataType::Int8)),
    def!("mod", [Numeric, Numeric], Numeric, |a, _| numeric_mod(dec(a, 0)?, dec(a, 1)?)),
    def!("div", [Numeric, Numeric], Numeric, |a, _| numeric_divtrunc(dec(a, 0)?, dec(a, 1)?)),
    def!("gcd", [Int4, Int4], Int4, |a, _| gcd_int(a, DataType::Int4, false)),
    def!("gcd", [Int8, Int8], Int8, |a, _| gcd_int(a, DataType::Int8, false)),
    def!("gcd", [Numeric, Numeric], Numeric, |a, _| gcd_numeric(dec(a, 0)?, dec(a, 1)?, false)),
    def!("lcm", [Int4, Int4], Int4, |a, _| gcd_int(a, DataType::Int4, true)),
    def!("lcm", [Int8, Int8], Int8, |a, _| gcd_int(a, DataType::Int8, true)),
    def!("lcm", [Numeric, Numeric], Numeric, |a, _| gcd_numeric(dec(a, 0)?, dec(a, 1)?, true)),
    def!("pi", [], Float8, |_, _| Ok(Value::Float8(std::f64::consts::PI))),
    def!("degrees", [Float8], Float8, |a, _| float_result(float(a, 0)?.to_degrees(), float(a, 0)?)),
    def!("radians", [Float8], Float8, |a, _| float_result(float(a, 0)?.to_radians(), float(a, 0)?)),
    def!("sin", [Float8], Float8, |a, _| trig(float(a, 0)?, f64::sin)),
    def!("cos", [Float8], Float8, |a, _| trig(float(a, 0)?, f64::cos)),
    def!("tan", [Float8], Float8, |a, _| trig(float(a, 0)?, f64::tan)),
    def!("cot", [Float8], Float8, |a, _| trig(float(a, 0)?, |x| 1.0 / x.tan())),
    def!("asin", [Float8], Float8, |a, _| inverse_trig(float(a, 0)?, f64::asin)),
    def!("acos", [Float8], Float8, |a, _| inverse_trig(float(a, 0)?, f64::acos)),
    def!("atan", [Float8], Float8, |a, _| Ok(Value::Float8(float(a, 0)?.atan()))),
    def!("atan2", [Float8, Float8], Float8, |a, _| Ok(Value::Float8(float(a, 0)?.atan2(float(a, 1)?)))),
    def!("random", [], Float8, |_, _| Ok(Value::Float8(random())), VOLATILE),
    def!("width_bucket", [Float8, Float8, Float8, Int4], Int4, |a, _| width_bucket(float(a, 0)?, float(a, 1)?, float(a, 2)?, int(a, 3)?)),
    // Date and time.
    def!("now", [], TsTz, |_, c| Ok(Value::TimestampTz(c.txn_ts))),
    def!("current_timestamp", [], TsTz, |_, c| Ok(Value::TimestampTz(c.txn_ts))),
    def!("transaction_timestamp", [], TsTz, |_, c| Ok(Value::TimestampTz(c.txn_ts))),
    def!("statement_timestamp", [], TsTz, |_, c| Ok(Value::TimestampTz(c.statement_ts))),
    def!("clock_timestamp", [], TsTz, |_, _| Ok(Value::TimestampTz(datetime::now_micros())), VOLATILE),
    def!("localtimestamp", [], Ts, |_, c| Ok(Value::Timestamp(c.txn_ts))),
    def!("current_date", [], Date, |_, c| Ok(Value::Date(c.txn_ts.div_euclid(USECS_PER_DAY) as i32))),
    def!("date_part", [Text, Ts], Float8, |a, _| datetime::date_part(text(a, 0)?, &a[1])),
    def!("date_part", [Text, TsTz], Float8, |a, _| datetime::date_part(text(a, 0)?, &a[1])),
    def!("date_part", [Text, Date], Float8, |a, _| datetime::date_part(text(a, 0)?, &a[1])),
    def!("date_part", [Text, Interval], Float8, |a, _| datetime::date_part(text(a, 0)?, &a[1])),
    def!("date_trunc", [Text, Ts], Ts, |a, _| datetime::date_trunc(text(a, 0)?, &a[1])),
    def!("date_trunc", [Text, TsTz], TsTz, |a, _| datetime::date_trunc(text(a, 0)?, &a[1])),
    def!("date_trunc", [Text, Interval], Interval, |a, _| datetime::date_trunc(text(a, 0)?, &a[1])),
    def!("age", [Ts, Ts], Interval, |a, _| Ok(Value::Interval(datetime::age(stamp(a, 0)?, stamp(a, 1)?)?))),
    def!("age", [TsTz, TsTz], Interval, |a, _| Ok(Value::Interval(datetime::age(stamp(a, 0)?, stamp(a, 1)?)?))),
    def!("age", [Ts], Interval, |a, c| Ok(Value::Interval(datetime::age(midnight(c), stamp(a, 0)?)?))),
    def!("age", [TsTz], Interval, |a, c| Ok(Value::Interval(datetime::age(midnight(c), stamp(a, 0)?)?))),
    def!("make_date", [Int4, Int4, Int4], Date, |a, _| make_date(int(a, 0)?, int(a, 1)?, int(a, 2)?)),
    def!("make_timestamp", [Int4, Int4, Int4, Int4, Int4, Float8], Ts, |a, _| make_timestamp(int(a, 0)?, int(a, 1)?, int(a, 2)?, int(a, 3)?, int(a, 4)?, float(a, 5)?)),
    def!("make_interval", [Int4, Int4, Int4, Int4, Int4, Int4, Float8], Interval, |a, _| make_interval(a)),
    def!("to_timestamp", [Float8], TsTz, |a, _| to_timestamp_epoch(float(a, 0)?)),
    def!("to_char", [Ts, Text], Text, |a, _| to_char_time(&a[0], text(a, 1)?)),
    def!("to_char", [TsTz, Text], Text, |a, _| to_char_time(&a[0], text(a, 1)?)),
    def!("to_char", [Interval, Text], Text, |a, _| to_char_time(&a[0], text(a, 1)?)),
    def!("to_char", [Int4, Text], Text, |a, _| to_char_number(&a[0], text(a, 1)?)),
    def!("to_char", [Int8, Text], Text, |a, _| to_char_number(&a[0], text(a, 1)?)),
    def!("to_char", [Numeric, Text], Text, |a, _| to_char_number(&a[0], text(a, 1)?)),
    def!("to_char", [Float8, Text], Text, |a, _| to_char_number(&a[0], text(a, 1)?)),
    def!("to_date", [Text, Text], Date, |a, _| to_date(text(a, 0)?, text(a, 1)?)),
    def!("to_timestamp", [Text, Text], TsTz, |a, _| to_timestamp_fmt(text(a, 0)?, text(a, 1)?)),
    def!("justify_days", [Interval], Interval, |a, _| Ok(Value::Interval(datetime::justify_days(&interval(a, 0)?)?))),
    def!("justify_hours", [Interval], Interval, |a, _| Ok(Value::Interval(datetime::justify_hours(&interval(a, 0)?)?))),
    def!("justify_interval", [Interval], Interval, |a, _| Ok(Value::Interval(datetime::justify_interval(&interval(a, 0)?)?))),
    def!("isfinite", [Date], Bool, |a, _| Ok(Value::Bool(matches!(a[0], Value::Date(d) if datetime::date_is_finite(d))))),
    def!("isfinite", [Ts], Bool, |a, _| Ok(Value::Bool(datetime::ts_is_finite(stamp(a, 0)?)))),
    def!("isfinite", [TsTz], Bool, |a, _| Ok(Value::Bool(datetime::ts_is_finite(stamp(a, 0)?)))),
    def!("isfinite", [Interval], Bool, |_, _| Ok(Value::Bool(true))),
    // Misc.
    def!("version", [], Text, |_, _| Ok(Value::Text(version()))),
];

/// Functions with any number of arguments of any type, resolved apart from the table.
const VARIADIC: [&str; 4] = ["concat", "concat_ws", "greatest", "least"];

// ---------------------------------------------------------------------------------------------
// Resolution

/// How well an argument type fits a parameter type: None if it does not convert implicitly.
fn fit(arg: &DataType, param: &DataType) -> Option<(u32, u32)> {
    use DataType as T;
    const EXACT: (u32, u32) = (1, 0);
    match (arg, param) {
        (a, p) if a == p => Some(EXACT),
        (T::Numeric(_), T::Numeric(_)) => Some(EXACT),
        (a, T::Text) if a.is_text() => Some(EXACT),
        (T::Unknown, T::Text) => Some((0, 2)),
        (T::Unknown, T::Float8 | T::TimestampTz | T::Interval) => Some((0, 1)),
        (T::Unknown, _) => Some((0, 0)),
        (a, p) if a.is_numeric() && p.is_numeric() => {
            let rank = |t: &DataType| match t {
                T::Int2 => 1,
                T::Int4 => 2,
                T::Int8 => 3,
                T::Numeric(_) => 4,
                T::Float4 => 5,
                _ => 6,
            };
            (rank(a) < rank(p)).then_some((0, u32::from(*p == T::Float8)))
        }
        (T::Date, T::Timestamp) => Some((0, 0)),
        (T::Date | T::Timestamp, T::TimestampTz) => Some((0, 1)),
        _ => None,
    }
}

/// Resolves a function by lower-case name and argument types (Unknown = an untyped literal or
/// NULL). Ok(None) if no function has this name; 42883 if none takes these types.
pub fn resolve(name: &str, args: &[DataType]) -> Result<Option<Resolved>> {
    if VARIADIC.contains(&name) {
        return resolve_variadic(name, args).map(Some);
    }
    if let Some(r) = resolve_special(name, args) {
        return Ok(Some(r));
    }
    let mut known = false;
    let mut best: Option<(&Def, (u32, u32))> = None;
    for def in DEFS.iter().filter(|d| d.name == name) {
        known = true;
        if def.params.len() != args.len() {
            continue;
        }
        let mut score = (0, 0);
        let mut ok = true;
        for (a, p) in args.iter().zip(def.params) {
            match fit(a, &p.ty()) {
                Some((e, pref)) => {
                    score.0 += e;
                    score.1 += pref;
                }
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok && best.is_none_or(|(_, s)| score > s) {
            best = Some((def, score));
        }
    }
    if !known {
        return Ok(None);
    }
    let Some((def, _)) = best else {
        return Err(no_function(name, args));
    };
    Ok(Some(Resolved {
        return_type: def.ret.ty(),
        arg_types: def.params.iter().map(|p| p.ty()).collect(),
        call: def.call,
        strict: def.flags & LAX == 0,
        volatile: def.flags & VOLATILE != 0,
    }))
}

/// Functions whose overload depends on more than the table can say: `pg_typeof` (any argument,
/// never cast) and the `character(n)` overloads of the length functions, which see the value
/// with its padding (PostgreSQL's `bpcharlen` ignores trailing spaces, `bpcharoctetlen` counts
/// them).
fn resolve_special(name: &str, args: &[DataType]) -> Option<Resolved> {
    let call: ScalarImpl = match (name, args) {
        ("pg_typeof", [t]) => type_name_fn(t),
        ("length" | "char_length" | "character_length", [DataType::Char(_)]) => {
            |a, _| Ok(Value::Int4(char_len(text(a, 0)?.trim_end_matches(' '))))
        }
        ("octet_length", [DataType::Char(_)]) => {
            |a, _| Ok(Value::Int4(byte_len(text(a, 0)?.len())))
        }
        _ => return None,
    };
    let pg_typeof = name == "pg_typeof";
    Some(Resolved {
        return_type: if pg_typeof {
            DataType::Text
        } else {
            DataType::Int4
        },
        arg_types: args.to_vec(),
        call,
        strict: !pg_typeof,
        volatile: false,
    })
}

/// `pg_typeof` for an argument of type `t`: a function that returns the type's name.
fn type_name_fn(t: &DataType) -> ScalarImpl {
    use DataType as T;
    macro_rules! named {
        ($s:literal) => {
            |_, _| Ok(Value::Text($s.into()))
        };
    }
    match t {
        T::Bool => named!("boolean"),
        T::Int2 => named!("smallint"),
        T::Int4 => named!("integer"),
        T::Int8 => named!("bigint"),
        T::Float4 => named!("real"),
        T::Float8 => named!("double precision"),
        T::Numeric(_) => named!("numeric"),
        T::Text => named!("text"),
        T::Varchar(_) => named!("character varying"),
        T::Char(_) => named!("character"),
        T::Bytea => named!("bytea"),
        T::Date => named!("date"),
        T::Timestamp => named!("timestamp without time zone"),
        T::TimestampTz => named!("timestamp with time zone"),
        T::Interval => named!("interval"),
        T::Unknown => named!("unknown"),
    }
}

fn no_function(name: &str, args: &[DataType]) -> Error {
    let list: Vec<String> = args.iter().map(|t| t.name()).collect();
    err!(
        UNDEFINED_FUNCTION,
        "function {name}({}) does not exist",
        list.join(", ")
    )
}

fn resolve_variadic(name: &str, args: &[DataType]) -> Result<Resolved> {
    match name {
        "concat" | "concat_ws" => {
            if args.is_empty() {
                return Err(no_function(name, args));
            }
            // Arguments keep their types: concat prints each with its output function
            // (concat(true) is 't', while true::text is 'true').
            let arg_types = args
                .iter()
                .map(|t| match t {
                    DataType::Unknown => DataType::Text,
                    t => t.clone(),
                })
                .collect();
            Ok(Resolved {
                return_type: DataType::Text,
                arg_types,
                call: if name == "concat" { concat } else { concat_ws },
                strict: false,
                volatile: false,
            })
        }
        _ => {
            let Some(first) = args.first() else {
                return Err(err!(SYNTAX_ERROR, "syntax error at or near \")\""));
            };
            let mut common = first.clone();
            for t in &args[1..] {
                common = DataType::common(&common, t).ok_or_else(|| {
                    err!(
                        DATATYPE_MISMATCH,
                        "{} types {} and {} cannot be matched",
                        name.to_uppercase(),
                        common,
                        t
                    )
                })?;
            }
            let common = match common {
                DataType::Unknown | DataType::Varchar(_) | DataType::Char(_) => DataType::Text,
                DataType::Numeric(_) => DataType::Numeric(None),
                t => t,
            };
            Ok(Resolved {
                return_type: common.clone(),
                arg_types: vec![common; args.len()],
                call: if name == "greatest" { greatest } else { least },
                strict: false,
                volatile: false,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Argument access (the caller has cast the arguments; anything else is an internal error)

fn bad_arg(args: &[Value], i: usize) -> Error {
    let got = args
        .get(i)
        .map_or("nothing".to_string(), |v| v.data_type().name());
    err!(
        INTERNAL_ERROR,
        "function argument {} has unexpected type {got}",
        i + 1
    )
}

fn text(args: &[Value], i: usize) -> Result<&str> {
    match args.get(i) {
        Some(Value::Text(s)) => Ok(s),
        _ => Err(bad_arg(args, i)),
    }
}

fn bytes(args: &[Value], i: usize) -> Result<&[u8]> {
    match args.get(i) {
        Some(Value::Bytea(b)) => Ok(b),
        _ => Err(bad_arg(args, i)),
    }
}

fn int(args: &[Value], i: usize) -> Result<i32> {
    match args.get(i) {
        Some(Value::Int4(v)) => Ok(*v),
        Some(Value::Int2(v)) => Ok(*v as i32),
        _ => Err(bad_arg(args, i)),
    }
}

fn big(args: &[Value], i: usize) -> Result<i64> {
    args.get(i)
        .and_then(Value::as_i64)
        .ok_or_else(|| bad_arg(args, i))
}

fn float(args: &[Value], i: usize) -> Result<f64> {
    match args.get(i) {
        Some(Value::Float8(v)) => Ok(*v),
        Some(v) if v.as_i64().is_some() => Ok(v.as_f64().unwrap_or(0.0)),
        _ => Err(bad_arg(args, i)),
    }
}

fn dec(args: &[Value], i: usize) -> Result<Decimal> {
    args.get(i)
        .and_then(Value::as_decimal)
        .ok_or_else(|| bad_arg(args, i))
}

fn stamp(args: &[Value], i: usize) -> Result<i64> {
    match args.get(i) {
        Some(Value::Timestamp(t) | Value::TimestampTz(t)) => Ok(*t),
        _ => Err(bad_arg(args, i)),
    }
}

fn interval(args: &[Value], i: usize) -> Result<Interval> {
    match args.get(i) {
        Some(Value::Interval(iv)) => Ok(*iv),
        _ => Err(bad_arg(args, i)),
    }
}

// ---------------------------------------------------------------------------------------------
// Strings

fn char_len(s: &str) -> i32 {
    i32::try_from(s.chars().count()).unwrap_or(i32::MAX)
}

fn byte_len(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn too_long() -> Error {
    err!(PROGRAM_LIMIT_EXCEEDED, "requested length too large")
}

/// initcap: the first letter of each run of letters and digits upper case, the rest lower.
fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        if in_word {
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c.to_ascii_uppercase());
        }
        in_word = c.is_ascii_alphanumeric();
    }
    out
}

/// substr(s, start [, count]) with SQL's rules for starts before 1.
fn substr(s: &str, start: i32, count: Option<i32>) -> Result<Value> {
    let start = start as i64;
    let end = match count {
        Some(c) if c < 0 => {
            return Err(Error::new(
                SUBSTRING_ERROR,
                "negative substring length not allowed",
            ));
        }
        Some(c) => start + c as i64,
        None => i64::MAX,
    };
    let from = start.max(1);
    if end <= from {
        return Ok(Value::Text(String::new()));
    }
    let taken = usize::try_from(end - from).unwrap_or(usize::MAX);
    Ok(Value::Text(
        s.chars().skip((from - 1) as usize).take(taken).collect(),
    ))
}

/// The 1-based character position of `needle` in `hay`, 0 if absent.
fn strpos(hay: &str, needle: &str) -> i32 {
    match hay.find(needle) {
        Some(byte) => char_len(&hay[..byte]) + 1,
        None => 0,
    }
}

fn replace(s: &str, from: &str, to: &str) -> Result<Value> {
    if from.is_empty() {
        return Ok(Value::Text(s.to_string()));
    }
    let count = s.matches(from).count();
    let size = s.len() - count * from.len() + count.saturating_mul(to.len());
    if size > MAX_ALLOC {
        return Err(too_long());
    }
    Ok(Value::Text(s.replace(from, to)))
}

fn trim(s: &str, chars: &str, leading: bool, trailing: bool) -> Value {
    let set: Vec<char> = chars.chars().collect();
    let mut r = s;
    if leading {
        r = r.trim_start_matches(|c| set.contains(&c));
    }
    if trailing {
        r = r.trim_end_matches(|c| set.contains(&c));
    }
    Value::Text(r.to_string())
}

fn pad(s: &str, len: i32, fill: &str, left: bool) -> Result<Value> {
    let len = len.max(0) as usize;
    let have = s.chars().count();
    if have >= len || fill.is_empty() {
        return Ok(Value::Text(s.chars().take(len).collect()));
    }
    let need = len - have;
    if need
        .saturating_mul(fill.len().max(1))
        .saturating_add(s.len())
        > MAX_ALLOC
    {
        return Err(too_long());
    }
    let padding: String = fill.chars().cycle().take(need).collect();
    Ok(Value::Text(if left {
        padding + s
    } else {
        format!("{s}{padding}")
    }))
}

fn left(s: &str, n: i32) -> String {
    if n >= 0 {
        s.chars().take(n as usize).collect()
    } else {
        let keep = (char_len(s) as i64 + n as i64).max(0) as usize;
        s.chars().take(keep).collect()
    }
}

fn right(s: &str, n: i32) -> String {
    let len = char_len(s) as i64;
    let skip = if n >= 0 {
        (len - n as i64).max(0)
    } else {
        (-(n as i64)).min(len)
    };
    s.chars().skip(skip as usize).collect()
}

fn repeat(s: &str, n: i32) -> Result<Value> {
    let n = n.max(0) as usize;
    if s.len().saturating_mul(n) > MAX_ALLOC {
        return Err(too_long());
    }
    Ok(Value::Text(s.repeat(n)))
}

fn split_part(s: &str, delim: &str, n: i32) -> Result<Value> {
    if n == 0 {
        bail!(INVALID_PARAMETER_VALUE, "field position must not be zero");
    }
    if delim.is_empty() {
        let whole = n == 1 || n == -1;
        return Ok(Value::Text(if whole {
            s.to_string()
        } else {
            String::new()
        }));
    }
    let parts: Vec<&str> = s.split(delim).collect();
    let idx = if n > 0 {
        n as i64 - 1
    } else {
        parts.len() as i64 + n as i64
    };
    let part = if s.is_empty() {
        None
    } else {
        usize::try_from(idx).ok().and_then(|i| parts.get(i))
    };
    Ok(Value::Text(part.map_or(String::new(), |p| p.to_string())))
}

fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    let digest = Md5::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn chr(n: i32) -> Result<Value> {
    if n < 0 {
        bail!(INVALID_PARAMETER_VALUE, "character number must be positive");
    }
    if n == 0 {
        bail!(PROGRAM_LIMIT_EXCEEDED, "null character not permitted");
    }
    if n > 0x10ffff {
        bail!(
            PROGRAM_LIMIT_EXCEEDED,
            "requested character too large for encoding: {n}"
        );
    }
    match char::from_u32(n as u32) {
        Some(c) => Ok(Value::Text(c.to_string())),
        None => bail!(
            PROGRAM_LIMIT_EXCEEDED,
            "requested character not valid for encoding: {n}"
        ),
    }
}

/// Keywords that quote_ident quotes (all but PostgreSQL's unreserved ones).
const QUOTED_KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

fn quote_ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !QUOTED_KEYWORDS.contains(&s);
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

fn quote_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 3);
    if s.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

fn translate(s: &str, from: &str, to: &str) -> String {
    let from: Vec<char> = from.chars().collect();
    let to: Vec<char> = to.chars().collect();
    s.chars()
        .filter_map(|c| match from.iter().position(|f| *f == c) {
            Some(i) => to.get(i).copied(),
            None => Some(c),
        })
        .collect()
}

fn concat(args: &[Value], _: &FnContext) -> Result<Value> {
    let mut out = String::new();
    for v in args {
        if let Some(s) = v.to_text() {
            out.push_str(&s);
        }
    }
    Ok(Value::Text(out))
}

fn concat_ws(args: &[Value], _: &FnContext) -> Result<Value> {
    let Some(sep) = args.first().and_then(Value::to_text) else {
        return Ok(Value::Null);
    };
    let parts: Vec<String> = args[1..].iter().filter_map(Value::to_text).collect();
    Ok(Value::Text(parts.join(&sep)))
}

fn extreme(args: &[Value], want: Ordering) -> Result<Value> {
    let mut best: Option<&Value> = None;
    for v in args.iter().filter(|v| !v.is_null()) {
        best = match best {
            Some(b) if v.compare(b)? != want => Some(b),
            _ => Some(v),
        };
    }
    Ok(best.cloned().unwrap_or(Value::Null))
}

fn greatest(args: &[Value], _: &FnContext) -> Result<Value> {
    extreme(args, Ordering::Greater)
}

fn least(args: &[Value], _: &FnContext) -> Result<Value> {
    extreme(args, Ordering::Less)
}

// ---------------------------------------------------------------------------------------------
// Math

fn num(d: Decimal) -> Value {
    let mut d = d;
    if d.is_zero() {
        d.set_sign_positive(true);
    }
    Value::Numeric(d)
}

fn numeric_overflow() -> Error {
    err!(NUMERIC_VALUE_OUT_OF_RANGE, "value overflows numeric format")
}

fn abs_int(args: &[Value], ty: DataType) -> Result<Value> {
    let v = big(args, 0)?;
    let r = v
        .checked_abs()
        .ok_or_else(|| err!(NUMERIC_VALUE_OUT_OF_RANGE, "{ty} out of range"))?;
    int_value(r, &ty)
}

fn int_value(v: i64, ty: &DataType) -> Result<Value> {
    let out = || err!(NUMERIC_VALUE_OUT_OF_RANGE, "{ty} out of range");
    Ok(match ty {
        DataType::Int2 => Value::Int2(i16::try_from(v).map_err(|_| out())?),
        DataType::Int4 => Value::Int4(i32::try_from(v).map_err(|_| out())?),
        _ => Value::Int8(v),
    })
}

fn int_mod(args: &[Value], ty: DataType) -> Result<Value> {
    let (x, y) = (big(args, 0)?, big(args, 1)?);
    if y == 0 {
        bail!(DIVISION_BY_ZERO, "division by zero");
    }
    int_value(x.wrapping_rem(y), &ty)
}

fn numeric_mod(x: Decimal, y: Decimal) -> Result<Value> {
    if y.is_zero() {
        bail!(DIVISION_BY_ZERO, "division by zero");
    }
    let mut r = x.checked_rem(y).ok_or_else(numeric_overflow)?;
    r.rescale(x.scale().max(y.scale()));
    Ok(num(r))
}

fn numeric_divtrunc(x: Decimal, y: Decimal) -> Result<Value> {
    if y.is_zero() {
        bail!(DIVISION_BY_ZERO, "division by zero");
    }
    let q = x.checked_div(y).ok_or_else(numeric_overflow)?;
    Ok(num(q.trunc()))
}

fn gcd_u128(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn gcd_int(args: &[Value], ty: DataType, lcm: bool) -> Result<Value> {
    let (x, y) = (big(args, 0)?, big(args, 1)?);
    let g = gcd_u128(x.unsigned_abs() as u128, y.unsigned_abs() as u128);
    let r: i128 = if lcm {
        if x == 0 || y == 0 {
            0
        } else {
            (x.unsigned_abs() as u128 / g * y.unsigned_abs() as u128) as i128
        }
    } else {
        g as i128
    };
    let r = i64::try_from(r).map_err(|_| err!(NUMERIC_VALUE_OUT_OF_RANGE, "{ty} out of range"))?;
    int_value(r, &ty)
}

fn gcd_numeric(x: Decimal, y: Decimal, lcm: bool) -> Result<Value> {
    let scale = x.scale().max(y.scale());
    let mut a = x.abs();
    let mut b = y.abs();
    a.rescale(scale);
    b.rescale(scale);
    let (ma, mb) = (a.mantissa().unsigned_abs(), b.mantissa().unsigned_abs());
    let g = gcd_u128(ma, mb);
    let m = if !lcm {
        g
    } else if ma == 0 || mb == 0 {
        0
    } else {
        (ma / g).checked_mul(mb).ok_or_else(numeric_overflow)?
    };
    let m = i128::try_from(m).map_err(|_| numeric_overflow())?;
    let d = Decimal::try_from_i128_with_scale(m, scale).map_err(|_| numeric_overflow())?;
    Ok(num(d))
}

/// round/trunc of a numeric to `scale` decimal places (negative: to tens, hundreds...).
fn round_numeric(d: Decimal, scale: i32, truncate: bool) -> Result<Value> {
    let strategy = if truncate {
        RoundingStrategy::ToZero
    } else {
        RoundingStrategy::MidpointAwayFromZero
    };
    if scale >= 0 {
        let s = scale.min(28) as u32;
        let mut r = d.round_dp_with_strategy(s, strategy);
        r.rescale(s);
        return Ok(num(r));
    }
    let shift = (-(scale as i64)).min(29) as u32;
    let Some(factor) = 10i128
        .checked_pow(shift)
        .and_then(|f| Decimal::try_from_i128_with_scale(f, 0).ok())
    else {
        return Ok(num(Decimal::ZERO));
    };
    let q = d.checked_div(factor).ok_or_else(numeric_overflow)?;
    let r = q.round_dp_with_strategy(0, strategy);
    let mut out = r.checked_mul(factor).ok_or_else(numeric_overflow)?;
    out.rescale(0);
    Ok(num(out))
}

fn float_sign(f: f64) -> f64 {
    if f > 0.0 {
        1.0
    } else if f < 0.0 {
        -1.0
    } else {
        0.0
    }
}

fn dec_sign(d: Decimal) -> i32 {
    if d.is_zero() {
        0
    } else if d.is_sign_negative() {
        -1
    } else {
        1
    }
}

/// A float result: overflow and underflow are errors (22003), as in PostgreSQL's float code.
fn float_result(r: f64, input: f64) -> Result<Value> {
    if r.is_infinite() && input.is_finite() {
        bail!(NUMERIC_VALUE_OUT_OF_RANGE, "value out of range: overflow");
    }
    Ok(Value::Float8(r))
}

fn float_sqrt(x: f64) -> Result<Value> {
    if x < 0.0 {
        return Err(Error::new(
            INVALID_ARGUMENT_FOR_POWER,
            "cannot take square root of a negative number",
        ));
    }
    Ok(Value::Float8(x.sqrt()))
}

fn float_power(x: f64, y: f64) -> Result<Value> {
    if x == 0.0 && y < 0.0 {
        return Err(Error::new(
            INVALID_ARGUMENT_FOR_POWER,
            "zero raised to a negative power is undefined",
        ));
    }
    if x < 0.0 && y.is_finite() && y.fract() != 0.0 {
        return Err(Error::new(
            INVALID_ARGUMENT_FOR_POWER,
            "a negative number raised to a non-integer power yields a complex result",
        ));
    }
    let r = x.powf(y);
    if r.is_infinite() && x.is_finite() && y.is_finite() {
        bail!(NUMERIC_VALUE_OUT_OF_RANGE, "value out of range: overflow");
    }
    if r == 0.0 && x != 0.0 && x.is_finite() && y.is_finite() {
        bail!(NUMERIC_VALUE_OUT_OF_RANGE, "value out of range: underflow");
    }
    Ok(Value::Float8(r))
}

fn float_exp(x: f64) -> Result<Value> {
    let r = x.exp();
    if r.is_infinite() && x.is_finite() {
        bail!(NUMERIC_VALUE_OUT_OF_RANGE, "value out of range: overflow");
    }
    if r == 0.0 && x.is_finite() {
        bail!(NUMERIC_VALUE_OUT_OF_RANGE, "value out of range: underflow");
    }
    Ok(Value::Float8(r))
}

fn float_log(x: f64, f: fn(f64) -> f64) -> Result<Value> {
    if x == 0.0 {
        return Err(Error::new(
            INVALID_ARGUMENT_FOR_LOG,
            "cannot take logarithm of zero",
        ));
    }
    if x < 0.0 {
        return Err(Error::new(
            INVALID_ARGUMENT_FOR_LOG,
            "cannot take logarithm of a negative number",
        ));
    }
    Ok(Value::Float8(f(x)))
}

fn trig(x: f64, f: fn(f64) -> f64) -> Result<Value> {
    if x.is_infinite() {
        bail!(NUMERIC_VALUE_OUT_OF_RANGE, "input is out of range");
    }
    Ok(Value::Float8(f(x)))
}

fn inverse_trig(x: f64, f: fn(f64) -> f64) -> Result<Value> {
    if !x.is_nan() && !(-1.0..=1.0).contains(&x) {
        bail!(NUMERIC_VALUE_OUT_OF_RANGE, "input is out of range");
    }
    Ok(Value::Float8(f(x)))
}

thread_local! {
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// A float in [0, 1) from a xorshift generator seeded from the clock.
fn random() -> f64 {
    RNG.with(|state| {
        let mut x = state.get();
        if x == 0 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64);
            let local = &x as *const u64 as u64;
            x = (nanos ^ local.rotate_left(32)) | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    })
}

fn width_bucket(op: f64, low: f64, high: f64, count: i32) -> Result<Value> {
    if count <= 0 {
        return Err(Error::new(
            INVALID_ARGUMENT_FOR_WIDTH_BUCKET,
            "count must be greater than zero",
        ));
    }
    if low.is_nan() || high.is_nan() || op.is_nan() {
        return Err(Error::new(
            INVALID_ARGUMENT_FOR_WIDTH_BUCKET,
            "operand, lower bound, and upper bound cannot be NaN",
        ));
    }
    if low.is_infinite() || high.is_infinite() {
        return Err(Error::new(
            INVALID_ARGUMENT_FOR_WIDTH_BUCKET,
            "lower and upper bounds must be finite",
        ));
    }
    if low == high {
        return Err(Error::new(
            INVALID_ARGUMENT_FOR_WIDTH_BUCKET,
            "lower bound cannot equal upper bound",
        ));
    }
    let n = count as f64;
    let bucket: i64 = if low < high {
        if op < low {
            0
        } else if op >= high {
            count as i64 + 1
        } else {
            ((n * ((op - low) / (high - low))) as i64 + 1).min(count as i64)
        }
    } else if op > low {
        0
    } else if op <= high {
        count as i64 + 1
    } else {
        ((n * ((low - op) / (low - high))) as i64 + 1).min(count as i64)
    };
    Ok(Value::Int4(i32::try_from(bucket).map_err(|_| {
        err!(NUMERIC_VALUE_OUT_OF_RANGE, "integer out of range")
    })?))
}

// Numeric transcendental functions, computed in 28-digit decimals with PostgreSQL's result
// scales (at least 16 significant digits, no fewer decimals than the input).

/// Decimal exponent of the leading digit (floor(log10(|d|))); 0 for zero.
fn dec_exponent(d: Decimal) -> i32 {
    if d.is_zero() {
        return 0;
    }
    let digits = d.mantissa().unsigned_abs().to_string().len() as i32;
    digits - 1 - d.scale() as i32
}

/// PostgreSQL's weight: the exponent in base-10000 digits.
fn nbase_weight(d: Decimal) -> i32 {
    dec_exponent(d).div_euclid(4)
}

/// Rounds to `rscale` decimals (0..=28) and shows exactly that many.
fn with_scale(d: Decimal, rscale: i32) -> Value {
    let s = rscale.clamp(0, 28) as u32;
    let mut r = d.round_dp_with_strategy(s, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(s);
    num(r)
}

fn result_scale(rscale: i32, inputs: &[Decimal]) -> i32 {
    inputs
        .iter()
        .fold(rscale, |r, d| r.max(d.scale() as i32))
        .clamp(0, 1000)
}

fn dec_sqrt(a: Decimal) -> Option<Decimal> {
    if a.is_zero() {
        return Some(Decimal::ZERO);
    }
    let guess = a.to_f64()?.sqrt();
    let mut x = Decimal::from_f64(guess)
        .filter(|g| !g.is_zero())
        .unwrap_or(Decimal::ONE);
    for _ in 0..100 {
        let next = (x + a.checked_div(x)?) / Decimal::TWO;
        if next == x {
            break;
        }
        x = next;
    }
    Some(x)
}

fn numeric_sqrt(a: Decimal) -> Result<Value> {
    if a.is_sign_negative() && !a.is_zero() {
        return Err(Error::new(
            INVALID_ARGUMENT_FOR_POWER,
            "cannot take square root of a negative number",
        ));
    }
    let sweight = (nbase_weight(a) + 1) * 4 / 2 - 1;
    let rscale = result_scale(16 - sweight, &[a]);
    let r = dec_sqrt(a).ok_or_else(numeric_overflow)?;
    Ok(with_scale(r, rscale))
}

/// ln(10) and e to 28 decimals.
fn ln_10() -> Decimal {
    Decimal::from_i128_with_scale(23_025_850_929_940_456_840_179_914_547, 28)
}

fn euler() -> Decimal {
    Decimal::from_i128_with_scale(27_182_818_284_590_452_353_602_874_714, 28)
}

/// e^x for |x| up to ~65 (past that the result does not fit).
fn dec_exp(x: Decimal) -> Option<Decimal> {
    if x.is_sign_negative() {
        let r = dec_exp(-x)?;
        return Decimal::ONE.checked_div(r);
    }
    let n = x.trunc().to_u32()?;
    if n > 66 {
        return None;
    }
    let f = x - Decimal::from(n);
    // Taylor series for the fraction, in halves to converge fast.
    let half = f / Decimal::TWO;
    let mut term = Decimal::ONE;
    let mut sum = Decimal::ONE;
    for k in 1..60u32 {
        term = term.checked_mul(half)? / Decimal::from(k);
        if term.is_zero() {
            break;
        }
        sum = sum.checked_add(term)?;
    }
    let mut r = sum.checked_mul(sum)?;
    for _ in 0..n {
        r = r.checked_mul(euler())?;
    }
    Some(r)
}

/// ln(x) for x > 0.
fn dec_ln(x: Decimal) -> Option<Decimal> {
    // x = m * 10^e with m in [1, 10).
    let e = dec_exponent(x);
    let mut m = x;
    if e > 0 {
        m = m.checked_div(Decimal::from_i128_with_scale(
            10i128.checked_pow(e as u32)?,
            0,
        ))?;
    } else if e < 0 {
        m = m.checked_mul(Decimal::from_i128_with_scale(
            10i128.checked_pow((-e) as u32)?,
            0,
        ))?;
    }
    // ln(m) = 4 ln(m^(1/4)), then 2 atanh((y-1)/(y+1)).
    let y = dec_sqrt(dec_sqrt(m)?)?;
    let z = (y - Decimal::ONE).checked_div(y + Decimal::ONE)?;
    let z2 = z.checked_mul(z)?;
    let mut power = z;
    let mut sum = Decimal::ZERO;
    for k in 0..200u32 {
        let term = power / Decimal::from(2 * k + 1);
        if term.is_zero() {
            break;
        }
        sum = sum.checked_add(term)?;
        power = power.checked_mul(z2)?;
    }
    let ln_m = sum.checked_mul(Decimal::from(8))?;
    ln_m.checked_add(ln_10().checked_mul(Decimal::from(e))?)
}

/// PostgreSQL's estimate of the decimal weight of ln(x).
fn ln_dweight(x: Decimal) -> i32 {
    let lo = Decimal::new(9, 1);
    let hi = Decimal::new(11, 1);
    if x >= lo && x <= hi {
        let d = x - Decimal::ONE;
        return if d.is_zero() { 0 } else { dec_exponent(d) };
    }
    let ln = x.to_f64().unwrap_or(1.0).ln();
    if ln == 0.0 || !ln.is_finite() {
        0
    } else {
        ln.abs().log10() as i32
    }
}

fn log_arg_check(x: Decimal) -> Result<()> {
    if x.is_zero() {
        return Err(Error::new(
            INVALID_ARGUMENT_FOR_LOG,
            "cannot take logarithm of zero",
        ));
    }
    if x.is_sign_negative() {
        return Err(Error::new(
            INVALID_ARGUMENT_FOR_LOG,
            "cannot take logarithm of a negative number",
        ));
    }
    Ok(())
}

fn numeric_ln(x: Decimal) -> Result<Value> {
    log_arg_check(x)?;
    let rscale = result_scale(16 - ln_dweight(x), &[x]);
    Ok(with_scale(dec_ln(x).ok_or_else(numeric_overflow)?, rscale))
}

fn numeric_log(base: Decimal, x: Decimal) -> Result<Value> {
    log_arg_check(base)?;
    log_arg_check(x)?;
    let rscale = result_scale(16 - (ln_dweight(x) - ln_dweight(base)), &[base, x]);
    let lb = dec_ln(base).ok_or_else(numeric_overflow)?;
    if lb.is_zero() {
        bail!(DIVISION_BY_ZERO, "division by zero");
    }
    let lx = dec_ln(x).ok_or_else(numeric_overflow)?;
    Ok(with_scale(
        lx.checked_div(lb).ok_or_else(numeric_overflow)?,
        rscale,
    ))
}

fn numeric_exp(x: Decimal) -> Result<Value> {
    let val = (x.to_f64().unwrap_or(0.0) * std::f64::consts::LOG10_E).clamp(-2000.0, 2000.0);
    let rscale = result_scale(16 - val as i32, &[x]);
    Ok(with_scale(dec_exp(x).ok_or_else(numeric_overflow)?, rscale))
}

fn numeric_power(base: Decimal, exp: Decimal) -> Result<Value> {
    if base.is_zero() && exp.is_sign_negative() && !exp.is_zero() {
        return Err(Error::new(
            INVALID_ARGUMENT_FOR_POWER,
            "zero raised to a negative power is undefined",
        ));
    }
    let integral = exp.fract().is_zero();
    if base.is_sign_negative() && !base.is_zero() && !integral {
        return Err(Error::new(
            INVALID_ARGUMENT_FOR_POWER,
            "a negative number raised to a non-integer power yields a complex result",
        ));
    }
    if integral {
        if let Some(n) = exp
            .trunc()
            .to_i64()
            .filter(|n| n.unsigned_abs() <= i32::MAX as u64)
        {
            let rscale = result_scale(16, &[base]);
            let mut result = Decimal::ONE;
            let mut b = base;
            let mut k = n.unsigned_abs();
            while k > 0 {
                if k & 1 == 1 {
                    result = result.checked_mul(b).ok_or_else(numeric_overflow)?;
                }
                k >>= 1;
                if k > 0 {
                    b = b.checked_mul(b).ok_or_else(numeric_overflow)?;
                }
            }
            if n < 0 {
                result = Decimal::ONE
                    .checked_div(result)
                    .ok_or_else(numeric_overflow)?;
            }
            return Ok(with_scale(result, rscale));
        }
    }
    if base.is_zero() {
        return Ok(with_scale(Decimal::ZERO, result_scale(16, &[base, exp])));
    }
    let ln = dec_ln(base.abs()).ok_or_else(numeric_overflow)?;
    let prod = ln.checked_mul(exp).ok_or_else(numeric_overflow)?;
    let val = prod.to_f64().unwrap_or(0.0) * std::f64::consts::LOG10_E;
    let rscale = result_scale(16 - val.clamp(-2000.0, 2000.0) as i32, &[base, exp]);
    Ok(with_scale(
        dec_exp(prod).ok_or_else(numeric_overflow)?,
        rscale,
    ))
}

// ---------------------------------------------------------------------------------------------
// Date and time

fn midnight(c: &FnContext) -> i64 {
    c.txn_ts.saturating_sub(c.txn_ts.rem_euclid(USECS_PER_DAY))
}

fn make_date(y: i32, m: i32, d: i32) -> Result<Value> {
    let bad = || {
        err!(
            DATETIME_FIELD_OVERFLOW,
            "date field value out of range: {y}-{m:02}-{d:02}"
        )
    };
    if y == 0 || !(1..=12).contains(&m) {
        return Err(bad());
    }
    let year = if y < 0 { y as i64 + 1 } else { y as i64 };
    if d < 1 || d as u32 > datetime::days_in_month(year, m as u32) {
        return Err(bad());
    }
    let days = datetime::days_from_civil(year, m as u32, d as u32);
    let date = datetime::date_add_days(0, days).map_err(|_| {
        err!(
            DATETIME_FIELD_OVERFLOW,
            "date out of range: {y}-{m:02}-{d:02}"
        )
    })?;
    Ok(Value::Date(date))
}

fn make_timestamp(y: i32, mo: i32, d: i32, h: i32, mi: i32, s: f64) -> Result<Value> {
    let Value::Date(date) = make_date(y, mo, d)? else {
        return Err(err!(INTERNAL_ERROR, "make_date returned a non-date"));
    };
    let bad_time = || {
        err!(
            DATETIME_FIELD_OVERFLOW,
            "time field value out of range: {h:02}:{mi:02}:{}",
            format_float(s, 15, None)
        )
    };
    let usecs = (s * 1e6).round_ties_even();
    let fits = (0..=24).contains(&h) && (0..=59).contains(&mi) && (0.0..=60e6).contains(&usecs);
    if !fits || (h == 24 && (mi > 0 || usecs > 0.0)) {
        return Err(bad_time());
    }
    let time =
        h as i64 * datetime::USECS_PER_HOUR + mi as i64 * datetime::USECS_PER_MINUTE + usecs as i64;
    let t = (date as i64)
        .checked_mul(USECS_PER_DAY)
        .and_then(|t| t.checked_add(time))
        .filter(|t| datetime::ts_in_range(*t))
        .ok_or_else(|| {
            err!(
                DATETIME_FIELD_OVERFLOW,
                "timestamp out of range: {y}-{mo:02}-{d:02} {h:02}:{mi:02}:{}",
                format_float(s, 15, None)
            )
        })?;
    Ok(Value::Timestamp(t))
}

fn make_interval(a: &[Value]) -> Result<Value> {
    let out = || err!(DATETIME_FIELD_OVERFLOW, "interval out of range");
    let (years, months, weeks, days, hours, mins) = (
        int(a, 0)? as i64,
        int(a, 1)? as i64,
        int(a, 2)? as i64,
        int(a, 3)? as i64,
        int(a, 4)? as i64,
        int(a, 5)? as i64,
    );
    let secs = float(a, 6)?;
    let m = years
        .checked_mul(12)
        .and_then(|y| y.checked_add(months))
        .ok_or_else(out)?;
    let dd = weeks
        .checked_mul(7)
        .and_then(|w| w.checked_add(days))
        .ok_or_else(out)?;
    let micros = (hours as f64 * 3.6e9 + mins as f64 * 6e7 + secs * 1e6).round_ties_even();
    if !micros.is_finite() || micros.abs() >= 9.2e18 {
        return Err(out());
    }
    Ok(Value::Interval(Interval {
        months: i32::try_from(m).map_err(|_| out())?,
        days: i32::try_from(dd).map_err(|_| out())?,
        micros: micros as i64,
    }))
}

fn to_timestamp_epoch(secs: f64) -> Result<Value> {
    if secs.is_nan() {
        bail!(DATETIME_FIELD_OVERFLOW, "timestamp cannot be NaN");
    }
    if secs.is_infinite() {
        return Ok(Value::TimestampTz(if secs > 0.0 {
            datetime::TS_POS_INF
        } else {
            datetime::TS_NEG_INF
        }));
    }
    let micros = (secs * 1e6).round_ties_even();
    if micros.abs() >= 9.2e18 || !datetime::ts_in_range(micros as i64) {
        bail!(
            DATETIME_FIELD_OVERFLOW,
            "timestamp out of range: \"{}\"",
            format_float(secs, 15, None)
        );
    }
    Ok(Value::TimestampTz(micros as i64))
}

fn version() -> String {
    let os = if std::env::consts::OS == "linux" {
        "pc-linux-gnu"
    } else {
        std::env::consts::OS
    };
    format!(
        "PostgreSQL 15.0 (Strata {}) on {}-{os}, 64-bit",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

// ---------------------------------------------------------------------------------------------
// to_char, to_date, to_timestamp: date/time patterns

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const ROMAN_MONTHS: [&str; 12] = [
    "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII",
];

/// Date/time pattern keywords.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dk {
    Yyyy,
    YCommaYyy,
    Yyy,
    Yy,
    Y,
    Iyyy,
    Iyy,
    Iy,
    I,
    Cc,
    Q,
    Mm,
    Month,
    Mon,
    Rm,
    Dd,
    Ddd,
    Iddd,
    D,
    Id,
    Day,
    Dy,
    Ww,
    Iw,
    W,
    J,
    Hh24,
    Hh12,
    Mi,
    Ss,
    Sssss,
    Ms,
    Us,
    Ff(u8),
    AmPm { dots: bool },
    BcAd { dots: bool },
    Tz,
    Tzh,
    Tzm,
    Of,
}

/// How a name keyword is capitalized: MONTH, Month, month.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Upper,
    Title,
    Lower,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum DNode {
    Key {
        key: Dk,
        case: Case,
        fm: bool,
        th: Option<bool>,
    },
    Lit(String),
}

/// Keyword spellings, longest first within each prefix.
const DCH_KEYS: &[(&str, Dk)] = &[
    ("Y,YYY", Dk::YCommaYyy),
    ("YYYY", Dk::Yyyy),
    ("YYY", Dk::Yyy),
    ("YY", Dk::Yy),
    ("Y", Dk::Y),
    ("IYYY", Dk::Iyyy),
    ("IYY", Dk::Iyy),
    ("IY", Dk::Iy),
    ("IDDD", Dk::Iddd),
    ("ID", Dk::Id),
    ("IW", Dk::Iw),
    ("I", Dk::I),
    ("CC", Dk::Cc),
    ("Q", Dk::Q),
    ("MM", Dk::Mm),
    ("MONTH", Dk::Month),
    ("MON", Dk::Mon),
    ("MS", Dk::Ms),
    ("MI", Dk::Mi),
    ("RM", Dk::Rm),
    ("DDD", Dk::Ddd),
    ("DD", Dk::Dd),
    ("DAY", Dk::Day),
    ("DY", Dk::Dy),
    ("D", Dk::D),
    ("WW", Dk::Ww),
    ("W", Dk::W),
    ("J", Dk::J),
    ("HH24", Dk::Hh24),
    ("HH12", Dk::Hh12),
    ("HH", Dk::Hh12),
    ("SSSSS", Dk::Sssss),
    ("SSSS", Dk::Sssss),
    ("SS", Dk::Ss),
    ("US", Dk::Us),
    ("FF1", Dk::Ff(1)),
    ("FF2", Dk::Ff(2)),
    ("FF3", Dk::Ff(3)),
    ("FF4", Dk::Ff(4)),
    ("FF5", Dk::Ff(5)),
    ("FF6", Dk::Ff(6)),
    ("A.M.", Dk::AmPm { dots: true }),
    ("P.M.", Dk::AmPm { dots: true }),
    ("AM", Dk::AmPm { dots: false }),
    ("PM", Dk::AmPm { dots: false }),
    ("A.D.", Dk::BcAd { dots: true }),
    ("B.C.", Dk::BcAd { dots: true }),
    ("AD", Dk::BcAd { dots: false }),
    ("BC", Dk::BcAd { dots: false }),
    ("TZH", Dk::Tzh),
    ("TZM", Dk::Tzm),
    ("TZ", Dk::Tz),
    ("OF", Dk::Of),
];

/// Keywords whose output follows the case they are written in.
fn is_name_key(k: Dk) -> bool {
    matches!(
        k,
        Dk::Month
            | Dk::Mon
            | Dk::Day
            | Dk::Dy
            | Dk::Rm
            | Dk::AmPm { .. }
            | Dk::BcAd { .. }
            | Dk::Tz
    )
}

fn starts_with_ci(s: &[char], i: usize, word: &str) -> Option<Case> {
    let n = word.chars().count();
    if i + n > s.len() {
        return None;
    }
    let got: String = s[i..i + n].iter().collect();
    if !got.eq_ignore_ascii_case(word) {
        return None;
    }
    let letters: Vec<char> = got.chars().filter(|c| c.is_alphabetic()).collect();
    Some(if letters.iter().all(|c| c.is_uppercase()) {
        Case::Upper
    } else if letters.first().is_some_and(|c| c.is_uppercase())
        && letters[1..].iter().all(|c| c.is_lowercase())
    {
        Case::Title
    } else if letters.iter().all(|c| c.is_lowercase()) {
        Case::Lower
    } else {
        return None;
    })
}

/// Splits a date/time pattern into keywords and literal text.
fn parse_dch(fmt: &str) -> Vec<DNode> {
    let s: Vec<char> = fmt.chars().collect();
    let mut nodes = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == '"' {
            i += 1;
            while i < s.len() && s[i] != '"' {
                if s[i] == '\\' && i + 1 < s.len() {
                    i += 1;
                }
                lit.push(s[i]);
                i += 1;
            }
            i += 1;
            continue;
        }
        if c == '\\' && i + 1 < s.len() {
            lit.push(s[i + 1]);
            i += 2;
            continue;
        }
        let mut j = i;
        let mut fm = false;
        loop {
            if starts_with_ci(&s, j, "FM").is_some() {
                fm = true;
                j += 2;
            } else if starts_with_ci(&s, j, "FX").is_some() || starts_with_ci(&s, j, "TM").is_some()
            {
                j += 2;
            } else {
                break;
            }
        }
        let found = DCH_KEYS.iter().find_map(|(word, key)| {
            let case = starts_with_ci(&s, j, word)?;
            // Name keywords keep their case; numeric ones take upper or lower case alike.
            if !is_name_key(*key)
                && case == Case::Title
                && word.chars().filter(|c| c.is_alphabetic()).count() > 1
            {
                return None;
            }
            Some((*key, case, word.chars().count()))
        });
        match found {
            Some((key, case, len)) => {
                if !lit.is_empty() {
                    nodes.push(DNode::Lit(std::mem::take(&mut lit)));
                }
                j += len;
                let th = match starts_with_ci(&s, j, "TH") {
                    Some(Case::Upper) => Some(true),
                    Some(Case::Lower) => Some(false),
                    _ => None,
                };
                if th.is_some() {
                    j += 2;
                }
                nodes.push(DNode::Key { key, case, fm, th });
                i = j;
            }
            None if j > i => {
                // A lone modifier: nothing to modify.
                i = j;
            }
            None => {
                lit.push(c);
                i += 1;
            }
        }
    }
    if !lit.is_empty() {
        nodes.push(DNode::Lit(lit));
    }
    nodes
}

fn apply_case(s: &str, case: Case) -> String {
    match case {
        Case::Upper => s.to_uppercase(),
        Case::Lower => s.to_lowercase(),
        Case::Title => s.to_string(),
    }
}

fn ordinal_suffix(n: i64, upper: bool) -> &'static str {
    let n = n.abs();
    let s = if (11..=13).contains(&(n % 100)) {
        "th"
    } else {
        match n % 10 {
            1 => "st",
            2 => "nd",
            3 => "rd",
            _ => "th",
        }
    };
    if upper {
        match s {
            "st" => "ST",
            "nd" => "ND",
            "rd" => "RD",
            _ => "TH",
        }
    } else {
        s
    }
}

/// The fields to_char reads: a timestamp's (astronomical year), or an interval's (each field
/// signed, as PostgreSQL splits an interval).
struct CharTm {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    micro: i64,
    /// Days since 1970-01-01 of a timestamp (0 for an interval).
    days: i64,
    interval: bool,
    with_tz: bool,
}

fn to_char_time(v: &Value, fmt: &str) -> Result<Value> {
    if fmt.is_empty() {
        return Ok(Value::Null);
    }
    let ct = match v {
        Value::Timestamp(t) | Value::TimestampTz(t) => {
            if !datetime::ts_is_finite(*t) {
                return Ok(Value::Null);
            }
            let tm = Tm::from_timestamp(*t);
            CharTm {
                year: tm.year,
                month: tm.month as i64,
                day: tm.day as i64,
                hour: tm.hour as i64,
                minute: tm.minute as i64,
                second: tm.second as i64,
                micro: tm.micro as i64,
                days: tm.days(),
                interval: false,
                with_tz: matches!(v, Value::TimestampTz(_)),
            }
        }
        Value::Interval(iv) => CharTm {
            year: iv.months as i64 / 12,
            month: iv.months as i64 % 12,
            day: iv.days as i64,
            hour: iv.micros / datetime::USECS_PER_HOUR,
            minute: iv.micros / datetime::USECS_PER_MINUTE % 60,
            second: iv.micros / USECS_PER_SEC % 60,
            micro: iv.micros % USECS_PER_SEC,
            days: 0,
            interval: true,
            with_tz: false,
        },
        Value::Date(d) => {
            let t = datetime::date_to_timestamp(*d)?;
            return to_char_time(&Value::Timestamp(t), fmt);
        }
        _ => return Err(err!(INTERNAL_ERROR, "to_char of {}", v.data_type())),
    };
    let mut out = String::new();
    for node in parse_dch(fmt) {
        match node {
            DNode::Lit(s) => out.push_str(&s),
            DNode::Key { key, case, fm, th } => out.push_str(&format_dch(&ct, key, case, fm, th)?),
        }
    }
    Ok(Value::Text(out))
}

fn format_dch(ct: &CharTm, key: Dk, case: Case, fm: bool, th: Option<bool>) -> Result<String> {
    let days = ct.days;
    if ct.interval
        && matches!(
            key,
            Dk::Month
                | Dk::Mon
                | Dk::Day
                | Dk::Dy
                | Dk::D
                | Dk::Id
                | Dk::BcAd { .. }
                | Dk::Tz
                | Dk::Of
                | Dk::Tzh
                | Dk::Tzm
        )
    {
        bail!(
            INVALID_DATETIME_FORMAT,
            "invalid format specification for an interval value"
        );
    }
    // Numbers are zero-padded to a width that does not count a minus sign (but DD's does).
    let pad_num = |n: i64, width: usize| -> String {
        let width = if key == Dk::Dd || n >= 0 {
            width
        } else {
            width + 1
        };
        let mut s = if fm {
            n.to_string()
        } else {
            format!("{n:0width$}")
        };
        if let Some(upper) = th {
            s.push_str(ordinal_suffix(n, upper));
        }
        s
    };
    let pad_name = |name: &str, width: usize| -> String {
        let s = apply_case(name, case);
        if fm {
            s
        } else {
            format!("{s:<width$}")
        }
    };
    let shown_year = if ct.interval || ct.year > 0 {
        ct.year
    } else {
        1 - ct.year
    };
    let month_index = (ct.month.clamp(1, 12) - 1) as usize;
    let weekday = datetime::weekday(days) as usize;
    let doy = days - datetime::days_from_civil(ct.year, 1, 1) + 1;
    Ok(match key {
        Dk::Yyyy => pad_num(shown_year, 4),
        Dk::YCommaYyy => {
            let s = format!("{},{:03}", shown_year / 1000, (shown_year % 1000).abs());
            match th {
                Some(u) => s + ordinal_suffix(shown_year, u),
                None => s,
            }
        }
        Dk::Yyy => pad_num(shown_year % 1000, 3),
        Dk::Yy => pad_num(shown_year % 100, 2),
        Dk::Y => pad_num(shown_year % 10, 1),
        Dk::Iyyy | Dk::Iyy | Dk::Iy | Dk::I => {
            let y = if ct.interval {
                ct.year
            } else {
                datetime::iso_week(days).0
            };
            let y = if ct.interval || y > 0 { y } else { 1 - y };
            match key {
                Dk::Iyyy => pad_num(y, 4),
                Dk::Iyy => pad_num(y % 1000, 3),
                Dk::Iy => pad_num(y % 100, 2),
                _ => pad_num(y % 10, 1),
            }
        }
        Dk::Cc => {
            let c = if ct.interval {
                ct.year / 100
            } else if ct.year > 0 {
                (ct.year - 1) / 100 + 1
            } else {
                ct.year / 100 - 1
            };
            pad_num(c, 2)
        }
        Dk::Q => pad_num((ct.month + 2) / 3, 1),
        Dk::Mm => pad_num(ct.month, 2),
        Dk::Month => pad_name(MONTH_NAMES[month_index], 9),
        Dk::Mon => apply_case(&MONTH_NAMES[month_index][..3], case),
        Dk::Rm => {
            if ct.month == 0 {
                return Ok(String::new());
            }
            let r = ROMAN_MONTHS[month_index];
            let r = if case == Case::Lower {
                r.to_lowercase()
            } else {
                r.to_string()
            };
            if fm {
                r
            } else {
                format!("{r:<4}")
            }
        }
        Dk::Dd => pad_num(ct.day, 2),
        Dk::Ddd => pad_num(doy, 3),
        Dk::Iddd => {
            let (iy, _) = datetime::iso_week(days);
            let jan4 = datetime::days_from_civil(iy, 1, 4);
            let start = jan4 - (jan4 + 3).rem_euclid(7);
            pad_num(days - start + 1, 3)
        }
        Dk::D => pad_num(weekday as i64 + 1, 1),
        Dk::Id => pad_num(if weekday == 0 { 7 } else { weekday as i64 }, 1),
        Dk::Day => pad_name(DAY_NAMES[weekday], 9),
        Dk::Dy => apply_case(&DAY_NAMES[weekday][..3], case),
        Dk::Ww => pad_num((doy - 1) / 7 + 1, 2),
        Dk::Iw => pad_num(datetime::iso_week(days).1 as i64, 2),
        Dk::W => pad_num((ct.day - 1) / 7 + 1, 1),
        Dk::J => pad_num(days + datetime::UNIX_EPOCH_JDN, 1),
        Dk::Hh24 => pad_num(ct.hour, 2),
        Dk::Hh12 => {
            let h = ct.hour % 12;
            pad_num(if h == 0 { 12 } else { h }, 2)
        }
        Dk::Mi => pad_num(ct.minute, 2),
        Dk::Ss => pad_num(ct.second, 2),
        Dk::Sssss => pad_num(ct.hour * 3600 + ct.minute * 60 + ct.second, 1),
        Dk::Ms => pad_num(ct.micro / 1000, 3),
        Dk::Us => pad_num(ct.micro, 6),
        Dk::Ff(n) => {
            let digits = format!("{:06}", ct.micro.abs());
            digits[..n as usize].to_string()
        }
        Dk::AmPm { dots } => {
            let pm = ct.hour % 24 >= 12;
            let s = match (pm, dots) {
                (false, false) => "AM",
                (true, false) => "PM",
                (false, true) => "A.M.",
                (true, true) => "P.M.",
            };
            if case == Case::Lower {
                s.to_lowercase()
            } else {
                s.to_string()
            }
        }
        Dk::BcAd { dots } => {
            let s = match (ct.year <= 0, dots) {
                (false, false) => "AD",
                (true, false) => "BC",
                (false, true) => "A.D.",
                (true, true) => "B.C.",
            };
            if case == Case::Lower {
                s.to_lowercase()
            } else {
                s.to_string()
            }
        }
        Dk::Tz => match (ct.with_tz, case) {
            (false, _) => String::new(),
            (true, Case::Lower) => "utc".into(),
            (true, _) => "UTC".into(),
        },
        Dk::Tzh | Dk::Of => "+00".into(),
        Dk::Tzm => "00".into(),
    })
}

/// Fields read by to_date / to_timestamp.
#[derive(Default)]
struct ParsedFields {
    year: Option<i64>,
    year_digits: usize,
    month: Option<i64>,
    day: Option<i64>,
    doy: Option<i64>,
    hour: Option<i64>,
    twelve_hour: bool,
    pm: Option<bool>,
    minute: i64,
    second: i64,
    micro: i64,
    bc: bool,
    tz_hours: i64,
    tz_minutes: i64,
    tz_negative: bool,
    julian: Option<i64>,
    iso_week: Option<i64>,
    iso_dow: Option<i64>,
    iso_year: bool,
}

fn dch_key_name(key: Dk) -> &'static str {
    DCH_KEYS
        .iter()
        .find(|(_, k)| *k == key)
        .map_or("?", |(w, _)| w)
}

fn from_char(input: &str, fmt: &str) -> Result<ParsedFields> {
    let nodes = parse_dch(fmt);
    let s: Vec<char> = input.chars().collect();
    let mut f = ParsedFields::default();
    let mut i = 0;
    for (idx, node) in nodes.iter().enumerate() {
        match node {
            DNode::Lit(lit) => {
                for lc in lit.chars() {
                    if lc.is_whitespace() {
                        while i < s.len() && s[i].is_whitespace() {
                            i += 1;
                        }
                    } else if i < s.len()
                        && (!s[i].is_alphanumeric() || s[i].eq_ignore_ascii_case(&lc))
                    {
                        i += 1;
                    }
                }
            }
            DNode::Key { key, case, th, .. } => {
                while i < s.len() && s[i].is_whitespace() {
                    i += 1;
                }
                if i >= s.len() {
                    break;
                }
                let next_is_digit_field = matches!(
                    nodes.get(idx + 1),
                    Some(DNode::Key { key: k, .. }) if !is_name_key(*k)
                );
                let name = dch_key_name(*key);
                let display = match case {
                    Case::Lower => name.to_lowercase(),
                    _ => name.to_string(),
                };
                match key {
                    Dk::Yyyy | Dk::YCommaYyy | Dk::Iyyy => {
                        let start = i;
                        let v = read_int(&s, &mut i, next_is_digit_field, &display, 4, true)?;
                        let mut v = v;
                        if *key == Dk::YCommaYyy && i < s.len() && s[i] == ',' {
                            i += 1;
                            let rest =
                                read_int(&s, &mut i, next_is_digit_field, &display, 3, false)?;
                            v = v
                                .checked_mul(1000)
                                .and_then(|v| v.checked_add(rest))
                                .ok_or_else(|| {
                                    err!(
                                        DATETIME_FIELD_OVERFLOW,
                                        "date/time field value out of range: \"{input}\""
                                    )
                                })?;
                        }
                        f.iso_year = *key == Dk::Iyyy;
                        f.year = Some(v);
                        f.year_digits = i - start;
                    }
                    Dk::Yyy | Dk::Iyy => {
                        let v = read_int(&s, &mut i, next_is_digit_field, &display, 3, false)?;
                        f.year = Some(if v < 70 { v + 2000 } else { v + 1000 });
                        f.year_digits = 4;
                    }
                    Dk::Yy | Dk::Iy => {
                        let v = read_int(&s, &mut i, next_is_digit_field, &display, 2, false)?;
                        f.year = Some(if v < 70 { v + 2000 } else { v + 1900 });
                        f.year_digits = 4;
                    }
                    Dk::Y | Dk::I => {
                        let v = read_int(&s, &mut i, next_is_digit_field, &display, 1, false)?;
                        f.year = Some(v + 2000);
                        f.year_digits = 4;
                    }
                    Dk::Cc => {
                        let c = read_int(&s, &mut i, next_is_digit_field, &display, 2, false)?;
                        if f.year.is_none() {
                            f.year = Some((c - 1) * 100 + 1);
                            f.year_digits = 4;
                        }
                    }
                    Dk::Q => {
                        read_int(&s, &mut i, next_is_digit_field, &display, 1, false)?;
                    }
                    Dk::Mm => {
                        f.month = Some(read_int(
                            &s,
                            &mut i,
                            next_is_digit_field,
                            &display,
                            2,
                            false,
                        )?)
                    }
                    Dk::Dd => {
                        f.day = Some(read_int(
                            &s,
                            &mut i,
                            next_is_digit_field,
                            &display,
                            2,
                            false,
                        )?)
                    }
                    Dk::Ddd | Dk::Iddd => {
                        f.doy = Some(read_int(
                            &s,
                            &mut i,
                            next_is_digit_field,
                            &display,
                            3,
                            false,
                        )?)
                    }
                    Dk::D => {
                        read_int(&s, &mut i, next_is_digit_field, &display, 1, false)?;
                    }
                    Dk::Id => {
                        f.iso_dow = Some(read_int(
                            &s,
                            &mut i,
                            next_is_digit_field,
                            &display,
                            1,
                            false,
                        )?)
                    }
                    Dk::Iw => {
                        f.iso_week = Some(read_int(
                            &s,
                            &mut i,
                            next_is_digit_field,
                            &display,
                            2,
                            false,
                        )?)
                    }
                    Dk::Ww => {
                        read_int(&s, &mut i, next_is_digit_field, &display, 2, false)?;
                    }
                    Dk::W => {
                        read_int(&s, &mut i, next_is_digit_field, &display, 1, false)?;
                    }
                    Dk::J => {
                        f.julian = Some(read_int(
                            &s,
                            &mut i,
                            next_is_digit_field,
                            &display,
                            7,
                            false,
                        )?)
                    }
                    Dk::Hh24 => {
                        f.hour = Some(read_int(
                            &s,
                            &mut i,
                            next_is_digit_field,
                            &display,
                            2,
                            false,
                        )?)
                    }
                    Dk::Hh12 => {
                        f.hour = Some(read_int(
                            &s,
                            &mut i,
                            next_is_digit_field,
                            &display,
                            2,
                            false,
                        )?);
                        f.twelve_hour = true;
                    }
                    Dk::Mi => {
                        f.minute = read_int(&s, &mut i, next_is_digit_field, &display, 2, false)?
                    }
                    Dk::Ss => {
                        f.second = read_int(&s, &mut i, next_is_digit_field, &display, 2, false)?
                    }
                    Dk::Sssss => {
                        let v = read_int(&s, &mut i, next_is_digit_field, &display, 5, false)?;
                        f.hour = Some(v / 3600);
                        f.minute = v / 60 % 60;
                        f.second = v % 60;
                    }
                    Dk::Ms | Dk::Us | Dk::Ff(_) => {
                        let width = match key {
                            Dk::Ms => 3,
                            Dk::Us => 6,
                            Dk::Ff(n) => *n as usize,
                            _ => 6,
                        };
                        let start = i;
                        let v = read_int(&s, &mut i, next_is_digit_field, &display, width, false)?;
                        let digits = (i - start) as u32;
                        let scale = if *key == Dk::Ms { 3 } else { 6 };
                        let v = if digits <= scale {
                            v * 10i64.pow(scale - digits)
                        } else {
                            v / 10i64.pow(digits - scale)
                        };
                        f.micro += if *key == Dk::Ms { v * 1000 } else { v };
                    }
                    Dk::Month | Dk::Mon => {
                        let full = *key == Dk::Month;
                        let m = MONTH_NAMES.iter().position(|name| {
                            let want = if full { *name } else { &name[..3] };
                            starts_with_ci(&s, i, want).is_some()
                        });
                        let Some(m) = m else {
                            return Err(no_match(&s[i..], &display));
                        };
                        i += if full { MONTH_NAMES[m].len() } else { 3 };
                        f.month = Some(m as i64 + 1);
                    }
                    Dk::Rm => {
                        let m = (0..12)
                            .rev()
                            .find(|k| starts_with_ci(&s, i, ROMAN_MONTHS[*k]).is_some());
                        let Some(m) = m else {
                            return Err(no_match(&s[i..], &display));
                        };
                        i += ROMAN_MONTHS[m].len();
                        f.month = Some(m as i64 + 1);
                    }
                    Dk::Day | Dk::Dy => {
                        let full = *key == Dk::Day;
                        let d = DAY_NAMES.iter().position(|name| {
                            let want = if full { *name } else { &name[..3] };
                            starts_with_ci(&s, i, want).is_some()
                        });
                        let Some(d) = d else {
                            return Err(no_match(&s[i..], &display));
                        };
                        i += if full { DAY_NAMES[d].len() } else { 3 };
                    }
                    Dk::AmPm { .. } => {
                        let options =
                            [("a.m.", false), ("p.m.", true), ("am", false), ("pm", true)];
                        let Some((word, pm)) = options
                            .iter()
                            .find(|(w, _)| starts_with_ci(&s, i, w).is_some())
                        else {
                            return Err(no_match(&s[i..], &display));
                        };
                        i += word.len();
                        f.pm = Some(*pm);
                    }
                    Dk::BcAd { .. } => {
                        let options =
                            [("b.c.", true), ("a.d.", false), ("bc", true), ("ad", false)];
                        let Some((word, bc)) = options
                            .iter()
                            .find(|(w, _)| starts_with_ci(&s, i, w).is_some())
                        else {
                            return Err(no_match(&s[i..], &display));
                        };
                        i += word.len();
                        f.bc = *bc;
                    }
                    Dk::Tzh => {
                        if i < s.len() && (s[i] == '-' || s[i] == '+') {
                            f.tz_negative = s[i] == '-';
                            i += 1;
                        }
                        f.tz_hours = read_int(&s, &mut i, next_is_digit_field, &display, 2, false)?;
                    }
                    Dk::Tzm => {
                        f.tz_minutes =
                            read_int(&s, &mut i, next_is_digit_field, &display, 2, false)?
                    }
                    Dk::Tz | Dk::Of => {
                        return Err(err!(
                            FEATURE_NOT_SUPPORTED,
                            "formatting field \"{display}\" is only supported in to_char"
                        ));
                    }
                }
                if th.is_some() {
                    let suffix: String =
                        s.iter().skip(i).take(2).collect::<String>().to_lowercase();
                    if ["st", "nd", "rd", "th"].contains(&suffix.as_str()) {
                        i += 2;
                    }
                }
            }
        }
    }
    Ok(f)
}

/// Reads an integer field of to_date/to_timestamp: at most `width` digits when another
/// number follows without a separator, else all the digits there are.
fn read_int(
    s: &[char],
    i: &mut usize,
    bounded: bool,
    display: &str,
    width: usize,
    signed: bool,
) -> Result<i64> {
    let start = *i;
    let mut neg = false;
    if signed && *i < s.len() && (s[*i] == '-' || s[*i] == '+') {
        neg = s[*i] == '-';
        *i += 1;
    }
    let digits_start = *i;
    let limit = if bounded { width } else { usize::MAX };
    while *i < s.len() && s[*i].is_ascii_digit() && *i - digits_start < limit {
        *i += 1;
    }
    if *i == digits_start {
        let rest: String = s[start..]
            .iter()
            .take_while(|c| !c.is_whitespace())
            .collect();
        bail!(
            INVALID_DATETIME_FORMAT,
            "invalid value \"{rest}\" for \"{display}\""
        );
    }
    let text: String = s[digits_start..*i].iter().collect();
    let v: i64 = text.parse().map_err(|_| {
        err!(
            INVALID_DATETIME_FORMAT,
            "value for \"{display}\" in source string is out of range"
        )
    })?;
    Ok(if neg { -v } else { v })
}

fn no_match(rest: &[char], field: &str) -> Error {
    let shown: String = rest.iter().take_while(|c| !c.is_whitespace()).collect();
    err!(
        INVALID_DATETIME_FORMAT,
        "invalid value \"{shown}\" for \"{field}\""
    )
}

/// Builds the date (days) and time of day from parsed fields.
fn fields_to_days(f: &ParsedFields, input: &str) -> Result<(i64, i64)> {
    let range = || {
        err!(
            DATETIME_FIELD_OVERFLOW,
            "date/time field value out of range: \"{input}\""
        )
    };
    if let Some(j) = f.julian {
        let days = j - datetime::UNIX_EPOCH_JDN;
        return Ok((days, time_of_day(f, input)?));
    }
    // A missing year is year 0 (1 BC), as in PostgreSQL.
    let mut year = f.year.unwrap_or(0);
    if f.bc {
        if year <= 0 {
            return Err(range());
        }
        year = 1 - year;
    } else if year < 0 {
        // Negative years written out are BC.
        year += 1;
    }
    if !(-5_000_000..=5_874_897).contains(&year) {
        return Err(range());
    }
    let days = if let (Some(week), true, None) = (f.iso_week, f.iso_year, f.month) {
        // The Monday of ISO week 1 is the Monday on or before January 4.
        let jan4 = datetime::days_from_civil(year, 1, 4);
        let week1 = jan4 - (jan4 + 3).rem_euclid(7);
        let dow = f.iso_dow.unwrap_or(1);
        if !(1..=53).contains(&week) || !(1..=7).contains(&dow) {
            return Err(range());
        }
        week1 + (week - 1) * 7 + dow - 1
    } else if let (Some(doy), None) = (f.doy, f.month) {
        let len = if datetime::is_leap(year) { 366 } else { 365 };
        if !(1..=len).contains(&doy) {
            return Err(range());
        }
        datetime::days_from_civil(year, 1, 1) + doy - 1
    } else {
        let month = f.month.unwrap_or(1);
        let day = f.day.unwrap_or(1);
        if !(1..=12).contains(&month)
            || day < 1
            || day > datetime::days_in_month(year, month as u32) as i64
        {
            return Err(range());
        }
        datetime::days_from_civil(year, month as u32, day as u32)
    };
    Ok((days, time_of_day(f, input)?))
}

fn time_of_day(f: &ParsedFields, input: &str) -> Result<i64> {
    let range = || {
        err!(
            DATETIME_FIELD_OVERFLOW,
            "date/time field value out of range: \"{input}\""
        )
    };
    let mut hour = f.hour.unwrap_or(0);
    if f.twelve_hour || f.pm.is_some() {
        if f.twelve_hour && !(1..=12).contains(&hour) {
            return Err(err!(
                INVALID_DATETIME_FORMAT,
                "hour \"{hour}\" is invalid for the 12-hour clock"
            ));
        }
        if f.pm == Some(true) && hour < 12 {
            hour += 12;
        } else if f.pm != Some(true) && hour == 12 {
            hour = 0;
        }
    }
    if !(0..=23).contains(&hour) || !(0..=59).contains(&f.minute) || !(0..=60).contains(&f.second) {
        return Err(range());
    }
    Ok(hour * datetime::USECS_PER_HOUR
        + f.minute * datetime::USECS_PER_MINUTE
        + f.second * USECS_PER_SEC
        + f.micro)
}

fn to_date(input: &str, fmt: &str) -> Result<Value> {
    let f = from_char(input, fmt)?;
    let (days, _) = fields_to_days(&f, input)?;
    let d = datetime::date_add_days(0, days)
        .map_err(|_| err!(DATETIME_FIELD_OVERFLOW, "date out of range: \"{input}\""))?;
    Ok(Value::Date(d))
}

fn to_timestamp_fmt(input: &str, fmt: &str) -> Result<Value> {
    let f = from_char(input, fmt)?;
    let (days, time) = fields_to_days(&f, input)?;
    if f.tz_hours > 15 || f.tz_minutes > 59 {
        return Err(Error::new(
            INVALID_TIME_ZONE_DISPLACEMENT,
            format!(
                "invalid input string for \"{}\"",
                if f.tz_hours > 15 { "TZH" } else { "TZM" }
            ),
        ));
    }
    let mut offset = f.tz_hours * 3600 + f.tz_minutes * 60;
    if f.tz_negative {
        offset = -offset;
    }
    let t = days as i128 * USECS_PER_DAY as i128 + time as i128
        - offset as i128 * USECS_PER_SEC as i128;
    match i64::try_from(t) {
        Ok(t) if datetime::ts_in_range(t) => Ok(Value::TimestampTz(t)),
        _ => Err(err!(
            DATETIME_FIELD_OVERFLOW,
            "timestamp out of range: \"{input}\""
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// to_char of numbers

#[derive(Clone, Debug, PartialEq, Eq)]
enum NItem {
    Nine,
    Zero,
    Point,
    Comma,
    /// Sign keywords: S, MI, PL, SG.
    Sign(&'static str),
    Pr,
    Eeee,
    /// V: shift the digits after it into the integer part.
    V,
    Rn {
        lower: bool,
    },
    Th {
        upper: bool,
    },
    Lit(String),
}

fn parse_num_fmt(fmt: &str) -> (Vec<NItem>, bool) {
    let s: Vec<char> = fmt.chars().collect();
    let mut items = Vec::new();
    let mut fm = false;
    let mut i = 0;
    let word = |i: usize, w: &str| starts_with_ci(&s, i, w).is_some();
    while i < s.len() {
        let c = s[i];
        let (item, len) = match c {
            '9' => (Some(NItem::Nine), 1),
            '0' => (Some(NItem::Zero), 1),
            '.' => (Some(NItem::Point), 1),
            ',' => (Some(NItem::Comma), 1),
            'D' | 'd' => (Some(NItem::Point), 1),
            'G' | 'g' => (Some(NItem::Comma), 1),
            'S' | 's' if !word(i, "SG") => (Some(NItem::Sign("S")), 1),
            '"' => {
                let mut lit = String::new();
                let mut j = i + 1;
                while j < s.len() && s[j] != '"' {
                    lit.push(s[j]);
                    j += 1;
                }
                (Some(NItem::Lit(lit)), j + 1 - i)
            }
            '\\' if i + 1 < s.len() => (Some(NItem::Lit(s[i + 1].to_string())), 2),
            'V' | 'v' => (Some(NItem::V), 1),
            'B' | 'b' => (None, 1),
            'L' | 'l' => (Some(NItem::Lit(" ".to_string())), 1),
            _ if word(i, "FM") => {
                fm = true;
                (None, 2)
            }
            _ if word(i, "MI") => (Some(NItem::Sign("MI")), 2),
            _ if word(i, "PL") => (Some(NItem::Sign("PL")), 2),
            _ if word(i, "SG") => (Some(NItem::Sign("SG")), 2),
            _ if word(i, "PR") => (Some(NItem::Pr), 2),
            _ if word(i, "EEEE") => (Some(NItem::Eeee), 4),
            _ if word(i, "RN") => (Some(NItem::Rn { lower: c == 'r' }), 2),
            _ if word(i, "TH") => (Some(NItem::Th { upper: c == 'T' }), 2),
            _ => (Some(NItem::Lit(c.to_string())), 1),
        };
        if let Some(item) = item {
            items.push(item);
        }
        i += len;
    }
    (items, fm)
}

fn roman(mut n: i64) -> String {
    const TABLE: [(i64, &str); 13] = [
        (1000, "M"),
        (900, "CM"),
        (500, "D"),
        (400, "CD"),
        (100, "C"),
        (90, "XC"),
        (50, "L"),
        (40, "XL"),
        (10, "X"),
        (9, "IX"),
        (5, "V"),
        (4, "IV"),
        (1, "I"),
    ];
    let mut out = String::new();
    for (v, s) in TABLE {
        while n >= v {
            out.push_str(s);
            n -= v;
        }
    }
    out
}

/// The value as (negative, integer digits, fraction digits) rounded to `post` places.
fn number_digits(v: &Value, post: usize) -> Result<(bool, String, String)> {
    let text = match v {
        Value::Float8(f) => {
            if !f.is_finite() {
                return Ok((
                    f.is_sign_negative() && f.is_infinite(),
                    String::new(),
                    String::new(),
                ));
            }
            format!("{:.*}", post.min(340), f)
        }
        Value::Float4(f) => format!("{:.*}", post.min(340), *f as f64),
        other => {
            let d = other
                .as_decimal()
                .ok_or_else(|| err!(INTERNAL_ERROR, "to_char of {}", other.data_type()))?;
            let mut r = d.round_dp_with_strategy(
                post.min(28) as u32,
                RoundingStrategy::MidpointAwayFromZero,
            );
            r.rescale(post.min(28) as u32);
            let mut t = r.to_string();
            if post > 28 {
                if !t.contains('.') {
                    t.push('.');
                }
                t.extend(std::iter::repeat_n('0', post - 28));
            }
            t
        }
    };
    let neg = text.starts_with('-');
    let body = text.trim_start_matches('-');
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let int = int.trim_start_matches('0').to_string();
    let mut frac = frac.to_string();
    while frac.len() < post {
        frac.push('0');
    }
    frac.truncate(post);
    let is_zero = int.is_empty() && frac.bytes().all(|b| b == b'0');
    Ok((neg && !is_zero, int, frac))
}

fn to_char_number(v: &Value, fmt: &str) -> Result<Value> {
    if fmt.is_empty() {
        return Ok(Value::Null);
    }
    let (items, fm) = parse_num_fmt(fmt);
    // Roman numerals.
    if let Some(NItem::Rn { lower }) = items.iter().find(|i| matches!(i, NItem::Rn { .. })) {
        let n = match v {
            Value::Float8(f) => f.round_ties_even() as i64,
            other => other
                .as_decimal()
                .and_then(|d| {
                    d.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
                        .to_i64()
                })
                .unwrap_or(0),
        };
        let r = if (1..=3999).contains(&n) {
            roman(n)
        } else {
            "#".repeat(15)
        };
        let r = if *lower { r.to_lowercase() } else { r };
        return Ok(Value::Text(if fm { r } else { format!("{r:>15}") }));
    }
    let point_at = items.iter().position(|i| *i == NItem::Point);
    let digit_positions: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, i)| matches!(i, NItem::Nine | NItem::Zero))
        .map(|(k, _)| k)
        .collect();
    let pre = digit_positions
        .iter()
        .filter(|k| point_at.is_none_or(|p| **k < p))
        .count();
    let post = digit_positions.len() - pre;
    let eeee = items.contains(&NItem::Eeee);

    if eeee {
        let f = v.as_f64().unwrap_or(f64::NAN);
        let neg = f < 0.0;
        let body = if f.is_finite() {
            let s = format!("{:.*e}", post, f.abs());
            let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
            let exp: i32 = exp.parse().unwrap_or(0);
            format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
        } else {
            "#".repeat(pre + post + 5 + usize::from(post > 0))
        };
        let sign = if neg {
            "-"
        } else if fm {
            ""
        } else {
            " "
        };
        return Ok(Value::Text(format!("{sign}{body}")));
    }

    if let Some(pr) = items.iter().position(|i| *i == NItem::Pr) {
        if digit_positions.first().is_none_or(|d| *d > pr) {
            bail!(SYNTAX_ERROR, "\"9\" must be ahead of \"PR\"");
        }
    }
    // V shifts the digits after it into the integer part: the value times 10^k.
    let shifted;
    let v = match items.iter().position(|i| *i == NItem::V) {
        Some(at) => {
            let k = digit_positions.iter().filter(|d| **d > at).count() as i32;
            shifted = match v {
                Value::Float8(f) => Value::Float8(f * 10f64.powi(k)),
                other => {
                    let d = other.as_decimal().unwrap_or_default();
                    let factor =
                        Decimal::from_i128_with_scale(10i128.pow(k.clamp(0, 28) as u32), 0);
                    Value::Numeric(d.checked_mul(factor).ok_or_else(numeric_overflow)?)
                }
            };
            &shifted
        }
        None => v,
    };
    let (neg, int_digits, frac_digits) = number_digits(v, post)?;
    let overflow = int_digits.len() > pre || matches!(v, Value::Float8(f) if !f.is_finite());
    let zero_start = items
        .iter()
        .enumerate()
        .filter(|(k, i)| **i == NItem::Zero && point_at.is_none_or(|p| *k < p))
        .map(|(k, _)| k)
        .next();
    // The last integer position shows a 0 when the integer part is zero and there is no fraction.
    let force_last_zero = int_digits.is_empty() && post == 0;
    let padded: Vec<char> = {
        let mut p = vec!['0'; pre.saturating_sub(int_digits.len())];
        p.extend(int_digits.chars());
        p
    };
    let first_sig = pre.saturating_sub(int_digits.len());
    let explicit_sign = items
        .iter()
        .any(|i| matches!(i, NItem::Sign(s) if *s != "PL") || *i == NItem::Pr);
    let fill_trailing = fm;

    // Render each item; integer digits before the first significant one are blanks (None).
    let mut rendered: Vec<Option<String>> = Vec::with_capacity(items.len());
    let mut int_idx = 0;
    let mut frac_idx = 0;
    let mut started = false;
    let mut sign_at_start: Option<usize> = None;
    for (k, item) in items.iter().enumerate() {
        let in_int = point_at.is_none_or(|p| k < p);
        let r = match item {
            NItem::Nine | NItem::Zero if in_int => {
                let pos = int_idx;
                int_idx += 1;
                let forced = zero_start.is_some_and(|z| k >= z);
                let last = pos + 1 == pre;
                if overflow {
                    started = true;
                    Some("#".to_string())
                } else if pos >= first_sig || forced || (last && force_last_zero) {
                    started = true;
                    Some(padded.get(pos).copied().unwrap_or('0').to_string())
                } else {
                    None
                }
            }
            NItem::Nine | NItem::Zero => {
                let ch = if overflow {
                    '#'
                } else {
                    frac_digits.chars().nth(frac_idx).unwrap_or('0')
                };
                frac_idx += 1;
                Some(ch.to_string())
            }
            NItem::Point => {
                started = true;
                Some(".".to_string())
            }
            NItem::Comma => {
                if started {
                    Some(",".to_string())
                } else {
                    None
                }
            }
            NItem::Sign(kind) => {
                let s = match *kind {
                    "S" => {
                        if !started && digit_positions.first().is_some_and(|d| k < *d) {
                            sign_at_start = Some(k);
                        }
                        if neg {
                            "-"
                        } else {
                            "+"
                        }
                    }
                    "MI" => {
                        if neg {
                            "-"
                        } else if fm {
                            ""
                        } else {
                            " "
                        }
                    }
                    "PL" => {
                        if neg {
                            " "
                        } else {
                            "+"
                        }
                    }
                    _ => {
                        if neg {
                            "-"
                        } else {
                            "+"
                        }
                    }
                };
                Some(s.to_string())
            }
            NItem::Pr => Some(
                if neg {
                    ">"
                } else if fm {
                    ""
                } else {
                    " "
                }
                .to_string(),
            ),
            NItem::Th { upper } => {
                if neg
                    || overflow
                    || (matches!(v, Value::Float8(_) | Value::Numeric(_))
                        && !frac_digits.is_empty())
                {
                    Some(String::new())
                } else {
                    let n: i64 = int_digits.parse().unwrap_or(0);
                    Some(ordinal_suffix(n, *upper).to_string())
                }
            }
            NItem::Lit(s) => Some(s.clone()),
            NItem::Eeee | NItem::Rn { .. } | NItem::V => Some(String::new()),
        };
        rendered.push(r);
    }
    // FM drops trailing zeros of the fraction (at 9 positions), and the point if nothing follows.
    if fill_trailing {
        for k in (0..items.len()).rev() {
            match items[k] {
                NItem::Nine if point_at.is_some_and(|p| k > p) => {
                    if rendered[k].as_deref() == Some("0") {
                        rendered[k] = Some(String::new());
                    } else {
                        break;
                    }
                }
                NItem::Zero if point_at.is_some_and(|p| k > p) => break,
                _ if point_at.is_some_and(|p| k > p) => {}
                _ => break,
            }
        }
        if let Some(p) = point_at {
            if post == 0 {
                rendered[p] = Some(String::new());
            }
            // Nothing left of a zero: show its last integer digit.
            let fraction_gone = (p + 1..items.len()).all(|k| {
                !matches!(items[k], NItem::Nine | NItem::Zero) || rendered[k].as_deref() == Some("")
            });
            let last_int = (0..p)
                .rev()
                .find(|k| matches!(items[*k], NItem::Nine | NItem::Zero));
            if let Some(k) = last_int {
                if int_digits.is_empty() && fraction_gone && rendered[k].is_none() {
                    rendered[k] = Some("0".to_string());
                }
            }
        }
    }
    // The floating sign (or '<' of PR, or a leading S) goes just before the first shown digit.
    let first_shown = items
        .iter()
        .enumerate()
        .position(|(k, i)| {
            matches!(i, NItem::Nine | NItem::Zero | NItem::Point) && rendered[k].is_some()
        })
        .unwrap_or(items.len());
    let floating: String = if let Some(k) = sign_at_start {
        rendered[k] = Some(String::new());
        if neg {
            "-".into()
        } else {
            "+".into()
        }
    } else if items.contains(&NItem::Pr) {
        if neg {
            "<".into()
        } else if fm {
            String::new()
        } else {
            " ".into()
        }
    } else if explicit_sign {
        String::new()
    } else if neg {
        "-".into()
    } else if fm {
        String::new()
    } else {
        " ".into()
    };
    let mut out = String::new();
    // Without FM, the sign slot and blank positions are spaces in front of the number.
    let lead_blanks = if fm {
        0
    } else {
        rendered[..first_shown.min(rendered.len())]
            .iter()
            .zip(&items)
            .filter(|(r, i)| r.is_none() && matches!(i, NItem::Nine | NItem::Zero | NItem::Comma))
            .count()
    };
    let mut sign_done = false;
    let mut blanks_done = false;
    for (k, (item, r)) in items.iter().zip(&rendered).enumerate() {
        let numeric_part = matches!(
            item,
            NItem::Nine | NItem::Zero | NItem::Comma | NItem::Point
        );
        if numeric_part && !blanks_done {
            blanks_done = true;
            out.extend(std::iter::repeat_n(' ', lead_blanks));
        }
        if k == first_shown && !sign_done {
            sign_done = true;
            if !floating.is_empty() && (explicit_sign || !fm || neg) {
                out.push_str(&floating);
            } else if !fm && !explicit_sign {
                out.push(' ');
            }
        }
        if let Some(s) = r {
            out.push_str(s);
        }
    }
    if !sign_done {
        out.insert_str(0, &floating);
    }
    Ok(Value::Text(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::cast;

    /// Calls a function the way the executor will: resolve by the argument values' types
    /// (Text arguments given as Unknown literals), cast, then call.
    fn call(name: &str, args: &[Value]) -> String {
        let types: Vec<DataType> = args
            .iter()
            .map(|v| {
                if matches!(v, Value::Text(_)) {
                    DataType::Unknown
                } else {
                    v.data_type()
                }
            })
            .collect();
        let ctx = FnContext {
            statement_ts: 1_709_643_845_250_000,
            txn_ts: 1_709_643_845_000_000,
        };
        let r = match resolve(name, &types) {
            Ok(Some(r)) => r,
            Ok(None) => return "no such function".into(),
            Err(e) => return format!("{}: {}", e.code, e.message),
        };
        let mut cast_args = Vec::new();
        for (v, t) in args.iter().zip(&r.arg_types) {
            match cast(v.clone(), t) {
                Ok(v) => cast_args.push(v),
                Err(e) => return format!("{}: {}", e.code, e.message),
            }
        }
        if r.strict && cast_args.iter().any(Value::is_null) {
            return "NULL".into();
        }
        match (r.call)(&cast_args, &ctx) {
            Ok(v) => v.to_text().unwrap_or_else(|| "NULL".into()),
            Err(e) => format!("{}: {}", e.code, e.message),
        }
    }

    fn t(s: &str) -> Value {
        Value::Text(s.into())
    }
    fn i(v: i32) -> Value {
        Value::Int4(v)
    }
    fn n(s: &str) -> Value {
        Value::Numeric(Decimal::from_str_exact(s).unwrap())
    }
    fn f(v: f64) -> Value {
        Value::Float8(v)
    }
    fn ts(s: &str) -> Value {
        Value::Timestamp(datetime::parse_timestamp(s).unwrap())
    }
    fn tstz(s: &str) -> Value {
        Value::TimestampTz(datetime::parse_timestamptz(s).unwrap())
    }
    fn ivl(s: &str) -> Value {
        Value::Interval(datetime::parse_interval(s).unwrap())
    }

    fn check(cases: &[(&str, Vec<Value>, &str)]) {
        for (name, args, want) in cases {
            assert_eq!(call(name, args), *want, "{name}({args:?})");
        }
    }

    #[test]
    fn resolution_follows_postgres() {
        let ty = |name: &str, args: &[DataType]| resolve(name, args).unwrap().unwrap().return_type;
        use DataType as T;
        assert_eq!(ty("round", &[T::Int4]), T::Float8);
        assert_eq!(ty("round", &[T::Unknown]), T::Float8);
        assert_eq!(ty("round", &[T::Numeric(Some((5, 2)))]), T::Numeric(None));
        assert_eq!(ty("round", &[T::Numeric(None), T::Int4]), T::Numeric(None));
        assert_eq!(ty("sqrt", &[T::Int8]), T::Float8);
        assert_eq!(ty("abs", &[T::Int2]), T::Int2);
        assert_eq!(ty("mod", &[T::Int2, T::Int4]), T::Int4);
        assert_eq!(ty("power", &[T::Int4, T::Numeric(None)]), T::Numeric(None));
        assert_eq!(ty("power", &[T::Int4, T::Int4]), T::Float8);
        assert_eq!(ty("div", &[T::Int4, T::Int4]), T::Numeric(None));
        assert_eq!(ty("gcd", &[T::Int8, T::Int4]), T::Int8);
        assert_eq!(ty("length", &[T::Varchar(Some(3))]), T::Int4);
        assert_eq!(ty("length", &[T::Unknown]), T::Int4);
        assert_eq!(ty("date_trunc", &[T::Unknown, T::Date]), T::TimestampTz);
        assert_eq!(ty("date_trunc", &[T::Text, T::Timestamp]), T::Timestamp);
        assert_eq!(
            ty("greatest", &[T::Int4, T::Numeric(None)]),
            T::Numeric(None)
        );
        assert_eq!(ty("least", &[T::Unknown, T::Unknown]), T::Text);
        assert_eq!(ty("to_char", &[T::Int4, T::Unknown]), T::Text);
        assert!(resolve("no_such_fn", &[]).unwrap().is_none());
        let e = resolve("round", &[T::Float8, T::Int4]).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                "42883",
                "function round(double precision, integer) does not exist"
            )
        );
        let e = resolve("greatest", &[T::Int4, T::Date]).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            ("42804", "GREATEST types integer and date cannot be matched")
        );
        assert!(resolve("concat", &[]).is_err());
        let r = resolve("random", &[]).unwrap().unwrap();
        assert!(r.volatile);
        let r = resolve("concat", &[T::Int4, T::Unknown]).unwrap().unwrap();
        assert!(!r.strict);
        assert_eq!(r.arg_types, vec![T::Int4, T::Text]);
    }

    #[test]
    fn string_functions_match_postgres() {
        check(&[
            ("length", vec![t("héllo")], "5"),
            ("octet_length", vec![t("héllo")], "6"),
            ("bit_length", vec![t("héllo")], "48"),
            ("char_length", vec![t("abc")], "3"),
            ("lower", vec![t("ÀBC")], "Àbc"),
            ("upper", vec![t("àbc")], "àBC"),
            (
                "initcap",
                vec![t("hello wORLD foo_bar 3rd x-y")],
                "Hello World Foo_Bar 3rd X-Y",
            ),
            ("initcap", vec![t("héllo wörld")], "HéLlo WöRld"),
            ("concat_ws", vec![t(",")], ""),
            ("substr", vec![t("hello"), i(0), i(3)], "he"),
            ("substr", vec![t("hello"), i(-2), i(5)], "he"),
            ("substr", vec![t("hello"), i(2)], "ello"),
            ("substr", vec![t("hello"), i(10)], ""),
            ("substring", vec![t("hello"), i(2), i(2)], "el"),
            (
                "substr",
                vec![t("hello"), i(2), i(-1)],
                "22011: negative substring length not allowed",
            ),
            ("substr", vec![t("hello"), i(i32::MAX), i(i32::MAX)], ""),
            ("substr", vec![t("hello"), i(i32::MIN), i(i32::MAX)], ""),
            ("strpos", vec![t("héllo"), t("ll")], "3"),
            ("strpos", vec![t("hello"), t("")], "1"),
            ("strpos", vec![t("hello"), t("z")], "0"),
            ("position", vec![t("hello"), t("lo")], "4"),
            ("replace", vec![t("abcabc"), t("bc"), t("X")], "aXaX"),
            ("replace", vec![t("aaa"), t(""), t("b")], "aaa"),
            ("btrim", vec![t("  xx  ")], "xx"),
            ("ltrim", vec![t("xxyxy"), t("x")], "yxy"),
            ("rtrim", vec![t("abcxx"), t("x")], "abc"),
            ("btrim", vec![t("xyhixy"), t("xy")], "hi"),
            ("trim", vec![t(" a ")], "a"),
            ("lpad", vec![t("hi"), i(5)], "   hi"),
            ("lpad", vec![t("hello"), i(3)], "hel"),
            ("lpad", vec![t("hi"), i(6), t("xy")], "xyxyhi"),
            ("rpad", vec![t("hi"), i(5), t("ab")], "hiaba"),
            ("lpad", vec![t("hi"), i(-1)], ""),
            ("lpad", vec![t("hi"), i(5), t("")], "hi"),
            (
                "lpad",
                vec![t("hi"), i(i32::MAX), t("ab")],
                "54000: requested length too large",
            ),
            ("left", vec![t("hello"), i(2)], "he"),
            ("left", vec![t("hello"), i(-2)], "hel"),
            ("right", vec![t("hello"), i(2)], "lo"),
            ("right", vec![t("hello"), i(-2)], "llo"),
            ("right", vec![t("hello"), i(i32::MIN)], ""),
            ("repeat", vec![t("ab"), i(3)], "ababab"),
            ("repeat", vec![t("ab"), i(-1)], ""),
            (
                "repeat",
                vec![t("ab"), i(i32::MAX)],
                "54000: requested length too large",
            ),
            ("reverse", vec![t("héllo")], "olléh"),
            ("split_part", vec![t("a,b,c"), t(","), i(2)], "b"),
            ("split_part", vec![t("a,b,c"), t(","), i(-1)], "c"),
            ("split_part", vec![t("a,b,c"), t(","), i(5)], ""),
            ("split_part", vec![t("a,b,c"), t(""), i(1)], "a,b,c"),
            ("split_part", vec![t("a,b,c"), t(""), i(2)], ""),
            ("split_part", vec![t("a,b,c"), t(","), i(-4)], ""),
            (
                "split_part",
                vec![t("a,b,c"), t(","), i(0)],
                "22023: field position must not be zero",
            ),
            ("md5", vec![t("abc")], "900150983cd24fb0d6963f7d28e17f72"),
            ("md5", vec![t("")], "d41d8cd98f00b204e9800998ecf8427e"),
            ("ascii", vec![t("é")], "233"),
            ("ascii", vec![t("")], "0"),
            ("chr", vec![i(233)], "é"),
            ("chr", vec![i(0)], "54000: null character not permitted"),
            (
                "chr",
                vec![i(-1)],
                "22023: character number must be positive",
            ),
            (
                "chr",
                vec![i(1_114_112)],
                "54000: requested character too large for encoding: 1114112",
            ),
            (
                "chr",
                vec![i(55296)],
                "54000: requested character not valid for encoding: 55296",
            ),
            ("starts_with", vec![t("hello"), t("he")], "t"),
            ("to_hex", vec![i(-1)], "ffffffff"),
            ("to_hex", vec![Value::Int8(-1)], "ffffffffffffffff"),
            ("to_hex", vec![i(255)], "ff"),
            ("quote_ident", vec![t("Hello")], "\"Hello\""),
            ("quote_ident", vec![t("abc")], "abc"),
            ("quote_ident", vec![t("select")], "\"select\""),
            ("quote_ident", vec![t("a b")], "\"a b\""),
            ("quote_ident", vec![t("_x1")], "_x1"),
            ("quote_ident", vec![t("a\"b")], "\"a\"\"b\""),
            ("quote_literal", vec![t("it's")], "'it''s'"),
            ("quote_literal", vec![t("a\\b")], "E'a\\\\b'"),
            ("translate", vec![t("12345"), t("143"), t("ax")], "a2x5"),
            ("concat", vec![t("a"), Value::Null, i(1), n("2.5")], "a12.5"),
            (
                "concat_ws",
                vec![t(","), t("a"), Value::Null, t("b")],
                "a,b",
            ),
            ("concat_ws", vec![Value::Null, t("a")], "NULL"),
            ("greatest", vec![i(1), n("2.5"), Value::Null], "2.5"),
            ("least", vec![t("b"), t("a")], "a"),
            ("greatest", vec![Value::Null, Value::Null], "NULL"),
            ("length", vec![Value::Null], "NULL"),
        ]);
    }

    #[test]
    fn math_functions_match_postgres() {
        check(&[
            ("abs", vec![i(-5)], "5"),
            ("abs", vec![i(i32::MIN)], "22003: integer out of range"),
            (
                "abs",
                vec![Value::Int2(i16::MIN)],
                "22003: smallint out of range",
            ),
            ("abs", vec![n("-1.50")], "1.50"),
            ("abs", vec![f(-0.0)], "0"),
            ("ceil", vec![n("-0.5")], "0"),
            ("floor", vec![n("-0.5")], "-1"),
            ("ceil", vec![f(1.2)], "2"),
            ("ceil", vec![f(-0.4)], "-0"),
            ("ceiling", vec![n("5.0")], "5"),
            ("floor", vec![n("-5.5")], "-6"),
            ("round", vec![i(5)], "5"),
            ("round", vec![f(2.5)], "2"),
            ("round", vec![f(-0.4)], "-0"),
            ("round", vec![n("5.5")], "6"),
            ("round", vec![n("-2.5")], "-3"),
            ("round", vec![n("-0.4")], "0"),
            ("round", vec![n("1234.5678"), i(2)], "1234.57"),
            ("round", vec![n("1234.5678"), i(-2)], "1200"),
            ("round", vec![n("1.005"), i(2)], "1.01"),
            ("round", vec![n("12.3456"), i(10)], "12.3456000000"),
            ("round", vec![n("0.0001234"), i(5)], "0.00012"),
            ("round", vec![n("5"), i(-100)], "0"),
            ("round", vec![n("5"), i(i32::MIN)], "0"),
            ("round", vec![f(1e20)], "1e+20"),
            ("trunc", vec![n("1234.5678"), i(2)], "1234.56"),
            ("trunc", vec![n("-1.7")], "-1"),
            ("trunc", vec![n("-1.59"), i(1)], "-1.5"),
            ("trunc", vec![n("12345.678"), i(-2)], "12300"),
            ("trunc", vec![n("-0.4")], "0"),
            ("sign", vec![n("-3.2")], "-1"),
            ("sign", vec![f(0.0)], "0"),
            ("sign", vec![n("-0.0")], "0"),
            ("sqrt", vec![i(2)], "1.4142135623730951"),
            (
                "sqrt",
                vec![f(-1.0)],
                "2201F: cannot take square root of a negative number",
            ),
            ("sqrt", vec![n("2")], "1.414213562373095"),
            ("sqrt", vec![n("16")], "4.000000000000000"),
            ("sqrt", vec![n("1000000")], "1000.0000000000000"),
            ("sqrt", vec![n("0")], "0.000000000000000"),
            ("sqrt", vec![n("0.0001")], "0.01000000000000000"),
            ("cbrt", vec![i(27)], "3"),
            ("cbrt", vec![i(-8)], "-2"),
            ("exp", vec![i(1)], "2.718281828459045"),
            ("exp", vec![n("1")], "2.7182818284590452"),
            ("exp", vec![n("0")], "1.0000000000000000"),
            ("exp", vec![n("-1")], "0.3678794411714423"),
            ("exp", vec![n("10")], "22026.465794806717"),
            (
                "exp",
                vec![f(1000.0)],
                "22003: value out of range: overflow",
            ),
            (
                "exp",
                vec![f(-1000.0)],
                "22003: value out of range: underflow",
            ),
            ("ln", vec![i(2)], "0.6931471805599453"),
            ("ln", vec![n("2")], "0.6931471805599453"),
            ("ln", vec![n("10")], "2.3025850929940457"),
            ("ln", vec![n("1.05")], "0.048790164169432003"),
            ("ln", vec![n("100")], "4.6051701859880914"),
            ("ln", vec![n("1")], "0.0000000000000000"),
            ("ln", vec![i(0)], "2201E: cannot take logarithm of zero"),
            (
                "ln",
                vec![i(-1)],
                "2201E: cannot take logarithm of a negative number",
            ),
            ("log", vec![i(2)], "0.3010299956639812"),
            ("log", vec![n("100")], "2.0000000000000000"),
            ("log10", vec![n("1000")], "3.0000000000000000"),
            ("log", vec![n("2.0"), n("8.0")], "3.0000000000000000"),
            ("log", vec![n("2"), n("1024")], "10.0000000000000000"),
            ("log", vec![n("1"), n("10")], "22012: division by zero"),
            ("power", vec![i(2), i(3)], "8"),
            ("power", vec![i(2), n("0.5")], "1.4142135623730950"),
            ("power", vec![n("2.0"), i(10)], "1024.0000000000000000"),
            ("power", vec![n("2"), n("-2")], "0.2500000000000000"),
            ("power", vec![n("1.5"), i(3)], "3.3750000000000000"),
            ("power", vec![n("0"), n("0")], "1.0000000000000000"),
            ("power", vec![n("4"), n("0.5")], "2.0000000000000000"),
            ("power", vec![n("-8"), n("3")], "-512.0000000000000000"),
            (
                "power",
                vec![f(0.0), f(-1.0)],
                "2201F: zero raised to a negative power is undefined",
            ),
            (
                "power",
                vec![f(-8.0), f(1.0 / 3.0)],
                "2201F: a negative number raised to a non-integer power yields a complex result",
            ),
            (
                "power",
                vec![f(10.0), f(400.0)],
                "22003: value out of range: overflow",
            ),
            (
                "power",
                vec![n("10"), n("100")],
                "22003: value overflows numeric format",
            ),
            ("mod", vec![i(-7), i(2)], "-1"),
            ("mod", vec![n("0"), n("0.3")], "0.0"),
            ("mod", vec![n("7.5"), i(2)], "1.5"),
            ("mod", vec![i(5), i(0)], "22012: division by zero"),
            ("mod", vec![i(i32::MIN), i(-1)], "0"),
            ("div", vec![i(7), i(2)], "3"),
            ("div", vec![n("-7.5"), i(2)], "-3"),
            ("gcd", vec![i(12), i(18)], "6"),
            ("lcm", vec![i(4), i(6)], "12"),
            ("gcd", vec![i(0), i(0)], "0"),
            ("lcm", vec![i(0), i(5)], "0"),
            (
                "gcd",
                vec![i(i32::MIN), i(0)],
                "22003: integer out of range",
            ),
            (
                "lcm",
                vec![i(i32::MAX), i(i32::MAX - 1)],
                "22003: integer out of range",
            ),
            ("gcd", vec![n("12.5"), i(5)], "2.5"),
            ("lcm", vec![n("1.5"), n("2.5")], "7.5"),
            ("pi", vec![], "3.141592653589793"),
            ("degrees", vec![i(1)], "57.29577951308232"),
            ("radians", vec![i(180)], "3.141592653589793"),
            ("sin", vec![i(1)], "0.8414709848078965"),
            ("cos", vec![i(1)], "0.5403023058681398"),
            ("tan", vec![i(1)], "1.5574077246549023"),
            ("cot", vec![i(1)], "0.6420926159343306"),
            ("asin", vec![n("0.5")], "0.5235987755982989"),
            ("acos", vec![n("0.5")], "1.0471975511965979"),
            ("atan", vec![i(1)], "0.7853981633974483"),
            ("atan2", vec![i(1), i(2)], "0.4636476090008061"),
            ("asin", vec![i(2)], "22003: input is out of range"),
            (
                "sin",
                vec![f(f64::INFINITY)],
                "22003: input is out of range",
            ),
            (
                "width_bucket",
                vec![n("5.35"), n("0.024"), n("10.06"), i(5)],
                "3",
            ),
            (
                "width_bucket",
                vec![i(5), i(0), i(10), i(0)],
                "2201G: count must be greater than zero",
            ),
            ("greatest", vec![i(1), f(2.5), Value::Int8(3)], "3"),
        ]);
        for _ in 0..1000 {
            assert!((0.0..1.0).contains(&random()));
        }
    }

    #[test]
    fn time_functions_match_postgres() {
        check(&[
            ("now", vec![], "2024-03-05 13:04:05+00"),
            ("statement_timestamp", vec![], "2024-03-05 13:04:05.25+00"),
            ("localtimestamp", vec![], "2024-03-05 13:04:05"),
            ("current_date", vec![], "2024-03-05"),
            (
                "date_part",
                vec![t("second"), ts("2024-03-05 13:04:05.25")],
                "5.25",
            ),
            (
                "date_part",
                vec![
                    t("hour"),
                    Value::Date(datetime::parse_date("2024-03-05").unwrap()),
                ],
                "0",
            ),
            ("date_part", vec![t("epoch"), ivl("1 day")], "86400"),
            (
                "date_trunc",
                vec![
                    t("month"),
                    Value::Date(datetime::parse_date("2024-03-05").unwrap()),
                ],
                "2024-03-01 00:00:00+00",
            ),
            (
                "date_trunc",
                vec![t("hour"), ts("2024-03-05 13:04:05")],
                "2024-03-05 13:00:00",
            ),
            (
                "age",
                vec![ts("2024-03-05"), ts("2023-01-31 12:00")],
                "1 year 1 mon 4 days 12:00:00",
            ),
            (
                "age",
                vec![ts("2023-01-31 12:00"), ts("2024-03-05")],
                "-1 years -1 mons -4 days -12:00:00",
            ),
            (
                "age",
                vec![ts("2024-03-31"), ts("2024-02-29")],
                "1 mon 2 days",
            ),
            (
                "age",
                vec![ts("2024-02-29"), ts("2024-03-31")],
                "-1 mons -2 days",
            ),
            (
                "age",
                vec![ts("2001-04-10"), ts("1957-06-13")],
                "43 years 9 mons 27 days",
            ),
            ("age", vec![ts("2024-01-05")], "2 mons"),
            (
                "age",
                vec![tstz("2024-03-05 12:00+00"), tstz("2024-03-04 13:00+00")],
                "23:00:00",
            ),
            ("make_date", vec![i(2024), i(3), i(5)], "2024-03-05"),
            ("make_date", vec![i(-44), i(3), i(15)], "0044-03-15 BC"),
            (
                "make_date",
                vec![i(0), i(3), i(5)],
                "22008: date field value out of range: 0-03-05",
            ),
            (
                "make_date",
                vec![i(2024), i(2), i(30)],
                "22008: date field value out of range: 2024-02-30",
            ),
            (
                "make_date",
                vec![i(i32::MAX), i(1), i(1)],
                "22008: date out of range: 2147483647-01-01",
            ),
            (
                "make_timestamp",
                vec![i(2024), i(3), i(5), i(13), i(4), f(5.5)],
                "2024-03-05 13:04:05.5",
            ),
            (
                "make_timestamp",
                vec![i(2024), i(3), i(5), i(24), i(0), f(0.0)],
                "2024-03-06 00:00:00",
            ),
            (
                "make_timestamp",
                vec![i(2024), i(3), i(5), i(23), i(59), f(60.0)],
                "2024-03-06 00:00:00",
            ),
            (
                "make_timestamp",
                vec![i(2024), i(3), i(5), i(25), i(4), f(5.5)],
                "22008: time field value out of range: 25:04:5.5",
            ),
            (
                "make_timestamp",
                vec![i(2024), i(3), i(5), i(23), i(59), f(61.0)],
                "22008: time field value out of range: 23:59:61",
            ),
            (
                "make_interval",
                vec![i(1), i(2), i(1), i(3), i(4), i(5), f(6.5)],
                "1 year 2 mons 10 days 04:05:06.5",
            ),
            (
                "to_timestamp",
                vec![f(1_709_643_845.25)],
                "2024-03-05 13:04:05.25+00",
            ),
            ("to_timestamp", vec![i(0)], "1970-01-01 00:00:00+00"),
            ("to_timestamp", vec![f(f64::INFINITY)], "infinity"),
            (
                "to_timestamp",
                vec![f(f64::NAN)],
                "22008: timestamp cannot be NaN",
            ),
            (
                "to_timestamp",
                vec![f(1e20)],
                "22008: timestamp out of range: \"1e+20\"",
            ),
            ("justify_days", vec![ivl("35 days")], "1 mon 5 days"),
            ("justify_days", vec![ivl("1 mon -35 days")], "-5 days"),
            ("justify_hours", vec![ivl("27 hours")], "1 day 03:00:00"),
            ("justify_hours", vec![ivl("1 day -27 hours")], "-03:00:00"),
            (
                "justify_interval",
                vec![ivl("1 mon -1 hour")],
                "29 days 23:00:00",
            ),
            ("isfinite", vec![ts("infinity")], "f"),
            ("isfinite", vec![ts("2024-01-01")], "t"),
        ]);
        assert!(call("version", &[]).starts_with("PostgreSQL 15.0 (Strata "));
    }

    #[test]
    fn to_char_of_times_matches_postgres() {
        let x = ts("2024-03-05 13:04:05.123456");
        check(&[
            ("to_char", vec![x.clone(), t("YYYY-MM-DD HH24:MI:SS.MS US")], "2024-03-05 13:04:05.123 123456"),
            ("to_char", vec![ts("2024-03-05 13:04:05"), t("HH12:MI AM am PM pm A.M. a.m.")], "01:04 PM pm PM pm P.M. p.m."),
            ("to_char", vec![ts("2024-03-05 00:04:05"), t("HH HH12 HH24")], "12 12 00"),
            (
                "to_char",
                vec![x.clone(), t("Mon MON mon Month MONTH month|Day DAY day Dy DY dy D")],
                "Mar MAR mar March     MARCH     march    |Tuesday   TUESDAY   tuesday   Tue TUE tue 3",
            ),
            ("to_char", vec![ts("2024-03-05"), t("FMMonth FMDay FMDD FMMM FMHH24")], "March Tuesday 5 3 0"),
            (
                "to_char",
                vec![ts("2024-03-05 13:04:05"), t("YY YYY Y Y,YYY CC Q DDD IW WW W J IYYY ID TZ tz OF")],
                "24 024 4 2,024 21 1 065 10 10 1 2460375 2024 2   +00",
            ),
            ("to_char", vec![tstz("2024-03-05 13:04:05+00"), t("TZ OF TZH:TZM")], "UTC +00 +00:00"),
            ("to_char", vec![ts("2024-03-05"), t("DDth DDTH MMth FMDDth \"text\" \\\"q")], "05th 05TH 03rd 5th text \"1"),
            ("to_char", vec![ts("2024-03-01"), t("FMDDth")], "1st"),
            ("to_char", vec![ts("2024-03-02"), t("FMDDth")], "2nd"),
            ("to_char", vec![ts("2024-03-11"), t("FMDDth")], "11th"),
            ("to_char", vec![ts("2024-03-22"), t("DDth")], "22nd"),
            ("to_char", vec![ts("0044-03-15 BC"), t("YYYY BC AD B.C. bc")], "0044 BC BC B.C. bc"),
            ("to_char", vec![ts("2024-03-15"), t("YYYY BC AD")], "2024 AD AD"),
            ("to_char", vec![Value::Date(datetime::parse_date("2024-03-05").unwrap()), t("YYYY/MM/DD")], "2024/03/05"),
            ("to_char", vec![ts("infinity"), t("YYYY")], "NULL"),
            ("to_char", vec![ivl("1 day 02:03:04"), t("HH24:MI:SS DD")], "02:03:04 01"),
            ("to_char", vec![ts("2024-03-05 13:04:05"), t("SSSS SSSSS FF1 FF2 FF3 FF6 MS")], "47045 47045 0 00 000 000000 000"),
            ("to_char", vec![ts("2024-03-05 13:04:05"), t("")], "NULL"),
            ("to_char", vec![ts("2024-03-05"), t("RM rm")], "III  iii "),
            (
                "to_char",
                vec![ivl("-1 day -02:03:04"), t("YYYY MM DD HH24:MI:SS.MS")],
                "0000 00 -1 -02:-03:-04.000",
            ),
            ("to_char", vec![ivl("-1 day -02:03:04"), t("HH HH12 AM SSSS")], "-02 -02 AM -7384"),
            (
                "to_char",
                vec![ivl("1 day"), t("Day")],
                "22007: invalid format specification for an interval value",
            ),
            ("to_char", vec![ts("0044-03-15 BC"), t("CC")], "-01"),
        ]);
    }

    #[test]
    fn to_char_of_numbers_matches_postgres() {
        let cases: &[(Value, &str, &str)] = &[
            (n("123.456"), "999.99", " 123.46"),
            (n("-123.456"), "999.99", "-123.46"),
            (i(5), "999", "   5"),
            (i(5), "000", " 005"),
            (i(1234), "9,999", " 1,234"),
            (i(12), "9,999", "    12"),
            (i(12345), "999", " ###"),
            (n("1.5"), "FM9.99", "1.5"),
            (n("1.5"), "FM0.00", "1.50"),
            (n("0.5"), "9.99", "  .50"),
            (n("0.5"), "0.99", " 0.50"),
            (n("-0.5"), "9.99", " -.50"),
            (i(0), "9.99", "  .00"),
            (i(0), "999", "   0"),
            (n("12.5"), "S999.9", " +12.5"),
            (n("-12.5"), "S999.9", " -12.5"),
            (n("12.5"), "999.9S", " 12.5+"),
            (n("-12.5"), "999.9MI", " 12.5-"),
            (n("12.5"), "999.9MI", " 12.5 "),
            (n("-12.5"), "999.9PR", " <12.5>"),
            (n("12.5"), "FM999.9PR", "12.5"),
            (n("1234567.891"), "9G999G999D99", " 1,234,567.89"),
            (n("1234567.891"), "FM9,999,999.999", "1,234,567.891"),
            (n("-1234567.891"), "FM9,999,999.999", "-1,234,567.891"),
            (n("3.14159"), "9.9999999", " 3.1415900"),
            (n("2.5"), "9", " 3"),
            (f(3.5), "9", " 4"),
            (n("-2.5"), "9", "-3"),
            (n("1.0"), "FM9.", "1"),
            (i(10), "FM999.999", "10."),
            (i(10), "999.999", "  10.000"),
            (i(123), "99999", "   123"),
            (i(123), "FM99999", "123"),
            (i(123), "00099", " 00123"),
            (
                Value::Int8(123_456_789_012_345_678),
                "999999999999999999",
                " 123456789012345678",
            ),
            (n("0.001"), "9.999", "  .001"),
            (n("0.001"), "FM9.999", ".001"),
            (n("0.001"), "FM0.999", "0.001"),
            (f(1e20), "999", " ###"),
            (f(12.345), "99.99", " 12.35"),
            (i(12), "xx999yy", "xx  12yy"),
            (i(12), "\"abc\"999", "abc  12"),
            (i(-12), "FMS999", "-12"),
            (i(12), "FMS999", "+12"),
            (i(12), "SG999", "+ 12"),
            (n("-0.1"), "FM990.99", "-0.1"),
            (i(485), "RN", "        CDLXXXV"),
            (i(485), "FMRN", "CDLXXXV"),
            (i(12), "99th", " 12th"),
            (n("123000"), "9.99EEEE", " 1.23e+05"),
            (i(-12), "999S", " 12-"),
            (i(1), "", "NULL"),
            (i(1), "9V99", " 100"),
            (n("-0.5"), "9V99", " -50"),
            (i(-1), "PL999", "   -1"),
            (i(1), "PL999", "+   1"),
            (i(-1), "L999", "   -1"),
            (i(1), "B999", "   1"),
            (i(0), "FM999.99", "0."),
            (i(-5), "FM999th", "-5"),
            (n("123.456"), "99th", " ##"),
        ];
        for (v, fmt, want) in cases {
            assert_eq!(
                call("to_char", &[v.clone(), t(fmt)]),
                *want,
                "to_char({v:?}, {fmt})"
            );
        }
    }

    #[test]
    fn to_date_and_to_timestamp_match_postgres() {
        check(&[
            (
                "to_date",
                vec![t("2024-03-05"), t("YYYY-MM-DD")],
                "2024-03-05",
            ),
            (
                "to_date",
                vec![t("05 Mar 2024"), t("DD Mon YYYY")],
                "2024-03-05",
            ),
            (
                "to_timestamp",
                vec![t("2024-03-05 13:04:05"), t("YYYY-MM-DD HH24:MI:SS")],
                "2024-03-05 13:04:05+00",
            ),
            (
                "to_timestamp",
                vec![t("2024-03-05 01:04:05 PM"), t("YYYY-MM-DD HH12:MI:SS AM")],
                "2024-03-05 13:04:05+00",
            ),
            ("to_date", vec![t("20240305"), t("YYYYMMDD")], "2024-03-05"),
            (
                "to_timestamp",
                vec![t("2024-03-05 13:04:05.123"), t("YYYY-MM-DD HH24:MI:SS.MS")],
                "2024-03-05 13:04:05.123+00",
            ),
            (
                "to_date",
                vec![t("2024-13-05"), t("YYYY-MM-DD")],
                "22008: date/time field value out of range: \"2024-13-05\"",
            ),
            (
                "to_date",
                vec![t("2024-02-30"), t("YYYY-MM-DD")],
                "22008: date/time field value out of range: \"2024-02-30\"",
            ),
            (
                "to_date",
                vec![t("abc"), t("YYYY-MM-DD")],
                "22007: invalid value \"abc\" for \"YYYY\"",
            ),
            (
                "to_date",
                vec![t("2024-xx-05"), t("YYYY-MM-DD")],
                "22007: invalid value \"xx-05\" for \"MM\"",
            ),
            ("to_date", vec![t("2024"), t("YYYY-MM-DD")], "2024-01-01"),
            (
                "to_date",
                vec![t("  2024-3-5"), t("YYYY-MM-DD")],
                "2024-03-05",
            ),
            (
                "to_date",
                vec![t("2024 March 5"), t("YYYY Month DD")],
                "2024-03-05",
            ),
            (
                "to_date",
                vec![t("2024-03-05 junk"), t("YYYY-MM-DD")],
                "2024-03-05",
            ),
            (
                "to_date",
                vec![t("2024/03/05"), t("YYYY-MM-DD")],
                "2024-03-05",
            ),
            (
                "to_date",
                vec![t("2024 03 05"), t("YYYY-MM-DD")],
                "2024-03-05",
            ),
            ("to_date", vec![t("03-05"), t("MM-DD")], "0001-03-05 BC"),
            ("to_date", vec![t("2024-3"), t("YYYY-MM")], "2024-03-01"),
            (
                "to_date",
                vec![t("44-03-05 BC"), t("YYYY-MM-DD BC")],
                "0044-03-05 BC",
            ),
            ("to_date", vec![t("24-03-05"), t("YY-MM-DD")], "2024-03-05"),
            ("to_date", vec![t("2024-065"), t("YYYY-DDD")], "2024-03-05"),
            (
                "to_date",
                vec![t("2024-W10"), t("IYYY-\"W\"IW")],
                "2024-03-04",
            ),
            (
                "to_date",
                vec![t("0000-03-05"), t("YYYY-MM-DD")],
                "0001-03-05 BC",
            ),
            (
                "to_date",
                vec![t("-44-03-05"), t("YYYY-MM-DD")],
                "0044-03-05 BC",
            ),
            (
                "to_timestamp",
                vec![t("2024-03-05T13:04:05"), t("YYYY-MM-DD\"T\"HH24:MI:SS")],
                "2024-03-05 13:04:05+00",
            ),
            (
                "to_timestamp",
                vec![t("2024-03-05 24:00:00"), t("YYYY-MM-DD HH24:MI:SS")],
                "22008: date/time field value out of range: \"2024-03-05 24:00:00\"",
            ),
            (
                "to_timestamp",
                vec![t("05:06"), t("MI:SS")],
                "0001-01-01 00:05:06+00 BC",
            ),
            (
                "to_timestamp",
                vec![t("2024-03-05 13 pm"), t("YYYY-MM-DD HH12 AM")],
                "22007: hour \"13\" is invalid for the 12-hour clock",
            ),
            (
                "to_timestamp",
                vec![t("2024-03-05 25"), t("YYYY-MM-DD HH24")],
                "22008: date/time field value out of range: \"2024-03-05 25\"",
            ),
            (
                "to_timestamp",
                vec![t("2024-03-05 13:04 +02"), t("YYYY-MM-DD HH24:MI TZH")],
                "2024-03-05 11:04:00+00",
            ),
            (
                "to_date",
                vec![t("99999999999999999999"), t("YYYY")],
                "22007: value for \"YYYY\" in source string is out of range",
            ),
        ]);
    }

    #[test]
    fn pg_typeof_names_the_argument_type() {
        use DataType as T;
        let name = |t: T, v: Value| {
            let r = resolve("pg_typeof", &[t]).unwrap().unwrap();
            assert!(!r.strict);
            (r.call)(&[v], &FnContext::default())
                .unwrap()
                .to_text()
                .unwrap()
        };
        assert_eq!(name(T::Int4, Value::Int4(1)), "integer");
        assert_eq!(name(T::Float4, Value::Null), "real");
        assert_eq!(name(T::Numeric(Some((4, 2))), Value::Null), "numeric");
        assert_eq!(name(T::Varchar(Some(3)), Value::Null), "character varying");
        assert_eq!(name(T::Char(2), Value::Null), "character");
        assert_eq!(
            name(T::Timestamp, Value::Null),
            "timestamp without time zone"
        );
        assert_eq!(
            name(T::TimestampTz, Value::Null),
            "timestamp with time zone"
        );
        assert_eq!(name(T::Unknown, Value::Null), "unknown");
        assert!(resolve("pg_typeof", &[]).unwrap().is_none());
    }

    #[test]
    fn char_lengths_and_concat_follow_postgres() {
        use DataType as T;
        let run = |name: &str, types: &[T], args: &[Value]| {
            let r = resolve(name, types).unwrap().unwrap();
            assert_eq!(r.arg_types, types.to_vec());
            (r.call)(args, &FnContext::default())
                .unwrap()
                .to_text()
                .unwrap()
        };
        // character(n): length ignores the padding, octet_length counts it.
        let padded = [t("ab  ")];
        assert_eq!(run("length", &[T::Char(4)], &padded), "2");
        assert_eq!(run("char_length", &[T::Char(4)], &padded), "2");
        assert_eq!(run("octet_length", &[T::Char(4)], &padded), "4");
        // concat prints each argument with its output form.
        assert_eq!(
            run(
                "concat",
                &[T::Bool, T::Int4, T::Char(3)],
                &[Value::Bool(true), i(1), t("x  ")]
            ),
            "t1x  "
        );
        assert_eq!(call("concat", &[t("a"), Value::Null, t("b")]), "ab");
    }
}
