//! The golden walker against hand-written tables: every docs/contract.md fault code, the check
//! order (first fault wins) and FPD. Independent of the kernel and driver layers.

use iommu_model::fault::FaultReason as F;
use iommu_model::golden::{translate, HwState, Outcome, Request};
use iommu_model::mem::{Mem, PhysMem};
use iommu_model::tables::{context as ce, fs, pasid_entry as pe, ss};

const ROOT: u64 = 0x10_0000;
const CTX: u64 = 0x10_1000;
const DIR: u64 = 0x10_2000;
const PTBL: u64 = 0x10_3000;
const PT4: u64 = 0x20_0000;
const PT3: u64 = 0x20_1000;
const PT2: u64 = 0x20_2000;
const PT1: u64 = 0x20_3000;
const PAGE: u64 = 0x7777_7000;
/// bus 1, dev 2, fn 3
const RID: u16 = 0x0113;
const VA: u64 = 0x1234_5000;

/// A world with one device whose PASID 5 (and RID_PASID 0) use `pgtt`.
struct World {
    mem: Mem,
    hw: HwState,
}

impl World {
    fn new(pgtt: u64) -> Self {
        let mut mem = Mem::new();
        let w = |m: &mut Mem, a: u64, v: u64| m.write64(a, v).unwrap();
        w(&mut mem, ROOT + 16, CTX | 1);
        let devfn = u64::from(RID & 0x7F);
        w(
            &mut mem,
            CTX + devfn * 32,
            DIR | 2 << ce::PDTS_SHIFT | ce::PASIDE | ce::P,
        );
        w(&mut mem, DIR, PTBL | 1);
        for pasid in [0u64, 5] {
            let e = PTBL + pasid * 64;
            w(&mut mem, e + 8, 9); // DID 9
            let (q0, q2) = match pgtt {
                pe::PGTT_SS => (PT4 | pe::PGTT_SS << 6 | 2 << 2 | 1, 0),
                pe::PGTT_FS => (pe::PGTT_FS << 6 | 2 << 2 | 1, PT4),
                _ => (pe::PGTT_PT << 6 | 2 << 2 | 1, 0),
            };
            w(&mut mem, e, q0);
            w(&mut mem, e + 16, q2);
        }
        let (tbl, leaf) = if pgtt == pe::PGTT_SS {
            (ss::R | ss::W, ss::R | ss::W)
        } else {
            (0x27, 0x67)
        };
        w(&mut mem, PT4 + idx(VA, 4) * 8, PT3 | tbl);
        w(&mut mem, PT3 + idx(VA, 3) * 8, PT2 | tbl);
        w(&mut mem, PT2 + idx(VA, 2) * 8, PT1 | tbl);
        w(&mut mem, PT1 + idx(VA, 1) * 8, PAGE | leaf);
        Self {
            mem,
            hw: HwState::scalable(ROOT),
        }
    }
    fn go(&self, req: Request) -> Outcome {
        translate(&self.hw, &self.mem, &req).outcome
    }
    fn set(&mut self, a: u64, v: u64) {
        self.mem.write64(a, v).unwrap();
    }
    fn or(&mut self, a: u64, v: u64) {
        let old = self.mem.read64(a).unwrap();
        self.set(a, old | v);
    }
    fn and_not(&mut self, a: u64, v: u64) {
        let old = self.mem.read64(a).unwrap();
        self.set(a, old & !v);
    }
}

fn idx(a: u64, level: u32) -> u64 {
    (a >> (12 + 9 * (level - 1))) & 0x1FF
}

fn rd() -> Request {
    Request::read(RID, VA + 0x18, 8)
}

fn ctx_addr() -> u64 {
    CTX + u64::from(RID & 0x7F) * 32
}

#[test]
fn valid_walks_translate_in_every_mode() {
    for pgtt in [pe::PGTT_SS, pe::PGTT_FS] {
        let w = World::new(pgtt);
        assert_eq!(w.go(rd()), Outcome::Translated(PAGE + 0x18));
        assert_eq!(w.go(rd().with_pasid(5)), Outcome::Translated(PAGE + 0x18));
        assert_eq!(w.go(Request::write(RID, VA, 4)), Outcome::Translated(PAGE));
    }
    let w = World::new(pe::PGTT_PT);
    assert_eq!(w.go(rd()), Outcome::Translated(VA + 0x18));
}

