//! # strata-storage: block devices and the RAID layer
//!
//! The bottom layer of Strata. Everything above it stores data through one small trait,
//! [`BlockDevice`] (fixed-size blocks: read, write, sync, block count), whose contract is written
//! on the trait and checked for every implementation by `tests/conformance.rs`:
//!
//! - [`FileDevice`]: one file, positioned I/O, `fdatasync` on sync.
//! - [`MemDevice`]: memory, for tests, benchmarks and in-memory databases.
//! - [`FaultyDevice`]: wraps another device and injects faults (dead disk, power cut after N
//!   writes, torn writes, bit flips on read or at rest).
//! - [`raid::RaidArray`]: RAID 0, 1, 5, 6, 10 over member devices, itself a `BlockDevice`.
//!
//! ```
//! use std::sync::Arc;
//! use strata_storage::{BlockDevice, MemDevice};
//! use strata_storage::raid::{Level, RaidArray, RaidConfig};
//!
//! let config = RaidConfig::new(Level::Raid5, 1 << 20);
//! let members: Vec<Arc<dyn BlockDevice>> = (0..4)
//!     .map(|_| Arc::new(MemDevice::new(config.block_size, 0)) as Arc<dyn BlockDevice>)
//!     .collect();
//! let array = RaidArray::create(&config, members).unwrap();
//! array.write(0, &vec![7u8; 4096]).unwrap();
//! array.sync().unwrap();
//! let mut back = vec![0u8; 4096];
//! array.read(0, &mut back).unwrap();
//! assert_eq!(back, vec![7u8; 4096]);
//! ```

mod device;
mod error;
mod faulty;
mod file;
mod mem;
pub mod raid;

pub use device::{check_range, read_bytes, write_bytes, BlockDevice};
pub use error::{Error, Result};
pub use faulty::{Faults, FaultyDevice};
pub use file::FileDevice;
pub use mem::MemDevice;
