//! Array geometry: RAID levels, member layout, and the map from array blocks to member blocks.
//!
//! MEMBER LAYOUT (in blocks of the array's block size B):
//!
//! | blocks                         | contents                                              |
//! |--------------------------------|-------------------------------------------------------|
//! | 0, 1                           | superblock, two copies (`superblock.rs`)              |
//! | 2 .. 2+J                       | journal region (`journal.rs`)                         |
//! | csum_start .. +C               | per-block CRC32 of every data-area block              |
//! | data_start .. +stripes*K       | data area: chunks of K blocks, one per stripe         |
//!
//! DATA MAP. The array is cut into chunks of K blocks. Chunk `c` belongs to stripe `s = c / D` at
//! data slot `d = c % D`, where D is the number of data chunks per stripe (n for RAID-0, 1 for
//! RAID-1, n/2 for RAID-10, n-1 for RAID-5, n-2 for RAID-6). Stripe `s` occupies member chunk `s`
//! on every member, so block `o` of chunk `c` is member block `row = s*K + o` of the data area on
//! the member(s) holding slot `d`. A *row* is that set of same-numbered blocks across the members:
//! the unit of parity.
//!
//! - RAID-0: slot d on member d.
//! - RAID-1: slot 0 on every member.
//! - RAID-10: slot d on members 2d and 2d+1 (striped mirrors).
//! - RAID-5: parity P on member `n-1 - s%n` (rotating, left-symmetric); slot d on `(P+1+d) % n`.
//! - RAID-6: P on `n-1 - s%n`, Q on `(P+1) % n`, slot d on `(P+2+d) % n`.
//!
//! Array blocks past the capacity in the last stripe are never addressed and stay zero, which is
//! consistent parity.

use crate::error::{Error, Result};

/// Blocks before the journal: two superblock copies.
pub const SUPERBLOCK_COPIES: u64 = 2;
/// Most members an array can have (the journal keeps participants in a 64-bit mask).
pub const MAX_MEMBERS: usize = 64;

/// A RAID level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Raid0,
    Raid1,
    Raid5,
    Raid6,
    Raid10,
}

impl Level {
    /// The level from its usual number (0, 1, 5, 6, 10).
    pub fn from_number(n: u8) -> Result<Level> {
        match n {
            0 => Ok(Level::Raid0),
            1 => Ok(Level::Raid1),
            5 => Ok(Level::Raid5),
            6 => Ok(Level::Raid6),
            10 => Ok(Level::Raid10),
            _ => Err(Error::Invalid(format!(
                "RAID level {n} is not supported (use 0, 1, 5, 6 or 10)"
            ))),
        }
    }

    /// The usual number of the level.
    pub fn number(self) -> u8 {
        match self {
            Level::Raid0 => 0,
            Level::Raid1 => 1,
            Level::Raid5 => 5,
            Level::Raid6 => 6,
            Level::Raid10 => 10,
        }
    }

    /// Checks that `n` members make a valid array of this level.
    pub fn check_members(self, n: usize) -> Result<()> {
        let min = match self {
            Level::Raid0 => 1,
            Level::Raid1 => 2,
            Level::Raid5 => 3,
            Level::Raid6 => 4,
            Level::Raid10 => 4,
        };
        if n < min || n > MAX_MEMBERS {
            return Err(Error::Invalid(format!(
                "RAID-{} needs between {min} and {MAX_MEMBERS} members, got {n}",
                self.number()
            )));
        }
        if self == Level::Raid10 && !n.is_multiple_of(2) {
            return Err(Error::Invalid(format!(
                "RAID-10 mirrors members in pairs, so it needs an even number of members, got {n}"
            )));
        }
        Ok(())
    }

    /// Data chunks per stripe with `n` members.
    pub fn data_slots(self, n: usize) -> usize {
        match self {
            Level::Raid0 => n,
            Level::Raid1 => 1,
            Level::Raid10 => n / 2,
            Level::Raid5 => n - 1,
            Level::Raid6 => n - 2,
        }
    }

    /// Parity blocks per row (0 for mirrors and stripes).
    pub fn parity_count(self) -> usize {
        match self {
            Level::Raid5 => 1,
            Level::Raid6 => 2,
            _ => 0,
        }
    }

