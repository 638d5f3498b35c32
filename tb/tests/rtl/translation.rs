//! Translation through the RTL, judged by the golden walker on the same memory: the tables
//! are written by the VT-d driver model exactly as Linux writes them, and invalidations go
//! through the DUT's invalidation queue.

use iommu_model::driver::DriverQuirks;
use iommu_model::golden::Outcome;
use iommu_model::kernel::Stage;
use iommu_tb::env::MemTiming;
use iommu_tb::hw::system::*;
use iommu_tb::tlp::MemRequest;
use iommu_tb::{run_test, TestFailure};

fn rd(addr: u64, pasid: Option<u32>) -> MemRequest {
    let r = MemRequest::read(DEV, 0x21, addr, 4);
    match pasid {
        Some(p) => r.with_pasid(p, false, false),
        None => r,
    }
}

fn wr(addr: u64, pasid: Option<u32>) -> MemRequest {
    let r = MemRequest::write(DEV, 0, addr, 2);
    match pasid {
        Some(p) => r.with_pasid(p, false, false),
        None => r,
    }
}

fn translated(j: &iommu_tb::check::Judged) -> anyhow::Result<u64> {
    match j.walk.outcome {
        Outcome::Translated(pa) => Ok(pa),
        o => anyhow::bail!("expected a translation, the golden walker says {o}"),
    }
}

#[test]
fn rid_and_pasid_reach_the_same_pa() -> Result<(), TestFailure> {
    for stage in [Stage::First, Stage::Second] {
        run_test(&format!("rid_and_pasid_{stage:?}"), 11, |tb| {
            let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
            let (d, pasid) = dma_domain_with_pasid(&mut k, stage)?;
            map(&mut k, d, 0x10_0000, 0x8_0000_0000, 0x4000, true, true)?;
            for off in [0u64, 0x1010, 0x3ff0] {
                let via_rid = translated(&check(&mut k, &rd(0x10_0000 + off, None))?)?;
                let via_pasid = translated(&check(&mut k, &rd(0x10_0000 + off, Some(pasid)))?)?;
                anyhow::ensure!(
                    via_rid == via_pasid,
                    "RID gives {via_rid:#x}, PASID {pasid} gives {via_pasid:#x}"
                );
                check(&mut k, &wr(0x10_0000 + off, Some(pasid)))?;
                check(&mut k, &wr(0x10_0000 + off, None))?;
            }
            Ok(())
        })?;
    }
    Ok(())
}
