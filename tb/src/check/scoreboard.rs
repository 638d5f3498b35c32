//! The streaming scoreboard: every TLP accepted by the unit is an [`Expect`] (its allowed
//! answers), every TLP that leaves on tx or cpl is paired with the request behind it and
//! checked against that request's answers, and fault records are checked in order.
//!
//! - **Pairing.** An egress TLP is matched by identity (Requester ID and 10-bit tag, which
//!   every answer carries) to the oldest open request with that identity whose answers
//!   include it. One with no open request behind it fails at once (a duplicate, an answer to
//!   a request that must produce nothing, or a TLP from nowhere).
//! - **Ordering.** Not one global order: the PCIe rules of docs/contract.md section 4
//!   ([`crate::check::order`]). When B leaves on tx while an earlier A that may still reach
//!   tx is open and B may not pass A, A is marked; if A later leaves on tx, that is a
//!   violation. If A is dropped or answered on cpl it imposes nothing (rule 3).
//! - **Drops.** A request whose every answer is "nothing leaves" is resolved at once; one
//!   that may leave or be dropped (the oracle allows a translation or a faulting write) is
//!   resolved as dropped when the stream settles ([`Scoreboard::settle`]).
//! - **Fault records.** Requests that may write a record are counted until their records
//!   are checked; the driver drains the unit's records in FRCD ring order before eight
//!   could be pending and hands them to [`Scoreboard::check_records`], which checks them in
//!   request order against each request's allowed records.
//! - **Watchdog.** A request that must leave the unit and has not within [`WATCHDOG`]
//!   cycles of its acceptance fails.

use std::collections::VecDeque;
use std::fmt;

use iommu_model::fault::FaultRecord;
use iommu_model::golden::Outcome;

use crate::check::expect::{key, Expect};
use crate::check::order::{self, Class};
use crate::env::tlp_agent::Egress;

/// Cycles between a request's acceptance and its answer before the watchdog fires.
pub const WATCHDOG: u64 = 5_000;

/// A failed check: which request (its index in the stream, in acceptance order) and what
/// the judge expected of it, when one request is to blame.
#[derive(Debug)]
pub struct CheckError {
    pub request: Option<usize>,
    pub expected: Option<Outcome>,
    pub message: String,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CheckError {}

impl CheckError {
    pub fn other(e: impl fmt::Display) -> Self {
        Self {
            request: None,
            expected: None,
            message: e.to_string(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    /// Resolved; `cand` holds the answers still possible (the record decides among them).
    Resolved,
}

#[derive(Debug)]
struct Slot {
    exp: Expect,
    accepted_at: u64,
    state: State,
    /// Bit i: answer i is still possible.
    cand: u32,
    got: Option<(u64, Egress)>,
    /// A later request that left on tx while this one was open and may not pass it.
    passed_by: Option<usize>,
    chosen: Option<usize>,
    /// Some answer leaves nothing.
    may_drop: bool,
    /// Some remaining answer writes a record, and its record has not been checked.
    record_open: bool,
}

impl Slot {
    fn answers(&self) -> impl Iterator<Item = (usize, &crate::check::expect::Answer)> {
        self.exp
            .answers
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.cand >> i & 1 == 1)
    }
    /// The candidate answers that write no fault record, as a mask of answer indices.
    fn silent(&self) -> u32 {
        self.answers()
            .filter(|(_, a)| a.record.is_none())
            .fold(0u32, |m, (i, _)| m | 1 << i)
    }
    /// What left the unit for this request, for a failure message.
    fn got_text(&self) -> String {
        self.got
            .map_or("nothing left".to_owned(), |(_, e)| e.to_string())
    }
    fn can_tx(&self) -> bool {
        self.answers()
            .any(|(_, a)| matches!(a.egress, Some(Egress::Tx(_))))
    }
}

/// Totals of a checked stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub sent: u64,
    pub translated: u64,
    pub faults: u64,
    pub dropped: u64,
}

/// What a finished stream's requests got.
#[derive(Clone, Debug, Default)]
pub struct Finished {
    /// The answer of each request, in acceptance order.
    pub outcomes: Vec<Outcome>,
    /// What left the unit for each.
    pub egress: Vec<Option<Egress>>,
    pub totals: Totals,
}

/// The scoreboard of one stream of requests (see the module documentation).
#[derive(Debug, Default)]
pub struct Scoreboard {
    slots: Vec<Slot>,
    /// Unresolved requests, in acceptance order.
    open: Vec<usize>,
    /// Open requests that must leave the unit (no drop among their answers).
    mandatory: usize,
    /// Requests that may record a fault whose records have not been checked, by index, in
    /// acceptance order.
    record_due: VecDeque<usize>,
    /// Those of `record_due` that may still write a record.
    record_live: usize,
}

impl Scoreboard {
    pub fn new() -> Self {
        Self::default()
    }

