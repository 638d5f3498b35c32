//! Where a translation structure of a requester is in memory, found by reading the tables
//! from RTADDR down the way the walker does (docs/contract.md section 2.2). Tests and
//! vectors use it to name an entry to damage or inspect ("the PASID entry of 00:03.0 PASID
//! 5", "the level-2 entry that maps IOVA X") without knowing where the driver put it.

use crate::mem::PhysMem;
use crate::tables::{self, context as ce, pasid_dir as pde, pasid_entry as pe, ss};

/// A structure that is not there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LocateError {
    #[error("reading {pa:#x} failed")]
    Read { pa: u64 },
    #[error("{rid:04x} has no context table (root entry {entry:#x})")]
    NoContextTable { rid: u16, entry: u64 },
    #[error("{rid:04x} PASID {pasid:#x}: the PASID-directory entry is not present ({entry:#x})")]
    NoPasidTable { rid: u16, pasid: u32, entry: u64 },
    #[error("{rid:04x} PASID {pasid:#x} has PGTT {pgtt:#05b}: no page table")]
    NoPageTable { rid: u16, pasid: u32, pgtt: u64 },
    #[error("{addr:#x} has no level-{below} table (level-{level} entry {entry:#x})", below = level - 1)]
    NoTable { addr: u64, level: u32, entry: u64 },
}

/// Finds structures in `mem` below the root table at `rtaddr` (bits 63:12 used).
pub struct Locator<'m, M: PhysMem + ?Sized> {
    mem: &'m M,
    root: u64,
}

impl<'m, M: PhysMem + ?Sized> Locator<'m, M> {
    pub fn new(mem: &'m M, rtaddr: u64) -> Self {
        Self {
            mem,
            root: rtaddr & tables::ADDR_MASK,
        }
    }

    fn rd(&self, pa: u64) -> Result<u64, LocateError> {
        self.mem.read64(pa).map_err(|_| LocateError::Read { pa })
    }

    /// The 16-byte root entry of `rid`'s bus.
    pub fn root_entry(&self, rid: u16) -> u64 {
        self.root + u64::from(rid >> 8) * 16
    }

    /// The half of the root entry `rid` uses: the lower one for devfn 0x00-0x7F, the upper
    /// one for 0x80-0xFF.
    pub fn root_half(&self, rid: u16) -> u64 {
        self.root_entry(rid) + if rid & 0x80 != 0 { 8 } else { 0 }
    }

    /// `rid`'s 32-byte scalable-mode context entry.
    pub fn context_entry(&self, rid: u16) -> Result<u64, LocateError> {
        let entry = self.rd(self.root_half(rid))?;
        if entry & tables::root::PRESENT == 0 {
            return Err(LocateError::NoContextTable { rid, entry });
        }
        Ok((entry & tables::ADDR_MASK) + u64::from(rid & 0x7F) * ce::SIZE)
    }

    /// The PASID a request without a prefix uses: the context entry's RID_PASID.
    pub fn rid_pasid(&self, rid: u16) -> Result<u32, LocateError> {
        let c = self.context_entry(rid)?;
        Ok((self.rd(c + 8)? & ce::RID_PASID_MASK) as u32)
    }

    /// The PASID-directory entry of `pasid`.
    pub fn pasid_dir_entry(&self, rid: u16, pasid: u32) -> Result<u64, LocateError> {
        let c = self.context_entry(rid)?;
        let dir = self.rd(c)? & tables::ADDR_MASK;
        Ok(dir + u64::from(pasid >> pde::SHIFT) * 8)
    }

    /// The 64-byte PASID-table entry of `pasid`.
    pub fn pasid_entry(&self, rid: u16, pasid: u32) -> Result<u64, LocateError> {
        let de = self.pasid_dir_entry(rid, pasid)?;
        let entry = self.rd(de)?;
        if entry & pde::P == 0 {
            return Err(LocateError::NoPasidTable { rid, pasid, entry });
        }
        Ok((entry & tables::ADDR_MASK) + u64::from(pasid & 0x3F) * pe::SIZE)
    }

