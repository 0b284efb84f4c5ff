//! DDL: CREATE/DROP/ALTER of tables, indexes, views and sequences, and TRUNCATE. Every change
//! goes through the statement's transaction, so DDL commits and rolls back like any write.

use std::ops::Bound;

use sqlparser::ast;

use crate::catalog::{
    self, Check, Column, ForeignKey, Index, IndexKind, RefAction, Sequence, Table, View,
};
use crate::encoding::{decode_row, encode_row, key_of};
use crate::error::Result;
use crate::exec::HashSet;
use crate::kv::{Packed, Transaction};
use crate::plan::{self, ident, object_name};
use crate::value::{DataType, Value};
use crate::{bail, err};

fn exists_error(kind: &str, name: &str) -> crate::error::Error {
    err!(DUPLICATE_TABLE, "{kind} \"{name}\" already exists")
}

fn column_indexes(table: &Table, names: &[String]) -> Result<Vec<usize>> {
    names
        .iter()
        .map(|n| {
            table.column_index(n).ok_or_else(|| {
                err!(
                    UNDEFINED_COLUMN,
                    "column \"{n}\" named in key does not exist"
                )
            })
        })
        .collect()
}

fn index_col_names(cols: &[ast::IndexColumn]) -> Result<Vec<String>> {
    cols.iter()
        .map(|c| match &c.column.expr {
            ast::Expr::Identifier(i) => Ok(ident(i)),
            other => bail!(
                FEATURE_NOT_SUPPORTED,
                "index on expression {other} is not supported"
            ),
        })
        .collect()
}

fn idents(cols: &[ast::Ident]) -> Vec<String> {
    cols.iter().map(ident).collect()
}

fn new_index(
    txn: &mut dyn Transaction,
    table: &Table,
    name: String,
    columns: Vec<usize>,
    unique: bool,
    kind: IndexKind,
    constraint: bool,
) -> Result<Index> {
    let id = catalog::next_id(txn)?;
    let zone_rows = crate::sparse::zone_rows_for(16 + 12 * table.columns.len());
    Ok(Index {
        id,
        name,
        columns,
        unique,
        kind,
        constraint,
        zone_rows,
    })
}

/// Adds an index to a table (catalog entry, tree, entries for existing rows).
fn add_index(txn: &mut dyn Transaction, table: &mut Table, index: Index) -> Result<()> {
    catalog::check_name_free(txn, &index.name)?;
    txn.create_tree(&index.tree())?;
    match index.kind {
        IndexKind::Dense => {
            let width = table.columns.len();
            let mut seen: HashSet<Vec<u8>> = HashSet::default();
            // Entries are gathered into one arena (index key, then row key, per entry) and
            // sorted by their key's first 16 bytes, then the whole key: mostly integer compares
            // on a compact array. Then they are copied in key order into one buffer, which the
            // engine takes as the transaction's writes as it is (a tight copy loop is where
            // the random reads of the arena cost least).
            let mut arena: Vec<u8> = Vec::new();
            // (key prefix, offset in the arena, index key length, row key length)
            let mut order: Vec<(u128, usize, u32, u32)> = Vec::new();
            let mut wanted = vec![false; width];
            for &c in &index.columns {
                wanted[c] = true;
            }
            crate::kv::for_each_entry(txn, &table.tree(), &mut |_, k, bytes| {
                let row = crate::encoding::decode_columns(&bytes, width, Some(&wanted))?;
                let vals: Vec<Value> = index.columns.iter().map(|&c| row[c].clone()).collect();
                if index.unique && !vals.iter().any(Value::is_null) && !seen.insert(key_of(&vals)) {
                    let names: Vec<&str> = index
                        .columns
                        .iter()
                        .map(|&c| table.columns[c].name.as_str())
                        .collect();
                    let shown: Vec<String> = vals.iter().map(|v| v.to_string()).collect();
                    bail!(
                        UNIQUE_VIOLATION,
                        "could not create unique index \"{}\": key ({})=({}) is duplicated",
                        index.name,
                        names.join(", "),
                        shown.join(", ")
                    );
                }
                let at = arena.len();
                for v in &vals {
                    crate::encoding::encode_key(v, &mut arena);
                }
                arena.extend_from_slice(&k);
                let ik_len = arena.len() - at;
                arena.extend_from_slice(&k);
                let mut p = [0u8; 16];
                let n = ik_len.min(16);
                p[..n].copy_from_slice(&arena[at..at + n]);
                order.push((u128::from_be_bytes(p), at, ik_len as u32, k.len() as u32));
                Ok(())
            })?;
            let index_key =
                |&(_, at, ik_len, _): &(u128, usize, u32, u32)| &arena[at..at + ik_len as usize];
            order.sort_unstable_by(|a, b| {
                a.0.cmp(&b.0).then_with(|| index_key(a).cmp(index_key(b)))
            });
            let mut packed = Packed::with_capacity(arena.len(), order.len());
            for e in &order {
                let &(_, at, ik_len, k_len) = e;
                let end = at + ik_len as usize;
                packed.push(index_key(e), &arena[end..end + k_len as usize])?;
            }
            std::mem::drop((arena, order));
            txn.put_packed(&index.tree(), packed)?;
        }
        IndexKind::Sparse => crate::sparse::build(txn, table, &index)?,
    }
    catalog::put_index_owner(txn, &index.name, &table.name)?;
    table.indexes.push(index);
    Ok(())
}

