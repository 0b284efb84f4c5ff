//! Dates, timestamps and intervals as PostgreSQL 15 reads, prints and computes them (session
//! time zone UTC, DateStyle ISO/MDY, IntervalStyle postgres).
//!
//! A date is a count of days since 1970-01-01 and a timestamp a count of microseconds since
//! 1970-01-01 00:00:00, both on the proleptic Gregorian calendar with astronomical years inside
//! (year 0 is 1 BC). `infinity` and `-infinity` are kept as the extreme values of the integer,
//! as PostgreSQL does.

use rust_decimal::Decimal;

use crate::error::{Error, Result};
use crate::value::{numeric_div, ArithOp, DataType, Interval, Value};
use crate::{bail, err};

pub const USECS_PER_DAY: i64 = 86_400_000_000;
pub(crate) const USECS_PER_HOUR: i64 = 3_600_000_000;
pub(crate) const USECS_PER_MINUTE: i64 = 60_000_000;
pub(crate) const USECS_PER_SEC: i64 = 1_000_000;

/// `-infinity` and `infinity` for dates and timestamps.
pub(crate) const DATE_NEG_INF: i32 = i32::MIN;
pub(crate) const DATE_POS_INF: i32 = i32::MAX;
pub(crate) const TS_NEG_INF: i64 = i64::MIN;
pub(crate) const TS_POS_INF: i64 = i64::MAX;

/// Julian day number of 1970-01-01.
pub(crate) const UNIX_EPOCH_JDN: i64 = 2_440_588;
/// The first valid day, 4714-11-24 BC (Julian day 0), in days since 1970-01-01.
const MIN_DAY: i64 = -UNIX_EPOCH_JDN;
/// One past the last valid date, 5874898-01-01.
const END_DATE_DAY: i64 = 2_147_483_494 - UNIX_EPOCH_JDN;
/// The first valid timestamp, 4714-11-24 00:00:00 BC. The last is one microsecond before
/// `infinity` (294247-01-10 04:00:54.775806): counting from 1970 rather than 2000 as PostgreSQL
/// does costs the last thirty years of its range.
const MIN_TS: i64 = MIN_DAY * USECS_PER_DAY;

/// SQLSTATEs that error.rs does not name.
const INTERVAL_FIELD_OVERFLOW: &str = "22015";
const INVALID_TIME_ZONE_DISPLACEMENT: &str = "22009";

// ---------------------------------------------------------------------------------------------
// Calendar

/// Days since 1970-01-01 of a proleptic Gregorian date (astronomical year, month 1..=12).
pub(crate) const fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (astronomical year, month, day) of a day count since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub(crate) fn is_leap(year: i64) -> bool {
    year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0)
}

pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Day of the week, Sunday = 0.
pub(crate) fn weekday(days: i64) -> u32 {
    (days + 4).rem_euclid(7) as u32
}

/// ISO 8601 (year, week) of a day.
pub(crate) fn iso_week(days: i64) -> (i64, u32) {
    let monday_based = (days + 3).rem_euclid(7);
    let thursday = days - monday_based + 3;
    let (year, _, _) = civil_from_days(thursday);
    let week = (thursday - days_from_civil(year, 1, 1)) / 7 + 1;
    (year, week as u32)
}

/// A timestamp broken into fields. `year` is astronomical (0 = 1 BC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tm {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micro: u32,
}

impl Tm {
    pub(crate) fn from_timestamp(t: i64) -> Tm {
        let days = t.div_euclid(USECS_PER_DAY);
        let time = t.rem_euclid(USECS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        Tm {
            year,
            month,
            day,
            hour: (time / USECS_PER_HOUR) as u32,
            minute: (time / USECS_PER_MINUTE % 60) as u32,
            second: (time / USECS_PER_SEC % 60) as u32,
            micro: (time % USECS_PER_SEC) as u32,
        }
    }

    pub(crate) fn days(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day)
    }

    pub(crate) fn time(&self) -> i64 {
        self.hour as i64 * USECS_PER_HOUR
            + self.minute as i64 * USECS_PER_MINUTE
            + self.second as i64 * USECS_PER_SEC
            + self.micro as i64
    }

    /// The timestamp, or None outside the valid range.
    pub(crate) fn to_timestamp(self) -> Option<i64> {
        if !(-1_000_000..=1_000_000).contains(&self.year) {
            return None;
        }
        let t = self
            .days()
            .checked_mul(USECS_PER_DAY)?
            .checked_add(self.time())?;
        ts_in_range(t).then_some(t)
    }
}

pub(crate) fn ts_in_range(t: i64) -> bool {
    (MIN_TS..TS_POS_INF).contains(&t)
}

fn date_in_range(d: i64) -> bool {
    (MIN_DAY..END_DATE_DAY).contains(&d)
}

pub(crate) fn ts_is_finite(t: i64) -> bool {
    t != TS_NEG_INF && t != TS_POS_INF
}

pub(crate) fn date_is_finite(d: i32) -> bool {
    d != DATE_NEG_INF && d != DATE_POS_INF
}

/// The timestamp at midnight of a date (22008 past the timestamp range).
pub(crate) fn date_to_timestamp(d: i32) -> Result<i64> {
    match d {
        DATE_NEG_INF => Ok(TS_NEG_INF),
        DATE_POS_INF => Ok(TS_POS_INF),
        d => match (d as i64).checked_mul(USECS_PER_DAY) {
            Some(t) if ts_in_range(t) => Ok(t),
            _ => bail!(DATETIME_FIELD_OVERFLOW, "date out of range for timestamp"),
        },
    }
}

/// The current time, in microseconds since the epoch.
pub(crate) fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

// ---------------------------------------------------------------------------------------------
// Output

fn push_date(out: &mut String, year: i64, month: u32, day: u32) {
    let shown = if year > 0 { year } else { 1 - year };
    out.push_str(&format!("{shown:04}-{month:02}-{day:02}"));
}

