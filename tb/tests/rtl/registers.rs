//! Register file through the bridge: reset values, capability fields, CSR bus errors, and the
//! GCMD/GSTS command handshakes (VT-d 10.4.4-10.4.5).

use iommu_model::regs::{self, Caps, Width};
use iommu_tb::env::CsrError;
use iommu_tb::{run_test, TestFailure};

const SEED: u64 = 0x1d0_5eed;

#[test]
fn reset_values() -> Result<(), TestFailure> {
    run_test("reset_values", SEED, |env| {
        assert_eq!(env.read32(regs::VER)?, 0x10, "VER: version 1.0");
        assert_eq!(
            env.read32(regs::GSTS)?,
            0,
            "GSTS: translation, root pointer and QI all off"
        );
        assert_eq!(env.read64(regs::RTADDR)?, 0);
        assert_eq!(env.read32(regs::FSTS)?, 0, "FSTS: no fault pending");
        assert_eq!(env.read32(regs::FECTL)?, 1 << 31, "FECTL: IM set, IP clear");
        assert_eq!(env.read32(regs::IECTL)?, 1 << 31, "IECTL: IM set, IP clear");
        for r in [regs::IQH, regs::IQT, regs::IQA, regs::IQER] {
            assert_eq!(env.read64(r)?, 0, "register 0x{r:03x}");
        }
        assert_eq!(env.read32(regs::ICS)?, 0);
        assert_eq!(env.read32(regs::MALFORMED)?, 0);
        // No fault record is valid (F, bit 127 of each record) out of reset.
        let cap = Caps::new(env.read64(regs::CAP)?, 0);
        for i in 0..cap.num_fault_records() {
            let hi = env.read64(cap.fault_record(i) + 8)?;
            assert_eq!(hi >> 63, 0, "FRCD{i}.F set out of reset");
        }
        Ok(())
    })
}

#[test]
fn capabilities_advertise_what_is_implemented() -> Result<(), TestFailure> {
    run_test("capabilities", SEED, |env| {
        let cap = Caps::new(env.read64(regs::CAP)?, 0);
        assert_eq!(cap.nd(), 6, "CAP.ND: 16-bit domain IDs");
        assert_eq!(cap.sagaw(), 0b00100, "CAP.SAGAW: 4-level tables only");
        assert_eq!(cap.mgaw(), 47, "CAP.MGAW: 48-bit guest addresses");
        assert_eq!(
            cap.sllps(),
            0b0011,
            "CAP.SLLPS: 2 MiB and 1 GiB second-stage pages"
        );
        assert!(cap.psi(), "CAP.PSI");
        assert!(cap.fl1gp(), "CAP.FL1GP");
        assert_eq!(cap.mamv(), 18, "CAP.MAMV: masks up to 1 GiB");
        assert_eq!(
            cap.fault_record(0),
            regs::FRCD_OFFSET,
            "CAP.FRO points at the fault records"
        );
        assert!(
            cap.num_fault_records() >= 8,
            "at least 8 fault recording registers"
        );
        let ecap = Caps::new(0, env.read64(regs::ECAP)?);
        assert!(
            ecap.queued_invalidation()
                && ecap.pass_through()
                && ecap.pasid_bits() > 0
                && ecap.scalable(),
            "{ecap:?}"
        );
        assert!(
            ecap.first_stage() && ecap.second_stage(),
            "first- and second-stage translation: {ecap:?}"
        );
        assert_eq!(ecap.pasid_bits() - 1, 19, "ECAP.PSS: 20-bit PASIDs");
        // 32-bit halves of a 64-bit register read the same bits.
        let full = env.read64(regs::CAP)?;
        let lo = env.read32(regs::CAP)?;
        let hi = env.read32(regs::CAP + 4)?;
        assert_eq!((u64::from(hi) << 32) | u64::from(lo), full);
        Ok(())
    })
}

#[test]
fn csr_errors_are_reported_and_change_nothing() -> Result<(), TestFailure> {
    run_test("csr_errors", SEED, |env| {
        // Misaligned accesses.
        assert_eq!(
            env.read64(regs::CAP + 4),
            Err(CsrError::Slave {
                op: "read",
                addr: regs::CAP + 4,
                width: Width::W64
            })
        );
        assert!(matches!(
            env.read32(regs::VER + 2),
            Err(CsrError::Slave { .. })
        ));
        // No register at 0x028 (register-based context invalidation is not offered in
        // scalable mode), nor past the last fault record.
        assert!(matches!(env.read64(0x028), Err(CsrError::Slave { .. })));
        assert!(matches!(
            env.write64(0x028, !0),
            Err(CsrError::Slave { .. })
        ));
        assert!(matches!(env.read32(0xff0), Err(CsrError::Slave { .. })));
        // A 64-bit access that covers one unmapped half is refused as a whole.
        assert!(matches!(
            env.write64(0x030, !0),
            Err(CsrError::Slave { .. })
        ));
        assert_eq!(
            env.read32(regs::FSTS)?,
            0,
            "refused write must not touch FSTS"
        );
        // Offsets beyond the 4 KiB register page never reach the bus.
        assert_eq!(
            env.read32(0x1000),
            Err(CsrError::OutOfRange { addr: 0x1000 })
        );
        // A misaligned write does not land in the neighbouring register.
        assert!(env.write64(regs::RTADDR + 4, 0x1234_5000).is_err());
        assert_eq!(env.read64(regs::RTADDR)?, 0);
        Ok(())
    })
}

