//! The oracle under concurrency against every legal behaviour of the golden hardware.
//!
//! Seeded random operation sequences ([`Stimulus`], as in `properties.rs`) run on the
//! driver model over [`ObservedHw`], which stops after every memory write of the driver and
//! after every descriptor the hardware executes. At each of those points the test
//! translates a set of requests that matter (the first and last page of everything mapped
//! so far, read and write, through the RID and every PASID ever attached of each device)
//! in every way a legal translation unit could: a fresh walk of memory as it is at that
//! point, or through any subset of a maximal cache that every earlier point filled
//! ([`MaxCache::possible`]).
//!
//! - Soundness: every outcome seen while an operation executes is in
//!   [`oracle::allowed_across`] of the snapshot before it, its intermediate states and the
//!   snapshot after it; every outcome possible once it returned is in the snapshot's
//!   allowed set.
//! - Precision: once an operation's waits completed, the allowed set holds no translation
//!   that neither the hardware can still produce nor a window the kernel still holds open
//!   justifies; with no window open, the maximal cache agrees exactly with the walk.
//!
//! Both properties are also run with a deliberately wrong oracle, and must find it.
//!
//! Requests are re-translated at a point only if the point can change their outcomes: a
//! write to a word one of their walks read, an invalidation that removed an entry they
//! could use, or a fill of a translation of their page. Everything else is carried from
//! the previous point, so each point costs what it changes.
//!
//! [`MaxCache::possible`]: iommu_model::golden::MaxCache::possible

use std::cell::RefCell;
use std::collections::BTreeSet;

use iommu_model::driver::DriverQuirks;
use iommu_model::fault::FaultReason;
use iommu_model::golden::{psc_invalidated, GoldenHw, Leaf, Outcome, PscRule, Request};
use iommu_model::kernel::State;
use iommu_model::mem::{Mem, MemError, PhysMem, PAGE_SIZE};
use iommu_model::observe::{observed_kernel, ObservedKernel, Observer, Point};
use iommu_model::oracle::{self, AllowedSet, Snapshot};
use iommu_model::qi::{Descriptor, IotlbGran, PiotlbGran};
use iommu_model::stimulus::{Op, PasidArg, Stimulus, DEVS};

/// Memory that remembers which words a walk read.
struct Recorder<'a> {
    mem: &'a Mem,
    reads: RefCell<Vec<u64>>,
}

impl PhysMem for Recorder<'_> {
    fn read64(&self, pa: u64) -> Result<u64, MemError> {
        self.reads.borrow_mut().push(pa);
        self.mem.read64(pa)
    }
}

/// One request the probe follows.
struct Tracked {
    req: Request,
    /// Every outcome legal hardware may give at the latest point it was translated.
    now: Vec<Outcome>,
    /// The words those translations read, sorted.
    reads: Vec<u64>,
    /// Every outcome since the current operation began.
    seen: BTreeSet<Outcome>,
    /// Translated again during the current operation.
    moved: bool,
}

/// The observer: translates the requests a point can affect.
#[derive(Default)]
struct Probe {
    reqs: Vec<Tracked>,
    points: u64,
    evals: u64,
    psc: PscStats,
}

/// How the paging-structure caches were exercised.
#[derive(Default, Debug, Clone, Copy)]
struct PscStats {
    /// Page-selective flushes with IH = 0 (page-table pages freed) that removed cached
    /// non-leaf entries.
    ih0_removed: u64,
    /// Page-selective flushes with IH = 1 that kept cached non-leaf entries an IH = 0 flush
    /// would have removed.
    ih1_kept: u64,
    /// Outcomes only a walk from a cached non-leaf entry gives (neither the walk from
    /// memory nor the IOTLB).
    stale_walks: u64,
}

/// A page-selective IOTLB or PASID-based IOTLB invalidation.
fn page_selective(d: &Descriptor) -> bool {
    matches!(
        d,
        Descriptor::Iotlb {
            gran: IotlbGran::Page,
            ..
        } | Descriptor::PasidIotlb {
            gran: PiotlbGran::Page,
            ..
        }
    )
}

