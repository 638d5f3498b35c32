//! The abstract oracle: for one request, the SET of outcomes the kernel layer's state
//! allows (docs/contract.md section 1 "The oracle"). It never looks at memory or at the driver:
//! the answer comes from who is attached where and what is mapped, plus the stale windows
//! between an operation that removed translations and the completion of the invalidation
//! wait after its flush, during which the old translation is also allowed.
//!
//! Fault reasons are exact where the kernel state decides them (docs/contract.md section 2 "Translation
//! flow and check order"); where they depend on how the driver laid out its tables (a
//! blocked PASID faults in the PASID directory or in the PASID table depending on whether
//! a neighbour PASID has a table), the set holds every reason Linux's layout can produce.
//!
//! Requests that race with an operation (sent while its invalidations execute) are judged
//! by [`allowed_during`]: a [`Snapshot`] taken before the operation (the state and every
//! window open then), the intermediate states the operation passes through
//! ([`crate::kernel::Kernel::transit`]) and the kernel after it. Once the operation's
//! invalidation wait has completed, [`allowed`] is exact again.

use crate::devtlb::{AtcEntry, DevTlb};
use crate::driver::pasid_dir_entries;
use crate::fault::FaultReason as F;
use crate::golden::{AddrType, AtsEntry, Outcome, Request};
use crate::kernel::{DomainType, IommuOps, Kernel, MemErrScope, Stage, State};
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
        || (req.write && req.at == AddrType::TranslationRequest)
}

/// What `state` alone allows for `req` (translation enabled, no caching).
pub fn eval(state: &State, req: &Request) -> AllowedSet {
    eval_mixed(state, state, req)
}

