//! Sparse indexes: zone maps. A zone covers a run of consecutive rows in primary-key order
//! (about one page of rows) and records the minimum and maximum of the indexed column over
//! them. A range query reads only the zones whose [min, max] overlaps its range, so the index
//! is tiny (one entry per zone) and cheap to keep current, and it only helps when the data is
//! (roughly) ordered by the column.
//!
//! On disk (tree `z<id>`): key = the table key where the zone starts; value = an encoded row
//! `[min, max, row count]`. Zone `i` covers table keys from its start up to the next zone's
//! start. Invariants: every row lies in exactly one zone (the one with the greatest start at
//! or below its key, or the first zone); every non-NULL value of the column lies within its
//! zone's [min, max]. Deletes leave min/max wide (still correct, merely less selective);
//! a zone that outgrows `zone_rows` splits in two with exact bounds.

use std::ops::Bound;

use crate::catalog::{Index, Table};
use crate::encoding::{decode_row, encode_row};
use crate::error::Result;
use crate::kv::Transaction;
use crate::value::Value;

#[derive(Clone, Debug)]
pub struct Zone {
    pub start: Vec<u8>,
    pub min: Option<Value>,
    pub max: Option<Value>,
    pub rows: i64,
}

fn decode_zone(start: Vec<u8>, v: &[u8]) -> Result<Zone> {
    let r = decode_row(v, 3)?;
    let opt = |v: &Value| if v.is_null() { None } else { Some(v.clone()) };
    Ok(Zone {
        start,
        min: opt(&r[0]),
        max: opt(&r[1]),
        rows: r[2].as_i64().unwrap_or(0),
    })
}

fn put_zone(txn: &mut dyn Transaction, index: &Index, z: &Zone) -> Result<()> {
    let row = [
        z.min.clone().unwrap_or(Value::Null),
        z.max.clone().unwrap_or(Value::Null),
        Value::Int8(z.rows),
    ];
    txn.put(&index.tree(), &z.start, &encode_row(&row))
}

/// All zones in key order.
pub fn zones(txn: &mut dyn Transaction, index: &Index) -> Result<Vec<Zone>> {
    let tree = index.tree();
    let mut out = Vec::new();
    let mut start = Bound::Unbounded;
    loop {
        let batch = txn.scan(&tree, start, Bound::Unbounded, false, 1024)?;
        let n = batch.len();
        for (k, v) in batch {
            out.push(decode_zone(k, &v)?);
        }
        if n < 1024 {
            return Ok(out);
        }
        start = Bound::Excluded(out.last().expect("full batch").start.clone());
    }
}

/// Rows per zone for a table whose rows encode to about `row_bytes` bytes: one 4 KiB page's worth.
pub fn zone_rows_for(row_bytes: usize) -> u32 {
    (4096 / row_bytes.max(1)).clamp(8, 1024) as u32
}

fn widen(z: &mut Zone, v: &Value) -> Result<()> {
    if v.is_null() {
        return Ok(());
    }
    if z.min
        .as_ref()
        .is_none_or(|m| v.compare(m).map(|o| o.is_lt()).unwrap_or(false))
    {
        z.min = Some(v.clone());
    }
    if z.max
        .as_ref()
        .is_none_or(|m| v.compare(m).map(|o| o.is_gt()).unwrap_or(false))
    {
        z.max = Some(v.clone());
    }
    Ok(())
}

/// The zone holding `key`: the one with the greatest start at or below it, else the first.
fn zone_of(txn: &mut dyn Transaction, index: &Index, key: &[u8]) -> Result<Option<Zone>> {
    let tree = index.tree();
    let below = txn.scan(
        &tree,
        Bound::Unbounded,
        Bound::Included(key.to_vec()),
        true,
        1,
    )?;
    if let Some((k, v)) = below.into_iter().next() {
        return Ok(Some(decode_zone(k, &v)?));
    }
    let first = txn.scan(&tree, Bound::Unbounded, Bound::Unbounded, false, 1)?;
    match first.into_iter().next() {
        Some((k, v)) => Ok(Some(decode_zone(k, &v)?)),
        None => Ok(None),
    }
}

/// Records an inserted row.
pub fn insert(
    txn: &mut dyn Transaction,
    table: &Table,
    index: &Index,
    key: &[u8],
    row: &[Value],
) -> Result<()> {
    let v = &row[index.columns[0]];
    let tree = index.tree();
    let mut z = match zone_of(txn, index, key)? {
        Some(z) => z,
        None => Zone {
            start: key.to_vec(),
            min: None,
            max: None,
            rows: 0,
        },
    };
    if key < z.start.as_slice() {
        // Before the first zone: the first zone now starts here.
        txn.delete(&tree, &z.start)?;
        z.start = key.to_vec();
    }
    widen(&mut z, v)?;
    z.rows += 1;
    if z.rows > index.zone_rows.max(2) as i64 {
        split(txn, table, index, &z)
    } else {
        put_zone(txn, index, &z)
    }
}

/// Records a deleted row.
pub fn delete(txn: &mut dyn Transaction, index: &Index, key: &[u8]) -> Result<()> {
    if let Some(mut z) = zone_of(txn, index, key)? {
        z.rows = (z.rows - 1).max(0);
        put_zone(txn, index, &z)?;
    }
    Ok(())
}

/// Splits a zone in two halves with exact bounds, reading its rows from the table.
fn split(txn: &mut dyn Transaction, table: &Table, index: &Index, z: &Zone) -> Result<()> {
    let tree = index.tree();
    let next = txn.scan(
        &tree,
        Bound::Excluded(z.start.clone()),
        Bound::Unbounded,
        false,
        1,
    )?;
    let end = match next.into_iter().next() {
        Some((k, _)) => Bound::Excluded(k),
        None => Bound::Unbounded,
    };
    let rows = txn.scan(
        &table.tree(),
        Bound::Included(z.start.clone()),
        end,
        false,
        usize::MAX,
    )?;
    let width = table.columns.len();
    let col = index.columns[0];
    let half = rows.len() / 2;
    for (i, part) in [&rows[..half], &rows[half..]].into_iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        let start = if i == 0 {
            z.start.clone()
        } else {
            part[0].0.clone()
        };
        let mut zone = Zone {
            start,
            min: None,
            max: None,
            rows: part.len() as i64,
        };
        for (_, bytes) in part {
            let row = decode_row(bytes, width)?;
            widen(&mut zone, &row[col])?;
        }
        put_zone(txn, index, &zone)?;
    }
    Ok(())
}

/// Builds the zone map of an existing table.
pub fn build(txn: &mut dyn Transaction, table: &Table, index: &Index) -> Result<()> {
    let width = table.columns.len();
    let col = index.columns[0];
    let per = index.zone_rows.max(2) as i64;
    let mut zone: Option<Zone> = None;
    crate::kv::for_each_entry(txn, &table.tree(), &mut |txn, k, bytes| {
        let row = decode_row(&bytes, width)?;
        if zone.as_ref().is_some_and(|z| z.rows >= per) {
            put_zone(txn, index, zone.as_ref().expect("checked"))?;
            zone = None;
        }
        let z = zone.get_or_insert(Zone {
            start: k,
            min: None,
            max: None,
            rows: 0,
        });
        widen(z, &row[col])?;
        z.rows += 1;
        Ok(())
    })?;
    if let Some(z) = zone {
        put_zone(txn, index, &z)?;
    }
    Ok(())
}
