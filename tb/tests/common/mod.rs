//! Fixtures shared by the translation tests (they live in the library so benchmarks use the
//! same ones).

#![allow(unused_imports)]

pub use iommu_tb::hw::system::*;
