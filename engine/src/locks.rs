//! Row locks: exclusive locks on (tree, key), held from the first write until commit or rollback
//! (a prepared transaction keeps them, even across a restart), with deadlock detection.
//!
//! Readers never take locks (MVCC snapshots), so locks only order writers. A writer that finds a
//! key locked waits on a condition variable. Before every wait it follows the waits-for chain from
//! the holder; if the chain comes back to the waiter, the waiter is the deadlock victim and gets
//! `Error::Deadlock` (PostgreSQL also aborts the transaction that detects the cycle).
//!
//! STRUCTURE. A row is named by its tree and key. Rows go to one hash index shared by all
//! (`holders`: hash of the name -> rows), except that once a transaction holds `SHARED_ROWS`
//! rows, its further rows that come in ascending order (a bulk load) are appended to its own
//! sorted run (`RowRun`) instead: no cache miss per row in a big index, and releasing drops the
//! run whole. Finding a row's holder looks in the index, then in the few transactions' runs (a
//! binary search each).
//!
//! INVARIANTS: 1. a key has at most one holder; 2. a transaction waits for at most one other, so
//! the waits-for graph is a set of chains and a cycle is found by walking one chain; 3. releasing a
//! transaction's locks wakes every waiter; 4. a waiter wakes at least every `WAIT_SLICE` and asks
//! its [`WaitCheck`] (query cancel, statement timeout) whether to go on waiting, so a wait is
//! never longer than one slice past the moment the caller wants it to stop.

