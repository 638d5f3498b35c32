//! iommu-tb: a Rust testbench for a verilated VT-d scalable-mode translation unit.
//!
//! Layers, each with one job (UVM's split, in Rust types):
//! - [`dut`]: the verilated model behind the cxx bridge; pins and cycles only.
//! - [`agents`]: memory agent (serves walks from the model's memory) and TLP agent.
//! - [`bench`]: translation figures (walk cycles, hit throughput) for `iommu-tb bench-xlate`.
//! - [`coverage`]: functional coverage bins of the regression, holes, and Verilator coverage files.
//! - [`csr`]: register agent (CSR bus driver) and the VT-d register map.
//! - [`env`]: directed-test environment (DUT + input state + register agent).
//! - [`judge`]: one request against the golden walker: egress and fault record, field by field.
//! - [`regress`]: seeded kernel-API sequences on the RTL, every request judged (golden walker, oracle).
//! - [`rtl_hw`]: the DUT as the model driver's hardware (registers, memory, invalidation queue).
//! - [`scoreboard`]: streaming check of pipelined TLP bursts (order, loss, duplicates, watchdog).
//! - [`system`]: kernel + driver models on the DUT, and helpers to map, flush and judge.
//! - [`tlp`]: bit-exact PCIe TLP codec (memory requests, PASID prefix, completions).
//! - [`untranslated`]: checked random traffic through the untranslated path (TE = 0).
//! - [`vectors`]: YAML test vectors (kernel-API and hardware-level scenarios), parser and runner.
//! - [`shrink`]: a failing regression seed shrunk to a short YAML vector.
//! - [`waves`]: waveform files, GTKWave save files, and re-running a failed test traced.

pub mod agents;
pub mod bench;
pub mod coverage;
pub mod csr;
pub mod dut;
pub mod env;
pub mod judge;
pub mod regress;
pub mod rtl_hw;
pub mod scoreboard;
pub mod shrink;
pub mod system;
pub mod tlp;
pub mod untranslated;
pub mod vectors;
pub mod waves;
