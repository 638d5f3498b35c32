//! Stale windows and the intermediate states of an operation: what the oracle needs
//! beyond the kernel state to judge requests that race with invalidations
//! ([`crate::oracle::allowed`], [`crate::oracle::allowed_during`]).

use super::{DomainId, IommuOps, Kernel, State};

/// A stale window: the state before an operation that removed translations, kept until
/// the invalidation wait that follows its flush completes.
#[derive(Clone, Debug)]
pub struct Window {
    pub seq: u64,
    /// For unmaps: the domain whose `iotlb_sync` submits the flush.
    pub domain: Option<DomainId>,
    /// The flush has been submitted (only then can its wait complete).
    pub flushed: bool,
    pub what: String,
    pub before: State,
}

impl<O: IommuOps> Kernel<O> {
    /// Open stale windows, oldest first.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// Starts recording the intermediate states the next operations pass through
    /// (forgetting what was recorded before): the harness calls it, through
    /// [`crate::oracle::Snapshot::take`], just before it starts an operation that requests
    /// may race with.
    pub fn record_transit(&mut self) {
        self.transit = Some(Vec::new());
    }

    /// The abstract states the operations since [`Kernel::record_transit`] passed through
    /// between their start and their end, that neither the state before nor the state
    /// after shows: the RID blocked while `attach_dev` replaces its domain (when the
    /// backend [`IommuOps::attach_blocks_first`]), the leaves a failed `iommu_map()` had
    /// installed before `__iommu_map()` unwound them. Steps that change one leaf or one
    /// attachment at a time and never undo one are not recorded: a request names one page
    /// through one attachment, so for it each such step is the state before or the state
    /// after. Empty when nobody records.
    pub fn transit(&self) -> &[State] {
        self.transit.as_deref().unwrap_or(&[])
    }

    pub(super) fn note_transit(&mut self, st: impl FnOnce(&State) -> State) {
        if self.transit.is_some() {
            let s = st(&self.state);
            if let Some(t) = self.transit.as_mut() {
                t.push(s);
            }
        }
    }

    /// The harness saw every submitted invalidation wait complete: closes every window
    /// whose flush was submitted. Returns how many closed.
    pub fn complete_invalidations(&mut self) -> usize {
        let before = self.windows.len();
        self.windows.retain(|w| !w.flushed);
        before - self.windows.len()
    }

    pub(super) fn open_window(&mut self, before: State, domain: Option<DomainId>, what: String) {
        self.next_seq += 1;
        self.windows.push(Window {
            seq: self.next_seq,
            domain,
            flushed: domain.is_none(),
            what,
            before,
        });
        if self.config.sync_waits && domain.is_none() {
            self.complete_invalidations();
        }
    }
}
