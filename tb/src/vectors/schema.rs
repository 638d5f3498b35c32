//! The vector document and its steps (the schema `vectors/README.md` documents).

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use anyhow::Result;
use iommu_model::kernel::dma::DmaDirection;
use iommu_model::kernel::Rid;
use iommu_model::mem::PAGE_SIZE;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use iommu_model::regs;

use super::*;

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
    /// Driver bug switches (`DriverQuirks::NAMES`), on top of [`RunOptions::quirks`].
    pub driver_bugs: Vec<String>,
    /// Memory timing and TLP-port back-pressure (default: [`RunOptions::timing`], no
    /// back-pressure).
    pub timing: Option<Timing>,
    /// The vector passes only if the run fails with a message containing this.
    pub expect_failure: Option<String>,
    /// The ATS devices: their caches, late and lost answers ([`AtsDeviceDecl`]).
    pub ats_device: Option<AtsDeviceDecl>,
    pub steps: Vec<Step>,
    /// The file it was read from.
    pub file: PathBuf,
    /// Its text (positions of steps in failure messages).
    pub source: String,
}

impl Vector {
    /// Kernel-level (the driver model programs the DUT) rather than hardware-level.
    pub fn kernel_level(&self) -> bool {
        !self.devices.is_empty()
    }

    /// `file:line:column` of the node `path` leads to (e.g. `[Key("steps"), Index(3)]`).
    pub fn position(&self, path: &[Seg]) -> String {
        let (l, c) = locate(&self.source, path);
        format!("{}:{l}:{c}", self.file.display())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVector {
    pub(super) name: String,
    #[serde(default)]
    pub(super) description: Option<String>,
    #[serde(default)]
    pub(super) seed: Option<Num>,
    #[serde(default)]
    pub(super) devices: Vec<DeviceDecl>,
    #[serde(default)]
    pub(super) memory: Option<Checked<Memory>>,
    #[serde(default)]
    pub(super) registers: Vec<Checked<RegWrite>>,
    #[serde(default)]
    pub(super) driver_bugs: Vec<DriverBug>,
    #[serde(default)]
    pub(super) timing: Option<Checked<Timing>>,
    #[serde(default)]
    pub(super) expect_failure: Option<String>,
    #[serde(default)]
    pub(super) ats_device: Option<Checked<AtsDeviceDecl>>,
    pub(super) steps: Vec<StepIn>,
}

/// Reads a [`Step`] from a mapping with one key (`map: {...}`): serde_yaml reads enums
/// from YAML tags otherwise.
pub(super) struct StepIn(pub(super) Step);

impl<'de> Deserialize<'de> for StepIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StepIn;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a step: a mapping with one key, e.g. `map: {...}`")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<StepIn, A::Error> {
                Step::deserialize(de::value::MapAccessDeserializer::new(map)).map(StepIn)
            }
        }
        d.deserialize_map(V)
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

pub(super) fn default_max_pasids() -> Num {
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
    fn check(self) -> Result<Self, String> {
        Ok(self)
    }
}

impl Image {
    /// Reads the file (relative to `base`, the vector's folder) and checks it against the
    /// page list.
    pub(super) fn load(&mut self, base: &std::path::Path) -> Result<(), String> {
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
        Ok(())
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
    pub fn width(&self) -> (u32, u64) {
        let w = self
            .width
            .map_or(if self.reg.wide { 64 } else { 32 }, |w| w.0 as u32);
        (w, self.reg.offset)
    }
}

/// A register by name (`RTADDR`) or byte offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegName {
    pub name: String,
    pub offset: u64,
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
                if v >= regs::PAGE || v & 3 != 0 {
                    return Err(E::custom(format!(
                        "register offset {v:#x} is not a DW-aligned offset below 0x1000"
                    )));
                }
                Ok(RegName {
                    name: format!("{v:#x}"),
                    offset: v,
                    wide: false,
                })
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RegName, E> {
                if s.starts_with(|c: char| c.is_ascii_digit()) {
                    return self.visit_u64(parse_num(s).map_err(E::custom)?);
                }
                regs::REGISTERS
                    .iter()
                    .find(|r| r.name == s)
                    .map(|r| RegName {
                        name: r.name.to_owned(),
                        offset: r.offset,
                        wide: r.width == regs::Width::W64,
                    })
                    .ok_or_else(|| {
                        E::custom(format!(
                            "unknown register `{s}` (one of {}, or a byte offset)",
                            regs::REGISTERS
                                .iter()
                                .map(|r| r.name)
                                .collect::<Vec<_>>()
                                .join(", ")
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
    During(Checked<During>),
    RawTlp(Checked<RawTlp>),
    WriteMemory(Checked<WriteMemory>),
    Descriptor(Checked<DescriptorStep>),
    ReadRegister(Checked<ReadRegister>),
    Fpd(Checked<FpdCall>),
    SetRootEntry(ErrnoOnly),
    MemError(Checked<MemErrorCall>),
    ClearMemErrors(ErrnoOnly),
    AtsTranslate(Checked<AtsTlp<true>>),
    AtsTranslated(Checked<AtsTlp<false>>),
    DeviceCache(Checked<DeviceCache>),
    AtsAnswers(Checked<AtsAnswers>),
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
            Step::During(_) => "during",
            Step::RawTlp(_) => "raw_tlp",
            Step::WriteMemory(_) => "write_memory",
            Step::Descriptor(_) => "descriptor",
            Step::ReadRegister(_) => "read_register",
            Step::Fpd(_) => "fpd",
            Step::SetRootEntry(_) => "set_root_entry",
            Step::MemError(_) => "mem_error",
            Step::ClearMemErrors(_) => "clear_mem_errors",
            Step::AtsTranslate(_) => "ats_translate",
            Step::AtsTranslated(_) => "ats_translated",
            Step::DeviceCache(_) => "device_cache",
            Step::AtsAnswers(_) => "ats_answers",
        }
    }

    /// Steps a hardware-level vector may use.
    pub(super) fn hardware_level(&self) -> bool {
        matches!(
            self,
            Step::Tlp(_)
                | Step::AtsTranslate(_)
                | Step::AtsTranslated(_)
                | Step::DeviceCache(_)
                | Step::AtsAnswers(_)
                | Step::WriteRegister(_)
                | Step::RawTlp(_)
                | Step::WriteMemory(_)
                | Step::Descriptor(_)
                | Step::ReadRegister(_)
        )
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

impl Step {
    /// A call of the kernel or DMA API, or of the driver below it (`fpd`, `set_root_entry`,
    /// `mem_error`, `clear_mem_errors`): what `during:` runs.
    pub fn kernel_call(&self) -> bool {
        !matches!(
            self,
            Step::Tlp(_)
                | Step::AtsTranslate(_)
                | Step::AtsTranslated(_)
                | Step::DeviceCache(_)
                | Step::AtsAnswers(_)
                | Step::Poke(_)
                | Step::Poison(_)
                | Step::Heal(_)
                | Step::Invalidate(_)
                | Step::SetRtaddr(_)
                | Step::WriteRegister(_)
                | Step::During(_)
                | Step::RawTlp(_)
                | Step::WriteMemory(_)
                | Step::Descriptor(_)
                | Step::ReadRegister(_)
        )
    }
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

pub(super) fn yes() -> bool {
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
    pub(super) fn dir(self) -> DmaDirection {
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
