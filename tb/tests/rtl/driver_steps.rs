//! The steps below the IOMMU API (`fpd`, `set_root_entry`, `mem_error`,
//! `clear_mem_errors`): their fields are checked when parsing, a wrong pin after each fails
//! at its position, and a regression trace holding every such operation (with requests sent
//! during them) is written by the shrinker as a complete vector that reproduces the replay:
//! the same TLPs judged the same way, passing without a driver bug and failing with it.

use std::path::{Path, PathBuf};

use iommu_model::driver::DriverQuirks;
use iommu_model::golden::Request;
use iommu_model::kernel::{DomainType, FpdAt, MemErrAt, Prot, Stage};
use iommu_model::stimulus::{DomainRef, Op, PasidRef};
use iommu_tb::flows::regress::{self, FailPos, Replayed, TraceStep};
use iommu_tb::flows::shrink::{self, Shrunk};
use iommu_tb::vectors::{self, RunOptions};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/vectors")
        .join(name)
}

fn fresh_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("iommu-tb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn a_wrong_pin_after_each_driver_step_fails_at_its_position() {
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "fpd-wrong-pin.yaml",
            "fpd-wrong-pin.yaml:13:5: step 6 of 6 (`tlp`)",
            &["pinned fault 0x79", "recorded, the DUT did not record it"],
        ),
        (
            "set-root-entry-wrong-pin.yaml",
            "set-root-entry-wrong-pin.yaml:12:5: step 5 of 5 (`tlp`)",
            &["pinned fault 0x79", "the DUT did Translated(0x800000000)"],
        ),
        (
            "mem-error-wrong-pin.yaml",
            "mem-error-wrong-pin.yaml:12:5: step 5 of 5 (`tlp`)",
            &["pinned fault 0x59", "the DUT faulted 0x58"],
        ),
        (
            "clear-mem-errors-wrong-pin.yaml",
            "clear-mem-errors-wrong-pin.yaml:14:5: step 7 of 7 (`tlp`)",
            &["pinned fault 0x78", "the DUT did Translated(0x800000000)"],
        ),
    ];
    for (name, at, what) in cases {
        let v = vectors::parse_file(&fixture(name)).expect("the fixture parses");
        let e = vectors::run_parsed(&v, &RunOptions::default(), &fresh_dir("drv-pins"), false)
            .expect_err("a wrong pin fails");
        let msg = format!("{e:#}");
        assert!(!vectors::is_input_error(&e), "{name}: {msg}");
        assert!(msg.contains(at), "{name}: expected `{at}` in {msg}");
        for w in what {
            assert!(msg.contains(w), "{name}: expected `{w}` in {msg}");
        }
    }
}

/// A fault the oracle judges while FPD is set: the unit is right not to record it, the
/// oracle (which does not model FPD) expects the record, as it does in the regression; the
/// failure says why.
#[test]
fn an_oracle_judged_fault_under_fpd_fails_with_a_note() {
    let v = vectors::parse_file(&fixture("fpd-oracle-judged-fault.yaml")).expect("parses");
    let e = vectors::run_parsed(&v, &RunOptions::default(), &fresh_dir("drv-note"), false)
        .expect_err("the oracle expects the record");
    let msg = format!("{e:#}");
    assert!(!vectors::is_input_error(&e), "{msg}");
    assert!(
        msg.contains("fpd-oracle-judged-fault.yaml:14:5: step 5 of 5 (`during`)"),
        "{msg}"
    );
    assert!(msg.contains("must write a record"), "{msg}");
    assert!(
        msg.contains("note: FPD is set (00:02.0 Context)") && msg.contains("does not model FPD"),
        "{msg}"
    );
}