    /// The paging entry at `level` (4 = top, 1 = 4 KiB leaf) that maps `addr` in the page
    /// table `pasid`'s entry points at (second stage, or first stage).
    pub fn pte(&self, rid: u16, pasid: u32, addr: u64, level: u32) -> Result<u64, LocateError> {
        let e = self.pasid_entry(rid, pasid)?;
        let q0 = self.rd(e)?;
        let pgtt = (q0 & pe::QW0_PGTT_MASK) >> pe::QW0_PGTT_SHIFT;
        let mut table = match pgtt {
            pe::PGTT_SS => q0 & tables::ADDR_MASK,
            pe::PGTT_FS => self.rd(e + 16)? & tables::ADDR_MASK,
            _ => return Err(LocateError::NoPageTable { rid, pasid, pgtt }),
        };
        for l in (level + 1..=4).rev() {
            let entry = self.rd(table + tables::level_index(addr, l) * 8)?;
            // Second-stage R|W and first-stage P|R/W sit in bits 1:0 of both formats.
            if entry & (ss::R | ss::W) == 0 || entry & ss::PS != 0 {
                return Err(LocateError::NoTable {
                    addr,
                    level: l,
                    entry,
                });
            }
            table = entry & tables::ADDR_MASK;
        }
        Ok(table + tables::level_index(addr, level) * 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::Mem;

    #[test]
    fn walks_down_to_the_leaf_and_names_what_is_missing() {
        let mut m = Mem::new();
        let root = 0x10_000;
        let ctx = 0x11_000;
        let dir = 0x12_000;
        let ptab = 0x13_000;
        let (l4, l3, l2, l1) = (0x20_000, 0x21_000, 0x22_000, 0x23_000);
        let rid = 0x0310; // bus 3, devfn 0x10 (lower half)
        m.write64(root + 3 * 16, ctx | 1).unwrap();
        m.write64(ctx + 0x10 * 32, dir | 1).unwrap();
        m.write64(ctx + 0x10 * 32 + 8, 0).unwrap();
        m.write64(dir, ptab | 1).unwrap();
        m.write64(ptab + 5 * 64, l4 | pe::PGTT_SS << pe::QW0_PGTT_SHIFT | 1)
            .unwrap();
        let iova = 0x4020_3000u64;
        m.write64(l4 + tables::level_index(iova, 4) * 8, l3 | 3)
            .unwrap();
        m.write64(l3 + tables::level_index(iova, 3) * 8, l2 | 3)
            .unwrap();
        m.write64(l2 + tables::level_index(iova, 2) * 8, l1 | 3)
            .unwrap();
        let loc = Locator::new(&m, root | 0x400);
        assert_eq!(loc.root_half(rid), root + 48);
        assert_eq!(loc.root_half(0x0390), root + 56);
        assert_eq!(loc.context_entry(rid), Ok(ctx + 0x10 * 32));
        assert_eq!(loc.rid_pasid(rid), Ok(0));
        assert_eq!(loc.pasid_entry(rid, 5), Ok(ptab + 5 * 64));
        assert_eq!(
            loc.pte(rid, 5, iova, 1),
            Ok(l1 + tables::level_index(iova, 1) * 8)
        );
        assert_eq!(
            loc.pte(rid, 5, iova, 4),
            Ok(l4 + tables::level_index(iova, 4) * 8)
        );
        assert!(matches!(
            loc.context_entry(0x0390),
            Err(LocateError::NoContextTable { .. })
        ));
        assert!(matches!(
            loc.pasid_entry(rid, 64),
            Err(LocateError::NoPasidTable { .. })
        ));
        assert!(matches!(
            loc.pte(rid, 5, iova + (1 << 30), 1),
            Err(LocateError::NoTable { level: 3, .. })
        ));
    }
}
