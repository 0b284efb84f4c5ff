//! Model-based property tests (proptest) of the engine against `BTreeMap`s.
//!
//! 1. `store_matches_model`: the `TreeStore` directly, with a tiny buffer pool (dirty pages get
//!    evicted), values from empty to several pages (overflow chains), range scans both ways with
//!    random bounds, drops and re-creations of trees, checkpoints, and close-and-reopen. Two
//!    models: "live" and "durable" (as of the last checkpoint); after a reopen the store equals
//!    the durable one. `verify()` (order, checksums, page accounting) after every checkpoint.
//! 2. `database_matches_model`: transactions on a `Database` in files, committed or rolled back,
//!    with reopens that skip the checkpoint (recovery replays the WAL) and checkpoints; every
//!    committed transaction is there after each reopen, no rolled-back write ever is.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use proptest::prelude::*;
use strata_engine::store::{StoreOptions, TreeStore};
use strata_engine::{Database, Isolation, Options};
use strata_storage::{BlockDevice, MemDevice};

const PAGE: usize = 1024;

#[derive(Clone, Debug)]
enum StoreOp {
    Put {
        tree: u8,
        key: u16,
        len: usize,
        fill: u8,
    },
    Delete {
        tree: u8,
        key: u16,
    },
    Get {
        tree: u8,
        key: u16,
    },
    Range {
        tree: u8,
        lo: Option<u16>,
        hi: Option<u16>,
        reverse: bool,
    },
    DropAndCreate {
        tree: u8,
    },
    Checkpoint,
    Reopen,
}

fn key(k: u16) -> Vec<u8> {
    // Keys of varying length sharing prefixes, in an order unlike numeric order.
    let mut out = format!("{k:05}").into_bytes();
    out.extend(std::iter::repeat_n(b'k', (k % 7) as usize * 9));
    out
}

fn value(len: usize, fill: u8) -> Vec<u8> {
    (0..len).map(|i| fill.wrapping_add(i as u8)).collect()
}

fn store_op() -> impl Strategy<Value = StoreOp> {
    let tree = 0u8..3;
    let k = 0u16..300;
    let len = prop_oneof![8 => 0usize..200, 2 => 200usize..1500, 1 => 1500usize..5000];
    prop_oneof![
        30 => (tree.clone(), k.clone(), len, any::<u8>()).prop_map(|(tree, key, len, fill)| StoreOp::Put { tree, key, len, fill }),
        10 => (tree.clone(), k.clone()).prop_map(|(tree, key)| StoreOp::Delete { tree, key }),
        5 => (tree.clone(), k.clone()).prop_map(|(tree, key)| StoreOp::Get { tree, key }),
        4 => (tree.clone(), proptest::option::of(k.clone()), proptest::option::of(k), any::<bool>())
            .prop_map(|(tree, lo, hi, reverse)| StoreOp::Range { tree, lo, hi, reverse }),
        1 => tree.prop_map(|tree| StoreOp::DropAndCreate { tree }),
        3 => Just(StoreOp::Checkpoint),
        2 => Just(StoreOp::Reopen),
    ]
}

type Model = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

fn name(tree: u8) -> String {
    format!("tree{tree}")
}

fn check_equal(store: &TreeStore, model: &Model) {
    assert_eq!(
        store.tree_names(),
        model.keys().cloned().collect::<Vec<_>>()
    );
    for (tree, entries) in model {
        let got: Vec<(Vec<u8>, Vec<u8>)> = store
            .range(tree, Bound::Unbounded, Bound::Unbounded, false)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let want: Vec<(Vec<u8>, Vec<u8>)> = entries
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert!(
            got == want,
            "{tree}: {} entries, model has {}",
            got.len(),
            want.len()
        );
    }
}

