//! Judging the TLPs of a vector: `tlp` steps (built from fields) and `raw_tlp` steps (any
//! bits), each sent as a stream of one, judged by the golden walker, the oracle or the TLP
//! codec, and checked against its pinned `expect:`.

use anyhow::{anyhow, ensure, Context, Result};
use iommu_model::golden::{self, AtsEntry, Outcome};
use iommu_model::oracle;

use crate::check::expect::{golden_request, Expect as Allowed};
use crate::check::records::RecordReader;
use crate::check::stream::{self, Traffic};
use crate::tlp::{self, Bdf, MemRequest, Tlp as Decoded, TlpWords};

use super::*;

/// Byte offset of the first enabled byte within the request's first DW (0 for a
/// zero-length request): the header address plus this is the address of the first byte.
pub fn first_byte_offset(req: &MemRequest) -> u64 {
    let fbe = req.first_be & 0xf;
    if fbe == 0 {
        0
    } else {
        u64::from(fbe.trailing_zeros())
    }
}

/// What the previous TLP step got, for `same_pa_as_previous`: the first byte's address of
/// a translated request, or the entry of a Translation Completion that grants access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Previous {
    Pa(u64),
    Entry(AtsEntry),
}

/// A request in one short line: `MRd rid 00:03.0 pasid 5 0x1000 len 2` (the byte address
/// of the first byte and the byte count).
pub fn short_request(req: &MemRequest) -> String {
    let mut s = format!(
        "{} rid {}",
        if req.is_write { "MWr" } else { "MRd" },
        Bdf(req.requester_id)
    );
    if let Some(p) = req.pasid {
        s += &format!(" pasid {:#x}", p.pasid);
        if p.pmr {
            s += " pmr";
        }
        if p.er {
            s += " er";
        }
    }
    s += &format!(
        " {:#x} len {}",
        req.addr + first_byte_offset(req),
        if req.first_be & 0xf == 0 && req.length_dw == 1 {
            0
        } else {
            req.byte_len()
        }
    );
    s
}

/// An outcome in words, translated addresses as the address of the first byte.
pub fn short_outcome(outcome: &Outcome, recorded: bool, off: u64) -> String {
    match outcome {
        Outcome::Translated(pa) => format!("translated to {:#x}", pa + off),
        Outcome::Fault(r) => format!(
            "fault {:#04x} {}",
            r.code(),
            if recorded { "recorded" } else { "not recorded" }
        ),
        Outcome::Untranslated => "forwarded untranslated".into(),
        Outcome::Malformed => "rejected as malformed".into(),
        Outcome::Ats(e) => format!("translation completion {e}"),
    }
}

impl Runner {
    /// A `tlp` step.
    pub(super) fn tlp(&mut self, t: &Tlp, at: &[Seg]) -> Result<()> {
        let req = self.request(t)?;
        let words = tlp::encode(&req).map_err(|e| anyhow!("encoding {req}: {e}"))?;
        self.send(words, &req, false, t.expect.as_ref().map(|c| &c.0), at)
            .map(|_| ())
    }

    /// A `raw_tlp` step: the words exactly as written. A malformed request (per the
    /// contract: an unknown prefix, two PASID prefixes, AT=11b, byte enables PCIe forbids,
    /// 4 KiB crossing, a 4DW header below 4 GiB) is judged by the TLP codec at both levels
    /// (UR for a read, dropped write, nothing recorded, whatever the tables say); a
    /// well-formed one exactly like a `tlp` step.
    pub(super) fn raw_tlp(&mut self, t: &RawTlp, at: &[Seg]) -> Result<()> {
        let words = t.words();
        let (req, malformed) = match tlp::decode_lenient(&words) {
            Ok((Decoded::Mem(req), m)) => (req, m.is_some()),
            Ok((Decoded::Cpl(_), _)) => {
                return Err(input(format!(
                    "{words}: a completion, not a memory request: nothing judges it"
                )))
            }
            Err(e) => {
                return Err(input(format!(
                    "{words}: the TLP cannot be decoded ({e}): nothing judges it"
                )))
            }
        };
        self.send(words, &req, malformed, t.expect.as_ref().map(|c| &c.0), at)
            .map(|_| ())
    }

