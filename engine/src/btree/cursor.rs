//! Range scans.
//!
//! Two ways to walk a range, both moving between leaves through the stack of branches they
//! descended (leaves have no sibling links: copy-on-write would have to copy both neighbours of
//! every changed leaf):
//!
//! - `fill`: in batches. A batch holds no page afterwards: it descends from the root to the first
//!   key past the last one returned, collects entries leaf after leaf, and stops at a leaf boundary
//!   once it has enough, or mid-leaf if the values get large.
//! - `Position`: a leaf and the branches above it, kept between calls. The pages are shared
//!   copies (`Arc`s) of the pool's, immutable, so reading them needs no lock; the caller
//!   (`store::RawCursor`) takes the store's lock only to move to another leaf or read an overflow
//!   chain, and first checks that the store has not changed since the position was taken (if it
//!   has, it seeks again from the root after the last key it visited).

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

use crate::btree::{load_value, node, read_node, too_deep, MAX_DEPTH};
use crate::page::PageId;
use crate::pager::Pager;
use crate::store::StoreError;

type Result<T> = std::result::Result<T, StoreError>;

/// A batch stops at the end of a leaf once it holds this many entries...
const SOFT_ENTRIES: usize = 64;
/// ...and anywhere once it holds this many, or this many bytes.
const HARD_ENTRIES: usize = 1024;
const HARD_BYTES: usize = 1 << 20;

type Page = Arc<Vec<u8>>;

/// Entries collected by one batch.
pub(crate) type Entries = VecDeque<(Vec<u8>, Vec<u8>)>;

fn below(k: &[u8], lower: Bound<&[u8]>) -> bool {
    match lower {
        Bound::Unbounded => false,
        Bound::Included(b) => k < b,
        Bound::Excluded(b) => k <= b,
    }
}

fn above(k: &[u8], upper: Bound<&[u8]>) -> bool {
    match upper {
        Bound::Unbounded => false,
        Bound::Included(b) => k > b,
        Bound::Excluded(b) => k >= b,
    }
}

/// Descends to the leaf holding the start of the scan, pushing the branches on `stack` with the
/// child taken. `pick` chooses the child of a branch.
fn seek(
    pager: &Pager,
    root: PageId,
    stack: &mut Vec<(Page, usize)>,
    pick: impl Fn(&[u8]) -> usize,
) -> Result<Page> {
    let mut id = root;
    loop {
        if stack.len() >= MAX_DEPTH {
            return Err(too_deep(id));
        }
        let p = read_node(pager, id)?;
        if node::is_leaf(&p) {
            return Ok(p);
        }
        let i = pick(&p);
        id = node::child(&p, i);
        stack.push((p, i));
    }
}

/// The next leaf to the right (`forward`) or left, or None at the edge of the tree.
fn step(pager: &Pager, stack: &mut Vec<(Page, usize)>, forward: bool) -> Result<Option<Page>> {
    loop {
        let Some((p, i)) = stack.pop() else {
            return Ok(None);
        };
        let next = if forward {
            (i < node::count(&p)).then(|| i + 1)
        } else {
            i.checked_sub(1)
        };
        let Some(i) = next else { continue };
        let id = node::child(&p, i);
        stack.push((p, i));
        let pick = |q: &[u8]| if forward { 0 } else { node::count(q) };
        return seek(pager, id, stack, pick).map(Some);
    }
}

/// Touches every cache line of a leaf a cursor is about to walk. Its cells lie in the page in no
/// useful order, so walking them from a page not in the CPU's caches would take one memory miss
/// per entry, in turn; these loads are independent of each other, so the CPU overlaps them.
fn warm(page: &[u8]) {
    let mut x = 0u8;
    for line in page.chunks(64) {
        x ^= line[0];
    }
    std::hint::black_box(x);
}

/// A place in a tree: a leaf, the index of the next entry, and the branches above it.
pub(crate) struct Position {
    stack: Vec<(Page, usize)>,
    pub leaf: Page,
    /// Forward: the next entry to visit. Reverse: one past it.
    pub pos: usize,
    /// `pos` when the leaf was entered: entries between it and `pos` have been visited.
    pub entered_at: usize,
}

