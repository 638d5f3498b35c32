//! Agents: each drives or observes one port of the DUT, cycle by cycle.
//! - [`mem`]: serves the memory port from the model's physical memory.
//! - [`tlp`]: sends TLPs on ingress and collects what leaves on tx and cpl.

pub mod mem;
pub mod tlp;
