//! One client connection: TLS negotiation, startup and authentication, the message loop, and
//! cancel requests.
//!
//! The loop reads one frontend message at a time with pgwire's codec and hands it to
//! pgwire's dispatcher, which calls this connection's handlers ([`super::query`]). Around it:
//!
//! - Startup: the database must be `postgres`, the role must exist; authentication is trust for
//!   a password-less role on a loopback address, SCRAM-SHA-256 otherwise ([`super::auth`]).
//!   Only after authentication does the connection take a slot (max_connections, 53300 when
//!   full) and start its session thread.
//! - A message that cannot be decoded (garbage bytes, an oversized or truncated message) ends
//!   this connection with a FATAL 08P01; other connections are untouched.
//! - Shutdown and idle-in-transaction timeouts end the connection between messages with a
//!   FATAL (57P01, 25P03); a running statement is never cut off by them.
//! - This all runs on the connection's own thread ([`super::worker`]), SQL included.
//! - Dropping the connection drops its session worker: an open transaction is rolled back and
//!   its locks released; the slot and the cancel key are freed.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::auth::{
    protocol_negotiation, save_startup_parameters_to_metadata, StartupHandler,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::{ClientInfo, PgWireConnectionState, METADATA_USER};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::response::{ReadyForQuery, TransactionStatus};
use pgwire::messages::startup::{Authentication, BackendKeyData, ParameterStatus, SecretKey};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use tokio::net::TcpStream;

use super::auth::{AuthStage, Credential};
use super::query::QueryState;
use super::worker::SessionWorker;
use super::ServerState;

/// How long a client may take from connecting to finishing authentication.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The state of one client connection.
pub struct Connection {
    pub(super) server: Arc<ServerState>,
    peer: SocketAddr,
    worker: OnceLock<SessionWorker>,
    /// The backend pid and secret this connection gave the client for CancelRequest.
    cancel_key: OnceLock<(i32, i32)>,
    /// Holds one of `max_connections` slots once authenticated.
    has_slot: OnceLock<()>,
    auth: Mutex<AuthStage>,
    query: Mutex<QueryState>,
}

fn fatal(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_owned(),
        code.to_owned(),
        message.into(),
    )))
}

impl Connection {
    pub fn new(server: Arc<ServerState>, peer: SocketAddr) -> Connection {
        Connection {
            server,
            peer,
            worker: OnceLock::new(),
            cancel_key: OnceLock::new(),
            has_slot: OnceLock::new(),
            auth: Mutex::new(AuthStage::Startup),
            query: Mutex::new(QueryState::default()),
        }
    }

    /// The session thread (after authentication).
    pub(super) fn worker(&self) -> PgWireResult<&SessionWorker> {
        self.worker
            .get()
            .ok_or_else(|| fatal("08P01", "query before authentication completed"))
    }

    pub(super) fn query_state(&self) -> MutexGuard<'_, QueryState> {
        self.query.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn terminated_error(&self) -> PgWireError {
        fatal(
            "25P03",
            "terminating connection due to idle-in-transaction timeout or an internal error",
        )
    }

