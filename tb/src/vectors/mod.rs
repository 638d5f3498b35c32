//! YAML test vectors (`vectors/*.yaml`; the format is documented in `vectors/README.md`).
//!
//! A vector is a scenario: a list of steps run on one DUT. A *kernel-level* vector declares
//! `devices:`; the model's kernel and VT-d driver program the DUT ([`crate::hw::rtl_hw::RtlHw`])
//! and the steps are kernel and DMA API calls with symbolic names (devices, domains, PASIDs,
//! mms, DMA addresses), TLPs, and hardware-level changes to the tables the driver built. A
//! *hardware-level* vector has no devices: a memory image (`memory:`), register writes
//! (`registers:`) and raw TLPs, so tables written by any software can be replayed.
//!
//! Every TLP is judged twice over, as the regression does: the DUT must do exactly what the
//! golden walker does on the memory it walks, fault record included ([`crate::check::judge`]), and
//! in kernel-level vectors the outcome must be in the oracle's allowed set (while an unmap's
//! flush is pending, only the oracle judges: the old translation is allowed). A pinned
//! `expect:` is checked in addition.
//!
//! Parsing checks everything that can be checked without the DUT (unknown keys, numbers,
//! RIDs, fault codes, errno names, symbolic names used before they are bound, exclusive
//! fields, image files) and reports `file:line:column: message`. Failures while running name
//! the file and the step.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, bail, ensure, Context, Result};
use iommu_model::driver::{Driver, DriverQuirks};
use iommu_model::golden::{HwState, Outcome};
use iommu_model::kernel::dma::DmaDirection;
use iommu_model::kernel::{
    DeviceDesc, DomainId, DomainType, Errno, Kernel, KernelConfig, MmId, MmProt, Prot, Rid, Stage,
};
use iommu_model::mem::{Mem, PhysMem, PAGE_SIZE};
use iommu_model::oracle;
use iommu_model::tables::{self, context as ce, pasid_dir as pde, pasid_entry as pe, ss};
use iommu_model::FaultReason;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::check::judge::{golden_request, judge, take_fault_records, REQUEST_TIMEOUT};
use crate::dut::waves;
use crate::env::csr::{gcmd, reg};
use crate::env::exchange::exchange;
use crate::env::harness;
use crate::env::mem::{MemAgent, MemTiming};
use crate::env::tlp_agent::Egress;
use crate::env::Env;
use crate::hw::rtl_hw::RtlHw;
use crate::hw::system::{flush_all, RtlKernel};
use crate::tlp::{self, MemRequest, TlpWords};

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// A vector that cannot be read: where and why.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    #[error("{}: {source}", file.display())]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", file.display())]
    Parse {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {message}", file.display())]
    Invalid { file: PathBuf, message: String },
}

// ---------------------------------------------------------------------------------------
// Parse-time scope: symbolic names are checked in document order.
// ---------------------------------------------------------------------------------------

/// What a symbolic name stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Device,
    Domain,
    Pasid,
    Mm,
    Iova,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Device => "device",
            Kind::Domain => "domain",
            Kind::Pasid => "PASID",
            Kind::Mm => "mm",
            Kind::Iova => "DMA address",
        })
    }
}

const DEVICE: u8 = 0;
const DOMAIN: u8 = 1;
const PASID: u8 = 2;
const MM: u8 = 3;
const IOVA: u8 = 4;

fn kind_of(k: u8) -> Kind {
    match k {
        DEVICE => Kind::Device,
        DOMAIN => Kind::Domain,
        PASID => Kind::Pasid,
        MM => Kind::Mm,
        _ => Kind::Iova,
    }
}

struct Scope {
    names: BTreeMap<String, Kind>,
    base: PathBuf,
    kernel: bool,
}

thread_local! {
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

fn with_scope<R>(f: impl FnOnce(&mut Scope) -> Result<R, String>) -> Result<R, String> {
    SCOPE.with(|s| match s.borrow_mut().as_mut() {
        Some(sc) => f(sc),
        None => Err("vectors are read with vectors::parse_str or parse_file".into()),
    })
}

fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == '-')
}

// ---------------------------------------------------------------------------------------
// Scalar values
// ---------------------------------------------------------------------------------------

/// Parses `0x1f`, `0b101`, `4096`, `4K`, `2M`, `1G` (underscores allowed).
pub fn parse_num(s: &str) -> Result<u64, String> {
    let t: String = s.trim().chars().filter(|&c| c != '_').collect();
    let bad = || format!("`{s}` is not a number (0x.., 0b.., decimal, or with a K/M/G suffix)");
    let (body, mul) = match t.chars().last() {
        Some('K') if !t.starts_with("0x") => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        Some('T') => (&t[..t.len() - 1], 1 << 40),
        _ => (t.as_str(), 1),
    };
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else if let Some(b) = body.strip_prefix("0b") {
        u64::from_str_radix(b, 2)
    } else {
        body.parse::<u64>()
    }
    .map_err(|_| bad())?;
    v.checked_mul(mul)
        .ok_or_else(|| format!("`{s}` does not fit in 64 bits"))
}

/// An unsigned number: a YAML integer or a string [`parse_num`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Num(pub u64);

struct NumVisitor;

impl Visitor<'_> for NumVisitor {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an unsigned number")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse_num(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumVisitor).map(Num)
    }
}

/// Reads a string scalar and converts it while the deserializer still points at it, so an
/// error is reported at the value.
fn scalar<'de, D, T, F>(d: D, f: F) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    F: FnOnce(String) -> Result<T, String>,
{
    struct V<F>(F);
    impl<T, F: FnOnce(String) -> Result<T, String>> Visitor<'_> for V<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.0)(v.to_owned()).map_err(E::custom)
        }
    }
    d.deserialize_str(V(f))
}

/// [`scalar`] for numbers.
fn number<'de, D, T, F>(d: D, f: F) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    F: FnOnce(u64) -> Result<T, String>,
{
    struct V<F>(F);
    impl<T, F: FnOnce(u64) -> Result<T, String>> Visitor<'_> for V<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an unsigned number")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            (self.0)(v).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            let v = NumVisitor.visit_i64(v)?;
            (self.0)(v).map_err(E::custom)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            let v = parse_num(v).map_err(E::custom)?;
            (self.0)(v).map_err(E::custom)
        }
    }
    d.deserialize_any(V(f))
}

/// Parses a requester ID `bb:dd.f` (hex bus and device, function 0-7).
pub fn parse_rid(s: &str) -> Result<Rid, String> {
    let bad = || format!("`{s}` is not a requester ID bb:dd.f (e.g. 00:02.0)");
    let (bus, rest) = s.split_once(':').ok_or_else(bad)?;
    let (dev, func) = rest.split_once('.').ok_or_else(bad)?;
    let bus = u8::from_str_radix(bus, 16).map_err(|_| bad())?;
    let dev = u8::from_str_radix(dev, 16).map_err(|_| bad())?;
    let func: u8 = func.parse().map_err(|_| bad())?;
    if dev > 0x1F || func > 7 {
        return Err(format!("`{s}`: device is 00-1f and function 0-7"));
    }
    Ok(iommu_model::kernel::rid(bus, dev, func))
}

fn show_rid(r: Rid) -> String {
    format!("{:02x}:{:02x}.{}", r >> 8, (r >> 3) & 0x1F, r & 7)
}

/// A name bound earlier in the document (`K` is its kind).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name<const K: u8>(pub String);

