//! Query handling of one connection: the simple protocol (Query), the extended protocol
//! (Parse / Bind / Describe / Execute / Close / Sync) and COPY FROM STDIN / TO STDOUT.
//!
//! Statements and portals live here, per connection, not in pgwire's store: a [`Statement`]
//! is the session's [`Prepared`] (parsed and bound once, with resolved parameter types and
//! result columns); a [`Portal`] is a statement with decoded parameter values and the result
//! formats asked for, plus the rows not yet sent when Execute gave a row limit.
//!
//! Invariants:
//! - Every SQL error reaches the client as an ErrorResponse with its SQLSTATE (and position);
//!   in the simple protocol the remaining statements of the Query are skipped, in the extended
//!   protocol pgwire then discards messages until Sync.
//! - A Query of several statements runs as one implicit transaction, as in PostgreSQL
//!   ([`Session::begin_implicit`]): an error rolls back everything the Query did outside an
//!   explicit block; BEGIN inside it turns it into a block; COMMIT/ROLLBACK end it and the
//!   statements after them start a new one. A COPY FROM STDIN in the middle keeps it open
//!   until the COPY and the statements after it are done (or the COPY fails).
//! - ReadyForQuery always reports the session's real transaction status, as the session
//!   thread last saw it (idle, in a block, failed).
//! - All SQL runs on the connection's own thread ([`super::worker`]), inline: a statement that
//!   blocks stalls its own connection only.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{BufMut, BytesMut};
use futures::{Sink, SinkExt};
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::Portal as PgPortal;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{DescribePortalResponse, DescribeStatementResponse, Response};
use pgwire::api::stmt::{NoopQueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail, CopyInResponse, CopyOutResponse};
use pgwire::messages::data::{
    DataRow, FieldDescription, NoData, ParameterDescription, RowDescription,
};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Close, CloseComplete, Describe, Execute, Flush, Parse, ParseComplete,
    PortalSuspended, Sync as PgSync, TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};
use pgwire::messages::response::{
    CommandComplete, EmptyQueryResponse, ReadyForQuery, TransactionStatus,
};
use pgwire::messages::simplequery::Query;
use pgwire::messages::PgWireBackendMessage;
use sqlparser::ast;
use strata_sql::plan::OutCol;
use strata_sql::{DataType, Error, Prepared, QueryResult, Session, TxnStatus, Value};

use super::auth::Users;
use super::connection::Connection;
use super::types;

/// A prepared statement of this connection.
pub struct Statement {
    prepared: Prepared,
    /// An empty query string (answered with EmptyQueryResponse).
    empty: bool,
}

/// A bound statement, ready to execute.
pub struct Portal {
    statement: Arc<Statement>,
    params: Vec<Value>,
    /// Result format per column (0 text, 1 binary).
    formats: Vec<i16>,
    /// Rows left over after an Execute with a row limit: (rows, tag verb, rows sent so far).
    pending: Option<PendingRows>,
}

struct PendingRows {
    columns: Vec<OutCol>,
    rows: std::vec::IntoIter<Vec<Value>>,
    tag: String,
}

/// A COPY FROM STDIN waiting for its data.
pub struct CopyIn {
    statement: ast::Statement,
    params: Vec<Value>,
    data: Vec<u8>,
    /// Simple protocol: statements of the same Query that follow the COPY.
    rest: Vec<ast::Statement>,
}

/// Largest COPY FROM STDIN payload accepted in one statement.
const MAX_COPY_BYTES: usize = 1 << 30;

/// Per-connection state of the query protocols.
#[derive(Default)]
pub struct QueryState {
    statements: HashMap<String, Arc<Statement>>,
    portals: HashMap<String, Portal>,
    copy: Option<CopyIn>,
}

pub fn sql_error(e: Error) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(&e)))
}

pub fn error_info(e: &Error) -> ErrorInfo {
    let mut info = ErrorInfo::new("ERROR".to_owned(), e.code.to_owned(), e.message.clone());
    info.position = e.position.map(|p| p.to_string());
    info
}

fn protocol_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        code.to_owned(),
        message.into(),
    )))
}

pub fn wire_status(s: TxnStatus) -> TransactionStatus {
    match s {
        TxnStatus::Idle => TransactionStatus::Idle,
        TxnStatus::InTransaction => TransactionStatus::Transaction,
        TxnStatus::Failed => TransactionStatus::Error,
    }
}