    /// Open requests that must still leave the unit.
    pub fn mandatory_open(&self) -> usize {
        self.mandatory
    }

    /// Requests whose fault records are not checked yet (at most as many as the unit has fault
    /// recording registers, [`crate::check::records::RecordReader::slots`], may be in
    /// flight, or the unit's records could overflow).
    pub fn records_due(&self) -> usize {
        self.record_live
    }

    fn fail(&self, id: usize, message: String) -> CheckError {
        CheckError {
            request: Some(id),
            expected: self.slots.get(id).and_then(|s| s.exp.single()),
            message,
        }
    }

    /// The request, what its judge said and what it allowed.
    fn describe(&self, id: usize) -> String {
        let s = &self.slots[id];
        format!(
            "request #{id}: {}\n  {}\n  allowed:       {}",
            s.exp.describe(),
            s.exp.judged_by(),
            s.exp.allowed()
        )
    }

    /// The unit accepted the next TLP at cycle `now`; returns its index.
    pub fn accept(&mut self, now: u64, exp: Expect) -> usize {
        let id = self.slots.len();
        let n = exp.answers.len();
        let may_record = exp.answers.iter().any(|a| a.record.is_some());
        let may_drop = exp.answers.iter().any(|a| a.egress.is_none());
        let only_drop = exp.answers.iter().all(|a| a.egress.is_none());
        self.slots.push(Slot {
            exp,
            accepted_at: now,
            state: if only_drop {
                State::Resolved
            } else {
                State::Open
            },
            cand: if n >= 32 { u32::MAX } else { (1 << n) - 1 },
            got: None,
            passed_by: None,
            chosen: None,
            may_drop,
            record_open: may_record,
        });
        if may_record {
            self.record_due.push_back(id);
            self.record_live += 1;
        }
        if !only_drop {
            self.open.push(id);
            if !may_drop {
                self.mandatory += 1;
            }
        }
        id
    }

    /// A TLP left the unit at cycle `now`.
    pub fn egress(&mut self, now: u64, e: Egress) -> Result<(), CheckError> {
        let k = key(&e);
        let mut same_key = None;
        let mut hit = None;
        for (pos, &id) in self.open.iter().enumerate() {
            let s = &self.slots[id];
            if s.exp.key != k {
                continue;
            }
            same_key.get_or_insert(id);
            let mask = s
                .answers()
                .filter(|(_, a)| a.matches(&e))
                .fold(0u32, |m, (i, _)| m | 1 << i);
            if mask != 0 {
                hit = Some((pos, id, mask));
                break;
            }
        }
        let Some((pos, id, mask)) = hit else {
            return Err(self.unmatched(now, e, same_key));
        };
        if let Egress::Tx(_) = e {
            let b = self.slots[id].exp.attrs;
            if b.class != Class::Other {
                for &a in &self.open[..pos] {
                    let earlier = &self.slots[a];
                    if !order::may_pass(&b, &earlier.exp.attrs) && earlier.can_tx() {
                        self.slots[a].passed_by.get_or_insert(id);
                    }
                }
            }
            if let Some(b) = self.slots[id].passed_by {
                let (at, got) = self.slots[b].got.unwrap_or((now, e));
                return Err(self.fail(
                    id,
                    format!(
                        "cycle {now}: ordering violation: request #{b} left on tx at cycle {at} \
                         before the earlier request #{id}, and may not pass it: {}\n  {}\n  \
                         request #{b}: {}\n  it left as: {got}\n  #{id} left as: {e}",
                        order::rule_broken(&self.slots[b].exp.attrs),
                        self.describe(id),
                        self.slots[b].exp.describe(),
                    ),
                ));
            }
        }
        self.open.remove(pos);
        let s = &mut self.slots[id];
        if !s.may_drop {
            self.mandatory -= 1;
        }
        s.state = State::Resolved;
        s.cand = mask;
        s.got = Some((now, e));
        if s.record_open && s.answers().all(|(_, a)| a.record.is_none()) {
            s.record_open = false;
            self.record_live -= 1;
        }
        Ok(())
    }

