//! The SQL shell (`strata [DBFILE]`) driven as a user would: the real binary, on a database in a
//! temporary directory, with SQL piped to stdin, given with `-c` or `-f`. Output is compared
//! with what psql prints. Every wait is bounded; no test depends on timing.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long any one run of the binary may take before the test gives up on it.
const LIMIT: Duration = Duration::from_secs(120);

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

/// Runs `strata ARGS` in `dir` with `input` on stdin; kills it if it outlives [`LIMIT`].
fn strata(dir: &Path, args: &[&str], input: &str) -> Run {
    let mut child = spawn(dir, args);
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_string();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = reader(child.stdout.take().expect("stdout"));
    let err = reader(child.stderr.take().expect("stderr"));
    let status = wait_within_limit(&mut child, args);
    let _ = writer.join();
    Run {
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
        code: status.code().unwrap_or(-1),
    }
}

/// Waits for `child` (run with `args`); kills it and fails the test if it outlives [`LIMIT`].
fn wait_within_limit(child: &mut Child, args: &[&str]) -> std::process::ExitStatus {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("strata {args:?} did not finish within {LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn setup() -> TempDir {
    tempfile::tempdir().expect("temp dir")
}

const SMALL: &str = "\
CREATE TABLE t (id INT PRIMARY KEY, name TEXT, score NUMERIC(5,2));
INSERT INTO t VALUES (1, 'alice', 9.5);
INSERT INTO t VALUES (2, 'bob', NULL), (10, 'carol', 12.25);
SELECT * FROM t ORDER BY id;
";

#[test]
fn piped_stdin_prints_as_psql_does() {
    let dir = setup();
    let r = strata(dir.path(), &["test.db"], SMALL);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "");
    assert_eq!(
        r.stdout,
        "\
CREATE TABLE
INSERT 0 1
INSERT 0 2
 id | name  | score 
----+-------+-------
  1 | alice |  9.50
  2 | bob   |      
 10 | carol | 12.25
(3 rows)

"
    );
    assert!(dir.path().join("test.db").exists());

    // One row, a transaction, an empty result.
    let r = strata(
        dir.path(),
        &["test.db"],
        "BEGIN;\nSELECT name FROM t WHERE id = 1;\nCOMMIT;\nSELECT id FROM t WHERE id > 100;\n",
    );
    assert_eq!(
        r.stdout,
        "BEGIN\n name  \n-------\n alice\n(1 row)\n\nCOMMIT\n id \n----\n(0 rows)\n\n"
    );
}

#[test]
fn the_default_database_is_strata_db_in_the_current_directory() {
    let dir = setup();
    let r = strata(dir.path(), &[], "CREATE TABLE d (x INT);\n");
    assert_eq!(r.stdout, "CREATE TABLE\n", "{}", r.stderr);
    assert!(dir.path().join("strata.db").exists());
}

#[test]
fn data_persists_across_invocations() {
    let dir = setup();
    let r = strata(dir.path(), &["keep.db"], SMALL);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = strata(
        dir.path(),
        &["keep.db", "-c", "SELECT count(*) AS n, sum(id) AS s FROM t"],
        "",
    );
    assert_eq!(r.stdout, " n | s  \n---+----\n 3 | 13\n(1 row)\n\n");
    // A transaction left open at exit is rolled back, not kept.
    strata(
        dir.path(),
        &["keep.db"],
        "BEGIN;\nINSERT INTO t VALUES (99, 'ghost', 0);\n",
    );
    let r = strata(
        dir.path(),
        &["keep.db", "-t", "-c", "SELECT count(*) AS n FROM t"],
        "",
    );
    assert_eq!(r.stdout, " 3\n\n");
}

#[test]
fn command_strings_run_in_order_and_fail_with_exit_code_1() {
    let dir = setup();
    let r = strata(
        dir.path(),
        &[
            "c.db",
            "-c",
            "CREATE TABLE a (x INT); INSERT INTO a VALUES (7)",
            "-c",
            "SELECT x FROM a",
        ],
        "",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "CREATE TABLE\nINSERT 0 1\n x \n---\n 7\n(1 row)\n\n"
    );
    // The first failing statement ends the command string: exit code 1.
    let r = strata(
        dir.path(),
        &[
            "c.db",
            "-c",
            "SELECT 1 AS one; SELECT * FROM nope; SELECT 2",
        ],
        "",
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, " one \n-----\n   1\n(1 row)\n\n");
    assert_eq!(
        r.stderr,
        "ERROR:  relation \"nope\" does not exist (SQLSTATE 42P01)\n"
    );
    // A backslash command works as a command string too.
    let r = strata(dir.path(), &["c.db", "-c", "\\dt"], "");
    assert_eq!(
        r.stdout,
        "   List of relations\n Schema | Name | Type  \n--------+------+-------\n public | a    | table\n(1 row)\n\n"
    );
}

