//! Random regression of the translation unit: seeded kernel-API sequences
//! ([`iommu_model::stimulus`]) run on the RTL through the driver model, with requests after
//! every operation, under random memory latency and back-pressure.
//!
//! Every request is checked twice over. While no invalidation window is open, the DUT must
//! do exactly what the golden walker does on the same memory, fault record included
//! ([`crate::judge`]). While an unmap's flush has not completed, the DUT's outcome must be
//! in the oracle's allowed set (the old translation is still allowed). Either way the
//! outcome must be in the oracle's set.
//!
//! Requests are also sent while an operation's invalidations are executing (as DMA goes
//! on while Linux spins in `qi_submit_sync`). Those may see the state before the operation
//! (its faults too: a cached PASID entry may still lead to the old tables) or after it, and,
//! when the operation changes the device's attachments, the blocked state
//! Linux passes through (PASID entry not present, 0x59); after the wait, the exact check
//! above applies again.

use anyhow::{anyhow, bail, Result};
use iommu_model::driver::{Driver, DriverQuirks};
use iommu_model::golden::{Outcome, Request};
use iommu_model::kernel::State;
use iommu_model::kernel::{Kernel, KernelConfig};
use iommu_model::mem::Mem;
use iommu_model::oracle;
use iommu_model::stimulus::Stimulus;
use iommu_model::FaultReason;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::agents::mem::MemTiming;
use crate::agents::tlp::{exchange, Egress};
use crate::coverage::{self, Coverage};
use crate::env::Env;
use crate::judge::{judge, take_fault_records, FaultRecord, REQUEST_TIMEOUT};
use crate::rtl_hw::{Background, RtlHw};
use crate::system::{hw_state, RtlKernel};
use crate::tlp::{self, MemRequest, PasidPrefix, TlpWords};

/// Shape of one seed.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub ops: usize,
    pub requests_per_op: usize,
    /// Requests offered to the DUT while each operation's invalidations are in flight.
    pub concurrent_per_op: usize,
    pub quirks: DriverQuirks,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ops: 30,
            requests_per_op: 4,
            concurrent_per_op: 3,
            quirks: DriverQuirks::default(),
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
}

impl std::ops::AddAssign for Report {
    fn add_assign(&mut self, o: Self) {
        self.requests += o.requests;
        self.translated += o.translated;
        self.faults += o.faults;
        self.in_window += o.in_window;
        self.concurrent += o.concurrent;
        self.cycles += o.cycles;
    }
}

/// The TLP for a model request: an 8-byte read or write, 3DW or 4DW by address.
pub fn to_tlp(req: &Request, tag: u16) -> MemRequest {
    let mut m = if req.write {
        MemRequest::write(req.rid, 0, req.addr, 2)
    } else {
        MemRequest::read(req.rid, tag, req.addr, 2)
    };
    m.pasid = req.pasid.map(|pasid| PasidPrefix {
        pasid,
        pmr: req.pmr,
        er: req.er,
    });
    m
}

/// What the DUT did with a request, as an outcome: the translated address, or the
/// recorded fault.
fn dut_outcome(env: &mut Env, req: &MemRequest, got: &[Egress]) -> Result<Outcome> {
    let recs = take_fault_records(env)?;
    outcome_of(req, got, &recs)
}

fn outcome_of(req: &MemRequest, got: &[Egress], recs: &[FaultRecord]) -> Result<Outcome> {
    match (got, recs) {
        ([Egress::Tx(h)], []) => match tlp::decode(&TlpWords::from_port([0; 4], 0, *h))? {
            tlp::Tlp::Mem(m) => Ok(Outcome::Translated(m.addr)),
            t => bail!("DUT forwarded something that is not a request: {t}"),
        },
        (_, [r]) if got.iter().all(|e| matches!(e, Egress::Cpl(_))) => {
            let reason = iommu_model::FaultReason::from_code(r.reason)
                .ok_or_else(|| anyhow!("DUT recorded an unknown fault reason {:#04x}", r.reason))?;
            Ok(Outcome::Fault(reason))
        }
        _ => bail!(
            "DUT answered {req} with [{}] and {} fault records",
            got.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
            recs.len()
        ),
    }
}

/// Whether an operation changed which domains `rid` is attached to (RID or any PASID).
fn attachment_changed(before: &State, after: &State, rid: u16) -> bool {
    let of = |st: &State| {
        st.devices
            .get(&rid)
            .map(|d| (d.rid_domain, d.pasids.clone()))
    };
    of(before) != of(after)
}