impl Position {
    /// Positions at the first entry within `lower` (forward) or the last within `upper`
    /// (reverse).
    pub(crate) fn seek(
        pager: &Pager,
        root: PageId,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
    ) -> Result<Position> {
        let mut stack = Vec::new();
        let (leaf, pos) = if !reverse {
            let leaf = seek(pager, root, &mut stack, |p| match lower {
                Bound::Unbounded => 0,
                Bound::Included(k) | Bound::Excluded(k) => node::upper_bound(p, k),
            })?;
            let pos = match lower {
                Bound::Unbounded => 0,
                Bound::Included(k) => node::lower_bound(&leaf, k),
                Bound::Excluded(k) => node::upper_bound(&leaf, k),
            };
            (leaf, pos)
        } else {
            let leaf = seek(pager, root, &mut stack, |p| match upper {
                Bound::Unbounded => node::count(p),
                Bound::Included(k) => node::upper_bound(p, k),
                Bound::Excluded(k) => node::lower_bound(p, k),
            })?;
            let pos = match upper {
                Bound::Unbounded => node::count(&leaf),
                Bound::Included(k) => node::upper_bound(&leaf, k),
                Bound::Excluded(k) => node::lower_bound(&leaf, k),
            };
            (leaf, pos)
        };
        warm(&leaf);
        Ok(Position {
            stack,
            leaf,
            pos,
            entered_at: pos,
        })
    }

    /// Moves to the next leaf in the direction; false at the edge of the tree.
    pub(crate) fn next_leaf(&mut self, pager: &Pager, reverse: bool) -> Result<bool> {
        match step(pager, &mut self.stack, !reverse)? {
            Some(leaf) => {
                warm(&leaf);
                self.pos = if reverse { node::count(&leaf) } else { 0 };
                self.entered_at = self.pos;
                self.leaf = leaf;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The last key visited in this leaf, if any.
    pub(crate) fn last_visited(&self, reverse: bool) -> Option<&[u8]> {
        if !reverse && self.pos > self.entered_at {
            Some(node::key(&self.leaf, self.pos - 1))
        } else if reverse && self.pos < self.entered_at {
            Some(node::key(&self.leaf, self.pos))
        } else {
            None
        }
    }
}

/// True if `k` is past the end of the range in the direction of the scan.
pub(crate) fn past_end(k: &[u8], lower: Bound<&[u8]>, upper: Bound<&[u8]>, reverse: bool) -> bool {
    if reverse {
        below(k, lower)
    } else {
        above(k, upper)
    }
}

/// Appends entries with keys within the bounds to `out`, ascending or descending; returns true
/// when the range is exhausted, false when the batch is full (continue after the last key).
pub(crate) fn fill(
    pager: &Pager,
    root: PageId,
    lower: Bound<&[u8]>,
    upper: Bound<&[u8]>,
    reverse: bool,
    out: &mut Entries,
) -> Result<bool> {
    let mut stack = Vec::new();
    let mut bytes = 0usize;
    let mut taken = 0usize;
    let mut take = |k: &[u8], p: &[u8], i: usize, out: &mut Entries| -> Result<bool> {
        let v = load_value(pager, node::value(p, i))?;
        bytes += k.len() + v.len();
        taken += 1;
        out.push_back((k.to_vec(), v));
        Ok(taken >= HARD_ENTRIES || bytes >= HARD_BYTES)
    };
    if !reverse {
        let mut leaf = seek(pager, root, &mut stack, |p| match lower {
            Bound::Unbounded => 0,
            Bound::Included(k) | Bound::Excluded(k) => node::upper_bound(p, k),
        })?;
        let mut pos = match lower {
            Bound::Unbounded => 0,
            Bound::Included(k) => node::lower_bound(&leaf, k),
            Bound::Excluded(k) => node::upper_bound(&leaf, k),
        };
        loop {
            while pos < node::count(&leaf) {
                let k = node::key(&leaf, pos);
                if above(k, upper) {
                    return Ok(true);
                }
                if take(k, &leaf, pos, out)? {
                    return Ok(false);
                }
                pos += 1;
            }
            if out.len() >= SOFT_ENTRIES {
                return Ok(false);
            }
            match step(pager, &mut stack, true)? {
                Some(next) => leaf = next,
                None => return Ok(true),
            }
            pos = 0;
        }
    } else {
        let mut leaf = seek(pager, root, &mut stack, |p| match upper {
            Bound::Unbounded => node::count(p),
            Bound::Included(k) => node::upper_bound(p, k),
            Bound::Excluded(k) => node::lower_bound(p, k),
        })?;
        // `pos` is one past the next entry to return.
        let mut pos = match upper {
            Bound::Unbounded => node::count(&leaf),
            Bound::Included(k) => node::upper_bound(&leaf, k),
            Bound::Excluded(k) => node::lower_bound(&leaf, k),
        };
        loop {
            while pos > 0 {
                let k = node::key(&leaf, pos - 1);
                if below(k, lower) {
                    return Ok(true);
                }
                if take(k, &leaf, pos - 1, out)? {
                    return Ok(false);
                }
                pos -= 1;
            }
            if out.len() >= SOFT_ENTRIES {
                return Ok(false);
            }
            match step(pager, &mut stack, false)? {
                Some(next) => leaf = next,
                None => return Ok(true),
            }
            pos = node::count(&leaf);
        }
    }
}