fn is_copy_from_stdin(s: &ast::Statement) -> bool {
    matches!(
        s,
        ast::Statement::Copy {
            to: false,
            target: ast::CopyTarget::Stdin,
            payload: None,
            ..
        }
    )
}

/// Transaction control and session settings: no parameters, no result rows.
fn is_control(s: &ast::Statement) -> bool {
    use ast::Statement as S;
    matches!(
        s,
        S::StartTransaction { .. }
            | S::Commit { .. }
            | S::Rollback { .. }
            | S::Savepoint { .. }
            | S::ReleaseSavepoint { .. }
            | S::Set(_)
            | S::Deallocate { .. }
    )
}

/// Number of columns a COPY statement names (0 when it names none: the table's own).
fn copy_columns(s: &ast::Statement) -> usize {
    match s {
        ast::Statement::Copy {
            source: ast::CopySource::Table { columns, .. },
            ..
        } => columns.len(),
        _ => 0,
    }
}

fn with_payload(s: &ast::Statement, data: String) -> ast::Statement {
    let mut s = s.clone();
    if let ast::Statement::Copy { payload, .. } = &mut s {
        *payload = Some(ast::CopyPayload {
            data,
            terminated: true,
        });
    }
    s
}

fn row_description(columns: &[OutCol], formats: &[i16]) -> RowDescription {
    RowDescription::new(
        columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let ty = if c.ty == DataType::Unknown {
                    DataType::Text
                } else {
                    c.ty.clone()
                };
                FieldDescription::new(
                    c.name.clone(),
                    0,
                    0,
                    ty.oid(),
                    types::type_size(&ty),
                    types::type_modifier(&ty),
                    format_of(formats, i),
                )
            })
            .collect(),
    )
}

/// The format code for column or parameter `i` (none given: text; one: all).
fn format_of(formats: &[i16], i: usize) -> i16 {
    match formats.len() {
        0 => 0,
        1 => formats[0],
        _ => formats.get(i).copied().unwrap_or(0),
    }
}

fn data_row(row: &[Value], columns: &[OutCol], formats: &[i16]) -> PgWireResult<DataRow> {
    let mut buf = BytesMut::with_capacity(16 * row.len());
    for (i, v) in row.iter().enumerate() {
        let bytes = if format_of(formats, i) == 1 {
            let ty = columns
                .get(i)
                .map(|c| c.ty.clone())
                .unwrap_or(DataType::Text);
            types::encode_binary(v, &ty).map_err(sql_error)?
        } else {
            types::encode_text(v)
        };
        match bytes {
            None => buf.put_i32(-1),
            Some(b) => {
                buf.put_i32(b.len() as i32);
                buf.put_slice(&b);
            }
        }
    }
    Ok(DataRow::new(buf, row.len() as i16))
}

/// Sends one statement's result: rows (with a RowDescription in the simple protocol), COPY TO
/// STDOUT data, and the command tag.
async fn send_result<C>(
    client: &mut C,
    result: QueryResult,
    describe: bool,
    formats: &[i16],
) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if let Some(data) = result.copy_out {
        let columns = result.columns.len() as i16;
        client
            .feed(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
                0,
                columns,
                vec![0; columns.max(0) as usize],
            )))
            .await?;
        // One CopyData per line, as PostgreSQL sends one per row: clients such as psycopg's
        // `Copy.rows()` parse each message as one row. (A CSV field with a newline spans two
        // messages; clients that concatenate the data, as for CSV they must, are unaffected.)
        for line in data.as_bytes().split_inclusive(|b| *b == b'\n') {
            client
                .feed(PgWireBackendMessage::CopyData(CopyData::new(
                    bytes::Bytes::copy_from_slice(line),
                )))
                .await?;
        }
        client
            .feed(PgWireBackendMessage::CopyDone(CopyDone::new()))
            .await?;
    } else if !result.columns.is_empty() || result.tag.starts_with("SELECT") {
        if describe {
            client
                .feed(PgWireBackendMessage::RowDescription(row_description(
                    &result.columns,
                    formats,
                )))
                .await?;
        }
        for row in &result.rows {
            client
                .feed(PgWireBackendMessage::DataRow(data_row(
                    row,
                    &result.columns,
                    formats,
                )?))
                .await?;
        }
    }
    client
        .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
            result.tag,
        )))
        .await?;
    Ok(())
}

