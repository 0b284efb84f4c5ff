//! `TreeStore`: named B+trees in one paged file; the durable state is the last checkpoint.
//!
//! The store ties the pager (`pager.rs`) and the B+tree (`btree/`) together. It keeps the map
//! from tree name to root page in memory; at a checkpoint the map is written as the *directory*,
//! itself a B+tree (name -> root page id, 8 bytes little-endian) whose root the meta page holds.
//! Changes since the last checkpoint are not durable: the engine's WAL covers them, and a store
//! dropped without a checkpoint reopens exactly as of the last one.
//!
//! CONCURRENCY: one `RwLock`. Gets and cursor steps share it; writes and checkpoints take it
//! exclusively. Cursors hold no lock between calls: they keep their leaf (an immutable shared copy
//! of the page) and the branches above it, and take the lock to move to the next leaf. Every
//! change bumps a generation counter; a cursor that finds it moved re-seeks from the root after
//! the last key it visited, so a tree may change under a cursor, which then continues from the
//! next key (entries of the leaf it is on are as of when it reached that leaf).
//!
//! FAILURE: after a failed device write the store refuses further writes (`StoreError::Failed`)
//! until reopened; the durable state is still the last checkpoint.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use strata_storage::BlockDevice;

use crate::btree::cursor::{self, Entries, Position};
use crate::btree::verify::{TreeStats, Use, Verifier};
use crate::btree::{self, node, Limits};
use crate::page::PageId;
use crate::pager::Pager;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(transparent)]
    Storage(#[from] strata_storage::Error),
    #[error("corrupt page {page}: {reason}")]
    Corrupt { page: u64, reason: String },
    #[error("tree {0:?} does not exist")]
    NoSuchTree(String),
    #[error("tree {0:?} already exists")]
    TreeExists(String),
    #[error("key of {len} bytes is longer than the maximum of {max}")]
    KeyTooLarge { len: usize, max: usize },
    #[error("{0}")]
    Invalid(String),
    #[error("store stopped after a failed write ({0}); reopen it")]
    Failed(String),
}

type Result<T> = std::result::Result<T, StoreError>;

/// Options of a store.
#[derive(Clone, Copy, Debug)]
pub struct StoreOptions {
    /// Page size of a new store (the device's block size must match).
    pub page_size: usize,
    /// Buffer pool size in pages.
    pub cache_pages: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            page_size: 4096,
            cache_pages: 2048,
        }
    }
}

/// Counters of a store.
#[derive(Clone, Debug, Default)]
pub struct StoreStats {
    pub page_size: usize,
    pub page_count: u64,
    pub free_pages: u64,
    /// Pages freed since the last checkpoint, reusable after the next one.
    pub pending_free_pages: u64,
    pub cache_pages: usize,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub pages_read: u64,
    pub pages_written: u64,
    pub epoch: u64,
}

/// What `verify` walked.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    pub trees: usize,
    pub entries: u64,
    pub tree_pages: u64,
    pub overflow_pages: u64,
    pub free_pages: u64,
    pub pending_free_pages: u64,
}

struct Inner {
    pager: Pager,
    roots: BTreeMap<String, PageId>,
    /// Root of the directory as of the last checkpoint.
    dir_root: PageId,
    wal_lsn: u64,
    user_meta: Vec<u8>,
    failed: Option<String>,
    /// Bumped by every change: cursors holding pages compare it to know those are current.
    generation: u64,
}

/// Named B+trees on a block device.
pub struct TreeStore {
    inner: RwLock<Inner>,
    lim: Limits,
}

impl TreeStore {
    /// Creates a store on an empty device and checkpoints the empty state.
    pub fn create(device: Arc<dyn BlockDevice>, opts: StoreOptions) -> Result<TreeStore> {
        if device.block_size() != opts.page_size {
            return Err(StoreError::Invalid(format!(
                "device block size {} differs from the page size {}",
                device.block_size(),
                opts.page_size
            )));
        }
        let mut pager = Pager::create(device, opts.cache_pages)?;
        let dir_root = btree::create(&mut pager)?;
        pager.checkpoint(dir_root, 0, &[])?;
        let lim = Limits::new(pager.page_size());
        Ok(TreeStore {
            inner: RwLock::new(Inner {
                pager,
                roots: BTreeMap::new(),
                dir_root,
                wal_lsn: 0,
                user_meta: Vec::new(),
                failed: None,
                generation: 0,
            }),
            lim,
        })
    }

