//! `Database`: opening, the commit pipeline, checkpoints, recovery, prepared transactions.
//!
//! LIFE OF A COMMIT (`commit_changes`):
//!
//! 1. Under the commit lock: SERIALIZABLE read-set validation against later commits; a commit
//!    timestamp from the `TimestampSource`; the timestamp joins the in-flight set; the writes are
//!    applied to the trees as new versions (invisible: above every snapshot), tree by tree in one
//!    pass over each (`TreeStore::update`: keys in order, each leaf changed once).
//! 2. Outside the lock: the logical record is appended to the WAL, which returns once it is
//!    durable per the sync mode; concurrent committers share one fsync (group commit). The record
//!    is encoded straight from the transaction's write set.
//! 3. The timestamp leaves the in-flight set; the visible timestamp (what new snapshots see)
//!    advances to just below the oldest commit still in flight; row locks are released.
//!
//! A LARGE transaction (`LOG_AHEAD_WRITES` rows or more) does steps 1 and 2 at once: a helper
//! thread streams its record to the WAL (`Wal::append_streamed`) while this thread applies it,
//! so the log write and fsync overlap the tree work. Step 3 still waits for both. If applying
//! fails after the record reached the log, the database stops (`Error::Failed`) and the commit
//! may reappear at the next open, like a commit whose WAL write failed.
//!
//! So a commit is never visible before it is durable, and visibility follows timestamp order.
//!
//! CHECKPOINT: under the commit lock, once nothing is in flight, the trees are checkpointed with
//! the WAL's end LSN (all applied commits are logged below it) and the log is cut there, keeping
//! records of transactions still prepared.
//!
//! RECOVERY (`open`): the trees as of the last checkpoint, then every WAL record at or after its
//! LSN applied again. Applying is idempotent (a version already present is skipped), so a commit
//! that was both checkpointed and logged is harmless. Prepare records anywhere in the log
//! re-create prepared transactions, with their locks.
//!
//! INVARIANTS: 1. new snapshots never include a commit that is not durable (per sync mode);
//! 2. every commit at or below a snapshot's timestamp is fully applied; 3. the checkpoint plus the
//! log after it reproduce every acknowledged commit; 4. after an I/O failure the database refuses
//! further work (`Error::Failed`) until reopened, so nothing unlogged is ever made durable.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use strata_storage::{BlockDevice, FileDevice, MemDevice};

use crate::btree::verify::TreeStats;
use crate::codec::{self, Op, Record};
use crate::error::{Error, Result};
use crate::locks::{LockKey, LockTable, TxnId};
use crate::store::{StoreError, StoreOptions, TreeStore, VerifyReport};
use crate::txn::{Batch, Isolation, Txn};
use crate::wal::{self, Lsn, SyncMode, Wal};

/// Where commit timestamps come from: a local counter embedded, a timestamp oracle in a cluster.
pub trait TimestampSource: Send + Sync {
    /// A timestamp greater than `floor` and than every timestamp returned before.
    fn next(&self, floor: u64) -> u64;
}

/// The embedded timestamp source: a counter.
#[derive(Default)]
pub struct LocalClock(AtomicU64);

impl TimestampSource for LocalClock {
    fn next(&self, floor: u64) -> u64 {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            let next = current.max(floor) + 1;
            match self
                .0
                .compare_exchange(current, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next,
                Err(seen) => current = seen,
            }
        }
    }
}

/// Options for opening or creating a database.
#[derive(Clone)]
pub struct Options {
    /// Page size for a new database (the device's block size); 4 KiB by default.
    pub page_size: usize,
    /// Buffer pool size in bytes.
    pub cache_bytes: usize,
    /// WAL durability: `Full` (fsync per commit group; default), `Normal`, `Off`.
    pub sync: SyncMode,
    /// Checkpoint automatically once the WAL exceeds this many bytes.
    pub checkpoint_wal_bytes: u64,
    /// Give up waiting for a row lock after this long (None: wait, deadlocks are still detected).
    pub lock_timeout: Option<Duration>,
    /// Commit timestamps (default: a local counter).
    pub timestamps: Option<Arc<dyn TimestampSource>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            page_size: 4096,
            cache_bytes: 64 << 20,
            sync: SyncMode::Full,
            checkpoint_wal_bytes: 64 << 20,
            lock_timeout: None,
            timestamps: None,
        }
    }
}

