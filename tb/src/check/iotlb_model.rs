//! Reference model of the RTL's translation caches (rtl/iommu_pasid_cache.sv,
//! rtl/iommu_iotlb.sv, rtl/iommu_plru.sv, optionally the paging-structure caches of
//! rtl/iommu_psc.sv ([`super::psc_model`]), their use in rtl/iommu_top.sv and the descriptor
//! decode in rtl/iommu_qi.sv): for a sequence of requests and invalidations it predicts, for
//! each request, whether the PASID-entry cache and the IOTLB hit, and so how many memory
//! reads the walker makes. That count is observable at the memory port, so a test compares
//! it exactly: a predicted hit that reads memory is lost state (a replacement or an
//! invalidation removed more than it should: a precision bug, or a replacement policy that
//! is not the documented one); a predicted miss that reads nothing is state that survived
//! an invalidation that should have removed it (a completeness bug).
//!
//! What is modelled, parameterised by [`CacheConfig`] (sizes are the RTL's parameters
//! `PcacheEntries` and `IotlbEntries` of `iommu_top`, and with `psc` those of `iommu_psc`):
//!
//! - **PASID-entry cache**: fully associative, keyed by {RID, PASID of the prefix (0 and a
//!   flag without one)}, holding {DID, PASID used} (the prefix's PASID or RID_PASID).
//! - **IOTLB**: fully associative, tagged {DID, PASID used, page aligned to the leaf's size,
//!   size}.
//! - **Lookup**: the lowest matching way wins; with no match the RTL still drives "way 0"
//!   (`iommu_first_set` yields 0) and the IOTLB is looked up with the DID and PASID that
//!   way 0 of the PASID cache holds, valid or not.
//! - **Replacement**: a fill takes the lowest invalid way, else the tree-PLRU victim. The
//!   tree has `entries - 1` nodes; node n's children are 2n+1 and 2n+2; a use sets each
//!   node on the path to point away from the used way; the victim follows the pointers,
//!   most significant index bit first.
//! - **When the PLRU trees are updated** (`lk_use` in iommu_top): when a request is answered
//!   from the caches (PASID cache and IOTLB both hit), both trees mark the hitting ways;
//!   every fill marks the filled way. A PASID-cache hit whose IOTLB lookup misses leads to
//!   a page walk and does *not* update the PASID cache's tree.
//! - **Fills** after a walk: a walk from the root (PASID-cache miss) fills the PASID cache
//!   and the IOTLB; a page walk alone (PASID-cache hit, IOTLB miss) fills the IOTLB. A
//!   fill takes the valid way that already holds its tag (an IOTLB that still holds a
//!   page whose PASID-cache entry was evicted or invalidated refills that way), else it
//!   allocates: no tag is ever held twice.
//! - **Invalidations** act on valid bits only (payloads stay, as in the RTL), with the
//!   RTL's decode: context-cache global and domain-selective both remove every PASID-cache
//!   entry (the cache is not tagged by the context entry's DID: legal over-invalidation),
//!   device-selective removes the source ID under the function mask; PASID-cache by DID,
//!   by (DID, PASID) or all; IOTLB global, by DID, by DID and address range (any overlap of
//!   the entry's page with [ADDR, ADDR + 2^(12+AM))), and the PASID-based forms by (DID,
//!   PASID) with or without the range. Context-cache invalidations do not touch the IOTLB.
//!   IH (invalidation hint) only spares paging-structure entries: leaf entries are removed
//!   whatever IH says.
//! - **Paging-structure caches** (with `CacheConfig::psc`; [`super::psc_model`] says what
//!   they do): a page walk after a PASID-cache hit and an IOTLB miss resumes below the
//!   deepest cached non-leaf entry, so it reads the levels from there down to the leaf; every
//!   walk that translated fills the non-leaf levels it read. [`RTL_HAS_PSC`] says whether
//!   `iommu_top` has them, and so what [`CacheConfig::default`] is.
//!
//! Assumptions (the test keeps them; a change of the RTL that breaks one changes this
//! model, e.g. the parallel walks and paging-structure caches of a later issue):
//! - one request in the unit at a time, answered before the next is sent, and invalidations
//!   only while no request is in flight (the QI waits for an idle datapath anyway);
//! - every request translates (no fault, no pass-through domain: faults are never cached
//!   and a pass-through hit does not look at the IOTLB), and the cached permissions allow it
//!   (no re-walk after a failed permission check);
//! - the tables do not change during the sequence, so what a walk yields for a request
//!   is what the golden walker says, and the caller passes it in;
//! - a walk reads 1 root-entry, 4 context-entry, 1 PASID-directory and 8 PASID-entry
//!   quadwords, then one entry per page-table level (4 for a 4 KiB leaf, 3 for 2 MiB, 2 for
//!   1 GiB; with paging-structure caches, from the level below a cached entry), and nothing
//!   else.

