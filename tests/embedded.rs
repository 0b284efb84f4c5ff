//! The embedded API as a program uses it: persistence across reopen, typed access, the
//! transaction guard, errors with SQLSTATE, and one `Database` shared by many threads (a bank
//! workload whose total never changes under REPEATABLE READ and SERIALIZABLE).

use std::sync::atomic::{AtomicU64, Ordering};

use strata::{DataType, Database, Isolation, Value};

#[test]
fn data_and_schema_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    {
        let db = Database::open(&path).unwrap();
        db.execute_batch(
            "CREATE TABLE t (id INT PRIMARY KEY, name TEXT, score NUMERIC(6,2));
             CREATE INDEX t_name ON t (name);
             CREATE VIEW high AS SELECT id, name FROM t WHERE score > 50;
             CREATE SEQUENCE s;",
        )
        .unwrap();
        for i in 0..200 {
            db.execute(
                "INSERT INTO t VALUES ($1, $2, $3)",
                &[
                    Value::Int4(i),
                    format!("n{i}").into(),
                    Value::Float8(i as f64 / 2.0),
                ],
            )
            .unwrap();
        }
        assert_eq!(
            db.query("SELECT nextval('s')", &[]).unwrap()[0]
                .get::<i64>(0)
                .unwrap(),
            1
        );
        let mut tx = db.transaction().unwrap();
        tx.execute("DELETE FROM t WHERE id >= 100", &[]).unwrap();
        drop(tx); // rolled back
    }
    let db = Database::open(&path).unwrap();
    let rows = db.query("SELECT count(*), sum(score) FROM t", &[]).unwrap();
    assert_eq!(rows[0].get::<i64>(0).unwrap(), 200);
    assert_eq!(rows[0].text(1).unwrap(), "9950.00");
    let rows = db
        .query("SELECT id FROM t WHERE name = 'n150'", &[])
        .unwrap();
    assert_eq!(rows[0].get::<i32>(0).unwrap(), 150);
    assert_eq!(
        db.query("SELECT count(*) FROM high", &[]).unwrap()[0]
            .get::<i64>(0)
            .unwrap(),
        99
    );
    // A sequence never hands out a value twice, even across a restart.
    assert!(
        db.query("SELECT nextval('s')", &[]).unwrap()[0]
            .get::<i64>(0)
            .unwrap()
            > 1
    );
    db.engine().verify().unwrap();
}

#[test]
fn errors_carry_sqlstate_and_typed_access_checks_types() {
    let db = Database::memory().unwrap();
    assert_eq!(
        db.execute("SELECT * FROM missing", &[]).unwrap_err().code,
        "42P01"
    );
    assert_eq!(db.execute("SELEC 1", &[]).unwrap_err().code, "42601");
    db.execute(
        "CREATE TABLE t (a INT PRIMARY KEY, b VARCHAR(3) NOT NULL)",
        &[],
    )
    .unwrap();
    assert_eq!(
        db.execute("INSERT INTO t VALUES (1, 'abcd')", &[])
            .unwrap_err()
            .code,
        "22001"
    );
    assert_eq!(
        db.execute("INSERT INTO t VALUES (1, NULL)", &[])
            .unwrap_err()
            .code,
        "23502"
    );
    db.execute("INSERT INTO t VALUES (1, 'x')", &[]).unwrap();
    assert_eq!(
        db.execute("INSERT INTO t VALUES (1, 'y')", &[])
            .unwrap_err()
            .code,
        "23505"
    );
    assert_eq!(db.execute("SELECT 1/0", &[]).unwrap_err().code, "22012");
    assert_eq!(
        db.execute("SELECT 2147483647 + 1", &[]).unwrap_err().code,
        "22003"
    );
    let e = db.execute("SELECT nope FROM t", &[]).unwrap_err();
    assert_eq!(e.code, "42703");
    assert!(e.message.contains("nope"), "{}", e.message);
    let rows = db.query("SELECT a, b FROM t", &[]).unwrap();
    assert!(rows[0].get::<i64>(1).is_err());
    assert_eq!(
        rows[0].get::<Option<String>>(1).unwrap().as_deref(),
        Some("x")
    );
    assert_eq!(
        db.execute("UPDATE t SET b = 'z' WHERE a = $1", &[Value::Int4(1)])
            .unwrap(),
        1
    );
}