/// Counters for `Database::stats`.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub page_size: usize,
    pub pages: u64,
    pub free_pages: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub pages_read: u64,
    pub pages_written: u64,
    pub wal_bytes: u64,
    pub wal_fsyncs: u64,
    pub commits: u64,
    pub checkpoints: u64,
    pub visible_ts: u64,
}

/// A transaction prepared for two-phase commit.
pub(crate) struct Prepared {
    pub id: TxnId,
    pub ops: Vec<Op>,
    /// Where its Prepare record starts (the log is kept from here while it is prepared).
    pub lsn: Lsn,
}

/// A transaction writing at least this many rows is logged in parallel with applying it, its
/// record streamed to the WAL in pieces of `LOG_PIECE_BYTES`.
const LOG_AHEAD_WRITES: usize = 4096;
const LOG_PIECE_BYTES: usize = 1 << 20;

/// The WAL frame of a transaction's Commit record, encoded straight from its batch (no operation
/// list, and the payload is not copied again by the WAL).
fn commit_frame(batch: &Batch, ts: u64, watermark: u64) -> Vec<u8> {
    let mut frame = vec![0u8; wal::FRAME_HEADER_LEN as usize];
    codec::encode_commit(&mut frame, ts, watermark, &batch.tree_ops, batch.writes());
    frame
}

/// A commit that SERIALIZABLE transactions must validate against.
struct RecentCommit {
    ts: u64,
    keys: Arc<Vec<LockKey>>,
}

pub(crate) struct State {
    /// What new snapshots see: every commit at or below it is applied and durable.
    pub visible_ts: u64,
    /// The highest commit timestamp handed out.
    max_ts: u64,
    /// Commits applied but not yet durable.
    inflight: BTreeSet<u64>,
    /// Snapshot timestamps of active transactions (with multiplicity), for version pruning.
    snapshots: HashMap<TxnId, u64>,
    /// Start timestamps of active SERIALIZABLE transactions.
    serializable: HashMap<TxnId, u64>,
    recent: Vec<RecentCommit>,
    pub prepared: HashMap<String, Prepared>,
    commits: u64,
    checkpoints: u64,
}

impl State {
    /// The oldest timestamp any active snapshot may read at.
    fn gc_watermark(&self) -> u64 {
        self.snapshots
            .values()
            .copied()
            .min()
            .unwrap_or(self.visible_ts)
            .min(self.visible_ts)
    }

    fn advance_visible(&mut self) {
        self.visible_ts = match self.inflight.first() {
            Some(&oldest) => self.visible_ts.max(oldest - 1),
            None => self.max_ts,
        };
    }
}

pub(crate) struct Shared {
    pub store: TreeStore,
    /// None for an in-memory database.
    wal: Option<Wal>,
    opts: Options,
    clock: Arc<dyn TimestampSource>,
    pub locks: LockTable,
    /// Serialises step 1 of a commit and checkpoints.
    commit_lock: Mutex<()>,
    pub state: Mutex<State>,
    inflight_done: Condvar,
    next_txn: AtomicU64,
    failed: Mutex<Option<String>>,
    /// Set (after `failed`) once the database has failed: the fast path of `check_failed`.
    has_failed: AtomicBool,
}

/// What a commit applies and logs.
enum Changes {
    /// A transaction's buffered changes.
    Batch(Batch),
    /// An operation list (a prepared transaction's).
    Ops(Vec<Op>),
}

