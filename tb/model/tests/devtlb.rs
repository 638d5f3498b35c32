//! Device-TLB invalidation (docs/contract.md 6.3, 6.4): the descriptors the driver issues
//! for an ATS device, where they sit in a batch, what the golden hardware's Invalidate
//! Requests leave in the device's ATS cache, and the `skip-pasid-devtlb-flush` bug switch
//! caught by the oracle's rule for device caches, by hand and on random sequences.

use iommu_model::devtlb::InvalidateRequest;
use iommu_model::driver::{DriverQuirks, HwError, IommuHw};
use iommu_model::golden::{GoldenHw, Request};
use iommu_model::kernel::dma::DmaDirection;
use iommu_model::kernel::{Stage, NO_PASID};
use iommu_model::locate::Locator;
use iommu_model::mem::{Mem, PhysMem};
use iommu_model::oracle::stale_device_tlb;
use iommu_model::qi::Descriptor;
use iommu_model::sim::{golden_kernel_on, GoldenKernel};
use iommu_model::stimulus::{Stimulus, DEVS};
use iommu_model::tables::context as ce;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod support;

use support::{ats_dma_system, dev, dt_hw, BUF};

/// An ATS device whose DMA domain is also attached at its DMA PASID, one page mapped.
fn system(quirks: DriverQuirks, stage: Stage) -> (GoldenKernel, u32, u64) {
    ats_dma_system(dt_hw(), quirks, stage)
}

fn position(descs: &[Descriptor], f: impl FnMut(&Descriptor) -> bool) -> Option<usize> {
    descs.iter().position(f)
}

/// Whether `d` is the IOTLB flush of the cache tag at `pasid` (type 6 for first-stage
/// domains, type 2 for second-stage ones, which carry no PASID).
fn is_iotlb_of(d: &Descriptor, pasid: u32, nth_type2: &mut usize) -> bool {
    match d {
        Descriptor::PasidIotlb { pasid: p, .. } => *p == pasid,
        Descriptor::Iotlb { .. } => {
            *nth_type2 += 1;
            *nth_type2 == if pasid == NO_PASID { 1 } else { 2 }
        }
        _ => false,
    }
}

#[test]
fn unmap_flushes_the_device_tlb_per_tag_after_the_iotlb_and_before_the_wait() {
    for stage in [Stage::First, Stage::Second] {
        let (mut k, pasid, iova) = system(DriverQuirks::default(), stage);
        k.dma_unmap_single(dev(), iova, 0x1000, DmaDirection::Bidirectional)
            .unwrap();
        let batch = k.ops().log().last().unwrap().descs.clone();
        let t3 = position(&batch, |d| matches!(d, Descriptor::DevTlb { .. })).unwrap();
        let t8 = position(&batch, |d| matches!(d, Descriptor::PasidDevTlb { .. })).unwrap();
        let mut n = 0;
        let rid_iotlb = position(&batch, |d| is_iotlb_of(d, NO_PASID, &mut n)).unwrap();
        let mut n = 0;
        let pasid_iotlb = position(&batch, |d| is_iotlb_of(d, pasid, &mut n)).unwrap();
        let wait = batch.len() - 1;
        assert!(matches!(batch[wait], Descriptor::Wait { .. }), "{stage:?}");
        assert!(rid_iotlb < t3 && pasid_iotlb < t8, "{stage:?}: {batch:?}");
        assert!(t3 < t8 && t8 < wait, "{stage:?}: {batch:?}");
        assert_eq!(batch.len(), 5, "{stage:?}: {batch:?}");
        // Each names the device and covers what was unmapped, as Linux encodes it.
        let (addr, mask) = iommu_model::driver::psi_aligned(iova, iova + 0xFFF);
        assert_eq!(
            batch[t3],
            Descriptor::dev_tlb(dev(), dev(), 32, addr, mask),
            "{stage:?}"
        );
        assert_eq!(
            batch[t8],
            Descriptor::pasid_dev_tlb(dev(), dev(), pasid, 32, addr, mask),
            "{stage:?}"
        );
        for d in [&batch[t3], &batch[t8]] {
            let (lo, hi) = d.dev_tlb_range().unwrap();
            assert!(lo <= iova && iova + 0xFFF <= hi, "{d}");
        }
    }
}

