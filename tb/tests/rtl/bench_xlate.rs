//! `bench-xlate`'s judged measurements on small runs. Only invariants are asserted (every
//! request judged and counted, the unit read memory); never a timing figure, which changes
//! with the RTL.

use anyhow::{ensure, Result};
use iommu_tb::flows::bench::{
    hits_under_miss, miss_page, miss_reads_pde_cached, miss_stream, MISS_PAGES, MISS_REGIONS,
};

#[test]
fn the_round_robin_visits_every_page_once_per_pass_regions_first() {
    let pass: std::collections::BTreeSet<u64> = (0..MISS_PAGES).map(miss_page).collect();
    assert_eq!(pass.len() as u64, MISS_PAGES);
    // Consecutive requests go to different 2 MiB regions; the same region comes back every
    // MISS_REGIONS requests, at the next page.
    for j in 0..2 * MISS_PAGES {
        assert_ne!(miss_page(j) >> 21, miss_page(j + 1) >> 21);
        if (j / MISS_REGIONS + 1) % (MISS_PAGES / MISS_REGIONS) != 0 {
            assert_eq!(miss_page(j + MISS_REGIONS), miss_page(j) + 0x1000);
        }
    }
    // 8 distinct page-directory entries (2 MiB regions).
    let pdes: std::collections::BTreeSet<u64> = pass.iter().map(|a| a >> 21).collect();
    assert_eq!(pdes.len() as u64, MISS_REGIONS);
}

#[test]
fn miss_stream_judges_and_counts_every_request() -> Result<()> {
    let m = miss_stream(8, 80)?;
    ensure!(m.requests == 80, "{m:?}");
    ensure!(
        m.translated == m.requests,
        "not every request translated: {m:?}"
    );
    ensure!(m.reads > 0, "the stream read no memory: {m:?}");
    ensure!(m.cycles > 0 && m.per_kcycle() > 0.0, "{m:?}");
    Ok(())
}

#[test]
fn hits_under_a_miss_are_judged_and_counted() -> Result<()> {
    let (h, idle) = hits_under_miss(100, 1)?;
    ensure!(h.trials == 1, "{h:?}");
    ensure!(
        h.offered >= 1,
        "no hit was offered while the miss was outstanding: {h:?}"
    );
    ensure!(
        h.judged > h.offered,
        "the miss and every hit are judged: {h:?}"
    );
    ensure!(h.answered <= h.judged, "{h:?}");
    ensure!(
        h.window_cycles > 0 && idle > 0.0,
        "{h:?}, idle latency {idle}"
    );
    ensure!(miss_reads_pde_cached()? >= 1, "a miss reads memory");
    Ok(())
}
