//! # strata-engine: the transactional key-value engine (not built yet)
//!
//! The heart of Strata, to be built on the `BlockDevice` boundary of `strata-storage`: a pager with
//! a bounded buffer pool, B+trees (tables clustered by primary key, dense secondary indexes, sparse
//! zone-map indexes), a write-ahead log with group commit and crash recovery, and MVCC transactions
//! at READ COMMITTED, REPEATABLE READ and SERIALIZABLE, with the durable `prepare` /
//! `commit_prepared` / `rollback_prepared` hooks two-phase commit needs. See ../shared/DESIGN.md,
//! "Storage engine decisions". Nothing here yet: this crate only holds its place in the layering
//! (`storage <- engine <- sql <- cluster <- tools`).
