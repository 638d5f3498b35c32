//! Queued-invalidation descriptors, 256-bit form (VT-d 4.x section 6.5.2; Linux
//! drivers/iommu/intel/iommu.h `QI_*` macros and dmar.c `qi_flush_*()`). Only the types
//! docs/contract.md section 2 implements are representable: 1 context-cache, 2 IOTLB, 5
//! invalidation wait, 6 PASID-based IOTLB, 7 PASID cache. Anything else decodes to
//! [`QiError::UnknownType`], which the DUT reports as FSTS.IQE.

use std::fmt;
use thiserror::Error;

/// Decode failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum QiError {
    #[error("unknown descriptor type {0}")]
    UnknownType(u8),
    #[error("descriptor type {ty}: reserved granularity {gran}")]
    BadGranularity { ty: u8, gran: u8 },
    #[error("descriptor type {ty}: reserved bits set in QW{qw} ({bits:#x})")]
    Reserved { ty: u8, qw: u8, bits: u64 },
}

/// Context-cache invalidation granularity (QW0 5:4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CcGran {
    Global = 1,
    Domain = 2,
    Device = 3,
}

/// IOTLB invalidation granularity (QW0 5:4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IotlbGran {
    Global = 1,
    Domain = 2,
    Page = 3,
}

/// PASID-based IOTLB invalidation granularity (QW0 5:4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PiotlbGran {
    /// All mappings of (DID, PASID).
    Pasid = 2,
    /// A page range of (DID, PASID).
    Page = 3,
}

/// PASID-cache invalidation granularity (QW0 5:4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PcGran {
    /// Every PASID of a DID.
    Domain = 0,
    /// One (DID, PASID).
    Pasid = 1,
    Global = 3,
}

/// One 256-bit invalidation descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Descriptor {
    /// Type 1. DID 31:16, SID 47:32, FM 49:48.
    ContextCache {
        gran: CcGran,
        did: u16,
        sid: u16,
        fm: u8,
    },
    /// Type 2. DW 6, DR 7, DID 31:16; QW1 AM 5:0, IH 6, ADDR 63:12.
    Iotlb {
        gran: IotlbGran,
        dr: bool,
        dw: bool,
        did: u16,
        addr: u64,
        am: u8,
        ih: bool,
    },
    /// Type 5. IF 4, SW 5, FN 6, status data 63:32; QW1 status address 63:2.
    Wait {
        intr: bool,
        sw: bool,
        fence: bool,
        status_data: u32,
        status_addr: u64,
    },
    /// Type 6. DID 31:16, PASID 51:32; QW1 AM 5:0, IH 6, ADDR 63:12.
    PasidIotlb {
        gran: PiotlbGran,
        did: u16,
        pasid: u32,
        addr: u64,
        am: u8,
        ih: bool,
    },
    /// Type 7. DID 31:16, PASID 51:32.
    PasidCache { gran: PcGran, did: u16, pasid: u32 },
}

const fn bits(hi: u32, lo: u32) -> u64 {
    (u64::MAX >> (63 - hi)) & !((1u64 << lo) - 1)
}

fn check_zero(ty: u8, qw: u8, val: u64, allowed: u64) -> Result<(), QiError> {
    let extra = val & !allowed;
    if extra != 0 {
        Err(QiError::Reserved {
            ty,
            qw,
            bits: extra,
        })
    } else {
        Ok(())
    }
}

impl Descriptor {
    /// Global context-cache, PASID-cache and IOTLB invalidations (without the wait), as
    /// `iommu_set_root_entry()` issues them: after them the unit has forgotten every cached
    /// structure and translation. `dr`/`dw`: the IOTLB descriptor's drain hints.
    pub fn global_invalidations(dr: bool, dw: bool) -> [Descriptor; 3] {
        [
            Descriptor::ContextCache {
                gran: CcGran::Global,
                did: 0,
                sid: 0,
                fm: 0,
            },
            Descriptor::PasidCache {
                gran: PcGran::Global,
                did: 0,
                pasid: 0,
            },
            Descriptor::Iotlb {
                gran: IotlbGran::Global,
                dr,
                dw,
                did: 0,
                addr: 0,
                am: 0,
                ih: false,
            },
        ]
    }

