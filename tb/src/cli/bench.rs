//! The bench commands: simulation speed of the bridge, checked TLPs per second, and the
//! translation unit's own figures.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};

use iommu_tb::dut::{Dut, DutIn, DutOut, Ports};

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
    for i in 0..cycles {
        inp.rx_hdr = [
            0x0000_0001,
            (0x0100 << 16) | (((i & 0xff) as u32) << 8) | 0x0f,
            ((i << 6) as u32) & 0xffff_fffc,
            0,
        ];
        dut.step_into(&inp, Ports::TX, &mut out);
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

pub fn checked(tlps: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("iommu-tb-bench-{}", std::process::id()));
    println!("| mix | waveform | checked TLPs | cycles | seconds | checked TLPs/s | cycles/s |");
    println!("|---|---|---|---|---|---|---|");
    for waves in [None, Some(dir.as_path())] {
        for m in iommu_tb::flows::bench::checked_mixes(tlps, waves)? {
            println!(
                "| {} | {} | {} | {} | {:.2} | {:.0} | {:.0} |",
                m.name,
                if m.traced { "FST" } else { "off" },
                m.tlps,
                m.cycles,
                m.seconds,
                m.tlps as f64 / m.seconds,
                m.cycles as f64 / m.seconds
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

pub fn xlate(latencies: &[u32], hits: u64) -> Result<()> {
    use iommu_tb::flows::bench;
    println!("| stage | page | mem latency | cold walk (cycles / reads) | page walk (cycles / reads) | hit (cycles) |");
    println!("|---|---|---|---|---|---|");
    for &lat in latencies {
        for r in bench::walk_costs(lat)? {
            let size = match r.size {
                0x1000 => "4K",
                0x20_0000 => "2M",
                _ => "1G",
            };
            println!(
                "| {:?} | {size} | {} | {} / {} | {} / {} | {} |",
                r.stage,
                r.latency,
                r.cold_cycles,
                r.cold_reads,
                r.walk_cycles,
                r.walk_reads,
                r.hit_cycles
            );
        }
    }
    let h = bench::hit_stream(hits)?;
    println!(
        "hit stream: {} TLPs in {} cycles ({:.3} TLPs/cycle), {:.2} s: {:.0} TLPs/s, {:.0} cycles/s",
        h.tlps,
        h.cycles,
        h.tlps as f64 / h.cycles as f64,
        h.seconds,
        h.tlps as f64 / h.seconds,
        h.cycles as f64 / h.seconds
    );
    Ok(())
}
