//! VT-d driver model: what Linux's intel-iommu driver writes for each operation of the
//! kernel model, in scalable mode.
//!
//! Mirrors drivers/iommu/intel/iommu.c (`iommu_set_root_entry()`, `domain_attach_iommu()`
//! DID allocation, `__domain_mapping()`, `intel_iommu_unmap()`, `intel_iommu_tlb_sync()`,
//! `device_block_translation()`), drivers/iommu/intel/pasid.c (`intel_pasid_alloc_table()`,
//! `intel_pasid_setup_sm_context()`, `intel_pasid_setup_first_level()` /
//! `_second_level()` / `_pass_through()`, `intel_pasid_tear_down_entry()`),
//! drivers/iommu/intel/cache.c (cache tags, `cache_tag_flush_range()`,
//! `calculate_psi_aligned_address()`), drivers/iommu/intel/svm.c (SVA domains use
//! `FLPT_DEFAULT_DID`) and drivers/iommu/intel/dmar.c (`qi_submit_sync()` appends an
//! invalidation wait to every batch).
//!
//! The driver is generic over [`IommuHw`], so the same code drives the golden walker
//! ([`crate::golden::GoldenHw`]) or the RTL. It reads CAP/ECAP instead of assuming.

use crate::kernel::{
    DeviceDesc, DomainId, DomainType, Errno, IommuOps, MmId, MmProt, Prot, Rid, NO_PASID,
};
use crate::mem::{Mem, MemError, PhysMem, PAGE_SIZE};
use crate::qi::{Descriptor, IotlbGran, PcGran, PiotlbGran};
use crate::regs::{self, Caps};
use crate::tables::{self, context as ce, fs, pasid_dir as pde, pasid_entry as pe, ss};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

mod ats;
mod maint;
mod pgtable;
mod submit;

pub use submit::MAX_RESUBMITS;

use pgtable::Owner;

/// `FLPT_DEFAULT_DID`: pass-through and SVA PASID entries.
pub const FLPT_DEFAULT_DID: u16 = 1;
/// `IDA_START_DID`: first DID of paging domains.
pub const FIRST_PAGING_DID: u16 = 2;
/// `info->ats_qdep` (`pci_ats_queue_depth()`) of every modelled ATS device: its ATS
/// capability reports an Invalidate Queue Depth of 0, which means 32.
pub const ATS_QDEP: u16 = 32;
/// `MAX_AGAW_PFN_WIDTH` (64 - 12): the mask of a device-TLB flush of the whole space.
pub const DEVTLB_ALL_MASK: u32 = 52;

/// Failures of the hardware side.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum HwError {
    #[error("memory: {0}")]
    Mem(#[from] MemError),
    #[error("invalidation queue error: {0}")]
    Queue(String),
    #[error("timed out waiting for the hardware")]
    Timeout,
    /// A device-TLB invalidation timed out (FSTS.ITE) and the hardware aborted the batch's
    /// wait; the hardware has cleared ITE again, as `qi_check_fault()` does. The driver
    /// resubmits the batch ([`MAX_RESUBMITS`]).
    #[error("device-TLB invalidation time-out (FSTS.ITE), the batch's wait aborted: {0}")]
    InvalidationTimeout(String),
}

/// What the driver needs from the translation unit: memory it shares with it, the
/// capability registers, root-table programming and queued invalidation. The golden
/// implementation applies descriptors to its maximal cache; an RTL implementation writes
/// them into the invalidation queue and bumps IQT.
pub trait IommuHw {
    fn mem(&mut self) -> &mut Mem;
    fn read_cap(&mut self) -> u64;
    fn read_ecap(&mut self) -> u64;
    /// Writes RTADDR (pointer | TTM) and sets GCMD.SRTP, waiting for GSTS.RTPS.
    fn set_root_table(&mut self, rtaddr: u64) -> Result<(), HwError>;
    /// Sets GCMD.TE, waiting for GSTS.TES.
    fn enable_translation(&mut self) -> Result<(), HwError>;
    /// Queues `descs` (the last one is an invalidation wait) and waits for the wait's
    /// status write. When the hardware aborts that wait because a device-TLB invalidation
    /// timed out, it clears FSTS.ITE and returns [`HwError::InvalidationTimeout`].
    fn submit(&mut self, descs: &[Descriptor]) -> Result<(), HwError>;
    /// Whether the queue executes device-TLB invalidations (descriptor types 3 and 8)
    /// when ECAP.DT = 1 ([`Caps::dev_tlb_usable`]).
    fn executes_dev_tlb_invalidations(&self) -> bool {
        true
    }
}

