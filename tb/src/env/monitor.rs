//! Protocol monitors the environment runs every cycle: responses nobody asked for fail at
//! once, not when (or if) a later check happens to notice.
//!
//! - **CSR read data without an access.** The register file answers each accepted CSR
//!   access (`csr_valid && csr_ready` at an edge) with exactly one `csr_rvalid` in a later
//!   cycle. A `csr_rvalid` while no accepted access is unanswered is an error.
//! - **Memory traffic while the unit must be idle.** The unit reads memory only for a
//!   translation in flight (table walks) and for invalidation-queue work (descriptor
//!   fetches, wait status writes); fault records live in registers and are never written to
//!   memory. Whether the unit is idle cannot be told cheaply and soundly from the ports
//!   alone (a dropped posted write leaves no egress to count, and the queue's progress is
//!   only visible through IQH), so a flow that *knows* opens a window with
//!   [`Env::expect_idle`](super::Env::expect_idle): it claims that every TLP it sent has
//!   been answered (or dropped) and that the invalidation queue has nothing to do (IQH ==
//!   IQT and no wait outstanding, or the queue is disabled or stopped by FSTS.IQE). Any
//!   `mem_req_valid` inside the window is an error. The window closes by itself on every
//!   stimulus that may legitimately start memory traffic: a TLP accepted on ingress, or a
//!   CSR write to GCMD (TE/QIE/SRTP), IQT, IQA or FSTS (clearing IQE resumes the queue).
//!   CSR reads and writes to other registers leave it open.
//!
//! Both checks cost a few branches per cycle. Errors are recorded (the first few in full,
//! then counted) and reported by [`Env::check_assertions`](super::Env::check_assertions),
//! which the judge, the scoreboard, the vector runner and the test harness already call.

use iommu_model::regs;

use crate::dut::{DutIn, DutOut};

/// Errors kept in full; later ones are only counted.
const KEEP: usize = 8;

#[derive(Clone, Debug, Default)]
pub struct Monitor {
    /// Accepted CSR accesses not yet answered.
    csr_pending: u32,
    /// The cycle the expect-idle window was opened at, while it is open.
    idle_since: Option<u64>,
    errors: Vec<String>,
    dropped: usize,
}

impl Monitor {
    /// Checks one cycle: `inp` applied, `out` sampled before the edge at `cycle`.
    #[inline]
    pub fn observe(&mut self, cycle: u64, inp: &DutIn, out: &DutOut) {
        if !inp.rst_n {
            self.csr_pending = 0;
            self.idle_since = None;
            return;
        }
        // A response in this cycle answers an access accepted at an earlier edge.
        if out.csr_rvalid {
            if self.csr_pending == 0 {
                self.error(format!(
                    "cycle {cycle}: CSR response (rdata {:#x}, error {}) with no CSR access outstanding",
                    out.csr_rdata, out.csr_error
                ));
            } else {
                self.csr_pending -= 1;
            }
        }
        if let Some(since) = self.idle_since {
            if out.mem_req_valid {
                self.error(format!(
                    "cycle {cycle}: memory {} at {:#x} while the unit must be idle (expected since \
                     cycle {since}: every TLP answered, invalidation queue empty)",
                    if out.mem_req_write { "write" } else { "read" },
                    out.mem_req_addr
                ));
                // One report per window.
                self.idle_since = None;
            }
            // Stimulus accepted at this edge may start work from the next cycle on.
            if (inp.rx_valid && out.rx_ready)
                || (inp.csr_valid && out.csr_ready && inp.csr_write && starts_work(inp.csr_addr))
            {
                self.idle_since = None;
            }
        }
        if inp.csr_valid && out.csr_ready {
            self.csr_pending += 1;
        }
    }

    /// Opens the expect-idle window at `cycle` (see the module documentation).
    pub fn expect_idle(&mut self, cycle: u64) {
        self.idle_since = Some(cycle);
    }

    /// Closes the expect-idle window.
    pub fn end_idle(&mut self) {
        self.idle_since = None;
    }

    /// Whether the expect-idle window is open.
    pub fn idle_expected(&self) -> bool {
        self.idle_since.is_some()
    }

    fn error(&mut self, msg: String) {
        if self.errors.len() < KEEP {
            self.errors.push(msg);
        } else {
            self.dropped += 1;
        }
    }

    /// The errors recorded so far, as one message (None when there are none).
    pub fn report(&self) -> Option<String> {
        if self.errors.is_empty() {
            return None;
        }
        let mut s = self.errors.join("; ");
        if self.dropped > 0 {
            s.push_str(&format!("; and {} more", self.dropped));
        }
        Some(s)
    }
}

/// A CSR write to this offset may make the unit access memory: commands (TE and SRTP
/// change the walker's state; QIE starts the queue), the queue's tail and base, and FSTS
/// (clearing IQE resumes a stopped queue). Decided on the 8-byte slot, so 32- and 64-bit
/// accesses alike count.
#[inline]
fn starts_work(addr: u16) -> bool {
    let slot = u64::from(addr) & !7;
    slot == regs::GCMD & !7
        || slot == regs::IQT & !7
        || slot == regs::IQA & !7
        || slot == regs::FSTS & !7
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> DutIn {
        DutIn {
            rst_n: true,
            ..DutIn::default()
        }
    }

    #[test]
    fn unsolicited_csr_response_is_an_error() {
        let mut m = Monitor::default();
        let out = DutOut {
            csr_rvalid: true,
            ..DutOut::default()
        };
        m.observe(1, &live(), &out);
        assert!(m.report().is_some_and(|r| r.contains("no CSR access")));
    }

    #[test]
    fn answered_csr_access_is_fine_back_to_back() {
        let mut m = Monitor::default();
        let acc = DutIn {
            csr_valid: true,
            ..live()
        };
        let ready = DutOut {
            csr_ready: true,
            ..DutOut::default()
        };
        m.observe(1, &acc, &ready);
        // Next access accepted while the first is answered.
        m.observe(
            2,
            &acc,
            &DutOut {
                csr_rvalid: true,
                ..ready
            },
        );
        m.observe(
            3,
            &live(),
            &DutOut {
                csr_rvalid: true,
                ..DutOut::default()
            },
        );
        assert_eq!(m.report(), None);
        m.observe(
            4,
            &live(),
            &DutOut {
                csr_rvalid: true,
                ..DutOut::default()
            },
        );
        assert!(m.report().is_some());
    }

    #[test]
    fn memory_request_in_idle_window_is_an_error_until_stimulus() {
        let mem = DutOut {
            mem_req_valid: true,
            ..DutOut::default()
        };
        let mut m = Monitor::default();
        m.observe(1, &live(), &mem);
        assert_eq!(m.report(), None, "no window: no claim");
        m.expect_idle(2);
        // An IQT write closes the window: the queue may fetch.
        let iqt = DutIn {
            csr_valid: true,
            csr_write: true,
            csr_addr: regs::IQT as u16,
            ..live()
        };
        m.observe(
            3,
            &iqt,
            &DutOut {
                csr_ready: true,
                ..DutOut::default()
            },
        );
        m.observe(4, &live(), &mem);
        assert_eq!(m.report(), None);
        m.expect_idle(5);
        // A write to another register keeps it open.
        let data = DutIn {
            csr_addr: regs::FEDATA as u16,
            ..iqt
        };
        m.observe(
            6,
            &data,
            &DutOut {
                csr_ready: true,
                ..DutOut::default()
            },
        );
        m.observe(7, &live(), &mem);
        assert!(m.report().is_some_and(|r| r.contains("must be idle")));
    }
}
