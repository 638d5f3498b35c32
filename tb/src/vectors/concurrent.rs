//! Running `during:` steps (TLPs offered while a kernel call's invalidations execute, judged
//! by the oracle under concurrency) and the run's timing and driver bug switches.

use anyhow::{anyhow, Context, Result};
use iommu_model::driver::DriverQuirks;
use iommu_model::oracle;

use crate::check::expect::Expect;
use crate::check::judge::{golden_request, judge_allowed};
use crate::check::records::RecordReader;
use crate::check::stream::{Collector, Traffic};
use crate::env::mem::MemTiming;
use crate::env::Env;
use crate::tlp;

use super::*;

impl Runner {
    /// Runs `d.call` with `d.tlps` offered to the DUT while its descriptor batches execute
    /// (the mechanism of the regression, [`Collector`]); TLPs the batches left no time for
    /// are sent right after the call. Each is judged with [`oracle::allowed_during`] from a
    /// snapshot taken just before the call, and its pinned `expect:` is checked.
    pub(super) fn during(&mut self, d: &During, at: &[Seg]) -> Result<()> {
        if self.tainted {
            return Err(input(
                "TLPs during a call after hardware-level changes (`poke`, `poison`, \
                 `set_rtaddr`, `write_register`, `write_memory`) have no judge: the kernel state no longer \
                 describes the hardware",
            ));
        }
        let mut reqs = Vec::new();
        for Checked(t) in &d.tlps {
            reqs.push(self.request(t)?);
        }
        let words = reqs
            .iter()
            .map(tlp::encode)
            .collect::<Result<Vec<_>, _>>()?;
        let k = self.k()?;
        let before = oracle::Snapshot::take(k);
        let mut records = RecordReader::new();
        let slots = records.slots(&mut k.ops_mut().hw_mut().env)?;
        let traffic = Traffic::of_env(&k.ops().hw().env);
        k.ops_mut().hw_mut().background = Some(Collector::new(words, traffic, slots));
        let mut call_at = at.to_vec();
        call_at.push(Seg::Key("during"));
        let r = self.step(&d.call, &call_at);
        let k = self.k()?;
        let bg = k.ops_mut().hw_mut().background.take();
        r.with_context(|| format!("the call `{}`", d.call.keyword()))?;
        let n = d.tlps.len();
        let when = |j: usize, sent: usize| {
            if j < sent {
                "sent while the call executed"
            } else {
                "sent after the call returned (its invalidations left no time)"
            }
        };
        let mut outcomes = Vec::new();
        if let Some(bg) = bg {
            let got = bg.finish(&mut k.ops_mut().hw_mut().env, &mut records)?;
            let exps = reqs
                .iter()
                .take(got.sent.len())
                .map(|t| Expect::oracle(t, &oracle::allowed_during(&before, k, &golden_request(t))))
                .collect::<Result<Vec<_>>>()?;
            let r = got.judge(exps).map_err(|e| {
                let j = e.request.unwrap_or(0);
                anyhow!("{}", e.message).context(format!(
                    "TLP {} of {n} of `during` ({})",
                    j + 1,
                    when(j, usize::MAX)
                ))
            })?;
            outcomes = r.outcomes;
        }
        let sent_during = outcomes.len();
        for (j, req) in reqs.iter().enumerate().skip(sent_during) {
            let allowed = oracle::allowed_during(&before, k, &golden_request(req));
            let env = &mut k.ops_mut().hw_mut().env;
            let o = judge_allowed(env, req, &allowed).with_context(|| {
                format!(
                    "TLP {} of {n} of `during` ({})",
                    j + 1,
                    when(j, sent_during)
                )
            })?;
            outcomes.push(o);
        }
        for (j, ((req, outcome), Checked(t))) in reqs.iter().zip(&outcomes).zip(&d.tlps).enumerate()
        {
            let ctx = || {
                format!(
                    "TLP {} of {n} of `during` ({})",
                    j + 1,
                    when(j, sent_during)
                )
            };
            let k = self.k()?;
            let allowed = oracle::allowed_during(&before, k, &golden_request(req));
            self.rep.during += 1;
            let mut tlp_at = at.to_vec();
            tlp_at.extend([Seg::Key("during"), Seg::Key("tlps"), Seg::Index(j)]);
            let pos = self.position(&tlp_at);
            self.judged(
                t.expect.as_ref().map(|c| &c.0),
                req,
                outcome,
                true,
                Some(&allowed),
                &tlp_at,
            )
            .with_context(|| format!("{pos}: {}", ctx()))?;
        }
        Ok(())
    }
}

/// The driver bug switches of a run: the options' and the vector's `driver_bugs:`.
pub fn quirks_of(v: &Vector, opts: &RunOptions) -> Result<DriverQuirks> {
    let mut q = opts.quirks;
    for b in &v.driver_bugs {
        q.enable(b).map_err(input)?;
    }
    Ok(q)
}

/// Back-pressure of the TLP ports ([`crate::env::tlp_agent::TlpAgent`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortTiming {
    pub gap_pct: u32,
    pub tx_ready_pct: u32,
    pub cpl_ready_pct: u32,
}

impl Default for PortTiming {
    fn default() -> Self {
        Self {
            gap_pct: 0,
            tx_ready_pct: 100,
            cpl_ready_pct: 100,
        }
    }
}

impl PortTiming {
    pub fn apply(&self, env: &mut Env) {
        env.tlp.gap_pct = self.gap_pct;
        env.tlp.tx_ready_pct = self.tx_ready_pct;
        env.tlp.cpl_ready_pct = self.cpl_ready_pct;
    }
}

/// The memory timing and port back-pressure of a run: the vector's `timing:` fields over
/// the options' timing and no back-pressure.
pub fn timing_of(v: &Vector, opts: &RunOptions) -> (MemTiming, PortTiming) {
    let Some(t) = v.timing else {
        return (opts.timing, PortTiming::default());
    };
    let pct = |n: Option<Num>, d: u32| n.map_or(d, |n| n.0 as u32);
    let min = pct(t.min_latency, opts.timing.min_latency);
    let mem = MemTiming {
        min_latency: min,
        max_latency: pct(t.max_latency, opts.timing.max_latency.max(min)),
        ready_pct: pct(t.mem_ready_pct, opts.timing.ready_pct),
        in_order: t.in_order.unwrap_or(opts.timing.in_order),
    };
    let d = PortTiming::default();
    let ports = PortTiming {
        gap_pct: pct(t.tlp_gap_pct, d.gap_pct),
        tx_ready_pct: pct(t.tx_ready_pct, d.tx_ready_pct),
        cpl_ready_pct: pct(t.cpl_ready_pct, d.cpl_ready_pct),
    };
    (mem, ports)
}
