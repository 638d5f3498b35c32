//! Bit layouts of the in-memory structures (docs/contract.md section 2 "In-memory structures";
//! VT-d 4.x sections 9.1-9.9; Linux drivers/iommu/intel/{iommu.h,pasid.h}). Shared by the
//! driver model, which writes them, and the golden walker, which reads them.

/// Address bits 51:12 of a pointer or page frame.
pub const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
/// With a 48-bit host address width, bits 51:48 of any pointer are reserved.
pub const HAW: u32 = 48;
pub const ABOVE_HAW: u64 = 0x000F_0000_0000_0000;

pub mod root {
    pub const PRESENT: u64 = 1;
    /// Bits 11:1 of either half are reserved.
    pub const RSVD: u64 = 0xFFE | super::ABOVE_HAW | 0xFFF0_0000_0000_0000;
}

pub mod context {
    pub const P: u64 = 1 << 0;
    pub const FPD: u64 = 1 << 1;
    pub const DTE: u64 = 1 << 2;
    pub const PASIDE: u64 = 1 << 3;
    pub const PRE: u64 = 1 << 4;
    pub const PDTS_SHIFT: u32 = 9;
    pub const PDTS_MASK: u64 = 0x7 << PDTS_SHIFT;
    /// QW0 reserved: 8:5 and the pointer bits above the host address width.
    pub const QW0_RSVD: u64 = 0x1E0 | super::ABOVE_HAW | 0xFFF0_0000_0000_0000;
    pub const RID_PASID_MASK: u64 = 0xF_FFFF;
    pub const RID_PRIV: u64 = 1 << 20;
    pub const QW1_RSVD: u64 = !0x1F_FFFF;
    /// Entries per 4 KiB context table (256-bit entries).
    pub const ENTRIES: u64 = 128;
    pub const SIZE: u64 = 32;
}

pub mod pasid_dir {
    pub const P: u64 = 1 << 0;
    pub const FPD: u64 = 1 << 1;
    pub const RSVD: u64 = 0xFFC | super::ABOVE_HAW | 0xFFF0_0000_0000_0000;
    /// Each directory entry covers 64 PASIDs (PASID bits 19:6 indexes the directory).
    pub const SHIFT: u32 = 6;
}

pub mod pasid_entry {
    pub const SIZE: u64 = 64;
    pub const QW0_P: u64 = 1 << 0;
    pub const QW0_FPD: u64 = 1 << 1;
    pub const QW0_AW_SHIFT: u32 = 2;
    pub const QW0_AW_MASK: u64 = 0x7 << QW0_AW_SHIFT;
    /// AW = 010b: 48-bit, 4-level second-stage table.
    pub const AW_4LEVEL: u64 = 0b010;
    pub const QW0_SSEE: u64 = 1 << 5;
    pub const QW0_PGTT_SHIFT: u32 = 6;
    pub const QW0_PGTT_MASK: u64 = 0x7 << QW0_PGTT_SHIFT;
    pub const PGTT_FS: u64 = 0b001;
    pub const PGTT_SS: u64 = 0b010;
    pub const PGTT_PT: u64 = 0b100;
    pub const QW0_SSADE: u64 = 1 << 9;
    /// QW0 bits 11:10 are reserved.
    pub const QW0_RSVD: u64 = 0xC00;
    pub const QW1_DID_MASK: u64 = 0xFFFF;
    /// QW1 bits 22:16 are reserved; 23 PWSNP, 24 PGSNP, 25 CD, 26 EMTE, 29:27 EMT, 30 PWT,
    /// 31 PCD, 63:32 PAT are accepted and ignored.
    pub const QW1_RSVD: u64 = 0x7F_0000;
    pub const QW1_PWSNP: u64 = 1 << 23;
    pub const QW2_SRE: u64 = 1 << 0;
    pub const QW2_ERE: u64 = 1 << 1;
    pub const QW2_FSPM_SHIFT: u32 = 2;
    pub const QW2_FSPM_MASK: u64 = 0x3 << QW2_FSPM_SHIFT;
    pub const QW2_WPE: u64 = 1 << 4;
    pub const QW2_NXE: u64 = 1 << 5;
    /// QW2 bits 11:8 are reserved (7 EAFE, 6 SMEP, 4 WPE are accepted and ignored).
    pub const QW2_RSVD: u64 = 0xF00;
}

/// Second-stage paging entries.
pub mod ss {
    pub const R: u64 = 1 << 0;
    pub const W: u64 = 1 << 1;
    pub const X: u64 = 1 << 2;
    pub const PS: u64 = 1 << 7;
}

/// First-stage (IA-32e) paging entries.
pub mod fs {
    pub const P: u64 = 1 << 0;
    pub const RW: u64 = 1 << 1;
    pub const US: u64 = 1 << 2;
    pub const A: u64 = 1 << 5;
    pub const D: u64 = 1 << 6;
    pub const PS: u64 = 1 << 7;
    /// G (global), leaves only: reported in an ATS Translation Completion, never checked.
    pub const G: u64 = 1 << 8;
    pub const XD: u64 = 1 << 63;
    /// Linux 6.12 first-stage non-leaf entries: P | RW | US | A.
    pub const LINUX_TABLE: u64 = P | RW | US | A;
    /// x86 core-mm non-leaf entries (`_PAGE_TABLE`): P | RW | US | A | D.
    pub const MM_TABLE: u64 = P | RW | US | A | D;
}

/// Index of `addr` at paging `level` (1 = 4 KiB leaf table, 4 = top).
pub fn level_index(addr: u64, level: u32) -> u64 {
    (addr >> (12 + 9 * (level - 1))) & 0x1FF
}

/// Size mapped by one entry at `level`.
pub fn level_size(level: u32) -> u64 {
    1u64 << (12 + 9 * (level - 1))
}
