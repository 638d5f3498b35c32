//! The claims of the seed (docs/contract.md section 1), each a named test, run through all three
//! layers: kernel model -> VT-d driver model -> golden walker, judged by the oracle.

use iommu_model::driver::DriverQuirks;
use iommu_model::fault::FaultReason as F;
use iommu_model::golden::{Outcome, Request};
use iommu_model::kernel::dma::DmaDirection;
use iommu_model::kernel::{rid, DeviceDesc, DomainType, Errno, MmProt, Prot, Stage, State};
use iommu_model::sim::{golden_kernel, GoldenExt, GoldenKernel};
use std::collections::BTreeSet;

const BUF: u64 = 0x8_1234_5000;

fn dev_a() -> u16 {
    rid(0x3a, 0, 0)
}

fn system() -> GoldenKernel {
    let mut k = golden_kernel(DriverQuirks::default()).unwrap();
    k.add_device(DeviceDesc {
        rid: dev_a(),
        max_pasids: 1 << 20,
        ats: false,
    })
    .unwrap();
    k
}

/// Runs a request through the uncached walker and the maximal cache, checks both against
/// the oracle, and returns the uncached outcome.
fn dma(k: &mut GoldenKernel, req: Request) -> Outcome {
    let allowed = k.allowed(&req);
    let plain = k.translate(&req).outcome;
    let cached = k.translate_cached(&req).outcome;
    allowed
        .check(&plain)
        .unwrap_or_else(|m| panic!("{req}: walker: {m}"));
    allowed
        .check(&cached)
        .unwrap_or_else(|m| panic!("{req}: cache: {m}"));
    plain
}

fn pa(o: Outcome) -> u64 {
    match o {
        Outcome::Translated(pa) => pa,
        other => panic!("expected a translation, got {other}"),
    }
}

#[test]
fn dma_through_rid_and_enabled_pasid_reach_the_same_pa() {
    for stage in [Stage::First, Stage::Second] {
        let mut k = system();
        let d = k.domain_alloc(DomainType::Paging(stage)).unwrap();
        k.attach_device(dev_a(), d).unwrap();
        let pasid = k.enable_dma_pasid(dev_a()).unwrap();
        assert_ne!(pasid, 0);
        let iova = k
            .dma_map_single(dev_a(), BUF + 0x40, 0x3000, DmaDirection::Bidirectional)
            .unwrap();
        for off in [0u64, 0x8, 0xFC0, 0x1FF8, 0x2000] {
            let via_rid = pa(dma(&mut k, Request::read(dev_a(), iova + off, 8)));
            let via_pasid = pa(dma(
                &mut k,
                Request::write(dev_a(), iova + off, 8).with_pasid(pasid),
            ));
            assert_eq!(via_rid, via_pasid, "{stage:?} offset {off:#x}");
            assert_eq!(via_rid, BUF + 0x40 + off, "the buffer itself");
        }
        // A mapping made after enable_dma_pasid is visible through both at once.
        let iova2 = k
            .dma_map_single(dev_a(), BUF + 0x10_0000, 0x1000, DmaDirection::ToDevice)
            .unwrap();
        assert_eq!(
            pa(dma(&mut k, Request::read(dev_a(), iova2, 4))),
            pa(dma(
                &mut k,
                Request::read(dev_a(), iova2, 4).with_pasid(pasid)
            ))
        );
    }
}

#[test]
fn identity_mode_rid_and_pasid_reach_pa_equal_to_iova() {
    let mut k = system();
    let id = k.domain_alloc(DomainType::Identity).unwrap();
    k.attach_device(dev_a(), id).unwrap();
    let pasid = k.enable_dma_pasid(dev_a()).unwrap();
    let addr = k
        .dma_map_single(dev_a(), BUF, 0x1000, DmaDirection::FromDevice)
        .unwrap();
    assert_eq!(addr, BUF, "the DMA API hands out the physical address");
    for a in [addr, addr + 0x800, 0x1000, (1 << 48) - 0x1000] {
        assert_eq!(
            dma(&mut k, Request::write(dev_a(), a, 4)),
            Outcome::Translated(a)
        );
        assert_eq!(
            dma(&mut k, Request::write(dev_a(), a, 4).with_pasid(pasid)),
            Outcome::Translated(a)
        );
    }
    // Both attachments are pass-through entries with DID 1.
    for p in [0, pasid] {
        let e = k.ops().pasid_entry_addr(dev_a(), p).unwrap();
        let m = &k.hw().mem;
        use iommu_model::mem::PhysMem;
        assert_eq!((m.read64(e).unwrap() >> 6) & 7, 0b100);
        assert_eq!(m.read64(e + 8).unwrap() & 0xFFFF, 1);
    }
}

