//! The test runner that re-runs a failed test with tracing on.
//!
//! `IOMMU_TB_WAVES=1` traces every run; otherwise a failing run is repeated with the same
//! seed and tracing on, and the failure names the waveform it wrote. The simulation is
//! deterministic for a seed, so the traced re-run shows the same failure.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::dut::waves::{always_trace, wave_path, waves_dir, write_gtkw, Waves};
use crate::env::Env;

/// How one run of a test body ended, and the waveforms it wrote.
fn attempt<F>(seed: u64, trace: Option<&Path>, body: &F) -> (anyhow::Result<()>, Vec<PathBuf>)
where
    F: Fn(&mut Env) -> anyhow::Result<()>,
{
    let waves = trace.map_or_else(Waves::off, Waves::to);
    let res = catch_unwind(AssertUnwindSafe(|| -> anyhow::Result<()> {
        let mut env = Env::with_waves(seed, waves.clone());
        let r = body(&mut env).and_then(|()| env.check_assertions());
        env.dut.trace_stop();
        r
    }));
    let opened = waves.opened();
    (attempt_result(res), opened)
}

fn attempt_result(res: std::thread::Result<anyhow::Result<()>>) -> anyhow::Result<()> {
    match res {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panic with a non-string payload".to_owned());
            Err(anyhow!("panicked: {msg}"))
        }
    }
}

/// A failed test: what failed, with which seed, and the waveform of the failing run.
pub struct TestFailure {
    pub name: String,
    pub seed: u64,
    pub cause: anyhow::Error,
    /// The waveform of the first DUT the test created.
    pub waveform: PathBuf,
    /// Waveforms of further DUTs the test created, in order.
    pub more_waveforms: Vec<PathBuf>,
    pub gtkw: Option<PathBuf>,
    /// The traced re-run passed: the failure did not reproduce with the same seed.
    pub flaky: bool,
}

impl std::fmt::Display for TestFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} failed with seed {:#018x}: {:#}",
            self.name, self.seed, self.cause
        )?;
        write!(f, "  waveform: {}", self.waveform.display())?;
        for w in &self.more_waveforms {
            write!(f, "\n  waveform: {}", w.display())?;
        }
        if self.flaky {
            write!(
                f,
                " (the traced re-run passed: the failure is not deterministic)"
            )?;
        }
        if let Some(g) = &self.gtkw {
            write!(f, "\n  view it:  gtkwave {}", g.display())?;
        }
        Ok(())
    }
}

// `cargo test` prints a failing test's error with Debug: make that the readable form.
impl std::fmt::Debug for TestFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for TestFailure {}

/// Runs a directed test body on a fresh, reset DUT seeded with `seed`.
///
/// On failure the error says the seed and the path of an FST waveform of the failing run
/// (and a `.gtkw` save file for it): written during the run when `IOMMU_TB_WAVES=1`, else
/// by re-running the body with the same seed and tracing on.
pub fn run_test<F>(name: &str, seed: u64, body: F) -> Result<(), TestFailure>
where
    F: Fn(&mut Env) -> anyhow::Result<()>,
{
    run_test_in(&waves_dir(), always_trace(), name, seed, body)
}

/// [`run_test`] with the waveform folder and the always-trace switch given explicitly.
pub fn run_test_in<F>(
    dir: &Path,
    traced: bool,
    name: &str,
    seed: u64,
    body: F,
) -> Result<(), TestFailure>
where
    F: Fn(&mut Env) -> anyhow::Result<()>,
{
    let path = wave_path(dir, name, seed);
    let (first, mut opened) = attempt(seed, traced.then_some(path.as_path()), &body);
    let cause = match first {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let mut flaky = false;
    if !traced {
        let (again, o) = attempt(seed, Some(&path), &body);
        flaky = again.is_ok();
        opened = o;
    }
    let more_waveforms = opened.into_iter().filter(|p| *p != path).collect();
    Err(TestFailure {
        name: name.to_owned(),
        seed,
        cause,
        gtkw: write_gtkw(&path).ok(),
        waveform: path,
        more_waveforms,
        flaky,
    })
}
