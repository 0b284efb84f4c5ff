//! # strata-sql: the PostgreSQL-dialect SQL layer (not built yet)
//!
//! Parses with sqlparser's PostgreSqlDialect, binds names against a catalog stored in the engine,
//! plans (predicate pushdown, choice between full scan, dense index and sparse index, join order) and
//! executes. It reaches storage only through a small transaction trait (get / put / delete / scan /
//! commit), implemented by the local engine and, later, by the cluster's distributed transaction.
//! Nothing here yet: this crate only holds its place in the layering.
