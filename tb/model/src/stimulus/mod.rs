//! Seeded random kernel-API sequences and requests: domains of every type, RID and PASID
//! attachments, `enable_dma_pasid`, map/unmap with and without `iotlb_sync`, the DMA API,
//! SVA binds and CPU-side mm changes, FPD changes and root-table re-programming through the
//! driver, and requests aimed mostly at live mappings, with faults of every kind the
//! driver's tables can produce.
//! The model's property tests drive the golden hardware with it; the testbench drives the
//! RTL with the same sequences.

use std::collections::BTreeMap;

use crate::kernel::dma::DmaDirection;
use crate::kernel::{
    DomainId, DomainType, Errno, FpdAt, IommuOps, Kernel, MemErrAt, MmId, MmProt, Prot,
};

mod generate;
mod weights;

pub use generate::Stimulus;
pub use weights::Weights;

/// The devices of every sequence: (RID, max_pasids); 02:01.0 has no PASID capability.
pub const DEVS: [(u16, u32); 4] = [(0x0100, 64), (0x0180, 1 << 16), (0x0208, 0), (0x0300, 4)];

/// IOVAs and VAs that sequences map and requests aim at.
pub const SLOTS: [u64; 6] = [
    0x1000,
    0x3000,
    0x20_0000,
    0x40_0000,
    0x4000_0000,
    0x7fff_f000_0000,
];

/// The domain created by the n-th `domain_alloc` of a sequence (counted as generated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainRef(pub usize);

/// The mm created by the n-th `mm_create` of a sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MmRef(pub usize);

/// The mapping made by the n-th `dma_map_single` of a sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DmaRef(pub usize);

/// The PASID returned by the n-th PASID-returning call (`enable_dma_pasid`, `sva_bind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PasidRef(pub usize);

/// A PASID argument: a literal, or the value an earlier call returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PasidArg {
    Lit(u32),
    Ref(PasidRef),
}

/// A domain argument: one the sequence allocated, or one it did not allocate itself (the
/// SVA domain `sva_bind` creates), by its kernel handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DomainArg {
    Ref(DomainRef),
    Id(DomainId),
}

/// One kernel-API operation with concrete arguments; objects created earlier in the
/// sequence are referred to symbolically, so a sequence can be replayed with operations
/// left out (an operation whose reference is not bound is skipped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    DomainAlloc {
        ty: DomainType,
        bind: DomainRef,
    },
    AttachDevice {
        dev: u16,
        domain: Option<DomainRef>,
    },
    EnableDmaPasid {
        dev: u16,
        bind: PasidRef,
    },
    DisableDmaPasid {
        dev: u16,
    },
    AttachDevicePasid {
        domain: Option<DomainRef>,
        dev: u16,
        pasid: PasidArg,
    },
    /// Detaches one of the device's PASID attachments (`None`: it had none).
    DetachDevicePasid {
        dev: u16,
        att: Option<(PasidArg, DomainArg)>,
    },
    Map {
        domain: Option<DomainRef>,
        iova: u64,
        pa: u64,
        size: u64,
        prot: Prot,
    },
    /// `iommu_unmap_fast`, followed by `iotlb_sync` when `sync`.
    Unmap {
        domain: Option<DomainRef>,
        iova: u64,
        size: u64,
        sync: bool,
    },
    IotlbSync {
        domain: Option<DomainRef>,
    },
    DmaMapSingle {
        dev: u16,
        pa: u64,
        len: u64,
        dir: DmaDirection,
        bind: DmaRef,
    },
    DmaUnmapSingle {
        map: Option<DmaRef>,
    },
    MmCreate {
        bind: MmRef,
    },
    MmMap {
        mm: Option<MmRef>,
        va: u64,
        pa: u64,
        size: u64,
        prot: MmProt,
    },
    MmUnmap {
        mm: Option<MmRef>,
        va: u64,
        size: u64,
    },
    SvaBind {
        dev: u16,
        mm: Option<MmRef>,
        bind: PasidRef,
    },
    SvaUnbind {
        dev: u16,
        mm: Option<MmRef>,
    },
    /// Sets (`disable`) or clears the fault-processing-disable bit of one of the device's
    /// structures through the driver ([`Kernel::set_fault_processing`]).
    SetFpd {
        dev: u16,
        at: FpdAt,
        disable: bool,
    },
    /// `iommu_set_root_entry()` with the root table in use ([`Kernel::set_root_entry`]):
    /// SRTP and the global invalidations.
    SetRootEntry,
    /// Reads of the page holding one of the device's structures fail
    /// ([`Kernel::inject_memory_error`]).
    MemError {
        dev: u16,
        at: MemErrAt,
    },
    /// Every injected memory error ends ([`Kernel::clear_memory_errors`]).
    ClearMemErrors,
}

