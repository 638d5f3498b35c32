//! An observation hook on the golden hardware: [`ObservedHw`] runs the driver model
//! against [`GoldenHw`] and stops at every point an operation passes through, so that a
//! test can translate requests there, against the maximal cache or against memory as it
//! is at that point. This is how the model checks the oracle under concurrency
//! ([`crate::oracle::allowed_during`]): a request may reach the translation unit between
//! any two memory writes of the driver and between any two descriptors the unit executes.
//!
//! The points are:
//!
//! - after each memory write of the driver (`iommu_pgtable` stores in `__domain_mapping()`,
//!   the PASID-entry stores of `intel_pasid_setup_*()` and `intel_pasid_tear_down_entry()`,
//!   table allocation and freeing), reported before the driver touches memory again;
//! - after each descriptor the hardware executes out of a `qi_submit_sync()` batch, the
//!   invalidation wait's status write included.

use crate::driver::{Driver, DriverQuirks, HwError, IommuHw};
use crate::golden::{GoldenHw, Removed};
use crate::kernel::{Kernel, KernelConfig};
use crate::mem::Mem;
use crate::qi::Descriptor;

/// Where an operation is when the observer is called.
#[derive(Clone, Copy, Debug)]
pub enum Point<'a> {
    /// Memory was written: these byte ranges `[start, end)`, in order, since the previous
    /// point.
    Wrote(&'a [(u64, u64)]),
    /// The hardware executed this descriptor, which removed `removed` from the cache.
    Executed(&'a Descriptor, &'a Removed),
}

/// A test's view of the points.
pub trait Observer {
    /// Called at each point with the hardware as it is there (translate with
    /// [`GoldenHw::translate`], [`GoldenHw::translate_cached`] or
    /// [`crate::golden::MaxCache::possible`]).
    fn point(&mut self, hw: &mut GoldenHw, at: Point<'_>);
}

/// An observer that looks at nothing.
impl Observer for () {
    fn point(&mut self, _: &mut GoldenHw, _: Point<'_>) {}
}

/// [`GoldenHw`] with an [`Observer`] called at every point.
#[derive(Debug)]
pub struct ObservedHw<B> {
    pub hw: GoldenHw,
    pub observer: B,
}

impl<B: Observer> ObservedHw<B> {
    /// Turns memory journaling on.
    pub fn new(mut hw: GoldenHw, observer: B) -> Self {
        hw.mem.set_journal(true);
        Self { hw, observer }
    }

    /// Reports the writes made since the last point, if any. The driver writes one word
    /// per [`IommuHw::mem`] borrow, so reporting at the next borrow (and before every other
    /// hardware call) stops after each write. A harness calls it once more when an
    /// operation returns.
    pub fn flush(&mut self) {
        if self.hw.mem.journal_pending() {
            let w = self.hw.mem.take_journal();
            self.observer.point(&mut self.hw, Point::Wrote(&w));
        }
    }
}

impl<B: Observer> IommuHw for ObservedHw<B> {
    fn mem(&mut self) -> &mut Mem {
        self.flush();
        &mut self.hw.mem
    }
    fn read_cap(&mut self) -> u64 {
        self.hw.read_cap()
    }
    fn read_ecap(&mut self) -> u64 {
        self.hw.read_ecap()
    }
    fn set_root_table(&mut self, rtaddr: u64) -> Result<(), HwError> {
        self.flush();
        self.hw.set_root_table(rtaddr)
    }
    fn enable_translation(&mut self) -> Result<(), HwError> {
        self.flush();
        self.hw.enable_translation()
    }
    /// One descriptor at a time, with a point after each.
    fn submit(&mut self, descs: &[Descriptor]) -> Result<(), HwError> {
        self.flush();
        for d in descs {
            let removed = self.hw.execute(d)?;
            self.observer
                .point(&mut self.hw, Point::Executed(d, &removed));
            self.flush();
        }
        Ok(())
    }
}

/// Kernel model + driver model + observed golden hardware.
pub type ObservedKernel<B> = Kernel<Driver<ObservedHw<B>>>;

/// A ready system with translation enabled whose hardware calls `observer` at every point
/// (the initialisation's points included).
pub fn observed_kernel<B: Observer>(
    quirks: DriverQuirks,
    observer: B,
) -> Result<ObservedKernel<B>, HwError> {
    let hw = ObservedHw::new(GoldenHw::new(Mem::new()), observer);
    let drv = Driver::new(hw, quirks)?;
    Ok(Kernel::new(drv, KernelConfig::default()))
}
