//! Running a parsed vector on the DUT.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, bail, ensure, Context, Result};
use iommu_model::driver::{Driver, DriverQuirks};
use iommu_model::golden::HwState;
use iommu_model::kernel::{
    DeviceDesc, DomainId, DomainType, Errno, FpdAt, Kernel, KernelConfig, MmId, MmProt, Rid, Stage,
};
use iommu_model::locate;
use iommu_model::mem::{Mem, PhysMem, PAGE_SIZE};

use crate::dut::waves;
use crate::env::harness;
use crate::env::mem::{MemAgent, MemTiming};
use crate::env::Env;
use crate::hw::rtl_hw::RtlHw;
use crate::hw::system::{flush_all, RtlKernel};
use crate::tlp::MemRequest;
use iommu_model::regs;

use super::*;

// ---------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------

/// How vectors run.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Driver bug switches (kernel-level vectors).
    pub quirks: DriverQuirks,
    pub timing: MemTiming,
    /// Go on after a failing step and report every failing step (the DUT is drained and
    /// its fault records cleared after a failing TLP; judging goes on from there).
    pub keep_going: bool,
}

/// What a passing vector exercised.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VectorReport {
    pub name: String,
    pub file: PathBuf,
    pub steps: usize,
    pub tlps: usize,
    pub translated: usize,
    /// Fault reasons the DUT produced (recorded or not).
    pub faults: BTreeSet<u8>,
    /// TLPs judged by the oracle alone (inside an invalidation window).
    pub in_window: usize,
    /// TLPs sent while a `during:` call executed (judged by the oracle under concurrency).
    pub during: usize,
    pub cycles: u64,
    /// The vector has `expect_failure:` and the run failed with it: the failure message.
    pub caught: Option<String>,
    /// One line per TLP: the step, its `file:line:column`, the request and its outcome.
    pub log: Vec<String>,
}

/// The steps that failed in a run with [`RunOptions::keep_going`], each message beginning
/// with the step's `file:line:column`.
#[derive(Debug, thiserror::Error)]
#[error("{} failing step(s):\n{}", .0.len(), .0.join("\n"))]
pub struct StepFailures(pub Vec<String>);

/// A mistake in a vector rather than a failure of the DUT: a malformed file, a pinned
/// outcome the oracle forbids, a TLP nothing can judge. [`is_input_error`] finds it in an
/// error's chain; the CLI exits 2 for it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// Whether `e` is (or was caused by) an input error: the vector, not the DUT, is wrong.
pub fn is_input_error(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.is::<InputError>() || c.is::<VectorError>())
}

/// An [`InputError`] as an `anyhow::Error`.
pub(super) fn input(msg: impl Into<String>) -> anyhow::Error {
    InputError(msg.into()).into()
}

/// A value bound to a name while running.
#[derive(Clone, Copy, Debug)]
pub(super) enum Val {
    Device(Rid),
    Domain(DomainId),
    Pasid(u32),
    Mm(MmId),
    Iova(u64),
}

/// The DUT under a vector: with the kernel and driver, or bare.
pub(super) enum Sys {
    Kernel(Box<RtlKernel>),
    Bare(Box<Env>),
}

pub(super) struct Runner {
    pub(super) sys: Sys,
    vals: BTreeMap<String, Val>,
    pub(super) hw: HwState,
    /// Hardware was changed behind the kernel's back: the oracle no longer applies.
    pub(super) tainted: bool,
    pub(super) previous: Option<judging::Previous>,
    pub(super) rep: VectorReport,
    tag: u16,
    /// The step running (1-based) and its keyword, for the log.
    pub(super) step_no: usize,
    pub(super) keyword: &'static str,
    file: PathBuf,
    source: String,
    /// The status page of `descriptor` waits, and the sequence number of the last.
    pub(super) status_page: Option<u64>,
    pub(super) status_seq: u32,
    /// FPD bits the vector's `fpd` steps left set (for the note on oracle-judged faults).
    pub(super) fpd_on: BTreeSet<(Rid, FpdAt)>,
}

