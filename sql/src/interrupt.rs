//! Interrupting a running statement: query cancel and `statement_timeout`.
//!
//! A session may carry an [`Interrupt`]; every transaction it begins is then wrapped in an
//! [`InterruptibleTxn`] that checks the interrupt before each storage call (get, scan, put,
//! delete). A scan reads in batches, so a long statement notices within one batch. The check is
//! an atomic load and, only while a deadline is armed, a clock read. A statement blocked on
//! another transaction's row lock is reached through the engine's wait check
//! ([`Transaction::set_wait_check`]), asked between the slices of its wait.
//!
//! Invariants: a canceled statement fails with 57014 (query_canceled) and leaves its transaction
//! to the session's usual error handling (autocommit: rolled back; in a block: failed state).
//! The cancel flag is cleared when the next statement starts ([`Interrupt::start_statement`]),
//! so a cancel that arrives between statements does not hit a later one (as in PostgreSQL).
//! Commit and rollback are never interrupted.

use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::error::{code, Error, Result};
use crate::kv::{Entries, Isolation, Packed, Transaction};

/// The shared flag and deadline a connection uses to stop its session's running statement.
#[derive(Debug)]
pub struct Interrupt {
    canceled: AtomicBool,
    /// Microseconds after `epoch` when the running statement times out; 0 = no deadline.
    deadline_micros: AtomicU64,
    epoch: Instant,
}

impl Default for Interrupt {
    fn default() -> Self {
        Interrupt {
            canceled: AtomicBool::new(false),
            deadline_micros: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl Interrupt {
    pub fn new() -> Arc<Interrupt> {
        Arc::new(Interrupt::default())
    }

    /// Asks the running statement (if any) to stop with 57014.
    pub fn cancel(&self) {
        self.canceled.store(true, Ordering::SeqCst);
    }

    /// Called as a statement starts: clears a stale cancel and arms the timeout
    /// (`timeout_ms` 0 = none).
    pub fn start_statement(&self, timeout_ms: u64) {
        self.canceled.store(false, Ordering::SeqCst);
        let deadline = if timeout_ms == 0 {
            0
        } else {
            (self.epoch.elapsed().as_micros() as u64)
                .saturating_add(timeout_ms.saturating_mul(1000))
                .max(1)
        };
        self.deadline_micros.store(deadline, Ordering::SeqCst);
    }

    /// Disarms the timeout once the statement is done.
    pub fn end_statement(&self) {
        self.deadline_micros.store(0, Ordering::SeqCst);
    }

    /// Fails with 57014 if the statement was canceled or ran past its deadline.
    pub fn check(&self) -> Result<()> {
        if self.canceled.load(Ordering::Relaxed) {
            return Err(Error::new(
                code::QUERY_CANCELED,
                "canceling statement due to user request",
            ));
        }
        let deadline = self.deadline_micros.load(Ordering::Relaxed);
        if deadline != 0 && self.epoch.elapsed().as_micros() as u64 >= deadline {
            return Err(Error::new(
                code::QUERY_CANCELED,
                "canceling statement due to statement timeout",
            ));
        }
        Ok(())
    }
}

/// A transaction that checks an [`Interrupt`] before every data access.
pub struct InterruptibleTxn {
    inner: Box<dyn Transaction>,
    interrupt: Arc<Interrupt>,
}

impl InterruptibleTxn {
    pub fn wrap(
        mut inner: Box<dyn Transaction>,
        interrupt: Arc<Interrupt>,
    ) -> Box<dyn Transaction> {
        let check = interrupt.clone();
        inner.set_wait_check(Arc::new(move || check.check().map_err(|e| e.message)));
        Box::new(InterruptibleTxn { inner, interrupt })
    }
}

impl Transaction for InterruptibleTxn {
    fn isolation(&self) -> Isolation {
        self.inner.isolation()
    }
    fn get(&mut self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.interrupt.check()?;
        self.inner.get(tree, key)
    }
    fn get_for_update(&mut self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.interrupt.check()?;
        self.inner.get_for_update(tree, key)
    }
    fn put(&mut self, tree: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.interrupt.check()?;
        self.inner.put(tree, key, value)
    }
    fn put_packed(&mut self, tree: &str, entries: Packed) -> Result<()> {
        self.interrupt.check()?;
        self.inner.put_packed(tree, entries)
    }
    fn delete(&mut self, tree: &str, key: &[u8]) -> Result<()> {
        self.interrupt.check()?;
        self.inner.delete(tree, key)
    }
    fn scan(
        &mut self,
        tree: &str,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        reverse: bool,
        limit: usize,
    ) -> Result<Entries> {
        self.interrupt.check()?;
        self.inner.scan(tree, start, end, reverse, limit)
    }
    fn tree_exists(&self, tree: &str) -> bool {
        self.inner.tree_exists(tree)
    }
    fn create_tree(&mut self, tree: &str) -> Result<()> {
        self.inner.create_tree(tree)
    }
    fn drop_tree(&mut self, tree: &str) -> Result<()> {
        self.inner.drop_tree(tree)
    }
    fn new_statement(&mut self) {
        self.inner.new_statement()
    }
    fn savepoint(&mut self) -> usize {
        self.inner.savepoint()
    }
    fn rollback_to(&mut self, depth: usize) -> Result<()> {
        self.inner.rollback_to(depth)
    }
    fn release(&mut self, depth: usize) {
        self.inner.release(depth)
    }
    fn commit(self: Box<Self>) -> Result<()> {
        self.inner.commit()
    }
    fn rollback(self: Box<Self>) -> Result<()> {
        self.inner.rollback()
    }
    fn set_wait_check(&mut self, check: strata_engine::WaitCheck) {
        self.inner.set_wait_check(check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_is_cleared_by_the_next_statement() {
        let i = Interrupt::new();
        i.cancel();
        assert_eq!(i.check().unwrap_err().code, code::QUERY_CANCELED);
        i.start_statement(0);
        assert!(i.check().is_ok());
    }

    #[test]
    fn a_zero_timeout_never_fires() {
        let i = Interrupt::new();
        i.start_statement(0);
        assert!(i.check().is_ok());
        i.end_statement();
        assert!(i.check().is_ok());
    }
}
