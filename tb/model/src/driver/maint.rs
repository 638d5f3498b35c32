//! Driver operations that change how the hardware reports or caches, not what it
//! translates: fault-processing-disable bits and `iommu_set_root_entry()`.

use super::{Driver, HwError, IommuHw};
use crate::kernel::{Errno, FpdAt, MemErrAt, Rid};
use crate::locate::{LocateError, Locator};
use crate::qi::{CcGran, Descriptor, IotlbGran, PcGran};
use crate::tables::{context as ce, pasid_dir as pde, pasid_entry as pe};
use std::collections::BTreeSet;

impl<H: IommuHw> Driver<H> {
    /// `iommu_set_root_entry()` (drivers/iommu/intel/iommu.c): RTADDR and GCMD.SRTP; then,
    /// unless CAP.ESRTPS says SRTP already invalidated, a global context-cache
    /// invalidation, a global PASID-cache invalidation (scalable mode) and a global IOTLB
    /// invalidation.
    pub(super) fn root_entry(&mut self) -> Result<(), HwError> {
        self.hw.set_root_table(self.rtaddr())?;
        if self.caps.esrtps() {
            return Ok(());
        }
        self.flush_everything("set root entry")
    }

    /// Global context-cache, PASID-cache and IOTLB invalidations, waited for: the hardware
    /// forgets every cached structure and translation.
    fn flush_everything(&mut self, reason: &str) -> Result<(), HwError> {
        let (dr, dw) = (self.caps.read_drain(), self.caps.write_drain());
        self.submit(reason, Descriptor::global_invalidations(dr, dw).to_vec())
    }

    /// The DIDs of `dev`'s present PASID-table entries (only those of directory entry
    /// `dir` when given).
    fn present_dids(&mut self, dev: Rid, dir: Option<u32>) -> Result<BTreeSet<u16>, Errno> {
        let pasids: Vec<u32> = self
            .devs
            .get(&dev)
            .ok_or(Errno::ENODEV)?
            .attached
            .keys()
            .copied()
            .filter(|p| dir.map_or(true, |i| p >> pde::SHIFT == i))
            .collect();
        let mut dids = BTreeSet::new();
        for p in pasids {
            if let Some(e) = self.pasid_entry_addr(dev, p) {
                if self.read_mem(e)? & pe::QW0_P != 0 {
                    dids.insert((self.read_mem(e + 8)? & pe::QW1_DID_MASK) as u16);
                }
            }
        }
        Ok(dids)
    }

    /// Rewrites bit `bit` of the quadword at `pa`; returns whether it changed.
    fn set_bit(&mut self, pa: u64, bit: u64, on: bool) -> Result<bool, Errno> {
        let old = self.read_mem(pa)?;
        let new = if on { old | bit } else { old & !bit };
        if new != old {
            self.write_mem(pa, new)?;
        }
        Ok(new != old)
    }

