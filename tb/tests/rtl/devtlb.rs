//! Device-TLB invalidation through the RTL (docs/contract.md 6.3, 6.5): descriptor types 3
//! and 8 become Invalidate Request messages on the `ats_inv` port whose fields are the
//! descriptor's; a wait completes only after the device's Invalidate Completions; 32 ITags
//! can be outstanding and no more; a device that never answers sets FSTS.ITE, the pending
//! wait is aborted and the queue goes on once software clears ITE; at kernel level the
//! driver then resubmits the batch, and a completion that comes after the time-out is
//! harmless.

use std::collections::VecDeque;

use anyhow::{ensure, Context, Result};
use iommu_model::devtlb::InvalidateRequest;
use iommu_model::driver::{DriverQuirks, IommuHw};
use iommu_model::golden::Outcome;
use iommu_model::kernel::{DeviceDesc, DomainId, DomainType, Rid, Stage};
use iommu_model::mem::PhysMem;
use iommu_model::oracle::stale_device_tlb;
use iommu_model::qi::Descriptor;
use iommu_model::regs;
use iommu_tb::dut::{ATS_INV_TIMEOUT, COMPLETER_ID};
use iommu_tb::env::{completion_hdr, Answer, Fate, MemTiming};
use iommu_tb::hw::system::*;
use iommu_tb::hw::RtlHw;
use iommu_tb::tlp::{At, MemRequest};
use iommu_tb::{run_test, Env, TestFailure};

fn hw(k: &mut RtlKernel) -> &mut RtlHw {
    k.ops_mut().hw_mut()
}

fn wait_desc(status: u64, data: u32) -> [u64; 4] {
    Descriptor::Wait {
        intr: false,
        sw: true,
        fence: false,
        status_data: data,
        status_addr: status,
    }
    .encode()
}

fn status_word(hw: &mut RtlHw, status: u64) -> Result<u32> {
    Ok(hw.mem_agent().mem.read64(status & !7)? as u32)
}

/// Descriptors of both types with every field away from zero, in Linux's encodings.
fn samples() -> Vec<Descriptor> {
    vec![
        Descriptor::dev_tlb(0x0180, 0x0180, 32, 0x7654_3000, 0),
        Descriptor::dev_tlb(0xA5C3, 0x1234, 7, 0x1_2340_0000, 9),
        Descriptor::dev_tlb(0x0101, 0x0101, 0, 0, 52),
        Descriptor::pasid_dev_tlb(0x0180, 0x0180, 0x1, 32, 0x4000, 0),
        Descriptor::pasid_dev_tlb(0x3C5A, 0xBEEF, 0xF_FFFF, 9, 0xFFFF_E000_0000, 3),
        Descriptor::pasid_dev_tlb(0x0180, 0x0180, 0x12345, 0, 0, 52),
        Descriptor::PasidDevTlb {
            sid: 0x0208,
            pfsid: 0x0208,
            qdep: 0,
            pasid: 0xABCDE,
            addr: 0x8_0000_1000,
            size: false,
            global: true,
        },
    ]
}

#[test]
fn every_field_reaches_the_invalidate_request() -> Result<(), TestFailure> {
    run_test("devtlb_fields", 81, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        let hw = hw(&mut k);
        let mut itags = Vec::new();
        for (n, d) in samples().into_iter().enumerate() {
            let before = hw.env.ats.requests.len();
            hw.submit_and_wait(&[d])
                .with_context(|| format!("sample {n}: {d}"))?;
            let got = &hw.env.ats.requests[before..];
            ensure!(
                got.len() == 1,
                "sample {n}: {d} sent {} messages",
                got.len()
            );
            let m = got[0];
            let want = InvalidateRequest::from_descriptor(&d).context("a device-TLB type")?;
            ensure!(
                m.well_formed(),
                "sample {n}: {d} gave a malformed message {m}"
            );
            ensure!(m.requester_id() == COMPLETER_ID, "sample {n}: {m}");
            ensure!(
                m.request() == want,
                "sample {n}: {d}: {m}, expected {want:?}"
            );
            // The untranslated address bits as written, not only the range they encode.
            let (addr, size, global) = match d {
                Descriptor::DevTlb { addr, size, .. } => (addr, size, false),
                Descriptor::PasidDevTlb {
                    addr, size, global, ..
                } => (addr, size, global),
                _ => unreachable!("samples are device-TLB descriptors"),
            };
            ensure!(
                (m.addr(), m.size(), m.global()) == (addr, size, global),
                "sample {n}: {d}: {m}"
            );
            ensure!(m.itag() < 32, "sample {n}: {m}");
            itags.push(m.itag());
        }
        // With one request out at a time the lowest ITag is reused.
        ensure!(itags.iter().all(|&t| t == itags[0]), "{itags:?}");
        Ok(())
    })
}

