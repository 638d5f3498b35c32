//! Functional coverage of the random regression, and the Verilator line/toggle coverage
//! files of a `--features coverage` build.
//!
//! # Bins
//!
//! Every axis the issue names is sampled, but not as one blind cross product: most of
//! such a cross is unreachable (a pass-through request has no page size, a request
//! without a PASID prefix has no PMR/ER bit) or meaningless (which fault reason a 2 MiB
//! leaf produced). The bins are grouped into crosses of the axes that interact in the
//! RTL, with the unreachable combinations left out of the bin space, so every hole the
//! report lists is a real one:
//!
//! - **translated** = request kind x path (RID / PASID) x stage (PGTT) x page size x cache
//!   state. These are the axes that select different hardware: the IOTLB tag (path),
//!   the walk format (stage), the leaf level and the IOTLB's size mask (page size), and
//!   which of the hit path, the page walk from a cached PASID entry, or the full walk
//!   produced the result (cache state: IOTLB hit / miss with the PASID entry cached /
//!   cold miss, told apart by the memory reads the request caused). Pass-through has
//!   only 4 KiB "pages" and no IOTLB entry, so its only states are a PASID-entry cache
//!   hit and a cold walk.
//! - **request** = request kind x path x PMR x ER x domain type (the kernel's view of
//!   what the request's RID or PASID is attached to). PMR and ER travel in the PASID
//!   prefix, so a RID request has them clear; an SVA domain is only reachable through a
//!   PASID.
//! - **fault** = fault reason x path. A PASID prefix is needed for 0x45 and 0x5C; the
//!   driver never sets the context's RID_PRIV, so 0x5D needs one too. Left out, because
//!   no kernel/driver sequence produces them (vectors and the directed tests of
//!   `tb/tests/rtl/fault_codes.rs` reach them with hand-written tables):
//!   0x30 (the driver always writes TTM=01b), the reserved-bit and invalid-PGTT faults
//!   0x3A, 0x42, 0x52, 0x5A, 0x5B, 0x72, 0x7A (Linux writes no reserved bit), 0x82 (Linux never
//!   sets ERE, so an execute request stops at 0x5C first); through the RID also 0x46
//!   (RID_PASID is 0, always inside the directory) and 0x81 (a RID reaches no SVA domain,
//!   and Linux's first-stage paging leaves have U/S=1).
//!
//!   The access errors 0x38, 0x40, 0x50, 0x58, 0x70, 0x78 are in the bin space: the
//!   stimulus's `mem_error` operation makes reads of one structure page fail
//!   (`Kernel::inject_memory_error`), and the oracle knows which requests read it.
//!
//!   Request bins: nothing attached at a PASID is "not attached"; `iommu_attach_device_pasid`
//!   refuses the blocked domain, so a PASID is never "blocked".
//! - **ATS** = path x stage x page size x access granted, for the ATS Translation Requests
//!   the regression sends (docs/contract.md section 6.2): the completion's entry as the
//!   golden walker gives it (the leaf's size, or no access, R = W = 0, which has no size
//!   and is binned as 4K). Pass-through answers only with a 4 KiB page, or R = W = 0 for
//!   an address beyond 48 bits. Their UR and CA answers are fault bins (0x44 among them:
//!   the regression's devices without ATS have DTE = 0).
//! - **recording**: a fault recorded, or suppressed by FPD.
//! - **window**: requests answered while an unmap's flush was still open (the oracle also
//!   allows the old translation), and requests sent while a submitted batch of descriptors
//!   was executing, translated or faulting.
//! - **invalidation**: descriptor type x granularity of every descriptor the driver
//!   submitted (page-selective ones split into a single page, AM = 0, and a range).
//!   Domain-selective context-cache invalidation is left out: Linux never issues one
//!   (drivers/iommu/intel only names `DMA_CCMD_DOMAIN_INVL` in `__iommu_flush_context()`;
//!   scalable-mode context entries carry no DID, so device-selective and global are the
//!   granularities it uses). The device-TLB invalidations (types 3 and 8) are split by
//!   size the same way (one page, a range, the whole space): the driver sends them for the
//!   ATS device's attachments. One more bin counts the batches the driver resubmitted
//!   because a device-TLB invalidation timed out (FSTS.ITE) and the unit aborted the wait:
//!   the regression's seeds whose ATS device answers some requests late or never.

use std::collections::BTreeMap;
use std::fmt;

