//! Sessions: statement execution with PostgreSQL's transaction semantics.
//!
//! Outside BEGIN each statement runs in its own transaction (autocommit). Inside, a failed
//! statement puts the transaction in the failed state: every later statement is refused with
//! 25P02 until ROLLBACK (or COMMIT, which then rolls back), as in PostgreSQL. SAVEPOINT and
//! ROLLBACK TO undo part of a transaction and clear the failed state.
//!
//! A simple-protocol Query of several statements runs as one implicit transaction, as in
//! PostgreSQL: the server calls [`Session::begin_implicit`] before its statements and
//! [`Session::end_implicit`] after them (commit if all succeeded, else roll back). Inside it,
//! BEGIN turns the implicit block into an explicit one, COMMIT and ROLLBACK end it, and SAVEPOINT
//! is refused (25P01).
//!
//! Settings: `SET`, `SHOW`, `current_setting()`, `set_config()` and `pg_settings` share the
//! session's one map ([`crate::settings`]); `set_config(name, value, true)` lasts until the
//! end of the current transaction.
//!
//! [`Shared`] is what every session of one database shares: the storage, the sequence
//! allocator and the hidden row-id counters.

use std::collections::HashMap;
use std::ops::Bound;

use std::sync::{Arc, Mutex};

use sqlparser::ast;

use crate::catalog::{self, Table};
use crate::error::Result;
use crate::exec::{self, Cx, ExecStats, Row, SequenceOps};
use crate::expr::SeqOp;
use crate::interrupt::{Interrupt, InterruptibleTxn};
use crate::kv::{Isolation, Storage, Transaction};
use crate::optimize::optimize;
use crate::plan::{self, Binder, OutCol, Plan};
use crate::plan_cache::{self, PlanCache};
use crate::value::{DataType, Value};
use crate::{bail, ddl, dml, err};

/// The result of one statement.
#[derive(Clone, Debug, Default)]
pub struct QueryResult {
    pub columns: Vec<OutCol>,
    pub rows: Vec<Row>,
    /// The command tag, as PostgreSQL sends it: `SELECT 3`, `INSERT 0 1`, `BEGIN`, ...
    pub tag: String,
    /// COPY ... TO STDOUT: the data, in the statement's format.
    pub copy_out: Option<String>,
}

const SEQ_TREE: &str = "__seq";
/// Sequence values handed out per persisted allocation (like PostgreSQL's WAL-logged 32).
const SEQ_BATCH: i64 = 32;

/// State shared by every session of a database.
pub struct Shared {
    pub storage: Arc<dyn Storage>,
    /// Sequence id -> (next value, first value not yet persisted as allocated).
    seqs: Mutex<HashMap<u64, (i64, i64)>>,
    /// Table id -> next hidden row id.
    rowids: Mutex<HashMap<u64, u64>>,
}

impl Shared {
    pub fn new(storage: Arc<dyn Storage>) -> Shared {
        Shared {
            storage,
            seqs: Mutex::new(HashMap::new()),
            rowids: Mutex::new(HashMap::new()),
        }
    }

    /// A fresh row id for a table without a primary key.
    pub fn next_rowid(&self, table: &Table, txn: &mut dyn Transaction) -> Result<u64> {
        let mut ids = self.rowids.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = ids.get_mut(&table.id) {
            *n += 1;
            return Ok(*n - 1);
        }
        // First use in this process: continue after the largest id stored (any snapshot's
        // view is enough, as ids are handed out only here).
        let last = txn.scan(&table.tree(), Bound::Unbounded, Bound::Unbounded, true, 1)?;
        let next = match last.first() {
            Some((k, _)) if k.len() == 8 => {
                u64::from_be_bytes(k[..8].try_into().expect("8 bytes")) + 1
            }
            _ => 1,
        };
        ids.insert(table.id, next + 1);
        Ok(next)
    }

    /// Allocates the next value of a sequence outside any user transaction.
    fn nextval(&self, seq: &catalog::Sequence) -> Result<i64> {
        let mut seqs = self.seqs.lock().unwrap_or_else(|e| e.into_inner());
        let entry = match seqs.get(&seq.id) {
            Some(e) => *e,
            None => {
                let stored = self.read_counter(seq.id)?;
                let next = stored.unwrap_or(seq.start);
                (next, next)
            }
        };
        let (next, limit) = entry;
        if (seq.increment > 0 && next > seq.max) || (seq.increment < 0 && next < seq.min) {
            return Err(crate::error::Error::new(
                "2200H",
                format!(
                    "nextval: reached {} value of sequence \"{}\" ({})",
                    if seq.increment > 0 {
                        "maximum"
                    } else {
                        "minimum"
                    },
                    seq.name,
                    if seq.increment > 0 { seq.max } else { seq.min }
                ),
            ));
        }
        let mut limit = limit;
        if (seq.increment > 0 && next >= limit) || (seq.increment < 0 && next <= limit) {
            limit = next.saturating_add(seq.increment.saturating_mul(SEQ_BATCH));
            self.write_counter(seq.id, limit)?;
        }
        seqs.insert(seq.id, (next.saturating_add(seq.increment), limit));
        Ok(next)
    }

    fn setval(&self, seq: &catalog::Sequence, value: i64) -> Result<()> {
        let mut seqs = self.seqs.lock().unwrap_or_else(|e| e.into_inner());
        let next = value + seq.increment;
        self.write_counter(seq.id, next)?;
        seqs.insert(seq.id, (next, next));
        Ok(())
    }

    fn read_counter(&self, id: u64) -> Result<Option<i64>> {
        let mut txn = self.storage.begin(Isolation::ReadCommitted)?;
        if !txn.tree_exists(SEQ_TREE) {
            txn.rollback()?;
            return Ok(None);
        }
        let v = txn.get(SEQ_TREE, &id.to_be_bytes())?;
        txn.rollback()?;
        Ok(v.map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8]))))
    }

    fn write_counter(&self, id: u64, value: i64) -> Result<()> {
        let mut txn = self.storage.begin(Isolation::ReadCommitted)?;
        if !txn.tree_exists(SEQ_TREE) {
            txn.create_tree(SEQ_TREE)?;
        }
        txn.put(SEQ_TREE, &id.to_be_bytes(), &value.to_le_bytes())?;
        txn.commit()
    }
}

/// A prepared statement: parsed once, with its parameter types.
#[derive(Clone)]
pub struct Prepared {
    /// The statement's text (the plan cache's key); empty for an empty query, which runs as
    /// nothing at all.
    pub text: String,
    /// The statement (for an empty query, a placeholder that is never run).
    pub statement: ast::Statement,
    pub param_types: Vec<DataType>,
    pub columns: Vec<OutCol>,
}

