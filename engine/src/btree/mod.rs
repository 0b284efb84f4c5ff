//! B+trees of byte keys (memcmp order) and byte values, in the pager's pages.
//!
//! A tree is named by its root page; the store keeps the name -> root map. Every operation that
//! changes a tree returns its (possibly new) root, because of copy-on-write: the first change to a
//! page of an older epoch copies it to a new page (`writable`), so its parent must be changed to
//! point there, and so on up to the root (path copying). Pages of the current epoch are changed in
//! place, so a burst of writes between checkpoints copies each page at most once.
//!
//! INVARIANTS (checked by `verify`):
//!
//! 1. Keys are strictly ascending within a page and across pages; every key in child `i` of a
//!    branch lies in `[key i-1, key i)` of that branch (the bounds its ancestors give).
//! 2. All leaves are at the same depth. Depth is at most `MAX_DEPTH`; deeper is corruption (a
//!    cycle), so no descent runs forever.
//! 3. A branch has at least one key. A leaf is empty only when it is the root (the empty tree).
//! 4. A leaf value longer than `Limits::max_inline` is in an overflow chain; keys are at most
//!    `Limits::max_key` bytes. Then every cell is at most a quarter of a page (branch) or half
//!    (leaf), so an overfull page always splits into two that fit.
//!
//! SPLITS put half the bytes in each page, except when appending at the right edge of the tree,
//! where the old page stays full and the new one starts with the new entry (sequential inserts
//! leave full pages). Branch keys are the shortest separators between the two sides.
//! UNDERFLOW: a node filled below a quarter is merged with a sibling when both fit in one page,
//! else the two share their entries evenly. A root branch left with one child is removed.
//!
//! BATCHES (`update`): many keys changed in one pass. The leaf of the current key is held (out of
//! the pool once changed) together with the key range its ancestors assign it; following keys in
//! that range are applied to it directly, and its ancestors are updated once when the batch moves
//! on (or at once, when the leaf splits or underflows). Sorted input thus costs one descent and
//! one parent update per leaf, not per key; the result is the same as one `put`/`delete` per key.
//!
//! Modules: `node` (page layout), `overflow` (large values), `cursor` (range scans in batches),
//! `bulk` (bottom-up build from sorted input), `verify` (the full structural check).

pub(crate) mod bulk;
pub(crate) mod cursor;
pub(crate) mod node;
pub(crate) mod overflow;
pub(crate) mod verify;

use crate::page::{self, PageId};
use crate::pager::Pager;
use crate::store::StoreError;
use node::Value;

type Result<T> = std::result::Result<T, StoreError>;

/// Deepest tree accepted; a descent past it means a cycle or other corruption.
pub(crate) const MAX_DEPTH: usize = 40;
/// Longest run of contiguous pages moved in one device call.
pub(crate) const MAX_IO_RUN: usize = 64;

/// Size limits that follow from the page size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_key: usize,
    pub max_inline: usize,
}

impl Limits {
    pub(crate) fn new(page_size: usize) -> Limits {
        Limits {
            max_key: page_size / 4 - 40,
            max_inline: page_size / 4,
        }
    }
}

pub(crate) fn too_deep(page: PageId) -> StoreError {
    StoreError::Corrupt {
        page: page.0,
        reason: format!("tree deeper than {MAX_DEPTH} levels (a cycle?)"),
    }
}

/// Reads a node page.
pub(crate) fn read_node(pager: &Pager, id: PageId) -> Result<std::sync::Arc<Vec<u8>>> {
    pager.read(id, node::validate)
}

/// The bytes of a value, loading an overflow chain if need be.
pub(crate) fn load_value(pager: &Pager, v: Value<'_>) -> Result<Vec<u8>> {
    match v {
        Value::Inline(bytes) => Ok(bytes.to_vec()),
        Value::Overflow { first, len } => overflow::read(pager, first, len),
    }
}

/// Whether a node is filled below the merge threshold.
fn underfull(p: &[u8]) -> bool {
    node::fill(p) < node::capacity(p) / 4 || (!node::is_leaf(p) && node::count(p) == 0)
}

/// Takes a page for changing: itself if of the current epoch, else a copy on a new page (the
/// old one is freed when the next checkpoint completes). Returns the id to use.
pub(crate) fn writable(pager: &mut Pager, id: PageId) -> Result<(PageId, Vec<u8>)> {
    let buf = pager.take(id, node::validate)?;
    adopt(pager, id, buf)
}

/// As `writable`, for a page already taken out of the pool.
fn adopt(pager: &mut Pager, id: PageId, mut buf: Vec<u8>) -> Result<(PageId, Vec<u8>)> {
    let epoch = page::epoch(&buf);
    if epoch == pager.current_epoch() {
        return Ok((id, buf));
    }
    let new = pager.alloc()?;
    page::set_epoch(&mut buf, pager.current_epoch());
    pager.release(id, epoch);
    Ok((new, buf))
}

