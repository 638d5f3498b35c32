//! Every scalable-mode fault reason of docs/contract.md section 2, produced by the DUT on tables the
//! driver model wrote and then damaged on purpose (or by requests that cannot translate),
//! each judged by the golden walker on the same memory: the walker must name the intended
//! reason, and the judge compares the DUT's egress (UR completion for reads, nothing for
//! writes) and fault record with it field by field. FPD on the path blocks without
//! recording: context FPD from 0x45 on, PASID-directory FPD from 0x58 on, PASID-entry FPD
//! from 0x5B on (and the page walk).

use std::collections::BTreeSet;

use anyhow::{anyhow, bail, ensure, Context, Result};
use iommu_model::driver::DriverQuirks;
use iommu_model::golden::{HwState, Outcome};
use iommu_model::kernel::{rid, DeviceDesc, DomainId, DomainType, MmProt, Rid, Stage};
use iommu_model::locate::Locator;
use iommu_model::mem::{Mem, PhysMem};
use iommu_model::regs;
use iommu_model::tables::{self, context as ce, fs, pasid_dir as pde, pasid_entry as pe, ss};
use iommu_model::FaultReason::{self, *};
use iommu_tb::check::{judge, Judged};
use iommu_tb::dut::waves::Waves;
use iommu_tb::env::Egress;
use iommu_tb::env::MemTiming;
use iommu_tb::hw::system::*;
use iommu_tb::tlp::{At, MemRequest};
use iommu_tb::{run_test, Env, TestFailure};

mod bench;
use bench::*;

/// 0x30, 0x38, 0x39, 0x3A.
fn root_entry(seed: u64, t: MemTiming, tally: &mut Tally) -> Result<()> {
    let (mut b, _, pasid) = Bench::paging(&tally.waves, seed, t, Stage::Second)?;
    for v in vias(pasid) {
        b.ok(v, IOVA)?;
    }
    // Root entries that were never written: a bus without one, and the upper half of bus 0
    // (devfn 0x80-0xFF) whose context table was never allocated.
    for r in [rid(5, 0, 0), rid(0, 0x10, 0), rid(0xFF, 0x1F, 7)] {
        b.fault(Via::rid(r), IOVA, RootNotPresent)?;
        b.fault(Via::pasid(r, pasid), IOVA, RootNotPresent)?;
    }
    // LP cleared on DEV's bus.
    let re = b.root_entry(DEV);
    let old = b.patch(re, 0, tables::root::PRESENT)?;
    for v in vias(pasid) {
        b.fault(v, IOVA, RootNotPresent)?;
    }
    b.restore(re, old)?;
    // Reserved bits: 11:1 and the pointer bits above the host address width.
    for bit in [1, 5, 11, 48, 51, 52, 63] {
        let old = b.patch(re, 1 << bit, 0)?;
        for v in vias(pasid) {
            b.fault(v, IOVA, RootReserved)?;
        }
        b.restore(re, old)?;
    }
    // A present upper half with a reserved bit faults the upper functions only.
    let upper = b.root_entry(rid(0, 0x10, 0));
    let lower_table = b.rd(re)? & tables::ADDR_MASK;
    let old = b.patch(upper, lower_table | tables::root::PRESENT | 1 << 3, 0)?;
    b.fault(Via::rid(rid(0, 0x10, 0)), IOVA, RootReserved)?;
    b.fault(Via::pasid(rid(0, 0x1F, 7), pasid), IOVA, RootReserved)?;
    for v in vias(pasid) {
        b.ok(v, IOVA)?;
    }
    b.restore(upper, old)?;
    // Read errors on the root entry, whole or on the half the requester uses.
    b.poison(re, 16)?;
    for v in vias(pasid) {
        b.fault(v, IOVA, RootAccess)?;
    }
    b.fault(Via::rid(rid(5, 0, 0)), IOVA, RootNotPresent)?;
    b.heal()?;
    b.poison(re + 8, 8)?;
    b.fault(Via::rid(rid(0, 0x10, 0)), IOVA, RootAccess)?;
    b.ok(Via::pasid(DEV, pasid), IOVA)?;
    b.heal()?;
    // RTADDR.TTM other than 01b (scalable): every request faults before any walk.
    let good = b.k.ops().rtaddr();
    let root = b.k.ops().root_table();
    for ttm in [0b00u64, 0b10, 0b11] {
        b.set_rtaddr(root | ttm << regs::RTADDR_TTM_SHIFT)?;
        for v in vias(pasid) {
            b.fault(v, IOVA, InvalidTtm)?;
        }
        b.fault(Via::rid(rid(5, 0, 0)), IOVA, InvalidTtm)?;
        b.fault(Via::pasid(DEV, pasid), 1 << 48, InvalidTtm)?;
    }
    b.set_rtaddr(good)?;
    b.hw = None;
    for v in vias(pasid) {
        b.ok(v, IOVA)?;
    }
    tally.merge(b.tally);
    Ok(())
}

