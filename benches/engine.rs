//! The engine against SQLite (rusqlite's bundled build, WAL mode, `synchronous=FULL`) and redb,
//! side by side in one run, on the same files system and the same keys (8-byte big-endian
//! integers) and values (100 bytes):
//!
//! - `seq_insert`: N keys in ascending order in one transaction (N = `STRATA_BENCH_KEYS`,
//!   default 1,000,000).
//! - `random_insert`: N/10 keys in random order in one transaction.
//! - `point_get`: random gets from a table of N keys.
//! - `range_100`: scans of 100 consecutive keys from random starts.
//! - `commit_1` / `commit_8`: single-key durable commits from 1 and from 8 threads. These are
//!   fsync-bound: `fsync` measures this machine's raw fdatasync rate beside them, and the
//!   8-thread figure shows what group commit gains.
//!
//! Run: `cargo bench --bench engine` (several minutes); one group: `-- point_get`.

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use redb::TableDefinition;
use strata_engine::{Database, Isolation, Options};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

fn keys() -> u64 {
    std::env::var("STRATA_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn value() -> Vec<u8> {
    vec![0xAB; 100]
}

/// A permutation of 0..n from a fixed-seed xorshift, so every engine gets the same order.
fn shuffled(n: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n).collect();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

/// One engine under test.
trait Kv: Send + Sync {
    fn insert_batch(&self, keys: &[u64]);
    fn get(&self, key: u64) -> bool;
    fn range(&self, start: u64, n: usize) -> usize;
    fn commit_one(&self, key: u64);
}

struct Strata(Database);

impl Strata {
    fn open(dir: &Path) -> Strata {
        let db = Database::open(dir.join("strata.db"), Options::default()).unwrap();
        let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
        txn.create_tree("kv").unwrap();
        txn.commit().unwrap();
        Strata(db)
    }
}

impl Kv for Strata {
    fn insert_batch(&self, keys: &[u64]) {
        let mut txn = self.0.begin(Isolation::ReadCommitted).unwrap();
        let v = value();
        for k in keys {
            txn.put("kv", &k.to_be_bytes(), &v).unwrap();
        }
        txn.commit().unwrap();
    }
    fn get(&self, key: u64) -> bool {
        let mut txn = self.0.begin(Isolation::ReadCommitted).unwrap();
        txn.get("kv", &key.to_be_bytes()).unwrap().is_some()
    }
    fn range(&self, start: u64, n: usize) -> usize {
        let mut txn = self.0.begin(Isolation::ReadCommitted).unwrap();
        let scan = txn
            .scan(
                "kv",
                std::ops::Bound::Included(start.to_be_bytes().to_vec()),
                std::ops::Bound::Unbounded,
                false,
            )
            .unwrap();
        scan.take(n).count()
    }
    fn commit_one(&self, key: u64) {
        let mut txn = self.0.begin(Isolation::ReadCommitted).unwrap();
        txn.put("kv", &key.to_be_bytes(), &value()).unwrap();
        txn.commit().unwrap();
    }
}

struct Sqlite(
    std::sync::Mutex<Vec<rusqlite::Connection>>,
    std::path::PathBuf,
);

impl Sqlite {
    fn connect(path: &Path) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .unwrap();
        let level: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(level, 2, "SQLite must run with synchronous=FULL");
        c.busy_timeout(Duration::from_secs(30)).unwrap();
        c
    }
    fn open(dir: &Path) -> Sqlite {
        let path = dir.join("sqlite.db");
        let c = Self::connect(&path);
        c.execute(
            "CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID",
            [],
        )
        .unwrap();
        Sqlite(std::sync::Mutex::new(vec![c]), path)
    }
    /// A connection per concurrent caller, as an application with threads would have.
    fn with<T>(&self, f: impl FnOnce(&mut rusqlite::Connection) -> T) -> T {
        let pooled = self.0.lock().unwrap().pop();
        let mut c = pooled.unwrap_or_else(|| Self::connect(&self.1));
        let out = f(&mut c);
        self.0.lock().unwrap().push(c);
        out
    }
}

impl Kv for Sqlite {
    fn insert_batch(&self, keys: &[u64]) {
        self.with(|c| {
            let tx = c.transaction().unwrap();
            {
                let mut st = tx
                    .prepare_cached("INSERT OR REPLACE INTO kv VALUES (?1, ?2)")
                    .unwrap();
                let v = value();
                for k in keys {
                    st.execute(rusqlite::params![&k.to_be_bytes()[..], &v])
                        .unwrap();
                }
            }
            tx.commit().unwrap();
        })
    }
    fn get(&self, key: u64) -> bool {
        self.with(|c| {
            let mut st = c.prepare_cached("SELECT v FROM kv WHERE k = ?1").unwrap();
            let mut rows = st.query([&key.to_be_bytes()[..]]).unwrap();
            rows.next().unwrap().is_some()
        })
    }
    fn range(&self, start: u64, n: usize) -> usize {
        self.with(|c| {
            let mut st = c
                .prepare_cached("SELECT k, v FROM kv WHERE k >= ?1 ORDER BY k LIMIT ?2")
                .unwrap();
            let rows = st
                .query_map(rusqlite::params![&start.to_be_bytes()[..], n as i64], |r| {
                    r.get::<_, Vec<u8>>(1)
                })
                .unwrap();
            rows.count()
        })
    }
    fn commit_one(&self, key: u64) {
        self.with(|c| {
            c.prepare_cached("INSERT OR REPLACE INTO kv VALUES (?1, ?2)")
                .unwrap()
                .execute(rusqlite::params![&key.to_be_bytes()[..], value()])
                .unwrap();
        })
    }
}