#[test]
fn scripts_go_on_after_errors_unless_on_error_stop() {
    let dir = setup();
    let script = dir.path().join("s.sql");
    std::fs::write(
        &script,
        "CREATE TABLE s (x INT);\nINSERT INTO nope VALUES (1);\nINSERT INTO s VALUES (1);\n",
    )
    .unwrap();
    let r = strata(dir.path(), &["s.db", "-f", "s.sql"], "");
    assert_eq!(r.code, 0);
    assert_eq!(r.stdout, "CREATE TABLE\nINSERT 0 1\n");
    assert!(r.stderr.contains("42P01"), "{}", r.stderr);

    std::fs::write(
        &script,
        "INSERT INTO s VALUES (2);\nINSERT INTO nope VALUES (1);\nINSERT INTO s VALUES (3);\n",
    )
    .unwrap();
    let r = strata(
        dir.path(),
        &["s.db", "-v", "ON_ERROR_STOP=1", "-f", "s.sql"],
        "",
    );
    assert_eq!(r.code, 3);
    assert_eq!(r.stdout, "INSERT 0 1\n");

    // The same from stdin, and with \set in the script itself.
    let r = strata(
        dir.path(),
        &["s.db", "-v", "ON_ERROR_STOP=on"],
        "SELECT 1/0;\nINSERT INTO s VALUES (4);\n",
    );
    assert_eq!(r.code, 3);
    assert_eq!(r.stdout, "");
    assert!(r.stderr.starts_with("ERROR:  "), "{}", r.stderr);
    assert!(r.stderr.contains("(SQLSTATE 22012)"), "{}", r.stderr);
    let r = strata(
        dir.path(),
        &["s.db"],
        "\\set ON_ERROR_STOP 1\nSELECT 1/0;\nINSERT INTO s VALUES (5);\n",
    );
    assert_eq!(r.code, 3);

    let r = strata(
        dir.path(),
        &["s.db", "-t", "-A", "-c", "SELECT x FROM s ORDER BY x"],
        "",
    );
    assert_eq!(r.stdout, "1\n2\n");

    // A script that cannot be opened: exit code 1.
    let r = strata(dir.path(), &["s.db", "-f", "missing.sql"], "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("missing.sql"), "{}", r.stderr);
}

#[test]
fn errors_carry_sqlstate_and_syntax_errors_a_caret() {
    let dir = setup();
    let r = strata(
        dir.path(),
        &["e.db"],
        "SELECT * FROM nowhere;\nSELEC 1;\nSELECT 'still running' AS s;\n",
    );
    assert_eq!(r.code, 0);
    assert_eq!(
        r.stdout,
        "       s       \n---------------\n still running\n(1 row)\n\n"
    );
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines[0],
        "ERROR:  relation \"nowhere\" does not exist (SQLSTATE 42P01)"
    );
    assert!(lines[1].starts_with("ERROR:  "), "{}", r.stderr);
    assert!(lines[1].ends_with("(SQLSTATE 42601)"), "{}", r.stderr);
    assert_eq!(lines[2], "LINE 1: SELEC 1;");
    assert_eq!(lines[3], "        ^");
}

