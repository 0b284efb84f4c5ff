//! Run-time settings (GUCs, in PostgreSQL's words): the parameters a session knows, how their
//! values are written, and the `pg_settings` view.
//!
//! A session keeps its values in a map keyed by lower-case name (`Session::settings`); `SET`,
//! `SHOW`, `current_setting()`, `set_config()` and `pg_settings` all read and write that one
//! map, so they always agree. This module holds what does not change per session: each known
//! parameter's PostgreSQL spelling, unit, category, context, type, range and boot value,
//! copied from PostgreSQL 15 so that tools reading `pg_settings` see familiar rows.
//!
//! Rules, as in PostgreSQL:
//! 1. Names are case-insensitive; `SHOW` labels its column with the parameter's own spelling
//!    (`DateStyle`, `TimeZone`).
//! 2. A name that is neither known nor set before fails with 42704 `unrecognized configuration
//!    parameter "x"`; a name with a dot (`myapp.user_id`) is a custom parameter that exists
//!    once set.
//! 3. Values are normalized when set: a duration in milliseconds is written with the largest
//!    unit that divides it (`1500` -> `1500ms`, `5000` -> `5s`), a boolean as `on`/`off`, an
//!    enum in lower case; a value that does not fit fails with 22023.
//!
//! Left out: `SET` of an unknown name without a dot is still accepted (drivers send
//! parameters Strata has no use for), and settings are not undone when a transaction rolls
//! back (only `set_config(..., true)` values end with their transaction).

use crate::error::Result;
use crate::{bail, err};

/// One parameter's description, as `pg_settings` shows it.
pub struct Setting {
    /// PostgreSQL's spelling.
    pub name: &'static str,
    pub unit: Option<&'static str>,
    pub category: &'static str,
    pub short_desc: &'static str,
    pub context: &'static str,
    /// bool, integer, string or enum.
    pub vartype: &'static str,
    pub min_val: Option<&'static str>,
    pub max_val: Option<&'static str>,
    /// The allowed values of an enum.
    pub enumvals: &'static [&'static str],
    pub boot_val: &'static str,
}

const FORMAT: &str = "Client Connection Defaults / Locale and Formatting";
const STATEMENT: &str = "Client Connection Defaults / Statement Behavior";
const PRESET: &str = "Preset Options";
const ISOLATION_LEVELS: &[&str] = &[
    "serializable",
    "repeatable read",
    "read committed",
    "read uncommitted",
];
const TIMEOUT_MAX: Option<&str> = Some("2147483647");

const fn setting(
    name: &'static str,
    category: &'static str,
    short_desc: &'static str,
    context: &'static str,
    vartype: &'static str,
    boot_val: &'static str,
) -> Setting {
    Setting {
        name,
        unit: None,
        category,
        short_desc,
        context,
        vartype,
        min_val: None,
        max_val: None,
        enumvals: &[],
        boot_val,
    }
}

const fn timeout(name: &'static str, short_desc: &'static str) -> Setting {
    Setting {
        unit: Some("ms"),
        min_val: Some("0"),
        max_val: TIMEOUT_MAX,
        ..setting(name, STATEMENT, short_desc, "user", "integer", "0")
    }
}

