//! Overflow chains: values too large to sit in a leaf (more than a quarter page) are written to a
//! chain of overflow pages, and the leaf cell keeps the first page and the total length.
//!
//! LAYOUT of an overflow page (after the 16-byte page header, type 4):
//!
//! | offset | size | meaning                                        |
//! |--------|------|------------------------------------------------|
//! | 16     | 8    | next page of the chain (0: last)               |
//! | 24     | 4    | bytes of the value in this page                |
//! | 28     | ...  | the bytes                                      |
//!
//! Every page but the last is full, so the chain of a value of length `len` has exactly
//! `ceil(len / (page_size - 28))` pages; a chain that is longer or shorter, or a page whose byte
//! count differs from that rule, is corrupt. That bound also ends the walk on a cyclic chain.
//!
//! Chains are immutable: changing a value writes a new chain and frees the old one. They are
//! written straight to freshly allocated pages (never dirty in the buffer pool). A chain of one
//! page (a catalog entry, a long text) is read through the pool, clean, so reading it again costs
//! no device read; longer chains bypass the pool (a 16 MiB value would flush it) and are read
//! straight from the device, in runs of contiguous pages when the allocator gave them. The pager
//! drops a cached page when its id is allocated again, so a cached chain page is never stale.

use crate::btree::MAX_IO_RUN;
use crate::page::{self, get_u32, get_u64, put_u32, put_u64, PageId, PageType};
use crate::pager::Pager;
use crate::store::StoreError;

type Result<T> = std::result::Result<T, StoreError>;

const NEXT_AT: usize = 16;
const LEN_AT: usize = 24;
const DATA_AT: usize = 28;

/// Value bytes one overflow page holds.
pub(crate) fn capacity(page_size: usize) -> usize {
    page_size - DATA_AT
}

/// Pages of the chain of a value of `len` bytes.
pub(crate) fn pages_for(page_size: usize, len: u64) -> u64 {
    len.div_ceil(capacity(page_size) as u64).max(1)
}

/// Writes `value` to a new chain; returns its first page.
pub(crate) fn write(pager: &mut Pager, value: &[u8]) -> Result<PageId> {
    let ps = pager.page_size();
    let cap = capacity(ps);
    let n = pages_for(ps, value.len() as u64) as usize;
    let ids = (0..n)
        .map(|_| pager.alloc())
        .collect::<Result<Vec<PageId>>>()?;
    let epoch = pager.current_epoch();
    let mut staging = Vec::with_capacity(ps * n.min(MAX_IO_RUN));
    let mut i = 0;
    while i < n {
        let start = ids[i];
        staging.clear();
        let mut j = i;
        while j < n && j - i < MAX_IO_RUN && ids[j].0 == start.0 + (j - i) as u64 {
            let chunk = &value[(j * cap).min(value.len())..((j + 1) * cap).min(value.len())];
            let at = staging.len();
            staging.resize(at + ps, 0);
            let p = &mut staging[at..];
            page::init_header(p, PageType::Overflow, epoch);
            put_u64(p, NEXT_AT, ids.get(j + 1).map_or(0, |id| id.0));
            put_u32(p, LEN_AT, chunk.len() as u32);
            p[DATA_AT..DATA_AT + chunk.len()].copy_from_slice(chunk);
            j += 1;
        }
        pager.write_direct(start, &mut staging)?;
        i = j;
    }
    Ok(ids[0])
}

/// Visits the pages of the chain at `first` holding `len` bytes, in order, with each page's id,
/// bytes and the value bytes it holds; checks CRC, type and lengths on the way.
pub(crate) fn walk(
    pager: &Pager,
    first: PageId,
    len: u64,
    mut visit: impl FnMut(PageId, &[u8], &[u8]) -> Result<()>,
) -> Result<()> {
    let ps = pager.page_size();
    let cap = capacity(ps) as u64;
    let mut pages_left = pages_for(ps, len);
    let mut bytes_left = len;
    let mut id = first;
    if pages_left == 1 {
        let p = pager.read(first, is_overflow_page)?;
        let n = check_chain_page(&p, first, len, cap, true)?;
        return visit(first, &p, &p[DATA_AT..DATA_AT + n as usize]);
    }
    // Read ahead in growing runs while the chain is contiguous, one page at a time when not.
    let mut run = 1usize;
    let mut buf = Vec::new();
    while pages_left > 0 {
        let room = pager.page_count().saturating_sub(id.0).max(1);
        let batch = (run as u64).min(pages_left).min(room) as usize;
        buf.resize(batch * ps, 0);
        pager.read_direct(id, &mut buf)?;
        let mut k = 0;
        let contiguous = loop {
            let p = &buf[k * ps..(k + 1) * ps];
            page::check(p).map_err(|reason| StoreError::Corrupt { page: id.0, reason })?;
            let n = check_chain_page(p, id, bytes_left, cap, pages_left == 1)?;
            visit(id, p, &p[DATA_AT..DATA_AT + n as usize])?;
            bytes_left -= n;
            pages_left -= 1;
            if pages_left == 0 {
                return Ok(());
            }
            let next = get_u64(p, NEXT_AT);
            let adjacent = next == id.0 + 1;
            id = PageId(next);
            k += 1;
            if !adjacent || k == batch {
                break adjacent;
            }
        };
        run = if contiguous {
            (run * 2).min(MAX_IO_RUN)
        } else {
            1
        };
    }
    Ok(())
}

