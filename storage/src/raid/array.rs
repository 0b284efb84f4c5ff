//! `RaidArray`: the array as a `BlockDevice`, with its write-back cache, transactions, degraded
//! reads and writes, assembly, rebuild and scrub.
//!
//! LIFE OF A WRITE. `write` copies blocks into the write-back cache and returns. `sync` (or a full
//! cache) flushes: dirty blocks are grouped by row; for parity levels the rest of each row is read
//! (reconstructing through a lost member if need be; a full-row write reads nothing) and P (and Q)
//! computed; the member writes of consecutive rows are packed into journal transactions
//! (`journal.rs`), each journaled, synced, written in place and synced again. Only then does `sync`
//! return, so an acknowledged write survives a crash and the loss of members within tolerance.
//!
//! LIFE OF A READ. Dirty blocks come from the cache. Otherwise the block is read from a member that
//! holds it and checked against that member's CRC table; on an I/O error the member is marked
//! failed, on a CRC mismatch the block is treated as lost; either way the block is rebuilt from a
//! mirror or from the rest of its row and parity. More losses in a row than the level tolerates
//! give `Error::DataLost`, never bytes that might be wrong (invariant 4 of `raid/mod.rs`).
//!
//! MEMBER FAILURE. A member that fails an I/O is marked failed in every other member's superblock
//! (the event counter rises), and the array carries on degraded while within tolerance. Past it,
//! the array stops accepting writes (`broken`) until reassembled.
//!
//! CONCURRENCY. One mutex guards all array state; member I/O happens under it. Simple and correct
//! first: the engine above has its own buffer pool, so the array sees page-sized I/O at checkpoint
//! and miss time, not on every row access.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::device::{check_range, BlockDevice};
use crate::error::{Error, Result};
use crate::raid::journal;
use crate::raid::layout::{Geometry, Level};
use crate::raid::parity;
use crate::raid::superblock::{self, RecordedState, Superblock};

/// Parameters of a new array.
#[derive(Clone, Debug)]
pub struct RaidConfig {
    pub level: Level,
    /// Usable capacity in bytes; a multiple of the block size.
    pub capacity_bytes: u64,
    /// Stripe unit: consecutive bytes on one member (default 64 KiB).
    pub chunk_bytes: usize,
    /// Block size of the array and of its members (default 4 KiB).
    pub block_size: usize,
    /// Journal region per member, in blocks (default: 1024, or 4 chunks if larger).
    pub journal_blocks: u64,
}

impl RaidConfig {
    /// Defaults for `level` with `capacity_bytes` of usable space.
    pub fn new(level: Level, capacity_bytes: u64) -> RaidConfig {
        RaidConfig {
            level,
            capacity_bytes,
            chunk_bytes: 64 << 10,
            block_size: 4096,
            journal_blocks: 1024,
        }
    }

    fn geometry(&self, members: usize) -> Result<Geometry> {
        if !self.capacity_bytes.is_multiple_of(self.block_size as u64) {
            return Err(Error::Invalid(format!(
                "capacity {} is not a multiple of the block size {}",
                self.capacity_bytes, self.block_size
            )));
        }
        let chunk_blocks = (self.chunk_bytes / self.block_size.max(1)) as u64;
        Geometry::new(
            self.level,
            members,
            self.block_size,
            self.chunk_bytes,
            self.capacity_bytes / self.block_size as u64,
            self.journal_blocks.max(4 * chunk_blocks),
        )
    }
}

/// A member given to assembly: an open device, or the reason there is none.
pub enum MemberSlot {
    Present {
        name: String,
        device: Arc<dyn BlockDevice>,
    },
    Absent {
        name: String,
        state: MemberState,
    },
}

impl MemberSlot {
    fn name(&self) -> &str {
        match self {
            MemberSlot::Present { name, .. } | MemberSlot::Absent { name, .. } => name,
        }
    }
}

/// A member's state as assembly and status see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// In service.
    Active,
    /// Being filled by `replace_member`; not read until finished.
    Rebuilding,
    /// Out of service: failed an I/O, marked failed, or unusable (truncated, unreadable).
    Failed(String),
    /// Missed state changes (lower event counter): its contents are out of date.
    Stale { events: u64, array_events: u64 },
    /// Not there at all.
    Missing(String),
    /// Not a member of this array (no or corrupt superblock, another array, another position).
    Foreign(String),
}

impl MemberState {
    fn is_active(&self) -> bool {
        matches!(self, MemberState::Active)
    }

    fn is_writable(&self) -> bool {
        matches!(self, MemberState::Active | MemberState::Rebuilding)
    }

    fn recorded(&self) -> RecordedState {
        match self {
            MemberState::Active => RecordedState::Active,
            MemberState::Rebuilding => RecordedState::Rebuilding,
            _ => RecordedState::Failed,
        }
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemberState::Active => write!(f, "active"),
            MemberState::Rebuilding => write!(f, "rebuilding (incomplete; run replace again)"),
            MemberState::Failed(why) => write!(f, "failed ({why})"),
            MemberState::Stale {
                events,
                array_events,
            } => write!(
                f,
                "stale (event {events}, array at {array_events}; needs rebuild)"
            ),
            MemberState::Missing(why) => write!(f, "missing ({why})"),
            MemberState::Foreign(why) => write!(f, "foreign ({why})"),
        }
    }
}

/// One member in a status report.
#[derive(Clone, Debug)]
pub struct MemberReport {
    pub index: usize,
    pub name: String,
    pub state: MemberState,
}

/// What `status` shows.
#[derive(Clone, Debug)]
pub struct ArrayStatus {
    pub level: Level,
    pub capacity_bytes: u64,
    pub chunk_bytes: usize,
    pub block_size: usize,
    /// False if the array was not closed cleanly (recovery runs at the next open).
    pub clean: bool,
    pub events: u64,
    pub members: Vec<MemberReport>,
    /// True when a member is not active but the array still has all its data.
    pub degraded: bool,
    /// False when too many members are gone for the array to run.
    pub runnable: bool,
}

/// The kind of problem scrub found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// The block's contents do not match its recorded CRC32.
    ChecksumMismatch,
    /// The member failed to read the block.
    ReadError,
    /// Parity disagrees with data that all checks out (the parity block is wrong).
    ParityMismatch,
    /// A checksum block of the member was corrupt; its CRCs were recomputed from the data.
    ChecksumBlockCorrupt,
    /// More blocks of the row are bad than the level can rebuild.
    Unrecoverable,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProblemKind::ChecksumMismatch => "checksum mismatch",
            ProblemKind::ReadError => "read error",
            ProblemKind::ParityMismatch => "parity mismatch",
            ProblemKind::ChecksumBlockCorrupt => "corrupt checksum block",
            ProblemKind::Unrecoverable => "unrecoverable",
        })
    }
}

/// One problem scrub found.
#[derive(Clone, Debug)]
pub struct ScrubProblem {
    pub member: usize,
    /// Block number on the member device.
    pub member_block: u64,
    pub kind: ProblemKind,
    pub repaired: bool,
}

/// The result of a scrub.
#[derive(Clone, Debug, Default)]
pub struct ScrubReport {
    pub rows_checked: u64,
    pub problems: Vec<ScrubProblem>,
}

impl ScrubReport {
    /// Problems repaired.
    pub fn repaired(&self) -> usize {
        self.problems.iter().filter(|p| p.repaired).count()
    }

