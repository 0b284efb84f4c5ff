//! The embedded backend: the shell on a Strata database opened in-process.
//!
//! Statements run on one [`Connection`] (one session, so transactions span statements as on a
//! server connection); `\copy` uses [`strata_sql::Session::copy_in`] and the `copy_out` text of
//! a `COPY ... TO STDOUT` result. `\d` reads the committed catalog directly, in a read-only
//! transaction of its own, so it shows what other sessions would see (not uncommitted DDL of the
//! shell's own open transaction).
//!
//! Ctrl-C: the session carries an [`Interrupt`]; the shell's SIGINT thread cancels it, and the
//! running statement fails with 57014 at its next storage access (the transaction then rolls
//! back, or fails, as after any error).

use std::io::{Read, Write};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use strata::{Connection, Database, QueryResult};
use strata_sql::catalog::{self, IndexKind, RefAction, Sequence, Table as TableDef, View};
use strata_sql::interrupt::Interrupt;
use strata_sql::kv::{EngineStorage, Storage, Transaction};
use strata_sql::TxnStatus;

use super::backend::{
    listed_kinds, no_relation, Backend, CopyError, DbError, Executed, ResultRows, StatementOutput,
    TxnState,
};
use super::{glob, normalize_name, TableData};

/// A database opened in this process, and the shell's session on it.
pub struct Embedded {
    db: Database,
    conn: Connection,
    /// The database as given (for `\conninfo`).
    path: String,
    /// The prompt's name: the file stem, or `memory`.
    name: String,
    /// Cancels the running statement (Ctrl-C).
    interrupt: Arc<Interrupt>,
}

impl Embedded {
    /// Opens (creating if missing) the database at `path`, or one in memory for `:memory:`.
    pub fn open(path: &Path) -> Result<Embedded, String> {
        let memory = path.as_os_str() == ":memory:";
        let opened = if memory {
            Database::memory()
        } else {
            Database::open(path)
        };
        let db = opened
            .map_err(|e| format!("cannot open database \"{}\": {}", path.display(), e.message))?;
        let name = if memory {
            "memory".to_string()
        } else {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "strata".into())
        };
        let mut conn = db.connect();
        let interrupt = Interrupt::new();
        conn.session().set_interrupt(interrupt.clone());
        Ok(Embedded {
            db,
            conn,
            path: path.display().to_string(),
            name,
            interrupt,
        })
    }

    /// What cancels this session's running statement.
    pub fn interrupt(&self) -> Arc<Interrupt> {
        self.interrupt.clone()
    }

    /// Runs `f` as one statement: a Ctrl-C before it does not cancel it, one during it does.
    fn statement<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        self.interrupt.start_statement(0);
        let r = f(self);
        self.interrupt.end_statement();
        r
    }
}

fn db_error(e: strata::Error) -> DbError {
    DbError {
        code: e.code.to_string(),
        message: e.message,
        position: e.position,
        notes: Vec::new(),
    }
}

/// A query result as the shell prints it.
fn statement_output(r: QueryResult) -> StatementOutput {
    let tag = r.tag.clone();
    // COPY TO STDOUT names its columns too, but its output is the COPY data, not rows.
    let rows = (!r.columns.is_empty() && r.copy_out.is_none()).then_some(ResultRows::Values(r));
    StatementOutput { rows, tag }
}

impl Backend for Embedded {
    fn execute(&mut self, sql: &str) -> Executed {
        match self.statement(|e| e.conn.execute_batch(sql)) {
            Ok(results) => Executed {
                outputs: results.into_iter().map(statement_output).collect(),
                error: None,
            },
            Err(e) => Executed {
                outputs: Vec::new(),
                error: Some(db_error(e)),
            },
        }
    }

