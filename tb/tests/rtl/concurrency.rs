//! The non-blocking unit, directed: hits leave while a miss walks, exactly where PCIe
//! ordering lets them (docs/contract.md section 4); misses to one page share one walk; an
//! invalidation that takes effect while a walk is in flight never lets that walk install
//! what the invalidation removed, wherever in the walk it lands.

use iommu_model::driver::DriverQuirks;
use iommu_model::kernel::Stage;
use iommu_model::mem::PhysMem;
use iommu_tb::env::Env;
use iommu_tb::env::MemTiming;
use iommu_tb::hw::system::*;
use iommu_tb::tlp::{self, MemRequest, TlpWords};
use iommu_tb::{run_test, TestFailure};

fn fixed(latency: u32) -> MemTiming {
    MemTiming {
        min_latency: latency,
        max_latency: latency,
        ready_pct: 100,
        ..MemTiming::default()
    }
}

/// Puts `w` on the ingress port, with tx and cpl always ready.
fn offer(e: &mut Env, w: &TlpWords) {
    e.inp.tx_ready = true;
    e.inp.cpl_ready = true;
    e.inp.rx_valid = true;
    e.inp.rx_nprefix = w.prefix_count as u8;
    e.inp.rx_prefix = w.prefix;
    e.inp.rx_hdr = w.header;
}

/// Offers `w` and runs until the unit takes it.
fn send(e: &mut Env, w: &TlpWords) -> anyhow::Result<()> {
    offer(e, w);
    for _ in 0..10_000 {
        if e.tick().rx_ready {
            e.inp.rx_valid = false;
            return Ok(());
        }
    }
    anyhow::bail!("the unit did not take a request within 10,000 cycles")
}

/// Offers `reqs` back to back with tx and cpl always ready; returns, per request, the cycle
/// it was accepted and the cycle its answer left (paired by tag, which the requests keep
/// distinct).
fn drive(k: &mut RtlKernel, reqs: &[MemRequest]) -> anyhow::Result<Vec<(u64, u64)>> {
    let words = reqs
        .iter()
        .map(tlp::encode)
        .collect::<Result<Vec<_>, _>>()?;
    let e = env(k);
    e.inp.tx_ready = true;
    e.inp.cpl_ready = true;
    let mut accepted = vec![None; reqs.len()];
    let mut left = vec![None; reqs.len()];
    let mut next = 0;
    let start = e.dut.cycle();
    while left.iter().any(Option::is_none) {
        anyhow::ensure!(
            e.dut.cycle() - start < 20_000,
            "no answer to every request within 20,000 cycles"
        );
        if let Some(w) = words.get(next) {
            offer(e, w);
        } else {
            e.inp.rx_valid = false;
        }
        let out = e.tick();
        let now = e.dut.cycle();
        if next < reqs.len() && out.rx_ready {
            accepted[next] = Some(now);
            next += 1;
        }
        let tag = if out.tx_valid {
            Some((out.tx_hdr[1] >> 8) & 0xff)
        } else if out.cpl_valid {
            Some((out.cpl_hdr[2] >> 8) & 0xff)
        } else {
            None
        };
        if let Some(tag) = tag {
            let i = reqs
                .iter()
                .position(|r| u32::from(r.tag & 0xff) == tag)
                .ok_or_else(|| anyhow::anyhow!("an answer with tag {tag:#x} nobody sent"))?;
            anyhow::ensure!(left[i].is_none(), "two answers to request {i}");
            left[i] = Some(now);
        }
    }
    e.inp.rx_valid = false;
    Ok(accepted
        .into_iter()
        .zip(left)
        .map(|(a, l)| (a.unwrap_or_default(), l.unwrap_or_default()))
        .collect())
}

/// A system with one second-stage domain: `miss` and `hit` pages mapped, `hit` in the IOTLB
/// and the PASID entry cached, `miss` not.
fn two_pages(tb: &mut iommu_tb::env::Env, latency: u32) -> anyhow::Result<(RtlKernel, u32)> {
    let mut k = system_on(tb, fixed(latency), DriverQuirks::default())?;
    let (d, pasid) = dma_domain_with_pasid(&mut k, Stage::Second)?;
    map(&mut k, d, 0x10_0000, 0x8_0000_0000, 0x1000, true, true)?;
    map(&mut k, d, 0x4000_0000, 0x9_0000_0000, 0x1000, true, true)?;
    check(&mut k, &MemRequest::read(DEV, 0, 0x10_0000, 1))?;
    Ok((k, pasid))
}