/// Creates an empty tree; returns its root.
pub(crate) fn create(pager: &mut Pager) -> Result<PageId> {
    let id = pager.alloc()?;
    let p = node::new_leaf(pager.page_size(), pager.current_epoch());
    pager.put(id, p)?;
    Ok(id)
}

/// The value of `key`.
pub(crate) fn get(pager: &Pager, root: PageId, key: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut id = root;
    for _ in 0..MAX_DEPTH {
        let p = read_node(pager, id)?;
        if node::is_leaf(&p) {
            return match node::search(&p, key) {
                Ok(i) => Ok(Some(load_value(pager, node::value(&p, i))?)),
                Err(_) => Ok(None),
            };
        }
        id = node::child(&p, node::upper_bound(&p, key));
    }
    Err(too_deep(id))
}

/// Calls `f` with the value of `key` (loaded from its overflow chain if need be).
pub(crate) fn get_with<T, E: From<StoreError>>(
    pager: &Pager,
    root: PageId,
    key: &[u8],
    f: impl FnOnce(&[u8]) -> std::result::Result<T, E>,
) -> std::result::Result<Option<T>, E> {
    let mut id = root;
    for _ in 0..MAX_DEPTH {
        let p = read_node(pager, id)?;
        if node::is_leaf(&p) {
            let Ok(i) = node::search(&p, key) else {
                return Ok(None);
            };
            return match node::value(&p, i) {
                Value::Inline(bytes) => f(bytes).map(Some),
                Value::Overflow { first, len } => f(&overflow::read(pager, first, len)?).map(Some),
            };
        }
        id = node::child(&p, node::upper_bound(&p, key));
    }
    Err(too_deep(id).into())
}

/// One step of a root-to-leaf path: a branch, the child taken, and whether it was the last.
#[derive(Clone, Copy, Debug)]
struct Step {
    id: PageId,
    idx: usize,
    last: bool,
}

/// Finds the leaf for `key`, recording the path to it.
fn descend(pager: &Pager, root: PageId, key: &[u8]) -> Result<(Vec<Step>, PageId)> {
    let mut path = Vec::new();
    let mut id = root;
    loop {
        if path.len() >= MAX_DEPTH {
            return Err(too_deep(id));
        }
        let p = read_node(pager, id)?;
        if node::is_leaf(&p) {
            return Ok((path, id));
        }
        let idx = node::upper_bound(&p, key);
        path.push(Step {
            id,
            idx,
            last: idx == node::count(&p),
        });
        id = node::child(&p, idx);
    }
}

/// The leaf a batch update is working on: its path, the key range its parents give it, and the
/// page, read-only until the first change, then writable (taken out of the pool).
struct Held {
    path: Vec<Step>,
    orig: PageId,
    /// Keys `>= lo` (None: no lower bound) and `< hi` (None: no upper bound) belong here.
    lo: Option<Vec<u8>>,
    hi: Option<Vec<u8>>,
    page: HeldPage,
}

enum HeldPage {
    Read(std::sync::Arc<Vec<u8>>),
    Write(PageId, Vec<u8>),
}

impl Held {
    /// Descends to the leaf for `key`, noting the bounds of its key range on the way.
    fn find(pager: &Pager, root: PageId, key: &[u8]) -> Result<Held> {
        let mut path = Vec::new();
        let mut pages = Vec::new();
        let mut id = root;
        loop {
            if path.len() >= MAX_DEPTH {
                return Err(too_deep(id));
            }
            let p = read_node(pager, id)?;
            if node::is_leaf(&p) {
                let (lo, hi) = bounds_of(&pages, &path);
                return Ok(Held {
                    path,
                    orig: id,
                    lo,
                    hi,
                    page: HeldPage::Read(p),
                });
            }
            let idx = node::upper_bound(&p, key);
            let n = node::count(&p);
            path.push(Step {
                id,
                idx,
                last: idx == n,
            });
            id = node::child(&p, idx);
            pages.push(p);
        }
    }

    fn contains(&self, key: &[u8]) -> bool {
        self.lo.as_deref().is_none_or(|lo| key >= lo)
            && self.hi.as_deref().is_none_or(|hi| key < hi)
    }

    fn bytes(&self) -> &[u8] {
        match &self.page {
            HeldPage::Read(p) => p,
            HeldPage::Write(_, buf) => buf,
        }
    }

    /// The page for changing (copied on write the first time).
    fn buf(&mut self, pager: &mut Pager) -> Result<(PageId, &mut Vec<u8>)> {
        if matches!(self.page, HeldPage::Read(_)) {
            // Give up our share first, so taking the page out of the pool does not copy it.
            self.page = HeldPage::Write(self.orig, Vec::new());
            let (id, buf) = writable(pager, self.orig)?;
            self.page = HeldPage::Write(id, buf);
        }
        match &mut self.page {
            HeldPage::Write(id, buf) => Ok((*id, buf)),
            HeldPage::Read(_) => unreachable!("made writable above"),
        }
    }

