//! Paging-structure caches and the Invalidation Hint (docs/contract.md section 5), on
//! hand-written sequences: what the driver frees and when, the IH it sets, what the
//! maximal cache keeps and removes, and that a driver setting IH = 1 after freeing
//! page-table pages lets legal hardware give an outcome the oracle forbids.

use std::cell::Cell;

use iommu_model::driver::DriverQuirks;
use iommu_model::golden::{psc_invalidated, MaxCache, Outcome, Pgtt, PscTag, Request};
use iommu_model::kernel::{DeviceDesc, DomainId, DomainType, Prot, Stage};
use iommu_model::mem::{Mem, MemError, PhysMem, PAGE_SIZE};
use iommu_model::qi::{Descriptor, IotlbGran, PiotlbGran};
use iommu_model::sim::{golden_kernel, GoldenExt, GoldenKernel};
use iommu_model::tables;

const DEV: u16 = 0x0208;
/// A 2 MiB-aligned region the tests map with 4 KiB leaves (one page table of its own).
const REGION: u64 = 0x20_0000;
/// Frames off 2 MiB alignment, so that a 2 MiB map is 512 leaves of 4 KiB.
const FRAMES: u64 = 0x2_0000_3000;

fn system(quirks: DriverQuirks, stage: Stage) -> (GoldenKernel, DomainId) {
    let mut k = golden_kernel(quirks).expect("golden system");
    k.add_device(DeviceDesc {
        rid: DEV,
        max_pasids: 0,
        ats: false,
    })
    .expect("probe");
    let d = k.domain_alloc(DomainType::Paging(stage)).expect("domain");
    k.attach_device(DEV, d).expect("attach");
    (k, d)
}

/// The page table (level 1) that maps `va`, read from the domain's tables.
fn page_table(k: &GoldenKernel, d: DomainId, va: u64) -> Option<u64> {
    let mut table = k.ops().domain_pgd(d)?;
    for level in (2..=4).rev() {
        let e = k
            .hw()
            .mem
            .read64(table + tables::level_index(va, level) * 8)
            .ok()?;
        if e == 0 {
            return None;
        }
        table = e & tables::ADDR_MASK;
    }
    Some(table)
}

/// The page-selective flushes of the last batch: (descriptor, IH).
fn last_page_flushes(k: &GoldenKernel) -> Vec<bool> {
    let batch = k.ops().log().last().expect("a batch");
    batch
        .descs
        .iter()
        .filter_map(|d| match *d {
            Descriptor::Iotlb {
                gran: IotlbGran::Page,
                ih,
                ..
            }
            | Descriptor::PasidIotlb {
                gran: PiotlbGran::Page,
                ih,
                ..
            } => Some(ih),
            _ => None,
        })
        .collect()
}

#[test]
fn unmap_frees_covered_page_tables_after_the_flush_with_ih_0() {
    for stage in [Stage::First, Stage::Second] {
        let (mut k, d) = system(DriverQuirks::default(), stage);
        let other = REGION + 0x20_0000;
        k.map(d, REGION, FRAMES, 0x40_0000, Prot::RW).unwrap();
        let pt = page_table(&k, d, REGION).expect("a page table");
        // One 4 KiB leaf of the other 2 MiB: nothing freed, IH = 1.
        k.unmap(d, other, PAGE_SIZE).unwrap();
        k.iotlb_sync(d).unwrap();
        assert_eq!(last_page_flushes(&k), [true], "{stage:?}");
        // The first 2 MiB whole: its page table goes on the freelist, stays allocated
        // (contents untouched) until the flush, and the flush has IH = 0.
        k.unmap(d, REGION, 0x20_0000).unwrap();
        assert_eq!(page_table(&k, d, REGION), None, "the PDE is cleared");
        assert!(k.hw().mem.is_allocated(pt), "not freed before the flush");
        assert_ne!(k.hw().mem.read64(pt + 8).unwrap(), 0, "contents untouched");
        k.iotlb_sync(d).unwrap();
        assert_eq!(last_page_flushes(&k), [false], "{stage:?}");
        assert!(!k.hw().mem.is_allocated(pt), "freed after the flush");
        // Unmapped piece by piece, a page table is emptied but not freed (as in Linux,
        // where only an unmap whose range covers the entry's whole region frees it).
        let left = page_table(&k, d, other).unwrap();
        k.unmap(d, other + PAGE_SIZE, 0x20_0000 - PAGE_SIZE)
            .unwrap();
        k.iotlb_sync(d).unwrap();
        assert_eq!(last_page_flushes(&k), [true]);
        assert_eq!(page_table(&k, d, other), Some(left));
    }
}

