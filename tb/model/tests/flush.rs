//! Invalidation behaviour: the skip-PASID-flush bug switch is caught by the maximal cache
//! and the oracle; a second-stage DID flush covers every PASID by itself; the stale window
//! between an unmap and its wait; and what the driver writes (Linux's layout and order).

use iommu_model::driver::{DriverQuirks, FIRST_PAGING_DID};
use iommu_model::fault::FaultReason as F;
use iommu_model::golden::{GoldenHw, Outcome, Request};
use iommu_model::kernel::dma::DmaDirection;
use iommu_model::kernel::{rid, DeviceDesc, DomainType, Prot, Stage};
use iommu_model::mem::{Mem, PhysMem};
use iommu_model::qi::{Descriptor, IotlbGran, PcGran, PiotlbGran};
use iommu_model::sim::{golden_kernel, GoldenExt, GoldenKernel};

mod support;

use support::{dev, dma_system, BUF};

fn system(quirks: DriverQuirks, stage: Stage) -> (GoldenKernel, u32, u64) {
    dma_system(GoldenHw::new(Mem::new()), quirks, stage, false)
}

/// Warms the cache through the RID and the PASID, unmaps, and returns the cached outcomes
/// (RID, PASID) afterwards plus whether the oracle accepts each.
fn unmap_after_warm(k: &mut GoldenKernel, pasid: u32, iova: u64) -> [(Outcome, bool); 2] {
    let reqs = [
        Request::read(dev(), iova, 8),
        Request::read(dev(), iova, 8).with_pasid(pasid),
    ];
    for r in &reqs {
        assert_eq!(k.translate_cached(r).outcome, Outcome::Translated(BUF));
    }
    k.dma_unmap_single(dev(), iova, 0x1000, DmaDirection::Bidirectional)
        .unwrap();
    reqs.map(|r| {
        let o = k.translate_cached(&r).outcome;
        (o, k.allowed(&r).contains(&o))
    })
}

#[test]
fn skipping_the_pasid_flush_leaves_a_stale_pasid_translation_the_oracle_rejects() {
    let (mut k, pasid, iova) = system(
        DriverQuirks {
            skip_pasid_flush: true,
            ..DriverQuirks::default()
        },
        Stage::First,
    );
    let [(via_rid, rid_ok), (via_pasid, pasid_ok)] = unmap_after_warm(&mut k, pasid, iova);
    assert_eq!(
        via_rid,
        Outcome::Fault(F::FsNotPresent),
        "the RID tag was flushed"
    );
    assert!(rid_ok);
    assert_eq!(
        via_pasid,
        Outcome::Translated(BUF),
        "stale through the PASID"
    );
    assert!(!pasid_ok, "the oracle must reject the stale translation");
    let req = Request::read(dev(), iova, 8).with_pasid(pasid);
    let err = k.allowed(&req).check(&via_pasid).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "oracle allowed {{Fault({})}}, DUT did Translated({BUF:#x})",
            F::FsNotPresent
        )
    );
    // Memory itself is right: only the cache is stale.
    assert_eq!(k.translate(&req).outcome, Outcome::Fault(F::FsNotPresent));
    let last = k.ops().log().last().unwrap();
    assert!(!last
        .descs
        .iter()
        .any(|d| matches!(d, Descriptor::PasidIotlb { pasid: p, .. } if *p == pasid)));
}

#[test]
fn first_stage_unmap_flushes_every_pasid_tag() {
    let (mut k, pasid, iova) = system(DriverQuirks::default(), Stage::First);
    let [(via_rid, rid_ok), (via_pasid, pasid_ok)] = unmap_after_warm(&mut k, pasid, iova);
    assert_eq!(via_rid, Outcome::Fault(F::FsNotPresent));
    assert_eq!(via_pasid, Outcome::Fault(F::FsNotPresent));
    assert!(rid_ok && pasid_ok);
    let did = k
        .ops()
        .domain_did(k.state().devices[&dev()].rid_domain.unwrap())
        .unwrap();
    assert_eq!(did, FIRST_PAGING_DID);
    let last = k.ops().log().last().unwrap();
    let expect: Vec<Descriptor> = [0, pasid]
        .iter()
        .map(|&p| Descriptor::PasidIotlb {
            gran: PiotlbGran::Page,
            did,
            pasid: p,
            addr: iova,
            am: 0,
            // A 4 KiB unmap frees no page-table page: IH = 1, as Linux sets it.
            ih: true,
        })
        .collect();
    assert_eq!(&last.descs[..2], &expect[..]);
    assert!(matches!(last.descs[2], Descriptor::Wait { sw: true, .. }));
    assert_eq!(last.descs.len(), 3);
}

