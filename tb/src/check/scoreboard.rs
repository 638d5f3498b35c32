//! Streaming scoreboard: TLPs are sent back to back (random idle gaps, random back-pressure
//! on tx and cpl) while the unit translates them, and every TLP that leaves is paired with
//! its request and checked.
//!
//! The memory does not change during a burst, so the golden walker's answer on that memory
//! is exact for every request. Expectations are queued in request order. The unit keeps PCIe
//! order on this path (one in-order pipeline), so each egress TLP must be the next expected
//! one. A mismatch is classified before it is reported: the (RID, tag) of a later
//! expectation means the expected ones were lost or reordered, an earlier one means a
//! duplicate. Every request must be answered within a watchdog bound. Fault records are
//! checked in order, a batch at a time, before the 8 recording registers could overflow.

use std::collections::VecDeque;

use anyhow::{anyhow, bail, Result};
use iommu_model::golden::{self, HwState, Outcome};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::check::judge::{expected_egress, expected_record, golden_request, take_fault_records};
use crate::env::exchange::drain;
use crate::env::tlp_agent::Egress;
use crate::env::Env;
use crate::tlp::{self, MemRequest};
use iommu_model::fault::FaultRecord;

/// Cycles between a request's acceptance and its answer before the watchdog fires.
pub const WATCHDOG: u64 = 5_000;

/// Fault records the unit may hold before the scoreboard drains them.
const RECORD_BATCH: usize = 6;

/// One request in flight.
#[derive(Clone, Debug)]
struct Pending {
    index: usize,
    req: MemRequest,
    outcome: Outcome,
    egress: Option<Egress>,
    accepted_at: u64,
}

/// Totals of a checked burst.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BurstReport {
    pub sent: u64,
    pub translated: u64,
    pub faults: u64,
    pub dropped: u64,
    pub cycles: u64,
}

fn key(e: &Egress) -> (u16, u16) {
    match *e {
        Egress::Tx(h) => (
            (h[1] >> 16) as u16,
            (((h[1] >> 8) & 0xff) | ((h[0] >> 19) & 1) << 8 | ((h[0] >> 23) & 1) << 9) as u16,
        ),
        Egress::Cpl(h) => (
            (h[2] >> 16) as u16,
            (((h[2] >> 8) & 0xff) | ((h[0] >> 19) & 1) << 8 | ((h[0] >> 23) & 1) << 9) as u16,
        ),
    }
}

