//! B+tree node pages: slotted leaves and branches, read and changed in place as bytes.
//!
//! LAYOUT (after the 16-byte page header, little-endian):
//!
//! | offset | size | meaning                                                               |
//! |--------|------|-----------------------------------------------------------------------|
//! | 16     | 2    | n: cells in the page (leaf: entries; branch: keys)                    |
//! | 18     | 2    | content start: cells occupy `[content start, page size)`               |
//! | 20     | 2    | garbage: bytes in the content area not used by any live cell          |
//! | 22     | 2    | reserved (0)                                                          |
//! | 24     | 8    | branch only: child 0, the leftmost child                              |
//! | 24/32  | 2*n  | slot array: offsets of the cells, in key order (leaf 24, branch 32)   |
//!
//! Free space lies between the slot array and the content start; cells are added at the low
//! end of the content area, slots are kept sorted. Removing a cell leaves garbage that is
//! reclaimed by compacting the page when an insert needs the room.
//!
//! CELLS:
//!
//! - leaf: key length u16, value length u32, key, value. If bit 31 of the value length is
//!   set, the value is in an overflow chain: the low 31 bits are its length, and the cell holds
//!   the chain's first page (u64) instead of the value.
//! - branch: key length u16, child page u64, key. The child to the right of key `i` is child
//!   `i + 1`: every key in child `i + 1` is `>= key i` and `< key i+1`.
//!
//! Pages read from the device are checked by `validate` before use, so a damaged page that
//! passes its CRC still cannot make these accessors index out of bounds.

use std::cmp::Ordering;

use crate::page::{self, get_u16, get_u32, get_u64, put_u16, put_u64, PageId, PageType};

const N_AT: usize = 16;
const CONTENT_AT: usize = 18;
const GARBAGE_AT: usize = 20;
const LEFT_CHILD_AT: usize = 24;
/// Start of the slot array of a leaf.
pub(crate) const LEAF_SLOTS: usize = 24;
/// Start of the slot array of a branch.
pub(crate) const BRANCH_SLOTS: usize = 32;
/// Bytes of a leaf cell before its key.
pub(crate) const LEAF_CELL_HEADER: usize = 6;
/// Bytes of a branch cell before its key.
pub(crate) const BRANCH_CELL_HEADER: usize = 10;
const OVERFLOW_BIT: u32 = 1 << 31;
/// Largest value an overflow chain can hold (31-bit length).
pub(crate) const MAX_VALUE_LEN: u64 = (OVERFLOW_BIT - 1) as u64;

/// A leaf's value: inline bytes, or a reference to an overflow chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Inline(&'a [u8]),
    Overflow { first: PageId, len: u64 },
}

pub(crate) fn is_leaf(p: &[u8]) -> bool {
    p[0] == PageType::Leaf as u8
}

pub(crate) fn count(p: &[u8]) -> usize {
    get_u16(p, N_AT) as usize
}

fn slot_base(p: &[u8]) -> usize {
    if is_leaf(p) {
        LEAF_SLOTS
    } else {
        BRANCH_SLOTS
    }
}

fn content_start(p: &[u8]) -> usize {
    get_u16(p, CONTENT_AT) as usize
}

fn garbage(p: &[u8]) -> usize {
    get_u16(p, GARBAGE_AT) as usize
}

fn slot(p: &[u8], i: usize) -> usize {
    get_u16(p, slot_base(p) + 2 * i) as usize
}

/// Length of the cell at `off` of a page of this kind.
fn cell_len_at(p: &[u8], leaf: bool, off: usize) -> usize {
    let klen = get_u16(p, off) as usize;
    if leaf {
        let v = get_u32(p, off + 2);
        let body = if v & OVERFLOW_BIT != 0 { 8 } else { v as usize };
        LEAF_CELL_HEADER + klen + body
    } else {
        BRANCH_CELL_HEADER + klen
    }
}

/// The raw bytes of cell `i`.
pub(crate) fn cell(p: &[u8], i: usize) -> &[u8] {
    let off = slot(p, i);
    &p[off..off + cell_len_at(p, is_leaf(p), off)]
}

/// Key `i`.
pub(crate) fn key(p: &[u8], i: usize) -> &[u8] {
    let off = slot(p, i);
    let klen = get_u16(p, off) as usize;
    let at = off
        + if is_leaf(p) {
            LEAF_CELL_HEADER
        } else {
            BRANCH_CELL_HEADER
        };
    &p[at..at + klen]
}