    /// Puts the leaf back (if changed) and updates its ancestors; returns the new root.
    fn finish(self, pager: &mut Pager, root: PageId) -> Result<PageId> {
        match self.page {
            HeldPage::Read(_) => Ok(root),
            // Emptied by a failed step: nothing to put back.
            HeldPage::Write(_, buf) if buf.is_empty() => Ok(root),
            HeldPage::Write(id, buf) => {
                pager.put(id, buf)?;
                propagate(pager, root, &self.path, moved(self.orig, id))
            }
        }
    }
}

/// The key range a leaf may hold, from the separators of its ancestors (the nearest ones bound it
/// tightest).
fn bounds_of(
    pages: &[std::sync::Arc<Vec<u8>>],
    path: &[Step],
) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let mut lo = None;
    let mut hi = None;
    for (p, step) in pages.iter().zip(path).rev() {
        if lo.is_none() && step.idx > 0 {
            lo = Some(node::key(p, step.idx - 1).to_vec());
        }
        if hi.is_none() && !step.last {
            hi = Some(node::key(p, step.idx).to_vec());
        }
        if lo.is_some() && hi.is_some() {
            break;
        }
    }
    (lo, hi)
}

/// Applies changes to many keys in one pass; returns the new root. For each `(key, change)` of
/// `items`, `merge(old value, change, out)` decides: true stores the bytes it left in `out` as
/// the key's value, false removes the key. Keys in ascending order are fastest: consecutive keys
/// that fall in one leaf are applied there without descending again, and the leaf's ancestors
/// are updated once. Any order is correct.
pub(crate) fn update<'k, P>(
    pager: &mut Pager,
    lim: &Limits,
    root: PageId,
    items: impl Iterator<Item = (&'k [u8], P)>,
    mut merge: impl FnMut(Option<&[u8]>, P, &mut Vec<u8>) -> Result<bool>,
) -> Result<PageId> {
    let mut root = root;
    let mut held: Option<Held> = None;
    let mut scratch = Scratch::default();
    for (key, change) in items {
        if key.len() > lim.max_key {
            if let Some(h) = held.take() {
                h.finish(pager, root)?;
            }
            return Err(StoreError::KeyTooLarge {
                len: key.len(),
                max: lim.max_key,
            });
        }
        if held.as_ref().is_some_and(|h| !h.contains(key)) {
            root = held.take().expect("checked").finish(pager, root)?;
        }
        let h = match &mut held {
            Some(h) => h,
            None => held.insert(Held::find(pager, root, key)?),
        };
        match update_one(pager, lim, h, key, change, &mut merge, &mut scratch) {
            Ok(Outcome::Kept) => {}
            Ok(Outcome::Released(up)) => {
                let h = held.take().expect("held");
                root = propagate(pager, root, &h.path, up)?;
            }
            Err(e) => {
                if let Some(h) = held.take() {
                    // Best effort: keep the tree consistent for what was applied.
                    let _ = h.finish(pager, root);
                }
                return Err(e);
            }
        }
    }
    match held {
        Some(h) => h.finish(pager, root),
        None => Ok(root),
    }
}

#[derive(Default)]
struct Scratch {
    value: Vec<u8>,
    cell: Vec<u8>,
    old: Vec<u8>,
}

enum Outcome {
    /// The leaf is still held.
    Kept,
    /// The leaf was put back (split or underfull): the parent must act on this.
    Released(Up),
}

fn update_one<P>(
    pager: &mut Pager,
    lim: &Limits,
    h: &mut Held,
    key: &[u8],
    change: P,
    merge: &mut impl FnMut(Option<&[u8]>, P, &mut Vec<u8>) -> Result<bool>,
    s: &mut Scratch,
) -> Result<Outcome> {
    let found = {
        let p = h.bytes();
        let n = node::count(p);
        // Appending (keys in ascending order): no search needed.
        if n > 0 && key > node::key(p, n - 1) {
            Err(n)
        } else {
            node::search(p, key)
        }
    };
    let mut old_chain = None;
    s.value.clear();
    let keep = {
        let old = match found {
            Ok(i) => match node::value(h.bytes(), i) {
                Value::Inline(bytes) => Some(bytes),
                Value::Overflow { first, len } => {
                    s.old = overflow::read(pager, first, len)?;
                    old_chain = Some((first, len));
                    Some(s.old.as_slice())
                }
            },
            Err(_) => None,
        };
        let keep = merge(old, change, &mut s.value)?;
        if keep && old == Some(s.value.as_slice()) {
            // Unchanged (a replayed commit): leave the page alone.
            return Ok(Outcome::Kept);
        }
        keep
    };
    if keep && s.value.len() as u64 > node::MAX_VALUE_LEN {
        return Err(StoreError::Invalid(format!(
            "value of {} bytes is longer than the maximum of {}",
            s.value.len(),
            node::MAX_VALUE_LEN
        )));
    }
    let outcome = if keep {
        let repr = if s.value.len() > lim.max_inline {
            Value::Overflow {
                first: overflow::write(pager, &s.value)?,
                len: s.value.len() as u64,
            }
        } else {
            Value::Inline(&s.value)
        };
        node::encode_leaf_cell(&mut s.cell, key, repr);
        let all_last = h.path.iter().all(|st| st.last);
        let (id, buf) = h.buf(pager)?;
        let fitted = match found {
            Ok(i) => node::replace_cell(buf, i, &s.cell),
            Err(i) => node::insert_cell(buf, i, &s.cell),
        };
        if fitted {
            Outcome::Kept
        } else {
            let append = found == Err(node::count(buf)) && all_last;
            let buf = std::mem::take(buf);
            Outcome::Released(split_leaf(pager, id, buf, found, &s.cell, append)?)
        }
    } else if let Ok(i) = found {
        let (id, buf) = h.buf(pager)?;
        node::remove_cell(buf, i);
        if underfull(buf) {
            let buf = std::mem::take(buf);
            pager.put(id, buf)?;
            Outcome::Released(Up::Underfull(id))
        } else {
            Outcome::Kept
        }
    } else {
        Outcome::Kept
    };
    if let Some((first, len)) = old_chain {
        overflow::free(pager, first, len)?;
    }
    Ok(outcome)
}

