//! The pager: pages on the device, a bounded buffer pool, page allocation with copy-on-write
//! between checkpoints, and the checkpoint itself (dirty pages, freelist, meta flip).
//!
//! EPOCHS. The last completed checkpoint has epoch `E` (the durable epoch); everything changed
//! since belongs to epoch `E + 1` (the current epoch), and every page written carries the epoch
//! that wrote it in its header. A page with an older epoch is part of the durable state.
//!
//! INVARIANTS (tests cite them by number):
//!
//! 1. A page reachable from the durable meta is never written. Writers ask the B+tree layer's
//!    `writable`, which copies a page of an older epoch to a freshly allocated page (and the
//!    caller re-points the parent); only pages of the current epoch are changed in place.
//! 2. Every page id below `page_count` is exactly one of: a meta page (0, 1), reachable from the
//!    live trees or the directory, a durable freelist page, `free`, or `pending`.
//! 3. `free` holds pages unreachable from the durable state (free as of the last checkpoint, or
//!    allocated and freed again within the current epoch): they can be reused at once.
//!    `pending` holds pages of the durable state that the current epoch no longer uses: reusable
//!    only once the next checkpoint is durable, because until then a crash falls back to them.
//! 4. The buffer pool holds B+tree node pages, and clean copies of one-page overflow chains
//!    (read through it; every overflow page is written with `write_direct`). Dirty pages are
//!    node pages of the current epoch, so evicting one writes it to its own id without touching
//!    the durable state. Longer overflow chains, freelist and meta pages bypass the pool
//!    (`write_direct`, `read_direct`); `alloc` and `write_direct` drop a page's cached copy.
//! 5. After a failed device write the store must be reopened (`io_error`; the store turns it into
//!    its sticky `Failed`).
//!
//! CHECKPOINT (`checkpoint`), the only place durability happens:
//!
//! 1. allocate the new freelist pages from `free` (or by growing the file);
//! 2. write every dirty page of the pool (all of the current epoch);
//! 3. write the freelist: `free`, `pending` and the previous freelist pages;
//! 4. sync; 5. write the meta page `(E + 1) % 2`, the older of the two; 6. sync.
//!
//! A crash before step 6 completes leaves meta `E` valid and every page it reaches untouched
//! (invariant 1), so reopening shows checkpoint `E`; a torn meta write fails its CRC and open
//! falls back to the other meta page. After step 6, `pending` and the old freelist pages join
//! `free`, and the pool's pages, now of the durable epoch, will be copied on their next change.
//!
//! BUFFER POOL. A hash map from page id to frame and a clock over the frames. Readers get an
//! `Arc` of the page: holding it pins the page (the clock skips frames whose `Arc` is shared).
//! A hit takes the pool's lock shared (its reference bit is atomic), so readers never wait on
//! one another; loads and evictions take it exclusive. Writers hold the store's exclusive lock and `take` a page out of the pool, change it, and
//! `put` it back dirty, so no page is ever changed while someone reads it. The bound is soft:
//! if every frame is pinned, the pool grows past it until pins are released. Evicting a dirty
//! page writes the run of contiguous dirty unpinned pages around it in one device call (they stay
//! cached, clean), and the buffers of evicted pages are reused for the next loads.
//!
//! LEFT OUT: shrinking the file when its tail is free; an incremental freelist (the whole list
//! is rewritten at every checkpoint: 8 bytes per free page).

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use strata_storage::BlockDevice;

use crate::page::{self, Meta, MetaError, PageId};
use crate::store::StoreError;

type Result<T> = std::result::Result<T, StoreError>;

/// A structural check run on a page when it is loaded from the device.
pub(crate) type Validate = fn(&[u8]) -> std::result::Result<(), String>;

/// Contiguous pages written or read in one device call, at most.
const IO_BATCH_PAGES: usize = 64;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn corrupt(page: PageId, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        page: page.0,
        reason: reason.into(),
    }
}

/// Page ids are well spread already; a multiply and fold is all the hashing they need.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0 ^ u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        let x = (n ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }
}

struct Frame {
    id: PageId,
    data: Option<Arc<Vec<u8>>>,
    dirty: bool,
    /// Set by readers under the pool's shared lock; cleared by the clock.
    referenced: AtomicBool,
}

/// Page buffers kept from evicted frames for the next loads, at most.
const SPARE_BUFFERS: usize = 32;

