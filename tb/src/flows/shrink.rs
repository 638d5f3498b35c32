//! Shrinking of a failing regression seed to a short YAML vector.
//!
//! The seed's run is recorded as a trace (each operation with the requests around it,
//! [`regress::run_recorded`]) and replayed ([`regress::run_trace`]) on a fresh system with
//! the seed's memory timing and back-pressure. Operations and requests other than the
//! failing one are removed by delta debugging (chunks, then single units) as long as the
//! replay still fails at the same request with the same kind of failure, within a bound on
//! replays. The result is written as a kernel-level vector (`vectors/README.md`) whose last
//! TLP pins what the golden walker (or the oracle) says, and the vector is run through the
//! vector runner to confirm that it fails too. The vector carries what the replay had: the
//! seed's memory timing and back-pressure (`timing:`), the driver bug switches
//! (`driver_bugs:`), every operation as its step (the driver's FPD, root-entry and
//! memory-error operations included: `fpd`, `set_root_entry`, `mem_error`,
//! `clear_mem_errors`), each request's tag, and the requests the unit accepted while an
//! operation's invalidations executed as a `during:` step of that operation (those it never
//! accepted, [`regress::Replayed::sent`], are left out).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use iommu_model::driver::DriverQuirks;
use iommu_model::golden::{AddrType, Outcome, Request};
use iommu_model::kernel::{DomainType, FpdAt, MemErrAt, Stage};
use iommu_model::stimulus::{Applied, DomainArg, Op, PasidArg, DEVS};

use crate::env::Env;
use crate::flows::regress::{self, Config, FailPos, Failure, TraceStep};
use crate::vectors;

/// Default bound on replays.
pub const MAX_REPLAYS: usize = 500;

/// A shrunk failure.
#[derive(Debug)]
pub struct Shrunk {
    pub seed: u64,
    /// Operations and requests of the recorded run, up to the failure.
    pub original_ops: usize,
    pub original_requests: usize,
    pub trace: Vec<TraceStep>,
    /// Each operation's result in the final replay.
    pub applied: Vec<Applied>,
    /// For each operation, how many of its concurrent requests the final replay sent (the
    /// others are not written: the regression never sent them).
    pub sent: Vec<usize>,
    pub at: FailPos,
    pub expected: Option<Outcome>,
    /// The failure class kept while shrinking.
    pub kind: String,
    /// The final replay's error.
    pub error: String,
    pub replays: usize,
    /// The driver bug switches of the run (written as `driver_bugs:`).
    pub quirks: DriverQuirks,
    /// The replay bound stopped shrinking early.
    pub bound_hit: bool,
    pub elapsed: Duration,
}

impl Shrunk {
    pub fn ops(&self) -> usize {
        self.trace.len()
    }
    pub fn requests(&self) -> usize {
        count_requests(&self.trace)
    }
}

fn count_requests(t: &[TraceStep]) -> usize {
    t.iter()
        .map(|s| s.concurrent.len() + s.requests.len())
        .sum()
}

/// The class of a failure: the lines that say what was expected and what the DUT did,
/// with addresses (numbers of more than four hex digits) and step numbers left out.
pub fn failure_kind(msg: &str) -> String {
    let keep: Vec<&str> = msg
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.starts_with("golden walker:")
                || l.starts_with("DUT did:")
                || l.starts_with("DUT recorded:")
                || l.starts_with("expected fault records:")
                || l.contains("oracle allowed")
        })
        .collect();
    let text = if keep.is_empty() {
        msg.lines().next().unwrap_or("").to_owned()
    } else {
        keep.join(" | ")
    };
    normalize(&text)
}

