//! Register file through the bridge: reset values, capability fields, CSR bus errors, and the
//! GCMD/GSTS command handshakes (VT-d 10.4.4-10.4.5).

use iommu_tb::env::csr::{fsts, gcmd, reg, Cap, CsrError, Ecap, Width};
use iommu_tb::{run_test, TestFailure};

const SEED: u64 = 0x1d0_5eed;

#[test]
fn reset_values() -> Result<(), TestFailure> {
    run_test("reset_values", SEED, |env| {
        assert_eq!(env.read32(reg::VER)?, 0x10, "VER: version 1.0");
        assert_eq!(
            env.read32(reg::GSTS)?,
            0,
            "GSTS: translation, root pointer and QI all off"
        );
        assert_eq!(env.read64(reg::RTADDR)?, 0);
        assert_eq!(env.read32(reg::FSTS)?, 0, "FSTS: no fault pending");
        assert_eq!(env.read32(reg::FECTL)?, 1 << 31, "FECTL: IM set, IP clear");
        assert_eq!(env.read32(reg::IECTL)?, 1 << 31, "IECTL: IM set, IP clear");
        for r in [reg::IQH, reg::IQT, reg::IQA, reg::IQER] {
            assert_eq!(env.read64(r)?, 0, "register 0x{r:03x}");
        }
        assert_eq!(env.read32(reg::ICS)?, 0);
        assert_eq!(env.read32(reg::MALFORMED)?, 0);
        // No fault record is valid (F, bit 127 of each record) out of reset.
        let cap = Cap::decode(env.read64(reg::CAP)?);
        for i in 0..cap.num_fault_records() {
            let hi = env.read64(cap.frcd_offset(i) + 8)?;
            assert_eq!(hi >> 63, 0, "FRCD{i}.F set out of reset");
        }
        Ok(())
    })
}

#[test]
fn capabilities_advertise_what_is_implemented() -> Result<(), TestFailure> {
    run_test("capabilities", SEED, |env| {
        let cap = Cap::decode(env.read64(reg::CAP)?);
        assert_eq!(cap.nd, 6, "CAP.ND: 16-bit domain IDs");
        assert_eq!(cap.sagaw, 0b00100, "CAP.SAGAW: 4-level tables only");
        assert_eq!(cap.mgaw, 47, "CAP.MGAW: 48-bit guest addresses");
        assert_eq!(
            cap.sllps, 0b0011,
            "CAP.SLLPS: 2 MiB and 1 GiB second-stage pages"
        );
        assert!(cap.psi, "CAP.PSI");
        assert!(cap.fl1gp, "CAP.FL1GP");
        assert_eq!(cap.mamv, 18, "CAP.MAMV: masks up to 1 GiB");
        assert_eq!(
            cap.frcd_offset(0),
            reg::FRCD,
            "CAP.FRO points at the fault records"
        );
        assert!(
            cap.num_fault_records() >= 8,
            "at least 8 fault recording registers"
        );
        let ecap = Ecap::decode(env.read64(reg::ECAP)?);
        assert!(
            ecap.qi && ecap.pass_through && ecap.pasid && ecap.smts,
            "{ecap:?}"
        );
        assert!(
            ecap.fsts && ecap.ssts,
            "first- and second-stage translation: {ecap:?}"
        );
        assert_eq!(ecap.pss, 19, "ECAP.PSS: 20-bit PASIDs");
        // 32-bit halves of a 64-bit register read the same bits.
        let full = env.read64(reg::CAP)?;
        let lo = env.read32(reg::CAP)?;
        let hi = env.read32(reg::CAP + 4)?;
        assert_eq!((u64::from(hi) << 32) | u64::from(lo), full);
        Ok(())
    })
}

