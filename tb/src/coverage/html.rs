//! The coverage page of `coverage --html DIR`: one self-contained `index.html` (inline CSS,
//! inline SVG, nothing else to fetch) with every bin and its count, the holes highlighted,
//! the closure curve (bins hit against seeds run) and, for a line-coverage build, a link to
//! the lcov HTML.
//!
//! The page is also well-formed XML (every element closed, only the five XML entities), so
//! tools and tests can read it with an XML parser.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};

use super::{Bin, ClosurePoint, Coverage, Group};

/// What the page says about Verilator line coverage, when it was collected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineCoverage {
    /// One line each, e.g. `line 185/242 points hit (76.4%)`.
    pub summary: Vec<String>,
    /// The link's target, relative to the page where possible (see [`relative_href`]).
    pub href: String,
    /// The link's text.
    pub label: String,
    /// Shown beside the link, e.g. how to render the lcov HTML when it was not rendered.
    pub note: Option<String>,
}

/// Everything the page shows.
#[derive(Clone, Debug)]
pub struct Page<'a> {
    /// What was run, one line (seeds, per-seed options).
    pub run: String,
    pub cov: &'a Coverage,
    /// Bins hit after each seed, in seed order ([`super::Closure`]).
    pub closure: &'a [ClosurePoint],
    pub line: Option<LineCoverage>,
}