#[test]
fn te_off_forwards_untranslated_and_bad_ttm_faults() {
    let mut w = World::new(pe::PGTT_SS);
    w.hw.te = false;
    assert_eq!(w.go(rd()), Outcome::Untranslated);
    w.hw = HwState {
        te: true,
        rtaddr: ROOT,
    };
    assert_eq!(w.go(rd()), Outcome::Fault(F::InvalidTtm));
    w.hw.rtaddr = ROOT | 3 << 10;
    assert_eq!(w.go(rd()), Outcome::Fault(F::InvalidTtm));
}

#[test]
fn malformed_requests() {
    let w = World::new(pe::PGTT_SS);
    assert_eq!(w.go(Request::read(RID, VA + 0xFFC, 8)), Outcome::Malformed);
    assert_eq!(w.go(rd().with_pasid(1 << 20)), Outcome::Malformed);
    assert_eq!(w.go(Request { pmr: true, ..rd() }), Outcome::Malformed);
    assert_eq!(
        w.go(Request::read(RID, VA + 0xFF8, 8)),
        Outcome::Translated(PAGE + 0xFF8)
    );
}

#[test]
fn root_entry_faults() {
    let mut w = World::new(pe::PGTT_SS);
    w.mem.add_error_range(ROOT + 16, ROOT + 24);
    assert_eq!(w.go(rd()), Outcome::Fault(F::RootAccess));
    w.mem.clear_error_ranges();
    assert_eq!(
        w.go(Request::read(0x0213, VA, 4)),
        Outcome::Fault(F::RootNotPresent)
    );
    // Upper half (devfn >= 0x80) has UP clear.
    assert_eq!(
        w.go(Request::read(0x0190, VA, 4)),
        Outcome::Fault(F::RootNotPresent)
    );
    w.or(ROOT + 16, 1 << 4);
    assert_eq!(w.go(rd()), Outcome::Fault(F::RootReserved));
    w.set(ROOT + 16, CTX | 1 | 1 << 50);
    assert_eq!(w.go(rd()), Outcome::Fault(F::RootReserved));
}

#[test]
fn context_entry_faults() {
    let mut w = World::new(pe::PGTT_SS);
    w.mem.add_error_range(ctx_addr() + 24, ctx_addr() + 32);
    assert_eq!(w.go(rd()), Outcome::Fault(F::ContextAccess));
    w.mem.clear_error_ranges();
    assert_eq!(
        w.go(Request::read(RID + 1, VA, 4)),
        Outcome::Fault(F::ContextNotPresent)
    );
    for (qw, bit) in [
        (0, 1u64 << 5),
        (0, 1 << 49),
        (1, 1 << 21),
        (2, 1),
        (3, 1 << 63),
    ] {
        let mut w = World::new(pe::PGTT_SS);
        w.or(ctx_addr() + qw * 8, bit);
        assert_eq!(
            w.go(rd()),
            Outcome::Fault(F::ContextReserved),
            "qw{qw} bit {bit:#x}"
        );
    }
    // DTE, PRE and FPD are fields, not reserved bits.
    let mut w = World::new(pe::PGTT_SS);
    w.or(ctx_addr(), ce::DTE | ce::PRE);
    assert_eq!(w.go(rd()), Outcome::Translated(PAGE + 0x18));
}

