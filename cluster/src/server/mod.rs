//! The PostgreSQL wire-protocol server: `strata serve --data DIR --listen HOST:PORT`.
//!
//! psql, pgbench and PostgreSQL drivers connect to it as to PostgreSQL 15. The protocol codec
//! and message types are the `pgwire` crate's; everything a message means is Strata's:
//!
//! - [`connection`]: one client: TLS, startup, authentication, the message loop, cancel.
//! - [`query`]: simple and extended query protocol, COPY, result encoding per statement.
//! - [`worker`]: the OS thread of one connection, which also runs its SQL session.
//! - [`auth`]: roles and SCRAM-SHA-256 verifiers.
//! - [`types`]: values in PostgreSQL's text and binary formats.
//!
//! Invariants of the server as a whole:
//! - One database (`postgres`) in one data directory (`DIR/strata.db` and its WAL), opened
//!   with durable commits: a commit is acknowledged only after its WAL record is fsynced.
//! - Each connection has an OS thread of its own, running its socket's event loop and its
//!   session; so no SQL runs on a thread that another connection needs, and a statement
//!   waiting for a row lock stalls only its own client. The shared runtime only accepts.
//! - At most `max_connections` authenticated sessions; one more gets FATAL 53300.
//! - Shutdown (SIGTERM, SIGINT or [`ServerHandle::shutdown`]): stop accepting, end every
//!   connection between statements (open transactions roll back), wait for the session threads,
//!   checkpoint, return.

pub mod auth;
pub mod connection;
pub mod query;
pub mod types;
pub mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_sql::interrupt::Interrupt;
use strata_sql::kv::EngineStorage;
use strata_sql::Shared;
use tokio::net::TcpListener;
use tokio::sync::watch;

use self::auth::Users;
use self::worker::ServerCounters;

/// The version string clients see (`SHOW server_version`, ParameterStatus).
pub const SERVER_VERSION: &str = "15.0 (Strata)";
/// `server_version_num`, as pg_dump and drivers read it.
pub const SERVER_VERSION_NUM: &str = "150000";
/// The one database a server holds.
pub const DATABASE_NAME: &str = "postgres";
/// The database file inside the data directory.
pub const DATA_FILE: &str = "strata.db";

/// How long a shutdown waits for running statements before checkpointing anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub listen: String,
    pub max_connections: usize,
    /// Trust password-less roles on loopback addresses (PostgreSQL's `trust` for 127.0.0.1).
    pub trust_loopback: bool,
    /// Buffer pool size in bytes.
    pub cache_bytes: usize,
    /// PEM certificate chain and private key: enables TLS (SSLRequest is refused without).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Roles to create or update at start: (name, password).
    pub users: Vec<(String, String)>,
}

impl ServerConfig {
    pub fn new(data_dir: impl Into<PathBuf>, listen: impl Into<String>) -> ServerConfig {
        ServerConfig {
            data_dir: data_dir.into(),
            listen: listen.into(),
            max_connections: 200,
            trust_loopback: true,
            cache_bytes: 256 << 20,
            tls_cert: None,
            tls_key: None,
            users: Vec::new(),
        }
    }
}

/// Why the server could not start or stop cleanly.
#[derive(Debug)]
pub enum ServerError {
    Io(String, std::io::Error),
    Database(String),
    Tls(String),
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerError::Io(what, e) => write!(f, "{what}: {e}"),
            ServerError::Database(m) => write!(f, "database: {m}"),
            ServerError::Tls(m) => write!(f, "TLS: {m}"),
        }
    }
}

impl std::error::Error for ServerError {}

/// What every connection of a server shares.
pub struct ServerState {
    pub(crate) shared: Arc<Shared>,
    engine: Arc<strata_engine::Database>,
    pub(crate) config: ServerConfig,
    pub(crate) counters: Arc<ServerCounters>,
    /// Authenticated connections holding a slot.
    pub(crate) connections: AtomicUsize,
    /// Backend pid -> (secret, the session's interrupt), for CancelRequest.
    pub(crate) cancel_keys: Mutex<HashMap<i32, (i32, Arc<Interrupt>)>>,
    pub(crate) next_pid: AtomicI32,
    pub(crate) users: Users,
    shutdown: watch::Sender<bool>,
}

impl ServerState {
    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}

/// Stops a running server from another thread.
#[derive(Clone)]
pub struct ServerHandle {
    shutdown: watch::Sender<bool>,
}

