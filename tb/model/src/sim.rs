//! The three layers wired together on the golden hardware: the kernel model driving the
//! VT-d driver model, which writes modelled memory and submits to the maximal cache.
//! What a test or a kernel developer uses to run the model alone.

use crate::driver::{Driver, DriverQuirks, HwError};
use crate::golden::{GoldenHw, Request, Walk};
use crate::kernel::{Kernel, KernelConfig};
use crate::mem::Mem;
use crate::oracle::{self, AllowedSet};

/// Kernel model + driver model + golden hardware.
pub type GoldenKernel = Kernel<Driver<GoldenHw>>;

/// A ready system with translation enabled.
pub fn golden_kernel(quirks: DriverQuirks) -> Result<GoldenKernel, HwError> {
    let drv = Driver::new(GoldenHw::new(Mem::new()), quirks)?;
    Ok(Kernel::new(drv, KernelConfig::default()))
}

/// The same on golden hardware the caller set up (other CAP/ECAP values, for example
/// ECAP.DT for device-TLB support).
pub fn golden_kernel_on(hw: GoldenHw, quirks: DriverQuirks) -> Result<GoldenKernel, HwError> {
    let drv = Driver::new(hw, quirks)?;
    Ok(Kernel::new(drv, KernelConfig::default()))
}

/// Convenience accessors on a golden system.
pub trait GoldenExt {
    fn hw(&self) -> &GoldenHw;
    fn hw_mut(&mut self) -> &mut GoldenHw;
    /// The golden walker straight from memory.
    fn translate(&self, req: &Request) -> Walk;
    /// The golden walker through the maximal cache.
    fn translate_cached(&mut self, req: &Request) -> Walk;
    /// The oracle's answer.
    fn allowed(&self, req: &Request) -> AllowedSet;
}

impl GoldenExt for GoldenKernel {
    fn hw(&self) -> &GoldenHw {
        self.ops().hw()
    }
    fn hw_mut(&mut self) -> &mut GoldenHw {
        self.ops_mut().hw_mut()
    }
    fn translate(&self, req: &Request) -> Walk {
        self.hw().translate(req)
    }
    fn translate_cached(&mut self, req: &Request) -> Walk {
        self.hw_mut().translate_cached(req)
    }
    fn allowed(&self, req: &Request) -> AllowedSet {
        oracle::allowed(self, req)
    }
}
