//! The page format: the header every page starts with, and the layouts of the pages that are not
//! B+tree nodes (meta pages and freelist pages). Node layouts live in `btree::node`, overflow
//! pages in `btree::overflow`.
//!
//! A page is one block of the device: `page_size` bytes, a power of two from 1 KiB to 32 KiB
//! (node slot offsets are `u16`), chosen when the store is created.
//!
//! PAGE HEADER (first 16 bytes of every page, little-endian):
//!
//! | offset | size | meaning                                                              |
//! |--------|------|----------------------------------------------------------------------|
//! | 0      | 1    | page type: 1 meta, 2 leaf, 3 branch, 4 overflow, 5 freelist          |
//! | 1      | 1    | flags (0)                                                            |
//! | 2      | 2    | reserved (0)                                                         |
//! | 4      | 4    | CRC32 of the whole page with these four bytes taken as zero          |
//! | 8      | 8    | epoch: the checkpoint epoch in which the page was written            |
//!
//! The CRC is computed when a page goes to the device (`seal`) and checked when it comes back
//! (`check`); a mismatch is `StoreError::Corrupt` naming the page. A block never written reads as
//! zeros and fails the check too (the CRC of a zero page is not zero).
//!
//! META PAGE (pages 0 and 1; the one with the higher valid epoch is current):
//!
//! | offset | size | meaning                                                             |
//! |--------|------|---------------------------------------------------------------------|
//! | 0      | 16   | page header, type 1                                                 |
//! | 16     | 8    | magic `b"STRATADB"`                                                 |
//! | 24     | 4    | format version (2)                                                  |
//! | 28     | 4    | page size in bytes                                                  |
//! | 32     | 8    | epoch (checkpoint counter); the meta lives in page `epoch % 2`      |
//! | 40     | 8    | page count: pages `0..count` are in use or free, none beyond        |
//! | 48     | 8    | root page of the tree directory (a B+tree: name -> root page)       |
//! | 56     | 8    | first freelist page (0: no freelist pages)                          |
//! | 64     | 8    | number of free page ids in the freelist                             |
//! | 72     | 8    | number of freelist pages                                            |
//! | 80     | 8    | WAL LSN given at the checkpoint                                     |
//! | 88     | 4    | length of the user meta (at most 1024 and what fits in the page)    |
//! | 92     | n    | user meta bytes (opaque, given at the checkpoint)                   |
//!
//! FREELIST PAGE (a chain; together the pages list every page free as of the checkpoint):
//!
//! | offset | size | meaning                                              |
//! |--------|------|------------------------------------------------------|
//! | 0      | 16   | page header, type 5                                  |
//! | 16     | 8    | next freelist page (0: last)                         |
//! | 24     | 4    | number of ids in this page                           |
//! | 28     | 4    | reserved (0)                                         |
//! | 32     | 8*n  | free page ids                                        |
//!
//! FORMAT VERSIONS (a build opens only files of its own version, and says which it found):
//! 1, the first; 2, short one-version chains (`codec`) and the SQL layer's variable-length
//! integer keys.

use std::fmt;

/// Length of the header at the start of every page.
pub(crate) const HEADER_LEN: usize = 16;
/// Smallest supported page size.
pub(crate) const MIN_PAGE_SIZE: usize = 1024;
/// Largest supported page size (node offsets are `u16`).
pub(crate) const MAX_PAGE_SIZE: usize = 32768;
/// Format version written in the meta page.
pub(crate) const FORMAT_VERSION: u32 = 2;
/// Most user-meta bytes a checkpoint can carry (less on 1 KiB pages: what fits).
pub(crate) const MAX_USER_META: usize = 1024;

const MAGIC: &[u8; 8] = b"STRATADB";
const META_FIXED_LEN: usize = 92;
const FREELIST_IDS: usize = 32;

/// A page number: the block index on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PageId(pub u64);

impl fmt::Display for PageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a page holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum PageType {
    Meta = 1,
    Leaf = 2,
    Branch = 3,
    Overflow = 4,
    Freelist = 5,
}

impl PageType {
    fn from_u8(b: u8) -> Option<PageType> {
        Some(match b {
            1 => PageType::Meta,
            2 => PageType::Leaf,
            3 => PageType::Branch,
            4 => PageType::Overflow,
            5 => PageType::Freelist,
            _ => return None,
        })
    }
}

pub(crate) fn get_u16(p: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([p[at], p[at + 1]])
}