    /// The type field (bits 3:0).
    pub fn type_code(&self) -> u8 {
        match self {
            Self::ContextCache { .. } => 1,
            Self::Iotlb { .. } => 2,
            Self::Wait { .. } => 5,
            Self::PasidIotlb { .. } => 6,
            Self::PasidCache { .. } => 7,
        }
    }

    /// The four little-endian quadwords, QW0 first.
    pub fn encode(&self) -> [u64; 4] {
        let ty = self.type_code() as u64;
        match *self {
            Self::ContextCache { gran, did, sid, fm } => [
                ty | (gran as u64) << 4
                    | (did as u64) << 16
                    | (sid as u64) << 32
                    | ((fm & 3) as u64) << 48,
                0,
                0,
                0,
            ],
            Self::Iotlb {
                gran,
                dr,
                dw,
                did,
                addr,
                am,
                ih,
            } => [
                ty | (gran as u64) << 4 | (dw as u64) << 6 | (dr as u64) << 7 | (did as u64) << 16,
                (addr & bits(63, 12)) | ((ih as u64) << 6) | (am & 0x3F) as u64,
                0,
                0,
            ],
            Self::Wait {
                intr,
                sw,
                fence,
                status_data,
                status_addr,
            } => [
                ty | (intr as u64) << 4
                    | (sw as u64) << 5
                    | (fence as u64) << 6
                    | (status_data as u64) << 32,
                status_addr & bits(63, 2),
                0,
                0,
            ],
            Self::PasidIotlb {
                gran,
                did,
                pasid,
                addr,
                am,
                ih,
            } => [
                ty | (gran as u64) << 4 | (did as u64) << 16 | ((pasid & 0xF_FFFF) as u64) << 32,
                (addr & bits(63, 12)) | ((ih as u64) << 6) | (am & 0x3F) as u64,
                0,
                0,
            ],
            Self::PasidCache { gran, did, pasid } => [
                ty | (gran as u64) << 4 | (did as u64) << 16 | ((pasid & 0xF_FFFF) as u64) << 32,
                0,
                0,
                0,
            ],
        }
    }

