//! IOTLB and PASID-entry cache through the RTL: hits make no memory access, superpages are
//! single entries, replacement keeps the most recent pages, and every unmap's flush removes
//! the RID- and PASID-tagged entries (the DUT never returns a translation the golden walker
//! no longer gives once the flush's wait has completed).

use iommu_model::driver::DriverQuirks;
use iommu_model::golden::Outcome;
use iommu_model::kernel::Stage;
use iommu_tb::env::MemTiming;
use iommu_tb::hw::system::*;
use iommu_tb::tlp::MemRequest;
use iommu_tb::{run_test, TestFailure};

fn rd(addr: u64, pasid: Option<u32>) -> MemRequest {
    let r = MemRequest::read(DEV, 0x33, addr, 1);
    pasid.map_or(r, |p| r.with_pasid(p, false, false))
}

#[test]
fn hits_make_no_memory_access() -> Result<(), TestFailure> {
    for stage in [Stage::First, Stage::Second] {
        run_test(&format!("iotlb_hits_{stage:?}"), 21, |tb| {
            let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
            let (d, pasid) = dma_domain_with_pasid(&mut k, stage)?;
            map(&mut k, d, 0x20_0000, 0x3_0000_0000, 0x1000, true, true)?;
            for p in [None, Some(pasid)] {
                take_reads(&mut k);
                check(&mut k, &rd(0x20_0000, p))?;
                let miss = take_reads(&mut k);
                // Cold: root, 4 context QWs, directory, 8 PASID-entry QWs, 4 levels.
                anyhow::ensure!(
                    miss == 18,
                    "{p:?}: a cold walk made {miss} reads, expected 18"
                );
                check(&mut k, &rd(0x20_0040, p))?;
                let hit = take_reads(&mut k);
                anyhow::ensure!(hit == 0, "{p:?}: a hit made {hit} memory reads");
            }
            Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn superpages_are_one_entry() -> Result<(), TestFailure> {
    for stage in [Stage::First, Stage::Second] {
        run_test(&format!("iotlb_superpages_{stage:?}"), 22, |tb| {
            let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
            let (d, pasid) = dma_domain_with_pasid(&mut k, stage)?;
            map(&mut k, d, 0x4000_0000, 0x2_4000_0000, 1 << 30, true, true)?; // 1 GiB
            map(&mut k, d, 0x8020_0000, 0x3_0020_0000, 2 << 20, true, false)?; // 2 MiB
            for (base, size, levels) in [
                (0x4000_0000u64, 1u64 << 30, 2usize),
                (0x8020_0000, 2 << 20, 3),
            ] {
                check(&mut k, &rd(base, Some(pasid)))?; // warms the PASID-entry cache
                flush_iotlb(&mut k)?;
                take_reads(&mut k);
                let j = check(&mut k, &rd((base + 0x1234) & !3, Some(pasid)))?;
                let leaf = j
                    .walk
                    .leaf
                    .ok_or_else(|| anyhow::anyhow!("no leaf: {}", j.walk.outcome))?;
                anyhow::ensure!(
                    leaf.size == size,
                    "driver mapped {size:#x} but the leaf is {:#x}",
                    leaf.size
                );
                let walk = take_reads(&mut k);
                anyhow::ensure!(
                    walk == levels,
                    "a {size:#x} leaf took {walk} reads, expected {levels}"
                );
                // Anywhere else in the superpage, through the same PASID: a hit.
                check(&mut k, &rd(base + size - 64, Some(pasid)))?;
                let hit = take_reads(&mut k);
                anyhow::ensure!(hit == 0, "superpage hit made {hit} reads");
            }
            Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn replacement_keeps_the_most_recent_pages() -> Result<(), TestFailure> {
    run_test("iotlb_replacement", 23, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        let (d, _) = dma_domain_with_pasid(&mut k, Stage::Second)?;
        map(
            &mut k,
            d,
            0x100_0000,
            0x5_0000_0000,
            64 * 0x1000,
            true,
            true,
        )?;
        for i in 0..64u64 {
            check(&mut k, &rd(0x100_0000 + i * 0x1000, None))?;
        }
        take_reads(&mut k);
        // 32 entries: the last 32 pages are resident, the first 32 are not.
        for i in 32..64u64 {
            check(&mut k, &rd(0x100_0000 + i * 0x1000, None))?;
        }
        let recent = take_reads(&mut k);
        anyhow::ensure!(
            recent == 0,
            "re-reading the 32 most recent pages made {recent} reads"
        );
        check(&mut k, &rd(0x100_0000, None))?;
        let evicted = take_reads(&mut k);
        // Evicted from the IOTLB; its PDE, shared by all 64 pages, stays in the
        // paging-structure cache: one read, of the leaf.
        anyhow::ensure!(
            evicted == 1,
            "the oldest page should need a walk of its last level, made {evicted} reads"
        );
        Ok(())
    })
}

#[test]
fn unmap_flushes_rid_and_pasid_tags() -> Result<(), TestFailure> {
    for stage in [Stage::First, Stage::Second] {
        run_test(&format!("unmap_flushes_{stage:?}"), 24, |tb| {
            let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
            let (d, pasid) = dma_domain_with_pasid(&mut k, stage)?;
            map(&mut k, d, 0x30_0000, 0x7_0000_0000, 0x2000, true, true)?;
            for p in [None, Some(pasid)] {
                anyhow::ensure!(matches!(
                    check(&mut k, &rd(0x30_0000, p))?.walk.outcome,
                    Outcome::Translated(_)
                ));
            }
            unmap(&mut k, d, 0x30_0000, 0x2000)?;
            // Cached through both before the unmap; the golden walker now faults both, and
            // the judge fails if the DUT still translates either.
            for p in [None, Some(pasid)] {
                let j = check(&mut k, &rd(0x30_0000, p))?;
                anyhow::ensure!(
                    matches!(j.walk.outcome, Outcome::Fault(_)),
                    "{}",
                    j.walk.outcome
                );
            }
            Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn skipping_the_pasid_flush_leaves_a_stale_translation_in_the_rtl() -> Result<(), TestFailure> {
    run_test("skip_pasid_flush_rtl", 25, |tb| {
        let quirks = DriverQuirks {
            skip_pasid_flush: true,
            ..DriverQuirks::default()
        };
        let mut k = system_on(tb, MemTiming::default(), quirks)?;
        let (d, pasid) = dma_domain_with_pasid(&mut k, Stage::First)?;
        map(&mut k, d, 0x30_0000, 0x7_0000_0000, 0x1000, true, true)?;
        check(&mut k, &rd(0x30_0000, Some(pasid)))?;
        unmap(&mut k, d, 0x30_0000, 0x1000)?;
        // Only the RID tag was flushed: the PASID-tagged entry survives in the IOTLB and the
        // DUT still translates, where the tables (and the golden walker) say fault.
        let err = match check(&mut k, &rd(0x30_0000, Some(pasid))) {
            Ok(j) => anyhow::bail!(
                "the stale PASID entry was not used: DUT agreed with {}",
                j.walk.outcome
            ),
            Err(e) => e.to_string(),
        };
        anyhow::ensure!(
            err.contains("Fault") && err.contains("DUT did:       tx:"),
            "{err}"
        );
        // Through the RID the flush happened.
        check(&mut k, &rd(0x30_0000, None))?;
        Ok(())
    })
}

#[test]
fn second_stage_did_flush_covers_every_pasid() -> Result<(), TestFailure> {
    run_test("ss_did_flush", 26, |tb| {
        let quirks = DriverQuirks {
            skip_pasid_flush: true,
            ..DriverQuirks::default()
        };
        let mut k = system_on(tb, MemTiming::default(), quirks)?;
        let (d, pasid) = dma_domain_with_pasid(&mut k, Stage::Second)?;
        map(&mut k, d, 0x30_0000, 0x7_0000_0000, 0x1000, true, true)?;
        check(&mut k, &rd(0x30_0000, Some(pasid)))?;
        check(&mut k, &rd(0x30_0000, None))?;
        unmap(&mut k, d, 0x30_0000, 0x1000)?;
        check(&mut k, &rd(0x30_0000, Some(pasid)))?;
        check(&mut k, &rd(0x30_0000, None))?;
        Ok(())
    })
}
