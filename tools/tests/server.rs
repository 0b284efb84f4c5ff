//! The wire-protocol server as a user meets it: the real `strata serve` binary in a temporary
//! data directory on a free loopback port, driven by tokio-postgres, psql and pgbench (the
//! latter two are skipped with a note when not installed), killed with SIGKILL and restarted.
//!
//! Every test starts its own server and kills it on drop; loops are bounded; nothing asserts
//! on wall-clock time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::{SinkExt, TryStreamExt};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// A running `strata serve`, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(data: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("serve")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start strata serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let port = addr.rsplit(':').next().unwrap().parse().expect("port");
        Server { child, port }
    }

    fn conn_str(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    async fn client(&self) -> Client {
        let (client, connection) = tokio_postgres::connect(&self.conn_str(), NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        self.child.wait().expect("wait")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// A PostgreSQL client tool from PATH or /usr/local/bin, if installed.
fn pg_tool(name: &str) -> Option<PathBuf> {
    let local = Path::new("/usr/local/bin").join(name);
    if local.exists() {
        return Some(local);
    }
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    (!path.is_empty()).then(|| PathBuf::from(path))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_default()
}

#[test]
fn simple_and_extended_queries_transactions_errors_and_copy() {
    let dir = data_dir();
    let server = Server::start(dir.path(), &[]);
    runtime().block_on(async {
        let c = server.client().await;
        c.batch_execute(
            "CREATE TABLE acct (id INT PRIMARY KEY, owner TEXT NOT NULL, balance NUMERIC(12,2), \
             opened DATE, seen TIMESTAMP, ok BOOLEAN, ratio DOUBLE PRECISION, big BIGINT)",
        )
        .await
        .unwrap();

        // Simple protocol: several statements, command tags.
        let msgs = c
            .simple_query("INSERT INTO acct VALUES (1, 'ada', 10.50, '2024-01-02', '2024-01-02 03:04:05', true, 0.5, 9000000000); SELECT owner FROM acct")
            .await
            .unwrap();
        let complete: Vec<u64> = msgs
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::CommandComplete(n) => Some(*n),
                _ => None,
            })
            .collect();
        assert_eq!(complete, vec![1, 1]);

        // Extended protocol with typed parameters; results in binary format.
        let n = c
            .execute(
                "INSERT INTO acct (id, owner, balance, ok, big) VALUES ($1, $2, 20.25, $3, $4)",
                &[&2i32, &"bob", &false, &-5i64],
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
        let row = c
            .query_one(
                "SELECT id, owner, ok, ratio, big, opened FROM acct WHERE id = $1",
                &[&1i32],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), 1);
        assert_eq!(row.get::<_, String>(1), "ada");
        assert!(row.get::<_, bool>(2));
        assert_eq!(row.get::<_, f64>(3), 0.5);
        assert_eq!(row.get::<_, i64>(4), 9_000_000_000);
        let text: Vec<String> = c
            .simple_query("SELECT balance, opened, seen FROM acct WHERE id = 1")
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(
                    (0..3)
                        .map(|i| r.get(i).unwrap_or("NULL").to_string())
                        .collect::<Vec<_>>()
                        .join("|"),
                ),
                _ => None,
            })
            .collect();
        assert_eq!(text, vec!["10.50|2024-01-02|2024-01-02 03:04:05"]);

        // A prepared statement reused with different parameters.
        let stmt = c
            .prepare("SELECT owner FROM acct WHERE id = $1")
            .await
            .unwrap();
        for (id, owner) in [(1i32, "ada"), (2, "bob")] {
            let r = c.query_one(&stmt, &[&id]).await.unwrap();
            assert_eq!(r.get::<_, String>(0), owner);
        }

        // Errors carry their SQLSTATE; the connection carries on.
        let e = c.execute("SELECT * FROM missing", &[]).await.unwrap_err();
        assert_eq!(sqlstate(&e), "42P01");
        let e = c
            .execute("INSERT INTO acct (id, owner) VALUES (1, 'dup')", &[])
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e), "23505");
        let e = c.batch_execute("SELEC 1").await.unwrap_err();
        assert_eq!(sqlstate(&e), "42601");

        // Transactions: rollback undoes, a failed block refuses until ROLLBACK.
        c.batch_execute("BEGIN; UPDATE acct SET owner = 'zed' WHERE id = 1; ROLLBACK")
            .await
            .unwrap();
        let r = c
            .query_one("SELECT owner FROM acct WHERE id = 1", &[])
            .await
            .unwrap();
        assert_eq!(r.get::<_, String>(0), "ada");
        c.batch_execute("BEGIN").await.unwrap();
        assert!(c.batch_execute("SELECT 1/0").await.is_err());
        let e = c.batch_execute("SELECT 1").await.unwrap_err();
        assert_eq!(sqlstate(&e), "25P02");
        c.batch_execute("ROLLBACK").await.unwrap();

        let mut client = c;
        let tx = client.transaction().await.unwrap();
        tx.execute("UPDATE acct SET balance = balance + 1 WHERE id = 2", &[])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let c = client;

        // COPY FROM STDIN and TO STDOUT.
        c.batch_execute("CREATE TABLE items (id INT, name TEXT)")
            .await
            .unwrap();
        let sink = c
            .copy_in("COPY items FROM STDIN")
            .await
            .expect("copy in");
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from_static(b"1\tone\n2\ttwo\n3\t\\N\n"))
            .await
            .unwrap();
        let copied = sink.finish().await.unwrap();
        assert_eq!(copied, 3);
        let out: Vec<bytes::Bytes> = c
            .copy_out("COPY (SELECT id, name FROM items ORDER BY id) TO STDOUT")
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let text: String = out
            .iter()
            .map(|b| String::from_utf8_lossy(b).to_string())
            .collect();
        assert_eq!(text, "1\tone\n2\ttwo\n3\t\\N\n");

        // SHOW and settings over the extended protocol.
        let r = c.query_one("SHOW server_version", &[]).await.unwrap();
        assert!(r.get::<_, String>(0).starts_with("15."));
    });
}

