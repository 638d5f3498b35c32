//! Running `during:` steps (TLPs offered while a kernel call's invalidations execute, judged
//! by the oracle under concurrency) and the run's timing and driver bug switches.

use anyhow::{anyhow, Context, Result};
use iommu_model::driver::DriverQuirks;
use iommu_model::oracle;

use crate::check::judge::{golden_request, outcome_of, take_fault_records, REQUEST_TIMEOUT};
use crate::env::exchange::exchange;
use crate::env::mem::MemTiming;
use crate::env::Env;
use crate::hw::rtl_hw::Background;
use crate::tlp;

use super::*;

impl Runner {
    /// Runs `d.call` with `d.tlps` offered to the DUT while its descriptor batches execute
    /// (the mechanism of the regression, [`Background`]); TLPs the batches left no time for
    /// are sent right after the call. Each is judged with [`oracle::allowed_during`] from a
    /// snapshot taken just before the call, and its pinned `expect:` is checked.
    pub(super) fn during(&mut self, d: &During, at: &[Seg]) -> Result<()> {
        if self.tainted {
            return Err(input(
                "TLPs during a call after hardware-level changes (`poke`, `poison`, \
                 `set_rtaddr`, `write_register`) have no judge: the kernel state no longer \
                 describes the hardware",
            ));
        }
        let mut reqs = std::collections::VecDeque::new();
        for Checked(t) in &d.tlps {
            reqs.push_back(self.request(t)?);
        }
        let k = self.k()?;
        let before = oracle::Snapshot::take(k);
        k.ops_mut().hw_mut().background = Some(Background {
            pending: reqs,
            done: Vec::new(),
        });
        let mut call_at = at.to_vec();
        call_at.push(Seg::Key("during"));
        let r = self.step(&d.call, &call_at);
        let k = self.k()?;
        let mut bg = k.ops_mut().hw_mut().background.take().unwrap_or_default();
        r.with_context(|| format!("the call `{}`", d.call.keyword()))?;
        let sent_during = bg.done.len();
        let env = &mut k.ops_mut().hw_mut().env;
        while let Some(req) = bg.pending.pop_front() {
            let got = exchange(env, &tlp::encode(&req)?, REQUEST_TIMEOUT)?;
            let recs = take_fault_records(env)?;
            bg.done.push((req, got, recs));
        }
        let n = d.tlps.len();
        for (j, ((req, got, recs), Checked(t))) in bg.done.iter().zip(&d.tlps).enumerate() {
            let when = if j < sent_during {
                "sent while the call executed"
            } else {
                "sent after the call returned (its invalidations left no time)"
            };
            let ctx = || format!("TLP {} of {n} of `during` ({when})", j + 1);
            let k = self.k()?;
            let outcome = outcome_of(req, got, recs).with_context(ctx)?;
            let allowed = oracle::allowed_during(&before, k, &golden_request(req));
            allowed
                .check(&outcome)
                .map_err(|m| anyhow!("request: {req}\n  {m}"))
                .with_context(ctx)?;
            self.rep.during += 1;
            self.judged(t, req, &outcome, !recs.is_empty(), Some(&allowed))
                .with_context(ctx)?;
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
    };
    let d = PortTiming::default();
    let ports = PortTiming {
        gap_pct: pct(t.tlp_gap_pct, d.gap_pct),
        tx_ready_pct: pct(t.tx_ready_pct, d.tx_ready_pct),
        cpl_ready_pct: pct(t.cpl_ready_pct, d.cpl_ready_pct),
    };
    (mem, ports)
}
