//! Byte encodings of the MVCC layer: version chains (the values stored in trees) and the logical
//! WAL records. Both are pure functions of their input, so replaying a log is deterministic.
//!
//! VERSION CHAIN (the value of every key in a tree). Most keys hold one live version, which
//! takes the short format 2; any other chain (several versions, or a tombstone) takes format 1,
//! newest version first. A chain is always written in the format its versions call for, so
//! equal chains are equal bytes.
//!
//! | field        | size    | meaning (format 2: exactly one version, not a tombstone) |
//! |--------------|---------|-------------------------------------------------|
//! | format       | 1       | 2                                               |
//! | commit_ts    | varint  | commit timestamp of the writer                  |
//! | bytes        | rest    | the value                                       |
//!
//! | field        | size    | meaning (format 1: any other chain)             |
//! |--------------|---------|-------------------------------------------------|
//! | format       | 1       | 1                                               |
//! | count        | varint  | number of versions                              |
//! | per version: |         |                                                 |
//! | commit_ts    | 8 (LE)  | commit timestamp of the writer                  |
//! | kind         | 1       | 0 = value, 1 = tombstone (a delete)             |
//! | len          | varint  | value length (absent for a tombstone)           |
//! | bytes        | len     | the value                                       |
//!
//! WAL RECORD: a tag byte, then the fields of the variant below in order; strings and byte strings
//! are a varint length and the bytes; a write is tree, key, and 0 (delete) or 1 + value.
//!
//! | tag | record            | fields                                                      |
//! |-----|-------------------|-------------------------------------------------------------|
//! | 1   | Commit            | commit_ts u64, gc_watermark u64, ops                        |
//! | 2   | Prepare           | gid, start_ts u64, ops                                      |
//! | 3   | CommitPrepared    | gid, commit_ts u64, gc_watermark u64                        |
//! | 4   | RollbackPrepared  | gid                                                         |
//!
//! `ops` is a varint count of operations: tag 1 create tree (name), 2 drop tree (name), 3 write.

use crate::error::{Error, Result};

/// One version of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub commit_ts: u64,
    /// None for a tombstone.
    pub value: Option<Vec<u8>>,
}

/// One operation of a transaction, in the order it was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    CreateTree(String),
    DropTree(String),
    Write {
        tree: String,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
    },
}

/// A logical WAL record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Commit {
        commit_ts: u64,
        gc_watermark: u64,
        ops: Vec<Op>,
    },
    Prepare {
        gid: String,
        start_ts: u64,
        ops: Vec<Op>,
    },
    CommitPrepared {
        gid: String,
        commit_ts: u64,
        gc_watermark: u64,
    },
    RollbackPrepared {
        gid: String,
    },
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A cursor over bytes being decoded; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, at: 0, what }
    }

    fn bad(&self, why: &str) -> Error {
        Error::Corrupt(format!("{} at byte {}: {why}", self.what, self.at))
    }

    fn u8(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.at).ok_or_else(|| self.bad("truncated"))?;
        self.at += 1;
        Ok(b)
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self
            .buf
            .get(self.at..self.at + 8)
            .ok_or_else(|| self.bad("truncated"))?;
        self.at += 8;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.bad("varint too long"))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.varint()? as usize;
        let end = self
            .at
            .checked_add(len)
            .ok_or_else(|| self.bad("length overflow"))?;
        let b = self
            .buf
            .get(self.at..end)
            .ok_or_else(|| self.bad("truncated"))?;
        self.at = end;
        Ok(b)
    }

    fn string(&mut self) -> Result<String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| self.bad("invalid UTF-8"))
    }

    fn finish(&self) -> Result<()> {
        if self.at == self.buf.len() {
            Ok(())
        } else {
            Err(self.bad("trailing bytes"))
        }
    }
}

/// Format byte of a chain of one live version.
const SINGLE: u8 = 2;
/// Format byte of any other chain.
const LIST: u8 = 1;

/// Appends the format-2 chain of one live version.
fn put_single(out: &mut Vec<u8>, ts: u64, value: &[u8]) {
    out.reserve(1 + varint_len(ts) + value.len());
    out.push(SINGLE);
    put_varint(out, ts);
    out.extend_from_slice(value);
}

