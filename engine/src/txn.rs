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

use std::collections::{btree_map, BTreeMap, HashSet};
use std::iter::Peekable;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use crate::codec::{self, Op};
use crate::db::Shared;
use crate::error::{Error, Result};
use crate::locks::{LockKey, TxnId, WaitCheck};
use crate::store::RawCursor;

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

/// A pending write: the new value, None for a delete.
type Pending = Option<Vec<u8>>;

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

/// Entries laid end to end in one buffer, each key then its value: what [`Txn::put_packed`]
/// takes. Built only by `push`, so the lengths always describe the buffer exactly.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Packed {
    bytes: Vec<u8>,
    /// (key length, value length) of each entry, in order.
    lens: Vec<(u32, u32)>,
}

impl Packed {
    /// Room for `entries` entries of `bytes` bytes in all.
    pub fn with_capacity(bytes: usize, entries: usize) -> Packed {
        Packed {
            bytes: Vec::with_capacity(bytes),
            lens: Vec::with_capacity(entries),
        }
    }

    /// Appends an entry; `Invalid` if its key or value is 4 GiB or more.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let len = |b: &[u8]| {
            u32::try_from(b.len())
                .ok()
                .filter(|&n| n != DELETE)
                .ok_or_else(|| Error::Invalid(format!("a {}-byte entry is too large", b.len())))
        };
        let lens = (len(key)?, len(value)?);
        self.bytes.extend_from_slice(key);
        self.bytes.extend_from_slice(value);
        self.lens.push(lens);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.lens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// The entries, (key, value), in the order pushed.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.lens.iter().scan(0, |at, &(k, v)| {
            let key = &self.bytes[*at..*at + k as usize];
            *at += k as usize;
            let value = &self.bytes[*at..*at + v as usize];
            *at += v as usize;
            Some((key, value))
        })
    }
}

/// The pending writes of one tree, ordered by key.
///
/// Keys written in ascending order (the common bulk pattern) are appended to `tail`, their bytes
/// and their values' in one [`Arena`], so such writes allocate nothing per key; others go
/// to `map`. Every key in `tail` is greater than every key in `map`, so the two in sequence are
/// the writes in key order. A key that lands inside `tail` without being in it moves the tail
/// into `map` first (each key moves at most once).
#[derive(Clone, Default)]
pub(crate) struct WriteSet {
    map: BTreeMap<Vec<u8>, Pending>,
    tail: Vec<TailEntry>,
    arena: Arena,
    /// Bytes of `arena` no entry uses any more (replaced values).
    garbage: usize,
}

/// Bytes appended in chunks that never move: a write set of many megabytes is built without
/// reallocating and copying it (nor faulting in twice its size) as a single `Vec` would.
/// Chunks start small and double up to `MAX_CHUNK`; an item never spans two chunks, and one
/// larger than a chunk gets a chunk of its own. A location is `chunk << 32 | offset`.
#[derive(Clone, Default)]
struct Arena {
    chunks: Vec<Vec<u8>>,
    /// Bytes stored, over all chunks.
    len: usize,
}

const MIN_CHUNK: usize = 4 << 10;
const MAX_CHUNK: usize = 1 << 20;

impl Arena {
    /// Appends the concatenation of `parts`; returns where it starts.
    fn push(&mut self, parts: &[&[u8]]) -> usize {
        let need: usize = parts.iter().map(|p| p.len()).sum();
        // (An adopted chunk may be large: its offsets must stay below 4 GiB.)
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= need && c.len() <= u32::MAX as usize);
        if !fits {
            let next = self
                .chunks
                .last()
                .map_or(MIN_CHUNK, |c| (c.capacity() * 2).min(MAX_CHUNK));
            self.chunks.push(Vec::with_capacity(next.max(need)));
        }
        let n = self.chunks.len() - 1;
        let chunk = &mut self.chunks[n];
        let at = (n << 32) | chunk.len();
        for p in parts {
            chunk.extend_from_slice(p);
        }
        self.len += need;
        at
    }

    fn get(&self, at: usize, len: usize) -> &[u8] {
        let off = at & 0xFFFF_FFFF;
        &self.chunks[at >> 32][off..off + len]
    }

    fn get_mut(&mut self, at: usize, len: usize) -> &mut [u8] {
        let off = at & 0xFFFF_FFFF;
        &mut self.chunks[at >> 32][off..off + len]
    }
}

