//! `Database`: opening, the commit pipeline, checkpoints, recovery, prepared transactions.
//!
//! LIFE OF A COMMIT (`commit_ops`):
//!
//! 1. Under the commit lock: SERIALIZABLE read-set validation against later commits; a commit
//!    timestamp from the `TimestampSource`; the writes are applied to the trees as new versions
//!    (invisible: above every snapshot); the timestamp joins the in-flight set.
//! 2. Outside the lock: the logical record is appended to the WAL, which returns once it is
//!    durable per the sync mode; concurrent committers share one fsync (group commit).
//! 3. The timestamp leaves the in-flight set; the visible timestamp (what new snapshots see)
//!    advances to just below the oldest commit still in flight; row locks are released.
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use strata_storage::{BlockDevice, FileDevice, MemDevice};

use crate::codec::{self, Op, Record, Version};
use crate::error::{Error, Result};
use crate::locks::{LockKey, LockTable, TxnId};
use crate::store::{StoreOptions, TreeStore, VerifyReport};
use crate::txn::{Isolation, Txn};
use crate::wal::{Lsn, SyncMode, Wal};

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
        match &*self.failed.lock().expect("invariant: lock not poisoned") {
            Some(why) => Err(Error::Failed(why.clone())),
            None => Ok(()),
        }
    }

    fn fail(&self, err: Error) -> Error {
        let mut failed = self.failed.lock().expect("invariant: lock not poisoned");
        failed.get_or_insert_with(|| err.to_string());
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

    /// Forgets a finished transaction and releases its locks.
    pub fn unregister(&self, id: TxnId) {
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
        self.locks.release_all(id);
    }

    /// The newest committed version of a key (ignoring snapshots), for write-conflict checks.
    pub fn newest_version(&self, tree: &str, key: &[u8]) -> Result<Option<Version>> {
        if !self.store.has_tree(tree) {
            return Ok(None);
        }
        match self.store.get(tree, key)? {
            Some(raw) => Ok(codec::decode_chain(&raw)?.into_iter().next()),
            None => Ok(None),
        }
    }

    /// Steps 1-3 of a commit (see the module doc). `validate` holds a SERIALIZABLE transaction's
    /// read-set check. Returns the commit timestamp.
    pub fn commit_ops(
        &self,
        ops: Vec<Op>,
        validate: Option<&dyn Fn(&LockKey) -> bool>,
        start_ts: u64,
        prepared_gid: Option<&str>,
    ) -> Result<u64> {
        self.check_failed()?;
        let guard = self
            .commit_lock
            .lock()
            .expect("invariant: commit lock not poisoned");
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
        if let Err(e) = self.apply(&ops, ts, watermark) {
            return Err(self.fail(e));
        }
        {
            let mut state = self.lock_state();
            if !state.serializable.is_empty() {
                let keys: Vec<LockKey> = ops
                    .iter()
                    .filter_map(|op| match op {
                        Op::Write { tree, key, .. } => Some((tree.clone(), key.clone())),
                        _ => None,
                    })
                    .collect();
                state.recent.push(RecentCommit {
                    ts,
                    keys: Arc::new(keys),
                });
            }
        }
        drop(guard);
        let record = match prepared_gid {
            Some(gid) => Record::CommitPrepared {
                gid: gid.to_string(),
                commit_ts: ts,
                gc_watermark: watermark,
            },
            None => Record::Commit {
                commit_ts: ts,
                gc_watermark: watermark,
                ops,
            },
        };
        if let Some(wal) = &self.wal {
            if let Err(e) = wal.append(&record.encode()) {
                return Err(self.fail(e.into()));
            }
        }
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
        for op in ops {
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
                Op::Write { tree, key, value } => {
                    let chain = match self.store.get(tree, key)? {
                        Some(raw) => codec::decode_chain(&raw)?,
                        None => Vec::new(),
                    };
                    let version = Version {
                        commit_ts: ts,
                        value: value.clone(),
                    };
                    match codec::add_version(chain, version, watermark) {
                        Some(chain) => self.store.put(tree, key, &codec::encode_chain(&chain))?,
                        None => {
                            self.store.delete(tree, key)?;
                        }
                    }
                }
            }
        }
        Ok(())
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