/// 0x40, 0x41, 0x42, 0x44.
fn context_entry(seed: u64, t: MemTiming, tally: &mut Tally) -> Result<()> {
    let (mut b, _, pasid) = Bench::paging(&tally.waves, seed, t, Stage::Second)?;
    // A function whose context entry was never written, in a table that exists.
    for r in [rid(0, 3, 0), rid(0, 0xF, 7)] {
        b.fault(Via::rid(r), IOVA, ContextNotPresent)?;
        b.fault(Via::pasid(r, pasid), IOVA, ContextNotPresent)?;
    }
    let ctx = b.context_entry(DEV)?;
    let old = b.patch(ctx, 0, ce::P)?;
    for v in vias(pasid) {
        b.fault(v, IOVA, ContextNotPresent)?;
    }
    b.restore(ctx, old)?;
    // Reserved bits: QW0 8:5 and 63:48, QW1 63:21, QW2 and QW3 whole.
    let rsvd: [(u64, u32); 15] = [
        (0, 5),
        (0, 6),
        (0, 7),
        (0, 8),
        (0, 48),
        (0, 51),
        (0, 52),
        (0, 63),
        (1, 21),
        (1, 32),
        (1, 63),
        (2, 0),
        (2, 63),
        (3, 0),
        (3, 40),
    ];
    for (qw, bit) in rsvd {
        let a = ctx + 8 * qw;
        let old = b.patch(a, 1 << bit, 0)?;
        for v in vias(pasid) {
            b.fault(v, IOVA, ContextReserved)?;
        }
        b.restore(a, old)?;
    }
    // DTE and PRE are not reserved.
    for bits in [ce::DTE, ce::PRE] {
        let old = b.patch(ctx, bits, 0)?;
        for v in vias(pasid) {
            b.ok(v, IOVA)?;
        }
        b.restore(ctx, old)?;
    }
    // DEV has no ATS, so DTE = 0: translated requests (AT = 10b) are blocked with 0x44,
    // recorded whatever the address (a read gets UR, a write is dropped).
    for v in vias(pasid) {
        b.fault(v.translated(), IOVA, DteDisabled)?;
        b.fault(v.translated(), 0x9_0000_0000, DteDisabled)?;
    }
    // Read errors on the whole entry, and on QW1 or QW3 only.
    for (off, len) in [(0, 32), (8, 8), (24, 8)] {
        b.poison(ctx + off, len)?;
        for v in vias(pasid) {
            b.fault(v, IOVA, ContextAccess)?;
        }
        b.fault(Via::rid(rid(0, 3, 0)), IOVA, ContextNotPresent)?;
        b.heal()?;
    }
    for v in vias(pasid) {
        b.ok(v, IOVA)?;
    }
    tally.merge(b.tally);
    Ok(())
}

/// PASID-entry reserved bits: QW0 11:10, QW1 22:16, QW2 11:8, QW3-QW7 whole.
const PE_RSVD: [(u64, u32); 12] = [
    (0, 10),
    (0, 11),
    (1, 16),
    (1, 22),
    (2, 8),
    (2, 11),
    (3, 0),
    (4, 63),
    (5, 12),
    (6, 1),
    (7, 0),
    (7, 63),
];