    /// Decodes four quadwords. Bits 11:9 of QW0 (the high type bits of VT-d 4.x) must be
    /// zero like every other reserved field.
    pub fn decode(qw: [u64; 4]) -> Result<Self, QiError> {
        let ty = (qw[0] & 0xF) as u8;
        let gran = ((qw[0] >> 4) & 3) as u8;
        let did = (qw[0] >> 16) as u16;
        if !matches!(ty, 1 | 2 | 5 | 6 | 7) || qw[0] & bits(11, 9) != 0 {
            return Err(QiError::UnknownType(ty | (((qw[0] >> 9) & 7) << 4) as u8));
        }
        let bad = || QiError::BadGranularity { ty, gran };
        check_zero(ty, 2, qw[2], 0)?;
        check_zero(ty, 3, qw[3], 0)?;
        match ty {
            1 => {
                check_zero(ty, 0, qw[0], bits(5, 0) | bits(49, 16))?;
                check_zero(ty, 1, qw[1], 0)?;
                let gran = match gran {
                    1 => CcGran::Global,
                    2 => CcGran::Domain,
                    3 => CcGran::Device,
                    _ => return Err(bad()),
                };
                Ok(Self::ContextCache {
                    gran,
                    did,
                    sid: (qw[0] >> 32) as u16,
                    fm: ((qw[0] >> 48) & 3) as u8,
                })
            }
            2 => {
                check_zero(ty, 0, qw[0], bits(7, 0) | bits(31, 16))?;
                check_zero(ty, 1, qw[1], bits(6, 0) | bits(63, 12))?;
                let gran = match gran {
                    1 => IotlbGran::Global,
                    2 => IotlbGran::Domain,
                    3 => IotlbGran::Page,
                    _ => return Err(bad()),
                };
                Ok(Self::Iotlb {
                    gran,
                    dw: qw[0] & (1 << 6) != 0,
                    dr: qw[0] & (1 << 7) != 0,
                    did,
                    addr: qw[1] & bits(63, 12),
                    am: (qw[1] & 0x3F) as u8,
                    ih: qw[1] & (1 << 6) != 0,
                })
            }
            5 => {
                check_zero(ty, 0, qw[0], bits(6, 0) | bits(63, 32))?;
                check_zero(ty, 1, qw[1], bits(63, 2))?;
                Ok(Self::Wait {
                    intr: qw[0] & (1 << 4) != 0,
                    sw: qw[0] & (1 << 5) != 0,
                    fence: qw[0] & (1 << 6) != 0,
                    status_data: (qw[0] >> 32) as u32,
                    status_addr: qw[1] & bits(63, 2),
                })
            }
            6 => {
                check_zero(ty, 0, qw[0], bits(5, 0) | bits(51, 16))?;
                check_zero(ty, 1, qw[1], bits(6, 0) | bits(63, 12))?;
                let gran = match gran {
                    2 => PiotlbGran::Pasid,
                    3 => PiotlbGran::Page,
                    _ => return Err(bad()),
                };
                Ok(Self::PasidIotlb {
                    gran,
                    did,
                    pasid: ((qw[0] >> 32) & 0xF_FFFF) as u32,
                    addr: qw[1] & bits(63, 12),
                    am: (qw[1] & 0x3F) as u8,
                    ih: qw[1] & (1 << 6) != 0,
                })
            }
            _ => {
                check_zero(ty, 0, qw[0], bits(5, 0) | bits(51, 16))?;
                check_zero(ty, 1, qw[1], 0)?;
                let gran = match gran {
                    0 => PcGran::Domain,
                    1 => PcGran::Pasid,
                    3 => PcGran::Global,
                    _ => return Err(bad()),
                };
                Ok(Self::PasidCache {
                    gran,
                    did,
                    pasid: ((qw[0] >> 32) & 0xF_FFFF) as u32,
                })
            }
        }
    }
}

