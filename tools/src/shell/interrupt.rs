//! Ctrl-C (SIGINT) in the shell: cancel the running statement, not the shell.
//!
//! A thread of its own waits for SIGINT (on a small tokio runtime, whose signal handling is
//! safe and process-wide). When one arrives:
//!
//! 1. if a statement is running on a server, its cancel token is there ([`Interrupts::set_running`]):
//!    the thread prints `Cancel request sent` and sends the CancelRequest on a new connection;
//!    the server fails the statement with 57014, which reaches the shell as any error does;
//! 2. in every case the press is remembered ([`Interrupts::take_pressed`]): a script (`-f`,
//!    stdin, `\i`) stops after the statement that was running, with exit code 3, as psql's
//!    does; the interactive prompt clears it and carries on.
//!
//! On an embedded database the session's [`Interrupt`] is canceled instead
//! ([`Interrupts::set_embedded`]); the statement fails with 57014 at its next storage access.
//!
//! Invariant: the running token is set only while the main thread waits for that statement,
//! so a cancel can reach only the statement the user saw running (a CancelRequest that
//! arrives after it finished finds the session idle and does nothing, on PostgreSQL).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use strata_sql::interrupt::Interrupt;
use tokio::signal::unix::{signal, SignalKind};
use tokio_postgres::{CancelToken, NoTls};

/// Shared between the shell and the SIGINT thread.
#[derive(Default)]
pub struct Interrupts {
    running: Mutex<Option<CancelToken>>,
    embedded: Mutex<Option<Arc<Interrupt>>>,
    pressed: AtomicBool,
}

impl Interrupts {
    /// Starts the SIGINT thread. From then on SIGINT no longer ends the process.
    pub fn install() -> Result<Arc<Interrupts>, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the signal runtime: {e}"))?;
        let mut sigint = {
            let _entered = runtime.enter();
            signal(SignalKind::interrupt()).map_err(|e| format!("cannot catch SIGINT: {e}"))?
        };
        let interrupts = Arc::new(Interrupts::default());
        let shared = interrupts.clone();
        std::thread::Builder::new()
            .name("sigint".into())
            .spawn(move || {
                runtime.block_on(async move {
                    while sigint.recv().await.is_some() {
                        shared.pressed.store(true, Ordering::SeqCst);
                        let embedded = shared
                            .embedded
                            .lock()
                            .map(|e| e.clone())
                            .unwrap_or_default();
                        if let Some(interrupt) = embedded {
                            interrupt.cancel();
                        }
                        let token = shared.running.lock().map(|t| t.clone()).unwrap_or_default();
                        if let Some(token) = token {
                            eprintln!("Cancel request sent");
                            if let Err(e) = token.cancel_query(NoTls).await {
                                eprintln!("Could not send cancel request: {e}");
                            }
                        }
                    }
                })
            })
            .map_err(|e| format!("cannot start the SIGINT thread: {e}"))?;
        Ok(interrupts)
    }

    /// The interrupt of the embedded session, canceled by every Ctrl-C (it only affects a
    /// running statement).
    pub fn set_embedded(&self, interrupt: Arc<Interrupt>) {
        if let Ok(mut embedded) = self.embedded.lock() {
            *embedded = Some(interrupt);
        }
    }

    /// Publishes (Some) or withdraws (None) the cancel token of the running statement.
    pub fn set_running(&self, token: Option<CancelToken>) {
        if let Ok(mut running) = self.running.lock() {
            *running = token;
        }
    }

    /// Whether Ctrl-C was pressed since the last call (and forgets it).
    pub fn take_pressed(&self) -> bool {
        self.pressed.swap(false, Ordering::SeqCst)
    }
}
