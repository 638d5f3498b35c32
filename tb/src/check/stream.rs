//! Drives a stream of TLPs through the DUT and judges it with the [`Scoreboard`]: TLPs are
//! offered back to back with random idle gaps and random back-pressure on tx and cpl, every
//! transfer is handed to the scoreboard the cycle it happens, and fault records are drained
//! in batches (before the unit could hold more unchecked than it has fault recording
//! registers, [`RecordReader::slots`]).
//!
//! No marker TLPs: the stream knows the unit is done when every request that must leave it
//! has, and the unit has then been quiet for [`SETTLE`] cycles (nothing offered on tx or
//! cpl, no memory request, no memory response outstanding). Requests still open then were
//! dropped.
//!
//! [`Collector`] is the same stream for traffic whose judge is known only later (requests
//! sent while an operation's invalidations execute): it logs every transfer, and
//! [`Collected::judge`] replays the log into a scoreboard. It also learns when each wait
//! descriptor was fetched and when its status write landed, and the judge checks that every
//! request accepted before the fetch left before the status write (contract section 4,
//! rule 5).

use anyhow::Result;
use iommu_model::fault::FaultRecord;
use iommu_model::golden::Outcome;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::check::expect::Expect;
use crate::check::records::RecordReader;
use crate::check::scoreboard::{CheckError, Finished, Scoreboard, Totals, WATCHDOG};
use crate::env::tlp_agent::Egress;
use crate::env::Env;
use crate::tlp::TlpWords;
use iommu_model::regs;

/// Quiet cycles after which the unit is taken to be done with everything accepted.
pub const SETTLE: u32 = 16;

/// Idle gaps on ingress and back-pressure on tx and cpl.
#[derive(Clone, Debug)]
pub struct Traffic {
    pub gap_pct: u32,
    pub tx_ready_pct: u32,
    pub cpl_ready_pct: u32,
    rng: ChaCha8Rng,
}

impl Traffic {
    pub fn new(seed: u64, gap_pct: u32, tx_ready_pct: u32, cpl_ready_pct: u32) -> Self {
        Self {
            gap_pct,
            tx_ready_pct,
            cpl_ready_pct,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5c0e_b0a2),
        }
    }

    /// The shape the environment's TLP agent is set to, seeded from the DUT's seed and the
    /// current cycle.
    pub fn of_env(env: &Env) -> Self {
        Self::new(
            env.dut.seed() ^ env.dut.cycle().rotate_left(17),
            env.tlp.gap_pct,
            env.tlp.tx_ready_pct,
            env.tlp.cpl_ready_pct,
        )
    }

    #[inline]
    fn pct(&mut self, p: u32) -> bool {
        p >= 100 || (p > 0 && self.rng.gen_range(0..100) < p)
    }

    #[inline]
    fn gap(&mut self) -> bool {
        self.gap_pct > 0 && self.pct(self.gap_pct)
    }
}

/// Where a stream's cycles went, each cycle counted once, in this order of precedence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamTime {
    /// Nothing offered: as many fault records may be unread as the unit can hold
    /// ([`RecordReader::slots`]).
    pub held: u64,
    /// A TLP offered and taken.
    pub accepted: u64,
    /// A TLP offered and refused (ingress ready low).
    pub refused: u64,
    /// Nothing offered: a random idle gap.
    pub gap: u64,
    /// Everything sent; answers or records still awaited.
    pub waiting: u64,
    /// Everything answered; waiting for the unit to stay quiet ([`SETTLE`] cycles).
    pub settling: u64,
    /// Draining the fault records at the end, egress held off.
    pub draining: u64,
}

impl StreamTime {
    pub fn total(&self) -> u64 {
        self.held
            + self.accepted
            + self.refused
            + self.gap
            + self.waiting
            + self.settling
            + self.draining
    }
}

impl std::ops::AddAssign for StreamTime {
    fn add_assign(&mut self, o: Self) {
        self.held += o.held;
        self.accepted += o.accepted;
        self.refused += o.refused;
        self.gap += o.gap;
        self.waiting += o.waiting;
        self.settling += o.settling;
        self.draining += o.draining;
    }
}

