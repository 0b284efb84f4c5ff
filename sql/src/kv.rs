//! The storage boundary of the SQL layer: a small transactional key-value trait over named trees.
//!
//! The planner and executor reach storage only through [`Storage`] and [`Transaction`]. The local
//! engine implements them here; the cluster's distributed transaction implements them later, so
//! the same SQL runs embedded, on one server and on a cluster.

use std::ops::Bound;
use std::sync::Arc;

pub use strata_engine::{Isolation, Packed};

use crate::error::Result;

/// Key-value pairs in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A transaction over named, ordered trees.
pub trait Transaction: Send {
    fn isolation(&self) -> Isolation;
    /// The value at this transaction's snapshot, with its own writes on top.
    fn get(&mut self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// The newest committed value, locked for writing by this transaction (waits for a
    /// concurrent writer; under REPEATABLE READ a newer commit is a serialization failure).
    fn get_for_update(&mut self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;
    fn put(&mut self, tree: &str, key: &[u8], value: &[u8]) -> Result<()>;
    /// Puts many entries into one tree. The engine takes ascending entries into a tree created
    /// in this transaction as they are, without copying them (an index build).
    fn put_packed(&mut self, tree: &str, entries: Packed) -> Result<()> {
        for (k, v) in entries.iter() {
            self.put(tree, k, v)?;
        }
        Ok(())
    }
    fn delete(&mut self, tree: &str, key: &[u8]) -> Result<()>;
    /// Up to `limit` entries in the range, ascending (or descending if `reverse`).
    fn scan(
        &mut self,
        tree: &str,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        reverse: bool,
        limit: usize,
    ) -> Result<Entries>;
    fn tree_exists(&self, tree: &str) -> bool;
    fn create_tree(&mut self, tree: &str) -> Result<()>;
    fn drop_tree(&mut self, tree: &str) -> Result<()>;
    /// Marks a statement boundary (READ COMMITTED takes a new snapshot).
    fn new_statement(&mut self);
    /// Remembers the current state; returns its depth (1-based).
    fn savepoint(&mut self) -> usize;
    /// Undoes everything since savepoint `depth` (which stays defined).
    fn rollback_to(&mut self, depth: usize) -> Result<()>;
    /// Forgets savepoints at and above `depth`, keeping their writes.
    fn release(&mut self, depth: usize);
    fn commit(self: Box<Self>) -> Result<()>;
    fn rollback(self: Box<Self>) -> Result<()>;
    /// Makes waits for row locks ask `check` now and then and give up with 57014 when it says
    /// stop (query cancel, statement timeout). Storage that never waits ignores it.
    fn set_wait_check(&mut self, _check: strata_engine::WaitCheck) {}
}

/// What [`for_each_entry`] calls with each (key, value).
pub type EntryVisitor<'a> = dyn FnMut(&mut dyn Transaction, Vec<u8>, Vec<u8>) -> Result<()> + 'a;

/// Visits every entry of `tree` in key order, reading it in batches. `visit` gets the
/// transaction too: it may write, even to the same tree (keys already passed are not revisited).
pub fn for_each_entry(
    txn: &mut dyn Transaction,
    tree: &str,
    visit: &mut EntryVisitor<'_>,
) -> Result<()> {
    const BATCH: usize = 1024;
    let mut start = Bound::Unbounded;
    loop {
        let batch = txn.scan(tree, start, Bound::Unbounded, false, BATCH)?;
        let full = batch.len() == BATCH;
        let last = batch.last().map(|(k, _)| k.clone());
        for (k, v) in batch {
            visit(txn, k, v)?;
        }
        match last {
            Some(k) if full => start = Bound::Excluded(k),
            _ => return Ok(()),
        }
    }
}

/// Something that starts transactions.
pub trait Storage: Send + Sync {
    fn begin(&self, isolation: Isolation) -> Result<Box<dyn Transaction>>;
    /// Forces a checkpoint (a no-op where it means nothing).
    fn checkpoint(&self) -> Result<()>;
}

/// The local engine as SQL storage.
pub struct EngineStorage(pub Arc<strata_engine::Database>);

impl Storage for EngineStorage {
    fn begin(&self, isolation: Isolation) -> Result<Box<dyn Transaction>> {
        Ok(Box::new(EngineTxn {
            txn: self.0.begin(isolation)?,
            savepoints: Vec::new(),
        }))
    }
    fn checkpoint(&self) -> Result<()> {
        Ok(self.0.checkpoint()?)
    }
}

struct EngineTxn {
    txn: strata_engine::Txn,
    savepoints: Vec<strata_engine::Savepoint>,
}

impl Transaction for EngineTxn {
    fn isolation(&self) -> Isolation {
        self.txn.isolation()
    }
    fn get(&mut self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.txn.get(tree, key)?)
    }
    fn get_for_update(&mut self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.txn.get_for_update(tree, key)?)
    }
    fn put(&mut self, tree: &str, key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self.txn.put(tree, key, value)?)
    }
    fn put_packed(&mut self, tree: &str, entries: Packed) -> Result<()> {
        Ok(self.txn.put_packed(tree, entries)?)
    }
    fn delete(&mut self, tree: &str, key: &[u8]) -> Result<()> {
        Ok(self.txn.delete(tree, key)?)
    }
    fn scan(
        &mut self,
        tree: &str,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        reverse: bool,
        limit: usize,
    ) -> Result<Entries> {
        let scan = self.txn.scan(tree, start, end, reverse)?;
        let mut out = Vec::with_capacity(limit.min(1024));
        for entry in scan.take(limit) {
            out.push(entry?);
        }
        Ok(out)
    }
    fn tree_exists(&self, tree: &str) -> bool {
        self.txn.tree_exists(tree)
    }
    fn create_tree(&mut self, tree: &str) -> Result<()> {
        Ok(self.txn.create_tree(tree)?)
    }
    fn drop_tree(&mut self, tree: &str) -> Result<()> {
        Ok(self.txn.drop_tree(tree)?)
    }
    fn new_statement(&mut self) {
        self.txn.new_statement()
    }
    fn savepoint(&mut self) -> usize {
        self.savepoints.push(self.txn.savepoint());
        self.savepoints.len()
    }
    fn rollback_to(&mut self, depth: usize) -> Result<()> {
        self.savepoints.truncate(depth);
        let sp = self
            .savepoints
            .last()
            .expect("invariant: savepoint depth exists");
        Ok(self.txn.rollback_to(sp)?)
    }
    fn release(&mut self, depth: usize) {
        self.savepoints.truncate(depth.saturating_sub(1));
    }
    fn commit(self: Box<Self>) -> Result<()> {
        self.txn.commit()?;
        Ok(())
    }
    fn rollback(self: Box<Self>) -> Result<()> {
        Ok(self.txn.rollback()?)
    }
    fn set_wait_check(&mut self, check: strata_engine::WaitCheck) {
        self.txn.set_wait_check(check)
    }
}