    /// Opens the store on a device, as of its last checkpoint.
    pub fn open(device: Arc<dyn BlockDevice>, opts: StoreOptions) -> Result<TreeStore> {
        let (pager, meta) = Pager::open(device, opts.cache_pages)?;
        let mut roots = BTreeMap::new();
        let mut entries = Entries::new();
        let mut lower: Bound<Vec<u8>> = Bound::Unbounded;
        loop {
            let done = cursor::fill(
                &pager,
                meta.dir_root,
                lower.as_ref().map(Vec::as_slice),
                Bound::Unbounded,
                false,
                &mut entries,
            )?;
            for (name, root) in entries.drain(..) {
                let id: [u8; 8] = root
                    .as_slice()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt {
                        page: meta.dir_root.0,
                        reason: "directory entry is not a page id".into(),
                    })?;
                let name = String::from_utf8(name.clone()).map_err(|_| StoreError::Corrupt {
                    page: meta.dir_root.0,
                    reason: "directory name is not UTF-8".into(),
                })?;
                lower = Bound::Excluded(name.clone().into_bytes());
                roots.insert(name, PageId(u64::from_le_bytes(id)));
            }
            if done {
                break;
            }
        }
        let lim = Limits::new(pager.page_size());
        Ok(TreeStore {
            inner: RwLock::new(Inner {
                pager,
                roots,
                dir_root: meta.dir_root,
                wal_lsn: meta.wal_lsn,
                user_meta: meta.user_meta,
                failed: None,
                generation: 0,
            }),
            lim,
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .expect("invariant: store lock not poisoned")
    }

    /// The write lock, refused after a failure.
    fn write(&self) -> Result<RwLockWriteGuard<'_, Inner>> {
        let inner = self
            .inner
            .write()
            .expect("invariant: store lock not poisoned");
        if let Some(why) = &inner.failed {
            return Err(StoreError::Failed(why.clone()));
        }
        Ok(inner)
    }

    /// Runs a change; a device failure inside it stops the store.
    fn change<T>(&self, f: impl FnOnce(&mut Inner) -> Result<T>) -> Result<T> {
        let mut inner = self.write()?;
        inner.generation += 1;
        let result = f(&mut inner);
        if let Some(why) = inner.pager.io_error() {
            inner.failed.get_or_insert(why);
        }
        if let Err(StoreError::Storage(e)) = &result {
            inner.failed.get_or_insert_with(|| e.to_string());
        }
        result
    }

    /// The WAL position recorded by the last checkpoint.
    pub fn wal_lsn(&self) -> u64 {
        self.read().wal_lsn
    }

    /// The caller's bytes recorded by the last checkpoint.
    pub fn user_meta(&self) -> Vec<u8> {
        self.read().user_meta.clone()
    }

    /// Creates an empty tree.
    pub fn create_tree(&self, name: &str) -> Result<()> {
        self.change(|inner| {
            if inner.roots.contains_key(name) {
                return Err(StoreError::TreeExists(name.to_string()));
            }
            let root = btree::create(&mut inner.pager)?;
            inner.roots.insert(name.to_string(), root);
            Ok(())
        })
    }

    /// Drops a tree and frees its pages.
    pub fn drop_tree(&self, name: &str) -> Result<()> {
        self.change(|inner| {
            let root = inner
                .roots
                .remove(name)
                .ok_or_else(|| StoreError::NoSuchTree(name.to_string()))?;
            btree::free_tree(&mut inner.pager, root)
        })
    }

    /// Names of the trees, sorted.
    pub fn tree_names(&self) -> Vec<String> {
        self.read().roots.keys().cloned().collect()
    }

    /// True if the tree exists.
    pub fn has_tree(&self, name: &str) -> bool {
        self.read().roots.contains_key(name)
    }

    fn root(inner: &Inner, tree: &str) -> Result<PageId> {
        inner
            .roots
            .get(tree)
            .copied()
            .ok_or_else(|| StoreError::NoSuchTree(tree.to_string()))
    }