/// Text escaped for XML and HTML alike (content and attribute values).
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}h3{font-size:1em;margin:1.2em 0 .3em}\
table{border-collapse:collapse}td,th{padding:.15em .6em;border-bottom:1px solid #ddd;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
tr.hole td{background:#fde2e1;color:#9b1c1c;font-weight:600}\
.bar{display:inline-block;height:.7em;background:#3b7dd8}\
.meta{color:#555}svg{border:1px solid #ddd;background:#fff}code{background:#f3f3f3;padding:0 .2em}";

/// A "nice" tick step (1, 2 or 5 times a power of ten) giving at most about `ticks` steps
/// up to `max`.
fn tick_step(max: usize, ticks: usize) -> usize {
    let raw = (max as f64 / ticks.max(1) as f64).max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    (step.round() as usize).max(1)
}

/// The closure curve as an inline SVG: bins hit (of `total`) against seeds run.
pub fn closure_svg(points: &[ClosurePoint], total: usize) -> String {
    let (w, h) = (720.0, 300.0);
    let (left, right, top, bottom) = (60.0, 700.0, 20.0, 250.0);
    let n = points.last().map_or(0, |p| p.seeds).max(1);
    let ymax = total.max(1);
    let x = |s: usize| left + (right - left) * s as f64 / n as f64;
    let y = |b: usize| bottom - (bottom - top) * b as f64 / ymax as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\">\
         <title>Coverage closure: bins hit against seeds run</title>"
    );
    // Axes.
    let _ = write!(
        s,
        "<g stroke=\"#444\" stroke-width=\"1\"><line x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\"/>\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\"/></g>"
    );
    s.push_str("<g font-size=\"11\" fill=\"#444\">");
    let xs = tick_step(n, 10);
    for t in (0..=n).step_by(xs) {
        let _ = write!(
            s,
            "<line x1=\"{0:.1}\" y1=\"{bottom}\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"#444\"/>\
             <text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\">{t}</text>",
            x(t),
            bottom + 4.0,
            bottom + 16.0
        );
    }
    let ys = tick_step(ymax, 5);
    for t in (0..=ymax).step_by(ys) {
        let _ = write!(
            s,
            "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{right}\" y2=\"{0:.1}\" stroke=\"#eee\"/>\
             <text x=\"{1}\" y=\"{2:.1}\" text-anchor=\"end\">{t}</text>",
            y(t),
            left - 6.0,
            y(t) + 4.0
        );
    }
    let _ = write!(
        s,
        "<text x=\"{0}\" y=\"{1}\" text-anchor=\"middle\">seeds run</text>\
         <text x=\"14\" y=\"{2}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {2})\">bins hit</text></g>",
        (left + right) / 2.0,
        h - 12.0,
        (top + bottom) / 2.0
    );
    // The bin space.
    let _ = write!(
        s,
        "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{right}\" y2=\"{0:.1}\" stroke=\"#9b1c1c\" stroke-dasharray=\"4 3\"/>\
         <text x=\"{right}\" y=\"{1:.1}\" font-size=\"11\" fill=\"#9b1c1c\" text-anchor=\"end\">{total} bins</text>",
        y(total),
        y(total) - 4.0
    );
    if points.is_empty() {
        let _ = write!(
            s,
            "<text x=\"{0}\" y=\"{1}\" text-anchor=\"middle\" fill=\"#555\">no seeds ran</text>",
            (left + right) / 2.0,
            (top + bottom) / 2.0
        );
    } else {
        let mut pts = format!("{left:.1},{:.1}", y(0));
        for p in points {
            let _ = write!(pts, " {:.1},{:.1}", x(p.seeds), y(p.bins_hit));
        }
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"#3b7dd8\" stroke-width=\"2\" points=\"{pts}\"/>"
        );
        if points.len() <= 200 {
            s.push_str("<g fill=\"#3b7dd8\">");
            for p in points {
                let _ = write!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\"><title>after seed {} ({} seeds): {} bins hit</title></circle>",
                    x(p.seeds),
                    y(p.bins_hit),
                    p.seed,
                    p.seeds,
                    p.bins_hit
                );
            }
            s.push_str("</g>");
        }
    }
    s.push_str("</svg>");
    s
}

/// An id for a group's section.
fn anchor(g: Group) -> String {
    format!("{g:?}").to_ascii_lowercase()
}

/// The whole page.
pub fn render(p: &Page<'_>) -> String {
    let cov = p.cov;
    let universe = Bin::universe();
    let (hit, total) = cov.summary();
    let holes = total - hit;
    let max = cov.bins.values().copied().max().unwrap_or(0).max(1);
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head><meta charset=\"utf-8\"/>\
         <title>iommu-tb functional coverage: {hit}/{total} bins</title><style>{STYLE}</style></head><body>\n\
         <h1>iommu-tb functional coverage</h1>\n<p class=\"meta\">{}</p>\n\
         <p><b>{hit}/{total}</b> bins hit ({:.1}%), <b>{holes}</b> holes; {} requests sampled.</p>\n",
        escape(&p.run),
        100.0 * hit as f64 / total.max(1) as f64,
        cov.requests
    );
    s.push_str("<table><tr><th>group</th><th>hit</th><th>bins</th><th>holes</th></tr>");
    for g in Group::ALL {
        let bins: Vec<&Bin> = universe.iter().filter(|b| b.group() == g).collect();
        let h = bins.iter().filter(|b| cov.count(b) > 0).count();
        let _ = write!(
            s,
            "<tr{}><td><a href=\"#{}\">{}</a></td><td class=\"n\">{h}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            if h < bins.len() { " class=\"hole\"" } else { "" },
            anchor(g),
            escape(g.title()),
            bins.len(),
            bins.len() - h
        );
    }
    s.push_str("</table>\n<h2>Closure</h2>\n<p class=\"meta\">Bins hit by the first N seeds, in seed order.</p>\n");
    s.push_str(&closure_svg(p.closure, total));
    s.push('\n');
    if let Some(l) = &p.line {
        s.push_str("<h2>Line coverage (Verilator)</h2>\n<ul>");
        for line in &l.summary {
            let _ = write!(s, "<li>{}</li>", escape(line));
        }
        let _ = write!(
            s,
            "</ul>\n<p><a href=\"{}\">{}</a>{}</p>\n",
            escape(&l.href),
            escape(&l.label),
            l.note
                .as_ref()
                .map(|n| format!(" ({})", escape(n)))
                .unwrap_or_default()
        );
    }
    s.push_str("<h2>Bins</h2>\n");
    for g in Group::ALL {
        let bins: Vec<&Bin> = universe.iter().filter(|b| b.group() == g).collect();
        let h = bins.iter().filter(|b| cov.count(b) > 0).count();
        let _ = write!(
            s,
            "<h3 id=\"{}\">{} ({h}/{} hit)</h3>\n<table><tr><th>count</th><th>bin</th><th></th></tr>",
            anchor(g),
            escape(g.title()),
            bins.len()
        );
        for b in bins {
            let n = cov.count(b);
            if n == 0 {
                let _ = write!(
                    s,
                    "<tr class=\"hole\"><td class=\"n\">HOLE</td><td class=\"bin\">{}</td><td></td></tr>",
                    escape(&b.to_string())
                );
            } else {
                // Bar length on a log scale, so rare bins stay visible next to common ones.
                let frac = (n as f64 + 1.0).ln() / (max as f64 + 1.0).ln();
                let _ = write!(
                    s,
                    "<tr><td class=\"n\">{n}</td><td class=\"bin\">{}</td><td><span class=\"bar\" style=\"width:{:.1}em\"></span></td></tr>",
                    escape(&b.to_string()),
                    0.2 + 11.8 * frac
                );
            }
        }
        s.push_str("</table>\n");
    }
    let unexpected = cov.unexpected();
    if !unexpected.is_empty() {
        s.push_str("<h2>Sampled outside the bin space (the bin space is wrong)</h2>\n<table>");
        for b in unexpected {
            let _ = write!(
                s,
                "<tr class=\"hole\"><td class=\"n\">{}</td><td class=\"bin\">{}</td></tr>",
                cov.count(&b),
                escape(&b.to_string())
            );
        }
        s.push_str("</table>\n");
    }
    s.push_str("</body></html>\n");
    s
}

