//! Scenario tests of the RAID array: degraded reads, rebuild, scrub, stale and foreign members,
//! and the write hole (a crash between journal and in-place writes).

use std::sync::Arc;

use strata_storage::raid::{Level, MemberSlot, MemberState, ProblemKind, RaidArray, RaidConfig};
use strata_storage::{BlockDevice, Error, Faults, FaultyDevice, MemDevice};

const BS: usize = 512;

fn config(level: Level) -> RaidConfig {
    RaidConfig {
        level,
        capacity_bytes: 200 * BS as u64,
        chunk_bytes: 4 * BS,
        block_size: BS,
        journal_blocks: 64,
    }
}

fn members(n: usize) -> Vec<MemDevice> {
    (0..n).map(|_| MemDevice::new(BS, 0)).collect()
}

fn as_devs(m: &[MemDevice]) -> Vec<Arc<dyn BlockDevice>> {
    m.iter()
        .map(|d| Arc::new(d.clone()) as Arc<dyn BlockDevice>)
        .collect()
}

fn slots(m: &[MemDevice], missing: &[usize]) -> Vec<MemberSlot> {
    m.iter()
        .enumerate()
        .map(|(i, d)| {
            if missing.contains(&i) {
                MemberSlot::Absent {
                    name: format!("m{i}"),
                    state: MemberState::Missing("removed".into()),
                }
            } else {
                MemberSlot::Present {
                    name: format!("m{i}"),
                    device: Arc::new(d.clone()),
                }
            }
        })
        .collect()
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn read_all(a: &RaidArray) -> Result<Vec<u8>, Error> {
    let mut buf = vec![0u8; a.block_count() as usize * BS];
    a.read(0, &mut buf)?;
    Ok(buf)
}

const LEVELS: [(Level, usize); 5] = [
    (Level::Raid0, 3),
    (Level::Raid1, 3),
    (Level::Raid5, 4),
    (Level::Raid6, 5),
    (Level::Raid10, 4),
];

#[test]
fn write_read_reopen_every_level() {
    for (level, n) in LEVELS {
        let m = members(n);
        let a = RaidArray::create(&config(level), as_devs(&m)).unwrap();
        let data = pattern(200 * BS, n as u64);
        a.write(0, &data).unwrap();
        assert_eq!(read_all(&a).unwrap(), data, "{level:?} from cache");
        a.sync().unwrap();
        assert_eq!(read_all(&a).unwrap(), data, "{level:?} after sync");
        a.close().unwrap();
        let a = RaidArray::assemble(slots(&m, &[])).unwrap();
        assert_eq!(read_all(&a).unwrap(), data, "{level:?} after reopen");
        assert!(!a.status().degraded);
    }
}

#[test]
fn degraded_reads_within_tolerance_and_clear_error_beyond() {
    for (level, n) in LEVELS {
        let m = members(n);
        let a = RaidArray::create(&config(level), as_devs(&m)).unwrap();
        let data = pattern(200 * BS, 7);
        a.write(0, &data).unwrap();
        a.close().unwrap();
        let tolerable: Vec<usize> = match level {
            Level::Raid0 => vec![],
            Level::Raid1 => vec![0, 2],
            Level::Raid5 => vec![1],
            Level::Raid6 => vec![0, 3],
            Level::Raid10 => vec![1, 2],
        };
        let a = RaidArray::assemble(slots(&m, &tolerable)).unwrap();
        assert_eq!(read_all(&a).unwrap(), data, "{level:?} degraded");
        assert_eq!(a.status().degraded, !tolerable.is_empty());
        drop(a);
        let fatal: Vec<usize> = match level {
            Level::Raid0 => vec![1],
            Level::Raid1 => vec![0, 1, 2],
            Level::Raid5 => vec![1, 2],
            Level::Raid6 => vec![0, 1, 3],
            Level::Raid10 => vec![2, 3],
        };
        let fresh = members(n);
        for (i, d) in m.iter().enumerate() {
            fresh[i].set_block_count(d.block_count()).unwrap();
            fresh[i].write(0, &d.snapshot()).unwrap();
        }
        match RaidArray::assemble(slots(&fresh, &fatal)) {
            Err(e @ Error::TooManyFailures { .. }) => {
                let msg = e.to_string();
                for i in &fatal {
                    assert!(msg.contains(&format!("member {i}")), "{msg}");
                }
            }
            // With every member gone there is no array left to describe.
            Err(e @ Error::Invalid(_)) if fatal.len() == n => {
                assert!(e.to_string().contains("no RAID member"))
            }
            Err(e) => panic!("{level:?}: wrong error {e}"),
            Ok(_) => panic!("{level:?}: assembled beyond tolerance"),
        }
    }
}

#[test]
fn degraded_writes_then_rebuild_then_scrub_clean() {
    for (level, n) in LEVELS.into_iter().skip(1) {
        let m = members(n);
        let a = RaidArray::create(&config(level), as_devs(&m)).unwrap();
        let mut model = pattern(200 * BS, 3);
        a.write(0, &model).unwrap();
        a.sync().unwrap();
        a.fail_member(1).unwrap();
        let patch = pattern(37 * BS, 4);
        a.write(50, &patch).unwrap();
        model[50 * BS..87 * BS].copy_from_slice(&patch);
        a.sync().unwrap();
        assert_eq!(read_all(&a).unwrap(), model, "{level:?} degraded write");
        let fresh = MemDevice::new(BS, 0);
        let mut last = (0, 0);
        a.replace_member(1, "new".into(), Arc::new(fresh.clone()), &mut |d, t| {
            last = (d, t)
        })
        .unwrap();
        assert_eq!(last.0, last.1);
        assert!(!a.status().degraded);
        let report = a.scrub(false, &mut |_, _| {}).unwrap();
        assert!(
            report.problems.is_empty(),
            "{level:?}: {:?}",
            report.problems
        );
        a.close().unwrap();
        // The rebuilt member alone must carry its share: lose a different one.
        let mut m2 = m.clone();
        m2[1] = fresh;
        let other = if level == Level::Raid10 { 3 } else { 0 };
        let a = RaidArray::assemble(slots(&m2, &[other])).unwrap();
        assert_eq!(read_all(&a).unwrap(), model, "{level:?} after rebuild");
    }
}

#[test]
fn scrub_names_corrupt_member_and_repairs() {
    for (level, n) in LEVELS.into_iter().skip(1) {
        let m = members(n);
        let a = RaidArray::create(&config(level), as_devs(&m)).unwrap();
        let data = pattern(200 * BS, 9);
        a.write(0, &data).unwrap();
        a.close().unwrap();
        let geo_data_start = {
            let a = RaidArray::assemble(slots(&m, &[])).unwrap();
            a.geometry().data_start()
        };
        // Rot one byte in member 2's data area.
        m[2].corrupt((geo_data_start as usize + 5) * BS + 17, 0x40);
        let a = RaidArray::assemble(slots(&m, &[])).unwrap();
        assert_eq!(
            read_all(&a).unwrap(),
            data,
            "{level:?} read through corruption"
        );
        let report = a.scrub(false, &mut |_, _| {}).unwrap();
        assert_eq!(report.problems.len(), 1, "{level:?}: {:?}", report.problems);
        assert_eq!(report.problems[0].member, 2);
        assert_eq!(report.problems[0].kind, ProblemKind::ChecksumMismatch);
        assert_eq!(report.unrepaired(), 1);
        let report = a.scrub(true, &mut |_, _| {}).unwrap();
        assert_eq!(report.repaired(), 1, "{level:?}");
        let report = a.scrub(false, &mut |_, _| {}).unwrap();
        assert!(
            report.problems.is_empty(),
            "{level:?} after repair: {:?}",
            report.problems
        );
        assert_eq!(read_all(&a).unwrap(), data);
    }
}

#[test]
fn raid0_corruption_is_an_error_not_wrong_bytes() {
    let m = members(3);
    let a = RaidArray::create(&config(Level::Raid0), as_devs(&m)).unwrap();
    a.write(0, &pattern(200 * BS, 1)).unwrap();
    let start = a.geometry().data_start() as usize;
    a.close().unwrap();
    m[0].corrupt(start * BS + 3, 1);
    let a = RaidArray::assemble(slots(&m, &[])).unwrap();
    let err = read_all(&a).unwrap_err();
    assert!(err.is_data_loss(), "{err}");
}

#[test]
fn stale_and_foreign_members_are_refused() {
    let m = members(4);
    let a = RaidArray::create(&config(Level::Raid5), as_devs(&m)).unwrap();
    a.write(0, &pattern(200 * BS, 1)).unwrap();
    a.close().unwrap();
    let old_member_3 = m[3].snapshot();
    // Run degraded without member 3 and change data.
    let a = RaidArray::assemble(slots(&m, &[3])).unwrap();
    let data = pattern(200 * BS, 2);
    a.write(0, &data).unwrap();
    a.close().unwrap();
    // Member 3 comes back with its old contents: stale, not trusted.
    m[3].write(0, &old_member_3).unwrap();
    let status = RaidArray::inspect(&slots(&m, &[])).unwrap();
    assert!(
        matches!(
            status.members[3].state,
            MemberState::Failed(_) | MemberState::Stale { .. }
        ),
        "{:?}",
        status.members[3].state
    );
    let a = RaidArray::assemble(slots(&m, &[])).unwrap();
    assert_eq!(read_all(&a).unwrap(), data);
    drop(a);
    // A member of another array in slot 1.
    let other = members(4);
    RaidArray::create(&config(Level::Raid5), as_devs(&other))
        .unwrap()
        .close()
        .unwrap();
    let mut mixed = m.clone();
    mixed[1] = other[1].clone();
    let status = RaidArray::inspect(&slots(&mixed, &[])).unwrap();
    assert!(
        matches!(status.members[1].state, MemberState::Foreign(_)),
        "{:?}",
        status.members[1].state
    );
}

/// The write hole: power fails part way through a flush, on every member at once, at every
/// possible point. After reassembly with one member lost, every block holds its old or its new
/// contents: never anything else, and synced data is never touched.
#[test]
fn crash_at_every_write_then_lose_a_member() {
    for (level, n) in [
        (Level::Raid5, 4),
        (Level::Raid6, 5),
        (Level::Raid1, 2),
        (Level::Raid10, 4),
    ] {
        let base = pattern(200 * BS, 11);
        let update = pattern(200 * BS, 12);
        for cut in (0..400).step_by(7) {
            let m = members(n);
            let faults = Faults::new();
            let devs: Vec<Arc<dyn BlockDevice>> = m
                .iter()
                .map(|d| {
                    Arc::new(FaultyDevice::with_faults(
                        Arc::new(d.clone()),
                        faults.clone(),
                    )) as Arc<dyn BlockDevice>
                })
                .collect();
            let a = RaidArray::create(&config(level), devs).unwrap();
            a.write(0, &base).unwrap();
            a.sync().unwrap();
            // Rewrite a partial stripe range and a full range, then cut power during the flush.
            faults.fail_after_writes(cut);
            let _ = a
                .write(3, &update[3 * BS..150 * BS])
                .and_then(|()| a.sync());
            std::mem::forget(a);
            faults.clear();
            let lost = n - 1;
            let a = RaidArray::assemble(slots(&m, &[lost])).unwrap();
            let got = read_all(&a).unwrap_or_else(|e| panic!("{level:?} cut {cut}: {e}"));
            for b in 0..200 {
                let g = &got[b * BS..(b + 1) * BS];
                let old = &base[b * BS..(b + 1) * BS];
                let new = &update[b * BS..(b + 1) * BS];
                if (3..150).contains(&b) {
                    assert!(
                        g == old || g == new,
                        "{level:?} cut {cut}: block {b} is neither old nor new"
                    );
                } else {
                    assert_eq!(g, old, "{level:?} cut {cut}: untouched block {b} changed");
                }
            }
        }
    }
}