/// Every parameter the server knows, in name order.
pub const SETTINGS: &[Setting] = &[
    setting(
        "application_name",
        "Reporting and Logging / What to Log",
        "Sets the application name to be reported in statistics and logs.",
        "user",
        "string",
        "",
    ),
    Setting {
        min_val: Some("8192"),
        max_val: Some("8192"),
        ..setting(
            "block_size",
            PRESET,
            "Shows the size of a disk block.",
            "internal",
            "integer",
            "8192",
        )
    },
    Setting {
        enumvals: &["escape", "hex"],
        ..setting(
            "bytea_output",
            STATEMENT,
            "Sets the output format for bytea.",
            "user",
            "enum",
            "hex",
        )
    },
    setting(
        "client_encoding",
        FORMAT,
        "Sets the client's character set encoding.",
        "user",
        "string",
        "UTF8",
    ),
    Setting {
        enumvals: &[
            "debug5", "debug4", "debug3", "debug2", "debug1", "log", "notice", "warning", "error",
        ],
        ..setting(
            "client_min_messages",
            STATEMENT,
            "Sets the message levels that are sent to the client.",
            "user",
            "enum",
            "notice",
        )
    },
    setting(
        "DateStyle",
        FORMAT,
        "Sets the display format for date and time values.",
        "user",
        "string",
        "ISO, MDY",
    ),
    Setting {
        enumvals: ISOLATION_LEVELS,
        ..setting(
            "default_transaction_isolation",
            STATEMENT,
            "Sets the transaction isolation level of each new transaction.",
            "user",
            "enum",
            "read committed",
        )
    },
    setting(
        "default_transaction_read_only",
        STATEMENT,
        "Sets the default read-only status of new transactions.",
        "user",
        "bool",
        "off",
    ),
    Setting {
        min_val: Some("-15"),
        max_val: Some("3"),
        ..setting(
            "extra_float_digits",
            FORMAT,
            "Sets the number of digits displayed for floating-point values.",
            "user",
            "integer",
            "1",
        )
    },
    timeout(
        "idle_in_transaction_session_timeout",
        "Sets the maximum allowed idle time between queries, when in a transaction.",
    ),
    setting(
        "in_hot_standby",
        PRESET,
        "Shows whether hot standby is currently active.",
        "internal",
        "bool",
        "off",
    ),
    setting(
        "integer_datetimes",
        PRESET,
        "Shows whether datetimes are integer based.",
        "internal",
        "bool",
        "on",
    ),
    Setting {
        enumvals: &["postgres", "postgres_verbose", "sql_standard", "iso_8601"],
        ..setting(
            "IntervalStyle",
            FORMAT,
            "Sets the display format for interval values.",
            "user",
            "enum",
            "postgres",
        )
    },
    setting(
        "is_superuser",
        PRESET,
        "Shows whether the current user is a superuser.",
        "internal",
        "bool",
        "on",
    ),
    timeout(
        "lock_timeout",
        "Sets the maximum allowed duration of any wait for a lock.",
    ),
    Setting {
        min_val: Some("1"),
        max_val: Some("262143"),
        ..setting(
            "max_connections",
            "Connections and Authentication / Connection Settings",
            "Sets the maximum number of concurrent connections.",
            "postmaster",
            "integer",
            "100",
        )
    },
    Setting {
        min_val: Some("63"),
        max_val: Some("63"),
        ..setting(
            "max_identifier_length",
            PRESET,
            "Shows the maximum identifier length.",
            "internal",
            "integer",
            "63",
        )
    },
    setting(
        "search_path",
        STATEMENT,
        "Sets the schema search order for names that are not schema-qualified.",
        "user",
        "string",
        "\"$user\", public",
    ),
    setting(
        "server_encoding",
        PRESET,
        "Shows the server (database) character set encoding.",
        "internal",
        "string",
        "UTF8",
    ),
    setting(
        "server_version",
        PRESET,
        "Shows the server version.",
        "internal",
        "string",
        "15.0",
    ),
    Setting {
        min_val: Some("150000"),
        max_val: Some("150000"),
        ..setting(
            "server_version_num",
            PRESET,
            "Shows the server version as an integer.",
            "internal",
            "integer",
            "150000",
        )
    },
    setting(
        "session_authorization",
        "Ungrouped",
        "Sets the session user name.",
        "superuser",
        "string",
        "",
    ),
    setting(
        "standard_conforming_strings",
        "Version and Platform Compatibility / Previous PostgreSQL Versions",
        "Causes '...' strings to treat backslashes literally.",
        "user",
        "bool",
        "on",
    ),
    timeout(
        "statement_timeout",
        "Sets the maximum allowed duration of any statement.",
    ),
    Setting {
        enumvals: &["local", "remote_write", "remote_apply", "on", "off"],
        ..setting(
            "synchronous_commit",
            "Write-Ahead Log / Settings",
            "Sets the current transaction's synchronization level.",
            "user",
            "enum",
            "on",
        )
    },
    setting(
        "TimeZone",
        FORMAT,
        "Sets the time zone for displaying and interpreting time stamps.",
        "user",
        "string",
        "UTC",
    ),
    Setting {
        enumvals: ISOLATION_LEVELS,
        ..setting(
            "transaction_isolation",
            STATEMENT,
            "Sets the current transaction's isolation level.",
            "user",
            "enum",
            "read committed",
        )
    },
    setting(
        "transaction_read_only",
        STATEMENT,
        "Sets the current transaction's read-only status.",
        "user",
        "bool",
        "off",
    ),
    Setting {
        unit: Some("kB"),
        min_val: Some("64"),
        max_val: TIMEOUT_MAX,
        ..setting(
            "work_mem",
            "Resource Usage / Memory",
            "Sets the maximum memory to be used for query workspaces.",
            "user",
            "integer",
            "4096",
        )
    },
];