use iommu_model::golden::{self, Outcome, Pgtt, Request, Walk};
use iommu_model::kernel::{DomainType, Stage as KStage};
use iommu_model::qi::{CcGran, Descriptor, IotlbGran, PcGran, PiotlbGran};
use iommu_model::FaultReason;

use crate::hw::system::{hw_state, RtlKernel};

mod closure;
pub mod html;
mod verilator;
pub use closure::{Closure, ClosurePoint};
pub use verilator::{
    genhtml_command, parse_total, points_by_type, verilator_merge, VerilatorSummary,
};

/// Memory read or write request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Read,
    Write,
}

/// How the request names its address space: no prefix (the context's RID_PASID) or a
/// PASID prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Via {
    Rid,
    Pasid,
}

/// The PASID entry's PGTT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum XStage {
    First,
    Second,
    PassThrough,
}

/// Leaf size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Size {
    K4,
    M2,
    G1,
}

/// Which part of the unit produced a translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cache {
    /// No memory read: IOTLB hit (pass-through: PASID-entry cache hit).
    Hit,
    /// Page walk only: the PASID entry was cached.
    WalkEntryCached,
    /// Root, context, PASID directory and PASID entry read, then the page walk.
    Cold,
}

impl Cache {
    /// From the number of memory reads a translated request caused: a full structure walk
    /// reads 14 quadwords (root 1, context 4, directory 1, PASID entry 8) before the page
    /// walk's 1 to 4.
    pub fn from_reads(reads: usize) -> Self {
        match reads {
            0 => Self::Hit,
            1..=4 => Self::WalkEntryCached,
            _ => Self::Cold,
        }
    }
}

/// The kernel's view of what a request's RID or PASID is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Domain {
    /// Unknown device, or no domain at that PASID.
    NotAttached,
    Blocked,
    Identity,
    PagingFirst,
    PagingSecond,
    Sva,
}

/// One descriptor type and granularity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Inval {
    ContextGlobal,
    ContextDomain,
    ContextDevice,
    IotlbGlobal,
    IotlbDomain,
    IotlbPage,
    IotlbPageRange,
    PasidIotlbPasid,
    PasidIotlbPage,
    PasidIotlbPageRange,
    PasidCacheDomain,
    PasidCachePasid,
    PasidCacheGlobal,
    Wait,
    /// Type 3 (an Invalidate Request without a PASID prefix): one 4 KiB page (S = 0), a
    /// larger range, the whole address space.
    DevTlbPage,
    DevTlbRange,
    DevTlbAll,
    /// Type 8 (with the PASID prefix), the same sizes. The driver never sets G, so there
    /// is no bin for it.
    PasidDevTlbPage,
    PasidDevTlbRange,
    PasidDevTlbAll,
    /// Not a descriptor: a device-TLB invalidation timed out (FSTS.ITE), the unit aborted
    /// the batch's wait and the driver resubmitted the batch (docs/contract.md 6.5).
    DevTlbTimeout,
}

impl Inval {
    /// Every granularity the driver issues (not [`Inval::ContextDomain`]: see the module
    /// documentation). The device-TLB types come from the ATS device's range flushes and
    /// PASID-entry teardowns; the time-out from the seeds whose ATS device answers late or
    /// never.
    pub const ALL: [Inval; 20] = [
        Self::ContextGlobal,
        Self::ContextDevice,
        Self::IotlbGlobal,
        Self::IotlbDomain,
        Self::IotlbPage,
        Self::IotlbPageRange,
        Self::PasidIotlbPasid,
        Self::PasidIotlbPage,
        Self::PasidIotlbPageRange,
        Self::PasidCacheDomain,
        Self::PasidCachePasid,
        Self::PasidCacheGlobal,
        Self::Wait,
        Self::DevTlbPage,
        Self::DevTlbRange,
        Self::DevTlbAll,
        Self::PasidDevTlbPage,
        Self::PasidDevTlbRange,
        Self::PasidDevTlbAll,
        Self::DevTlbTimeout,
    ];

