//! Parity arithmetic for RAID-5 and RAID-6, and reconstruction of lost blocks of a row.
//!
//! A row is `k` data blocks `D_0 .. D_{k-1}` of equal length plus one (RAID-5) or two (RAID-6)
//! parity blocks. Every formula below holds byte by byte, at each offset of the blocks.
//!
//! # The field
//!
//! Bytes are elements of GF(2^8) built with the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11d).
//! Addition is XOR; `g = 2` generates the multiplicative group (order 255), so every non-zero byte
//! is `g^i` for exactly one `i` in `0..255`. This is the field and generator of Linux md's RAID-6,
//! so the parity computed here is bit-for-bit the one md writes.
//!
//! # Parity
//!
//! * `P = D_0 ^ D_1 ^ ... ^ D_{k-1}`
//! * `Q = g^0*D_0 ^ g^1*D_1 ^ ... ^ g^{k-1}*D_{k-1}`
//!
//! Because the powers `g^d` are distinct for `d < 255`, P and Q together determine any two
//! unknown blocks of a row.
//!
//! # Reconstruction
//!
//! Write `Px` for the XOR of the data blocks other than the missing ones and `Qx` for their
//! Q-sum (missing blocks counted as zero), so that `P ^ Px` and `Q ^ Qx` are the contributions of
//! the missing data alone.
//!
//! * one data block `x` (P known): `D_x = P ^ Px`.
//! * P, or Q, or both: recompute them from the data.
//! * data `x` and P: `D_x = g^-x * (Q ^ Qx)`, then P from the data.
//! * data `x` and Q: `D_x = P ^ Px`, then Q from the data.
//! * two data blocks `x < y`: with `Pxy = P ^ Px = D_x ^ D_y` and
//!   `Qxy = Q ^ Qx = g^x*D_x ^ g^y*D_y`,
//!   `D_x = A*Pxy ^ B*Qxy` where `A = g^(y-x) / (g^(y-x) ^ 1)` and `B = g^-x / (g^(y-x) ^ 1)`,
//!   then `D_y = Pxy ^ D_x`. (`g^(y-x) != 1` because `0 < y-x < 255`.)
//!
//! [`locate_single_error`] uses the syndromes `Ps = P ^ P'` and `Qs = Q ^ Q'` of a row whose
//! stored parity is `P, Q` and recomputed parity is `P', Q'`. If only data block `z` is corrupt by
//! error `E`, then `Ps = E` and `Qs = g^z * E`, so at every offset both are zero or both are not,
//! and `log(Qs) - log(Ps) = z` wherever they are not.
//!
//! # Performance
//!
//! Generation is the hot path (every full-stripe write), so it never multiplies through tables.
//! Q is evaluated with Horner's rule from the highest data index down, `Q = g*Q ^ D_d`, which only
//! ever multiplies by `g = 2`. Multiplying a byte by 2 is a shift plus a conditional XOR with 0x1d,
//! and that is done on eight bytes at once in a `u64` (see `mul2_word`). The kernels work on
//! 64-byte chunks held as `[u64; 8]`, which the compiler turns into SIMD registers; for each chunk
//! they run through all data blocks with P and Q in registers and store them once, so each data
//! byte is read once and each parity byte written once, with no intermediate passes over memory
//! (so there is no need to cut blocks into cache-sized pieces: P and Q never leave registers).
//! On x86-64, [`gen_pq`] runs the same kernel compiled for AVX2 when the CPU has it (detected at
//! run time; the default target only guarantees SSE2), which is the only `unsafe` here.
//! Reconstruction is rarer and multiplies by a few fixed constants, each through a 256-entry
//! table built per call from log/exp tables that are computed at compile time.

use std::ops::Range;

// ---------------------------------------------------------------------------------------------
// GF(2^8)
// ---------------------------------------------------------------------------------------------

/// The field polynomial x^8 + x^4 + x^3 + x^2 + 1; with it, 2 generates the multiplicative group.
const POLY: u16 = 0x11d;

/// `EXP[i] = g^i`. The table covers two periods so that `EXP[LOG[a] + LOG[b]]` needs no
/// reduction mod 255.
static EXP: [u8; 512] = build_exp();

/// `LOG[g^i] = i` for `i` in `0..255`. `LOG[0]` is meaningless (set to 0); callers exclude zero.
static LOG: [u8; 256] = build_log();

const fn build_exp() -> [u8; 512] {
    let mut exp = [0u8; 512];
    let mut x: u16 = 1;
    let mut i = 0;
    while i < exp.len() {
        exp[i] = x as u8;
        x <<= 1;
        if x & 0x100 != 0 {
            x ^= POLY;
        }
        i += 1;
    }
    exp
}

const fn build_log() -> [u8; 256] {
    let exp = build_exp();
    let mut log = [0u8; 256];
    let mut i = 0;
    while i < 255 {
        log[exp[i] as usize] = i as u8;
        i += 1;
    }
    log
}

fn gf_mul(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        0
    } else {
        EXP[LOG[a as usize] as usize + LOG[b as usize] as usize]
    }
}