/// 0x45, 0x46, 0x50-0x52, 0x58-0x5A, 0x5B, 0x5C, 0x5D on second-stage and first-stage
/// PASID entries.
fn pasid_structures(seed: u64, t: MemTiming, tally: &mut Tally) -> Result<()> {
    let (mut b, d, pasid) = Bench::paging(&tally.waves, seed, t, Stage::Second)?;
    let e = |e| anyhow!("{e:?}");
    for v in vias(pasid) {
        b.ok(v, IOVA)?;
    }

    // 0x45: a function without PASID support, and PASIDE cleared on DEV.
    b.k.add_device(DeviceDesc {
        rid: DEV_NO_PASID,
        max_pasids: 0,
        ats: false,
    })
    .map_err(e)?;
    b.k.attach_device(DEV_NO_PASID, d).map_err(e)?;
    b.ok(Via::rid(DEV_NO_PASID), IOVA)?;
    for p in [0, pasid, 0xF_FFFF] {
        b.fault(Via::pasid(DEV_NO_PASID, p), IOVA, PasidDisabled)?;
    }
    let ctx = b.context_entry(DEV)?;
    let old = b.patch(ctx, 0, ce::PASIDE)?;
    b.ok(Via::rid(DEV), IOVA)?;
    for p in [0, pasid, 0x8_0000] {
        b.fault(Via::pasid(DEV, p), IOVA, PasidDisabled)?;
    }
    b.restore(ctx, old)?;

    // 0x46: a function with a 512-entry directory, and DEV's PDTS shrunk.
    b.k.add_device(DeviceDesc {
        rid: DEV_SMALL_DIR,
        max_pasids: 64,
        ats: false,
    })
    .map_err(e)?;
    b.k.attach_device(DEV_SMALL_DIR, d).map_err(e)?;
    b.ok(Via::rid(DEV_SMALL_DIR), IOVA)?;
    for p in [512 << pde::SHIFT, 0xF_FFFF] {
        b.fault(Via::pasid(DEV_SMALL_DIR, p), IOVA, PasidBeyondDirectory)?;
    }
    b.fault(
        Via::pasid(DEV_SMALL_DIR, (512 << pde::SHIFT) - 1),
        IOVA,
        PasidDirNotPresent,
    )?;
    let old = b.patch(ctx, 0, ce::PDTS_MASK)?;
    b.ok(Via::pasid(DEV, pasid), IOVA)?;
    for p in [128 << pde::SHIFT, 0xF_FFFF] {
        b.fault(Via::pasid(DEV, p), IOVA, PasidBeyondDirectory)?;
    }
    let old1 = b.patch(ctx + 8, 128 << pde::SHIFT, ce::RID_PASID_MASK)?;
    b.fault(Via::rid(DEV), IOVA, PasidBeyondDirectory)?;
    b.restore(ctx + 8, old1)?;
    b.restore(ctx, old)?;

    // 0x51: directory entries never written, and the present bit cleared.
    for p in [1 << pde::SHIFT, 0x1000, 0xF_FFFF] {
        b.fault(Via::pasid(DEV, p), IOVA, PasidDirNotPresent)?;
    }
    let old1 = b.patch(ctx + 8, 1 << pde::SHIFT, ce::RID_PASID_MASK)?;
    b.fault(Via::rid(DEV), IOVA, PasidDirNotPresent)?;
    b.restore(ctx + 8, old1)?;
    for v in vias(pasid) {
        let de = b.pasid_dir_entry(v)?;
        let old = b.patch(de, 0, pde::P)?;
        b.fault(v, IOVA, PasidDirNotPresent)?;
        b.restore(de, old)?;
    }

    // 0x52: directory-entry reserved bits 11:2 and 63:48.
    for v in vias(pasid) {
        let de = b.pasid_dir_entry(v)?;
        for bit in [2, 7, 11, 48, 63] {
            let old = b.patch(de, 1 << bit, 0)?;
            b.fault(v, IOVA, PasidDirReserved)?;
            b.restore(de, old)?;
        }
    }

    // 0x50: read error on the directory entry.
    for v in vias(pasid) {
        let de = b.pasid_dir_entry(v)?;
        b.poison(de, 8)?;
        b.fault(v, IOVA, PasidDirAccess)?;
        b.heal()?;
    }

    // 0x59: a PASID-table entry never written, and the present bit cleared.
    let unused = (pasid & !0x3F) | ((pasid + 1) & 0x3F);
    ensure!(
        unused != pasid && unused != 0,
        "no free PASID beside {pasid}"
    );
    b.fault(Via::pasid(DEV, unused), IOVA, PasidEntryNotPresent)?;
    for v in vias(pasid) {
        let pte = b.pasid_entry(v)?;
        let old = b.patch(pte, 0, pe::QW0_P)?;
        b.fault(v, IOVA, PasidEntryNotPresent)?;
        b.restore(pte, old)?;
    }

    // 0x58: read error on the first or the last quadword of the PASID entry.
    for v in vias(pasid) {
        let pte = b.pasid_entry(v)?;
        for (off, len) in [(0, 64), (0, 8), (56, 8)] {
            b.poison(pte + off, len)?;
            b.fault(v, IOVA, PasidEntryAccess)?;
            b.heal()?;
        }
    }

    // 0x5A: reserved bits, and second-stage pointer bits 63:48.
    for v in vias(pasid) {
        let pte = b.pasid_entry(v)?;
        for (qw, bit) in PE_RSVD.into_iter().chain([(0, 48), (0, 51), (0, 63)]) {
            let a = pte + 8 * qw;
            let old = b.patch(a, 1 << bit, 0)?;
            b.fault(v, IOVA, PasidEntryReserved)?;
            b.restore(a, old)?;
        }
        // Fields VT-d does not reserve are accepted: SSADE, PWSNP/PGSNP/CD/EMTE/EMT/PWT/
        // PCD/PAT, WPE/SMEP/EAFE, and an FSPM the second stage does not use.
        for (qw, bits) in [
            (0, pe::QW0_SSADE),
            (1, 0xFFFF_FFFF_FF80_0000),
            (2, 0xD0 | 0b11 << pe::QW2_FSPM_SHIFT),
        ] {
            let a = pte + 8 * qw;
            let old = b.patch(a, bits, 0)?;
            b.ok(v, IOVA)?;
            b.restore(a, old)?;
        }
    }

    // 0x5B: PGTT outside {001, 010, 100}, and AW other than 4-level for the second stage.
    for v in vias(pasid) {
        let pte = b.pasid_entry(v)?;
        for pgtt in [0b000u64, 0b011, 0b101, 0b110, 0b111] {
            let old = b.patch(pte, pgtt << pe::QW0_PGTT_SHIFT, pe::QW0_PGTT_MASK)?;
            b.fault(v, IOVA, InvalidPgtt)?;
            b.restore(pte, old)?;
        }
        for aw in [0b000u64, 0b001, 0b011, 0b100, 0b111] {
            let old = b.patch(pte, aw << pe::QW0_AW_SHIFT, pe::QW0_AW_MASK)?;
            b.fault(v, IOVA, InvalidPgtt)?;
            b.restore(pte, old)?;
        }
    }

    // 0x5C, 0x5D: Execute and Privileged Mode Requested with ERE = SRE = 0; ER is checked
    // first. Without a prefix the privilege is the context's RID_PRIV.
    let v = Via::pasid(DEV, pasid);
    b.fault(v.er(), IOVA, ErWithoutEre)?;
    b.fault(v.er().pmr(), IOVA, ErWithoutEre)?;
    b.fault(v.pmr(), IOVA, PmrWithoutSre)?;
    b.fault(v.pmr(), 1 << 48, PmrWithoutSre)?;
    let old = b.patch(ctx + 8, ce::RID_PRIV, 0)?;
    b.fault(Via::rid(DEV), IOVA, PmrWithoutSre)?;
    b.ok(v, IOVA)?;
    b.restore(ctx + 8, old)?;
    // With ERE and SRE set the same requests translate.
    let pte = b.pasid_entry(v)?;
    let old = b.patch(pte + 16, pe::QW2_ERE | pe::QW2_SRE, 0)?;
    b.ok(v.er().pmr(), IOVA)?;
    b.restore(pte + 16, old)?;
    tally.merge(b.tally);

    // First-stage PASID entries: FSPM, the first-stage pointer, ER/PMR.
    let (mut b, _, pasid) = Bench::paging(&tally.waves, seed ^ 1, t, Stage::First)?;
    for v in vias(pasid) {
        b.ok(v, IOVA)?;
        let pte = b.pasid_entry(v)?;
        for fspm in [0b01u64, 0b10, 0b11] {
            let old = b.patch(pte + 16, fspm << pe::QW2_FSPM_SHIFT, 0)?;
            b.fault(v, IOVA, InvalidPgtt)?;
            b.restore(pte + 16, old)?;
        }
        // AW is not used by the first stage.
        let old = b.patch(pte, 0, pe::QW0_AW_MASK)?;
        b.ok(v, IOVA)?;
        b.restore(pte, old)?;
        for (qw, bit) in PE_RSVD.into_iter().chain([(2, 48), (2, 52), (2, 63)]) {
            let a = pte + 8 * qw;
            let old = b.patch(a, 1 << bit, 0)?;
            b.fault(v, IOVA, PasidEntryReserved)?;
            b.restore(a, old)?;
        }
    }
    let v = Via::pasid(DEV, pasid);
    b.fault(v.er(), IOVA, ErWithoutEre)?;
    b.fault(v.pmr(), IOVA, PmrWithoutSre)?;
    b.fault(v.pmr(), 0x8000_0000_0000, PmrWithoutSre)?;
    tally.merge(b.tally);
    Ok(())
}