/// The key of a raw cell.
pub(crate) fn raw_cell_key(cell: &[u8], leaf: bool) -> &[u8] {
    let klen = get_u16(cell, 0) as usize;
    let at = if leaf {
        LEAF_CELL_HEADER
    } else {
        BRANCH_CELL_HEADER
    };
    &cell[at..at + klen]
}

/// Key and value of leaf entry `i` (of a leaf page), read in one go.
#[inline(always)]
pub(crate) fn leaf_entry(p: &[u8], i: usize) -> (&[u8], Value<'_>) {
    let off = get_u16(p, LEAF_SLOTS + 2 * i) as usize;
    let klen = get_u16(p, off) as usize;
    let v = get_u32(p, off + 2);
    let at = off + LEAF_CELL_HEADER;
    let key = &p[at..at + klen];
    let value = if v & OVERFLOW_BIT != 0 {
        Value::Overflow {
            first: PageId(get_u64(p, at + klen)),
            len: u64::from(v & !OVERFLOW_BIT),
        }
    } else {
        Value::Inline(&p[at + klen..at + klen + v as usize])
    };
    (key, value)
}

/// The value of leaf cell `i`.
pub(crate) fn value(p: &[u8], i: usize) -> Value<'_> {
    raw_cell_value(cell(p, i))
}

/// The value of a raw leaf cell.
pub(crate) fn raw_cell_value(cell: &[u8]) -> Value<'_> {
    let klen = get_u16(cell, 0) as usize;
    let v = get_u32(cell, 2);
    let at = LEAF_CELL_HEADER + klen;
    if v & OVERFLOW_BIT != 0 {
        Value::Overflow {
            first: PageId(get_u64(cell, at)),
            len: u64::from(v & !OVERFLOW_BIT),
        }
    } else {
        Value::Inline(&cell[at..at + v as usize])
    }
}

/// Child `i` of a branch, `0..=n`.
pub(crate) fn child(p: &[u8], i: usize) -> PageId {
    if i == 0 {
        PageId(get_u64(p, LEFT_CHILD_AT))
    } else {
        PageId(get_u64(p, slot(p, i - 1) + 2))
    }
}

/// The child of a raw branch cell.
pub(crate) fn raw_cell_child(cell: &[u8]) -> PageId {
    PageId(get_u64(cell, 2))
}

pub(crate) fn set_child(p: &mut [u8], i: usize, child: PageId) {
    let at = if i == 0 {
        LEFT_CHILD_AT
    } else {
        slot(p, i - 1) + 2
    };
    put_u64(p, at, child.0);
}

/// Binary search over the keys: `Ok(i)` if key `i` equals `k`, else `Err(insertion point)`.
pub(crate) fn search(p: &[u8], k: &[u8]) -> Result<usize, usize> {
    let (mut lo, mut hi) = (0, count(p));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match key(p, mid).cmp(k) {
            Ordering::Less => lo = mid + 1,
            Ordering::Greater => hi = mid,
            Ordering::Equal => return Ok(mid),
        }
    }
    Err(lo)
}

/// Number of keys `<= k`: in a branch, the index of the child whose range holds `k`.
pub(crate) fn upper_bound(p: &[u8], k: &[u8]) -> usize {
    match search(p, k) {
        Ok(i) => i + 1,
        Err(i) => i,
    }
}

/// Number of keys `< k`.
pub(crate) fn lower_bound(p: &[u8], k: &[u8]) -> usize {
    match search(p, k) {
        Ok(i) | Err(i) => i,
    }
}

/// Bytes usable for cells and slots.
pub(crate) fn capacity(p: &[u8]) -> usize {
    p.len() - slot_base(p)
}

/// Bytes used by cells and slots.
pub(crate) fn fill(p: &[u8]) -> usize {
    let n = count(p);
    2 * n + (p.len() - content_start(p) - garbage(p))
}

/// A new empty leaf.
pub(crate) fn new_leaf(page_size: usize, epoch: u64) -> Vec<u8> {
    let mut p = page::new_page(page_size, PageType::Leaf, epoch);
    clear(&mut p);
    p
}

/// A new branch with only its leftmost child.
pub(crate) fn new_branch(page_size: usize, epoch: u64, left: PageId) -> Vec<u8> {
    let mut p = page::new_page(page_size, PageType::Branch, epoch);
    clear(&mut p);
    put_u64(&mut p, LEFT_CHILD_AT, left.0);
    p
}