/// Queues `descs` and a wait; runs until the status lands or `max` cycles pass. Returns
/// the cycle the status landed and the cycle each completion was accepted.
fn run_batch(hw: &mut RtlHw, descs: &[Descriptor], max: u64) -> Result<(Option<u64>, Vec<u64>)> {
    let status = hw.mem().alloc_page()?;
    let mut q: Vec<[u64; 4]> = descs.iter().map(Descriptor::encode).collect();
    q.push(wait_desc(status, 0x5a5a));
    hw.queue(&q)?;
    let mut accepted = Vec::new();
    let start = hw.env.dut.cycle();
    while hw.env.dut.cycle() - start < max {
        let sent = hw.env.ats.completions_sent;
        hw.env.tick();
        if hw.env.ats.completions_sent != sent {
            accepted.push(hw.env.dut.cycle());
        }
        if status_word(hw, status)? == 0x5a5a {
            return Ok((Some(hw.env.dut.cycle()), accepted));
        }
    }
    Ok((None, accepted))
}

#[test]
fn a_wait_completes_only_after_the_invalidate_completions() -> Result<(), TestFailure> {
    run_test("devtlb_late_answer", 82, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        let hw = hw(&mut k);
        for completions in [1u8, 3, 8] {
            hw.env.ats.answer = Answer::After { min: 400, max: 600 };
            hw.env.ats.completions = completions;
            let d = [
                Descriptor::dev_tlb(0x0180, 0x0180, 32, 0x4000, 0),
                Descriptor::pasid_dev_tlb(0x0180, 0x0180, 7, 32, 0x4000, 0),
            ];
            let (landed, accepted) = run_batch(hw, &d, 20_000)?;
            let landed =
                landed.with_context(|| format!("CC {completions}: the wait never completed"))?;
            let n = 2 * usize::from(completions);
            ensure!(
                accepted.len() == n,
                "CC {completions}: {} completions accepted by the time the wait completed, \
                 expected {n}",
                accepted.len()
            );
            let last = accepted.iter().max().copied().unwrap_or(0);
            ensure!(
                landed > last,
                "CC {completions}: status written at cycle {landed}, last completion at {last}"
            );
        }
        Ok(())
    })
}

#[test]
fn thirty_two_invalidations_may_be_outstanding() -> Result<(), TestFailure> {
    run_test("devtlb_32_outstanding", 83, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        let hw = hw(&mut k);
        hw.env.ats.answer = Answer::After {
            min: 1500,
            max: 1500,
        };
        let descs: Vec<Descriptor> = (0..40u64)
            .map(|i| Descriptor::dev_tlb(0x0180, 0x0180, 32, i << 12, 0))
            .collect();
        let status = hw.mem().alloc_page()?;
        let mut q: Vec<[u64; 4]> = descs.iter().map(Descriptor::encode).collect();
        q.push(wait_desc(status, 0x77));
        hw.queue(&q)?;
        let mut most = 0usize;
        let start = hw.env.dut.cycle();
        while status_word(hw, status)? != 0x77 {
            ensure!(
                hw.env.dut.cycle() - start < 20_000,
                "the wait never completed"
            );
            hw.env.tick();
            let out = hw.env.ats.requests.len() - hw.env.ats.completions_sent as usize;
            most = most.max(out);
            // The outstanding ones carry distinct ITags.
            let first_open = hw.env.ats.completions_sent as usize;
            let mut open: Vec<u8> = hw.env.ats.requests[first_open..]
                .iter()
                .map(|m| m.itag())
                .collect();
            open.sort_unstable();
            open.dedup();
            ensure!(open.len() == out, "an ITag is used twice while outstanding");
        }
        ensure!(
            most == 32,
            "at most {most} Invalidate Requests were outstanding, not 32"
        );
        ensure!(hw.env.ats.requests.len() == 40);
        let addrs: Vec<u64> = hw.env.ats.requests.iter().map(|m| m.addr()).collect();
        let want: Vec<u64> = descs
            .iter()
            .filter_map(|d| d.dev_tlb_range().map(|r| r.0))
            .collect();
        ensure!(addrs == want, "requests out of queue order");
        Ok(())
    })
}

