//! The ID-tagged memory port through the RTL: the walker and the invalidation queue each
//! hold a request of their own, so a descriptor fetch overlaps a walk's read, and the
//! responses, returned out of order, reach the client their IDs name.

use anyhow::{ensure, Result};
use iommu_model::driver::DriverQuirks;
use iommu_model::kernel::Stage;
use iommu_model::mem::PhysMem;
use iommu_model::qi::Descriptor;
use iommu_tb::env::MemTiming;
use iommu_tb::hw::system::*;
use iommu_tb::tlp::MemRequest;
use iommu_tb::{run_test, TestFailure};

/// Request IDs of `iommu_top`'s memory clients: the walkers 0 to 7, then the queue.
const WALKERS: u8 = 8;
const QUEUE: u8 = WALKERS;

/// What [`walk_and_fetch`] saw on the port.
struct Seen {
    /// Cycles with both clients' requests outstanding.
    overlapped: u32,
    /// Responses that came back while an earlier-accepted request was still outstanding.
    reordered: u32,
}

/// A cold walk (18 reads) is in flight when a wait descriptor is queued. Both finish with
/// the right results: the TLP leaves translated, the wait writes its status, and the
/// translation the walk filled is the golden walker's.
fn walk_and_fetch(tb: &mut iommu_tb::env::Env, timing: MemTiming) -> Result<Seen> {
    let mut k = system_on(tb, timing, DriverQuirks::default())?;
    let (d, pasid) = dma_domain_with_pasid(&mut k, Stage::Second)?;
    map(&mut k, d, 0x50_0000, 0xa_0000_0000, 0x1000, true, true)?;
    let req = MemRequest::read(DEV, 5, 0x50_0080, 1).with_pasid(pasid, false, false);
    let words = iommu_tb::tlp::encode(&req)?;
    take_reads(&mut k);
    let hw = k.ops_mut().hw_mut();
    let status = hw.mem_agent().mem.alloc_page()?;
    // The walk starts.
    hw.env.inp.rx_valid = true;
    hw.env.inp.rx_nprefix = words.prefix_count as u8;
    hw.env.inp.rx_prefix = words.prefix;
    hw.env.inp.rx_hdr = words.header;
    while !hw.env.tick().rx_ready {}
    hw.env.inp.rx_valid = false;
    // A wait descriptor right behind it (the IQT write takes a few cycles).
    let wait = Descriptor::Wait {
        intr: false,
        sw: true,
        fence: false,
        status_data: 0x5a5a,
        status_addr: status,
    };
    hw.queue(&[wait.encode()])?;
    // Follow the port. The agent's pending IDs (acceptance order) before a cycle are the
    // requests outstanding during it.
    let mut seen = Seen {
        overlapped: 0,
        reordered: 0,
    };
    let mut translated = None;
    let mut landed = false;
    for _ in 0..10_000 {
        let before = hw.mem_agent().pending_ids();
        let out = hw.env.tick();
        let inp = hw.env.inp;
        if inp.mem_rsp_valid {
            let Some(at) = before.iter().position(|&i| i == inp.mem_rsp_id) else {
                anyhow::bail!(
                    "a response for ID {} with nothing outstanding",
                    inp.mem_rsp_id
                );
            };
            seen.reordered += u32::from(at > 0);
        }
        if out.mem_req_valid && inp.mem_req_ready {
            ensure!(
                (out.mem_req_id < WALKERS && !out.mem_req_write) || out.mem_req_id == QUEUE,
                "unexpected request {out:?}"
            );
        }
        if before.iter().any(|&i| i < WALKERS) && before.contains(&QUEUE) {
            seen.overlapped += 1;
        }
        if out.tx_valid && inp.tx_ready {
            translated = Some(out.tx_hdr);
        }
        landed = hw.mem_agent().mem.read64(status & !7)? as u32 == 0x5a5a;
        if landed && translated.is_some() && hw.mem_agent().idle() {
            break;
        }
    }
    let Some(hdr) = translated else {
        anyhow::bail!("the translated TLP never left");
    };
    ensure!(
        hdr[2] == 0xa && hdr[3] == 0x80,
        "translated to {:#x}:{:#x}, expected 0xa:0x80",
        hdr[2],
        hdr[3]
    );
    ensure!(landed, "the wait never wrote its status");
    hw.env.check_assertions()?;
    check(&mut k, &req)?;
    Ok(seen)
}

/// With every read taking 40 cycles, the queue's fetch is accepted while the walker's read
/// is outstanding.
#[test]
fn walker_and_queue_reads_outstanding_together() -> Result<(), TestFailure> {
    run_test("memport_overlap", 37, |tb| {
        let timing = MemTiming {
            min_latency: 40,
            max_latency: 40,
            ready_pct: 100,
            in_order: false,
        };
        let seen = walk_and_fetch(tb, timing)?;
        ensure!(
            seen.overlapped > 0,
            "the walker and the queue never had a request outstanding at the same time"
        );
        Ok(())
    })
}

/// With random latencies, a later request of one client is answered before an earlier one
/// of the other, and each response still reaches its own client (the results are right).
/// In order, none is.
#[test]
fn responses_out_of_order_reach_their_clients() -> Result<(), TestFailure> {
    let reordered = std::cell::Cell::new(0u32);
    for seed in 40..44 {
        for in_order in [false, true] {
            run_test(&format!("memport_reorder_{seed}_{in_order}"), seed, |tb| {
                let timing = MemTiming {
                    min_latency: 1,
                    max_latency: 64,
                    ready_pct: 100,
                    in_order,
                };
                let seen = walk_and_fetch(tb, timing)?;
                if in_order {
                    ensure!(seen.reordered == 0, "in-order memory answered out of order");
                } else {
                    reordered.set(reordered.get() + seen.reordered);
                }
                Ok(())
            })?;
        }
    }
    assert!(
        reordered.get() > 0,
        "no response came back ahead of an earlier request"
    );
    Ok(())
}
