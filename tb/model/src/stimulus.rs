//! Seeded random kernel-API sequences and requests: domains of every type, RID and PASID
//! attachments, `enable_dma_pasid`, map/unmap with and without `iotlb_sync`, the DMA API,
//! SVA binds and CPU-side mm changes, and requests aimed mostly at what is (or was) mapped.
//! The model's property tests drive the golden hardware with it; the testbench drives the
//! RTL with the same sequences.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::golden::Request;
use crate::kernel::dma::DmaDirection;
use crate::kernel::{
    rid, DeviceDesc, DomainId, DomainType, Errno, IommuOps, Kernel, MmId, MmProt, Prot, Stage,
};

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
    fn domain(&self, d: Option<DomainRef>) -> Option<DomainId> {
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
    fn pasid_arg<O: IommuOps>(&self, k: &Kernel<O>, v: u32) -> PasidArg {
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
    };
    Applied {
        desc,
        skipped: r.is_none(),
        result: r.unwrap_or(Ok(0)),
        sync: sync_r,
    }
}

/// Relative frequency of each kind of operation in a generated sequence. The default mix
/// (20 in all) favours map/unmap and RID attach; a weight of 0 leaves a kind out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weights {
    pub domain_alloc: u32,
    pub attach_device: u32,
    pub enable_dma_pasid: u32,
    pub disable_dma_pasid: u32,
    pub attach_device_pasid: u32,
    pub detach_device_pasid: u32,
    pub map: u32,
    pub unmap: u32,
    pub iotlb_sync: u32,
    pub dma_map_single: u32,
    pub dma_unmap_single: u32,
    pub mm_create: u32,
    pub mm_map: u32,
    pub mm_unmap: u32,
    pub sva_bind: u32,
    pub sva_unbind: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            domain_alloc: 1,
            attach_device: 2,
            enable_dma_pasid: 1,
            disable_dma_pasid: 1,
            attach_device_pasid: 1,
            detach_device_pasid: 1,
            map: 3,
            unmap: 2,
            iotlb_sync: 1,
            dma_map_single: 1,
            dma_unmap_single: 1,
            mm_create: 1,
            mm_map: 1,
            mm_unmap: 1,
            sva_bind: 1,
            sva_unbind: 1,
        }
    }
}

