//! ATS (docs/contract.md section 6.2): what the unit answers to a Translation Request
//! (AT = 01b) and does with a translated request (AT = 10b), and the 8-byte Translation
//! Completion data entry, encoded and decoded in this one place.
//!
//! A Translation Request is translated like a read through the same steps as any request
//! (section 2.6), with three differences: the context entry must have DTE = 1 (else 0x44);
//! the leaf is not checked against an access kind (its permissions are reported), except
//! that a user request to a first-stage page with U/S = 0 gets no access; and a fault of
//! the address check or of the page walk is answered with R = W = 0 and not recorded.
//! Which faults give UR and which CA is [`cpl_status`]. A translated request is forwarded
//! unchanged when its context entry has DTE = 1 and faults 0x44 otherwise.

use std::fmt;

use super::{Leaf, PasidInfo, Pgtt, Request};
use crate::devtlb::AtcEntry;
use crate::fault::FaultReason;
use crate::mem::PAGE_SIZE;

/// The Address Type of a request (TLP DW0 bits 11:10).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddrType {
    /// 00b.
    #[default]
    Untranslated,
    /// 01b: an ATS Translation Request (a read).
    TranslationRequest,
    /// 10b: the address was translated by the device's ATC.
    Translated,
}

/// One Translation Completion data entry (PCIe ATS; two DWs, DW0 first on the wire):
///
/// | DW | bits | field |
/// |---|---|---|
/// | 0 | 31:0 | translated address 63:32 |
/// | 1 | 31:12 | translated address 31:12 (with S = 1, the size in the low 1 bits) |
/// | 1 | 11 | S: the range is larger than 4 KiB |
/// | 1 | 10 | N: non-snooped accesses |
/// | 1 | 9:6 | reserved (0) |
/// | 1 | 5 | Global: valid for every PASID |
/// | 1 | 4 | Priv: the permissions are for privileged accesses |
/// | 1 | 3 | Exe: execute permitted |
/// | 1 | 2 | U: untranslated accesses only |
/// | 1 | 1 | W |
/// | 1 | 0 | R |
///
/// With S = 1 the range is 2^(13 + n) bytes, n being the number of 1 bits above bit 11
/// before the lowest 0 (2 MiB: address bits 19:12 set, bit 20 clear).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AtsEntry {
    /// Base of the translated range (aligned to `size`).
    pub addr: u64,
    /// Bytes the entry covers: 4 KiB, or a power of two above it.
    pub size: u64,
    pub n: bool,
    pub u: bool,
    pub r: bool,
    pub w: bool,
    pub exe: bool,
    pub privileged: bool,
    pub global: bool,
}

/// Why two DWs are not a Translation Completion entry this project produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AtsDecodeError {
    #[error("reserved bits 9:6 of DW1 set: {0:#x}")]
    Reserved(u32),
    #[error("S = 1 with every address bit from 12 to 63 set: no size")]
    NoSize,
}

const S: u32 = 1 << 11;
const N: u32 = 1 << 10;
const RSVD: u32 = 0xF << 6;
const GLOBAL: u32 = 1 << 5;
const PRIV: u32 = 1 << 4;
const EXE: u32 = 1 << 3;
const U: u32 = 1 << 2;
const W: u32 = 1 << 1;
const R: u32 = 1 << 0;

impl AtsEntry {
    /// The answer to a Translation Request that is granted no access: every field 0
    /// (R = W = 0; the unit reports nothing else then).
    pub fn denied() -> Self {
        Self {
            size: PAGE_SIZE,
            ..Self::default()
        }
    }

    /// The two DWs, DW0 first on the wire.
    pub fn encode(&self) -> [u32; 2] {
        let size = self.size.max(PAGE_SIZE);
        let mut a = self.addr & !(size - 1);
        if size > PAGE_SIZE {
            // The 1 bits from 12 up to (not including) bit log2(size) - 1.
            a |= (size / 2 - 1) & !(PAGE_SIZE - 1);
        }
        let flag = |b: bool, m: u32| if b { m } else { 0 };
        let lo = (a as u32 & !0xFFF)
            | flag(size > PAGE_SIZE, S)
            | flag(self.n, N)
            | flag(self.global, GLOBAL)
            | flag(self.privileged, PRIV)
            | flag(self.exe, EXE)
            | flag(self.u, U)
            | flag(self.w, W)
            | flag(self.r, R);
        [(a >> 32) as u32, lo]
    }

