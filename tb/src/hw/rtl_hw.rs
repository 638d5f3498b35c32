//! The RTL as the model driver's hardware: [`iommu_model::driver::IommuHw`] implemented
//! through the DUT's registers and memory port.
//!
//! Memory is the model's [`Mem`], served to the DUT by the memory agent; the driver writes
//! tables into it exactly as it does for the golden hardware. Register programming goes over
//! the CSR bus (RTADDR + SRTP, TE, IQA + QIE), and `submit` writes 256-bit descriptors into
//! the invalidation queue in memory, moves IQT, and runs the clock until the wait
//! descriptor's status write lands (or FSTS.IQE says the queue stopped). FSTS.ITE (a
//! device-TLB invalidation timed out) is handled as Linux's `qi_check_fault()` handles it:
//! cleared, and reported as [`HwError::InvalidationTimeout`] when the unit aborted the
//! batch's wait, for the driver to resubmit the batch (docs/contract.md 6.5).

use iommu_model::driver::{HwError, IommuHw};
use iommu_model::mem::{Mem, PhysMem};
use iommu_model::qi::Descriptor;

use crate::check::stream::Collector;
use crate::env::mem::{MemAgent, MemTiming};
use crate::env::Env;
use iommu_model::regs;

/// Device traffic that runs while the driver waits for its invalidations, as DMA does
/// while Linux spins in `qi_submit_sync`: the requests stream into the unit while it
/// fetches and executes the queue, and everything that leaves is logged for the judge
/// ([`Collector`]).
pub type Background = Collector;

/// Cycles a queued batch may take before `submit` reports a hang.
pub const SUBMIT_TIMEOUT: u64 = 20_000;

/// Invalidation queue size: QS = 0, one 4 KiB page of 128 256-bit descriptors.
const IQ_ENTRIES: u64 = 128;

#[derive(Debug)]
pub struct RtlHw {
    pub env: Env,
    iq_base: u64,
    iq_tail: u64,
    /// Descriptors submitted so far (all batches), for reports.
    pub submitted: Vec<Descriptor>,
    /// Traffic to send while a submitted batch is in flight.
    pub background: Option<Background>,
    /// Status word and sequence number of the waits `submit_and_wait` appends.
    own_status: Option<u64>,
    own_seq: u32,
    /// Times `submit` found FSTS.ITE set (a device-TLB invalidation timed out) and cleared
    /// it.
    pub ite_count: u64,
}

fn csr_err(e: impl std::fmt::Display) -> HwError {
    HwError::Queue(format!("register access: {e}"))
}

impl RtlHw {
    /// A reset DUT whose memory port is served from `mem`, with queued invalidation set up
    /// the way Linux does it (`dmar_enable_qi`: IQT = 0, IQA = base | DW | QS, then QIE).
    pub fn new(seed: u64, mem: Mem, timing: MemTiming) -> Result<Self, HwError> {
        Self::from_env(Env::new(seed), mem, timing)
    }

    /// The same on an existing environment (e.g. one whose DUT is being traced).
    pub fn from_env(mut env: Env, mut mem: Mem, timing: MemTiming) -> Result<Self, HwError> {
        let iq_base = mem.alloc_page()?;
        let seed = env.dut.seed();
        env.mem = Some(MemAgent::new(mem, timing, seed));
        env.write64(regs::IQT, 0).map_err(csr_err)?;
        env.write64(regs::IQA, iq_base | (1 << 11))
            .map_err(csr_err)?;
        let sts = env.read32(regs::GSTS).map_err(csr_err)? & (regs::GCMD_TE | regs::GCMD_QIE);
        env.write32(regs::GCMD, sts | regs::GCMD_QIE)
            .map_err(csr_err)?;
        env.poll32(regs::GSTS, regs::GCMD_QIE, regs::GCMD_QIE, 1000)
            .map_err(csr_err)?;
        Ok(Self {
            env,
            iq_base,
            iq_tail: 0,
            submitted: Vec::new(),
            background: None,
            own_status: None,
            own_seq: 0,
            ite_count: 0,
        })
    }

    pub fn mem_agent(&mut self) -> &mut MemAgent {
        match &mut self.env.mem {
            Some(m) => m,
            None => unreachable!("RtlHw always has a memory agent"),
        }
    }

    fn set_gcmd_bit(&mut self, bit: u32) -> Result<(), HwError> {
        let sts = self.env.read32(regs::GSTS).map_err(csr_err)? & (regs::GCMD_TE | regs::GCMD_QIE);
        self.env.write32(regs::GCMD, sts | bit).map_err(csr_err)?;
        self.env
            .poll32(regs::GSTS, bit, bit, 1000)
            .map_err(|e| HwError::Queue(e.to_string()))?;
        Ok(())
    }

    /// Queues descriptors without waiting (for tests of the queue itself).
    pub fn queue(&mut self, descs: &[[u64; 4]]) -> Result<(), HwError> {
        let head = self.env.read64(regs::IQH).map_err(csr_err)? >> 5;
        for qw in descs {
            let next = (self.iq_tail + 1) % IQ_ENTRIES;
            if next == head {
                return Err(HwError::Queue("invalidation queue full".into()));
            }
            let at = self.iq_base + self.iq_tail * 32;
            for (i, w) in qw.iter().enumerate() {
                self.mem_agent().mem.write64(at + 8 * i as u64, *w)?;
            }
            self.iq_tail = next;
        }
        self.env
            .write64(regs::IQT, self.iq_tail << 5)
            .map_err(csr_err)?;
        Ok(())
    }

