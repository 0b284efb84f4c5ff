//! The system catalogs PostgreSQL tools read: `pg_catalog` and `information_schema`, as
//! virtual tables built from Strata's own catalog when a statement is bound, and the catalog
//! functions that go with them (`format_type`, `pg_get_indexdef`, `pg_table_is_visible`, ...).
//!
//! Enough for psql's `\d` family, pgbench's startup queries and common drivers. Each relation
//! is a snapshot of the catalog as the binding transaction sees it, materialized as literal
//! rows, so the planner and executor treat it like any VALUES list.
//!
//! Object ids: a table, index or sequence has oid 16384 + its catalog id (as in PostgreSQL,
//! user objects start at 16384); the index that backs a primary key has 1_000_000_000 + the
//! table's id; a view has 1_500_000_000 + a hash of its name. Relations that describe
//! features Strata does not have (policies, inheritance, publications, extended statistics,
//! triggers, descriptions) exist and are empty, which is the truth.
//!
//! `pg_settings` is the session's settings ([`crate::settings`]): its `setting` column is a
//! `current_setting()` call per row, read when the statement runs. Relation sizes
//! (`pg_table_size`, `pg_relation_size`, ...) are the bytes of a relation's keys and values
//! rounded up to whole 8 kB pages, counted when the statement is bound.
//!
//! Name resolution: `pg_catalog.x` and `information_schema.x` always mean the system relation;
//! an unqualified name means a user table or view first, then a `pg_catalog` relation.

use crate::catalog::{self, IndexKind, Table};
use crate::error::Result;
use crate::expr::Expr;
use crate::functions::{FnContext, ScalarImpl};
use crate::kv::Transaction;
use crate::plan::{Plan, Scope, ScopeCol};
use crate::value::{ArithOp, DataType, Value};
use crate::{bail, err};

const FIRST_USER_OID: i64 = 16384;
const PKEY_OID_BASE: i64 = 1_000_000_000;
const VIEW_OID_BASE: i64 = 1_500_000_000;
const NS_PG_CATALOG: i64 = 11;
const NS_PUBLIC: i64 = 2200;
const NS_INFORMATION_SCHEMA: i64 = 13_000;
/// `btree` in pg_am; sparse indexes are listed as `brin`, PostgreSQL's name for zone maps.
const AM_BTREE: i64 = 403;
const AM_BRIN: i64 = 3580;
const HEAP_AM: i64 = 2;
const OWNER_OID: i64 = 10;
/// pg_get_indexdef(oid, column): the lookup key is oid * this + column.
const INDEX_COLUMN_KEY: i64 = 1000;

fn table_oid(t: &Table) -> i64 {
    FIRST_USER_OID + t.id as i64
}

fn view_oid(name: &str) -> i64 {
    VIEW_OID_BASE + (crc32(name.as_bytes()) % 100_000_000) as i64
}

