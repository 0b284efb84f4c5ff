//! Plans: the operator tree a query runs as, and the binder that builds it from sqlparser's AST.
//!
//! Binding resolves every name (tables, views, CTEs, columns, functions) against the catalog
//! and the scopes of the query and its enclosing queries, checks and coerces types the way
//! PostgreSQL does, and produces a naive plan: scans under joins under a filter, aggregate,
//! projection, distinct, sort and limit. `optimize.rs` then pushes predicates down and picks
//! access paths and join methods.
//!
//! Row layout: every plan node produces rows of `Value`s; a join's row is its left row
//! followed by its right row. `Expr::Column(i)` is position `i` of the node's input row.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use sqlparser::ast;

use crate::catalog::{self, Index, Table};
use crate::error::Result;
use crate::expr::{AggCall, AggFunc, CmpOp, Expr, Func, SeqOp, Subquery, SubqueryKind};
use crate::functions;
use crate::kv::Transaction;
use crate::value::{self, ArithOp, DataType, Value};
use crate::{bail, err};

/// A column of a plan's output.
#[derive(Clone, Debug, PartialEq)]
pub struct OutCol {
    pub name: String,
    pub ty: DataType,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOpKind {
    Union,
    Intersect,
    Except,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SortKey {
    pub expr: Expr,
    pub desc: bool,
    pub nulls_first: bool,
}

/// Key bounds for an index or primary-key access, evaluated when the scan opens.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyRange {
    /// Exact keys (the index's leading columns, equal to these values).
    Points(Vec<Vec<Expr>>),
    /// Leading columns equal to `prefix`, then the next column within `lo`..`hi`.
    Range {
        prefix: Vec<Expr>,
        lo: Option<(Expr, bool)>,
        hi: Option<(Expr, bool)>,
    },
}

/// How a scan reaches a table's rows.
#[derive(Clone, Debug, PartialEq)]
pub enum Access {
    Full,
    /// Through the primary key (the table tree itself).
    Primary(KeyRange),
    /// Through a dense secondary index, then the table by primary key.
    Index(Index, KeyRange),
    /// Through a sparse index's zone map: only blocks whose min/max overlap the range.
    Sparse(Index, KeyRange),
}

#[derive(Clone, Debug)]
pub enum Plan {
    /// A table's rows (all columns; with `with_key`, the row's storage key as a last bytea
    /// column, `ctid`), optionally filtered.
    Scan {
        table: Arc<Table>,
        access: Access,
        filter: Option<Expr>,
        /// `filter` without the terms the access path's key range guarantees, used instead of
        /// it when every bound converts exactly to its key column's type (`id BETWEEN 5 AND
        /// 9` on the primary key leaves nothing to check per row). Equal to `filter` when the
        /// access path guarantees nothing.
        residual: Option<Expr>,
        reverse: bool,
        with_key: bool,
    },
    /// Literal rows.
    Values {
        rows: Vec<Vec<Expr>>,
    },
    /// `generate_series(start, stop[, step])`.
    Series {
        start: Expr,
        stop: Expr,
        step: Option<Expr>,
        ty: DataType,
    },
    Filter {
        input: Box<Plan>,
        predicate: Expr,
    },
    Project {
        input: Box<Plan>,
        exprs: Vec<Expr>,
    },
    /// `equi` pairs are hash keys: an expression over the left row and one over the right row.
    Join {
        left: Box<Plan>,
        right: Box<Plan>,
        kind: JoinKind,
        on: Option<Expr>,
        equi: Vec<(Expr, Expr)>,
        left_width: usize,
        right_width: usize,
    },
    /// Output: group key values, then aggregate results.
    Aggregate {
        input: Box<Plan>,
        groups: Vec<Expr>,
        aggs: Vec<AggCall>,
    },
    Sort {
        input: Box<Plan>,
        keys: Vec<SortKey>,
    },
    Limit {
        input: Box<Plan>,
        limit: Option<Expr>,
        offset: Option<Expr>,
    },
    Distinct {
        input: Box<Plan>,
    },
    /// DISTINCT ON: the first row (in input order) for each value of the key columns.
    DistinctOn {
        input: Box<Plan>,
        keys: Vec<usize>,
    },
    SetOp {
        op: SetOpKind,
        all: bool,
        left: Box<Plan>,
        right: Box<Plan>,
    },
    /// WITH RECURSIVE: `base`, then `step` repeatedly over the rows of the previous round
    /// (read by `WorkTable { id }`) until a round adds nothing.
    Recursive {
        id: usize,
        base: Box<Plan>,
        step: Box<Plan>,
        all: bool,
    },
    WorkTable {
        id: usize,
    },
}

impl Plan {
    /// Every row of the input, or none: a filter that may be pushed down later.
    pub fn filter(self, predicate: Option<Expr>) -> Plan {
        match predicate {
            None => self,
            Some(p) => Plan::Filter {
                input: Box::new(self),
                predicate: p,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scopes

#[derive(Clone, Debug)]
pub struct ScopeCol {
    /// The name of the table (or alias) it comes from.
    pub table: Option<String>,
    pub name: String,
    pub ty: DataType,
    /// Hidden from `*` and from unqualified lookup (the right side of JOIN USING).
    pub hidden: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub cols: Vec<ScopeCol>,
}

impl Scope {
    fn from_out(table: Option<&str>, cols: &[OutCol]) -> Scope {
        Scope {
            cols: cols
                .iter()
                .map(|c| ScopeCol {
                    table: table.map(str::to_string),
                    name: c.name.clone(),
                    ty: c.ty.clone(),
                    hidden: false,
                })
                .collect(),
        }
    }

    /// Finds a column: Ok(None) if absent, an error if ambiguous.
    fn find(&self, table: Option<&str>, name: &str) -> Result<Option<usize>> {
        let mut found = None;
        for (i, c) in self.cols.iter().enumerate() {
            let hit = match table {
                Some(t) => c.table.as_deref() == Some(t) && c.name == name,
                None => !c.hidden && c.name == name,
            };
            if hit {
                if found.is_some() {
                    bail!(AMBIGUOUS_COLUMN, "column reference \"{name}\" is ambiguous");
                }
                found = Some(i);
            }
        }
        Ok(found)
    }

    fn has_table(&self, table: &str) -> bool {
        self.cols.iter().any(|c| c.table.as_deref() == Some(table))
    }
}

/// A CTE visible to the query being bound.
#[derive(Clone)]
enum CteDef {
    Query {
        query: Box<ast::Query>,
        columns: Vec<String>,
    },
    /// The recursive CTE itself, inside its own recursive term.
    Work { id: usize, cols: Vec<OutCol> },
}

/// Folds an identifier as PostgreSQL does: unquoted names are lower-cased.
pub fn ident(i: &ast::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

/// The last part of a possibly schema-qualified name (`public.t` is `t`).
pub fn object_name(n: &ast::ObjectName) -> Result<String> {
    match n.0.last() {
        Some(ast::ObjectNamePart::Identifier(i)) => Ok(ident(i)),
        _ => bail!(SYNTAX_ERROR, "invalid name {n}"),
    }
}

fn object_name_parts(n: &ast::ObjectName) -> Vec<String> {
    n.0.iter()
        .filter_map(|p| match p {
            ast::ObjectNamePart::Identifier(i) => Some(ident(i)),
            _ => None,
        })
        .collect()
}

/// Translates a SQL type name.
pub fn data_type(t: &ast::DataType) -> Result<DataType> {
    use ast::DataType as A;
    let len = |l: &Option<ast::CharacterLength>| match l {
        Some(ast::CharacterLength::IntegerLength { length, .. }) => Some(*length as u32),
        _ => None,
    };
    Ok(match t {
        A::Bool | A::Boolean => DataType::Bool,
        A::SmallInt(_) | A::Int2(_) => DataType::Int2,
        A::Int(_) | A::Integer(_) | A::Int4(_) | A::MediumInt(_) | A::TinyInt(_) => DataType::Int4,
        A::BigInt(_) | A::Int8(_) | A::Int64 => DataType::Int8,
        A::Real | A::Float4 => DataType::Float4,
        A::Float(info) => match info {
            ast::ExactNumberInfo::Precision(p) if *p <= 24 => DataType::Float4,
            _ => DataType::Float8,
        },
        A::Double(_) | A::DoublePrecision | A::Float8 | A::Float64 => DataType::Float8,
        A::Numeric(info) | A::Decimal(info) | A::Dec(info) => match info {
            ast::ExactNumberInfo::None => DataType::Numeric(None),
            ast::ExactNumberInfo::Precision(p) => DataType::Numeric(Some((*p as u32, 0))),
            ast::ExactNumberInfo::PrecisionAndScale(p, s) => {
                if *p < 1 || *p > 28 || *s < 0 || *s as u64 > *p {
                    bail!(INVALID_PARAMETER_VALUE, "NUMERIC precision {p} and scale {s} are not supported (precision 1 to 28, scale 0 to precision)");
                }
                DataType::Numeric(Some((*p as u32, *s as u32)))
            }
        },
        A::Text | A::String(_) => DataType::Text,
        A::Varchar(l) | A::CharacterVarying(l) | A::CharVarying(l) => DataType::Varchar(len(l)),
        A::Char(l) | A::Character(l) => DataType::Char(len(l).unwrap_or(1)),
        A::Bytea => DataType::Bytea,
        A::Date => DataType::Date,
        A::Timestamp(_, tz) => match tz {
            ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz => DataType::TimestampTz,
            _ => DataType::Timestamp,
        },
        A::Interval { .. } => DataType::Interval,
        A::Signed | A::SignedInteger => DataType::Int8,
        // Object identifiers are carried as their oid number (see `system::custom_type`).
        A::Regclass => DataType::Int8,
        A::Custom(name, _) => {
            let n = object_name(name)?;
            match n.as_str() {
                "int2" => DataType::Int2,
                "int4" | "serial" | "serial4" => DataType::Int4,
                "int8" | "bigserial" | "serial8" => DataType::Int8,
                "smallserial" | "serial2" => DataType::Int2,
                "float4" => DataType::Float4,
                "float8" => DataType::Float8,
                "timestamptz" => DataType::TimestampTz,
                "bpchar" => DataType::Char(1),
                "string" => DataType::Text,
                _ => match crate::system::custom_type(&n) {
                    Some(t) => t,
                    None => bail!(UNDEFINED_OBJECT, "type \"{n}\" does not exist"),
                },
            }
        }
        // Arrays are carried in their text form (`{1,2}`); see `system`.
        A::Array(_) => DataType::Text,
        other => bail!(FEATURE_NOT_SUPPORTED, "type {other} is not supported"),
    })
}

// ---------------------------------------------------------------------------------------------
// The binder

/// Binds statements for one transaction.
pub struct Binder<'a> {
    pub txn: &'a mut dyn Transaction,
    /// Scopes of enclosing queries, innermost last.
    outer: Vec<Scope>,
    /// For each enclosing subquery level being bound: whether it references a row outside itself.
    correlated: Vec<bool>,
    ctes: Vec<HashMap<String, CteDef>>,
    /// Inferred types of `$n` parameters.
    pub params: Vec<DataType>,
    next_id: Rc<std::cell::Cell<usize>>,
    /// Views being expanded (to refuse a view that refers to itself).
    view_stack: Vec<String>,
}

/// Where the aggregates of a SELECT are collected while its expressions are bound.
#[derive(Default)]
struct AggContext {
    allowed: bool,
    /// Where aggregates are refused, for the message ("WHERE", ...).
    clause: Option<&'static str>,
}

impl<'a> Binder<'a> {
    pub fn new(txn: &'a mut dyn Transaction, param_types: Vec<DataType>) -> Binder<'a> {
        Binder {
            txn,
            outer: Vec::new(),
            correlated: Vec::new(),
            ctes: Vec::new(),
            params: param_types,
            next_id: Rc::new(std::cell::Cell::new(1)),
            view_stack: Vec::new(),
        }
    }

    fn fresh_id(&self) -> usize {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    // -- queries --------------------------------------------------------------------------

    /// Binds a query: its plan and output columns.
    pub fn query(&mut self, q: &ast::Query) -> Result<(Plan, Vec<OutCol>)> {
        let pushed_ctes = if let Some(with) = &q.with {
            self.with_clause(with)?;
            true
        } else {
            false
        };
        let result = self.query_body(q);
        if pushed_ctes {
            self.ctes.pop();
        }
        result
    }

    fn with_clause(&mut self, with: &ast::With) -> Result<()> {
        self.ctes.push(HashMap::new());
        for cte in &with.cte_tables {
            let name = ident(&cte.alias.name);
            let columns: Vec<String> = cte.alias.columns.iter().map(|c| ident(&c.name)).collect();
            let def = CteDef::Query {
                query: cte.query.clone(),
                columns,
            };
            self.ctes
                .last_mut()
                .expect("pushed above")
                .insert(name, def);
        }
        // A recursive CTE is marked by being referenced inside itself; that is checked when bound.
        let _ = with.recursive;
        Ok(())
    }

    fn query_body(&mut self, q: &ast::Query) -> Result<(Plan, Vec<OutCol>)> {
        let order_by: Vec<ast::OrderByExpr> = match &q.order_by {
            Some(ob) => match &ob.kind {
                ast::OrderByKind::Expressions(v) => v.clone(),
                ast::OrderByKind::All(_) => {
                    bail!(FEATURE_NOT_SUPPORTED, "ORDER BY ALL is not supported")
                }
            },
            None => Vec::new(),
        };
        let (limit, offset) = match &q.limit_clause {
            None => (None, None),
            Some(ast::LimitClause::LimitOffset { limit, offset, .. }) => {
                (limit.clone(), offset.as_ref().map(|o| o.value.clone()))
            }
            Some(ast::LimitClause::OffsetCommaLimit { offset, limit }) => {
                (Some(limit.clone()), Some(offset.clone()))
            }
        };
        let limit = match (&q.fetch, limit) {
            (Some(f), None) => f.quantity.clone(),
            (_, l) => l,
        };
        let (plan, cols) = match q.body.as_ref() {
            ast::SetExpr::Select(s) => self.select(s, &order_by)?,
            body => {
                let (plan, cols) = self.set_expr(body)?;
                if order_by.is_empty() {
                    (plan, cols)
                } else {
                    let keys = self.output_order_by(&order_by, &cols, None)?;
                    (
                        Plan::Sort {
                            input: Box::new(plan),
                            keys,
                        },
                        cols,
                    )
                }
            }
        };
        let plan = if limit.is_some() || offset.is_some() {
            let scope = Scope::default();
            let mut bind_count = |e: &Option<ast::Expr>| -> Result<Option<Expr>> {
                match e {
                    None => Ok(None),
                    Some(ast::Expr::Value(v)) if matches!(v.value, ast::Value::Null) => Ok(None),
                    Some(e) => {
                        let (x, t) = self.expr(e, &scope, &mut AggContext::default())?;
                        Ok(Some(self.coerce(x, &t, &DataType::Int8)?))
                    }
                }
            };
            let limit = bind_count(&limit)?;
            let offset = bind_count(&offset)?;
            Plan::Limit {
                input: Box::new(plan),
                limit,
                offset,
            }
        } else {
            plan
        };
        Ok((plan, cols))
    }

    fn set_expr(&mut self, body: &ast::SetExpr) -> Result<(Plan, Vec<OutCol>)> {
        match body {
            ast::SetExpr::Select(s) => self.select(s, &[]),
            ast::SetExpr::Query(q) => self.query(q),
            ast::SetExpr::Values(v) => self.values(v, None),
            ast::SetExpr::SetOperation {
                left,
                op,
                set_quantifier,
                right,
            } => {
                let op = match op {
                    ast::SetOperator::Union => SetOpKind::Union,
                    ast::SetOperator::Intersect => SetOpKind::Intersect,
                    ast::SetOperator::Except | ast::SetOperator::Minus => SetOpKind::Except,
                };
                let all = matches!(set_quantifier, ast::SetQuantifier::All);
                let (lp, lc) = self.set_expr(left)?;
                let (rp, rc) = self.set_expr(right)?;
                let (lp, rp, cols) = self.unify(lp, lc, rp, rc, op_name(op))?;
                Ok((
                    Plan::SetOp {
                        op,
                        all,
                        left: Box::new(lp),
                        right: Box::new(rp),
                    },
                    cols,
                ))
            }
            ast::SetExpr::Table(t) => {
                let name = t.table_name.as_ref().map(ident).unwrap_or_default();
                let (plan, scope, _) = self.relation(&name, None, &[])?;
                let cols = scope
                    .cols
                    .iter()
                    .map(|c| OutCol {
                        name: c.name.clone(),
                        ty: c.ty.clone(),
                    })
                    .collect();
                Ok((plan, cols))
            }
            other => bail!(FEATURE_NOT_SUPPORTED, "{other} is not supported here"),
        }
    }

    /// Makes two inputs of a set operation agree on column count and types.
    fn unify(
        &mut self,
        lp: Plan,
        lc: Vec<OutCol>,
        rp: Plan,
        rc: Vec<OutCol>,
        what: &str,
    ) -> Result<(Plan, Plan, Vec<OutCol>)> {
        if lc.len() != rc.len() {
            bail!(
                SYNTAX_ERROR,
                "each {what} query must have the same number of columns"
            );
        }
        let mut types = Vec::with_capacity(lc.len());
        for (l, r) in lc.iter().zip(&rc) {
            let t = DataType::common(&l.ty, &r.ty).ok_or_else(|| {
                err!(
                    DATATYPE_MISMATCH,
                    "{what} types {} and {} cannot be matched",
                    l.ty,
                    r.ty
                )
            })?;
            types.push(if t == DataType::Unknown {
                DataType::Text
            } else {
                t
            });
        }
        let cast_side = |p: Plan, cols: &[OutCol]| -> Plan {
            if cols.iter().zip(&types).all(|(c, t)| &c.ty == t) {
                return p;
            }
            let exprs = cols
                .iter()
                .zip(&types)
                .enumerate()
                .map(|(i, (c, t))| {
                    if &c.ty == t {
                        Expr::Column(i)
                    } else {
                        Expr::Cast(Box::new(Expr::Column(i)), t.clone())
                    }
                })
                .collect();
            Plan::Project {
                input: Box::new(p),
                exprs,
            }
        };
        let lp = cast_side(lp, &lc);
        let rp = cast_side(rp, &rc);
        let cols = lc
            .into_iter()
            .zip(types)
            .map(|(c, ty)| OutCol { name: c.name, ty })
            .collect();
        Ok((lp, rp, cols))
    }

    /// VALUES (...), (...): column types are the common type of each column.
    pub fn values(
        &mut self,
        v: &ast::Values,
        targets: Option<&[DataType]>,
    ) -> Result<(Plan, Vec<OutCol>)> {
        let scope = Scope::default();
        let mut rows = Vec::with_capacity(v.rows.len());
        let mut types: Vec<DataType> = Vec::new();
        for (ri, row) in v.rows.iter().enumerate() {
            let row = &row.content;
            if ri > 0 && row.len() != types.len() {
                bail!(SYNTAX_ERROR, "VALUES lists must all be the same length");
            }
            let mut bound = Vec::with_capacity(row.len());
            for (ci, e) in row.iter().enumerate() {
                let (x, t) = match (e, targets.and_then(|t| t.get(ci))) {
                    (ast::Expr::Identifier(i), Some(_))
                        if i.value.eq_ignore_ascii_case("default") && i.quote_style.is_none() =>
                    {
                        (Expr::Literal(Value::Null), DataType::Unknown)
                    }
                    _ => self.expr(e, &scope, &mut AggContext::default())?,
                };
                if ri == 0 {
                    types.push(t.clone());
                } else {
                    types[ci] = DataType::common(&types[ci], &t).ok_or_else(|| {
                        err!(
                            DATATYPE_MISMATCH,
                            "VALUES types {} and {} cannot be matched",
                            types[ci],
                            t
                        )
                    })?;
                }
                bound.push((x, t));
            }
            rows.push(bound);
        }
        if let Some(t) = targets {
            for (i, ty) in types.iter_mut().enumerate() {
                if *ty == DataType::Unknown {
                    if let Some(target) = t.get(i) {
                        *ty = target.clone();
                    }
                }
            }
        }
        let mut out_rows = Vec::with_capacity(rows.len());
        for row in rows {
            let mut r = Vec::with_capacity(row.len());
            for (i, (x, t)) in row.into_iter().enumerate() {
                let target = if types[i] == DataType::Unknown {
                    DataType::Text
                } else {
                    types[i].clone()
                };
                r.push(self.coerce(x, &t, &target)?);
            }
            out_rows.push(r);
        }
        let cols = types
            .into_iter()
            .enumerate()
            .map(|(i, ty)| OutCol {
                name: format!("column{}", i + 1),
                ty: if ty == DataType::Unknown {
                    DataType::Text
                } else {
                    ty
                },
            })
            .collect();
        Ok((Plan::Values { rows: out_rows }, cols))
    }

    fn select(
        &mut self,
        s: &ast::Select,
        order_by: &[ast::OrderByExpr],
    ) -> Result<(Plan, Vec<OutCol>)> {
        // FROM
        let (mut plan, scope) = self.from(&s.from)?;
        // WHERE
        if let Some(w) = &s.selection {
            let (pred, t) = self.expr(
                w,
                &scope,
                &mut AggContext {
                    allowed: false,
                    clause: Some("WHERE"),
                },
            )?;
            self.expect_bool(&t, "WHERE")?;
            plan = plan.filter(Some(pred));
        }
        // SELECT list, bound against the FROM scope, aggregates allowed.
        let mut agg = AggContext {
            allowed: true,
            clause: None,
        };
        let mut items: Vec<(Expr, OutCol)> = Vec::new();
        for item in &s.projection {
            match item {
                ast::SelectItem::Wildcard(_) => {
                    if scope.cols.is_empty() {
                        bail!(
                            SYNTAX_ERROR,
                            "SELECT * with no tables specified is not valid"
                        );
                    }
                    for (i, c) in scope.cols.iter().enumerate() {
                        if !c.hidden {
                            items.push((
                                Expr::Column(i),
                                OutCol {
                                    name: c.name.clone(),
                                    ty: c.ty.clone(),
                                },
                            ));
                        }
                    }
                }
                ast::SelectItem::QualifiedWildcard(kind, _) => {
                    let t = match kind {
                        ast::SelectItemQualifiedWildcardKind::ObjectName(n) => object_name(n)?,
                        ast::SelectItemQualifiedWildcardKind::Expr(e) => {
                            bail!(FEATURE_NOT_SUPPORTED, "{e}.* is not supported")
                        }
                    };
                    if !scope.has_table(&t) {
                        bail!(
                            UNDEFINED_TABLE,
                            "missing FROM-clause entry for table \"{t}\""
                        );
                    }
                    for (i, c) in scope.cols.iter().enumerate() {
                        if c.table.as_deref() == Some(t.as_str()) {
                            items.push((
                                Expr::Column(i),
                                OutCol {
                                    name: c.name.clone(),
                                    ty: c.ty.clone(),
                                },
                            ));
                        }
                    }
                }
                ast::SelectItem::UnnamedExpr(e) => {
                    let (x, t) = self.expr(e, &scope, &mut agg)?;
                    items.push((
                        x,
                        OutCol {
                            name: column_name(e),
                            ty: t,
                        },
                    ));
                }
                ast::SelectItem::ExprWithAlias { expr, alias } => {
                    let (x, t) = self.expr(expr, &scope, &mut agg)?;
                    items.push((
                        x,
                        OutCol {
                            name: ident(alias),
                            ty: t,
                        },
                    ));
                }
                other => bail!(
                    FEATURE_NOT_SUPPORTED,
                    "select item {other} is not supported"
                ),
            }
        }
        // GROUP BY
        let mut groups: Vec<Expr> = Vec::new();
        let mut grouping_sets: Option<Vec<Vec<usize>>> = None;
        match &s.group_by {
            ast::GroupByExpr::All(_) => {
                bail!(FEATURE_NOT_SUPPORTED, "GROUP BY ALL is not supported")
            }
            ast::GroupByExpr::Expressions(exprs, mods) => {
                if !mods.is_empty() {
                    bail!(
                        FEATURE_NOT_SUPPORTED,
                        "GROUP BY modifiers are not supported"
                    );
                }
                for e in exprs {
                    match e {
                        ast::Expr::GroupingSets(sets) => {
                            let mut idx_sets = Vec::new();
                            for set in sets {
                                let mut idx = Vec::new();
                                for g in set {
                                    let x = self.group_expr(g, &scope, &items)?;
                                    idx.push(push_unique(&mut groups, x));
                                }
                                idx_sets.push(idx);
                            }
                            grouping_sets = Some(idx_sets);
                        }
                        ast::Expr::Rollup(sets) | ast::Expr::Cube(sets) => {
                            let mut cols = Vec::new();
                            for set in sets {
                                let mut idx = Vec::new();
                                for g in set {
                                    let x = self.group_expr(g, &scope, &items)?;
                                    idx.push(push_unique(&mut groups, x));
                                }
                                cols.push(idx);
                            }
                            let sets: Vec<Vec<usize>> = if matches!(e, ast::Expr::Rollup(_)) {
                                (0..=cols.len()).rev().map(|n| cols[..n].concat()).collect()
                            } else {
                                let n = cols.len();
                                (0..(1usize << n))
                                    .rev()
                                    .map(|mask| {
                                        (0..n)
                                            .filter(|i| mask & (1 << (n - 1 - i)) != 0)
                                            .flat_map(|i| cols[i].clone())
                                            .collect()
                                    })
                                    .collect()
                            };
                            grouping_sets = Some(sets);
                        }
                        e => {
                            let x = self.group_expr(e, &scope, &items)?;
                            push_unique(&mut groups, x);
                        }
                    }
                }
            }
        }
        // HAVING
        let having = match &s.having {
            Some(h) => {
                let (x, t) = self.expr(h, &scope, &mut agg)?;
                self.expect_bool(&t, "HAVING")?;
                Some(x)
            }
            None => None,
        };
        // ORDER BY: output names and positions first, then expressions over the FROM scope.
        let out_cols: Vec<OutCol> = items.iter().map(|(_, c)| c.clone()).collect();
        let mut hidden: Vec<Expr> = Vec::new();
        let mut keys: Vec<(usize, bool, bool)> = Vec::new();
        let (distinct, distinct_on) = match &s.distinct {
            None | Some(ast::Distinct::All) => (false, None),
            Some(ast::Distinct::Distinct) => (true, None),
            Some(ast::Distinct::On(exprs)) => (false, Some(exprs.clone())),
        };
        for ob in order_by {
            let (desc, nulls_first) = order_options(ob);
            if let Some(pos) = self.output_position(&ob.expr, &out_cols)? {
                keys.push((pos, desc, nulls_first));
                continue;
            }
            let (x, _) = self.expr(&ob.expr, &scope, &mut agg)?;
            if let Some(pos) = items.iter().position(|(e, _)| *e == x) {
                keys.push((pos, desc, nulls_first));
                continue;
            }
            if distinct {
                bail!(
                    INVALID_COLUMN_REFERENCE,
                    "for SELECT DISTINCT, ORDER BY expressions must appear in select list"
                );
            }
            hidden.push(x);
            keys.push((items.len() + hidden.len() - 1, desc, nulls_first));
        }
        let mut on_keys = Vec::new();
        if let Some(exprs) = &distinct_on {
            for e in exprs {
                let pos = match self.output_position(e, &out_cols)? {
                    Some(p) => p,
                    None => {
                        let (x, _) = self.expr(e, &scope, &mut agg)?;
                        match items.iter().position(|(i, _)| *i == x) {
                            Some(p) => p,
                            None => {
                                hidden.push(x);
                                items.len() + hidden.len() - 1
                            }
                        }
                    }
                };
                on_keys.push(pos);
            }
        }
        // Aggregation.
        let has_aggs = items.iter().any(|(e, _)| contains_agg(e))
            || having.as_ref().is_some_and(contains_agg)
            || hidden.iter().any(contains_agg);
        let mut exprs: Vec<Expr> = items.into_iter().map(|(e, _)| e).collect();
        exprs.extend(hidden);
        let mut having = having;
        if has_aggs || !groups.is_empty() || grouping_sets.is_some() {
            let mut aggs: Vec<AggCall> = Vec::new();
            let ngroups = groups.len();
            let rewrite =
                |e: Expr, aggs: &mut Vec<AggCall>| rewrite_grouped(e, &groups, aggs, &scope);
            exprs = exprs
                .into_iter()
                .map(|e| rewrite(e, &mut aggs))
                .collect::<Result<_>>()?;
            having = having.map(|h| rewrite(h, &mut aggs)).transpose()?;
            let agg_plan = match grouping_sets {
                None => Plan::Aggregate {
                    input: Box::new(plan),
                    groups: groups.clone(),
                    aggs,
                },
                Some(sets) => {
                    // One aggregate per grouping set, the missing keys NULL, glued by UNION ALL.
                    let mut branches = Vec::new();
                    for set in sets {
                        let sub_groups: Vec<Expr> =
                            set.iter().map(|&i| groups[i].clone()).collect();
                        let agg = Plan::Aggregate {
                            input: Box::new(plan.clone()),
                            groups: sub_groups,
                            aggs: aggs.clone(),
                        };
                        let mut proj = Vec::with_capacity(ngroups + aggs.len());
                        for g in 0..ngroups {
                            proj.push(match set.iter().position(|&i| i == g) {
                                Some(p) => Expr::Column(p),
                                None => Expr::Literal(Value::Null),
                            });
                        }
                        for a in 0..aggs.len() {
                            proj.push(Expr::Column(set.len() + a));
                        }
                        branches.push(Plan::Project {
                            input: Box::new(agg),
                            exprs: proj,
                        });
                    }
                    branches
                        .into_iter()
                        .reduce(|l, r| Plan::SetOp {
                            op: SetOpKind::Union,
                            all: true,
                            left: Box::new(l),
                            right: Box::new(r),
                        })
                        .expect("at least one grouping set")
                }
            };
            plan = agg_plan.filter(having);
        } else if having.is_some() {
            plan = plan.filter(having);
        }
        let width = exprs.len();
        plan = Plan::Project {
            input: Box::new(plan),
            exprs,
        };
        if distinct {
            plan = Plan::Distinct {
                input: Box::new(plan),
            };
        }
        if !keys.is_empty() {
            let keys = keys
                .into_iter()
                .map(|(pos, desc, nulls_first)| SortKey {
                    expr: Expr::Column(pos),
                    desc,
                    nulls_first,
                })
                .collect();
            plan = Plan::Sort {
                input: Box::new(plan),
                keys,
            };
        }
        if distinct_on.is_some() {
            plan = Plan::DistinctOn {
                input: Box::new(plan),
                keys: on_keys,
            };
        }
        if width > out_cols.len() {
            plan = Plan::Project {
                input: Box::new(plan),
                exprs: (0..out_cols.len()).map(Expr::Column).collect(),
            };
        }
        Ok((plan, out_cols))
    }

    fn group_expr(
        &mut self,
        e: &ast::Expr,
        scope: &Scope,
        items: &[(Expr, OutCol)],
    ) -> Result<Expr> {
        // GROUP BY 2 and GROUP BY alias refer to select items.
        if let ast::Expr::Value(v) = e {
            if let ast::Value::Number(n, _) = &v.value {
                let pos: usize = n
                    .parse()
                    .map_err(|_| err!(SYNTAX_ERROR, "invalid GROUP BY position {n}"))?;
                if pos == 0 || pos > items.len() {
                    bail!(
                        INVALID_COLUMN_REFERENCE,
                        "GROUP BY position {pos} is not in select list"
                    );
                }
                let x = items[pos - 1].0.clone();
                if contains_agg(&x) {
                    bail!(
                        GROUPING_ERROR,
                        "aggregate functions are not allowed in GROUP BY"
                    );
                }
                return Ok(x);
            }
        }
        if let ast::Expr::Identifier(i) = e {
            let name = ident(i);
            if scope.find(None, &name)?.is_none() {
                if let Some((x, _)) = items.iter().find(|(_, c)| c.name == name) {
                    return Ok(x.clone());
                }
            }
        }
        let (x, _) = self.expr(e, scope, &mut AggContext::default())?;
        Ok(x)
    }

    /// ORDER BY over a query's output columns (set operations): names and positions only.
    fn output_order_by(
        &mut self,
        order_by: &[ast::OrderByExpr],
        cols: &[OutCol],
        _scope: Option<&Scope>,
    ) -> Result<Vec<SortKey>> {
        let mut keys = Vec::new();
        for ob in order_by {
            let (desc, nulls_first) = order_options(ob);
            let pos = match self.output_position(&ob.expr, cols)? {
                Some(p) => p,
                None => {
                    // An expression over the output columns.
                    let scope = Scope::from_out(None, cols);
                    let (x, _) = self.expr(&ob.expr, &scope, &mut AggContext::default())?;
                    keys.push(SortKey {
                        expr: x,
                        desc,
                        nulls_first,
                    });
                    continue;
                }
            };
            keys.push(SortKey {
                expr: Expr::Column(pos),
                desc,
                nulls_first,
            });
        }
        Ok(keys)
    }

    /// `ORDER BY 2` or `ORDER BY name` where name is an output column.
    fn output_position(&mut self, e: &ast::Expr, cols: &[OutCol]) -> Result<Option<usize>> {
        match e {
            ast::Expr::Value(v) => {
                if let ast::Value::Number(n, _) = &v.value {
                    let pos: usize = n
                        .parse()
                        .map_err(|_| err!(SYNTAX_ERROR, "invalid ORDER BY position {n}"))?;
                    if pos == 0 || pos > cols.len() {
                        bail!(
                            INVALID_COLUMN_REFERENCE,
                            "ORDER BY position {pos} is not in select list"
                        );
                    }
                    return Ok(Some(pos - 1));
                }
                Ok(None)
            }
            ast::Expr::Identifier(i) => {
                let name = ident(i);
                let hits: Vec<usize> = cols
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.name == name)
                    .map(|(i, _)| i)
                    .collect();
                match hits.len() {
                    0 => Ok(None),
                    1 => Ok(Some(hits[0])),
                    _ => {
                        // Several output columns of that name: PostgreSQL calls it ambiguous
                        // unless they are the same expression; take the first.
                        Ok(Some(hits[0]))
                    }
                }
            }
            _ => Ok(None),
        }
    }

    // -- FROM -----------------------------------------------------------------------------

    fn from(&mut self, from: &[ast::TableWithJoins]) -> Result<(Plan, Scope)> {
        if from.is_empty() {
            return Ok((Plan::Values { rows: vec![vec![]] }, Scope::default()));
        }
        let mut acc: Option<(Plan, Scope)> = None;
        for twj in from {
            let (p, s) = self.table_with_joins(twj)?;
            acc = Some(match acc {
                None => (p, s),
                Some((lp, ls)) => self.join(lp, ls, p, s, JoinKind::Inner, None)?,
            });
        }
        Ok(acc.expect("from is not empty"))
    }

    fn join(
        &mut self,
        lp: Plan,
        ls: Scope,
        rp: Plan,
        rs: Scope,
        kind: JoinKind,
        on: Option<Expr>,
    ) -> Result<(Plan, Scope)> {
        let left_width = ls.cols.len();
        let right_width = rs.cols.len();
        let mut scope = ls;
        scope.cols.extend(rs.cols);
        Ok((
            Plan::Join {
                left: Box::new(lp),
                right: Box::new(rp),
                kind,
                on,
                equi: Vec::new(),
                left_width,
                right_width,
            },
            scope,
        ))
    }

    fn table_with_joins(&mut self, twj: &ast::TableWithJoins) -> Result<(Plan, Scope)> {
        let (mut plan, mut scope) = self.table_factor(&twj.relation)?;
        for j in &twj.joins {
            let (rp, rs) = self.table_factor(&j.relation)?;
            use ast::JoinOperator as J;
            let (kind, constraint) = match &j.join_operator {
                J::Join(c) | J::Inner(c) => (JoinKind::Inner, Some(c)),
                J::Left(c) | J::LeftOuter(c) => (JoinKind::Left, Some(c)),
                J::Right(c) | J::RightOuter(c) => (JoinKind::Right, Some(c)),
                J::FullOuter(c) => (JoinKind::Full, Some(c)),
                J::CrossJoin(_) => (JoinKind::Inner, None),
                other => bail!(FEATURE_NOT_SUPPORTED, "join {other:?} is not supported"),
            };
            let left_width = scope.cols.len();
            let mut combined = scope.clone();
            combined.cols.extend(rs.cols.iter().cloned());
            let mut using: Vec<String> = Vec::new();
            let on = match constraint {
                None | Some(ast::JoinConstraint::None) => None,
                Some(ast::JoinConstraint::On(e)) => {
                    let (x, t) = self.expr(e, &combined, &mut AggContext::default())?;
                    self.expect_bool(&t, "JOIN/ON")?;
                    Some(x)
                }
                Some(ast::JoinConstraint::Using(names)) => {
                    for n in names {
                        using.push(object_name(n)?);
                    }
                    None
                }
                Some(ast::JoinConstraint::Natural) => {
                    for c in scope.cols.iter().filter(|c| !c.hidden) {
                        if rs.cols.iter().any(|r| !r.hidden && r.name == c.name)
                            && !using.contains(&c.name)
                        {
                            using.push(c.name.clone());
                        }
                    }
                    None
                }
                Some(other) => bail!(
                    FEATURE_NOT_SUPPORTED,
                    "join constraint {other:?} is not supported"
                ),
            };
            let mut on = on;
            let mut merged: Vec<(String, usize, usize)> = Vec::new();
            for name in &using {
                let l = scope.find(None, name)?.ok_or_else(|| {
                    err!(
                        UNDEFINED_COLUMN,
                        "column \"{name}\" specified in USING clause does not exist in left table"
                    )
                })?;
                let r = rs.find(None, name)?.ok_or_else(|| {
                    err!(
                        UNDEFINED_COLUMN,
                        "column \"{name}\" specified in USING clause does not exist in right table"
                    )
                })?;
                let (lt, rt) = (scope.cols[l].ty.clone(), rs.cols[r].ty.clone());
                let eq = self.compare(
                    CmpOp::Eq,
                    Expr::Column(l),
                    lt,
                    Expr::Column(left_width + r),
                    rt,
                )?;
                on = Some(match on {
                    None => eq,
                    Some(prev) => Expr::And(Box::new(prev), Box::new(eq)),
                });
                merged.push((name.clone(), l, left_width + r));
            }
            let right_width = rs.cols.len();
            plan = Plan::Join {
                left: Box::new(plan),
                right: Box::new(rp),
                kind,
                on,
                equi: Vec::new(),
                left_width,
                right_width,
            };
            if !merged.is_empty() {
                // USING/NATURAL: the join columns come first, once each (for a FULL join the
                // value of whichever side has one); the originals stay reachable qualified.
                let mut exprs = Vec::new();
                let mut cols = Vec::new();
                for (name, l, r) in &merged {
                    let (lt, rt) = (combined.cols[*l].ty.clone(), combined.cols[*r].ty.clone());
                    let ty = DataType::common(&lt, &rt).unwrap_or(lt.clone());
                    exprs.push(match kind {
                        JoinKind::Full => Expr::Coalesce(vec![Expr::Column(*l), Expr::Column(*r)]),
                        JoinKind::Right => Expr::Column(*r),
                        _ => Expr::Column(*l),
                    });
                    cols.push(ScopeCol {
                        table: None,
                        name: name.clone(),
                        ty,
                        hidden: false,
                    });
                    combined.cols[*l].hidden = true;
                    combined.cols[*r].hidden = true;
                }
                exprs.extend((0..combined.cols.len()).map(Expr::Column));
                cols.extend(combined.cols);
                plan = Plan::Project {
                    input: Box::new(plan),
                    exprs,
                };
                combined = Scope { cols };
            }
            scope = combined;
        }
        Ok((plan, scope))
    }

    fn table_factor(&mut self, tf: &ast::TableFactor) -> Result<(Plan, Scope)> {
        match tf {
            ast::TableFactor::Table {
                name, alias, args, ..
            } => {
                let parts = object_name_parts(name);
                let tname = parts.last().cloned().unwrap_or_default();
                if let Some(args) = args {
                    return self.table_function(&tname, &args.args, alias.as_ref());
                }
                let alias_name = alias.as_ref().map(|a| ident(&a.name));
                let col_aliases: Vec<String> = alias
                    .as_ref()
                    .map(|a| a.columns.iter().map(|c| ident(&c.name)).collect())
                    .unwrap_or_default();
                let schema = parts.len().checked_sub(2).map(|i| parts[i].as_str());
                if let Some(bound) = crate::system::bind_relation(
                    self.txn,
                    schema,
                    &tname,
                    alias_name.as_deref(),
                    &col_aliases,
                )? {
                    return Ok(bound);
                }
                let (plan, scope, _) =
                    self.relation(&tname, alias_name.as_deref(), &col_aliases)?;
                Ok((plan, scope))
            }
            ast::TableFactor::Derived {
                subquery,
                alias,
                lateral,
                ..
            } => {
                if *lateral {
                    bail!(FEATURE_NOT_SUPPORTED, "LATERAL is not supported");
                }
                let (plan, cols) = self.subquery_plan(subquery)?;
                let name = alias.as_ref().map(|a| ident(&a.name));
                let mut scope = Scope::from_out(name.as_deref(), &cols);
                if let Some(a) = alias {
                    rename_columns(
                        &mut scope,
                        &a.columns.iter().map(|c| ident(&c.name)).collect::<Vec<_>>(),
                    )?;
                }
                Ok((plan, scope))
            }
            ast::TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                let (plan, mut scope) = self.table_with_joins(table_with_joins)?;
                if let Some(a) = alias {
                    let n = ident(&a.name);
                    for c in &mut scope.cols {
                        c.table = Some(n.clone());
                    }
                }
                Ok((plan, scope))
            }
            ast::TableFactor::Function {
                name, args, alias, ..
            } => {
                let n = object_name(name)?;
                self.table_function(&n, args, alias.as_ref())
            }
            other => bail!(FEATURE_NOT_SUPPORTED, "FROM item {other} is not supported"),
        }
    }

    fn table_function(
        &mut self,
        name: &str,
        args: &[ast::FunctionArg],
        alias: Option<&ast::TableAlias>,
    ) -> Result<(Plan, Scope)> {
        if name == "unnest" {
            return self.unnest(args, alias);
        }
        if name != "generate_series" {
            bail!(UNDEFINED_FUNCTION, "function {name} does not exist");
        }
        let scope = Scope::default();
        let mut bound = Vec::new();
        for a in args {
            match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => {
                    bound.push(self.expr(e, &scope, &mut AggContext::default())?)
                }
                _ => bail!(SYNTAX_ERROR, "generate_series takes plain arguments"),
            }
        }
        if bound.len() < 2 || bound.len() > 3 {
            bail!(
                UNDEFINED_FUNCTION,
                "function generate_series with {} arguments does not exist",
                bound.len()
            );
        }
        let ty = bound
            .iter()
            .take(2)
            .try_fold(DataType::Unknown, |acc, (_, t)| {
                DataType::common(&acc, t).ok_or_else(|| {
                    err!(
                        UNDEFINED_FUNCTION,
                        "function generate_series({acc}, {t}) does not exist"
                    )
                })
            })?;
        let ty = match ty {
            DataType::Unknown | DataType::Int2 => DataType::Int4,
            t if t.is_numeric() || t.is_temporal() => t,
            t => bail!(
                UNDEFINED_FUNCTION,
                "function generate_series({t}, {t}) does not exist"
            ),
        };
        let mut it = bound.into_iter();
        let (s, st) = it.next().expect("2 args");
        let (e, et) = it.next().expect("2 args");
        let start = self.coerce(s, &st, &ty)?;
        let stop = self.coerce(e, &et, &ty)?;
        let step = match it.next() {
            Some((x, t)) => {
                let step_ty = if ty.is_temporal() {
                    DataType::Interval
                } else {
                    ty.clone()
                };
                Some(self.coerce(x, &t, &step_ty)?)
            }
            None => None,
        };
        let alias_name = alias
            .map(|a| ident(&a.name))
            .unwrap_or_else(|| "generate_series".to_string());
        let col_name = alias
            .and_then(|a| a.columns.first().map(|c| ident(&c.name)))
            .unwrap_or_else(|| {
                alias
                    .map(|a| ident(&a.name))
                    .unwrap_or_else(|| "generate_series".into())
            });
        let scope = Scope {
            cols: vec![ScopeCol {
                table: Some(alias_name),
                name: col_name,
                ty: ty.clone(),
                hidden: false,
            }],
        };
        Ok((
            Plan::Series {
                start,
                stop,
                step,
                ty,
            },
            scope,
        ))
    }

    /// `unnest(array)` in FROM: one row per element, as text (arrays are carried in their text
    /// form). Planned as `generate_series(1, array_upper(a, 1))` with each element picked out.
    fn unnest(
        &mut self,
        args: &[ast::FunctionArg],
        alias: Option<&ast::TableAlias>,
    ) -> Result<(Plan, Scope)> {
        let [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e))] = args else {
            bail!(
                UNDEFINED_FUNCTION,
                "function unnest with {} arguments does not exist",
                args.len()
            );
        };
        let (array, ty) = self.expr(e, &Scope::default(), &mut AggContext::default())?;
        let array = self.coerce_result(array, &ty, &DataType::Text)?;
        let one = Expr::Literal(Value::Int4(1));
        let (upper, _) = crate::system::bind_function(
            self.txn,
            "array_upper",
            vec![
                (array.clone(), DataType::Text),
                (one.clone(), DataType::Int4),
            ],
        )?;
        let (element, _) = crate::system::bind_function(
            self.txn,
            "text_array_element",
            vec![(array, DataType::Text), (Expr::Column(0), DataType::Int4)],
        )?;
        let plan = Plan::Project {
            input: Box::new(Plan::Series {
                start: one,
                stop: upper,
                step: None,
                ty: DataType::Int4,
            }),
            exprs: vec![element],
        };
        let table = alias.map_or_else(|| "unnest".to_string(), |a| ident(&a.name));
        let column = alias
            .and_then(|a| a.columns.first().map(|c| ident(&c.name)))
            .unwrap_or_else(|| table.clone());
        let scope = Scope {
            cols: vec![ScopeCol {
                table: Some(table),
                name: column,
                ty: DataType::Text,
                hidden: false,
            }],
        };
        Ok((plan, scope))
    }

    /// A named relation: CTE, view or table.
    fn relation(
        &mut self,
        name: &str,
        alias: Option<&str>,
        col_aliases: &[String],
    ) -> Result<(Plan, Scope, Option<Arc<Table>>)> {
        let visible = alias.unwrap_or(name);
        // CTEs, innermost first.
        let cte = self.ctes.iter().rev().find_map(|m| m.get(name).cloned());
        if let Some(def) = cte {
            let (plan, cols) = match def {
                CteDef::Work { id, cols } => (Plan::WorkTable { id }, cols),
                CteDef::Query { query, columns } => self.cte_plan(name, &query, &columns)?,
            };
            let mut scope = Scope::from_out(Some(visible), &cols);
            rename_columns(&mut scope, col_aliases)?;
            return Ok((plan, scope, None));
        }
        if let Some(table) = catalog::table(self.txn, name)? {
            let table = Arc::new(table);
            let mut scope = Scope {
                cols: table
                    .columns
                    .iter()
                    .map(|c| ScopeCol {
                        table: Some(visible.to_string()),
                        name: c.name.clone(),
                        ty: c.ty.clone(),
                        hidden: false,
                    })
                    .collect(),
            };
            rename_columns(&mut scope, col_aliases)?;
            return Ok((
                Plan::Scan {
                    table: table.clone(),
                    access: Access::Full,
                    filter: None,
                    residual: None,
                    reverse: false,
                    with_key: false,
                },
                scope,
                Some(table),
            ));
        }
        if let Some(view) = catalog::view(self.txn, name)? {
            if self.view_stack.iter().any(|v| v == name) {
                bail!(
                    INVALID_RECURSION,
                    "infinite recursion detected in view \"{name}\""
                );
            }
            let q = parse_query(&view.query)?;
            self.view_stack.push(name.to_string());
            // A view sees only the catalog, not the CTEs or columns around its use.
            let saved_ctes = std::mem::take(&mut self.ctes);
            let saved_outer = std::mem::take(&mut self.outer);
            let saved_corr = std::mem::take(&mut self.correlated);
            let bound = self.query(&q);
            self.ctes = saved_ctes;
            self.outer = saved_outer;
            self.correlated = saved_corr;
            self.view_stack.pop();
            let (plan, cols) = bound?;
            let mut scope = Scope::from_out(Some(visible), &cols);
            rename_columns(&mut scope, &view.columns)?;
            rename_columns(&mut scope, col_aliases)?;
            return Ok((plan, scope, None));
        }
        bail!(UNDEFINED_TABLE, "relation \"{name}\" does not exist")
    }

    fn cte_plan(
        &mut self,
        name: &str,
        query: &ast::Query,
        columns: &[String],
    ) -> Result<(Plan, Vec<OutCol>)> {
        // Recursive: `base UNION [ALL] step` where step refers to the CTE itself.
        if let ast::SetExpr::SetOperation {
            left,
            op: ast::SetOperator::Union,
            set_quantifier,
            right,
        } = query.body.as_ref()
        {
            if query_mentions(right, name) {
                let all = matches!(set_quantifier, ast::SetQuantifier::All);
                let (bp, bc) = self.set_expr(left)?;
                let mut cols = bc;
                for (c, n) in cols.iter_mut().zip(columns) {
                    c.name = n.clone();
                }
                let id = self.fresh_id();
                let mut frame = HashMap::new();
                frame.insert(
                    name.to_string(),
                    CteDef::Work {
                        id,
                        cols: cols.clone(),
                    },
                );
                self.ctes.push(frame);
                let step = self.set_expr(right);
                self.ctes.pop();
                let (sp, sc) = step?;
                let (bp, sp, unified) = self.unify(bp, cols.clone(), sp, sc, "UNION")?;
                if unified.iter().zip(&cols).any(|(u, c)| u.ty != c.ty) {
                    bail!(DATATYPE_MISMATCH, "recursive query \"{name}\" column types differ between its non-recursive and recursive terms");
                }
                let plan = Plan::Recursive {
                    id,
                    base: Box::new(bp),
                    step: Box::new(sp),
                    all,
                };
                let plan = self.query_tail(plan, query, &cols)?;
                return Ok((plan, cols));
            }
        }
        let (plan, mut cols) = self.subquery_plan(query)?;
        for (c, n) in cols.iter_mut().zip(columns) {
            c.name = n.clone();
        }
        Ok((plan, cols))
    }

    /// ORDER BY / LIMIT of a recursive CTE's own query.
    fn query_tail(&mut self, plan: Plan, q: &ast::Query, cols: &[OutCol]) -> Result<Plan> {
        let mut plan = plan;
        if let Some(ob) = &q.order_by {
            if let ast::OrderByKind::Expressions(v) = &ob.kind {
                let keys = self.output_order_by(v, cols, None)?;
                plan = Plan::Sort {
                    input: Box::new(plan),
                    keys,
                };
            }
        }
        if let Some(ast::LimitClause::LimitOffset { limit, offset, .. }) = &q.limit_clause {
            let scope = Scope::default();
            let limit = limit
                .as_ref()
                .map(|e| {
                    self.expr(e, &scope, &mut AggContext::default())
                        .map(|x| x.0)
                })
                .transpose()?;
            let offset = offset
                .as_ref()
                .map(|o| {
                    self.expr(&o.value, &scope, &mut AggContext::default())
                        .map(|x| x.0)
                })
                .transpose()?;
            plan = Plan::Limit {
                input: Box::new(plan),
                limit,
                offset,
            };
        }
        Ok(plan)
    }

    /// A subquery in FROM or an expression: bound with the current scopes as its outer scopes.
    fn subquery_plan(&mut self, q: &ast::Query) -> Result<(Plan, Vec<OutCol>)> {
        self.query(q)
    }

    // -- expressions ----------------------------------------------------------------------

    fn expect_bool(&self, t: &DataType, what: &str) -> Result<()> {
        if *t != DataType::Bool && *t != DataType::Unknown {
            bail!(
                DATATYPE_MISMATCH,
                "argument of {what} must be type boolean, not type {t}"
            );
        }
        Ok(())
    }

    /// Converts a bound expression of type `from` to type `to` (implicitly, as an assignment or
    /// an operand would be): literals are converted now, parameters take the type.
    pub fn coerce(&mut self, e: Expr, from: &DataType, to: &DataType) -> Result<Expr> {
        if from == to || *to == DataType::Unknown {
            return Ok(e);
        }
        match e {
            Expr::Literal(v) => Ok(Expr::Literal(value::cast(v, to)?)),
            Expr::Param(i, DataType::Unknown) => {
                if self.params.len() <= i {
                    self.params.resize(i + 1, DataType::Unknown);
                }
                if self.params[i] == DataType::Unknown {
                    self.params[i] = to.clone();
                }
                Ok(Expr::Param(i, to.clone()))
            }
            e => {
                if from.is_integer() && to.is_integer() && matches!(to, DataType::Int8) {
                    // Widening an integer: values compare and compute the same.
                    return Ok(Expr::Cast(Box::new(e), to.clone()));
                }
                Ok(Expr::Cast(Box::new(e), to.clone()))
            }
        }
    }

    /// Binds `a op b` with PostgreSQL's operand type resolution.
    fn compare(&mut self, op: CmpOp, a: Expr, at: DataType, b: Expr, bt: DataType) -> Result<Expr> {
        let (a, b) = self.unify_operands(a, at, b, bt, op.symbol())?;
        Ok(Expr::Cmp(op, Box::new(a), Box::new(b)))
    }

    fn unify_operands(
        &mut self,
        a: Expr,
        at: DataType,
        b: Expr,
        bt: DataType,
        op: &str,
    ) -> Result<(Expr, Expr)> {
        match (&at, &bt) {
            (DataType::Unknown, DataType::Unknown) => {
                let a = self.coerce(a, &at, &DataType::Text)?;
                let b = self.coerce(b, &bt, &DataType::Text)?;
                Ok((a, b))
            }
            (DataType::Unknown, t) => {
                let a = self.coerce(a, &at, t)?;
                Ok((a, b))
            }
            (t, DataType::Unknown) => {
                let b = self.coerce(b, &bt, t)?;
                Ok((a, b))
            }
            (x, y) => {
                if DataType::common(x, y).is_none() {
                    bail!(UNDEFINED_FUNCTION, "operator does not exist: {x} {op} {y}");
                }
                Ok((a, b))
            }
        }
    }

    fn bind_list(
        &mut self,
        list: &[ast::Expr],
        scope: &Scope,
        agg: &mut AggContext,
    ) -> Result<Vec<(Expr, DataType)>> {
        list.iter().map(|e| self.expr(e, scope, agg)).collect()
    }

    /// Resolves a column name in the scope and then in enclosing scopes.
    fn column(
        &mut self,
        table: Option<&str>,
        name: &str,
        scope: &Scope,
    ) -> Result<(Expr, DataType)> {
        if let Some(i) = scope.find(table, name)? {
            return Ok((Expr::Column(i), scope.cols[i].ty.clone()));
        }
        for depth in 1..=self.outer.len() {
            let s = &self.outer[self.outer.len() - depth];
            if let Some(i) = s.find(table, name)? {
                let ty = s.cols[i].ty.clone();
                let n = self.correlated.len();
                for level in 0..depth.min(n) {
                    self.correlated[n - 1 - level] = true;
                }
                return Ok((Expr::Outer { depth, index: i }, ty));
            }
        }
        match table {
            Some(t) => {
                if scope.has_table(t) || self.outer.iter().any(|s| s.has_table(t)) {
                    bail!(UNDEFINED_COLUMN, "column {t}.{name} does not exist")
                } else {
                    bail!(
                        UNDEFINED_TABLE,
                        "missing FROM-clause entry for table \"{t}\""
                    )
                }
            }
            None => {
                let tables: Vec<String> = scope
                    .cols
                    .iter()
                    .filter_map(|c| c.table.clone())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                if tables.is_empty() {
                    bail!(UNDEFINED_COLUMN, "column \"{name}\" does not exist")
                } else {
                    bail!(
                        UNDEFINED_COLUMN,
                        "column \"{name}\" does not exist in {}",
                        tables.join(", ")
                    )
                }
            }
        }
    }

    /// Binds a subquery used as an expression.
    fn expr_subquery(
        &mut self,
        q: &ast::Query,
        scope: &Scope,
        kind: SubqueryKind,
    ) -> Result<(Subquery, Vec<OutCol>)> {
        self.outer.push(scope.clone());
        self.correlated.push(false);
        let bound = self.query(q);
        let correlated = self.correlated.pop().expect("pushed above");
        self.outer.pop();
        let (plan, cols) = bound?;
        Ok((
            Subquery {
                plan: Arc::new(plan),
                kind,
                correlated,
                id: self.fresh_id(),
            },
            cols,
        ))
    }

    /// Binds an expression against a scope. Returns the expression and its type.
    fn expr(
        &mut self,
        e: &ast::Expr,
        scope: &Scope,
        agg: &mut AggContext,
    ) -> Result<(Expr, DataType)> {
        use ast::Expr as A;
        Ok(match e {
            A::Identifier(i) => {
                let name = ident(i);
                self.column(None, &name, scope)?
            }
            A::CompoundIdentifier(parts) => {
                let names: Vec<String> = parts.iter().map(ident).collect();
                match names.as_slice() {
                    [t, c] => self.column(Some(t), c, scope)?,
                    [_, t, c] => self.column(Some(t), c, scope)?,
                    _ => bail!(SYNTAX_ERROR, "improper qualified name: {e}"),
                }
            }
            A::Value(v) => literal(&v.value, self)?,
            A::TypedString(ts) => {
                let ty = data_type(&ts.data_type)?;
                let s = match &ts.value.value {
                    ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => {
                        s.clone()
                    }
                    other => other.to_string(),
                };
                (Expr::Literal(value::parse_as(&s, &ty)?), ty)
            }
            A::Nested(inner) => self.expr(inner, scope, agg)?,
            A::UnaryOp { op, expr } => {
                let (x, t) = self.expr(expr, scope, agg)?;
                match op {
                    ast::UnaryOperator::Not => {
                        let x = self.coerce(x, &t, &DataType::Bool)?;
                        self.expect_bool(&t, "NOT")?;
                        (Expr::Not(Box::new(x)), DataType::Bool)
                    }
                    ast::UnaryOperator::Minus => {
                        if let Expr::Literal(v) = &x {
                            // Fold, so -2147483648 is an integer.
                            if let Some(i) = v.as_i64() {
                                if i == 2147483648 {
                                    return Ok((
                                        Expr::Literal(Value::Int4(i32::MIN)),
                                        DataType::Int4,
                                    ));
                                }
                                if i == i64::MAX && matches!(v, Value::Int8(_)) {
                                    return Ok((Expr::Literal(value::negate(v)?), t));
                                }
                            }
                            if !v.is_null() && t != DataType::Unknown {
                                return Ok((Expr::Literal(value::negate(v)?), t));
                            }
                        }
                        let t = if t == DataType::Unknown {
                            DataType::Float8
                        } else {
                            t
                        };
                        if !(t.is_numeric() || t == DataType::Interval) {
                            bail!(UNDEFINED_FUNCTION, "operator does not exist: - {t}");
                        }
                        (Expr::Neg(Box::new(x)), t)
                    }
                    ast::UnaryOperator::Plus => {
                        if !(t.is_numeric() || t == DataType::Unknown || t == DataType::Interval) {
                            bail!(UNDEFINED_FUNCTION, "operator does not exist: + {t}");
                        }
                        (x, t)
                    }
                    other => bail!(FEATURE_NOT_SUPPORTED, "operator {other} is not supported"),
                }
            }
            A::BinaryOp { left, op, right } => self.binary(left, op, right, scope, agg)?,
            A::IsNull(x) => (
                Expr::IsNull(Box::new(self.expr(x, scope, agg)?.0), false),
                DataType::Bool,
            ),
            A::IsNotNull(x) => (
                Expr::IsNull(Box::new(self.expr(x, scope, agg)?.0), true),
                DataType::Bool,
            ),
            A::IsTrue(x) | A::IsNotTrue(x) | A::IsFalse(x) | A::IsNotFalse(x) => {
                let (b, t) = self.expr(x, scope, agg)?;
                let b = self.coerce(b, &t, &DataType::Bool)?;
                self.expect_bool(&t, "IS TRUE")?;
                let want = matches!(e, A::IsTrue(_) | A::IsNotTrue(_));
                let negated = matches!(e, A::IsNotTrue(_) | A::IsNotFalse(_));
                (Expr::IsBool(Box::new(b), want, negated), DataType::Bool)
            }
            A::IsUnknown(x) | A::IsNotUnknown(x) => {
                let (b, _) = self.expr(x, scope, agg)?;
                (
                    Expr::IsNull(Box::new(b), matches!(e, A::IsNotUnknown(_))),
                    DataType::Bool,
                )
            }
            A::IsDistinctFrom(a, b) | A::IsNotDistinctFrom(a, b) => {
                let (x, xt) = self.expr(a, scope, agg)?;
                let (y, yt) = self.expr(b, scope, agg)?;
                let (x, y) = self.unify_operands(x, xt, y, yt, "IS DISTINCT FROM")?;
                (
                    Expr::IsDistinct(
                        Box::new(x),
                        Box::new(y),
                        matches!(e, A::IsNotDistinctFrom(..)),
                    ),
                    DataType::Bool,
                )
            }
            A::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let (x, xt) = self.expr(expr, scope, agg)?;
                let (lo, lt) = self.expr(low, scope, agg)?;
                let (hi, ht) = self.expr(high, scope, agg)?;
                let ge = self.compare(CmpOp::GtEq, x.clone(), xt.clone(), lo, lt)?;
                let le = self.compare(CmpOp::LtEq, x, xt, hi, ht)?;
                let both = Expr::And(Box::new(ge), Box::new(le));
                (
                    if *negated {
                        Expr::Not(Box::new(both))
                    } else {
                        both
                    },
                    DataType::Bool,
                )
            }
            A::In {
                expr,
                target: ast::InTarget::List(list),
                negated,
                ..
            } => {
                let (x, xt) = self.expr(expr, scope, agg)?;
                let items = self.bind_list(list, scope, agg)?;
                let mut ty = xt.clone();
                for (_, t) in &items {
                    ty = DataType::common(&ty, t).ok_or_else(|| {
                        err!(UNDEFINED_FUNCTION, "operator does not exist: {xt} = {t}")
                    })?;
                }
                if ty == DataType::Unknown {
                    ty = DataType::Text;
                }
                let x = self.coerce(
                    x,
                    &xt,
                    &if xt == DataType::Unknown {
                        ty.clone()
                    } else {
                        xt.clone()
                    },
                )?;
                let mut out = Vec::with_capacity(items.len());
                for (it, t) in items {
                    out.push(if t == DataType::Unknown {
                        self.coerce(it, &t, &ty)?
                    } else {
                        it
                    });
                }
                (
                    Expr::InList {
                        expr: Box::new(x),
                        list: out,
                        negated: *negated,
                    },
                    DataType::Bool,
                )
            }
            A::In {
                expr,
                target: ast::InTarget::Subquery(subquery),
                negated,
                ..
            } => {
                let (x, xt) = self.expr(expr, scope, agg)?;
                let (sub, cols) =
                    self.expr_subquery(subquery, scope, SubqueryKind::Any(CmpOp::Eq))?;
                if cols.len() != 1 {
                    bail!(SYNTAX_ERROR, "subquery has too many columns");
                }
                let x = self.coerce(x, &xt, &cols[0].ty)?;
                if DataType::common(&xt, &cols[0].ty).is_none() {
                    bail!(
                        UNDEFINED_FUNCTION,
                        "operator does not exist: {xt} = {}",
                        cols[0].ty
                    );
                }
                (
                    Expr::Subquery {
                        sub,
                        operand: Some(Box::new(x)),
                        negated: *negated,
                    },
                    DataType::Bool,
                )
            }
            A::AnyOp {
                left,
                compare_op,
                right,
                ..
            }
            | A::AllOp {
                left,
                compare_op,
                right,
            } => {
                let op = cmp_op(compare_op)
                    .ok_or_else(|| err!(FEATURE_NOT_SUPPORTED, "ANY/ALL with {compare_op}"))?;
                let all = matches!(e, A::AllOp { .. });
                let (x, xt) = self.expr(left, scope, agg)?;
                match right.as_ref() {
                    A::Subquery(q) => {
                        let kind = if all {
                            SubqueryKind::All(op)
                        } else {
                            SubqueryKind::Any(op)
                        };
                        let (sub, cols) = self.expr_subquery(q, scope, kind)?;
                        if cols.len() != 1 {
                            bail!(SYNTAX_ERROR, "subquery has too many columns");
                        }
                        let x = self.coerce(x, &xt, &cols[0].ty)?;
                        (
                            Expr::Subquery {
                                sub,
                                operand: Some(Box::new(x)),
                                negated: false,
                            },
                            DataType::Bool,
                        )
                    }
                    // `x = ANY (array)`, the array in text form (see `system`).
                    other if !all && op == CmpOp::Eq => {
                        let arr = self.expr(other, scope, agg)?;
                        crate::system::bind_function(
                            self.txn,
                            "text_array_contains",
                            vec![arr, (x, xt)],
                        )?
                    }
                    other => bail!(
                        FEATURE_NOT_SUPPORTED,
                        "ANY/ALL over {other} is not supported"
                    ),
                }
            }
            A::Exists { subquery, negated } => {
                let (sub, _) = self.expr_subquery(subquery, scope, SubqueryKind::Exists)?;
                (
                    Expr::Subquery {
                        sub,
                        operand: None,
                        negated: *negated,
                    },
                    DataType::Bool,
                )
            }
            A::Subquery(q) => {
                let (sub, cols) = self.expr_subquery(q, scope, SubqueryKind::Scalar)?;
                if cols.len() != 1 {
                    bail!(SYNTAX_ERROR, "subquery must return only one column");
                }
                let ty = cols[0].ty.clone();
                (
                    Expr::Subquery {
                        sub,
                        operand: None,
                        negated: false,
                    },
                    ty,
                )
            }
            A::Like {
                negated,
                expr,
                pattern,
                escape_char,
                any: false,
            }
            | A::ILike {
                negated,
                expr,
                pattern,
                escape_char,
                any: false,
            } => {
                let (x, xt) = self.expr(expr, scope, agg)?;
                let (p, pt) = self.expr(pattern, scope, agg)?;
                let x = self.coerce(x, &xt, &DataType::Text)?;
                let p = self.coerce(p, &pt, &DataType::Text)?;
                if !(xt.is_text() || xt == DataType::Unknown) {
                    bail!(
                        UNDEFINED_FUNCTION,
                        "operator does not exist: {xt} ~~ unknown"
                    );
                }
                let escape = match escape_char.as_deref() {
                    None => None,
                    Some(ast::Expr::Value(v)) => match &v.value {
                        ast::Value::SingleQuotedString(s) => {
                            let mut cs = s.chars();
                            match (cs.next(), cs.next()) {
                                (None, _) => Some('\0'),
                                (Some(c), None) => Some(c),
                                _ => bail!(INVALID_ESCAPE_SEQUENCE, "invalid escape string"),
                            }
                        }
                        _ => bail!(SYNTAX_ERROR, "ESCAPE needs a string"),
                    },
                    Some(_) => bail!(FEATURE_NOT_SUPPORTED, "ESCAPE needs a literal"),
                };
                (
                    Expr::Like {
                        expr: Box::new(x),
                        pattern: Box::new(p),
                        escape,
                        case_insensitive: matches!(e, A::ILike { .. }),
                        negated: *negated,
                    },
                    DataType::Bool,
                )
            }
            A::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let base = match operand {
                    Some(o) => Some(self.expr(o, scope, agg)?),
                    None => None,
                };
                let mut whens = Vec::new();
                let mut results = Vec::new();
                for cw in conditions {
                    let (c, ct) = self.expr(&cw.condition, scope, agg)?;
                    let c = match &base {
                        Some((_, bt)) => {
                            if DataType::common(bt, &ct).is_none() {
                                bail!(UNDEFINED_FUNCTION, "operator does not exist: {bt} = {ct}");
                            }
                            self.coerce(c, &ct, bt)?
                        }
                        None => {
                            self.expect_bool(&ct, "CASE/WHEN")?;
                            self.coerce(c, &ct, &DataType::Bool)?
                        }
                    };
                    whens.push(c);
                    results.push(self.expr(&cw.result, scope, agg)?);
                }
                let otherwise = match else_result {
                    Some(e) => Some(self.expr(e, scope, agg)?),
                    None => None,
                };
                let ty = result_type(
                    results.iter().chain(otherwise.iter()).map(|(_, t)| t),
                    "CASE",
                )?;
                let mut pairs = Vec::new();
                for (w, (r, rt)) in whens.into_iter().zip(results) {
                    pairs.push((w, self.coerce_result(r, &rt, &ty)?));
                }
                let otherwise = match otherwise {
                    Some((o, ot)) => Some(Box::new(self.coerce_result(o, &ot, &ty)?)),
                    None => None,
                };
                (
                    Expr::Case {
                        operand: base.map(|(b, _)| Box::new(b)),
                        whens: pairs,
                        otherwise,
                    },
                    ty,
                )
            }
            A::Cast {
                expr,
                data_type: dt,
                ..
            } => {
                if let Some(name) = regclass_literal(expr, dt) {
                    // 'name'::regclass looks the relation up by name.
                    let oid = crate::system::regclass_oid(self.txn, name)?;
                    return Ok((Expr::Literal(Value::Int8(oid)), DataType::Int8));
                }
                let ty = data_type(dt)?;
                let (x, xt) = self.expr(expr, scope, agg)?;
                // An explicit cast to a length-limited string truncates (an assignment errors).
                let limit = match &ty {
                    DataType::Varchar(Some(n)) | DataType::Char(n) => Some(*n as i32),
                    _ => None,
                };
                let (x, xt) = match limit {
                    Some(n) => {
                        let text = self.coerce_result(x, &xt, &DataType::Text)?;
                        let n = Expr::Literal(Value::Int4(n));
                        self.scalar_call("left", vec![(text, DataType::Text), (n, DataType::Int4)])?
                    }
                    None => (x, xt),
                };
                match x {
                    Expr::Literal(v) => (Expr::Literal(value::cast(v, &ty)?), ty),
                    Expr::Param(i, DataType::Unknown) => (
                        self.coerce(Expr::Param(i, DataType::Unknown), &xt, &ty)?,
                        ty,
                    ),
                    x => (Expr::Cast(Box::new(x), ty.clone()), ty),
                }
            }
            A::Extract { field, expr, .. } => {
                let (x, xt) = self.expr(expr, scope, agg)?;
                let x = if xt == DataType::Unknown {
                    self.coerce(x, &xt, &DataType::Timestamp)?
                } else {
                    x
                };
                let fname = field.to_string().to_lowercase();
                let f = Func {
                    name: format!("extract_{fname}"),
                    call: extract_call(&fname)?,
                    strict: true,
                    ty: DataType::Numeric(None),
                };
                (Expr::Func(f, vec![x]), DataType::Numeric(None))
            }
            A::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![expr.as_ref().clone()];
                args.push(
                    substring_from
                        .as_deref()
                        .cloned()
                        .unwrap_or(ast::Expr::value(ast::Value::Number("1".into(), false))),
                );
                if let Some(f) = substring_for {
                    args.push(f.as_ref().clone());
                }
                self.call("substr", &args, scope, agg)?
            }
            A::Trim {
                expr,
                trim_where,
                trim_what,
                ..
            } => {
                let name = match trim_where {
                    Some(ast::TrimWhereField::Leading) => "ltrim",
                    Some(ast::TrimWhereField::Trailing) => "rtrim",
                    _ => "btrim",
                };
                let mut args = vec![expr.as_ref().clone()];
                if let Some(w) = trim_what {
                    args.push(w.as_ref().clone());
                }
                self.call(name, &args, scope, agg)?
            }
            A::Position { expr, r#in } => self.call(
                "strpos",
                &[r#in.as_ref().clone(), expr.as_ref().clone()],
                scope,
                agg,
            )?,
            A::Ceil { expr, .. } => self.call("ceil", &[expr.as_ref().clone()], scope, agg)?,
            A::Floor { expr, .. } => self.call("floor", &[expr.as_ref().clone()], scope, agg)?,
            A::Function(f) => self.function(f, scope, agg)?,
            A::Interval(iv) => {
                let (x, _) = self.expr(&iv.value, scope, agg)?;
                let s = match x {
                    Expr::Literal(v) => v.to_text().unwrap_or_default(),
                    _ => bail!(FEATURE_NOT_SUPPORTED, "INTERVAL needs a literal"),
                };
                let s = match &iv.leading_field {
                    Some(f) if !s.chars().any(|c| c.is_alphabetic()) => format!("{s} {f}"),
                    _ => s,
                };
                (
                    Expr::Literal(value::parse_as(&s, &DataType::Interval)?),
                    DataType::Interval,
                )
            }
            A::Tuple(_) => bail!(FEATURE_NOT_SUPPORTED, "row constructors are not supported"),
            A::Collate { expr, .. } => self.expr(expr, scope, agg)?,
            A::AtTimeZone { .. } => bail!(FEATURE_NOT_SUPPORTED, "AT TIME ZONE is not supported"),
            // `arr[i]` on an array in text form (see `system`).
            A::CompoundFieldAccess { root, access_chain } if access_chain.len() == 1 => {
                let ast::AccessExpr::Subscript(ast::Subscript::Index { index }) = &access_chain[0]
                else {
                    bail!(FEATURE_NOT_SUPPORTED, "expression {e} is not supported");
                };
                let arr = self.expr(root, scope, agg)?;
                let idx = self.expr(index, scope, agg)?;
                crate::system::bind_function(self.txn, "text_array_element", vec![arr, idx])?
            }
            other => bail!(FEATURE_NOT_SUPPORTED, "expression {other} is not supported"),
        })
    }