#[test]
fn garbage_bytes_close_only_that_connection() {
    let dir = data_dir();
    let server = Server::start(dir.path(), &[]);
    // A startup packet announcing an absurd length, then noise.
    let mut raw = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    raw.write_all(&[0x7f, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8])
        .unwrap();
    let mut buf = Vec::new();
    let _ = raw.read_to_end(&mut buf); // the server closes it
                                       // Garbage after a valid startup: an unknown message type.
    runtime().block_on(async {
        let c = server.client().await;
        c.batch_execute("CREATE TABLE ok (x INT)").await.unwrap();
    });
    let mut raw = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut startup = Vec::new();
    let params = b"user\0postgres\0database\0postgres\0\0";
    startup.extend_from_slice(&((8 + params.len()) as i32).to_be_bytes());
    startup.extend_from_slice(&196608i32.to_be_bytes());
    startup.extend_from_slice(params);
    raw.write_all(&startup).unwrap();
    raw.write_all(b"\x01\x00\x00\x00\x08garbage!garbage!")
        .unwrap();
    let mut buf = Vec::new();
    let _ = raw.read_to_end(&mut buf);
    runtime().block_on(async {
        let c = server.client().await;
        let r = c.query_one("SELECT count(*) FROM ok", &[]).await.unwrap();
        assert_eq!(r.get::<_, i64>(0), 0);
    });
}

#[test]
fn disconnect_inside_a_transaction_rolls_back_and_releases_locks() {
    let dir = data_dir();
    let server = Server::start(dir.path(), &[]);
    runtime().block_on(async {
        let setup = server.client().await;
        setup
            .batch_execute(
                "CREATE TABLE k (id INT PRIMARY KEY, v INT); INSERT INTO k VALUES (1, 0)",
            )
            .await
            .unwrap();
        {
            let doomed = server.client().await;
            doomed
                .batch_execute("BEGIN; UPDATE k SET v = 100 WHERE id = 1")
                .await
                .unwrap();
            // Dropped without COMMIT: the connection closes.
        }
        // The row lock is released: this update does not wait forever.
        let other = server.client().await;
        let updated = tokio::time::timeout(
            Duration::from_secs(60),
            other.execute("UPDATE k SET v = v + 1 WHERE id = 1", &[]),
        )
        .await
        .expect("the lock of the dropped connection was released")
        .unwrap();
        assert_eq!(updated, 1);
        let r = other
            .query_one("SELECT v FROM k WHERE id = 1", &[])
            .await
            .unwrap();
        assert_eq!(r.get::<_, i32>(0), 1);
    });
}

#[test]
fn too_many_connections_are_refused_with_53300() {
    let dir = data_dir();
    let server = Server::start(dir.path(), &["--max-connections", "2"]);
    runtime().block_on(async {
        let a = server.client().await;
        let _b = server.client().await;
        let e = tokio_postgres::connect(&server.conn_str(), NoTls)
            .await
            .err()
            .expect("third connection refused");
        assert_eq!(sqlstate(&e), "53300");
        a.batch_execute("SELECT 1").await.unwrap();
    });
}

#[test]
fn many_concurrent_sessions_each_with_a_transaction() {
    let dir = data_dir();
    let server = Server::start(dir.path(), &[]);
    runtime().block_on(async {
        let setup = server.client().await;
        setup
            .batch_execute("CREATE TABLE c (id INT PRIMARY KEY, v INT)")
            .await
            .unwrap();
        let mut clients = Vec::new();
        for _ in 0..120 {
            clients.push(server.client().await);
        }
        for (i, c) in clients.iter().enumerate() {
            c.batch_execute("BEGIN").await.unwrap();
            c.execute("INSERT INTO c VALUES ($1, $1)", &[&(i as i32)])
                .await
                .unwrap();
        }
        // None is visible before its commit.
        let r = setup
            .query_one("SELECT count(*) FROM c", &[])
            .await
            .unwrap();
        assert_eq!(r.get::<_, i64>(0), 0);
        for c in &clients {
            c.batch_execute("COMMIT").await.unwrap();
        }
        let r = setup
            .query_one("SELECT count(*) FROM c", &[])
            .await
            .unwrap();
        assert_eq!(r.get::<_, i64>(0), 120);
    });
}

#[test]
fn scram_passwords_and_statement_timeout_setting() {
    let dir = data_dir();
    let server = Server::start(dir.path(), &["--user", "alice:s3cret"]);
    runtime().block_on(async {
        let ok = format!(
            "host=127.0.0.1 port={} user=alice password=s3cret dbname=postgres",
            server.port
        );
        let (c, conn) = tokio_postgres::connect(&ok, NoTls)
            .await
            .expect("scram login");
        tokio::spawn(conn);
        c.batch_execute("SET statement_timeout = '5s'")
            .await
            .unwrap();
        let r = c.query_one("SHOW statement_timeout", &[]).await.unwrap();
        assert_eq!(r.get::<_, String>(0), "5s");
        let bad = format!(
            "host=127.0.0.1 port={} user=alice password=wrong dbname=postgres",
            server.port
        );
        let e = tokio_postgres::connect(&bad, NoTls)
            .await
            .err()
            .expect("refused");
        assert_eq!(sqlstate(&e), "28P01");
        // Roles created with SQL log in with SCRAM too.
        let admin = server.client().await;
        admin
            .batch_execute("CREATE USER carol WITH PASSWORD 'pw2'")
            .await
            .unwrap();
        let e = admin.batch_execute("CREATE ROLE carol").await.unwrap_err();
        assert_eq!(sqlstate(&e), "42710");
        let carol = format!(
            "host=127.0.0.1 port={} user=carol password=pw2 dbname=postgres",
            server.port
        );
        let (c2, conn) = tokio_postgres::connect(&carol, NoTls)
            .await
            .expect("carol logs in");
        tokio::spawn(conn);
        c2.batch_execute("SELECT 1").await.unwrap();
        admin.batch_execute("DROP ROLE carol").await.unwrap();
        let nodb = format!(
            "host=127.0.0.1 port={} user=postgres dbname=nope",
            server.port
        );
        let e = tokio_postgres::connect(&nodb, NoTls)
            .await
            .err()
            .expect("refused");
        assert_eq!(sqlstate(&e), "3D000");
    });
}

