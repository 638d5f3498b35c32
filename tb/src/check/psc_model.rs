//! Reference model of the RTL's paging-structure caches (rtl/iommu_psc.sv) as the
//! translation pipeline uses them; [`super::iotlb_model::CacheModel`] holds one when its
//! [`super::iotlb_model::CacheConfig`] has a [`PscConfig`].
//!
//! - **Arrays**: one fully associative array per level (4: PML4E, 3: PDPTE, 2: PDE) with
//!   its own tree PLRU. An entry of level L maps the 2^(9(L-1)) pages of its region (512 GiB,
//!   1 GiB, 2 MiB); its tag is {DID, stage, PASID, region}, and a second-stage entry matches
//!   every PASID of its DID (the PASID is stored and ignored).
//! - **Lookup**: in stage A with the IOTLB, only when the PASID-entry cache hits (with the
//!   DID, PASID used and stage of the cached entry); the deepest level that matches wins.
//!   When the IOTLB misses, the page walk resumes one level below that entry (marking it most
//!   recently used); with no match it starts at level 4. A walk from the root (PASID-cache
//!   miss) does not use the PSC, and an IOTLB hit does not touch it.
//! - **Fill**: after every walk that translated (exactly when the IOTLB is filled), each
//!   level the walk read that was not the leaf, all with the walk's key: a valid way that
//!   holds the key is overwritten, else the lowest invalid way is taken, else the PLRU
//!   victim; each fill marks its way most recently used.
//! - **Invalidation**: global and DID remove every entry, or the DID's; type-2
//!   page-selective with IH = 0 the DID's entries of both stages whose region overlaps
//!   [ADDR, ADDR + 2^(12+AM)), with IH = 1 none; type-6 PASID-selective the first-stage
//!   entries of (DID, PASID); type-6 page-selective with IH = 0 those of them overlapping the
//!   range, with IH = 1 none. Context- and PASID-cache invalidations remove nothing.
//!
//! The model holds tags only: the next-table pointers and accumulated permissions are what
//! the tables say (they do not change during a test), and what is observable is how many
//! levels a walk reads.

use super::iotlb_model::{overlaps, Inv, LeafSize, Ways};

/// Ways per level (the parameters `L4Entries`, `L3Entries`, `L2Entries` of `iommu_psc`),
/// powers of two, at least 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PscConfig {
    pub l4_entries: usize,
    pub l3_entries: usize,
    pub l2_entries: usize,
}

impl Default for PscConfig {
    /// The defaults of `iommu_psc`'s parameters.
    fn default() -> Self {
        Self {
            l4_entries: 2,
            l3_entries: 4,
            l2_entries: 16,
        }
    }
}

impl PscConfig {
    /// Ways of `level` (2, 3 or 4).
    pub fn entries(&self, level: u8) -> usize {
        match level {
            2 => self.l2_entries,
            3 => self.l3_entries,
            4 => self.l4_entries,
            _ => panic!("no paging-structure cache at level {level}"),
        }
    }
}

/// The key of a lookup or a fill besides the address: what the PASID entry gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PscKey {
    pub did: u16,
    /// The PASID used (ignored by second-stage entries).
    pub pasid: u32,
    /// Second stage (PGTT), else first stage.
    pub ss: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    key: PscKey,
    /// Page number >> 9(level - 1).
    region: u64,
}

impl Entry {
    fn matches(&self, key: PscKey, region: u64) -> bool {
        self.key.did == key.did
            && self.key.ss == key.ss
            && (key.ss || self.key.pasid == key.pasid)
            && self.region == region
    }
}

/// Page-number bits below the region of a level-`level` entry.
fn region_shift(level: u8) -> u32 {
    9 * (u32::from(level) - 1)
}

/// The paging-structure caches, as seen through the walks that use and fill them.
#[derive(Clone, Debug)]
pub struct Psc {
    /// Index: level - 2.
    levels: [Ways<Entry>; 3],
}

impl Psc {
    /// Empty, as after reset.
    pub fn new(cfg: PscConfig) -> Self {
        Self {
            levels: [2, 3, 4].map(|l| Ways::new(cfg.entries(l))),
        }
    }

    fn ways(&self, level: u8) -> &Ways<Entry> {
        &self.levels[usize::from(level - 2)]
    }

    fn ways_mut(&mut self, level: u8) -> &mut Ways<Entry> {
        &mut self.levels[usize::from(level - 2)]
    }

    /// Valid entries of levels 4, 3 and 2.
    pub fn occupancy(&self) -> [usize; 3] {
        [4, 3, 2].map(|l| self.ways(l).count())
    }

