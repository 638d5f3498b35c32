//! Judges single requests against the golden walker on the same memory.
//!
//! The golden walker ([`iommu_model::golden::translate`]) reads the memory the DUT walks
//! and says what VT-d does with the request: a physical address or a fault reason, and
//! whether the fault is recorded. From that the judge derives, with the TLP codec, exactly
//! what must leave the unit (the request with the translated address, a UR completion, or
//! nothing) and which fault record must appear, and compares field by field.

use anyhow::{anyhow, bail, Context, Result};
use iommu_model::fault::FaultRecord;
use iommu_model::golden::{self, HwState, Outcome, Request, Walk};
use iommu_model::FaultReason;

use crate::env::exchange::exchange;
use crate::env::tlp_agent::Egress;
use crate::env::Env;
use crate::flows::untranslated::COMPLETER_ID;
use crate::tlp::{self, MemRequest, TlpWords};
use iommu_model::regs::{self, Caps};

/// Cycles one request may take (a full walk is 16 reads, each up to 64 cycles late).
pub const REQUEST_TIMEOUT: u64 = 4_000;

/// Reads and clears every pending fault record (F set), in register order.
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

/// The fault record VT-d writes for the memory request `req` faulting with `reason`.
pub fn expected_record(req: &MemRequest, reason: FaultReason) -> FaultRecord {
    FaultRecord::of(&golden_request(req), reason)
}

/// The golden walker's view of a memory request TLP.
pub fn golden_request(req: &MemRequest) -> Request {
    Request {
        rid: req.requester_id,
        pasid: req.pasid.map(|p| p.pasid),
        pmr: req.pasid.is_some_and(|p| p.pmr),
        er: req.pasid.is_some_and(|p| p.er),
        addr: req.addr,
        len: req.byte_len(),
        write: req.is_write,
    }
}

/// What must leave the unit for `req` given the walk's outcome.
pub fn expected_egress(req: &MemRequest, outcome: &Outcome) -> Result<Vec<Egress>> {
    Ok(match outcome {
        Outcome::Translated(pa) => vec![Egress::Tx(tlp::encode(&req.with_address(*pa))?.header)],
        Outcome::Untranslated => vec![Egress::Tx(tlp::encode(req)?.header)],
        Outcome::Fault(_) | Outcome::Malformed => match tlp::ur_completion(req, COMPLETER_ID) {
            Some(c) => {
                let h = tlp::encode_completion(&c)?.header;
                vec![Egress::Cpl([h[0], h[1], h[2]])]
            }
            None => vec![],
        },
    })
}

/// One judged request.
#[derive(Clone, Debug)]
pub struct Judged {
    pub walk: Walk,
    pub egress: Vec<Egress>,
    pub cycles: u64,
}

/// Sends `req` through the DUT and checks its egress and fault record against the golden
/// walker run on the memory the DUT walks.
pub fn judge(env: &mut Env, hw: &HwState, req: &MemRequest) -> Result<Judged> {
    let walk = {
        let mem = &env
            .mem
            .as_ref()
            .context("the judge needs a memory agent")?
            .mem;
        golden::translate(hw, mem, &golden_request(req))
    };
    let want = expected_egress(req, &walk.outcome)?;
    let words = tlp::encode(req)?;
    let start = env.dut.cycle();
    let got = exchange(env, &words, REQUEST_TIMEOUT)?;
    let cycles = env.dut.cycle() - start;
    let show = |v: &[Egress]| {
        if v.is_empty() {
            "nothing".to_owned()
        } else {
            v.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        }
    };
    if got != want {
        bail!(
            "request: {req}\n  golden walker: {}\n  expected:      {}\n  DUT did:       {}",
            walk.outcome,
            show(&want),
            show(&got)
        );
    }
    let recs = take_fault_records(env)?;
    let want_rec = match walk.outcome {
        Outcome::Fault(r) if walk.record => vec![expected_record(req, r)],
        _ => vec![],
    };
    if recs != want_rec {
        bail!(
            "request: {req}\n  golden walker: {} ({})\n  expected fault records: [{}]\n  DUT recorded:           [{}]",
            walk.outcome,
            if walk.record { "recorded" } else { "not recorded" },
            want_rec.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("; "),
            recs.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("; ")
        );
    }
    env.check_assertions()?;
    Ok(Judged {
        walk,
        egress: got,
        cycles,
    })
}

/// What the DUT did with a request, as an outcome: the translated address, or the
/// recorded fault.
pub fn dut_outcome(env: &mut Env, req: &MemRequest, got: &[Egress]) -> Result<Outcome> {
    let recs = take_fault_records(env)?;
    outcome_of(req, got, &recs)
}

pub fn outcome_of(req: &MemRequest, got: &[Egress], recs: &[FaultRecord]) -> Result<Outcome> {
    match (got, recs) {
        ([Egress::Tx(h)], []) => match tlp::decode(&TlpWords::from_port([0; 4], 0, *h))? {
            tlp::Tlp::Mem(m) => Ok(Outcome::Translated(m.addr)),
            t => bail!("the DUT forwarded something that is not a request: {t}"),
        },
        (_, [r]) if got.iter().all(|e| matches!(e, Egress::Cpl(_))) => {
            let reason = FaultReason::from_code(r.reason).ok_or_else(|| {
                anyhow!("the DUT recorded an unknown fault reason {:#04x}", r.reason)
            })?;
            Ok(Outcome::Fault(reason))
        }
        _ => bail!(
            "the DUT answered {req} with [{}] and {} fault records",
            got.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
            recs.len()
        ),
    }
}
