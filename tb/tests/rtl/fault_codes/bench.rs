//! The fault-code bench: a system the kernel and driver models programmed, with helpers to
//! find, damage and repair its structures and to judge requests; the tally of reasons seen.

use super::*;

/// IOVA of the read-write mapping every paging bench has, and its physical address.
pub(super) const IOVA: u64 = 0x10_0000;
pub(super) const PA: u64 = 0x8_0000_0000;
/// A read-only and a write-only 4 KiB mapping.
pub(super) const IOVA_RO: u64 = 0x30_0000;
pub(super) const IOVA_WO: u64 = 0x30_1000;
/// A 2 MiB and a 1 GiB superpage.
pub(super) const IOVA_2M: u64 = 0x4000_0000;
pub(super) const IOVA_1G: u64 = 0x80_0000_0000;

/// A second function without the PASID capability (context PASIDE=0).
pub(super) const DEV_NO_PASID: Rid = 0x0020;
/// A third function with 64 PASIDs: the smallest directory Linux allocates (512 entries).
pub(super) const DEV_SMALL_DIR: Rid = 0x0028;

/// Fault reasons the DUT produced, recorded and blocked-but-not-recorded (FPD).
#[derive(Default, Debug)]
pub(super) struct Tally {
    pub(super) recorded: BTreeSet<FaultReason>,
    pub(super) suppressed: BTreeSet<FaultReason>,
    /// The test's waveforms: every bench's DUT is traced into the test's run.
    pub(super) waves: Waves,
}

impl Tally {
    pub(super) fn new(tb: &Env) -> Self {
        Self {
            waves: tb.waves.clone(),
            ..Self::default()
        }
    }

    pub(super) fn merge(&mut self, o: Tally) {
        self.recorded.extend(o.recorded);
        self.suppressed.extend(o.suppressed);
    }
}

/// How a request reaches the unit: requester ID and PASID prefix.
#[derive(Clone, Copy, Debug)]
pub(super) struct Via {
    pub(super) rid: Rid,
    pub(super) pasid: Option<u32>,
    pub(super) pmr: bool,
    pub(super) er: bool,
    /// Address Type: untranslated, or translated (AT = 10b, blocked with 0x44 by DTE = 0).
    pub(super) at: At,
}

impl Via {
    pub(super) fn rid(rid: Rid) -> Self {
        Self {
            rid,
            pasid: None,
            pmr: false,
            er: false,
            at: At::Untranslated,
        }
    }
    pub(super) fn pasid(rid: Rid, pasid: u32) -> Self {
        Self {
            pasid: Some(pasid),
            ..Self::rid(rid)
        }
    }
    pub(super) fn pmr(self) -> Self {
        Self { pmr: true, ..self }
    }
    pub(super) fn er(self) -> Self {
        Self { er: true, ..self }
    }
    pub(super) fn translated(self) -> Self {
        Self {
            at: At::Translated,
            ..self
        }
    }
    pub(super) fn req(self, write: bool, addr: u64, tag: u16) -> MemRequest {
        let mut r = if write {
            MemRequest::write(self.rid, 0, addr, 2)
        } else {
            MemRequest::read(self.rid, tag, addr, 4)
        };
        r.at = self.at;
        match self.pasid {
            Some(p) => r.with_pasid(p, self.pmr, self.er),
            None => r,
        }
    }
}

/// A system programmed by the kernel and driver models, with helpers to damage and repair
/// its structures and to judge requests.
pub(super) struct Bench {
    pub(super) k: RtlKernel,
    /// Register state the golden walker assumes (the driver's unless a test reprograms
    /// RTADDR).
    pub(super) hw: Option<HwState>,
    pub(super) tag: u16,
    pub(super) tally: Tally,
}

impl Bench {
    pub(super) fn new(waves: &Waves, seed: u64, timing: MemTiming) -> Result<Self> {
        let k = system_on(
            &mut Env::with_waves(seed, waves.clone()),
            timing,
            DriverQuirks::default(),
        )?;
        Ok(Self {
            k,
            hw: None,
            tag: 0,
            tally: Tally::default(),
        })
    }

