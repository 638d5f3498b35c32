//! A failing test names an FST waveform that exists and holds the failing run.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use iommu_tb::{run_test, run_test_in};

/// The full names of the variables a VCD header declares, as GTKWave names them: the scopes
/// joined with `.`, then the variable's name and, for a vector, its range
/// (`TOP.iommu_top.csr_addr_i[11:0]`, `TOP.iommu_top.rx_hdr_i.rx_hdr_i[0][31:0]`).
fn vcd_names(vcd: &str) -> BTreeSet<String> {
    let mut scopes: Vec<&str> = Vec::new();
    let mut names = BTreeSet::new();
    for line in vcd.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["$scope", _, name, ..] => scopes.push(name),
            ["$upscope", ..] => {
                scopes.pop();
            }
            ["$var", _, _, _, name, rest @ ..] => {
                let range = rest.first().filter(|r| r.starts_with('[')).copied();
                let mut full = scopes.join(".");
                full.push('.');
                full.push_str(name);
                full.push_str(range.unwrap_or(""));
                names.insert(full);
            }
            ["$enddefinitions", ..] => break,
            _ => {}
        }
    }
    names
}

/// The signals a GTKWave save file names (its lines that are not flags, group markers or
/// `[setting]`s).
fn gtkw_signal_lines(save: &str) -> Vec<&str> {
    save.lines()
        .filter(|l| !l.is_empty() && !l.starts_with(['@', '-', '[', '*', '#']))
        .collect()
}

/// Reads an FST back: with GTKWave's `fst2vcd` when it is installed (CI installs it), else by
/// checking the FST header block. Returns the signal names `fst2vcd` found, if it ran.
fn check_fst(path: &Path, min_cycles: u64) -> Option<BTreeSet<String>> {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        bytes.len() > 64,
        "{} is too small to be a waveform",
        path.display()
    );
    assert_eq!(bytes[0], 0, "FST files start with a header block (type 0)");
    match Command::new("fst2vcd").arg(path).output() {
        Ok(out) => {
            assert!(out.status.success(), "fst2vcd failed on {}", path.display());
            let vcd = String::from_utf8_lossy(&out.stdout);
            for sig in [
                "rx_valid_i",
                "tx_hdr_o",
                "csr_rdata_o",
                "mem_req_addr_o",
                "clk_i",
            ] {
                assert!(vcd.contains(sig), "{sig} missing from the waveform");
            }
            let last_time = vcd
                .lines()
                .filter_map(|l| l.strip_prefix('#'))
                .filter_map(|t| t.trim().parse::<u64>().ok())
                .max()
                .unwrap_or(0);
            // 10 time units per cycle.
            assert!(
                last_time >= min_cycles * 10,
                "waveform ends at {last_time}, too early"
            );
            Some(vcd_names(&vcd))
        }
        Err(_) => {
            eprintln!("fst2vcd not installed: checked the FST header only");
            None
        }
    }
}

#[test]
fn failing_test_reports_a_waveform_that_shows_it() {
    // A folder of its own: other runs of the suite may be writing the shared waves folder.
    let dir = std::env::temp_dir().join(format!("iommu-tb-waves-test-{}", std::process::id()));
    let err = run_test_in(&dir, false, "deliberately_failing", 0xfa11, |env| {
        env.write64(iommu_model::regs::RTADDR, 0x5000_0400)?;
        env.idle(200);
        anyhow::bail!("deliberate failure at cycle {}", env.dut.cycle())
    })
    .expect_err("the body fails, so run_test must fail");
    let text = err.to_string();
    assert!(text.contains("deliberate failure"), "{text}");
    assert!(
        text.contains("0x000000000000fa11"),
        "the seed is named: {text}"
    );
    assert!(
        text.contains(&err.waveform.display().to_string()),
        "the path is named: {text}"
    );
    assert!(!err.flaky, "the traced re-run must reproduce the failure");
    let names = check_fst(&err.waveform, 200);
    let gtkw = err.gtkw.expect("a GTKWave save file is written");
    let save = std::fs::read_to_string(&gtkw).expect("gtkw readable");
    assert!(save.contains(&err.waveform.display().to_string()));
    let shown = gtkw_signal_lines(&save);
    assert_eq!(shown, iommu_tb::dut::waves::gtkw_signals());
    // The header words, DW0 first, whatever scope this Verilator puts them in.
    assert!(
        shown
            .iter()
            .any(|s| s.starts_with("TOP.iommu_top.rx_hdr_i") && s.ends_with("rx_hdr_i[0][31:0]")),
        "{shown:?}"
    );
    // Every signal the save file names is in the waveform (GTKWave drops the others silently).
    if let Some(names) = names {
        let missing: Vec<&&str> = shown.iter().filter(|s| !names.contains(**s)).collect();
        assert!(
            missing.is_empty(),
            "{} names signals that are not in {}: {missing:?}",
            gtkw.display(),
            err.waveform.display()
        );
    }
}

#[test]
fn vcd_names_are_gtkwave_names() {
    let vcd = "$scope module TOP $end\n$var wire 1 ! clk_i $end\n\
               $scope module iommu_top $end\n$var wire 12 \" csr_addr_i [11:0] $end\n\
               $scope module rx_hdr_i $end\n$var wire 32 # rx_hdr_i[0] [31:0] $end\n\
               $upscope $end\n$var wire 32 $ tx_hdr_o[0] [31:0] $end\n\
               $upscope $end\n$upscope $end\n$enddefinitions $end\n";
    let names: Vec<String> = vcd_names(vcd).into_iter().collect();
    assert_eq!(
        names,
        [
            "TOP.clk_i",
            "TOP.iommu_top.csr_addr_i[11:0]",
            "TOP.iommu_top.rx_hdr_i.rx_hdr_i[0][31:0]",
            "TOP.iommu_top.tx_hdr_o[0][31:0]",
        ]
    );
}

#[test]
fn passing_test_writes_no_waveform_unless_asked() {
    let dir = iommu_tb::dut::waves::waves_dir();
    let path = iommu_tb::dut::waves::wave_path(&dir, "quietly_passing", 1);
    let _ = std::fs::remove_file(&path);
    run_test("quietly_passing", 1, |env| {
        env.idle(10);
        Ok(())
    })
    .expect("passes");
    assert_eq!(path.exists(), iommu_tb::dut::waves::always_trace());
}
