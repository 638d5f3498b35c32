//! Register agent: drives the CSR bus of `iommu_top` and names the VT-d registers.
//!
//! Offsets and bits follow the VT-d specification as subset by SPEC.md section 2; they must
//! match `rtl/iommu_pkg.sv`.

use thiserror::Error;

/// Register offsets (bytes).
pub mod reg {
    pub const VER: u16 = 0x000;
    pub const CAP: u16 = 0x008;
    pub const ECAP: u16 = 0x010;
    pub const GCMD: u16 = 0x018;
    pub const GSTS: u16 = 0x01C;
    pub const RTADDR: u16 = 0x020;
    pub const FSTS: u16 = 0x034;
    pub const FECTL: u16 = 0x038;
    pub const FEDATA: u16 = 0x03C;
    pub const FEADDR: u16 = 0x040;
    pub const FEUADDR: u16 = 0x044;
    pub const IQH: u16 = 0x080;
    pub const IQT: u16 = 0x088;
    pub const IQA: u16 = 0x090;
    pub const ICS: u16 = 0x09C;
    pub const IECTL: u16 = 0x0A0;
    pub const IEDATA: u16 = 0x0A4;
    pub const IEADDR: u16 = 0x0A8;
    pub const IEUADDR: u16 = 0x0AC;
    pub const IQER: u16 = 0x0B0;
    /// Implementation-specific: malformed TLPs rejected at ingress (read-only, 32-bit).
    pub const MALFORMED: u16 = 0x1F0;
    /// First fault recording register (CAP.FRO * 16).
    pub const FRCD: u16 = 0x200;
}

/// GCMD/GSTS bits.
pub mod gcmd {
    pub const TE: u32 = 1 << 31;
    pub const SRTP: u32 = 1 << 30;
    pub const QIE: u32 = 1 << 26;
}

/// FSTS bits.
pub mod fsts {
    pub const PFO: u32 = 1 << 0;
    pub const PPF: u32 = 1 << 1;
    pub const IQE: u32 = 1 << 4;
}

/// Access width on the CSR bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    W32,
    W64,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CsrError {
    #[error("CSR {op} at 0x{addr:03x} ({width:?}) answered with an error (misaligned or no register there)")]
    Slave {
        op: &'static str,
        addr: u16,
        width: Width,
    },
    #[error("CSR {op} at 0x{addr:03x}: no response within {cycles} cycles")]
    Timeout {
        op: &'static str,
        addr: u16,
        cycles: u32,
    },
    #[error("CSR offset 0x{addr:x} is outside the 4 KiB register page")]
    OutOfRange { addr: u32 },
}

/// Decoded CAP register fields the driver relies on (VT-d 11.4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap {
    pub nd: u8,
    pub sagaw: u8,
    pub mgaw: u8,
    pub fro: u16,
    pub sllps: u8,
    pub psi: bool,
    pub nfr: u8,
    pub mamv: u8,
    pub fl1gp: bool,
}

impl Cap {
    pub fn decode(v: u64) -> Self {
        Self {
            nd: (v & 0x7) as u8,
            sagaw: ((v >> 8) & 0x1f) as u8,
            mgaw: ((v >> 16) & 0x3f) as u8,
            fro: ((v >> 24) & 0x3ff) as u16,
            sllps: ((v >> 34) & 0xf) as u8,
            psi: (v >> 39) & 1 == 1,
            nfr: ((v >> 40) & 0xff) as u8,
            mamv: ((v >> 48) & 0x3f) as u8,
            fl1gp: (v >> 56) & 1 == 1,
        }
    }

    /// Byte offset of fault recording register `i`.
    pub fn frcd_offset(&self, i: u16) -> u16 {
        self.fro * 16 + i * 16
    }

    pub fn num_fault_records(&self) -> u16 {
        u16::from(self.nfr) + 1
    }
}

/// Decoded ECAP register fields (VT-d 11.4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ecap {
    pub coherent: bool,
    pub qi: bool,
    pub pass_through: bool,
    pub ers: bool,
    pub srs: bool,
    pub pss: u8,
    pub pasid: bool,
    pub smts: bool,
    pub ssts: bool,
    pub fsts: bool,
}

impl Ecap {
    pub fn decode(v: u64) -> Self {
        let b = |n: u32| (v >> n) & 1 == 1;
        Self {
            coherent: b(0),
            qi: b(1),
            pass_through: b(6),
            ers: b(30),
            srs: b(31),
            pss: ((v >> 35) & 0x1f) as u8,
            pasid: b(40),
            smts: b(43),
            ssts: b(46),
            fsts: b(47),
        }
    }
}