/// Bug switches that make the driver deviate from Linux, to prove the checkers catch it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverQuirks {
    /// Unmap flushes only the RID-tagged cache tag (PASID 0), skipping PASID-tagged ones.
    pub skip_pasid_flush: bool,
    /// Range flushes leave out the PASID-based device-TLB invalidation (type 8) of every
    /// PASID-tagged device-TLB cache tag; the RID's type 3 is still sent.
    pub skip_pasid_devtlb_flush: bool,
    /// `iotlb_sync` sets the Invalidation Hint (IH = 1) on its page-selective flushes even
    /// when the unmap freed page-table pages, so the unit may keep a cached non-leaf entry
    /// that points into a freed page (Linux passes `ih = list_empty(&gather->freelist)`).
    pub ih_always_set: bool,
}

impl DriverQuirks {
    /// Every bug switch by its command-line and vector name, with what it does.
    pub const NAMES: &'static [(&'static str, &'static str)] = &[
        (
            "skip-pasid-flush",
            "unmap flushes only the RID's cache tag, not the PASID attachments'",
        ),
        (
            "ih-always-set",
            "iotlb_sync sets IH=1 even when the unmap freed page-table pages",
        ),
        (
            "skip-pasid-devtlb-flush",
            "range flushes send the RID's device-TLB invalidation but not the PASIDs' (type 8)",
        ),
    ];

    /// Turns on the bug switch called `name` (one of [`DriverQuirks::NAMES`]).
    pub fn enable(&mut self, name: &str) -> Result<(), String> {
        match name {
            "skip-pasid-flush" => self.skip_pasid_flush = true,
            "ih-always-set" => self.ih_always_set = true,
            "skip-pasid-devtlb-flush" => self.skip_pasid_devtlb_flush = true,
            _ => {
                let known: Vec<&str> = Self::NAMES.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "unknown driver bug `{name}` (known: {})",
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// The names of the switches that are on.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.skip_pasid_flush {
            v.push("skip-pasid-flush");
        }
        if self.ih_always_set {
            v.push("ih-always-set");
        }
        if self.skip_pasid_devtlb_flush {
            v.push("skip-pasid-devtlb-flush");
        }
        v
    }
}

/// One submission of `qi_submit_sync()`: the descriptors including the trailing wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub seq: u32,
    pub reason: String,
    pub descs: Vec<Descriptor>,
    /// The hardware aborted the wait (device-TLB invalidation time-out); the same
    /// descriptors follow in the log again, resubmitted with a new status value.
    pub aborted: bool,
}

#[derive(Clone, Debug)]
struct DevInfo {
    desc: DeviceDesc,
    pasid_dir: u64,
    dir_order: u32,
    pasid_tables: BTreeMap<u64, u64>,
    attached: BTreeMap<u32, DomainId>,
}

#[derive(Clone, Debug)]
struct DomInfo {
    ty: DomainType,
    did: Option<u16>,
    /// Attachments holding the DID (`domain_attach_iommu` refcount).
    did_users: u32,
    pgd: Option<u64>,
    /// IOTLB cache tags: PASID -> users (Linux keys IOTLB tags by IOMMU, DID and PASID).
    tags: BTreeMap<u32, u32>,
    /// `struct iommu_iotlb_gather`: the range unmapped since the last `iotlb_sync`, and
    /// its freelist (page-table pages the unmaps took out of the tables, freed only after
    /// the flush).
    gather: Option<(u64, u64)>,
    freelist: Vec<u64>,
}

/// Number of PASID-directory entries Linux allocates for a device
/// (`intel_pasid_alloc_table()`: at least one 4 KiB page, a power-of-two order).
pub fn pasid_dir_entries(max_pasids: u32) -> u64 {
    512u64 << pasid_dir_order(max_pasids)
}

fn pasid_dir_order(max_pasids: u32) -> u32 {
    let bytes = u64::from(max_pasids) >> (pde::SHIFT - 3);
    let pages = bytes.div_ceil(PAGE_SIZE).max(1);
    pages.next_power_of_two().trailing_zeros()
}

/// The VT-d driver model.
#[derive(Debug)]
pub struct Driver<H: IommuHw> {
    hw: H,
    caps: Caps,
    quirks: DriverQuirks,
    root: u64,
    status: u64,
    ctx_tables: BTreeMap<(u8, bool), u64>,
    devs: BTreeMap<Rid, DevInfo>,
    domains: BTreeMap<DomainId, DomInfo>,
    mms: BTreeMap<MmId, u64>,
    sva_mm: BTreeMap<DomainId, MmId>,
    dids: BTreeSet<u16>,
    log: Vec<Batch>,
    seq: u32,
    /// Batches resubmitted after a device-TLB invalidation time-out.
    resubmits: u64,
}

fn mem_err(_: MemError) -> Errno {
    Errno::ENOMEM
}

