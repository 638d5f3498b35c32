//! The register map of the DUT, defined once for the model, the testbench and the vectors
//! (docs/contract.md section 2.4; VT-d chapter 11 "Register Descriptions"; Linux
//! drivers/iommu/intel/iommu.h `DMAR_*_REG`, `cap_*()` and `ecap_*()`). The RTL's copy in
//! `rtl/iommu_pkg.sv` is checked against [`REGISTERS`] by the testbench's register tests.
//!
//! [`CAP_VALUE`] and [`ECAP_VALUE`] are what the DUT advertises: exactly the implemented
//! subset, at the VT-d bit positions. The driver model decodes them with [`Caps`] instead
//! of assuming.

pub const VER: u64 = 0x00;
pub const CAP: u64 = 0x08;
pub const ECAP: u64 = 0x10;
pub const GCMD: u64 = 0x18;
pub const GSTS: u64 = 0x1C;
pub const RTADDR: u64 = 0x20;
pub const FSTS: u64 = 0x34;
pub const FECTL: u64 = 0x38;
pub const IQH: u64 = 0x80;
pub const IQT: u64 = 0x88;
pub const IQA: u64 = 0x90;
pub const ICS: u64 = 0x9C;
pub const IQER: u64 = 0xB0;
pub const FEDATA: u64 = 0x3C;
pub const FEADDR: u64 = 0x40;
pub const FEUADDR: u64 = 0x44;
pub const IECTL: u64 = 0xA0;
pub const IEDATA: u64 = 0xA4;
pub const IEADDR: u64 = 0xA8;
pub const IEUADDR: u64 = 0xAC;
/// Implementation-specific: malformed TLPs rejected at ingress (read-only, 32-bit).
pub const MALFORMED: u64 = 0x1F0;
/// Size of the register page; offsets at or above it are outside the register file.
pub const PAGE: u64 = 0x1000;

/// Access width of a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    W32,
    W64,
}

/// One register of the file by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegDef {
    pub name: &'static str,
    pub offset: u64,
    pub width: Width,
}

const fn r32(name: &'static str, offset: u64) -> RegDef {
    RegDef {
        name,
        offset,
        width: Width::W32,
    }
}

const fn r64(name: &'static str, offset: u64) -> RegDef {
    RegDef {
        name,
        offset,
        width: Width::W64,
    }
}

/// Every named register the DUT implements (the fault recording registers follow at
/// [`FRCD_OFFSET`], [`FRCD_COUNT`] of them, 16 bytes each).
pub const REGISTERS: &[RegDef] = &[
    r32("VER", VER),
    r64("CAP", CAP),
    r64("ECAP", ECAP),
    r32("GCMD", GCMD),
    r32("GSTS", GSTS),
    r64("RTADDR", RTADDR),
    r32("FSTS", FSTS),
    r32("FECTL", FECTL),
    r32("FEDATA", FEDATA),
    r32("FEADDR", FEADDR),
    r32("FEUADDR", FEUADDR),
    r64("IQH", IQH),
    r64("IQT", IQT),
    r64("IQA", IQA),
    r32("ICS", ICS),
    r32("IECTL", IECTL),
    r32("IEDATA", IEDATA),
    r32("IEADDR", IEADDR),
    r32("IEUADDR", IEUADDR),
    r64("IQER", IQER),
    r32("MALFORMED", MALFORMED),
];

/// The register called `name` (case-insensitive).
pub fn by_name(name: &str) -> Option<&'static RegDef> {
    REGISTERS.iter().find(|r| r.name.eq_ignore_ascii_case(name))
}

/// The register at `offset`.
pub fn by_offset(offset: u64) -> Option<&'static RegDef> {
    REGISTERS.iter().find(|r| r.offset == offset)
}

/// Byte offset of fault recording register `i` (the DUT's FRO).
pub fn frcd(i: u32) -> u64 {
    FRCD_OFFSET + 16 * u64::from(i)
}

/// VER: major 1, minor 0 (bits 7:4 major, 3:0 minor).
pub const VER_VALUE: u32 = 0x10;

/// GCMD / GSTS bits.
pub const GCMD_TE: u32 = 1 << 31;
pub const GCMD_SRTP: u32 = 1 << 30;
pub const GCMD_QIE: u32 = 1 << 26;
pub const GSTS_TES: u32 = GCMD_TE;
pub const GSTS_RTPS: u32 = GCMD_SRTP;
pub const GSTS_QIES: u32 = GCMD_QIE;