#[test]
fn pasid_selection_faults() {
    let mut w = World::new(pe::PGTT_SS);
    // PDTS = 2: 512 directory entries cover PASIDs below 2^15.
    assert_eq!(
        w.go(rd().with_pasid(1 << 15)),
        Outcome::Fault(F::PasidBeyondDirectory)
    );
    assert_eq!(
        w.go(rd().with_pasid(64)),
        Outcome::Fault(F::PasidDirNotPresent)
    );
    assert_eq!(
        w.go(rd().with_pasid(6)),
        Outcome::Fault(F::PasidEntryNotPresent)
    );
    w.and_not(ctx_addr(), ce::PASIDE);
    assert_eq!(w.go(rd().with_pasid(5)), Outcome::Fault(F::PasidDisabled));
    assert_eq!(
        w.go(rd()),
        Outcome::Translated(PAGE + 0x18),
        "no prefix still uses RID_PASID"
    );
    // RID_PASID selects the entry for requests without a prefix.
    let mut w = World::new(pe::PGTT_SS);
    w.set(ctx_addr() + 8, 6);
    assert_eq!(w.go(rd()), Outcome::Fault(F::PasidEntryNotPresent));
    w.set(ctx_addr() + 8, 5);
    assert_eq!(w.go(rd()), Outcome::Translated(PAGE + 0x18));
}

#[test]
fn pasid_directory_entry_faults() {
    let mut w = World::new(pe::PGTT_SS);
    w.mem.add_error_range(DIR, DIR + 8);
    assert_eq!(w.go(rd()), Outcome::Fault(F::PasidDirAccess));
    w.mem.clear_error_ranges();
    w.or(DIR, 1 << 3);
    assert_eq!(w.go(rd()), Outcome::Fault(F::PasidDirReserved));
    w.set(DIR, PTBL | 1 | 1 << 48);
    assert_eq!(w.go(rd()), Outcome::Fault(F::PasidDirReserved));
}

#[test]
fn pasid_table_entry_faults() {
    let mut w = World::new(pe::PGTT_SS);
    w.mem.add_error_range(PTBL + 56, PTBL + 64);
    assert_eq!(w.go(rd()), Outcome::Fault(F::PasidEntryAccess));
    w.mem.clear_error_ranges();
    for (qw, bit) in [
        (0u64, 1u64 << 10),
        (0, 1 << 48),
        (1, 1 << 16),
        (2, 1 << 8),
        (3, 1),
        (7, 1 << 63),
    ] {
        let mut w = World::new(pe::PGTT_SS);
        w.or(PTBL + qw * 8, bit);
        assert_eq!(
            w.go(rd()),
            Outcome::Fault(F::PasidEntryReserved),
            "qw{qw} {bit:#x}"
        );
    }
    let mut w = World::new(pe::PGTT_FS);
    w.or(PTBL + 16, 1 << 50);
    assert_eq!(
        w.go(rd()),
        Outcome::Fault(F::PasidEntryReserved),
        "FS pointer above HAW"
    );
    // Accepted-and-ignored fields never fault.
    let mut w = World::new(pe::PGTT_SS);
    w.or(PTBL, pe::QW0_SSADE | pe::QW0_SSEE);
    w.or(PTBL + 8, 0xFFFF_FFFF_FF80_0000);
    w.or(PTBL + 16, pe::QW2_WPE | pe::QW2_NXE | 1 << 6 | 1 << 7);
    assert_eq!(w.go(rd()), Outcome::Translated(PAGE + 0x18));
}

#[test]
fn invalid_pgtt_aw_fspm() {
    for pgtt in [0u64, 0b011, 0b101, 0b110, 0b111] {
        let mut w = World::new(pe::PGTT_SS);
        w.and_not(PTBL, pe::QW0_PGTT_MASK);
        w.or(PTBL, pgtt << 6);
        assert_eq!(w.go(rd()), Outcome::Fault(F::InvalidPgtt), "pgtt {pgtt:#b}");
    }
    let mut w = World::new(pe::PGTT_SS);
    w.and_not(PTBL, pe::QW0_AW_MASK);
    w.or(PTBL, 0b011 << 2);
    assert_eq!(w.go(rd()), Outcome::Fault(F::InvalidPgtt));
    let mut w = World::new(pe::PGTT_FS);
    w.or(PTBL + 16, 1 << 2);
    assert_eq!(w.go(rd()), Outcome::Fault(F::InvalidPgtt));
    // AW does not matter for first stage or pass-through.
    for pgtt in [pe::PGTT_FS, pe::PGTT_PT] {
        let mut w = World::new(pgtt);
        w.and_not(PTBL, pe::QW0_AW_MASK);
        assert!(matches!(w.go(rd()), Outcome::Translated(_)));
    }
}