pub fn create_table(txn: &mut dyn Transaction, ct: &ast::CreateTable) -> Result<()> {
    let name = object_name(&ct.name)?;
    if catalog::table(txn, &name)?.is_some() || catalog::view(txn, &name)?.is_some() {
        if ct.if_not_exists {
            return Ok(());
        }
        return Err(exists_error("relation", &name));
    }
    catalog::check_name_free(txn, &name)?;
    if ct.query.is_some() {
        bail!(FEATURE_NOT_SUPPORTED, "CREATE TABLE AS is not supported");
    }
    let id = catalog::next_id(txn)?;
    let mut table = Table {
        id,
        name: name.clone(),
        columns: Vec::new(),
        primary_key: Vec::new(),
        checks: Vec::new(),
        foreign_keys: Vec::new(),
        indexes: Vec::new(),
        stats: None,
    };
    let mut uniques: Vec<(Option<String>, Vec<String>)> = Vec::new();
    let mut fks: Vec<(Option<String>, Vec<String>, ast::ForeignKeyConstraint)> = Vec::new();
    let mut pk: Option<Vec<String>> = None;
    let mut sequences = Vec::new();
    for cd in &ct.columns {
        let cname = ident(&cd.name);
        if table.column_index(&cname).is_some() {
            bail!(
                DUPLICATE_COLUMN,
                "column \"{cname}\" specified more than once"
            );
        }
        let serial = match &cd.data_type {
            ast::DataType::Custom(n, _) => matches!(
                object_name(n)?.as_str(),
                "serial" | "bigserial" | "smallserial" | "serial2" | "serial4" | "serial8"
            ),
            _ => false,
        };
        let ty = plan::data_type(&cd.data_type)?;
        let mut col = Column {
            name: cname.clone(),
            ty,
            not_null: false,
            default: None,
            identity_always: false,
        };
        if serial {
            let seq = format!("{name}_{cname}_seq");
            col.default = Some(format!("nextval('{seq}')"));
            col.not_null = true;
            sequences.push((seq, cname.clone()));
        }
        for opt in &cd.options {
            match &opt.option {
                ast::ColumnOption::Null => col.not_null = false,
                ast::ColumnOption::NotNull => col.not_null = true,
                ast::ColumnOption::Default(e) => col.default = Some(e.to_string()),
                ast::ColumnOption::PrimaryKey(_) => {
                    if pk.is_some() {
                        bail!(
                            INVALID_TABLE_DEFINITION,
                            "multiple primary keys for table \"{name}\" are not allowed"
                        );
                    }
                    pk = Some(vec![cname.clone()]);
                    col.not_null = true;
                }
                ast::ColumnOption::Unique(_) => {
                    uniques.push((opt.name.as_ref().map(ident), vec![cname.clone()]))
                }
                ast::ColumnOption::Check(c) => table.checks.push(Check {
                    name: opt
                        .name
                        .as_ref()
                        .map(ident)
                        .unwrap_or_else(|| format!("{name}_{cname}_check")),
                    expr: c.expr.to_string(),
                }),
                ast::ColumnOption::ForeignKey(fk) => fks.push((
                    opt.name.as_ref().map(ident),
                    vec![cname.clone()],
                    fk.clone(),
                )),
                ast::ColumnOption::Generated { .. } | ast::ColumnOption::Identity(_) => {
                    col.identity_always = matches!(
                        &opt.option,
                        ast::ColumnOption::Generated {
                            generated_as: ast::GeneratedAs::Always,
                            ..
                        }
                    );
                    let seq = format!("{name}_{cname}_seq");
                    col.default = Some(format!("nextval('{seq}')"));
                    col.not_null = true;
                    sequences.push((seq, cname.clone()));
                }
                ast::ColumnOption::Collation(_) | ast::ColumnOption::Comment(_) => {}
                other => bail!(
                    FEATURE_NOT_SUPPORTED,
                    "column option {other} is not supported"
                ),
            }
        }
        table.columns.push(col);
    }
    for c in &ct.constraints {
        match c {
            ast::TableConstraint::PrimaryKey(p) => {
                if pk.is_some() {
                    bail!(
                        INVALID_TABLE_DEFINITION,
                        "multiple primary keys for table \"{name}\" are not allowed"
                    );
                }
                pk = Some(index_col_names(&p.columns)?);
            }
            ast::TableConstraint::Unique(u) => {
                uniques.push((u.name.as_ref().map(ident), index_col_names(&u.columns)?))
            }
            ast::TableConstraint::Check(ch) => table.checks.push(Check {
                name: ch
                    .name
                    .as_ref()
                    .map(ident)
                    .unwrap_or_else(|| format!("{name}_check{}", table.checks.len() + 1)),
                expr: ch.expr.to_string(),
            }),
            ast::TableConstraint::ForeignKey(fk) => {
                fks.push((fk.name.as_ref().map(ident), idents(&fk.columns), fk.clone()))
            }
            other => bail!(FEATURE_NOT_SUPPORTED, "constraint {other} is not supported"),
        }
    }
    if let Some(cols) = pk {
        table.primary_key = column_indexes(&table, &cols)?;
        for &c in &table.primary_key {
            table.columns[c].not_null = true;
        }
    }
    txn.create_tree(&table.tree())?;
    for (i, (cname, cols)) in uniques.into_iter().enumerate() {
        let columns = column_indexes(&table, &cols)?;
        if columns == table.primary_key {
            continue;
        }
        let iname = cname.unwrap_or_else(|| {
            if i == 0 {
                format!("{name}_{}_key", cols.join("_"))
            } else {
                format!("{name}_{}_key{i}", cols.join("_"))
            }
        });
        let index = new_index(txn, &table, iname, columns, true, IndexKind::Dense, true)?;
        add_index(txn, &mut table, index)?;
    }
    for (fname, cols, fk) in fks {
        let columns = column_indexes(&table, &cols)?;
        let ref_table = object_name(&fk.foreign_table)?;
        let parent = if ref_table == name {
            table.clone()
        } else {
            catalog::must_table(txn, &ref_table)?
        };
        let ref_cols: Vec<String> = idents(&fk.referred_columns);
        let ref_columns = if ref_cols.is_empty() {
            if parent.primary_key.is_empty() {
                bail!(
                    INVALID_COLUMN_REFERENCE,
                    "there is no primary key for referenced table \"{ref_table}\""
                );
            }
            parent.primary_key.clone()
        } else {
            column_indexes(&parent, &ref_cols)?
        };
        if ref_columns.len() != columns.len() {
            bail!(
                INVALID_COLUMN_REFERENCE,
                "number of referencing and referenced columns for foreign key disagree"
            );
        }
        let keyed = parent.primary_key == ref_columns
            || parent
                .indexes
                .iter()
                .any(|i| i.unique && i.columns == ref_columns);
        if !keyed {
            bail!(INVALID_COLUMN_REFERENCE, "there is no unique constraint matching given keys for referenced table \"{ref_table}\"");
        }
        let on_delete = match fk.on_delete {
            Some(ast::ReferentialAction::Cascade) => RefAction::Cascade,
            Some(ast::ReferentialAction::SetNull) => RefAction::SetNull,
            _ => RefAction::NoAction,
        };
        table.foreign_keys.push(ForeignKey {
            name: fname.unwrap_or_else(|| format!("{name}_{}_fkey", cols.join("_"))),
            columns,
            ref_table,
            ref_columns,
            on_delete,
        });
    }
    for (seq, col) in sequences {
        create_sequence_named(txn, &seq, 1, 1, Some((name.clone(), col)))?;
    }
    catalog::put_table(txn, &table)
}

