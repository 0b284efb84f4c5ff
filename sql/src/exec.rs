//! The executor: plans run as trees of pull-based nodes (`next()` returns one row at a time).
//! Sorts, aggregates, hash-join build sides and set operations gather their input in memory;
//! scans and filters stream, reading the table in batches through the transaction.
//!
//! Every node gets the execution context [`Cx`] with each call: the transaction, statement
//! parameters, the rows of enclosing queries (for correlated subqueries) and caches.
//!
//! The in-memory hash tables (groups, join build sides, DISTINCT and set operations) are keyed
//! by encoded values ([`row_key`], [`hash_key`]) and hashed with [`BytesHasher`].

use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Bound;
use std::rc::Rc;
use std::sync::Arc;

use rust_decimal::Decimal;

use crate::catalog::{Index, Table};
use crate::encoding::{decode_columns, encode_key};
use crate::error::Result;
use crate::expr::{eval, eval_pred, eval_ref, AggCall, AggFunc, Expr, SeqOp};
use crate::functions::FnContext;
use crate::kv::Transaction;
use crate::plan::{Access, JoinKind, KeyRange, Plan, SetOpKind, SortKey};
use crate::value::{self, DataType, Value};
use crate::{bail, err};

pub type Row = Vec<Value>;

/// A hash map or set keyed by encoded values, hashed with [`BytesHasher`]: the executor's, and
/// the other sets of encoded keys (unique checks, ANALYZE's distinct counts, rows changed).
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<BytesHasher>>;
pub(crate) type HashSet<K> = std::collections::HashSet<K, BuildHasherDefault<BytesHasher>>;

/// The hash of the executor's tables: FxHash's rotate-xor-multiply over 8 bytes at a time, then
/// a murmur3 finalizer so that every bit of the key reaches the low bits (the bucket) and the
/// high ones (the table's tag). Unkeyed, as PostgreSQL's hash of a group key is: several times
/// cheaper than SipHash (which took about 5% of a `GROUP BY` over 100k rows).
#[derive(Default)]
pub struct BytesHasher(u64);

impl BytesHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for BytesHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.add(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    }
}

/// A range of keys: (start, end).
pub type KeySpan = (Bound<Vec<u8>>, Bound<Vec<u8>>);

const SCAN_BATCH: usize = 256;

/// Sequence operations, which live outside the statement's transaction.
pub trait SequenceOps {
    fn apply(
        &mut self,
        txn: &mut dyn Transaction,
        op: SeqOp,
        name: &str,
        args: &[Value],
    ) -> Result<Value>;
}

/// Counters a statement collects (for EXPLAIN ANALYZE and benchmarks).
#[derive(Clone, Debug, Default)]
pub struct ExecStats {
    pub rows_scanned: u64,
    pub index_entries: u64,
    pub row_lookups: u64,
    pub zones_skipped: u64,
    pub zones_read: u64,
}

/// What every node can reach while it runs.
pub struct Cx<'a> {
    pub txn: &'a mut dyn Transaction,
    pub params: &'a [Value],
    /// Rows of enclosing queries, innermost last.
    pub outer: Vec<Row>,
    pub subquery_cache: std::collections::HashMap<usize, Rc<Vec<Row>>>,
    pub worktables: std::collections::HashMap<usize, Rc<Vec<Row>>>,
    pub txn_ts: i64,
    pub statement_ts: i64,
    pub seq: &'a mut dyn SequenceOps,
    pub stats: ExecStats,
}

impl Cx<'_> {
    pub fn fn_context(&self) -> FnContext {
        FnContext {
            statement_ts: self.statement_ts,
            txn_ts: self.txn_ts,
        }
    }
    pub fn sequence(&mut self, op: SeqOp, name: &str, args: &[Value]) -> Result<Value> {
        self.seq.apply(self.txn, op, name, args)
    }
}

/// A running operator.
pub trait Node {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>>;
}

/// Runs a plan to completion (or to `limit` rows).
pub fn run_plan(plan: &Plan, cx: &mut Cx, limit: Option<usize>) -> Result<Vec<Row>> {
    let mut node = build(plan);
    let mut out = Vec::new();
    while let Some(r) = node.next(cx)? {
        out.push(r);
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
    }
    Ok(out)
}

/// Builds the node tree for a plan.
pub fn build(plan: &Plan) -> Box<dyn Node> {
    build_reading(plan, None)
}

/// Adds the columns `exprs` read to `reads`; None (every column) once one holds a subquery,
/// which may read the whole row.
fn add_reads<'e>(
    reads: Option<Vec<bool>>,
    exprs: impl IntoIterator<Item = &'e Expr>,
) -> Option<Vec<bool>> {
    let mut reads = reads?;
    let mut whole_row = false;
    for e in exprs {
        e.walk(&mut |x| match x {
            Expr::Column(i) => {
                if reads.len() <= *i {
                    reads.resize(i + 1, false);
                }
                reads[*i] = true;
            }
            Expr::Subquery { .. } => whole_row = true,
            _ => {}
        });
    }
    (!whole_row).then_some(reads)
}

/// True when a dense index's entries hold every column a scan must produce (`wanted`), in
/// encodings that give the values back: the scan then reads no rows, only the index.
fn index_only(table: &Table, access: &Access, wanted: Option<&[bool]>) -> bool {
    let (Access::Index(index, _), Some(wanted)) = (access, wanted) else {
        return false;
    };
    let in_entry = |c: usize| index.columns.contains(&c) || table.primary_key.contains(&c);
    let decodes = |c: &usize| crate::encoding::key_decodes(&table.columns[*c].ty);
    wanted.iter().enumerate().all(|(c, &w)| !w || in_entry(c))
        && index.columns.iter().all(decodes)
        && table.primary_key.iter().all(decodes)
}

/// A row made from a dense index entry (index key, then the row key): the index's and the
/// primary key's columns, NULL elsewhere.
fn row_from_index_entry(
    table: &Table,
    index: &Index,
    mut key: &[u8],
    rowkey: &[u8],
) -> Result<Row> {
    let mut row = vec![Value::Null; table.columns.len()];
    for &c in &index.columns {
        row[c] = crate::encoding::decode_key(&mut key, &table.columns[c].ty)?;
    }
    let mut rowkey = rowkey;
    for &c in &table.primary_key {
        row[c] = crate::encoding::decode_key(&mut rowkey, &table.columns[c].ty)?;
    }
    Ok(row)
}

