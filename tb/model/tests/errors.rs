//! Errors are values: malformed operations return Linux's errno and change nothing.

use iommu_model::driver::DriverQuirks;
use iommu_model::kernel::dma::DmaDirection;
use iommu_model::kernel::{
    rid, DeviceDesc, DomainId, DomainType, Errno, Kernel, MmId, MmProt, Prot, Stage,
};
use iommu_model::sim::{golden_kernel, GoldenExt};

#[test]
fn malformed_operations_return_errno_and_leave_state_unchanged() {
    let mut k = golden_kernel(DriverQuirks::default()).unwrap();
    let a = rid(1, 0, 0);
    let nop = rid(2, 0, 0);
    k.add_device(DeviceDesc {
        rid: a,
        max_pasids: 8,
        ats: false,
    })
    .unwrap();
    k.add_device(DeviceDesc {
        rid: nop,
        max_pasids: 0,
        ats: false,
    })
    .unwrap();
    let d = k.domain_alloc(DomainType::Paging(Stage::Second)).unwrap();
    let f = k.domain_alloc(DomainType::Paging(Stage::First)).unwrap();
    let id = k.domain_alloc(DomainType::Identity).unwrap();
    let blocked = k.domain_alloc(DomainType::Blocked).unwrap();
    k.attach_device(a, d).unwrap();
    k.map(d, 0x10000, 0x50000, 0x1000, Prot::RW).unwrap();
    let mm = k.mm_create().unwrap();
    let ghost = DomainId(999);
    let before = (
        k.state().clone(),
        k.global_pasids().clone(),
        k.ops().log().len(),
        k.hw().mem.allocated_count(),
    );

    let cases: Vec<(&str, Result<(), Errno>, Errno)> = vec![
        (
            "add same device",
            k.add_device(DeviceDesc {
                rid: a,
                max_pasids: 8,
                ats: false,
            }),
            Errno::EEXIST,
        ),
        (
            "add device with 2^21 PASIDs",
            k.add_device(DeviceDesc {
                rid: rid(7, 0, 0),
                max_pasids: 1 << 21,
                ats: false,
            }),
            Errno::EINVAL,
        ),
        (
            "attach unknown device",
            k.attach_device(rid(9, 9, 1), d),
            Errno::ENODEV,
        ),
        (
            "attach unknown domain",
            k.attach_device(a, ghost),
            Errno::ENOENT,
        ),
        ("free attached domain", k.domain_free(d), Errno::EBUSY),
        (
            "alloc pasid without PASID support",
            k.alloc_global_pasid(nop).map(drop),
            Errno::ENOSPC,
        ),
        (
            "free unallocated pasid",
            k.free_global_pasid(3),
            Errno::EINVAL,
        ),
        (
            "attach pasid 0",
            k.attach_device_pasid(d, a, 0),
            Errno::EINVAL,
        ),
        (
            "attach pasid beyond max",
            k.attach_device_pasid(d, a, 8),
            Errno::EINVAL,
        ),
        (
            "attach blocked at a pasid",
            k.attach_device_pasid(blocked, a, 1),
            Errno::EINVAL,
        ),
        (
            "attach unknown domain at a pasid",
            k.attach_device_pasid(ghost, a, 1),
            Errno::ENOENT,
        ),
        (
            "detach unattached pasid",
            k.detach_device_pasid(d, a, 1),
            Errno::ENOENT,
        ),
        (
            "disable without enable",
            k.disable_dma_pasid(a),
            Errno::ENOENT,
        ),
        (
            "map misaligned iova",
            k.map(d, 0x10001, 0, 0x1000, Prot::RW),
            Errno::EINVAL,
        ),
        (
            "map misaligned pa",
            k.map(d, 0x20000, 0x10, 0x1000, Prot::RW),
            Errno::EINVAL,
        ),
        (
            "map misaligned size",
            k.map(d, 0x20000, 0, 0x800, Prot::RW),
            Errno::EINVAL,
        ),
        (
            "map without permission",
            k.map(d, 0x20000, 0, 0x1000, Prot::default()),
            Errno::EINVAL,
        ),
        (
            "map overlap",
            k.map(d, 0x10000, 0x90000, 0x1000, Prot::R),
            Errno::EEXIST,
        ),
        (
            "map beyond aperture",
            k.map(d, u64::MAX - 0xFFF, 0, 0x1000, Prot::R),
            Errno::EFAULT,
        ),
        (
            "map wrapping",
            k.map(d, 0xFFFF_FFFF_F000, 0, 0x2000, Prot::R),
            Errno::EFAULT,
        ),
        (
            "map first stage above 47 bits",
            k.map(f, 1 << 47, 0, 0x1000, Prot::R),
            Errno::EFAULT,
        ),
        (
            "map identity",
            k.map(id, 0, 0, 0x1000, Prot::R),
            Errno::EINVAL,
        ),
        (
            "unmap misaligned",
            k.unmap(d, 0x10800, 0x1000).map(drop),
            Errno::EINVAL,
        ),
        (
            "unmap identity",
            k.unmap(id, 0, 0x1000).map(drop),
            Errno::EINVAL,
        ),
        ("sync unknown domain", k.iotlb_sync(ghost), Errno::ENOENT),
        (
            "sva on a device without PASID",
            k.sva_bind(nop, mm).map(drop),
            Errno::EOPNOTSUPP,
        ),
        (
            "sva with unknown mm",
            k.sva_bind(a, MmId(77)).map(drop),
            Errno::ENOENT,
        ),
        ("sva unbind never bound", k.sva_unbind(a, mm), Errno::ENOENT),
        (
            "mm_map kernel address",
            k.mm_map(mm, 1 << 47, 0, 0x1000, MmProt::USER_RW),
            Errno::EINVAL,
        ),
        (
            "mm_map misaligned",
            k.mm_map(mm, 0x1000, 0x123, 0x1000, MmProt::USER_RW),
            Errno::EINVAL,
        ),
        (
            "mm_unmap misaligned",
            k.mm_unmap(mm, 0x10, 0x1000).map(drop),
            Errno::EINVAL,
        ),
        (
            "sva domain from unknown mm",
            k.domain_alloc(DomainType::Sva(MmId(77))).map(drop),
            Errno::EINVAL,
        ),
        (
            "dma map size 0",
            k.dma_map_single(a, 0x1000, 0, DmaDirection::ToDevice)
                .map(drop),
            Errno::EINVAL,
        ),
        (
            "dma map blocked device",
            k.dma_map_single(nop, 0x1000, 8, DmaDirection::ToDevice)
                .map(drop),
            Errno::ENODEV,
        ),
        (
            "dma unmap unknown address",
            k.dma_unmap_single(a, 0x1234, 8, DmaDirection::ToDevice),
            Errno::EINVAL,
        ),
    ];
    for (what, got, want) in cases {
        assert_eq!(got, Err(want), "{what}");
    }
    assert_eq!(
        k.unmap(d, 0x30000, 0x1000),
        Ok(0),
        "unmapping a hole is not an error"
    );
    let after = (
        k.state().clone(),
        k.global_pasids().clone(),
        k.ops().log().len(),
        k.hw().mem.allocated_count(),
    );
    assert!(before == after, "failed operations changed state");
    assert_eq!(Errno::EINVAL.to_kernel(), -22);
    assert_eq!(Errno::ENOSPC.to_string(), "ENOSPC");
}

