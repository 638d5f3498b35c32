//! Seeded random kernel-API sequences and requests: domains of every type, RID and PASID
//! attachments, `enable_dma_pasid`, map/unmap with and without `iotlb_sync`, the DMA API,
//! SVA binds and CPU-side mm changes, and requests aimed mostly at what is (or was) mapped.
//! The model's property tests drive the golden hardware with it; the testbench drives the
//! RTL with the same sequences.

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

/// A seeded generator; `log` holds every operation with its result, in order.
#[derive(Debug)]
pub struct Stimulus {
    rng: ChaCha8Rng,
    domains: Vec<DomainId>,
    mms: Vec<MmId>,
    dma: Vec<(u16, u64, u64)>,
    /// Addresses that were mapped at some point: requests aim at them before and after.
    hot: Vec<u64>,
    pub log: Vec<String>,
}

impl Stimulus {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            domains: Vec::new(),
            mms: Vec::new(),
            dma: Vec::new(),
            hot: Vec::new(),
            log: Vec::new(),
        }
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

    fn dev(&mut self) -> u16 {
        DEVS[self.rng.gen_range(0..DEVS.len())].0
    }
    fn dom(&mut self) -> Option<DomainId> {
        (!self.domains.is_empty()).then(|| self.domains[self.rng.gen_range(0..self.domains.len())])
    }
    fn mm(&mut self) -> Option<MmId> {
        (!self.mms.is_empty()).then(|| self.mms[self.rng.gen_range(0..self.mms.len())])
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

    /// One random operation on `k`; its result is logged, errors are expected values.
    pub fn step<O: IommuOps>(&mut self, k: &mut Kernel<O>) {
        let op = self.rng.gen_range(0..20);
        let desc;
        match op {
            0 => {
                let ty = match self.rng.gen_range(0..4) {
                    0 => DomainType::Blocked,
                    1 => DomainType::Identity,
                    2 => DomainType::Paging(Stage::First),
                    _ => DomainType::Paging(Stage::Second),
                };
                let r = k.domain_alloc(ty);
                if let Ok(d) = r {
                    self.domains.push(d);
                }
                desc = format!("domain_alloc({ty}) = {r:?}");
            }
            1 | 2 => {
                let (dev, d) = (self.dev(), self.dom());
                let r = d.map(|d| k.attach_device(dev, d));
                desc = format!("attach_device({dev:#x}, {d:?}) = {r:?}");
            }
            3 => {
                let dev = self.dev();
                desc = format!("enable_dma_pasid({dev:#x}) = {:?}", k.enable_dma_pasid(dev));
            }
            4 => {
                let dev = self.dev();
                desc = format!(
                    "disable_dma_pasid({dev:#x}) = {:?}",
                    k.disable_dma_pasid(dev)
                );
            }
            5 => {
                let (dev, d, p) = (self.dev(), self.dom(), self.pasid(k));
                let r = d.map(|d| k.attach_device_pasid(d, dev, p));
                desc = format!("attach_device_pasid({d:?}, {dev:#x}, {p}) = {r:?}");
            }
            6 => {
                let dev = self.dev();
                let att: Vec<(u32, DomainId)> = k.state().devices[&dev]
                    .pasids
                    .iter()
                    .map(|(&p, &d)| (p, d))
                    .collect();
                let r = if att.is_empty() {
                    None
                } else {
                    let (p, d) = att[self.rng.gen_range(0..att.len())];
                    Some((p, d, k.detach_device_pasid(d, dev, p)))
                };
                desc = format!("detach_device_pasid({dev:#x}) = {r:?}");
            }
            7..=9 => {
                let d = self.dom();
                let iova = SLOTS[self.rng.gen_range(0..SLOTS.len())];
                let (pa, size) = (self.pa(), self.size());
                let prot = [Prot::RW, Prot::R, Prot::W][self.rng.gen_range(0..3)];
                let r = d.map(|d| k.map(d, iova, pa, size, prot));
                if let Some(Ok(())) = r {
                    self.hot.push(iova + size - 0x1000);
                    self.hot.push(iova);
                }
                desc = format!("map({d:?}, {iova:#x}, {pa:#x}, {size:#x}, {prot:?}) = {r:?}");
            }
            10 | 11 => {
                let d = self.dom();
                let iova = SLOTS[self.rng.gen_range(0..SLOTS.len())];
                let size = self.size();
                let sync = self.rng.gen_bool(0.7);
                let r = d.map(|d| {
                    let u = k.unmap(d, iova, size);
                    if sync {
                        (u, Some(k.iotlb_sync(d)))
                    } else {
                        (u, None)
                    }
                });
                desc = format!("unmap({d:?}, {iova:#x}, {size:#x}) sync={sync} = {r:?}");
            }
            12 => {
                let d = self.dom();
                let r = d.map(|d| k.iotlb_sync(d));
                desc = format!("iotlb_sync({d:?}) = {r:?}");
            }
            13 => {
                let dev = self.dev();
                let pa = self.pa() + self.rng.gen_range(0..0x1000);
                let len = self.rng.gen_range(1..0x3000);
                let dir = [
                    DmaDirection::Bidirectional,
                    DmaDirection::ToDevice,
                    DmaDirection::FromDevice,
                ][self.rng.gen_range(0..3)];
                let r = k.dma_map_single(dev, pa, len, dir);
                if let Ok(a) = r {
                    self.dma.push((dev, a, len));
                    self.hot.push(a & !0xFFF);
                }
                desc = format!("dma_map_single({dev:#x}, {pa:#x}, {len:#x}) = {r:x?}");
            }
            14 => {
                if self.dma.is_empty() {
                    desc = "dma_unmap_single(none)".into();
                } else {
                    let (dev, a, len) = self.dma.swap_remove(self.rng.gen_range(0..self.dma.len()));
                    desc = format!(
                        "dma_unmap_single({dev:#x}, {a:#x}) = {:?}",
                        k.dma_unmap_single(dev, a, len, DmaDirection::Bidirectional)
                    );
                }
            }
            15 => {
                let r = k.mm_create();
                if let Ok(m) = r {
                    self.mms.push(m);
                }
                desc = format!("mm_create = {r:?}");
            }
            16 => {
                let m = self.mm();
                let va = SLOTS[self.rng.gen_range(0..SLOTS.len())];
                let (pa, size) = (self.pa(), self.size());
                let prot = MmProt {
                    write: self.rng.gen_bool(0.5),
                    exec: self.rng.gen_bool(0.2),
                    user: self.rng.gen_bool(0.85),
                };
                let r = m.map(|m| k.mm_map(m, va, pa, size, prot));
                if let Some(Ok(())) = r {
                    self.hot.push(va);
                }
                desc = format!("mm_map({m:?}, {va:#x}, {pa:#x}, {size:#x}, {prot:?}) = {r:?}");
            }
            17 => {
                let m = self.mm();
                let va = SLOTS[self.rng.gen_range(0..SLOTS.len())];
                let size = self.size();
                let r = m.map(|m| k.mm_unmap(m, va, size));
                desc = format!("mm_unmap({m:?}, {va:#x}, {size:#x}) = {r:?}");
            }
            18 => {
                let (dev, m) = (self.dev(), self.mm());
                let r = m.map(|m| k.sva_bind(dev, m));
                desc = format!("sva_bind({dev:#x}, {m:?}) = {r:?}");
            }
            _ => {
                let (dev, m) = (self.dev(), self.mm());
                let r = m.map(|m| k.sva_unbind(dev, m));
                desc = format!("sva_unbind({dev:#x}, {m:?}) = {r:?}");
            }
        }
        self.log.push(desc);
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
