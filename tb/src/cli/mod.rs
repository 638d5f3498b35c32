//! `iommu-tb`'s command line: the options of every subcommand and the dispatch.
//! Exit status: 0 when everything passed, 1 when a test failed, 2 for an input error (bad
//! arguments, an unreadable or malformed vector, a failing build of the run).

mod bench;
mod cases;
mod seeds;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use iommu_model::driver::DriverQuirks;

use iommu_tb::flows::regress;
use iommu_tb::pool;
use iommu_tb::report::Suite;
use iommu_tb::vectors::FileResult;
use seeds::{SeedPlan, WaveOpts};

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
    /// Kernel-API operations per seed (each followed by a stream of 32 judged requests).
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
    /// Make the model's driver deviate from Linux with a bug switch, to watch the checkers
    /// catch it (repeatable). `skip-pasid-flush`: unmap flushes only the RID's cache tag;
    /// `ih-always-set`: page-selective flushes say IH=1 even after freeing page-table pages
    /// (caught only by a unit with paging-structure caches); `skip-pasid-devtlb-flush`:
    /// range flushes send the RID's device-TLB invalidation but not the PASIDs' (type 8).
    #[arg(long = "driver-bug", value_name = "NAME", value_parser = parse_driver_bug)]
    driver_bugs: Vec<String>,
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
    ///
    /// Prints PASS/FAIL/ERROR per file and `N passed, M failed`. Exit status: 0 all passed,
    /// 1 a vector failed (the DUT or the driver model is wrong), 2 an input error (bad YAML,
    /// an unknown register or name, a write to an unbacked address, ...: the vector is
    /// wrong; reported with file:line:column, the simulation is not repeated for a
    /// waveform).
    Run {
        /// Vector files, or directories whose *.yaml files are run.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Make the model's driver deviate from Linux in kernel-level vectors (repeatable;
        /// see `regress --help`), on top of each vector's own `driver_bugs:`.
        #[arg(long = "driver-bug", value_name = "NAME", value_parser = parse_driver_bug)]
        driver_bugs: Vec<String>,
        /// Worker threads, one vector each (default: every core).
        #[arg(long)]
        jobs: Option<usize>,
        /// Write a waveform of every run into DIR (default: only failing runs are re-run
        /// with tracing on, into the default waveform folder).
        #[arg(long, value_name = "DIR")]
        waves: Option<PathBuf>,
        /// Go on after a failing step and report every failing step of a vector with its
        /// file:line:column (after a failing TLP the unit is drained and its fault records
        /// cleared; judging goes on from the state the DUT reached). The summary counts
        /// failing steps.
        #[arg(long)]
        keep_going: bool,
        /// Write JUnit XML results to FILE: one testcase per vector (classname
        /// `iommu-tb.vectors`, name the path), failures with file:line:column and the
        /// command that reruns the vector, input errors as <error>.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Print each TLP's decoded outcome under its vector's PASS/FAIL line
        /// (`step 4 (tlp) vectors/x.yaml:23:5: MRd rid 00:03.0 pasid 0x5 0x1000 len 8 ->
        /// translated to 0x7f001000`).
        #[arg(long, short)]
        verbose: bool,
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
        /// Write a waveform of every run into DIR (default: only failing runs, into target/waves
        /// of the workspace found from the current directory; see README "Waveforms").
        #[arg(long, value_name = "DIR")]
        waves: Option<PathBuf>,
        #[command(flatten)]
        per_seed: SeedArgs,
        /// YAML vectors run before the seeds (default: `vectors/` of the Cargo workspace the
        /// current directory is in, else the project's; with `--shard`, only shard 1 runs
        /// them).
        #[arg(long, value_name = "DIR")]
        vectors: Option<PathBuf>,
        /// Run only the random seeds.
        #[arg(long)]
        no_vectors: bool,
        /// Write JUnit XML results to FILE: one test case per vector and per seed, a failing
        /// seed's text ending with the `replay` command that reproduces it.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
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
        /// Print the figures as one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Translation figures: cycles per walk (4K/2M/1G, first and second stage), the hit
    /// path's latency and throughput, idle and while a miss is outstanding, and the
    /// throughput of a judged stream of IOTLB misses at several memory latencies.
    BenchXlate {
        /// Memory latencies to measure walks at (cycles).
        #[arg(long, value_delimiter = ',', default_value = "1,8")]
        latency: Vec<u32>,
        /// Hits in the throughput stream.
        #[arg(long, default_value_t = 1_000_000)]
        hits: u64,
        /// Memory latencies of the miss stream (cycles, at least 1).
        #[arg(long, value_delimiter = ',', default_value = "1,8,100",
              value_parser = clap::value_parser!(u32).range(1..))]
        miss_latency: Vec<u32>,
        /// Requests in each miss stream (after one warm pass over its 64 pages).
        #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..))]
        requests: u64,
        /// Misses with hits offered behind them (memory latency 100).
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
        trials: u64,
        /// Print the figures as one JSON object instead of a table.
        #[arg(long)]
        json: bool,
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
        /// Write a self-contained coverage page, DIR/index.html: every bin with its count,
        /// the holes highlighted, the closure curve (bins hit against seeds run).
        #[arg(long, value_name = "DIR")]
        html: Option<PathBuf>,
        /// Write JUnit XML results to FILE: one test case per seed.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
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

