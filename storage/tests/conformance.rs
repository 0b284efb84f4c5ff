//! The `BlockDevice` contract (`storage/src/device.rs`, rules 1-3 and 6), checked against every
//! implementation: file, memory, fault-injecting (with no fault armed), and a RAID array of each
//! level, over memory and over files. One suite, many devices, as in tikv's engine_traits_tests.

use std::sync::Arc;

use strata_storage::raid::{create_files, Level, RaidArray, RaidConfig};
use strata_storage::{
    read_bytes, write_bytes, BlockDevice, Error, FaultyDevice, FileDevice, MemDevice,
};

const BS: usize = 4096;
const BLOCKS: u64 = 96;

/// Builds a fresh device of `BLOCKS` blocks of `BS` bytes; the TempDir keeps its files alive.
type Make = fn(&tempfile::TempDir) -> Arc<dyn BlockDevice>;

fn raid_config(level: Level) -> RaidConfig {
    RaidConfig {
        level,
        capacity_bytes: BLOCKS * BS as u64,
        chunk_bytes: 2 * BS,
        block_size: BS,
        journal_blocks: 32,
    }
}

fn raid_mem(level: Level, n: usize) -> Arc<dyn BlockDevice> {
    let members = (0..n)
        .map(|_| Arc::new(MemDevice::new(BS, 0)) as Arc<dyn BlockDevice>)
        .collect();
    Arc::new(RaidArray::create(&raid_config(level), members).unwrap())
}

fn raid_files(dir: &tempfile::TempDir, level: Level, n: usize) -> Arc<dyn BlockDevice> {
    let paths: Vec<_> = (0..n)
        .map(|i| dir.path().join(format!("m{i}.img")))
        .collect();
    Arc::new(create_files(&paths, &raid_config(level)).unwrap())
}

fn devices() -> Vec<(&'static str, Make)> {
    vec![
        ("file", |d| {
            Arc::new(FileDevice::create(d.path().join("dev"), BS, BLOCKS).unwrap())
        }),
        ("memory", |_| Arc::new(MemDevice::new(BS, BLOCKS))),
        ("faulty", |_| {
            Arc::new(FaultyDevice::new(Arc::new(MemDevice::new(BS, BLOCKS))))
        }),
        ("raid0/mem", |_| raid_mem(Level::Raid0, 3)),
        ("raid1/mem", |_| raid_mem(Level::Raid1, 2)),
        ("raid5/mem", |_| raid_mem(Level::Raid5, 4)),
        ("raid6/mem", |_| raid_mem(Level::Raid6, 5)),
        ("raid10/mem", |_| raid_mem(Level::Raid10, 4)),
        ("raid0/file", |d| raid_files(d, Level::Raid0, 2)),
        ("raid5/file", |d| raid_files(d, Level::Raid5, 3)),
        ("raid6/file", |d| raid_files(d, Level::Raid6, 4)),
        ("raid10/file", |d| raid_files(d, Level::Raid10, 4)),
    ]
}

fn each_device(check: impl Fn(&str, &dyn BlockDevice)) {
    for (name, make) in devices() {
        let dir = tempfile::tempdir().unwrap();
        let dev = make(&dir);
        check(name, dev.as_ref());
    }
}

fn block(seed: u8) -> Vec<u8> {
    (0..BS)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Rule 2: a block never written reads as zeros.
#[test]
fn unwritten_blocks_read_as_zeros() {
    each_device(|name, dev| {
        assert_eq!(dev.block_size(), BS, "{name}");
        assert_eq!(dev.block_count(), BLOCKS, "{name}");
        let mut buf = vec![1u8; BS * 4];
        dev.read(BLOCKS - 4, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0), "{name}");
    });
}

/// Rule 3: reads return the last data written, synced or not, single and multi-block.
#[test]
fn reads_return_last_write() {
    each_device(|name, dev| {
        for b in 0..BLOCKS {
            dev.write(b, &block(b as u8)).unwrap();
        }
        dev.write(10, &block(200)).unwrap();
        let mut multi = block(1);
        multi.extend(block(2));
        multi.extend(block(3));
        dev.write(20, &multi).unwrap();
        let check = |when: &str| {
            for b in 0..BLOCKS {
                let want = match b {
                    10 => block(200),
                    20..=22 => block(b as u8 - 19),
                    _ => block(b as u8),
                };
                let mut got = vec![0u8; BS];
                dev.read(b, &mut got).unwrap();
                assert!(got == want, "{name} {when}: block {b}");
            }
            let mut all = vec![0u8; BS * BLOCKS as usize];
            dev.read(0, &mut all).unwrap();
            assert_eq!(
                &all[20 * BS..23 * BS],
                &multi[..],
                "{name} {when}: multi-block read"
            );
        };
        check("before sync");
        dev.sync().unwrap();
        check("after sync");
    });
}