#[test]
fn failed_transaction_refuses_statements_until_rollback() {
    let db = Database::memory().unwrap();
    db.execute("CREATE TABLE t (a INT PRIMARY KEY)", &[])
        .unwrap();
    let mut tx = db.transaction().unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
    assert!(tx.execute("INSERT INTO t VALUES (1)", &[]).is_err());
    assert_eq!(
        tx.execute("INSERT INTO t VALUES (2)", &[])
            .unwrap_err()
            .code,
        "25P02"
    );
    assert!(tx.commit().is_err());
    assert_eq!(
        db.query("SELECT count(*) FROM t", &[]).unwrap()[0]
            .get::<i64>(0)
            .unwrap(),
        0
    );
}

#[test]
fn empty_statements_do_nothing_and_syntax_errors_fail_the_transaction() {
    let db = Database::memory().unwrap();
    db.execute("CREATE TABLE t (a INT PRIMARY KEY)", &[])
        .unwrap();
    let count = || {
        db.query("SELECT count(*) FROM t", &[]).unwrap()[0]
            .get::<i64>(0)
            .unwrap()
    };
    // An empty statement inside a transaction runs as nothing: it does not commit.
    let mut tx = db.transaction().unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
    assert_eq!(tx.execute("", &[]).unwrap(), 0);
    assert_eq!(tx.execute(" -- only a comment", &[]).unwrap(), 0);

    drop(tx);
    assert_eq!(count(), 0, "the transaction was rolled back, not committed");
    // The same for an empty prepared statement.
    let mut conn = db.connect();
    conn.execute("BEGIN", &[]).unwrap();
    conn.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
    let empty = conn.session().prepare("", &[]).unwrap();
    assert_eq!(
        conn.session().execute_prepared(&empty, &[]).unwrap().tag,
        ""
    );
    drop(conn);
    assert_eq!(count(), 0, "the transaction was rolled back, not committed");
    // A syntax error fails the block, as any other error does.
    let mut tx = db.transaction().unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
    assert_eq!(
        tx.execute("INSRT INTO t VALUES (2)", &[]).unwrap_err().code,
        "42601"
    );
    assert_eq!(tx.execute("SELECT 1", &[]).unwrap_err().code, "25P02");
    assert!(tx.commit().is_err());
    assert_eq!(count(), 0);
}

fn bank(isolation: Isolation) {
    let db = Database::memory().unwrap();
    db.execute(
        "CREATE TABLE acct (id INT PRIMARY KEY, balance BIGINT NOT NULL)",
        &[],
    )
    .unwrap();
    const ACCOUNTS: i32 = 8;
    for i in 0..ACCOUNTS {
        db.execute("INSERT INTO acct VALUES ($1, 1000)", &[Value::Int4(i)])
            .unwrap();
    }
    let committed = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..4 {
            let db = db.clone();
            let committed = &committed;
            s.spawn(move || {
                let mut x = 0x9E37_79B9u32.wrapping_mul(t + 1);
                for _ in 0..150 {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    let from = (x % ACCOUNTS as u32) as i32;
                    let to = ((x / 7) % ACCOUNTS as u32) as i32;
                    let amount = (x % 50) as i64;
                    let Ok(mut tx) = db.transaction_with(isolation) else {
                        continue;
                    };
                    let r = (|| {
                        let b: i64 = tx.query(
                            "SELECT balance FROM acct WHERE id = $1",
                            &[Value::Int4(from)],
                        )?[0]
                            .get(0)?;
                        tx.execute(
                            "UPDATE acct SET balance = $1 WHERE id = $2",
                            &[Value::Int8(b - amount), Value::Int4(from)],
                        )?;
                        let c: i64 = tx
                            .query("SELECT balance FROM acct WHERE id = $1", &[Value::Int4(to)])?
                            [0]
                        .get(0)?;
                        tx.execute(
                            "UPDATE acct SET balance = $1 WHERE id = $2",
                            &[Value::Int8(c + amount), Value::Int4(to)],
                        )?;
                        Ok::<_, strata::Error>(())
                    })();
                    match r {
                        Ok(()) => {
                            if tx.commit().is_ok() {
                                committed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        // Serialization failures and deadlocks: the transaction is rolled back.
                        Err(e) => assert!(
                            ["40001", "40P01", "55P03"].contains(&e.code),
                            "unexpected error {e:?}"
                        ),
                    }
                }
            });
        }
    });
    let total: i64 = db.query("SELECT sum(balance) FROM acct", &[]).unwrap()[0]
        .get(0)
        .unwrap();
    assert_eq!(
        total,
        1000 * ACCOUNTS as i64,
        "money was created or destroyed"
    );
    assert!(committed.load(Ordering::Relaxed) > 0);
}