/// Writes the page as `dir/index.html` (creating `dir`); returns its path.
pub fn write(dir: &Path, p: &Page<'_>) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("index.html");
    std::fs::write(&path, render(p)).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// `to` as a link from a page in `from_dir`: a relative path (`../cov/html/index.html`)
/// when both are absolute or both relative, else `to` as given. Path parts are
/// percent-encoded where a URL needs it.
pub fn relative_href(from_dir: &Path, to: &Path) -> String {
    let parts = |p: &Path| -> Vec<String> {
        p.components()
            .filter(|c| !matches!(c, Component::CurDir))
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    };
    let rel = if from_dir.is_absolute() == to.is_absolute() {
        let (f, t) = (parts(from_dir), parts(to));
        let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
        if f[common..].iter().any(|c| c == "..") {
            None
        } else {
            let mut v: Vec<String> = vec!["..".to_string(); f.len() - common];
            v.extend(t[common..].iter().cloned());
            Some(v.join("/"))
        }
    } else {
        None
    };
    let raw = rel.unwrap_or_else(|| to.to_string_lossy().replace('\\', "/"));
    let mut o = String::new();
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || "-._~/".contains(c) {
            o.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(o, "%{b:02X}");
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::super::{Closure, Inval};
    use super::*;

    /// Parses the page as XML (its `<!DOCTYPE html>` is a DTD to an XML parser).
    fn parse(page: &str) -> roxmltree::Document<'_> {
        let opts = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        };
        roxmltree::Document::parse_with_options(page, opts).expect("the page is well-formed XML")
    }

    fn sample() -> (Coverage, Vec<ClosurePoint>) {
        let universe = Bin::universe();
        let mut cl = Closure::new();
        // Three seeds: every third bin, then every second, then one more; the rest are holes.
        for (i, step) in [3usize, 2, 7].into_iter().enumerate() {
            let mut c = Coverage::new();
            for b in universe.iter().step_by(step) {
                c.hit(*b);
            }
            c.requests = 10;
            cl.add(i, 100 + i as u64, Some(c));
        }
        cl.finish()
    }

    #[test]
    fn the_page_shows_every_bin_the_holes_and_the_curve() {
        let (cov, curve) = sample();
        let page = render(&Page {
            run: "seeds 100..102 (3 seeds) & friends".into(),
            cov: &cov,
            closure: &curve,
            line: Some(LineCoverage {
                summary: vec!["line 185/242 points hit (76.4%)".into()],
                href: "../cov/html/index.html".into(),
                label: "lcov HTML".into(),
                note: None,
            }),
        });
        // The whole page is well-formed XML.
        let doc = parse(&page);
        let rows: Vec<roxmltree::Node> = doc
            .descendants()
            .filter(|n| n.has_tag_name("tr"))
            .filter(|r| r.children().any(|c| c.attribute("class") == Some("bin")))
            .collect();
        let bin_text = |r: &roxmltree::Node| -> String {
            r.children()
                .find(|c| c.attribute("class") == Some("bin"))
                .and_then(|c| c.text())
                .unwrap_or("")
                .to_string()
        };
        let universe = Bin::universe();
        assert_eq!(rows.len(), universe.len(), "one row per bin");
        let holes: Vec<String> = rows
            .iter()
            .filter(|r| r.attribute("class") == Some("hole"))
            .map(bin_text)
            .collect();
        let expected_holes: Vec<String> = cov.holes().iter().map(|b| b.to_string()).collect();
        assert!(!expected_holes.is_empty());
        assert_eq!(holes, expected_holes, "exactly the holes are highlighted");
        for (row, b) in rows.iter().zip(&universe) {
            assert_eq!(bin_text(row), b.to_string());
            let count = row
                .children()
                .find(|c| c.is_element())
                .and_then(|c| c.text())
                .unwrap_or("");
            let want = match cov.count(b) {
                0 => "HOLE".to_string(),
                n => n.to_string(),
            };
            assert_eq!(count, want, "{b}");
        }
        // The closure curve: an SVG with a point per seed, ending at the bins hit.
        let svg = doc
            .descendants()
            .find(|n| n.has_tag_name("svg"))
            .expect("an inline <svg>");
        assert_eq!(
            svg.descendants()
                .filter(|n| n.has_tag_name("circle"))
                .count(),
            3
        );
        let line = svg
            .descendants()
            .find(|n| n.has_tag_name("polyline"))
            .expect("the curve");
        assert_eq!(
            line.attribute("points").map(|p| p.split(' ').count()),
            Some(4)
        );
        let svg_text = &page[svg.range()];
        roxmltree::Document::parse(svg_text).expect("the SVG alone parses");
        // Self-contained: nothing fetched.
        for external in ["src=", "<link", "url(", "<script", "@import"] {
            assert!(
                !page.contains(external),
                "the page fetches something: {external}"
            );
        }
        assert!(page.contains("seeds 100..102 (3 seeds) &amp; friends"));
        let a = doc
            .descendants()
            .find(|n| n.has_tag_name("a") && n.text() == Some("lcov HTML"))
            .expect("the lcov link");
        assert_eq!(a.attribute("href"), Some("../cov/html/index.html"));
    }

    #[test]
    fn an_empty_run_still_renders() {
        let cov = Coverage::new();
        let page = render(&Page {
            run: String::new(),
            cov: &cov,
            closure: &[],
            line: None,
        });
        let doc = parse(&page);
        assert!(doc.descendants().any(|n| n.has_tag_name("svg")));
        assert!(!page.contains("Line coverage"));
        let mut c = Coverage::new();
        c.hit(Bin::Invalidation(Inval::Wait));
        let one = closure_svg(
            &[ClosurePoint {
                seeds: 1,
                seed: 7,
                bins_hit: 1,
            }],
            c.summary().1,
        );
        roxmltree::Document::parse(&one).expect("well-formed");
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(50, 10), 5);
        assert_eq!(tick_step(1000, 10), 100);
        assert_eq!(tick_step(253, 5), 100);
        assert_eq!(tick_step(3, 10), 1);
        assert_eq!(tick_step(0, 10), 1);
    }

    #[test]
    fn links_are_relative_to_the_page() {
        assert_eq!(
            relative_href(
                Path::new("/a/b/report"),
                Path::new("/a/b/cov/html/index.html")
            ),
            "../cov/html/index.html"
        );
        assert_eq!(
            relative_href(
                Path::new("target/cov"),
                Path::new("target/cov/html/index.html")
            ),
            "html/index.html"
        );
        assert_eq!(
            relative_href(Path::new("out"), Path::new("/abs/my cov.info")),
            "/abs/my%20cov.info"
        );
    }
}