impl<'de, const K: u8> Deserialize<'de> for Name<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar(d, |s| {
            lookup(&s, kind_of(K))?;
            Ok(Name(s))
        })
    }
}

fn lookup(s: &str, want: Kind) -> Result<(), String> {
    with_scope(|sc| match sc.names.get(s) {
        Some(&k) if k == want => Ok(()),
        Some(&k) => Err(format!("`{s}` is a {k}, not a {want}")),
        None => Err(format!(
            "unknown {want} `{s}` (names are bound before use: `devices:`, `name:` of \
             domain_alloc, `as:` of calls that return a value)"
        )),
    })
}

/// A name this step binds (`as:`, `name:`); binding a name twice is an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewName<const K: u8>(pub String);

impl<'de, const K: u8> Deserialize<'de> for NewName<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar(d, |s| {
            if !valid_name(&s) {
                return Err(format!(
                    "`{s}` is not a valid name (a letter or _, then letters, digits, _ or -)"
                ));
            }
            with_scope(|sc| {
                if let Some(k) = sc.names.get(&s) {
                    return Err(format!("`{s}` is already bound (a {k})"));
                }
                sc.names.insert(s.clone(), kind_of(K));
                Ok(())
            })?;
            Ok(NewName(s))
        })
    }
}

/// A device: a declared name, or a raw requester ID `bb:dd.f`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DevRef {
    Name(String),
    Rid(Rid),
}

impl<'de> Deserialize<'de> for DevRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar(d, |s| {
            if s.contains(':') {
                parse_rid(&s).map(DevRef::Rid)
            } else {
                lookup(&s, Kind::Device)?;
                Ok(DevRef::Name(s))
            }
        })
    }
}

/// A number, or a name bound to a number of kind `K` (a PASID, a DMA address) with an
/// optional `+offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValRef<const K: u8> {
    Num(u64),
    Name(String, u64),
}

impl<'de, const K: u8> Deserialize<'de> for ValRef<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const K: u8>;
        impl<const K: u8> Visitor<'_> for V<K> {
            type Value = ValRef<K>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a number or the name of a {}", kind_of(K))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ValRef::Num(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                NumVisitor.visit_i64(v).map(ValRef::Num)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                if s.trim().starts_with(|c: char| c.is_ascii_digit()) {
                    return parse_num(s).map(ValRef::Num).map_err(E::custom);
                }
                let (name, off) = match s.split_once('+') {
                    Some((n, o)) => (n.trim(), parse_num(o).map_err(E::custom)?),
                    None => (s.trim(), 0),
                };
                lookup(name, kind_of(K)).map_err(E::custom)?;
                Ok(ValRef::Name(name.to_owned(), off))
            }
        }
        d.deserialize_any(V::<K>)
    }
}

pub type PasidRef = ValRef<PASID>;
pub type Addr = ValRef<IOVA>;

/// One or several numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Words(pub Vec<u64>);

impl<'de> Deserialize<'de> for Words {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum W {
            One(Num),
            Many(Vec<Num>),
        }
        match W::deserialize(d) {
            Ok(W::One(n)) => Ok(Words(vec![n.0])),
            Ok(W::Many(v)) => Ok(Words(v.into_iter().map(|n| n.0).collect())),
            Err(_) => Err(de::Error::custom("expected a number or a list of numbers")),
        }
    }
}

/// A fault reason by its code (`0x5D`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault(pub FaultReason);

impl<'de> Deserialize<'de> for Fault {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        number(d, |n| {
            u8::try_from(n)
                .ok()
                .and_then(FaultReason::from_code)
                .map(Fault)
                .ok_or_else(|| {
                    format!(
                        "{n:#x} is not a fault reason of SPEC.md (one of {})",
                        FaultReason::ALL
                            .iter()
                            .map(|r| format!("{:#04x}", r.code()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
        })
    }
}

const ERRNOS: [Errno; 10] = [
    Errno::EPERM,
    Errno::ENOENT,
    Errno::ENOMEM,
    Errno::EFAULT,
    Errno::EBUSY,
    Errno::EEXIST,
    Errno::ENODEV,
    Errno::EINVAL,
    Errno::ENOSPC,
    Errno::EOPNOTSUPP,
];

/// A Linux error number by name (`EBUSY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrnoName(pub Errno);

impl<'de> Deserialize<'de> for ErrnoName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar(d, |s| {
            ERRNOS
                .iter()
                .find(|e| e.to_string() == s)
                .map(|&e| ErrnoName(e))
                .ok_or_else(|| {
                    format!(
                        "unknown errno `{s}` (one of {})",
                        ERRNOS
                            .iter()
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
        })
    }
}

/// IOMMU mapping permissions: `r`, `w` or `rw`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtStr(pub Prot);

impl<'de> Deserialize<'de> for ProtStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar(d, |s| match s.as_str() {
            "r" => Ok(ProtStr(Prot::R)),
            "w" => Ok(ProtStr(Prot::W)),
            "rw" => Ok(ProtStr(Prot::RW)),
            _ => Err(format!("`{s}` is not a mapping permission (r, w or rw)")),
        })
    }
}

/// CPU page permissions: `r`, `rw`, `rx`, `rwx` (user pages unless `user: false`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmProtStr {
    pub write: bool,
    pub exec: bool,
}

impl<'de> Deserialize<'de> for MmProtStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar(d, |s| {
            let (write, exec) = match s.as_str() {
                "r" => (false, false),
                "rw" => (true, false),
                "rx" => (false, true),
                "rwx" => (true, true),
                _ => {
                    return Err(format!(
                        "`{s}` is not a CPU page permission (r, rw, rx or rwx)"
                    ))
                }
            };
            Ok(MmProtStr { write, exec })
        })
    }
}

// ---------------------------------------------------------------------------------------
// Cross-field checks that keep the location of the mapping they belong to
// ---------------------------------------------------------------------------------------

/// A mapping whose fields are checked together after they are read.
pub trait Check: Sized {
    fn check(self) -> Result<Self, String>;
}

/// `T` read from a mapping (or, for steps, a bare word) and then [`Check`]ed; an error is
/// reported at the mapping's position.
#[derive(Clone, Debug)]
pub struct Checked<T>(pub T);

impl<'de, T: DeserializeOwned + Check> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: DeserializeOwned + Check> Visitor<'de> for V<T> {
            type Value = Checked<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let t = T::deserialize(de::value::MapAccessDeserializer::new(map))?;
                t.check().map(Checked).map_err(de::Error::custom)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

// ---------------------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------------------

/// A parsed vector.
#[derive(Clone, Debug)]
pub struct Vector {
    pub name: String,
    pub description: Option<String>,
    pub seed: u64,
    pub devices: Vec<DeviceDecl>,
    pub memory: Option<Memory>,
    pub registers: Vec<RegWrite>,
    pub steps: Vec<Step>,
    /// The file it was read from.
    pub file: PathBuf,
}

impl Vector {
    /// Kernel-level (the driver model programs the DUT) rather than hardware-level.
    pub fn kernel_level(&self) -> bool {
        !self.devices.is_empty()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVector {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    seed: Option<Num>,
    #[serde(default)]
    devices: Option<Devices>,
    #[serde(default)]
    memory: Option<Checked<Memory>>,
    #[serde(default)]
    registers: Vec<Checked<RegWrite>>,
    steps: Vec<StepIn>,
}

/// The `devices:` list; reading it makes the vector kernel-level.
struct Devices(Vec<DeviceDecl>);

impl<'de> Deserialize<'de> for Devices {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<DeviceDecl>::deserialize(d)?;
        if !v.is_empty() {
            with_scope(|sc| {
                sc.kernel = true;
                Ok(())
            })
            .map_err(de::Error::custom)?;
        }
        Ok(Devices(v))
    }
}

/// A PCI function the kernel knows (`iommu_probe_device`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceDecl {
    pub name: NewName<DEVICE>,
    pub rid: RidStr,
    /// `dev->iommu->max_pasids`; 0 = no PASID capability.
    #[serde(default = "default_max_pasids")]
    pub max_pasids: Num,
    #[serde(default)]
    pub ats: bool,
}

fn default_max_pasids() -> Num {
    Num(1 << 20)
}

/// A requester ID written `bb:dd.f`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RidStr(pub Rid);

impl<'de> Deserialize<'de> for RidStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar(d, |s| parse_rid(&s).map(RidStr))
    }
}