#[test]
fn bank_total_is_invariant_under_repeatable_read() {
    bank(Isolation::RepeatableRead);
}

#[test]
fn bank_total_is_invariant_under_serializable() {
    bank(Isolation::Serializable);
}

#[test]
fn statements_share_cached_plans_that_follow_ddl_of_other_connections() {
    let db = Database::memory().unwrap();
    db.execute_batch(
        "CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b')",
    )
    .unwrap();
    let mut reader = db.connect();
    let mut writer = db.connect();
    let v = |c: &mut strata::Connection, sql: &str| -> Vec<String> {
        c.query(sql, &[])
            .unwrap()
            .iter()
            .map(|r| r.text(0).unwrap_or_default())
            .collect()
    };
    assert_eq!(v(&mut reader, "SELECT v FROM t WHERE id = 1"), ["a"]);
    assert_eq!(v(&mut reader, "SELECT v FROM t WHERE id = 2"), ["b"]);
    let by_param = |c: &mut strata::Connection, id: i32| -> Vec<String> {
        c.query("SELECT v FROM t WHERE id = $1", &[Value::Int4(id)])
            .unwrap()
            .iter()
            .map(|r| r.text(0).unwrap_or_default())
            .collect()
    };
    assert_eq!(by_param(&mut reader, 1), ["a"]);
    assert_eq!(by_param(&mut reader, 2), ["b"]);
    // The constants became `$1` of type INTEGER: all four ran one cached plan.
    assert_eq!(reader.session().cached_plans(), 1);
    assert_eq!(
        v(&mut reader, "SELECT v FROM t WHERE id = 2 OR id = 1"),
        ["a", "b"]
    );
    assert_eq!(reader.session().cached_plans(), 2);

    // Another connection replaces the column: the same text now means the new one.
    writer
        .execute_batch(
            "ALTER TABLE t RENAME COLUMN v TO old_v; ALTER TABLE t ADD COLUMN v INT DEFAULT 7",
        )
        .unwrap();
    assert_eq!(v(&mut reader, "SELECT v FROM t WHERE id = 1"), ["7"]);
    assert_eq!(by_param(&mut reader, 2), ["7"]);

    // A REPEATABLE READ snapshot keeps the catalog it started with, cached plan or not.
    let mut tx = db.transaction_with(Isolation::RepeatableRead).unwrap();
    assert_eq!(
        tx.query("SELECT v FROM t WHERE id = 1", &[]).unwrap()[0].text(0),
        Some("7".into())
    );
    writer
        .execute_batch("ALTER TABLE t DROP COLUMN v; ALTER TABLE t RENAME COLUMN old_v TO v")
        .unwrap();
    assert_eq!(
        tx.query("SELECT v FROM t WHERE id = 2", &[]).unwrap()[0].text(0),
        Some("7".into())
    );
    tx.rollback().unwrap();
    assert_eq!(v(&mut reader, "SELECT v FROM t WHERE id = 2"), ["b"]);
}