    fn copy_in(&mut self, copy_sql: &str, data: &mut dyn Read) -> Result<String, CopyError> {
        let mut text = String::new();
        data.read_to_string(&mut text).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                CopyError::Db(DbError::new(
                    "22021",
                    "invalid byte sequence for encoding \"UTF8\" in the COPY data",
                ))
            } else {
                CopyError::Io(e.to_string())
            }
        })?;
        let r = self
            .statement(|e| e.conn.session().copy_in(copy_sql, &text))
            .map_err(|e| CopyError::Db(db_error(e)))?;
        Ok(r.tag)
    }

    fn copy_out(&mut self, copy_sql: &str, out: &mut dyn Write) -> Result<String, CopyError> {
        let mut results = self
            .statement(|e| e.conn.execute_batch(copy_sql))
            .map_err(|e| CopyError::Db(db_error(e)))?;
        let Some(r) = results.pop() else {
            return Err(CopyError::Io("the COPY statement returned nothing".into()));
        };
        let Some(data) = r.copy_out else {
            return Err(CopyError::Io(format!(
                "not a COPY ... TO STDOUT: {}",
                r.tag
            )));
        };
        out.write_all(data.as_bytes())
            .map_err(|e| CopyError::Io(e.to_string()))?;
        Ok(r.tag)
    }

    fn txn_state(&mut self) -> TxnState {
        match self.conn.session().status() {
            TxnStatus::Idle => TxnState::Idle,
            TxnStatus::InTransaction => TxnState::InTransaction,
            TxnStatus::Failed => TxnState::Failed,
        }
    }

    fn describe(&mut self, which: &str, pattern: Option<&str>) -> Result<Vec<TableData>, String> {
        self.describe_tables(which, pattern)
    }

    fn completion_names(&mut self) -> Vec<(String, Vec<String>)> {
        let Ok(cat) = self.catalog() else {
            return Vec::new();
        };
        let mut out: Vec<(String, Vec<String>)> = cat
            .tables
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    t.columns.iter().map(|c| c.name.clone()).collect(),
                )
            })
            .collect();
        out.extend(
            cat.views
                .iter()
                .map(|v| (v.name.clone(), v.columns.clone())),
        );
        out
    }

    fn conninfo(&self) -> String {
        format!(
            "You are connected to database \"{}\" at \"{}\".",
            self.name, self.path
        )
    }

    fn prompt_name(&self) -> &str {
        &self.name
    }

    fn banner(&self) -> String {
        self.path.clone()
    }

    fn close(self: Box<Self>) {
        // End the session (an open transaction rolls back), then leave a tidy file behind.
        let Embedded { db, conn, .. } = *self;
        drop(conn);
        let _ = db.checkpoint();
    }
}

// ---------------------------------------------------------------------------------------------
// The catalog, for \d
// ---------------------------------------------------------------------------------------------

/// The committed catalog, read in a transaction of its own.
struct CatalogSnapshot {
    tables: Vec<TableDef>,
    views: Vec<View>,
    sequences: Vec<Sequence>,
}

/// Names of catalog entries under `prefix` (`seq/`, ...).
fn catalog_names(txn: &mut dyn Transaction, prefix: &str) -> strata::Result<Vec<String>> {
    let mut out = Vec::new();
    if !txn.tree_exists(catalog::CATALOG_TREE) {
        return Ok(out);
    }
    let mut start = Bound::Included(prefix.as_bytes().to_vec());
    loop {
        let batch = txn.scan(catalog::CATALOG_TREE, start, Bound::Unbounded, false, 256)?;
        for (k, _) in &batch {
            match k.strip_prefix(prefix.as_bytes()) {
                Some(name) => out.push(String::from_utf8_lossy(name).into_owned()),
                None => return Ok(out),
            }
        }
        match batch.last() {
            Some((k, _)) if batch.len() == 256 => start = Bound::Excluded(k.clone()),
            _ => return Ok(out),
        }
    }
}

