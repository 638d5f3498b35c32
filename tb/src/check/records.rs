//! Draining the unit's fault records in the order it wrote them.
//!
//! Records fill the FRCD registers in ring order; FSTS.FRI names the oldest record pending
//! when PPF was set (docs/contract.md section 2.4). A drain reads FSTS, then the records
//! from the oldest pending slot on while F is set, clearing each, and reads FSTS again:
//! nothing may be left pending (a record out of ring order), and PFO must be clear (a record
//! was lost to overflow). The oldest pending slot is FRI on a reader's first drain; after
//! that the reader continues the ring where it stopped (FRI is not moved by clearing, so
//! once records are cleared while others are pending it names an already-cleared slot).

use anyhow::{bail, Result};
use iommu_model::fault::FaultRecord;
use iommu_model::regs::{self, Caps};

use crate::env::Env;

#[derive(Clone, Debug, Default)]
pub struct RecordReader {
    /// (offset of FRCD0, number of records), from CAP on first use.
    layout: Option<(u64, u32)>,
    /// The slot after the last record drained.
    next: Option<u32>,
}

impl RecordReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// (offset of FRCD0, number of records, slot of the next record), once a drain has
    /// found out where the next record goes.
    pub fn next(&self) -> Option<(u64, u32, u32)> {
        match (self.layout, self.next) {
            (Some((base, n)), Some(slot)) => Some((base, n, slot)),
            _ => None,
        }
    }

    /// The unit's fault recording registers (CAP.NFR + 1), read from CAP on first use: at
    /// most this many requests that may record a fault can be in flight between two drains
    /// without the records overflowing.
    pub fn slots(&mut self, env: &mut Env) -> Result<usize> {
        Ok(self.layout(env)?.1 as usize)
    }

    /// A record was drained from `slot` by other means ([`crate::check::stream`]'s poller).
    pub fn drained(&mut self, slot: u32) {
        if let Some((_, n)) = self.layout {
            self.next = Some((slot + 1) % n);
        }
    }

    fn layout(&mut self, env: &mut Env) -> Result<(u64, u32)> {
        if let Some(l) = self.layout {
            return Ok(l);
        }
        let cap = Caps::new(env.read64(regs::CAP)?, 0);
        let l = (cap.fault_record(0), cap.num_fault_records());
        self.layout = Some(l);
        Ok(l)
    }

    /// Reads and clears every pending record, oldest first.
    pub fn drain(&mut self, env: &mut Env) -> Result<Vec<FaultRecord>> {
        let (base, n) = self.layout(env)?;
        let fsts = env.read32(regs::FSTS)?;
        if fsts & regs::FSTS_PFO != 0 {
            bail!("FSTS.PFO is set: a fault record was lost to overflow (FSTS {fsts:#010x})");
        }
        let mut recs = Vec::new();
        if fsts & regs::FSTS_PPF == 0 {
            return Ok(recs);
        }
        let fri = (fsts & regs::FSTS_FRI_MASK) >> regs::FSTS_FRI_SHIFT;
        if fri >= n {
            bail!("FSTS.FRI = {fri}, beyond the {n} fault recording registers");
        }
        // FRI names the oldest record pending when PPF was last set; once this reader has
        // cleared records itself it knows better where the oldest pending one is (FRI is not
        // updated by clearing).
        let first = self.next.unwrap_or(fri);
        let mut slot = first;
        for _ in 0..n {
            let off = base + 16 * u64::from(slot);
            let hi = env.read64(off + 8)?;
            if hi & regs::frcd::QW1_F == 0 {
                break;
            }
            let q = [env.read64(off)?, hi];
            let stray = FaultRecord::stray_bits(q);
            if stray != [0, 0] {
                bail!(
                    "fault recording register {slot} holds bits no record carries: QW0 {:#x}, \
                     QW1 {:#x} (record {q:x?})",
                    stray[0],
                    stray[1]
                );
            }
            match FaultRecord::decode(q) {
                Some(r) => recs.push(r),
                None => bail!("fault recording register {slot} does not decode: {q:x?}"),
            }
            env.write64(off + 8, regs::frcd::QW1_F)?;
            slot = (slot + 1) % n;
        }
        self.next = Some(slot);
        let after = env.read32(regs::FSTS)?;
        if after & (regs::FSTS_PPF | regs::FSTS_PFO) != 0 {
            bail!(
                "after draining {} records from slot {first} in ring order, FSTS = {after:#010x} \
                 still reports pending records (a record outside ring order) or an overflow",
                recs.len()
            );
        }
        Ok(recs)
    }
}