/// 0x70, 0x71, 0x72, 0x80, 0x81, 0x82, 0x85 (first stage), on a DMA domain and an SVA mm.
fn first_stage(seed: u64, t: MemTiming, tally: &mut Tally) -> Result<()> {
    let (mut b, d, pasid) = Bench::paging(&tally.waves, seed, t, Stage::First)?;
    map(&mut b.k, d, IOVA_RO, PA + 0x10_0000, 0x1000, true, false)?;
    map(&mut b.k, d, IOVA_2M, 0x9_0000_0000, 1 << 21, true, true)?;
    map(&mut b.k, d, IOVA_1G, 0x40_0000_0000, 1 << 30, true, true)?;
    for v in vias(pasid) {
        b.ok(v, IOVA)?;
        b.ok(v, IOVA_2M + 0x1_2000)?;
        b.ok(v, IOVA_1G + 0x1234_5000)?;
        b.ok1(v, false, IOVA_RO)?;
    }

    // 0x80: bits 63:47 not all equal.
    for a in [
        0x8000_0000_0000,
        1 << 48,
        0x8000_0000_0000_0000,
        0xFFFF_0000_0000_0000,
        0x7FFF_8000_0010_0000,
    ] {
        for v in vias(pasid) {
            b.fault(v, a, NonCanonical)?;
        }
    }

    // 0x71: unmapped addresses (leaf, level 2 and top level absent; a canonical upper-half
    // address), then a non-leaf present bit cleared.
    for a in [
        IOVA + 0x4000,
        0x20_0000,
        0x7FFF_FFFF_F000,
        0xFFFF_8000_0000_0000,
    ] {
        for v in vias(pasid) {
            b.fault(v, a, FsNotPresent)?;
        }
    }
    for level in [4, 2, 1] {
        let p = b.pte(Via::rid(DEV), IOVA, level)?;
        let old = b.patch(p, 0, fs::P)?;
        for v in vias(pasid) {
            b.fault(v, IOVA, FsNotPresent)?;
        }
        b.restore(p, old)?;
    }

    // 0x70: read errors on the top-level table and on the leaf table.
    for level in [4, 1] {
        let p = b.pte(Via::rid(DEV), IOVA, level)?;
        b.poison(p & !0xFFF, 0x1000)?;
        for v in vias(pasid) {
            b.fault(v, IOVA, FsAccess)?;
        }
        b.heal()?;
    }

    // 0x72: address bits 51:48, PS in the top level, frame bits below a superpage's size
    // (bit 12 of a superpage is PAT and is accepted).
    let leaf = b.pte(Via::rid(DEV), IOVA, 1)?;
    let top = b.pte(Via::rid(DEV), IOVA, 4)?;
    let mid = b.pte(Via::rid(DEV), IOVA, 3)?;
    let big = b.pte(Via::rid(DEV), IOVA_2M, 2)?;
    let huge = b.pte(Via::rid(DEV), IOVA_1G, 3)?;
    ensure!(
        b.rd(big)? & fs::PS != 0,
        "the 2 MiB mapping is not a superpage"
    );
    ensure!(
        b.rd(huge)? & fs::PS != 0,
        "the 1 GiB mapping is not a superpage"
    );
    for (p, bits, a) in [
        (leaf, 1u64 << 48, IOVA),
        (leaf, 1 << 51, IOVA),
        (mid, 1 << 49, IOVA),
        (top, fs::PS, IOVA),
        (huge, 1 << 13, IOVA_1G),
        (huge, 1 << 29, IOVA_1G + 0x2000_0000),
        (big, 1 << 13, IOVA_2M),
        (big, 1 << 20, IOVA_2M + 0x1F_F000),
        (big, 1 << 50, IOVA_2M),
    ] {
        let old = b.patch(p, bits, 0)?;
        for v in vias(pasid) {
            b.fault(v, a, FsReserved)?;
        }
        b.restore(p, old)?;
    }
    for (p, a) in [(big, IOVA_2M + 0x3000), (huge, IOVA_1G + 0x3FFF_F000)] {
        let old = b.patch(p, 1 << 12, 0)?;
        for v in vias(pasid) {
            b.ok(v, a)?;
        }
        b.restore(p, old)?;
    }

    // 0x81: U/S=0 on the leaf or on a non-leaf (U/S is ANDed) for a user request. A
    // supervisor request (PMR with SRE=1) may use the page.
    let l3 = b.pte(Via::rid(DEV), IOVA, 3)?;
    for p in [leaf, l3] {
        let old = b.patch(p, 0, fs::US)?;
        for v in vias(pasid) {
            b.fault(v, IOVA, UserToSupervisorPage)?;
        }
        let pe_addr = b.pasid_entry(Via::pasid(DEV, pasid))?;
        let sre = b.patch(pe_addr + 16, pe::QW2_SRE, 0)?;
        b.ok(Via::pasid(DEV, pasid).pmr(), IOVA)?;
        b.fault(Via::pasid(DEV, pasid), IOVA, UserToSupervisorPage)?;
        b.restore(pe_addr + 16, sre)?;
        b.restore(p, old)?;
    }

    // 0x85: writes without R/W, on the leaf (a read-only mapping) or a non-leaf.
    for v in vias(pasid) {
        b.fault1(v, true, IOVA_RO, WriteDenied, true)?;
    }
    let old = b.patch(l3, 0, fs::RW)?;
    for v in vias(pasid) {
        b.fault1(v, true, IOVA, WriteDenied, true)?;
        b.ok1(v, false, IOVA)?;
    }
    b.restore(l3, old)?;

    // 0x82: Execute Requested (ERE=1) on a page with XD set on the leaf or a non-leaf (XD
    // is ORed); U/S and W are checked first.
    let v = Via::pasid(DEV, pasid);
    let pe_addr = b.pasid_entry(v)?;
    let ere = b.patch(pe_addr + 16, pe::QW2_ERE | pe::QW2_NXE, 0)?;
    b.ok(v.er(), IOVA)?;
    let l2 = b.pte(Via::rid(DEV), IOVA, 2)?;
    for p in [leaf, l2] {
        let old = b.patch(p, fs::XD, 0)?;
        b.fault(v.er(), IOVA, ExecuteXd)?;
        b.ok(v, IOVA)?;
        b.ok(Via::rid(DEV), IOVA)?;
        b.restore(p, old)?;
    }
    let old = b.patch(leaf, fs::XD, fs::RW)?;
    b.fault1(v.er(), true, IOVA, WriteDenied, true)?;
    b.fault1(v.er(), false, IOVA, ExecuteXd, true)?;
    b.restore(leaf, old)?;
    b.restore(pe_addr + 16, ere)?;
    tally.merge(b.tally);

    // SVA: a process page table; kernel-only pages fault 0x81, read-only ones 0x85 on
    // writes, and Execute Requested faults 0x5C (ERE stays 0).
    let mut b = Bench::new(&tally.waves, seed ^ 2, t)?;
    let e = |e| anyhow!("{e:?}");
    let mm = b.k.mm_create().map_err(e)?;
    b.k.mm_map(mm, 0x40_0000, PA, 0x1000, MmProt::USER_RW)
        .map_err(e)?;
    b.k.mm_map(mm, 0x40_1000, PA + 0x1000, 0x1000, MmProt::USER_RO)
        .map_err(e)?;
    let kernel = MmProt {
        write: true,
        exec: false,
        user: false,
    };
    b.k.mm_map(mm, 0x40_2000, PA + 0x2000, 0x1000, kernel)
        .map_err(e)?;
    let sva = b.k.sva_bind(DEV, mm).map_err(e)?;
    let v = Via::pasid(DEV, sva);
    b.ok(v, 0x40_0000)?;
    b.fault(v, 0x40_2000, UserToSupervisorPage)?;
    b.ok1(v, false, 0x40_1000)?;
    b.fault1(v, true, 0x40_1000, WriteDenied, true)?;
    b.fault(v.er(), 0x40_0000, ErWithoutEre)?;
    b.fault(v, 0x40_3000, FsNotPresent)?;
    b.fault(v, 0x8000_0000_0000, NonCanonical)?;
    tally.merge(b.tally);
    Ok(())
}

