//! The optimizer: rewrites a bound plan.
//!
//! - Predicate pushdown: the terms of a WHERE or ON clause move to the lowest node that has
//!   every column they read (into a join side, into a scan's filter).
//! - Join method: equality terms between the two sides become hash-join keys; a join without
//!   them runs as a nested loop.
//! - Access path: a scan with usable terms reads through the primary key, a dense index (point
//!   or range) or a sparse index (zone skipping), using ANALYZE statistics where present;
//!   otherwise it reads the whole table. The scan keeps its full filter, so an access path only
//!   has to return a superset of the matching rows.
//! - Sort elimination: a sort on the primary key over a full scan becomes an ordered scan.

use crate::catalog::{IndexKind, Table};
use crate::expr::{CmpOp, Expr};
use crate::plan::{Access, JoinKind, KeyRange, Plan, SortKey};
use crate::value::DataType;

pub fn optimize(plan: Plan) -> Plan {
    match plan {
        Plan::Filter { input, predicate } => {
            if matches!(
                *input,
                Plan::Join {
                    kind: JoinKind::Inner,
                    ..
                }
            ) {
                return reorder_joins(*input, predicate.conjuncts());
            }
            let input = optimize(*input);
            push_filter(input, predicate.conjuncts())
        }
        Plan::Join {
            left,
            right,
            kind,
            on,
            equi,
            left_width,
            right_width,
        } => {
            let left = optimize(*left);
            let right = optimize(*right);
            let join = Plan::Join {
                left: Box::new(left),
                right: Box::new(right),
                kind,
                on: None,
                equi,
                left_width,
                right_width,
            };
            match on {
                None => join,
                Some(on) => push_join_terms(join, on.conjuncts()),
            }
        }
        Plan::Project { input, exprs } => Plan::Project {
            input: Box::new(optimize(*input)),
            exprs,
        },
        Plan::Aggregate {
            input,
            groups,
            aggs,
        } => Plan::Aggregate {
            input: Box::new(optimize(*input)),
            groups,
            aggs,
        },
        Plan::Sort { input, keys } => sort_elimination(optimize(*input), keys),
        Plan::Limit {
            input,
            limit,
            offset,
        } => Plan::Limit {
            input: Box::new(optimize(*input)),
            limit,
            offset,
        },
        Plan::Distinct { input } => Plan::Distinct {
            input: Box::new(optimize(*input)),
        },
        Plan::DistinctOn { input, keys } => Plan::DistinctOn {
            input: Box::new(optimize(*input)),
            keys,
        },
        Plan::SetOp {
            op,
            all,
            left,
            right,
        } => Plan::SetOp {
            op,
            all,
            left: Box::new(optimize(*left)),
            right: Box::new(optimize(*right)),
        },
        Plan::Recursive {
            id,
            base,
            step,
            all,
        } => Plan::Recursive {
            id,
            base: Box::new(optimize(*base)),
            step: Box::new(optimize(*step)),
            all,
        },
        Plan::Scan {
            table,
            access: Access::Full,
            filter: Some(f),
            reverse,
            with_key,
            ..
        } => choose_access(table, f, reverse, with_key),
        p => p,
    }
}

/// Flattens a tree of inner joins into its inputs (with their widths), adding ON terms.
fn flatten(
    plan: Plan,
    offset: usize,
    leaves: &mut Vec<(Plan, usize, usize)>,
    terms: &mut Vec<Expr>,
) {
    match plan {
        Plan::Join {
            left,
            right,
            kind: JoinKind::Inner,
            on,
            left_width,
            right_width,
            ..
        } => {
            if let Some(on) = on {
                terms.extend(on.conjuncts().into_iter().map(|t| t.shift(offset as isize)));
            }
            flatten(*left, offset, leaves, terms);
            flatten(*right, offset + left_width, leaves, terms);
            let _ = right_width;
        }
        p => {
            let w = width(&p);
            leaves.push((p, w, offset));
        }
    }
}