/// What the session thread did with a simple Query.
struct SimpleOutcome {
    results: Vec<QueryResult>,
    error: Option<Error>,
    /// The COPY FROM STDIN the Query stopped at, with the statements after it.
    copy: Option<(ast::Statement, Vec<ast::Statement>)>,
    empty: bool,
}

fn role_error(code: &'static str, message: String) -> Error {
    Error::new(code, message)
}

/// Role statements change the server's roles (`users.conf`), not the database:
/// CREATE ROLE/USER [WITH] [LOGIN] [PASSWORD 'pw'], ALTER ROLE/USER name [WITH] PASSWORD 'pw',
/// DROP ROLE/USER [IF EXISTS] name. They take effect at once (not transactional) and are
/// refused inside a transaction block. None: not a role statement.
fn role_statement(
    users: &Users,
    session: &Session,
    s: &ast::Statement,
) -> Option<Result<QueryResult, Error>> {
    use ast::Statement as S;
    let password_of = |p: &Option<ast::Password>| -> Result<Option<String>, Error> {
        match p {
            None | Some(ast::Password::NullPassword) => Ok(None),
            Some(ast::Password::Password(ast::Expr::Value(v))) => match &v.value {
                ast::Value::SingleQuotedString(pw) => Ok(Some(pw.clone())),
                other => Err(role_error("42601", format!("invalid password {other}"))),
            },
            Some(ast::Password::Password(other)) => {
                Err(role_error("42601", format!("invalid password {other}")))
            }
        }
    };
    let tag = |t: &str| QueryResult {
        tag: t.to_string(),
        ..Default::default()
    };
    let is_role = matches!(
        s,
        S::CreateRole(_)
            | S::AlterRole { .. }
            | S::Drop {
                object_type: ast::ObjectType::Role | ast::ObjectType::User,
                ..
            }
    );
    if !is_role {
        return None;
    }
    if session.status() != TxnStatus::Idle && !session.in_implicit() {
        return Some(Err(role_error(
            "25001",
            "role statements cannot run inside a transaction block".into(),
        )));
    }
    let io = |e: std::io::Error| role_error("58030", format!("cannot save roles: {e}"));
    Some((|| match s {
        S::CreateRole(cr) => {
            let password = password_of(&cr.password)?;
            for n in &cr.names {
                let name = strata_sql::plan::object_name(n)?;
                if users.credential(&name).is_some() {
                    return Err(role_error(
                        "42710",
                        format!("role \"{name}\" already exists"),
                    ));
                }
                users.set(&name, password.as_deref()).map_err(io)?;
            }
            Ok(tag("CREATE ROLE"))
        }
        S::AlterRole { name, operation } => {
            let name = strata_sql::plan::ident(name);
            if users.credential(&name).is_none() {
                return Err(role_error(
                    "42704",
                    format!("role \"{name}\" does not exist"),
                ));
            }
            if let ast::AlterRoleOperation::WithOptions { options } = operation {
                for o in options {
                    if let ast::RoleOption::Password(p) = o {
                        let pw = password_of(&Some(p.clone()))?;
                        users.set(&name, pw.as_deref()).map_err(io)?;
                    }
                }
                Ok(tag("ALTER ROLE"))
            } else {
                Err(role_error(
                    "0A000",
                    format!("ALTER ROLE {operation} is not supported"),
                ))
            }
        }
        S::Drop {
            names, if_exists, ..
        } => {
            for n in names {
                let name = strata_sql::plan::object_name(n)?;
                if name == "postgres" {
                    return Err(role_error("55006", "current user cannot be dropped".into()));
                }
                if !users.remove(&name).map_err(io)? && !*if_exists {
                    return Err(role_error(
                        "42704",
                        format!("role \"{name}\" does not exist"),
                    ));
                }
            }
            Ok(tag("DROP ROLE"))
        }
        _ => Err(role_error("XX000", "not a role statement".into())),
    })())
}

