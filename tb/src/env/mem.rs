//! Memory agent: answers the DUT's memory port (table walks, invalidation-queue fetches,
//! status writes) from an [`iommu_model::mem::Mem`]. The port is ID-tagged: the agent holds
//! up to [`MEM_IDS`] responses pending, each with a random latency, and returns them in any
//! order (or in acceptance order with [`MemTiming::in_order`]). It puts random back-pressure
//! on `mem_req_ready`, and answers with a read error wherever the memory model has an error
//! range (or no RAM). Writes are applied with their byte strobes. Memory is read and written
//! when a request is accepted, so the access log is in acceptance order.
//!
//! A request whose ID is still pending breaks the port's protocol: the agent records it in
//! [`MemAgent::protocol_error`] (the first one), which [`crate::env::Env::check_assertions`]
//! reports, and serves the request anyway.

use iommu_model::mem::{Mem, PhysMem};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dut::{DutIn, DutOut};

/// Request IDs of the memory port (`MemIdBits` = 4 in `iommu_pkg`): the most responses
/// that can be pending.
pub const MEM_IDS: usize = 16;

/// Timing of the memory port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemTiming {
    /// Cycles from request acceptance to response, inclusive range, at least 1.
    pub min_latency: u32,
    pub max_latency: u32,
    /// Percentage of cycles `mem_req_ready` is high while fewer than [`MEM_IDS`] responses
    /// are pending.
    pub ready_pct: u32,
    /// Responses in acceptance order: the oldest pending response is presented once it is
    /// due, and younger ones wait behind it. Otherwise (the default) one of the due
    /// responses, chosen at random, is presented each cycle.
    pub in_order: bool,
}

impl Default for MemTiming {
    fn default() -> Self {
        Self {
            min_latency: 1,
            max_latency: 1,
            ready_pct: 100,
            in_order: false,
        }
    }
}

/// One access the DUT made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemAccess {
    pub write: bool,
    pub addr: u64,
    pub data: u64,
    pub error: bool,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    id: u8,
    rdata: u64,
    error: bool,
    /// Cycles until it may be presented (0: due).
    due: u32,
}

#[derive(Debug)]
pub struct MemAgent {
    pub mem: Mem,
    pub timing: MemTiming,
    rng: ChaCha8Rng,
    /// Responses not yet presented, in acceptance order.
    pending: Vec<Pending>,
    /// The index in `pending` of the response `drive` presented this cycle.
    presented: Option<usize>,
    /// Every access, in acceptance order (cleared by the user when it has looked), while
    /// `logging`.
    pub log: Vec<MemAccess>,
    /// Whether accesses are appended to `log` (on by default; long runs that never look
    /// turn it off so the log does not grow without bound).
    pub logging: bool,
    /// The first protocol violation of the DUT seen on the port (a request whose ID still
    /// has a response pending).
    pub protocol_error: Option<String>,
    /// An address (8-byte aligned) whose first read is timed: `watched_at` is set to the
    /// cycle of the first read request accepted for it (e.g. the fetch of a wait
    /// descriptor).
    pub watch: Option<u64>,
    pub watched_at: Option<u64>,
}

