//! `qi_submit_sync()` (drivers/iommu/intel/dmar.c): every batch ends with an invalidation
//! wait whose status write the driver waits for. When the hardware aborts that wait because
//! a device-TLB invalidation timed out (FSTS.ITE; `qi_check_fault()` clears it and returns
//! -EAGAIN), the same descriptors are submitted again (`goto restart`).

use super::{Batch, Driver, HwError, IommuHw};
use crate::qi::Descriptor;

/// Resubmissions of one batch after device-TLB invalidation time-outs before the driver
/// gives up and returns [`HwError::InvalidationTimeout`]. Linux retries without a bound; the
/// bound keeps a bench from hanging on a device that never answers (docs/contract.md 6.5).
pub const MAX_RESUBMITS: u32 = 16;

impl<H: IommuHw> Driver<H> {
    /// `qi_submit_sync()`: the batch plus an invalidation wait with a status write,
    /// resubmitted while the hardware reports the wait aborted by a time-out (at most
    /// [`MAX_RESUBMITS`] times). Every submission is logged; an aborted one is marked.
    pub(super) fn submit(&mut self, reason: &str, descs: Vec<Descriptor>) -> Result<(), HwError> {
        if descs.is_empty() {
            return Ok(());
        }
        let mut resubmitted = 0;
        loop {
            // Each submission's wait writes a status value of its own, as Linux's restart
            // takes a fresh queue slot (and status word) for its wait: a status write of an
            // aborted wait, however late, is never taken for the new wait's.
            self.seq = self.seq.wrapping_add(1);
            let mut batch = descs.clone();
            batch.push(Descriptor::Wait {
                intr: false,
                sw: true,
                fence: false,
                status_data: self.seq,
                status_addr: self.status,
            });
            let r = self.hw.submit(&batch);
            let aborted = matches!(r, Err(HwError::InvalidationTimeout(_)));
            if r.is_ok() || aborted {
                self.log.push(Batch {
                    seq: self.seq,
                    reason: reason.to_string(),
                    descs: batch,
                    aborted,
                });
            }
            match r {
                Err(HwError::InvalidationTimeout(_)) if resubmitted < MAX_RESUBMITS => {
                    resubmitted += 1;
                    self.resubmits += 1;
                }
                Err(HwError::InvalidationTimeout(e)) => {
                    return Err(HwError::InvalidationTimeout(format!(
                        "{e}; `{reason}` given up after {MAX_RESUBMITS} resubmissions"
                    )))
                }
                other => return other,
            }
        }
    }
}
