//! Translation figures of the RTL: cycles per walk for each page size and stage, the hit
//! path's throughput and latency (idle and while a miss is outstanding), the throughput of a
//! judged stream of IOTLB misses, and simulation speed. `iommu-tb bench-xlate` prints them.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use iommu_model::driver::DriverQuirks;
use iommu_model::golden::{self, HwState, Outcome};
use iommu_model::kernel::Stage;

use crate::check::expect::{golden_request, key, Expect};
use crate::check::records::RecordReader;
use crate::check::scoreboard::{CheckError, Scoreboard, Totals};
use crate::check::stream::{busy, offer, QuietWatch, SETTLE};
use crate::env::mem::MemTiming;
use crate::env::tlp_agent::Egress;
use crate::env::Env;
use crate::hw::system::{
    dma_domain_with_pasid, env, flush_all, hw_state, map, system, take_reads, RtlKernel,
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
    // A unit that stops answering fails the benchmark instead of hanging it.
    let limit = n.saturating_mul(4).saturating_add(10_000);
    while out_count < n {
        let out = e.tick();
        out_count += u64::from(out.tx_valid);
        if e.dut.cycle() - start > limit {
            bail!("hit stream: {out_count} of {n} hits answered in {limit} cycles");
        }
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

// The miss stream and hits while misses are outstanding.
//
// One DMA domain maps 64 pages of 4 KiB in 8 regions of 2 MiB, 8 pages each. The regions are
// 512 MiB apart, so each has its own page-directory entry, and pairs of them share one of 4
// page-directory-pointer entries. Visited round-robin across the regions (region 0 page 0,
// region 1 page 0, ..., region 7 page 0, region 0 page 1, ...), every request misses a
// 32-entry IOTLB while the PASID-entry cache (and paging-structure caches, in a unit that has
// them) stay warm. Every request is a memory read judged by the streaming scoreboard against
// the golden walker; egress may leave in any order PCIe allows.

/// Regions of the miss stream.
pub const MISS_REGIONS: u64 = 8;
/// 4 KiB pages mapped in each region.
pub const PAGES_PER_REGION: u64 = 8;
/// Pages the miss stream visits.
pub const MISS_PAGES: u64 = MISS_REGIONS * PAGES_PER_REGION;
const MISS_IOVA: u64 = 0x1_0000_0000;
/// 512 MiB: a page-directory entry per region, one page-directory-pointer entry per two.
const REGION_STRIDE: u64 = 0x2000_0000;
const MISS_PA: u64 = 0x9_0000_0000;
/// The page the hits read (outside the miss regions).
const HIT_IOVA: u64 = 0x10_0000;
const HIT_PA: u64 = 0x8_0000_0000;
/// Translation stage of the bench domain.
const BENCH_STAGE: Stage = Stage::Second;
/// Hits at most offered while one miss is outstanding (the watchdog fires long before).
const MAX_HITS_PER_MISS: u64 = 8192;
/// Hits of the burst that measures the idle unit's hit latency.
const IDLE_HITS: u64 = 64;

/// IOVA of the `j`-th page of the round-robin visit: region `j mod 8`, page `(j / 8) mod 8`.
pub fn miss_page(j: u64) -> u64 {
    let j = j % MISS_PAGES;
    MISS_IOVA + (j % MISS_REGIONS) * REGION_STRIDE + (j / MISS_REGIONS) * 0x1000
}

/// Memory at a fixed latency of `latency` cycles, always ready.
fn fixed_latency(latency: u32) -> Result<MemTiming> {
    if latency == 0 {
        bail!("a memory latency must be at least 1 cycle");
    }
    Ok(MemTiming {
        min_latency: latency,
        max_latency: latency,
        ready_pct: 100,
        in_order: false,
    })
}

/// A system with the miss regions and the hit page mapped in one DMA domain (attached to the
/// device's RID and at a global PASID); returns it with that PASID.
fn bench_system(seed: u64, latency: u32) -> Result<(RtlKernel, u32)> {
    let mut k = system(seed, fixed_latency(latency)?, DriverQuirks::default())?;
    let (d, pasid) = dma_domain_with_pasid(&mut k, BENCH_STAGE)?;
    for r in 0..MISS_REGIONS {
        let size = PAGES_PER_REGION * 0x1000;
        map(
            &mut k,
            d,
            MISS_IOVA + r * REGION_STRIDE,
            MISS_PA + r * size,
            size,
            true,
            true,
        )?;
    }
    map(&mut k, d, HIT_IOVA, HIT_PA, 0x1000, true, true)?;
    Ok((k, pasid))
}

/// A 2-DW read of `iova`'s page through the PASID, with a 10-bit tag.
fn read_req(tag: u64, iova: u64, pasid: u32) -> MemRequest {
    MemRequest::read(crate::hw::system::DEV, (tag & 0x3ff) as u16, iova + 0x40, 2)
        .with_pasid(pasid, false, false)
}

/// What may leave the unit for `req`: the golden walker's answer on the memory the DUT walks.
fn golden_expect(env: &Env, hw: &HwState, req: &MemRequest) -> Result<Expect> {
    let mem = &env
        .mem
        .as_ref()
        .context("the bench needs a memory agent")?
        .mem;
    Expect::golden(req, &golden::translate(hw, mem, &golden_request(req)))
}

/// When one request of a timed stream was first offered, taken (ingress handshake) and
/// answered (egress handshake), as cycle numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Times {
    pub offered: u64,
    pub accepted: u64,
    pub answered: Option<u64>,
}

/// A judged stream with the times of every request, in acceptance order.
#[derive(Clone, Debug, Default)]
pub struct Timed {
    pub totals: Totals,
    pub times: Vec<Times>,
}

impl Timed {
    /// Cycles from the first ingress handshake to the last egress handshake.
    pub fn span(&self) -> u64 {
        let first = self.times.iter().map(|t| t.accepted).min();
        let last = self.times.iter().filter_map(|t| t.answered).max();
        match (first, last) {
            (Some(f), Some(l)) => l.saturating_sub(f),
            _ => 0,
        }
    }
}

fn check_err(e: CheckError) -> anyhow::Error {
    anyhow!("{e}")
}

/// Sends the TLPs `next` hands out, back to back with tx and cpl always ready, and judges
/// everything that leaves with the streaming scoreboard. `next` is asked for the next TLP
/// once the previous one was taken, with the times so far; `None` ends the stream. A TLP
/// whose (Requester ID, tag) is still in flight waits, as a device cannot reuse a tag before
/// its completion. Ends when every request has been answered and the unit has been quiet
/// for [`SETTLE`] cycles; then the unit's fault records are drained and checked (there must
/// be none the requests allow).
pub fn timed_stream(
    env: &mut Env,
    mut next: impl FnMut(&[Times]) -> Result<Option<Expect>>,
) -> Result<Timed> {
    let mut sb = Scoreboard::new();
    let mut times: Vec<Times> = Vec::new();
    let mut in_flight: HashMap<u32, usize> = HashMap::new();
    let mut pending: Option<(Expect, Option<u64>)> = None;
    let mut ended = false;
    let mut quiet = 0u32;
    let mut settling = QuietWatch::default();
    loop {
        if pending.is_none() && !ended {
            match next(&times)? {
                Some(x) => pending = Some((x, None)),
                None => ended = true,
            }
        }
        let offered = match &pending {
            Some((x, _)) if !in_flight.contains_key(&x.key) => {
                offer(env, &x.words);
                true
            }
            _ => {
                env.inp.rx_valid = false;
                false
            }
        };
        env.inp.tx_ready = true;
        env.inp.cpl_ready = true;
        let out = env.tick();
        let now = env.dut.cycle();
        let mut active = busy(env);
        if offered {
            if let Some((x, first)) = pending.take() {
                let first = first.unwrap_or(now);
                if out.rx_ready {
                    in_flight.insert(x.key, times.len());
                    sb.accept(now, x);
                    times.push(Times {
                        offered: first,
                        accepted: now,
                        answered: None,
                    });
                    active = true;
                } else {
                    pending = Some((x, Some(first)));
                }
            }
        }
        for (valid, e) in [
            (out.tx_valid, Egress::Tx(out.tx_hdr)),
            (out.cpl_valid, Egress::of_cpl(out.cpl_hdr, out.cpl_data)),
        ] {
            if !valid {
                continue;
            }
            sb.egress(now, e).map_err(check_err)?;
            // The scoreboard paired it with the open request of its identity; only one is
            // ever in flight.
            let id = in_flight
                .remove(&key(&e))
                .context("internal: an egress the scoreboard paired has no request in flight")?;
            times[id].answered = Some(now);
        }
        quiet = if active { 0 } else { quiet + 1 };
        let answered = ended && pending.is_none() && sb.mandatory_open() == 0;
        settling
            .check(env, answered && quiet < SETTLE)
            .map_err(|e| anyhow!(e))?;
        if answered && quiet >= SETTLE {
            break;
        }
        if now & 63 == 0 {
            sb.watchdog(now).map_err(check_err)?;
            env.check_assertions()?;
        }
    }
    env.inp.rx_valid = false;
    env.check_assertions()?;
    sb.settle(env.dut.cycle()).map_err(check_err)?;
    let records = RecordReader::new().drain(env)?;
    sb.check_records(&records).map_err(check_err)?;
    let fin = sb.finish().map_err(check_err)?;
    Ok(Timed {
        totals: fin.totals,
        times,
    })
}

/// Sends reads of `iovas` (tags counting from `first_tag`) as one judged stream.
fn run_reads(
    k: &mut RtlKernel,
    pasid: u32,
    first_tag: u64,
    iovas: impl IntoIterator<Item = u64>,
) -> Result<Timed> {
    let hw = hw_state(k);
    let e = env(k);
    let mut items = iovas
        .into_iter()
        .enumerate()
        .map(|(i, iova)| golden_expect(e, &hw, &read_req(first_tag + i as u64, iova, pasid)))
        .collect::<Result<std::collections::VecDeque<_>>>()?;
    let n = items.len() as u64;
    let r = timed_stream(e, |_| Ok(items.pop_front()))?;
    if r.totals.translated != n {
        bail!(
            "{} of {n} reads were translated ({} faults, {} dropped)",
            r.totals.translated,
            r.totals.faults,
            r.totals.dropped
        );
    }
    Ok(r)
}

/// Throughput of the miss stream at one memory latency.
#[derive(Clone, Debug, PartialEq)]
pub struct MissStream {
    pub latency: u32,
    pub requests: u64,
    /// Requests judged translated correctly (all of them, or the run fails).
    pub translated: u64,
    /// From the first ingress handshake to the last egress handshake.
    pub cycles: u64,
    /// Memory reads the unit made during the stream.
    pub reads: usize,
    pub seconds: f64,
}

impl MissStream {
    /// Translations per 1,000 cycles.
    pub fn per_kcycle(&self) -> f64 {
        if self.cycles > 0 {
            1000.0 * self.requests as f64 / self.cycles as f64
        } else {
            0.0
        }
    }

    /// Memory reads per request.
    pub fn reads_per_request(&self) -> f64 {
        if self.requests > 0 {
            self.reads as f64 / self.requests as f64
        } else {
            0.0
        }
    }
}

/// `requests` reads visiting the 64 pages round-robin across the regions, after one warm
/// pass over them, with memory at a fixed `latency`.
pub fn miss_stream(latency: u32, requests: u64) -> Result<MissStream> {
    let (mut k, pasid) = bench_system(5, latency)?;
    run_reads(&mut k, pasid, 0, (0..MISS_PAGES).map(miss_page)).context("warm pass")?;
    take_reads(&mut k);
    let t0 = Instant::now();
    let r = run_reads(&mut k, pasid, 0, (0..requests).map(miss_page))?;
    let seconds = t0.elapsed().as_secs_f64();
    Ok(MissStream {
        latency,
        requests,
        translated: r.totals.translated,
        cycles: r.span(),
        reads: take_reads(&mut k),
        seconds,
    })
}

/// Memory reads of one 4 KiB miss whose PASID entry and page-directory entry could be
/// cached: page 1 of a region right after page 0 of the same region was walked.
pub fn miss_reads_pde_cached() -> Result<usize> {
    let (mut k, pasid) = bench_system(6, 1)?;
    run_reads(&mut k, pasid, 0, [miss_page(0)])?;
    take_reads(&mut k);
    run_reads(&mut k, pasid, 1, [miss_page(MISS_REGIONS)])?;
    Ok(take_reads(&mut k))
}

/// Hits while a miss is outstanding, summed over trials. Each trial offers one miss, then
/// hits to a page in the IOTLB back to back for as long as the miss is unanswered.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HitsUnderMiss {
    pub latency: u32,
    pub trials: u64,
    /// Hits offered while their trial's miss was unanswered.
    pub offered: u64,
    /// Hits answered while their trial's miss was unanswered (before its answer).
    pub answered: u64,
    /// Cycles from the first to the last of those answers, both included: the span over
    /// which the hits' egress rate is measured (the pipeline's 2-cycle fill before the first
    /// answer is a latency, counted in `offer_to_answer`).
    pub window_cycles: u64,
    /// Over the hits offered while the miss was unanswered: cycles from the offer to the
    /// answer (the wait for the ingress handshake included) and from the handshake.
    pub offer_to_answer: u64,
    pub accept_to_answer: u64,
    /// Every request the trials sent (misses and hits), all judged.
    pub judged: u64,
}

