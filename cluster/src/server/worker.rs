//! The session thread of one connection.
//!
//! A [`Session`] is synchronous and may block for a long time (row locks, fsync, big scans), so
//! it never runs on a tokio worker: each connection owns one dedicated OS thread that owns its
//! session, and the async connection task sends it jobs ([`SessionWorker::run`]) and awaits
//! the answer. Jobs of one connection run one at a time, in order.
//!
//! Invariants:
//! - When the connection goes away (its [`SessionWorker`] is dropped, whether the client said
//!   Terminate, vanished, or the server is shutting down), the thread finishes the job it is
//!   running, rolls back any open transaction (releasing its row locks) and exits.
//! - `idle_in_transaction_session_timeout`: if the session sits in a transaction with no job
//!   for longer than that, the thread rolls the transaction back, marks the worker
//!   terminated and fires `on_idle_timeout` so the connection is closed.
//! - A panic inside the SQL layer ends this thread only: the job's caller gets an error and
//!   the connection is closed; the open transaction is rolled back as the session drops.
//! - [`ServerCounters::sessions`] counts live session threads, so a graceful shutdown can wait
//!   for every transaction to be finished or rolled back before the final checkpoint.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use strata_sql::interrupt::Interrupt;
use strata_sql::{Session, Shared, TxnStatus};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(&mut Session) + Send>;

/// Counts shared by all connections of a server.
#[derive(Debug, Default)]
pub struct ServerCounters {
    /// Session threads alive.
    pub sessions: AtomicUsize,
}

/// Why a job did not run to an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerGone {
    /// The session thread ended (idle-in-transaction timeout, or a panic).
    Terminated,
}

/// The handle a connection uses to run work on its session thread.
pub struct SessionWorker {
    jobs: mpsc::Sender<Job>,
    interrupt: Arc<Interrupt>,
    /// The session's transaction status after the last job (0 idle, 1 in a block, 2 failed).
    status: Arc<AtomicU8>,
    terminated: Arc<AtomicBool>,
}

fn status_code(s: TxnStatus) -> u8 {
    match s {
        TxnStatus::Idle => 0,
        TxnStatus::InTransaction => 1,
        TxnStatus::Failed => 2,
    }
}

/// Parses a PostgreSQL duration setting (`0`, `150`, `150ms`, `2s`, `1min`, `1h`) to
/// milliseconds; a bare number is milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let t = text.trim().trim_matches('\'').trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" => 1,
        "s" => 1000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "us" => return Some(n / 1000),
        _ => return None,
    };
    n.checked_mul(factor)
}

fn setting_ms(session: &Session, name: &str) -> u64 {
    session
        .settings
        .get(name)
        .and_then(|v| parse_duration_ms(v))
        .unwrap_or(0)
}

impl SessionWorker {
    /// Starts the session thread. `on_idle_timeout` runs (on that thread) when an
    /// idle-in-transaction timeout ends the session.
    pub fn spawn(
        shared: Arc<Shared>,
        counters: Arc<ServerCounters>,
        defaults: Vec<(String, String)>,
        name: String,
        on_idle_timeout: Box<dyn FnOnce() + Send>,
    ) -> std::io::Result<SessionWorker> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let interrupt = Interrupt::new();
        let status = Arc::new(AtomicU8::new(0));
        let terminated = Arc::new(AtomicBool::new(false));
        let worker = SessionWorker {
            jobs,
            interrupt: interrupt.clone(),
            status: status.clone(),
            terminated: terminated.clone(),
        };
        counters.sessions.fetch_add(1, Ordering::SeqCst);
        let thread_counters = counters.clone();
        let spawned = std::thread::Builder::new()
            .name(name)
            .stack_size(16 << 20)
            .spawn(move || {
                let mut session = Session::new(shared);
                session.set_interrupt(interrupt.clone());
                for (k, v) in defaults {
                    session.settings.insert(k, v);
                }
                session_loop(
                    &mut session,
                    &rx,
                    &interrupt,
                    &status,
                    &terminated,
                    on_idle_timeout,
                );
                if session.status() != TxnStatus::Idle {
                    if let Err(e) = session.execute("ROLLBACK") {
                        tracing::warn!(error = %e, "rollback of an abandoned transaction failed");
                    }
                }
                drop(session);
                thread_counters.sessions.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            counters.sessions.fetch_sub(1, Ordering::SeqCst);
            return Err(e);
        }
        Ok(worker)
    }

    /// Runs `f` on the session thread and returns its answer.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Session) -> T + Send + 'static,
    ) -> Result<T, WorkerGone> {
        let (tx, rx) = oneshot::channel();
        let status = self.status.clone();
        let job: Job = Box::new(move |s| {
            let answer = f(s);
            // Published before the answer, so the caller's next ReadyForQuery sees it.
            status.store(status_code(s.status()), Ordering::SeqCst);
            let _ = tx.send(answer);
        });
        self.jobs.send(job).map_err(|_| WorkerGone::Terminated)?;
        rx.await.map_err(|_| WorkerGone::Terminated)
    }

    /// Cancels the running statement, if any (CancelRequest).
    pub fn cancel(&self) {
        self.interrupt.cancel();
    }

    /// The handle that cancels this session's statements.
    pub fn interrupt(&self) -> Arc<Interrupt> {
        self.interrupt.clone()
    }

    /// The transaction status after the last job.
    pub fn status(&self) -> TxnStatus {
        match self.status.load(Ordering::SeqCst) {
            0 => TxnStatus::Idle,
            1 => TxnStatus::InTransaction,
            _ => TxnStatus::Failed,
        }
    }

    /// True once the session thread has ended on its own.
    pub fn is_terminated(&self) -> bool {
        self.terminated.load(Ordering::SeqCst)
    }
}

fn session_loop(
    session: &mut Session,
    rx: &mpsc::Receiver<Job>,
    interrupt: &Interrupt,
    status: &AtomicU8,
    terminated: &AtomicBool,
    on_idle_timeout: Box<dyn FnOnce() + Send>,
) {
    loop {
        let idle_limit = match session.status() {
            TxnStatus::Idle => 0,
            _ => setting_ms(session, "idle_in_transaction_session_timeout"),
        };
        let job = if idle_limit == 0 {
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        } else {
            match rx.recv_timeout(Duration::from_millis(idle_limit)) {
                Ok(job) => job,
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {
                    tracing::info!("terminating connection due to idle-in-transaction timeout");
                    if let Err(e) = session.execute("ROLLBACK") {
                        tracing::warn!(error = %e, "rollback after idle timeout failed");
                    }
                    terminated.store(true, Ordering::SeqCst);
                    status.store(0, Ordering::SeqCst);
                    on_idle_timeout();
                    return;
                }
            }
        };
        interrupt.start_statement(setting_ms(session, "statement_timeout"));
        let outcome = catch_unwind(AssertUnwindSafe(|| job(session)));
        interrupt.end_statement();
        status.store(status_code(session.status()), Ordering::SeqCst);
        if outcome.is_err() {
            tracing::error!("a statement panicked; closing its connection");
            terminated.store(true, Ordering::SeqCst);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("0"), Some(0));
        assert_eq!(parse_duration_ms("150"), Some(150));
        assert_eq!(parse_duration_ms("'2s'"), Some(2000));
        assert_eq!(parse_duration_ms("1min"), Some(60_000));
        assert_eq!(parse_duration_ms("250ms"), Some(250));
        assert_eq!(parse_duration_ms("abc"), None);
    }
}
