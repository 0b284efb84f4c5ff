//! EXPLAIN: the plan tree as indented text, one node per line, naming each scan's access path
//! (full scan, primary key, dense index, sparse index) as PostgreSQL-like lines.

use crate::plan::{Access, JoinKind, KeyRange, Plan, SetOpKind};

fn range_text(r: &KeyRange) -> &'static str {
    match r {
        KeyRange::Points(_) => "point",
        KeyRange::Range { .. } => "range",
    }
}

/// Appends the lines describing `plan` at `depth`.
pub fn explain(plan: &Plan, depth: usize, out: &mut Vec<String>) {
    let pad = if depth == 0 {
        String::new()
    } else {
        format!("{}->  ", "  ".repeat(depth * 3 - 2))
    };
    let child = |p: &Plan, out: &mut Vec<String>| explain(p, depth + 1, out);
    match plan {
        Plan::Scan {
            table,
            access,
            filter,
            reverse,
            ..
        } => {
            let dir = if *reverse { " Backward" } else { "" };
            let line = match access {
                Access::Full => format!("{pad}Seq Scan on {}", table.name),
                Access::Primary(r) => format!(
                    "{pad}Primary Key Scan{dir} ({}) on {}",
                    range_text(r),
                    table.name
                ),
                Access::Index(i, r) => format!(
                    "{pad}Dense Index Scan{dir} using {} ({}) on {}",
                    i.name,
                    range_text(r),
                    table.name
                ),
                Access::Sparse(i, r) => format!(
                    "{pad}Sparse Index Scan using {} ({}) on {}",
                    i.name,
                    range_text(r),
                    table.name
                ),
            };
            out.push(line);
            if filter.is_some() {
                out.push(format!("{}  Filter: yes", " ".repeat(pad.len())));
            }
        }
        Plan::Values { rows } => out.push(format!("{pad}Values ({} rows)", rows.len())),
        Plan::Series { .. } => out.push(format!("{pad}Function Scan on generate_series")),
        Plan::Filter { input, .. } => {
            out.push(format!("{pad}Filter"));
            child(input, out);
        }
        Plan::Project { input, .. } => explain(input, depth, out),
        Plan::Join {
            left,
            right,
            kind,
            equi,
            ..
        } => {
            let k = match kind {
                JoinKind::Inner => "",
                JoinKind::Left => " Left",
                JoinKind::Right => " Right",
                JoinKind::Full => " Full",
            };
            let method = if equi.is_empty() {
                "Nested Loop"
            } else {
                "Hash Join"
            };
            out.push(format!("{pad}{method}{k}"));
            child(left, out);
            child(right, out);
        }
        Plan::Aggregate { input, groups, .. } => {
            out.push(format!(
                "{pad}{}",
                if groups.is_empty() {
                    "Aggregate"
                } else {
                    "HashAggregate"
                }
            ));
            child(input, out);
        }
        Plan::Sort { input, .. } => {
            out.push(format!("{pad}Sort"));
            child(input, out);
        }
        Plan::Limit { input, .. } => {
            out.push(format!("{pad}Limit"));
            child(input, out);
        }
        Plan::DistinctOn { input, .. } => {
            out.push(format!("{pad}Unique On"));
            child(input, out);
        }
        Plan::Distinct { input } => {
            out.push(format!("{pad}Unique"));
            child(input, out);
        }
        Plan::SetOp {
            op,
            all,
            left,
            right,
        } => {
            let name = match op {
                SetOpKind::Union => "Union",
                SetOpKind::Intersect => "Intersect",
                SetOpKind::Except => "Except",
            };
            out.push(format!("{pad}{name}{}", if *all { " All" } else { "" }));
            child(left, out);
            child(right, out);
        }
        Plan::Recursive { base, step, .. } => {
            out.push(format!("{pad}Recursive Union"));
            child(base, out);
            child(step, out);
        }
        Plan::WorkTable { .. } => out.push(format!("{pad}WorkTable Scan")),
    }
}