#[test]
fn second_stage_did_flush_covers_every_pasid_even_with_the_bug_switch() {
    for quirks in [
        DriverQuirks::default(),
        DriverQuirks {
            skip_pasid_flush: true,
            ..DriverQuirks::default()
        },
    ] {
        let (mut k, pasid, iova) = system(quirks, Stage::Second);
        let [(via_rid, rid_ok), (via_pasid, pasid_ok)] = unmap_after_warm(&mut k, pasid, iova);
        assert_eq!(via_rid, Outcome::Fault(F::SsNotPresent), "{quirks:?}");
        assert_eq!(via_pasid, Outcome::Fault(F::SsNotPresent), "{quirks:?}");
        assert!(rid_ok && pasid_ok);
        let last = k.ops().log().last().unwrap();
        let flushes: Vec<&Descriptor> = last
            .descs
            .iter()
            .filter(|d| !matches!(d, Descriptor::Wait { .. }))
            .collect();
        assert!(flushes.iter().all(|d| matches!(
            d,
            Descriptor::Iotlb {
                gran: IotlbGran::Page,
                did: 2,
                am: 0,
                ..
            }
        )));
        // Linux issues one per tag; with the switch only the RID tag's remains, and suffices.
        assert_eq!(flushes.len(), if quirks.skip_pasid_flush { 1 } else { 2 });
    }
}

#[test]
fn stale_window_between_unmap_and_sync() {
    let (mut k, pasid, iova) = system(DriverQuirks::default(), Stage::First);
    let d = k.state().devices[&dev()].rid_domain.unwrap();
    let req = Request::write(dev(), iova + 8, 8).with_pasid(pasid);
    assert_eq!(
        k.translate_cached(&req).outcome,
        Outcome::Translated(BUF + 8)
    );
    k.unmap(d, iova, 0x1000).unwrap();
    let allowed = k.allowed(&req);
    assert!(allowed.contains(&Outcome::Translated(BUF + 8)), "{allowed}");
    assert!(
        allowed.contains(&Outcome::Fault(F::FsNotPresent)),
        "{allowed}"
    );
    assert_eq!(allowed.len(), 2);
    assert_eq!(
        k.translate_cached(&req).outcome,
        Outcome::Translated(BUF + 8),
        "cache not yet flushed"
    );
    assert_eq!(k.translate(&req).outcome, Outcome::Fault(F::FsNotPresent));
    k.iotlb_sync(d).unwrap();
    assert_eq!(k.allowed(&req).translations(), Vec::<u64>::new());
    assert_eq!(
        k.translate_cached(&req).outcome,
        Outcome::Fault(F::FsNotPresent)
    );
}

#[test]
fn asynchronous_waits_keep_the_window_open_until_the_harness_completes_them() {
    use iommu_model::driver::Driver;
    use iommu_model::golden::GoldenHw;
    use iommu_model::kernel::{Kernel, KernelConfig};
    let drv = Driver::new(GoldenHw::default(), DriverQuirks::default()).unwrap();
    let mut k = Kernel::new(drv, KernelConfig { sync_waits: false });
    k.add_device(DeviceDesc {
        rid: dev(),
        max_pasids: 16,
        ats: false,
    })
    .unwrap();
    let d = k.domain_alloc(DomainType::Paging(Stage::Second)).unwrap();
    k.attach_device(dev(), d).unwrap();
    k.map(d, 0x4000, BUF, 0x1000, Prot::RW).unwrap();
    let req = Request::read(dev(), 0x4000, 4);
    k.unmap(d, 0x4000, 0x1000).unwrap();
    k.iotlb_sync(d).unwrap();
    assert!(
        k.allowed(&req).contains(&Outcome::Translated(BUF)),
        "wait not yet seen"
    );
    assert_eq!(k.complete_invalidations(), 1);
    assert!(!k.allowed(&req).contains(&Outcome::Translated(BUF)));
}

