//! INSERT, UPDATE and DELETE: row writes with their index maintenance and constraint checks
//! (NOT NULL, CHECK, PRIMARY KEY / UNIQUE, FOREIGN KEY), ON CONFLICT and RETURNING.
//!
//! Under READ COMMITTED an UPDATE or DELETE re-reads each target row with a write lock
//! (`get_for_update`, which waits for a concurrent writer) and re-checks its WHERE clause on
//! the newest version, as PostgreSQL does; under REPEATABLE READ a concurrent change is a
//! serialization failure.

use std::ops::Bound;
use std::sync::Arc;

use sqlparser::ast;

use crate::catalog::{self, Index, IndexKind, RefAction, Table};
use crate::encoding::{decode_row, encode_row, key_of};
use crate::error::Result;
use crate::exec::{self, prefix_end, Cx, HashSet, Row};
use crate::expr::{eval, eval_pred, Expr};
use crate::optimize::optimize;
use crate::plan::{self, Access, Binder, OutCol, Plan, Scope, ScopeCol};
use crate::session::{QueryResult, Shared};
use crate::value::{DataType, Value};
use crate::{bail, err};

/// A bound statement's result rows for RETURNING.
pub struct Returning {
    pub exprs: Vec<Expr>,
    pub cols: Vec<OutCol>,
}

/// Everything needed to write rows of one table within one statement.
pub struct Writer {
    pub table: Arc<Table>,
    checks: Vec<(String, Expr)>,
    /// Foreign keys of other tables that reference this one: (child table, fk index).
    referencing: Vec<(Table, usize)>,
    shared: Arc<Shared>,
}

impl Writer {
    /// A writer for a statement; `inserts_only` skips finding the foreign keys that point at
    /// this table (only updates and deletes of existing rows must honour them).
    pub fn new(
        binder: &mut Binder,
        table: Arc<Table>,
        shared: Arc<Shared>,
        inserts_only: bool,
    ) -> Result<Writer> {
        let scope = table_scope(&table, false);
        let mut checks = Vec::new();
        for c in &table.checks {
            let e = plan::parse_expr(&c.expr)?;
            let (x, _) = binder.scalar(&e, &scope)?;
            checks.push((c.name.clone(), x));
        }
        let mut referencing = Vec::new();
        let others = if inserts_only {
            Vec::new()
        } else {
            catalog::tables(binder.txn)?
        };
        for t in others {
            for (i, fk) in t.foreign_keys.iter().enumerate() {
                if fk.ref_table == table.name {
                    referencing.push((t.clone(), i));
                }
            }
        }
        Ok(Writer {
            table,
            checks,
            referencing,
            shared,
        })
    }

    /// The storage key of a row: its primary key, or a fresh hidden row id.
    fn new_key(&self, row: &[Value], cx: &mut Cx) -> Result<Vec<u8>> {
        if self.table.primary_key.is_empty() {
            let id = self.shared.next_rowid(&self.table, cx.txn)?;
            Ok(id.to_be_bytes().to_vec())
        } else {
            Ok(self.pk_key(row))
        }
    }

