//! Reference model of iommu-tb: the Linux IOMMU API ([`kernel`]), the intel-iommu VT-d
//! driver ([`driver`]), and a golden VT-d scalable-mode translation unit with a maximal
//! cache ([`golden`]) judged by an abstract [`oracle`]. Pure Rust; no simulator needed.
#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod devtlb;
pub mod driver;
pub mod fault;
pub mod golden;
pub mod kernel;
pub mod locate;
pub mod mem;
pub mod observe;
pub mod oracle;
pub mod qi;
pub mod regs;
pub mod sim;
pub mod stimulus;
pub mod tables;

pub use fault::FaultReason;
pub use golden::{Outcome, Request};
pub use kernel::{Errno, Kernel};