    /// A CASE branch result converted to the CASE's type.
    fn coerce_result(&mut self, e: Expr, from: &DataType, to: &DataType) -> Result<Expr> {
        if from == to || *from == DataType::Unknown {
            return self.coerce(e, from, to);
        }
        Ok(Expr::Cast(Box::new(e), to.clone()))
    }

    fn binary(
        &mut self,
        left: &ast::Expr,
        op: &ast::BinaryOperator,
        right: &ast::Expr,
        scope: &Scope,
        agg: &mut AggContext,
    ) -> Result<(Expr, DataType)> {
        use ast::BinaryOperator as B;
        let (a, at) = self.expr(left, scope, agg)?;
        let (b, bt) = self.expr(right, scope, agg)?;
        if let Some(cmp) = cmp_op(op) {
            return Ok((self.compare(cmp, a, at, b, bt)?, DataType::Bool));
        }
        let regex = match op {
            B::PGRegexMatch => Some("textregexeq"),
            B::PGRegexNotMatch => Some("textregexne"),
            B::PGRegexIMatch => Some("texticregexeq"),
            B::PGRegexNotIMatch => Some("texticregexne"),
            // OPERATOR(pg_catalog.~) and friends, as psql writes them.
            B::PGCustomBinaryOperator(parts) => match parts.last().map(String::as_str) {
                Some("~") => Some("textregexeq"),
                Some("!~") => Some("textregexne"),
                Some("~*") => Some("texticregexeq"),
                Some("!~*") => Some("texticregexne"),
                _ => None,
            },
            _ => None,
        };
        if let Some(f) = regex {
            return crate::system::bind_function(self.txn, f, vec![(a, at), (b, bt)]);
        }
        Ok(match op {
            B::And | B::Or => {
                self.expect_bool(&at, if *op == B::And { "AND" } else { "OR" })?;
                self.expect_bool(&bt, if *op == B::And { "AND" } else { "OR" })?;
                let a = self.coerce(a, &at, &DataType::Bool)?;
                let b = self.coerce(b, &bt, &DataType::Bool)?;
                if *op == B::And {
                    (Expr::And(Box::new(a), Box::new(b)), DataType::Bool)
                } else {
                    (Expr::Or(Box::new(a), Box::new(b)), DataType::Bool)
                }
            }
            B::StringConcat => {
                let a = if at == DataType::Unknown {
                    self.coerce(a, &at, &DataType::Text)?
                } else {
                    a
                };
                let b = if bt == DataType::Unknown {
                    self.coerce(b, &bt, &DataType::Text)?
                } else {
                    b
                };
                // char(n) converts to text without its trailing blanks.
                let a = match at {
                    DataType::Char(_) => self.scalar_call("rtrim", vec![(a, DataType::Text)])?.0,
                    _ => a,
                };
                let b = match bt {
                    DataType::Char(_) => self.scalar_call("rtrim", vec![(b, DataType::Text)])?.0,
                    _ => b,
                };
                let ty = if at == DataType::Bytea && bt == DataType::Bytea {
                    DataType::Bytea
                } else {
                    DataType::Text
                };
                if !(at.is_text()
                    || bt.is_text()
                    || at == DataType::Unknown
                    || bt == DataType::Unknown
                    || ty == DataType::Bytea)
                {
                    bail!(UNDEFINED_FUNCTION, "operator does not exist: {at} || {bt}");
                }
                (Expr::Concat(Box::new(a), Box::new(b)), ty)
            }
            B::Plus | B::Minus | B::Multiply | B::Divide | B::Modulo => {
                let aop = match op {
                    B::Plus => ArithOp::Add,
                    B::Minus => ArithOp::Sub,
                    B::Multiply => ArithOp::Mul,
                    B::Divide => ArithOp::Div,
                    _ => ArithOp::Mod,
                };
                // Untyped literals take the other side's type (or numeric/interval by form).
                let at2 = if at == DataType::Unknown {
                    guess_unknown(&a, &bt)
                } else {
                    at.clone()
                };
                let bt2 = if bt == DataType::Unknown {
                    guess_unknown(&b, &at2)
                } else {
                    bt.clone()
                };
                let a = self.coerce(a, &at, &at2)?;
                let b = self.coerce(b, &bt, &bt2)?;
                let ty = value::arith_type(aop, &at2, &bt2).ok_or_else(|| {
                    err!(
                        UNDEFINED_FUNCTION,
                        "operator does not exist: {at2} {} {bt2}",
                        aop.symbol()
                    )
                })?;
                if let (Expr::Literal(x), Expr::Literal(y)) = (&a, &b) {
                    // Constant folding (errors such as 1/0 surface when the statement runs,
                    // as in PostgreSQL, unless the expression is reached; fold only on success).
                    if let Ok(v) = value::arith(aop, x, y, &ty) {
                        return Ok((Expr::Literal(v), ty));
                    }
                }
                (Expr::Arith(aop, Box::new(a), Box::new(b), ty.clone()), ty)
            }
            B::PGExp => {
                let at2 = if at == DataType::Unknown {
                    DataType::Float8
                } else {
                    at.clone()
                };
                let bt2 = if bt == DataType::Unknown {
                    DataType::Float8
                } else {
                    bt.clone()
                };
                let x = self.coerce(a, &at, &at2)?;
                let y = self.coerce(b, &bt, &bt2)?;
                self.scalar_call("power", vec![(x, at2), (y, bt2)])?
            }
            other => bail!(FEATURE_NOT_SUPPORTED, "operator {other} is not supported"),
        })
    }

