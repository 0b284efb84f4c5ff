//! Statement text that PostgreSQL accepts but sqlparser's grammar does not, rewritten to an
//! equivalent form sqlparser parses, before parsing.
//!
//! Each rewrite works on tokens (never inside string literals or identifiers) and only on the
//! statement kinds it names:
//! - COPY options: PostgreSQL's boolean option values `on`/`off`/`1`/`0` become TRUE/FALSE
//!   (`copy t from stdin with (freeze on)`, as pgbench sends it; sqlparser knows TRUE/FALSE).

use std::borrow::Cow;

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer, Word};

/// COPY options whose value is a boolean.
const BOOLEAN_COPY_OPTIONS: &[&str] = &["freeze", "header"];

/// Returns `sql` with the rewrites above applied (borrowed when nothing changes).
pub fn normalize(sql: &str) -> Cow<'_, str> {
    let head = sql.trim_start();
    if let Some(user) = create_user_as_role(head) {
        return Cow::Owned(user);
    }
    if head.len() < 4 || !head[..4].eq_ignore_ascii_case("copy") {
        return Cow::Borrowed(sql);
    }
    let dialect = PostgreSqlDialect {};
    let Ok(mut tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        return Cow::Borrowed(sql);
    };
    let mut changed = false;
    let mut depth = 0usize;
    let mut last_word: Option<usize> = None;
    for i in 0..tokens.len() {
        match &tokens[i] {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Whitespace(_) => continue,
            _ => {}
        }
        let replacement = match (&tokens[i], last_word) {
            (Token::Word(w), Some(prev)) if depth > 0 && w.quote_style.is_none() => {
                let is_option = matches!(&tokens[prev], Token::Word(p)
                    if BOOLEAN_COPY_OPTIONS.iter().any(|o| p.value.eq_ignore_ascii_case(o)));
                match w.value.to_ascii_lowercase().as_str() {
                    "on" if is_option => Some(true),
                    "off" if is_option => Some(false),
                    _ => None,
                }
            }
            (Token::Number(n, _), Some(prev)) if depth > 0 => {
                let is_option = matches!(&tokens[prev], Token::Word(p)
                    if BOOLEAN_COPY_OPTIONS.iter().any(|o| p.value.eq_ignore_ascii_case(o)));
                match n.as_str() {
                    "1" if is_option => Some(true),
                    "0" if is_option => Some(false),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(b) = replacement {
            let (value, keyword) = if b {
                ("TRUE", Keyword::TRUE)
            } else {
                ("FALSE", Keyword::FALSE)
            };
            tokens[i] = Token::Word(Word {
                value: value.to_string(),
                quote_style: None,
                keyword,
            });
            changed = true;
        }
        last_word = Some(i);
    }
    if !changed {
        return Cow::Borrowed(sql);
    }
    Cow::Owned(tokens.iter().map(|t| t.to_string()).collect())
}

/// `CREATE USER x ...` is `CREATE ROLE x LOGIN ...` in PostgreSQL; sqlparser only knows the
/// latter with PostgreSQL's options.
fn create_user_as_role(head: &str) -> Option<String> {
    let mut words = head.splitn(3, char::is_whitespace);
    let (create, user, rest) = (words.next()?, words.next()?, words.next()?);
    if !create.eq_ignore_ascii_case("create") || !user.eq_ignore_ascii_case("user") {
        return None;
    }
    let rest = rest.trim_start();
    let (name, options) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let options = options.trim_start();
    let options = options
        .strip_prefix("WITH ")
        .or_else(|| options.strip_prefix("with "))
        .unwrap_or(options);
    Some(format!("CREATE ROLE {name} WITH LOGIN {options}"))
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn copy_boolean_options() {
        assert_eq!(
            normalize("copy pgbench_accounts from stdin with (freeze on)"),
            "copy pgbench_accounts from stdin with (freeze TRUE)"
        );
        assert_eq!(
            normalize("COPY t FROM STDIN (FORMAT csv, HEADER off)"),
            "COPY t FROM STDIN (FORMAT csv, HEADER FALSE)"
        );
        // Untouched: other statements, and identifiers named "on".
        assert_eq!(normalize("select 1"), "select 1");
        assert_eq!(
            normalize("CREATE USER bob WITH PASSWORD 'x'"),
            "CREATE ROLE bob WITH LOGIN PASSWORD 'x'"
        );
        assert_eq!(
            normalize("copy t (\"on\") from stdin"),
            "copy t (\"on\") from stdin"
        );
    }
}
