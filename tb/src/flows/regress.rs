//! Random regression of the translation unit: seeded kernel-API sequences
//! ([`iommu_model::stimulus`]) run on the RTL through the driver model, with a stream of
//! requests after every operation, under random memory latency and back-pressure.
//!
//! Every request is judged by the streaming judge ([`crate::check`]), in flight together with
//! the others of its stream. While no invalidation window is open, the DUT must do exactly
//! what the golden walker does on the same memory, fault record included. While an unmap's
//! flush has not completed, the DUT's answer must be in the oracle's allowed set (the old
//! translation is still allowed). Either way the outcome must be in the oracle's set.
//!
//! Requests are also streamed while an operation's invalidations are executing (as DMA goes
//! on while Linux spins in `qi_submit_sync`): the [`Collector`] logs what leaves, and the log
//! is judged after the operation by the oracle under concurrency
//! ([`oracle::allowed_during`], rule in the model's README): anything legal before the
//! operation (every window open then included), after it, or in the states the driver
//! passes through; after the wait, the exact check above applies again.

use anyhow::{anyhow, Result};
use iommu_model::driver::{Driver, DriverQuirks};
use iommu_model::golden;
use iommu_model::golden::{AddrType, Outcome, Request};
use iommu_model::kernel::{Kernel, KernelConfig};
use iommu_model::mem::Mem;
use iommu_model::oracle;
use iommu_model::oracle::AllowedSet;
use iommu_model::stimulus::{self, Applied, Bindings, Op, Stimulus, Weights};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::check::device_cache::check_device_caches;
use crate::check::expect::{golden_request, Expect};
use crate::check::records::RecordReader;
use crate::check::stream::{self, Collector, StreamTime, Traffic};
use crate::coverage::{self, Coverage};
use crate::env::mem::MemTiming;
use crate::env::Env;
use crate::hw::rtl_hw::RtlHw;
use crate::hw::system::{hw_state, RtlKernel};
use crate::tlp::{self, At, MemRequest, PasidPrefix};

/// Shape of one seed.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub ops: usize,
    pub requests_per_op: usize,
    /// Requests offered to the DUT while each operation's invalidations are in flight.
    pub concurrent_per_op: usize,
    pub quirks: DriverQuirks,
    /// The operation mix.
    pub weights: Weights,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ops: 30,
            requests_per_op: 32,
            concurrent_per_op: 8,
            quirks: DriverQuirks::default(),
            weights: Weights::default(),
        }
    }
}

/// What a passing seed exercised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub requests: u64,
    pub translated: u64,
    pub faults: u64,
    pub in_window: u64,
    /// Requests answered while an invalidation batch was executing.
    pub concurrent: u64,
    pub cycles: u64,
    /// Of `cycles`, those spent in the operations (the driver's register accesses and
    /// invalidation waits, with the requests sent during them).
    pub op_cycles: u64,
    /// The cycles of the streams after the operations, by what each cycle did (not
    /// counted when coverage sends the requests one at a time).
    pub stream_time: StreamTime,
    /// TLPs of the untranslated-path run before the kernel sequence (judged by the same
    /// scoreboard; set by the caller that ran it).
    pub untranslated: u64,
    /// Batches the driver resubmitted after a device-TLB invalidation time-out (FSTS.ITE).
    pub resubmits: u64,
}

impl std::ops::AddAssign for Report {
    fn add_assign(&mut self, o: Self) {
        self.requests += o.requests;
        self.translated += o.translated;
        self.faults += o.faults;
        self.in_window += o.in_window;
        self.concurrent += o.concurrent;
        self.cycles += o.cycles;
        self.op_cycles += o.op_cycles;
        self.stream_time += o.stream_time;
        self.untranslated += o.untranslated;
        self.resubmits += o.resubmits;
    }
}

