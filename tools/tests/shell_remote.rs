//! The shell in remote mode (`strata postgres://...`) against a real PostgreSQL 15, started for
//! the test in a temporary directory on a free loopback port and stopped by a guard (also when
//! the test fails). The binaries are looked for on PATH, in /usr/local/bin and in
//! /usr/lib/postgresql/15/bin; without them the test prints why and passes. PostgreSQL refuses
//! to run as root: then the server runs as the user `$STRATA_TEST_PG_USER` (default `pgtest`,
//! created with useradd if missing).
//!
//! One test drives every scenario on one server (an initdb takes seconds). Every wait is
//! bounded; nothing asserts a duration.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long any one run of the binary may take before the test gives up on it.
const LIMIT: Duration = Duration::from_secs(60);

/// A throwaway PostgreSQL server; stopped and deleted on drop.
struct Postgres {
    _dir: TempDir,
    data: PathBuf,
    pg_ctl: PathBuf,
    /// The OS user the server runs as (None: the test's own).
    os_user: Option<String>,
    port: u16,
}

fn find_binary(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push("/usr/local/bin".into());
    dirs.push("/usr/lib/postgresql/15/bin".into());
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program args` as `user` (via runuser), or as ourselves.
fn command_as(user: Option<&str>, program: &Path, args: &[&str]) -> Command {
    match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(program).args(args);
            c
        }
        None => {
            let mut c = Command::new(program);
            c.args(args);
            c
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Postgres {
    /// Starts a server, or says why it cannot (Err: the reason to skip).
    fn start() -> Result<Postgres, String> {
        let (Some(initdb), Some(pg_ctl)) = (find_binary("initdb"), find_binary("pg_ctl")) else {
            return Err("PostgreSQL binaries (initdb, pg_ctl) not found".into());
        };
        let os_user = if is_root() {
            let user = std::env::var("STRATA_TEST_PG_USER").unwrap_or_else(|_| "pgtest".into());
            let exists = Command::new("id")
                .arg(&user)
                .output()
                .is_ok_and(|o| o.status.success());
            if !exists {
                let made = Command::new("useradd")
                    .args(["-m", &user])
                    .status()
                    .is_ok_and(|s| s.success());
                if !made {
                    return Err(format!("running as root and cannot create the user {user}"));
                }
            }
            Some(user)
        } else {
            None
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        if let Some(u) = &os_user {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .expect("chmod temp dir");
            let ok = Command::new("chown")
                .arg(u)
                .arg(&data)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown {u} {}", data.display());
        }
        let data_arg = data.to_str().expect("utf-8 temp path");
        let out = command_as(
            os_user.as_deref(),
            &initdb,
            &[
                "-D",
                data_arg,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )
        .output()
        .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = data.join("server.log");
        let log_arg = log.to_str().expect("utf-8 temp path").to_string();
        // A free port can be taken between our probe and the server's bind: try a few.
        for _ in 0..5 {
            let port = free_port();
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' -c fsync=off"
            );
            let status = command_as(
                os_user.as_deref(),
                &pg_ctl,
                &[
                    "-D", data_arg, "-l", &log_arg, "-w", "-t", "60", "-o", &options, "start",
                ],
            )
            .stdout(Stdio::null())
            .status()
            .expect("pg_ctl runs");
            if status.success() {
                return Ok(Postgres {
                    _dir: dir,
                    data,
                    pg_ctl,
                    os_user,
                    port,
                });
            }
        }
        panic!(
            "PostgreSQL did not start; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data.to_str().unwrap_or_default().to_string();
        let _ = command_as(
            self.os_user.as_deref(),
            &self.pg_ctl,
            &["-D", &data, "-m", "immediate", "-w", "-t", "30", "stop"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    }
}

struct Run {
    stdout: String,
    stderr: String,
    code: i32,
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(dir)
        .args(args)
        .env("STRATA_HISTORY", dir.join("history"))
        .env_remove("PGPASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strata binary runs")
}

fn reader(mut r: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = r.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits for `child` up to `limit`; kills it and panics if it is still running then.
fn finish(mut child: Child, limit: Duration, what: &str) -> Run {
    let out = reader(child.stdout.take().expect("stdout"));
    let err = reader(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };
    Run {
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
        code: status.code().unwrap_or(-1),
    }
}

/// Runs `strata ARGS` in `dir` with `input` on stdin.
fn strata(dir: &Path, args: &[&str], input: &str) -> Run {
    let mut child = spawn(dir, args);
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("write stdin");
    drop(stdin);
    finish(child, LIMIT, &format!("strata {args:?}"))
}

#[test]
fn remote_shell_against_postgres() {
    let pg = match Postgres::start() {
        Ok(pg) => pg,
        Err(why) => {
            println!("SKIPPED remote_shell_against_postgres: {why}");
            return;
        }
    };
    let url = pg.url();
    let work = tempfile::tempdir().expect("work dir");
    let dir = work.path();

    // -c: DDL and DML tags, aligned output as psql prints it.
    let r = strata(
        dir,
        &[
            &url,
            "-c",
            "CREATE TABLE t (id int PRIMARY KEY, name text, score numeric(5,2))",
            "-c",
            "INSERT INTO t VALUES (1, 'alice', 9.5), (2, 'bob', NULL)",
            "-c",
            "SELECT * FROM t ORDER BY id",
            "-c",
            "UPDATE t SET score = score + 1",
        ],
        "",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "CREATE TABLE\nINSERT 0 2\n id | name  | score \n----+-------+-------\n  1 | alice |  9.50\n  2 | bob   |      \n(2 rows)\n\nUPDATE 2\n"
    );

    // psql's flags instead of a URL; CSV and unaligned tuples-only output.
    let port = pg.port.to_string();
    let flags = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "postgres",
        "-d",
        "postgres",
    ];
    let mut args: Vec<&str> = flags.to_vec();
    args.extend(["--csv", "-c", "SELECT id, name FROM t ORDER BY id"]);
    let r = strata(dir, &args, "");
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "id,name\n1,alice\n2,bob\n")
    );
    let r = strata(
        dir,
        &[&url, "-At", "-c", "SELECT count(*), max(id) FROM t"],
        "",
    );
    assert_eq!(r.stdout, "2|2\n");

    // A script on stdin: statements stream, a failed transaction shows 25P02 until ROLLBACK,
    // errors carry SQLSTATE and the LINE/caret context.
    let script = "BEGIN;\nINSERT INTO t VALUES (3, 'carol', 1);\nSELECT nosuch FROM t;\nSELECT 1;\nROLLBACK;\nSELECT count(*) AS n FROM t;\n";
    let r = strata(dir, &[&url], script);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "BEGIN\nINSERT 0 1\nROLLBACK\n n \n---\n 2\n(1 row)\n\n"
    );
    assert!(
        r.stderr.contains(
            "ERROR:  column \"nosuch\" does not exist (SQLSTATE 42703)\nLINE 1: SELECT nosuch FROM t;\n               ^\n"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("(SQLSTATE 25P02)"), "{}", r.stderr);

    // ON_ERROR_STOP: the script stops at the first error, exit 3.
    let r = strata(
        dir,
        &[&url, "-v", "ON_ERROR_STOP=1"],
        "SELECT 1 AS a;\nSELEC 2;\nSELECT 3 AS b;\n",
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(!r.stdout.contains(" b "), "{}", r.stdout);
    assert!(r.stderr.contains("(SQLSTATE 42601)"), "{}", r.stderr);
    // A failed -c exits 1; a server that is not there, 2.
    let r = strata(dir, &[&url, "-c", "SELECT 1/0"], "");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("division by zero (SQLSTATE 22012)"),
        "{}",
        r.stderr
    );
    let r = strata(
        dir,
        &["postgres://postgres@127.0.0.1:1/postgres", "-c", "SELECT 1"],
        "",
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("connection to server"), "{}", r.stderr);

    // \copy round trip: a client-side CSV file in, out to another file, the same rows.
    std::fs::write(
        dir.join("in.csv"),
        "id,name,score\n10,\"x, y\",1.5\n11,\"say \"\"hi\"\"\",\n12,,3\n",
    )
    .unwrap();
    let r = strata(
        dir,
        &[
            &url,
            "-c",
            "\\copy t from 'in.csv' with (format csv, header)",
            "-c",
            "\\copy (SELECT * FROM t WHERE id >= 10 ORDER BY id) to 'out.csv' with (format csv, header)",
        ],
        "",
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "COPY 3\nCOPY 3\n"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("out.csv")).unwrap(),
        "id,name,score\n10,\"x, y\",1.50\n11,\"say \"\"hi\"\"\",\n12,,3.00\n"
    );
    // From the script itself (stdin up to \.), and to stdout in text format.
    let r = strata(
        dir,
        &[&url],
        "\\copy t (id, name) from stdin\n20\tdelta\n21\t\\N\n\\.\n\\copy (SELECT id, name FROM t WHERE id >= 20 ORDER BY id) to stdout\n",
    );
    assert_eq!(
        r.stdout, "COPY 2\n20\tdelta\n21\t\\N\nCOPY 2\n",
        "{}",
        r.stderr
    );
    // A bad row fails the whole COPY: nothing of the file is loaded.
    std::fs::write(dir.join("bad.csv"), "30,ok,1\nthirty-one,bad,2\n").unwrap();
    let r = strata(
        dir,
        &[&url, "-c", "\\copy t from 'bad.csv' (format csv)"],
        "",
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("(SQLSTATE 22P02)"), "{}", r.stderr);
    assert!(
        r.stderr.contains("CONTEXT:  COPY t, line 2"),
        "{}",
        r.stderr
    );
    let r = strata(
        dir,
        &[&url, "-At", "-c", "SELECT count(*) FROM t WHERE id >= 30"],
        "",
    );
    assert_eq!(r.stdout, "0\n");
    let r = strata(dir, &[&url, "-c", "\\copy t from 'missing.csv'"], "");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("missing.csv: No such file"),
        "{}",
        r.stderr
    );

    // \d family over information_schema and pg_indexes.
    let r = strata(
        dir,
        &[
            &url,
            "-c",
            "CREATE INDEX t_name ON t (name)",
            "-c",
            "\\dt",
            "-c",
            "\\di",
            "-c",
            "\\d t",
        ],
        "",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(" public | t    | table\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(" public | t_name | index | t\n"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("Table \"public.t\""), "{}", r.stdout);
    assert!(
        r.stdout.contains(" score  | numeric(5,2) |          | \n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("    \"t_pkey\" PRIMARY KEY, btree (id)\n    \"t_name\" btree (name)"),
        "{}",
        r.stdout
    );

    // Ctrl-C: SIGINT to the shell sends a CancelRequest; the statement fails with 57014 and
    // the script stops (exit 3), long before pg_sleep(30) would have returned.
    let mut child = spawn(dir, &[&url]);
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"SELECT pg_sleep(30);\nSELECT 'after' AS later;\n")
        .expect("write stdin");
    drop(stdin);
    let mut running = false;
    for _ in 0..400 {
        let r = strata(
            dir,
            &[
                &url,
                "-At",
                "-c",
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30);'",
            ],
            "",
        );
        if r.stdout == "1\n" {
            running = true;
            break;
        }
        thread::sleep(Duration::from_millis(25));
    }
    if !running {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the pg_sleep statement never showed up in pg_stat_activity");
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if !sent {
        let _ = child.kill();
        let _ = child.wait();
        panic!("kill -INT {} failed", child.id());
    }
    let r = finish(child, Duration::from_secs(20), "the canceled shell");
    assert!(
        r.stderr
            .contains("ERROR:  canceling statement due to user request (SQLSTATE 57014)"),
        "{}",
        r.stderr
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(!r.stdout.contains("after"), "{}", r.stdout);
}
