//! The RTL's PASID-entry cache and IOTLB, and its paging-structure caches when it has them
//! (`iotlb_model::RTL_HAS_PSC`), against the reference model
//! (`iommu_tb::check::iotlb_model`, `psc_model`): random request streams over more pages,
//! more {RID, PASID} keys and more 2 MiB regions than the caches hold, with random
//! invalidations of every granularity the unit offers, IH either way. For each request the
//! model says how many memory reads the walk makes (none when both caches must hit, the page
//! walk when only the PASID entry is cached, from below the deepest cached non-leaf entry
//! with paging-structure caches, the whole walk otherwise), and the memory port must show
//! exactly that:
//!
//! - a request the model says must hit that reads memory: something was lost (replacement
//!   other than the tree PLRU, or an invalidation wider than its descriptor, e.g. a
//!   device-selective context-cache invalidation executed as global);
//! - a request the model says must miss that reads nothing: something survived an
//!   invalidation that should have removed it (e.g. a global one executed as
//!   device-selective).
//!
//! The tables never change during a stream, so every request translates and the judge
//! (golden walker) checks each translation as well. Between operations the unit is idle,
//! and the environment's expect-idle monitor fails any memory request it makes then.

use std::collections::{BTreeSet, VecDeque};

use anyhow::{bail, ensure, Context, Result};
use iommu_model::driver::DriverQuirks;
use iommu_model::golden::{Outcome, Pgtt};
use iommu_model::kernel::{DeviceDesc, DomainType, Rid, Stage};
use iommu_model::qi::{CcGran, Descriptor, IotlbGran, PcGran, PiotlbGran};
use iommu_tb::check::{CacheConfig, CacheModel, LeafSize, PcInfo, PcKey};
use iommu_tb::env::MemTiming;
use iommu_tb::hw::system::*;
use iommu_tb::tlp::MemRequest;
use iommu_tb::{run_test, TestFailure};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A domain of the test: its DID, what is mapped, and the PASID tags seen with it.
struct Dom {
    did: u16,
    /// (IOVA, size) of each mapping.
    pages: Vec<(u64, u64)>,
    tags: BTreeSet<u32>,
}

/// A request source: RID, prefix PASID, and the domain it translates through.
#[derive(Clone, Copy)]
struct Src {
    rid: Rid,
    pasid: Option<u32>,
    dom: usize,
}

struct Setup {
    k: RtlKernel,
    doms: Vec<Dom>,
    srcs: Vec<Src>,
    rids: Vec<Rid>,
}

fn e<T: std::fmt::Debug>(x: T) -> anyhow::Error {
    anyhow::anyhow!("{x:?}")
}

/// Three domains (second, first and second stage), six functions on three buses, three of
/// them also with a PASID: nine PASID-cache keys (one more than the cache holds) over about
/// 2 x 60 IOTLB tags (twice what it holds), with 4 KiB, 2 MiB and 1 GiB leaves. The third
/// domain's 4 KiB pages lie in 16 different 2 MiB regions, so with the other domains' tags
/// there are more PDEs than the paging-structure cache holds (16), and more PDPTEs and
/// PML4Es (4 and 2) too.
fn setup(tb: &mut iommu_tb::env::Env) -> Result<Setup> {
    let timing = MemTiming {
        min_latency: 1,
        max_latency: 3,
        ready_pct: 80,
        in_order: false,
    };
    let mut k = system_on(tb, timing, DriverQuirks::default())?;
    let rids: Vec<Rid> = vec![DEV, 0x0011, 0x0012, 0x0018, 0x0100, 0x0200];
    for &rid in &rids[1..] {
        k.add_device(DeviceDesc {
            rid,
            max_pasids: 1 << 20,
            ats: false,
        })
        .map_err(e)?;
    }
    let mut doms = Vec::new();
    let mut ids = Vec::new();
    // (stage, 4 KiB pages, their stride, size of the large page at 1 GiB)
    let layouts: [(Stage, u64, u64, u64); 3] = [
        (Stage::Second, 20, 0x1000, 2 << 20),
        (Stage::First, 20, 0x1000, 1 << 30),
        (Stage::Second, 16, 0x20_1000, 2 << 20),
    ];
    for (i, (stage, n4k, stride, big)) in layouts.into_iter().enumerate() {
        let d = k.domain_alloc(DomainType::Paging(stage)).map_err(e)?;
        let pa = 0x4_0000_0000 + (i as u64) * 0x1_0000_0000;
        let mut pages = Vec::new();
        for p in 0..n4k {
            let va = 0x100_0000 + p * stride;
            map(&mut k, d, va, pa + p * 0x1000, 0x1000, true, true)?;
            pages.push((va, 0x1000));
        }
        map(&mut k, d, 0x4000_0000, pa + 0x4000_0000, big, true, true)?;
        pages.push((0x4000_0000, big));
        ids.push(d);
        doms.push(Dom {
            did: 0,
            pages,
            tags: BTreeSet::new(),
        });
    }
    let attach = [
        (DEV, 0),
        (0x0011, 1),
        (0x0012, 2),
        (0x0018, 0),
        (0x0100, 2),
        (0x0200, 1),
    ];
    let mut srcs = Vec::new();
    for (rid, dom) in attach {
        k.attach_device(rid, ids[dom]).map_err(e)?;
        srcs.push(Src {
            rid,
            pasid: None,
            dom,
        });
    }
    for (rid, dom) in [(DEV, 0), (0x0011, 1), (0x0100, 2)] {
        let pasid = k.enable_dma_pasid(rid).map_err(e)?;
        srcs.push(Src {
            rid,
            pasid: Some(pasid),
            dom,
        });
    }
    for (d, id) in doms.iter_mut().zip(&ids) {
        d.did = k.ops().domain_did(*id).context("domain without a DID")?;
    }
    Ok(Setup {
        k,
        doms,
        srcs,
        rids,
    })
}