/// CREATE TABLE name AS query: a table with the query's columns (no constraints).
pub fn create_table_as(
    txn: &mut dyn Transaction,
    name: &str,
    columns: &[(String, DataType)],
) -> Result<Table> {
    catalog::check_name_free(txn, name)?;
    let id = catalog::next_id(txn)?;
    let mut table = Table {
        id,
        name: name.to_string(),
        columns: Vec::new(),
        primary_key: Vec::new(),
        checks: Vec::new(),
        foreign_keys: Vec::new(),
        indexes: Vec::new(),
        stats: None,
    };
    for (n, ty) in columns {
        if table.column_index(n).is_some() {
            bail!(DUPLICATE_COLUMN, "column \"{n}\" specified more than once");
        }
        table.columns.push(Column {
            name: n.clone(),
            ty: ty.clone(),
            not_null: false,
            default: None,
            identity_always: false,
        });
    }
    txn.create_tree(&table.tree())?;
    catalog::put_table(txn, &table)?;
    Ok(table)
}

fn create_sequence_named(
    txn: &mut dyn Transaction,
    name: &str,
    start: i64,
    increment: i64,
    owned_by: Option<(String, String)>,
) -> Result<()> {
    catalog::check_name_free(txn, name)?;
    let id = catalog::next_id(txn)?;
    let (min, max) = if increment > 0 {
        (1, i64::MAX)
    } else {
        (i64::MIN, -1)
    };
    catalog::put_sequence(
        txn,
        &Sequence {
            name: name.to_string(),
            start,
            increment,
            min,
            max,
            cycle: false,
            owned_by,
            id,
        },
    )
}