/// What a translation unit allows that selects the PASID entry from the attachments of
/// `att` and reads the page tables as they are in `con`: a PASID entry cached at one
/// moment leads to the domain's tables as they are later (VT-d 6.2.2: the PASID cache and
/// the IOTLB are separate caches), and an IOTLB entry filled from `con`'s tables serves a
/// later request whose PASID entry names the same domain. A domain or mm that `con` does
/// not know keeps its contents from `att`.
pub fn eval_mixed(att: &State, con: &State, req: &Request) -> AllowedSet {
    let state = att;
    if malformed(req) {
        return AllowedSet::one(Outcome::Malformed);
    }
    // Memory errors on structure pages, in the order the walk reads them.
    let poisoned = |s: MemErrScope| state.mem_errors.contains(&s);
    if poisoned(MemErrScope::Root) {
        return fault(F::RootAccess);
    }
    if poisoned(MemErrScope::ContextTable {
        bus: (req.rid >> 8) as u8,
        upper: req.rid & 0x80 != 0,
    }) {
        return fault(F::ContextAccess);
    }
    let Some(dev) = state.devices.get(&req.rid) else {
        // No context entry: the bus has no context table, or the slot is empty.
        return faults(&[F::RootNotPresent, F::ContextNotPresent]);
    };
    // ATS at the context entry (docs/contract.md section 6.2): the unit advertises ECAP.DT,
    // so the driver sets DTE exactly for the devices with ATS.
    match req.at {
        AddrType::Untranslated => {}
        _ if !dev.desc.ats => return fault(F::DteDisabled),
        AddrType::Translated => return AllowedSet::one(Outcome::Untranslated),
        AddrType::TranslationRequest => {}
    }
    if req.pasid.is_some() && dev.desc.max_pasids == 0 {
        return fault(F::PasidDisabled);
    }
    let pasid = req.pasid.unwrap_or(0);
    if u64::from(pasid >> 6) >= pasid_dir_entries(dev.desc.max_pasids) {
        return fault(F::PasidBeyondDirectory);
    }
    if poisoned(MemErrScope::PasidDir {
        rid: req.rid,
        page: pasid >> 15,
    }) {
        return fault(F::PasidDirAccess);
    }
    if poisoned(MemErrScope::PasidTable {
        rid: req.rid,
        dir: pasid >> 6,
    }) {
        return fault(F::PasidEntryAccess);
    }
    let Some((id, dom)) = state
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
    // A poisoned page of the domain's page table that the walk of `a` reads.
    let table_poisoned = con.mem_errors.iter().any(|e| {
        matches!(*e, MemErrScope::PageTable { domain, base, size, .. }
            if domain == id && (size >= 1 << 48 || a & !(size - 1) == base))
    });
    if req.at == AddrType::TranslationRequest {
        return AllowedSet::one(ats_outcome(
            state,
            con,
            id,
            &dom.ty,
            &dom.mappings,
            req,
            table_poisoned,
        ));
    }
    let outcome = match dom.ty {
        // Filtered out above.
        DomainType::Blocked => Outcome::Fault(F::PasidEntryNotPresent),
        DomainType::Identity if a >> 48 != 0 => Outcome::Fault(F::PtBeyondHaw),
        DomainType::Identity => Outcome::Translated(a),
        DomainType::Paging(Stage::Second) => {
            if a >> 48 != 0 {
                Outcome::Fault(F::SsBeyondHaw)
            } else if table_poisoned {
                Outcome::Fault(F::SsAccess)
            } else {
                let maps = con.domains.get(&id).map_or(&dom.mappings, |d| &d.mappings);
                match lookup(maps, a, |m| (m.pa, m.size)) {
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
            } else if table_poisoned {
                Outcome::Fault(F::FsAccess)
            } else {
                let maps = con.domains.get(&id).map_or(&dom.mappings, |d| &d.mappings);
                match lookup(maps, a, |m| (m.pa, m.size)) {
                    None => Outcome::Fault(F::FsNotPresent),
                    // First-stage leaves are always present (readable) with U/S=1.
                    Some((m, _)) if req.write && !m.prot.write => Outcome::Fault(F::WriteDenied),
                    Some((_, pa)) => Outcome::Translated(pa),
                }
            }
        }
        DomainType::Sva(mm) => {
            let maps = con
                .mms
                .get(&mm)
                .or_else(|| state.mms.get(&mm))
                .map(|m| &m.mappings);
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

/// The answer to a Translation Request through domain `id` of type `ty` (section 6.2): the
/// leaf the kernel mapped, with its size and permissions; R = W = 0 where a walk finds no
/// access (no leaf, an address the stage cannot translate, a supervisor page); CA (a
/// recorded fault) where the walk reads a poisoned table page.
fn ats_outcome(
    att: &State,
    con: &State,
    id: crate::kernel::DomainId,
    ty: &DomainType,
    att_maps: &std::collections::BTreeMap<u64, crate::kernel::Mapping>,
    req: &Request,
    table_poisoned: bool,
) -> Outcome {
    let a = req.addr;
    let denied = Outcome::Ats(AtsEntry::denied());
    let canonical = matches!(a >> 47, 0 | 0x1_FFFF);
    let grant = |pa: u64, size: u64, r: bool, w: bool| {
        Outcome::Ats(AtsEntry {
            addr: pa,
            size,
            r,
            w,
            ..AtsEntry::default()
        })
    };
    let maps = con.domains.get(&id).map_or(att_maps, |d| &d.mappings);
    match *ty {
        DomainType::Blocked => Outcome::Fault(F::PasidEntryNotPresent),
        DomainType::Identity if a >> 48 != 0 => denied,
        DomainType::Identity => grant(a & !(PAGE_SIZE - 1), PAGE_SIZE, true, true),
        DomainType::Paging(stage) => {
            let ss = stage == Stage::Second;
            if (ss && a >> 48 != 0) || (!ss && !canonical) {
                denied
            } else if table_poisoned {
                Outcome::Fault(if ss { F::SsAccess } else { F::FsAccess })
            } else {
                match lookup(maps, a, |m| (m.pa, m.size)) {
                    None => denied,
                    // First stage: a present leaf is readable.
                    Some((m, _)) => grant(m.pa, m.size, !ss || m.prot.read, m.prot.write),
                }
            }
        }
        DomainType::Sva(mm) => {
            let maps = con
                .mms
                .get(&mm)
                .or_else(|| att.mms.get(&mm))
                .map(|m| &m.mappings);
            match maps.and_then(|maps| lookup(maps, a, |m| (m.pa, m.size))) {
                Some((m, _)) if canonical && m.prot.user => grant(m.pa, m.size, true, m.prot.write),
                _ => denied,
            }
        }
    }
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

/// Inserts into `s` what cached entries of an older state may still give: its
/// translations (IOTLB entries), and the faults a walk of that state's page tables gives
/// at the page-table level (not present, and the leaf's permissions). The latter come from
/// the paging-structure caches (docs/contract.md section 5): an unmap takes page-table
/// pages out of the tables but frees them, contents untouched, only after its flush, so a
/// cached non-leaf entry may still walk into the old tables until the flush's wait
/// completes. Faults are never cached, so no other fault of an older state is legal.
fn insert_translations(s: &mut AllowedSet, from: AllowedSet) {
    for o in from.0 {
        let walked = matches!(
            o,
            Outcome::Translated(_)
                | Outcome::Ats(_)
                | Outcome::Fault(
                    F::SsNotPresent
                        | F::FsNotPresent
                        | F::ReadDenied
                        | F::WriteDenied
                        | F::UserToSupervisorPage
                )
        );
        if walked {
            s.insert(o);
        }
    }
}

/// The allowed set from a current state plus the states before each open stale window:
/// their translations and page-walk faults (see `insert_translations`; no other fault is
/// ever cached) through the old attachments, and through
/// the current attachments with the window's domain contents (IOTLB entries are tagged by
/// DID and PASID, not by requester, so during a window any attachment of a domain, even
/// one made after the unmap, may hit the domain's stale entries).
pub fn allowed_from<'a>(
    now: &State,
    stale: impl IntoIterator<Item = &'a State>,
    req: &Request,
) -> AllowedSet {
    let mut s = eval(now, req);
    for st in stale {
        insert_translations(&mut s, eval(st, req));
        insert_translations(&mut s, eval_mixed(now, st, req));
    }
    s
}

/// The allowed set for `req` given the kernel's state and its open windows.
pub fn allowed<O: IommuOps>(k: &Kernel<O>, req: &Request) -> AllowedSet {
    allowed_from(k.state(), k.windows().iter().map(|w| &w.before), req)
}

/// What a device's ATS cache may hold: every entry must be a translation the oracle
/// allows now, for each access the entry grants (docs/contract.md 6.3, 6.4). After an
/// unmap and the wait of its flush no device cache may hold the old translation, through
/// the RID or any PASID attachment. Returns each entry that breaks this, with the
/// oracle's answer.
///
/// Injected memory errors are left out: they make the unit fault on the structures they
/// poison but unmap nothing, so what a device cached before stays a legal translation.
pub fn stale_device_tlb<O: IommuOps>(
    k: &Kernel<O>,
    rid: u16,
    atc: &DevTlb,
) -> Vec<(AtcEntry, Mismatch)> {
    let healthy = |s: &State| {
        let mut s = s.clone();
        s.mem_errors.clear();
        s
    };
    let any_errors = !k.state().mem_errors.is_empty()
        || k.windows().iter().any(|w| !w.before.mem_errors.is_empty());
    let (now, before): (State, Vec<State>) = if any_errors && !atc.is_empty() {
        (
            healthy(k.state()),
            k.windows().iter().map(|w| healthy(&w.before)).collect(),
        )
    } else {
        (State::default(), Vec::new())
    };
    let allowed = |req: &Request| {
        if any_errors {
            allowed_from(&now, &before, req)
        } else {
            allowed(k, req)
        }
    };
    let mut out = Vec::new();
    for e in atc.entries() {
        let mut req = Request::read(rid, e.base, 1);
        req.pasid = e.pasid;
        let accesses = [(e.r, req), (e.w, Request { write: true, ..req })];
        for (granted, req) in accesses {
            if !granted {
                continue;
            }
            if let Err(m) = allowed(&req).check(&Outcome::Translated(e.pa)) {
                out.push((*e, m));
                break;
            }
        }
    }
    out
}

/// What the hardware may legally show at one moment between operations: the kernel state
/// and the state before each stale window open at that moment (an unmap whose
/// `iotlb_sync` has not run, a flush whose invalidation wait has not completed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub state: State,
    /// The before-states of the open windows, oldest first ([`Kernel::windows`]).
    pub windows: Vec<State>,
}

impl Snapshot {
    /// The kernel as it is now.
    pub fn of<O: IommuOps>(k: &Kernel<O>) -> Self {
        Self {
            state: k.state().clone(),
            windows: k.windows().iter().map(|w| w.before.clone()).collect(),
        }
    }

    /// [`Snapshot::of`], and starts recording the intermediate states of the operation
    /// about to begin ([`Kernel::record_transit`]): what a harness calls just before an
    /// operation whose invalidations requests may race with.
    pub fn take<O: IommuOps>(k: &mut Kernel<O>) -> Self {
        k.record_transit();
        Self::of(k)
    }

    /// The allowed set at this moment (what [`allowed`] answers for the kernel it was taken
    /// of).
    pub fn allowed(&self, req: &Request) -> AllowedSet {
        allowed_from(&self.state, &self.windows, req)
    }
}

/// The oracle under concurrency: what a request may see when the translation unit handles
/// it while an operation executes, from `before` (taken with [`Snapshot::take`] just
/// before the operation) to the end of the operation's last invalidation wait, with the
/// kernel `k` as the operation left it. See [`allowed_across`] for the rule.
pub fn allowed_during<O: IommuOps>(before: &Snapshot, k: &Kernel<O>, req: &Request) -> AllowedSet {
    across(
        before,
        k.transit(),
        k.state(),
        k.windows().iter().map(|w| &w.before),
        req,
    )
}

/// The rule of [`allowed_during`] on explicit states: `before` at the start of the
/// operation, the intermediate states it passed through ([`Kernel::transit`]) and `after`
/// at its end. A request in flight during the operation may see any state the hardware
/// may legally be in between those two moments:
///
/// - a fresh walk at any moment: the outcomes (faults included) of `before.state`, of each
///   intermediate state, and of `after.state`;
/// - a PASID entry cached at one of those moments walking the tables as they are at a later
///   one (outcomes of the attachments of the first with the contents of the second);
/// - every translation cached at one of those moments or at the start of a window open
///   before or after the operation (`before.windows`, `after.windows`: an unmap whose
///   flush this very operation submits is only over when the operation's wait completes),
///   reached through its own attachments or through the attachments of any moment of the
///   operation; with them the page-walk faults of those older tables (a cached non-leaf
///   entry may still lead into tables an unmap took out but has not freed yet). No other
///   fault is ever cached.
///
/// The rule rests on the invalidation wait (VT-d 6.5.2.8 and the contract's ordering
/// section): a wait descriptor completes only after every invalidation before it took
/// effect and every translation that began before it has left the unit; Linux's
/// `qi_submit_sync()` returns only then. Before that completion nothing guarantees a
/// request does not use an entry the batch removes. After it, [`Snapshot::allowed`] of
/// `after` is exact again.
pub fn allowed_across(
    before: &Snapshot,
    transit: &[State],
    after: &Snapshot,
    req: &Request,
) -> AllowedSet {
    across(before, transit, &after.state, after.windows.iter(), req)
}

fn across<'a>(
    before: &'a Snapshot,
    transit: &[State],
    after: &State,
    after_windows: impl Iterator<Item = &'a State>,
    req: &Request,
) -> AllowedSet {
    let moments: Vec<&State> = std::iter::once(&before.state)
        .chain(transit)
        .chain(std::iter::once(after))
        .collect();
    let mut s = AllowedSet::new();
    // Fresh walks (i == j) and PASID entries cached at moment i walking moment j's tables.
    for (i, att) in moments.iter().enumerate() {
        for con in &moments[i..] {
            for o in eval_mixed(att, con, req).0 {
                s.insert(o);
            }
        }
    }
    // Translations cached from older contents (windows before and after) or from any moment
    // of the operation, through their own or any moment's attachments.
    for w in before.windows.iter().chain(after_windows) {
        insert_translations(&mut s, eval(w, req));
        for att in &moments {
            insert_translations(&mut s, eval_mixed(att, w, req));
        }
    }
    for con in &moments {
        for att in &moments {
            if !std::ptr::eq(*att, *con) {
                insert_translations(&mut s, eval_mixed(att, con, req));
            }
        }
    }
    s
}