/// A write of the tail: the key at `at` in the arena, then the value (`DELETE` for a delete).
#[derive(Clone, Copy)]
struct TailEntry {
    at: usize,
    key_len: u32,
    value_len: u32,
}

/// `TailEntry::value_len` of a delete.
const DELETE: u32 = u32::MAX;

impl WriteSet {
    pub(crate) fn len(&self) -> usize {
        self.map.len() + self.tail.len()
    }

    fn tail_key(&self, e: &TailEntry) -> &[u8] {
        self.arena.get(e.at, e.key_len as usize)
    }

    fn tail_value(&self, e: &TailEntry) -> Option<&[u8]> {
        (e.value_len != DELETE).then(|| {
            let both = self
                .arena
                .get(e.at, e.key_len as usize + e.value_len as usize);
            &both[e.key_len as usize..]
        })
    }

    fn tail_entry(&self, i: usize) -> (&[u8], Option<&[u8]>) {
        let e = &self.tail[i];
        (self.tail_key(e), self.tail_value(e))
    }

    fn tail_search(&self, key: &[u8]) -> std::result::Result<usize, usize> {
        self.tail.binary_search_by(|e| self.tail_key(e).cmp(key))
    }

    /// Where `key` is relative to the tail: past its end (or there is no tail), inside its
    /// range, or before it.
    fn place(&self, key: &[u8]) -> Place {
        match (self.tail.first(), self.tail.last()) {
            (Some(first), Some(last)) => {
                if key > self.tail_key(last) {
                    Place::After
                } else if key >= self.tail_key(first) {
                    Place::Inside
                } else {
                    Place::Before
                }
            }
            _ => match self.map.last_key_value() {
                Some((last, _)) if key <= last.as_slice() => Place::Before,
                _ => Place::After,
            },
        }
    }

