//! The seeded commands: `regress`, `replay` and `coverage`, and shrinking failing seeds.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};

use iommu_tb::dut::waves;
use iommu_tb::env::{run_test_in, TestFailure};
use iommu_tb::flows::{regress, shrink, untranslated};
use iommu_tb::pool;
use iommu_tb::report::Case;

use super::cases::{self, SeedResult};

/// What one seed runs, shared by `regress`, `replay`, `coverage` and the shrinker, so a
/// seed replays exactly.
#[derive(Clone, Debug)]
pub struct SeedPlan {
    /// Untranslated-path TLPs.
    pub tlps: usize,
    /// The kernel-level sequence (operations, mix, driver bugs).
    pub kernel: regress::Config,
}

impl SeedPlan {
    /// The command that reproduces `seed` exactly: every option that changes what a seed
    /// runs (`--tlps`, `--ops`, `--weights` where they differ from the default mix,
    /// `--driver-bug`).
    pub fn replay_command(&self, seed: u64) -> String {
        let mut s = format!(
            "iommu-tb replay --seed {seed} --tlps {} --ops {}",
            self.tlps, self.kernel.ops
        );
        let default = iommu_model::stimulus::Weights::default().entries();
        let changed: Vec<String> = self
            .kernel
            .weights
            .entries()
            .iter()
            .zip(default.iter())
            .filter(|(w, d)| w.1 != d.1)
            .map(|((name, w), _)| format!("{name}={w}"))
            .collect();
        if !changed.is_empty() {
            s.push_str(" --weights ");
            s.push_str(&changed.join(","));
        }
        for b in self.kernel.quirks.names() {
            s.push_str(" --driver-bug ");
            s.push_str(b);
        }
        s
    }
}

/// What a seeded command did: counts, and a JUnit case per seed in seed order.
#[derive(Clone, Debug, Default)]
pub struct SeedRun {
    pub passed: usize,
    pub failed: usize,
    pub cases: Vec<Case>,
}

/// Where a seeded run writes its waveforms.
#[derive(Clone, Debug)]
pub struct WaveOpts {
    pub dir: PathBuf,
    /// Every run, not only the failing ones.
    pub always: bool,
}

impl WaveOpts {
    /// `--waves DIR` traces every run into DIR; without it, failing runs are re-run traced
    /// into the default folder (`IOMMU_TB_WAVES=1` traces every run there).
    pub fn from_arg(dir: Option<PathBuf>) -> Self {
        Self {
            always: dir.is_some() || waves::always_trace(),
            dir: dir.unwrap_or_else(waves::waves_dir),
        }
    }
}

/// One seed of the main job: random TLPs through the untranslated path, then, on the same
/// DUT, a random kernel-API sequence with requests after every operation.
pub fn regress_one(
    w: &WaveOpts,
    seed: u64,
    plan: &SeedPlan,
    totals: &Mutex<regress::Report>,
) -> Result<(), TestFailure> {
    let ucfg = untranslated::Config {
        tlps: plan.tlps,
        ..untranslated::Config::default()
    };
    run_test_in(&w.dir, w.always, "regress", seed, |env| {
        let u = untranslated::run(env, seed, &ucfg)?;
        let mut k = regress::seed_system(env, seed, plan.kernel.quirks)?;
        let mut r = regress::run(&mut k, seed, &plan.kernel)?;
        r.untranslated = u.sent as u64;
        *totals.lock().unwrap_or_else(|p| p.into_inner()) += r;
        Ok(())
    })
}

/// The seeds `first, first+1, ...` of shard `k/n` (all of them without a shard).
pub fn seed_list(seeds: u64, first: u64, shard: Option<(u64, u64)>) -> Vec<u64> {
    (0..seeds)
        .filter(|i| shard.map_or(true, |(k, n)| i % n == k - 1))
        .map(|i| first.wrapping_add(i))
        .collect()
}

