//! The full structural check behind `TreeStore::verify`.
//!
//! Every page is read again (from the device, CRC checked, unless the pool holds a newer dirty
//! copy) and claimed for exactly one use; a page claimed twice, or below the page count and never
//! claimed, is an error naming it. Trees are checked against the invariants of `btree` (key
//! order within and across pages, bounds from the parents, equal leaf depth, non-empty nodes,
//! the size limits) and every overflow chain is walked.

use std::sync::Arc;

use crate::btree::{node, overflow, too_deep, Limits, MAX_DEPTH};
use crate::page::{self, PageId};
use crate::pager::Pager;
use crate::store::StoreError;
use node::Value;

type Result<T> = std::result::Result<T, StoreError>;

/// What a page is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Use {
    Meta,
    Tree,
    Overflow,
    Directory,
    Freelist,
    Free,
    PendingFree,
}

/// The size and shape of one tree, from walking it (`Database::tree_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Keys stored (each one a version chain: deleted rows count until their versions are pruned).
    pub entries: u64,
    /// Node pages: branches and leaves.
    pub pages: u64,
    /// Pages of overflow chains (values too large to sit in a leaf).
    pub overflow_pages: u64,
    /// Levels from the root to the leaves (1 for a tree that is a single leaf).
    pub depth: usize,
}

impl TreeStats {
    /// Every page the tree occupies: node pages and overflow pages.
    pub fn total_pages(&self) -> u64 {
        self.pages + self.overflow_pages
    }
}

fn corrupt(id: PageId, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        page: id.0,
        reason: reason.into(),
    }
}

fn claim_in(owner: &mut [Option<Use>], id: PageId, what: Use) -> Result<()> {
    let Some(slot) = owner.get_mut(id.0 as usize) else {
        return Err(corrupt(
            id,
            format!("{what:?} page beyond the page count {}", owner.len()),
        ));
    };
    if let Some(before) = *slot {
        return Err(corrupt(id, format!("used as {before:?} and as {what:?}")));
    }
    *slot = Some(what);
    Ok(())
}

/// Walks trees and claims pages.
pub(crate) struct Verifier<'a> {
    pager: &'a Pager,
    lim: Limits,
    owner: Vec<Option<Use>>,
}

impl<'a> Verifier<'a> {
    pub(crate) fn new(pager: &'a Pager, lim: Limits) -> Verifier<'a> {
        Verifier {
            pager,
            lim,
            owner: vec![None; pager.page_count() as usize],
        }
    }

    /// Claims a page for one use.
    pub(crate) fn claim(&mut self, id: PageId, what: Use) -> Result<()> {
        claim_in(&mut self.owner, id, what)
    }

    /// The first page below the page count that nothing claimed.
    pub(crate) fn unclaimed(&self) -> Option<PageId> {
        self.owner
            .iter()
            .position(Option::is_none)
            .map(|i| PageId(i as u64))
    }

    fn page(&self, id: PageId) -> Result<Arc<Vec<u8>>> {
        if let Some(p) = self.pager.dirty_copy(id) {
            node::validate(&p).map_err(|r| corrupt(id, r))?;
            return Ok(p);
        }
        let mut buf = vec![0u8; self.pager.page_size()];
        self.pager.read_direct(id, &mut buf)?;
        page::check(&buf)
            .and_then(|_| node::validate(&buf))
            .map_err(|r| corrupt(id, r))?;
        Ok(Arc::new(buf))
    }

    /// Checks the tree at `root`, claiming its pages as `what` and its chains as overflow;
    /// `each` sees every entry in order.
    pub(crate) fn tree(
        &mut self,
        root: PageId,
        what: Use,
        each: &mut dyn FnMut(&[u8], Value<'_>) -> Result<()>,
    ) -> Result<TreeStats> {
        let mut stats = TreeStats::default();
        let mut leaf_depth = None;
        self.node(root, what, None, None, 0, &mut leaf_depth, &mut stats, each)?;
        stats.depth = leaf_depth.unwrap_or(0) + 1;
        Ok(stats)
    }

    #[allow(clippy::too_many_arguments)]
    fn node(
        &mut self,
        id: PageId,
        what: Use,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
        depth: usize,
        leaf_depth: &mut Option<usize>,
        stats: &mut TreeStats,
        each: &mut dyn FnMut(&[u8], Value<'_>) -> Result<()>,
    ) -> Result<()> {
        if depth >= MAX_DEPTH {
            return Err(too_deep(id));
        }
        self.claim(id, what)?;
        let p = self.page(id)?;
        if page::epoch(&p) > self.pager.current_epoch() {
            return Err(corrupt(
                id,
                format!(
                    "written in epoch {}, after the current epoch {}",
                    page::epoch(&p),
                    self.pager.current_epoch()
                ),
            ));
        }
        stats.pages += 1;
        let n = node::count(&p);
        let leaf = node::is_leaf(&p);
        for i in 0..n {
            let k = node::key(&p, i);
            if i > 0 && node::key(&p, i - 1) >= k {
                return Err(corrupt(id, format!("key {i} not above key {}", i - 1)));
            }
            if lo.is_some_and(|lo| k < lo) || hi.is_some_and(|hi| k >= hi) {
                return Err(corrupt(
                    id,
                    format!("key {i} ({k:02x?}) outside the bounds its parent gives"),
                ));
            }
            if k.len() > self.lim.max_key {
                return Err(corrupt(id, format!("key {i} of {} bytes", k.len())));
            }
        }
        if leaf {
            if n == 0 && depth > 0 {
                return Err(corrupt(id, "empty leaf below the root"));
            }
            match *leaf_depth {
                None => *leaf_depth = Some(depth),
                Some(d) if d != depth => {
                    return Err(corrupt(
                        id,
                        format!("leaf at depth {depth}, other leaves at depth {d}"),
                    ))
                }
                Some(_) => {}
            }
            for i in 0..n {
                let v = node::value(&p, i);
                match v {
                    Value::Inline(bytes) if bytes.len() > self.lim.max_inline => {
                        return Err(corrupt(
                            id,
                            format!("inline value {i} of {} bytes", bytes.len()),
                        ))
                    }
                    Value::Inline(_) => {}
                    Value::Overflow { first, len } => {
                        if len <= self.lim.max_inline as u64 {
                            return Err(corrupt(
                                id,
                                format!("overflow value {i} of only {len} bytes"),
                            ));
                        }
                        let owner = &mut self.owner;
                        let mut pages = 0;
                        overflow::walk(self.pager, first, len, |pid, _, _| {
                            pages += 1;
                            claim_in(owner, pid, Use::Overflow)
                        })?;
                        stats.overflow_pages += pages;
                    }
                }
                stats.entries += 1;
                each(node::key(&p, i), v)?;
            }
        } else {
            if n == 0 {
                return Err(corrupt(id, "branch without keys"));
            }
            for i in 0..=n {
                let clo = if i == 0 {
                    lo
                } else {
                    Some(node::key(&p, i - 1))
                };
                let chi = if i == n { hi } else { Some(node::key(&p, i)) };
                let child = node::child(&p, i);
                self.node(child, what, clo, chi, depth + 1, leaf_depth, stats, each)?;
            }
        }
        Ok(())
    }
}

/// Checks one tree on its own (page claims only within it).
#[cfg(test)]
pub(crate) fn check_tree(pager: &Pager, lim: &Limits, root: PageId) -> Result<TreeStats> {
    Verifier::new(pager, *lim).tree(root, Use::Tree, &mut |_, _| Ok(()))
}