/// The same descriptor with IH = 0 if it is page-selective with IH = 1.
fn without_ih(d: &Descriptor) -> Option<Descriptor> {
    match *d {
        Descriptor::Iotlb {
            gran: IotlbGran::Page,
            ih: true,
            ..
        }
        | Descriptor::PasidIotlb {
            gran: PiotlbGran::Page,
            ih: true,
            ..
        } => {
            let mut q = d.encode();
            q[1] &= !(1 << 6);
            Descriptor::decode(q).ok()
        }
        _ => None,
    }
}

/// Translates `t` every legal way and fills the maximal cache; returns the leaf filled.
fn eval(hw: &mut GoldenHw, t: &mut Tracked, stats: &mut PscStats) -> Option<Leaf> {
    let rec = Recorder {
        mem: &hw.mem,
        reads: RefCell::new(Vec::new()),
    };
    let now = hw.cache.possible(&hw.regs, &rec, &t.req);
    if hw.cache.psc_len() > 0 {
        let without = hw.cache.possible_without_psc(&hw.regs, &hw.mem, &t.req);
        stats.stale_walks += now.iter().filter(|o| !without.contains(o)).count() as u64;
    }
    let fill = hw.cache.translate(&hw.regs, &rec, &t.req);
    let mut reads = rec.reads.into_inner();
    reads.sort_unstable();
    reads.dedup();
    t.reads = reads;
    t.seen.extend(now.iter().copied());
    t.now = now;
    t.moved = true;
    fill.leaf
        .filter(|_| matches!(fill.outcome, Outcome::Translated(_)))
}

fn covers(l: &Leaf, addr: u64) -> bool {
    addr >= l.va && addr - l.va < l.size
}

impl Probe {
    fn affected(&self, at: Point<'_>) -> Vec<usize> {
        let hit = |t: &Tracked| match at {
            Point::Wrote(ranges) => ranges.iter().any(|&(s, e)| {
                let i = t.reads.partition_point(|&w| w < s);
                t.reads.get(i).is_some_and(|&w| w < e)
            }),
            Point::Executed(_, removed) => {
                removed.ctx.contains(&t.req.rid)
                    || removed.pasid.iter().any(|&(r, _)| r == t.req.rid)
                    || removed.iotlb.iter().any(|l| covers(l, t.req.addr))
                    || removed
                        .psc
                        .iter()
                        .any(|(tag, _)| tag.overlaps(t.req.addr, t.req.addr + 1))
            }
        };
        (0..self.reqs.len())
            .filter(|&i| hit(&self.reqs[i]))
            .collect()
    }
}

impl Observer for Probe {
    fn point(&mut self, hw: &mut GoldenHw, at: Point<'_>) {
        self.points += 1;
        if let Point::Executed(d, r) = at {
            if !r.psc.is_empty() && page_selective(d) && without_ih(d).is_none() {
                self.psc.ih0_removed += 1;
            }
            if let Some(d0) = without_ih(d) {
                let kept = hw.cache.psc_entries().any(|(t, _)| psc_invalidated(&d0, t));
                self.psc.ih1_kept += u64::from(kept);
            }
            if r.is_empty() {
                return;
            }
        }
        let dirty = self.affected(at);
        let mut filled = Vec::new();
        let cached = hw.cache.iotlb_len();
        let structures = hw.cache.psc_len();
        for &i in &dirty {
            self.evals += 1;
            filled.extend(eval(hw, &mut self.reqs[i], &mut self.psc));
        }
        // A new translation in the cache may serve other requests of its page; a new
        // non-leaf entry, any request of its region.
        let psc_grew = hw.cache.psc_len() != structures;
        if hw.cache.iotlb_len() != cached || psc_grew {
            for i in 0..self.reqs.len() {
                let addr = self.reqs[i].req.addr;
                if !dirty.contains(&i) && (psc_grew || filled.iter().any(|l| covers(l, addr))) {
                    self.evals += 1;
                    eval(hw, &mut self.reqs[i], &mut self.psc);
                }
            }
        }
    }
}

