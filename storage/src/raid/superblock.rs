//! The member superblock: identity and state of the array, on blocks 0 and 1 of every member.
//!
//! FORMAT (little-endian; the rest of the block is zero):
//!
//! | offset | size | field                                                             |
//! |--------|------|-------------------------------------------------------------------|
//! | 0      | 8    | magic `STRATRAI`                                                  |
//! | 8      | 4    | format version (1)                                                |
//! | 12     | 4    | block size B                                                      |
//! | 16     | 16   | array id (random at create)                                       |
//! | 32     | 1    | level (0, 1, 5, 6, 10)                                            |
//! | 33     | 1    | member count n                                                    |
//! | 34     | 1    | this member's index                                               |
//! | 35     | 1    | 1 if the array was closed cleanly                                 |
//! | 36     | 4    | chunk size in bytes                                               |
//! | 40     | 8    | capacity in blocks                                                |
//! | 48     | 8    | journal blocks per member                                         |
//! | 56     | 8    | event counter                                                     |
//! | 64     | n    | state of every member as this writer saw it (0 active, 1 failed,  |
//! |        |      | 2 rebuilding)                                                     |
//! | B-4    | 4    | CRC32 of bytes 0..B-4                                             |
//!
//! The event counter rises with every change of array state (open, clean close, a member failing,
//! a rebuild starting or finishing) and is written to every active member, so a member that missed
//! a change (it was absent or failed) has a lower count and is known to be stale.
//!
//! CRASH SAFETY: copy 0 is written and synced before copy 1, so a crash tears at most one of them;
//! a reader takes the valid copy with the higher event counter.

use crate::error::{Error, Result};
use crate::raid::layout::{Geometry, Level};

const MAGIC: &[u8; 8] = b"STRATRAI";
const VERSION: u32 = 1;
const STATES_OFFSET: usize = 64;

/// A member's state as recorded in superblocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordedState {
    Active,
    Failed,
    Rebuilding,
}

/// The decoded superblock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superblock {
    pub array_id: [u8; 16],
    pub geometry: Geometry,
    pub chunk_bytes: usize,
    pub member_index: usize,
    pub clean: bool,
    pub events: u64,
    pub states: Vec<RecordedState>,
}

impl Superblock {
    /// Encodes into one block of `geometry.block_size` bytes.
    pub fn encode(&self) -> Vec<u8> {
        let g = &self.geometry;
        let mut b = vec![0u8; g.block_size];
        b[0..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(g.block_size as u32).to_le_bytes());
        b[16..32].copy_from_slice(&self.array_id);
        b[32] = g.level.number();
        b[33] = g.members as u8;
        b[34] = self.member_index as u8;
        b[35] = u8::from(self.clean);
        b[36..40].copy_from_slice(&(self.chunk_bytes as u32).to_le_bytes());
        b[40..48].copy_from_slice(&g.capacity_blocks.to_le_bytes());
        b[48..56].copy_from_slice(&g.journal_blocks.to_le_bytes());
        b[56..64].copy_from_slice(&self.events.to_le_bytes());
        for (i, s) in self.states.iter().enumerate() {
            b[STATES_OFFSET + i] = match s {
                RecordedState::Active => 0,
                RecordedState::Failed => 1,
                RecordedState::Rebuilding => 2,
            };
        }
        let crc = crc32fast::hash(&b[..g.block_size - 4]);
        let at = g.block_size - 4;
        b[at..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a block; the error says what is wrong in words fit for a user.
    pub fn decode(b: &[u8]) -> std::result::Result<Superblock, String> {
        if b.len() < 512 || &b[0..8] != MAGIC {
            return Err("no Strata RAID superblock".into());
        }
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let version = u32_at(8);
        if version != VERSION {
            return Err(format!(
                "superblock format version {version} is not supported"
            ));
        }
        let block_size = u32_at(12) as usize;
        if block_size != b.len() {
            return Err(format!(
                "superblock block size {block_size} does not match the {} bytes read",
                b.len()
            ));
        }
        let crc = u32_at(block_size - 4);
        if crc32fast::hash(&b[..block_size - 4]) != crc {
            return Err("superblock checksum mismatch (corrupt)".into());
        }
        let level = Level::from_number(b[32]).map_err(|e| e.to_string())?;
        let members = b[33] as usize;
        let chunk_bytes = u32_at(36) as usize;
        let geometry = Geometry::new(
            level,
            members,
            block_size,
            chunk_bytes,
            u64_at(40),
            u64_at(48),
        )
        .map_err(|e| format!("superblock describes an invalid array: {e}"))?;
        let member_index = b[34] as usize;
        if member_index >= members {
            return Err(format!(
                "member index {member_index} out of range for {members} members"
            ));
        }
        let mut states = Vec::with_capacity(members);
        for i in 0..members {
            states.push(match b[STATES_OFFSET + i] {
                0 => RecordedState::Active,
                1 => RecordedState::Failed,
                2 => RecordedState::Rebuilding,
                other => return Err(format!("unknown member state {other} in superblock")),
            });
        }
        let mut array_id = [0u8; 16];
        array_id.copy_from_slice(&b[16..32]);
        Ok(Superblock {
            array_id,
            geometry,
            chunk_bytes,
            member_index,
            clean: b[35] == 1,
            events: u64_at(56),
            states,
        })
    }
}

/// Reads both copies from a member and returns the valid one with the higher event counter.
pub fn read_best(dev: &dyn crate::BlockDevice) -> std::result::Result<Superblock, String> {
    let bs = dev.block_size();
    let mut buf = vec![0u8; bs * 2];
    if dev.block_count() < 2 {
        return Err("too small to hold a superblock".into());
    }
    dev.read(0, &mut buf)
        .map_err(|e| format!("cannot read superblock: {e}"))?;
    let a = Superblock::decode(&buf[..bs]);
    let b = Superblock::decode(&buf[bs..]);
    match (a, b) {
        (Ok(a), Ok(b)) => Ok(if b.events > a.events { b } else { a }),
        (Ok(a), Err(_)) => Ok(a),
        (Err(_), Ok(b)) => Ok(b),
        (Err(e), Err(_)) => Err(e),
    }
}

/// Writes both copies to a member, syncing after each so a crash tears at most one.
pub fn write_both(dev: &dyn crate::BlockDevice, sb: &Superblock) -> Result<()> {
    let block = sb.encode();
    if block.len() != dev.block_size() {
        return Err(Error::Invalid(format!(
            "member block size {} differs from the array's {}",
            dev.block_size(),
            block.len()
        )));
    }
    dev.write(0, &block)?;
    dev.sync()?;
    dev.write(1, &block)?;
    dev.sync()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Superblock {
        Superblock {
            array_id: [7; 16],
            geometry: Geometry::new(Level::Raid6, 5, 4096, 65536, 12345, 64).unwrap(),
            chunk_bytes: 65536,
            member_index: 3,
            clean: true,
            events: 42,
            states: vec![
                RecordedState::Active,
                RecordedState::Failed,
                RecordedState::Active,
                RecordedState::Rebuilding,
                RecordedState::Active,
            ],
        }
    }

    #[test]
    fn round_trip() {
        let sb = sample();
        assert_eq!(Superblock::decode(&sb.encode()).unwrap(), sb);
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let enc = sample().encode();
        for at in [0, 9, 20, 33, 40, 57, 64, 100, 4095] {
            let mut bad = enc.clone();
            bad[at] ^= 0x10;
            assert!(
                Superblock::decode(&bad).is_err(),
                "flip at {at} not detected"
            );
        }
    }
}