#[test]
fn a_device_that_never_answers_sets_ite_and_the_queue_goes_on() -> Result<(), TestFailure> {
    run_test("devtlb_timeout", 84, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        let hw = hw(&mut k);
        hw.env.ats.answer = Answer::Never;
        let d = Descriptor::pasid_dev_tlb(0x0180, 0x0180, 3, 32, 0, 0);
        // Not before the time-out: the request left after it was queued.
        let (landed, _) = run_batch(hw, &[d], ATS_INV_TIMEOUT)?;
        ensure!(landed.is_none(), "the wait completed without an answer");
        let fsts = hw.env.read32(regs::FSTS)?;
        ensure!(
            fsts & regs::FSTS_ITE == 0,
            "FSTS.ITE set less than {ATS_INV_TIMEOUT} cycles after the request: {fsts:#x}"
        );
        // At most 1.5 times the time-out after it.
        hw.env.idle((ATS_INV_TIMEOUT / 2) as u32);
        let fsts = hw.env.read32(regs::FSTS)?;
        ensure!(fsts & regs::FSTS_ITE != 0, "FSTS.ITE not set: {fsts:#x}");
        ensure!(
            fsts & regs::FSTS_IQE == 0,
            "a time-out is not a queue error: {fsts:#x}"
        );
        // A fault event: FECTL.IP while the event is masked (IM is set from reset).
        ensure!(
            hw.env.read32(regs::FECTL)? & (1 << 30) != 0,
            "FECTL.IP not set by ITE"
        );
        // The wait was aborted: IQH is past it, at the tail.
        let (iqh, iqt) = (hw.env.read64(regs::IQH)?, hw.env.read64(regs::IQT)?);
        ensure!(
            iqh == iqt,
            "IQH {iqh:#x} must be past the aborted wait (IQT {iqt:#x})"
        );
        // Nothing is fetched while ITE is set.
        hw.env.ats.answer = Answer::After { min: 1, max: 20 };
        let status = hw.mem().alloc_page()?;
        hw.queue(&[wait_desc(status, 0x99)])?;
        hw.env.idle(300);
        ensure!(
            status_word(hw, status)? != 0x99,
            "the queue ran while FSTS.ITE was set"
        );
        hw.env.write32(regs::FSTS, regs::FSTS_ITE)?;
        hw.env.idle(300);
        ensure!(
            status_word(hw, status)? == 0x99,
            "the queue did not resume after ITE"
        );
        ensure!(
            hw.env.read32(regs::FSTS)? & regs::FSTS_ITE == 0,
            "ITE is RW1C"
        );
        // And device-TLB invalidations work again.
        hw.submit_and_wait(&[d])?;
        Ok(())
    })
}

/// Sends one header-only TLP on rx; returns what left on tx until 300 cycles after.
fn send_rx(hw: &mut RtlHw, hdr: [u32; 4]) -> Result<Vec<[u32; 4]>> {
    let mut tx = Vec::new();
    hw.env.inp.rx_valid = true;
    hw.env.inp.rx_nprefix = 0;
    hw.env.inp.rx_hdr = hdr;
    let mut n = 0;
    loop {
        let out = hw.env.tick();
        if out.tx_valid && hw.env.inp.tx_ready {
            tx.push(out.tx_hdr);
        }
        if out.rx_ready {
            break;
        }
        n += 1;
        ensure!(n < 1000, "rx never took {hdr:x?}");
    }
    hw.env.inp.rx_valid = false;
    // Long enough for a wait it completes to write its status.
    for _ in 0..300 {
        let out = hw.env.tick();
        if out.tx_valid && hw.env.inp.tx_ready {
            tx.push(out.tx_hdr);
        }
    }
    Ok(tx)
}