    /// The deepest level with an entry for `key` and page number `page`, and its way.
    pub fn lookup(&self, key: PscKey, page: u64) -> Option<(u8, usize)> {
        [2u8, 3, 4].into_iter().find_map(|l| {
            let region = page >> region_shift(l);
            self.ways(l)
                .lookup(|e| e.matches(key, region))
                .map(|w| (l, w))
        })
    }

    /// A walk started from the entry at `way` of `level`.
    pub fn touch(&mut self, level: u8, way: usize) {
        self.ways_mut(level).plru.touch(way);
    }

    /// The fill after a walk that translated: each level in `levels` (read by the walk,
    /// not the leaf).
    pub fn fill(&mut self, key: PscKey, page: u64, levels: impl IntoIterator<Item = u8>) {
        for l in levels {
            let region = page >> region_shift(l);
            let ways = self.ways_mut(l);
            let way = ways
                .lookup(|e| e.matches(key, region))
                .unwrap_or_else(|| ways.alloc());
            ways.fill(way, Entry { key, region });
        }
    }

    /// Applies one invalidation command.
    pub fn invalidate(&mut self, inv: Inv) {
        for l in [2u8, 3, 4] {
            let sh = region_shift(l);
            let in_range =
                |e: &Entry, addr: u64, am: u8| overlaps(e.region << sh, (1u64 << sh) - 1, addr, am);
            let fs_of = |e: &Entry, did: u16, pasid: u32| {
                e.key.did == did && !e.key.ss && e.key.pasid == pasid
            };
            let ways = self.ways_mut(l);
            match inv {
                Inv::TlbAll => ways.invalidate(|_| true),
                Inv::TlbDid(did) => ways.invalidate(|e| e.key.did == did),
                Inv::TlbDidPage(did, addr, am, ih) => {
                    ways.invalidate(|e| !ih && e.key.did == did && in_range(e, addr, am))
                }
                Inv::TlbDidPasid(did, pasid) => ways.invalidate(|e| fs_of(e, did, pasid)),
                Inv::TlbDidPasidPage(did, pasid, addr, am, ih) => {
                    ways.invalidate(|e| !ih && fs_of(e, did, pasid) && in_range(e, addr, am))
                }
                Inv::PcAll | Inv::PcDid(_) | Inv::PcDidPasid(..) | Inv::PcSid(..) => {}
            }
        }
    }
}

/// The levels a page walk starting at level `start` reads that are not the leaf's.
pub fn non_leaf_levels(start: u8, leaf: LeafSize) -> impl Iterator<Item = u8> {
    (leaf.level() + 1..=start).rev()
}

#[cfg(test)]
mod tests {
    use super::super::iotlb_model::{CacheConfig, CacheModel, PcInfo, PcKey, STRUCTURE_READS};
    use super::*;

    fn with_psc() -> CacheConfig {
        CacheConfig {
            psc: Some(PscConfig::default()),
            ..CacheConfig::default()
        }
    }
    const DEV: PcKey = PcKey {
        rid: 0x10,
        pasid: None,
    };
    const SS: PcInfo = PcInfo {
        did: 1,
        pasid: 0,
        ss: true,
    };
    const FS: PcInfo = PcInfo {
        did: 2,
        pasid: 7,
        ss: false,
    };
    /// Page numbers: 2 MiB region r, page p of it, inside the first GiB.
    fn pg(r: u64, p: u64) -> u64 {
        r << 9 | p
    }

    #[test]
    fn a_cached_pde_leaves_one_read() {
        let mut m = CacheModel::new(with_psc());
        let p = m.request(DEV, SS, pg(8, 0), LeafSize::K4);
        assert_eq!((p.reads, p.psc_level), (STRUCTURE_READS + 4, None));
        assert_eq!(m.psc_occupancy(), Some([1, 1, 1]));
        // Same 2 MiB region: the PDE.
        let p = m.request(DEV, SS, pg(8, 1), LeafSize::K4);
        assert_eq!((p.reads, p.psc_level), (1, Some(2)));
        // Same GiB, another 2 MiB region: the PDPTE; the walk fills the new PDE.
        let p = m.request(DEV, SS, pg(9, 0), LeafSize::K4);
        assert_eq!((p.reads, p.psc_level), (2, Some(3)));
        assert_eq!(m.psc_occupancy(), Some([1, 1, 2]));
        // Another GiB: the PML4E.
        let p = m.request(DEV, SS, 1 << 18, LeafSize::K4);
        assert_eq!((p.reads, p.psc_level), (3, Some(4)));
        // Another 512 GiB: nothing.
        let p = m.request(DEV, SS, 1 << 27, LeafSize::K4);
        assert_eq!((p.reads, p.psc_level), (4, None));
        // An IOTLB hit reads nothing and does not use the PSC.
        let p = m.request(DEV, SS, pg(8, 1), LeafSize::K4);
        assert_eq!((p.reads, p.iotlb_hit, p.psc_level), (0, true, None));
    }

