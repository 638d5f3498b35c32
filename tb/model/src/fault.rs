//! Scalable-mode fault reasons (VT-d 4.x, section 7.1.3 and Appendix A "Non-Recoverable
//! Fault Reason Encodings"), restricted to the set docs/contract.md section 2 lists. The `u8` value
//! of each variant is the FR field written to the fault recording register (FRCD bits
//! 39:32 of QW1).

use std::fmt;

/// Every fault reason the DUT and the golden walker can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum FaultReason {
    /// RTADDR.TTM is not 01b (scalable mode).
    InvalidTtm = 0x30,
    RootAccess = 0x38,
    RootNotPresent = 0x39,
    RootReserved = 0x3A,
    ContextAccess = 0x40,
    ContextNotPresent = 0x41,
    ContextReserved = 0x42,
    /// Translation Request or translated request (ATS) while the context entry has DTE=0.
    DteDisabled = 0x44,
    /// Request with a PASID prefix while the context entry has PASIDE=0.
    PasidDisabled = 0x45,
    /// PASID bits 19:6 beyond the directory size given by PDTS.
    PasidBeyondDirectory = 0x46,
    PasidDirAccess = 0x50,
    PasidDirNotPresent = 0x51,
    PasidDirReserved = 0x52,
    PasidEntryAccess = 0x58,
    PasidEntryNotPresent = 0x59,
    PasidEntryReserved = 0x5A,
    /// PGTT not in {001, 010, 100}, AW != 010b for second stage, FSPM != 00b for first stage.
    InvalidPgtt = 0x5B,
    /// Execute Requested with ERE=0.
    ErWithoutEre = 0x5C,
    /// Privileged Mode Requested with SRE=0.
    PmrWithoutSre = 0x5D,
    FsAccess = 0x70,
    FsNotPresent = 0x71,
    FsReserved = 0x72,
    SsAccess = 0x78,
    SsNotPresent = 0x79,
    SsReserved = 0x7A,
    NonCanonical = 0x80,
    UserToSupervisorPage = 0x81,
    ExecuteXd = 0x82,
    PtBeyondHaw = 0x83,
    SsBeyondHaw = 0x84,
    WriteDenied = 0x85,
    ReadDenied = 0x86,
}

impl FaultReason {
    /// All reasons, in ascending code order.
    pub const ALL: [FaultReason; 32] = [
        Self::InvalidTtm,
        Self::RootAccess,
        Self::RootNotPresent,
        Self::RootReserved,
        Self::ContextAccess,
        Self::ContextNotPresent,
        Self::ContextReserved,
        Self::DteDisabled,
        Self::PasidDisabled,
        Self::PasidBeyondDirectory,
        Self::PasidDirAccess,
        Self::PasidDirNotPresent,
        Self::PasidDirReserved,
        Self::PasidEntryAccess,
        Self::PasidEntryNotPresent,
        Self::PasidEntryReserved,
        Self::InvalidPgtt,
        Self::ErWithoutEre,
        Self::PmrWithoutSre,
        Self::FsAccess,
        Self::FsNotPresent,
        Self::FsReserved,
        Self::SsAccess,
        Self::SsNotPresent,
        Self::SsReserved,
        Self::NonCanonical,
        Self::UserToSupervisorPage,
        Self::ExecuteXd,
        Self::PtBeyondHaw,
        Self::SsBeyondHaw,
        Self::WriteDenied,
        Self::ReadDenied,
    ];

    /// The FR code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Decodes an FR code; `None` for codes outside the implemented set.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.code() == code)
    }

    /// Short description used in scoreboard messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::InvalidTtm => "invalid RTADDR.TTM",
            Self::RootAccess => "root entry access error",
            Self::RootNotPresent => "root entry not present",
            Self::RootReserved => "root entry reserved bit",
            Self::ContextAccess => "context entry access error",
            Self::ContextNotPresent => "context entry not present",
            Self::ContextReserved => "context entry reserved bit",
            Self::DteDisabled => "ATS request with DTE=0",
            Self::PasidDisabled => "PASID with PASIDE=0",
            Self::PasidBeyondDirectory => "PASID beyond directory",
            Self::PasidDirAccess => "PASID-directory entry access error",
            Self::PasidDirNotPresent => "PASID-directory entry not present",
            Self::PasidDirReserved => "PASID-directory entry reserved bit",
            Self::PasidEntryAccess => "PASID-table entry access error",
            Self::PasidEntryNotPresent => "PASID-table entry not present",
            Self::PasidEntryReserved => "PASID-table entry reserved bit",
            Self::InvalidPgtt => "invalid PGTT/AW/FSPM",
            Self::ErWithoutEre => "ER with ERE=0",
            Self::PmrWithoutSre => "PMR with SRE=0",
            Self::FsAccess => "first-stage entry access error",
            Self::FsNotPresent => "first-stage entry not present",
            Self::FsReserved => "first-stage entry reserved bit",
            Self::SsAccess => "second-stage entry access error",
            Self::SsNotPresent => "second-stage entry not present",
            Self::SsReserved => "second-stage entry reserved bit",
            Self::NonCanonical => "non-canonical first-stage address",
            Self::UserToSupervisorPage => "U/S=0 for a user request",
            Self::ExecuteXd => "execute of an XD page",
            Self::PtBeyondHaw => "pass-through address beyond 48 bits",
            Self::SsBeyondHaw => "second-stage address beyond 48 bits",
            Self::WriteDenied => "write without W",
            Self::ReadDenied => "read without R",
        }
    }
}