struct Redb(redb::Database);

impl Redb {
    fn open(dir: &Path) -> Redb {
        let db = redb::Database::create(dir.join("redb.db")).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(TABLE).unwrap();
        tx.commit().unwrap();
        Redb(db)
    }
}

impl Kv for Redb {
    fn insert_batch(&self, keys: &[u64]) {
        let tx = self.0.begin_write().unwrap();
        {
            let mut t = tx.open_table(TABLE).unwrap();
            let v = value();
            for k in keys {
                t.insert(&k.to_be_bytes()[..], &v[..]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    fn get(&self, key: u64) -> bool {
        let tx = self.0.begin_read().unwrap();
        let t = tx.open_table(TABLE).unwrap();
        t.get(&key.to_be_bytes()[..]).unwrap().is_some()
    }
    fn range(&self, start: u64, n: usize) -> usize {
        let tx = self.0.begin_read().unwrap();
        let t = tx.open_table(TABLE).unwrap();
        let k = start.to_be_bytes();
        t.range(&k[..]..).unwrap().take(n).count()
    }
    fn commit_one(&self, key: u64) {
        let tx = self.0.begin_write().unwrap();
        tx.open_table(TABLE)
            .unwrap()
            .insert(&key.to_be_bytes()[..], &value()[..])
            .unwrap();
        tx.commit().unwrap();
    }
}

type Engine = (&'static str, fn(&Path) -> Arc<dyn Kv>);

fn engines() -> Vec<Engine> {
    vec![
        ("strata", |d| Arc::new(Strata::open(d))),
        ("sqlite", |d| Arc::new(Sqlite::open(d))),
        ("redb", |d| Arc::new(Redb::open(d))),
    ]
}

fn inserts(c: &mut Criterion) {
    let n = keys();
    let sequential: Vec<u64> = (0..n).collect();
    let random = shuffled(n / 10);
    for (group, data) in [("seq_insert", &sequential), ("random_insert", &random)] {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(data.len() as u64))
            .sample_size(10);
        for (name, open) in engines() {
            g.bench_function(name, |b| {
                b.iter_batched(
                    || {
                        let dir = tempfile::tempdir().unwrap();
                        let kv = open(dir.path());
                        (dir, kv)
                    },
                    |(dir, kv)| {
                        kv.insert_batch(data);
                        (dir, kv)
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        g.finish();
    }
}

fn reads(c: &mut Criterion) {
    let n = keys();
    let order = shuffled(n);
    for (name, open) in engines() {
        let dir = tempfile::tempdir().unwrap();
        let kv = open(dir.path());
        for chunk in (0..n).collect::<Vec<_>>().chunks(100_000) {
            kv.insert_batch(chunk);
        }
        let mut g = c.benchmark_group("point_get");
        g.throughput(Throughput::Elements(1));
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % order.len();
                assert!(kv.get(black_box(order[i])));
            })
        });
        g.finish();
        let mut g = c.benchmark_group("range_100");
        g.throughput(Throughput::Elements(100));
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % order.len();
                black_box(kv.range(order[i].min(n - 100), 100));
            })
        });
        g.finish();
    }
}

fn commits(c: &mut Criterion) {
    let mut g = c.benchmark_group("commit");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    // The machine's raw fdatasync rate: the floor under every durable commit.
    let dir = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::create(dir.path().join("fsync")).unwrap();
    g.bench_function("fsync", |b| {
        b.iter(|| {
            f.write_all(b"x").unwrap();
            f.sync_data().unwrap();
        })
    });
    for threads in [1u64, 8] {
        for (name, open) in engines() {
            let dir = tempfile::tempdir().unwrap();
            let kv = open(dir.path());
            // Every commit writes a key never written before: SQLite skips a write that leaves
            // a row as it was, which would make its commits no-ops without an fsync.
            let next_key = std::sync::atomic::AtomicU64::new(0);
            g.bench_function(format!("{name}_{threads}_threads"), |b| {
                b.iter_custom(|iters| {
                    let per = iters.div_ceil(threads);
                    let start = Instant::now();
                    std::thread::scope(|s| {
                        for _ in 0..threads {
                            let kv = kv.clone();
                            let next_key = &next_key;
                            s.spawn(move || {
                                for _ in 0..per {
                                    kv.commit_one(
                                        next_key.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                                    );
                                }
                            });
                        }
                    });
                    // Report time per commit over all threads' commits.
                    start
                        .elapsed()
                        .mul_f64(iters as f64 / (per * threads) as f64)
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = inserts, reads, commits
}
criterion_main!(benches);