    /// What the level survives, in words, for error messages.
    pub fn tolerance_text(self, n: usize) -> String {
        match self {
            Level::Raid0 => "no member loss".into(),
            Level::Raid1 => format!("the loss of up to {} of {n} members", n - 1),
            Level::Raid5 => "the loss of one member".into(),
            Level::Raid6 => "the loss of any two members".into(),
            Level::Raid10 => "the loss of one member of each mirror pair".into(),
        }
    }

    /// True if the array still has every block with `unavailable` members gone.
    pub fn survives(self, n: usize, unavailable: &[usize]) -> bool {
        match self {
            Level::Raid0 => unavailable.is_empty(),
            Level::Raid1 => unavailable.len() < n,
            Level::Raid5 => unavailable.len() <= 1,
            Level::Raid6 => unavailable.len() <= 2,
            Level::Raid10 => (0..n / 2).all(|pair| {
                !(unavailable.contains(&(2 * pair)) && unavailable.contains(&(2 * pair + 1)))
            }),
        }
    }
}

/// Where an array block lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Stripe number.
    pub stripe: u64,
    /// Data slot within the stripe.
    pub slot: usize,
    /// Row number: block index within the data area of every member.
    pub row: u64,
}

/// Everything that follows from the parameters fixed at create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub level: Level,
    pub members: usize,
    pub block_size: usize,
    /// Blocks per chunk (K).
    pub chunk_blocks: u64,
    /// Array capacity in blocks.
    pub capacity_blocks: u64,
    /// Journal region size per member, in blocks (J).
    pub journal_blocks: u64,
    /// Stripes in the array.
    pub stripes: u64,
    /// CRC32 entries per checksum block.
    pub crcs_per_block: u64,
}

impl Geometry {
    /// Validates the parameters and derives the layout.
    pub fn new(
        level: Level,
        members: usize,
        block_size: usize,
        chunk_bytes: usize,
        capacity_blocks: u64,
        journal_blocks: u64,
    ) -> Result<Geometry> {
        level.check_members(members)?;
        if block_size < 512 || !block_size.is_power_of_two() || block_size > 1 << 20 {
            return Err(Error::Invalid(format!(
                "block size {block_size} must be a power of two between 512 and 1 MiB"
            )));
        }
        if chunk_bytes < block_size
            || !chunk_bytes.is_multiple_of(block_size)
            || chunk_bytes > 64 << 20
        {
            return Err(Error::Invalid(format!(
                "chunk size {chunk_bytes} must be a multiple of the block size {block_size}, at most 64 MiB"
            )));
        }
        if capacity_blocks == 0 {
            return Err(Error::Invalid(
                "array capacity must be at least one block".into(),
            ));
        }
        let chunk_blocks = (chunk_bytes / block_size) as u64;
        // A journal record must hold at least one full row of every member plus its metadata.
        let min_journal = 8;
        if journal_blocks < min_journal {
            return Err(Error::Invalid(format!(
                "journal of {journal_blocks} blocks is too small (at least {min_journal})"
            )));
        }
        let per_stripe = chunk_blocks * level.data_slots(members) as u64;
        let stripes = capacity_blocks.div_ceil(per_stripe);
        Ok(Geometry {
            level,
            members,
            block_size,
            chunk_blocks,
            capacity_blocks,
            journal_blocks,
            stripes,
            crcs_per_block: (block_size as u64 - 4) / 4,
        })
    }

    /// Data chunks per stripe.
    pub fn data_slots(&self) -> usize {
        self.level.data_slots(self.members)
    }

    /// Rows in the data area of each member.
    pub fn rows(&self) -> u64 {
        self.stripes * self.chunk_blocks
    }

    /// First block of the journal region.
    pub fn journal_start(&self) -> u64 {
        SUPERBLOCK_COPIES
    }

    /// First block of the checksum region.
    pub fn csum_start(&self) -> u64 {
        SUPERBLOCK_COPIES + self.journal_blocks
    }

    /// Blocks in the checksum region.
    pub fn csum_blocks(&self) -> u64 {
        self.rows().div_ceil(self.crcs_per_block)
    }

    /// First block of the data area.
    pub fn data_start(&self) -> u64 {
        self.csum_start() + self.csum_blocks()
    }

    /// Blocks every member device must have.
    pub fn member_blocks(&self) -> u64 {
        self.data_start() + self.rows()
    }