/// What the symbolic references of a sequence stand for on one kernel.
#[derive(Clone, Debug, Default)]
pub struct Bindings {
    pub domains: BTreeMap<DomainRef, DomainId>,
    pub mms: BTreeMap<MmRef, MmId>,
    /// Live DMA-API mappings: (device, DMA address, length).
    pub dma: BTreeMap<DmaRef, (u16, u64, u64)>,
    pub pasids: BTreeMap<PasidRef, u32>,
}

impl Bindings {
    pub(crate) fn domain(&self, d: Option<DomainRef>) -> Option<DomainId> {
        d.and_then(|d| self.domains.get(&d).copied())
    }
    fn mm(&self, m: Option<MmRef>) -> Option<MmId> {
        m.and_then(|m| self.mms.get(&m).copied())
    }
    fn pasid(&self, p: PasidArg) -> Option<u32> {
        match p {
            PasidArg::Lit(v) => Some(v),
            PasidArg::Ref(r) => self.pasids.get(&r).copied(),
        }
    }
    /// The latest call that returned `v`, for a PASID the kernel holds.
    pub(crate) fn pasid_arg<O: IommuOps>(&self, k: &Kernel<O>, v: u32) -> PasidArg {
        if k.global_pasids().contains(&v) {
            if let Some((&r, _)) = self.pasids.iter().rev().find(|(_, &p)| p == v) {
                return PasidArg::Ref(r);
            }
        }
        PasidArg::Lit(v)
    }
}

/// The result of [`apply_detailed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The log line.
    pub desc: String,
    /// A reference was not bound: nothing was called.
    pub skipped: bool,
    /// The call's result: the value it returned (domain handle, PASID, DMA address, bytes
    /// unmapped; 0 for none) or its error.
    pub result: Result<u64, Errno>,
    /// For `Unmap { sync: true }`: the result of the `iotlb_sync` that followed.
    pub sync: Option<Result<(), Errno>>,
}

/// Applies `op` to `k`; returns its log line. An operation whose reference is not bound in
/// `b` (its creator was left out, or failed) is skipped.
pub fn apply<O: IommuOps>(op: &Op, k: &mut Kernel<O>, b: &mut Bindings) -> String {
    apply_detailed(op, k, b).desc
}

