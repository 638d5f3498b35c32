//! The register map of the DUT, defined once for the model, the testbench and the vectors
//! (docs/contract.md section 2.4; VT-d chapter 11 "Register Descriptions"; Linux
//! drivers/iommu/intel/iommu.h `DMAR_*_REG`, `cap_*()` and `ecap_*()`). The RTL's copy in
//! `rtl/iommu_pkg.sv` is checked against [`REGISTERS`] by the testbench's register tests.
//!
//! [`CAP_VALUE`] and [`ECAP_VALUE`] are what the DUT advertises: exactly the implemented
//! subset, at the VT-d bit positions. The driver model decodes them with [`Caps`] instead
//! of assuming.
//!
//! **Register model.** Each [`RegDef`] lists its [`Field`]s with their [`Access`] (RO, RW,
//! RW1C, WO command bits that read 0; bits no field covers are reserved) and reset value, as
//! a UVM register model states them; [`instances`] adds the fault recording registers. The
//! testbench's `tests/rtl/reg_model.rs` derives every expectation from these tables
//! ([`RegDef::after_write`], [`RegDef::reset_value`]). Implementation choices VT-d leaves
//! open: FEDATA/IEDATA keep all 32 bits and FEUADDR/IEUADDR are writable although ECAP.EIM
//! is 0 (VT-d: "may" be RsvdZ); IQER.IQEI reads 0 again once software clears FSTS.IQE
//! (VT-d defines it only while IQE is set); the fault records' payload has no reset value
//! (defined only while F is set).

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

impl Width {
    /// Number of bits.
    pub const fn bits(self) -> u32 {
        match self {
            Width::W32 => 32,
            Width::W64 => 64,
        }
    }
    /// All bits of a register of this width.
    pub const fn mask(self) -> u64 {
        match self {
            Width::W32 => 0xFFFF_FFFF,
            Width::W64 => u64::MAX,
        }
    }
}

/// How software may access a field (VT-d 11.1 "Register Attributes", as a UVM RAL model
/// states them). Bits that no [`Field`] covers are reserved: they read 0 and ignore writes
/// (VT-d RsvdZ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read-only: writes are ignored (VT-d RO, ROS).
    Ro,
    /// Read-write: reads return what was last written (VT-d RW).
    Rw,
    /// Read, write 1 to clear: writing 0 leaves the bit alone (VT-d RW1C, RW1CS).
    Rw1c,
    /// Write-only command: a write acts, a read returns 0 (VT-d WO; GCMD).
    Wo,
    /// Reserved: reads 0, writes are ignored (VT-d RsvdZ). Never listed in a table; what
    /// [`RegDef::access`] says of a bit no field covers.
    Rsvd,
}

/// One field of a register: bits `lsb .. lsb + width`, how software may access them, and
/// the value after reset (`None`: not defined by reset, e.g. a fault record's payload,
/// which only its F bit qualifies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub lsb: u32,
    pub width: u32,
    pub access: Access,
    pub reset: Option<u64>,
    /// Hardware changes the field by itself (status, pointers, counters), so a value read
    /// is only stable while the unit is idle (UVM "volatile").
    pub volatile: bool,
}

const fn ones(width: u32) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

impl Field {
    /// The field's bits within the register.
    pub const fn mask(&self) -> u64 {
        ones(self.width) << self.lsb
    }
    /// The field's value within register value `v`.
    pub const fn get(&self, v: u64) -> u64 {
        (v >> self.lsb) & ones(self.width)
    }
}

/// A read-only field whose value is the constant `reg_value`'s bits (CAP, ECAP, VER).
const fn konst(name: &'static str, lsb: u32, width: u32, reg_value: u64) -> Field {
    Field {
        name,
        lsb,
        width,
        access: Access::Ro,
        reset: Some((reg_value >> lsb) & ones(width)),
        volatile: false,
    }
}

/// A field with a defined reset value that only software changes.
const fn fld(name: &'static str, lsb: u32, width: u32, access: Access, reset: u64) -> Field {
    Field {
        name,
        lsb,
        width,
        access,
        reset: Some(reset),
        volatile: false,
    }
}

