//! Operations below the IOMMU API that change how the hardware reports or caches, never
//! what translates: the fault-processing-disable bits, and re-programming the root table.
//! Neither opens a stale window (no translation is taken away).

use super::{Errno, IommuOps, Kernel, Rid, NO_PASID};

/// Which structure's fault-processing-disable (FPD) bit [`Kernel::set_fault_processing`]
/// changes (VT-d 4.x 9.4 scalable-mode context entry bit 1, 9.5 PASID-directory entry
/// bit 1, 9.6 PASID-table entry bit 1). FPD=1 suppresses the recording of non-recoverable
/// faults detected through that structure (VT-d 7.1.2); the request is still blocked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FpdAt {
    /// The device's context entry: every fault after the context entry is read.
    Context,
    /// One PASID-directory entry (index = PASID >> 6): faults of PASIDs of that table.
    PasidDir(u32),
    /// One present PASID-table entry (PASID 0 is the RID's entry).
    PasidEntry(u32),
}

impl<O: IommuOps> Kernel<O> {
    /// Sets (`disable`) or clears FPD in one of `dev`'s structures through the driver,
    /// which then issues the invalidations VT-d 6.5.3.3 ("Guidance to Software for
    /// Invalidations") asks for after changing a present entry. Linux's intel-iommu keeps
    /// FPD clear (`pasid_set_fault_enable()` in drivers/iommu/intel/pasid.h clears it);
    /// this is the knob a debug or RAS path would use, so the recording suppression can be
    /// exercised with the driver's own tables. ENODEV for an unknown device, ENOENT when
    /// the structure does not exist (a PASID entry that is not present, a directory entry
    /// with no table).
    pub fn set_fault_processing(
        &mut self,
        dev: Rid,
        at: FpdAt,
        disable: bool,
    ) -> Result<(), Errno> {
        let d = self.state.devices.get(&dev).ok_or(Errno::ENODEV)?;
        if let FpdAt::PasidEntry(p) = at {
            let attached = if p == NO_PASID {
                self.translating(dev, None)
            } else {
                d.pasids.contains_key(&p)
            };
            if !attached {
                return Err(Errno::ENOENT);
            }
        }
        self.ops.set_fault_processing(dev, at, disable)
    }

    /// `iommu_set_root_entry()` (drivers/iommu/intel/iommu.c) once more with the root table
    /// in use: RTADDR, GCMD.SRTP, and, without CAP.ESRTPS, the global context-cache,
    /// PASID-cache and IOTLB invalidations. Linux runs it at boot, at resume
    /// (`init_iommu_hw()`), and with translation still enabled when it takes over
    /// pre-enabled translation (`init_dmars()` in a kdump kernel). Translations stay.
    pub fn set_root_entry(&mut self) -> Result<(), Errno> {
        self.ops.set_root_entry()
    }
}