/// [`apply`] with the call's result.
pub fn apply_detailed<O: IommuOps>(op: &Op, k: &mut Kernel<O>, b: &mut Bindings) -> Applied {
    let mut sync_r = None;
    let (desc, r): (String, Option<Result<u64, Errno>>) = match *op {
        Op::DomainAlloc { ty, bind } => {
            let r = k.domain_alloc(ty);
            if let Ok(d) = r {
                b.domains.insert(bind, d);
            }
            (
                format!("domain_alloc({ty}) = {r:?}"),
                Some(r.map(|d| u64::from(d.0))),
            )
        }
        Op::AttachDevice { dev, domain } => {
            let d = b.domain(domain);
            let r = d.map(|d| k.attach_device(dev, d));
            (
                format!("attach_device({dev:#x}, {d:?}) = {r:?}"),
                r.map(|r| r.map(|()| 0)),
            )
        }
        Op::EnableDmaPasid { dev, bind } => {
            let r = k.enable_dma_pasid(dev);
            if let Ok(p) = r {
                b.pasids.insert(bind, p);
            }
            (
                format!("enable_dma_pasid({dev:#x}) = {r:?}"),
                Some(r.map(u64::from)),
            )
        }
        Op::DisableDmaPasid { dev } => {
            let r = k.disable_dma_pasid(dev);
            (
                format!("disable_dma_pasid({dev:#x}) = {r:?}"),
                Some(r.map(|()| 0)),
            )
        }
        Op::AttachDevicePasid { domain, dev, pasid } => {
            let (d, p) = (b.domain(domain), b.pasid(pasid));
            let r = d.zip(p).map(|(d, p)| k.attach_device_pasid(d, dev, p));
            (
                format!(
                    "attach_device_pasid({d:?}, {dev:#x}, {}) = {r:?}",
                    p.map_or_else(|| "?".to_owned(), |p| p.to_string())
                ),
                r.map(|r| r.map(|()| 0)),
            )
        }
        Op::DetachDevicePasid { dev, att } => {
            let resolved = att.and_then(|(p, d)| {
                let d = match d {
                    DomainArg::Ref(r) => b.domains.get(&r).copied(),
                    DomainArg::Id(id) => Some(id),
                };
                b.pasid(p).zip(d)
            });
            let r = resolved.map(|(p, d)| (p, d, k.detach_device_pasid(d, dev, p)));
            (
                format!("detach_device_pasid({dev:#x}) = {r:?}"),
                r.map(|(_, _, r)| r.map(|()| 0)),
            )
        }
        Op::Map {
            domain,
            iova,
            pa,
            size,
            prot,
        } => {
            let d = b.domain(domain);
            let r = d.map(|d| k.map(d, iova, pa, size, prot));
            (
                format!("map({d:?}, {iova:#x}, {pa:#x}, {size:#x}, {prot:?}) = {r:?}"),
                r.map(|r| r.map(|()| 0)),
            )
        }
        Op::Unmap {
            domain,
            iova,
            size,
            sync,
        } => {
            let d = b.domain(domain);
            let r = d.map(|d| {
                let u = k.unmap(d, iova, size);
                if sync {
                    (u, Some(k.iotlb_sync(d)))
                } else {
                    (u, None)
                }
            });
            sync_r = r.and_then(|(_, s)| s);
            (
                format!("unmap({d:?}, {iova:#x}, {size:#x}) sync={sync} = {r:?}"),
                r.map(|(u, _)| u),
            )
        }
        Op::IotlbSync { domain } => {
            let d = b.domain(domain);
            let r = d.map(|d| k.iotlb_sync(d));
            (
                format!("iotlb_sync({d:?}) = {r:?}"),
                r.map(|r| r.map(|()| 0)),
            )
        }
        Op::DmaMapSingle {
            dev,
            pa,
            len,
            dir,
            bind,
        } => {
            let r = k.dma_map_single(dev, pa, len, dir);
            if let Ok(a) = r {
                b.dma.insert(bind, (dev, a, len));
            }
            (
                format!("dma_map_single({dev:#x}, {pa:#x}, {len:#x}) = {r:x?}"),
                Some(r),
            )
        }
        Op::DmaUnmapSingle { map } => match map.and_then(|m| b.dma.remove(&m)) {
            None => ("dma_unmap_single(none)".into(), None),
            Some((dev, a, len)) => {
                let r = k.dma_unmap_single(dev, a, len, DmaDirection::Bidirectional);
                (
                    format!("dma_unmap_single({dev:#x}, {a:#x}) = {r:?}"),
                    Some(r.map(|()| 0)),
                )
            }
        },
        Op::MmCreate { bind } => {
            let r = k.mm_create();
            if let Ok(m) = r {
                b.mms.insert(bind, m);
            }
            (
                format!("mm_create = {r:?}"),
                Some(r.map(|m| u64::from(m.0))),
            )
        }
        Op::MmMap {
            mm,
            va,
            pa,
            size,
            prot,
        } => {
            let m = b.mm(mm);
            let r = m.map(|m| k.mm_map(m, va, pa, size, prot));
            (
                format!("mm_map({m:?}, {va:#x}, {pa:#x}, {size:#x}, {prot:?}) = {r:?}"),
                r.map(|r| r.map(|()| 0)),
            )
        }
        Op::MmUnmap { mm, va, size } => {
            let m = b.mm(mm);
            let r = m.map(|m| k.mm_unmap(m, va, size));
            (format!("mm_unmap({m:?}, {va:#x}, {size:#x}) = {r:?}"), r)
        }
        Op::SvaBind { dev, mm, bind } => {
            let m = b.mm(mm);
            let r = m.map(|m| k.sva_bind(dev, m));
            if let Some(Ok(p)) = r {
                b.pasids.insert(bind, p);
            }
            (
                format!("sva_bind({dev:#x}, {m:?}) = {r:?}"),
                r.map(|r| r.map(u64::from)),
            )
        }
        Op::SvaUnbind { dev, mm } => {
            let m = b.mm(mm);
            let r = m.map(|m| k.sva_unbind(dev, m));
            (
                format!("sva_unbind({dev:#x}, {m:?}) = {r:?}"),
                r.map(|r| r.map(|()| 0)),
            )
        }
        Op::SetFpd { dev, at, disable } => {
            let r = k.set_fault_processing(dev, at, disable);
            (
                format!("set_fault_processing({dev:#x}, {at:?}, disable={disable}) = {r:?}"),
                Some(r.map(|()| 0)),
            )
        }
        Op::SetRootEntry => {
            let r = k.set_root_entry();
            (format!("set_root_entry = {r:?}"), Some(r.map(|()| 0)))
        }
        Op::MemError { dev, at } => {
            let r = k.inject_memory_error(dev, at);
            (
                format!("inject_memory_error({dev:#x}, {at:?}) = {r:?}"),
                Some(r.map(|()| 0)),
            )
        }
        Op::ClearMemErrors => {
            let r = k.clear_memory_errors();
            (format!("clear_memory_errors = {r:?}"), Some(r.map(|()| 0)))
        }
    };
    Applied {
        desc,
        skipped: r.is_none(),
        result: r.unwrap_or(Ok(0)),
        sync: sync_r,
    }
}
