//! `Database::tree_stats`: the size of one tree, counted by walking it, as `strata bench index`
//! uses it to report how much room an index takes.

use strata_engine::{Database, Error, Isolation, Options};

fn fill(db: &Database, tree: &str, rows: u32, value_bytes: usize) {
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    txn.create_tree(tree).unwrap();
    for i in 0..rows {
        txn.put(tree, &i.to_be_bytes(), &vec![7u8; value_bytes])
            .unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn counts_entries_and_pages_per_tree() {
    let db = Database::memory(Options::default()).unwrap();
    fill(&db, "small", 10, 8);
    fill(&db, "large", 20_000, 100);

    let small = db.tree_stats("small").unwrap();
    assert_eq!(small.entries, 10);
    assert_eq!(small.pages, 1, "ten short entries fit in the root leaf");
    assert_eq!(small.depth, 1);
    assert_eq!(small.overflow_pages, 0);

    let large = db.tree_stats("large").unwrap();
    assert_eq!(large.entries, 20_000);
    assert!(large.depth >= 2);
    // 20k entries of >100 bytes cannot fit in fewer than 2 MB / 4 KiB pages, and B+tree
    // leaves are at least about half full.
    let page = db.stats().page_size as u64;
    let payload = 20_000 * 104;
    assert!(large.pages * page >= payload, "{large:?}");
    assert!(large.pages * page <= 3 * payload, "{large:?}");
    assert_eq!(large.total_pages(), large.pages);
}

#[test]
fn counts_overflow_pages_and_follows_commits() {
    let db = Database::memory(Options::default()).unwrap();
    fill(&db, "blobs", 3, 20_000);
    let s = db.tree_stats("blobs").unwrap();
    assert_eq!(s.entries, 3);
    assert!(s.overflow_pages >= 3 * 4, "{s:?}");
    assert_eq!(s.total_pages(), s.pages + s.overflow_pages);

    // A checkpoint moves pages but not the count; dropping the tree makes it unknown.
    db.checkpoint().unwrap();
    assert_eq!(db.tree_stats("blobs").unwrap().entries, 3);
    let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
    txn.drop_tree("blobs").unwrap();
    txn.commit().unwrap();
    assert!(matches!(db.tree_stats("blobs"), Err(Error::NoSuchTree(_))));
}

#[test]
fn unknown_tree_is_an_error() {
    let db = Database::memory(Options::default()).unwrap();
    assert!(matches!(db.tree_stats("nope"), Err(Error::NoSuchTree(_))));
}
