//! Kernel IOMMU API model: the semantics of Linux drivers/iommu/iommu.c
//! (`iommu_attach_device()`, `iommu_alloc_global_pasid()`, `iommu_attach_device_pasid()`,
//! `iommu_detach_device_pasid()`, `iommu_map()` / `iommu_unmap()` / `iommu_iotlb_sync()`),
//! drivers/iommu/iommu-sva.c (`iommu_sva_bind_device()`, one PASID per mm), the idxd
//! flow of drivers/dma/idxd/init.c (`idxd_enable_system_pasid()`), and the CPU side of an
//! SVA mm (page-table updates plus the mmu-notifier `arch_invalidate_secondary_tlbs`).
//!
//! The model keeps the abstract state (who is attached where, which IOVA maps to which
//! PA) that the [`crate::oracle`] judges from, validates every operation with Linux's
//! error codes ([`Errno`]), and forwards the accepted ones to an [`IommuOps`] backend the
//! way the core calls `struct iommu_ops` / `struct iommu_domain_ops`. [`NoIommu`] accepts
//! everything, so the API model runs alone; [`crate::driver::Driver`] is the VT-d driver.
//!
//! Every operation that can take a translation away opens a *stale window* ([`Window`]):
//! until the invalidation wait that follows its flush completes, the translation that
//! existed before may still be used.

pub mod dma;
mod maint;
mod window;

pub use maint::{FpdAt, MemErrAt, MemErrScope};
pub use window::Window;

use crate::mem::PAGE_SIZE;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use thiserror::Error;

/// Linux error numbers the API returns (negated in the kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Error)]
pub enum Errno {
    #[error("EPERM")]
    EPERM = 1,
    #[error("ENOENT")]
    ENOENT = 2,
    #[error("ENOMEM")]
    ENOMEM = 12,
    #[error("EFAULT")]
    EFAULT = 14,
    #[error("EBUSY")]
    EBUSY = 16,
    #[error("EEXIST")]
    EEXIST = 17,
    #[error("ENODEV")]
    ENODEV = 19,
    #[error("EINVAL")]
    EINVAL = 22,
    #[error("ENOSPC")]
    ENOSPC = 28,
    #[error("EOPNOTSUPP")]
    EOPNOTSUPP = 95,
}

impl Errno {
    /// The kernel's return value, e.g. -22 for EINVAL.
    pub fn to_kernel(self) -> i32 {
        -(self as i32)
    }
}

/// Requester ID, bus << 8 | dev << 3 | fn.
pub type Rid = u16;

/// Builds a RID from bus:dev.fn.
pub fn rid(bus: u8, dev: u8, func: u8) -> Rid {
    (u16::from(bus) << 8) | (u16::from(dev & 0x1F) << 3) | u16::from(func & 7)
}

/// `IOMMU_NO_PASID`: the PASID that requests without a prefix use (context RID_PASID).
pub const NO_PASID: u32 = 0;

/// Handle of a domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainId(pub u32);

/// Handle of a process address space (`struct mm_struct`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MmId(pub u32);

/// Which page-table format a paging domain uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    First,
    Second,
}

/// `IOMMU_DOMAIN_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DomainType {
    Blocked,
    Identity,
    Paging(Stage),
    Sva(MmId),
}

impl DomainType {
    /// Whether requests through this domain can be translated at all.
    pub fn translates(&self) -> bool {
        !matches!(self, Self::Blocked)
    }
    /// The first-stage format (paging-first and SVA domains).
    pub fn first_stage(&self) -> bool {
        matches!(self, Self::Paging(Stage::First) | Self::Sva(_))
    }
}

/// `IOMMU_READ` / `IOMMU_WRITE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Prot {
    pub read: bool,
    pub write: bool,
}

impl Prot {
    pub const RW: Prot = Prot {
        read: true,
        write: true,
    };
    pub const R: Prot = Prot {
        read: true,
        write: false,
    };
    pub const W: Prot = Prot {
        read: false,
        write: true,
    };
}

/// Protection of a CPU page (x86 user page-table entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MmProt {
    pub write: bool,
    pub exec: bool,
    /// U/S=1. Kernel-only pages (U/S=0) fault for SVA requests (0x81).
    pub user: bool,
}

impl MmProt {
    pub const USER_RW: MmProt = MmProt {
        write: true,
        exec: false,
        user: true,
    };
    pub const USER_RO: MmProt = MmProt {
        write: false,
        exec: false,
        user: true,
    };
}

/// A PCI function as the IOMMU core sees it after probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceDesc {
    pub rid: Rid,
    /// `dev->iommu->max_pasids`: 0 for a function without the PASID capability.
    pub max_pasids: u32,
    /// The function has an ATS capability.
    pub ats: bool,
}

/// One leaf mapping (the core splits `iommu_map()` into page sizes of the domain's
/// `pgsize_bitmap`, `iommu_pgsize()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub pa: u64,
    pub size: u64,
    pub prot: Prot,
}

