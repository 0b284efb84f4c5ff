//! Bulk load: builds a tree bottom-up from entries in strictly ascending key order.
//!
//! Leaves are packed to `FILL_NUM / FILL_DEN` of their capacity in key order and written
//! straight to the device in runs of contiguous pages (no buffer pool, no splits, no
//! copy-on-write: every page is new). Each level of branches is then built from the one below,
//! with the shortest separators between neighbours, until one node is left: the root.
//!
//! On a key out of order or too large the load stops, frees every page it wrote and leaves the
//! tree empty, so the caller can report `Invalid` without the store failing.

use crate::btree::{node, overflow, read_node, Limits, MAX_IO_RUN};
use crate::page::{self, PageId};
use crate::pager::Pager;
use crate::store::StoreError;
use node::Value;

type Result<T> = std::result::Result<T, StoreError>;

const FILL_NUM: usize = 15;
const FILL_DEN: usize = 16;

/// Batches freshly built pages into contiguous device writes.
struct Writer {
    page_size: usize,
    start: PageId,
    staging: Vec<u8>,
}

impl Writer {
    fn add(&mut self, pager: &mut Pager, id: PageId, page: &[u8]) -> Result<()> {
        let n = (self.staging.len() / self.page_size) as u64;
        if n > 0 && (id.0 != self.start.0 + n || n as usize >= MAX_IO_RUN) {
            self.flush(pager)?;
        }
        if self.staging.is_empty() {
            self.start = id;
        }
        self.staging.extend_from_slice(page);
        Ok(())
    }

    fn flush(&mut self, pager: &mut Pager) -> Result<()> {
        if !self.staging.is_empty() {
            pager.write_direct(self.start, &mut self.staging)?;
            self.staging.clear();
        }
        Ok(())
    }
}

/// What the load built so far, to undo on bad input.
#[derive(Default)]
struct Built {
    pages: Vec<PageId>,
    chains: Vec<(PageId, u64)>,
}

/// Loads `entries` into the empty tree at `root`; returns the new root and the entry count.
pub(crate) fn load(
    pager: &mut Pager,
    lim: &Limits,
    root: PageId,
    entries: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>,
) -> Result<(PageId, u64)> {
    {
        let p = read_node(pager, root)?;
        if !node::is_leaf(&p) || node::count(&p) > 0 {
            return Err(StoreError::Invalid(
                "bulk load needs an empty tree".to_string(),
            ));
        }
    }
    let mut built = Built::default();
    match build(pager, lim, entries, &mut built) {
        Ok(None) => Ok((root, 0)),
        Ok(Some((new_root, count))) => {
            let epoch = page::epoch(&pager.take(root, node::validate)?);
            pager.release(root, epoch);
            Ok((new_root, count))
        }
        Err(e @ (StoreError::Invalid(_) | StoreError::KeyTooLarge { .. })) => {
            let epoch = pager.current_epoch();
            for (first, len) in built.chains {
                overflow::free(pager, first, len)?;
            }
            for id in built.pages {
                pager.release(id, epoch);
            }
            Err(e)
        }
        Err(e) => Err(e),
    }
}

