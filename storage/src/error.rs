//! The storage crate's one error type.
//!
//! Variants carry their context (device, block, member) in fields so callers can branch on them and
//! messages say exactly what failed. `is_data_loss` tells a caller that retrying cannot help.

use std::path::PathBuf;

/// Everything that can go wrong below the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error on a device.
    #[error("I/O error on {device}: {source}")]
    Io {
        device: String,
        #[source]
        source: std::io::Error,
    },
    /// The device saw a failed write or sync earlier and refuses further I/O until it is reopened
    /// (after a failed fsync the page cache state is unknown, so continuing could lose data silently).
    #[error("{device} failed earlier ({reason}); reopen it to continue")]
    PreviousIo { device: String, reason: String },
    /// A block index beyond the end of the device.
    #[error("blocks {start}..{end} out of range on {device} ({count} blocks)")]
    OutOfRange {
        device: String,
        start: u64,
        end: u64,
        count: u64,
    },
    /// A buffer whose length is not a positive multiple of the block size.
    #[error("buffer of {len} bytes is not a positive multiple of the block size {block_size}")]
    BadLength { len: usize, block_size: usize },
    /// A fault injected by `FaultyDevice`.
    #[error("injected fault on {device}: {what}")]
    Injected { device: String, what: String },
    /// An invalid argument or configuration (sizes, levels, member counts).
    #[error("{0}")]
    Invalid(String),
    /// The device cannot change its size.
    #[error("{device} cannot be resized: {reason}")]
    NotResizable { device: String, reason: String },
    /// A RAID member's superblock is missing, corrupt, or from another array.
    #[error("{path}: {reason}")]
    BadMember { path: PathBuf, reason: String },
    /// Too many members are unavailable for the array to be assembled.
    #[error("RAID-{level} array cannot run: {unavailable}; it tolerates {tolerance}")]
    TooManyFailures {
        level: u8,
        /// Each unavailable member with its path and why, e.g. `member 1 (d1.img) missing (...)`.
        unavailable: String,
        tolerance: String,
    },
    /// A block that could not be read or reconstructed from any redundancy.
    #[error("array block {block}: data lost ({reason})")]
    DataLost { block: u64, reason: String },
}

impl Error {
    /// An I/O error, named after its device.
    pub fn io(device: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            device: device.into(),
            source,
        }
    }

    /// True when the data asked for is gone and no retry can bring it back.
    pub fn is_data_loss(&self) -> bool {
        matches!(self, Error::DataLost { .. } | Error::TooManyFailures { .. })
    }
}

/// Result with the storage error.
pub type Result<T> = std::result::Result<T, Error>;
