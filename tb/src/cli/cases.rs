//! The JUnit test cases of `regress` and `coverage` (`--junit FILE`): one per vector and one
//! per seed, a failing seed's text ending with the exact command that replays it.

use std::path::Path;

use anyhow::Result;

use iommu_tb::report::{Case, Suite, Verdict};

/// The first line of a report (the failure message of a case).
pub fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").trim_end().to_string()
}

/// What one seed did, for its case.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedResult {
    pub seed: u64,
    pub seconds: f64,
    /// The failure report (`None`: passed).
    pub failure: Option<String>,
}

/// One seed's case: name `seed N`, classname `iommu-tb.<command>`; a failure's message is
/// the report's first line and its text the whole report, then `replay` (the command that
/// reproduces the seed) and any `extra` lines (e.g. the shrunk vector).
pub fn seed_case(command: &str, r: &SeedResult, replay: &str, extra: &[String]) -> Case {
    let verdict = match &r.failure {
        None => Verdict::Passed,
        Some(f) => {
            let mut text = f.trim_end().to_string();
            text.push_str("\n  replay:   ");
            text.push_str(replay);
            for e in extra {
                text.push_str("\n  ");
                text.push_str(e);
            }
            text.push('\n');
            Verdict::Failed {
                message: first_line(f),
                text,
            }
        }
    };
    Case::new(
        &format!("iommu-tb.{command}"),
        &format!("seed {}", r.seed),
        r.seconds,
        verdict,
    )
}

/// Writes `suite` to `path` and says where on stderr.
pub fn write(suite: &Suite, path: &Path) -> Result<()> {
    suite.write(path)?;
    eprintln!(
        "JUnit XML: {} ({} cases, {} failed, {} in error)",
        path.display(),
        suite.cases.len(),
        suite.failures(),
        suite.errors()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_seed_names_its_replay_command() {
        let r = SeedResult {
            seed: 42,
            seconds: 1.25,
            failure: Some(
                "regress failed with seed 0x000000000000002a: boom\n  waveform: w.fst".into(),
            ),
        };
        let c = seed_case(
            "regress",
            &r,
            "iommu-tb replay --seed 42 --tlps 300 --ops 30",
            &[],
        );
        assert_eq!(c.name, "seed 42");
        assert_eq!(c.classname, "iommu-tb.regress");
        assert_eq!(c.seconds, 1.25);
        match c.verdict {
            Verdict::Failed { message, text } => {
                assert_eq!(message, "regress failed with seed 0x000000000000002a: boom");
                assert!(text.contains("waveform: w.fst"));
                assert!(text.contains("replay:   iommu-tb replay --seed 42 --tlps 300 --ops 30"));
            }
            v => panic!("{v:?}"),
        }
        let ok = seed_case(
            "coverage",
            &SeedResult {
                seed: 1,
                seconds: 0.5,
                failure: None,
            },
            "x",
            &[],
        );
        assert_eq!(ok.verdict, Verdict::Passed);
        assert_eq!(ok.classname, "iommu-tb.coverage");
    }
}
