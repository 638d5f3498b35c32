//! Running the hardware steps that work at both levels: memory writes, register reads,
//! queued invalidation descriptors, and the re-synchronisation after a failing step.

use anyhow::{anyhow, bail, ensure, Context, Result};
use iommu_model::mem::PhysMem;
use iommu_model::qi::Descriptor;
use iommu_model::regs;

use crate::check::judge::take_fault_records;
use crate::env::exchange;
use crate::hw::rtl_hw::SUBMIT_TIMEOUT;

use super::*;

impl Runner {
    /// `write_memory`: the words, nothing invalidated. Behind the kernel's back (kernel-level
    /// vectors) the oracle no longer judges.
    pub(super) fn write_memory(&mut self, w: &WriteMemory) -> Result<()> {
        for (i, v) in w.value.0.iter().enumerate() {
            let at = w.addr.0 + 8 * i as u64;
            self.mem()?
                .write64(at, *v)
                .map_err(|e| input(format!("writing {at:#x}: {e}")))?;
        }
        if matches!(self.sys, Sys::Kernel(_)) {
            self.tainted = true;
        }
        Ok(())
    }

    /// `read_register`: the register, masked, must hold the value.
    pub(super) fn read_register(&mut self, r: &ReadRegister) -> Result<()> {
        let (width, off) = r.width();
        let env = self.env();
        let got = if width == 64 {
            env.read64(off)?
        } else {
            u64::from(env.read32(off)?)
        };
        let mask = r.mask.map_or(u64::MAX, |m| m.0);
        ensure!(
            got & mask == r.value.0 & mask,
            "register {} reads {got:#x}; pinned {:#x}{}",
            r.reg.name,
            r.value.0 & mask,
            if mask == u64::MAX {
                String::new()
            } else {
                format!(" under mask {mask:#x} (read & mask = {:#x})", got & mask)
            }
        );
        Ok(())
    }

    /// `descriptor`: writes the descriptor (and, with `wait`, a wait descriptor writing
    /// status) at the tail of the queue IQA names, advances IQT and, with `wait`, runs the
    /// DUT until the status lands or FSTS.IQE is set (the vector pins what follows with
    /// `read_register`). In kernel-level vectors the driver's queue is used and its tail
    /// re-read afterwards.
    pub(super) fn descriptor(&mut self, d: &DescriptorStep) -> Result<()> {
        let mut descs = vec![d.words()];
        let mut status = None;
        if d.wait {
            let addr = match (d.status, self.status_page) {
                (Some(a), _) => a.0,
                (None, Some(p)) => p,
                (None, None) => {
                    let p = self
                        .mem()?
                        .alloc_page()
                        .map_err(|e| anyhow!("a status page for the wait: {e}"))?;
                    self.status_page = Some(p);
                    p
                }
            };
            self.status_seq = self.status_seq.wrapping_add(1);
            let seq = self.status_seq;
            descs.push(
                Descriptor::Wait {
                    intr: false,
                    sw: true,
                    fence: true,
                    status_data: seq,
                    status_addr: addr,
                }
                .encode(),
            );
            status = Some((addr, seq));
        }
        let env = self.env();
        ensure!(
            env.read32(regs::GSTS)? & regs::GCMD_QIE != 0,
            InputError(
                "`descriptor`: queued invalidation is off (GSTS.QIES = 0): program IQA and \
                 set GCMD.QIE first"
                    .into()
            )
        );
        let iqa = env.read64(regs::IQA)?;
        let base = iqa & regs::IQA_BASE_MASK;
        let entries = 1u64 << ((iqa & regs::IQA_QS_MASK) + 7);
        let head = (env.read64(regs::IQH)? >> regs::IQ_INDEX_SHIFT) % entries;
        let mut tail = (env.read64(regs::IQT)? >> regs::IQ_INDEX_SHIFT) % entries;
        for q in &descs {
            let next = (tail + 1) % entries;
            if next == head {
                bail!("the invalidation queue is full (IQH index {head})");
            }
            let at = base + tail * 32;
            for (i, w) in q.iter().enumerate() {
                self.mem()?
                    .write64(at + 8 * i as u64, *w)
                    .map_err(|e| input(format!("writing the descriptor at {at:#x}: {e}")))?;
            }
            tail = next;
        }
        self.env()
            .write64(regs::IQT, tail << regs::IQ_INDEX_SHIFT)?;
        if let Sys::Kernel(k) = &mut self.sys {
            k.ops_mut()
                .hw_mut()
                .resync_tail()
                .map_err(|e| anyhow!("re-reading the driver's queue tail: {e}"))?;
        }
        let Some((addr, seq)) = status else {
            return Ok(());
        };
        let word = addr & !7;
        let shift = if addr & 4 != 0 { 32 } else { 0 };
        let start = self.env().dut.cycle();
        let mut next_check = 64;
        loop {
            self.env().tick();
            let landed = self
                .mem()?
                .read64(word)
                .is_ok_and(|v| (v >> shift) as u32 == seq);
            if landed {
                return Ok(());
            }
            let waited = self.env().dut.cycle() - start;
            if waited >= next_check {
                next_check = waited + 64;
                if self.env().read32(regs::FSTS)? & regs::FSTS_IQE != 0 {
                    return Ok(());
                }
            }
            if waited > SUBMIT_TIMEOUT {
                bail!(
                    "the wait descriptor's status ({seq:#x} at {addr:#x}) did not land within \
                     {SUBMIT_TIMEOUT} cycles and FSTS.IQE is clear"
                );
            }
        }
    }

    /// After a failing step (with `keep_going`): lets everything in flight leave, clears
    /// the fault records and the overflow bit, and forgets the previous translation.
    pub(super) fn resync(&mut self) {
        let env = self.env();
        let _ = exchange::drain(env, 20_000).context("draining the unit");
        let _ = take_fault_records(env);
        let _ = env.write32(regs::FSTS, regs::FSTS_PFO);
        self.previous = None;
    }
}
