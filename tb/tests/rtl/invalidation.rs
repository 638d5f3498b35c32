//! Invalidation precision and completeness through the RTL. A translation is cached, memory is
//! changed behind it, and one descriptor of a given kind is queued. Everything the descriptor
//! covers must then translate as the new tables say (the golden walker judges). What it does
//! not cover must still hit (no memory read): over-invalidation is legal, but a unit that
//! flushes everything on every page-selective descriptor would be a performance bug.

use anyhow::{ensure, Context, Result};
use iommu_model::driver::DriverQuirks;
use iommu_model::golden::Outcome;
use iommu_model::kernel::{DomainId, MmProt, Stage};
use iommu_model::mem::PhysMem;
use iommu_model::qi::{CcGran, Descriptor, IotlbGran, PiotlbGran};
use iommu_tb::env::MemTiming;
use iommu_tb::hw::system::*;
use iommu_tb::tlp::MemRequest;
use iommu_tb::{run_test, TestFailure};

fn rd(addr: u64, pasid: Option<u32>) -> MemRequest {
    let r = MemRequest::read(DEV, 0x44, addr, 1);
    pasid.map_or(r, |p| r.with_pasid(p, false, false))
}

fn pa(k: &mut RtlKernel, req: &MemRequest) -> Result<u64> {
    match check(k, req)?.walk.outcome {
        Outcome::Translated(pa) => Ok(pa),
        o => anyhow::bail!("expected a translation of {req}, the golden walker says {o}"),
    }
}

/// Address of the leaf entry that maps `va` in the 4-level table at `pgd`.
fn leaf_entry(k: &mut RtlKernel, pgd: u64, va: u64) -> Result<u64> {
    let mem = &k.ops_mut().hw_mut().mem_agent().mem;
    let mut table = pgd;
    for level in (1..=4u32).rev() {
        let at = table + ((va >> (12 + 9 * (level - 1))) & 0x1ff) * 8;
        let e = mem.read64(at)?;
        if level == 1 || e & (1 << 7) != 0 {
            return Ok(at);
        }
        table = e & 0x000f_ffff_ffff_f000;
    }
    anyhow::bail!("no leaf for {va:#x}")
}

/// Points the leaf that maps `va` at a frame `delta` further on.
fn move_leaf(k: &mut RtlKernel, d: DomainId, va: u64, delta: u64) -> Result<()> {
    let pgd = k.ops().domain_pgd(d).context("domain has no table")?;
    let at = leaf_entry(k, pgd, va)?;
    let mem = &mut k.ops_mut().hw_mut().mem_agent().mem;
    let e = mem.read64(at)?;
    mem.write64(at, e + delta)?;
    Ok(())
}

fn submit(k: &mut RtlKernel, descs: &[Descriptor]) -> Result<()> {
    k.ops_mut().hw_mut().submit_and_wait(descs)?;
    Ok(())
}

#[test]
fn pasid_tags_keep_translations_of_one_did_apart() -> Result<(), TestFailure> {
    run_test("pasid_tags_apart", 71, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        let e = |e| anyhow::anyhow!("{e:?}");
        // Two processes map the same VA to different pages; both bound to DEV. SVA domains
        // share one DID, so only the PASID tells their IOTLB entries apart.
        let prot = MmProt {
            write: true,
            exec: false,
            user: true,
        };
        let (m1, m2) = (k.mm_create().map_err(e)?, k.mm_create().map_err(e)?);
        k.mm_map(m1, 0x40_0000, 0x7_0000_0000, 0x1000, prot)
            .map_err(e)?;
        k.mm_map(m2, 0x40_0000, 0x7_1000_0000, 0x1000, prot)
            .map_err(e)?;
        let p1 = k.sva_bind(DEV, m1).map_err(e)?;
        let p2 = k.sva_bind(DEV, m2).map_err(e)?;
        let a = pa(&mut k, &rd(0x40_0080, Some(p1)))?;
        let b = pa(&mut k, &rd(0x40_0080, Some(p2)))?;
        ensure!(a != b, "the two processes must map different pages");
        // Both cached now: each PASID must keep getting its own page.
        ensure!(pa(&mut k, &rd(0x40_0080, Some(p1)))? == a);
        ensure!(pa(&mut k, &rd(0x40_0080, Some(p2)))? == b);
        Ok(())
    })
}

