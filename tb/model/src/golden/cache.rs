//! The maximal cache: context cache, PASID cache, IOTLB and the paging-structure caches
//! of both stages (docs/contract.md section 5), holding every entry the rules allow for as
//! long as they allow.

use super::walk::{check_entry_perms, effective_priv, malformed, read_context};
use super::walk::{read_pasid_entry, select_pasid, NonLeaf};
use super::{
    context_gate, fault_walk, leaf_outcome, translate, walk_from, CtxInfo, HwState, Leaf, Outcome,
    PasidInfo,
};
use super::{Pgtt, Request, Walk};
use crate::fault::FaultReason;
use crate::mem::{PhysMem, PAGE_SIZE};
use crate::qi::{CcGran, Descriptor, IotlbGran, PcGran, PiotlbGran};
use crate::regs;
use crate::tables;
use std::collections::BTreeMap;

/// A cached translation (tagged as VT-d tags IOTLB entries: DID, PASID for first-stage
/// and pass-through, page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IotlbEntry {
    pub pgtt: Pgtt,
    pub leaf: Leaf,
}

/// The tag of a paging-structure-cache entry (VT-d 6.2; contract section 5 rule 1): DID,
/// stage, PASID (first stage only; second-stage entries serve every PASID of the DID),
/// level of the entry and the address bits above that level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PscTag {
    pub did: u16,
    /// [`Pgtt::FirstStage`] or [`Pgtt::SecondStage`].
    pub stage: Pgtt,
    /// The PASID for first-stage entries; `u32::MAX` (any) for second-stage ones.
    pub pasid: u32,
    /// 4 (PML4E), 3 (PDPTE) or 2 (PDE).
    pub level: u32,
    /// Base of the region the entry maps.
    pub va: u64,
}

impl PscTag {
    /// Whether the entry's region overlaps `[lo, hi)`.
    pub fn overlaps(&self, lo: u64, hi: u64) -> bool {
        self.va < hi && lo < self.va + tables::level_size(self.level)
    }
}

/// Which paging-structure-cache entries an invalidation descriptor removes: true for an
/// entry the descriptor removes. [`psc_invalidated`] is the contract's rule; tests install
/// a wrong one ([`MaxCache::set_psc_rule`]) to show that the checks notice.
pub type PscRule = fn(&Descriptor, &PscTag) -> bool;

/// Contract section 5 (VT-d 6.5.2.3 and 6.5.2.4), the narrowest legal removal:
///
/// - IOTLB invalidation (type 2): global granularity removes every entry, domain
///   granularity every entry of the DID (both stages); page-selective granularity with
///   IH = 0 removes the second-stage entries of the DID whose region overlaps
///   [ADDR, ADDR + 2^(12+AM)), and with IH = 1 nothing;
/// - PASID-based IOTLB invalidation (type 6), within the first-stage entries of one
///   (DID, PASID): PASID-selective removes them all, page-selective with IH = 0 those whose
///   region overlaps the range, with IH = 1 none;
/// - context-cache, PASID-cache and wait descriptors remove none: rule 4 lets a unit drop
///   any paging-structure entry there, and dropping is already covered, because
///   [`MaxCache::possible`] allows every subset of the cache; keeping them is the
///   behaviour that stays stale longest.
pub fn psc_invalidated(d: &Descriptor, t: &PscTag) -> bool {
    match *d {
        Descriptor::Iotlb {
            gran,
            did,
            addr,
            am,
            ih,
            ..
        } => match gran {
            IotlbGran::Global => true,
            IotlbGran::Domain => t.did == did,
            IotlbGran::Page => {
                let (lo, hi) = range(addr, am);
                !ih && t.did == did && t.stage == Pgtt::SecondStage && t.overlaps(lo, hi)
            }
        },
        Descriptor::PasidIotlb {
            gran,
            did,
            pasid,
            addr,
            am,
            ih,
        } => {
            let (lo, hi) = range(addr, am);
            t.did == did
                && t.pasid == pasid
                && t.stage == Pgtt::FirstStage
                && (gran == PiotlbGran::Pasid || (!ih && t.overlaps(lo, hi)))
        }
        Descriptor::ContextCache { .. } | Descriptor::PasidCache { .. } => false,
        Descriptor::Wait { .. } => false,
        // Device-TLB invalidations reach the device's cache, not the unit's.
        Descriptor::DevTlb { .. } | Descriptor::PasidDevTlb { .. } => false,
    }
}