#[test]
fn completions_free_only_the_itags_their_device_was_sent() -> Result<(), TestFailure> {
    run_test("devtlb_completion_match", 85, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        let hw = hw(&mut k);
        hw.env.ats.answer = Answer::Never;
        let dev = 0x0180;
        let status = hw.mem().alloc_page()?;
        let mut q: Vec<[u64; 4]> = (0..2u64)
            .map(|i| Descriptor::dev_tlb(dev, dev, 32, i << 12, 0).encode())
            .collect();
        q.push(wait_desc(status, 0x31));
        hw.queue(&q)?;
        hw.env.idle(200);
        let itags: u32 = hw.env.ats.requests.iter().map(|m| 1u32 << m.itag()).sum();
        ensure!(itags.count_ones() == 2, "two ITags out: {itags:#x}");
        // From another device, or naming ITags not outstanding: nothing is freed, nothing
        // leaves on tx.
        for hdr in [
            completion_hdr(0x0100, 1, itags),
            completion_hdr(dev, 1, !itags),
        ] {
            let tx = send_rx(hw, hdr)?;
            ensure!(
                tx.is_empty(),
                "a completion to the unit left on tx: {tx:x?}"
            );
            ensure!(
                status_word(hw, status)? != 0x31,
                "{hdr:x?} completed the wait"
            );
        }
        // CC = 2: each ITag needs two completions; one vector names both.
        send_rx(hw, completion_hdr(dev, 2, itags))?;
        ensure!(
            status_word(hw, status)? != 0x31,
            "the wait completed after 1 of 2"
        );
        send_rx(hw, completion_hdr(dev, 2, itags))?;
        ensure!(
            status_word(hw, status)? == 0x31,
            "the wait did not complete after 2 of 2"
        );
        // A completion to another Device ID is not the unit's: it passes through.
        let mut other = completion_hdr(dev, 1, 1);
        other[2] = 0x0100 << 16 | 1;
        let tx = send_rx(hw, other)?;
        ensure!(tx == vec![other], "forwarded {tx:x?}, expected {other:x?}");
        ensure!(hw.env.read32(regs::FSTS)? & regs::FSTS_ITE == 0);
        Ok(())
    })
}

/// A device with an ATS capability (DTE = 1).
const ATS_DEV: Rid = 0x0018;
/// Two pages far enough apart that each unmap's page-selective invalidations cover one.
const PAGES: [u64; 2] = [0x10_0000, 0x40_0000];

/// The device-TLB invalidations among the descriptors of a batch.
fn devtlb_count(descs: &[Descriptor]) -> usize {
    descs
        .iter()
        .filter(|d| matches!(d.type_code(), 3 | 8))
        .count()
}

/// [`ATS_DEV`] with a second-stage DMA domain attached at its RID (and, with `pasid`, at
/// its RID-equivalent PASID), [`PAGES`] mapped, and its ATS cache holding both through the
/// RID (and the PASID), from the unit's Translation Completions.
fn ats_mapped(tb: &mut Env, pasid: bool) -> Result<(RtlKernel, DomainId)> {
    let e = |e| anyhow::anyhow!("{e:?}");
    let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
    k.add_device(DeviceDesc {
        rid: ATS_DEV,
        max_pasids: 1 << 20,
        ats: true,
    })
    .map_err(e)?;
    let d = k
        .domain_alloc(DomainType::Paging(Stage::Second))
        .map_err(e)?;
    k.attach_device(ATS_DEV, d).map_err(e)?;
    let pasid = if pasid {
        Some(k.enable_dma_pasid(ATS_DEV).map_err(e)?)
    } else {
        None
    };
    for (i, &iova) in PAGES.iter().enumerate() {
        map(
            &mut k,
            d,
            iova,
            0x8_0000_0000 + ((i as u64) << 12),
            0x1000,
            true,
            true,
        )?;
        for p in std::iter::once(None).chain(pasid.map(Some)) {
            let mut r = MemRequest::read(ATS_DEV, 0x31, iova, 2);
            r.at = At::TranslationRequest;
            if let Some(p) = p {
                r = r.with_pasid(p, false, false);
            }
            let j = check(&mut k, &r)?;
            let Outcome::Ats(a) = j.walk.outcome else {
                anyhow::bail!(
                    "{r}: expected a Translation Completion, got {}",
                    j.walk.outcome
                );
            };
            let c = a
                .atc_entry(p, iova)
                .context("a completion that grants access")?;
            env(&mut k).ats.cache(ATS_DEV, c);
        }
    }
    let n = env(&mut k).ats.atc.get(&ATS_DEV).map_or(0, |t| t.len());
    let want = PAGES.len() * (1 + usize::from(pasid.is_some()));
    ensure!(n == want, "the device caches {n} entries, not {want}");
    Ok((k, d))
}