pub fn create_sequence(
    txn: &mut dyn Transaction,
    name: &ast::ObjectName,
    if_not_exists: bool,
    options: &[ast::SequenceOptions],
) -> Result<()> {
    let n = object_name(name)?;
    if catalog::sequence(txn, &n)?.is_some() && if_not_exists {
        return Ok(());
    }
    let mut start = None;
    let mut increment = 1i64;
    let num = |e: &ast::Expr| -> Result<i64> {
        let s = e.to_string().replace(' ', "");
        s.parse()
            .map_err(|_| err!(SYNTAX_ERROR, "invalid sequence option value {s}"))
    };
    let mut min = None;
    let mut max = None;
    let mut cycle = false;
    for o in options {
        match o {
            ast::SequenceOptions::IncrementBy(e, _) => increment = num(e)?,
            ast::SequenceOptions::StartWith(e, _) => start = Some(num(e)?),
            ast::SequenceOptions::MinValue(Some(e)) => min = Some(num(e)?),
            ast::SequenceOptions::MaxValue(Some(e)) => max = Some(num(e)?),
            ast::SequenceOptions::Cycle(no) => cycle = !*no,
            _ => {}
        }
    }
    if increment == 0 {
        bail!(INVALID_PARAMETER_VALUE, "INCREMENT must not be zero");
    }
    let min = min.unwrap_or(if increment > 0 { 1 } else { i64::MIN });
    let max = max.unwrap_or(if increment > 0 { i64::MAX } else { -1 });
    let start = start.unwrap_or(if increment > 0 { min } else { max });
    if min > max || start < min || start > max {
        bail!(
            INVALID_PARAMETER_VALUE,
            "START value ({start}) must be between MINVALUE ({min}) and MAXVALUE ({max})"
        );
    }
    catalog::check_name_free(txn, &n)?;
    let id = catalog::next_id(txn)?;
    let seq = Sequence {
        name: n,
        start,
        increment,
        min,
        max,
        cycle,
        owned_by: None,
        id,
    };
    catalog::put_sequence(txn, &seq)
}

pub fn create_index(txn: &mut dyn Transaction, ci: &ast::CreateIndex) -> Result<()> {
    let tname = object_name(&ci.table_name)?;
    let mut table = catalog::must_table(txn, &tname)?;
    let cols = index_col_names(&ci.columns)?;
    let columns = column_indexes(&table, &cols)?;
    let kind = match &ci.using {
        None => IndexKind::Dense,
        Some(t) => match t.to_string().to_lowercase().as_str() {
            "btree" | "dense" => IndexKind::Dense,
            "sparse" | "brin" => IndexKind::Sparse,
            other => bail!(UNDEFINED_OBJECT, "access method \"{other}\" does not exist"),
        },
    };
    if kind == IndexKind::Sparse && (ci.unique || columns.len() != 1) {
        bail!(
            FEATURE_NOT_SUPPORTED,
            "a sparse index covers exactly one column and cannot be unique"
        );
    }
    let name = match &ci.name {
        Some(n) => object_name(n)?,
        None => format!("{tname}_{}_idx", cols.join("_")),
    };
    if catalog::index_owner(txn, &name)?.is_some() && ci.if_not_exists {
        return Ok(());
    }
    if ci.predicate.is_some() {
        bail!(FEATURE_NOT_SUPPORTED, "partial indexes are not supported");
    }
    let index = new_index(txn, &table, name, columns, ci.unique, kind, false)?;
    add_index(txn, &mut table, index)?;
    catalog::put_table(txn, &table)
}

