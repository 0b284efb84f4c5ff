//! RAID layer benchmarks (criterion).
//!
//! What is measured, each as bytes per second:
//! - `parity`: a plain memory copy, XOR parity (P) and P+Q generation over the same data, in the
//!   same run. Target: P+Q at least half the speed of the copy.
//! - `seq_write/{mem,file}/raidN` and `seq_read/...`: the whole array written (1 MiB requests,
//!   then `sync`, which journals and writes in place) or read sequentially.
//! - `stripe_write/mem`: RAID-0 vs RAID-5 full-stripe writes (whole stripes, no reads needed), and
//!   RAID-5 partial-stripe writes (scattered single blocks, each needing the rest of its row).
//!   Target: RAID-5 full-stripe within 2x of RAID-0.
//! - `degraded_read/mem`: RAID-5 and RAID-6 reads with members missing (reconstruction).
//! - `rebuild/mem`: `replace_member` onto a fresh member.
//!
//! Run: `cargo bench --bench raid`; one group: `cargo bench --bench raid -- parity`. Figures
//! depend on the machine: the ones in the issue notes came from a shared 2-core VM.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata_storage::raid::{parity, Level, MemberSlot, MemberState, RaidArray, RaidConfig};
use strata_storage::{BlockDevice, FileDevice, MemDevice};

const BS: usize = 4096;
const CHUNK: usize = 64 << 10;

fn config(level: Level, capacity: u64) -> RaidConfig {
    RaidConfig {
        chunk_bytes: CHUNK,
        ..RaidConfig::new(level, capacity)
    }
}

const LEVELS: [(Level, usize); 5] = [
    (Level::Raid0, 4),
    (Level::Raid1, 2),
    (Level::Raid5, 4),
    (Level::Raid6, 5),
    (Level::Raid10, 4),
];

fn mem_members(n: usize) -> Vec<MemDevice> {
    (0..n).map(|_| MemDevice::new(BS, 0)).collect()
}

fn devices(m: &[MemDevice]) -> Vec<Arc<dyn BlockDevice>> {
    m.iter()
        .map(|d| Arc::new(d.clone()) as Arc<dyn BlockDevice>)
        .collect()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

fn write_all(array: &RaidArray, data: &[u8]) {
    for (i, piece) in data.chunks(1 << 20).enumerate() {
        array.write((i * (1 << 20) / BS) as u64, piece).unwrap();
    }
    array.sync().unwrap();
}

fn parity_speed(c: &mut Criterion) {
    let mut g = c.benchmark_group("parity");
    for k in [4usize, 8] {
        let blocks: Vec<Vec<u8>> = (0..k)
            .map(|d| pattern(CHUNK).into_iter().map(|b| b ^ d as u8).collect())
            .collect();
        let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
        let mut p = vec![0u8; CHUNK];
        let mut q = vec![0u8; CHUNK];
        let mut copy = vec![0u8; CHUNK * k];
        g.throughput(Throughput::Bytes((CHUNK * k) as u64));
        g.bench_function(BenchmarkId::new("memcpy", k), |b| {
            b.iter(|| {
                for (d, block) in refs.iter().enumerate() {
                    copy[d * CHUNK..(d + 1) * CHUNK].copy_from_slice(block);
                }
                black_box(&copy);
            })
        });
        g.bench_function(BenchmarkId::new("gen_p", k), |b| {
            b.iter(|| {
                parity::gen_p(&refs, &mut p);
                black_box(&p);
            })
        });
        g.bench_function(BenchmarkId::new("gen_pq", k), |b| {
            b.iter(|| {
                parity::gen_pq(&refs, &mut p, &mut q);
                black_box((&p, &q));
            })
        });
    }
    g.finish();
}

fn sequential(c: &mut Criterion) {
    let size = 16usize << 20;
    let data = pattern(size);
    for media in ["mem", "file"] {
        let dir = tempfile::tempdir().unwrap();
        let arrays: Vec<(Level, RaidArray)> = LEVELS
            .iter()
            .map(|&(level, n)| {
                let devs: Vec<Arc<dyn BlockDevice>> = if media == "mem" {
                    devices(&mem_members(n))
                } else {
                    (0..n)
                        .map(|i| {
                            let path = dir.path().join(format!("raid{}-m{i}", level.number()));
                            Arc::new(FileDevice::create(path, BS, 0).unwrap())
                                as Arc<dyn BlockDevice>
                        })
                        .collect()
                };
                (
                    level,
                    RaidArray::create(&config(level, size as u64), devs).unwrap(),
                )
            })
            .collect();
        let mut g = c.benchmark_group(format!("seq_write/{media}"));
        g.throughput(Throughput::Bytes(size as u64));
        for (level, array) in &arrays {
            g.bench_function(format!("raid{}", level.number()), |b| {
                b.iter(|| write_all(array, &data))
            });
        }
        g.finish();
        let mut g = c.benchmark_group(format!("seq_read/{media}"));
        g.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0u8; 1 << 20];
        for (level, array) in &arrays {
            g.bench_function(format!("raid{}", level.number()), |b| {
                b.iter(|| {
                    for i in 0..size / (1 << 20) {
                        array.read((i * (1 << 20) / BS) as u64, &mut buf).unwrap();
                    }
                    black_box(&buf);
                })
            });
        }
        g.finish();
    }
}