    fn call(
        &mut self,
        name: &str,
        args: &[ast::Expr],
        scope: &Scope,
        agg: &mut AggContext,
    ) -> Result<(Expr, DataType)> {
        let bound = self.bind_list(args, scope, agg)?;
        self.scalar_call(name, bound)
    }

    fn scalar_call(
        &mut self,
        name: &str,
        bound: Vec<(Expr, DataType)>,
    ) -> Result<(Expr, DataType)> {
        let types: Vec<DataType> = bound.iter().map(|(_, t)| t.clone()).collect();
        let Some(r) = functions::resolve(name, &types)? else {
            let list: Vec<String> = types.iter().map(|t| t.to_string()).collect();
            bail!(
                UNDEFINED_FUNCTION,
                "function {name}({}) does not exist",
                list.join(", ")
            );
        };
        let mut args = Vec::with_capacity(bound.len());
        for ((x, t), want) in bound.into_iter().zip(&r.arg_types) {
            args.push(if &t == want {
                x
            } else {
                self.coerce(x, &t, want)?
            });
        }
        let f = Func {
            name: name.to_string(),
            call: r.call,
            strict: r.strict,
            ty: r.return_type.clone(),
        };
        Ok((Expr::Func(f, args), r.return_type))
    }

    fn function(
        &mut self,
        f: &ast::Function,
        scope: &Scope,
        agg: &mut AggContext,
    ) -> Result<(Expr, DataType)> {
        let name = object_name(&f.name)?;
        if f.over.is_some() {
            bail!(FEATURE_NOT_SUPPORTED, "window functions are not supported");
        }
        let mut agg_order: Vec<ast::OrderByExpr> = Vec::new();
        let (args, distinct, star) = match &f.args {
            ast::FunctionArguments::None => (Vec::new(), false, false),
            ast::FunctionArguments::Subquery(q) if name == "array" => {
                // ARRAY(subquery): the values as an array literal in text form.
                let inner = parse_query(&crate::system::array_subquery_sql(&q.to_string()))?;
                return self.expr(&ast::Expr::Subquery(Box::new(inner)), scope, agg);
            }
            ast::FunctionArguments::Subquery(_) => {
                bail!(FEATURE_NOT_SUPPORTED, "function over a subquery")
            }
            ast::FunctionArguments::List(l) => {
                let distinct = matches!(
                    l.duplicate_treatment,
                    Some(ast::DuplicateTreatment::Distinct)
                );
                let mut star = false;
                let mut args = Vec::new();
                for a in &l.args {
                    match a {
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => {
                            args.push(e.clone())
                        }
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard) => star = true,
                        other => bail!(
                            FEATURE_NOT_SUPPORTED,
                            "function argument {other} is not supported"
                        ),
                    }
                }
                for c in &l.clauses {
                    match c {
                        ast::FunctionArgumentClause::OrderBy(ob) => agg_order = ob.clone(),
                        other => bail!(FEATURE_NOT_SUPPORTED, "{other} is not supported"),
                    }
                }
                (args, distinct, star)
            }
        };
        let agg_func = match name.as_str() {
            "count" if star => Some(AggFunc::CountStar),
            "count" => Some(AggFunc::Count),
            "sum" => Some(AggFunc::Sum),
            "avg" => Some(AggFunc::Avg),
            "min" => Some(AggFunc::Min),
            "max" => Some(AggFunc::Max),
            "string_agg" => Some(AggFunc::StringAgg),
            "bool_and" | "every" => Some(AggFunc::BoolAnd),
            "bool_or" => Some(AggFunc::BoolOr),
            _ => None,
        };
        if let Some(func) = agg_func {
            if !agg.allowed {
                bail!(
                    GROUPING_ERROR,
                    "aggregate functions are not allowed {}",
                    agg.clause
                        .map(|c| format!("in {c}"))
                        .unwrap_or_else(|| "here".into())
                );
            }
            // Arguments of an aggregate may not contain aggregates.
            let mut inner = AggContext {
                allowed: false,
                clause: None,
            };
            let mut bound = Vec::new();
            for a in &args {
                bound.push(self.expr(a, scope, &mut inner).map_err(|e| {
                    if e.code == crate::error::code::GROUPING_ERROR {
                        err!(GROUPING_ERROR, "aggregate function calls cannot be nested")
                    } else {
                        e
                    }
                })?);
            }
            let filter = match &f.filter {
                Some(fl) => Some(Box::new(self.expr(fl, scope, &mut inner)?.0)),
                None => None,
            };
            let mut order = Vec::new();
            for ob in &agg_order {
                let (desc, nulls_first) = order_options(ob);
                let (x, _) = self.expr(&ob.expr, scope, &mut inner)?;
                order.push(SortKey {
                    expr: x,
                    desc,
                    nulls_first,
                });
            }
            let (call, ty) = self.aggregate(func, bound, distinct, filter, &name)?;
            return Ok(match call {
                Expr::Agg(mut a) => {
                    a.order_by = order;
                    (Expr::Agg(a), ty)
                }
                other => (other, ty),
            });
        }
        if distinct {
            bail!(
                SYNTAX_ERROR,
                "DISTINCT specified, but {name} is not an aggregate function"
            );
        }
        if crate::system::is_catalog_function(&name) {
            let bound = self.bind_list(&args, scope, agg)?;
            return crate::system::bind_function(self.txn, &name, bound);
        }
        match name.as_str() {
            "coalesce" => {
                let bound = self.bind_list(&args, scope, agg)?;
                let ty = result_type(bound.iter().map(|(_, t)| t), "COALESCE")?;
                let mut list = Vec::new();
                for (x, t) in bound {
                    list.push(self.coerce_result(x, &t, &ty)?);
                }
                Ok((Expr::Coalesce(list), ty))
            }
            "nullif" => {
                if args.len() != 2 {
                    bail!(
                        UNDEFINED_FUNCTION,
                        "function nullif with {} arguments does not exist",
                        args.len()
                    );
                }
                let (a, at) = self.expr(&args[0], scope, agg)?;
                let (b, bt) = self.expr(&args[1], scope, agg)?;
                let ty = if at == DataType::Unknown {
                    bt.clone()
                } else {
                    at.clone()
                };
                let (a, b) = self.unify_operands(a, at, b, bt, "=")?;
                Ok((
                    Expr::NullIf(Box::new(a), Box::new(b)),
                    if ty == DataType::Unknown {
                        DataType::Text
                    } else {
                        ty
                    },
                ))
            }
            "current_setting" | "set_config" => {
                let bound = self.bind_list(&args, scope, agg)?;
                let (op, want) = if name == "current_setting" {
                    (SeqOp::CurrentSetting, &[DataType::Text, DataType::Bool][..])
                } else {
                    (
                        SeqOp::SetConfig,
                        &[DataType::Text, DataType::Text, DataType::Bool][..],
                    )
                };
                let fits = if op == SeqOp::CurrentSetting {
                    (1..=2).contains(&bound.len())
                } else {
                    bound.len() == 3
                };
                if !fits {
                    let list: Vec<String> = bound.iter().map(|(_, t)| t.to_string()).collect();
                    bail!(
                        UNDEFINED_FUNCTION,
                        "function {name}({}) does not exist",
                        list.join(", ")
                    );
                }
                let mut list = Vec::new();
                for ((x, t), want) in bound.into_iter().zip(want) {
                    list.push(if &t == want {
                        x
                    } else {
                        self.coerce_result(x, &t, want)?
                    });
                }
                Ok((Expr::Sequence(op, String::new(), list), DataType::Text))
            }
            "nextval" | "currval" | "setval" => {
                let bound = self.bind_list(&args, scope, agg)?;
                let mut it = bound.into_iter();
                let seq = match it.next() {
                    Some((Expr::Literal(Value::Text(s)), _)) => s.to_lowercase(),
                    _ => bail!(
                        FEATURE_NOT_SUPPORTED,
                        "{name} needs the sequence name as a literal"
                    ),
                };
                let op = match name.as_str() {
                    "nextval" => SeqOp::NextVal,
                    "currval" => SeqOp::CurrVal,
                    _ => SeqOp::SetVal,
                };
                let mut rest = Vec::new();
                for (i, (x, t)) in it.enumerate() {
                    let want = if i == 1 {
                        DataType::Bool
                    } else {
                        DataType::Int8
                    };
                    rest.push(if t == want {
                        x
                    } else {
                        self.coerce_result(x, &t, &want)?
                    });
                }
                Ok((Expr::Sequence(op, seq, rest), DataType::Int8))
            }
            _ => {
                let bound = self.bind_list(&args, scope, agg)?;
                self.scalar_call(&name, bound)
            }
        }
    }

    fn aggregate(
        &mut self,
        func: AggFunc,
        args: Vec<(Expr, DataType)>,
        distinct: bool,
        filter: Option<Box<Expr>>,
        name: &str,
    ) -> Result<(Expr, DataType)> {
        let want = match func {
            AggFunc::CountStar => 0,
            AggFunc::StringAgg => 2,
            _ => 1,
        };
        if args.len() != want {
            bail!(
                UNDEFINED_FUNCTION,
                "function {name} with {} arguments does not exist",
                args.len()
            );
        }
        let arg_ty = args
            .first()
            .map(|(_, t)| t.clone())
            .unwrap_or(DataType::Unknown);
        let ty = match func {
            AggFunc::Count | AggFunc::CountStar => DataType::Int8,
            AggFunc::Sum => match &arg_ty {
                DataType::Int2 | DataType::Int4 => DataType::Int8,
                DataType::Int8 | DataType::Numeric(_) | DataType::Unknown => {
                    DataType::Numeric(None)
                }
                DataType::Float4 => DataType::Float4,
                DataType::Float8 => DataType::Float8,
                DataType::Interval => DataType::Interval,
                t => bail!(UNDEFINED_FUNCTION, "function sum({t}) does not exist"),
            },
            AggFunc::Avg => match &arg_ty {
                t if t.is_integer() => DataType::Numeric(None),
                DataType::Numeric(_) | DataType::Unknown => DataType::Numeric(None),
                DataType::Float4 | DataType::Float8 => DataType::Float8,
                DataType::Interval => DataType::Interval,
                t => bail!(UNDEFINED_FUNCTION, "function avg({t}) does not exist"),
            },
            AggFunc::Min | AggFunc::Max => match &arg_ty {
                DataType::Unknown => DataType::Text,
                DataType::Bool => bail!(
                    UNDEFINED_FUNCTION,
                    "function {name}(boolean) does not exist"
                ),
                t => t.clone(),
            },
            AggFunc::StringAgg => DataType::Text,
            AggFunc::BoolAnd | AggFunc::BoolOr => {
                if !matches!(arg_ty, DataType::Bool | DataType::Unknown) {
                    bail!(
                        UNDEFINED_FUNCTION,
                        "function {name}({arg_ty}) does not exist"
                    );
                }
                DataType::Bool
            }
        };
        let mut bound = Vec::new();
        for (i, (x, t)) in args.into_iter().enumerate() {
            let target = match func {
                AggFunc::StringAgg => DataType::Text,
                AggFunc::BoolAnd | AggFunc::BoolOr => DataType::Bool,
                AggFunc::Sum | AggFunc::Avg if t == DataType::Unknown => DataType::Numeric(None),
                AggFunc::Min | AggFunc::Max if t == DataType::Unknown => DataType::Text,
                _ => t.clone(),
            };
            let _ = i;
            bound.push(
                if t == DataType::Unknown || (func == AggFunc::StringAgg && !t.is_text()) {
                    self.coerce(x, &t, &target)?
                } else {
                    x
                },
            );
        }
        Ok((
            Expr::Agg(Box::new(AggCall {
                func,
                args: bound,
                distinct,
                filter,
                order_by: Vec::new(),
                ty: ty.clone(),
            })),
            ty,
        ))
    }

    /// Binds a standalone expression over a scope (used by DML and DDL).
    pub fn scalar(&mut self, e: &ast::Expr, scope: &Scope) -> Result<(Expr, DataType)> {
        self.expr(e, scope, &mut AggContext::default())
    }

    /// Binds a standalone expression whose value is assigned to a column of type `ty`.
    pub fn assigned(&mut self, e: &ast::Expr, scope: &Scope, ty: &DataType) -> Result<Expr> {
        let (x, t) = self.scalar(e, scope)?;
        self.assign_cast(x, &t, ty)
    }

    /// Assignment conversion: what INSERT and UPDATE apply to a value for a column.
    pub fn assign_cast(&mut self, x: Expr, from: &DataType, to: &DataType) -> Result<Expr> {
        if from == to
            && !matches!(
                to,
                DataType::Varchar(Some(_)) | DataType::Char(_) | DataType::Numeric(Some(_))
            )
        {
            return Ok(x);
        }
        let ok = *from == DataType::Unknown
            || from == to
            || (from.is_numeric() && to.is_numeric())
            || (from.is_text() && to.is_text())
            || (from.is_temporal() && to.is_temporal())
            || to.is_text();
        if !ok {
            bail!(
                DATATYPE_MISMATCH,
                "column is of type {to} but expression is of type {from}"
            );
        }
        match x {
            Expr::Literal(v) => Ok(Expr::Literal(value::cast(v, to)?)),
            Expr::Param(i, DataType::Unknown) => {
                self.coerce(Expr::Param(i, DataType::Unknown), from, to)
            }
            x => Ok(Expr::Cast(Box::new(x), to.clone())),
        }
    }

    /// Binds the RETURNING list (or any select list) over a scope without aggregates.
    pub fn select_list(
        &mut self,
        items: &[ast::SelectItem],
        scope: &Scope,
    ) -> Result<(Vec<Expr>, Vec<OutCol>)> {
        let mut exprs = Vec::new();
        let mut cols = Vec::new();
        for item in items {
            match item {
                ast::SelectItem::Wildcard(_) => {
                    for (i, c) in scope.cols.iter().enumerate() {
                        if !c.hidden {
                            exprs.push(Expr::Column(i));
                            cols.push(OutCol {
                                name: c.name.clone(),
                                ty: c.ty.clone(),
                            });
                        }
                    }
                }
                ast::SelectItem::UnnamedExpr(e) => {
                    let (x, t) = self.scalar(e, scope)?;
                    exprs.push(x);
                    cols.push(OutCol {
                        name: column_name(e),
                        ty: if t == DataType::Unknown {
                            DataType::Text
                        } else {
                            t
                        },
                    });
                }
                ast::SelectItem::ExprWithAlias { expr, alias } => {
                    let (x, t) = self.scalar(expr, scope)?;
                    exprs.push(x);
                    cols.push(OutCol {
                        name: ident(alias),
                        ty: if t == DataType::Unknown {
                            DataType::Text
                        } else {
                            t
                        },
                    });
                }
                other => bail!(FEATURE_NOT_SUPPORTED, "{other} is not supported here"),
            }
        }
        Ok((exprs, cols))
    }

    /// Binds the FROM list of UPDATE ... FROM / DELETE ... USING.
    pub fn from_list(&mut self, from: &[ast::TableWithJoins]) -> Result<(Plan, Scope)> {
        self.from(from)
    }
}