#[test]
fn sva_domain_cannot_back_a_rid_and_dma_pasid_is_protected() {
    let mut k = Kernel::abstract_only();
    let a = rid(1, 0, 0);
    k.add_device(DeviceDesc {
        rid: a,
        max_pasids: 16,
        ats: false,
    })
    .unwrap();
    let mm = k.mm_create().unwrap();
    let p = k.sva_bind(a, mm).unwrap();
    let sva = k.state().mms[&mm].sva_domain.unwrap();
    assert_eq!(k.attach_device(a, sva), Err(Errno::EINVAL));
    assert_eq!(
        k.detach_device_pasid(sva, a, p),
        Err(Errno::EINVAL),
        "SVA PASIDs go through sva_unbind"
    );
    let d = k.domain_alloc(DomainType::Paging(Stage::First)).unwrap();
    k.attach_device(a, d).unwrap();
    let dp = k.enable_dma_pasid(a).unwrap();
    assert_ne!(dp, p, "one global allocator");
    assert_eq!(
        k.detach_device_pasid(d, a, dp),
        Err(Errno::EBUSY),
        "the DMA PASID goes through disable_dma_pasid"
    );
    let other = k.domain_alloc(DomainType::Identity).unwrap();
    assert_eq!(
        k.attach_device(a, other),
        Err(Errno::EBUSY),
        "the DMA PASID must stay equivalent to the RID"
    );
    k.disable_dma_pasid(a).unwrap();
    k.attach_device(a, other).unwrap();
}

