//! The thread of one connection, and the SQL session that runs on it.
//!
//! Every accepted client gets an OS thread of its own ([`spawn_connection`]). The thread runs a
//! single-threaded tokio event loop that serves that one socket ([`super::connection::serve`]),
//! and the connection's [`Session`] runs inline on the same thread ([`SessionWorker::run`]): a
//! message is read, its SQL runs, the answer is written, with no hand-off to another thread.
//! This is PostgreSQL's process-per-connection model, with threads. The alternative, a shared
//! network runtime that sends each statement to a session thread and awaits the answer, costs
//! two extra thread wake-ups per statement; on a small machine those context switches were
//! most of the time of a short query.
//!
//! Invariants:
//! 1. A connection thread serves exactly one connection, so a statement that blocks (a row
//!    lock, an fsync, a long scan) stalls that connection only. The server's shared runtime
//!    only accepts connections and watches for signals; no SQL runs there.
//! 2. Statements of one connection run one at a time, in message order, on its thread.
//! 3. When the connection ends (Terminate, the client vanished, a FATAL error, shutdown, an
//!    idle-in-transaction timeout), its [`SessionWorker`] is dropped on the connection thread:
//!    an open transaction is rolled back, releasing its row locks, before the thread stops
//!    counting itself in [`ServerCounters::sessions`].
//! 4. `statement_timeout` and CancelRequest work through the session's [`Interrupt`], which
//!    the running statement checks; a CancelRequest arrives on its own connection (and thread).
//! 5. `idle_in_transaction_session_timeout`: while the session sits in a transaction, the
//!    connection loop waits for the next message at most [`SessionWorker::idle_timeout`];
//!    then [`SessionWorker::end_idle_transaction`] rolls back and the connection is closed.
//! 6. A panic inside the SQL layer ends its connection only: the job's caller gets
//!    [`WorkerGone`], the connection is closed, and the transaction rolls back as in 3.
//! 7. [`ServerCounters::sessions`] counts live connection threads, so a graceful shutdown can
//!    wait for every transaction to be finished or rolled back before the final checkpoint.
//! 8. At most `max_connections` + `STARTING_HEADROOM` connection threads live at once (the
//!    extra ones for clients still authenticating and for cancel requests); a connection
//!    accepted beyond that is closed at once, before it costs a thread.

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_sql::interrupt::Interrupt;
use strata_sql::{Session, Shared, TxnStatus};

use super::ServerState;

/// Connection threads that may be alive beyond `max_connections` (clients still starting
/// up or authenticating, cancel requests); more connections are closed at once.
const STARTING_HEADROOM: usize = 64;

/// Counts shared by all connections of a server.
#[derive(Debug, Default)]
pub struct ServerCounters {
    /// Connection threads alive (each owns at most one session).
    pub sessions: AtomicUsize,
}

/// Why a job did not run to an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerGone {
    /// The session ended (idle-in-transaction timeout, or a panic).
    Terminated,
}

/// A connection's SQL session, run on the connection's own thread.
pub struct SessionWorker {
    /// Taken only by the connection thread; the lock is never contended.
    session: Mutex<Session>,
    interrupt: Arc<Interrupt>,
    /// The session's transaction status after the last job (0 idle, 1 in a block, 2 failed).
    status: AtomicU8,
    terminated: AtomicBool,
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
    /// A fresh session with these settings.
    pub fn new(shared: Arc<Shared>, defaults: Vec<(String, String)>) -> SessionWorker {
        let interrupt = Interrupt::new();
        let mut session = Session::new(shared);
        session.set_interrupt(interrupt.clone());
        for (k, v) in defaults {
            session.settings.insert(k, v);
        }
        SessionWorker {
            session: Mutex::new(session),
            interrupt,
            status: AtomicU8::new(0),
            terminated: AtomicBool::new(false),
        }
    }