/// Encodes a chain (newest first).
pub fn encode_chain(versions: &[Version]) -> Vec<u8> {
    if let [Version {
        commit_ts,
        value: Some(value),
    }] = versions
    {
        let mut out = Vec::new();
        put_single(&mut out, *commit_ts, value);
        return out;
    }
    let size: usize = versions
        .iter()
        .map(|v| 12 + v.value.as_ref().map_or(0, Vec::len))
        .sum();
    let mut out = Vec::with_capacity(2 + size);
    out.push(LIST);
    put_varint(&mut out, versions.len() as u64);
    for v in versions {
        out.extend_from_slice(&v.commit_ts.to_le_bytes());
        match &v.value {
            Some(value) => {
                out.push(0);
                put_bytes(&mut out, value);
            }
            None => out.push(1),
        }
    }
    out
}

/// Decodes a chain.
pub fn decode_chain(buf: &[u8]) -> Result<Vec<Version>> {
    Ok(chain_versions(buf)?
        .map(|(commit_ts, value)| Version {
            commit_ts,
            value: value.map(<[u8]>::to_vec),
        })
        .collect())
}

/// The versions of an encoded chain, in place, newest first: (commit_ts, value; None for a
/// tombstone). Checks the whole chain as `decode_chain` does.
fn chain_versions(buf: &[u8]) -> Result<ChainVersions<'_>> {
    let mut r = Reader::new(buf, "version chain");
    match r.u8()? {
        SINGLE => {
            let ts = r.varint()?;
            let value = &buf[r.at..];
            return Ok(ChainVersions {
                single: Some((ts, value)),
                r,
                left: 0,
            });
        }
        LIST => {}
        _ => return Err(r.bad("unknown chain format")),
    }
    let count = r.varint()?;
    let start = r.at;
    for _ in 0..count {
        r.u64()?;
        match r.u8()? {
            0 => {
                r.bytes()?;
            }
            1 => {}
            _ => return Err(r.bad("unknown version kind")),
        }
    }
    r.finish()?;
    r.at = start;
    Ok(ChainVersions {
        single: None,
        r,
        left: count,
    })
}

/// Iterator of `chain_versions`, over a chain already checked: the version of a format-2
/// chain, or the `left` versions of a format-1 chain at `r`.
struct ChainVersions<'a> {
    single: Option<(u64, &'a [u8])>,
    r: Reader<'a>,
    left: u64,
}

impl<'a> Iterator for ChainVersions<'a> {
    type Item = (u64, Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some((ts, value)) = self.single.take() {
            return Some((ts, Some(value)));
        }
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let ts = self.r.u64().expect("invariant: chain checked");
        let value = match self.r.u8().expect("invariant: chain checked") {
            0 => Some(self.r.bytes().expect("invariant: chain checked")),
            _ => None,
        };
        Some((ts, value))
    }
}

/// `visible` on an encoded chain, without decoding it: the value visible at `snapshot_ts`
/// (None: no version is visible; Some(None): a visible delete).
pub fn visible_encoded(buf: &[u8], snapshot_ts: u64) -> Result<Option<Option<&[u8]>>> {
    Ok(chain_versions(buf)?
        .find(|(ts, _)| *ts <= snapshot_ts)
        .map(|(_, v)| v))
}

/// The commit timestamp of the newest version of an encoded chain (None if it has none).
pub fn newest_encoded(buf: &[u8]) -> Result<Option<u64>> {
    Ok(chain_versions(buf)?.next().map(|(ts, _)| ts))
}

fn put_version(out: &mut Vec<u8>, ts: u64, value: Option<&[u8]>) {
    out.extend_from_slice(&ts.to_le_bytes());
    match value {
        Some(v) => {
            out.push(0);
            put_bytes(out, v);
        }
        None => out.push(1),
    }
}