/// Hardware-level memory contents.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// 64-bit words: `{addr: A, value: V}` or consecutive words `{addr: A, value: [V0, V1]}`.
    #[serde(default)]
    pub pokes: Vec<MemPoke>,
    /// A binary file of 4 KiB pages and the address of each.
    #[serde(default)]
    pub image: Option<Checked<Image>>,
    /// Address ranges whose reads fail (access-error faults).
    #[serde(default)]
    pub errors: Vec<Checked<ErrorRange>>,
}

impl Check for Memory {
    fn check(self) -> Result<Self, String> {
        Ok(self)
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemPoke {
    pub addr: Num,
    pub value: Words,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRange {
    pub start: Num,
    /// Bytes (default one 64-bit word).
    #[serde(default)]
    pub len: Option<Num>,
}

impl Check for ErrorRange {
    fn check(self) -> Result<Self, String> {
        if self.len.is_some_and(|l| l.0 == 0) {
            return Err("`len: 0` covers nothing".into());
        }
        Ok(self)
    }
}

/// A memory image: page `i` of `file` (relative to the vector) is placed at `pages[i]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    pub file: String,
    pub pages: Vec<Num>,
    #[serde(skip)]
    pub data: Vec<u8>,
}

impl Check for Image {
    fn check(mut self) -> Result<Self, String> {
        let base = with_scope(|sc| Ok(sc.base.clone()))?;
        let path = base.join(&self.file);
        self.data = std::fs::read(&path).map_err(|e| format!("image `{}`: {e}", path.display()))?;
        let want = self.pages.len() as u64 * PAGE_SIZE;
        if self.data.len() as u64 != want {
            return Err(format!(
                "image `{}` has {} bytes; {} pages need {want}",
                path.display(),
                self.data.len(),
                self.pages.len()
            ));
        }
        let mut seen = BTreeSet::new();
        for p in &self.pages {
            if p.0 & (PAGE_SIZE - 1) != 0 {
                return Err(format!("page address {:#x} is not 4 KiB aligned", p.0));
            }
            if !seen.insert(p.0) {
                return Err(format!("page {:#x} is listed twice", p.0));
            }
        }
        Ok(self)
    }
}

/// A register write. Writing GCMD waits, as Linux does, until GSTS shows the TE and QIE
/// values written and, for SRTP, until GSTS.RTPS is set.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegWrite {
    pub reg: RegName,
    pub value: Num,
    #[serde(default)]
    pub width: Option<Num>,
}

impl Check for RegWrite {
    fn check(self) -> Result<Self, String> {
        match self.width.map(|w| w.0) {
            None | Some(32) | Some(64) => {}
            Some(w) => return Err(format!("width {w}: registers are 32 or 64 bits wide")),
        }
        if self.width().0 == 32 && self.value.0 > u64::from(u32::MAX) {
            return Err(format!(
                "{:#x} does not fit the 32-bit register {}",
                self.value.0, self.reg.name
            ));
        }
        Ok(self)
    }
}

impl RegWrite {
    /// The register offset and whether the access is 64-bit.
    fn width(&self) -> (u32, u16) {
        let w = self
            .width
            .map_or(if self.reg.wide { 64 } else { 32 }, |w| w.0 as u32);
        (w, self.reg.offset)
    }
}

const REGS: [(&str, u16, bool); 14] = [
    ("VER", reg::VER, false),
    ("CAP", reg::CAP, true),
    ("ECAP", reg::ECAP, true),
    ("GCMD", reg::GCMD, false),
    ("GSTS", reg::GSTS, false),
    ("RTADDR", reg::RTADDR, true),
    ("FSTS", reg::FSTS, false),
    ("FECTL", reg::FECTL, false),
    ("IQH", reg::IQH, true),
    ("IQT", reg::IQT, true),
    ("IQA", reg::IQA, true),
    ("ICS", reg::ICS, false),
    ("IECTL", reg::IECTL, false),
    ("IQER", reg::IQER, true),
];

/// A register by name (`RTADDR`) or byte offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegName {
    pub name: String,
    pub offset: u16,
    pub wide: bool,
}

impl<'de> Deserialize<'de> for RegName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RegName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a register name or offset")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RegName, E> {
                if v >= 0x1000 || v & 3 != 0 {
                    return Err(E::custom(format!(
                        "register offset {v:#x} is not a DW-aligned offset below 0x1000"
                    )));
                }
                Ok(RegName {
                    name: format!("{v:#x}"),
                    offset: v as u16,
                    wide: false,
                })
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RegName, E> {
                if s.starts_with(|c: char| c.is_ascii_digit()) {
                    return self.visit_u64(parse_num(s).map_err(E::custom)?);
                }
                REGS.iter()
                    .find(|r| r.0 == s)
                    .map(|&(n, offset, wide)| RegName {
                        name: n.to_owned(),
                        offset,
                        wide,
                    })
                    .ok_or_else(|| {
                        E::custom(format!(
                            "unknown register `{s}` (one of {}, or a byte offset)",
                            REGS.iter().map(|r| r.0).collect::<Vec<_>>().join(", ")
                        ))
                    })
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------------------

/// One step of a scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Step {
    DomainAlloc(Checked<DomainAlloc>),
    DomainFree(DomainOnly),
    AttachDevice(DevDomain),
    AllocGlobalPasid(DevReturns<PASID>),
    FreeGlobalPasid(PasidOnly),
    AttachDevicePasid(DevDomainPasid),
    DetachDevicePasid(DevDomainPasid),
    EnableDmaPasid(DevReturns<PASID>),
    DisableDmaPasid(DevOnly),
    Map(MapCall),
    Unmap(UnmapCall),
    IotlbSync(DomainOnly),
    DmaMapSingle(DmaMap),
    DmaUnmapSingle(DmaUnmap),
    MmCreate(MmCreate),
    MmDestroy(MmOnly),
    MmMap(MmMapCall),
    MmUnmap(MmUnmapCall),
    SvaBind(SvaBind),
    SvaUnbind(DevMm),
    Tlp(Checked<Tlp>),
    Poke(Checked<Poke>),
    Poison(Checked<Poison>),
    Heal(Empty),
    Invalidate(Empty),
    SetRtaddr(SetRtaddr),
    WriteRegister(Checked<RegWrite>),
}

