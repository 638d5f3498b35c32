//! A failing random sequence is shrunk to a few operations and written as a YAML vector
//! that fails with the driver bug and passes without it; a failure of a request sent while
//! an operation's invalidations execute is written with `during:` and reproduces; a
//! device-TLB entry the device-cache check finds stale after an operation is written with
//! the `ats_translate` steps that filled the device's cache.

use iommu_model::driver::DriverQuirks;
use iommu_tb::flows::regress::{self, Config};
use iommu_tb::flows::shrink;
use iommu_tb::vectors::{self, RunOptions};

#[test]
fn skipped_pasid_flush_shrinks_to_a_short_vector() {
    let quirks = DriverQuirks {
        skip_pasid_flush: true,
        ..DriverQuirks::default()
    };
    let cfg = Config {
        ops: 60,
        requests_per_op: 6,
        quirks,
        ..Config::default()
    };
    // The skipped flush also leaves the PASID's device-TLB entries behind, which the check
    // after each operation reports; this test shrinks a seed where a request catches it
    // first (the device-cache check is shrunk in the next test).
    let seed = (0..300u64)
        .find(|&seed| {
            let mut env = iommu_tb::env::Env::new(seed);
            let mut k = regress::seed_system(&mut env, seed, quirks).expect("system");
            matches!(
                regress::run_recorded(&mut k, seed, &cfg).0,
                Err(regress::Failure {
                    at: regress::FailPos::Request { .. },
                    ..
                })
            )
        })
        .expect("some seed catches the skipped PASID flush at a request");
    let sh = shrink::shrink(seed, &cfg, shrink::MAX_REPLAYS)
        .expect("shrinking")
        .expect("the seed fails");
    eprintln!(
        "seed {seed}: {} ops / {} requests -> {} ops / {} requests, {} replays{}, {:.1} s",
        sh.original_ops,
        sh.original_requests,
        sh.ops(),
        sh.requests(),
        sh.replays,
        if sh.bound_hit { " (bound hit)" } else { "" },
        sh.elapsed.as_secs_f64()
    );
    assert!(sh.original_ops >= 10, "{}", sh.original_ops);
    assert!(
        sh.ops() <= 8,
        "{} ops left:\n{}",
        sh.ops(),
        shrink::to_yaml(&sh)
    );
    assert!(sh.requests() <= 8, "{}", shrink::to_yaml(&sh));

    let dir = std::env::temp_dir().join(format!("iommu-tb-shrink-{}", std::process::id()));
    let (path, err) = shrink::write_vector(&sh, &dir, quirks).expect("the vector reproduces");
    eprintln!(
        "{}:\n{}\nwith the bug: {}",
        path.display(),
        shrink::to_yaml(&sh),
        err
    );
    let mut v = vectors::parse_file(&path).expect("the vector parses");
    assert_eq!(v.driver_bugs, ["skip-pasid-flush"]);
    assert!(v.timing.is_some(), "the seed's timing is carried");
    let err = vectors::run_file_with(&path, &RunOptions::default())
        .expect_err("the vector's own driver_bugs: reproduce the failure");
    assert!(!vectors::is_input_error(&err), "{err:#}");
    v.driver_bugs.clear();
    let rep = vectors::run_parsed(&v, &RunOptions::default(), &dir, false)
        .expect("the vector passes with the correct driver");
    assert!(rep.tlps >= 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The regression's ATS device caches the unit's Translation Completions; a driver that
/// skips the type 8 device-TLB invalidation on unmap leaves a PASID entry in it, which the
/// device-cache check after the operation names. The seed shrinks to a vector whose
/// `ats_translate` steps fill the device's cache and whose check after the unmap fails with
/// the bug and passes without.
#[test]
fn skipped_pasid_devtlb_flush_shrinks_to_a_device_cache_vector() {
    let quirks = DriverQuirks {
        skip_pasid_devtlb_flush: true,
        ..DriverQuirks::default()
    };
    let cfg = Config {
        quirks,
        ..Config::default()
    };
    let (seed, e) = (0..200u64)
        .find_map(|seed| {
            let mut env = iommu_tb::env::Env::new(seed);
            let mut k = regress::seed_system(&mut env, seed, quirks).expect("system");
            let e = regress::run(&mut k, seed, &cfg).err()?;
            Some((seed, format!("{e:#}")))
        })
        .expect("the regression catches the skipped device-TLB flush within 200 seeds");
    assert!(e.contains("stale device-TLB entries"), "{e}");
    assert!(e.contains("device 0x0180 still caches pasid="), "{e}");
    let sh = shrink::shrink(seed, &cfg, shrink::MAX_REPLAYS)
        .expect("shrinking")
        .expect("the seed fails");
    assert!(
        matches!(sh.at, regress::FailPos::Op { .. }),
        "seed {seed}: {:?}",
        sh.at
    );
    let yaml = shrink::to_yaml(&sh);
    assert!(sh.ops() <= 8, "{yaml}");
    assert!(sh.requests() <= 4, "{yaml}");
    assert!(yaml.contains("- ats_translate: {"), "{yaml}");
    assert!(yaml.contains("ats_device: {entries: "), "{yaml}");
    let dir = std::env::temp_dir().join(format!("iommu-tb-shrink-atc-{}", std::process::id()));
    let (path, err) = shrink::write_vector(&sh, &dir, quirks).expect("the vector reproduces");
    assert!(err.contains("stale device-TLB entries"), "{err}");
    let mut v = vectors::parse_file(&path).expect("the vector parses");
    assert_eq!(v.driver_bugs, ["skip-pasid-devtlb-flush"]);
    v.driver_bugs.clear();
    vectors::run_parsed(&v, &RunOptions::default(), &dir, false)
        .expect("the vector passes with the correct driver");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Requests only while operations execute: the skipped PASID flush is caught by a request
/// sent during the next operation's invalidations; the shrunk vector has a `during:` step
/// and fails when run.
#[test]
fn concurrent_failure_shrinks_to_a_during_step_that_reproduces() {
    let quirks = DriverQuirks {
        skip_pasid_flush: true,
        ..DriverQuirks::default()
    };
    // DMA-domain traffic only: maps and unmaps through a RID and its DMA PASID, so that
    // flushes the bug skips are common.
    let weights = iommu_model::stimulus::Weights::parse(
        "map=6,unmap=5,iotlb_sync=2,enable_dma_pasid=2,attach_device_pasid=1,\
         mm_create=0,mm_map=0,mm_unmap=0,sva_bind=0,sva_unbind=0,fpd=0,set_root_entry=0,mem_error=0",
    )
    .expect("weights");
    let cfg = Config {
        ops: 60,
        requests_per_op: 0,
        concurrent_per_op: 6,
        quirks,
        weights,
    };
    let mut found = 0;
    for seed in 0..400u64 {
        let mut env = iommu_tb::env::Env::new(seed);
        let mut k = regress::seed_system(&mut env, seed, quirks).expect("system");
        let (r, _) = regress::run_recorded(&mut k, seed, &cfg);
        let Err(f) = r else { continue };
        assert!(
            matches!(f.at, regress::FailPos::Concurrent { .. }),
            "seed {seed}: {:?}",
            f.at
        );
        let sh = shrink::shrink(seed, &cfg, shrink::MAX_REPLAYS)
            .expect("shrinking")
            .expect("the seed fails");
        let yaml = shrink::to_yaml(&sh);
        assert!(yaml.contains("- during:"), "{yaml}");
        let dir = std::env::temp_dir().join(format!("iommu-tb-shrink-conc-{}", std::process::id()));
        let (path, err) = shrink::write_vector(&sh, &dir, DriverQuirks::default())
            .unwrap_or_else(|e| panic!("seed {seed}: the vector must reproduce: {e:#}\n{yaml}"));
        eprintln!("seed {seed}: {}:\n{yaml}\nfails: {err}", path.display());
        assert!(err.contains("`during`"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
        found += 1;
        if found == 3 {
            break;
        }
    }
    assert!(
        found > 0,
        "no seed caught the skipped flush during an operation"
    );
}