    /// A bench whose DEV has a DMA domain of `stage` at its RID and at a global PASID, with
    /// a read-write mapping at [`IOVA`]. Returns the domain and the PASID.
    pub(super) fn paging(
        waves: &Waves,
        seed: u64,
        timing: MemTiming,
        stage: Stage,
    ) -> Result<(Self, DomainId, u32)> {
        let mut b = Self::new(waves, seed, timing)?;
        let (d, pasid) = dma_domain_with_pasid(&mut b.k, stage)?;
        map(&mut b.k, d, IOVA, PA, 0x4000, true, true)?;
        Ok((b, d, pasid))
    }

    /// A bench whose DEV is in the identity domain at its RID and at a global PASID.
    pub(super) fn identity(waves: &Waves, seed: u64, timing: MemTiming) -> Result<(Self, u32)> {
        let mut b = Self::new(waves, seed, timing)?;
        let e = |e| anyhow!("{e:?}");
        let d = b.k.domain_alloc(DomainType::Identity).map_err(e)?;
        b.k.attach_device(DEV, d).map_err(e)?;
        let pasid = b.k.enable_dma_pasid(DEV).map_err(e)?;
        Ok((b, pasid))
    }

    pub(super) fn mem(&mut self) -> &mut Mem {
        &mut self.k.ops_mut().hw_mut().mem_agent().mem
    }

    pub(super) fn rd(&mut self, pa: u64) -> Result<u64> {
        self.mem()
            .read64(pa)
            .map_err(|e| anyhow!("read {pa:#x}: {e}"))
    }

    pub(super) fn wr(&mut self, pa: u64, v: u64) -> Result<()> {
        self.mem()
            .write64(pa, v)
            .map_err(|e| anyhow!("write {pa:#x}: {e}"))
    }

    /// Global context-cache, PASID-cache and IOTLB invalidation through the DUT's queue,
    /// waited for: the DUT forgets every cached structure and translation.
    pub(super) fn flush(&mut self) -> Result<()> {
        self.k
            .ops_mut()
            .hw_mut()
            .submit_and_wait(&global_invalidations())
            .map_err(|e| anyhow!("global invalidation: {e}"))
    }

    /// Sets `set` and clears `clear` in the word at `pa`, then invalidates. Returns the old
    /// value for [`Bench::restore`].
    pub(super) fn patch(&mut self, pa: u64, set: u64, clear: u64) -> Result<u64> {
        let old = self.rd(pa)?;
        self.wr(pa, (old & !clear) | set)?;
        self.flush()?;
        Ok(old)
    }

    pub(super) fn restore(&mut self, pa: u64, old: u64) -> Result<()> {
        self.wr(pa, old)?;
        self.flush()
    }

    /// Makes reads of `[start, start + len)` fail, then invalidates.
    pub(super) fn poison(&mut self, start: u64, len: u64) -> Result<()> {
        self.mem().add_error_range(start, start + len);
        self.flush()
    }

    pub(super) fn heal(&mut self) -> Result<()> {
        self.mem().clear_error_ranges();
        self.flush()
    }

    /// Writes RTADDR and latches it with SRTP, as `iommu_set_root_entry` does, then
    /// invalidates (CAP.ESRTPS is clear).
    pub(super) fn set_rtaddr(&mut self, rtaddr: u64) -> Result<()> {
        let e = env(&mut self.k);
        e.write64(regs::RTADDR, rtaddr)?;
        let sts = e.read32(regs::GSTS)? & (regs::GCMD_TE | regs::GCMD_QIE);
        e.write32(regs::GCMD, sts | regs::GCMD_SRTP)?;
        e.poll32(regs::GSTS, regs::GCMD_SRTP, regs::GCMD_SRTP, 1000)?;
        self.hw = Some(HwState { te: true, rtaddr });
        self.flush()
    }

    // --- Where the structures are: found in memory from RTADDR down. ---