/// The oracle under test, so that a wrong one can be shown to be caught.
#[derive(Clone, Copy)]
struct Oracle {
    /// A request in flight during an operation: (before, transit, after, request).
    during: fn(&Snapshot, &[State], &Snapshot, &Request) -> AllowedSet,
    /// After the operation returned: (before, after, request).
    after: fn(&Snapshot, &Snapshot, &Request) -> AllowedSet,
}

const REAL: Oracle = Oracle {
    during: oracle::allowed_across,
    after: |_, after, req| after.allowed(req),
};

/// Which property a run checks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    Sound,
    Precise,
}

/// What a run exercised, so that the properties cannot hold vacuously.
#[derive(Default, Debug, Clone, Copy)]
struct Stats {
    ops: u64,
    points: u64,
    evals: u64,
    /// Requests judged by the oracle during an operation.
    during: u64,
    /// Outcomes seen during an operation that neither the allowed set just before it nor
    /// the one just after it holds: intermediate states.
    only_during: u64,
    /// Outcomes seen during an operation, not allowed after it, that only a window open
    /// before it justifies (the testbench's false alarm).
    stale_pre_op: u64,
    /// Translations the precision check compared.
    precise: u64,
    psc: PscStats,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.ops += o.ops;
        self.points += o.points;
        self.evals += o.evals;
        self.during += o.during;
        self.only_during += o.only_during;
        self.stale_pre_op += o.stale_pre_op;
        self.precise += o.precise;
        self.psc.ih0_removed += o.psc.ih0_removed;
        self.psc.ih1_kept += o.psc.ih1_kept;
        self.psc.stale_walks += o.psc.stale_walks;
    }
}

struct Run {
    k: ObservedKernel<Probe>,
    stim: Stimulus,
    /// (RID, PASID) pairs requests go through.
    paths: BTreeSet<(u16, Option<u32>)>,
    /// Addresses requests aim at.
    addrs: BTreeSet<u64>,
    /// Leaves already turned into addresses: (domain or mm, va, size).
    leaves: BTreeSet<(bool, u32, u64, u64)>,
    tracked: BTreeSet<(u16, Option<u32>, u64, bool)>,
    stats: Stats,
}

/// The PASID an operation is about to attach, so that requests through it are followed
/// from the operation's first point on.
fn op_pasid(op: &Op, stim: &Stimulus, st: &State, held: &BTreeSet<u32>) -> Option<(u16, u32)> {
    let lowest_free = |dev: u16| {
        let max = DEVS.iter().find(|d| d.0 == dev).map_or(0, |d| d.1);
        (1..max).find(|p| !held.contains(p))
    };
    match *op {
        Op::AttachDevicePasid { dev, pasid, .. } => match pasid {
            PasidArg::Lit(v) => Some((dev, v)),
            PasidArg::Ref(r) => stim.bindings().pasids.get(&r).map(|&p| (dev, p)),
        },
        Op::EnableDmaPasid { dev, .. } => lowest_free(dev).map(|p| (dev, p)),
        Op::SvaBind { dev, mm, .. } => {
            let existing = mm
                .and_then(|m| stim.bindings().mms.get(&m))
                .and_then(|id| st.mms.get(id))
                .and_then(|m| m.pasid);
            existing.or_else(|| lowest_free(dev)).map(|p| (dev, p))
        }
        _ => None,
    }
}

impl Run {
    fn new(seed: u64, hw: Hardware) -> Self {
        let mut k =
            observed_kernel(hw.quirks, Probe::default()).expect("the golden hardware initialises");
        k.ops_mut().hw_mut().hw.cache.set_psc_rule(hw.psc_rule);
        Stimulus::add_devices(&mut k).expect("the devices probe");
        let paths = DEVS.iter().map(|&(r, _)| (r, None)).collect();
        Self {
            k,
            stim: Stimulus::new(seed),
            paths,
            addrs: BTreeSet::new(),
            leaves: BTreeSet::new(),
            tracked: BTreeSet::new(),
            stats: Stats::default(),
        }
    }

