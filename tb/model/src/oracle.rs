//! The abstract oracle: for one request, the SET of outcomes the kernel layer's state
//! allows (SPEC.md section 1 "The oracle"). It never looks at memory or at the driver:
//! the answer comes from who is attached where and what is mapped, plus the stale windows
//! between an operation that removed translations and the completion of the invalidation
//! wait after its flush, during which the old translation is also allowed.
//!
//! Fault reasons are exact where the kernel state decides them (SPEC.md section 2 "Translation
//! flow and check order"); where they depend on how the driver laid out its tables (a
//! blocked PASID faults in the PASID directory or in the PASID table depending on whether
//! a neighbour PASID has a table), the set holds every reason Linux's layout can produce.

use crate::driver::pasid_dir_entries;
use crate::fault::FaultReason as F;
use crate::golden::{Outcome, Request};
use crate::kernel::{DomainType, IommuOps, Kernel, Stage, State};
use crate::mem::PAGE_SIZE;
use std::collections::BTreeSet;
use std::fmt;

/// A small set of allowed outcomes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedSet(BTreeSet<Outcome>);

impl AllowedSet {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn one(o: Outcome) -> Self {
        let mut s = Self::new();
        s.insert(o);
        s
    }
    pub fn insert(&mut self, o: Outcome) {
        self.0.insert(o);
    }
    pub fn contains(&self, o: &Outcome) -> bool {
        self.0.contains(o)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Outcome> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The allowed translations (the stale ones included).
    pub fn translations(&self) -> Vec<u64> {
        self.0
            .iter()
            .filter_map(|o| {
                if let Outcome::Translated(pa) = o {
                    Some(*pa)
                } else {
                    None
                }
            })
            .collect()
    }
    /// Scoreboard check: `Err` explains what was allowed and what the DUT did.
    pub fn check(&self, dut: &Outcome) -> Result<(), Mismatch> {
        if self.contains(dut) {
            Ok(())
        } else {
            Err(Mismatch {
                allowed: self.clone(),
                dut: *dut,
            })
        }
    }
}

impl fmt::Display for AllowedSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (i, o) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{o}")?;
        }
        write!(f, "}}")
    }
}

/// A DUT outcome outside the allowed set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("oracle allowed {allowed}, DUT did {dut}")]
pub struct Mismatch {
    pub allowed: AllowedSet,
    pub dut: Outcome,
}

fn fault(r: F) -> AllowedSet {
    AllowedSet::one(Outcome::Fault(r))
}

fn faults(rs: &[F]) -> AllowedSet {
    let mut s = AllowedSet::new();
    for &r in rs {
        s.insert(Outcome::Fault(r));
    }
    s
}

fn malformed(req: &Request) -> bool {
    (req.addr & (PAGE_SIZE - 1)) + u64::from(req.len.max(1)) > PAGE_SIZE
        || req.pasid.is_some_and(|p| p > 0xF_FFFF)
        || (req.pasid.is_none() && (req.pmr || req.er))
}