/// The transaction state a session reports (psql's prompt shows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnStatus {
    Idle,
    InTransaction,
    Failed,
}

pub struct Session {
    shared: Arc<Shared>,
    txn: Option<Box<dyn Transaction>>,
    failed: bool,
    /// Savepoint names with their depths.
    savepoints: Vec<(String, usize)>,
    default_isolation: Isolation,
    /// Isolation for the next BEGIN (SET TRANSACTION before the first statement).
    pending_isolation: Option<Isolation>,
    prepared: HashMap<String, Prepared>,
    plan_cache: PlanCache<BoundStatement>,
    currval: HashMap<String, i64>,
    txn_ts: i64,
    pub settings: HashMap<String, String>,
    /// Values `set_config(..., true)` replaced, restored when the transaction ends.
    local_undo: Vec<(String, Option<String>)>,
    /// The open transaction is the implicit one of a multi-statement Query.
    implicit: bool,
    /// Counters from the last statement (EXPLAIN ANALYZE, benchmarks).
    pub last_stats: ExecStats,
    /// Cancel flag and statement deadline checked by every transaction this session begins.
    interrupt: Option<Arc<Interrupt>>,
}

// A session moves between threads (connection pools, the server's workers): it must stay Send,
// cached plans included.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<Session>();
};

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

struct SessionSeqs<'a> {
    shared: &'a Shared,
    currval: &'a mut HashMap<String, i64>,
    settings: &'a mut SessionSettings,
}

/// The session's settings while a statement runs (taken out of the session, put back after).
#[derive(Default)]
struct SessionSettings {
    values: HashMap<String, String>,
    /// Values `set_config(..., true)` replaced, restored when the transaction ends.
    local_undo: Vec<(String, Option<String>)>,
    changed: bool,
}

/// The value of setting `name` (lower case): set, or else the parameter's boot value.
fn setting_value(values: &HashMap<String, String>, name: &str) -> Option<String> {
    values.get(name).cloned().or_else(|| {
        let s = crate::settings::lookup(name)?;
        crate::settings::normalize(name, s.boot_val).ok()
    })
}

/// Checks that `name` (lower case) may be set now and returns `value` as it is stored.
fn checked_setting(values: &HashMap<String, String>, name: &str, value: &str) -> Result<String> {
    use crate::settings;
    match settings::lookup(name) {
        Some(s) if s.context == "internal" => bail!(
            CANT_CHANGE_RUNTIME_PARAM,
            "parameter \"{}\" cannot be changed",
            s.name
        ),
        Some(s) if s.context == "postmaster" => bail!(
            CANT_CHANGE_RUNTIME_PARAM,
            "parameter \"{}\" cannot be changed without restarting the server",
            s.name
        ),
        Some(_) => settings::normalize(name, value),
        None if settings::is_custom(name) || values.contains_key(name) => Ok(value.to_string()),
        None => Err(settings::unrecognized(name)),
    }
}

impl SequenceOps for SessionSeqs<'_> {
    fn apply(
        &mut self,
        txn: &mut dyn Transaction,
        op: SeqOp,
        name: &str,
        args: &[Value],
    ) -> Result<Value> {
        let mut seq = || {
            catalog::sequence(txn, name)?
                .ok_or_else(|| err!(UNDEFINED_TABLE, "relation \"{name}\" does not exist"))
        };
        match op {
            SeqOp::NextVal => {
                let v = self.shared.nextval(&seq()?)?;
                self.currval.insert(name.to_string(), v);
                Ok(Value::Int8(v))
            }
            SeqOp::CurrVal => match seq().map(|_| self.currval.get(name))? {
                Some(v) => Ok(Value::Int8(*v)),
                None => bail!(
                    OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "currval of sequence \"{name}\" is not yet defined in this session"
                ),
            },
            SeqOp::CurrentSetting => {
                let Some(Value::Text(name)) = args.first() else {
                    return Ok(Value::Null);
                };
                let missing_ok = matches!(args.get(1), Some(Value::Bool(true)));
                let key = name.to_lowercase();
                match setting_value(&self.settings.values, &key) {
                    Some(v) => Ok(Value::Text(v)),
                    None if missing_ok => Ok(Value::Null),
                    None => Err(crate::settings::unrecognized(name)),
                }
            }
            SeqOp::SetConfig => {
                let Some(Value::Text(name)) = args.first() else {
                    bail!(INVALID_PARAMETER_VALUE, "SET requires parameter name");
                };
                let key = name.to_lowercase();
                let is_local = matches!(args.get(2), Some(Value::Bool(true)));
                let values = &mut self.settings.values;
                let value = match args.get(1) {
                    Some(Value::Text(v)) => checked_setting(values, &key, v)?,
                    // A NULL value resets the parameter.
                    _ => {
                        checked_setting(values, &key, "")?;
                        crate::settings::lookup(&key)
                            .map(|s| s.boot_val.to_string())
                            .unwrap_or_default()
                    }
                };
                let old = values.insert(key.clone(), value.clone());
                if is_local {
                    self.settings.local_undo.push((key, old));
                }
                self.settings.changed = true;
                Ok(Value::Text(value))
            }
            SeqOp::SetVal => {
                let seq = seq()?;
                let v = args
                    .first()
                    .and_then(Value::as_i64)
                    .ok_or_else(|| err!(INVALID_PARAMETER_VALUE, "setval needs a value"))?;
                if v < seq.min || v > seq.max {
                    bail!(
                        NUMERIC_VALUE_OUT_OF_RANGE,
                        "setval: value {v} is out of bounds for sequence \"{name}\" ({}..{})",
                        seq.min,
                        seq.max
                    );
                }
                // setval(seq, v, false): the next nextval returns v itself.
                let is_called = !matches!(args.get(1), Some(Value::Bool(false)));
                let last = if is_called { v } else { v - seq.increment };
                self.shared.setval(&seq, last)?;
                self.currval.insert(name.to_string(), v);
                Ok(Value::Int8(v))
            }
        }
    }
}

/// The isolation level a setting value names.
fn isolation_named(value: &str) -> Option<Isolation> {
    match value.to_lowercase().as_str() {
        "read committed" | "read uncommitted" => Some(Isolation::ReadCommitted),
        "repeatable read" => Some(Isolation::RepeatableRead),
        "serializable" => Some(Isolation::Serializable),
        _ => None,
    }
}