use iommu_model::qi::{CcGran, Descriptor, IotlbGran, PcGran, PiotlbGran};

pub use super::psc_model::PscConfig;
use super::psc_model::{non_leaf_levels, Psc, PscKey};

/// Whether `iommu_top` instantiates the paging-structure caches (rtl/iommu_psc.sv) as
/// [`super::psc_model`] describes: [`CacheConfig::default`] models them when it does.
pub const RTL_HAS_PSC: bool = true;

/// Sizes of the caches (the RTL's `PcacheEntries` and `IotlbEntries`), powers of two, and
/// the paging-structure caches' if the unit has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    pub pcache_entries: usize,
    pub iotlb_entries: usize,
    pub psc: Option<PscConfig>,
}

impl Default for CacheConfig {
    /// The defaults of `iommu_top`'s parameters.
    fn default() -> Self {
        Self {
            pcache_entries: 8,
            iotlb_entries: 32,
            psc: RTL_HAS_PSC.then(PscConfig::default),
        }
    }
}

/// Memory reads of a walk through the scalable-mode structures before the page walk.
pub const STRUCTURE_READS: usize = 1 + 4 + 1 + 8;

/// Tree pseudo-LRU over a power-of-two number of ways (rtl/iommu_plru.sv).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plru {
    tree: Vec<bool>,
    bits: u32,
}

impl Plru {
    pub fn new(entries: usize) -> Self {
        assert!(
            entries >= 2 && entries.is_power_of_two(),
            "PLRU ways must be a power of two >= 2"
        );
        Self {
            tree: vec![false; entries - 1],
            bits: entries.trailing_zeros(),
        }
    }

    /// The way the tree points at.
    pub fn victim(&self) -> usize {
        let (mut node, mut v) = (0usize, 0usize);
        for _ in 0..self.bits {
            let b = usize::from(self.tree[node]);
            v = v << 1 | b;
            node = 2 * node + 1 + b;
        }
        v
    }

    /// Marks `way` most recently used.
    pub fn touch(&mut self, way: usize) {
        let mut node = 0usize;
        for l in 0..self.bits {
            let b = way >> (self.bits - 1 - l) & 1;
            self.tree[node] = b == 0;
            node = 2 * node + 1 + b;
        }
    }
}

/// The PASID-entry cache key: the request's RID and its prefix PASID, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PcKey {
    pub rid: u16,
    pub pasid: Option<u32>,
}

/// What the PASID-entry cache holds for a key (as far as the IOTLB, the paging-structure
/// caches and invalidation see it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PcInfo {
    pub did: u16,
    /// The PASID the translation used: the prefix's, or RID_PASID.
    pub pasid: u32,
    /// PGTT is second stage (else first stage).
    pub ss: bool,
}

impl PcInfo {
    fn psc_key(self) -> PscKey {
        PscKey {
            did: self.did,
            pasid: self.pasid,
            ss: self.ss,
        }
    }
}

/// Size of a leaf translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeafSize {
    K4,
    M2,
    G1,
}