#[test]
fn detach_tears_down_in_linux_order() {
    for (stage, iotlb) in [(Stage::First, true), (Stage::Second, false)] {
        let (mut k, pasid, _) = system(DriverQuirks::default(), stage);
        let before = k.ops().log().len();
        k.disable_dma_pasid(dev()).unwrap();
        let log = &k.ops().log()[before..];
        assert_eq!(
            log.len(),
            2,
            "PASID cache, then IOTLB, each with its own wait"
        );
        assert_eq!(
            log[0].descs[0],
            Descriptor::PasidCache {
                gran: PcGran::Pasid,
                did: 2,
                pasid
            }
        );
        let expect = if iotlb {
            Descriptor::PasidIotlb {
                gran: PiotlbGran::Pasid,
                did: 2,
                pasid,
                addr: 0,
                am: 0,
                ih: false,
            }
        } else {
            Descriptor::Iotlb {
                gran: IotlbGran::Domain,
                dr: false,
                dw: false,
                did: 2,
                addr: 0,
                am: 0,
                ih: false,
            }
        };
        assert_eq!(log[1].descs[0], expect);
        for b in log {
            assert_eq!(b.descs.len(), 2);
            assert!(matches!(b.descs[1], Descriptor::Wait { sw: true, .. }));
        }
        // The entry was cleared before the flushes.
        let e = k.ops().pasid_entry_addr(dev(), pasid).unwrap();
        for i in 0..8 {
            assert_eq!(k.hw().mem.read64(e + 8 * i).unwrap(), 0);
        }
        // The status word holds the last wait's data.
        if let Descriptor::Wait {
            status_addr,
            status_data,
            ..
        } = log[1].descs[1]
        {
            assert_eq!(
                k.hw().mem.read64(status_addr & !7).unwrap() & 0xFFFF_FFFF,
                u64::from(status_data)
            );
        }
    }
}

#[test]
fn detach_with_a_warm_cache_never_leaves_a_stale_pasid() {
    for stage in [Stage::First, Stage::Second] {
        let (mut k, pasid, iova) = system(DriverQuirks::default(), stage);
        let req = Request::read(dev(), iova, 4).with_pasid(pasid);
        assert_eq!(k.translate_cached(&req).outcome, Outcome::Translated(BUF));
        k.disable_dma_pasid(dev()).unwrap();
        let o = k.translate_cached(&req).outcome;
        assert!(matches!(o, Outcome::Fault(F::PasidEntryNotPresent)), "{o}");
        assert!(k.allowed(&req).contains(&o));
        assert_eq!(
            k.translate_cached(&Request::read(dev(), iova, 4)).outcome,
            Outcome::Translated(BUF),
            "RID unaffected"
        );
    }
}

#[test]
fn driver_writes_linux_layout() {
    let (k, pasid, iova) = system(DriverQuirks::default(), Stage::First);
    let m = &k.hw().mem;
    let rd = |a: u64| m.read64(a).unwrap();
    // Root entry for bus 0x10 (devfn 0x19 < 0x80: lower half) and the context entry.
    let root = k.ops().root_table();
    let re = rd(root + 0x10 * 16);
    assert_eq!(re & 1, 1);
    assert_eq!(rd(root + 0x10 * 16 + 8), 0, "upper half unused");
    let ce = (re & !0xFFF) + 0x19 * 32;
    let q0 = rd(ce);
    assert_eq!(q0 & 0b1111, 0b1001, "P and PASIDE, no FPD, no DTE");
    assert_eq!((q0 >> 9) & 7, 2, "PDTS: one directory page of 512 entries");
    assert_eq!(rd(ce + 8), 0, "RID_PASID = 0");
    // First-stage tables: non-leaf 0x27, leaf 0x67.
    let e = k.ops().pasid_entry_addr(dev(), pasid).unwrap();
    assert_eq!((rd(e) >> 6) & 7, 0b001);
    assert_eq!(rd(e + 8) & 0xFFFF, 2, "paging DIDs start at 2");
    assert_eq!(rd(e + 16) & 1, 0, "SRE = 0");
    let mut t = rd(e + 16) & !0xFFF;
    for level in (2..=4).rev() {
        let ent = rd(t + ((iova >> (12 + 9 * (level - 1))) & 0x1FF) * 8);
        assert_eq!(ent & 0xFFF, 0x027, "level {level}");
        t = ent & 0x000F_FFFF_FFFF_F000;
    }
    let leaf = rd(t + ((iova >> 12) & 0x1FF) * 8);
    assert_eq!(leaf, BUF | 0x067);
    // The init sequence of a unit without ESRTPS: global context, PASID and IOTLB flushes.
    let first = &k.ops().log()[0];
    assert!(matches!(first.descs[0], Descriptor::ContextCache { .. }));
    assert!(matches!(
        first.descs[1],
        Descriptor::PasidCache {
            gran: PcGran::Global,
            ..
        }
    ));
    assert!(matches!(
        first.descs[2],
        Descriptor::Iotlb {
            gran: IotlbGran::Global,
            ..
        }
    ));
}

