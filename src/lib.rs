//! # Strata: the embedded API
//!
//! Strata is an embeddable and clusterable SQL database with PostgreSQL's dialect. This crate is
//! what a program links to use it in-process, the way rusqlite exposes SQLite. It is a thin
//! facade over `strata-sql` (parse, plan, execute) and `strata-engine` (B+tree storage, WAL,
//! MVCC transactions), which sit on the block devices of `strata-storage`.
//!
//! ```
//! use strata::{Database, Value};
//!
//! # fn main() -> strata::Result<()> {
//! let db = Database::memory()?;
//! db.execute("CREATE TABLE accounts (id INT PRIMARY KEY, owner TEXT NOT NULL, balance NUMERIC(12,2))", &[])?;
//! db.execute("INSERT INTO accounts VALUES ($1, $2, $3)", &[Value::Int4(1), "ada".into(), Value::Int4(100)])?;
//!
//! let mut tx = db.transaction()?;
//! tx.execute("UPDATE accounts SET balance = balance - 30 WHERE id = 1", &[])?;
//! tx.commit()?; // dropping `tx` without commit rolls back
//!
//! let rows = db.query("SELECT owner, balance FROM accounts WHERE id = $1", &[Value::Int4(1)])?;
//! assert_eq!(rows.len(), 1);
//! assert_eq!(rows[0].get::<String>(0)?, "ada");
//! assert_eq!(rows[0].text(1).as_deref(), Some("70.00"));
//! # Ok(())
//! # }
//! ```
//!
//! A [`Database`] is `Send + Sync`: share it between threads (each call runs in its own
//! session). A [`Transaction`] or [`Connection`] belongs to one thread at a time.

use std::path::Path;
use std::sync::{Arc, Mutex};

pub use strata_engine::{Isolation, Options};
use strata_sql::kv::EngineStorage;
pub use strata_sql::session::QueryResult;
pub use strata_sql::{DataType, Error, Result, Value};
use strata_sql::{Session, Shared};

/// An open database.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<strata_engine::Database>,
    shared: Arc<Shared>,
    /// Idle sessions, reused by `execute` and `query`.
    pool: Mutex<Vec<Session>>,
}

impl Database {
    /// Opens (creating if missing) the database at `path`, with default options: durable
    /// commits (fsync), 4 KiB pages.
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        Database::open_with(path, Options::default())
    }

    /// Opens with explicit engine options (page size, cache size, sync mode, ...).
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Database> {
        let engine = strata_engine::Database::open(path, options)?;
        Ok(Database::from_engine(engine))
    }

    /// A database in memory only, gone when the last handle drops.
    pub fn memory() -> Result<Database> {
        Ok(Database::from_engine(strata_engine::Database::memory(
            Options::default(),
        )?))
    }

    /// Wraps an engine opened elsewhere (on a RAID array, say).
    pub fn from_engine(engine: strata_engine::Database) -> Database {
        let engine = Arc::new(engine);
        let shared = Arc::new(Shared::new(Arc::new(EngineStorage(engine.clone()))));
        Database {
            inner: Arc::new(Inner {
                engine,
                shared,
                pool: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The engine below (statistics, checkpoints, verify).
    pub fn engine(&self) -> &strata_engine::Database {
        &self.inner.engine
    }

    /// A new session: its own transaction state, settings and prepared statements.
    pub fn connect(&self) -> Connection {
        Connection {
            session: Session::new(self.inner.shared.clone()),
        }
    }

    fn with_session<T>(&self, f: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        let pooled = self
            .inner
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let mut session = pooled.unwrap_or_else(|| Session::new(self.inner.shared.clone()));
        let r = f(&mut session);
        if session.status() == strata_sql::TxnStatus::Idle {
            self.inner
                .pool
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(session);
        }
        r
    }

    /// Runs one statement (with `$1`.. parameters) in its own transaction; returns the number of
    /// rows it inserted, updated or deleted (0 for other statements).
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        self.with_session(|s| Ok(affected(&run(s, sql, params)?)))
    }

    /// Runs a query and returns its rows.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        self.with_session(|s| Ok(rows_of(run(s, sql, params)?)))
    }

    /// Runs a script of statements separated by `;` (no parameters).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        self.with_session(|s| s.execute(sql).map(|_| ()))
    }

    /// Begins a transaction at READ COMMITTED.
    pub fn transaction(&self) -> Result<Transaction> {
        self.transaction_with(Isolation::ReadCommitted)
    }

    /// Begins a transaction at the given isolation level.
    pub fn transaction_with(&self, isolation: Isolation) -> Result<Transaction> {
        let mut conn = self.connect();
        let level = match isolation {
            Isolation::ReadCommitted => "READ COMMITTED",
            Isolation::RepeatableRead => "REPEATABLE READ",
            Isolation::Serializable => "SERIALIZABLE",
        };
        conn.session
            .execute(&format!("BEGIN ISOLATION LEVEL {level}"))?;
        Ok(Transaction { conn, open: true })
    }

    /// Writes every committed change to the data file and trims the WAL.
    pub fn checkpoint(&self) -> Result<()> {
        Ok(self.inner.engine.checkpoint()?)
    }
}