    #[test]
    fn second_stage_entries_serve_every_pasid_of_the_did() {
        let mut m = CacheModel::new(with_psc());
        m.request(DEV, SS, pg(8, 0), LeafSize::K4);
        let other = PcKey {
            rid: 0x10,
            pasid: Some(5),
        };
        // A new PASID-cache key: a walk from the root, which fills but does not use the PSC.
        let p = m.request(other, PcInfo { pasid: 5, ..SS }, pg(8, 1), LeafSize::K4);
        assert_eq!(p.reads, STRUCTURE_READS + 4);
        assert_eq!(m.psc_occupancy(), Some([1, 1, 1]), "one entry per level");
        let p = m.request(other, PcInfo { pasid: 5, ..SS }, pg(8, 2), LeafSize::K4);
        assert_eq!(p.reads, 1);
        // A first-stage PASID does not share.
        let fs7 = PcKey {
            rid: 0x18,
            pasid: None,
        };
        let fs8 = PcKey {
            rid: 0x18,
            pasid: Some(8),
        };
        let info8 = PcInfo { pasid: 8, ..FS };
        m.request(fs7, FS, pg(8, 0), LeafSize::K4);
        m.request(fs8, info8, pg(8, 0), LeafSize::K4);
        // Level 4 has two ways: the second-stage PML4E was the victim.
        assert_eq!(m.psc_occupancy(), Some([2, 3, 3]));
        assert_eq!(m.request(fs8, info8, pg(8, 1), LeafSize::K4).reads, 1);
        assert_eq!(m.request(fs7, FS, pg(8, 1), LeafSize::K4).reads, 1);
    }

    #[test]
    fn page_selective_ih_keeps_or_removes_the_pde() {
        for (ih, reads) in [(true, 1), (false, 4)] {
            let mut m = CacheModel::new(with_psc());
            m.request(DEV, SS, pg(8, 0), LeafSize::K4);
            m.invalidate(Inv::TlbDidPage(SS.did, pg(8, 0), 0, ih));
            assert_eq!(m.request(DEV, SS, pg(8, 0), LeafSize::K4).reads, reads);
        }
        // IH = 0 removes only the regions the range overlaps: another 2 MiB region's PDE stays.
        let mut m = CacheModel::new(with_psc());
        m.request(DEV, SS, pg(8, 0), LeafSize::K4);
        m.request(DEV, SS, pg(9, 0), LeafSize::K4);
        m.invalidate(Inv::TlbDidPage(SS.did, pg(9, 0), 9, false));
        assert_eq!(m.psc_occupancy(), Some([0, 0, 1]));
        assert_eq!(m.request(DEV, SS, pg(8, 1), LeafSize::K4).reads, 1);
        assert_eq!(m.request(DEV, SS, pg(9, 1), LeafSize::K4).reads, 4);
        // Another DID's page-selective flush removes nothing.
        m.invalidate(Inv::TlbDidPage(9, pg(8, 0), 18, false));
        assert_eq!(m.request(DEV, SS, pg(8, 2), LeafSize::K4).reads, 1);
        // The descriptor's IH reaches the command.
        let d = iommu_model::qi::Descriptor::Iotlb {
            gran: iommu_model::qi::IotlbGran::Page,
            dr: false,
            dw: false,
            did: SS.did,
            addr: pg(8, 0) << 12,
            am: 0,
            ih: true,
        };
        m.execute(&d);
        assert_eq!(m.request(DEV, SS, pg(8, 0), LeafSize::K4).reads, 1);
    }

