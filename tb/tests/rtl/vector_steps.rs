//! The vector steps that say everything: `raw_tlp`, `write_memory`, `descriptor`,
//! `read_register`, `pa:` as the first byte's address; every negative fixture fails (and
//! the input-error ones are input errors, not re-run); `keep_going` reports every failing
//! step with its file:line:column; the per-TLP log; JUnit XML that parses.

use std::path::{Path, PathBuf};

use iommu_tb::vectors::{self, RunOptions};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vectors")
}

fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

fn vector(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../vectors")
        .join(name)
}

/// Fixtures whose vector, not the DUT, is wrong.
const INPUT_ERRORS: &[&str] = &["during-forbidden-pin.yaml", "write-memory-unbacked.yaml"];

fn fresh_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("iommu-tb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn every_negative_fixture_fails() {
    let files = vectors::collect(&[fixtures()]).expect("listing fixtures");
    assert!(files.len() >= 10, "{files:?}");
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    for r in vectors::run_files(&files, &RunOptions::default(), jobs) {
        let name = r.file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let e = match &r.result {
            Ok(_) => panic!("{}: a negative fixture passed", r.file.display()),
            Err(e) => e,
        };
        assert_eq!(
            r.input_error,
            INPUT_ERRORS.contains(&name),
            "{}: input error {} ({e})",
            r.file.display(),
            r.input_error
        );
    }
}

/// The error of a fixture run once (no waveform re-run).
fn fail(name: &str, opts: &RunOptions) -> anyhow::Error {
    let v = vectors::parse_file(&fixture(name)).expect("the fixture parses");
    vectors::run_parsed(&v, opts, &fresh_dir("steps"), false).expect_err("must fail")
}

#[test]
fn wrong_pins_of_the_new_steps_fail_at_their_position() {
    let cases = [
        (
            "raw-tlp-wrong-pin.yaml",
            "raw-tlp-wrong-pin.yaml:6:5: step 1 of 1 (`raw_tlp`)",
            "pinned untranslated forwarding, the DUT did Malformed",
        ),
        (
            "pa-is-the-first-byte.yaml",
            "pa-is-the-first-byte.yaml:11:5: step 4 of 4 (`tlp`)",
            "pinned pa 0x800000320, the DUT translated the first byte to 0x800000321",
        ),
        (
            "ats-same-entry-differs.yaml",
            "ats-same-entry-differs.yaml:14:5: step 6 of 6 (`tlp`)",
            "pinned the previous TLP's Translation Completion",
        ),
        (
            "device-cache-wrong-pin.yaml",
            "device-cache-wrong-pin.yaml:14:5: step 7 of 7 (`device_cache`)",
            "pinned: device 00:03.0 caches a translation of 0x100000 for PASID 0x1; it caches none",
        ),
        (
            "ats-translated-not-cached.yaml",
            "ats-translated-not-cached.yaml:12:5: step 4 of 4 (`ats_translated`)",
            "device 00:03.0 caches no translation of 0x100000 without PASID",
        ),
        (
            "write-memory-wrong-pin.yaml",
            "(`tlp`)",
            "pinned pa 0x800000010, the DUT translated the first byte to 0x800005010",
        ),
        (
            "descriptor-kernel-wrong-pin.yaml",
            "descriptor-kernel-wrong-pin.yaml:13:5: step 5 of 5 (`read_register`)",
            "register IQER reads 0x4; pinned 0x3",
        ),
        (
            "descriptor-wrong-pin.yaml",
            "descriptor-wrong-pin.yaml:10:5: step 2 of 2 (`read_register`)",
            "register FSTS reads",
        ),
    ];
    for (name, at, what) in cases {
        let e = fail(name, &RunOptions::default());
        let msg = format!("{e:#}");
        assert!(!vectors::is_input_error(&e), "{name}: {msg}");
        assert!(msg.contains(at), "{name}: expected `{at}` in {msg}");
        assert!(msg.contains(what), "{name}: expected `{what}` in {msg}");
    }
}