#[test]
fn sigterm_shuts_down_cleanly_and_data_survives() {
    let dir = data_dir();
    let mut server = Server::start(dir.path(), &[]);
    runtime().block_on(async {
        let c = server.client().await;
        c.batch_execute("CREATE TABLE s (x INT); INSERT INTO s VALUES (1), (2)")
            .await
            .unwrap();
        // An open transaction at shutdown is rolled back.
        let open = server.client().await;
        open.batch_execute("BEGIN; INSERT INTO s VALUES (3)")
            .await
            .unwrap();
        std::mem::forget(open);
    });
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    let server = Server::start(dir.path(), &[]);
    runtime().block_on(async {
        let c = server.client().await;
        let r = c.query_one("SELECT count(*) FROM s", &[]).await.unwrap();
        assert_eq!(r.get::<_, i64>(0), 2);
    });
}

fn run_tool(tool: &Path, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .env("PGCONNECT_TIMEOUT", "30")
        .output()
        .expect("run tool");
    assert!(
        out.status.success(),
        "{} {:?} failed: {}{}",
        tool.display(),
        args,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Runs psql as `postgres` against the server on `port`, one `-c` per command, stopping at the
/// first error (which fails the test); returns its output.
fn psql_commands(psql: &Path, port: u16, commands: &[&str]) -> String {
    let port = port.to_string();
    let mut args = vec![
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-X",
        "-v",
        "ON_ERROR_STOP=1",
    ];
    for c in commands {
        args.extend(["-c", c]);
    }
    run_tool(psql, &args)
}

fn balances(port: u16) -> (i64, i64, i64, i64, i64) {
    runtime().block_on(async {
        let (c, conn) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
            NoTls,
        )
        .await
        .expect("connect");
        tokio::spawn(conn);
        let r = c
            .query_one(
                "SELECT (SELECT sum(abalance) FROM pgbench_accounts)::bigint, \
                 (SELECT sum(bbalance) FROM pgbench_branches)::bigint, \
                 (SELECT sum(tbalance) FROM pgbench_tellers)::bigint, \
                 (SELECT coalesce(sum(delta), 0) FROM pgbench_history)::bigint, \
                 (SELECT count(*) FROM pgbench_history)",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
    })
}

#[test]
fn pgbench_runs_without_failures_and_survives_sigkill() {
    let Some(pgbench) = pg_tool("pgbench") else {
        eprintln!("pgbench not installed: skipped");
        return;
    };
    let dir = data_dir();
    let mut server = Server::start(dir.path(), &[]);
    let port = server.port.to_string();
    let common = ["-h", "127.0.0.1", "-p", &port, "-U", "postgres"];
    let mut init = common.to_vec();
    init.extend(["-i", "-I", "dtgp", "-s", "1", "postgres"]);
    run_tool(&pgbench, &init);
    for mode in ["simple", "extended", "prepared"] {
        let mut run = common.to_vec();
        // -n: no vacuum step, which would truncate pgbench_history.
        run.extend([
            "-n", "-c", "4", "-j", "2", "-t", "50", "-M", mode, "postgres",
        ]);
        let out = run_tool(&pgbench, &run);
        assert!(
            out.contains("number of failed transactions: 0"),
            "{mode}: {out}"
        );
        assert!(out.contains("actually processed: 200/200"), "{mode}: {out}");
    }
    let (a, b, t, delta, count) = balances(server.port);
    assert_eq!((a, b), (t, t));
    assert_eq!(a, delta);
    assert_eq!(count, 600);

    // SIGKILL in the middle of a run: every acknowledged transaction survives.
    let mut run = common.to_vec();
    run.extend(["-n", "-c", "4", "-j", "2", "-t", "100000", "postgres"]);
    let bench = Command::new(&pgbench)
        .args(&run)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pgbench");
    // Let some transactions commit, watched through the history table (bounded wait).
    for _ in 0..600 {
        std::thread::sleep(Duration::from_millis(50));
        if balances(server.port).4 > 1000 {
            break;
        }
    }
    server.kill();
    let out = bench.wait_with_output().expect("pgbench ends");
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    let acknowledged: i64 = report
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|v| v.split('/').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let server = Server::start(dir.path(), &[]);
    let (a, b, t, delta, count) = balances(server.port);
    assert_eq!((a, b), (t, t));
    assert_eq!(a, delta);
    assert!(
        count - 600 >= acknowledged,
        "history {count} (600 before) lost some of {acknowledged} acknowledged"
    );
}

#[test]
fn psql_runs_commands() {
    let Some(psql) = pg_tool("psql") else {
        eprintln!("psql not installed: skipped");
        return;
    };
    let dir = data_dir();
    let server = Server::start(dir.path(), &[]);
    let out = psql_commands(
        &psql,
        server.port,
        &[
            "CREATE TABLE people (id INT PRIMARY KEY, name TEXT)",
            "CREATE INDEX people_name ON people (name)",
            "INSERT INTO people VALUES (1, 'ada')",
            "SELECT name FROM people",
        ],
    );
    assert!(out.contains("INSERT 0 1"), "{out}");
    assert!(out.contains("ada"), "{out}");

    // The \d family, through the pg_catalog queries psql sends.
    let out = psql_commands(&psql, server.port, &["\\dt", "\\di", "\\d people"]);
    assert!(out.contains("people | table | postgres"), "{out}");
    assert!(
        out.contains("people_name | index | postgres | people"),
        "{out}"
    );
    assert!(out.contains("people_pkey"), "{out}");
    assert!(out.contains("Table \"public.people\""), "{out}");
    assert!(
        out.contains("\"people_pkey\" PRIMARY KEY, btree (id)"),
        "{out}"
    );
    assert!(out.contains("\"people_name\" btree (name)"), "{out}");
}

#[test]
fn statement_timeout_and_cancel_request_stop_a_running_statement() {
    let dir = data_dir();
    let server = Server::start(dir.path(), &[]);
    runtime().block_on(async {
        let c = server.client().await;
        c.batch_execute(
            "CREATE TABLE probe (x INT PRIMARY KEY); \
             INSERT INTO probe SELECT g FROM generate_series(1, 400) g",
        )
        .await
        .unwrap();
        // Nested loops rescanning `probe`: a long statement made of many storage reads, each
        // a point where an interrupt is noticed (64M combinations if it ran to the end).
        let slow = "SELECT count(*) FROM probe a, probe b, probe c WHERE a.x + b.x + c.x < 0";
        c.batch_execute("SET statement_timeout = '300ms'")
            .await
            .unwrap();
        let e = c.simple_query(slow).await.unwrap_err();
        assert_eq!(sqlstate(&e), "57014", "{e}");
        c.batch_execute("SET statement_timeout = 0").await.unwrap();

        // CancelRequest from another connection, repeated until the statement has started.
        let token = c.cancel_token();
        let canceller = tokio::spawn(async move {
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = token.cancel_query(NoTls).await;
            }
        });
        let e = c.simple_query(slow).await.unwrap_err();
        assert_eq!(sqlstate(&e), "57014", "{e}");
        canceller.abort();
        let _ = canceller.await;
        // The session carries on (a cancel still in flight may hit one more statement).
        let mut count = None;
        for _ in 0..3 {
            if let Ok(r) = c.query_one("SELECT count(*) FROM probe", &[]).await {
                count = Some(r.get::<_, i64>(0));
                break;
            }
        }
        assert_eq!(count, Some(400));
    });
}

/// A bare protocol-3 client: frames messages by hand so a test controls exactly what goes out
/// in one write (a whole extended-protocol batch) and sees every message that comes back.
struct RawClient {
    tcp: TcpStream,
}

/// One backend message: its type byte and body.
struct Msg {
    kind: u8,
    body: Vec<u8>,
}

impl Msg {
    /// The fields of an ErrorResponse, by their one-letter codes.
    fn error_field(&self, code: u8) -> Option<String> {
        let mut rest = &self.body[..];
        while let Some((&c, tail)) = rest.split_first() {
            if c == 0 {
                break;
            }
            let end = tail.iter().position(|&b| b == 0)?;
            if c == code {
                return Some(String::from_utf8_lossy(&tail[..end]).into_owned());
            }
            rest = &tail[end + 1..];
        }
        None
    }

    /// The column names of a RowDescription.
    fn column_names(&self) -> Vec<String> {
        let n = i16::from_be_bytes([self.body[0], self.body[1]]) as usize;
        let mut at = 2;
        let mut names = Vec::new();
        for _ in 0..n {
            let end = at + self.body[at..].iter().position(|&b| b == 0).unwrap();
            names.push(String::from_utf8_lossy(&self.body[at..end]).into_owned());
            at = end + 1 + 18;
        }
        names
    }
}

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn parse_msg(name: &str, sql: &str, param_oids: &[i32]) -> Vec<u8> {
    let mut b = cstr(name);
    b.extend(cstr(sql));
    b.extend_from_slice(&(param_oids.len() as i16).to_be_bytes());
    for o in param_oids {
        b.extend_from_slice(&o.to_be_bytes());
    }
    frame(b'P', &b)
}

/// Bind with text parameters and text results.
fn bind_msg(portal: &str, statement: &str, params: &[&str]) -> Vec<u8> {
    let mut b = cstr(portal);
    b.extend(cstr(statement));
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(params.len() as i16).to_be_bytes());
    for p in params {
        b.extend_from_slice(&(p.len() as i32).to_be_bytes());
        b.extend_from_slice(p.as_bytes());
    }
    b.extend_from_slice(&0i16.to_be_bytes());
    frame(b'B', &b)
}