impl Changes {
    /// The rows written, for SERIALIZABLE validation of later commits.
    fn written_keys(&self) -> Vec<LockKey> {
        match self {
            Changes::Batch(b) => b
                .writes()
                .map(|(tree, key, _)| (tree.to_string(), key.to_vec()))
                .collect(),
            Changes::Ops(ops) => ops
                .iter()
                .filter_map(|op| match op {
                    Op::Write { tree, key, .. } => Some((tree.clone(), key.clone())),
                    _ => None,
                })
                .collect(),
        }
    }
}

/// A database: a handle that is cheap to clone and usable from many threads.
#[derive(Clone)]
pub struct Database {
    pub(crate) shared: Arc<Shared>,
}

/// The path of the WAL beside a database file.
pub fn wal_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

impl Database {
    /// Opens the database file at `path`, creating it if missing; its WAL is `<path>-wal`.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Database> {
        let path = path.as_ref();
        let device: Arc<dyn BlockDevice> = if path.exists() {
            Arc::new(FileDevice::open(path, opts.page_size)?)
        } else {
            Arc::new(FileDevice::create(path, opts.page_size, 0)?)
        };
        Self::open_on(device, &wal_path(path), opts)
    }

    /// Opens (or creates, if the device is empty) a database on any block device, such as a RAID
    /// array, with its WAL in the file `wal`.
    pub fn open_on(device: Arc<dyn BlockDevice>, wal: &Path, opts: Options) -> Result<Database> {
        let store = open_store(device, &opts)?;
        let (wal, records) = Wal::open(wal, opts.sync)?;
        Self::start(store, Some(wal), records, opts)
    }

    /// A database that lives in memory only.
    pub fn memory(opts: Options) -> Result<Database> {
        let device = Arc::new(MemDevice::new(opts.page_size, 0));
        let store = TreeStore::create(device, store_options(&opts))?;
        Self::start(store, None, Vec::new(), opts)
    }

    fn start(
        store: TreeStore,
        wal: Option<Wal>,
        records: Vec<(Lsn, Vec<u8>)>,
        opts: Options,
    ) -> Result<Database> {
        let meta = store.user_meta();
        let checkpoint_ts = if meta.len() >= 8 {
            u64::from_le_bytes(meta[..8].try_into().expect("8 bytes"))
        } else {
            0
        };
        let clock = opts
            .timestamps
            .clone()
            .unwrap_or_else(|| Arc::new(LocalClock::default()));
        let shared = Arc::new(Shared {
            store,
            wal,
            opts,
            clock,
            locks: LockTable::default(),
            commit_lock: Mutex::new(()),
            state: Mutex::new(State {
                visible_ts: checkpoint_ts,
                max_ts: checkpoint_ts,
                inflight: BTreeSet::new(),
                snapshots: HashMap::new(),
                serializable: HashMap::new(),
                recent: Vec::new(),
                prepared: HashMap::new(),
                commits: 0,
                checkpoints: 0,
            }),
            inflight_done: Condvar::new(),
            next_txn: AtomicU64::new(1),
            failed: Mutex::new(None),
            has_failed: AtomicBool::new(false),
        });
        shared.recover(records)?;
        Ok(Database { shared })
    }

    /// Starts a transaction.
    pub fn begin(&self, isolation: Isolation) -> Result<Txn> {
        self.shared.check_failed()?;
        Ok(Txn::new(self.shared.clone(), isolation))
    }

    /// Writes every change to the data file and shortens the WAL.
    pub fn checkpoint(&self) -> Result<()> {
        self.shared.checkpoint()
    }

    /// Commits a prepared transaction (the second phase of 2PC). Returns its commit timestamp.
    pub fn commit_prepared(&self, gid: &str) -> Result<u64> {
        self.shared.finish_prepared(gid, true)
    }

    /// Rolls back a prepared transaction.
    pub fn rollback_prepared(&self, gid: &str) -> Result<()> {
        self.shared.finish_prepared(gid, false).map(|_| ())
    }

    /// Global ids of the prepared transactions, sorted.
    pub fn prepared(&self) -> Vec<String> {
        let mut gids: Vec<String> = self.shared.lock_state().prepared.keys().cloned().collect();
        gids.sort();
        gids
    }

    /// Names of the trees that exist (as of the latest commit).
    pub fn trees(&self) -> Vec<String> {
        self.shared.store.tree_names()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        let s = self.shared.store.stats();
        let (wal_bytes, wal_fsyncs) = self
            .shared
            .wal
            .as_ref()
            .map_or((0, 0), |w| (w.stats().bytes_written, w.stats().fsyncs));
        let state = self.shared.lock_state();
        Stats {
            page_size: s.page_size,
            pages: s.page_count,
            free_pages: s.free_pages,
            cache_hits: s.cache_hits,
            cache_misses: s.cache_misses,
            pages_read: s.pages_read,
            pages_written: s.pages_written,
            wal_bytes,
            wal_fsyncs,
            commits: state.commits,
            checkpoints: state.checkpoints,
            visible_ts: state.visible_ts,
        }
    }

    /// The size of one tree as of the latest commit: its entries, node and overflow pages, and
    /// depth (how much room a table or an index takes: pages times `Stats::page_size`). Walks the
    /// whole tree, reading every page; `Error` if no tree has that name.
    pub fn tree_stats(&self, tree: &str) -> Result<TreeStats> {
        Ok(self.shared.store.tree_stats(tree)?)
    }

    /// Walks every tree: page checksums, key order, links, free-space accounting, and that every
    /// stored value is a well-formed version chain.
    pub fn verify(&self) -> Result<VerifyReport> {
        let report = self.shared.store.verify()?;
        for tree in self.shared.store.tree_names() {
            for entry in
                self.shared
                    .store
                    .range(&tree, Bound::Unbounded, Bound::Unbounded, false)?
            {
                let (key, value) = entry?;
                codec::decode_chain(&value)
                    .map_err(|e| Error::Corrupt(format!("tree {tree:?}, key {key:02x?}: {e}")))?;
            }
        }
        Ok(report)
    }

    /// Checkpoints and closes. Dropping without `close` is safe too: recovery replays the WAL.
    pub fn close(self) -> Result<()> {
        self.shared.checkpoint()
    }
}