/// Runs every seed of `list`; returns the counts and a JUnit case per seed (classname
/// `iommu-tb.regress`).
pub fn regress(
    list: &[u64],
    jobs: usize,
    w: &WaveOpts,
    plan: &SeedPlan,
    shrink_dir: Option<&Path>,
) -> Result<SeedRun> {
    let totals = Mutex::new(regress::Report::default());
    let progress = std::io::stderr().is_terminal();
    let t0 = Instant::now();
    let cpu0 = cpu_seconds();
    let results = pool::run(
        list,
        jobs,
        |&seed| {
            let t = Instant::now();
            let r = regress_one(w, seed, plan, &totals);
            SeedResult {
                seed,
                seconds: t.elapsed().as_secs_f64(),
                failure: r.err().map(|f| f.to_string()),
            }
        },
        |_, r, done| {
            if let Some(f) = &r.failure {
                eprintln!("\nFAIL {f}");
            }
            if progress && (done % 10 == 0 || done == list.len()) {
                eprint!(
                    "\r[{done}/{}] {:.1} s",
                    list.len(),
                    t0.elapsed().as_secs_f64()
                );
            }
        },
    );
    eprintln!();
    let t = totals.into_inner().unwrap_or_else(|p| p.into_inner());
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds().map(|c| c - cpu0.unwrap_or(0.0));
    eprintln!(
        "judged requests: {} ({} translated, {} faults; {} sent while invalidations were executing, {} inside an unmap's open window), {} cycles ({} in the operations), {secs:.1} s; also {} untranslated-path TLPs; {} batches resubmitted after a device-TLB invalidation time-out",
        t.requests, t.translated, t.faults, t.concurrent, t.in_window, t.cycles, t.op_cycles, t.untranslated, t.resubmits,
    );
    if t.stream_time.total() > 0 {
        eprintln!(
            "cycles of the request streams: {} (see BENCHMARKS.md, \"Where the main job's cycles go\")",
            t.stream_time
        );
    }
    if t.requests > 0 {
        let used = jobs.min(list.len()).max(1);
        eprintln!(
            "translated: {:.1}% of judged requests; {:.0} judged requests/s per job ({} requests / {secs:.2} s wall / {used} jobs){}",
            100.0 * t.translated as f64 / t.requests as f64,
            t.requests as f64 / secs.max(1e-9) / used as f64,
            t.requests,
            match cpu {
                Some(c) if c > 0.0 => format!(
                    "; {:.0} per CPU-second ({c:.2} s of process CPU time: the wall figure drops on a shared machine, this one does not)",
                    t.requests as f64 / c
                ),
                _ => String::new(),
            }
        );
    }
    let mut seeds_failed: Vec<u64> = results
        .iter()
        .filter(|r| r.failure.is_some())
        .map(|r| r.seed)
        .collect();
    seeds_failed.sort_unstable();
    let mut shrunk = std::collections::BTreeMap::new();
    if !seeds_failed.is_empty() {
        eprintln!("failing seeds: {seeds_failed:?}; replay with");
        for &seed in &seeds_failed {
            eprintln!("  {}", plan.replay_command(seed));
        }
        if let Some(d) = shrink_dir {
            for &seed in &seeds_failed {
                if let Some(p) = shrink_seed(seed, plan, d) {
                    shrunk.insert(seed, p);
                }
            }
        }
    }
    let cases = results
        .iter()
        .map(|r| {
            let extra: Vec<String> = shrunk
                .get(&r.seed)
                .map(|p: &PathBuf| format!("shrunk vector: {}", p.display()))
                .into_iter()
                .collect();
            cases::seed_case("regress", r, &plan.replay_command(r.seed), &extra)
        })
        .collect();
    Ok(SeedRun {
        passed: list.len() - seeds_failed.len(),
        failed: seeds_failed.len(),
        cases,
    })
}

/// `replay`: one seed, with its waveform when asked for, shrunk when it fails.
pub fn replay(
    seed: u64,
    w: &WaveOpts,
    plan: &SeedPlan,
    shrink_dir: Option<&Path>,
) -> (usize, usize) {
    let totals = Mutex::new(regress::Report::default());
    match regress_one(w, seed, plan, &totals) {
        Ok(()) => {
            if w.always {
                eprintln!(
                    "waveform: {}",
                    waves::wave_path(&w.dir, "regress", seed).display()
                );
            }
            (1, 0)
        }
        Err(f) => {
            eprintln!("FAIL {f}");
            if let Some(d) = shrink_dir {
                shrink_seed(seed, plan, d);
            }
            (0, 1)
        }
    }
}