/// A field hardware updates by itself (status), with its reset value.
const fn status(name: &'static str, lsb: u32, width: u32, access: Access, reset: u64) -> Field {
    Field {
        name,
        lsb,
        width,
        access,
        reset: Some(reset),
        volatile: true,
    }
}

/// A read-only status field without a reset value (fault record payload).
const fn payload(name: &'static str, lsb: u32, width: u32) -> Field {
    Field {
        name,
        lsb,
        width,
        access: Access::Ro,
        reset: None,
        volatile: true,
    }
}

/// One register of the file by name, with its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegDef {
    pub name: &'static str,
    pub offset: u64,
    pub width: Width,
    pub fields: &'static [Field],
}

const fn r32(name: &'static str, offset: u64, fields: &'static [Field]) -> RegDef {
    RegDef {
        name,
        offset,
        width: Width::W32,
        fields,
    }
}

const fn r64(name: &'static str, offset: u64, fields: &'static [Field]) -> RegDef {
    RegDef {
        name,
        offset,
        width: Width::W64,
        fields,
    }
}

impl RegDef {
    fn mask_of(&self, pick: impl Fn(&Field) -> bool) -> u64 {
        self.fields
            .iter()
            .filter(|f| pick(f))
            .fold(0, |m, f| m | f.mask())
    }
    /// Bits software can write and read back.
    pub fn rw_mask(&self) -> u64 {
        self.mask_of(|f| f.access == Access::Rw)
    }
    /// Write-1-to-clear bits.
    pub fn rw1c_mask(&self) -> u64 {
        self.mask_of(|f| f.access == Access::Rw1c)
    }
    /// Read-only bits (hardware's, or constants).
    pub fn ro_mask(&self) -> u64 {
        self.mask_of(|f| f.access == Access::Ro)
    }
    /// Write-only command bits (read as 0).
    pub fn wo_mask(&self) -> u64 {
        self.mask_of(|f| f.access == Access::Wo)
    }
    /// Reserved bits: no field covers them (and write-only bits, which read 0 too, are not
    /// counted here).
    pub fn reserved_mask(&self) -> u64 {
        !self.mask_of(|_| true) & self.width.mask()
    }
    /// Bits that always read 0: reserved and write-only.
    pub fn reads_zero_mask(&self) -> u64 {
        self.reserved_mask() | self.wo_mask()
    }
    /// Bits whose reset value is defined (reserved and write-only bits read 0 from reset).
    pub fn reset_mask(&self) -> u64 {
        self.mask_of(|f| f.reset.is_some()) | self.reads_zero_mask()
    }
    /// The value after reset, on the bits of [`RegDef::reset_mask`].
    pub fn reset_value(&self) -> u64 {
        self.fields
            .iter()
            .filter(|f| f.access != Access::Wo)
            .fold(0, |v, f| {
                v | f.reset.map_or(0, |r| (r & ones(f.width)) << f.lsb)
            })
    }
    /// How software may access bit `bit`.
    pub fn access(&self, bit: u32) -> Access {
        self.fields
            .iter()
            .find(|f| bit >= f.lsb && bit < f.lsb + f.width)
            .map_or(Access::Rsvd, |f| f.access)
    }
    /// The field called `name` (case-insensitive).
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
    /// What a read returns after software wrote `written` over a register that read `before`
    /// (nothing else happening): RW bits take the written value, RW1C bits clear where 1 was
    /// written, read-only bits keep their value, write-only and reserved bits read 0.
    pub fn after_write(&self, before: u64, written: u64) -> u64 {
        let w = written & self.width.mask();
        (w & self.rw_mask()) | (before & self.ro_mask()) | (before & !w & self.rw1c_mask())
    }
}

use Access::{Ro, Rw, Rw1c, Wo};

const VER_FIELDS: &[Field] = &[
    konst("MIN", 0, 4, VER_VALUE as u64),
    konst("MAX", 4, 4, VER_VALUE as u64),
];