impl Weights {
    /// Every kind with its name and weight, in the order the generator numbers them.
    pub fn entries(&self) -> [(&'static str, u32); 16] {
        [
            ("domain_alloc", self.domain_alloc),
            ("attach_device", self.attach_device),
            ("enable_dma_pasid", self.enable_dma_pasid),
            ("disable_dma_pasid", self.disable_dma_pasid),
            ("attach_device_pasid", self.attach_device_pasid),
            ("detach_device_pasid", self.detach_device_pasid),
            ("map", self.map),
            ("unmap", self.unmap),
            ("iotlb_sync", self.iotlb_sync),
            ("dma_map_single", self.dma_map_single),
            ("dma_unmap_single", self.dma_unmap_single),
            ("mm_create", self.mm_create),
            ("mm_map", self.mm_map),
            ("mm_unmap", self.mm_unmap),
            ("sva_bind", self.sva_bind),
            ("sva_unbind", self.sva_unbind),
        ]
    }

    /// Sets one weight by name (as `entries` names them).
    pub fn set(&mut self, name: &str, w: u32) -> Result<(), String> {
        let slot = match name {
            "domain_alloc" => &mut self.domain_alloc,
            "attach_device" => &mut self.attach_device,
            "enable_dma_pasid" => &mut self.enable_dma_pasid,
            "disable_dma_pasid" => &mut self.disable_dma_pasid,
            "attach_device_pasid" => &mut self.attach_device_pasid,
            "detach_device_pasid" => &mut self.detach_device_pasid,
            "map" => &mut self.map,
            "unmap" => &mut self.unmap,
            "iotlb_sync" => &mut self.iotlb_sync,
            "dma_map_single" => &mut self.dma_map_single,
            "dma_unmap_single" => &mut self.dma_unmap_single,
            "mm_create" => &mut self.mm_create,
            "mm_map" => &mut self.mm_map,
            "mm_unmap" => &mut self.mm_unmap,
            "sva_bind" => &mut self.sva_bind,
            "sva_unbind" => &mut self.sva_unbind,
            _ => {
                let names: Vec<&str> = self.entries().iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "unknown operation `{name}` (known: {})",
                    names.join(", ")
                ));
            }
        };
        *slot = w;
        Ok(())
    }

    /// Parses `name=weight,name=weight,...` on top of the default mix.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut w = Self::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}`: expected name=weight"))?;
            let value: u32 = value
                .trim()
                .parse()
                .map_err(|_| format!("`{item}`: the weight is not a whole number"))?;
            w.set(name.trim(), value)?;
        }
        if w.entries().iter().all(|(_, v)| *v == 0) {
            return Err("every weight is 0: nothing to generate".into());
        }
        Ok(w)
    }

    /// Picks a kind and returns the generator's slot number for it (0..20). With the
    /// default weights this consumes the random stream exactly as a uniform pick of 20.
    fn pick(&self, rng: &mut ChaCha8Rng) -> u32 {
        const SLOT: [u32; 16] = [0, 1, 3, 4, 5, 6, 7, 10, 12, 13, 14, 15, 16, 17, 18, 19];
        let total: u32 = self.entries().iter().map(|(_, w)| w).sum();
        let mut r = rng.gen_range(0..total.max(1));
        for (i, (_, w)) in self.entries().iter().enumerate() {
            if r < *w {
                return SLOT[i];
            }
            r -= w;
        }
        0
    }
}

/// A seeded generator; `log` holds every operation with its result, in order.
#[derive(Debug)]
pub struct Stimulus {
    weights: Weights,
    rng: ChaCha8Rng,
    bindings: Bindings,
    /// Creating operations generated so far, per kind (the next reference of each kind).
    made: [usize; 4],
    /// Live DMA-API mappings, in the order the generator picks from.
    dma: Vec<DmaRef>,
    /// Addresses that were mapped at some point: requests aim at them before and after.
    hot: Vec<u64>,
    pub log: Vec<String>,
}

impl Stimulus {
    pub fn new(seed: u64) -> Self {
        Self::with_weights(seed, Weights::default())
    }

    /// A generator with its own operation mix.
    pub fn with_weights(seed: u64, weights: Weights) -> Self {
        Self {
            weights,
            rng: ChaCha8Rng::seed_from_u64(seed),
            bindings: Bindings::default(),
            made: [0; 4],
            dma: Vec::new(),
            hot: Vec::new(),
            log: Vec::new(),
        }
    }

    /// What the references of the operations generated so far stand for.
    pub fn bindings(&self) -> &Bindings {
        &self.bindings
    }

    /// Adds [`DEVS`] to `k` (02:01.0 with an ATS capability).
    pub fn add_devices<O: IommuOps>(k: &mut Kernel<O>) -> Result<(), Errno> {
        for (r, max) in DEVS {
            k.add_device(DeviceDesc {
                rid: r,
                max_pasids: max,
                ats: r == 0x0180,
            })?;
        }
        Ok(())
    }

