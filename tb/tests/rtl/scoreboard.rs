//! The streaming scoreboard on pipelined bursts: hits, misses, superpages, faults through the
//! RID and the PASID under random gaps and back-pressure, all checked in order; and it
//! catches a unit that loses, duplicates or misdirects a TLP.

use iommu_model::driver::DriverQuirks;
use iommu_model::kernel::Stage;
use iommu_tb::check::check_burst;
use iommu_tb::env::MemTiming;
use iommu_tb::hw::system::*;
use iommu_tb::tlp::MemRequest;
use iommu_tb::{run_test, TestFailure};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn burst(seed: u64, pasid: u32, n: usize) -> Vec<MemRequest> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let base = [0x10_0000u64, 0x20_0000, 0x60_0000, 0x7000_0000][rng.gen_range(0..4)];
            let addr = base + rng.gen_range(0..0x4000u64 / 8) * 8;
            let r = if rng.gen_bool(0.5) {
                MemRequest::read(DEV, (i & 0x3ff) as u16, addr, 2)
            } else {
                MemRequest::write(DEV, (i & 0x3ff) as u16, addr, 2)
            };
            if rng.gen_bool(0.5) {
                r.with_pasid(pasid, false, false)
            } else {
                r
            }
        })
        .collect()
}

#[test]
fn pipelined_bursts_are_checked_in_order() -> Result<(), TestFailure> {
    for seed in 61..65u64 {
        run_test("scoreboard_burst", seed, |tb| {
            let timing = MemTiming {
                min_latency: 1,
                max_latency: 16,
                ready_pct: 70,
                in_order: false,
            };
            let mut k = system_on(tb, timing, DriverQuirks::default())?;
            let stage = if seed % 2 == 0 {
                Stage::First
            } else {
                Stage::Second
            };
            let (d, pasid) = dma_domain_with_pasid(&mut k, stage)?;
            map(&mut k, d, 0x10_0000, 0x8_0000_0000, 0x4000, true, false)?;
            map(&mut k, d, 0x20_0000, 0x8_0020_0000, 2 << 20, true, true)?;
            map(&mut k, d, 0x60_0000, 0x8_0060_0000, 0x2000, false, true)?;
            let hw = hw_state(&k);
            let reqs = burst(seed, pasid, 400);
            let r = check_burst(env(&mut k), &hw, &reqs, seed, 20, 60)?;
            anyhow::ensure!(
                r.translated > 50 && r.faults > 50 && r.dropped > 10,
                "too narrow: {r:?}"
            );
            Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn a_wrong_expectation_is_reported_with_the_request() {
    // Judge the burst against memory the unit does not see (the page moved after the
    // expectations were computed would be the same): here, expectations from a table with
    // an extra mapping the unit's copy does not have.
    let mut k = system(66, MemTiming::default(), DriverQuirks::default()).expect("system");
    let (d, pasid) = dma_domain_with_pasid(&mut k, Stage::Second).expect("domain");
    map(&mut k, d, 0x10_0000, 0x8_0000_0000, 0x4000, true, true).expect("map");
    let hw = hw_state(&k);
    let reqs = burst(66, pasid, 50);
    // Warm the unit's IOTLB, then change the tables behind its back without a flush: the
    // unit keeps using its cached translations, which the golden walker no longer gives.
    check_burst(env(&mut k), &hw, &reqs, 1, 0, 100).expect("consistent burst passes");
    unmap_without_flush(&mut k, d);
    let err = check_burst(env(&mut k), &hw, &reqs, 1, 0, 100)
        .expect_err("stale translations must be caught");
    let text = format!("{err:#}");
    assert!(
        text.contains("request #") && text.contains("allowed:") && text.contains("DUT did:"),
        "{text}"
    );
}

/// Clears the domain's leaf entries in memory directly (no invalidation), as a driver bug
/// would.
fn unmap_without_flush(k: &mut RtlKernel, d: iommu_model::kernel::DomainId) {
    use iommu_model::mem::PhysMem;
    let pgd = k.ops().domain_pgd(d).expect("pgd");
    let mem = &mut k.ops_mut().hw_mut().mem_agent().mem;
    // Walk 4 levels for 0x10_0000..0x10_4000 and zero the leaves.
    for page in 0..4u64 {
        let va = 0x10_0000 + page * 0x1000;
        let mut table = pgd;
        for level in (2..=4).rev() {
            let idx = (va >> (12 + 9 * (level - 1))) & 0x1ff;
            let e = mem.read64(table + idx * 8).expect("table");
            table = e & 0x000f_ffff_ffff_f000;
        }
        let idx = (va >> 12) & 0x1ff;
        mem.write64(table + idx * 8, 0).expect("leaf");
    }
}
