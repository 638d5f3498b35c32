//! The DUT as the hardware of the model's VT-d driver.
//! - [`rtl_hw`]: registers, memory and the real invalidation queue behind `IommuHw`.
//! - [`system`]: the model's kernel and driver on the DUT, and helpers to map, flush and judge.

pub(crate) mod rtl_hw;
pub mod system;

pub use rtl_hw::RtlHw;
pub use system::{hw_state, RtlKernel};
