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

/// [`NoIommu`] whose `map_pages` fails from the `fail_at`-th call on, as a driver out of
/// page-table memory would.
struct FailingMap {
    calls: usize,
    fail_at: usize,
}

impl IommuOps for FailingMap {
    fn probe_device(&mut self, d: &DeviceDesc) -> Result<(), Errno> {
        NoIommu.probe_device(d)
    }
    fn domain_alloc(&mut self, id: DomainId, ty: DomainType) -> Result<(), Errno> {
        NoIommu.domain_alloc(id, ty)
    }
    fn domain_free(&mut self, id: DomainId) {
        NoIommu.domain_free(id)
    }
    fn pgsize_bitmap(&self, ty: DomainType) -> u64 {
        NoIommu.pgsize_bitmap(ty)
    }
    fn aperture_end(&self, ty: DomainType) -> u64 {
        NoIommu.aperture_end(ty)
    }
    fn attach_blocks_first(&self) -> bool {
        true
    }
    fn attach_dev(&mut self, id: DomainId, ty: DomainType, dev: Rid) -> Result<(), Errno> {
        NoIommu.attach_dev(id, ty, dev)
    }
    fn set_dev_pasid(&mut self, i: DomainId, t: DomainType, d: Rid, p: u32) -> Result<(), Errno> {
        NoIommu.set_dev_pasid(i, t, d, p)
    }
    fn remove_dev_pasid(&mut self, id: DomainId, dev: Rid, pasid: u32) {
        NoIommu.remove_dev_pasid(id, dev, pasid)
    }
    fn map_pages(&mut self, i: DomainId, v: u64, p: u64, s: u64, r: Prot) -> Result<(), Errno> {
        self.calls += 1;
        if self.calls >= self.fail_at {
            return Err(Errno::ENOMEM);
        }
        NoIommu.map_pages(i, v, p, s, r)
    }
    fn unmap_pages(&mut self, id: DomainId, iova: u64, pg: u64, n: u64) -> Result<(), Errno> {
        NoIommu.unmap_pages(id, iova, pg, n)
    }
    fn iotlb_sync(&mut self, id: DomainId) -> Result<(), Errno> {
        NoIommu.iotlb_sync(id)
    }
    fn mm_alloc(&mut self, mm: MmId) -> Result<(), Errno> {
        NoIommu.mm_alloc(mm)
    }
    fn mm_free(&mut self, mm: MmId) {
        NoIommu.mm_free(mm)
    }
    fn mm_set_pte(&mut self, m: MmId, v: u64, p: u64, s: u64, r: MmProt) -> Result<(), Errno> {
        NoIommu.mm_set_pte(m, v, p, s, r)
    }
    fn mm_clear_pte(&mut self, mm: MmId, va: u64, pgsize: u64) -> Result<(), Errno> {
        NoIommu.mm_clear_pte(mm, va, pgsize)
    }
    fn mm_invalidate(&mut self, mm: MmId, start: u64, end: u64) -> Result<(), Errno> {
        NoIommu.mm_invalidate(mm, start, end)
    }
}

#[test]
fn transit_records_what_neither_end_of_an_operation_shows() {
    let mut k = Kernel::new(
        FailingMap {
            calls: 0,
            fail_at: 3,
        },
        KernelConfig::default(),
    );
    k.add_device(dev(0)).unwrap();
    let d = k.domain_alloc(DomainType::Paging(Stage::Second)).unwrap();
    let e = k.domain_alloc(DomainType::Identity).unwrap();
    k.attach_device(rid(3, 0, 0), d).unwrap();
    assert!(k.transit().is_empty(), "nobody records");

    // __iommu_map(): two leaves in, the third fails, the two are unmapped again.
    k.record_transit();
    assert_eq!(
        k.map(d, 0x1000, 0x9000, 0x3000, Prot::RW),
        Err(Errno::ENOMEM)
    );
    assert!(k.state().domains[&d].mappings.is_empty());
    let t = k.transit();
    assert_eq!(t.len(), 1);
    let leaves: Vec<u64> = t[0].domains[&d].mappings.keys().copied().collect();
    assert_eq!(leaves, vec![0x1000, 0x2000]);

    // device_block_translation() before the new domain; a new recording forgets the old.
    k.record_transit();
    k.attach_device(rid(3, 0, 0), e).unwrap();
    let t = k.transit();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].devices[&rid(3, 0, 0)].rid_domain, None);
}

/// `iommu_pgsize()`: small pages up to the next larger size's boundary, then the larger
/// size; without a larger size supported, everything left in one chunk.
#[test]
fn unmap_chunks_follow_iommu_pgsize() {
    let all = PAGE_SIZE | 1 << 21 | 1 << 30;
    assert_eq!(
        super::iommu_pgsize(all, 0x1000, 0x1000, 0x40_0000),
        (0x1000, 511)
    );
    assert_eq!(
        super::iommu_pgsize(all, 0x20_0000, 0x20_0000, 0x20_1000),
        (1 << 21, 1)
    );
    assert_eq!(
        super::iommu_pgsize(all, 0x4000_0000, 0x4000_0000, 1 << 31),
        (1 << 30, 2)
    );
    let no_1g = PAGE_SIZE | 1 << 21;
    assert_eq!(
        super::iommu_pgsize(no_1g, 0x4000_0000, 0x4000_0000, 1 << 30),
        (1 << 21, 512)
    );
}