/// Parses one query (view bodies, defaults).
pub fn parse_query(sql: &str) -> Result<ast::Query> {
    let stmts = crate::parse(sql)?;
    match stmts.into_iter().next() {
        Some(ast::Statement::Query(q)) => Ok(*q),
        _ => bail!(SYNTAX_ERROR, "expected a query: {sql}"),
    }
}

/// Parses one expression (column defaults, CHECK constraints).
pub fn parse_expr(sql: &str) -> Result<ast::Expr> {
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    let mut parser = sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(sql)
        .map_err(|e| err!(SYNTAX_ERROR, "{e}"))?;
    parser.parse_expr().map_err(|e| err!(SYNTAX_ERROR, "{e}"))
}

/// The type of a CASE or COALESCE: the common type of its branches (text if all are untyped).
fn result_type<'a>(types: impl Iterator<Item = &'a DataType>, what: &str) -> Result<DataType> {
    let mut ty = DataType::Unknown;
    for t in types {
        ty = DataType::common(&ty, t).ok_or_else(|| {
            err!(
                DATATYPE_MISMATCH,
                "{what} types {ty} and {t} cannot be matched"
            )
        })?;
    }
    Ok(if ty == DataType::Unknown {
        DataType::Text
    } else {
        ty
    })
}

fn op_name(op: SetOpKind) -> &'static str {
    match op {
        SetOpKind::Union => "UNION",
        SetOpKind::Intersect => "INTERSECT",
        SetOpKind::Except => "EXCEPT",
    }
}