    /// The primary-key encoding of `row` (for a table with a primary key).
    fn pk_key(&self, row: &[Value]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.table.primary_key.len() * 9);
        for &c in &self.table.primary_key {
            crate::encoding::encode_key(&row[c], &mut k);
        }
        k
    }

    fn check_row(&self, row: &[Value], cx: &mut Cx) -> Result<()> {
        let t = &self.table;
        for (i, c) in t.columns.iter().enumerate() {
            if row[i].is_null() && (c.not_null || t.primary_key.contains(&i)) {
                bail!(
                    NOT_NULL_VIOLATION,
                    "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                    c.name,
                    t.name
                );
            }
        }
        for (name, e) in &self.checks {
            if eval(e, row, cx)?.truth()? == Some(false) {
                bail!(
                    CHECK_VIOLATION,
                    "new row for relation \"{}\" violates check constraint \"{name}\"",
                    t.name
                );
            }
        }
        for fk in &t.foreign_keys {
            let vals: Vec<Value> = fk.columns.iter().map(|&c| row[c].clone()).collect();
            if vals.iter().any(Value::is_null) {
                continue;
            }
            let parent = if fk.ref_table == t.name {
                (**t).clone()
            } else {
                catalog::must_table(cx.txn, &fk.ref_table)?
            };
            if !row_exists(&parent, &fk.ref_columns, &vals, cx)? {
                let cols: Vec<&str> = fk
                    .columns
                    .iter()
                    .map(|&c| t.columns[c].name.as_str())
                    .collect();
                let shown: Vec<String> = vals.iter().map(|v| v.to_string()).collect();
                bail!(
                    FOREIGN_KEY_VIOLATION,
                    "insert or update on table \"{}\" violates foreign key constraint \"{}\": key ({})=({}) is not present in table \"{}\"",
                    t.name,
                    fk.name,
                    cols.join(", "),
                    shown.join(", "),
                    fk.ref_table
                );
            }
        }
        Ok(())
    }

    /// The existing row's key that conflicts with `row` on the primary key or a unique index.
    pub fn conflict(
        &self,
        row: &[Value],
        own_key: Option<&[u8]>,
        cx: &mut Cx,
    ) -> Result<Option<(Vec<u8>, String)>> {
        let pk = (!self.table.primary_key.is_empty()).then(|| self.pk_key(row));
        self.conflict_at(row, pk.as_deref(), own_key, cx)
    }

    /// `conflict`, given the row's primary-key encoding (None for a table without one).
    fn conflict_at(
        &self,
        row: &[Value],
        pk: Option<&[u8]>,
        own_key: Option<&[u8]>,
        cx: &mut Cx,
    ) -> Result<Option<(Vec<u8>, String)>> {
        let t = &self.table;
        if let Some(k) = pk {
            if own_key != Some(k) && cx.txn.get(&t.tree(), k)?.is_some() {
                return Ok(Some((k.to_vec(), format!("{}_pkey", t.name))));
            }
        }
        for index in t
            .indexes
            .iter()
            .filter(|i| i.unique && i.kind == IndexKind::Dense)
        {
            let vals: Vec<Value> = index.columns.iter().map(|&c| row[c].clone()).collect();
            if vals.iter().any(Value::is_null) {
                continue;
            }
            let prefix = key_of(&vals);
            let end = prefix_end(&prefix)
                .map(Bound::Excluded)
                .unwrap_or(Bound::Unbounded);
            for (_, rowkey) in cx
                .txn
                .scan(&index.tree(), Bound::Included(prefix), end, false, 2)?
            {
                if own_key != Some(rowkey.as_slice()) {
                    return Ok(Some((rowkey, index.name.clone())));
                }
            }
        }
        Ok(None)
    }

    fn duplicate(&self, row: &[Value], constraint: &str) -> crate::error::Error {
        let t = &self.table;
        let cols: Vec<usize> = if constraint.ends_with("_pkey") && !t.primary_key.is_empty() {
            t.primary_key.clone()
        } else {
            t.indexes
                .iter()
                .find(|i| i.name == constraint)
                .map(|i| i.columns.clone())
                .unwrap_or_default()
        };
        let names: Vec<&str> = cols.iter().map(|&c| t.columns[c].name.as_str()).collect();
        let vals: Vec<String> = cols.iter().map(|&c| row[c].to_string()).collect();
        err!(
            UNIQUE_VIOLATION,
            "duplicate key value violates unique constraint \"{constraint}\": key ({})=({}) already exists",
            names.join(", "),
            vals.join(", ")
        )
    }

    /// Adds `row` (stored at `key`) to one index.
    fn put_index_entry(&self, index: &Index, key: &[u8], row: &[Value], cx: &mut Cx) -> Result<()> {
        match index.kind {
            IndexKind::Dense => cx
                .txn
                .put(&index.tree(), &index_entry(index, row, key), key),
            IndexKind::Sparse => crate::sparse::insert(cx.txn, &self.table, index, key, row),
        }
    }

    /// Removes `row` (stored at `key`) from one index.
    fn delete_index_entry(
        &self,
        index: &Index,
        key: &[u8],
        row: &[Value],
        cx: &mut Cx,
    ) -> Result<()> {
        match index.kind {
            IndexKind::Dense => cx.txn.delete(&index.tree(), &index_entry(index, row, key)),
            IndexKind::Sparse => crate::sparse::delete(cx.txn, index, key),
        }
    }

    /// Inserts a checked row. Returns Err(unique violation) on a conflict.
    pub fn insert(&self, row: &[Value], cx: &mut Cx) -> Result<()> {
        self.check_row(row, cx)?;
        let key = self.new_key(row, cx)?;
        let pk = (!self.table.primary_key.is_empty()).then_some(key.as_slice());
        if let Some((_, constraint)) = self.conflict_at(row, pk, None, cx)? {
            return Err(self.duplicate(row, &constraint));
        }
        cx.txn.put(&self.table.tree(), &key, &encode_row(row))?;
        for index in &self.table.indexes {
            self.put_index_entry(index, &key, row, cx)?;
        }
        Ok(())
    }

    /// Replaces the row at `key` (whose current content is `old`) with `new`.
    pub fn update(&self, key: &[u8], old: &[Value], new: &[Value], cx: &mut Cx) -> Result<()> {
        self.check_row(new, cx)?;
        self.check_referenced(old, Some(new), cx)?;
        let t = &self.table;
        let pk_changed = !t.primary_key.is_empty()
            && t.primary_key
                .iter()
                .any(|&c| !old[c].group_eq(&new[c]) || old[c].is_null() != new[c].is_null());
        if let Some((_, constraint)) = self.conflict(new, Some(key), cx)? {
            return Err(self.duplicate(new, &constraint));
        }
        let new_key = if pk_changed {
            self.new_key(new, cx)?
        } else {
            key.to_vec()
        };
        if pk_changed {
            cx.txn.delete(&t.tree(), key)?;
        }
        cx.txn.put(&t.tree(), &new_key, &encode_row(new))?;
        for index in &t.indexes {
            let changed = pk_changed
                || index.columns.iter().any(|&c| {
                    old[c].is_null() != new[c].is_null()
                        || !old[c].group_eq(&new[c])
                        || old[c].to_text() != new[c].to_text()
                });
            if !changed {
                continue;
            }
            self.delete_index_entry(index, key, old, cx)?;
            self.put_index_entry(index, &new_key, new, cx)?;
        }
        Ok(())
    }

    pub fn delete(&self, key: &[u8], old: &[Value], cx: &mut Cx) -> Result<()> {
        self.check_referenced(old, None, cx)?;
        cx.txn.delete(&self.table.tree(), key)?;
        for index in &self.table.indexes {
            self.delete_index_entry(index, key, old, cx)?;
        }
        Ok(())
    }

    /// Enforces foreign keys that point at this table when a row goes away or changes its key.
    fn check_referenced(&self, old: &[Value], new: Option<&[Value]>, cx: &mut Cx) -> Result<()> {
        for (child, fi) in &self.referencing {
            let fk = &child.foreign_keys[*fi];
            let old_vals: Vec<Value> = fk.ref_columns.iter().map(|&c| old[c].clone()).collect();
            if old_vals.iter().any(Value::is_null) {
                continue;
            }
            if let Some(new) = new {
                if fk.ref_columns.iter().all(|&c| old[c].group_eq(&new[c])) {
                    continue;
                }
            }
            let children = matching_rows(child, &fk.columns, &old_vals, cx)?;
            if children.is_empty() {
                continue;
            }
            match (fk.on_delete, new) {
                (RefAction::Cascade, None) => {
                    let w =
                        Writer::new_unchecked(Arc::new(child.clone()), self.shared.clone(), cx)?;
                    for (k, r) in children {
                        w.delete(&k, &r, cx)?;
                    }
                }
                (RefAction::SetNull, None) => {
                    let w =
                        Writer::new_unchecked(Arc::new(child.clone()), self.shared.clone(), cx)?;
                    for (k, r) in children {
                        let mut n = r.clone();
                        for &c in &fk.columns {
                            n[c] = Value::Null;
                        }
                        w.update(&k, &r, &n, cx)?;
                    }
                }
                _ => {
                    let cols: Vec<&str> = fk
                        .ref_columns
                        .iter()
                        .map(|&c| self.table.columns[c].name.as_str())
                        .collect();
                    let vals: Vec<String> = old_vals.iter().map(|v| v.to_string()).collect();
                    bail!(
                        FOREIGN_KEY_VIOLATION,
                        "update or delete on table \"{}\" violates foreign key constraint \"{}\" on table \"{}\": key ({})=({}) is still referenced from table \"{}\"",
                        self.table.name,
                        fk.name,
                        child.name,
                        cols.join(", "),
                        vals.join(", "),
                        child.name
                    );
                }
            }
        }
        Ok(())
    }

    /// A writer for cascaded changes (its CHECKs bound on the fly).
    fn new_unchecked(table: Arc<Table>, shared: Arc<Shared>, cx: &mut Cx) -> Result<Writer> {
        let mut binder = Binder::new(cx.txn, Vec::new());
        Writer::new(&mut binder, table, shared, false)
    }
}

