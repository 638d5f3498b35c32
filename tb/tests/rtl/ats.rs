//! ATS through the RTL (docs/contract.md section 6.2): Translation Requests answered with
//! Translation Completions, their faults, and translated requests, judged by the golden
//! walker on the memory the DUT walks (the judge compares the completion's header and
//! its 8-byte entry bit for bit, and the fault records). Each test also checks the entry's
//! fields against what the mapping it set up says, so a model and an RTL that agreed on a
//! wrong field would still fail.

use anyhow::{bail, ensure, Context, Result};
use iommu_model::driver::DriverQuirks;
use iommu_model::golden::{AtsEntry, Outcome};
use iommu_model::kernel::{DeviceDesc, DomainId, DomainType, Rid, Stage};
use iommu_model::locate::Locator;
use iommu_model::mem::PhysMem;
use iommu_model::tables::{fs, pasid_entry as pe};
use iommu_model::FaultReason;
use iommu_tb::check::Judged;
use iommu_tb::env::{Egress, MemTiming};
use iommu_tb::hw::system::*;
use iommu_tb::tlp::{self, At, CplStatus, MemRequest};
use iommu_tb::{run_test, Env, TestFailure};

/// A device with an ATS capability: the driver sets DTE in its context entry.
const ATS_DEV: Rid = 0x0018;

/// The system of [`system_on`] with [`ATS_DEV`] added beside `DEV` (which has no ATS).
fn ats_system(env: &mut Env) -> Result<RtlKernel> {
    let mut k = system_on(env, MemTiming::default(), DriverQuirks::default())?;
    k.add_device(DeviceDesc {
        rid: ATS_DEV,
        max_pasids: 1 << 20,
        ats: true,
    })
    .map_err(|e| anyhow::anyhow!("add_device: {e:?}"))?;
    Ok(k)
}

/// A domain of `kind` attached to `dev`'s RID and at its RID-equivalent PASID.
fn attach_with_pasid(k: &mut RtlKernel, dev: Rid, kind: DomainType) -> Result<(DomainId, u32)> {
    let e = |e| anyhow::anyhow!("{e:?}");
    let d = k.domain_alloc(kind).map_err(e)?;
    k.attach_device(dev, d).map_err(e)?;
    let pasid = k
        .enable_dma_pasid(dev)
        .map_err(e)
        .context("enable_dma_pasid")?;
    Ok((d, pasid))
}

/// A Translation Request (MRd, AT = 01b, Length 2) for `addr`.
fn treq(rid: Rid, addr: u64, pasid: Option<(u32, bool, bool)>) -> MemRequest {
    let mut r = MemRequest::read(rid, 0x31, addr & !0xFFF, 2);
    r.at = At::TranslationRequest;
    match pasid {
        Some((p, pmr, er)) => r.with_pasid(p, pmr, er),
        None => r,
    }
}

/// A translated request (AT = 10b).
fn translated(rid: Rid, addr: u64, write: bool) -> MemRequest {
    let mut r = if write {
        MemRequest::write(rid, 0, addr, 1)
    } else {
        MemRequest::read(rid, 0x32, addr, 1)
    };
    r.at = At::Translated;
    r
}

/// The entry the DUT returned (already judged equal to the golden walker's).
fn entry(j: &Judged) -> Result<AtsEntry> {
    let Outcome::Ats(golden) = j.walk.outcome else {
        bail!(
            "expected a Translation Completion, the golden walker says {}",
            j.walk.outcome
        );
    };
    let dut = match j.egress.as_slice() {
        [Egress::CplD(h, d)] => {
            ensure!(
                h[0] >> 29 == 0b010 && h[0] & 0x3FF == 2 && h[1] & 0xFFF == 8,
                "not a CplD of Length 2 and Byte Count 8: {h:08x?}"
            );
            AtsEntry::decode(*d)?
        }
        e => bail!("expected one completion with data, the DUT sent {e:?}"),
    };
    ensure!(
        dut == golden,
        "DUT entry {dut} differs from the golden {golden}"
    );
    Ok(dut)
}

