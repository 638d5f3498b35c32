//! The environment's per-cycle monitors on the real DUT: no false alarms on legal traffic
//! (back-to-back CSR accesses, register traffic inside an expect-idle window), and an
//! idle claim that is false (the invalidation queue still has work) fails at once.

use anyhow::{ensure, Result};
use iommu_model::driver::DriverQuirks;
use iommu_model::qi::Descriptor;
use iommu_model::regs;
use iommu_tb::env::MemTiming;
use iommu_tb::hw::system::*;
use iommu_tb::{run_test, TestFailure};

#[test]
fn back_to_back_csr_accesses_are_not_flagged() -> Result<(), TestFailure> {
    run_test("monitor_csr_back_to_back", 0x30_0001, |env| {
        // Valid held high for 16 cycles: one access accepted per cycle, answered one later.
        env.inp.csr_valid = true;
        env.inp.csr_write = false;
        env.inp.csr_size64 = false;
        for i in 0..16u64 {
            env.inp.csr_addr =
                [regs::VER, regs::GSTS, regs::FSTS, regs::FECTL][i as usize % 4] as u16;
            env.tick();
        }
        env.inp.csr_valid = false;
        env.idle(4);
        env.check_assertions()?;
        ensure!(env.read32(regs::VER)? == regs::VER_VALUE);
        env.check_assertions()
    })
}

#[test]
fn register_traffic_keeps_the_idle_window_quiet() -> Result<(), TestFailure> {
    run_test("monitor_idle_quiet", 0x30_0002, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        flush_all(&mut k)?;
        let e = env(&mut k);
        e.expect_idle();
        for _ in 0..20 {
            e.read32(regs::FSTS)?;
            e.read64(regs::IQH)?;
            e.write32(regs::FEDATA, 0x55)?;
        }
        e.idle(100);
        ensure!(
            e.monitor.idle_expected(),
            "register reads and FEDATA writes closed the window"
        );
        e.check_assertions()?;
        Ok(())
    })
}

#[test]
fn a_false_idle_claim_fails_at_the_first_memory_request() -> Result<(), TestFailure> {
    run_test("monitor_idle_claim", 0x30_0003, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        flush_all(&mut k)?;
        // A descriptor is queued (the IQT write closes any window); claiming idle right
        // after is false: the queue is about to fetch it.
        let wait = Descriptor::Wait {
            intr: true,
            sw: false,
            fence: false,
            status_data: 0,
            status_addr: 0,
        };
        k.ops_mut().hw_mut().queue(&[wait.encode()])?;
        let e = env(&mut k);
        e.expect_idle();
        e.idle(200);
        let err = match e.check_assertions() {
            Ok(()) => anyhow::bail!("the queue's fetch inside the idle window was not reported"),
            Err(err) => err.to_string(),
        };
        ensure!(
            err.contains("memory read") && err.contains("must be idle"),
            "{err}"
        );
        Ok(())
    })
}

/// The RTL's named assertions fire and reach the bench: a memory response for an ID with no
/// request outstanding breaks `iommu_mem_arb`'s `RspWithoutReq_A`. The step that breaks it
/// reports the simulation error; the cycles before it, out of reset, report none.
#[test]
fn an_rtl_assertion_that_fires_is_reported() {
    use iommu_tb::dut::{Dut, DutIn};
    let mut dut = Dut::new(0x30_0004);
    dut.reset(4);
    let mut inp = DutIn {
        rst_n: true,
        ..DutIn::default()
    };
    for _ in 0..8 {
        assert!(
            !dut.step(&inp).sim_error,
            "an assertion fired on idle inputs"
        );
    }
    inp.mem_rsp_valid = true;
    inp.mem_rsp_id = 3;
    assert!(
        dut.step(&inp).sim_error,
        "a memory response nobody asked for did not fire RspWithoutReq_A"
    );
}