impl<H: IommuHw> Driver<H> {
    /// `intel_iommu_init` for one unit: root table, SRTP, the global invalidations Linux
    /// issues when CAP.ESRTPS is clear, then TE.
    pub fn new(mut hw: H, quirks: DriverQuirks) -> Result<Self, HwError> {
        let caps = Caps::new(hw.read_cap(), hw.read_ecap())
            .with_dev_tlb_invalidation(hw.executes_dev_tlb_invalidations());
        if !caps.scalable() || caps.pasid_bits() == 0 {
            return Err(HwError::Queue(
                "scalable mode with PASID support is required".into(),
            ));
        }
        let root = hw.mem().alloc_page()?;
        let status = hw.mem().alloc_page()?;
        let mut d = Self {
            hw,
            caps,
            quirks,
            root,
            status,
            ctx_tables: BTreeMap::new(),
            devs: BTreeMap::new(),
            domains: BTreeMap::new(),
            mms: BTreeMap::new(),
            sva_mm: BTreeMap::new(),
            dids: BTreeSet::new(),
            log: Vec::new(),
            seq: 0,
            resubmits: 0,
        };
        d.root_entry()?;
        d.hw.enable_translation()?;
        Ok(d)
    }

    /// RTADDR value: root table | TTM=01b.
    pub fn rtaddr(&self) -> u64 {
        self.root | regs::RTADDR_TTM_SCALABLE
    }
    pub fn root_table(&self) -> u64 {
        self.root
    }
    pub fn caps(&self) -> Caps {
        self.caps
    }
    pub fn quirks(&self) -> DriverQuirks {
        self.quirks
    }
    pub fn set_quirks(&mut self, q: DriverQuirks) {
        self.quirks = q;
    }
    pub fn hw(&self) -> &H {
        &self.hw
    }
    pub fn hw_mut(&mut self) -> &mut H {
        &mut self.hw
    }
    /// Every batch submitted so far.
    pub fn log(&self) -> &[Batch] {
        &self.log
    }
    /// Takes the batch log.
    pub fn take_log(&mut self) -> Vec<Batch> {
        std::mem::take(&mut self.log)
    }
    /// How many times a batch was resubmitted because the hardware aborted its wait on a
    /// device-TLB invalidation time-out.
    pub fn resubmits(&self) -> u64 {
        self.resubmits
    }
    /// The DID a domain holds on this unit.
    pub fn domain_did(&self, id: DomainId) -> Option<u16> {
        self.domains.get(&id).and_then(|d| d.did)
    }
    /// The domain's page-table root.
    pub fn domain_pgd(&self, id: DomainId) -> Option<u64> {
        self.domains.get(&id).and_then(|d| d.pgd)
    }
    /// The IOTLB cache tags of a domain (PASIDs, ascending).
    pub fn domain_tags(&self, id: DomainId) -> Vec<u32> {
        self.domains
            .get(&id)
            .map(|d| d.tags.keys().copied().collect())
            .unwrap_or_default()
    }
    /// Address of a device's PASID-table entry, if its PASID table exists.
    pub fn pasid_entry_addr(&self, dev: Rid, pasid: u32) -> Option<u64> {
        let d = self.devs.get(&dev)?;
        let t = d.pasid_tables.get(&u64::from(pasid >> pde::SHIFT))?;
        Some(t + u64::from(pasid & 0x3F) * pe::SIZE)
    }

    fn write_mem(&mut self, pa: u64, val: u64) -> Result<(), Errno> {
        self.hw.mem().write64(pa, val).map_err(mem_err)
    }
    fn read_mem(&mut self, pa: u64) -> Result<u64, Errno> {
        self.hw.mem().read64(pa).map_err(mem_err)
    }

    /// `iommu_context_addr(..., alloc = 1)`: the context entry of `rid`, allocating the
    /// lower or upper context table of its bus.
    fn context_entry(&mut self, rid: Rid) -> Result<u64, Errno> {
        let bus = (rid >> 8) as u8;
        let devfn = rid & 0xFF;
        let upper = devfn >= 0x80;
        let table = match self.ctx_tables.get(&(bus, upper)) {
            Some(t) => *t,
            None => {
                let t = self.hw.mem().alloc_page().map_err(mem_err)?;
                let slot = self.root + u64::from(bus) * 16 + if upper { 8 } else { 0 };
                self.write_mem(slot, t | tables::root::PRESENT)?;
                self.ctx_tables.insert((bus, upper), t);
                t
            }
        };
        Ok(table + u64::from(devfn & 0x7F) * ce::SIZE)
    }