#[test]
fn csv_tuples_only_unaligned_and_expanded() {
    let dir = setup();
    strata(dir.path(), &["f.db"], SMALL);
    let q = "SELECT id, name, score FROM t WHERE id < 3 ORDER BY id";
    let r = strata(dir.path(), &["f.db", "--csv", "-c", q], "");
    assert_eq!(r.stdout, "id,name,score\n1,alice,9.50\n2,bob,\n");
    let r = strata(
        dir.path(),
        &[
            "f.db",
            "--csv",
            "-c",
            "SELECT 'a,b' AS x, 'say \"hi\"' AS y",
        ],
        "",
    );
    assert_eq!(r.stdout, "x,y\n\"a,b\",\"say \"\"hi\"\"\"\n");
    let r = strata(dir.path(), &["f.db", "-t", "-c", q], "");
    assert_eq!(r.stdout, "  1 | alice |  9.50\n  2 | bob   |      \n\n");
    let r = strata(dir.path(), &["f.db", "-A", "-c", q], "");
    assert_eq!(r.stdout, "id|name|score\n1|alice|9.50\n2|bob|\n(2 rows)\n");
    let r = strata(dir.path(), &["f.db", "-A", "-t", "-F", ",", "-c", q], "");
    assert_eq!(r.stdout, "1,alice,9.50\n2,bob,\n");
    let r = strata(dir.path(), &["f.db", "-x", "-c", q], "");
    assert_eq!(
        r.stdout,
        "-[ RECORD 1 ]\nid    | 1\nname  | alice\nscore | 9.50\n-[ RECORD 2 ]\nid    | 2\nname  | bob\nscore | \n\n"
    );
    // NULL display and a quiet run (no command tags).
    let r = strata(
        dir.path(),
        &["f.db", "-q", "-P", "null=(null)"],
        "CREATE TABLE q (x INT);\nSELECT score FROM t WHERE id = 2;\n",
    );
    assert_eq!(r.stdout, " score  \n--------\n (null)\n(1 row)\n\n");
}

#[test]
fn output_is_flushed_after_every_statement() {
    let dir = setup();
    let mut child = spawn(dir.path(), &["flush.db"]);
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let pump = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    // Read until `want` has arrived, or give up after LIMIT.
    let wait_for = |want: &str| -> String {
        let deadline = Instant::now() + LIMIT;
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains(want) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(bytes) => got.extend(bytes),
                Err(_) => break,
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    };
    stdin
        .write_all(b"SELECT 42 AS answer;\n")
        .and_then(|()| stdin.flush())
        .expect("write");
    let first = wait_for("(1 row)");
    let ok = first.contains("     42\n(1 row)\n");
    // A statement split over lines runs when its `;` arrives.
    if ok {
        stdin.write_all(b"SELECT 'a'\n").expect("write");
        stdin
            .write_all(b"  AS second;\n")
            .and_then(|()| stdin.flush())
            .expect("write");
    }
    let second = if ok {
        wait_for("second")
    } else {
        String::new()
    };
    drop(stdin);
    let deadline = Instant::now() + LIMIT;
    while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = pump.join();
    assert!(
        ok,
        "no output for the first statement while stdin stayed open: {first:?}"
    );
    assert!(second.contains(" second \n--------\n a\n"), "{second:?}");
}

#[test]
fn unterminated_last_statement_runs_at_eof() {
    let dir = setup();
    let r = strata(dir.path(), &["u.db"], "SELECT 1 AS a;\nSELECT 2 AS b");
    assert_eq!(
        r.stdout,
        " a \n---\n 1\n(1 row)\n\n b \n---\n 2\n(1 row)\n\n"
    );
    // Comments, quotes and dollar quotes hide semicolons.
    let r = strata(
        dir.path(),
        &["u.db"],
        "-- a comment; with a semicolon\nSELECT 'x;y' AS s, $$p;q$$ AS d /* ; */;\n",
    );
    assert_eq!(
        r.stdout,
        "  s  |  d  \n-----+-----\n x;y | p;q\n(1 row)\n\n"
    );
}

#[test]
fn transactions_show_their_state_and_failed_ones_roll_back() {
    let dir = setup();
    let r = strata(
        dir.path(),
        &["tx.db"],
        "CREATE TABLE a (x INT PRIMARY KEY);\nBEGIN;\nINSERT INTO a VALUES (1);\nINSERT INTO a VALUES (1);\nSELECT 1;\nCOMMIT;\nSELECT count(*) AS n FROM a;\n",
    );
    assert_eq!(
        r.stdout,
        "CREATE TABLE\nBEGIN\nINSERT 0 1\nROLLBACK\n n \n---\n 0\n(1 row)\n\n"
    );
    let errors: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(errors.len(), 2, "{}", r.stderr);
    assert!(errors[0].contains("(SQLSTATE 23505)"), "{}", r.stderr);
    assert!(errors[1].contains("(SQLSTATE 25P02)"), "{}", r.stderr);
}

