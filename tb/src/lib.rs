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
//! | environment | [`env`](mod@env) | agents (CSR, memory, TLP), the cycle loop, the traced re-run of failed tests |
//! | checking | [`check`] | judging DUT outcomes against the golden walker and the oracle; the one streaming judge |
//! | hardware | [`hw`] | the DUT as the model driver's hardware (registers, memory, invalidation queue), kernel + driver on it |
//! | coverage | [`coverage`] | functional bins over the kernel-on-DUT system, their closure curve and HTML page; Verilator coverage files |
//! | vectors | [`vectors`] | YAML scenarios: schema, parser, runner |
//! | flows | [`flows`] | the regression, untranslated traffic, benches, shrinking failing seeds |

//!
//! Visibility: inside a layer, modules are `pub(crate)`, and the layer's `mod.rs` re-exports
//! the items the command-line tool and the integration tests use. A few modules stay public
//! as namespaces because their users call them by that name: the flows
//! ([`flows::regress`], [`flows::untranslated`], [`flows::shrink`], [`flows::bench`]: each
//! has its own `Config`, `Report` and `run`), the kernel-on-the-DUT helpers of
//! [`hw::system`], the waveform settings of [`dut::waves`], the coverage page writer
//! [`coverage::html`] and the worker [`pool`].

// The module docs describe the crate's inside for its developers and link its internal
// modules: `cargo doc --document-private-items` renders them.
#![allow(rustdoc::private_intra_doc_links)]

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

pub use check::stream::StreamTime;
pub use check::{judge, Judged};
pub use dut::{Dut, DutIn, DutOut};
pub use env::{run_test, run_test_in, Env, TestFailure};
pub use flows::regress;
pub use hw::{RtlHw, RtlKernel};