impl fmt::Display for FaultReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:02X} {}", self.code(), self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_sorted() {
        for w in FaultReason::ALL.windows(2) {
            assert!(w[0].code() < w[1].code());
        }
        for r in FaultReason::ALL {
            assert_eq!(FaultReason::from_code(r.code()), Some(r));
        }
        assert_eq!(FaultReason::from_code(0x31), None);
    }

    #[test]
    fn display_is_code_then_name() {
        assert_eq!(
            FaultReason::PmrWithoutSre.to_string(),
            "0x5D PMR with SRE=0"
        );
        assert_eq!(
            FaultReason::InvalidTtm.to_string(),
            "0x30 invalid RTADDR.TTM"
        );
    }
}

/// One primary fault record as the fault recording register holds it (docs/contract.md section 2,
/// VT-d 11.4.14 FRCD_REG).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultRecord {
    /// Faulting page address (bits 63:12).
    pub addr: u64,
    pub sid: u16,
    /// The PASID of the prefix (PP=1), if the request had one.
    pub pasid: Option<u32>,
    /// Privileged Mode Requested (meaningful with a PASID).
    pub privileged: bool,
    /// Execute Requested (meaningful with a PASID).
    pub execute: bool,
    /// FR code; see [`FaultReason::from_code`].
    pub reason: u8,
    /// T: 1 for a read.
    pub read: bool,
}

impl FaultRecord {
    /// The record VT-d writes for `req` faulting with `reason`.
    pub fn of(req: &crate::golden::Request, reason: FaultReason) -> Self {
        Self {
            addr: req.addr & !0xFFF,
            sid: req.rid,
            pasid: req.pasid,
            privileged: req.pasid.is_some() && req.pmr,
            execute: req.pasid.is_some() && req.er,
            reason: reason.code(),
            read: !req.write,
        }
    }

    /// QW0, QW1 with F set.
    pub fn encode(&self) -> [u64; 2] {
        use crate::regs::frcd;
        let mut q1 =
            u64::from(self.sid) | u64::from(self.reason) << frcd::QW1_FR_SHIFT | frcd::QW1_F;
        if let Some(p) = self.pasid {
            q1 |= frcd::QW1_PP | (u64::from(p) << frcd::QW1_PASID_SHIFT & frcd::QW1_PASID_MASK);
            if self.privileged {
                q1 |= frcd::QW1_PRIV;
            }
            if self.execute {
                q1 |= frcd::QW1_EXE;
            }
        }
        if self.read {
            q1 |= frcd::QW1_T;
        }
        [self.addr & frcd::QW0_ADDR_MASK, q1]
    }

    /// `None` when F is clear (no fault recorded). Bits a record never carries (QW0 11:0,
    /// QW1 28:16 and 61:60, PASID/PRIV/EXE without PP) are dropped: compare
    /// `decode(q).encode()` with `q` to see them ([`FaultRecord::stray_bits`]).
    pub fn decode(q: [u64; 2]) -> Option<Self> {
        use crate::regs::frcd;
        if q[1] & frcd::QW1_F == 0 {
            return None;
        }
        let pp = q[1] & frcd::QW1_PP != 0;
        Some(Self {
            addr: q[0] & frcd::QW0_ADDR_MASK,
            sid: (q[1] & frcd::QW1_SID_MASK) as u16,
            pasid: pp.then_some(((q[1] & frcd::QW1_PASID_MASK) >> frcd::QW1_PASID_SHIFT) as u32),
            privileged: pp && q[1] & frcd::QW1_PRIV != 0,
            execute: pp && q[1] & frcd::QW1_EXE != 0,
            reason: ((q[1] & frcd::QW1_FR_MASK) >> frcd::QW1_FR_SHIFT) as u8,
            read: q[1] & frcd::QW1_T != 0,
        })
    }

    /// The bits of a recorded `q` (F set) that no record carries: zero for a well-formed one.
    pub fn stray_bits(q: [u64; 2]) -> [u64; 2] {
        match Self::decode(q) {
            Some(r) => {
                let e = r.encode();
                [q[0] ^ e[0], q[1] ^ e[1]]
            }
            None => [0, 0],
        }
    }
}

impl std::fmt::Display for FaultRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reason = FaultReason::from_code(self.reason)
            .map_or_else(|| format!("{:#04x}", self.reason), |r| r.to_string());
        write!(
            f,
            "FR {reason} SID {:02x}:{:02x}.{} addr {:#x} {}",
            self.sid >> 8,
            (self.sid >> 3) & 0x1f,
            self.sid & 7,
            self.addr,
            if self.read { "read" } else { "write" },
        )?;
        match self.pasid {
            Some(p) => write!(
                f,
                " PP=1 PASID {p:#x} PRIV={} EXE={}",
                u8::from(self.privileged),
                u8::from(self.execute)
            ),
            None => write!(f, " PP=0"),
        }
    }
}

#[cfg(test)]
mod record_tests {
    use super::*;

    #[test]
    fn fault_record_layout() {
        let r = FaultRecord {
            addr: 0x1234_5678,
            sid: 0x0310,
            pasid: Some(0xABCDE),
            privileged: true,
            execute: false,
            reason: 0x5D,
            read: true,
        };
        let q = r.encode();
        assert_eq!(q[0], 0x1234_5000);
        assert_eq!(
            q[1],
            1 << 63 | 1 << 62 | 0xABCDE << 40 | 0x5D << 32 | 1 << 31 | 1 << 29 | 0x0310
        );
        assert_eq!(
            FaultRecord::decode(q),
            Some(FaultRecord {
                addr: 0x1234_5000,
                ..r
            })
        );
        assert_eq!(FaultRecord::decode([0, q[1] & !(1 << 63)]), None);
        let no_pasid = FaultRecord {
            pasid: None,
            privileged: false,
            ..r
        };
        assert_eq!(no_pasid.encode()[1] & (1 << 31 | 0xF_FFFF << 40), 0);
    }
}