fn describe_msg(kind: u8, name: &str) -> Vec<u8> {
    let mut b = vec![kind];
    b.extend(cstr(name));
    frame(b'D', &b)
}

fn execute_msg(portal: &str) -> Vec<u8> {
    let mut b = cstr(portal);
    b.extend_from_slice(&0i32.to_be_bytes());
    frame(b'E', &b)
}

fn sync_msg() -> Vec<u8> {
    frame(b'S', &[])
}

impl RawClient {
    fn connect(port: u16) -> RawClient {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let params = b"user\0postgres\0database\0postgres\0\0";
        let mut startup = Vec::new();
        startup.extend_from_slice(&((8 + params.len()) as i32).to_be_bytes());
        startup.extend_from_slice(&196608i32.to_be_bytes());
        startup.extend_from_slice(params);
        tcp.write_all(&startup).unwrap();
        let mut c = RawClient { tcp };
        c.until_ready();
        c
    }

    fn send(&mut self, messages: &[Vec<u8>]) {
        self.tcp.write_all(&messages.concat()).unwrap();
    }

    fn read(&mut self) -> Msg {
        let mut head = [0u8; 5];
        self.tcp.read_exact(&mut head).unwrap();
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        self.tcp.read_exact(&mut body).unwrap();
        Msg {
            kind: head[0],
            body,
        }
    }

