//! Durability and robustness of the engine on real files: corruption is reported with the page
//! it is in, a torn checkpoint write loses nothing committed, a database ten times larger than
//! its cache works, churn does not grow the file without bound, and large values round-trip.

use std::ops::Bound;
use std::sync::Arc;

use strata_engine::{Database, Error, Isolation, Options};
use strata_storage::{BlockDevice, FaultyDevice, FileDevice, MemDevice};

fn fill(db: &Database, tree: &str, range: std::ops::Range<u32>, value_len: usize) {
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    if !txn.tree_exists(tree) {
        txn.create_tree(tree).unwrap();
    }
    for k in range {
        txn.put(tree, &k.to_be_bytes(), &vec![(k % 251) as u8; value_len])
            .unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn a_flipped_byte_in_a_data_page_is_reported_with_its_page() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let db = Database::open(&path, Options::default()).unwrap();
    fill(&db, "t", 0..2000, 100);
    db.close().unwrap();
    // Flip one byte in every data page (pages 2 and up; 0 and 1 are the meta pages) in turn,
    // each time on a fresh copy: opening or verifying must fail naming that page, or (when the
    // page is free space) succeed with all data intact.
    let pristine = std::fs::read(&path).unwrap();
    let pages = pristine.len() / 4096;
    let mut reported = 0;
    for page in 2..pages {
        let mut bytes = pristine.clone();
        bytes[page * 4096 + 2000] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        std::fs::remove_file(dir.path().join("c.db-wal")).ok();
        let outcome =
            Database::open(&path, Options::default()).and_then(|db| db.verify().map(|_| db));
        match outcome {
            Err(Error::CorruptPage { page: p, .. }) => {
                assert_eq!(p, page as u64, "the error names the damaged page");
                reported += 1;
            }
            Err(e) => panic!("page {page}: unexpected error {e}"),
            Ok(db) => {
                // A free page: nothing reads it; the data is all there.
                let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
                let n = txn
                    .scan("t", Bound::Unbounded, Bound::Unbounded, false)
                    .unwrap()
                    .count();
                assert_eq!(n, 2000, "page {page}");
            }
        }
    }
    assert!(reported > 0, "no damaged page was reported");
}

#[test]
fn a_torn_checkpoint_loses_no_commit() {
    for cut in [0u64, 1, 3, 7, 15, 40] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let wal = strata_engine::wal_path(&path);
        let file: Arc<dyn BlockDevice> = Arc::new(FileDevice::create(&path, 4096, 0).unwrap());
        let faulty = Arc::new(FaultyDevice::new(file));
        let faults = faulty.faults();
        let db = Database::open_on(faulty, &wal, Options::default()).unwrap();
        fill(&db, "t", 0..500, 200);
        db.checkpoint().unwrap();
        fill(&db, "t", 500..3000, 200);
        // The power fails part way through the next checkpoint, tearing a page.
        faults.tear_after_writes(cut, 1000);
        assert!(db.checkpoint().is_err(), "cut {cut}");
        // Once failed, the database refuses work until reopened.
        assert!(matches!(
            db.begin(Isolation::ReadCommitted).err(),
            Some(Error::Failed(_))
        ));
        drop(db);
        let db = Database::open(&path, Options::default()).unwrap();
        db.verify().unwrap();
        let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
        let n = txn
            .scan("t", Bound::Unbounded, Bound::Unbounded, false)
            .unwrap()
            .count();
        assert_eq!(n, 3000, "cut {cut}: every committed row is back");
    }
}

