//! JUnit XML results, the file CI dashboards read (Jenkins, GitLab, GitHub test reporters;
//! cocotb writes the same shape as `results.xml`): one `<testsuites>` root, one
//! `<testsuite>` per command, one `<testcase>` per vector or seed, a `<failure>` child on a
//! failing case (its message the first line, its text the whole report) and an `<error>`
//! child on a case that could not run (an input error). Times are seconds.
//!
//! The shape follows the schema the common consumers accept (the Ant/Jenkins JUnit XSD):
//! `testsuite` carries `name`, `tests`, `failures`, `errors`, `skipped`, `time` and
//! `timestamp`; `testcase` carries `name`, `classname` and `time`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

/// How one test case ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    /// The check failed: `message` is one line, `text` the full report (the replay command
    /// included).
    Failed {
        message: String,
        text: String,
    },
    /// The case could not be run (bad input).
    Error {
        message: String,
        text: String,
    },
    Skipped {
        message: String,
    },
}

/// One `<testcase>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    pub name: String,
    /// Dotted group, e.g. `iommu-tb.regress` or `iommu-tb.vectors`.
    pub classname: String,
    pub seconds: f64,
    pub verdict: Verdict,
    /// Written as `<system-out>` (e.g. per-TLP outcomes of a verbose run).
    pub stdout: Option<String>,
}

impl Case {
    pub fn new(classname: &str, name: &str, seconds: f64, verdict: Verdict) -> Self {
        Self {
            name: name.to_string(),
            classname: classname.to_string(),
            seconds,
            verdict,
            stdout: None,
        }
    }
}

/// One `<testsuite>`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Suite {
    pub name: String,
    /// RFC 3339 UTC start time (`YYYY-MM-DDTHH:MM:SS`).
    pub timestamp: String,
    pub seconds: f64,
    pub cases: Vec<Case>,
}

impl Suite {
    /// An empty suite named `name`, started now.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            timestamp: utc_now(),
            seconds: 0.0,
            cases: Vec::new(),
        }
    }

    pub fn failures(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Failed { .. }))
    }

    pub fn errors(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Error { .. }))
    }

    pub fn skipped(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Skipped { .. }))
    }

    fn count(&self, f: impl Fn(&Verdict) -> bool) -> usize {
        self.cases.iter().filter(|c| f(&c.verdict)).count()
    }

    /// The XML document.
    pub fn to_xml(&self) -> String {
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            s,
            "<testsuites name=\"iommu-tb\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
            self.cases.len(),
            self.failures(),
            self.errors(),
            self.skipped(),
            self.seconds
        );
        let _ = writeln!(
            s,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\" timestamp=\"{}\">",
            attr(&self.name),
            self.cases.len(),
            self.failures(),
            self.errors(),
            self.skipped(),
            self.seconds,
            attr(&self.timestamp)
        );
        for c in &self.cases {
            let _ = write!(
                s,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
                attr(&c.name),
                attr(&c.classname),
                c.seconds
            );
            if c.verdict == Verdict::Passed && c.stdout.is_none() {
                s.push_str("/>\n");
                continue;
            }
            s.push_str(">\n");
            match &c.verdict {
                Verdict::Passed => {}
                Verdict::Failed { message, text } => {
                    let _ = writeln!(
                        s,
                        "      <failure message=\"{}\" type=\"failure\">{}</failure>",
                        attr(message),
                        text_node(text)
                    );
                }
                Verdict::Error { message, text } => {
                    let _ = writeln!(
                        s,
                        "      <error message=\"{}\" type=\"error\">{}</error>",
                        attr(message),
                        text_node(text)
                    );
                }
                Verdict::Skipped { message } => {
                    let _ = writeln!(s, "      <skipped message=\"{}\"/>", attr(message));
                }
            }
            if let Some(out) = &c.stdout {
                let _ = writeln!(s, "      <system-out>{}</system-out>", text_node(out));
            }
            s.push_str("    </testcase>\n");
        }
        s.push_str("  </testsuite>\n</testsuites>\n");
        s
    }

    /// Writes the document to `path` (parent folders created).
    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        std::fs::write(path, self.to_xml())
            .with_context(|| format!("writing JUnit XML to {}", path.display()))
    }
}