/// The bug of the issue, by hand: the walk through a stale PDE reads a freed page that a
/// later map reused as the page table of another region.
/// Returns every outcome legal hardware may give for a request to the freed region, those
/// the oracle forbids, and what the other region gives at the same offset.
fn stale_pde_into_reused_page(quirks: DriverQuirks) -> (Vec<Outcome>, Vec<Outcome>, Outcome) {
    let (mut k, d) = system(quirks, Stage::Second);
    k.map(d, REGION, FRAMES, 0x20_0000, Prot::RW).unwrap();
    let req = Request::read(DEV, REGION + 0x5008, 8);
    assert!(matches!(
        k.translate_cached(&req).outcome,
        Outcome::Translated(_)
    ));
    let pt = page_table(&k, d, REGION).unwrap();
    k.unmap(d, REGION, 0x20_0000).unwrap();
    k.iotlb_sync(d).unwrap();
    // Another 2 MiB region's first map takes a new page table: the page just freed.
    let other = REGION + 0x40_0000;
    k.map(d, other, FRAMES + 0x100_0000, 0x20_0000, Prot::RW)
        .unwrap();
    assert_eq!(
        page_table(&k, d, other),
        Some(pt),
        "the freed page is reused"
    );
    let there = k
        .translate(&Request::read(DEV, other + (req.addr - REGION), 8))
        .outcome;
    let hw = k.hw();
    let possible = hw.cache.possible(&hw.regs, &hw.mem, &req);
    let forbidden = possible
        .iter()
        .copied()
        .filter(|o| !k.allowed(&req).contains(o))
        .collect();
    (possible, forbidden, there)
}

#[test]
fn with_ih_always_set_a_stale_pde_reaches_a_freed_and_reused_page() {
    let (possible, forbidden, there) = stale_pde_into_reused_page(DriverQuirks {
        ih_always_set: true,
        ..DriverQuirks::default()
    });
    assert!(matches!(there, Outcome::Translated(_)));
    assert_eq!(
        forbidden,
        [there],
        "the other region's frame through the stale PDE: {possible:?}"
    );
    let (possible, forbidden, _) = stale_pde_into_reused_page(DriverQuirks::default());
    assert!(forbidden.is_empty(), "Linux's IH = 0: {possible:?}");
    assert_eq!(possible.len(), 1, "{possible:?}");
}

/// Memory that counts reads.
struct Counting<'a> {
    mem: &'a Mem,
    reads: Cell<u32>,
}

impl PhysMem for Counting<'_> {
    fn read64(&self, pa: u64) -> Result<u64, MemError> {
        self.reads.set(self.reads.get() + 1);
        self.mem.read64(pa)
    }
}

#[test]
fn a_4k_miss_whose_pde_is_cached_costs_one_read() {
    for stage in [Stage::First, Stage::Second] {
        let (mut k, d) = system(DriverQuirks::default(), stage);
        k.map(d, REGION, FRAMES, 0x20_0000, Prot::RW).unwrap();
        let hw = k.hw_mut();
        let mut cache = MaxCache::new();
        let first = Request::read(DEV, REGION + 0x1008, 8);
        let mem = Counting {
            mem: &hw.mem,
            reads: Cell::new(0),
        };
        let cold = cache.translate(&hw.regs, &mem, &first).outcome;
        let cold_reads = mem.reads.replace(0);
        // Another 4 KiB page under the same PDE: IOTLB miss, PDE hit.
        let next = Request::read(DEV, REGION + 0x7008, 8);
        let warm = cache.translate(&hw.regs, &mem, &next).outcome;
        assert_eq!(warm, hw.translate(&next).outcome);
        assert_eq!(mem.reads.get(), 1, "{stage:?}: cold walk took {cold_reads}");
        assert!(matches!(cold, Outcome::Translated(_)));
        let levels: Vec<u32> = cache.psc_entries().map(|(t, _)| t.level).collect();
        assert_eq!(levels, [2, 3, 4], "PDE, PDPTE and PML4E are cached");
    }
}