/// What happened to a node, for its parent to act on.
#[derive(Debug)]
enum Up {
    /// Changed in place: the parent needs nothing.
    Same,
    /// Now at another page (copy-on-write).
    Moved(PageId),
    /// Split in two: `sep` separates them.
    Split {
        left: PageId,
        sep: Vec<u8>,
        right: PageId,
    },
    /// At this page and filled below the threshold: merge or rebalance it.
    Underfull(PageId),
}

fn moved(old: PageId, new: PageId) -> Up {
    if old == new {
        Up::Same
    } else {
        Up::Moved(new)
    }
}

/// Inserts or replaces `key`; returns the new root.
pub(crate) fn put(
    pager: &mut Pager,
    lim: &Limits,
    root: PageId,
    key: &[u8],
    value: &[u8],
) -> Result<PageId> {
    debug_assert!(key.len() <= lim.max_key);
    let (path, leaf_id) = descend(pager, root, key)?;
    let (found, old_chain) = {
        let p = read_node(pager, leaf_id)?;
        let found = node::search(&p, key);
        let old_chain = match found {
            Ok(i) => match node::value(&p, i) {
                Value::Overflow { first, len } => Some((first, len)),
                Value::Inline(_) => None,
            },
            Err(_) => None,
        };
        (found, old_chain)
    };
    let repr = if value.len() > lim.max_inline {
        Value::Overflow {
            first: overflow::write(pager, value)?,
            len: value.len() as u64,
        }
    } else {
        Value::Inline(value)
    };
    let mut cell = Vec::with_capacity(node::leaf_cell_len(key, repr));
    node::encode_leaf_cell(&mut cell, key, repr);
    let (id, mut buf) = writable(pager, leaf_id)?;
    let fitted = match found {
        Ok(i) => node::replace_cell(&mut buf, i, &cell),
        Err(i) => node::insert_cell(&mut buf, i, &cell),
    };
    let up = if fitted {
        pager.put(id, buf)?;
        moved(leaf_id, id)
    } else {
        let append = found == Err(node::count(&buf)) && path.iter().all(|s| s.last);
        split_leaf(pager, id, buf, found, &cell, append)?
    };
    if let Some((first, len)) = old_chain {
        overflow::free(pager, first, len)?;
    }
    propagate(pager, root, &path, up)
}

/// Removes `key`; returns the new root, or None if the key was absent (nothing changed).
pub(crate) fn delete(pager: &mut Pager, root: PageId, key: &[u8]) -> Result<Option<PageId>> {
    let (path, leaf_id) = descend(pager, root, key)?;
    let (i, old_chain) = {
        let p = read_node(pager, leaf_id)?;
        let Ok(i) = node::search(&p, key) else {
            return Ok(None);
        };
        let chain = match node::value(&p, i) {
            Value::Overflow { first, len } => Some((first, len)),
            Value::Inline(_) => None,
        };
        (i, chain)
    };
    let (id, mut buf) = writable(pager, leaf_id)?;
    node::remove_cell(&mut buf, i);
    let up = if underfull(&buf) {
        Up::Underfull(id)
    } else {
        moved(leaf_id, id)
    };
    pager.put(id, buf)?;
    if let Some((first, len)) = old_chain {
        overflow::free(pager, first, len)?;
    }
    propagate(pager, root, &path, up).map(Some)
}