    /// `intel_pasid_get_entry()`: allocates the 64-entry PASID table on first use.
    fn pasid_entry(&mut self, rid: Rid, pasid: u32) -> Result<u64, Errno> {
        let d = self.devs.get(&rid).ok_or(Errno::ENODEV)?;
        let idx = u64::from(pasid >> pde::SHIFT);
        if idx >= 512u64 << d.dir_order {
            return Err(Errno::EINVAL);
        }
        let dir = d.pasid_dir;
        let table = match d.pasid_tables.get(&idx) {
            Some(t) => *t,
            None => {
                let t = self.hw.mem().alloc_page().map_err(mem_err)?;
                self.write_mem(dir + idx * 8, t | pde::P)?;
                if let Some(d) = self.devs.get_mut(&rid) {
                    d.pasid_tables.insert(idx, t);
                }
                t
            }
        };
        Ok(table + u64::from(pasid & 0x3F) * pe::SIZE)
    }

    /// Writes a PASID entry, present bit last (`pasid_set_present()` after the fields).
    fn write_pasid_entry(&mut self, rid: Rid, pasid: u32, qw: [u64; 3]) -> Result<(), Errno> {
        let e = self.pasid_entry(rid, pasid)?;
        if self.read_mem(e)? & pe::QW0_P != 0 {
            return Err(Errno::EBUSY);
        }
        self.write_mem(e + 16, qw[2])?;
        self.write_mem(e + 8, qw[1])?;
        self.write_mem(e, qw[0])?;
        if self.caps.caching_mode() {
            let did = (qw[1] & pe::QW1_DID_MASK) as u16;
            self.pasid_flush_caches(
                did,
                pasid,
                (qw[0] & pe::QW0_PGTT_MASK) >> pe::QW0_PGTT_SHIFT,
            )
            .map_err(|_| Errno::EBUSY)?;
        }
        Ok(())
    }

    fn pasid_flush_caches(&mut self, did: u16, pasid: u32, pgtt: u64) -> Result<(), HwError> {
        self.submit(
            "pasid cache",
            vec![Descriptor::PasidCache {
                gran: PcGran::Pasid,
                did,
                pasid,
            }],
        )?;
        let iotlb = if pgtt == pe::PGTT_SS {
            Descriptor::Iotlb {
                gran: IotlbGran::Domain,
                dr: self.caps.read_drain(),
                dw: self.caps.write_drain(),
                did,
                addr: 0,
                am: 0,
                ih: false,
            }
        } else {
            Descriptor::PasidIotlb {
                gran: PiotlbGran::Pasid,
                did,
                pasid,
                addr: 0,
                am: 0,
                ih: false,
            }
        };
        self.submit("pasid iotlb", vec![iotlb])
    }

    /// `intel_pasid_tear_down_entry()`: clear the entry, then PASID-cache invalidation, then
    /// the IOTLB (PASID-selective for first-stage and pass-through, DID-selective for
    /// second-stage), then for an ATS device `devtlb_invalidation_with_pasid()`, each
    /// waited for.
    fn tear_down(&mut self, rid: Rid, pasid: u32) -> Result<(), Errno> {
        let Some(e) = self.pasid_entry_addr(rid, pasid) else {
            return Ok(());
        };
        let q0 = self.read_mem(e)?;
        if q0 & pe::QW0_P == 0 {
            return Ok(());
        }
        let did = (self.read_mem(e + 8)? & pe::QW1_DID_MASK) as u16;
        let pgtt = (q0 & pe::QW0_PGTT_MASK) >> pe::QW0_PGTT_SHIFT;
        for i in 0..8 {
            self.write_mem(e + 8 * i, 0)?;
        }
        self.pasid_flush_caches(did, pasid, pgtt)
            .map_err(|_| Errno::EBUSY)?;
        if self.ats_enabled(rid) {
            let d = self.devtlb_desc(rid, pasid, 0, DEVTLB_ALL_MASK);
            self.submit("devtlb", vec![d]).map_err(|_| Errno::EBUSY)?;
        }
        Ok(())
    }

    /// `domain_attach_iommu()`: the DID, allocated at the first attachment.
    fn attach_did(&mut self, id: DomainId) -> Result<u16, Errno> {
        let ndoms = self.caps.ndoms();
        let d = self.domains.get_mut(&id).ok_or(Errno::ENOENT)?;
        match d.ty {
            DomainType::Identity | DomainType::Sva(_) => return Ok(FLPT_DEFAULT_DID),
            DomainType::Blocked => return Err(Errno::EINVAL),
            DomainType::Paging(_) => {}
        }
        if let Some(did) = d.did {
            d.did_users += 1;
            return Ok(did);
        }
        let did = (u32::from(FIRST_PAGING_DID)..ndoms)
            .map(|x| x as u16)
            .find(|x| !self.dids.contains(x))
            .ok_or(Errno::ENOSPC)?;
        self.dids.insert(did);
        d.did = Some(did);
        d.did_users = 1;
        Ok(did)
    }