/// Multiplicative inverse; `a` must not be zero.
fn gf_inv(a: u8) -> u8 {
    debug_assert!(a != 0, "zero has no inverse");
    EXP[255 - LOG[a as usize] as usize]
}

/// `g^e`.
fn gf_pow(e: usize) -> u8 {
    EXP[e % 255]
}

/// `g^-e`.
fn gf_pow_neg(e: usize) -> u8 {
    EXP[(255 - e % 255) % 255]
}

/// Table of `c * b` for every byte `b`, so multiplying a block by `c` is one lookup per byte.
fn mul_table(c: u8) -> [u8; 256] {
    let mut t = [0u8; 256];
    for (b, out) in t.iter_mut().enumerate() {
        *out = gf_mul(c, b as u8);
    }
    t
}

// ---------------------------------------------------------------------------------------------
// Word-wise kernels
// ---------------------------------------------------------------------------------------------

/// Bytes handled per step of the kernels: eight `u64` lanes, which fill a few SIMD registers
/// whatever the vector width, and divide every block size (block lengths are multiples of 64).
const CHUNK: usize = 64;
const LANES: usize = CHUNK / 8;
type Lanes = [u64; LANES];

/// Multiplies each of the eight bytes of `x` by 2 in GF(2^8).
///
/// Per byte: shift left, and if the top bit fell off, reduce by XOR with 0x1d (the polynomial
/// without its x^8 term). The shift is done on the whole word and the bits that crossed into the
/// next byte are masked off. `hi - (hi >> 7)` is 0x7f in exactly the bytes whose top bit was set
/// and 0 elsewhere (no borrows cross bytes), so masking it with 0x1d gives the reduction term.
/// That equals `(hi >> 7) * 0x1d`, but x86 has no 64-bit vector multiply before AVX-512, and with
/// the multiply the compiler leaves the whole kernel scalar (about a third of the speed).
#[inline(always)]
fn mul2_word(x: u64) -> u64 {
    let hi = x & 0x8080_8080_8080_8080;
    ((x << 1) & 0xfefe_fefe_fefe_fefe) ^ ((hi - (hi >> 7)) & 0x1d1d_1d1d_1d1d_1d1d)
}

#[inline(always)]
fn mul2(v: &mut Lanes) {
    for w in v.iter_mut() {
        *w = mul2_word(*w);
    }
}

#[inline(always)]
fn xor_lanes(acc: &mut Lanes, v: &Lanes) {
    for (a, b) in acc.iter_mut().zip(v) {
        *a ^= *b;
    }
}

/// Reads up to one chunk; a shorter slice (the tail of a block whose length is not a multiple of
/// `CHUNK`) is zero-padded.
#[inline(always)]
fn load(bytes: &[u8]) -> Lanes {
    if bytes.len() == CHUNK {
        load_full(bytes)
    } else {
        let mut buf = [0u8; CHUNK];
        buf[..bytes.len()].copy_from_slice(bytes);
        load_full(&buf)
    }
}

/// `bytes` is exactly `CHUNK` long.
#[inline(always)]
fn load_full(bytes: &[u8]) -> Lanes {
    let mut v = [0u64; LANES];
    for (w, b) in v.iter_mut().zip(bytes.chunks_exact(8)) {
        *w = u64::from_ne_bytes(b.try_into().expect("chunks_exact(8)"));
    }
    v
}

/// Writes the first `out.len()` (at most `CHUNK`) bytes of `v`.
#[inline(always)]
fn store(v: &Lanes, out: &mut [u8]) {
    if out.len() == CHUNK {
        for (w, b) in v.iter().zip(out.chunks_exact_mut(8)) {
            b.copy_from_slice(&w.to_ne_bytes());
        }
    } else {
        let buf = to_bytes(v);
        out.copy_from_slice(&buf[..out.len()]);
    }
}

#[inline(always)]
fn to_bytes(v: &Lanes) -> [u8; CHUNK] {
    let mut buf = [0u8; CHUNK];
    for (w, b) in v.iter().zip(buf.chunks_exact_mut(8)) {
        b.copy_from_slice(&w.to_ne_bytes());
    }
    buf
}

/// A data block as the generators see it. `None` stands for an all-zero block: reconstruction
/// passes the blocks it is rebuilding that way, which lets it reuse the generators to get the
/// partial syndromes `Px`, `Qx` without scratch buffers.
trait Block {
    fn bytes(&self) -> Option<&[u8]>;
}

impl Block for &[u8] {
    #[inline(always)]
    fn bytes(&self) -> Option<&[u8]> {
        Some(self)
    }
}

impl Block for Option<&[u8]> {
    #[inline(always)]
    fn bytes(&self) -> Option<&[u8]> {
        *self
    }
}

/// P of one chunk (`r`) of the data blocks.
#[inline(always)]
fn p_at<B: Block>(data: &[B], r: &Range<usize>) -> Lanes {
    let mut p = [0u64; LANES];
    for b in data {
        if let Some(b) = b.bytes() {
            xor_lanes(&mut p, &load(&b[r.clone()]));
        }
    }
    p
}