#[test]
fn unmap_faults_through_both_rid_and_pasid() {
    for (stage, not_present) in [
        (Stage::First, F::FsNotPresent),
        (Stage::Second, F::SsNotPresent),
    ] {
        let mut k = system();
        let d = k.domain_alloc(DomainType::Paging(stage)).unwrap();
        k.attach_device(dev_a(), d).unwrap();
        let pasid = k.enable_dma_pasid(dev_a()).unwrap();
        let iova = k
            .dma_map_single(dev_a(), BUF, 0x2000, DmaDirection::Bidirectional)
            .unwrap();
        let rid_req = Request::read(dev_a(), iova + 0x1000, 4);
        let pasid_req = rid_req.with_pasid(pasid);
        // Warm the maximal cache through both.
        assert!(matches!(dma(&mut k, rid_req), Outcome::Translated(_)));
        assert!(matches!(dma(&mut k, pasid_req), Outcome::Translated(_)));
        k.dma_unmap_single(dev_a(), iova, 0x2000, DmaDirection::Bidirectional)
            .unwrap();
        assert!(k.windows().is_empty(), "strict unmap waits for its flush");
        for req in [rid_req, pasid_req] {
            assert_eq!(
                dma(&mut k, req),
                Outcome::Fault(not_present),
                "{stage:?} {req}"
            );
            assert_eq!(
                k.translate_cached(&req).outcome,
                Outcome::Fault(not_present),
                "cache flushed"
            );
        }
    }
}

#[test]
fn request_with_pmr_faults_0x5d() {
    let mut k = system();
    let d = k.domain_alloc(DomainType::Paging(Stage::First)).unwrap();
    k.attach_device(dev_a(), d).unwrap();
    let pasid = k.enable_dma_pasid(dev_a()).unwrap();
    let iova = k
        .dma_map_single(dev_a(), BUF, 0x1000, DmaDirection::Bidirectional)
        .unwrap();
    let user = Request::read(dev_a(), iova, 4).with_pasid(pasid);
    assert!(matches!(dma(&mut k, user), Outcome::Translated(_)));
    let sup = Request { pmr: true, ..user };
    assert_eq!(dma(&mut k, sup), Outcome::Fault(F::PmrWithoutSre));
    assert_eq!(F::PmrWithoutSre.code(), 0x5D);
    assert_eq!(
        dma(&mut k, Request { er: true, ..user }),
        Outcome::Fault(F::ErWithoutEre)
    );
    // SVA: supervisor requests are never enabled either.
    let mm = k.mm_create().unwrap();
    k.mm_map(mm, 0x40_0000, BUF + 0x10000, 0x1000, MmProt::USER_RW)
        .unwrap();
    let sva = k.sva_bind(dev_a(), mm).unwrap();
    let req = Request {
        pmr: true,
        ..Request::read(dev_a(), 0x40_0000, 4).with_pasid(sva)
    };
    assert_eq!(dma(&mut k, req), Outcome::Fault(F::PmrWithoutSre));
}