impl fmt::Display for Descriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ContextCache { gran, did, sid, fm } => {
                write!(f, "cc {gran:?} did={did} sid={sid:#06x} fm={fm}")
            }
            Self::Iotlb {
                gran,
                did,
                addr,
                am,
                ih,
                ..
            } => {
                write!(
                    f,
                    "iotlb {gran:?} did={did} addr={addr:#x} am={am} ih={}",
                    ih as u8
                )
            }
            Self::Wait {
                sw,
                status_data,
                status_addr,
                ..
            } => {
                write!(
                    f,
                    "wait sw={} data={status_data:#x} addr={status_addr:#x}",
                    sw as u8
                )
            }
            Self::PasidIotlb {
                gran,
                did,
                pasid,
                addr,
                am,
                ih,
            } => write!(
                f,
                "piotlb {gran:?} did={did} pasid={pasid:#x} addr={addr:#x} am={am} ih={}",
                ih as u8
            ),
            Self::PasidCache { gran, did, pasid } => {
                write!(f, "pc {gran:?} did={did} pasid={pasid:#x}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Descriptor> {
        vec![
            Descriptor::ContextCache {
                gran: CcGran::Global,
                did: 0,
                sid: 0,
                fm: 0,
            },
            Descriptor::ContextCache {
                gran: CcGran::Device,
                did: 7,
                sid: 0x0310,
                fm: 2,
            },
            Descriptor::Iotlb {
                gran: IotlbGran::Page,
                dr: true,
                dw: false,
                did: 0xBEEF,
                addr: 0xFFFF_FFFF_F000,
                am: 9,
                ih: true,
            },
            Descriptor::Iotlb {
                gran: IotlbGran::Domain,
                dr: false,
                dw: true,
                did: 2,
                addr: 0,
                am: 0,
                ih: false,
            },
            Descriptor::Wait {
                intr: false,
                sw: true,
                fence: true,
                status_data: 0xA5A5_0001,
                status_addr: 0x1234_5678_9ABC,
            },
            Descriptor::PasidIotlb {
                gran: PiotlbGran::Page,
                did: 3,
                pasid: 0xF_FFFF,
                addr: 0x7000_0000,
                am: 3,
                ih: false,
            },
            Descriptor::PasidIotlb {
                gran: PiotlbGran::Pasid,
                did: 1,
                pasid: 5,
                addr: 0,
                am: 0,
                ih: false,
            },
            Descriptor::PasidCache {
                gran: PcGran::Pasid,
                did: 2,
                pasid: 0x12345,
            },
            Descriptor::PasidCache {
                gran: PcGran::Global,
                did: 0,
                pasid: 0,
            },
            Descriptor::PasidCache {
                gran: PcGran::Domain,
                did: 9,
                pasid: 0,
            },
        ]
    }

    #[test]
    fn round_trip() {
        for d in samples() {
            assert_eq!(Descriptor::decode(d.encode()), Ok(d), "{d}");
            assert_eq!(d.encode()[0] & 0xF, d.type_code() as u64);
        }
    }

    #[test]
    fn exact_bit_positions() {
        // Linux: QI_IOTLB_DID(did) = did << 16, QI_IOTLB_GRAN(PSI) = 3 << 4, DR = 1 << 7.
        let d = Descriptor::Iotlb {
            gran: IotlbGran::Page,
            dr: true,
            dw: false,
            did: 0x1234,
            addr: 0x5000,
            am: 1,
            ih: true,
        };
        assert_eq!(
            d.encode(),
            [0x1234_0000 | 0x80 | 0x30 | 2, 0x5000 | 0x40 | 1, 0, 0]
        );
        let p = Descriptor::PasidIotlb {
            gran: PiotlbGran::Pasid,
            did: 2,
            pasid: 7,
            addr: 0,
            am: 0,
            ih: false,
        };
        assert_eq!(p.encode()[0], 7 << 32 | 2 << 16 | 2 << 4 | 6);
        let w = Descriptor::Wait {
            intr: false,
            sw: true,
            fence: true,
            status_data: 1,
            status_addr: 0x1008,
        };
        assert_eq!(w.encode(), [1 << 32 | 1 << 6 | 1 << 5 | 5, 0x1008, 0, 0]);
        let c = Descriptor::PasidCache {
            gran: PcGran::Pasid,
            did: 2,
            pasid: 9,
        };
        assert_eq!(c.encode()[0], 9 << 32 | 2 << 16 | 1 << 4 | 7);
        let cc = Descriptor::ContextCache {
            gran: CcGran::Device,
            did: 0,
            sid: 0x0308,
            fm: 0,
        };
        assert_eq!(cc.encode()[0], 0x0308 << 32 | 3 << 4 | 1);
    }

    #[test]
    fn malformed_descriptors_are_errors() {
        for ty in [0u64, 3, 4, 8, 9, 15] {
            assert_eq!(
                Descriptor::decode([ty, 0, 0, 0]),
                Err(QiError::UnknownType(ty as u8))
            );
        }
        assert!(matches!(
            Descriptor::decode([2, 0, 0, 0]),
            Err(QiError::BadGranularity { .. })
        ));
        assert!(matches!(
            Descriptor::decode([6 | 1 << 4, 0, 0, 0]),
            Err(QiError::BadGranularity { .. })
        ));
        assert!(matches!(
            Descriptor::decode([7 | 2 << 4, 0, 0, 0]),
            Err(QiError::BadGranularity { .. })
        ));
        assert!(matches!(
            Descriptor::decode([1 | 1 << 4, 0, 1, 0]),
            Err(QiError::Reserved { qw: 2, .. })
        ));
        assert!(matches!(
            Descriptor::decode([5, 1, 0, 0]),
            Err(QiError::Reserved { qw: 1, .. })
        ));
        assert!(matches!(
            Descriptor::decode([1 | 1 << 4 | 1 << 9, 0, 0, 0]),
            Err(QiError::UnknownType(_))
        ));
    }
}