/// Runs the statements of one Query; with `implicit`, as one implicit transaction (see the
/// module doc).
fn run_statements(
    session: &mut Session,
    users: &Users,
    stmts: Vec<ast::Statement>,
    implicit: bool,
) -> SimpleOutcome {
    let mut out = SimpleOutcome {
        results: Vec::new(),
        error: None,
        copy: None,
        empty: false,
    };
    let mut iter = stmts.into_iter();
    while let Some(s) = iter.next() {
        let begins = matches!(s, ast::Statement::StartTransaction { .. });
        if implicit && !begins && session.status() == TxnStatus::Idle {
            if let Err(e) = session.begin_implicit() {
                out.error = Some(e);
                return out;
            }
        }
        if is_copy_from_stdin(&s) {
            if session.status() == TxnStatus::Failed {
                out.error = Some(Error::new(
                    strata_sql::error::code::IN_FAILED_SQL_TRANSACTION,
                    "current transaction is aborted, commands ignored until end of transaction block",
                ));
                return out;
            }
            out.copy = Some((s, iter.collect()));
            return out;
        }
        let result = match role_statement(users, session, &s) {
            Some(r) => r,
            None => session.execute_statement(&s),
        };
        match result {
            Ok(r) => out.results.push(r),
            Err(e) => {
                out.error = Some(e);
                abort_implicit(session);
                return out;
            }
        }
    }
    if let Err(e) = session.end_implicit(true) {
        out.error = Some(e);
    }
    out
}

/// Rolls back the implicit transaction of a Query after an error (a no-op outside one).
fn abort_implicit(session: &mut Session) {
    if let Err(e) = session.end_implicit(false) {
        tracing::warn!(error = %e, "rollback of an implicit transaction failed");
    }
}

fn run_simple(session: &mut Session, users: &Users, sql: &str) -> SimpleOutcome {
    // One plain SELECT/INSERT/UPDATE/DELETE: through the session's plan cache.
    let single = !sql.trim().trim_end_matches(';').contains(';');
    if single && strata_sql::plan_cache::normalize(sql).is_some() {
        let (results, error) = match session.execute(sql) {
            Ok(results) => (results, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        return SimpleOutcome {
            results,
            error,
            copy: None,
            empty: false,
        };
    }
    match strata_sql::parse(sql) {
        Ok(stmts) if stmts.is_empty() => SimpleOutcome {
            results: Vec::new(),
            error: None,
            copy: None,
            empty: true,
        },
        Ok(stmts) => {
            let implicit = stmts.len() > 1;
            run_statements(session, users, stmts, implicit)
        }
        Err(e) => {
            // A syntax error fails an open transaction block, as any error does.
            session.fail_block();
            SimpleOutcome {
                results: Vec::new(),
                error: Some(e),
                copy: None,
                empty: false,
            }
        }
    }
}

impl Connection {
    /// Sends the outcome of simple-protocol statements; returns true if a COPY FROM STDIN now
    /// waits for data.
    async fn send_simple_outcome<C>(
        &self,
        client: &mut C,
        outcome: SimpleOutcome,
    ) -> PgWireResult<bool>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if outcome.empty {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
        }
        for r in outcome.results {
            send_result(client, r, true, &[]).await?;
        }
        if let Some(e) = outcome.error {
            tracing::debug!(code = e.code, message = %e.message, "statement failed");
            client
                .feed(PgWireBackendMessage::ErrorResponse(error_info(&e).into()))
                .await?;
            return Ok(false);
        }
        if let Some((statement, rest)) = outcome.copy {
            let columns = copy_columns(&statement) as i16;
            client
                .send(PgWireBackendMessage::CopyInResponse(CopyInResponse::new(
                    0,
                    columns,
                    vec![0; columns as usize],
                )))
                .await?;
            self.query_state().copy = Some(CopyIn {
                statement,
                params: Vec::new(),
                data: Vec::new(),
                rest,
            });
            return Ok(true);
        }
        Ok(false)
    }

    fn sync_status<C: ClientInfo>(&self, client: &mut C) -> PgWireResult<TransactionStatus> {
        let status = wire_status(self.worker()?.status());
        client.set_transaction_status(status);
        Ok(status)
    }

    fn take_statement(&self, name: &str) -> PgWireResult<Arc<Statement>> {
        self.query_state()
            .statements
            .get(name)
            .cloned()
            .ok_or_else(|| {
                protocol_error(
                    "26000",
                    format!("prepared statement \"{name}\" does not exist"),
                )
            })
    }
}

fn bind_params(statement: &Statement, bind: &Bind) -> Result<Vec<Value>, Error> {
    let types = &statement.prepared.param_types;
    if bind.parameters.len() != types.len() {
        return Err(Error::new(
            "08P01",
            format!(
                "bind message supplies {} parameters, but prepared statement requires {}",
                bind.parameters.len(),
                types.len()
            ),
        ));
    }
    bind.parameters
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let ty = &types[i];
            match p {
                None => Ok(Value::Null),
                Some(bytes) if format_of(&bind.parameter_format_codes, i) == 1 => {
                    types::decode_binary(bytes, ty)
                }
                Some(bytes) => {
                    let text = std::str::from_utf8(bytes).map_err(|_| {
                        Error::new("22021", "invalid byte sequence for encoding \"UTF8\"")
                    })?;
                    if matches!(ty, DataType::Unknown) {
                        Ok(Value::Text(text.to_string()))
                    } else {
                        strata_sql::value::parse_as(text, ty)
                    }
                }
            }
        })
        .collect()
}

