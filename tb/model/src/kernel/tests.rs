//! Unit tests of the kernel API model.

use super::*;

fn dev(max_pasids: u32) -> DeviceDesc {
    DeviceDesc {
        rid: rid(3, 0, 0),
        max_pasids,
        ats: false,
    }
}

#[test]
fn rid_encoding() {
    assert_eq!(rid(0x12, 0x1F, 7), 0x12FF);
    assert_eq!(rid(0, 2, 1), 0x11);
}

#[test]
fn global_pasid_allocator_is_lowest_free_and_system_wide() {
    let mut k = Kernel::abstract_only();
    k.add_device(dev(4)).unwrap();
    k.add_device(DeviceDesc {
        rid: rid(4, 0, 0),
        max_pasids: 8,
        ats: false,
    })
    .unwrap();
    assert_eq!(k.alloc_global_pasid(rid(3, 0, 0)), Ok(1));
    assert_eq!(k.alloc_global_pasid(rid(4, 0, 0)), Ok(2));
    assert_eq!(k.alloc_global_pasid(rid(3, 0, 0)), Ok(3));
    assert_eq!(k.alloc_global_pasid(rid(3, 0, 0)), Err(Errno::ENOSPC));
    assert_eq!(k.alloc_global_pasid(rid(4, 0, 0)), Ok(4));
    k.free_global_pasid(2).unwrap();
    assert_eq!(k.free_global_pasid(2), Err(Errno::EINVAL));
    assert_eq!(k.alloc_global_pasid(rid(3, 0, 0)), Ok(2));
}

#[test]
fn map_validation_errors() {
    let mut k = Kernel::abstract_only();
    let d = k.domain_alloc(DomainType::Paging(Stage::Second)).unwrap();
    let id = k.domain_alloc(DomainType::Identity).unwrap();
    assert_eq!(
        k.map(d, 0x1001, 0x2000, 0x1000, Prot::RW),
        Err(Errno::EINVAL)
    );
    assert_eq!(k.map(d, 0x1000, 0x2000, 0, Prot::RW), Err(Errno::EINVAL));
    assert_eq!(
        k.map(d, 0x1000, 0x2000, 0x1000, Prot::default()),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        k.map(id, 0x1000, 0x2000, 0x1000, Prot::RW),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        k.map(d, 1 << 48, 0x2000, 0x1000, Prot::RW),
        Err(Errno::EFAULT)
    );
    k.map(d, 0x1000, 0x2000, 0x2000, Prot::RW).unwrap();
    assert_eq!(
        k.map(d, 0x2000, 0x9000, 0x1000, Prot::RW),
        Err(Errno::EEXIST)
    );
    assert_eq!(k.map(d, 0, 0x9000, 0x2000, Prot::RW), Err(Errno::EEXIST));
    let f = k.domain_alloc(DomainType::Paging(Stage::First)).unwrap();
    assert_eq!(k.map(f, 1 << 47, 0, 0x1000, Prot::RW), Err(Errno::EFAULT));
}

#[test]
fn map_uses_superpages_when_aligned_and_unmap_stops_at_holes() {
    let mut k = Kernel::abstract_only();
    let d = k.domain_alloc(DomainType::Paging(Stage::Second)).unwrap();
    k.map(
        d,
        0x20_0000 - 0x1000,
        0x4020_0000 - 0x1000,
        0x20_2000,
        Prot::RW,
    )
    .unwrap();
    let sizes: Vec<u64> = k.state().domains[&d]
        .mappings
        .values()
        .map(|m| m.size)
        .collect();
    assert_eq!(sizes, vec![0x1000, 0x20_0000, 0x1000]);
    // Unmapping 4 KiB inside the 2 MiB leaf removes the whole leaf.
    assert_eq!(k.unmap(d, 0x20_0000, 0x1000), Ok(0x20_0000));
    assert_eq!(k.unmap(d, 0x20_0000, 0x1000), Ok(0), "hole: nothing");
    assert_eq!(k.unmap(d, 0x10_0000, 0x1000), Ok(0));
    assert_eq!(k.windows().len(), 1, "window open until iotlb_sync");
    k.iotlb_sync(d).unwrap();
    assert!(k.windows().is_empty());
    assert_eq!(k.unmap(d, 0x123, 0x1000), Err(Errno::EINVAL));
}

#[test]
fn async_waits_keep_windows_until_completed() {
    let mut k = Kernel::new(NoIommu, KernelConfig { sync_waits: false });
    let d = k.domain_alloc(DomainType::Paging(Stage::Second)).unwrap();
    k.map(d, 0x1000, 0x5000, 0x1000, Prot::RW).unwrap();
    k.unmap(d, 0x1000, 0x1000).unwrap();
    assert_eq!(k.complete_invalidations(), 0, "flush not yet submitted");
    k.iotlb_sync(d).unwrap();
    assert_eq!(k.windows().len(), 1);
    assert_eq!(k.complete_invalidations(), 1);
    assert!(k.windows().is_empty());
}
