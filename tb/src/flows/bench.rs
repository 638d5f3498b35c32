//! Translation figures of the RTL: cycles per walk for each page size and stage, the hit
//! path's throughput and latency, and simulation speed. `iommu-tb bench-xlate` prints them.

use std::time::Instant;

use anyhow::{bail, Result};
use iommu_model::driver::DriverQuirks;
use iommu_model::kernel::Stage;

use crate::env::mem::MemTiming;
use crate::hw::system::{
    dma_domain_with_pasid, env, flush_all, map, system, take_reads, RtlKernel,
};
use crate::tlp::{self, MemRequest};

/// Cycles from the ingress handshake to the egress handshake of one request, and the memory
/// reads it made.
pub fn one_request(k: &mut RtlKernel, req: &MemRequest) -> Result<(u64, usize)> {
    take_reads(k);
    let w = tlp::encode(req)?;
    let e = env(k);
    e.inp.rx_valid = true;
    e.inp.rx_nprefix = w.prefix_count as u8;
    e.inp.rx_prefix = w.prefix;
    e.inp.rx_hdr = w.header;
    e.inp.tx_ready = true;
    e.inp.cpl_ready = true;
    let start = e.dut.cycle();
    let mut accepted = None;
    loop {
        let out = e.tick();
        if accepted.is_none() && out.rx_ready {
            accepted = Some(e.dut.cycle());
            e.inp.rx_valid = false;
        }
        if out.tx_valid || out.cpl_valid {
            let cycles = e.dut.cycle() - accepted.unwrap_or(start);
            return Ok((cycles, take_reads(k)));
        }
        if e.dut.cycle() - start > 10_000 {
            bail!("no answer to {req}");
        }
    }
}

/// One row of the walk table.
#[derive(Clone, Debug)]
pub struct WalkCost {
    pub stage: Stage,
    pub size: u64,
    pub latency: u32,
    /// Page walk only (PASID entry cached).
    pub walk_cycles: u64,
    pub walk_reads: usize,
    /// Everything from the root entry.
    pub cold_cycles: u64,
    pub cold_reads: usize,
    pub hit_cycles: u64,
}

pub fn walk_costs(latency: u32) -> Result<Vec<WalkCost>> {
    let mut rows = Vec::new();
    for stage in [Stage::First, Stage::Second] {
        for (size, iova, pa) in [
            (0x1000u64, 0x10_0000u64, 0x8_0000_0000u64),
            (2 << 20, 0x20_0000, 0x8_0020_0000),
            (1 << 30, 0x4000_0000, 0x9_4000_0000),
        ] {
            let timing = MemTiming {
                min_latency: latency,
                max_latency: latency,
                ready_pct: 100,
                in_order: false,
            };
            let mut k = system(1, timing, DriverQuirks::default())?;
            let (d, pasid) = dma_domain_with_pasid(&mut k, stage)?;
            map(&mut k, d, iova, pa, size, true, true)?;
            let req = MemRequest::read(crate::hw::system::DEV, 1, iova + 0x40, 1)
                .with_pasid(pasid, false, false);
            flush_all(&mut k)?;
            let (cold_cycles, cold_reads) = one_request(&mut k, &req)?;
            let (hit_cycles, _) = one_request(&mut k, &req)?;
            // Drop the IOTLB entry only: the PASID entry stays cached.
            crate::hw::system::flush_iotlb(&mut k)?;
            let (walk_cycles, walk_reads) = one_request(&mut k, &req)?;
            rows.push(WalkCost {
                stage,
                size,
                latency,
                walk_cycles,
                walk_reads,
                cold_cycles,
                cold_reads,
                hit_cycles,
            });
        }
    }
    Ok(rows)
}

/// Hit-path stream: `n` back-to-back hits with egress always ready.
pub struct HitStream {
    pub tlps: u64,
    pub cycles: u64,
    pub seconds: f64,
}