    /// Problems left.
    pub fn unrepaired(&self) -> usize {
        self.problems.len() - self.repaired()
    }
}

/// Dirty blocks of one row: (data slot, contents).
type RowSlots = Vec<(usize, Box<[u8]>)>;

struct Member {
    name: String,
    device: Option<Arc<dyn BlockDevice>>,
    state: MemberState,
    /// CRC32 of each data-area row of this member.
    crcs: Vec<u32>,
    /// The event counter on this member's own superblock.
    disk_events: u64,
}

struct Inner {
    members: Vec<Member>,
    /// The highest event counter on any member (that of the last superblock update).
    events: u64,
    /// The member states of the last complete superblock update.
    recorded: Vec<RecordedState>,
    cache: BTreeMap<u64, Box<[u8]>>,
    next_seq: u64,
    /// Set when the array lost more than it tolerates, or after a failed flush.
    broken: Option<String>,
    closed: bool,
    /// Problems repaired while opening (corrupt checksum blocks), reported by the next scrub.
    repaired_at_open: Vec<ScrubProblem>,
}

/// A RAID array of member block devices.
pub struct RaidArray {
    geo: Geometry,
    array_id: [u8; 16],
    chunk_bytes: usize,
    cache_limit: usize,
    inner: Mutex<Inner>,
}

/// The member writes of one or more rows, flushed as one journal transaction.
struct Txn {
    /// Per member: (member block, contents).
    writes: Vec<Vec<(u64, Vec<u8>)>>,
    /// Per member: checksum blocks to rewrite.
    csum_dirty: Vec<BTreeSet<u64>>,
}

impl Txn {
    fn new(members: usize) -> Txn {
        Txn {
            writes: vec![Vec::new(); members],
            csum_dirty: vec![BTreeSet::new(); members],
        }
    }

    fn is_empty(&self) -> bool {
        self.writes.iter().all(Vec::is_empty) && self.csum_dirty.iter().all(BTreeSet::is_empty)
    }
}

impl RaidArray {
    /// Creates a new array on `devices` (member i is `devices[i]`), which must read as zeros (new
    /// files or memory). Devices smaller than the member size are grown. The array is open.
    pub fn create(config: &RaidConfig, devices: Vec<Arc<dyn BlockDevice>>) -> Result<RaidArray> {
        let geo = config.geometry(devices.len())?;
        for d in &devices {
            if d.block_size() != geo.block_size {
                return Err(Error::Invalid(format!(
                    "member {} has block size {}, the array uses {}",
                    d.name(),
                    d.block_size(),
                    geo.block_size
                )));
            }
            if d.block_count() < geo.member_blocks() {
                d.set_block_count(geo.member_blocks())?;
            }
        }
        let zero_crc = crc32fast::hash(&vec![0u8; geo.block_size]);
        let members = devices
            .into_iter()
            .enumerate()
            .map(|(i, device)| Member {
                name: format!("member {i} ({})", device.name()),
                device: Some(device),
                state: MemberState::Active,
                crcs: vec![zero_crc; geo.rows() as usize],
                disk_events: 0,
            })
            .collect();
        let array = RaidArray::new(geo, rand::random(), config.chunk_bytes, members, 0);
        {
            let mut inner = array.lock();
            for i in 0..array.geo.members {
                array.init_member_metadata(&inner, i)?;
            }
            array.write_superblocks(&mut inner, false)?;
        }
        Ok(array)
    }

    fn new(
        geo: Geometry,
        array_id: [u8; 16],
        chunk_bytes: usize,
        members: Vec<Member>,
        events: u64,
    ) -> RaidArray {
        // The cache holds about half a journal's worth of rows, so a flush is one or two
        // transactions.
        let cache_limit = ((geo.journal_blocks as usize / 2) * geo.data_slots()).max(64);
        RaidArray {
            array_id,
            chunk_bytes,
            cache_limit,
            inner: Mutex::new(Inner {
                recorded: members.iter().map(|m| m.state.recorded()).collect(),
                members,
                events,
                cache: BTreeMap::new(),
                next_seq: 1,
                broken: None,
                closed: false,
                repaired_at_open: Vec::new(),
            }),
            geo,
        }
    }

