//! Transaction behaviour of the engine, per isolation level, on real files: visibility, lost
//! updates, write skew, deadlocks, a concurrent bank workload, savepoints, and two-phase commit
//! across a restart.

use std::ops::Bound;
use std::sync::Arc;

use strata_engine::{Database, Error, Isolation, Options, Packed};

const T: &str = "accounts";

fn open(dir: &tempfile::TempDir) -> Database {
    Database::open(dir.path().join("test.db"), Options::default()).unwrap()
}

fn setup(db: &Database, accounts: u32, balance: i64) {
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    if !txn.tree_exists(T) {
        txn.create_tree(T).unwrap();
    }
    for a in 0..accounts {
        txn.put(T, &a.to_be_bytes(), &balance.to_le_bytes())
            .unwrap();
    }
    txn.commit().unwrap();
}

fn balance(v: Option<Vec<u8>>) -> i64 {
    i64::from_le_bytes(v.expect("account exists").try_into().unwrap())
}

#[test]
fn commit_rollback_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    setup(&db, 3, 100);
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    txn.put(T, &1u32.to_be_bytes(), &5i64.to_le_bytes())
        .unwrap();
    assert_eq!(
        balance(txn.get(T, &1u32.to_be_bytes()).unwrap()),
        5,
        "own write visible"
    );
    txn.rollback().unwrap();
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    assert_eq!(balance(txn.get(T, &1u32.to_be_bytes()).unwrap()), 100);
    txn.delete(T, &2u32.to_be_bytes()).unwrap();
    txn.commit().unwrap();
    drop(db);
    // Reopen without a checkpoint: everything comes back from the WAL.
    let db = open(&dir);
    let mut txn = db.begin(Isolation::RepeatableRead).unwrap();
    assert_eq!(balance(txn.get(T, &0u32.to_be_bytes()).unwrap()), 100);
    assert_eq!(txn.get(T, &2u32.to_be_bytes()).unwrap(), None);
    let keys: Vec<_> = txn
        .scan(T, Bound::Unbounded, Bound::Unbounded, false)
        .unwrap()
        .map(|e| e.unwrap().0)
        .collect();
    assert_eq!(
        keys,
        vec![0u32.to_be_bytes().to_vec(), 1u32.to_be_bytes().to_vec()]
    );
    drop(txn);
    db.verify().unwrap();
}

#[test]
fn snapshots_per_isolation_level() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    setup(&db, 1, 100);
    let key = 0u32.to_be_bytes();
    let mut rc = db.begin(Isolation::ReadCommitted).unwrap();
    let mut rr = db.begin(Isolation::RepeatableRead).unwrap();
    assert_eq!(balance(rc.get(T, &key).unwrap()), 100);
    assert_eq!(balance(rr.get(T, &key).unwrap()), 100);
    let mut w = db.begin(Isolation::ReadCommitted).unwrap();
    w.put(T, &key, &7i64.to_le_bytes()).unwrap();
    // Uncommitted: nobody else sees it.
    assert_eq!(balance(rc.get(T, &key).unwrap()), 100);
    w.commit().unwrap();
    // READ COMMITTED sees it from its next statement; REPEATABLE READ never does.
    assert_eq!(balance(rc.get(T, &key).unwrap()), 100);
    rc.new_statement();
    assert_eq!(balance(rc.get(T, &key).unwrap()), 7);
    rr.new_statement();
    assert_eq!(balance(rr.get(T, &key).unwrap()), 100);
}

#[test]
fn lost_update_is_rejected_under_repeatable_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    setup(&db, 1, 100);
    let key = 0u32.to_be_bytes();
    let mut a = db.begin(Isolation::RepeatableRead).unwrap();
    let mut b = db.begin(Isolation::RepeatableRead).unwrap();
    let va = balance(a.get(T, &key).unwrap());
    let vb = balance(b.get(T, &key).unwrap());
    a.put(T, &key, &(va + 1).to_le_bytes()).unwrap();
    a.commit().unwrap();
    let err = b.put(T, &key, &(vb + 1).to_le_bytes()).unwrap_err();
    assert!(matches!(err, Error::Serialization(_)), "{err}");
    assert!(err.is_retryable());
}

