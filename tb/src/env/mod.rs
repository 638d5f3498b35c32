//! Directed-test environment: the DUT, the input state every agent drives, and the register
//! agent. Each `tick` is one clock cycle; agents set their fields of `inp` and read `out`.
//!
//! - [`csr`]: the CSR bus (register agent).
//! - [`mem`]: serves the memory port from the model's physical memory.
//! - [`tlp_agent`]: sends TLPs on ingress and collects what leaves on tx and cpl.
//! - [`ats_device`]: the devices' side of ATS invalidation: takes Invalidate Requests and
//!   answers them with Invalidate Completions on rx.
//! - [`exchange`](mod@exchange): one TLP in, the unit's whole answer out (marker-delimited).
//! - [`harness`]: runs a test body and re-runs a failed one with waveforms.
//! - [`monitor`]: per-cycle protocol checks (CSR responses nobody asked for, memory traffic
//!   while the unit must be idle), reported by [`Env::check_assertions`], as is a request
//!   the memory agent saw reuse a pending ID.

pub(crate) mod ats_device;
pub(crate) mod csr;
pub(crate) mod exchange;
pub(crate) mod harness;
pub(crate) mod mem;
pub(crate) mod monitor;
pub(crate) mod tlp_agent;

pub use ats_device::{completion_hdr, Answer, AtsDevice, Fate, InvRequestMsg, LATE_MAX, LATE_MIN};
pub use csr::CsrError;
pub use exchange::{drain, exchange};
pub use harness::{run_test, run_test_in, TestFailure};
pub use mem::{MemAccess, MemAgent, MemTiming};
pub use tlp_agent::{Egress, TlpAgent};

use crate::dut::waves::Waves;
use crate::dut::{Dut, DutIn, DutOut, Ports};
use crate::env::monitor::Monitor;

#[derive(Debug)]
pub struct Env {
    pub dut: Dut,
    /// The inputs applied at the next `tick`.
    pub inp: DutIn,
    /// The outputs of the last `tick`.
    pub out: DutOut,
    /// Serves the memory port when present (else the port is never ready).
    pub mem: Option<MemAgent>,
    /// Gaps and back-pressure for TLP exchanges.
    pub tlp: TlpAgent,
    /// Answers the unit's Invalidate Requests.
    pub ats: AtsDevice,
    /// Where this environment's test writes waveforms (off unless the test is traced).
    pub waves: Waves,
    /// Per-cycle protocol monitors (see [`monitor`]).
    pub monitor: Monitor,
}

impl Env {
    /// A DUT seeded with `seed`, reset, with every output port ready; not traced.
    pub fn new(seed: u64) -> Self {
        Self::with_waves(seed, Waves::off())
    }

    /// [`Env::new`], with the DUT's waveform opened through `waves` (from reset on).
    pub fn with_waves(seed: u64, waves: Waves) -> Self {
        let mut dut = Dut::new(seed);
        waves.open(&mut dut);
        dut.reset(4);
        Self::with_dut(dut, waves)
    }

    /// A further environment of the same test: traced into the same run when this one is.
    pub fn sibling(&self, seed: u64) -> Self {
        Self::with_waves(seed, self.waves.clone())
    }

    /// An environment around a DUT that is already reset.
    fn with_dut(dut: Dut, waves: Waves) -> Self {
        let seed = dut.seed();
        let inp = DutIn {
            rst_n: true,
            tx_ready: true,
            cpl_ready: true,
            ..DutIn::default()
        };
        Self {
            dut,
            inp,
            out: DutOut::default(),
            mem: None,
            tlp: TlpAgent::new(seed),
            ats: AtsDevice::new(seed),
            waves,
            monitor: Monitor::default(),
        }
    }

    /// Moves this environment's DUT (with any open waveform) out, leaving a fresh one.
    pub fn take(&mut self) -> Env {
        let seed = self.dut.seed();
        let mut dut = Dut::new(seed);
        dut.reset(4);
        let fresh = Env::with_dut(dut, Waves::off());
        std::mem::replace(self, fresh)
    }

    /// One clock cycle with the current inputs (the memory agent, if any, drives its port;
    /// the ATS devices drive theirs and use rx when nobody else does).
    #[inline]
    pub fn tick(&mut self) -> DutOut {
        if let Some(m) = &mut self.mem {
            m.drive(&mut self.inp);
        }
        let cycle = self.dut.cycle();
        self.ats.drive(cycle, &mut self.inp);
        self.dut.step_into(&self.inp, Ports::ALL, &mut self.out);
        self.ats.observe(cycle, &mut self.inp, &self.out);
        if let Some(m) = &mut self.mem {
            m.observe(self.dut.cycle(), &self.inp, &self.out);
        }
        self.monitor.observe(self.dut.cycle(), &self.inp, &self.out);
        self.out
    }

    /// `n` cycles with the current inputs.
    pub fn idle(&mut self, n: u32) {
        for _ in 0..n {
            self.tick();
        }
    }

    /// Fails if an RTL assertion fired, a monitor recorded an error or the memory agent saw
    /// the DUT break the memory port's protocol.
    pub fn check_assertions(&self) -> anyhow::Result<()> {
        if self.out.sim_error {
            anyhow::bail!(
                "an RTL assertion failed by cycle {} (see the simulator output above)",
                self.dut.cycle()
            );
        }
        if let Some(r) = self.monitor.report() {
            anyhow::bail!("protocol monitor: {r}");
        }
        if let Some(e) = self.mem.as_ref().and_then(|m| m.protocol_error.as_ref()) {
            anyhow::bail!("memory port protocol: {e}");
        }
        Ok(())
    }

    /// Opens the window in which the unit must make no memory request, from the next cycle
    /// until a TLP is accepted or a CSR write may start work ([`monitor`] says which). The
    /// caller claims that every TLP it sent has been answered (or dropped) and that the
    /// invalidation queue has nothing to do.
    pub fn expect_idle(&mut self) {
        self.monitor.expect_idle(self.dut.cycle());
    }
}