#[test]
fn backslash_commands() {
    let dir = setup();
    std::fs::write(
        dir.path().join("inc.sql"),
        "INSERT INTO m VALUES (1, 10);\n",
    )
    .unwrap();
    let r = strata(
        dir.path(),
        &["b.db"],
        "\
CREATE TABLE m (id INT PRIMARY KEY, ts INT NOT NULL DEFAULT 0);
CREATE INDEX m_ts ON m USING sparse (ts);
\\i inc.sql
\\o out.txt
SELECT id, ts FROM m;
\\o
\\d m
\\di
\\nosuch
\\x
SELECT 1 AS a;
\\q
SELECT 'after quit';
",
    );
    assert_eq!(r.code, 0);
    assert_eq!(
        r.stdout,
        "\
CREATE TABLE
CREATE INDEX
INSERT 0 1
           Table \"public.m\"
 Column |  Type   | Nullable | Default 
--------+---------+----------+---------
 id     | integer | not null | 
 ts     | integer | not null | 0
Indexes:
    \"m_pkey\" PRIMARY KEY, dense (id)
    \"m_ts\" sparse (ts)

                    List of relations
 Schema |  Name  | Type  | Table |    Kind     | Columns 
--------+--------+-------+-------+-------------+---------
 public | m_pkey | index | m     | primary key | id
 public | m_ts   | index | m     | sparse      | ts
(2 rows)

Expanded display is on.
-[ RECORD 1 ]
a | 1

"
    );
    assert_eq!(r.stderr, "invalid command \\nosuch\nTry \\? for help.\n");
    let file = std::fs::read_to_string(dir.path().join("out.txt")).unwrap();
    assert_eq!(file, " id | ts \n----+----\n  1 | 10\n(1 row)\n\n");

    let r = strata(dir.path(), &["b.db", "-c", "\\d nothing"], "");
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr, "Did not find any relation named \"nothing\".\n");
}

#[test]
fn timing_prints_a_time_line() {
    let dir = setup();
    let r = strata(dir.path(), &["tm.db"], "\\timing\nSELECT 1 AS a;\n");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "Timing is on.");
    let last = lines.last().copied().unwrap_or_default();
    assert!(
        last.starts_with("Time: ") && last.ends_with(" ms"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_database_that_cannot_be_opened_is_an_error() {
    let dir = setup();
    let r = strata(dir.path(), &["no/such/dir/x.db", "-c", "SELECT 1"], "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("cannot open database"), "{}", r.stderr);
}

#[test]
fn copy_round_trips_through_client_files() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(
        d.join("in.csv"),
        "id,name\n1,\"x, y\"\n2,\"say \"\"hi\"\"\"\n3,\n",
    )
    .unwrap();
    let r = strata(
        d,
        &[
            "c.db",
            "-c",
            "CREATE TABLE t (id INT PRIMARY KEY, name TEXT)",
            "-c",
            "\\copy t from 'in.csv' with (format csv, header)",
            "-c",
            "\\copy (SELECT * FROM t ORDER BY id) to 'out.csv' csv header",
        ],
        "",
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "CREATE TABLE\nCOPY 3\nCOPY 3\n"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(d.join("out.csv")).unwrap(),
        "id,name\n1,\"x, y\"\n2,\"say \"\"hi\"\"\"\n3,\n"
    );

    // Data inline in a script, up to `\.`; out again to stdout in text format.
    let r = strata(
        d,
        &["c.db"],
        "\\copy t (id, name) from stdin\n10\tten\n11\t\\N\n\\.\n\\copy (SELECT * FROM t WHERE id >= 10 ORDER BY id) to stdout\n",
    );
    assert_eq!(
        r.stdout, "COPY 2\n10\tten\n11\t\\N\nCOPY 2\n",
        "{}",
        r.stderr
    );

    // A bad row fails the whole COPY (one statement): nothing of the file is loaded.
    std::fs::write(d.join("bad.csv"), "20,ok\ntwenty-one,bad\n").unwrap();
    let r = strata(
        d,
        &["c.db", "-v", "ON_ERROR_STOP=1"],
        "\\copy t from 'bad.csv' (format csv)\nSELECT 1;\n",
    );
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("(SQLSTATE 22P02)"), "{}", r.stderr);
    let r = strata(d, &["c.db", "-At", "-c", "SELECT count(*) FROM t"], "");
    assert_eq!(r.stdout, "5\n");

    // A missing file, and arguments that do not parse.
    let r = strata(d, &["c.db", "-c", "\\copy t from 'missing.csv'"], "");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("missing.csv: No such file"),
        "{}",
        r.stderr
    );
    let r = strata(d, &["c.db", "-c", "\\copy t into x"], "");
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "\\copy: parse error at \"into\"\n")
    );
}