#[test]
fn the_bug_switch_drops_only_the_pasid_device_tlb_flush() {
    let (mut k, _, iova) = system(
        DriverQuirks {
            skip_pasid_devtlb_flush: true,
            ..DriverQuirks::default()
        },
        Stage::First,
    );
    k.dma_unmap_single(dev(), iova, 0x1000, DmaDirection::Bidirectional)
        .unwrap();
    let batch = &k.ops().log().last().unwrap().descs;
    let types: Vec<u8> = batch.iter().map(Descriptor::type_code).collect();
    assert!(types.contains(&3) && !types.contains(&8), "{types:?}");
    assert_eq!(types.iter().filter(|&&t| t == 6).count(), 2, "{types:?}");
}

/// Warms the device's ATS cache through the RID and the PASID, unmaps with sync, and
/// returns the entries the oracle rejects afterwards.
fn stale_after_unmap(quirks: DriverQuirks) -> Vec<String> {
    let (mut k, pasid, iova) = system(quirks, Stage::First);
    for p in [None, Some(pasid)] {
        let e = k.ops_mut().hw_mut().ats_translate(dev(), p, iova).unwrap();
        assert_eq!((e.pa, e.r, e.w), (BUF, true, true));
    }
    assert!(stale_device_tlb(&k, dev(), &k.ops().hw().atc[&dev()]).is_empty());
    k.dma_unmap_single(dev(), iova, 0x1000, DmaDirection::Bidirectional)
        .unwrap();
    stale_device_tlb(&k, dev(), &k.ops().hw().atc[&dev()])
        .iter()
        .map(|(e, m)| format!("{e}: {m}"))
        .collect()
}

#[test]
fn after_unmap_no_device_cache_holds_the_old_translation() {
    assert_eq!(
        stale_after_unmap(DriverQuirks::default()),
        Vec::<String>::new()
    );
    let stale = stale_after_unmap(DriverQuirks {
        skip_pasid_devtlb_flush: true,
        ..DriverQuirks::default()
    });
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert!(stale[0].starts_with("pasid="), "{stale:?}");
}

#[test]
fn detach_tears_down_the_device_tlb_too() {
    let (mut k, pasid, iova) = system(DriverQuirks::default(), Stage::First);
    k.ops_mut()
        .hw_mut()
        .ats_translate(dev(), Some(pasid), iova)
        .unwrap();
    k.disable_dma_pasid(dev()).unwrap();
    // intel_pasid_tear_down_entry(): PASID cache, IOTLB, then the whole device TLB of
    // that PASID, each in its own batch.
    let log = k.ops().log();
    let last = &log[log.len() - 1].descs;
    assert_eq!(
        last[0],
        Descriptor::pasid_dev_tlb(dev(), dev(), pasid, 32, 0, 52)
    );
    assert_eq!(last[0].dev_tlb_range(), Some((0, u64::MAX)));
    assert!(k.ops().hw().atc[&dev()].is_empty());
}

/// The RTL backend's situation before its queue executes types 3 and 8: ECAP.DT = 1 but
/// the hardware says it cannot execute them.
struct NoDevTlbQueue(GoldenHw);

impl IommuHw for NoDevTlbQueue {
    fn mem(&mut self) -> &mut Mem {
        self.0.mem()
    }
    fn read_cap(&mut self) -> u64 {
        self.0.read_cap()
    }
    fn read_ecap(&mut self) -> u64 {
        self.0.read_ecap()
    }
    fn set_root_table(&mut self, rtaddr: u64) -> Result<(), HwError> {
        self.0.set_root_table(rtaddr)
    }
    fn enable_translation(&mut self) -> Result<(), HwError> {
        self.0.enable_translation()
    }
    fn submit(&mut self, descs: &[Descriptor]) -> Result<(), HwError> {
        if descs.iter().any(|d| matches!(d.type_code(), 3 | 8)) {
            return Err(HwError::Queue(format!("unsupported: {descs:?}")));
        }
        self.0.submit(descs)
    }
    fn executes_dev_tlb_invalidations(&self) -> bool {
        false
    }
}

#[test]
fn hardware_that_cannot_execute_device_tlb_invalidations_gets_none() {
    {
        let (mut k, _, iova) = ats_dma_system(
            NoDevTlbQueue(dt_hw()),
            DriverQuirks::default(),
            Stage::First,
        );
        let caps = k.ops().caps();
        assert!(caps.dev_tlb() && !caps.dev_tlb_usable());
        k.dma_unmap_single(dev(), iova, 0x1000, DmaDirection::Bidirectional)
            .unwrap();
        k.disable_dma_pasid(dev()).unwrap();
        let issued = k
            .ops()
            .log()
            .iter()
            .flat_map(|b| b.descs.iter())
            .filter(|d| matches!(d.type_code(), 3 | 8))
            .count();
        assert_eq!(issued, 0);
        // DTE still follows ECAP.DT and the device's ATS capability.
        let mem = &k.ops().hw().0.mem;
        let ctx = Locator::new(mem, k.ops().rtaddr())
            .context_entry(dev())
            .unwrap();
        assert_ne!(mem.read64(ctx).unwrap() & ce::DTE, 0);
    }
}