/// Splits an overfull leaf: `buf` (writable as `id`) plus `cell` inserted at (or replacing)
/// `found`.
fn split_leaf(
    pager: &mut Pager,
    id: PageId,
    buf: Vec<u8>,
    found: std::result::Result<usize, usize>,
    cell: &[u8],
    append: bool,
) -> Result<Up> {
    let n = node::count(&buf);
    let (ps, epoch) = (pager.page_size(), pager.current_epoch());
    if append && n > 0 && found == Err(n) {
        // The old page stays as it is, full; the new one starts with the new entry.
        let mut right = node::new_leaf(ps, epoch);
        let fitted = node::insert_cell(&mut right, 0, cell);
        debug_assert!(fitted, "invariant: a cell fits an empty leaf");
        let sep = node::separator(node::key(&buf, n - 1), node::raw_cell_key(cell, true));
        let rid = pager.alloc()?;
        pager.put(id, buf)?;
        pager.put(rid, right)?;
        return Ok(Up::Split {
            left: id,
            sep,
            right: rid,
        });
    }
    let mut cells: Vec<&[u8]> = (0..n).map(|j| node::cell(&buf, j)).collect();
    match found {
        Ok(i) => cells[i] = cell,
        Err(i) => cells.insert(i, cell),
    }
    let cap = node::capacity(&buf);
    let k = if append {
        cells.len() - 1
    } else {
        let sizes: Vec<usize> = cells.iter().map(|c| c.len() + 2).collect();
        node::balanced_split(&sizes, cap)
    };
    let mut left = node::new_leaf(ps, epoch);
    node::rebuild(&mut left, &cells[..k]);
    let mut right = node::new_leaf(ps, epoch);
    node::rebuild(&mut right, &cells[k..]);
    let sep = node::separator(
        node::raw_cell_key(cells[k - 1], true),
        node::raw_cell_key(cells[k], true),
    );
    drop(cells);
    let rid = pager.alloc()?;
    pager.put(id, left)?;
    pager.put(rid, right)?;
    Ok(Up::Split {
        left: id,
        sep,
        right: rid,
    })
}

/// Splits an overfull branch: `buf` (writable as `id`) plus `cell` inserted as key `at`.
fn split_branch(
    pager: &mut Pager,
    id: PageId,
    buf: Vec<u8>,
    at: usize,
    cell: &[u8],
    append: bool,
) -> Result<Up> {
    let n = node::count(&buf);
    let mut cells: Vec<&[u8]> = (0..n).map(|j| node::cell(&buf, j)).collect();
    cells.insert(at, cell);
    let len = cells.len();
    let mut k = if append {
        len - 2
    } else {
        let sizes: Vec<usize> = cells.iter().map(|c| c.len() + 2).collect();
        node::balanced_split(&sizes, node::capacity(&buf))
    };
    k = k.clamp(1, len - 2);
    let (ps, epoch) = (pager.page_size(), pager.current_epoch());
    let mut left = node::new_branch(ps, epoch, node::child(&buf, 0));
    node::rebuild(&mut left, &cells[..k]);
    let mut right = node::new_branch(ps, epoch, node::raw_cell_child(cells[k]));
    node::rebuild(&mut right, &cells[k + 1..]);
    let sep = node::raw_cell_key(cells[k], false).to_vec();
    drop(cells);
    let rid = pager.alloc()?;
    pager.put(id, left)?;
    pager.put(rid, right)?;
    Ok(Up::Split {
        left: id,
        sep,
        right: rid,
    })
}

/// Applies a node's outcome to its ancestors, bottom up; returns the new root.
fn propagate(pager: &mut Pager, root: PageId, path: &[Step], mut up: Up) -> Result<PageId> {
    let mut cell = Vec::new();
    for (level, step) in path.iter().enumerate().rev() {
        up = match up {
            Up::Same => return Ok(root),
            Up::Moved(child) => {
                let (id, mut buf) = writable(pager, step.id)?;
                node::set_child(&mut buf, step.idx, child);
                pager.put(id, buf)?;
                moved(step.id, id)
            }
            Up::Split { left, sep, right } => {
                let (id, mut buf) = writable(pager, step.id)?;
                node::set_child(&mut buf, step.idx, left);
                node::encode_branch_cell(&mut cell, &sep, right);
                if node::insert_cell(&mut buf, step.idx, &cell) {
                    pager.put(id, buf)?;
                    moved(step.id, id)
                } else {
                    let append = path[..=level].iter().all(|s| s.last);
                    split_branch(pager, id, buf, step.idx, &cell, append)?
                }
            }
            Up::Underfull(child) => {
                let (id, mut buf) = writable(pager, step.id)?;
                node::set_child(&mut buf, step.idx, child);
                rebalance(pager, step.id, id, buf, step.idx)?
            }
        };
    }
    match up {
        Up::Same => Ok(root),
        Up::Moved(id) => Ok(id),
        Up::Split { left, sep, right } => {
            let id = pager.alloc()?;
            let mut p = node::new_branch(pager.page_size(), pager.current_epoch(), left);
            node::encode_branch_cell(&mut cell, &sep, right);
            let fitted = node::insert_cell(&mut p, 0, &cell);
            debug_assert!(fitted, "invariant: one key fits an empty branch");
            pager.put(id, p)?;
            Ok(id)
        }
        Up::Underfull(mut id) => {
            // A root branch with a single child gives way to it.
            loop {
                let p = read_node(pager, id)?;
                if node::is_leaf(&p) || node::count(&p) > 0 {
                    return Ok(id);
                }
                let only = node::child(&p, 0);
                let epoch = page::epoch(&p);
                drop(p);
                pager.release(id, epoch);
                id = only;
            }
        }
    }
}