impl std::fmt::Display for StreamTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.total().max(1) as f64;
        let p = |n: u64| 100.0 * n as f64 / t;
        write!(
            f,
            "{:.1}% a TLP accepted, {:.1}% a TLP refused (ingress not ready), {:.1}% idle \
             gaps, {:.1}% held for unread fault records, {:.1}% waiting for answers, {:.1}% \
             settling, {:.1}% draining records",
            p(self.accepted),
            p(self.refused),
            p(self.gap),
            p(self.held),
            p(self.waiting),
            p(self.settling),
            p(self.draining)
        )
    }
}

/// A judged stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamReport {
    pub totals: Totals,
    /// Cycles from the first cycle to the last transfer.
    pub cycles: u64,
    /// Every cycle the stream ran, by what it was doing.
    pub time: StreamTime,
    /// The answer of each request, in order.
    pub outcomes: Vec<Outcome>,
    /// What left the unit for each request.
    pub egress: Vec<Option<Egress>>,
    /// FNV hash of every transfer with its cycle (relative to the start).
    pub transcript: u64,
}

fn fnv(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x100_0000_01b3)
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

fn hash_egress(h: u64, cyc: u64, e: &Egress) -> u64 {
    let v = match *e {
        Egress::Tx(w) => u64::from(w[0]) ^ (u64::from(w[2]) << 32),
        Egress::Cpl(w) => u64::from(w[1]) ^ (u64::from(w[2]) << 32),
        Egress::CplD(w, d) => u64::from(w[1] ^ d[1]) ^ (u64::from(w[2] ^ d[0]) << 32),
    };
    fnv(fnv(h, cyc), v)
}

/// Presents `w` on the ingress port for the next cycle.
pub(crate) fn offer(env: &mut Env, w: &TlpWords) {
    env.inp.rx_valid = true;
    env.inp.rx_nprefix = w.prefix_count as u8;
    env.inp.rx_prefix = w.prefix;
    env.inp.rx_hdr = w.header;
}

/// Settling waits for the unit to go quiet: one that stays busy this long after every
/// request that must leave has left (egress offered, memory requested, or a memory response
/// due, with nothing left to answer) fails instead of hanging the test.
#[derive(Debug, Default)]
pub(crate) struct QuietWatch {
    since: Option<u64>,
}

impl QuietWatch {
    /// `waiting`: everything is answered and only the unit's quiet is awaited.
    pub(crate) fn check(&mut self, env: &Env, waiting: bool) -> Result<(), String> {
        if !waiting {
            self.since = None;
            return Ok(());
        }
        let now = env.dut.cycle();
        let since = *self.since.get_or_insert(now);
        if now - since <= WATCHDOG {
            return Ok(());
        }
        let o = &env.out;
        let mut what = Vec::new();
        if o.tx_valid {
            what.push("offers a TLP on tx");
        }
        if o.cpl_valid {
            what.push("offers a completion");
        }
        if o.mem_req_valid {
            what.push("requests memory");
        }
        if env.mem.as_ref().is_some_and(|m| !m.idle()) {
            what.push("has memory responses due");
        }
        Err(format!(
            "cycle {now}: the unit never goes quiet: every request was answered by cycle \
             {since}, and {WATCHDOG} cycles later it still {}",
            what.join(", ")
        ))
    }
}

/// Whether the cycle just run showed the unit busy.
#[inline]
pub(crate) fn busy(env: &Env) -> bool {
    let o = &env.out;
    o.tx_valid || o.cpl_valid || o.mem_req_valid || env.mem.as_ref().is_some_and(|m| !m.idle())
}

/// Drains the unit's records and checks them; egress is held off meanwhile so that nothing
/// leaves unseen.
fn drain_records(
    env: &mut Env,
    sb: &mut Scoreboard,
    records: &mut RecordReader,
) -> Result<(), CheckError> {
    env.inp.rx_valid = false;
    env.inp.tx_ready = false;
    env.inp.cpl_ready = false;
    let got = records
        .drain(env)
        .map_err(|e| CheckError::other(format!("{e:#}")))?;
    sb.check_records(&got)
}

/// Drains fault records while the stream runs, over the CSR bus (which is independent of
/// the TLP ports): one register access at a time, driven a cycle at a time. Once a
/// [`RecordReader`] drain has told where the next record goes, it polls that slot's F bit,
/// reads a record that has arrived, clears it and hands it to the scoreboard, so that
/// requests need not stop for the records to be read.
#[derive(Debug, Default)]
struct Poller {
    op: Option<CsrOp>,
    step: PollStep,
    slot: u32,
    hi: u64,
    rec: Option<FaultRecord>,
}

