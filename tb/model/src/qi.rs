//! Queued-invalidation descriptors, 256-bit form (VT-d 4.x section 6.5.2; Linux
//! drivers/iommu/intel/iommu.h `QI_*` macros and dmar.c `qi_flush_*()`). Only the types
//! docs/contract.md sections 2 and 6.3 define are representable: 1 context-cache, 2 IOTLB,
//! 3 device-TLB, 5 invalidation wait, 6 PASID-based IOTLB, 7 PASID cache, 8 PASID-based
//! device-TLB. Anything else decodes to [`QiError::UnknownType`], which the DUT reports as
//! FSTS.IQE.

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
    /// Type 3 (Linux `QI_DIOTLB_TYPE`). PFSID[3:0] 15:12, MIP/QDEP 20:16, SID 47:32,
    /// PFSID[15:4] 63:52; QW1 S 0, ADDR 63:12. `addr` is QW1 63:12 as written, including
    /// the ones that encode the size when `size` is set ([`ats_range`]).
    DevTlb {
        sid: u16,
        pfsid: u16,
        qdep: u8,
        addr: u64,
        size: bool,
    },
    /// Type 8 (Linux `QI_DEIOTLB_TYPE`). QDEP 8:4, PFSID[3:0] 15:12, SID 31:16,
    /// PASID 51:32, PFSID[15:4] 63:52; QW1 G 0, S 11, ADDR 63:12.
    PasidDevTlb {
        sid: u16,
        pfsid: u16,
        qdep: u8,
        pasid: u32,
        addr: u64,
        size: bool,
        global: bool,
    },
}

/// The byte range `[lo, hi]` an ATS-encoded address names (PCIe ATS: with S = 0 the 4 KiB
/// page at `addr`; with S = 1 the lowest 0 bit of ADDR[63:12] at position b gives a
/// naturally aligned range of 2^(b+1) bytes). ADDR all ones with S = 1 names the whole
/// 64-bit space.
pub fn ats_range(addr: u64, size: bool) -> (u64, u64) {
    let page = addr & bits(63, 12);
    if !size {
        return (page, page | 0xFFF);
    }
    let ones = (page >> 12).trailing_ones();
    if ones >= 51 {
        return (0, u64::MAX);
    }
    let span = 1u64 << (12 + ones + 1);
    let lo = page & !(span - 1);
    (lo, lo + (span - 1))
}

