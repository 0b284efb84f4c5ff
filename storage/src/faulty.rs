//! `FaultyDevice`: wraps a device and injects faults, for tests of everything above it.
//!
//! Faults live in a `Faults` handle that can be shared by several devices (so "the power fails
//! after N writes" can span every member of a RAID array) and changed while the device is owned by
//! an array or an engine:
//!
//! - `fail_all`: every read, write and sync fails (a dead disk or a pulled cable).
//! - `fail_after_writes(n)`: `n` more blocks are written, then the device dies: that write and all
//!   later I/O fail (a crash or a disk dying mid-run).
//! - `tear_after_writes(n, keep)`: like `fail_after_writes`, but the block that fails is torn: its
//!   first `keep` bytes reach the media, the rest keep their old contents.
//! - `flip_on_read(block, byte, mask)`: reads of that block return it with bits flipped; the stored
//!   data is intact (a bad cable or controller).
//! - `FaultyDevice::corrupt_at_rest`: flips bits in the stored data itself (bit rot).
//!
//! Counters of blocks read and written and of syncs let tests and benchmarks see the I/O done.

use std::sync::{Arc, Mutex};

use crate::device::{check_range, BlockDevice};
use crate::error::{Error, Result};

/// Fault settings and I/O counters, shareable between devices.
#[derive(Default)]
pub struct Faults {
    state: Mutex<FaultState>,
}

#[derive(Default)]
struct FaultState {
    fail_all: bool,
    dead: bool,
    /// Blocks that may still be written before the device dies.
    writes_left: Option<u64>,
    /// Bytes of the fatal block that reach the media when the device dies mid-write.
    tear_keep: Option<usize>,
    read_flips: Vec<(u64, usize, u8)>,
    blocks_read: u64,
    blocks_written: u64,
    syncs: u64,
}

impl Faults {
    /// A fresh, fault-free handle.
    pub fn new() -> Arc<Self> {
        Arc::new(Faults::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().expect("invariant: lock not poisoned")
    }

    /// Makes every I/O fail (`true`) or stops doing so (`false`; a device that died stays dead
    /// until `clear`).
    pub fn fail_all(&self, on: bool) {
        self.lock().fail_all = on;
    }

    /// Lets `n` more blocks be written, then kills the device.
    pub fn fail_after_writes(&self, n: u64) {
        let mut s = self.lock();
        s.writes_left = Some(n);
        s.tear_keep = None;
    }

    /// Lets `n` more blocks be written; the next one is torn (only its first `keep` bytes reach the
    /// media) and the device dies.
    pub fn tear_after_writes(&self, n: u64, keep: usize) {
        let mut s = self.lock();
        s.writes_left = Some(n);
        s.tear_keep = Some(keep);
    }

    /// Reads of `block` return byte `byte` with the bits of `mask` flipped.
    pub fn flip_on_read(&self, block: u64, byte: usize, mask: u8) {
        self.lock().read_flips.push((block, byte, mask));
    }

    /// Removes every fault (a dead device comes back, as after a reboot).
    pub fn clear(&self) {
        let mut s = self.lock();
        s.fail_all = false;
        s.dead = false;
        s.writes_left = None;
        s.tear_keep = None;
        s.read_flips.clear();
    }

    /// True once a write budget ran out.
    pub fn is_dead(&self) -> bool {
        self.lock().dead
    }

    /// Blocks read so far.
    pub fn blocks_read(&self) -> u64 {
        self.lock().blocks_read
    }

    /// Blocks written so far (including a torn one).
    pub fn blocks_written(&self) -> u64 {
        self.lock().blocks_written
    }

    /// Successful syncs so far.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }
}

/// A device that passes I/O to an inner device, injecting the faults of its `Faults` handle.
pub struct FaultyDevice {
    inner: Arc<dyn BlockDevice>,
    faults: Arc<Faults>,
}

impl FaultyDevice {
    /// Wraps `inner` with a fresh fault handle.
    pub fn new(inner: Arc<dyn BlockDevice>) -> Self {
        Self::with_faults(inner, Faults::new())
    }

    /// Wraps `inner`, using (possibly shared) `faults`.
    pub fn with_faults(inner: Arc<dyn BlockDevice>, faults: Arc<Faults>) -> Self {
        FaultyDevice { inner, faults }
    }

    /// The fault handle.
    pub fn faults(&self) -> Arc<Faults> {
        self.faults.clone()
    }

    /// Flips the bits of `mask` in byte `byte` of block `block` on the inner device.
    pub fn corrupt_at_rest(&self, block: u64, byte: usize, mask: u8) -> Result<()> {
        let mut buf = vec![0; self.inner.block_size()];
        self.inner.read(block, &mut buf)?;
        buf[byte] ^= mask;
        self.inner.write(block, &buf)
    }

    fn injected(&self, what: &str) -> Error {
        Error::Injected {
            device: self.name(),
            what: what.to_string(),
        }
    }
}

impl BlockDevice for FaultyDevice {
    fn block_size(&self) -> usize {
        self.inner.block_size()
    }

    fn block_count(&self) -> u64 {
        self.inner.block_count()
    }