#[derive(Clone, Copy, Debug)]
struct CsrOp {
    write: bool,
    addr: u64,
    wdata: u64,
    /// The bus took it (valid and ready in one cycle); now waiting for the response.
    taken: bool,
    waited: u32,
}

#[derive(Clone, Copy, Debug, Default)]
enum PollStep {
    #[default]
    Hi,
    Lo,
    Clear,
}

impl CsrOp {
    fn read(addr: u64) -> Self {
        Self {
            write: false,
            addr,
            wdata: 0,
            taken: false,
            waited: 0,
        }
    }
}

impl Poller {
    fn idle(&self) -> bool {
        self.op.is_none()
    }

    /// Sets this cycle's CSR inputs, starting a poll when records are due.
    #[inline]
    fn drive(&mut self, env: &mut Env, records: &RecordReader, due: bool) {
        if self.op.is_none() && due {
            if let Some((base, _, slot)) = records.next() {
                self.slot = slot;
                self.step = PollStep::Hi;
                self.op = Some(CsrOp::read(base + 16 * u64::from(slot) + 8));
            }
        }
        match self.op {
            Some(op) if !op.taken => {
                env.inp.csr_valid = true;
                env.inp.csr_write = op.write;
                env.inp.csr_addr = op.addr as u16;
                env.inp.csr_size64 = true;
                env.inp.csr_wdata = op.wdata;
            }
            _ => env.inp.csr_valid = false,
        }
    }

    /// Looks at the cycle just run; returns a record once it has been read and cleared.
    #[inline]
    fn observe(
        &mut self,
        env: &Env,
        records: &mut RecordReader,
    ) -> Result<Option<FaultRecord>, CheckError> {
        let slot = self.slot;
        let Some(op) = &mut self.op else {
            return Ok(None);
        };
        let out = &env.out;
        op.waited += 1;
        if op.waited > crate::env::csr::CSR_TIMEOUT {
            return Err(CheckError::other(format!(
                "CSR {} at {:#05x}: no response within {} cycles",
                if op.write { "write" } else { "read" },
                op.addr,
                crate::env::csr::CSR_TIMEOUT
            )));
        }
        if !op.taken {
            op.taken = out.csr_ready;
            return Ok(None);
        }
        if !out.csr_rvalid {
            return Ok(None);
        }
        if out.csr_error {
            return Err(CheckError::other(format!(
                "CSR access at {:#05x} answered with an error",
                op.addr
            )));
        }
        let at = op.addr & !0xf;
        let data = out.csr_rdata;
        self.op = None;
        match self.step {
            PollStep::Hi => {
                if data & regs::frcd::QW1_F != 0 {
                    self.hi = data;
                    self.step = PollStep::Lo;
                    self.op = Some(CsrOp::read(at));
                }
            }
            PollStep::Lo => {
                let q = [data, self.hi];
                let stray = FaultRecord::stray_bits(q);
                if stray != [0, 0] {
                    return Err(CheckError::other(format!(
                        "fault recording register {slot} holds bits no record carries: QW0 {:#x}, \
                         QW1 {:#x} (record {q:x?})",
                        stray[0], stray[1]
                    )));
                }
                self.rec = FaultRecord::decode(q);
                self.step = PollStep::Clear;
                self.op = Some(CsrOp {
                    write: true,
                    wdata: regs::frcd::QW1_F,
                    ..CsrOp::read(at + 8)
                });
            }
            PollStep::Clear => {
                records.drained(slot);
                return Ok(self.rec.take());
            }
        }
        Ok(None)
    }
}