/// A random invalidation aimed at what the stream uses. IH and the drain hints are random:
/// IH only spares paging-structure entries, so leaf entries go either way.
fn random_invalidation(rng: &mut ChaCha8Rng, s: &Setup) -> Descriptor {
    let dom = &s.doms[rng.gen_range(0..s.doms.len())];
    let did = dom.did;
    let pasid = dom
        .tags
        .iter()
        .copied()
        .collect::<Vec<_>>()
        .choose(rng)
        .copied()
        .unwrap_or(0);
    let (va, _) = dom.pages[rng.gen_range(0..dom.pages.len())];
    let am: u8 = *[0u8, 0, 1, 2, 3, 9, 18].choose(rng).unwrap_or(&0);
    let addr = va & !((1u64 << (12 + u32::from(am))) - 1);
    let sid = s.rids[rng.gen_range(0..s.rids.len())];
    match rng.gen_range(0..11) {
        0 => iotlb_global(),
        1 => Descriptor::Iotlb {
            gran: IotlbGran::Domain,
            dr: false,
            dw: false,
            did,
            addr: 0,
            am: 0,
            ih: false,
        },
        2 => Descriptor::Iotlb {
            gran: IotlbGran::Page,
            dr: rng.gen(),
            dw: rng.gen(),
            did,
            addr,
            am,
            ih: rng.gen(),
        },
        3 => Descriptor::PasidIotlb {
            gran: PiotlbGran::Pasid,
            did,
            pasid,
            addr: 0,
            am: 0,
            ih: false,
        },
        4 => Descriptor::PasidIotlb {
            gran: PiotlbGran::Page,
            did,
            pasid,
            addr,
            am,
            ih: rng.gen(),
        },
        5 => Descriptor::PasidCache {
            gran: PcGran::Domain,
            did,
            pasid: 0,
        },
        6 => Descriptor::PasidCache {
            gran: PcGran::Pasid,
            did,
            pasid,
        },
        7 => Descriptor::PasidCache {
            gran: PcGran::Global,
            did: 0,
            pasid: 0,
        },
        8 => Descriptor::ContextCache {
            gran: CcGran::Global,
            did: 0,
            sid: 0,
            fm: 0,
        },
        9 => Descriptor::ContextCache {
            gran: CcGran::Domain,
            did,
            sid: 0,
            fm: 0,
        },
        _ => Descriptor::ContextCache {
            gran: CcGran::Device,
            did,
            sid,
            fm: rng.gen_range(0..4),
        },
    }
}

#[derive(Default, Debug)]
struct Stats {
    requests: usize,
    must_hit: usize,
    page_walks: usize,
    full_walks: usize,
    invalidations: usize,
    iotlb_full: usize,
    pcache_full: usize,
    /// Page walks that started from a cached PDE, PDPTE, PML4E.
    psc_starts: [usize; 3],
    /// Requests after which the PDE cache was full.
    pde_full: usize,
}

