//! Judging requests one at a time or as a burst, for directed tests and tools: thin wrappers
//! over the streaming judge ([`crate::check::stream`]) with expectations from the golden
//! walker run on the memory the DUT walks (or from the oracle's allowed set).
//!
//! A single request is a stream of one: sent under the environment's gaps and
//! back-pressure, its egress paired and compared field by field, the unit's fault records
//! drained in ring order and compared with the one it must write (or none).

use anyhow::{anyhow, bail, Context, Result};
use iommu_model::fault::FaultRecord;
use iommu_model::golden::{self, HwState, Outcome, Walk};
use iommu_model::oracle::AllowedSet;

use crate::check::expect::{self, Expect};
pub use crate::check::expect::{expected_record, golden_request};
use crate::check::records::RecordReader;
use crate::check::scoreboard::CheckError;
use crate::check::stream::{self, Traffic};
use crate::env::tlp_agent::Egress;
use crate::env::Env;
use crate::tlp::MemRequest;
use iommu_model::regs::{self, Caps};

/// Reads and clears every pending fault record (F set), in register order (for directed
/// tests of the recording registers; the judge drains them in ring order instead).
pub fn take_fault_records(env: &mut Env) -> Result<Vec<FaultRecord>> {
    let cap = Caps::new(env.read64(regs::CAP)?, 0);
    let mut recs = Vec::new();
    for i in 0..cap.num_fault_records() {
        let off = cap.fault_record(i);
        let hi = env.read64(off + 8)?;
        if hi & regs::frcd::QW1_F == 0 {
            continue;
        }
        let q = [env.read64(off)?, hi];
        let stray = FaultRecord::stray_bits(q);
        if stray != [0, 0] {
            bail!(
                "fault recording register {i} holds bits no record carries: QW0 {:#x}, QW1 {:#x} (record {q:x?})",
                stray[0],
                stray[1]
            );
        }
        recs.extend(FaultRecord::decode(q));
        env.write64(off + 8, regs::frcd::QW1_F)?;
    }
    Ok(recs)
}

/// What must leave the unit for `req` given the walk's outcome (nothing, or one TLP).
pub fn expected_egress(req: &MemRequest, outcome: &Outcome) -> Result<Vec<Egress>> {
    Ok(expect::expected_egress(req, outcome)?.into_iter().collect())
}

/// One judged request.
#[derive(Clone, Debug)]
pub struct Judged {
    pub walk: Walk,
    pub egress: Vec<Egress>,
    /// Cycles from sending it to its last transfer.
    pub cycles: u64,
}

fn walk_of(env: &Env, hw: &HwState, req: &MemRequest) -> Result<Walk> {
    let mem = &env
        .mem
        .as_ref()
        .context("the judge needs a memory agent")?
        .mem;
    Ok(golden::translate(hw, mem, &golden_request(req)))
}

fn stream_err(e: CheckError) -> anyhow::Error {
    anyhow!("{e}")
}

/// Sends `req` through the DUT and checks its egress and fault record against the golden
/// walker run on the memory the DUT walks.
pub fn judge(env: &mut Env, hw: &HwState, req: &MemRequest) -> Result<Judged> {
    let walk = walk_of(env, hw, req)?;
    let x = Expect::golden(req, &walk)?;
    let mut t = Traffic::of_env(env);
    let r = stream::run(env, vec![x], &mut t, &mut RecordReader::new()).map_err(stream_err)?;
    Ok(Judged {
        walk,
        egress: r.egress.into_iter().flatten().collect(),
        cycles: r.cycles,
    })
}

/// Sends `req` and checks that the DUT's answer (egress and fault record) is one the
/// oracle's `allowed` set permits; returns the outcome it chose.
pub fn judge_allowed(env: &mut Env, req: &MemRequest, allowed: &AllowedSet) -> Result<Outcome> {
    let x = Expect::oracle(req, allowed)?;
    let mut t = Traffic::of_env(env);
    let r = stream::run(env, vec![x], &mut t, &mut RecordReader::new()).map_err(stream_err)?;
    r.outcomes
        .first()
        .copied()
        .ok_or_else(|| anyhow!("internal: no outcome for {req}"))
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

/// Sends `reqs` as one stream (idle gaps `gap_pct`, tx/cpl ready `ready_pct` of the cycles,
/// seeded by `seed`) and checks everything that leaves against the golden walker on the
/// current memory.
pub fn check_burst(
    env: &mut Env,
    hw: &HwState,
    reqs: &[MemRequest],
    seed: u64,
    gap_pct: u32,
    ready_pct: u32,
) -> Result<BurstReport> {
    let items = reqs
        .iter()
        .map(|r| Expect::golden(r, &walk_of(env, hw, r)?))
        .collect::<Result<Vec<_>>>()?;
    let mut t = Traffic::new(seed, gap_pct, ready_pct, ready_pct);
    let r = stream::run(env, items, &mut t, &mut RecordReader::new()).map_err(stream_err)?;
    Ok(BurstReport {
        sent: r.totals.sent,
        translated: r.totals.translated,
        faults: r.totals.faults,
        dropped: r.totals.dropped,
        cycles: r.cycles,
    })
}