/// Sends every TLP of `items` as one stream and judges everything that leaves.
pub fn run(
    env: &mut Env,
    items: Vec<Expect>,
    traffic: &mut Traffic,
    records: &mut RecordReader,
) -> Result<StreamReport, CheckError> {
    let slots = records
        .slots(env)
        .map_err(|e| CheckError::other(format!("{e:#}")))?;
    let mut sb = Scoreboard::new();
    let n = items.len();
    let mut items = items.into_iter();
    let mut next: Option<Expect> = None;
    let mut sent = 0usize;
    let start = env.dut.cycle();
    let mut last = start;
    let mut quiet = 0u32;
    let mut transcript = FNV_START;
    let mut poller = Poller::default();
    let mut settling = QuietWatch::default();
    let mut time = StreamTime::default();
    loop {
        let hold = sb.records_due() >= slots;
        if next.is_none() && !hold {
            next = items.next();
        }
        let offered = match &next {
            Some(x) if !hold && !traffic.gap() => {
                offer(env, &x.words);
                true
            }
            _ => {
                env.inp.rx_valid = false;
                false
            }
        };
        let txp = traffic.tx_ready_pct;
        let cplp = traffic.cpl_ready_pct;
        env.inp.tx_ready = traffic.pct(txp);
        env.inp.cpl_ready = traffic.pct(cplp);
        poller.drive(env, records, sb.records_due() > 0);
        let out = env.tick();
        let now = env.dut.cycle();
        let spent = match () {
            _ if hold => &mut time.held,
            _ if offered && out.rx_ready => &mut time.accepted,
            _ if offered => &mut time.refused,
            _ if next.is_some() => &mut time.gap,
            _ if sb.mandatory_open() > 0 || !poller.idle() => &mut time.waiting,
            _ => &mut time.settling,
        };
        *spent += 1;
        if let Some(r) = poller.observe(env, records)? {
            sb.record(&r)?;
        }
        let mut active = busy(env);
        if offered && out.rx_ready {
            if let Some(x) = next.take() {
                sb.accept(now, x);
                sent += 1;
                active = true;
            }
        }
        if out.tx_valid && env.inp.tx_ready {
            let e = Egress::Tx(out.tx_hdr);
            transcript = hash_egress(transcript, now - start, &e);
            sb.egress(now, e)?;
            last = now;
        }
        if out.cpl_valid && env.inp.cpl_ready {
            let e = Egress::of_cpl(out.cpl_hdr, out.cpl_data);
            transcript = hash_egress(transcript, now - start, &e);
            sb.egress(now, e)?;
            last = now;
        }
        quiet = if active { 0 } else { quiet + 1 };
        let all_sent = sent == n;
        let answered = (all_sent || hold) && sb.mandatory_open() == 0 && poller.idle();
        settling
            .check(env, answered && quiet < SETTLE)
            .map_err(CheckError::other)?;
        if answered && quiet >= SETTLE {
            sb.settle(now)?;
            if all_sent || sb.records_due() > 0 {
                let from = env.dut.cycle();
                drain_records(env, &mut sb, records)?;
                time.draining += env.dut.cycle() - from;
            }
            if all_sent {
                break;
            }
            quiet = 0;
        }
        if now & 63 == 0 {
            sb.watchdog(now)?;
            env.check_assertions().map_err(CheckError::other)?;
        }
    }
    env.inp.rx_valid = false;
    env.inp.tx_ready = true;
    env.inp.cpl_ready = true;
    env.inp.csr_valid = false;
    env.check_assertions().map_err(CheckError::other)?;
    let Finished {
        outcomes,
        egress,
        totals,
    } = sb.finish()?;
    Ok(StreamReport {
        totals,
        cycles: last - start,
        time,
        outcomes,
        egress,
        transcript,
    })
}

/// One transfer seen by a [`Collector`].
#[derive(Clone, Copy, Debug)]
enum Event {
    /// The next TLP was accepted.
    Accept(u64),
    Egress(u64, Egress),
}

/// Traffic sent while something else drives the clock (the driver's wait for its
/// invalidations): [`Collector::step`] replaces one `env.tick()`. Between steps the ports
/// are left closed (no TLP offered, tx and cpl not ready), so cycles run by others (register
/// accesses) move nothing unseen. At most `slots` TLPs are sent ([`RecordReader::slots`]),
/// so the unit's records cannot overflow before [`Collector::finish`] drains them.
#[derive(Debug)]
pub struct Collector {
    pending: std::collections::VecDeque<TlpWords>,
    sent: Vec<TlpWords>,
    events: Vec<Event>,
    traffic: Traffic,
    /// The unit's fault recording registers: the most TLPs sent.
    slots: usize,
    /// Each completed wait: the cycle the queue fetched its descriptor, and the cycle its
    /// status write landed.
    waits: Vec<(u64, u64)>,
}

/// What a [`Collector`] saw, ready to be judged.
#[derive(Debug)]
pub struct Collected {
    /// The TLPs the unit accepted, in order.
    pub sent: Vec<TlpWords>,
    events: Vec<Event>,
    records: Vec<FaultRecord>,
    waits: Vec<(u64, u64)>,
}