fn build(
    pager: &mut Pager,
    lim: &Limits,
    entries: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>,
    built: &mut Built,
) -> Result<Option<(PageId, u64)>> {
    let (ps, epoch) = (pager.page_size(), pager.current_epoch());
    let mut writer = Writer {
        page_size: ps,
        start: PageId(0),
        staging: Vec::new(),
    };
    let mut leaf = node::new_leaf(ps, epoch);
    let budget = node::capacity(&leaf) * FILL_NUM / FILL_DEN;
    // (separator before the node, node) for the level being built.
    let mut level: Vec<(Vec<u8>, PageId)> = Vec::new();
    let mut prev_last: Vec<u8> = Vec::new();
    let mut last: Option<Vec<u8>> = None;
    let mut first_of_leaf: Vec<u8> = Vec::new();
    let mut cell = Vec::new();
    let mut count = 0u64;
    for (k, v) in entries {
        if k.len() > lim.max_key {
            return Err(StoreError::KeyTooLarge {
                len: k.len(),
                max: lim.max_key,
            });
        }
        if v.len() as u64 > node::MAX_VALUE_LEN {
            return Err(StoreError::Invalid(format!(
                "value of {} bytes is longer than the maximum of {}",
                v.len(),
                node::MAX_VALUE_LEN
            )));
        }
        if let Some(prev) = &last {
            if k <= *prev {
                return Err(StoreError::Invalid(format!(
                    "bulk load keys not strictly ascending: {k:02x?} after {prev:02x?}"
                )));
            }
        }
        let repr = if v.len() > lim.max_inline {
            let first = overflow::write(pager, &v)?;
            built.chains.push((first, v.len() as u64));
            Value::Overflow {
                first,
                len: v.len() as u64,
            }
        } else {
            Value::Inline(&v)
        };
        node::encode_leaf_cell(&mut cell, &k, repr);
        if node::count(&leaf) > 0 && node::fill(&leaf) + cell.len() + 2 > budget {
            finish_leaf(
                pager,
                &mut writer,
                built,
                &mut level,
                &leaf,
                &prev_last,
                &first_of_leaf,
            )?;
            prev_last = last.take().expect("invariant: a full leaf has a last key");
            node::clear(&mut leaf);
        }
        if node::count(&leaf) == 0 {
            first_of_leaf.clone_from(&k);
        }
        let n = node::count(&leaf);
        let fitted = node::insert_cell(&mut leaf, n, &cell);
        debug_assert!(fitted, "invariant: a cell fits an empty leaf");
        last = Some(k);
        count += 1;
    }
    if count == 0 {
        return Ok(None);
    }
    finish_leaf(
        pager,
        &mut writer,
        built,
        &mut level,
        &leaf,
        &prev_last,
        &first_of_leaf,
    )?;
    while level.len() > 1 {
        level = build_branches(pager, &mut writer, built, level, budget)?;
    }
    writer.flush(pager)?;
    Ok(Some((level[0].1, count)))
}

fn finish_leaf(
    pager: &mut Pager,
    writer: &mut Writer,
    built: &mut Built,
    level: &mut Vec<(Vec<u8>, PageId)>,
    leaf: &[u8],
    prev_last: &[u8],
    first: &[u8],
) -> Result<()> {
    let id = pager.alloc()?;
    built.pages.push(id);
    let sep = if level.is_empty() {
        Vec::new()
    } else {
        node::separator(prev_last, first)
    };
    level.push((sep, id));
    writer.add(pager, id, leaf)
}

/// Builds one level of branches over `children`; returns the new level.
fn build_branches(
    pager: &mut Pager,
    writer: &mut Writer,
    built: &mut Built,
    children: Vec<(Vec<u8>, PageId)>,
    budget: usize,
) -> Result<Vec<(Vec<u8>, PageId)>> {
    // Group the children greedily, at least two per branch.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    let mut fill = 0;
    for (i, (sep, _)) in children.iter().enumerate().skip(1) {
        let size = node::BRANCH_CELL_HEADER + sep.len() + 2;
        if i - start >= 2 && fill + size > budget {
            groups.push((start, i));
            start = i;
            fill = 0;
        } else {
            fill += size;
        }
    }
    groups.push((start, children.len()));
    // A last branch with a single child borrows one from its neighbour.
    if groups.len() > 1 && groups[groups.len() - 1].1 - groups[groups.len() - 1].0 == 1 {
        let n = groups.len();
        groups[n - 2].1 -= 1;
        groups[n - 1].0 -= 1;
    }
    let (ps, epoch) = (pager.page_size(), pager.current_epoch());
    let mut cell = Vec::new();
    let mut next = Vec::with_capacity(groups.len());
    for (a, b) in groups {
        let mut p = node::new_branch(ps, epoch, children[a].1);
        for (j, (sep, child)) in children[a + 1..b].iter().enumerate() {
            node::encode_branch_cell(&mut cell, sep, *child);
            let fitted = node::insert_cell(&mut p, j, &cell);
            debug_assert!(fitted, "invariant: grouped cells fit");
        }
        let id = pager.alloc()?;
        built.pages.push(id);
        writer.add(pager, id, &p)?;
        next.push((children[a].0.clone(), id));
    }
    Ok(next)
}