impl Step {
    /// The step's key, e.g. `attach_device_pasid`.
    pub fn keyword(&self) -> &'static str {
        match self {
            Step::DomainAlloc(_) => "domain_alloc",
            Step::DomainFree(_) => "domain_free",
            Step::AttachDevice(_) => "attach_device",
            Step::AllocGlobalPasid(_) => "alloc_global_pasid",
            Step::FreeGlobalPasid(_) => "free_global_pasid",
            Step::AttachDevicePasid(_) => "attach_device_pasid",
            Step::DetachDevicePasid(_) => "detach_device_pasid",
            Step::EnableDmaPasid(_) => "enable_dma_pasid",
            Step::DisableDmaPasid(_) => "disable_dma_pasid",
            Step::Map(_) => "map",
            Step::Unmap(_) => "unmap",
            Step::IotlbSync(_) => "iotlb_sync",
            Step::DmaMapSingle(_) => "dma_map_single",
            Step::DmaUnmapSingle(_) => "dma_unmap_single",
            Step::MmCreate(_) => "mm_create",
            Step::MmDestroy(_) => "mm_destroy",
            Step::MmMap(_) => "mm_map",
            Step::MmUnmap(_) => "mm_unmap",
            Step::SvaBind(_) => "sva_bind",
            Step::SvaUnbind(_) => "sva_unbind",
            Step::Tlp(_) => "tlp",
            Step::Poke(_) => "poke",
            Step::Poison(_) => "poison",
            Step::Heal(_) => "heal",
            Step::Invalidate(_) => "invalidate",
            Step::SetRtaddr(_) => "set_rtaddr",
            Step::WriteRegister(_) => "write_register",
        }
    }

    /// Steps a hardware-level vector may use.
    fn hardware_level(&self) -> bool {
        matches!(self, Step::Tlp(_) | Step::WriteRegister(_))
    }
}

/// Wraps [`Step`] so that a step that does not fit the vector's level is reported at the
/// step.
struct StepIn(Step);

impl<'de> Deserialize<'de> for StepIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StepIn;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a step: a mapping with one key, e.g. `map: {...}`")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StepIn, A::Error> {
                let s = Step::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let kernel = with_scope(|sc| Ok(sc.kernel)).map_err(de::Error::custom)?;
                if !kernel && !s.hardware_level() {
                    return Err(de::Error::custom(format!(
                        "`{}` needs the kernel: declare `devices:` (before `steps:`); \
                         hardware-level vectors use `memory:`, `registers:`, `tlp` and \
                         `write_register`",
                        s.keyword()
                    )));
                }
                Ok(StepIn(s))
            }
        }
        d.deserialize_map(V)
    }
}