#[test]
fn replacing_an_empty_table_by_a_superpage_flushes_with_ih_0() {
    let (mut k, d) = system(DriverQuirks::default(), Stage::Second);
    k.map(d, REGION, FRAMES, PAGE_SIZE, Prot::RW).unwrap();
    let req = Request::read(DEV, REGION + 0x8, 8);
    k.translate_cached(&req);
    k.unmap(d, REGION, PAGE_SIZE).unwrap();
    k.iotlb_sync(d).unwrap();
    let pt = page_table(&k, d, REGION).expect("the empty table stays");
    assert!(k.hw().cache.psc_len() > 0);
    k.map(d, REGION, 0x2_0040_0000, 0x20_0000, Prot::RW)
        .unwrap();
    assert!(!k.hw().mem.is_allocated(pt), "the old table is freed");
    let batch = k.ops().log().last().unwrap();
    assert_eq!(batch.reason, "switch to super page");
    assert_eq!(last_page_flushes(&k), [false]);
    let hw = k.hw();
    let possible = hw.cache.possible(&hw.regs, &hw.mem, &req);
    assert_eq!(possible, [hw.translate(&req).outcome]);
    assert!(k.allowed(&req).contains(&possible[0]));
}

/// A cache with one non-leaf entry of each level for `addr`, filled by a walk.
fn filled(stage: Stage) -> (GoldenKernel, MaxCache) {
    let (mut k, d) = system(DriverQuirks::default(), stage);
    k.map(d, REGION, FRAMES, 0x20_0000, Prot::RW).unwrap();
    let hw = k.hw_mut();
    let mut cache = MaxCache::new();
    cache.translate(&hw.regs, &hw.mem, &Request::read(DEV, REGION + 0x8, 8));
    assert_eq!(cache.psc_len(), 3);
    (k, cache)
}

fn tags(c: &MaxCache) -> Vec<PscTag> {
    c.psc_entries().map(|(t, _)| *t).collect()
}

#[test]
fn invalidations_remove_exactly_the_non_leaf_entries_section_5_names() {
    let (k, cache) = filled(Stage::Second);
    let all = tags(&cache);
    let did = all[0].did;
    assert!(all.iter().all(|t| t.stage == Pgtt::SecondStage));
    let iotlb = |gran, did, addr, am, ih| Descriptor::Iotlb {
        gran,
        dr: false,
        dw: false,
        did,
        addr,
        am,
        ih,
    };
    // Which entries each descriptor removes, against what section 5 says, entry by entry.
    let cases = [
        (iotlb(IotlbGran::Page, did, REGION, 0, false), true),
        (iotlb(IotlbGran::Page, did, REGION, 0, true), false),
        (iotlb(IotlbGran::Page, did + 1, REGION, 0, false), false),
        (iotlb(IotlbGran::Domain, did, 0, 0, false), true),
        (iotlb(IotlbGran::Global, 0, 0, 0, false), true),
        (
            Descriptor::PasidIotlb {
                gran: PiotlbGran::Pasid,
                did,
                pasid: 0,
                addr: 0,
                am: 0,
                ih: false,
            },
            false,
        ),
    ];
    for (d, removes) in cases {
        let mut c = cache.clone();
        let removed = c.apply(&d);
        assert_eq!(removed.psc.is_empty(), !removes, "{d}");
        for t in &all {
            assert_eq!(
                c.psc_entries().any(|(u, _)| u == t),
                !psc_invalidated(&d, t),
                "{d}: {t:?}"
            );
        }
    }
    // A page far away removes none; the PML4E covers it, so a range overlapping only the
    // PML4E's region removes that one.
    let mut c = cache.clone();
    c.apply(&iotlb(IotlbGran::Page, did, 0x4000_0000, 0, false));
    let left: Vec<u32> = c.psc_entries().map(|(t, _)| t.level).collect();
    assert_eq!(left, [2, 3]);
    drop(k);
}

#[test]
fn type_6_removes_first_stage_entries_of_its_pasid_only_and_follows_ih() {
    let (_k, cache) = filled(Stage::First);
    let t0 = tags(&cache)[0];
    assert_eq!(t0.stage, Pgtt::FirstStage);
    let piotlb = |gran, pasid, ih| Descriptor::PasidIotlb {
        gran,
        did: t0.did,
        pasid,
        addr: REGION,
        am: 0,
        ih,
    };
    for (d, left) in [
        (piotlb(PiotlbGran::Page, t0.pasid, false), 0),
        (piotlb(PiotlbGran::Page, t0.pasid, true), 3),
        (piotlb(PiotlbGran::Page, t0.pasid + 1, false), 3),
        (piotlb(PiotlbGran::Pasid, t0.pasid, true), 0),
    ] {
        let mut c = cache.clone();
        c.apply(&d);
        assert_eq!(c.psc_len(), left, "{d}");
    }
    // Context-cache and PASID-cache invalidations keep them (the narrowest legal choice).
    for d in iommu_model::qi::Descriptor::global_invalidations(false, false) {
        let mut c = cache.clone();
        c.apply(&d);
        let kept = !matches!(d, Descriptor::Iotlb { .. });
        assert_eq!(c.psc_len() == 3, kept, "{d}");
    }
}