/// The buffer pool proper: frames, the id map, and the clock hand.
struct Pool {
    capacity: usize,
    map: HashMap<PageId, usize, BuildHasherDefault<IdHasher>>,
    frames: Vec<Frame>,
    empty: Vec<usize>,
    hand: usize,
    /// Buffers of evicted pages, reused by loads (saves allocating and zeroing a page).
    spare: Vec<Vec<u8>>,
    /// Where runs of evicted dirty pages are gathered for one device write.
    staging: Vec<u8>,
}

impl Pool {
    fn new(capacity: usize) -> Pool {
        Pool {
            capacity: capacity.max(8),
            map: HashMap::default(),
            frames: Vec::new(),
            empty: Vec::new(),
            hand: 0,
            spare: Vec::new(),
            staging: Vec::new(),
        }
    }

    /// Keeps the buffer of a page leaving the pool for reuse, if no reader still holds it.
    fn recycle(&mut self, data: Arc<Vec<u8>>) {
        if self.spare.len() < SPARE_BUFFERS {
            if let Ok(buf) = Arc::try_unwrap(data) {
                self.spare.push(buf);
            }
        }
    }

    /// A cached page (a hit takes only the pool's shared lock).
    fn get(&self, id: PageId) -> Option<Arc<Vec<u8>>> {
        let &slot = self.map.get(&id)?;
        let frame = &self.frames[slot];
        frame.referenced.store(true, Ordering::Relaxed);
        frame.data.clone()
    }

    fn remove(&mut self, id: PageId) -> Option<(Arc<Vec<u8>>, bool)> {
        let slot = self.map.remove(&id)?;
        let frame = &mut self.frames[slot];
        let data = frame
            .data
            .take()
            .expect("invariant: mapped frames hold data");
        let dirty = std::mem::replace(&mut frame.dirty, false);
        self.empty.push(slot);
        Some((data, dirty))
    }

    fn insert(&mut self, id: PageId, data: Arc<Vec<u8>>, dirty: bool) {
        debug_assert!(!self.map.contains_key(&id), "page {id} inserted twice");
        let frame = Frame {
            id,
            data: Some(data),
            dirty,
            referenced: AtomicBool::new(true),
        };
        let slot = match self.empty.pop() {
            Some(slot) => {
                self.frames[slot] = frame;
                slot
            }
            None => {
                self.frames.push(frame);
                self.frames.len() - 1
            }
        };
        self.map.insert(id, slot);
    }

    /// A frame to evict by the clock: unpinned and not recently referenced. None if every
    /// frame is pinned.
    fn victim(&mut self) -> Option<usize> {
        let n = self.frames.len();
        for _ in 0..2 * n + 1 {
            if n == 0 {
                return None;
            }
            self.hand = (self.hand + 1) % n;
            let frame = &mut self.frames[self.hand];
            let Some(data) = &frame.data else { continue };
            if Arc::strong_count(data) > 1 {
                continue;
            }
            if *frame.referenced.get_mut() {
                *frame.referenced.get_mut() = false;
                continue;
            }
            return Some(self.hand);
        }
        None
    }
}

/// I/O and cache counters, updated by readers and writers alike.
#[derive(Default)]
pub(crate) struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub reads: AtomicU64,
    pub writes: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The frame of page `id` if it is dirty and unpinned (can be written back now).
fn flushable(pool: &Pool, id: PageId) -> Option<usize> {
    let &slot = pool.map.get(&id)?;
    let f = &pool.frames[slot];
    (f.dirty && f.data.as_ref().is_some_and(|d| Arc::strong_count(d) == 1)).then_some(slot)
}