fn isolation_of(modes: &[ast::TransactionMode]) -> Option<Isolation> {
    modes.iter().find_map(|m| match m {
        ast::TransactionMode::IsolationLevel(l) => Some(match l {
            ast::TransactionIsolationLevel::ReadUncommitted
            | ast::TransactionIsolationLevel::ReadCommitted => Isolation::ReadCommitted,
            ast::TransactionIsolationLevel::RepeatableRead
            | ast::TransactionIsolationLevel::Snapshot => Isolation::RepeatableRead,
            ast::TransactionIsolationLevel::Serializable => Isolation::Serializable,
        }),
        _ => None,
    })
}

impl Session {
    pub fn new(shared: Arc<Shared>) -> Session {
        let mut settings = HashMap::new();
        for (k, v) in [
            ("server_version", "15.0"),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("datestyle", "ISO, MDY"),
            ("timezone", "UTC"),
            ("intervalstyle", "postgres"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
            ("transaction_isolation", "read committed"),
            ("default_transaction_isolation", "read committed"),
            ("search_path", "\"$user\", public"),
            ("application_name", ""),
            ("extra_float_digits", "1"),
            ("synchronous_commit", "on"),
        ] {
            settings.insert(k.to_string(), v.to_string());
        }
        Session {
            shared,
            txn: None,
            failed: false,
            savepoints: Vec::new(),
            default_isolation: Isolation::ReadCommitted,
            pending_isolation: None,
            prepared: HashMap::new(),
            plan_cache: PlanCache::default(),
            currval: HashMap::new(),
            txn_ts: 0,
            settings,
            local_undo: Vec::new(),
            implicit: false,
            last_stats: ExecStats::default(),
            interrupt: None,
        }
    }

    /// Makes statements of this session interruptible (query cancel, statement_timeout).
    pub fn set_interrupt(&mut self, interrupt: Arc<Interrupt>) {
        self.interrupt = Some(interrupt);
    }

    /// Begins a storage transaction, wrapped so the session's interrupt can stop it.
    fn begin_txn(&self, iso: Isolation) -> Result<Box<dyn Transaction>> {
        let txn = self.shared.storage.begin(iso)?;
        Ok(match &self.interrupt {
            Some(i) => InterruptibleTxn::wrap(txn, i.clone()),
            None => txn,
        })
    }

    /// Runs one parsed statement (simple query protocol, statement by statement).
    pub fn execute_statement(&mut self, statement: &ast::Statement) -> Result<QueryResult> {
        self.run(statement, &[])
    }

    pub fn status(&self) -> TxnStatus {
        match (&self.txn, self.failed) {
            (None, _) => TxnStatus::Idle,
            (Some(_), false) => TxnStatus::InTransaction,
            (Some(_), true) => TxnStatus::Failed,
        }
    }

    /// Notes an error met before any statement ran (a syntax error): inside a transaction
    /// block it fails the block, as every error does in PostgreSQL.
    pub fn fail_block(&mut self) {
        if self.txn.is_some() {
            self.failed = true;
        }
    }

    /// Runs every statement of `sql` (simple query protocol), stopping at the first error.
    pub fn execute(&mut self, sql: &str) -> Result<Vec<QueryResult>> {
        if let Some(n) = plan_cache::normalize(sql) {
            if let Some(r) = self.run_cached(&n.text, &n.types, &n.params)? {
                return Ok(vec![r]);
            }
        }
        let stmts = crate::parse(sql).inspect_err(|_| self.fail_block())?;
        let mut out = Vec::with_capacity(stmts.len());
        for s in &stmts {
            out.push(self.run(s, &[])?);
        }
        Ok(out)
    }

    /// Parses and binds one statement for later execution with parameters.
    pub fn prepare(&mut self, sql: &str, param_types: &[DataType]) -> Result<Prepared> {
        let mut stmts = crate::parse(sql).inspect_err(|_| self.fail_block())?;
        if stmts.len() > 1 {
            bail!(
                SYNTAX_ERROR,
                "cannot insert multiple commands into a prepared statement"
            );
        }
        let Some(statement) = stmts.pop() else {
            return Ok(Prepared {
                text: String::new(),
                statement: ast::Statement::Commit {
                    chain: false,
                    end: false,
                    modifier: None,
                },
                param_types: vec![],
                columns: vec![],
            });
        };
        let (param_types, columns) = self.describe(&statement, param_types)?;
        Ok(Prepared {
            text: sql.to_string(),
            statement,
            param_types,
            columns,
        })
    }

    /// [`Session::prepare`] through the plan cache, for a SELECT, INSERT, UPDATE or DELETE: the
    /// statement is parsed and bound only when the cache has no valid binding of this text with
    /// these parameter types (and the binding is kept for [`Session::execute_prepared`]).
    /// `Ok(None)` when the cache cannot take it (another kind of statement, a parse or binding
    /// error): nothing has changed, and [`Session::prepare`] reports any error exactly.
    pub fn prepare_cached(
        &mut self,
        sql: &str,
        param_types: &[DataType],
    ) -> Result<Option<Prepared>> {
        self.with_plan_cache(|s, cache| s.prepare_cached_in(cache, sql, param_types))
    }

    /// Runs `f` with the plan cache lent out of the session, so `f` can use both.
    fn with_plan_cache<T>(
        &mut self,
        f: impl FnOnce(&mut Self, &mut PlanCache<BoundStatement>) -> T,
    ) -> T {
        let mut cache = std::mem::take(&mut self.plan_cache);
        let r = f(self, &mut cache);
        self.plan_cache = cache;
        r
    }

    fn prepare_cached_in(
        &mut self,
        cache: &mut PlanCache<BoundStatement>,
        sql: &str,
        types: &[DataType],
    ) -> Result<Option<Prepared>> {
        let Some(entry) = cache.lookup(sql, types, cacheable) else {
            return Ok(None);
        };
        let shared = self.shared.clone();
        let bound = self.with_binding_txn(|txn, _| {
            entry.bound(txn, types, |stmt, t, types| {
                bind_statement(stmt, t, types.to_vec(), &shared)
            })
        })?;
        let Some((bound, inferred)) = bound else {
            return Ok(None);
        };
        let columns = match bound.as_ref() {
            BoundStatement::Query { columns, .. } => columns.clone(),
            BoundStatement::Insert(i) => i.returning_columns(),
            BoundStatement::Change(c) => c.returning_columns(),
        };
        let param_types = inferred
            .into_iter()
            .map(|t| {
                if t == DataType::Unknown {
                    DataType::Text
                } else {
                    t
                }
            })
            .collect();
        Ok(Some(Prepared {
            text: sql.to_string(),
            statement: entry.statement.clone(),
            param_types,
            columns,
        }))
    }

    /// Parameter types and result columns of a statement, without running it.
    pub fn describe(
        &mut self,
        statement: &ast::Statement,
        param_types: &[DataType],
    ) -> Result<(Vec<DataType>, Vec<OutCol>)> {
        let shared = self.shared.clone();
        self.with_binding_txn(|txn, _| {
            let mut binder = Binder::new(txn, param_types.to_vec());
            let cols = match statement {
                ast::Statement::Query(q) => bind_plan(&mut binder, q)?.1,
                ast::Statement::Insert(i) => {
                    dml::bind_insert(&mut binder, i, shared.clone())?.returning_columns()
                }
                ast::Statement::Update(u) => {
                    dml::bind_update(&mut binder, u, shared.clone())?.returning_columns()
                }
                ast::Statement::Delete(d) => {
                    dml::bind_delete(&mut binder, d, shared.clone())?.returning_columns()
                }
                ast::Statement::ShowVariable { variable } => {
                    let name = variable
                        .iter()
                        .map(plan::ident)
                        .collect::<Vec<_>>()
                        .join(" ");
                    let name = if name == "transaction isolation level" {
                        "transaction_isolation".to_string()
                    } else {
                        name
                    };
                    vec![OutCol {
                        name,
                        ty: DataType::Text,
                    }]
                }
                ast::Statement::Explain { .. } => vec![OutCol {
                    name: "QUERY PLAN".into(),
                    ty: DataType::Text,
                }],
                _ => Vec::new(),
            };
            let params = binder
                .params
                .iter()
                .map(|t| {
                    if *t == DataType::Unknown {
                        DataType::Text
                    } else {
                        t.clone()
                    }
                })
                .collect();
            Ok((params, cols))
        })
    }

    /// Runs `COPY ... FROM STDIN` with the data the client sent.
    pub fn copy_in(&mut self, sql: &str, data: &str) -> Result<QueryResult> {
        let mut stmts = crate::parse(sql).inspect_err(|_| self.fail_block())?;
        match stmts.pop() {
            Some(ast::Statement::Copy {
                source,
                to: false,
                target: ast::CopyTarget::Stdin,
                options,
                legacy_options,
                ..
            }) => {
                let stmt = ast::Statement::Copy {
                    source,
                    to: false,
                    target: ast::CopyTarget::Stdin,
                    options,
                    legacy_options,
                    payload: Some(ast::CopyPayload {
                        data: data.to_string(),
                        terminated: true,
                    }),
                };
                self.run(&stmt, &[])
            }
            _ => bail!(SYNTAX_ERROR, "expected COPY ... FROM STDIN"),
        }
    }

    /// Runs a prepared statement with parameter values.
    pub fn execute_prepared(&mut self, p: &Prepared, params: &[Value]) -> Result<QueryResult> {
        if cacheable(&p.statement).is_some() {
            let types: Vec<DataType> = params.iter().map(Value::data_type).collect();
            if let Some(r) = self.run_cached(&p.text, &types, params)? {
                return Ok(r);
            }
        }
        self.run_uncached(p, params)
    }

    /// Runs a prepared statement as bound now, not from the plan cache; an empty one runs as
    /// nothing.
    fn run_uncached(&mut self, p: &Prepared, params: &[Value]) -> Result<QueryResult> {
        if p.text.is_empty() {
            return Ok(QueryResult::default());
        }
        self.run(&p.statement, params)
    }

    /// Runs one statement with parameter values (`$1`, ...), through the plan cache.
    pub fn execute_with(&mut self, sql: &str, params: &[Value]) -> Result<QueryResult> {
        let types: Vec<DataType> = params.iter().map(Value::data_type).collect();
        if let Some(r) = self.run_cached(sql, &types, params)? {
            return Ok(r);
        }
        let p = self.prepare(sql, &types)?;
        self.run_uncached(&p, params)
    }

    /// Statements in the plan cache (the embedded API and tests look).
    pub fn cached_plans(&self) -> usize {
        self.plan_cache.len()
    }

    /// Runs a statement through the plan cache: `text` with parameters of `types`. `Ok(None)`
    /// when the cache cannot take it (the text does not parse, binding fails, a parameter does
    /// not convert): nothing has run, and the caller runs it the ordinary way, which reports
    /// any error exactly as for an uncached statement.
    fn run_cached(
        &mut self,
        text: &str,
        types: &[DataType],
        params: &[Value],
    ) -> Result<Option<QueryResult>> {
        self.with_plan_cache(|s, cache| s.run_cached_in(cache, text, types, params))
    }

    fn run_cached_in(
        &mut self,
        cache: &mut PlanCache<BoundStatement>,
        text: &str,
        types: &[DataType],
        params: &[Value],
    ) -> Result<Option<QueryResult>> {
        let Some(entry) = cache.lookup(text, types, cacheable) else {
            return Ok(None);
        };
        let shared = self.shared.clone();
        let mut currval = std::mem::take(&mut self.currval);
        let mut settings = self.take_settings();
        let mut stats = ExecStats::default();
        let r = self.with_txn(entry.read_only, |txn, ts| {
            let Some((bound, inferred)) = entry.bound(txn, types, |stmt, t, types| {
                bind_statement(stmt, t, types.to_vec(), &shared)
            })?
            else {
                return Ok(None);
            };
            let Some(params) = plan_cache::cast_params(params, &inferred) else {
                return Ok(None);
            };
            let mut seqs = SessionSeqs {
                shared: &shared,
                currval: &mut currval,
                settings: &mut settings,
            };
            let mut cx = Cx {
                txn,
                params: &params,
                outer: vec![],
                subquery_cache: HashMap::new(),
                worktables: HashMap::new(),
                txn_ts: ts,
                statement_ts: ts,
                seq: &mut seqs,
                stats: ExecStats::default(),
            };
            let r = run_bound(&bound, &mut cx);
            stats = cx.stats;
            r.map(Some)
        });
        self.currval = currval;
        self.put_settings(settings);
        self.last_stats = stats;
        r
    }

    /// The settings, moved out for a statement to read and write ([`SessionSeqs`]).
    fn take_settings(&mut self) -> SessionSettings {
        SessionSettings {
            values: std::mem::take(&mut self.settings),
            local_undo: std::mem::take(&mut self.local_undo),
            changed: false,
        }
    }

    /// Puts the settings back after a statement; ends `set_config(..., true)` values if the
    /// statement's transaction is over.
    fn put_settings(&mut self, s: SessionSettings) {
        self.settings = s.values;
        self.local_undo = s.local_undo;
        if s.changed {
            if let Some(iso) = self
                .settings
                .get("default_transaction_isolation")
                .and_then(|v| isolation_named(v))
            {
                self.default_isolation = iso;
            }
        }
        if self.txn.is_none() {
            self.end_local_settings();
        }
    }

    /// Restores the values `set_config(..., true)` replaced (the transaction ended).
    fn end_local_settings(&mut self) {
        while let Some((name, old)) = self.local_undo.pop() {
            match old {
                Some(v) => self.settings.insert(name, v),
                None => self.settings.remove(&name),
            };
        }
    }

    /// Opens the implicit transaction of a multi-statement Query, unless a transaction is
    /// open already.
    pub fn begin_implicit(&mut self) -> Result<()> {
        if self.txn.is_some() {
            return Ok(());
        }
        let iso = self
            .pending_isolation
            .take()
            .unwrap_or(self.default_isolation);
        self.txn = Some(self.begin_txn(iso)?);
        self.txn_ts = now_micros();
        self.failed = false;
        self.savepoints.clear();
        self.implicit = true;
        Ok(())
    }

    /// Ends the implicit transaction, if one is open: commits it when `commit` and no
    /// statement failed, else rolls it back. An explicit block (BEGIN) is left alone.
    pub fn end_implicit(&mut self, commit: bool) -> Result<()> {
        if !std::mem::take(&mut self.implicit) {
            return Ok(());
        }
        let failed = std::mem::take(&mut self.failed);
        self.savepoints.clear();
        let r = match self.txn.take() {
            Some(txn) if commit && !failed => txn.commit(),
            Some(txn) => txn.rollback(),
            None => Ok(()),
        };
        self.end_local_settings();
        r
    }

    /// True while the implicit transaction of a multi-statement Query is open.
    pub fn in_implicit(&self) -> bool {
        self.implicit
    }

    /// Runs `f` with a transaction: the open one, or a fresh autocommit one (committed after
    /// success, rolled back after failure; `read_only` ones are always rolled back).
    /// `with_txn` for binding alone (describing a statement for Parse): not a transaction of
    /// the user's, so an isolation level set for the next transaction stays for it.
    fn with_binding_txn<T>(
        &mut self,
        f: impl FnOnce(&mut dyn Transaction, i64) -> Result<T>,
    ) -> Result<T> {
        let pending = self.pending_isolation;
        let r = self.with_txn(true, f);
        self.pending_isolation = pending;
        r
    }

    fn with_txn<T>(
        &mut self,
        read_only: bool,
        f: impl FnOnce(&mut dyn Transaction, i64) -> Result<T>,
    ) -> Result<T> {
        if let Some(txn) = self.txn.as_mut() {
            if self.failed {
                bail!(IN_FAILED_SQL_TRANSACTION, "current transaction is aborted, commands ignored until end of transaction block");
            }
            txn.new_statement();
            let r = f(txn.as_mut(), self.txn_ts);
            if r.is_err() {
                self.failed = true;
            }
            return r;
        }
        let iso = self
            .pending_isolation
            .take()
            .unwrap_or(self.default_isolation);
        let mut txn = self.begin_txn(iso)?;
        let ts = now_micros();
        match f(txn.as_mut(), ts) {
            Ok(v) => {
                if read_only {
                    txn.rollback()?;
                } else {
                    txn.commit()?;
                }
                Ok(v)
            }
            Err(e) => {
                let _ = txn.rollback();
                Err(e)
            }
        }
    }

    fn run(&mut self, stmt: &ast::Statement, params: &[Value]) -> Result<QueryResult> {
        use ast::Statement as S;
        let tag = |t: &str| {
            Ok(QueryResult {
                tag: t.to_string(),
                ..Default::default()
            })
        };
        match stmt {
            S::StartTransaction { modes, .. } => {
                if std::mem::take(&mut self.implicit) {
                    // BEGIN inside a multi-statement Query: its implicit transaction becomes
                    // this block (statements before BEGIN are part of it, as in PostgreSQL).
                    return tag("BEGIN");
                }
                if self.txn.is_some() {
                    // PostgreSQL warns and carries on.
                    return tag("BEGIN");
                }
                let iso = isolation_of(modes)
                    .or(self.pending_isolation.take())
                    .unwrap_or(self.default_isolation);
                self.txn = Some(self.begin_txn(iso)?);
                self.txn_ts = now_micros();
                self.failed = false;
                self.savepoints.clear();
                tag("BEGIN")
            }
            S::Commit { .. } => {
                self.implicit = false;
                let Some(txn) = self.txn.take() else {
                    return tag("COMMIT");
                };
                self.savepoints.clear();
                self.end_local_settings();
                if self.failed {
                    self.failed = false;
                    txn.rollback()?;
                    return tag("ROLLBACK");
                }
                txn.commit()?;
                tag("COMMIT")
            }
            S::Rollback {
                savepoint: None, ..
            } => {
                self.implicit = false;
                self.failed = false;
                self.savepoints.clear();
                self.end_local_settings();
                if let Some(txn) = self.txn.take() {
                    txn.rollback()?;
                }
                tag("ROLLBACK")
            }
            S::Rollback {
                savepoint: Some(name),
                ..
            } => {
                let n = plan::ident(name);
                let Some(txn) = self.txn.as_mut() else {
                    bail!(
                        NO_ACTIVE_SQL_TRANSACTION,
                        "ROLLBACK TO SAVEPOINT can only be used in transaction blocks"
                    );
                };
                let Some(pos) = self.savepoints.iter().rposition(|(s, _)| *s == n) else {
                    self.failed = true;
                    bail!(INVALID_SAVEPOINT, "savepoint \"{n}\" does not exist");
                };
                let depth = self.savepoints[pos].1;
                txn.rollback_to(depth)?;
                self.savepoints.truncate(pos + 1);
                self.failed = false;
                tag("ROLLBACK")
            }
            S::Savepoint { name } => {
                let Some(txn) = self.txn.as_mut().filter(|_| !self.implicit) else {
                    bail!(
                        NO_ACTIVE_SQL_TRANSACTION,
                        "SAVEPOINT can only be used in transaction blocks"
                    );
                };
                if self.failed {
                    bail!(IN_FAILED_SQL_TRANSACTION, "current transaction is aborted, commands ignored until end of transaction block");
                }
                let depth = txn.savepoint();
                self.savepoints.push((plan::ident(name), depth));
                tag("SAVEPOINT")
            }
            S::ReleaseSavepoint { name } => {
                let n = plan::ident(name);
                let Some(txn) = self.txn.as_mut() else {
                    bail!(
                        NO_ACTIVE_SQL_TRANSACTION,
                        "RELEASE SAVEPOINT can only be used in transaction blocks"
                    );
                };
                let Some(pos) = self.savepoints.iter().rposition(|(s, _)| *s == n) else {
                    bail!(INVALID_SAVEPOINT, "savepoint \"{n}\" does not exist");
                };
                txn.release(self.savepoints[pos].1);
                self.savepoints.truncate(pos);
                tag("RELEASE")
            }
            S::Set(set) => self.set(set),
            S::ShowVariable { variable } => {
                let words: Vec<String> = variable.iter().map(plan::ident).collect();
                let name = match words.join(" ").as_str() {
                    "transaction isolation level" => "transaction_isolation".to_string(),
                    "time zone" => "timezone".to_string(),
                    // A custom parameter: `SHOW myapp.key`.
                    _ => words.join("."),
                };
                let v = setting_value(&self.settings, &name.to_lowercase())
                    .ok_or_else(|| crate::settings::unrecognized(&name))?;
                Ok(QueryResult {
                    columns: vec![OutCol {
                        name: crate::settings::display_name(&name),
                        ty: DataType::Text,
                    }],
                    rows: vec![vec![Value::Text(v)]],
                    tag: "SHOW".into(),
                    copy_out: None,
                })
            }
            S::Prepare {
                name,
                data_types,
                statement,
            } => {
                let n = plan::ident(name);
                if self.prepared.contains_key(&n) {
                    bail!(
                        DUPLICATE_PREPARED_STATEMENT,
                        "prepared statement \"{n}\" already exists"
                    );
                }
                let types: Vec<DataType> = data_types
                    .iter()
                    .map(plan::data_type)
                    .collect::<Result<_>>()?;
                let (param_types, columns) = self.describe(statement, &types)?;
                self.prepared.insert(
                    n,
                    Prepared {
                        text: statement.to_string(),
                        statement: (**statement).clone(),
                        param_types,
                        columns,
                    },
                );
                tag("PREPARE")
            }
            S::Execute {
                name: Some(name),
                parameters,
                ..
            } => {
                let n = plan::object_name(name)?;
                let p = self.prepared.get(&n).cloned().ok_or_else(|| {
                    err!(
                        INVALID_PREPARED_STATEMENT,
                        "prepared statement \"{n}\" does not exist"
                    )
                })?;
                let mut vals = Vec::new();
                let shared = self.shared.clone();
                let _ = shared;
                for (i, e) in parameters.iter().enumerate() {
                    let v = self.with_txn(true, |txn, ts| {
                        let mut binder = Binder::new(txn, Vec::new());
                        let (x, _) = binder.scalar(e, &plan::Scope::default())?;
                        let mut noseq = NoSequences;
                        let mut cx = Cx {
                            txn,
                            params: &[],
                            outer: vec![],
                            subquery_cache: HashMap::new(),
                            worktables: HashMap::new(),
                            txn_ts: ts,
                            statement_ts: ts,
                            seq: &mut noseq,
                            stats: ExecStats::default(),
                        };
                        crate::expr::eval(&x, &[], &mut cx)
                    })?;
                    let ty = p.param_types.get(i).cloned().unwrap_or(DataType::Text);
                    vals.push(crate::value::cast(v, &ty)?);
                }
                self.execute_prepared(&p, &vals)
            }
            S::Deallocate { name, .. } => {
                let n = plan::ident(name);
                if n == "all" {
                    self.prepared.clear();
                } else if self.prepared.remove(&n).is_none() {
                    bail!(
                        INVALID_PREPARED_STATEMENT,
                        "prepared statement \"{n}\" does not exist"
                    );
                }
                tag("DEALLOCATE")
            }
            S::Vacuum(v) => {
                if self.txn.is_some() {
                    bail!(
                        ACTIVE_SQL_TRANSACTION,
                        "VACUUM cannot run inside a transaction block"
                    );
                }
                crate::maintenance::vacuum(self.shared.storage.as_ref(), v)
            }
            _ => self.run_in_txn(stmt, params),
        }
    }

    fn set(&mut self, set: &ast::Set) -> Result<QueryResult> {
        let tag = |t: &str| {
            Ok(QueryResult {
                tag: t.to_string(),
                ..Default::default()
            })
        };
        match set {
            ast::Set::SetTransaction { modes, session, .. } => {
                if let Some(iso) = isolation_of(modes) {
                    if *session {
                        self.default_isolation = iso;
                    } else if self.txn.is_some() {
                        // Only before the first query of the transaction; we begin eagerly, so
                        // restart the still-empty transaction at the new level.
                        if let Some(t) = self.txn.take() {
                            t.rollback()?;
                        }
                        self.txn = Some(self.begin_txn(iso)?);
                    } else {
                        self.pending_isolation = Some(iso);
                    }
                }
                tag("SET")
            }
            ast::Set::SingleAssignment {
                variable, values, ..
            } => {
                let name = plan::object_name(variable)?;
                let value = values
                    .iter()
                    .map(|v| match v {
                        ast::Expr::Value(v) => match &v.value {
                            ast::Value::SingleQuotedString(s) => s.clone(),
                            other => other.to_string(),
                        },
                        ast::Expr::Identifier(i) => i.value.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let name = name.to_lowercase();
                let value = match crate::settings::lookup(&name) {
                    // Unknown names are accepted (see the settings module's doc).
                    None => value,
                    Some(_) => checked_setting(&self.settings, &name, &value)?,
                };
                if name == "default_transaction_isolation" {
                    if let Some(iso) = isolation_named(&value) {
                        self.default_isolation = iso;
                    }
                }
                self.settings.insert(name, value);
                tag("SET")
            }
            _ => tag("SET"),
        }
    }

    fn run_in_txn(&mut self, stmt: &ast::Statement, params: &[Value]) -> Result<QueryResult> {
        use ast::Statement as S;
        let shared = self.shared.clone();
        let read_only = matches!(stmt, S::Query(_) | S::Explain { .. });
        let mut currval = std::mem::take(&mut self.currval);
        let mut settings = self.take_settings();
        let mut stats = ExecStats::default();
        let r = self.with_txn(read_only, |txn, ts| {
            let mut seqs = SessionSeqs {
                shared: &shared,
                currval: &mut currval,
                settings: &mut settings,
            };
            execute_statement(stmt, params, txn, ts, &mut seqs, &shared, &mut stats)
        });
        self.currval = currval;
        self.put_settings(settings);
        self.last_stats = stats;
        r
    }
}

struct NoSequences;

impl SequenceOps for NoSequences {
    fn apply(
        &mut self,
        _: &mut dyn Transaction,
        _: SeqOp,
        name: &str,
        _: &[Value],
    ) -> Result<Value> {
        bail!(
            FEATURE_NOT_SUPPORTED,
            "sequence function on \"{name}\" is not allowed here"
        )
    }
}

/// A SELECT, INSERT, UPDATE or DELETE bound and optimized, ready to run (what the plan cache
/// keeps).
pub enum BoundStatement {
    Query { plan: Plan, columns: Vec<OutCol> },
    Insert(dml::Insert),
    Change(dml::Change),
}

/// Whether the plan cache takes a statement: Some(read only?) for SELECT, INSERT, UPDATE and
/// DELETE, None for the rest.
fn cacheable(stmt: &ast::Statement) -> Option<bool> {
    use ast::Statement as S;
    match stmt {
        S::Query(_) => Some(true),
        S::Insert(_) | S::Update(_) | S::Delete(_) => Some(false),
        _ => None,
    }
}

/// Binds a SELECT, INSERT, UPDATE or DELETE; returns it with the parameter types binding
/// inferred.
fn bind_statement(
    stmt: &ast::Statement,
    txn: &mut dyn Transaction,
    param_types: Vec<DataType>,
    shared: &Arc<Shared>,
) -> Result<(BoundStatement, Vec<DataType>)> {
    use ast::Statement as S;
    let mut binder = Binder::new(txn, param_types);
    let bound = match stmt {
        S::Query(q) => {
            let (plan, columns) = bind_plan(&mut binder, q)?;
            BoundStatement::Query { plan, columns }
        }
        S::Insert(i) => BoundStatement::Insert(dml::bind_insert(&mut binder, i, shared.clone())?),
        S::Update(u) => BoundStatement::Change(dml::bind_update(&mut binder, u, shared.clone())?),
        S::Delete(d) => BoundStatement::Change(dml::bind_delete(&mut binder, d, shared.clone())?),
        other => bail!(
            INTERNAL_ERROR,
            "not a statement to bind: {}",
            first_words(&other.to_string())
        ),
    };
    Ok((bound, binder.params))
}

fn run_bound(bound: &BoundStatement, cx: &mut Cx) -> Result<QueryResult> {
    match bound {
        BoundStatement::Query { plan, columns } => {
            let rows = exec::run_plan(plan, cx, None)?;
            let n = rows.len();
            Ok(QueryResult {
                columns: columns.clone(),
                rows,
                tag: format!("SELECT {n}"),
                copy_out: None,
            })
        }
        BoundStatement::Insert(ins) => dml::run_insert(ins, cx),
        BoundStatement::Change(ch) => dml::run_change(ch, cx),
    }
}

fn bind_plan(binder: &mut Binder, q: &ast::Query) -> Result<(Plan, Vec<OutCol>)> {
    let (plan, mut cols) = binder.query(q)?;
    for c in &mut cols {
        if c.ty == DataType::Unknown {
            c.ty = DataType::Text;
        }
    }
    Ok((optimize(plan), cols))
}

#[allow(clippy::too_many_arguments)]
fn execute_statement(
    stmt: &ast::Statement,
    params: &[Value],
    txn: &mut dyn Transaction,
    ts: i64,
    seqs: &mut dyn SequenceOps,
    shared: &Arc<Shared>,
    stats: &mut ExecStats,
) -> Result<QueryResult> {
    use ast::Statement as S;
    let param_types: Vec<DataType> = params.iter().map(|v| v.data_type()).collect();
    let done = |t: &str| {
        Ok(QueryResult {
            tag: t.to_string(),
            ..Default::default()
        })
    };
    macro_rules! cx {
        ($txn:expr) => {
            Cx {
                txn: $txn,
                params,
                outer: vec![],
                subquery_cache: HashMap::new(),
                worktables: HashMap::new(),
                txn_ts: ts,
                statement_ts: ts,
                seq: seqs,
                stats: ExecStats::default(),
            }
        };
    }
    match stmt {
        S::Query(_) | S::Insert(_) | S::Update(_) | S::Delete(_) => {
            let (bound, _) = bind_statement(stmt, txn, param_types, shared)?;
            let mut cx = cx!(txn);
            let r = run_bound(&bound, &mut cx);
            *stats = cx.stats;
            r
        }
        S::CreateTable(ct) if ct.query.is_some() => {
            let name = plan::object_name(&ct.name)?;
            if catalog::table(txn, &name)?.is_some() && ct.if_not_exists {
                return done("CREATE TABLE AS");
            }
            let q = ct.query.as_ref().expect("checked");
            let mut binder = Binder::new(txn, param_types);
            let (plan, cols) = bind_plan(&mut binder, q)?;
            let mut names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
            for (n, c) in names.iter_mut().zip(&ct.columns) {
                *n = plan::ident(&c.name);
            }
            let columns: Vec<(String, DataType)> = names
                .into_iter()
                .zip(cols.iter().map(|c| c.ty.clone()))
                .collect();
            let table = ddl::create_table_as(txn, &name, &columns)?;
            let mut cx = cx!(txn);
            let rows = exec::run_plan(&plan, &mut cx, None)?;
            let mut binder = Binder::new(cx.txn, Vec::new());
            let writer = dml::Writer::new(
                &mut binder,
                std::sync::Arc::new(table),
                shared.clone(),
                true,
            )?;
            for r in &rows {
                writer.insert(r, &mut cx)?;
            }
            Ok(QueryResult {
                tag: format!("SELECT {}", rows.len()),
                ..Default::default()
            })
        }
        S::CreateTable(ct) => {
            ddl::create_table(txn, ct)?;
            done("CREATE TABLE")
        }
        S::CreateIndex(ci) => {
            ddl::create_index(txn, ci)?;
            done("CREATE INDEX")
        }
        S::CreateView(cv) => {
            ddl::create_view(txn, cv)?;
            done("CREATE VIEW")
        }
        S::CreateSequence {
            if_not_exists,
            name,
            sequence_options,
            ..
        } => {
            ddl::create_sequence(txn, name, *if_not_exists, sequence_options)?;
            done("CREATE SEQUENCE")
        }
        S::Drop {
            object_type,
            if_exists,
            names,
            cascade,
            ..
        } => {
            ddl::drop(txn, object_type, *if_exists, names, *cascade)?;
            done(&format!("DROP {}", object_type.to_string().to_uppercase()))
        }
        S::AlterTable(at) => {
            ddl::alter_table(txn, at)?;
            done("ALTER TABLE")
        }
        S::Truncate(t) => {
            let names: Vec<String> = t
                .table_names
                .iter()
                .map(|n| plan::object_name(&n.name))
                .collect::<Result<_>>()?;
            ddl::truncate(txn, &names)?;
            done("TRUNCATE TABLE")
        }
        S::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            payload,
        } => {
            let fmt = crate::copy::options(options, legacy_options)?;
            let mut binder = Binder::new(txn, param_types);
            if *to {
                let (plan, cols) = match source {
                    ast::CopySource::Query(q) => bind_plan(&mut binder, q)?,
                    ast::CopySource::Table {
                        table_name,
                        columns,
                    } => {
                        let name = plan::object_name(table_name)?;
                        let list = if columns.is_empty() {
                            "*".to_string()
                        } else {
                            columns
                                .iter()
                                .map(|c| format!("\"{}\"", plan::ident(c)))
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        let q = plan::parse_query(&format!("SELECT {list} FROM \"{name}\""))?;
                        bind_plan(&mut binder, &q)?
                    }
                };
                let mut cx = cx!(txn);
                let rows = exec::run_plan(&plan, &mut cx, None)?;
                let fields: Vec<Vec<Option<String>>> = rows
                    .iter()
                    .map(|r| r.iter().map(Value::to_text).collect())
                    .collect();
                let header: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
                let data = crate::copy::format(Some(&header), &fields, &fmt);
                let n = rows.len();
                return match target {
                    // The columns tell the wire protocol's CopyOutResponse how many there are.
                    ast::CopyTarget::Stdout => Ok(QueryResult {
                        tag: format!("COPY {n}"),
                        copy_out: Some(data),
                        columns: cols,
                        ..Default::default()
                    }),
                    ast::CopyTarget::File { filename } => {
                        std::fs::write(filename, data).map_err(|e| {
                            err!(IO_ERROR, "could not write file \"{filename}\": {e}")
                        })?;
                        done(&format!("COPY {n}"))
                    }
                    _ => bail!(FEATURE_NOT_SUPPORTED, "COPY TO PROGRAM is not supported"),
                };
            }
            let ast::CopySource::Table {
                table_name,
                columns,
            } = source
            else {
                bail!(SYNTAX_ERROR, "COPY FROM needs a table");
            };
            let data = match (target, payload) {
                (ast::CopyTarget::Stdin, Some(p)) => p.data.clone(),
                (ast::CopyTarget::Stdin, None) => bail!(FEATURE_NOT_SUPPORTED, "COPY FROM STDIN needs the data from the client (psql's \\copy, the wire protocol or Session::copy_in)"),
                (ast::CopyTarget::File { filename }, _) => std::fs::read_to_string(filename).map_err(|e| err!(IO_ERROR, "could not open file \"{filename}\" for reading: {e}"))?,
                _ => bail!(FEATURE_NOT_SUPPORTED, "COPY FROM PROGRAM is not supported"),
            };
            let name = plan::object_name(table_name)?;
            let table = std::sync::Arc::new(catalog::must_table(binder.txn, &name)?);
            let targets: Vec<usize> = if columns.is_empty() {
                (0..table.columns.len()).collect()
            } else {
                columns
                    .iter()
                    .map(|c| {
                        let n = plan::ident(c);
                        table.column_index(&n).ok_or_else(|| {
                            err!(
                                UNDEFINED_COLUMN,
                                "column \"{n}\" of relation \"{name}\" does not exist"
                            )
                        })
                    })
                    .collect::<Result<_>>()?
            };
            let mut defaults = Vec::new();
            for (i, c) in table.columns.iter().enumerate() {
                defaults.push(match (&c.default, targets.contains(&i)) {
                    (Some(sql), false) => Some(binder.assigned(
                        &plan::parse_expr(sql)?,
                        &plan::Scope::default(),
                        &c.ty,
                    )?),
                    _ => None,
                });
            }
            let writer = dml::Writer::new(&mut binder, table.clone(), shared.clone(), true)?;
            let rows = crate::copy::parse(&data, &fmt)?;
            let mut cx = cx!(txn);
            for (ln, fields) in rows.iter().enumerate() {
                if fields.len() != targets.len() {
                    bail!(
                        BAD_COPY_FILE_FORMAT,
                        "COPY {name}, line {}: expected {} columns, found {}",
                        ln + 1,
                        targets.len(),
                        fields.len()
                    );
                }
                let mut row = vec![Value::Null; table.columns.len()];
                for (i, d) in defaults.iter().enumerate() {
                    if let Some(d) = d {
                        row[i] = crate::expr::eval(d, &[], &mut cx)?;
                    }
                }
                for (f, &ci) in fields.iter().zip(&targets) {
                    if let Some(text) = f {
                        row[ci] =
                            crate::value::parse_as(text, &table.columns[ci].ty).map_err(|e| {
                                err!(
                                    INVALID_TEXT_REPRESENTATION,
                                    "COPY {name}, line {}, column {}: {}",
                                    ln + 1,
                                    table.columns[ci].name,
                                    e.message
                                )
                            })?;
                    }
                }
                writer.insert(&row, &mut cx)?;
            }
            done(&format!("COPY {}", rows.len()))
        }
        S::Analyze(a) => {
            let name = match &a.table_name {
                Some(n) => Some(plan::object_name(n)?),
                None => None,
            };
            ddl::analyze(txn, name)?;
            done("ANALYZE")
        }
        S::Explain {
            statement, analyze, ..
        } => {
            let ast::Statement::Query(q) = statement.as_ref() else {
                bail!(FEATURE_NOT_SUPPORTED, "EXPLAIN supports queries only");
            };
            let mut binder = Binder::new(txn, param_types);
            let (plan, _) = bind_plan(&mut binder, q)?;
            let mut lines = Vec::new();
            if *analyze {
                let start = std::time::Instant::now();
                let mut cx = cx!(txn);
                let rows = exec::run_plan(&plan, &mut cx, None)?;
                let elapsed = start.elapsed();
                crate::explain::explain(&plan, 0, &mut lines);
                let s = &cx.stats;
                lines.push(format!(
                    "Actual: rows={} rows_scanned={} index_entries={} row_lookups={} zones_read={} zones_skipped={}",
                    rows.len(),
                    s.rows_scanned,
                    s.index_entries,
                    s.row_lookups,
                    s.zones_read,
                    s.zones_skipped
                ));
                lines.push(format!(
                    "Execution Time: {:.3} ms",
                    elapsed.as_secs_f64() * 1000.0
                ));
                *stats = cx.stats;
            } else {
                crate::explain::explain(&plan, 0, &mut lines);
            }
            let n = lines.len();
            Ok(QueryResult {
                columns: vec![OutCol {
                    name: "QUERY PLAN".into(),
                    ty: DataType::Text,
                }],
                rows: lines.into_iter().map(|l| vec![Value::Text(l)]).collect(),
                tag: format!("EXPLAIN {n}"),
                copy_out: None,
            })
        }
        other => bail!(
            FEATURE_NOT_SUPPORTED,
            "statement not supported: {}",
            first_words(&other.to_string())
        ),
    }
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}