    pub fn of(d: &Descriptor) -> Self {
        match *d {
            Descriptor::ContextCache { gran, .. } => match gran {
                CcGran::Global => Self::ContextGlobal,
                CcGran::Domain => Self::ContextDomain,
                CcGran::Device => Self::ContextDevice,
            },
            Descriptor::Iotlb { gran, am, .. } => match gran {
                IotlbGran::Global => Self::IotlbGlobal,
                IotlbGran::Domain => Self::IotlbDomain,
                IotlbGran::Page if am == 0 => Self::IotlbPage,
                IotlbGran::Page => Self::IotlbPageRange,
            },
            Descriptor::PasidIotlb { gran, am, .. } => match gran {
                PiotlbGran::Pasid => Self::PasidIotlbPasid,
                PiotlbGran::Page if am == 0 => Self::PasidIotlbPage,
                PiotlbGran::Page => Self::PasidIotlbPageRange,
            },
            Descriptor::PasidCache { gran, .. } => match gran {
                PcGran::Domain => Self::PasidCacheDomain,
                PcGran::Pasid => Self::PasidCachePasid,
                PcGran::Global => Self::PasidCacheGlobal,
            },
            Descriptor::Wait { .. } => Self::Wait,
            Descriptor::DevTlb { size, .. } | Descriptor::PasidDevTlb { size, .. } => {
                let all = d.dev_tlb_range() == Some((0, u64::MAX));
                let i = match (size, all) {
                    (false, _) => 0,
                    (true, false) => 1,
                    (true, true) => 2,
                };
                if matches!(d, Descriptor::DevTlb { .. }) {
                    [Self::DevTlbPage, Self::DevTlbRange, Self::DevTlbAll][i]
                } else {
                    [
                        Self::PasidDevTlbPage,
                        Self::PasidDevTlbRange,
                        Self::PasidDevTlbAll,
                    ][i]
                }
            }
        }
    }
}

/// One coverage bin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bin {
    Translated {
        kind: Kind,
        path: Via,
        stage: XStage,
        size: Size,
        cache: Cache,
    },
    Request {
        kind: Kind,
        path: Via,
        pmr: bool,
        er: bool,
        domain: Domain,
    },
    Fault {
        reason: FaultReason,
        path: Via,
    },
    Recording {
        recorded: bool,
    },
    Window {
        during: During,
        translated: bool,
    },
    Invalidation(Inval),
    Ats {
        path: Via,
        stage: XStage,
        size: Size,
        granted: bool,
    },
}

/// Which kind of invalidation window a request was answered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum During {
    /// After an unmap, before the wait of its flush (`iotlb_sync`) completed.
    OpenFlush,
    /// While the invalidation queue was executing a submitted batch.
    Submit,
}

/// The groups of the report, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    Translated,
    Request,
    Fault,
    Recording,
    Window,
    Invalidation,
    Ats,
}

impl Group {
    pub const ALL: [Group; 7] = [
        Self::Translated,
        Self::Request,
        Self::Fault,
        Self::Recording,
        Self::Window,
        Self::Invalidation,
        Self::Ats,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Self::Translated => "translated: kind x path x stage x page size x cache state",
            Self::Request => "request: kind x path x PMR x ER x domain type",
            Self::Fault => "fault: reason x path",
            Self::Recording => "fault recording: recorded / suppressed by FPD",
            Self::Window => "inside an invalidation window: window x outcome",
            Self::Invalidation => {
                "invalidation: descriptor type x granularity; device-TLB time-out"
            }
            Self::Ats => "ATS Translation Request: path x stage x page size x access granted",
        }
    }
}

impl Bin {
    pub fn group(&self) -> Group {
        match self {
            Self::Translated { .. } => Group::Translated,
            Self::Request { .. } => Group::Request,
            Self::Fault { .. } => Group::Fault,
            Self::Recording { .. } => Group::Recording,
            Self::Window { .. } => Group::Window,
            Self::Invalidation(_) => Group::Invalidation,
            Self::Ats { .. } => Group::Ats,
        }
    }