    /// Follows the paths and leaves the kernel state shows, and the requests they make.
    fn follow(&mut self) {
        let st = self.k.state();
        for (&r, d) in &st.devices {
            self.paths.extend(d.pasids.keys().map(|&p| (r, Some(p))));
        }
        let mut runs: Vec<Vec<(u64, u64)>> = Vec::new();
        for (id, d) in &st.domains {
            let new: Vec<(u64, u64)> = d
                .mappings
                .iter()
                .map(|(&v, m)| (v, m.size))
                .filter(|&(v, s)| self.leaves.insert((false, id.0, v, s)))
                .collect();
            runs.push(new);
        }
        for (id, m) in &st.mms {
            let new: Vec<(u64, u64)> = m
                .mappings
                .iter()
                .map(|(&v, x)| (v, x.size))
                .filter(|&(v, s)| self.leaves.insert((true, id.0, v, s)))
                .collect();
            runs.push(new);
        }
        // The first and the last page of what each operation mapped.
        for run in runs {
            if let (Some(&(v0, s0)), Some(&(v1, s1))) = (run.first(), run.last()) {
                self.addrs.insert(v0 + 0x8b0);
                self.addrs.insert(v1 + s1 - PAGE_SIZE + 0x8b0);
                if s0 > PAGE_SIZE {
                    self.addrs.insert(v0 + s0 - PAGE_SIZE + 0x8b0);
                }
            }
        }
        self.track();
    }

    /// Starts following every (path, address, direction) not followed yet.
    fn track(&mut self) {
        let oh = self.k.ops_mut().hw_mut();
        for &(rid, pasid) in &self.paths {
            for &addr in &self.addrs {
                for write in [false, true] {
                    if !self.tracked.insert((rid, pasid, addr, write)) {
                        continue;
                    }
                    let mut t = Tracked {
                        req: Request {
                            rid,
                            pasid,
                            pmr: false,
                            er: false,
                            addr,
                            len: 8,
                            write,
                            at: Default::default(),
                        },
                        now: Vec::new(),
                        reads: Vec::new(),
                        seen: BTreeSet::new(),
                        moved: false,
                    };
                    eval(&mut oh.hw, &mut t, &mut oh.observer.psc);
                    oh.observer.reqs.push(t);
                }
            }
        }
    }

    /// One operation, judged at every point; `Err` describes the first violation.
    fn step(&mut self, step: usize, oracle: Oracle, check: Check) -> Result<(), String> {
        let op = self.stim.next_op(&self.k);
        if let Some(p) = op_pasid(&op, &self.stim, self.k.state(), self.k.global_pasids()) {
            if p.1 <= 0xF_FFFF {
                self.paths.insert((p.0, Some(p.1)));
                self.track();
            }
        }
        for t in &mut self.k.ops_mut().hw_mut().observer.reqs {
            t.seen = t.now.iter().copied().collect();
            t.moved = false;
        }
        let before = Snapshot::take(&mut self.k);
        let line = self.stim.apply(&op, &mut self.k);
        self.k.ops_mut().hw_mut().flush();
        let after = Snapshot::of(&self.k);
        self.stats.ops += 1;
        let probe = &self.k.ops().hw().observer;
        let transit = self.k.transit();
        for t in &probe.reqs {
            // A request whose outcomes did not change during the operation is judged by
            // the check after it (the set during the operation contains the set after it);
            // the others, with everything they showed at any point, here.
            if check == Check::Sound && t.moved && t.seen.len() > 1 {
                self.stats.during += 1;
                let allowed = (oracle.during)(&before, transit, &after, &t.req);
                let (pre, post) = (before.allowed(&t.req), after.allowed(&t.req));
                for o in &t.seen {
                    if !allowed.contains(o) {
                        return Err(format!(
                            "step {step}, during `{line}`: {}: hardware may give {o}, oracle allowed {allowed}",
                            t.req
                        ));
                    }
                    if post.contains(o) {
                        continue;
                    }
                    if !pre.contains(o) {
                        self.stats.only_during += 1;
                    } else if !oracle::eval(&before.state, &t.req).contains(o) {
                        // Legal only through a window open before the operation, which
                        // the operation's own wait closed.
                        self.stats.stale_pre_op += 1;
                    }
                }
            }
            let allowed = (oracle.after)(&before, &after, &t.req);
            match check {
                Check::Sound => {
                    if let Some(o) = t.now.iter().find(|o| !allowed.contains(o)) {
                        return Err(format!(
                            "step {step}, after `{line}`: {}: hardware may give {o}, oracle allowed {allowed}",
                            t.req
                        ));
                    }
                }
                Check::Precise => {
                    let st = self.k.state();
                    let windows = self.k.windows();
                    for pa in allowed.translations() {
                        self.stats.precise += 1;
                        let o = Outcome::Translated(pa);
                        let open = windows.iter().any(|w| {
                            oracle::eval(&w.before, &t.req).contains(&o)
                                || oracle::eval_mixed(st, &w.before, &t.req).contains(&o)
                        });
                        if !t.now.contains(&o) && !open {
                            return Err(format!(
                                "step {step}, after `{line}`: {}: oracle allows {o}, which no hardware can give any more (it gives {:?}) and no open window keeps",
                                t.req, t.now
                            ));
                        }
                    }
                    if windows.is_empty() {
                        let walk = self.k.ops().hw().hw.translate(&t.req).outcome;
                        if t.now != [walk] || !allowed.contains(&walk) {
                            return Err(format!(
                                "step {step}, after `{line}`: {}: no window open, yet the cache gives {:?}, the walk {walk}, the oracle {allowed}",
                                t.req, t.now
                            ));
                        }
                    }
                }
            }
        }
        self.follow();
        Ok(())
    }
}