    /// Takes a connection slot, starts the session thread and tells the client it is in.
    async fn complete_startup<C>(&self, client: &mut C, user: &str) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let server = &self.server;
        let max = server.config.max_connections;
        let taken = server.connections.fetch_add(1, Ordering::SeqCst);
        if taken >= max {
            server.connections.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(peer = %self.peer, max, "connection refused: too many clients");
            return Err(fatal("53300", "sorry, too many clients already"));
        }
        let _ = self.has_slot.set(());
        let app = client
            .metadata()
            .get("application_name")
            .cloned()
            .unwrap_or_default();
        let defaults = vec![
            ("application_name".to_string(), app.clone()),
            ("statement_timeout".to_string(), "0".to_string()),
            (
                "idle_in_transaction_session_timeout".to_string(),
                "0".to_string(),
            ),
            ("session_authorization".to_string(), user.to_string()),
            ("max_connections".to_string(), max.to_string()),
            (
                "server_version".to_string(),
                super::SERVER_VERSION.to_string(),
            ),
            (
                "server_version_num".to_string(),
                super::SERVER_VERSION_NUM.to_string(),
            ),
            ("is_superuser".to_string(), "on".to_string()),
        ];
        let pid = server.next_pid.fetch_add(1, Ordering::SeqCst);
        let worker = SessionWorker::new(server.shared.clone(), defaults);
        let secret: i32 = rand::random();
        server
            .cancel_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pid, (secret, worker.interrupt()));
        let _ = self.cancel_key.set((pid, secret));
        let _ = self.worker.set(worker);
        client
            .metadata_mut()
            .insert(METADATA_USER.to_string(), user.to_string());

        client
            .feed(PgWireBackendMessage::Authentication(Authentication::Ok))
            .await?;
        for (k, v) in [
            ("server_version", super::SERVER_VERSION.to_string()),
            ("server_encoding", "UTF8".to_string()),
            ("client_encoding", "UTF8".to_string()),
            ("DateStyle", "ISO, MDY".to_string()),
            ("IntervalStyle", "postgres".to_string()),
            ("TimeZone", "UTC".to_string()),
            ("integer_datetimes", "on".to_string()),
            ("standard_conforming_strings", "on".to_string()),
            ("is_superuser", "on".to_string()),
            ("session_authorization", user.to_string()),
            ("default_transaction_read_only", "off".to_string()),
            ("in_hot_standby", "off".to_string()),
            ("application_name", app),
        ] {
            client
                .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                    k.to_string(),
                    v,
                )))
                .await?;
        }
        client
            .feed(PgWireBackendMessage::BackendKeyData(BackendKeyData::new(
                pid,
                SecretKey::I32(secret),
            )))
            .await?;
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                TransactionStatus::Idle,
            )))
            .await?;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        tracing::info!(peer = %self.peer, user, pid, "connection authenticated");
        Ok(())
    }

    fn auth_stage(&self) -> MutexGuard<'_, AuthStage> {
        self.auth.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some((pid, _)) = self.cancel_key.get() {
            self.server
                .cancel_keys
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(pid);
        }
        if self.has_slot.get().is_some() {
            self.server.connections.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[async_trait]
impl StartupHandler for Connection {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(startup) => {
                protocol_negotiation(client, &startup).await?;
                save_startup_parameters_to_metadata(client, &startup);
                if self.server.is_shutting_down() {
                    return Err(fatal("57P03", "the database system is shutting down"));
                }
                let user = startup.parameters.get("user").cloned().ok_or_else(|| {
                    fatal(
                        "28000",
                        "no PostgreSQL user name specified in startup packet",
                    )
                })?;
                let database = startup
                    .parameters
                    .get("database")
                    .cloned()
                    .unwrap_or_else(|| user.clone());
                if database != super::DATABASE_NAME {
                    return Err(fatal(
                        "3D000",
                        format!("database \"{database}\" does not exist"),
                    ));
                }
                let credential = self
                    .server
                    .users
                    .credential(&user)
                    .ok_or_else(|| fatal("28000", format!("role \"{user}\" does not exist")))?;
                let trusted = self.peer.ip().is_loopback() && self.server.config.trust_loopback;
                match credential {
                    Credential::NoPassword if trusted => self.complete_startup(client, &user).await,
                    Credential::NoPassword => Err(fatal(
                        "28000",
                        format!(
                            "no password is set for role \"{user}\" and the connection is not from loopback"
                        ),
                    )),
                    Credential::Scram(verifier) => {
                        *self.auth_stage() = AuthStage::ScramFirst { user, verifier };
                        client.set_state(PgWireConnectionState::AuthenticationInProgress);
                        client
                            .send(PgWireBackendMessage::Authentication(Authentication::SASL(
                                vec!["SCRAM-SHA-256".to_string()],
                            )))
                            .await?;
                        Ok(())
                    }
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(msg) => {
                let stage = std::mem::replace(&mut *self.auth_stage(), AuthStage::Startup);
                match super::auth::step(stage, msg)? {
                    super::auth::Step::Continue(next, reply) => {
                        *self.auth_stage() = next;
                        client
                            .send(PgWireBackendMessage::Authentication(reply))
                            .await?;
                        Ok(())
                    }
                    super::auth::Step::Done(user, reply) => {
                        client
                            .feed(PgWireBackendMessage::Authentication(reply))
                            .await?;
                        self.complete_startup(client, &user).await
                    }
                }
            }
            _ => Err(fatal("08P01", "unexpected message during startup")),
        }
    }
}

#[async_trait]
impl CancelHandler for Connection {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let key = self
            .server
            .cancel_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&request.pid)
            .cloned();
        // The key arrives as 4 raw bytes or an i32 depending on how it was decoded.
        match key {
            Some((secret, interrupt)) if request.secret_key.eq_value(&SecretKey::I32(secret)) => {
                tracing::info!(pid = request.pid, "cancel request");
                interrupt.cancel();
            }
            _ => tracing::debug!(pid = request.pid, "cancel request with an unknown key"),
        }
    }
}