    /// FPD of one structure, followed by the invalidations for a changed present entry:
    ///
    /// - context entry: as `intel_context_flush_present(info, context, did, true)`
    ///   (drivers/iommu/intel/pasid.c) does after changing a present scalable-mode context
    ///   entry: a device-selective context-cache invalidation, then for every DID of the
    ///   device's present PASID entries a domain-selective PASID-cache invalidation and a
    ///   domain-selective IOTLB invalidation;
    /// - PASID-directory entry: the PASID cache holds what the directory entry contributes,
    ///   so a domain-selective PASID-cache invalidation for every DID of the present
    ///   entries of that PASID table;
    /// - PASID-table entry: `pasid_flush_caches()` as after any present-entry change
    ///   (PASID-selective PASID-cache invalidation, then the PASID's IOTLB entries).
    pub(super) fn fault_processing(
        &mut self,
        dev: Rid,
        at: FpdAt,
        disable: bool,
    ) -> Result<(), Errno> {
        let busy = |_: HwError| Errno::EBUSY;
        let info = self.devs.get(&dev).ok_or(Errno::ENODEV)?;
        match at {
            FpdAt::Context => {
                let ctx = self.context_entry(dev)?;
                if !self.set_bit(ctx, ce::FPD, disable)? {
                    return Ok(());
                }
                self.submit(
                    "context entry changed",
                    vec![Descriptor::ContextCache {
                        gran: CcGran::Device,
                        did: 0,
                        sid: dev,
                        fm: 0,
                    }],
                )
                .map_err(busy)?;
                let (dr, dw) = (self.caps.read_drain(), self.caps.write_drain());
                for did in self.present_dids(dev, None)? {
                    self.submit(
                        "context entry changed: pasid cache",
                        vec![Descriptor::PasidCache {
                            gran: PcGran::Domain,
                            did,
                            pasid: 0,
                        }],
                    )
                    .map_err(busy)?;
                    self.submit(
                        "context entry changed: iotlb",
                        vec![Descriptor::Iotlb {
                            gran: IotlbGran::Domain,
                            dr,
                            dw,
                            did,
                            addr: 0,
                            am: 0,
                            ih: false,
                        }],
                    )
                    .map_err(busy)?;
                }
                Ok(())
            }
            FpdAt::PasidDir(idx) => {
                if !info.pasid_tables.contains_key(&u64::from(idx)) {
                    return Err(Errno::ENOENT);
                }
                let slot = info.pasid_dir + u64::from(idx) * 8;
                if !self.set_bit(slot, pde::FPD, disable)? {
                    return Ok(());
                }
                for did in self.present_dids(dev, Some(idx))? {
                    self.submit(
                        "pasid directory entry changed",
                        vec![Descriptor::PasidCache {
                            gran: PcGran::Domain,
                            did,
                            pasid: 0,
                        }],
                    )
                    .map_err(busy)?;
                }
                Ok(())
            }
            FpdAt::PasidEntry(pasid) => {
                let e = self.pasid_entry_addr(dev, pasid).ok_or(Errno::ENOENT)?;
                let q0 = self.read_mem(e)?;
                if q0 & pe::QW0_P == 0 {
                    return Err(Errno::ENOENT);
                }
                if !self.set_bit(e, pe::QW0_FPD, disable)? {
                    return Ok(());
                }
                let did = (self.read_mem(e + 8)? & pe::QW1_DID_MASK) as u16;
                let pgtt = (q0 & pe::QW0_PGTT_MASK) >> pe::QW0_PGTT_SHIFT;
                self.pasid_flush_caches(did, pasid, pgtt).map_err(busy)
            }
        }
    }
}

impl<H: IommuHw> Driver<H> {
    /// Poisons the 4 KiB page that holds `dev`'s structure `at` (found in memory from the
    /// root table down, as the hardware finds it), then flushes every cache, the ATS
    /// devices' included, so the next walk reads it.
    pub(super) fn poison(&mut self, dev: Rid, at: MemErrAt) -> Result<(), Errno> {
        let rtaddr = self.rtaddr();
        let entry = {
            let loc = Locator::new(&*self.hw.mem(), rtaddr);
            match at {
                MemErrAt::RootTable => Ok(loc.root_entry(dev)),
                MemErrAt::ContextTable => loc.context_entry(dev),
                MemErrAt::PasidDir => loc.pasid_dir_entry(dev, 0),
                MemErrAt::PasidTable(dir) => loc.pasid_entry(dev, dir << 6),
                MemErrAt::PageTable { pasid, level, addr } => loc.pte(dev, pasid, addr, level),
            }
        }
        .map_err(|e| match e {
            LocateError::Read { .. } => Errno::EFAULT,
            _ => Errno::ENOENT,
        })?;
        let page = entry & !0xFFF;
        self.hw.mem().add_error_range(page, page + 0x1000);
        // The devices' ATS caches too: what they hold came through the poisoned structure.
        let (dr, dw) = (self.caps.read_drain(), self.caps.write_drain());
        let mut descs = Descriptor::global_invalidations(dr, dw).to_vec();
        descs.extend(self.devtlb_flush_all());
        self.submit("memory error injected", descs)
            .map_err(|_| Errno::EBUSY)
    }

    /// Ends every injected memory error.
    pub(super) fn unpoison(&mut self) {
        self.hw.mem().clear_error_ranges();
    }
}