    fn unmatched(&self, now: u64, e: Egress, same_key: Option<usize>) -> CheckError {
        if let Some(id) = same_key {
            return self.fail(
                id,
                format!(
                    "cycle {now}: wrong answer\n  {}\n  DUT did:       {e}",
                    self.describe(id)
                ),
            );
        }
        let k = key(&e);
        let earlier = self.slots.iter().rposition(|s| s.exp.key == k);
        match earlier {
            Some(id) => {
                let s = &self.slots[id];
                let what = match s.got {
                    Some((at, g)) => format!(
                        "a duplicate: request #{id} was already answered at cycle {at} with {g}"
                    ),
                    None => format!("request #{id} must produce nothing"),
                };
                self.fail(
                    id,
                    format!(
                        "cycle {now}: {e} left the unit with no open request behind it ({what})\n  {}\n  DUT did:       {e}",
                        self.describe(id)
                    ),
                )
            }
            None => CheckError::other(format!(
                "cycle {now}: {e} left the unit, but no request with its Requester ID and tag \
                 was ever sent ({} accepted so far)",
                self.slots.len()
            )),
        }
    }

    /// Contract section 4, rule 5: a wait descriptor that the queue fetched at cycle
    /// `fetched` and whose status write landed at cycle `landed` completed only after every
    /// request accepted by `fetched` had left the unit or been dropped. (Requests accepted
    /// after the fetch are not judged here: the unit takes none while the wait drains, and
    /// may take new ones once it has drained, before the status write.)
    pub fn check_wait(&self, fetched: u64, landed: u64) -> Result<(), CheckError> {
        for (id, s) in self.slots.iter().enumerate() {
            if s.accepted_at > fetched {
                continue;
            }
            if let Some((at, e)) = s.got {
                if at > landed {
                    return Err(self.fail(
                        id,
                        format!(
                            "cycle {at}: request #{id}, accepted at cycle {} (the queue fetched \
                             the wait descriptor at cycle {fetched}), left after the wait's \
                             status write at cycle {landed}: a wait completes only after every \
                             translation begun before it has left (contract section 4, rule \
                             5)\n  {}\n  it left as: {e}",
                            s.accepted_at,
                            self.describe(id)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Fails if a request that must leave the unit has not within [`WATCHDOG`] cycles.
    pub fn watchdog(&self, now: u64) -> Result<(), CheckError> {
        if let Some(&id) = self.open.iter().find(|&&id| !self.slots[id].may_drop) {
            let s = &self.slots[id];
            if now.saturating_sub(s.accepted_at) > WATCHDOG {
                return Err(self.fail(
                    id,
                    format!(
                        "watchdog: nothing left the unit for request #{id} {WATCHDOG} cycles \
                         after it was accepted (cycle {}; lost?)\n  {}",
                        s.accepted_at,
                        self.describe(id)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The unit has gone quiet: every open request has been dropped.
    pub fn settle(&mut self, now: u64) -> Result<(), CheckError> {
        for id in std::mem::take(&mut self.open) {
            let s = &mut self.slots[id];
            let drops = s
                .answers()
                .filter(|(_, a)| a.egress.is_none())
                .fold(0u32, |m, (i, _)| m | 1 << i);
            if drops == 0 {
                return Err(self.fail(
                    id,
                    format!(
                        "cycle {now}: the unit went quiet, but nothing left it for request #{id} \
                         (lost)\n  {}\n  DUT did:       nothing",
                        self.describe(id)
                    ),
                ));
            }
            s.cand = drops;
            s.state = State::Resolved;
        }
        self.mandatory = 0;
        Ok(())
    }

    /// The unit's next fault record (in the order it wrote them): it must be the record of
    /// the oldest request that may still write one; requests before it that may also write
    /// none are taken to have written none.
    pub fn record(&mut self, r: &FaultRecord) -> Result<(), CheckError> {
        while let Some(&id) = self.record_due.front() {
            let s = &mut self.slots[id];
            if !s.record_open {
                self.record_due.pop_front();
                continue;
            }
            let hit = s
                .answers()
                .find(|(_, a)| a.record.as_ref() == Some(r))
                .map(|(i, a)| (i, a.egress.is_none()));
            if let Some((i, dropped)) = hit {
                s.cand = 1 << i;
                s.chosen = Some(i);
                s.record_open = false;
                self.record_live -= 1;
                self.record_due.pop_front();
                if s.state == State::Open && dropped {
                    // Its record says it faulted, and a faulting write leaves nothing.
                    s.state = State::Resolved;
                    if let Some(pos) = self.open.iter().position(|&o| o == id) {
                        self.open.remove(pos);
                    }
                }
                return Ok(());
            }
            let silent = s.silent();
            if silent == 0 {
                let got = s.got_text();
                return Err(self.fail(
                    id,
                    format!(
                        "fault records: request #{id} must write a record, but the unit's next record (in FRCD ring order) is {r}\n  {}\n  DUT did:       {got}",
                        self.describe(id),
                    ),
                ));
            }
            // A later request's record: this one wrote none.
            s.cand = silent;
            s.record_open = false;
            self.record_live -= 1;
            self.record_due.pop_front();
        }
        Err(CheckError::other(format!(
            "fault records: the unit wrote {r}, which no request explains (a spurious or \
             duplicated record, or one out of order)"
        )))
    }

    /// Every record the unit wrote has been handed to [`Scoreboard::record`] and every
    /// request is resolved: the requests still waiting for a record must be allowed none.
    pub fn records_done(&mut self) -> Result<(), CheckError> {
        while let Some(id) = self.record_due.pop_front() {
            let s = &mut self.slots[id];
            if !s.record_open {
                continue;
            }
            if s.state != State::Resolved {
                return Err(self.fail(
                    id,
                    format!("internal: fault records checked while request #{id} is open"),
                ));
            }
            let silent = s.silent();
            if silent == 0 {
                let got = s.got_text();
                return Err(self.fail(
                    id,
                    format!(
                        "fault records: request #{id} must write a record, and the unit wrote \
                         none for it (missing)\n  {}\n  DUT did:       {got}",
                        self.describe(id),
                    ),
                ));
            }
            s.cand = silent;
            s.record_open = false;
            self.record_live -= 1;
        }
        Ok(())
    }

    /// [`Scoreboard::record`] for each of `got`, then [`Scoreboard::records_done`].
    pub fn check_records(&mut self, got: &[FaultRecord]) -> Result<(), CheckError> {
        for r in got {
            self.record(r).map_err(|mut e| {
                e.message = format!("{}\n  records drained: [{}]", e.message, show(got));
                e
            })?;
        }
        self.records_done()
    }

    /// The answer each request got, in acceptance order, once the stream has settled and
    /// its records are checked; also the totals.
    pub fn finish(&mut self) -> Result<Finished, CheckError> {
        if let Some(&id) = self.open.first() {
            return Err(self.fail(id, format!("internal: request #{id} is still open")));
        }
        let mut t = Totals {
            sent: self.slots.len() as u64,
            ..Totals::default()
        };
        let mut outcomes = Vec::with_capacity(self.slots.len());
        let mut egress = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let i = s
                .chosen
                .or_else(|| s.answers().next().map(|(i, _)| i))
                .unwrap_or(0);
            let a = &s.exp.answers[i];
            match a.outcome {
                Outcome::Translated(_) | Outcome::Untranslated | Outcome::Ats(_) => {
                    t.translated += 1
                }
                Outcome::Fault(_) => t.faults += 1,
                Outcome::Malformed => {}
            }
            if a.egress.is_none() {
                t.dropped += 1;
            }
            outcomes.push(a.outcome);
            egress.push(s.got.map(|(_, e)| e));
        }
        Ok(Finished {
            outcomes,
            egress,
            totals: t,
        })
    }
}

fn show(r: &[FaultRecord]) -> String {
    r.iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}
