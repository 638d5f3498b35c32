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
//! [`MaxCache`] keeps every context entry, PASID entry, translation and non-leaf paging
//! entry (paging-structure caches) it ever used until an invalidation descriptor removes
//! it (VT-d 6.5 "Invalidation of Translation Caches"; docs/contract.md section 5), which
//! shows the worst staleness a legal implementation may exhibit.
//!
//! Files: `walk.rs` (the walker's steps), `cache.rs` (the maximal cache), this file (the
//! request and outcome types, the uncached walk and the golden hardware).

mod ats;
mod cache;
mod walk;

pub use ats::{cpl_status, AddrType, AtsDecodeError, AtsEntry, AtsStatus};
pub use cache::{psc_invalidated, IotlbEntry, MaxCache, PscRule, PscTag, Removed};
pub use walk::{
    check_entry_perms, check_leaf, effective_priv, read_context, read_pasid_entry, select_pasid,
    walk_leaf, walk_tables, NonLeaf,
};

use crate::devtlb::{AtcEntry, DevTlb, InvalidateRequest};
use crate::driver::{HwError, IommuHw};
use crate::fault::{FaultReason, FaultRecord};
use crate::mem::{Mem, PhysMem};
use crate::qi::Descriptor;
use crate::regs;
use std::collections::BTreeMap;
use std::fmt;
use walk::{malformed, Fault};

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
    /// Address Type: untranslated, ATS Translation Request or translated (section 6).
    pub at: AddrType,
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
            at: AddrType::Untranslated,
        }
    }
    /// A user-privilege write of `len` bytes without PASID.
    pub fn write(rid: u16, addr: u64, len: u32) -> Self {
        Self {
            write: true,
            ..Self::read(rid, addr, len)
        }
    }
    /// The same request with another Address Type.
    pub fn with_at(self, at: AddrType) -> Self {
        Self { at, ..self }
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
            match (self.at, self.write) {
                (AddrType::TranslationRequest, _) => "translation request",
                (AddrType::Translated, true) => "translated write",
                (AddrType::Translated, false) => "translated read",
                (AddrType::Untranslated, true) => "write",
                (AddrType::Untranslated, false) => "read",
            },
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
    /// Forwarded with the address unchanged: GSTS.TES = 0, or a translated request
    /// (AT = 10b) whose context entry has DTE = 1.
    Untranslated,
    /// A Translation Request answered with this completion entry (R = W = 0 for a fault
    /// of the address check or of the page walk, which is not recorded).
    Ats(AtsEntry),
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
            Self::Ats(e) => write!(f, "Ats({e})"),
        }
    }
}

/// Decoded scalable-mode context entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtxInfo {
    pub fpd: bool,
    /// DTE: the device may use ATS.
    pub dte: bool,
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
    /// First stage: the leaf's G bit (reported to ATS only).
    pub g: bool,
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
    if let Some(w) = context_gate(&ctx, req) {
        return w;
    }
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

/// ATS at the context entry (section 6.2): a Translation Request or a translated request
/// with DTE = 0 faults 0x44; a translated request with DTE = 1 is forwarded unchanged.
/// `None`: the request goes on to the PASID steps.
fn context_gate(ctx: &CtxInfo, req: &Request) -> Option<Walk> {
    match req.at {
        AddrType::Untranslated => None,
        _ if !ctx.dte => Some(fault_walk((FaultReason::DteDisabled, ctx.fpd), None, None)),
        AddrType::Translated => Some(Walk::done(Outcome::Untranslated)),
        AddrType::TranslationRequest => None,
    }
}

/// The outcome of `req` through `leaf`: the translated address, or for a Translation
/// Request its completion entry; `Err` with the leaf-level fault.
fn leaf_outcome(
    p: &PasidInfo,
    leaf: &Leaf,
    req: &Request,
    (pmr, er): (bool, bool),
) -> Result<Outcome, FaultReason> {
    match req.at {
        AddrType::TranslationRequest => ats::entry(p, leaf, req, (pmr, er)).map(Outcome::Ats),
        _ => check_leaf(p, leaf, req.addr, req.write, pmr, er).map(Outcome::Translated),
    }
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
    walk_from(mem, pasid, p, (pmr, er), req, None, &mut Vec::new())
}