/// `add_version` on encoded chains: adds the version (`commit_ts`, `value`) to the chain `old`
/// (None: the key has no chain yet), prunes, and appends the encoding of the result to `out`.
/// Returns false, leaving `out` alone, when the key is to be removed. The bytes are exactly
/// `encode_chain(&add_version(decode_chain(old)?, version, gc_watermark)?)`.
pub fn add_version_encoded(
    old: Option<&[u8]>,
    commit_ts: u64,
    value: Option<&[u8]>,
    gc_watermark: u64,
    out: &mut Vec<u8>,
) -> Result<bool> {
    let Some(old) = old else {
        // A fresh chain of one version: pruning can only drop it if it is a tombstone that
        // every snapshot sees.
        match value {
            Some(value) => put_single(out, commit_ts, value),
            None if commit_ts <= gc_watermark => return Ok(false),
            None => {
                out.push(LIST);
                put_varint(out, 1);
                put_version(out, commit_ts, None);
            }
        }
        return Ok(true);
    };
    let mut chain: Vec<(u64, Option<&[u8]>)> = chain_versions(old)?.collect();
    if !chain.iter().any(|(ts, _)| *ts == commit_ts) {
        let at = chain
            .iter()
            .position(|(ts, _)| *ts < commit_ts)
            .unwrap_or(chain.len());
        chain.insert(at, (commit_ts, value));
    }
    if let Some(keep) = chain.iter().position(|(ts, _)| *ts <= gc_watermark) {
        chain.truncate(keep + 1);
        if chain.len() == 1 && chain[0].1.is_none() {
            return Ok(false);
        }
    }
    if chain.is_empty() {
        return Ok(false);
    }
    if let [(ts, Some(value))] = chain[..] {
        put_single(out, ts, value);
        return Ok(true);
    }
    out.push(LIST);
    put_varint(out, chain.len() as u64);
    for (ts, v) in chain {
        put_version(out, ts, v);
    }
    Ok(true)
}

/// The version visible at `snapshot_ts`: the newest with commit_ts <= snapshot_ts.
/// Returns None if no version is visible, Some(None) for a visible delete.
pub fn visible(chain: &[Version], snapshot_ts: u64) -> Option<&Option<Vec<u8>>> {
    chain
        .iter()
        .find(|v| v.commit_ts <= snapshot_ts)
        .map(|v| &v.value)
}

/// Adds a version to a chain and prunes versions no snapshot at or above `gc_watermark` can see:
/// every version older than the newest one at or below the watermark goes. Idempotent: a version
/// with the same commit_ts already present is left as is (replay after a checkpoint).
/// Returns None when the chain is empty afterwards or is a lone tombstone below the watermark
/// (the key can be removed from the tree).
pub fn add_version(
    mut chain: Vec<Version>,
    version: Version,
    gc_watermark: u64,
) -> Option<Vec<Version>> {
    if !chain.iter().any(|v| v.commit_ts == version.commit_ts) {
        let at = chain
            .iter()
            .position(|v| v.commit_ts < version.commit_ts)
            .unwrap_or(chain.len());
        chain.insert(at, version);
    }
    prune(chain, gc_watermark)
}