#[test]
fn er_and_pmr_checks_come_before_the_walk() {
    for pgtt in [pe::PGTT_SS, pe::PGTT_FS, pe::PGTT_PT] {
        let mut w = World::new(pgtt);
        let base = rd().with_pasid(5);
        assert_eq!(
            w.go(Request {
                er: true,
                pmr: true,
                ..base
            }),
            Outcome::Fault(F::ErWithoutEre)
        );
        assert_eq!(
            w.go(Request { pmr: true, ..base }),
            Outcome::Fault(F::PmrWithoutSre)
        );
        // Even with the leaf gone, the privilege check wins.
        w.set(PT1 + idx(VA, 1) * 8, 0);
        w.set(PT4 + idx(VA, 4) * 8, 0);
        assert_eq!(
            w.go(Request { pmr: true, ..base }),
            Outcome::Fault(F::PmrWithoutSre)
        );
        // RID_PRIV makes requests without a prefix supervisor requests.
        w.or(ctx_addr() + 8, ce::RID_PRIV);
        assert_eq!(w.go(rd()), Outcome::Fault(F::PmrWithoutSre));
    }
}

#[test]
fn pass_through_width() {
    let w = World::new(pe::PGTT_PT);
    assert_eq!(
        w.go(Request::read(RID, 1 << 48, 4)),
        Outcome::Fault(F::PtBeyondHaw)
    );
    assert_eq!(
        w.go(Request::read(RID, (1 << 48) - 8, 8)),
        Outcome::Translated((1 << 48) - 8)
    );
}

#[test]
fn second_stage_faults() {
    let mut w = World::new(pe::PGTT_SS);
    assert_eq!(
        w.go(Request::read(RID, 1 << 48 | VA, 4)),
        Outcome::Fault(F::SsBeyondHaw)
    );
    w.mem.add_error_range(PT2, PT2 + 0x1000);
    assert_eq!(w.go(rd()), Outcome::Fault(F::SsAccess));
    w.mem.clear_error_ranges();
    w.or(PT3 + idx(VA, 3) * 8, 1 << 49);
    assert_eq!(w.go(rd()), Outcome::Fault(F::SsReserved));
    let mut w = World::new(pe::PGTT_SS);
    w.or(PT4 + idx(VA, 4) * 8, ss::PS);
    assert_eq!(
        w.go(rd()),
        Outcome::Fault(F::SsReserved),
        "PS in the top level"
    );
    let mut w = World::new(pe::PGTT_SS);
    w.set(PT2 + idx(VA, 2) * 8, 0);
    assert_eq!(w.go(rd()), Outcome::Fault(F::SsNotPresent));
    // Permissions are ANDed over the levels.
    let mut w = World::new(pe::PGTT_SS);
    w.and_not(PT3 + idx(VA, 3) * 8, ss::W);
    assert_eq!(
        w.go(Request::write(RID, VA, 4)),
        Outcome::Fault(F::WriteDenied)
    );
    assert_eq!(w.go(rd()), Outcome::Translated(PAGE + 0x18));
    let mut w = World::new(pe::PGTT_SS);
    w.and_not(PT1 + idx(VA, 1) * 8, ss::R);
    assert_eq!(w.go(rd()), Outcome::Fault(F::ReadDenied));
    assert_eq!(w.go(Request::write(RID, VA, 4)), Outcome::Translated(PAGE));
}

#[test]
fn second_stage_superpages() {
    let mut w = World::new(pe::PGTT_SS);
    let big = 0x8000_0000u64;
    w.set(PT2 + idx(VA, 2) * 8, big | ss::PS | ss::R | ss::W);
    let off = VA & 0x1F_FFFF;
    assert_eq!(w.go(rd()), Outcome::Translated(big + off + 0x18));
    w.set(PT2 + idx(VA, 2) * 8, big | 0x1000 | ss::PS | ss::R | ss::W);
    assert_eq!(
        w.go(rd()),
        Outcome::Fault(F::SsReserved),
        "2 MiB frame not aligned"
    );
    w.set(PT3 + idx(VA, 3) * 8, 0x4000_0000 | ss::PS | ss::R);
    assert_eq!(
        w.go(rd()),
        Outcome::Translated(0x4000_0000 + (VA & 0x3FFF_FFFF) + 0x18)
    );
}