#[test]
fn csr_errors_are_reported_and_change_nothing() -> Result<(), TestFailure> {
    run_test("csr_errors", SEED, |env| {
        // Misaligned accesses.
        assert_eq!(
            env.read64(reg::CAP + 4),
            Err(CsrError::Slave {
                op: "read",
                addr: reg::CAP + 4,
                width: Width::W64
            })
        );
        assert!(matches!(
            env.read32(reg::VER + 2),
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
            env.read32(reg::FSTS)?,
            0,
            "refused write must not touch FSTS"
        );
        // Offsets beyond the 4 KiB register page never reach the bus.
        assert_eq!(
            env.read32(0x1000),
            Err(CsrError::OutOfRange { addr: 0x1000 })
        );
        // A misaligned write does not land in the neighbouring register.
        assert!(env.write64(reg::RTADDR + 4, 0x1234_5000).is_err());
        assert_eq!(env.read64(reg::RTADDR)?, 0);
        Ok(())
    })
}

#[test]
fn writable_registers_keep_what_is_written() -> Result<(), TestFailure> {
    run_test("writable_registers", SEED, |env| {
        // RTADDR: bits 47:12 and TTM (11:10); 9:0 and 63:48 are reserved and read 0.
        env.write64(reg::RTADDR, 0xffff_ffff_ffff_ffff)?;
        assert_eq!(env.read64(reg::RTADDR)?, 0x0000_ffff_ffff_fc00);
        env.write32(reg::RTADDR, 0x0000_0400)?;
        assert_eq!(
            env.read64(reg::RTADDR)?,
            0x0000_ffff_0000_0400,
            "32-bit write changes one half"
        );
        // IQA: base 47:12, DW 11, QS 2:0.
        env.write64(reg::IQA, 0xffff_ffff_ffff_ffff)?;
        assert_eq!(env.read64(reg::IQA)?, 0x0000_ffff_ffff_f807);
        env.write64(reg::IQT, 0xffff_ffff_ffff_ffff)?;
        assert_eq!(env.read64(reg::IQT)?, 0x7fff0, "IQT: bits 18:4");
        // Read-only registers ignore writes.
        env.write32(reg::VER, 0xdead_beef)?;
        assert_eq!(env.read32(reg::VER)?, 0x10);
        env.write64(reg::IQH, 0xfff0)?;
        assert_eq!(env.read64(reg::IQH)?, 0);
        // Event registers.
        env.write32(reg::FEDATA, 0x4021)?;
        env.write32(reg::FEADDR, 0xfee0_0003)?;
        assert_eq!(env.read32(reg::FEDATA)?, 0x4021);
        assert_eq!(
            env.read32(reg::FEADDR)?,
            0xfee0_0000,
            "FEADDR bits 1:0 are reserved"
        );
        env.write32(reg::FECTL, 0)?;
        assert_eq!(env.read32(reg::FECTL)?, 0);
        assert!(!env.out.fault_irq, "no interrupt without a pending fault");
        Ok(())
    })
}

#[test]
fn gcmd_gsts_handshakes() -> Result<(), TestFailure> {
    run_test("gcmd_handshakes", SEED, |env| {
        // Set the root-table pointer: GSTS.RTPS follows the one-shot SRTP.
        env.write64(reg::RTADDR, 0x0000_0012_3450_0400)?;
        env.write32(reg::GCMD, gcmd::SRTP)?;
        env.poll32(reg::GSTS, gcmd::SRTP, gcmd::SRTP, 64)?;
        // Enable QI, then translation, the way Linux does: status | new bit.
        let sts = env.read32(reg::GSTS)? & (gcmd::TE | gcmd::QIE);
        env.write32(reg::GCMD, sts | gcmd::QIE)?;
        env.poll32(reg::GSTS, gcmd::QIE, gcmd::QIE, 64)?;
        let sts = env.read32(reg::GSTS)? & (gcmd::TE | gcmd::QIE);
        env.write32(reg::GCMD, sts | gcmd::TE)?;
        env.poll32(reg::GSTS, gcmd::TE, gcmd::TE, 64)?;
        assert_eq!(env.read32(reg::GSTS)?, gcmd::TE | gcmd::SRTP | gcmd::QIE);
        // A new SRTP clears RTPS until the new pointer is latched.
        env.write32(reg::GCMD, gcmd::TE | gcmd::QIE | gcmd::SRTP)?;
        env.poll32(reg::GSTS, gcmd::SRTP, gcmd::SRTP, 64)?;
        // Disable translation, then QI.
        env.write32(reg::GCMD, gcmd::QIE)?;
        env.poll32(reg::GSTS, gcmd::TE, 0, 64)?;
        env.write32(reg::GCMD, 0)?;
        env.poll32(reg::GSTS, gcmd::QIE, 0, 64)?;
        // FSTS stayed clean throughout.
        assert_eq!(
            env.read32(reg::FSTS)? & (fsts::PFO | fsts::PPF | fsts::IQE),
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
                reg::VER,
                reg::GSTS,
                reg::FSTS,
                reg::FECTL,
                reg::ICS,
                reg::IECTL,
                reg::MALFORMED,
            ] {
                v.push(u64::from(env.read32(r)?));
            }
            for r in [
                reg::CAP,
                reg::ECAP,
                reg::RTADDR,
                reg::IQH,
                reg::IQT,
                reg::IQA,
                reg::IQER,
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