    /// Every message up to and including ReadyForQuery.
    fn until_ready(&mut self) -> Vec<Msg> {
        let mut out = Vec::new();
        loop {
            let m = self.read();
            let done = m.kind == b'Z';
            out.push(m);
            if done {
                return out;
            }
        }
    }

    /// A simple Query's messages.
    fn query(&mut self, sql: &str) -> Vec<Msg> {
        self.send(&[frame(b'Q', &cstr(sql))]);
        self.until_ready()
    }
}

fn kinds(msgs: &[Msg]) -> String {
    msgs.iter().map(|m| m.kind as char).collect()
}

/// The first column of the DataRows, as text.
fn first_values(msgs: &[Msg]) -> Vec<String> {
    msgs.iter()
        .filter(|m| m.kind == b'D')
        .map(|m| {
            let len = i32::from_be_bytes([m.body[2], m.body[3], m.body[4], m.body[5]]) as usize;
            String::from_utf8_lossy(&m.body[6..6 + len]).into_owned()
        })
        .collect()
}

#[test]
fn extended_batch_error_skips_to_sync_describe_before_bind_and_reparse_after_ddl() {
    let dir = data_dir();
    let server = Server::start(dir.path(), &[]);
    let mut c = RawClient::connect(server.port);
    c.query("CREATE TABLE k (id INT PRIMARY KEY, v INT); INSERT INTO k VALUES (1, 10), (2, 20)");

    // One batch: a named statement described before any Bind, run; then a statement that
    // fails; then an UPDATE that must be skipped, since everything after an error up to Sync
    // is discarded.
    c.send(&[
        parse_msg("s1", "SELECT v FROM k WHERE id = $1", &[0]),
        describe_msg(b'S', "s1"),
        bind_msg("", "s1", &["1"]),
        execute_msg(""),
        parse_msg("", "SELECT * FROM missing", &[]),
        bind_msg("", "", &[]),
        execute_msg(""),
        parse_msg("", "UPDATE k SET v = 99", &[]),
        bind_msg("", "", &[]),
        execute_msg(""),
        sync_msg(),
    ]);
    let got = c.until_ready();
    assert_eq!(kinds(&got), "1tT2DCEZ");
    // ParameterDescription: one parameter, inferred as INTEGER (oid 23).
    assert_eq!(got[1].body, [0, 1, 0, 0, 0, 23]);
    assert_eq!(got[2].column_names(), ["v"]);
    assert_eq!(first_values(&got), ["10"]);
    assert_eq!(got[6].error_field(b'C').as_deref(), Some("42P01"));
    assert_eq!(got[7].body, b"I");
    let v = c.query("SELECT v FROM k ORDER BY id");
    assert_eq!(
        first_values(&v),
        ["10", "20"],
        "the UPDATE after the error ran"
    );

    // The statement survives the failed batch and runs again with another parameter.
    c.send(&[bind_msg("", "s1", &["2"]), execute_msg(""), sync_msg()]);
    let got = c.until_ready();
    assert_eq!(kinds(&got), "2DCZ");
    assert_eq!(first_values(&got), ["20"]);

    // Describing a portal that was never bound fails, and the rest of the batch is skipped.
    c.send(&[
        describe_msg(b'P', "nope"),
        bind_msg("", "s1", &["1"]),
        execute_msg(""),
        sync_msg(),
    ]);
    let got = c.until_ready();
    assert_eq!(kinds(&got), "EZ");
    assert_eq!(got[0].error_field(b'C').as_deref(), Some("34000"));

    // An error inside a transaction block: the batch stops, the block is failed until ROLLBACK.
    c.query("BEGIN");
    c.send(&[
        parse_msg("", "UPDATE k SET v = v / 0 WHERE id = 1", &[]),
        bind_msg("", "", &[]),
        execute_msg(""),
        parse_msg("", "UPDATE k SET v = 0", &[]),
        bind_msg("", "", &[]),
        execute_msg(""),
        sync_msg(),
    ]);
    let got = c.until_ready();
    assert_eq!(kinds(&got), "12EZ");
    assert_eq!(got[2].error_field(b'C').as_deref(), Some("22012"));
    assert_eq!(got[3].body, b"E");
    c.send(&[bind_msg("", "s1", &["1"]), execute_msg(""), sync_msg()]);
    let got = c.until_ready();
    assert_eq!(kinds(&got), "2EZ");
    assert_eq!(got[1].error_field(b'C').as_deref(), Some("25P02"));
    c.query("ROLLBACK");

    // The unnamed statement is parsed again for each use, as drivers do; a Parse after DDL
    // describes the new columns (the plan cache's binding is checked against the catalog).
    let describe_all = |c: &mut RawClient| {
        c.send(&[
            parse_msg("", "SELECT * FROM k WHERE id = $1", &[]),
            describe_msg(b'S', ""),
            sync_msg(),
        ]);
        let got = c.until_ready();
        assert_eq!(kinds(&got), "1tTZ");
        got[2].column_names()
    };
    assert_eq!(describe_all(&mut c), ["id", "v"]);
    assert_eq!(describe_all(&mut c), ["id", "v"]);
    c.query("ALTER TABLE k ADD COLUMN w TEXT");
    assert_eq!(describe_all(&mut c), ["id", "v", "w"]);
    c.query("DROP TABLE k");
    c.send(&[
        parse_msg("", "SELECT * FROM k WHERE id = $1", &[]),
        describe_msg(b'S', ""),
        sync_msg(),
    ]);
    let got = c.until_ready();
    assert_eq!(kinds(&got), "EZ");
    assert_eq!(got[0].error_field(b'C').as_deref(), Some("42P01"));
}