pub fn create_view(txn: &mut dyn Transaction, cv: &ast::CreateView) -> Result<()> {
    let name = object_name(&cv.name)?;
    if cv.materialized {
        bail!(
            FEATURE_NOT_SUPPORTED,
            "materialized views are not supported"
        );
    }
    let exists = catalog::view(txn, &name)?.is_some();
    if exists && cv.if_not_exists {
        return Ok(());
    }
    if !(exists && cv.or_replace) {
        catalog::check_name_free(txn, &name)?;
    }
    let view = View {
        name: name.clone(),
        query: cv.query.to_string(),
        columns: cv.columns.iter().map(|c| ident(&c.name)).collect(),
    };
    // Bind it now, so a broken view is refused at creation.
    let mut binder = plan::Binder::new(txn, Vec::new());
    binder.query(&cv.query)?;
    catalog::put_view(txn, &view)
}

/// Refuses to drop `name` while views use it, or (with CASCADE) drops those views.
fn drop_dependent_views(
    txn: &mut dyn Transaction,
    name: &str,
    kind: &str,
    cascade: bool,
) -> Result<()> {
    let deps = dependent_views(txn, name)?;
    if !deps.is_empty() && !cascade {
        bail!(
            DEPENDENT_OBJECTS_STILL_EXIST,
            "cannot drop {kind} {name} because other objects depend on it"
        );
    }
    for d in deps {
        catalog::delete_view(txn, &d)?;
    }
    Ok(())
}

/// Views whose query mentions `name` (to refuse dropping what they depend on).
fn dependent_views(txn: &mut dyn Transaction, name: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for v in catalog::views(txn)? {
        let q = plan::parse_query(&v.query)?;
        let text = q.to_string().to_lowercase();
        if v.name != name
            && text
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|w| w == name)
        {
            out.push(v.name);
        }
    }
    Ok(out)
}

pub fn drop(
    txn: &mut dyn Transaction,
    object_type: &ast::ObjectType,
    if_exists: bool,
    names: &[ast::ObjectName],
    cascade: bool,
) -> Result<()> {
    for n in names {
        let name = object_name(n)?;
        match object_type {
            ast::ObjectType::Table => {
                let Some(table) = catalog::table(txn, &name)? else {
                    if if_exists {
                        continue;
                    }
                    if catalog::view(txn, &name)?.is_some() {
                        bail!(WRONG_OBJECT_TYPE, "\"{name}\" is not a table");
                    }
                    bail!(UNDEFINED_TABLE, "table \"{name}\" does not exist");
                };
                drop_dependent_views(txn, &name, "table", cascade)?;
                for other in catalog::tables(txn)? {
                    if other.name != name && other.foreign_keys.iter().any(|f| f.ref_table == name)
                    {
                        if !cascade {
                            bail!(
                                DEPENDENT_OBJECTS_STILL_EXIST,
                                "cannot drop table {name} because other objects depend on it"
                            );
                        }
                        let mut o = other.clone();
                        o.foreign_keys.retain(|f| f.ref_table != name);
                        catalog::put_table(txn, &o)?;
                    }
                }
                drop_table(txn, &table)?;
            }
            ast::ObjectType::View => {
                if catalog::view(txn, &name)?.is_none() {
                    if if_exists {
                        continue;
                    }
                    bail!(UNDEFINED_TABLE, "view \"{name}\" does not exist");
                }
                drop_dependent_views(txn, &name, "view", cascade)?;
                catalog::delete_view(txn, &name)?;
            }
            ast::ObjectType::Index => {
                let Some(owner) = catalog::index_owner(txn, &name)? else {
                    if if_exists {
                        continue;
                    }
                    bail!(UNDEFINED_OBJECT, "index \"{name}\" does not exist");
                };
                let mut table = catalog::must_table(txn, &owner)?;
                let Some(pos) = table.indexes.iter().position(|i| i.name == name) else {
                    bail!(
                        DATA_CORRUPTED,
                        "index \"{name}\" is missing from table \"{owner}\""
                    );
                };
                if table.indexes[pos].constraint {
                    bail!(DEPENDENT_OBJECTS_STILL_EXIST, "cannot drop index {name} because constraint {name} on table {owner} requires it");
                }
                let index = table.indexes.remove(pos);
                txn.drop_tree(&index.tree())?;
                catalog::delete_index_owner(txn, &name)?;
                catalog::put_table(txn, &table)?;
            }
            ast::ObjectType::Sequence => {
                if catalog::sequence(txn, &name)?.is_none() {
                    if if_exists {
                        continue;
                    }
                    bail!(UNDEFINED_TABLE, "sequence \"{name}\" does not exist");
                }
                catalog::delete_sequence(txn, &name)?;
            }
            other => bail!(FEATURE_NOT_SUPPORTED, "DROP {other} is not supported"),
        }
    }
    Ok(())
}

