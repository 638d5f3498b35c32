//! iommu-tb: a Rust testbench for a verilated VT-d scalable-mode translation unit.
//!
//! Layers, lowest first; each imports only from the layers above it in this list (and from
//! the `iommu-model` crate, which owns every architected fact):
//!
//! | layer | folder | job |
//! |---|---|---|
//! | tools | [`pool`], [`report`] | the one worker pool of every parallel job; JUnit XML |
//! | DUT | [`dut`] | the verilated model behind the cxx bridge: pins, cycles, waveform files |
//! | TLP | [`tlp`] | bit-exact PCIe TLP codec (memory requests, PASID prefix, completions) |
//! | environment | [`env`] | agents (CSR, memory, TLP), the cycle loop, the traced re-run of failed tests |
//! | checking | [`check`] | judging DUT outcomes against the golden walker and the oracle; the one streaming judge |
//! | hardware | [`hw`] | the DUT as the model driver's hardware (registers, memory, invalidation queue), kernel + driver on it |
//! | coverage | [`coverage`] | functional bins over the kernel-on-DUT system, their closure curve and HTML page; Verilator coverage files |
//! | vectors | [`vectors`] | YAML scenarios: schema, parser, runner |
//! | flows | [`flows`] | the regression, untranslated traffic, benches, shrinking failing seeds |

pub mod check;
pub mod coverage;
pub mod dut;
pub mod env;
pub mod flows;
pub mod hw;
pub mod pool;
pub mod report;
pub mod tlp;
pub mod vectors;

pub use check::judge::{judge, Judged};
pub use dut::{Dut, DutIn, DutOut};
pub use env::harness::{run_test, run_test_in, TestFailure};
pub use env::Env;
pub use flows::regress;
pub use hw::rtl_hw::RtlHw;
pub use hw::system::RtlKernel;
