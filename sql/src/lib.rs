//! # strata-sql: the PostgreSQL-dialect SQL layer
//!
//! Parses with sqlparser's PostgreSqlDialect ([`parse`]), binds names against a catalog stored
//! in the engine ([`catalog`]), plans ([`plan`]), optimizes (predicate pushdown, access path
//! choice between full scan, primary key, dense index and sparse index, hash joins:
//! [`optimize`]) and executes ([`exec`]). It reaches storage only through the small
//! transaction trait in [`kv`], implemented by the local engine and, later, by the cluster's
//! distributed transaction. [`session::Session`] runs statements with PostgreSQL's transaction
//! semantics; every error carries a SQLSTATE ([`error`]).

pub mod catalog;
pub mod compat;
pub mod copy;
pub mod datetime;
pub mod ddl;
pub mod dml;
pub mod encoding;
pub mod error;
pub mod exec;
pub mod explain;
pub mod expr;
pub mod functions;
pub mod interrupt;
pub mod kv;
pub mod maintenance;
pub mod optimize;
pub mod plan;
pub mod plan_cache;
pub mod session;
pub mod settings;
pub mod sparse;
pub mod system;
pub mod value;

pub use error::{Error, Result};
pub use session::{Prepared, QueryResult, Session, Shared, TxnStatus};
pub use value::{DataType, Value};

/// Parses SQL text into statements, with PostgreSQL's syntax errors (42601 with a position).
pub fn parse(sql: &str) -> Result<Vec<sqlparser::ast::Statement>> {
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    let normalized = compat::normalize(sql);
    sqlparser::parser::Parser::parse_sql(&dialect, &normalized).map_err(|e| {
        let msg = e.to_string();
        let msg = msg
            .strip_prefix("sql parser error: ")
            .unwrap_or(&msg)
            .to_string();
        // "... at Line: 1, Column: 8": turn it into a character position.
        let position = msg.rfind("Line: ").and_then(|i| {
            let rest = &msg[i + 6..];
            let (line, col) = rest.split_once(", Column: ")?;
            let line: usize = line.trim().parse().ok()?;
            let col: usize = col
                .trim()
                .trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()?;
            let offset: usize = sql
                .split('\n')
                .take(line.saturating_sub(1))
                .map(|l| l.chars().count() + 1)
                .sum();
            Some(offset + col)
        });
        Error {
            code: error::code::SYNTAX_ERROR,
            message: format!("syntax error: {msg}"),
            position,
        }
    })
}