/// Random kernel-API sequences on golden hardware with ECAP.DT = 1: after every operation
/// the ATS device asks for translations of random pages, and then every entry of its ATS
/// cache must be allowed by the oracle.
struct Run {
    fills: u64,
    invalidated: u64,
}

fn run(seed: u64, quirks: DriverQuirks, ops: usize) -> Result<Run, String> {
    let mut k = golden_kernel_on(dt_hw(), quirks).unwrap();
    Stimulus::add_devices(&mut k).unwrap();
    let ats: Vec<u16> = k
        .state()
        .devices
        .values()
        .filter(|d| d.desc.ats)
        .map(|d| d.desc.rid)
        .collect();
    assert!(!ats.is_empty() && ats.iter().all(|r| DEVS.iter().any(|d| d.0 == *r)));
    let mut stim = Stimulus::new(seed);
    let mut rng = StdRng::seed_from_u64(seed ^ 0xA75);
    let mut out = Run {
        fills: 0,
        invalidated: 0,
    };
    for step in 0..ops {
        let before: usize = k.ops().hw().atc.values().map(|t| t.len()).sum();
        stim.step(&mut k);
        let after: usize = k.ops().hw().atc.values().map(|t| t.len()).sum();
        out.invalidated += before.saturating_sub(after) as u64;
        for &r in &ats {
            let stale = stale_device_tlb(
                &k,
                r,
                k.ops().hw().atc.get(&r).unwrap_or(&Default::default()),
            );
            if let Some((e, m)) = stale.first() {
                return Err(format!(
                    "seed {seed} step {step}: device {r:#06x} holds {e}: {m}\n  ops:\n    {}",
                    stim.log.join("\n    ")
                ));
            }
        }
        for _ in 0..6 {
            let req: Request = stim.request(&k);
            // PASID 0 is the RID's (IOMMU_NO_PASID): its device-TLB tag is flushed without
            // a PASID prefix, so a device uses PASID 0 only without one.
            if req.pasid == Some(NO_PASID) {
                continue;
            }
            let r = ats[rng.gen_range(0..ats.len())];
            if k.ops_mut()
                .hw_mut()
                .ats_translate(r, req.pasid, req.addr)
                .is_some()
            {
                out.fills += 1;
            }
        }
    }
    Ok(out)
}

#[test]
fn random_sequences_keep_device_caches_within_the_oracle() {
    let (mut fills, mut invalidated) = (0, 0);
    for seed in 0..300u64 {
        match run(seed, DriverQuirks::default(), 40) {
            Ok(r) => {
                fills += r.fills;
                invalidated += r.invalidated;
            }
            Err(e) => panic!("{e}"),
        }
    }
    eprintln!("fills {fills}, invalidated {invalidated}");
    assert!(fills > 1000 && invalidated > 100, "{fills} {invalidated}");
}

#[test]
fn random_sequences_find_the_skipped_pasid_device_tlb_flush() {
    let quirks = DriverQuirks {
        skip_pasid_devtlb_flush: true,
        ..DriverQuirks::default()
    };
    let found = (0..300u64).find_map(|seed| run(seed, quirks, 60).err());
    let e = found.expect("the bug switch must be caught by some sequence");
    eprintln!("{}", e.lines().next().unwrap_or_default());
    assert!(e.contains("holds pasid="), "{e}");
}

#[test]
fn invalidate_requests_carry_the_descriptor_fields() {
    let d = Descriptor::pasid_dev_tlb(dev(), dev(), 7, 32, 0x40_0000, 9);
    let r = InvalidateRequest::from_descriptor(&d).unwrap();
    assert_eq!(r.device_id, dev());
    assert_eq!(r.pasid, Some(7));
    assert_eq!((r.lo, r.hi), d.dev_tlb_range().unwrap());
    assert_eq!(r.hi - r.lo + 1, 0x1000 << 9);
    assert!(InvalidateRequest::from_descriptor(&Descriptor::Wait {
        intr: false,
        sw: true,
        fence: false,
        status_data: 0,
        status_addr: 0,
    })
    .is_none());
}