#[test]
fn a_session_waiting_for_a_row_lock_stalls_only_its_own_connection() {
    let dir = data_dir();
    let server = Server::start(dir.path(), &[]);
    runtime().block_on(async {
        let holder = server.client().await;
        holder
            .batch_execute(
                "CREATE TABLE k (id INT PRIMARY KEY, v INT); INSERT INTO k VALUES (1, 0), (2, 0)",
            )
            .await
            .unwrap();
        holder
            .batch_execute("BEGIN; UPDATE k SET v = v + 1 WHERE id = 1")
            .await
            .unwrap();
        // More waiters than the machine has cores: none of them may hold up anyone else.
        let mut waiters = Vec::new();
        for _ in 0..6 {
            let w = server.client().await;
            waiters.push(tokio::spawn(async move {
                w.execute("UPDATE k SET v = v + 1 WHERE id = 1", &[])
                    .await
                    .unwrap()
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        // New connections and other rows carry on meanwhile.
        for _ in 0..3 {
            let other = server.client().await;
            let n = other
                .execute("UPDATE k SET v = v + 1 WHERE id = 2", &[])
                .await
                .unwrap();
            assert_eq!(n, 1);
        }
        assert!(waiters.iter().all(|w| !w.is_finished()));
        holder.batch_execute("COMMIT").await.unwrap();
        for w in waiters {
            assert_eq!(w.await.unwrap(), 1);
        }
        let rows = holder
            .query("SELECT v FROM k ORDER BY id", &[])
            .await
            .unwrap();
        let v: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(v, [7, 3]);
    });
}

#[test]
fn idle_in_transaction_timeout_closes_the_session_and_rolls_back() {
    let dir = data_dir();
    let server = Server::start(dir.path(), &[]);
    let mut c = RawClient::connect(server.port);
    c.query("CREATE TABLE k (id INT PRIMARY KEY, v INT); INSERT INTO k VALUES (1, 0)");
    c.query("SET idle_in_transaction_session_timeout = '100ms'");
    // Idle outside a transaction: the timeout does not apply.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(first_values(&c.query("SELECT v FROM k")), ["0"]);
    let got = c.query("BEGIN; UPDATE k SET v = 5 WHERE id = 1");
    assert_eq!(got.last().unwrap().body, b"T");
    // The server ends the idle transaction with a FATAL 25P03 and closes the connection.
    let fatal = c.read();
    assert_eq!(fatal.kind, b'E');
    assert_eq!(fatal.error_field(b'S').as_deref(), Some("FATAL"));
    assert_eq!(fatal.error_field(b'C').as_deref(), Some("25P03"));
    let mut rest = Vec::new();
    let _ = c.tcp.read_to_end(&mut rest);
    assert!(rest.is_empty(), "nothing after the FATAL");
    // Rolled back, and its row lock released.
    let mut other = RawClient::connect(server.port);
    let got = other.query("UPDATE k SET v = v + 1 WHERE id = 1");
    assert!(got.iter().all(|m| m.kind != b'E'));
    assert_eq!(first_values(&other.query("SELECT v FROM k")), ["1"]);
}

/// `SET`, `SHOW`, `current_setting()`, `set_config()` and `pg_settings` read and write one set
/// of values; unknown parameters fail with 42704 as in PostgreSQL; `set_config(.., true)` ends
/// with its transaction.
#[test]
fn settings_agree_across_show_set_current_setting_set_config_and_pg_settings() {
    let dir = data_dir();
    let server = Server::start(dir.path(), &[]);
    runtime().block_on(async {
        let c = server.client().await;
        let one = |sql: &'static str| {
            let c = &c;
            async move {
                let r = c.simple_query(sql).await.unwrap();
                r.iter()
                    .find_map(|m| match m {
                        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
                        _ => None,
                    })
                    .unwrap_or_default()
            }
        };
        assert_eq!(one("SELECT current_setting('DateStyle')").await, "ISO, MDY");
        assert_eq!(
            one("SELECT current_setting('server_version_num')").await,
            "150000"
        );
        c.batch_execute("SET statement_timeout = 1500")
            .await
            .unwrap();
        assert_eq!(one("SHOW statement_timeout").await, "1500ms");
        assert_eq!(
            one("SELECT current_setting('statement_timeout')").await,
            "1500ms"
        );
        assert_eq!(
            one("SELECT setting || ' ' || unit FROM pg_settings WHERE name = 'statement_timeout'")
                .await,
            "1500 ms"
        );
        assert_eq!(
            one("SELECT set_config('statement_timeout', '5s', false)").await,
            "5s"
        );
        assert_eq!(one("SHOW statement_timeout").await, "5s");
        assert_eq!(
            one("SELECT source FROM pg_settings WHERE name = 'statement_timeout'").await,
            "session"
        );
        // Parameterised, through the extended protocol.
        let r = c
            .query_one("SELECT current_setting($1)", &[&"TimeZone"])
            .await
            .unwrap();
        assert_eq!(r.get::<_, String>(0), "UTC");

        // Unknown parameters, custom ones, missing_ok.
        for sql in [
            "SELECT current_setting('no_such_setting')",
            "SELECT set_config('no_such_setting', '1', false)",
            "SHOW no_such_setting",
            "SELECT current_setting('my.unset')",
        ] {
            let e = c.simple_query(sql).await.unwrap_err();
            assert_eq!(sqlstate(&e), "42704", "{sql}: {e}");
            let db = e.as_db_error().expect("a server error");
            assert!(
                db.message()
                    .starts_with("unrecognized configuration parameter \""),
                "{}",
                db.message()
            );
        }
        assert_eq!(
            one("SELECT coalesce(current_setting('no_such_setting', true), 'none')").await,
            "none"
        );
        assert_eq!(one("SELECT set_config('my.key', 'v1', false)").await, "v1");
        assert_eq!(one("SHOW my.key").await, "v1");
        let e = c
            .simple_query("SELECT set_config('server_version', '1', false)")
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e), "55P02", "{e}");

        // is_local: until the end of the transaction.
        c.batch_execute("BEGIN").await.unwrap();
        assert_eq!(
            one("SELECT set_config('application_name', 'inside', true)").await,
            "inside"
        );
        assert_eq!(one("SHOW application_name").await, "inside");
        c.batch_execute("COMMIT").await.unwrap();
        assert_eq!(one("SHOW application_name").await, "");
        // Outside a block, a local value lasts only for its own statement's transaction.
        one("SELECT set_config('my.key', 'v2', true)").await;
        assert_eq!(one("SHOW my.key").await, "v1");

        // SET default_transaction_isolation through set_config takes effect.
        one("SELECT set_config('default_transaction_isolation', 'serializable', false)").await;
        assert_eq!(one("SHOW transaction_isolation").await, "read committed");
        assert_eq!(
            one("SELECT setting FROM pg_settings WHERE name = 'default_transaction_isolation'")
                .await,
            "serializable"
        );
    });
}

async fn m_rows(c: &Client) -> Vec<i32> {
    let r = c.query("SELECT a FROM m ORDER BY a", &[]).await.unwrap();
    r.iter().map(|r| r.get::<_, i32>(0)).collect()
}

/// A simple-protocol Query of several statements is one implicit transaction (as psql -c
/// 'a; b' and PostgreSQL): an error undoes the statements before it, BEGIN turns it into an
/// explicit block, COMMIT ends it, SAVEPOINT is refused.
#[test]
fn a_multi_statement_query_is_one_implicit_transaction() {
    let dir = data_dir();
    let server = Server::start(dir.path(), &[]);
    runtime().block_on(async {
        let c = server.client().await;
        c.batch_execute("CREATE TABLE m (a INT)").await.unwrap();

        let e = c
            .simple_query("INSERT INTO m VALUES (1); SELECT 1/0")
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e), "22012", "{e}");
        assert_eq!(m_rows(&c).await, Vec::<i32>::new());

        // COMMIT ends the implicit block; the statements after it start a new one.
        let e = c
            .simple_query("INSERT INTO m VALUES (2); COMMIT; INSERT INTO m VALUES (3); SELECT 1/0")
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e), "22012", "{e}");
        assert_eq!(m_rows(&c).await, vec![2]);

        // BEGIN makes it an explicit block, left failed by the error (the INSERT before
        // BEGIN belongs to it too).
        let e = c
            .simple_query(
                "INSERT INTO m VALUES (4); BEGIN; INSERT INTO m VALUES (5); SELECT 1/0; \
                 INSERT INTO m VALUES (6)",
            )
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e), "22012", "{e}");
        let e = c.simple_query("SELECT 1").await.unwrap_err();
        assert_eq!(sqlstate(&e), "25P02", "{e}");
        c.batch_execute("ROLLBACK").await.unwrap();
        assert_eq!(m_rows(&c).await, vec![2]);

        // BEGIN ... COMMIT inside one Query, then an error: the block stays committed.
        let e = c
            .simple_query("BEGIN; INSERT INTO m VALUES (7); COMMIT; SELECT 1/0")
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e), "22012", "{e}");
        assert_eq!(m_rows(&c).await, vec![2, 7]);

        let e = c.simple_query("SAVEPOINT a; SELECT 1").await.unwrap_err();
        assert_eq!(sqlstate(&e), "25P01", "{e}");

        // All succeed: all committed, and the session is idle again.
        c.simple_query("INSERT INTO m VALUES (8); INSERT INTO m VALUES (9)")
            .await
            .unwrap();
        assert_eq!(m_rows(&c).await, vec![2, 7, 8, 9]);
        c.batch_execute("BEGIN; INSERT INTO m VALUES (10)")
            .await
            .unwrap();
        c.batch_execute("ROLLBACK").await.unwrap();
        assert_eq!(m_rows(&c).await, vec![2, 7, 8, 9]);
    });
}

