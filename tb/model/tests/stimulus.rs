//! The random stimulus reaches what it is meant to: most judged requests translate, every
//! fault reason the driver's tables can produce shows up through the RID and through a
//! PASID, 1 GiB leaves are used, FPD suppresses recording, and the driver issues every
//! invalidation granularity it has a reason to. Also the driver behaviour the stimulus
//! relies on: 1 GiB maps become 1 GiB leaves, FPD changes and root-entry re-programming
//! issue the invalidations Linux / VT-d ask for.

use std::collections::BTreeSet;

use iommu_model::driver::DriverQuirks;
use iommu_model::golden::{Outcome, Request};
use iommu_model::kernel::{rid, DomainType, FpdAt, Prot, Stage};
use iommu_model::qi::{CcGran, Descriptor, IotlbGran, PcGran};
use iommu_model::sim::{golden_kernel, GoldenExt, GoldenKernel};
use iommu_model::stimulus::{Stimulus, Weights};
use iommu_model::FaultReason;

const GIB: u64 = 1 << 30;

#[derive(Default)]
struct Seen {
    judged: u64,
    translated: u64,
    faults: BTreeSet<(u8, bool)>,
    gib: BTreeSet<(bool, bool)>,
    suppressed: u64,
    descs: BTreeSet<String>,
}

/// Runs seeds as the RTL regression does: 3 requests generated before each operation (sent
/// during it there, not judged here), the operation, then 4 judged requests.
fn run(seeds: std::ops::Range<u64>, w: Weights) -> Seen {
    let mut s = Seen::default();
    for seed in seeds {
        let mut k = golden_kernel(DriverQuirks::default()).unwrap();
        Stimulus::add_devices(&mut k).unwrap();
        let mut st = Stimulus::with_weights(seed, w);
        for _ in 0..30 {
            for _ in 0..3 {
                st.request(&k);
            }
            st.step(&mut k);
            for _ in 0..4 {
                let r = st.request(&k);
                let walk = k.translate(&r);
                assert!(
                    k.allowed(&r).check(&walk.outcome).is_ok(),
                    "seed {seed}: {r}"
                );
                s.judged += 1;
                match walk.outcome {
                    Outcome::Translated(_) => {
                        s.translated += 1;
                        if walk.leaf.is_some_and(|l| l.size == GIB) {
                            let fs = walk
                                .pasid_entry
                                .is_some_and(|p| p.pgtt == iommu_model::golden::Pgtt::FirstStage);
                            s.gib.insert((fs, r.pasid.is_some()));
                        }
                    }
                    Outcome::Fault(f) => {
                        s.faults.insert((f.code(), r.pasid.is_some()));
                        s.suppressed += u64::from(!walk.record);
                    }
                    _ => {}
                }
            }
        }
        for b in k.ops().log() {
            for d in &b.descs {
                s.descs
                    .insert(format!("{:?}", std::mem::discriminant(d)) + &gran(d));
            }
        }
    }
    s
}

fn gran(d: &Descriptor) -> String {
    match d {
        Descriptor::ContextCache { gran, .. } => format!("ctx {gran:?}"),
        Descriptor::Iotlb { gran, .. } => format!("iotlb {gran:?}"),
        Descriptor::PasidIotlb { gran, .. } => format!("piotlb {gran:?}"),
        Descriptor::PasidCache { gran, .. } => format!("pc {gran:?}"),
        Descriptor::Wait { .. } => "wait".into(),
        Descriptor::DevTlb { size, .. } => format!("devtlb s={size}"),
        Descriptor::PasidDevTlb { size, .. } => format!("pdevtlb s={size}"),
    }
}

#[test]
fn most_judged_requests_translate_and_every_reachable_fault_shows_up() {
    let s = run(0..300, Weights::default());
    let pct = 100 * s.translated / s.judged;
    eprintln!(
        "{}/{} judged requests translated ({pct}%)",
        s.translated, s.judged
    );
    assert!(pct >= 50, "only {pct}% of {} requests translated", s.judged);
    // Every reason the Linux-like tables can produce, through the RID and a PASID
    // (0x45, 0x46, 0x5C, 0x5D and 0x81 need a PASID), the access errors of memory errors
    // on structure pages included.
    let both = [
        0x38, 0x39, 0x40, 0x41, 0x50, 0x51, 0x58, 0x59, 0x70, 0x71, 0x78, 0x79, 0x80, 0x83, 0x84,
        0x85, 0x86,
    ];
    let pasid_only = [0x45, 0x46, 0x5C, 0x5D, 0x81];
    let mut missing = Vec::new();
    for c in both {
        for via in [false, true] {
            if !s.faults.contains(&(c, via)) {
                missing.push(format!("{c:#x} via {}", if via { "PASID" } else { "RID" }));
            }
        }
    }
    for c in pasid_only {
        if !s.faults.contains(&(c, true)) {
            missing.push(format!("{c:#x} via PASID"));
        }
    }
    assert!(missing.is_empty(), "never produced: {missing:?}");
    assert_eq!(
        s.gib.len(),
        4,
        "1 GiB leaves (first stage?, via PASID?): {:?}",
        s.gib
    );
    assert!(s.suppressed > 0, "no FPD-suppressed fault");
    for want in [
        "ctx Global",
        "ctx Device",
        "iotlb Global",
        "iotlb Domain",
        "pc Global",
        "pc Domain",
        "pc Pasid",
    ] {
        assert!(
            s.descs.iter().any(|d| d.ends_with(want)),
            "no {want} descriptor: {:?}",
            s.descs
        );
    }
}