/// P and Q of one chunk (`r`) of the data blocks, by Horner's rule from the highest index down.
#[inline(always)]
fn pq_at<B: Block>(data: &[B], r: &Range<usize>) -> (Lanes, Lanes) {
    let mut p = [0u64; LANES];
    let mut q = [0u64; LANES];
    let mut blocks = data.iter().rev();
    // The top block starts the sums, which saves a multiplication of zero.
    if let Some(b) = blocks.next().and_then(Block::bytes) {
        p = load(&b[r.clone()]);
        q = p;
    }
    for b in blocks {
        mul2(&mut q);
        if let Some(b) = b.bytes() {
            let d = load(&b[r.clone()]);
            xor_lanes(&mut p, &d);
            xor_lanes(&mut q, &d);
        }
    }
    (p, q)
}

/// Calls `sink(range, p)` for each chunk of the blocks, in order; all blocks are `len` long. The
/// last chunk may be short, with its lanes zero-padded past the range.
#[inline(always)]
fn for_each_p<B: Block>(data: &[B], len: usize, mut sink: impl FnMut(Range<usize>, &Lanes)) {
    let full = len - len % CHUNK;
    let mut off = 0;
    while off < full {
        let r = off..off + CHUNK;
        let p = p_at(data, &r);
        sink(r, &p);
        off += CHUNK;
    }
    if full < len {
        let r = full..len;
        let p = p_at(data, &r);
        sink(r, &p);
    }
}

/// As [`for_each_p`], with Q as well: `sink(range, p, q)`.
#[inline(always)]
fn for_each_pq<B: Block>(
    data: &[B],
    len: usize,
    mut sink: impl FnMut(Range<usize>, &Lanes, &Lanes),
) {
    let full = len - len % CHUNK;
    let mut off = 0;
    while off < full {
        let r = off..off + CHUNK;
        let (p, q) = pq_at(data, &r);
        sink(r, &p, &q);
        off += CHUNK;
    }
    if full < len {
        let r = full..len;
        let (p, q) = pq_at(data, &r);
        sink(r, &p, &q);
    }
}

/// Multiplies each byte of `v` by the constant whose table is `t`.
#[inline(always)]
fn mul_lanes(t: &[u8; 256], v: &Lanes) -> Lanes {
    let mut bytes = to_bytes(v);
    for b in bytes.iter_mut() {
        *b = t[*b as usize];
    }
    load(&bytes)
}

fn assert_lengths(blocks: &[&[u8]], len: usize, what: &str) {
    assert!(
        blocks.iter().all(|b| b.len() == len),
        "{what}: all blocks must have the same length"
    );
}

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// dst ^= src. Equal lengths.
///
/// # Panics
/// If the lengths differ.
pub fn xor_into(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "xor_into: length mismatch");
    let mut d = dst.chunks_exact_mut(CHUNK);
    let mut s = src.chunks_exact(CHUNK);
    for (d, s) in (&mut d).zip(&mut s) {
        let mut v = load(d);
        xor_lanes(&mut v, &load(s));
        store(&v, d);
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d ^= *s;
    }
}

/// P = XOR of all data blocks. data non-empty, all blocks and p the same length.
///
/// An empty `data` gives `p` all zeros (the empty XOR).
///
/// # Panics
/// If a data block's length differs from `p`'s.
pub fn gen_p(data: &[&[u8]], p: &mut [u8]) {
    let len = p.len();
    assert_lengths(data, len, "gen_p");
    for_each_p(data, len, |r, v| store(v, &mut p[r]));
}

/// P and Q of the data blocks (`data[d]` has data index d, coefficient g^d).
///
/// An empty `data` gives `p` and `q` all zeros.
///
/// # Panics
/// If `p`, `q` and the data blocks are not all the same length.
pub fn gen_pq(data: &[&[u8]], p: &mut [u8], q: &mut [u8]) {
    let len = p.len();
    assert_eq!(q.len(), len, "gen_pq: p and q must have the same length");
    assert_lengths(data, len, "gen_pq");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 support, gen_pq_avx2's only requirement, was checked just above.
        unsafe { gen_pq_avx2(data, p, q) };
        return;
    }
    gen_pq_kernel(data, p, q);
}

/// The body of [`gen_pq`], after its length checks.
#[inline(always)]
fn gen_pq_kernel(data: &[&[u8]], p: &mut [u8], q: &mut [u8]) {
    for_each_pq(data, p.len(), |r, pv, qv| {
        store(pv, &mut p[r.clone()]);
        store(qv, &mut q[r]);
    });
}

/// [`gen_pq_kernel`] compiled for AVX2, chosen at run time so that the crate still runs on any
/// x86-64 while the default target only allows SSE2. With 256-bit registers, each 64-byte chunk
/// of P or Q takes two registers instead of four and the three-operand forms save register
/// copies; measured about 1.7 times the SSE2 speed, which takes P+Q generation from roughly half
/// the speed of a memory copy to close to it. Only gen_pq gets this: it is the hot path, and the
/// XOR-only kernels already run faster than a copy with SSE2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gen_pq_avx2(data: &[&[u8]], p: &mut [u8], q: &mut [u8]) {
    gen_pq_kernel(data, p, q);
}