pub(super) fn errno_msg(
    call: &str,
    got: Result<(), Errno>,
    want: Option<ErrnoName>,
) -> Result<bool> {
    match (got, want) {
        (Ok(()), None) => Ok(true),
        (Err(e), Some(w)) if e == w.0 => Ok(false),
        (Ok(()), Some(w)) => bail!("{call} succeeded; expected {}", w.0),
        (Err(e), Some(w)) => bail!("{call} returned {e}; expected {}", w.0),
        (Err(e), None) => bail!("{call} returned {e} ({})", e.to_kernel()),
    }
}

impl Runner {
    pub(super) fn k(&mut self) -> Result<&mut RtlKernel> {
        match &mut self.sys {
            Sys::Kernel(k) => Ok(k),
            Sys::Bare(_) => bail!("this step needs the kernel (declare `devices:`)"),
        }
    }

    pub(super) fn env(&mut self) -> &mut Env {
        match &mut self.sys {
            Sys::Kernel(k) => &mut k.ops_mut().hw_mut().env,
            Sys::Bare(e) => e,
        }
    }

    /// `file:line:column` of the node at `path`.
    pub(super) fn position(&self, path: &[Seg]) -> String {
        let (l, c) = locate(&self.source, path);
        format!("{}:{l}:{c}", self.file.display())
    }

    pub(super) fn mem(&mut self) -> Result<&mut Mem> {
        Ok(&mut self.env().mem.as_mut().context("no memory agent")?.mem)
    }

    fn rd(&mut self, pa: u64) -> Result<u64> {
        self.mem()?
            .read64(pa)
            .map_err(|e| input(format!("reading {pa:#x}: {e}")))
    }

    fn get(&self, name: &str) -> Result<Val> {
        self.vals.get(name).copied().ok_or_else(|| {
            input(format!(
                "`{name}` has no value: the call that binds it did not return one"
            ))
        })
    }

    fn dev(&self, n: &Name<DEVICE>) -> Result<Rid> {
        match self.get(&n.0)? {
            Val::Device(r) => Ok(r),
            v => bail!("`{}` is {v:?}, not a device", n.0),
        }
    }

    pub(super) fn devref(&self, d: &DevRef) -> Result<Rid> {
        match d {
            DevRef::Rid(r) => Ok(*r),
            DevRef::Name(n) => self.dev(&Name(n.clone())),
        }
    }

    fn domain(&self, n: &Name<DOMAIN>) -> Result<DomainId> {
        match self.get(&n.0)? {
            Val::Domain(d) => Ok(d),
            v => bail!("`{}` is {v:?}, not a domain", n.0),
        }
    }

    fn mm(&self, n: &Name<MM>) -> Result<MmId> {
        match self.get(&n.0)? {
            Val::Mm(m) => Ok(m),
            v => bail!("`{}` is {v:?}, not an mm", n.0),
        }
    }

    pub(super) fn value<const K: u8>(&self, r: &ValRef<K>) -> Result<u64> {
        match r {
            ValRef::Num(n) => Ok(*n),
            ValRef::Name(n, off) => {
                let base = match self.get(n)? {
                    Val::Pasid(p) => u64::from(p),
                    Val::Iova(a) => a,
                    v => bail!("`{n}` is {v:?}, not a number"),
                };
                base.checked_add(*off)
                    .ok_or_else(|| anyhow!("`{n}+{off:#x}` overflows"))
            }
        }
    }

    pub(super) fn pasid(&self, r: &PasidRef) -> Result<u32> {
        let v = self.value(r)?;
        u32::try_from(v).map_err(|_| anyhow!("PASID {v:#x} does not fit in 32 bits"))
    }

    fn bind<const K: u8>(&mut self, n: &Option<NewName<K>>, v: Val) {
        if let Some(n) = n {
            self.vals.insert(n.0.clone(), v);
        }
    }

    fn check_returns<const K: u8>(&self, want: &Option<ValRef<K>>, got: u64) -> Result<()> {
        if let Some(w) = want {
            let w = self.value(w)?;
            ensure!(got == w, "returned {got:#x}; expected {w:#x}");
        }
        Ok(())
    }