    /// The value of `key` in `tree`.
    pub fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let inner = self.read();
        let root = Self::root(&inner, tree)?;
        btree::get(&inner.pager, root, key)
    }

    /// Calls `f` with the value of `key` in `tree`, if there is one.
    pub(crate) fn get_with<T, E: From<StoreError>>(
        &self,
        tree: &str,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> std::result::Result<T, E>,
    ) -> std::result::Result<Option<T>, E> {
        let inner = self.read();
        let root = Self::root(&inner, tree)?;
        btree::get_with(&inner.pager, root, key, f)
    }

    /// Changes many keys of `tree` in one pass under one lock (see `btree::update`): for each
    /// `(key, change)`, `merge(old value, change, out)` returns true to store `out` as the new
    /// value, false to remove the key. Fastest with keys in ascending order.
    pub(crate) fn update<'k, P>(
        &self,
        tree: &str,
        items: impl Iterator<Item = (&'k [u8], P)>,
        merge: impl FnMut(Option<&[u8]>, P, &mut Vec<u8>) -> Result<bool>,
    ) -> Result<()> {
        self.change(|inner| {
            let root = Self::root(inner, tree)?;
            let new_root = btree::update(&mut inner.pager, &self.lim, root, items, merge)?;
            if new_root != root {
                inner.roots.insert(tree.to_string(), new_root);
            }
            Ok(())
        })
    }

    /// The longest key a tree accepts.
    pub(crate) fn max_key(&self) -> usize {
        self.lim.max_key
    }

    /// Inserts or replaces `key`.
    pub fn put(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<()> {
        if key.len() > self.lim.max_key {
            return Err(StoreError::KeyTooLarge {
                len: key.len(),
                max: self.lim.max_key,
            });
        }
        self.change(|inner| {
            let root = Self::root(inner, tree)?;
            let new_root = btree::put(&mut inner.pager, &self.lim, root, key, value)?;
            inner.roots.insert(tree.to_string(), new_root);
            Ok(())
        })
    }

    /// Removes `key`; true if it was there.
    pub fn delete(&self, tree: &str, key: &[u8]) -> Result<bool> {
        self.change(|inner| {
            let root = Self::root(inner, tree)?;
            match btree::delete(&mut inner.pager, root, key)? {
                Some(new_root) => {
                    inner.roots.insert(tree.to_string(), new_root);
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    /// Entries with keys between the bounds, ascending (or descending if `reverse`).
    pub fn range(
        &self,
        tree: &str,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        reverse: bool,
    ) -> Result<Cursor<'_>> {
        Ok(Cursor(self.raw_range(tree, start, end, reverse)?))
    }

    /// As `range`, for callers that look at each entry in place (`RawCursor::next_with`).
    pub(crate) fn raw_range(
        &self,
        tree: &str,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        reverse: bool,
    ) -> Result<RawCursor<'_>> {
        Self::root(&self.read(), tree)?;
        Ok(RawCursor {
            store: self,
            tree: tree.to_string(),
            lower: start,
            upper: end,
            reverse,
            at: None,
            generation: 0,
            done: false,
        })
    }

    /// Builds an empty tree from strictly ascending entries, much faster than `put`s.
    pub fn bulk_load(
        &self,
        tree: &str,
        sorted: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<u64> {
        self.change(|inner| {
            let root = Self::root(inner, tree)?;
            let (new_root, count) = btree::bulk::load(&mut inner.pager, &self.lim, root, sorted)?;
            inner.roots.insert(tree.to_string(), new_root);
            Ok(count)
        })
    }

    /// Makes everything durable: the trees, the directory, the freelist, then the meta page.
    pub fn checkpoint(&self, wal_lsn: u64, user_meta: &[u8]) -> Result<()> {
        self.change(|inner| {
            // The directory is rebuilt from the in-memory map: the old one's pages go pending.
            let old_dir = inner.dir_root;
            let mut entries = inner
                .roots
                .iter()
                .map(|(name, root)| (name.clone().into_bytes(), root.0.to_le_bytes().to_vec()));
            let dir = btree::create(&mut inner.pager)?;
            let (dir, _) = btree::bulk::load(&mut inner.pager, &self.lim, dir, &mut entries)?;
            btree::free_tree(&mut inner.pager, old_dir)?;
            inner.pager.checkpoint(dir, wal_lsn, user_meta)?;
            inner.dir_root = dir;
            inner.wal_lsn = wal_lsn;
            inner.user_meta = user_meta.to_vec();
            Ok(())
        })
    }

    /// Walks everything: every tree (order, bounds, depth, checksums, overflow chains), the
    /// directory, and free-space accounting (every page is used exactly once).
    pub fn verify(&self) -> Result<VerifyReport> {
        // Exclusive: the accounting must see one state.
        let inner = self
            .inner
            .write()
            .expect("invariant: store lock not poisoned");
        let pager = &inner.pager;
        let mut v = Verifier::new(pager, self.lim);
        let mut report = VerifyReport {
            trees: inner.roots.len(),
            ..VerifyReport::default()
        };
        v.claim(PageId(0), Use::Meta)?;
        v.claim(PageId(1), Use::Meta)?;
        v.tree(inner.dir_root, Use::Directory, &mut |_, _| Ok(()))?;
        for root in inner.roots.values() {
            let stats = v.tree(*root, Use::Tree, &mut |_, _| Ok(()))?;
            report.entries += stats.entries;
            report.tree_pages += stats.pages;
            report.overflow_pages += stats.overflow_pages;
        }
        for &id in pager.freelist_ids() {
            v.claim(id, Use::Freelist)?;
        }
        for id in pager.free_ids() {
            v.claim(id, Use::Free)?;
            report.free_pages += 1;
        }
        for &id in pager.pending_ids() {
            v.claim(id, Use::PendingFree)?;
            report.pending_free_pages += 1;
        }
        if let Some(lost) = v.unclaimed() {
            return Err(StoreError::Corrupt {
                page: lost.0,
                reason: "page is neither used nor free (leaked)".into(),
            });
        }
        Ok(report)
    }

    /// Walks one tree and counts its entries and pages (node and overflow) and its depth. The
    /// pages are read and checked as `verify` reads them (from the device, or the pool's dirty
    /// copy), so walking does not disturb the buffer pool, but it does count as device reads.
    pub fn tree_stats(&self, tree: &str) -> Result<TreeStats> {
        let inner = self.read();
        let root = Self::root(&inner, tree)?;
        Verifier::new(&inner.pager, self.lim).tree(root, Use::Tree, &mut |_, _| Ok(()))
    }

    /// Counters.
    pub fn stats(&self) -> StoreStats {
        let inner = self.read();
        let c = inner.pager.counters();
        let space = inner.pager.space();
        StoreStats {
            page_size: inner.pager.page_size(),
            page_count: space.page_count,
            free_pages: space.free,
            pending_free_pages: space.pending,
            cache_pages: inner.pager.cache_pages(),
            cache_hits: c.hits.load(std::sync::atomic::Ordering::Relaxed),
            cache_misses: c.misses.load(std::sync::atomic::Ordering::Relaxed),
            pages_read: c.reads.load(std::sync::atomic::Ordering::Relaxed),
            pages_written: c.writes.load(std::sync::atomic::Ordering::Relaxed),
            epoch: inner.pager.durable_epoch(),
        }
    }

    /// Pages written since the last checkpoint (how much a checkpoint will write).
    pub fn dirty_pages(&self) -> usize {
        self.read().pager.fresh_pages() as usize
    }
}

/// An iterator over a key range (see CONCURRENCY in the module doc).
pub struct Cursor<'a>(RawCursor<'a>);

impl Iterator for Cursor<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0
            .next_with(|k, v| Ok::<_, StoreError>(Some((k.to_vec(), v.to_vec()))))
    }
}

/// A cursor over a key range that shows each entry in place (see CONCURRENCY in the module doc).
pub(crate) struct RawCursor<'a> {
    store: &'a TreeStore,
    tree: String,
    /// The range still to visit: narrowed to after the last key visited when re-seeking.
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    reverse: bool,
    at: Option<Position>,
    /// The store's generation when `at` was taken or last moved.
    generation: u64,
    done: bool,
}

