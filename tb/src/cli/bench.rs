//! The bench commands: simulation speed of the bridge, checked TLPs per second, and the
//! translation unit's own figures.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use iommu_tb::dut::{Dut, DutIn, DutOut, Ports};
use iommu_tb::flows::bench::{CheckedMix, HitStream, HitsUnderMiss, MissStream, WalkCost};

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

/// Everything `bench-xlate` measures.
pub struct XlateFigures {
    pub walks: Vec<WalkCost>,
    pub hit_stream: HitStream,
    pub misses: Vec<MissStream>,
    pub hits_under_miss: HitsUnderMiss,
    /// Mean cycles from offer to answer of a hit with no miss outstanding.
    pub idle_hit_latency: f64,
    pub miss_reads_pde_cached: usize,
}

fn hit_stream_tlps_per_clock(h: &HitStream) -> f64 {
    if h.cycles > 0 {
        h.tlps as f64 / h.cycles as f64
    } else {
        0.0
    }
}

/// `bench-xlate --json`: every figure as one object. The headline figures are at the top;
/// the measurements behind them are nested.
fn xlate_json(f: &XlateFigures) -> Value {
    let h = &f.hit_stream;
    let u = &f.hits_under_miss;
    let per_latency: serde_json::Map<String, Value> = f
        .misses
        .iter()
        .map(|m| (m.latency.to_string(), json!(m.per_kcycle())))
        .collect();
    json!({
        "command": "bench-xlate",
        "hit_tlps_per_clock": u.tlps_per_clock(),
        "hit_latency_cycles": u.latency(),
        "miss_tlps_per_kcycle": per_latency,
        "miss_reads_4k_pde_cached": f.miss_reads_pde_cached,
        "hit_tlps_per_clock_idle": hit_stream_tlps_per_clock(h),
        "hit_latency_cycles_idle": f.idle_hit_latency,
        "miss_stream": f.misses.iter().map(|m| json!({
            "mem_latency": m.latency,
            "requests": m.requests,
            "translated": m.translated,
            "cycles": m.cycles,
            "tlps_per_kcycle": m.per_kcycle(),
            "reads": m.reads,
            "reads_per_request": m.reads_per_request(),
            "seconds": m.seconds,
        })).collect::<Vec<_>>(),
        "hits_under_miss": {
            "mem_latency": u.latency,
            "trials": u.trials,
            "judged": u.judged,
            "hits_offered": u.offered,
            "hits_answered": u.answered,
            "window_cycles": u.window_cycles,
            "tlps_per_clock": u.tlps_per_clock(),
            "latency_from_offer_cycles": u.latency(),
            "latency_from_accept_cycles": u.accept_latency(),
        },
        "walks": f.walks.iter().map(|r| json!({
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
            "tlps_per_cycle": hit_stream_tlps_per_clock(h),
            "seconds": h.seconds,
            "tlps_per_s": per_s(h.tlps, h.seconds),
            "cycles_per_s": per_s(h.cycles, h.seconds),
        },
    })
}

/// What `bench-xlate` measures.
pub struct XlateArgs<'a> {
    /// Memory latencies of the walk table.
    pub latencies: &'a [u32],
    /// Hits in the idle hit stream.
    pub hits: u64,
    /// Memory latencies of the miss stream.
    pub miss_latencies: &'a [u32],
    /// Requests in each miss stream.
    pub requests: u64,
    /// Misses with hits behind them (at memory latency [`HIT_MISS_LATENCY`]).
    pub trials: u64,
}

/// Memory latency at which hits are measured while a miss is outstanding.
pub const HIT_MISS_LATENCY: u32 = 100;

pub fn xlate(a: &XlateArgs, as_json: bool) -> Result<()> {
    use iommu_tb::flows::bench;
    if !as_json {
        println!("| stage | page | mem latency | cold walk (cycles / reads) | page walk (cycles / reads) | hit (cycles) |");
        println!("|---|---|---|---|---|---|");
    }
    let mut walks = Vec::new();
    for &lat in a.latencies {
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
    let h = bench::hit_stream(a.hits)?;
    if !as_json {
        println!(
            "\nhit stream: {} TLPs in {} cycles ({:.3} TLPs/cycle), {:.2} s: {:.0} TLPs/s, {:.0} cycles/s",
            h.tlps,
            h.cycles,
            hit_stream_tlps_per_clock(&h),
            h.seconds,
            per_s(h.tlps, h.seconds),
            per_s(h.cycles, h.seconds)
        );
        println!(
            "\nmiss stream ({} pages in {} regions of 2 MiB, round-robin; every request judged):\n",
            bench::MISS_PAGES,
            bench::MISS_REGIONS
        );
        println!(
            "| mem latency | requests | cycles | translations / 1000 cycles | reads / request |"
        );
        println!("|---|---|---|---|---|");
    }
    let mut misses = Vec::new();
    for &lat in a.miss_latencies {
        let m = bench::miss_stream(lat, a.requests)
            .with_context(|| format!("miss stream at memory latency {lat}"))?;
        if !as_json {
            println!(
                "| {} | {} | {} | {:.1} | {:.2} |",
                m.latency,
                m.requests,
                m.cycles,
                m.per_kcycle(),
                m.reads_per_request()
            );
        }
        misses.push(m);
    }
    let (u, idle_hit_latency) = bench::hits_under_miss(HIT_MISS_LATENCY, a.trials)
        .context("hits while a miss is outstanding")?;
    let pde = bench::miss_reads_pde_cached().context("reads of a miss with its PDE cacheable")?;
    let f = XlateFigures {
        walks,
        hit_stream: h,
        misses,
        hits_under_miss: u,
        idle_hit_latency,
        miss_reads_pde_cached: pde,
    };
    if as_json {
        println!("{}", xlate_json(&f));
    } else {
        let u = &f.hits_under_miss;
        println!(
            "\nhits while a miss is outstanding (memory latency {}, {} misses, {} requests judged):\n",
            u.latency, u.trials, u.judged
        );
        println!("| figure | while a miss is outstanding | idle unit |");
        println!("|---|---|---|");
        println!(
            "| hit TLPs per clock | {:.3} ({} of {} hits answered in {} cycles) | {:.3} |",
            u.tlps_per_clock(),
            u.answered,
            u.offered,
            u.window_cycles,
            hit_stream_tlps_per_clock(&f.hit_stream)
        );
        println!(
            "| hit latency, offer to egress (cycles) | {:.1} | {:.1} |",
            u.latency(),
            f.idle_hit_latency
        );
        println!(
            "| hit latency, ingress to egress handshake (cycles) | {:.1} | |",
            u.accept_latency()
        );
        println!(
            "\nmemory reads of a 4 KiB miss after a neighbour in its 2 MiB region was walked: {}",
            f.miss_reads_pde_cached
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
        let f = XlateFigures {
            walks: vec![WalkCost {
                stage: Stage::First,
                size: 0x20_0000,
                latency: 8,
                walk_cycles: 40,
                walk_reads: 3,
                cold_cycles: 120,
                cold_reads: 17,
                hit_cycles: 4,
            }],
            hit_stream: HitStream {
                tlps: 100,
                cycles: 200,
                seconds: 0.25,
            },
            misses: [1, 8, 100]
                .into_iter()
                .map(|latency| MissStream {
                    latency,
                    requests: 100,
                    translated: 100,
                    cycles: 1000 * u64::from(latency),
                    reads: 400,
                    seconds: 0.5,
                })
                .collect(),
            hits_under_miss: HitsUnderMiss {
                latency: 100,
                trials: 2,
                offered: 4,
                answered: 3,
                window_cycles: 12,
                offer_to_answer: 40,
                accept_to_answer: 8,
                judged: 8,
            },
            idle_hit_latency: 2.0,
            miss_reads_pde_cached: 4,
        };
        let v: Value = serde_json::from_str(&xlate_json(&f).to_string()).expect("valid JSON");
        assert_eq!(v["command"], "bench-xlate");
        assert_eq!(v["hit_tlps_per_clock"], 0.25);
        assert_eq!(v["hit_latency_cycles"], 10.0);
        assert_eq!(v["miss_tlps_per_kcycle"]["1"], 100.0);
        assert_eq!(v["miss_tlps_per_kcycle"]["8"], 12.5);
        assert_eq!(v["miss_tlps_per_kcycle"]["100"], 1.0);
        assert_eq!(v["miss_reads_4k_pde_cached"], 4);
        assert!(v["miss_reads_4k_pde_cached"].is_u64());
        assert_eq!(v["hit_tlps_per_clock_idle"], 0.5);
        assert_eq!(v["hit_latency_cycles_idle"], 2.0);
        let m = &v["miss_stream"][2];
        assert_eq!(m["mem_latency"], 100);
        assert_eq!(m["requests"], 100);
        assert_eq!(m["translated"], 100);
        assert_eq!(m["cycles"], 100_000);
        assert_eq!(m["reads_per_request"], 4.0);
        let u = &v["hits_under_miss"];
        assert_eq!(u["mem_latency"], 100);
        assert_eq!(u["trials"], 2);
        assert_eq!(u["judged"], 8);
        assert_eq!(u["hits_offered"], 4);
        assert_eq!(u["hits_answered"], 3);
        assert_eq!(u["window_cycles"], 12);
        assert_eq!(u["latency_from_accept_cycles"], 2.0);
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