/// Shrinks a failing seed's kernel-API sequence and writes it as a YAML vector that
/// reproduces the failure; prints the vector's path (or why there is none) and returns it.
fn shrink_seed(seed: u64, plan: &SeedPlan, dir: &Path) -> Option<PathBuf> {
    let cfg = &plan.kernel;
    match shrink::shrink(seed, cfg, shrink::MAX_REPLAYS) {
        Ok(None) => {
            eprintln!(
                "seed {seed}: the kernel-API sequence passes on a fresh system, so no vector \
                 holds this failure: it needs what ran on the unit before the sequence (the \
                 seed's untranslated-path TLPs and the timing they shift); `iommu-tb replay \
                 --seed {seed}` reproduces it"
            );
            None
        }
        Ok(Some(sh)) => {
            eprintln!(
                "seed {seed}: shrunk from {} operations and {} requests to {} and {} in {} replays{} ({:.1} s)",
                sh.original_ops,
                sh.original_requests,
                sh.ops(),
                sh.requests(),
                sh.replays,
                if sh.bound_hit {
                    format!(", stopped at the bound of {}", shrink::MAX_REPLAYS)
                } else {
                    String::new()
                },
                sh.elapsed.as_secs_f64()
            );
            match shrink::write_vector(&sh, dir, cfg.quirks) {
                Ok((path, _)) => {
                    eprintln!("shrunk vector: {}", path.display());
                    Some(path)
                }
                Err(e) => {
                    eprintln!("seed {seed}: {e:#}");
                    None
                }
            }
        }
        Err(e) => {
            eprintln!("seed {seed}: not shrunk: {e:#}");
            None
        }
    }
}

/// The regression's seeds with every request and descriptor sampled into functional
/// coverage; in a `--features coverage` build each seed's DUT also writes Verilator's
/// coverage, merged at the end with `verilator_coverage`. With `html`, also writes the
/// coverage page (bins, holes, closure curve) into that folder.
pub fn coverage(
    list: &[u64],
    jobs: usize,
    out: &Path,
    plan: &SeedPlan,
    html: Option<&Path>,
) -> Result<SeedRun> {
    use iommu_tb::coverage::{genhtml_command, verilator_merge, Closure, Coverage};
    let verilated = cfg!(feature = "coverage");
    let dat_dir = out.join("verilator");
    std::fs::create_dir_all(&dat_dir)
        .with_context(|| format!("cannot create {}", dat_dir.display()))?;
    for e in std::fs::read_dir(&dat_dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("seed-") && name.ends_with(".dat") {
            std::fs::remove_file(e.path())?;
        }
    }
    let ucfg = untranslated::Config {
        tlps: plan.tlps,
        ..untranslated::Config::default()
    };
    let rcfg = &plan.kernel;
    eprintln!(
        "coverage: {} seeds, {jobs} jobs{}",
        list.len(),
        if verilated {
            "; Verilator coverage on"
        } else {
            ""
        }
    );
    // Each seed's bins, folded in seed order as the seeds finish: the closure curve.
    let closure = Mutex::new(Closure::new());
    let position: std::collections::HashMap<u64, usize> =
        list.iter().enumerate().map(|(i, &s)| (s, i)).collect();
    let t0 = Instant::now();
    let dir = waves::waves_dir();
    let results = pool::run(
        list,
        jobs,
        |&seed| {
            let t = Instant::now();
            let mine: Mutex<Option<Coverage>> = Mutex::new(None);
            let r = run_test_in(&dir, false, "coverage", seed, |env| {
                untranslated::run(env, seed, &ucfg)?;
                let mut k = regress::seed_system(env, seed, rcfg.quirks)?;
                let mut c = Coverage::new();
                regress::run_with_coverage(&mut k, seed, rcfg, Some(&mut c))?;
                if verilated {
                    let path = dat_dir.join(format!("seed-{seed}.dat"));
                    k.ops_mut().hw_mut().env.dut.coverage_write(&path)?;
                }
                *mine.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
                Ok(())
            });
            // A failed seed adds no bins (its run stopped early), but counts as a seed.
            let cov = mine.into_inner().unwrap_or_else(|p| p.into_inner());
            let cov = if r.is_ok() { cov } else { None };
            if let Some(&i) = position.get(&seed) {
                closure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .add(i, seed, cov);
            }
            SeedResult {
                seed,
                seconds: t.elapsed().as_secs_f64(),
                failure: r.err().map(|f| f.to_string()),
            }
        },
        |_, r, _| {
            if let Some(f) = &r.failure {
                eprintln!("\nFAIL {f}");
            }
        },
    );
    let (cov, curve) = closure
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .finish();
    let report = cov.report();
    println!("{report}");
    let txt = out.join("functional.txt");
    std::fs::write(&txt, &report).with_context(|| format!("cannot write {}", txt.display()))?;
    println!("functional coverage report: {}", txt.display());
    let mut line = None;
    if verilated {
        let mut dats: Vec<PathBuf> = std::fs::read_dir(&dat_dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "dat"))
            .collect();
        dats.sort();
        let v = verilator_merge(&dats, out)?;
        let mut summary = vec![format!(
            "{} runs: `verilator_coverage --annotate` total {}/{} ({:.1}%); annotated sources: {}",
            dats.len(),
            v.covered,
            v.points,
            100.0 * v.covered as f64 / v.points.max(1) as f64,
            v.annotated.display()
        )];
        println!("Verilator coverage ({})", summary[0]);
        for (ty, (hit, n)) in &v.by_type {
            let l = format!(
                "{ty:<8} {hit:>6}/{n:<6} points hit ({:.1}%)",
                100.0 * *hit as f64 / (*n).max(1) as f64
            );
            println!("  {l}");
            summary.push(l);
        }
        let render = genhtml_command(&v.info, out);
        println!(
            "lcov: {} (one count per line, so it hides partly covered lines; the point counts above are exact); render: {render}",
            v.info.display(),
        );
        if let Some(h) = html {
            line = Some(line_coverage(summary, &v.info, out, h, &render));
        }
    } else {
        println!(
            "Verilator line/toggle coverage: not in this build; run `cargo run --release -p iommu-tb --features coverage -- coverage` for it"
        );
    }
    if let Some(h) = html {
        let first = list.first().copied().unwrap_or(0);
        let last = list.last().copied().unwrap_or(0);
        let page = iommu_tb::coverage::html::Page {
            run: format!(
                "iommu-tb coverage: {} seeds ({first}..={last}), {} untranslated TLPs and {} kernel-API operations per seed; {} failed",
                list.len(),
                plan.tlps,
                plan.kernel.ops,
                results.iter().filter(|r| r.failure.is_some()).count()
            ),
            cov: &cov,
            closure: &curve,
            line,
        };
        let path = iommu_tb::coverage::html::write(h, &page)?;
        println!("coverage page: {}", path.display());
    }
    eprintln!("{:.1} s", t0.elapsed().as_secs_f64());
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    let cases = results
        .iter()
        .map(|r| cases::seed_case("coverage", r, &plan.replay_command(r.seed), &[]))
        .collect();
    Ok(SeedRun {
        passed: list.len() - failed,
        failed,
        cases,
    })
}

