//! `Txn`: a transaction over the engine's trees.
//!
//! A transaction reads at a snapshot timestamp (the newest commit visible when it began, or when
//! its current statement began under READ COMMITTED) and sees its own writes on top. Writes are
//! buffered privately and applied only at commit, so nothing uncommitted ever reaches a tree or
//! the WAL. Writing a key first takes its row lock:
//!
//! | isolation        | snapshot          | a row changed by a commit after our snapshot          |
//! |------------------|-------------------|-------------------------------------------------------|
//! | READ COMMITTED   | per statement     | is fine: we wait for its writer, then use the newest  |
//! | REPEATABLE READ  | per transaction   | on write: serialization failure (first committer wins)|
//! | SERIALIZABLE     | per transaction   | as REPEATABLE READ, and also if we had *read* it: the |
//! |                  |                   | read set is validated at commit (prevents write skew) |
//!
//! `get_for_update` locks before reading and, under READ COMMITTED, returns the newest committed
//! version (PostgreSQL's re-check after a lock wait). A transaction dropped while active rolls
//! back; one prepared for two-phase commit lives on in the database (see `db.rs`).

use std::collections::{BTreeMap, HashSet};
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use crate::codec::{self, Op};
use crate::db::Shared;
use crate::error::{Error, Result};
use crate::locks::{LockKey, TxnId};

/// Isolation levels, as PostgreSQL names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Active,
    Committed,
    RolledBack,
    Prepared,
}

/// A scanned range: tree and key bounds.
type ReadRange = (String, Bound<Vec<u8>>, Bound<Vec<u8>>);

/// A key and its value at the snapshot (None: deleted).
type Entry = (Vec<u8>, Option<Vec<u8>>);

/// What a SERIALIZABLE transaction read: point keys and scanned ranges.
#[derive(Default, Clone)]
struct ReadSet {
    keys: HashSet<LockKey>,
    ranges: Vec<ReadRange>,
}

impl ReadSet {
    fn covers(&self, key: &LockKey) -> bool {
        self.keys.contains(key)
            || self
                .ranges
                .iter()
                .any(|(tree, lo, hi)| *tree == key.0 && (lo.as_ref(), hi.as_ref()).contains(&key.1))
    }
}

/// The private state a savepoint restores.
#[derive(Clone, Default)]
struct Buffered {
    /// Tree creations and drops, in order.
    tree_ops: Vec<Op>,
    /// Trees created (and not dropped again) by this transaction.
    created: HashSet<String>,
    /// Trees dropped (and not created again) by this transaction.
    dropped: HashSet<String>,
    /// Pending writes: None is a delete.
    writes: BTreeMap<LockKey, Option<Vec<u8>>>,
}

/// A savepoint: `Txn::rollback_to` restores the transaction's writes to it.
pub struct Savepoint(Buffered);

/// A transaction. Dropping an active one rolls it back.
pub struct Txn {
    shared: Arc<Shared>,
    id: TxnId,
    isolation: Isolation,
    start_ts: u64,
    snapshot_ts: u64,
    status: Status,
    buffered: Buffered,
    reads: ReadSet,
}

impl Txn {
    pub(crate) fn new(shared: Arc<Shared>, isolation: Isolation) -> Txn {
        let id = shared.next_txn_id();
        let start_ts = shared.register(id, isolation == Isolation::Serializable);
        Txn {
            shared,
            id,
            isolation,
            start_ts,
            snapshot_ts: start_ts,
            status: Status::Active,
            buffered: Buffered::default(),
            reads: ReadSet::default(),
        }
    }

    /// The isolation level.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// The timestamp this transaction reads at now.
    pub fn snapshot_ts(&self) -> u64 {
        self.snapshot_ts
    }

    fn check_active(&self) -> Result<()> {
        match self.status {
            Status::Active => self.shared.check_failed(),
            Status::Committed => Err(Error::TxnClosed("committed")),
            Status::RolledBack => Err(Error::TxnClosed("rolled back")),
            Status::Prepared => Err(Error::TxnClosed("prepared")),
        }
    }