/// The type check of a page read as part of a chain (the pool's validation of a one-page
/// chain, whose CRC the pool has checked).
fn is_overflow_page(p: &[u8]) -> std::result::Result<(), String> {
    match page::page_type(p) {
        Some(PageType::Overflow) => Ok(()),
        Some(other) => Err(format!("expected an overflow page, found {other:?}")),
        None => Err(format!("unknown page type {}", p[0])),
    }
}

/// Checks page `id` of a chain (its CRC already checked): an overflow page holding
/// `bytes_left.min(cap)` bytes, whose next page is 0 exactly when it is the `last`. Returns the
/// value bytes it holds.
fn check_chain_page(p: &[u8], id: PageId, bytes_left: u64, cap: u64, last: bool) -> Result<u64> {
    let corrupt = |reason: String| StoreError::Corrupt { page: id.0, reason };
    is_overflow_page(p).map_err(corrupt)?;
    let n = u64::from(get_u32(p, LEN_AT));
    if n != bytes_left.min(cap) {
        return Err(corrupt(format!(
            "holds {n} bytes, expected {} ({bytes_left} of the value left)",
            bytes_left.min(cap)
        )));
    }
    match (get_u64(p, NEXT_AT), last) {
        (0, true) => Ok(n),
        (next, true) => Err(corrupt(format!(
            "chain goes on to page {next} past the value's end"
        ))),
        (0, false) => Err(corrupt(format!(
            "chain ends with {} bytes missing",
            bytes_left - n
        ))),
        (_, false) => Ok(n),
    }
}

/// Reads a whole value.
pub(crate) fn read(pager: &Pager, first: PageId, len: u64) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(len.min(1 << 26) as usize);
    walk(pager, first, len, |_, _, data| {
        out.extend_from_slice(data);
        Ok(())
    })?;
    Ok(out)
}

/// Frees every page of a chain (each by the epoch that wrote it).
pub(crate) fn free(pager: &mut Pager, first: PageId, len: u64) -> Result<()> {
    let mut pages = Vec::new();
    walk(pager, first, len, |id, p, _| {
        pages.push((id, page::epoch(p)));
        Ok(())
    })?;
    for (id, epoch) in pages {
        pager.release(id, epoch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use strata_storage::MemDevice;

    fn pager() -> (MemDevice, Pager) {
        let mem = MemDevice::new(1024, 0);
        let mut pager = Pager::create(Arc::new(mem.clone()), 8).unwrap();
        let root = pager.alloc().unwrap();
        let p = crate::btree::node::new_leaf(1024, pager.current_epoch());
        pager.put(root, p).unwrap();
        pager.checkpoint(root, 0, &[]).unwrap();
        (mem, pager)
    }

    #[test]
    fn round_trip_and_free() {
        let (_, mut pager) = pager();
        let value: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let first = write(&mut pager, &value).unwrap();
        assert_eq!(read(&pager, first, value.len() as u64).unwrap(), value);
        let before = pager.space().free;
        free(&mut pager, first, value.len() as u64).unwrap();
        assert_eq!(
            pager.space().free - before,
            pages_for(1024, value.len() as u64),
            "fresh chain pages are free at once"
        );
        // Reused, but fragmented now: still reads back.
        let _hole = pager.alloc().unwrap();
        let first = write(&mut pager, &value[..5000]).unwrap();
        assert_eq!(read(&pager, first, 5000).unwrap(), &value[..5000]);
    }

    #[test]
    fn one_page_chains_are_cached_and_never_stale() {
        use std::sync::atomic::Ordering;
        let (_, mut pager) = pager();
        let reads = |p: &Pager| p.counters().reads.load(Ordering::Relaxed);
        let value = vec![7u8; 500];
        let first = write(&mut pager, &value).unwrap();
        assert_eq!(read(&pager, first, 500).unwrap(), value);
        let after_first = reads(&pager);
        assert_eq!(read(&pager, first, 500).unwrap(), value);
        assert_eq!(reads(&pager), after_first, "second read came from the pool");
        // Freed and written again at the same page: the new bytes, not the cached ones.
        free(&mut pager, first, 500).unwrap();
        let other = vec![9u8; 300];
        let again = write(&mut pager, &other).unwrap();
        assert_eq!(again, first, "the freed page is reused");
        assert_eq!(read(&pager, again, 300).unwrap(), other);
        assert!(matches!(
            read(&pager, again, 500),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn wrong_length_or_damage_is_corrupt() {
        let (mem, mut pager) = pager();
        let value = vec![5u8; 3000];
        let first = write(&mut pager, &value).unwrap();
        assert!(matches!(
            read(&pager, first, 2000),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            read(&pager, first, 4000),
            Err(StoreError::Corrupt { .. })
        ));
        mem.corrupt((first.0 as usize + 1) * 1024 + 500, 0x40);
        match read(&pager, first, 3000) {
            Err(StoreError::Corrupt { page, .. }) => assert_eq!(page, first.0 + 1),
            other => panic!("expected corruption, got {other:?}"),
        }
    }
}
