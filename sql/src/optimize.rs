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

pub fn optimize(plan: Plan) -> Plan {
    match plan {
        Plan::Filter { input, predicate } => {
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
        } => choose_access(table, f, reverse, with_key),
        p => p,
    }
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
        } => {
            let mut all = filter.map(|f| f.conjuncts()).unwrap_or_default();
            all.extend(terms);
            let f = Expr::and_all(all).expect("at least one term");
            match access {
                Access::Full => choose_access(table, f, reverse, with_key),
                access => Plan::Scan {
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

fn choose_access(table: std::rc::Rc<Table>, filter: Expr, reverse: bool, with_key: bool) -> Plan {
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
        table,
        access,
        filter: Some(filter),
        reverse,
        with_key,
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
