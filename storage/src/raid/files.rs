//! Member files: creating, opening and replacing the files of an array, as `strata raid` does.
//!
//! A member given by path is opened with the block size its superblock names. A path that does not
//! exist is a missing member; a file that cannot be opened as a device (unreadable, or a length that
//! is not whole blocks) is a failed one. Everything else is judged by `RaidArray::assemble`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::file::FileDevice;
use crate::raid::array::{ArrayStatus, MemberSlot, MemberState, RaidArray, RaidConfig};

/// Creates (or overwrites) the member files and returns the open array.
pub fn create_files(paths: &[PathBuf], config: &RaidConfig) -> Result<RaidArray> {
    let mut devices: Vec<Arc<dyn BlockDevice>> = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        if paths[..i].contains(p) {
            return Err(Error::Invalid(format!("{} is given twice", p.display())));
        }
        devices.push(Arc::new(FileDevice::create(p, config.block_size, 0)?));
    }
    RaidArray::create(config, devices)
}

/// Opens each path as a member slot.
pub fn open_member_files(paths: &[PathBuf]) -> Vec<MemberSlot> {
    paths.iter().map(|p| open_member_file(p)).collect()
}

fn open_member_file(path: &Path) -> MemberSlot {
    let name = path.display().to_string();
    let absent = |state| MemberSlot::Absent {
        name: name.clone(),
        state,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return absent(MemberState::Missing("no such file".into()))
        }
        Err(e) => return absent(MemberState::Failed(format!("cannot open: {e}"))),
    };
    if !meta.is_file() {
        return absent(MemberState::Failed("not a regular file".into()));
    }
    // The block size is in the superblock header; a file without one is still opened (with the
    // smallest block size) so assembly can say why it is not a member.
    let block_size = read_block_size(path).unwrap_or(512);
    if meta.len() % block_size as u64 != 0 {
        return absent(MemberState::Failed(format!(
            "truncated: {} bytes is not a whole number of {block_size}-byte blocks",
            meta.len()
        )));
    }
    match FileDevice::open(path, block_size) {
        Ok(dev) => MemberSlot::Present {
            name,
            device: Arc::new(dev),
        },
        Err(e) => absent(MemberState::Failed(e.to_string())),
    }
}

fn read_block_size(path: &Path) -> Option<usize> {
    use std::io::Read;
    let mut header = [0u8; 16];
    std::fs::File::open(path)
        .ok()?
        .read_exact(&mut header)
        .ok()?;
    if &header[0..8] != b"STRATRAI" {
        return None;
    }
    let bs = u32::from_le_bytes(header[12..16].try_into().ok()?) as usize;
    (bs >= 512 && bs.is_power_of_two() && bs <= 1 << 20).then_some(bs)
}

/// Assembles the array on these files for reading and writing.
pub fn assemble_files(paths: &[PathBuf]) -> Result<RaidArray> {
    RaidArray::assemble(open_member_files(paths))
}

/// The array's status, without changing any file.
pub fn inspect_files(paths: &[PathBuf]) -> Result<ArrayStatus> {
    RaidArray::inspect(&open_member_files(paths))
}

/// Creates `new_path` and rebuilds member `index` onto it.
pub fn replace_with_file(
    array: &RaidArray,
    index: usize,
    new_path: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let geo = array.geometry();
    let dev = FileDevice::create(new_path, geo.block_size, geo.member_blocks())?;
    array.replace_member(
        index,
        new_path.display().to_string(),
        Arc::new(dev),
        progress,
    )
}