#[test]
fn zero_weights_leave_the_new_operations_out() {
    let w = Weights::parse("fpd=0,set_root_entry=0,mem_error=0").unwrap();
    let s = run(0..40, w);
    assert_eq!(s.suppressed, 0);
    assert!(!s.descs.iter().any(|d| d.ends_with("ctx Device")));
    let access = [0x38, 0x40, 0x50, 0x58, 0x70, 0x78];
    assert!(
        !s.faults.iter().any(|(c, _)| access.contains(c)),
        "an access error without memory errors: {:?}",
        s.faults
    );
}

fn system() -> GoldenKernel {
    let mut k = golden_kernel(DriverQuirks::default()).unwrap();
    Stimulus::add_devices(&mut k).unwrap();
    k
}

#[test]
fn a_1gib_map_is_one_1gib_leaf_in_both_stages() {
    for stage in [Stage::First, Stage::Second] {
        let mut k = system();
        let dev = 0x0100;
        let d = k.domain_alloc(DomainType::Paging(stage)).unwrap();
        k.attach_device(dev, d).unwrap();
        k.map(d, GIB, 9 * GIB, GIB, Prot::RW).unwrap();
        let leaves: Vec<u64> = k.state().domains[&d]
            .mappings
            .values()
            .map(|m| m.size)
            .collect();
        assert_eq!(leaves, vec![GIB], "{stage:?}: one leaf");
        let w = k.translate(&Request::read(dev, GIB + 0x1234_5678, 8));
        assert_eq!(w.outcome, Outcome::Translated(9 * GIB + 0x1234_5678));
        assert_eq!(
            w.leaf.map(|l| l.size),
            Some(GIB),
            "{stage:?}: the walk ends at level 3"
        );
        // Misaligned by 2 MiB: 2 MiB leaves instead.
        k.map(d, 4 * GIB + (2 << 20), 20 * GIB, GIB, Prot::RW)
            .unwrap();
        assert!(k.state().domains[&d]
            .mappings
            .range(4 * GIB..)
            .all(|(_, m)| m.size == 2 << 20));
    }
}

#[test]
fn fpd_in_the_context_entry_suppresses_recording_after_linux_s_flushes() {
    let mut k = system();
    let dev = 0x0180;
    let d = k.domain_alloc(DomainType::Paging(Stage::Second)).unwrap();
    k.attach_device(dev, d).unwrap();
    let pasid = k.enable_dma_pasid(dev).unwrap();
    let did = k.ops().domain_did(d).unwrap();
    let probe = Request::read(dev, 0x5000, 8).with_pasid(pasid + 7);
    assert!(k.translate(&probe).record);
    let before = k.ops().log().len();
    k.set_fault_processing(dev, FpdAt::Context, true).unwrap();
    let w = k.translate(&probe);
    assert_eq!(w.outcome, Outcome::Fault(FaultReason::PasidEntryNotPresent));
    assert!(!w.record, "FPD suppresses the record");
    let descs: Vec<Descriptor> = k.ops().log()[before..]
        .iter()
        .flat_map(|b| b.descs.iter().copied())
        .filter(|d| !matches!(d, Descriptor::Wait { .. }))
        .collect();
    // intel_context_flush_present(): device-selective context cache, then per DID of the
    // present PASID entries (RID and DMA PASID share one) PASID cache and IOTLB.
    assert!(
        matches!(
            descs[..],
            [
                Descriptor::ContextCache { gran: CcGran::Device, sid, .. },
                Descriptor::PasidCache { gran: PcGran::Domain, did: d1, .. },
                Descriptor::Iotlb { gran: IotlbGran::Domain, did: d2, .. },
            ] if sid == dev && d1 == did && d2 == did
        ),
        "{descs:?}"
    );
    // The maximal cache sees the change only because of those flushes.
    assert!(!k.translate_cached(&probe).record);
    k.set_fault_processing(dev, FpdAt::Context, false).unwrap();
    assert!(k.translate(&probe).record);
    assert!(k.translate_cached(&probe).record);
}