impl Collector {
    /// `slots`: the unit's fault recording registers ([`RecordReader::slots`]).
    pub fn new(tlps: Vec<TlpWords>, traffic: Traffic, slots: usize) -> Self {
        Self {
            pending: tlps.into_iter().collect(),
            sent: Vec::new(),
            events: Vec::new(),
            traffic,
            slots,
            waits: Vec::new(),
        }
    }

    /// A wait descriptor fetched at cycle `fetched` wrote its status at cycle `landed`:
    /// every request accepted by then must have left before it (checked by
    /// [`Collected::judge`]).
    pub fn wait_completed(&mut self, fetched: u64, landed: u64) {
        self.waits.push((fetched, landed));
    }

    /// TLPs not sent yet.
    pub fn unsent(&self) -> usize {
        self.pending.len()
    }

    fn close(env: &mut Env) {
        env.inp.rx_valid = false;
        env.inp.tx_ready = false;
        env.inp.cpl_ready = false;
    }

    /// One clock cycle with this traffic.
    pub fn step(&mut self, env: &mut Env) {
        let can_send = self.sent.len() < self.slots;
        let offered = match self.pending.front() {
            Some(w) if can_send && !self.traffic.gap() => {
                offer(env, w);
                true
            }
            _ => {
                env.inp.rx_valid = false;
                false
            }
        };
        let txp = self.traffic.tx_ready_pct;
        let cplp = self.traffic.cpl_ready_pct;
        env.inp.tx_ready = self.traffic.pct(txp);
        env.inp.cpl_ready = self.traffic.pct(cplp);
        let out = env.tick();
        let now = env.dut.cycle();
        if offered && out.rx_ready {
            if let Some(w) = self.pending.pop_front() {
                self.sent.push(w);
                self.events.push(Event::Accept(now));
            }
        }
        if out.tx_valid && env.inp.tx_ready {
            self.events.push(Event::Egress(now, Egress::Tx(out.tx_hdr)));
        }
        if out.cpl_valid && env.inp.cpl_ready {
            self.events.push(Event::Egress(
                now,
                Egress::of_cpl(out.cpl_hdr, out.cpl_data),
            ));
        }
        Self::close(env);
    }

    /// Stops sending, runs until the unit has been quiet for [`SETTLE`] cycles (at most
    /// [`WATCHDOG`] cycles), and drains its fault records.
    pub fn finish(mut self, env: &mut Env, records: &mut RecordReader) -> Result<Collected> {
        self.pending.clear();
        let start = env.dut.cycle();
        let mut quiet = 0;
        while quiet < SETTLE && env.dut.cycle() - start < WATCHDOG {
            self.step(env);
            quiet = if busy(env) { 0 } else { quiet + 1 };
        }
        let records = if self.sent.is_empty() {
            Vec::new()
        } else {
            records.drain(env)?
        };
        env.inp.tx_ready = true;
        env.inp.cpl_ready = true;
        Ok(Collected {
            sent: self.sent,
            events: self.events,
            records,
            waits: self.waits,
        })
    }
}

impl Collected {
    /// Judges the log: `exps[i]` is what the i-th accepted TLP may do.
    pub fn judge(&self, exps: Vec<Expect>) -> Result<StreamReport, CheckError> {
        let mut sb = Scoreboard::new();
        let mut exps = exps.into_iter();
        let mut first = None;
        let mut last = 0;
        let mut transcript = FNV_START;
        for ev in &self.events {
            match *ev {
                Event::Accept(now) => {
                    first.get_or_insert(now);
                    let x = exps.next().ok_or_else(|| {
                        CheckError::other("internal: more TLPs accepted than expectations")
                    })?;
                    sb.watchdog(now)?;
                    sb.accept(now, x);
                }
                Event::Egress(now, e) => {
                    transcript = hash_egress(transcript, now, &e);
                    sb.watchdog(now)?;
                    sb.egress(now, e)?;
                    last = now;
                }
            }
        }
        sb.settle(last)?;
        for &(fetched, landed) in &self.waits {
            sb.check_wait(fetched, landed)?;
        }
        sb.check_records(&self.records)?;
        let Finished {
            outcomes,
            egress,
            totals,
        } = sb.finish()?;
        Ok(StreamReport {
            totals,
            cycles: last.saturating_sub(first.unwrap_or(last)),
            // Logged in the background of an operation: its cycles are the operation's.
            time: StreamTime::default(),
            outcomes,
            egress,
            transcript,
        })
    }
}
