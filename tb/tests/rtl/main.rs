//! The testbench's own tests through the verilated RTL: one binary (it links the simulator
//! once), one module per topic.

mod bridge;
mod cache_model;
mod cli;
mod coverage;
mod driver_steps;
mod during;
mod fault_codes;
mod invalidation;
mod iotlb;
mod monitors;
mod queue;
mod recording;
mod reg_model;
mod registers;
mod regress;
mod scoreboard;
mod shrink;
mod timing;
mod translation;
mod untranslated;
mod vector_steps;
mod vectors;
mod waves;
