//! Golden walker: a software VT-d scalable-mode translation of one request, and the
//! maximal cache.
//!
//! The walker follows docs/contract.md section 2 "Translation flow and check order" (VT-d 4.x
//! chapter 3 "DMA Remapping" and section 7.1.3 for the fault reasons): root entry by bus,
//! scalable-mode context entry by devfn, PASID directory and table entry, then the
//! first-stage (IA-32e, VT-d 3.6), second-stage (VT-d 3.7) or pass-through translation.
//! The first fault wins. It depends only on the register state ([`HwState`]) and on a
//! [`PhysMem`], never on the kernel or driver layers, so it can judge a memory image
//! written by any software.
//!
//! [`MaxCache`] keeps every context entry, PASID entry and translation it ever used until an
//! invalidation descriptor removes it (VT-d 6.5 "Invalidation of Translation Caches"),
//! which shows the worst staleness a legal implementation may exhibit.

use crate::driver::{HwError, IommuHw};
use crate::fault::{FaultReason, FaultRecord};
use crate::mem::{Mem, PhysMem, PAGE_SIZE};
use crate::qi::{CcGran, Descriptor, IotlbGran, PcGran, PiotlbGran};
use crate::regs;
use crate::tables::{self, context as ce, pasid_dir as pde, pasid_entry as pe};
use std::collections::BTreeMap;
use std::fmt;

/// The register state the walker depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HwState {
    /// GSTS.TES.
    pub te: bool,
    /// RTADDR including TTM (bits 11:10).
    pub rtaddr: u64,
}

impl HwState {
    /// Translation enabled with a scalable-mode root table at `root`.
    pub fn scalable(root: u64) -> Self {
        Self {
            te: true,
            rtaddr: (root & regs::RTADDR_PTR_MASK) | regs::RTADDR_TTM_SCALABLE,
        }
    }
}

/// One upstream memory request as the translation unit sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    /// Requester ID, bus << 8 | dev << 3 | fn.
    pub rid: u16,
    /// PASID from the end-to-end prefix, if any.
    pub pasid: Option<u32>,
    /// Privileged Mode Requested (prefix bit 23).
    pub pmr: bool,
    /// Execute Requested (prefix bit 22).
    pub er: bool,
    pub addr: u64,
    /// Length in bytes (0 is treated as 1: a zero-length read still names one byte).
    pub len: u32,
    pub write: bool,
}

impl Request {
    /// A user-privilege read of `len` bytes without PASID.
    pub fn read(rid: u16, addr: u64, len: u32) -> Self {
        Self {
            rid,
            pasid: None,
            pmr: false,
            er: false,
            addr,
            len,
            write: false,
        }
    }
    /// A user-privilege write of `len` bytes without PASID.
    pub fn write(rid: u16, addr: u64, len: u32) -> Self {
        Self {
            write: true,
            ..Self::read(rid, addr, len)
        }
    }
    /// The same request with a PASID prefix.
    pub fn with_pasid(self, pasid: u32) -> Self {
        Self {
            pasid: Some(pasid),
            ..self
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rid={:02x}:{:02x}.{} ",
            if self.write { "write" } else { "read" },
            self.rid >> 8,
            (self.rid >> 3) & 0x1F,
            self.rid & 7
        )?;
        if let Some(p) = self.pasid {
            write!(
                f,
                "pasid={p:#x} pmr={} er={} ",
                self.pmr as u8, self.er as u8
            )?;
        }
        write!(f, "addr={:#x} len={}", self.addr, self.len)
    }
}

/// What happens to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Forwarded with this physical address.
    Translated(u64),
    /// Blocked with this fault reason.
    Fault(FaultReason),
    /// GSTS.TES = 0: forwarded with the address unchanged.
    Untranslated,
    /// Malformed TLP (crosses 4 KiB, PASID wider than 20 bits, PMR/ER without a prefix):
    /// never translated; a UR completion for non-posted requests, nothing recorded.
    Malformed,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Translated(pa) => write!(f, "Translated({pa:#x})"),
            Self::Fault(r) => write!(f, "Fault({r})"),
            Self::Untranslated => write!(f, "Untranslated"),
            Self::Malformed => write!(f, "Malformed"),
        }
    }
}