#[test]
fn first_stage_faults() {
    let mut w = World::new(pe::PGTT_FS);
    assert_eq!(
        w.go(Request::read(RID, 1 << 47, 4)),
        Outcome::Fault(F::NonCanonical)
    );
    assert_eq!(
        w.go(Request::read(RID, 0xFFFF_0000_0000_0000, 4)),
        Outcome::Fault(F::NonCanonical)
    );
    assert_eq!(
        w.go(Request::read(RID, 0xFFFF_8000_0000_0000, 4)),
        Outcome::Fault(F::FsNotPresent),
        "canonical upper half"
    );
    w.mem.add_error_range(PT1, PT1 + 0x1000);
    assert_eq!(w.go(rd()), Outcome::Fault(F::FsAccess));
    w.mem.clear_error_ranges();
    w.or(PT2 + idx(VA, 2) * 8, 1 << 51);
    assert_eq!(w.go(rd()), Outcome::Fault(F::FsReserved));
    let mut w = World::new(pe::PGTT_FS);
    w.and_not(PT3 + idx(VA, 3) * 8, fs::P);
    assert_eq!(w.go(rd()), Outcome::Fault(F::FsNotPresent));
    // U/S=0 at any level faults a user request; supervisor checks come first.
    let mut w = World::new(pe::PGTT_FS);
    w.and_not(PT4 + idx(VA, 4) * 8, fs::US);
    w.and_not(PT1 + idx(VA, 1) * 8, fs::RW);
    assert_eq!(
        w.go(Request::write(RID, VA, 4)),
        Outcome::Fault(F::UserToSupervisorPage)
    );
    let mut w = World::new(pe::PGTT_FS);
    w.and_not(PT2 + idx(VA, 2) * 8, fs::RW);
    assert_eq!(
        w.go(Request::write(RID, VA, 4)),
        Outcome::Fault(F::WriteDenied)
    );
    assert_eq!(w.go(rd()), Outcome::Translated(PAGE + 0x18));
    // Accessed/dirty, PWT/PCD and ignored bits are never reserved.
    let mut w = World::new(pe::PGTT_FS);
    w.or(PT1 + idx(VA, 1) * 8, 0x18 | 0x7FF << 52);
    assert_eq!(w.go(rd()), Outcome::Translated(PAGE + 0x18));
}

#[test]
fn execute_of_xd_page_needs_ere() {
    let mut w = World::new(pe::PGTT_FS);
    w.or(PT3 + idx(VA, 3) * 8, fs::XD);
    let req = Request {
        er: true,
        ..rd().with_pasid(5)
    };
    assert_eq!(w.go(req), Outcome::Fault(F::ErWithoutEre));
    w.or(PTBL + 5 * 64 + 16, pe::QW2_ERE);
    assert_eq!(w.go(req), Outcome::Fault(F::ExecuteXd));
    assert_eq!(
        w.go(rd().with_pasid(5)),
        Outcome::Translated(PAGE + 0x18),
        "XD does not block data reads"
    );
    w.and_not(PT3 + idx(VA, 3) * 8, fs::XD);
    assert_eq!(w.go(req), Outcome::Translated(PAGE + 0x18));
}

#[test]
fn supervisor_requests_with_sre() {
    let mut w = World::new(pe::PGTT_FS);
    w.or(PTBL + 5 * 64 + 16, pe::QW2_SRE);
    w.and_not(PT1 + idx(VA, 1) * 8, fs::US);
    let sup = Request {
        pmr: true,
        ..rd().with_pasid(5)
    };
    assert_eq!(w.go(sup), Outcome::Translated(PAGE + 0x18));
    assert_eq!(
        w.go(rd().with_pasid(5)),
        Outcome::Fault(F::UserToSupervisorPage)
    );
}