async fn send_fatal<S>(socket: &mut S, code: &str, message: &str)
where
    S: Sink<PgWireBackendMessage> + Unpin,
{
    let info = ErrorInfo::new("FATAL".to_owned(), code.to_owned(), message.to_owned());
    let _ = socket
        .send(PgWireBackendMessage::ErrorResponse(info.into()))
        .await;
}

/// Serves one TCP client until it leaves, errs, times out or the server shuts down.
pub async fn serve(
    server: Arc<ServerState>,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<pgwire::tokio::TlsAcceptor>,
) {
    let conn = Arc::new(Connection::new(server.clone(), peer));
    let mut shutdown = server.shutdown_signal();
    let negotiated = tokio::time::timeout(STARTUP_TIMEOUT, negotiate_tls::<String>(tcp, tls)).await;
    let mut socket = match negotiated {
        Ok(Ok(Some(socket))) => socket,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS negotiation failed");
            return;
        }
        Err(_) => return,
    };
    let startup_deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
    loop {
        if *shutdown.borrow() {
            send_fatal(
                &mut socket,
                "57P01",
                "terminating connection due to administrator command",
            )
            .await;
            break;
        }
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let idle_limit = conn.worker.get().and_then(SessionWorker::idle_timeout);
        let msg = tokio::select! {
            msg = socket.next() => msg,
            _ = shutdown.changed() => continue,
            _ = tokio::time::sleep(idle_limit.unwrap_or_default()), if idle_limit.is_some() => {
                if let Some(w) = conn.worker.get() {
                    w.end_idle_transaction();
                }
                send_fatal(
                    &mut socket,
                    "25P03",
                    "terminating connection due to idle-in-transaction timeout",
                )
                .await;
                break;
            }
            _ = tokio::time::sleep_until(startup_deadline), if starting => {
                tracing::debug!(%peer, "startup timeout");
                break;
            }
        };
        let msg = match msg {
            None => break,
            Some(Err(e)) => {
                tracing::warn!(%peer, error = %e, "invalid message; closing the connection");
                send_fatal(
                    &mut socket,
                    "08P01",
                    &format!("invalid frontend message: {e}"),
                )
                .await;
                break;
            }
            Some(Ok(PgWireFrontendMessage::Terminate(_))) => break,
            Some(Ok(msg)) => msg,
        };
        let is_extended = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => msg.is_extended_query(),
        };
        let is_cancel = matches!(msg, PgWireFrontendMessage::CancelRequest(_));
        let result = process_message(
            msg,
            &mut socket,
            conn.clone(),
            conn.clone(),
            conn.clone(),
            conn.clone(),
            conn.clone(),
        )
        .await;
        if let Err(e) = result {
            let is_fatal = e.is_fatal();
            if is_fatal {
                tracing::info!(%peer, error = %e, "connection ended by a fatal error");
            }
            if process_error(&mut socket, e, is_extended).await.is_err() || is_fatal {
                break;
            }
        }
        if is_cancel {
            break;
        }
        // A session ended by a panic whose error a handler did not pass on (the idle timeout
        // ends the connection above): say so as every other use of the session would.
        if conn.worker.get().is_some_and(SessionWorker::is_terminated) {
            let _ = process_error(&mut socket, conn.terminated_error(), is_extended).await;
            break;
        }
    }
    tracing::debug!(%peer, "connection closed");
}