#[test]
fn read_committed_waits_then_uses_the_newest_version() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    setup(&db, 1, 100);
    let key = 0u32.to_be_bytes();
    let mut a = db.begin(Isolation::ReadCommitted).unwrap();
    let v = balance(a.get_for_update(T, &key).unwrap());
    a.put(T, &key, &(v + 1).to_le_bytes()).unwrap();
    let db2 = db.clone();
    let b = std::thread::spawn(move || {
        let mut b = db2.begin(Isolation::ReadCommitted).unwrap();
        let v = balance(b.get_for_update(T, &key).unwrap());
        b.put(T, &key, &(v + 1).to_le_bytes()).unwrap();
        b.commit().unwrap();
    });
    std::thread::sleep(std::time::Duration::from_millis(50));
    a.commit().unwrap();
    b.join().unwrap();
    let mut r = db.begin(Isolation::ReadCommitted).unwrap();
    assert_eq!(balance(r.get(T, &key).unwrap()), 102, "no increment lost");
}

/// Two doctors on call: each checks that the other is on call, then goes off call.
fn write_skew(isolation: Isolation) -> (Result<u64, Error>, Result<u64, Error>) {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    setup(&db, 2, 1);
    let (x, y) = (0u32.to_be_bytes(), 1u32.to_be_bytes());
    let mut a = db.begin(isolation).unwrap();
    let mut b = db.begin(isolation).unwrap();
    let on_call_a = balance(a.get(T, &x).unwrap()) + balance(a.get(T, &y).unwrap());
    let on_call_b = balance(b.get(T, &x).unwrap()) + balance(b.get(T, &y).unwrap());
    assert_eq!((on_call_a, on_call_b), (2, 2));
    a.put(T, &x, &0i64.to_le_bytes()).unwrap();
    b.put(T, &y, &0i64.to_le_bytes()).unwrap();
    (a.commit(), b.commit())
}

#[test]
fn write_skew_happens_under_repeatable_read() {
    let (a, b) = write_skew(Isolation::RepeatableRead);
    assert!(
        a.is_ok() && b.is_ok(),
        "snapshot isolation allows write skew"
    );
}

#[test]
fn write_skew_is_prevented_under_serializable() {
    let (a, b) = write_skew(Isolation::Serializable);
    assert!(a.is_ok());
    assert!(matches!(b, Err(Error::Serialization(_))), "{b:?}");
}