    /// Runs one step (`at`: its path in the document, for `during:`).
    pub(super) fn step(&mut self, s: &Step, at: &[Seg]) -> Result<()> {
        match s {
            Step::DomainAlloc(Checked(a)) => {
                let ty = match a.ty {
                    DomType::Blocked => DomainType::Blocked,
                    DomType::Identity => DomainType::Identity,
                    DomType::Paging => DomainType::Paging(match a.stage {
                        Some(StageName::First) => Stage::First,
                        _ => Stage::Second,
                    }),
                    DomType::Sva => {
                        let mm = a.mm.as_ref().context("an sva domain needs `mm:`")?;
                        DomainType::Sva(self.mm(mm)?)
                    }
                };
                let r = self.k()?.domain_alloc(ty);
                if errno_msg("domain_alloc", r.map(|_| ()), a.errno)? {
                    let d = r?;
                    self.vals.insert(a.name.0.clone(), Val::Domain(d));
                }
            }
            Step::DomainFree(c) => {
                let d = self.domain(&c.domain)?;
                let r = self.k()?.domain_free(d);
                errno_msg("domain_free", r, c.errno)?;
            }
            Step::AttachDevice(c) => {
                let (dev, d) = (self.dev(&c.dev)?, self.domain(&c.domain)?);
                let r = self.k()?.attach_device(dev, d);
                errno_msg("attach_device", r, c.errno)?;
            }
            Step::AllocGlobalPasid(c) => {
                let dev = self.dev(&c.dev)?;
                let r = self.k()?.alloc_global_pasid(dev);
                if errno_msg("alloc_global_pasid", r.map(|_| ()), c.errno)? {
                    let p = r?;
                    self.check_returns(&c.returns, u64::from(p))?;
                    self.bind(&c.bind, Val::Pasid(p));
                }
            }
            Step::FreeGlobalPasid(c) => {
                let p = self.pasid(&c.pasid)?;
                let r = self.k()?.free_global_pasid(p);
                errno_msg("free_global_pasid", r, c.errno)?;
            }
            Step::AttachDevicePasid(c) => {
                let (dev, d, p) = (
                    self.dev(&c.dev)?,
                    self.domain(&c.domain)?,
                    self.pasid(&c.pasid)?,
                );
                let r = self.k()?.attach_device_pasid(d, dev, p);
                errno_msg("attach_device_pasid", r, c.errno)?;
            }
            Step::DetachDevicePasid(c) => {
                let (dev, d, p) = (
                    self.dev(&c.dev)?,
                    self.domain(&c.domain)?,
                    self.pasid(&c.pasid)?,
                );
                let r = self.k()?.detach_device_pasid(d, dev, p);
                errno_msg("detach_device_pasid", r, c.errno)?;
            }
            Step::EnableDmaPasid(c) => {
                let dev = self.dev(&c.dev)?;
                let r = self.k()?.enable_dma_pasid(dev);
                if errno_msg("enable_dma_pasid", r.map(|_| ()), c.errno)? {
                    let p = r?;
                    self.check_returns(&c.returns, u64::from(p))?;
                    self.bind(&c.bind, Val::Pasid(p));
                }
            }
            Step::DisableDmaPasid(c) => {
                let dev = self.dev(&c.dev)?;
                let r = self.k()?.disable_dma_pasid(dev);
                errno_msg("disable_dma_pasid", r, c.errno)?;
            }
            Step::Map(c) => {
                let d = self.domain(&c.domain)?;
                let r = self.k()?.map(d, c.iova.0, c.pa.0, c.size.0, c.prot.0);
                errno_msg("map", r, c.errno)?;
            }
            Step::Unmap(c) => {
                let d = self.domain(&c.domain)?;
                let k = self.k()?;
                let r = k.unmap(d, c.iova.0, c.size.0);
                let r = match r {
                    Ok(n) if c.sync => k.iotlb_sync(d).map(|()| n),
                    r => r,
                };
                if errno_msg("unmap", r.map(|_| ()), c.errno)? {
                    let n = r?;
                    if let Some(w) = c.unmapped {
                        ensure!(n == w.0, "unmapped {n:#x} bytes; expected {:#x}", w.0);
                    }
                }
            }
            Step::IotlbSync(c) => {
                let d = self.domain(&c.domain)?;
                let r = self.k()?.iotlb_sync(d);
                errno_msg("iotlb_sync", r, c.errno)?;
            }
            Step::DmaMapSingle(c) => {
                let dev = self.dev(&c.dev)?;
                let r = self.k()?.dma_map_single(dev, c.pa.0, c.size.0, c.dir.dir());
                if errno_msg("dma_map_single", r.map(|_| ()), c.errno)? {
                    let a = r?;
                    self.check_returns(&c.returns, a)?;
                    self.bind(&c.bind, Val::Iova(a));
                }
            }
            Step::DmaUnmapSingle(c) => {
                let dev = self.dev(&c.dev)?;
                let a = self.value(&c.addr)?;
                let r = self.k()?.dma_unmap_single(dev, a, c.size.0, c.dir.dir());
                errno_msg("dma_unmap_single", r, c.errno)?;
            }
            Step::MmCreate(c) => {
                let m = self
                    .k()?
                    .mm_create()
                    .map_err(|e| anyhow!("mm_create returned {e}"))?;
                self.vals.insert(c.bind.0.clone(), Val::Mm(m));
            }
            Step::MmDestroy(c) => {
                let m = self.mm(&c.mm)?;
                let r = self.k()?.mm_destroy(m);
                errno_msg("mm_destroy", r, c.errno)?;
            }
            Step::MmMap(c) => {
                let m = self.mm(&c.mm)?;
                let prot = MmProt {
                    write: c.prot.write,
                    exec: c.prot.exec,
                    user: c.user,
                };
                let r = self.k()?.mm_map(m, c.va.0, c.pa.0, c.size.0, prot);
                errno_msg("mm_map", r, c.errno)?;
            }
            Step::MmUnmap(c) => {
                let m = self.mm(&c.mm)?;
                let r = self.k()?.mm_unmap(m, c.va.0, c.size.0);
                if errno_msg("mm_unmap", r.map(|_| ()), c.errno)? {
                    let n = r?;
                    if let Some(w) = c.unmapped {
                        ensure!(n == w.0, "unmapped {n:#x} bytes; expected {:#x}", w.0);
                    }
                }
            }
            Step::SvaBind(c) => {
                let (dev, m) = (self.dev(&c.dev)?, self.mm(&c.mm)?);
                let r = self.k()?.sva_bind(dev, m);
                if errno_msg("sva_bind", r.map(|_| ()), c.errno)? {
                    let p = r?;
                    self.check_returns(&c.returns, u64::from(p))?;
                    self.bind(&c.bind, Val::Pasid(p));
                }
            }
            Step::SvaUnbind(c) => {
                let (dev, m) = (self.dev(&c.dev)?, self.mm(&c.mm)?);
                let r = self.k()?.sva_unbind(dev, m);
                errno_msg("sva_unbind", r, c.errno)?;
            }
            Step::Tlp(Checked(t)) => {
                let oracle = matches!(&self.sys, Sys::Kernel(k) if !k.windows().is_empty());
                let r = self.tlp(t, at);
                r.map_err(|e| if oracle { self.fpd_note(e) } else { e })?
            }
            Step::RawTlp(Checked(t)) => self.raw_tlp(t, at)?,
            Step::AtsTranslate(Checked(AtsTlp(t))) => self.ats_translate(t, at)?,
            Step::AtsTranslated(Checked(AtsTlp(t))) => self.ats_translated(t, at)?,
            Step::DeviceCache(Checked(c)) => self.device_cache(c)?,
            Step::AtsAnswers(Checked(a)) => self.ats_answers(a),
            Step::WriteMemory(Checked(w)) => self.write_memory(w)?,
            Step::Descriptor(Checked(d)) => self.descriptor(d)?,
            Step::ReadRegister(Checked(r)) => self.read_register(r)?,
            Step::Poke(Checked(p)) => {
                let at = self.locate(&p.at())?;
                let old = self.rd(at)?;
                let new = match p.value {
                    Some(v) => v.0,
                    None => (old & !p.clear.map_or(0, |c| c.0)) | p.set.map_or(0, |s| s.0),
                };
                self.mem()?
                    .write64(at, new)
                    .map_err(|e| input(format!("writing {at:#x}: {e}")))?;
                self.tainted = true;
                if p.flush {
                    self.flush()?;
                }
            }
            Step::Poison(Checked(p)) => {
                let at = self.locate(&p.at())?;
                let len = p.len.map_or(8, |l| l.0);
                self.mem()?.add_error_range(at, at.saturating_add(len));
                self.tainted = true;
                self.flush()?;
            }
            Step::Heal(_) => {
                if let Sys::Kernel(k) = &mut self.sys {
                    // The kernel forgets the errors of `mem_error` steps too, so the
                    // oracle does not fault what now reads healthy memory.
                    k.clear_memory_errors()
                        .map_err(|e| anyhow!("clearing the kernel's memory errors: {e}"))?;
                }
                self.mem()?.clear_error_ranges();
                self.flush()?;
            }
            Step::Invalidate(_) => self.flush()?,
            Step::SetRtaddr(c) => {
                ensure!(c.ttm.0 <= 3, "TTM is 2 bits");
                let root = self.k()?.ops().root_table();
                let rtaddr = root | (c.ttm.0 << 10);
                let env = self.env();
                env.write64(regs::RTADDR, rtaddr)?;
                let sts = env.read32(regs::GSTS)? & (regs::GCMD_TE | regs::GCMD_QIE);
                env.write32(regs::GCMD, sts | regs::GCMD_SRTP)?;
                env.poll32(regs::GSTS, regs::GCMD_SRTP, regs::GCMD_SRTP, 1000)?;
                self.hw.rtaddr = rtaddr;
                self.tainted = true;
                self.flush()?;
            }
            Step::WriteRegister(Checked(w)) => {
                self.write_register(w)?;
                if matches!(self.sys, Sys::Kernel(_)) {
                    self.tainted = true;
                }
            }
            Step::During(Checked(d)) => {
                let r = self.during(d, at);
                r.map_err(|e| self.fpd_note(e))?
            }
            Step::Fpd(Checked(c)) => self.fpd(c)?,
            Step::SetRootEntry(c) => self.set_root_entry(c)?,
            Step::MemError(Checked(c)) => self.mem_error(c)?,
            Step::ClearMemErrors(c) => self.clear_mem_errors(c)?,
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        flush_all(self.k()?).context("global invalidation")
    }

    pub(super) fn write_register(&mut self, w: &RegWrite) -> Result<()> {
        let (width, off) = w.width();
        let env = self.env();
        if width == 64 {
            env.write64(off, w.value.0)?;
        } else {
            env.write32(off, w.value.0 as u32)?;
        }
        if off == regs::GCMD {
            let v = w.value.0 as u32;
            for bit in [regs::GCMD_TE, regs::GCMD_QIE] {
                env.poll32(regs::GSTS, bit, v & bit, 1000)
                    .with_context(|| format!("GCMD {v:#010x}: waiting for GSTS"))?;
            }
            let mut rtaddr = None;
            if v & regs::GCMD_SRTP != 0 {
                env.poll32(regs::GSTS, regs::GCMD_SRTP, regs::GCMD_SRTP, 1000)
                    .context("GCMD.SRTP: waiting for GSTS.RTPS")?;
                rtaddr = Some(env.read64(regs::RTADDR)?);
            }
            let te = env.read32(regs::GSTS)? & regs::GCMD_TE != 0;
            self.hw.te = te;
            if let Some(r) = rtaddr {
                self.hw.rtaddr = r;
            }
        }
        Ok(())
    }

    /// The physical address a locator names, found by reading the structures in memory.
    fn locate(&mut self, l: &Locator) -> Result<u64> {
        let qw = l.qw.map_or(0, |q| q.0);
        if let Some(a) = l.addr {
            return Ok(a.0);
        }
        if let Some(d) = &l.root_entry {
            let rid = self.devref(d)?;
            let half = l.qw.map_or(u64::from(rid & 0x80 != 0), |q| q.0);
            return Ok(self.locator()?.root_entry(rid) + half * 8);
        }
        if let Some(d) = &l.context_entry {
            let rid = self.devref(d)?;
            return Ok(self.locator()?.context_entry(rid)? + qw * 8);
        }
        if let Some(x) = &l.pasid_dir_entry {
            let rid = self.devref(&x.dev)?;
            let p = self.pasid_or_rid_pasid(rid, x.pasid.as_ref())?;
            return Ok(self.locator()?.pasid_dir_entry(rid, p)?);
        }
        if let Some(x) = &l.pasid_entry {
            let rid = self.devref(&x.dev)?;
            let p = self.pasid_or_rid_pasid(rid, x.pasid.as_ref())?;
            return Ok(self.locator()?.pasid_entry(rid, p)? + qw * 8);
        }
        if let Some(x) = &l.pte {
            let rid = self.devref(&x.dev)?;
            let p = self.pasid_or_rid_pasid(rid, x.pasid.as_ref())?;
            let addr = self.value(&x.addr)?;
            let level = x.level.map_or(1, |l| l.0 as u32);
            return Ok(self.locator()?.pte(rid, p, addr, level)?);
        }
        bail!("no place named")
    }

    /// The structures in the DUT's memory, found from the vector's RTADDR.
    fn locator(&mut self) -> Result<locate::Locator<'_, Mem>> {
        let rtaddr = self.hw.rtaddr;
        Ok(locate::Locator::new(&*self.mem()?, rtaddr))
    }

