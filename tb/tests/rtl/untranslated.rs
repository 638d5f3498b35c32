//! Untranslated forwarding (GSTS.TES = 0) with malformed-request rejection, judged by the TLP
//! codec; reset randomization and parallel simulation must not change any result.

use iommu_tb::env::Env;
use iommu_tb::flows::untranslated::{self, Config, Report};
use iommu_tb::{run_test, TestFailure};

#[test]
fn forwards_unchanged_and_rejects_malformed() -> Result<(), TestFailure> {
    for seed in 0..6u64 {
        run_test("untranslated_forwarding", seed, |env| {
            let r = untranslated::run(env, seed, &Config::default())?;
            anyhow::ensure!(
                r.forwarded > 0 && r.completed > 0 && r.dropped > 0,
                "stimulus too narrow: {r:?}"
            );
            Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn full_rate_without_backpressure() -> Result<(), TestFailure> {
    run_test("untranslated_full_rate", 7, |env| {
        let cfg = Config {
            tlps: 1000,
            malformed_pct: 0,
            gap_pct: 0,
            backpressure_pct: 0,
        };
        let r = untranslated::run(env, 7, &cfg)?;
        // One TLP per clock: 1000 TLPs, one cycle of ingress latency, a few to drain and the
        // MALFORMED read at the end.
        anyhow::ensure!(
            r.cycles <= 1000 + 16,
            "{} cycles for 1000 TLPs: not one per clock",
            r.cycles
        );
        Ok(())
    })
}

fn transcript(dut_seed: u64, stim_seed: u64) -> Report {
    let mut env = Env::new(dut_seed);
    match untranslated::run(&mut env, stim_seed, &Config::default()) {
        Ok(r) => r,
        Err(e) => panic!("dut seed {dut_seed:#x}, stimulus seed {stim_seed:#x}: {e:#}"),
    }
}

#[test]
fn reset_randomization_does_not_change_results() {
    // Different random initial state, same stimulus: same transfers on the same cycles.
    let a = transcript(1, 42);
    for dut_seed in [2u64, 3, 0xffff_ffff_ffff_ffff] {
        assert_eq!(
            transcript(dut_seed, 42),
            a,
            "DUT seed {dut_seed:#x} changed the outcome"
        );
    }
}

#[test]
fn four_duts_in_parallel_threads() {
    let serial: Vec<Report> = (0..4u64).map(|s| transcript(100 + s, 200 + s)).collect();
    let parallel: Vec<Report> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4u64)
            .map(|s| scope.spawn(move || transcript(100 + s, 200 + s)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("simulation thread panicked"))
            .collect()
    });
    assert_eq!(
        parallel, serial,
        "a DUT simulated in parallel differs from the same DUT run alone"
    );
}