const HIT: u64 = 0x10_0040;
const MISS: u64 = 0x4000_0040;

#[test]
fn reads_that_hit_pass_a_read_that_walks() -> Result<(), TestFailure> {
    run_test("hit_under_miss", 81, |tb| {
        let (mut k, _) = two_pages(tb, 100)?;
        let mut reqs = vec![MemRequest::read(DEV, 0x80, MISS, 1)];
        reqs.extend((0..16).map(|i| MemRequest::read(DEV, i, HIT, 1)));
        let t = drive(&mut k, &reqs)?;
        let miss_out = t[0].1;
        for (i, &(acc, out)) in t.iter().enumerate().skip(1) {
            anyhow::ensure!(
                out < miss_out,
                "hit {i} left at cycle {out}, after the miss ({miss_out})"
            );
            anyhow::ensure!(
                out - acc == 2,
                "hit {i} took {} cycles while a miss was outstanding (2 when idle)",
                out - acc
            );
        }
        let first = t[1].1;
        let last = t[16].1;
        anyhow::ensure!(
            last - first == 15,
            "16 hits took {} cycles to leave while a miss walked",
            last - first + 1
        );
        Ok(())
    })
}

#[test]
fn nothing_passes_a_posted_write_that_walks_unless_ro_or_ido_allow() -> Result<(), TestFailure> {
    run_test("posted_write_order", 82, |tb| {
        let (mut k, _) = two_pages(tb, 60)?;
        // Plain write and read after a walking write: both wait.
        let w = MemRequest::write(DEV, 0x80, MISS, 1);
        let reqs = vec![
            w,
            MemRequest::write(DEV, 0x01, HIT, 1),
            MemRequest::read(DEV, 0x02, HIT, 1),
        ];
        let t = drive(&mut k, &reqs)?;
        for i in 1..3 {
            anyhow::ensure!(
                t[i].1 > t[0].1,
                "request {i} passed an earlier posted write (left at {}, the write at {})",
                t[i].1,
                t[0].1
            );
        }
        flush_iotlb(&mut k)?;
        check(&mut k, &MemRequest::read(DEV, 0, HIT, 1))?;
        // A write with RO may pass: it does.
        let mut ro = MemRequest::write(DEV, 0x03, HIT, 1);
        ro.attr = 0b010;
        let reqs = vec![w, ro];
        let t = drive(&mut k, &reqs)?;
        anyhow::ensure!(
            t[1].1 < t[0].1,
            "a relaxed-ordering write waited for an earlier posted write that walked"
        );
        Ok(())
    })
}

#[test]
fn a_hit_held_behind_a_walking_write_does_not_hold_the_hits_after_it() -> Result<(), TestFailure> {
    run_test("held_hit_parked", 88, |tb| {
        let (mut k, _) = two_pages(tb, 60)?;
        // A plain write that hits must wait for the earlier write that walks; it waits in
        // the miss queue (parked), so the relaxed-ordering write after it is looked up and
        // leaves first, while the walk is still running.
        let mut ro = MemRequest::write(DEV, 0x03, HIT, 1);
        ro.attr = 0b010;
        let reqs = vec![
            MemRequest::write(DEV, 0x80, MISS, 1),
            MemRequest::write(DEV, 0x01, HIT, 1),
            ro,
        ];
        let t = drive(&mut k, &reqs)?;
        anyhow::ensure!(
            t[1].1 > t[0].1,
            "the plain write passed the earlier posted write (left at {}, the write at {})",
            t[1].1,
            t[0].1
        );
        anyhow::ensure!(
            t[2].1 < t[0].1,
            "the relaxed-ordering write left at {}, after the walking write ({}): the held \
             plain write kept it out",
            t[2].1,
            t[0].1
        );
        anyhow::ensure!(
            t[2].1 - t[2].0 <= 3,
            "the relaxed-ordering write took {} cycles behind the held write",
            t[2].1 - t[2].0
        );
        Ok(())
    })
}