#[test]
fn writable_registers_keep_what_is_written() -> Result<(), TestFailure> {
    run_test("writable_registers", SEED, |env| {
        // RTADDR: bits 47:12 and TTM (11:10); 9:0 and 63:48 are reserved and read 0.
        env.write64(regs::RTADDR, 0xffff_ffff_ffff_ffff)?;
        assert_eq!(env.read64(regs::RTADDR)?, 0x0000_ffff_ffff_fc00);
        env.write32(regs::RTADDR, 0x0000_0400)?;
        assert_eq!(
            env.read64(regs::RTADDR)?,
            0x0000_ffff_0000_0400,
            "32-bit write changes one half"
        );
        // IQA: base 47:12, DW 11, QS 2:0.
        env.write64(regs::IQA, 0xffff_ffff_ffff_ffff)?;
        assert_eq!(env.read64(regs::IQA)?, 0x0000_ffff_ffff_f807);
        env.write64(regs::IQT, 0xffff_ffff_ffff_ffff)?;
        assert_eq!(env.read64(regs::IQT)?, 0x7fff0, "IQT: bits 18:4");
        // Read-only registers ignore writes.
        env.write32(regs::VER, 0xdead_beef)?;
        assert_eq!(env.read32(regs::VER)?, 0x10);
        env.write64(regs::IQH, 0xfff0)?;
        assert_eq!(env.read64(regs::IQH)?, 0);
        // Event registers.
        env.write32(regs::FEDATA, 0x4021)?;
        env.write32(regs::FEADDR, 0xfee0_0003)?;
        assert_eq!(env.read32(regs::FEDATA)?, 0x4021);
        assert_eq!(
            env.read32(regs::FEADDR)?,
            0xfee0_0000,
            "FEADDR bits 1:0 are reserved"
        );
        env.write32(regs::FECTL, 0)?;
        assert_eq!(env.read32(regs::FECTL)?, 0);
        assert!(!env.out.fault_irq, "no interrupt without a pending fault");
        Ok(())
    })
}

#[test]
fn gcmd_gsts_handshakes() -> Result<(), TestFailure> {
    run_test("gcmd_handshakes", SEED, |env| {
        // Set the root-table pointer: GSTS.RTPS follows the one-shot SRTP.
        env.write64(regs::RTADDR, 0x0000_0012_3450_0400)?;
        env.write32(regs::GCMD, regs::GCMD_SRTP)?;
        env.poll32(regs::GSTS, regs::GCMD_SRTP, regs::GCMD_SRTP, 64)?;
        // Enable QI, then translation, the way Linux does: status | new bit.
        let sts = env.read32(regs::GSTS)? & (regs::GCMD_TE | regs::GCMD_QIE);
        env.write32(regs::GCMD, sts | regs::GCMD_QIE)?;
        env.poll32(regs::GSTS, regs::GCMD_QIE, regs::GCMD_QIE, 64)?;
        let sts = env.read32(regs::GSTS)? & (regs::GCMD_TE | regs::GCMD_QIE);
        env.write32(regs::GCMD, sts | regs::GCMD_TE)?;
        env.poll32(regs::GSTS, regs::GCMD_TE, regs::GCMD_TE, 64)?;
        assert_eq!(
            env.read32(regs::GSTS)?,
            regs::GCMD_TE | regs::GCMD_SRTP | regs::GCMD_QIE
        );
        // A new SRTP clears RTPS until the new pointer is latched.
        env.write32(regs::GCMD, regs::GCMD_TE | regs::GCMD_QIE | regs::GCMD_SRTP)?;
        env.poll32(regs::GSTS, regs::GCMD_SRTP, regs::GCMD_SRTP, 64)?;
        // Disable translation, then QI.
        env.write32(regs::GCMD, regs::GCMD_QIE)?;
        env.poll32(regs::GSTS, regs::GCMD_TE, 0, 64)?;
        env.write32(regs::GCMD, 0)?;
        env.poll32(regs::GSTS, regs::GCMD_QIE, 0, 64)?;
        // FSTS stayed clean throughout.
        assert_eq!(
            env.read32(regs::FSTS)? & (regs::FSTS_PFO | regs::FSTS_PPF | regs::FSTS_IQE),
            0
        );
        Ok(())
    })
}

#[test]
fn reset_randomization_does_not_change_register_values() -> Result<(), TestFailure> {
    let seen = std::cell::RefCell::new(Vec::new());
    for seed in [1u64, 2, 0xdead_beef, 0x1234_5678_9abc] {
        run_test("reset_randomization_regs", seed, |env| {
            let mut v = Vec::new();
            for r in [
                regs::VER,
                regs::GSTS,
                regs::FSTS,
                regs::FECTL,
                regs::ICS,
                regs::IECTL,
                regs::MALFORMED,
            ] {
                v.push(u64::from(env.read32(r)?));
            }
            for r in [
                regs::CAP,
                regs::ECAP,
                regs::RTADDR,
                regs::IQH,
                regs::IQT,
                regs::IQA,
                regs::IQER,
            ] {
                v.push(env.read64(r)?);
            }
            let mut seen = seen.borrow_mut();
            if let Some(first) = seen.first() {
                anyhow::ensure!(
                    &v == first,
                    "seed {seed:#x} reads {v:x?}, seed 1 read {first:x?}"
                );
            } else {
                seen.push(v);
            }
            Ok(())
        })?;
    }
    Ok(())
}