fn stripes(c: &mut Criterion) {
    let size = 16usize << 20;
    let data = pattern(size);
    let mut g = c.benchmark_group("stripe_write/mem");
    g.throughput(Throughput::Bytes(size as u64));
    for (level, n) in [(Level::Raid0, 4), (Level::Raid5, 4)] {
        let array =
            RaidArray::create(&config(level, size as u64), devices(&mem_members(n))).unwrap();
        g.bench_function(format!("raid{}_full_stripe", level.number()), |b| {
            b.iter(|| write_all(&array, &data))
        });
    }
    // Scattered single blocks: one per stripe, so every row needs the rest of it read.
    let array =
        RaidArray::create(&config(Level::Raid5, size as u64), devices(&mem_members(4))).unwrap();
    write_all(&array, &data);
    let stripe_blocks = (3 * CHUNK / BS) as u64;
    let count = (size / BS) as u64 / stripe_blocks;
    g.throughput(Throughput::Bytes(count * BS as u64));
    let block = pattern(BS);
    g.bench_function("raid5_partial_stripe", |b| {
        b.iter(|| {
            for s in 0..count {
                array.write(s * stripe_blocks + 5, &block).unwrap();
            }
            array.sync().unwrap();
        })
    });
    g.finish();
}

fn degraded_and_rebuild(c: &mut Criterion) {
    let size = 16usize << 20;
    let data = pattern(size);
    let mut g = c.benchmark_group("degraded_read/mem");
    g.throughput(Throughput::Bytes(size as u64));
    for (level, n, lost) in [(Level::Raid5, 4, vec![1]), (Level::Raid6, 5, vec![1, 3])] {
        let members = mem_members(n);
        let array = RaidArray::create(&config(level, size as u64), devices(&members)).unwrap();
        write_all(&array, &data);
        array.close().unwrap();
        let slots = members
            .iter()
            .enumerate()
            .map(|(i, d)| {
                if lost.contains(&i) {
                    MemberSlot::Absent {
                        name: format!("m{i}"),
                        state: MemberState::Missing("benchmark".into()),
                    }
                } else {
                    MemberSlot::Present {
                        name: format!("m{i}"),
                        device: Arc::new(d.clone()),
                    }
                }
            })
            .collect();
        let array = RaidArray::assemble(slots).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        g.bench_function(
            format!("raid{}_minus_{}", level.number(), lost.len()),
            |b| {
                b.iter(|| {
                    for i in 0..size / (1 << 20) {
                        array.read((i * (1 << 20) / BS) as u64, &mut buf).unwrap();
                    }
                    black_box(&buf);
                })
            },
        );
    }
    g.finish();

    let mut g = c.benchmark_group("rebuild/mem");
    for (level, n) in [(Level::Raid1, 2), (Level::Raid5, 4), (Level::Raid6, 5)] {
        let array =
            RaidArray::create(&config(level, size as u64), devices(&mem_members(n))).unwrap();
        write_all(&array, &data);
        let member_bytes = array.geometry().rows() * BS as u64;
        g.throughput(Throughput::Bytes(member_bytes));
        g.bench_function(format!("raid{}", level.number()), |b| {
            b.iter(|| {
                array.fail_member(1).unwrap();
                let fresh = Arc::new(MemDevice::new(BS, 0));
                array
                    .replace_member(1, "new".into(), fresh, &mut |_, _| {})
                    .unwrap();
            })
        });
    }
    g.finish();
}

fn short() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10)
}

criterion_group! {
    name = benches;
    config = short();
    targets = parity_speed, sequential, stripes, degraded_and_rebuild
}
criterion_main!(benches);