/// Operations per sequence: long enough for domains, attachments, mappings and SVA binds
/// to build up under the default operation mix.
const OPS: usize = 60;

/// The driver and the golden hardware a run uses, so that a wrong one can be shown to be
/// caught: the driver's bug switches and the maximal cache's rule for paging-structure
/// entries.
#[derive(Clone, Copy)]
struct Hardware {
    quirks: DriverQuirks,
    psc_rule: PscRule,
}

const LINUX: Hardware = Hardware {
    quirks: DriverQuirks {
        skip_pasid_flush: false,
        ih_always_set: false,
        skip_pasid_devtlb_flush: false,
    },
    psc_rule: psc_invalidated,
};

/// One seeded sequence of `ops` operations.
fn run(seed: u64, ops: usize, oracle: Oracle, check: Check) -> Result<Stats, String> {
    run_on(seed, ops, oracle, check, LINUX)
}

fn run_on(
    seed: u64,
    ops: usize,
    oracle: Oracle,
    check: Check,
    hw: Hardware,
) -> Result<Stats, String> {
    let mut r = Run::new(seed, hw);
    r.follow();
    for step in 0..ops {
        if let Err(e) = r.step(step, oracle, check) {
            return Err(format!(
                "seed {seed} {e}\n  ops:\n    {}",
                r.stim.log.join("\n    ")
            ));
        }
    }
    let p = &r.k.ops().hw().observer;
    r.stats.points = p.points;
    r.stats.evals = p.evals;
    r.stats.psc = p.psc;
    Ok(r.stats)
}

fn sweep(seeds: std::ops::Range<u64>, ops: usize, check: Check) -> Stats {
    let mut total = Stats::default();
    for seed in seeds {
        match run(seed, ops, REAL, check) {
            Ok(s) => total.add(&s),
            Err(e) => panic!("{e}"),
        }
    }
    eprintln!("{total:?}");
    total
}

#[test]
fn requests_racing_an_operation_see_only_what_the_oracle_allows() {
    let s = sweep(0..2000, OPS, Check::Sound);
    assert!(s.points > 3 * s.ops, "{s:?}");
    assert!(s.during > s.ops / 2, "{s:?}");
    assert!(
        s.only_during > 1000,
        "outcomes of intermediate states must occur: {s:?}"
    );
    assert!(
        s.stale_pre_op > 100,
        "stale translations of windows opened before the operation must occur: {s:?}"
    );
    assert!(
        s.psc.ih0_removed > 100,
        "IH = 0 flushes after freed page tables must remove cached non-leaf entries: {s:?}"
    );
    assert!(
        s.psc.ih1_kept > 100,
        "IH = 1 flushes must keep cached non-leaf entries: {s:?}"
    );
    assert!(
        s.psc.stale_walks > 100,
        "walks from cached non-leaf entries must give outcomes of their own: {s:?}"
    );
}