fn push_seconds(out: &mut String, second: i64, micro: i64) {
    out.push_str(&format!("{second:02}"));
    if micro != 0 {
        let frac = format!("{micro:06}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
}

/// A date as PostgreSQL prints it: `2024-03-05`, `0044-03-15 BC`.
pub fn format_date(d: i32) -> String {
    match d {
        DATE_NEG_INF => return "-infinity".into(),
        DATE_POS_INF => return "infinity".into(),
        _ => {}
    }
    let (year, month, day) = civil_from_days(d as i64);
    let mut out = String::with_capacity(16);
    push_date(&mut out, year, month, day);
    if year <= 0 {
        out.push_str(" BC");
    }
    out
}

fn format_ts(t: i64, zone: &str) -> String {
    match t {
        TS_NEG_INF => return "-infinity".into(),
        TS_POS_INF => return "infinity".into(),
        _ => {}
    }
    let tm = Tm::from_timestamp(t);
    let mut out = String::with_capacity(32);
    push_date(&mut out, tm.year, tm.month, tm.day);
    out.push_str(&format!(" {:02}:{:02}:", tm.hour, tm.minute));
    push_seconds(&mut out, tm.second as i64, tm.micro as i64);
    out.push_str(zone);
    if tm.year <= 0 {
        out.push_str(" BC");
    }
    out
}

/// A timestamp as PostgreSQL prints it: `2024-03-05 13:04:05.25`.
pub fn format_timestamp(t: i64) -> String {
    format_ts(t, "")
}

/// A timestamp with time zone in the UTC session zone: `2024-03-05 13:04:05+00`.
pub fn format_timestamptz(t: i64) -> String {
    format_ts(t, "+00")
}

/// An interval in IntervalStyle postgres: `1 year 2 mons -3 days +04:05:06.5`.
pub fn format_interval(i: &Interval) -> String {
    let mut out = String::new();
    let mut is_zero = true;
    let mut is_before = false;
    let mut part = |value: i64, unit: &str, out: &mut String| {
        if value == 0 {
            return;
        }
        if !is_zero {
            out.push(' ');
        }
        if is_before && value > 0 {
            out.push('+');
        }
        out.push_str(&format!("{value} {unit}"));
        if value != 1 {
            out.push('s');
        }
        is_before = value < 0;
        is_zero = false;
    };
    part(i.months as i64 / 12, "year", &mut out);
    part(i.months as i64 % 12, "mon", &mut out);
    part(i.days as i64, "day", &mut out);
    if is_zero || i.micros != 0 {
        let minus = i.micros < 0;
        let m = i.micros.unsigned_abs();
        let hours = m / USECS_PER_HOUR as u64;
        let minutes = m / USECS_PER_MINUTE as u64 % 60;
        let seconds = m / USECS_PER_SEC as u64 % 60;
        let micros = m % USECS_PER_SEC as u64;
        if !is_zero {
            out.push(' ');
        }
        if minus {
            out.push('-');
        } else if is_before {
            out.push('+');
        }
        out.push_str(&format!("{hours:02}:{minutes:02}:"));
        push_seconds(&mut out, seconds as i64, micros as i64);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Input: tokens

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// Digits, maybe with a sign and a fraction: `2024`, `-1.5`.
    Num(String),
    /// Digit groups joined by `-`, `/` or `.`, maybe with month names: `2024-03-05`.
    Date(String, char),
    /// `hh:mm[:ss[.ffffff]]`, maybe with a sign.
    Time(String),
    /// A word, lower case, dots removed.
    Word(String),
}

/// Splits date/time input into fields, the way PostgreSQL's ParseDateTime does (simplified).
fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let chars: Vec<char> = s.chars().flat_map(char::to_lowercase).collect();
    let n = chars.len();
    let digit = |i: usize| i < n && chars[i].is_ascii_digit();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < n {
        let c = chars[i];
        if c.is_whitespace() || c == ',' {
            i += 1;
            continue;
        }
        // ISO 8601 'T' between the date and the time.
        if c == 't' && i > 0 && chars[i - 1].is_ascii_digit() && digit(i + 1) {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || ((c == '+' || c == '-') && i + 1 < n) {
            let mut text = String::new();
            if c == '+' || c == '-' {
                text.push(c);
                i += 1;
                while i < n && chars[i].is_whitespace() {
                    i += 1;
                }
                if i < n && chars[i].is_alphabetic() {
                    // -infinity
                    let start = i;
                    while i < n && chars[i].is_alphabetic() {
                        i += 1;
                    }
                    text.extend(&chars[start..i]);
                    toks.push(Tok::Word(text));
                    continue;
                }
                if !digit(i) {
                    return None;
                }
            }
            let start = i;
            while digit(i) {
                i += 1;
            }
            if i < n && chars[i] == ':' {
                while i < n && (chars[i].is_ascii_digit() || chars[i] == ':' || chars[i] == '.') {
                    i += 1;
                }
                text.extend(&chars[start..i]);
                toks.push(Tok::Time(text));
            } else if i < n
                && (chars[i] == '-' || chars[i] == '/')
                && i + 1 < n
                && chars[i + 1].is_alphanumeric()
            {
                let delim = chars[i];
                while i < n && (chars[i].is_ascii_alphanumeric() || chars[i] == delim) {
                    if chars[i] == 't' && chars[i - 1].is_ascii_digit() && digit(i + 1) {
                        break;
                    }
                    i += 1;
                }
                text.extend(&chars[start..i]);
                toks.push(Tok::Date(text, delim));
            } else if i < n && chars[i] == '.' {
                let mut j = i + 1;
                while digit(j) {
                    j += 1;
                }
                if j < n && chars[j] == '.' && digit(j + 1) {
                    while j < n && (chars[j].is_ascii_digit() || chars[j] == '.') {
                        j += 1;
                    }
                    text.extend(&chars[start..j]);
                    toks.push(Tok::Date(text, '.'));
                } else {
                    text.extend(&chars[start..j]);
                    toks.push(Tok::Num(text));
                }
                i = j;
            } else {
                text.extend(&chars[start..i]);
                toks.push(Tok::Num(text));
            }
            continue;
        }
        if c == '.' && digit(i + 1) {
            // A fraction without an integer part: `.5`.
            let start = i;
            i += 1;
            while digit(i) {
                i += 1;
            }
            let mut text = String::from("0");
            text.extend(&chars[start..i]);
            toks.push(Tok::Num(text));
            continue;
        }
        if c.is_alphabetic() {
            let start = i;
            while i < n && (chars[i].is_alphabetic() || chars[i] == '.' || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().filter(|c| **c != '.').collect();
            toks.push(Tok::Word(word));
            continue;
        }
        return None;
    }
    Some(toks)
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

fn month_of_word(w: &str) -> Option<u32> {
    if w == "sept" {
        return Some(9);
    }
    MONTHS
        .iter()
        .position(|m| *m == w || (w.len() == 3 && m.starts_with(w)))
        .map(|p| p as u32 + 1)
}

fn is_weekday_word(w: &str) -> bool {
    WEEKDAYS
        .iter()
        .any(|d| *d == w || (w.len() >= 3 && d.starts_with(w)))
        || matches!(w, "tues" | "wednes" | "thur" | "thurs")
}

/// Common time zone abbreviations, in seconds east of UTC.
fn zone_abbrev(w: &str) -> Option<i64> {
    let hours = match w {
        "z" | "utc" | "gmt" | "zulu" | "ut" | "wet" => 0.0,
        "est" => -5.0,
        "edt" | "ast" => -4.0,
        "cst" => -6.0,
        "cdt" => -5.0,
        "mst" => -7.0,
        "mdt" => -6.0,
        "pst" => -8.0,
        "pdt" => -7.0,
        "akst" => -9.0,
        "akdt" => -8.0,
        "hst" => -10.0,
        "nst" => -3.5,
        "ndt" => -2.5,
        "bst" | "cet" | "met" | "west" => 1.0,
        "cest" | "eet" | "mest" | "sast" => 2.0,
        "eest" | "msk" => 3.0,
        "jst" | "kst" => 9.0,
        "aest" => 10.0,
        "aedt" => 11.0,
        "acst" => 9.5,
        "awst" => 8.0,
        "nzst" => 12.0,
        "nzdt" => 13.0,
        _ => return None,
    };
    Some((hours * 3600.0) as i64)
}

/// Parses `h:m[:s[.f]]` into microseconds and hour/minute/second fields (unsigned).
fn parse_time_field(s: &str) -> Option<(i64, i64, i64, i64)> {
    let mut parts = s.split(':');
    let h: i64 = parse_digits(parts.next()?)?;
    let m: i64 = parse_digits(parts.next()?)?;
    let (sec, micro) = match parts.next() {
        None => (0, 0),
        Some(sec) => parse_seconds(sec)?,
    };
    if parts.next().is_some() {
        return None;
    }
    Some((h, m, sec, micro))
}

fn parse_digits(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `ss[.ffffff]` into seconds and microseconds, the fraction rounded to microseconds.
fn parse_seconds(s: &str) -> Option<(i64, i64)> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    let sec = if int.is_empty() && !frac.is_empty() {
        0
    } else {
        parse_digits(int)?
    };
    Some((sec, parse_fraction(frac)?))
}

/// Fraction digits (after the point) as microseconds, rounded half up.
fn parse_fraction(frac: &str) -> Option<i64> {
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut micro: i64 = 0;
    for (k, b) in frac.bytes().enumerate() {
        let d = (b - b'0') as i64;
        if k < 6 {
            micro = micro * 10 + d;
        } else if k == 6 {
            if d >= 5 {
                micro += 1;
            }
            break;
        }
    }
    let shown = frac.len().min(6);
    for _ in shown..6 {
        micro *= 10;
    }
    Some(micro)
}

/// A time zone offset `+hh`, `+hhmm`, `+hh:mm[:ss]` in seconds east of UTC.
fn parse_zone_offset(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => return None,
    };
    let (h, m, sec) = if body.contains(':') {
        let mut p = body.split(':');
        let h = parse_digits(p.next()?)?;
        let m = parse_digits(p.next()?)?;
        let sec = match p.next() {
            Some(x) => parse_digits(x)?,
            None => 0,
        };
        if p.next().is_some() {
            return None;
        }
        (h, m, sec)
    } else {
        let v = parse_digits(body)?;
        match body.len() {
            1 | 2 => (v, 0, 0),
            3 | 4 => (v / 100, v % 100, 0),
            5 | 6 => (v / 10000, v / 100 % 100, v % 100),
            _ => return None,
        }
    };
    if m >= 60 || sec >= 60 {
        return Some(i64::MAX);
    }
    let total = h * 3600 + m * 60 + sec;
    Some(if neg { -total } else { total })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Date,
    Timestamp,
    TimestampTz,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Date => "date",
            Kind::Timestamp => "timestamp",
            Kind::TimestampTz => "timestamp with time zone",
        }
    }
}

enum Parsed {
    /// Microseconds since the epoch, UTC (days for a date).
    At(i64),
    NegInfinity,
    PosInfinity,
}

/// Reads a date or timestamp: the fields in any of PostgreSQL's usual orders, a time, a zone.
fn parse_datetime(s: &str, kind: Kind) -> Result<Parsed> {
    let syntax = || {
        err!(
            INVALID_DATETIME_FORMAT,
            "invalid input syntax for type {}: \"{s}\"",
            kind.name()
        )
    };
    let field_range = || {
        err!(
            DATETIME_FIELD_OVERFLOW,
            "date/time field value out of range: \"{s}\""
        )
    };
    let toks = tokenize(s).ok_or_else(syntax)?;
    if toks.is_empty() {
        return Err(syntax());
    }
    let mut year: Option<(i64, usize)> = None;
    let mut month: Option<u32> = None;
    let mut day: Option<i64> = None;
    let mut time: Option<(i64, i64, i64, i64)> = None;
    let mut zone: Option<i64> = None;
    let mut bc = false;
    let mut ad = false;
    let mut ampm: Option<bool> = None;
    let mut base_day: Option<i64> = None;
    let mut special: Option<Parsed> = None;
    let mut have_date_field = false;

    for (idx, tok) in toks.iter().enumerate() {
        match tok {
            Tok::Date(text, delim) => {
                if have_date_field
                    || year.is_some()
                    || month.is_some()
                    || day.is_some()
                    || text.starts_with(['+', '-'])
                {
                    return Err(syntax());
                }
                have_date_field = true;
                let parts: Vec<&str> = text.split(*delim).collect();
                if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
                    return Err(syntax());
                }
                let num = |p: &str| parse_digits(p).ok_or_else(syntax);
                let word = |p: &str| month_of_word(p).ok_or_else(syntax);
                let is_word = |p: &str| p.bytes().all(|b| b.is_ascii_alphabetic());
                let (y, m, d) = if is_word(parts[1]) {
                    if parts[0].len() >= 3 {
                        (parts[0], word(parts[1])?, parts[2])
                    } else {
                        (parts[2], word(parts[1])?, parts[0])
                    }
                } else if is_word(parts[0]) {
                    (parts[2], word(parts[0])?, parts[1])
                } else if parts[0].len() >= 3 {
                    (
                        parts[0],
                        u32::try_from(num(parts[1])?).map_err(|_| field_range())?,
                        parts[2],
                    )
                } else {
                    (
                        parts[2],
                        u32::try_from(num(parts[0])?).map_err(|_| field_range())?,
                        parts[1],
                    )
                };
                year = Some((num(y)?, y.len()));
                month = Some(m);
                day = Some(num(d)?);
            }
            Tok::Num(text) if text.starts_with(['+', '-']) => {
                if time.is_none() && !have_date_field && year.is_none() || zone.is_some() {
                    return Err(syntax());
                }
                zone = Some(parse_zone_offset(text).ok_or_else(syntax)?);
            }
            Tok::Num(text) => {
                if text.contains('.') {
                    return Err(syntax());
                }
                let v = parse_digits(text).ok_or_else(syntax)?;
                let fresh = !have_date_field && year.is_none() && month.is_none() && day.is_none();
                if fresh && text.len() == 8 {
                    have_date_field = true;
                    year = Some((v / 10000, 4));
                    month = Some((v / 100 % 100) as u32);
                    day = Some(v % 100);
                } else if fresh && text.len() == 6 && idx == 0 {
                    have_date_field = true;
                    year = Some((v / 10000, 2));
                    month = Some((v / 100 % 100) as u32);
                    day = Some(v % 100);
                } else if have_date_field
                    && time.is_none()
                    && (text.len() == 6 || text.len() == 4)
                    && year.is_some()
                {
                    // Compact time after a date: hhmmss or hhmm.
                    let (h, m, sec) = if text.len() == 6 {
                        (v / 10000, v / 100 % 100, v % 100)
                    } else {
                        (v / 100, v % 100, 0)
                    };
                    time = Some((h, m, sec, 0));
                } else if text.len() >= 3 && year.is_none() {
                    year = Some((v, text.len()));
                } else if day.is_none() && (month.is_some() || (text.len() <= 2 && year.is_none()))
                {
                    day = Some(v);
                } else if year.is_none() {
                    year = Some((v, text.len()));
                } else {
                    return Err(syntax());
                }
            }
            Tok::Time(text) => {
                if text.starts_with(['+', '-']) {
                    if time.is_none() || zone.is_some() {
                        return Err(syntax());
                    }
                    zone = Some(parse_zone_offset(text).ok_or_else(syntax)?);
                } else {
                    if time.is_some() {
                        return Err(syntax());
                    }
                    time = Some(parse_time_field(text).ok_or_else(syntax)?);
                }
            }
            Tok::Word(w) => match w.as_str() {
                "bc" => bc = true,
                "ad" => ad = true,
                "am" | "pm" => {
                    if ampm.is_some() {
                        return Err(syntax());
                    }
                    ampm = Some(w == "pm");
                }
                "t" => {}
                "allballs" => {
                    if time.is_some() {
                        return Err(syntax());
                    }
                    time = Some((0, 0, 0, 0));
                }
                "epoch" | "infinity" | "-infinity" | "now" => {
                    if toks.len() != 1 {
                        return Err(syntax());
                    }
                    special = Some(match w.as_str() {
                        "epoch" => Parsed::At(0),
                        "-infinity" => Parsed::NegInfinity,
                        "now" => Parsed::At(now_micros()),
                        _ => Parsed::PosInfinity,
                    });
                }
                "today" | "tomorrow" | "yesterday" => {
                    if base_day.is_some() {
                        return Err(syntax());
                    }
                    let today = now_micros().div_euclid(USECS_PER_DAY);
                    base_day = Some(match w.as_str() {
                        "today" => today,
                        "tomorrow" => today + 1,
                        _ => today - 1,
                    });
                }
                w => {
                    if let Some(z) = zone_abbrev(w) {
                        if zone.is_some() {
                            return Err(syntax());
                        }
                        zone = Some(z);
                    } else if let Some(m) = month_of_word(w) {
                        if month.is_some() {
                            return Err(syntax());
                        }
                        month = Some(m);
                    } else if !is_weekday_word(w) {
                        return Err(syntax());
                    }
                }
            },
        }
    }
    if let Some(sp) = special {
        return Ok(match (sp, kind) {
            (Parsed::At(t), Kind::Date) => Parsed::At(t.div_euclid(USECS_PER_DAY)),
            (sp, _) => sp,
        });
    }
    // Time of day.
    let mut time_us = 0i64;
    if let Some((h, m, sec, micro)) = time {
        let mut h = h;
        if let Some(pm) = ampm {
            if !(0..=12).contains(&h) {
                return Err(field_range());
            }
            if pm && h < 12 {
                h += 12;
            } else if !pm && h == 12 {
                h = 0;
            }
        }
        let over_24 = h == 24 && (m > 0 || sec > 0 || micro > 0);
        if h > 24 || over_24 || m > 59 || sec > 60 {
            return Err(field_range());
        }
        time_us = h * USECS_PER_HOUR + m * USECS_PER_MINUTE + sec * USECS_PER_SEC + micro;
    } else if ampm.is_some() {
        return Err(syntax());
    }
    let days = if let Some(base) = base_day {
        if year.is_some() || month.is_some() || day.is_some() || bc {
            return Err(syntax());
        }
        base
    } else {
        let (Some((y, ydigits)), Some(m), Some(d)) = (year, month, day) else {
            return Err(syntax());
        };
        if bc && ad {
            return Err(syntax());
        }
        let mut y = y;
        if ydigits <= 2 && !bc {
            y += if y < 70 { 2000 } else { 1900 };
        }
        if y == 0 && ydigits > 2 {
            return Err(field_range());
        }
        if bc {
            if y <= 0 {
                return Err(field_range());
            }
            y = 1 - y;
        }
        if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) as i64 {
            return Err(field_range());
        }
        if !(-10_000_000..=10_000_000).contains(&y) {
            return Err(out_of_range(kind, s));
        }
        days_from_civil(y, m, d as u32)
    };
    if kind == Kind::Date {
        if !date_in_range(days) {
            return Err(out_of_range(kind, s));
        }
        return Ok(Parsed::At(days));
    }
    let mut t = days as i128 * USECS_PER_DAY as i128 + time_us as i128;
    if kind == Kind::TimestampTz {
        if let Some(z) = zone {
            if z.abs() > 15 * 3600 + 59 * 60 + 59 {
                return Err(Error::new(
                    INVALID_TIME_ZONE_DISPLACEMENT,
                    format!("time zone displacement out of range: \"{s}\""),
                ));
            }
            t -= z as i128 * USECS_PER_SEC as i128;
        }
    }
    match i64::try_from(t) {
        Ok(t) if ts_in_range(t) => Ok(Parsed::At(t)),
        _ => Err(out_of_range(kind, s)),
    }
}

