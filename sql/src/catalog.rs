//! The catalog: tables, indexes, views and sequences, stored in the engine itself (tree
//! `__catalog`), so it survives restarts and DDL is transactional like any other write.
//!
//! Keys: `table/<name>`, `view/<name>`, `index/<name>` (value: the owning table's name),
//! `seq/<name>`, and `next_id` (the counter that names trees). Values are JSON.
//! Trees: a table's rows live in `t<id>`, a dense index in `i<id>`, a sparse index's zone map
//! in `z<id>`.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::Result;
use crate::kv::Transaction;
use crate::value::DataType;
use crate::{bail, err};

pub const CATALOG_TREE: &str = "__catalog";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: DataType,
    pub not_null: bool,
    /// The DEFAULT expression as SQL text.
    pub default: Option<String>,
    /// GENERATED ALWAYS AS IDENTITY: an INSERT may not give a value (without OVERRIDING).
    #[serde(default)]
    pub identity_always: bool,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum IndexKind {
    /// One entry per row: index columns, then the row's key.
    Dense,
    /// One zone-map entry per block of rows: min and max of the column.
    Sparse,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Index {
    pub id: u64,
    pub name: String,
    pub columns: Vec<usize>,
    pub unique: bool,
    pub kind: IndexKind,
    /// Made by a PRIMARY KEY or UNIQUE constraint rather than CREATE INDEX.
    pub constraint: bool,
    /// Sparse indexes: the most rows one zone covers (about one page of rows).
    #[serde(default)]
    pub zone_rows: u32,
}

impl Index {
    pub fn tree(&self) -> String {
        match self.kind {
            IndexKind::Dense => format!("i{}", self.id),
            IndexKind::Sparse => format!("z{}", self.id),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Check {
    pub name: String,
    /// The boolean expression as SQL text.
    pub expr: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum RefAction {
    NoAction,
    Cascade,
    SetNull,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<usize>,
    pub ref_table: String,
    pub ref_columns: Vec<usize>,
    pub on_delete: RefAction,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Table {
    pub id: u64,
    pub name: String,
    pub columns: Vec<Column>,
    /// Column positions of the primary key; empty = rows are keyed by a hidden row id.
    pub primary_key: Vec<usize>,
    pub checks: Vec<Check>,
    pub foreign_keys: Vec<ForeignKey>,
    pub indexes: Vec<Index>,
    /// Row count and per-column statistics from the last ANALYZE.
    #[serde(default)]
    pub stats: Option<TableStats>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct TableStats {
    pub rows: u64,
    /// Per column: number of distinct values (estimate).
    pub distinct: Vec<u64>,
    /// Per column: the fraction of rows that are NULL.
    pub null_frac: Vec<f64>,
    /// Per column: +1 if the column rises with the row key, -1 if it falls, 0 otherwise
    /// (the correlation that makes a sparse index useful).
    pub correlation: Vec<f64>,
}

impl Table {
    pub fn tree(&self) -> String {
        format!("t{}", self.id)
    }
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
    pub fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct View {
    pub name: String,
    /// The defining query as SQL text.
    pub query: String,
    /// Column names given in CREATE VIEW v (a, b), if any.
    pub columns: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Sequence {
    pub name: String,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub cycle: bool,
    /// The table column that owns it (SERIAL), if any.
    pub owned_by: Option<(String, String)>,
    /// Names its counter (a re-created sequence of the same name starts afresh).
    #[serde(default)]
    pub id: u64,
}

fn load<T: DeserializeOwned>(txn: &mut dyn Transaction, key: &str) -> Result<Option<T>> {
    if !txn.tree_exists(CATALOG_TREE) {
        return Ok(None);
    }
    match txn.get(CATALOG_TREE, key.as_bytes())? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| err!(DATA_CORRUPTED, "catalog entry {key:?} does not parse: {e}")),
    }
}

fn store<T: Serialize>(txn: &mut dyn Transaction, key: &str, value: &T) -> Result<()> {
    ensure_tree(txn)?;
    let bytes =
        serde_json::to_vec(value).map_err(|e| err!(INTERNAL_ERROR, "catalog encoding: {e}"))?;
    txn.put(CATALOG_TREE, key.as_bytes(), &bytes)
}

fn ensure_tree(txn: &mut dyn Transaction) -> Result<()> {
    if !txn.tree_exists(CATALOG_TREE) {
        txn.create_tree(CATALOG_TREE)?;
    }
    Ok(())
}

fn remove(txn: &mut dyn Transaction, key: &str) -> Result<()> {
    if txn.tree_exists(CATALOG_TREE) {
        txn.delete(CATALOG_TREE, key.as_bytes())?;
    }
    Ok(())
}

fn list<T: DeserializeOwned>(txn: &mut dyn Transaction, prefix: &str) -> Result<Vec<T>> {
    if !txn.tree_exists(CATALOG_TREE) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut start = std::ops::Bound::Included(prefix.as_bytes().to_vec());
    loop {
        let batch = txn.scan(CATALOG_TREE, start, std::ops::Bound::Unbounded, false, 256)?;
        let done = batch.len() < 256;
        for (k, v) in &batch {
            if !k.starts_with(prefix.as_bytes()) {
                return Ok(out);
            }
            out.push(
                serde_json::from_slice(v)
                    .map_err(|e| err!(DATA_CORRUPTED, "catalog entry does not parse: {e}"))?,
            );
        }
        match batch.last() {
            Some((k, _)) if !done => start = std::ops::Bound::Excluded(k.clone()),
            _ => return Ok(out),
        }
    }
}

thread_local! {
    /// Parsed table definitions by their stored bytes: a definition is read through the
    /// transaction every time (so MVCC decides which one is seen), but parsed only once.
    static PARSED: std::cell::RefCell<std::collections::HashMap<Vec<u8>, Table>> = Default::default();
}

pub fn table(txn: &mut dyn Transaction, name: &str) -> Result<Option<Table>> {
    if !txn.tree_exists(CATALOG_TREE) {
        return Ok(None);
    }
    let Some(bytes) = txn.get(CATALOG_TREE, format!("table/{name}").as_bytes())? else {
        return Ok(None);
    };
    if let Some(t) = PARSED.with(|c| c.borrow().get(&bytes).cloned()) {
        return Ok(Some(t));
    }
    let t: Table = serde_json::from_slice(&bytes).map_err(|e| {
        err!(
            DATA_CORRUPTED,
            "catalog entry for table {name:?} does not parse: {e}"
        )
    })?;
    PARSED.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() > 256 {
            c.clear();
        }
        c.insert(bytes, t.clone());
    });
    Ok(Some(t))
}

pub fn must_table(txn: &mut dyn Transaction, name: &str) -> Result<Table> {
    table(txn, name)?.ok_or_else(|| err!(UNDEFINED_TABLE, "relation \"{name}\" does not exist"))
}

pub fn put_table(txn: &mut dyn Transaction, t: &Table) -> Result<()> {
    store(txn, &format!("table/{}", t.name), t)
}

pub fn delete_table(txn: &mut dyn Transaction, name: &str) -> Result<()> {
    remove(txn, &format!("table/{name}"))
}

pub fn tables(txn: &mut dyn Transaction) -> Result<Vec<Table>> {
    list(txn, "table/")
}

pub fn view(txn: &mut dyn Transaction, name: &str) -> Result<Option<View>> {
    load(txn, &format!("view/{name}"))
}

pub fn put_view(txn: &mut dyn Transaction, v: &View) -> Result<()> {
    store(txn, &format!("view/{}", v.name), v)
}

pub fn delete_view(txn: &mut dyn Transaction, name: &str) -> Result<()> {
    remove(txn, &format!("view/{name}"))
}

pub fn views(txn: &mut dyn Transaction) -> Result<Vec<View>> {
    list(txn, "view/")
}

/// The table that owns index `name`.
pub fn index_owner(txn: &mut dyn Transaction, name: &str) -> Result<Option<String>> {
    load(txn, &format!("index/{name}"))
}

pub fn put_index_owner(txn: &mut dyn Transaction, index: &str, table: &str) -> Result<()> {
    store(txn, &format!("index/{index}"), &table.to_string())
}

pub fn delete_index_owner(txn: &mut dyn Transaction, index: &str) -> Result<()> {
    remove(txn, &format!("index/{index}"))
}

pub fn sequence(txn: &mut dyn Transaction, name: &str) -> Result<Option<Sequence>> {
    load(txn, &format!("seq/{name}"))
}

pub fn put_sequence(txn: &mut dyn Transaction, s: &Sequence) -> Result<()> {
    store(txn, &format!("seq/{}", s.name), s)
}

/// Every sequence (for the system catalogs).
pub fn sequences(txn: &mut dyn Transaction) -> Result<Vec<Sequence>> {
    list(txn, "seq/")
}

pub fn delete_sequence(txn: &mut dyn Transaction, name: &str) -> Result<()> {
    remove(txn, &format!("seq/{name}"))
}

/// A fresh id for naming trees.
pub fn next_id(txn: &mut dyn Transaction) -> Result<u64> {
    let id: u64 = load(txn, "next_id")?.unwrap_or(1);
    store(txn, "next_id", &(id + 1))?;
    Ok(id)
}

/// Errors if any relation (table, view, index or sequence) is called `name`.
pub fn check_name_free(txn: &mut dyn Transaction, name: &str) -> Result<()> {
    if table(txn, name)?.is_some()
        || view(txn, name)?.is_some()
        || index_owner(txn, name)?.is_some()
        || sequence(txn, name)?.is_some()
    {
        bail!(DUPLICATE_TABLE, "relation \"{name}\" already exists");
    }
    Ok(())
}
