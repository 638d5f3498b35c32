//! The walker's steps: root and context entry, PASID selection, PASID directory and
//! table entry, the page walk (from the root or from a cached non-leaf entry) and the
//! leaf checks (docs/contract.md section 2.6).

use super::{AddrType, CtxInfo, HwState, Leaf, PasidInfo, Pgtt, Request};
use crate::fault::FaultReason;
use crate::mem::{PhysMem, PAGE_SIZE};
use crate::regs;
use crate::tables::{self, context as ce, pasid_dir as pde, pasid_entry as pe};

pub(super) type Fault = (FaultReason, bool);

fn read<M: PhysMem + ?Sized>(mem: &M, pa: u64, f: FaultReason, fpd: bool) -> Result<u64, Fault> {
    mem.read64(pa).map_err(|_| (f, fpd))
}

/// Step 1: malformed requests.
pub(super) fn malformed(req: &Request) -> bool {
    let len = u64::from(req.len.max(1));
    (req.addr & (PAGE_SIZE - 1)) + len > PAGE_SIZE
        || req.pasid.is_some_and(|p| p > 0xF_FFFF)
        || (req.pasid.is_none() && (req.pmr || req.er))
        || (req.write && req.at == AddrType::TranslationRequest)
}

/// Steps 3-4: root and context entry for `rid`.
pub fn read_context<M: PhysMem + ?Sized>(
    hw: &HwState,
    mem: &M,
    rid: u16,
) -> Result<CtxInfo, Fault> {
    let bus = u64::from(rid >> 8);
    let devfn = u64::from(rid & 0xFF);
    let root = (hw.rtaddr & regs::RTADDR_PTR_MASK) + bus * 16 + if devfn >= 0x80 { 8 } else { 0 };
    let r = read(mem, root, FaultReason::RootAccess, false)?;
    if r & tables::root::PRESENT == 0 {
        return Err((FaultReason::RootNotPresent, false));
    }
    if r & tables::root::RSVD != 0 {
        return Err((FaultReason::RootReserved, false));
    }
    let ctx = (r & !0xFFF) + (devfn & 0x7F) * ce::SIZE;
    let mut q = [0u64; 4];
    for (i, w) in q.iter_mut().enumerate() {
        *w = read(mem, ctx + 8 * i as u64, FaultReason::ContextAccess, false)?;
    }
    if q[0] & ce::P == 0 {
        return Err((FaultReason::ContextNotPresent, false));
    }
    if q[0] & ce::QW0_RSVD != 0 || q[1] & ce::QW1_RSVD != 0 || q[2] != 0 || q[3] != 0 {
        return Err((FaultReason::ContextReserved, false));
    }
    Ok(CtxInfo {
        fpd: q[0] & ce::FPD != 0,
        dte: q[0] & ce::DTE != 0,
        paside: q[0] & ce::PASIDE != 0,
        pdts: ((q[0] & ce::PDTS_MASK) >> ce::PDTS_SHIFT) as u8,
        pasid_dir: q[0] & tables::ADDR_MASK,
        rid_pasid: (q[1] & ce::RID_PASID_MASK) as u32,
        rid_priv: q[1] & ce::RID_PRIV != 0,
    })
}

/// Step 5: the PASID to use, with the 0x45 / 0x46 checks.
pub fn select_pasid(ctx: &CtxInfo, req: &Request) -> Result<u32, Fault> {
    let pasid = match req.pasid {
        Some(_) if !ctx.paside => return Err((FaultReason::PasidDisabled, ctx.fpd)),
        Some(p) => p,
        None => ctx.rid_pasid,
    };
    if u64::from(pasid >> pde::SHIFT) >= 1u64 << (ctx.pdts + 7) {
        return Err((FaultReason::PasidBeyondDirectory, ctx.fpd));
    }
    Ok(pasid)
}