    /// `domain_detach_iommu()`.
    fn detach_did(&mut self, id: DomainId) {
        if let Some(d) = self.domains.get_mut(&id) {
            if let (DomainType::Paging(_), Some(did)) = (d.ty, d.did) {
                d.did_users = d.did_users.saturating_sub(1);
                if d.did_users == 0 {
                    d.did = None;
                    self.dids.remove(&did);
                }
            }
        }
    }

    fn tag_assign(&mut self, id: DomainId, pasid: u32) {
        if let Some(d) = self.domains.get_mut(&id) {
            if matches!(d.ty, DomainType::Paging(_) | DomainType::Sva(_)) {
                *d.tags.entry(pasid).or_insert(0) += 1;
            }
        }
    }

    fn tag_unassign(&mut self, id: DomainId, pasid: u32) {
        if let Some(d) = self.domains.get_mut(&id) {
            if let Some(n) = d.tags.get_mut(&pasid) {
                *n -= 1;
                if *n == 0 {
                    d.tags.remove(&pasid);
                }
            }
        }
    }

    /// The PASID entry a domain gets (`intel_pasid_setup_*`).
    fn entry_for(&self, id: DomainId, did: u16) -> Result<[u64; 3], Errno> {
        let d = self.domains.get(&id).ok_or(Errno::ENOENT)?;
        let aw = pe::AW_4LEVEL << pe::QW0_AW_SHIFT;
        Ok(match d.ty {
            DomainType::Identity => [
                pe::QW0_P | aw | pe::PGTT_PT << pe::QW0_PGTT_SHIFT,
                u64::from(did),
                0,
            ],
            DomainType::Paging(crate::kernel::Stage::Second) => {
                let pgd = d.pgd.ok_or(Errno::EINVAL)?;
                [
                    pe::QW0_P | aw | pe::PGTT_SS << pe::QW0_PGTT_SHIFT | pgd,
                    u64::from(did),
                    0,
                ]
            }
            DomainType::Paging(crate::kernel::Stage::First) => {
                let pgd = d.pgd.ok_or(Errno::EINVAL)?;
                [
                    pe::QW0_P | aw | pe::PGTT_FS << pe::QW0_PGTT_SHIFT,
                    u64::from(did),
                    pgd,
                ]
            }
            DomainType::Sva(mm) => {
                let pgd = *self.mms.get(&mm).ok_or(Errno::EINVAL)?;
                [
                    pe::QW0_P | aw | pe::PGTT_FS << pe::QW0_PGTT_SHIFT,
                    u64::from(did),
                    pgd,
                ]
            }
            DomainType::Blocked => return Err(Errno::EINVAL),
        })
    }

    /// `dmar_domain_attach_device` / `set_dev_pasid`: DID, cache tag, PASID entry.
    fn setup(&mut self, id: DomainId, dev: Rid, pasid: u32) -> Result<(), Errno> {
        let did = self.attach_did(id)?;
        self.tag_assign(id, pasid);
        let r = self
            .entry_for(id, did)
            .and_then(|qw| self.write_pasid_entry(dev, pasid, qw));
        if let Err(e) = r {
            self.tag_unassign(id, pasid);
            self.detach_did(id);
            return Err(e);
        }
        if let Some(d) = self.devs.get_mut(&dev) {
            d.attached.insert(pasid, id);
        }
        Ok(())
    }

    /// Blocks (dev, pasid): tear down, drop tag and DID.
    fn block(&mut self, dev: Rid, pasid: u32) -> Result<(), Errno> {
        let Some(old) = self
            .devs
            .get(&dev)
            .and_then(|d| d.attached.get(&pasid).copied())
        else {
            return Ok(());
        };
        self.tear_down(dev, pasid)?;
        self.tag_unassign(old, pasid);
        self.detach_did(old);
        if let Some(d) = self.devs.get_mut(&dev) {
            d.attached.remove(&pasid);
        }
        Ok(())
    }

    /// `intel_arch_invalidate_secondary_tlbs()`: `cache_tag_flush_range(domain, start,
    /// end, 0)` for every SVA domain of `mm`, over `[start, end]` (inclusive).
    fn flush_mm(&mut self, mm: MmId, start: u64, end: u64, reason: &str) -> Result<(), Errno> {
        let doms: Vec<DomainId> = self
            .sva_mm
            .iter()
            .filter(|(_, &m)| m == mm)
            .map(|(&d, _)| d)
            .collect();
        for d in doms {
            self.flush_range(d, start, end, false, reason)?;
        }
        Ok(())
    }