/// A statement waiting for another transaction's row lock is stopped by statement_timeout and
/// by a CancelRequest (57014), while the lock is still held; the holder is unaffected.
#[test]
fn cancel_and_statement_timeout_stop_a_row_lock_wait() {
    let dir = data_dir();
    let server = Server::start(dir.path(), &[]);
    runtime().block_on(async {
        let holder = server.client().await;
        let waiter = server.client().await;
        holder
            .batch_execute(
                "CREATE TABLE acct (id INT PRIMARY KEY, v INT); INSERT INTO acct VALUES (1, 0)",
            )
            .await
            .unwrap();
        holder
            .batch_execute("BEGIN; UPDATE acct SET v = 1 WHERE id = 1")
            .await
            .unwrap();
        // Generous bound: without the fix the wait lasts until the holder commits, never here.
        let bounded = |f| tokio::time::timeout(Duration::from_secs(120), f);

        waiter
            .batch_execute("SET statement_timeout = '200ms'")
            .await
            .unwrap();
        let e = bounded(waiter.simple_query("UPDATE acct SET v = 2 WHERE id = 1"))
            .await
            .expect("statement_timeout did not stop the lock wait")
            .unwrap_err();
        assert_eq!(sqlstate(&e), "57014", "{e}");
        waiter
            .batch_execute("SET statement_timeout = 0")
            .await
            .unwrap();

        let token = waiter.cancel_token();
        let canceller = tokio::spawn(async move {
            for _ in 0..600 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = token.cancel_query(NoTls).await;
            }
        });
        let e = bounded(waiter.simple_query("UPDATE acct SET v = 3 WHERE id = 1"))
            .await
            .expect("CancelRequest did not stop the lock wait")
            .unwrap_err();
        assert_eq!(sqlstate(&e), "57014", "{e}");
        canceller.abort();
        let _ = canceller.await;

        // The holder's transaction is intact and commits; then the row is free.
        holder.batch_execute("COMMIT").await.unwrap();
        let mut done = false;
        for _ in 0..3 {
            if waiter
                .execute("UPDATE acct SET v = 4 WHERE id = 1", &[])
                .await
                .is_ok()
            {
                done = true;
                break;
            }
        }
        assert!(done, "the row stayed locked after the holder committed");
        let r = holder
            .query_one("SELECT v FROM acct WHERE id = 1", &[])
            .await
            .unwrap();
        assert_eq!(r.get::<_, i32>(0), 4);
    });
}