#[test]
fn keep_going_reports_every_failing_step() {
    let v = vectors::parse_file(&fixture("keep-going-two-failures.yaml")).expect("parses");
    let dir = fresh_dir("keep-going");
    let once = vectors::run_parsed_logged(&v, &RunOptions::default(), &dir, false);
    assert_eq!(once.failing_steps, 1);
    assert_eq!(once.log.len(), 1, "stopped at the first failing step");
    let opts = RunOptions {
        keep_going: true,
        ..RunOptions::default()
    };
    let all = vectors::run_parsed_logged(&v, &opts, &dir, false);
    let msg = format!("{:#}", all.result.expect_err("must fail"));
    assert_eq!(all.failing_steps, 2, "{msg}");
    assert_eq!(all.log.len(), 4, "every TLP judged: {:#?}", all.log);
    assert!(msg.contains("2 failing step(s)"), "{msg}");
    let file = fixture("keep-going-two-failures.yaml")
        .display()
        .to_string();
    assert!(
        msg.contains(&format!("{file}:6:5: step 1 of 4 (`tlp`)")),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("{file}:8:5: step 3 of 4 (`raw_tlp`)")),
        "{msg}"
    );
    assert!(!msg.contains("step 2 of 4"), "{msg}");
}

#[test]
fn an_unbacked_write_is_an_input_error_without_a_rerun() {
    let v = vectors::parse_file(&fixture("write-memory-unbacked.yaml")).expect("parses");
    let dir = fresh_dir("unbacked");
    let e = vectors::run_parsed(&v, &RunOptions::default(), &dir, false).expect_err("input error");
    let msg = format!("{e:#}");
    assert!(vectors::is_input_error(&e), "{msg}");
    assert!(
        msg.contains("write-memory-unbacked.yaml:7:5: step 2 of 2 (`write_memory`)"),
        "{msg}"
    );
    let waves = std::fs::read_dir(&dir).map_or(0, |d| d.count());
    assert_eq!(waves, 0, "no waveform for an input error");
}

#[test]
fn the_log_shows_every_tlp_outcome() {
    let v = vectors::parse_file(&vector("hw-raw-tlps.yaml")).expect("parses");
    let run = vectors::run_parsed_logged(&v, &RunOptions::default(), &fresh_dir("log"), false);
    let log = run.log;
    let rep = run.result.expect("hw-raw-tlps passes");
    assert_eq!(rep.tlps, log.len());
    assert!(
        log[1].contains("step 2 (raw_tlp) ")
            && log[1].ends_with("MRd rid 00:02.0 0x100321 len 1 -> translated to 0x800000321"),
        "{}",
        log[1]
    );
    assert!(
        log.iter().any(|l| l.ends_with("-> rejected as malformed")),
        "{log:#?}"
    );
    assert!(log[0].contains("hw-raw-tlps.yaml:"), "{}", log[0]);
}

#[test]
fn raw_tlp_and_descriptor_fields_are_checked_when_parsing() {
    let cases = [
        (
            "  - raw_tlp: {header: [1, 2]}\n",
            "bad.yaml:3:",
            "a header is 3 or 4",
        ),
        (
            "  - raw_tlp: {header: [1, 2, 0x100000000]}\n",
            "bad.yaml:3:",
            "does not fit in a DW",
        ),
        ("  - descriptor: {qw: []}\n", "bad.yaml:3:", "1 to 4"),
        (
            "  - descriptor: {qw: [0x12], status: 0x1000}\n",
            "bad.yaml:3:",
            "goes with `wait: true`",
        ),
        (
            "  - write_memory: {addr: 0x1004, value: 1}\n",
            "bad.yaml:3:",
            "not 8-byte aligned",
        ),
        (
            "  - read_register: {reg: NOPE, value: 1}\n",
            "bad.yaml:3:",
            "unknown register `NOPE`",
        ),
    ];
    crate::assert_parse_errors("", &cases);
}