    /// Runs `f` on the session, here on the connection thread, as one statement: the cancel
    /// flag is cleared and `statement_timeout` armed for its duration. A panic in `f` ends
    /// the session ([`WorkerGone`]).
    pub fn run<T>(&self, f: impl FnOnce(&mut Session) -> T) -> Result<T, WorkerGone> {
        if self.is_terminated() {
            return Err(WorkerGone::Terminated);
        }
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        self.interrupt
            .start_statement(setting_ms(&session, "statement_timeout"));
        let outcome = catch_unwind(AssertUnwindSafe(|| f(&mut session)));
        self.interrupt.end_statement();
        self.status
            .store(status_code(session.status()), Ordering::SeqCst);
        match outcome {
            Ok(answer) => Ok(answer),
            Err(_) => {
                tracing::error!("a statement panicked; closing its connection");
                self.terminated.store(true, Ordering::SeqCst);
                Err(WorkerGone::Terminated)
            }
        }
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

    /// True once the session has ended on its own (a panic, an idle timeout).
    pub fn is_terminated(&self) -> bool {
        self.terminated.load(Ordering::SeqCst)
    }

    /// How long the connection may wait for its next message: the session's
    /// `idle_in_transaction_session_timeout` while it is in a transaction, else None.
    pub fn idle_timeout(&self) -> Option<Duration> {
        if self.status() == TxnStatus::Idle || self.is_terminated() {
            return None;
        }
        let session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        match setting_ms(&session, "idle_in_transaction_session_timeout") {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// Ends a session whose transaction sat idle too long: rolls it back and marks the
    /// session terminated (the caller closes the connection with 25P03).
    pub fn end_idle_transaction(&self) {
        tracing::info!("terminating connection due to idle-in-transaction timeout");
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = session.execute("ROLLBACK") {
            tracing::warn!(error = %e, "rollback after idle timeout failed");
        }
        self.status
            .store(status_code(session.status()), Ordering::SeqCst);
        self.terminated.store(true, Ordering::SeqCst);
    }
}

impl Drop for SessionWorker {
    fn drop(&mut self) {
        let session = self.session.get_mut().unwrap_or_else(|e| e.into_inner());
        if session.status() != TxnStatus::Idle {
            if let Err(e) = session.execute("ROLLBACK") {
                tracing::warn!(error = %e, "rollback of an abandoned transaction failed");
            }
        }
    }
}

/// Decrements the live-thread count when a connection thread ends, however it ends.
struct ThreadCount(Arc<ServerCounters>);

impl Drop for ThreadCount {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Starts the thread that serves one accepted TCP connection to its end.
pub(super) fn spawn_connection(
    state: Arc<ServerState>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<pgwire::tokio::TlsAcceptor>,
) {
    let limit = state
        .config
        .max_connections
        .saturating_add(STARTING_HEADROOM);
    let counters = state.counters.clone();
    if counters.sessions.fetch_add(1, Ordering::SeqCst) >= limit {
        counters.sessions.fetch_sub(1, Ordering::SeqCst);
        tracing::warn!(%peer, limit, "connection closed: too many connection threads");
        return;
    }
    let count = ThreadCount(counters);
    // The socket moves to the new thread's own event loop.
    let tcp = match tcp.into_std() {
        Ok(tcp) => tcp,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "cannot take over the accepted socket");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name(format!("strata-conn-{}", peer.port()))
        .stack_size(16 << 20)
        .spawn(move || {
            // Dropped last: the session (and its transaction) is gone before the count falls.
            let _count = count;
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "cannot start a connection's event loop");
                    return;
                }
            };
            runtime.block_on(async move {
                match tokio::net::TcpStream::from_std(tcp) {
                    Ok(tcp) => super::connection::serve(state, tcp, peer, tls).await,
                    Err(e) => tracing::warn!(%peer, error = %e, "cannot register the socket"),
                }
            });
        });
    if let Err(e) = spawned {
        // The closure (and the count in it) was dropped with the failed spawn.
        tracing::warn!(%peer, error = %e, "cannot start a connection thread");
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
