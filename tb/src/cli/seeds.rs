//! The seeded commands: `regress`, `replay` and `coverage`, and shrinking failing seeds.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};

use iommu_tb::dut::waves;
use iommu_tb::env::harness::{self, TestFailure};
use iommu_tb::flows::{regress, shrink, untranslated};
use iommu_tb::pool;

/// What one seed runs, shared by `regress`, `replay`, `coverage` and the shrinker, so a
/// seed replays exactly.
#[derive(Clone, Debug)]
pub struct SeedPlan {
    /// Untranslated-path TLPs.
    pub tlps: usize,
    /// The kernel-level sequence (operations, mix, driver bugs).
    pub kernel: regress::Config,
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
    harness::run_test_in(&w.dir, w.always, "regress", seed, |env| {
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

/// Runs every seed of `list`; returns (passed, failed).
pub fn regress(
    list: &[u64],
    jobs: usize,
    w: &WaveOpts,
    plan: &SeedPlan,
    shrink_dir: Option<&Path>,
) -> Result<(usize, usize)> {
    let totals = Mutex::new(regress::Report::default());
    let progress = std::io::stderr().is_terminal();
    let t0 = Instant::now();
    let cpu0 = cpu_seconds();
    let results = pool::run(
        list,
        jobs,
        |&seed| regress_one(w, seed, plan, &totals),
        |_, r, done| {
            if let Err(f) = r {
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
        "judged requests: {} ({} translated, {} faults; {} sent while invalidations were executing, {} inside an unmap's open window), {} cycles ({} in the operations), {secs:.1} s; also {} untranslated-path TLPs",
        t.requests, t.translated, t.faults, t.concurrent, t.in_window, t.cycles, t.op_cycles, t.untranslated,
    );
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
        .filter_map(|r| r.as_ref().err().map(|f| f.seed))
        .collect();
    seeds_failed.sort_unstable();
    if !seeds_failed.is_empty() {
        eprintln!("failing seeds (replay with `iommu-tb replay --seed S` and the same options): {seeds_failed:?}");
        if let Some(d) = shrink_dir {
            for &seed in &seeds_failed {
                shrink_seed(seed, plan, d);
            }
        }
    }
    Ok((list.len() - seeds_failed.len(), seeds_failed.len()))
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
/// reproduces the failure; prints the vector's path (or why there is none).
fn shrink_seed(seed: u64, plan: &SeedPlan, dir: &Path) {
    let cfg = &plan.kernel;
    match shrink::shrink(seed, cfg, shrink::MAX_REPLAYS) {
        Ok(None) => eprintln!(
            "seed {seed}: the kernel-API sequence passes on a fresh system; nothing to shrink"
        ),
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
                Ok((path, _)) => eprintln!("shrunk vector: {}", path.display()),
                Err(e) => eprintln!("seed {seed}: {e:#}"),
            }
        }
        Err(e) => eprintln!("seed {seed}: not shrunk: {e:#}"),
    }
}

/// The regression's seeds with every request and descriptor sampled into functional
/// coverage; in a `--features coverage` build each seed's DUT also writes Verilator's
/// coverage, merged at the end with `verilator_coverage`.
pub fn coverage(list: &[u64], jobs: usize, out: &Path, plan: &SeedPlan) -> Result<(usize, usize)> {
    use iommu_tb::coverage::{genhtml_command, verilator_merge, Coverage};
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
    let total = Mutex::new(Coverage::new());
    let t0 = Instant::now();
    let dir = waves::waves_dir();
    let results = pool::run(
        list,
        jobs,
        |&seed| {
            harness::run_test_in(&dir, false, "coverage", seed, |env| {
                untranslated::run(env, seed, &ucfg)?;
                let mut k = regress::seed_system(env, seed, rcfg.quirks)?;
                let mut c = Coverage::new();
                regress::run_with_coverage(&mut k, seed, rcfg, Some(&mut c))?;
                if verilated {
                    let path = dat_dir.join(format!("seed-{seed}.dat"));
                    k.ops_mut().hw_mut().env.dut.coverage_write(&path)?;
                }
                total.lock().unwrap_or_else(|p| p.into_inner()).merge(&c);
                Ok(())
            })
        },
        |_, r, _| {
            if let Err(f) = r {
                eprintln!("\nFAIL {f}");
            }
        },
    );
    let cov = total.into_inner().unwrap_or_else(|p| p.into_inner());
    let report = cov.report();
    println!("{report}");
    let txt = out.join("functional.txt");
    std::fs::write(&txt, &report).with_context(|| format!("cannot write {}", txt.display()))?;
    println!("functional coverage report: {}", txt.display());
    if verilated {
        let mut dats: Vec<PathBuf> = std::fs::read_dir(&dat_dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "dat"))
            .collect();
        dats.sort();
        let v = verilator_merge(&dats, out)?;
        println!(
            "Verilator coverage ({} runs): `verilator_coverage --annotate` total {}/{} ({:.1}%); annotated sources: {}",
            dats.len(),
            v.covered,
            v.points,
            100.0 * v.covered as f64 / v.points.max(1) as f64,
            v.annotated.display()
        );
        for (ty, (hit, n)) in &v.by_type {
            println!(
                "  {ty:<8} {hit:>6}/{n:<6} points hit ({:.1}%)",
                100.0 * *hit as f64 / (*n).max(1) as f64
            );
        }
        println!(
            "lcov: {} (one count per line, so it hides partly covered lines; the point counts above are exact); render: {}",
            v.info.display(),
            genhtml_command(&v.info, out)
        );
    } else {
        println!(
            "Verilator line/toggle coverage: not in this build; run `cargo run --release -p iommu-tb --features coverage -- coverage` for it"
        );
    }
    eprintln!("{:.1} s", t0.elapsed().as_secs_f64());
    let failed = results.iter().filter(|r| r.is_err()).count();
    Ok((list.len() - failed, failed))
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