impl LeafSize {
    /// From a leaf size in bytes.
    pub fn from_bytes(size: u64) -> Option<Self> {
        match size {
            0x1000 => Some(Self::K4),
            0x20_0000 => Some(Self::M2),
            0x4000_0000 => Some(Self::G1),
            _ => None,
        }
    }
    /// Page-number bits the leaf ignores.
    pub fn pfn_mask(self) -> u64 {
        match self {
            Self::K4 => 0,
            Self::M2 => 0x1ff,
            Self::G1 => 0x3_ffff,
        }
    }
    /// Page-table entries a walk reads to reach the leaf (4-level tables).
    pub fn levels(self) -> usize {
        match self {
            Self::K4 => 4,
            Self::M2 => 3,
            Self::G1 => 2,
        }
    }
    /// The page-table level of the leaf entry.
    pub fn level(self) -> u8 {
        match self {
            Self::K4 => 1,
            Self::M2 => 2,
            Self::G1 => 3,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TlbEntry {
    did: u16,
    pasid: u32,
    /// Page number aligned to `size`.
    page: u64,
    size: LeafSize,
}

/// One cache-invalidation command as the RTL's `inv_cmd_t` carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inv {
    PcAll,
    PcDid(u16),
    PcDidPasid(u16, u32),
    /// Source ID, with the low bits in `mask` ignored (context-cache function mask).
    PcSid(u16, u16),
    TlbAll,
    TlbDid(u16),
    /// DID, first page number of the range, AM (2^AM pages), IH.
    TlbDidPage(u16, u64, u8, bool),
    TlbDidPasid(u16, u32),
    /// DID, PASID, first page number of the range, AM, IH.
    TlbDidPasidPage(u16, u32, u64, u8, bool),
}

/// The commands a descriptor executes as, in the RTL's decode (rtl/iommu_qi.sv).
pub fn commands(d: &Descriptor) -> Vec<Inv> {
    match *d {
        Descriptor::ContextCache { gran, sid, fm, .. } => match gran {
            CcGran::Global | CcGran::Domain => vec![Inv::PcAll],
            CcGran::Device => {
                let mask = match fm & 3 {
                    0 => 0,
                    1 => 0b100,
                    2 => 0b110,
                    _ => 0b111,
                };
                vec![Inv::PcSid(sid, mask)]
            }
        },
        Descriptor::Iotlb {
            gran,
            did,
            addr,
            am,
            ih,
            ..
        } => vec![match gran {
            IotlbGran::Global => Inv::TlbAll,
            IotlbGran::Domain => Inv::TlbDid(did),
            IotlbGran::Page => Inv::TlbDidPage(did, addr >> 12, am, ih),
        }],
        Descriptor::PasidIotlb {
            gran,
            did,
            pasid,
            addr,
            am,
            ih,
        } => vec![match gran {
            PiotlbGran::Pasid => Inv::TlbDidPasid(did, pasid),
            PiotlbGran::Page => Inv::TlbDidPasidPage(did, pasid, addr >> 12, am, ih),
        }],
        Descriptor::PasidCache { gran, did, pasid } => vec![match gran {
            PcGran::Domain => Inv::PcDid(did),
            PcGran::Pasid => Inv::PcDidPasid(did, pasid),
            PcGran::Global => Inv::PcAll,
        }],
        // Wait, and the device-TLB types, which reach the device, not the unit's caches.
        Descriptor::Wait { .. } | Descriptor::DevTlb { .. } | Descriptor::PasidDevTlb { .. } => {
            Vec::new()
        }
    }
}

/// Page-number bits of the host address width (48 - 12).
const PFN_MASK: u64 = (1 << 36) - 1;

/// Whether the entry at `page` covering the page-number bits `mask` overlaps the 2^am
/// pages at `addr`.
pub(super) fn overlaps(page: u64, mask: u64, addr: u64, am: u8) -> bool {
    let range = if am >= 36 { PFN_MASK } else { (1u64 << am) - 1 };
    let ignore = range | mask;
    ((page ^ addr) & PFN_MASK & !ignore) == 0
}

/// A fully associative cache's bookkeeping: valid bits, payloads (kept when invalidated,
/// `None` until first written) and the PLRU tree.
#[derive(Clone, Debug)]
pub(super) struct Ways<T> {
    valid: Vec<bool>,
    data: Vec<Option<T>>,
    pub(super) plru: Plru,
}

impl<T: Copy> Ways<T> {
    pub(super) fn new(n: usize) -> Self {
        Self {
            valid: vec![false; n],
            data: vec![None; n],
            plru: Plru::new(n),
        }
    }
    /// Lowest valid way whose payload satisfies `hit`.
    pub(super) fn lookup(&self, hit: impl Fn(&T) -> bool) -> Option<usize> {
        (0..self.valid.len()).find(|&i| self.valid[i] && self.data[i].as_ref().is_some_and(&hit))
    }
    /// The way a fill takes: the lowest invalid one, else the PLRU victim.
    pub(super) fn alloc(&self) -> usize {
        self.valid
            .iter()
            .position(|v| !v)
            .unwrap_or_else(|| self.plru.victim())
    }
    pub(super) fn fill(&mut self, way: usize, t: T) {
        self.valid[way] = true;
        self.data[way] = Some(t);
        self.plru.touch(way);
    }
    pub(super) fn invalidate(&mut self, hit: impl Fn(&T) -> bool) {
        for (v, d) in self.valid.iter_mut().zip(&self.data) {
            if d.as_ref().is_some_and(&hit) {
                *v = false;
            }
        }
    }
    pub(super) fn count(&self) -> usize {
        self.valid.iter().filter(|v| **v).count()
    }
}

/// What the model predicts for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prediction {
    pub pcache_hit: bool,
    /// Meaningful when `pcache_hit`: with a PASID-cache miss the walk starts at the root
    /// whatever the IOTLB holds.
    pub iotlb_hit: bool,
    /// The level (2, 3, 4) of the paging-structure cache entry a page walk started from.
    pub psc_level: Option<u8>,
    /// Memory reads the walker makes for the request.
    pub reads: usize,
}

impl std::fmt::Display for Prediction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pc = if self.pcache_hit { "hit" } else { "miss" };
        let tl = match (self.pcache_hit, self.iotlb_hit) {
            (false, _) => "not looked at",
            (true, true) => "hit",
            (true, false) => "miss",
        };
        let psc = match self.psc_level {
            Some(l) => format!(", walk from a cached level-{l} entry"),
            None => String::new(),
        };
        write!(
            f,
            "PASID cache {pc}, IOTLB {tl}{psc}: {} memory reads",
            self.reads
        )
    }
}