fn column_list(t: &TableDef, cols: &[usize]) -> String {
    cols.iter()
        .map(|&c| t.columns.get(c).map_or("?", |c| c.name.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn kind_name(k: IndexKind) -> &'static str {
    match k {
        IndexKind::Dense => "dense",
        IndexKind::Sparse => "sparse",
    }
}

/// What `\d` finds under a name.
enum Relation<'a> {
    Table(&'a TableDef),
    View(&'a View),
    Sequence(&'a Sequence),
    /// An index of a table (None: the primary key).
    Index(&'a TableDef, Option<&'a catalog::Index>),
}

impl CatalogSnapshot {
    /// Every relation with its name, sorted by name.
    fn relations(&self) -> Vec<(String, Relation<'_>)> {
        let mut out: Vec<(String, Relation<'_>)> = Vec::new();
        for t in &self.tables {
            out.push((t.name.clone(), Relation::Table(t)));
            if !t.primary_key.is_empty() {
                out.push((format!("{}_pkey", t.name), Relation::Index(t, None)));
            }
            for i in &t.indexes {
                out.push((i.name.clone(), Relation::Index(t, Some(i))));
            }
        }
        for v in &self.views {
            out.push((v.name.clone(), Relation::View(v)));
        }
        for s in &self.sequences {
            out.push((s.name.clone(), Relation::Sequence(s)));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn table(&self, name: &str) -> Option<&TableDef> {
        self.tables.iter().find(|t| t.name == name)
    }
}

fn type_of(rel: &Relation<'_>) -> &'static str {
    match rel {
        Relation::Table(_) => "table",
        Relation::View(_) => "view",
        Relation::Sequence(_) => "sequence",
        Relation::Index(..) => "index",
    }
}

impl Embedded {
    /// Reads the committed catalog in a read-only transaction of its own.
    fn catalog(&self) -> strata::Result<CatalogSnapshot> {
        let storage = EngineStorage(Arc::new(self.db.engine().clone()));
        let mut txn = storage.begin(strata::Isolation::ReadCommitted)?;
        let read = |txn: &mut dyn Transaction| -> strata::Result<CatalogSnapshot> {
            let tables = catalog::tables(txn)?;
            let views = catalog::views(txn)?;
            let mut sequences = Vec::new();
            for name in catalog_names(txn, "seq/")? {
                if let Some(s) = catalog::sequence(txn, &name)? {
                    sequences.push(s);
                }
            }
            Ok(CatalogSnapshot {
                tables,
                views,
                sequences,
            })
        };
        let r = read(txn.as_mut());
        let _ = txn.rollback();
        r
    }

    /// `\d`, `\dt`, `\di`, `\dv`, `\ds`, with an optional name or pattern.
    fn describe_tables(
        &mut self,
        which: &str,
        arg: Option<&str>,
    ) -> Result<Vec<TableData>, String> {
        let cat = self
            .catalog()
            .map_err(|e| format!("ERROR:  {} (SQLSTATE {})", e.message, e.code))?;
        let pattern = arg.map(normalize_name);
        let rels = cat.relations();
        let matching: Vec<&(String, Relation<'_>)> = rels
            .iter()
            .filter(|(n, _)| pattern.as_ref().is_none_or(|p| glob(p, n)))
            .collect();
        if which == "d" && pattern.is_some() {
            // Describe each relation the name or pattern matches.
            if matching.is_empty() {
                return Err(no_relation(Some(arg.unwrap_or_default())));
            }
            // Several (a pattern): each is printed in turn, as psql does.
            return Ok(matching
                .iter()
                .map(|(_, rel)| self.describe_one(&cat, rel))
                .collect());
        }
        let kinds = listed_kinds(which);
        let listed: Vec<&(String, Relation<'_>)> = matching
            .into_iter()
            .filter(|(_, r)| kinds.contains(&type_of(r)))
            .collect();
        if listed.is_empty() {
            return Err(no_relation(arg));
        }
        let t = if which == "di" {
            let rows = listed
                .iter()
                .map(|(name, rel)| {
                    let (table, kind, cols) = match rel {
                        Relation::Index(t, None) => (
                            t.name.clone(),
                            "primary key".to_string(),
                            column_list(t, &t.primary_key),
                        ),
                        Relation::Index(t, Some(i)) => (
                            t.name.clone(),
                            format!(
                                "{}{}",
                                if i.unique { "unique " } else { "" },
                                kind_name(i.kind)
                            ),
                            column_list(t, &i.columns),
                        ),
                        _ => (String::new(), String::new(), String::new()),
                    };
                    vec![
                        "public".into(),
                        name.clone(),
                        "index".into(),
                        table,
                        kind,
                        cols,
                    ]
                })
                .collect();
            TableData::text(
                "List of relations",
                &["Schema", "Name", "Type", "Table", "Kind", "Columns"],
                rows,
            )
        } else {
            let rows = listed
                .iter()
                .map(|(name, rel)| vec!["public".into(), name.clone(), type_of(rel).into()])
                .collect();
            TableData::text("List of relations", &["Schema", "Name", "Type"], rows)
        };
        Ok(vec![t])
    }

    /// `\d NAME` for one relation.
    fn describe_one(&mut self, cat: &CatalogSnapshot, rel: &Relation<'_>) -> TableData {
        match rel {
            Relation::Table(t) => describe_table(cat, t),
            Relation::View(v) => {
                let types = self.view_types(v);
                let names: Vec<String> = match &types {
                    Some(cols) => cols.iter().map(|(n, _)| n.clone()).collect(),
                    None => v.columns.clone(),
                };
                let rows = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        let ty = types
                            .as_ref()
                            .and_then(|c| c.get(i))
                            .map(|(_, t)| t.clone())
                            .unwrap_or_default();
                        vec![n.clone(), ty]
                    })
                    .collect();
                let mut t = TableData::text(
                    &format!("View \"public.{}\"", v.name),
                    &["Column", "Type"],
                    rows,
                );
                let mut query = v.query.trim_end().to_string();
                if !query.ends_with(';') {
                    query.push(';');
                }
                let mut footers = vec!["View definition:".to_string()];
                footers.extend(query.lines().map(|l| format!(" {l}")));
                t.footers = Some(footers);
                t
            }
            Relation::Sequence(s) => {
                let mut t = TableData::text(
                    &format!("Sequence \"public.{}\"", s.name),
                    &[
                        "Type",
                        "Start",
                        "Minimum",
                        "Maximum",
                        "Increment",
                        "Cycles?",
                    ],
                    vec![vec![
                        "bigint".into(),
                        s.start.to_string(),
                        s.min.to_string(),
                        s.max.to_string(),
                        s.increment.to_string(),
                        if s.cycle { "yes" } else { "no" }.into(),
                    ]],
                );
                t.right = vec![false, true, true, true, true, false];
                t.footers = Some(match &s.owned_by {
                    Some((table, col)) => vec![format!("Owned by: public.{table}.{col}")],
                    None => vec![],
                });
                t
            }
            Relation::Index(table, index) => {
                let (name, cols, what) = match index {
                    None => (
                        format!("{}_pkey", table.name),
                        table.primary_key.clone(),
                        "primary key, dense".to_string(),
                    ),
                    Some(i) => (
                        i.name.clone(),
                        i.columns.clone(),
                        format!(
                            "{}{}",
                            if i.unique { "unique, " } else { "" },
                            kind_name(i.kind)
                        ),
                    ),
                };
                let rows = cols
                    .iter()
                    .filter_map(|&c| table.columns.get(c))
                    .map(|c| vec![c.name.clone(), c.ty.name()])
                    .collect();
                let mut t = TableData::text(
                    &format!("Index \"public.{name}\""),
                    &["Column", "Type"],
                    rows,
                );
                t.footers = Some(vec![format!("{what}, for table \"public.{}\"", table.name)]);
                t
            }
        }
    }

    /// A view's column names and types, by binding its query (None if that fails, or the
    /// session's transaction has failed).
    fn view_types(&mut self, v: &View) -> Option<Vec<(String, String)>> {
        if self.conn.session().status() == TxnStatus::Failed {
            return None;
        }
        let sql = format!("SELECT * FROM \"{}\"", v.name.replace('"', "\"\""));
        let stmt = strata_sql::parse(&sql).ok()?.pop()?;
        let (_, cols) = self.conn.session().describe(&stmt, &[]).ok()?;
        Some(cols.into_iter().map(|c| (c.name, c.ty.name())).collect())
    }
}

/// `\d TABLE`: columns, then indexes and constraints as footers.
fn describe_table(cat: &CatalogSnapshot, t: &TableDef) -> TableData {
    let rows = t
        .columns
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.ty.name(),
                if c.not_null { "not null" } else { "" }.into(),
                c.default.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut out = TableData::text(
        &format!("Table \"public.{}\"", t.name),
        &["Column", "Type", "Nullable", "Default"],
        rows,
    );
    let mut footers = Vec::new();
    let mut indexes = Vec::new();
    if !t.primary_key.is_empty() {
        indexes.push(format!(
            "    \"{}_pkey\" PRIMARY KEY, dense ({})",
            t.name,
            column_list(t, &t.primary_key)
        ));
    }
    let mut sorted: Vec<&catalog::Index> = t.indexes.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for i in sorted {
        let what = match (i.constraint, i.unique) {
            (true, _) => "UNIQUE CONSTRAINT, ",
            (false, true) => "UNIQUE, ",
            (false, false) => "",
        };
        indexes.push(format!(
            "    \"{}\" {what}{} ({})",
            i.name,
            kind_name(i.kind),
            column_list(t, &i.columns)
        ));
    }
    if !indexes.is_empty() {
        footers.push("Indexes:".to_string());
        footers.extend(indexes);
    }
    if !t.checks.is_empty() {
        footers.push("Check constraints:".to_string());
        for c in &t.checks {
            let e = c.expr.trim();
            let e = if e.starts_with('(') && e.ends_with(')') {
                e.to_string()
            } else {
                format!("({e})")
            };
            footers.push(format!("    \"{}\" CHECK {e}", c.name));
        }
    }
    let fk_text = |child: &TableDef, fk: &catalog::ForeignKey| {
        let parent_cols = match cat.table(&fk.ref_table) {
            Some(p) => column_list(p, &fk.ref_columns),
            None => "?".into(),
        };
        let action = match fk.on_delete {
            RefAction::NoAction => "",
            RefAction::Cascade => " ON DELETE CASCADE",
            RefAction::SetNull => " ON DELETE SET NULL",
        };
        format!(
            "FOREIGN KEY ({}) REFERENCES {}({parent_cols}){action}",
            column_list(child, &fk.columns),
            fk.ref_table
        )
    };
    if !t.foreign_keys.is_empty() {
        footers.push("Foreign-key constraints:".to_string());
        for fk in &t.foreign_keys {
            footers.push(format!("    \"{}\" {}", fk.name, fk_text(t, fk)));
        }
    }
    let mut referenced = Vec::new();
    for other in &cat.tables {
        for fk in other.foreign_keys.iter().filter(|f| f.ref_table == t.name) {
            referenced.push(format!(
                "    TABLE \"{}\" CONSTRAINT \"{}\" {}",
                other.name,
                fk.name,
                fk_text(other, fk)
            ));
        }
    }
    if !referenced.is_empty() {
        footers.push("Referenced by:".to_string());
        footers.extend(referenced);
    }
    out.footers = Some(footers);
    out
}
