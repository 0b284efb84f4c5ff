//! Tab completion at the interactive prompt: SQL keywords, table and view names, column names,
//! and backslash commands.
//!
//! The word before the cursor (letters, digits, `_`, or a leading `\`) is completed from one
//! list: keywords, then the database's tables and columns as the shell last read them
//! ([`SqlHelper::set_names`], refreshed before a prompt after a statement ran). Keywords follow
//! the case of what was typed (`sel` gives `select`, `SEL` gives `SELECT`), as psql's default
//! `COMP_KEYWORD_CASE=preserve-upper` does; names are offered as stored. No grammar: every
//! candidate is offered everywhere (psql narrows by context; this does not).

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

/// SQL keywords offered for completion.
const KEYWORDS: &[&str] = &[
    "ABORT",
    "ALL",
    "ALTER",
    "ANALYZE",
    "AND",
    "AS",
    "ASC",
    "BEGIN",
    "BETWEEN",
    "BIGINT",
    "BOOLEAN",
    "BY",
    "CASCADE",
    "CASE",
    "CAST",
    "CHECK",
    "COLUMN",
    "COMMIT",
    "CONSTRAINT",
    "COPY",
    "COUNT",
    "CREATE",
    "CROSS",
    "CSV",
    "DATABASE",
    "DEFAULT",
    "DELETE",
    "DELIMITER",
    "DESC",
    "DISTINCT",
    "DOUBLE",
    "DROP",
    "ELSE",
    "END",
    "EXCEPT",
    "EXISTS",
    "EXPLAIN",
    "FALSE",
    "FOREIGN",
    "FORMAT",
    "FROM",
    "FULL",
    "GROUP",
    "HAVING",
    "HEADER",
    "IF",
    "IN",
    "INDEX",
    "INNER",
    "INSERT",
    "INTEGER",
    "INTERSECT",
    "INTO",
    "IS",
    "JOIN",
    "KEY",
    "LEFT",
    "LIKE",
    "LIMIT",
    "NOT",
    "NULL",
    "NUMERIC",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "PRIMARY",
    "REAL",
    "REFERENCES",
    "RELEASE",
    "RETURNING",
    "RIGHT",
    "ROLLBACK",
    "SAVEPOINT",
    "SELECT",
    "SEQUENCE",
    "SET",
    "SHOW",
    "SMALLINT",
    "TABLE",
    "TEXT",
    "THEN",
    "TIMESTAMP",
    "TO",
    "TRANSACTION",
    "TRUE",
    "TRUNCATE",
    "UNION",
    "UNIQUE",
    "UPDATE",
    "USING",
    "VACUUM",
    "VALUES",
    "VARCHAR",
    "VIEW",
    "WHEN",
    "WHERE",
    "WITH",
];

/// Backslash commands offered after a `\`.
const META_COMMANDS: &[&str] = &[
    "\\?",
    "\\a",
    "\\conninfo",
    "\\copy",
    "\\d",
    "\\di",
    "\\ds",
    "\\dt",
    "\\dv",
    "\\echo",
    "\\f",
    "\\g",
    "\\gx",
    "\\i",
    "\\ir",
    "\\o",
    "\\p",
    "\\pset",
    "\\q",
    "\\r",
    "\\set",
    "\\t",
    "\\timing",
    "\\unset",
    "\\x",
];

/// The shell's rustyline helper: completion only (no hints, highlighting or validation).
#[derive(Debug, Default)]
pub struct SqlHelper {
    /// Table and view names, then column names, deduplicated.
    names: Vec<String>,
}

impl SqlHelper {
    /// Replaces the database names offered (tables with their columns).
    pub fn set_names(&mut self, tables: Vec<(String, Vec<String>)>) {
        let mut names: Vec<String> = tables.iter().map(|(t, _)| t.clone()).collect();
        let mut columns: Vec<String> = tables.into_iter().flat_map(|(_, c)| c).collect();
        columns.sort();
        columns.dedup();
        names.extend(columns);
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
        self.names = names;
    }

    /// The start of the word before `pos` and the completions of it.
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let before = &line[..pos];
        let start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
            .last()
            .map_or(pos, |(i, _)| i);
        let word = &before[start..];
        if before[..start].ends_with('\\') && before[..start].trim_start() == "\\" {
            let typed = format!("\\{word}");
            let out = META_COMMANDS
                .iter()
                .filter(|c| c.starts_with(&typed))
                .map(|c| c.to_string())
                .collect();
            return (start - 1, out);
        }
        if word.is_empty() {
            return (pos, Vec::new());
        }
        let lower = word.to_lowercase();
        let upper_case = !word.chars().any(char::is_lowercase);
        let mut out: Vec<String> = KEYWORDS
            .iter()
            .filter(|k| k.to_lowercase().starts_with(&lower))
            .map(|k| {
                if upper_case {
                    k.to_string()
                } else {
                    k.to_lowercase()
                }
            })
            .collect();
        out.extend(
            self.names
                .iter()
                .filter(|n| n.to_lowercase().starts_with(&lower))
                .cloned(),
        );
        (start, out)
    }
}

impl Completer for SqlHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, words) = self.candidates(line, pos);
        let pairs = words
            .into_iter()
            .map(|w| Pair {
                display: w.clone(),
                replacement: w,
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for SqlHelper {
    type Hint = String;
}

impl Highlighter for SqlHelper {}

impl Validator for SqlHelper {}

impl Helper for SqlHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_follow_the_typed_case_and_names_are_offered() {
        let mut h = SqlHelper::default();
        h.set_names(vec![
            ("orders".into(), vec!["id".into(), "owner".into()]),
            ("people".into(), vec!["id".into(), "name".into()]),
        ]);
        assert_eq!(h.candidates("sel", 3), (0, vec!["select".to_string()]));
        assert_eq!(h.candidates("SEL", 3), (0, vec!["SELECT".to_string()]));
        assert_eq!(
            h.candidates("select * from or", 16),
            (14, vec!["or".to_string(), "order".into(), "orders".into()])
        );
        assert_eq!(h.candidates("select na", 9).1, vec!["name".to_string()]);
        assert_eq!(h.candidates("select ow", 9).1, vec!["owner".to_string()]);
        assert_eq!(h.candidates("select ", 7), (7, vec![]));
        assert_eq!(h.candidates("\\dt", 3), (0, vec!["\\dt".to_string()]));
        assert_eq!(
            h.candidates("\\co", 3),
            (0, vec!["\\conninfo".to_string(), "\\copy".into()])
        );
    }
}