/// Builds `plan`, whose rows' consumers read only the columns `reads` marks (None: any): a
/// table scan below a projection or an aggregate decodes only the columns used above it.
fn build_reading(plan: &Plan, reads: Option<Vec<bool>>) -> Box<dyn Node> {
    let build = |p: &Plan| build_reading(p, None);
    match plan {
        Plan::Scan {
            table,
            access,
            filter,
            residual,
            reverse,
            with_key,
        } => {
            let wanted = if *with_key {
                None
            } else {
                add_reads(reads, filter.iter().chain(residual))
            };
            Box::new(ScanNode {
                table: table.clone(),
                access: access.clone(),
                index_only: index_only(table, access, wanted.as_deref()),
                wanted,
                filter: filter.clone(),
                residual: residual.clone(),
                reverse: *reverse,
                with_key: *with_key,
                state: None,
                buffer: Vec::new().into_iter(),
                done: false,
            })
        }
        Plan::Values { rows } => Box::new(ValuesNode {
            rows: rows.clone(),
            pos: 0,
        }),
        Plan::Series {
            start,
            stop,
            step,
            ty,
        } => Box::new(SeriesNode {
            start: start.clone(),
            stop: stop.clone(),
            step: step.clone(),
            ty: ty.clone(),
            state: None,
        }),
        Plan::Filter { input, predicate } => Box::new(FilterNode {
            input: build_reading(input, add_reads(reads, [predicate])),
            predicate: predicate.clone(),
        }),
        Plan::Project { input, exprs } => Box::new(ProjectNode {
            input: build_reading(input, add_reads(Some(Vec::new()), exprs)),
            exprs: exprs.clone(),
            distinct_columns: distinct_columns(exprs),
        }),
        Plan::Join {
            left,
            right,
            kind,
            on,
            equi,
            left_width,
            right_width,
        } => Box::new(JoinNode {
            left: build(left),
            right: Some(build(right)),
            kind: *kind,
            on: on.clone(),
            equi: equi.clone(),
            left_width: *left_width,
            right_width: *right_width,
            state: None,
        }),
        Plan::Aggregate {
            input,
            groups,
            aggs,
        } => Box::new(AggregateNode {
            input: Some(build_reading(
                input,
                add_reads(
                    Some(Vec::new()),
                    groups.iter().chain(aggs.iter().flat_map(|a| {
                        a.args
                            .iter()
                            .chain(a.filter.as_deref())
                            .chain(a.order_by.iter().map(|k| &k.expr))
                    })),
                ),
            )),
            groups: groups.clone(),
            aggs: aggs.clone(),
            out: None,
        }),
        Plan::Sort { input, keys } => Box::new(SortNode {
            input: Some(build_reading(
                input,
                add_reads(reads, keys.iter().map(|k| &k.expr)),
            )),
            keys: keys.clone(),
            out: None,
        }),
        Plan::Limit {
            input,
            limit,
            offset,
        } => Box::new(LimitNode {
            input: build_reading(input, reads),
            limit: limit.clone(),
            offset: offset.clone(),
            state: None,
        }),
        Plan::Distinct { input } => Box::new(DistinctNode {
            input: build(input),
            seen: HashSet::default(),
        }),
        Plan::DistinctOn { input, keys } => Box::new(DistinctOnNode {
            input: build(input),
            keys: keys.clone(),
            seen: HashSet::default(),
        }),
        Plan::SetOp {
            op,
            all,
            left,
            right,
        } => Box::new(SetOpNode {
            op: *op,
            all: *all,
            left: build(left),
            right: Some(build(right)),
            right_counts: HashMap::default(),
            seen: HashSet::default(),
            left_done: false,
        }),
        Plan::Recursive {
            id,
            base,
            step,
            all,
        } => Box::new(RecursiveNode {
            id: *id,
            base: base.clone(),
            step: step.clone(),
            all: *all,
            out: None,
        }),
        Plan::WorkTable { id } => Box::new(WorkTableNode {
            id: *id,
            rows: None,
            pos: 0,
        }),
    }
}

/// A key for hashing and grouping: equal SQL values give equal keys (integers, integral
/// numerics and integral floats share one form).
pub fn hash_key(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Numeric(d) if d.fract().is_zero() => {
            if let Ok(i) = i64::try_from(d.trunc()) {
                out.push(1);
                out.extend_from_slice(&i.to_be_bytes());
                return;
            }
            out.push(2);
            out.extend_from_slice(d.normalize().to_string().as_bytes());
            out.push(0);
        }
        Value::Numeric(d) => {
            out.push(2);
            out.extend_from_slice(d.normalize().to_string().as_bytes());
            out.push(0);
        }
        Value::Float4(_) | Value::Float8(_) => {
            let f = v.as_f64().expect("float");
            if f.fract() == 0.0 && f.abs() < 9.0e18 {
                out.push(1);
                out.extend_from_slice(&(f as i64).to_be_bytes());
            } else {
                encode_key(&Value::Float8(f), out);
            }
        }
        v if v.as_i64().is_some() => {
            out.push(1);
            out.extend_from_slice(&v.as_i64().expect("integer").to_be_bytes());
        }
        v => encode_key(v, out),
    }
}

pub fn row_key(row: &[Value]) -> Vec<u8> {
    let mut k = Vec::with_capacity(row.len() * 9);
    for v in row {
        hash_key(v, &mut k);
    }
    k
}

// ---------------------------------------------------------------------------------------------
// Scans

/// The byte successor of every key with this prefix (None: no upper limit).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < 0xFF {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

/// Evaluates key bounds: the byte ranges to scan (empty if a bound value cannot match), and
/// whether every bound converted exactly to its column's type (else a range may be wider
/// than its terms, which must then be checked per row).
pub fn key_ranges(
    range: &KeyRange,
    types: &[DataType],
    cx: &mut Cx,
) -> Result<(Vec<KeySpan>, bool)> {
    let exact = std::cell::Cell::new(true);
    let spans = key_spans(range, types, cx, &exact)?;
    Ok((spans, exact.get()))
}