fn drop_table(txn: &mut dyn Transaction, table: &Table) -> Result<()> {
    for index in &table.indexes {
        txn.drop_tree(&index.tree())?;
        catalog::delete_index_owner(txn, &index.name)?;
    }
    txn.drop_tree(&table.tree())?;
    for c in &table.columns {
        if let Some(d) = &c.default {
            if let Some(seq) = d
                .strip_prefix("nextval('")
                .and_then(|s| s.strip_suffix("')"))
            {
                if catalog::sequence(txn, seq)?.is_some_and(|s| s.owned_by.is_some()) {
                    catalog::delete_sequence(txn, seq)?;
                }
            }
        }
    }
    catalog::delete_table(txn, &table.name)
}

/// Empties a table: new trees under new ids, so the old rows go with the old trees.
pub fn truncate(txn: &mut dyn Transaction, names: &[String]) -> Result<()> {
    for name in names {
        let mut table = catalog::must_table(txn, name)?;
        txn.drop_tree(&table.tree())?;
        table.id = catalog::next_id(txn)?;
        txn.create_tree(&table.tree())?;
        for i in 0..table.indexes.len() {
            txn.drop_tree(&table.indexes[i].tree())?;
            table.indexes[i].id = catalog::next_id(txn)?;
            txn.create_tree(&table.indexes[i].tree())?;
        }
        table.stats = None;
        catalog::put_table(txn, &table)?;
    }
    Ok(())
}

/// Rewrites every row of a table through `f` (ALTER TABLE ADD/DROP COLUMN).
fn rewrite_rows(
    txn: &mut dyn Transaction,
    table: &Table,
    old_width: usize,
    f: &mut dyn FnMut(Vec<Value>) -> Result<Vec<Value>>,
) -> Result<()> {
    crate::kv::for_each_entry(txn, &table.tree(), &mut |txn, k, bytes| {
        let row = f(decode_row(&bytes, old_width)?)?;
        txn.put(&table.tree(), &k, &encode_row(&row))?;
        Ok(())
    })?;
    Ok(())
}