    /// `cache_tag_flush_range()` over `[start, end]` (inclusive): one descriptor per tag.
    /// `ih` goes into the page-selective descriptors (types 2 and 6, QW1 bit 6); the
    /// domain- and PASID-selective fallbacks carry IH = 0, as `cache_tag_flush_iotlb()`
    /// and `qi_desc_piotlb()` build them. `cache_tag_assign_domain()` links an ATS
    /// device's device-TLB tag right after the IOTLB tag of the same attachment, so each
    /// IOTLB descriptor is followed by the device-TLB invalidations of that PASID
    /// (`cache_tag_flush_devtlb_psi()`: type 3 for the RID, type 8 for a PASID, same
    /// address and mask), and the wait comes last.
    fn flush_range(
        &mut self,
        id: DomainId,
        start: u64,
        end: u64,
        ih: bool,
        reason: &str,
    ) -> Result<(), Errno> {
        let d = self.domains.get(&id).ok_or(Errno::ENOENT)?;
        let did = match d.ty {
            DomainType::Sva(_) => FLPT_DEFAULT_DID,
            _ => match d.did {
                Some(x) => x,
                None => return Ok(()),
            },
        };
        let (addr, mask) = psi_aligned(start, end);
        let mut descs = Vec::new();
        for &pasid in d.tags.keys() {
            if self.quirks.skip_pasid_flush && pasid != NO_PASID {
                continue;
            }
            let devtlb: Vec<Descriptor> =
                if self.quirks.skip_pasid_devtlb_flush && pasid != NO_PASID {
                    Vec::new()
                } else {
                    self.devtlb_tags(id, pasid)
                        .into_iter()
                        .map(|rid| self.devtlb_desc(rid, pasid, addr, mask))
                        .collect()
                };
            if d.ty.first_stage() && mask >= 52 {
                // qi_batch_add_piotlb_all(): the whole address space.
                descs.push(Descriptor::PasidIotlb {
                    gran: PiotlbGran::Pasid,
                    did,
                    pasid,
                    addr: 0,
                    am: 0,
                    ih: false,
                });
            } else if d.ty.first_stage() {
                descs.push(Descriptor::PasidIotlb {
                    gran: PiotlbGran::Page,
                    did,
                    pasid,
                    addr,
                    am: mask as u8,
                    ih,
                });
            } else if !self.caps.psi() || mask > self.caps.mamv() {
                descs.push(Descriptor::Iotlb {
                    gran: IotlbGran::Domain,
                    dr: self.caps.read_drain(),
                    dw: self.caps.write_drain(),
                    did,
                    addr: 0,
                    am: 0,
                    ih: false,
                });
            } else {
                descs.push(Descriptor::Iotlb {
                    gran: IotlbGran::Page,
                    dr: self.caps.read_drain(),
                    dw: self.caps.write_drain(),
                    did,
                    addr,
                    am: mask as u8,
                    ih,
                });
            }
            descs.extend(devtlb);
        }
        self.submit(reason, descs).map_err(|_| Errno::EBUSY)
    }
}

/// `calculate_psi_aligned_address()`: the smallest naturally aligned power-of-two range
/// covering `[start, end]`; returns (address, AM).
pub fn psi_aligned(start: u64, end: u64) -> (u64, u32) {
    let first = start >> 12;
    let last = end >> 12;
    let pages = last - first + 1;
    let mut mask = pages.next_power_of_two().trailing_zeros();
    while mask < 52 && (first >> mask) != (last >> mask) {
        mask += 1;
    }
    let size = PAGE_SIZE.checked_shl(mask).unwrap_or(0);
    ((first << 12) & !size.wrapping_sub(1), mask)
}

impl<H: IommuHw> IommuOps for Driver<H> {
    /// `intel_iommu_probe_device` + `intel_pasid_alloc_table` + `intel_pasid_setup_sm_context`.
    fn probe_device(&mut self, dev: &DeviceDesc) -> Result<(), Errno> {
        if self.devs.contains_key(&dev.rid) {
            return Err(Errno::EEXIST);
        }
        let max = dev.max_pasids.min(1 << self.caps.pasid_bits());
        let order = pasid_dir_order(max);
        let dir = self.hw.mem().alloc_pages(order).map_err(mem_err)?;
        let ctx = self.context_entry(dev.rid)?;
        let pdts = (512u64 << order).trailing_zeros() as u64 - 7;
        let mut q0 = dir | pdts << ce::PDTS_SHIFT | ce::P;
        if dev.max_pasids > 0 {
            q0 |= ce::PASIDE;
        }
        if dev.ats && self.caps.dev_tlb() {
            q0 |= ce::DTE;
        }
        self.write_mem(ctx + 8, u64::from(NO_PASID))?;
        self.write_mem(ctx, q0)?;
        self.devs.insert(
            dev.rid,
            DevInfo {
                desc: *dev,
                pasid_dir: dir,
                dir_order: order,
                pasid_tables: BTreeMap::new(),
                attached: BTreeMap::new(),
            },
        );
        Ok(())
    }

