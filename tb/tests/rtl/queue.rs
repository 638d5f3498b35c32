//! Queued invalidation through the RTL: queue errors stop the queue with the right
//! IQER.IQEI and resume when FSTS.IQE is cleared; wait descriptors write status and raise
//! ICS.IWC; the RTL accepts exactly the descriptors the model's decoder accepts.

use anyhow::{ensure, Result};
use iommu_model::driver::{DriverQuirks, IommuHw};
use iommu_model::qi::Descriptor;
use iommu_model::regs;
use iommu_tb::env::MemTiming;
use iommu_tb::hw::system::*;
use iommu_tb::hw::RtlHw;
use iommu_tb::{run_test, TestFailure};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn hw(k: &mut RtlKernel) -> &mut RtlHw {
    k.ops_mut().hw_mut()
}

fn wait_desc(status: u64, data: u32, intr: bool) -> [u64; 4] {
    Descriptor::Wait {
        intr,
        sw: true,
        fence: false,
        status_data: data,
        status_addr: status,
    }
    .encode()
}

/// Runs until FSTS.IQE is set or `max` cycles pass; returns (IQE, IQEI, IQH index).
fn settle(hw: &mut RtlHw, max: u32) -> Result<(bool, u64, u64)> {
    hw.env.idle(max);
    let iqe = hw.env.read32(regs::FSTS)? & regs::FSTS_IQE != 0;
    let iqei = hw.env.read64(regs::IQER)? & 0xf;
    let iqh = hw.env.read64(regs::IQH)? >> 5;
    Ok((iqe, iqei, iqh))
}

fn status_word(hw: &mut RtlHw, status: u64) -> Result<u32> {
    use iommu_model::mem::PhysMem;
    Ok(hw.mem_agent().mem.read64(status & !7)? as u32)
}

#[test]
fn queue_errors_stop_and_resume() -> Result<(), TestFailure> {
    run_test("queue_errors", 31, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        let hw = hw(&mut k);
        let status = hw.mem().alloc_page()?;
        // (descriptor, IQEI): unknown type, reserved bit, bad granularity.
        let cases: [([u64; 4], u64); 4] = [
            ([0x4, 0, 0, 0], 3),
            ([0x3 | (1 << 9), 0, 0, 0], 3),
            ([0x2 | (1 << 4) | (1 << 12), 0, 0, 0], 4),
            ([0x6 | (1 << 4), 0, 0, 0], 4),
        ];
        for (n, (bad, iqei)) in cases.into_iter().enumerate() {
            let head_before = hw.env.read64(regs::IQH)? >> 5;
            hw.queue(&[bad, wait_desc(status, n as u32 + 10, false)])?;
            let (iqe, got_iqei, iqh) = settle(hw, 200)?;
            ensure!(iqe, "case {n}: {bad:x?} did not set FSTS.IQE");
            ensure!(
                got_iqei == iqei,
                "case {n}: IQEI {got_iqei}, expected {iqei}"
            );
            ensure!(
                iqh == head_before,
                "case {n}: IQH {iqh} must stay at the bad descriptor {head_before}"
            );
            ensure!(
                status_word(hw, status)? != n as u32 + 10,
                "case {n}: the wait after the bad descriptor ran"
            );
            // Software replaces the bad descriptor (as Linux does with a wait) and clears IQE.
            let at = (hw.env.read64(regs::IQA)? & !0xfff) + iqh * 32;
            for (i, w) in wait_desc(status, 0xaaa, false).iter().enumerate() {
                hw.mem().write64(at + 8 * i as u64, *w)?;
            }
            hw.env.write32(regs::FSTS, regs::FSTS_IQE)?;
            let (iqe, _, _) = settle(hw, 200)?;
            ensure!(!iqe, "case {n}: the queue stopped again");
            ensure!(
                status_word(hw, status)? == n as u32 + 10,
                "case {n}: the queue did not resume"
            );
        }
        Ok(())
    })
}

#[test]
fn fetch_error_and_bad_tail() -> Result<(), TestFailure> {
    run_test("queue_fetch_error", 32, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        let hw = hw(&mut k);
        let base = hw.env.read64(regs::IQA)? & !0xfff;
        hw.mem().add_error_range(base, base + 0x1000);
        let tail = hw.env.read64(regs::IQT)?;
        hw.env.write64(regs::IQT, (tail + 0x20) & 0xfe0)?;
        let (iqe, iqei, _) = settle(hw, 200)?;
        ensure!(iqe && iqei == 2, "fetch error: IQE {iqe} IQEI {iqei}");
        hw.mem().clear_error_ranges();
        // Disable and re-enable QI to start from an empty queue, then an invalid tail.
        hw.env.write32(regs::GCMD, regs::GCMD_TE)?;
        hw.env.write32(regs::FSTS, regs::FSTS_IQE)?;
        hw.env.poll32(regs::GSTS, regs::GCMD_QIE, 0, 200)?;
        hw.env.write64(regs::IQT, 0)?;
        hw.env.write32(regs::GCMD, regs::GCMD_TE | regs::GCMD_QIE)?;
        hw.env
            .poll32(regs::GSTS, regs::GCMD_QIE, regs::GCMD_QIE, 200)?;
        ensure!(
            hw.env.read64(regs::IQH)? == 0,
            "IQH resets when QI is disabled"
        );
        hw.env.write64(regs::IQT, 0x30)?; // bit 4 set with 256-bit descriptors
        let (iqe, iqei, _) = settle(hw, 50)?;
        ensure!(iqe && iqei == 1, "invalid tail: IQE {iqe} IQEI {iqei}");
        Ok(())
    })
}