    pub(super) fn loc(&mut self) -> Locator<'_, Mem> {
        let rtaddr = self
            .hw
            .map_or_else(|| hw_state(&self.k).rtaddr, |h| h.rtaddr);
        Locator::new(&*self.mem(), rtaddr)
    }

    pub(super) fn root_entry(&mut self, rid: Rid) -> u64 {
        self.loc().root_half(rid)
    }

    pub(super) fn context_entry(&mut self, rid: Rid) -> Result<u64> {
        Ok(self.loc().context_entry(rid)?)
    }

    /// The PASID a request of `via` selects: its prefix, else the context's RID_PASID.
    pub(super) fn pasid_of(&mut self, via: Via) -> Result<u32> {
        match via.pasid {
            Some(p) => Ok(p),
            None => Ok(self.loc().rid_pasid(via.rid)?),
        }
    }

    pub(super) fn pasid_dir_entry(&mut self, via: Via) -> Result<u64> {
        let pasid = self.pasid_of(via)?;
        Ok(self.loc().pasid_dir_entry(via.rid, pasid)?)
    }

    pub(super) fn pasid_entry(&mut self, via: Via) -> Result<u64> {
        let pasid = self.pasid_of(via)?;
        let e = self.loc().pasid_entry(via.rid, pasid)?;
        if let Some(drv) = self.k.ops().pasid_entry_addr(via.rid, pasid) {
            ensure!(
                drv == e,
                "the driver puts PASID {pasid:#x} at {drv:#x}, memory says {e:#x}"
            );
        }
        Ok(e)
    }

    /// The paging entry at `level` (4 = top) that maps `addr` for `via`.
    pub(super) fn pte(&mut self, via: Via, addr: u64, level: u32) -> Result<u64> {
        let pasid = self.pasid_of(via)?;
        Ok(self.loc().pte(via.rid, pasid, addr, level)?)
    }

    // --- Judging. ---

    pub(super) fn send(&mut self, via: Via, write: bool, addr: u64) -> Result<Judged> {
        self.tag = (self.tag + 1) & 0xFF;
        let req = via.req(write, addr, self.tag);
        let hw = self.hw.unwrap_or_else(|| hw_state(&self.k));
        judge(env(&mut self.k), &hw, &req)
    }

    /// One request that must fault with `reason`, recorded or (FPD) not.
    pub(super) fn fault1(
        &mut self,
        via: Via,
        write: bool,
        addr: u64,
        reason: FaultReason,
        recorded: bool,
    ) -> Result<()> {
        let what = || {
            format!(
                "{} {via:?} addr {addr:#x}, intended {reason} ({})",
                if write { "write" } else { "read" },
                if recorded {
                    "recorded"
                } else {
                    "FPD: not recorded"
                }
            )
        };
        let j = self.send(via, write, addr).with_context(what)?;
        ensure!(
            j.walk.outcome == Outcome::Fault(reason),
            "{}: the golden walker says {}",
            what(),
            j.walk.outcome
        );
        ensure!(
            j.walk.record == recorded,
            "{}: the golden walker says {}",
            what(),
            if j.walk.record {
                "recorded"
            } else {
                "not recorded"
            }
        );
        match (write, j.egress.as_slice()) {
            (true, []) => {}
            (false, [Egress::Cpl(h)]) if (h[1] >> 13) & 7 == 1 => {}
            (_, got) => bail!("{}: the DUT answered {got:?}", what()),
        }
        if recorded {
            self.tally.recorded.insert(reason);
        } else {
            self.tally.suppressed.insert(reason);
        }
        Ok(())
    }

    /// A read and a write that must both fault with `reason`, recorded.
    pub(super) fn fault(&mut self, via: Via, addr: u64, reason: FaultReason) -> Result<()> {
        self.fault1(via, false, addr, reason, true)?;
        self.fault1(via, true, addr, reason, true)
    }

    /// A read and a write that must both be blocked with `reason` and not recorded.
    pub(super) fn quiet(&mut self, via: Via, addr: u64, reason: FaultReason) -> Result<()> {
        self.fault1(via, false, addr, reason, false)?;
        self.fault1(via, true, addr, reason, false)
    }

    /// One request that must translate.
    pub(super) fn ok1(&mut self, via: Via, write: bool, addr: u64) -> Result<()> {
        let j = self.send(via, write, addr)?;
        ensure!(
            matches!(j.walk.outcome, Outcome::Translated(_)),
            "{} {via:?} addr {addr:#x} should translate; the golden walker says {}",
            if write { "write" } else { "read" },
            j.walk.outcome
        );
        Ok(())
    }

    /// A read and a write that must both translate.
    pub(super) fn ok(&mut self, via: Via, addr: u64) -> Result<()> {
        self.ok1(via, false, addr)?;
        self.ok1(via, true, addr)
    }
}

pub(super) type Family = fn(u64, MemTiming, &mut Tally) -> Result<()>;

/// The RID and the DMA PASID of DEV: requests without and with a PASID prefix.
pub(super) fn vias(pasid: u32) -> [Via; 2] {
    [Via::rid(DEV), Via::pasid(DEV, pasid)]
}