    /// Submits `descs` followed by a wait descriptor of its own (status write to a page this
    /// `RtlHw` keeps) and waits for it, as `qi_submit_sync` does.
    pub fn submit_and_wait(&mut self, descs: &[Descriptor]) -> Result<(), HwError> {
        let status = match self.own_status {
            Some(s) => s,
            None => {
                let s = self.mem_agent().mem.alloc_page()?;
                self.own_status = Some(s);
                s
            }
        };
        self.own_seq = self.own_seq.wrapping_add(1);
        let mut batch = descs.to_vec();
        batch.push(Descriptor::Wait {
            intr: false,
            sw: true,
            fence: true,
            status_data: self.own_seq,
            status_addr: status,
        });
        self.submit(&batch)
    }

    /// Whether the status word at `word` holds `data` in the half `shift` selects.
    fn status_landed(&mut self, word: u64, shift: u32, data: u32) -> bool {
        self.mem_agent()
            .mem
            .read64(word)
            .is_ok_and(|v| (v >> shift) as u32 == data)
    }

    /// Re-reads the tail after software (a test) moved the queue by other means.
    pub fn resync_tail(&mut self) -> Result<(), HwError> {
        self.iq_tail = (self.env.read64(regs::IQT).map_err(csr_err)? >> 5) % IQ_ENTRIES;
        Ok(())
    }
}

impl IommuHw for RtlHw {
    fn mem(&mut self) -> &mut Mem {
        &mut self.mem_agent().mem
    }

    fn read_cap(&mut self) -> u64 {
        self.env.read64(regs::CAP).unwrap_or(0)
    }

    fn read_ecap(&mut self) -> u64 {
        self.env.read64(regs::ECAP).unwrap_or(0)
    }

    /// rtl/iommu_qi.sv executes types 3 and 8 (iommu_ats_inv sends the Invalidate
    /// Requests; the environment's [`crate::env::AtsDevice`] answers them).
    fn executes_dev_tlb_invalidations(&self) -> bool {
        true
    }

    fn set_root_table(&mut self, rtaddr: u64) -> Result<(), HwError> {
        self.env.write64(regs::RTADDR, rtaddr).map_err(csr_err)?;
        self.set_gcmd_bit(regs::GCMD_SRTP)
    }

    fn enable_translation(&mut self) -> Result<(), HwError> {
        self.set_gcmd_bit(regs::GCMD_TE)
    }

    fn submit(&mut self, descs: &[Descriptor]) -> Result<(), HwError> {
        let Some(Descriptor::Wait {
            sw: true,
            status_data,
            status_addr,
            ..
        }) = descs.last().copied()
        else {
            return Err(HwError::Queue(
                "a batch must end with a wait descriptor that writes status".into(),
            ));
        };
        let encoded: Vec<[u64; 4]> = descs.iter().map(Descriptor::encode).collect();
        // The wait's slot: its fetch starts the wait, after which the unit takes no request
        // until the translations accepted before it have left (contract section 4, rule 5).
        let wait_slot = (self.iq_tail + encoded.len() as u64 - 1) % IQ_ENTRIES;
        let wait_at = self.iq_base + wait_slot * 32;
        let agent = self.mem_agent();
        agent.watch = Some(wait_at);
        agent.watched_at = None;
        self.queue(&encoded)?;
        self.submitted.extend_from_slice(descs);
        let word = status_addr & !7;
        let shift = if status_addr & 4 != 0 { 32 } else { 0 };
        let start = self.env.dut.cycle();
        let mut next_check = 256;
        loop {
            match &mut self.background {
                Some(bg) => bg.step(&mut self.env),
                None => {
                    self.env.tick();
                }
            }
            if let Some(e) = &self.mem_agent().protocol_error {
                return Err(HwError::Queue(format!("memory port protocol: {e}")));
            }
            if self.status_landed(word, shift, status_data) {
                let now = self.env.dut.cycle();
                let agent = self.mem_agent();
                agent.watch = None;
                let fetched = agent.watched_at.take();
                if let (Some(bg), Some(f)) = (&mut self.background, fetched) {
                    bg.wait_completed(f, now);
                }
                return Ok(());
            }
            let waited = self.env.dut.cycle() - start;
            if waited >= next_check {
                next_check = waited + 256;
                let f = self.env.read32(regs::FSTS).map_err(csr_err)?;
                if f & regs::FSTS_ITE != 0 {
                    // qi_check_fault(): clear ITE (RW1C). While it was set the unit fetched
                    // nothing and aborted a wait it had fetched; cleared, it cannot abort
                    // one any more. IQH at the tail with no status written means this
                    // batch's wait was the one aborted; otherwise the unit goes on with
                    // the batch from IQH and the wait completes (the dropped ITags no
                    // longer hold it back).
                    self.env
                        .write32(regs::FSTS, regs::FSTS_ITE)
                        .map_err(csr_err)?;
                    self.ite_count += 1;
                    let iqh = self.env.read64(regs::IQH).map_err(csr_err)? >> 5;
                    if iqh == self.iq_tail && !self.status_landed(word, shift, status_data) {
                        self.mem_agent().watch = None;
                        return Err(HwError::InvalidationTimeout(format!(
                            "an Invalidate Request was not answered in time ({} sent, {} \
                             answers pending); IQH moved past the wait at descriptor {}",
                            self.env.ats.requests.len(),
                            self.env.ats.pending(),
                            wait_slot
                        )));
                    }
                }
                if f & regs::FSTS_IQE != 0 {
                    let iqer = self.env.read64(regs::IQER).map_err(csr_err)?;
                    let iqh = self.env.read64(regs::IQH).map_err(csr_err)?;
                    return Err(HwError::Queue(format!(
                        "FSTS.IQE set (IQER.IQEI {}), IQH at descriptor {}",
                        iqer & 0xf,
                        iqh >> 5
                    )));
                }
            }
            if waited > SUBMIT_TIMEOUT {
                return Err(HwError::Timeout);
            }
        }
    }
}
