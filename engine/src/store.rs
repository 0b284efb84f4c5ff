//! `TreeStore`: named B+trees in one paged file; the durable state is the last checkpoint.
//!
//! The store ties the pager (`pager.rs`) and the B+tree (`btree/`) together. It keeps the map
//! from tree name to root page in memory; at a checkpoint the map is written as the *directory*,
//! itself a B+tree (name -> root page id, 8 bytes little-endian) whose root the meta page holds.
//! Changes since the last checkpoint are not durable: the engine's WAL covers them, and a store
//! dropped without a checkpoint reopens exactly as of the last one.
//!
//! CONCURRENCY: one `RwLock`. Gets and cursor batches share it; writes and checkpoints take it
//! exclusively. Cursors hold no lock between batches: each batch re-seeks after the last key
//! returned, so a tree may change under a cursor, which then continues from the next key.
//!
//! FAILURE: after a failed device write the store refuses further writes (`StoreError::Failed`)
//! until reopened; the durable state is still the last checkpoint.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use strata_storage::BlockDevice;

use crate::btree::cursor::{self, Entries};
use crate::btree::verify::{Use, Verifier};
use crate::btree::{self, Limits};
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
        Self::root(&self.read(), tree)?;
        Ok(Cursor {
            store: self,
            tree: tree.to_string(),
            lower: start,
            upper: end,
            reverse,
            batch: Entries::new(),
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

/// An iterator over a key range, fetched in batches.
pub struct Cursor<'a> {
    store: &'a TreeStore,
    tree: String,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    reverse: bool,
    batch: Entries,
    done: bool,
}

impl Cursor<'_> {
    fn refill(&mut self) -> Result<()> {
        let inner = self.store.read();
        let root = TreeStore::root(&inner, &self.tree)?;
        self.done = cursor::fill(
            &inner.pager,
            root,
            self.lower.as_ref().map(Vec::as_slice),
            self.upper.as_ref().map(Vec::as_slice),
            self.reverse,
            &mut self.batch,
        )?;
        // The next batch starts after the last key of this one.
        if let Some((last, _)) = self.batch.back() {
            if self.reverse {
                self.upper = Bound::Excluded(last.clone());
            } else {
                self.lower = Bound::Excluded(last.clone());
            }
        }
        Ok(())
    }
}

impl Iterator for Cursor<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.batch.is_empty() && !self.done {
            if let Err(e) = self.refill() {
                self.done = true;
                return Some(Err(e));
            }
        }
        self.batch.pop_front().map(Ok)
    }
}
