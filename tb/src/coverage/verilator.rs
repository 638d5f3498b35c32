//! Verilator line/toggle/branch coverage of a `--features coverage` build: merging the
//! per-run `.dat` files with `verilator_coverage` and reading its summary, whose format
//! changed between the supported versions (see [`parse_total`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Totals of a Verilator coverage merge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerilatorSummary {
    /// The merged lcov file.
    pub info: PathBuf,
    /// The merged coverage database.
    pub dat: PathBuf,
    /// `verilator_coverage --annotate`'s total: points covered, points.
    pub covered: u64,
    pub points: u64,
    /// The annotated sources.
    pub annotated: PathBuf,
    /// Every point of the merged database by type (`line`, `branch`, `toggle`, ...):
    /// (points hit, points).
    pub by_type: BTreeMap<String, (u64, u64)>,
}

fn run_tool(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| {
        format!(
            "cannot run {:?} (is Verilator installed?)",
            cmd.get_program()
        )
    })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", text.trim());
    }
    Ok(text)
}

/// `(COVERED/POINTS)` in a summary line.
fn counts(line: &str) -> Option<(u64, u64)> {
    let inner = line.split('(').nth(1)?.split(')').next()?;
    let (a, b) = inner.split_once('/')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// The total of `verilator_coverage --annotate`'s summary, (points covered, points), in
/// either format:
///
/// - 5.006 prints one line, `Total coverage (1203/1731) 69.00%`;
/// - 5.052 prints `Coverage Summary:` and then a line `  <type> : P% (COVERED/POINTS)` per
///   point type (line, toggle, branch, expr, fsm_state, fsm_arc): the total is their sum. The
///   `Annotation Summary` after it counts source lines, not points, and is not read.
pub fn parse_total(text: &str) -> Option<(u64, u64)> {
    if let Some(line) = text.lines().find(|l| l.contains("Total coverage")) {
        return counts(line);
    }
    let mut lines = text
        .lines()
        .skip_while(|l| l.trim() != "Coverage Summary:")
        .skip(1);
    let mut total: Option<(u64, u64)> = None;
    for line in lines.by_ref() {
        let Some((_, rest)) = line.split_once(':') else {
            break;
        };
        let Some((c, p)) = rest.contains('%').then(|| counts(rest)).flatten() else {
            break;
        };
        let t = total.get_or_insert((0, 0));
        t.0 += c;
        t.1 += p;
    }
    total
}

/// Points per type in a Verilator coverage database: each point is a line
/// `C '<key>' <count>` whose key holds the field `page` = `v_<type>/<module>`.
pub fn points_by_type(dat: &str) -> BTreeMap<String, (u64, u64)> {
    let mut m: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for line in dat.lines().filter(|l| l.starts_with("C '")) {
        let Some(count) = line.rsplit(' ').next().and_then(|c| c.parse::<u64>().ok()) else {
            continue;
        };
        let ty = line
            .split("page\u{2}v_")
            .nth(1)
            .and_then(|r| r.split(['/', '\u{1}']).next())
            .unwrap_or("other");
        let e = m.entry(ty.to_owned()).or_insert((0, 0));
        e.1 += 1;
        if count > 0 {
            e.0 += 1;
        }
    }
    m
}

/// Merges per-run `.dat` files with `verilator_coverage`: one database, an lcov `.info`
/// (one count per line, for genhtml) and annotated sources with the real point count.
pub fn verilator_merge(dats: &[PathBuf], out: &Path) -> Result<VerilatorSummary> {
    if dats.is_empty() {
        bail!("no coverage data files to merge");
    }
    let tool =
        std::env::var_os("VERILATOR_COVERAGE").unwrap_or_else(|| "verilator_coverage".into());
    let dat = out.join("coverage.dat");
    let info = out.join("coverage.info");
    let annotated = out.join("annotated");
    run_tool(Command::new(&tool).arg("--write").arg(&dat).args(dats))?;
    run_tool(Command::new(&tool).arg("--write-info").arg(&info).arg(&dat))?;
    let text = run_tool(
        Command::new(&tool)
            .arg("--annotate")
            .arg(&annotated)
            .arg(&dat),
    )?;
    let (covered, points) = parse_total(&text)
        .with_context(|| format!("no total in verilator_coverage's output: {}", text.trim()))?;
    let raw = std::fs::read(&dat).with_context(|| format!("cannot read {}", dat.display()))?;
    let by_type = points_by_type(&String::from_utf8_lossy(&raw));
    Ok(VerilatorSummary {
        info,
        dat,
        covered,
        points,
        annotated,
        by_type,
    })
}

/// The command that renders the `.info` file as HTML into `out/html`.
pub fn genhtml_command(info: &Path, out: &Path) -> String {
    format!(
        "genhtml --quiet -o {} {}",
        out.join("html").display(),
        info.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `verilator_coverage --annotate` of Verilator 5.006 and of 5.052 on the same database,
    /// `seed-1.dat` of `iommu-tb coverage --seeds 2` (a `--features coverage` build with
    /// Verilator 5.052).
    const ANNOTATE_5_006: &str = "Total coverage (1203/1731) 69.00%\n\
        See lines with '%00' in /tmp/a06\n";
    const ANNOTATE_5_052: &str = "Coverage Summary:\n\
        \x20 line      : 76.4% (  185/  242)\n\
        \x20 toggle    : 64.2% (11109/17306)\n\
        \x20 branch    : 78.0% (  220/  282)\n\
        \x20 expr      : 76.7% (  421/  549)\n\
        \x20 fsm_state : 0.0% (    0/    0)\n\
        \x20 fsm_arc   : 0.0% (    0/    0)\n\
        Annotation Summary:\n\
        \x20 lines with all attached points covered : 57.00%  (752/1310)\n\
        See lines with '%00' in /tmp/a52\n";

    #[test]
    fn parses_the_annotate_total_of_both_formats() {
        assert_eq!(parse_total(ANNOTATE_5_006), Some((1203, 1731)));
        // The points of every type (they equal the database's own counts by type).
        assert_eq!(
            parse_total(ANNOTATE_5_052),
            Some((185 + 11109 + 220 + 421, 242 + 17306 + 282 + 549))
        );
        assert_eq!(
            parse_total("Total coverage (1234/5678) 21.73%\nSee lines with '%00' in ann"),
            Some((1234, 5678))
        );
        assert_eq!(parse_total("nothing"), None);
        assert_eq!(
            parse_total("Coverage Summary:\nAnnotation Summary:\n"),
            None
        );
    }

    #[test]
    fn counts_points_by_type() {
        let dat = "# SystemC::Coverage-3\n\
            C '\u{1}f\u{2}a.sv\u{1}l\u{2}3\u{1}page\u{2}v_toggle/m\u{1}o\u{2}x[0]' 4\n\
            C '\u{1}f\u{2}a.sv\u{1}l\u{2}3\u{1}page\u{2}v_toggle/m\u{1}o\u{2}x[1]' 0\n\
            C '\u{1}f\u{2}a.sv\u{1}l\u{2}5\u{1}page\u{2}v_line/m\u{1}o\u{2}block' 7\n";
        let m = points_by_type(dat);
        assert_eq!(m.get("toggle"), Some(&(1, 2)));
        assert_eq!(m.get("line"), Some(&(1, 1)));
    }
}