fn stream(seed: u64, ops: usize) -> Result<(), TestFailure> {
    run_test(&format!("cache_model_stream_{seed}"), seed, |tb| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut s = setup(tb)?;
        let cfg = CacheConfig::default();
        let mut model = CacheModel::new(cfg);
        let mut history: VecDeque<String> = VecDeque::new();
        let mut st = Stats::default();
        // Whatever the setup left cached is flushed; the model starts empty.
        flush_all(&mut s.k)?;
        take_reads(&mut s.k);
        for op in 0..ops {
            if history.len() == 16 {
                history.pop_front();
            }
            if rng.gen_range(0..100) < 12 {
                let d = random_invalidation(&mut rng, &s);
                s.k.ops_mut().hw_mut().submit_and_wait(&[d])?;
                model.execute(&d);
                take_reads(&mut s.k);
                st.invalidations += 1;
                history.push_back(format!("#{op} {d:?}"));
            } else {
                let src = s.srcs[rng.gen_range(0..s.srcs.len())];
                let dom = &s.doms[src.dom];
                // Half the time one of a few hot pages, so that hits happen.
                let n = if rng.gen_bool(0.5) {
                    3
                } else {
                    dom.pages.len()
                };
                let (va, size) = dom.pages[rng.gen_range(0..n)];
                let addr = va + (rng.gen_range(0..size) & !0x3f);
                let req = MemRequest::read(src.rid, (op & 0xff) as u16, addr, 1);
                let req = match src.pasid {
                    Some(p) => req.with_pasid(p, false, false),
                    None => req,
                };
                let j = check(&mut s.k, &req)?;
                let (Outcome::Translated(_), Some(pe), Some(used), Some(leaf)) = (
                    &j.walk.outcome,
                    j.walk.pasid_entry,
                    j.walk.pasid,
                    j.walk.leaf,
                ) else {
                    bail!(
                        "#{op} {req}: expected a translation, golden says {}",
                        j.walk.outcome
                    );
                };
                let size = LeafSize::from_bytes(leaf.size).context("leaf size")?;
                let info = PcInfo {
                    did: pe.did,
                    pasid: used,
                    ss: pe.pgtt == Pgtt::SecondStage,
                };
                ensure!(
                    pe.did == dom.did,
                    "{req}: walked DID {} not the domain's {}",
                    pe.did,
                    dom.did
                );
                s.doms[src.dom].tags.insert(used);
                let key = PcKey {
                    rid: src.rid,
                    pasid: src.pasid,
                };
                let want = model.request(key, info, addr >> 12, size);
                let got = take_reads(&mut s.k);
                history.push_back(format!("#{op} {req}: {want}, DUT read {got}"));
                if got != want.reads {
                    bail!(
                        "#{op} {req}: the reference model predicts {want}; the DUT made {got} memory \
                         reads ({}). Last operations:\n  {}",
                        if got > want.reads {
                            "state the model keeps was lost: replacement or an over-wide invalidation"
                        } else {
                            "state survived that the model removed: an incomplete invalidation"
                        },
                        history.iter().cloned().collect::<Vec<_>>().join("\n  ")
                    );
                }
                st.requests += 1;
                match (want.pcache_hit, want.iotlb_hit) {
                    (true, true) => st.must_hit += 1,
                    (true, false) => st.page_walks += 1,
                    _ => st.full_walks += 1,
                }
                let (pc, tl) = model.occupancy();
                st.pcache_full += usize::from(pc == cfg.pcache_entries);
                st.iotlb_full += usize::from(tl == cfg.iotlb_entries);
                if let Some(l) = want.psc_level {
                    st.psc_starts[usize::from(l - 2)] += 1;
                }
                if let (Some([_, _, pde]), Some(p)) = (model.psc_occupancy(), cfg.psc) {
                    st.pde_full += usize::from(pde == p.l2_entries);
                }
            }
            // Everything sent has been answered and the queue is empty: no memory traffic.
            let e = env(&mut s.k);
            e.expect_idle();
            e.idle(4);
        }
        eprintln!("cache_model stream {seed:#x}: {st:?}");
        // The stream exercised what it is meant to.
        ensure!(
            st.must_hit > ops / 10
                && st.page_walks > ops / 20
                && st.full_walks > ops / 20
                && st.iotlb_full > ops / 10
                && st.pcache_full > ops / 20
                && st.invalidations > ops / 20,
            "the stream is too tame: {st:?}"
        );
        if cfg.psc.is_some() {
            ensure!(
                st.psc_starts[0] > ops / 10
                    && st.psc_starts[1] > ops / 50
                    && st.psc_starts[2] > 0
                    && st.pde_full > ops / 200,
                "the stream is too tame for the paging-structure caches: {st:?}"
            );
        }
        Ok(())
    })
}

#[test]
fn random_streams_hit_and_miss_as_the_reference_model_says() -> Result<(), TestFailure> {
    for seed in [0xcac4_e001, 0xcac4_e002, 0xcac4_e003] {
        stream(seed, 1500)?;
    }
    Ok(())
}