#[test]
fn misses_to_one_page_share_one_walk() -> Result<(), TestFailure> {
    run_test("shared_walk", 83, |tb| {
        let (mut k, _) = two_pages(tb, 40)?;
        flush_iotlb(&mut k)?;
        check(&mut k, &MemRequest::read(DEV, 0, HIT, 1))?; // PASID entry cached again
        take_reads(&mut k);
        drive(&mut k, &[MemRequest::read(DEV, 1, MISS, 1)])?;
        let one = take_reads(&mut k);
        flush_iotlb(&mut k)?;
        check(&mut k, &MemRequest::read(DEV, 0, HIT, 1))?;
        take_reads(&mut k);
        let reqs: Vec<_> = (0..4u16)
            .map(|i| MemRequest::read(DEV, 0x10 + i, MISS + 8 * u64::from(i), 1))
            .collect();
        drive(&mut k, &reqs)?;
        let four = take_reads(&mut k);
        anyhow::ensure!(one > 0, "a miss read no memory");
        anyhow::ensure!(
            four == one,
            "four misses to one page read memory {four} times; one walk reads {one}"
        );
        Ok(())
    })
}

/// For each delay, a cold walk (PASID cache flushed, so it reads root, context, PASID
/// directory, PASID entry and the page levels) starts, and `delay` cycles later the page is
/// unmapped (PTE cleared, IOTLB invalidated, wait) and mapped again elsewhere. The delays
/// sweep the invalidation over every step of the walk. Afterwards the page must translate
/// to its new frame: a walk that read the old PTE and filled the IOTLB after the
/// invalidation would answer with the old one.
#[test]
fn an_invalidation_during_a_walk_leaves_no_stale_entry() -> Result<(), TestFailure> {
    run_test("inv_during_walk", 84, |tb| {
        let mut k = system_on(tb, fixed(6), DriverQuirks::default())?;
        let (d, _) = dma_domain_with_pasid(&mut k, Stage::Second)?;
        for delay in (0..260u64).step_by(4) {
            let iova = 0x100_0000 + delay * 0x1000;
            map(
                &mut k,
                d,
                iova,
                0x8_0000_0000 + delay * 0x1000,
                0x1000,
                true,
                true,
            )?;
            flush_all(&mut k)?;
            let w = tlp::encode(&MemRequest::read(DEV, 0x40, iova, 1))?;
            {
                let e = env(&mut k);
                send(e, &w)?;
                e.idle(delay as u32);
            }
            unmap(&mut k, d, iova, 0x1000)?;
            map(
                &mut k,
                d,
                iova,
                0x9_0000_0000 + delay * 0x1000,
                0x1000,
                true,
                true,
            )?;
            env(&mut k).idle(400);
            // The request in flight may have faulted on the cleared entry: its record is
            // legal and not this test's concern.
            iommu_tb::check::take_fault_records(env(&mut k))?;
            // Judged by the golden walker on today's tables: the new frame.
            check(&mut k, &MemRequest::read(DEV, 0x41, iova, 1))
                .map_err(|e| anyhow::anyhow!("delay {delay}: {e:#}"))?;
        }
        Ok(())
    })
}