/// The TLP for a model request: an 8-byte read or write, 3DW or 4DW by address, with the
/// request's Address Type (a Translation Request is such a read: Length 2).
pub fn to_tlp(req: &Request, tag: u16) -> MemRequest {
    let mut m = if req.write {
        MemRequest::write(req.rid, tag, req.addr, 2)
    } else {
        MemRequest::read(req.rid, tag, req.addr, 2)
    };
    m.pasid = req.pasid.map(|pasid| PasidPrefix {
        pasid,
        pmr: req.pmr,
        er: req.er,
    });
    m.at = match req.at {
        AddrType::Untranslated => At::Untranslated,
        AddrType::TranslationRequest => At::TranslationRequest,
        AddrType::Translated => At::Translated,
    };
    m
}

/// The random memory timing and TLP-port back-pressure of one seed: memory timing (memory
/// responses in any order), then the TLP agent's idle-gap, egress-ready and
/// completion-ready percentages.
pub fn seed_timing(seed: u64) -> (MemTiming, [u32; 3]) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7197_11e5);
    let max = [1u32, 2, 8, 32, 64][rng.gen_range(0..5)];
    let timing = MemTiming {
        min_latency: 1,
        max_latency: max,
        ready_pct: rng.gen_range(50..=100),
        in_order: false,
    };
    let ports = [
        rng.gen_range(0..40),
        rng.gen_range(50..=100),
        rng.gen_range(50..=100),
    ];
    (timing, ports)
}

/// Builds the system of one seed: random memory timing and back-pressure.
pub fn seed_system(env: &mut Env, seed: u64, quirks: DriverQuirks) -> Result<RtlKernel> {
    let (timing, [gap, tx, cpl]) = seed_timing(seed);
    let hw = RtlHw::from_env(env.take(), Mem::new(), timing)?;
    let drv = Driver::new(hw, quirks)?;
    let mut k = Kernel::new(drv, KernelConfig::default());
    Stimulus::add_devices(&mut k).map_err(|e| anyhow!("adding devices: {e:?}"))?;
    let e = &mut k.ops_mut().hw_mut().env;
    e.tlp.gap_pct = gap;
    e.tlp.tx_ready_pct = tx;
    e.tlp.cpl_ready_pct = cpl;
    let a = seed_ats(seed);
    e.ats.atc_capacity = a.entries;
    e.ats.random_replacement = a.random_replacement;
    e.ats.late_pct = a.late_pct;
    e.ats.lost_pct = a.lost_pct;
    Ok(k)
}

/// The ATS devices of one seed ([`seed_ats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedAts {
    /// Entries of each device's cache.
    pub entries: usize,
    /// A full cache replaces a random entry (else the oldest).
    pub random_replacement: bool,
    /// Percentages of Invalidate Requests answered after the unit's time-out, and never.
    pub late_pct: u32,
    pub lost_pct: u32,
}

/// The ATS devices of one seed: the size and replacement policy of their caches, and, in
/// one seed in 8, 2-6% of the Invalidate Requests answered after the unit's time-out and
/// another 2-6% never answered (the driver resubmits each batch whose wait the unit
/// aborted: FSTS.ITE, docs/contract.md 6.5).
pub fn seed_ats(seed: u64) -> SeedAts {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xa7c_cace);
    let entries = [1, 2, 4, 8, 16, 64][rng.gen_range(0..6)];
    let random_replacement = rng.gen_bool(0.5);
    let (late_pct, lost_pct) = if rng.gen_range(0..8) == 0 {
        (rng.gen_range(2..=6), rng.gen_range(2..=6))
    } else {
        (0, 0)
    };
    SeedAts {
        entries,
        random_replacement,
        late_pct,
        lost_pct,
    }
}

/// Runs one seed on `k`.
pub fn run(k: &mut RtlKernel, seed: u64, cfg: &Config) -> Result<Report> {
    run_with_coverage(k, seed, cfg, None)
}