    /// Every reachable bin (see the module documentation for what is left out and why).
    pub fn universe() -> Vec<Bin> {
        let kinds = [Kind::Read, Kind::Write];
        let paths = [Via::Rid, Via::Pasid];
        let mut v = Vec::new();
        for kind in kinds {
            for path in paths {
                for stage in [XStage::First, XStage::Second] {
                    for size in [Size::K4, Size::M2, Size::G1] {
                        for cache in [Cache::Hit, Cache::WalkEntryCached, Cache::Cold] {
                            v.push(Bin::Translated {
                                kind,
                                path,
                                stage,
                                size,
                                cache,
                            });
                        }
                    }
                }
                for cache in [Cache::Hit, Cache::Cold] {
                    v.push(Bin::Translated {
                        kind,
                        path,
                        stage: XStage::PassThrough,
                        size: Size::K4,
                        cache,
                    });
                }
            }
        }
        let domains = [
            Domain::NotAttached,
            Domain::Blocked,
            Domain::Identity,
            Domain::PagingFirst,
            Domain::PagingSecond,
            Domain::Sva,
        ];
        for kind in kinds {
            for domain in domains {
                if domain == Domain::Sva {
                    // Only through a PASID.
                } else {
                    v.push(Bin::Request {
                        kind,
                        path: Via::Rid,
                        pmr: false,
                        er: false,
                        domain,
                    });
                }
                if domain == Domain::Blocked {
                    // A PASID is never attached to the blocked domain.
                    continue;
                }
                for (pmr, er) in [(false, false), (true, false), (false, true), (true, true)] {
                    v.push(Bin::Request {
                        kind,
                        path: Via::Pasid,
                        pmr,
                        er,
                        domain,
                    });
                }
            }
        }
        for reason in FaultReason::ALL.into_iter().filter(|r| !tables_only(*r)) {
            for path in paths {
                let prefix_only = matches!(
                    reason,
                    FaultReason::PasidDisabled
                        | FaultReason::PasidBeyondDirectory
                        | FaultReason::ErWithoutEre
                        | FaultReason::PmrWithoutSre
                        | FaultReason::UserToSupervisorPage
                );
                if !(prefix_only && path == Via::Rid) {
                    v.push(Bin::Fault { reason, path });
                }
            }
        }
        for recorded in [true, false] {
            v.push(Bin::Recording { recorded });
        }
        for during in [During::OpenFlush, During::Submit] {
            for translated in [true, false] {
                v.push(Bin::Window { during, translated });
            }
        }
        v.extend(Inval::ALL.map(Bin::Invalidation));
        for path in paths {
            for stage in [XStage::First, XStage::Second] {
                for size in [Size::K4, Size::M2, Size::G1] {
                    v.push(Bin::Ats {
                        path,
                        stage,
                        size,
                        granted: true,
                    });
                }
                v.push(Bin::Ats {
                    path,
                    stage,
                    size: Size::K4,
                    granted: false,
                });
            }
            for granted in [true, false] {
                v.push(Bin::Ats {
                    path,
                    stage: XStage::PassThrough,
                    size: Size::K4,
                    granted,
                });
            }
        }
        v
    }
}

/// Fault reasons only hand-written tables produce (see the module documentation): outside
/// the bin space of the random regression.
pub fn tables_only(r: FaultReason) -> bool {
    use FaultReason as F;
    matches!(
        r,
        F::InvalidTtm
            | F::RootReserved
            | F::ContextReserved
            | F::PasidDirReserved
            | F::PasidEntryReserved
            | F::InvalidPgtt
            | F::FsReserved
            | F::SsReserved
            | F::ExecuteXd
    )
}

impl fmt::Display for Bin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = |p: &Via| match p {
            Via::Rid => "RID",
            Via::Pasid => "PASID",
        };
        match self {
            Self::Translated {
                kind,
                path: p,
                stage,
                size,
                cache,
            } => write!(
                f,
                "{kind:?} {} {} {} {}",
                path(p),
                stage_name(stage),
                size_name(size),
                match cache {
                    Cache::Hit => "hit",
                    Cache::WalkEntryCached => "miss (PASID entry cached)",
                    Cache::Cold => "miss (cold)",
                }
            ),
            Self::Request {
                kind,
                path: p,
                pmr,
                er,
                domain,
            } => write!(
                f,
                "{kind:?} {} PMR={} ER={} domain {domain:?}",
                path(p),
                u8::from(*pmr),
                u8::from(*er)
            ),
            Self::Fault { reason, path: p } => write!(f, "{reason} via {}", path(p)),
            Self::Recording { recorded } => f.write_str(if *recorded {
                "recorded"
            } else {
                "suppressed (FPD)"
            }),
            Self::Window { during, translated } => write!(
                f,
                "{} {}",
                match during {
                    During::OpenFlush => "after an unmap, flush not complete:",
                    During::Submit => "while a submitted batch executed:",
                },
                if *translated { "translated" } else { "fault" }
            ),
            Self::Invalidation(i) => write!(f, "{i:?}"),
            Self::Ats {
                path: p,
                stage,
                size,
                granted,
            } => write!(
                f,
                "{} {} {} {}",
                path(p),
                stage_name(stage),
                size_name(size),
                if *granted { "granted" } else { "R=W=0" }
            ),
        }
    }
}

fn stage_name(s: &XStage) -> &'static str {
    match s {
        XStage::First => "first-stage",
        XStage::Second => "second-stage",
        XStage::PassThrough => "pass-through",
    }
}

