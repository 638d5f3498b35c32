//! Running many vector files (in parallel) and their JUnit XML report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::dut::waves;
use crate::report::junit::{Case, Suite, Verdict};

use super::*;

/// The result of one file of a batch.
#[derive(Debug)]
pub struct FileResult {
    pub file: PathBuf,
    pub result: Result<VectorReport, String>,
    /// The error is an input error (the vector is wrong, [`is_input_error`]).
    pub input_error: bool,
    /// Failing steps (1 for a run that stopped at its first; every one with
    /// [`RunOptions::keep_going`]); 0 when it passed or for an input error.
    pub failing_steps: usize,
    /// One line per TLP (see [`VectorReport::log`]), also for a failing run.
    pub log: Vec<String>,
    pub seconds: f64,
}

/// Runs every file on `jobs` threads; results in file order. Waveforms of failing runs go
/// to the default folder.
pub fn run_files(files: &[PathBuf], opts: &RunOptions, jobs: usize) -> Vec<FileResult> {
    run_files_in(files, opts, jobs, None)
}

/// [`run_files`]; with `waves: Some(DIR)` every run writes its waveform into DIR.
pub fn run_files_in(
    files: &[PathBuf],
    opts: &RunOptions,
    jobs: usize,
    waves_to: Option<&Path>,
) -> Vec<FileResult> {
    crate::pool::run(files, jobs, |f| run_one(f, opts, waves_to), |_, _, _| {})
}

fn run_one(f: &Path, opts: &RunOptions, waves_to: Option<&Path>) -> FileResult {
    let t0 = Instant::now();
    let run = match parse_file(f) {
        Ok(v) => match waves_to {
            Some(dir) => run_parsed_logged(&v, opts, dir, true),
            None => run_parsed_logged(&v, opts, &waves::waves_dir(), waves::always_trace()),
        },
        Err(e) => LoggedRun {
            result: Err(e.into()),
            log: Vec::new(),
            failing_steps: 0,
        },
    };
    let input_error = run.result.as_ref().err().is_some_and(is_input_error);
    FileResult {
        file: f.to_owned(),
        input_error,
        failing_steps: if input_error { 0 } else { run.failing_steps },
        log: run.log,
        seconds: t0.elapsed().as_secs_f64(),
        result: run.result.map_err(|e| format!("{e:#}")),
    }
}

/// The JUnit suite of a batch: one `<testcase>` per file (classname `iommu-tb.vectors`,
/// name the path), a failure with the whole message and the command that reruns it, an
/// input error as `<error>`; the per-TLP log as `<system-out>`.
pub fn junit_suite(results: &[FileResult], seconds: f64) -> Suite {
    let mut suite = Suite::new("iommu-tb.vectors");
    suite.seconds = seconds;
    suite.cases.extend(results.iter().map(junit_case));
    suite
}

/// One vector's `<testcase>`: classname `iommu-tb.vectors`, named by its path; a failure
/// (or input error) carries the report and the `iommu-tb run FILE` that reruns it; the
/// per-TLP log (and what an `expect_failure:` vector caught) goes to `<system-out>`.
pub fn junit_case(r: &FileResult) -> Case {
    let name = r.file.display().to_string();
    let verdict = match &r.result {
        Ok(_) => Verdict::Passed,
        Err(e) => {
            let message = e.lines().next().unwrap_or_default().to_owned();
            let text = format!("{e}\n\nrerun: iommu-tb run {name}");
            if r.input_error {
                Verdict::Error { message, text }
            } else {
                Verdict::Failed { message, text }
            }
        }
    };
    let mut case = Case::new("iommu-tb.vectors", &name, r.seconds, verdict);
    let mut out = r.log.clone();
    if let Ok(Some(caught)) = r.result.as_ref().map(|rep| rep.caught.as_ref()) {
        out.push(format!("failed as `expect_failure:` requires: {caught}"));
    }
    if !out.is_empty() {
        case.stdout = Some(out.join("\n"));
    }
    case
}