/// CAP (VT-d 11.4.2): every architected field, at the value the unit advertises.
const CAP_FIELDS: &[Field] = &[
    konst("ND", 0, 3, CAP_VALUE),
    konst("AFL", 3, 1, CAP_VALUE),
    konst("RWBF", 4, 1, CAP_VALUE),
    konst("PLMR", 5, 1, CAP_VALUE),
    konst("PHMR", 6, 1, CAP_VALUE),
    konst("CM", 7, 1, CAP_VALUE),
    konst("SAGAW", 8, 5, CAP_VALUE),
    konst("MGAW", 16, 6, CAP_VALUE),
    konst("ZLR", 22, 1, CAP_VALUE),
    konst("FRO", 24, 10, CAP_VALUE),
    konst("SLLPS", 34, 4, CAP_VALUE),
    konst("PSI", 39, 1, CAP_VALUE),
    konst("NFR", 40, 8, CAP_VALUE),
    konst("MAMV", 48, 6, CAP_VALUE),
    konst("DWD", 54, 1, CAP_VALUE),
    konst("DRD", 55, 1, CAP_VALUE),
    konst("FL1GP", 56, 1, CAP_VALUE),
    konst("PI", 59, 1, CAP_VALUE),
    konst("FL5LP", 60, 1, CAP_VALUE),
    konst("ECMDS", 61, 1, CAP_VALUE),
    konst("ESIRTPS", 62, 1, CAP_VALUE),
    konst("ESRTPS", 63, 1, CAP_VALUE),
];

/// ECAP (VT-d 11.4.3): every architected field, at the value the unit advertises.
const ECAP_FIELDS: &[Field] = &[
    konst("C", 0, 1, ECAP_VALUE),
    konst("QI", 1, 1, ECAP_VALUE),
    konst("DT", 2, 1, ECAP_VALUE),
    konst("IR", 3, 1, ECAP_VALUE),
    konst("EIM", 4, 1, ECAP_VALUE),
    konst("PT", 6, 1, ECAP_VALUE),
    konst("SC", 7, 1, ECAP_VALUE),
    konst("IRO", 8, 10, ECAP_VALUE),
    konst("MHMV", 20, 4, ECAP_VALUE),
    konst("MTS", 25, 1, ECAP_VALUE),
    konst("NEST", 26, 1, ECAP_VALUE),
    konst("PRS", 29, 1, ECAP_VALUE),
    konst("ERS", 30, 1, ECAP_VALUE),
    konst("SRS", 31, 1, ECAP_VALUE),
    konst("NWFS", 33, 1, ECAP_VALUE),
    konst("EAFS", 34, 1, ECAP_VALUE),
    konst("PSS", 35, 5, ECAP_VALUE),
    konst("PASID", 40, 1, ECAP_VALUE),
    konst("DIT", 41, 1, ECAP_VALUE),
    konst("PDS", 42, 1, ECAP_VALUE),
    konst("SMTS", 43, 1, ECAP_VALUE),
    konst("VCS", 44, 1, ECAP_VALUE),
    konst("SLADS", 45, 1, ECAP_VALUE),
    konst("SLTS", 46, 1, ECAP_VALUE),
    konst("FLTS", 47, 1, ECAP_VALUE),
    konst("SMPWCS", 48, 1, ECAP_VALUE),
    konst("RPS", 49, 1, ECAP_VALUE),
];

/// GCMD (VT-d 11.4.4): commands, read as 0. TE and QIE are levels (software writes the
/// status with one bit changed), SRTP a one-shot that latches RTADDR. The other VT-d
/// commands (SFL, EAFL, WBF, IRE, SIRTP, CFI) are not implemented: reserved.
const GCMD_FIELDS: &[Field] = &[
    fld("QIE", 26, 1, Wo, 0),
    fld("SRTP", 30, 1, Wo, 0),
    fld("TE", 31, 1, Wo, 0),
];

/// GSTS (VT-d 11.4.5): the status the commands lead to, once the datapath is idle.
const GSTS_FIELDS: &[Field] = &[
    status("QIES", 26, 1, Ro, 0),
    status("RTPS", 30, 1, Ro, 0),
    status("TES", 31, 1, Ro, 0),
];

/// RTADDR (VT-d 11.4.6): bits 63:48 are above the host address width (not implemented).
const RTADDR_FIELDS: &[Field] = &[fld("TTM", 10, 2, Rw, 0), fld("RTA", 12, 36, Rw, 0)];