use std::collections::hash_map::{Entry, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Asked by a waiting transaction between slices of its wait: `Err(message)` gives the wait up
/// with [`Error::Canceled`] (the SQL layer's query cancel and statement timeout).
pub type WaitCheck = std::sync::Arc<dyn Fn() -> std::result::Result<(), String> + Send + Sync>;

/// The longest a waiter sleeps before looking again (at its deadline and its [`WaitCheck`]).
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// A transaction's identity in the lock table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxnId(pub u64);

/// A lockable row.
pub type LockKey = (String, Vec<u8>);

/// Rows a transaction puts in the shared index before it starts its own run.
const SHARED_ROWS: usize = 256;

/// The name of a row: tree length (u32 LE), tree, key. Written into `out`.
fn row_name(out: &mut Vec<u8>, tree: &str, key: &[u8]) {
    out.clear();
    out.extend_from_slice(&(tree.len() as u32).to_le_bytes());
    out.extend_from_slice(tree.as_bytes());
    out.extend_from_slice(key);
}

/// A row in the shared index: its name and holder.
struct Row {
    name: Box<[u8]>,
    holder: TxnId,
}

/// The rows of the shared index whose names share one hash (almost always exactly one).
enum Bucket {
    One(Row),
    Many(Vec<Row>),
}

impl Bucket {
    fn find(&self, name: &[u8]) -> Option<TxnId> {
        match self {
            Bucket::One(r) => (*r.name == *name).then_some(r.holder),
            Bucket::Many(rows) => rows.iter().find(|r| *r.name == *name).map(|r| r.holder),
        }
    }

    fn add(&mut self, row: Row) {
        match self {
            Bucket::One(_) => {
                let Bucket::One(first) = std::mem::replace(self, Bucket::Many(Vec::new())) else {
                    unreachable!("matched One");
                };
                *self = Bucket::Many(vec![first, row]);
            }
            Bucket::Many(rows) => rows.push(row),
        }
    }

    /// Drops the rows of `txn`; true when the bucket is empty afterwards.
    fn release(&mut self, txn: TxnId) -> bool {
        match self {
            Bucket::One(r) => r.holder == txn,
            Bucket::Many(rows) => {
                rows.retain(|r| r.holder != txn);
                rows.is_empty()
            }
        }
    }

    fn transfer(&mut self, from: TxnId, to: TxnId) {
        let rows = match self {
            Bucket::One(r) => std::slice::from_mut(r),
            Bucket::Many(rows) => rows.as_mut_slice(),
        };
        for r in rows.iter_mut().filter(|r| r.holder == from) {
            r.holder = to;
        }
    }
}

/// A run of one transaction's rows in ascending name order, in an arena (name `i` of `bytes`
/// ends at `ends[i]`): appending is cheap and the rows are found by binary search.
#[derive(Default)]
struct RowRun {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl RowRun {
    fn name(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    fn last(&self) -> Option<&[u8]> {
        self.ends.len().checked_sub(1).map(|i| self.name(i))
    }

    fn contains(&self, name: &[u8]) -> bool {
        match self.last() {
            Some(last) if name <= last && name >= self.name(0) => {}
            _ => return false,
        }
        let (mut lo, mut hi) = (0, self.ends.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.name(mid).cmp(name) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }

    /// Appends `name` if it is past the last one; false (nothing done) if not.
    fn push(&mut self, name: &[u8]) -> bool {
        if self.last().is_some_and(|last| name <= last) {
            return false;
        }
        self.bytes.extend_from_slice(name);
        self.ends.push(self.bytes.len());
        true
    }
}

/// For maps keyed by a hash that is well mixed already: the hash is its own hash.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = fold_mul(self.0 ^ n, 0x9E37_79B9_7F4A_7C15);
    }
}

/// Identity hasher for `holders`, whose keys are row hashes already.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// 64x64 -> 128-bit multiply, folded: the mixing step of the row hash.
fn fold_mul(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

/// A keyed hash of a row name, eight bytes at a time. The key comes from a per-table random
/// seed, so callers cannot aim keys at one bucket.
fn row_hash(seed: u64, name: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = fold_mul(seed ^ name.len() as u64, K);
    let mut chunks = name.chunks_exact(8);
    for c in &mut chunks {
        let x = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = fold_mul(h ^ x, K ^ seed);
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 8];
    tail[..rest.len()].copy_from_slice(rest);
    fold_mul(h ^ u64::from_le_bytes(tail), K ^ seed)
}

/// The rows a transaction holds.
#[derive(Default)]
struct Held {
    /// Hashes of its rows in the shared index (each row is stored once, in `holders`).
    hashes: Vec<u64>,
    /// Whether it has its own run (an entry of `Table::own`).
    own: bool,
}

struct Table {
    /// Hash seed of this table.
    seed: u64,
    /// The shared index: rows by the hash of their name.
    holders: HashMap<u64, Bucket, BuildHasherDefault<Identity>>,
    held: HashMap<TxnId, Held, BuildHasherDefault<PreHashed>>,
    /// The transactions with their own runs, and the runs (few entries).
    own: Vec<(TxnId, RowRun)>,
    waits_for: HashMap<TxnId, TxnId, BuildHasherDefault<PreHashed>>,
    /// The name of the row being looked up.
    name: Vec<u8>,
}

impl Default for Table {
    fn default() -> Self {
        Table {
            seed: std::collections::hash_map::RandomState::new().hash_one(0x5EED_u64) | 1,
            holders: HashMap::default(),
            held: HashMap::default(),
            own: Vec::new(),
            waits_for: HashMap::default(),
            name: Vec::new(),
        }
    }
}

impl Table {
    /// The holder of the row named `self.name` (of hash `hash`).
    fn holder(&self, hash: u64) -> Option<TxnId> {
        if let Some(b) = self.holders.get(&hash) {
            if let Some(holder) = b.find(&self.name) {
                return Some(holder);
            }
        }
        self.own
            .iter()
            .find(|(_, rows)| rows.contains(&self.name))
            .map(|(txn, _)| *txn)
    }

    /// Records `txn` as the holder of the row named `self.name` (of hash `hash`), free now.
    fn take(&mut self, txn: TxnId, hash: u64) {
        let held = self.held.entry(txn).or_default();
        if held.hashes.len() >= SHARED_ROWS {
            held.own = true;
            let run = match self.own.iter().position(|(t, _)| *t == txn) {
                Some(i) => &mut self.own[i].1,
                None => {
                    self.own.push((txn, RowRun::default()));
                    &mut self.own.last_mut().expect("just pushed").1
                }
            };
            if run.push(&self.name) {
                return;
            }
        }
        held.hashes.push(hash);
        let row = Row {
            name: self.name.as_slice().into(),
            holder: txn,
        };
        match self.holders.entry(hash) {
            Entry::Vacant(e) => {
                e.insert(Bucket::One(row));
            }
            Entry::Occupied(mut e) => e.get_mut().add(row),
        }
    }
}

/// The lock table.
#[derive(Default)]
pub struct LockTable {
    table: Mutex<Table>,
    released: Condvar,
}

/// How a lock was obtained.
#[derive(Debug, PartialEq, Eq)]
pub enum Acquired {
    /// Already held by this transaction.
    AlreadyHeld,
    /// Free at once.
    Free,
    /// Obtained after waiting for another transaction to finish.
    AfterWait,
}

impl LockTable {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table
            .lock()
            .expect("invariant: lock table not poisoned")
    }

    /// Takes the lock on `key` for `txn`, waiting while another transaction holds it.
    pub fn acquire(
        &self,
        txn: TxnId,
        key: &LockKey,
        timeout: Option<Duration>,
    ) -> Result<Acquired> {
        self.acquire_row(txn, &key.0, &key.1, timeout, None)
    }

    /// Takes the lock on row `key` of `tree` for `txn`, waiting while another transaction holds
    /// it, until `timeout` (55P03) or until `check` says stop (57014).
    pub fn acquire_row(
        &self,
        txn: TxnId,
        tree: &str,
        key: &[u8],
        timeout: Option<Duration>,
        check: Option<&WaitCheck>,
    ) -> Result<Acquired> {
        let mut table = self.lock();
        let mut deadline = None;
        let mut waited = false;
        loop {
            let t = &mut *table;
            // Set again after every wait: other callers use the buffer meanwhile.
            row_name(&mut t.name, tree, key);
            let hash = row_hash(t.seed, &t.name);
            match t.holder(hash) {
                None => {
                    t.take(txn, hash);
                    if waited {
                        t.waits_for.remove(&txn);
                        return Ok(Acquired::AfterWait);
                    }
                    return Ok(Acquired::Free);
                }
                Some(holder) if holder == txn => return Ok(Acquired::AlreadyHeld),
                Some(holder) => {
                    // Walk the chain from the holder: reaching ourselves means a cycle.
                    let mut at = holder;
                    let mut steps = 0;
                    while let Some(&next) = t.waits_for.get(&at) {
                        if next == txn || steps > t.waits_for.len() {
                            t.waits_for.remove(&txn);
                            return Err(Error::Deadlock(format!(
                                "transaction {} waits for {} which waits (through others) for it",
                                txn.0, holder.0
                            )));
                        }
                        at = next;
                        steps += 1;
                    }
                    if let Some(Err(why)) = check.map(|c| c()) {
                        t.waits_for.remove(&txn);
                        return Err(Error::Canceled(why));
                    }
                    t.waits_for.insert(txn, holder);
                    waited = true;
                    let d = *deadline.get_or_insert_with(|| timeout.map(|t| Instant::now() + t));
                    let wait = match d {
                        Some(d) => {
                            let now = Instant::now();
                            if now >= d {
                                t.waits_for.remove(&txn);
                                return Err(Error::LockTimeout(format!(
                                    "transaction {} waited too long for a row locked by {}",
                                    txn.0, holder.0
                                )));
                            }
                            (d - now).min(WAIT_SLICE)
                        }
                        None => WAIT_SLICE,
                    };
                    table = self
                        .released
                        .wait_timeout(table, wait)
                        .expect("invariant: lock table not poisoned")
                        .0;
                }
            }
        }
    }

    /// The holder of `key`, if any.
    pub fn holder(&self, key: &LockKey) -> Option<TxnId> {
        let mut table = self.lock();
        row_name(&mut table.name, &key.0, &key.1);
        let hash = row_hash(table.seed, &table.name);
        table.holder(hash)
    }

    /// Releases every lock of `txn` and wakes the waiters.
    pub fn release_all(&self, txn: TxnId) {
        let mut table = self.lock();
        let t = &mut *table;
        let mut own = Vec::new();
        if let Some(held) = t.held.remove(&txn) {
            for h in held.hashes {
                if let Entry::Occupied(mut e) = t.holders.entry(h) {
                    if e.get_mut().release(txn) {
                        e.remove();
                    }
                }
            }
            if held.own {
                while let Some(i) = t.own.iter().position(|(o, _)| *o == txn) {
                    own.push(t.own.swap_remove(i));
                }
            }
        }
        let had_waiters = !t.waits_for.is_empty();
        t.waits_for.remove(&txn);
        drop(table);
        // A large run is freed outside the lock.
        drop(own);
        if had_waiters {
            self.released.notify_all();
        }
    }

    /// Moves every lock of `from` to `to` (a transaction becoming a prepared one).
    pub fn transfer(&self, from: TxnId, to: TxnId) {
        let mut table = self.lock();
        let t = &mut *table;
        if let Some(held) = t.held.remove(&from) {
            for &h in &held.hashes {
                if let Some(b) = t.holders.get_mut(&h) {
                    b.transfer(from, to);
                }
            }
            let target = t.held.entry(to).or_default();
            target.hashes.extend(held.hashes);
            target.own |= held.own;
            for (owner, _) in t.own.iter_mut().filter(|(o, _)| *o == from) {
                *owner = to;
            }
        }
        drop(table);
        self.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn key(k: &str) -> LockKey {
        ("t".into(), k.as_bytes().to_vec())
    }

    #[test]
    fn waits_until_released() {
        let locks = Arc::new(LockTable::default());
        assert_eq!(
            locks.acquire(TxnId(1), &key("a"), None).unwrap(),
            Acquired::Free
        );
        assert_eq!(
            locks.acquire(TxnId(1), &key("a"), None).unwrap(),
            Acquired::AlreadyHeld
        );
        let l2 = locks.clone();
        let waiter = std::thread::spawn(move || l2.acquire(TxnId(2), &key("a"), None).unwrap());
        // Bounded: give the waiter time to block, then release.
        for _ in 0..100 {
            if locks.lock().waits_for.contains_key(&TxnId(2)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        locks.release_all(TxnId(1));
        assert_eq!(waiter.join().unwrap(), Acquired::AfterWait);
        assert_eq!(locks.holder(&key("a")), Some(TxnId(2)));
    }

    #[test]
    fn deadlock_is_detected() {
        let locks = Arc::new(LockTable::default());
        locks.acquire(TxnId(1), &key("a"), None).unwrap();
        locks.acquire(TxnId(2), &key("b"), None).unwrap();
        let l2 = locks.clone();
        let t1 = std::thread::spawn(move || l2.acquire(TxnId(1), &key("b"), None));
        for _ in 0..100 {
            if locks.lock().waits_for.contains_key(&TxnId(1)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let err = locks.acquire(TxnId(2), &key("a"), None).unwrap_err();
        assert!(matches!(err, Error::Deadlock(_)), "{err}");
        locks.release_all(TxnId(2));
        assert_eq!(t1.join().unwrap().unwrap(), Acquired::AfterWait);
    }

    /// Invariant 4: a waiter whose wait check says stop (a query cancel) gives up with
    /// `Canceled` while the holder still holds the row, and is no longer a waiter.
    #[test]
    fn a_wait_check_stops_a_waiter() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let locks = Arc::new(LockTable::default());
        locks.acquire(TxnId(1), &key("a"), None).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let check: WaitCheck = Arc::new(move || {
            if flag.load(Ordering::SeqCst) {
                Err("canceling statement due to user request".to_string())
            } else {
                Ok(())
            }
        });
        let l2 = locks.clone();
        let waiter =
            std::thread::spawn(move || l2.acquire_row(TxnId(2), "t", b"a", None, Some(&check)));
        for _ in 0..1000 {
            if locks.lock().waits_for.contains_key(&TxnId(2)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        stop.store(true, Ordering::SeqCst);
        let err = waiter.join().unwrap().unwrap_err();
        assert!(matches!(err, Error::Canceled(_)), "{err}");
        assert!(!locks.lock().waits_for.contains_key(&TxnId(2)));
        assert_eq!(locks.holder(&key("a")), Some(TxnId(1)));
    }

    #[test]
    fn timeout_and_transfer() {
        let locks = LockTable::default();
        locks.acquire(TxnId(1), &key("a"), None).unwrap();
        let err = locks
            .acquire(TxnId(2), &key("a"), Some(Duration::from_millis(20)))
            .unwrap_err();
        assert!(matches!(err, Error::LockTimeout(_)));
        locks.transfer(TxnId(1), TxnId(9));
        assert_eq!(locks.holder(&key("a")), Some(TxnId(9)));
        locks.release_all(TxnId(9));
        assert_eq!(locks.holder(&key("a")), None);
    }

    /// Past `SHARED_ROWS` a transaction's ascending rows go to its own run, the others to the
    /// shared index: all are found, by the holder and by others, moved and released.
    #[test]
    fn many_rows_of_one_transaction() {
        let locks = LockTable::default();
        let mut order: Vec<u32> = (0..3000).collect();
        // Ascending runs interrupted by keys from earlier in the order.
        order.swap(1000, 2500);
        order.swap(1700, 400);
        for k in &order {
            let key = ("t".to_string(), k.to_be_bytes().to_vec());
            assert_eq!(locks.acquire(TxnId(1), &key, None).unwrap(), Acquired::Free);
        }
        for k in (0..3000u32).step_by(7) {
            let key = ("t".to_string(), k.to_be_bytes().to_vec());
            assert_eq!(
                locks.acquire(TxnId(1), &key, None).unwrap(),
                Acquired::AlreadyHeld
            );
            assert_eq!(locks.holder(&key), Some(TxnId(1)));
            let err = locks
                .acquire(TxnId(2), &key, Some(Duration::from_millis(1)))
                .unwrap_err();
            assert!(matches!(err, Error::LockTimeout(_)), "{err}");
        }
        let other = ("u".to_string(), 5u32.to_be_bytes().to_vec());
        assert_eq!(locks.holder(&other), None);
        locks.acquire(TxnId(2), &other, None).unwrap();
        locks.transfer(TxnId(1), TxnId(9));
        let key = ("t".to_string(), 2999u32.to_be_bytes().to_vec());
        assert_eq!(locks.holder(&key), Some(TxnId(9)));
        locks.release_all(TxnId(9));
        assert_eq!(locks.holder(&key), None);
        assert_eq!(locks.holder(&other), Some(TxnId(2)));
        assert_eq!(locks.acquire(TxnId(3), &key, None).unwrap(), Acquired::Free);
    }
}
