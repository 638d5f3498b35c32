//! The seeded generator: operations drawn by [`Weights`] with arguments chosen so that
//! domains get attached and mapped, and requests aimed mostly at live mappings (through
//! the RID and through attached PASIDs), the rest at faults of every kind the driver's
//! tables can produce.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::weights::kind;
use super::{Bindings, DmaRef, DomainArg, DomainRef, MmRef, Op, PasidRef, Weights, DEVS, SLOTS};
use crate::golden::{AddrType, Request};
use crate::kernel::dma::DmaDirection;
use crate::kernel::{
    rid, DeviceDesc, DomainId, DomainType, Errno, FpdAt, IommuOps, Kernel, MemErrAt, MmProt, Prot,
    Stage, State,
};

/// 1 GiB-aligned IOVAs and VAs that 1 GiB mappings go to.
pub const HUGE_SLOTS: [u64; 2] = [0x4000_0000, 0x80_0000_0000];

const GIB: u64 = 1 << 30;

/// Requesters with no context entry on buses that have a context table (02:02.0 and
/// 01:00.1 have no device; 01:10.0 lies in the upper half of bus 1).
const NO_CONTEXT: [u16; 3] = [0x0210, 0x0101, 0x0181];

/// An address no sequence maps (canonical, below the host address width).
const UNMAPPED: u64 = 0x5555_0000_0000;

/// A request path: requester, PASID prefix, and what the kernel has attached there.
#[derive(Clone, Copy, Debug)]
struct Path {
    rid: u16,
    pasid: Option<u32>,
    ty: Option<DomainType>,
    dom: Option<DomainId>,
}

/// A leaf a path reaches: (address, size, readable, writable).
type Target = (u64, u64, bool, bool);

/// The FPD change in progress: set by one operation, cleared by the next.
#[derive(Clone, Copy, Debug)]
struct FpdSet {
    dev: u16,
    at: FpdAt,
    /// The next request probes a fault through the structure (it is judged exactly: no
    /// window is open and it is not sent during an operation).
    probe: bool,
}

/// A seeded generator; `log` holds every operation with its result, in order.
///
/// The next operation's kind is drawn as soon as the previous one is applied, so the
/// requests sent before (and during) an operation that sets FPD can stay away from its
/// device: a fault whose recording FPD suppresses can only be judged outside windows.
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
    /// The next operation's kind, and for FPD its device.
    upcoming: Option<(usize, u16)>,
    fpd: Option<FpdSet>,
    /// A memory error is injected: the next operation ends it. Holds the request that
    /// probes it, until that request is drawn.
    poisoned: Option<Option<Request>>,
    /// Recent requests that translated when generated, to be repeated (IOTLB hits).
    recent: Vec<Request>,
    /// Draws which requests become ATS requests; a stream of its own, so the operations
    /// and the other requests of a seed do not depend on it.
    ats_rng: ChaCha8Rng,
    pub log: Vec<String>,
}

/// The device of [`DEVS`] with an ATS capability (the driver sets DTE = 1 for it).
pub const ATS_DEV: u16 = 0x0180;

/// Percent of the generated requests of [`ATS_DEV`] sent as ATS Translation Requests, and as
/// translated requests (AT = 10b); of the other devices (DTE = 0: UR or blocked, 0x44),
/// a few, so that most of the mix still translates.
pub const ATS_TRANSLATION_REQUEST_PCT: [u32; 2] = [16, 2];
pub const ATS_TRANSLATED_PCT: [u32; 2] = [9, 1];

impl Stimulus {
    pub fn new(seed: u64) -> Self {
        Self::with_weights(seed, Weights::default())
    }