fn crc32(bytes: &[u8]) -> u32 {
    // FNV-1a: a stable hash without another dependency.
    let mut h: u32 = 0x811c9dc5;
    for b in bytes {
        h ^= *b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

/// One index as the catalogs show it (including the primary key's implicit index).
struct IndexInfo {
    oid: i64,
    name: String,
    table_oid: i64,
    table: String,
    columns: Vec<usize>,
    column_names: Vec<String>,
    unique: bool,
    primary: bool,
    sparse: bool,
    constraint: bool,
}

fn indexes_of(t: &Table) -> Vec<IndexInfo> {
    let mut out = Vec::new();
    if !t.primary_key.is_empty() {
        out.push(IndexInfo {
            oid: PKEY_OID_BASE + t.id as i64,
            name: format!("{}_pkey", t.name),
            table_oid: table_oid(t),
            table: t.name.clone(),
            columns: t.primary_key.clone(),
            column_names: t
                .primary_key
                .iter()
                .map(|c| t.columns[*c].name.clone())
                .collect(),
            unique: true,
            primary: true,
            sparse: false,
            constraint: true,
        });
    }
    for i in &t.indexes {
        out.push(IndexInfo {
            oid: FIRST_USER_OID + i.id as i64,
            name: i.name.clone(),
            table_oid: table_oid(t),
            table: t.name.clone(),
            columns: i.columns.clone(),
            column_names: i
                .columns
                .iter()
                .filter_map(|c| t.columns.get(*c).map(|c| c.name.clone()))
                .collect(),
            unique: i.unique,
            primary: false,
            sparse: i.kind == IndexKind::Sparse,
            constraint: i.constraint,
        });
    }
    out
}

fn quote_ident(s: &str) -> String {
    let plain = s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit());
    if plain && !s.is_empty() {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

fn index_def(i: &IndexInfo) -> String {
    format!(
        "CREATE {}INDEX {} ON public.{} USING {} ({})",
        if i.unique { "UNIQUE " } else { "" },
        quote_ident(&i.name),
        quote_ident(&i.table),
        if i.sparse { "brin" } else { "btree" },
        i.column_names
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn constraint_def(i: &IndexInfo) -> String {
    format!(
        "{} ({})",
        if i.primary { "PRIMARY KEY" } else { "UNIQUE" },
        i.column_names
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A virtual relation: columns and rows.
struct Rel {
    cols: Vec<(&'static str, DataType)>,
    rows: Vec<Vec<Value>>,
}

fn t(s: &str) -> Value {
    Value::Text(s.to_string())
}
fn i(n: i64) -> Value {
    Value::Int8(n)
}
fn b(v: bool) -> Value {
    Value::Bool(v)
}

const OID: DataType = DataType::Int8;
const TEXT: DataType = DataType::Text;
const BOOL: DataType = DataType::Bool;
const INT4: DataType = DataType::Int4;
const INT2: DataType = DataType::Int2;
const FLOAT4: DataType = DataType::Float4;

/// The builtin types pg_type lists: (oid, name, length, category).
fn builtin_types() -> Vec<(i64, &'static str, i64, &'static str)> {
    vec![
        (16, "bool", 1, "B"),
        (17, "bytea", -1, "U"),
        (19, "name", 64, "S"),
        (20, "int8", 8, "N"),
        (21, "int2", 2, "N"),
        (23, "int4", 4, "N"),
        (25, "text", -1, "S"),
        (26, "oid", 4, "N"),
        (700, "float4", 4, "N"),
        (701, "float8", 8, "N"),
        (705, "unknown", -2, "X"),
        (1042, "bpchar", -1, "S"),
        (1043, "varchar", -1, "S"),
        (1082, "date", 4, "D"),
        (1114, "timestamp", 8, "D"),
        (1184, "timestamptz", 8, "D"),
        (1186, "interval", 16, "T"),
        (1700, "numeric", -1, "N"),
    ]
}

fn type_name_of_oid(oid: i64, typmod: i64) -> Option<String> {
    let ty = match oid {
        16 => DataType::Bool,
        17 => DataType::Bytea,
        19 => return Some("name".into()),
        20 => DataType::Int8,
        21 => DataType::Int2,
        23 => DataType::Int4,
        25 => DataType::Text,
        26 => return Some("oid".into()),
        700 => DataType::Float4,
        701 => DataType::Float8,
        705 => DataType::Unknown,
        1042 => DataType::Char(if typmod > 4 { (typmod - 4) as u32 } else { 1 }),
        1043 => DataType::Varchar((typmod > 4).then(|| (typmod - 4) as u32)),
        1082 => DataType::Date,
        1114 => DataType::Timestamp,
        1184 => DataType::TimestampTz,
        1186 => DataType::Interval,
        1700 => DataType::Numeric((typmod > 4).then(|| {
            let m = typmod - 4;
            (((m >> 16) & 0xffff) as u32, (m & 0xffff) as u32)
        })),
        _ => return None,
    };
    Some(ty.name())
}

fn typmod_of(ty: &DataType) -> i64 {
    match ty {
        DataType::Varchar(Some(n)) | DataType::Char(n) => *n as i64 + 4,
        DataType::Numeric(Some((p, s))) => (((*p as i64) << 16) | *s as i64) + 4,
        _ => -1,
    }
}

/// A column type's storage strategy as pg_attribute.attstorage shows it: plain for
/// fixed-length types, main for numeric, extended for the other variable-length ones.
fn storage_of(ty: &DataType) -> &'static str {
    match ty {
        DataType::Text | DataType::Varchar(_) | DataType::Char(_) | DataType::Bytea => "x",
        DataType::Numeric(_) => "m",
        _ => "p",
    }
}

/// System type names used in casts (`x::pg_catalog.text`, `oid::regclass`): the Strata type
/// that carries them. Object-identifier types are carried as their oid number.
pub fn custom_type(name: &str) -> Option<DataType> {
    Some(match name {
        "text" | "name" | "char" | "varchar" | "bpchar" => DataType::Text,
        "oid" | "regclass" | "regtype" | "regnamespace" | "regproc" | "regprocedure"
        | "regrole" | "xid" => DataType::Int8,
        "bool" | "boolean" => DataType::Bool,
        "int" | "integer" => DataType::Int4,
        "smallint" => DataType::Int2,
        "bigint" => DataType::Int8,
        "numeric" => DataType::Numeric(None),
        "date" => DataType::Date,
        "timestamp" => DataType::Timestamp,
        "interval" => DataType::Interval,
        "bytea" => DataType::Bytea,
        _ => return None,
    })
}

/// The names this module answers for, unqualified.
const PG_CATALOG: &[&str] = &[
    "pg_namespace",
    "pg_class",
    "pg_index",
    "pg_am",
    "pg_attribute",
    "pg_attrdef",
    "pg_type",
    "pg_database",
    "pg_roles",
    "pg_user",
    "pg_authid",
    "pg_tables",
    "pg_views",
    "pg_indexes",
    "pg_constraint",
    "pg_description",
    "pg_inherits",
    "pg_policy",
    "pg_trigger",
    "pg_statistic_ext",
    "pg_publication",
    "pg_publication_namespace",
    "pg_publication_rel",
    "pg_collation",
    "pg_sequence",
    "pg_partitioned_table",
    "pg_stat_activity",
    "pg_settings",
    "pg_auth_members",
    "pg_rewrite",
];
const INFORMATION_SCHEMA: &[&str] = &["tables", "columns", "schemata"];

/// Binds a system relation, if `schema.name` names one (see the module doc for the rules).
pub fn bind_relation(
    txn: &mut dyn Transaction,
    schema: Option<&str>,
    name: &str,
    alias: Option<&str>,
    col_aliases: &[String],
) -> Result<Option<(Plan, Scope)>> {
    let system = match schema {
        Some("pg_catalog") => {
            if !PG_CATALOG.contains(&name) {
                bail!(
                    UNDEFINED_TABLE,
                    "relation \"pg_catalog.{name}\" does not exist"
                );
            }
            true
        }
        Some("information_schema") => {
            if !INFORMATION_SCHEMA.contains(&name) {
                bail!(
                    UNDEFINED_TABLE,
                    "relation \"information_schema.{name}\" does not exist"
                );
            }
            false
        }
        Some(_) => return Ok(None),
        None => {
            if !PG_CATALOG.contains(&name)
                || catalog::table(txn, name)?.is_some()
                || catalog::view(txn, name)?.is_some()
            {
                return Ok(None);
            }
            true
        }
    };
    let visible = alias.unwrap_or(name);
    if system && name == "pg_settings" {
        let (cols, rows) = pg_settings();
        let scope = relation_scope(&cols, visible, col_aliases)?;
        return Ok(Some((Plan::Values { rows }, scope)));
    }
    let rel = if system {
        pg_catalog(txn, name)?
    } else {
        information_schema(txn, name)?
    };
    let scope = relation_scope(&rel.cols, visible, col_aliases)?;
    if rel.rows.is_empty() {
        // No rows, but the relation's width must show (the optimizer reads it off the first
        // row): one row of NULLs, filtered out.
        let nulls = vec![Expr::Literal(Value::Null); rel.cols.len()];
        let plan = Plan::Filter {
            input: Box::new(Plan::Values { rows: vec![nulls] }),
            predicate: Expr::Literal(Value::Bool(false)),
        };
        return Ok(Some((plan, scope)));
    }
    let rows = rel
        .rows
        .into_iter()
        .map(|r| r.into_iter().map(Expr::Literal).collect())
        .collect();
    Ok(Some((Plan::Values { rows }, scope)))
}

/// The scope of a system relation seen as `visible`, its columns renamed by `col_aliases`
/// (42P10 when there are more aliases than columns, as PostgreSQL).
fn relation_scope(
    cols: &[(&'static str, DataType)],
    visible: &str,
    col_aliases: &[String],
) -> Result<Scope> {
    if col_aliases.len() > cols.len() {
        bail!(
            INVALID_COLUMN_REFERENCE,
            "table \"{visible}\" has {} columns available but {} columns specified",
            cols.len(),
            col_aliases.len()
        );
    }
    Ok(Scope {
        cols: cols
            .iter()
            .enumerate()
            .map(|(n, (c, ty))| ScopeCol {
                table: Some(visible.to_string()),
                name: col_aliases.get(n).cloned().unwrap_or_else(|| c.to_string()),
                ty: ty.clone(),
                hidden: false,
            })
            .collect(),
    })
}

/// `pg_settings`: one row per known parameter; `setting` and `source` are read from the
/// session when the statement runs.
#[allow(clippy::type_complexity)]
fn pg_settings() -> (Vec<(&'static str, DataType)>, Vec<Vec<Expr>>) {
    use crate::expr::SeqOp;
    let cols = vec![
        ("name", TEXT),
        ("setting", TEXT),
        ("unit", TEXT),
        ("category", TEXT),
        ("short_desc", TEXT),
        ("extra_desc", TEXT),
        ("context", TEXT),
        ("vartype", TEXT),
        ("source", TEXT),
        ("min_val", TEXT),
        ("max_val", TEXT),
        ("enumvals", TEXT),
        ("boot_val", TEXT),
        ("reset_val", TEXT),
        ("sourcefile", TEXT),
        ("sourceline", INT4),
        ("pending_restart", BOOL),
    ];
    let lit = |v: Value| Expr::Literal(v);
    let opt = |v: Option<&str>| lit(v.map_or(Value::Null, t));
    let rows = crate::settings::SETTINGS
        .iter()
        .map(|s| {
            let current = || {
                let shown = Expr::Sequence(
                    SeqOp::CurrentSetting,
                    String::new(),
                    vec![lit(t(s.name)), lit(b(true))],
                );
                func(
                    "setting_in_base_unit",
                    f_setting_in_base_unit,
                    DataType::Text,
                    vec![lit(t(s.name)), shown],
                )
                .0
            };
            let enumvals = if s.enumvals.is_empty() {
                Value::Null
            } else {
                t(&format!("{{{}}}", s.enumvals.join(",")))
            };
            vec![
                lit(t(s.name)),
                current(),
                opt(s.unit),
                lit(t(s.category)),
                lit(t(s.short_desc)),
                lit(Value::Null),
                lit(t(s.context)),
                lit(t(s.vartype)),
                Expr::Case {
                    operand: Some(Box::new(current())),
                    whens: vec![(lit(t(s.boot_val)), lit(t("default")))],
                    otherwise: Some(Box::new(lit(t("session")))),
                },
                opt(s.min_val),
                opt(s.max_val),
                lit(enumvals),
                lit(t(s.boot_val)),
                lit(t(s.boot_val)),
                lit(Value::Null),
                lit(Value::Null),
                lit(b(false)),
            ]
        })
        .collect();
    (cols, rows)
}

fn f_setting_in_base_unit(a: &[Value], _: &FnContext) -> Result<Value> {
    match (a.first(), a.get(1)) {
        (Some(Value::Text(name)), Some(Value::Text(shown))) => {
            Ok(Value::Text(crate::settings::in_base_unit(name, shown)))
        }
        _ => Ok(Value::Null),
    }
}

/// Bytes a relation takes, as the size functions report it: its entries' keys and values,
/// rounded up to whole 8 kB pages. Keyed by oid: tables, their primary keys (the key bytes of
/// the table) and secondary indexes.
fn relation_sizes(txn: &mut dyn Transaction) -> Result<Vec<(i64, i64)>> {
    const PAGE: i64 = 8192;
    let pages = |bytes: i64| (bytes + PAGE - 1) / PAGE * PAGE;
    let mut out = Vec::new();
    for table in catalog::tables(txn)? {
        let (mut keys, mut values) = (0i64, 0i64);
        if txn.tree_exists(&table.tree()) {
            crate::kv::for_each_entry(txn, &table.tree(), &mut |_, k, v| {
                keys += k.len() as i64;
                values += v.len() as i64;
                Ok(())
            })?;
        }
        out.push((table_oid(&table), pages(keys + values)));
        if !table.primary_key.is_empty() {
            out.push((PKEY_OID_BASE + table.id as i64, pages(keys)));
        }
        for ix in &table.indexes {
            let mut bytes = 0i64;
            if txn.tree_exists(&ix.tree()) {
                crate::kv::for_each_entry(txn, &ix.tree(), &mut |_, k, v| {
                    bytes += (k.len() + v.len()) as i64;
                    Ok(())
                })?;
            }
            out.push((FIRST_USER_OID + ix.id as i64, pages(bytes)));
        }
    }
    Ok(out)
}

/// `pg_size_pretty(bigint)`: bytes, kB, MB, GB, TB or PB, rounded half away from zero, as
/// PostgreSQL 15 writes them (a unit is used from 10240 of the one below).
pub fn size_pretty(size: i64) -> String {
    const LIMIT: i64 = 10 * 1024;
    const LIMIT2: i64 = LIMIT * 2 - 1;
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    if size.abs() < LIMIT {
        return format!("{size} bytes");
    }
    // One extra bit kept for rounding.
    let mut v = size >> 9;
    for unit in ["kB", "MB", "GB", "TB"] {
        if v.abs() < LIMIT2 {
            return format!("{} {unit}", half_rounded(v));
        }
        v >>= 10;
    }
    format!("{} PB", half_rounded(v))
}

fn f_size_pretty(a: &[Value], _: &FnContext) -> Result<Value> {
    match a.first() {
        Some(v) => match v.as_i64() {
            Some(n) => Ok(Value::Text(size_pretty(n))),
            None => Ok(Value::Null),
        },
        None => Ok(Value::Null),
    }
}

/// The oid of the relation `name` names (`'t'::regclass`, `'public.t'`): a table, view,
/// index or system relation. 42P01 when there is none.
pub fn regclass_oid(txn: &mut dyn Transaction, name: &str) -> Result<i64> {
    let bare = name.trim();
    let (schema, rel) = match bare.rsplit_once('.') {
        Some((s, r)) => (Some(s.trim_matches('"')), r),
        None => (None, bare),
    };
    let rel = if rel.starts_with('"') {
        rel.trim_matches('"').to_string()
    } else {
        rel.to_lowercase()
    };
    if !matches!(schema, Some("pg_catalog") | Some("information_schema")) {
        if let Some(table) = catalog::table(txn, &rel)? {
            return Ok(table_oid(&table));
        }
        if catalog::view(txn, &rel)?.is_some() {
            return Ok(view_oid(&rel));
        }
        let indexes: Vec<IndexInfo> = catalog::tables(txn)?.iter().flat_map(indexes_of).collect();
        if let Some(ix) = indexes.iter().find(|ix| ix.name == rel) {
            return Ok(ix.oid);
        }
    }
    if schema != Some("public") && schema != Some("information_schema") {
        let class = pg_catalog(txn, "pg_class")?;
        if let Some(row) = class
            .rows
            .iter()
            .find(|r| matches!(&r[1], Value::Text(n) if *n == rel))
        {
            if let Value::Int8(oid) = row[0] {
                return Ok(oid);
            }
        }
    }
    bail!(UNDEFINED_TABLE, "relation \"{bare}\" does not exist")
}

fn namespaces() -> Vec<(i64, &'static str)> {
    vec![
        (NS_PG_CATALOG, "pg_catalog"),
        (NS_PUBLIC, "public"),
        (NS_INFORMATION_SCHEMA, "information_schema"),
    ]
}

fn pg_catalog(txn: &mut dyn Transaction, name: &str) -> Result<Rel> {
    let tables = catalog::tables(txn)?;
    Ok(match name {
        "pg_namespace" => Rel {
            cols: vec![
                ("oid", OID),
                ("nspname", TEXT),
                ("nspowner", OID),
                ("nspacl", TEXT),
            ],
            rows: namespaces()
                .into_iter()
                .map(|(o, n)| vec![i(o), t(n), i(OWNER_OID), Value::Null])
                .collect(),
        },
        "pg_class" => {
            let cols = vec![
                ("oid", OID),
                ("relname", TEXT),
                ("relnamespace", OID),
                ("reltype", OID),
                ("reloftype", OID),
                ("relowner", OID),
                ("relam", OID),
                ("relfilenode", OID),
                ("reltablespace", OID),
                ("relpages", INT4),
                ("reltuples", FLOAT4),
                ("relallvisible", INT4),
                ("reltoastrelid", OID),
                ("relhasindex", BOOL),
                ("relisshared", BOOL),
                ("relpersistence", TEXT),
                ("relkind", TEXT),
                ("relnatts", INT2),
                ("relchecks", INT2),
                ("relhasrules", BOOL),
                ("relhastriggers", BOOL),
                ("relhassubclass", BOOL),
                ("relrowsecurity", BOOL),
                ("relforcerowsecurity", BOOL),
                ("relispopulated", BOOL),
                ("relreplident", TEXT),
                ("relispartition", BOOL),
                ("reloptions", TEXT),
                ("relacl", TEXT),
                ("relpartbound", TEXT),
            ];
            let row = |oid: i64,
                       name: &str,
                       am: i64,
                       kind: &str,
                       natts: i64,
                       checks: i64,
                       rows: f64,
                       has_index: bool| {
                vec![
                    i(oid),
                    t(name),
                    i(NS_PUBLIC),
                    i(0),
                    i(0),
                    i(OWNER_OID),
                    i(am),
                    i(oid),
                    i(0),
                    Value::Int4(0),
                    Value::Float4(rows as f32),
                    Value::Int4(0),
                    i(0),
                    b(has_index),
                    b(false),
                    t("p"),
                    t(kind),
                    Value::Int2(natts as i16),
                    Value::Int2(checks as i16),
                    b(false),
                    b(false),
                    b(false),
                    b(false),
                    b(false),
                    b(true),
                    t("d"),
                    b(false),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                ]
            };
            let mut rows = Vec::new();
            for tb in &tables {
                let idx = indexes_of(tb);
                let n = tb.stats.as_ref().map(|s| s.rows as f64).unwrap_or(-1.0);
                rows.push(row(
                    table_oid(tb),
                    &tb.name,
                    HEAP_AM,
                    "r",
                    tb.columns.len() as i64,
                    tb.checks.len() as i64,
                    n,
                    !idx.is_empty(),
                ));
                for ix in idx {
                    rows.push(row(
                        ix.oid,
                        &ix.name,
                        if ix.sparse { AM_BRIN } else { AM_BTREE },
                        "i",
                        ix.columns.len() as i64,
                        0,
                        0.0,
                        false,
                    ));
                }
            }
            for v in catalog::views(txn)? {
                rows.push(row(view_oid(&v.name), &v.name, 0, "v", 0, 0, 0.0, false));
            }
            for s in catalog_sequences(txn)? {
                rows.push(row(
                    FIRST_USER_OID + s.id as i64,
                    &s.name,
                    0,
                    "S",
                    3,
                    0,
                    1.0,
                    false,
                ));
            }
            Rel { cols, rows }
        }
        "pg_index" => {
            let cols = vec![
                ("indexrelid", OID),
                ("indrelid", OID),
                ("indnatts", INT2),
                ("indnkeyatts", INT2),
                ("indisunique", BOOL),
                ("indnullsnotdistinct", BOOL),
                ("indisprimary", BOOL),
                ("indisexclusion", BOOL),
                ("indimmediate", BOOL),
                ("indisclustered", BOOL),
                ("indisvalid", BOOL),
                ("indcheckxmin", BOOL),
                ("indisready", BOOL),
                ("indislive", BOOL),
                ("indisreplident", BOOL),
                ("indkey", TEXT),
                ("indexprs", TEXT),
                ("indpred", TEXT),
            ];
            let mut rows = Vec::new();
            for tb in &tables {
                for ix in indexes_of(tb) {
                    let n = ix.columns.len() as i16;
                    rows.push(vec![
                        i(ix.oid),
                        i(ix.table_oid),
                        Value::Int2(n),
                        Value::Int2(n),
                        b(ix.unique),
                        b(false),
                        b(ix.primary),
                        b(false),
                        b(true),
                        // The table is clustered by its primary key.
                        b(ix.primary),
                        b(true),
                        b(false),
                        b(true),
                        b(true),
                        b(false),
                        t(&ix
                            .columns
                            .iter()
                            .map(|c| (c + 1).to_string())
                            .collect::<Vec<_>>()
                            .join(" ")),
                        Value::Null,
                        Value::Null,
                    ]);
                }
            }
            Rel { cols, rows }
        }
        "pg_am" => Rel {
            cols: vec![("oid", OID), ("amname", TEXT), ("amtype", TEXT)],
            rows: vec![
                vec![i(HEAP_AM), t("heap"), t("t")],
                vec![i(AM_BTREE), t("btree"), t("i")],
                vec![i(AM_BRIN), t("brin"), t("i")],
            ],
        },
        "pg_attribute" => {
            let cols = vec![
                ("attrelid", OID),
                ("attname", TEXT),
                ("atttypid", OID),
                ("attlen", INT2),
                ("attnum", INT2),
                ("atttypmod", INT4),
                ("attnotnull", BOOL),
                ("atthasdef", BOOL),
                ("attidentity", TEXT),
                ("attgenerated", TEXT),
                ("attisdropped", BOOL),
                ("attcollation", OID),
                ("attstorage", TEXT),
                ("attcompression", TEXT),
                ("attstattarget", INT2),
            ];
            let mut rows = Vec::new();
            for tb in &tables {
                for (n, c) in tb.columns.iter().enumerate() {
                    let pk = tb.primary_key.contains(&n);
                    rows.push(vec![
                        i(table_oid(tb)),
                        t(&c.name),
                        i(c.ty.oid() as i64),
                        Value::Int2(-1),
                        Value::Int2(n as i16 + 1),
                        Value::Int4(typmod_of(&c.ty) as i32),
                        b(c.not_null || pk),
                        b(c.default.is_some()),
                        t(if c.identity_always { "a" } else { "" }),
                        t(""),
                        b(false),
                        i(0),
                        t(storage_of(&c.ty)),
                        t(""),
                        Value::Int2(-1),
                    ]);
                }
                for ix in indexes_of(tb) {
                    for (n, c) in ix.columns.iter().enumerate() {
                        if let Some(col) = tb.columns.get(*c) {
                            rows.push(vec![
                                i(ix.oid),
                                t(&col.name),
                                i(col.ty.oid() as i64),
                                Value::Int2(-1),
                                Value::Int2(n as i16 + 1),
                                Value::Int4(typmod_of(&col.ty) as i32),
                                b(false),
                                b(false),
                                t(""),
                                t(""),
                                b(false),
                                i(0),
                                t(storage_of(&col.ty)),
                                t(""),
                                Value::Int2(-1),
                            ]);
                        }
                    }
                }
            }
            Rel { cols, rows }
        }
        "pg_attrdef" => {
            let cols = vec![
                ("oid", OID),
                ("adrelid", OID),
                ("adnum", INT2),
                ("adbin", TEXT),
            ];
            let mut rows = Vec::new();
            for tb in &tables {
                for (n, c) in tb.columns.iter().enumerate() {
                    if let Some(d) = &c.default {
                        rows.push(vec![
                            i(table_oid(tb) * 1000 + n as i64),
                            i(table_oid(tb)),
                            Value::Int2(n as i16 + 1),
                            t(d),
                        ]);
                    }
                }
            }
            Rel { cols, rows }
        }
        "pg_type" => Rel {
            cols: vec![
                ("oid", OID),
                ("typname", TEXT),
                ("typnamespace", OID),
                ("typlen", INT2),
                ("typtype", TEXT),
                ("typcategory", TEXT),
                ("typelem", OID),
                ("typbasetype", OID),
                ("typrelid", OID),
                ("typcollation", OID),
                ("typnotnull", BOOL),
            ],
            rows: builtin_types()
                .into_iter()
                .map(|(o, n, len, cat)| {
                    vec![
                        i(o),
                        t(n),
                        i(NS_PG_CATALOG),
                        Value::Int2(len as i16),
                        t("b"),
                        t(cat),
                        i(0),
                        i(0),
                        i(0),
                        i(0),
                        b(false),
                    ]
                })
                .collect(),
        },
        "pg_database" => Rel {
            cols: vec![
                ("oid", OID),
                ("datname", TEXT),
                ("datdba", OID),
                ("encoding", INT4),
                ("datcollate", TEXT),
                ("datctype", TEXT),
                ("datistemplate", BOOL),
                ("datallowconn", BOOL),
                ("datacl", TEXT),
                ("datlocprovider", TEXT),
                ("daticulocale", TEXT),
                ("datconnlimit", INT4),
                ("dattablespace", OID),
            ],
            rows: vec![vec![
                i(5),
                t("postgres"),
                i(OWNER_OID),
                Value::Int4(6),
                t("C"),
                t("C"),
                b(false),
                b(true),
                Value::Null,
                t("c"),
                Value::Null,
                Value::Int4(-1),
                i(1663),
            ]],
        },
        "pg_roles" | "pg_user" | "pg_authid" => Rel {
            cols: vec![
                ("oid", OID),
                ("rolname", TEXT),
                ("usename", TEXT),
                ("rolsuper", BOOL),
                ("usesuper", BOOL),
                ("rolcanlogin", BOOL),
                ("rolcreatedb", BOOL),
                ("rolcreaterole", BOOL),
                ("rolinherit", BOOL),
                ("rolreplication", BOOL),
                ("rolbypassrls", BOOL),
                ("rolconnlimit", INT4),
                ("rolvaliduntil", TEXT),
            ],
            rows: vec![vec![
                i(OWNER_OID),
                t("postgres"),
                t("postgres"),
                b(true),
                b(true),
                b(true),
                b(true),
                b(true),
                b(true),
                b(true),
                b(true),
                Value::Int4(-1),
                Value::Null,
            ]],
        },
        "pg_tables" => Rel {
            cols: vec![
                ("schemaname", TEXT),
                ("tablename", TEXT),
                ("tableowner", TEXT),
                ("tablespace", TEXT),
                ("hasindexes", BOOL),
                ("hasrules", BOOL),
                ("hastriggers", BOOL),
                ("rowsecurity", BOOL),
            ],
            rows: tables
                .iter()
                .map(|tb| {
                    vec![
                        t("public"),
                        t(&tb.name),
                        t("postgres"),
                        Value::Null,
                        b(!indexes_of(tb).is_empty()),
                        b(false),
                        b(false),
                        b(false),
                    ]
                })
                .collect(),
        },
        "pg_views" => Rel {
            cols: vec![
                ("schemaname", TEXT),
                ("viewname", TEXT),
                ("viewowner", TEXT),
                ("definition", TEXT),
            ],
            rows: catalog::views(txn)?
                .into_iter()
                .map(|v| vec![t("public"), t(&v.name), t("postgres"), t(&v.query)])
                .collect(),
        },
        "pg_indexes" => Rel {
            cols: vec![
                ("schemaname", TEXT),
                ("tablename", TEXT),
                ("indexname", TEXT),
                ("tablespace", TEXT),
                ("indexdef", TEXT),
            ],
            rows: tables
                .iter()
                .flat_map(indexes_of)
                .map(|ix| {
                    vec![
                        t("public"),
                        t(&ix.table),
                        t(&ix.name),
                        Value::Null,
                        t(&index_def(&ix)),
                    ]
                })
                .collect(),
        },
        "pg_constraint" => {
            let cols = vec![
                ("oid", OID),
                ("conname", TEXT),
                ("connamespace", OID),
                ("contype", TEXT),
                ("condeferrable", BOOL),
                ("condeferred", BOOL),
                ("convalidated", BOOL),
                ("conrelid", OID),
                ("conindid", OID),
                ("confrelid", OID),
                ("conparentid", OID),
                ("conislocal", BOOL),
                ("condef", TEXT),
            ];
            let mut rows = Vec::new();
            let oid_of = |name: &str| tables.iter().find(|x| x.name == name).map(table_oid);
            for tb in &tables {
                let rel = table_oid(tb);
                let mut con =
                    |oid: i64, name: &str, kind: &str, index: i64, fref: i64, def: String| {
                        rows.push(vec![
                            i(oid),
                            t(name),
                            i(NS_PUBLIC),
                            t(kind),
                            b(false),
                            b(false),
                            b(true),
                            i(rel),
                            i(index),
                            i(fref),
                            i(0),
                            b(true),
                            t(&def),
                        ]);
                    };
                for ix in indexes_of(tb).iter().filter(|x| x.constraint) {
                    con(
                        ix.oid + 1,
                        &ix.name,
                        if ix.primary { "p" } else { "u" },
                        ix.oid,
                        0,
                        constraint_def(ix),
                    );
                }
                for (n, c) in tb.checks.iter().enumerate() {
                    con(
                        rel * 100 + n as i64,
                        &c.name,
                        "c",
                        0,
                        0,
                        format!("CHECK ({})", c.expr),
                    );
                }
                for (n, fk) in tb.foreign_keys.iter().enumerate() {
                    let names = |cols: &[usize], tab: &Table| {
                        cols.iter()
                            .filter_map(|c| tab.columns.get(*c).map(|c| quote_ident(&c.name)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    let target = tables.iter().find(|x| x.name == fk.ref_table);
                    let def = format!(
                        "FOREIGN KEY ({}) REFERENCES {}({})",
                        names(&fk.columns, tb),
                        quote_ident(&fk.ref_table),
                        target
                            .map(|x| names(&fk.ref_columns, x))
                            .unwrap_or_default()
                    );
                    con(
                        rel * 100 + 50 + n as i64,
                        &fk.name,
                        "f",
                        0,
                        oid_of(&fk.ref_table).unwrap_or(0),
                        def,
                    );
                }
            }
            Rel { cols, rows }
        }
        "pg_description" => Rel {
            cols: vec![
                ("objoid", OID),
                ("classoid", OID),
                ("objsubid", INT4),
                ("description", TEXT),
            ],
            rows: vec![],
        },
        "pg_rewrite" => Rel {
            cols: vec![
                ("oid", OID),
                ("rulename", TEXT),
                ("ev_class", OID),
                ("ev_type", TEXT),
                ("is_instead", BOOL),
            ],
            rows: vec![],
        },
        "pg_auth_members" => Rel {
            cols: vec![
                ("roleid", OID),
                ("member", OID),
                ("grantor", OID),
                ("admin_option", BOOL),
            ],
            rows: vec![],
        },
        "pg_inherits" => Rel {
            cols: vec![
                ("inhrelid", OID),
                ("inhparent", OID),
                ("inhseqno", INT4),
                ("inhdetachpending", BOOL),
            ],
            rows: vec![],
        },
        "pg_policy" => Rel {
            cols: vec![
                ("oid", OID),
                ("polname", TEXT),
                ("polrelid", OID),
                ("polcmd", TEXT),
                ("polpermissive", BOOL),
                ("polroles", TEXT),
                ("polqual", TEXT),
                ("polwithcheck", TEXT),
            ],
            rows: vec![],
        },
        "pg_trigger" => Rel {
            cols: vec![
                ("oid", OID),
                ("tgrelid", OID),
                ("tgname", TEXT),
                ("tgisinternal", BOOL),
                ("tgenabled", TEXT),
                ("tgparentid", OID),
            ],
            rows: vec![],
        },
        "pg_statistic_ext" => Rel {
            cols: vec![
                ("oid", OID),
                ("stxrelid", OID),
                ("stxname", TEXT),
                ("stxnamespace", OID),
                ("stxkind", TEXT),
                ("stxstattarget", INT4),
            ],
            rows: vec![],
        },
        "pg_publication" => Rel {
            cols: vec![("oid", OID), ("pubname", TEXT), ("puballtables", BOOL)],
            rows: vec![],
        },
        "pg_publication_namespace" => Rel {
            cols: vec![("oid", OID), ("pnpubid", OID), ("pnnspid", OID)],
            rows: vec![],
        },
        "pg_publication_rel" => Rel {
            cols: vec![
                ("oid", OID),
                ("prpubid", OID),
                ("prrelid", OID),
                ("prqual", TEXT),
                ("prattrs", TEXT),
            ],
            rows: vec![],
        },
        "pg_collation" => Rel {
            cols: vec![("oid", OID), ("collname", TEXT), ("collnamespace", OID)],
            rows: vec![],
        },
        "pg_partitioned_table" => Rel {
            cols: vec![("partrelid", OID), ("partstrat", TEXT), ("partnatts", INT2)],
            rows: vec![],
        },
        "pg_sequence" => Rel {
            cols: vec![
                ("seqrelid", OID),
                ("seqtypid", OID),
                ("seqstart", OID),
                ("seqincrement", OID),
                ("seqmax", OID),
                ("seqmin", OID),
                ("seqcycle", BOOL),
            ],
            rows: catalog_sequences(txn)?
                .into_iter()
                .map(|s| {
                    vec![
                        i(FIRST_USER_OID + s.id as i64),
                        i(20),
                        i(s.start),
                        i(s.increment),
                        i(s.max),
                        i(s.min),
                        b(s.cycle),
                    ]
                })
                .collect(),
        },
        "pg_stat_activity" => Rel {
            cols: vec![
                ("datname", TEXT),
                ("pid", INT4),
                ("usename", TEXT),
                ("state", TEXT),
                ("query", TEXT),
            ],
            rows: vec![],
        },
        other => bail!(
            UNDEFINED_TABLE,
            "relation \"pg_catalog.{other}\" does not exist"
        ),
    })
}

fn catalog_sequences(txn: &mut dyn Transaction) -> Result<Vec<catalog::Sequence>> {
    catalog::sequences(txn)
}

fn information_schema(txn: &mut dyn Transaction, name: &str) -> Result<Rel> {
    let tables = catalog::tables(txn)?;
    Ok(match name {
        "tables" => {
            let mut rows: Vec<Vec<Value>> = tables
                .iter()
                .map(|tb| vec![t("postgres"), t("public"), t(&tb.name), t("BASE TABLE")])
                .collect();
            for v in catalog::views(txn)? {
                rows.push(vec![t("postgres"), t("public"), t(&v.name), t("VIEW")]);
            }
            Rel {
                cols: vec![
                    ("table_catalog", TEXT),
                    ("table_schema", TEXT),
                    ("table_name", TEXT),
                    ("table_type", TEXT),
                ],
                rows,
            }
        }
        "columns" => {
            let mut rows = Vec::new();
            for tb in &tables {
                for (n, c) in tb.columns.iter().enumerate() {
                    let (len, precision, scale) = match &c.ty {
                        DataType::Varchar(Some(l)) | DataType::Char(l) => {
                            (Value::Int4(*l as i32), Value::Null, Value::Null)
                        }
                        DataType::Numeric(Some((p, s))) => {
                            (Value::Null, Value::Int4(*p as i32), Value::Int4(*s as i32))
                        }
                        _ => (Value::Null, Value::Null, Value::Null),
                    };
                    let data_type = match &c.ty {
                        DataType::Varchar(_) => "character varying".to_string(),
                        DataType::Char(_) => "character".to_string(),
                        DataType::Numeric(_) => "numeric".to_string(),
                        other => other.name(),
                    };
                    let nullable = !(c.not_null || tb.primary_key.contains(&n));
                    rows.push(vec![
                        t("postgres"),
                        t("public"),
                        t(&tb.name),
                        t(&c.name),
                        Value::Int4(n as i32 + 1),
                        c.default.as_deref().map(t).unwrap_or(Value::Null),
                        t(if nullable { "YES" } else { "NO" }),
                        t(&data_type),
                        len,
                        precision,
                        scale,
                        t(builtin_types()
                            .iter()
                            .find(|x| x.0 == c.ty.oid() as i64)
                            .map(|x| x.1)
                            .unwrap_or("text")),
                    ]);
                }
            }
            Rel {
                cols: vec![
                    ("table_catalog", TEXT),
                    ("table_schema", TEXT),
                    ("table_name", TEXT),
                    ("column_name", TEXT),
                    ("ordinal_position", INT4),
                    ("column_default", TEXT),
                    ("is_nullable", TEXT),
                    ("data_type", TEXT),
                    ("character_maximum_length", INT4),
                    ("numeric_precision", INT4),
                    ("numeric_scale", INT4),
                    ("udt_name", TEXT),
                ],
                rows,
            }
        }
        "schemata" => Rel {
            cols: vec![
                ("catalog_name", TEXT),
                ("schema_name", TEXT),
                ("schema_owner", TEXT),
            ],
            rows: namespaces()
                .into_iter()
                .map(|(_, n)| vec![t("postgres"), t(n), t("postgres")])
                .collect(),
        },
        other => bail!(
            UNDEFINED_TABLE,
            "relation \"information_schema.{other}\" does not exist"
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// Functions

/// True for the catalog functions [`bind_function`] binds.
pub fn is_catalog_function(name: &str) -> bool {
    matches!(
        name,
        "pg_table_is_visible"
            | "pg_get_userbyid"
            | "format_type"
            | "pg_get_indexdef"
            | "pg_get_constraintdef"
            | "pg_get_expr"
            | "current_database"
            | "obj_description"
            | "col_description"
            | "pg_encoding_to_char"
            | "pg_backend_pid"
            | "pg_relation_is_publishable"
            | "pg_get_statisticsobjdef_columns"
            | "has_table_privilege"
            | "pg_is_in_recovery"
            | "pg_table_size"
            | "pg_relation_size"
            | "pg_total_relation_size"
            | "pg_indexes_size"
            | "pg_database_size"
            | "pg_size_pretty"
            | "pg_get_viewdef"
            | "pg_get_ruledef"
            | "array_to_string"
            | "array_upper"
            | "text_array_element"
            | "text_array_contains"
            | "textregexeq"
            | "textregexne"
            | "texticregexeq"
            | "texticregexne"
    )
}

fn func(name: &str, call: ScalarImpl, ty: DataType, args: Vec<Expr>) -> (Expr, DataType) {
    (
        Expr::Func(
            crate::expr::Func {
                name: name.to_string(),
                call,
                strict: true,
                ty: ty.clone(),
            },
            args,
        ),
        ty,
    )
}

fn as_text(e: Expr, ty: &DataType) -> Expr {
    if ty.is_text() {
        e
    } else {
        Expr::Cast(Box::new(e), DataType::Text)
    }
}

fn as_int8(e: Expr, ty: &DataType) -> Expr {
    if *ty == DataType::Int8 {
        e
    } else {
        Expr::Cast(Box::new(e), DataType::Int8)
    }
}

/// A lookup from an oid expression to text, as a CASE over every known oid.
fn lookup(oid: Expr, ty: &DataType, map: Vec<(i64, String)>) -> (Expr, DataType) {
    let whens = map
        .into_iter()
        .map(|(k, v)| (Expr::Literal(Value::Int8(k)), Expr::Literal(Value::Text(v))))
        .collect();
    (
        Expr::Case {
            operand: Some(Box::new(as_int8(oid, ty))),
            whens,
            otherwise: Some(Box::new(Expr::Literal(Value::Null))),
        },
        DataType::Text,
    )
}

fn regex_match(args: &[Value], case_insensitive: bool) -> Result<bool> {
    let (Some(Value::Text(s)), Some(Value::Text(p))) = (args.first(), args.get(1)) else {
        return Ok(false);
    };
    let re = regex::RegexBuilder::new(p)
        .case_insensitive(case_insensitive)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| err!(INVALID_PARAMETER_VALUE, "invalid regular expression: {e}"))?;
    Ok(re.is_match(s))
}

fn f_true(_: &[Value], _: &FnContext) -> Result<Value> {
    Ok(Value::Bool(true))
}
fn f_false(_: &[Value], _: &FnContext) -> Result<Value> {
    Ok(Value::Bool(false))
}
fn f_postgres(_: &[Value], _: &FnContext) -> Result<Value> {
    Ok(Value::Text("postgres".into()))
}
fn f_utf8(_: &[Value], _: &FnContext) -> Result<Value> {
    Ok(Value::Text("UTF8".into()))
}
fn f_null(_: &[Value], _: &FnContext) -> Result<Value> {
    Ok(Value::Null)
}
fn f_format_type(a: &[Value], _: &FnContext) -> Result<Value> {
    let oid = a.first().and_then(Value::as_i64).unwrap_or(0);
    let typmod = a.get(1).and_then(Value::as_i64).unwrap_or(-1);
    Ok(type_name_of_oid(oid, typmod)
        .map(Value::Text)
        .unwrap_or_else(|| Value::Text("???".into())))
}
/// The elements of a one-dimensional array in text form (`{a,b}`; `"..."` quoting honoured).
fn array_elements(text: &str) -> Vec<Option<String>> {
    let inner = text.trim().trim_start_matches('{').trim_end_matches('}');
    if inner.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                was_quoted = true;
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' if !quoted => {
                let v = std::mem::take(&mut cur);
                out.push((was_quoted || v != "NULL").then_some(v));
                was_quoted = false;
            }
            c => cur.push(c),
        }
    }
    out.push((was_quoted || cur != "NULL").then_some(cur));
    out
}

/// SQL computing `ARRAY(subquery)` as an array literal in text form.
pub fn array_subquery_sql(subquery: &str) -> String {
    format!(
        "SELECT '{{' || coalesce(string_agg(CASE WHEN _array_elem IS NULL THEN 'NULL' \
         ELSE '\"' || replace(replace(CAST(_array_elem AS TEXT), '\\', '\\\\'), '\"', '\\\"') || '\"' END, ','), '') || '}}' \
         FROM ({subquery}) AS _array_src(_array_elem)"
    )
}

fn f_array_to_string(a: &[Value], _: &FnContext) -> Result<Value> {
    let (Some(Value::Text(arr)), Some(Value::Text(sep))) = (a.first(), a.get(1)) else {
        return Ok(Value::Null);
    };
    let parts: Vec<String> = array_elements(arr).into_iter().flatten().collect();
    Ok(Value::Text(parts.join(sep)))
}

fn f_text_array_contains(a: &[Value], _: &FnContext) -> Result<Value> {
    let (Some(Value::Text(arr)), Some(Value::Text(x))) = (a.first(), a.get(1)) else {
        return Ok(Value::Null);
    };
    Ok(Value::Bool(
        array_elements(arr)
            .iter()
            .any(|e| e.as_deref() == Some(x.as_str())),
    ))
}

fn f_array_upper(a: &[Value], _: &FnContext) -> Result<Value> {
    let Some(Value::Text(arr)) = a.first() else {
        return Ok(Value::Null);
    };
    let n = array_elements(arr).len();
    Ok(if n == 0 {
        Value::Null
    } else {
        Value::Int4(n as i32)
    })
}

fn f_text_array_element(a: &[Value], _: &FnContext) -> Result<Value> {
    let (Some(Value::Text(arr)), Some(i)) = (a.first(), a.get(1).and_then(Value::as_i64)) else {
        return Ok(Value::Null);
    };
    let elems = array_elements(arr);
    Ok(usize::try_from(i - 1)
        .ok()
        .and_then(|i| elems.get(i).cloned().flatten())
        .map(Value::Text)
        .unwrap_or(Value::Null))
}

fn f_text_identity(a: &[Value], _: &FnContext) -> Result<Value> {
    Ok(a.first().cloned().unwrap_or(Value::Null))
}
fn f_regex_eq(a: &[Value], _: &FnContext) -> Result<Value> {
    regex_match(a, false).map(Value::Bool)
}
fn f_regex_ne(a: &[Value], _: &FnContext) -> Result<Value> {
    regex_match(a, false).map(|m| Value::Bool(!m))
}
fn f_iregex_eq(a: &[Value], _: &FnContext) -> Result<Value> {
    regex_match(a, true).map(Value::Bool)
}
fn f_iregex_ne(a: &[Value], _: &FnContext) -> Result<Value> {
    regex_match(a, true).map(|m| Value::Bool(!m))
}

/// Binds a call of a catalog function (arguments already bound).
pub fn bind_function(
    txn: &mut dyn Transaction,
    name: &str,
    mut args: Vec<(Expr, DataType)>,
) -> Result<(Expr, DataType)> {
    let argc = args.len();
    let arity = |lo: usize, hi: usize| -> Result<()> {
        if argc < lo || argc > hi {
            bail!(
                UNDEFINED_FUNCTION,
                "function {name} with {argc} arguments does not exist"
            );
        }
        Ok(())
    };
    let exprs = |args: Vec<(Expr, DataType)>| args.into_iter().map(|(e, _)| e).collect();
    Ok(match name {
        "pg_table_is_visible" | "pg_relation_is_publishable" | "has_table_privilege" => {
            arity(1, 3)?;
            let ret = if name == "pg_relation_is_publishable" {
                f_false
            } else {
                f_true
            };
            func(name, ret, DataType::Bool, exprs(args))
        }
        "pg_is_in_recovery" => func(name, f_false, DataType::Bool, vec![]),
        "pg_table_size"
        | "pg_relation_size"
        | "pg_total_relation_size"
        | "pg_indexes_size"
        | "pg_database_size" => {
            // pg_relation_size(oid[, fork]) counts the main fork: the same as the table's.
            arity(1, 2)?;
            let (o, ot) = match args.swap_remove(0) {
                // The argument is a regclass: a name literal names the relation.
                (Expr::Literal(Value::Text(n)), _) => (
                    Expr::Literal(Value::Int8(regclass_oid(txn, &n)?)),
                    DataType::Int8,
                ),
                other => other,
            };
            let sizes = relation_sizes(txn)?;
            let tables = catalog::tables(txn)?;
            let index_total = |t: &Table| -> i64 {
                let mut oids: Vec<i64> = t
                    .indexes
                    .iter()
                    .map(|ix| FIRST_USER_OID + ix.id as i64)
                    .collect();
                if !t.primary_key.is_empty() {
                    oids.push(PKEY_OID_BASE + t.id as i64);
                }
                sizes
                    .iter()
                    .filter(|(o, _)| oids.contains(o))
                    .map(|(_, s)| s)
                    .sum()
            };
            let map: Vec<(i64, i64)> = match name {
                "pg_database_size" => {
                    let total = sizes.iter().map(|(_, s)| s).sum();
                    return Ok((Expr::Literal(Value::Int8(total)), DataType::Int8));
                }
                "pg_indexes_size" => tables
                    .iter()
                    .map(|t| (table_oid(t), index_total(t)))
                    .collect(),
                "pg_total_relation_size" => {
                    let mut m = sizes.clone();
                    for t in &tables {
                        let extra = index_total(t);
                        if let Some(e) = m.iter_mut().find(|(o, _)| *o == table_oid(t)) {
                            e.1 += extra;
                        }
                    }
                    m
                }
                _ => sizes,
            };
            let whens = map
                .into_iter()
                .map(|(k, v)| (Expr::Literal(Value::Int8(k)), Expr::Literal(Value::Int8(v))))
                .collect();
            (
                Expr::Case {
                    operand: Some(Box::new(as_int8(o, &ot))),
                    whens,
                    // Relations without storage (views, system relations) are 0, not NULL.
                    otherwise: Some(Box::new(Expr::Literal(Value::Int8(0)))),
                },
                DataType::Int8,
            )
        }
        "pg_get_viewdef" => {
            // The view's query as stored (PostgreSQL re-deparses and pretty-prints it).
            arity(1, 2)?;
            let (o, ot) = args.swap_remove(0);
            let map = catalog::views(txn)?
                .into_iter()
                .map(|v| (view_oid(&v.name), format!(" {};", v.query)))
                .collect();
            lookup(o, &ot, map)
        }
        "pg_get_ruledef" => {
            arity(1, 2)?;
            func(name, f_null, DataType::Text, exprs(args))
        }
        "pg_size_pretty" => {
            arity(1, 1)?;
            let (e, et) = args.swap_remove(0);
            func(name, f_size_pretty, DataType::Text, vec![as_int8(e, &et)])
        }
        "pg_get_userbyid" => {
            arity(1, 1)?;
            func(name, f_postgres, DataType::Text, exprs(args))
        }
        "current_database" => {
            arity(0, 0)?;
            func(name, f_postgres, DataType::Text, vec![])
        }
        "pg_encoding_to_char" => {
            arity(1, 1)?;
            func(name, f_utf8, DataType::Text, exprs(args))
        }
        "obj_description" | "col_description" | "pg_get_statisticsobjdef_columns" => {
            arity(1, 2)?;
            func(name, f_null, DataType::Text, exprs(args))
        }
        "pg_backend_pid" => func(name, f_null, DataType::Int4, vec![]),
        "format_type" => {
            arity(2, 2)?;
            let (m, mt) = args.pop().expect("two arguments");
            let (o, ot) = args.pop().expect("two arguments");
            func(
                name,
                f_format_type,
                DataType::Text,
                vec![as_int8(o, &ot), as_int8(m, &mt)],
            )
        }
        "pg_get_expr" => {
            // adbin holds the expression's SQL text already.
            arity(2, 3)?;
            let (e, et) = args.swap_remove(0);
            func(name, f_text_identity, DataType::Text, vec![as_text(e, &et)])
        }
        "pg_get_indexdef" => {
            // pg_get_indexdef(oid[, column, pretty]): the CREATE INDEX statement, or with a
            // column number > 0 that column's key expression.
            arity(1, 3)?;
            let indexes: Vec<IndexInfo> =
                catalog::tables(txn)?.iter().flat_map(indexes_of).collect();
            let (o, ot) = args.remove(0);
            if args.is_empty() {
                let map = indexes.iter().map(|ix| (ix.oid, index_def(ix))).collect();
                return Ok(lookup(o, &ot, map));
            }
            let (c, ct) = args.remove(0);
            let key = Expr::Arith(
                ArithOp::Add,
                Box::new(Expr::Arith(
                    ArithOp::Mul,
                    Box::new(as_int8(o, &ot)),
                    Box::new(Expr::Literal(Value::Int8(INDEX_COLUMN_KEY))),
                    DataType::Int8,
                )),
                Box::new(as_int8(c, &ct)),
                DataType::Int8,
            );
            let mut map = Vec::new();
            for ix in &indexes {
                map.push((ix.oid * INDEX_COLUMN_KEY, index_def(ix)));
                for (n, name) in ix.column_names.iter().enumerate() {
                    map.push((ix.oid * INDEX_COLUMN_KEY + n as i64 + 1, quote_ident(name)));
                }
            }
            lookup(key, &DataType::Int8, map)
        }
        "pg_get_constraintdef" => {
            arity(1, 2)?;
            let (o, ot) = args.swap_remove(0);
            let rel = pg_catalog(txn, "pg_constraint")?;
            let map = rel
                .rows
                .into_iter()
                .filter_map(|r| match (&r[0], &r[12]) {
                    (Value::Int8(oid), Value::Text(def)) => Some((*oid, def.clone())),
                    _ => None,
                })
                .collect();
            lookup(o, &ot, map)
        }
        "array_upper" => {
            arity(2, 2)?;
            let (e, t) = args.swap_remove(0);
            func(name, f_array_upper, DataType::Int4, vec![as_text(e, &t)])
        }
        "text_array_element" => {
            arity(2, 2)?;
            let (i, it) = args.pop().expect("two arguments");
            let (e, t) = args.pop().expect("two arguments");
            // The element type is not known from the text form: like a literal, it takes the
            // type its context asks for.
            func(
                name,
                f_text_array_element,
                DataType::Unknown,
                vec![as_text(e, &t), as_int8(i, &it)],
            )
        }
        "array_to_string" | "text_array_contains" => {
            arity(2, 2)?;
            let call: ScalarImpl = if name == "array_to_string" {
                f_array_to_string
            } else {
                f_text_array_contains
            };
            let args = args.into_iter().map(|(e, t)| as_text(e, &t)).collect();
            let ty = if name == "array_to_string" {
                DataType::Text
            } else {
                DataType::Bool
            };
            func(name, call, ty, args)
        }
        "textregexeq" | "textregexne" | "texticregexeq" | "texticregexne" => {
            arity(2, 2)?;
            let call: ScalarImpl = match name {
                "textregexeq" => f_regex_eq,
                "textregexne" => f_regex_ne,
                "texticregexeq" => f_iregex_eq,
                _ => f_iregex_ne,
            };
            let args = args.into_iter().map(|(e, t)| as_text(e, &t)).collect();
            func(name, call, DataType::Bool, args)
        }
        other => bail!(UNDEFINED_FUNCTION, "function {other} does not exist"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_type_names() {
        assert_eq!(type_name_of_oid(23, -1).as_deref(), Some("integer"));
        assert_eq!(
            type_name_of_oid(1043, 14).as_deref(),
            Some("character varying(10)")
        );
        assert_eq!(
            type_name_of_oid(1700, ((12 << 16) | 2) + 4).as_deref(),
            Some("numeric(12,2)")
        );
        assert_eq!(type_name_of_oid(1042, 88).as_deref(), Some("character(84)"));
    }

    #[test]
    fn sizes_are_pretty_as_in_postgresql() {
        assert_eq!(size_pretty(0), "0 bytes");
        assert_eq!(size_pretty(10239), "10239 bytes");
        assert_eq!(size_pretty(10240), "10 kB");
        assert_eq!(size_pretty(16384), "16 kB");
        assert_eq!(size_pretty(10 * 1024 * 1024), "10 MB");
        assert_eq!(size_pretty(-20000), "-20 kB");
        assert_eq!(size_pretty(1 << 50), "1024 TB");
    }

    #[test]
    fn regex_matching() {
        let m = |s: &str, p: &str| regex_match(&[t(s), t(p)], false).unwrap();
        assert!(m("pgbench_accounts", "^(pgbench_accounts)$"));
        assert!(!m("pg_toast_1", "^(pgbench_accounts)$"));
        assert!(regex_match(&[t("ABC"), t("abc")], true).unwrap());
        assert!(regex_match(&[t("x"), t("(")], false).is_err());
    }

    #[test]
    fn text_arrays() {
        assert_eq!(
            array_elements("{a,\"b,c\",NULL}"),
            vec![Some("a".into()), Some("b,c".into()), None]
        );
        assert!(array_elements("{}").is_empty());
    }

    #[test]
    fn identifiers_are_quoted_when_needed() {
        assert_eq!(quote_ident("abc_1"), "abc_1");
        assert_eq!(quote_ident("Abc"), "\"Abc\"");
        assert_eq!(quote_ident("a b"), "\"a b\"");
    }
}