/// No fields: `heal: {}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DomType {
    Blocked,
    Identity,
    Paging,
    Sva,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageName {
    First,
    Second,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainAlloc {
    pub name: NewName<DOMAIN>,
    #[serde(rename = "type")]
    pub ty: DomType,
    #[serde(default)]
    pub stage: Option<StageName>,
    #[serde(default)]
    pub mm: Option<Name<MM>>,
    #[serde(default)]
    pub errno: Option<ErrnoName>,
}

impl Check for DomainAlloc {
    fn check(self) -> Result<Self, String> {
        match (self.ty, &self.stage, &self.mm) {
            (DomType::Paging, Some(_), None) | (DomType::Sva, None, Some(_)) => Ok(self),
            (DomType::Blocked | DomType::Identity, None, None) => Ok(self),
            (DomType::Paging, _, _) => {
                Err("a paging domain needs `stage: first|second` (and no `mm:`)".into())
            }
            (DomType::Sva, _, _) => Err("an sva domain needs `mm:` (and no `stage:`)".into()),
            _ => Err("`stage:` and `mm:` belong to paging and sva domains".into()),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainOnly {
    pub domain: Name<DOMAIN>,
    #[serde(default)]
    pub errno: Option<ErrnoName>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevOnly {
    pub dev: Name<DEVICE>,
    #[serde(default)]
    pub errno: Option<ErrnoName>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasidOnly {
    pub pasid: PasidRef,
    #[serde(default)]
    pub errno: Option<ErrnoName>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmOnly {
    pub mm: Name<MM>,
    #[serde(default)]
    pub errno: Option<ErrnoName>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevDomain {
    pub dev: Name<DEVICE>,
    pub domain: Name<DOMAIN>,
    #[serde(default)]
    pub errno: Option<ErrnoName>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevDomainPasid {
    pub domain: Name<DOMAIN>,
    pub dev: Name<DEVICE>,
    pub pasid: PasidRef,
    #[serde(default)]
    pub errno: Option<ErrnoName>,
}

/// A call on a device that returns a value: bound to `as:`, compared with `returns:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevReturns<const K: u8> {
    pub dev: Name<DEVICE>,
    #[serde(default, rename = "as")]
    pub bind: Option<NewName<K>>,
    #[serde(default)]
    pub returns: Option<ValRef<K>>,
    #[serde(default)]
    pub errno: Option<ErrnoName>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapCall {
    pub domain: Name<DOMAIN>,
    pub iova: Num,
    pub pa: Num,
    pub size: Num,
    pub prot: ProtStr,
    #[serde(default)]
    pub errno: Option<ErrnoName>,
}

/// `iommu_unmap` (with `sync: false`, `iommu_unmap_fast`: the flush waits for `iotlb_sync`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnmapCall {
    pub domain: Name<DOMAIN>,
    pub iova: Num,
    pub size: Num,
    #[serde(default = "yes")]
    pub sync: bool,
    /// Bytes the call must report unmapped.
    #[serde(default)]
    pub unmapped: Option<Num>,
    #[serde(default)]
    pub errno: Option<ErrnoName>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DirName {
    #[default]
    Bidirectional,
    ToDevice,
    FromDevice,
}

impl DirName {
    fn dir(self) -> DmaDirection {
        match self {
            DirName::Bidirectional => DmaDirection::Bidirectional,
            DirName::ToDevice => DmaDirection::ToDevice,
            DirName::FromDevice => DmaDirection::FromDevice,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DmaMap {
    pub dev: Name<DEVICE>,
    pub pa: Num,
    pub size: Num,
    #[serde(default)]
    pub dir: DirName,
    #[serde(default, rename = "as")]
    pub bind: Option<NewName<IOVA>>,
    #[serde(default)]
    pub returns: Option<Addr>,
    #[serde(default)]
    pub errno: Option<ErrnoName>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DmaUnmap {
    pub dev: Name<DEVICE>,
    pub addr: Addr,
    pub size: Num,
    #[serde(default)]
    pub dir: DirName,
    #[serde(default)]
    pub errno: Option<ErrnoName>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmCreate {
    #[serde(rename = "as")]
    pub bind: NewName<MM>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmMapCall {
    pub mm: Name<MM>,
    pub va: Num,
    pub pa: Num,
    pub size: Num,
    pub prot: MmProtStr,
    /// U/S of the CPU page (default: a user page).
    #[serde(default = "yes")]
    pub user: bool,
    #[serde(default)]
    pub errno: Option<ErrnoName>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmUnmapCall {
    pub mm: Name<MM>,
    pub va: Num,
    pub size: Num,
    #[serde(default)]
    pub unmapped: Option<Num>,
    #[serde(default)]
    pub errno: Option<ErrnoName>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SvaBind {
    pub dev: Name<DEVICE>,
    pub mm: Name<MM>,
    #[serde(default, rename = "as")]
    pub bind: Option<NewName<PASID>>,
    #[serde(default)]
    pub returns: Option<PasidRef>,
    #[serde(default)]
    pub errno: Option<ErrnoName>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevMm {
    pub dev: Name<DEVICE>,
    pub mm: Name<MM>,
    #[serde(default)]
    pub errno: Option<ErrnoName>,
}

/// One memory request TLP.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tlp {
    /// A declared device or a requester ID `bb:dd.f`.
    #[serde(alias = "rid")]
    pub dev: DevRef,
    /// The PASID prefix (none: a request without PASID).
    #[serde(default)]
    pub pasid: Option<PasidRef>,
    /// Privileged Mode Requested (prefix bit 23).
    #[serde(default)]
    pub pmr: bool,
    /// Execute Requested (prefix bit 22).
    #[serde(default)]
    pub er: bool,
    #[serde(default)]
    pub read: Option<Addr>,
    #[serde(default)]
    pub write: Option<Addr>,
    /// Bytes (default 4); the TLP's Length and byte enables cover exactly these bytes.
    #[serde(default)]
    pub len: Option<Num>,
    #[serde(default)]
    pub tag: Option<Num>,
    #[serde(default)]
    pub expect: Option<Checked<Expect>>,
}

impl Check for Tlp {
    fn check(self) -> Result<Self, String> {
        if self.read.is_some() == self.write.is_some() {
            return Err("a TLP has exactly one of `read: ADDR` and `write: ADDR`".into());
        }
        if (self.pmr || self.er) && self.pasid.is_none() {
            return Err("`pmr` and `er` are bits of the PASID prefix: give `pasid:`".into());
        }
        if let Some(ValRef::Num(p)) = self.pasid {
            if p > 0xF_FFFF {
                return Err(format!("PASID {p:#x} is wider than 20 bits"));
            }
        }
        if let Some(l) = self.len {
            if l.0 > 4096 {
                return Err(format!(
                    "len {:#x}: a request carries at most 4096 bytes",
                    l.0
                ));
            }
        }
        if self.tag.is_some_and(|t| t.0 > 0x3FF) {
            return Err("tags are 10 bits".into());
        }
        Ok(self)
    }
}

/// A pinned expectation of a TLP, checked in addition to the golden walker and the oracle.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub pa: Option<Num>,
    #[serde(default)]
    pub translated: Option<bool>,
    #[serde(default)]
    pub same_pa_as_previous: Option<bool>,
    #[serde(default)]
    pub fault: Option<Fault>,
    /// With `fault:`: whether the fault is recorded (false: FPD suppresses it).
    #[serde(default)]
    pub recorded: Option<bool>,
    #[serde(default)]
    pub untranslated: Option<bool>,
    #[serde(default)]
    pub malformed: Option<bool>,
}

impl Check for Expect {
    fn check(self) -> Result<Self, String> {
        let n = usize::from(self.pa.is_some())
            + usize::from(self.translated.is_some())
            + usize::from(self.same_pa_as_previous.is_some())
            + usize::from(self.fault.is_some())
            + usize::from(self.untranslated.is_some())
            + usize::from(self.malformed.is_some());
        if n != 1 {
            return Err(
                "an expectation names one outcome: `pa:`, `translated: true`, \
                        `same_pa_as_previous: true`, `fault:`, `untranslated: true` or \
                        `malformed: true`"
                    .into(),
            );
        }
        if [
            self.translated,
            self.same_pa_as_previous,
            self.untranslated,
            self.malformed,
        ]
        .contains(&Some(false))
        {
            return Err("outcome flags can only be `true`".into());
        }
        if self.recorded.is_some() && self.fault.is_none() {
            return Err("`recorded:` goes with `fault:`".into());
        }
        Ok(self)
    }
}

/// Which structure a [`Poke`] or [`Poison`] addresses.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryOf {
    pub dev: DevRef,
    /// Default: the context entry's RID_PASID (the PASID of requests without a prefix).
    #[serde(default)]
    pub pasid: Option<PasidRef>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PteOf {
    pub dev: DevRef,
    #[serde(default)]
    pub pasid: Option<PasidRef>,
    pub addr: Addr,
    /// 4 = top level, 1 = 4 KiB leaf table (default 1).
    #[serde(default)]
    pub level: Option<Num>,
}

/// The place of a word: a physical address or a structure the walk of a device uses.
#[derive(Clone, Debug, Default)]
pub struct Locator {
    pub addr: Option<Num>,
    /// The root entry of the device's bus; `qw` defaults to the half that covers its devfn.
    pub root_entry: Option<DevRef>,
    pub context_entry: Option<DevRef>,
    pub pasid_dir_entry: Option<EntryOf>,
    pub pasid_entry: Option<EntryOf>,
    pub pte: Option<PteOf>,
    /// 64-bit word within the structure (default 0).
    pub qw: Option<Num>,
}

/// The locator fields, shared by [`Poke`] and [`Poison`].
macro_rules! locator_struct {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $v:vis $f:ident: $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            #[serde(default)]
            pub addr: Option<Num>,
            #[serde(default)]
            pub root_entry: Option<DevRef>,
            #[serde(default)]
            pub context_entry: Option<DevRef>,
            #[serde(default)]
            pub pasid_dir_entry: Option<EntryOf>,
            #[serde(default)]
            pub pasid_entry: Option<EntryOf>,
            #[serde(default)]
            pub pte: Option<PteOf>,
            #[serde(default)]
            pub qw: Option<Num>,
            $($(#[$fm])* $v $f: $t,)*
        }

        impl $name {
            /// Where the word is.
            pub fn at(&self) -> Locator {
                Locator {
                    addr: self.addr,
                    root_entry: self.root_entry.clone(),
                    context_entry: self.context_entry.clone(),
                    pasid_dir_entry: self.pasid_dir_entry.clone(),
                    pasid_entry: self.pasid_entry.clone(),
                    pte: self.pte.clone(),
                    qw: self.qw,
                }
            }
        }
    };
}

impl Locator {
    fn check(&self) -> Result<(), String> {
        let n = usize::from(self.addr.is_some())
            + usize::from(self.root_entry.is_some())
            + usize::from(self.context_entry.is_some())
            + usize::from(self.pasid_dir_entry.is_some())
            + usize::from(self.pasid_entry.is_some())
            + usize::from(self.pte.is_some());
        if n != 1 {
            return Err("name one place: `addr:`, `root_entry:`, `context_entry:`, \
                        `pasid_dir_entry:`, `pasid_entry:` or `pte:`"
                .into());
        }
        let max_qw = if self.root_entry.is_some() {
            1
        } else if self.context_entry.is_some() {
            3
        } else if self.pasid_entry.is_some() {
            7
        } else {
            0
        };
        if let Some(q) = self.qw {
            if q.0 > max_qw {
                return Err(format!(
                    "qw {} is beyond this structure (0..={max_qw})",
                    q.0
                ));
            }
        }
        if let Some(a) = self.addr {
            if a.0 & 7 != 0 {
                return Err(format!("{:#x} is not 8-byte aligned", a.0));
            }
        }
        if let Some(p) = &self.pte {
            if p.level.is_some_and(|l| !(1..=4).contains(&l.0)) {
                return Err("paging levels are 1-4".into());
            }
        }
        Ok(())
    }
}

locator_struct! {
    /// Changes one 64-bit word of memory, then (by default) invalidates every cache of the
    /// DUT through its queue, as a driver does after changing a structure.
    Poke {
        #[serde(default)]
        pub value: Option<Num>,
        #[serde(default)]
        pub set: Option<Num>,
        #[serde(default)]
        pub clear: Option<Num>,
        #[serde(default = "yes")]
        pub flush: bool,
    }
}

impl Check for Poke {
    fn check(self) -> Result<Self, String> {
        self.at().check()?;
        match (self.value, self.set, self.clear) {
            (Some(_), None, None) | (None, Some(_), _) | (None, None, Some(_)) => Ok(self),
            (None, None, None) => Err("give `value:` or `set:`/`clear:`".into()),
            _ => Err("`value:` replaces the word; it does not go with `set:`/`clear:`".into()),
        }
    }
}

locator_struct! {
    /// Makes reads of one word (or of `len` bytes at `addr`) fail, then invalidates.
    Poison {
        #[serde(default)]
        pub len: Option<Num>,
    }
}

impl Check for Poison {
    fn check(self) -> Result<Self, String> {
        self.at().check()?;
        if self.len.is_some() && self.addr.is_none() {
            return Err("`len:` goes with `addr:`; structures poison one word".into());
        }
        Ok(self)
    }
}

/// Reprograms RTADDR with the driver's root table and this TTM, latches it (SRTP) and
/// invalidates.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRtaddr {
    pub ttm: Num,
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

/// FNV-1a of the name: the default seed.
fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Reads a vector from text; `file` names it in errors and image paths are relative to
/// `base`.
pub fn parse_str(text: &str, file: &Path, base: &Path) -> Result<Vector, VectorError> {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            SCOPE.with(|s| *s.borrow_mut() = None);
        }
    }
    SCOPE.with(|s| {
        *s.borrow_mut() = Some(Scope {
            names: BTreeMap::new(),
            base: base.to_owned(),
            kernel: false,
        })
    });
    let _reset = Reset;
    let raw: RawVector = serde_yaml::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        VectorError::Parse {
            file: file.to_owned(),
            line,
            column,
            message: strip_location(&e.to_string()),
        }
    })?;
    let devices = raw.devices.map(|d| d.0).unwrap_or_default();
    if !devices.is_empty() && (raw.memory.is_some() || !raw.registers.is_empty()) {
        return Err(VectorError::Invalid {
            file: file.to_owned(),
            message: "a kernel-level vector (with `devices:`) changes hardware with steps \
                      (`poke`, `poison`, `set_rtaddr`, `write_register`), not with \
                      `memory:`/`registers:`"
                .into(),
        });
    }
    Ok(Vector {
        seed: raw.seed.map_or_else(|| name_seed(&raw.name), |s| s.0),
        name: raw.name,
        description: raw.description,
        devices,
        memory: raw.memory.map(|m| m.0),
        registers: raw.registers.into_iter().map(|r| r.0).collect(),
        steps: raw.steps.into_iter().map(|s| s.0).collect(),
        file: file.to_owned(),
    })
}

/// serde_yaml appends " at line L column C"; the location is reported in front instead.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Reads a vector file.
pub fn parse_file(path: &Path) -> Result<Vector, VectorError> {
    let text = std::fs::read_to_string(path).map_err(|source| VectorError::Io {
        file: path.to_owned(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_str(&text, path, base)
}

/// The vector files under `paths`: files as given, directories' `*.yaml`/`*.yml` (sorted).
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading directory {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            v.sort();
            out.extend(v);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("{}: no such file or directory", p.display());
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------

/// How vectors run.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Driver bug switches (kernel-level vectors).
    pub quirks: DriverQuirks,
    pub timing: MemTiming,
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
    pub cycles: u64,
}

/// A value bound to a name while running.
#[derive(Clone, Copy, Debug)]
enum Val {
    Device(Rid),
    Domain(DomainId),
    Pasid(u32),
    Mm(MmId),
    Iova(u64),
}

/// The DUT under a vector: with the kernel and driver, or bare.
enum Sys {
    Kernel(Box<RtlKernel>),
    Bare(Box<Env>),
}

struct Runner {
    sys: Sys,
    vals: BTreeMap<String, Val>,
    hw: HwState,
    /// Hardware was changed behind the kernel's back: the oracle no longer applies.
    tainted: bool,
    last_pa: Option<u64>,
    rep: VectorReport,
    tag: u16,
}

fn errno_msg(call: &str, got: Result<(), Errno>, want: Option<ErrnoName>) -> Result<bool> {
    match (got, want) {
        (Ok(()), None) => Ok(true),
        (Err(e), Some(w)) if e == w.0 => Ok(false),
        (Ok(()), Some(w)) => bail!("{call} succeeded; expected {}", w.0),
        (Err(e), Some(w)) => bail!("{call} returned {e}; expected {}", w.0),
        (Err(e), None) => bail!("{call} returned {e} ({})", e.to_kernel()),
    }
}

impl Runner {
    fn k(&mut self) -> Result<&mut RtlKernel> {
        match &mut self.sys {
            Sys::Kernel(k) => Ok(k),
            Sys::Bare(_) => bail!("this step needs the kernel (declare `devices:`)"),
        }
    }

    fn env(&mut self) -> &mut Env {
        match &mut self.sys {
            Sys::Kernel(k) => &mut k.ops_mut().hw_mut().env,
            Sys::Bare(e) => e,
        }
    }

    fn mem(&mut self) -> Result<&mut Mem> {
        Ok(&mut self.env().mem.as_mut().context("no memory agent")?.mem)
    }

    fn rd(&mut self, pa: u64) -> Result<u64> {
        self.mem()?
            .read64(pa)
            .map_err(|e| anyhow!("reading {pa:#x}: {e}"))
    }

    fn get(&self, name: &str) -> Result<Val> {
        self.vals.get(name).copied().ok_or_else(|| {
            anyhow!("`{name}` has no value: the call that binds it did not return one")
        })
    }

    fn dev(&self, n: &Name<DEVICE>) -> Result<Rid> {
        match self.get(&n.0)? {
            Val::Device(r) => Ok(r),
            v => bail!("`{}` is {v:?}, not a device", n.0),
        }
    }

    fn devref(&self, d: &DevRef) -> Result<Rid> {
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

    fn value<const K: u8>(&self, r: &ValRef<K>) -> Result<u64> {
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

    fn pasid(&self, r: &PasidRef) -> Result<u32> {
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

    /// Runs one step.
    fn step(&mut self, s: &Step) -> Result<()> {
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
            Step::Tlp(Checked(t)) => self.tlp(t)?,
            Step::Poke(Checked(p)) => {
                let at = self.locate(&p.at())?;
                let old = self.rd(at)?;
                let new = match p.value {
                    Some(v) => v.0,
                    None => (old & !p.clear.map_or(0, |c| c.0)) | p.set.map_or(0, |s| s.0),
                };
                self.mem()?
                    .write64(at, new)
                    .map_err(|e| anyhow!("writing {at:#x}: {e}"))?;
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
                self.mem()?.clear_error_ranges();
                self.flush()?;
            }
            Step::Invalidate(_) => self.flush()?,
            Step::SetRtaddr(c) => {
                ensure!(c.ttm.0 <= 3, "TTM is 2 bits");
                let root = self.k()?.ops().root_table();
                let rtaddr = root | (c.ttm.0 << 10);
                let env = self.env();
                env.write64(reg::RTADDR, rtaddr)?;
                let sts = env.read32(reg::GSTS)? & (gcmd::TE | gcmd::QIE);
                env.write32(reg::GCMD, sts | gcmd::SRTP)?;
                env.poll32(reg::GSTS, gcmd::SRTP, gcmd::SRTP, 1000)?;
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
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        flush_all(self.k()?).context("global invalidation")
    }

    fn write_register(&mut self, w: &RegWrite) -> Result<()> {
        let (width, off) = w.width();
        let env = self.env();
        if width == 64 {
            env.write64(off, w.value.0)?;
        } else {
            env.write32(off, w.value.0 as u32)?;
        }
        if off == reg::GCMD {
            let v = w.value.0 as u32;
            for bit in [gcmd::TE, gcmd::QIE] {
                env.poll32(reg::GSTS, bit, v & bit, 1000)
                    .with_context(|| format!("GCMD {v:#010x}: waiting for GSTS"))?;
            }
            let mut rtaddr = None;
            if v & gcmd::SRTP != 0 {
                env.poll32(reg::GSTS, gcmd::SRTP, gcmd::SRTP, 1000)
                    .context("GCMD.SRTP: waiting for GSTS.RTPS")?;
                rtaddr = Some(env.read64(reg::RTADDR)?);
            }
            let te = env.read32(reg::GSTS)? & gcmd::TE != 0;
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
            return Ok(self.root_entry(rid) + half * 8);
        }
        if let Some(d) = &l.context_entry {
            let rid = self.devref(d)?;
            return Ok(self.context_entry(rid)? + qw * 8);
        }
        if let Some(x) = &l.pasid_dir_entry {
            let rid = self.devref(&x.dev)?;
            let p = self.pasid_or_rid_pasid(rid, x.pasid.as_ref())?;
            return self.pasid_dir_entry(rid, p);
        }
        if let Some(x) = &l.pasid_entry {
            let rid = self.devref(&x.dev)?;
            let p = self.pasid_or_rid_pasid(rid, x.pasid.as_ref())?;
            return Ok(self.pasid_entry(rid, p)? + qw * 8);
        }
        if let Some(x) = &l.pte {
            let rid = self.devref(&x.dev)?;
            let p = self.pasid_or_rid_pasid(rid, x.pasid.as_ref())?;
            let addr = self.value(&x.addr)?;
            let level = x.level.map_or(1, |l| l.0 as u32);
            return self.pte(rid, p, addr, level);
        }
        bail!("no place named")
    }

    fn root_entry(&self, rid: Rid) -> u64 {
        (self.hw.rtaddr & !0xFFF) + u64::from(rid >> 8) * 16
    }

    fn context_entry(&mut self, rid: Rid) -> Result<u64> {
        let upper = rid & 0x80 != 0;
        let re = self.rd(self.root_entry(rid) + if upper { 8 } else { 0 })?;
        ensure!(
            re & tables::root::PRESENT != 0,
            "{} has no context table (root entry {re:#x})",
            show_rid(rid)
        );
        Ok((re & tables::ADDR_MASK) + u64::from(rid & 0x7F) * ce::SIZE)
    }

    fn pasid_or_rid_pasid(&mut self, rid: Rid, p: Option<&PasidRef>) -> Result<u32> {
        match p {
            Some(p) => self.pasid(p),
            None => {
                let c = self.context_entry(rid)?;
                Ok((self.rd(c + 8)? & ce::RID_PASID_MASK) as u32)
            }
        }
    }

    fn pasid_dir_entry(&mut self, rid: Rid, pasid: u32) -> Result<u64> {
        let c = self.context_entry(rid)?;
        let dir = self.rd(c)? & tables::ADDR_MASK;
        Ok(dir + u64::from(pasid >> pde::SHIFT) * 8)
    }

    fn pasid_entry(&mut self, rid: Rid, pasid: u32) -> Result<u64> {
        let de = self.pasid_dir_entry(rid, pasid)?;
        let d = self.rd(de)?;
        ensure!(
            d & pde::P != 0,
            "{} PASID {pasid:#x}: the PASID-directory entry is not present",
            show_rid(rid)
        );
        Ok((d & tables::ADDR_MASK) + u64::from(pasid & 0x3F) * pe::SIZE)
    }

    fn pte(&mut self, rid: Rid, pasid: u32, addr: u64, level: u32) -> Result<u64> {
        let e = self.pasid_entry(rid, pasid)?;
        let q0 = self.rd(e)?;
        let mut table = match (q0 & pe::QW0_PGTT_MASK) >> pe::QW0_PGTT_SHIFT {
            pe::PGTT_SS => q0 & tables::ADDR_MASK,
            pe::PGTT_FS => self.rd(e + 16)? & tables::ADDR_MASK,
            t => bail!(
                "{} PASID {pasid:#x} has PGTT {t:#05b}: no page table",
                show_rid(rid)
            ),
        };
        for l in (level + 1..=4).rev() {
            let x = self.rd(table + tables::level_index(addr, l) * 8)?;
            ensure!(
                x & (ss::R | ss::W) != 0 && x & ss::PS == 0,
                "{addr:#x} has no level-{} table (level-{l} entry {x:#x})",
                l - 1
            );
            table = x & tables::ADDR_MASK;
        }
        Ok(table + tables::level_index(addr, level) * 8)
    }

    fn tlp(&mut self, t: &Tlp) -> Result<()> {
        let rid = self.devref(&t.dev)?;
        let (write, addr) = match (&t.read, &t.write) {
            (Some(a), None) => (false, self.value(a)?),
            (None, Some(a)) => (true, self.value(a)?),
            _ => bail!("a TLP has exactly one of `read:` and `write:`"),
        };
        let len = t.len.map_or(4, |l| l.0) as u32;
        self.tag = (self.tag + 1) & 0xFF;
        let tag = t.tag.map_or(self.tag, |x| x.0 as u16);
        let mut req = MemRequest::covering(write, rid, tag, addr, len)
            .map_err(|e| anyhow!("building the TLP: {e}"))?;
        if let Some(p) = &t.pasid {
            let p = self.pasid(p)?;
            ensure!(p <= 0xF_FFFF, "PASID {p:#x} is wider than 20 bits");
            req = req.with_pasid(p, t.pmr, t.er);
        }
        let greq = golden_request(&req);
        let hw = self.hw;
        let tainted = self.tainted;
        let (outcome, recorded) = match &mut self.sys {
            Sys::Kernel(k) if !k.windows().is_empty() => {
                ensure!(
                    !tainted,
                    "a TLP inside an invalidation window after hardware-level changes has \
                     no judge (complete the flush with iotlb_sync first)"
                );
                self.rep.in_window += 1;
                let env = &mut k.ops_mut().hw_mut().env;
                let got = exchange(env, &tlp::encode(&req)?, REQUEST_TIMEOUT)?;
                (dut_outcome(env, &req, &got)?, true)
            }
            Sys::Kernel(k) => {
                let j = judge(&mut k.ops_mut().hw_mut().env, &hw, &req)?;
                (j.walk.outcome, j.walk.record)
            }
            Sys::Bare(env) => {
                let j = judge(env, &hw, &req)?;
                (j.walk.outcome, j.walk.record)
            }
        };
        if let Sys::Kernel(k) = &self.sys {
            if !tainted {
                oracle::allowed(k.as_ref(), &greq)
                    .check(&outcome)
                    .map_err(|m| anyhow!("request: {req}\n  {m}"))?;
            }
        }
        self.rep.tlps += 1;
        match outcome {
            Outcome::Translated(_) => self.rep.translated += 1,
            Outcome::Fault(r) => {
                self.rep.faults.insert(r.code());
            }
            _ => {}
        }
        if let Some(Checked(x)) = &t.expect {
            self.pinned(x, &outcome, recorded)
                .map_err(|e| anyhow!("request: {req}\n  {e}"))?;
        }
        self.last_pa = match outcome {
            Outcome::Translated(pa) => Some(pa),
            _ => None,
        };
        Ok(())
    }

    fn pinned(&self, x: &Expect, got: &Outcome, recorded: bool) -> Result<()> {
        let ok = match (x, got) {
            (Expect { pa: Some(p), .. }, Outcome::Translated(pa)) => {
                ensure!(
                    *pa == p.0,
                    "pinned pa {:#x}, the DUT translated to {pa:#x}",
                    p.0
                );
                true
            }
            (
                Expect {
                    translated: Some(true),
                    ..
                },
                Outcome::Translated(_),
            ) => true,
            (
                Expect {
                    same_pa_as_previous: Some(true),
                    ..
                },
                Outcome::Translated(pa),
            ) => {
                let prev = self.last_pa.context(
                    "pinned same_pa_as_previous, but the previous TLP did not translate",
                )?;
                ensure!(
                    *pa == prev,
                    "pinned the previous TLP's pa {prev:#x}, the DUT translated to {pa:#x}"
                );
                true
            }
            (
                Expect {
                    fault: Some(f),
                    recorded: r,
                    ..
                },
                Outcome::Fault(got),
            ) => {
                ensure!(*got == f.0, "pinned fault {}, the DUT faulted {got}", f.0);
                if let Some(r) = r {
                    ensure!(
                        *r == recorded,
                        "pinned fault {} {}, the DUT {}",
                        f.0,
                        if *r { "recorded" } else { "not recorded" },
                        if recorded {
                            "recorded it"
                        } else {
                            "did not record it"
                        }
                    );
                }
                true
            }
            (
                Expect {
                    untranslated: Some(true),
                    ..
                },
                Outcome::Untranslated,
            ) => true,
            (
                Expect {
                    malformed: Some(true),
                    ..
                },
                Outcome::Malformed,
            ) => true,
            _ => false,
        };
        ensure!(ok, "pinned {}, the DUT did {got}", describe_expect(x));
        Ok(())
    }
}

fn describe_expect(x: &Expect) -> String {
    if let Some(p) = x.pa {
        format!("pa {:#x}", p.0)
    } else if let Some(f) = x.fault {
        format!("fault {}", f.0)
    } else if x.translated.is_some() {
        "a translation".into()
    } else if x.same_pa_as_previous.is_some() {
        "the previous TLP's translation".into()
    } else if x.untranslated.is_some() {
        "untranslated forwarding".into()
    } else {
        "a malformed-request rejection".into()
    }
}

/// What the DUT did with a request, as an outcome: the translated address, or the recorded
/// fault.
fn dut_outcome(env: &mut Env, req: &MemRequest, got: &[Egress]) -> Result<Outcome> {
    let recs = take_fault_records(env)?;
    match (got, recs.as_slice()) {
        ([Egress::Tx(h)], []) => match tlp::decode(&TlpWords::from_port([0; 4], 0, *h))? {
            tlp::Tlp::Mem(m) => Ok(Outcome::Translated(m.addr)),
            t => bail!("the DUT forwarded something that is not a request: {t}"),
        },
        (_, [r]) if got.iter().all(|e| matches!(e, Egress::Cpl(_))) => {
            let reason = FaultReason::from_code(r.reason).ok_or_else(|| {
                anyhow!("the DUT recorded an unknown fault reason {:#04x}", r.reason)
            })?;
            Ok(Outcome::Fault(reason))
        }
        _ => bail!(
            "the DUT answered {req} with [{}] and {} fault records",
            got.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
            recs.len()
        ),
    }
}

/// Builds the system of a vector on the DUT of `env`.
fn setup(env: &mut Env, v: &Vector, opts: &RunOptions) -> Result<Runner> {
    let (sys, hw, vals) = if v.kernel_level() {
        let hw = RtlHw::from_env(env.take(), Mem::new(), opts.timing)
            .map_err(|e| anyhow!("setting up the DUT: {e}"))?;
        let drv = Driver::new(hw, opts.quirks).map_err(|e| anyhow!("driver init: {e}"))?;
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
                        mem.write64(at, u64::from_le_bytes(b))
                            .map_err(|e| anyhow!("image page {:#x}: {e}", page.0))?;
                    }
                }
            }
            for p in &m.pokes {
                for (i, w) in p.value.0.iter().enumerate() {
                    let at = p.addr.0 + 8 * i as u64;
                    mem.write64(at, *w)
                        .map_err(|e| anyhow!("memory poke at {at:#x}: {e}"))?;
                }
            }
            for Checked(r) in &m.errors {
                let len = r.len.map_or(8, |l| l.0);
                mem.add_error_range(r.start.0, r.start.0.saturating_add(len));
            }
        }
        let mut e = env.take();
        let seed = e.dut.seed();
        e.mem = Some(MemAgent::new(mem, opts.timing, seed));
        (Sys::Bare(Box::new(e)), HwState::default(), BTreeMap::new())
    };
    let mut r = Runner {
        sys,
        vals,
        hw,
        tainted: false,
        last_pa: None,
        rep: VectorReport {
            name: v.name.clone(),
            file: v.file.clone(),
            ..VectorReport::default()
        },
        tag: 0,
    };
    for (i, w) in v.registers.iter().enumerate() {
        r.write_register(w)
            .with_context(|| format!("registers[{i}] ({} <- {:#x})", w.reg.name, w.value.0))?;
    }
    Ok(r)
}

/// Runs a parsed vector on the DUT of `env` (taken over).
pub fn run_vector(env: &mut Env, v: &Vector, opts: &RunOptions) -> Result<VectorReport> {
    let mut r = setup(env, v, opts)?;
    let start = r.env().dut.cycle();
    for (i, s) in v.steps.iter().enumerate() {
        r.step(s)
            .with_context(|| format!("step {} of {} (`{}`)", i + 1, v.steps.len(), s.keyword()))?;
        r.env().check_assertions()?;
    }
    r.rep.steps = v.steps.len();
    r.rep.cycles = r.env().dut.cycle() - start;
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
pub fn run_parsed(v: &Vector, opts: &RunOptions, dir: &Path, traced: bool) -> Result<VectorReport> {
    let out: Mutex<Option<VectorReport>> = Mutex::new(None);
    let name = format!("vector-{}", v.name);
    harness::run_test_in(dir, traced, &name, v.seed, |env| {
        let rep = run_vector(env, v, opts)?;
        *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(rep);
        Ok(())
    })
    .map_err(|f| anyhow!("{}: {f}", v.file.display()))?;
    out.into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .context("the vector produced no report")
}

/// The result of one file of a batch.
#[derive(Debug)]
pub struct FileResult {
    pub file: PathBuf,
    pub result: Result<VectorReport, String>,
}

/// Runs every file on `jobs` threads; results in file order.
pub fn run_files(files: &[PathBuf], opts: &RunOptions, jobs: usize) -> Vec<FileResult> {
    crate::pool::run(
        files,
        jobs,
        |f| FileResult {
            file: f.clone(),
            result: run_file_with(f, opts).map_err(|e| format!("{e:#}")),
        },
        |_, _, _| {},
    )
}