pub fn alter_table(txn: &mut dyn Transaction, at: &ast::AlterTable) -> Result<()> {
    let name = object_name(&at.name)?;
    let Some(mut table) = catalog::table(txn, &name)? else {
        if at.if_exists {
            return Ok(());
        }
        bail!(UNDEFINED_TABLE, "relation \"{name}\" does not exist");
    };
    for op in &at.operations {
        match op {
            ast::AlterTableOperation::AddColumn {
                column_def,
                if_not_exists,
                ..
            } => {
                let cname = ident(&column_def.name);
                if table.column_index(&cname).is_some() {
                    if *if_not_exists {
                        continue;
                    }
                    bail!(
                        DUPLICATE_COLUMN,
                        "column \"{cname}\" of relation \"{name}\" already exists"
                    );
                }
                let ty = plan::data_type(&column_def.data_type)?;
                let mut col = Column {
                    name: cname,
                    ty: ty.clone(),
                    not_null: false,
                    default: None,
                    identity_always: false,
                };
                for opt in &column_def.options {
                    match &opt.option {
                        ast::ColumnOption::NotNull => col.not_null = true,
                        ast::ColumnOption::Null => {}
                        ast::ColumnOption::Default(e) => col.default = Some(e.to_string()),
                        other => bail!(
                            FEATURE_NOT_SUPPORTED,
                            "ADD COLUMN option {other} is not supported"
                        ),
                    }
                }
                // Existing rows get the default (evaluated once) or NULL.
                let fill = match &col.default {
                    Some(sql) => {
                        let e = plan::parse_expr(sql)?;
                        let mut binder = plan::Binder::new(txn, Vec::new());
                        let x = binder.assigned(&e, &plan::Scope::default(), &ty)?;
                        match x {
                            crate::expr::Expr::Literal(v) => v,
                            _ => bail!(
                                FEATURE_NOT_SUPPORTED,
                                "ADD COLUMN with a non-constant default is not supported"
                            ),
                        }
                    }
                    None => Value::Null,
                };
                if col.not_null
                    && fill.is_null()
                    && txn
                        .scan(&table.tree(), Bound::Unbounded, Bound::Unbounded, false, 1)?
                        .len()
                        == 1
                {
                    bail!(
                        NOT_NULL_VIOLATION,
                        "column \"{}\" of relation \"{name}\" contains null values",
                        col.name
                    );
                }
                let w = table.columns.len();
                rewrite_rows(txn, &table, w, &mut |mut r| {
                    r.push(fill.clone());
                    Ok(r)
                })?;
                table.columns.push(col);
            }
            ast::AlterTableOperation::DropColumn {
                column_names,
                if_exists,
                ..
            } => {
                for cn in column_names {
                    let cname = ident(cn);
                    let Some(ci) = table.column_index(&cname) else {
                        if *if_exists {
                            continue;
                        }
                        bail!(
                            UNDEFINED_COLUMN,
                            "column \"{cname}\" of relation \"{name}\" does not exist"
                        );
                    };
                    if table.primary_key.contains(&ci) {
                        bail!(DEPENDENT_OBJECTS_STILL_EXIST, "cannot drop column {cname} of table {name} because the primary key requires it");
                    }
                    // Indexes on the column go with it.
                    let (gone, kept): (Vec<Index>, Vec<Index>) = std::mem::take(&mut table.indexes)
                        .into_iter()
                        .partition(|i| i.columns.contains(&ci));
                    for i in gone {
                        txn.drop_tree(&i.tree())?;
                        catalog::delete_index_owner(txn, &i.name)?;
                    }
                    table.indexes = kept;
                    let w = table.columns.len();
                    rewrite_rows(txn, &table, w, &mut |mut r| {
                        r.remove(ci);
                        Ok(r)
                    })?;
                    table.columns.remove(ci);
                    let shift = |c: &mut usize| {
                        if *c > ci {
                            *c -= 1
                        }
                    };
                    table.primary_key.iter_mut().for_each(shift);
                    for i in &mut table.indexes {
                        i.columns.iter_mut().for_each(shift);
                    }
                    table.foreign_keys.retain(|f| !f.columns.contains(&ci));
                    for f in &mut table.foreign_keys {
                        f.columns.iter_mut().for_each(shift);
                    }
                    table.checks.retain(|c| {
                        !c.expr
                            .to_lowercase()
                            .split(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                            .any(|w| w == cname)
                    });
                    table.stats = None;
                }
            }
            ast::AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                let old = ident(old_column_name);
                let new = ident(new_column_name);
                let ci = table
                    .column_index(&old)
                    .ok_or_else(|| err!(UNDEFINED_COLUMN, "column \"{old}\" does not exist"))?;
                if table.column_index(&new).is_some() {
                    bail!(
                        DUPLICATE_COLUMN,
                        "column \"{new}\" of relation \"{name}\" already exists"
                    );
                }
                table.columns[ci].name = new;
            }
            ast::AlterTableOperation::RenameTable { table_name } => {
                let new = match table_name {
                    ast::RenameTableNameKind::To(n) | ast::RenameTableNameKind::As(n) => {
                        object_name(n)?
                    }
                };
                catalog::check_name_free(txn, &new)?;
                catalog::delete_table(txn, &table.name)?;
                for i in &table.indexes {
                    catalog::put_index_owner(txn, &i.name, &new)?;
                }
                table.name = new;
            }
            ast::AlterTableOperation::AddConstraint { constraint, .. } => match constraint {
                ast::TableConstraint::PrimaryKey(p) => {
                    if !table.primary_key.is_empty() {
                        bail!(
                            INVALID_TABLE_DEFINITION,
                            "multiple primary keys for table \"{name}\" are not allowed"
                        );
                    }
                    let cols = column_indexes(&table, &index_col_names(&p.columns)?)?;
                    set_primary_key(txn, &mut table, cols)?;
                }
                ast::TableConstraint::Unique(u) => {
                    let names = index_col_names(&u.columns)?;
                    let cols = column_indexes(&table, &names)?;
                    let iname = u
                        .name
                        .as_ref()
                        .map(ident)
                        .unwrap_or_else(|| format!("{name}_{}_key", names.join("_")));
                    let index = new_index(txn, &table, iname, cols, true, IndexKind::Dense, true)?;
                    add_index(txn, &mut table, index)?;
                }
                ast::TableConstraint::Check(ch) => {
                    table.checks.push(Check {
                        name: ch
                            .name
                            .as_ref()
                            .map(ident)
                            .unwrap_or_else(|| format!("{name}_check{}", table.checks.len() + 1)),
                        expr: ch.expr.to_string(),
                    });
                }
                other => bail!(FEATURE_NOT_SUPPORTED, "ADD {other} is not supported"),
            },
            other => bail!(
                FEATURE_NOT_SUPPORTED,
                "ALTER TABLE {other} is not supported"
            ),
        }
    }
    catalog::put_table(txn, &table)
}