/// A cold walk at a memory latency of 400 cycles; once its r-th read is on the port, memory
/// turns fast and the page is unmapped (PTE cleared, IOTLB invalidated, wait) and mapped
/// again elsewhere, so the invalidation takes effect while read r is outstanding, for every
/// r of the walk. With r the leaf, the walk holds the old PTE when the invalidation takes
/// effect: it must not install it. Afterwards the page must translate to its new frame.
#[test]
fn an_invalidation_at_each_read_of_a_walk_leaves_no_stale_entry() -> Result<(), TestFailure> {
    run_test("inv_at_each_read", 85, |tb| {
        let mut k = system_on(tb, fixed(1), DriverQuirks::default())?;
        let (d, _) = dma_domain_with_pasid(&mut k, Stage::Second)?;
        map(&mut k, d, 0x200_0000, 0x7_0000_0000, 0x1000, true, true)?;
        flush_all(&mut k)?;
        take_reads(&mut k);
        check(&mut k, &MemRequest::read(DEV, 0x40, 0x200_0000, 1))?;
        let cold = take_reads(&mut k);
        anyhow::ensure!(cold > 4, "a cold walk read memory only {cold} times");
        for r in 1..=cold {
            let iova = 0x400_0000 + r as u64 * 0x1000;
            let (old_pa, new_pa) = (
                0x8_0000_0000 + r as u64 * 0x1000,
                0x9_0000_0000 + r as u64 * 0x1000,
            );
            map(&mut k, d, iova, old_pa, 0x1000, true, true)?;
            flush_all(&mut k)?;
            let w = tlp::encode(&MemRequest::read(DEV, 0x42, iova, 1))?;
            {
                let hw = k.ops_mut().hw_mut();
                hw.mem_agent().log.clear();
                hw.mem_agent().timing = fixed(400);
                offer(&mut hw.env, &w);
            }
            let mut waited = 0u32;
            loop {
                let hw = k.ops_mut().hw_mut();
                if hw.env.tick().rx_ready {
                    hw.env.inp.rx_valid = false;
                }
                if hw.mem_agent().reads() >= r {
                    break;
                }
                waited += 1;
                anyhow::ensure!(waited < 20_000, "read {r} of the walk never came");
            }
            env(&mut k).inp.rx_valid = false;
            k.ops_mut().hw_mut().mem_agent().timing = fixed(1);
            unmap(&mut k, d, iova, 0x1000)?;
            map(&mut k, d, iova, new_pa, 0x1000, true, true)?;
            env(&mut k).idle(1000);
            iommu_tb::check::take_fault_records(env(&mut k))?;
            check(&mut k, &MemRequest::read(DEV, 0x43, iova, 1))
                .map_err(|e| anyhow::anyhow!("invalidation at read {r} of {cold}: {e:#}"))?;
        }
        Ok(())
    })
}

/// A wait queued while a cold walk is in flight (memory at 300 cycles, so the walk outlasts
/// the wait's fetch) writes its status only after the walk's request has left the unit
/// (docs/contract.md section 4, rule 5).
#[test]
fn a_wait_completes_after_the_walks_in_flight() -> Result<(), TestFailure> {
    run_test("wait_drains_walks", 86, |tb| {
        let mut k = system_on(tb, fixed(1), DriverQuirks::default())?;
        let (d, _) = dma_domain_with_pasid(&mut k, Stage::Second)?;
        map(&mut k, d, 0x30_0000, 0xb_0000_0000, 0x1000, true, true)?;
        flush_all(&mut k)?;
        let status = k.ops_mut().hw_mut().mem_agent().mem.alloc_page()?;
        let w = tlp::encode(&MemRequest::read(DEV, 0x44, 0x30_0040, 1))?;
        {
            let hw = k.ops_mut().hw_mut();
            hw.mem_agent().timing = fixed(300);
            send(&mut hw.env, &w)?;
        }
        let wait = iommu_model::qi::Descriptor::Wait {
            intr: false,
            sw: true,
            fence: true,
            status_data: 0x5a5a,
            status_addr: status,
        };
        k.ops_mut().hw_mut().queue(&[wait.encode()])?;
        let (mut left, mut written) = (None, None);
        for cycle in 0..40_000u32 {
            let hw = k.ops_mut().hw_mut();
            let out = hw.env.tick();
            if out.tx_valid && left.is_none() {
                left = Some(cycle);
            }
            if written.is_none() && hw.mem_agent().mem.read64(status)? & 0xffff_ffff == 0x5a5a {
                written = Some(cycle);
            }
            if left.is_some() && written.is_some() {
                break;
            }
        }
        let (Some(left), Some(written)) = (left, written) else {
            anyhow::bail!("the request left at {left:?}, the wait wrote its status at {written:?}");
        };
        anyhow::ensure!(
            left < written,
            "the wait wrote its status at cycle {written}, before the request it must drain \
             left (cycle {left})"
        );
        Ok(())
    })
}