impl<'a> RawCursor<'a> {
    fn has_next(&self, at: &Position) -> bool {
        if self.reverse {
            at.pos > 0
        } else {
            at.pos < node::count(&at.leaf)
        }
    }

    /// Seeks from the root to the first entry still to visit; false if there is none.
    fn seek(&mut self, inner: &Inner) -> Result<bool> {
        // Narrow the range to after the last key visited on the leaf we were on.
        if let Some(k) = self
            .at
            .as_ref()
            .and_then(|at| at.last_visited(self.reverse))
        {
            let b = Bound::Excluded(k.to_vec());
            if self.reverse {
                self.upper = b;
            } else {
                self.lower = b;
            }
        }
        self.at = None;
        let root = TreeStore::root(inner, &self.tree)?;
        let mut at = Position::seek(
            &inner.pager,
            root,
            self.lower.as_ref().map(Vec::as_slice),
            self.upper.as_ref().map(Vec::as_slice),
            self.reverse,
        )?;
        self.generation = inner.generation;
        while !self.has_next(&at) {
            if !at.next_leaf(&inner.pager, self.reverse)? {
                return Ok(false);
            }
        }
        self.at = Some(at);
        Ok(true)
    }

    /// The next entry for which `f(key, value)` returns `Some`; entries it maps to `None` are
    /// skipped. Errors end the cursor.
    pub(crate) fn next_with<T, E: From<StoreError>>(
        &mut self,
        mut f: impl FnMut(&[u8], &[u8]) -> std::result::Result<Option<T>, E>,
    ) -> Option<std::result::Result<T, E>> {
        if self.done {
            return None;
        }
        let result = self.next_inner(&mut f);
        match result {
            Ok(Some(t)) => Some(Ok(t)),
            Ok(None) => {
                self.done = true;
                self.at = None;
                None
            }
            Err(e) => {
                self.done = true;
                self.at = None;
                Some(Err(e))
            }
        }
    }