/// Step 6: PASID directory and table entry.
pub fn read_pasid_entry<M: PhysMem + ?Sized>(
    mem: &M,
    ctx: &CtxInfo,
    pasid: u32,
) -> Result<PasidInfo, Fault> {
    let fpd = ctx.fpd;
    let d = read(
        mem,
        ctx.pasid_dir + u64::from(pasid >> pde::SHIFT) * 8,
        FaultReason::PasidDirAccess,
        fpd,
    )?;
    if d & pde::P == 0 {
        return Err((FaultReason::PasidDirNotPresent, fpd));
    }
    if d & pde::RSVD != 0 {
        return Err((FaultReason::PasidDirReserved, fpd));
    }
    let fpd = fpd || d & pde::FPD != 0;
    let base = (d & tables::ADDR_MASK) + u64::from(pasid & 0x3F) * pe::SIZE;
    let mut q = [0u64; 8];
    for (i, w) in q.iter_mut().enumerate() {
        *w = read(mem, base + 8 * i as u64, FaultReason::PasidEntryAccess, fpd)?;
    }
    if q[0] & pe::QW0_P == 0 {
        return Err((FaultReason::PasidEntryNotPresent, fpd));
    }
    let pgtt = match (q[0] & pe::QW0_PGTT_MASK) >> pe::QW0_PGTT_SHIFT {
        pe::PGTT_FS => Some(Pgtt::FirstStage),
        pe::PGTT_SS => Some(Pgtt::SecondStage),
        pe::PGTT_PT => Some(Pgtt::PassThrough),
        _ => None,
    };
    let high = !(tables::ADDR_MASK & !tables::ABOVE_HAW) & !0xFFF;
    let ptr_rsvd = match pgtt {
        Some(Pgtt::SecondStage) => q[0] & high != 0,
        Some(Pgtt::FirstStage) => q[2] & high != 0,
        _ => false,
    };
    if q[0] & pe::QW0_RSVD != 0
        || q[1] & pe::QW1_RSVD != 0
        || q[2] & pe::QW2_RSVD != 0
        || q[3..].iter().any(|&w| w != 0)
        || ptr_rsvd
    {
        return Err((FaultReason::PasidEntryReserved, fpd));
    }
    let fpd = fpd || q[0] & pe::QW0_FPD != 0;
    let aw = (q[0] & pe::QW0_AW_MASK) >> pe::QW0_AW_SHIFT;
    let fspm = (q[2] & pe::QW2_FSPM_MASK) >> pe::QW2_FSPM_SHIFT;
    let pgtt = match pgtt {
        Some(Pgtt::SecondStage) if aw != pe::AW_4LEVEL => None,
        Some(Pgtt::FirstStage) if fspm != 0 => None,
        p => p,
    };
    let pgtt = pgtt.ok_or((FaultReason::InvalidPgtt, fpd))?;
    Ok(PasidInfo {
        fpd,
        did: (q[1] & pe::QW1_DID_MASK) as u16,
        pgtt,
        sre: q[2] & pe::QW2_SRE != 0,
        ere: q[2] & pe::QW2_ERE != 0,
        ss_ptr: q[0] & tables::ADDR_MASK,
        fs_ptr: q[2] & tables::ADDR_MASK,
    })
}

/// Effective (PMR, ER) of a request: from the prefix, or RID_PRIV for requests without one.
pub fn effective_priv(ctx: &CtxInfo, req: &Request) -> (bool, bool) {
    match req.pasid {
        Some(_) => (req.pmr, req.er),
        None => (ctx.rid_priv, false),
    }
}

/// Step 7.
pub fn check_entry_perms(p: &PasidInfo, pmr: bool, er: bool) -> Result<(), FaultReason> {
    if er && !p.ere {
        return Err(FaultReason::ErWithoutEre);
    }
    if pmr && !p.sre {
        return Err(FaultReason::PmrWithoutSre);
    }
    Ok(())
}

/// Step 8, the walk proper: the leaf that maps `addr` (no permission checks).
pub fn walk_leaf<M: PhysMem + ?Sized>(
    mem: &M,
    p: &PasidInfo,
    addr: u64,
) -> Result<Leaf, FaultReason> {
    walk_tables(mem, p, addr, None, &mut Vec::new())
}

/// A present non-leaf paging entry as a paging-structure cache holds it (VT-d 6.2): the
/// table it points to and the permissions accumulated from the root down to and
/// including it. Tagged in [`crate::golden::MaxCache`] by DID, stage, PASID (first stage),
/// `level` and `va`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NonLeaf {
    /// Level of the entry: 4 (PML4E), 3 (PDPTE) or 2 (PDE).
    pub level: u32,
    /// Base of the region the entry maps: the address bits above the level.
    pub va: u64,
    /// The next-level table.
    pub table: u64,
    /// Second stage: AND of R; first stage: true.
    pub r: bool,
    /// AND of W (second stage) or R/W (first stage).
    pub w: bool,
    /// First stage: AND of U/S; second stage: true.
    pub us: bool,
    /// First stage: OR of XD.
    pub xd: bool,
}

impl NonLeaf {
    /// Bytes of address space the entry maps.
    pub fn size(&self) -> u64 {
        tables::level_size(self.level)
    }
    /// Whether the entry's region overlaps `[lo, hi)`.
    pub fn overlaps(&self, lo: u64, hi: u64) -> bool {
        self.va < hi && lo < self.va + self.size()
    }
}