fn name_or_default(name: &Option<String>) -> String {
    name.clone().unwrap_or_default()
}

#[async_trait]
impl SimpleQueryHandler for Connection {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let worker = self.worker()?;
        client.set_state(PgWireConnectionState::QueryInProgress);
        let users = &self.server.users;
        let outcome = worker
            .run(|s| run_simple(s, users, &query.query))
            .map_err(|_| self.terminated_error())?;
        let copying = self.send_simple_outcome(client, outcome).await?;
        if copying {
            client.set_state(PgWireConnectionState::CopyInProgress(false));
            return Ok(());
        }
        let status = self.sync_status(client)?;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                status,
            )))
            .await?;
        Ok(())
    }

    async fn do_query<C>(&self, _client: &mut C, _query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // `on_query` is overridden and never calls this.
        Err(protocol_error("XX000", "unexpected query path"))
    }
}

#[async_trait]
impl ExtendedQueryHandler for Connection {
    type Statement = String;
    type QueryParser = NoopQueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::new(NoopQueryParser)
    }

    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let worker = self.worker()?;
        let name = name_or_default(&message.name);
        let types: Vec<DataType> = message
            .type_oids
            .iter()
            .map(|o| types::type_of_oid(*o))
            .collect();
        let sql = message.query;
        let prepared = worker
            .run(move |s| -> Result<Statement, Error> {
                // A SELECT, INSERT, UPDATE or DELETE seen before: from the plan cache, with
                // no parsing or binding (clients re-Parse the unnamed statement each time).
                if let Some(prepared) = s.prepare_cached(&sql, &types)? {
                    return Ok(Statement {
                        prepared,
                        empty: false,
                    });
                }
                let stmts = strata_sql::parse(&sql).inspect_err(|_| s.fail_block())?;
                if stmts.is_empty() {
                    let prepared = s.prepare("", &[])?;
                    return Ok(Statement {
                        prepared,
                        empty: true,
                    });
                }
                // Transaction control and settings take no parameters and return no rows;
                // they are not bound ahead (binding needs a usable transaction, and ROLLBACK
                // must be accepted in a failed one).
                if stmts.len() == 1 && (is_copy_from_stdin(&stmts[0]) || is_control(&stmts[0])) {
                    let statement = stmts.into_iter().next().expect("one statement");
                    return Ok(Statement {
                        prepared: Prepared {
                            text: sql.clone(),
                            statement,
                            param_types: Vec::new(),
                            columns: Vec::new(),
                        },
                        empty: false,
                    });
                }
                Ok(Statement {
                    prepared: s.prepare(&sql, &types)?,
                    empty: false,
                })
            })
            .map_err(|_| self.terminated_error())?;
        self.sync_status(client)?;
        let statement = prepared.map_err(sql_error)?;
        {
            let mut state = self.query_state();
            if !name.is_empty() && state.statements.contains_key(&name) {
                return Err(protocol_error(
                    "42P05",
                    format!("prepared statement \"{name}\" already exists"),
                ));
            }
            state.statements.insert(name, Arc::new(statement));
        }
        client
            .feed(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement = self.take_statement(&name_or_default(&message.statement_name))?;
        let params = bind_params(&statement, &message).map_err(sql_error)?;
        let portal = Portal {
            statement,
            params,
            formats: message.result_column_format_codes.clone(),
            pending: None,
        };
        self.query_state()
            .portals
            .insert(name_or_default(&message.portal_name), portal);
        client
            .feed(PgWireBackendMessage::BindComplete(BindComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = name_or_default(&message.name);
        let (columns, formats, params) = match message.target_type {
            TARGET_TYPE_BYTE_STATEMENT => {
                let s = self.take_statement(&name)?;
                (
                    s.prepared.columns.clone(),
                    Vec::new(),
                    Some(
                        s.prepared
                            .param_types
                            .iter()
                            .map(|t| t.oid())
                            .collect::<Vec<_>>(),
                    ),
                )
            }
            TARGET_TYPE_BYTE_PORTAL => {
                let state = self.query_state();
                let p = state.portals.get(&name).ok_or_else(|| {
                    protocol_error("34000", format!("portal \"{name}\" does not exist"))
                })?;
                (
                    p.statement.prepared.columns.clone(),
                    p.formats.clone(),
                    None,
                )
            }
            other => return Err(PgWireError::InvalidTargetType(other)),
        };
        if let Some(oids) = params {
            client
                .feed(PgWireBackendMessage::ParameterDescription(
                    ParameterDescription::new(oids),
                ))
                .await?;
        }
        if columns.is_empty() {
            client
                .feed(PgWireBackendMessage::NoData(NoData::new()))
                .await?;
        } else {
            client
                .feed(PgWireBackendMessage::RowDescription(row_description(
                    &columns, &formats,
                )))
                .await?;
        }
        Ok(())
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let worker = self.worker()?;
        let name = name_or_default(&message.name);
        let max_rows = usize::try_from(message.max_rows).unwrap_or(0);
        let (statement, params, formats, pending) = {
            let mut state = self.query_state();
            let p = state.portals.get_mut(&name).ok_or_else(|| {
                protocol_error("34000", format!("portal \"{name}\" does not exist"))
            })?;
            (
                p.statement.clone(),
                p.params.clone(),
                p.formats.clone(),
                p.pending.take(),
            )
        };
        if statement.empty {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
            return Ok(());
        }
        if is_copy_from_stdin(&statement.prepared.statement) {
            if worker.status() == TxnStatus::Failed {
                return Err(protocol_error(
                    "25P02",
                    "current transaction is aborted, commands ignored until end of transaction block",
                ));
            }
            let columns = copy_columns(&statement.prepared.statement) as i16;
            self.query_state().copy = Some(CopyIn {
                statement: statement.prepared.statement.clone(),
                params,
                data: Vec::new(),
                rest: Vec::new(),
            });
            client.set_state(PgWireConnectionState::CopyInProgress(true));
            client
                .send(PgWireBackendMessage::CopyInResponse(CopyInResponse::new(
                    0,
                    columns,
                    vec![0; columns as usize],
                )))
                .await?;
            return Ok(());
        }
        let mut pending = match pending {
            Some(p) => p,
            None => {
                let result = worker
                    .run(|s| s.execute_prepared(&statement.prepared, &params))
                    .map_err(|_| self.terminated_error())?;
                self.sync_status(client)?;
                let result = result.map_err(sql_error)?;
                if result.copy_out.is_some() || result.columns.is_empty() {
                    return send_result(client, result, false, &formats).await;
                }
                let tag = result.tag.split(' ').next().unwrap_or("SELECT").to_string();
                PendingRows {
                    columns: result.columns,
                    rows: result.rows.into_iter(),
                    tag,
                }
            }
        };
        let mut sent = 0usize;
        while max_rows == 0 || sent < max_rows {
            let Some(row) = pending.rows.next() else {
                break;
            };
            client
                .feed(PgWireBackendMessage::DataRow(data_row(
                    &row,
                    &pending.columns,
                    &formats,
                )?))
                .await?;
            sent += 1;
        }
        if pending.rows.len() > 0 {
            client
                .feed(PgWireBackendMessage::PortalSuspended(PortalSuspended::new()))
                .await?;
            if let Some(p) = self.query_state().portals.get_mut(&name) {
                p.pending = Some(pending);
            }
        } else {
            // PostgreSQL counts the rows of the last chunk only for a cursor-like portal; the
            // tag carries the total for a single Execute, which is what clients read.
            let tag = if pending.tag == "SELECT" {
                format!("SELECT {sent}")
            } else {
                format!("{} {sent}", pending.tag)
            };
            client
                .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                    tag,
                )))
                .await?;
        }
        Ok(())
    }

    async fn on_flush<C>(&self, client: &mut C, _message: Flush) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        client.flush().await?;
        Ok(())
    }

    async fn on_sync<C>(&self, client: &mut C, _message: PgSync) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.query_state().portals.remove("");
        let status = self.sync_status(client)?;
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                status,
            )))
            .await?;
        Ok(())
    }

    async fn on_close<C>(&self, client: &mut C, message: Close) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = name_or_default(&message.name);
        {
            let mut state = self.query_state();
            match message.target_type {
                TARGET_TYPE_BYTE_STATEMENT => {
                    state.statements.remove(&name);
                }
                TARGET_TYPE_BYTE_PORTAL => {
                    state.portals.remove(&name);
                }
                other => return Err(PgWireError::InvalidTargetType(other)),
            }
        }
        client
            .feed(PgWireBackendMessage::CloseComplete(CloseComplete::new()))
            .await?;
        Ok(())
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        _target: &StoredStatement<Self::Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // `on_describe` is overridden and never calls this.
        Err(protocol_error("XX000", "unexpected describe path"))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        _target: &PgPortal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Err(protocol_error("XX000", "unexpected describe path"))
    }

    async fn do_query<C>(
        &self,
        _client: &mut C,
        _portal: &PgPortal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Err(protocol_error("XX000", "unexpected execute path"))
    }
}