/// Prunes a chain (see `add_version`).
pub fn prune(mut chain: Vec<Version>, gc_watermark: u64) -> Option<Vec<Version>> {
    if let Some(keep) = chain.iter().position(|v| v.commit_ts <= gc_watermark) {
        chain.truncate(keep + 1);
        if chain.len() == 1 && chain[0].value.is_none() {
            return None;
        }
    }
    (!chain.is_empty()).then_some(chain)
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn bytes_len(b: &[u8]) -> usize {
    varint_len(b.len() as u64) + b.len()
}

/// Encoded size of a write operation.
fn write_len(tree: &str, key: &[u8], value: Option<&[u8]>) -> usize {
    2 + bytes_len(tree.as_bytes()) + bytes_len(key) + value.map_or(0, bytes_len)
}

fn encode_write(out: &mut Vec<u8>, tree: &str, key: &[u8], value: Option<&[u8]>) {
    out.push(3);
    put_bytes(out, tree.as_bytes());
    put_bytes(out, key);
    match value {
        Some(v) => {
            out.push(1);
            put_bytes(out, v);
        }
        None => out.push(0),
    }
}

fn op_len(op: &Op) -> usize {
    match op {
        Op::CreateTree(name) | Op::DropTree(name) => 1 + bytes_len(name.as_bytes()),
        Op::Write { tree, key, value } => write_len(tree, key, value.as_deref()),
    }
}

fn encode_op(out: &mut Vec<u8>, op: &Op) {
    match op {
        Op::CreateTree(name) => {
            out.push(1);
            put_bytes(out, name.as_bytes());
        }
        Op::DropTree(name) => {
            out.push(2);
            put_bytes(out, name.as_bytes());
        }
        Op::Write { tree, key, value } => encode_write(out, tree, key, value.as_deref()),
    }
}

fn encode_ops(out: &mut Vec<u8>, ops: &[Op]) {
    put_varint(out, ops.len() as u64);
    for op in ops {
        encode_op(out, op);
    }
}

/// The size of the Commit record whose operations are `tree_ops` followed by `writes` (tree,
/// key, value).
pub(crate) fn commit_len<'a>(
    tree_ops: &[Op],
    writes: impl Iterator<Item = (&'a str, &'a [u8], Option<&'a [u8]>)>,
) -> usize {
    let (count, size) = writes.fold((0usize, 0usize), |(n, size), (t, k, v)| {
        (n + 1, size + write_len(t, k, v))
    });
    let count = count + tree_ops.len();
    17 + varint_len(count as u64) + size + tree_ops.iter().map(op_len).sum::<usize>()
}

/// Encodes that Commit record (the same bytes as `Record::Commit { .. }.encode()` of the
/// operation list), handing it to `sink` in pieces of about `piece` bytes.
pub(crate) fn encode_commit_pieces<'a, E>(
    commit_ts: u64,
    gc_watermark: u64,
    tree_ops: &[Op],
    writes: impl Iterator<Item = (&'a str, &'a [u8], Option<&'a [u8]>)> + Clone,
    piece: usize,
    sink: &mut dyn FnMut(&[u8]) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let count = writes.clone().count() + tree_ops.len();
    let mut out = Vec::with_capacity(piece + 64);
    out.push(1);
    out.extend_from_slice(&commit_ts.to_le_bytes());
    out.extend_from_slice(&gc_watermark.to_le_bytes());
    put_varint(&mut out, count as u64);
    for op in tree_ops {
        encode_op(&mut out, op);
    }
    for (tree, key, value) in writes {
        if out.len() >= piece {
            sink(&out)?;
            out.clear();
        }
        encode_write(&mut out, tree, key, value);
    }
    sink(&out)
}

/// That Commit record appended to `out` whole.
pub(crate) fn encode_commit<'a>(
    out: &mut Vec<u8>,
    commit_ts: u64,
    gc_watermark: u64,
    tree_ops: &[Op],
    writes: impl Iterator<Item = (&'a str, &'a [u8], Option<&'a [u8]>)> + Clone,
) {
    let size = commit_len(tree_ops, writes.clone());
    out.reserve(size);
    let start = out.len();
    let _ = encode_commit_pieces(
        commit_ts,
        gc_watermark,
        tree_ops,
        writes,
        usize::MAX,
        &mut |piece| {
            out.extend_from_slice(piece);
            Ok::<(), std::convert::Infallible>(())
        },
    );
    debug_assert_eq!(out.len() - start, size, "invariant: size computed exactly");
}

fn decode_ops(r: &mut Reader<'_>) -> Result<Vec<Op>> {
    let count = r.varint()?;
    let mut ops = Vec::with_capacity(count.min(1 << 16) as usize);
    for _ in 0..count {
        ops.push(match r.u8()? {
            1 => Op::CreateTree(r.string()?),
            2 => Op::DropTree(r.string()?),
            3 => {
                let tree = r.string()?;
                let key = r.bytes()?.to_vec();
                let value = match r.u8()? {
                    0 => None,
                    1 => Some(r.bytes()?.to_vec()),
                    _ => return Err(r.bad("unknown write kind")),
                };
                Op::Write { tree, key, value }
            }
            _ => return Err(r.bad("unknown operation")),
        });
    }
    Ok(ops)
}

impl Record {
    /// Encodes the record as a WAL payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Record::Commit {
                commit_ts,
                gc_watermark,
                ops,
            } => {
                out.push(1);
                out.extend_from_slice(&commit_ts.to_le_bytes());
                out.extend_from_slice(&gc_watermark.to_le_bytes());
                encode_ops(&mut out, ops);
            }
            Record::Prepare { gid, start_ts, ops } => {
                out.push(2);
                put_bytes(&mut out, gid.as_bytes());
                out.extend_from_slice(&start_ts.to_le_bytes());
                encode_ops(&mut out, ops);
            }
            Record::CommitPrepared {
                gid,
                commit_ts,
                gc_watermark,
            } => {
                out.push(3);
                put_bytes(&mut out, gid.as_bytes());
                out.extend_from_slice(&commit_ts.to_le_bytes());
                out.extend_from_slice(&gc_watermark.to_le_bytes());
            }
            Record::RollbackPrepared { gid } => {
                out.push(4);
                put_bytes(&mut out, gid.as_bytes());
            }
        }
        out
    }

    /// Decodes a WAL payload.
    pub fn decode(buf: &[u8]) -> Result<Record> {
        let mut r = Reader::new(buf, "WAL record");
        let record = match r.u8()? {
            1 => Record::Commit {
                commit_ts: r.u64()?,
                gc_watermark: r.u64()?,
                ops: decode_ops(&mut r)?,
            },
            2 => Record::Prepare {
                gid: r.string()?,
                start_ts: r.u64()?,
                ops: decode_ops(&mut r)?,
            },
            3 => Record::CommitPrepared {
                gid: r.string()?,
                commit_ts: r.u64()?,
                gc_watermark: r.u64()?,
            },
            4 => Record::RollbackPrepared { gid: r.string()? },
            _ => return Err(r.bad("unknown record type")),
        };
        r.finish()?;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ts: u64, value: Option<&str>) -> Version {
        Version {
            commit_ts: ts,
            value: value.map(|s| s.as_bytes().to_vec()),
        }
    }

    #[test]
    fn chain_round_trip_and_visibility() {
        let chain = vec![v(30, None), v(20, Some("b")), v(10, Some("a"))];
        let enc = encode_chain(&chain);
        assert_eq!(decode_chain(&enc).unwrap(), chain);
        assert_eq!(visible(&chain, 5), None);
        assert_eq!(visible(&chain, 10), Some(&Some(b"a".to_vec())));
        assert_eq!(visible(&chain, 25), Some(&Some(b"b".to_vec())));
        assert_eq!(visible(&chain, 99), Some(&None));
        for cut in 0..enc.len() {
            assert!(decode_chain(&enc[..cut]).is_err(), "truncated at {cut}");
        }
        // One live version takes the short format: format byte, varint timestamp, value.
        let single = vec![v(300, Some("abc"))];
        let enc = encode_chain(&single);
        assert_eq!(enc, [2, 0xAC, 0x02, b'a', b'b', b'c']);
        assert_eq!(decode_chain(&enc).unwrap(), single);
        assert_eq!(visible_encoded(&enc, 299).unwrap(), None);
        assert_eq!(visible_encoded(&enc, 300).unwrap(), Some(Some(&b"abc"[..])));
        assert_eq!(newest_encoded(&enc).unwrap(), Some(300));
        assert!(decode_chain(&[2]).is_err());
        assert!(decode_chain(&[3, 1]).is_err());
        // The same chain in format 1 still reads the same.
        let long = [&[1u8, 1][..], &300u64.to_le_bytes(), &[0, 3], b"abc"].concat();
        assert_eq!(decode_chain(&long).unwrap(), single);
        assert_eq!(
            visible_encoded(&long, 300).unwrap(),
            Some(Some(&b"abc"[..]))
        );
    }

    #[test]
    fn add_version_orders_prunes_and_is_idempotent() {
        let chain = vec![v(10, Some("a"))];
        let chain = add_version(chain, v(20, Some("b")), 0).unwrap();
        assert_eq!(chain, vec![v(20, Some("b")), v(10, Some("a"))]);
        // Replaying the same commit changes nothing.
        assert_eq!(
            add_version(chain.clone(), v(20, Some("b")), 0).unwrap(),
            chain
        );
        // Watermark 25: the version at 20 is what the oldest snapshot sees; 10 goes.
        let chain = add_version(chain, v(30, Some("c")), 25).unwrap();
        assert_eq!(chain, vec![v(30, Some("c")), v(20, Some("b"))]);
        // A delete that every snapshot sees removes the key altogether.
        assert_eq!(add_version(chain, v(40, None), 40), None);
    }

    #[test]
    fn encoded_chain_operations_match_decoded_ones() {
        let chains = [
            vec![],
            vec![v(30, None), v(20, Some("b")), v(10, Some("a"))],
            vec![v(20, Some("b"))],
            vec![v(20, None)],
            vec![v(50, Some(""))],
        ];
        for chain in &chains {
            let enc = (!chain.is_empty()).then(|| encode_chain(chain));
            for snap in [0, 5, 10, 20, 25, 30, 99] {
                if let Some(enc) = &enc {
                    let want = visible(chain, snap).map(|v| v.as_deref());
                    assert_eq!(visible_encoded(enc, snap).unwrap(), want);
                    assert_eq!(
                        newest_encoded(enc).unwrap(),
                        chain.first().map(|v| v.commit_ts)
                    );
                }
            }
            for ts in [10, 20, 25, 40] {
                for value in [None, Some(&b"new"[..])] {
                    for wm in [0, 15, 20, 30, 40, 60] {
                        let version = Version {
                            commit_ts: ts,
                            value: value.map(<[u8]>::to_vec),
                        };
                        let want =
                            add_version(chain.clone(), version, wm).map(|c| encode_chain(&c));
                        let mut out = vec![9];
                        let kept =
                            add_version_encoded(enc.as_deref(), ts, value, wm, &mut out).unwrap();
                        assert_eq!(kept, want.is_some(), "{chain:?} + {ts} at {wm}");
                        if let Some(want) = want {
                            assert_eq!(&out[1..], &want[..], "{chain:?} + {ts} at {wm}");
                        }
                    }
                }
            }
        }
        assert!(visible_encoded(&[1, 1, 0], 5).is_err());
        let mut out = Vec::new();
        assert!(add_version_encoded(Some(&[2]), 1, None, 0, &mut out).is_err());
    }

    #[test]
    fn commit_encoded_from_parts_matches_the_record() {
        let tree_ops = vec![Op::DropTree("u".into()), Op::CreateTree("t".into())];
        let big = vec![7u8; 300];
        type Write<'a> = (&'a str, &'a [u8], Option<&'a [u8]>);
        let writes: Vec<Write> = vec![
            ("t", b"a", Some(b"1")),
            ("t", b"b", None),
            ("u", &[0; 200], Some(&big)),
        ];
        let mut ops = tree_ops.clone();
        ops.extend(writes.iter().map(|(t, k, v)| Op::Write {
            tree: t.to_string(),
            key: k.to_vec(),
            value: v.map(<[u8]>::to_vec),
        }));
        let rec = Record::Commit {
            commit_ts: 9,
            gc_watermark: 4,
            ops,
        };
        let mut out = vec![0; 20];
        encode_commit(&mut out, 9, 4, &tree_ops, writes.iter().copied());
        assert_eq!(&out[20..], &rec.encode()[..]);
        assert_eq!(
            commit_len(&tree_ops, writes.iter().copied()),
            out.len() - 20
        );
        let mut pieces = Vec::new();
        encode_commit_pieces(9, 4, &tree_ops, writes.iter().copied(), 10, &mut |p| {
            assert!(!p.is_empty() && p.len() < 10 + 520, "piece of {}", p.len());
            pieces.extend_from_slice(p);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(pieces, rec.encode());
        for v in [0u64, 1, 127, 128, 16383, 16384, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
        }
    }

    #[test]
    fn records_round_trip() {
        let ops = vec![
            Op::CreateTree("t".into()),
            Op::Write {
                tree: "t".into(),
                key: b"k".to_vec(),
                value: Some(vec![0; 300]),
            },
            Op::Write {
                tree: "t".into(),
                key: vec![],
                value: None,
            },
            Op::DropTree("u".into()),
        ];
        for rec in [
            Record::Commit {
                commit_ts: 7,
                gc_watermark: 3,
                ops: ops.clone(),
            },
            Record::Prepare {
                gid: "tx-1".into(),
                start_ts: 6,
                ops,
            },
            Record::CommitPrepared {
                gid: "tx-1".into(),
                commit_ts: 9,
                gc_watermark: 2,
            },
            Record::RollbackPrepared { gid: "tx-2".into() },
        ] {
            let enc = rec.encode();
            assert_eq!(Record::decode(&enc).unwrap(), rec);
            assert!(Record::decode(&enc[..enc.len() - 1]).is_err());
        }
        assert!(Record::decode(&[9]).is_err());
    }
}