    fn fresh(&mut self, kind: usize) -> usize {
        let n = self.made[kind];
        self.made[kind] += 1;
        n
    }
    fn dev(&mut self) -> u16 {
        DEVS[self.rng.gen_range(0..DEVS.len())].0
    }
    fn dom(&mut self) -> Option<DomainRef> {
        let n = self.bindings.domains.len();
        (n != 0).then(|| {
            let i = self.rng.gen_range(0..n);
            *self.bindings.domains.keys().nth(i).unwrap_or(&DomainRef(0))
        })
    }
    fn mm(&mut self) -> Option<MmRef> {
        let n = self.bindings.mms.len();
        (n != 0).then(|| {
            let i = self.rng.gen_range(0..n);
            *self.bindings.mms.keys().nth(i).unwrap_or(&MmRef(0))
        })
    }
    fn pasid<O: IommuOps>(&mut self, k: &Kernel<O>) -> u32 {
        match self.rng.gen_range(0..4) {
            0 => 0,
            1 => self.rng.gen_range(1..8),
            _ => {
                let held: Vec<u32> = k.global_pasids().iter().copied().collect();
                if held.is_empty() {
                    1
                } else {
                    held[self.rng.gen_range(0..held.len())]
                }
            }
        }
    }
    fn size(&mut self) -> u64 {
        [0x1000, 0x2000, 0x20_0000, 0x1000][self.rng.gen_range(0..4)]
    }
    fn pa(&mut self) -> u64 {
        // Physical pages far from the allocator's region; superpage-aligned sometimes.
        let base = 0x2_0000_0000u64 + self.rng.gen_range(0..64u64) * 0x20_0000;
        if self.rng.gen_bool(0.5) {
            base
        } else {
            base + self.rng.gen_range(0..512u64) * 0x1000
        }
    }

    /// The next random operation for `k`'s current state (not applied).
    pub fn next_op<O: IommuOps>(&mut self, k: &Kernel<O>) -> Op {
        match self.weights.pick(&mut self.rng) {
            0 => {
                let ty = match self.rng.gen_range(0..4) {
                    0 => DomainType::Blocked,
                    1 => DomainType::Identity,
                    2 => DomainType::Paging(Stage::First),
                    _ => DomainType::Paging(Stage::Second),
                };
                Op::DomainAlloc {
                    ty,
                    bind: DomainRef(self.fresh(0)),
                }
            }
            1 | 2 => {
                let (dev, domain) = (self.dev(), self.dom());
                Op::AttachDevice { dev, domain }
            }
            3 => {
                let dev = self.dev();
                Op::EnableDmaPasid {
                    dev,
                    bind: PasidRef(self.fresh(3)),
                }
            }
            4 => Op::DisableDmaPasid { dev: self.dev() },
            5 => {
                let (dev, domain, p) = (self.dev(), self.dom(), self.pasid(k));
                Op::AttachDevicePasid {
                    domain,
                    dev,
                    pasid: self.bindings.pasid_arg(k, p),
                }
            }
            6 => {
                let dev = self.dev();
                let att: Vec<(u32, DomainId)> = k
                    .state()
                    .devices
                    .get(&dev)
                    .map(|d| d.pasids.iter().map(|(&p, &d)| (p, d)).collect())
                    .unwrap_or_default();
                let att = (!att.is_empty()).then(|| {
                    let (p, d) = att[self.rng.gen_range(0..att.len())];
                    let d = self
                        .bindings
                        .domains
                        .iter()
                        .find(|(_, &id)| id == d)
                        .map_or(DomainArg::Id(d), |(&r, _)| DomainArg::Ref(r));
                    (self.bindings.pasid_arg(k, p), d)
                });
                Op::DetachDevicePasid { dev, att }
            }
            7..=9 => {
                let domain = self.dom();
                let iova = SLOTS[self.rng.gen_range(0..SLOTS.len())];
                let (pa, size) = (self.pa(), self.size());
                let prot = [Prot::RW, Prot::R, Prot::W][self.rng.gen_range(0..3)];
                Op::Map {
                    domain,
                    iova,
                    pa,
                    size,
                    prot,
                }
            }
            10 | 11 => {
                let domain = self.dom();
                let iova = SLOTS[self.rng.gen_range(0..SLOTS.len())];
                let size = self.size();
                let sync = self.rng.gen_bool(0.7);
                Op::Unmap {
                    domain,
                    iova,
                    size,
                    sync,
                }
            }
            12 => Op::IotlbSync { domain: self.dom() },
            13 => {
                let dev = self.dev();
                let pa = self.pa() + self.rng.gen_range(0..0x1000);
                let len = self.rng.gen_range(1..0x3000);
                let dir = [
                    DmaDirection::Bidirectional,
                    DmaDirection::ToDevice,
                    DmaDirection::FromDevice,
                ][self.rng.gen_range(0..3)];
                Op::DmaMapSingle {
                    dev,
                    pa,
                    len,
                    dir,
                    bind: DmaRef(self.fresh(2)),
                }
            }
            14 => {
                let map = (!self.dma.is_empty())
                    .then(|| self.dma.swap_remove(self.rng.gen_range(0..self.dma.len())));
                Op::DmaUnmapSingle { map }
            }
            15 => Op::MmCreate {
                bind: MmRef(self.fresh(1)),
            },
            16 => {
                let mm = self.mm();
                let va = SLOTS[self.rng.gen_range(0..SLOTS.len())];
                let (pa, size) = (self.pa(), self.size());
                let prot = MmProt {
                    write: self.rng.gen_bool(0.5),
                    exec: self.rng.gen_bool(0.2),
                    user: self.rng.gen_bool(0.85),
                };
                Op::MmMap {
                    mm,
                    va,
                    pa,
                    size,
                    prot,
                }
            }
            17 => {
                let mm = self.mm();
                let va = SLOTS[self.rng.gen_range(0..SLOTS.len())];
                let size = self.size();
                Op::MmUnmap { mm, va, size }
            }
            18 => {
                let (dev, mm) = (self.dev(), self.mm());
                Op::SvaBind {
                    dev,
                    mm,
                    bind: PasidRef(self.fresh(3)),
                }
            }
            _ => {
                let (dev, mm) = (self.dev(), self.mm());
                Op::SvaUnbind { dev, mm }
            }
        }
    }