    fn domain_alloc(&mut self, id: DomainId, ty: DomainType) -> Result<(), Errno> {
        let pgd = match ty {
            DomainType::Paging(crate::kernel::Stage::First) if !self.caps.first_stage() => {
                return Err(Errno::EOPNOTSUPP)
            }
            DomainType::Paging(crate::kernel::Stage::Second) if !self.caps.second_stage() => {
                return Err(Errno::EOPNOTSUPP)
            }
            DomainType::Identity if !self.caps.pass_through() => return Err(Errno::EOPNOTSUPP),
            DomainType::Paging(_) => Some(self.hw.mem().alloc_page().map_err(mem_err)?),
            DomainType::Sva(mm) => {
                self.sva_mm.insert(id, mm);
                None
            }
            _ => None,
        };
        self.domains.insert(
            id,
            DomInfo {
                ty,
                did: None,
                did_users: 0,
                pgd,
                tags: BTreeMap::new(),
                gather: None,
                freelist: Vec::new(),
            },
        );
        Ok(())
    }

    fn domain_free(&mut self, id: DomainId) {
        if let Some(d) = self.domains.remove(&id) {
            // Pages still on the freelist of an unmap that was never synced.
            let _ = self.put_pages(d.freelist);
            if let Some(pgd) = d.pgd {
                self.free_table(pgd, 4);
            }
        }
        self.sva_mm.remove(&id);
    }

    fn pgsize_bitmap(&self, ty: DomainType) -> u64 {
        let mut b = PAGE_SIZE;
        let (m2, g1) = if ty.first_stage() {
            (true, self.caps.fl1gp())
        } else {
            (self.caps.sllps_2m(), self.caps.sllps_1g())
        };
        if m2 {
            b |= 1 << 21;
        }
        if g1 {
            b |= 1 << 30;
        }
        b
    }

    fn aperture_end(&self, ty: DomainType) -> u64 {
        if ty.first_stage() {
            (1 << 47) - 1
        } else {
            (1 << 48) - 1
        }
    }

    /// `intel_iommu_attach_device()` calls `device_block_translation()` before
    /// `dmar_domain_attach_device()` (see [`IommuOps::attach_dev`] below).
    fn attach_blocks_first(&self) -> bool {
        true
    }

    /// `intel_iommu_attach_device`: `device_block_translation` first, then the new entry.
    fn attach_dev(&mut self, id: DomainId, ty: DomainType, dev: Rid) -> Result<(), Errno> {
        self.block(dev, NO_PASID)?;
        if ty == DomainType::Blocked {
            return Ok(());
        }
        self.setup(id, dev, NO_PASID)
    }

    fn set_dev_pasid(
        &mut self,
        id: DomainId,
        _ty: DomainType,
        dev: Rid,
        pasid: u32,
    ) -> Result<(), Errno> {
        let d = self.devs.get(&dev).ok_or(Errno::ENODEV)?;
        if pasid == NO_PASID || pasid >= d.desc.max_pasids {
            return Err(Errno::EINVAL);
        }
        if d.attached.contains_key(&pasid) {
            return Err(Errno::EBUSY);
        }
        self.setup(id, dev, pasid)
    }

    fn remove_dev_pasid(&mut self, _id: DomainId, dev: Rid, pasid: u32) {
        let _ = self.block(dev, pasid);
    }

    /// `intel_iommu_map` / `__domain_mapping` for one leaf. Linux's first-stage leaves
    /// always have P, U/S and A set (and D with write), so a write-only first-stage mapping
    /// is also readable.
    fn map_pages(
        &mut self,
        id: DomainId,
        iova: u64,
        pa: u64,
        pgsize: u64,
        prot: Prot,
    ) -> Result<(), Errno> {
        let d = self.domains.get(&id).ok_or(Errno::ENOENT)?;
        let pgd = d.pgd.ok_or(Errno::EINVAL)?;
        let (leaf, table) = if d.ty.first_stage() {
            let mut l = pa | fs::P | fs::US | fs::A;
            if prot.write {
                l |= fs::RW | fs::D;
            }
            (l, fs::LINUX_TABLE)
        } else {
            let mut l = pa;
            if prot.read {
                l |= ss::R;
            }
            if prot.write {
                l |= ss::W;
            }
            (l, ss::R | ss::W)
        };
        self.set_leaf(Owner::Domain(id), pgd, iova, pgsize, leaf, table)
    }

