//! The remote backend: the shell on a server speaking the PostgreSQL wire protocol (Strata's
//! `strata serve`, or PostgreSQL itself), through tokio-postgres on a current-thread runtime.
//!
//! How psql's behaviour is kept over a client library that hides some protocol details:
//!
//! 1. Statements go out as simple queries (`simple_query_raw`), one per statement the shell
//!    split off, so results arrive as psql shows them and an error stops only its statement.
//! 2. Command tags: tokio-postgres reports a CommandComplete as a row count only, so the tag is
//!    rebuilt from the statement's leading keywords and that count ([`command_tag`]):
//!    `INSERT 0 n`, `UPDATE n`, `CREATE TABLE`, `SELECT n` for CREATE TABLE AS. `EXECUTE` of a
//!    prepared statement shows `EXECUTE` (the server's tag would name the prepared command).
//! 3. Transaction state: ReadyForQuery's status is not exposed either, so it is tracked from
//!    the statements that succeed (BEGIN, COMMIT, ROLLBACK, ROLLBACK TO) and from errors (an
//!    error inside a transaction fails it), as the server does.
//! 4. Column alignment: simple-query results carry no types, so a column is right-aligned
//!    (as psql aligns numbers) when every value in it is a number.
//! 5. Notices (`NOTICE:  table "t" does not exist, skipping`) go to stderr as they arrive.
//! 6. Ctrl-C: while a statement or COPY runs, its cancel token is published to
//!    [`super::interrupt::Interrupts`]; a SIGINT sends a CancelRequest on a separate
//!    connection, and the statement ends with 57014 through the normal error path.
//! 7. `\copy ... to`: tokio-postgres's copy-out stream drops the final row count, so `COPY n`
//!    counts the rows in the data (text: lines; CSV: records, less the header).
//!
//! Left out: TLS (connections are plain TCP or a Unix socket; `sslmode=require` fails),
//! password prompts (use `PGPASSWORD` or the URL), reconnecting after a lost connection.

use std::io::{Read, Write};
use std::pin::pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::runtime::Runtime;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, SimpleQueryMessage};

use super::backend::{
    listed_kinds, no_relation, Backend, CopyError, DbError, Executed, ResultRows, StatementOutput,
    TxnState,
};
use super::interrupt::Interrupts;
use super::{glob, normalize_name, Piece, Splitter, TableData};

/// Where to connect: a `postgres://` URL and psql's `-h -p -U -d` flags.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `postgres://user:password@host:port/dbname?options` (or `postgresql://`).
    pub url: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub dbname: Option<String>,
}

/// Whether a DBFILE argument is a connection URL rather than a file.
pub fn is_url(arg: &str) -> bool {
    arg.starts_with("postgres://") || arg.starts_with("postgresql://")
}