#[test]
fn wait_writes_status_and_raises_iwc() -> Result<(), TestFailure> {
    run_test("queue_wait_iwc", 33, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        let hw = hw(&mut k);
        let status = hw.mem().alloc_page()? + 0x44; // upper half of a 64-bit word
        hw.env.write32(regs::IECTL, 0)?; // unmask
        ensure!(hw.env.read32(regs::ICS)? == 0);
        hw.queue(&[wait_desc(status, 0x1234_5678, true)])?;
        settle(hw, 50)?;
        use iommu_model::mem::PhysMem;
        let word = hw.mem_agent().mem.read64(status & !7)?;
        ensure!(
            word >> 32 == 0x1234_5678 && word as u32 == 0,
            "status word {word:#x}: wrong half or data"
        );
        ensure!(hw.env.read32(regs::ICS)? == 1, "ICS.IWC not set");
        ensure!(
            hw.env.out.inv_irq,
            "invalidation-completion interrupt not raised"
        );
        hw.env.write32(regs::ICS, 1)?;
        ensure!(hw.env.read32(regs::ICS)? == 0, "ICS.IWC is RW1C");
        ensure!(!hw.env.out.inv_irq);
        Ok(())
    })
}

/// A random descriptor, biased towards the implemented types and mostly-valid fields.
fn random_descriptor(rng: &mut ChaCha8Rng) -> [u64; 4] {
    let ty = *[1u64, 2, 5, 6, 7, 1, 2, 6, 7, 3, 4, 8][..]
        .get(rng.gen_range(0..12))
        .unwrap_or(&2);
    let mut qw0 = ty | (rng.gen_range(0..4u64) << 4) | (u64::from(rng.gen::<u16>()) << 16);
    let mut qw1 = 0u64;
    match ty {
        1 => qw0 |= u64::from(rng.gen::<u16>()) << 32 | rng.gen_range(0..4u64) << 48,
        2 | 6 => {
            if ty == 6 {
                qw0 |= u64::from(rng.gen_range(0..1u32 << 20)) << 32;
            } else {
                qw0 |= rng.gen_range(0..4u64) << 6;
            }
            qw1 = (rng.gen::<u64>() & !0xfff) | rng.gen_range(0..128u64);
        }
        5 => {
            qw0 = ty | (rng.gen_range(0..8u64) << 4) | (u64::from(rng.gen::<u32>()) << 32);
            qw1 = rng.gen::<u64>() & !3;
        }
        7 => qw0 |= u64::from(rng.gen_range(0..1u32 << 20)) << 32,
        _ => {}
    }
    // Now and then one stray bit anywhere.
    let mut d = [qw0, qw1, 0, 0];
    if rng.gen_range(0..4) == 0 {
        let bit = rng.gen_range(0..256);
        d[bit / 64] ^= 1 << (bit % 64);
    }
    d
}

#[test]
fn rtl_accepts_exactly_what_the_model_decodes() -> Result<(), TestFailure> {
    run_test("queue_decode_differential", 34, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        let hw = hw(&mut k);
        let status = hw.mem().alloc_page()?;
        let mut rng = ChaCha8Rng::seed_from_u64(34);
        let (mut accepted, mut rejected) = (0, 0);
        for n in 0..300u32 {
            let mut d = random_descriptor(&mut rng);
            // Waits must not scribble over memory the test relies on: point them at the page.
            if d[0] & 0xf == 5 && d[0] & (1 << 5) != 0 {
                d[1] = status + (d[1] & 0xff8 & !7);
            }
            let model_ok = Descriptor::decode(d).is_ok();
            hw.queue(&[d, wait_desc(status + 0x800, n, false)])?;
            let (iqe, iqei, _) = settle(hw, 60)?;
            if model_ok {
                ensure!(
                    !iqe,
                    "RTL rejected (IQEI {iqei}) {d:#x?}, which the model decodes as {:?}",
                    Descriptor::decode(d)
                );
                ensure!(
                    status_word(hw, status + 0x800)? == n,
                    "queue did not run past {d:#x?}"
                );
                accepted += 1;
            } else {
                ensure!(
                    iqe,
                    "RTL accepted {d:#x?}, which the model rejects: {:?}",
                    Descriptor::decode(d)
                );
                ensure!(iqei == 3 || iqei == 4, "IQEI {iqei} for {d:#x?}");
                rejected += 1;
                // Replace the bad descriptor with a no-op wait and resume.
                let iqh = hw.env.read64(regs::IQH)? >> 5;
                let at = (hw.env.read64(regs::IQA)? & !0xfff) + iqh * 32;
                for (i, w) in wait_desc(status + 0x900, 0, false).iter().enumerate() {
                    hw.mem().write64(at + 8 * i as u64, *w)?;
                }
                hw.env.write32(regs::FSTS, regs::FSTS_IQE)?;
                settle(hw, 60)?;
                ensure!(
                    status_word(hw, status + 0x800)? == n,
                    "queue did not resume after {d:#x?}"
                );
            }
        }
        ensure!(
            accepted > 50 && rejected > 50,
            "too one-sided: {accepted} accepted, {rejected} rejected"
        );
        Ok(())
    })
}