fn size_name(s: &Size) -> &'static str {
    match s {
        Size::K4 => "4K",
        Size::M2 => "2M",
        Size::G1 => "1G",
    }
}

/// What one request was, as the regression saw it.
#[derive(Clone, Copy, Debug)]
pub struct Sample<'a> {
    pub req: &'a Request,
    pub domain: Domain,
    /// The golden walk, for requests judged outside an invalidation window.
    pub walk: Option<&'a Walk>,
    pub outcome: &'a Outcome,
    /// Memory reads the request caused (judged requests).
    pub reads: usize,
}

/// The coverage collector: a count per bin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    pub bins: BTreeMap<Bin, u64>,
    /// Requests sampled.
    pub requests: u64,
}

/// The kernel's view of what `(rid, pasid)` reaches.
pub fn domain_of(k: &RtlKernel, rid: u16, pasid: Option<u32>) -> Domain {
    let st = k.state();
    let Some(dev) = st.devices.get(&rid) else {
        return Domain::NotAttached;
    };
    let id = match pasid {
        None => match dev.rid_domain {
            Some(id) => id,
            None => return Domain::Blocked,
        },
        Some(p) => match dev.pasids.get(&p) {
            Some(&id) => id,
            None => return Domain::NotAttached,
        },
    };
    match st.domains.get(&id).map(|d| d.ty) {
        None => Domain::NotAttached,
        Some(DomainType::Blocked) => Domain::Blocked,
        Some(DomainType::Identity) => Domain::Identity,
        Some(DomainType::Paging(KStage::First)) => Domain::PagingFirst,
        Some(DomainType::Paging(KStage::Second)) => Domain::PagingSecond,
        Some(DomainType::Sva(_)) => Domain::Sva,
    }
}

/// Index into the memory agent's access log, to count the reads a request causes.
pub fn log_mark(k: &mut RtlKernel) -> usize {
    k.ops_mut().hw_mut().mem_agent().log.len()
}

/// Memory reads logged since `mark`.
pub fn reads_since(k: &mut RtlKernel, mark: usize) -> usize {
    let log = &k.ops_mut().hw_mut().mem_agent().log;
    log.get(mark..)
        .map_or(0, |l| l.iter().filter(|a| !a.write).count())
}

impl Coverage {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn hit(&mut self, bin: Bin) {
        *self.bins.entry(bin).or_insert(0) += 1;
    }

    pub fn count(&self, bin: &Bin) -> u64 {
        self.bins.get(bin).copied().unwrap_or(0)
    }

    /// Bins sampled that are not in [`Bin::universe`] (must be none: otherwise the bin
    /// space is wrong).
    pub fn unexpected(&self) -> Vec<Bin> {
        let universe = Bin::universe();
        self.bins
            .keys()
            .filter(|b| !universe.contains(b))
            .copied()
            .collect()
    }

    /// Samples one request.
    pub fn sample(&mut self, s: &Sample<'_>) {
        self.requests += 1;
        let kind = if s.req.write { Kind::Write } else { Kind::Read };
        let path = if s.req.pasid.is_some() {
            Via::Pasid
        } else {
            Via::Rid
        };
        self.hit(Bin::Request {
            kind,
            path,
            pmr: s.req.pmr,
            er: s.req.er,
            domain: s.domain,
        });
        let Some(walk) = s.walk else {
            self.sample_window(During::OpenFlush, s.outcome);
            return;
        };
        let stage = match walk.pasid_entry.map(|p| p.pgtt) {
            Some(Pgtt::FirstStage) => XStage::First,
            Some(Pgtt::SecondStage) => XStage::Second,
            _ => XStage::PassThrough,
        };
        let size = match walk.leaf.map(|l| l.size) {
            Some(0x20_0000) => Size::M2,
            Some(0x4000_0000) => Size::G1,
            _ => Size::K4,
        };
        match walk.outcome {
            Outcome::Ats(e) => self.hit(Bin::Ats {
                path,
                stage,
                size,
                granted: e.r || e.w,
            }),
            Outcome::Translated(_) => {
                self.hit(Bin::Translated {
                    kind,
                    path,
                    stage,
                    size,
                    cache: Cache::from_reads(s.reads),
                });
            }
            Outcome::Fault(reason) => {
                self.hit(Bin::Fault { reason, path });
                self.hit(Bin::Recording {
                    recorded: walk.record,
                });
            }
            _ => {}
        }
    }

