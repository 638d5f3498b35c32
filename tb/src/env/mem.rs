//! Memory agent: answers the DUT's memory port (table walks, invalidation-queue fetches,
//! status writes) from an [`iommu_model::mem::Mem`], with a random latency per request,
//! random back-pressure on `mem_req_ready`, and read errors wherever the memory model has an
//! error range (or no RAM). Writes are applied with their byte strobes.

use iommu_model::mem::{Mem, PhysMem};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dut::{DutIn, DutOut};

/// Timing of the memory port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemTiming {
    /// Cycles from request acceptance to response, inclusive range, at least 1.
    pub min_latency: u32,
    pub max_latency: u32,
    /// Percentage of cycles `mem_req_ready` is high while the port is free.
    pub ready_pct: u32,
}

impl Default for MemTiming {
    fn default() -> Self {
        Self {
            min_latency: 1,
            max_latency: 1,
            ready_pct: 100,
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
    rdata: u64,
    error: bool,
    due: u32,
}

#[derive(Debug)]
pub struct MemAgent {
    pub mem: Mem,
    pub timing: MemTiming,
    rng: ChaCha8Rng,
    pending: Option<Pending>,
    /// Every access, in order (cleared by the user when it has looked), while `logging`.
    pub log: Vec<MemAccess>,
    /// Whether accesses are appended to `log` (on by default; long runs that never look
    /// turn it off so the log does not grow without bound).
    pub logging: bool,
}

impl MemAgent {
    pub fn new(mem: Mem, timing: MemTiming, seed: u64) -> Self {
        Self {
            mem,
            timing,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x3e3_0a9e),
            pending: None,
            log: Vec::new(),
            logging: true,
        }
    }

    /// No response outstanding.
    #[inline]
    pub fn idle(&self) -> bool {
        self.pending.is_none()
    }

    /// Sets this cycle's memory-port inputs.
    #[inline]
    pub fn drive(&mut self, inp: &mut DutIn) {
        match self.pending {
            Some(p) if p.due == 0 => {
                inp.mem_rsp_valid = true;
                inp.mem_rsp_rdata = p.rdata;
                inp.mem_rsp_error = p.error;
            }
            _ => {
                inp.mem_rsp_valid = false;
                inp.mem_rsp_rdata = 0;
                inp.mem_rsp_error = false;
            }
        }
        inp.mem_req_ready = self.pending.is_none()
            && (self.timing.ready_pct >= 100 || self.rng.gen_range(0..100) < self.timing.ready_pct);
    }

    /// Observes the cycle that just ran: a response presented is consumed, a request
    /// accepted is performed against memory and scheduled.
    #[inline]
    pub fn observe(&mut self, inp: &DutIn, out: &DutOut) {
        if inp.mem_rsp_valid {
            self.pending = None;
        } else if let Some(p) = &mut self.pending {
            p.due -= 1;
        }
        if out.mem_req_valid && inp.mem_req_ready {
            let addr = out.mem_req_addr & !7;
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
            self.pending = Some(Pending {
                rdata,
                error,
                due: lat.max(1) - 1,
            });
        }
    }

    /// Number of reads the DUT made since the log was last cleared.
    pub fn reads(&self) -> usize {
        self.log.iter().filter(|a| !a.write).count()
    }
}