/// The page walk and the leaf checks (steps 8 and 9) once the PASID entry passed step 7
/// with the effective `(pmr, er)`, from the root or from the cached non-leaf entry
/// `from`; the non-leaf entries read go to `path`.
fn walk_from<M: PhysMem + ?Sized>(
    mem: &M,
    pasid: u32,
    p: &PasidInfo,
    (pmr, er): (bool, bool),
    req: &Request,
    from: Option<&NonLeaf>,
    path: &mut Vec<NonLeaf>,
) -> Walk {
    let ats = req.at == AddrType::TranslationRequest;
    let leaf = match walk_tables(mem, p, req.addr, from, path) {
        Ok(l) => l,
        Err(r) if ats && cpl_status(r) == AtsStatus::Denied => return denied(pasid, p),
        Err(r) => return fault_walk((r, p.fpd), Some(pasid), Some(*p)),
    };
    match leaf_outcome(p, &leaf, req, (pmr, er)) {
        Ok(outcome) => Walk {
            outcome,
            record: false,
            pasid: Some(pasid),
            pasid_entry: Some(*p),
            leaf: Some(leaf),
        },
        Err(r) if ats && cpl_status(r) == AtsStatus::Denied => denied(pasid, p),
        Err(r) => fault_walk((r, p.fpd), Some(pasid), Some(*p)),
    }
}

/// A Translation Request's page-level fault: answered with R = W = 0, not recorded.
fn denied(pasid: u32, p: &PasidInfo) -> Walk {
    Walk {
        outcome: Outcome::Ats(AtsEntry::denied()),
        record: false,
        pasid: Some(pasid),
        pasid_entry: Some(*p),
        leaf: None,
    }
}

/// The golden hardware: modelled memory, the registers the walker depends on and the
/// maximal cache, driven by [`crate::driver::Driver`] through [`IommuHw`]; with it the
/// ATS caches of the devices below the unit, which its device-TLB invalidations reach.
#[derive(Clone, Debug)]
pub struct GoldenHw {
    pub mem: Mem,
    pub regs: HwState,
    pub cache: MaxCache,
    pub cap: u64,
    pub ecap: u64,
    /// Each device's ATS cache by its Device ID, created by its first Translation Request.
    pub atc: BTreeMap<u16, DevTlb>,
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
            atc: BTreeMap::new(),
        }
    }

    /// A Translation Request from `rid` (with `pasid`, if any) for the page holding `addr`,
    /// answered through the maximal cache by the golden walker (the same answer the judge
    /// expects on `cpl_data_o`, [`ats::entry`]) and stored in the device's ATS cache when
    /// it grants read or write access; `None` when it grants nothing or is not a successful
    /// completion (DTE = 0 among them: VT-d chapter 4).
    pub fn ats_translate(&mut self, rid: u16, pasid: Option<u32>, addr: u64) -> Option<AtcEntry> {
        let mut req = Request::read(rid, addr, 8);
        req.pasid = pasid;
        req.at = AddrType::TranslationRequest;
        let e = match self.translate_cached(&req).outcome {
            Outcome::Ats(e) => e.atc_entry(pasid, addr)?,
            _ => return None,
        };
        self.atc.entry(rid).or_default().fill(e);
        Some(e)
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
    /// returned); a device-TLB invalidation becomes an Invalidate Request to the device's
    /// ATS cache, answered before the next descriptor runs; a wait with SW=1 writes its
    /// status dword (VT-d 6.5.2.8).
    pub fn execute(&mut self, d: &Descriptor) -> Result<Removed, HwError> {
        let d = Descriptor::decode(d.encode()).map_err(|e| HwError::Queue(e.to_string()))?;
        let removed = self.cache.apply(&d);
        if let Some(req) = InvalidateRequest::from_descriptor(&d) {
            if let Some(t) = self.atc.get_mut(&req.device_id) {
                t.invalidate(&req);
            }
        }
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