/// 0x78, 0x79, 0x7A, 0x84.
fn second_stage(seed: u64, t: MemTiming, tally: &mut Tally) -> Result<()> {
    let (mut b, d, pasid) = Bench::paging(&tally.waves, seed, t, Stage::Second)?;
    map(&mut b.k, d, IOVA_2M, 0x9_0000_0000, 1 << 21, true, true)?;
    map(&mut b.k, d, IOVA_1G, 0x40_0000_0000, 1 << 30, true, true)?;
    for v in vias(pasid) {
        b.ok(v, IOVA)?;
        b.ok(v, IOVA_2M + 0x5000)?;
        b.ok(v, IOVA_1G + 0x2345_6000)?;
    }

    // 0x84: address bits 63:48 set.
    for a in [1 << 48, 0xFFFF_FFFF_FFFF_F000, 0x8000_0000_0010_0000] {
        for v in vias(pasid) {
            b.fault(v, a, SsBeyondHaw)?;
        }
    }

    // 0x79: unmapped addresses (the highest page below 2^48 included), then R=W=0 on a
    // non-leaf (X alone does not make an entry present) and on the leaf.
    for a in [IOVA + 0x4000, 0x20_0000, (1 << 48) - 0x1000] {
        for v in vias(pasid) {
            b.fault(v, a, SsNotPresent)?;
        }
    }
    for level in [4, 3, 1] {
        let p = b.pte(Via::rid(DEV), IOVA, level)?;
        let old = b.patch(p, ss::X, ss::R | ss::W)?;
        for v in vias(pasid) {
            b.fault(v, IOVA, SsNotPresent)?;
        }
        b.restore(p, old)?;
    }

    // 0x78: read errors on the top-level table and on the leaf table.
    for level in [4, 1] {
        let p = b.pte(Via::rid(DEV), IOVA, level)?;
        b.poison(p & !0xFFF, 0x1000)?;
        for v in vias(pasid) {
            b.fault(v, IOVA, SsAccess)?;
        }
        b.heal()?;
    }

    // 0x7A: address bits 51:48, PS in the top level, frame bits below a superpage's size.
    let leaf = b.pte(Via::rid(DEV), IOVA, 1)?;
    let top = b.pte(Via::rid(DEV), IOVA, 4)?;
    let big = b.pte(Via::rid(DEV), IOVA_2M, 2)?;
    let huge = b.pte(Via::rid(DEV), IOVA_1G, 3)?;
    ensure!(
        b.rd(big)? & ss::PS != 0,
        "the 2 MiB mapping is not a superpage"
    );
    ensure!(
        b.rd(huge)? & ss::PS != 0,
        "the 1 GiB mapping is not a superpage"
    );
    for (p, bits, a) in [
        (leaf, 1u64 << 48, IOVA),
        (leaf, 1 << 51, IOVA),
        (top, ss::PS, IOVA),
        (big, 1 << 12, IOVA_2M),
        (big, 1 << 20, IOVA_2M),
        (huge, 1 << 21, IOVA_1G + 0x3000_0000),
        (huge, 1 << 29, IOVA_1G),
        (huge, 1 << 49, IOVA_1G),
    ] {
        let old = b.patch(p, bits, 0)?;
        for v in vias(pasid) {
            b.fault(v, a, SsReserved)?;
        }
        b.restore(p, old)?;
    }
    for v in vias(pasid) {
        b.ok(v, IOVA)?;
    }
    tally.merge(b.tally);
    Ok(())
}

/// 0x85, 0x86 on both stages: the leaf's permission and the AND over the walk.
fn permissions(seed: u64, t: MemTiming, tally: &mut Tally) -> Result<()> {
    let (mut b, d, pasid) = Bench::paging(&tally.waves, seed, t, Stage::Second)?;
    map(&mut b.k, d, IOVA_RO, PA + 0x10_0000, 0x1000, true, false)?;
    map(&mut b.k, d, IOVA_WO, PA + 0x20_0000, 0x1000, false, true)?;
    for v in vias(pasid) {
        b.ok1(v, false, IOVA_RO)?;
        b.fault1(v, true, IOVA_RO, WriteDenied, true)?;
        b.ok1(v, true, IOVA_WO)?;
        b.fault1(v, false, IOVA_WO, ReadDenied, true)?;
    }
    // R cleared on a non-leaf (W kept) denies reads below it; W cleared denies writes.
    for (level, clear, write, reason) in [
        (3, ss::R, false, ReadDenied),
        (4, ss::R, false, ReadDenied),
        (2, ss::W, true, WriteDenied),
        (4, ss::W, true, WriteDenied),
    ] {
        let p = b.pte(Via::rid(DEV), IOVA, level)?;
        let old = b.patch(p, 0, clear)?;
        for v in vias(pasid) {
            b.fault1(v, write, IOVA, reason, true)?;
            b.ok1(v, !write, IOVA)?;
        }
        b.restore(p, old)?;
    }
    tally.merge(b.tally);

    let (mut b, d, pasid) = Bench::paging(&tally.waves, seed ^ 1, t, Stage::First)?;
    map(&mut b.k, d, IOVA_RO, PA + 0x10_0000, 0x1000, true, false)?;
    map(&mut b.k, d, IOVA_WO, PA + 0x20_0000, 0x1000, false, true)?;
    for v in vias(pasid) {
        b.ok1(v, false, IOVA_RO)?;
        b.fault1(v, true, IOVA_RO, WriteDenied, true)?;
        // Linux's first-stage leaves are always readable.
        b.ok(v, IOVA_WO)?;
    }
    tally.merge(b.tally);
    Ok(())
}