/// Characters XML 1.0 cannot carry at all (most C0 controls): replaced, so any message is
/// a well-formed document.
fn xml_char(c: char) -> Option<char> {
    match c {
        '\t' | '\n' | '\r' => Some(c),
        c if (c as u32) < 0x20 => Some('\u{fffd}'),
        '\u{fffe}' | '\u{ffff}' => Some('\u{fffd}'),
        c => Some(c),
    }
}

fn attr(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars().filter_map(xml_char) {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\n' => o.push_str("&#10;"),
            '\r' => o.push_str("&#13;"),
            '\t' => o.push_str("&#9;"),
            c => o.push(c),
        }
    }
    o
}

fn text_node(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars().filter_map(xml_char) {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            c => o.push(c),
        }
    }
    o
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SS` (civil-from-days, no time crate).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(secs)
}

fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Suite {
        let mut s = Suite::new("regress");
        s.seconds = 1.5;
        s.cases.push(Case::new(
            "iommu-tb.regress",
            "seed 1",
            0.25,
            Verdict::Passed,
        ));
        s.cases.push(Case::new(
            "iommu-tb.regress",
            "seed 2",
            0.5,
            Verdict::Failed {
                message: "request #3: got <fault 0x71> & \"expected\" translated".into(),
                text: "seed 2 step 4\n  replay: iommu-tb replay --seed 2 \u{1}\n".into(),
            },
        ));
        s.cases.push(Case::new(
            "iommu-tb.vectors",
            "bad.yaml",
            0.0,
            Verdict::Error {
                message: "bad.yaml:3:5: unknown register `FOO`".into(),
                text: String::new(),
            },
        ));
        let mut c = Case::new("iommu-tb.vectors", "x.yaml", 0.1, Verdict::Passed);
        c.stdout = Some("MRd 0x1000 -> translated to 0x2000 <ok>".into());
        s.cases.push(c);
        s
    }

    #[test]
    fn civil_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(utc(1_795_996_799), "2026-11-29T23:59:59");
    }

    #[test]
    fn document_parses_as_junit() {
        let xml = sample().to_xml();
        let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        let suites: Vec<_> = root.children().filter(|n| n.is_element()).collect();
        assert_eq!(suites.len(), 1);
        let suite = suites[0];
        assert_eq!(suite.tag_name().name(), "testsuite");
        assert_eq!(suite.attribute("tests"), Some("4"));
        assert_eq!(suite.attribute("failures"), Some("1"));
        assert_eq!(suite.attribute("errors"), Some("1"));
        assert_eq!(suite.attribute("skipped"), Some("0"));
        let cases: Vec<_> = suite.children().filter(|n| n.is_element()).collect();
        assert_eq!(cases.len(), 4);
        for c in &cases {
            assert_eq!(c.tag_name().name(), "testcase");
            assert!(c.attribute("name").is_some() && c.attribute("classname").is_some());
            let t: f64 = c.attribute("time").unwrap_or("x").parse().expect("time");
            assert!(t >= 0.0);
        }
        let f = cases[1]
            .children()
            .find(|n| n.has_tag_name("failure"))
            .expect("failure child");
        assert_eq!(
            f.attribute("message"),
            Some("request #3: got <fault 0x71> & \"expected\" translated")
        );
        assert!(f
            .text()
            .unwrap_or("")
            .contains("iommu-tb replay --seed 2 \u{fffd}"));
        assert!(cases[2].children().any(|n| n.has_tag_name("error")));
        let out = cases[3]
            .children()
            .find(|n| n.has_tag_name("system-out"))
            .expect("system-out");
        assert_eq!(out.text(), Some("MRd 0x1000 -> translated to 0x2000 <ok>"));
    }
}