fn order_options(ob: &ast::OrderByExpr) -> (bool, bool) {
    let desc = matches!(ob.options.sort, Some(ast::OrderBySort::Desc));
    // PostgreSQL: NULLs are largest, so last ascending and first descending.
    let nulls_first = ob.options.nulls_first.unwrap_or(desc);
    (desc, nulls_first)
}

fn rename_columns(scope: &mut Scope, names: &[String]) -> Result<()> {
    if names.len() > scope.cols.len() {
        bail!(
            INVALID_COLUMN_REFERENCE,
            "table has {} columns available but {} columns specified",
            scope.cols.len(),
            names.len()
        );
    }
    for (c, n) in scope.cols.iter_mut().zip(names) {
        c.name = n.clone();
    }
    Ok(())
}

fn push_unique(groups: &mut Vec<Expr>, x: Expr) -> usize {
    match groups.iter().position(|g| *g == x) {
        Some(i) => i,
        None => {
            groups.push(x);
            groups.len() - 1
        }
    }
}

fn contains_agg(e: &Expr) -> bool {
    let mut found = false;
    e.walk(&mut |x| {
        if matches!(x, Expr::Agg(_)) {
            found = true
        }
    });
    found
}

/// Rewrites an expression bound over the FROM scope to one over the aggregate's output:
/// group keys become their columns, aggregate calls become theirs; any other column
/// reference is a grouping error.
fn rewrite_grouped(
    e: Expr,
    groups: &[Expr],
    aggs: &mut Vec<AggCall>,
    scope: &Scope,
) -> Result<Expr> {
    if let Some(i) = groups.iter().position(|g| *g == e) {
        return Ok(Expr::Column(i));
    }
    match e {
        Expr::Agg(call) => {
            let i = match aggs.iter().position(|a| *a == *call) {
                Some(i) => i,
                None => {
                    aggs.push(*call);
                    aggs.len() - 1
                }
            };
            Ok(Expr::Column(groups.len() + i))
        }
        Expr::Column(i) => {
            let c = &scope.cols[i];
            let t = c
                .table
                .as_deref()
                .map(|t| format!("{t}."))
                .unwrap_or_default();
            bail!(GROUPING_ERROR, "column \"{t}{}\" must appear in the GROUP BY clause or be used in an aggregate function", c.name)
        }
        e => e.map_children(&mut |child| rewrite_grouped(child, groups, aggs, scope)),
    }
}