fn out_of_range(kind: Kind, s: &str) -> Error {
    let what = if kind == Kind::Date {
        "date"
    } else {
        "timestamp"
    };
    err!(DATETIME_FIELD_OVERFLOW, "{what} out of range: \"{s}\"")
}

/// Reads a date: `2024-03-05`, `03/05/2024`, `March 5, 2024`, `20240305`, `0044-03-15 BC`,
/// `epoch`, `infinity`, `today`; a time after the date is read and dropped.
pub fn parse_date(s: &str) -> Result<i32> {
    Ok(match parse_datetime(s, Kind::Date)? {
        Parsed::At(days) => days as i32,
        Parsed::NegInfinity => DATE_NEG_INF,
        Parsed::PosInfinity => DATE_POS_INF,
    })
}

fn parsed_ts(p: Parsed) -> i64 {
    match p {
        Parsed::At(t) => t,
        Parsed::NegInfinity => TS_NEG_INF,
        Parsed::PosInfinity => TS_POS_INF,
    }
}

/// Reads a timestamp without time zone; a zone in the input is ignored, as PostgreSQL does.
pub fn parse_timestamp(s: &str) -> Result<i64> {
    parse_datetime(s, Kind::Timestamp).map(parsed_ts)
}

/// Reads a timestamp with time zone; without a zone the time is UTC (the session zone).
pub fn parse_timestamptz(s: &str) -> Result<i64> {
    parse_datetime(s, Kind::TimestampTz).map(parsed_ts)
}

// ---------------------------------------------------------------------------------------------
// Units

/// The date/time units of EXTRACT, date_trunc and interval input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    Microsecond,
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
    Decade,
    Century,
    Millennium,
    Epoch,
    Dow,
    IsoDow,
    Doy,
    IsoYear,
    Julian,
    Timezone,
    TimezoneHour,
    TimezoneMinute,
}

/// Looks up a unit name as PostgreSQL does (lower case, first 10 characters).
pub(crate) fn unit_of(name: &str) -> Option<Unit> {
    let lower = name.to_lowercase();
    let key: String = lower.chars().take(10).collect();
    Some(match key.as_str() {
        "microsecon" | "us" | "usec" | "usecs" | "usecond" | "useconds" => Unit::Microsecond,
        "millisecon" | "ms" | "msec" | "msecs" | "msecond" | "mseconds" => Unit::Millisecond,
        "second" | "seconds" | "s" | "sec" | "secs" => Unit::Second,
        "minute" | "minutes" | "m" | "min" | "mins" => Unit::Minute,
        "hour" | "hours" | "h" | "hr" | "hrs" => Unit::Hour,
        "day" | "days" | "d" => Unit::Day,
        "week" | "weeks" | "w" => Unit::Week,
        "month" | "months" | "mon" | "mons" => Unit::Month,
        "quarter" | "qtr" => Unit::Quarter,
        "year" | "years" | "y" | "yr" | "yrs" => Unit::Year,
        "decade" | "decades" | "dec" | "decs" => Unit::Decade,
        "century" | "centuries" | "c" | "cent" => Unit::Century,
        "millennium" | "millennia" | "mil" | "mils" => Unit::Millennium,
        "epoch" => Unit::Epoch,
        "dow" => Unit::Dow,
        "isodow" => Unit::IsoDow,
        "doy" => Unit::Doy,
        "isoyear" => Unit::IsoYear,
        "julian" | "j" | "jd" => Unit::Julian,
        "timezone" => Unit::Timezone,
        "timezone_h" => Unit::TimezoneHour,
        "timezone_m" => Unit::TimezoneMinute,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Interval input

fn interval_syntax(s: &str) -> Error {
    err!(
        INVALID_DATETIME_FORMAT,
        "invalid input syntax for type interval: \"{s}\""
    )
}

fn interval_field_overflow(s: &str) -> Error {
    Error::new(
        INTERVAL_FIELD_OVERFLOW,
        format!("interval field value out of range: \"{s}\""),
    )
}

fn interval_overflow() -> Error {
    err!(DATETIME_FIELD_OVERFLOW, "interval out of range")
}

/// An interval being read: wide fields, checked at the end.
#[derive(Default)]
struct IntervalAcc {
    months: i128,
    days: i128,
    micros: i128,
}

impl IntervalAcc {
    /// Adds `int + frac` of a unit; fractions spill into the smaller fields as PostgreSQL 15 does.
    fn add(&mut self, unit: Unit, int: i128, frac: f64) -> bool {
        let usecs = |f: f64, scale: f64| (f * scale).round_ties_even() as i128;
        match unit {
            Unit::Microsecond => self.micros += int + usecs(frac, 1.0),
            Unit::Millisecond => self.micros += int * 1000 + usecs(frac, 1000.0),
            Unit::Second => self.micros += int * 1_000_000 + usecs(frac, 1e6),
            Unit::Minute => self.micros += int * 60_000_000 + usecs(frac, 6e7),
            Unit::Hour => self.micros += int * 3_600_000_000 + usecs(frac, 3.6e9),
            Unit::Day => {
                self.days += int;
                self.micros += usecs(frac, 8.64e10);
            }
            Unit::Week => {
                self.days += int * 7;
                self.fract_days(frac * 7.0);
            }
            Unit::Month => {
                self.months += int;
                self.fract_days(frac * 30.0);
            }
            Unit::Year => self.months += int * 12 + (frac * 12.0).round_ties_even() as i128,
            Unit::Decade => self.months += int * 120 + (frac * 120.0).round_ties_even() as i128,
            Unit::Century => self.months += int * 1200 + (frac * 1200.0).round_ties_even() as i128,
            Unit::Millennium => {
                self.months += int * 12000 + (frac * 12000.0).round_ties_even() as i128
            }
            _ => return false,
        }
        true
    }

    fn fract_days(&mut self, days: f64) {
        let whole = days.trunc();
        self.days += whole as i128;
        self.micros += ((days - whole) * 8.64e10).round_ties_even() as i128;
    }

    fn finish(self, s: &str, negate: bool) -> Result<Interval> {
        let sign = if negate { -1 } else { 1 };
        let months = i32::try_from(self.months * sign).map_err(|_| interval_field_overflow(s))?;
        let days = i32::try_from(self.days * sign).map_err(|_| interval_field_overflow(s))?;
        let micros = i64::try_from(self.micros * sign).map_err(|_| interval_field_overflow(s))?;
        Ok(Interval {
            months,
            days,
            micros,
        })
    }
}

/// A signed decimal number as (integer part, fraction), both carrying the sign.
fn split_number(text: &str) -> Option<(i128, f64)> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int_v: i128 = if int.is_empty() {
        0
    } else if int.len() > 30 {
        return Some((i128::MAX, 0.0));
    } else {
        int.parse().ok()?
    };
    let frac_v: f64 = if frac.is_empty() {
        0.0
    } else {
        format!("0.{frac}").parse().ok()?
    };
    Some(if neg {
        (-int_v, -frac_v)
    } else {
        (int_v, frac_v)
    })
}

/// Reads an interval: `1 day 02:00:00`, `2 hours 30 minutes`, `3 days ago`, `1-2`,
/// `P1Y2M3DT4H5M6S`, `@ 1 hour`.
pub fn parse_interval(s: &str) -> Result<Interval> {
    let trimmed = s.trim();
    let lower = trimmed.to_ascii_lowercase();
    if trimmed.starts_with('P') {
        return parse_iso_interval(s, &lower[1..]);
    }
    let body = lower.strip_prefix('@').unwrap_or(&lower);
    let toks = tokenize(body).ok_or_else(|| interval_syntax(s))?;
    if toks.is_empty() {
        return Err(interval_syntax(s));
    }
    let mut acc = IntervalAcc::default();
    let mut seen: Vec<Unit> = Vec::new();
    let mut mark = |u: Unit| -> Result<()> {
        if seen.contains(&u) {
            return Err(interval_syntax(s));
        }
        seen.push(u);
        Ok(())
    };
    let mut ago = false;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Num(text) => {
                let (int, frac) = split_number(text).ok_or_else(|| interval_syntax(s))?;
                if int.unsigned_abs() > i64::MAX as u128 {
                    return Err(interval_field_overflow(s));
                }
                match toks.get(i + 1) {
                    Some(Tok::Word(w)) if w != "ago" => {
                        let unit = unit_of(w).ok_or_else(|| interval_syntax(s))?;
                        mark(unit)?;
                        if !acc.add(unit, int, frac) {
                            return Err(interval_syntax(s));
                        }
                        i += 2;
                        continue;
                    }
                    Some(Tok::Time(_)) if frac == 0.0 && !text.contains('.') => {
                        mark(Unit::Day)?;
                        acc.days += int;
                    }
                    None => {
                        mark(Unit::Second)?;
                        acc.add(Unit::Second, int, frac);
                    }
                    _ => return Err(interval_syntax(s)),
                }
            }
            Tok::Time(text) => {
                let (neg, body) = match text.as_bytes()[0] {
                    b'-' => (true, &text[1..]),
                    b'+' => (false, &text[1..]),
                    _ => (false, text.as_str()),
                };
                let (h, m, sec, micro) =
                    parse_time_field(body).ok_or_else(|| interval_syntax(s))?;
                if m > 59 || sec > 59 {
                    return Err(interval_field_overflow(s));
                }
                mark(Unit::Hour)?;
                mark(Unit::Minute)?;
                mark(Unit::Second)?;
                let v = h as i128 * 3_600_000_000
                    + m as i128 * 60_000_000
                    + sec as i128 * 1_000_000
                    + micro as i128;
                acc.micros += if neg { -v } else { v };
            }
            Tok::Date(text, '-') => {
                // SQL standard year-month: `1-2`.
                let (neg, body) = match text.as_bytes()[0] {
                    b'-' => (true, &text[1..]),
                    b'+' => (false, &text[1..]),
                    _ => (false, text.as_str()),
                };
                let (y, m) = body.split_once('-').ok_or_else(|| interval_syntax(s))?;
                let y = parse_digits(y).ok_or_else(|| interval_syntax(s))?;
                let m = parse_digits(m).ok_or_else(|| interval_syntax(s))?;
                if m > 11 {
                    return Err(interval_field_overflow(s));
                }
                mark(Unit::Year)?;
                mark(Unit::Month)?;
                let v = y as i128 * 12 + m as i128;
                acc.months += if neg { -v } else { v };
            }
            Tok::Word(w) if w == "ago" && i + 1 == toks.len() && i > 0 => ago = true,
            _ => return Err(interval_syntax(s)),
        }
        i += 1;
    }
    acc.finish(s, ago)
}