/// The maximal cache: keeps every present context entry, PASID entry, successful
/// translation and non-leaf paging entry of a successful walk until an invalidation
/// descriptor removes it. Faults, not-present entries and the entries of a walk that
/// faulted are never cached.
#[derive(Clone, Debug)]
pub struct MaxCache {
    ctx: BTreeMap<u16, CtxInfo>,
    pasid: BTreeMap<(u16, u32), PasidInfo>,
    /// Keyed by (DID, PASID tag, page base, page size): entries of different sizes at one
    /// base coexist, as they may in a real IOTLB (a stale 2 MiB entry beside a new 4 KiB one).
    iotlb: BTreeMap<(u16, u32, u64, u64), IotlbEntry>,
    /// The paging-structure caches of both stages, unbounded.
    psc: BTreeMap<PscTag, NonLeaf>,
    psc_rule: PscRule,
}

impl Default for MaxCache {
    fn default() -> Self {
        Self {
            ctx: BTreeMap::new(),
            pasid: BTreeMap::new(),
            iotlb: BTreeMap::new(),
            psc: BTreeMap::new(),
            psc_rule: psc_invalidated,
        }
    }
}

impl MaxCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the rule that decides which paging-structure entries a descriptor removes
    /// (the default is [`psc_invalidated`]). Only for showing that a wrong rule is found.
    pub fn set_psc_rule(&mut self, rule: PscRule) {
        self.psc_rule = rule;
    }

    /// Number of cached non-leaf entries.
    pub fn psc_len(&self) -> usize {
        self.psc.len()
    }

    /// The cached non-leaf entries with their tags, in tag order.
    pub fn psc_entries(&self) -> impl Iterator<Item = (&PscTag, &NonLeaf)> {
        self.psc.iter()
    }

    /// The cached non-leaf entries a walk for `addr` under PASID entry `p` (selected by
    /// `pasid`) may start from, lowest level first.
    fn psc_hits(&self, p: &PasidInfo, pasid: u32, addr: u64) -> Vec<NonLeaf> {
        if p.pgtt == Pgtt::PassThrough {
            return Vec::new();
        }
        (2..=4)
            .filter_map(|level| {
                let tag = PscTag {
                    did: p.did,
                    stage: p.pgtt,
                    pasid: iotlb_pasid_tag(p.pgtt, pasid),
                    level,
                    va: addr & !(tables::level_size(level) - 1),
                };
                self.psc.get(&tag).copied()
            })
            .collect()
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
        *self = Self {
            psc_rule: self.psc_rule,
            ..Self::default()
        };
    }

    /// Translates with the cache: cached structures are used in preference to memory (the
    /// walk starts from the lowest-level cached non-leaf entry for the address), and a
    /// successful walk fills every level, the non-leaf entries it read included.
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
        if let Some(w) = context_gate(&ctx, req) {
            return w;
        }
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
                    if let Ok(outcome) = leaf_outcome(&p, &e.leaf, req, (pmr, er)) {
                        return Walk {
                            outcome,
                            record: false,
                            pasid: Some(pasid),
                            pasid_entry: Some(p),
                            leaf: Some(e.leaf),
                        };
                    }
                }
            }
        }
        // A paging-structure-cache hit at the lowest level saves the most reads.
        let from = self.psc_hits(&p, pasid, req.addr).into_iter().next();
        let mut path = Vec::new();
        let w = walk_from(mem, pasid, &p, (pmr, er), req, from.as_ref(), &mut path);
        if let (Outcome::Translated(_) | Outcome::Ats(_), Some(leaf)) = (w.outcome, w.leaf) {
            self.ctx.insert(req.rid, ctx);
            self.pasid.insert((req.rid, pasid), p);
            self.iotlb.insert(
                (p.did, tag, leaf.va, leaf.size),
                IotlbEntry { pgtt: p.pgtt, leaf },
            );
            for n in path {
                let t = PscTag {
                    did: p.did,
                    stage: p.pgtt,
                    pasid: tag,
                    level: n.level,
                    va: n.va,
                };
                self.psc.insert(t, n);
            }
        }
        w
    }

    /// Applies one invalidation descriptor. Each granularity removes exactly what VT-d
    /// 6.5.2 guarantees it removes, and nothing more; the paging-structure caches follow
    /// the cache's rule ([`psc_invalidated`] unless a test replaced it). Returns what it
    /// removed.
    pub fn apply(&mut self, d: &Descriptor) -> Removed {
        let mut out = Removed::default();
        let rule = self.psc_rule;
        self.psc.retain(|t, n| {
            let hit = rule(d, t);
            if hit {
                out.psc.push((*t, *n));
            }
            !hit
        });
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
            Descriptor::Wait { .. }
            | Descriptor::DevTlb { .. }
            | Descriptor::PasidDevTlb { .. } => {}
        }
        out
    }

    /// Every outcome a translation unit whose caches hold any subset of these entries may
    /// give for `req` with memory as `mem` holds it now: the context entry and the PASID
    /// entry each from the cache or from memory, then a matching IOTLB entry, or a walk of
    /// the page tables in memory that starts at the root or at any cached non-leaf entry
    /// for the address (the levels above it are not read). A legal implementation may
    /// evict any entry at any time
    /// (VT-d 6.1), so each of these is legal hardware behaviour. Sorted, no duplicates;
    /// the plain walk ([`translate`]) is always among them.
    pub fn possible<M: PhysMem + ?Sized>(
        &self,
        hw: &HwState,
        mem: &M,
        req: &Request,
    ) -> Vec<Outcome> {
        self.possible_with(hw, mem, req, true)
    }

    /// [`MaxCache::possible`] for a unit without paging-structure caches (every walk starts
    /// at the root): what the non-leaf entries add is the difference.
    pub fn possible_without_psc<M: PhysMem + ?Sized>(
        &self,
        hw: &HwState,
        mem: &M,
        req: &Request,
    ) -> Vec<Outcome> {
        self.possible_with(hw, mem, req, false)
    }

    fn possible_with<M: PhysMem + ?Sized>(
        &self,
        hw: &HwState,
        mem: &M,
        req: &Request,
        psc: bool,
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
            if let Some(w) = context_gate(&ctx, req) {
                out.push(w.outcome);
                continue;
            }
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
                            if let Ok(o) = leaf_outcome(&p, &e.leaf, req, (pmr, er)) {
                                out.push(o);
                            }
                        }
                    }
                }
                // The walk from the root in memory, or from any cached non-leaf entry.
                out.push(walk_from(mem, pasid, &p, (pmr, er), req, None, &mut Vec::new()).outcome);
                let hits = if psc {
                    self.psc_hits(&p, pasid, req.addr)
                } else {
                    Vec::new()
                };
                for n in hits {
                    let w = walk_from(mem, pasid, &p, (pmr, er), req, Some(&n), &mut Vec::new());
                    out.push(w.outcome);
                }
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
    /// Non-leaf paging entries.
    pub psc: Vec<(PscTag, NonLeaf)>,
}

impl Removed {
    pub fn is_empty(&self) -> bool {
        self.ctx.is_empty() && self.pasid.is_empty() && self.iotlb.is_empty() && self.psc.is_empty()
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