/// The number of columns a plan produces (for the inputs of joins).
fn width(p: &Plan) -> usize {
    match p {
        Plan::Scan {
            table, with_key, ..
        } => table.columns.len() + *with_key as usize,
        Plan::Values { rows } => rows.first().map(|r| r.len()).unwrap_or(0),
        Plan::Series { .. } => 1,
        Plan::Filter { input, .. }
        | Plan::Sort { input, .. }
        | Plan::Limit { input, .. }
        | Plan::Distinct { input }
        | Plan::DistinctOn { input, .. } => width(input),
        Plan::Project { exprs, .. } => exprs.len(),
        Plan::Join {
            left_width,
            right_width,
            ..
        } => left_width + right_width,
        Plan::Aggregate { groups, aggs, .. } => groups.len() + aggs.len(),
        Plan::SetOp { left, .. } => width(left),
        Plan::Recursive { base, .. } => width(base),
        Plan::WorkTable { .. } => usize::MAX,
    }
}

/// A guess of a leaf's row count: table statistics, less for leaves with constant filters.
fn estimate(p: &Plan, own_terms: usize) -> f64 {
    let base = match p {
        Plan::Scan { table, .. } => table
            .stats
            .as_ref()
            .map(|s| s.rows as f64)
            .unwrap_or(1000.0),
        Plan::Values { rows } => rows.len() as f64,
        _ => 1000.0,
    };
    base / 10f64.powi(own_terms as i32)
}