    fn pasid_or_rid_pasid(&mut self, rid: Rid, p: Option<&PasidRef>) -> Result<u32> {
        match p {
            Some(p) => self.pasid(p),
            None => Ok(self.locator()?.rid_pasid(rid)?),
        }
    }

    /// The request a `tlp` step describes (its tag from the step or the counter).
    pub(super) fn request(&mut self, t: &Tlp) -> Result<MemRequest> {
        let rid = self.devref(&t.dev)?;
        let (write, addr) = match (&t.read, &t.write) {
            (Some(a), None) => (false, self.value(a)?),
            (None, Some(a)) => (true, self.value(a)?),
            _ => bail!("a TLP has exactly one of `read:` and `write:`"),
        };
        let ats = t.at == AtKind::TranslationRequest;
        let len = t.len.map_or(if ats { 8 } else { 4 }, |l| l.0) as u32;
        self.tag = (self.tag + 1) & 0xFF;
        let tag = t.tag.map_or(self.tag, |x| x.0 as u16);
        let mut req = MemRequest::covering(write, rid, tag, addr, len)
            .map_err(|e| anyhow!("building the TLP: {e}"))?;
        req.at = match t.at {
            AtKind::Untranslated => crate::tlp::At::Untranslated,
            AtKind::TranslationRequest => crate::tlp::At::TranslationRequest,
            AtKind::Translated => crate::tlp::At::Translated,
        };
        if let Some(p) = &t.pasid {
            let p = self.pasid(p)?;
            ensure!(p <= 0xF_FFFF, "PASID {p:#x} is wider than 20 bits");
            req = req.with_pasid(p, t.pmr, t.er);
        }
        Ok(req)
    }
}