/// ISO 8601 designators after the `P`: `1Y2M3DT4H5M6S`, `1W`, `T1.5S`.
fn parse_iso_interval(s: &str, rest: &str) -> Result<Interval> {
    let mut acc = IntervalAcc::default();
    let mut in_time = false;
    let mut any = false;
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b't' && !in_time {
            in_time = true;
            i += 1;
            continue;
        }
        let start = i;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        if i == start || i >= b.len() {
            return Err(interval_syntax(s));
        }
        let (int, frac) = split_number(&rest[start..i]).ok_or_else(|| interval_syntax(s))?;
        if int.unsigned_abs() > i64::MAX as u128 {
            return Err(interval_field_overflow(s));
        }
        let unit = match (b[i], in_time) {
            (b'y', false) => Unit::Year,
            (b'm', false) => Unit::Month,
            (b'w', false) => Unit::Week,
            (b'd', false) => Unit::Day,
            (b'h', true) => Unit::Hour,
            (b'm', true) => Unit::Minute,
            (b's', true) => Unit::Second,
            _ => return Err(interval_syntax(s)),
        };
        acc.add(unit, int, frac);
        any = true;
        i += 1;
    }
    if !any {
        return Err(interval_syntax(s));
    }
    acc.finish(s, false)
}

// ---------------------------------------------------------------------------------------------
// Arithmetic

fn ts_overflow() -> Error {
    err!(DATETIME_FIELD_OVERFLOW, "timestamp out of range")
}

fn date_overflow() -> Error {
    err!(DATETIME_FIELD_OVERFLOW, "date out of range")
}

/// A date plus a number of days.
pub(crate) fn date_add_days(d: i32, n: i64) -> Result<i32> {
    if !date_is_finite(d) {
        return Ok(d);
    }
    let r = (d as i64).checked_add(n).ok_or_else(date_overflow)?;
    if !date_in_range(r) {
        return Err(date_overflow());
    }
    Ok(r as i32)
}

/// A timestamp plus an interval: months first (clamping the day to the month's end), then
/// days, then the time.
pub(crate) fn ts_add_interval(t: i64, iv: &Interval) -> Result<i64> {
    if !ts_is_finite(t) {
        return Ok(t);
    }
    let mut t = t;
    if iv.months != 0 {
        let mut tm = Tm::from_timestamp(t);
        let total = tm.year * 12 + (tm.month as i64 - 1) + iv.months as i64;
        tm.year = total.div_euclid(12);
        tm.month = (total.rem_euclid(12) + 1) as u32;
        tm.day = tm.day.min(days_in_month(tm.year, tm.month));
        t = tm.to_timestamp().ok_or_else(ts_overflow)?;
    }
    if iv.days != 0 {
        t = t
            .checked_add(
                (iv.days as i64)
                    .checked_mul(USECS_PER_DAY)
                    .ok_or_else(ts_overflow)?,
            )
            .ok_or_else(ts_overflow)?;
        if !ts_in_range(t) {
            return Err(ts_overflow());
        }
    }
    t = t.checked_add(iv.micros).ok_or_else(ts_overflow)?;
    if !ts_in_range(t) {
        return Err(ts_overflow());
    }
    Ok(t)
}

pub(crate) fn interval_neg(iv: &Interval) -> Result<Interval> {
    Ok(Interval {
        months: iv.months.checked_neg().ok_or_else(interval_overflow)?,
        days: iv.days.checked_neg().ok_or_else(interval_overflow)?,
        micros: iv.micros.checked_neg().ok_or_else(interval_overflow)?,
    })
}

fn interval_add(a: &Interval, b: &Interval) -> Result<Interval> {
    Ok(Interval {
        months: a
            .months
            .checked_add(b.months)
            .ok_or_else(interval_overflow)?,
        days: a.days.checked_add(b.days).ok_or_else(interval_overflow)?,
        micros: a
            .micros
            .checked_add(b.micros)
            .ok_or_else(interval_overflow)?,
    })
}

/// `a - b` of two timestamps: days and time, with the same sign.
pub(crate) fn ts_diff(a: i64, b: i64) -> Result<Interval> {
    if !ts_is_finite(a) || !ts_is_finite(b) {
        bail!(
            DATETIME_FIELD_OVERFLOW,
            "cannot subtract infinite timestamps"
        );
    }
    let diff = a.checked_sub(b).ok_or_else(interval_overflow)?;
    Ok(Interval {
        months: 0,
        days: i32::try_from(diff / USECS_PER_DAY).map_err(|_| interval_overflow())?,
        micros: diff % USECS_PER_DAY,
    })
}

/// Rounds seconds to microsecond precision.
fn ts_round(x: f64) -> f64 {
    (x * 1e6).round_ties_even() / 1e6
}

fn f64_to_i32(x: f64) -> Result<i32> {
    if x.is_nan() || x < i32::MIN as f64 || x > i32::MAX as f64 {
        return Err(interval_overflow());
    }
    Ok(x as i32)
}

/// Interval times a factor, spilling fractional months into days and fractional days into
/// time (30-day months), as PostgreSQL's interval_mul does.
fn interval_mul(iv: &Interval, factor: f64) -> Result<Interval> {
    if factor.is_nan() {
        return Err(interval_overflow());
    }
    let month_f = iv.months as f64 * factor;
    let months = f64_to_i32(month_f.trunc())?;
    let day_f = iv.days as f64 * factor;
    let mut days = f64_to_i32(day_f.trunc())?;
    let month_remainder_days = ts_round((month_f - months as f64) * 30.0);
    let mut sec_remainder =
        (day_f - days as f64 + month_remainder_days - month_remainder_days.trunc()) * 86_400.0;
    sec_remainder = ts_round(sec_remainder);
    if sec_remainder.abs() >= 86_400.0 {
        let extra = (sec_remainder / 86_400.0).trunc();
        days = days
            .checked_add(extra as i32)
            .ok_or_else(interval_overflow)?;
        sec_remainder -= extra * 86_400.0;
    }
    days = days
        .checked_add(month_remainder_days.trunc() as i32)
        .ok_or_else(interval_overflow)?;
    let micros_f = (iv.micros as f64 * factor + sec_remainder * 1e6).round_ties_even();
    if micros_f.is_nan() || micros_f < i64::MIN as f64 || micros_f >= i64::MAX as f64 {
        return Err(interval_overflow());
    }
    Ok(Interval {
        months,
        days,
        micros: micros_f as i64,
    })
}

fn interval_div(iv: &Interval, factor: f64) -> Result<Interval> {
    if factor == 0.0 {
        bail!(DIVISION_BY_ZERO, "division by zero");
    }
    if factor.is_nan() {
        return Err(interval_overflow());
    }
    let month_f = iv.months as f64 / factor;
    let months = f64_to_i32(month_f.trunc())?;
    let day_f = iv.days as f64 / factor;
    let mut days = f64_to_i32(day_f.trunc())?;
    let month_remainder_days = ts_round((month_f - months as f64) * 30.0);
    let mut sec_remainder =
        (day_f - days as f64 + month_remainder_days - month_remainder_days.trunc()) * 86_400.0;
    sec_remainder = ts_round(sec_remainder);
    if sec_remainder.abs() >= 86_400.0 {
        let extra = (sec_remainder / 86_400.0).trunc();
        days = days
            .checked_add(extra as i32)
            .ok_or_else(interval_overflow)?;
        sec_remainder -= extra * 86_400.0;
    }
    days = days
        .checked_add(month_remainder_days.trunc() as i32)
        .ok_or_else(interval_overflow)?;
    let micros_f = (iv.micros as f64 / factor + sec_remainder * 1e6).round_ties_even();
    if micros_f.is_nan() || micros_f < i64::MIN as f64 || micros_f >= i64::MAX as f64 {
        return Err(interval_overflow());
    }
    Ok(Interval {
        months,
        days,
        micros: micros_f as i64,
    })
}

fn no_operator(op: ArithOp, a: &Value, b: &Value) -> Error {
    err!(
        UNDEFINED_FUNCTION,
        "operator does not exist: {} {} {}",
        a.data_type(),
        op.symbol(),
        b.data_type()
    )
}