/// Rebuilds the missing blocks of one row in place.
/// `row` holds k data blocks (data index 0..k) followed by P, then Q when `has_q`.
/// `missing` lists indices into `row` (0..k data, k = P, k+1 = Q) whose contents are unknown
/// (they hold garbage on entry and are overwritten). At most 1 missing without Q, at most 2 with Q.
/// Returns Err(String) describing why when too many are missing; otherwise every missing block
/// is filled with the value that makes the row consistent.
///
/// Also returns `Err` (and changes nothing) when the row is malformed: its length is not
/// `k + 1 + has_q`, its blocks differ in length, an index in `missing` is out of range, or
/// `k > 255` with Q (the coefficients `g^d` would repeat). An index listed twice counts once.
pub fn reconstruct(
    row: &mut [&mut [u8]],
    k: usize,
    has_q: bool,
    missing: &[usize],
) -> Result<(), String> {
    let width = k + 1 + usize::from(has_q);
    if row.len() != width {
        return Err(format!(
            "row has {} blocks, expected {width} ({k} data + {})",
            row.len(),
            if has_q { "P + Q" } else { "P" }
        ));
    }
    if has_q && k > 255 {
        return Err(format!(
            "{k} data blocks with Q: at most 255 are distinguishable"
        ));
    }
    let len = row[0].len();
    if let Some(i) = row.iter().position(|b| b.len() != len) {
        return Err(format!(
            "block {i} is {} bytes, block 0 is {len}",
            row[i].len()
        ));
    }
    let mut miss = missing.to_vec();
    miss.sort_unstable();
    miss.dedup();
    if let Some(&i) = miss.iter().find(|&&i| i >= width) {
        return Err(format!(
            "missing index {i} out of range for a row of {width} blocks"
        ));
    }
    let tolerable = 1 + usize::from(has_q);
    if miss.len() > tolerable {
        return Err(format!(
            "{} blocks missing ({miss:?}), but a {} row can rebuild at most {tolerable}",
            miss.len(),
            if has_q { "RAID-6" } else { "RAID-5" }
        ));
    }
    if miss.is_empty() {
        return Ok(());
    }

    // Split the row into the known blocks (None where missing, which the generators read as
    // zero) and the missing ones, writable, in index order.
    let mut known: Vec<Option<&[u8]>> = Vec::with_capacity(width);
    let mut outs: Vec<&mut [u8]> = Vec::with_capacity(miss.len());
    for (i, b) in row.iter_mut().enumerate() {
        if miss.contains(&i) {
            known.push(None);
            outs.push(&mut **b);
        } else {
            known.push(Some(&**b));
        }
    }
    let (data, parity) = known.split_at(k);
    let (p_idx, q_idx) = (k, k + 1);

    match (miss.as_slice(), outs.as_mut_slice()) {
        // One data block, from P (RAID-5, or RAID-6 with P intact): D_x = P ^ Px.
        (&[x], [dx]) if x < k => {
            let p = parity[0].expect("P is not missing");
            for_each_p(data, len, |r, px| {
                let mut v = load(&p[r.clone()]);
                xor_lanes(&mut v, px);
                store(&v, &mut dx[r]);
            });
        }
        (&[i], [out]) if i == p_idx => {
            for_each_p(data, len, |r, p| store(p, &mut out[r]));
        }
        (&[i], [out]) if i == q_idx => {
            for_each_pq(data, len, |r, _, q| store(q, &mut out[r]));
        }
        (&[i, j], [p_out, q_out]) if i == p_idx && j == q_idx => {
            for_each_pq(data, len, |r, p, q| {
                store(p, &mut p_out[r.clone()]);
                store(q, &mut q_out[r]);
            });
        }
        // Data x and P: D_x = g^-x * (Q ^ Qx); P = Px ^ D_x.
        (&[x, i], [dx, p_out]) if i == p_idx => {
            let q = parity[1].expect("Q is not missing");
            let t = mul_table(gf_pow_neg(x));
            for_each_pq(data, len, |r, px, qx| {
                let mut v = load(&q[r.clone()]);
                xor_lanes(&mut v, qx);
                let d = mul_lanes(&t, &v);
                let mut p = *px;
                xor_lanes(&mut p, &d);
                store(&d, &mut dx[r.clone()]);
                store(&p, &mut p_out[r]);
            });
        }
        // Data x and Q: D_x = P ^ Px; Q = Qx ^ g^x * D_x.
        (&[x, i], [dx, q_out]) if i == q_idx => {
            let p = parity[0].expect("P is not missing");
            let t = mul_table(gf_pow(x));
            for_each_pq(data, len, |r, px, qx| {
                let mut d = load(&p[r.clone()]);
                xor_lanes(&mut d, px);
                let mut q = mul_lanes(&t, &d);
                xor_lanes(&mut q, qx);
                store(&d, &mut dx[r.clone()]);
                store(&q, &mut q_out[r]);
            });
        }
        // Two data blocks x < y: D_x = A*Pxy ^ B*Qxy; D_y = Pxy ^ D_x.
        (&[x, y], [dx, dy]) => {
            debug_assert!(x < y && y < k);
            let (p, q) = (
                parity[0].expect("P is not missing"),
                parity[1].expect("Q is not missing"),
            );
            let gyx = gf_pow(y - x);
            let denom = gf_inv(gyx ^ 1);
            let ta = mul_table(gf_mul(gyx, denom));
            let tb = mul_table(gf_mul(gf_pow_neg(x), denom));
            for_each_pq(data, len, |r, px, qx| {
                let mut pxy = load(&p[r.clone()]);
                xor_lanes(&mut pxy, px);
                let mut qxy = load(&q[r.clone()]);
                xor_lanes(&mut qxy, qx);
                let mut d_x = mul_lanes(&ta, &pxy);
                xor_lanes(&mut d_x, &mul_lanes(&tb, &qxy));
                let mut d_y = pxy;
                xor_lanes(&mut d_y, &d_x);
                store(&d_x, &mut dx[r.clone()]);
                store(&d_y, &mut dy[r]);
            });
        }
        _ => unreachable!("missing indices were validated"),
    }
    Ok(())
}