/// Decoded scalable-mode context entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtxInfo {
    pub fpd: bool,
    pub paside: bool,
    pub pdts: u8,
    pub pasid_dir: u64,
    pub rid_pasid: u32,
    pub rid_priv: bool,
}

/// PASID-granular translation type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pgtt {
    FirstStage,
    SecondStage,
    PassThrough,
}

/// Decoded PASID-table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasidInfo {
    pub fpd: bool,
    pub did: u16,
    pub pgtt: Pgtt,
    pub sre: bool,
    pub ere: bool,
    pub ss_ptr: u64,
    pub fs_ptr: u64,
}

/// A leaf translation: one page of `size` bytes and the permissions accumulated over the
/// walk (for pass-through, a 4 KiB page with every permission).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub va: u64,
    pub pa: u64,
    pub size: u64,
    /// Second stage: R; first stage: present.
    pub r: bool,
    pub w: bool,
    /// First stage: AND of U/S; second stage and pass-through: true.
    pub us: bool,
    /// First stage: OR of XD.
    pub xd: bool,
}

/// The result of a walk with the context the fault recorder and the cache need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Walk {
    pub outcome: Outcome,
    /// A fault is recorded (no FPD=1 on the path). False for non-faults.
    pub record: bool,
    /// The PASID that selected the PASID entry (prefix or RID_PASID).
    pub pasid: Option<u32>,
    pub pasid_entry: Option<PasidInfo>,
    pub leaf: Option<Leaf>,
}

impl Walk {
    fn done(outcome: Outcome) -> Self {
        Self {
            outcome,
            record: false,
            pasid: None,
            pasid_entry: None,
            leaf: None,
        }
    }
}

impl Walk {
    /// What the fault recording register must hold after this walk, if anything.
    pub fn fault_record(&self, req: &Request) -> Option<FaultRecord> {
        match self.outcome {
            Outcome::Fault(r) if self.record => Some(FaultRecord::of(req, r)),
            _ => None,
        }
    }
}

type Fault = (FaultReason, bool);

fn read<M: PhysMem + ?Sized>(mem: &M, pa: u64, f: FaultReason, fpd: bool) -> Result<u64, Fault> {
    mem.read64(pa).map_err(|_| (f, fpd))
}