fn parse_driver_bug(s: &str) -> Result<String, String> {
    DriverQuirks::default().enable(s).map(|()| s.to_owned())
}

impl SeedArgs {
    /// What one seed runs, from these options.
    fn plan(&self) -> SeedPlan {
        let mut quirks = DriverQuirks::default();
        for b in &self.driver_bugs {
            // Validated by the argument parser.
            let _ = quirks.enable(b);
        }
        SeedPlan {
            tlps: self.tlps,
            kernel: regress::Config {
                ops: self.ops,
                weights: self.weights.unwrap_or_default(),
                quirks,
                ..regress::Config::default()
            },
        }
    }

    fn shrink_dir(&self) -> Option<&Path> {
        (!self.no_shrink).then_some(self.shrink_dir.as_path())
    }
}

/// `regress`'s vectors without `--vectors`: `vectors/` of the Cargo workspace the current
/// directory is in; outside one, the project's own folder when it is still where the
/// binary was built from.
fn default_vectors_dir() -> PathBuf {
    let here = std::env::current_dir().unwrap_or_default();
    iommu_tb::dut::waves::find_workspace(&here)
        .map(|w| w.join("vectors"))
        .filter(|d| d.is_dir())
        .unwrap_or_else(|| {
            let tb = Path::new(env!("CARGO_MANIFEST_DIR"));
            tb.parent().unwrap_or(tb).join("vectors")
        })
}

/// How `run` runs vectors (and `regress` its vectors first).
#[derive(Default)]
struct VectorRun {
    quirks: DriverQuirks,
    jobs: Option<usize>,
    waves: Option<PathBuf>,
    keep_going: bool,
    junit: Option<PathBuf>,
    verbose: bool,
}

/// Runs vector files; one line per file, a failure with its file:line:column, step and
/// waveform. Vectors that cannot be read or are wrong (input errors) are listed as
/// `ERROR` and make the command an input error (exit status 2). Returns (passed, failed):
/// with `keep_going`, failed counts failing steps.
fn run_vectors(paths: &[PathBuf], o: &VectorRun) -> Result<(usize, usize)> {
    let t0 = std::time::Instant::now();
    let results = vector_results(paths, o)?;
    if let Some(path) = &o.junit {
        iommu_tb::vectors::junit_suite(&results, t0.elapsed().as_secs_f64()).write(path)?;
        eprintln!("run: JUnit XML in {}", path.display());
    }
    tally_vectors(&results, o)
}

/// Runs the vector files found in `paths`, in parallel; results in file order.
fn vector_results(paths: &[PathBuf], o: &VectorRun) -> Result<Vec<FileResult>> {
    use iommu_tb::vectors;
    let files = vectors::collect(paths)?;
    let opts = vectors::RunOptions {
        quirks: o.quirks,
        keep_going: o.keep_going,
        ..vectors::RunOptions::default()
    };
    if let Some(w) = &o.waves {
        std::fs::create_dir_all(w).with_context(|| format!("creating {}", w.display()))?;
    }
    Ok(vectors::run_files_in(
        &files,
        &opts,
        pool::jobs_or_cores(o.jobs),
        o.waves.as_deref(),
    ))
}