    /// Sends `words` (the request `req`) and judges it; `malformed`: the codec judges.
    /// Returns what the DUT did.
    pub(super) fn send(
        &mut self,
        words: TlpWords,
        req: &MemRequest,
        malformed: bool,
        pin: Option<&Expect>,
        at: &[Seg],
    ) -> Result<Outcome> {
        let greq = golden_request(req);
        let hw = self.hw;
        let tainted = self.tainted;
        let mut oracle_set = None;
        let (mut x, recorded) = match &mut self.sys {
            _ if malformed => (Allowed::codec(&words)?, false),
            Sys::Kernel(k) if !k.windows().is_empty() => {
                if tainted {
                    return Err(input(
                        "a TLP inside an invalidation window after hardware-level changes has \
                         no judge (complete the flush with iotlb_sync first)",
                    ));
                }
                self.rep.in_window += 1;
                let allowed = oracle::allowed(k.as_ref(), &greq);
                oracle_set = Some(allowed.clone());
                (Allowed::oracle(req, &allowed)?, true)
            }
            sys => {
                let env = match sys {
                    Sys::Kernel(k) => &mut k.ops_mut().hw_mut().env,
                    Sys::Bare(e) => e,
                };
                let mem = &env.mem.as_ref().context("no memory agent")?.mem;
                let walk = golden::translate(&hw, mem, &greq);
                (Allowed::golden(req, &walk)?, walk.record)
            }
        };
        x.words = words;
        let env = self.env();
        let mut traffic = Traffic::of_env(env);
        let got = stream::run(env, vec![x], &mut traffic, &mut RecordReader::new());
        let outcome = match got {
            Ok(r) => r
                .outcomes
                .first()
                .copied()
                .ok_or_else(|| anyhow!("internal: no outcome for {req}"))?,
            Err(e) => {
                self.note(at, format!("{} -> the DUT disagreed", short_request(req)));
                return Err(anyhow!("{e}"));
            }
        };
        let recorded = match outcome {
            Outcome::Fault(_) => recorded,
            _ => false,
        };
        if !malformed {
            if let (Sys::Kernel(k), false) = (&self.sys, tainted) {
                let a = oracle_set.unwrap_or_else(|| oracle::allowed(k.as_ref(), &greq));
                let checked = a.check(&outcome);
                oracle_set = Some(a);
                if let Err(m) = checked {
                    self.note(at, self.line(req, &outcome, recorded));
                    return Err(anyhow!("request: {req}\n  {m}"));
                }
            }
        }
        self.judged(pin, req, &outcome, recorded, oracle_set.as_ref(), at)?;
        Ok(outcome)
    }

    fn line(&self, req: &MemRequest, outcome: &Outcome, recorded: bool) -> String {
        format!(
            "{} -> {}",
            short_request(req),
            short_outcome(outcome, recorded, first_byte_offset(req))
        )
    }

    /// Records a line of the verbose log for the step at `at`.
    pub(super) fn note(&mut self, at: &[Seg], text: String) {
        let pos = self.position(at);
        self.rep.log.push(format!(
            "step {} ({}) {pos}: {text}",
            self.step_no, self.keyword
        ));
    }

    /// Counts a judged TLP and checks its pinned expectation; `allowed` is the oracle's set
    /// when the oracle judged it (pinned alternatives must be in it).
    pub(super) fn judged(
        &mut self,
        pin: Option<&Expect>,
        req: &MemRequest,
        outcome: &Outcome,
        recorded: bool,
        allowed: Option<&oracle::AllowedSet>,
        at: &[Seg],
    ) -> Result<()> {
        let line = self.line(req, outcome, recorded);
        self.note(at, line);
        self.rep.tlps += 1;
        match outcome {
            Outcome::Translated(_) | Outcome::Ats(_) => self.rep.translated += 1,
            Outcome::Fault(r) => {
                self.rep.faults.insert(r.code());
            }
            _ => {}
        }
        let off = first_byte_offset(req);
        let prev = self.previous;
        self.previous = match outcome {
            Outcome::Translated(pa) => Some(Previous::Pa(pa + off)),
            Outcome::Ats(e) if e.r || e.w => Some(Previous::Entry(*e)),
            _ => None,
        };
        if let Some(x) = pin {
            if let (Some(alts), Some(allowed)) = (&x.any_of, allowed) {
                for Checked(a) in alts {
                    if !admits(a, allowed, off, prev) {
                        return Err(input(format!(
                            "request: {req}\n  `any_of` pins {}, which the oracle forbids \
                             (it allows {allowed}): the vector is wrong",
                            describe_expect(a)
                        )));
                    }
                }
            }
            pinned(x, outcome, recorded, off, prev)
                .map_err(|e| anyhow!("request: {req}\n  {e}"))?;
        }
        Ok(())
    }
}