    /// Decodes two DWs (DW0 first on the wire).
    pub fn decode(dw: [u32; 2]) -> Result<Self, AtsDecodeError> {
        if dw[1] & RSVD != 0 {
            return Err(AtsDecodeError::Reserved(dw[1] & RSVD));
        }
        let a = u64::from(dw[0]) << 32 | u64::from(dw[1] & !0xFFF);
        let size = if dw[1] & S != 0 {
            let ones = (!(a >> 12)).trailing_zeros();
            if ones >= 52 {
                return Err(AtsDecodeError::NoSize);
            }
            1u64 << (13 + ones)
        } else {
            PAGE_SIZE
        };
        let has = |m: u32| dw[1] & m != 0;
        Ok(Self {
            addr: a & !(size - 1),
            size,
            n: has(N),
            u: has(U),
            r: has(R),
            w: has(W),
            exe: has(EXE),
            privileged: has(PRIV),
            global: has(GLOBAL),
        })
    }
}

impl AtsEntry {
    /// What a device's ATS cache stores from this completion to a Translation Request
    /// with `pasid` for untranslated `addr`: the untranslated range of the entry's size
    /// holding `addr`; `None` when it grants neither read nor write.
    pub fn atc_entry(&self, pasid: Option<u32>, addr: u64) -> Option<AtcEntry> {
        if !self.r && !self.w {
            return None;
        }
        let size = self.size.max(PAGE_SIZE);
        Some(AtcEntry {
            pasid,
            base: addr & !(size - 1),
            size,
            pa: self.addr & !(size - 1),
            r: self.r,
            w: self.w,
            global: self.global,
        })
    }
}

impl fmt::Display for AtsEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.r && !self.w {
            return write!(f, "no access (R=W=0)");
        }
        write!(f, "{:#x}+{:#x}", self.addr, self.size)?;
        for (b, name) in [
            (self.r, "R"),
            (self.w, "W"),
            (self.exe, "Exe"),
            (self.privileged, "Priv"),
            (self.global, "G"),
            (self.u, "U"),
            (self.n, "N"),
        ] {
            if b {
                write!(f, " {name}")?;
            }
        }
        Ok(())
    }
}

/// How the unit completes a Translation Request whose translation found `reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtsStatus {
    /// Unsupported Request, the fault recorded (unless FPD).
    Ur,
    /// Completer Abort, the fault recorded (unless FPD).
    Ca,
    /// A successful completion with R = W = 0; nothing recorded.
    Denied,
}

/// The completion for a Translation Request that found `reason` (docs/contract.md section
/// 6.2): a memory error reading any structure gives CA; any other fault up to and
/// including the PASID-table entry and its ER/PMR checks (DTE = 0 among them) gives UR;
/// the address checks and the page walk give R = W = 0.
pub fn cpl_status(reason: FaultReason) -> AtsStatus {
    use FaultReason as F;
    match reason {
        F::RootAccess
        | F::ContextAccess
        | F::PasidDirAccess
        | F::PasidEntryAccess
        | F::FsAccess
        | F::SsAccess => AtsStatus::Ca,
        F::FsNotPresent
        | F::FsReserved
        | F::SsNotPresent
        | F::SsReserved
        | F::NonCanonical
        | F::UserToSupervisorPage
        | F::ExecuteXd
        | F::PtBeyondHaw
        | F::SsBeyondHaw
        | F::WriteDenied
        | F::ReadDenied => AtsStatus::Denied,
        _ => AtsStatus::Ur,
    }
}