/// A dense index's entry for a row: the key of the index columns, then the row's storage key
/// (so entries are unique even where the indexed values are not).
pub fn index_entry(index: &Index, row: &[Value], rowkey: &[u8]) -> Vec<u8> {
    let mut k = key_of(
        &index
            .columns
            .iter()
            .map(|&c| row[c].clone())
            .collect::<Vec<_>>(),
    );
    k.extend_from_slice(rowkey);
    k
}

/// True if some row of `table` has these values in these columns.
fn row_exists(table: &Table, cols: &[usize], vals: &[Value], cx: &mut Cx) -> Result<bool> {
    Ok(!matching_rows(table, cols, vals, cx)?.is_empty())
}

/// Rows of `table` whose `cols` equal `vals` (through the primary key or an index if one fits).
fn matching_rows(
    table: &Table,
    cols: &[usize],
    vals: &[Value],
    cx: &mut Cx,
) -> Result<Vec<(Vec<u8>, Row)>> {
    let width = table.columns.len();
    let typed: Vec<Value> = cols
        .iter()
        .zip(vals)
        .map(|(&c, v)| crate::value::cast(v.clone(), &table.columns[c].ty))
        .collect::<Result<_>>()?;
    if table.primary_key == cols {
        let k = key_of(&typed);
        return Ok(match cx.txn.get(&table.tree(), &k)? {
            Some(bytes) => vec![(k, decode_row(&bytes, width)?)],
            None => vec![],
        });
    }
    if let Some(index) = table
        .indexes
        .iter()
        .find(|i| i.kind == IndexKind::Dense && i.columns.starts_with(cols))
    {
        let prefix = key_of(&typed);
        let end = prefix_end(&prefix)
            .map(Bound::Excluded)
            .unwrap_or(Bound::Unbounded);
        let mut out = Vec::new();
        for (_, rowkey) in cx.txn.scan(
            &index.tree(),
            Bound::Included(prefix),
            end,
            false,
            usize::MAX,
        )? {
            if let Some(bytes) = cx.txn.get(&table.tree(), &rowkey)? {
                out.push((rowkey, decode_row(&bytes, width)?));
            }
        }
        return Ok(out);
    }
    let mut out = Vec::new();
    crate::kv::for_each_entry(cx.txn, &table.tree(), &mut |_, k, bytes| {
        let row = decode_row(&bytes, width)?;
        if cols
            .iter()
            .zip(&typed)
            .all(|(&c, v)| !row[c].is_null() && row[c].group_eq(v))
        {
            out.push((k, row));
        }
        Ok(())
    })?;
    Ok(out)
}