/// True if P (and Q when has_q) in `row` (same layout as above) match the data.
///
/// # Panics
/// If `row` does not have `k + 1 + has_q` blocks of equal length.
pub fn row_consistent(row: &[&[u8]], k: usize, has_q: bool) -> bool {
    assert_eq!(
        row.len(),
        k + 1 + usize::from(has_q),
        "row_consistent: row length does not match k and has_q"
    );
    let len = row[0].len();
    assert_lengths(row, len, "row_consistent");
    let (data, parity) = row.split_at(k);
    // OR of all differences: one branch at the end rather than a comparison per chunk.
    let mut diff = [0u64; LANES];
    if has_q {
        let (p, q) = (parity[0], parity[1]);
        for_each_pq(data, len, |r, pv, qv| {
            let mut dp = load(&p[r.clone()]);
            xor_lanes(&mut dp, pv);
            let mut dq = load(&q[r]);
            xor_lanes(&mut dq, qv);
            for ((acc, a), b) in diff.iter_mut().zip(&dp).zip(&dq) {
                *acc |= a | b;
            }
        });
    } else {
        let p = parity[0];
        for_each_p(data, len, |r, pv| {
            let mut dp = load(&p[r]);
            xor_lanes(&mut dp, pv);
            for (acc, a) in diff.iter_mut().zip(&dp) {
                *acc |= a;
            }
        });
    }
    diff == [0u64; LANES]
}