fn cmp_op(op: &ast::BinaryOperator) -> Option<CmpOp> {
    use ast::BinaryOperator as B;
    Some(match op {
        B::Eq => CmpOp::Eq,
        B::NotEq => CmpOp::NotEq,
        B::Lt => CmpOp::Lt,
        B::LtEq => CmpOp::LtEq,
        B::Gt => CmpOp::Gt,
        B::GtEq => CmpOp::GtEq,
        _ => return None,
    })
}

/// The type an untyped literal takes beside an operand of type `other` in arithmetic.
fn guess_unknown(e: &Expr, other: &DataType) -> DataType {
    match (e, other) {
        (Expr::Literal(Value::Null), t) if *t != DataType::Unknown => t.clone(),
        (_, DataType::Unknown) => DataType::Numeric(None),
        (_, t) if t.is_temporal() => DataType::Interval,
        (_, t) => t.clone(),
    }
}

fn literal(v: &ast::Value, b: &mut Binder) -> Result<(Expr, DataType)> {
    Ok(match v {
        ast::Value::Number(n, _) => {
            if let Ok(i) = n.parse::<i32>() {
                (Expr::Literal(Value::Int4(i)), DataType::Int4)
            } else if let Ok(i) = n.parse::<i64>() {
                (Expr::Literal(Value::Int8(i)), DataType::Int8)
            } else {
                match value::parse_numeric(n) {
                    Ok(d) => (Expr::Literal(Value::Numeric(d)), DataType::Numeric(None)),
                    // Beyond NUMERIC's 28 digits here: keep it as a double.
                    Err(_) => (
                        Expr::Literal(value::parse_as(n, &DataType::Float8)?),
                        DataType::Float8,
                    ),
                }
            }
        }
        ast::Value::SingleQuotedString(s)
        | ast::Value::DollarQuotedString(ast::DollarQuotedString { value: s, .. }) => {
            (Expr::Literal(Value::Text(s.clone())), DataType::Unknown)
        }
        ast::Value::EscapedStringLiteral(s) => {
            (Expr::Literal(Value::Text(s.clone())), DataType::Unknown)
        }
        ast::Value::Boolean(x) => (Expr::Literal(Value::Bool(*x)), DataType::Bool),
        ast::Value::Null => (Expr::Literal(Value::Null), DataType::Unknown),
        ast::Value::Placeholder(p) => {
            let n: usize = p
                .trim_start_matches('$')
                .parse()
                .map_err(|_| err!(SYNTAX_ERROR, "invalid parameter {p}"))?;
            if n == 0 {
                bail!(UNDEFINED_PARAMETER, "there is no parameter $0");
            }
            let i = n - 1;
            if b.params.len() <= i {
                b.params.resize(i + 1, DataType::Unknown);
            }
            let t = b.params[i].clone();
            (Expr::Param(i, t.clone()), t)
        }
        ast::Value::HexStringLiteral(h) => {
            let v = value::parse_as(&format!("\\x{h}"), &DataType::Bytea)?;
            (Expr::Literal(v), DataType::Bytea)
        }
        other => bail!(FEATURE_NOT_SUPPORTED, "literal {other} is not supported"),
    })
}