#[test]
fn ten_times_larger_than_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        cache_bytes: 1 << 20,
        ..Options::default()
    };
    let db = Database::open(dir.path().join("big.db"), opts.clone()).unwrap();
    for batch in 0..10u32 {
        fill(&db, "t", batch * 2000..(batch + 1) * 2000, 500);
    }
    db.checkpoint().unwrap();
    let stats = db.stats();
    let file = std::fs::metadata(dir.path().join("big.db")).unwrap().len();
    assert!(
        file > 10 * (1 << 20),
        "the database ({file} bytes) is over 10x the cache"
    );
    assert!(stats.cache_misses > 0);
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    for k in (0..20_000u32).step_by(97) {
        assert_eq!(
            txn.get("t", &k.to_be_bytes()).unwrap(),
            Some(vec![(k % 251) as u8; 500])
        );
    }
    let n = txn
        .scan("t", Bound::Unbounded, Bound::Unbounded, true)
        .unwrap()
        .count();
    assert_eq!(n, 20_000);
    drop(txn);
    db.verify().unwrap();
}

#[test]
fn churn_does_not_grow_the_file_without_bound() {
    let device = MemDevice::new(4096, 0);
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_on(
        Arc::new(device.clone()),
        &dir.path().join("wal"),
        Options::default(),
    )
    .unwrap();
    let mut sizes = Vec::new();
    for round in 0..30u32 {
        fill(&db, "t", 0..1000, 300 + (round as usize % 3) * 100);
        let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
        for k in (0..1000u32).filter(|k| k % 3 == round % 3) {
            txn.delete("t", &k.to_be_bytes()).unwrap();
        }
        txn.commit().unwrap();
        db.checkpoint().unwrap();
        sizes.push(device.block_count());
    }
    let settled = sizes[10];
    let last = *sizes.last().unwrap();
    assert!(
        last <= settled * 2,
        "file keeps growing under churn: {sizes:?}"
    );
    db.verify().unwrap();
}

#[test]
fn sixteen_mib_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let big: Vec<u8> = (0..16usize << 20).map(|i| (i * 31 % 251) as u8).collect();
    {
        let db = Database::open(&path, Options::default()).unwrap();
        let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
        txn.create_tree("blobs").unwrap();
        txn.put("blobs", b"big", &big).unwrap();
        txn.put("blobs", b"small", b"x").unwrap();
        txn.commit().unwrap();
    }
    // Recovered from the WAL, then checkpointed and read from pages.
    let db = Database::open(&path, Options::default()).unwrap();
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    assert!(txn.get("blobs", b"big").unwrap().unwrap() == big);
    drop(txn);
    db.checkpoint().unwrap();
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    assert!(txn.get("blobs", b"big").unwrap().unwrap() == big);
    txn.delete("blobs", b"big").unwrap();
    txn.commit().unwrap();
    db.verify().unwrap();
}

/// A transaction large enough to be logged while it is applied (in parallel) is durable: after a
/// drop without checkpoint the WAL replays it, and a second large one updates it in place.
#[test]
fn a_large_transaction_survives_a_reopen_without_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.db");
    let db = Database::open(&path, Options::default()).unwrap();
    fill(&db, "t", 0..30_000, 40);
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    for k in (0..30_000u32).rev().step_by(3) {
        txn.delete("t", &k.to_be_bytes()).unwrap();
    }
    for k in 30_000..40_000u32 {
        txn.put("t", &k.to_be_bytes(), b"new").unwrap();
    }
    txn.commit().unwrap();
    drop(db);
    let db = Database::open(&path, Options::default()).unwrap();
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    let got: Vec<(Vec<u8>, Vec<u8>)> = txn
        .scan("t", Bound::Unbounded, Bound::Unbounded, false)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let want: Vec<(Vec<u8>, Vec<u8>)> = (0..40_000u32)
        .filter(|k| *k >= 30_000 || (29_999 - k) % 3 != 0)
        .map(|k| {
            let v = if k >= 30_000 {
                b"new".to_vec()
            } else {
                vec![(k % 251) as u8; 40]
            };
            (k.to_be_bytes().to_vec(), v)
        })
        .collect();
    assert!(got == want, "{} entries, want {}", got.len(), want.len());
    drop(txn);
    db.verify().unwrap();
}