/// A session on a server.
pub struct Remote {
    runtime: Runtime,
    client: Client,
    /// The task that drives the connection (see [`Remote::connect`]).
    connection_task: tokio::task::JoinHandle<()>,
    state: TxnState,
    interrupts: Option<Arc<Interrupts>>,
    host: String,
    port: u16,
    user: String,
    dbname: String,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A tokio-postgres error as the shell prints it: the server's error with its SQLSTATE, or
/// a connection problem (08006).
fn db_error(e: tokio_postgres::Error) -> DbError {
    match e.as_db_error() {
        Some(d) => DbError {
            code: d.code().code().to_string(),
            message: d.message().to_string(),
            position: match d.position() {
                Some(tokio_postgres::error::ErrorPosition::Original(p)) => Some(*p as usize),
                _ => None,
            },
            notes: [
                ("DETAIL", d.detail()),
                ("HINT", d.hint()),
                ("CONTEXT", d.where_()),
            ]
            .into_iter()
            .filter_map(|(label, text)| text.map(|t| (label, t.to_string())))
            .collect(),
        },
        None if e.is_closed() => DbError::new("08006", "server closed the connection"),
        None => DbError::new("08006", e.to_string()),
    }
}

impl Remote {
    /// Connects; Err is the message to print (`connection to server ... failed: ...`).
    pub fn connect(opts: &ConnectOptions) -> Result<Remote, String> {
        let parsed: Option<Config> = match &opts.url {
            Some(url) => Some(
                url.parse()
                    .map_err(|e| format!("invalid connection URL \"{url}\": {e}"))?,
            ),
            None => None,
        };
        let from_url = parsed.as_ref();
        let host = opts
            .host
            .clone()
            .or_else(|| {
                from_url.and_then(|c| {
                    c.get_hosts().first().map(|h| match h {
                        tokio_postgres::config::Host::Tcp(h) => h.clone(),
                        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                    })
                })
            })
            .or_else(|| env("PGHOST"))
            .unwrap_or_else(|| "localhost".into());
        let port = opts
            .port
            .or_else(|| from_url.and_then(|c| c.get_ports().first().copied()))
            .or_else(|| env("PGPORT").and_then(|p| p.parse().ok()))
            .unwrap_or(5432);
        let user = opts
            .user
            .clone()
            .or_else(|| from_url.and_then(|c| c.get_user().map(str::to_string)))
            .or_else(|| env("PGUSER"))
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".into());
        let dbname = opts
            .dbname
            .clone()
            .or_else(|| from_url.and_then(|c| c.get_dbname().map(str::to_string)))
            .or_else(|| env("PGDATABASE"))
            .unwrap_or_else(|| user.clone());
        let password: Option<Vec<u8>> = from_url
            .and_then(|c| c.get_password().map(<[u8]>::to_vec))
            .or_else(|| env("PGPASSWORD").map(String::into_bytes));
        let mut config = Config::new();
        config
            .host(&host)
            .port(port)
            .user(&user)
            .dbname(&dbname)
            .application_name("strata");
        if let Some(p) = &password {
            config.password(p);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the network runtime: {e}"))?;
        let (client, connection) = runtime.block_on(config.connect(NoTls)).map_err(|e| {
            let why = match e.as_db_error() {
                Some(d) => format!("FATAL:  {}", d.message()),
                None => match std::error::Error::source(&e) {
                    Some(cause) => format!("{e}: {cause}"),
                    None => e.to_string(),
                },
            };
            format!("connection to server at \"{host}\", port {port} failed: {why}")
        })?;
        // The connection task runs whenever the runtime does (inside block_on); it prints
        // notices as psql does and ends when the connection closes.
        let connection_task = runtime.spawn(async move {
            let mut connection = connection;
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notice(n))) => {
                        eprintln!("{}:  {}", n.severity(), n.message());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        eprintln!("strata: connection to server lost: {e}");
                        break;
                    }
                    None => break,
                }
            }
        });
        Ok(Remote {
            runtime,
            client,
            connection_task,
            state: TxnState::Idle,
            interrupts: None,
            host,
            port,
            user,
            dbname,
        })
    }

    /// From now on, a Ctrl-C cancels the running statement.
    pub fn set_interrupts(&mut self, interrupts: Arc<Interrupts>) {
        self.interrupts = Some(interrupts);
    }

    /// Publishes the cancel token while `f` runs, so a Ctrl-C cancels it.
    fn cancelable<T>(&mut self, f: impl AsyncFnOnce(&Client) -> T) -> T {
        if let Some(i) = &self.interrupts {
            i.set_running(Some(self.client.cancel_token()));
        }
        let client = &self.client;
        let out = self.runtime.block_on(f(client));
        if let Some(i) = &self.interrupts {
            i.set_running(None);
        }
        out
    }

    /// Runs an internal query (for `\d` and completion) and returns its rows as text. An
    /// error inside a transaction fails it, as any statement's would.
    fn query_rows(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, DbError> {
        let result = self.cancelable(async |client| -> Result<_, tokio_postgres::Error> {
            let mut rows = Vec::new();
            for m in client.simple_query(sql).await? {
                if let SimpleQueryMessage::Row(r) = m {
                    rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
                }
            }
            Ok(rows)
        });
        result.map_err(|e| {
            if self.state != TxnState::Idle {
                self.state = TxnState::Failed;
            }
            db_error(e)
        })
    }
}

/// A result as it arrives: column names and rows of text cells (None is NULL).
type RawTable = (Vec<String>, Vec<Vec<Option<String>>>);

/// A string as a SQL literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Whether a value is a number as PostgreSQL prints one.
fn is_number(s: &str) -> bool {
    let t = s.strip_prefix('-').unwrap_or(s);
    if matches!(t, "NaN" | "Infinity") {
        return true;
    }
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    (!int.is_empty() || !frac.is_empty())
        && digits(int)
        && digits(frac)
        && exponent.is_none_or(|e| {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && digits(e)
        })
}

/// Builds a result table; numeric columns are right-aligned.
fn result_table(headers: Vec<String>, rows: Vec<Vec<Option<String>>>) -> TableData {
    let right = (0..headers.len())
        .map(|j| {
            let mut values = rows
                .iter()
                .filter_map(|r| r.get(j).and_then(|c| c.as_deref()));
            let mut any = false;
            let all = values.all(|v| {
                any = true;
                is_number(v)
            });
            any && all
        })
        .collect();
    TableData {
        title: None,
        headers,
        right,
        rows,
        footers: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Command tags and transaction effects from statement text
// ---------------------------------------------------------------------------------------------

/// The keywords of a statement outside quotes and comments, upper-cased, each with its
/// parenthesis depth.
fn keywords(sql: &str) -> Vec<(String, u32)> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut depth = 0u32;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '-' && next == Some('-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut nest = 1;
            i += 2;
            while i < chars.len() && nest > 0 {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    nest += 1;
                    i += 1;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    nest -= 1;
                    i += 1;
                }
                i += 1;
            }
        } else if c == '\'' || c == '"' {
            i += 1;
            while i < chars.len() {
                if chars[i] == c {
                    if chars.get(i + 1) == Some(&c) {
                        i += 1;
                    } else {
                        break;
                    }
                }
                i += 1;
            }
            i += 1;
        } else if c == '$' && (next.is_some_and(|n| n.is_alphabetic() || n == '_' || n == '$')) {
            // A dollar quote: skip to its closing tag.
            let start = i;
            let mut j = i + 1;
            while j < chars.len()
                && chars[j] != '$'
                && (chars[j].is_alphanumeric() || chars[j] == '_')
            {
                j += 1;
            }
            if chars.get(j) == Some(&'$') {
                let tag: String = chars[start..=j].iter().collect();
                let rest: String = chars[j + 1..].iter().collect();
                match rest.find(&tag) {
                    Some(end) => i = j + 1 + rest[..end].chars().count() + tag.chars().count(),
                    None => i = chars.len(),
                }
            } else {
                i = j;
            }
        } else if c == '(' {
            depth += 1;
            i += 1;
        } else if c == ')' {
            depth = depth.saturating_sub(1);
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push((word.to_uppercase(), depth));
        } else {
            i += 1;
        }
    }
    out
}

