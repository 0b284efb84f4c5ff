//! `MemDevice`: a block device in memory, for tests, benchmarks and in-memory databases.
//!
//! Writes are durable immediately (there is nothing to lose), so `sync` does nothing. Clones share
//! the same storage, which lets a test keep a handle on the "media" while a RAID array or an engine
//! owns the device, then reassemble from it as if after a crash.

use std::sync::{Arc, RwLock};

use crate::device::{check_range, BlockDevice};
use crate::error::Result;

/// A block device held in memory. Cloning shares the contents.
#[derive(Clone)]
pub struct MemDevice {
    block_size: usize,
    data: Arc<RwLock<Vec<u8>>>,
}

impl MemDevice {
    /// A zeroed device of `block_count` blocks of `block_size` bytes.
    pub fn new(block_size: usize, block_count: u64) -> Self {
        assert!(
            block_size >= 512 && block_size.is_power_of_two(),
            "block size {block_size} must be a power of two of at least 512"
        );
        MemDevice {
            block_size,
            data: Arc::new(RwLock::new(vec![0; block_size * block_count as usize])),
        }
    }

    /// A copy of the whole contents (for tests that compare media).
    pub fn snapshot(&self) -> Vec<u8> {
        self.data
            .read()
            .expect("invariant: lock not poisoned")
            .clone()
    }

    /// Flips the bits of `mask` in byte `offset` of the stored data, as decay at rest would.
    pub fn corrupt(&self, offset: usize, mask: u8) {
        self.data.write().expect("invariant: lock not poisoned")[offset] ^= mask;
    }
}

impl BlockDevice for MemDevice {
    fn block_size(&self) -> usize {
        self.block_size
    }

    fn block_count(&self) -> u64 {
        (self
            .data
            .read()
            .expect("invariant: lock not poisoned")
            .len()
            / self.block_size) as u64
    }

    fn read(&self, start: u64, buf: &mut [u8]) -> Result<()> {
        let data = self.data.read().expect("invariant: lock not poisoned");
        let count = (data.len() / self.block_size) as u64;
        check_range("memory", self.block_size, count, start, buf.len())?;
        let at = start as usize * self.block_size;
        buf.copy_from_slice(&data[at..at + buf.len()]);
        Ok(())
    }

    fn write(&self, start: u64, src: &[u8]) -> Result<()> {
        let mut data = self.data.write().expect("invariant: lock not poisoned");
        let count = (data.len() / self.block_size) as u64;
        check_range("memory", self.block_size, count, start, src.len())?;
        let at = start as usize * self.block_size;
        data[at..at + src.len()].copy_from_slice(src);
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn set_block_count(&self, count: u64) -> Result<()> {
        let mut data = self.data.write().expect("invariant: lock not poisoned");
        data.resize(count as usize * self.block_size, 0);
        Ok(())
    }

    fn name(&self) -> String {
        "memory".to_string()
    }
}