#[test]
fn fpd_suppresses_recording_never_blocking() {
    let mut w = World::new(pe::PGTT_SS);
    w.set(PT2 + idx(VA, 2) * 8, 0);
    let walk = translate(&w.hw, &w.mem, &rd());
    assert_eq!(walk.outcome, Outcome::Fault(F::SsNotPresent));
    assert!(walk.record);
    for (addr, bit) in [(ctx_addr(), ce::FPD), (DIR, 2), (PTBL, pe::QW0_FPD)] {
        let mut w2 = World::new(pe::PGTT_SS);
        w2.set(PT2 + idx(VA, 2) * 8, 0);
        w2.or(addr, bit);
        let walk = translate(&w2.hw, &w2.mem, &rd());
        assert_eq!(walk.outcome, Outcome::Fault(F::SsNotPresent));
        assert!(!walk.record, "FPD at {addr:#x}");
    }
    // A fault in the entry that carries FPD (or before it) is still recorded.
    let mut w = World::new(pe::PGTT_SS);
    w.or(ctx_addr(), ce::FPD | 1 << 5);
    let walk = translate(&w.hw, &w.mem, &rd());
    assert_eq!(walk.outcome, Outcome::Fault(F::ContextReserved));
    assert!(walk.record);
}

#[test]
fn every_fault_reason_is_produced_by_some_test_world() {
    // A compact sweep: each reason reachable from a single corruption of a valid world.
    use std::collections::BTreeSet;
    let mut seen = BTreeSet::new();
    for pgtt in [pe::PGTT_SS, pe::PGTT_FS, pe::PGTT_PT] {
        let base = World::new(pgtt);
        let addrs: Vec<u64> = vec![
            ROOT + 16,
            ctx_addr(),
            ctx_addr() + 8,
            DIR,
            PTBL,
            PTBL + 8,
            PTBL + 16,
            PT4,
            PT3 + idx(VA, 3) * 8,
            PT1 + idx(VA, 1) * 8,
        ];
        for &a in &addrs {
            for bit in 0..64 {
                let mut w = base.mem.clone();
                let v = w.read64(a).unwrap();
                w.write64(a, v ^ (1 << bit)).unwrap();
                for req in [
                    rd(),
                    rd().with_pasid(5),
                    Request::write(RID, VA, 4),
                    Request {
                        er: true,
                        ..rd().with_pasid(5)
                    },
                    Request {
                        pmr: true,
                        ..rd().with_pasid(5)
                    },
                ] {
                    if let Outcome::Fault(r) = translate(&base.hw, &w, &req).outcome {
                        seen.insert(r);
                    }
                }
            }
        }
        let mut w = base.mem.clone();
        w.add_error_range(0, 1 << 40);
        if let Outcome::Fault(r) = translate(&base.hw, &w, &rd()).outcome {
            seen.insert(r);
        }
    }
    // Codes that need a request shape rather than a corruption are covered above.
    for r in [
        F::RootNotPresent,
        F::ContextNotPresent,
        F::PasidDirNotPresent,
        F::PasidEntryNotPresent,
        F::InvalidPgtt,
        F::SsReserved,
        F::FsReserved,
        F::ReadDenied,
        F::WriteDenied,
        F::UserToSupervisorPage,
        F::PasidEntryReserved,
        F::ContextReserved,
        F::RootReserved,
        F::ErWithoutEre,
        F::PmrWithoutSre,
        F::PasidDisabled,
    ] {
        assert!(
            seen.contains(&r),
            "{r} not reached by single-bit corruption"
        );
    }
}

#[test]
fn fault_records_carry_the_request() {
    let mut w = World::new(pe::PGTT_FS);
    let req = Request {
        pmr: true,
        ..Request::write(RID, VA + 0x10, 4).with_pasid(5)
    };
    let walk = translate(&w.hw, &w.mem, &req);
    let rec = walk.fault_record(&req).unwrap();
    assert_eq!(rec.reason, 0x5D);
    assert_eq!(
        (rec.addr, rec.sid, rec.pasid, rec.privileged, rec.read),
        (VA, RID, Some(5), true, false)
    );
    assert_eq!(
        translate(&w.hw, &w.mem, &rd()).fault_record(&rd()),
        None,
        "no fault"
    );
    w.or(PTBL + 5 * 64, pe::QW0_FPD);
    assert_eq!(
        translate(&w.hw, &w.mem, &req).fault_record(&req),
        None,
        "FPD"
    );
}