/// One leaf of an mm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmMapping {
    pub pa: u64,
    pub size: u64,
    pub prot: MmProt,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainState {
    pub ty: DomainType,
    /// Paging domains: IOVA -> leaf.
    pub mappings: BTreeMap<u64, Mapping>,
    /// The DMA API's IOVA cookie.
    pub iova: dma::IovaAllocator,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceState {
    pub desc: DeviceDesc,
    /// The RID's domain; `None` is blocked.
    pub rid_domain: Option<DomainId>,
    /// Domains attached at PASIDs (DMA PASID and SVA included).
    pub pasids: BTreeMap<u32, DomainId>,
    /// The PASID `enable_dma_pasid` attached the RID's domain at.
    pub dma_pasid: Option<u32>,
    /// SVA bonds: mm -> bind count.
    pub sva: BTreeMap<MmId, u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MmState {
    /// `mm->pasid`, allocated at the first bind, released when the mm goes away.
    pub pasid: Option<u32>,
    pub mappings: BTreeMap<u64, MmMapping>,
    /// The mm's SVA domain (one per mm and IOMMU).
    pub sva_domain: Option<DomainId>,
}

/// Everything the oracle needs.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct State {
    pub devices: BTreeMap<Rid, DeviceState>,
    pub domains: BTreeMap<DomainId, DomainState>,
    pub mms: BTreeMap<MmId, MmState>,
    /// Memory errors injected on structure pages ([`Kernel::inject_memory_error`]).
    pub mem_errors: Vec<MemErrScope>,
}

impl State {
    /// The domain requests of `rid` with `pasid` (None: no prefix) reach.
    pub fn domain_for(&self, rid: Rid, pasid: Option<u32>) -> Option<(DomainId, &DomainState)> {
        let d = self.devices.get(&rid)?;
        let id = match pasid {
            None | Some(NO_PASID) => d.rid_domain?,
            Some(p) => *d.pasids.get(&p)?,
        };
        Some((id, self.domains.get(&id)?))
    }
}

/// The backend the core calls, like `struct iommu_ops` + `struct iommu_domain_ops`.
/// Methods receive validated arguments only.
pub trait IommuOps {
    /// `probe_device`: the function appears behind this IOMMU.
    fn probe_device(&mut self, dev: &DeviceDesc) -> Result<(), Errno>;
    /// `domain_alloc_*`.
    fn domain_alloc(&mut self, id: DomainId, ty: DomainType) -> Result<(), Errno>;
    /// `free`: only called for domains with no attachment.
    fn domain_free(&mut self, id: DomainId);
    /// Page sizes the domain supports (`pgsize_bitmap`).
    fn pgsize_bitmap(&self, ty: DomainType) -> u64;
    /// Last IOVA of the domain's aperture.
    fn aperture_end(&self, ty: DomainType) -> u64;
    /// `attach_dev`: replaces whatever the RID had (`ty` may be Blocked).
    fn attach_dev(&mut self, id: DomainId, ty: DomainType, dev: Rid) -> Result<(), Errno>;
    /// Whether `attach_dev` replacing a translating domain passes through the blocked
    /// state: the old attachment is torn down (and its caches flushed) before the new one
    /// is installed, so requests in flight may fault as if the RID were blocked. Linux's
    /// intel-iommu does (`intel_iommu_attach_device()` calls `device_block_translation()`
    /// first); a driver that replaces entries hitlessly returns `false`. The oracle under
    /// concurrency ([`crate::oracle::allowed_during`]) reads it through
    /// [`Kernel::transit`].
    fn attach_blocks_first(&self) -> bool {
        false
    }
    /// `set_dev_pasid` on a PASID that has nothing attached.
    fn set_dev_pasid(
        &mut self,
        id: DomainId,
        ty: DomainType,
        dev: Rid,
        pasid: u32,
    ) -> Result<(), Errno>;
    /// The blocked domain's `set_dev_pasid`: tears the PASID down.
    fn remove_dev_pasid(&mut self, id: DomainId, dev: Rid, pasid: u32);
    /// `map_pages` of one page of `pgsize`.
    fn map_pages(
        &mut self,
        id: DomainId,
        iova: u64,
        pa: u64,
        pgsize: u64,
        prot: Prot,
    ) -> Result<(), Errno>;
    /// `unmap_pages` of `count` pages of `pgsize` from `iova` (one chunk of
    /// `__iommu_unmap()`, chosen by [`iommu_pgsize`]), gathered for the next `iotlb_sync`.
    fn unmap_pages(
        &mut self,
        id: DomainId,
        iova: u64,
        pgsize: u64,
        count: u64,
    ) -> Result<(), Errno>;
    /// `iotlb_sync`: flushes the gathered range and waits.
    fn iotlb_sync(&mut self, id: DomainId) -> Result<(), Errno>;
    /// A new mm (its page-table root).
    fn mm_alloc(&mut self, mm: MmId) -> Result<(), Errno>;
    fn mm_free(&mut self, mm: MmId);
    /// The CPU writes a leaf of `pgsize`.
    fn mm_set_pte(
        &mut self,
        mm: MmId,
        va: u64,
        pa: u64,
        pgsize: u64,
        prot: MmProt,
    ) -> Result<(), Errno>;
    /// The CPU clears a leaf of `pgsize`.
    fn mm_clear_pte(&mut self, mm: MmId, va: u64, pgsize: u64) -> Result<(), Errno>;
    /// `arch_invalidate_secondary_tlbs` for `[start, end)`.
    fn mm_invalidate(&mut self, mm: MmId, start: u64, end: u64) -> Result<(), Errno>;
    /// Sets (`disable`) or clears the fault-processing-disable bit of one of `dev`'s
    /// structures and issues the invalidations that make the hardware see it (see
    /// [`Kernel::set_fault_processing`]). A backend without such structures accepts it.
    fn set_fault_processing(&mut self, _dev: Rid, _at: FpdAt, _disable: bool) -> Result<(), Errno> {
        Ok(())
    }
    /// `iommu_set_root_entry()` again: SRTP with the same root table, then the global
    /// invalidations (see [`Kernel::set_root_entry`]).
    fn set_root_entry(&mut self) -> Result<(), Errno> {
        Ok(())
    }
    /// Poisons the page holding one of `dev`'s structures and flushes the hardware's caches
    /// (see [`Kernel::inject_memory_error`]). A backend without such structures accepts it.
    fn inject_memory_error(&mut self, _dev: Rid, _at: MemErrAt) -> Result<(), Errno> {
        Ok(())
    }
    /// Ends every injected memory error.
    fn clear_memory_errors(&mut self) -> Result<(), Errno> {
        Ok(())
    }
}

/// A backend with no hardware: the API model alone.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoIommu;

impl IommuOps for NoIommu {
    fn probe_device(&mut self, _: &DeviceDesc) -> Result<(), Errno> {
        Ok(())
    }
    fn domain_alloc(&mut self, _: DomainId, _: DomainType) -> Result<(), Errno> {
        Ok(())
    }
    fn domain_free(&mut self, _: DomainId) {}
    fn pgsize_bitmap(&self, _: DomainType) -> u64 {
        PAGE_SIZE | 1 << 21 | 1 << 30
    }
    fn aperture_end(&self, ty: DomainType) -> u64 {
        if ty.first_stage() {
            (1 << 47) - 1
        } else {
            (1 << 48) - 1
        }
    }
    fn attach_dev(&mut self, _: DomainId, _: DomainType, _: Rid) -> Result<(), Errno> {
        Ok(())
    }
    fn set_dev_pasid(&mut self, _: DomainId, _: DomainType, _: Rid, _: u32) -> Result<(), Errno> {
        Ok(())
    }
    fn remove_dev_pasid(&mut self, _: DomainId, _: Rid, _: u32) {}
    fn map_pages(&mut self, _: DomainId, _: u64, _: u64, _: u64, _: Prot) -> Result<(), Errno> {
        Ok(())
    }
    fn unmap_pages(&mut self, _: DomainId, _: u64, _: u64, _: u64) -> Result<(), Errno> {
        Ok(())
    }
    fn iotlb_sync(&mut self, _: DomainId) -> Result<(), Errno> {
        Ok(())
    }
    fn mm_alloc(&mut self, _: MmId) -> Result<(), Errno> {
        Ok(())
    }
    fn mm_free(&mut self, _: MmId) {}
    fn mm_set_pte(&mut self, _: MmId, _: u64, _: u64, _: u64, _: MmProt) -> Result<(), Errno> {
        Ok(())
    }
    fn mm_clear_pte(&mut self, _: MmId, _: u64, _: u64) -> Result<(), Errno> {
        Ok(())
    }
    fn mm_invalidate(&mut self, _: MmId, _: u64, _: u64) -> Result<(), Errno> {
        Ok(())
    }
}

/// Configuration of the kernel model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelConfig {
    /// Invalidation waits complete before the submitting call returns (pure-model runs).
    /// With `false` (against RTL), windows stay open until
    /// [`Kernel::complete_invalidations`].
    pub sync_waits: bool,
}