pub(crate) fn put_u16(p: &mut [u8], at: usize, v: u16) {
    p[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn get_u32(p: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(p[at..at + 4].try_into().expect("invariant: 4 bytes"))
}

pub(crate) fn put_u32(p: &mut [u8], at: usize, v: u32) {
    p[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn get_u64(p: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(p[at..at + 8].try_into().expect("invariant: 8 bytes"))
}

pub(crate) fn put_u64(p: &mut [u8], at: usize, v: u64) {
    p[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// The page type, if the type byte is a known one.
pub(crate) fn page_type(p: &[u8]) -> Option<PageType> {
    PageType::from_u8(p[0])
}

/// The epoch in which the page was written.
pub(crate) fn epoch(p: &[u8]) -> u64 {
    get_u64(p, 8)
}

pub(crate) fn set_epoch(p: &mut [u8], epoch: u64) {
    put_u64(p, 8, epoch);
}

/// Clears the header and sets type and epoch (the rest of the page is left alone).
pub(crate) fn init_header(p: &mut [u8], ty: PageType, epoch: u64) {
    p[..HEADER_LEN].fill(0);
    p[0] = ty as u8;
    set_epoch(p, epoch);
}

/// A zeroed page with a header of this type and epoch.
pub(crate) fn new_page(page_size: usize, ty: PageType, epoch: u64) -> Vec<u8> {
    let mut p = vec![0u8; page_size];
    init_header(&mut p, ty, epoch);
    p
}

fn compute_crc(p: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&p[..4]);
    h.update(&[0u8; 4]);
    h.update(&p[8..]);
    h.finalize()
}

/// Stores the CRC of the page in its header; done just before the page goes to the device.
pub(crate) fn seal(p: &mut [u8]) {
    let crc = compute_crc(p);
    put_u32(p, 4, crc);
}

/// Checks the CRC and the type byte of a page read from the device.
pub(crate) fn check(p: &[u8]) -> Result<PageType, String> {
    let stored = get_u32(p, 4);
    let computed = compute_crc(p);
    if stored != computed {
        return Err(format!(
            "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
        ));
    }
    page_type(p).ok_or_else(|| format!("unknown page type {}", p[0]))
}

/// The contents of a meta page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub epoch: u64,
    pub page_count: u64,
    pub dir_root: PageId,
    pub freelist_head: PageId,
    pub freelist_len: u64,
    pub freelist_pages: u64,
    pub wal_lsn: u64,
    pub user_meta: Vec<u8>,
}

/// Why a meta page could not be used.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum MetaError {
    /// The block does not hold a Strata meta page at all (wrong magic: another file, or zeros).
    NotStrata,
    /// A Strata meta page with another page size than the device's block size.
    PageSize { stored: u32 },
    /// An intact Strata meta page of another format version.
    Version { found: u32 },
    /// A Strata meta page that fails its checks (torn or damaged).
    Damaged(String),
}

/// Largest user meta a page of this size can carry.
pub(crate) fn max_user_meta(page_size: usize) -> usize {
    MAX_USER_META.min(page_size - META_FIXED_LEN)
}

impl Meta {
    /// Encodes into a page (sealed, ready to write).
    pub(crate) fn encode(&self, page_size: usize) -> Vec<u8> {
        assert!(
            self.user_meta.len() <= max_user_meta(page_size),
            "invariant: user meta length checked by the caller"
        );
        let mut p = new_page(page_size, PageType::Meta, self.epoch);
        p[16..24].copy_from_slice(MAGIC);
        put_u32(&mut p, 24, FORMAT_VERSION);
        put_u32(&mut p, 28, page_size as u32);
        put_u64(&mut p, 32, self.epoch);
        put_u64(&mut p, 40, self.page_count);
        put_u64(&mut p, 48, self.dir_root.0);
        put_u64(&mut p, 56, self.freelist_head.0);
        put_u64(&mut p, 64, self.freelist_len);
        put_u64(&mut p, 72, self.freelist_pages);
        put_u64(&mut p, 80, self.wal_lsn);
        put_u32(&mut p, 88, self.user_meta.len() as u32);
        p[META_FIXED_LEN..META_FIXED_LEN + self.user_meta.len()].copy_from_slice(&self.user_meta);
        seal(&mut p);
        p
    }

    /// Decodes a block read from the device (whose block size is `page_size`).
    pub(crate) fn decode(p: &[u8], page_size: usize) -> Result<Meta, MetaError> {
        if p.len() < META_FIXED_LEN || &p[16..24] != MAGIC {
            return Err(MetaError::NotStrata);
        }
        let stored = get_u32(p, 28);
        if stored as usize != page_size {
            return Err(MetaError::PageSize { stored });
        }
        match check(p) {
            Ok(PageType::Meta) => {}
            Ok(other) => return Err(MetaError::Damaged(format!("page type {other:?}"))),
            Err(reason) => return Err(MetaError::Damaged(reason)),
        }
        let version = get_u32(p, 24);
        if version != FORMAT_VERSION {
            return Err(MetaError::Version { found: version });
        }
        let len = get_u32(p, 88) as usize;
        if len > max_user_meta(page_size) {
            return Err(MetaError::Damaged(format!("user meta length {len}")));
        }
        let meta = Meta {
            epoch: get_u64(p, 32),
            page_count: get_u64(p, 40),
            dir_root: PageId(get_u64(p, 48)),
            freelist_head: PageId(get_u64(p, 56)),
            freelist_len: get_u64(p, 64),
            freelist_pages: get_u64(p, 72),
            wal_lsn: get_u64(p, 80),
            user_meta: p[META_FIXED_LEN..META_FIXED_LEN + len].to_vec(),
        };
        if epoch(p) != meta.epoch {
            return Err(MetaError::Damaged(
                "header epoch differs from meta epoch".into(),
            ));
        }
        if meta.page_count < 3
            || meta.dir_root.0 < 2
            || meta.dir_root.0 >= meta.page_count
            || (meta.freelist_head.0 != 0
                && (meta.freelist_head.0 < 2 || meta.freelist_head.0 >= meta.page_count))
        {
            return Err(MetaError::Damaged(format!(
                "page references out of range (page count {}, directory {}, freelist {})",
                meta.page_count, meta.dir_root, meta.freelist_head
            )));
        }
        Ok(meta)
    }
}

/// How many page ids one freelist page holds.
pub(crate) fn freelist_capacity(page_size: usize) -> usize {
    (page_size - FREELIST_IDS) / 8
}

/// Encodes one freelist page (sealed) holding `ids`, linked to `next` (0: last).
pub(crate) fn encode_freelist(
    page_size: usize,
    epoch: u64,
    next: PageId,
    ids: &[PageId],
) -> Vec<u8> {
    assert!(
        ids.len() <= freelist_capacity(page_size),
        "invariant: freelist page overfull"
    );
    let mut p = new_page(page_size, PageType::Freelist, epoch);
    put_u64(&mut p, 16, next.0);
    put_u32(&mut p, 24, ids.len() as u32);
    for (i, id) in ids.iter().enumerate() {
        put_u64(&mut p, FREELIST_IDS + 8 * i, id.0);
    }
    seal(&mut p);
    p
}

/// Decodes a freelist page (already CRC-checked): the next page and the ids.
pub(crate) fn decode_freelist(p: &[u8]) -> Result<(PageId, Vec<PageId>), String> {
    if page_type(p) != Some(PageType::Freelist) {
        return Err(format!("expected a freelist page, found type {}", p[0]));
    }
    let n = get_u32(p, 24) as usize;
    if n > freelist_capacity(p.len()) {
        return Err(format!("freelist page claims {n} ids"));
    }
    let ids = (0..n)
        .map(|i| PageId(get_u64(p, FREELIST_IDS + 8 * i)))
        .collect();
    Ok((PageId(get_u64(p, 16)), ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            epoch: 7,
            page_count: 100,
            dir_root: PageId(5),
            freelist_head: PageId(9),
            freelist_len: 30,
            freelist_pages: 1,
            wal_lsn: 12345,
            user_meta: b"hello".to_vec(),
        }
    }

    #[test]
    fn crc_detects_any_flipped_byte() {
        let mut p = new_page(1024, PageType::Leaf, 3);
        p[100] = 42;
        seal(&mut p);
        assert_eq!(check(&p), Ok(PageType::Leaf));
        for at in [0usize, 5, 9, 100, 1023] {
            let mut q = p.clone();
            q[at] ^= 0x10;
            assert!(check(&q).is_err(), "flip at {at} undetected");
        }
        assert!(check(&vec![0u8; 1024]).is_err(), "a zero page is not valid");
    }

    #[test]
    fn meta_round_trip_and_rejections() {
        let m = meta();
        let p = m.encode(4096);
        assert_eq!(Meta::decode(&p, 4096), Ok(m.clone()));
        assert_eq!(
            Meta::decode(&p, 8192),
            Err(MetaError::PageSize { stored: 4096 })
        );
        assert_eq!(
            Meta::decode(&vec![0; 4096], 4096),
            Err(MetaError::NotStrata)
        );
        let mut torn = p.clone();
        torn[2000..].copy_from_slice(&vec![0xAA; 2096]);
        assert!(matches!(
            Meta::decode(&torn, 4096),
            Err(MetaError::Damaged(_))
        ));
        let mut old = p.clone();
        put_u32(&mut old, 24, 1);
        seal(&mut old);
        assert_eq!(
            Meta::decode(&old, 4096),
            Err(MetaError::Version { found: 1 })
        );
        let mut too_big = m;
        too_big.user_meta = vec![1; max_user_meta(1024)];
        let p = too_big.encode(1024);
        assert_eq!(Meta::decode(&p, 1024).unwrap().user_meta.len(), 932);
    }

    #[test]
    fn freelist_round_trip() {
        let ids: Vec<PageId> = (10..10 + freelist_capacity(1024) as u64)
            .map(PageId)
            .collect();
        let p = encode_freelist(1024, 2, PageId(77), &ids);
        assert_eq!(check(&p), Ok(PageType::Freelist));
        assert_eq!(decode_freelist(&p), Ok((PageId(77), ids)));
    }
}