/// The device caches no entry the oracle rejects, and none of `iova`'s page.
fn no_stale_entry(k: &RtlKernel, iova: u64) -> Result<()> {
    let atc = k
        .ops()
        .hw()
        .env
        .ats
        .atc
        .get(&ATS_DEV)
        .context("the device's cache")?;
    let stale = stale_device_tlb(k, ATS_DEV, atc);
    ensure!(stale.is_empty(), "stale device-TLB entries: {stale:?}");
    ensure!(
        !atc.entries().any(|e| e.overlaps(iova, iova + 0xFFF)),
        "the device still caches {iova:#x}: {atc:?}"
    );
    Ok(())
}

fn fsts(k: &mut RtlKernel) -> Result<u32> {
    Ok(env(k).read32(regs::FSTS)?)
}

#[test]
fn an_unmap_whose_invalidate_completion_is_lost_is_resubmitted() -> Result<(), TestFailure> {
    run_test("devtlb_lost_completion", 86, |tb| {
        let (mut k, d) = ats_mapped(tb, true)?;
        let log_start = k.ops().log().len();
        let sent_before = hw(&mut k).env.ats.requests.len();
        // The first Invalidate Request of the unmap is applied and never answered.
        hw(&mut k).env.ats.fates = VecDeque::from([Fate::Lost]);
        unmap(&mut k, d, PAGES[0], 0x1000)?;
        ensure!(hw(&mut k).env.ats.lost == 1, "no answer was lost");
        ensure!(
            k.ops().resubmits() == 1 && hw(&mut k).ite_count == 1,
            "{} resubmissions, FSTS.ITE seen {} times; expected 1 and 1",
            k.ops().resubmits(),
            hw(&mut k).ite_count
        );
        let f = fsts(&mut k)?;
        ensure!(
            f & (regs::FSTS_ITE | regs::FSTS_IQE) == 0,
            "FSTS {f:#x} after the unmap"
        );
        // The log: the batch aborted, then the same descriptors again with another status
        // value.
        let log = &k.ops().log()[log_start..];
        ensure!(log.len() == 2, "{} batches logged: {log:#?}", log.len());
        let (a, b) = (&log[0], &log[1]);
        ensure!(a.aborted && !b.aborted, "{log:#?}");
        let n = a.descs.len();
        ensure!(a.descs[..n - 1] == b.descs[..n - 1], "{log:#?}");
        ensure!(
            a.seq != b.seq,
            "the resubmitted wait reuses status value {}",
            a.seq
        );
        // Both submissions went to the device.
        let per_batch = devtlb_count(&a.descs);
        ensure!(per_batch == 2, "the unmap sends types 3 and 8: {log:#?}");
        let sent = hw(&mut k).env.ats.requests.len() - sent_before;
        ensure!(
            sent == 2 * per_batch,
            "{sent} Invalidate Requests for two submissions of {per_batch}"
        );
        no_stale_entry(&k, PAGES[0])?;
        // The queue goes on: the next unmap needs no resubmission.
        unmap(&mut k, d, PAGES[1], 0x1000)?;
        ensure!(k.ops().resubmits() == 1);
        no_stale_entry(&k, PAGES[1])?;
        Ok(())
    })
}