#[async_trait]
impl CopyHandler for Connection {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut state = self.query_state();
        let Some(copy) = state.copy.as_mut() else {
            return Err(protocol_error(
                "08P01",
                "CopyData without a COPY in progress",
            ));
        };
        if copy.data.len() + copy_data.data.len() > MAX_COPY_BYTES {
            state.copy = None;
            return Err(protocol_error(
                "54000",
                format!("COPY FROM STDIN data exceeds {MAX_COPY_BYTES} bytes"),
            ));
        }
        copy.data.extend_from_slice(&copy_data.data);
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let worker = self.worker()?;
        let Some(copy) = self.query_state().copy.take() else {
            return Err(protocol_error(
                "08P01",
                "CopyDone without a COPY in progress",
            ));
        };
        let data = String::from_utf8(copy.data)
            .map_err(|_| protocol_error("22021", "invalid byte sequence for encoding \"UTF8\""))?;
        let statement = with_payload(&copy.statement, data);
        let params = copy.params;
        let rest = copy.rest;
        let server = self.server.clone();
        let (copied, outcome) = worker
            .run(move |s| {
                let copied = if params.is_empty() {
                    s.execute_statement(&statement)
                } else {
                    let p = Prepared {
                        text: statement.to_string(),
                        statement,
                        param_types: params.iter().map(Value::data_type).collect(),
                        columns: Vec::new(),
                    };
                    s.execute_prepared(&p, &params)
                };
                let outcome = match &copied {
                    Ok(_) if !rest.is_empty() || s.in_implicit() => {
                        let implicit = s.in_implicit();
                        Some(run_statements(s, &server.users, rest, implicit))
                    }
                    Ok(_) => None,
                    Err(_) => {
                        abort_implicit(s);
                        None
                    }
                };
                (copied, outcome)
            })
            .map_err(|_| self.terminated_error())?;
        self.sync_status(client)?;
        let copied = copied.map_err(sql_error)?;
        client
            .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                copied.tag,
            )))
            .await?;
        if let Some(outcome) = outcome {
            if self.send_simple_outcome(client, outcome).await? {
                // A second COPY FROM STDIN in the same Query: wait for its data.
                client.set_state(PgWireConnectionState::CopyInProgress(false));
            }
            self.sync_status(client)?;
        }
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.query_state().copy = None;
        if let Ok(worker) = self.worker() {
            // The COPY's Query may have opened an implicit transaction: it fails with the COPY.
            let _ = worker.run(abort_implicit);
            client.set_transaction_status(wire_status(worker.status()));
        }
        protocol_error("57014", format!("COPY from stdin failed: {}", fail.message))
    }
}