    /// `intel_iommu_unmap_pages()` -> `intel_iommu_unmap()`: `domain_unmap()` over the
    /// range (page-table pages the range covers go on the gather's freelist), then
    /// `iommu_iotlb_gather_add_page()`.
    fn unmap_pages(
        &mut self,
        id: DomainId,
        iova: u64,
        pgsize: u64,
        count: u64,
    ) -> Result<(), Errno> {
        let d = self.domains.get(&id).ok_or(Errno::ENOENT)?;
        let pgd = d.pgd.ok_or(Errno::EINVAL)?;
        let size = pgsize.checked_mul(count).ok_or(Errno::EINVAL)?;
        if size == 0 {
            return Err(Errno::EINVAL);
        }
        let end = iova.checked_add(size - 1).ok_or(Errno::EINVAL)?;
        self.domain_unmap(id, pgd, iova, end)?;
        if let Some(d) = self.domains.get_mut(&id) {
            d.gather = Some(match d.gather {
                Some((s, e)) => (s.min(iova), e.max(end)),
                None => (iova, end),
            });
        }
        Ok(())
    }

    /// `intel_iommu_tlb_sync`: `cache_tag_flush_range(domain, start, end,
    /// list_empty(&gather->freelist))`, then `iommu_put_pages_list(&gather->freelist)`:
    /// IH = 1 only if no page-table page was freed, and the freed pages go back to the
    /// allocator only once the flush (and its wait) is done.
    fn iotlb_sync(&mut self, id: DomainId) -> Result<(), Errno> {
        let d = self.domains.get_mut(&id).ok_or(Errno::ENOENT)?;
        let g = d.gather.take();
        let freelist = std::mem::take(&mut d.freelist);
        if let Some((s, e)) = g {
            let ih = freelist.is_empty() || self.quirks.ih_always_set;
            self.flush_range(id, s, e, ih, "iotlb_sync")?;
        }
        self.put_pages(freelist)
    }

    fn mm_alloc(&mut self, mm: MmId) -> Result<(), Errno> {
        let pgd = self.hw.mem().alloc_page().map_err(mem_err)?;
        self.mms.insert(mm, pgd);
        Ok(())
    }

    fn mm_free(&mut self, mm: MmId) {
        if let Some(pgd) = self.mms.remove(&mm) {
            self.free_table(pgd, 4);
        }
    }

    /// x86 core mm: `_PAGE_TABLE` non-leaves; leaves P | U/S? | A | RW+D if writable | NX.
    fn mm_set_pte(
        &mut self,
        mm: MmId,
        va: u64,
        pa: u64,
        pgsize: u64,
        prot: MmProt,
    ) -> Result<(), Errno> {
        let pgd = *self.mms.get(&mm).ok_or(Errno::ENOENT)?;
        let mut leaf = pa | fs::P | fs::A;
        if prot.user {
            leaf |= fs::US;
        }
        if prot.write {
            leaf |= fs::RW | fs::D;
        }
        if !prot.exec {
            leaf |= fs::XD;
        }
        self.set_leaf(Owner::Mm(mm), pgd, va, pgsize, leaf, fs::MM_TABLE)
    }

    fn mm_clear_pte(&mut self, mm: MmId, va: u64, pgsize: u64) -> Result<(), Errno> {
        let pgd = *self.mms.get(&mm).ok_or(Errno::ENOENT)?;
        self.clear_leaf(pgd, va, pgsize, fs::MM_TABLE)
    }

    /// `intel_arch_invalidate_secondary_tlbs`: flush every SVA domain of the mm.
    fn set_fault_processing(
        &mut self,
        dev: Rid,
        at: crate::kernel::FpdAt,
        disable: bool,
    ) -> Result<(), Errno> {
        self.fault_processing(dev, at, disable)
    }

    fn set_root_entry(&mut self) -> Result<(), Errno> {
        self.root_entry().map_err(|_| Errno::EBUSY)
    }

    fn inject_memory_error(&mut self, dev: Rid, at: crate::kernel::MemErrAt) -> Result<(), Errno> {
        self.poison(dev, at)
    }

    fn clear_memory_errors(&mut self) -> Result<(), Errno> {
        self.unpoison();
        Ok(())
    }

    fn mm_invalidate(&mut self, mm: MmId, start: u64, end: u64) -> Result<(), Errno> {
        self.flush_mm(mm, start, end - 1, "mmu notifier")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_alignment_matches_linux() {
        assert_eq!(psi_aligned(0x5000, 0x5FFF), (0x5000, 0));
        assert_eq!(psi_aligned(0x4000, 0x7FFF), (0x4000, 2));
        // Unaligned two pages straddling a 16 KiB boundary need a larger mask.
        assert_eq!(psi_aligned(0x3000, 0x4FFF), (0x0000, 3));
        assert_eq!(psi_aligned(0x20_0000, 0x3F_FFFF), (0x20_0000, 9));
    }

    #[test]
    fn pasid_directory_sizes() {
        assert_eq!(pasid_dir_entries(0), 512);
        assert_eq!(pasid_dir_entries(64), 512);
        assert_eq!(pasid_dir_entries(1 << 15), 512);
        assert_eq!(pasid_dir_entries(1 << 16), 1024);
        assert_eq!(pasid_dir_entries(1 << 20), 1 << 14);
    }
}