/// [`run`], sampling every request and submitted descriptor into `cov`.
pub fn run_with_coverage(
    k: &mut RtlKernel,
    seed: u64,
    cfg: &Config,
    cov: Option<&mut Coverage>,
) -> Result<Report> {
    let mut src = Random {
        stim: Stimulus::with_weights(seed, cfg.weights),
        cfg,
        pending: Vec::new(),
        trace: Vec::new(),
        atc_rng: ChaCha8Rng::seed_from_u64(seed ^ 0xa7c_5e1d),
    };
    drive(k, seed, &mut src, cov).map_err(|f| f.error)
}

/// One operation of a seed with the requests around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceStep {
    pub op: Op,
    /// Requests offered while the operation's invalidations execute.
    pub concurrent: Vec<Request>,
    /// Requests judged after it.
    pub requests: Vec<Request>,
}

/// Which request (or operation) a failing run stopped at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailPos {
    Concurrent { step: usize, n: usize },
    Request { step: usize, n: usize },
    Op { step: usize },
}

/// A failing run: the error, where it happened, and what the failing request should have
/// done (the golden walker's outcome, or the oracle's when it allows only one).
#[derive(Debug)]
pub struct Failure {
    pub error: anyhow::Error,
    pub at: FailPos,
    pub expected: Option<Outcome>,
}

/// [`run`], recording the operations and requests it generated (up to the failure).
pub fn run_recorded(
    k: &mut RtlKernel,
    seed: u64,
    cfg: &Config,
) -> (Result<Report, Failure>, Vec<TraceStep>) {
    let mut src = Random {
        stim: Stimulus::with_weights(seed, cfg.weights),
        cfg,
        pending: Vec::new(),
        trace: Vec::new(),
        atc_rng: ChaCha8Rng::seed_from_u64(seed ^ 0xa7c_5e1d),
    };
    let r = drive(k, seed, &mut src, None);
    (r, src.trace)
}

/// Replays a recorded trace on `k`, judged as [`run`] judges; also returns each
/// operation's result.
pub fn run_trace(
    k: &mut RtlKernel,
    seed: u64,
    trace: &[TraceStep],
) -> (Result<Report, Failure>, Vec<Applied>) {
    let r = replay_trace(k, seed, trace);
    (r.result, r.applied)
}

/// A replayed trace ([`replay_trace`]).
#[derive(Debug)]
pub struct Replayed {
    pub result: Result<Report, Failure>,
    /// Each operation's result, up to the failure.
    pub applied: Vec<Applied>,
    /// For each operation, how many of its concurrent requests the unit accepted while the
    /// operation's invalidations executed (the first ones in order; the others were never
    /// sent: an operation that submits nothing sends none).
    pub sent: Vec<usize>,
}

/// [`run_trace`], with how many concurrent requests each operation sent.
pub fn replay_trace(k: &mut RtlKernel, seed: u64, trace: &[TraceStep]) -> Replayed {
    let mut src = Replay {
        trace,
        bindings: Bindings::default(),
        log: Vec::new(),
        applied: Vec::new(),
        sent: Vec::new(),
    };
    let result = drive(k, seed, &mut src, None);
    Replayed {
        result,
        applied: src.applied,
        sent: src.sent,
    }
}

/// Where a run's operations and requests come from.
trait Source {
    fn ops(&self) -> usize;
    fn concurrent(&mut self, k: &RtlKernel, step: usize) -> Vec<Request>;
    fn apply(&mut self, k: &mut RtlKernel, step: usize);
    fn request(&mut self, k: &RtlKernel, step: usize, n: usize) -> Option<Request>;
    fn log(&self) -> &[String];
    /// `n` of the step's concurrent requests were sent while it executed.
    fn sent(&mut self, _step: usize, _n: usize) {}
}

struct Random<'a> {
    stim: Stimulus,
    cfg: &'a Config,
    pending: Vec<Request>,
    trace: Vec<TraceStep>,
    /// Picks the cached translation a translated request uses.
    atc_rng: ChaCha8Rng,
}