/// 0x83 and the entry checks of pass-through PASID entries.
fn pass_through(seed: u64, t: MemTiming, tally: &mut Tally) -> Result<()> {
    let (mut b, pasid) = Bench::identity(&tally.waves, seed, t)?;
    for v in vias(pasid) {
        for a in [0, 0x1234_5000, (1 << 48) - 0x1000] {
            b.ok(v, a)?;
        }
        for a in [1 << 48, 0x000F_0000_0000_0000, 0xFFFF_FFFF_FFFF_F000] {
            b.fault(v, a, PtBeyondHaw)?;
        }
    }
    let v = Via::pasid(DEV, pasid);
    b.fault(v.er(), 0x1000, ErWithoutEre)?;
    b.fault(v.pmr(), 0x1000, PmrWithoutSre)?;
    b.fault(v.pmr(), 1 << 48, PmrWithoutSre)?;
    let ctx = b.context_entry(DEV)?;
    let old = b.patch(ctx + 8, ce::RID_PRIV, 0)?;
    b.fault(Via::rid(DEV), 0x1000, PmrWithoutSre)?;
    b.restore(ctx + 8, old)?;
    // PT ignores the second-stage pointer's reserved bits and AW.
    let pte = b.pasid_entry(v)?;
    let old = b.patch(pte, 1 << 50, pe::QW0_AW_MASK)?;
    b.ok(v, 0x5000)?;
    b.restore(pte, old)?;
    tally.merge(b.tally);
    Ok(())
}