/// The output column name PostgreSQL gives an unaliased select item.
pub fn column_name(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Identifier(i) => ident(i),
        ast::Expr::CompoundIdentifier(parts) => parts.last().map(ident).unwrap_or_default(),
        ast::Expr::Function(f) => object_name(&f.name).unwrap_or_else(|_| "?column?".into()),
        ast::Expr::Nested(inner) => column_name(inner),
        ast::Expr::Cast {
            expr, data_type, ..
        } => match column_name(expr).as_str() {
            "?column?" => match data_type {
                ast::DataType::Int(_) | ast::DataType::Integer(_) | ast::DataType::Int4(_) => {
                    "int4".into()
                }
                ast::DataType::BigInt(_) | ast::DataType::Int8(_) => "int8".into(),
                ast::DataType::Text => "text".into(),
                ast::DataType::Real | ast::DataType::Float4 => "float4".into(),
                _ => "?column?".into(),
            },
            n => n.to_string(),
        },
        ast::Expr::Case { .. } => "case".into(),
        ast::Expr::Exists { .. } => "exists".into(),
        ast::Expr::Subquery(q) => match q.body.as_ref() {
            ast::SetExpr::Select(s) => match s.projection.first() {
                Some(ast::SelectItem::UnnamedExpr(e)) => column_name(e),
                Some(ast::SelectItem::ExprWithAlias { alias, .. }) => ident(alias),
                _ => "?column?".into(),
            },
            _ => "?column?".into(),
        },
        ast::Expr::Extract { .. } => "extract".into(),
        ast::Expr::Substring { .. } => "substring".into(),
        ast::Expr::Trim { .. } => "btrim".into(),
        ast::Expr::Position { .. } => "position".into(),
        ast::Expr::Ceil { .. } => "ceil".into(),
        ast::Expr::Floor { .. } => "floor".into(),
        ast::Expr::Value(v) if matches!(v.value, ast::Value::Boolean(_)) => "bool".into(),
        _ => "?column?".into(),
    }
}

