//! `\copy`: psql's client-side COPY. The shell reads or writes the file; the database sees
//! `COPY ... FROM STDIN` or `COPY ... TO STDOUT` (one statement: a bad row fails it whole).
//!
//! Syntax, as psql's:
//!
//! ```text
//! \copy TABLE [(COLUMNS)] from {'FILE' | FILE | stdin | pstdin} [[with] OPTIONS]
//! \copy {TABLE [(COLUMNS)] | (QUERY)} to {'FILE' | FILE | stdout | pstdout} [[with] OPTIONS]
//! ```
//!
//! OPTIONS are passed to COPY as written: `(format csv, header, delimiter ',', null '')`, or
//! the old `csv header`. `stdin` is the shell's current input (the lines after the command in
//! a script, up to a line `\.`); `pstdin` and `pstdout` are the process's own stdin and
//! stdout; `stdout` is the query output (`\o`). `program` is not supported.

/// Where `\copy` reads or writes the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    File(String),
    /// The current input (from) or the query output (to).
    Current,
    /// The process's stdin (`pstdin`) or stdout (`pstdout`).
    Process,
}

/// A parsed `\copy` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyCommand {
    /// The statement sent to the database.
    pub sql: String,
    /// true for `from` (loading), false for `to`.
    pub from: bool,
    pub endpoint: Endpoint,
}

/// Reads a run of text balanced in parentheses, starting at `(`; quotes are skipped over.
fn balanced(chars: &[char], start: usize) -> Option<usize> {
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        match chars[i] {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            q @ ('\'' | '"') => {
                i += 1;
                while i < chars.len() && chars[i] != q {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn skip_blanks(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    i
}

/// A word up to the next blank (or `(` when `stop_at_paren`), with "..." kept whole.
fn word(chars: &[char], mut i: usize, stop_at_paren: bool) -> (String, usize) {
    let start = i;
    while i < chars.len() && !chars[i].is_whitespace() && !(stop_at_paren && chars[i] == '(') {
        if chars[i] == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
        }
        i += 1;
    }
    let end = i.min(chars.len());
    (chars[start..end].iter().collect(), end)
}

/// Parses the arguments of `\copy` (the text after the command name).
pub fn parse(args: &str) -> Result<CopyCommand, String> {
    let chars: Vec<char> = args.trim().trim_end_matches(';').chars().collect();
    if chars.is_empty() {
        return Err("\\copy: arguments required".into());
    }
    let parse_error = |at: usize| {
        let rest: String = chars[at.min(chars.len())..].iter().collect();
        if rest.is_empty() {
            "\\copy: parse error at end of line".to_string()
        } else {
            let near: String = rest.split_whitespace().next().unwrap_or("").to_string();
            format!("\\copy: parse error at \"{near}\"")
        }
    };
    let mut i = 0;
    let mut target;
    if chars[0] == '(' {
        let end = balanced(&chars, 0).ok_or_else(|| parse_error(chars.len()))?;
        target = chars[..end].iter().collect::<String>();
        i = end;
    } else {
        let (name, end) = word(&chars, 0, true);
        target = name;
        i = skip_blanks(&chars, end.max(i));
        if chars.get(i) == Some(&'(') {
            let end = balanced(&chars, i).ok_or_else(|| parse_error(chars.len()))?;
            target.push(' ');
            target.extend(&chars[i..end]);
            i = end;
        }
    }
    i = skip_blanks(&chars, i);
    let (direction, end) = word(&chars, i, false);
    let from = match direction.to_ascii_lowercase().as_str() {
        "from" => true,
        "to" => false,
        _ => return Err(parse_error(i)),
    };
    if from && target.starts_with('(') {
        return Err("\\copy: a query can only be copied to a file or stdout".into());
    }
    i = skip_blanks(&chars, end);
    if i >= chars.len() {
        return Err(parse_error(i));
    }
    let endpoint;
    if chars[i] == '\'' {
        let mut name = String::new();
        i += 1;
        loop {
            match chars.get(i) {
                None => return Err("\\copy: unterminated quoted file name".into()),
                Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                    name.push('\'');
                    i += 2;
                }
                Some('\'') => {
                    i += 1;
                    break;
                }
                Some(&c) => {
                    name.push(c);
                    i += 1;
                }
            }
        }
        endpoint = Endpoint::File(name);
    } else {
        let (w, end) = word(&chars, i, false);
        i = end;
        endpoint = match (w.to_ascii_lowercase().as_str(), from) {
            ("stdin", true) | ("stdout", false) => Endpoint::Current,
            ("pstdin", true) | ("pstdout", false) => Endpoint::Process,
            ("stdin" | "pstdin", false) | ("stdout" | "pstdout", true) => {
                return Err(format!(
                    "\\copy: cannot copy {} {w}",
                    if from { "from" } else { "to" }
                ))
            }
            ("program", _) => return Err("\\copy: PROGRAM is not supported".into()),
            _ => Endpoint::File(w),
        };
    }
    let options: String = chars[i..].iter().collect();
    let options = options.trim();
    let sql = format!(
        "COPY {target} {}{}{options}",
        if from { "FROM STDIN" } else { "TO STDOUT" },
        if options.is_empty() { "" } else { " " }
    );
    Ok(CopyCommand {
        sql,
        from,
        endpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_psql_forms() {
        let c = parse("items (id, name) from '/tmp/it''s.csv' with (format csv, header)").unwrap();
        assert_eq!(
            c.sql,
            "COPY items (id, name) FROM STDIN with (format csv, header)"
        );
        assert!(c.from);
        assert_eq!(c.endpoint, Endpoint::File("/tmp/it's.csv".into()));

        let c = parse("(select * from t where a = ')') to stdout csv header;").unwrap();
        assert_eq!(
            c.sql,
            "COPY (select * from t where a = ')') TO STDOUT csv header"
        );
        assert_eq!(c.endpoint, Endpoint::Current);

        let c = parse("\"My Table\" from pstdin").unwrap();
        assert_eq!(c.sql, "COPY \"My Table\" FROM STDIN");
        assert_eq!(c.endpoint, Endpoint::Process);

        let c = parse("t to out.tsv").unwrap();
        assert_eq!(c.endpoint, Endpoint::File("out.tsv".into()));
        assert_eq!(c.sql, "COPY t TO STDOUT");
    }

    #[test]
    fn rejects_bad_forms() {
        assert_eq!(parse("").unwrap_err(), "\\copy: arguments required");
        assert_eq!(
            parse("t into x").unwrap_err(),
            "\\copy: parse error at \"into\""
        );
        assert_eq!(
            parse("t from").unwrap_err(),
            "\\copy: parse error at end of line"
        );
        assert!(parse("t from stdout").is_err());
        assert!(parse("(select 1) from stdin").is_err());
        assert!(parse("t from program 'ls'").is_err());
        assert!(parse("t from 'x").is_err());
    }
}