/// For a RAID-6 row whose P and Q both mismatch, finds the single data index z whose corruption
/// explains both syndromes (Linux md's "which disk is bad" check), or None if no single data
/// block explains it. If only P mismatches return Some(k) (P is bad); only Q: Some(k+1).
/// If the row is consistent, returns None.
///
/// # Panics
/// If `row` does not have `k + 2` blocks of equal length.
pub fn locate_single_error(row: &[&[u8]], k: usize) -> Option<usize> {
    assert_eq!(
        row.len(),
        k + 2,
        "locate_single_error: row must hold k data blocks, P and Q"
    );
    let len = row[0].len();
    assert_lengths(row, len, "locate_single_error");
    let (data, parity) = row.split_at(k);
    let (p, q) = (parity[0], parity[1]);

    let mut p_bad = false;
    let mut q_bad = false;
    // Some offset has exactly one syndrome non-zero, or two offsets point at different blocks.
    let mut unexplained = false;
    let mut culprit: Option<usize> = None;
    for_each_pq(data, len, |r, pv, qv| {
        let mut ps = load(&p[r.clone()]);
        xor_lanes(&mut ps, pv);
        let mut qs = load(&q[r]);
        xor_lanes(&mut qs, qv);
        if ps == [0; LANES] && qs == [0; LANES] {
            return;
        }
        for (a, b) in to_bytes(&ps).into_iter().zip(to_bytes(&qs)) {
            match (a, b) {
                (0, 0) => {}
                (_, 0) => {
                    p_bad = true;
                    unexplained = true;
                }
                (0, _) => {
                    q_bad = true;
                    unexplained = true;
                }
                (a, b) => {
                    p_bad = true;
                    q_bad = true;
                    // Qs / Ps = g^z.
                    let z = (LOG[b as usize] as usize + 255 - LOG[a as usize] as usize) % 255;
                    match culprit {
                        None => culprit = Some(z),
                        Some(c) if c != z => unexplained = true,
                        Some(_) => {}
                    }
                }
            }
        }
    });
    match (p_bad, q_bad) {
        (false, false) => None,
        (true, false) => Some(k),
        (false, true) => Some(k + 1),
        (true, true) if unexplained => None,
        (true, true) => culprit.filter(|&z| z < k),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic xorshift64* generator, so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Self {
            Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
        }
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = self.next() as u8;
            }
        }
        fn block(&mut self, len: usize) -> Vec<u8> {
            let mut v = vec![0u8; len];
            self.fill(&mut v);
            v
        }
    }

    /// Carry-less multiply with reduction, one bit at a time: the definition, not the tables.
    fn ref_mul(mut a: u8, mut b: u8) -> u8 {
        let mut r = 0u8;
        while b != 0 {
            if b & 1 != 0 {
                r ^= a;
            }
            let carry = a & 0x80 != 0;
            a <<= 1;
            if carry {
                a ^= (POLY & 0xff) as u8;
            }
            b >>= 1;
        }
        r
    }

    fn ref_pow2(e: usize) -> u8 {
        (0..e).fold(1u8, |acc, _| ref_mul(acc, 2))
    }

    /// P and Q byte by byte from the definitions.
    fn ref_pq(data: &[Vec<u8>], len: usize) -> (Vec<u8>, Vec<u8>) {
        let mut p = vec![0u8; len];
        let mut q = vec![0u8; len];
        for (d, block) in data.iter().enumerate() {
            let c = ref_pow2(d);
            for i in 0..len {
                p[i] ^= block[i];
                q[i] ^= ref_mul(c, block[i]);
            }
        }
        (p, q)
    }

    /// A random row: k data blocks, P, and Q if `has_q`.
    fn make_row(rng: &mut Rng, k: usize, has_q: bool, len: usize) -> Vec<Vec<u8>> {
        let mut row: Vec<Vec<u8>> = (0..k).map(|_| rng.block(len)).collect();
        let (p, q) = ref_pq(&row, len);
        row.push(p);
        if has_q {
            row.push(q);
        }
        row
    }

    fn refs(row: &[Vec<u8>]) -> Vec<&[u8]> {
        row.iter().map(|b| b.as_slice()).collect()
    }

    fn run_reconstruct(
        row: &mut [Vec<u8>],
        k: usize,
        has_q: bool,
        missing: &[usize],
    ) -> Result<(), String> {
        let mut views: Vec<&mut [u8]> = row.iter_mut().map(|b| b.as_mut_slice()).collect();
        reconstruct(&mut views, k, has_q, missing)
    }

    #[test]
    fn gf_tables_match_bitwise_reference() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(gf_mul(a, b), ref_mul(a, b), "{a} * {b}");
            }
        }
        for c in 0..=255u8 {
            let t = mul_table(c);
            for b in 0..=255u8 {
                assert_eq!(t[b as usize], ref_mul(c, b), "table {c}, {b}");
            }
        }
        for a in 1..=255u8 {
            assert_eq!(ref_mul(a, gf_inv(a)), 1, "inverse of {a}");
            assert_eq!(EXP[LOG[a as usize] as usize], a);
        }
    }

    #[test]
    fn generator_powers() {
        let mut seen = [false; 256];
        for e in 0..255 {
            let g = gf_pow(e);
            assert_eq!(g, ref_pow2(e));
            assert!(!seen[g as usize], "2 must generate the whole group");
            seen[g as usize] = true;
            assert_eq!(ref_mul(g, gf_pow_neg(e)), 1, "g^{e} * g^-{e}");
        }
        assert_eq!(gf_pow(255), 1);
        assert_eq!(gf_pow_neg(0), 1);
    }

    #[test]
    fn mul2_word_matches_bytewise() {
        let mut rng = Rng::new(1);
        let mut words: Vec<u64> = (0..10_000).map(|_| rng.next()).collect();
        words.extend([0, u64::MAX, 0x8080_8080_8080_8080, 0x7f7f_7f7f_7f7f_7f7f]);
        for w in words {
            let expect = u64::from_ne_bytes(w.to_ne_bytes().map(|b| ref_mul(b, 2)));
            assert_eq!(mul2_word(w), expect, "{w:#018x}");
        }
    }

    #[test]
    fn gen_pq_matches_reference() {
        let mut rng = Rng::new(2);
        for len in [512, 4096] {
            for k in 1..=10 {
                let data: Vec<Vec<u8>> = (0..k).map(|_| rng.block(len)).collect();
                let (ep, eq) = ref_pq(&data, len);
                let mut p = rng.block(len);
                let mut q = rng.block(len);
                gen_pq(&refs(&data), &mut p, &mut q);
                assert_eq!(p, ep, "P, k={k} len={len}");
                assert_eq!(q, eq, "Q, k={k} len={len}");
                // The portable kernel too, which gen_pq skips on CPUs with AVX2.
                let (mut p, mut q) = (rng.block(len), rng.block(len));
                gen_pq_kernel(&refs(&data), &mut p, &mut q);
                assert_eq!(p, ep, "portable P, k={k} len={len}");
                assert_eq!(q, eq, "portable Q, k={k} len={len}");
                let mut p2 = rng.block(len);
                gen_p(&refs(&data), &mut p2);
                assert_eq!(p2, ep, "gen_p, k={k} len={len}");
            }
        }
    }

    #[test]
    fn gen_pq_max_width() {
        let mut rng = Rng::new(3);
        let len = 512;
        let data: Vec<Vec<u8>> = (0..62).map(|_| rng.block(len)).collect();
        let (ep, eq) = ref_pq(&data, len);
        let (mut p, mut q) = (vec![0u8; len], vec![0u8; len]);
        gen_pq(&refs(&data), &mut p, &mut q);
        assert_eq!((p, q), (ep, eq));
    }

    #[test]
    fn lengths_not_multiple_of_chunk() {
        let mut rng = Rng::new(4);
        for len in [0, 1, 7, 63, 65, 100, 191] {
            for k in 1..=4 {
                let data: Vec<Vec<u8>> = (0..k).map(|_| rng.block(len)).collect();
                let (ep, eq) = ref_pq(&data, len);
                let (mut p, mut q) = (rng.block(len), rng.block(len));
                gen_pq(&refs(&data), &mut p, &mut q);
                assert_eq!(p, ep, "P len={len}");
                assert_eq!(q, eq, "Q len={len}");
                let (mut p, mut q) = (rng.block(len), rng.block(len));
                gen_pq_kernel(&refs(&data), &mut p, &mut q);
                assert_eq!((&p, &q), (&ep, &eq), "portable, len={len}");
                let mut p2 = rng.block(len);
                gen_p(&refs(&data), &mut p2);
                assert_eq!(p2, ep);

                let mut row = data.clone();
                row.push(ep.clone());
                row.push(eq.clone());
                assert!(row_consistent(&refs(&row), k, true));
                if k >= 2 {
                    let orig = row.clone();
                    rng.fill(&mut row[0]);
                    rng.fill(&mut row[k - 1]);
                    run_reconstruct(&mut row, k, true, &[0, k - 1]).unwrap();
                    assert_eq!(row, orig, "two data, len={len}");
                }
            }
        }
    }

    #[test]
    fn empty_data_gives_zero_parity() {
        let (mut p, mut q) = (vec![0xaau8; 128], vec![0x55u8; 128]);
        gen_pq(&[], &mut p, &mut q);
        assert!(p.iter().chain(&q).all(|&b| b == 0));
        gen_p(&[], &mut q);
        assert!(q.iter().all(|&b| b == 0));
    }

    #[test]
    fn xor_into_matches_bytewise() {
        let mut rng = Rng::new(5);
        for len in [0, 1, 63, 64, 65, 512, 4096 + 13] {
            let a = rng.block(len);
            let b = rng.block(len);
            let mut d = a.clone();
            xor_into(&mut d, &b);
            let expect: Vec<u8> = a.iter().zip(&b).map(|(x, y)| x ^ y).collect();
            assert_eq!(d, expect, "len={len}");
        }
    }

    #[test]
    #[should_panic(expected = "length")]
    fn gen_pq_rejects_mismatched_lengths() {
        let a = vec![0u8; 512];
        let b = vec![0u8; 1024];
        let (mut p, mut q) = (vec![0u8; 512], vec![0u8; 512]);
        gen_pq(&[&a, &b], &mut p, &mut q);
    }

    #[test]
    fn reconstruct_raid6_one_and_two_missing() {
        let mut rng = Rng::new(6);
        let len = 512;
        for k in 2..=8 {
            let orig = make_row(&mut rng, k, true, len);
            let width = k + 2;
            let mut cases: Vec<Vec<usize>> = (0..width).map(|i| vec![i]).collect();
            for i in 0..width {
                for j in i + 1..width {
                    cases.push(vec![i, j]);
                    // Order in `missing` must not matter.
                    cases.push(vec![j, i]);
                }
            }
            for missing in cases {
                let mut row = orig.clone();
                for &i in &missing {
                    rng.fill(&mut row[i]);
                }
                run_reconstruct(&mut row, k, true, &missing).unwrap();
                assert_eq!(row, orig, "k={k} missing={missing:?}");
            }
        }
    }

    #[test]
    fn reconstruct_raid5_single_missing() {
        let mut rng = Rng::new(7);
        for len in [512, 4096] {
            for k in 1..=8 {
                let orig = make_row(&mut rng, k, false, len);
                for i in 0..=k {
                    let mut row = orig.clone();
                    rng.fill(&mut row[i]);
                    run_reconstruct(&mut row, k, false, &[i]).unwrap();
                    assert_eq!(row, orig, "k={k} len={len} missing={i}");
                }
            }
        }
    }

    #[test]
    fn reconstruct_nothing_missing_is_a_no_op() {
        let mut rng = Rng::new(8);
        let orig = make_row(&mut rng, 4, true, 512);
        let mut row = orig.clone();
        run_reconstruct(&mut row, 4, true, &[]).unwrap();
        assert_eq!(row, orig);
    }

    #[test]
    fn reconstruct_rejects_too_many_or_bad_indices() {
        let mut rng = Rng::new(9);
        let k = 4;
        let orig6 = make_row(&mut rng, k, true, 512);
        let orig5 = make_row(&mut rng, k, false, 512);

        let mut row = orig6.clone();
        let err = run_reconstruct(&mut row, k, true, &[0, 1, 2]).unwrap_err();
        assert!(err.contains("3 blocks missing"), "{err}");
        assert_eq!(
            row, orig6,
            "a refused reconstruction must not touch the row"
        );
        assert!(run_reconstruct(&mut row, k, true, &[0, k, k + 1]).is_err());

        let mut row = orig5.clone();
        assert!(run_reconstruct(&mut row, k, false, &[0, 1]).is_err());
        assert!(run_reconstruct(&mut row, k, false, &[0, k]).is_err());
        // Index k+1 (Q) does not exist in a RAID-5 row.
        assert!(run_reconstruct(&mut row, k, false, &[k + 1]).is_err());
        assert_eq!(row, orig5);

        let mut row = orig6.clone();
        assert!(run_reconstruct(&mut row, k, true, &[k + 2]).is_err());
        // Wrong layout: k does not match the number of blocks.
        assert!(run_reconstruct(&mut row, k + 1, true, &[0]).is_err());
        assert!(run_reconstruct(&mut row, k, false, &[0]).is_err());
        assert_eq!(row, orig6);

        // A duplicated index is one missing block.
        rng.fill(&mut row[1]);
        run_reconstruct(&mut row, k, true, &[1, 1]).unwrap();
        assert_eq!(row, orig6);

        let mut short = orig6.clone();
        short[2].truncate(256);
        assert!(run_reconstruct(&mut short, k, true, &[0]).is_err());
    }

    #[test]
    fn row_consistent_detects_each_corrupt_block() {
        let mut rng = Rng::new(10);
        for has_q in [false, true] {
            for k in 2..=8 {
                let row = make_row(&mut rng, k, has_q, 512);
                assert!(row_consistent(&refs(&row), k, has_q), "k={k} has_q={has_q}");
                for i in 0..row.len() {
                    for offset in [0, 77, 511] {
                        let mut bad = row.clone();
                        bad[i][offset] ^= 0x01;
                        assert!(
                            !row_consistent(&refs(&bad), k, has_q),
                            "k={k} has_q={has_q} block={i} offset={offset}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn locate_single_error_finds_each_corrupt_block() {
        let mut rng = Rng::new(11);
        for k in 2..=8 {
            let row = make_row(&mut rng, k, true, 4096);
            assert_eq!(locate_single_error(&refs(&row), k), None, "consistent row");
            for i in 0..k + 2 {
                // One byte, and many scattered bytes, of block i.
                let mut one = row.clone();
                one[i][1000] ^= 0x80;
                assert_eq!(
                    locate_single_error(&refs(&one), k),
                    Some(i),
                    "k={k} block={i}"
                );

                let mut many = row.clone();
                for off in (3..4096).step_by(97) {
                    many[i][off] ^= (rng.next() as u8) | 1;
                }
                assert_eq!(
                    locate_single_error(&refs(&many), k),
                    Some(i),
                    "k={k} block={i}"
                );
                assert!(!row_consistent(&refs(&many), k, true));
            }
        }
    }

    #[test]
    fn locate_single_error_rejects_multiple_corruptions() {
        let mut rng = Rng::new(12);
        let k = 6;
        let row = make_row(&mut rng, k, true, 512);
        // Two data blocks at different offsets point at different culprits.
        let mut bad = row.clone();
        bad[1][10] ^= 0x33;
        bad[4][20] ^= 0x44;
        assert_eq!(locate_single_error(&refs(&bad), k), None);
        // P and Q at different offsets: each offset has only one syndrome.
        let mut bad = row.clone();
        bad[k][10] ^= 0x33;
        bad[k + 1][20] ^= 0x44;
        assert_eq!(locate_single_error(&refs(&bad), k), None);
        // Data and P at different offsets.
        let mut bad = row.clone();
        bad[2][10] ^= 0x33;
        bad[k][20] ^= 0x44;
        assert_eq!(locate_single_error(&refs(&bad), k), None);
    }

    #[test]
    fn locate_single_error_ignores_impossible_index() {
        // P and Q changed at the same offset so that Qs/Ps = g^z with z >= k: no data block of
        // this row has that coefficient.
        let mut rng = Rng::new(13);
        let k = 3;
        let row = make_row(&mut rng, k, true, 512);
        let mut bad = row.clone();
        let e = 0x5a;
        bad[k][40] ^= e;
        bad[k + 1][40] ^= ref_mul(ref_pow2(k + 5), e);
        assert_eq!(locate_single_error(&refs(&bad), k), None);
        // The same with z < k is indistinguishable from corrupting data block z.
        let mut bad = row.clone();
        bad[k][40] ^= e;
        bad[k + 1][40] ^= ref_mul(ref_pow2(1), e);
        assert_eq!(locate_single_error(&refs(&bad), k), Some(1));
    }

    #[test]
    fn parity_roundtrip_through_generators() {
        // Rows built by gen_pq (not the reference) are consistent and rebuild correctly.
        let mut rng = Rng::new(14);
        let k = 62;
        let len = 1024;
        let data: Vec<Vec<u8>> = (0..k).map(|_| rng.block(len)).collect();
        let (mut p, mut q) = (vec![0u8; len], vec![0u8; len]);
        gen_pq(&refs(&data), &mut p, &mut q);
        let mut row = data;
        row.push(p);
        row.push(q);
        assert!(row_consistent(&refs(&row), k, true));
        let orig = row.clone();
        for missing in [[0, 61], [30, 31], [61, k], [0, k + 1]] {
            for &i in &missing {
                rng.fill(&mut row[i]);
            }
            run_reconstruct(&mut row, k, true, &missing).unwrap();
            assert_eq!(row, orig, "missing={missing:?}");
        }
    }
}