/// What a successful statement does to the transaction state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnEffect {
    None,
    Begin,
    /// COMMIT, ROLLBACK, PREPARE TRANSACTION: the transaction block ends.
    End,
    /// ROLLBACK TO SAVEPOINT: a failed transaction is usable again.
    RollbackTo,
}

fn txn_effect(sql: &str) -> TxnEffect {
    let words = keywords(sql);
    let w = |i: usize| words.get(i).map(|(w, _)| w.as_str()).unwrap_or("");
    match w(0) {
        "BEGIN" => TxnEffect::Begin,
        "START" if w(1) == "TRANSACTION" => TxnEffect::Begin,
        "COMMIT" | "END" if w(1) != "PREPARED" => TxnEffect::End,
        "ROLLBACK" | "ABORT" if words.iter().any(|(w, _)| w == "TO") => TxnEffect::RollbackTo,
        "ROLLBACK" | "ABORT" if w(1) != "PREPARED" => TxnEffect::End,
        "PREPARE" if w(1) == "TRANSACTION" => TxnEffect::End,
        _ => TxnEffect::None,
    }
}

/// Object kinds named by two or three words after CREATE / DROP / ALTER.
const MULTI_WORD_OBJECTS: &[&[&str]] = &[
    &["FOREIGN", "DATA", "WRAPPER"],
    &["TEXT", "SEARCH", "CONFIGURATION"],
    &["TEXT", "SEARCH", "DICTIONARY"],
    &["TEXT", "SEARCH", "PARSER"],
    &["TEXT", "SEARCH", "TEMPLATE"],
    &["MATERIALIZED", "VIEW"],
    &["FOREIGN", "TABLE"],
    &["EVENT", "TRIGGER"],
    &["ACCESS", "METHOD"],
    &["OPERATOR", "CLASS"],
    &["OPERATOR", "FAMILY"],
    &["USER", "MAPPING"],
    &["DEFAULT", "PRIVILEGES"],
];

/// The object kind at the start of `words` ("TABLE", "MATERIALIZED VIEW"...).
fn object_kind(words: &[&str]) -> String {
    for kind in MULTI_WORD_OBJECTS {
        if words.len() >= kind.len() && words[..kind.len()] == **kind {
            return kind.join(" ");
        }
    }
    match words.first().copied() {
        Some("USER" | "GROUP") => "ROLE".into(),
        Some(w) => w.to_string(),
        None => String::new(),
    }
}