impl ServerHandle {
    /// Begins a graceful shutdown.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

fn tls_acceptor(config: &ServerConfig) -> Result<Option<pgwire::tokio::TlsAcceptor>, ServerError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => (c, k),
        (None, None) => return Ok(None),
        _ => {
            return Err(ServerError::Tls(
                "--tls-cert and --tls-key go together".into(),
            ))
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| ServerError::Tls(format!("{}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| ServerError::Tls(format!("{}: {e}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ServerError::Tls(format!("{}: {e}", key.display())))?;
    let provider = Arc::new(pgwire::tokio::tokio_rustls::rustls::crypto::ring::default_provider());
    let tls = pgwire::tokio::tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    Ok(Some(pgwire::tokio::TlsAcceptor::from(Arc::new(tls))))
}

/// Opens the data directory and serves until shut down. `on_listening` is told the bound
/// address (useful with port 0); the returned handle from `on_start` stops the server.
pub fn run(
    config: ServerConfig,
    on_start: impl FnOnce(SocketAddr, ServerHandle),
) -> Result<(), ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        ServerError::Io(
            format!("cannot create data directory {}", config.data_dir.display()),
            e,
        )
    })?;
    let options = strata_engine::Options {
        cache_bytes: config.cache_bytes,
        ..Default::default()
    };
    let db_path = config.data_dir.join(DATA_FILE);
    let engine = Arc::new(
        strata_engine::Database::open(&db_path, options)
            .map_err(|e| ServerError::Database(format!("{}: {e}", db_path.display())))?,
    );
    let shared = Arc::new(Shared::new(Arc::new(EngineStorage(engine.clone()))));
    let users = Users::load(Some(&config.data_dir))
        .map_err(|e| ServerError::Io("cannot read roles".into(), e))?;
    for (name, password) in &config.users {
        users
            .set(name, Some(password))
            .map_err(|e| ServerError::Io("cannot save roles".into(), e))?;
    }
    let tls = tls_acceptor(&config)?;
    let (shutdown, _) = watch::channel(false);
    let state = Arc::new(ServerState {
        shared,
        engine,
        config,
        counters: Arc::new(ServerCounters::default()),
        connections: AtomicUsize::new(0),
        cancel_keys: Mutex::new(HashMap::new()),
        next_pid: AtomicI32::new(1000),
        users,
        shutdown,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("strata-net")
        .enable_all()
        .build()
        .map_err(|e| ServerError::Io("cannot start the network runtime".into(), e))?;
    runtime.block_on(serve(state.clone(), tls, on_start))?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    finish(&state)
}

async fn serve(
    state: Arc<ServerState>,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    on_start: impl FnOnce(SocketAddr, ServerHandle),
) -> Result<(), ServerError> {
    let listener = TcpListener::bind(&state.config.listen)
        .await
        .map_err(|e| ServerError::Io(format!("cannot listen on {}", state.config.listen), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::Io("listener address".into(), e))?;
    tracing::info!(%addr, data = %state.config.data_dir.display(), tls = tls.is_some(), "listening");
    on_start(
        addr,
        ServerHandle {
            shutdown: state.shutdown.clone(),
        },
    );
    let signals = state.shutdown.clone();
    tokio::spawn(async move {
        let reason = wait_for_signal().await;
        tracing::info!(signal = reason, "shutting down");
        let _ = signals.send(true);
    });
    let mut stop = state.shutdown_signal();
    loop {
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    tracing::debug!(%peer, "connection accepted");
                    // Answers go out as soon as they are written (as PostgreSQL does): Nagle's
                    // algorithm would hold a second small write of one answer (COPY rows, a
                    // notice then a result) until the client's delayed ACK.
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(%peer, error = %e, "could not set TCP_NODELAY");
                    }
                    worker::spawn_connection(state.clone(), tcp, peer, tls.clone());
                }
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the others.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => {}
        }
    }
    drop(listener);
    // Connections see the same signal and close between statements; their threads roll back
    // and exit.
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while state.counters.sessions.load(Ordering::SeqCst) > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}

fn finish(state: &ServerState) -> Result<(), ServerError> {
    let left = state.counters.sessions.load(Ordering::SeqCst);
    if left > 0 {
        tracing::warn!(sessions = left, "sessions still running at shutdown");
    }
    state
        .engine
        .checkpoint()
        .map_err(|e| ServerError::Database(format!("final checkpoint: {e}")))?;
    tracing::info!("checkpoint done; stopped");
    Ok(())
}