/// The name in `'name'::regclass` (or `pg_catalog.regclass`), if `expr` is a string literal
/// cast to regclass.
fn regclass_literal<'a>(expr: &'a ast::Expr, dt: &ast::DataType) -> Option<&'a str> {
    let named = match dt {
        ast::DataType::Regclass => true,
        ast::DataType::Custom(ty, _) => object_name(ty).ok()? == "regclass",
        _ => false,
    };
    if !named {
        return None;
    }
    match expr {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// True if a query body mentions a table by this name anywhere (to detect recursive CTEs).
fn query_mentions(body: &ast::SetExpr, name: &str) -> bool {
    let text = body.to_string().to_lowercase();
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|w| w == name)
}

fn extract_call(field: &str) -> Result<functions::ScalarImpl> {
    let f: functions::ScalarImpl = match field {
        "year" => |a, _| crate::datetime::extract("year", &a[0]),
        "month" => |a, _| crate::datetime::extract("month", &a[0]),
        "day" => |a, _| crate::datetime::extract("day", &a[0]),
        "hour" => |a, _| crate::datetime::extract("hour", &a[0]),
        "minute" => |a, _| crate::datetime::extract("minute", &a[0]),
        "second" => |a, _| crate::datetime::extract("second", &a[0]),
        "millisecond" | "milliseconds" => |a, _| crate::datetime::extract("milliseconds", &a[0]),
        "microsecond" | "microseconds" => |a, _| crate::datetime::extract("microseconds", &a[0]),
        "dow" => |a, _| crate::datetime::extract("dow", &a[0]),
        "isodow" => |a, _| crate::datetime::extract("isodow", &a[0]),
        "doy" => |a, _| crate::datetime::extract("doy", &a[0]),
        "week" => |a, _| crate::datetime::extract("week", &a[0]),
        "quarter" => |a, _| crate::datetime::extract("quarter", &a[0]),
        "epoch" => |a, _| crate::datetime::extract("epoch", &a[0]),
        "decade" => |a, _| crate::datetime::extract("decade", &a[0]),
        "century" => |a, _| crate::datetime::extract("century", &a[0]),
        "millennium" => |a, _| crate::datetime::extract("millennium", &a[0]),
        "isoyear" => |a, _| crate::datetime::extract("isoyear", &a[0]),
        other => bail!(
            FEATURE_NOT_SUPPORTED,
            "EXTRACT field {other} is not supported"
        ),
    };
    Ok(f)
}