#[test]
fn a_completion_after_the_time_out_is_no_false_alarm() -> Result<(), TestFailure> {
    run_test("devtlb_late_completion", 87, |tb| {
        // Attached at the RID only: each unmap sends one Invalidate Request (type 3).
        let (mut k, d) = ats_mapped(tb, false)?;
        let first = hw(&mut k).env.ats.requests.len();
        hw(&mut k).env.ats.fates = VecDeque::from([Fate::Late]);
        unmap(&mut k, d, PAGES[0], 0x1000)?;
        ensure!(
            k.ops().resubmits() == 1 && hw(&mut k).env.ats.late == 1,
            "{} resubmissions, {} late answers",
            k.ops().resubmits(),
            hw(&mut k).env.ats.late
        );
        no_stale_entry(&k, PAGES[0])?;
        // The late answer is still to come: the unit dropped its ITag at the time-out.
        let h = hw(&mut k);
        ensure!(
            h.env.ats.pending() == 1,
            "{} answers pending",
            h.env.ats.pending()
        );
        let due = h.env.ats.next_due().context("the late answer")?;
        let itag = h.env.ats.requests[first].itag();
        // It comes while the next unmap's request to the same device is out under the same
        // (lowest free) ITag, and frees it before the device's own answer: the wait
        // completes early. The device applied the request when it took it, so nothing it
        // caches is stale, and nothing else happens.
        while due > h.env.dut.cycle() + 1500 {
            h.env.tick();
        }
        h.env.ats.answer = Answer::After {
            min: ATS_INV_TIMEOUT / 2,
            max: ATS_INV_TIMEOUT / 2,
        };
        let second = h.env.ats.requests.len();
        unmap(&mut k, d, PAGES[1], 0x1000)?;
        let h = hw(&mut k);
        let got = &h.env.ats.requests[second..];
        ensure!(
            got.len() == 1,
            "the second unmap sent {} requests",
            got.len()
        );
        let reused = got[0];
        ensure!(
            reused.itag() == itag && reused.cycle < due,
            "{reused} is not under ITag {itag} or left after the late answer was due ({due})"
        );
        ensure!(
            h.env.ats.pending() == 1 && h.env.dut.cycle() < reused.cycle + ATS_INV_TIMEOUT / 2,
            "the wait did not complete on the late answer ({} answers pending at cycle {})",
            h.env.ats.pending(),
            h.env.dut.cycle()
        );
        no_stale_entry(&k, PAGES[1])?;
        // The device's own answer comes for an ITag that is free: nothing happens.
        let h = hw(&mut k);
        while h.env.ats.pending() > 0 {
            h.env.tick();
        }
        h.env.idle(100);
        ensure!(
            k.ops().resubmits() == 1 && hw(&mut k).ite_count == 1,
            "the late answer caused another time-out or resubmission"
        );
        let f = fsts(&mut k)?;
        ensure!(f & (regs::FSTS_ITE | regs::FSTS_IQE) == 0, "FSTS {f:#x}");
        // And the queue goes on.
        let h = hw(&mut k);
        h.env.ats.answer = Answer::After { min: 1, max: 40 };
        h.submit_and_wait(&[Descriptor::dev_tlb(ATS_DEV, ATS_DEV, 32, 0, 52)])?;
        no_stale_entry(&k, PAGES[1])?;
        Ok(())
    })
}

#[test]
fn a_time_out_before_the_wait_is_fetched_leaves_the_wait_to_complete() -> Result<(), TestFailure> {
    run_test("devtlb_timeout_before_wait", 88, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        let hw = hw(&mut k);
        // 32 requests never answered hold every ITag; the 33rd waits in the queue, before
        // the wait, until the time-out drops them.
        hw.env.ats.fates = VecDeque::from(vec![Fate::Lost; 32]);
        let descs: Vec<Descriptor> = (0..33u64)
            .map(|i| Descriptor::dev_tlb(0x0180, 0x0180, 32, i << 12, 0))
            .collect();
        // qi_check_fault(): ITE is cleared; the wait was not aborted (IQH had not passed
        // it), so the batch is not resubmitted: the queue goes on with the 33rd request,
        // which is answered, and the wait completes.
        hw.submit_and_wait(&descs)
            .context("the wait after a time-out before it")?;
        ensure!(hw.ite_count == 1, "FSTS.ITE seen {} times", hw.ite_count);
        ensure!(
            hw.env.ats.requests.len() == 33 && hw.env.ats.lost == 32,
            "{} requests sent, {} lost",
            hw.env.ats.requests.len(),
            hw.env.ats.lost
        );
        let f = hw.env.read32(regs::FSTS)?;
        ensure!(f & (regs::FSTS_ITE | regs::FSTS_IQE) == 0, "FSTS {f:#x}");
        Ok(())
    })
}