pub fn hit_stream(n: u64) -> Result<HitStream> {
    let mut k = system(2, MemTiming::default(), DriverQuirks::default())?;
    let (d, pasid) = dma_domain_with_pasid(&mut k, Stage::Second)?;
    map(&mut k, d, 0x10_0000, 0x8_0000_0000, 0x1000, true, true)?;
    let req =
        MemRequest::read(crate::hw::system::DEV, 1, 0x10_0040, 1).with_pasid(pasid, false, false);
    one_request(&mut k, &req)?;
    let w = tlp::encode(&req)?;
    let e = env(&mut k);
    e.inp.rx_valid = true;
    e.inp.rx_nprefix = w.prefix_count as u8;
    e.inp.rx_prefix = w.prefix;
    e.inp.rx_hdr = w.header;
    let start = e.dut.cycle();
    let t0 = Instant::now();
    let mut out_count = 0;
    while out_count < n {
        let out = e.tick();
        out_count += u64::from(out.tx_valid);
    }
    Ok(HitStream {
        tlps: n,
        cycles: e.dut.cycle() - start,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Checked throughput of one traffic mix.
pub struct CheckedMix {
    pub name: &'static str,
    pub tlps: u64,
    pub cycles: u64,
    pub seconds: f64,
    pub traced: bool,
}

/// Checked TLPs per second through the streaming scoreboard: a hit-heavy mix (one 2 MiB
/// superpage, warm) and a miss-heavy one (64 pages spread over 64 2 MiB regions: every
/// request misses the 32-entry IOTLB), optionally with an FST waveform being written.
pub fn checked_mixes(tlps: usize, waves: Option<&std::path::Path>) -> Result<Vec<CheckedMix>> {
    use crate::check::judge::check_burst;
    use crate::hw::system::hw_state;
    use rand::{Rng, SeedableRng};
    let mut rows = Vec::new();
    for (name, hits) in [("hit-heavy", true), ("miss-heavy", false)] {
        let mut k = system(3, MemTiming::default(), DriverQuirks::default())?;
        let (d, pasid) = dma_domain_with_pasid(&mut k, Stage::Second)?;
        if hits {
            map(&mut k, d, 0x20_0000, 0x8_0020_0000, 2 << 20, true, true)?;
        } else {
            for i in 0..64u64 {
                map(
                    &mut k,
                    d,
                    0x4000_0000 + i * (2 << 20),
                    0x9_0000_0000 + i * 0x1000,
                    0x1000,
                    true,
                    true,
                )?;
            }
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let reqs: Vec<MemRequest> = (0..tlps)
            .map(|i| {
                let addr = if hits {
                    0x20_0000 + (rng.gen_range(0..(2u64 << 20) / 64) * 64)
                } else {
                    0x4000_0000 + (i as u64 % 64) * (2 << 20) + rng.gen_range(0..64u64) * 64
                };
                let r = if rng.gen_bool(0.5) {
                    MemRequest::read(crate::hw::system::DEV, (i & 0x3ff) as u16, addr, 2)
                } else {
                    MemRequest::write(crate::hw::system::DEV, (i & 0x3ff) as u16, addr, 2)
                };
                if rng.gen_bool(0.5) {
                    r.with_pasid(pasid, false, false)
                } else {
                    r
                }
            })
            .collect();
        let hw = hw_state(&k);
        let e = env(&mut k);
        if let Some(dir) = waves {
            e.dut.trace_start(&dir.join(format!("bench-{name}.fst")))?;
        }
        let t0 = Instant::now();
        let r = check_burst(e, &hw, &reqs, 5, 0, 100)?;
        let seconds = t0.elapsed().as_secs_f64();
        e.dut.trace_stop();
        rows.push(CheckedMix {
            name,
            tlps: r.sent,
            cycles: r.cycles,
            seconds,
            traced: waves.is_some(),
        });
    }
    Ok(rows)
}