    fn read(&self, start: u64, buf: &mut [u8]) -> Result<()> {
        let bs = self.block_size();
        let blocks = check_range(&self.name(), bs, self.block_count(), start, buf.len())?;
        let flips = {
            let mut s = self.faults.lock();
            if s.fail_all || s.dead {
                return Err(self.injected("read failed"));
            }
            s.blocks_read += blocks;
            s.read_flips.clone()
        };
        self.inner.read(start, buf)?;
        for (block, byte, mask) in flips {
            if block >= start && block < start + blocks && byte < bs {
                buf[(block - start) as usize * bs + byte] ^= mask;
            }
        }
        Ok(())
    }

    fn write(&self, start: u64, data: &[u8]) -> Result<()> {
        let bs = self.block_size();
        let blocks = check_range(&self.name(), bs, self.block_count(), start, data.len())?;
        let (allowed, tear) = {
            let mut s = self.faults.lock();
            if s.fail_all || s.dead {
                return Err(self.injected("write failed"));
            }
            match s.writes_left {
                Some(left) if left < blocks => {
                    s.dead = true;
                    s.writes_left = Some(0);
                    s.blocks_written += left + u64::from(s.tear_keep.is_some());
                    (left, s.tear_keep)
                }
                Some(left) => {
                    s.writes_left = Some(left - blocks);
                    s.blocks_written += blocks;
                    (blocks, None)
                }
                None => {
                    s.blocks_written += blocks;
                    (blocks, None)
                }
            }
        };
        if allowed > 0 {
            self.inner.write(start, &data[..allowed as usize * bs])?;
        }
        if allowed == blocks {
            return Ok(());
        }
        if let Some(keep) = tear {
            let block = start + allowed;
            let mut old = vec![0; bs];
            self.inner.read(block, &mut old)?;
            let keep = keep.min(bs);
            let at = allowed as usize * bs;
            old[..keep].copy_from_slice(&data[at..at + keep]);
            self.inner.write(block, &old)?;
            return Err(self.injected("write torn, device died"));
        }
        Err(self.injected("device died during write"))
    }

    fn sync(&self) -> Result<()> {
        {
            let s = self.faults.lock();
            if s.fail_all || s.dead {
                return Err(self.injected("sync failed"));
            }
        }
        self.inner.sync()?;
        self.faults.lock().syncs += 1;
        Ok(())
    }

    fn set_block_count(&self, count: u64) -> Result<()> {
        {
            let s = self.faults.lock();
            if s.fail_all || s.dead {
                return Err(self.injected("resize failed"));
            }
        }
        self.inner.set_block_count(count)
    }

    fn name(&self) -> String {
        format!("faulty({})", self.inner.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::MemDevice;

    fn setup() -> (MemDevice, FaultyDevice) {
        let mem = MemDevice::new(512, 8);
        (mem.clone(), FaultyDevice::new(Arc::new(mem)))
    }

    #[test]
    fn fail_all_and_recover() {
        let (_, dev) = setup();
        dev.faults().fail_all(true);
        assert!(dev.write(0, &[1; 512]).is_err());
        assert!(dev.read(0, &mut [0; 512]).is_err());
        assert!(dev.sync().is_err());
        dev.faults().fail_all(false);
        dev.write(0, &[1; 512]).unwrap();
        dev.sync().unwrap();
        assert_eq!(
            (dev.faults().blocks_written(), dev.faults().syncs()),
            (1, 1)
        );
    }

    #[test]
    fn dies_after_n_block_writes_mid_request() {
        let (mem, dev) = setup();
        dev.faults().fail_after_writes(3);
        dev.write(0, &[1; 1024]).unwrap();
        // Two blocks requested, one allowed: the first lands, the second does not.
        assert!(dev.write(2, &[2; 1024]).is_err());
        assert!(dev.faults().is_dead());
        assert!(
            dev.read(0, &mut [0; 512]).is_err(),
            "a dead device refuses reads too"
        );
        let mut raw = vec![0; 512 * 4];
        mem.read(0, &mut raw).unwrap();
        assert!(raw[..1536].iter().all(|&b| b != 0) && raw[1536..].iter().all(|&b| b == 0));
        dev.faults().clear();
        dev.write(3, &[3; 512]).unwrap();
    }

    #[test]
    fn torn_write_keeps_a_prefix() {
        let (mem, dev) = setup();
        mem.write(1, &[9; 512]).unwrap();
        dev.faults().tear_after_writes(1, 100);
        assert!(dev.write(0, &[5; 1024]).is_err());
        let mut raw = vec![0; 1024];
        mem.read(0, &mut raw).unwrap();
        assert!(raw[..512].iter().all(|&b| b == 5));
        assert!(
            raw[512..612].iter().all(|&b| b == 5),
            "torn prefix reached the media"
        );
        assert!(
            raw[612..].iter().all(|&b| b == 9),
            "rest of the torn block is old"
        );
    }

    #[test]
    fn bit_flips_on_read_and_at_rest() {
        let (mem, dev) = setup();
        dev.write(2, &[0; 512]).unwrap();
        dev.faults().flip_on_read(2, 7, 0x81);
        let mut buf = vec![0; 512 * 2];
        dev.read(1, &mut buf).unwrap();
        assert_eq!(buf[512 + 7], 0x81);
        let mut raw = vec![0; 512];
        mem.read(2, &mut raw).unwrap();
        assert_eq!(raw[7], 0, "flip on read leaves the media intact");
        dev.corrupt_at_rest(2, 9, 0x10).unwrap();
        mem.read(2, &mut raw).unwrap();
        assert_eq!(raw[9], 0x10);
    }
}