/// FSTS (VT-d 11.4.7.1). ITE 6: a device-TLB invalidation timed out (docs/contract.md
/// 6.5). ICE 5 (invalidation completion error, for an Invalidate Completion the unit did
/// not expect) is reserved: the unit ignores such completions.
const FSTS_FIELDS: &[Field] = &[
    status("PFO", 0, 1, Rw1c, 0),
    status("PPF", 1, 1, Ro, 0),
    status("IQE", 4, 1, Rw1c, 0),
    status("ITE", 6, 1, Rw1c, 0),
    status("FRI", 8, 8, Ro, 0),
];

/// FECTL / IECTL (VT-d 11.4.7.2, 11.4.9.5): IM set at reset, IP read-only.
const EVENT_CTL_FIELDS: &[Field] = &[status("IP", 30, 1, Ro, 0), fld("IM", 31, 1, Rw, 1)];
/// FEDATA / IEDATA: 16-bit message data and the extended (upper) 16 bits, both kept.
const EVENT_DATA_FIELDS: &[Field] = &[fld("IMD", 0, 16, Rw, 0), fld("EIMD", 16, 16, Rw, 0)];
/// FEADDR / IEADDR: message address, DWORD aligned (1:0 reserved).
const EVENT_ADDR_FIELDS: &[Field] = &[fld("MA", 2, 30, Rw, 0)];
/// FEUADDR / IEUADDR: upper message address.
const EVENT_UADDR_FIELDS: &[Field] = &[fld("MUA", 0, 32, Rw, 0)];

/// IQH (VT-d 11.4.9.1): descriptor index << 5, advanced by hardware.
const IQH_FIELDS: &[Field] = &[status("QH", 4, 15, Ro, 0)];
/// IQT (VT-d 11.4.9.2): descriptor index << 5.
const IQT_FIELDS: &[Field] = &[fld("QT", 4, 15, Rw, 0)];
/// IQA (VT-d 11.4.9.3): bits 63:48 are above the host address width (not implemented).
const IQA_FIELDS: &[Field] = &[
    fld("QS", 0, 3, Rw, 0),
    fld("DW", 11, 1, Rw, 0),
    fld("IQA", 12, 36, Rw, 0),
];
/// ICS (VT-d 11.4.9.4).
const ICS_FIELDS: &[Field] = &[status("IWC", 0, 1, Rw1c, 0)];
/// IQER (VT-d 11.4.9.9): read-only; ITESID/ICESID belong to the device TLB (reserved).
const IQER_FIELDS: &[Field] = &[status("IQEI", 0, 4, Ro, 0)];
/// Implementation-specific malformed-TLP counter.
const MALFORMED_FIELDS: &[Field] = &[status("COUNT", 0, 32, Ro, 0)];

/// Fault recording register, low quadword (VT-d 11.4.14): the faulting page.
const FRCD_QW0_FIELDS: &[Field] = &[payload("FI", 12, 52)];
/// Fault recording register, high quadword: everything but F is read-only and defined only
/// while F = 1.
const FRCD_QW1_FIELDS: &[Field] = &[
    payload("SID", 0, 16),
    payload("PRIV", 29, 1),
    payload("EXE", 30, 1),
    payload("PP", 31, 1),
    payload("FR", 32, 8),
    payload("PV", 40, 20),
    payload("T", 62, 1),
    status("F", 63, 1, Rw1c, 0),
];

/// The two quadwords of fault recording register `i` (offsets relative to [`frcd()`]).
pub const FRCD_QW0: RegDef = r64("FRCD.QW0", 0, FRCD_QW0_FIELDS);
pub const FRCD_QW1: RegDef = r64("FRCD.QW1", 8, FRCD_QW1_FIELDS);

