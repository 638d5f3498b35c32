//! Concurrency in vectors (`during:`, `any_of`), `driver_bugs:`/`expect_failure:`: the
//! negative fixtures under `tests/fixtures/vectors/` fail (or are input errors), and the
//! committed stale-entry vector is a case the old concurrency rule got wrong.

use std::path::{Path, PathBuf};

use iommu_model::driver::DriverQuirks;
use iommu_model::golden::{Outcome, Request};
use iommu_model::kernel::{rid, DeviceDesc, DomainType, Prot, Stage};
use iommu_model::oracle::{self, Snapshot};
use iommu_model::sim::golden_kernel;
use iommu_model::FaultReason;
use iommu_tb::vectors::{self, RunOptions};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/vectors")
        .join(name)
}

/// Runs a fixture; returns its error message and whether it is an input error.
fn run_err(name: &str) -> (String, bool) {
    let v = vectors::parse_file(&fixture(name)).expect("the fixture parses");
    let dir = std::env::temp_dir().join("iommu-tb-during-fixtures");
    let e = vectors::run_parsed(&v, &RunOptions::default(), &dir, false)
        .expect_err("the fixture must not pass");
    (format!("{e:#}"), vectors::is_input_error(&e))
}

#[test]
fn a_wrong_pin_during_a_call_fails_at_the_step() {
    let (msg, input) = run_err("during-wrong-pin.yaml");
    assert!(!input, "{msg}");
    assert!(msg.contains(": step "), "{msg}");
    assert!(msg.contains("during-wrong-pin.yaml:14:5: step "), "{msg}");
    assert!(msg.contains("pinned pa 0x123000"), "{msg}");
}

#[test]
fn any_of_that_misses_the_outcome_fails() {
    let (msg, input) = run_err("any-of-misses.yaml");
    assert!(!input, "{msg}");
    assert!(msg.contains("pinned any of [fault 0x71"), "{msg}");
}

#[test]
fn an_any_of_alternative_the_oracle_forbids_is_an_input_error() {
    let (msg, input) = run_err("during-forbidden-pin.yaml");
    assert!(input, "{msg}");
    assert!(msg.contains("which the oracle forbids"), "{msg}");
}

#[test]
fn expect_failure_fails_when_the_run_passes() {
    let (msg, input) = run_err("expect-failure-not-caught.yaml");
    assert!(!input, "{msg}");
    assert!(msg.contains("the run passed"), "{msg}");
}

#[test]
fn the_bug_vector_passes_by_catching_the_bug_and_cli_bugs_merge() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/bug-skip-pasid-flush.yaml");
    let v = vectors::parse_file(&file).expect("parses");
    assert_eq!(v.driver_bugs, ["skip-pasid-flush"]);
    let dir = std::env::temp_dir().join("iommu-tb-during-bug");
    let rep = vectors::run_parsed(&v, &RunOptions::default(), &dir, false).expect("caught");
    assert!(rep
        .caught
        .as_deref()
        .is_some_and(|m| m.contains("golden walker: Fault(0x71")));
    // The same with the bug also given on the command line.
    let opts = RunOptions {
        quirks: DriverQuirks {
            skip_pasid_flush: true,
            ..DriverQuirks::default()
        },
        ..RunOptions::default()
    };
    assert!(vectors::run_parsed(&v, &opts, &dir, false).is_ok());
    // Without the bug the vector's claim does not hold: it fails.
    let mut fixed = v.clone();
    fixed.driver_bugs.clear();
    let e = vectors::run_parsed(&fixed, &RunOptions::default(), &dir, false)
        .expect_err("no bug, nothing caught");
    assert!(format!("{e:#}").contains("the run passed"), "{e:#}");
}

/// The committed `stale-entry-during-later-sync.yaml`, on the model alone: the old rule
/// for requests during an operation (what the state before it allows, without its open
/// windows, united with what the state after it allows) forbids the stale translation that
/// the IOTLB may legally still hold; `oracle::allowed_during` allows it, and the fault.
#[test]
fn the_stale_entry_is_outside_the_old_rule_and_inside_allowed_during() {
    for (stage, pa, fault) in [
        (Stage::First, 0x8_0000_0000u64, FaultReason::FsNotPresent),
        (Stage::Second, 0xa_0000_0000, FaultReason::SsNotPresent),
    ] {
        let mut k = golden_kernel(DriverQuirks::default()).expect("system");
        let dev = rid(0, 3, 0);
        k.add_device(DeviceDesc {
            rid: dev,
            max_pasids: 1 << 20,
            ats: false,
        })
        .expect("device");
        let d = k.domain_alloc(DomainType::Paging(stage)).expect("domain");
        k.attach_device(dev, d).expect("attach");
        let p = k.alloc_global_pasid(dev).expect("pasid");
        k.attach_device_pasid(d, dev, p).expect("attach pasid");
        k.map(d, 0x200000, pa, 0x1000, Prot::RW).expect("map");
        k.map(d, 0x400000, pa + 0x1_0000_0000, 0x1000, Prot::RW)
            .expect("map");
        k.unmap(d, 0x200000, 0x1000).expect("unmap_fast");
        let before = Snapshot::take(&mut k);
        assert_eq!(before.windows.len(), 1, "the unmap_fast window is open");
        k.unmap(d, 0x400000, 0x1000).expect("unmap");
        k.iotlb_sync(d).expect("sync");
        let stale = Outcome::Translated(pa + 0x8b0);
        for pasid in [None, Some(p)] {
            let req = Request {
                rid: dev,
                pasid,
                pmr: false,
                er: false,
                addr: 0x2008b0,
                len: 8,
                write: false,
                at: Default::default(),
            };
            let mut old = oracle::eval(&before.state, &req);
            for o in oracle::allowed(&k, &req).iter() {
                old.insert(*o);
            }
            assert!(!old.contains(&stale), "{stage:?} {pasid:?}: old rule {old}");
            assert!(old.contains(&Outcome::Fault(fault)), "{old}");
            let now = oracle::allowed_during(&before, &k, &req);
            assert!(now.contains(&stale), "{stage:?} {pasid:?}: {now}");
            assert!(now.contains(&Outcome::Fault(fault)), "{now}");
        }
    }
}