#[test]
fn failed_sva_bind_returns_its_pasid_and_domain() {
    let mut k = golden_kernel(DriverQuirks::default()).unwrap();
    let a = rid(1, 0, 0);
    k.add_device(DeviceDesc {
        rid: a,
        max_pasids: 8,
        ats: false,
    })
    .unwrap();
    let d = k.domain_alloc(DomainType::Paging(Stage::First)).unwrap();
    // PASID 1 is in use on the device without being allocated from the global allocator.
    k.attach_device_pasid(d, a, 1).unwrap();
    let mm = k.mm_create().unwrap();
    let before = (
        k.state().clone(),
        k.global_pasids().clone(),
        k.hw().mem.allocated_count(),
    );
    assert_eq!(k.sva_bind(a, mm), Err(Errno::EBUSY));
    assert_eq!(
        (
            k.state().clone(),
            k.global_pasids().clone(),
            k.hw().mem.allocated_count()
        ),
        before
    );
    k.detach_device_pasid(d, a, 1).unwrap();
    assert_eq!(k.sva_bind(a, mm), Ok(1));
}

#[test]
fn extreme_arguments_are_errors_not_panics() {
    use iommu_model::golden::MaxCache;
    use iommu_model::mem::{Mem, MemError};
    use iommu_model::qi::{Descriptor, IotlbGran, PiotlbGran};
    let mut k = golden_kernel(DriverQuirks::default()).unwrap();
    let a = rid(1, 0, 0);
    k.add_device(DeviceDesc {
        rid: a,
        max_pasids: 8,
        ats: false,
    })
    .unwrap();
    let d = k.domain_alloc(DomainType::Paging(Stage::Second)).unwrap();
    k.attach_device(a, d).unwrap();
    let big = DmaDirection::Bidirectional;
    assert_eq!(
        k.dma_map_single(a, 0x1FFF, u64::MAX, big),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        k.dma_map_single(a, 0, 1 << 40, big),
        Err(Errno::ENOMEM),
        "beyond the 4 GiB IOVA space"
    );
    assert_eq!(
        k.map(d, 0x1000, !0xFFF_u64, 0x2000, Prot::RW),
        Err(Errno::EFAULT)
    );
    assert_eq!(k.unmap(d, !0xFFF_u64, !0xFFF_u64), Ok(0));
    let mm = k.mm_create().unwrap();
    assert_eq!(k.mm_unmap(mm, !0xFFF_u64, !0xFFF_u64), Ok(0));
    assert_eq!(
        k.mm_map(mm, 0x1000, !0xFFF_u64, 0x2000, MmProt::USER_RW),
        Err(Errno::EINVAL)
    );
    let mut m = Mem::new();
    assert_eq!(m.alloc_pages(60), Err(MemError::OutOfMemory));
    assert_eq!(
        m.zero(u64::MAX - 7, 8),
        Err(MemError::Unbacked(u64::MAX - 7))
    );
    // Invalidations with the largest address masks cover the whole address space.
    k.map(d, 0x7000, 0x9000, 0x1000, Prot::RW).unwrap();
    let req = iommu_model::golden::Request::read(a, 0x7000, 4);
    assert!(matches!(
        k.translate_cached(&req).outcome,
        iommu_model::golden::Outcome::Translated(_)
    ));
    assert_eq!(k.hw().cache.iotlb_len(), 1);
    let mut c: MaxCache = k.hw().cache.clone();
    c.apply(&Descriptor::PasidIotlb {
        gran: PiotlbGran::Page,
        did: 2,
        pasid: 0,
        addr: !0xFFF,
        am: 63,
        ih: false,
    });
    assert_eq!(
        c.iotlb_len(),
        1,
        "PASID-based invalidation leaves second-stage entries"
    );
    c.apply(&Descriptor::Iotlb {
        gran: IotlbGran::Page,
        dr: false,
        dw: false,
        did: 2,
        addr: !0xFFF,
        am: 63,
        ih: false,
    });
    assert_eq!(c.iotlb_len(), 0);
    let mut c: MaxCache = k.hw().cache.clone();
    c.apply(&Descriptor::Iotlb {
        gran: IotlbGran::Page,
        dr: false,
        dw: false,
        did: 2,
        addr: 0x6000,
        am: 0,
        ih: false,
    });
    assert_eq!(c.iotlb_len(), 1, "another page");
    c.apply(&Descriptor::Iotlb {
        gran: IotlbGran::Page,
        dr: false,
        dw: false,
        did: 3,
        addr: 0x7000,
        am: 0,
        ih: false,
    });
    assert_eq!(c.iotlb_len(), 1, "another DID");
    c.apply(&Descriptor::Iotlb {
        gran: IotlbGran::Page,
        dr: false,
        dw: false,
        did: 2,
        addr: 0x4000,
        am: 2,
        ih: false,
    });
    assert_eq!(c.iotlb_len(), 0, "AM 2 covers 0x4000-0x7FFF");
}
