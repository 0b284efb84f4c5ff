//! RAID 0, 1, 5, 6 and 10 as a `BlockDevice` built from member `BlockDevice`s.
//!
//! An array is itself a block device, so the engine can sit on a RAID-6 of five files without
//! knowing it. The pieces, bottom up:
//!
//! - `layout`: levels, the member layout (superblocks, journal, checksums, data) and the map from
//!   array blocks to member blocks, with rotating parity for RAID-5 and RAID-6.
//! - `parity`: XOR parity P and Reed-Solomon Q over GF(2^8), and reconstruction of up to two lost
//!   blocks of a row.
//! - `superblock`: identity and state on every member; the event counter that tells a stale member
//!   from a current one.
//! - `journal`: the write-ahead stripe journal that closes the write hole.
//! - `array`: the array itself: write-back cache, transactions, degraded reads and writes,
//!   assembly, rebuild onto a replacement, scrub.
//! - `files`: member files on disk, as `strata raid` uses them.
//!
//! INVARIANTS (tests cite them by number):
//!
//! 1. Every row's parity (or every mirror copy) matches its data once a transaction is complete;
//!    the journal makes each transaction all-or-nothing across members.
//! 2. Every data-area block of an active member has its CRC32 in that member's checksum region,
//!    written in the same transaction as the block, so a mismatch is corruption, never a torn
//!    update, and names the member that returned bad data.
//! 3. A member whose event counter is below the array's missed a state change and is never read.
//! 4. Within the level's tolerance every read returns the last data written; beyond it a read
//!    returns `Error::DataLost` or assembly fails with `Error::TooManyFailures`; never wrong bytes.
//!
//! Left out: reshaping (changing level or member count), growing an array, hot spares.

mod array;
mod files;
mod journal;
mod layout;
pub mod parity;
mod superblock;

pub use array::{
    ArrayStatus, MemberReport, MemberSlot, MemberState, ProblemKind, RaidArray, RaidConfig,
    ScrubProblem, ScrubReport,
};
pub use files::{
    assemble_files, create_files, inspect_files, open_member_files, replace_with_file,
};
pub use layout::{Geometry, Level, MAX_MEMBERS};