/// What `state` alone allows for `req` (translation enabled, no caching).
pub fn eval(state: &State, req: &Request) -> AllowedSet {
    if malformed(req) {
        return AllowedSet::one(Outcome::Malformed);
    }
    let Some(dev) = state.devices.get(&req.rid) else {
        // No context entry: the bus has no context table, or the slot is empty.
        return faults(&[F::RootNotPresent, F::ContextNotPresent]);
    };
    if req.pasid.is_some() && dev.desc.max_pasids == 0 {
        return fault(F::PasidDisabled);
    }
    let pasid = req.pasid.unwrap_or(0);
    if u64::from(pasid >> 6) >= pasid_dir_entries(dev.desc.max_pasids) {
        return fault(F::PasidBeyondDirectory);
    }
    let Some((_, dom)) = state
        .domain_for(req.rid, req.pasid)
        .filter(|(_, d)| d.ty.translates())
    else {
        return faults(&[F::PasidDirNotPresent, F::PasidEntryNotPresent]);
    };
    // Linux never sets ERE or SRE.
    if req.er {
        return fault(F::ErWithoutEre);
    }
    if req.pmr {
        return fault(F::PmrWithoutSre);
    }
    let a = req.addr;
    let canonical = matches!(a >> 47, 0 | 0x1_FFFF);
    let outcome = match dom.ty {
        // Filtered out above.
        DomainType::Blocked => Outcome::Fault(F::PasidEntryNotPresent),
        DomainType::Identity if a >> 48 != 0 => Outcome::Fault(F::PtBeyondHaw),
        DomainType::Identity => Outcome::Translated(a),
        DomainType::Paging(Stage::Second) => {
            if a >> 48 != 0 {
                Outcome::Fault(F::SsBeyondHaw)
            } else {
                match lookup(&dom.mappings, a, |m| (m.pa, m.size)) {
                    None => Outcome::Fault(F::SsNotPresent),
                    Some((m, _)) if !req.write && !m.prot.read => Outcome::Fault(F::ReadDenied),
                    Some((m, _)) if req.write && !m.prot.write => Outcome::Fault(F::WriteDenied),
                    Some((_, pa)) => Outcome::Translated(pa),
                }
            }
        }
        DomainType::Paging(Stage::First) => {
            if !canonical {
                Outcome::Fault(F::NonCanonical)
            } else {
                match lookup(&dom.mappings, a, |m| (m.pa, m.size)) {
                    None => Outcome::Fault(F::FsNotPresent),
                    // First-stage leaves are always present (readable) with U/S=1.
                    Some((m, _)) if req.write && !m.prot.write => Outcome::Fault(F::WriteDenied),
                    Some((_, pa)) => Outcome::Translated(pa),
                }
            }
        }
        DomainType::Sva(mm) => {
            let maps = state.mms.get(&mm).map(|m| &m.mappings);
            if !canonical {
                Outcome::Fault(F::NonCanonical)
            } else {
                match maps.and_then(|maps| lookup(maps, a, |m| (m.pa, m.size))) {
                    None => Outcome::Fault(F::FsNotPresent),
                    Some((m, _)) if !m.prot.user => Outcome::Fault(F::UserToSupervisorPage),
                    Some((m, _)) if req.write && !m.prot.write => Outcome::Fault(F::WriteDenied),
                    Some((_, pa)) => Outcome::Translated(pa),
                }
            }
        }
    };
    AllowedSet::one(outcome)
}

fn lookup<T: Copy>(
    map: &std::collections::BTreeMap<u64, T>,
    addr: u64,
    f: impl Fn(&T) -> (u64, u64),
) -> Option<(T, u64)> {
    let (&va, m) = map.range(..=addr).next_back()?;
    let (pa, size) = f(m);
    (addr < va + size).then(|| (*m, pa + (addr - va)))
}

/// The current attachments with the domain and mm contents of `before`: IOTLB entries are
/// tagged by DID and PASID, not by requester, so during a window any attachment of a
/// domain (even one made after the unmap) may hit the domain's stale entries.
fn with_old_contents(now: &State, before: &State) -> State {
    let mut h = now.clone();
    for (id, d) in h.domains.iter_mut() {
        if let Some(old) = before.domains.get(id) {
            d.mappings = old.mappings.clone();
        }
    }
    for (id, m) in h.mms.iter_mut() {
        if let Some(old) = before.mms.get(id) {
            m.mappings = old.mappings.clone();
        }
    }
    h
}

/// The allowed set from a current state plus the states before each open stale window:
/// their translations (faults are never cached) through the old attachments, and through
/// the current attachments of the same domains.
pub fn allowed_from<'a>(
    now: &State,
    stale: impl IntoIterator<Item = &'a State>,
    req: &Request,
) -> AllowedSet {
    let mut s = eval(now, req);
    for st in stale {
        for o in eval(st, req)
            .iter()
            .chain(eval(&with_old_contents(now, st), req).iter())
        {
            if matches!(o, Outcome::Translated(_)) {
                s.insert(*o);
            }
        }
    }
    s
}

/// The allowed set for `req` given the kernel's state and its open windows.
pub fn allowed<O: IommuOps>(k: &Kernel<O>, req: &Request) -> AllowedSet {
    allowed_from(k.state(), k.windows().iter().map(|w| &w.before), req)
}