/// The scope of a table's columns (plus the hidden `ctid` key column if `with_key`).
pub fn table_scope(table: &Table, with_key: bool) -> Scope {
    let mut cols: Vec<ScopeCol> = table
        .columns
        .iter()
        .map(|c| ScopeCol {
            table: Some(table.name.clone()),
            name: c.name.clone(),
            ty: c.ty.clone(),
            hidden: false,
        })
        .collect();
    if with_key {
        cols.push(ScopeCol {
            table: Some(table.name.clone()),
            name: "ctid".into(),
            ty: DataType::Bytea,
            hidden: true,
        });
    }
    Scope { cols }
}

fn target_table(binder: &mut Binder, name: &ast::ObjectName) -> Result<Arc<Table>> {
    let n = plan::object_name(name)?;
    match catalog::table(binder.txn, &n)? {
        Some(t) => Ok(Arc::new(t)),
        None => {
            if catalog::view(binder.txn, &n)?.is_some() {
                bail!(WRONG_OBJECT_TYPE, "cannot change view \"{n}\"");
            }
            bail!(UNDEFINED_TABLE, "relation \"{n}\" does not exist")
        }
    }
}

fn alias_scope(scope: &mut Scope, alias: Option<String>) {
    if let Some(a) = alias {
        for c in &mut scope.cols {
            c.table = Some(a.clone());
        }
    }
}

fn returning(
    binder: &mut Binder,
    items: &Option<Vec<ast::SelectItem>>,
    scope: &Scope,
) -> Result<Option<Returning>> {
    match items {
        None => Ok(None),
        Some(items) => {
            let (exprs, cols) = binder.select_list(items, scope)?;
            Ok(Some(Returning { exprs, cols }))
        }
    }
}

fn result(tag: String, ret: Option<Returning>, rows: Vec<Row>) -> QueryResult {
    match ret {
        Some(r) => QueryResult {
            columns: r.cols,
            rows,
            tag,
            copy_out: None,
        },
        None => QueryResult {
            columns: Vec::new(),
            rows: Vec::new(),
            tag,
            copy_out: None,
        },
    }
}