    /// After a failed flush (or losing more members than it tolerates) the array refuses all I/O
    /// until it is reassembled: the write-back cache is gone, so reads could be out of date
    /// (contract rule 5 of `device.rs`).
    fn check_running(&self, inner: &Inner) -> Result<()> {
        match &inner.broken {
            Some(why) => Err(Error::PreviousIo {
                device: self.name(),
                reason: why.clone(),
            }),
            None => Ok(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .expect("invariant: array lock not poisoned")
    }

    /// The array's geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// Writes a clean journal head and the checksum region of member `i` from its CRC table.
    fn init_member_metadata(&self, inner: &Inner, i: usize) -> Result<()> {
        let member = &inner.members[i];
        let dev = member
            .device
            .as_ref()
            .expect("invariant: member has a device");
        dev.write(self.geo.journal_start(), &vec![0u8; self.geo.block_size])?;
        let mut region = Vec::with_capacity(self.geo.csum_blocks() as usize * self.geo.block_size);
        for cb in 0..self.geo.csum_blocks() {
            region.extend_from_slice(&self.encode_csum_block(&member.crcs, cb));
        }
        dev.write(self.geo.csum_start(), &region)?;
        dev.sync()
    }

    fn encode_csum_block(&self, crcs: &[u32], cb: u64) -> Vec<u8> {
        let bs = self.geo.block_size;
        let per = self.geo.crcs_per_block as usize;
        let mut out = vec![0u8; bs];
        let first = cb as usize * per;
        for (j, crc) in crcs.iter().skip(first).take(per).enumerate() {
            out[4 * j..4 * j + 4].copy_from_slice(&crc.to_le_bytes());
        }
        let crc = crc32fast::hash(&out[..bs - 4]);
        out[bs - 4..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Writes superblocks with a new event counter to every writable member; members that fail
    /// are marked failed.
    ///
    /// Two phases keep every writable member within one event of the newest (so a member two or
    /// more behind really missed an update, see `examine`): first members still behind get the
    /// current counter and state table, then everyone gets the new ones. A crash in either phase
    /// leaves counters one apart at most.
    fn write_superblocks(&self, inner: &mut Inner, clean: bool) -> Result<()> {
        loop {
            let current = inner.events;
            let recorded = inner.recorded.clone();
            let behind: Vec<usize> = (0..self.geo.members)
                .filter(|&i| {
                    inner.members[i].state.is_writable() && inner.members[i].disk_events < current
                })
                .collect();
            if let Some((i, e)) =
                self.write_superblock_to(inner, &behind, current, &recorded, false)
            {
                inner.members[i].state = MemberState::Failed(format!("superblock write: {e}"));
                continue;
            }
            let next = current + 1;
            let states: Vec<RecordedState> =
                inner.members.iter().map(|m| m.state.recorded()).collect();
            let all: Vec<usize> = (0..self.geo.members)
                .filter(|&i| inner.members[i].state.is_writable())
                .collect();
            inner.events = next;
            match self.write_superblock_to(inner, &all, next, &states, clean) {
                None => {
                    inner.recorded = states;
                    break;
                }
                Some((i, e)) => {
                    inner.members[i].state = MemberState::Failed(format!("superblock write: {e}"));
                }
            }
        }
        self.check_tolerance(inner)
    }

    /// Writes one superblock version to `members`; returns the first that failed.
    fn write_superblock_to(
        &self,
        inner: &mut Inner,
        members: &[usize],
        events: u64,
        states: &[RecordedState],
        clean: bool,
    ) -> Option<(usize, Error)> {
        for &i in members {
            let sb = Superblock {
                array_id: self.array_id,
                geometry: self.geo.clone(),
                chunk_bytes: self.chunk_bytes,
                member_index: i,
                clean,
                events,
                states: states.to_vec(),
            };
            let dev = self.device(inner, i);
            if let Err(e) = superblock::write_both(dev.as_ref(), &sb) {
                return Some((i, e));
            }
            inner.members[i].disk_events = events;
        }
        None
    }

    fn unavailable(&self, inner: &Inner) -> Vec<usize> {
        (0..self.geo.members)
            .filter(|&i| !inner.members[i].state.is_active())
            .collect()
    }

    fn check_tolerance(&self, inner: &mut Inner) -> Result<()> {
        let gone = self.unavailable(inner);
        if self.geo.level.survives(self.geo.members, &gone) {
            return Ok(());
        }
        let err = too_many_failures(
            &self.geo,
            &inner
                .members
                .iter()
                .map(|m| (m.name.clone(), m.state.clone()))
                .collect::<Vec<_>>(),
        );
        inner.broken = Some(err.to_string());
        Err(err)
    }

    /// Marks member `i` failed after an I/O error and records it in the other superblocks.
    fn fail_member_locked(&self, inner: &mut Inner, i: usize, why: String) {
        if !inner.members[i].state.is_writable() {
            return;
        }
        inner.members[i].state = MemberState::Failed(why);
        // Errors here mean more members failed; check_tolerance inside records it.
        let _ = self.write_superblocks(inner, false);
    }

    fn device(&self, inner: &Inner, i: usize) -> Arc<dyn BlockDevice> {
        inner.members[i]
            .device
            .clone()
            .expect("invariant: active member has a device")
    }

    /// Reads data-area row `row` of member `i` and checks its CRC. `Ok(None)` on a CRC mismatch;
    /// an I/O error fails the member.
    fn read_member_row(&self, inner: &mut Inner, i: usize, row: u64) -> Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; self.geo.block_size];
        let dev = self.device(inner, i);
        match dev.read(self.geo.data_start() + row, &mut buf) {
            Ok(()) => {
                Ok((crc32fast::hash(&buf) == inner.members[i].crcs[row as usize]).then_some(buf))
            }
            Err(e) => {
                self.fail_member_locked(inner, i, format!("read error: {e}"));
                Err(e)
            }
        }
    }

    /// Reads every position of a parity row (data slots, P, Q), rebuilding lost ones.
    /// Returns the row and the positions that were lost (failed, unreadable, bad CRC, or the
    /// `exclude`d member, whose block is rebuilt from the others rather than read).
    fn read_parity_row(
        &self,
        inner: &mut Inner,
        stripe: u64,
        row: u64,
        exclude: Option<usize>,
    ) -> Result<(Vec<Vec<u8>>, Vec<usize>)> {
        let positions = self.geo.row_members(stripe);
        let mut blocks = Vec::with_capacity(positions.len());
        let mut lost = Vec::new();
        for (pos, &m) in positions.iter().enumerate() {
            let got = if inner.members[m].state.is_active() && exclude != Some(m) {
                self.read_member_row(inner, m, row).ok().flatten()
            } else {
                None
            };
            match got {
                Some(b) => blocks.push(b),
                None => {
                    lost.push(pos);
                    blocks.push(vec![0u8; self.geo.block_size]);
                }
            }
        }
        if lost.len() > self.geo.level.parity_count() {
            let first_block = (0..self.geo.data_slots())
                .find_map(|d| self.geo.block_at(row, d))
                .unwrap_or(0);
            return Err(Error::DataLost {
                block: first_block,
                reason: format!(
                    "row {row} lost {} blocks (members {}), more than RAID-{} can rebuild",
                    lost.len(),
                    lost.iter()
                        .map(|&p| positions[p].to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.geo.level.number()
                ),
            });
        }
        if !lost.is_empty() {
            let mut refs: Vec<&mut [u8]> = blocks.iter_mut().map(|b| b.as_mut_slice()).collect();
            parity::reconstruct(
                &mut refs,
                self.geo.data_slots(),
                self.geo.level.parity_count() == 2,
                &lost,
            )
            .map_err(|e| {
                Error::Invalid(format!("invariant: reconstruction within tolerance: {e}"))
            })?;
        }
        Ok((blocks, lost))
    }

    /// Reads one array block from the members (not the cache).
    fn read_block_uncached(&self, inner: &mut Inner, block: u64) -> Result<Vec<u8>> {
        let loc = self.geo.locate(block);
        match self.geo.level {
            Level::Raid5 | Level::Raid6 => {
                let m = self.geo.slot_members(loc.stripe, loc.slot)[0];
                if inner.members[m].state.is_active() {
                    if let Ok(Some(b)) = self.read_member_row(inner, m, loc.row) {
                        return Ok(b);
                    }
                }
                let (mut blocks, _) = self.read_parity_row(inner, loc.stripe, loc.row, None)?;
                Ok(blocks.swap_remove(loc.slot))
            }
            Level::Raid0 | Level::Raid1 | Level::Raid10 => {
                let holders = self.geo.slot_members(loc.stripe, loc.slot);
                let mut why = Vec::new();
                for &m in &holders {
                    if !inner.members[m].state.is_active() {
                        why.push(format!("member {m} {}", inner.members[m].state));
                        continue;
                    }
                    match self.read_member_row(inner, m, loc.row) {
                        Ok(Some(b)) => return Ok(b),
                        Ok(None) => {
                            why.push(format!("member {m} returned data failing its checksum"))
                        }
                        Err(e) => why.push(format!("member {m}: {e}")),
                    }
                }
                Err(Error::DataLost {
                    block,
                    reason: why.join("; "),
                })
            }
        }
    }

    /// Fast path for a run of blocks inside one chunk: one member read, CRCs checked per block;
    /// blocks that fail fall back to `read_block_uncached`.
    fn read_run(&self, inner: &mut Inner, block: u64, out: &mut [u8]) -> Result<()> {
        let bs = self.geo.block_size;
        let n = out.len() / bs;
        let loc = self.geo.locate(block);
        let holder = self
            .geo
            .slot_members(loc.stripe, loc.slot)
            .into_iter()
            .find(|&m| inner.members[m].state.is_active());
        let mut good = vec![false; n];
        if let Some(m) = holder {
            let dev = self.device(inner, m);
            match dev.read(self.geo.data_start() + loc.row, out) {
                Ok(()) => {
                    for (j, g) in good.iter_mut().enumerate() {
                        let crc = crc32fast::hash(&out[j * bs..(j + 1) * bs]);
                        *g = crc == inner.members[m].crcs[loc.row as usize + j];
                    }
                }
                Err(e) => self.fail_member_locked(inner, m, format!("read error: {e}")),
            }
        }
        for (j, g) in good.iter().enumerate() {
            if !g {
                let b = self.read_block_uncached(inner, block + j as u64)?;
                out[j * bs..(j + 1) * bs].copy_from_slice(&b);
            }
        }
        Ok(())
    }

    /// The member writes that put `dirty` (slot, contents) into `row`.
    fn row_writes(
        &self,
        inner: &mut Inner,
        row: u64,
        dirty: Vec<(usize, Box<[u8]>)>,
    ) -> Result<Vec<(usize, Vec<u8>)>> {
        let stripe = row / self.geo.chunk_blocks;
        let mut out = Vec::new();
        match self.geo.level {
            Level::Raid0 | Level::Raid1 | Level::Raid10 => {
                for (slot, data) in dirty {
                    let holders: Vec<usize> = self
                        .geo
                        .slot_members(stripe, slot)
                        .into_iter()
                        .filter(|&m| inner.members[m].state.is_writable())
                        .collect();
                    if let Some((&last, rest)) = holders.split_last() {
                        out.extend(rest.iter().map(|&m| (m, data.to_vec())));
                        out.push((last, data.into_vec()));
                    }
                }
            }
            Level::Raid5 | Level::Raid6 => {
                let d = self.geo.data_slots();
                let mut row_data: Vec<Option<Vec<u8>>> = vec![None; d];
                for (slot, data) in dirty {
                    row_data[slot] = Some(data.into_vec());
                }
                let dirty_slots: Vec<usize> = (0..d).filter(|&s| row_data[s].is_some()).collect();
                let positions = self.geo.row_members(stripe);
                let mut rewrite = Vec::new();
                let needs_read =
                    (0..d).any(|s| row_data[s].is_none() && self.geo.block_at(row, s).is_some());
                if needs_read {
                    let (current, lost) = self.read_parity_row(inner, stripe, row, None)?;
                    for (s, cur) in current.into_iter().take(d).enumerate() {
                        if row_data[s].is_none() {
                            if lost.contains(&s) {
                                // Reconstructed: write it back so the member is healthy again.
                                rewrite.push(s);
                            }
                            row_data[s] = Some(cur);
                        }
                    }
                }
                let zeros = vec![0u8; self.geo.block_size];
                let refs: Vec<&[u8]> = row_data
                    .iter()
                    .map(|b| b.as_deref().unwrap_or(&zeros))
                    .collect();
                let mut p = vec![0u8; self.geo.block_size];
                let mut q = vec![0u8; self.geo.block_size];
                if self.geo.level == Level::Raid6 {
                    parity::gen_pq(&refs, &mut p, &mut q);
                } else {
                    parity::gen_p(&refs, &mut p);
                }
                for s in dirty_slots.into_iter().chain(rewrite) {
                    let m = positions[s];
                    if inner.members[m].state.is_writable() {
                        out.push((m, row_data[s].take().expect("invariant: slot filled")));
                    }
                }
                let pm = positions[d];
                if inner.members[pm].state.is_writable() {
                    out.push((pm, p));
                }
                if self.geo.level == Level::Raid6 {
                    let qm = positions[d + 1];
                    if inner.members[qm].state.is_writable() {
                        out.push((qm, q));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Journal blocks member `m` would need if `txn` also got `extra` row writes and one more
    /// checksum block.
    fn fits(&self, txn: &Txn, m: usize, extra: usize, row: u64) -> bool {
        let cb = row / self.geo.crcs_per_block;
        let csum = txn.csum_dirty[m].len() + usize::from(!txn.csum_dirty[m].contains(&cb));
        let entries = txn.writes[m].len() + extra + csum;
        journal::record_blocks(entries, self.geo.block_size) <= self.geo.journal_blocks
    }

    /// Adds row writes to `txn`, updating the CRC table.
    fn add_to_txn(
        &self,
        inner: &mut Inner,
        txn: &mut Txn,
        row: u64,
        writes: Vec<(usize, Vec<u8>)>,
    ) {
        for (m, data) in writes {
            inner.members[m].crcs[row as usize] = crc32fast::hash(&data);
            txn.csum_dirty[m].insert(row / self.geo.crcs_per_block);
            txn.writes[m].push((self.geo.data_start() + row, data));
        }
    }

    /// Adds `writes` for `row`, committing `txn` first if they would not fit in the journal.
    fn stage(
        &self,
        inner: &mut Inner,
        txn: &mut Txn,
        row: u64,
        writes: Vec<(usize, Vec<u8>)>,
    ) -> Result<()> {
        let mut per_member = vec![0usize; self.geo.members];
        for (m, _) in &writes {
            per_member[*m] += 1;
        }
        let fits = (0..self.geo.members)
            .all(|m| per_member[m] == 0 || self.fits(txn, m, per_member[m], row));
        if !fits {
            let full = std::mem::replace(txn, Txn::new(self.geo.members));
            self.commit(inner, full)?;
        }
        self.add_to_txn(inner, txn, row, writes);
        Ok(())
    }

    /// Journals, syncs, writes in place and syncs one transaction.
    fn commit(&self, inner: &mut Inner, mut txn: Txn) -> Result<()> {
        if txn.is_empty() {
            return Ok(());
        }
        for m in 0..self.geo.members {
            let cbs = std::mem::take(&mut txn.csum_dirty[m]);
            for cb in cbs {
                let block = self.encode_csum_block(&inner.members[m].crcs, cb);
                txn.writes[m].push((self.geo.csum_start() + cb, block));
            }
        }
        let participants: Vec<usize> = (0..self.geo.members)
            .filter(|&m| !txn.writes[m].is_empty() && inner.members[m].state.is_writable())
            .collect();
        let mask = participants.iter().fold(0u64, |acc, &m| acc | 1 << m);
        let seq = inner.next_seq;
        inner.next_seq += 1;

        // 1. Journal on every participant, then make it durable. Entries are sorted by target, so
        //    the record's data blocks double as the in-place runs below.
        let bs = self.geo.block_size;
        let mut records = Vec::with_capacity(participants.len());
        for &m in &participants {
            txn.writes[m].sort_by_key(|(b, _)| *b);
            let entries: Vec<(u64, &[u8])> = txn.writes[m]
                .iter()
                .map(|(b, d)| (*b, d.as_slice()))
                .collect();
            let record = journal::encode(&self.array_id, seq, mask, &entries, bs);
            if let Err(e) = self
                .device(inner, m)
                .write(self.geo.journal_start(), &record)
            {
                self.fail_member_locked(inner, m, format!("journal write: {e}"));
            }
            records.push(record);
        }
        self.sync_members(inner, &participants, "journal sync");
        self.check_tolerance(inner)?;

        // 2. In place, in runs of consecutive blocks, then durable.
        for (&m, record) in participants.iter().zip(&records) {
            if !inner.members[m].state.is_writable() {
                continue;
            }
            let targets: Vec<u64> = txn.writes[m].iter().map(|(b, _)| *b).collect();
            let data = &record[journal::descriptor_blocks(targets.len(), bs) as usize * bs..];
            let dev = self.device(inner, m);
            let mut i = 0;
            while i < targets.len() {
                let mut j = i + 1;
                while j < targets.len() && targets[j] == targets[j - 1] + 1 {
                    j += 1;
                }
                if let Err(e) = dev.write(targets[i], &data[i * bs..j * bs]) {
                    self.fail_member_locked(inner, m, format!("write: {e}"));
                    break;
                }
                i = j;
            }
        }
        self.sync_members(inner, &participants, "sync");
        self.check_tolerance(inner)
    }

    fn sync_members(&self, inner: &mut Inner, members: &[usize], what: &str) {
        for &m in members {
            if inner.members[m].state.is_writable() {
                if let Err(e) = self.device(inner, m).sync() {
                    self.fail_member_locked(inner, m, format!("{what}: {e}"));
                }
            }
        }
    }

    /// Writes every cached block to the members, durably.
    fn flush(&self, inner: &mut Inner) -> Result<()> {
        self.check_running(inner)?;
        if inner.cache.is_empty() {
            return Ok(());
        }
        let dirty = std::mem::take(&mut inner.cache);
        let mut rows: BTreeMap<u64, RowSlots> = BTreeMap::new();
        for (block, data) in dirty {
            let loc = self.geo.locate(block);
            rows.entry(loc.row).or_default().push((loc.slot, data));
        }
        let result = (|| {
            let mut txn = Txn::new(self.geo.members);
            for (row, slots) in rows {
                let writes = self.row_writes(inner, row, slots)?;
                self.stage(inner, &mut txn, row, writes)?;
            }
            self.commit(inner, txn)
        })();
        if let Err(e) = &result {
            // Unwritten blocks are gone from the cache; refuse further writes rather than serve
            // a state that never existed.
            inner
                .broken
                .get_or_insert_with(|| format!("flush failed: {e}"));
        }
        result
    }

    /// Examines member slots: reads superblocks and decides every member's state.
    fn examine(slots: &[MemberSlot]) -> Result<(Superblock, Vec<MemberState>, Vec<u64>)> {
        let mut sbs: Vec<Option<std::result::Result<Superblock, String>>> = Vec::new();
        for slot in slots {
            sbs.push(match slot {
                MemberSlot::Present { device, .. } => Some(superblock::read_best(device.as_ref())),
                MemberSlot::Absent { .. } => None,
            });
        }
        // The array is the one most members belong to; its state is the freshest superblock's.
        let mut votes: BTreeMap<[u8; 16], (usize, u64)> = BTreeMap::new();
        for sb in sbs.iter().flatten().flatten() {
            let v = votes.entry(sb.array_id).or_insert((0, 0));
            v.0 += 1;
            v.1 = v.1.max(sb.events);
        }
        let Some((&array_id, _)) = votes
            .iter()
            .max_by_key(|(_, (count, events))| (*count, *events))
        else {
            return Err(Error::Invalid(format!(
                "no RAID member found among {}: {}",
                slots
                    .iter()
                    .map(MemberSlot::name)
                    .collect::<Vec<_>>()
                    .join(", "),
                slots
                    .iter()
                    .zip(&sbs)
                    .map(|(s, sb)| match (s, sb) {
                        (MemberSlot::Absent { state, .. }, _) => format!("{}: {state}", s.name()),
                        (_, Some(Err(e))) => format!("{}: {e}", s.name()),
                        _ => String::new(),
                    })
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        };
        let reference = sbs
            .iter()
            .flatten()
            .flatten()
            .filter(|sb| sb.array_id == array_id)
            .max_by_key(|sb| sb.events)
            .cloned()
            .expect("invariant: a voted array has a superblock");
        let geo = &reference.geometry;
        if slots.len() != geo.members {
            return Err(Error::Invalid(format!(
                "the array has {} members but {} were given",
                geo.members,
                slots.len()
            )));
        }
        let mut states = Vec::new();
        for (i, (slot, sb)) in slots.iter().zip(&sbs).enumerate() {
            let state = match (slot, sb) {
                (MemberSlot::Absent { state, .. }, _) => state.clone(),
                (_, Some(Err(e))) => MemberState::Foreign(e.clone()),
                (MemberSlot::Present { device, .. }, Some(Ok(sb))) => {
                    if sb.array_id != array_id {
                        MemberState::Foreign("belongs to another array".into())
                    } else if sb.member_index != i {
                        MemberState::Foreign(format!(
                            "is member {} of this array, given as member {i}",
                            sb.member_index
                        ))
                    } else if sb.geometry != *geo {
                        MemberState::Foreign(
                            "superblock disagrees with the array's geometry".into(),
                        )
                    } else if device.block_count() < geo.member_blocks() {
                        MemberState::Failed(format!(
                            "truncated: {} blocks, needs {}",
                            device.block_count(),
                            geo.member_blocks()
                        ))
                    } else if reference.states[i] == RecordedState::Failed {
                        if sb.events < reference.events {
                            MemberState::Stale {
                                events: sb.events,
                                array_events: reference.events,
                            }
                        } else {
                            MemberState::Failed("marked failed".into())
                        }
                    } else if sb.events + 1 < reference.events {
                        // One event behind is a member a crash caught in the middle of a
                        // superblock update (`write_superblocks` never lets it get further
                        // behind); data is only written after an update completes, so it missed
                        // none. Two or more behind, it missed a complete update.
                        MemberState::Stale {
                            events: sb.events,
                            array_events: reference.events,
                        }
                    } else if reference.states[i] == RecordedState::Rebuilding {
                        MemberState::Rebuilding
                    } else {
                        MemberState::Active
                    }
                }
                (MemberSlot::Present { .. }, None) => unreachable!("present slots were read"),
            };
            states.push(state);
        }
        let events = sbs
            .iter()
            .map(|sb| match sb {
                Some(Ok(sb)) => sb.events,
                _ => 0,
            })
            .collect();
        Ok((reference, states, events))
    }

    /// Reports the state of an array without changing anything on its members.
    pub fn inspect(slots: &[MemberSlot]) -> Result<ArrayStatus> {
        let (sb, states, _) = Self::examine(slots)?;
        let geo = &sb.geometry;
        let gone: Vec<usize> = (0..states.len())
            .filter(|&i| !states[i].is_active())
            .collect();
        Ok(ArrayStatus {
            level: geo.level,
            capacity_bytes: geo.capacity_blocks * geo.block_size as u64,
            chunk_bytes: sb.chunk_bytes,
            block_size: geo.block_size,
            clean: sb.clean,
            events: sb.events,
            members: slots
                .iter()
                .zip(states)
                .enumerate()
                .map(|(index, (slot, state))| MemberReport {
                    index,
                    name: slot.name().to_string(),
                    state,
                })
                .collect(),
            degraded: !gone.is_empty(),
            runnable: geo.level.survives(geo.members, &gone),
        })
    }

    /// Assembles an array from its members (slot i is member i) for reading and writing:
    /// refuses foreign members, marks stale and missing ones failed, replays the journal, and
    /// runs degraded when within tolerance. Fails naming the missing members when beyond it.
    pub fn assemble(slots: Vec<MemberSlot>) -> Result<RaidArray> {
        let (sb, states, member_events) = Self::examine(&slots)?;
        let geo = sb.geometry.clone();
        let gone: Vec<usize> = (0..states.len())
            .filter(|&i| !states[i].is_active())
            .collect();
        if !geo.level.survives(geo.members, &gone) {
            let named: Vec<(String, MemberState)> = slots
                .iter()
                .zip(&states)
                .map(|(s, st)| (s.name().to_string(), st.clone()))
                .collect();
            return Err(too_many_failures(&geo, &named));
        }
        let members: Vec<Member> = slots
            .into_iter()
            .zip(states)
            .zip(member_events)
            .map(|((slot, state), disk_events)| {
                let (name, device) = match slot {
                    MemberSlot::Present { name, device } => (name, Some(device)),
                    MemberSlot::Absent { name, .. } => (name, None),
                };
                // A rebuild that did not finish must be started again.
                let state = match state {
                    MemberState::Rebuilding => MemberState::Failed("rebuild did not finish".into()),
                    s => s,
                };
                Member {
                    name,
                    device,
                    state,
                    crcs: Vec::new(),
                    disk_events,
                }
            })
            .collect();
        let array = RaidArray::new(geo, sb.array_id, sb.chunk_bytes, members, sb.events);
        {
            let mut inner = array.lock();
            array.recover_journal(&mut inner)?;
            array.load_checksums(&mut inner)?;
            array.write_superblocks(&mut inner, false)?;
        }
        Ok(array)
    }

    /// Applies the journal recovery rule (see `journal.rs`).
    fn recover_journal(&self, inner: &mut Inner) -> Result<()> {
        let mut records = Vec::new();
        let active: Vec<bool> = inner.members.iter().map(|m| m.state.is_active()).collect();
        for (i, &is_active) in active.iter().enumerate() {
            records.push(if is_active {
                let dev = self.device(inner, i);
                match journal::read(
                    dev.as_ref(),
                    self.geo.journal_start(),
                    self.geo.journal_blocks,
                    &self.array_id,
                ) {
                    Ok(r) => r,
                    Err(e) => {
                        self.fail_member_locked(inner, i, format!("journal read: {e}"));
                        None
                    }
                }
            } else {
                None
            });
        }
        self.check_tolerance(inner)?;
        let active: Vec<bool> = inner.members.iter().map(|m| m.state.is_active()).collect();
        let refs: Vec<Option<&journal::Record>> = records.iter().map(Option::as_ref).collect();
        let (replay, next) = journal::decide(&refs, &active)?;
        inner.next_seq = next;
        if let Some(seq) = replay {
            let mut touched = Vec::new();
            for (i, rec) in records.iter().enumerate() {
                let Some(rec) = rec.as_ref().filter(|r| r.seq == seq && active[i]) else {
                    continue;
                };
                let dev = self.device(inner, i);
                let result = rec
                    .entries
                    .iter()
                    .try_for_each(|(block, data)| dev.write(*block, data));
                if let Err(e) = result {
                    self.fail_member_locked(inner, i, format!("journal replay: {e}"));
                } else {
                    touched.push(i);
                }
            }
            self.sync_members(inner, &touched, "journal replay sync");
            self.check_tolerance(inner)?;
        }
        // Replayed or discarded, no record may be looked at again: a discarded one could
        // otherwise look complete at a later assembly that lacks the member that never got it.
        self.clear_journals(inner)
    }

    /// Overwrites every writable member's journal head, so no record there is valid.
    fn clear_journals(&self, inner: &mut Inner) -> Result<()> {
        let zero = vec![0u8; self.geo.block_size];
        let mut cleared = Vec::new();
        for m in 0..self.geo.members {
            if !inner.members[m].state.is_writable() {
                continue;
            }
            match self.device(inner, m).write(self.geo.journal_start(), &zero) {
                Ok(()) => cleared.push(m),
                Err(e) => self.fail_member_locked(inner, m, format!("journal write: {e}")),
            }
        }
        self.sync_members(inner, &cleared, "journal sync");
        self.check_tolerance(inner)
    }

    /// Loads every active member's checksum region. The CRCs of a corrupt checksum block are
    /// recomputed from what the other members say the blocks should be (so a data block that
    /// rotted alongside is still caught), or, without redundancy (RAID-0, or too many members
    /// gone), from the member's own data; the block is rewritten and scrub reports it.
    fn load_checksums(&self, inner: &mut Inner) -> Result<()> {
        let bs = self.geo.block_size;
        let per = self.geo.crcs_per_block as usize;
        let rows = self.geo.rows() as usize;
        let mut corrupt = Vec::new();
        for i in 0..self.geo.members {
            if !inner.members[i].state.is_active() {
                continue;
            }
            let dev = self.device(inner, i);
            let mut region = vec![0u8; self.geo.csum_blocks() as usize * bs];
            if let Err(e) = dev.read(self.geo.csum_start(), &mut region) {
                self.fail_member_locked(inner, i, format!("checksum region read: {e}"));
                continue;
            }
            let mut crcs = vec![0u32; rows];
            for (cb, block) in region.chunks_exact(bs).enumerate() {
                let stored = u32::from_le_bytes(block[bs - 4..].try_into().expect("4 bytes"));
                let first = cb * per;
                let last = (first + per).min(rows);
                if crc32fast::hash(&block[..bs - 4]) == stored {
                    for (j, crc) in crcs[first..last].iter_mut().enumerate() {
                        *crc = u32::from_le_bytes(
                            block[4 * j..4 * j + 4].try_into().expect("4 bytes"),
                        );
                    }
                } else {
                    corrupt.push((i, cb));
                }
            }
            inner.members[i].crcs = crcs;
        }
        self.check_tolerance(inner)?;
        let mut txn = Txn::new(self.geo.members);
        for (i, cb) in corrupt {
            if !inner.members[i].state.is_active() {
                continue;
            }
            let first = cb * per;
            let last = (first + per).min(rows);
            for row in first..last {
                let expected = match self.expected_block(inner, i, row as u64) {
                    Ok(block) => block,
                    Err(_) => {
                        // No redundancy to ask: the member's own data is all there is.
                        let mut own = vec![0u8; bs];
                        let dev = self.device(inner, i);
                        if let Err(e) = dev.read(self.geo.data_start() + row as u64, &mut own) {
                            self.fail_member_locked(inner, i, format!("data read: {e}"));
                            break;
                        }
                        own
                    }
                };
                inner.members[i].crcs[row] = crc32fast::hash(&expected);
            }
            txn.csum_dirty[i].insert(cb as u64);
            inner.repaired_at_open.push(ScrubProblem {
                member: i,
                member_block: self.geo.csum_start() + cb as u64,
                kind: ProblemKind::ChecksumBlockCorrupt,
                repaired: true,
            });
        }
        self.check_tolerance(inner)?;
        self.commit(inner, txn)
    }

    /// The array's state now.
    pub fn status(&self) -> ArrayStatus {
        let inner = self.lock();
        let gone = self.unavailable(&inner);
        ArrayStatus {
            level: self.geo.level,
            capacity_bytes: self.geo.capacity_blocks * self.geo.block_size as u64,
            chunk_bytes: self.chunk_bytes,
            block_size: self.geo.block_size,
            clean: inner.closed,
            events: inner.events,
            members: inner
                .members
                .iter()
                .enumerate()
                .map(|(index, m)| MemberReport {
                    index,
                    name: m.name.clone(),
                    state: m.state.clone(),
                })
                .collect(),
            degraded: !gone.is_empty(),
            runnable: inner.broken.is_none() && self.geo.level.survives(self.geo.members, &gone),
        }
    }

    /// Takes member `i` out of service (as if it had failed), recording it in the superblocks.
    /// Refused when the array could not run without it.
    pub fn fail_member(&self, i: usize) -> Result<()> {
        let mut inner = self.lock();
        self.check_member_index(i)?;
        self.flush(&mut inner)?;
        if !inner.members[i].state.is_writable() {
            return Err(Error::Invalid(format!(
                "member {i} is already out of service: {}",
                inner.members[i].state
            )));
        }
        let mut gone = self.unavailable(&inner);
        if !gone.contains(&i) {
            gone.push(i);
        }
        if !self.geo.level.survives(self.geo.members, &gone) {
            return Err(Error::Invalid(format!(
                "failing member {i} would lose data: RAID-{} tolerates {}",
                self.geo.level.number(),
                self.geo.level.tolerance_text(self.geo.members)
            )));
        }
        inner.members[i].state = MemberState::Failed("failed by request".into());
        self.write_superblocks(&mut inner, false)
    }

    fn check_member_index(&self, i: usize) -> Result<()> {
        if i >= self.geo.members {
            return Err(Error::Invalid(format!(
                "member {i} does not exist (the array has members 0..{})",
                self.geo.members - 1
            )));
        }
        Ok(())
    }

    /// Rebuilds member `i`, which must be out of service, onto `device` (zeroed or not; it is
    /// overwritten), reporting `progress(rows_done, rows_total)`. Other I/O may run between
    /// batches. When it returns, `device` is an active member.
    pub fn replace_member(
        &self,
        i: usize,
        name: String,
        device: Arc<dyn BlockDevice>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        self.check_member_index(i)?;
        let rows = self.geo.rows();
        {
            let mut inner = self.lock();
            self.flush(&mut inner)?;
            if inner.members[i].state.is_active() {
                return Err(Error::Invalid(format!(
                    "member {i} is active; fail it first (`strata raid fail --member {i}`)"
                )));
            }
            if device.block_size() != self.geo.block_size {
                return Err(Error::Invalid(format!(
                    "new member has block size {}, the array uses {}",
                    device.block_size(),
                    self.geo.block_size
                )));
            }
            if device.block_count() < self.geo.member_blocks() {
                device.set_block_count(self.geo.member_blocks())?;
            }
            let zero_crc = crc32fast::hash(&vec![0u8; self.geo.block_size]);
            inner.members[i] = Member {
                name,
                device: Some(device.clone()),
                state: MemberState::Rebuilding,
                crcs: vec![zero_crc; rows as usize],
                disk_events: 0,
            };
            device.write(self.geo.journal_start(), &vec![0u8; self.geo.block_size])?;
            self.write_superblocks(&mut inner, false)?;
        }
        let batch = 256u64.min(rows).max(1);
        let bs = self.geo.block_size;
        let mut row = 0;
        progress(0, rows);
        while row < rows {
            let mut inner = self.lock();
            if !inner.members[i].state.is_writable() {
                return Err(Error::Invalid(format!(
                    "new member {i} failed during rebuild: {}",
                    inner.members[i].state
                )));
            }
            let end = (row + batch).min(rows);
            let mut out = Vec::with_capacity((end - row) as usize * bs);
            let mut crcs = Vec::with_capacity((end - row) as usize);
            for r in row..end {
                let block = self.expected_block(&mut inner, i, r)?;
                crcs.push(crc32fast::hash(&block));
                out.extend_from_slice(&block);
            }
            if let Err(e) = device.write(self.geo.data_start() + row, &out) {
                self.fail_member_locked(&mut inner, i, format!("rebuild write: {e}"));
                return Err(e);
            }
            inner.members[i].crcs[row as usize..end as usize].copy_from_slice(&crcs);
            drop(inner);
            row = end;
            progress(row, rows);
        }
        let mut inner = self.lock();
        let mut region = Vec::with_capacity(self.geo.csum_blocks() as usize * bs);
        for cb in 0..self.geo.csum_blocks() {
            region.extend_from_slice(&self.encode_csum_block(&inner.members[i].crcs, cb));
        }
        let done = device
            .write(self.geo.csum_start(), &region)
            .and_then(|()| device.sync());
        if let Err(e) = done {
            self.fail_member_locked(&mut inner, i, format!("rebuild: {e}"));
            return Err(e);
        }
        inner.members[i].state = MemberState::Active;
        self.write_superblocks(&mut inner, false)
    }

    /// What member `m` should hold at data-area row `row`, rebuilt from the other members only
    /// (its own copy is never consulted).
    fn expected_block(&self, inner: &mut Inner, m: usize, row: u64) -> Result<Vec<u8>> {
        let stripe = row / self.geo.chunk_blocks;
        match self.geo.level {
            Level::Raid5 | Level::Raid6 => {
                let positions = self.geo.row_members(stripe);
                let pos = positions
                    .iter()
                    .position(|&x| x == m)
                    .expect("invariant: member in row");
                let (mut blocks, _) = self.read_parity_row(inner, stripe, row, Some(m))?;
                Ok(blocks.swap_remove(pos))
            }
            Level::Raid0 | Level::Raid1 | Level::Raid10 => {
                let slot = (0..self.geo.data_slots())
                    .find(|&s| self.geo.slot_members(stripe, s).contains(&m))
                    .expect("invariant: member holds a slot");
                let Some(block) = self.geo.block_at(row, slot) else {
                    return Ok(vec![0u8; self.geo.block_size]);
                };
                for other in self.geo.slot_members(stripe, slot) {
                    if other != m && inner.members[other].state.is_active() {
                        if let Ok(Some(b)) = self.read_member_row(inner, other, row) {
                            return Ok(b);
                        }
                    }
                }
                Err(Error::DataLost {
                    block,
                    reason: format!("no other copy of member {m}'s block is readable"),
                })
            }
        }
    }

    /// Reads every row, checks CRCs and parity or mirrors, and with `repair` rewrites bad blocks
    /// from redundancy. Reports `progress(rows_done, rows_total)`.
    pub fn scrub(&self, repair: bool, progress: &mut dyn FnMut(u64, u64)) -> Result<ScrubReport> {
        let rows = self.geo.rows();
        let mut report = ScrubReport::default();
        {
            let mut inner = self.lock();
            self.flush(&mut inner)?;
            report.problems.append(&mut inner.repaired_at_open);
        }
        let batch = 256u64.min(rows).max(1);
        let mut row = 0;
        progress(0, rows);
        while row < rows {
            let mut inner = self.lock();
            let end = (row + batch).min(rows);
            let mut txn = Txn::new(self.geo.members);
            for r in row..end {
                let before = report.problems.len();
                let fixes = self.scrub_row(&mut inner, r, &mut report)?;
                if repair && !fixes.is_empty() {
                    self.stage(&mut inner, &mut txn, r, fixes)?;
                } else if !repair {
                    // Problems are marked repairable by scrub_row; without --repair none is.
                    report.problems[before..]
                        .iter_mut()
                        .for_each(|p| p.repaired = false);
                }
            }
            if repair {
                self.commit(&mut inner, txn)?;
            }
            drop(inner);
            report.rows_checked += end - row;
            row = end;
            progress(row, rows);
        }
        Ok(report)
    }

    /// Checks one row; records problems (marked repaired when `fixes` will rewrite them) and
    /// returns the blocks to rewrite.
    fn scrub_row(
        &self,
        inner: &mut Inner,
        row: u64,
        report: &mut ScrubReport,
    ) -> Result<Vec<(usize, Vec<u8>)>> {
        let stripe = row / self.geo.chunk_blocks;
        let member_block = self.geo.data_start() + row;
        let note = |report: &mut ScrubReport, member, kind, repaired| {
            report.problems.push(ScrubProblem {
                member,
                member_block,
                kind,
                repaired,
            })
        };
        // Read every active member's block of the row, raw, with its CRC verdict.
        let mut raw: Vec<Option<(Vec<u8>, bool)>> = vec![None; self.geo.members];
        for (m, slot) in raw.iter_mut().enumerate() {
            if !inner.members[m].state.is_active() {
                continue;
            }
            let mut buf = vec![0u8; self.geo.block_size];
            match self.device(inner, m).read(member_block, &mut buf) {
                Ok(()) => {
                    let ok = crc32fast::hash(&buf) == inner.members[m].crcs[row as usize];
                    *slot = Some((buf, ok));
                }
                Err(e) => {
                    self.fail_member_locked(inner, m, format!("read error: {e}"));
                    note(report, m, ProblemKind::ReadError, false);
                }
            }
        }
        let mut fixes = Vec::new();
        match self.geo.level {
            Level::Raid0 | Level::Raid1 | Level::Raid10 => {
                for slot in 0..self.geo.data_slots() {
                    let holders = self.geo.slot_members(stripe, slot);
                    let good = holders.iter().find_map(|&m| match &raw[m] {
                        Some((b, true)) => Some(b.clone()),
                        _ => None,
                    });
                    for &m in &holders {
                        if let Some((_, false)) = &raw[m] {
                            match &good {
                                Some(b) => {
                                    note(report, m, ProblemKind::ChecksumMismatch, true);
                                    fixes.push((m, b.clone()));
                                }
                                None => note(report, m, ProblemKind::ChecksumMismatch, false),
                            }
                        }
                    }
                }
            }
            Level::Raid5 | Level::Raid6 => {
                let positions = self.geo.row_members(stripe);
                let d = self.geo.data_slots();
                let has_q = self.geo.level == Level::Raid6;
                let mut lost: Vec<usize> = Vec::new();
                let mut bad_crc: Vec<usize> = Vec::new();
                let mut blocks: Vec<Vec<u8>> = Vec::new();
                for (pos, &m) in positions.iter().enumerate() {
                    match &raw[m] {
                        Some((b, ok)) => {
                            if !ok {
                                lost.push(pos);
                                bad_crc.push(pos);
                            }
                            blocks.push(b.clone());
                        }
                        None => {
                            lost.push(pos);
                            blocks.push(vec![0u8; self.geo.block_size]);
                        }
                    }
                }
                if lost.is_empty() {
                    let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
                    if !parity::row_consistent(&refs, d, has_q) {
                        // Every block passes its checksum, yet parity disagrees: locate the culprit
                        // where RAID-6 can, else blame parity, as the data checks out.
                        let culprit = if has_q {
                            parity::locate_single_error(&refs, d)
                        } else {
                            Some(d)
                        };
                        let pos = culprit.unwrap_or(d);
                        note(report, positions[pos], ProblemKind::ParityMismatch, true);
                        lost.push(pos);
                    }
                }
                if lost.is_empty() {
                    return Ok(fixes);
                }
                if lost.len() > self.geo.level.parity_count() {
                    for &pos in &bad_crc {
                        note(report, positions[pos], ProblemKind::ChecksumMismatch, false);
                    }
                    note(
                        report,
                        positions[lost[0]],
                        ProblemKind::Unrecoverable,
                        false,
                    );
                    return Ok(fixes);
                }
                let mut refs: Vec<&mut [u8]> =
                    blocks.iter_mut().map(|b| b.as_mut_slice()).collect();
                parity::reconstruct(&mut refs, d, has_q, &lost).map_err(|e| {
                    Error::Invalid(format!("invariant: reconstruction within tolerance: {e}"))
                })?;
                for &pos in &bad_crc {
                    note(report, positions[pos], ProblemKind::ChecksumMismatch, true);
                }
                for &pos in &lost {
                    let m = positions[pos];
                    if inner.members[m].state.is_writable() {
                        fixes.push((m, blocks[pos].clone()));
                    }
                }
            }
        }
        Ok(fixes)
    }

    /// Flushes, marks the array clean and releases the members.
    pub fn close(self) -> Result<()> {
        self.close_locked()
    }

    fn close_locked(&self) -> Result<()> {
        let mut inner = self.lock();
        if inner.closed {
            return Ok(());
        }
        self.flush(&mut inner)?;
        self.clear_journals(&mut inner)?;
        self.write_superblocks(&mut inner, true)?;
        inner.closed = true;
        Ok(())
    }
}

fn too_many_failures(geo: &Geometry, members: &[(String, MemberState)]) -> Error {
    let unavailable: Vec<String> = members
        .iter()
        .enumerate()
        .filter(|(_, (_, s))| !s.is_active())
        .map(|(i, (name, state))| format!("member {i} ({name}) {state}"))
        .collect();
    Error::TooManyFailures {
        level: geo.level.number(),
        unavailable: unavailable.join(", "),
        tolerance: geo.level.tolerance_text(geo.members),
    }
}

impl Drop for RaidArray {
    /// A best-effort clean close; errors are ignored here (call `close` to see them), and an array
    /// that is dropped without being closed recovers through its journal at the next assembly.
    fn drop(&mut self) {
        let _ = self.close_locked();
    }
}

impl BlockDevice for RaidArray {
    fn block_size(&self) -> usize {
        self.geo.block_size
    }

    fn block_count(&self) -> u64 {
        self.geo.capacity_blocks
    }

    fn read(&self, start: u64, buf: &mut [u8]) -> Result<()> {
        let bs = self.geo.block_size;
        let blocks = check_range(&self.name(), bs, self.geo.capacity_blocks, start, buf.len())?;
        let mut inner = self.lock();
        self.check_running(&inner)?;
        let k = self.geo.chunk_blocks;
        let mut b = start;
        while b < start + blocks {
            // A run ends at the end of the request or of the chunk.
            let run_end = (start + blocks).min((b / k + 1) * k);
            let out = &mut buf[((b - start) as usize) * bs..((run_end - start) as usize) * bs];
            if inner.cache.range(b..run_end).count() < (run_end - b) as usize {
                self.read_run(&mut inner, b, out)?;
            }
            for (block, data) in inner.cache.range(b..run_end) {
                let at = ((block - b) as usize) * bs;
                out[at..at + bs].copy_from_slice(data);
            }
            b = run_end;
        }
        Ok(())
    }

    fn write(&self, start: u64, data: &[u8]) -> Result<()> {
        let bs = self.geo.block_size;
        check_range(
            &self.name(),
            bs,
            self.geo.capacity_blocks,
            start,
            data.len(),
        )?;
        let mut inner = self.lock();
        self.check_running(&inner)?;
        inner.closed = false;
        for (j, block) in data.chunks_exact(bs).enumerate() {
            inner.cache.insert(start + j as u64, block.into());
        }
        if inner.cache.len() >= self.cache_limit {
            self.flush(&mut inner)?;
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        let mut inner = self.lock();
        self.flush(&mut inner)
    }

    fn set_block_count(&self, count: u64) -> Result<()> {
        if count == self.geo.capacity_blocks {
            return Ok(());
        }
        Err(Error::NotResizable {
            device: self.name(),
            reason: format!(
                "a RAID array's capacity is fixed at create ({} blocks)",
                self.geo.capacity_blocks
            ),
        })
    }

    fn name(&self) -> String {
        format!("raid{}[{}]", self.geo.level.number(), self.geo.members)
    }
}
