//! # strata-cluster: everything that crosses a network (not built yet)
//!
//! The PostgreSQL wire-protocol server, and the cluster: a meta Raft group (catalog, membership,
//! partition map, timestamp oracle), one Raft group per partition (range, list or hash sharding),
//! replication ack policies (async, quorum, sync) and two-phase commit across shards with a
//! Raft-replicated transaction record. Nothing below this crate knows about nodes.
//! Nothing here yet: this crate only holds its place in the layering.