impl Source for Random<'_> {
    fn ops(&self) -> usize {
        self.cfg.ops
    }
    fn concurrent(&mut self, k: &RtlKernel, _step: usize) -> Vec<Request> {
        self.pending = (0..self.cfg.concurrent_per_op)
            .map(|_| self.stim.request(k))
            .collect();
        self.pending.clone()
    }
    fn apply(&mut self, k: &mut RtlKernel, _step: usize) {
        let op = self.stim.step(k);
        self.trace.push(TraceStep {
            op,
            concurrent: std::mem::take(&mut self.pending),
            requests: Vec::new(),
        });
    }
    fn request(&mut self, k: &RtlKernel, _step: usize, n: usize) -> Option<Request> {
        (n < self.cfg.requests_per_op).then(|| {
            let mut r = self.stim.request(k);
            if r.at == AddrType::Translated {
                from_device_cache(k, &mut r, &mut self.atc_rng);
            }
            if let Some(t) = self.trace.last_mut() {
                t.requests.push(r);
            }
            r
        })
    }
    fn log(&self) -> &[String] {
        &self.stim.log
    }
}

struct Replay<'a> {
    trace: &'a [TraceStep],
    bindings: Bindings,
    log: Vec<String>,
    applied: Vec<Applied>,
    sent: Vec<usize>,
}

impl Source for Replay<'_> {
    fn ops(&self) -> usize {
        self.trace.len()
    }
    fn concurrent(&mut self, _k: &RtlKernel, step: usize) -> Vec<Request> {
        self.trace[step].concurrent.clone()
    }
    fn apply(&mut self, k: &mut RtlKernel, step: usize) {
        let a = stimulus::apply_detailed(&self.trace[step].op, k, &mut self.bindings);
        self.log.push(a.desc.clone());
        self.applied.push(a);
    }
    fn request(&mut self, _k: &RtlKernel, step: usize, n: usize) -> Option<Request> {
        self.trace[step].requests.get(n).copied()
    }
    fn log(&self) -> &[String] {
        &self.log
    }
    fn sent(&mut self, step: usize, n: usize) {
        if self.sent.len() <= step {
            self.sent.resize(step + 1, 0);
        }
        self.sent[step] = n;
    }
}

/// A translated request as the device sends it: at the translated address of one of its
/// cached translations for the request's PASID (a global one serves any PASID), the
/// access one the entry grants; unchanged when the device caches none.
fn from_device_cache(k: &RtlKernel, r: &mut Request, rng: &mut ChaCha8Rng) {
    let Some(t) = k.ops().hw().env.ats.atc.get(&r.rid) else {
        return;
    };
    let usable: Vec<_> = t.usable(r.pasid).collect();
    if usable.is_empty() {
        return;
    }
    let e = usable[rng.gen_range(0..usable.len())];
    r.addr = e.pa + (r.addr & (e.size - 1) & !7);
    r.write = if e.r && e.w { r.write } else { e.w };
}

/// Fills the devices' ATS caches from the Translation Completions of a stream sent after
/// an operation completed ([`crate::env::AtsDevice::take_completion`]). Completions of
/// requests in flight while an operation's invalidations ran are not cached: one may
/// legally carry the old translation (the device would have to drop it, PCIe 10.3.1).
fn cache_completions(k: &mut RtlKernel, reqs: &[Request], outcomes: &[Outcome]) {
    let ats = &mut k.ops_mut().hw_mut().env.ats;
    for (r, o) in reqs.iter().zip(outcomes) {
        if r.at == AddrType::TranslationRequest {
            ats.take_completion(r.rid, r.pasid, r.addr, o);
        }
    }
}