impl HitsUnderMiss {
    /// Hits answered per clock while the miss was outstanding.
    pub fn tlps_per_clock(&self) -> f64 {
        ratio(self.answered, self.window_cycles)
    }
    /// Mean cycles from a hit's offer to its answer (equal to the ingress-to-egress
    /// handshake latency when the unit takes the hit at once).
    pub fn latency(&self) -> f64 {
        ratio(self.offer_to_answer, self.offered)
    }
    /// Mean cycles from a hit's ingress handshake to its egress handshake.
    pub fn accept_latency(&self) -> f64 {
        ratio(self.accept_to_answer, self.offered)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b > 0 {
        a as f64 / b as f64
    } else {
        0.0
    }
}

/// One trial: with `miss`, a read of that IOVA and then hits while it is outstanding;
/// without, a burst of [`IDLE_HITS`] hits. Returns the times (the miss first).
fn hit_trial(k: &mut RtlKernel, pasid: u32, miss: Option<u64>) -> Result<Timed> {
    let hw = hw_state(k);
    let e = env(k);
    let hit_walk = {
        let mem = &e
            .mem
            .as_ref()
            .context("the bench needs a memory agent")?
            .mem;
        golden::translate(&hw, mem, &golden_request(&read_req(1, HIT_IOVA, pasid)))
    };
    if !matches!(hit_walk.outcome, Outcome::Translated(_)) {
        bail!("the hit page does not translate: {}", hit_walk.outcome);
    }
    let miss_x = match miss {
        Some(iova) => Some(golden_expect(e, &hw, &read_req(0, iova, pasid))?),
        None => None,
    };
    let mut hits = 0u64;
    let mut miss_x = miss_x;
    let with_miss = miss.is_some();
    timed_stream(e, |times| {
        if let Some(x) = miss_x.take() {
            return Ok(Some(x));
        }
        let more = if with_miss {
            times.first().is_some_and(|t| t.answered.is_none()) && hits < MAX_HITS_PER_MISS
        } else {
            hits < IDLE_HITS
        };
        if !more {
            return Ok(None);
        }
        hits += 1;
        // Tags 1..=1023 in turn (tag 0 is the miss's).
        let req = read_req(1 + (hits - 1) % 1023, HIT_IOVA, pasid);
        Ok(Some(Expect::golden(&req, &hit_walk)?))
    })
}

/// Hit figures at memory latency `latency`: `trials` misses (pages of the round-robin visit
/// that are not in the IOTLB), each with hits offered back to back while it is outstanding;
/// and the idle unit's hit latency (a burst of hits with no miss). After a warm pass over the
/// miss pages, the hit page is read once, so it is in the IOTLB and recently used.
pub fn hits_under_miss(latency: u32, trials: u64) -> Result<(HitsUnderMiss, f64)> {
    let (mut k, pasid) = bench_system(7, latency)?;
    run_reads(&mut k, pasid, 0, (0..MISS_PAGES).map(miss_page)).context("warm pass")?;
    run_reads(&mut k, pasid, 1, [HIT_IOVA]).context("warming the hit page")?;
    let mut h = HitsUnderMiss {
        latency,
        trials,
        ..HitsUnderMiss::default()
    };
    for t in 0..trials {
        take_reads(&mut k);
        let r =
            hit_trial(&mut k, pasid, Some(miss_page(t))).with_context(|| format!("trial {t}"))?;
        if take_reads(&mut k) == 0 {
            bail!("trial {t}: the miss read no memory (it hit the IOTLB)");
        }
        h.judged += r.totals.sent;
        let (miss, hits) = r
            .times
            .split_first()
            .context("internal: a trial sent nothing")?;
        let m = miss
            .answered
            .context("internal: the judged miss has no answer")?;
        if hits.is_empty() {
            bail!("trial {t}: no hit was offered while the miss was outstanding");
        }
        let mut span: Option<(u64, u64)> = None;
        for x in hits {
            let a = x.answered.context("internal: a judged hit has no answer")?;
            if a < m {
                h.answered += 1;
                span = Some(span.map_or((a, a), |(lo, hi)| (lo.min(a), hi.max(a))));
            }
            if x.offered < m {
                h.offered += 1;
                h.offer_to_answer += a - x.offered;
                h.accept_to_answer += a - x.accepted;
            }
        }
        if let Some((lo, hi)) = span {
            h.window_cycles += hi - lo + 1;
        }
    }
    let idle = hit_trial(&mut k, pasid, None).context("idle hits")?;
    let mut sum = 0;
    for x in &idle.times {
        sum += x.answered.context("internal: a judged hit has no answer")? - x.offered;
    }
    Ok((h, ratio(sum, idle.times.len() as u64)))
}