/// Evicts frames until the pool is under its capacity (or only pinned frames remain). A dirty
/// victim is written to its own page first, together with the dirty unpinned pages around it
/// (one device call for the run; those stay cached, clean); if that fails the frames stay dirty
/// and the error is kept.
fn make_room(
    pool: &mut Pool,
    device: &dyn BlockDevice,
    counters: &Counters,
    io_error: &Mutex<Option<String>>,
) -> Result<()> {
    while pool.map.len() >= pool.capacity {
        let Some(slot) = pool.victim() else {
            return Ok(());
        };
        let id = pool.frames[slot].id;
        if pool.frames[slot].dirty {
            let max = IO_BATCH_PAGES as u64;
            let mut lo = id.0;
            while id.0 - lo < max / 2 && lo > 0 && flushable(pool, PageId(lo - 1)).is_some() {
                lo -= 1;
            }
            let mut hi = id.0 + 1;
            while hi - lo < max && flushable(pool, PageId(hi)).is_some() {
                hi += 1;
            }
            let mut staging = std::mem::take(&mut pool.staging);
            staging.clear();
            let mut slots = Vec::with_capacity((hi - lo) as usize);
            for i in lo..hi {
                let s = flushable(pool, PageId(i)).expect("invariant: checked above");
                let data = pool.frames[s]
                    .data
                    .as_mut()
                    .expect("invariant: mapped frames hold data");
                let buf = Arc::get_mut(data).expect("invariant: unpinned");
                page::seal(buf);
                staging.extend_from_slice(buf);
                slots.push(s);
            }
            let written = device.write(lo, &staging);
            pool.staging = staging;
            if let Err(e) = written {
                *lock(io_error) = Some(format!("writing page {id}: {e}"));
                return Err(e.into());
            }
            bump(&counters.writes, hi - lo);
            for s in slots {
                pool.frames[s].dirty = false;
            }
        }
        if let Some((data, _)) = pool.remove(id) {
            pool.recycle(data);
        }
    }
    Ok(())
}

/// Counts of the pager's free-space state, for stats.
pub(crate) struct SpaceStats {
    pub page_count: u64,
    pub free: u64,
    pub pending: u64,
}

/// Pages on a device: buffer pool, allocation, checkpoints. See the module doc.
pub(crate) struct Pager {
    device: Arc<dyn BlockDevice>,
    page_size: usize,
    /// Shared for hits (readers of cached pages do not wait on one another), exclusive for
    /// loads, evictions and writers.
    pool: RwLock<Pool>,
    counters: Counters,
    /// Set when a device write by eviction failed (readers can evict too).
    io_error: Mutex<Option<String>>,
    /// Blocks the device has (cached; only this pager grows it).
    device_blocks: u64,
    /// High-water mark: pages `0..page_count` are in use or free.
    page_count: u64,
    free: BTreeSet<PageId>,
    pending: Vec<PageId>,
    /// Freelist pages of the durable meta: reusable after the next checkpoint.
    durable_freelist: Vec<PageId>,
    durable_epoch: u64,
    /// Pages allocated in the current epoch and not freed again.
    fresh: u64,
}

/// Checks that a device's block size can be a page size.
pub(crate) fn check_page_size(page_size: usize) -> Result<()> {
    if !(page::MIN_PAGE_SIZE..=page::MAX_PAGE_SIZE).contains(&page_size)
        || !page_size.is_power_of_two()
    {
        return Err(StoreError::Invalid(format!(
            "page size {page_size} unsupported: a power of two from {} to {}",
            page::MIN_PAGE_SIZE,
            page::MAX_PAGE_SIZE
        )));
    }
    Ok(())
}

impl Pager {
    fn with_state(device: Arc<dyn BlockDevice>, cache_pages: usize) -> Pager {
        Pager {
            page_size: device.block_size(),
            device_blocks: device.block_count(),
            device,
            pool: RwLock::new(Pool::new(cache_pages)),
            counters: Counters::default(),
            io_error: Mutex::new(None),
            page_count: 2,
            free: BTreeSet::new(),
            pending: Vec::new(),
            durable_freelist: Vec::new(),
            durable_epoch: 0,
            fresh: 0,
        }
    }

    /// A pager for a new store: both meta pages are zeroed (and synced) so no older store on the
    /// device can be mistaken for this one; the caller builds the directory and checkpoints.
    pub(crate) fn create(device: Arc<dyn BlockDevice>, cache_pages: usize) -> Result<Pager> {
        check_page_size(device.block_size())?;
        let mut pager = Pager::with_state(device, cache_pages);
        pager.grow_to(2)?;
        let zeros = vec![0u8; 2 * pager.page_size];
        pager.device.write(0, &zeros)?;
        bump(&pager.counters.writes, 2);
        pager.device.sync()?;
        Ok(pager)
    }

