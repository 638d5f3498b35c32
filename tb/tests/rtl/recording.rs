//! Primary fault recording through the RTL (VT-d 7.2.1): records fill in order, FSTS.PPF and
//! FRI follow, an overflow sets PFO and drops the fault without touching earlier records,
//! F is cleared by writing 1, and the fault event interrupt follows FECTL.IM.

use anyhow::{ensure, Result};
use iommu_model::driver::DriverQuirks;
use iommu_model::fault::FaultRecord;
use iommu_model::golden::Outcome;
use iommu_model::kernel::Stage;
use iommu_model::regs::{self, Caps};
use iommu_tb::check::{expected_egress, expected_record, golden_request, take_fault_records};
use iommu_tb::env::exchange;
use iommu_tb::env::MemTiming;
use iommu_tb::hw::system::*;
use iommu_tb::tlp::{self, MemRequest};
use iommu_tb::{run_test, TestFailure};

/// Sends a faulting read without collecting its record; checks its completion.
fn fault_without_clearing(k: &mut RtlKernel, req: &MemRequest) -> Result<FaultRecord> {
    let hw = hw_state(k);
    let walk = {
        let mem = &k.ops_mut().hw_mut().mem_agent().mem;
        iommu_model::golden::translate(&hw, mem, &golden_request(req))
    };
    let Outcome::Fault(r) = walk.outcome else {
        anyhow::bail!("expected a fault, golden says {}", walk.outcome)
    };
    let got = exchange(env(k), &tlp::encode(req)?, 4000)?;
    ensure!(
        got == expected_egress(req, &walk.outcome)?,
        "wrong egress {got:?}"
    );
    Ok(expected_record(req, r))
}

#[test]
fn records_fill_in_order_and_overflow_sets_pfo() -> Result<(), TestFailure> {
    run_test("fault_overflow", 41, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        let (_d, pasid) = dma_domain_with_pasid(&mut k, Stage::Second)?;
        let e = env(&mut k);
        let cap = Caps::new(e.read64(regs::CAP)?, 0);
        let n = u64::from(cap.num_fault_records());
        e.write32(regs::FECTL, 0)?; // unmask the fault event
        ensure!(!e.out.fault_irq);
        // n + 2 distinct faults (unmapped IOVAs), alternately with and without PASID.
        let mut want = Vec::new();
        for i in 0..n + 2 {
            let r = MemRequest::read(DEV, i as u16, 0x7000_0000 + i * 0x1000, 1);
            let r = if i % 2 == 1 {
                r.with_pasid(pasid, false, false)
            } else {
                r
            };
            want.push(fault_without_clearing(&mut k, &r)?);
        }
        let e = env(&mut k);
        let st = e.read32(regs::FSTS)?;
        ensure!(
            st & regs::FSTS_PPF != 0 && st & regs::FSTS_PFO != 0,
            "FSTS {st:#x}: PPF and PFO expected"
        );
        ensure!(
            (st >> 8) & 0xff == 0,
            "FRI {} should point at the first record",
            (st >> 8) & 0xff
        );
        ensure!(e.out.fault_irq, "fault event interrupt with IM clear");
        // Records 0..n hold the first n faults; the overflowing ones were dropped.
        let recs = take_fault_records(e)?;
        ensure!(
            recs == want[..n as usize],
            "records {recs:#?}\nexpected {:#?}",
            &want[..n as usize]
        );
        let st = e.read32(regs::FSTS)?;
        ensure!(
            st & regs::FSTS_PPF == 0 && st & regs::FSTS_PFO != 0,
            "after clearing F: FSTS {st:#x}"
        );
        // While PFO is set, new faults are dropped.
        let r = MemRequest::read(DEV, 0x77, 0x7100_0000, 1);
        fault_without_clearing(&mut k, &r)?;
        let e = env(&mut k);
        ensure!(
            take_fault_records(e)?.is_empty(),
            "a fault was recorded while PFO was set"
        );
        e.write32(regs::FSTS, regs::FSTS_PFO)?;
        ensure!(e.read32(regs::FSTS)? == 0);
        ensure!(
            !e.out.fault_irq,
            "interrupt still pending with nothing to report"
        );
        // Recording resumes in the next register after the last one written.
        let w = fault_without_clearing(&mut k, &r)?;
        let e = env(&mut k);
        let st = e.read32(regs::FSTS)?;
        ensure!(st & regs::FSTS_PPF != 0, "PPF after a new fault");
        let fri = u64::from((st >> 8) & 0xff);
        ensure!(fri == n % n, "FRI {fri}: the ring wraps to record 0");
        ensure!(take_fault_records(e)? == vec![w]);
        Ok(())
    })
}

#[test]
fn masked_fault_event_sets_ip_only() -> Result<(), TestFailure> {
    run_test("fault_masked", 42, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        dma_domain_with_pasid(&mut k, Stage::First)?;
        let r = MemRequest::write(DEV, 0, 0x6000_0000, 1);
        fault_without_clearing(&mut k, &r)?;
        let e = env(&mut k);
        ensure!(
            e.read32(regs::FECTL)? == 0xc000_0000,
            "FECTL: IM and IP set"
        );
        ensure!(!e.out.fault_irq, "masked: no interrupt");
        let recs = take_fault_records(e)?;
        ensure!(
            recs.len() == 1 && !recs[0].read,
            "one write fault recorded: {recs:?}"
        );
        Ok(())
    })
}