    fn next_inner<T, E: From<StoreError>>(
        &mut self,
        f: &mut impl FnMut(&[u8], &[u8]) -> std::result::Result<Option<T>, E>,
    ) -> std::result::Result<Option<T>, E> {
        let store: &'a TreeStore = self.store;
        // Once taken, the read lock is kept until an entry is returned: the store cannot change
        // meanwhile, so a seek is never wasted.
        let mut guard: Option<RwLockReadGuard<'a, Inner>> = None;
        loop {
            // The common case first: inline values on the leaf we are on, no lock needed.
            if let Some(at) = &mut self.at {
                let upper = self.upper.as_ref().map(Vec::as_slice);
                if !self.reverse {
                    let n = node::count(&at.leaf);
                    while at.pos < n {
                        let (k, value) = node::leaf_entry(&at.leaf, at.pos);
                        let node::Value::Inline(v) = value else { break };
                        if cursor::past_end(k, Bound::Unbounded, upper, false) {
                            return Ok(None);
                        }
                        at.pos += 1;
                        if let Some(t) = f(k, v)? {
                            return Ok(Some(t));
                        }
                    }
                }
            }
            let Some(at) = &self.at else {
                let inner = guard.get_or_insert_with(|| store.read());
                if !self.seek(inner)? {
                    return Ok(None);
                }
                continue;
            };
            if !self.has_next(at) {
                let inner = guard.get_or_insert_with(|| store.read());
                if inner.generation != self.generation {
                    // Stale: seek from the root after the last key visited.
                    if !self.seek(inner)? {
                        return Ok(None);
                    }
                    continue;
                }
                let reverse = self.reverse;
                let at = self.at.as_mut().expect("checked above");
                if !at.next_leaf(&inner.pager, reverse)? {
                    return Ok(None);
                }
                continue;
            }
            let i = if self.reverse { at.pos - 1 } else { at.pos };
            let (k, value) = node::leaf_entry(&at.leaf, i);
            let (lower, upper) = (
                self.lower.as_ref().map(Vec::as_slice),
                self.upper.as_ref().map(Vec::as_slice),
            );
            if cursor::past_end(k, lower, upper, self.reverse) {
                return Ok(None);
            }
            let out = match value {
                node::Value::Inline(v) => f(k, v)?,
                node::Value::Overflow { first, len } => {
                    let inner = guard.get_or_insert_with(|| store.read());
                    if inner.generation != self.generation {
                        // The chain may be gone: seek this key again.
                        let b = Bound::Included(k.to_vec());
                        if self.reverse {
                            self.upper = b;
                        } else {
                            self.lower = b;
                        }
                        self.at = None;
                        if !self.seek(inner)? {
                            return Ok(None);
                        }
                        continue;
                    }
                    let v = crate::btree::overflow::read(&inner.pager, first, len)?;
                    f(k, &v)?
                }
            };
            let at = self.at.as_mut().expect("checked above");
            if self.reverse {
                at.pos -= 1;
            } else {
                at.pos += 1;
            }
            if out.is_some() {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use strata_storage::MemDevice;

    fn store(cache_pages: usize) -> TreeStore {
        let opts = StoreOptions {
            page_size: 1024,
            cache_pages,
        };
        TreeStore::create(Arc::new(MemDevice::new(1024, 0)), opts).unwrap()
    }

    fn key(i: u32) -> Vec<u8> {
        format!("k{i:06}").into_bytes()
    }

    fn value(i: u32, round: u32) -> Vec<u8> {
        let len = if i.is_multiple_of(13) { 700 } else { 20 };
        vec![(i + round) as u8; len]
    }

    /// Batched updates with overflow values, checkpoints and reopen keep the page accounting
    /// exact (no page leaked or used twice).
    #[test]
    fn update_keeps_page_accounting() {
        let mem = MemDevice::new(1024, 0);
        let opts = StoreOptions {
            page_size: 1024,
            cache_pages: 16,
        };
        let mut s = TreeStore::create(Arc::new(mem.clone()), opts).unwrap();
        s.create_tree("t").unwrap();
        let mut model = BTreeMap::new();
        for round in 0..12u32 {
            let keys: Vec<u32> = (0..600).filter(|i| (i * 7 + round) % 5 != 0).collect();
            let items: Vec<(Vec<u8>, Option<Vec<u8>>)> = keys
                .iter()
                .map(|&i| {
                    (
                        key(i),
                        (round % 4 != 3 || i % 2 == 0).then(|| value(i, round)),
                    )
                })
                .collect();
            s.update(
                "t",
                items.iter().map(|(k, v)| (k.as_slice(), v.as_deref())),
                |_, v, out| Ok(v.map(|v| out.extend_from_slice(v)).is_some()),
            )
            .unwrap();
            for (k, v) in items {
                match v {
                    Some(v) => model.insert(k, v),
                    None => model.remove(&k),
                };
            }
            if round % 3 == 2 {
                s.checkpoint(round.into(), b"").unwrap();
            }
            s.verify().unwrap();
            if round % 4 == 3 {
                s.checkpoint(round.into(), b"").unwrap();
                drop(s);
                s = TreeStore::open(Arc::new(mem.clone()), opts).unwrap();
            }
            let got: BTreeMap<Vec<u8>, Vec<u8>> = s
                .range("t", Bound::Unbounded, Bound::Unbounded, false)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(got == model, "round {round}");
        }
    }

    /// A cursor over a tree that changes between its steps (keys added and removed, values
    /// replaced, overflow chains freed) returns every key that stays in the tree exactly once,
    /// in order, and nothing that was never there; both ways.
    #[test]
    fn cursor_survives_changes_between_steps() {
        for reverse in [false, true] {
            let s = store(16);
            s.create_tree("t").unwrap();
            // Even keys stay; odd keys come and go.
            for i in 0..800u32 {
                s.put("t", &key(i), &value(i, 0)).unwrap();
            }
            let cursor = s
                .range(
                    "t",
                    Bound::Included(key(100)),
                    Bound::Excluded(key(700)),
                    reverse,
                )
                .unwrap();
            let mut seen = Vec::new();
            let mut step = 0u32;
            for entry in cursor {
                let (k, v) = entry.unwrap();
                let i: u32 = std::str::from_utf8(&k[1..]).unwrap().parse().unwrap();
                assert!((100..700).contains(&i), "{i} outside the range");
                if i.is_multiple_of(2) {
                    assert!(v == value(i, 0) || v == value(i, 1), "value of {i}");
                }
                seen.push(i);
                step += 1;
                match step % 4 {
                    0 => {
                        for j in (1..800).step_by(2).filter(|j| (j + step).is_multiple_of(3)) {
                            s.delete("t", &key(j)).unwrap();
                        }
                    }
                    1 => {
                        for j in (1..800).step_by(2).filter(|j| (j + step).is_multiple_of(5)) {
                            s.put("t", &key(j), &value(j, 1)).unwrap();
                        }
                    }
                    2 => {
                        // Replaces the values of the even keys, big ones too (new chains, the
                        // old ones freed).
                        let items: Vec<(Vec<u8>, Vec<u8>)> = (0..800)
                            .step_by(2)
                            .map(|j| (key(j), value(j, step % 8 / 4)))
                            .collect();
                        s.update(
                            "t",
                            items.iter().map(|(k, v)| (k.as_slice(), v)),
                            |old, v, out| {
                                assert!(old.is_some(), "even keys stay");
                                out.extend_from_slice(v);
                                Ok(true)
                            },
                        )
                        .unwrap();
                    }
                    _ => s.checkpoint(step.into(), b"").unwrap(),
                }
            }
            let mut sorted = seen.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), seen.len(), "a key returned twice");
            if reverse {
                sorted.reverse();
            }
            assert_eq!(sorted, seen, "out of order");
            let evens: Vec<u32> = (100..700).step_by(2).collect();
            let got_evens: Vec<u32> = {
                let mut e: Vec<u32> = seen.iter().copied().filter(|i| i % 2 == 0).collect();
                e.sort_unstable();
                e
            };
            assert_eq!(got_evens, evens, "reverse {reverse}");
        }
    }
}