#[test]
fn ctrl_c_cancels_the_running_statement_and_stops_the_script() {
    let dir = setup();
    let made = strata(
        dir.path(),
        &["-q", "cancel.db"],
        "CREATE TABLE t (id INT PRIMARY KEY, v INT);
         INSERT INTO t SELECT g, g FROM generate_series(1, 20000) g;",
    );
    assert_eq!(made.code, 0, "{}", made.stderr);
    let mut child = spawn(dir.path(), &["cancel.db"]);
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let err = reader(child.stderr.take().expect("stderr"));
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let pump = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    // Once `started` is printed, the shell is up (Ctrl-C is its own) and the slow statement,
    // a correlated subquery that reads the table once per row (minutes of work, a storage
    // access all along), is next.
    stdin
        .write_all(
            b"SELECT 'started';\nSELECT count(*) FROM t a WHERE EXISTS (SELECT 1 FROM t b WHERE b.v = a.v + 1 AND b.id > 0);\nSELECT 'after';\n",
        )
        .expect("write");
    drop(stdin);
    let deadline = Instant::now() + LIMIT;
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("started") {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(bytes) => got.extend(bytes),
            Err(_) => break,
        }
    }
    // Give the shell a moment to start the slow statement: a Ctrl-C before it would stop the
    // script without running it (as psql does). Then Ctrl-C until the shell ends.
    thread::sleep(Duration::from_secs(1));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        thread::sleep(Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = pump.join();
    got.extend(rx.try_iter().flatten());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&got).into_owned(),
        err.join().unwrap(),
    );
    let status = status.expect("the shell ended after Ctrl-C");
    assert_eq!(status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("canceling statement due to user request (SQLSTATE 57014)"),
        "{stderr}"
    );
    assert!(!stdout.contains("after"), "{stdout}");
}

/// Runs `strata -At DBFILE` with stdin from `script`, stdout to `out` and stderr to `err` (the
/// same file when they are equal); returns the exit code.
fn run_to_files(dir: &Path, script: &str, out: &str, err: &str) -> i32 {
    std::fs::write(dir.join("script.sql"), script).expect("script written");
    let out_file = std::fs::File::create(dir.join(out)).expect("stdout file");
    let err_file = if err == out {
        out_file.try_clone().expect("shared file")
    } else {
        std::fs::File::create(dir.join(err)).expect("stderr file")
    };
    let args = ["-At", "db"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(dir)
        .args(args)
        .stdin(std::fs::File::open(dir.join("script.sql")).expect("script"))
        .stdout(out_file)
        .stderr(err_file)
        .spawn()
        .expect("strata binary runs");
    wait_within_limit(&mut child, &args).code().unwrap_or(-1)
}

/// Output to a regular file is written in blocks, not per statement: all of it still arrives,
/// in order, past many buffers' worth; and when stderr writes the same file, each error lands
/// between the results around it, as with per-statement flushing.
#[test]
fn output_to_files_is_complete_and_in_order() {
    let dir = setup();
    let mut script = String::from("CREATE TABLE f (id INT PRIMARY KEY, s TEXT);\n");
    let mut want = String::from("CREATE TABLE\n");
    for i in 0..15000 {
        script.push_str(&format!("INSERT INTO f VALUES ({i}, 'row {i}');\n"));
        want.push_str("INSERT 0 1\n");
    }
    script.push_str("SELECT id, s FROM f WHERE id % 5000 = 7 ORDER BY id;\n");
    want.push_str("7|row 7\n5007|row 5007\n10007|row 10007\n");
    assert!(want.len() > 64 << 10, "the output spans several buffers");
    assert_eq!(run_to_files(dir.path(), &script, "out.txt", "err.txt"), 0);
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).expect("read");
    assert_eq!(read("out.txt"), want);
    assert_eq!(read("err.txt"), "");

    let script = "SELECT 1;\nSELECT nope FROM f;\nSELECT 2;\nSELECT 1/0;\nSELECT 3;\n";
    assert_eq!(run_to_files(dir.path(), script, "both.txt", "both.txt"), 0);
    let lines: Vec<String> = read("both.txt").lines().map(str::to_string).collect();
    let at = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix:?} missing from {lines:?}"))
    };
    assert!(at("1") < at("ERROR:  column \"nope\""), "{lines:?}");
    assert!(at("ERROR:  column \"nope\"") < at("2"), "{lines:?}");
    assert!(at("2") < at("ERROR:  division by zero"), "{lines:?}");
    assert!(at("ERROR:  division by zero") < at("3"), "{lines:?}");
}
