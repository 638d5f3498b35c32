//! What may leave the unit for one TLP: its allowed answers.
//!
//! An [`Expect`] holds the TLP as it entered the unit and every answer the judge allows, each
//! an [`Outcome`] with the egress it produces (a request on tx, a UR completion on cpl, or
//! nothing) and the fault record it writes (or none). Three judges build them:
//! - the golden walker ([`Expect::golden`]): exactly one answer, where no invalidation
//!   window is open;
//! - the oracle ([`Expect::oracle`]): one answer per outcome of the allowed set, inside a
//!   window or while an operation's invalidations execute;
//! - the TLP codec ([`Expect::codec`]): translation disabled, forward unchanged or reject a
//!   malformed request.

use std::fmt;

use anyhow::Result;
use iommu_model::fault::FaultRecord;
use iommu_model::golden::{cpl_status, AddrType, AtsStatus, Outcome, Request, Walk};
use iommu_model::oracle::AllowedSet;
use iommu_model::FaultReason;

use crate::check::order::OrderAttrs;
use crate::dut::COMPLETER_ID;
use crate::env::tlp_agent::Egress;
use crate::tlp::{self, DecodeError, MemRequest, Tlp, TlpWords};

/// One allowed answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub outcome: Outcome,
    /// What leaves the unit; `None`: nothing (a dropped request).
    pub egress: Option<Egress>,
    /// Header DWs compared on tx (3 or 4).
    pub dws: u8,
    /// The fault record it writes.
    pub record: Option<FaultRecord>,
}

impl Answer {
    /// Whether `e` is this answer's egress.
    pub fn matches(&self, e: &Egress) -> bool {
        match (self.egress, e) {
            (Some(Egress::Tx(w)), Egress::Tx(g)) => {
                let n = usize::from(self.dws);
                w[..n] == g[..n]
            }
            (Some(Egress::Cpl(w)), Egress::Cpl(g)) => w == *g,
            (Some(Egress::CplD(w, wd)), Egress::CplD(g, gd)) => w == *g && wd == *gd,
            _ => false,
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.outcome)?;
        match &self.egress {
            Some(e) => write!(f, "{e}")?,
            None => write!(f, "nothing leaves")?,
        }
        match &self.record {
            Some(r) => write!(f, ", fault record {r}"),
            None => write!(f, ", no fault record"),
        }
    }
}

/// Which judge built an expectation (for failure messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Judge {
    /// The golden walker on the memory the DUT walks (exact).
    Golden,
    /// The oracle's allowed set.
    Oracle(AllowedSet),
    /// The TLP codec, translation disabled.
    Codec,
}

/// What may leave the unit for one TLP.
#[derive(Clone, Debug)]
pub struct Expect {
    /// The TLP as sent.
    pub words: TlpWords,
    /// The memory request, when it is a well-formed or malformed memory request.
    pub req: Option<MemRequest>,
    pub attrs: OrderAttrs,
    /// (Requester ID, tag) of the TLP and of every egress it may produce.
    pub key: u32,
    pub answers: Vec<Answer>,
    pub judge: Judge,
}

/// Identity of a TLP on any port: Requester ID and the 10-bit tag (T9, T8, `Tag[7:0]`).
pub fn key(e: &Egress) -> u32 {
    let (dw0, id_dw) = match *e {
        Egress::Tx(h) if (h[0] >> 24) & 0x1f == 0b01010 => (h[0], h[2]),
        Egress::Tx(h) => (h[0], h[1]),
        Egress::Cpl(h) | Egress::CplD(h, _) => (h[0], h[2]),
    };
    let tag = ((id_dw >> 8) & 0xff) | ((dw0 >> 19) & 1) << 8 | ((dw0 >> 23) & 1) << 9;
    (id_dw >> 16) << 10 | tag
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
        at: match req.at {
            tlp::At::TranslationRequest => AddrType::TranslationRequest,
            tlp::At::Translated => AddrType::Translated,
            // AT = 11b is malformed before the walker sees it.
            tlp::At::Untranslated | tlp::At::Reserved => AddrType::Untranslated,
        },
    }
}

/// The fault record VT-d writes for the memory request `req` faulting with `reason`.
pub fn expected_record(req: &MemRequest, reason: FaultReason) -> FaultRecord {
    FaultRecord::of(&golden_request(req), reason)
}

/// What leaves the unit for `req` given an outcome: the request with the translated
/// address, the request unchanged, a UR completion for a read (UR or CA for a
/// Translation Request, as [`cpl_status`] says), a Translation Completion, or nothing.
pub fn expected_egress(req: &MemRequest, outcome: &Outcome) -> Result<Option<Egress>> {
    let ats = req.at == tlp::At::TranslationRequest;
    Ok(match outcome {
        Outcome::Translated(pa) => Some(Egress::Tx(tlp::encode(&req.with_address(*pa))?.header)),
        Outcome::Untranslated => Some(Egress::Tx(tlp::encode(req)?.header)),
        Outcome::Ats(e) => {
            let h = tlp::encode_completion(&tlp::translation_completion(req, COMPLETER_ID))?.header;
            Some(Egress::CplD([h[0], h[1], h[2]], e.encode()))
        }
        Outcome::Fault(r) if ats && cpl_status(*r) == AtsStatus::Ca => {
            match tlp::ur_completion(req, COMPLETER_ID) {
                Some(c) => {
                    let c = tlp::Completion {
                        status: tlp::CplStatus::Ca,
                        ..c
                    };
                    let h = tlp::encode_completion(&c)?.header;
                    Some(Egress::Cpl([h[0], h[1], h[2]]))
                }
                None => None,
            }
        }
        Outcome::Fault(_) | Outcome::Malformed => match tlp::ur_completion(req, COMPLETER_ID) {
            Some(c) => {
                let h = tlp::encode_completion(&c)?.header;
                Some(Egress::Cpl([h[0], h[1], h[2]]))
            }
            None => None,
        },
    })
}