#[test]
fn superpage_maps_and_large_unmaps_use_masks_or_domain_flushes() {
    let mut k = golden_kernel(DriverQuirks::default()).unwrap();
    k.add_device(DeviceDesc {
        rid: dev(),
        max_pasids: 0,
        ats: false,
    })
    .unwrap();
    let d = k.domain_alloc(DomainType::Paging(Stage::Second)).unwrap();
    k.attach_device(dev(), d).unwrap();
    k.map(
        d,
        0x4000_0000,
        0x1_4000_0000,
        0x4000_0000 + 0x20_0000,
        Prot::RW,
    )
    .unwrap();
    let req = Request::read(dev(), 0x4000_0000 + 0x1234_5678 - 0x678, 8);
    assert_eq!(
        k.translate(&req).outcome,
        Outcome::Translated(0x1_4000_0000 + 0x1234_5000)
    );
    let pgd = k.ops().domain_pgd(d).unwrap();
    let l4 = k.hw().mem.read64(pgd).unwrap() & !0xFFF;
    assert_eq!(
        k.hw().mem.read64(l4 + 8).unwrap() & 0x83,
        0x83,
        "1 GiB leaf with PS"
    );
    k.unmap(d, 0x4000_0000, 0x4000_0000).unwrap();
    k.iotlb_sync(d).unwrap();
    let last = k.ops().log().last().unwrap();
    assert_eq!(
        last.descs[0],
        Descriptor::Iotlb {
            gran: IotlbGran::Page,
            dr: false,
            dw: false,
            did: 2,
            addr: 0x4000_0000,
            am: 18,
            // A 1 GiB leaf goes; no page-table page is freed.
            ih: true
        }
    );
    assert_eq!(k.translate(&req).outcome, Outcome::Fault(F::SsNotPresent));
    // The 2 MiB leaf after it is still there.
    assert!(matches!(
        k.translate(&Request::read(dev(), 0x8000_0000, 4)).outcome,
        Outcome::Translated(0x1_8000_0000)
    ));
}

#[test]
fn dids_start_at_2_are_shared_per_domain_and_recycled() {
    use iommu_model::driver::Driver;
    use iommu_model::golden::GoldenHw;
    use iommu_model::kernel::{Errno, Kernel, KernelConfig};
    // CAP.ND = 0: 16 domain IDs, so 14 paging domains (DIDs 2..=15).
    let mut hw = GoldenHw::default();
    hw.cap &= !7;
    let mut k = Kernel::new(
        Driver::new(hw, DriverQuirks::default()).unwrap(),
        KernelConfig::default(),
    );
    let devs: Vec<u16> = (0..16).map(|i| rid(1, i, 0)).collect();
    for &r in &devs {
        k.add_device(DeviceDesc {
            rid: r,
            max_pasids: 4,
            ats: false,
        })
        .unwrap();
    }
    let doms: Vec<_> = (0..15)
        .map(|_| k.domain_alloc(DomainType::Paging(Stage::Second)).unwrap())
        .collect();
    for (i, (&r, &d)) in devs.iter().zip(&doms).take(14).enumerate() {
        k.attach_device(r, d).unwrap();
        assert_eq!(k.ops().domain_did(d), Some(2 + i as u16));
    }
    // A second attachment of the same domain shares its DID.
    k.attach_device_pasid(doms[0], devs[1], 1).unwrap();
    assert_eq!(k.ops().domain_did(doms[0]), Some(2));
    let before = k.state().clone();
    assert_eq!(k.attach_device(devs[14], doms[14]), Err(Errno::ENOSPC));
    assert_eq!(k.state(), &before, "nothing left behind");
    // Detaching the last user frees the DID for the next domain.
    let blocked = k.domain_alloc(DomainType::Blocked).unwrap();
    k.attach_device(devs[5], blocked).unwrap();
    assert_eq!(k.ops().domain_did(doms[5]), None);
    k.attach_device(devs[14], doms[14]).unwrap();
    assert_eq!(k.ops().domain_did(doms[14]), Some(7));
    let id = k.domain_alloc(DomainType::Identity).unwrap();
    k.attach_device(devs[15], id).unwrap();
    let e = k.ops().pasid_entry_addr(devs[15], 0).unwrap();
    assert_eq!(
        k.hw().mem.read64(e + 8).unwrap() & 0xFFFF,
        1,
        "identity uses DID 1 and needs no ID"
    );
}