    /// Starts a new statement: under READ COMMITTED the snapshot moves to now.
    pub fn new_statement(&mut self) {
        if self.isolation == Isolation::ReadCommitted && self.status == Status::Active {
            self.snapshot_ts = self.shared.refresh_snapshot(self.id);
        }
    }

    /// True if the tree exists for this transaction.
    pub fn tree_exists(&self, tree: &str) -> bool {
        !self.buffered.dropped.contains(tree)
            && (self.buffered.created.contains(tree) || self.shared.store.has_tree(tree))
    }

    fn must_exist(&self, tree: &str) -> Result<()> {
        if self.tree_exists(tree) {
            Ok(())
        } else {
            Err(Error::NoSuchTree(tree.to_string()))
        }
    }

    /// Creates a tree, visible to others once this transaction commits.
    pub fn create_tree(&mut self, tree: &str) -> Result<()> {
        self.check_active()?;
        // Creating and dropping trees locks the name, so two transactions cannot race on it.
        self.lock(&(String::new(), tree.as_bytes().to_vec()))?;
        if self.tree_exists(tree) {
            return Err(Error::TreeExists(tree.to_string()));
        }
        let b = &mut self.buffered;
        b.tree_ops.push(Op::CreateTree(tree.to_string()));
        b.dropped.remove(tree);
        b.created.insert(tree.to_string());
        Ok(())
    }