fn key_spans(
    range: &KeyRange,
    types: &[DataType],
    cx: &mut Cx,
    exact: &std::cell::Cell<bool>,
) -> Result<Vec<KeySpan>> {
    let exact_cast = |v: Value, ty: &DataType| {
        let c = exact_cast(v, ty);
        if c.is_none() {
            exact.set(false);
        }
        c
    };
    let enc = |exprs: &[Expr], cx: &mut Cx| -> Result<Option<Vec<u8>>> {
        let mut out = Vec::new();
        for (e, ty) in exprs.iter().zip(types) {
            let v = eval(e, &[], cx)?;
            if v.is_null() {
                return Ok(None);
            }
            match exact_cast(v, ty) {
                Some(v) => encode_key(&v, &mut out),
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    };
    let upper = |p: &[u8]| match prefix_end(p) {
        Some(e) => Bound::Excluded(e),
        None => Bound::Unbounded,
    };
    match range {
        KeyRange::Points(points) => {
            let mut keys = Vec::new();
            for p in points {
                if let Some(k) = enc(p, cx)? {
                    keys.push(k);
                }
            }
            keys.sort();
            keys.dedup();
            Ok(keys
                .into_iter()
                .map(|k| (Bound::Included(k.clone()), upper(&k)))
                .collect())
        }
        KeyRange::Range { prefix, lo, hi } => {
            let Some(p) = enc(prefix, cx)? else {
                return Ok(Vec::new());
            };
            let col_ty = types
                .get(prefix.len())
                .cloned()
                .unwrap_or(DataType::Unknown);
            let bound_bytes = |e: &Expr, cx: &mut Cx| -> Result<Option<Vec<u8>>> {
                let v = eval(e, &[], cx)?;
                if v.is_null() {
                    return Ok(None);
                }
                let v = match exact_cast(v, &col_ty) {
                    Some(v) => v,
                    None => return Ok(None),
                };
                let mut k = p.clone();
                encode_key(&v, &mut k);
                Ok(Some(k))
            };
            let start = match lo {
                None => {
                    if p.is_empty() {
                        Bound::Unbounded
                    } else {
                        Bound::Included(p.clone())
                    }
                }
                Some((e, inclusive)) => match bound_bytes(e, cx)? {
                    None if eval(e, &[], cx)?.is_null() => return Ok(Vec::new()),
                    None => {
                        if p.is_empty() {
                            Bound::Unbounded
                        } else {
                            Bound::Included(p.clone())
                        }
                    }
                    Some(k) if *inclusive => Bound::Included(k),
                    Some(k) => match prefix_end(&k) {
                        Some(e) => Bound::Included(e),
                        None => return Ok(Vec::new()),
                    },
                },
            };
            let end = match hi {
                None => {
                    // Stop before NULLs (encoded last) of the range column.
                    let mut k = p.clone();
                    k.push(0xFF);
                    Bound::Excluded(k)
                }
                Some((e, inclusive)) => match bound_bytes(e, cx)? {
                    None if eval(e, &[], cx)?.is_null() => return Ok(Vec::new()),
                    None => {
                        let mut k = p.clone();
                        k.push(0xFF);
                        Bound::Excluded(k)
                    }
                    Some(k) if *inclusive => upper(&k),
                    Some(k) => Bound::Excluded(k),
                },
            };
            Ok(vec![(start, end)])
        }
    }
}

/// Casts a key value to the column type only if the result is equal to it (2.5 is no integer).
fn exact_cast(v: Value, ty: &DataType) -> Option<Value> {
    let c = value::cast(v.clone(), ty).ok()?;
    match c.compare(&v) {
        Ok(std::cmp::Ordering::Equal) => Some(c),
        _ => None,
    }
}

enum ScanState {
    /// Byte ranges left to scan of `tree`; the current one resumes after `after`.
    Ranges {
        tree: String,
        ranges: Vec<KeySpan>,
        via_index: bool,
    },
}

pub struct ScanNode {
    table: Arc<Table>,
    access: Access,
    /// The columns to decode (None: all); the others read as NULL.
    wanted: Option<Vec<bool>>,
    /// The dense index's entries give every wanted column: no row lookups.
    index_only: bool,
    /// The filter checked per row: `Plan::Scan`'s filter, or its residual once the key
    /// bounds turned out exact.
    filter: Option<Expr>,
    residual: Option<Expr>,
    reverse: bool,
    with_key: bool,
    state: Option<ScanState>,
    buffer: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
    done: bool,
}

impl ScanNode {
    fn open(&mut self, cx: &mut Cx) -> Result<()> {
        let table_tree = self.table.tree();
        let col_types = |cols: &[usize]| -> Vec<DataType> {
            cols.iter()
                .map(|&c| self.table.columns[c].ty.clone())
                .collect()
        };
        let (tree, ranges, via_index) = match &self.access {
            Access::Full => (
                table_tree,
                vec![(Bound::Unbounded, Bound::Unbounded)],
                false,
            ),
            Access::Primary(KeyRange::Points(points))
                if points
                    .iter()
                    .all(|p| p.len() == self.table.primary_key.len()) =>
            {
                // Whole primary keys: direct gets, no range scan.
                let types = col_types(&self.table.primary_key);
                let mut rows = Vec::new();
                let (spans, exact) = key_ranges(&KeyRange::Points(points.clone()), &types, cx)?;
                if exact {
                    self.filter = self.residual.take();
                }
                for (start, _) in spans {
                    if let Bound::Included(k) = start {
                        if let Some(v) = cx.txn.get(&table_tree, &k)? {
                            rows.push((k, v));
                        }
                    }
                }
                if self.reverse {
                    rows.reverse();
                }
                self.buffer = rows.into_iter();
                (table_tree, Vec::new(), false)
            }
            Access::Primary(range) => {
                let types = col_types(&self.table.primary_key);
                let (spans, exact) = key_ranges(range, &types, cx)?;
                if exact {
                    self.filter = self.residual.take();
                }
                (table_tree, spans, false)
            }
            Access::Index(index, range) => {
                let types = col_types(&index.columns);
                let (spans, exact) = key_ranges(range, &types, cx)?;
                if exact {
                    self.filter = self.residual.take();
                }
                (index.tree(), spans, true)
            }
            Access::Sparse(index, range) => {
                let ranges = sparse_ranges(&self.table, index, range, cx)?;
                (table_tree, ranges, false)
            }
        };
        let mut ranges = ranges;
        if !self.reverse {
            ranges.reverse(); // popped from the end
        }
        self.state = Some(ScanState::Ranges {
            tree,
            ranges,
            via_index,
        });
        Ok(())
    }

    /// Refills the buffer; false when everything is read.
    fn fill(&mut self, cx: &mut Cx) -> Result<bool> {
        let Some(ScanState::Ranges { tree, ranges, .. }) = self.state.as_mut() else {
            return Ok(false);
        };
        loop {
            let Some((start, end)) = ranges.last().cloned() else {
                return Ok(false);
            };
            let batch = cx
                .txn
                .scan(tree, start.clone(), end.clone(), self.reverse, SCAN_BATCH)?;
            let n = batch.len();
            let last = ranges.len() - 1;
            if n < SCAN_BATCH {
                ranges.pop();
            } else {
                let k = batch.last().expect("full batch").0.clone();
                if self.reverse {
                    ranges[last].1 = Bound::Excluded(k);
                } else {
                    ranges[last].0 = Bound::Excluded(k);
                }
            }
            if n > 0 {
                self.buffer = batch.into_iter();
                return Ok(true);
            }
        }
    }
}

impl Node for ScanNode {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        if self.done {
            return Ok(None);
        }
        if self.state.is_none() {
            self.open(cx)?;
        }
        let via_index = matches!(
            self.state,
            Some(ScanState::Ranges {
                via_index: true,
                ..
            })
        );
        let width = self.table.columns.len();
        loop {
            let (k, v) = match self.buffer.next() {
                Some(e) => e,
                None => {
                    if !self.fill(cx)? {
                        self.done = true;
                        return Ok(None);
                    }
                    continue;
                }
            };
            let (mut row, key) = if via_index && self.index_only {
                cx.stats.index_entries += 1;
                let Access::Index(index, _) = &self.access else {
                    bail!(INTERNAL_ERROR, "index-only scan without an index");
                };
                (row_from_index_entry(&self.table, index, &k, &v)?, v)
            } else if via_index {
                cx.stats.index_entries += 1;
                cx.stats.row_lookups += 1;
                let tree = self.table.tree();
                match cx.txn.get(&tree, &v)? {
                    Some(bytes) => (decode_columns(&bytes, width, self.wanted.as_deref())?, v),
                    None => bail!(
                        DATA_CORRUPTED,
                        "index of table \"{}\" points at a missing row",
                        self.table.name
                    ),
                }
            } else {
                (decode_columns(&v, width, self.wanted.as_deref())?, k)
            };
            if self.with_key {
                row.push(Value::Bytea(key));
            }
            cx.stats.rows_scanned += 1;
            if let Some(f) = &self.filter {
                if !eval_pred(f, &row, cx)? {
                    continue;
                }
            }
            return Ok(Some(row));
        }
    }
}

/// Table key ranges of the blocks whose zone overlaps the range (sparse index).
fn sparse_ranges(
    table: &Table,
    index: &Index,
    range: &KeyRange,
    cx: &mut Cx,
) -> Result<Vec<KeySpan>> {
    let col = index.columns[0];
    let ty = table.columns[col].ty.clone();
    let (lo, hi) = match range {
        KeyRange::Points(points) => {
            let mut vals = Vec::new();
            for p in points {
                if let Some(e) = p.first() {
                    let v = eval(e, &[], cx)?;
                    if !v.is_null() {
                        if let Ok(v) = value::cast(v, &ty) {
                            vals.push(v);
                        }
                    }
                }
            }
            if vals.is_empty() {
                return Ok(Vec::new());
            }
            let mut lo = vals[0].clone();
            let mut hi = vals[0].clone();
            for v in &vals[1..] {
                if v.compare(&lo)?.is_lt() {
                    lo = v.clone();
                }
                if v.compare(&hi)?.is_gt() {
                    hi = v.clone();
                }
            }
            (Some(lo), Some(hi))
        }
        KeyRange::Range { lo, hi, .. } => {
            let mut ev = |b: &Option<(Expr, bool)>| -> Result<Option<Value>> {
                match b {
                    None => Ok(None),
                    Some((e, _)) => {
                        let v = eval(e, &[], cx)?;
                        Ok(value::cast(v, &ty).ok().filter(|v| !v.is_null()))
                    }
                }
            };
            (ev(lo)?, ev(hi)?)
        }
    };
    let zones = crate::sparse::zones(cx.txn, index)?;
    let mut ranges = Vec::new();
    for (i, z) in zones.iter().enumerate() {
        let overlaps = match (&z.min, &z.max) {
            (Some(zmin), Some(zmax)) => {
                lo.as_ref()
                    .is_none_or(|l| zmax.compare(l).map(|o| o.is_ge()).unwrap_or(true))
                    && hi
                        .as_ref()
                        .is_none_or(|h| zmin.compare(h).map(|o| o.is_le()).unwrap_or(true))
            }
            // A zone with only NULLs (or empty) cannot match a comparison.
            _ => false,
        };
        if overlaps {
            cx.stats.zones_read += 1;
            let start = Bound::Included(z.start.clone());
            let end = match zones.get(i + 1) {
                Some(next) => Bound::Excluded(next.start.clone()),
                None => Bound::Unbounded,
            };
            // Merge with the previous range when adjacent.
            if let Some((_, prev_end)) = ranges.last_mut() {
                if *prev_end == Bound::Excluded(z.start.clone()) {
                    *prev_end = end;
                    continue;
                }
            }
            ranges.push((start, end));
        } else {
            cx.stats.zones_skipped += 1;
        }
    }
    Ok(ranges)
}

// ---------------------------------------------------------------------------------------------
// Simple nodes

struct ValuesNode {
    rows: Vec<Vec<Expr>>,
    pos: usize,
}

impl Node for ValuesNode {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        let Some(exprs) = self.rows.get(self.pos) else {
            return Ok(None);
        };
        self.pos += 1;
        let mut row = Vec::with_capacity(exprs.len());
        for e in exprs {
            row.push(eval(e, &[], cx)?);
        }
        Ok(Some(row))
    }
}