/// FPD=1 on a present entry of the path blocks without recording: context FPD from 0x45
/// on, directory FPD from 0x58 on, PASID-entry FPD from 0x5B on. Faults of the entry that
/// carries the FPD (or of entries before it) are recorded.
fn fpd(seed: u64, t: MemTiming, tally: &mut Tally) -> Result<()> {
    let (mut b, d, pasid) = Bench::paging(&tally.waves, seed, t, Stage::Second)?;
    map(&mut b.k, d, IOVA_RO, PA + 0x10_0000, 0x1000, true, false)?;
    map(&mut b.k, d, IOVA_WO, PA + 0x20_0000, 0x1000, false, true)?;
    let ctx = b.context_entry(DEV)?;
    let unused = (pasid & !0x3F) | ((pasid + 1) & 0x3F);

    // Every fault from 0x5B on, for `v` under an FPD set somewhere on its path.
    fn below_pasid_entry(b: &mut Bench, v: Via, ctx: u64) -> Result<()> {
        let pte = b.pasid_entry(v)?;
        let old = b.patch(pte, 0b011 << pe::QW0_PGTT_SHIFT, pe::QW0_PGTT_MASK)?;
        b.quiet(v, IOVA, InvalidPgtt)?;
        b.restore(pte, old)?;
        if v.pasid.is_some() {
            b.quiet(v.er(), IOVA, ErWithoutEre)?;
            b.quiet(v.pmr(), IOVA, PmrWithoutSre)?;
        } else {
            let old = b.patch(ctx + 8, ce::RID_PRIV, 0)?;
            b.quiet(v, IOVA, PmrWithoutSre)?;
            b.restore(ctx + 8, old)?;
        }
        b.quiet(v, 1 << 48, SsBeyondHaw)?;
        b.quiet(v, IOVA + 0x4000, SsNotPresent)?;
        b.fault1(v, true, IOVA_RO, WriteDenied, false)?;
        b.fault1(v, false, IOVA_WO, ReadDenied, false)?;
        let leaf = b.pte(v, IOVA, 1)?;
        let old = b.patch(leaf, 1 << 48, 0)?;
        b.quiet(v, IOVA, SsReserved)?;
        b.restore(leaf, old)?;
        b.poison(leaf & !0xFFF, 0x1000)?;
        b.quiet(v, IOVA, SsAccess)?;
        b.heal()?;
        b.ok(v, IOVA)
    }

    // Context FPD.
    let old_ctx = b.patch(ctx, ce::FPD, 0)?;
    for v in vias(pasid) {
        b.ok(v, IOVA)?;
    }
    // Context faults are recorded whatever its FPD says.
    let old = b.patch(ctx, 1 << 5, 0)?;
    b.fault(Via::rid(DEV), IOVA, ContextReserved)?;
    b.restore(ctx, old)?;
    let old = b.patch(ctx, 0, ce::P)?;
    b.fault(Via::pasid(DEV, pasid), IOVA, ContextNotPresent)?;
    b.restore(ctx, old)?;
    // From 0x45 on: suppressed.
    let old = b.patch(ctx, 0, ce::PASIDE)?;
    b.quiet(Via::pasid(DEV, pasid), IOVA, PasidDisabled)?;
    b.restore(ctx, old)?;
    let old = b.patch(ctx, 0, ce::PDTS_MASK)?;
    b.quiet(Via::pasid(DEV, 0xF_FFFF), IOVA, PasidBeyondDirectory)?;
    b.restore(ctx, old)?;
    b.quiet(Via::pasid(DEV, 0x1000), IOVA, PasidDirNotPresent)?;
    for v in vias(pasid) {
        let de = b.pasid_dir_entry(v)?;
        let old = b.patch(de, 1 << 63, 0)?;
        b.quiet(v, IOVA, PasidDirReserved)?;
        b.restore(de, old)?;
        b.poison(de, 8)?;
        b.quiet(v, IOVA, PasidDirAccess)?;
        b.heal()?;
        let pte = b.pasid_entry(v)?;
        b.poison(pte, 64)?;
        b.quiet(v, IOVA, PasidEntryAccess)?;
        b.heal()?;
        let old = b.patch(pte + 24, 1, 0)?;
        b.quiet(v, IOVA, PasidEntryReserved)?;
        b.restore(pte + 24, old)?;
        below_pasid_entry(&mut b, v, ctx)?;
    }
    b.quiet(Via::pasid(DEV, unused), IOVA, PasidEntryNotPresent)?;
    // Another function on the same bus is not affected by DEV's FPD.
    b.fault(Via::rid(rid(0, 3, 0)), IOVA, ContextNotPresent)?;
    b.restore(ctx, old_ctx)?;
    b.fault(Via::pasid(DEV, 0x1000), IOVA, PasidDirNotPresent)?;

    // Directory FPD (entry of DEV's PASIDs 0-63).
    for v in vias(pasid) {
        let de = b.pasid_dir_entry(v)?;
        let old_de = b.patch(de, pde::FPD, 0)?;
        b.ok(v, IOVA)?;
        // Faults of the directory entry itself are recorded.
        let old = b.patch(de, 0, pde::P)?;
        b.fault(v, IOVA, PasidDirNotPresent)?;
        b.restore(de, old)?;
        let old = b.patch(de, 1 << 2, 0)?;
        b.fault(v, IOVA, PasidDirReserved)?;
        b.restore(de, old)?;
        // From 0x58 on: suppressed.
        let pte = b.pasid_entry(v)?;
        b.poison(pte + 8, 8)?;
        b.quiet(v, IOVA, PasidEntryAccess)?;
        b.heal()?;
        let old = b.patch(pte, 0, pe::QW0_P)?;
        b.quiet(v, IOVA, PasidEntryNotPresent)?;
        b.restore(pte, old)?;
        let old = b.patch(pte + 8, 1 << 20, 0)?;
        b.quiet(v, IOVA, PasidEntryReserved)?;
        b.restore(pte + 8, old)?;
        below_pasid_entry(&mut b, v, ctx)?;
        // A PASID in another directory entry is not affected.
        b.fault(Via::pasid(DEV, 0x1000), IOVA, PasidDirNotPresent)?;
        b.restore(de, old_de)?;
    }

    // PASID-entry FPD.
    for v in vias(pasid) {
        let pte = b.pasid_entry(v)?;
        let old_pe = b.patch(pte, pe::QW0_FPD, 0)?;
        b.ok(v, IOVA)?;
        // Faults of the PASID entry itself (not present, reserved) are recorded.
        let old = b.patch(pte, 0, pe::QW0_P)?;
        b.fault(v, IOVA, PasidEntryNotPresent)?;
        b.restore(pte, old)?;
        let old = b.patch(pte + 16, 1 << 9, 0)?;
        b.fault(v, IOVA, PasidEntryReserved)?;
        b.restore(pte + 16, old)?;
        b.poison(pte + 40, 8)?;
        b.fault(v, IOVA, PasidEntryAccess)?;
        b.heal()?;
        // From 0x5B on: suppressed.
        below_pasid_entry(&mut b, v, ctx)?;
        // The other attachment of the same domain (the RID or the PASID) records.
        let other = match v.pasid {
            Some(_) => Via::rid(DEV),
            None => Via::pasid(DEV, pasid),
        };
        b.fault(other, IOVA + 0x4000, SsNotPresent)?;
        b.fault1(other, true, IOVA_RO, WriteDenied, true)?;
        b.restore(pte, old_pe)?;
        b.fault(v, IOVA + 0x4000, SsNotPresent)?;
    }
    tally.merge(b.tally);

    // First-stage walk faults under PASID-entry FPD.
    let (mut b, d, pasid) = Bench::paging(&tally.waves, seed ^ 1, t, Stage::First)?;
    map(&mut b.k, d, IOVA_RO, PA + 0x10_0000, 0x1000, true, false)?;
    for v in vias(pasid) {
        let pte = b.pasid_entry(v)?;
        let old_pe = b.patch(pte, pe::QW0_FPD, 0)?;
        let old2 = b.patch(pte + 16, pe::QW2_ERE | pe::QW2_NXE, 0)?;
        b.ok(v, IOVA)?;
        b.quiet(v, 0x8000_0000_0000, NonCanonical)?;
        b.quiet(v, IOVA + 0x4000, FsNotPresent)?;
        b.fault1(v, true, IOVA_RO, WriteDenied, false)?;
        let leaf = b.pte(v, IOVA, 1)?;
        let old = b.patch(leaf, 1 << 49, 0)?;
        b.quiet(v, IOVA, FsReserved)?;
        b.restore(leaf, old)?;
        let old = b.patch(leaf, 0, fs::US)?;
        b.quiet(v, IOVA, UserToSupervisorPage)?;
        b.restore(leaf, old)?;
        if v.pasid.is_some() {
            let old = b.patch(leaf, fs::XD, 0)?;
            b.quiet(v.er(), IOVA, ExecuteXd)?;
            b.restore(leaf, old)?;
        }
        b.poison(leaf & !0xFFF, 0x1000)?;
        b.quiet(v, IOVA, FsAccess)?;
        b.heal()?;
        let old = b.patch(pte + 16, 0b01 << pe::QW2_FSPM_SHIFT, 0)?;
        b.quiet(v, IOVA, InvalidPgtt)?;
        b.restore(pte + 16, old)?;
        b.restore(pte + 16, old2)?;
        b.restore(pte, old_pe)?;
        b.fault(v, IOVA + 0x4000, FsNotPresent)?;
    }
    tally.merge(b.tally);

    // Pass-through under PASID-entry FPD.
    let (mut b, pasid) = Bench::identity(&tally.waves, seed ^ 2, t)?;
    for v in vias(pasid) {
        let pte = b.pasid_entry(v)?;
        let old = b.patch(pte, pe::QW0_FPD, 0)?;
        b.quiet(v, 1 << 48, PtBeyondHaw)?;
        b.ok(v, 0x7000)?;
        b.restore(pte, old)?;
        b.fault(v, 1 << 48, PtBeyondHaw)?;
    }
    tally.merge(b.tally);
    Ok(())
}