/// Whether the oracle's `allowed` set holds an outcome `x` accepts.
fn admits(x: &Expect, allowed: &oracle::AllowedSet, off: u64, prev: Option<Previous>) -> bool {
    allowed
        .iter()
        .any(|o| pinned(x, o, x.recorded.unwrap_or(true), off, prev).is_ok())
}

/// Checks the pinned `x` against the outcome; `off` is the first byte's offset in the
/// header's DW (`pa:` is the address of the first byte), `prev` what the previous TLP got.
fn pinned(
    x: &Expect,
    got: &Outcome,
    recorded: bool,
    off: u64,
    prev: Option<Previous>,
) -> Result<()> {
    let shown = match got {
        Outcome::Translated(pa) => format!("Translated({:#x})", pa + off),
        o => o.to_string(),
    };
    if let Some(alts) = &x.any_of {
        ensure!(
            alts.iter()
                .any(|Checked(a)| pinned(a, got, recorded, off, prev).is_ok()),
            "pinned {}, the DUT did {shown}",
            describe_expect(x)
        );
        return Ok(());
    }
    let ok = match (x, got) {
        (Expect { pa: Some(p), .. }, Outcome::Translated(pa)) => {
            let first = pa + off;
            ensure!(
                first == p.0,
                "pinned pa {:#x}, the DUT translated the first byte to {first:#x}",
                p.0
            );
            true
        }
        (
            Expect {
                translated: Some(true),
                ..
            },
            Outcome::Translated(_),
        ) => true,
        (
            Expect {
                same_pa_as_previous: Some(true),
                ..
            },
            Outcome::Translated(pa),
        ) => {
            let Some(Previous::Pa(prev)) = prev else {
                anyhow::bail!("pinned same_pa_as_previous, but the previous TLP did not translate");
            };
            let first = pa + off;
            ensure!(
                first == prev,
                "pinned the previous TLP's pa {prev:#x}, the DUT translated to {first:#x}"
            );
            true
        }
        (
            Expect {
                fault: Some(f),
                recorded: r,
                ..
            },
            Outcome::Fault(got),
        ) => {
            ensure!(*got == f.0, "pinned fault {}, the DUT faulted {got}", f.0);
            if let Some(r) = r {
                ensure!(
                    *r == recorded,
                    "pinned fault {} {}, the DUT {}",
                    f.0,
                    if *r { "recorded" } else { "not recorded" },
                    if recorded {
                        "recorded it"
                    } else {
                        "did not record it"
                    }
                );
            }
            true
        }
        (
            Expect {
                untranslated: Some(true),
                ..
            },
            Outcome::Untranslated,
        ) => true,
        (
            Expect {
                malformed: Some(true),
                ..
            },
            Outcome::Malformed,
        ) => true,
        (Expect { pa: Some(p), .. }, Outcome::Ats(e)) if e.r || e.w => {
            ensure!(
                e.addr == p.0,
                "pinned pa {:#x}, the Translation Completion names {e}",
                p.0
            );
            true
        }
        (
            Expect {
                translated: Some(true),
                ..
            },
            Outcome::Ats(e),
        ) => e.r || e.w,
        (
            Expect {
                same_pa_as_previous: Some(true),
                ..
            },
            Outcome::Ats(e),
        ) if e.r || e.w => {
            let Some(Previous::Entry(prev)) = prev else {
                anyhow::bail!(
                    "pinned same_pa_as_previous, but the previous TLP got no Translation \
                     Completion that grants access"
                );
            };
            ensure!(
                *e == prev,
                "pinned the previous TLP's Translation Completion {prev}, the DUT answered {e}"
            );
            true
        }
        (
            Expect {
                no_access: Some(true),
                ..
            },
            Outcome::Ats(e),
        ) => !e.r && !e.w,
        _ => false,
    };
    ensure!(ok, "pinned {}, the DUT did {shown}", describe_expect(x));
    Ok(())
}

pub(super) fn describe_expect(x: &Expect) -> String {
    if let Some(alts) = &x.any_of {
        let v: Vec<String> = alts.iter().map(|Checked(a)| describe_expect(a)).collect();
        format!("any of [{}]", v.join(", "))
    } else if let Some(p) = x.pa {
        format!("pa {:#x}", p.0)
    } else if let Some(f) = x.fault {
        format!("fault {}", f.0)
    } else if x.translated.is_some() {
        "a translation".into()
    } else if x.same_pa_as_previous.is_some() {
        "the previous TLP's translation".into()
    } else if x.untranslated.is_some() {
        "untranslated forwarding".into()
    } else if x.no_access.is_some() {
        "a Translation Completion with R = W = 0".into()
    } else {
        "a malformed-request rejection".into()
    }
}