struct SeriesNode {
    start: Expr,
    stop: Expr,
    step: Option<Expr>,
    ty: DataType,
    /// (next, stop, step)
    state: Option<Option<(Value, Value, Value)>>,
}

impl Node for SeriesNode {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        if self.state.is_none() {
            let start = eval(&self.start, &[], cx)?;
            let stop = eval(&self.stop, &[], cx)?;
            let step = match &self.step {
                Some(s) => eval(s, &[], cx)?,
                None if self.ty.is_temporal() => bail!(
                    UNDEFINED_FUNCTION,
                    "function generate_series({0}, {0}) does not exist",
                    self.ty
                ),
                None => value::cast(Value::Int4(1), &self.ty)?,
            };
            if start.is_null() || stop.is_null() || step.is_null() {
                self.state = Some(None);
            } else {
                let zero = match &step {
                    Value::Interval(i) => i.total_micros() == 0,
                    s => s.as_f64() == Some(0.0),
                };
                if zero {
                    bail!(INVALID_PARAMETER_VALUE, "step size cannot equal zero");
                }
                self.state = Some(Some((start, stop, step)));
            }
        }
        let Some(Some((cur, stop, step))) = self.state.as_mut() else {
            return Ok(None);
        };
        let ascending = match &*step {
            Value::Interval(i) => i.total_micros() > 0,
            s => s.as_f64().unwrap_or(0.0) > 0.0,
        };
        let ord = cur.compare(stop)?;
        if (ascending && ord.is_gt()) || (!ascending && ord.is_lt()) {
            self.state = Some(None);
            return Ok(None);
        }
        let out = cur.clone();
        let result_ty = self.ty.clone();
        match value::arith(value::ArithOp::Add, cur, step, &result_ty) {
            Ok(n) => *cur = n,
            // Past the type's range: this was the last value.
            Err(_) => self.state = Some(None),
        }
        Ok(Some(vec![out]))
    }
}