fn run(s: &mut Session, sql: &str, params: &[Value]) -> Result<QueryResult> {
    if params.is_empty() {
        let mut results = s.execute(sql)?;
        return Ok(results.pop().unwrap_or_default());
    }
    s.execute_with(sql, params)
}

fn affected(r: &QueryResult) -> u64 {
    let t = &r.tag;
    if t.starts_with("INSERT") || t.starts_with("UPDATE") || t.starts_with("DELETE") {
        t.rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    } else {
        0
    }
}

fn rows_of(r: QueryResult) -> Vec<Row> {
    let names: Arc<Vec<String>> = Arc::new(r.columns.iter().map(|c| c.name.clone()).collect());
    r.rows
        .into_iter()
        .map(|values| Row {
            names: names.clone(),
            values,
        })
        .collect()
}

/// A session: statements run in order, with BEGIN/COMMIT, SET and PREPARE as in psql.
pub struct Connection {
    session: Session,
}

impl Connection {
    /// Runs one statement with parameters and returns its full result.
    pub fn run(&mut self, sql: &str, params: &[Value]) -> Result<QueryResult> {
        run(&mut self.session, sql, params)
    }
    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        Ok(affected(&self.run(sql, params)?))
    }
    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        Ok(rows_of(self.run(sql, params)?))
    }
    /// Runs a script; returns every statement's result.
    pub fn execute_batch(&mut self, sql: &str) -> Result<Vec<QueryResult>> {
        self.session.execute(sql)
    }
    /// The session below (transaction status, prepared statements).
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }
}

/// A transaction that rolls back when dropped without [`Transaction::commit`].
pub struct Transaction {
    conn: Connection,
    open: bool,
}

impl Transaction {
    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        self.conn.execute(sql, params)
    }
    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        self.conn.query(sql, params)
    }
    pub fn commit(mut self) -> Result<()> {
        self.open = false;
        let r = self.conn.session.execute("COMMIT")?;
        match r.last().map(|r| r.tag.as_str()) {
            Some("ROLLBACK") => Err(Error::new(
                strata_sql::error::code::IN_FAILED_SQL_TRANSACTION,
                "the transaction failed earlier and was rolled back",
            )),
            _ => Ok(()),
        }
    }
    pub fn rollback(mut self) -> Result<()> {
        self.open = false;
        self.conn.session.execute("ROLLBACK").map(|_| ())
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.session.execute("ROLLBACK");
        }
    }
}

/// One result row, with typed access by position.
#[derive(Clone, Debug)]
pub struct Row {
    names: Arc<Vec<String>>,
    values: Vec<Value>,
}

impl Row {
    pub fn len(&self) -> usize {
        self.values.len()
    }
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    pub fn values(&self) -> &[Value] {
        &self.values
    }
    pub fn value(&self, i: usize) -> Option<&Value> {
        self.values.get(i)
    }
    /// The column names of the result.
    pub fn columns(&self) -> &[String] {
        &self.names
    }
    /// The value as PostgreSQL prints it (None for NULL).
    pub fn text(&self, i: usize) -> Option<String> {
        self.values.get(i).and_then(Value::to_text)
    }
    /// The value converted to a Rust type; an error names the column when it does not convert.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T> {
        let v = self.values.get(i).ok_or_else(|| {
            Error::new(
                strata_sql::error::code::UNDEFINED_COLUMN,
                format!("no column {i} in a row of {}", self.values.len()),
            )
        })?;
        T::from_value(v).ok_or_else(|| {
            Error::new(
                strata_sql::error::code::DATATYPE_MISMATCH,
                format!(
                    "column {} ({}) holds {} which does not convert to {}",
                    i,
                    self.names.get(i).map(String::as_str).unwrap_or("?"),
                    v.data_type(),
                    std::any::type_name::<T>()
                ),
            )
        })
    }
}

/// Rust types a [`Value`] converts to.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Option<i64> {
        match v {
            // sum(bigint) and friends are numeric; integral ones convert.
            Value::Numeric(d) if d.fract().is_zero() => i64::try_from(*d).ok(),
            v => v.as_i64(),
        }
    }
}
impl FromValue for i32 {
    fn from_value(v: &Value) -> Option<i32> {
        v.as_i64().and_then(|i| i32::try_from(i).ok())
    }
}
impl FromValue for f64 {
    fn from_value(v: &Value) -> Option<f64> {
        v.as_f64()
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> Option<String> {
        match v {
            Value::Null => None,
            v => v.to_text(),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Option<Vec<u8>> {
        match v {
            Value::Bytea(b) => Some(b.clone()),
            _ => None,
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<Option<T>> {
        if v.is_null() {
            Some(None)
        } else {
            T::from_value(v).map(Some)
        }
    }
}