#[test]
fn deadlock_picks_a_victim() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    setup(&db, 2, 1);
    let (x, y) = (0u32.to_be_bytes(), 1u32.to_be_bytes());
    let mut a = db.begin(Isolation::ReadCommitted).unwrap();
    a.put(T, &x, &5i64.to_le_bytes()).unwrap();
    let db2 = db.clone();
    let b = std::thread::spawn(move || {
        let mut b = db2.begin(Isolation::ReadCommitted).unwrap();
        b.put(T, &y, &6i64.to_le_bytes()).unwrap();
        let r = b.put(T, &x, &6i64.to_le_bytes());
        match r {
            Ok(()) => b.commit().map(|_| ()),
            Err(e) => Err(e),
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    let ra = a
        .put(T, &y, &5i64.to_le_bytes())
        .and_then(|()| a.commit().map(|_| ()));
    let rb = b.join().unwrap();
    let victims = [&ra, &rb]
        .iter()
        .filter(|r| matches!(r, Err(Error::Deadlock(_))))
        .count();
    assert_eq!(victims, 1, "a: {ra:?} b: {rb:?}");
    assert!(ra.is_ok() || rb.is_ok());
}

/// Concurrent transfers between accounts: under REPEATABLE READ and SERIALIZABLE the total
/// never changes, whatever the interleaving (failed transactions are retried).
#[test]
fn bank_transfers_keep_the_total() {
    for isolation in [
        Isolation::RepeatableRead,
        Isolation::Serializable,
        Isolation::ReadCommitted,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let accounts = 10u32;
        setup(&db, accounts, 1000);
        let db = Arc::new(db);
        std::thread::scope(|s| {
            for t in 0..8u32 {
                let db = db.clone();
                s.spawn(move || {
                    let mut seed = 0x9E37_79B9u32.wrapping_mul(t + 1);
                    let mut rand = move || {
                        seed ^= seed << 13;
                        seed ^= seed >> 17;
                        seed ^= seed << 5;
                        seed
                    };
                    for _ in 0..100 {
                        let (from, to) = (rand() % accounts, rand() % accounts);
                        if from == to {
                            continue;
                        }
                        let amount = i64::from(rand() % 50);
                        for _attempt in 0..1000 {
                            let mut txn = db.begin(isolation).unwrap();
                            // READ COMMITTED needs row locks before reading to stay correct.
                            let result = (|| {
                                let a = balance(txn.get_for_update(T, &from.to_be_bytes())?);
                                let b = balance(txn.get_for_update(T, &to.to_be_bytes())?);
                                txn.put(T, &from.to_be_bytes(), &(a - amount).to_le_bytes())?;
                                txn.put(T, &to.to_be_bytes(), &(b + amount).to_le_bytes())?;
                                Ok::<_, Error>(())
                            })();
                            match result.and_then(|()| txn.commit().map(|_| ())) {
                                Ok(()) => break,
                                Err(e) if e.is_retryable() => continue,
                                Err(e) => panic!("{isolation:?}: {e}"),
                            }
                        }
                    }
                });
            }
            // A reader summing balances meanwhile always sees the same total at its snapshot.
            let db = db.clone();
            s.spawn(move || {
                for _ in 0..50 {
                    let mut txn = db.begin(Isolation::RepeatableRead).unwrap();
                    let total: i64 = txn
                        .scan(T, Bound::Unbounded, Bound::Unbounded, false)
                        .unwrap()
                        .map(|e| i64::from_le_bytes(e.unwrap().1.try_into().unwrap()))
                        .sum();
                    assert_eq!(total, 1000 * i64::from(accounts), "{isolation:?}");
                }
            });
        });
        let mut txn = db.begin(Isolation::RepeatableRead).unwrap();
        let total: i64 = (0..accounts)
            .map(|a| balance(txn.get(T, &a.to_be_bytes()).unwrap()))
            .sum();
        assert_eq!(total, 1000 * i64::from(accounts), "{isolation:?}");
    }
}

#[test]
fn savepoints() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    setup(&db, 1, 1);
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    txn.put(T, b"a", b"1").unwrap();
    let sp = txn.savepoint();
    txn.put(T, b"b", b"2").unwrap();
    txn.delete(T, b"a").unwrap();
    txn.rollback_to(&sp).unwrap();
    assert_eq!(txn.get(T, b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(txn.get(T, b"b").unwrap(), None);
    txn.commit().unwrap();
}

#[test]
fn trees_are_transactional() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    txn.create_tree("t1").unwrap();
    txn.put("t1", b"k", b"v").unwrap();
    assert!(matches!(txn.create_tree("t1"), Err(Error::TreeExists(_))));
    txn.rollback().unwrap();
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    assert!(!txn.tree_exists("t1"));
    assert!(matches!(
        txn.put("t1", b"k", b"v"),
        Err(Error::NoSuchTree(_))
    ));
    txn.create_tree("t1").unwrap();
    txn.put("t1", b"k", b"v").unwrap();
    txn.commit().unwrap();
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    assert_eq!(txn.get("t1", b"k").unwrap(), Some(b"v".to_vec()));
    txn.drop_tree("t1").unwrap();
    txn.create_tree("t1").unwrap();
    assert_eq!(
        txn.get("t1", b"k").unwrap(),
        None,
        "recreated tree starts empty"
    );
    txn.commit().unwrap();
    drop(db);
    let db = open(&dir);
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    assert_eq!(txn.get("t1", b"k").unwrap(), None);
}

#[test]
fn prepared_transactions_survive_restart_and_keep_locks() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    setup(&db, 2, 10);
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    txn.put(T, &0u32.to_be_bytes(), &11i64.to_le_bytes())
        .unwrap();
    txn.prepare("gid-1").unwrap();
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    txn.put(T, &1u32.to_be_bytes(), &12i64.to_le_bytes())
        .unwrap();
    txn.prepare("gid-2").unwrap();
    assert!(matches!(
        db.begin(Isolation::ReadCommitted).unwrap().prepare("gid-1"),
        Err(Error::PreparedExists(_))
    ));
    db.checkpoint().unwrap();
    drop(db);
    let db = Database::open(
        dir.path().join("test.db"),
        Options {
            lock_timeout: Some(std::time::Duration::from_millis(50)),
            ..Options::default()
        },
    )
    .unwrap();
    assert_eq!(
        db.prepared(),
        vec!["gid-1".to_string(), "gid-2".to_string()]
    );
    // Its row stays locked and its write invisible until it is resolved.
    let mut other = db.begin(Isolation::ReadCommitted).unwrap();
    assert_eq!(balance(other.get(T, &0u32.to_be_bytes()).unwrap()), 10);
    assert!(matches!(
        other.put(T, &0u32.to_be_bytes(), &0i64.to_le_bytes()),
        Err(Error::LockTimeout(_))
    ));
    drop(other);
    db.commit_prepared("gid-1").unwrap();
    db.rollback_prepared("gid-2").unwrap();
    assert!(matches!(
        db.commit_prepared("gid-2"),
        Err(Error::NoSuchPrepared(_))
    ));
    drop(db);
    let db = open(&dir);
    assert!(db.prepared().is_empty());
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    assert_eq!(balance(txn.get(T, &0u32.to_be_bytes()).unwrap()), 11);
    assert_eq!(balance(txn.get(T, &1u32.to_be_bytes()).unwrap()), 10);
}

#[test]
fn checkpoint_bounds_the_wal_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(
        dir.path().join("test.db"),
        Options {
            checkpoint_wal_bytes: 256 << 10,
            ..Options::default()
        },
    )
    .unwrap();
    setup(&db, 1, 0);
    for round in 0..200u32 {
        let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
        for k in 0..20u32 {
            txn.put(T, &(round * 20 + k).to_be_bytes(), &[7u8; 100])
                .unwrap();
        }
        txn.commit().unwrap();
    }
    assert!(db.stats().checkpoints > 0, "automatic checkpoints ran");
    let wal = std::fs::metadata(dir.path().join("test.db-wal"))
        .unwrap()
        .len();
    assert!(wal < 1 << 20, "WAL stays bounded: {wal} bytes");
    db.verify().unwrap();
    drop(db);
    let db = open(&dir);
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    let n = txn
        .scan(T, Bound::Unbounded, Bound::Unbounded, false)
        .unwrap()
        .count();
    assert_eq!(n, 4000);
}