/// Every named register the DUT implements, with its fields (the fault recording registers
/// follow at [`FRCD_OFFSET`], [`FRCD_COUNT`] of them, 16 bytes each: [`FRCD_QW0`] and
/// [`FRCD_QW1`]; [`instances`] lists them all).
pub const REGISTERS: &[RegDef] = &[
    r32("VER", VER, VER_FIELDS),
    r64("CAP", CAP, CAP_FIELDS),
    r64("ECAP", ECAP, ECAP_FIELDS),
    r32("GCMD", GCMD, GCMD_FIELDS),
    r32("GSTS", GSTS, GSTS_FIELDS),
    r64("RTADDR", RTADDR, RTADDR_FIELDS),
    r32("FSTS", FSTS, FSTS_FIELDS),
    r32("FECTL", FECTL, EVENT_CTL_FIELDS),
    r32("FEDATA", FEDATA, EVENT_DATA_FIELDS),
    r32("FEADDR", FEADDR, EVENT_ADDR_FIELDS),
    r32("FEUADDR", FEUADDR, EVENT_UADDR_FIELDS),
    r64("IQH", IQH, IQH_FIELDS),
    r64("IQT", IQT, IQT_FIELDS),
    r64("IQA", IQA, IQA_FIELDS),
    r32("ICS", ICS, ICS_FIELDS),
    r32("IECTL", IECTL, EVENT_CTL_FIELDS),
    r32("IEDATA", IEDATA, EVENT_DATA_FIELDS),
    r32("IEADDR", IEADDR, EVENT_ADDR_FIELDS),
    r32("IEUADDR", IEUADDR, EVENT_UADDR_FIELDS),
    r64("IQER", IQER, IQER_FIELDS),
    r32("MALFORMED", MALFORMED, MALFORMED_FIELDS),
];

/// One register as it sits in the page: a named register, or one quadword of a fault
/// recording register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegInstance {
    pub name: String,
    pub offset: u64,
    pub def: &'static RegDef,
}

/// Every register in the page, in offset order of the table, then the fault records.
pub fn instances() -> Vec<RegInstance> {
    let named = REGISTERS.iter().map(|r| RegInstance {
        name: r.name.to_owned(),
        offset: r.offset,
        def: r,
    });
    let records = (0..FRCD_COUNT).flat_map(|i| {
        [&FRCD_QW0, &FRCD_QW1]
            .into_iter()
            .map(move |d| RegInstance {
                name: format!("FRCD{i}.QW{}", d.offset / 8),
                offset: frcd(i) + d.offset,
                def: d,
            })
    });
    named.chain(records).collect()
}

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
pub const FSTS_ITE: u32 = 1 << 6;
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
/// QI, device TLBs (DT: ATS Translation Requests and translated requests, and the queue
/// executes device-TLB invalidations, docs/contract.md section 6), pass-through, execute and
/// supervisor requests (the ERE/SRE checks are implemented; Linux sets neither), 20-bit
/// PASIDs, scalable mode, first- and second-stage.
/// No nesting, no page requests, no register-based invalidation.
pub const ECAP_VALUE: u64 = ecap::C
    | ecap::QI
    | ecap::DT
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
    /// The hardware behind these registers executes device-TLB invalidation descriptors
    /// (types 3 and 8). Architecturally ECAP.DT = 1 says so; a backend whose queue cannot
    /// execute them clears this ([`Caps::with_dev_tlb_invalidation`]), so the driver sends
    /// it none.
    dev_tlb_inval: bool,
}