/// Date, timestamp and interval arithmetic; `ty` is the result type from `value::arith_type`.
pub fn arith(op: ArithOp, a: &Value, b: &Value, ty: &DataType) -> Result<Value> {
    use ArithOp::*;
    use Value as V;
    if a.is_null() || b.is_null() {
        return Ok(Value::Null);
    }
    let stamp = |t: i64| match ty {
        DataType::TimestampTz => V::TimestampTz(t),
        _ => V::Timestamp(t),
    };
    Ok(match (op, a, b) {
        (Add, V::Date(d), n) | (Add, n, V::Date(d)) if n.as_i64().is_some() => {
            V::Date(date_add_days(*d, n.as_i64().unwrap_or(0))?)
        }
        (Sub, V::Date(d), n) if n.as_i64().is_some() => {
            let n = n
                .as_i64()
                .unwrap_or(0)
                .checked_neg()
                .ok_or_else(date_overflow)?;
            V::Date(date_add_days(*d, n)?)
        }
        (Sub, V::Date(x), V::Date(y)) => {
            if !date_is_finite(*x) || !date_is_finite(*y) {
                bail!(DATETIME_FIELD_OVERFLOW, "cannot subtract infinite dates");
            }
            V::Int4(
                x.checked_sub(*y)
                    .ok_or_else(|| err!(NUMERIC_VALUE_OUT_OF_RANGE, "integer out of range"))?,
            )
        }
        (Add, V::Date(d), V::Interval(iv)) | (Add, V::Interval(iv), V::Date(d)) => {
            stamp(ts_add_interval(date_to_timestamp(*d)?, iv)?)
        }
        (Sub, V::Date(d), V::Interval(iv)) => {
            stamp(ts_add_interval(date_to_timestamp(*d)?, &interval_neg(iv)?)?)
        }
        (Add, V::Timestamp(t) | V::TimestampTz(t), V::Interval(iv))
        | (Add, V::Interval(iv), V::Timestamp(t) | V::TimestampTz(t)) => {
            stamp(ts_add_interval(*t, iv)?)
        }
        (Sub, V::Timestamp(t) | V::TimestampTz(t), V::Interval(iv)) => {
            stamp(ts_add_interval(*t, &interval_neg(iv)?)?)
        }
        (Sub, V::Timestamp(x), V::Timestamp(y)) | (Sub, V::TimestampTz(x), V::TimestampTz(y)) => {
            V::Interval(ts_diff(*x, *y)?)
        }
        (Sub, V::Timestamp(x) | V::TimestampTz(x), V::Date(d)) => {
            V::Interval(ts_diff(*x, date_to_timestamp(*d)?)?)
        }
        (Sub, V::Date(d), V::Timestamp(y) | V::TimestampTz(y)) => {
            V::Interval(ts_diff(date_to_timestamp(*d)?, *y)?)
        }
        (Add, V::Interval(x), V::Interval(y)) => V::Interval(interval_add(x, y)?),
        (Sub, V::Interval(x), V::Interval(y)) => V::Interval(interval_add(x, &interval_neg(y)?)?),
        (Mul, V::Interval(iv), n) | (Mul, n, V::Interval(iv)) if n.as_f64().is_some() => {
            V::Interval(interval_mul(iv, n.as_f64().unwrap_or(f64::NAN))?)
        }
        (Div, V::Interval(iv), n) if n.as_f64().is_some() => {
            V::Interval(interval_div(iv, n.as_f64().unwrap_or(f64::NAN))?)
        }
        _ => return Err(no_operator(op, a, b)),
    })
}

// ---------------------------------------------------------------------------------------------
// EXTRACT, date_part, date_trunc

fn unit_error(field: &str, ty: &DataType) -> Error {
    err!(
        INVALID_PARAMETER_VALUE,
        "unit \"{field}\" not recognized for type {ty}"
    )
}

fn unit_unsupported(field: &str, ty: &DataType) -> Error {
    err!(
        FEATURE_NOT_SUPPORTED,
        "unit \"{field}\" not supported for type {ty}"
    )
}

/// A number with a given scale: `v / 10^scale`.
fn scaled(v: i128, scale: u32) -> Result<Decimal> {
    let v = i64::try_from(v)
        .map_err(|_| err!(NUMERIC_VALUE_OUT_OF_RANGE, "value overflows numeric format"))?;
    Ok(Decimal::new(v, scale))
}

/// PostgreSQL's year numbering for output: astronomical year 0 is 1 BC, shown as -1.
fn ext_year(year: i64) -> i64 {
    if year > 0 {
        year
    } else {
        year - 1
    }
}

fn ext_decade(year: i64) -> i64 {
    if year >= 0 {
        year / 10
    } else {
        -((8 - (year - 1)) / 10)
    }
}

fn ext_century(year: i64) -> i64 {
    if year > 0 {
        (year + 99) / 100
    } else {
        -((99 - (year - 1)) / 100)
    }
}

fn ext_millennium(year: i64) -> i64 {
    if year > 0 {
        (year + 999) / 1000
    } else {
        -((999 - (year - 1)) / 1000)
    }
}

/// Fields shared by dates and timestamps (those that depend on the calendar day only).
fn day_field(unit: Unit, days: i64) -> Option<i64> {
    let (year, month, day) = civil_from_days(days);
    Some(match unit {
        Unit::Day => day as i64,
        Unit::Month => month as i64,
        Unit::Quarter => (month as i64 - 1) / 3 + 1,
        Unit::Week => iso_week(days).1 as i64,
        Unit::Year => ext_year(year),
        Unit::Decade => ext_decade(year),
        Unit::Century => ext_century(year),
        Unit::Millennium => ext_millennium(year),
        Unit::IsoYear => {
            let y = iso_week(days).0;
            if y > 0 {
                y
            } else {
                y - 1
            }
        }
        Unit::Dow => weekday(days) as i64,
        Unit::IsoDow => match weekday(days) {
            0 => 7,
            d => d as i64,
        },
        Unit::Doy => days - days_from_civil(year, 1, 1) + 1,
        _ => return None,
    })
}

/// What an extract of ±infinity gives: ±Infinity for the unbounded fields, NULL for others.
fn infinite_part(unit: Unit, negative: bool) -> Value {
    match unit {
        Unit::Epoch
        | Unit::Julian
        | Unit::Year
        | Unit::Decade
        | Unit::Century
        | Unit::Millennium
        | Unit::IsoYear => Value::Float8(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }),
        _ => Value::Null,
    }
}

fn extract_timestamp(field: &str, unit: Unit, t: i64, ty: &DataType) -> Result<Value> {
    if !ts_is_finite(t) {
        return Ok(infinite_part(unit, t == TS_NEG_INF));
    }
    if matches!(
        unit,
        Unit::Timezone | Unit::TimezoneHour | Unit::TimezoneMinute
    ) {
        if *ty != DataType::TimestampTz {
            return Err(unit_unsupported(field, ty));
        }
        return Ok(Value::Numeric(Decimal::ZERO));
    }
    let days = t.div_euclid(USECS_PER_DAY);
    let time = t.rem_euclid(USECS_PER_DAY);
    let in_minute = (time % USECS_PER_MINUTE) as i128;
    let d = match unit {
        Unit::Microsecond => scaled(in_minute, 0)?,
        Unit::Millisecond => scaled(in_minute, 3)?,
        Unit::Second => scaled(in_minute, 6)?,
        Unit::Minute => Decimal::from(time / USECS_PER_MINUTE % 60),
        Unit::Hour => Decimal::from(time / USECS_PER_HOUR),
        Unit::Epoch => scaled(t as i128, 6)?,
        Unit::Julian => {
            let frac = numeric_div(Decimal::from(time), Decimal::from(USECS_PER_DAY))?;
            let mut j = Decimal::from(days + UNIX_EPOCH_JDN) + frac;
            j.rescale(frac.scale());
            j
        }
        u => Decimal::from(day_field(u, days).ok_or_else(|| unit_unsupported(field, ty))?),
    };
    Ok(Value::Numeric(d))
}

fn extract_date(field: &str, unit: Unit, d: i32) -> Result<Value> {
    let ty = DataType::Date;
    let supported = !matches!(
        unit,
        Unit::Microsecond
            | Unit::Millisecond
            | Unit::Second
            | Unit::Minute
            | Unit::Hour
            | Unit::Timezone
            | Unit::TimezoneHour
            | Unit::TimezoneMinute
    );
    if !supported {
        return Err(unit_unsupported(field, &ty));
    }
    if !date_is_finite(d) {
        return Ok(infinite_part(unit, d == DATE_NEG_INF));
    }
    let days = d as i64;
    let v = match unit {
        Unit::Epoch => days * 86_400,
        Unit::Julian => days + UNIX_EPOCH_JDN,
        u => day_field(u, days).ok_or_else(|| unit_unsupported(field, &ty))?,
    };
    Ok(Value::Numeric(Decimal::from(v)))
}

fn extract_interval(field: &str, unit: Unit, iv: &Interval) -> Result<Value> {
    let ty = DataType::Interval;
    let years = iv.months as i64 / 12;
    let in_minute = (iv.micros % USECS_PER_MINUTE) as i128;
    let d = match unit {
        Unit::Microsecond => scaled(in_minute, 0)?,
        Unit::Millisecond => scaled(in_minute, 3)?,
        Unit::Second => scaled(in_minute, 6)?,
        Unit::Minute => Decimal::from(iv.micros / USECS_PER_MINUTE % 60),
        Unit::Hour => Decimal::from(iv.micros / USECS_PER_HOUR),
        Unit::Day => Decimal::from(iv.days),
        Unit::Month => Decimal::from(iv.months % 12),
        Unit::Quarter => Decimal::from((iv.months % 12) / 3 + 1),
        Unit::Year => Decimal::from(years),
        Unit::Decade => Decimal::from(years / 10),
        Unit::Century => Decimal::from(years / 100),
        Unit::Millennium => Decimal::from(years / 1000),
        Unit::Epoch => {
            // 365.25 days a year and 30 a month, in quarter days to stay exact.
            let quarter_days = 1461 * (iv.months as i128 / 12)
                + 120 * (iv.months as i128 % 12)
                + 4 * iv.days as i128;
            let micros = quarter_days * (86_400 / 4) * 1_000_000 + iv.micros as i128;
            scaled(micros, 6)?
        }
        _ => return Err(unit_unsupported(field, &ty)),
    };
    Ok(Value::Numeric(d))
}

/// EXTRACT(field FROM v): a NUMERIC as PostgreSQL 15 gives it (`±Infinity` of an infinite
/// value comes back as a float, NUMERIC here having no infinity).
pub fn extract(field: &str, v: &Value) -> Result<Value> {
    let ty = v.data_type();
    if v.is_null() {
        return Ok(Value::Null);
    }
    let unit = unit_of(field).ok_or_else(|| unit_error(field, &ty))?;
    match v {
        Value::Date(d) => extract_date(field, unit, *d),
        Value::Timestamp(t) | Value::TimestampTz(t) => extract_timestamp(field, unit, *t, &ty),
        Value::Interval(iv) => extract_interval(field, unit, iv),
        _ => bail!(
            UNDEFINED_FUNCTION,
            "function extract(unknown, {ty}) does not exist"
        ),
    }
}

