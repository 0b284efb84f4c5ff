//! COPY data formats, as PostgreSQL reads and writes them.
//!
//! - text: one row per line, columns separated by a tab (or DELIMITER), NULL written `\N`,
//!   backslash escapes (`\t`, `\n`, `\r`, `\\`, `\b`, `\f`, `\v`, octal `\NNN`); a line `\.`
//!   ends the data.
//! - csv: columns separated by a comma, fields containing the delimiter, the quote, CR or LF
//!   quoted with `"` (a quote inside doubled); an unquoted empty field is NULL; HEADER skips the
//!   first line on input and writes the column names on output.

use crate::error::Result;
use crate::{bail, err};

#[derive(Clone, Debug)]
pub struct CopyFormat {
    pub csv: bool,
    pub delimiter: char,
    pub null: String,
    pub header: bool,
    pub quote: char,
    pub escape: char,
}

impl CopyFormat {
    pub fn text() -> CopyFormat {
        CopyFormat {
            csv: false,
            delimiter: '\t',
            null: "\\N".into(),
            header: false,
            quote: '"',
            escape: '"',
        }
    }
    pub fn csv() -> CopyFormat {
        CopyFormat {
            csv: true,
            delimiter: ',',
            null: String::new(),
            header: false,
            quote: '"',
            escape: '"',
        }
    }
}

/// Parses COPY input into rows of fields (None = NULL).
pub fn parse(data: &str, f: &CopyFormat) -> Result<Vec<Vec<Option<String>>>> {
    if f.csv {
        parse_csv(data, f)
    } else {
        let mut rows = Vec::new();
        for (n, line) in data.lines().enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line == "\\." {
                break;
            }
            if n == 0 && f.header {
                continue;
            }
            let mut row = Vec::new();
            for field in line.split(f.delimiter) {
                row.push(if field == f.null {
                    None
                } else {
                    Some(unescape_text(field, n + 1)?)
                });
            }
            rows.push(row);
        }
        Ok(rows)
    }
}

fn unescape_text(s: &str, line: usize) -> Result<String> {
    if !s.contains('\\') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some(d @ '0'..='7') => {
                let mut v = d.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match it.peek() {
                        Some(&n @ '0'..='7') => {
                            v = v * 8 + n.to_digit(8).unwrap_or(0);
                            it.next();
                        }
                        _ => break,
                    }
                }
                out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
            }
            Some(other) => out.push(other),
            None => bail!(
                DATA_EXCEPTION,
                "COPY data line {line} ends with a lone backslash"
            ),
        }
    }
    Ok(out)
}

fn parse_csv(data: &str, f: &CopyFormat) -> Result<Vec<Vec<Option<String>>>> {
    let mut rows = Vec::new();
    let chars: Vec<char> = data.chars().collect();
    let mut i = 0;
    let mut line = 1;
    let mut first = true;
    while i < chars.len() {
        // One record.
        let mut row = Vec::new();
        loop {
            let mut field = String::new();
            let mut quoted = false;
            if i < chars.len() && chars[i] == f.quote {
                quoted = true;
                i += 1;
                loop {
                    if i >= chars.len() {
                        bail!(
                            DATA_EXCEPTION,
                            "unterminated CSV quoted field at line {line}"
                        );
                    }
                    let c = chars[i];
                    if c == f.escape && i + 1 < chars.len() && chars[i + 1] == f.quote {
                        field.push(f.quote);
                        i += 2;
                    } else if c == f.quote {
                        i += 1;
                        break;
                    } else {
                        if c == '\n' {
                            line += 1;
                        }
                        field.push(c);
                        i += 1;
                    }
                }
            }
            while i < chars.len() && chars[i] != f.delimiter && chars[i] != '\n' && chars[i] != '\r'
            {
                field.push(chars[i]);
                i += 1;
            }
            row.push(if !quoted && field == f.null {
                None
            } else {
                Some(field)
            });
            if i < chars.len() && chars[i] == f.delimiter {
                i += 1;
                continue;
            }
            break;
        }
        if i < chars.len() && chars[i] == '\r' {
            i += 1;
        }
        if i < chars.len() && chars[i] == '\n' {
            i += 1;
        }
        line += 1;
        if row.len() == 1 && row[0].as_deref() == Some("\\.") {
            break;
        }
        if first && f.header {
            first = false;
            continue;
        }
        first = false;
        rows.push(row);
    }
    Ok(rows)
}