impl Caps {
    pub fn new(cap: u64, ecap: u64) -> Self {
        Self {
            cap,
            ecap,
            dev_tlb_inval: true,
        }
    }
    /// The same registers on hardware that does (`true`) or does not execute descriptor
    /// types 3 and 8.
    pub fn with_dev_tlb_invalidation(self, executes: bool) -> Self {
        Self {
            dev_tlb_inval: executes,
            ..self
        }
    }
    /// ECAP.DT = 1 on hardware whose queue executes device-TLB invalidations: the driver
    /// enables ATS on a device (Linux `info->ats_enabled`: device-TLB cache tags and their
    /// flushes) only when this holds. The context entry's DTE follows ECAP.DT alone.
    pub fn dev_tlb_usable(&self) -> bool {
        self.dev_tlb() && self.dev_tlb_inval
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
        assert!(!c.caching_mode() && c.dev_tlb() && c.dev_tlb_usable());
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
    fn register_table_is_consistent() {
        for r in instances() {
            let d = r.def;
            let mut seen = 0u64;
            for f in d.fields {
                assert!(
                    f.width > 0 && f.lsb + f.width <= d.width.bits(),
                    "{}.{}",
                    r.name,
                    f.name
                );
                assert_eq!(
                    seen & f.mask(),
                    0,
                    "{}.{} overlaps another field",
                    r.name,
                    f.name
                );
                seen |= f.mask();
                if let Some(v) = f.reset {
                    assert_eq!(
                        v >> f.width.min(63),
                        0,
                        "{}.{} reset too wide",
                        r.name,
                        f.name
                    );
                }
            }
            let parts = d.rw_mask() | d.rw1c_mask() | d.ro_mask() | d.wo_mask();
            assert_eq!(parts | d.reserved_mask(), d.width.mask(), "{}", r.name);
            assert_eq!(parts & d.reserved_mask(), 0, "{}", r.name);
        }
        // Constants the rest of the crate uses agree with the table.
        let field = |reg: &str, f: &str| {
            by_name(reg)
                .and_then(|r| r.field(f))
                .map(|f| f.mask())
                .unwrap_or(0)
        };
        assert_eq!(field("GCMD", "TE") as u32, GCMD_TE);
        assert_eq!(field("GCMD", "SRTP") as u32, GCMD_SRTP);
        assert_eq!(field("GCMD", "QIE") as u32, GCMD_QIE);
        assert_eq!(field("FSTS", "PFO") as u32, FSTS_PFO);
        assert_eq!(field("FSTS", "PPF") as u32, FSTS_PPF);
        assert_eq!(field("FSTS", "IQE") as u32, FSTS_IQE);
        assert_eq!(field("FSTS", "FRI") as u32, FSTS_FRI_MASK);
        assert_eq!(field("FECTL", "IM") as u32, FECTL_IM);
        assert_eq!(field("FECTL", "IP") as u32, FECTL_IP);
        assert_eq!(field("ICS", "IWC") as u32, ICS_IWC);
        assert_eq!(field("RTADDR", "TTM"), RTADDR_TTM_MASK);
        assert_eq!(field("IQA", "DW"), IQA_DW);
        assert_eq!(field("IQA", "QS"), IQA_QS_MASK);
        assert_eq!(FRCD_QW1.field("F").map(|f| f.mask()), Some(frcd::QW1_F));
        assert_eq!(
            FRCD_QW1.field("FR").map(|f| f.mask()),
            Some(frcd::QW1_FR_MASK)
        );
        assert_eq!(
            FRCD_QW1.field("PV").map(|f| f.mask()),
            Some(frcd::QW1_PASID_MASK)
        );
        // Every advertised capability bit is a named field: the table holds the whole value.
        for (name, v) in [
            ("CAP", CAP_VALUE),
            ("ECAP", ECAP_VALUE),
            ("VER", VER_VALUE.into()),
        ] {
            let r = by_name(name).expect("in the table");
            assert_eq!(r.reset_value(), v, "{name}");
            assert_eq!(r.reset_mask(), r.width.mask(), "{name}");
        }
        assert_eq!(
            by_name("FECTL").map(|r| r.reset_value()),
            Some(u64::from(FECTL_IM))
        );
        assert_eq!(instances().len(), REGISTERS.len() + 2 * FRCD_COUNT as usize);
    }

    #[test]
    fn after_write_follows_the_access_types() {
        let fsts = by_name("FSTS").expect("FSTS");
        let before = u64::from(FSTS_PFO | FSTS_PPF | FSTS_IQE | 3 << FSTS_FRI_SHIFT);
        // Writing 1 to PFO clears it; IQE written 0 stays; PPF and FRI are read-only.
        assert_eq!(
            fsts.after_write(before, u64::from(FSTS_PFO | FSTS_PPF)),
            u64::from(FSTS_PPF | FSTS_IQE | 3 << FSTS_FRI_SHIFT)
        );
        let gcmd = by_name("GCMD").expect("GCMD");
        assert_eq!(gcmd.after_write(0, u64::MAX), 0, "GCMD reads 0");
        let feaddr = by_name("FEADDR").expect("FEADDR");
        assert_eq!(feaddr.after_write(0, 0xfee0_0003), 0xfee0_0000);
        assert_eq!(feaddr.access(0), Access::Rsvd);
        assert_eq!(feaddr.access(2), Access::Rw);
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
