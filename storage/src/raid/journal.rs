//! The stripe journal: how the array closes the RAID write hole.
//!
//! THE PROBLEM. Updating a row means writing data and parity to several members. A crash between
//! those writes leaves parity that does not match the data; if a member is lost later (or was lost
//! already), reconstruction from that parity returns wrong bytes for blocks nobody was writing.
//!
//! THE CHOICE: a write-ahead journal, like Linux md's raid5-cache, kept on the members themselves.
//! Writes collect in the array's write-back cache; a flush turns them into *transactions*. For each
//! transaction, every participating member first gets a journal record holding exactly the blocks
//! it is about to receive (data, parity and checksum blocks) at the start of its own journal region.
//! All participants are synced; only then are the blocks written in place, and the participants
//! synced again. A transaction is therefore never half-applied in a way recovery cannot finish.
//! It costs a second write of every block; a dirty-stripe bitmap with resync would be cheaper, but
//! cannot repair a stripe whose member died in the same crash, and the journal also keeps the
//! per-block checksums atomic with the data on every level (so RAID-0 and mirrors use it too).
//!
//! RECORD FORMAT (at block 0 of the journal region; little-endian):
//!
//! | offset | size | field                                                              |
//! |--------|------|--------------------------------------------------------------------|
//! | 0      | 8    | magic `STRJRNL1`                                                   |
//! | 8      | 16   | array id                                                           |
//! | 24     | 8    | transaction sequence number                                        |
//! | 32     | 8    | participants: bit i set if member i is written by the transaction  |
//! | 40     | 4    | entry count E                                                      |
//! | 44     | 4    | descriptor blocks D                                                |
//! | 48     | 8    | xxh3-64 of the descriptor blocks (this field zero) and the E blocks |
//! | 56     | 8*E  | target member block of each entry, continuing over the D blocks     |
//!
//! The D descriptor blocks are followed by the E blocks of data, in entry order.
//!
//! WHY NOT CRC32 FOR THE RECORD. A record cut short by a crash leaves the previous record's blocks
//! at its tail. CRC32 is affine: over any block that ends with the CRC32 of its own first bytes
//! (our checksum blocks do; so may the engine's pages), the running CRC ends the same whatever the
//! block holds, so a stale block of that shape in place of the new one would pass. xxh3 is not
//! linear. (`record_cut_short_over_self_checksummed_blocks_is_invalid` is the regression test.)
//!
//! RECOVERY RULE (on every read-write assembly). Let N be the highest sequence number among valid
//! records on the active members. If every active participant of N holds a valid record N, the
//! journal was complete, so in-place writing may have begun: replay N (rewriting its blocks is
//! idempotent, since no later transaction exists). Otherwise some participant never got its record
//! synced, so no in-place write of N happened and N is discarded. A participant that is missing
//! or failed is skipped: its blocks are implied by the parity the others hold, which the record
//! wrote consistently. Records older than N were completed before N began and are ignored.

use crate::device::BlockDevice;
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"STRJRNL1";
const HEADER: usize = 56;

/// One member's part of a transaction.
pub struct Record {
    pub seq: u64,
    pub participants: u64,
    /// (member block, contents) in the order they were journaled.
    pub entries: Vec<(u64, Vec<u8>)>,
}

/// Descriptor blocks needed for `entries` entries.
pub fn descriptor_blocks(entries: usize, block_size: usize) -> u64 {
    (HEADER + 8 * entries).div_ceil(block_size) as u64
}

/// Journal blocks a record of `entries` entries takes.
pub fn record_blocks(entries: usize, block_size: usize) -> u64 {
    descriptor_blocks(entries, block_size) + entries as u64
}

/// Encodes a record: descriptor blocks followed by the blocks themselves.
pub fn encode(
    array_id: &[u8; 16],
    seq: u64,
    participants: u64,
    entries: &[(u64, &[u8])],
    block_size: usize,
) -> Vec<u8> {
    let d = descriptor_blocks(entries.len(), block_size) as usize;
    let mut out = vec![0u8; (d + entries.len()) * block_size];
    out[0..8].copy_from_slice(MAGIC);
    out[8..24].copy_from_slice(array_id);
    out[24..32].copy_from_slice(&seq.to_le_bytes());
    out[32..40].copy_from_slice(&participants.to_le_bytes());
    out[40..44].copy_from_slice(&(entries.len() as u32).to_le_bytes());
    out[44..48].copy_from_slice(&(d as u32).to_le_bytes());
    for (i, (target, data)) in entries.iter().enumerate() {
        out[HEADER + 8 * i..HEADER + 8 * i + 8].copy_from_slice(&target.to_le_bytes());
        let at = (d + i) * block_size;
        out[at..at + block_size].copy_from_slice(data);
    }
    let hash = xxhash_rust::xxh3::xxh3_64(&out);
    out[48..56].copy_from_slice(&hash.to_le_bytes());
    out
}