    /// The pending write of `key`: Some(None) for a delete.
    fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        match self.place(key) {
            Place::After => None,
            Place::Inside => {
                let i = self.tail_search(key).ok()?;
                Some(self.tail_entry(i).1)
            }
            Place::Before => self.map.get(key).map(Option::as_deref),
        }
    }

    fn contains(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` (inserting or replacing).
    fn set(&mut self, key: &[u8], value: Option<&[u8]>) {
        let fits =
            value.is_none_or(|v| v.len() < DELETE as usize) && key.len() <= u32::MAX as usize;
        match self.place(key) {
            Place::After if fits => self.push(key, value),
            Place::Inside if fits => match self.tail_search(key) {
                Ok(i) => self.replace(i, value),
                Err(_) => {
                    self.spill();
                    self.map.insert(key.to_vec(), value.map(<[u8]>::to_vec));
                }
            },
            Place::Inside | Place::After => {
                self.spill();
                self.map.insert(key.to_vec(), value.map(<[u8]>::to_vec));
            }
            Place::Before => {
                self.map.insert(key.to_vec(), value.map(<[u8]>::to_vec));
            }
        }
    }

    fn push_bytes(&mut self, key: &[u8], value: Option<&[u8]>) -> TailEntry {
        let at = self.arena.push(&[key, value.unwrap_or_default()]);
        TailEntry {
            at,
            key_len: key.len() as u32,
            value_len: value.map_or(DELETE, |v| v.len() as u32),
        }
    }

    /// Replaces the value of tail entry `i`: in place if it fits, else appended anew (the old
    /// bytes become garbage; the arena is compacted once garbage is most of it).
    fn replace(&mut self, i: usize, value: Option<&[u8]>) {
        let e = self.tail[i];
        let old_len = if e.value_len == DELETE {
            0
        } else {
            e.value_len as usize
        };
        let new_len = value.map_or(0, <[u8]>::len);
        if new_len <= old_len {
            if let Some(v) = value {
                let k = e.key_len as usize;
                self.arena.get_mut(e.at, k + v.len())[k..].copy_from_slice(v);
            }
            self.tail[i].value_len = value.map_or(DELETE, |v| v.len() as u32);
            self.garbage += old_len - new_len;
            return;
        }
        let key = self.tail_key(&e).to_vec();
        self.tail[i] = self.push_bytes(&key, value);
        self.garbage += e.key_len as usize + old_len;
        if self.garbage > 4096 && self.garbage > self.arena.len / 2 {
            let mut arena = Arena::default();
            for e in &mut self.tail {
                let len = e.key_len as usize
                    + if e.value_len == DELETE {
                        0
                    } else {
                        e.value_len as usize
                    };
                e.at = arena.push(&[self.arena.get(e.at, len)]);
            }
            self.arena = arena;
            self.garbage = 0;
        }
    }

    fn push(&mut self, key: &[u8], value: Option<&[u8]>) {
        let e = self.push_bytes(key, value);
        self.tail.push(e);
    }

    /// Takes `entries` as the whole write set without copying them: their buffer becomes the
    /// arena's one chunk, the tail points into it. Only if the set is empty, the keys strictly
    /// ascend and the buffer is under 4 GiB (arena offsets are 32-bit); otherwise `entries`
    /// come back.
    fn adopt(&mut self, entries: Packed) -> Option<Packed> {
        if self.len() > 0 || entries.bytes.len() > u32::MAX as usize {
            return Some(entries);
        }
        let mut tail: Vec<TailEntry> = Vec::with_capacity(entries.len());
        let mut at = 0usize;
        let mut prev: Option<&[u8]> = None;
        let ascending = entries.iter().all(|(key, value)| {
            if prev.is_some_and(|p| p >= key) {
                return false;
            }
            prev = Some(key);
            tail.push(TailEntry {
                at,
                key_len: key.len() as u32,
                value_len: value.len() as u32,
            });
            at += key.len() + value.len();
            true
        });
        if !ascending {
            return Some(entries);
        }
        self.arena = Arena {
            chunks: vec![entries.bytes],
            len: at,
        };
        self.tail = tail;
        self.garbage = 0;
        None
    }

    /// Moves the tail into the map.
    fn spill(&mut self) {
        let tail = std::mem::take(&mut self.tail);
        for e in &tail {
            self.map.insert(
                self.tail_key(e).to_vec(),
                self.tail_value(e).map(<[u8]>::to_vec),
            );
        }
        self.arena = Arena::default();
        self.garbage = 0;
    }

    /// The writes with keys within the bounds, ascending.
    fn range<'a>(&'a self, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> WriteRange<'a> {
        let empty = match (lo, hi) {
            (Bound::Included(a), Bound::Included(b)) => a > b,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
            | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
            _ => false,
        };
        if empty {
            return WriteRange::empty();
        }
        let key = |e: &TailEntry| self.tail_key(e);
        let start = match lo {
            Bound::Unbounded => 0,
            Bound::Included(k) => self.tail.partition_point(|e| key(e) < k),
            Bound::Excluded(k) => self.tail.partition_point(|e| key(e) <= k),
        };
        let end = match hi {
            Bound::Unbounded => self.tail.len(),
            Bound::Included(k) => self.tail.partition_point(|e| key(e) <= k),
            Bound::Excluded(k) => self.tail.partition_point(|e| key(e) < k),
        };
        let map = (!self.map.is_empty()).then(|| self.map.range::<[u8], _>((lo, hi)));
        WriteRange {
            map,
            set: Some(self),
            tail: start..end.max(start),
        }
    }

    /// Every write, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> + Clone {
        self.map
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
            .chain((0..self.tail.len()).map(|i| self.tail_entry(i)))
    }
}

/// See `WriteSet::place`.
enum Place {
    After,
    Inside,
    Before,
}

/// Pending writes within a key range, either way.
struct WriteRange<'a> {
    map: Option<btree_map::Range<'a, Vec<u8>, Pending>>,
    set: Option<&'a WriteSet>,
    /// Indexes of the tail entries in the range.
    tail: std::ops::Range<usize>,
}

impl WriteRange<'_> {
    fn empty() -> Self {
        WriteRange {
            map: None,
            set: None,
            tail: 0..0,
        }
    }
}

impl<'a> Iterator for WriteRange<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some((k, v)) = self.map.as_mut().and_then(Iterator::next) {
            return Some((k, v.as_deref()));
        }
        let i = self.tail.next()?;
        Some(self.set?.tail_entry(i))
    }
}

impl DoubleEndedIterator for WriteRange<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if let Some(i) = self.tail.next_back() {
            return self.set.map(|s| s.tail_entry(i));
        }
        self.map
            .as_mut()
            .and_then(DoubleEndedIterator::next_back)
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
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
    /// Pending writes by tree (no empty sets).
    writes: BTreeMap<String, WriteSet>,
}

/// A transaction's changes as the commit pipeline takes them: the tree creations and drops in
/// order, then the writes, by tree and key. Equivalent to the operation list `into_ops`.
pub(crate) struct Batch {
    pub tree_ops: Vec<Op>,
    pub writes: BTreeMap<String, WriteSet>,
}

impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.tree_ops.is_empty() && self.writes.is_empty()
    }

    /// Every write as (tree, key, value), in order.
    pub(crate) fn writes(&self) -> impl Iterator<Item = (&str, &[u8], Option<&[u8]>)> + Clone {
        self.writes
            .iter()
            .flat_map(|(tree, ws)| ws.iter().map(move |(k, v)| (tree.as_str(), k, v)))
    }

    pub(crate) fn write_count(&self) -> usize {
        self.writes.values().map(WriteSet::len).sum()
    }

    /// The operation list: tree operations first, then the writes.
    pub(crate) fn into_ops(self) -> Vec<Op> {
        let mut ops = self.tree_ops;
        ops.reserve(self.writes.values().map(WriteSet::len).sum());
        for (tree, ws) in &self.writes {
            ops.extend(ws.iter().map(|(key, value)| Op::Write {
                tree: tree.clone(),
                key: key.to_vec(),
                value: value.map(<[u8]>::to_vec),
            }));
        }
        ops
    }
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
    /// Set once the transaction has asked for a lock (so finishing must release locks).
    locked: bool,
    /// Asked while waiting for a row lock (see [`Txn::set_wait_check`]).
    wait_check: Option<WaitCheck>,
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
            locked: false,
            wait_check: None,
        }
    }

    /// Makes waits for row locks ask `check` between slices and give up with
    /// [`Error::Canceled`] when it says stop (the SQL layer's query cancel and statement
    /// timeout).
    pub fn set_wait_check(&mut self, check: WaitCheck) {
        self.wait_check = Some(check);
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
        let b = &self.buffered;
        (b.dropped.is_empty() || !b.dropped.contains(tree))
            && ((!b.created.is_empty() && b.created.contains(tree))
                || self.shared.store.has_tree(tree))
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
        self.lock("", tree.as_bytes())?;
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
        self.lock("", tree.as_bytes())?;
        self.must_exist(tree)?;
        let b = &mut self.buffered;
        b.tree_ops.push(Op::DropTree(tree.to_string()));
        b.created.remove(tree);
        b.dropped.insert(tree.to_string());
        b.writes.remove(tree);
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

    fn pending(&self, tree: &str, key: &[u8]) -> Option<Option<Vec<u8>>> {
        Some(
            self.buffered
                .writes
                .get(tree)?
                .get(key)?
                .map(<[u8]>::to_vec),
        )
    }

    /// The value of `key` at this transaction's snapshot, with its own writes on top.
    pub fn get(&mut self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_active()?;
        self.must_exist(tree)?;
        if let Some(pending) = self.pending(tree, key) {
            return Ok(pending);
        }
        if self.isolation == Isolation::Serializable {
            self.reads.keys.insert((tree.to_string(), key.to_vec()));
        }
        if !self.reads_committed(tree) {
            return Ok(None);
        }
        self.committed_value(tree, key, self.snapshot_ts)
    }

    fn committed_value(&self, tree: &str, key: &[u8], at: u64) -> Result<Option<Vec<u8>>> {
        let found = self.shared.store.get_with(tree, key, |raw| {
            Ok::<_, Error>(
                codec::visible_encoded(raw, at)?
                    .flatten()
                    .map(<[u8]>::to_vec),
            )
        })?;
        Ok(found.flatten())
    }

    /// Locks `key` for writing, then reads it: under READ COMMITTED the newest committed value;
    /// otherwise the snapshot's, failing if a later commit changed it.
    pub fn get_for_update(&mut self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_active()?;
        self.must_exist(tree)?;
        self.lock_for_write(tree, key)?;
        if let Some(pending) = self.pending(tree, key) {
            return Ok(pending);
        }
        if self.isolation == Isolation::Serializable {
            self.reads.keys.insert((tree.to_string(), key.to_vec()));
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

    fn lock(&mut self, tree: &str, key: &[u8]) -> Result<()> {
        self.locked = true;
        self.shared
            .locks
            .acquire_row(
                self.id,
                tree,
                key,
                self.shared.lock_timeout(),
                self.wait_check.as_ref(),
            )
            .map(|_| ())
    }

    /// Takes the row lock; under REPEATABLE READ and SERIALIZABLE, fails if a transaction that
    /// committed after our snapshot changed the row.
    fn lock_for_write(&mut self, tree: &str, key: &[u8]) -> Result<()> {
        self.lock(tree, key)?;
        if self.isolation != Isolation::ReadCommitted && self.reads_committed(tree) {
            if let Some(newest_ts) = self.shared.newest_version_ts(tree, key)? {
                if newest_ts > self.snapshot_ts {
                    return Err(Error::Serialization(format!(
                        "a row in tree {tree:?} was changed by a transaction that committed after this one began"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, tree: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.write(tree, key, Some(value))
    }

    /// Puts many entries into `tree`. Into a tree this transaction created and has not written
    /// yet, entries in strictly ascending key order become the write set as they are (no row
    /// locks, no copy: an index build hands over its sorted entries); otherwise each is put in
    /// turn. A key too large fails the call before anything is written.
    pub fn put_packed(&mut self, tree: &str, entries: Packed) -> Result<()> {
        self.check_active()?;
        self.must_exist(tree)?;
        let max = self.shared.store.max_key();
        if let Some(&(len, _)) = entries.lens.iter().find(|(k, _)| *k as usize > max) {
            return Err(Error::KeyTooLarge {
                len: len as usize,
                max,
            });
        }
        let b = &self.buffered;
        let entries = if !b.created.is_empty() && b.created.contains(tree) {
            let ws = self.buffered.writes.entry(tree.to_string()).or_default();
            match ws.adopt(entries) {
                None => return Ok(()),
                Some(entries) => entries,
            }
        } else {
            entries
        };
        for (key, value) in entries.iter() {
            self.write(tree, key, Some(value))?;
        }
        Ok(())
    }

    /// Deletes `key` (deleting a missing key is not an error).
    pub fn delete(&mut self, tree: &str, key: &[u8]) -> Result<()> {
        self.write(tree, key, None)
    }

    fn write(&mut self, tree: &str, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        self.check_active()?;
        self.must_exist(tree)?;
        // Rows of a tree this transaction created stay invisible to others until it commits,
        // and the tree's name is locked: they need no row locks.
        let b = &self.buffered;
        let created_here = !b.created.is_empty() && b.created.contains(tree);
        let max = self.shared.store.max_key();
        if key.len() > max {
            return Err(Error::KeyTooLarge {
                len: key.len(),
                max,
            });
        }
        if !created_here && !b.writes.get(tree).is_some_and(|ws| ws.contains(key)) {
            self.lock_for_write(tree, key)?;
        }
        let ws = match self.buffered.writes.get_mut(tree) {
            Some(ws) => ws,
            None => self.buffered.writes.entry(tree.to_string()).or_default(),
        };
        ws.set(key, value);
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
        let pending = match self.buffered.writes.get(tree) {
            Some(ws) => ws.range(bound_ref(&start), bound_ref(&end)),
            None => WriteRange::empty(),
        };
        let committed = if self.reads_committed(tree) {
            Some(self.shared.store.raw_range(tree, start, end, reverse)?)
        } else {
            None
        };
        Ok(Scan {
            committed,
            peeked: None,
            pending: Directed {
                inner: pending,
                reverse,
            }
            .peekable(),
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

    fn batch(&mut self) -> Batch {
        let b = std::mem::take(&mut self.buffered);
        Batch {
            tree_ops: b.tree_ops,
            writes: b.writes,
        }
    }

    /// Commits; returns the commit timestamp (the snapshot timestamp for a read-only one).
    pub fn commit(mut self) -> Result<u64> {
        self.check_active()?;
        let batch = self.batch();
        let result = if batch.is_empty() {
            Ok(self.snapshot_ts)
        } else {
            let reads = std::mem::take(&mut self.reads);
            let check = |k: &LockKey| reads.covers(k);
            let validate: Option<&dyn Fn(&LockKey) -> bool> =
                (self.isolation == Isolation::Serializable).then_some(&check);
            self.shared.commit_batch(batch, validate, self.start_ts)
        };
        self.status = if result.is_ok() {
            Status::Committed
        } else {
            Status::RolledBack
        };
        self.shared.unregister(self.id, self.locked);
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
            self.shared.unregister(self.id, self.locked);
        }
    }

    /// Prepares for two-phase commit under global id `gid`: the writes become durable and the row
    /// locks stay held (across restarts too) until `Database::commit_prepared` or
    /// `rollback_prepared`.
    pub fn prepare(mut self, gid: &str) -> Result<()> {
        self.check_active()?;
        let ops = self.batch().into_ops();
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
        self.shared.unregister(self.id, self.locked);
        result
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        self.finish_rollback();
    }
}

fn bound_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    b.as_ref().map(Vec::as_slice)
}

/// Pending writes in the scan's direction.
struct Directed<'a> {
    inner: WriteRange<'a>,
    reverse: bool,
}

impl<'a> Iterator for Directed<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.reverse {
            self.inner.next_back()
        } else {
            self.inner.next()
        }
    }
}

/// An iterator over a transaction's view of a key range.
pub struct Scan<'a> {
    committed: Option<RawCursor<'a>>,
    /// The next committed entry visible at the snapshot, once read.
    peeked: Option<(Vec<u8>, Vec<u8>)>,
    pending: Peekable<Directed<'a>>,
    snapshot_ts: u64,
    reverse: bool,
}

impl Scan<'_> {
    /// The next committed entry with a value visible at the snapshot (keys whose visible version
    /// is a delete, or that have no visible version, are skipped).
    fn next_committed(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        if let Some(p) = self.peeked.take() {
            return Ok(Some(p));
        }
        let Some(cursor) = self.committed.as_mut() else {
            return Ok(None);
        };
        let ts = self.snapshot_ts;
        let next = cursor.next_with(|key, raw| {
            Ok::<_, Error>(match codec::visible_encoded(raw, ts)? {
                Some(Some(value)) => Some((key.to_vec(), value.to_vec())),
                _ => None,
            })
        });
        match next {
            Some(entry) => entry.map(Some),
            None => {
                self.committed = None;
                Ok(None)
            }
        }
    }

    fn step(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        loop {
            let committed = self.next_committed()?;
            let Some(&(pk, _)) = self.pending.peek() else {
                return Ok(committed);
            };
            let take_pending = match &committed {
                None => true,
                // Our own write replaces the committed entry.
                Some((ck, _)) => ck.as_slice() == pk || (pk < ck.as_slice()) != self.reverse,
            };
            if !take_pending {
                return Ok(committed);
            }
            let (pk, pv) = self.pending.next().expect("invariant: peeked");
            match committed {
                Some(c) if c.0 != pk => self.peeked = Some(c),
                _ => {}
            }
            if let Some(value) = pv {
                return Ok(Some((pk.to_vec(), value.to_vec())));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Database, Options};

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn key(i: u64) -> Vec<u8> {
        format!("{i:04}").into_bytes()
    }

    /// `adopt` takes packed entries as the write set only when they are an ascending run into
    /// an empty set; after it, the set behaves as if each entry had been `set`.
    #[test]
    fn adopt_takes_only_ascending_packed_entries_into_an_empty_set() {
        let pack = |entries: &[(&[u8], &[u8])]| {
            let mut packed = Packed::default();
            for (k, v) in entries {
                packed.push(k, v).unwrap();
            }
            packed
        };
        let refused = |entries: &[(&[u8], &[u8])]| {
            let packed = pack(entries);
            let mut ws = WriteSet::default();
            let back = ws.adopt(packed.clone());
            back == Some(packed) && ws.len() == 0
        };
        assert!(refused(&[(b"b", b"1"), (b"a", b"2")]), "descending");
        assert!(refused(&[(b"a", b"1"), (b"a", b"2")]), "a repeated key");
        let mut ws = WriteSet::default();
        ws.set(b"m", Some(b"0"));
        assert!(
            ws.adopt(pack(&[(b"a", b"1")])).is_some(),
            "a set with writes"
        );

        let mut ws = WriteSet::default();
        assert_eq!(
            ws.adopt(pack(&[(b"a", b""), (b"ab", b"22"), (b"b", b"3")])),
            None
        );
        assert_eq!(ws.get(b"ab"), Some(Some(&b"22"[..])));
        assert_eq!(ws.get(b"a"), Some(Some(&b""[..])));
        assert_eq!(ws.get(b"aa"), None);
        // Later writes: appended after the run, replaced in place, and inside it.
        ws.set(b"c", Some(b"4"));
        ws.set(b"ab", Some(b"x"));
        ws.set(b"aa", None);
        let all: Vec<(Vec<u8>, Option<Vec<u8>>)> = ws
            .range(Bound::Unbounded, Bound::Unbounded)
            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
            .collect();
        let e = |k: &[u8], v: Option<&[u8]>| (k.to_vec(), v.map(<[u8]>::to_vec));
        assert_eq!(
            all,
            vec![
                e(b"a", Some(b"")),
                e(b"aa", None),
                e(b"ab", Some(b"x")),
                e(b"b", Some(b"3")),
                e(b"c", Some(b"4")),
            ]
        );
    }

    /// The write set against a `BTreeMap`: ascending runs, keys inside and before the run,
    /// replacements, and ranges with every kind of bound, both ways.
    #[test]
    fn arena_chunks_hold_entries_of_every_size_in_place() {
        // Entries far past one chunk, one larger than a chunk, and empty ones.
        let mut ws = WriteSet::default();
        let value = |i: u64| -> Vec<u8> {
            match i {
                7 => vec![0xAB; 3 * MAX_CHUNK / 2],
                i if i % 5 == 0 => Vec::new(),
                i => vec![i as u8; (i as usize * 131) % 1500],
            }
        };
        for i in 0..4000u64 {
            ws.set(&key(i), (i % 97 != 3).then(|| value(i)).as_deref());
        }
        assert!(
            ws.arena.chunks.len() > 4,
            "{} chunks",
            ws.arena.chunks.len()
        );
        assert!(ws.arena.chunks.iter().all(|c| c.len() <= c.capacity()));
        let all: Vec<_> = ws
            .iter()
            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
            .collect();
        let want: Vec<_> = (0..4000u64)
            .map(|i| (key(i), (i % 97 != 3).then(|| value(i))))
            .collect();
        assert_eq!(all, want);
    }

    #[test]
    fn write_set_matches_a_model() {
        let mut rng = Rng(0xDEAD_BEEF_1234_5678);
        let mut ws = WriteSet::default();
        let mut model: BTreeMap<Vec<u8>, Pending> = BTreeMap::new();
        let mut next_run = 0u64;
        for step in 0..3000u64 {
            let k = match rng.next() % 4 {
                0 => rng.next() % 2000,
                _ => {
                    next_run += 1 + rng.next() % 3;
                    next_run % 2000
                }
            };
            let v = (step % 5 != 0).then(|| step.to_le_bytes().to_vec());
            ws.set(&key(k), v.as_deref());
            model.insert(key(k), v);
            let probe = key(rng.next() % 2100);
            assert_eq!(ws.get(&probe), model.get(&probe).map(Option::as_deref));
            if step % 50 == 0 {
                let bound = |rng: &mut Rng| match rng.next() % 3 {
                    0 => Bound::Unbounded,
                    1 => Bound::Included(key(rng.next() % 2100)),
                    _ => Bound::Excluded(key(rng.next() % 2100)),
                };
                let (lo, hi) = (bound(&mut rng), bound(&mut rng));
                let got: Vec<(&[u8], Option<&[u8]>)> =
                    ws.range(bound_ref(&lo), bound_ref(&hi)).collect();
                let back: Vec<(&[u8], Option<&[u8]>)> =
                    ws.range(bound_ref(&lo), bound_ref(&hi)).rev().collect();
                let valid = match (&lo, &hi) {
                    (Bound::Included(a), Bound::Included(b)) => a <= b,
                    (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
                    | (Bound::Excluded(a), Bound::Included(b)) => a < b,
                    _ => true,
                };
                let want: Vec<(&[u8], Option<&[u8]>)> = if valid {
                    model
                        .range((lo, hi))
                        .map(|(k, v)| (k.as_slice(), v.as_deref()))
                        .collect()
                } else {
                    Vec::new()
                };
                assert_eq!(got, want);
                assert_eq!(back, want.into_iter().rev().collect::<Vec<_>>());
            }
        }
        let all: Vec<(&[u8], Option<&[u8]>)> = ws.iter().collect();
        let want: Vec<(&[u8], Option<&[u8]>)> = model
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
            .collect();
        assert_eq!(all, want);
        // Rewriting keys of an ascending run over and over (values growing, shrinking,
        // deleted) keeps the arena bounded.
        let mut ws = WriteSet::default();
        for i in 0..100u64 {
            ws.set(&key(i), Some(b"x"));
        }
        for round in 0..2000usize {
            let k = key((round * 37 % 100) as u64);
            let v = vec![round as u8; round % 300];
            let v = (round % 11 != 0).then_some(v);
            ws.set(&k, v.as_deref());
            assert_eq!(ws.get(&k), Some(v.as_deref()));
        }
        assert_eq!(ws.tail.len(), 100);
        assert!(
            ws.arena.len < 100 * 310 * 3,
            "arena of {} bytes",
            ws.arena.len
        );
    }

    /// Scans merge the transaction's own writes over committed versions (visible at its
    /// snapshot only), both ways, with bounds.
    #[test]
    fn scans_merge_own_writes_over_the_snapshot() {
        let db = Database::memory(Options::default()).unwrap();
        let mut t = db.begin(Isolation::ReadCommitted).unwrap();
        t.create_tree("t").unwrap();
        t.commit().unwrap();
        let mut rng = Rng(0x0123_4567_89AB_CDEF);
        let mut committed: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for round in 0..4u64 {
            let mut t = db.begin(Isolation::ReadCommitted).unwrap();
            for _ in 0..300 {
                let k = key(rng.next() % 1000);
                if rng.next().is_multiple_of(4) {
                    t.delete("t", &k).unwrap();
                    committed.remove(&k);
                } else {
                    let v = format!("c{round}").into_bytes();
                    t.put("t", &k, &v).unwrap();
                    committed.insert(k, v);
                }
            }
            t.commit().unwrap();
        }
        let mut txn = db.begin(Isolation::RepeatableRead).unwrap();
        // A later commit is invisible to `txn`.
        let mut other = db.begin(Isolation::ReadCommitted).unwrap();
        other.put("t", &key(5000), b"later").unwrap();
        other.commit().unwrap();
        let mut view = committed.clone();
        for i in 0..400u64 {
            let k = if i % 3 == 0 {
                key(rng.next() % 1000)
            } else {
                key(i * 2)
            };
            if rng.next().is_multiple_of(3) {
                txn.delete("t", &k).unwrap();
                view.remove(&k);
            } else {
                let v = format!("own{i}").into_bytes();
                txn.put("t", &k, &v).unwrap();
                view.insert(k, v);
            }
        }
        for n in 0..40u64 {
            let lo = match n % 3 {
                0 => Bound::Unbounded,
                1 => Bound::Included(key(rng.next() % 1000)),
                _ => Bound::Excluded(key(rng.next() % 1000)),
            };
            let hi = match n % 4 {
                0 => Bound::Unbounded,
                1 | 2 => Bound::Excluded(key(rng.next() % 1100)),
                _ => Bound::Included(key(rng.next() % 1100)),
            };
            let reverse = n % 2 == 1;
            let got: Vec<(Vec<u8>, Vec<u8>)> = txn
                .scan("t", lo.clone(), hi.clone(), reverse)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let valid = match (&lo, &hi) {
                (Bound::Included(a), Bound::Included(b)) => a <= b,
                (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
                | (Bound::Excluded(a), Bound::Included(b)) => a < b,
                _ => true,
            };
            let mut want: Vec<(Vec<u8>, Vec<u8>)> = if valid {
                view.range((lo, hi))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            } else {
                Vec::new()
            };
            if reverse {
                want.reverse();
            }
            assert!(
                got == want,
                "scan {n}: {} entries, want {}",
                got.len(),
                want.len()
            );
        }
        for (k, v) in &view {
            assert_eq!(txn.get("t", k).unwrap().as_ref(), Some(v));
        }
        assert_eq!(txn.get("t", &key(5000)).unwrap(), None);
    }
}