/// The command tag PostgreSQL sends for `sql` (one statement) that affected or returned
/// `rows` rows; `failed` when it ran in a failed transaction (COMMIT then reports ROLLBACK).
pub fn command_tag(sql: &str, rows: u64, failed: bool) -> String {
    let words = keywords(sql);
    let plain: Vec<&str> = words.iter().map(|(w, _)| w.as_str()).collect();
    let w = |i: usize| plain.get(i).copied().unwrap_or("");
    let mut verb = w(0);
    if verb == "WITH" {
        // The main statement after the common table expressions.
        verb = words
            .iter()
            .skip(1)
            .find(|(w, d)| {
                *d == 0
                    && matches!(
                        w.as_str(),
                        "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "VALUES" | "TABLE"
                    )
            })
            .map_or("SELECT", |(w, _)| w.as_str());
    }
    match verb {
        "" => String::new(),
        "SELECT" | "VALUES" | "TABLE" => format!("SELECT {rows}"),
        "INSERT" => format!("INSERT 0 {rows}"),
        "UPDATE" | "DELETE" | "MERGE" | "FETCH" | "MOVE" | "COPY" => format!("{verb} {rows}"),
        "CREATE" => {
            let mut rest: &[&str] = &plain[1..];
            if rest.starts_with(&["OR", "REPLACE"]) {
                rest = &rest[2..];
            }
            while let Some((
                "TEMP" | "TEMPORARY" | "LOCAL" | "GLOBAL" | "UNLOGGED" | "UNIQUE" | "TRUSTED"
                | "PROCEDURAL" | "DEFAULT" | "CONSTRAINT" | "RECURSIVE",
                tail,
            )) = rest.split_first().map(|(h, t)| (*h, t))
            {
                rest = tail;
            }
            let kind = object_kind(rest);
            let as_query = words.iter().any(|(w, d)| w == "AS" && *d == 0);
            if (kind == "TABLE" && as_query) || kind == "MATERIALIZED VIEW" {
                format!("SELECT {rows}")
            } else {
                format!("CREATE {kind}")
            }
        }
        "DROP" | "ALTER" => format!("{verb} {}", object_kind(&plain[1..])),
        "BEGIN" => "BEGIN".into(),
        "START" => "START TRANSACTION".into(),
        "COMMIT" | "END" if w(1) == "PREPARED" => "COMMIT PREPARED".into(),
        "COMMIT" | "END" if failed => "ROLLBACK".into(),
        "COMMIT" | "END" => "COMMIT".into(),
        "ROLLBACK" | "ABORT" if w(1) == "PREPARED" => "ROLLBACK PREPARED".into(),
        "ROLLBACK" | "ABORT" => "ROLLBACK".into(),
        "PREPARE" if w(1) == "TRANSACTION" => "PREPARE TRANSACTION".into(),
        "TRUNCATE" => "TRUNCATE TABLE".into(),
        "LOCK" => "LOCK TABLE".into(),
        "ANALYSE" => "ANALYZE".into(),
        "DISCARD" => match w(1) {
            "TEMPORARY" => "DISCARD TEMP".into(),
            other => format!("DISCARD {other}"),
        },
        "DEALLOCATE" if w(1) == "ALL" || (w(1) == "PREPARE" && w(2) == "ALL") => {
            "DEALLOCATE ALL".into()
        }
        "REFRESH" => "REFRESH MATERIALIZED VIEW".into(),
        "SECURITY" => "SECURITY LABEL".into(),
        "IMPORT" => "IMPORT FOREIGN SCHEMA".into(),
        other => other.to_string(),
    }
}

/// Counts the rows in COPY output as it streams by: text format has one per line; CSV one per
/// record (a quoted field may hold line breaks, and a quote may open in one chunk and close in
/// the next).
#[derive(Debug, Default)]
struct RecordCounter {
    csv: bool,
    quoted: bool,
    lines: u64,
}

impl RecordCounter {
    fn feed(&mut self, data: &[u8]) {
        for &b in data {
            match b {
                b'"' if self.csv => self.quoted = !self.quoted,
                b'\n' if !self.quoted => self.lines += 1,
                _ => {}
            }
        }
    }

    /// The rows seen, less a header line.
    fn rows(&self, header: bool) -> u64 {
        if header {
            self.lines.saturating_sub(1)
        } else {
            self.lines
        }
    }
}

/// Whether a `COPY ... TO STDOUT` statement's options ask for CSV, and for a header line.
fn copy_out_format(copy_sql: &str) -> (bool, bool) {
    let words = keywords(copy_sql);
    let after = words
        .iter()
        .rposition(|(w, _)| w == "STDOUT")
        .map_or(&words[..], |i| &words[i + 1..]);
    let csv = after.iter().any(|(w, _)| w == "CSV");
    let header = after.iter().enumerate().any(|(i, (w, _))| {
        w == "HEADER"
            && !after
                .get(i + 1)
                .is_some_and(|(n, _)| matches!(n.as_str(), "FALSE" | "OFF"))
    });
    (csv, header)
}

/// The statements of SQL text, split as the shell splits input.
fn statements(sql: &str) -> Vec<String> {
    let mut sp = Splitter::default();
    sp.push(sql);
    sp.push("\n");
    let mut out = Vec::new();
    while let Some(p) = sp.next_piece() {
        if let Piece::Sql(s) = p {
            out.push(s);
        }
    }
    out.extend(sp.take_buffer());
    out
}