/// A walk that read the old leaf before an unmap and finishes after the unmap's flush was
/// fetched must not leave its translation behind: the invalidation waits for it.
#[test]
fn invalidation_waits_for_walks_in_flight() -> Result<(), TestFailure> {
    use iommu_model::kernel::Stage;
    use iommu_tb::tlp::MemRequest;
    for stage in [Stage::Second, Stage::First] {
        run_test(&format!("inval_vs_walk_{stage:?}"), 35, |tb| {
            let timing = MemTiming {
                min_latency: 40,
                max_latency: 40,
                ready_pct: 100,
                in_order: false,
            };
            let mut k = system_on(tb, timing, DriverQuirks::default())?;
            let (d, pasid) = dma_domain_with_pasid(&mut k, stage)?;
            map(&mut k, d, 0x50_0000, 0xa_0000_0000, 0x1000, true, true)?;
            let req = MemRequest::read(DEV, 7, 0x50_0080, 1).with_pasid(pasid, false, false);
            let words = iommu_tb::tlp::encode(&req)?;
            // Start a cold walk and let it read the leaf (the 18th read), then unmap while
            // the leaf's response is still 40 cycles away.
            take_reads(&mut k);
            {
                let e = env(&mut k);
                e.inp.rx_valid = true;
                e.inp.rx_nprefix = words.prefix_count as u8;
                e.inp.rx_prefix = words.prefix;
                e.inp.rx_hdr = words.header;
                loop {
                    let out = e.tick();
                    if out.rx_ready {
                        break;
                    }
                }
                e.inp.rx_valid = false;
                let mut waited = 0;
                while e.mem.as_ref().map_or(0, |m| m.reads()) < 18 {
                    e.tick();
                    waited += 1;
                    ensure!(waited < 5000, "the walk never reached its leaf");
                }
            }
            unmap(&mut k, d, 0x50_0000, 0x1000)?;
            // The page is gone: no stale translation may have been filled after the flush.
            let j = check(&mut k, &req)?;
            ensure!(
                matches!(j.walk.outcome, iommu_model::golden::Outcome::Fault(_)),
                "{}",
                j.walk.outcome
            );
            Ok(())
        })?;
    }
    Ok(())
}

/// A TLP translated before an invalidation must leave the unit before the wait behind that
/// invalidation completes: held in the egress stage by back-pressure, it holds the wait.
#[test]
fn wait_completes_only_after_translated_tlps_left() -> Result<(), TestFailure> {
    use iommu_model::kernel::Stage;
    use iommu_model::qi::{Descriptor, IotlbGran};
    use iommu_tb::tlp::MemRequest;
    run_test("wait_after_egress", 36, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        let (d, _) = dma_domain_with_pasid(&mut k, Stage::Second)?;
        map(&mut k, d, 0x50_0000, 0xa_0000_0000, 0x1000, true, true)?;
        let req = MemRequest::read(DEV, 9, 0x50_0100, 1);
        check(&mut k, &req)?; // the IOTLB now holds the translation
        let words = iommu_tb::tlp::encode(&req)?;
        let hw = hw(&mut k);
        let status = hw.mem().alloc_page()?;
        // The hit goes into the egress stage and stays there: tx is not ready.
        hw.env.inp.tx_ready = false;
        hw.env.inp.rx_valid = true;
        hw.env.inp.rx_nprefix = 0;
        hw.env.inp.rx_hdr = words.header;
        loop {
            if hw.env.tick().rx_ready {
                break;
            }
        }
        hw.env.inp.rx_valid = false;
        hw.env.idle(4);
        ensure!(
            hw.env.out.tx_valid,
            "the translated TLP is not waiting in the egress stage"
        );
        // Flush everything and wait, while the old translation is still inside the unit.
        hw.queue(&[
            Descriptor::Iotlb {
                gran: IotlbGran::Global,
                dr: false,
                dw: false,
                did: 0,
                addr: 0,
                am: 0,
                ih: false,
            }
            .encode(),
            wait_desc(status, 0x5a5a, false),
        ])?;
        hw.env.idle(300);
        ensure!(
            status_word(hw, status)? != 0x5a5a,
            "the wait completed while a TLP translated before it was still inside"
        );
        // Let it go: it leaves, then the wait completes.
        hw.env.inp.tx_ready = true;
        let out = hw.env.tick();
        ensure!(out.tx_valid, "the held TLP did not leave");
        hw.env.idle(100);
        ensure!(
            status_word(hw, status)? == 0x5a5a,
            "the wait never completed"
        );
        Ok(())
    })
}
