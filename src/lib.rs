//! # Strata: the embedded API
//!
//! Strata is an embeddable and clusterable SQL database. This crate is the facade a program links to
//! use it in-process, the way rusqlite exposes SQLite: `Database::open`, `execute`, `query`,
//! transactions. It is a thin layer over the `strata-sql` and `strata-engine` crates, which sit on
//! the block devices of `strata-storage` (a file, memory, or a RAID array of files).
//!
//! The SQL layer and the engine are not built yet, so this crate exports nothing so far. The
//! workspace-level `tests/` and `benches/` belong to this package; today they exercise the storage
//! layer (see `benches/raid.rs`).