impl Backend for Remote {
    fn execute(&mut self, sql: &str) -> Executed {
        let (raw, error) = self.cancelable(async |client| {
            let mut raw: Vec<(Option<RawTable>, u64)> = Vec::new();
            let stream = match client.simple_query_raw(sql).await {
                Ok(s) => s,
                Err(e) => return (raw, Some(e)),
            };
            let mut stream = pin!(stream);
            let mut current: Option<RawTable> = None;
            while let Some(m) = stream.next().await {
                match m {
                    Ok(SimpleQueryMessage::RowDescription(cols)) => {
                        let names = cols.iter().map(|c| c.name().to_string()).collect();
                        current = Some((names, Vec::new()));
                    }
                    Ok(SimpleQueryMessage::Row(r)) => {
                        let row = (0..r.len()).map(|i| r.get(i).map(str::to_string)).collect();
                        if let Some((_, rows)) = &mut current {
                            rows.push(row);
                        }
                    }
                    Ok(SimpleQueryMessage::CommandComplete(n)) => raw.push((current.take(), n)),
                    Ok(_) => {}
                    Err(e) => return (raw, Some(e)),
                }
            }
            (raw, None)
        });
        let stmts = statements(sql);
        let mut outputs = Vec::new();
        for (i, (table, n)) in raw.into_iter().enumerate() {
            let text = stmts.get(i).map(String::as_str).unwrap_or("");
            let tag = command_tag(text, n, self.state == TxnState::Failed);
            self.state = match (txn_effect(text), self.state) {
                (TxnEffect::Begin, _) => TxnState::InTransaction,
                (TxnEffect::End, _) => TxnState::Idle,
                (TxnEffect::RollbackTo, _) => TxnState::InTransaction,
                (TxnEffect::None, s) => s,
            };
            outputs.push(StatementOutput {
                rows: table.map(|(headers, rows)| ResultRows::Text(result_table(headers, rows))),
                tag,
            });
        }
        let error = error.map(|e| {
            let closed = e.is_closed() || self.client.is_closed();
            self.state = if closed || self.state == TxnState::Idle {
                TxnState::Idle
            } else {
                TxnState::Failed
            };
            db_error(e)
        });
        Executed { outputs, error }
    }

    fn copy_in(&mut self, copy_sql: &str, data: &mut dyn Read) -> Result<String, CopyError> {
        let result = self.cancelable(async |client| {
            let sink = client
                .copy_in::<_, Bytes>(copy_sql)
                .await
                .map_err(|e| CopyError::Db(db_error(e)))?;
            let mut sink = pin!(sink);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                // Dropping the sink unfinished (on a read error) aborts the COPY.
                let n = data
                    .read(&mut buf)
                    .map_err(|e| CopyError::Io(e.to_string()))?;
                if n == 0 {
                    break;
                }
                sink.send(Bytes::copy_from_slice(&buf[..n]))
                    .await
                    .map_err(|e| CopyError::Db(db_error(e)))?;
            }
            sink.as_mut()
                .finish()
                .await
                .map_err(|e| CopyError::Db(db_error(e)))
        });
        match result {
            Ok(n) => Ok(format!("COPY {n}")),
            Err(e) => {
                if self.state != TxnState::Idle {
                    self.state = TxnState::Failed;
                }
                Err(e)
            }
        }
    }

    fn copy_out(&mut self, copy_sql: &str, out: &mut dyn Write) -> Result<String, CopyError> {
        let (csv, header) = copy_out_format(copy_sql);
        let result = self.cancelable(async |client| {
            let stream = client
                .copy_out(copy_sql)
                .await
                .map_err(|e| CopyError::Db(db_error(e)))?;
            let mut stream = pin!(stream);
            let mut counter = RecordCounter {
                csv,
                ..RecordCounter::default()
            };
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| CopyError::Db(db_error(e)))?;
                counter.feed(&chunk);
                out.write_all(&chunk)
                    .map_err(|e| CopyError::Io(e.to_string()))?;
            }
            Ok(counter.rows(header))
        });
        match result {
            Ok(n) => Ok(format!("COPY {n}")),
            Err(e) => {
                if self.state != TxnState::Idle {
                    self.state = TxnState::Failed;
                }
                Err(e)
            }
        }
    }

    fn txn_state(&mut self) -> TxnState {
        self.state
    }

    fn describe(&mut self, which: &str, pattern: Option<&str>) -> Result<Vec<TableData>, String> {
        describe(self, which, pattern)
    }

    fn completion_names(&mut self) -> Vec<(String, Vec<String>)> {
        if self.state != TxnState::Idle {
            // A failed query would fail the user's transaction.
            return Vec::new();
        }
        let Ok(rows) = self.query_rows(
            "SELECT table_name, column_name FROM information_schema.columns \
             WHERE table_schema NOT IN ('pg_catalog', 'information_schema') \
             ORDER BY table_name, ordinal_position",
        ) else {
            return Vec::new();
        };
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in rows {
            let (Some(Some(t)), Some(Some(c))) = (r.first(), r.get(1)) else {
                continue;
            };
            match out.last_mut() {
                Some((name, cols)) if name == t => cols.push(c.clone()),
                _ => out.push((t.clone(), vec![c.clone()])),
            }
        }
        out
    }

    fn conninfo(&self) -> String {
        format!(
            "You are connected to database \"{}\" as user \"{}\" on host \"{}\" at port \"{}\".",
            self.dbname, self.user, self.host, self.port
        )
    }

    fn prompt_name(&self) -> &str {
        &self.dbname
    }

    fn banner(&self) -> String {
        format!(
            "postgres://{}@{}:{}/{}",
            self.user, self.host, self.port, self.dbname
        )
    }

    fn close(self: Box<Self>) {
        // With the client gone the connection task sends Terminate and ends (the server rolls
        // back an open transaction); give it a moment to do so, as psql's exit does.
        let Remote {
            runtime,
            client,
            connection_task,
            ..
        } = *self;
        drop(client);
        runtime.block_on(async {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), connection_task).await;
        });
    }
}

