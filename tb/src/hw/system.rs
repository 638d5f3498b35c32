//! A system to test or measure translation with: the model's kernel and VT-d driver running
//! on the DUT ([`RtlHw`]), and helpers to map, unmap, flush and judge requests.

use crate::check::judge::{judge, Judged};
use crate::env::mem::MemTiming;
use crate::env::Env;
use crate::hw::rtl_hw::RtlHw;
use crate::tlp::MemRequest;
use anyhow::{Context, Result};
use iommu_model::driver::{Driver, DriverQuirks};
use iommu_model::golden::HwState;
use iommu_model::kernel::{
    DeviceDesc, DomainId, DomainType, Kernel, KernelConfig, Prot, Rid, Stage,
};
use iommu_model::mem::Mem;
use iommu_model::qi::{Descriptor, IotlbGran};

pub type RtlKernel = Kernel<Driver<RtlHw>>;

/// The device most tests use: 00:02.0 with 20-bit PASIDs.
pub const DEV: Rid = 0x0010;

/// A system with translation on: the driver model programmed the DUT's root table,
/// invalidated its caches and set TE, as `intel_iommu_init` does.
pub fn system(seed: u64, timing: MemTiming, quirks: DriverQuirks) -> Result<RtlKernel> {
    system_on(&mut Env::new(seed), timing, quirks)
}

/// [`system`] on the DUT of `env` (taken over, so a waveform `run_test` opened on it shows
/// the whole test).
pub fn system_on(env: &mut Env, timing: MemTiming, quirks: DriverQuirks) -> Result<RtlKernel> {
    let hw = RtlHw::from_env(env.take(), Mem::new(), timing)?;
    let drv = Driver::new(hw, quirks)?;
    let mut k = Kernel::new(drv, KernelConfig::default());
    k.add_device(DeviceDesc {
        rid: DEV,
        max_pasids: 1 << 20,
        ats: false,
    })
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(k)
}

pub fn env(k: &mut RtlKernel) -> &mut Env {
    &mut k.ops_mut().hw_mut().env
}

pub fn hw_state(k: &RtlKernel) -> HwState {
    HwState {
        te: true,
        rtaddr: k.ops().rtaddr(),
    }
}

/// Sends `req` and checks it against the golden walker.
pub fn check(k: &mut RtlKernel, req: &MemRequest) -> Result<Judged> {
    let hw = hw_state(k);
    judge(env(k), &hw, req)
}

/// A DMA domain of `stage`, attached to DEV's RID and again at a global PASID (the idxd flow).
pub fn dma_domain_with_pasid(k: &mut RtlKernel, stage: Stage) -> Result<(DomainId, u32)> {
    let e = |e| anyhow::anyhow!("{e:?}");
    let d = k.domain_alloc(DomainType::Paging(stage)).map_err(e)?;
    k.attach_device(DEV, d).map_err(e)?;
    let pasid = k
        .enable_dma_pasid(DEV)
        .map_err(e)
        .context("enable_dma_pasid")?;
    Ok((d, pasid))
}

pub fn map(
    k: &mut RtlKernel,
    d: DomainId,
    iova: u64,
    pa: u64,
    size: u64,
    read: bool,
    write: bool,
) -> Result<()> {
    k.map(d, iova, pa, size, Prot { read, write })
        .map_err(|e| anyhow::anyhow!("map {iova:#x}: {e:?}"))
}

pub fn unmap(k: &mut RtlKernel, d: DomainId, iova: u64, size: u64) -> Result<()> {
    k.unmap(d, iova, size)
        .map_err(|e| anyhow::anyhow!("unmap {iova:#x}: {e:?}"))?;
    k.iotlb_sync(d)
        .map_err(|e| anyhow::anyhow!("iotlb_sync: {e:?}"))
}

/// Memory reads the DUT made since the last call (and forgets them).
pub fn take_reads(k: &mut RtlKernel) -> usize {
    let agent = k.ops_mut().hw_mut().mem_agent();
    let n = agent.reads();
    agent.log.clear();
    n
}

/// A global IOTLB invalidation (first- and second-stage entries alike in this unit).
pub fn iotlb_global() -> Descriptor {
    Descriptor::Iotlb {
        gran: IotlbGran::Global,
        dr: false,
        dw: false,
        did: 0,
        addr: 0,
        am: 0,
        ih: false,
    }
}

/// Global context-cache, PASID-cache and IOTLB invalidations (without the wait).
pub fn global_invalidations() -> [Descriptor; 3] {
    Descriptor::global_invalidations(false, false)
}

/// Global context-cache, PASID-cache and IOTLB invalidation, then a wait.
pub fn flush_all(k: &mut RtlKernel) -> Result<()> {
    k.ops_mut()
        .hw_mut()
        .submit_and_wait(&global_invalidations())?;
    Ok(())
}

/// Global IOTLB invalidation, then a wait: cached PASID entries stay.
pub fn flush_iotlb(k: &mut RtlKernel) -> Result<()> {
    k.ops_mut().hw_mut().submit_and_wait(&[iotlb_global()])?;
    Ok(())
}