/// `pci_ats_queue_depth()` as the descriptors carry it: 32 (an ATS capability whose
/// Invalidate Queue Depth reads 0) is sent as 0.
fn qdep_field(qdep: u16) -> u8 {
    if qdep >= 32 {
        0
    } else {
        qdep as u8
    }
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
    /// `qi_desc_dev_iotlb(sid, pfsid, qdep, addr, mask)` (Linux 6.12 iommu.h): a type 3
    /// descriptor for the naturally aligned 2^`mask` pages at `addr`. With `mask` > 0 the
    /// bits below bit 12 + `mask` - 1 are set and S = 1; a queue depth of 32 or more goes
    /// out as 0.
    pub fn dev_tlb(sid: u16, pfsid: u16, qdep: u16, addr: u64, mask: u32) -> Self {
        let (addr, size) = dev_tlb_addr(addr, mask);
        Self::DevTlb {
            sid,
            pfsid,
            qdep: qdep_field(qdep),
            addr,
            size,
        }
    }

    /// `qi_desc_dev_iotlb_pasid(sid, pfsid, pasid, qdep, addr, size_order)` (Linux 6.12
    /// iommu.h): a type 8 descriptor, G = 0 (Linux 6.12 never sets it), the queue depth
    /// masked to 5 bits.
    pub fn pasid_dev_tlb(
        sid: u16,
        pfsid: u16,
        pasid: u32,
        qdep: u16,
        addr: u64,
        size_order: u32,
    ) -> Self {
        let (addr, size) = pasid_dev_tlb_addr(addr, size_order);
        Self::PasidDevTlb {
            sid,
            pfsid,
            qdep: (qdep & 0x1F) as u8,
            pasid: pasid & 0xF_FFFF,
            addr,
            size,
            global: false,
        }
    }

    /// The untranslated range a device-TLB descriptor invalidates, `None` for the others.
    pub fn dev_tlb_range(&self) -> Option<(u64, u64)> {
        match *self {
            Self::DevTlb { addr, size, .. } | Self::PasidDevTlb { addr, size, .. } => {
                Some(ats_range(addr, size))
            }
            _ => None,
        }
    }

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
            Self::DevTlb { .. } => 3,
            Self::PasidDevTlb { .. } => 8,
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
            Self::DevTlb {
                sid,
                pfsid,
                qdep,
                addr,
                size,
            } => [
                ty | pfsid_bits(pfsid) | ((qdep & 0x1F) as u64) << 16 | (sid as u64) << 32,
                (addr & bits(63, 12)) | size as u64,
                0,
                0,
            ],
            Self::PasidDevTlb {
                sid,
                pfsid,
                qdep,
                pasid,
                addr,
                size,
                global,
            } => [
                ty | ((qdep & 0x1F) as u64) << 4
                    | pfsid_bits(pfsid)
                    | (sid as u64) << 16
                    | ((pasid & 0xF_FFFF) as u64) << 32,
                (addr & bits(63, 12)) | (size as u64) << 11 | global as u64,
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
        if !matches!(ty, 1 | 2 | 3 | 5 | 6 | 7 | 8) || qw[0] & bits(11, 9) != 0 {
            return Err(QiError::UnknownType(ty | (((qw[0] >> 9) & 7) << 4) as u8));
        }
        let bad = || QiError::BadGranularity { ty, gran };
        check_zero(ty, 2, qw[2], 0)?;
        check_zero(ty, 3, qw[3], 0)?;
        let pfsid = ((qw[0] >> 12) & 0xF) as u16 | (((qw[0] >> 52) & 0xFFF) as u16) << 4;
        match ty {
            3 => {
                check_zero(
                    ty,
                    0,
                    qw[0],
                    bits(3, 0) | bits(20, 12) | bits(47, 32) | bits(63, 52),
                )?;
                check_zero(ty, 1, qw[1], 1 | bits(63, 12))?;
                Ok(Self::DevTlb {
                    sid: (qw[0] >> 32) as u16,
                    pfsid,
                    qdep: ((qw[0] >> 16) & 0x1F) as u8,
                    addr: qw[1] & bits(63, 12),
                    size: qw[1] & 1 != 0,
                })
            }
            8 => {
                check_zero(ty, 0, qw[0], bits(8, 0) | bits(51, 12) | bits(63, 52))?;
                check_zero(ty, 1, qw[1], 1 | 1 << 11 | bits(63, 12))?;
                Ok(Self::PasidDevTlb {
                    sid: (qw[0] >> 16) as u16,
                    pfsid,
                    qdep: ((qw[0] >> 4) & 0x1F) as u8,
                    pasid: ((qw[0] >> 32) & 0xF_FFFF) as u32,
                    addr: qw[1] & bits(63, 12),
                    size: qw[1] & (1 << 11) != 0,
                    global: qw[1] & 1 != 0,
                })
            }
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

/// PFSID split as `QI_DEV_IOTLB_PFSID()`: bits 3:0 in QW0 15:12, bits 15:4 in QW0 63:52.
fn pfsid_bits(pfsid: u16) -> u64 {
    u64::from(pfsid & 0xF) << 12 | u64::from(pfsid >> 4) << 52
}

/// QW1 ADDR and S as `qi_desc_dev_iotlb()` builds them for 2^`mask` pages: the bits
/// below bit 11 + `mask` are set, that bit is left as the address has it.
fn dev_tlb_addr(addr: u64, mask: u32) -> (u64, bool) {
    if mask == 0 {
        return (addr & bits(63, 12), false);
    }
    let low = (1u64 << (11 + mask.min(52))) - 1;
    ((addr | low) & bits(63, 12), true)
}

/// QW1 ADDR and S as `qi_desc_dev_iotlb_pasid()` builds them for 2^`order` pages: bits
/// 11 + `order` down to 12 set, then bit 11 + `order` cleared.
fn pasid_dev_tlb_addr(addr: u64, order: u32) -> (u64, bool) {
    if order == 0 {
        return (addr & bits(63, 12), false);
    }
    let top = 11 + order.min(52);
    (
        ((addr & bits(63, 12)) | bits(top, 12)) & !(1u64 << top),
        true,
    )
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
            Self::DevTlb {
                sid,
                pfsid,
                qdep,
                addr,
                size,
            } => write!(
                f,
                "devtlb sid={sid:#06x} pfsid={pfsid:#06x} qdep={qdep} addr={addr:#x} s={}",
                size as u8
            ),
            Self::PasidDevTlb {
                sid,
                pfsid,
                qdep,
                pasid,
                addr,
                size,
                global,
            } => write!(
                f,
                "pdevtlb sid={sid:#06x} pfsid={pfsid:#06x} qdep={qdep} pasid={pasid:#x} \
                 addr={addr:#x} s={} g={}",
                size as u8, global as u8
            ),
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
            Descriptor::dev_tlb(0x0180, 0xABCD, 31, 0x7654_3000, 0),
            Descriptor::dev_tlb(0xFFFF, 0x0180, 32, 0x40_0000, 9),
            Descriptor::pasid_dev_tlb(0x0180, 0x1234, 0xF_FFFF, 8, 0x1000, 0),
            Descriptor::pasid_dev_tlb(0x0201, 0xFFFF, 1, 32, 0, DEVTLB_ALL),
            Descriptor::PasidDevTlb {
                sid: 0x0108,
                pfsid: 0x0108,
                qdep: 0,
                pasid: 3,
                addr: 0x5000,
                size: false,
                global: true,
            },
        ]
    }

    /// `MAX_AGAW_PFN_WIDTH`: the mask Linux passes to flush a whole device TLB.
    const DEVTLB_ALL: u32 = 52;

    // Linux 6.12 drivers/iommu/intel/iommu.h, spelled out.
    fn linux_dev_iotlb_pfsid(pfsid: u64) -> u64 {
        (pfsid & 0xF) << 12 | ((pfsid >> 4) & 0xFFF) << 52
    }
    fn linux_dev_iotlb_qw0(sid: u64, qdep: u64, pfsid: u64) -> u64 {
        (sid & 0xFFFF) << 32 | (qdep & 0x1F) << 16 | 3 | linux_dev_iotlb_pfsid(pfsid)
    }
    fn linux_dev_eiotlb_qw0(sid: u64, pfsid: u64, pasid: u64, qdep: u64) -> u64 {
        (pasid & 0xF_FFFF) << 32
            | (sid & 0xFFFF) << 16
            | (qdep & 0x1F) << 4
            | 8
            | linux_dev_iotlb_pfsid(pfsid)
    }

    #[test]
    fn device_tlb_descriptors_match_linux_macros() {
        let d = Descriptor::dev_tlb(0x0180, 0xABCD, 17, 0x4000, 0);
        assert_eq!(
            d.encode(),
            [linux_dev_iotlb_qw0(0x0180, 17, 0xABCD), 0x4000, 0, 0]
        );
        // QI_DEV_IOTLB_SIZE is bit 0; qdep >= QI_DEV_IOTLB_MAX_INVS goes out as 0.
        let d = Descriptor::dev_tlb(0x0180, 0x0180, 32, 0x8000, 1);
        assert_eq!(
            d.encode(),
            [linux_dev_iotlb_qw0(0x0180, 0, 0x0180), 0x8000 | 1, 0, 0]
        );
        // QI_DEV_EIOTLB_SIZE is bit 11, PASID 51:32, SID 31:16, QDEP 8:4.
        let p = Descriptor::pasid_dev_tlb(0x0180, 0xABCD, 0x12345, 9, 0x20_0000, 9);
        assert_eq!(
            p.encode(),
            [
                linux_dev_eiotlb_qw0(0x0180, 0xABCD, 0x12345, 9),
                0x20_0000 | 0xF_F000 | 1 << 11,
                0,
                0
            ]
        );
        let g = Descriptor::PasidDevTlb {
            sid: 1,
            pfsid: 1,
            qdep: 0,
            pasid: 2,
            addr: 0,
            size: false,
            global: true,
        };
        assert_eq!(g.encode()[1], 1);
    }

    #[test]
    fn device_tlb_ranges_decode_to_what_linux_asked_for() {
        for order in 0..=DEVTLB_ALL {
            let span = 0x1000u128 << order;
            let addr = if order < 20 {
                (0x1234_5678_9000u64 >> 12 << 12) & !(span as u64 - 1)
            } else {
                0
            };
            let want = if order >= DEVTLB_ALL {
                (0, u64::MAX)
            } else {
                (addr, addr + (span as u64 - 1))
            };
            let d3 = Descriptor::dev_tlb(1, 1, 0, addr, order);
            let d8 = Descriptor::pasid_dev_tlb(1, 1, 1, 0, addr, order);
            assert_eq!(d3.dev_tlb_range(), Some(want), "type 3, order {order}");
            assert_eq!(d8.dev_tlb_range(), Some(want), "type 8, order {order}");
        }
        // The whole space: ADDR 62:12 set, bit 63 clear, S = 1 in both encodings.
        let full = Descriptor::dev_tlb(1, 1, 0, 0, DEVTLB_ALL).encode()[1];
        assert_eq!(full, 0x7FFF_FFFF_FFFF_F001);
        let full8 = Descriptor::pasid_dev_tlb(1, 1, 1, 0, 0, DEVTLB_ALL).encode()[1];
        assert_eq!(full8, 0x7FFF_FFFF_FFFF_F000 | 1 << 11);
        assert_eq!(ats_range(u64::MAX, true), (0, u64::MAX));
        assert_eq!(ats_range(0x5FFF, false), (0x5000, 0x5FFF));
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
        for ty in [0u64, 4, 9, 15] {
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
        assert!(matches!(
            Descriptor::decode([3 | 1 << 4, 0, 0, 0]),
            Err(QiError::Reserved { qw: 0, .. })
        ));
        assert!(matches!(
            Descriptor::decode([3, 1 << 11, 0, 0]),
            Err(QiError::Reserved { qw: 1, .. })
        ));
        assert!(matches!(
            Descriptor::decode([8, 1 << 1, 0, 0]),
            Err(QiError::Reserved { qw: 1, .. })
        ));
        assert!(matches!(
            Descriptor::decode([8 | 1 << 52 | 1 << 9, 0, 0, 0]),
            Err(QiError::UnknownType(_))
        ));
    }
}
