//! # strata-engine: the transactional key-value engine
//!
//! The heart of Strata: a transactional, ordered key-value store of named trees, on any
//! `BlockDevice` of `strata-storage` (a file, memory, or a RAID array of files).
//!
//! ```
//! use strata_engine::{Database, Isolation, Options};
//!
//! let db = Database::memory(Options::default()).unwrap();
//! let mut txn = db.begin(Isolation::RepeatableRead).unwrap();
//! txn.create_tree("accounts").unwrap();
//! txn.put("accounts", b"alice", b"100").unwrap();
//! txn.commit().unwrap();
//! let mut txn = db.begin(Isolation::ReadCommitted).unwrap();
//! assert_eq!(txn.get("accounts", b"alice").unwrap(), Some(b"100".to_vec()));
//! ```
//!
//! ARCHITECTURE, bottom up (each module's own doc has its format and invariants):
//!
//! 1. `page`: the page format. Every page has a header with its type, the checkpoint epoch that
//!    wrote it and a CRC32 of its contents; a mismatch is `Error::Corrupt` naming the page.
//! 2. `pager`: pages on the device, a bounded buffer pool (pinning, clock eviction) and
//!    copy-on-write between checkpoints. A page that belongs to the last checkpoint is never
//!    overwritten: the first change after a checkpoint copies it to a fresh page. A checkpoint
//!    writes the dirty pages, then flips one of two meta pages, so the file always holds one whole
//!    consistent tree state, whatever happens. Pages freed by copy-on-write are reused after the next
//!    checkpoint, so the file does not grow without bound under churn.
//! 3. `btree`: B+trees of byte keys and byte values in those pages: slotted leaves, overflow
//!    chains for large values (up to 16 MiB and beyond), splits and merges, cursors both ways, and
//!    a bulk-load path. Many named trees share one file.
//! 4. `wal`: the write-ahead log, a separate file of CRC-framed *logical* records: each committed
//!    transaction's writes. Group commit shares one fsync among concurrent committers. Because the
//!    checkpointed tree state is immutable, the log needs no page images: recovery opens the last
//!    checkpoint and re-applies the committed records after it. A torn tail is cut; a corrupt record
//!    followed by valid ones is an error naming its LSN.
//! 5. `txn`: transactions. A value in a tree is a *version chain*; a transaction buffers its
//!    writes privately and, at commit, appends versions stamped with a commit timestamp from a
//!    `TimestampSource`. Readers see the versions at or below their snapshot, so they never block
//!    writers. Row locks give READ COMMITTED its wait-then-reread, REPEATABLE READ its
//!    first-committer-wins, and SERIALIZABLE adds read-set validation against later commits
//!    (write skew aborts with a serialization failure). Deadlocks are found in the waits-for graph.
//!    `prepare` writes a transaction's writes durably and keeps its locks across restarts for
//!    two-phase commit.
//! 6. `db`: `Database`: open and create with options, `begin`, checkpoint, stats, per-tree
//!    sizes (`tree_stats`), `verify`.
//!
//! DETERMINISM. Applying a committed batch is a pure function of (state, batch): no clock, no
//! randomness; even version pruning uses the watermark recorded in the batch. So Raft replicas that
//! apply the same log end in the same state.

mod btree;
mod db;
mod error;
mod page;
mod pager;
mod txn;

pub mod codec;
pub mod locks;
pub mod store;
pub mod wal;

pub use btree::verify::TreeStats;
pub use db::{wal_path, Database, LocalClock, Options, Stats, TimestampSource};
pub use error::{Error, Result};
pub use locks::WaitCheck;
pub use txn::{Isolation, Packed, Savepoint, Scan, Txn};
pub use wal::SyncMode;
