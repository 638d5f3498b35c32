//! What the flush and device-TLB tests share: one device (with ATS or without) whose DMA
//! domain is attached through the RID and its DMA PASID, on golden hardware (with ECAP.DT =
//! 1 for ATS, or a wrapper of it).

// Each test file uses part of this module.
#![allow(dead_code)]

use iommu_model::driver::{Driver, DriverQuirks, IommuHw};
use iommu_model::golden::GoldenHw;
use iommu_model::kernel::dma::DmaDirection;
use iommu_model::kernel::{rid, DeviceDesc, DomainType, Kernel, KernelConfig, Stage};
use iommu_model::mem::Mem;
use iommu_model::regs;

/// The physical address the DMA buffer of [`ats_dma_system`] maps.
pub const BUF: u64 = 0x9_0000_0000;

/// The ATS device.
pub fn dev() -> u16 {
    rid(0x10, 3, 1)
}

/// Golden hardware that advertises ECAP.DT = 1.
pub fn dt_hw() -> GoldenHw {
    let mut hw = GoldenHw::new(Mem::new());
    hw.ecap |= regs::ecap::DT;
    hw
}

/// The ATS device [`dev`] on `hw`, its DMA domain (`stage`) also attached at its DMA PASID,
/// one page at [`BUF`] mapped through the DMA API: the kernel, the PASID and the IOVA.
pub fn ats_dma_system<H: IommuHw>(
    hw: H,
    quirks: DriverQuirks,
    stage: Stage,
) -> (Kernel<Driver<H>>, u32, u64) {
    dma_system(hw, quirks, stage, true)
}

/// [`ats_dma_system`], the device with ATS or without.
pub fn dma_system<H: IommuHw>(
    hw: H,
    quirks: DriverQuirks,
    stage: Stage,
    ats: bool,
) -> (Kernel<Driver<H>>, u32, u64) {
    let drv = Driver::new(hw, quirks).unwrap();
    let mut k = Kernel::new(drv, KernelConfig::default());
    k.add_device(DeviceDesc {
        rid: dev(),
        max_pasids: 1 << 8,
        ats,
    })
    .unwrap();
    let d = k.domain_alloc(DomainType::Paging(stage)).unwrap();
    k.attach_device(dev(), d).unwrap();
    let pasid = k.enable_dma_pasid(dev()).unwrap();
    let iova = k
        .dma_map_single(dev(), BUF, 0x1000, DmaDirection::Bidirectional)
        .unwrap();
    (k, pasid, iova)
}