/// RTADDR.TTM (bits 11:10); 01b is scalable mode, the only one implemented.
pub const RTADDR_TTM_SHIFT: u32 = 10;
pub const RTADDR_TTM_MASK: u64 = 0b11 << RTADDR_TTM_SHIFT;
pub const RTADDR_TTM_SCALABLE: u64 = 0b01 << RTADDR_TTM_SHIFT;
pub const RTADDR_PTR_MASK: u64 = !0xFFF;

/// FSTS bits.
pub const FSTS_PFO: u32 = 1 << 0;
pub const FSTS_PPF: u32 = 1 << 1;
pub const FSTS_IQE: u32 = 1 << 4;
pub const FSTS_FRI_SHIFT: u32 = 8;
pub const FSTS_FRI_MASK: u32 = 0xFF << FSTS_FRI_SHIFT;

/// FECTL bits.
pub const FECTL_IM: u32 = 1 << 31;
pub const FECTL_IP: u32 = 1 << 30;

/// IQA: QS 2:0 (queue has 2^(QS+8) 128-bit slots, i.e. 2^(QS+7) 256-bit descriptors),
/// DW 11 (256-bit descriptors), base 63:12.
pub const IQA_QS_MASK: u64 = 0x7;
pub const IQA_DW: u64 = 1 << 11;
pub const IQA_BASE_MASK: u64 = !0xFFF;
/// IQT/IQH hold the descriptor index shifted left by 5 for 256-bit descriptors.
pub const IQ_INDEX_SHIFT: u32 = 5;
/// ICS.IWC.
pub const ICS_IWC: u32 = 1 << 0;

/// IQA value for a queue at `base` (4 KiB aligned) with 2^(qs+7) 256-bit descriptors.
pub fn iqa_value(base: u64, qs: u8) -> u64 {
    (base & IQA_BASE_MASK) | IQA_DW | u64::from(qs) & IQA_QS_MASK
}

/// Number of 256-bit descriptors a queue with size field `qs` holds.
pub fn iq_entries(qs: u8) -> u32 {
    1 << (u32::from(qs & 7) + 7)
}

/// IQT/IQH value for descriptor `index`.
pub fn iq_offset(index: u32) -> u64 {
    u64::from(index) << IQ_INDEX_SHIFT
}

/// Fault recording register layout (16 bytes each at CAP.FRO * 16).
pub mod frcd {
    /// QW0 63:12: faulting page address.
    pub const QW0_ADDR_MASK: u64 = !0xFFF;
    pub const QW1_SID_MASK: u64 = 0xFFFF;
    pub const QW1_PRIV: u64 = 1 << 29;
    pub const QW1_EXE: u64 = 1 << 30;
    pub const QW1_PP: u64 = 1 << 31;
    pub const QW1_FR_SHIFT: u32 = 32;
    pub const QW1_FR_MASK: u64 = 0xFF << QW1_FR_SHIFT;
    pub const QW1_PASID_SHIFT: u32 = 40;
    pub const QW1_PASID_MASK: u64 = 0xF_FFFF << QW1_PASID_SHIFT;
    /// 1 = read request.
    pub const QW1_T: u64 = 1 << 62;
    pub const QW1_F: u64 = 1 << 63;
}

/// CAP fields (VT-d 11.4.2).
pub mod cap {
    pub const ND_SHIFT: u32 = 0;
    pub const CM: u64 = 1 << 7;
    pub const SAGAW_SHIFT: u32 = 8;
    /// SAGAW bit for 4-level (48-bit) tables.
    pub const SAGAW_4LEVEL: u64 = 1 << 2;
    pub const MGAW_SHIFT: u32 = 16;
    pub const FRO_SHIFT: u32 = 24;
    pub const FRO_MASK: u64 = 0x3FF;
    pub const SLLPS_SHIFT: u32 = 34;
    pub const PSI: u64 = 1 << 39;
    pub const NFR_SHIFT: u32 = 40;
    pub const MAMV_SHIFT: u32 = 48;
    pub const DWD: u64 = 1 << 54;
    pub const DRD: u64 = 1 << 55;
    pub const FL1GP: u64 = 1 << 56;
    pub const ESRTPS: u64 = 1 << 63;
}

