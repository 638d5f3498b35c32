//! The devices' ATS caches against the oracle: the one judge of what a device TLB may hold
//! (docs/contract.md 6.3, 6.4), used by the regression after every operation and by the
//! vector runner after every step.
//!
//! Every entry was legal when cached (its Translation Completion was judged), so an entry
//! the oracle no longer allows is a translation that an operation ended without
//! invalidating in the device: after an unmap and the wait of its flush no device may hold
//! the old translation, through the RID or any PASID attachment of the domain. The open
//! windows are included: an unmap not yet synced leaves the old translation legal.

use std::collections::BTreeMap;

use iommu_model::devtlb::DevTlb;
use iommu_model::kernel::{IommuOps, Kernel};
use iommu_model::oracle;

/// Checks every device's cache in `caches` (by Device ID) against the oracle after `op`
/// (the operation or step just completed, for the message). The message names each stale
/// entry, its translation and what the oracle allows there now.
pub fn check_device_caches<O: IommuOps>(
    k: &Kernel<O>,
    caches: &BTreeMap<u16, DevTlb>,
    op: &str,
) -> Result<(), String> {
    let mut msg = Vec::new();
    for (&rid, t) in caches {
        for (e, m) in oracle::stale_device_tlb(k, rid, t) {
            msg.push(format!(
                "device {rid:#06x} still caches {e} (translated {:#x}..{:#x}, r={} w={}) after \
                 `{op}`, which should have invalidated it: the oracle allows {} there now",
                e.pa,
                e.pa + (e.size - 1),
                e.r as u8,
                e.w as u8,
                m.allowed,
            ));
        }
    }
    if msg.is_empty() {
        Ok(())
    } else {
        Err(format!("stale device-TLB entries:\n  {}", msg.join("\n  ")))
    }
}
