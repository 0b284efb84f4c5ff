//! `FileDevice`: a block device on one file, with positioned I/O and `fdatasync` on sync.
//!
//! Block `i` lives at byte offset `i * block_size` of the file; the file's length is
//! `block_count * block_size`. The device holds an exclusive advisory lock (`flock`) on the file
//! while open, so a second process (or a second open in this one) gets a clear error instead of
//! two writers corrupting each other. After a failed write or sync the device stays failed
//! (`Error::PreviousIo`) until reopened: once fsync has failed, Linux may have dropped the dirty
//! pages, so a later successful fsync would not mean the earlier writes are durable.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::device::{check_range, BlockDevice};
use crate::error::{Error, Result};

/// A block device stored in a single file.
pub struct FileDevice {
    file: File,
    path: PathBuf,
    block_size: usize,
    block_count: AtomicU64,
    /// Set after a failed write or sync; every later call fails with it.
    failed: Mutex<Option<String>>,
}

impl FileDevice {
    /// Creates (or truncates) `path` as a device of `block_count` zeroed blocks.
    pub fn create(path: impl AsRef<Path>, block_size: usize, block_count: u64) -> Result<Self> {
        check_block_size(block_size)?;
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(path.display().to_string(), e))?;
        // Lock before truncating, so a file in use by someone else is never wiped.
        lock(&file, &path)?;
        file.set_len(0)
            .map_err(|e| Error::io(path.display().to_string(), e))?;
        let dev = FileDevice {
            file,
            path,
            block_size,
            block_count: AtomicU64::new(0),
            failed: Mutex::new(None),
        };
        dev.set_block_count(block_count)?;
        Ok(dev)
    }

    /// Opens an existing file; its length must be a whole number of blocks.
    pub fn open(path: impl AsRef<Path>, block_size: usize) -> Result<Self> {
        check_block_size(block_size)?;
        let path = path.as_ref().to_path_buf();
        let name = path.display().to_string();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(name.clone(), e))?;
        lock(&file, &path)?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(name.clone(), e))?
            .len();
        if len % block_size as u64 != 0 {
            return Err(Error::Invalid(format!(
                "{name}: length {len} is not a multiple of the block size {block_size}"
            )));
        }
        Ok(FileDevice {
            file,
            path,
            block_size,
            block_count: AtomicU64::new(len / block_size as u64),
            failed: Mutex::new(None),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_failed(&self) -> Result<()> {
        match &*self.failed.lock().expect("invariant: lock not poisoned") {
            Some(reason) => Err(Error::PreviousIo {
                device: self.name(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn fail(&self, what: &str, err: std::io::Error) -> Error {
        *self.failed.lock().expect("invariant: lock not poisoned") = Some(format!("{what}: {err}"));
        Error::io(self.name(), err)
    }
}

/// Takes the exclusive lock, retrying for half a second: a child process that another thread has
/// forked but not yet exec'd holds copies of our descriptors, and so, briefly, a lock we released.
fn lock(file: &File, path: &Path) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Invalid(format!(
                    "{} is in use by another process (or opened twice)",
                    path.display()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(path.display().to_string(), e))
            }
        }
    }
}

fn check_block_size(block_size: usize) -> Result<()> {
    if block_size < 512 || !block_size.is_power_of_two() || block_size > 1 << 20 {
        return Err(Error::Invalid(format!(
            "block size {block_size} must be a power of two between 512 and 1 MiB"
        )));
    }
    Ok(())
}

impl BlockDevice for FileDevice {
    fn block_size(&self) -> usize {
        self.block_size
    }

    fn block_count(&self) -> u64 {
        self.block_count.load(Ordering::Acquire)
    }

    fn read(&self, start: u64, buf: &mut [u8]) -> Result<()> {
        check_range(
            &self.name(),
            self.block_size,
            self.block_count(),
            start,
            buf.len(),
        )?;
        self.check_failed()?;
        self.file
            .read_exact_at(buf, start * self.block_size as u64)
            .map_err(|e| Error::io(self.name(), e))
    }

    fn write(&self, start: u64, data: &[u8]) -> Result<()> {
        check_range(
            &self.name(),
            self.block_size,
            self.block_count(),
            start,
            data.len(),
        )?;
        self.check_failed()?;
        self.file
            .write_all_at(data, start * self.block_size as u64)
            .map_err(|e| self.fail("write", e))
    }

    fn sync(&self) -> Result<()> {
        self.check_failed()?;
        self.file.sync_data().map_err(|e| self.fail("fsync", e))
    }

    fn set_block_count(&self, count: u64) -> Result<()> {
        self.check_failed()?;
        let len = count
            .checked_mul(self.block_size as u64)
            .ok_or_else(|| Error::Invalid(format!("{count} blocks overflow a file length")))?;
        self.file.set_len(len).map_err(|e| self.fail("resize", e))?;
        self.block_count.store(count, Ordering::Release);
        Ok(())
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }
}