fn open_store(mem: &MemDevice) -> TreeStore {
    let opts = StoreOptions {
        page_size: PAGE,
        cache_pages: 16,
    };
    TreeStore::open(Arc::new(mem.clone()) as Arc<dyn BlockDevice>, opts).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(store_op(), 20..200)) {
        let mem = MemDevice::new(PAGE, 0);
        let opts = StoreOptions { page_size: PAGE, cache_pages: 16 };
        let mut store = TreeStore::create(Arc::new(mem.clone()), opts).unwrap();
        let mut live: Model = BTreeMap::new();
        for t in 0..3 {
            store.create_tree(&name(t)).unwrap();
            live.insert(name(t), BTreeMap::new());
        }
        let mut durable: Model = BTreeMap::new();
        for op in ops {
            match op {
                StoreOp::Put { tree, key: k, len, fill } => {
                    store.put(&name(tree), &key(k), &value(len, fill)).unwrap();
                    live.get_mut(&name(tree)).unwrap().insert(key(k), value(len, fill));
                }
                StoreOp::Delete { tree, key: k } => {
                    let was = live.get_mut(&name(tree)).unwrap().remove(&key(k)).is_some();
                    prop_assert_eq!(store.delete(&name(tree), &key(k)).unwrap(), was);
                }
                StoreOp::Get { tree, key: k } => {
                    prop_assert_eq!(store.get(&name(tree), &key(k)).unwrap(), live[&name(tree)].get(&key(k)).cloned());
                }
                StoreOp::Range { tree, lo, hi, reverse } => {
                    let lo = lo.map_or(Bound::Unbounded, |k| Bound::Included(key(k)));
                    let hi = hi.map_or(Bound::Unbounded, |k| Bound::Excluded(key(k)));
                    let valid = match (&lo, &hi) {
                        (Bound::Included(a), Bound::Excluded(b)) => a <= b,
                        _ => true,
                    };
                    if valid {
                        let got: Vec<Vec<u8>> = store
                            .range(&name(tree), lo.clone(), hi.clone(), reverse)
                            .unwrap()
                            .map(|e| e.unwrap().0)
                            .collect();
                        let mut want: Vec<Vec<u8>> = live[&name(tree)].range((lo, hi)).map(|(k, _)| k.clone()).collect();
                        if reverse {
                            want.reverse();
                        }
                        prop_assert_eq!(got, want);
                    }
                }
                StoreOp::DropAndCreate { tree } => {
                    store.drop_tree(&name(tree)).unwrap();
                    store.create_tree(&name(tree)).unwrap();
                    live.insert(name(tree), BTreeMap::new());
                }
                StoreOp::Checkpoint => {
                    store.checkpoint(7, b"meta").unwrap();
                    durable = live.clone();
                    store.verify().unwrap();
                }
                StoreOp::Reopen => {
                    drop(store);
                    store = open_store(&mem);
                    live = durable.clone();
                    if live.is_empty() {
                        // Never checkpointed since create: the trees do not exist yet.
                        for t in 0..3 {
                            store.create_tree(&name(t)).unwrap();
                            live.insert(name(t), BTreeMap::new());
                        }
                    }
                    check_equal(&store, &live);
                    store.verify().unwrap();
                }
            }
        }
        check_equal(&store, &live);
        store.checkpoint(8, b"").unwrap();
        store.verify().unwrap();
    }
}

#[derive(Clone, Debug)]
enum DbOp {
    Txn {
        writes: Vec<(u16, Option<usize>)>,
        commit: bool,
    },
    Reopen,
    Checkpoint,
}

fn db_op() -> impl Strategy<Value = DbOp> {
    let write = (0u16..200, proptest::option::weighted(0.8, 0usize..3000));
    prop_oneof![
        8 => (proptest::collection::vec(write, 1..20), proptest::bool::weighted(0.8))
            .prop_map(|(writes, commit)| DbOp::Txn { writes, commit }),
        2 => Just(DbOp::Reopen),
        1 => Just(DbOp::Checkpoint),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn database_matches_model(ops in proptest::collection::vec(db_op(), 5..40)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.db");
        let opts = Options { cache_bytes: 64 << 10, ..Options::default() };
        let mut db = Database::open(&path, opts.clone()).unwrap();
        let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
        txn.create_tree("t").unwrap();
        txn.commit().unwrap();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                DbOp::Txn { writes, commit } => {
                    let mut txn = db.begin(Isolation::RepeatableRead).unwrap();
                    let mut pending = model.clone();
                    for (k, v) in writes {
                        match v {
                            Some(len) => {
                                let v = value(len, n as u8);
                                txn.put("t", &key(k), &v).unwrap();
                                pending.insert(key(k), v);
                            }
                            None => {
                                txn.delete("t", &key(k)).unwrap();
                                pending.remove(&key(k));
                            }
                        }
                    }
                    if commit {
                        txn.commit().unwrap();
                        model = pending;
                    } else {
                        txn.rollback().unwrap();
                    }
                }
                DbOp::Reopen => {
                    drop(db);
                    db = Database::open(&path, opts.clone()).unwrap();
                }
                DbOp::Checkpoint => db.checkpoint().unwrap(),
            }
            let mut txn = db.begin(Isolation::RepeatableRead).unwrap();
            let got: BTreeMap<Vec<u8>, Vec<u8>> = txn
                .scan("t", Bound::Unbounded, Bound::Unbounded, false)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            prop_assert!(got == model, "after op {}: {} keys, model has {}", n, got.len(), model.len());
        }
        db.verify().unwrap();
    }
}