#[test]
fn writing_into_a_tree_dropped_meanwhile_is_a_conflict_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let mut t = db.begin(Isolation::ReadCommitted).unwrap();
    t.create_tree("doomed").unwrap();
    t.commit().unwrap();
    let mut writer = db.begin(Isolation::ReadCommitted).unwrap();
    writer.put("doomed", b"k", b"v").unwrap();
    let mut dropper = db.begin(Isolation::ReadCommitted).unwrap();
    dropper.drop_tree("doomed").unwrap();
    dropper.commit().unwrap();
    assert!(matches!(writer.commit(), Err(Error::Serialization(_))));
    // The database carries on.
    let mut t = db.begin(Isolation::ReadCommitted).unwrap();
    t.create_tree("alive").unwrap();
    t.put("alive", b"k", b"v").unwrap();
    t.commit().unwrap();
    db.verify().unwrap();
}

/// The entries packed, as `put_packed` takes them.
fn packed(entries: &[(&[u8], &[u8])]) -> Packed {
    let mut packed = Packed::default();
    for (k, v) in entries {
        packed.push(k, v).unwrap();
    }
    packed
}

#[test]
fn put_packed_into_new_and_existing_trees() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    setup(&db, 3, 100);
    let keys: Vec<[u8; 4]> = (0u32..1000).map(|i| i.to_be_bytes()).collect();
    let pairs: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (&k[..], &k[..])).collect();
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    // Ascending entries into a new tree: taken as they are.
    txn.create_tree("fresh").unwrap();
    txn.put_packed("fresh", packed(&pairs)).unwrap();
    // Out of order, with a repeated key (the later value wins), into another new tree: put
    // one by one.
    txn.create_tree("shuffled").unwrap();
    txn.put_packed(
        "shuffled",
        packed(&[(b"b", b"1"), (b"a", b"2"), (b"b", b"3")]),
    )
    .unwrap();
    // A new tree that already has writes: the entries join them.
    txn.create_tree("joined").unwrap();
    txn.put("joined", b"m", b"0").unwrap();
    txn.put_packed("joined", packed(&[(b"a", b"1"), (b"z", b"2")]))
        .unwrap();
    // An existing tree takes the ordinary path, with its row locks.
    txn.put_packed(
        T,
        packed(&[(&7u32.to_be_bytes()[..], &9i64.to_le_bytes()[..])]),
    )
    .unwrap();
    let long = vec![0u8; 1 << 16];
    assert!(matches!(
        txn.put_packed("fresh", packed(&[(&long[..], &b"v"[..])])),
        Err(Error::KeyTooLarge { .. })
    ));
    // The new trees are invisible to others, then committed whole.
    let other = db.begin(Isolation::ReadCommitted).unwrap();
    assert!(!other.tree_exists("fresh"));
    other.rollback().unwrap();
    txn.commit().unwrap();
    drop(db);
    let db = open(&dir);
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    let all = |txn: &mut strata_engine::Txn, tree: &str| -> Vec<(Vec<u8>, Vec<u8>)> {
        txn.scan(tree, Bound::Unbounded, Bound::Unbounded, false)
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let got = all(&mut txn, "fresh");
    assert_eq!(got.len(), 1000);
    assert!(got
        .iter()
        .zip(&keys)
        .all(|((k, v), want)| k == want && v == want));
    let pair = |k: &[u8], v: &[u8]| (k.to_vec(), v.to_vec());
    assert_eq!(
        all(&mut txn, "shuffled"),
        vec![pair(b"a", b"2"), pair(b"b", b"3")]
    );
    assert_eq!(
        all(&mut txn, "joined"),
        vec![pair(b"a", b"1"), pair(b"m", b"0"), pair(b"z", b"2")]
    );
    assert_eq!(balance(txn.get(T, &7u32.to_be_bytes()).unwrap()), 9);
}

#[test]
fn checkpoint_with_nothing_new_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    setup(&db, 3, 100);
    db.checkpoint().unwrap();
    let before = db.stats();
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    assert_eq!(balance(txn.get(T, &1u32.to_be_bytes()).unwrap()), 100);
    txn.rollback().unwrap();
    db.checkpoint().unwrap();
    let after = db.stats();
    assert_eq!(after.pages_written, before.pages_written);
    assert_eq!(after.wal_fsyncs, before.wal_fsyncs);
    // A commit makes the next checkpoint real again, and it survives reopening.
    setup(&db, 4, 7);
    db.checkpoint().unwrap();
    assert!(db.stats().pages_written > after.pages_written);
    drop(db);
    let db = open(&dir);
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    assert_eq!(balance(txn.get(T, &3u32.to_be_bytes()).unwrap()), 7);
}