    fn sample_window(&mut self, during: During, outcome: &Outcome) {
        match outcome {
            Outcome::Translated(_) => self.hit(Bin::Window {
                during,
                translated: true,
            }),
            Outcome::Fault(_) => self.hit(Bin::Window {
                during,
                translated: false,
            }),
            _ => {}
        }
    }

    /// Samples a request the regression sent while a submitted batch executed.
    pub fn sample_concurrent(&mut self, outcome: &Outcome) {
        self.sample_window(During::Submit, outcome);
    }

    /// Samples a request of the regression that has just been answered with `outcome`;
    /// `mark` is [`log_mark`] taken before it was sent. With no invalidation window open
    /// the golden walk on the current memory is the one the judge compared against (a
    /// translation writes no memory).
    pub fn sample_request(
        &mut self,
        k: &mut RtlKernel,
        req: &Request,
        outcome: &Outcome,
        mark: usize,
    ) {
        let walk = k.windows().is_empty().then(|| {
            let hw = hw_state(k);
            golden::translate(&hw, &k.ops_mut().hw_mut().mem_agent().mem, req)
        });
        let reads = reads_since(k, mark);
        let domain = domain_of(k, req.rid, req.pasid);
        self.sample(&Sample {
            req,
            domain,
            walk: walk.as_ref(),
            outcome,
            reads,
        });
    }

    /// Samples submitted invalidation descriptors.
    pub fn sample_descriptors(&mut self, descs: &[Descriptor]) {
        for d in descs {
            self.hit(Bin::Invalidation(Inval::of(d)));
        }
    }

    /// The batches of a run the driver resubmitted after a device-TLB invalidation
    /// time-out ([`iommu_model::driver::Driver::resubmits`]): one hit each.
    pub fn sample_resubmits(&mut self, n: u64) {
        if n > 0 {
            *self
                .bins
                .entry(Bin::Invalidation(Inval::DevTlbTimeout))
                .or_insert(0) += n;
        }
    }

    pub fn merge(&mut self, o: &Coverage) {
        for (b, n) in &o.bins {
            *self.bins.entry(*b).or_insert(0) += n;
        }
        self.requests += o.requests;
    }

    /// Bins of the universe never hit.
    pub fn holes(&self) -> Vec<Bin> {
        Bin::universe()
            .into_iter()
            .filter(|b| self.count(b) == 0)
            .collect()
    }

    /// (bins hit, bins in the universe).
    pub fn summary(&self) -> (usize, usize) {
        let u = Bin::universe();
        (u.iter().filter(|b| self.count(b) > 0).count(), u.len())
    }

    /// The report: per group, every bin with its count, holes marked.
    pub fn report(&self) -> String {
        use std::fmt::Write as _;
        let universe = Bin::universe();
        let mut out = String::new();
        let (hit, total) = self.summary();
        let _ = writeln!(
            out,
            "functional coverage: {} requests sampled; {hit}/{total} bins hit, {} holes",
            self.requests,
            total - hit
        );
        for g in Group::ALL {
            let bins: Vec<&Bin> = universe.iter().filter(|b| b.group() == g).collect();
            let h = bins.iter().filter(|b| self.count(b) > 0).count();
            let _ = writeln!(out, "\n{} ({h}/{} hit)", g.title(), bins.len());
            for b in bins {
                let n = self.count(b);
                if n == 0 {
                    let _ = writeln!(out, "  {:>8}  {b}", "HOLE");
                } else {
                    let _ = writeln!(out, "  {n:>8}  {b}");
                }
            }
        }
        let unexpected = self.unexpected();
        if !unexpected.is_empty() {
            let _ = writeln!(
                out,
                "\nsampled outside the bin space (the bin space is wrong):"
            );
            for b in unexpected {
                let _ = writeln!(out, "  {:>8}  {b}", self.count(&b));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn universe_has_no_duplicates() {
        let u = Bin::universe();
        let set: std::collections::BTreeSet<_> = u.iter().collect();
        assert_eq!(set.len(), u.len());
        // 2 kinds x 2 paths x (2 stages x 3 sizes x 3 states + pass-through x 2 states)
        assert_eq!(
            u.iter().filter(|b| b.group() == Group::Translated).count(),
            80
        );
    }

    #[test]
    fn reads_tell_the_cache_state() {
        assert_eq!(Cache::from_reads(0), Cache::Hit);
        assert_eq!(Cache::from_reads(4), Cache::WalkEntryCached);
        assert_eq!(Cache::from_reads(18), Cache::Cold);
    }
}
