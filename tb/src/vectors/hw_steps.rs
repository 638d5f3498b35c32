//! The hardware steps of the schema: TLPs (built from fields or raw DWs) and their pinned
//! expectations, memory and register access, queued invalidation descriptors, and the
//! places of words in the driver's structures.

use serde::Deserialize;

use super::*;

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
    /// Bytes (default 4, 8 for a Translation Request); the TLP's Length and byte enables
    /// cover exactly these bytes.
    #[serde(default)]
    pub len: Option<Num>,
    #[serde(default)]
    pub tag: Option<Num>,
    /// Address Type (docs/contract.md section 6.2; default `untranslated`).
    #[serde(default)]
    pub at: AtKind,
    #[serde(default)]
    pub expect: Option<Checked<Expect>>,
}

/// The Address Type of a `tlp` step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AtKind {
    /// AT = 00b.
    #[default]
    Untranslated,
    /// AT = 01b: an ATS Translation Request (a read).
    TranslationRequest,
    /// AT = 10b: a translated request.
    Translated,
}

impl Check for Tlp {
    fn check(self) -> Result<Self, String> {
        if self.read.is_some() == self.write.is_some() {
            return Err("a TLP has exactly one of `read: ADDR` and `write: ADDR`".into());
        }
        if (self.pmr || self.er) && self.pasid.is_none() {
            return Err("`pmr` and `er` are bits of the PASID prefix: give `pasid:`".into());
        }
        if self.at == AtKind::TranslationRequest && self.write.is_some() {
            return Err("a Translation Request is a read: give `read: ADDR`".into());
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
    /// A Translation Request answered with R = W = 0 (`pa:` pins the address a granted
    /// completion names, `translated: true` any granted one).
    #[serde(default)]
    pub no_access: Option<bool>,
    /// One of these outcomes (each one of the above); every one must be in the oracle's
    /// allowed set.
    #[serde(default)]
    pub any_of: Option<Vec<Checked<Expect>>>,
}

impl Check for Expect {
    fn check(self) -> Result<Self, String> {
        let n = usize::from(self.pa.is_some())
            + usize::from(self.translated.is_some())
            + usize::from(self.same_pa_as_previous.is_some())
            + usize::from(self.fault.is_some())
            + usize::from(self.untranslated.is_some())
            + usize::from(self.malformed.is_some())
            + usize::from(self.no_access.is_some())
            + usize::from(self.any_of.is_some());
        if n != 1 {
            return Err(
                "an expectation names one outcome: `pa:`, `translated: true`, \
                        `same_pa_as_previous: true`, `fault:`, `untranslated: true`, \
                        `malformed: true`, `no_access: true` or `any_of: [...]`"
                    .into(),
            );
        }
        if let Some(alts) = &self.any_of {
            if alts.is_empty() {
                return Err("`any_of:` lists at least one outcome".into());
            }
            if alts.iter().any(|a| a.0.any_of.is_some()) {
                return Err("`any_of:` lists outcomes, not further `any_of:`".into());
            }
        }
        if [
            self.translated,
            self.same_pa_as_previous,
            self.untranslated,
            self.malformed,
            self.no_access,
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

/// A TLP given as raw DWs: any bits, sent exactly as written (`raw_tlp:`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTlp {
    /// Header DWs, DW0 first: 3 or 4 of them (the header length sent, whatever Fmt says).
    pub header: Vec<Num>,
    /// End-to-end prefix DWs in wire order (0 to 4).
    #[serde(default)]
    pub prefixes: Vec<Num>,
    #[serde(default)]
    pub expect: Option<Checked<Expect>>,
}

impl Check for RawTlp {
    fn check(self) -> Result<Self, String> {
        if !(3..=4).contains(&self.header.len()) {
            return Err(format!(
                "`header:` has {} DWs; a header is 3 or 4",
                self.header.len()
            ));
        }
        if self.prefixes.len() > crate::tlp::MAX_PREFIXES {
            return Err(format!(
                "{} prefixes: the port carries at most {}",
                self.prefixes.len(),
                crate::tlp::MAX_PREFIXES
            ));
        }
        if let Some(d) = self
            .header
            .iter()
            .chain(&self.prefixes)
            .find(|d| d.0 > u64::from(u32::MAX))
        {
            return Err(format!("{:#x} does not fit in a DW", d.0));
        }
        Ok(self)
    }
}

impl RawTlp {
    /// The words as the port carries them.
    pub fn words(&self) -> crate::tlp::TlpWords {
        let mut w = crate::tlp::TlpWords {
            prefix_count: self.prefixes.len(),
            header_dws: self.header.len(),
            ..crate::tlp::TlpWords::default()
        };
        for (i, p) in self.prefixes.iter().enumerate() {
            w.prefix[i] = p.0 as u32;
        }
        for (i, h) in self.header.iter().enumerate() {
            w.header[i] = h.0 as u32;
        }
        w
    }
}

/// 64-bit little-endian words written to memory while the vector runs (`write_memory:`);
/// no invalidation follows.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteMemory {
    pub addr: Num,
    /// One word or consecutive words.
    pub value: Words,
}

impl Check for WriteMemory {
    fn check(self) -> Result<Self, String> {
        if self.addr.0 & 7 != 0 {
            return Err(format!("{:#x} is not 8-byte aligned", self.addr.0));
        }
        if self.value.0.is_empty() {
            return Err("`value: []` writes nothing".into());
        }
        Ok(self)
    }
}

/// One queued invalidation descriptor, any bits (`descriptor:`): written at the tail of
/// the invalidation queue IQA names and IQT advanced.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescriptorStep {
    /// The descriptor's 64-bit words, QW0 first (1 to 4; missing ones are 0; a 128-bit
    /// queue, IQA.DW = 0, takes QW0 and QW1).
    pub qw: Vec<Num>,
    /// Append a wait descriptor (status write, fence) and wait until its status lands or
    /// the unit reports a queue error (FSTS.IQE/ITE/ICE).
    #[serde(default)]
    pub wait: bool,
    /// Where the wait descriptor writes its status (default: a page the bench allocates).
    #[serde(default)]
    pub status: Option<Num>,
}

impl Check for DescriptorStep {
    fn check(self) -> Result<Self, String> {
        if !(1..=4).contains(&self.qw.len()) {
            return Err("`qw:` lists 1 to 4 64-bit words".into());
        }
        if self.status.is_some() && !self.wait {
            return Err("`status:` goes with `wait: true`".into());
        }
        if self.status.is_some_and(|s| s.0 & 3 != 0) {
            return Err("a status address is DW-aligned".into());
        }
        Ok(self)
    }
}

impl DescriptorStep {
    /// QW0..QW3.
    pub fn words(&self) -> [u64; 4] {
        let mut q = [0u64; 4];
        for (i, w) in self.qw.iter().enumerate() {
            q[i] = w.0;
        }
        q
    }
}

/// Reads a register and compares it (`read_register:`): `(read & mask) == (value & mask)`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadRegister {
    pub reg: RegName,
    pub value: Num,
    /// Bits compared (default: all).
    #[serde(default)]
    pub mask: Option<Num>,
    #[serde(default)]
    pub width: Option<Num>,
}

impl Check for ReadRegister {
    fn check(self) -> Result<Self, String> {
        RegWrite {
            reg: self.reg.clone(),
            value: Num(self.value.0 & self.mask.map_or(u64::MAX, |m| m.0)),
            width: self.width,
        }
        .check()?;
        Ok(self)
    }
}

impl ReadRegister {
    /// (width in bits, offset).
    pub fn width(&self) -> (u32, u64) {
        RegWrite {
            reg: self.reg.clone(),
            value: self.value,
            width: self.width,
        }
        .width()
    }
}