/// A bound INSERT.
pub struct Insert {
    writer: Writer,
    source: Plan,
    /// For each table column: Some(position in a source row) or None (use the default).
    mapping: Vec<Option<usize>>,
    defaults: Vec<Option<Expr>>,
    on_conflict: Option<OnConflict>,
    ret: Option<Returning>,
}

impl Insert {
    /// The columns of RETURNING (empty without it).
    pub fn returning_columns(&self) -> Vec<OutCol> {
        self.ret
            .as_ref()
            .map(|r| r.cols.clone())
            .unwrap_or_default()
    }
}

enum OnConflict {
    Nothing,
    /// SET assignments (column, expr over existing row ++ excluded row) and an optional WHERE.
    Update {
        sets: Vec<(usize, Expr)>,
        filter: Option<Expr>,
    },
}

pub fn bind_insert(binder: &mut Binder, ins: &ast::Insert, shared: Arc<Shared>) -> Result<Insert> {
    let name = match &ins.table {
        ast::TableObject::TableName(n) => n.clone(),
        other => bail!(
            FEATURE_NOT_SUPPORTED,
            "INSERT INTO {other} is not supported"
        ),
    };
    let table = target_table(binder, &name)?;
    let mut targets: Vec<usize> = Vec::new();
    if ins.columns.is_empty() {
        targets = (0..table.columns.len()).collect();
    } else {
        for c in &ins.columns {
            let n = plan::object_name(c)?;
            let i = table.column_index(&n).ok_or_else(|| {
                err!(
                    UNDEFINED_COLUMN,
                    "column \"{n}\" of relation \"{}\" does not exist",
                    table.name
                )
            })?;
            if targets.contains(&i) {
                bail!(DUPLICATE_COLUMN, "column \"{n}\" specified more than once");
            }
            targets.push(i);
        }
    }
    let target_types: Vec<DataType> = targets
        .iter()
        .map(|&i| table.columns[i].ty.clone())
        .collect();
    let (source, src_cols) = match &ins.source {
        None => (Plan::Values { rows: vec![vec![]] }, Vec::new()),
        Some(q) => match q.body.as_ref() {
            ast::SetExpr::Values(v) if q.order_by.is_none() && q.limit_clause.is_none() => {
                let (plan, cols) = binder.values(v, Some(&target_types))?;
                // DEFAULT in a VALUES list: the planner left NULL; mark those positions.
                (plan, cols)
            }
            _ => binder.query(q)?,
        },
    };
    if src_cols.len() > targets.len() {
        bail!(
            SYNTAX_ERROR,
            "INSERT has more expressions than target columns"
        );
    }
    let mut defaults = Vec::with_capacity(table.columns.len());
    let empty = Scope::default();
    for c in &table.columns {
        defaults.push(match &c.default {
            Some(sql) => {
                let e = plan::parse_expr(sql)?;
                Some(binder.assigned(&e, &empty, &c.ty)?)
            }
            None => None,
        });
    }
    // Cast source columns to the target types.
    let mut mapping = vec![None; table.columns.len()];
    let mut exprs = Vec::with_capacity(src_cols.len());
    for (pos, (col, &ti)) in src_cols.iter().zip(&targets).enumerate() {
        mapping[ti] = Some(pos);
        let x = binder.assign_cast(Expr::Column(pos), &col.ty, &table.columns[ti].ty)?;
        exprs.push(x);
    }
    // VALUES ... DEFAULT: positions where every row says DEFAULT use the default.
    if let Some(q) = &ins.source {
        if let ast::SetExpr::Values(v) = q.body.as_ref() {
            for (pos, &ti) in targets.iter().enumerate().take(src_cols.len()) {
                let is_default = |e: &ast::Expr| matches!(e, ast::Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"));
                if !v.rows.is_empty()
                    && v.rows
                        .iter()
                        .all(|r| r.content.get(pos).is_some_and(is_default))
                {
                    mapping[ti] = None;
                } else if v
                    .rows
                    .iter()
                    .any(|r| r.content.get(pos).is_some_and(is_default))
                {
                    // Mixed DEFAULT and values in one column: use the default expression per row.
                    if let Some(d) = &defaults[ti] {
                        exprs[pos] = Expr::Coalesce(vec![exprs[pos].clone(), d.clone()]);
                    }
                }
            }
        }
    }
    for (ci, c) in table.columns.iter().enumerate() {
        if c.identity_always && mapping[ci].is_some() && ins.overriding.is_none() {
            return Err(crate::error::Error::new(
                "428C9",
                format!(
                    "cannot insert a non-DEFAULT value into column \"{}\"",
                    c.name
                ),
            ));
        }
    }
    let source = Plan::Project {
        input: Box::new(source),
        exprs,
    };
    let source = optimize(source);
    let alias = ins.table_alias.as_ref().map(|a| plan::ident(&a.alias));
    let mut scope = table_scope(&table, false);
    alias_scope(&mut scope, alias.clone());
    let on_conflict = match &ins.on {
        None => None,
        Some(ast::OnInsert::OnConflict(oc)) => Some(match &oc.action {
            ast::OnConflictAction::DoNothing => OnConflict::Nothing,
            ast::OnConflictAction::DoUpdate(du) => {
                let mut both = scope.clone();
                let mut excluded = table_scope(&table, false);
                alias_scope(&mut excluded, Some("excluded".into()));
                both.cols.extend(excluded.cols);
                let mut sets = Vec::new();
                for a in &du.assignments {
                    let cname = match &a.target {
                        ast::AssignmentTarget::ColumnName(n) => plan::object_name(n)?,
                        other => bail!(
                            FEATURE_NOT_SUPPORTED,
                            "assignment to {other} is not supported"
                        ),
                    };
                    let ci = table.column_index(&cname).ok_or_else(|| {
                        err!(
                            UNDEFINED_COLUMN,
                            "column \"{cname}\" of relation \"{}\" does not exist",
                            table.name
                        )
                    })?;
                    let x = binder.assigned(&a.value, &both, &table.columns[ci].ty)?;
                    sets.push((ci, x));
                }
                let filter = match &du.selection {
                    Some(w) => Some(binder.scalar(w, &both)?.0),
                    None => None,
                };
                OnConflict::Update { sets, filter }
            }
        }),
        Some(other) => bail!(FEATURE_NOT_SUPPORTED, "{other} is not supported"),
    };
    let ret = returning(binder, &ins.returning, &scope)?;
    let writer = Writer::new(binder, table, shared, true)?;
    Ok(Insert {
        writer,
        source,
        mapping,
        defaults,
        on_conflict,
        ret,
    })
}

pub fn run_insert(ins: &Insert, cx: &mut Cx) -> Result<QueryResult> {
    // Read the whole source first: the statement must not see its own inserts.
    let sources = exec::run_plan(&ins.source, cx, None)?;
    let width = ins.writer.table.columns.len();
    let mut count = 0u64;
    let mut out = Vec::new();
    for src in sources {
        let mut row = Vec::with_capacity(width);
        for (ci, m) in ins.mapping.iter().enumerate() {
            row.push(match m {
                Some(p) => src[*p].clone(),
                None => match &ins.defaults[ci] {
                    Some(d) => eval(d, &[], cx)?,
                    None => Value::Null,
                },
            });
        }
        let final_row = match &ins.on_conflict {
            None => {
                ins.writer.insert(&row, cx)?;
                Some(row)
            }
            Some(oc) => {
                ins.writer.check_row(&row, cx)?;
                match ins.writer.conflict(&row, None, cx)? {
                    None => {
                        ins.writer.insert(&row, cx)?;
                        Some(row)
                    }
                    Some((key, _)) => match oc {
                        OnConflict::Nothing => None,
                        OnConflict::Update { sets, filter } => {
                            let t = &ins.writer.table;
                            let Some(bytes) = cx.txn.get_for_update(&t.tree(), &key)? else {
                                continue;
                            };
                            let existing = decode_row(&bytes, width)?;
                            let mut both = existing.clone();
                            both.extend(row.iter().cloned());
                            if let Some(f) = filter {
                                if !eval_pred(f, &both, cx)? {
                                    continue;
                                }
                            }
                            let mut new = existing.clone();
                            for (ci, e) in sets {
                                new[*ci] = eval(e, &both, cx)?;
                            }
                            ins.writer.update(&key, &existing, &new, cx)?;
                            Some(new)
                        }
                    },
                }
            }
        };
        if let Some(r) = final_row {
            count += 1;
            if let Some(ret) = &ins.ret {
                let mut o = Vec::with_capacity(ret.exprs.len());
                for e in &ret.exprs {
                    o.push(eval(e, &r, cx)?);
                }
                out.push(o);
            }
        }
    }
    Ok(result(
        format!("INSERT 0 {count}"),
        clone_ret(&ins.ret),
        out,
    ))
}

fn clone_ret(r: &Option<Returning>) -> Option<Returning> {
    r.as_ref().map(|r| Returning {
        exprs: r.exprs.clone(),
        cols: r.cols.clone(),
    })
}

impl Change {
    /// The columns of RETURNING (empty without it).
    pub fn returning_columns(&self) -> Vec<OutCol> {
        self.ret
            .as_ref()
            .map(|r| r.cols.clone())
            .unwrap_or_default()
    }
}

/// A bound UPDATE or DELETE: the rows to change come from `source` (the target table scanned
/// with its key as a last column, joined with any FROM/USING tables, filtered).
pub struct Change {
    writer: Writer,
    source: Plan,
    /// The WHERE clause over the target row alone (re-checked on a concurrently updated row),
    /// when there is no FROM/USING.
    recheck: Option<Expr>,
    /// UPDATE assignments over the source row; empty for DELETE.
    sets: Vec<(usize, Expr)>,
    delete: bool,
    ret: Option<Returning>,
}

fn bind_target(
    binder: &mut Binder,
    twj: &ast::TableWithJoins,
) -> Result<(Arc<Table>, Option<String>)> {
    if !twj.joins.is_empty() {
        bail!(
            FEATURE_NOT_SUPPORTED,
            "joins in the target of UPDATE/DELETE are not supported"
        );
    }
    match &twj.relation {
        ast::TableFactor::Table { name, alias, .. } => Ok((
            target_table(binder, name)?,
            alias.as_ref().map(|a| plan::ident(&a.name)),
        )),
        other => bail!(FEATURE_NOT_SUPPORTED, "cannot change {other}"),
    }
}

#[allow(clippy::too_many_arguments)] // UPDATE and DELETE share it; the parts are the statement's
fn bind_change(
    binder: &mut Binder,
    table: Arc<Table>,
    alias: Option<String>,
    from: &[ast::TableWithJoins],
    selection: &Option<ast::Expr>,
    assignments: &[ast::Assignment],
    ret_items: &Option<Vec<ast::SelectItem>>,
    delete: bool,
    shared: Arc<Shared>,
) -> Result<Change> {
    let width = table.columns.len();
    let mut scope = table_scope(&table, true);
    alias_scope(&mut scope, alias.clone());
    let mut source = Plan::Scan {
        table: table.clone(),
        access: Access::Full,
        filter: None,
        residual: None,
        reverse: false,
        with_key: true,
    };
    let mut full_scope = scope.clone();
    if !from.is_empty() {
        let (fp, fs) = binder.from_list(from)?;
        let lw = full_scope.cols.len();
        let rw = fs.cols.len();
        full_scope.cols.extend(fs.cols);
        source = Plan::Join {
            left: Box::new(source),
            right: Box::new(fp),
            kind: crate::plan::JoinKind::Inner,
            on: None,
            equi: Vec::new(),
            left_width: lw,
            right_width: rw,
        };
    }
    let mut recheck = None;
    if let Some(w) = selection {
        let (pred, t) = binder.scalar(w, &full_scope)?;
        if t != DataType::Bool && t != DataType::Unknown {
            bail!(
                DATATYPE_MISMATCH,
                "argument of WHERE must be type boolean, not type {t}"
            );
        }
        if from.is_empty() {
            recheck = Some(pred.clone());
        }
        source = Plan::Filter {
            input: Box::new(source),
            predicate: pred,
        };
    }
    let mut sets = Vec::new();
    for a in assignments {
        let names: Vec<String> = match &a.target {
            ast::AssignmentTarget::ColumnName(n) => vec![plan::object_name(n)?],
            ast::AssignmentTarget::Tuple(ns) => {
                ns.iter().map(plan::object_name).collect::<Result<_>>()?
            }
        };
        if names.len() != 1 {
            bail!(
                FEATURE_NOT_SUPPORTED,
                "multi-column assignment is not supported"
            );
        }
        let n = &names[0];
        let ci = table.column_index(n).ok_or_else(|| {
            err!(
                UNDEFINED_COLUMN,
                "column \"{n}\" of relation \"{}\" does not exist",
                table.name
            )
        })?;
        if sets.iter().any(|(c, _)| *c == ci) {
            bail!(SYNTAX_ERROR, "multiple assignments to same column \"{n}\"");
        }
        let is_default = matches!(&a.value, ast::Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"));
        let x = if is_default {
            match &table.columns[ci].default {
                Some(sql) => {
                    let e = plan::parse_expr(sql)?;
                    binder.assigned(&e, &Scope::default(), &table.columns[ci].ty)?
                }
                None => Expr::Literal(Value::Null),
            }
        } else {
            binder.assigned(&a.value, &full_scope, &table.columns[ci].ty)?
        };
        sets.push((ci, x));
    }
    let mut ret_scope = table_scope(&table, false);
    alias_scope(&mut ret_scope, alias);
    let ret = returning(binder, ret_items, &ret_scope)?;
    let _ = width;
    let writer = Writer::new(binder, table, shared, false)?;
    Ok(Change {
        writer,
        source: optimize(source),
        recheck,
        sets,
        delete,
        ret,
    })
}

pub fn bind_update(binder: &mut Binder, u: &ast::Update, shared: Arc<Shared>) -> Result<Change> {
    let (table, alias) = bind_target(binder, &u.table)?;
    let from: Vec<ast::TableWithJoins> = match &u.from {
        None => Vec::new(),
        Some(ast::UpdateTableFromKind::BeforeSet(f))
        | Some(ast::UpdateTableFromKind::AfterSet(f)) => f.clone(),
    };
    bind_change(
        binder,
        table,
        alias,
        &from,
        &u.selection,
        &u.assignments,
        &u.returning,
        false,
        shared,
    )
}

pub fn bind_delete(binder: &mut Binder, d: &ast::Delete, shared: Arc<Shared>) -> Result<Change> {
    let tables = match &d.from {
        ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) => t,
    };
    if tables.len() != 1 {
        bail!(
            FEATURE_NOT_SUPPORTED,
            "DELETE from several tables is not supported"
        );
    }
    let (table, alias) = bind_target(binder, &tables[0])?;
    let using = d.using.clone().unwrap_or_default();
    bind_change(
        binder,
        table,
        alias,
        &using,
        &d.selection,
        &[],
        &d.returning,
        true,
        shared,
    )
}

pub fn run_change(ch: &Change, cx: &mut Cx) -> Result<QueryResult> {
    let t = ch.writer.table.clone();
    let width = t.columns.len();
    // Collect first, so the statement never sees its own changes (the Halloween problem).
    let candidates = exec::run_plan(&ch.source, cx, None)?;
    let mut done: HashSet<Vec<u8>> = HashSet::default();
    // First decide every change (reads see the table as the statement found it), then write.
    let mut changes: Vec<(Vec<u8>, Row, Option<Row>)> = Vec::new();
    for src in candidates {
        let Value::Bytea(key) = src[width].clone() else {
            bail!(
                INTERNAL_ERROR,
                "row key missing from an UPDATE/DELETE source row"
            );
        };
        let key = &key;
        if !done.insert(key.clone()) {
            continue;
        }
        // Lock the row and read its newest version.
        let Some(bytes) = cx.txn.get_for_update(&t.tree(), key)? else {
            continue;
        };
        let current = decode_row(&bytes, width)?;
        let mut src = src;
        if current
            .iter()
            .zip(&src[..width])
            .any(|(a, b)| a.to_text() != b.to_text())
        {
            // Changed by a transaction that committed after our snapshot: re-check the row.
            match &ch.recheck {
                Some(pred) => {
                    let mut r = current.clone();
                    r.push(Value::Bytea(key.clone()));
                    if !eval_pred(pred, &r, cx)? {
                        continue;
                    }
                    src = r;
                }
                None => {
                    src.splice(..width, current.iter().cloned());
                }
            }
        }
        let old = current;
        let new = if ch.delete {
            None
        } else {
            let mut new = old.clone();
            for (ci, e) in &ch.sets {
                new[*ci] = eval(e, &src, cx)?;
            }
            Some(new)
        };
        changes.push((key.clone(), old, new));
    }
    let mut count = 0u64;
    let mut out = Vec::new();
    for (key, old, new) in changes {
        let key = &key;
        let final_row = match new {
            None => {
                ch.writer.delete(key, &old, cx)?;
                old
            }
            Some(new) => {
                ch.writer.update(key, &old, &new, cx)?;
                new
            }
        };
        count += 1;
        if let Some(ret) = &ch.ret {
            let mut o = Vec::with_capacity(ret.exprs.len());
            for e in &ret.exprs {
                o.push(eval(e, &final_row, cx)?);
            }
            out.push(o);
        }
    }
    let tag = if ch.delete {
        format!("DELETE {count}")
    } else {
        format!("UPDATE {count}")
    };
    Ok(result(tag, clone_ret(&ch.ret), out))
}