// ---------------------------------------------------------------------------------------------
// \d over information_schema and pg_indexes
// ---------------------------------------------------------------------------------------------

/// One relation `\d` can list: schema, name, type (`table`, `view`, `sequence`, `index`),
/// and for an index its table and definition.
struct RemoteRelation {
    schema: String,
    name: String,
    kind: &'static str,
    table: String,
    definition: String,
}

const USER_SCHEMAS: &str = "NOT IN ('pg_catalog', 'information_schema')";

fn cell(r: &[Option<String>], i: usize) -> String {
    r.get(i).cloned().flatten().unwrap_or_default()
}

/// The rows of a catalog query, none if the server has no such relation (42P01).
fn optional(
    rows: Result<Vec<Vec<Option<String>>>, DbError>,
) -> Result<Vec<Vec<Option<String>>>, DbError> {
    match rows {
        Err(e) if e.code == "42P01" => Ok(Vec::new()),
        other => other,
    }
}

fn relations(remote: &mut Remote) -> Result<Vec<RemoteRelation>, DbError> {
    let mut out = Vec::new();
    for r in remote.query_rows(&format!(
        "SELECT table_schema, table_name, table_type FROM information_schema.tables \
         WHERE table_schema {USER_SCHEMAS}"
    ))? {
        out.push(RemoteRelation {
            schema: cell(&r, 0),
            name: cell(&r, 1),
            kind: if cell(&r, 2) == "VIEW" {
                "view"
            } else {
                "table"
            },
            table: String::new(),
            definition: String::new(),
        });
    }
    // A server with fewer catalog views (Strata's own, say) may lack these two: then there
    // is nothing of that kind to list.
    for r in optional(remote.query_rows(&format!(
        "SELECT sequence_schema, sequence_name FROM information_schema.sequences \
         WHERE sequence_schema {USER_SCHEMAS}"
    )))? {
        out.push(RemoteRelation {
            schema: cell(&r, 0),
            name: cell(&r, 1),
            kind: "sequence",
            table: String::new(),
            definition: String::new(),
        });
    }
    for r in optional(remote.query_rows(&format!(
        "SELECT schemaname, indexname, tablename, indexdef FROM pg_catalog.pg_indexes \
         WHERE schemaname {USER_SCHEMAS}"
    )))? {
        out.push(RemoteRelation {
            schema: cell(&r, 0),
            name: cell(&r, 1),
            kind: "index",
            table: cell(&r, 2),
            definition: cell(&r, 3),
        });
    }
    out.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    Ok(out)
}

/// An index definition as `\d TABLE` lists it: `UNIQUE, btree (id)` from
/// `CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id)`.
fn index_summary(definition: &str, primary_key: bool) -> String {
    let method = definition
        .split_once(" USING ")
        .map_or(definition, |(_, m)| m);
    let prefix = if primary_key {
        "PRIMARY KEY, "
    } else if definition.starts_with("CREATE UNIQUE") {
        "UNIQUE, "
    } else {
        ""
    };
    format!("{prefix}{method}")
}

fn describe(remote: &mut Remote, which: &str, arg: Option<&str>) -> Result<Vec<TableData>, String> {
    let rels = relations(remote).map_err(|e| e.render(None).trim_end().to_string())?;
    let pattern = arg.map(normalize_name);
    let matching: Vec<&RemoteRelation> = rels
        .iter()
        .filter(|r| pattern.as_ref().is_none_or(|p| glob(p, &r.name)))
        .collect();
    if which == "d" && pattern.is_some() {
        if matching.is_empty() {
            return Err(no_relation(Some(arg.unwrap_or_default())));
        }
        let mut out = Vec::new();
        for rel in matching {
            out.push(
                describe_one(remote, rel, &rels)
                    .map_err(|e| e.render(None).trim_end().to_string())?,
            );
        }
        return Ok(out);
    }
    let kinds = listed_kinds(which);
    let listed: Vec<&RemoteRelation> = matching
        .into_iter()
        .filter(|r| kinds.contains(&r.kind))
        .collect();
    if listed.is_empty() {
        return Err(no_relation(arg));
    }
    let t = if which == "di" {
        let rows = listed
            .iter()
            .map(|r| {
                vec![
                    r.schema.clone(),
                    r.name.clone(),
                    r.kind.into(),
                    r.table.clone(),
                ]
            })
            .collect();
        TableData::text(
            "List of relations",
            &["Schema", "Name", "Type", "Table"],
            rows,
        )
    } else {
        let rows = listed
            .iter()
            .map(|r| vec![r.schema.clone(), r.name.clone(), r.kind.into()])
            .collect();
        TableData::text("List of relations", &["Schema", "Name", "Type"], rows)
    };
    Ok(vec![t])
}