/// The tag of the `n`-th request of a stream: unique among the TLPs in flight (one stream
/// is settled before the next starts), and unchanged when other streams change (so a shrunk
/// trace fails with the same TLPs).
fn tag(concurrent: bool, n: usize) -> u16 {
    let base = if concurrent { 0x200 } else { 0 };
    base | (n as u16 & 0x1ff)
}

fn drive(
    k: &mut RtlKernel,
    seed: u64,
    src: &mut dyn Source,
    mut cov: Option<&mut Coverage>,
) -> Result<Report, Failure> {
    let mut rep = Report::default();
    // The register count is read before the seed's cycles are counted (a set-up access,
    // like the system's own).
    let mut records = RecordReader::new();
    let slots = records
        .slots(&mut k.ops_mut().hw_mut().env)
        .map_err(|e| Failure {
            error: e.context(format!("seed {seed}: reading CAP")),
            at: FailPos::Op { step: 0 },
            expected: None,
        })?;
    let start = k.ops().hw().env.dut.cycle();
    let resubmits = k.ops().resubmits();
    let submitted_before = k.ops().hw().submitted.len();
    // The access log is only looked at for coverage (reads per request).
    k.ops_mut().hw_mut().mem_agent().logging = cov.is_some();
    for step in 0..src.ops() {
        // Traffic during the operation's invalidations: judged against the states before
        // and after it (the old translation stays legal until the wait completes).
        let before = oracle::Snapshot::take(k);
        let conc: Vec<MemRequest> = src
            .concurrent(k, step)
            .iter()
            .enumerate()
            .map(|(n, r)| to_tlp(r, tag(true, n)))
            .collect();
        let words = conc
            .iter()
            .map(tlp::encode)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Failure {
                error: anyhow!("seed {seed} step {step}: encoding a request: {e}"),
                at: FailPos::Op { step },
                expected: None,
            })?;
        let traffic = Traffic::of_env(&k.ops().hw().env);
        k.ops_mut().hw_mut().background = Some(Collector::new(words, traffic, slots));
        let op_start = k.ops().hw().env.dut.cycle();
        src.apply(k, step);
        let op = src.log().last().cloned().unwrap_or_default();
        let so_far = |src: &dyn Source| src.log().join("\n    ");
        if let Some(bg) = k.ops_mut().hw_mut().background.take() {
            let got = bg.finish(&mut k.ops_mut().hw_mut().env, &mut records);
            if let Ok(g) = &got {
                src.sent(step, g.sent.len());
            }
            let during = |e: String, n: usize, expected: Option<Outcome>| {
                Failure {
                error: anyhow!(
                    "seed {seed} step {step}, requests sent during `{op}`: {e}\n  operations so far:\n    {}",
                    so_far(src)
                ),
                at: FailPos::Concurrent { step, n },
                expected,
            }
            };
            let got = got.map_err(|e| during(format!("{e:#}"), 0, None))?;
            let exps = conc
                .iter()
                .take(got.sent.len())
                .map(|t| {
                    let allowed = oracle::allowed_during(&before, k, &golden_request(t));
                    Expect::oracle(t, &allowed)
                })
                .collect::<Result<Vec<_>>>()
                .map_err(|e| during(format!("{e:#}"), 0, None))?;
            let r = got
                .judge(exps)
                .map_err(|e| during(e.message, e.request.unwrap_or(0), e.expected))?;
            for o in &r.outcomes {
                rep.concurrent += 1;
                rep.requests += 1;
                if let Some(c) = cov.as_deref_mut() {
                    c.sample_concurrent(o);
                }
            }
        }

        rep.op_cycles += k.ops().hw().env.dut.cycle() - op_start;
        check_device_caches(k, &k.ops().hw().env.ats.atc, &op).map_err(|e| Failure {
            error: anyhow!(
                "seed {seed} step {step}: {e}\n  operations so far:\n    {}",
                so_far(src)
            ),
            at: FailPos::Op { step },
            expected: None,
        })?;

        // The requests after the operation, as one stream.
        let mut reqs = Vec::new();
        while let Some(r) = src.request(k, step, reqs.len()) {
            reqs.push(r);
        }
        if reqs.is_empty() {
            continue;
        }
        let tlps: Vec<MemRequest> = reqs
            .iter()
            .enumerate()
            .map(|(n, r)| to_tlp(r, tag(false, n)))
            .collect();
        let allowed: Vec<AllowedSet> = reqs.iter().map(|r| oracle::allowed(k, r)).collect();
        let exact = k.windows().is_empty();
        if !exact {
            rep.in_window += reqs.len() as u64;
        }
        let fail = |e: String, n: usize, expected: Option<Outcome>| {
            Failure {
            error: anyhow!(
                "seed {seed} step {step}, {} requests after `{op}`: {e}\n  operations so far:\n    {}",
                reqs.len(),
                so_far(src)
            ),
            at: FailPos::Request { step, n },
            expected,
        }
        };
        let exps = {
            let hw = hw_state(k);
            let mem = &k.ops_mut().hw_mut().mem_agent().mem;
            tlps.iter()
                .zip(&allowed)
                .map(|(t, a)| {
                    if exact {
                        Expect::golden(t, &golden::translate(&hw, mem, &golden_request(t)))
                    } else {
                        Expect::oracle(t, a)
                    }
                })
                .collect::<Result<Vec<_>>>()
                .map_err(|e| fail(format!("{e:#}"), 0, None))?
        };
        let outcomes = match cov.as_deref_mut() {
            // Coverage counts the memory reads of each request: one at a time.
            Some(c) => {
                let mut outs = Vec::with_capacity(exps.len());
                for (n, x) in exps.into_iter().enumerate() {
                    let mark = coverage::log_mark(k);
                    let env = &mut k.ops_mut().hw_mut().env;
                    let mut t = Traffic::of_env(env);
                    let r = stream::run(env, vec![x], &mut t, &mut records)
                        .map_err(|e| fail(e.message, n, e.expected))?;
                    let o = r.outcomes.first().copied().unwrap_or(Outcome::Malformed);
                    c.sample_request(k, &reqs[n], &o, mark);
                    outs.push(o);
                }
                outs
            }
            None => {
                let env = &mut k.ops_mut().hw_mut().env;
                let mut t = Traffic::of_env(env);
                let r = stream::run(env, exps, &mut t, &mut records)
                    .map_err(|e| fail(e.message, e.request.unwrap_or(0), e.expected))?;
                rep.stream_time += r.time;
                r.outcomes
            }
        };
        cache_completions(k, &reqs, &outcomes);
        for (n, (o, a)) in outcomes.iter().zip(&allowed).enumerate() {
            if let Err(m) = a.check(o) {
                return Err(fail(
                    format!("request #{n}: {}\n  {m}", tlps[n]),
                    n,
                    single(a),
                ));
            }
            rep.requests += 1;
            match o {
                // A Translation Completion that grants access carries a translation.
                Outcome::Translated(_) => rep.translated += 1,
                Outcome::Ats(e) if e.r || e.w => rep.translated += 1,
                Outcome::Fault(_) => rep.faults += 1,
                _ => {}
            }
        }
    }
    rep.cycles = k.ops().hw().env.dut.cycle() - start;
    rep.resubmits = k.ops().resubmits() - resubmits;
    if let Some(c) = cov {
        c.sample_resubmits(rep.resubmits);
        let descs = &k.ops().hw().submitted;
        c.sample_descriptors(descs.get(submitted_before..).unwrap_or(&[]));
    }
    Ok(rep)
}

/// The one outcome an allowed set holds, if it holds one.
fn single(allowed: &oracle::AllowedSet) -> Option<Outcome> {
    let mut it = allowed.iter();
    match (it.next(), it.next()) {
        (Some(o), None) => Some(*o),
        _ => None,
    }
}