/// The PASID-entry cache and the IOTLB of the RTL, as seen through requests.
#[derive(Clone, Debug)]
pub struct CacheModel {
    pc: Ways<(PcKey, PcInfo)>,
    tlb: Ways<TlbEntry>,
    psc: Option<Psc>,
}

impl CacheModel {
    /// Empty caches, as after reset.
    pub fn new(cfg: CacheConfig) -> Self {
        Self {
            pc: Ways::new(cfg.pcache_entries),
            tlb: Ways::new(cfg.iotlb_entries),
            psc: cfg.psc.map(Psc::new),
        }
    }

    /// Valid entries: (PASID cache, IOTLB).
    pub fn occupancy(&self) -> (usize, usize) {
        (self.pc.count(), self.tlb.count())
    }

    /// Valid paging-structure cache entries of levels 4, 3 and 2, if the unit has them.
    pub fn psc_occupancy(&self) -> Option<[usize; 3]> {
        self.psc.as_ref().map(Psc::occupancy)
    }

    /// The fill of the paging-structure caches after a page walk from level `start` that
    /// translated.
    fn psc_fill(&mut self, info: PcInfo, page: u64, start: u8, size: LeafSize) {
        if let Some(psc) = &mut self.psc {
            psc.fill(info.psc_key(), page, non_leaf_levels(start, size));
        }
    }