/// A column type as psql shows it, from information_schema.columns: `data_type`, `udt_name`,
/// `character_maximum_length`, and `numeric_precision`, `numeric_scale` (empty when NULL).
fn column_type(
    data_type: &str,
    udt_name: &str,
    max_length: &str,
    precision: &str,
    scale: &str,
) -> String {
    match data_type {
        "USER-DEFINED" => udt_name.to_string(),
        "ARRAY" => format!("{}[]", udt_name.trim_start_matches('_')),
        "numeric" if !precision.is_empty() => format!("numeric({precision},{scale})"),
        _ if !max_length.is_empty() => format!("{data_type}({max_length})"),
        _ => data_type.to_string(),
    }
}

fn describe_one(
    remote: &mut Remote,
    rel: &RemoteRelation,
    all: &[RemoteRelation],
) -> Result<TableData, DbError> {
    let qualified = format!("{}.{}", rel.schema, rel.name);
    let (schema, name) = (literal(&rel.schema), literal(&rel.name));
    match rel.kind {
        "table" | "view" => {
            let rows = remote
                .query_rows(&format!(
                    "SELECT column_name, data_type, udt_name, character_maximum_length, \
                     is_nullable, column_default, numeric_precision, numeric_scale \
                     FROM information_schema.columns \
                     WHERE table_schema = {schema} AND table_name = {name} \
                     ORDER BY ordinal_position"
                ))?
                .into_iter()
                .map(|r| {
                    let ty = column_type(
                        &cell(&r, 1),
                        &cell(&r, 2),
                        &cell(&r, 3),
                        &cell(&r, 6),
                        &cell(&r, 7),
                    );
                    let nullable = if cell(&r, 4) == "NO" { "not null" } else { "" };
                    if rel.kind == "view" {
                        vec![cell(&r, 0), ty]
                    } else {
                        vec![cell(&r, 0), ty, nullable.into(), cell(&r, 5)]
                    }
                })
                .collect();
            if rel.kind == "view" {
                let mut t =
                    TableData::text(&format!("View \"{qualified}\""), &["Column", "Type"], rows);
                let def = remote.query_rows(&format!(
                    "SELECT view_definition FROM information_schema.views \
                     WHERE table_schema = {schema} AND table_name = {name}"
                ))?;
                let mut footers = vec!["View definition:".to_string()];
                if let Some(r) = def.first() {
                    footers.extend(cell(r, 0).lines().map(|l| l.to_string()));
                }
                t.footers = Some(footers);
                return Ok(t);
            }
            let mut t = TableData::text(
                &format!("Table \"{qualified}\""),
                &["Column", "Type", "Nullable", "Default"],
                rows,
            );
            let primary: Vec<String> = optional(remote.query_rows(&format!(
                "SELECT constraint_name FROM information_schema.table_constraints \
                 WHERE table_schema = {schema} AND table_name = {name} \
                 AND constraint_type = 'PRIMARY KEY'"
            )))?
            .iter()
            .map(|r| cell(r, 0))
            .collect();
            // The primary key first, then by name, as psql lists them.
            let mut own: Vec<&RemoteRelation> = all
                .iter()
                .filter(|i| i.kind == "index" && i.schema == rel.schema && i.table == rel.name)
                .collect();
            own.sort_by_key(|i| (!primary.contains(&i.name), i.name.clone()));
            let indexes: Vec<String> = own
                .into_iter()
                .map(|i| {
                    format!(
                        "    \"{}\" {}",
                        i.name,
                        index_summary(&i.definition, primary.contains(&i.name))
                    )
                })
                .collect();
            let mut footers = Vec::new();
            if !indexes.is_empty() {
                footers.push("Indexes:".to_string());
                footers.extend(indexes);
            }
            t.footers = Some(footers);
            Ok(t)
        }
        "sequence" => {
            let rows = remote.query_rows(&format!(
                "SELECT data_type, start_value, minimum_value, maximum_value, increment, \
                 cycle_option FROM information_schema.sequences \
                 WHERE sequence_schema = {schema} AND sequence_name = {name}"
            ))?;
            let rows: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let mut row: Vec<String> = (0..5).map(|i| cell(r, i)).collect();
                    row.push(if cell(r, 5) == "YES" { "yes" } else { "no" }.into());
                    row
                })
                .collect();
            let mut t = TableData::text(
                &format!("Sequence \"{qualified}\""),
                &[
                    "Type",
                    "Start",
                    "Minimum",
                    "Maximum",
                    "Increment",
                    "Cycles?",
                ],
                rows,
            );
            t.right = vec![false, true, true, true, true, false];
            t.footers = Some(Vec::new());
            Ok(t)
        }
        _ => {
            let columns = rel
                .definition
                .rfind('(')
                .map(|i| rel.definition[i + 1..].trim_end_matches(')'))
                .unwrap_or("");
            let rows = columns
                .split(", ")
                .filter(|c| !c.is_empty())
                .map(|c| vec![c.to_string()])
                .collect();
            let primary = !optional(remote.query_rows(&format!(
                "SELECT 1 FROM information_schema.table_constraints \
                 WHERE table_schema = {schema} AND constraint_name = {name} \
                 AND constraint_type = 'PRIMARY KEY'"
            )))?
            .is_empty();
            let summary = index_summary(&rel.definition, primary);
            let mut t = TableData::text(&format!("Index \"{qualified}\""), &["Column"], rows);
            t.footers = Some(vec![format!(
                "{}, for table \"{}.{}\"",
                summary
                    .split_once(" (")
                    .map_or(summary.as_str(), |(kind, _)| kind)
                    .to_lowercase(),
                rel.schema,
                rel.table
            )]);
            Ok(t)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_from_statement_text() {
        assert_eq!(
            command_tag("create table t (id int)", 0, false),
            "CREATE TABLE"
        );
        assert_eq!(
            command_tag("CREATE UNIQUE INDEX i ON t (a)", 0, false),
            "CREATE INDEX"
        );
        assert_eq!(
            command_tag("create or replace view v as select 1", 0, false),
            "CREATE VIEW"
        );
        assert_eq!(
            command_tag("create temp table t as select 1", 1, false),
            "SELECT 1"
        );
        assert_eq!(
            command_tag("insert into t values (1), (2)", 2, false),
            "INSERT 0 2"
        );
        assert_eq!(
            command_tag("with x as (select 1) delete from t", 3, false),
            "DELETE 3"
        );
        assert_eq!(
            command_tag("-- c\n/* x */ update t set a = 1", 5, false),
            "UPDATE 5"
        );
        assert_eq!(
            command_tag("drop table if exists t", 0, false),
            "DROP TABLE"
        );
        assert_eq!(command_tag("drop user bob", 0, false), "DROP ROLE");
        assert_eq!(command_tag("commit", 0, true), "ROLLBACK");
        assert_eq!(command_tag("end", 0, false), "COMMIT");
        assert_eq!(command_tag("truncate t", 0, false), "TRUNCATE TABLE");
        assert_eq!(command_tag("select 'insert' from t", 4, false), "SELECT 4");
        assert_eq!(command_tag("(select 1)", 1, false), "SELECT 1");
        assert_eq!(
            command_tag("do $$ begin insert into t values (1); end $$", 0, false),
            "DO"
        );
        assert_eq!(command_tag("", 0, false), "");
    }

    #[test]
    fn transaction_effects() {
        assert_eq!(txn_effect("BEGIN"), TxnEffect::Begin);
        assert_eq!(txn_effect("start transaction read only"), TxnEffect::Begin);
        assert_eq!(txn_effect("rollback to savepoint a"), TxnEffect::RollbackTo);
        assert_eq!(txn_effect("ROLLBACK"), TxnEffect::End);
        assert_eq!(txn_effect("commit"), TxnEffect::End);
        assert_eq!(txn_effect("commit prepared 'x'"), TxnEffect::None);
        assert_eq!(txn_effect("select 'begin'"), TxnEffect::None);
    }

    #[test]
    fn numbers_and_copy_counts() {
        for n in ["1", "-2.5", "1e10", "NaN", "-Infinity", ".5", "3.", "1E-3"] {
            assert!(is_number(n), "{n}");
        }
        for s in ["", "-", "abc", "1.2.3", "1e", "12a", "e5"] {
            assert!(!is_number(s), "{s}");
        }
        let mut text = RecordCounter::default();
        text.feed(b"1\ta\n2\tb\n");
        assert_eq!(text.rows(false), 2);
        let mut csv = RecordCounter {
            csv: true,
            ..RecordCounter::default()
        };
        csv.feed(b"id,t\n1,\"x\n");
        csv.feed(b"y\"\n2,z\n");
        assert_eq!(csv.rows(true), 2);
        assert_eq!(
            copy_out_format("COPY t TO STDOUT (FORMAT csv, HEADER)"),
            (true, true)
        );
        assert_eq!(copy_out_format("COPY t TO STDOUT csv header"), (true, true));
        assert_eq!(
            copy_out_format("COPY t TO STDOUT (format csv, header false)"),
            (true, false)
        );
        assert_eq!(
            copy_out_format("COPY (select 'csv') TO STDOUT"),
            (false, false)
        );
    }

    #[test]
    fn index_summaries() {
        let def = "CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id)";
        assert_eq!(index_summary(def, true), "PRIMARY KEY, btree (id)");
        assert_eq!(index_summary(def, false), "UNIQUE, btree (id)");
        assert_eq!(
            column_type("character varying", "varchar", "10", "", ""),
            "character varying(10)"
        );
        assert_eq!(column_type("ARRAY", "_int4", "", "", ""), "int4[]");
        assert_eq!(
            column_type("numeric", "numeric", "", "5", "2"),
            "numeric(5,2)"
        );
        assert_eq!(column_type("integer", "int4", "", "32", "0"), "integer");
    }
}