/// The page walk of step 8 for a first- or second-stage PASID entry, from the table root
/// or, with `from`, from a cached non-leaf entry (the levels above it are not read).
/// Every non-leaf entry read is appended to `path`. Pass-through returns its identity leaf.
pub fn walk_tables<M: PhysMem + ?Sized>(
    mem: &M,
    p: &PasidInfo,
    addr: u64,
    from: Option<&NonLeaf>,
    path: &mut Vec<NonLeaf>,
) -> Result<Leaf, FaultReason> {
    let first = match p.pgtt {
        Pgtt::PassThrough => {
            if addr >> tables::HAW != 0 {
                return Err(FaultReason::PtBeyondHaw);
            }
            let va = addr & !(PAGE_SIZE - 1);
            return Ok(Leaf {
                va,
                pa: va,
                size: PAGE_SIZE,
                r: true,
                w: true,
                us: true,
                xd: false,
                g: false,
            });
        }
        Pgtt::SecondStage => {
            if addr >> tables::HAW != 0 {
                return Err(FaultReason::SsBeyondHaw);
            }
            false
        }
        Pgtt::FirstStage => {
            let top = addr >> 47;
            if top != 0 && top != 0x1_FFFF {
                return Err(FaultReason::NonCanonical);
            }
            true
        }
    };
    let (access, not_present, reserved) = if first {
        (
            FaultReason::FsAccess,
            FaultReason::FsNotPresent,
            FaultReason::FsReserved,
        )
    } else {
        (
            FaultReason::SsAccess,
            FaultReason::SsNotPresent,
            FaultReason::SsReserved,
        )
    };
    let (mut table, top, mut r, mut w, mut us, mut xd) = match from {
        Some(n) => (n.table, n.level - 1, n.r, n.w, n.us, n.xd),
        None if first => (p.fs_ptr, 4, true, true, true, false),
        None => (p.ss_ptr, 4, true, true, true, false),
    };
    for level in (1..=top).rev() {
        let e = mem
            .read64(table + tables::level_index(addr, level) * 8)
            .map_err(|_| access)?;
        let present = if first {
            e & tables::fs::P != 0
        } else {
            e & (tables::ss::R | tables::ss::W) != 0
        };
        if !present {
            return Err(not_present);
        }
        let ps = e & if first {
            tables::fs::PS
        } else {
            tables::ss::PS
        } != 0;
        let size = tables::level_size(level);
        let leaf = level == 1 || ps;
        // First stage: bit 12 of a superpage entry is PAT; the frame bits below the size
        // are reserved.
        let low = match (leaf && level > 1, first) {
            (false, _) => 0,
            (true, true) => (size - 1) & !0x1FFF,
            (true, false) => (size - 1) & !0xFFF,
        };
        if e & tables::ABOVE_HAW != 0 || (ps && level == 4) || e & low != 0 {
            return Err(reserved);
        }
        if first {
            w &= e & tables::fs::RW != 0;
            us &= e & tables::fs::US != 0;
            xd |= e & tables::fs::XD != 0;
        } else {
            r &= e & tables::ss::R != 0;
            w &= e & tables::ss::W != 0;
        }
        if leaf {
            let va = addr & !(size - 1);
            let pa = e & tables::ADDR_MASK & !(size - 1);
            return Ok(Leaf {
                va,
                pa,
                size,
                r,
                w,
                us,
                xd,
                g: first && e & tables::fs::G != 0,
            });
        }
        table = e & tables::ADDR_MASK;
        path.push(NonLeaf {
            level,
            va: addr & !(size - 1),
            table,
            r,
            w,
            us,
            xd,
        });
    }
    Err(not_present)
}

/// Step 8, permission checks on a leaf, and step 9: the physical address.
pub fn check_leaf(
    p: &PasidInfo,
    leaf: &Leaf,
    addr: u64,
    write: bool,
    pmr: bool,
    er: bool,
) -> Result<u64, FaultReason> {
    match p.pgtt {
        Pgtt::PassThrough => {}
        Pgtt::SecondStage => {
            if !write && !leaf.r {
                return Err(FaultReason::ReadDenied);
            }
            if write && !leaf.w {
                return Err(FaultReason::WriteDenied);
            }
        }
        Pgtt::FirstStage => {
            if !pmr && !leaf.us {
                return Err(FaultReason::UserToSupervisorPage);
            }
            if write && !leaf.w {
                return Err(FaultReason::WriteDenied);
            }
            if er && leaf.xd {
                return Err(FaultReason::ExecuteXd);
            }
        }
    }
    Ok(leaf.pa | (addr & (leaf.size - 1)))
}