/// Prints one line per vector (and, verbose, its TLPs); (passed, failed), or an error
/// when a vector is in error. With `keep_going`, failed counts failing steps.
fn tally_vectors(results: &[FileResult], o: &VectorRun) -> Result<(usize, usize)> {
    let (mut failed_files, mut failed, mut input) = (0, 0, 0);
    for r in results {
        match &r.result {
            Ok(rep) if rep.caught.is_some() => println!(
                "PASS {} (failed as `expect_failure:` requires)",
                r.file.display()
            ),
            Ok(rep) => println!(
                "PASS {} ({} steps, {} TLPs: {} translated, {} in a flush window, {} during a call, faults [{}])",
                r.file.display(),
                rep.steps,
                rep.tlps,
                rep.translated,
                rep.in_window,
                rep.during,
                rep.faults
                    .iter()
                    .map(|c| format!("{c:#04x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Err(e) if r.input_error => {
                input += 1;
                println!("ERROR {e}");
            }
            Err(e) => {
                failed_files += 1;
                failed += r.failing_steps.max(1);
                println!("FAIL {e}");
            }
        }
        if o.verbose {
            for l in &r.log {
                println!("  {l}");
            }
        }
    }
    anyhow::ensure!(
        input == 0,
        "{input} vector(s) in error (the vector, not the DUT, is wrong); {} passed, {failed_files} failed",
        results.len() - failed_files - input
    );
    if o.keep_going && failed > 0 {
        eprintln!("run: {failed} failing step(s) in {failed_files} vector(s)");
    }
    let passed = results.len() - failed_files;
    Ok((passed, if o.keep_going { failed } else { failed_files }))
}

fn quirks_of(names: &[String]) -> DriverQuirks {
    let mut q = DriverQuirks::default();
    for n in names {
        // Validated by the argument parser.
        let _ = q.enable(n);
    }
    q
}

/// Parses the command line, runs the command and prints `N passed, M failed`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The closing `N passed, M failed` line (not after a JSON document on stdout).
    let mut summary = true;
    let res: Result<(usize, usize)> = match cli.cmd {
        Cmd::Regress {
            seeds,
            seed,
            jobs,
            shard,
            waves,
            per_seed,
            vectors,
            no_vectors,
            junit,
        } => {
            let t0 = std::time::Instant::now();
            let mut suite = Suite::new("regress");
            let plan = per_seed.plan();
            let dir = vectors.unwrap_or_else(default_vectors_dir);
            let first_shard = shard.map_or(true, |(k, _)| k == 1);
            let v = if no_vectors || !first_shard {
                Ok((0, 0))
            } else {
                eprintln!("regress: vectors in {}", dir.display());
                let o = VectorRun {
                    quirks: plan.kernel.quirks,
                    ..VectorRun::default()
                };
                vector_results(&[dir], &o).and_then(|results| {
                    suite
                        .cases
                        .extend(results.iter().map(iommu_tb::vectors::junit_case));
                    tally_vectors(&results, &o)
                })
            };
            let res = v.and_then(|(vp, vf)| {
                let list = seeds::seed_list(seeds, seed, shard);
                let jobs = pool::jobs_or_cores(jobs);
                let shard_txt = shard
                    .map(|(k, n)| format!(", shard {k}/{n}"))
                    .unwrap_or_default();
                let bugs = plan.kernel.quirks.names();
                eprintln!(
                    "regress: {} seeds from {seed}{shard_txt}, {jobs} jobs; per seed {} untranslated TLPs and {} kernel operations{}",
                    list.len(),
                    plan.tlps,
                    plan.kernel.ops,
                    if bugs.is_empty() { String::new() } else { format!("; driver bugs: {}", bugs.join(", ")) }
                );
                let run = seeds::regress(
                    &list,
                    jobs,
                    &WaveOpts::from_arg(waves),
                    &plan,
                    per_seed.shrink_dir(),
                )?;
                suite.cases.extend(run.cases);
                Ok((vp + run.passed, vf + run.failed))
            });
            // The results so far are written even when a vector was in error.
            match junit {
                Some(path) => {
                    suite.seconds = t0.elapsed().as_secs_f64();
                    cases::write(&suite, &path).and(res)
                }
                None => res,
            }
        }
        Cmd::Replay {
            seed,
            waves,
            per_seed,
        } => Ok(seeds::replay(
            seed,
            &WaveOpts::from_arg(waves),
            &per_seed.plan(),
            per_seed.shrink_dir(),
        )),
        Cmd::Bench { tlps, json } => {
            summary = !json;
            bench::checked(tlps, json).context("bench").map(|()| (1, 0))
        }
        Cmd::BenchXlate {
            latency,
            hits,
            miss_latency,
            requests,
            trials,
            json,
        } => {
            summary = !json;
            let args = bench::XlateArgs {
                latencies: &latency,
                hits,
                miss_latencies: &miss_latency,
                requests,
                trials,
            };
            bench::xlate(&args, json)
                .context("bench-xlate")
                .map(|()| (1, 0))
        }
        Cmd::Coverage {
            seeds,
            seed,
            jobs,
            out,
            tlps,
            ops,
            html,
            junit,
        } => {
            let plan = SeedPlan {
                tlps,
                kernel: regress::Config {
                    ops,
                    ..regress::Config::default()
                },
            };
            let t0 = std::time::Instant::now();
            seeds::coverage(
                &seeds::seed_list(seeds, seed, None),
                pool::jobs_or_cores(jobs),
                &out,
                &plan,
                html.as_deref(),
            )
            .and_then(|run| {
                if let Some(path) = &junit {
                    let mut suite = Suite::new("coverage");
                    suite.cases = run.cases;
                    suite.seconds = t0.elapsed().as_secs_f64();
                    cases::write(&suite, path)?;
                }
                Ok((run.passed, run.failed))
            })
        }
        Cmd::Run {
            paths,
            driver_bugs,
            jobs,
            waves,
            keep_going,
            junit,
            verbose,
        } => run_vectors(
            &paths,
            &VectorRun {
                quirks: quirks_of(&driver_bugs),
                jobs,
                waves,
                keep_going,
                junit,
                verbose,
            },
        ),
        Cmd::BenchBridge { cycles, waves } => bench::bridge(cycles, waves)
            .context("bench-bridge")
            .map(|()| (1, 0)),
    };
    match res {
        Ok((passed, failed)) => {
            if summary {
                println!("{passed} passed, {failed} failed");
            }
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