#[test]
fn once_the_wait_completed_the_oracle_allows_nothing_stale() {
    let s = sweep(2000..3000, OPS, Check::Precise);
    assert!(s.precise > 3 * s.ops, "{s:?}");
}

/// The rule the testbench used before: the states before and after the operation, the
/// windows open after it, and a not-present PASID entry if the device's attachments
/// changed. It forgets the windows that were open before the operation and that the
/// operation's own wait closed.
fn forgets_pre_op_windows(
    before: &Snapshot,
    transit: &[State],
    after: &Snapshot,
    req: &Request,
) -> AllowedSet {
    let narrowed = Snapshot {
        state: before.state.clone(),
        windows: Vec::new(),
    };
    oracle::allowed_across(&narrowed, transit, after, req)
}

/// Keeps allowing what every window open before the operation allowed, after its wait.
fn keeps_closed_windows(before: &Snapshot, after: &Snapshot, req: &Request) -> AllowedSet {
    oracle::allowed_from(
        &after.state,
        before
            .windows
            .iter()
            .chain(std::iter::once(&before.state))
            .chain(&after.windows),
        req,
    )
}

/// The first seed in `seeds` whose run fails.
fn first_failure(seeds: std::ops::Range<u64>, oracle: Oracle, check: Check) -> Option<String> {
    seeds
        .into_iter()
        .find_map(|seed| run(seed, OPS, oracle, check).err())
}

/// The rule the testbench's regression used before [`oracle::allowed_during`]: the
/// allowed set after the operation with the state before it as one more window, every
/// outcome of the state before it, and a not-present PASID entry if the device's
/// attachments changed.
fn old_testbench_rule(
    before: &Snapshot,
    _transit: &[State],
    after: &Snapshot,
    req: &Request,
) -> AllowedSet {
    let mut allowed = oracle::allowed_from(
        &after.state,
        std::iter::once(&before.state).chain(&after.windows),
        req,
    );
    for o in oracle::eval(&before.state, req).iter() {
        allowed.insert(*o);
    }
    let of = |st: &State| {
        st.devices
            .get(&req.rid)
            .map(|d| (d.rid_domain, d.pasids.clone()))
    };
    if of(&before.state) != of(&after.state) {
        allowed.insert(Outcome::Fault(FaultReason::PasidEntryNotPresent));
    }
    allowed
}

/// Ignores the intermediate states ([`iommu_model::kernel::Kernel::transit`]).
fn ignores_intermediate_states(
    before: &Snapshot,
    _transit: &[State],
    after: &Snapshot,
    req: &Request,
) -> AllowedSet {
    oracle::allowed_across(before, &[], after, req)
}

#[test]
fn soundness_check_catches_the_old_testbench_rule() {
    let old = Oracle {
        during: old_testbench_rule,
        ..REAL
    };
    let e = first_failure(0..2000, old, Check::Sound)
        .expect("the property must find the testbench's false alarm");
    eprintln!("{}", e.lines().next().unwrap_or_default());
    assert!(e.contains("during"), "{e}");
}

#[test]
fn soundness_check_catches_an_oracle_that_ignores_intermediate_states() {
    let blind = Oracle {
        during: ignores_intermediate_states,
        ..REAL
    };
    let e = first_failure(0..2000, blind, Check::Sound)
        .expect("the property must find the blocked state between teardown and setup");
    eprintln!("{}", e.lines().next().unwrap_or_default());
    assert!(e.contains("during"), "{e}");
}

#[test]
fn soundness_check_catches_an_oracle_that_forgets_pre_op_windows() {
    let narrowed = Oracle {
        during: forgets_pre_op_windows,
        ..REAL
    };
    let e = first_failure(0..2000, narrowed, Check::Sound)
        .expect("the property must find the narrowed oracle's false alarm");
    eprintln!("{}", e.lines().next().unwrap_or_default());
    assert!(e.contains("during"), "{e}");
}

#[test]
fn precision_check_catches_an_oracle_that_keeps_closed_windows() {
    let wide = Oracle {
        after: keeps_closed_windows,
        ..REAL
    };
    let e = first_failure(2000..3000, wide, Check::Precise)
        .expect("the property must find the over-wide oracle");
    eprintln!("{}", e.lines().next().unwrap_or_default());
    assert!(e.contains("no open window keeps"), "{e}");
}