/// Reads the record at `start` on `dev`; None when there is no valid record (never written,
/// torn, overwritten, or belonging to another array).
pub fn read(
    dev: &dyn BlockDevice,
    start: u64,
    journal_blocks: u64,
    array_id: &[u8; 16],
) -> Result<Option<Record>> {
    let bs = dev.block_size();
    let mut first = vec![0u8; bs];
    dev.read(start, &mut first)?;
    if &first[0..8] != MAGIC || &first[8..24] != array_id {
        return Ok(None);
    }
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let count = u32_at(&first, 40) as usize;
    let d = u32_at(&first, 44) as u64;
    if d != descriptor_blocks(count, bs) || d + count as u64 > journal_blocks {
        return Ok(None);
    }
    let mut all = vec![0u8; (d as usize + count) * bs];
    dev.read(start, &mut all)?;
    let stored = u64_at(&all, 48);
    all[48..56].fill(0);
    if xxhash_rust::xxh3::xxh3_64(&all) != stored {
        return Ok(None);
    }
    let entries = (0..count)
        .map(|i| {
            let target = u64_at(&all, HEADER + 8 * i);
            let at = (d as usize + i) * bs;
            (target, all[at..at + bs].to_vec())
        })
        .collect();
    Ok(Some(Record {
        seq: u64_at(&all, 24),
        participants: u64_at(&all, 32),
        entries,
    }))
}

/// Applies the recovery rule to the records found on the active members (`records[i]` is member
/// i's, None if it has none or is not active). Returns the sequence to replay, if any, and the next
/// free sequence number.
pub fn decide(records: &[Option<&Record>], active: &[bool]) -> Result<(Option<u64>, u64)> {
    let newest = records.iter().flatten().map(|r| r.seq).max();
    let Some(n) = newest else {
        return Ok((None, 1));
    };
    let participants = records
        .iter()
        .flatten()
        .find(|r| r.seq == n)
        .map(|r| r.participants)
        .ok_or_else(|| Error::Invalid("invariant: newest record exists".into()))?;
    let complete = (0..records.len())
        .filter(|&i| participants & (1 << i) != 0 && active[i])
        .all(|i| records[i].is_some_and(|r| r.seq == n));
    Ok((complete.then_some(n), n + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::MemDevice;

    #[test]
    fn round_trip_and_torn_record_rejected() {
        let dev = MemDevice::new(512, 64);
        let a = vec![1u8; 512];
        let b = vec![2u8; 512];
        let id = [9u8; 16];
        let rec = encode(&id, 7, 0b101, &[(40, &a), (41, &b)], 512);
        dev.write(2, &rec).unwrap();
        let got = read(&dev, 2, 32, &id).unwrap().unwrap();
        assert_eq!((got.seq, got.participants), (7, 0b101));
        assert_eq!(got.entries, vec![(40, a.clone()), (41, b.clone())]);
        assert!(
            read(&dev, 2, 32, &[8u8; 16]).unwrap().is_none(),
            "foreign array"
        );
        // A torn record: the last block never made it.
        dev.write(2 + 2, &[0u8; 512]).unwrap();
        assert!(read(&dev, 2, 32, &id).unwrap().is_none());
    }

    #[test]
    fn replay_only_complete_transactions() {
        let rec = |seq, participants| Record {
            seq,
            participants,
            entries: vec![],
        };
        let (r5a, r5b, r4) = (rec(5, 0b011), rec(5, 0b011), rec(4, 0b111));
        // Both participants of 5 have it: replay.
        let got = decide(&[Some(&r5a), Some(&r5b), Some(&r4)], &[true; 3]).unwrap();
        assert_eq!(got, (Some(5), 6));
        // Member 1 never got record 5 (it still has 4): discard.
        let got = decide(&[Some(&r5a), Some(&r4), Some(&r4)], &[true; 3]).unwrap();
        assert_eq!(got, (None, 6));
        // Member 1 is gone: the others are enough.
        let got = decide(&[Some(&r5a), None, Some(&r4)], &[true, false, true]).unwrap();
        assert_eq!(got, (Some(5), 6));
        assert_eq!(decide(&[None, None], &[true, true]).unwrap(), (None, 1));
    }
}
#[cfg(test)]
mod partial_write_tests {
    use super::*;
    use crate::faulty::{Faults, FaultyDevice};
    use crate::mem::MemDevice;
    use std::sync::Arc;

    /// A block that ends with the CRC32 of the rest, like a checksum block.
    fn self_checksummed(fill: u8) -> Vec<u8> {
        let mut b = vec![fill; 512];
        let crc = crc32fast::hash(&b[..508]);
        b[508..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Regression: a record cut short, whose missing last block is replaced by an older
    /// self-checksummed block, used to pass the record's CRC32.
    #[test]
    fn record_cut_short_over_self_checksummed_blocks_is_invalid() {
        let mem = MemDevice::new(512, 80);
        let faults = Faults::new();
        let dev = FaultyDevice::with_faults(Arc::new(mem.clone()), faults.clone());
        let old = [self_checksummed(1)];
        let old_entries: Vec<(u64, &[u8])> = vec![(100, &old[0])];
        let old_rec = encode(&[1; 16], 4, 1, &old_entries, 512);
        // Place the old self-checksummed block where the new record's last block will go.
        mem.write(2 + 63, &old_rec[512..1024]).unwrap();
        let mut blocks: Vec<Vec<u8>> = (0..61).map(|i| vec![i as u8; 512]).collect();
        blocks.push(self_checksummed(2));
        let entries: Vec<(u64, &[u8])> = blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (100 + i as u64, b.as_slice()))
            .collect();
        let rec = encode(&[1; 16], 5, 1, &entries, 512);
        assert_eq!(rec.len(), 64 * 512);
        faults.fail_after_writes(63);
        assert!(dev.write(2, &rec).is_err());
        assert!(read(&mem, 2, 64, &[1; 16]).unwrap().is_none());
    }
}