#[test]
fn failed_rid_attach_reverts_to_the_old_domain() {
    use iommu_model::driver::Driver;
    use iommu_model::golden::GoldenHw;
    use iommu_model::kernel::{Errno, Kernel, KernelConfig};
    let mut hw = GoldenHw::default();
    hw.cap &= !7;
    let mut k = Kernel::new(
        Driver::new(hw, DriverQuirks::default()).unwrap(),
        KernelConfig::default(),
    );
    let a = rid(1, 0, 0);
    k.add_device(DeviceDesc {
        rid: a,
        max_pasids: 0,
        ats: false,
    })
    .unwrap();
    let doms: Vec<_> = (0..15)
        .map(|_| k.domain_alloc(DomainType::Paging(Stage::First)).unwrap())
        .collect();
    for (i, &d) in doms.iter().enumerate().take(14) {
        // Hold DIDs through RID attachments of helper devices.
        let h = rid(2, i as u8, 0);
        k.add_device(DeviceDesc {
            rid: h,
            max_pasids: 0,
            ats: false,
        })
        .unwrap();
        k.attach_device(h, d).unwrap();
    }
    k.attach_device(a, doms[0]).unwrap();
    k.map(doms[0], 0x1000, BUF, 0x1000, Prot::R).unwrap();
    let req = Request::read(a, 0x1000, 4);
    assert_eq!(k.translate(&req).outcome, Outcome::Translated(BUF));
    assert_eq!(k.attach_device(a, doms[14]), Err(Errno::ENOSPC));
    assert_eq!(k.state().devices[&a].rid_domain, Some(doms[0]));
    assert_eq!(
        k.translate(&req).outcome,
        Outcome::Translated(BUF),
        "old domain restored"
    );
    assert!(k.allowed(&req).contains(&Outcome::Translated(BUF)));
}

#[test]
fn second_stage_entries_are_shared_by_every_pasid_of_a_did() {
    // Cached through the RID, then hit through the PASID during an open unmap window: legal,
    // because second-stage IOTLB entries carry no PASID, and the oracle allows it.
    let (mut k, pasid, iova) = system(DriverQuirks::default(), Stage::Second);
    let d = k.state().devices[&dev()].rid_domain.unwrap();
    assert_eq!(
        k.translate_cached(&Request::read(dev(), iova, 4)).outcome,
        Outcome::Translated(BUF)
    );
    k.unmap(d, iova, 0x1000).unwrap();
    let via_pasid = Request::read(dev(), iova, 4).with_pasid(pasid);
    let o = k.translate_cached(&via_pasid).outcome;
    assert_eq!(o, Outcome::Translated(BUF), "hit on the RID's entry");
    assert!(k.allowed(&via_pasid).contains(&o));
    k.iotlb_sync(d).unwrap();
    assert_eq!(
        k.translate_cached(&via_pasid).outcome,
        Outcome::Fault(F::SsNotPresent)
    );
}

/// A stale 2 MiB entry and a new 4 KiB entry at the same base coexist in the maximal cache,
/// as they may in a real IOTLB (size is part of the tag): until the flush, the rest of the
/// old 2 MiB page still translates through the stale entry.
#[test]
fn a_stale_superpage_entry_survives_a_new_small_page_at_its_base() {
    let mut k = golden_kernel(DriverQuirks::default()).unwrap();
    k.add_device(DeviceDesc {
        rid: dev(),
        max_pasids: 0,
        ats: false,
    })
    .unwrap();
    let d = k.domain_alloc(DomainType::Paging(Stage::Second)).unwrap();
    k.attach_device(dev(), d).unwrap();
    let base = 0x4000_0000;
    let read_only = Prot {
        read: true,
        write: false,
    };
    k.map(d, base, 0x2_0000_0000, 1 << 21, read_only).unwrap();
    let far = Request::read(dev(), base + 0x1f_f8b0, 8);
    assert_eq!(
        k.translate_cached(&far).outcome,
        Outcome::Translated(0x2_001f_f8b0)
    );
    // Unmap without sync: the read-only 2 MiB entry stays cached; a write to a new 4 KiB
    // page at the same base cannot use it, walks, and fills an entry of its own.
    assert_eq!(k.unmap(d, base, 1 << 21), Ok(1 << 21));
    k.map(d, base, 0x3_0000_0000, 0x1000, Prot::RW).unwrap();
    let near = Request::write(dev(), base + 0x8b0, 8);
    assert_eq!(
        k.translate_cached(&near).outcome,
        Outcome::Translated(0x3_0000_08b0)
    );
    assert_eq!(
        k.translate_cached(&far).outcome,
        Outcome::Translated(0x2_001f_f8b0),
        "the stale 2 MiB entry is still there"
    );
    assert!(k
        .allowed(&far)
        .contains(&Outcome::Translated(0x2_001f_f8b0)));
    k.iotlb_sync(d).unwrap();
    assert_eq!(
        k.translate_cached(&far).outcome,
        Outcome::Fault(F::SsNotPresent)
    );
}