/// Re-keys a table by a new primary key (ALTER TABLE ADD PRIMARY KEY).
fn set_primary_key(txn: &mut dyn Transaction, table: &mut Table, cols: Vec<usize>) -> Result<()> {
    let width = table.columns.len();
    let old_tree = table.tree();
    let mut rows = Vec::new();
    crate::kv::for_each_entry(txn, &old_tree, &mut |_, _, bytes| {
        rows.push(decode_row(&bytes, width)?);
        Ok(())
    })?;
    txn.drop_tree(&old_tree)?;
    table.id = catalog::next_id(txn)?;
    txn.create_tree(&table.tree())?;
    let mut seen = HashSet::default();
    for row in &rows {
        let vals: Vec<Value> = cols.iter().map(|&c| row[c].clone()).collect();
        if let Some(c) = cols.iter().find(|&&c| row[c].is_null()) {
            bail!(
                NOT_NULL_VIOLATION,
                "column \"{}\" of relation \"{}\" contains null values",
                table.columns[*c].name,
                table.name
            );
        }
        let k = key_of(&vals);
        if !seen.insert(k.clone()) {
            bail!(
                UNIQUE_VIOLATION,
                "could not create unique index \"{}_pkey\"",
                table.name
            );
        }
        txn.put(&table.tree(), &k, &encode_row(row))?;
    }
    for &c in &cols {
        table.columns[c].not_null = true;
    }
    table.primary_key = cols;
    // Secondary indexes point at row keys, which changed: rebuild them.
    let indexes = std::mem::take(&mut table.indexes);
    for mut index in indexes {
        txn.drop_tree(&index.tree())?;
        catalog::delete_index_owner(txn, &index.name)?;
        index.id = catalog::next_id(txn)?;
        add_index(txn, table, index)?;
    }
    Ok(())
}

/// ANALYZE: row count, distinct values, null fractions and key-order correlation per column.
pub fn analyze(txn: &mut dyn Transaction, name: Option<String>) -> Result<()> {
    let tables = match name {
        Some(n) => vec![catalog::must_table(txn, &n)?],
        None => catalog::tables(txn)?,
    };
    for mut table in tables {
        let width = table.columns.len();
        let mut distinct: Vec<HashSet<Vec<u8>>> = vec![Default::default(); width];
        let mut nulls = vec![0u64; width];
        let mut rising = vec![0i64; width];
        let mut prev: Option<Vec<Value>> = None;
        let mut rows = 0u64;
        crate::kv::for_each_entry(txn, &table.tree(), &mut |_, _, bytes| {
            let row = decode_row(&bytes, width)?;
            rows += 1;
            for (i, v) in row.iter().enumerate() {
                if v.is_null() {
                    nulls[i] += 1;
                } else if distinct[i].len() < 100_000 {
                    distinct[i].insert(crate::exec::row_key(std::slice::from_ref(v)));
                }
                if let Some(p) = &prev {
                    if !v.is_null() && !p[i].is_null() {
                        match v.compare(&p[i]) {
                            Ok(std::cmp::Ordering::Greater) => rising[i] += 1,
                            Ok(std::cmp::Ordering::Less) => rising[i] -= 1,
                            _ => {}
                        }
                    }
                }
            }
            prev = Some(row);
            Ok(())
        })?;
        let steps = rows.saturating_sub(1).max(1) as f64;
        table.stats = Some(catalog::TableStats {
            rows,
            distinct: distinct.iter().map(|d| d.len() as u64).collect(),
            null_frac: nulls
                .iter()
                .map(|&n| {
                    if rows == 0 {
                        0.0
                    } else {
                        n as f64 / rows as f64
                    }
                })
                .collect(),
            correlation: rising.iter().map(|&r| r as f64 / steps).collect(),
        });
        catalog::put_table(txn, &table)?;
    }
    Ok(())
}

/// The type names `\d` and information_schema show.
pub fn type_display(t: &DataType) -> String {
    t.name()
}
