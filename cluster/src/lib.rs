//! # strata-cluster: everything that crosses a network
//!
//! Built so far: [`server`], the PostgreSQL wire-protocol server (`strata serve`) over one
//! local database.
//!
//! Still to come: the cluster: a meta Raft group (catalog, membership, partition map,
//! timestamp oracle), one Raft group per partition (range, list or hash sharding), replication
//! ack policies (async, quorum, sync) and two-phase commit across shards with a Raft-replicated
//! transaction record. Nothing below this crate knows about nodes.

pub mod server;
