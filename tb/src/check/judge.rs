//! Judges single requests against the golden walker on the same memory.
//!
//! The golden walker ([`iommu_model::golden::translate`]) reads the memory the DUT walks
//! and says what VT-d does with the request: a physical address or a fault reason, and
//! whether the fault is recorded. From that the judge derives, with the TLP codec, exactly
//! what must leave the unit (the request with the translated address, a UR completion, or
//! nothing) and which fault record must appear, and compares field by field.

use anyhow::{bail, Context, Result};
use iommu_model::golden::{self, HwState, Outcome, Request, Walk};
use iommu_model::FaultReason;

use crate::env::csr::{reg, Cap};
use crate::env::exchange::exchange;
use crate::env::tlp_agent::Egress;
use crate::env::Env;
use crate::flows::untranslated::COMPLETER_ID;
use crate::tlp::{self, MemRequest};

/// Cycles one request may take (a full walk is 16 reads, each up to 64 cycles late).
pub const REQUEST_TIMEOUT: u64 = 4_000;

/// A fault record as the FRCD registers show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultRecord {
    pub addr: u64,
    pub sid: u16,
    pub priv_: bool,
    pub exe: bool,
    pub pp: bool,
    pub reason: u8,
    pub pasid: u32,
    pub read: bool,
}

impl std::fmt::Display for FaultRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reason = FaultReason::from_code(self.reason)
            .map_or_else(|| format!("{:#04x}", self.reason), |r| r.to_string());
        write!(
            f,
            "FR {reason} SID {:02x}:{:02x}.{} addr {:#x} {} PP={} PASID {:#x} PRIV={} EXE={}",
            self.sid >> 8,
            (self.sid >> 3) & 0x1f,
            self.sid & 7,
            self.addr,
            if self.read { "read" } else { "write" },
            u8::from(self.pp),
            self.pasid,
            u8::from(self.priv_),
            u8::from(self.exe)
        )
    }
}

impl FaultRecord {
    /// The record VT-d writes for `req` faulting with `reason`.
    pub fn expected(req: &MemRequest, reason: FaultReason) -> Self {
        Self {
            addr: req.addr & !0xfff,
            sid: req.requester_id,
            priv_: req.pasid.is_some_and(|p| p.pmr),
            exe: req.pasid.is_some_and(|p| p.er),
            pp: req.pasid.is_some(),
            reason: reason.code(),
            pasid: req.pasid.map_or(0, |p| p.pasid),
            read: !req.is_write,
        }
    }
}

/// Reads and clears every pending fault record (F set), in register order.
pub fn take_fault_records(env: &mut Env) -> Result<Vec<FaultRecord>> {
    let cap = Cap::decode(env.read64(reg::CAP)?);
    let mut recs = Vec::new();
    for i in 0..cap.num_fault_records() {
        let off = cap.frcd_offset(i);
        let hi = env.read64(off + 8)?;
        if hi >> 63 == 0 {
            continue;
        }
        let lo = env.read64(off)?;
        recs.push(FaultRecord {
            addr: lo & !0xfff,
            sid: hi as u16,
            priv_: hi >> 29 & 1 == 1,
            exe: hi >> 30 & 1 == 1,
            pp: hi >> 31 & 1 == 1,
            reason: (hi >> 32) as u8,
            pasid: ((hi >> 40) & 0xf_ffff) as u32,
            read: hi >> 62 & 1 == 1,
        });
        env.write64(off + 8, 1 << 63)?;
    }
    Ok(recs)
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
        Outcome::Fault(r) if walk.record => vec![FaultRecord::expected(req, r)],
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
