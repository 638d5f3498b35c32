//! The device under test: one verilated `iommu_top` behind the cxx bridge.
//!
//! This layer knows pins and clock cycles only; the agents above it know TLPs, registers and
//! memory. `step` is one clock cycle and one call across the FFI boundary; the shim writes
//! the narrow inputs only when they change, and [`Dut::step_into`] reads back only the
//! outputs asked for.

mod ffi;
pub mod waves;

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use ffi::bridge::{DutIn, DutOut};

/// A [`Dut`] borrowed for a loop of cycles (see [`Dut::stepper`]).
pub struct Stepper<'a> {
    shim: std::pin::Pin<&'a mut ffi::bridge::DutShim>,
}

impl Stepper<'_> {
    /// One clock cycle, as [`Dut::step_into`].
    #[inline]
    pub fn step_into(&mut self, inp: &DutIn, ports: Ports, out: &mut DutOut) {
        self.shim.as_mut().step(inp, ports.0, out);
    }
}

/// The unit's Completer ID in the completions it builds (bus 0, device 0, function 0).
pub const COMPLETER_ID: u16 = 0x0000;

/// The device-TLB invalidation time-out of the verilated unit (`iommu_top` parameter
/// `AtsInvTimeout`, left at its default): an Invalidate Request unanswered for this many
/// cycles, and at most 1.5 times as many, sets FSTS.ITE (docs/contract.md 6.5).
pub const ATS_INV_TIMEOUT: u64 = 8192;

/// A set of output port groups for [`Dut::step_into`]: the outputs a caller reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports(u8);

impl Ports {
    /// `rx_ready`.
    pub const RX: Ports = Ports(ffi::PORTS_RX);
    /// `tx_valid`, `tx_hdr`.
    pub const TX: Ports = Ports(ffi::PORTS_TX);
    /// `cpl_valid`, `cpl_hdr`, `cpl_data`.
    pub const CPL: Ports = Ports(ffi::PORTS_CPL);
    /// `csr_ready`, `csr_rvalid`, `csr_rdata`, `csr_error`.
    pub const CSR: Ports = Ports(ffi::PORTS_CSR);
    /// `mem_req_valid`, `mem_req_id`, `mem_req_write`, `mem_req_addr`, `mem_req_wdata`, `mem_req_wstrb`.
    pub const MEM: Ports = Ports(ffi::PORTS_MEM);
    /// `fault_irq`, `inv_irq`.
    pub const IRQ: Ports = Ports(ffi::PORTS_IRQ);
    /// `ats_inv_valid`, `ats_inv_prefix_valid`, `ats_inv_prefix`, `ats_inv_hdr`, `ats_inv_data`.
    pub const ATS: Ports = Ports(ffi::PORTS_ATS);
    /// Every output port.
    pub const ALL: Ports = Ports(
        ffi::PORTS_RX
            | ffi::PORTS_TX
            | ffi::PORTS_CPL
            | ffi::PORTS_CSR
            | ffi::PORTS_MEM
            | ffi::PORTS_IRQ
            | ffi::PORTS_ATS,
    );

    pub fn contains(self, other: Ports) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Ports {
    type Output = Ports;
    fn bitor(self, rhs: Ports) -> Ports {
        Ports(self.0 | rhs.0)
    }
}

/// Errors from the simulator itself.
#[derive(Debug, Error)]
pub enum DutError {
    #[error("cannot open waveform {path}: {msg}")]
    Trace { path: PathBuf, msg: String },
    #[error("cannot write coverage {path}: {msg}")]
    Coverage { path: PathBuf, msg: String },
}

/// One simulated `iommu_top` with its own Verilator context.
pub struct Dut {
    shim: cxx::UniquePtr<ffi::bridge::DutShim>,
    seed: u64,
    trace_path: Option<PathBuf>,
}

impl std::fmt::Debug for Dut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dut")
            .field("seed", &self.seed)
            .field("cycle", &self.cycle())
            .field("trace", &self.trace_path)
            .finish()
    }
}

impl Dut {
    /// A new model. `seed` seeds Verilator's random initial values (`--x-initial unique`),
    /// so bugs that depend on uninitialised state show up and reproduce.
    pub fn new(seed: u64) -> Self {
        Self {
            shim: ffi::bridge::new_dut_shim(seed),
            seed,
            trace_path: None,
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Holds `rst_ni` low for `cycles` cycles (at least one) with every other input idle,
    /// then runs one idle cycle out of reset.
    pub fn reset(&mut self, cycles: u32) {
        let mut inp = DutIn::default();
        for _ in 0..cycles.max(1) {
            self.step(&inp);
        }
        inp.rst_n = true;
        self.step(&inp);
    }

    /// One clock cycle: applies `inp`, returns the outputs sampled before the rising edge.
    #[inline]
    pub fn step(&mut self, inp: &DutIn) -> DutOut {
        let mut out = DutOut::default();
        self.step_into(inp, Ports::ALL, &mut out);
        out
    }

    /// One clock cycle: applies `inp` and writes into `out` the output groups in `ports`
    /// (sampled before the rising edge) and `sim_error`; `out`'s other fields are left as
    /// they were. The shim writes the narrow inputs only when one of them changed since the
    /// last cycle; the wide ones (headers, prefixes, data words) are copied, as cheap as
    /// comparing them.
    #[inline]
    pub fn step_into(&mut self, inp: &DutIn, ports: Ports, out: &mut DutOut) {
        self.shim.pin_mut().step(inp, ports.0, out);
    }

    /// The model borrowed for a loop of cycles: [`Stepper::step_into`] steps it without
    /// fetching the model through its owning pointer every cycle (as a C++ harness holds
    /// its model pointer).
    pub fn stepper(&mut self) -> Stepper<'_> {
        Stepper {
            shim: self.shim.pin_mut(),
        }
    }

    /// Cycles simulated since construction.
    pub fn cycle(&self) -> u64 {
        self.shim.cycle()
    }

    /// Starts an FST waveform at `path` (creating its folder); replaces any open one.
    pub fn trace_start(&mut self, path: &Path) -> Result<(), DutError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| DutError::Trace {
                path: path.to_owned(),
                msg: e.to_string(),
            })?;
        }
        let s = path.to_str().ok_or_else(|| DutError::Trace {
            path: path.to_owned(),
            msg: "path is not UTF-8".into(),
        })?;
        self.shim
            .pin_mut()
            .trace_open(s)
            .map_err(|e| DutError::Trace {
                path: path.to_owned(),
                msg: e.what().to_owned(),
            })?;
        self.trace_path = Some(path.to_owned());
        Ok(())
    }

    /// Closes the waveform (flushing it) and returns its path.
    pub fn trace_stop(&mut self) -> Option<PathBuf> {
        self.shim.pin_mut().trace_close();
        self.trace_path.take()
    }

    pub fn tracing(&self) -> bool {
        self.shim.tracing()
    }

    /// Writes Verilator coverage (a `--features coverage` build only).
    pub fn coverage_write(&mut self, path: &Path) -> Result<(), DutError> {
        let s = path.to_string_lossy();
        self.shim
            .pin_mut()
            .coverage_write(&s)
            .map_err(|e| DutError::Coverage {
                path: path.to_owned(),
                msg: e.what().to_owned(),
            })
    }
}