    fn tlb_lookup(&self, did: u16, pasid: u32, page: u64) -> Option<usize> {
        self.tlb
            .lookup(|e| e.did == did && e.pasid == pasid && e.page == page & !e.size.pfn_mask())
    }

    /// A request with `key` for page number `page` whose walk yields `info` and a leaf of
    /// `size`: predicts what happens, and updates the caches as the RTL does.
    pub fn request(&mut self, key: PcKey, info: PcInfo, page: u64, size: LeafSize) -> Prediction {
        let page = page & PFN_MASK;
        let entry = TlbEntry {
            did: info.did,
            pasid: info.pasid,
            page: page & !size.pfn_mask(),
            size,
        };
        if let Some(pw) = self.pc.lookup(|(k, _)| *k == key) {
            let cached = self.pc.data[pw].map_or(info, |(_, i)| i);
            if let Some(tw) = self.tlb_lookup(cached.did, cached.pasid, page) {
                self.pc.plru.touch(pw);
                self.tlb.plru.touch(tw);
                return Prediction {
                    pcache_hit: true,
                    iotlb_hit: true,
                    psc_level: None,
                    reads: 0,
                };
            }
            let way = self.tlb.alloc();
            self.tlb.fill(way, entry);
            // The page walk resumes below the deepest cached non-leaf entry.
            let hit = self
                .psc
                .as_ref()
                .and_then(|p| p.lookup(cached.psc_key(), page));
            let start = match hit {
                Some((level, way)) => {
                    assert!(
                        level > size.level(),
                        "a cached level-{level} entry over a {size:?} leaf: the tables changed"
                    );
                    if let Some(p) = &mut self.psc {
                        p.touch(level, way);
                    }
                    level - 1
                }
                None => 4,
            };
            self.psc_fill(cached, page, start, size);
            return Prediction {
                pcache_hit: true,
                iotlb_hit: false,
                psc_level: hit.map(|(l, _)| l),
                reads: usize::from(start - size.level() + 1),
            };
        }
        // Walk from the root. Each fill takes the way that already holds its tag, if any.
        let pway = self.pc.alloc();
        let tway = self
            .tlb
            .lookup(|e| *e == entry)
            .unwrap_or_else(|| self.tlb.alloc());
        self.pc.fill(pway, (key, info));
        self.tlb.fill(tway, entry);
        self.psc_fill(info, page, 4, size);
        Prediction {
            pcache_hit: false,
            iotlb_hit: false,
            psc_level: None,
            reads: STRUCTURE_READS + size.levels(),
        }
    }

    /// Applies one invalidation command.
    pub fn invalidate(&mut self, inv: Inv) {
        if let Some(p) = &mut self.psc {
            p.invalidate(inv);
        }
        match inv {
            Inv::PcAll => self.pc.invalidate(|_| true),
            Inv::PcDid(did) => self.pc.invalidate(|(_, i)| i.did == did),
            Inv::PcDidPasid(did, pasid) => self
                .pc
                .invalidate(|(_, i)| i.did == did && i.pasid == pasid),
            Inv::PcSid(sid, mask) => self.pc.invalidate(|(k, _)| (k.rid ^ sid) & !mask == 0),
            Inv::TlbAll => self.tlb.invalidate(|_| true),
            Inv::TlbDid(did) => self.tlb.invalidate(|e| e.did == did),
            Inv::TlbDidPage(did, addr, am, _) => self
                .tlb
                .invalidate(|e| e.did == did && overlaps(e.page, e.size.pfn_mask(), addr, am)),
            Inv::TlbDidPasid(did, pasid) => {
                self.tlb.invalidate(|e| e.did == did && e.pasid == pasid)
            }
            Inv::TlbDidPasidPage(did, pasid, addr, am, _) => self.tlb.invalidate(|e| {
                e.did == did && e.pasid == pasid && overlaps(e.page, e.size.pfn_mask(), addr, am)
            }),
        }
    }