/// Builds the system of one seed: random memory timing and back-pressure.
pub fn seed_system(env: &mut Env, seed: u64, quirks: DriverQuirks) -> Result<RtlKernel> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7197_11e5);
    let max = [1u32, 2, 8, 32, 64][rng.gen_range(0..5)];
    let timing = MemTiming {
        min_latency: 1,
        max_latency: max,
        ready_pct: rng.gen_range(50..=100),
    };
    let hw = RtlHw::from_env(env.take(), Mem::new(), timing)?;
    let drv = Driver::new(hw, quirks)?;
    let mut k = Kernel::new(drv, KernelConfig::default());
    Stimulus::add_devices(&mut k).map_err(|e| anyhow!("adding devices: {e:?}"))?;
    let e = &mut k.ops_mut().hw_mut().env;
    e.tlp.gap_pct = rng.gen_range(0..40);
    e.tlp.tx_ready_pct = rng.gen_range(50..=100);
    e.tlp.cpl_ready_pct = rng.gen_range(50..=100);
    Ok(k)
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
    mut cov: Option<&mut Coverage>,
) -> Result<Report> {
    let mut stim = Stimulus::new(seed);
    let mut rep = Report::default();
    let start = k.ops().hw().env.dut.cycle();
    let submitted_before = k.ops().hw().submitted.len();
    for step in 0..cfg.ops {
        // Traffic during the operation's invalidations: judged against the states before
        // and after it (the old translation stays legal until the wait completes).
        let before = k.state().clone();
        let mut bg = Background::default();
        for n in 0..cfg.concurrent_per_op {
            bg.pending
                .push_back(to_tlp(&stim.request(k), 0x80 | n as u16));
        }
        k.ops_mut().hw_mut().background = Some(bg);
        stim.step(k);
        let bg = k.ops_mut().hw_mut().background.take().unwrap_or_default();
        for (tlp_req, got, recs) in &bg.done {
            let req = crate::judge::golden_request(tlp_req);
            let op = stim.log.last().cloned().unwrap_or_default();
            let outcome = outcome_of(tlp_req, got, recs)
                .map_err(|e| anyhow!("seed {seed} step {step}, during `{op}`: {e:#}"))?;
            let mut allowed = oracle::allowed_from(
                k.state(),
                std::iter::once(&before).chain(k.windows().iter().map(|w| &w.before)),
                &req,
            );
            // The operation is not over until its wait completes: everything the state
            // before it gives (faults included, from still-cached structures) stays legal.
            for o in oracle::eval(&before, &req).iter() {
                allowed.insert(*o);
            }
            if attachment_changed(&before, k.state(), req.rid) {
                // Linux tears an attachment down before it builds the new one: in between the
                // device's PASID entry is not present and its DMA is blocked.
                allowed.insert(Outcome::Fault(FaultReason::PasidEntryNotPresent));
            }
            if let Err(m) = allowed.check(&outcome) {
                bail!("seed {seed} step {step}, request {tlp_req} sent during `{op}`: {m}\n  operations so far:\n    {}", stim.log.join("\n    "));
            }
            rep.concurrent += 1;
            if let Some(c) = cov.as_deref_mut() {
                c.sample_concurrent(&outcome);
            }
            rep.requests += 1;
        }
        for n in 0..cfg.requests_per_op {
            let req = stim.request(k);
            let tlp_req = to_tlp(&req, (n as u16) & 0xff);
            let context = || {
                format!(
                    "seed {seed} step {step} request {n}: {tlp_req}\n  operations so far:\n    {}",
                    stim.log.join("\n    ")
                )
            };
            let allowed = oracle::allowed(k, &req);
            let mark = coverage::log_mark(k);
            let outcome = if k.windows().is_empty() {
                let hw = hw_state(k);
                let j = judge(&mut k.ops_mut().hw_mut().env, &hw, &tlp_req)
                    .map_err(|e| anyhow!("{e:#}\n{}", context()))?;
                j.walk.outcome
            } else {
                rep.in_window += 1;
                let env = &mut k.ops_mut().hw_mut().env;
                let got = exchange(env, &tlp::encode(&tlp_req)?, REQUEST_TIMEOUT)?;
                dut_outcome(env, &tlp_req, &got).map_err(|e| anyhow!("{e:#}\n{}", context()))?
            };
            if let Err(m) = allowed.check(&outcome) {
                bail!("{m}\n{}", context());
            }
            if let Some(c) = cov.as_deref_mut() {
                c.sample_request(k, &req, &outcome, mark);
            }
            rep.requests += 1;
            match outcome {
                Outcome::Translated(_) => rep.translated += 1,
                Outcome::Fault(_) => rep.faults += 1,
                _ => {}
            }
        }
    }
    rep.cycles = k.ops().hw().env.dut.cycle() - start;
    if let Some(c) = cov {
        let descs = &k.ops().hw().submitted;
        c.sample_descriptors(descs.get(submitted_before..).unwrap_or(&[]));
    }
    Ok(rep)
}