#[test]
fn page_selective_invalidation_is_complete_and_precise() -> Result<(), TestFailure> {
    for stage in [Stage::Second, Stage::First] {
        run_test(&format!("psi_{stage:?}"), 72, |tb| {
            let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
            let (d, pasid) = dma_domain_with_pasid(&mut k, stage)?;
            let did = k.ops().domain_did(d).context("DID")?;
            map(&mut k, d, 0x10_0000, 0x8_0000_0000, 0x4000, true, true)?;
            map(&mut k, d, 0x20_0000, 0x8_0020_0000, 2 << 20, true, true)?;
            let via = if stage == Stage::First {
                Some(pasid)
            } else {
                None
            };
            for va in [0x10_0000u64, 0x10_1000, 0x10_2000, 0x20_5000] {
                pa(&mut k, &rd(va, via))?;
            }
            // Move the first two 4K pages and the 2 MiB page behind the unit's back.
            move_leaf(&mut k, d, 0x10_0000, 0x10_0000)?;
            move_leaf(&mut k, d, 0x10_1000, 0x10_0000)?;
            move_leaf(&mut k, d, 0x20_0000, 0x4000_0000)?;
            // A 2-page range (AM=1) and one 4K page inside the 2 MiB entry.
            let psi = |addr: u64, am: u8| match stage {
                Stage::Second => Descriptor::Iotlb {
                    gran: IotlbGran::Page,
                    dr: false,
                    dw: false,
                    did,
                    addr,
                    am,
                    ih: false,
                },
                Stage::First => Descriptor::PasidIotlb {
                    gran: PiotlbGran::Page,
                    did,
                    pasid,
                    addr,
                    am,
                    ih: false,
                },
            };
            submit(&mut k, &[psi(0x10_0000, 1), psi(0x20_5000, 0)])?;
            // Covered: the new tables (the judge fails on a stale translation).
            for va in [0x10_0000u64, 0x10_1000, 0x20_5000, 0x21_0000] {
                pa(&mut k, &rd(va, via))?;
            }
            // Not covered: still cached.
            take_reads(&mut k);
            pa(&mut k, &rd(0x10_2000, via))?;
            let reads = take_reads(&mut k);
            ensure!(
                reads == 0,
                "a page outside the flushed range was walked again ({reads} reads)"
            );
            Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn pasid_selective_invalidation_removes_the_pasids_translations() -> Result<(), TestFailure> {
    run_test("piotlb_pasid", 73, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        let (d, pasid) = dma_domain_with_pasid(&mut k, Stage::First)?;
        let did = k.ops().domain_did(d).context("DID")?;
        map(&mut k, d, 0x30_0000, 0x9_0000_0000, 0x2000, true, true)?;
        pa(&mut k, &rd(0x30_1000, Some(pasid)))?;
        move_leaf(&mut k, d, 0x30_1000, 0x20_0000)?;
        submit(
            &mut k,
            &[Descriptor::PasidIotlb {
                gran: PiotlbGran::Pasid,
                did,
                pasid,
                addr: 0,
                am: 0,
                ih: false,
            }],
        )?;
        pa(&mut k, &rd(0x30_1000, Some(pasid)))?;
        Ok(())
    })
}

#[test]
fn device_selective_context_invalidation_drops_the_devices_entries() -> Result<(), TestFailure> {
    run_test("ccache_device", 74, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        let (d, pasid) = dma_domain_with_pasid(&mut k, Stage::Second)?;
        map(&mut k, d, 0x30_0000, 0x9_0000_0000, 0x1000, true, true)?;
        pa(&mut k, &rd(0x30_0000, None))?;
        pa(&mut k, &rd(0x30_0000, Some(pasid)))?;
        // Clear the context entry's present bit (root entry of bus 0, devfn of DEV).
        let root = k.ops().root_table();
        let mem = &mut k.ops_mut().hw_mut().mem_agent().mem;
        let ctx_table = mem.read64(root + u64::from(DEV >> 8) * 16)? & 0x000f_ffff_ffff_f000;
        let ctx = ctx_table + u64::from(DEV & 0x7f) * 32;
        let qw0 = mem.read64(ctx)?;
        mem.write64(ctx, qw0 & !1)?;
        submit(
            &mut k,
            &[
                Descriptor::ContextCache {
                    gran: CcGran::Device,
                    did: 0,
                    sid: DEV,
                    fm: 0,
                },
                iommu_tb::hw::system::iotlb_global(),
            ],
        )?;
        for p in [None, Some(pasid)] {
            let j = check(&mut k, &rd(0x30_0000, p))?;
            ensure!(
                matches!(j.walk.outcome, Outcome::Fault(_)),
                "{}",
                j.walk.outcome
            );
        }
        Ok(())
    })
}

#[test]
fn a_lone_wait_waits_for_translated_tlps() -> Result<(), TestFailure> {
    run_test("lone_wait", 75, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        let (d, _) = dma_domain_with_pasid(&mut k, Stage::Second)?;
        map(&mut k, d, 0x50_0000, 0xa_0000_0000, 0x1000, true, true)?;
        let req = MemRequest::read(DEV, 9, 0x50_0100, 1);
        check(&mut k, &req)?;
        let words = iommu_tb::tlp::encode(&req)?;
        let hw = k.ops_mut().hw_mut();
        let status = hw.mem_agent().mem.alloc_page()?;
        hw.env.inp.tx_ready = false;
        hw.env.inp.rx_valid = true;
        hw.env.inp.rx_nprefix = 0;
        hw.env.inp.rx_hdr = words.header;
        while !hw.env.tick().rx_ready {}
        hw.env.inp.rx_valid = false;
        hw.env.idle(4);
        ensure!(
            hw.env.out.tx_valid,
            "the translated TLP is not waiting in the egress stage"
        );
        let wait = Descriptor::Wait {
            intr: false,
            sw: true,
            fence: false,
            status_data: 0x77,
            status_addr: status,
        };
        hw.queue(&[wait.encode()])?;
        hw.env.idle(300);
        let word =
            |hw: &mut iommu_tb::hw::RtlHw| hw.mem_agent().mem.read64(status).map(|v| v as u32);
        ensure!(
            word(hw)? != 0x77,
            "a wait completed while a TLP translated before it was still inside"
        );
        hw.env.inp.tx_ready = true;
        hw.env.idle(100);
        ensure!(word(hw)? == 0x77, "the wait never completed");
        Ok(())
    })
}