/// Child `idx` of the branch `buf` (writable as `id`, formerly `orig`) is underfull: merges it
/// with a neighbour, or evens out the two. Returns the branch's own outcome.
fn rebalance(
    pager: &mut Pager,
    orig: PageId,
    id: PageId,
    mut buf: Vec<u8>,
    idx: usize,
) -> Result<Up> {
    if node::count(&buf) == 0 {
        // No sibling to work with (a damaged or degenerate parent): leave it to the grandparent.
        pager.put(id, buf)?;
        return Ok(Up::Underfull(id));
    }
    let li = idx.saturating_sub(1);
    let ri = li + 1;
    let (lid, mut lbuf) = writable(pager, node::child(&buf, li))?;
    let rorig = node::child(&buf, ri);
    let rbuf = pager.take(rorig, node::validate)?;
    if node::is_leaf(&lbuf) != node::is_leaf(&rbuf) {
        return Err(StoreError::Corrupt {
            page: rorig.0,
            reason: "siblings of different kinds (leaf and branch)".into(),
        });
    }
    let cap = node::capacity(&lbuf);
    let leaf = node::is_leaf(&lbuf);
    let mut cell = Vec::new();
    // The cell that would join the two: nothing for leaves, the parent's key for branches.
    if !leaf {
        node::encode_branch_cell(&mut cell, node::key(&buf, li), node::child(&rbuf, 0));
    }
    let joined = node::fill(&lbuf) + node::fill(&rbuf) + if leaf { 0 } else { cell.len() + 2 };
    let replacement = if joined <= cap {
        // Merge the right node into the left one.
        if !leaf {
            let n = node::count(&lbuf);
            let ok = node::insert_cell(&mut lbuf, n, &cell);
            debug_assert!(ok, "invariant: merge fits");
        }
        for j in 0..node::count(&rbuf) {
            let n = node::count(&lbuf);
            let ok = node::insert_cell(&mut lbuf, n, node::cell(&rbuf, j));
            debug_assert!(ok, "invariant: merge fits");
        }
        pager.release(rorig, page::epoch(&rbuf));
        pager.put(lid, lbuf)?;
        node::set_child(&mut buf, li, lid);
        node::remove_cell(&mut buf, li);
        None
    } else {
        // Share the entries evenly; the key between them changes.
        let (rid, rbuf) = adopt(pager, rorig, rbuf)?;
        let (ps, epoch) = (pager.page_size(), pager.current_epoch());
        let mut cells: Vec<&[u8]> = (0..node::count(&lbuf))
            .map(|j| node::cell(&lbuf, j))
            .collect();
        if !leaf {
            cells.push(&cell);
        }
        cells.extend((0..node::count(&rbuf)).map(|j| node::cell(&rbuf, j)));
        let sizes: Vec<usize> = cells.iter().map(|c| c.len() + 2).collect();
        let k = node::balanced_split(&sizes, cap);
        let (new_left, new_right, sep) = if leaf {
            let mut l = node::new_leaf(ps, epoch);
            node::rebuild(&mut l, &cells[..k]);
            let mut r = node::new_leaf(ps, epoch);
            node::rebuild(&mut r, &cells[k..]);
            let sep = node::separator(
                node::raw_cell_key(cells[k - 1], true),
                node::raw_cell_key(cells[k], true),
            );
            (l, r, sep)
        } else {
            let k = k.clamp(1, cells.len() - 2);
            let mut l = node::new_branch(ps, epoch, node::child(&lbuf, 0));
            node::rebuild(&mut l, &cells[..k]);
            let mut r = node::new_branch(ps, epoch, node::raw_cell_child(cells[k]));
            node::rebuild(&mut r, &cells[k + 1..]);
            (l, r, node::raw_cell_key(cells[k], false).to_vec())
        };
        drop(cells);
        pager.put(lid, new_left)?;
        pager.put(rid, new_right)?;
        node::set_child(&mut buf, li, lid);
        node::set_child(&mut buf, ri, rid);
        let mut sep_cell = Vec::new();
        node::encode_branch_cell(&mut sep_cell, &sep, rid);
        node::remove_cell(&mut buf, li);
        Some(sep_cell)
    };
    if let Some(sep_cell) = replacement {
        if !node::insert_cell(&mut buf, li, &sep_cell) {
            return split_branch(pager, id, buf, li, &sep_cell, false);
        }
    }
    let up = if underfull(&buf) {
        Up::Underfull(id)
    } else {
        moved(orig, id)
    };
    pager.put(id, buf)?;
    Ok(up)
}