/// Builds the system of a vector on the DUT of `env`.
pub(super) fn setup(env: &mut Env, v: &Vector, opts: &RunOptions) -> Result<Runner> {
    let (timing, ports) = timing_of(v, opts);
    let (sys, hw, vals) = if v.kernel_level() {
        let hw = RtlHw::from_env(env.take(), Mem::new(), timing)
            .map_err(|e| anyhow!("setting up the DUT: {e}"))?;
        let quirks = quirks_of(v, opts)?;
        let drv = Driver::new(hw, quirks).map_err(|e| anyhow!("driver init: {e}"))?;
        let mut k = Kernel::new(drv, KernelConfig::default());
        let mut vals = BTreeMap::new();
        for d in &v.devices {
            let max = u32::try_from(d.max_pasids.0)
                .map_err(|_| anyhow!("device `{}`: max_pasids too large", d.name.0))?;
            k.add_device(DeviceDesc {
                rid: d.rid.0,
                max_pasids: max,
                ats: d.ats,
            })
            .map_err(|e| anyhow!("adding device `{}` ({}): {e}", d.name.0, show_rid(d.rid.0)))?;
            vals.insert(d.name.0.clone(), Val::Device(d.rid.0));
        }
        ports.apply(&mut k.ops_mut().hw_mut().env);
        if let Some(c) = &v.ats_device {
            c.apply(&mut k.ops_mut().hw_mut().env);
        }
        let hw = HwState {
            te: true,
            rtaddr: k.ops().rtaddr(),
        };
        (Sys::Kernel(Box::new(k)), hw, vals)
    } else {
        let mut mem = Mem::new();
        if let Some(m) = &v.memory {
            if let Some(Checked(img)) = &m.image {
                for (i, page) in img.pages.iter().enumerate() {
                    let bytes = &img.data[i * PAGE_SIZE as usize..(i + 1) * PAGE_SIZE as usize];
                    for (w, chunk) in bytes.chunks_exact(8).enumerate() {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(chunk);
                        let at = page.0 + 8 * w as u64;
                        mem.write64(at, u64::from_le_bytes(b)).map_err(|e| {
                            input(format!(
                                "{}: image page {:#x}: {e}",
                                v.position(&[Seg::Key("memory"), Seg::Key("image")]),
                                page.0
                            ))
                        })?;
                    }
                }
            }
            for (j, p) in m.pokes.iter().enumerate() {
                for (i, w) in p.value.0.iter().enumerate() {
                    let at = p.addr.0 + 8 * i as u64;
                    mem.write64(at, *w).map_err(|e| {
                        input(format!(
                            "{}: memory poke at {at:#x}: {e}",
                            v.position(&[Seg::Key("memory"), Seg::Key("pokes"), Seg::Index(j)])
                        ))
                    })?;
                }
            }
            for Checked(r) in &m.errors {
                let len = r.len.map_or(8, |l| l.0);
                mem.add_error_range(r.start.0, r.start.0.saturating_add(len));
            }
        }
        let mut e = env.take();
        let seed = e.dut.seed();
        e.mem = Some(MemAgent::new(mem, timing, seed));
        ports.apply(&mut e);
        if let Some(c) = &v.ats_device {
            c.apply(&mut e);
        }
        (Sys::Bare(Box::new(e)), HwState::default(), BTreeMap::new())
    };
    let mut r = Runner {
        sys,
        vals,
        hw,
        tainted: false,
        previous: None,
        rep: VectorReport {
            name: v.name.clone(),
            file: v.file.clone(),
            ..VectorReport::default()
        },
        tag: 0,
        step_no: 0,
        keyword: "registers",
        file: v.file.clone(),
        source: v.source.clone(),
        status_page: None,
        status_seq: 0,
        fpd_on: BTreeSet::new(),
    };
    for (i, w) in v.registers.iter().enumerate() {
        r.write_register(w).with_context(|| {
            format!(
                "{}: registers[{i}] ({} <- {:#x})",
                v.position(&[Seg::Key("registers"), Seg::Index(i)]),
                w.reg.name,
                w.value.0
            )
        })?;
    }
    Ok(r)
}