fn store_options(opts: &Options) -> StoreOptions {
    StoreOptions {
        page_size: opts.page_size,
        cache_pages: (opts.cache_bytes / opts.page_size).max(16),
    }
}

/// Opens the store on `device`, creating it when the device is new: empty, or (a fixed-size
/// device such as a RAID array) with both meta pages still all zeros. Anything else that is not
/// a store is an error, never overwritten.
fn open_store(device: Arc<dyn BlockDevice>, opts: &Options) -> Result<TreeStore> {
    let fresh = if device.block_count() < 2 {
        device.block_count() == 0
    } else {
        let mut head = vec![0u8; 2 * device.block_size()];
        device.read(0, &mut head)?;
        head.iter().all(|&b| b == 0)
    };
    if fresh {
        Ok(TreeStore::create(device, store_options(opts))?)
    } else {
        Ok(TreeStore::open(device, store_options(opts))?)
    }
}

impl Shared {
    pub fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("invariant: state lock not poisoned")
    }

    pub fn check_failed(&self) -> Result<()> {
        if !self.has_failed.load(Ordering::Acquire) {
            return Ok(());
        }
        match &*self.failed.lock().expect("invariant: lock not poisoned") {
            Some(why) => Err(Error::Failed(why.clone())),
            None => Ok(()),
        }
    }

    fn fail(&self, err: Error) -> Error {
        let mut failed = self.failed.lock().expect("invariant: lock not poisoned");
        failed.get_or_insert_with(|| err.to_string());
        self.has_failed.store(true, Ordering::Release);
        err
    }

    pub fn lock_timeout(&self) -> Option<Duration> {
        self.opts.lock_timeout
    }

    pub fn next_txn_id(&self) -> TxnId {
        TxnId(self.next_txn.fetch_add(1, Ordering::Relaxed))
    }

    /// Registers a transaction's snapshot; returns the snapshot timestamp.
    pub fn register(&self, id: TxnId, serializable: bool) -> u64 {
        let mut state = self.lock_state();
        let ts = state.visible_ts;
        state.snapshots.insert(id, ts);
        if serializable {
            state.serializable.insert(id, ts);
        }
        ts
    }

    /// Moves a READ COMMITTED transaction's snapshot to now.
    pub fn refresh_snapshot(&self, id: TxnId) -> u64 {
        let mut state = self.lock_state();
        let ts = state.visible_ts;
        state.snapshots.insert(id, ts);
        ts
    }

    /// Forgets a finished transaction and releases its locks (if it took any: `locked`).
    pub fn unregister(&self, id: TxnId, locked: bool) {
        {
            let mut state = self.lock_state();
            state.snapshots.remove(&id);
            state.serializable.remove(&id);
            let oldest = state.serializable.values().copied().min();
            match oldest {
                Some(ts) => state.recent.retain(|c| c.ts > ts),
                None => state.recent.clear(),
            }
        }
        if locked {
            self.locks.release_all(id);
        }
    }

    /// The commit timestamp of the newest committed version of a key (ignoring snapshots), for
    /// write-conflict checks.
    pub fn newest_version_ts(&self, tree: &str, key: &[u8]) -> Result<Option<u64>> {
        if !self.store.has_tree(tree) {
            return Ok(None);
        }
        let newest = self.store.get_with(tree, key, codec::newest_encoded)?;
        Ok(newest.flatten())
    }

    /// Commits a transaction's buffered changes (see `commit_changes`).
    pub(crate) fn commit_batch(
        &self,
        batch: Batch,
        validate: Option<&dyn Fn(&LockKey) -> bool>,
        start_ts: u64,
    ) -> Result<u64> {
        self.commit_changes(Changes::Batch(batch), validate, start_ts, None)
    }

    /// Commits an operation list (a prepared transaction's, with its global id).
    pub fn commit_ops(
        &self,
        ops: Vec<Op>,
        validate: Option<&dyn Fn(&LockKey) -> bool>,
        start_ts: u64,
        prepared_gid: Option<&str>,
    ) -> Result<u64> {
        self.commit_changes(Changes::Ops(ops), validate, start_ts, prepared_gid)
    }

    /// Steps 1-3 of a commit (see the module doc). `validate` holds a SERIALIZABLE transaction's
    /// read-set check. Returns the commit timestamp.
    fn commit_changes(
        &self,
        changes: Changes,
        validate: Option<&dyn Fn(&LockKey) -> bool>,
        start_ts: u64,
        prepared_gid: Option<&str>,
    ) -> Result<u64> {
        self.check_failed()?;
        let guard = self
            .commit_lock
            .lock()
            .expect("invariant: commit lock not poisoned");
        if let Changes::Batch(batch) = &changes {
            // A tree this transaction wrote may have been dropped by one that committed since:
            // that is this transaction's conflict, not a failure of the database.
            for tree in batch.writes.keys() {
                let created_here = batch
                    .tree_ops
                    .iter()
                    .any(|op| matches!(op, Op::CreateTree(t) if t == tree));
                if !created_here && !self.store.has_tree(tree) {
                    return Err(Error::Serialization(format!(
                        "tree {tree:?} was dropped by a transaction that committed first"
                    )));
                }
            }
        }
        let (ts, watermark) = {
            let mut state = self.lock_state();
            if let Some(conflicts) = validate {
                for c in state.recent.iter().filter(|c| c.ts > start_ts) {
                    if let Some(k) = c.keys.iter().find(|k| conflicts(k)) {
                        return Err(Error::Serialization(format!(
                            "a row this transaction read (tree {:?}) was changed by a transaction that committed after it began",
                            k.0
                        )));
                    }
                }
            }
            let ts = self.clock.next(state.max_ts);
            state.max_ts = ts;
            state.inflight.insert(ts);
            (ts, state.gc_watermark())
        };
        if let (Changes::Batch(batch), Some(wal), None) = (&changes, &self.wal, prepared_gid) {
            if batch.write_count() >= LOG_AHEAD_WRITES {
                // A large transaction: a helper thread logs it while this one applies it, so the
                // WAL write and fsync overlap the tree work. Visibility still waits for both.
                let log = || {
                    let len = codec::commit_len(&batch.tree_ops, batch.writes());
                    wal.append_streamed(len, &mut |sink| {
                        codec::encode_commit_pieces(
                            ts,
                            watermark,
                            &batch.tree_ops,
                            batch.writes(),
                            LOG_PIECE_BYTES,
                            sink,
                        )
                    })
                };
                let result = std::thread::scope(|s| {
                    // Without a thread to spare, log after applying, on this one.
                    let logger = std::thread::Builder::new().spawn_scoped(s, log).ok();
                    let applied = self.apply_batch(batch, ts, watermark);
                    if applied.is_ok() {
                        self.note_recent(&changes, ts);
                    }
                    drop(guard);
                    applied?;
                    let logged = match logger {
                        Some(logger) => logger
                            .join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                        None => log(),
                    };
                    logged.map(drop).map_err(Error::from)
                });
                drop(changes);
                if let Err(e) = result {
                    return Err(self.fail(e));
                }
                return self.finish_commit(ts);
            }
        }
        let applied = match &changes {
            Changes::Batch(batch) => self.apply_batch(batch, ts, watermark),
            Changes::Ops(ops) => self.apply(ops, ts, watermark),
        };
        if let Err(e) = applied {
            return Err(self.fail(e));
        }
        self.note_recent(&changes, ts);
        drop(guard);
        if let Some(wal) = &self.wal {
            let appended = match (prepared_gid, changes) {
                (Some(gid), _) => wal.append(
                    &Record::CommitPrepared {
                        gid: gid.to_string(),
                        commit_ts: ts,
                        gc_watermark: watermark,
                    }
                    .encode(),
                ),
                (None, Changes::Batch(batch)) => {
                    let frame = commit_frame(&batch, ts, watermark);
                    drop(batch);
                    wal.append_framed(frame)
                }
                (None, Changes::Ops(ops)) => wal.append(
                    &Record::Commit {
                        commit_ts: ts,
                        gc_watermark: watermark,
                        ops,
                    }
                    .encode(),
                ),
            };
            if let Err(e) = appended {
                return Err(self.fail(e.into()));
            }
        }
        self.finish_commit(ts)
    }

    /// Records a commit's rows for the validation of SERIALIZABLE transactions running now.
    fn note_recent(&self, changes: &Changes, ts: u64) {
        let mut state = self.lock_state();
        if !state.serializable.is_empty() {
            let keys = changes.written_keys();
            state.recent.push(RecentCommit {
                ts,
                keys: Arc::new(keys),
            });
        }
    }

    /// Step 3 of a commit: once applied and logged, it becomes visible.
    fn finish_commit(&self, ts: u64) -> Result<u64> {
        {
            let mut state = self.lock_state();
            state.inflight.remove(&ts);
            state.advance_visible();
            state.commits += 1;
        }
        self.inflight_done.notify_all();
        self.maybe_checkpoint()?;
        Ok(ts)
    }

    /// Applies operations as versions at `ts`. Deterministic and idempotent.
    fn apply(&self, ops: &[Op], ts: u64, watermark: u64) -> Result<()> {
        let mut rest = ops;
        while let Some(op) = rest.first() {
            match op {
                Op::CreateTree(_) | Op::DropTree(_) => {
                    self.apply_tree_op(op)?;
                    rest = &rest[1..];
                }
                Op::Write { tree, .. } => {
                    // A run of writes to one tree goes to the store in one pass.
                    let n = rest
                        .iter()
                        .take_while(|op| matches!(op, Op::Write { tree: t, .. } if t == tree))
                        .count();
                    let run = rest[..n].iter().filter_map(|op| match op {
                        Op::Write { key, value, .. } => Some((key.as_slice(), value.as_deref())),
                        _ => None,
                    });
                    self.apply_writes(tree, run, ts, watermark)?;
                    rest = &rest[n..];
                }
            }
        }
        Ok(())
    }

    /// `apply` for a transaction's batch: its tree operations, then its writes tree by tree.
    fn apply_batch(&self, batch: &Batch, ts: u64, watermark: u64) -> Result<()> {
        for op in &batch.tree_ops {
            self.apply_tree_op(op)?;
        }
        for (tree, writes) in &batch.writes {
            self.apply_writes(tree, writes.iter(), ts, watermark)?;
        }
        Ok(())
    }

    fn apply_tree_op(&self, op: &Op) -> Result<()> {
        match op {
            Op::CreateTree(name) => {
                if !self.store.has_tree(name) {
                    self.store.create_tree(name)?;
                }
            }
            Op::DropTree(name) => {
                if self.store.has_tree(name) {
                    self.store.drop_tree(name)?;
                }
            }
            Op::Write { .. } => unreachable!("not a tree operation"),
        }
        Ok(())
    }

    /// Adds a version at `ts` to each key of `writes` (in one pass over the tree when the keys
    /// ascend), pruning chains with `watermark`.
    fn apply_writes<'k>(
        &self,
        tree: &str,
        writes: impl Iterator<Item = (&'k [u8], Option<&'k [u8]>)>,
        ts: u64,
        watermark: u64,
    ) -> Result<()> {
        let mut bad_chain = None;
        let result = self.store.update(tree, writes, |old, value, out| {
            codec::add_version_encoded(old, ts, value, watermark, out).map_err(|e| {
                bad_chain = Some(e);
                StoreError::Invalid("malformed version chain".into())
            })
        });
        match (result, bad_chain) {
            (Ok(()), _) => Ok(()),
            (Err(_), Some(e)) => Err(e),
            (Err(e), None) => Err(e.into()),
        }
    }

    /// Writes a Prepare record (durably) and turns the transaction into a prepared one that owns
    /// its locks.
    pub fn prepare(
        &self,
        gid: &str,
        txn: TxnId,
        start_ts: u64,
        ops: Vec<Op>,
        validate: Option<&dyn Fn(&LockKey) -> bool>,
    ) -> Result<()> {
        self.check_failed()?;
        let _guard = self
            .commit_lock
            .lock()
            .expect("invariant: commit lock not poisoned");
        let id = self.next_txn_id();
        {
            let state = self.lock_state();
            if state.prepared.contains_key(gid) {
                return Err(Error::PreparedExists(gid.to_string()));
            }
            if let Some(conflicts) = validate {
                for c in state.recent.iter().filter(|c| c.ts > start_ts) {
                    if c.keys.iter().any(conflicts) {
                        return Err(Error::Serialization(
                            "a row this transaction read was changed by a later commit".into(),
                        ));
                    }
                }
            }
        }
        let record = Record::Prepare {
            gid: gid.to_string(),
            start_ts,
            ops: ops.clone(),
        };
        let lsn = match &self.wal {
            Some(wal) => wal
                .append(&record.encode())
                .map_err(|e| self.fail(e.into()))?,
            None => Lsn(0),
        };
        self.locks.transfer(txn, id);
        self.lock_state()
            .prepared
            .insert(gid.to_string(), Prepared { id, ops, lsn });
        Ok(())
    }

    fn finish_prepared(&self, gid: &str, commit: bool) -> Result<u64> {
        self.check_failed()?;
        let prepared = self
            .lock_state()
            .prepared
            .remove(gid)
            .ok_or_else(|| Error::NoSuchPrepared(gid.to_string()))?;
        let result = if commit {
            self.commit_ops(prepared.ops, None, 0, Some(gid))
        } else {
            let record = Record::RollbackPrepared {
                gid: gid.to_string(),
            };
            match &self.wal {
                Some(wal) => wal
                    .append(&record.encode())
                    .map(|_| 0)
                    .map_err(|e| self.fail(e.into())),
                None => Ok(0),
            }
        };
        self.locks.release_all(prepared.id);
        result
    }

    fn maybe_checkpoint(&self) -> Result<()> {
        let Some(wal) = &self.wal else {
            return Ok(());
        };
        if wal.file_bytes() > self.opts.checkpoint_wal_bytes {
            self.checkpoint()?;
        }
        Ok(())
    }

    fn checkpoint(&self) -> Result<()> {
        self.check_failed()?;
        let _guard = self
            .commit_lock
            .lock()
            .expect("invariant: commit lock not poisoned");
        let mut state = self.lock_state();
        while !state.inflight.is_empty() {
            state = self
                .inflight_done
                .wait(state)
                .expect("invariant: state lock not poisoned");
        }
        let max_ts = state.max_ts;
        let keep_from = state.prepared.values().map(|p| p.lsn).min();
        drop(state);
        let end = self.wal.as_ref().map_or(Lsn(0), Wal::end_lsn);
        let result = self
            .store
            .checkpoint(end.0, &max_ts.to_le_bytes())
            .map_err(Error::from)
            .and_then(|()| match &self.wal {
                Some(wal) => wal
                    .truncate_before(keep_from.map_or(end, |k| k.min(end)))
                    .map_err(Error::from),
                None => Ok(()),
            });
        if let Err(e) = result {
            return Err(self.fail(e));
        }
        self.lock_state().checkpoints += 1;
        Ok(())
    }

    /// Replays the WAL records after the checkpoint and re-creates prepared transactions.
    fn recover(&self, records: Vec<(Lsn, Vec<u8>)>) -> Result<()> {
        let checkpoint_lsn = self.store.wal_lsn();
        let mut max_ts = self.lock_state().max_ts;
        let mut prepared: HashMap<String, (Vec<Op>, Lsn)> = HashMap::new();
        for (lsn, payload) in records {
            let record = Record::decode(&payload).map_err(|e| Error::CorruptWal {
                lsn: lsn.0,
                reason: e.to_string(),
            })?;
            let replay = lsn.0 >= checkpoint_lsn;
            match record {
                Record::Commit {
                    commit_ts,
                    gc_watermark,
                    ops,
                } => {
                    if replay {
                        self.apply(&ops, commit_ts, gc_watermark)?;
                    }
                    max_ts = max_ts.max(commit_ts);
                }
                Record::Prepare { gid, ops, .. } => {
                    prepared.insert(gid, (ops, lsn));
                }
                Record::CommitPrepared {
                    gid,
                    commit_ts,
                    gc_watermark,
                } => {
                    let (ops, _) = prepared.remove(&gid).ok_or_else(|| Error::CorruptWal {
                        lsn: lsn.0,
                        reason: format!("commit of unknown prepared transaction {gid:?}"),
                    })?;
                    if replay {
                        self.apply(&ops, commit_ts, gc_watermark)?;
                    }
                    max_ts = max_ts.max(commit_ts);
                }
                Record::RollbackPrepared { gid } => {
                    prepared.remove(&gid);
                }
            }
        }
        let mut state = self.lock_state();
        state.max_ts = max_ts;
        state.visible_ts = max_ts;
        drop(state);
        // The clock must never hand out a timestamp at or below one already used.
        self.clock.next(max_ts);
        for (gid, (ops, lsn)) in prepared {
            let id = self.next_txn_id();
            let mut seen = HashSet::new();
            for op in &ops {
                if let Op::Write { tree, key, .. } = op {
                    let k = (tree.clone(), key.clone());
                    if seen.insert(k.clone()) {
                        self.locks.acquire(id, &k, None)?;
                    }
                }
            }
            self.lock_state()
                .prepared
                .insert(gid, Prepared { id, ops, lsn });
        }
        Ok(())
    }
}