    /// Where array block `block` lives.
    pub fn locate(&self, block: u64) -> Location {
        let k = self.chunk_blocks;
        let chunk = block / k;
        let d = self.data_slots() as u64;
        let stripe = chunk / d;
        Location {
            stripe,
            slot: (chunk % d) as usize,
            row: stripe * k + block % k,
        }
    }

    /// The array block at `slot` of `row`, or None past the capacity.
    pub fn block_at(&self, row: u64, slot: usize) -> Option<u64> {
        let k = self.chunk_blocks;
        let stripe = row / k;
        let block = (stripe * self.data_slots() as u64 + slot as u64) * k + row % k;
        (block < self.capacity_blocks).then_some(block)
    }

    /// The members holding data slot `slot` of `stripe` (one, or every mirror).
    pub fn slot_members(&self, stripe: u64, slot: usize) -> Vec<usize> {
        let n = self.members;
        match self.level {
            Level::Raid0 => vec![slot],
            Level::Raid1 => (0..n).collect(),
            Level::Raid10 => vec![2 * slot, 2 * slot + 1],
            Level::Raid5 => vec![(self.p_member(stripe) + 1 + slot) % n],
            Level::Raid6 => vec![(self.p_member(stripe) + 2 + slot) % n],
        }
    }

    /// The member holding P for `stripe` (RAID-5 and RAID-6).
    pub fn p_member(&self, stripe: u64) -> usize {
        self.members - 1 - (stripe % self.members as u64) as usize
    }

    /// The member holding Q for `stripe` (RAID-6).
    pub fn q_member(&self, stripe: u64) -> usize {
        (self.p_member(stripe) + 1) % self.members
    }

    /// For parity levels: the member of each position of a row in logical order
    /// (data slots 0..D, then P, then Q for RAID-6).
    pub fn row_members(&self, stripe: u64) -> Vec<usize> {
        let mut out: Vec<usize> = (0..self.data_slots())
            .map(|d| self.slot_members(stripe, d)[0])
            .collect();
        if self.level.parity_count() >= 1 {
            out.push(self.p_member(stripe));
        }
        if self.level.parity_count() == 2 {
            out.push(self.q_member(stripe));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo(level: Level, n: usize) -> Geometry {
        Geometry::new(level, n, 512, 2048, 1000, 16).unwrap()
    }

    #[test]
    fn every_block_maps_to_a_distinct_member_block() {
        for (level, n) in [
            (Level::Raid0, 3),
            (Level::Raid1, 2),
            (Level::Raid5, 4),
            (Level::Raid6, 5),
            (Level::Raid10, 4),
        ] {
            let g = geo(level, n);
            let mut seen = std::collections::HashSet::new();
            for b in 0..g.capacity_blocks {
                let loc = g.locate(b);
                assert_eq!(g.block_at(loc.row, loc.slot), Some(b));
                assert!(loc.row < g.rows());
                for m in g.slot_members(loc.stripe, loc.slot) {
                    assert!(seen.insert((m, loc.row)), "{level:?} block {b} collides");
                }
            }
        }
    }

    #[test]
    fn parity_rotates_and_never_shares_a_member_with_data() {
        let g = geo(Level::Raid6, 5);
        let mut p_seen = std::collections::HashSet::new();
        for s in 0..5 {
            let row = g.row_members(s);
            let mut sorted = row.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 5, "stripe {s}: {row:?}");
            p_seen.insert(g.p_member(s));
        }
        assert_eq!(p_seen.len(), 5);
    }

    #[test]
    fn tolerance() {
        assert!(!Level::Raid0.survives(3, &[1]));
        assert!(Level::Raid5.survives(4, &[2]));
        assert!(!Level::Raid5.survives(4, &[0, 2]));
        assert!(Level::Raid6.survives(5, &[0, 4]));
        assert!(!Level::Raid6.survives(5, &[0, 1, 4]));
        assert!(Level::Raid10.survives(4, &[0, 3]));
        assert!(!Level::Raid10.survives(4, &[2, 3]));
        assert!(Level::Raid1.survives(3, &[0, 1]));
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(Geometry::new(Level::Raid5, 2, 4096, 65536, 10, 64).is_err());
        assert!(Geometry::new(Level::Raid10, 5, 4096, 65536, 10, 64).is_err());
        assert!(Geometry::new(Level::Raid0, 2, 4096, 1000, 10, 64).is_err());
        assert!(Geometry::new(Level::Raid0, 2, 4096, 4096, 0, 64).is_err());
    }
}
