//! The driver's answer to a device-TLB invalidation time-out (docs/contract.md 6.5), as
//! Linux's `qi_submit_sync()` gives it: a batch whose wait the hardware aborted is submitted
//! again, with a status value of its own, until it completes or the bound is reached.

use iommu_model::driver::{Driver, DriverQuirks, HwError, IommuHw, MAX_RESUBMITS};
use iommu_model::golden::GoldenHw;
use iommu_model::kernel::dma::DmaDirection;
use iommu_model::kernel::{Errno, Kernel, Stage};
use iommu_model::mem::{Mem, PhysMem};
use iommu_model::oracle::stale_device_tlb;
use iommu_model::qi::Descriptor;

mod support;

use support::{ats_dma_system, dev, dt_hw, BUF};

/// Golden hardware (ECAP.DT = 1) whose next `timeouts` batches with a device-TLB
/// invalidation time out: the descriptors before the wait take effect (the device applies
/// an Invalidate Request when it receives it), the wait is aborted without its status
/// write, and the time-out is reported.
struct TimesOut {
    hw: GoldenHw,
    timeouts: u32,
    /// Every wait submitted: (status address, status value).
    waits: Vec<(u64, u32)>,
}

impl IommuHw for TimesOut {
    fn mem(&mut self) -> &mut Mem {
        self.hw.mem()
    }
    fn read_cap(&mut self) -> u64 {
        self.hw.read_cap()
    }
    fn read_ecap(&mut self) -> u64 {
        self.hw.read_ecap()
    }
    fn set_root_table(&mut self, rtaddr: u64) -> Result<(), HwError> {
        self.hw.set_root_table(rtaddr)
    }
    fn enable_translation(&mut self) -> Result<(), HwError> {
        self.hw.enable_translation()
    }
    fn submit(&mut self, descs: &[Descriptor]) -> Result<(), HwError> {
        let Some((
            Descriptor::Wait {
                status_addr,
                status_data,
                ..
            },
            before,
        )) = descs.split_last()
        else {
            return Err(HwError::Queue("a batch must end with a wait".into()));
        };
        self.waits.push((*status_addr, *status_data));
        let devtlb = before.iter().any(|d| matches!(d.type_code(), 3 | 8));
        if devtlb && self.timeouts > 0 {
            self.timeouts -= 1;
            self.hw.submit(before)?;
            return Err(HwError::InvalidationTimeout(
                "the device did not answer".into(),
            ));
        }
        self.hw.submit(descs)
    }
}

/// An ATS device attached to a first-stage domain through its RID and its DMA PASID, one
/// page mapped and cached by the device through both; returns the IOVA.
fn system(timeouts: u32) -> (Kernel<Driver<TimesOut>>, u64) {
    let hw = TimesOut {
        hw: dt_hw(),
        timeouts: 0,
        waits: Vec::new(),
    };
    let (mut k, pasid, iova) = ats_dma_system(hw, DriverQuirks::default(), Stage::First);
    for p in [None, Some(pasid)] {
        let e = k.ops_mut().hw_mut().hw.ats_translate(dev(), p, iova);
        assert!(e.is_some_and(|e| e.pa == BUF));
    }
    k.ops_mut().hw_mut().timeouts = timeouts;
    (k, iova)
}

fn status_word(k: &mut Kernel<Driver<TimesOut>>, addr: u64) -> u32 {
    let v = k.ops_mut().hw_mut().mem().read64(addr & !7).unwrap();
    (if addr & 4 != 0 { v >> 32 } else { v }) as u32
}

#[test]
fn a_batch_whose_wait_was_aborted_is_resubmitted_with_a_new_status_value() {
    let (mut k, iova) = system(1);
    let log_before = k.ops().log().len();
    let waits_before = k.ops().hw().waits.len();
    k.dma_unmap_single(dev(), iova, 0x1000, DmaDirection::Bidirectional)
        .expect("the unmap succeeds after one resubmission");
    assert_eq!(k.ops().resubmits(), 1);
    let log = k.ops().log()[log_before..].to_vec();
    assert_eq!(log.len(), 2, "{log:#?}");
    let (first, again) = (&log[0], &log[1]);
    assert!(first.aborted && !again.aborted, "{log:#?}");
    assert_eq!(first.reason, again.reason);
    let n = first.descs.len();
    assert!(first.descs[..n - 1].iter().any(|d| d.type_code() == 3));
    assert_eq!(first.descs[..n - 1], again.descs[..n - 1]);
    // The resubmitted wait writes another value, and only that one landed.
    let waits = k.ops().hw().waits[waits_before..].to_vec();
    assert_eq!(waits.len(), 2);
    assert_ne!(waits[0].1, waits[1].1);
    assert_eq!((first.seq, again.seq), (waits[0].1, waits[1].1));
    assert_eq!(status_word(&mut k, waits[1].0), waits[1].1);
    // The device applied the invalidations: nothing it caches is stale.
    let atc = &k.ops().hw().hw.atc[&dev()];
    assert!(atc.is_empty(), "{atc:?}");
    assert!(stale_device_tlb(&k, dev(), atc).is_empty());
}

#[test]
fn a_batch_that_keeps_timing_out_fails_after_the_bound() {
    let (mut k, iova) = system(u32::MAX);
    let log_before = k.ops().log().len();
    let r = k.dma_unmap_single(dev(), iova, 0x1000, DmaDirection::Bidirectional);
    assert_eq!(r, Err(Errno::EBUSY));
    assert_eq!(k.ops().resubmits(), u64::from(MAX_RESUBMITS));
    let log = &k.ops().log()[log_before..];
    assert_eq!(log.len(), MAX_RESUBMITS as usize + 1);
    assert!(log.iter().all(|b| b.aborted));
    let seqs: std::collections::BTreeSet<u32> = log.iter().map(|b| b.seq).collect();
    assert_eq!(
        seqs.len(),
        log.len(),
        "every submission has its own status value"
    );
}
