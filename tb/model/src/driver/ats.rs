//! The ATS side of the driver: which devices have device-TLB cache tags and the
//! device-TLB invalidation descriptors Linux builds for them (drivers/iommu/intel/cache.c
//! `cache_tag_assign_domain()`, `cache_tag_flush_devtlb_psi()`; pasid.c
//! `devtlb_invalidation_with_pasid()`).

use super::{Driver, IommuHw, ATS_QDEP, DEVTLB_ALL_MASK};
use crate::kernel::{DomainId, Rid, NO_PASID};
use crate::qi::Descriptor;

impl<H: IommuHw> Driver<H> {
    /// Linux's `info->ats_enabled`: the device has ATS and the unit can serve it
    /// ([`Caps::dev_tlb_usable`]). Such a device gets device-TLB cache tags.
    pub(super) fn ats_enabled(&self, rid: Rid) -> bool {
        self.caps.dev_tlb_usable() && self.devs.get(&rid).is_some_and(|d| d.desc.ats)
    }

    /// The device-TLB invalidation of one device-TLB cache tag, as
    /// `cache_tag_flush_devtlb_psi()` and `devtlb_invalidation_with_pasid()` build it:
    /// type 3 for the RID (no PASID), type 8 for a PASID; SID and PFSID are the RID (a
    /// physical function).
    pub(super) fn devtlb_desc(&self, rid: Rid, pasid: u32, addr: u64, mask: u32) -> Descriptor {
        if pasid == NO_PASID {
            Descriptor::dev_tlb(rid, rid, ATS_QDEP, addr, mask)
        } else {
            Descriptor::pasid_dev_tlb(rid, rid, pasid, ATS_QDEP, addr, mask)
        }
    }

    /// The ATS devices attached to domain `id` at `pasid`: the device-TLB cache tags that
    /// follow the IOTLB tag (`id`, `pasid`), in RID order.
    pub(super) fn devtlb_tags(&self, id: DomainId, pasid: u32) -> Vec<Rid> {
        self.devs
            .iter()
            .filter(|(&rid, d)| d.attached.get(&pasid) == Some(&id) && self.ats_enabled(rid))
            .map(|(&rid, _)| rid)
            .collect()
    }

    /// Whole-space device-TLB invalidations of every ATS device: type 3 for the RID and
    /// type 8 for each PASID it is attached at.
    pub(super) fn devtlb_flush_all(&self) -> Vec<Descriptor> {
        let mut out = Vec::new();
        for (&rid, d) in &self.devs {
            if !self.ats_enabled(rid) {
                continue;
            }
            out.push(self.devtlb_desc(rid, NO_PASID, 0, DEVTLB_ALL_MASK));
            for &pasid in d.attached.keys().filter(|&&p| p != NO_PASID) {
                out.push(self.devtlb_desc(rid, pasid, 0, DEVTLB_ALL_MASK));
            }
        }
        out
    }
}