    /// Opens the store on `device`: picks the valid meta page with the higher epoch and loads the
    /// freelist. The caller loads the directory from `meta.dir_root`.
    pub(crate) fn open(device: Arc<dyn BlockDevice>, cache_pages: usize) -> Result<(Pager, Meta)> {
        let ps = device.block_size();
        check_page_size(ps)?;
        let blocks = device.block_count();
        if blocks < 3 {
            return Err(StoreError::Invalid(format!(
                "{} has {blocks} blocks: not a Strata store",
                device.name()
            )));
        }
        let mut found = Vec::new();
        let mut problems = Vec::new();
        let mut buf = vec![0u8; ps];
        for slot in 0..2u64 {
            device.read(slot, &mut buf)?;
            match Meta::decode(&buf, ps) {
                Ok(m) if m.epoch % 2 == slot => found.push(m),
                Ok(m) => problems.push(format!(
                    "page {slot} holds epoch {}, which belongs in page {}",
                    m.epoch,
                    m.epoch % 2
                )),
                Err(MetaError::PageSize { stored }) => {
                    return Err(StoreError::Invalid(format!(
                        "{} holds a store with {stored}-byte pages, but the device has \
                         {ps}-byte blocks; open it with block size {stored}",
                        device.name()
                    )))
                }
                Err(MetaError::Version { found }) => {
                    return Err(StoreError::Invalid(format!(
                        "{} is in Strata's file format version {found}, and this build reads \
                         version {} only; open it with the build that wrote it and export \
                         the data (COPY ... TO)",
                        device.name(),
                        page::FORMAT_VERSION
                    )))
                }
                Err(MetaError::NotStrata) => {
                    problems.push(format!("page {slot}: no Strata meta page"))
                }
                Err(MetaError::Damaged(reason)) => problems.push(format!("page {slot}: {reason}")),
            }
        }
        let Some(meta) = found.into_iter().max_by_key(|m| m.epoch) else {
            if problems.iter().all(|p| p.ends_with("no Strata meta page")) {
                return Err(StoreError::Invalid(format!(
                    "{} is not a Strata store (no meta page)",
                    device.name()
                )));
            }
            return Err(corrupt(
                PageId(0),
                format!("no valid meta page: {}", problems.join("; ")),
            ));
        };
        if meta.page_count > blocks {
            return Err(corrupt(
                PageId(meta.page_count - 1),
                format!(
                    "beyond the end of {} ({blocks} blocks): file truncated?",
                    device.name()
                ),
            ));
        }
        let mut pager = Pager::with_state(device, cache_pages);
        pager.page_count = meta.page_count;
        pager.durable_epoch = meta.epoch;
        pager.load_freelist(&meta)?;
        Ok((pager, meta))
    }

