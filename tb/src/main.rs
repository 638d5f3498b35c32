//! `iommu-tb`: command-line front end of the testbench.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use iommu_tb::dut::{Dut, DutIn};
use iommu_tb::regress;
use iommu_tb::untranslated::{self, Config};
use iommu_tb::waves::{self, TestFailure};

#[derive(Parser)]
#[command(
    name = "iommu-tb",
    version,
    about = "Simulate and check the VT-d translation unit"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// What one seed does, shared by `regress` and `replay` so a seed replays exactly.
#[derive(Args, Clone)]
struct SeedArgs {
    /// Untranslated-path TLPs per seed.
    #[arg(long, default_value_t = 300)]
    tlps: usize,
    /// Kernel-API operations per seed (each followed by 4 judged requests).
    #[arg(long, default_value_t = 30)]
    ops: usize,
    /// Operation mix on top of the default, e.g. `map=6,unmap=4,sva_bind=0`
    /// (names: domain_alloc, attach_device, enable_dma_pasid, disable_dma_pasid,
    /// attach_device_pasid, detach_device_pasid, map, unmap, iotlb_sync, dma_map_single,
    /// dma_unmap_single, mm_create, mm_map, mm_unmap, sva_bind, sva_unbind, fpd: set the
    /// fault-processing-disable bit of a context / PASID-directory / PASID entry, cleared by
    /// the next operation, set_root_entry: SRTP again with the global invalidations).
    #[arg(long, value_parser = parse_weights)]
    weights: Option<iommu_model::stimulus::Weights>,
    /// Do not shrink failing seeds.
    #[arg(long)]
    no_shrink: bool,
    /// Where shrunk failing seeds are written as YAML vectors (`seed-S.yaml`).
    #[arg(long, value_name = "DIR", default_value = "target/shrunk")]
    shrink_dir: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run YAML test vectors (files, or directories of *.yaml), in parallel over cores.
    Run {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Random regression: one checked run per seed, in parallel over cores.
    Regress {
        /// Number of seeds.
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        /// First seed (seeds are SEED, SEED+1, ...).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Worker threads (default: every core).
        #[arg(long)]
        jobs: Option<usize>,
        /// Run only shard K of N (1-based, `K/N`): seed i belongs to shard (i mod N) + 1.
        #[arg(long, value_parser = parse_shard)]
        shard: Option<(u64, u64)>,
        /// Write a waveform of every run into DIR (default: only failing runs, into target/waves).
        #[arg(long, value_name = "DIR")]
        waves: Option<PathBuf>,
        #[command(flatten)]
        per_seed: SeedArgs,
        /// YAML vectors run before the seeds (default: the project's `vectors/`; with
        /// `--shard`, only shard 1 runs them).
        #[arg(long, value_name = "DIR")]
        vectors: Option<PathBuf>,
        /// Run only the random seeds.
        #[arg(long)]
        no_vectors: bool,
    },
    /// Re-run one seed of the regression (with a waveform when --waves is given).
    Replay {
        /// The seed to run (as printed by `regress`).
        #[arg(long)]
        seed: u64,
        /// Write the seed's waveforms into DIR.
        #[arg(long, value_name = "DIR")]
        waves: Option<PathBuf>,
        #[command(flatten)]
        per_seed: SeedArgs,
    },
    /// Checked TLPs per second (hit-heavy and miss-heavy mixes) through the streaming
    /// scoreboard, with and without a waveform being written.
    Bench {
        #[arg(long, default_value_t = 200_000)]
        tlps: usize,
    },
    /// Translation figures: cycles per walk (4K/2M/1G, first and second stage), the hit
    /// path's latency and throughput.
    BenchXlate {
        /// Memory latencies to measure walks at (cycles).
        #[arg(long, value_delimiter = ',', default_value = "1,8")]
        latency: Vec<u32>,
        /// Hits in the throughput stream.
        #[arg(long, default_value_t = 1_000_000)]
        hits: u64,
    },
    /// Simulation speed of the bridge: the `sim` FuseSoC main's stimulus, driven from Rust.
    BenchBridge {
        #[arg(long, default_value_t = 2_000_000)]
        cycles: u64,
        /// Trace to this FST file while measuring.
        #[arg(long, value_name = "FILE")]
        waves: Option<PathBuf>,
    },
    /// The regression with functional coverage (bins and holes); with `--features
    /// coverage`, also Verilator line/toggle coverage merged into an lcov .info file.
    Coverage {
        #[arg(long, default_value_t = 50)]
        seeds: u64,
        /// First seed (seeds are SEED, SEED+1, ...).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Worker threads (default: every core).
        #[arg(long)]
        jobs: Option<usize>,
        /// Where the report, the per-seed .dat files and the merged .info go.
        #[arg(long, value_name = "DIR", default_value = "target/coverage")]
        out: PathBuf,
        #[arg(long, default_value_t = 300)]
        tlps: usize,
        #[arg(long, default_value_t = 30)]
        ops: usize,
    },
}

/// The operation mix chosen on the command line (`--weights`), for every seed this
/// process runs or shrinks.
static WEIGHTS: std::sync::OnceLock<iommu_model::stimulus::Weights> = std::sync::OnceLock::new();

/// Makes the command line's operation mix the one every seed of this process uses.
fn use_weights(a: &SeedArgs) {
    if let Some(w) = a.weights {
        let _ = WEIGHTS.set(w);
    }
}

/// The kernel-level configuration of one seed.
fn kernel_config(ops: usize) -> regress::Config {
    regress::Config {
        ops,
        weights: WEIGHTS.get().copied().unwrap_or_default(),
        ..regress::Config::default()
    }
}

fn parse_weights(s: &str) -> Result<iommu_model::stimulus::Weights, String> {
    iommu_model::stimulus::Weights::parse(s)
}

fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let (k, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}`: expected K/N, e.g. 2/4"))?;
    let k: u64 = k
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: K is not a number"))?;
    let n: u64 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: N is not a number"))?;
    if n == 0 || k == 0 || k > n {
        return Err(format!("`{s}`: need 1 <= K <= N"));
    }
    Ok((k, n))
}

/// One seed of the main job: random TLPs through the untranslated path, then, on the same
/// DUT, a random kernel-API sequence with requests after every operation.
fn regress_one(
    dir: &std::path::Path,
    always: bool,
    seed: u64,
    tlps: usize,
    ops: usize,
    totals: &Mutex<regress::Report>,
) -> Result<(), TestFailure> {
    let cfg = Config {
        tlps,
        ..Config::default()
    };
    let rcfg = kernel_config(ops);
    waves::run_test_in(dir, always, "regress", seed, |env| {
        untranslated::run(env, seed, &cfg)?;
        let mut k = regress::seed_system(env, seed, rcfg.quirks)?;
        let r = regress::run(&mut k, seed, &rcfg)?;
        *totals.lock().unwrap_or_else(|p| p.into_inner()) += r;
        Ok(())
    })
}

#[allow(clippy::too_many_arguments)]
fn regress(
    seeds: u64,
    first: u64,
    jobs: Option<usize>,
    shard: Option<(u64, u64)>,
    waves_dir: Option<PathBuf>,
    tlps: usize,
    ops: usize,
    shrink_dir: Option<&std::path::Path>,
) -> Result<(usize, usize)> {
    let list: Vec<u64> = (0..seeds)
        .filter(|i| shard.map_or(true, |(k, n)| i % n == k - 1))
        .map(|i| first.wrapping_add(i))
        .collect();
    let jobs = jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let always = waves_dir.is_some() || waves::always_trace();
    let dir = waves_dir.unwrap_or_else(waves::waves_dir);
    let shard_txt = shard
        .map(|(k, n)| format!(", shard {k}/{n}"))
        .unwrap_or_default();
    eprintln!(
        "regress: {} seeds from {first}{shard_txt}, {jobs} jobs; per seed {tlps} untranslated TLPs and {ops} kernel operations",
        list.len()
    );
    let totals = Mutex::new(regress::Report::default());
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let progress = std::io::stderr().is_terminal();
    let failures: Mutex<Vec<TestFailure>> = Mutex::new(Vec::new());
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = list.get(i) else { break };
                if let Err(f) = regress_one(&dir, always, seed, tlps, ops, &totals) {
                    eprintln!("\nFAIL {f}");
                    failures.lock().unwrap_or_else(|p| p.into_inner()).push(f);
                }
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if progress && (d % 10 == 0 || d == list.len()) {
                    eprint!("\r[{d}/{}] {:.1} s", list.len(), t0.elapsed().as_secs_f64());
                }
            });
        }
    });
    eprintln!();
    let t = totals.into_inner().unwrap_or_else(|p| p.into_inner());
    eprintln!(
        "judged requests: {} ({} translated, {} faults; {} sent while invalidations were executing, {} inside an unmap's open window), {} cycles, {:.1} s",
        t.requests,
        t.translated,
        t.faults,
        t.concurrent,
        t.in_window,
        t.cycles,
        t0.elapsed().as_secs_f64()
    );
    let failed = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut seeds_failed: Vec<u64> = failed.iter().map(|f| f.seed).collect();
    seeds_failed.sort_unstable();
    if !seeds_failed.is_empty() {
        eprintln!("failing seeds (replay with `iommu-tb replay --seed S`): {seeds_failed:?}");
        if let Some(d) = shrink_dir {
            for &seed in &seeds_failed {
                shrink_seed(seed, ops, d);
            }
        }
    }
    Ok((list.len() - failed.len(), failed.len()))
}

/// Shrinks a failing seed's kernel-API sequence and writes it as a YAML vector that
/// reproduces the failure; prints the vector's path (or why there is none).
fn shrink_seed(seed: u64, ops: usize, dir: &std::path::Path) {
    use iommu_tb::shrink;
    let cfg = kernel_config(ops);
    match shrink::shrink(seed, &cfg, shrink::MAX_REPLAYS) {
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
fn coverage(
    seeds: u64,
    first: u64,
    jobs: Option<usize>,
    out: &std::path::Path,
    tlps: usize,
    ops: usize,
) -> Result<(usize, usize)> {
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
    let ucfg = Config {
        tlps,
        ..Config::default()
    };
    let rcfg = kernel_config(ops);
    let list: Vec<u64> = (0..seeds).map(|i| first.wrapping_add(i)).collect();
    let jobs = jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    eprintln!(
        "coverage: {} seeds from {first}, {jobs} jobs{}",
        list.len(),
        if verilated {
            "; Verilator coverage on"
        } else {
            ""
        }
    );
    let total = Mutex::new(Coverage::new());
    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<TestFailure>> = Mutex::new(Vec::new());
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = list.get(i) else { break };
                let r = waves::run_test_in(&waves::waves_dir(), false, "coverage", seed, |env| {
                    untranslated::run(env, seed, &ucfg)?;
                    let mut k = regress::seed_system(env, seed, rcfg.quirks)?;
                    let mut c = Coverage::new();
                    regress::run_with_coverage(&mut k, seed, &rcfg, Some(&mut c))?;
                    if verilated {
                        let path = dat_dir.join(format!("seed-{seed}.dat"));
                        k.ops_mut().hw_mut().env.dut.coverage_write(&path)?;
                    }
                    total.lock().unwrap_or_else(|p| p.into_inner()).merge(&c);
                    Ok(())
                });
                if let Err(f) = r {
                    eprintln!("\nFAIL {f}");
                    failures.lock().unwrap_or_else(|p| p.into_inner()).push(f);
                }
            });
        }
    });
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
    let failed = failures
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .len();
    Ok((list.len() - failed, failed))
}

fn bench_bridge(cycles: u64, waves: Option<PathBuf>) -> Result<()> {
    let mut dut = Dut::new(1);
    if let Some(p) = &waves {
        dut.trace_start(p)?;
    }
    dut.reset(4);
    let mut inp = DutIn {
        rst_n: true,
        tx_ready: true,
        cpl_ready: true,
        ..DutIn::default()
    };
    // Same register reads and RTADDR write as tb/cpp/sim_main.cpp.
    for (write, addr, size64, wdata) in [
        (false, 0x000u16, false, 0u64),
        (false, 0x008, true, 0),
        (false, 0x010, true, 0),
        (true, 0x020, true, 0x1234_5400),
    ] {
        inp.csr_valid = true;
        inp.csr_write = write;
        inp.csr_addr = addr;
        inp.csr_size64 = size64;
        inp.csr_wdata = wdata;
        dut.step(&inp);
        inp.csr_valid = false;
        let out = dut.step(&inp);
        if out.csr_error {
            bail!("CSR access to 0x{addr:03x} answered with an error");
        }
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut forwarded = 0u64;
    inp.rx_valid = true;
    inp.rx_nprefix = 0;
    let t0 = Instant::now();
    for i in 0..cycles {
        inp.rx_hdr = [
            0x0000_0001,
            (0x0100 << 16) | (((i & 0xff) as u32) << 8) | 0x0f,
            ((i << 6) as u32) & 0xffff_fffc,
            0,
        ];
        let out = dut.step(&inp);
        if out.tx_valid {
            for w in out.tx_hdr {
                hash = (hash ^ u64::from(w)).wrapping_mul(0x100_0000_01b3);
            }
            forwarded += 1;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    dut.trace_stop();
    println!(
        "cycles {cycles} forwarded {forwarded} hash 0x{hash:016x} seconds {secs:.3} cycles/s {:.0}{}",
        cycles as f64 / secs,
        if waves.is_some() { " (tracing)" } else { "" }
    );
    Ok(())
}

fn bench_checked(tlps: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("iommu-tb-bench-{}", std::process::id()));
    println!("| mix | waveform | checked TLPs | cycles | seconds | checked TLPs/s | cycles/s |");
    println!("|---|---|---|---|---|---|---|");
    for waves in [None, Some(dir.as_path())] {
        for m in iommu_tb::bench::checked_mixes(tlps, waves)? {
            println!(
                "| {} | {} | {} | {} | {:.2} | {:.0} | {:.0} |",
                m.name,
                if m.traced { "FST" } else { "off" },
                m.tlps,
                m.cycles,
                m.seconds,
                m.tlps as f64 / m.seconds,
                m.cycles as f64 / m.seconds
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn bench_xlate(latencies: &[u32], hits: u64) -> Result<()> {
    use iommu_tb::bench;
    println!("| stage | page | mem latency | cold walk (cycles / reads) | page walk (cycles / reads) | hit (cycles) |");
    println!("|---|---|---|---|---|---|");
    for &lat in latencies {
        for r in bench::walk_costs(lat)? {
            let size = match r.size {
                0x1000 => "4K",
                0x20_0000 => "2M",
                _ => "1G",
            };
            println!(
                "| {:?} | {size} | {} | {} / {} | {} / {} | {} |",
                r.stage,
                r.latency,
                r.cold_cycles,
                r.cold_reads,
                r.walk_cycles,
                r.walk_reads,
                r.hit_cycles
            );
        }
    }
    let h = bench::hit_stream(hits)?;
    println!(
        "hit stream: {} TLPs in {} cycles ({:.3} TLPs/cycle), {:.2} s: {:.0} TLPs/s, {:.0} cycles/s",
        h.tlps,
        h.cycles,
        h.tlps as f64 / h.cycles as f64,
        h.seconds,
        h.tlps as f64 / h.seconds,
        h.cycles as f64 / h.seconds
    );
    Ok(())
}

/// Runs vector files; one line per file, a failure with its file, step and waveform.
fn run_vectors(paths: &[PathBuf]) -> Result<(usize, usize)> {
    use iommu_tb::vectors;
    let files = vectors::collect(paths)?;
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let results = vectors::run_files(&files, &vectors::RunOptions::default(), jobs);
    let mut failed = 0;
    for r in &results {
        match &r.result {
            Ok(rep) => println!(
                "PASS {} ({} steps, {} TLPs: {} translated, {} in a flush window, faults [{}])",
                r.file.display(),
                rep.steps,
                rep.tlps,
                rep.translated,
                rep.in_window,
                rep.faults
                    .iter()
                    .map(|c| format!("{c:#04x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Err(e) => {
                failed += 1;
                println!("FAIL {e}");
            }
        }
    }
    Ok((results.len() - failed, failed))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Regress {
            seeds,
            seed,
            jobs,
            shard,
            waves,
            per_seed,
            vectors,
            no_vectors,
        } => {
            let SeedArgs {
                tlps,
                ops,
                no_shrink,
                ref shrink_dir,
                ..
            } = per_seed;
            use_weights(&per_seed);
            let dir = vectors.unwrap_or_else(|| {
                let tb = Path::new(env!("CARGO_MANIFEST_DIR"));
                tb.parent().unwrap_or(tb).join("vectors")
            });
            let first_shard = shard.map_or(true, |(k, _)| k == 1);
            let v = if no_vectors || !first_shard {
                Ok((0, 0))
            } else {
                eprintln!("regress: vectors in {}", dir.display());
                run_vectors(&[dir])
            };
            v.and_then(|(vp, vf)| {
                let (p, f) = regress(
                    seeds,
                    seed,
                    jobs,
                    shard,
                    waves,
                    tlps,
                    ops,
                    (!no_shrink).then_some(shrink_dir.as_path()),
                )?;
                Ok((vp + p, vf + f))
            })
        }
        Cmd::Replay {
            seed,
            waves,
            per_seed,
        } => {
            let SeedArgs {
                tlps,
                ops,
                no_shrink,
                ref shrink_dir,
                ..
            } = per_seed;
            use_weights(&per_seed);
            let always = waves.is_some();
            let dir = waves.unwrap_or_else(waves::waves_dir);
            let totals = Mutex::new(regress::Report::default());
            match regress_one(&dir, always, seed, tlps, ops, &totals) {
                Ok(()) => {
                    if always {
                        eprintln!(
                            "waveform: {}",
                            waves::wave_path(&dir, "regress", seed).display()
                        );
                    }
                    Ok((1, 0))
                }
                Err(f) => {
                    eprintln!("FAIL {f}");
                    if !no_shrink {
                        shrink_seed(seed, ops, shrink_dir);
                    }
                    Ok((0, 1))
                }
            }
        }
        Cmd::Bench { tlps } => bench_checked(tlps).context("bench").map(|()| (1, 0)),
        Cmd::BenchXlate { latency, hits } => bench_xlate(&latency, hits)
            .context("bench-xlate")
            .map(|()| (1, 0)),
        Cmd::Coverage {
            seeds,
            seed,
            jobs,
            out,
            tlps,
            ops,
        } => coverage(seeds, seed, jobs, &out, tlps, ops),
        Cmd::Run { paths } => run_vectors(&paths),
        Cmd::BenchBridge { cycles, waves } => bench_bridge(cycles, waves)
            .context("bench-bridge")
            .map(|()| (1, 0)),
    };
    match res {
        Ok((passed, failed)) => {
            println!("{passed} passed, {failed} failed");
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            println!("0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}