struct FilterNode {
    input: Box<dyn Node>,
    predicate: Expr,
}

impl Node for FilterNode {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        while let Some(row) = self.input.next(cx)? {
            if eval_pred(&self.predicate, &row, cx)? {
                return Ok(Some(row));
            }
        }
        Ok(None)
    }
}

struct ProjectNode {
    input: Box<dyn Node>,
    exprs: Vec<Expr>,
    /// When every expression is a column and no column repeats: those columns.
    distinct_columns: Option<Vec<usize>>,
}

/// The columns of a projection made of distinct plain columns only.
fn distinct_columns(exprs: &[Expr]) -> Option<Vec<usize>> {
    let mut cols = Vec::with_capacity(exprs.len());
    for e in exprs {
        match e {
            Expr::Column(i) if !cols.contains(i) => cols.push(*i),
            _ => return None,
        }
    }
    Some(cols)
}

impl Node for ProjectNode {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        let Some(row) = self.input.next(cx)? else {
            return Ok(None);
        };
        if let Some(cols) = &self.distinct_columns {
            // Each input column at most once: move the values, no copies.
            let mut row = row;
            return Ok(Some(
                cols.iter()
                    .map(|&i| std::mem::replace(&mut row[i], Value::Null))
                    .collect(),
            ));
        }
        let mut out = Vec::with_capacity(self.exprs.len());
        for e in &self.exprs {
            out.push(match e {
                Expr::Column(i) => row[*i].clone(),
                e => eval(e, &row, cx)?,
            });
        }
        Ok(Some(out))
    }
}

struct LimitNode {
    input: Box<dyn Node>,
    limit: Option<Expr>,
    offset: Option<Expr>,
    /// (rows still to skip, rows still to return)
    state: Option<(u64, Option<u64>)>,
}

impl Node for LimitNode {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        if self.state.is_none() {
            let count = |e: &Option<Expr>, what: &str, cx: &mut Cx| -> Result<Option<u64>> {
                match e {
                    None => Ok(None),
                    Some(e) => match eval(e, &[], cx)? {
                        Value::Null => Ok(None),
                        v => {
                            let n = v.as_i64().ok_or_else(|| {
                                err!(DATATYPE_MISMATCH, "argument of {what} must be an integer")
                            })?;
                            if n < 0 {
                                return Err(crate::error::Error::new(
                                    if what == "LIMIT" { "2201W" } else { "2201X" },
                                    format!("{what} must not be negative"),
                                ));
                            }
                            Ok(Some(n as u64))
                        }
                    },
                }
            };
            let limit = count(&self.limit, "LIMIT", cx)?;
            let offset = count(&self.offset, "OFFSET", cx)?.unwrap_or(0);
            self.state = Some((offset, limit));
        }
        let (skip, left) = self.state.as_mut().expect("set above");
        if *left == Some(0) {
            return Ok(None);
        }
        while *skip > 0 {
            if self.input.next(cx)?.is_none() {
                return Ok(None);
            }
            *skip -= 1;
        }
        let r = self.input.next(cx)?;
        if r.is_some() {
            if let Some(l) = left {
                *l -= 1;
            }
        }
        Ok(r)
    }
}

struct DistinctNode {
    input: Box<dyn Node>,
    seen: HashSet<Vec<u8>>,
}

impl Node for DistinctNode {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        while let Some(row) = self.input.next(cx)? {
            if self.seen.insert(row_key(&row)) {
                return Ok(Some(row));
            }
        }
        Ok(None)
    }
}

struct DistinctOnNode {
    input: Box<dyn Node>,
    keys: Vec<usize>,
    seen: HashSet<Vec<u8>>,
}

impl Node for DistinctOnNode {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        while let Some(row) = self.input.next(cx)? {
            let key: Vec<Value> = self.keys.iter().map(|&k| row[k].clone()).collect();
            if self.seen.insert(row_key(&key)) {
                return Ok(Some(row));
            }
        }
        Ok(None)
    }
}

struct SortNode {
    input: Option<Box<dyn Node>>,
    keys: Vec<SortKey>,
    out: Option<std::vec::IntoIter<Row>>,
}