const FAMILIES: [(&str, Family); 7] = [
    ("root_entry", root_entry),
    ("context_entry", context_entry),
    ("pasid_structures", pasid_structures),
    ("first_stage", first_stage),
    ("second_stage", second_stage),
    ("permissions", permissions),
    ("pass_through", pass_through),
];

/// Runs one family and checks that it produced `recorded` (and `suppressed` under FPD).
fn family_test(
    name: &str,
    seed: u64,
    body: Family,
    recorded: &[FaultReason],
    suppressed: &[FaultReason],
) -> Result<(), TestFailure> {
    run_test(name, seed, |tb| {
        let mut tally = Tally::new(tb);
        body(seed, MemTiming::default(), &mut tally)?;
        let missing: Vec<String> = recorded
            .iter()
            .filter(|r| !tally.recorded.contains(r))
            .map(|r| r.to_string())
            .collect();
        ensure!(missing.is_empty(), "never recorded: {missing:?}");
        let missing: Vec<String> = suppressed
            .iter()
            .filter(|r| !tally.suppressed.contains(r))
            .map(|r| r.to_string())
            .collect();
        ensure!(missing.is_empty(), "never blocked under FPD: {missing:?}");
        Ok(())
    })
}

#[test]
fn root_entry_faults() -> Result<(), TestFailure> {
    family_test(
        "root_entry_faults",
        0x30,
        root_entry,
        &[InvalidTtm, RootAccess, RootNotPresent, RootReserved],
        &[],
    )
}

#[test]
fn context_entry_faults() -> Result<(), TestFailure> {
    family_test(
        "context_entry_faults",
        0x40,
        context_entry,
        &[
            ContextAccess,
            ContextNotPresent,
            ContextReserved,
            DteDisabled,
        ],
        &[],
    )
}

#[test]
fn pasid_faults() -> Result<(), TestFailure> {
    family_test(
        "pasid_faults",
        0x45,
        pasid_structures,
        &[
            PasidDisabled,
            PasidBeyondDirectory,
            PasidDirAccess,
            PasidDirNotPresent,
            PasidDirReserved,
            PasidEntryAccess,
            PasidEntryNotPresent,
            PasidEntryReserved,
            InvalidPgtt,
            ErWithoutEre,
            PmrWithoutSre,
        ],
        &[],
    )
}

#[test]
fn first_stage_faults() -> Result<(), TestFailure> {
    family_test(
        "first_stage_faults",
        0x70,
        first_stage,
        &[
            FsAccess,
            FsNotPresent,
            FsReserved,
            NonCanonical,
            UserToSupervisorPage,
            ExecuteXd,
            WriteDenied,
            ErWithoutEre,
        ],
        &[],
    )
}

#[test]
fn second_stage_faults() -> Result<(), TestFailure> {
    family_test(
        "second_stage_faults",
        0x78,
        second_stage,
        &[SsAccess, SsNotPresent, SsReserved, SsBeyondHaw],
        &[],
    )
}

#[test]
fn permission_faults() -> Result<(), TestFailure> {
    family_test(
        "permission_faults",
        0x85,
        permissions,
        &[WriteDenied, ReadDenied],
        &[],
    )
}

#[test]
fn pass_through_faults() -> Result<(), TestFailure> {
    family_test(
        "pass_through_faults",
        0x83,
        pass_through,
        &[PtBeyondHaw, ErWithoutEre, PmrWithoutSre],
        &[],
    )
}

/// Codes FPD can suppress: everything after the context entry.
fn suppressible() -> Vec<FaultReason> {
    FaultReason::ALL
        .into_iter()
        .filter(|r| r.code() >= PasidDisabled.code())
        .collect()
}

#[test]
fn fpd_suppresses_recording() -> Result<(), TestFailure> {
    family_test(
        "fpd_suppresses_recording",
        0xF9D,
        fpd,
        &[
            ContextReserved,
            ContextNotPresent,
            PasidDirNotPresent,
            PasidDirReserved,
            PasidEntryNotPresent,
            PasidEntryReserved,
            PasidEntryAccess,
            SsNotPresent,
            FsNotPresent,
            PtBeyondHaw,
        ],
        &suppressible(),
    )
}

/// Every family again with other seeds and a slow, back-pressured memory port; the DUT must
/// have recorded all 32 reasons, and blocked every reason from 0x45 on without recording
/// under FPD.
#[test]
fn every_fault_code_is_produced() -> Result<(), TestFailure> {
    let seed = 0x5EED_F417;
    run_test("every_fault_code_is_produced", seed, |tb| {
        let timing = MemTiming {
            min_latency: 1,
            max_latency: 12,
            ready_pct: 70,
            in_order: false,
        };
        let mut tally = Tally::new(tb);
        let all = FAMILIES.into_iter().chain([("fpd", fpd as Family)]);
        for (i, (name, f)) in all.enumerate() {
            f(seed + i as u64, timing, &mut tally).with_context(|| format!("family {name}"))?;
        }
        let missing: Vec<String> = FaultReason::ALL
            .into_iter()
            .filter(|r| !tally.recorded.contains(r))
            .map(|r| r.to_string())
            .collect();
        ensure!(
            missing.is_empty(),
            "fault reasons the DUT never recorded: {missing:?}"
        );
        ensure!(
            tally.recorded.len() == FaultReason::ALL.len(),
            "{:?}",
            tally.recorded
        );
        let missing: Vec<String> = suppressible()
            .into_iter()
            .filter(|r| !tally.suppressed.contains(r))
            .map(|r| r.to_string())
            .collect();
        ensure!(
            missing.is_empty(),
            "fault reasons never blocked without recording under FPD: {missing:?}"
        );
        Ok(())
    })
}