#[test]
fn sva_bind_unbind_without_flags_one_pasid_per_mm() {
    let mut k = system();
    let dev_b = rid(0x3b, 1, 0);
    k.add_device(DeviceDesc {
        rid: dev_b,
        max_pasids: 1 << 10,
        ats: true,
    })
    .unwrap();
    let mm = k.mm_create().unwrap();
    let va = 0x7f00_0000_0000u64;
    k.mm_map(mm, va, BUF, 0x2000, MmProt::USER_RW).unwrap();
    k.mm_map(mm, va + 0x2000, BUF + 0x8000, 0x1000, MmProt::USER_RO)
        .unwrap();
    k.mm_map(
        mm,
        va + 0x3000,
        BUF + 0x9000,
        0x1000,
        MmProt {
            write: true,
            exec: false,
            user: false,
        },
    )
    .unwrap();
    let p1 = k.sva_bind(dev_a(), mm).unwrap();
    let p2 = k.sva_bind(dev_b, mm).unwrap();
    assert_eq!(p1, p2, "one PASID per mm");
    assert_eq!(
        k.sva_bind(dev_a(), mm),
        Ok(p1),
        "binding again takes a reference"
    );
    let other = k.mm_create().unwrap();
    let p3 = k.sva_bind(dev_a(), other).unwrap();
    assert_ne!(p3, p1);
    for dev in [dev_a(), dev_b] {
        assert_eq!(
            dma(&mut k, Request::write(dev, va + 0x1008, 8).with_pasid(p1)),
            Outcome::Translated(BUF + 0x1008)
        );
        assert_eq!(
            dma(&mut k, Request::read(dev, va + 0x2000, 8).with_pasid(p1)),
            Outcome::Translated(BUF + 0x8000)
        );
        assert_eq!(
            dma(&mut k, Request::write(dev, va + 0x2000, 8).with_pasid(p1)),
            Outcome::Fault(F::WriteDenied)
        );
        assert_eq!(
            dma(&mut k, Request::read(dev, va + 0x3000, 8).with_pasid(p1)),
            Outcome::Fault(F::UserToSupervisorPage)
        );
        assert_eq!(
            dma(&mut k, Request::read(dev, va, 8)),
            Outcome::Fault(F::PasidEntryNotPresent),
            "no RID attachment"
        );
    }
    // CPU-side unmap: the mmu notifier flushes every bound device.
    k.mm_unmap(mm, va, 0x1000).unwrap();
    for dev in [dev_a(), dev_b] {
        assert_eq!(
            dma(&mut k, Request::read(dev, va, 8).with_pasid(p1)),
            Outcome::Fault(F::FsNotPresent)
        );
    }
    k.sva_unbind(dev_a(), mm).unwrap();
    assert!(
        matches!(
            dma(
                &mut k,
                Request::read(dev_a(), va + 0x1000, 8).with_pasid(p1)
            ),
            Outcome::Translated(_)
        ),
        "still one reference"
    );
    k.sva_unbind(dev_a(), mm).unwrap();
    assert_eq!(
        dma(
            &mut k,
            Request::read(dev_a(), va + 0x1000, 8).with_pasid(p1)
        ),
        Outcome::Fault(F::PasidEntryNotPresent)
    );
    assert!(matches!(
        dma(&mut k, Request::read(dev_b, va + 0x1000, 8).with_pasid(p1)),
        Outcome::Translated(_)
    ));
    assert_eq!(k.sva_unbind(dev_a(), mm), Err(Errno::ENOENT));
    // The mm keeps its PASID until it goes away.
    assert_eq!(k.sva_bind(dev_a(), mm), Ok(p1));
    k.sva_unbind(dev_a(), mm).unwrap();
    k.sva_unbind(dev_b, mm).unwrap();
    assert_eq!(k.mm_destroy(other), Err(Errno::EBUSY));
    k.mm_destroy(mm).unwrap();
    assert!(!k.global_pasids().contains(&p1));
}

struct Snapshot {
    state: State,
    pasids: BTreeSet<u32>,
    batches: usize,
    pages: usize,
}

fn snap(k: &GoldenKernel) -> Snapshot {
    Snapshot {
        state: k.state().clone(),
        pasids: k.global_pasids().clone(),
        batches: k.ops().log().len(),
        pages: k.hw().mem.allocated_count(),
    }
}

fn assert_unchanged(k: &GoldenKernel, s: &Snapshot, what: &str) {
    assert_eq!(k.state(), &s.state, "{what}: kernel state");
    assert_eq!(k.global_pasids(), &s.pasids, "{what}: PASID allocator");
    assert_eq!(k.ops().log().len(), s.batches, "{what}: invalidations");
    assert_eq!(
        k.hw().mem.allocated_count(),
        s.pages,
        "{what}: page allocations"
    );
}

