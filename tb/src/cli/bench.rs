//! The bench commands: simulation speed of the bridge, checked TLPs per second, and the
//! translation unit's own figures.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use iommu_tb::dut::{Dut, DutIn, DutOut, Ports};
use iommu_tb::flows::bench::{CheckedMix, HitStream, WalkCost};

pub fn bridge(cycles: u64, waves: Option<PathBuf>) -> Result<()> {
    let mut dut = Dut::new(1);
    if let Some(p) = &waves {
        dut.trace_start(p)?;
    }
    dut.reset(4);
    let mut inp = DutIn {
        rst_n: true,
        tx_ready: true,
        cpl_ready: true,
        ..DutIn::default()
    };
    // Same register reads and RTADDR write as tb/cpp/sim_main.cpp.
    for (write, addr, size64, wdata) in [
        (false, 0x000u16, false, 0u64),
        (false, 0x008, true, 0),
        (false, 0x010, true, 0),
        (true, 0x020, true, 0x1234_5400),
    ] {
        inp.csr_valid = true;
        inp.csr_write = write;
        inp.csr_addr = addr;
        inp.csr_size64 = size64;
        inp.csr_wdata = wdata;
        dut.step(&inp);
        inp.csr_valid = false;
        let out = dut.step(&inp);
        if out.csr_error {
            bail!("CSR access to 0x{addr:03x} answered with an error");
        }
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut forwarded = 0u64;
    inp.rx_valid = true;
    inp.rx_nprefix = 0;
    // Like the C++ main, the loop reads the egress port only.
    let mut out = DutOut::default();
    let t0 = Instant::now();
    let mut stepper = dut.stepper();
    for i in 0..cycles {
        inp.rx_hdr = [
            0x0000_0001,
            (0x0100 << 16) | (((i & 0xff) as u32) << 8) | 0x0f,
            ((i << 6) as u32) & 0xffff_fffc,
            0,
        ];
        stepper.step_into(&inp, Ports::TX, &mut out);
        if out.tx_valid {
            for w in out.tx_hdr {
                hash = (hash ^ u64::from(w)).wrapping_mul(0x100_0000_01b3);
            }
            forwarded += 1;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    dut.trace_stop();
    println!(
        "cycles {cycles} forwarded {forwarded} hash 0x{hash:016x} seconds {secs:.3} cycles/s {:.0}{}",
        cycles as f64 / secs,
        if waves.is_some() { " (tracing)" } else { "" }
    );
    Ok(())
}

/// Per-second rate, 0 when nothing was timed.
fn per_s(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

/// `bench --json`: the table's figures as one object.
fn checked_json(tlps: usize, mixes: &[CheckedMix]) -> Value {
    json!({
        "command": "bench",
        "tlps": tlps,
        "mixes": mixes.iter().map(|m| json!({
            "mix": m.name,
            "waveform": if m.traced { "FST" } else { "off" },
            "checked_tlps": m.tlps,
            "cycles": m.cycles,
            "seconds": m.seconds,
            "checked_tlps_per_s": per_s(m.tlps, m.seconds),
            "cycles_per_s": per_s(m.cycles, m.seconds),
        })).collect::<Vec<_>>(),
    })
}

pub fn checked(tlps: usize, as_json: bool) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("iommu-tb-bench-{}", std::process::id()));
    if !as_json {
        println!(
            "| mix | waveform | checked TLPs | cycles | seconds | checked TLPs/s | cycles/s |"
        );
        println!("|---|---|---|---|---|---|---|");
    }
    let mut all = Vec::new();
    for waves in [None, Some(dir.as_path())] {
        let mixes = iommu_tb::flows::bench::checked_mixes(tlps, waves);
        let mixes = match mixes {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        for m in mixes {
            if !as_json {
                println!(
                    "| {} | {} | {} | {} | {:.2} | {:.0} | {:.0} |",
                    m.name,
                    if m.traced { "FST" } else { "off" },
                    m.tlps,
                    m.cycles,
                    m.seconds,
                    per_s(m.tlps, m.seconds),
                    per_s(m.cycles, m.seconds)
                );
            }
            all.push(m);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if as_json {
        println!("{}", checked_json(tlps, &all));
    }
    Ok(())
}

fn page_name(size: u64) -> &'static str {
    match size {
        0x1000 => "4K",
        0x20_0000 => "2M",
        _ => "1G",
    }
}

/// `bench-xlate --json`: the table's and the hit stream's figures as one object.
fn xlate_json(walks: &[WalkCost], h: &HitStream) -> Value {
    json!({
        "command": "bench-xlate",
        "walks": walks.iter().map(|r| json!({
            "stage": format!("{:?}", r.stage),
            "page": page_name(r.size),
            "mem_latency": r.latency,
            "cold_walk_cycles": r.cold_cycles,
            "cold_walk_reads": r.cold_reads,
            "page_walk_cycles": r.walk_cycles,
            "page_walk_reads": r.walk_reads,
            "hit_cycles": r.hit_cycles,
        })).collect::<Vec<_>>(),
        "hit_stream": {
            "tlps": h.tlps,
            "cycles": h.cycles,
            "tlps_per_cycle": if h.cycles > 0 { h.tlps as f64 / h.cycles as f64 } else { 0.0 },
            "seconds": h.seconds,
            "tlps_per_s": per_s(h.tlps, h.seconds),
            "cycles_per_s": per_s(h.cycles, h.seconds),
        },
    })
}

pub fn xlate(latencies: &[u32], hits: u64, as_json: bool) -> Result<()> {
    use iommu_tb::flows::bench;
    if !as_json {
        println!("| stage | page | mem latency | cold walk (cycles / reads) | page walk (cycles / reads) | hit (cycles) |");
        println!("|---|---|---|---|---|---|");
    }
    let mut walks = Vec::new();
    for &lat in latencies {
        for r in bench::walk_costs(lat)? {
            if !as_json {
                println!(
                    "| {:?} | {} | {} | {} / {} | {} / {} | {} |",
                    r.stage,
                    page_name(r.size),
                    r.latency,
                    r.cold_cycles,
                    r.cold_reads,
                    r.walk_cycles,
                    r.walk_reads,
                    r.hit_cycles
                );
            }
            walks.push(r);
        }
    }
    let h = bench::hit_stream(hits)?;
    if as_json {
        println!("{}", xlate_json(&walks, &h));
    } else {
        println!(
            "hit stream: {} TLPs in {} cycles ({:.3} TLPs/cycle), {:.2} s: {:.0} TLPs/s, {:.0} cycles/s",
            h.tlps,
            h.cycles,
            h.tlps as f64 / h.cycles.max(1) as f64,
            h.seconds,
            per_s(h.tlps, h.seconds),
            per_s(h.cycles, h.seconds)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use iommu_model::kernel::Stage;

    #[test]
    fn bench_json_has_every_figure_of_the_table() {
        let mixes = [
            CheckedMix {
                name: "hit-heavy",
                tlps: 1000,
                cycles: 4000,
                seconds: 0.5,
                traced: false,
            },
            CheckedMix {
                name: "miss-heavy",
                tlps: 1000,
                cycles: 9000,
                seconds: 0.0,
                traced: true,
            },
        ];
        let text = checked_json(1000, &mixes).to_string();
        let v: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(v["command"], "bench");
        assert_eq!(v["tlps"], 1000);
        let m = v["mixes"].as_array().expect("mixes");
        assert_eq!(m.len(), 2);
        assert_eq!(m[0]["mix"], "hit-heavy");
        assert_eq!(m[0]["waveform"], "off");
        assert_eq!(m[1]["waveform"], "FST");
        assert_eq!(m[0]["checked_tlps"], 1000);
        assert_eq!(m[0]["cycles"], 4000);
        assert_eq!(m[0]["seconds"], 0.5);
        assert_eq!(m[0]["checked_tlps_per_s"], 2000.0);
        assert_eq!(m[0]["cycles_per_s"], 8000.0);
        // Nothing timed: a rate of 0, never a non-number JSON cannot hold.
        assert_eq!(m[1]["checked_tlps_per_s"], 0.0);
    }

    #[test]
    fn bench_xlate_json_has_every_figure_of_the_table() {
        let walks = [WalkCost {
            stage: Stage::First,
            size: 0x20_0000,
            latency: 8,
            walk_cycles: 40,
            walk_reads: 3,
            cold_cycles: 120,
            cold_reads: 17,
            hit_cycles: 4,
        }];
        let h = HitStream {
            tlps: 100,
            cycles: 200,
            seconds: 0.25,
        };
        let v: Value =
            serde_json::from_str(&xlate_json(&walks, &h).to_string()).expect("valid JSON");
        assert_eq!(v["command"], "bench-xlate");
        let w = &v["walks"][0];
        assert_eq!(w["stage"], "First");
        assert_eq!(w["page"], "2M");
        assert_eq!(w["mem_latency"], 8);
        assert_eq!(w["cold_walk_cycles"], 120);
        assert_eq!(w["cold_walk_reads"], 17);
        assert_eq!(w["page_walk_cycles"], 40);
        assert_eq!(w["page_walk_reads"], 3);
        assert_eq!(w["hit_cycles"], 4);
        let hs = &v["hit_stream"];
        assert_eq!(hs["tlps"], 100);
        assert_eq!(hs["cycles"], 200);
        assert_eq!(hs["tlps_per_cycle"], 0.5);
        assert_eq!(hs["seconds"], 0.25);
        assert_eq!(hs["tlps_per_s"], 400.0);
        assert_eq!(hs["cycles_per_s"], 800.0);
    }
}