/// The entry for a Translation Request through `leaf` of PASID entry `p`, with the
/// request's effective privilege `pmr` and execute request `er`; `Err` with the fault
/// when the request gets no access (a user request to a first-stage page with U/S = 0).
///
/// Fields (VT-d chapter 4, as docs/contract.md section 6.2 states them): the leaf's page
/// and size; R = the second stage's R (first stage: 1, reads are always allowed); W = the
/// accumulated W or R/W; Exe = ER requested and not XD; Priv = the prefix's PMR; Global =
/// a first-stage leaf's G for a request with a PASID (PCIe: Global may only be set when
/// the Translation Request had a PASID); N = 0 (snoop control is not offered); U = 0 (the unit has no
/// interrupt-address range). Pass-through: the request's own 4 KiB page, R = W = 1.
pub fn entry(
    p: &PasidInfo,
    leaf: &Leaf,
    req: &Request,
    (pmr, er): (bool, bool),
) -> Result<AtsEntry, FaultReason> {
    if p.pgtt == Pgtt::FirstStage && !pmr && !leaf.us {
        return Err(FaultReason::UserToSupervisorPage);
    }
    let fs = p.pgtt == Pgtt::FirstStage;
    Ok(AtsEntry {
        addr: leaf.pa,
        size: leaf.size,
        n: false,
        u: false,
        r: if p.pgtt == Pgtt::SecondStage {
            leaf.r
        } else {
            true
        },
        w: leaf.w,
        exe: er && !(fs && leaf.xd),
        privileged: req.pasid.is_some() && req.pmr,
        global: req.pasid.is_some() && fs && leaf.g,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trips_through_its_two_dws_at_every_size() {
        for (addr, size) in [
            (0x1234_5000u64, PAGE_SIZE),
            (0x8_4020_0000, 1 << 21),
            (0x40_c000_0000, 1 << 30),
        ] {
            let e = AtsEntry {
                addr,
                size,
                r: true,
                w: size != 1 << 30,
                exe: size == 1 << 21,
                privileged: size == PAGE_SIZE,
                global: true,
                ..AtsEntry::default()
            };
            let dw = e.encode();
            assert_eq!(AtsEntry::decode(dw), Ok(e), "{dw:08x?}");
            assert_eq!(dw[0], (addr >> 32) as u32);
            assert_eq!(dw[1] & S != 0, size > PAGE_SIZE);
        }
    }

    #[test]
    fn size_is_encoded_by_the_lowest_zero_address_bit() {
        let two_m = AtsEntry {
            addr: 0x20_0000,
            size: 1 << 21,
            r: true,
            ..AtsEntry::default()
        };
        // Address bit 21, bits 19:12 set, bit 20 clear, S (11) and R (0).
        assert_eq!(two_m.encode(), [0, 0x002F_F801]);
        let one_g = AtsEntry {
            addr: 0x1_4000_0000,
            size: 1 << 30,
            w: true,
            ..AtsEntry::default()
        };
        assert_eq!(one_g.encode(), [1, 0x5FFF_F802]);
        assert_eq!(AtsEntry::denied().encode(), [0, 0]);
        assert_eq!(
            AtsEntry::decode([0, 1 << 6]),
            Err(AtsDecodeError::Reserved(1 << 6))
        );
        assert_eq!(
            AtsEntry::decode([u32::MAX, 0xFFFF_F800]),
            Err(AtsDecodeError::NoSize)
        );
    }

    #[test]
    fn the_device_caches_the_completions_range_around_the_untranslated_address() {
        let e = AtsEntry {
            addr: 0x8_4020_0000,
            size: 1 << 21,
            r: true,
            global: true,
            ..AtsEntry::default()
        };
        let c = e.atc_entry(Some(3), 0x7f_0034_5678).expect("grants read");
        assert_eq!(
            (c.pasid, c.base, c.size),
            (Some(3), 0x7f_0020_0000, 1 << 21)
        );
        assert_eq!(
            (c.pa, c.r, c.w, c.global),
            (0x8_4020_0000, true, false, true)
        );
        assert_eq!(c.translate(0x7f_0034_5678), 0x8_4034_5678);
        assert_eq!(AtsEntry::denied().atc_entry(None, 0x1000), None);
    }

    #[test]
    fn page_walk_faults_are_answered_and_structure_faults_are_not() {
        assert_eq!(cpl_status(FaultReason::FsNotPresent), AtsStatus::Denied);
        assert_eq!(cpl_status(FaultReason::SsBeyondHaw), AtsStatus::Denied);
        assert_eq!(cpl_status(FaultReason::SsAccess), AtsStatus::Ca);
        assert_eq!(cpl_status(FaultReason::ContextAccess), AtsStatus::Ca);
        assert_eq!(cpl_status(FaultReason::DteDisabled), AtsStatus::Ur);
        assert_eq!(cpl_status(FaultReason::PasidEntryNotPresent), AtsStatus::Ur);
        assert_eq!(cpl_status(FaultReason::PmrWithoutSre), AtsStatus::Ur);
    }
}