/// date_part(field, v): like EXTRACT but a double precision; a date is read as a timestamp.
pub fn date_part(field: &str, v: &Value) -> Result<Value> {
    let v = match v {
        Value::Null => return Ok(Value::Null),
        Value::Date(d) => Value::Timestamp(date_to_timestamp(*d)?),
        v => v.clone(),
    };
    let unit = unit_of(field);
    // These two PostgreSQL computes in floating point, with its rounding.
    match (&v, unit) {
        (Value::Interval(iv), Some(Unit::Epoch)) => {
            let years = (iv.months / 12) as f64;
            let months = (iv.months % 12) as f64;
            let secs = iv.micros as f64 / 1e6
                + 365.25 * 86_400.0 * years
                + 30.0 * 86_400.0 * months
                + 86_400.0 * iv.days as f64;
            return Ok(Value::Float8(secs));
        }
        (Value::Timestamp(t) | Value::TimestampTz(t), Some(Unit::Julian)) if ts_is_finite(*t) => {
            let days = t.div_euclid(USECS_PER_DAY) + UNIX_EPOCH_JDN;
            let time = t.rem_euclid(USECS_PER_DAY);
            let secs = (time / USECS_PER_SEC) as f64 + (time % USECS_PER_SEC) as f64 / 1e6;
            return Ok(Value::Float8(days as f64 + secs / 86_400.0));
        }
        _ => {}
    }
    Ok(match extract(field, &v)? {
        Value::Numeric(d) => Value::Float8(d.to_string().parse().unwrap_or(f64::NAN)),
        other => other,
    })
}

/// date_trunc(field, v) of a timestamp, timestamp with time zone or interval.
pub fn date_trunc(field: &str, v: &Value) -> Result<Value> {
    let ty = v.data_type();
    let unit = unit_of(field);
    match v {
        Value::Null => Ok(Value::Null),
        Value::Timestamp(t) | Value::TimestampTz(t) => {
            if !ts_is_finite(*t) {
                return Ok(v.clone());
            }
            let unit = unit.ok_or_else(|| unit_error(field, &ty))?;
            let r = trunc_timestamp(unit, *t).ok_or_else(|| unit_error(field, &ty))?;
            let r = r.to_timestamp().ok_or_else(ts_overflow)?;
            Ok(if ty == DataType::TimestampTz {
                Value::TimestampTz(r)
            } else {
                Value::Timestamp(r)
            })
        }
        Value::Date(d) => date_trunc(field, &Value::TimestampTz(date_to_timestamp(*d)?)),
        Value::Interval(iv) => {
            let unit = unit.ok_or_else(|| unit_error(field, &ty))?;
            Ok(Value::Interval(trunc_interval(field, unit, iv)?))
        }
        _ => bail!(
            UNDEFINED_FUNCTION,
            "function date_trunc(unknown, {ty}) does not exist"
        ),
    }
}

fn trunc_timestamp(unit: Unit, t: i64) -> Option<Tm> {
    let mut tm = Tm::from_timestamp(t);
    let y = tm.year;
    match unit {
        Unit::Week => {
            let days = tm.days();
            let monday = days - (days + 3).rem_euclid(7);
            let (year, month, day) = civil_from_days(monday);
            return Some(Tm {
                year,
                month,
                day,
                hour: 0,
                minute: 0,
                second: 0,
                micro: 0,
            });
        }
        Unit::Millennium => {
            tm.year = if y > 0 {
                ((y + 999) / 1000) * 1000 - 999
            } else {
                -((999 - (y - 1)) / 1000) * 1000 + 1
            };
        }
        Unit::Century => {
            tm.year = if y > 0 {
                ((y + 99) / 100) * 100 - 99
            } else {
                -((99 - (y - 1)) / 100) * 100 + 1
            };
        }
        Unit::Decade => {
            tm.year = if y > 0 {
                (y / 10) * 10
            } else {
                -((8 - (y - 1)) / 10) * 10
            };
        }
        _ => {}
    }
    let rank = match unit {
        Unit::Millennium | Unit::Century | Unit::Decade | Unit::Year => 7,
        Unit::Quarter => 6,
        Unit::Month => 5,
        Unit::Day => 4,
        Unit::Hour => 3,
        Unit::Minute => 2,
        Unit::Second => 1,
        Unit::Millisecond => 0,
        Unit::Microsecond => -1,
        _ => return None,
    };
    if rank >= 7 {
        tm.month = 1;
    }
    if rank >= 6 {
        tm.month = 3 * ((tm.month - 1) / 3) + 1;
    }
    if rank >= 5 {
        tm.day = 1;
    }
    if rank >= 4 {
        tm.hour = 0;
    }
    if rank >= 3 {
        tm.minute = 0;
    }
    if rank >= 2 {
        tm.second = 0;
    }
    if rank >= 1 {
        tm.micro = 0;
    }
    if rank == 0 {
        tm.micro = tm.micro / 1000 * 1000;
    }
    Some(tm)
}

fn trunc_interval(field: &str, unit: Unit, iv: &Interval) -> Result<Interval> {
    let ty = DataType::Interval;
    let mut years = iv.months / 12;
    let mut months = iv.months % 12;
    let mut days = iv.days;
    let mut micros = iv.micros;
    let rank = match unit {
        Unit::Millennium => {
            years = years / 1000 * 1000;
            7
        }
        Unit::Century => {
            years = years / 100 * 100;
            7
        }
        Unit::Decade => {
            years = years / 10 * 10;
            7
        }
        Unit::Year => 7,
        Unit::Quarter => 6,
        Unit::Month => 5,
        Unit::Day => 4,
        Unit::Hour => 3,
        Unit::Minute => 2,
        Unit::Second => 1,
        Unit::Millisecond => 0,
        Unit::Microsecond => -1,
        Unit::Week => {
            return Err(Error::new(
                crate::error::code::FEATURE_NOT_SUPPORTED,
                format!("unit \"{field}\" not supported for type interval"),
            ))
        }
        _ => return Err(unit_error(field, &ty)),
    };
    if rank >= 7 {
        months = 0;
    }
    if rank >= 6 {
        months = 3 * (months / 3);
    }
    if rank >= 5 {
        days = 0;
    }
    let keep = match rank {
        4.. => 0,
        3 => USECS_PER_HOUR,
        2 => USECS_PER_MINUTE,
        1 => USECS_PER_SEC,
        0 => 1000,
        _ => 1,
    };
    if keep == 0 {
        micros = 0;
    } else {
        micros = micros / keep * keep;
    }
    Ok(Interval {
        months: years * 12 + months,
        days,
        micros,
    })
}

// ---------------------------------------------------------------------------------------------
// Interval helpers for functions

/// justify_days: whole 30-day groups of days become months.
pub(crate) fn justify_days(iv: &Interval) -> Result<Interval> {
    let mut months = iv.months as i64 + iv.days as i64 / 30;
    let mut days = iv.days as i64 % 30;
    if months > 0 && days < 0 {
        days += 30;
        months -= 1;
    } else if months < 0 && days > 0 {
        days -= 30;
        months += 1;
    }
    Ok(Interval {
        months: i32::try_from(months).map_err(|_| interval_overflow())?,
        days: days as i32,
        micros: iv.micros,
    })
}

/// justify_hours: whole 24-hour groups of time become days.
pub(crate) fn justify_hours(iv: &Interval) -> Result<Interval> {
    let mut days = iv.days as i64 + iv.micros / USECS_PER_DAY;
    let mut micros = iv.micros % USECS_PER_DAY;
    if days > 0 && micros < 0 {
        micros += USECS_PER_DAY;
        days -= 1;
    } else if days < 0 && micros > 0 {
        micros -= USECS_PER_DAY;
        days += 1;
    }
    Ok(Interval {
        months: iv.months,
        days: i32::try_from(days).map_err(|_| interval_overflow())?,
        micros,
    })
}

/// justify_interval: both, with one sign throughout.
pub(crate) fn justify_interval(iv: &Interval) -> Result<Interval> {
    let mut months = iv.months as i64;
    let mut days = iv.days as i64 + iv.micros / USECS_PER_DAY;
    let mut micros = iv.micros % USECS_PER_DAY;
    months += days / 30;
    days %= 30;
    if months > 0 && (days < 0 || (days == 0 && micros < 0)) {
        days += 30;
        months -= 1;
    } else if months < 0 && (days > 0 || (days == 0 && micros > 0)) {
        days -= 30;
        months += 1;
    }
    if days > 0 && micros < 0 {
        micros += USECS_PER_DAY;
        days -= 1;
    } else if days < 0 && micros > 0 {
        micros -= USECS_PER_DAY;
        days += 1;
    }
    Ok(Interval {
        months: i32::try_from(months).map_err(|_| interval_overflow())?,
        days: i32::try_from(days).map_err(|_| interval_overflow())?,
        micros,
    })
}