    /// Drops a tree and everything in it.
    pub fn drop_tree(&mut self, tree: &str) -> Result<()> {
        self.check_active()?;
        self.lock(&(String::new(), tree.as_bytes().to_vec()))?;
        self.must_exist(tree)?;
        let b = &mut self.buffered;
        b.tree_ops.push(Op::DropTree(tree.to_string()));
        b.created.remove(tree);
        b.dropped.insert(tree.to_string());
        let doomed: Vec<LockKey> = b
            .writes
            .range(range_of_tree(tree))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            b.writes.remove(&k);
        }
        Ok(())
    }

    /// The tree's committed state is invisible to this transaction if it created the tree itself
    /// (a same-named tree dropped earlier in this transaction may still exist physically).
    fn reads_committed(&self, tree: &str) -> bool {
        !self
            .buffered
            .tree_ops
            .iter()
            .any(|op| matches!(op, Op::DropTree(t) if t == tree))
            && self.shared.store.has_tree(tree)
    }

    /// The value of `key` at this transaction's snapshot, with its own writes on top.
    pub fn get(&mut self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_active()?;
        self.must_exist(tree)?;
        let lock_key = (tree.to_string(), key.to_vec());
        if let Some(pending) = self.buffered.writes.get(&lock_key) {
            return Ok(pending.clone());
        }
        if self.isolation == Isolation::Serializable {
            self.reads.keys.insert(lock_key);
        }
        if !self.reads_committed(tree) {
            return Ok(None);
        }
        self.committed_value(tree, key, self.snapshot_ts)
    }

    fn committed_value(&self, tree: &str, key: &[u8], at: u64) -> Result<Option<Vec<u8>>> {
        match self.shared.store.get(tree, key)? {
            Some(raw) => {
                let chain = codec::decode_chain(&raw)?;
                Ok(codec::visible(&chain, at).cloned().flatten())
            }
            None => Ok(None),
        }
    }

    /// Locks `key` for writing, then reads it: under READ COMMITTED the newest committed value;
    /// otherwise the snapshot's, failing if a later commit changed it.
    pub fn get_for_update(&mut self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_active()?;
        self.must_exist(tree)?;
        let lock_key = (tree.to_string(), key.to_vec());
        self.lock_for_write(&lock_key)?;
        if let Some(pending) = self.buffered.writes.get(&lock_key) {
            return Ok(pending.clone());
        }
        if self.isolation == Isolation::Serializable {
            self.reads.keys.insert(lock_key);
        }
        if !self.reads_committed(tree) {
            return Ok(None);
        }
        let at = match self.isolation {
            Isolation::ReadCommitted => u64::MAX,
            _ => self.snapshot_ts,
        };
        self.committed_value(tree, key, at)
    }

    fn lock(&self, key: &LockKey) -> Result<()> {
        self.shared
            .locks
            .acquire(self.id, key, self.shared.lock_timeout())
            .map(|_| ())
    }

    /// Takes the row lock; under REPEATABLE READ and SERIALIZABLE, fails if a transaction that
    /// committed after our snapshot changed the row.
    fn lock_for_write(&mut self, key: &LockKey) -> Result<()> {
        self.lock(key)?;
        if self.isolation != Isolation::ReadCommitted && self.reads_committed(&key.0) {
            if let Some(newest) = self.shared.newest_version(&key.0, &key.1)? {
                if newest.commit_ts > self.snapshot_ts {
                    return Err(Error::Serialization(format!(
                        "a row in tree {:?} was changed by a transaction that committed after this one began",
                        key.0
                    )));
                }
            }
        }
        Ok(())
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, tree: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.write(tree, key, Some(value.to_vec()))
    }

    /// Deletes `key` (deleting a missing key is not an error).
    pub fn delete(&mut self, tree: &str, key: &[u8]) -> Result<()> {
        self.write(tree, key, None)
    }

    fn write(&mut self, tree: &str, key: &[u8], value: Option<Vec<u8>>) -> Result<()> {
        self.check_active()?;
        self.must_exist(tree)?;
        let lock_key = (tree.to_string(), key.to_vec());
        if !self.buffered.writes.contains_key(&lock_key) {
            self.lock_for_write(&lock_key)?;
        }
        self.buffered.writes.insert(lock_key, value);
        Ok(())
    }

    /// Entries with keys in the range, in order (descending if `reverse`), at this transaction's
    /// snapshot with its own writes on top.
    pub fn scan(
        &mut self,
        tree: &str,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        reverse: bool,
    ) -> Result<Scan<'_>> {
        self.check_active()?;
        self.must_exist(tree)?;
        if self.isolation == Isolation::Serializable {
            self.reads
                .ranges
                .push((tree.to_string(), start.clone(), end.clone()));
        }
        let lo = map_bound(&start, tree, false);
        let hi = map_bound(&end, tree, true);
        let mut pending: Vec<Entry> = self
            .buffered
            .writes
            .range((lo, hi))
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect();
        if reverse {
            pending.reverse();
        }
        let committed = if self.reads_committed(tree) {
            Some(self.shared.store.range(tree, start, end, reverse)?)
        } else {
            None
        };
        Ok(Scan {
            committed,
            peeked: None,
            pending: pending.into_iter().peekable(),
            snapshot_ts: self.snapshot_ts,
            reverse,
        })
    }

    /// A savepoint to roll back to.
    pub fn savepoint(&self) -> Savepoint {
        Savepoint(self.buffered.clone())
    }

    /// Undoes every write made since `sp` (row locks stay held, as in PostgreSQL).
    pub fn rollback_to(&mut self, sp: &Savepoint) -> Result<()> {
        self.check_active()?;
        self.buffered = sp.0.clone();
        Ok(())
    }

    fn ops(&mut self) -> Vec<Op> {
        let b = std::mem::take(&mut self.buffered);
        let mut ops = b.tree_ops;
        ops.extend(
            b.writes
                .into_iter()
                .map(|((tree, key), value)| Op::Write { tree, key, value }),
        );
        ops
    }

    /// Commits; returns the commit timestamp (the snapshot timestamp for a read-only one).
    pub fn commit(mut self) -> Result<u64> {
        self.check_active()?;
        let ops = self.ops();
        let result = if ops.is_empty() {
            Ok(self.snapshot_ts)
        } else {
            let reads = std::mem::take(&mut self.reads);
            let check = |k: &LockKey| reads.covers(k);
            let validate: Option<&dyn Fn(&LockKey) -> bool> =
                (self.isolation == Isolation::Serializable).then_some(&check);
            self.shared.commit_ops(ops, validate, self.start_ts, None)
        };
        self.status = if result.is_ok() {
            Status::Committed
        } else {
            Status::RolledBack
        };
        self.shared.unregister(self.id);
        result
    }

    /// Discards every write.
    pub fn rollback(mut self) -> Result<()> {
        self.finish_rollback();
        Ok(())
    }

    fn finish_rollback(&mut self) {
        if self.status == Status::Active {
            self.status = Status::RolledBack;
            self.buffered = Buffered::default();
            self.shared.unregister(self.id);
        }
    }

    /// Prepares for two-phase commit under global id `gid`: the writes become durable and the row
    /// locks stay held (across restarts too) until `Database::commit_prepared` or
    /// `rollback_prepared`.
    pub fn prepare(mut self, gid: &str) -> Result<()> {
        self.check_active()?;
        let ops = self.ops();
        let reads = std::mem::take(&mut self.reads);
        let check = |k: &LockKey| reads.covers(k);
        let validate: Option<&dyn Fn(&LockKey) -> bool> =
            (self.isolation == Isolation::Serializable).then_some(&check);
        let result = self
            .shared
            .prepare(gid, self.id, self.start_ts, ops, validate);
        self.status = if result.is_ok() {
            Status::Prepared
        } else {
            Status::RolledBack
        };
        self.shared.unregister(self.id);
        result
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        self.finish_rollback();
    }
}