/// A walk that starts in the very cycle a page-selective invalidation takes effect, from a
/// paging-structure-cache entry that invalidation removes, must not cache what it reads.
///
/// For each delay: a 2 MiB region is mapped with 4 KiB pages and one page of it is
/// translated (the caches now hold the region's page-table pointer), then a page 512 GiB
/// away (the walker slot the next walk takes last served that address). Then, as Linux does
/// when an unmap frees a page-table page, the directory entry is cleared while the freed
/// page keeps its entries, and a page-selective invalidation of the region (IH = 0) and a
/// wait are queued; `delay` cycles later a request for another page of the region arrives.
/// The delays sweep its lookup over the cycle the invalidation takes effect, so one walk
/// starts in that cycle from the stale pointer. Its answer may be the old translation (it
/// raced the flush), but once the wait is done the page must fault: an IOTLB entry filled
/// from that walk would translate it.
#[test]
fn a_walk_started_in_the_invalidation_cycle_leaves_no_stale_entry() -> Result<(), TestFailure> {
    use iommu_model::locate::Locator;
    use iommu_model::qi::{Descriptor, IotlbGran};
    run_test("inv_at_walk_start", 87, |tb| {
        let mut k = system_on(tb, fixed(2), DriverQuirks::default())?;
        let (d, _) = dma_domain_with_pasid(&mut k, Stage::Second)?;
        let did = k
            .ops()
            .domain_did(d)
            .ok_or_else(|| anyhow::anyhow!("no DID"))?;
        let status = k.ops_mut().hw_mut().mem_agent().mem.alloc_page()?;
        // Pages 512 GiB away: a walk to one of them leaves the walker's slot holding an
        // address outside the region the invalidation covers.
        let far = 0x80_0000_0000u64;
        map(&mut k, d, far, 0x7_0000_0000, 0x20_0000, true, true)?;
        for delay in 0..48u64 {
            let region = 0x4000_0000 + delay * 0x20_0000;
            // Not 2 MiB aligned: the region is mapped with 4 KiB pages.
            let frame = 0x8_0000_1000 + delay * 0x40_0000;
            map(&mut k, d, region, frame, 0x20_0000, true, true)?;
            flush_all(&mut k)?;
            check(&mut k, &MemRequest::read(DEV, 0x45, region, 1))?;
            check(
                &mut k,
                &MemRequest::read(DEV, 0x45, far + delay * 0x1000, 1),
            )?;
            let pde = {
                let hw = k.ops_mut().hw_mut();
                let rtaddr = hw.env.read64(iommu_model::regs::RTADDR)?;
                let mem = &hw.mem_agent().mem;
                let loc = Locator::new(mem, rtaddr);
                loc.pte(DEV, loc.rid_pasid(DEV)?, region, 2)?
            };
            k.ops_mut().hw_mut().mem_agent().mem.write64(pde, 0)?;
            let batch = [
                Descriptor::Iotlb {
                    gran: IotlbGran::Page,
                    dr: false,
                    dw: false,
                    did,
                    addr: region,
                    am: 9,
                    ih: false,
                },
                Descriptor::Wait {
                    intr: false,
                    sw: true,
                    fence: true,
                    status_data: delay as u32 + 1,
                    status_addr: status,
                },
            ];
            let encoded: Vec<[u64; 4]> = batch.iter().map(Descriptor::encode).collect();
            k.ops_mut().hw_mut().queue(&encoded)?;
            let w = tlp::encode(&MemRequest::read(DEV, 0x46, region + 0x5000, 1))?;
            {
                let e = env(&mut k);
                e.idle(delay as u32);
                send(e, &w)?;
                e.idle(1000);
            }
            let done = k.ops_mut().hw_mut().mem_agent().mem.read64(status)? as u32;
            anyhow::ensure!(
                done == delay as u32 + 1,
                "delay {delay}: the wait never completed"
            );
            // The raced request's answer and record are legal either way.
            iommu_tb::check::take_fault_records(env(&mut k))?;
            // Judged by the golden walker on today's tables: the directory entry is gone.
            check(&mut k, &MemRequest::read(DEV, 0x47, region + 0x5000, 1))
                .map_err(|e| anyhow::anyhow!("delay {delay}: {e:#}"))?;
        }
        Ok(())
    })
}