/// Frees every page of a tree, its overflow chains included.
pub(crate) fn free_tree(pager: &mut Pager, root: PageId) -> Result<()> {
    let mut stack = vec![(root, 0usize)];
    while let Some((id, depth)) = stack.pop() {
        if depth >= MAX_DEPTH {
            return Err(too_deep(id));
        }
        let p = pager.take(id, node::validate)?;
        let n = node::count(&p);
        if node::is_leaf(&p) {
            for i in 0..n {
                if let Value::Overflow { first, len } = node::value(&p, i) {
                    overflow::free(pager, first, len)?;
                }
            }
        } else {
            stack.extend((0..=n).map(|i| (node::child(&p, i), depth + 1)));
        }
        pager.release(id, page::epoch(&p));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use strata_storage::MemDevice;

    pub(crate) fn pager(page_size: usize, cache: usize) -> Pager {
        let mem = MemDevice::new(page_size, 0);
        let mut pager = Pager::create(Arc::new(mem), cache).unwrap();
        let dir = create(&mut pager).unwrap();
        pager.checkpoint(dir, 0, &[]).unwrap();
        pager
    }

    fn key(i: u32) -> Vec<u8> {
        format!("key{:08}", i.wrapping_mul(2_654_435_761) % 1_000_000).into_bytes()
    }

    fn check(pager: &Pager, root: PageId, model: &BTreeMap<Vec<u8>, Vec<u8>>) {
        let lim = Limits::new(pager.page_size());
        verify::check_tree(pager, &lim, root).unwrap();
        for (k, v) in model {
            assert_eq!(get(pager, root, k).unwrap().as_ref(), Some(v));
        }
    }

    #[test]
    fn splits_and_merges_keep_the_tree_valid() {
        let mut pager = pager(1024, 16);
        let lim = Limits::new(1024);
        let mut root = create(&mut pager).unwrap();
        let mut model = BTreeMap::new();
        for i in 0..3000u32 {
            let v = vec![i as u8; (i % 50) as usize];
            root = put(&mut pager, &lim, root, &key(i), &v).unwrap();
            model.insert(key(i), v);
            if i % 1000 == 999 {
                pager.checkpoint(root, 0, &[]).unwrap();
            }
        }
        check(&pager, root, &model);
        let depth_before = verify::check_tree(&pager, &lim, root).unwrap().depth;
        assert!(depth_before >= 3, "depth {depth_before}");
        for i in (0..3000u32).filter(|i| i % 7 != 0) {
            root = delete(&mut pager, root, &key(i)).unwrap().expect("present");
            model.remove(&key(i));
        }
        assert_eq!(delete(&mut pager, root, b"absent").unwrap(), None);
        check(&pager, root, &model);
        for i in (0..3000u32).filter(|i| i % 7 == 0) {
            root = delete(&mut pager, root, &key(i)).unwrap().expect("present");
        }
        let stats = verify::check_tree(&pager, &lim, root).unwrap();
        assert_eq!((stats.entries, stats.pages, stats.depth), (0, 1, 1));
    }

    #[test]
    fn sequential_inserts_fill_pages() {
        let mut pager = pager(4096, 64);
        let lim = Limits::new(4096);
        let mut root = create(&mut pager).unwrap();
        for i in 0..20_000u32 {
            root = put(&mut pager, &lim, root, &i.to_be_bytes(), &[7; 20]).unwrap();
        }
        let stats = verify::check_tree(&pager, &lim, root).unwrap();
        let per_leaf = (4096 - 24) / (2 + 6 + 4 + 20);
        assert!(
            stats.pages < 20_000 / per_leaf as u64 * 11 / 10,
            "{} pages for {} entries ({} per leaf)",
            stats.pages,
            stats.entries,
            per_leaf
        );
    }

    #[test]
    fn large_values_replace_and_free_chains() {
        let mut pager = pager(1024, 16);
        let lim = Limits::new(1024);
        let mut root = create(&mut pager).unwrap();
        let big = vec![3u8; 50_000];
        root = put(&mut pager, &lim, root, b"k", &big).unwrap();
        assert_eq!(get(&pager, root, b"k").unwrap(), Some(big));
        let free_before = pager.space().free;
        root = put(&mut pager, &lim, root, b"k", b"small").unwrap();
        assert!(pager.space().free >= free_before + 50, "chain freed");
        assert_eq!(get(&pager, root, b"k").unwrap(), Some(b"small".to_vec()));
        let s = verify::check_tree(&pager, &lim, root).unwrap();
        assert_eq!(s.overflow_pages, 0);
    }

    #[test]
    fn descent_is_bounded_on_a_cycle() {
        let mut pager = pager(1024, 16);
        let id = pager.alloc().unwrap();
        let mut p = node::new_branch(1024, pager.current_epoch(), id);
        let mut cell = Vec::new();
        node::encode_branch_cell(&mut cell, b"m", id);
        assert!(node::insert_cell(&mut p, 0, &cell));
        pager.put(id, p).unwrap();
        assert!(matches!(
            get(&pager, id, b"a"),
            Err(StoreError::Corrupt { .. })
        ));
        let lim = Limits::new(1024);
        assert!(put(&mut pager, &lim, id, b"a", b"v").is_err());
    }

    /// A tiny deterministic generator for the tests below.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Batched updates in ascending and in arbitrary order, with puts, deletes (down to an
    /// empty tree), values small and overflowing, and keys absent or present, against a model;
    /// the tree is verified after every batch and across checkpoints.
    #[test]
    fn batched_updates_match_a_model() {
        let mut pager = pager(1024, 16);
        let lim = Limits::new(1024);
        let mut root = create(&mut pager).unwrap();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        for round in 0..60u32 {
            let n = 1 + (rng.next() % 400) as usize;
            let delete_share = if round % 10 >= 7 { 9 } else { 3 };
            let mut batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..n)
                .map(|_| {
                    let k = key((rng.next() % 3000) as u32);
                    let v = if rng.next() % 10 < delete_share {
                        None
                    } else {
                        let len = match rng.next() % 20 {
                            0 => 300 + (rng.next() % 3000) as usize,
                            _ => (rng.next() % 60) as usize,
                        };
                        Some(vec![(round as u8).wrapping_add(len as u8); len])
                    };
                    (k, v)
                })
                .collect();
            if round % 3 != 0 {
                batch.sort_by(|a, b| a.0.cmp(&b.0));
                batch.dedup_by(|a, b| a.0 == b.0);
            }
            root = update(
                &mut pager,
                &lim,
                root,
                batch.iter().map(|(k, v)| (k.as_slice(), v.as_deref())),
                |_old, v, out| {
                    Ok(match v {
                        Some(v) => {
                            out.extend_from_slice(v);
                            true
                        }
                        None => false,
                    })
                },
            )
            .unwrap();
            for (k, v) in batch {
                match v {
                    Some(v) => model.insert(k, v),
                    None => model.remove(&k),
                };
            }
            check(&pager, root, &model);
            let stats = verify::check_tree(&pager, &lim, root).unwrap();
            assert_eq!(stats.entries, model.len() as u64, "round {round}");
            if round % 7 == 6 {
                pager.checkpoint(root, 0, &[]).unwrap();
            }
        }
        // Everything removed in one batch leaves the empty tree.
        let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
        root = update(
            &mut pager,
            &lim,
            root,
            keys.iter().map(|k| (k.as_slice(), ())),
            |_, (), _| Ok(false),
        )
        .unwrap();
        let stats = verify::check_tree(&pager, &lim, root).unwrap();
        assert_eq!((stats.entries, stats.pages, stats.depth), (0, 1, 1));
    }

    /// The merge function sees the old value, and a result equal to it changes nothing.
    #[test]
    fn batched_update_merges_with_the_old_value() {
        let mut pager = pager(1024, 16);
        let lim = Limits::new(1024);
        let mut root = create(&mut pager).unwrap();
        for i in 0..500u32 {
            root = put(&mut pager, &lim, root, &key(i), &i.to_le_bytes()).unwrap();
        }
        pager.checkpoint(root, 0, &[]).unwrap();
        let keys: Vec<Vec<u8>> = (0..500u32).map(key).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        // Unchanged values: no page is copied, the root stays.
        let same = update(
            &mut pager,
            &lim,
            root,
            sorted.iter().map(|k| (k.as_slice(), ())),
            |old, (), out| {
                out.extend_from_slice(old.expect("present"));
                Ok(true)
            },
        )
        .unwrap();
        assert_eq!(same, root);
        assert_eq!(pager.fresh_pages(), 0);
        root = update(
            &mut pager,
            &lim,
            root,
            sorted.iter().map(|k| (k.as_slice(), ())),
            |old, (), out| {
                let n = u32::from_le_bytes(old.expect("present").try_into().unwrap());
                out.extend_from_slice(&(n + 1).to_le_bytes());
                Ok(true)
            },
        )
        .unwrap();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(
                get(&pager, root, k).unwrap(),
                Some((i as u32 + 1).to_le_bytes().to_vec())
            );
        }
        verify::check_tree(&pager, &lim, root).unwrap();
        // A key too long is refused and leaves the tree valid.
        let long = vec![b'k'; lim.max_key + 1];
        let items = [(sorted[0].as_slice(), ()), (long.as_slice(), ())];
        let err = update(&mut pager, &lim, root, items.into_iter(), |_, (), out| {
            out.push(1);
            Ok(true)
        });
        assert!(matches!(err, Err(StoreError::KeyTooLarge { .. })));
        assert_eq!(get(&pager, root, &sorted[0]).unwrap(), Some(vec![1]));
        verify::check_tree(&pager, &lim, root).unwrap();
    }
}