#[test]
fn driver_step_fields_are_checked_when_parsing() {
    let dev = "devices:\n  - {name: dev, rid: \"00:02.0\"}\n";
    let cases = [
        (
            "  - fpd: {dev: dev, at: context, pasid: 1}\n",
            "bad.yaml:5:",
            "`at: context` has none",
        ),
        (
            "  - fpd: {dev: dev, at: pasid_table}\n",
            "bad.yaml:5:",
            "unknown variant `pasid_table`",
        ),
        (
            "  - fpd: {dev: dev, at: pasid_entry, pasid: 0x100000}\n",
            "bad.yaml:5:",
            "wider than 20 bits",
        ),
        (
            "  - fpd: {dev: nodev, at: context}\n",
            "bad.yaml:5:",
            "unknown device `nodev`",
        ),
        (
            "  - mem_error: {dev: dev, at: page_table}\n",
            "bad.yaml:5:",
            "needs `addr:`",
        ),
        (
            "  - mem_error: {dev: dev, at: root_table, addr: 0x1000}\n",
            "bad.yaml:5:",
            "go with `at: page_table`",
        ),
        (
            "  - mem_error: {dev: dev, at: context_table, pasid: 3}\n",
            "bad.yaml:5:",
            "`pasid:` goes with",
        ),
        (
            "  - mem_error: {dev: dev, at: page_table, addr: 0, level: 5}\n",
            "bad.yaml:5:",
            "paging levels are 1-4",
        ),
        (
            "  - mem_error: {dev: dev, at: pasid_table, pasid: q}\n",
            "bad.yaml:5:",
            "unknown PASID `q`",
        ),
        (
            "  - set_root_entry: {flush: true}\n",
            "bad.yaml:5:",
            "unknown field `flush`",
        ),
        (
            "  - clear_mem_errors: {errno: EWHAT}\n",
            "bad.yaml:5:",
            "unknown errno `EWHAT`",
        ),
    ];
    crate::assert_parse_errors(dev, &cases);
    // Kernel-level only.
    let text = "name: t\nsteps:\n  - set_root_entry: {}\n";
    let e = vectors::parse_str(text, Path::new("hw.yaml"), Path::new("."))
        .expect_err("needs the kernel")
        .to_string();
    assert!(
        e.starts_with("hw.yaml:3:") && e.contains("needs the kernel"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// A trace with every operation below the IOMMU API, through the shrinker's writer
// ---------------------------------------------------------------------------------------

const DEV: u16 = 0x0100; // 01:00.0, 64 PASIDs
const OTHER: u16 = 0x0180; // 01:10.0
const PA: u64 = 0x2_0000_0000;
/// The PASID the first `enable_dma_pasid` returns on a fresh kernel.
const DMA_PASID: u32 = 1;

fn op(op: Op) -> TraceStep {
    TraceStep {
        op,
        concurrent: Vec::new(),
        requests: Vec::new(),
    }
}

fn with(op: Op, concurrent: Vec<Request>, requests: Vec<Request>) -> TraceStep {
    TraceStep {
        op,
        concurrent,
        requests,
    }
}

fn rd(rid: u16, addr: u64) -> Request {
    Request::read(rid, addr, 8)
}

fn rd_p(rid: u16, pasid: u32, addr: u64) -> Request {
    Request::read(rid, addr, 8).with_pasid(pasid)
}

/// Every operation kind below the IOMMU API, each with requests after it whose outcome
/// depends on it, and requests sent while it executes (translations only where FPD is
/// involved: the oracle, which judges those, expects every fault recorded). Then a stale
/// PASID-tagged first-stage IOTLB entry: the last request faults 0x71, unless the driver
/// skips the PASID flush.
fn trace() -> Vec<TraceStep> {
    let d = DomainRef(0);
    let hit = rd(DEV, 0x1000);
    let miss = rd(DEV, 0x5000);
    let cross = rd(OTHER, 0x1000);
    vec![
        op(Op::DomainAlloc {
            ty: DomainType::Paging(Stage::First),
            bind: d,
        }),
        op(Op::AttachDevice {
            dev: DEV,
            domain: Some(d),
        }),
        op(Op::AttachDevice {
            dev: OTHER,
            domain: Some(d),
        }),
        op(Op::EnableDmaPasid {
            dev: DEV,
            bind: PasidRef(0),
        }),
        op(Op::Map {
            domain: Some(d),
            iova: 0x1000,
            pa: PA,
            size: 0x1000,
            prot: Prot::RW,
        }),
        // FPD at each structure, set with requests in flight, cleared after its probe.
        with(
            Op::SetFpd {
                dev: DEV,
                at: FpdAt::Context,
                disable: true,
            },
            vec![hit, cross],
            vec![miss, hit],
        ),
        with(
            Op::SetFpd {
                dev: DEV,
                at: FpdAt::Context,
                disable: false,
            },
            vec![],
            vec![miss],
        ),
        with(
            Op::SetFpd {
                dev: DEV,
                at: FpdAt::PasidDir(0),
                disable: true,
            },
            vec![cross],
            vec![rd_p(DEV, 9, 0x1000)],
        ),
        op(Op::SetFpd {
            dev: DEV,
            at: FpdAt::PasidDir(0),
            disable: false,
        }),
        with(
            Op::SetFpd {
                dev: DEV,
                at: FpdAt::PasidEntry(DMA_PASID),
                disable: true,
            },
            vec![],
            vec![rd_p(DEV, DMA_PASID, 0x5000), miss],
        ),
        op(Op::SetFpd {
            dev: DEV,
            at: FpdAt::PasidEntry(DMA_PASID),
            disable: false,
        }),
        // A PASID that is not attached: ENOENT, written with `errno:`.
        op(Op::SetFpd {
            dev: DEV,
            at: FpdAt::PasidEntry(7),
            disable: true,
        }),
        with(
            Op::SetRootEntry,
            vec![hit, rd_p(DEV, DMA_PASID, 0x1008), cross],
            vec![hit, rd_p(DEV, DMA_PASID, 0x1010)],
        ),
        // A memory error at each structure, ended after its probe.
        with(
            Op::MemError {
                dev: DEV,
                at: MemErrAt::PageTable {
                    pasid: 0,
                    level: 1,
                    addr: 0x1000,
                },
            },
            vec![hit, cross],
            vec![hit, cross],
        ),
        // Submits nothing: the requests offered during it are never sent.
        with(Op::ClearMemErrors, vec![hit, cross], vec![hit]),
        with(
            Op::MemError {
                dev: DEV,
                at: MemErrAt::RootTable,
            },
            vec![],
            vec![hit],
        ),
        op(Op::ClearMemErrors),
        with(
            Op::MemError {
                dev: DEV,
                at: MemErrAt::ContextTable,
            },
            vec![],
            vec![hit],
        ),
        op(Op::ClearMemErrors),
        with(
            Op::MemError {
                dev: DEV,
                at: MemErrAt::PasidDir,
            },
            vec![],
            vec![rd_p(DEV, DMA_PASID, 0x1000)],
        ),
        op(Op::ClearMemErrors),
        with(
            Op::MemError {
                dev: DEV,
                at: MemErrAt::PasidTable(0),
            },
            vec![],
            vec![hit],
        ),
        with(Op::ClearMemErrors, vec![], vec![hit]),
        // No table behind directory entry 5: ENOENT.
        op(Op::MemError {
            dev: DEV,
            at: MemErrAt::PasidTable(5),
        }),
        // The stale PASID-tagged entry: filled, unmapped, probed.
        with(
            Op::IotlbSync { domain: Some(d) },
            vec![],
            vec![rd_p(DEV, DMA_PASID, 0x1000)],
        ),
        with(
            Op::Unmap {
                domain: Some(d),
                iova: 0x1000,
                size: 0x1000,
                sync: true,
            },
            vec![],
            vec![rd_p(DEV, DMA_PASID, 0x1000)],
        ),
    ]
}

const SEED: u64 = 11;

fn replay(quirks: DriverQuirks) -> Replayed {
    let mut env = iommu_tb::env::Env::new(SEED);
    let mut k = regress::seed_system(&mut env, SEED, quirks).expect("system");
    regress::replay_trace(&mut k, SEED, &trace())
}

fn shrunk(r: Replayed, quirks: DriverQuirks) -> (Shrunk, Result<regress::Report, String>) {
    let (at, expected, error, result) = match r.result {
        Ok(rep) => (
            FailPos::Op { step: usize::MAX },
            None,
            String::new(),
            Ok(rep),
        ),
        Err(f) => {
            let msg = format!("{:#}", f.error);
            (f.at, f.expected, msg.clone(), Err(msg))
        }
    };
    let t = trace();
    let n = t.len();
    let sh = Shrunk {
        seed: SEED,
        original_ops: n,
        original_requests: t
            .iter()
            .map(|s| s.concurrent.len() + s.requests.len())
            .sum(),
        trace: t,
        applied: r.applied,
        sent: r.sent,
        at,
        expected,
        kind: shrink::failure_kind(&error),
        error,
        replays: 1,
        quirks,
        bound_hit: false,
        elapsed: std::time::Duration::ZERO,
    };
    (sh, result)
}

#[test]
fn every_driver_operation_is_written_as_a_step_and_the_vector_reproduces_the_replay() {
    let r = replay(DriverQuirks::default());
    assert_eq!(
        r.applied[3].result,
        Ok(u64::from(DMA_PASID)),
        "{:?}",
        r.applied[3]
    );
    let (sh, result) = shrunk(r, DriverQuirks::default());
    let rep = result.expect("the trace passes with the correct driver");
    let yaml = shrink::to_yaml(&sh);
    for step in [
        "fpd: {dev: dev_01_00_0, at: context, disable: true}",
        "- fpd: {dev: dev_01_00_0, at: pasid_dir, pasid: 0x0, disable: false}",
        "- fpd: {dev: dev_01_00_0, at: pasid_entry, pasid: 0x1, disable: true}",
        "- fpd: {dev: dev_01_00_0, at: pasid_entry, pasid: 0x7, disable: true, errno: ENOENT}",
        "set_root_entry: {}",
        "mem_error: {dev: dev_01_00_0, at: page_table, pasid: 0x0, level: 1, addr: 0x1000}",
        "- mem_error: {dev: dev_01_00_0, at: root_table}",
        "- mem_error: {dev: dev_01_00_0, at: context_table}",
        "- mem_error: {dev: dev_01_00_0, at: pasid_dir}",
        "- mem_error: {dev: dev_01_00_0, at: pasid_table, pasid: 0x0}",
        "- mem_error: {dev: dev_01_00_0, at: pasid_table, pasid: 0x140, errno: ENOENT}",
        "- clear_mem_errors: {}",
        "# 2 requests offered during `clear_memory_errors = Ok(())` were not sent",
    ] {
        assert!(yaml.contains(step), "`{step}` missing:\n{yaml}");
    }
    assert!(!yaml.contains("no vector step"), "{yaml}");
    // The operations that submit invalidations ran with requests in flight: `during:`.
    for call in [
        "fpd: {dev: dev_01_00_0, at: context",
        "set_root_entry",
        "mem_error",
    ] {
        assert!(
            yaml.contains(&format!("- during:\n      {call}")),
            "no `during:` of {call}:\n{yaml}"
        );
    }

    let dir = fresh_dir("drv-roundtrip");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("trace.yaml");
    std::fs::write(&path, &yaml).expect("writing");
    let v = vectors::parse_file(&path).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let run = vectors::run_parsed_logged(&v, &RunOptions::default(), &dir, false);
    let vrep = run
        .result
        .unwrap_or_else(|e| panic!("the vector must pass as the replay did: {e:#}\n{yaml}"));
    // The same TLPs, the same ones during operations.
    assert_eq!(vrep.tlps as u64, rep.requests, "{:#?}\n{yaml}", run.log);
    assert_eq!(vrep.during as u64, rep.concurrent, "{:#?}\n{yaml}", run.log);
    assert!(rep.concurrent >= 5, "{rep:?}");
    // Each operation did what it does: FPD silenced 0x71 (context), 0x59 (directory) and
    // 0x71 (PASID entry); each memory error gave its access fault.
    let log = run.log.join("\n");
    for outcome in [
        "MRd rid 01:00.0 0x5000 len 8 -> fault 0x71 not recorded",
        "MRd rid 01:00.0 pasid 0x9 0x1000 len 8 -> fault 0x59 not recorded",
        "MRd rid 01:00.0 pasid 0x1 0x5000 len 8 -> fault 0x71 not recorded",
        "MRd rid 01:00.0 0x5000 len 8 -> fault 0x71 recorded",
        "MRd rid 01:00.0 pasid 0x1 0x1010 len 8 -> translated to 0x200000010",
        "MRd rid 01:10.0 0x1000 len 8 -> fault 0x70 recorded",
        "MRd rid 01:00.0 0x1000 len 8 -> fault 0x38 recorded",
        "MRd rid 01:00.0 0x1000 len 8 -> fault 0x40 recorded",
        "MRd rid 01:00.0 pasid 0x1 0x1000 len 8 -> fault 0x50 recorded",
        "MRd rid 01:00.0 0x1000 len 8 -> fault 0x58 recorded",
        "MRd rid 01:00.0 pasid 0x1 0x1000 len 8 -> fault 0x71 recorded",
    ] {
        assert!(log.contains(outcome), "`{outcome}` missing:\n{log}\n{yaml}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failure_after_every_driver_operation_reproduces_from_the_written_vector() {
    let quirks = DriverQuirks {
        skip_pasid_flush: true,
        ..DriverQuirks::default()
    };
    let r = replay(quirks);
    let (sh, result) = shrunk(r, quirks);
    let err = result.expect_err("the skipped PASID flush is caught");
    let last = sh.trace.len() - 1;
    assert_eq!(sh.at, FailPos::Request { step: last, n: 0 }, "{err}");
    let dir = fresh_dir("drv-fails");
    let (path, vec_err) = shrink::write_vector(&sh, &dir, quirks)
        .unwrap_or_else(|e| panic!("the vector must reproduce: {e:#}\n{}", shrink::to_yaml(&sh)));
    assert!(vec_err.contains("(`tlp`)"), "{vec_err}");
    assert!(vec_err.contains("0x71"), "{vec_err}");
    let mut v = vectors::parse_file(&path).expect("parses");
    assert_eq!(v.driver_bugs, ["skip-pasid-flush"]);
    v.driver_bugs.clear();
    vectors::run_parsed(&v, &RunOptions::default(), &dir, false)
        .expect("the vector passes with the correct driver");
    let _ = std::fs::remove_dir_all(&dir);
}