fn answer(req: &MemRequest, outcome: Outcome, record: Option<FaultRecord>) -> Result<Answer> {
    Ok(Answer {
        outcome,
        egress: expected_egress(req, &outcome)?,
        dws: 4,
        record,
    })
}

impl Expect {
    fn of_request(req: &MemRequest, answers: Vec<Answer>, judge: Judge) -> Result<Self> {
        let words = tlp::encode(req)?;
        Ok(Self {
            attrs: OrderAttrs::of_header(&words.header),
            key: key(&Egress::Tx(words.header)),
            words,
            req: Some(*req),
            answers,
            judge,
        })
    }

    /// Exactly what the golden walker did: its outcome, and its fault record unless FPD
    /// suppressed it.
    pub fn golden(req: &MemRequest, walk: &Walk) -> Result<Self> {
        let record = match walk.outcome {
            Outcome::Fault(r) if walk.record => Some(expected_record(req, r)),
            _ => None,
        };
        let a = answer(req, walk.outcome, record)?;
        Self::of_request(req, vec![a], Judge::Golden)
    }

    /// Any outcome of the oracle's set; a fault writes its record.
    pub fn oracle(req: &MemRequest, allowed: &AllowedSet) -> Result<Self> {
        let answers = allowed
            .iter()
            .map(|o| {
                let record = match *o {
                    Outcome::Fault(r) => Some(expected_record(req, r)),
                    _ => None,
                };
                answer(req, *o, record)
            })
            .collect::<Result<Vec<_>>>()?;
        Self::of_request(req, answers, Judge::Oracle(allowed.clone()))
    }

    /// With translation disabled: the codec decides. A well-formed TLP leaves on tx unchanged
    /// (its used header DWs compared); a malformed non-posted request gets a UR completion, a
    /// malformed posted one is dropped; no fault is recorded.
    pub fn codec(w: &TlpWords) -> Result<Self> {
        let (answer, req) = match tlp::decode(w) {
            Ok(t) => (
                Answer {
                    outcome: Outcome::Untranslated,
                    egress: Some(Egress::Tx(w.header)),
                    dws: w.header_dws as u8,
                    record: None,
                },
                match t {
                    Tlp::Mem(m) => Some(m),
                    Tlp::Cpl(_) => None,
                },
            ),
            Err(DecodeError::Malformed(_)) => match tlp::decode_lenient(w) {
                Ok((Tlp::Mem(req), _)) => (
                    Answer {
                        outcome: Outcome::Malformed,
                        egress: match tlp::ur_completion(&req, COMPLETER_ID) {
                            Some(c) => {
                                let h = tlp::encode_completion(&c)?.header;
                                Some(Egress::Cpl([h[0], h[1], h[2]]))
                            }
                            None => None,
                        },
                        dws: 3,
                        record: None,
                    },
                    Some(req),
                ),
                Ok((Tlp::Cpl(_), _)) => anyhow::bail!("a malformed completion has no expectation"),
                Err(e) => anyhow::bail!("stimulus cannot be decoded: {e}"),
            },
            Err(e) => anyhow::bail!("a TLP the codec rejects outright has no expectation: {e}"),
        };
        Ok(Self {
            attrs: OrderAttrs::of_header(&w.header),
            key: key(&Egress::Tx(w.header)),
            words: *w,
            req,
            answers: vec![answer],
            judge: Judge::Codec,
        })
    }

    /// The TLP, decoded field by field (and what makes it malformed, if anything).
    pub fn describe(&self) -> String {
        match tlp::decode_lenient(&self.words) {
            Ok((t, Some(m))) => format!("{t} [malformed: {m}]"),
            Ok((t, None)) => format!("{t}"),
            Err(e) => format!("{} [{e}]", self.words),
        }
    }

    /// What the judge said, in words.
    pub fn judged_by(&self) -> String {
        match &self.judge {
            Judge::Golden => format!("golden walker: {}", self.answers[0].outcome),
            Judge::Oracle(s) => format!("oracle allowed {s}"),
            Judge::Codec => format!("TLP codec: {}", self.answers[0].outcome),
        }
    }

    /// The allowed answers, one per line.
    pub fn allowed(&self) -> String {
        self.answers
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join("\n                 ")
    }

    /// The only outcome allowed, if there is one.
    pub fn single(&self) -> Option<Outcome> {
        match self.answers.as_slice() {
            [a] => Some(a.outcome),
            _ => None,
        }
    }
}
