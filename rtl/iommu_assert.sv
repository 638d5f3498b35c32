// Named assertions, in the manner of lowRISC's prim_assert.sv.
//
//   `ASSERT(Name_A, prop, clk = clk_i, rst = !rst_ni)    prop holds on every clock edge out of reset
//   `ASSERT_NEVER(Name_A, prop, clk, rst)                prop never holds
//   `ASSERT_KNOWN(Name_A, sig, clk, rst)                 sig has no X or Z bit
//   `ASSERT_KNOWN_IF(Name_A, sig, en, clk, rst)          sig is known whenever en is 1 (and en
//                                                        itself is always known)
//   `ASSERT_INIT(Name_A, prop)                           prop holds at time 0 (parameters)
//
// The name is the assertion's label: a failure reports it with its hierarchy ("Assertion
// TOP.iommu_top.u_iotlb.FillInvExclusive_A failed"). Every macro expands to nothing for
// synthesis (SYNTHESIS defined). Clock and reset default to clk_i and !rst_ni, so the
// assertions are disabled while the asynchronous reset is asserted.
//
// This file holds macros only. It is read as a source file before every module that uses
// the macros (first in fusesoc.core's `rtl` fileset, which tb/build.rs and FuseSoC both
// follow; first in an alphabetical `rtl/*.sv` too), so no module includes it and no include
// path is needed: a macro defined in one file stays defined for the files read after it.
// The guard lets a tool read it twice.

`ifndef IOMMU_ASSERT_MACROS
`define IOMMU_ASSERT_MACROS

`ifdef SYNTHESIS

`define ASSERT(__name, __prop, __clk = clk_i, __rst = !rst_ni)
`define ASSERT_NEVER(__name, __prop, __clk = clk_i, __rst = !rst_ni)
`define ASSERT_KNOWN(__name, __sig, __clk = clk_i, __rst = !rst_ni)
`define ASSERT_KNOWN_IF(__name, __sig, __en, __clk = clk_i, __rst = !rst_ni)
`define ASSERT_INIT(__name, __prop)

`else

// A clocked immediate assertion: the always_ff block reads the values from before the edge
// (the sampled values a concurrent `assert property` would read) and skips the check while
// the reset is asserted. Verilator evaluates it once per rising edge; a concurrent assertion
// makes it copy every sampled signal on each evaluation (5% of this design's instructions
// in a regression, BENCHMARKS.md). The properties here have no temporal operators, so both
// forms check the same thing.
`define ASSERT(__name, __prop, __clk = clk_i, __rst = !rst_ni) \
  always_ff @(posedge __clk) begin : __name \
    if (!(__rst)) begin \
      assert (__prop) else $error("Assertion %m failed"); \
    end \
  end

`define ASSERT_NEVER(__name, __prop, __clk = clk_i, __rst = !rst_ni) \
  `ASSERT(__name, !(__prop), __clk, __rst)

// With a 2-state simulator (Verilator) $isunknown is always 0 and these never fire; a
// 4-state simulator checks them.
`define ASSERT_KNOWN(__name, __sig, __clk = clk_i, __rst = !rst_ni) \
  `ASSERT(__name, !$isunknown(__sig), __clk, __rst)

`define ASSERT_KNOWN_IF(__name, __sig, __en, __clk = clk_i, __rst = !rst_ni) \
  `ASSERT_KNOWN(__name``En, __en, __clk, __rst) \
  `ASSERT(__name, !(__en) || !$isunknown(__sig), __clk, __rst)

`define ASSERT_INIT(__name, __prop) \
  initial begin : __name \
    assert (__prop) else $fatal(1, "Assertion %m failed"); \
  end

`endif

`endif