    #[test]
    fn pasid_selective_removes_first_stage_entries_only() {
        let mut m = CacheModel::new(with_psc());
        let fs_dev = PcKey {
            rid: 0x18,
            pasid: None,
        };
        m.request(fs_dev, FS, pg(8, 0), LeafSize::K4);
        m.invalidate(Inv::TlbDidPasid(FS.did, FS.pasid));
        assert_eq!(m.request(fs_dev, FS, pg(8, 1), LeafSize::K4).reads, 4);
        // Another PASID of the DID keeps its entries.
        m.invalidate(Inv::TlbDidPasid(FS.did, FS.pasid + 1));
        assert_eq!(m.request(fs_dev, FS, pg(8, 2), LeafSize::K4).reads, 1);
        // Type 6 page-selective: IH = 1 keeps, IH = 0 removes.
        m.invalidate(Inv::TlbDidPasidPage(FS.did, FS.pasid, pg(8, 2), 0, true));
        assert_eq!(m.request(fs_dev, FS, pg(8, 2), LeafSize::K4).reads, 1);
        m.invalidate(Inv::TlbDidPasidPage(FS.did, FS.pasid, pg(8, 2), 0, false));
        assert_eq!(m.request(fs_dev, FS, pg(8, 3), LeafSize::K4).reads, 4);
        // A second-stage entry survives a type-6 flush of its DID and PASID (the IOTLB
        // entry does not).
        m.request(DEV, SS, pg(8, 0), LeafSize::K4);
        m.invalidate(Inv::TlbDidPasid(SS.did, SS.pasid));
        assert_eq!(m.request(DEV, SS, pg(8, 0), LeafSize::K4).reads, 1);
        // Context- and PASID-cache invalidations leave the PSC alone.
        let before = m.psc_occupancy();
        m.invalidate(Inv::PcAll);
        m.invalidate(Inv::PcDid(SS.did));
        assert_eq!(m.psc_occupancy(), before);
        // Domain-selective removes both stages of the DID, global everything.
        m.invalidate(Inv::TlbDid(SS.did));
        assert_eq!(m.psc_occupancy(), Some([1, 1, 1]));
        m.invalidate(Inv::TlbAll);
        assert_eq!(m.psc_occupancy(), Some([0, 0, 0]));
    }

    #[test]
    fn large_leaves_fill_the_levels_above_them() {
        let mut m = CacheModel::new(with_psc());
        m.request(DEV, SS, pg(8, 0), LeafSize::M2);
        assert_eq!(m.psc_occupancy(), Some([1, 1, 0]));
        // Another 2 MiB leaf of the same GiB: the PDPTE, then the PDE (the leaf) alone.
        let p = m.request(DEV, SS, pg(9, 0), LeafSize::M2);
        assert_eq!((p.reads, p.psc_level), (1, Some(3)));
        assert_eq!(m.psc_occupancy(), Some([1, 1, 0]));
        // A 1 GiB leaf fills level 4 only; the next GiB costs its PDPTE.
        let mut m = CacheModel::new(with_psc());
        m.request(DEV, SS, 1 << 18, LeafSize::G1);
        assert_eq!(m.psc_occupancy(), Some([1, 0, 0]));
        let p = m.request(DEV, SS, 2 << 18, LeafSize::G1);
        assert_eq!((p.reads, p.psc_level), (1, Some(4)));
    }

    #[test]
    fn the_seventeenth_pde_evicts_the_least_recently_used() {
        let mut m = CacheModel::new(with_psc());
        m.request(DEV, SS, pg(0, 0), LeafSize::K4);
        for r in 1..16 {
            assert_eq!(m.request(DEV, SS, pg(r, 0), LeafSize::K4).reads, 2);
        }
        assert_eq!(m.psc_occupancy(), Some([1, 1, 16]));
        // Region 16 takes the PLRU victim: region 0's way.
        assert_eq!(m.request(DEV, SS, pg(16, 0), LeafSize::K4).reads, 2);
        assert_eq!(m.psc_occupancy(), Some([1, 1, 16]));
        assert_eq!(m.request(DEV, SS, pg(1, 1), LeafSize::K4).reads, 1);
        let p = m.request(DEV, SS, pg(0, 1), LeafSize::K4);
        assert_eq!((p.reads, p.psc_level), (2, Some(3)));
        // Region 1's PDE (used since) and region 0's (just refilled) are not the next victim.
        m.request(DEV, SS, pg(17, 0), LeafSize::K4);
        assert_eq!(m.request(DEV, SS, pg(1, 2), LeafSize::K4).reads, 1);
        assert_eq!(m.request(DEV, SS, pg(0, 2), LeafSize::K4).reads, 1);
    }

    #[test]
    fn absent_psc_walks_every_level() {
        let mut m = CacheModel::new(CacheConfig {
            psc: None,
            ..CacheConfig::default()
        });
        m.request(DEV, SS, pg(8, 0), LeafSize::K4);
        let p = m.request(DEV, SS, pg(8, 1), LeafSize::K4);
        assert_eq!((p.reads, p.psc_level), (4, None));
        assert_eq!(m.psc_occupancy(), None);
    }
}
