//! Every YAML vector in `vectors/` runs on the RTL and passes; together they produce every
//! fault reason of docs/contract.md; the unmap-flush vector catches the driver bug that skips the
//! PASID-tagged flush; malformed vector files are rejected with file, line and column.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use iommu_model::driver::DriverQuirks;
use iommu_model::FaultReason;
use iommu_tb::vectors::{self, RunOptions};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors")
}

#[test]
fn every_vector_passes_and_all_fault_codes_are_produced() {
    let files = vectors::collect(&[vectors_dir()]).expect("listing vectors/");
    assert!(
        !files.is_empty(),
        "no vectors in {}",
        vectors_dir().display()
    );
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let results = vectors::run_files(&files, &RunOptions::default(), jobs);
    let mut failures = Vec::new();
    let mut faults = BTreeSet::new();
    for r in &results {
        match &r.result {
            Ok(rep) => faults.extend(rep.faults.iter().copied()),
            Err(e) => failures.push(e.clone()),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
    let missing: Vec<String> = FaultReason::ALL
        .iter()
        .filter(|r| !faults.contains(&r.code()))
        .map(|r| r.to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "fault reasons no vector produces: {missing:?}"
    );
}

#[test]
fn unmap_flush_vector_catches_the_skipped_pasid_flush() {
    let file = vectors_dir().join("unmap-flushes-both.yaml");
    let v = vectors::parse_file(&file).expect("parsing");
    let opts = RunOptions {
        quirks: DriverQuirks {
            skip_pasid_flush: true,
            ..DriverQuirks::default()
        },
        ..RunOptions::default()
    };
    let dir = std::env::temp_dir().join("iommu-tb-vectors-quirk");
    let err = vectors::run_parsed(&v, &opts, &dir, false)
        .expect_err("a driver that skips the PASID-tagged flush must fail the vector");
    let msg = format!("{err:#}");
    assert!(msg.contains("unmap-flushes-both.yaml"), "{msg}");
    assert!(msg.contains("step "), "{msg}");
    assert!(msg.contains("(`tlp`)"), "{msg}");
}

#[test]
fn device_tlb_vector_catches_the_skipped_pasid_devtlb_flush() {
    let file = vectors_dir().join("ats-unmap-flushes-both-device-tlbs.yaml");
    let v = vectors::parse_file(&file).expect("parsing");
    let rep = vectors::run_parsed(&v, &RunOptions::default(), &std::env::temp_dir(), false)
        .expect("the vector passes with the correct driver");
    assert!(rep.tlps >= 10, "{}", rep.tlps);
    let opts = RunOptions {
        quirks: DriverQuirks {
            skip_pasid_devtlb_flush: true,
            ..DriverQuirks::default()
        },
        ..RunOptions::default()
    };
    let dir = std::env::temp_dir().join("iommu-tb-vectors-devtlb-quirk");
    let err = vectors::run_parsed(&v, &opts, &dir, false)
        .expect_err("a driver that skips the PASID's device-TLB flush must fail the vector");
    let msg = format!("{err:#}");
    assert!(!vectors::is_input_error(&err), "{msg}");
    assert!(msg.contains("(`unmap`): stale device-TLB entries"), "{msg}");
    assert!(msg.contains("pasid=0x1 0x100000+0x1000"), "{msg}");
}

/// Parses `text` as `bad.yaml` and returns the error message.
fn parse_err(text: &str) -> String {
    match vectors::parse_str(text, Path::new("bad.yaml"), &vectors_dir()) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const HEAD: &str = "name: t\ndevices:\n  - {name: dev, rid: \"00:02.0\"}\nsteps:\n";

#[test]
fn errors_name_file_line_and_column() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("{HEAD}  - map: {{domain: d, iova: 0, pa: 0, size: 1, prot: rw}}\n"),
            "bad.yaml:5:19:",
            "unknown domain `d`",
        ),
        (
            format!("{HEAD}  - domain_alloc: {{name: d, type: paging, stage: second, x: 1}}\n"),
            "bad.yaml:5:",
            "unknown field `x`",
        ),
        (
            format!("{HEAD}  - tlp: {{dev: dev, read: 0x1g}}\n"),
            "bad.yaml:5:27:",
            "`0x1g` is not a number",
        ),
        (
            format!("{HEAD}  - tlp: {{dev: \"00:20.0\", read: 0}}\n"),
            "bad.yaml:5:16:",
            "device is 00-1f",
        ),
        (
            format!("{HEAD}  - tlp: {{dev: dev, read: 0, expect: {{fault: 0x31}}}}\n"),
            "bad.yaml:5:",
            "0x31 is not a fault reason",
        ),
        (
            format!("{HEAD}  - attach_device: {{dev: dev, domain: dev}}\n"),
            "bad.yaml:5:",
            "`dev` is a device, not a domain",
        ),
        (
            format!("{HEAD}  - enable_dma_pasid: {{dev: dev, errno: EWHAT}}\n"),
            "bad.yaml:5:",
            "unknown errno `EWHAT`",
        ),
        (
            "name: t\nsteps:\n  - mm_create: {as: m}\n".to_owned(),
            "bad.yaml:3:",
            "needs the kernel",
        ),
        (
            "name: t\nmemory:\n  image: {file: nope.bin, pages: [0x1000]}\nsteps: []\n".to_owned(),
            "bad.yaml:3:",
            "nope.bin",
        ),
        (
            format!("{HEAD}  - poke: {{context_entry: dev, value: 1, set: 2}}\n"),
            "bad.yaml:5:",
            "does not go with `set:`",
        ),
        // Names are checked after parsing, in document order; the position is the name's.
        (
            format!("{HEAD}  - tlp: {{dev: dev, pasid: q, read: 0}}\n"),
            "bad.yaml:5:28:",
            "unknown PASID `q`",
        ),
        (
            format!("{HEAD}  - tlp: {{rid: devx, read: 0}}\n"),
            "bad.yaml:5:16:",
            "unknown device `devx`",
        ),
        (
            format!(
                "{HEAD}  - domain_alloc: {{name: d, type: paging, stage: first}}\n  - \
                 poke: {{pte: {{dev: dev, pasid: nope, addr: 0}}, value: 0}}\n"
            ),
            "bad.yaml:6:35:",
            "unknown PASID `nope`",
        ),
        (
            format!(
                "{HEAD}  - domain_alloc: {{name: d, type: paging, stage: first}}\n  \
                 - domain_alloc: {{name: d, type: blocked}}\n"
            ),
            "bad.yaml:6:26:",
            "`d` is already bound",
        ),
        (
            format!(
                "{HEAD}  - during:\n      dma_map_single: {{dev: dev, pa: 0, size: 4K, as: b}}\n      \
                 tlps:\n        - {{dev: dev, read: b}}\n"
            ),
            "bad.yaml:8:28:",
            "unknown DMA address `b`",
        ),
        (
            format!(
                "{HEAD}  - during:\n      unmap: {{domain: zz, iova: 0, size: 4K}}\n      \
                 tlps: [{{dev: dev, read: 0}}]\n"
            ),
            "bad.yaml:6:23:",
            "unknown domain `zz`",
        ),
        (
            format!("{HEAD}  - during: {{tlp: {{dev: dev, read: 0}}, tlps: [{{dev: dev, read: 0}}]}}\n"),
            "bad.yaml:5:",
            "runs one kernel call",
        ),
        (
            format!("{HEAD}  - during: {{iotlb_sync: {{domain: d}}, map: {{}}, tlps: []}}\n"),
            "bad.yaml:5:",
            "runs one call",
        ),
        (
            format!("{HEAD}  - tlp: {{dev: dev, read: 0, expect: {{any_of: [{{any_of: [{{pa: 0}}]}}]}}}}\n"),
            "bad.yaml:5:",
            "not further `any_of:`",
        ),
        (
            format!("{HEAD}  - ats_translate: {{dev: dev, read: 0, at: translated}}\n"),
            "bad.yaml:5:",
            "`ats_translate` sets the Address Type itself",
        ),
        (
            format!("{HEAD}  - ats_translate: {{dev: dev, write: 0}}\n"),
            "bad.yaml:5:",
            "a Translation Request is a read",
        ),
        (
            format!("{HEAD}  - device_cache: {{dev: dev, iova: 0}}\n"),
            "bad.yaml:5:",
            "missing field `cached`",
        ),
        (
            format!("{HEAD}  - device_cache: {{dev: dev, pasid: q, iova: 0, cached: true}}\n"),
            "bad.yaml:5:",
            "unknown PASID `q`",
        ),
        (
            format!("{HEAD}  - ats_answers: {{next: []}}\n"),
            "bad.yaml:5:",
            "`next:` lists at least one of normal, late, lost",
        ),
        (
            format!("{HEAD}  - ats_answers: {{next: [slow]}}\n"),
            "bad.yaml:5:",
            "unknown variant `slow`",
        ),
        (
            format!("ats_device: {{late_pct: 60, lost_pct: 50}}\n{HEAD}"),
            "bad.yaml:1:",
            "percentages of one whole",
        ),
        (
            format!("ats_device: {{entries: 0}}\n{HEAD}"),
            "bad.yaml:1:",
            "a device's ATS cache holds 1 to 4096 entries",
        ),
        (
            format!("driver_bugs: [no-such-bug]\n{HEAD}"),
            "bad.yaml:1:15:",
            "unknown driver bug `no-such-bug`",
        ),
        (
            "name: t\ndriver_bugs: [skip-pasid-flush]\nsteps: []\n".to_owned(),
            "bad.yaml:2:",
            "needs them",
        ),
        (
            format!("timing: {{min_latency: 4, max_latency: 2}}\n{HEAD}"),
            "bad.yaml:1:9:",
            "need 1 <= min_latency <= max_latency",
        ),
        (
            format!("{HEAD}  - mm_create: {{as: m}}\ndevices: []\n"),
            "bad.yaml:",
            "duplicate field `devices`",
        ),
    ];
    for (text, at, what) in cases {
        let e = parse_err(&text);
        assert!(
            e.starts_with(at),
            "expected `{at}` in front of: {e}\n{text}"
        );
        assert!(e.contains(what), "expected `{what}` in: {e}\n{text}");
    }
}

#[test]
fn image_size_must_match_its_pages() {
    let e = parse_err(
        "name: t\nmemory:\n  image:\n    file: images/fs-03-00-0.bin\n    pages: [0x1000]\nsteps: []\n",
    );
    assert!(e.starts_with("bad.yaml:4:"), "{e}");
    assert!(e.contains("1 pages need 4096"), "{e}");
}