/// The first seed in `seeds` whose run on `hw` fails the soundness check.
fn first_unsound(seeds: std::ops::Range<u64>, hw: Hardware) -> Option<String> {
    seeds
        .into_iter()
        .find_map(|seed| run_on(seed, OPS, REAL, Check::Sound, hw).err())
}

#[test]
fn soundness_check_catches_a_driver_that_always_sets_ih() {
    let buggy = Hardware {
        quirks: DriverQuirks {
            ih_always_set: true,
            ..DriverQuirks::default()
        },
        ..LINUX
    };
    let e = first_unsound(0..2000, buggy)
        .expect("a walk through a stale non-leaf entry into a freed, reused page must be found");
    eprintln!("{}", e.lines().next().unwrap_or_default());
    assert!(e.contains("hardware may give"), "{e}");
}

/// Page-selective invalidations keep every non-leaf entry, as if IH were always 1.
fn ignores_ih(d: &Descriptor, t: &iommu_model::golden::PscTag) -> bool {
    !page_selective(d) && psc_invalidated(d, t)
}

/// PASID-based IOTLB invalidations (type 6) remove no non-leaf entry.
fn piotlb_keeps_psc(d: &Descriptor, t: &iommu_model::golden::PscTag) -> bool {
    !matches!(d, Descriptor::PasidIotlb { .. }) && psc_invalidated(d, t)
}

#[test]
fn soundness_check_catches_a_maximal_cache_that_ignores_ih_0() {
    let wrong = Hardware {
        psc_rule: ignores_ih,
        ..LINUX
    };
    let e = first_unsound(0..2000, wrong)
        .expect("the property must find non-leaf entries an IH = 0 flush failed to remove");
    eprintln!("{}", e.lines().next().unwrap_or_default());
    assert!(e.contains("hardware may give"), "{e}");
}

#[test]
fn soundness_check_catches_a_maximal_cache_whose_type_6_keeps_non_leaf_entries() {
    let wrong = Hardware {
        psc_rule: piotlb_keeps_psc,
        ..LINUX
    };
    let e = first_unsound(0..2000, wrong)
        .expect("the property must find first-stage non-leaf entries type 6 failed to remove");
    eprintln!("{}", e.lines().next().unwrap_or_default());
    assert!(e.contains("hardware may give"), "{e}");
}

// Hand-written cases on the plain golden system.

mod cases {
    use super::*;
    use iommu_model::kernel::{DeviceDesc, DomainType, Kernel, Prot, Stage};
    use iommu_model::sim::{golden_kernel, GoldenExt, GoldenKernel};

    const DEV: u16 = 0x0208;

    fn system(stage: Stage) -> (GoldenKernel, iommu_model::kernel::DomainId) {
        let mut k = golden_kernel(DriverQuirks::default()).expect("golden system");
        k.add_device(DeviceDesc {
            rid: DEV,
            max_pasids: 0,
            ats: false,
        })
        .expect("probe");
        let d = k.domain_alloc(DomainType::Paging(stage)).expect("domain");
        k.attach_device(DEV, d).expect("attach");
        (k, d)
    }