fn range_of_tree(tree: &str) -> (Bound<LockKey>, Bound<LockKey>) {
    (
        Bound::Included((tree.to_string(), Vec::new())),
        Bound::Excluded((format!("{tree}\0"), Vec::new())),
    )
}

/// A key bound within `tree`, as a bound on the write set's (tree, key) order; unbounded ends
/// stop at the tree's first and last possible keys.
fn map_bound(b: &Bound<Vec<u8>>, tree: &str, is_end: bool) -> Bound<LockKey> {
    match b {
        Bound::Included(k) => Bound::Included((tree.to_string(), k.clone())),
        Bound::Excluded(k) => Bound::Excluded((tree.to_string(), k.clone())),
        Bound::Unbounded if is_end => range_of_tree(tree).1,
        Bound::Unbounded => range_of_tree(tree).0,
    }
}

/// An iterator over a transaction's view of a key range.
pub struct Scan<'a> {
    committed: Option<crate::store::Cursor<'a>>,
    peeked: Option<Entry>,
    pending: std::iter::Peekable<std::vec::IntoIter<Entry>>,
    snapshot_ts: u64,
    reverse: bool,
}

impl Scan<'_> {
    /// The next committed entry visible at the snapshot (None for a visible delete: still
    /// returned, so a pending write can be matched against it).
    fn next_committed(&mut self) -> Result<Option<Entry>> {
        if let Some(p) = self.peeked.take() {
            return Ok(Some(p));
        }
        let Some(cursor) = self.committed.as_mut() else {
            return Ok(None);
        };
        for entry in cursor.by_ref() {
            let (key, raw) = entry?;
            let chain = codec::decode_chain(&raw)?;
            if let Some(value) = codec::visible(&chain, self.snapshot_ts) {
                return Ok(Some((key, value.clone())));
            }
        }
        Ok(None)
    }

    fn step(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        loop {
            let committed = self.next_committed()?;
            let take_pending = match (&committed, self.pending.peek()) {
                (None, None) => return Ok(None),
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some((ck, _)), Some((pk, _))) => {
                    if ck == pk {
                        // Our own write replaces the committed entry.
                        true
                    } else {
                        (pk < ck) != self.reverse
                    }
                }
            };
            let (key, value) = if take_pending {
                let (pk, pv) = self.pending.next().expect("invariant: peeked");
                match committed {
                    Some(c) if c.0 != pk => self.peeked = Some(c),
                    _ => {}
                }
                (pk, pv)
            } else {
                committed.expect("invariant: committed entry present")
            };
            if let Some(value) = value {
                return Ok(Some((key, value)));
            }
        }
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step().transpose()
    }
}