/// Compares two sort-key tuples under the keys' directions.
pub fn compare_keys(a: &[Value], b: &[Value], keys: &[SortKey]) -> Result<std::cmp::Ordering> {
    use std::cmp::Ordering;
    for ((x, y), k) in a.iter().zip(b).zip(keys) {
        let o = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => {
                if k.nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (false, true) => {
                if k.nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (false, false) => {
                let o = x.compare(y)?;
                if k.desc {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        if o != Ordering::Equal {
            return Ok(o);
        }
    }
    Ok(Ordering::Equal)
}

impl Node for SortNode {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        if let Some(mut input) = self.input.take() {
            let mut rows: Vec<(Vec<Value>, Row)> = Vec::new();
            while let Some(row) = input.next(cx)? {
                let mut k = Vec::with_capacity(self.keys.len());
                for key in &self.keys {
                    k.push(eval(&key.expr, &row, cx)?);
                }
                rows.push((k, row));
            }
            let mut failure = None;
            rows.sort_by(|a, b| match compare_keys(&a.0, &b.0, &self.keys) {
                Ok(o) => o,
                Err(e) => {
                    failure.get_or_insert(e);
                    std::cmp::Ordering::Equal
                }
            });
            if let Some(e) = failure {
                return Err(e);
            }
            self.out = Some(
                rows.into_iter()
                    .map(|(_, r)| r)
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
        }
        Ok(self.out.as_mut().and_then(|o| o.next()))
    }
}

// ---------------------------------------------------------------------------------------------
// Joins

struct JoinState {
    right_rows: Vec<Row>,
    /// Hash of the right rows by equi-key, when the join has equi keys.
    table: Option<HashMap<Vec<u8>, Vec<usize>>>,
    right_matched: Vec<bool>,
    current: Option<Row>,
    /// Candidate right rows for the current left row, and the position in them.
    candidates: Vec<usize>,
    pos: usize,
    current_matched: bool,
    /// Emitting unmatched right rows (RIGHT and FULL joins) after the left side ends.
    tail: Option<usize>,
}

struct JoinNode {
    left: Box<dyn Node>,
    right: Option<Box<dyn Node>>,
    kind: JoinKind,
    on: Option<Expr>,
    equi: Vec<(Expr, Expr)>,
    left_width: usize,
    right_width: usize,
    state: Option<JoinState>,
}

fn equi_key(
    exprs: &mut dyn Iterator<Item = &Expr>,
    row: &[Value],
    cx: &mut Cx,
) -> Result<Option<Vec<u8>>> {
    let mut k = Vec::new();
    for e in exprs {
        let v = eval(e, row, cx)?;
        if v.is_null() {
            return Ok(None);
        }
        hash_key(&v, &mut k);
    }
    Ok(Some(k))
}

impl Node for JoinNode {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        if let Some(mut right) = self.right.take() {
            let mut rows = Vec::new();
            while let Some(r) = right.next(cx)? {
                rows.push(r);
            }
            let table = if self.equi.is_empty() {
                None
            } else {
                let mut t: HashMap<Vec<u8>, Vec<usize>> = HashMap::default();
                for (i, r) in rows.iter().enumerate() {
                    if let Some(k) = equi_key(&mut self.equi.iter().map(|(_, r)| r), r, cx)? {
                        t.entry(k).or_default().push(i);
                    }
                }
                Some(t)
            };
            let n = rows.len();
            self.state = Some(JoinState {
                right_rows: rows,
                table,
                right_matched: vec![false; n],
                current: None,
                candidates: Vec::new(),
                pos: 0,
                current_matched: false,
                tail: None,
            });
        }
        let st = self.state.as_mut().expect("opened above");
        loop {
            if let Some(i) = st.tail.as_mut() {
                while *i < st.right_rows.len() {
                    let j = *i;
                    *i += 1;
                    if !st.right_matched[j] {
                        let mut row = vec![Value::Null; self.left_width];
                        row.extend(st.right_rows[j].iter().cloned());
                        return Ok(Some(row));
                    }
                }
                return Ok(None);
            }
            if st.current.is_none() {
                match self.left.next(cx)? {
                    None => {
                        if matches!(self.kind, JoinKind::Right | JoinKind::Full) {
                            st.tail = Some(0);
                            continue;
                        }
                        return Ok(None);
                    }
                    Some(l) => {
                        st.candidates = match &st.table {
                            None => (0..st.right_rows.len()).collect(),
                            Some(t) => {
                                match equi_key(&mut self.equi.iter().map(|(l, _)| l), &l, cx)? {
                                    None => Vec::new(),
                                    Some(k) => t.get(&k).cloned().unwrap_or_default(),
                                }
                            }
                        };
                        st.pos = 0;
                        st.current = Some(l);
                        st.current_matched = false;
                    }
                }
            }
            let left = st.current.as_ref().expect("set above");
            while st.pos < st.candidates.len() {
                let j = st.candidates[st.pos];
                st.pos += 1;
                let mut row = Vec::with_capacity(self.left_width + self.right_width);
                row.extend(left.iter().cloned());
                row.extend(st.right_rows[j].iter().cloned());
                let ok = match &self.on {
                    None => true,
                    Some(on) => eval_pred(on, &row, cx)?,
                };
                if ok {
                    st.current_matched = true;
                    st.right_matched[j] = true;
                    return Ok(Some(row));
                }
            }
            let left = st.current.take().expect("set above");
            if !st.current_matched && matches!(self.kind, JoinKind::Left | JoinKind::Full) {
                let mut row = left;
                row.extend(std::iter::repeat_n(Value::Null, self.right_width));
                return Ok(Some(row));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Aggregation

#[derive(Clone, Debug)]
enum Acc {
    Count(i64),
    SumInt(Option<i128>),
    SumDec(Option<Decimal>),
    SumFloat(Option<f64>),
    SumInterval(Option<Value>),
    AvgDec(Decimal, i64),
    AvgFloat(f64, i64),
    AvgInterval(Option<Value>, i64),
    MinMax(Option<Value>),
    StringAgg(Option<String>),
    Bool(Option<bool>),
}

fn new_acc(call: &AggCall) -> Acc {
    let arg_ty = call.args.first().map(|_| &call.ty);
    match call.func {
        AggFunc::Count | AggFunc::CountStar => Acc::Count(0),
        AggFunc::Sum => match &call.ty {
            DataType::Int8 => Acc::SumInt(None),
            DataType::Numeric(_) => Acc::SumDec(None),
            DataType::Interval => Acc::SumInterval(None),
            _ => Acc::SumFloat(None),
        },
        AggFunc::Avg => match arg_ty {
            Some(DataType::Float8) => Acc::AvgFloat(0.0, 0),
            Some(DataType::Interval) => Acc::AvgInterval(None, 0),
            _ => Acc::AvgDec(Decimal::ZERO, 0),
        },
        AggFunc::Min | AggFunc::Max => Acc::MinMax(None),
        AggFunc::StringAgg => Acc::StringAgg(None),
        AggFunc::BoolAnd | AggFunc::BoolOr => Acc::Bool(None),
    }
}

fn overflow_numeric() -> crate::error::Error {
    err!(NUMERIC_VALUE_OUT_OF_RANGE, "value overflows numeric format")
}

fn accumulate(acc: &mut Acc, call: &AggCall, args: &[Value]) -> Result<()> {
    if call.func == AggFunc::CountStar {
        if let Acc::Count(n) = acc {
            *n += 1;
        }
        return Ok(());
    }
    let v = &args[0];
    if v.is_null() {
        return Ok(());
    }
    match acc {
        Acc::Count(n) => *n += 1,
        Acc::SumInt(s) => {
            let i = v
                .as_i64()
                .ok_or_else(|| err!(INTERNAL_ERROR, "sum over a non-integer"))?
                as i128;
            *s = Some(s.unwrap_or(0) + i);
        }
        Acc::SumDec(s) => {
            let d = v
                .as_decimal()
                .ok_or_else(|| err!(INTERNAL_ERROR, "sum over a non-number"))?;
            *s = Some(
                s.unwrap_or(Decimal::ZERO)
                    .checked_add(d)
                    .ok_or_else(overflow_numeric)?,
            );
        }
        Acc::SumFloat(s) => *s = Some(s.unwrap_or(0.0) + v.as_f64().unwrap_or(0.0)),
        Acc::SumInterval(s) => {
            *s = Some(match s.take() {
                None => v.clone(),
                Some(prev) => value::arith(value::ArithOp::Add, &prev, v, &DataType::Interval)?,
            })
        }
        Acc::AvgDec(s, n) => {
            let d = v
                .as_decimal()
                .ok_or_else(|| err!(INTERNAL_ERROR, "avg over a non-number"))?;
            *s = s.checked_add(d).ok_or_else(overflow_numeric)?;
            *n += 1;
        }
        Acc::AvgFloat(s, n) => {
            *s += v.as_f64().unwrap_or(0.0);
            *n += 1;
        }
        Acc::AvgInterval(s, n) => {
            *s = Some(match s.take() {
                None => v.clone(),
                Some(prev) => value::arith(value::ArithOp::Add, &prev, v, &DataType::Interval)?,
            });
            *n += 1;
        }
        Acc::MinMax(m) => {
            let replace = match m {
                None => true,
                Some(cur) => {
                    let o = v.compare(cur)?;
                    if call.func == AggFunc::Min {
                        o.is_lt()
                    } else {
                        o.is_gt()
                    }
                }
            };
            if replace {
                *m = Some(v.clone());
            }
        }
        Acc::StringAgg(s) => {
            let text = v.to_text().unwrap_or_default();
            match s {
                None => *s = Some(text),
                Some(cur) => {
                    if let Some(d) = args.get(1).and_then(|d| d.to_text()) {
                        cur.push_str(&d);
                    }
                    cur.push_str(&text);
                }
            }
        }
        Acc::Bool(b) => {
            let x = matches!(v, Value::Bool(true));
            *b = Some(match (*b, call.func) {
                (None, _) => x,
                (Some(p), AggFunc::BoolAnd) => p && x,
                (Some(p), _) => p || x,
            });
        }
    }
    Ok(())
}

fn finish(acc: &Acc, call: &AggCall) -> Result<Value> {
    Ok(match acc {
        Acc::Count(n) => Value::Int8(*n),
        Acc::SumInt(s) => match s {
            None => Value::Null,
            Some(s) => match call.ty {
                DataType::Int8 => Value::Int8(
                    i64::try_from(*s)
                        .map_err(|_| err!(NUMERIC_VALUE_OUT_OF_RANGE, "bigint out of range"))?,
                ),
                _ => Value::Numeric(Decimal::from_i128_with_scale(*s, 0)),
            },
        },
        Acc::SumDec(s) => s.map(Value::Numeric).unwrap_or(Value::Null),
        Acc::SumFloat(s) => match s {
            None => Value::Null,
            Some(f) if call.ty == DataType::Float4 => Value::Float4(*f as f32),
            Some(f) => Value::Float8(*f),
        },
        Acc::SumInterval(s) => s.clone().unwrap_or(Value::Null),
        Acc::AvgDec(s, n) => {
            if *n == 0 {
                Value::Null
            } else {
                Value::Numeric(value::numeric_div(*s, Decimal::from(*n))?)
            }
        }
        Acc::AvgFloat(s, n) => {
            if *n == 0 {
                Value::Null
            } else {
                Value::Float8(s / *n as f64)
            }
        }
        Acc::AvgInterval(s, n) => match s {
            None => Value::Null,
            Some(v) => value::arith(
                value::ArithOp::Div,
                v,
                &Value::Int8(*n),
                &DataType::Interval,
            )?,
        },
        Acc::MinMax(m) => m.clone().unwrap_or(Value::Null),
        Acc::StringAgg(s) => s.clone().map(Value::Text).unwrap_or(Value::Null),
        Acc::Bool(b) => b.map(Value::Bool).unwrap_or(Value::Null),
    })
}

struct Group {
    keys: Row,
    accs: Vec<Acc>,
    /// For aggregates with ORDER BY: (sort keys, arguments) gathered, folded at the end.
    ordered: Vec<Vec<(Row, Row)>>,
    /// For DISTINCT aggregates: argument keys already counted.
    seen: Vec<HashSet<Vec<u8>>>,
}

struct AggregateNode {
    input: Option<Box<dyn Node>>,
    groups: Vec<Expr>,
    aggs: Vec<AggCall>,
    out: Option<std::vec::IntoIter<Row>>,
}

impl Node for AggregateNode {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        if let Some(mut input) = self.input.take() {
            let mut index: HashMap<Vec<u8>, usize> = HashMap::default();
            let mut groups: Vec<Group> = Vec::new();
            let fresh = |keys: Row, aggs: &[AggCall]| Group {
                keys,
                accs: aggs.iter().map(new_acc).collect(),
                ordered: aggs.iter().map(|_| Vec::new()).collect(),
                seen: aggs.iter().map(|_| HashSet::default()).collect(),
            };
            if self.groups.is_empty() {
                groups.push(fresh(Vec::new(), &self.aggs));
                index.insert(Vec::new(), 0);
            }
            let mut args: Vec<Value> = Vec::new();
            let mut keys: Vec<Value> = Vec::with_capacity(self.groups.len());
            let mut k: Vec<u8> = Vec::new();
            while let Some(row) = input.next(cx)? {
                // Without GROUP BY every row is in the one group.
                let gi = if self.groups.is_empty() {
                    0
                } else {
                    keys.clear();
                    for g in &self.groups {
                        keys.push(eval_ref(g, &row, cx)?.into_owned());
                    }
                    k.clear();
                    for v in &keys {
                        hash_key(v, &mut k);
                    }
                    match index.get(k.as_slice()) {
                        Some(&i) => i,
                        None => {
                            groups.push(fresh(keys.clone(), &self.aggs));
                            index.insert(k.clone(), groups.len() - 1);
                            groups.len() - 1
                        }
                    }
                };
                let g = &mut groups[gi];
                for (ai, call) in self.aggs.iter().enumerate() {
                    if let Some(f) = &call.filter {
                        if !eval_pred(f, &row, cx)? {
                            continue;
                        }
                    }
                    args.clear();
                    for a in &call.args {
                        args.push(eval_ref(a, &row, cx)?.into_owned());
                    }
                    if call.distinct {
                        if args.first().is_some_and(|v| v.is_null()) {
                            continue;
                        }
                        if !g.seen[ai].insert(row_key(&args[..1])) {
                            continue;
                        }
                    }
                    if call.order_by.is_empty() {
                        accumulate(&mut g.accs[ai], call, &args)?;
                    } else {
                        let mut keys = Vec::with_capacity(call.order_by.len());
                        for k in &call.order_by {
                            keys.push(eval(&k.expr, &row, cx)?);
                        }
                        g.ordered[ai].push((keys, args.clone()));
                    }
                }
            }
            let mut out = Vec::with_capacity(groups.len());
            for mut g in groups {
                for (ai, call) in self.aggs.iter().enumerate() {
                    if call.order_by.is_empty() {
                        continue;
                    }
                    let mut items = std::mem::take(&mut g.ordered[ai]);
                    let mut failure = None;
                    items.sort_by(|a, b| {
                        compare_keys(&a.0, &b.0, &call.order_by).unwrap_or_else(|e| {
                            failure.get_or_insert(e);
                            std::cmp::Ordering::Equal
                        })
                    });
                    if let Some(e) = failure {
                        return Err(e);
                    }
                    for (_, args) in &items {
                        accumulate(&mut g.accs[ai], call, args)?;
                    }
                }
                let mut row = g.keys;
                for (acc, call) in g.accs.iter().zip(&self.aggs) {
                    row.push(finish(acc, call)?);
                }
                out.push(row);
            }
            self.out = Some(out.into_iter());
        }
        Ok(self.out.as_mut().and_then(|o| o.next()))
    }
}

// ---------------------------------------------------------------------------------------------
// Set operations and recursion

struct SetOpNode {
    op: SetOpKind,
    all: bool,
    left: Box<dyn Node>,
    right: Option<Box<dyn Node>>,
    right_counts: HashMap<Vec<u8>, i64>,
    seen: HashSet<Vec<u8>>,
    left_done: bool,
}

impl Node for SetOpNode {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        match self.op {
            SetOpKind::Union => loop {
                let row = if !self.left_done {
                    match self.left.next(cx)? {
                        Some(r) => r,
                        None => {
                            self.left_done = true;
                            continue;
                        }
                    }
                } else {
                    match self
                        .right
                        .as_mut()
                        .expect("union keeps its right input")
                        .next(cx)?
                    {
                        Some(r) => r,
                        None => return Ok(None),
                    }
                };
                if self.all || self.seen.insert(row_key(&row)) {
                    return Ok(Some(row));
                }
            },
            SetOpKind::Intersect | SetOpKind::Except => {
                if let Some(mut right) = self.right.take() {
                    while let Some(r) = right.next(cx)? {
                        *self.right_counts.entry(row_key(&r)).or_insert(0) += 1;
                    }
                }
                while let Some(row) = self.left.next(cx)? {
                    let k = row_key(&row);
                    let count = self.right_counts.get(&k).copied().unwrap_or(0);
                    let emit = match (self.op, self.all) {
                        (SetOpKind::Intersect, true) => {
                            if count > 0 {
                                self.right_counts.insert(k, count - 1);
                                true
                            } else {
                                false
                            }
                        }
                        (SetOpKind::Intersect, false) => count > 0 && self.seen.insert(k),
                        (_, true) => {
                            if count > 0 {
                                self.right_counts.insert(k, count - 1);
                                false
                            } else {
                                true
                            }
                        }
                        (_, false) => count == 0 && self.seen.insert(k),
                    };
                    if emit {
                        return Ok(Some(row));
                    }
                }
                Ok(None)
            }
        }
    }
}

/// Upper bound on recursive CTE rounds: a query that recurses this deep almost surely loops.
const MAX_RECURSION: usize = 1_000_000;

struct RecursiveNode {
    id: usize,
    base: Box<Plan>,
    step: Box<Plan>,
    all: bool,
    out: Option<std::vec::IntoIter<Row>>,
}

impl Node for RecursiveNode {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        if self.out.is_none() {
            let mut seen = HashSet::default();
            let mut result = Vec::new();
            let mut frontier = Vec::new();
            for r in run_plan(&self.base, cx, None)? {
                if self.all || seen.insert(row_key(&r)) {
                    frontier.push(r.clone());
                    result.push(r);
                }
            }
            let mut rounds = 0;
            while !frontier.is_empty() {
                rounds += 1;
                if rounds > MAX_RECURSION {
                    bail!(
                        INVALID_RECURSION,
                        "recursive query ran more than {MAX_RECURSION} rounds"
                    );
                }
                cx.worktables
                    .insert(self.id, Rc::new(std::mem::take(&mut frontier)));
                // The step may read the work table through cached uncorrelated subqueries.
                cx.subquery_cache.clear();
                for r in run_plan(&self.step, cx, None)? {
                    if self.all || seen.insert(row_key(&r)) {
                        frontier.push(r.clone());
                        result.push(r);
                    }
                }
            }
            cx.worktables.remove(&self.id);
            self.out = Some(result.into_iter());
        }
        Ok(self.out.as_mut().and_then(|o| o.next()))
    }
}

struct WorkTableNode {
    id: usize,
    rows: Option<Rc<Vec<Row>>>,
    pos: usize,
}

impl Node for WorkTableNode {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        if self.rows.is_none() {
            self.rows = Some(cx.worktables.get(&self.id).cloned().unwrap_or_default());
        }
        let rows = self.rows.as_ref().expect("set above");
        let r = rows.get(self.pos).cloned();
        self.pos += 1;
        Ok(r)
    }
}