impl Default for KernelConfig {
    fn default() -> Self {
        Self { sync_waits: true }
    }
}

/// The core IOMMU layer with its backend.
#[derive(Debug)]
pub struct Kernel<O: IommuOps = NoIommu> {
    state: State,
    ops: O,
    config: KernelConfig,
    /// `iommu_global_pasid_ida`.
    global_pasids: BTreeSet<u32>,
    windows: Vec<Window>,
    /// Intermediate states of the operation in progress ([`Kernel::transit`]); `None`
    /// while nobody records.
    transit: Option<Vec<State>>,
    next_seq: u64,
    next_domain: u32,
    next_mm: u32,
}

impl Kernel<NoIommu> {
    /// The API model without hardware.
    pub fn abstract_only() -> Self {
        Self::new(NoIommu, KernelConfig::default())
    }
}

/// Largest page of `bitmap` usable at `iova`/`pa` for `remaining` bytes (`iommu_pgsize()`).
pub fn pick_pgsize(bitmap: u64, iova: u64, pa: u64, remaining: u64) -> u64 {
    let mut best = PAGE_SIZE;
    for shift in [21u32, 30] {
        let s = 1u64 << shift;
        if bitmap & s != 0 && (iova | pa) & (s - 1) == 0 && remaining >= s {
            best = s;
        }
    }
    best
}