/// Runs a parsed vector on the DUT of `env` (taken over). A failing step's error begins
/// with its `file:line:column`; with [`RunOptions::keep_going`] every failing step is
/// reported ([`StepFailures`]); an input error always stops the run.
pub fn run_vector(env: &mut Env, v: &Vector, opts: &RunOptions) -> Result<VectorReport> {
    run_logged(env, v, opts, &mut Vec::new())
}

fn run_logged(
    env: &mut Env,
    v: &Vector,
    opts: &RunOptions,
    log: &mut Vec<String>,
) -> Result<VectorReport> {
    let mut r = setup(env, v, opts)?;
    let start = r.env().dut.cycle();
    let mut failures = Vec::new();
    let res = (|| -> Result<()> {
        for (i, s) in v.steps.iter().enumerate() {
            let at = [Seg::Key("steps"), Seg::Index(i)];
            r.step_no = i + 1;
            r.keyword = s.keyword();
            let resubmits = r.resubmits();
            let res = r
                .step(s, &at)
                .and_then(|()| r.env().check_assertions())
                .and_then(|()| r.check_device_caches(s.keyword()));
            let again = r.resubmits() - resubmits;
            if again > 0 {
                r.note(
                    &at,
                    format!(
                        "FSTS.ITE: the driver cleared it and resubmitted {again} batch(es) \
                         whose wait the unit aborted"
                    ),
                );
            }
            let Err(e) = res else { continue };
            let e = e.context(format!(
                "{}: step {} of {} (`{}`)",
                v.position(&at),
                i + 1,
                v.steps.len(),
                s.keyword()
            ));
            if !opts.keep_going || is_input_error(&e) {
                return Err(e);
            }
            failures.push(format!("{e:#}"));
            r.resync();
        }
        Ok(())
    })();
    *log = std::mem::take(&mut r.rep.log);
    res?;
    if !failures.is_empty() {
        return Err(StepFailures(failures).into());
    }
    r.rep.steps = v.steps.len();
    r.rep.cycles = r.env().dut.cycle() - start;
    r.rep.log = log.clone();
    Ok(r.rep)
}

