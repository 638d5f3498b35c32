//! Random regression of the translation unit: seeded kernel-API sequences
//! ([`iommu_model::stimulus`]) run on the RTL through the driver model, with requests after
//! every operation, under random memory latency and back-pressure.
//!
//! Every request is checked twice over. While no invalidation window is open, the DUT must
//! do exactly what the golden walker does on the same memory, fault record included
//! ([`crate::judge`]). While an unmap's flush has not completed, the DUT's outcome must be
//! in the oracle's allowed set (the old translation is still allowed). Either way the
//! outcome must be in the oracle's set.

use anyhow::{anyhow, bail, Result};
use iommu_model::driver::{Driver, DriverQuirks};
use iommu_model::golden::{Outcome, Request};
use iommu_model::kernel::{Kernel, KernelConfig};
use iommu_model::mem::Mem;
use iommu_model::oracle;
use iommu_model::stimulus::Stimulus;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::agents::mem::MemTiming;
use crate::agents::tlp::{exchange, Egress};
use crate::env::Env;
use crate::judge::{judge, take_fault_records, REQUEST_TIMEOUT};
use crate::rtl_hw::RtlHw;
use crate::system::{hw_state, RtlKernel};
use crate::tlp::{self, MemRequest, PasidPrefix, TlpWords};

/// Shape of one seed.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub ops: usize,
    pub requests_per_op: usize,
    pub quirks: DriverQuirks,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ops: 30,
            requests_per_op: 4,
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
    pub cycles: u64,
}

impl std::ops::AddAssign for Report {
    fn add_assign(&mut self, o: Self) {
        self.requests += o.requests;
        self.translated += o.translated;
        self.faults += o.faults;
        self.in_window += o.in_window;
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
    match (got, recs.as_slice()) {
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
    let mut stim = Stimulus::new(seed);
    let mut rep = Report::default();
    let start = k.ops().hw().env.dut.cycle();
    for step in 0..cfg.ops {
        stim.step(k);
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
            rep.requests += 1;
            match outcome {
                Outcome::Translated(_) => rep.translated += 1,
                Outcome::Fault(_) => rep.faults += 1,
                _ => {}
            }
        }
    }
    rep.cycles = k.ops().hw().env.dut.cycle() - start;
    Ok(rep)
}