/// `iommu_pgsize()` (drivers/iommu/iommu.c): the largest page size in `bitmap` that
/// `iova | pa` is aligned to and `size` holds, and how many pages of it to take before a
/// larger supported size becomes usable. Returns (page size, count).
pub fn iommu_pgsize(bitmap: u64, iova: u64, pa: u64, size: u64) -> (u64, u64) {
    let merge = iova | pa;
    let mut sizes = bitmap & (u64::MAX >> (63 - (63 - size.leading_zeros())));
    if merge != 0 {
        sizes &= u64::MAX >> (63 - merge.trailing_zeros());
    }
    let idx = 63 - sizes.max(PAGE_SIZE).leading_zeros();
    let pgsize = 1u64 << idx;
    let mut size = size;
    let bigger = bitmap & !(u64::MAX >> (63 - idx));
    if bigger != 0 {
        let next = 1u64 << bigger.trailing_zeros();
        if (iova ^ pa) & (next - 1) == 0 {
            let offset = next - (merge & (next - 1));
            if offset.saturating_add(next) <= size {
                size = offset;
            }
        }
    }
    (pgsize, size >> idx)
}

impl<O: IommuOps> Kernel<O> {
    pub fn new(ops: O, config: KernelConfig) -> Self {
        Self {
            state: State::default(),
            ops,
            config,
            global_pasids: BTreeSet::new(),
            windows: Vec::new(),
            transit: None,
            next_seq: 0,
            next_domain: 1,
            next_mm: 1,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }
    pub fn ops(&self) -> &O {
        &self.ops
    }
    pub fn ops_mut(&mut self) -> &mut O {
        &mut self.ops
    }
    pub fn config(&self) -> KernelConfig {
        self.config
    }
    /// Allocated global PASIDs.
    pub fn global_pasids(&self) -> &BTreeSet<u32> {
        &self.global_pasids
    }

    fn domain(&self, id: DomainId) -> Result<&DomainState, Errno> {
        self.state.domains.get(&id).ok_or(Errno::ENOENT)
    }
    fn domain_mut(&mut self, id: DomainId) -> Result<&mut DomainState, Errno> {
        self.state.domains.get_mut(&id).ok_or(Errno::ENOENT)
    }
    fn aperture_end(&self, id: DomainId) -> Result<u64, Errno> {
        Ok(self.ops.aperture_end(self.domain(id)?.ty))
    }

    /// Whether requests via (dev, pasid) currently translate.
    fn translating(&self, dev: Rid, pasid: Option<u32>) -> bool {
        self.state
            .domain_for(dev, pasid)
            .is_some_and(|(_, d)| d.ty.translates())
    }

    /// A function appears (`iommu_probe_device`); it starts blocked.
    pub fn add_device(&mut self, desc: DeviceDesc) -> Result<(), Errno> {
        if self.state.devices.contains_key(&desc.rid) {
            return Err(Errno::EEXIST);
        }
        if desc.max_pasids > 1 << 20 {
            return Err(Errno::EINVAL);
        }
        self.ops.probe_device(&desc)?;
        self.state.devices.insert(
            desc.rid,
            DeviceState {
                desc,
                rid_domain: None,
                pasids: BTreeMap::new(),
                dma_pasid: None,
                sva: BTreeMap::new(),
            },
        );
        Ok(())
    }

    /// `iommu_domain_alloc` / `iommu_paging_domain_alloc` / the static blocked and identity
    /// domains. SVA domains come from [`Kernel::sva_bind`].
    pub fn domain_alloc(&mut self, ty: DomainType) -> Result<DomainId, Errno> {
        if let DomainType::Sva(mm) = ty {
            if !self.state.mms.contains_key(&mm) {
                return Err(Errno::EINVAL);
            }
        }
        let id = DomainId(self.next_domain);
        self.ops.domain_alloc(id, ty)?;
        self.next_domain += 1;
        self.state.domains.insert(
            id,
            DomainState {
                ty,
                mappings: BTreeMap::new(),
                iova: dma::IovaAllocator::default(),
            },
        );
        Ok(id)
    }

    fn domain_users(&self, id: DomainId) -> usize {
        self.state
            .devices
            .values()
            .map(|d| {
                usize::from(d.rid_domain == Some(id))
                    + d.pasids.values().filter(|&&x| x == id).count()
            })
            .sum()
    }

    /// `iommu_domain_free`: EBUSY while attached anywhere.
    pub fn domain_free(&mut self, id: DomainId) -> Result<(), Errno> {
        self.domain(id)?;
        if self.domain_users(id) > 0 || self.windows.iter().any(|w| w.domain == Some(id)) {
            return Err(Errno::EBUSY);
        }
        self.ops.domain_free(id);
        self.state.domains.remove(&id);
        for mm in self.state.mms.values_mut() {
            if mm.sva_domain == Some(id) {
                mm.sva_domain = None;
            }
        }
        Ok(())
    }

    /// `iommu_attach_device`: the RID's domain (Blocked detaches).
    pub fn attach_device(&mut self, dev: Rid, id: DomainId) -> Result<(), Errno> {
        let ty = self.domain(id)?.ty;
        let d = self.state.devices.get(&dev).ok_or(Errno::ENODEV)?;
        if matches!(ty, DomainType::Sva(_)) {
            return Err(Errno::EINVAL);
        }
        if d.rid_domain == Some(id) {
            return Ok(());
        }
        // The DMA PASID must stay equivalent to the RID.
        if d.dma_pasid.is_some() {
            return Err(Errno::EBUSY);
        }
        let before = self.state.clone();
        let was = self.translating(dev, None);
        let old = d.rid_domain;
        if old.is_some() && self.ops.attach_blocks_first() {
            // device_block_translation(): the old PASID entry is cleared before the new one
            // is written.
            self.note_transit(|s| {
                let mut s = s.clone();
                if let Some(d) = s.devices.get_mut(&dev) {
                    d.rid_domain = None;
                }
                s
            });
        }
        if let Err(e) = self.ops.attach_dev(id, ty, dev) {
            // Like __iommu_group_set_domain_internal(): revert to the old domain; if that
            // fails too, the RID stays blocked.
            let old_ty = old.and_then(|o| self.state.domains.get(&o)).map(|x| x.ty);
            let restored = match (old, old_ty) {
                (Some(o), Some(t)) => self.ops.attach_dev(o, t, dev).is_ok(),
                _ => true,
            };
            if !restored {
                if let Some(d) = self.state.devices.get_mut(&dev) {
                    d.rid_domain = None;
                }
            }
            if was {
                self.open_window(before, None, format!("failed attach {dev:#06x}"));
            }
            return Err(e);
        }
        if let Some(d) = self.state.devices.get_mut(&dev) {
            d.rid_domain = Some(id);
        }
        if was {
            self.open_window(before, None, format!("attach {dev:#06x} to {id:?}"));
        }
        Ok(())
    }

    /// `iommu_alloc_global_pasid`: lowest free PASID in [1, max_pasids - 1].
    pub fn alloc_global_pasid(&mut self, dev: Rid) -> Result<u32, Errno> {
        let d = self.state.devices.get(&dev).ok_or(Errno::ENODEV)?;
        let max = d.desc.max_pasids;
        (1..max)
            .find(|p| !self.global_pasids.contains(p))
            .map_or(Err(Errno::ENOSPC), |p| {
                self.global_pasids.insert(p);
                Ok(p)
            })
    }

    /// `iommu_free_global_pasid`.
    pub fn free_global_pasid(&mut self, pasid: u32) -> Result<(), Errno> {
        if self.global_pasids.remove(&pasid) {
            Ok(())
        } else {
            Err(Errno::EINVAL)
        }
    }

    /// `iommu_attach_device_pasid`.
    pub fn attach_device_pasid(&mut self, id: DomainId, dev: Rid, pasid: u32) -> Result<(), Errno> {
        let ty = self.domain(id)?.ty;
        let d = self.state.devices.get(&dev).ok_or(Errno::ENODEV)?;
        if pasid == NO_PASID || pasid >= d.desc.max_pasids || ty == DomainType::Blocked {
            return Err(Errno::EINVAL);
        }
        if d.pasids.contains_key(&pasid) {
            return Err(Errno::EBUSY);
        }
        self.ops.set_dev_pasid(id, ty, dev, pasid)?;
        if let Some(d) = self.state.devices.get_mut(&dev) {
            d.pasids.insert(pasid, id);
        }
        Ok(())
    }

    /// `iommu_detach_device_pasid`: the PASID is blocked again. The DMA PASID and SVA
    /// PASIDs belong to their own API (EBUSY / EINVAL here): use
    /// [`Kernel::disable_dma_pasid`] and [`Kernel::sva_unbind`].
    pub fn detach_device_pasid(&mut self, id: DomainId, dev: Rid, pasid: u32) -> Result<(), Errno> {
        let d = self.state.devices.get(&dev).ok_or(Errno::ENODEV)?;
        if d.pasids.get(&pasid) != Some(&id) {
            return Err(Errno::ENOENT);
        }
        if d.dma_pasid == Some(pasid) {
            return Err(Errno::EBUSY);
        }
        if matches!(self.domain(id)?.ty, DomainType::Sva(_)) {
            return Err(Errno::EINVAL);
        }
        self.detach_pasid(id, dev, pasid)
    }

    fn detach_pasid(&mut self, id: DomainId, dev: Rid, pasid: u32) -> Result<(), Errno> {
        let before = self.state.clone();
        self.ops.remove_dev_pasid(id, dev, pasid);
        if let Some(d) = self.state.devices.get_mut(&dev) {
            d.pasids.remove(&pasid);
        }
        self.open_window(before, None, format!("detach {dev:#06x} pasid {pasid:#x}"));
        Ok(())
    }

    /// `idxd_enable_system_pasid`: the RID's DMA domain attached again at a global PASID.
    pub fn enable_dma_pasid(&mut self, dev: Rid) -> Result<u32, Errno> {
        let d = self.state.devices.get(&dev).ok_or(Errno::ENODEV)?;
        if d.dma_pasid.is_some() {
            return Err(Errno::EBUSY);
        }
        let id = match d.rid_domain {
            Some(id) if self.domain(id)?.ty.translates() => id,
            _ => return Err(Errno::EPERM),
        };
        let pasid = self.alloc_global_pasid(dev)?;
        if let Err(e) = self.attach_device_pasid(id, dev, pasid) {
            let _ = self.free_global_pasid(pasid);
            return Err(e);
        }
        if let Some(d) = self.state.devices.get_mut(&dev) {
            d.dma_pasid = Some(pasid);
        }
        Ok(pasid)
    }

    /// `idxd_disable_system_pasid`.
    pub fn disable_dma_pasid(&mut self, dev: Rid) -> Result<(), Errno> {
        let d = self.state.devices.get(&dev).ok_or(Errno::ENODEV)?;
        let pasid = d.dma_pasid.ok_or(Errno::ENOENT)?;
        let id = *d.pasids.get(&pasid).ok_or(Errno::ENOENT)?;
        self.detach_pasid(id, dev, pasid)?;
        if let Some(d) = self.state.devices.get_mut(&dev) {
            d.dma_pasid = None;
        }
        self.free_global_pasid(pasid)
    }

    /// `iommu_map`: EINVAL on misalignment or a non-paging domain, EFAULT beyond the
    /// aperture, EEXIST on overlap.
    pub fn map(
        &mut self,
        id: DomainId,
        iova: u64,
        pa: u64,
        size: u64,
        prot: Prot,
    ) -> Result<(), Errno> {
        let dom = self.domain(id)?;
        if !matches!(dom.ty, DomainType::Paging(_)) {
            return Err(Errno::EINVAL);
        }
        if size == 0 || (iova | pa | size) & (PAGE_SIZE - 1) != 0 || !(prot.read || prot.write) {
            return Err(Errno::EINVAL);
        }
        let end = iova.checked_add(size - 1).ok_or(Errno::EFAULT)?;
        if end > self.ops.aperture_end(dom.ty) || pa.checked_add(size).is_none() {
            return Err(Errno::EFAULT);
        }
        if overlaps(&dom.mappings, iova, size, |m| m.size) {
            return Err(Errno::EEXIST);
        }
        let bitmap = self.ops.pgsize_bitmap(dom.ty);
        let mut done = 0;
        while done < size {
            let pg = pick_pgsize(bitmap, iova + done, pa + done, size - done);
            if let Err(e) = self.ops.map_pages(id, iova + done, pa + done, pg, prot) {
                // Like __iommu_map: undo what was mapped. Until then the leaves mapped so
                // far translate: a state neither before nor after shows.
                if done > 0 {
                    self.note_transit(State::clone);
                }
                let _ = self.unmap(id, iova, done);
                let _ = self.iotlb_sync(id);
                return Err(e);
            }
            self.domain_mut(id)?.mappings.insert(
                iova + done,
                Mapping {
                    pa: pa + done,
                    size: pg,
                    prot,
                },
            );
            done += pg;
        }
        Ok(())
    }

    /// `iommu_unmap` without the sync: removes the leaves from `iova` on, stopping at the
    /// first hole; a superpage is removed whole. Returns the bytes unmapped. The flush is
    /// gathered for [`Kernel::iotlb_sync`].
    ///
    /// The backend sees the run of leaves being removed the way `__iommu_unmap()` hands
    /// it to the driver: in chunks of [`iommu_pgsize`] (page size, count), so that a
    /// 2 MiB-aligned 2 MiB run of 4 KiB leaves reaches the driver as one 2 MiB chunk and
    /// frees the page table under it (`dma_pte_clear_level()`).
    pub fn unmap(&mut self, id: DomainId, iova: u64, size: u64) -> Result<u64, Errno> {
        let dom = self.domain(id)?;
        if !matches!(dom.ty, DomainType::Paging(_)) || (iova | size) & (PAGE_SIZE - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        let bitmap = self.ops.pgsize_bitmap(dom.ty);
        let before = self.state.clone();
        let mut cur = iova;
        let mut start = None;
        while cur < iova.saturating_add(size) {
            let hit = dom
                .mappings
                .range(..=cur)
                .next_back()
                .map(|(&v, m)| (v, *m));
            let (v, m) = match hit {
                Some((v, m)) if cur < v + m.size => (v, m),
                _ => break,
            };
            start.get_or_insert(v);
            cur = v + m.size;
        }
        let mut unmapped = 0;
        if let Some(start) = start {
            let mut at = start;
            while at < cur {
                let (pg, count) = iommu_pgsize(bitmap, at, at, cur - at);
                self.ops.unmap_pages(id, at, pg, count)?;
                let end = at + pg * count;
                let m = &mut self.domain_mut(id)?.mappings;
                let gone: Vec<u64> = m.range(at..end).map(|(&v, _)| v).collect();
                for v in gone {
                    unmapped += m.remove(&v).map_or(0, |x| x.size);
                }
                at = end;
            }
        }
        if unmapped > 0 {
            self.next_seq += 1;
            let w = Window {
                seq: self.next_seq,
                domain: Some(id),
                flushed: false,
                what: format!("unmap {id:?} {iova:#x}+{size:#x}"),
                before,
            };
            self.windows.push(w);
        }
        Ok(unmapped)
    }

    /// `iommu_iotlb_sync`: submits the gathered flush; its wait closes the windows of the
    /// domain's unmaps (at once with `sync_waits`).
    pub fn iotlb_sync(&mut self, id: DomainId) -> Result<(), Errno> {
        self.domain(id)?;
        self.ops.iotlb_sync(id)?;
        for w in self.windows.iter_mut().filter(|w| w.domain == Some(id)) {
            w.flushed = true;
        }
        if self.config.sync_waits {
            self.complete_invalidations();
        }
        Ok(())
    }

    /// A new process address space.
    pub fn mm_create(&mut self) -> Result<MmId, Errno> {
        let mm = MmId(self.next_mm);
        self.ops.mm_alloc(mm)?;
        self.next_mm += 1;
        self.state.mms.insert(mm, MmState::default());
        Ok(mm)
    }

    /// The mm goes away (`mm_pasid_drop`): EBUSY while bound.
    pub fn mm_destroy(&mut self, mm: MmId) -> Result<(), Errno> {
        let m = self.state.mms.get(&mm).ok_or(Errno::ENOENT)?;
        if self.state.devices.values().any(|d| d.sva.contains_key(&mm)) {
            return Err(Errno::EBUSY);
        }
        let (pasid, dom) = (m.pasid, m.sva_domain);
        if let Some(d) = dom {
            self.domain_free(d)?;
        }
        if let Some(p) = pasid {
            let _ = self.free_global_pasid(p);
        }
        self.ops.mm_free(mm);
        self.state.mms.remove(&mm);
        Ok(())
    }

    /// CPU side: map user pages into the mm. EINVAL on misalignment or non-user-space
    /// addresses, EEXIST on overlap.
    pub fn mm_map(
        &mut self,
        mm: MmId,
        va: u64,
        pa: u64,
        size: u64,
        prot: MmProt,
    ) -> Result<(), Errno> {
        let m = self.state.mms.get(&mm).ok_or(Errno::ENOENT)?;
        if size == 0 || (va | pa | size) & (PAGE_SIZE - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        if va.checked_add(size).map_or(true, |e| e > 1 << 47) || pa.checked_add(size).is_none() {
            return Err(Errno::EINVAL);
        }
        if overlaps(&m.mappings, va, size, |x| x.size) {
            return Err(Errno::EEXIST);
        }
        let bitmap = PAGE_SIZE | 1 << 21 | 1 << 30;
        let mut done = 0;
        while done < size {
            let pg = pick_pgsize(bitmap, va + done, pa + done, size - done);
            self.ops.mm_set_pte(mm, va + done, pa + done, pg, prot)?;
            if let Some(m) = self.state.mms.get_mut(&mm) {
                m.mappings.insert(
                    va + done,
                    MmMapping {
                        pa: pa + done,
                        size: pg,
                        prot,
                    },
                );
            }
            done += pg;
        }
        Ok(())
    }

    /// CPU side: unmap, then the mmu notifier flushes the IOMMU for every bound device.
    /// Returns the bytes unmapped.
    pub fn mm_unmap(&mut self, mm: MmId, va: u64, size: u64) -> Result<u64, Errno> {
        self.state.mms.get(&mm).ok_or(Errno::ENOENT)?;
        if (va | size) & (PAGE_SIZE - 1) != 0 {
            return Err(Errno::EINVAL);
        }
        let before = self.state.clone();
        let end = va.saturating_add(size);
        let victims: Vec<(u64, MmMapping)> = self
            .state
            .mms
            .get(&mm)
            .ok_or(Errno::ENOENT)?
            .mappings
            .iter()
            .filter(|(&v, x)| v < end && va < v + x.size)
            .map(|(&v, x)| (v, *x))
            .collect();
        let mut unmapped = 0;
        let (mut lo, mut hi) = (u64::MAX, 0);
        for (v, x) in victims {
            self.ops.mm_clear_pte(mm, v, x.size)?;
            if let Some(m) = self.state.mms.get_mut(&mm) {
                m.mappings.remove(&v);
            }
            unmapped += x.size;
            lo = lo.min(v);
            hi = hi.max(v + x.size);
        }
        if unmapped > 0 {
            self.ops.mm_invalidate(mm, lo, hi)?;
            self.open_window(before, None, format!("mm_unmap {mm:?} {va:#x}+{size:#x}"));
        }
        Ok(unmapped)
    }

    /// `iommu_sva_bind_device`: one global PASID per mm, one SVA domain per mm; binding the
    /// same (dev, mm) again takes another reference. Returns the PASID.
    pub fn sva_bind(&mut self, dev: Rid, mm: MmId) -> Result<u32, Errno> {
        let d = self.state.devices.get(&dev).ok_or(Errno::ENODEV)?;
        let m = self.state.mms.get(&mm).ok_or(Errno::ENOENT)?;
        if d.desc.max_pasids == 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        if let Some(p) = m.pasid {
            if p >= d.desc.max_pasids {
                return Err(Errno::EINVAL);
            }
        }
        if let Some(n) = d.sva.get(&mm).copied() {
            if let Some(d) = self.state.devices.get_mut(&dev) {
                d.sva.insert(mm, n + 1);
            }
            return m.pasid.ok_or(Errno::EINVAL);
        }
        let new_pasid = m.pasid.is_none();
        let pasid = match m.pasid {
            Some(p) => p,
            None => self.alloc_global_pasid(dev)?,
        };
        let undo_pasid = |k: &mut Self| {
            if new_pasid {
                let _ = k.free_global_pasid(pasid);
            }
        };
        let existing = self.state.mms.get(&mm).and_then(|m| m.sva_domain);
        let (dom, new_dom) = match existing {
            Some(x) => (x, false),
            None => match self.domain_alloc(DomainType::Sva(mm)) {
                Ok(x) => (x, true),
                Err(e) => {
                    undo_pasid(self);
                    return Err(e);
                }
            },
        };
        if let Err(e) = self.attach_device_pasid(dom, dev, pasid) {
            if new_dom {
                let _ = self.domain_free(dom);
            }
            undo_pasid(self);
            return Err(e);
        }
        if let Some(m) = self.state.mms.get_mut(&mm) {
            m.pasid = Some(pasid);
            m.sva_domain = Some(dom);
        }
        if let Some(d) = self.state.devices.get_mut(&dev) {
            d.sva.insert(mm, 1);
        }
        Ok(pasid)
    }

    /// `iommu_sva_unbind_device`: the last reference detaches the PASID; the mm keeps its
    /// PASID until [`Kernel::mm_destroy`].
    pub fn sva_unbind(&mut self, dev: Rid, mm: MmId) -> Result<(), Errno> {
        let d = self.state.devices.get(&dev).ok_or(Errno::ENODEV)?;
        let n = *d.sva.get(&mm).ok_or(Errno::ENOENT)?;
        if n > 1 {
            if let Some(d) = self.state.devices.get_mut(&dev) {
                d.sva.insert(mm, n - 1);
            }
            return Ok(());
        }
        let m = self.state.mms.get(&mm).ok_or(Errno::ENOENT)?;
        let (pasid, dom) = (
            m.pasid.ok_or(Errno::EINVAL)?,
            m.sva_domain.ok_or(Errno::EINVAL)?,
        );
        self.detach_pasid(dom, dev, pasid)?;
        if let Some(d) = self.state.devices.get_mut(&dev) {
            d.sva.remove(&mm);
        }
        if self.domain_users(dom) == 0 {
            self.domain_free(dom)?;
        }
        Ok(())
    }
}

fn overlaps<T>(map: &BTreeMap<u64, T>, start: u64, size: u64, len: impl Fn(&T) -> u64) -> bool {
    let end = start.saturating_add(size);
    if let Some((&v, m)) = map.range(..=start).next_back() {
        if start < v.saturating_add(len(m)) {
            return true;
        }
    }
    map.range(start..end).next().is_some()
}

impl fmt::Display for DomainType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blocked => write!(f, "blocked"),
            Self::Identity => write!(f, "identity"),
            Self::Paging(Stage::First) => write!(f, "paging(first-stage)"),
            Self::Paging(Stage::Second) => write!(f, "paging(second-stage)"),
            Self::Sva(mm) => write!(f, "sva(mm {})", mm.0),
        }
    }
}

#[cfg(test)]
mod tests;