/// Parses and runs one file on a fresh DUT seeded from the vector; a failure carries the
/// path of a waveform of the failing run.
pub fn run_file(path: &Path) -> Result<VectorReport> {
    run_file_with(path, &RunOptions::default())
}

/// [`run_file`] with options.
pub fn run_file_with(path: &Path, opts: &RunOptions) -> Result<VectorReport> {
    let v = parse_file(path)?;
    run_parsed(&v, opts, &waves::waves_dir(), waves::always_trace())
}

/// Runs a parsed vector under [`harness::run_test_in`] (waveform of a failing run in `dir`).
///
/// With `expect_failure: TEXT` the vector passes only if the run fails, not for an input
/// error, with a message that contains TEXT; the report's `caught` holds the message.
/// Input errors ([`is_input_error`]) stay input errors, and the run is not repeated for
/// them (no waveform: the vector, not the DUT, is wrong).
pub fn run_parsed(v: &Vector, opts: &RunOptions, dir: &Path, traced: bool) -> Result<VectorReport> {
    run_parsed_logged(v, opts, dir, traced).result
}

/// A run of [`run_parsed_logged`].
#[derive(Debug)]
pub struct LoggedRun {
    pub result: Result<VectorReport>,
    /// One line per TLP judged (also when the run failed).
    pub log: Vec<String>,
    /// Steps that failed: every one with [`RunOptions::keep_going`], else 0 or 1.
    pub failing_steps: usize,
}