/// The known parameter called `name` (any case).
pub fn lookup(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// The label `SHOW name` gives its column: the parameter's own spelling when known.
pub fn display_name(name: &str) -> String {
    lookup(name).map_or_else(|| name.to_string(), |s| s.name.to_string())
}

/// A custom parameter (`prefix.name`), which exists once set.
pub fn is_custom(name: &str) -> bool {
    name.contains('.')
}

/// The error for a parameter that does not exist.
pub fn unrecognized(name: &str) -> crate::error::Error {
    err!(
        UNDEFINED_OBJECT,
        "unrecognized configuration parameter \"{name}\""
    )
}

/// `value` as the parameter `name` stores it (rule 3); unknown parameters keep it as given.
pub fn normalize(name: &str, value: &str) -> Result<String> {
    let Some(s) = lookup(name) else {
        return Ok(value.to_string());
    };
    let invalid = || {
        err!(
            INVALID_PARAMETER_VALUE,
            "invalid value for parameter \"{}\": \"{value}\"",
            s.name
        )
    };
    Ok(match s.vartype {
        "bool" => match value.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" | "1" | "t" | "y" => "on".to_string(),
            "off" | "false" | "no" | "0" | "f" | "n" => "off".to_string(),
            _ => return Err(invalid()),
        },
        "enum" => {
            let v = value.trim().to_ascii_lowercase();
            if !s.enumvals.contains(&v.as_str()) {
                return Err(invalid());
            }
            v
        }
        "integer" if s.unit == Some("ms") => {
            let ms = parse_ms(value).ok_or_else(invalid)?;
            if ms > 2_147_483_647 {
                bail!(
                    INVALID_PARAMETER_VALUE,
                    "{ms} ms is outside the valid range for parameter \"{}\" (0 .. 2147483647)",
                    s.name
                );
            }
            format_ms(ms)
        }
        "integer" if s.unit == Some("kB") => {
            let kb = parse_kb(value).ok_or_else(invalid)?;
            if !(64..=2_147_483_647).contains(&kb) {
                bail!(
                    INVALID_PARAMETER_VALUE,
                    "{kb} kB is outside the valid range for parameter \"{}\" (64 .. 2147483647)",
                    s.name
                );
            }
            format_kb(kb)
        }
        "integer" => {
            let n: i64 = value.trim().parse().map_err(|_| invalid())?;
            let min = s.min_val.and_then(|m| m.parse::<i64>().ok());
            let max = s.max_val.and_then(|m| m.parse::<i64>().ok());
            if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                bail!(
                    INVALID_PARAMETER_VALUE,
                    "{n} is outside the valid range for parameter \"{}\" ({} .. {})",
                    s.name,
                    s.min_val.unwrap_or(""),
                    s.max_val.unwrap_or("")
                );
            }
            n.to_string()
        }
        _ => value.to_string(),
    })
}

/// A duration setting in milliseconds: a bare number is milliseconds; units us, ms, s, min, h,
/// d as PostgreSQL writes them.
pub fn parse_ms(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let factor = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "us" => return Some(n.div_ceil(1000)),
        _ => return None,
    };
    n.checked_mul(factor)
}

/// `shown` (a value as `SHOW` prints it) in the parameter's base unit, as
/// `pg_settings.setting` shows it (`5s` -> `5000` for a parameter in ms).
pub fn in_base_unit(name: &str, shown: &str) -> String {
    let parsed = match lookup(name).and_then(|s| s.unit) {
        Some("ms") => parse_ms(shown),
        Some("kB") => parse_kb(shown),
        _ => None,
    };
    parsed.map_or_else(|| shown.to_string(), |n| n.to_string())
}

/// A memory setting in kilobytes: a bare number is kB; units kB, MB, GB, TB.
fn parse_kb(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let factor: u64 = match unit.trim() {
        "" | "kB" => 1,
        "MB" => 1 << 10,
        "GB" => 1 << 20,
        "TB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// Kilobytes with the largest unit that divides them, as `SHOW` prints memory.
fn format_kb(kb: u64) -> String {
    for (unit, size) in [("TB", 1 << 30), ("GB", 1 << 20), ("MB", 1 << 10)] {
        if kb.is_multiple_of(size) {
            return format!("{}{unit}", kb / size);
        }
    }
    format!("{kb}kB")
}

/// Milliseconds with the largest unit that divides them, as `SHOW` prints a duration.
pub fn format_ms(ms: u64) -> String {
    if ms == 0 {
        return "0".to_string();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_written_as_postgresql_shows_them() {
        assert_eq!(normalize("statement_timeout", "1500").unwrap(), "1500ms");
        assert_eq!(normalize("statement_timeout", "5s").unwrap(), "5s");
        assert_eq!(normalize("statement_timeout", "5000").unwrap(), "5s");
        assert_eq!(normalize("lock_timeout", "120000").unwrap(), "2min");
        assert_eq!(normalize("statement_timeout", "0").unwrap(), "0");
        assert_eq!(normalize("work_mem", "4096").unwrap(), "4MB");
        assert_eq!(normalize("work_mem", "100kB").unwrap(), "100kB");
        assert_eq!(in_base_unit("statement_timeout", "5s"), "5000");
        assert_eq!(in_base_unit("work_mem", "4MB"), "4096");
        assert_eq!(in_base_unit("DateStyle", "ISO, MDY"), "ISO, MDY");
        let e = normalize("statement_timeout", "soon").unwrap_err();
        assert_eq!(e.code, crate::error::code::INVALID_PARAMETER_VALUE);
    }

    #[test]
    fn names_are_case_insensitive_and_keep_their_spelling() {
        assert_eq!(display_name("datestyle"), "DateStyle");
        assert_eq!(display_name("my.thing"), "my.thing");
        assert_eq!(
            normalize("Default_Transaction_Read_Only", "TRUE").unwrap(),
            "on"
        );
        assert!(normalize("transaction_isolation", "sometimes").is_err());
        assert_eq!(
            unrecognized("x").message,
            "unrecognized configuration parameter \"x\""
        );
        assert!(SETTINGS
            .windows(2)
            .all(|w| w[0].name.to_lowercase() < w[1].name.to_lowercase()));
    }
}