/// Step 1: malformed requests.
fn malformed(req: &Request) -> bool {
    let len = u64::from(req.len.max(1));
    (req.addr & (PAGE_SIZE - 1)) + len > PAGE_SIZE
        || req.pasid.is_some_and(|p| p > 0xF_FFFF)
        || (req.pasid.is_none() && (req.pmr || req.er))
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
    match p.pgtt {
        Pgtt::PassThrough => {
            if addr >> tables::HAW != 0 {
                return Err(FaultReason::PtBeyondHaw);
            }
            let va = addr & !(PAGE_SIZE - 1);
            Ok(Leaf {
                va,
                pa: va,
                size: PAGE_SIZE,
                r: true,
                w: true,
                us: true,
                xd: false,
            })
        }
        Pgtt::SecondStage => {
            if addr >> tables::HAW != 0 {
                return Err(FaultReason::SsBeyondHaw);
            }
            let (mut r, mut w) = (true, true);
            let mut table = p.ss_ptr;
            for level in (1..=4).rev() {
                let e = mem
                    .read64(table + tables::level_index(addr, level) * 8)
                    .map_err(|_| FaultReason::SsAccess)?;
                if e & (tables::ss::R | tables::ss::W) == 0 {
                    return Err(FaultReason::SsNotPresent);
                }
                let ps = e & tables::ss::PS != 0;
                let size = tables::level_size(level);
                let leaf = level == 1 || ps;
                let low = if leaf && level > 1 {
                    (size - 1) & !0xFFF
                } else {
                    0
                };
                if e & tables::ABOVE_HAW != 0 || (ps && level == 4) || e & low != 0 {
                    return Err(FaultReason::SsReserved);
                }
                r &= e & tables::ss::R != 0;
                w &= e & tables::ss::W != 0;
                if leaf {
                    let va = addr & !(size - 1);
                    let pa = e & tables::ADDR_MASK & !(size - 1);
                    return Ok(Leaf {
                        va,
                        pa,
                        size,
                        r,
                        w,
                        us: true,
                        xd: false,
                    });
                }
                table = e & tables::ADDR_MASK;
            }
            Err(FaultReason::SsNotPresent)
        }
        Pgtt::FirstStage => {
            let top = addr >> 47;
            if top != 0 && top != 0x1_FFFF {
                return Err(FaultReason::NonCanonical);
            }
            let (mut w, mut us, mut xd) = (true, true, false);
            let mut table = p.fs_ptr;
            for level in (1..=4).rev() {
                let e = mem
                    .read64(table + tables::level_index(addr, level) * 8)
                    .map_err(|_| FaultReason::FsAccess)?;
                if e & tables::fs::P == 0 {
                    return Err(FaultReason::FsNotPresent);
                }
                let ps = e & tables::fs::PS != 0;
                let size = tables::level_size(level);
                let leaf = level == 1 || ps;
                // Bit 12 of a superpage entry is PAT; the frame bits below the size are reserved.
                let low = if leaf && level > 1 {
                    (size - 1) & !0x1FFF
                } else {
                    0
                };
                if e & tables::ABOVE_HAW != 0 || (ps && level == 4) || e & low != 0 {
                    return Err(FaultReason::FsReserved);
                }
                w &= e & tables::fs::RW != 0;
                us &= e & tables::fs::US != 0;
                xd |= e & tables::fs::XD != 0;
                if leaf {
                    let va = addr & !(size - 1);
                    let pa = e & tables::ADDR_MASK & !(size - 1);
                    return Ok(Leaf {
                        va,
                        pa,
                        size,
                        r: true,
                        w,
                        us,
                        xd,
                    });
                }
                table = e & tables::ADDR_MASK;
            }
            Err(FaultReason::FsNotPresent)
        }
    }
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

/// Translates one request against memory, with no cache.
pub fn translate<M: PhysMem + ?Sized>(hw: &HwState, mem: &M, req: &Request) -> Walk {
    if malformed(req) {
        return Walk::done(Outcome::Malformed);
    }
    if !hw.te {
        return Walk::done(Outcome::Untranslated);
    }
    if hw.rtaddr & regs::RTADDR_TTM_MASK != regs::RTADDR_TTM_SCALABLE {
        return fault_walk((FaultReason::InvalidTtm, false), None, None);
    }
    let ctx = match read_context(hw, mem, req.rid) {
        Ok(c) => c,
        Err(f) => return fault_walk(f, None, None),
    };
    let pasid = match select_pasid(&ctx, req) {
        Ok(p) => p,
        Err(f) => return fault_walk(f, None, None),
    };
    let pe = match read_pasid_entry(mem, &ctx, pasid) {
        Ok(p) => p,
        Err(f) => return fault_walk(f, Some(pasid), None),
    };
    finish(mem, &ctx, pasid, &pe, req)
}

fn fault_walk(f: Fault, pasid: Option<u32>, pe: Option<PasidInfo>) -> Walk {
    Walk {
        outcome: Outcome::Fault(f.0),
        record: !f.1,
        pasid,
        pasid_entry: pe,
        leaf: None,
    }
}

fn finish<M: PhysMem + ?Sized>(
    mem: &M,
    ctx: &CtxInfo,
    pasid: u32,
    p: &PasidInfo,
    req: &Request,
) -> Walk {
    let (pmr, er) = effective_priv(ctx, req);
    if let Err(r) = check_entry_perms(p, pmr, er) {
        return fault_walk((r, p.fpd), Some(pasid), Some(*p));
    }
    let leaf = match walk_leaf(mem, p, req.addr) {
        Ok(l) => l,
        Err(r) => return fault_walk((r, p.fpd), Some(pasid), Some(*p)),
    };
    match check_leaf(p, &leaf, req.addr, req.write, pmr, er) {
        Ok(pa) => Walk {
            outcome: Outcome::Translated(pa),
            record: false,
            pasid: Some(pasid),
            pasid_entry: Some(*p),
            leaf: Some(leaf),
        },
        Err(r) => fault_walk((r, p.fpd), Some(pasid), Some(*p)),
    }
}

/// A cached translation (tagged as VT-d tags IOTLB entries: DID, PASID for first-stage
/// and pass-through, page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IotlbEntry {
    pub pgtt: Pgtt,
    pub leaf: Leaf,
}