/// The status of the one completion without data the DUT returned.
fn cpl_status(j: &Judged) -> Result<CplStatus> {
    match j.egress.as_slice() {
        [Egress::Cpl(h)] => Ok(CplStatus::from_bits(((h[1] >> 13) & 7) as u8)),
        e => bail!("expected one completion without data, the DUT sent {e:?}"),
    }
}

fn fault(j: &Judged) -> Result<FaultReason> {
    match j.walk.outcome {
        Outcome::Fault(r) => Ok(r),
        o => bail!("expected a fault, the golden walker says {o}"),
    }
}

/// Memory reads since the last call.
fn reads(k: &mut RtlKernel) -> usize {
    take_reads(k)
}

#[test]
fn completion_fields_for_each_stage_and_page_size() -> Result<(), TestFailure> {
    for stage in [Stage::First, Stage::Second] {
        run_test(&format!("ats_fields_{stage:?}"), 61, |tb| {
            let mut k = ats_system(tb)?;
            let (d, pasid) = attach_with_pasid(&mut k, ATS_DEV, DomainType::Paging(stage))?;
            // (iova, pa, size, writable)
            let maps = [
                (0x10_0000u64, 0x8_0000_0000u64, 0x1000u64, true),
                (0x10_1000, 0x8_0000_5000, 0x1000, false),
                (0x40_0000, 0x8_4020_0000 & !0x1F_FFFF, 1 << 21, true),
                (0x6000_0000 & !0x3FFF_FFFF, 0x40_0000_0000, 1 << 30, false),
            ];
            for (iova, pa, size, w) in maps {
                map(&mut k, d, iova, pa, size, true, w)?;
            }
            for (iova, pa, size, w) in maps {
                // Inside the page, away from its start: the entry names the whole page.
                let at = iova + size / 2;
                let via_rid = entry(&check(&mut k, &treq(ATS_DEV, at, None))?)?;
                let via_pasid = entry(&check(
                    &mut k,
                    &treq(ATS_DEV, at, Some((pasid, false, false))),
                )?)?;
                ensure!(
                    via_rid == via_pasid,
                    "RID gives {via_rid}, its equivalent PASID {pasid} gives {via_pasid}"
                );
                let want = AtsEntry {
                    addr: pa,
                    size,
                    r: true,
                    w,
                    ..AtsEntry::default()
                };
                ensure!(
                    via_rid == want,
                    "{iova:#x}: got {via_rid}, the mapping says {want}"
                );
                // Again: now from the IOTLB, without a walk, and the same answer.
                reads(&mut k);
                let hit = entry(&check(&mut k, &treq(ATS_DEV, at, None))?)?;
                ensure!(reads(&mut k) == 0, "{iova:#x}: the second request walked");
                ensure!(
                    hit == via_rid,
                    "{iova:#x}: a hit gives {hit}, the walk gave {via_rid}"
                );
            }
            Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn pass_through_returns_the_request_page() -> Result<(), TestFailure> {
    run_test("ats_pass_through", 62, |tb| {
        let mut k = ats_system(tb)?;
        let (_, pasid) = attach_with_pasid(&mut k, ATS_DEV, DomainType::Identity)?;
        for addr in [0x1234_5678u64, 0x7_89ab_c000] {
            for p in [None, Some((pasid, false, false))] {
                let e = entry(&check(&mut k, &treq(ATS_DEV, addr, p))?)?;
                let want = AtsEntry {
                    addr: addr & !0xFFF,
                    size: 0x1000,
                    r: true,
                    w: true,
                    ..AtsEntry::default()
                };
                ensure!(e == want, "{addr:#x} {p:?}: got {e}, want {want} (U = 0)");
            }
        }
        Ok(())
    })?;
    Ok(())
}

#[test]
fn privileged_and_execute_requests() -> Result<(), TestFailure> {
    run_test("ats_priv_exe", 63, |tb| {
        let mut k = ats_system(tb)?;
        let (d, pasid) = attach_with_pasid(&mut k, ATS_DEV, DomainType::Paging(Stage::Second))?;
        map(&mut k, d, 0x20_0000, 0x9_0000_0000, 0x1000, true, true)?;
        // Linux leaves SRE and ERE 0: PMR and ER fault at the PASID entry, answered UR and
        // recorded.
        for (pmr, er, reason) in [
            (true, false, FaultReason::PmrWithoutSre),
            (false, true, FaultReason::ErWithoutEre),
        ] {
            let j = check(&mut k, &treq(ATS_DEV, 0x20_0000, Some((pasid, pmr, er))))?;
            ensure!(
                fault(&j)? == reason && j.walk.record,
                "{pmr} {er}: {}",
                j.walk.outcome
            );
            ensure!(cpl_status(&j)? == CplStatus::Ur, "{pmr} {er}: not UR");
        }
        // With SRE and ERE set in the PASID entry, Priv follows PMR and Exe follows ER.
        {
            let hw = k.ops_mut().hw_mut();
            let rtaddr = hw.env.read64(iommu_model::regs::RTADDR)?;
            let at = Locator::new(&hw.mem_agent().mem, rtaddr).pasid_entry(ATS_DEV, pasid)? + 16;
            let mem = &mut hw.mem_agent().mem;
            let q2 = mem.read64(at)?;
            mem.write64(at, q2 | pe::QW2_SRE | pe::QW2_ERE)?;
        }
        flush_all(&mut k)?;
        for (pmr, er) in [(true, false), (false, true), (true, true), (false, false)] {
            let e = entry(&check(
                &mut k,
                &treq(ATS_DEV, 0x20_0000, Some((pasid, pmr, er))),
            )?)?;
            ensure!(
                e.privileged == pmr && e.exe == er && e.r && e.w,
                "PMR {pmr} ER {er}: got {e}"
            );
        }
        // Without a prefix neither is reported.
        let e = entry(&check(&mut k, &treq(ATS_DEV, 0x20_0000, None))?)?;
        ensure!(!e.privileged && !e.exe, "no prefix: got {e}");
        Ok(())
    })?;
    Ok(())
}

#[test]
fn faults_are_answered_or_recorded_per_the_table() -> Result<(), TestFailure> {
    for stage in [Stage::First, Stage::Second] {
        run_test(&format!("ats_faults_{stage:?}"), 64, |tb| {
            let mut k = ats_system(tb)?;
            let (d, pasid) = attach_with_pasid(&mut k, ATS_DEV, DomainType::Paging(stage))?;
            map(&mut k, d, 0x30_0000, 0x9_0000_0000, 0x1000, true, true)?;
            // A page that is not mapped: R = W = 0, nothing recorded (the judge checks that
            // no record appears).
            for p in [None, Some((pasid, false, false))] {
                let j = check(&mut k, &treq(ATS_DEV, 0x30_1000, p))?;
                ensure!(
                    entry(&j)? == AtsEntry::denied() && !j.walk.record,
                    "unmapped: {}",
                    j.walk.outcome
                );
            }
            // A PASID nobody attached: the PASID entry is missing, UR, recorded.
            let j = check(
                &mut k,
                &treq(ATS_DEV, 0x30_0000, Some((pasid + 7, false, false))),
            )?;
            ensure!(
                j.walk.record,
                "unattached PASID: {} not recorded",
                j.walk.outcome
            );
            ensure!(
                matches!(
                    fault(&j)?,
                    FaultReason::PasidEntryNotPresent | FaultReason::PasidDirNotPresent
                ),
                "unattached PASID: {}",
                j.walk.outcome
            );
            ensure!(cpl_status(&j)? == CplStatus::Ur, "unattached PASID: not UR");
            // A memory error reading the leaf's table: CA, recorded.
            let leaf_table = {
                let hw = k.ops_mut().hw_mut();
                let rtaddr = hw.env.read64(iommu_model::regs::RTADDR)?;
                let loc = Locator::new(&hw.mem_agent().mem, rtaddr);
                loc.pte(ATS_DEV, loc.rid_pasid(ATS_DEV)?, 0x30_0000, 1)? & !0xFFF
            };
            flush_iotlb(&mut k)?;
            k.ops_mut()
                .hw_mut()
                .mem_agent()
                .mem
                .add_error_range(leaf_table, leaf_table + 0x1000);
            let j = check(&mut k, &treq(ATS_DEV, 0x30_0000, None))?;
            k.ops_mut().hw_mut().mem_agent().mem.clear_error_ranges();
            ensure!(
                matches!(fault(&j)?, FaultReason::FsAccess | FaultReason::SsAccess)
                    && j.walk.record,
                "memory error: {}",
                j.walk.outcome
            );
            ensure!(cpl_status(&j)? == CplStatus::Ca, "memory error: not CA");
            // And the page answers again once memory does.
            entry(&check(&mut k, &treq(ATS_DEV, 0x30_0000, None))?)?;
            Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn dte_gates_translation_requests_and_translated_requests() -> Result<(), TestFailure> {
    run_test("ats_dte", 65, |tb| {
        let mut k = ats_system(tb)?;
        for dev in [DEV, ATS_DEV] {
            let (d, _) = attach_with_pasid(&mut k, dev, DomainType::Paging(Stage::First))?;
            map(&mut k, d, 0x50_0000, 0xa_0000_0000, 0x1000, true, true)?;
        }
        // DEV has no ATS: DTE = 0. A Translation Request gets UR and records 0x44.
        let j = check(&mut k, &treq(DEV, 0x50_0000, None))?;
        ensure!(
            fault(&j)? == FaultReason::DteDisabled && j.walk.record,
            "{}",
            j.walk.outcome
        );
        ensure!(cpl_status(&j)? == CplStatus::Ur, "DTE = 0: not UR");
        // Translated requests: blocked with 0x44 (a read gets UR, a write is dropped).
        let j = check(&mut k, &translated(DEV, 0xa_0000_0040, false))?;
        ensure!(
            fault(&j)? == FaultReason::DteDisabled && j.walk.record,
            "{}",
            j.walk.outcome
        );
        ensure!(
            cpl_status(&j)? == CplStatus::Ur,
            "translated read, DTE = 0: not UR"
        );
        let j = check(&mut k, &translated(DEV, 0xa_0000_0040, true))?;
        ensure!(fault(&j)? == FaultReason::DteDisabled, "{}", j.walk.outcome);
        ensure!(
            j.egress.is_empty(),
            "translated write, DTE = 0: {:?}",
            j.egress
        );
        // ATS_DEV has DTE = 1: translated requests leave unchanged, whatever the address
        // (no translation, no check against its mappings).
        for (addr, write) in [
            (0xa_0000_0040u64, false),
            (0xb_0000_0080, true),
            (0x100, false),
        ] {
            let r = translated(ATS_DEV, addr, write);
            let j = check(&mut k, &r)?;
            let want = tlp::encode(&r)?.header;
            ensure!(
                j.walk.outcome == Outcome::Untranslated && j.egress == [Egress::Tx(want)],
                "translated {addr:#x}: {} {:?}",
                j.walk.outcome,
                j.egress
            );
        }
        // With a PASID prefix too: the header leaves unchanged, the prefix consumed.
        let r = translated(ATS_DEV, 0xa_0000_0040, false).with_pasid(5, false, false);
        let j = check(&mut k, &r)?;
        ensure!(
            j.egress == [Egress::Tx(tlp::encode(&r)?.header)],
            "{:?}",
            j.egress
        );
        // A Translation Request of the ATS device is answered.
        entry(&check(&mut k, &treq(ATS_DEV, 0x50_0000, None))?)?;
        Ok(())
    })?;
    Ok(())
}

#[test]
fn a_translation_request_write_is_malformed() -> Result<(), TestFailure> {
    run_test("ats_write_malformed", 66, |tb| {
        let mut k = ats_system(tb)?;
        attach_with_pasid(&mut k, ATS_DEV, DomainType::Paging(Stage::Second))?;
        let mut r = MemRequest::write(ATS_DEV, 0, 0x1000, 2);
        r.at = At::TranslationRequest;
        let j = check(&mut k, &r)?;
        ensure!(
            j.walk.outcome == Outcome::Malformed && j.egress.is_empty(),
            "{} {:?}",
            j.walk.outcome,
            j.egress
        );
        Ok(())
    })?;
    Ok(())
}

#[test]
fn first_stage_global_and_supervisor_leaves() -> Result<(), TestFailure> {
    run_test("ats_fs_leaf_bits", 67, |tb| {
        let mut k = ats_system(tb)?;
        let (d, pasid) = attach_with_pasid(&mut k, ATS_DEV, DomainType::Paging(Stage::First))?;
        map(&mut k, d, 0x60_0000, 0xc_0000_0000, 0x2000, true, true)?;
        let leaf = |k: &mut RtlKernel, va: u64| -> Result<u64> {
            let hw = k.ops_mut().hw_mut();
            let rtaddr = hw.env.read64(iommu_model::regs::RTADDR)?;
            let loc = Locator::new(&hw.mem_agent().mem, rtaddr);
            Ok(loc.pte(ATS_DEV, loc.rid_pasid(ATS_DEV)?, va, 1)?)
        };
        let poke = |k: &mut RtlKernel, at: u64, set: u64, clear: u64| -> Result<()> {
            let mem = &mut k.ops_mut().hw_mut().mem_agent().mem;
            let e = mem.read64(at)?;
            mem.write64(at, (e | set) & !clear)?;
            Ok(())
        };
        // G set on the first page's leaf: Global reported through the PASID, from a walk
        // and from a hit; never through the RID (PCIe: only for a request with a PASID).
        let g = leaf(&mut k, 0x60_0000)?;
        poke(&mut k, g, fs::G, 0)?;
        flush_iotlb(&mut k)?;
        for p in [None, Some((pasid, false, false))] {
            for _ in 0..2 {
                let e = entry(&check(&mut k, &treq(ATS_DEV, 0x60_0000, p))?)?;
                ensure!(
                    e.global == p.is_some() && e.r && e.w,
                    "G leaf {p:?}: got {e}"
                );
            }
        }
        // U/S clear on the second page's leaf: a user Translation Request gets R = W = 0,
        // not recorded; an untranslated read of it faults 0x81, recorded.
        let us = leaf(&mut k, 0x60_1000)?;
        poke(&mut k, us, 0, fs::US)?;
        flush_iotlb(&mut k)?;
        let j = check(&mut k, &treq(ATS_DEV, 0x60_1000, None))?;
        ensure!(
            entry(&j)? == AtsEntry::denied() && !j.walk.record,
            "supervisor page: {}",
            j.walk.outcome
        );
        let j = check(&mut k, &MemRequest::read(ATS_DEV, 0x33, 0x60_1000, 2))?;
        ensure!(
            fault(&j)? == FaultReason::UserToSupervisorPage && j.walk.record,
            "{}",
            j.walk.outcome
        );
        // The first page still answers with Global through the PASID.
        let e = entry(&check(
            &mut k,
            &treq(ATS_DEV, 0x60_0000, Some((pasid, false, false))),
        )?)?;
        ensure!(e.global, "got {e}");
        Ok(())
    })?;
    Ok(())
}