#[test]
fn junit_xml_of_a_run_parses_with_one_case_per_vector() {
    let dir = fresh_dir("junit");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "name: bad\nsteps:\n  - write_register: {reg: NOPE, value: 1}\n",
    )
    .expect("writing");
    let files = vec![
        fixture("raw-tlp-wrong-pin.yaml"),
        fixture("keep-going-two-failures.yaml"),
        bad.clone(),
    ];
    let results = vectors::run_files_in(&files, &RunOptions::default(), 2, Some(&dir));
    let xml_path = dir.join("results.xml");
    vectors::junit_suite(&results, 1.0)
        .write(&xml_path)
        .expect("writing JUnit");
    let text = std::fs::read_to_string(&xml_path).expect("reading JUnit");
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("a testsuite");
    assert_eq!(suite.attribute("tests"), Some("3"));
    assert_eq!(suite.attribute("failures"), Some("2"));
    assert_eq!(suite.attribute("errors"), Some("1"));
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 3);
    for (c, f) in cases.iter().zip(&files) {
        assert_eq!(c.attribute("classname"), Some("iommu-tb.vectors"));
        assert_eq!(c.attribute("name"), Some(f.display().to_string().as_str()));
    }
    let failure = cases[0]
        .children()
        .find(|n| n.has_tag_name("failure"))
        .expect("a failure");
    let text = failure.text().unwrap_or_default();
    assert!(text.contains("raw-tlp-wrong-pin.yaml:6:5:"), "{text}");
    assert!(
        text.contains(&format!("iommu-tb run {}", files[0].display())),
        "{text}"
    );
    let error = cases[2]
        .children()
        .find(|n| n.has_tag_name("error"))
        .expect("an error");
    assert!(
        error
            .attribute("message")
            .unwrap_or_default()
            .contains("bad.yaml:3:"),
        "{:?}",
        error.attribute("message")
    );
    // Every run wrote its waveform into the folder given.
    let fst = std::fs::read_dir(&dir)
        .expect("listing")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "fst"))
        })
        .count();
    assert!(fst >= 2, "{fst} waveforms in {}", dir.display());
}

fn cli(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iommu-tb"))
        .args(args)
        .output()
        .expect("running iommu-tb");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn run_help_documents_every_option() {
    let (code, help) = cli(&["run", "--help"]);
    assert_eq!(code, 0, "{help}");
    for opt in [
        "--jobs",
        "--waves <DIR>",
        "--keep-going",
        "--junit <FILE>",
        "--verbose",
        "--driver-bug <NAME>",
        "Exit status",
    ] {
        assert!(
            help.contains(opt),
            "`run --help` does not mention {opt}:\n{help}"
        );
    }
}

#[test]
fn run_exit_status_tells_input_errors_from_failures() {
    let dir = fresh_dir("cli");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "name: bad\nsteps:\n  - read_register: {reg: NOPE, value: 1}\n",
    )
    .expect("writing");
    let bad_s = bad.display().to_string();
    let (code, out) = cli(&["run", &bad_s]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(&format!("ERROR {bad_s}:3:")), "{out}");
    let unbacked = fixture("write-memory-unbacked.yaml").display().to_string();
    let (code, out) = cli(&["run", &unbacked]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("write-memory-unbacked.yaml:7:5:"), "{out}");
    assert!(
        !out.contains("waveform"),
        "an input error is not re-run: {out}"
    );
    let failing = fixture("keep-going-two-failures.yaml")
        .display()
        .to_string();
    let junit = dir.join("results.xml");
    let junit_s = junit.display().to_string();
    let (code, out) = cli(&[
        "run",
        "--keep-going",
        "--verbose",
        "--jobs",
        "1",
        "--junit",
        &junit_s,
        &failing,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("0 passed, 2 failed"), "{out}");
    assert!(out.contains("step 4 (tlp) "), "{out}");
    let xml = std::fs::read_to_string(&junit).expect("JUnit written");
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("a testsuite");
    assert_eq!(suite.attribute("tests"), Some("1"));
    assert_eq!(suite.attribute("failures"), Some("1"));
    let passing = vector("hw-raw-tlps.yaml").display().to_string();
    let (code, out) = cli(&["run", &passing]);
    assert_eq!(code, 0, "{out}");
}