/// Removes every cell (a branch keeps its leftmost child).
pub(crate) fn clear(p: &mut [u8]) {
    let len = p.len();
    put_u16(p, N_AT, 0);
    put_u16(p, CONTENT_AT, len as u16);
    put_u16(p, GARBAGE_AT, 0);
    put_u16(p, 22, 0);
}

/// Encodes a leaf cell with an inline value into `out`.
pub(crate) fn encode_leaf_cell(out: &mut Vec<u8>, k: &[u8], v: Value<'_>) {
    out.clear();
    out.extend_from_slice(&(k.len() as u16).to_le_bytes());
    match v {
        Value::Inline(bytes) => {
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(bytes);
        }
        Value::Overflow { first, len } => {
            out.extend_from_slice(&(len as u32 | OVERFLOW_BIT).to_le_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(&first.0.to_le_bytes());
        }
    }
}

/// Size of the leaf cell (without its slot) for this key and value.
pub(crate) fn leaf_cell_len(k: &[u8], v: Value<'_>) -> usize {
    LEAF_CELL_HEADER
        + k.len()
        + match v {
            Value::Inline(bytes) => bytes.len(),
            Value::Overflow { .. } => 8,
        }
}

/// Encodes a branch cell into `out`.
pub(crate) fn encode_branch_cell(out: &mut Vec<u8>, k: &[u8], child: PageId) {
    out.clear();
    out.extend_from_slice(&(k.len() as u16).to_le_bytes());
    out.extend_from_slice(&child.0.to_le_bytes());
    out.extend_from_slice(k);
}

/// Rewrites the content area without garbage.
fn compact(p: &mut [u8]) {
    let n = count(p);
    let leaf = is_leaf(p);
    let base = slot_base(p);
    let old = p.to_vec();
    let mut end = p.len();
    for i in 0..n {
        let off = get_u16(&old, base + 2 * i) as usize;
        let len = cell_len_at(&old, leaf, off);
        end -= len;
        p[end..end + len].copy_from_slice(&old[off..off + len]);
        put_u16(p, base + 2 * i, end as u16);
    }
    put_u16(p, CONTENT_AT, end as u16);
    put_u16(p, GARBAGE_AT, 0);
}

/// Inserts a raw cell at index `i` if it fits (compacting if that makes room); false if not.
pub(crate) fn insert_cell(p: &mut [u8], i: usize, cell: &[u8]) -> bool {
    let n = count(p);
    let base = slot_base(p);
    let need = cell.len() + 2;
    let mut start = content_start(p);
    let gap = start - (base + 2 * n);
    if gap < need {
        if gap + garbage(p) < need {
            return false;
        }
        compact(p);
        start = content_start(p);
    }
    let at = start - cell.len();
    p[at..start].copy_from_slice(cell);
    let slots = base + 2 * i;
    p.copy_within(slots..base + 2 * n, slots + 2);
    put_u16(p, slots, at as u16);
    put_u16(p, N_AT, (n + 1) as u16);
    put_u16(p, CONTENT_AT, at as u16);
    true
}

/// Removes cell `i` (for a branch: key `i` and child `i + 1`).
pub(crate) fn remove_cell(p: &mut [u8], i: usize) {
    let n = count(p);
    let base = slot_base(p);
    let off = slot(p, i);
    let len = cell_len_at(p, is_leaf(p), off);
    p.copy_within(base + 2 * (i + 1)..base + 2 * n, base + 2 * i);
    put_u16(p, N_AT, (n - 1) as u16);
    if n == 1 {
        let end = p.len();
        put_u16(p, CONTENT_AT, end as u16);
        put_u16(p, GARBAGE_AT, 0);
    } else if off == content_start(p) {
        put_u16(p, CONTENT_AT, (off + len) as u16);
    } else {
        let g = garbage(p) + len;
        put_u16(p, GARBAGE_AT, g as u16);
    }
}

/// Replaces cell `i` by `cell`, in place when the size is unchanged; false if it does not fit
/// (the page is then unchanged).
pub(crate) fn replace_cell(p: &mut [u8], i: usize, cell: &[u8]) -> bool {
    let off = slot(p, i);
    let len = cell_len_at(p, is_leaf(p), off);
    if len == cell.len() {
        p[off..off + len].copy_from_slice(cell);
        return true;
    }
    if cell.len() > len && capacity(p) - fill(p) < cell.len() - len {
        return false;
    }
    remove_cell(p, i);
    let fitted = insert_cell(p, i, cell);
    debug_assert!(fitted, "invariant: room was checked");
    true
}

/// Refills a page with `cells` (raw, of the page's kind), which must fit.
pub(crate) fn rebuild(p: &mut [u8], cells: &[&[u8]]) {
    clear(p);
    let base = slot_base(p);
    let mut end = p.len();
    for (i, c) in cells.iter().enumerate() {
        end -= c.len();
        assert!(
            end >= base + 2 * cells.len(),
            "invariant: rebuilt cells fit the page"
        );
        p[end..end + c.len()].copy_from_slice(c);
        put_u16(p, base + 2 * i, end as u16);
    }
    put_u16(p, N_AT, cells.len() as u16);
    put_u16(p, CONTENT_AT, end as u16);
}

/// Structural checks of a node page loaded from the device (its CRC already matched).
pub(crate) fn validate(p: &[u8]) -> Result<(), String> {
    let leaf = match page::page_type(p) {
        Some(PageType::Leaf) => true,
        Some(PageType::Branch) => false,
        other => return Err(format!("expected a B+tree node, found {other:?}")),
    };
    let n = count(p);
    let base = slot_base(p);
    let start = content_start(p);
    if base + 2 * n > start || start > p.len() {
        return Err(format!("{n} slots overlap content starting at {start}"));
    }
    let header = if leaf {
        LEAF_CELL_HEADER
    } else {
        BRANCH_CELL_HEADER
    };
    let mut used = 0usize;
    for i in 0..n {
        let off = slot(p, i);
        if off < start || off + header > p.len() {
            return Err(format!(
                "slot {i} points at {off}, outside the content area"
            ));
        }
        let len = cell_len_at(p, leaf, off);
        if off + len > p.len() {
            return Err(format!("cell {i} at {off} runs past the page end"));
        }
        used += len;
    }
    if used + garbage(p) != p.len() - start {
        return Err(format!(
            "cells use {used} bytes and garbage {} of a {}-byte content area",
            garbage(p),
            p.len() - start
        ));
    }
    Ok(())
}

/// The shortest key `s` with `left < s <= right` (for `left < right`): a separator that keeps
/// branch keys short (suffix truncation).
pub(crate) fn separator(left: &[u8], right: &[u8]) -> Vec<u8> {
    debug_assert!(left < right);
    let common = left.iter().zip(right).take_while(|(a, b)| a == b).count();
    right[..(common + 1).min(right.len())].to_vec()
}

/// Index at which to split `sizes` (cell sizes including slots) into two parts that each fit
/// `cap`, as even by bytes as possible; `1..sizes.len()`.
pub(crate) fn balanced_split(sizes: &[usize], cap: usize) -> usize {
    let total: usize = sizes.iter().sum();
    let mut best = 1;
    let mut best_diff = usize::MAX;
    let mut left = 0;
    for (k, s) in sizes.iter().enumerate().take(sizes.len() - 1) {
        left += s;
        let right = total - left;
        if left <= cap && right <= cap {
            let diff = left.abs_diff(right);
            if diff < best_diff {
                best_diff = diff;
                best = k + 1;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::put_u32;

    fn leaf_with(keys: &[&[u8]]) -> Vec<u8> {
        let mut p = new_leaf(1024, 1);
        let mut c = Vec::new();
        for k in keys {
            let i = search(&p, k).unwrap_err();
            encode_leaf_cell(&mut c, k, Value::Inline(b"v"));
            assert!(insert_cell(&mut p, i, &c));
        }
        p
    }

    #[test]
    fn leaf_insert_search_remove() {
        let mut p = leaf_with(&[b"m", b"c", b"x", b"a"]);
        validate(&p).unwrap();
        let keys: Vec<&[u8]> = (0..count(&p)).map(|i| key(&p, i)).collect();
        assert_eq!(keys, vec![&b"a"[..], b"c", b"m", b"x"]);
        assert_eq!(search(&p, b"m"), Ok(2));
        assert_eq!(search(&p, b"n"), Err(3));
        assert_eq!((upper_bound(&p, b"c"), lower_bound(&p, b"c")), (2, 1));
        assert_eq!(value(&p, 1), Value::Inline(b"v"));
        remove_cell(&mut p, 1);
        validate(&p).unwrap();
        assert_eq!(search(&p, b"c"), Err(1));
        assert_eq!(fill(&p), 3 * (2 + 8));
    }

    #[test]
    fn garbage_is_reclaimed_by_compaction() {
        let mut p = new_leaf(1024, 1);
        let mut c = Vec::new();
        let big = vec![7u8; 200];
        for i in 0..4u8 {
            encode_leaf_cell(&mut c, &[i], Value::Inline(&big));
            assert!(insert_cell(&mut p, i as usize, &c));
        }
        encode_leaf_cell(&mut c, &[9], Value::Inline(&big));
        assert!(
            !insert_cell(&mut p, 4, &c),
            "a fifth 207-byte cell cannot fit"
        );
        remove_cell(&mut p, 1);
        remove_cell(&mut p, 1);
        assert!(garbage(&p) > 0);
        for i in 0..2u8 {
            encode_leaf_cell(&mut c, &[10 + i], Value::Inline(&big));
            assert!(insert_cell(&mut p, 2 + i as usize, &c));
        }
        validate(&p).unwrap();
        assert_eq!(count(&p), 4);
        assert_eq!(key(&p, 3), &[11]);
    }

    #[test]
    fn overflow_cells_and_replace() {
        let mut p = leaf_with(&[b"a", b"b"]);
        let mut c = Vec::new();
        let ov = Value::Overflow {
            first: PageId(42),
            len: 5_000_000,
        };
        encode_leaf_cell(&mut c, b"a", ov);
        assert!(replace_cell(&mut p, 0, &c));
        assert_eq!(value(&p, 0), ov);
        encode_leaf_cell(&mut c, b"b", Value::Inline(b"w"));
        assert!(replace_cell(&mut p, 1, &c));
        assert_eq!(value(&p, 1), Value::Inline(b"w"));
        validate(&p).unwrap();
    }

    #[test]
    fn branch_children_and_rebuild() {
        let mut p = new_branch(1024, 1, PageId(10));
        let mut c = Vec::new();
        encode_branch_cell(&mut c, b"m", PageId(11));
        assert!(insert_cell(&mut p, 0, &c));
        encode_branch_cell(&mut c, b"t", PageId(12));
        assert!(insert_cell(&mut p, 1, &c));
        assert_eq!(
            (0..3).map(|i| child(&p, i).0).collect::<Vec<_>>(),
            vec![10, 11, 12]
        );
        assert_eq!(upper_bound(&p, b"a"), 0);
        assert_eq!(upper_bound(&p, b"m"), 1);
        assert_eq!(upper_bound(&p, b"z"), 2);
        set_child(&mut p, 2, PageId(99));
        assert_eq!(child(&p, 2), PageId(99));
        let cells: Vec<Vec<u8>> = (0..2).map(|i| cell(&p, i).to_vec()).collect();
        let refs: Vec<&[u8]> = cells.iter().map(|c| &c[..]).collect();
        rebuild(&mut p, &refs[1..]);
        validate(&p).unwrap();
        assert_eq!((count(&p), key(&p, 0)), (1, &b"t"[..]));
    }

    #[test]
    fn validate_rejects_damaged_structure() {
        let mut p = leaf_with(&[b"a", b"b"]);
        put_u16(&mut p, LEAF_SLOTS, 1020);
        assert!(validate(&p).is_err());
        let mut p = leaf_with(&[b"a"]);
        put_u16(&mut p, N_AT, 400);
        assert!(validate(&p).is_err());
        let mut p = leaf_with(&[b"a"]);
        put_u32(&mut p, 1024 - 8 + 2, 500);
        assert!(validate(&p).is_err());
        let p = page::new_page(1024, PageType::Overflow, 1);
        assert!(validate(&p).is_err());
    }

    #[test]
    fn separators_are_short_and_between() {
        assert_eq!(separator(b"apple", b"banana"), b"b");
        assert_eq!(separator(b"abc", b"abd"), b"abd");
        assert_eq!(separator(b"ab", b"abc"), b"abc");
        assert_eq!(separator(b"", b"\x00"), b"\x00");
        assert_eq!(separator(b"abcdef", b"abzz"), b"abz");
    }

    #[test]
    fn balanced_split_respects_capacity() {
        assert_eq!(balanced_split(&[10, 10, 10, 10], 25), 2);
        assert_eq!(balanced_split(&[30, 5, 5, 5], 40), 1);
        assert_eq!(balanced_split(&[5, 5, 5, 30], 40), 3);
    }
}
