//! Crash tests with real processes: a child runs a transactional workload and prints every
//! commit the engine acknowledged; the parent kills it with SIGKILL at a random moment, reopens
//! the database and checks that every acknowledged commit is there, that no transaction is
//! partly visible, and that `verify()` is clean. Many rounds on the same database.
//!
//! The child is this test binary run again with `--exact child_workload --ignored` and the
//! database path in `STRATA_CRASH_DIR`. The seed is printed; `STRATA_CRASH_SEED` replays it.

use std::io::{BufRead, BufReader};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_engine::{Database, Isolation, Options};
use strata_storage::raid::{self, Level, RaidConfig};
use strata_storage::BlockDevice;

const TREE: &str = "t";

/// Opens the database the way the child and the parent agree on: a plain file, or a RAID-5 of
/// four member files when the directory says so.
fn open(dir: &Path) -> Database {
    let opts = Options {
        // Small, so checkpoints (and their crash windows) happen often.
        checkpoint_wal_bytes: 256 << 10,
        cache_bytes: 1 << 20,
        ..Options::default()
    };
    if dir.join("raid").exists() {
        let members: Vec<PathBuf> = (0..4).map(|i| dir.join(format!("m{i}.img"))).collect();
        let array: Arc<dyn BlockDevice> = if members.iter().all(|m| !m.exists()) {
            let config = RaidConfig {
                chunk_bytes: 16 << 10,
                ..RaidConfig::new(Level::Raid5, 64 << 20)
            };
            Arc::new(raid::create_files(&members, &config).unwrap())
        } else {
            Arc::new(raid::assemble_files(&members).unwrap())
        };
        Database::open_on(array, &dir.join("db-wal"), opts).unwrap()
    } else {
        Database::open(dir.join("db"), opts).unwrap()
    }
}

/// The child: transaction `n` writes keys `n/a`, `n/b`, `n/c` (all with value n), and
/// `STRATA_CRASH_BIG` more keys `n/xNNNNN` (a large transaction, logged while it is applied), and
/// moves one unit between two of ten accounts, then prints `ack n`.
#[test]
#[ignore = "run as a child process by the crash tests"]
fn child_workload() {
    let Ok(dir) = std::env::var("STRATA_CRASH_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let db = open(&dir);
    let start: u64 = std::env::var("STRATA_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    let big = big_from_env();
    {
        let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
        if !txn.tree_exists(TREE) {
            txn.create_tree(TREE).unwrap();
            for a in 0..10u8 {
                txn.put(TREE, &[b'$', a], &100i64.to_le_bytes()).unwrap();
            }
            txn.commit().unwrap();
            println!("ready");
        } else {
            println!("ready");
        }
    }
    for n in start.. {
        let mut txn = db.begin(Isolation::RepeatableRead).unwrap();
        for part in ["a", "b", "c"] {
            txn.put(TREE, format!("{n:010}/{part}").as_bytes(), &n.to_le_bytes())
                .unwrap();
        }
        for i in 0..big {
            txn.put(
                TREE,
                format!("{n:010}/x{i:05}").as_bytes(),
                &n.to_le_bytes(),
            )
            .unwrap();
        }
        let (from, to) = ((n % 10) as u8, ((n * 7 + 3) % 10) as u8);
        if from != to {
            let f = i64::from_le_bytes(
                txn.get(TREE, &[b'$', from])
                    .unwrap()
                    .unwrap()
                    .try_into()
                    .unwrap(),
            );
            let t = i64::from_le_bytes(
                txn.get(TREE, &[b'$', to])
                    .unwrap()
                    .unwrap()
                    .try_into()
                    .unwrap(),
            );
            txn.put(TREE, &[b'$', from], &(f - 1).to_le_bytes())
                .unwrap();
            txn.put(TREE, &[b'$', to], &(t + 1).to_le_bytes()).unwrap();
        }
        txn.commit().unwrap();
        println!("ack {n}");
    }
}

fn big_from_env() -> usize {
    std::env::var("STRATA_CRASH_BIG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn run_rounds(dir: &Path, rounds: usize, seed: u64) {
    run_rounds_of(dir, rounds, seed, 0);
}

fn run_rounds_of(dir: &Path, rounds: usize, seed: u64, big: usize) {
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut acked: Vec<u64> = Vec::new();
    let mut start = 0u64;
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_workload",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("STRATA_CRASH_DIR", dir)
            .env("STRATA_CRASH_START", start.to_string())
            .env("STRATA_CRASH_BIG", big.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let kill_after = 1 + next() % if big > 0 { 12 } else { 300 };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("ack ") {
                acked.push(n.parse().unwrap());
                seen += 1;
                if seen >= kill_after {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "round {round}: child too slow");
        }
        // SIGKILL: no destructors, no flushes.
        child.kill().unwrap();
        child.wait().unwrap();
        check(dir, &acked, round, seed, big);
        start = acked.last().map_or(0, |n| n + 1) + 1_000;
    }
}

fn check(dir: &Path, acked: &[u64], round: usize, seed: u64, big: usize) {
    let db = open(dir);
    db.verify()
        .unwrap_or_else(|e| panic!("seed {seed} round {round}: verify: {e}"));
    let mut txn = db.begin(Isolation::RepeatableRead).unwrap();
    for &n in acked {
        for part in ["a", "b", "c"] {
            let v = txn.get(TREE, format!("{n:010}/{part}").as_bytes()).unwrap();
            assert_eq!(
                v,
                Some(n.to_le_bytes().to_vec()),
                "seed {seed} round {round}: acknowledged commit {n} lost"
            );
        }
    }
    // No partial transaction: each n has all three keys or none.
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let mut total = 0i64;
    for entry in txn
        .scan(TREE, Bound::Unbounded, Bound::Unbounded, false)
        .unwrap()
    {
        let (k, v) = entry.unwrap();
        if k[0] == b'$' {
            total += i64::from_le_bytes(v.try_into().unwrap());
        } else {
            let k = String::from_utf8(k).unwrap();
            *counts.entry(k[..10].to_string()).or_default() += 1;
        }
    }
    for &n in acked {
        assert_eq!(
            counts.get(&format!("{n:010}")),
            Some(&(3 + big)),
            "seed {seed} round {round}: acknowledged commit {n} incomplete"
        );
    }
    for (n, c) in counts {
        assert_eq!(
            c,
            3 + big,
            "seed {seed} round {round}: transaction {n} partly visible"
        );
    }
    assert_eq!(
        total, 1000,
        "seed {seed} round {round}: the accounts' total changed"
    );
}

fn seed() -> u64 {
    let seed = std::env::var("STRATA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test seed: {seed} (STRATA_CRASH_SEED={seed} to replay)");
    seed
}

#[test]
fn sigkill_loses_no_acknowledged_commit() {
    let dir = tempfile::tempdir().unwrap();
    run_rounds(dir.path(), 8, seed());
}

/// The same on a RAID-5 of four member files, one of which is deleted part way: the array runs
/// degraded from the next open on, and nothing acknowledged is lost.
#[test]
fn sigkill_on_raid5_with_a_member_lost() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("raid"), b"").unwrap();
    let seed = seed();
    run_rounds(dir.path(), 3, seed);
    std::fs::remove_file(dir.path().join("m2.img")).unwrap();
    run_rounds(dir.path(), 3, seed ^ 0x5555);
}

/// Large transactions (each logged while it is applied, its record streamed to the WAL) killed
/// at random moments, with checkpoints between and during them.
#[test]
fn sigkill_during_large_transactions() {
    let dir = tempfile::tempdir().unwrap();
    run_rounds_of(dir.path(), 5, seed(), 5000);
}