    /// Applies an operation [`Stimulus::next_op`] generated, updating what later
    /// operations and requests are drawn from; returns its log line (also appended to
    /// `log`).
    pub fn apply<O: IommuOps>(&mut self, op: &Op, k: &mut Kernel<O>) -> String {
        let a = apply_detailed(op, k, &mut self.bindings);
        let ok = !a.skipped && a.result.is_ok();
        match *op {
            Op::Map { iova, size, .. } if ok => {
                self.hot.push(iova + size - 0x1000);
                self.hot.push(iova);
            }
            Op::DmaMapSingle { bind, .. } if ok => {
                self.dma.push(bind);
                self.hot.push(a.result.unwrap_or(0) & !0xFFF);
            }
            Op::MmMap { va, .. } if ok => self.hot.push(va),
            _ => {}
        }
        self.log.push(a.desc.clone());
        a.desc
    }

    /// One random operation on `k`; its result is logged, errors are expected values.
    pub fn step<O: IommuOps>(&mut self, k: &mut Kernel<O>) -> Op {
        let op = self.next_op(k);
        self.apply(&op, k);
        op
    }

    /// A request through an existing attachment at one of its domain's mappings (or a
    /// recently mapped address).
    fn coherent_request<O: IommuOps>(&mut self, k: &Kernel<O>) -> Option<Request> {
        let st = k.state();
        let mut paths: Vec<(u16, Option<u32>, DomainId)> = Vec::new();
        for (&r, d) in &st.devices {
            if let Some(id) = d.rid_domain {
                paths.push((r, None, id));
            }
            for (&p, &id) in &d.pasids {
                paths.push((r, Some(p), id));
            }
        }
        if paths.is_empty() {
            return None;
        }
        let (r, pasid, id) = paths[self.rng.gen_range(0..paths.len())];
        let dom = st.domains.get(&id)?;
        let mut targets: Vec<(u64, u64)> = dom.mappings.iter().map(|(&v, m)| (v, m.size)).collect();
        if let DomainType::Sva(mm) = dom.ty {
            targets.extend(st.mms.get(&mm)?.mappings.iter().map(|(&v, m)| (v, m.size)));
        }
        let addr = if !targets.is_empty() && self.rng.gen_bool(0.8) {
            let (v, size) = targets[self.rng.gen_range(0..targets.len())];
            v + self.rng.gen_range(0..size / 8) * 8
        } else if !self.hot.is_empty() {
            self.hot[self.rng.gen_range(0..self.hot.len())] + self.rng.gen_range(0..0x200u64) * 8
        } else {
            self.rng.gen_range(0..1u64 << 32) & !7
        };
        Some(Request {
            rid: r,
            pasid,
            pmr: false,
            er: false,
            addr,
            len: 8,
            write: self.rng.gen_bool(0.5),
        })
    }