    /// A generator with its own operation mix.
    pub fn with_weights(seed: u64, weights: Weights) -> Self {
        let mut s = Self {
            weights,
            rng: ChaCha8Rng::seed_from_u64(seed),
            bindings: Bindings::default(),
            made: [0; 4],
            dma: Vec::new(),
            hot: Vec::new(),
            upcoming: None,
            fpd: None,
            poisoned: None,
            recent: Vec::new(),
            ats_rng: ChaCha8Rng::seed_from_u64(seed ^ 0xA75_A75A),
            log: Vec::new(),
        };
        let which = s.weights.pick(&mut s.rng);
        let dev = s.dev();
        s.upcoming = Some((which, dev));
        s
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
                ats: r == ATS_DEV,
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
    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        (!v.is_empty()).then(|| v[self.rng.gen_range(0..v.len())])
    }
    fn dom(&mut self) -> Option<DomainRef> {
        let keys: Vec<DomainRef> = self.bindings.domains.keys().copied().collect();
        self.pick(&keys)
    }
    /// A paging domain, preferring attached ones (`attached`) most of the time.
    fn paging_dom<O: IommuOps>(&mut self, k: &Kernel<O>, attached: bool) -> Option<DomainRef> {
        let st = k.state();
        let used = |id: DomainId| {
            st.devices
                .values()
                .any(|d| d.rid_domain == Some(id) || d.pasids.values().any(|&x| x == id))
        };
        let cands: Vec<DomainRef> = self
            .bindings
            .domains
            .iter()
            .filter(|(_, id)| {
                st.domains
                    .get(id)
                    .is_some_and(|d| matches!(d.ty, DomainType::Paging(_)))
                    && (!attached || used(**id))
            })
            .map(|(&r, _)| r)
            .collect();
        if !cands.is_empty() && self.rng.gen_bool(0.8) {
            self.pick(&cands)
        } else {
            self.dom()
        }
    }
    fn mm(&mut self) -> Option<MmRef> {
        let keys: Vec<MmRef> = self.bindings.mms.keys().copied().collect();
        self.pick(&keys)
    }
    fn pasid<O: IommuOps>(&mut self, k: &Kernel<O>) -> u32 {
        match self.rng.gen_range(0..4) {
            0 => 0,
            1 => self.rng.gen_range(1..8),
            _ => {
                let held: Vec<u32> = k.global_pasids().iter().copied().collect();
                self.pick(&held).unwrap_or(1)
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
    /// (address, pa, size) of a mapping: one in six is a 1 GiB-aligned, 1 GiB-sized range
    /// (a single 1 GiB leaf where the hardware advertises 1 GiB pages, `iommu_pgsize()`).
    fn range(&mut self) -> (u64, u64, u64) {
        if self.rng.gen_ratio(1, 6) {
            let at = HUGE_SLOTS[self.rng.gen_range(0..HUGE_SLOTS.len())];
            (at, self.rng.gen_range(8..64u64) * GIB, GIB)
        } else {
            let at = SLOTS[self.rng.gen_range(0..SLOTS.len())];
            let (pa, size) = (self.pa(), self.size());
            (at, pa, size)
        }
    }

    /// The next random operation for `k`'s current state (not applied).
    pub fn next_op<O: IommuOps>(&mut self, k: &Kernel<O>) -> Op {
        if self.poisoned.is_some() {
            return Op::ClearMemErrors;
        }
        if let Some(f) = self.fpd {
            return Op::SetFpd {
                dev: f.dev,
                at: f.at,
                disable: false,
            };
        }
        let (mut which, fpd_dev) = match self.upcoming.take() {
            Some(u) => u,
            None => (self.weights.pick(&mut self.rng), self.dev()),
        };
        if let Some(b) = self.bootstrap(k) {
            which = b;
        }
        match which {
            kind::DOMAIN_ALLOC => {
                let ty = match self.rng.gen_range(0..6) {
                    0 => DomainType::Blocked,
                    1 => DomainType::Identity,
                    2 | 3 => DomainType::Paging(Stage::First),
                    _ => DomainType::Paging(Stage::Second),
                };
                Op::DomainAlloc {
                    ty,
                    bind: DomainRef(self.fresh(0)),
                }
            }
            kind::ATTACH_DEVICE => {
                let dev = self.dev();
                let domain = if self.rng.gen_bool(0.5) {
                    self.paging_dom(k, false)
                } else {
                    self.dom()
                };
                Op::AttachDevice { dev, domain }
            }
            kind::ENABLE_DMA_PASID => {
                let dev = self.dev();
                Op::EnableDmaPasid {
                    dev,
                    bind: PasidRef(self.fresh(3)),
                }
            }
            kind::DISABLE_DMA_PASID => Op::DisableDmaPasid { dev: self.dev() },
            kind::ATTACH_DEVICE_PASID => {
                let dev = self.dev();
                let domain = if self.rng.gen_bool(0.5) {
                    self.paging_dom(k, false)
                } else {
                    self.dom()
                };
                let p = self.pasid(k);
                Op::AttachDevicePasid {
                    domain,
                    dev,
                    pasid: self.bindings.pasid_arg(k, p),
                }
            }
            kind::DETACH_DEVICE_PASID => {
                let dev = self.dev();
                let att: Vec<(u32, DomainId)> = k
                    .state()
                    .devices
                    .get(&dev)
                    .map(|d| d.pasids.iter().map(|(&p, &d)| (p, d)).collect())
                    .unwrap_or_default();
                let att = self.pick(&att).map(|(p, d)| {
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
            kind::MAP => {
                let domain = self.paging_dom(k, true);
                let (iova, pa, size) = self.range();
                let prot = [Prot::RW, Prot::RW, Prot::R, Prot::W][self.rng.gen_range(0..4)];
                Op::Map {
                    domain,
                    iova,
                    pa,
                    size,
                    prot,
                }
            }
            kind::UNMAP => {
                let domain = self.paging_dom(k, true);
                let iova = if self.rng.gen_ratio(1, 5) {
                    HUGE_SLOTS[self.rng.gen_range(0..HUGE_SLOTS.len())]
                } else {
                    SLOTS[self.rng.gen_range(0..SLOTS.len())]
                };
                let size = self.size();
                let sync = self.rng.gen_bool(0.7);
                Op::Unmap {
                    domain,
                    iova,
                    size,
                    sync,
                }
            }
            kind::IOTLB_SYNC => Op::IotlbSync { domain: self.dom() },
            kind::DMA_MAP_SINGLE => {
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
            kind::DMA_UNMAP_SINGLE => {
                let map = (!self.dma.is_empty())
                    .then(|| self.dma.swap_remove(self.rng.gen_range(0..self.dma.len())));
                Op::DmaUnmapSingle { map }
            }
            kind::MM_CREATE => Op::MmCreate {
                bind: MmRef(self.fresh(1)),
            },
            kind::MM_MAP => {
                let mm = self.mm();
                let (va, pa, size) = self.range();
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
            kind::MM_UNMAP => {
                let mm = self.mm();
                let va = SLOTS[self.rng.gen_range(0..SLOTS.len())];
                let size = self.size();
                Op::MmUnmap { mm, va, size }
            }
            kind::SVA_BIND => {
                let (dev, mm) = (self.dev(), self.mm());
                Op::SvaBind {
                    dev,
                    mm,
                    bind: PasidRef(self.fresh(3)),
                }
            }
            kind::SVA_UNBIND => {
                let (dev, mm) = (self.dev(), self.mm());
                Op::SvaUnbind { dev, mm }
            }
            kind::FPD if k.windows().is_empty() => {
                let at = self.fpd_target(k.state(), fpd_dev);
                Op::SetFpd {
                    dev: fpd_dev,
                    at,
                    disable: true,
                }
            }
            kind::MEM_ERROR => match self.mem_error_target(k.state()) {
                Some((dev, at)) => Op::MemError { dev, at },
                None => Op::SetRootEntry,
            },
            // FPD with a window open (its probe could not be judged exactly) re-programs
            // the root entry instead.
            kind::FPD | kind::SET_ROOT_ENTRY => Op::SetRootEntry,
            _ => Op::SetRootEntry,
        }
    }

    /// While no path has a live mapping, most operations build one instead of the kind
    /// drawn: a paging domain, then an attachment, then a mapping (kinds with weight 0
    /// stay out).
    fn bootstrap<O: IommuOps>(&mut self, k: &Kernel<O>) -> Option<usize> {
        let st = k.state();
        let live = Self::paths(st)
            .iter()
            .any(|p| p.ty.is_some_and(|t| t.translates()) && !Self::targets(st, p).is_empty());
        if live || !self.rng.gen_bool(0.75) {
            return None;
        }
        let paging = |id: &DomainId| {
            st.domains
                .get(id)
                .is_some_and(|d| matches!(d.ty, DomainType::Paging(_)))
        };
        let have = self.bindings.domains.values().any(paging);
        let attached = st
            .devices
            .values()
            .any(|d| d.rid_domain.as_ref().is_some_and(paging) || d.pasids.values().any(paging));
        let w = self.weights;
        [
            (!have, kind::DOMAIN_ALLOC, w.domain_alloc),
            (!attached, kind::ATTACH_DEVICE, w.attach_device),
            (true, kind::MAP, w.map),
        ]
        .into_iter()
        .find(|&(need, _, wt)| need && wt > 0)
        .map(|(_, kind, _)| kind)
    }

    /// Where a memory error goes: mostly a structure on a translating path (a page of its
    /// page table at a live address, its PASID table or directory), sometimes the context
    /// table of its bus or the root table.
    fn mem_error_target(&mut self, st: &State) -> Option<(u16, MemErrAt)> {
        let paths: Vec<Path> = Self::paths(st)
            .into_iter()
            .filter(|p| p.ty.is_some_and(|t| t.translates()))
            .collect();
        let p = self.pick(&paths)?;
        let pasid = p.pasid.unwrap_or(0);
        let paging = matches!(p.ty, Some(DomainType::Paging(_)));
        let targets = Self::targets(st, &p);
        let at = match self.rng.gen_range(0..10) {
            0 => MemErrAt::RootTable,
            1 | 2 => MemErrAt::ContextTable,
            3 | 4 => MemErrAt::PasidDir,
            5 | 6 => MemErrAt::PasidTable(pasid >> 6),
            _ if paging && !targets.is_empty() => {
                let (va, size, _, _) = targets[self.rng.gen_range(0..targets.len())];
                let leaf_level = match size {
                    s if s >= 1 << 30 => 3,
                    s if s >= 1 << 21 => 2,
                    _ => 1,
                };
                MemErrAt::PageTable {
                    pasid,
                    level: self.rng.gen_range(leaf_level..=4),
                    addr: va + self.rng.gen_range(0..size.min(1 << 21) / 8) * 8,
                }
            }
            _ => MemErrAt::PasidTable(pasid >> 6),
        };
        Some((p.rid, at))
    }

    /// The request that reads the page a memory error at `at` of `dev` poisons.
    fn mem_error_probe(&mut self, st: &State, dev: u16, at: MemErrAt) -> Request {
        let mut r = Request::read(dev, UNMAPPED, 8);
        r.write = self.rng.gen_bool(0.5);
        let pasids = st
            .devices
            .get(&dev)
            .map_or(0, |d| d.desc.max_pasids.min(1 << 15));
        match at {
            MemErrAt::RootTable | MemErrAt::ContextTable => {}
            MemErrAt::PasidDir if pasids > 1 && self.rng.gen_bool(0.5) => {
                r.pasid = Some(self.rng.gen_range(1..pasids));
            }
            MemErrAt::PasidDir => {}
            MemErrAt::PasidTable(dir) => {
                let p = (dir << 6) | self.rng.gen_range(0..64);
                r.pasid = (p != 0 && p < pasids.max(1)).then_some(p);
            }
            MemErrAt::PageTable { pasid, addr, .. } => {
                r.pasid = (pasid != 0).then_some(pasid);
                r.addr = addr;
            }
        }
        r
    }

    /// Which of `dev`'s structures gets FPD: its context entry, or the directory entry or
    /// PASID-table entry of something attached.
    fn fpd_target(&mut self, st: &State, dev: u16) -> FpdAt {
        let mut present: Vec<u32> = Vec::new();
        if let Some(d) = st.devices.get(&dev) {
            if st
                .domain_for(dev, None)
                .is_some_and(|(_, x)| x.ty.translates())
            {
                present.push(0);
            }
            present.extend(d.pasids.keys().copied());
        }
        match (self.rng.gen_range(0..3), self.pick(&present)) {
            (1, Some(p)) => FpdAt::PasidDir(p >> 6),
            (2, Some(p)) => FpdAt::PasidEntry(p),
            _ => FpdAt::Context,
        }
    }

    /// Applies an operation [`Stimulus::next_op`] generated, updating what later
    /// operations and requests are drawn from; returns its log line (also appended to
    /// `log`).
    pub fn apply<O: IommuOps>(&mut self, op: &Op, k: &mut Kernel<O>) -> String {
        let a = super::apply_detailed(op, k, &mut self.bindings);
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
        self.poisoned = match *op {
            Op::MemError { dev, at } if ok => Some(Some(self.mem_error_probe(k.state(), dev, at))),
            _ => None,
        };
        self.fpd = match *op {
            Op::SetFpd {
                dev,
                at,
                disable: true,
            } if ok => Some(FpdSet {
                dev,
                at,
                probe: true,
            }),
            _ => None,
        };
        if self.fpd.is_none() {
            let which = self.weights.pick(&mut self.rng);
            let dev = self.dev();
            self.upcoming = Some((which, dev));
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

    /// Every path requests can take with what is attached there.
    fn paths(st: &State) -> Vec<Path> {
        let mut v = Vec::new();
        for (&r, d) in &st.devices {
            let ty = |id: DomainId| st.domains.get(&id).map(|x| x.ty);
            v.push(Path {
                rid: r,
                pasid: None,
                ty: d.rid_domain.and_then(ty),
                dom: d.rid_domain,
            });
            for (&p, &id) in &d.pasids {
                v.push(Path {
                    rid: r,
                    pasid: Some(p),
                    ty: ty(id),
                    dom: Some(id),
                });
            }
        }
        v
    }

    /// The leaves reachable through `p`: (address, size, read, write).
    fn targets(st: &State, p: &Path) -> Vec<Target> {
        let Some(dom) = p.dom.and_then(|id| st.domains.get(&id)) else {
            return Vec::new();
        };
        match dom.ty {
            DomainType::Paging(s) => dom
                .mappings
                .iter()
                .map(|(&v, m)| (v, m.size, m.prot.read || s == Stage::First, m.prot.write))
                .collect(),
            DomainType::Sva(mm) => st
                .mms
                .get(&mm)
                .map(|m| {
                    m.mappings
                        .iter()
                        .map(|(&v, x)| (v, x.size, x.prot.user, x.prot.user && x.prot.write))
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    fn req(&mut self, p: &Path, addr: u64) -> Request {
        Request {
            rid: p.rid,
            pasid: p.pasid,
            pmr: false,
            er: false,
            addr: addr & !7,
            len: 8,
            write: self.rng.gen_bool(0.5),
            at: AddrType::Untranslated,
        }
    }

    /// A request through a translating path at one of its live leaves (or, for
    /// pass-through, at an address below the host address width).
    fn live_request(&mut self, st: &State) -> Option<Request> {
        let paths: Vec<(Path, Vec<Target>)> = Self::paths(st)
            .into_iter()
            .filter(|p| p.ty.is_some_and(|t| t.translates()))
            .map(|p| (p, Self::targets(st, &p)))
            .filter(|(p, t)| p.ty == Some(DomainType::Identity) || !t.is_empty())
            .collect();
        if paths.is_empty() {
            return None;
        }
        let (p, targets) = &paths[self.rng.gen_range(0..paths.len())];
        let addr = match self.pick(targets) {
            Some((v, size, r, w)) => {
                let a = v + self.rng.gen_range(0..size / 8) * 8;
                let mut q = self.req(p, a);
                // Mostly what the leaf allows: a write to a read-only page is a fault case.
                if self.rng.gen_bool(0.85) {
                    q.write = match (r, w) {
                        (true, false) => false,
                        (false, true) => true,
                        _ => q.write,
                    };
                }
                return Some(q);
            }
            None => match self.pick(&self.hot.clone()) {
                Some(h) if self.rng.gen_bool(0.7) => h + self.rng.gen_range(0..0x200u64) * 8,
                _ => self.rng.gen_range(0..1u64 << 48),
            },
        };
        Some(self.req(p, addr))
    }

    /// A request aimed at a fault, through the RID or a PASID, of one of the kinds the
    /// driver's tables can produce.
    fn fault_request<O: IommuOps>(&mut self, k: &Kernel<O>) -> Request {
        let st = k.state();
        let paths = Self::paths(st);
        let via_pasid = self.rng.gen_bool(0.5);
        let pasid_dev = [0x0100u16, 0x0180, 0x0300][self.rng.gen_range(0..3)];
        let some_pasid = |s: &mut Self| -> Option<u32> { via_pasid.then(|| s.rng.gen_range(1..4)) };
        let mut r = Request::read(self.dev(), 0, 8);
        r.write = self.rng.gen_bool(0.5);
        r.addr = self.rng.gen_range(0..0x1_0000u64) << 12;
        let on = |s: &mut Self, want: &dyn Fn(&Path) -> bool| -> Option<Path> {
            let v: Vec<Path> = paths
                .iter()
                .filter(|p| want(p) && (p.pasid.is_some() == via_pasid || s.rng.gen_ratio(1, 4)))
                .copied()
                .collect();
            s.pick(&v)
        };
        match self.rng.gen_range(0..11) {
            // No root entry (bus 9 has no context table).
            0 => {
                r.rid = rid(9, 1, 0);
                r.pasid = some_pasid(self);
            }
            // No context entry on a bus that has a context table.
            1 => {
                r.rid = NO_CONTEXT[self.rng.gen_range(0..NO_CONTEXT.len())];
                r.pasid = some_pasid(self);
            }
            // A PASID prefix to the function without the PASID capability.
            2 => {
                r.rid = 0x0208;
                r.pasid = Some(self.rng.gen_range(1..0x10_0000));
            }
            // A PASID beyond the device's PASID directory.
            3 => {
                r.rid = pasid_dev;
                r.pasid = Some(self.rng.gen_range(0x1_0000..0x10_0000));
            }
            // Nothing attached: a blocked RID, or a PASID with no entry.
            4 => {
                r.rid = pasid_dev;
                r.pasid = Some(self.rng.gen_range(1..64));
                let blocked: Vec<u16> = st
                    .devices
                    .iter()
                    .filter(|(_, d)| d.rid_domain.is_none())
                    .map(|(&r, _)| r)
                    .collect();
                if !via_pasid {
                    if let Some(b) = self.pick(&blocked) {
                        (r.rid, r.pasid) = (b, None);
                    }
                }
            }
            // Execute / privileged requests (Linux sets neither ERE nor SRE).
            5 => {
                let p = on(self, &|p| p.pasid.is_some());
                r.rid = p.map_or(pasid_dev, |p| p.rid);
                r.pasid = Some(p.and_then(|p| p.pasid).unwrap_or(1));
                (r.pmr, r.er) =
                    [(true, false), (false, true), (true, true)][self.rng.gen_range(0..3)];
            }
            // Non-canonical through a first-stage table.
            6 => {
                if let Some(p) = on(self, &|p| p.ty.is_some_and(|t| t.first_stage())) {
                    (r.rid, r.pasid) = (p.rid, p.pasid);
                }
                r.addr = 0x8000_0000_0000 | (self.rng.gen::<u64>() & 0x7FFF_FFFF_F000);
            }
            // Beyond the host address width (second stage and pass-through).
            7 => {
                if let Some(p) = on(self, &|p| {
                    matches!(
                        p.ty,
                        Some(DomainType::Identity | DomainType::Paging(Stage::Second))
                    )
                }) {
                    (r.rid, r.pasid) = (p.rid, p.pasid);
                }
                r.addr |= self.rng.gen_range(1..0x1_0000u64) << 48;
            }
            // Nothing mapped there.
            8 => {
                if let Some(p) = on(self, &|p| {
                    matches!(p.ty, Some(DomainType::Paging(_) | DomainType::Sva(_)))
                }) {
                    (r.rid, r.pasid) = (p.rid, p.pasid);
                }
                r.addr = UNMAPPED + (self.rng.gen_range(0..0x1000u64) << 12);
            }
            // What the leaf does not allow: a write to a read-only page, a read of a
            // write-only second-stage page, a user request to a supervisor page.
            _ => {
                let mut cands = Vec::new();
                for p in &paths {
                    for (v, _, rd, wr) in Self::targets(st, p) {
                        if !rd || !wr {
                            cands.push((*p, v, rd));
                        }
                    }
                }
                if let Some((p, v, rd)) = self.pick(&cands) {
                    (r.rid, r.pasid, r.addr) = (p.rid, p.pasid, v);
                    r.write = rd;
                }
            }
        }
        if r.pasid.is_none() {
            (r.pmr, r.er) = (false, false);
        }
        r
    }

    /// The request probing a fault through the structure that has just got FPD.
    fn fpd_probe(&mut self, st: &State, f: &FpdSet) -> Request {
        let mut r = Request::read(f.dev, UNMAPPED, 8);
        r.write = self.rng.gen_bool(0.5);
        let attached = |p: u32| {
            st.devices
                .get(&f.dev)
                .is_some_and(|d| d.pasids.contains_key(&p))
        };
        let free_in = |s: &mut Self, lo: u32| -> u32 {
            let lo = lo.max(1);
            (0..64)
                .map(|_| s.rng.gen_range(lo..lo + 63))
                .find(|&p| !attached(p))
                .unwrap_or(lo)
        };
        match f.at {
            FpdAt::Context => {
                r.pasid = Some(match st.devices.get(&f.dev).map(|d| d.desc.max_pasids) {
                    Some(0) | None => 1,
                    Some(_) => free_in(self, 1),
                });
            }
            FpdAt::PasidDir(i) => r.pasid = Some(free_in(self, i << 6)),
            FpdAt::PasidEntry(p) => {
                r.pasid = (p != 0).then_some(p);
                if st
                    .domain_for(f.dev, r.pasid)
                    .is_some_and(|(_, d)| d.ty == DomainType::Identity)
                {
                    r.addr = 1 << 48;
                }
            }
        }
        r
    }

    /// A request: mostly at a live mapping through the RID or an attached PASID (a fifth
    /// of those repeat a recent one, for IOTLB hits), otherwise at a recently mapped
    /// address through any path, or aimed at a fault.
    pub fn request<O: IommuOps>(&mut self, k: &Kernel<O>) -> Request {
        let st = k.state();
        if let Some(probe) = self.poisoned.as_mut().and_then(Option::take) {
            return probe;
        }
        if let Some(f) = self.fpd.as_mut() {
            if f.probe {
                f.probe = false;
                let f = *f;
                return self.fpd_probe(st, &f);
            }
        }
        let roll = self.rng.gen_range(0..100);
        let mut r = match roll {
            0..=13 if !self.recent.is_empty() => {
                let mut r = self.recent[self.rng.gen_range(0..self.recent.len())];
                r.addr = (r.addr & !0xFFF) | (self.rng.gen_range(0..0x200u64) * 8);
                r
            }
            0..=69 => match self.live_request(st) {
                Some(r) => {
                    if crate::oracle::eval(st, &r)
                        .iter()
                        .any(|o| matches!(o, crate::golden::Outcome::Translated(_)))
                    {
                        if self.recent.len() >= 8 {
                            self.recent.remove(0);
                        }
                        self.recent.push(r);
                    }
                    r
                }
                None => self.fault_request(k),
            },
            70..=79 => self.hot_request(k),
            _ => self.fault_request(k),
        };
        // Stay away from the device whose FPD is set (or is about to be): its faults are
        // not recorded, which only an exact judgement tells apart.
        let avoid = self.fpd.map(|f| f.dev).or(match self.upcoming {
            Some((kind::FPD, d)) => Some(d),
            _ => None,
        });
        if avoid == Some(r.rid) {
            let others: Vec<u16> = DEVS.iter().map(|d| d.0).filter(|&d| d != r.rid).collect();
            r.rid = others[self.rng.gen_range(0..others.len())];
            (r.pasid, r.pmr, r.er) = (None, false, false);
        }
        let i = usize::from(r.rid != ATS_DEV);
        let ats = self.ats_rng.gen_range(0..100);
        if ats < ATS_TRANSLATION_REQUEST_PCT[i] {
            r.at = AddrType::TranslationRequest;
            r.write = false;
        } else if ats < ATS_TRANSLATION_REQUEST_PCT[i] + ATS_TRANSLATED_PCT[i] {
            r.at = AddrType::Translated;
        }
        r
    }

    /// A request at a recently mapped address (or a slot) through any device and PASID.
    fn hot_request<O: IommuOps>(&mut self, k: &Kernel<O>) -> Request {
        let dev = self.dev();
        let pasid = match self.rng.gen_range(0..3) {
            0 => None,
            _ => Some(self.pasid(k)),
        };
        let addr = match self.pick(&self.hot.clone()) {
            Some(h) if self.rng.gen_bool(0.7) => h + self.rng.gen_range(0..0x200u64) * 8,
            _ => SLOTS[self.rng.gen_range(0..SLOTS.len())] + self.rng.gen_range(0..0x800u64) * 8,
        };
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
            at: AddrType::Untranslated,
        }
    }
}
