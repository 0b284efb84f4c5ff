//! VACUUM: PostgreSQL's maintenance command, as it applies to Strata's storage.
//!
//! Strata's engine reclaims old row versions on its own once no snapshot can see them, so
//! VACUUM's remaining job is the one PostgreSQL's CHECKPOINT does: write every committed change
//! back to the data file and trim the WAL. `VACUUM ANALYZE` (or `VACUUM (ANALYZE)`) also
//! refreshes the planner statistics, as ANALYZE does. As in PostgreSQL, VACUUM cannot run
//! inside a transaction block (25001), and a named table must exist (42P01).

use sqlparser::ast;

use crate::error::Result;
use crate::kv::{Isolation, Storage};
use crate::session::QueryResult;
use crate::{bail, catalog, ddl, plan};

/// Runs VACUUM (outside any transaction block; the caller checks).
pub fn vacuum(storage: &dyn Storage, v: &ast::VacuumStatement) -> Result<QueryResult> {
    // sqlparser reads `VACUUM ANALYZE t` as a table named "analyze" and drops the rest; read
    // the options back from the name.
    let mut analyze = false;
    let mut table = None;
    if let Some(name) = &v.table_name {
        let name = plan::object_name(name)?;
        match name.as_str() {
            "analyze" | "analyse" => analyze = true,
            "verbose" | "freeze" => {}
            _ => table = Some(name),
        }
    }
    let mut txn = storage.begin(Isolation::ReadCommitted)?;
    if let Some(t) = &table {
        if catalog::table(txn.as_mut(), t)?.is_none() {
            txn.rollback()?;
            bail!(UNDEFINED_TABLE, "relation \"{t}\" does not exist");
        }
    }
    if analyze {
        ddl::analyze(txn.as_mut(), table.clone())?;
        txn.commit()?;
    } else {
        txn.rollback()?;
    }
    storage.checkpoint()?;
    Ok(QueryResult {
        tag: "VACUUM".into(),
        ..Default::default()
    })
}