    /// A request aimed at something interesting most of the time.
    pub fn request<O: IommuOps>(&mut self, k: &Kernel<O>) -> Request {
        if self.rng.gen_bool(0.5) {
            if let Some(r) = self.coherent_request(k) {
                return r;
            }
        }
        let r = self.rng.gen_range(0..10);
        let dev = if r == 0 { rid(9, 1, 0) } else { self.dev() };
        let pasid = match self.rng.gen_range(0..3) {
            0 => None,
            _ => Some(self.pasid(k)),
        };
        let addr = match self.rng.gen_range(0..12) {
            8..=11 if !self.hot.is_empty() => {
                self.hot[self.rng.gen_range(0..self.hot.len())]
                    + self.rng.gen_range(0..0x200u64) * 8
            }
            0 => self.rng.gen::<u64>() & !7,
            1 => 0xFFFF_8000_0000_0000 | (self.rng.gen::<u64>() & 0x7FFF_FFFF_FFF8),
            2 => (1 << 48) + 0x1000,
            _ => SLOTS[self.rng.gen_range(0..SLOTS.len())] + self.rng.gen_range(0..0x800u64) * 8,
        } & !7;
        let pmr = pasid.is_some() && self.rng.gen_ratio(1, 20);
        let er = pasid.is_some() && self.rng.gen_ratio(1, 20);
        Request {
            rid: dev,
            pasid,
            pmr,
            er,
            addr,
            len: 8,
            write: self.rng.gen_bool(0.5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_weights_pick_like_a_uniform_draw_of_twenty() {
        // Slot n of the generator was drawn as `gen_range(0..20)`; the default weights must
        // map every draw to the same slot so existing seeds keep their sequences.
        let w = Weights::default();
        let want = [
            0u32, 1, 1, 3, 4, 5, 6, 7, 7, 7, 10, 10, 12, 13, 14, 15, 16, 17, 18, 19,
        ];
        let mut a = ChaCha8Rng::seed_from_u64(9);
        let mut b = ChaCha8Rng::seed_from_u64(9);
        for _ in 0..2000 {
            let draw = b.gen_range(0..20u32) as usize;
            assert_eq!(w.pick(&mut a), want[draw]);
        }
    }

    #[test]
    fn weights_parse_and_reject() {
        let w = Weights::parse("map=6, unmap=0,sva_bind=2").expect("valid");
        assert_eq!((w.map, w.unmap, w.sva_bind, w.attach_device), (6, 0, 2, 2));
        assert!(Weights::parse("mapp=1")
            .unwrap_err()
            .contains("unknown operation `mapp`"));
        assert!(Weights::parse("map")
            .unwrap_err()
            .contains("expected name=weight"));
        assert!(Weights::parse("map=-1")
            .unwrap_err()
            .contains("whole number"));
        let all_zero: Vec<String> = Weights::default()
            .entries()
            .iter()
            .map(|(n, _)| format!("{n}=0"))
            .collect();
        assert!(Weights::parse(&all_zero.join(",")).is_err());
        // A zero weight leaves the kind out.
        let w = Weights::parse("map=0").expect("valid");
        let mut r = ChaCha8Rng::seed_from_u64(1);
        assert!((0..5000).all(|_| w.pick(&mut r) != 7));
    }
}