/// Rule 1: bad lengths and out-of-range blocks are refused, and nothing is transferred.
#[test]
fn bad_requests_are_refused() {
    each_device(|name, dev| {
        dev.write(BLOCKS - 1, &block(9)).unwrap();
        assert!(
            matches!(dev.write(0, &[0u8; 100]), Err(Error::BadLength { .. })),
            "{name}"
        );
        assert!(
            matches!(dev.write(0, &[]), Err(Error::BadLength { .. })),
            "{name}"
        );
        let mut odd = vec![0u8; BS + 1];
        assert!(
            matches!(dev.read(0, &mut odd), Err(Error::BadLength { .. })),
            "{name}"
        );
        assert!(
            matches!(dev.write(BLOCKS, &block(1)), Err(Error::OutOfRange { .. })),
            "{name}"
        );
        let two = [block(1), block(2)].concat();
        assert!(
            matches!(dev.write(BLOCKS - 1, &two), Err(Error::OutOfRange { .. })),
            "{name}"
        );
        assert!(
            matches!(
                dev.write(u64::MAX, &block(1)),
                Err(Error::OutOfRange { .. })
            ),
            "{name}"
        );
        let mut buf = vec![0u8; BS];
        dev.read(BLOCKS - 1, &mut buf).unwrap();
        assert_eq!(buf, block(9), "{name}: refused write changed data");
    });
}

/// The byte-offset helpers patch partial blocks at both ends.
#[test]
fn unaligned_byte_io() {
    each_device(|name, dev| {
        let data: Vec<u8> = (0..3 * BS + 123).map(|i| (i % 251) as u8).collect();
        write_bytes(dev, 1000, &data).unwrap();
        let mut back = vec![0u8; data.len()];
        read_bytes(dev, 1000, &mut back).unwrap();
        assert!(back == data, "{name}");
        let mut head = vec![9u8; 1000];
        read_bytes(dev, 0, &mut head).unwrap();
        assert!(
            head.iter().all(|&b| b == 0),
            "{name}: bytes before the write changed"
        );
        let capacity = BLOCKS * BS as u64;
        assert!(
            write_bytes(dev, capacity - 10, &[1u8; 11]).is_err(),
            "{name}"
        );
    });
}

/// Rule 6: concurrent writers and readers on different blocks.
#[test]
fn concurrent_access() {
    for (name, make) in devices() {
        let dir = tempfile::tempdir().unwrap();
        let dev = make(&dir);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let dev = dev.clone();
                s.spawn(move || {
                    for round in 0..3u8 {
                        for b in (t..BLOCKS).step_by(4) {
                            dev.write(b, &block(b as u8 ^ round)).unwrap();
                            let mut got = vec![0u8; BS];
                            dev.read(b, &mut got).unwrap();
                            assert!(got == block(b as u8 ^ round), "{name}: block {b}");
                        }
                        dev.sync().unwrap();
                    }
                });
            }
        });
    }
}

/// Resizing: files and memory grow with zeros; a RAID array refuses.
#[test]
fn resize() {
    each_device(|name, dev| {
        let result = dev.set_block_count(BLOCKS + 8);
        if name.starts_with("raid") {
            assert!(matches!(result, Err(Error::NotResizable { .. })), "{name}");
            dev.set_block_count(BLOCKS).unwrap();
            return;
        }
        result.unwrap();
        assert_eq!(dev.block_count(), BLOCKS + 8, "{name}");
        let mut buf = vec![1u8; BS * 8];
        dev.read(BLOCKS, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0), "{name}");
    });
}

/// Durability across reopen for the file device (the real-file path of rule 4).
#[test]
fn file_device_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dev");
    {
        let dev = FileDevice::create(&path, BS, 8).unwrap();
        dev.write(3, &block(3)).unwrap();
        dev.sync().unwrap();
    }
    let dev = FileDevice::open(&path, BS).unwrap();
    assert_eq!(dev.block_count(), 8);
    let mut got = vec![0u8; BS];
    dev.read(3, &mut got).unwrap();
    assert_eq!(got, block(3));
}

/// A file device is exclusively locked while open: a second open is refused, not silently shared.
#[test]
fn file_device_refuses_a_second_opener() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dev");
    let first = FileDevice::create(&path, BS, 8).unwrap();
    first.write(0, &block(5)).unwrap();
    let err = FileDevice::open(&path, BS)
        .err()
        .expect("second open must fail");
    assert!(err.to_string().contains("in use"), "{err}");
    let err = FileDevice::create(&path, BS, 8)
        .err()
        .expect("second create must fail");
    assert!(err.to_string().contains("in use"), "{err}");
    let mut got = vec![0u8; BS];
    first.read(0, &mut got).unwrap();
    assert_eq!(got, block(5), "a refused create must not truncate the file");
    drop(first);
    FileDevice::open(&path, BS).unwrap();
}