impl MemAgent {
    pub fn new(mem: Mem, timing: MemTiming, seed: u64) -> Self {
        Self {
            mem,
            timing,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x3e3_0a9e),
            pending: Vec::with_capacity(MEM_IDS),
            presented: None,
            log: Vec::new(),
            logging: true,
            protocol_error: None,
            watch: None,
            watched_at: None,
        }
    }

    /// No response pending.
    #[inline]
    pub fn idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// Responses pending.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The IDs of the responses pending, in acceptance order.
    pub fn pending_ids(&self) -> Vec<u8> {
        self.pending.iter().map(|p| p.id).collect()
    }

    /// The response to present this cycle: the oldest one if it is due (in order), else one
    /// of the due ones at random.
    fn choose(&mut self) -> Option<usize> {
        if self.timing.in_order {
            return self.pending.first().filter(|p| p.due == 0).map(|_| 0);
        }
        let due = self.pending.iter().filter(|p| p.due == 0).count();
        let nth = match due {
            0 => return None,
            1 => 0,
            n => self.rng.gen_range(0..n),
        };
        self.pending
            .iter()
            .enumerate()
            .filter(|(_, p)| p.due == 0)
            .nth(nth)
            .map(|(i, _)| i)
    }

    /// Sets this cycle's memory-port inputs.
    #[inline]
    pub fn drive(&mut self, inp: &mut DutIn) {
        self.presented = if self.pending.is_empty() {
            None
        } else {
            self.choose()
        };
        match self.presented.and_then(|i| self.pending.get(i)) {
            Some(p) => {
                inp.mem_rsp_valid = true;
                inp.mem_rsp_id = p.id;
                inp.mem_rsp_rdata = p.rdata;
                inp.mem_rsp_error = p.error;
            }
            None => {
                inp.mem_rsp_valid = false;
                inp.mem_rsp_id = 0;
                inp.mem_rsp_rdata = 0;
                inp.mem_rsp_error = false;
            }
        }
        inp.mem_req_ready = self.pending.len() < MEM_IDS
            && (self.timing.ready_pct >= 100 || self.rng.gen_range(0..100) < self.timing.ready_pct);
    }

    /// Observes the cycle that just ran (`cycle`: the DUT's cycle count after it, for
    /// messages): the response presented is consumed, the others come one cycle closer to
    /// due, and a request accepted is performed against memory and scheduled.
    #[inline]
    pub fn observe(&mut self, cycle: u64, inp: &DutIn, out: &DutOut) {
        if let Some(i) = self.presented.take() {
            if inp.mem_rsp_valid && i < self.pending.len() {
                self.pending.remove(i);
            }
        }
        for p in &mut self.pending {
            p.due = p.due.saturating_sub(1);
        }
        if out.mem_req_valid && inp.mem_req_ready {
            self.accept(cycle, out);
        }
    }

    fn accept(&mut self, cycle: u64, out: &DutOut) {
        let addr = out.mem_req_addr & !7;
        let id = out.mem_req_id;
        if self.protocol_error.is_none() && self.pending.iter().any(|p| p.id == id) {
            self.protocol_error = Some(format!(
                "memory {} at {addr:#x} with ID {id} accepted at cycle {cycle} while the \
                 response to the previous request with ID {id} is still pending",
                if out.mem_req_write { "write" } else { "read" },
            ));
        }
        if !out.mem_req_write && self.watch == Some(addr) && self.watched_at.is_none() {
            self.watched_at = Some(cycle);
        }
        let (rdata, error, data) = if out.mem_req_write {
            let mask = (0..8).fold(0u64, |m, b| {
                if out.mem_req_wstrb >> b & 1 == 1 {
                    m | 0xff << (8 * b)
                } else {
                    m
                }
            });
            match self.mem.read64(addr) {
                Ok(old) => {
                    let new = (old & !mask) | (out.mem_req_wdata & mask);
                    let ok = self.mem.write64(addr, new).is_ok();
                    (0, !ok, new)
                }
                Err(_) => (0, true, out.mem_req_wdata),
            }
        } else {
            match self.mem.read64(addr) {
                Ok(v) => (v, false, v),
                Err(_) => (0, true, 0),
            }
        };
        if self.logging {
            self.log.push(MemAccess {
                write: out.mem_req_write,
                addr,
                data,
                error,
            });
        }
        let lat = if self.timing.max_latency > self.timing.min_latency {
            self.rng
                .gen_range(self.timing.min_latency..=self.timing.max_latency)
        } else {
            self.timing.min_latency
        };
        self.pending.push(Pending {
            id,
            rdata,
            error,
            due: lat.max(1) - 1,
        });
    }

    /// Number of reads the DUT made since the log was last cleared.
    pub fn reads(&self) -> usize {
        self.log.iter().filter(|a| !a.write).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Data of the word at `addr` in [`agent`]'s memory.
    fn word(addr: u64) -> u64 {
        0x1111_0000_0000 | addr
    }

    fn agent(timing: MemTiming) -> MemAgent {
        let mut mem = Mem::new();
        for i in 0..16u64 {
            let a = 0x1000 + 8 * i;
            assert!(mem.write64(a, word(a)).is_ok());
        }
        MemAgent::new(mem, timing, 7)
    }

    /// Offers `reqs` (ID, address), one read per cycle while the port is ready, and returns
    /// the responses (ID, data) in the order they were presented.
    fn serve(m: &mut MemAgent, reqs: &[(u8, u64)]) -> Vec<(u8, u64)> {
        let mut inp = DutIn::default();
        let mut next = 0;
        let mut got = Vec::new();
        for cycle in 0..1000 {
            m.drive(&mut inp);
            let mut out = DutOut::default();
            if let Some(&(id, addr)) = reqs.get(next) {
                out.mem_req_valid = true;
                out.mem_req_id = id;
                out.mem_req_addr = addr;
            }
            if inp.mem_rsp_valid {
                got.push((inp.mem_rsp_id, inp.mem_rsp_rdata));
            }
            if out.mem_req_valid && inp.mem_req_ready {
                next += 1;
            }
            m.observe(cycle, &inp, &out);
            if next == reqs.len() && m.idle() {
                break;
            }
        }
        got
    }

    fn sixteen() -> Vec<(u8, u64)> {
        (0..16u8)
            .map(|i| (i, 0x1000 + 8 * u64::from(15 - i)))
            .collect()
    }

    fn random_latency(in_order: bool) -> MemTiming {
        MemTiming {
            min_latency: 1,
            max_latency: 24,
            ready_pct: 100,
            in_order,
        }
    }

    #[test]
    fn responses_come_back_out_of_order_each_with_its_data() {
        let reqs = sixteen();
        let mut m = agent(random_latency(false));
        let got = serve(&mut m, &reqs);
        assert_eq!(got.len(), reqs.len(), "one response per request: {got:x?}");
        for &(id, data) in &got {
            let addr = reqs[usize::from(id)].1;
            assert_eq!(data, word(addr), "ID {id}'s data");
        }
        let ids: Vec<u8> = got.iter().map(|r| r.0).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..16).collect::<Vec<u8>>(), "each ID once");
        assert_ne!(ids, sorted, "answered in acceptance order");
        assert!(m.protocol_error.is_none());
        // The log is in acceptance order.
        let logged: Vec<u64> = m.log.iter().map(|a| a.addr).collect();
        let sent: Vec<u64> = reqs.iter().map(|r| r.1).collect();
        assert_eq!(logged, sent);
    }

    /// Drains the pending responses as the DUT would (it takes one per cycle) and returns
    /// their IDs in the order presented.
    fn drain(m: &mut MemAgent) -> Vec<u8> {
        let mut inp = DutIn::default();
        let mut ids = Vec::new();
        for cycle in 0..64 {
            m.drive(&mut inp);
            if inp.mem_rsp_valid {
                ids.push(inp.mem_rsp_id);
            }
            m.observe(cycle, &inp, &DutOut::default());
        }
        ids
    }

    #[test]
    fn of_several_due_one_is_picked_at_random_or_the_oldest_in_order() {
        for in_order in [false, true] {
            let mut m = agent(MemTiming {
                in_order,
                ..MemTiming::default()
            });
            m.pending = (0..8u8)
                .map(|id| Pending {
                    id,
                    rdata: u64::from(id),
                    error: false,
                    due: 0,
                })
                .collect();
            let ids = drain(&mut m);
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..8).collect::<Vec<u8>>(), "each once");
            assert_eq!(ids == sorted, in_order, "{ids:?}");
            assert!(m.idle());
        }
    }

    #[test]
    fn in_order_returns_in_acceptance_order() {
        let reqs = sixteen();
        let mut m = agent(random_latency(true));
        let got = serve(&mut m, &reqs);
        let ids: Vec<u8> = got.iter().map(|r| r.0).collect();
        assert_eq!(ids, (0..16).collect::<Vec<u8>>());
        for &(id, data) in &got {
            assert_eq!(data, word(reqs[usize::from(id)].1));
        }
    }

    #[test]
    fn ready_is_low_with_sixteen_pending() {
        let timing = MemTiming {
            min_latency: 100,
            max_latency: 100,
            ready_pct: 100,
            in_order: false,
        };
        let mut m = agent(timing);
        let mut inp = DutIn::default();
        for cycle in 0..16u8 {
            m.drive(&mut inp);
            assert!(inp.mem_req_ready, "cycle {cycle}");
            let out = DutOut {
                mem_req_valid: true,
                mem_req_id: cycle,
                mem_req_addr: 0x1000,
                ..DutOut::default()
            };
            m.observe(u64::from(cycle), &inp, &out);
        }
        assert_eq!(m.pending(), 16);
        m.drive(&mut inp);
        assert!(!inp.mem_req_ready, "a 17th request would be accepted");
    }

    #[test]
    fn duplicate_id_is_reported_not_panicked() {
        let timing = MemTiming {
            min_latency: 10,
            max_latency: 10,
            ready_pct: 100,
            in_order: false,
        };
        let mut m = agent(timing);
        let got = serve(&mut m, &[(3, 0x1000), (4, 0x1008), (3, 0x1010)]);
        assert_eq!(got.len(), 3, "every request is still answered");
        let e = m.protocol_error.as_deref().unwrap_or("");
        assert!(
            e.contains("ID 3") && e.contains("0x1010") && e.contains("cycle 2"),
            "{e}"
        );
    }
}