    /// The regression's false alarm: `unmap 0x200000` without sync leaves a stale entry;
    /// `unmap 0x400000` with sync closes its window too, so a request racing that
    /// operation may still be translated by the stale entry.
    #[test]
    fn a_window_open_before_the_operation_stays_open_until_its_wait() {
        for stage in [Stage::First, Stage::Second] {
            let (mut k, d) = system(stage);
            k.map(d, 0x20_0000, 0x2_0000_0000, 0x20_0000, Prot::RW)
                .unwrap();
            k.map(d, 0x40_0000, 0x2_0100_0000, 0x1000, Prot::RW)
                .unwrap();
            let req = Request::read(DEV, 0x20_08b0, 8);
            let stale = Outcome::Translated(0x2_0000_08b0);
            assert_eq!(k.translate_cached(&req).outcome, stale);
            k.unmap(d, 0x20_0000, 0x20_0000).unwrap();
            assert_eq!(k.translate_cached(&req).outcome, stale, "window open");

            let before = Snapshot::take(&mut k);
            k.unmap(d, 0x40_0000, 0x1000).unwrap();
            k.iotlb_sync(d).unwrap();
            let during = oracle::allowed_during(&before, &k, &req);
            assert!(during.contains(&stale), "{stage:?}: {during}");
            assert_eq!(
                during,
                oracle::allowed_across(&before, k.transit(), &Snapshot::of(&k), &req)
            );
            let old = old_testbench_rule(&before, k.transit(), &Snapshot::of(&k), &req);
            assert!(!old.contains(&stale), "the old rule rejected it: {old}");
            // Once the wait completed: nothing stale, and the cache agrees.
            assert!(!k.allowed(&req).contains(&stale));
            assert_eq!(k.translate_cached(&req).outcome, k.translate(&req).outcome);
        }
    }

    /// Unmapped without sync, then mapped again to another page: while the sync races,
    /// both the old and the new page are legal; afterwards only the new one.
    #[test]
    fn a_remapped_page_may_show_its_old_frame_until_the_wait() {
        let (mut k, d) = system(Stage::Second);
        k.map(d, 0x3000, 0x2_0000_3000, 0x1000, Prot::RW).unwrap();
        let req = Request::write(DEV, 0x3010, 8);
        assert_eq!(
            k.translate_cached(&req).outcome,
            Outcome::Translated(0x2_0000_3010)
        );
        k.unmap(d, 0x3000, 0x1000).unwrap();
        k.map(d, 0x3000, 0x2_0777_0000, 0x1000, Prot::RW).unwrap();
        assert_eq!(
            k.translate_cached(&req).outcome,
            Outcome::Translated(0x2_0000_3010),
            "the stale entry still serves"
        );
        let before = Snapshot::take(&mut k);
        k.iotlb_sync(d).unwrap();
        let during = oracle::allowed_during(&before, &k, &req);
        assert!(
            during.contains(&Outcome::Translated(0x2_0000_3010)),
            "{during}"
        );
        assert!(
            during.contains(&Outcome::Translated(0x2_0777_0010)),
            "{during}"
        );
        assert_eq!(
            k.allowed(&req),
            AllowedSet::one(Outcome::Translated(0x2_0777_0010))
        );
    }

    /// `intel_iommu_attach_device()` blocks the RID before installing the new domain: the
    /// kernel records that state, and the oracle allows its fault during the attach only.
    #[test]
    fn replacing_a_domain_passes_through_blocked() {
        let (mut k, d1) = system(Stage::Second);
        let d2 = k.domain_alloc(DomainType::Identity).unwrap();
        k.map(d1, 0x1000, 0x2_0000_1000, 0x1000, Prot::RW).unwrap();
        let req = Request::read(DEV, 0x1008, 8);
        let before = Snapshot::take(&mut k);
        assert!(k.transit().is_empty());
        k.attach_device(DEV, d2).unwrap();
        assert_eq!(k.transit().len(), 1);
        assert_eq!(k.transit()[0].devices[&DEV].rid_domain, None);
        let during = oracle::allowed_during(&before, &k, &req);
        let blocked = Outcome::Fault(FaultReason::PasidEntryNotPresent);
        for o in [
            Outcome::Translated(0x2_0000_1008),
            Outcome::Translated(0x1008),
            blocked,
        ] {
            assert!(during.contains(&o), "{o} in {during}");
        }
        assert!(!k.allowed(&req).contains(&blocked));
        // A backend that replaces hitlessly records nothing.
        let mut a = Kernel::abstract_only();
        a.add_device(DeviceDesc {
            rid: DEV,
            max_pasids: 0,
            ats: false,
        })
        .unwrap();
        let x = a.domain_alloc(DomainType::Identity).unwrap();
        let y = a.domain_alloc(DomainType::Paging(Stage::Second)).unwrap();
        a.attach_device(DEV, x).unwrap();
        Snapshot::take(&mut a);
        a.attach_device(DEV, y).unwrap();
        assert!(a.transit().is_empty());
    }
}