    /// Applies what descriptor `d` executes as.
    pub fn execute(&mut self, d: &Descriptor) {
        for c in commands(d) {
            self.invalidate(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plru_points_away_from_recent_use() {
        let mut p = Plru::new(8);
        assert_eq!(p.victim(), 0);
        p.touch(0);
        assert_eq!(p.victim(), 4);
        p.touch(4);
        assert_eq!(p.victim(), 2);
        p.touch(2);
        assert_eq!(p.victim(), 6);
        // Touching every way in order leaves the first one as the victim.
        let mut q = Plru::new(32);
        for w in 0..32 {
            q.touch(w);
        }
        assert_eq!(q.victim(), 0);
    }

    fn key(rid: u16) -> PcKey {
        PcKey { rid, pasid: None }
    }
    const INFO: PcInfo = PcInfo {
        did: 1,
        pasid: 0,
        ss: true,
    };
    /// The caches without paging-structure caches, whatever the RTL has.
    fn no_psc() -> CacheConfig {
        CacheConfig {
            psc: None,
            ..CacheConfig::default()
        }
    }

    #[test]
    fn cold_miss_then_hits_then_capacity() {
        let mut m = CacheModel::new(no_psc());
        let p = m.request(key(0x10), INFO, 0x100, LeafSize::K4);
        assert_eq!(p.reads, STRUCTURE_READS + 4);
        assert_eq!(m.request(key(0x10), INFO, 0x100, LeafSize::K4).reads, 0);
        for pg in 0..40 {
            m.request(key(0x10), INFO, 0x1000 + pg, LeafSize::K4);
        }
        assert_eq!(m.occupancy(), (1, 32));
        // The newest page is present; way 0 (the first page) was the first victim.
        assert_eq!(
            m.request(key(0x10), INFO, 0x1000 + 39, LeafSize::K4).reads,
            0
        );
        assert_eq!(m.request(key(0x10), INFO, 0x100, LeafSize::K4).reads, 4);
    }

    #[test]
    fn invalidation_granularities() {
        let mut m = CacheModel::new(no_psc());
        let other = PcInfo {
            did: 2,
            pasid: 0,
            ss: true,
        };
        m.request(key(0x10), INFO, 0x200, LeafSize::M2);
        m.request(key(0x18), other, 0x300, LeafSize::K4);
        // A 4K page-selective flush inside the 2 MiB entry removes it.
        m.invalidate(Inv::TlbDidPage(1, 0x2a0, 0, false));
        assert_eq!(m.request(key(0x10), INFO, 0x2ff, LeafSize::M2).reads, 3);
        // Device-selective: the other device's entry stays.
        m.invalidate(Inv::PcSid(0x10, 0));
        assert_eq!(m.request(key(0x18), other, 0x300, LeafSize::K4).reads, 0);
        assert!(!m.request(key(0x10), INFO, 0x200, LeafSize::M2).pcache_hit);
        // Function mask 11b covers functions 0-7 of the device.
        m.invalidate(Inv::PcSid(0x17, 0b111));
        assert!(!m.request(key(0x10), INFO, 0x200, LeafSize::M2).pcache_hit);
        assert_eq!(m.request(key(0x18), other, 0x300, LeafSize::K4).reads, 0);
    }

    #[test]
    fn refill_after_pasid_cache_loss_replaces_the_iotlb_entry() {
        let mut m = CacheModel::new(no_psc());
        m.request(key(0x10), INFO, 0x100, LeafSize::K4);
        m.invalidate(Inv::PcAll);
        m.request(key(0x10), INFO, 0x100, LeafSize::K4);
        assert_eq!(m.occupancy(), (1, 1));
        // Another domain's translation of the same page is another tag.
        m.invalidate(Inv::PcAll);
        m.request(key(0x18), PcInfo { did: 2, ..INFO }, 0x100, LeafSize::K4);
        m.invalidate(Inv::PcAll);
        m.request(key(0x10), INFO, 0x100, LeafSize::K4);
        assert_eq!(m.occupancy(), (1, 2));
    }
}