#[test]
fn index_only_scans_read_no_rows_and_agree_with_row_scans() {
    let db = Database::memory().unwrap();
    let mut c = db.connect();
    c.execute_batch(
        "CREATE TABLE t (id INT PRIMARY KEY, k TEXT, v INT);
         CREATE INDEX t_k ON t (k);
         INSERT INTO t SELECT g, 'k' || (g % 50), g * 2 FROM generate_series(1, 2000) g;
         DELETE FROM t WHERE id % 10 = 0;",
    )
    .unwrap();
    let rows = |c: &mut strata::Connection, sql: &str| -> (Vec<String>, u64) {
        let r = c.query(sql, &[]).unwrap();
        let text = r
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.text(i).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        (text, c.session().last_stats.row_lookups)
    };
    // k and id come from the index entries alone; v needs the rows.
    let (only, lookups) = rows(&mut c, "SELECT id, k FROM t WHERE k = 'k7' ORDER BY id");
    assert_eq!(lookups, 0);
    assert_eq!(only.len(), 40);
    let (full, lookups) = rows(&mut c, "SELECT id, k, v FROM t WHERE k = 'k7' ORDER BY id");
    assert_eq!(lookups, 40);
    let trimmed: Vec<String> = full
        .iter()
        .map(|r| r.rsplit_once(',').unwrap().0.to_string())
        .collect();
    assert_eq!(only, trimmed);
    // k1 (40 rows), k10 (none left), k11..k19 (360) and k2 (40).
    let (count, lookups) = rows(
        &mut c,
        "SELECT count(*) FROM t WHERE k BETWEEN 'k1' AND 'k2'",
    );
    assert_eq!((count, lookups), (vec!["440".to_string()], 0));
    let (scanned, _) = rows(
        &mut c,
        "SELECT count(*) FROM t WHERE k || '' BETWEEN 'k1' AND 'k2'",
    );
    assert_eq!(scanned, ["440"]);
}

/// `Session::prepare_cached` (the server's Parse) must describe a statement exactly as
/// `Session::prepare` does, and follow DDL made since the binding it reuses.
#[test]
fn prepare_from_the_plan_cache_agrees_with_prepare_and_follows_ddl() {
    let db = Database::memory().unwrap();
    db.execute_batch("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)")
        .unwrap();
    let mut c = db.connect();
    let mut writer = db.connect();
    let describe = |p: &strata_sql::Prepared| {
        let cols: Vec<String> = p.columns.iter().map(|c| c.name.clone()).collect();
        (p.param_types.clone(), cols)
    };
    for sql in [
        "SELECT * FROM t WHERE id = $1",
        "INSERT INTO t VALUES ($1, $2) RETURNING v",
        "UPDATE t SET v = $2 WHERE id = $1",
    ] {
        let full = c.session().prepare(sql, &[DataType::Unknown]).unwrap();
        for _ in 0..2 {
            let cached = c
                .session()
                .prepare_cached(sql, &[DataType::Unknown])
                .unwrap()
                .expect("the plan cache takes it");
            assert_eq!(describe(&cached), describe(&full), "{sql}");
        }
    }
    let sql = "SELECT * FROM t WHERE id = $1";
    writer
        .execute_batch("ALTER TABLE t ADD COLUMN w BIGINT")
        .unwrap();
    let cached = c.session().prepare_cached(sql, &[]).unwrap().unwrap();
    assert_eq!(
        describe(&cached),
        (
            vec![DataType::Int4],
            vec!["id".into(), "v".into(), "w".into()]
        )
    );
    // What the cache cannot take is left to `prepare`, which reports the error.
    assert!(c.session().prepare_cached("BEGIN", &[]).unwrap().is_none());
    assert!(c
        .session()
        .prepare_cached("SELECT * FROM missing", &[])
        .unwrap()
        .is_none());
    assert_eq!(
        c.session()
            .prepare("SELECT * FROM missing", &[])
            .err()
            .map(|e| e.code),
        Some("42P01")
    );
}