/// Orders the inputs of a chain of inner joins greedily: start from the most selective input,
/// then keep adding an input connected to those already joined by a WHERE/ON term (so every
/// step can be a hash join), the smallest first. Restores the original column order on top.
fn reorder_joins(join: Plan, where_terms: Vec<Expr>) -> Plan {
    let mut leaves = Vec::new();
    let mut terms = where_terms;
    flatten(join, 0, &mut leaves, &mut terms);
    if leaves.iter().any(|(_, w, _)| *w == usize::MAX) {
        // A work table's width is unknown here: keep the written order.
        let mut it = leaves.into_iter();
        let (first, fw, _) = it.next().expect("a join has inputs");
        let mut plan = optimize(first);
        let mut w = fw;
        for (p, pw, _) in it {
            plan = Plan::Join {
                left: Box::new(plan),
                right: Box::new(optimize(p)),
                kind: JoinKind::Inner,
                on: None,
                equi: Vec::new(),
                left_width: w,
                right_width: pw,
            };
            w += pw;
        }
        return push_filter(plan, terms);
    }
    let total: usize = leaves.iter().map(|(_, w, _)| w).sum();
    let leaf_of = |col: usize, leaves: &[(Plan, usize, usize)]| {
        leaves.iter().position(|(_, w, o)| col >= *o && col < o + w)
    };
    // Terms with subqueries see the original row: they stay above the reordering.
    let (late, terms): (Vec<Expr>, Vec<Expr>) = terms.into_iter().partition(|t| t.has_subquery());
    let term_leaves: Vec<Vec<usize>> = terms
        .iter()
        .map(|t| {
            let mut l: Vec<usize> = t
                .columns()
                .into_iter()
                .filter_map(|c| leaf_of(c, &leaves))
                .collect();
            l.sort();
            l.dedup();
            l
        })
        .collect();
    let own: Vec<usize> = (0..leaves.len())
        .map(|i| {
            term_leaves
                .iter()
                .filter(|l| l.len() == 1 && l[0] == i)
                .count()
        })
        .collect();
    let est: Vec<f64> = leaves
        .iter()
        .enumerate()
        .map(|(i, (p, _, _))| estimate(p, own[i]))
        .collect();
    let mut order: Vec<usize> = Vec::new();
    let mut remaining: Vec<usize> = (0..leaves.len()).collect();
    while !remaining.is_empty() {
        let connected = |i: usize| {
            term_leaves.iter().any(|l| {
                l.len() > 1 && l.contains(&i) && l.iter().all(|x| *x == i || order.contains(x))
            })
        };
        let pick = remaining
            .iter()
            .copied()
            .filter(|&i| order.is_empty() || connected(i))
            .min_by(|&a, &b| {
                est[a]
                    .partial_cmp(&est[b])
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .or_else(|| {
                remaining.iter().copied().min_by(|&a, &b| {
                    est[a]
                        .partial_cmp(&est[b])
                        .unwrap_or(std::cmp::Ordering::Equal)
                })
            })
            .expect("remaining is not empty");
        order.push(pick);
        remaining.retain(|&i| i != pick);
    }
    // Old column -> new column.
    let mut map = vec![0usize; total];
    let mut pos = 0;
    for &i in &order {
        let (_, w, o) = &leaves[i];
        for c in 0..*w {
            map[o + c] = pos + c;
        }
        pos += w;
    }
    let mut slots: Vec<Option<(Plan, usize)>> =
        leaves.into_iter().map(|(p, w, _)| Some((p, w))).collect();
    let mut plan: Option<(Plan, usize)> = None;
    for &i in &order {
        let (p, w) = slots[i].take().expect("each input once");
        let p = optimize(p);
        plan = Some(match plan {
            None => (p, w),
            Some((l, lw)) => (
                Plan::Join {
                    left: Box::new(l),
                    right: Box::new(p),
                    kind: JoinKind::Inner,
                    on: None,
                    equi: Vec::new(),
                    left_width: lw,
                    right_width: w,
                },
                lw + w,
            ),
        });
    }
    let (plan, _) = plan.expect("a join has inputs");
    let remap = |e: Expr| {
        e.transform(&mut |x| {
            Ok(match x {
                Expr::Column(c) => Expr::Column(map[c]),
                x => x,
            })
        })
        .expect("remapping cannot fail")
    };
    let terms: Vec<Expr> = terms.into_iter().map(remap).collect();
    let plan = if terms.is_empty() {
        plan
    } else {
        push_filter(plan, terms)
    };
    let restore = Plan::Project {
        input: Box::new(plan),
        exprs: (0..total).map(|c| Expr::Column(map[c])).collect(),
    };
    restore.filter(Expr::and_all(late))
}

/// Where a term can go: which columns it reads, relative to a join of `lw` + `rw` columns.
fn side(e: &Expr, lw: usize) -> (bool, bool) {
    let cols = e.columns();
    (cols.iter().any(|&c| c < lw), cols.iter().any(|&c| c >= lw))
}

fn pushable(e: &Expr) -> bool {
    !e.has_subquery()
}

/// Places filter terms over an (already optimized) plan.
fn push_filter(input: Plan, terms: Vec<Expr>) -> Plan {
    match input {
        Plan::Join {
            left,
            right,
            kind,
            on,
            mut equi,
            left_width,
            right_width,
        } => {
            let mut lterms = Vec::new();
            let mut rterms = Vec::new();
            let mut jterms = Vec::new();
            let mut above = Vec::new();
            for t in terms {
                if !pushable(&t) {
                    above.push(t);
                    continue;
                }
                let (l, r) = side(&t, left_width);
                match (l, r, kind) {
                    (_, false, JoinKind::Inner | JoinKind::Left) => lterms.push(t),
                    (false, true, JoinKind::Inner | JoinKind::Right) => {
                        rterms.push(t.shift(-(left_width as isize)))
                    }
                    (true, true, JoinKind::Inner) => jterms.push(t),
                    _ => above.push(t),
                }
            }
            let left = if lterms.is_empty() {
                *left
            } else {
                push_filter(*left, lterms)
            };
            let right = if rterms.is_empty() {
                *right
            } else {
                push_filter(*right, rterms)
            };
            let mut on_terms: Vec<Expr> = on.map(|o| o.conjuncts()).unwrap_or_default();
            for t in jterms {
                if let Some(pair) = equi_pair(&t, left_width) {
                    equi.push(pair);
                }
                on_terms.push(t);
            }
            let join = Plan::Join {
                left: Box::new(left),
                right: Box::new(right),
                kind,
                on: Expr::and_all(on_terms),
                equi,
                left_width,
                right_width,
            };
            join.filter(Expr::and_all(above))
        }
        Plan::Scan {
            table,
            access,
            filter,
            reverse,
            with_key,
            ..
        } => {
            let mut all = filter.map(|f| f.conjuncts()).unwrap_or_default();
            all.extend(terms);
            let f = Expr::and_all(all).expect("at least one term");
            match access {
                Access::Full => choose_access(table, f, reverse, with_key),
                access => Plan::Scan {
                    residual: residual_filter(&table, &access, &f),
                    table,
                    access,
                    filter: Some(f),
                    reverse,
                    with_key,
                },
            }
        }
        Plan::Filter { input, predicate } => {
            let mut all = predicate.conjuncts();
            all.extend(terms);
            push_filter(*input, all)
        }
        other => other.filter(Expr::and_all(terms)),
    }
}

/// Places a join's ON terms: one-sided terms of an inner join go down, equalities become keys.
fn push_join_terms(join: Plan, terms: Vec<Expr>) -> Plan {
    let Plan::Join {
        left,
        right,
        kind,
        on,
        mut equi,
        left_width,
        right_width,
    } = join
    else {
        return join;
    };
    let mut on_terms: Vec<Expr> = on.map(|o| o.conjuncts()).unwrap_or_default();
    let mut lterms = Vec::new();
    let mut rterms = Vec::new();
    for t in terms {
        if !pushable(&t) {
            on_terms.push(t);
            continue;
        }
        let (l, r) = side(&t, left_width);
        match (l, r, kind) {
            (true, false, JoinKind::Inner | JoinKind::Right) => lterms.push(t),
            (false, true, JoinKind::Inner | JoinKind::Left) => {
                rterms.push(t.shift(-(left_width as isize)))
            }
            _ => {
                if let Some(pair) = equi_pair(&t, left_width) {
                    equi.push(pair);
                }
                on_terms.push(t);
            }
        }
    }
    let left = if lterms.is_empty() {
        *left
    } else {
        push_filter(*left, lterms)
    };
    let right = if rterms.is_empty() {
        *right
    } else {
        push_filter(*right, rterms)
    };
    Plan::Join {
        left: Box::new(left),
        right: Box::new(right),
        kind,
        on: Expr::and_all(on_terms),
        equi,
        left_width,
        right_width,
    }
}

/// `l = r` with one side over the left input and the other over the right: a hash key pair.
fn equi_pair(t: &Expr, lw: usize) -> Option<(Expr, Expr)> {
    let Expr::Cmp(CmpOp::Eq, a, b) = t else {
        return None;
    };
    let (al, ar) = side(a, lw);
    let (bl, br) = side(b, lw);
    if al && !ar && br && !bl {
        Some(((**a).clone(), (**b).clone().shift(-(lw as isize))))
    } else if bl && !br && ar && !al {
        Some(((**b).clone(), (**a).clone().shift(-(lw as isize))))
    } else {
        None
    }
}

/// True for an expression whose value is fixed while one scan runs.
fn is_bound(e: &Expr) -> bool {
    let mut ok = true;
    e.walk(&mut |x| match x {
        Expr::Column(_) | Expr::Subquery { .. } | Expr::Agg(_) | Expr::Sequence(..) => ok = false,
        Expr::Func(f, _) if f.name == "random" || f.name == "clock_timestamp" => ok = false,
        _ => {}
    });
    ok
}

/// What the filter says about one column.
#[derive(Default, Clone)]
struct ColTerms {
    eq: Option<Expr>,
    points: Option<Vec<Expr>>,
    lo: Option<(Expr, bool)>,
    hi: Option<(Expr, bool)>,
}

fn collect_terms(filter: &Expr, width: usize) -> Vec<ColTerms> {
    let mut cols = vec![ColTerms::default(); width];
    for t in filter.clone().conjuncts() {
        match t {
            Expr::Cmp(op, a, b) => {
                let (col, op, val) = match (*a, *b) {
                    (Expr::Column(c), v) if is_bound(&v) => (c, op, v),
                    (v, Expr::Column(c)) if is_bound(&v) => (c, op.flip(), v),
                    _ => continue,
                };
                let ct = &mut cols[col];
                match op {
                    CmpOp::Eq => ct.eq = Some(val),
                    CmpOp::Gt => ct.lo = Some((val, false)),
                    CmpOp::GtEq => ct.lo = Some((val, true)),
                    CmpOp::Lt => ct.hi = Some((val, false)),
                    CmpOp::LtEq => ct.hi = Some((val, true)),
                    CmpOp::NotEq => {}
                }
            }
            Expr::InList {
                expr,
                list,
                negated: false,
            } => {
                if let Expr::Column(c) = *expr {
                    if list.iter().all(is_bound) {
                        cols[c].points = Some(list);
                    }
                }
            }
            _ => {}
        }
    }
    cols
}

/// A key range over an ordered list of key columns, with a score (lower is better).
fn key_range(key_cols: &[usize], terms: &[ColTerms]) -> Option<(KeyRange, u32)> {
    let mut prefix = Vec::new();
    for &c in key_cols {
        match &terms[c].eq {
            Some(e) => prefix.push(e.clone()),
            None => break,
        }
    }
    if prefix.len() == key_cols.len() {
        return Some((KeyRange::Points(vec![prefix]), 0));
    }
    let next = key_cols[prefix.len()];
    if prefix.is_empty() {
        if let Some(points) = &terms[next].points {
            return Some((
                KeyRange::Points(points.iter().map(|p| vec![p.clone()]).collect()),
                1,
            ));
        }
    }
    let t = &terms[next];
    if t.lo.is_some() || t.hi.is_some() {
        let score = if prefix.is_empty() { 3 } else { 2 };
        return Some((
            KeyRange::Range {
                prefix,
                lo: t.lo.clone(),
                hi: t.hi.clone(),
            },
            score,
        ));
    }
    if !prefix.is_empty() {
        return Some((
            KeyRange::Range {
                prefix,
                lo: None,
                hi: None,
            },
            2,
        ));
    }
    None
}

fn choose_access(
    table: std::sync::Arc<Table>,
    filter: Expr,
    reverse: bool,
    with_key: bool,
) -> Plan {
    let terms = collect_terms(&filter, table.columns.len());
    let mut best: Option<(Access, u32)> = None;
    let mut consider = |access: Access, score: u32| {
        if best.as_ref().is_none_or(|(_, s)| score < *s) {
            best = Some((access, score));
        }
    };
    if !table.primary_key.is_empty() {
        if let Some((r, s)) = key_range(&table.primary_key, &terms) {
            consider(Access::Primary(r), s * 2);
        }
    }
    for index in &table.indexes {
        match index.kind {
            IndexKind::Dense => {
                if index.columns == table.primary_key {
                    continue;
                }
                if let Some((r, s)) = key_range(&index.columns, &terms) {
                    // Through an index costs a lookup per row: prefer the primary key on ties.
                    let s = if s == 0 && index.unique { 1 } else { s * 2 + 1 };
                    // With statistics, a wide range is cheaper as a full scan.
                    if let (Some(stats), KeyRange::Range { prefix, .. }) = (&table.stats, &r) {
                        if prefix.is_empty() && stats.rows > 1000 {
                            continue;
                        }
                    }
                    consider(Access::Index(index.clone(), r), s);
                }
            }
            IndexKind::Sparse => {
                let c = index.columns[0];
                let t = &terms[c];
                let r = if let Some(e) = &t.eq {
                    Some(KeyRange::Points(vec![vec![e.clone()]]))
                } else if let Some(p) = &t.points {
                    Some(KeyRange::Points(
                        p.iter().map(|x| vec![x.clone()]).collect(),
                    ))
                } else if t.lo.is_some() || t.hi.is_some() {
                    Some(KeyRange::Range {
                        prefix: vec![],
                        lo: t.lo.clone(),
                        hi: t.hi.clone(),
                    })
                } else {
                    None
                };
                if let Some(r) = r {
                    // Useless when the column is not ordered with the table key.
                    let correlated = table
                        .stats
                        .as_ref()
                        .and_then(|s| s.correlation.get(c))
                        .is_none_or(|corr| corr.abs() > 0.5);
                    if correlated {
                        consider(Access::Sparse(index.clone(), r), 8);
                    }
                }
            }
        }
    }
    let access = best.map(|(a, _)| a).unwrap_or(Access::Full);
    Plan::Scan {
        residual: residual_filter(&table, &access, &filter),
        table,
        access,
        filter: Some(filter),
        reverse,
        with_key,
    }
}

/// The filter without the terms an exact key range guarantees (see `Plan::Scan::residual`).
pub fn residual_filter(table: &Table, access: &Access, filter: &Expr) -> Option<Expr> {
    let (key_cols, range) = match access {
        Access::Primary(r) => (&table.primary_key, r),
        Access::Index(i, r) => (&i.columns, r),
        Access::Full | Access::Sparse(..) => return Some(filter.clone()),
    };
    let keep: Vec<Expr> = filter
        .clone()
        .conjuncts()
        .into_iter()
        .filter(|t| !guaranteed(t, table, key_cols, range))
        .collect();
    Expr::and_all(keep)
}

/// True if every row in `range` of the key over `key_cols` satisfies term `t`. Only for
/// columns whose values order as their encoded keys do (integers, text, dates, timestamps,
/// booleans): the others keep their terms.
fn guaranteed(t: &Expr, table: &Table, key_cols: &[usize], range: &KeyRange) -> bool {
    let exact_type = |c: usize| {
        matches!(
            table.columns[c].ty,
            DataType::Bool
                | DataType::Int2
                | DataType::Int4
                | DataType::Int8
                | DataType::Text
                | DataType::Varchar(_)
                | DataType::Date
                | DataType::Timestamp
                | DataType::TimestampTz
        )
    };
    let (c, op, v) = match t {
        Expr::Cmp(op, a, b) => match (a.as_ref(), b.as_ref()) {
            (Expr::Column(c), v) => (*c, *op, v),
            (v, Expr::Column(c)) => (*c, op.flip(), v),
            _ => return false,
        },
        Expr::InList {
            expr,
            list,
            negated: false,
        } => {
            return match (expr.as_ref(), range) {
                (Expr::Column(c), KeyRange::Points(points)) => {
                    key_cols.first() == Some(c)
                        && exact_type(*c)
                        && points.len() == list.len()
                        && points
                            .iter()
                            .zip(list)
                            .all(|(p, e)| p.len() == 1 && p[0] == *e)
                }
                _ => false,
            }
        }
        _ => return false,
    };
    let Some(j) = key_cols.iter().position(|&k| k == c) else {
        return false;
    };
    if !exact_type(c) {
        return false;
    }
    match range {
        KeyRange::Points(points) => {
            op == CmpOp::Eq && points.len() == 1 && points[0].get(j) == Some(v)
        }
        KeyRange::Range { prefix, lo, hi } => {
            if j < prefix.len() {
                op == CmpOp::Eq && prefix[j] == *v
            } else if j == prefix.len() {
                let bound = |b: &Option<(Expr, bool)>, inclusive: bool| matches!(b, Some((e, i)) if e == v && *i == inclusive);
                match op {
                    CmpOp::Gt => bound(lo, false),
                    CmpOp::GtEq => bound(lo, true),
                    CmpOp::Lt => bound(hi, false),
                    CmpOp::LtEq => bound(hi, true),
                    CmpOp::Eq | CmpOp::NotEq => false,
                }
            } else {
                false
            }
        }
    }
}

/// Drops a sort that a primary-key-ordered scan already satisfies.
fn sort_elimination(input: Plan, keys: Vec<SortKey>) -> Plan {
    // Sort over Project(columns) over Scan(full or primary): ORDER BY the leading key columns.
    if let Plan::Project {
        input: inner,
        exprs,
    } = &input
    {
        if let Plan::Scan {
            table,
            access,
            filter,
            residual,
            with_key,
            ..
        } = inner.as_ref()
        {
            let orderable = matches!(
                access,
                Access::Full | Access::Primary(KeyRange::Range { .. })
            );
            if orderable && !table.primary_key.is_empty() && keys.len() <= table.primary_key.len() {
                let desc = keys.first().map(|k| k.desc).unwrap_or(false);
                let matches = keys.iter().enumerate().all(|(i, k)| {
                    k.desc == desc
                        && k.nulls_first == desc
                        && matches!(&k.expr, Expr::Column(p) if matches!(exprs.get(*p), Some(Expr::Column(c)) if *c == table.primary_key[i]))
                });
                if matches && !keys.is_empty() {
                    return Plan::Project {
                        input: Box::new(Plan::Scan {
                            table: table.clone(),
                            access: access.clone(),
                            filter: filter.clone(),
                            residual: residual.clone(),
                            reverse: desc,
                            with_key: *with_key,
                        }),
                        exprs: exprs.clone(),
                    };
                }
            }
        }
    }
    Plan::Sort {
        input: Box::new(input),
        keys,
    }
}
