//! What the shell needs from a database: the [`Backend`] trait, and the results and errors it
//! passes back.
//!
//! The shell logic (splitting input, backslash commands, printing, `\copy` parsing, prompts)
//! exists once, in the parent module; a backend only runs statements and answers questions
//! about the catalog. Two implement it: [`super::embedded::Embedded`] (a database opened
//! in-process) and [`super::remote::Remote`] (any server speaking the PostgreSQL wire
//! protocol: Strata's own, or PostgreSQL).
//!
//! Contract of every method:
//! 1. Errors the database reports come back as [`DbError`] with a SQLSTATE; nothing here prints.
//! 2. A failed statement leaves the backend usable: the next call runs (in a failed
//!    transaction it fails with 25P02 until ROLLBACK, as on PostgreSQL).
//! 3. COPY is one statement: a row the server rejects fails the whole COPY, nothing of it is
//!    loaded.

use std::io::{Read, Write};

use strata::QueryResult;

use super::TableData;

/// The rows a statement returned.
#[derive(Debug, Clone)]
pub enum ResultRows {
    /// Typed values (embedded): printed straight from the values where the format allows.
    Values(QueryResult),
    /// Text cells (a server's simple-query results).
    Text(TableData),
}

/// The outcome of one statement.
#[derive(Debug, Clone)]
pub struct StatementOutput {
    /// The rows, when the statement returns rows (a SELECT, or DML with RETURNING).
    pub rows: Option<ResultRows>,
    /// The command tag, as a server sends it: `CREATE TABLE`, `INSERT 0 1`, `SELECT 3`.
    pub tag: String,
}

/// An error reported by the database, with what psql shows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    /// The five-character SQLSTATE, e.g. `42P01`.
    pub code: String,
    pub message: String,
    /// 1-based character position in the statement text (syntax errors, unknown columns).
    pub position: Option<usize>,
    /// Further lines psql prints after the message, labelled: `DETAIL`, `HINT`, `CONTEXT`
    /// (where it happened: `COPY t, line 2`).
    pub notes: Vec<(&'static str, String)>,
}

impl DbError {
    /// An error with only a code and a message.
    pub fn new(code: &str, message: impl Into<String>) -> DbError {
        DbError {
            code: code.to_string(),
            message: message.into(),
            position: None,
            notes: Vec::new(),
        }
    }

    /// psql's rendering on stderr: `ERROR:  message (SQLSTATE code)`, then `DETAIL:`,
    /// `HINT:` and, when the error has a position in `sql`, the `LINE n:` context.
    pub fn render(&self, sql: Option<&str>) -> String {
        let mut msg = format!("ERROR:  {} (SQLSTATE {})\n", self.message, self.code);
        if let (Some(pos), Some(sql)) = (self.position, sql) {
            msg.push_str(&super::error_context(sql, pos));
        }
        for (label, text) in &self.notes {
            msg.push_str(&format!("{label}:  {text}\n"));
        }
        msg
    }
}

/// What running SQL text produced: the outputs of the statements that completed, in order,
/// and the error that stopped the rest, if one did.
#[derive(Debug, Default)]
pub struct Executed {
    pub outputs: Vec<StatementOutput>,
    pub error: Option<DbError>,
}

/// Why a `\copy` failed.
#[derive(Debug)]
pub enum CopyError {
    /// The database rejected the COPY (bad row, unknown table...).
    Db(DbError),
    /// A local problem: the data could not be read or written, or the connection broke.
    Io(String),
}

/// The transaction state the prompt shows (psql's `=`, `*`, `!`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    Idle,
    InTransaction,
    /// A statement failed inside a transaction: only ROLLBACK (or ROLLBACK TO) is accepted.
    Failed,
}

/// A database the shell talks to.
pub trait Backend {
    /// Runs SQL text (normally one statement; several separated by `;` run in order, and
    /// stop at the first error).
    fn execute(&mut self, sql: &str) -> Executed;

    /// Runs `copy_sql`, a `COPY ... FROM STDIN`, feeding it `data`; returns the command tag
    /// (`COPY n`).
    fn copy_in(&mut self, copy_sql: &str, data: &mut dyn Read) -> Result<String, CopyError>;

    /// Runs `copy_sql`, a `COPY ... TO STDOUT`, writing the data to `out`; returns the
    /// command tag (`COPY n`).
    fn copy_out(&mut self, copy_sql: &str, out: &mut dyn Write) -> Result<String, CopyError>;

    /// The transaction state after the last statement.
    fn txn_state(&mut self) -> TxnState;

    /// The tables `\d`, `\dt`, `\di`, `\dv` and `\ds` print (`which` is the command without
    /// its backslash, `+` or `S`), for an optional name or pattern (`*` and `?` wildcards).
    /// Err is the message to print ("Did not find any relation named ...").
    fn describe(&mut self, which: &str, pattern: Option<&str>) -> Result<Vec<TableData>, String>;

    /// Tables and views with their columns, for tab completion (empty if unavailable).
    fn completion_names(&mut self) -> Vec<(String, Vec<String>)>;

    /// The `\conninfo` line.
    fn conninfo(&self) -> String;

    /// The database name the prompt shows.
    fn prompt_name(&self) -> &str;

    /// What the interactive banner says the shell is connected to.
    fn banner(&self) -> String;

    /// Ends the session: an open transaction rolls back.
    fn close(self: Box<Self>);
}

/// The relation kinds a `\d` family command lists (`which` without its backslash).
pub fn listed_kinds(which: &str) -> &'static [&'static str] {
    match which {
        "dt" => &["table"],
        "di" => &["index"],
        "dv" => &["view"],
        "ds" => &["sequence"],
        _ => &["table", "view", "sequence"],
    }
}

/// psql's message when `\d` finds nothing, for the name or pattern given (if any).
pub fn no_relation(arg: Option<&str>) -> String {
    match arg {
        Some(a) => format!("Did not find any relation named \"{a}\"."),
        None => "Did not find any relations.".into(),
    }
}