/// [`run_parsed`], with the per-TLP log of the run and its count of failing steps.
pub fn run_parsed_logged(v: &Vector, opts: &RunOptions, dir: &Path, traced: bool) -> LoggedRun {
    let out: Mutex<Option<VectorReport>> = Mutex::new(None);
    let log: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let failing: Mutex<usize> = Mutex::new(0);
    let bad_input: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let name = format!("vector-{}", v.name);
    let res = harness::run_test_in(dir, traced, &name, v.seed, |env| {
        let mut lines = Vec::new();
        let r = run_logged(env, v, opts, &mut lines);
        *log.lock().unwrap_or_else(|p| p.into_inner()) = lines;
        match r {
            Ok(rep) => *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(rep),
            // Not a failure of the DUT: returned as passing so the harness does not repeat
            // the run to trace it.
            Err(e) if is_input_error(&e) => {
                *bad_input.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            }
            Err(e) => {
                *failing.lock().unwrap_or_else(|p| p.into_inner()) = e
                    .chain()
                    .find_map(|c| c.downcast_ref::<StepFailures>())
                    .map_or(1, |f| f.0.len());
                return Err(e);
            }
        }
        Ok(())
    });
    let log = log.into_inner().unwrap_or_else(|p| p.into_inner());
    let file = v.file.display();
    let failing_steps = failing.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = bad_input.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return LoggedRun {
            result: Err(input(format!("{file}: {e:#}"))),
            log,
            failing_steps: 0,
        };
    }
    let r = match (res, &v.expect_failure) {
        (Err(f), _) if is_input_error(&f.cause) => Err(input(format!("{file}: {f}"))),
        (Err(f), None) => Err(anyhow!("{file}: {f}")),
        (Err(f), Some(want)) => {
            let msg = format!("{:#}", f.cause);
            if msg.contains(want.as_str()) {
                Ok(VectorReport {
                    name: v.name.clone(),
                    file: v.file.clone(),
                    caught: Some(msg),
                    ..VectorReport::default()
                })
            } else {
                Err(anyhow!(
                    "{file}: expect_failure `{want}`: the run failed otherwise: {f}"
                ))
            }
        }
        (Ok(()), Some(want)) => Err(anyhow!(
            "{file}: expect_failure `{want}`: the run passed; the vector says it must fail \
             with a message containing `{want}`"
        )),
        (Ok(()), None) => out
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .context("the vector produced no report"),
    };
    LoggedRun {
        failing_steps: if r.is_ok() { 0 } else { failing_steps.max(1) },
        result: r,
        log,
    }
}