/// age(a, b): the symbolic difference in years, months, days and time, as PostgreSQL's
/// timestamp_age computes it (borrowing from the month of the earlier or later timestamp).
pub(crate) fn age(a: i64, b: i64) -> Result<Interval> {
    if !ts_is_finite(a) || !ts_is_finite(b) {
        return Err(ts_overflow());
    }
    let t1 = Tm::from_timestamp(a);
    let t2 = Tm::from_timestamp(b);
    let mut usec = t1.micro as i64 - t2.micro as i64;
    let mut sec = t1.second as i64 - t2.second as i64;
    let mut min = t1.minute as i64 - t2.minute as i64;
    let mut hour = t1.hour as i64 - t2.hour as i64;
    let mut mday = t1.day as i64 - t2.day as i64;
    let mut mon = t1.month as i64 - t2.month as i64;
    let mut year = t1.year - t2.year;
    let flip = a < b;
    if flip {
        for f in [
            &mut usec, &mut sec, &mut min, &mut hour, &mut mday, &mut mon, &mut year,
        ] {
            *f = -*f;
        }
    }
    while usec < 0 {
        usec += USECS_PER_SEC;
        sec -= 1;
    }
    while sec < 0 {
        sec += 60;
        min -= 1;
    }
    while min < 0 {
        min += 60;
        hour -= 1;
    }
    while hour < 0 {
        hour += 24;
        mday -= 1;
    }
    while mday < 0 {
        let (y, m) = if flip {
            (t1.year, t1.month)
        } else {
            (t2.year, t2.month)
        };
        mday += days_in_month(y, m) as i64;
        mon -= 1;
    }
    while mon < 0 {
        mon += 12;
        year -= 1;
    }
    if flip {
        for f in [
            &mut usec, &mut sec, &mut min, &mut hour, &mut mday, &mut mon, &mut year,
        ] {
            *f = -*f;
        }
    }
    let months = year
        .checked_mul(12)
        .and_then(|m| m.checked_add(mon))
        .ok_or_else(interval_overflow)?;
    Ok(Interval {
        months: i32::try_from(months).map_err(|_| interval_overflow())?,
        days: mday as i32,
        micros: hour * USECS_PER_HOUR + min * USECS_PER_MINUTE + sec * USECS_PER_SEC + usec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> String {
        match parse_date(s) {
            Ok(v) => format_date(v),
            Err(e) => format!("{}: {}", e.code, e.message),
        }
    }
    fn ts(s: &str) -> String {
        match parse_timestamp(s) {
            Ok(v) => format_timestamp(v),
            Err(e) => format!("{}: {}", e.code, e.message),
        }
    }
    fn tstz(s: &str) -> String {
        match parse_timestamptz(s) {
            Ok(v) => format_timestamptz(v),
            Err(e) => format!("{}: {}", e.code, e.message),
        }
    }
    fn iv(s: &str) -> String {
        match parse_interval(s) {
            Ok(v) => format_interval(&v),
            Err(e) => format!("{}: {}", e.code, e.message),
        }
    }

    #[test]
    fn calendar_round_trips() {
        for days in (-2_500_000i64..2_500_000).step_by(997) {
            let (y, m, dd) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, dd), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(weekday(days_from_civil(2024, 3, 10)), 0);
    }

    #[test]
    fn dates_read_and_print_like_postgres() {
        assert_eq!(d("2024-03-05"), "2024-03-05");
        assert_eq!(d("2024-03-05 12:00"), "2024-03-05");
        assert_eq!(d(" 2024-3-5 "), "2024-03-05");
        assert_eq!(d("20240305"), "2024-03-05");
        assert_eq!(d("03/05/2024"), "2024-03-05");
        assert_eq!(d("March 5, 2024"), "2024-03-05");
        assert_eq!(d("5 Mar 2024"), "2024-03-05");
        assert_eq!(d("2024-Mar-05"), "2024-03-05");
        assert_eq!(d("0044-03-15 BC"), "0044-03-15 BC");
        assert_eq!(d("epoch"), "1970-01-01");
        assert_eq!(d("infinity"), "infinity");
        assert_eq!(d("-infinity"), "-infinity");
        assert_eq!(d("4714-11-24 BC"), "4714-11-24 BC");
        assert_eq!(
            d("4714-11-23 BC"),
            "22008: date out of range: \"4714-11-23 BC\""
        );
        assert_eq!(d("5874897-12-31"), "5874897-12-31");
        assert_eq!(
            d("5874898-01-01"),
            "22008: date out of range: \"5874898-01-01\""
        );
        assert_eq!(
            d("2024-02-30"),
            "22008: date/time field value out of range: \"2024-02-30\""
        );
        assert_eq!(
            d("2024-13-01"),
            "22008: date/time field value out of range: \"2024-13-01\""
        );
        assert_eq!(
            d("garbage"),
            "22007: invalid input syntax for type date: \"garbage\""
        );
        assert_eq!(d(""), "22007: invalid input syntax for type date: \"\"");
        assert_eq!(
            d("2024-03"),
            "22007: invalid input syntax for type date: \"2024-03\""
        );
        assert_eq!(d("2024-02-29"), "2024-02-29");
        assert_eq!(
            d("1900-02-29"),
            "22008: date/time field value out of range: \"1900-02-29\""
        );
    }

    #[test]
    fn timestamps_read_and_print_like_postgres() {
        assert_eq!(ts("2024-03-05 13:04:05"), "2024-03-05 13:04:05");
        assert_eq!(ts("2024-03-05T12:00:00Z"), "2024-03-05 12:00:00");
        assert_eq!(ts("2024-03-05 12:00:00+02"), "2024-03-05 12:00:00");
        assert_eq!(
            ts("2024-03-05 12:00:00.1234567"),
            "2024-03-05 12:00:00.123457"
        );
        assert_eq!(ts("2024-03-05 12:00:00.5"), "2024-03-05 12:00:00.5");
        assert_eq!(ts("2024-03-05 24:00:00"), "2024-03-06 00:00:00");
        assert_eq!(ts("2024-03-05 1:2:3"), "2024-03-05 01:02:03");
        assert_eq!(ts("2024-03-05"), "2024-03-05 00:00:00");
        assert_eq!(ts("2024-03-05 01:04 pm"), "2024-03-05 13:04:00");
        assert_eq!(ts("2024-03-05 12:04 am"), "2024-03-05 00:04:00");
        assert_eq!(ts("0044-03-15 12:00 BC"), "0044-03-15 12:00:00 BC");
        assert_eq!(ts("epoch"), "1970-01-01 00:00:00");
        assert_eq!(ts("infinity"), "infinity");
        assert_eq!(
            ts("2024-03-05 25:00:00"),
            "22008: date/time field value out of range: \"2024-03-05 25:00:00\""
        );
        assert_eq!(
            ts("2024-03-05 12:60:00"),
            "22008: date/time field value out of range: \"2024-03-05 12:60:00\""
        );
        assert_eq!(
            ts("294277-01-01"),
            "22008: timestamp out of range: \"294277-01-01\""
        );
        assert_eq!(
            ts("294247-01-10 04:00:54.775806"),
            "294247-01-10 04:00:54.775806"
        );
        assert_eq!(
            ts("294247-01-10 04:00:54.775807"),
            "22008: timestamp out of range: \"294247-01-10 04:00:54.775807\""
        );
        assert_eq!(ts("4714-11-24 00:00:00 BC"), "4714-11-24 00:00:00 BC");
        assert_eq!(
            ts("4714-11-23 23:59:59 BC"),
            "22008: timestamp out of range: \"4714-11-23 23:59:59 BC\""
        );
        assert_eq!(
            ts("x"),
            "22007: invalid input syntax for type timestamp: \"x\""
        );
        assert_eq!(
            tstz("x"),
            "22007: invalid input syntax for type timestamp with time zone: \"x\""
        );
        assert_eq!(tstz("2024-03-05 12:00:00+02"), "2024-03-05 10:00:00+00");
        assert_eq!(tstz("2024-03-05 12:00:00 +05:30"), "2024-03-05 06:30:00+00");
        assert_eq!(tstz("2024-03-05 12:00:00-07"), "2024-03-05 19:00:00+00");
        assert_eq!(tstz("2024-03-05 12:00:00 UTC"), "2024-03-05 12:00:00+00");
        assert_eq!(tstz("2024-03-05T12:00:00Z"), "2024-03-05 12:00:00+00");
        assert_eq!(tstz("2024-03-05 12:00:00-0330"), "2024-03-05 15:30:00+00");
        assert_eq!(tstz("0044-03-15 12:00 BC"), "0044-03-15 12:00:00+00 BC");
        assert_eq!(tstz("2024-03-05 12:00 EST"), "2024-03-05 17:00:00+00");
        assert_eq!(
            tstz("2024-03-05 12:00:00+16"),
            "22009: time zone displacement out of range: \"2024-03-05 12:00:00+16\""
        );
    }

    #[test]
    fn intervals_read_and_print_like_postgres() {
        let cases = [
            ("1 day", "1 day"),
            ("2 hours 30 minutes", "02:30:00"),
            ("1 year 2 mons", "1 year 2 mons"),
            ("-1 day", "-1 days"),
            ("01:02:03", "01:02:03"),
            ("1 day 02:00:00", "1 day 02:00:00"),
            ("3 days ago", "-3 days"),
            ("1 day 2 hours ago", "-1 days -02:00:00"),
            ("P1Y2M3DT4H5M6S", "1 year 2 mons 3 days 04:05:06"),
            ("PT1.5S", "00:00:01.5"),
            ("P1W", "7 days"),
            ("P-1D", "-1 days"),
            ("P1.5Y", "1 year 6 mons"),
            ("0.1 years", "1 mon"),
            ("1.01 years", "1 year"),
            ("1.5 months", "1 mon 15 days"),
            ("1.5 days", "1 day 12:00:00"),
            ("1.5 weeks", "10 days 12:00:00"),
            ("0.5 decade", "5 years"),
            ("1 day 2", "1 day 00:00:02"),
            ("5", "00:00:05"),
            ("1 2:03:04", "1 day 02:03:04"),
            ("1-2", "1 year 2 mons"),
            ("-1-2", "-1 years -2 mons"),
            ("1-2 3 4:05:06", "1 year 2 mons 3 days 04:05:06"),
            ("01:02", "01:02:00"),
            ("1:2:3.5", "01:02:03.5"),
            ("-01:02:03", "-01:02:03"),
            ("1 day -02:00:00", "1 day -02:00:00"),
            ("-1 days +02:00:00", "-1 days +02:00:00"),
            ("@ 1 hour", "01:00:00"),
            ("1day", "1 day"),
            ("1 d 2 h 3 m 4 s", "1 day 02:03:04"),
            ("-14 mons", "-1 years -2 mons"),
            ("1 year -2 mons", "10 mons"),
            (
                "-1 year 2 mons -3 days 04:00:00",
                "-10 mons -3 days +04:00:00",
            ),
            ("100 hours", "100:00:00"),
            ("1.5 hours", "01:30:00"),
            ("1 ms", "00:00:00.001"),
            ("1 us", "00:00:00.000001"),
            ("1.234567891 s", "00:00:01.234568"),
            ("0.0000005 s", "00:00:00"),
            ("2147483647 days", "2147483647 days"),
            ("178000000 years", "178000000 years"),
            ("1.5 min", "00:01:30"),
            ("-1.5 days", "-1 days -12:00:00"),
            ("1 year 1.5 months", "1 year 1 mon 15 days"),
            ("2 centuries", "200 years"),
            ("1 millennium", "1000 years"),
            ("1 second 1 minute", "00:01:01"),
            ("1 hour 2", "01:00:02"),
            ("+1 day", "1 day"),
            ("1 +2:00", "1 day 02:00:00"),
            ("12:34:56.789", "12:34:56.789"),
            ("-0.5 s", "-00:00:00.5"),
            ("- 1 day", "-1 days"),
            ("0", "00:00:00"),
            ("1 WEEK", "7 days"),
        ];
        for (input, want) in cases {
            assert_eq!(iv(input), want, "{input}");
        }
        for bad in [
            "x",
            "1 foo",
            "1 hour 1 hour",
            "infinity",
            "",
            "1 mon 1 mons",
            "ago",
            "P",
            "PT",
            "1 2",
            "1 ago",
            "p1d",
        ] {
            assert_eq!(
                iv(bad),
                format!("22007: invalid input syntax for type interval: \"{bad}\""),
                "{bad}"
            );
        }
        assert_eq!(
            iv("2147483648 days"),
            "22015: interval field value out of range: \"2147483648 days\""
        );
        assert_eq!(
            iv("99999999999999999999999999 hours"),
            "22015: interval field value out of range: \"99999999999999999999999999 hours\""
        );
    }

    fn run(op: ArithOp, a: Value, b: Value) -> String {
        let ty = crate::value::arith_type(op, &a.data_type(), &b.data_type())
            .unwrap_or(DataType::Unknown);
        match arith(op, &a, &b, &ty) {
            Ok(v) => v.to_text().unwrap_or_default(),
            Err(e) => format!("{}: {}", e.code, e.message),
        }
    }
    fn ivl(s: &str) -> Value {
        Value::Interval(parse_interval(s).unwrap())
    }
    fn tsv(s: &str) -> Value {
        Value::Timestamp(parse_timestamp(s).unwrap())
    }
    fn dv(s: &str) -> Value {
        Value::Date(parse_date(s).unwrap())
    }

    #[test]
    fn arithmetic_matches_postgres() {
        use ArithOp::*;
        assert_eq!(run(Add, dv("2024-02-28"), Value::Int4(2)), "2024-03-01");
        assert_eq!(run(Sub, dv("2024-03-01"), Value::Int4(1)), "2024-02-29");
        assert_eq!(run(Sub, dv("2024-03-01"), dv("2023-03-01")), "366");
        assert_eq!(
            run(Add, dv("2024-01-31"), ivl("1 month")),
            "2024-02-29 00:00:00"
        );
        assert_eq!(
            run(Add, tsv("2023-01-31 10:00"), ivl("1 month")),
            "2023-02-28 10:00:00"
        );
        assert_eq!(
            run(Sub, tsv("2024-03-31"), ivl("1 mon 1 day")),
            "2024-02-28 00:00:00"
        );
        assert_eq!(
            run(Add, tsv("2024-03-05 23:00"), ivl("2 hours")),
            "2024-03-06 01:00:00"
        );
        assert_eq!(
            run(Sub, tsv("2024-03-05 12:00"), tsv("2024-03-01 13:30")),
            "3 days 22:30:00"
        );
        assert_eq!(
            run(Sub, tsv("2024-03-01"), tsv("2024-03-05 12:00")),
            "-4 days -12:00:00"
        );
        assert_eq!(run(Add, ivl("1 day"), ivl("-2 hours")), "1 day -02:00:00");
        assert_eq!(run(Sub, ivl("1 mon"), ivl("1 day")), "1 mon -1 days");
        assert_eq!(run(Mul, ivl("1 day"), Value::Float8(1.5)), "1 day 12:00:00");
        assert_eq!(
            run(Mul, ivl("1 month"), Value::Float8(1.01)),
            "1 mon 07:12:00"
        );
        assert_eq!(run(Mul, ivl("-1 month"), Value::Float8(0.3)), "-9 days");
        assert_eq!(run(Mul, Value::Int4(3), ivl("1 hour")), "03:00:00");
        assert_eq!(run(Div, ivl("1 day"), Value::Int4(3)), "08:00:00");
        assert_eq!(run(Div, ivl("2 years"), Value::Int4(5)), "4 mons 24 days");
        assert_eq!(
            run(Div, ivl("1 mon 3 days"), Value::Int4(7)),
            "4 days 17:08:34.261029"
        );
        assert_eq!(
            run(Div, ivl("1 hour"), Value::Int4(0)),
            "22012: division by zero"
        );
        assert_eq!(
            run(Add, dv("5874897-12-31"), Value::Int4(1)),
            "22008: date out of range"
        );
        assert_eq!(
            run(Add, tsv("294247-01-10"), ivl("1 day")),
            "22008: timestamp out of range"
        );
        assert_eq!(run(Add, tsv("infinity"), ivl("1 day")), "infinity");
        assert_eq!(
            run(Sub, tsv("infinity"), tsv("2024-01-01")),
            "22008: cannot subtract infinite timestamps"
        );
        assert_eq!(
            run(Mul, ivl("2000000000 days"), Value::Int4(2)),
            "22008: interval out of range"
        );
        assert_eq!(
            run(Add, ivl("2147483647 days"), ivl("1 day")),
            "22008: interval out of range"
        );
        assert_eq!(
            arith(Mul, &dv("2024-01-01"), &Value::Int4(2), &DataType::Date)
                .unwrap_err()
                .message,
            "operator does not exist: date * integer"
        );
        assert_eq!(
            run(
                Add,
                Value::TimestampTz(parse_timestamptz("2024-01-31 12:00+00").unwrap()),
                ivl("1 mon")
            ),
            "2024-02-29 12:00:00+00"
        );
    }

    fn ex(field: &str, v: Value) -> String {
        match extract(field, &v) {
            Ok(v) => v.to_text().unwrap_or_default(),
            Err(e) => format!("{}: {}", e.code, e.message),
        }
    }

    #[test]
    fn extract_matches_postgres() {
        let t = tsv("2024-03-05 13:04:05.25");
        assert_eq!(ex("second", t.clone()), "5.250000");
        assert_eq!(ex("millisecond", t.clone()), "5250.000");
        assert_eq!(ex("microseconds", t.clone()), "5250000");
        assert_eq!(ex("epoch", t.clone()), "1709643845.250000");
        assert_eq!(ex("year", t.clone()), "2024");
        assert_eq!(ex("YEARS", t.clone()), "2024");
        assert_eq!(ex("dow", tsv("2024-03-10")), "0");
        assert_eq!(ex("isodow", tsv("2024-03-10")), "7");
        assert_eq!(ex("doy", tsv("2024-03-10")), "70");
        assert_eq!(ex("week", tsv("2024-01-01")), "1");
        assert_eq!(ex("week", tsv("2021-01-01")), "53");
        assert_eq!(ex("isoyear", tsv("2021-01-01")), "2020");
        assert_eq!(ex("quarter", tsv("2024-05-01")), "2");
        assert_eq!(
            ex("julian", tsv("2024-03-05 12:00")),
            "2460375.50000000000000000000"
        );
        assert_eq!(ex("decade", tsv("2024-03-05")), "202");
        assert_eq!(ex("century", tsv("2000-03-05")), "20");
        assert_eq!(ex("century", tsv("2001-03-05")), "21");
        assert_eq!(ex("millennium", tsv("2001-01-01")), "3");
        let bc = tsv("0044-03-15 BC");
        assert_eq!(ex("year", bc.clone()), "-44");
        assert_eq!(ex("century", bc.clone()), "-1");
        assert_eq!(ex("decade", bc.clone()), "-5");
        assert_eq!(ex("millennium", bc), "-1");
        let date = dv("2024-03-05");
        assert_eq!(ex("epoch", date.clone()), "1709596800");
        assert_eq!(ex("julian", date.clone()), "2460375");
        assert_eq!(ex("dow", date.clone()), "2");
        assert_eq!(
            ex("hour", date.clone()),
            "0A000: unit \"hour\" not supported for type date"
        );
        assert_eq!(
            ex("foo", date),
            "22023: unit \"foo\" not recognized for type date"
        );
        assert_eq!(
            ex("foo", tsv("2024-03-05")),
            "22023: unit \"foo\" not recognized for type timestamp without time zone"
        );
        assert_eq!(
            ex("timezone", tsv("2024-03-05")),
            "0A000: unit \"timezone\" not supported for type timestamp without time zone"
        );
        let tz = Value::TimestampTz(parse_timestamptz("2024-03-05 00:00:00+02").unwrap());
        assert_eq!(ex("epoch", tz.clone()), "1709589600.000000");
        assert_eq!(ex("timezone", tz), "0");
        assert_eq!(
            ex("epoch", ivl("1 year 2 mons 3 days 04:05:06.5")),
            "37015506.500000"
        );
        assert_eq!(ex("year", ivl("1 year 14 mons")), "2");
        assert_eq!(ex("month", ivl("1 year 14 mons")), "2");
        assert_eq!(ex("day", ivl("40 days")), "40");
        assert_eq!(ex("hour", ivl("100 hours")), "100");
        assert_eq!(ex("second", ivl("1.5 s")), "1.500000");
        assert_eq!(ex("millisecond", ivl("1.5 s")), "1500.000");
        assert_eq!(ex("quarter", ivl("8 mons")), "3");
        assert_eq!(ex("decade", ivl("25 years")), "2");
        assert_eq!(ex("century", ivl("250 years")), "2");
        assert_eq!(ex("millennium", ivl("2500 years")), "2");
        assert_eq!(
            ex("dow", ivl("1 day")),
            "0A000: unit \"dow\" not supported for type interval"
        );
        assert_eq!(ex("epoch", ivl("-1 year")), "-31557600.000000");
        assert_eq!(ex("minute", ivl("-65 minutes")), "-5");
        assert_eq!(ex("month", ivl("-14 mons")), "-2");
        assert_eq!(ex("year", tsv("infinity")), "Infinity");
        assert_eq!(ex("epoch", tsv("-infinity")), "-Infinity");
        assert_eq!(extract("month", &tsv("infinity")).unwrap().to_text(), None);
        assert_eq!(
            ex("epoch", tsv("1900-01-01 00:00:00.5")),
            "-2208988799.500000"
        );
        assert_eq!(ex("msec", tsv("2024-01-01 00:00:01")), "1000.000");
        let dp = |f: &str, v: Value| date_part(f, &v).unwrap().to_text().unwrap();
        assert_eq!(dp("second", tsv("2024-03-05 13:04:05.25")), "5.25");
        assert_eq!(dp("epoch", tsv("2024-03-05 13:04:05.25")), "1709643845.25");
        assert_eq!(dp("hour", dv("2024-03-05")), "0");
        assert_eq!(dp("epoch", ivl("1 day")), "86400");
        assert_eq!(
            dp("epoch", ivl("1 year 2 mons 3 days 04:05:06.789")),
            "37015506.789000005"
        );
        assert_eq!(dp("julian", tsv("0044-03-15 12:00 BC")), "1705428.5");
        assert_eq!(
            ex("julian", tsv("2024-01-01")),
            "2460311.0000000000000000000000"
        );
        assert_eq!(
            extract("timezone", &tsv("infinity")).unwrap().to_text(),
            None
        );
    }

    fn tr(field: &str, v: Value) -> String {
        match date_trunc(field, &v) {
            Ok(v) => v.to_text().unwrap_or_default(),
            Err(e) => format!("{}: {}", e.code, e.message),
        }
    }

    #[test]
    fn date_trunc_matches_postgres() {
        assert_eq!(
            tr("week", tsv("2024-03-10 13:04:05")),
            "2024-03-04 00:00:00"
        );
        assert_eq!(tr("millennium", tsv("2024-03-10")), "2001-01-01 00:00:00");
        assert_eq!(
            tr("century", tsv("0044-03-15 BC")),
            "0100-01-01 00:00:00 BC"
        );
        assert_eq!(tr("decade", tsv("0044-03-15 BC")), "0051-01-01 00:00:00 BC");
        assert_eq!(tr("quarter", tsv("2024-05-10")), "2024-04-01 00:00:00");
        assert_eq!(
            tr("milliseconds", tsv("2024-05-10 01:02:03.456789")),
            "2024-05-10 01:02:03.456"
        );
        assert_eq!(tr("month", dv("2024-03-05")), "2024-03-01 00:00:00+00");
        assert_eq!(
            tr("week", ivl("1 day")),
            "0A000: unit \"week\" not supported for type interval"
        );
        assert_eq!(
            tr("foo", tsv("2024-03-10")),
            "22023: unit \"foo\" not recognized for type timestamp without time zone"
        );
        assert_eq!(
            tr("dow", tsv("2024-03-10")),
            "22023: unit \"dow\" not recognized for type timestamp without time zone"
        );
        assert_eq!(
            tr("hour", ivl("1 year 2 mons 3 days 04:05:06.7")),
            "1 year 2 mons 3 days 04:00:00"
        );
        assert_eq!(tr("century", ivl("1234 years")), "1200 years");
        assert_eq!(tr("quarter", ivl("1 year 5 mons")), "1 year 3 mons");
        assert_eq!(tr("day", tsv("infinity")), "infinity");
    }
}
