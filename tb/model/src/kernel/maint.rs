//! Operations below the IOMMU API that change how the hardware reports or caches, never
//! what the kernel maps: the fault-processing-disable bits, re-programming the root table,
//! and memory errors on the pages that hold translation structures. None of them opens a
//! stale window (no translation is taken away by the kernel).

use super::{DomainId, DomainType, Errno, IommuOps, Kernel, Rid, NO_PASID};
use crate::tables;

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

/// Which of a device's translation structures a memory error hits (the whole 4 KiB page
/// that holds it): [`Kernel::inject_memory_error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemErrAt {
    /// The root table (every request reads it first).
    RootTable,
    /// The context table of the device's bus half.
    ContextTable,
    /// The first page of the device's PASID directory (PASIDs 0 to 32767).
    PasidDir,
    /// The PASID table behind directory entry `dir` (PASIDs `dir << 6` ..= `dir << 6 | 63`).
    PasidTable(u32),
    /// The paging-structure page at `level` (4 = top, 1 = 4 KiB leaf table) that the walk
    /// of `addr` reads, in the page table of what is attached at `pasid` (0: the RID).
    PageTable { pasid: u32, level: u32, addr: u64 },
}

/// What an injected memory error covers, in the kernel's terms: which requests read the
/// poisoned page before anything else can stop them. The oracle faults exactly those
/// (docs/contract.md section 2.6: access errors 0x38, 0x40, 0x50, 0x58, 0x70, 0x78).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemErrScope {
    Root,
    ContextTable {
        bus: u8,
        upper: bool,
    },
    /// One page of the device's PASID directory: directory entries `page * 512 ..` (PASIDs
    /// `page << 15 ..`).
    PasidDir {
        rid: Rid,
        page: u32,
    },
    PasidTable {
        rid: Rid,
        dir: u32,
    },
    /// The level-`level` table page of `domain` that covers `[base, base + size)`.
    PageTable {
        domain: DomainId,
        level: u32,
        base: u64,
        size: u64,
    },
}

impl<O: IommuOps> Kernel<O> {
    /// Makes reads of the page holding one of `dev`'s translation structures fail, as an
    /// uncorrectable memory error would, and has the hardware forget what it cached (so the
    /// next walk reads the page). Not a kernel API: the test harness's way to produce the
    /// access-error faults with the driver's own tables. Until
    /// [`Kernel::clear_memory_errors`], the caller must not change the poisoned structures
    /// (the driver would read them). ENODEV for an unknown device, ENOENT when the
    /// structure does not exist.
    pub fn inject_memory_error(&mut self, dev: Rid, at: MemErrAt) -> Result<(), Errno> {
        let d = self.state.devices.get(&dev).ok_or(Errno::ENODEV)?;
        let scope = match at {
            MemErrAt::RootTable => MemErrScope::Root,
            MemErrAt::ContextTable => MemErrScope::ContextTable {
                bus: (dev >> 8) as u8,
                upper: dev & 0x80 != 0,
            },
            MemErrAt::PasidDir => MemErrScope::PasidDir { rid: dev, page: 0 },
            MemErrAt::PasidTable(dir) => {
                let has_table =
                    d.pasids.keys().any(|p| p >> 6 == dir) || (dir == 0 && d.rid_domain.is_some());
                if !has_table {
                    return Err(Errno::ENOENT);
                }
                MemErrScope::PasidTable { rid: dev, dir }
            }
            MemErrAt::PageTable { pasid, level, addr } => {
                let p = (pasid != NO_PASID).then_some(pasid);
                let (domain, ds) = self.state.domain_for(dev, p).ok_or(Errno::ENOENT)?;
                if !matches!(ds.ty, DomainType::Paging(_)) || !(1..=4).contains(&level) {
                    return Err(Errno::ENOENT);
                }
                let size = if level == 4 {
                    1 << 48
                } else {
                    tables::level_size(level + 1)
                };
                MemErrScope::PageTable {
                    domain,
                    level,
                    base: addr & !(size - 1),
                    size,
                }
            }
        };
        self.ops.inject_memory_error(dev, at)?;
        self.state.mem_errors.push(scope);
        Ok(())
    }

    /// Ends every injected memory error (faults are never cached, so nothing to flush).
    pub fn clear_memory_errors(&mut self) -> Result<(), Errno> {
        self.ops.clear_memory_errors()?;
        self.state.mem_errors.clear();
        Ok(())
    }
}