    fn load_freelist(&mut self, meta: &Meta) -> Result<()> {
        let mut next = meta.freelist_head;
        let mut buf = vec![0u8; self.page_size];
        while next.0 != 0 {
            let at = next;
            if self.durable_freelist.len() as u64 >= meta.freelist_pages {
                return Err(corrupt(
                    at,
                    format!(
                        "freelist chain longer than the {} pages the meta records",
                        meta.freelist_pages
                    ),
                ));
            }
            if at.0 < 2 || at.0 >= self.page_count {
                return Err(corrupt(at, "freelist link out of range"));
            }
            self.read_direct(at, &mut buf)?;
            let (n, ids) = page::check(&buf)
                .and_then(|_| page::decode_freelist(&buf))
                .map_err(|r| corrupt(at, r))?;
            for id in ids {
                if id.0 < 2 || id.0 >= self.page_count || !self.free.insert(id) {
                    return Err(corrupt(
                        at,
                        format!("free page {id} out of range or listed twice"),
                    ));
                }
            }
            self.durable_freelist.push(at);
            next = n;
        }
        if self.durable_freelist.len() as u64 != meta.freelist_pages
            || self.free.len() as u64 != meta.freelist_len
        {
            return Err(corrupt(
                meta.freelist_head,
                format!(
                    "freelist has {} ids in {} pages, the meta says {} in {}",
                    self.free.len(),
                    self.durable_freelist.len(),
                    meta.freelist_len,
                    meta.freelist_pages
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn page_size(&self) -> usize {
        self.page_size
    }

    /// The epoch being built: pages with this epoch may be changed in place.
    pub(crate) fn current_epoch(&self) -> u64 {
        self.durable_epoch + 1
    }

    pub(crate) fn durable_epoch(&self) -> u64 {
        self.durable_epoch
    }

    pub(crate) fn page_count(&self) -> u64 {
        self.page_count
    }

    fn pool_shared(&self) -> RwLockReadGuard<'_, Pool> {
        self.pool.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn pool_exclusive(&self) -> RwLockWriteGuard<'_, Pool> {
        self.pool.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    pub(crate) fn cache_pages(&self) -> usize {
        self.pool_shared().capacity
    }

    /// Pages allocated in the current epoch and still in use: what the next checkpoint makes
    /// durable.
    pub(crate) fn fresh_pages(&self) -> u64 {
        self.fresh
    }

    pub(crate) fn space(&self) -> SpaceStats {
        SpaceStats {
            page_count: self.page_count,
            free: self.free.len() as u64,
            pending: self.pending.len() as u64,
        }
    }

    pub(crate) fn free_ids(&self) -> impl Iterator<Item = PageId> + '_ {
        self.free.iter().copied()
    }

    pub(crate) fn pending_ids(&self) -> &[PageId] {
        &self.pending
    }

    pub(crate) fn freelist_ids(&self) -> &[PageId] {
        &self.durable_freelist
    }

    /// The message of a failed eviction write, if any.
    pub(crate) fn io_error(&self) -> Option<String> {
        lock(&self.io_error).clone()
    }

    fn check_in_range(&self, id: PageId) -> Result<()> {
        if id.0 < 2 || id.0 >= self.page_count {
            return Err(corrupt(
                id,
                format!(
                    "page reference out of range (page count {})",
                    self.page_count
                ),
            ));
        }
        Ok(())
    }

    /// Reads a page into `buf` (a spare page buffer, or None to allocate one) and checks it.
    fn load(&self, id: PageId, validate: Validate, buf: Option<Vec<u8>>) -> Result<Vec<u8>> {
        self.check_in_range(id)?;
        let mut buf = match buf {
            Some(b) if b.len() == self.page_size => b,
            _ => vec![0u8; self.page_size],
        };
        self.device.read(id.0, &mut buf)?;
        bump(&self.counters.reads, 1);
        page::check(&buf)
            .and_then(|_| validate(&buf))
            .map_err(|r| corrupt(id, r))?;
        Ok(buf)
    }

    /// A node page, from the pool or the device (CRC-checked and validated on load).
    pub(crate) fn read(&self, id: PageId, validate: Validate) -> Result<Arc<Vec<u8>>> {
        if let Some(p) = self.pool_shared().get(id) {
            bump(&self.counters.hits, 1);
            return Ok(p);
        }
        let spare = {
            let mut pool = self.pool_exclusive();
            if let Some(p) = pool.get(id) {
                bump(&self.counters.hits, 1);
                return Ok(p);
            }
            pool.spare.pop()
        };
        bump(&self.counters.misses, 1);
        let page = Arc::new(self.load(id, validate, spare)?);
        let mut pool = self.pool_exclusive();
        if let Some(p) = pool.get(id) {
            return Ok(p);
        }
        make_room(&mut pool, &*self.device, &self.counters, &self.io_error)?;
        pool.insert(id, page.clone(), false);
        Ok(page)
    }

    /// Takes a node page out of the pool (or loads it) for changing; `put` gives it back.
    pub(crate) fn take(&mut self, id: PageId, validate: Validate) -> Result<Vec<u8>> {
        let pool = self.pool.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some((data, _dirty)) = pool.remove(id) {
            bump(&self.counters.hits, 1);
            return Ok(Arc::try_unwrap(data).unwrap_or_else(|shared| (*shared).clone()));
        }
        bump(&self.counters.misses, 1);
        let spare = pool.spare.pop();
        self.load(id, validate, spare)
    }

    /// Puts a changed node page (of the current epoch) into the pool, dirty.
    pub(crate) fn put(&mut self, id: PageId, data: Vec<u8>) -> Result<()> {
        debug_assert_eq!(page::epoch(&data), self.current_epoch(), "page {id}");
        debug_assert!(id.0 >= 2 && id.0 < self.page_count, "page {id}");
        let pool = self.pool.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some((old, _)) = pool.remove(id) {
            pool.recycle(old);
        }
        pool.insert(id, Arc::new(data), true);
        make_room(pool, &*self.device, &self.counters, &self.io_error)
    }

    /// The pool's copy of a page if it is dirty (not yet on the device), for `verify`.
    pub(crate) fn dirty_copy(&self, id: PageId) -> Option<Arc<Vec<u8>>> {
        let pool = self.pool_shared();
        let &slot = pool.map.get(&id)?;
        let frame = &pool.frames[slot];
        if frame.dirty {
            frame.data.clone()
        } else {
            None
        }
    }

    /// Reads consecutive pages straight from the device (no pool, no checks).
    pub(crate) fn read_direct(&self, start: PageId, buf: &mut [u8]) -> Result<()> {
        let n = (buf.len() / self.page_size) as u64;
        if start.0 < 2 || start.0 + n > self.page_count {
            return Err(corrupt(
                start,
                format!(
                    "page reference out of range (page count {})",
                    self.page_count
                ),
            ));
        }
        self.device.read(start.0, buf)?;
        bump(&self.counters.reads, n);
        Ok(())
    }

    /// Seals and writes consecutive freshly allocated pages straight to the device.
    pub(crate) fn write_direct(&mut self, start: PageId, pages: &mut [u8]) -> Result<()> {
        let n = pages.len() / self.page_size;
        let pool = self.pool.get_mut().unwrap_or_else(PoisonError::into_inner);
        for (i, p) in pages.chunks_mut(self.page_size).enumerate() {
            debug_assert_eq!(page::epoch(p), self.durable_epoch + 1);
            pool.remove(PageId(start.0 + i as u64));
            page::seal(p);
        }
        self.device.write(start.0, pages)?;
        bump(&self.counters.writes, n as u64);
        Ok(())
    }

    fn grow_to(&mut self, needed: u64) -> Result<()> {
        if needed <= self.device_blocks {
            return Ok(());
        }
        // Growing a file costs a metadata update each time (about half a millisecond here),
        // so it grows by half its size at once; the new blocks are holes until written.
        let step = (self.device_blocks / 2).clamp(128, 65536);
        let target = needed.max(self.device_blocks + step);
        match self.device.set_block_count(target) {
            Ok(()) => self.device_blocks = target,
            Err(e) => {
                // A device that cannot grow by a whole step may still take exactly what we need.
                self.device.set_block_count(needed).map_err(|_| e)?;
                self.device_blocks = needed;
            }
        }
        Ok(())
    }

    /// Allocates a page of the current epoch: the lowest free page, else a new one at the end.
    pub(crate) fn alloc(&mut self) -> Result<PageId> {
        let id = match self.free.pop_first() {
            Some(id) => id,
            None => {
                self.grow_to(self.page_count + 1)?;
                self.page_count += 1;
                PageId(self.page_count - 1)
            }
        };
        self.fresh += 1;
        let pool = self.pool.get_mut().unwrap_or_else(PoisonError::into_inner);
        pool.remove(id);
        Ok(id)
    }

    /// Frees a page that held data written in `epoch`: at once if that is the current epoch,
    /// else after the next checkpoint (invariant 3).
    pub(crate) fn release(&mut self, id: PageId, epoch: u64) {
        debug_assert!(id.0 >= 2 && id.0 < self.page_count, "page {id}");
        let pool = self.pool.get_mut().unwrap_or_else(PoisonError::into_inner);
        pool.remove(id);
        if epoch == self.current_epoch() {
            self.fresh = self.fresh.saturating_sub(1);
            let fresh = self.free.insert(id);
            debug_assert!(fresh, "page {id} freed twice");
        } else {
            self.pending.push(id);
        }
    }

    /// Writes every dirty pool page (sorted, in contiguous batches).
    fn flush(&mut self) -> Result<()> {
        let ps = self.page_size;
        let pool = self.pool.get_mut().unwrap_or_else(PoisonError::into_inner);
        let mut dirty: Vec<(PageId, usize)> = pool
            .map
            .iter()
            .filter(|(_, &slot)| pool.frames[slot].dirty)
            .map(|(&id, &slot)| (id, slot))
            .collect();
        dirty.sort_unstable();
        let mut staging: Vec<u8> = Vec::with_capacity(IO_BATCH_PAGES * ps);
        let mut i = 0;
        while i < dirty.len() {
            let start = dirty[i].0;
            let mut j = i;
            staging.clear();
            while j < dirty.len()
                && j - i < IO_BATCH_PAGES
                && dirty[j].0 .0 == start.0 + (j - i) as u64
            {
                let frame = &mut pool.frames[dirty[j].1];
                let data = frame
                    .data
                    .as_mut()
                    .expect("invariant: mapped frames hold data");
                let buf = Arc::make_mut(data);
                page::seal(buf);
                staging.extend_from_slice(buf);
                j += 1;
            }
            if let Err(e) = self.device.write(start.0, &staging) {
                *lock(&self.io_error) = Some(format!("writing page {start}: {e}"));
                return Err(e.into());
            }
            bump(&self.counters.writes, (j - i) as u64);
            for &(_, slot) in &dirty[i..j] {
                pool.frames[slot].dirty = false;
            }
            i = j;
        }
        Ok(())
    }

    /// Makes the current state durable (see CHECKPOINT in the module doc). On error the caller
    /// must stop writing: the durable state is the previous checkpoint, the memory state is
    /// undefined.
    pub(crate) fn checkpoint(
        &mut self,
        dir_root: PageId,
        wal_lsn: u64,
        user_meta: &[u8],
    ) -> Result<()> {
        let ps = self.page_size;
        let epoch = self.current_epoch();
        let cap = page::freelist_capacity(ps);
        // 1. Freelist pages. Taking one from `free` only shrinks the list, so this ends.
        let mut fl_pages = Vec::new();
        loop {
            let n = self.free.len() + self.pending.len() + self.durable_freelist.len();
            if fl_pages.len() >= n.div_ceil(cap) {
                break;
            }
            fl_pages.push(self.alloc()?);
        }
        let mut ids: Vec<PageId> = self
            .free
            .iter()
            .chain(&self.pending)
            .chain(&self.durable_freelist)
            .copied()
            .collect();
        ids.sort_unstable();
        // 2. Dirty pages.
        self.flush()?;
        // 3. The freelist chain.
        let mut chunks = ids.chunks(cap);
        for (i, &at) in fl_pages.iter().enumerate() {
            let next = fl_pages.get(i + 1).copied().unwrap_or(PageId(0));
            let chunk = chunks.next().unwrap_or(&[]);
            let mut p = page::encode_freelist(ps, epoch, next, chunk);
            self.write_direct(at, &mut p)?;
        }
        debug_assert!(
            chunks.next().is_none(),
            "invariant: freelist pages hold every id"
        );
        // 4. Sync the data, 5. flip the meta, 6. sync the meta.
        self.device.sync()?;
        let meta = Meta {
            epoch,
            page_count: self.page_count,
            dir_root,
            freelist_head: fl_pages.first().copied().unwrap_or(PageId(0)),
            freelist_len: ids.len() as u64,
            freelist_pages: fl_pages.len() as u64,
            wal_lsn,
            user_meta: user_meta.to_vec(),
        };
        let p = meta.encode(ps);
        self.device.write(epoch % 2, &p)?;
        bump(&self.counters.writes, 1);
        self.device.sync()?;
        // The new state is durable: what the old one needed is free now.
        self.free.extend(self.pending.drain(..));
        self.free.extend(self.durable_freelist.drain(..));
        self.durable_freelist = fl_pages;
        self.durable_epoch = epoch;
        self.fresh = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::PageType;
    use strata_storage::{FaultyDevice, MemDevice};

    fn no_check(_: &[u8]) -> std::result::Result<(), String> {
        Ok(())
    }

    fn leaf(pager: &Pager, fill: u8) -> Vec<u8> {
        let mut p = page::new_page(pager.page_size(), PageType::Leaf, pager.current_epoch());
        p[100] = fill;
        p
    }

    /// A new store with one "directory" page (page 2), checkpointed at epoch 1.
    fn fresh(mem: &MemDevice, cache: usize) -> (Pager, PageId) {
        let mut pager = Pager::create(Arc::new(mem.clone()), cache).unwrap();
        let root = pager.alloc().unwrap();
        let p = leaf(&pager, 1);
        pager.put(root, p).unwrap();
        pager.checkpoint(root, 5, b"um").unwrap();
        (pager, root)
    }

    #[test]
    fn create_open_round_trip() {
        let mem = MemDevice::new(1024, 0);
        let (_, root) = fresh(&mem, 8);
        let (pager, meta) = Pager::open(Arc::new(mem), 8).unwrap();
        assert_eq!((meta.epoch, meta.dir_root, meta.wal_lsn), (1, root, 5));
        assert_eq!(meta.user_meta, b"um");
        assert_eq!(pager.read(root, no_check).unwrap()[100], 1);
    }

    /// Invariant 3: a page freed from the durable state is reused only after a checkpoint;
    /// one allocated and freed within the epoch at once.
    #[test]
    fn pending_pages_wait_for_the_checkpoint() {
        let mem = MemDevice::new(1024, 0);
        let (mut pager, root) = fresh(&mem, 8);
        pager.release(root, 1);
        let a = pager.alloc().unwrap();
        assert_ne!(a, root, "durable page reused before the checkpoint");
        pager.release(a, pager.current_epoch());
        assert_eq!(pager.alloc().unwrap(), a, "fresh page reused at once");
        let p = leaf(&pager, 2);
        pager.put(a, p).unwrap();
        pager.checkpoint(a, 0, &[]).unwrap();
        assert!(pager.free_ids().any(|id| id == root));
    }

    /// Dirty pages evicted from a tiny pool are written to their own ids and read back intact.
    #[test]
    fn eviction_writes_dirty_pages_back() {
        let mem = MemDevice::new(1024, 0);
        let (mut pager, _) = fresh(&mem, 8);
        let ids: Vec<PageId> = (0..100).map(|_| pager.alloc().unwrap()).collect();
        for (i, &id) in ids.iter().enumerate() {
            let p = leaf(&pager, i as u8);
            pager.put(id, p).unwrap();
        }
        assert!(pager.counters().writes.load(Ordering::Relaxed) > 50);
        for (i, &id) in ids.iter().enumerate() {
            assert_eq!(pager.read(id, no_check).unwrap()[100], i as u8);
        }
        assert!(pager.pool_shared().map.len() <= 8);
    }

    /// A power cut (a torn block write, then a dead device) at every point of a checkpoint:
    /// reopening shows exactly the old or the new checkpoint, and a torn meta page falls back to
    /// the other one. Both outcomes occur across the cut points.
    #[test]
    fn meta_selection_survives_one_torn_meta() {
        let mut outcomes = std::collections::BTreeSet::new();
        for cut in 0..12 {
            let mem = MemDevice::new(1024, 0);
            let faulty = FaultyDevice::new(Arc::new(mem.clone()));
            let faults = faulty.faults();
            let mut pager = Pager::create(Arc::new(faulty), 8).unwrap();
            let root = pager.alloc().unwrap();
            let p = leaf(&pager, 1);
            pager.put(root, p).unwrap();
            pager.checkpoint(root, 10, &[]).unwrap();
            let mut p = pager.take(root, no_check).unwrap();
            let new = pager.alloc().unwrap();
            page::set_epoch(&mut p, pager.current_epoch());
            pager.put(new, p).unwrap();
            pager.release(root, 1);
            faults.tear_after_writes(cut, 100);
            let _ = pager.checkpoint(new, 20, &[]);
            let (_, meta) = Pager::open(Arc::new(mem.clone()), 8)
                .unwrap_or_else(|e| panic!("cut {cut}: cannot reopen: {e}"));
            let seen = (meta.epoch, meta.wal_lsn);
            assert!(seen == (1, 10) || seen == (2, 20), "cut {cut}: {seen:?}");
            outcomes.insert(seen);
            if seen == (1, 10) && cut == 11 {
                panic!("the checkpoint never completed");
            }
        }
        assert_eq!(outcomes.len(), 2, "{outcomes:?}");
        // Both metas damaged: a clear error naming the meta pages.
        let mem = MemDevice::new(1024, 0);
        let (mut pager, root) = fresh(&mem, 8);
        pager.checkpoint(root, 6, b"um").unwrap();
        mem.corrupt(40, 1);
        mem.corrupt(1024 + 40, 1);
        match Pager::open(Arc::new(mem), 8) {
            Err(StoreError::Corrupt { page: 0, reason }) => {
                assert!(reason.contains("no valid meta"), "{reason}")
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("opened with no valid meta"),
        }
    }

    #[test]
    fn rejects_devices_that_are_not_stores() {
        let mem = MemDevice::new(1024, 10);
        assert!(matches!(
            Pager::open(Arc::new(mem), 8),
            Err(StoreError::Invalid(_))
        ));
        let mem = MemDevice::new(1024, 0);
        // Two checkpoints, so both meta pages (0 and 1) hold one.
        let (mut pager, root) = fresh(&mem, 8);
        pager.checkpoint(root, 6, b"um").unwrap();
        drop(pager);
        let mut raw = mem.snapshot();
        raw.resize(4096 * 4, 0);
        let wide = MemDevice::new(4096, 4);
        wide.write(0, &raw).unwrap();
        match Pager::open(Arc::new(wide), 8) {
            Err(StoreError::Invalid(msg)) => assert!(msg.contains("1024-byte pages"), "{msg}"),
            _ => panic!("page size mismatch not reported"),
        }
    }
}