/// ECAP fields (VT-d 11.4.3).
pub mod ecap {
    pub const C: u64 = 1 << 0;
    pub const QI: u64 = 1 << 1;
    pub const DT: u64 = 1 << 2;
    pub const PT: u64 = 1 << 6;
    pub const IRO_SHIFT: u32 = 8;
    pub const ERS: u64 = 1 << 30;
    pub const SRS: u64 = 1 << 31;
    pub const PSS_SHIFT: u32 = 35;
    pub const PASID: u64 = 1 << 40;
    pub const SMTS: u64 = 1 << 43;
    pub const SLTS: u64 = 1 << 46;
    pub const FLTS: u64 = 1 << 47;
}

/// Fault recording registers start at this offset (CAP.FRO = 0x20).
pub const FRCD_OFFSET: u64 = 0x200;
/// Number of fault recording registers (CAP.NFR + 1); rtl/iommu_regfile.sv `NumFrcd`.
pub const FRCD_COUNT: u32 = 8;
/// Largest address mask (AM) for page-selective invalidations.
pub const MAMV: u64 = 18;

/// What the DUT advertises in CAP (rtl/iommu_pkg.sv `cap_value`): ND=6 (16-bit domain
/// IDs), SAGAW 4-level, MGAW 47 (48-bit), FRO, SLLPS 2 MiB + 1 GiB, PSI, NFR, MAMV 18,
/// FL1GP. CM=0: not-present entries are never cached, so the driver need not flush on
/// not-present to present changes.
pub const CAP_VALUE: u64 = 6 << cap::ND_SHIFT
    | cap::SAGAW_4LEVEL << cap::SAGAW_SHIFT
    | 47 << cap::MGAW_SHIFT
    | (FRCD_OFFSET / 16) << cap::FRO_SHIFT
    | 0b0011 << cap::SLLPS_SHIFT
    | cap::PSI
    | ((FRCD_COUNT as u64) - 1) << cap::NFR_SHIFT
    | MAMV << cap::MAMV_SHIFT
    | cap::FL1GP;

/// What the DUT advertises in ECAP (rtl/iommu_pkg.sv `EcapValue`): coherent table walks,
/// QI, pass-through, execute and supervisor requests (the ERE/SRE checks are
/// implemented; Linux sets neither), 20-bit PASIDs, scalable mode, first- and second-stage.
/// No device TLB (ATS), no nesting, no page requests, no register-based invalidation.
pub const ECAP_VALUE: u64 = ecap::C
    | ecap::QI
    | ecap::PT
    | ecap::ERS
    | ecap::SRS
    | 19 << ecap::PSS_SHIFT
    | ecap::PASID
    | ecap::SMTS
    | ecap::SLTS
    | ecap::FLTS;

/// Decoded capabilities the driver model depends on (Linux `cap_*()` / `ecap_*()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    pub cap: u64,
    pub ecap: u64,
}