#[test]
fn fpd_in_pasid_structures_and_its_errors() {
    let mut k = system();
    let dev = 0x0100;
    let d = k.domain_alloc(DomainType::Paging(Stage::First)).unwrap();
    k.attach_device(dev, d).unwrap();
    let did = k.ops().domain_did(d).unwrap();
    let unmapped = Request::read(dev, 0x7000, 8);
    k.set_fault_processing(dev, FpdAt::PasidEntry(0), true)
        .unwrap();
    let last = k.ops().log().last().unwrap().descs.clone();
    assert!(matches!(
        last[..],
        [Descriptor::PasidIotlb { did: x, pasid: 0, .. }, Descriptor::Wait { .. }] if x == did
    ));
    assert!(!k.translate(&unmapped).record);
    assert!(!k.translate_cached(&unmapped).record);
    k.set_fault_processing(dev, FpdAt::PasidEntry(0), false)
        .unwrap();
    k.set_fault_processing(dev, FpdAt::PasidDir(0), true)
        .unwrap();
    let last = k.ops().log().last().unwrap().descs.clone();
    assert!(matches!(
        last[..],
        [Descriptor::PasidCache { gran: PcGran::Domain, did: x, .. }, Descriptor::Wait { .. }] if x == did
    ));
    let w = k.translate(&Request::read(dev, 0, 8).with_pasid(5));
    assert_eq!(w.outcome, Outcome::Fault(FaultReason::PasidEntryNotPresent));
    assert!(!w.record);
    assert!(!k.translate_cached(&unmapped).record);
    // Errors: no such device, no PASID entry, no table behind the directory entry.
    use iommu_model::kernel::Errno;
    assert_eq!(
        k.set_fault_processing(rid(7, 0, 0), FpdAt::Context, true),
        Err(Errno::ENODEV)
    );
    assert_eq!(
        k.set_fault_processing(dev, FpdAt::PasidEntry(3), true),
        Err(Errno::ENOENT)
    );
    assert_eq!(
        k.set_fault_processing(dev, FpdAt::PasidDir(9), true),
        Err(Errno::ENOENT)
    );
}

#[test]
fn set_root_entry_issues_the_global_invalidations() {
    let mut k = system();
    let d = k.domain_alloc(DomainType::Identity).unwrap();
    k.attach_device(0x0300, d).unwrap();
    let r = Request::write(0x0300, 0x1234_0000, 8);
    assert_eq!(
        k.translate_cached(&r).outcome,
        Outcome::Translated(0x1234_0000)
    );
    k.set_root_entry().unwrap();
    let b = k.ops().log().last().unwrap();
    assert!(matches!(
        b.descs[..],
        [
            Descriptor::ContextCache {
                gran: CcGran::Global,
                ..
            },
            Descriptor::PasidCache {
                gran: PcGran::Global,
                ..
            },
            Descriptor::Iotlb {
                gran: IotlbGran::Global,
                ..
            },
            Descriptor::Wait { .. },
        ]
    ));
    assert_eq!(
        k.hw().cache.pasid_len(),
        0,
        "the global flushes empty the cache"
    );
    assert_eq!(k.translate(&r).outcome, Outcome::Translated(0x1234_0000));
}

#[test]
fn pasid_detach_flushes_the_pasid_cache_and_attach_needs_no_flush_without_caching_mode() {
    let mut k = system();
    let dev = 0x0180;
    let d = k.domain_alloc(DomainType::Paging(Stage::First)).unwrap();
    let n = k.ops().log().len();
    k.attach_device_pasid(d, dev, 9).unwrap();
    // CAP.CM = 0: intel_pasid_setup_*() only flushes the write buffer on a new entry.
    assert_eq!(k.ops().log().len(), n);
    let did = k.ops().domain_did(d).unwrap();
    k.detach_device_pasid(d, dev, 9).unwrap();
    let descs: Vec<Descriptor> = k.ops().log()[n..]
        .iter()
        .flat_map(|b| b.descs.iter().copied())
        .filter(|d| !matches!(d, Descriptor::Wait { .. }))
        .collect();
    // intel_pasid_tear_down_entry(): PASID-selective PASID cache, then the PASID's IOTLB,
    // then (0x0180 has ATS) the PASID's whole device TLB.
    assert!(
        matches!(
            descs[..],
            [
                Descriptor::PasidCache { gran: PcGran::Pasid, did: a, pasid: 9 },
                Descriptor::PasidIotlb { did: b, pasid: 9, .. },
                Descriptor::PasidDevTlb { sid, pasid: 9, .. },
            ] if a == did && b == did && sid == dev
        ),
        "{descs:?}"
    );
}