/// The maximal cache: keeps every present context entry, PASID entry and successful
/// translation until an invalidation descriptor removes it. Faults are never cached.
#[derive(Clone, Debug, Default)]
pub struct MaxCache {
    ctx: BTreeMap<u16, CtxInfo>,
    pasid: BTreeMap<(u16, u32), PasidInfo>,
    /// Keyed by (DID, PASID tag, page base, page size): entries of different sizes at one
    /// base coexist, as they may in a real IOTLB (a stale 2 MiB entry beside a new 4 KiB one).
    iotlb: BTreeMap<(u16, u32, u64, u64), IotlbEntry>,
}

impl MaxCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of cached translations.
    pub fn iotlb_len(&self) -> usize {
        self.iotlb.len()
    }

    /// Number of cached PASID entries.
    pub fn pasid_len(&self) -> usize {
        self.pasid.len()
    }

    /// Drops everything (what SRTP with ESRTPS or a reset does).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Translates with the cache: cached structures are used in preference to memory, and a
    /// successful walk fills every level.
    pub fn translate<M: PhysMem + ?Sized>(&mut self, hw: &HwState, mem: &M, req: &Request) -> Walk {
        if malformed(req) {
            return Walk::done(Outcome::Malformed);
        }
        if !hw.te {
            return Walk::done(Outcome::Untranslated);
        }
        if hw.rtaddr & regs::RTADDR_TTM_MASK != regs::RTADDR_TTM_SCALABLE {
            return fault_walk((FaultReason::InvalidTtm, false), None, None);
        }
        let ctx = match self.ctx.get(&req.rid) {
            Some(c) => *c,
            None => match read_context(hw, mem, req.rid) {
                Ok(c) => c,
                Err(f) => return fault_walk(f, None, None),
            },
        };
        let pasid = match select_pasid(&ctx, req) {
            Ok(p) => p,
            Err(f) => return fault_walk(f, None, None),
        };
        let p = match self.pasid.get(&(req.rid, pasid)) {
            Some(p) => *p,
            None => match read_pasid_entry(mem, &ctx, pasid) {
                Ok(p) => p,
                Err(f) => return fault_walk(f, Some(pasid), None),
            },
        };
        let (pmr, er) = effective_priv(&ctx, req);
        if let Err(r) = check_entry_perms(&p, pmr, er) {
            return fault_walk((r, p.fpd), Some(pasid), Some(p));
        }
        let tag = iotlb_pasid_tag(p.pgtt, pasid);
        for size in [PAGE_SIZE, 1 << 21, 1 << 30] {
            let key = (p.did, tag, req.addr & !(size - 1), size);
            if let Some(e) = self.iotlb.get(&key) {
                if e.pgtt == p.pgtt {
                    if let Ok(pa) = check_leaf(&p, &e.leaf, req.addr, req.write, pmr, er) {
                        return Walk {
                            outcome: Outcome::Translated(pa),
                            record: false,
                            pasid: Some(pasid),
                            pasid_entry: Some(p),
                            leaf: Some(e.leaf),
                        };
                    }
                }
            }
        }
        let w = finish(mem, &ctx, pasid, &p, req);
        if let (Outcome::Translated(_), Some(leaf)) = (w.outcome, w.leaf) {
            self.ctx.insert(req.rid, ctx);
            self.pasid.insert((req.rid, pasid), p);
            self.iotlb.insert(
                (p.did, tag, leaf.va, leaf.size),
                IotlbEntry { pgtt: p.pgtt, leaf },
            );
        }
        w
    }

    /// Applies one invalidation descriptor. Each granularity removes exactly what VT-d
    /// 6.5.2 guarantees it removes, and nothing more. Returns what it removed.
    pub fn apply(&mut self, d: &Descriptor) -> Removed {
        let mut out = Removed::default();
        match *d {
            Descriptor::ContextCache { gran, sid, fm, .. } => {
                let mask: u16 = match fm {
                    0 => 0,
                    1 => 4,
                    2 => 6,
                    _ => 7,
                };
                self.ctx.retain(|s, _| {
                    // Scalable-mode context entries carry no DID, so a domain-selective
                    // invalidation cannot be narrowed.
                    let hit = match gran {
                        CcGran::Global | CcGran::Domain => true,
                        CcGran::Device => (s & !mask) == (sid & !mask),
                    };
                    if hit {
                        out.ctx.push(*s);
                    }
                    !hit
                });
            }
            Descriptor::Iotlb {
                gran,
                did,
                addr,
                am,
                ..
            } => {
                let (lo, hi) = range(addr, am);
                self.iotlb.retain(|k, e| {
                    let hit = match gran {
                        IotlbGran::Global => true,
                        IotlbGran::Domain => k.0 == did,
                        IotlbGran::Page => {
                            k.0 == did && e.pgtt == Pgtt::SecondStage && overlaps(&e.leaf, lo, hi)
                        }
                    };
                    if hit {
                        out.iotlb.push(e.leaf);
                    }
                    !hit
                });
            }
            Descriptor::PasidIotlb {
                gran,
                did,
                pasid,
                addr,
                am,
                ..
            } => {
                let (lo, hi) = range(addr, am);
                self.iotlb.retain(|k, e| {
                    let hit = k.0 == did
                        && k.1 == pasid
                        && e.pgtt != Pgtt::SecondStage
                        && (gran == PiotlbGran::Pasid || overlaps(&e.leaf, lo, hi));
                    if hit {
                        out.iotlb.push(e.leaf);
                    }
                    !hit
                });
            }
            Descriptor::PasidCache { gran, did, pasid } => {
                self.pasid.retain(|k, p| {
                    let hit = match gran {
                        PcGran::Global => true,
                        PcGran::Domain => p.did == did,
                        PcGran::Pasid => p.did == did && k.1 == pasid,
                    };
                    if hit {
                        out.pasid.push(*k);
                    }
                    !hit
                });
            }
            Descriptor::Wait { .. } => {}
        }
        out
    }

    /// Every outcome a translation unit whose caches hold any subset of these entries may
    /// give for `req` with memory as `mem` holds it now: the context entry and the PASID
    /// entry each from the cache or from memory, then a matching IOTLB entry or a walk of
    /// the page tables in memory. A legal implementation may evict any entry at any time
    /// (VT-d 6.1), so each of these is legal hardware behaviour. Sorted, no duplicates;
    /// the plain walk ([`translate`]) is always among them.
    pub fn possible<M: PhysMem + ?Sized>(
        &self,
        hw: &HwState,
        mem: &M,
        req: &Request,
    ) -> Vec<Outcome> {
        let mut out = vec![translate(hw, mem, req).outcome];
        if malformed(req)
            || !hw.te
            || hw.rtaddr & regs::RTADDR_TTM_MASK != regs::RTADDR_TTM_SCALABLE
        {
            return out;
        }
        let mut ctxs = Vec::with_capacity(2);
        if let Some(c) = self.ctx.get(&req.rid) {
            ctxs.push(Ok(*c));
        }
        ctxs.push(read_context(hw, mem, req.rid));
        for ctx in ctxs {
            let ctx = match ctx {
                Ok(c) => c,
                Err(f) => {
                    out.push(Outcome::Fault(f.0));
                    continue;
                }
            };
            let pasid = match select_pasid(&ctx, req) {
                Ok(p) => p,
                Err(f) => {
                    out.push(Outcome::Fault(f.0));
                    continue;
                }
            };
            let mut entries = Vec::with_capacity(2);
            if let Some(p) = self.pasid.get(&(req.rid, pasid)) {
                entries.push(Ok(*p));
            }
            entries.push(read_pasid_entry(mem, &ctx, pasid));
            for p in entries {
                let p = match p {
                    Ok(p) => p,
                    Err(f) => {
                        out.push(Outcome::Fault(f.0));
                        continue;
                    }
                };
                let (pmr, er) = effective_priv(&ctx, req);
                if let Err(r) = check_entry_perms(&p, pmr, er) {
                    out.push(Outcome::Fault(r));
                    continue;
                }
                let tag = iotlb_pasid_tag(p.pgtt, pasid);
                for size in [PAGE_SIZE, 1 << 21, 1 << 30] {
                    let key = (p.did, tag, req.addr & !(size - 1), size);
                    if let Some(e) = self.iotlb.get(&key) {
                        if e.pgtt == p.pgtt {
                            if let Ok(pa) = check_leaf(&p, &e.leaf, req.addr, req.write, pmr, er) {
                                out.push(Outcome::Translated(pa));
                            }
                        }
                    }
                }
                out.push(finish(mem, &ctx, pasid, &p, req).outcome);
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// What one invalidation descriptor removed from a [`MaxCache`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// Context entries, by source ID.
    pub ctx: Vec<u16>,
    /// PASID entries, by (source ID, PASID).
    pub pasid: Vec<(u16, u32)>,
    /// Translations.
    pub iotlb: Vec<Leaf>,
}

impl Removed {
    pub fn is_empty(&self) -> bool {
        self.ctx.is_empty() && self.pasid.is_empty() && self.iotlb.is_empty()
    }
}

/// Second-stage-only translations are not tagged with a PASID (VT-d 6.2.1): one entry
/// serves every PASID of the DID, so they share a wildcard tag.
const ANY_PASID: u32 = u32::MAX;

fn iotlb_pasid_tag(pgtt: Pgtt, pasid: u32) -> u32 {
    if pgtt == Pgtt::SecondStage {
        ANY_PASID
    } else {
        pasid
    }
}

fn range(addr: u64, am: u8) -> (u64, u64) {
    match PAGE_SIZE
        .checked_shl(u32::from(am))
        .filter(|&s| am < 52 && s != 0)
    {
        Some(size) => {
            let lo = addr & !(size - 1);
            (lo, lo.saturating_add(size))
        }
        None => (0, u64::MAX),
    }
}

fn overlaps(l: &Leaf, lo: u64, hi: u64) -> bool {
    l.va < hi && lo < l.va + l.size
}

/// The golden hardware: modelled memory, the registers the walker depends on and the
/// maximal cache, driven by [`crate::driver::Driver`] through [`IommuHw`].
#[derive(Clone, Debug)]
pub struct GoldenHw {
    pub mem: Mem,
    pub regs: HwState,
    pub cache: MaxCache,
    pub cap: u64,
    pub ecap: u64,
}

impl Default for GoldenHw {
    fn default() -> Self {
        Self::new(Mem::new())
    }
}

impl GoldenHw {
    /// Advertises [`regs::CAP_VALUE`] / [`regs::ECAP_VALUE`]; translation starts disabled.
    pub fn new(mem: Mem) -> Self {
        Self {
            mem,
            regs: HwState::default(),
            cache: MaxCache::new(),
            cap: regs::CAP_VALUE,
            ecap: regs::ECAP_VALUE,
        }
    }

    /// Translation straight from memory (no cache).
    pub fn translate(&self, req: &Request) -> Walk {
        translate(&self.regs, &self.mem, req)
    }

    /// Translation through the maximal cache.
    pub fn translate_cached(&mut self, req: &Request) -> Walk {
        self.cache.translate(&self.regs, &self.mem, req)
    }

    /// Executes one queued descriptor, after its round trip through the 256-bit encoding
    /// the DUT reads: an invalidation is applied to the maximal cache (what it removed is
    /// returned); a wait with SW=1 writes its status dword (VT-d 6.5.2.8).
    pub fn execute(&mut self, d: &Descriptor) -> Result<Removed, HwError> {
        let d = Descriptor::decode(d.encode()).map_err(|e| HwError::Queue(e.to_string()))?;
        let removed = self.cache.apply(&d);
        if let Descriptor::Wait {
            sw: true,
            status_data,
            status_addr,
            ..
        } = d
        {
            let word = status_addr & !7;
            let shift = (status_addr & 4) * 8;
            let old = self.mem.read64(word)?;
            let new = (old & !(0xFFFF_FFFFu64 << shift)) | (u64::from(status_data) << shift);
            self.mem.write64(word, new)?;
        }
        Ok(removed)
    }
}

impl IommuHw for GoldenHw {
    fn mem(&mut self) -> &mut Mem {
        &mut self.mem
    }
    fn read_cap(&mut self) -> u64 {
        self.cap
    }
    fn read_ecap(&mut self) -> u64 {
        self.ecap
    }
    fn set_root_table(&mut self, rtaddr: u64) -> Result<(), HwError> {
        self.regs.rtaddr = rtaddr;
        if self.cap & regs::cap::ESRTPS != 0 {
            self.cache.clear();
        }
        Ok(())
    }
    fn enable_translation(&mut self) -> Result<(), HwError> {
        self.regs.te = true;
        Ok(())
    }
    /// Each descriptor goes through its 256-bit encoding, as the DUT would read it.
    fn submit(&mut self, descs: &[Descriptor]) -> Result<(), HwError> {
        for d in descs {
            self.execute(d)?;
        }
        Ok(())
    }
}