impl Caps {
    pub fn new(cap: u64, ecap: u64) -> Self {
        Self { cap, ecap }
    }
    /// Number of domain IDs (`cap_ndoms`).
    pub fn ndoms(&self) -> u32 {
        1 << (4 + 2 * (self.cap & 7) as u32)
    }
    pub fn caching_mode(&self) -> bool {
        self.cap & cap::CM != 0
    }
    pub fn sllps_2m(&self) -> bool {
        self.cap >> cap::SLLPS_SHIFT & 1 != 0
    }
    pub fn sllps_1g(&self) -> bool {
        self.cap >> cap::SLLPS_SHIFT & 2 != 0
    }
    pub fn fl1gp(&self) -> bool {
        self.cap & cap::FL1GP != 0
    }
    pub fn psi(&self) -> bool {
        self.cap & cap::PSI != 0
    }
    pub fn mamv(&self) -> u32 {
        (self.cap >> cap::MAMV_SHIFT & 0x3F) as u32
    }
    pub fn read_drain(&self) -> bool {
        self.cap & cap::DRD != 0
    }
    pub fn write_drain(&self) -> bool {
        self.cap & cap::DWD != 0
    }
    pub fn esrtps(&self) -> bool {
        self.cap & cap::ESRTPS != 0
    }
    pub fn fault_record_offset(&self) -> u64 {
        ((self.cap >> cap::FRO_SHIFT) & cap::FRO_MASK) * 16
    }
    /// Byte offset of fault recording register `i`.
    pub fn fault_record(&self, i: u32) -> u64 {
        self.fault_record_offset() + 16 * u64::from(i)
    }
    /// Number of fault recording registers (`cap_num_fault_regs`: NFR + 1).
    pub fn num_fault_records(&self) -> u32 {
        (self.cap >> cap::NFR_SHIFT & 0xFF) as u32 + 1
    }
    /// Supported adjusted guest address widths (SAGAW bit field).
    pub fn sagaw(&self) -> u32 {
        (self.cap >> cap::SAGAW_SHIFT & 0x1F) as u32
    }
    /// Maximum guest address width minus one (MGAW).
    pub fn mgaw(&self) -> u32 {
        (self.cap >> cap::MGAW_SHIFT & 0x3F) as u32
    }
    /// Second-stage large page support (SLLPS: bit 0 2 MiB, bit 1 1 GiB).
    pub fn sllps(&self) -> u32 {
        (self.cap >> cap::SLLPS_SHIFT & 0xF) as u32
    }
    /// Number of domain-ID bits encoding (ND).
    pub fn nd(&self) -> u32 {
        (self.cap & 7) as u32
    }
    pub fn coherent(&self) -> bool {
        self.ecap & ecap::C != 0
    }
    pub fn queued_invalidation(&self) -> bool {
        self.ecap & ecap::QI != 0
    }
    pub fn execute_requests(&self) -> bool {
        self.ecap & ecap::ERS != 0
    }
    pub fn supervisor_requests(&self) -> bool {
        self.ecap & ecap::SRS != 0
    }
    pub fn dev_tlb(&self) -> bool {
        self.ecap & ecap::DT != 0
    }
    pub fn pass_through(&self) -> bool {
        self.ecap & ecap::PT != 0
    }
    /// Number of PASID bits (`ecap_pss + 1`).
    pub fn pasid_bits(&self) -> u32 {
        if self.ecap & ecap::PASID == 0 {
            0
        } else {
            (self.ecap >> ecap::PSS_SHIFT & 0x1F) as u32 + 1
        }
    }
    pub fn scalable(&self) -> bool {
        self.ecap & ecap::SMTS != 0
    }
    pub fn first_stage(&self) -> bool {
        self.ecap & ecap::FLTS != 0
    }
    pub fn second_stage(&self) -> bool {
        self.ecap & ecap::SLTS != 0
    }
}

impl Default for Caps {
    fn default() -> Self {
        Self::new(CAP_VALUE, ECAP_VALUE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_caps_decode_to_the_implemented_subset() {
        let c = Caps::default();
        assert_eq!(c.ndoms(), 65536);
        assert!(c.sllps_2m() && c.sllps_1g() && c.fl1gp() && c.psi());
        assert!(!c.caching_mode() && !c.dev_tlb());
        assert_eq!(c.pasid_bits(), 20);
        assert!(c.scalable() && c.first_stage() && c.second_stage() && c.pass_through());
        assert_eq!(c.fault_record_offset(), FRCD_OFFSET);
        assert_eq!(c.mamv(), MAMV as u32);
        assert_eq!(CAP_VALUE >> cap::MGAW_SHIFT & 0x3F, 47);
        assert_eq!(ECAP_VALUE & (ecap::ERS | ecap::SRS), ecap::ERS | ecap::SRS);
        assert_eq!(
            CAP_VALUE >> cap::NFR_SHIFT & 0xFF,
            u64::from(FRCD_COUNT) - 1
        );
    }

    #[test]
    fn iq_helpers() {
        assert_eq!(iqa_value(0x1234_5000, 0), 0x1234_5000 | 1 << 11);
        assert_eq!(iq_entries(0), 128);
        assert_eq!(iq_offset(3), 0x60);
    }

    #[test]
    fn qemu_reference_values_decode() {
        // QEMU 10 with scalable mode and first stage (docs/contract.md section 2).
        let q = Caps::new(0x01d2008c222f0606, 0x0000890000f00f4a);
        assert!(q.scalable() && q.first_stage());
        assert!(q.fl1gp());
        assert_eq!(q.ndoms(), 65536);
    }
}
