//! The `BlockDevice` boundary: fixed-size blocks, read, write, sync.
//!
//! Everything the engine stores goes through this trait, so the engine can sit on a file, on memory,
//! on a fault-injecting device in tests, or on a RAID array of files without knowing which.
//!
//! CONTRACT (every implementation, checked by `tests/conformance.rs`):
//!
//! 1. Blocks are `block_size()` bytes, numbered `0..block_count()`. I/O is by whole blocks: a buffer
//!    must be a positive multiple of the block size (`Error::BadLength`), and touching a block at or
//!    past `block_count()` is `Error::OutOfRange`; nothing is transferred in either case.
//! 2. A block never written reads as zeros, including blocks added by `set_block_count`.
//! 3. A read returns the last data written to each block, whether or not it was synced.
//! 4. Durability: data is durable only after `sync` returns `Ok`. A crash may lose any write made
//!    since the last successful sync, block by block; a block is then either its old or its new
//!    contents (a torn block is possible only on devices that say so, like a disk losing power
//!    mid-sector; `FaultyDevice` simulates it).
//! 5. After a failed write or sync a device may refuse all further I/O (`Error::PreviousIo`) until
//!    it is reopened: the state of unsynced data is unknown, so carrying on could lose it silently.
//! 6. Methods take `&self` and implementations are `Send + Sync`; concurrent calls on different
//!    blocks are allowed, and concurrent writes to the same block leave one of them.

use crate::error::{Error, Result};

/// A device of fixed-size blocks.
pub trait BlockDevice: Send + Sync {
    /// Size of one block in bytes (a power of two, at least 512).
    fn block_size(&self) -> usize;

    /// Number of blocks on the device.
    fn block_count(&self) -> u64;

    /// Reads `buf.len() / block_size()` consecutive blocks starting at block `start` into `buf`.
    fn read(&self, start: u64, buf: &mut [u8]) -> Result<()>;

    /// Writes `data.len() / block_size()` consecutive blocks starting at block `start`.
    fn write(&self, start: u64, data: &[u8]) -> Result<()>;

    /// Makes every write so far durable.
    fn sync(&self) -> Result<()>;

    /// Grows or shrinks the device to `count` blocks. New blocks read as zeros. Devices of fixed size
    /// (a RAID array) refuse with `Error::NotResizable` unless `count` is their current size.
    fn set_block_count(&self, count: u64) -> Result<()>;

    /// A short name for messages: a path, `memory`, `raid5[4]`.
    fn name(&self) -> String;
}

/// Checks a block I/O request against rule 1 of the contract; returns the number of blocks.
pub fn check_range(
    name: &str,
    block_size: usize,
    count: u64,
    start: u64,
    len: usize,
) -> Result<u64> {
    if len == 0 || !len.is_multiple_of(block_size) {
        return Err(Error::BadLength { len, block_size });
    }
    let blocks = (len / block_size) as u64;
    match start.checked_add(blocks) {
        Some(end) if end <= count => Ok(blocks),
        _ => Err(Error::OutOfRange {
            device: name.to_string(),
            start,
            end: start.saturating_add(blocks),
            count,
        }),
    }
}

/// Reads `buf.len()` bytes at byte `offset`, which need not be block-aligned.
pub fn read_bytes(dev: &dyn BlockDevice, offset: u64, buf: &mut [u8]) -> Result<()> {
    let bs = dev.block_size() as u64;
    if buf.is_empty() {
        return Ok(());
    }
    check_byte_range(dev, offset, buf.len())?;
    let first = offset / bs;
    let last = (offset + buf.len() as u64 - 1) / bs;
    // Bounded staging buffer: read at most 256 blocks at a time.
    let per_batch = 256u64;
    let mut block = first;
    let mut staging = vec![0u8; (per_batch * bs) as usize];
    while block <= last {
        let n = (last - block + 1).min(per_batch);
        let stage = &mut staging[..(n * bs) as usize];
        dev.read(block, stage)?;
        let stage_start = block * bs;
        let lo = offset.max(stage_start);
        let hi = (offset + buf.len() as u64).min(stage_start + n * bs);
        buf[(lo - offset) as usize..(hi - offset) as usize]
            .copy_from_slice(&stage[(lo - stage_start) as usize..(hi - stage_start) as usize]);
        block += n;
    }
    Ok(())
}

/// Writes `data` at byte `offset`; partial blocks at either end are read, patched and written back.
pub fn write_bytes(dev: &dyn BlockDevice, offset: u64, data: &[u8]) -> Result<()> {
    let bs = dev.block_size() as u64;
    if data.is_empty() {
        return Ok(());
    }
    check_byte_range(dev, offset, data.len())?;
    let end = offset + data.len() as u64;
    let first = offset / bs;
    let last = (end - 1) / bs;
    let per_batch = 256u64;
    let mut staging = vec![0u8; (per_batch * bs) as usize];
    let mut block = first;
    while block <= last {
        let n = (last - block + 1).min(per_batch);
        let stage = &mut staging[..(n * bs) as usize];
        let stage_start = block * bs;
        let stage_end = stage_start + n * bs;
        let lo = offset.max(stage_start);
        let hi = end.min(stage_end);
        if lo > stage_start || hi < stage_end {
            // A partial block at an edge: keep the bytes around the new data.
            dev.read(block, stage)?;
        }
        stage[(lo - stage_start) as usize..(hi - stage_start) as usize]
            .copy_from_slice(&data[(lo - offset) as usize..(hi - offset) as usize]);
        dev.write(block, stage)?;
        block += n;
    }
    Ok(())
}

fn check_byte_range(dev: &dyn BlockDevice, offset: u64, len: usize) -> Result<()> {
    let capacity = dev.block_count() * dev.block_size() as u64;
    match offset.checked_add(len as u64) {
        Some(end) if end <= capacity => Ok(()),
        _ => Err(Error::Invalid(format!(
            "byte range {offset}..{} is past the end of {} ({capacity} bytes)",
            offset.saturating_add(len as u64),
            dev.name()
        ))),
    }
}