fn normalize(s: &str) -> String {
    let mut out = String::new();
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < b.len() {
        if b[i] == '0' && b.get(i + 1) == Some(&'x') {
            let mut j = i + 2;
            while j < b.len() && (b[j].is_ascii_hexdigit() || b[j] == '_') {
                j += 1;
            }
            let digits = b[i + 2..j].iter().filter(|c| **c != '_').count();
            if digits > 4 {
                out.push_str("0xA");
            } else {
                out.extend(&b[i..j]);
            }
            i = j;
        } else if b[i].is_ascii_digit() {
            let mut j = i;
            while j < b.len() && b[j].is_ascii_alphanumeric() {
                j += 1;
            }
            out.push('N');
            i = j;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[derive(Clone, Copy, Debug)]
enum Unit {
    Op(Op),
    Conc(Request),
    Req(Request),
}

fn flatten(trace: &[TraceStep]) -> Vec<(usize, Unit)> {
    let mut v = Vec::new();
    for s in trace {
        v.extend(s.concurrent.iter().map(|r| Unit::Conc(*r)));
        v.push(Unit::Op(s.op));
        v.extend(s.requests.iter().map(|r| Unit::Req(*r)));
    }
    v.into_iter().enumerate().collect()
}

/// The trace of `units`, and for each unit that is a request the position it has in it.
fn to_trace(units: &[(usize, Unit)]) -> (Vec<TraceStep>, Vec<(FailPos, usize)>) {
    let mut trace: Vec<TraceStep> = Vec::new();
    let mut pending: Vec<(usize, Request)> = Vec::new();
    let mut pos = Vec::new();
    for (id, u) in units {
        match u {
            Unit::Conc(r) => pending.push((*id, *r)),
            Unit::Op(op) => {
                let step = trace.len();
                for (n, (cid, _)) in pending.iter().enumerate() {
                    pos.push((FailPos::Concurrent { step, n }, *cid));
                }
                pos.push((FailPos::Op { step }, *id));
                trace.push(TraceStep {
                    op: *op,
                    concurrent: pending.drain(..).map(|(_, r)| r).collect(),
                    requests: Vec::new(),
                });
            }
            Unit::Req(r) => {
                let step = trace.len().wrapping_sub(1);
                if let Some(t) = trace.last_mut() {
                    pos.push((
                        FailPos::Request {
                            step,
                            n: t.requests.len(),
                        },
                        *id,
                    ));
                    t.requests.push(*r);
                }
            }
        }
    }
    (trace, pos)
}

/// Replays `trace` on a fresh system of `seed`.
pub fn replay(
    seed: u64,
    quirks: DriverQuirks,
    trace: &[TraceStep],
) -> Result<(Result<regress::Report, Failure>, Vec<Applied>)> {
    let mut env = Env::new(seed);
    let mut k = regress::seed_system(&mut env, seed, quirks)?;
    Ok(regress::run_trace(&mut k, seed, trace))
}

struct Shrinker {
    seed: u64,
    quirks: DriverQuirks,
    kind: String,
    target: usize,
    replays: usize,
    max: usize,
}

impl Shrinker {
    /// Whether `units` still fail at the target unit with the same kind of failure.
    fn fails(&mut self, units: &[(usize, Unit)]) -> Result<bool> {
        if self.replays >= self.max {
            return Ok(false);
        }
        self.replays += 1;
        let (trace, pos) = to_trace(units);
        let (r, _) = replay(self.seed, self.quirks, &trace)?;
        Ok(match r {
            Ok(_) => false,
            Err(f) => {
                pos.iter().any(|(p, id)| *p == f.at && *id == self.target)
                    && failure_kind(&format!("{:#}", f.error)) == self.kind
            }
        })
    }

    /// Delta debugging over the units `removable` selects; the others are kept.
    fn ddmin(
        &mut self,
        units: Vec<(usize, Unit)>,
        removable: impl Fn(&Unit) -> bool,
    ) -> Result<Vec<(usize, Unit)>> {
        let mut units = units;
        let mut n = 2usize;
        loop {
            let idx: Vec<usize> = (0..units.len())
                .filter(|&i| units[i].0 != self.target && removable(&units[i].1))
                .collect();
            if idx.is_empty() || self.replays >= self.max {
                return Ok(units);
            }
            let n_chunks = n.min(idx.len());
            let chunk = idx.len().div_ceil(n_chunks);
            let mut removed = false;
            // Later units first: they depend on earlier ones, not the other way round.
            for c in (0..n_chunks).rev() {
                let drop: Vec<usize> = idx.iter().skip(c * chunk).take(chunk).copied().collect();
                if drop.is_empty() {
                    continue;
                }
                let cand: Vec<(usize, Unit)> = units
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !drop.contains(i))
                    .map(|(_, u)| *u)
                    .collect();
                if self.fails(&cand)? {
                    units = cand;
                    n = (n_chunks - 1).max(2);
                    removed = true;
                    break;
                }
            }
            if !removed {
                if chunk == 1 {
                    return Ok(units);
                }
                n = (n_chunks * 2).min(idx.len());
            }
        }
    }
}

/// Runs `seed` with `cfg`, and, if it fails, shrinks the failure. `Ok(None)`: the seed
/// passes.
pub fn shrink(seed: u64, cfg: &Config, max_replays: usize) -> Result<Option<Shrunk>> {
    let t0 = Instant::now();
    let (r, trace) = {
        let mut env = Env::new(seed);
        let mut k = regress::seed_system(&mut env, seed, cfg.quirks)?;
        regress::run_recorded(&mut k, seed, cfg)
    };
    let Err(f) = r else { return Ok(None) };
    let kind = failure_kind(&format!("{:#}", f.error));
    let units = flatten(&trace);
    let (_, pos) = to_trace(&units);
    let target = pos
        .iter()
        .find(|(p, _)| *p == f.at)
        .map(|(_, id)| *id)
        .ok_or_else(|| anyhow!("seed {seed}: the failure is not at a recorded request"))?;
    if let FailPos::Op { .. } = f.at {
        // After an operation only the device-cache check fails a run (the vector runner
        // repeats it after every step); anything else there has no vector form.
        if !device_cache_failure(&f.error.to_string()) {
            bail!(
                "seed {seed}: the failure is not at a request: {}",
                f.error.to_string().lines().next().unwrap_or("")
            );
        }
    }
    // Units after the failing one were never run.
    let cut = units.iter().position(|(id, _)| *id == target).unwrap_or(0);
    let mut units: Vec<(usize, Unit)> = units[..=cut].to_vec();
    if let FailPos::Concurrent { .. } = f.at {
        // The failing request was sent during the next operation.
        let all = flatten(&trace);
        if let Some(p) = all[cut + 1..]
            .iter()
            .position(|(_, u)| matches!(u, Unit::Op(_)))
        {
            units.extend_from_slice(&all[cut + 1..=cut + 1 + p]);
        }
    }
    let original_ops = units
        .iter()
        .filter(|(_, u)| matches!(u, Unit::Op(_)))
        .count();
    let original_requests = units.len() - original_ops;
    let mut s = Shrinker {
        seed,
        quirks: cfg.quirks,
        kind,
        target,
        replays: 0,
        max: max_replays,
    };
    if !s.fails(&units)? {
        bail!("seed {seed}: the recorded trace does not reproduce the failure on a fresh system");
    }
    // Requests first (they make each replay slow), then operations, then both together
    // until no single unit can go.
    let all_but_target: Vec<(usize, Unit)> = units
        .iter()
        .filter(|(id, u)| *id == target || matches!(u, Unit::Op(_)))
        .copied()
        .collect();
    if s.fails(&all_but_target)? {
        units = all_but_target;
    } else {
        units = s.ddmin(units, |u| !matches!(u, Unit::Op(_)))?;
    }
    units = s.ddmin(units, |u| matches!(u, Unit::Op(_)))?;
    units = s.ddmin(units, |_| true)?;
    let bound_hit = s.replays >= s.max;
    let (trace, pos) = to_trace(&units);
    let regress::Replayed {
        result: r,
        applied,
        sent,
    } = {
        let mut env = Env::new(seed);
        let mut k = regress::seed_system(&mut env, seed, cfg.quirks)?;
        regress::replay_trace(&mut k, seed, &trace)
    };
    let f = match r {
        Ok(_) => bail!("seed {seed}: the shrunk trace passes"),
        Err(f) => f,
    };
    let at = pos
        .iter()
        .find(|(_, id)| *id == target)
        .map_or(f.at, |(p, _)| *p);
    Ok(Some(Shrunk {
        seed,
        original_ops,
        original_requests,
        trace,
        applied,
        sent,
        at,
        expected: f.expected,
        kind: s.kind,
        error: format!("{:#}", f.error),
        replays: s.replays + 1,
        quirks: cfg.quirks,
        bound_hit,
        elapsed: t0.elapsed(),
    }))
}

fn dev_name(rid: u16) -> String {
    format!(
        "dev_{:02x}_{:02x}_{:x}",
        rid >> 8,
        (rid >> 3) & 0x1f,
        rid & 7
    )
}

fn rid_str(rid: u16) -> String {
    format!(
        "\"{:02x}:{:02x}.{:x}\"",
        rid >> 8,
        (rid >> 3) & 0x1f,
        rid & 7
    )
}

fn dev_ref(rid: u16) -> String {
    if DEVS.iter().any(|(r, _)| *r == rid) {
        dev_name(rid)
    } else {
        rid_str(rid)
    }
}

fn pasid_str(p: PasidArg) -> String {
    match p {
        PasidArg::Lit(v) => v.to_string(),
        PasidArg::Ref(r) => format!("p{}", r.0),
    }
}

fn errno(r: &Result<u64, iommu_model::kernel::Errno>) -> String {
    match r {
        Ok(_) => String::new(),
        Err(e) => format!(", errno: {e:?}"),
    }
}

/// The fields of a `tlp` step for a request of the regression: an 8-byte request with the
/// tag the regression gives it (`tag`; writes carry tag 0), as [`regress::to_tlp`] builds it.
/// `ats_step`: for an `ats_translate` step, which sets the Address Type itself.
fn tlp_fields(r: &Request, tag: u16, expect: Option<&Outcome>, ats_step: bool) -> String {
    let mut s = format!("{{dev: {}", dev_ref(r.rid));
    if let Some(p) = r.pasid {
        let _ = write!(s, ", pasid: {p:#x}");
        if r.pmr {
            s.push_str(", pmr: true");
        }
        if r.er {
            s.push_str(", er: true");
        }
    }
    let _ = write!(
        s,
        ", {}: {:#x}, len: 8, tag: {:#x}",
        if r.write { "write" } else { "read" },
        r.addr,
        if r.write { 0 } else { tag }
    );
    match r.at {
        AddrType::Untranslated => {}
        AddrType::TranslationRequest if ats_step => {}
        AddrType::TranslationRequest => s.push_str(", at: translation_request"),
        AddrType::Translated => s.push_str(", at: translated"),
    }
    match expect {
        Some(Outcome::Translated(pa)) => {
            let _ = write!(s, ", expect: {{pa: {pa:#x}}}");
        }
        Some(Outcome::Fault(f)) => {
            let _ = write!(s, ", expect: {{fault: {:#04x}}}", f.code());
        }
        Some(Outcome::Untranslated) => s.push_str(", expect: {untranslated: true}"),
        Some(Outcome::Malformed) => s.push_str(", expect: {malformed: true}"),
        Some(Outcome::Ats(e)) if e.r || e.w => {
            let _ = write!(s, ", expect: {{pa: {:#x}}}", e.addr);
        }
        Some(Outcome::Ats(_)) => s.push_str(", expect: {no_access: true}"),
        None => {}
    }
    s.push('}');
    s
}

/// Whether the failing request of `sh` was sent during operation `i`.
fn device_cache_failure(msg: &str) -> bool {
    msg.lines()
        .next()
        .is_some_and(|l| l.ends_with("stale device-TLB entries:"))
}

fn fails_during(sh: &Shrunk, i: usize) -> bool {
    matches!(sh.at, FailPos::Concurrent { step, .. } if step == i)
}

/// The kernel-level vector of a shrunk failure.
pub fn to_yaml(sh: &Shrunk) -> String {
    let mut y = String::new();
    let _ = writeln!(y, "name: shrunk-seed-{}", sh.seed);
    let _ = writeln!(y, "description: >");
    let what = if let FailPos::Op { .. } = sh.at {
        format!(
            "The device-cache check after the last operation fails: {}",
            sh.error
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("device "))
                .collect::<Vec<_>>()
                .join("; ")
        )
    } else {
        format!(
            "The last TLP fails: {}",
            sh.error
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("golden walker:")
                    || l.starts_with("DUT did:")
                    || l.starts_with("DUT recorded:")
                    || l.contains("oracle allowed"))
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    let _ = writeln!(
        y,
        "  Regression seed {} shrunk from {} operations and {} requests to {} operations and {} \
         requests ({} replays). {what}",
        sh.seed,
        sh.original_ops,
        sh.original_requests,
        sh.ops(),
        sh.requests(),
        sh.replays,
    );
    let _ = writeln!(y, "seed: {:#x}", sh.seed);
    let bugs = sh.quirks.names();
    if !bugs.is_empty() {
        let _ = writeln!(y, "driver_bugs: [{}]", bugs.join(", "));
    }
    let (t, [gap, tx, cpl]) = regress::seed_timing(sh.seed);
    let _ = writeln!(
        y,
        "timing: {{min_latency: {}, max_latency: {}, mem_ready_pct: {}, tlp_gap_pct: {gap}, \
         tx_ready_pct: {tx}, cpl_ready_pct: {cpl}{}}}",
        t.min_latency,
        t.max_latency,
        t.ready_pct,
        if t.in_order { ", in_order: true" } else { "" }
    );
    let a = regress::seed_ats(sh.seed);
    let _ = writeln!(
        y,
        "ats_device: {{entries: {}, replacement: {}{}}}",
        a.entries,
        if a.random_replacement {
            "random"
        } else {
            "oldest"
        },
        if a.late_pct + a.lost_pct > 0 {
            format!(", late_pct: {}, lost_pct: {}", a.late_pct, a.lost_pct)
        } else {
            String::new()
        }
    );
    let _ = writeln!(y, "devices:");
    for (r, max) in DEVS {
        let _ = writeln!(
            y,
            "  - {{name: {}, rid: {}, max_pasids: {max}, ats: {}}}",
            dev_name(r),
            rid_str(r),
            r == 0x0180
        );
    }
    let _ = writeln!(y, "steps:");
    let mut dma_of = std::collections::BTreeMap::new();
    for t in &sh.trace {
        if let Op::DmaMapSingle { dev, len, bind, .. } = t.op {
            dma_of.insert(bind, (dev, len));
        }
    }
    let prot = |p: iommu_model::kernel::Prot| match (p.read, p.write) {
        (true, true) => "rw",
        (false, true) => "w",
        _ => "r",
    };
    for (i, t) in sh.trace.iter().enumerate() {
        let fail_here = |c: bool, n: usize| match sh.at {
            FailPos::Concurrent { step, n: m } => c && step == i && m == n,
            FailPos::Request { step, n: m } => !c && step == i && m == n,
            FailPos::Op { .. } => false,
        };
        // Requests sent during the operation, up to the failing one (the regression
        // judges them in order after the operation and stops at the first failure). Those
        // the operation left no time for were never sent: they are left out.
        let sent = sh.sent.get(i).copied().unwrap_or(t.concurrent.len());
        let mut conc: Vec<String> = Vec::new();
        for (n, r) in t.concurrent.iter().enumerate().take(sent) {
            let fails = fail_here(true, n);
            let exp = fails.then_some(sh.expected.as_ref()).flatten();
            conc.push(tlp_fields(r, 0x80 | n as u16, exp, false));
            if fails {
                break;
            }
        }
        let Some(a) = sh.applied.get(i) else { break };
        let unsent = t.concurrent.len().saturating_sub(sent.max(conc.len()));
        if unsent > 0 && !fails_during(sh, i) {
            let _ = writeln!(
                y,
                "  # {unsent} requests offered during `{}` were not sent (it submitted nothing, \
                 or its invalidations left no time)",
                a.desc
            );
        }
        if !a.skipped {
            let e = errno(&a.result);
            let line = match t.op {
                Op::DomainAlloc { ty, bind } => {
                    let ty = match ty {
                        DomainType::Blocked => "blocked".to_owned(),
                        DomainType::Identity => "identity".to_owned(),
                        DomainType::Paging(Stage::First) => "paging, stage: first".to_owned(),
                        DomainType::Paging(Stage::Second) => "paging, stage: second".to_owned(),
                        DomainType::Sva(_) => "sva".to_owned(),
                    };
                    format!("domain_alloc: {{name: d{}, type: {ty}{e}}}", bind.0)
                }
                Op::AttachDevice { dev, domain } => format!(
                    "attach_device: {{dev: {}, domain: d{}{e}}}",
                    dev_name(dev),
                    domain.map_or(0, |d| d.0)
                ),
                Op::EnableDmaPasid { dev, bind } => format!(
                    "enable_dma_pasid: {{dev: {}{}}}",
                    dev_name(dev),
                    if e.is_empty() { format!(", as: p{}", bind.0) } else { e }
                ),
                Op::DisableDmaPasid { dev } => {
                    format!("disable_dma_pasid: {{dev: {}{e}}}", dev_name(dev))
                }
                Op::AttachDevicePasid { domain, dev, pasid } => format!(
                    "attach_device_pasid: {{domain: d{}, dev: {}, pasid: {}{e}}}",
                    domain.map_or(0, |d| d.0),
                    dev_name(dev),
                    pasid_str(pasid)
                ),
                Op::DetachDevicePasid { dev, att } => match att {
                    Some((p, DomainArg::Ref(d))) => format!(
                        "detach_device_pasid: {{domain: d{}, dev: {}, pasid: {}{e}}}",
                        d.0,
                        dev_name(dev),
                        pasid_str(p)
                    ),
                    _ => format!("# {} (an SVA domain: changes nothing)", a.desc),
                },
                Op::Map {
                    domain,
                    iova,
                    pa,
                    size,
                    prot: p,
                } => format!(
                    "map: {{domain: d{}, iova: {iova:#x}, pa: {pa:#x}, size: {size:#x}, prot: {}{e}}}",
                    domain.map_or(0, |d| d.0),
                    prot(p)
                ),
                Op::Unmap {
                    domain,
                    iova,
                    size,
                    sync,
                } => {
                    let d = domain.map_or(0, |d| d.0);
                    let mut l = format!(
                        "unmap: {{domain: d{d}, iova: {iova:#x}, size: {size:#x}, sync: false{e}}}"
                    );
                    if sync && !conc.is_empty() && a.result.is_ok() {
                        // One call, so that the requests run during both of its parts.
                        let se = errno(&a.sync.unwrap_or(Ok(())).map(|()| 0));
                        l = format!(
                            "unmap: {{domain: d{d}, iova: {iova:#x}, size: {size:#x}, sync: true{se}}}"
                        );
                    } else if sync {
                        let se = errno(&a.sync.unwrap_or(Ok(())).map(|()| 0));
                        let _ = write!(l, "\n  - iotlb_sync: {{domain: d{d}{se}}}");
                    }
                    l
                }
                Op::IotlbSync { domain } => {
                    format!("iotlb_sync: {{domain: d{}{e}}}", domain.map_or(0, |d| d.0))
                }
                Op::DmaMapSingle {
                    dev,
                    pa,
                    len,
                    dir,
                    bind,
                } => {
                    let dir = match dir {
                        iommu_model::kernel::dma::DmaDirection::ToDevice => "to_device",
                        iommu_model::kernel::dma::DmaDirection::FromDevice => "from_device",
                        _ => "bidirectional",
                    };
                    format!(
                        "dma_map_single: {{dev: {}, pa: {pa:#x}, size: {len:#x}, dir: {dir}{}}}",
                        dev_name(dev),
                        if e.is_empty() { format!(", as: buf{}", bind.0) } else { e }
                    )
                }
                Op::DmaUnmapSingle { map } => {
                    let m = map.unwrap_or(iommu_model::stimulus::DmaRef(0));
                    let (dev, len) = dma_of.get(&m).copied().unwrap_or((0, 0));
                    format!(
                        "dma_unmap_single: {{dev: {}, addr: buf{}, size: {len:#x}, dir: bidirectional{e}}}",
                        dev_name(dev),
                        m.0
                    )
                }
                Op::MmCreate { bind } => format!("mm_create: {{as: mm{}}}", bind.0),
                Op::MmMap {
                    mm,
                    va,
                    pa,
                    size,
                    prot: p,
                } => format!(
                    "mm_map: {{mm: mm{}, va: {va:#x}, pa: {pa:#x}, size: {size:#x}, prot: r{}{}, user: {}{e}}}",
                    mm.map_or(0, |m| m.0),
                    if p.write { "w" } else { "" },
                    if p.exec { "x" } else { "" },
                    p.user
                ),
                Op::MmUnmap { mm, va, size } => format!(
                    "mm_unmap: {{mm: mm{}, va: {va:#x}, size: {size:#x}{e}}}",
                    mm.map_or(0, |m| m.0)
                ),
                Op::SvaBind { dev, mm, bind } => format!(
                    "sva_bind: {{dev: {}, mm: mm{}{}}}",
                    dev_name(dev),
                    mm.map_or(0, |m| m.0),
                    if e.is_empty() { format!(", as: p{}", bind.0) } else { e }
                ),
                Op::SvaUnbind { dev, mm } => format!(
                    "sva_unbind: {{dev: {}, mm: mm{}{e}}}",
                    dev_name(dev),
                    mm.map_or(0, |m| m.0)
                ),
                Op::SetFpd { dev, at, disable } => {
                    let (at, pasid) = match at {
                        FpdAt::Context => ("context", None),
                        FpdAt::PasidDir(i) => ("pasid_dir", Some(i << 6)),
                        FpdAt::PasidEntry(p) => ("pasid_entry", Some(p)),
                    };
                    format!(
                        "fpd: {{dev: {}, at: {at}{}, disable: {disable}{e}}}",
                        dev_ref(dev),
                        pasid.map_or_else(String::new, |p| format!(", pasid: {p:#x}"))
                    )
                }
                Op::SetRootEntry => format!("set_root_entry: {{{}}}", e.trim_start_matches(", ")),
                Op::MemError { dev, at } => {
                    let place = match at {
                        MemErrAt::RootTable => "root_table".to_owned(),
                        MemErrAt::ContextTable => "context_table".to_owned(),
                        MemErrAt::PasidDir => "pasid_dir".to_owned(),
                        MemErrAt::PasidTable(dir) => format!("pasid_table, pasid: {:#x}", dir << 6),
                        MemErrAt::PageTable { pasid, level, addr } => format!(
                            "page_table, pasid: {pasid:#x}, level: {level}, addr: {addr:#x}"
                        ),
                    };
                    format!("mem_error: {{dev: {}, at: {place}{e}}}", dev_ref(dev))
                }
                Op::ClearMemErrors => {
                    format!("clear_mem_errors: {{{}}}", e.trim_start_matches(", "))
                }
            };
            if line.starts_with('#') {
                let _ = writeln!(y, "  {line}");
                if !conc.is_empty() {
                    let _ = writeln!(
                        y,
                        "  # {} requests sent during it have no vector form",
                        conc.len()
                    );
                }
            } else {
                let calls: Vec<&str> = line.split("\n  - ").collect();
                let (last, first) = calls.split_last().unwrap_or((&"", &[]));
                for c in first {
                    let _ = writeln!(y, "  - {c}");
                }
                if conc.is_empty() {
                    let _ = writeln!(y, "  - {last}");
                } else {
                    let _ = writeln!(y, "  - during:");
                    let _ = writeln!(y, "      {last}");
                    let _ = writeln!(y, "      tlps:");
                    for c in &conc {
                        let _ = writeln!(y, "        - {c}");
                    }
                }
            }
        } else if !conc.is_empty() {
            let _ = writeln!(
                y,
                "  # {} requests offered during `{}` were not sent (it submitted nothing)",
                conc.len(),
                a.desc
            );
        }
        for (n, r) in t.requests.iter().enumerate() {
            let exp = fail_here(false, n)
                .then_some(sh.expected.as_ref())
                .flatten();
            // The device caches what its Translation Requests between operations got, as
            // in the regression.
            let ats = r.at == AddrType::TranslationRequest;
            let step = if ats { "ats_translate" } else { "tlp" };
            let _ = writeln!(
                y,
                "  - {step}: {}",
                tlp_fields(r, (n as u16) & 0xff, exp, ats)
            );
        }
    }
    y
}

/// Writes the vector of `sh` to `dir/seed-S.yaml` and runs it with the vector runner and
/// `quirks`; it must fail. Returns the path and the runner's error.
pub fn write_vector(sh: &Shrunk, dir: &Path, quirks: DriverQuirks) -> Result<(PathBuf, String)> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow!("creating {}: {e}", dir.display()))?;
    let path = dir.join(format!("seed-{}.yaml", sh.seed));
    std::fs::write(&path, to_yaml(sh)).map_err(|e| anyhow!("writing {}: {e}", path.display()))?;
    let opts = vectors::RunOptions {
        quirks,
        ..vectors::RunOptions::default()
    };
    match vectors::run_file_with(&path, &opts) {
        Ok(_) => bail!(
            "{}: the vector passes; it does not reproduce the failure",
            path.display()
        ),
        Err(e) if vectors::is_input_error(&e) => {
            bail!("{}: the written vector is not valid: {e:#}", path.display())
        }
        Err(e) => Ok((path, format!("{e:#}"))),
    }
}