/// Sends `reqs` as one burst and checks everything that leaves. `gap_pct`/`ready_pct`
/// shape the traffic; the randomness is seeded by `seed`.
pub fn check_burst(
    env: &mut Env,
    hw: &HwState,
    reqs: &[MemRequest],
    seed: u64,
    gap_pct: u32,
    ready_pct: u32,
) -> Result<BurstReport> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5c0e_b0a2);
    let mut expected: Vec<(Outcome, Option<Egress>, Option<FaultRecord>)> =
        Vec::with_capacity(reqs.len());
    {
        let mem = &env
            .mem
            .as_ref()
            .ok_or_else(|| anyhow!("the scoreboard needs a memory agent"))?
            .mem;
        for r in reqs {
            let walk = golden::translate(hw, mem, &golden_request(r));
            let egress = expected_egress(r, &walk.outcome)?.into_iter().next();
            let record = match walk.outcome {
                Outcome::Fault(f) if walk.record => Some(expected_record(r, f)),
                _ => None,
            };
            expected.push((walk.outcome, egress, record));
        }
    }
    let words: Vec<_> = reqs.iter().map(tlp::encode).collect::<Result<_, _>>()?;
    let mut rep = BurstReport {
        sent: reqs.len() as u64,
        ..BurstReport::default()
    };
    let mut inflight: VecDeque<Pending> = VecDeque::new();
    let mut records_due: Vec<FaultRecord> = Vec::new();
    let mut next = 0usize;
    let start = env.dut.cycle();

    let describe = |p: &Pending| format!("#{} {} (golden walker: {})", p.index, p.req, p.outcome);

    while next < reqs.len() || !inflight.is_empty() {
        // Drain fault records before the recording registers could fill.
        if records_due.len() >= RECORD_BATCH && inflight.is_empty() {
            check_records(env, &mut records_due)?;
        }
        let hold = records_due.len() >= RECORD_BATCH;
        let offer =
            next < reqs.len() && !hold && (gap_pct == 0 || rng.gen_range(0..100) >= gap_pct);
        env.inp.rx_valid = offer;
        if offer {
            env.inp.rx_nprefix = words[next].prefix_count as u8;
            env.inp.rx_prefix = words[next].prefix;
            env.inp.rx_hdr = words[next].header;
        }
        env.inp.tx_ready = ready_pct >= 100 || rng.gen_range(0..100) < ready_pct;
        env.inp.cpl_ready = ready_pct >= 100 || rng.gen_range(0..100) < ready_pct;
        let out = env.tick();
        let now = env.dut.cycle();

        if offer && out.rx_ready {
            let (outcome, egress, record) = expected[next];
            if let Some(r) = record {
                records_due.push(r);
            }
            match outcome {
                Outcome::Translated(_) | Outcome::Untranslated => rep.translated += 1,
                _ => rep.faults += 1,
            }
            if egress.is_none() {
                rep.dropped += 1;
            }
            inflight.push_back(Pending {
                index: next,
                req: reqs[next],
                outcome,
                egress,
                accepted_at: now,
            });
            next += 1;
        }

        let mut seen: Vec<Egress> = Vec::new();
        if out.tx_valid && env.inp.tx_ready {
            seen.push(Egress::Tx(out.tx_hdr));
        }
        if out.cpl_valid && env.inp.cpl_ready {
            seen.push(Egress::Cpl(out.cpl_hdr));
        }
        for got in seen {
            // Requests that produce nothing ahead of this one are answered by its arrival.
            while inflight.front().is_some_and(|p| p.egress.is_none()) {
                inflight.pop_front();
            }
            let Some(p) = inflight.pop_front() else {
                bail!("cycle {now}: {got} left the unit, but no request is waiting for an answer (duplicate?)");
            };
            let want = p.egress.unwrap_or(Egress::Tx([0; 4]));
            if got != want {
                let k = key(&got);
                let later = inflight
                    .iter()
                    .find(|q| q.egress.as_ref().map(key) == Some(k));
                let what = if later.is_some() {
                    "lost or reordered: it answers a later request"
                } else if key(&want) == k {
                    "wrong contents"
                } else {
                    "unexpected (duplicate or unknown)"
                };
                bail!(
                    "cycle {now}: {what}\n  request:  {}\n  expected: {want}\n  DUT did:  {got}",
                    describe(&p)
                );
            }
        }
        if let Some(p) = inflight.front() {
            if now - p.accepted_at > WATCHDOG {
                bail!(
                    "watchdog: no answer {WATCHDOG} cycles after accepting {}",
                    describe(p)
                );
            }
        }
        if (next == reqs.len() || hold)
            && !inflight.is_empty()
            && inflight.iter().all(|p| p.egress.is_none())
        {
            // Only drops left: a marker behind them comes out once they are done (and their
            // faults recorded); nothing else may come out before it.
            let extra = drain(env, WATCHDOG)?;
            if let Some(e) = extra.first() {
                bail!("{e} left the unit, but only dropped requests were waiting (duplicate?)");
            }
            inflight.clear();
        }
    }
    env.inp.rx_valid = false;
    env.inp.tx_ready = true;
    env.inp.cpl_ready = true;
    env.idle(4);
    if env.out.tx_valid || env.out.cpl_valid {
        bail!("the unit still offers a TLP after every request was answered");
    }
    check_records(env, &mut records_due)?;
    env.check_assertions()?;
    rep.cycles = env.dut.cycle() - start;
    Ok(rep)
}

fn check_records(env: &mut Env, due: &mut Vec<FaultRecord>) -> Result<()> {
    let got = take_fault_records(env)?;
    // Records are read in register order; the unit fills them in fault order from where it
    // left off, so compare as sets of equal size plus order within the ring.
    let mut want = std::mem::take(due);
    let mut have = got.clone();
    want.sort_by_key(|r| (r.addr, r.sid, r.reason, r.read, r.pasid));
    have.sort_by_key(|r| (r.addr, r.sid, r.reason, r.read, r.pasid));
    if want != have {
        bail!(
            "fault records differ\n  expected: [{}]\n  DUT:      [{}]",
            want.iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("; "),
            got.iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(())
}