#[test]
fn enable_dma_pasid_error_paths_leave_no_state_behind() {
    // No RID domain: EPERM.
    let mut k = system();
    let s = snap(&k);
    assert_eq!(k.enable_dma_pasid(dev_a()), Err(Errno::EPERM));
    assert_unchanged(&k, &s, "EPERM");
    let blocked = k.domain_alloc(DomainType::Blocked).unwrap();
    k.attach_device(dev_a(), blocked).unwrap();
    let s = snap(&k);
    assert_eq!(
        k.enable_dma_pasid(dev_a()),
        Err(Errno::EPERM),
        "blocked is no DMA domain"
    );
    assert_unchanged(&k, &s, "EPERM blocked");

    // PASIDs exhausted: ENOSPC.
    let mut k = system();
    let small = rid(5, 0, 0);
    k.add_device(DeviceDesc {
        rid: small,
        max_pasids: 2,
        ats: false,
    })
    .unwrap();
    let d = k.domain_alloc(DomainType::Paging(Stage::Second)).unwrap();
    k.attach_device(small, d).unwrap();
    k.attach_device(dev_a(), d).unwrap();
    assert_eq!(k.enable_dma_pasid(dev_a()), Ok(1));
    let s = snap(&k);
    assert_eq!(
        k.enable_dma_pasid(small),
        Err(Errno::ENOSPC),
        "PASID 1 is taken system-wide"
    );
    assert_unchanged(&k, &s, "ENOSPC");
    let nopasid = rid(6, 0, 0);
    k.add_device(DeviceDesc {
        rid: nopasid,
        max_pasids: 0,
        ats: false,
    })
    .unwrap();
    k.attach_device(nopasid, d).unwrap();
    let s = snap(&k);
    assert_eq!(k.enable_dma_pasid(nopasid), Err(Errno::ENOSPC));
    assert_unchanged(&k, &s, "ENOSPC without PASID support");

    // PASID 0 is the RID: EINVAL.
    let s = snap(&k);
    assert_eq!(k.attach_device_pasid(d, dev_a(), 0), Err(Errno::EINVAL));
    assert_eq!(
        k.attach_device_pasid(d, small, 2),
        Err(Errno::EINVAL),
        "beyond max_pasids"
    );
    assert_eq!(
        k.attach_device_pasid(d, nopasid, 1),
        Err(Errno::EINVAL),
        "no PASID support"
    );
    assert_unchanged(&k, &s, "EINVAL");

    // Double attach: EBUSY, and the PASID goes back to the allocator.
    let mut k = system();
    let d = k.domain_alloc(DomainType::Paging(Stage::First)).unwrap();
    let other = k.domain_alloc(DomainType::Paging(Stage::First)).unwrap();
    k.attach_device(dev_a(), d).unwrap();
    k.attach_device_pasid(other, dev_a(), 1).unwrap();
    let s = snap(&k);
    assert_eq!(k.enable_dma_pasid(dev_a()), Err(Errno::EBUSY));
    assert_unchanged(&k, &s, "EBUSY");
    assert_eq!(k.attach_device_pasid(d, dev_a(), 1), Err(Errno::EBUSY));
    assert_unchanged(&k, &s, "EBUSY attach");
    // And the failed attempts really left PASID 1 with `other`.
    k.map(other, 0x5000, BUF, 0x1000, Prot::R).unwrap();
    assert_eq!(
        dma(&mut k, Request::read(dev_a(), 0x5000, 4).with_pasid(1)),
        Outcome::Translated(BUF)
    );
    k.detach_device_pasid(other, dev_a(), 1).unwrap();
    let p = k.enable_dma_pasid(dev_a()).unwrap();
    assert_eq!(p, 1);
    let s = snap(&k);
    assert_eq!(
        k.enable_dma_pasid(dev_a()),
        Err(Errno::EBUSY),
        "already enabled"
    );
    assert_unchanged(&k, &s, "EBUSY twice");
    k.disable_dma_pasid(dev_a()).unwrap();
    assert!(k.global_pasids().is_empty());
    assert_eq!(k.disable_dma_pasid(dev_a()), Err(Errno::ENOENT));
}