/// The page's line-coverage part: renders the lcov HTML into `out/html` with `genhtml` when
/// it is installed and links it; else links the `.info` file and says how to render it.
fn line_coverage(
    summary: Vec<String>,
    info: &Path,
    out: &Path,
    page_dir: &Path,
    render: &str,
) -> iommu_tb::coverage::html::LineCoverage {
    use iommu_tb::coverage::html::{relative_href, LineCoverage};
    let html_dir = out.join("html");
    let genhtml = std::process::Command::new("genhtml")
        .arg("--quiet")
        .arg("-o")
        .arg(&html_dir)
        .arg(info)
        .output();
    let cwd = std::env::current_dir().unwrap_or_default();
    let abs = |p: &Path| cwd.join(p);
    let page_dir = abs(page_dir);
    match genhtml {
        Ok(o) if o.status.success() => {
            let index = html_dir.join("index.html");
            println!("lcov HTML: {}", index.display());
            LineCoverage {
                summary,
                href: relative_href(&page_dir, &abs(&index)),
                label: "lcov HTML (line coverage by source file)".into(),
                note: None,
            }
        }
        r => {
            let why = match r {
                Ok(o) => format!(
                    "genhtml failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(_) => "genhtml (Debian package lcov) is not installed".into(),
            };
            eprintln!("lcov HTML not rendered: {why}");
            LineCoverage {
                summary,
                href: relative_href(&page_dir, &abs(info)),
                label: format!("lcov data ({})", info.display()),
                note: Some(format!(
                    "HTML not rendered: {why}; render it with `{render}`"
                )),
            }
        }
    }
}

/// CPU time this process has used (user + system, every thread), from `/proc/self/stat`
/// (in USER_HZ = 100 ticks per second); `None` where there is no such file.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
