//! Row locks: exclusive locks on (tree, key), held from the first write until commit or rollback
//! (a prepared transaction keeps them, even across a restart), with deadlock detection.
//!
//! Readers never take locks (MVCC snapshots), so locks only order writers. A writer that finds a
//! key locked waits on a condition variable. Before every wait it follows the waits-for chain from
//! the holder; if the chain comes back to the waiter, the waiter is the deadlock victim and gets
//! `Error::Deadlock` (PostgreSQL also aborts the transaction that detects the cycle).
//!
//! INVARIANTS: 1. a key has at most one holder; 2. a transaction waits for at most one other, so
//! the waits-for graph is a set of chains and a cycle is found by walking one chain; 3. releasing a
//! transaction's locks wakes every waiter.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A transaction's identity in the lock table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxnId(pub u64);

/// A lockable row.
pub type LockKey = (String, Vec<u8>);

#[derive(Default)]
struct Table {
    holders: HashMap<LockKey, TxnId>,
    held: HashMap<TxnId, Vec<LockKey>>,
    waits_for: HashMap<TxnId, TxnId>,
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
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut table = self.lock();
        let mut waited = false;
        loop {
            match table.holders.get(key).copied() {
                None => {
                    table.holders.insert(key.clone(), txn);
                    table.held.entry(txn).or_default().push(key.clone());
                    table.waits_for.remove(&txn);
                    return Ok(if waited {
                        Acquired::AfterWait
                    } else {
                        Acquired::Free
                    });
                }
                Some(holder) if holder == txn => return Ok(Acquired::AlreadyHeld),
                Some(holder) => {
                    // Walk the chain from the holder: reaching ourselves means a cycle.
                    let mut at = holder;
                    let mut steps = 0;
                    while let Some(&next) = table.waits_for.get(&at) {
                        if next == txn || steps > table.waits_for.len() {
                            table.waits_for.remove(&txn);
                            return Err(Error::Deadlock(format!(
                                "transaction {} waits for {} which waits (through others) for it",
                                txn.0, holder.0
                            )));
                        }
                        at = next;
                        steps += 1;
                    }
                    table.waits_for.insert(txn, holder);
                    waited = true;
                    let wait = match deadline {
                        Some(d) => {
                            let now = Instant::now();
                            if now >= d {
                                table.waits_for.remove(&txn);
                                return Err(Error::LockTimeout(format!(
                                    "transaction {} waited too long for a row locked by {}",
                                    txn.0, holder.0
                                )));
                            }
                            (d - now).min(Duration::from_millis(100))
                        }
                        None => Duration::from_millis(100),
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
        self.lock().holders.get(key).copied()
    }

    /// Releases every lock of `txn` and wakes the waiters.
    pub fn release_all(&self, txn: TxnId) {
        let mut table = self.lock();
        if let Some(keys) = table.held.remove(&txn) {
            for k in keys {
                table.holders.remove(&k);
            }
        }
        table.waits_for.remove(&txn);
        drop(table);
        self.released.notify_all();
    }

    /// Moves every lock of `from` to `to` (a transaction becoming a prepared one).
    pub fn transfer(&self, from: TxnId, to: TxnId) {
        let mut table = self.lock();
        if let Some(keys) = table.held.remove(&from) {
            for k in &keys {
                table.holders.insert(k.clone(), to);
            }
            table.held.entry(to).or_default().extend(keys);
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
}