/// Formats rows (fields as text, None = NULL) for COPY TO.
pub fn format(header: Option<&[String]>, rows: &[Vec<Option<String>>], f: &CopyFormat) -> String {
    let mut out = String::new();
    let mut line = |fields: Vec<String>| {
        out.push_str(&fields.join(&f.delimiter.to_string()));
        out.push('\n');
    };
    if let (Some(h), true) = (header, f.header) {
        line(
            h.iter()
                .map(|c| if f.csv { csv_field(c, f) } else { c.clone() })
                .collect(),
        );
    }
    for r in rows {
        line(
            r.iter()
                .map(|v| match v {
                    None => f.null.clone(),
                    Some(s) if f.csv => csv_field(s, f),
                    Some(s) => escape_text(s, f.delimiter),
                })
                .collect(),
        );
    }
    out
}

fn csv_field(s: &str, f: &CopyFormat) -> String {
    let needs = s.is_empty()
        || s.contains(f.delimiter)
        || s.contains(f.quote)
        || s.contains('\n')
        || s.contains('\r')
        || s == "\\.";
    if !needs {
        return s.to_string();
    }
    let q = f.quote.to_string();
    let doubled = format!("{}{}", f.escape, f.quote);
    format!("{q}{}{q}", s.replace(&q, &doubled))
}

fn escape_text(s: &str, delim: char) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' if delim == '\t' => out.push_str("\\t"),
            c if c == delim => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Reads the options of a COPY statement.
pub fn options(
    opts: &[sqlparser::ast::CopyOption],
    legacy: &[sqlparser::ast::CopyLegacyOption],
) -> Result<CopyFormat> {
    use sqlparser::ast::{CopyLegacyCsvOption as LC, CopyLegacyOption as L, CopyOption as O};
    let mut csv = false;
    for o in opts {
        if let O::Format(f) = o {
            match f.value.to_lowercase().as_str() {
                "csv" => csv = true,
                "text" => csv = false,
                other => bail!(
                    FEATURE_NOT_SUPPORTED,
                    "COPY format \"{other}\" is not supported"
                ),
            }
        }
    }
    if legacy.iter().any(|l| matches!(l, L::Csv(_))) {
        csv = true;
    }
    let mut f = if csv {
        CopyFormat::csv()
    } else {
        CopyFormat::text()
    };
    for o in opts {
        match o {
            O::Format(_) => {}
            O::Delimiter(c) => f.delimiter = *c,
            O::Null(s) => f.null = s.clone(),
            O::Header(h) => f.header = *h,
            O::Quote(c) => f.quote = *c,
            O::Escape(c) => f.escape = *c,
            O::Encoding(e) if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {
            }
            // FREEZE asks PostgreSQL to write rows pre-frozen (no later vacuum freeze). Strata's
            // MVCC has no freezing to skip, so the rows are simply written as usual.
            O::Freeze(_) => {}
            other => bail!(
                FEATURE_NOT_SUPPORTED,
                "COPY option {other} is not supported"
            ),
        }
    }
    for l in legacy {
        match l {
            L::Delimiter(c) => f.delimiter = *c,
            L::Null(s) => f.null = s.clone(),
            L::Header => f.header = true,
            L::Csv(cs) => {
                for c in cs {
                    match c {
                        LC::Header => f.header = true,
                        LC::Quote(q) => f.quote = *q,
                        LC::Escape(e) => f.escape = *e,
                        other => bail!(
                            FEATURE_NOT_SUPPORTED,
                            "COPY option {other} is not supported"
                        ),
                    }
                }
            }
            other => bail!(
                FEATURE_NOT_SUPPORTED,
                "COPY option {other} is not supported"
            ),
        }
    }
    if f.delimiter == '\n' || f.delimiter == '\r' {
        return Err(err!(
            INVALID_PARAMETER_VALUE,
            "COPY delimiter cannot be newline or carriage return"
        ));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip() {
        let f = CopyFormat::csv();
        let rows = vec![vec![
            Some("a,b".to_string()),
            None,
            Some(String::new()),
            Some("say \"hi\"\nthere".into()),
        ]];
        let text = format(None, &rows, &f);
        assert_eq!(parse(&text, &f).unwrap(), rows);
    }

    #[test]
    fn text_round_trip() {
        let f = CopyFormat::text();
        let rows = vec![vec![
            Some("tab\there".to_string()),
            None,
            Some("back\\slash\nnl".into()),
        ]];
        let text = format(None, &rows, &f);
        assert_eq!(parse(&text, &f).unwrap(), rows);
        assert_eq!(
            parse("1\t\\N\n\\.\nignored\n", &f).unwrap(),
            vec![vec![Some("1".into()), None]]
        );
    }

    #[test]
    fn bad_csv_is_an_error() {
        assert!(parse("\"open", &CopyFormat::csv()).is_err());
    }
}