/// psql 15's `\d+`, `\dt+`, `\di+`, `\l`, `\dn` and `\du` run their catalog queries (unnest,
/// pg_table_size, pg_size_pretty, regclass names, pg_auth_members, ...) and print what
/// PostgreSQL prints for the same objects, sizes aside.
#[test]
fn psql_describe_plus_and_listings() {
    let Some(psql) = pg_tool("psql") else {
        eprintln!("psql not installed: skipped");
        return;
    };
    let dir = data_dir();
    let server = Server::start(dir.path(), &[]);
    psql_commands(
        &psql,
        server.port,
        &[
            "CREATE TABLE t (a INT PRIMARY KEY, b TEXT, n NUMERIC(10,2))",
            "CREATE INDEX ti ON t (b)",
            "INSERT INTO t VALUES (1, 'x', 1.5)",
        ],
    );
    let describe = |cmd: &str| psql_commands(&psql, server.port, &[cmd]);
    let out = describe("\\d+ t");
    assert!(out.contains("Table \"public.t\""), "{out}");
    assert!(
        out.contains(
            " Column |     Type      | Collation | Nullable | Default | Storage  | Compression | Stats target | Description "
        ),
        "{out}"
    );
    assert!(
        out.contains(" a      | integer       |           | not null |         | plain    |"),
        "{out}"
    );
    assert!(
        out.contains(" b      | text          |           |          |         | extended |"),
        "{out}"
    );
    assert!(out.contains("| main     |"), "{out}");
    assert!(out.contains("\"ti\" btree (b)"), "{out}");
    assert!(out.contains("Access method: heap"), "{out}");

    let out = describe("\\dt+");
    assert!(
        out.contains(" Schema | Name | Type  |  Owner   | Persistence | Access method |"),
        "{out}"
    );
    assert!(
        out.contains(" public | t    | table | postgres | permanent   | heap          |"),
        "{out}"
    );
    assert!(out.contains(" bytes |") || out.contains(" kB |"), "{out}");
    let out = describe("\\di+");
    assert!(
        out.contains(" public | ti     | index | postgres | t     | permanent   | btree         |"),
        "{out}"
    );
    let out = describe("\\l");
    assert!(out.contains("List of databases"), "{out}");
    assert!(out.contains(" postgres | postgres | UTF8     |"), "{out}");
    let out = describe("\\dn");
    assert!(out.contains(" public | postgres"), "{out}");
    let out = describe("\\du");
    assert!(out.contains("List of roles"), "{out}");
    assert!(out.contains(" postgres  | Superuser"), "{out}");
    let out = describe("SELECT 't'::regclass::oid > 0 AS found, pg_size_pretty(10240::bigint)");
    assert!(out.contains(" t     | 10 kB"), "{out}");
}

/// The server's TLS (rustls) with a certificate made for the test: psql connects with
/// sslmode=require and the connection is encrypted; a plain connection is still accepted (TLS
/// is offered, not required); a server without a certificate refuses sslmode=require.
#[test]
fn tls_with_a_configured_certificate() {
    let Some(psql) = pg_tool("psql") else {
        eprintln!("psql not installed: skipped");
        return;
    };
    let Some(openssl) = pg_tool("openssl") else {
        eprintln!("openssl not installed: skipped");
        return;
    };
    let dir = data_dir();
    let cert = dir.path().join("server.crt");
    let key = dir.path().join("server.key");
    let made = Command::new(&openssl)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        made.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let data = dir.path().join("data");
    let server = Server::start(
        &data,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let conn = |port: u16, mode: &str| {
        format!("host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode={mode}")
    };
    let out = run_tool(
        &psql,
        &[
            "-X",
            "-d",
            &conn(server.port, "require"),
            "-c",
            "\\conninfo",
            "-c",
            "SELECT 41 + 1",
        ],
    );
    assert!(out.contains("SSL connection (protocol: TLSv1."), "{out}");
    assert!(out.contains("42"), "{out}");
    let out = run_tool(
        &psql,
        &[
            "-X",
            "-d",
            &conn(server.port, "disable"),
            "-c",
            "\\conninfo",
        ],
    );
    assert!(!out.contains("SSL connection"), "{out}");

    let plain_dir = data_dir();
    let plain = Server::start(plain_dir.path(), &[]);
    let refused = Command::new(&psql)
        .args(["-X", "-d", &conn(plain.port, "require"), "-c", "SELECT 1"])
        .output()
        .expect("run psql");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("server does not support SSL"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// psycopg 3 (from PyPI) connects and runs parameterised queries (text and binary), the common
/// types with NULLs, rollback, `with conn.transaction()`, executemany and `cursor.copy`:
/// tools/tests/scripts/psycopg_client.py. Skipped with a note when psycopg is not installed.
#[test]
fn psycopg_connects_binds_parameters_and_runs_transactions_and_copy() {
    let has_psycopg = Command::new("python3")
        .args(["-c", "import psycopg"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_psycopg {
        eprintln!("python3 with psycopg not installed: skipped");
        return;
    }
    let dir = data_dir();
    let server = Server::start(dir.path(), &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/psycopg_client.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(server.port.to_string())
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "psycopg script failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}
