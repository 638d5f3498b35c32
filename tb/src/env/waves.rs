//! Waveforms: where FST files go, the GTKWave save file that groups the interface signals,
//! and the test runner that re-runs a failed test with tracing on.
//!
//! Tracing is compiled into every build and off by default (it costs nothing when off).
//! `IOMMU_TB_WAVES=1` traces every run; otherwise a failing run is repeated with the same
//! seed and tracing on, and the failure names the waveform it wrote. The simulation is
//! deterministic for a seed, so the traced re-run shows the same failure.

use std::cell::RefCell;
use std::fs;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::dut::Dut;
use crate::env::Env;

thread_local! {
    /// During a traced run: the first waveform's path and every waveform opened so far.
    static AUTO_TRACE: RefCell<Option<(PathBuf, Vec<PathBuf>)>> = const { RefCell::new(None) };
}

/// Opens a waveform for `dut` when this thread is inside a traced run: the first DUT a test
/// creates gets the run's path, later ones `<stem>-2.fst`, `<stem>-3.fst`, ...
pub fn auto_trace(dut: &mut Dut) {
    AUTO_TRACE.with(|t| {
        if let Some((base, opened)) = &mut *t.borrow_mut() {
            let path = if opened.is_empty() {
                base.clone()
            } else {
                let stem = base
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                base.with_file_name(format!("{stem}-{}.fst", opened.len() + 1))
            };
            if dut.trace_start(&path).is_ok() {
                opened.push(path);
            }
        }
    });
}

/// Folder for waveforms: `$IOMMU_TB_WAVES_DIR`, else `target/waves` in the workspace.
pub fn waves_dir() -> PathBuf {
    match std::env::var_os("IOMMU_TB_WAVES_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let tb = Path::new(env!("CARGO_MANIFEST_DIR"));
            tb.parent().unwrap_or(tb).join("target").join("waves")
        }
    }
}

/// True when `IOMMU_TB_WAVES` asks for a waveform of every run.
pub fn always_trace() -> bool {
    matches!(
        std::env::var("IOMMU_TB_WAVES")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Ok("1" | "true" | "yes" | "on")
    )
}

/// `<dir>/<name>-seed<seed>.fst`, with `name` reduced to a safe file name.
pub fn wave_path(dir: &Path, name: &str, seed: u64) -> PathBuf {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{safe}-seed{seed:016x}.fst"))
}

/// Interface signals of `iommu_top`, grouped as GTKWave shows them: (group, [(name, width)]).
const GROUPS: &[(&str, &[(&str, u32)])] = &[
    ("Clock and reset", &[("clk_i", 1), ("rst_ni", 1)]),
    (
        "TLP ingress",
        &[
            ("rx_valid_i", 1),
            ("rx_ready_o", 1),
            ("rx_nprefix_i", 3),
            ("rx_prefix_i", 128),
            ("rx_hdr_i", 128),
        ],
    ),
    (
        "TLP egress",
        &[("tx_valid_o", 1), ("tx_ready_i", 1), ("tx_hdr_o", 128)],
    ),
    (
        "Completion",
        &[("cpl_valid_o", 1), ("cpl_ready_i", 1), ("cpl_hdr_o", 96)],
    ),
    (
        "CSR",
        &[
            ("csr_valid_i", 1),
            ("csr_ready_o", 1),
            ("csr_write_i", 1),
            ("csr_addr_i", 12),
            ("csr_size64_i", 1),
            ("csr_wdata_i", 64),
            ("csr_rvalid_o", 1),
            ("csr_rdata_o", 64),
            ("csr_error_o", 1),
        ],
    ),
    (
        "Memory",
        &[
            ("mem_req_valid_o", 1),
            ("mem_req_ready_i", 1),
            ("mem_req_write_o", 1),
            ("mem_req_addr_o", 64),
            ("mem_req_wdata_o", 64),
            ("mem_req_wstrb_o", 8),
            ("mem_rsp_valid_i", 1),
            ("mem_rsp_rdata_i", 64),
            ("mem_rsp_error_i", 1),
        ],
    ),
    ("Interrupts", &[("fault_irq_o", 1), ("inv_irq_o", 1)]),
];

/// Writes a GTKWave save file beside `fst` (same stem, `.gtkw`) that opens the waveform
/// with the interface signals in groups. Returns its path.
pub fn write_gtkw(fst: &Path) -> io::Result<PathBuf> {
    let mut s = String::new();
    s.push_str(&format!("[dumpfile] \"{}\"\n", fst.display()));
    s.push_str("[timestart] 0\n[sst_expanded] 1\n[signals_width] 260\n");
    for (group, sigs) in GROUPS {
        s.push_str(&format!("@800200\n-{group}\n"));
        for (name, width) in *sigs {
            if *width == 1 {
                s.push_str(&format!("@28\nTOP.iommu_top.{name}\n"));
            } else {
                s.push_str(&format!("@22\nTOP.iommu_top.{name}[{}:0]\n", width - 1));
            }
        }
        s.push_str(&format!("@1000200\n-{group}\n"));
    }
    let path = fst.with_extension("gtkw");
    fs::write(&path, s)?;
    Ok(path)
}

/// How one run of a test body ended, and the waveforms it wrote.
fn attempt<F>(seed: u64, trace: Option<&Path>, body: &F) -> (anyhow::Result<()>, Vec<PathBuf>)
where
    F: Fn(&mut Env) -> anyhow::Result<()>,
{
    AUTO_TRACE.with(|t| *t.borrow_mut() = trace.map(|p| (p.to_owned(), Vec::new())));
    let res = catch_unwind(AssertUnwindSafe(|| -> anyhow::Result<()> {
        let mut env = Env::new(seed);
        let r = body(&mut env).and_then(|()| env.check_assertions());
        env.dut.trace_stop();
        r
    }));
    let opened = AUTO_TRACE
        .with(|t| t.borrow_mut().take())
        .map(|(_, v)| v)
        .unwrap_or_default();
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
