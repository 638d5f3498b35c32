//! Symbolic names: a name is bound before it is used, checked in document order by a pass
//! over the parsed vector (`check_names`), and positions in the document ([`locate`]) for
//! errors found after parsing.
//!
//! Deserialization itself knows no context: it reads names as strings. The pass collects
//! every name a step uses or binds ([`UsesNames`]) with the keys that lead to it, checks
//! them against a [`Scope`] passed explicitly, and reports the keys of a bad name; the
//! parser turns those keys into `line:column` by walking the document again with serde_yaml
//! ([`locate`]), so positions come from the YAML parser itself.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::*;

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

pub(super) const DEVICE: u8 = 0;
pub(super) const DOMAIN: u8 = 1;
pub(super) const PASID: u8 = 2;
pub(super) const MM: u8 = 3;
pub(super) const IOVA: u8 = 4;

pub(super) fn kind_of(k: u8) -> Kind {
    match k {
        DEVICE => Kind::Device,
        DOMAIN => Kind::Domain,
        PASID => Kind::Pasid,
        MM => Kind::Mm,
        _ => Kind::Iova,
    }
}

pub(super) fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == '-')
}

// ---------------------------------------------------------------------------------------
// Paths into the document
// ---------------------------------------------------------------------------------------

/// One step of a path from the document's root: a mapping key or a sequence index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(&'static str),
    Index(usize),
}

impl fmt::Display for Seg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seg::Key(k) => f.write_str(k),
            Seg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// Keys that may stand for a field in the document (serde aliases).
fn key_matches(want: &str, got: &str) -> bool {
    want == got || (want == "dev" && got == "rid")
}

/// The `(line, column)` (1-based) of the node `path` leads to in `text`, or of the deepest
/// node on the way that exists. The document is walked with serde_yaml and the walk fails
/// on purpose at the node, so the position is the one the YAML parser gives its errors.
pub fn locate(text: &str, path: &[Seg]) -> (usize, usize) {
    let err = match Locate(path).deserialize(serde_yaml::Deserializer::from_str(text)) {
        Ok(()) => return (1, 1),
        Err(e) => e,
    };
    err.location().map_or((1, 1), |l| (l.line(), l.column()))
}

struct Locate<'a>(&'a [Seg]);

/// The error that stops the walk (its position is what [`locate`] wants).
fn here<E: de::Error>() -> E {
    E::custom("here")
}

impl<'de> DeserializeSeed<'de> for Locate<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Locate<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(here())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(here())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(here())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(here())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(here())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(here())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(here())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some((Seg::Index(i), rest)) = self.0.split_first() {
            for _ in 0..*i {
                if seq.next_element::<IgnoredAny>()?.is_none() {
                    return Err(here());
                }
            }
            seq.next_element_seed(Locate(rest))?;
        }
        Err(here())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if let Some((Seg::Key(want), rest)) = self.0.split_first() {
            while let Some(key) = map.next_key::<serde_yaml::Value>()? {
                if key.as_str().is_some_and(|k| key_matches(want, k)) {
                    map.next_value_seed(Locate(rest))?;
                    return Err(here());
                }
                map.next_value::<IgnoredAny>()?;
            }
        }
        Err(here())
    }
}

// ---------------------------------------------------------------------------------------
// The names each part of a vector uses and binds
// ---------------------------------------------------------------------------------------

/// A name a step uses or binds, with the keys that lead to it from the step's mapping.
#[derive(Clone, Debug)]
pub(super) struct NameUse {
    pub(super) at: Vec<Seg>,
    pub(super) name: String,
    pub(super) kind: Kind,
    pub(super) binds: bool,
}

/// Collects the [`NameUse`]s of one step, in document order.
#[derive(Default)]
pub(super) struct Refs {
    prefix: Vec<Seg>,
    pub(super) out: Vec<NameUse>,
}

impl Refs {
    fn push(&mut self, f: &'static str, name: &str, kind: Kind, binds: bool) {
        let mut at = self.prefix.clone();
        at.push(Seg::Key(f));
        self.out.push(NameUse {
            at,
            name: name.to_owned(),
            kind,
            binds,
        });
    }

    pub(super) fn uses<const K: u8>(&mut self, f: &'static str, n: &Name<K>) {
        self.push(f, &n.0, kind_of(K), false);
    }

    pub(super) fn uses_opt<const K: u8>(&mut self, f: &'static str, n: Option<&Name<K>>) {
        if let Some(n) = n {
            self.uses(f, n);
        }
    }

    pub(super) fn dev(&mut self, f: &'static str, d: &DevRef) {
        if let DevRef::Name(n) = d {
            self.push(f, n, Kind::Device, false);
        }
    }

    pub(super) fn dev_opt(&mut self, f: &'static str, d: Option<&DevRef>) {
        if let Some(d) = d {
            self.dev(f, d);
        }
    }

    pub(super) fn val<const K: u8>(&mut self, f: &'static str, v: Option<&ValRef<K>>) {
        if let Some(ValRef::Name(n, _)) = v {
            self.push(f, n, kind_of(K), false);
        }
    }

    pub(super) fn binds<const K: u8>(&mut self, f: &'static str, n: Option<&NewName<K>>) {
        if let Some(n) = n {
            self.push(f, &n.0, kind_of(K), true);
        }
    }

    /// The names of `inner`, found under the key or index `at`.
    pub(super) fn nested(&mut self, at: Seg, inner: &dyn UsesNames) {
        self.prefix.push(at);
        inner.names(self);
        self.prefix.pop();
    }
}

/// A part of a vector that uses or binds names.
pub(super) trait UsesNames {
    fn names(&self, r: &mut Refs);
}

impl<T: UsesNames> UsesNames for Checked<T> {
    fn names(&self, r: &mut Refs) {
        self.0.names(r);
    }
}

impl<T: UsesNames> UsesNames for Option<T> {
    fn names(&self, r: &mut Refs) {
        if let Some(t) = self {
            t.names(r);
        }
    }
}

/// The names bound so far while checking a vector in document order.
#[derive(Default)]
pub(super) struct Scope {
    names: BTreeMap<String, Kind>,
}

impl Scope {
    /// Checks the names of one part: everything it uses must be bound (by earlier parts)
    /// with the right kind; then what it binds is bound (once per file). Errors carry the
    /// path of the offending name under `at`.
    pub(super) fn check(
        &mut self,
        at: &[Seg],
        part: &dyn UsesNames,
    ) -> Result<(), (Vec<Seg>, String)> {
        let mut r = Refs {
            prefix: at.to_vec(),
            out: Vec::new(),
        };
        part.names(&mut r);
        let (binds, uses): (Vec<NameUse>, Vec<NameUse>) = r.out.into_iter().partition(|u| u.binds);
        for u in uses {
            match self.names.get(&u.name) {
                Some(&k) if k == u.kind => {}
                Some(&k) => return Err((u.at, format!("`{}` is a {k}, not a {}", u.name, u.kind))),
                None => {
                    return Err((
                        u.at,
                        format!(
                            "unknown {} `{}` (names are bound before use: `devices:`, `name:` \
                             of domain_alloc, `as:` of calls that return a value)",
                            u.kind, u.name
                        ),
                    ))
                }
            }
        }
        for b in binds {
            if let Some(k) = self.names.get(&b.name) {
                return Err((b.at, format!("`{}` is already bound (a {k})", b.name)));
            }
            self.names.insert(b.name, b.kind);
        }
        Ok(())
    }
}

impl<T: UsesNames> UsesNames for Vec<T> {
    fn names(&self, r: &mut Refs) {
        for (i, t) in self.iter().enumerate() {
            r.nested(Seg::Index(i), t);
        }
    }
}

impl UsesNames for DeviceDecl {
    fn names(&self, r: &mut Refs) {
        r.binds("name", Some(&self.name));
    }
}

impl UsesNames for Step {
    fn names(&self, r: &mut Refs) {
        let inner: &dyn UsesNames = match self {
            Step::DomainAlloc(c) => c,
            Step::DomainFree(c) | Step::IotlbSync(c) => c,
            Step::AttachDevice(c) => c,
            Step::AllocGlobalPasid(c) | Step::EnableDmaPasid(c) => c,
            Step::FreeGlobalPasid(c) => c,
            Step::AttachDevicePasid(c) | Step::DetachDevicePasid(c) => c,
            Step::DisableDmaPasid(c) => c,
            Step::Map(c) => c,
            Step::Unmap(c) => c,
            Step::DmaMapSingle(c) => c,
            Step::DmaUnmapSingle(c) => c,
            Step::MmCreate(c) => c,
            Step::MmDestroy(c) => c,
            Step::MmMap(c) => c,
            Step::MmUnmap(c) => c,
            Step::SvaBind(c) => c,
            Step::SvaUnbind(c) => c,
            Step::Tlp(c) => c,
            Step::AtsTranslate(c) => &c.0 .0,
            Step::AtsTranslated(c) => &c.0 .0,
            Step::DeviceCache(c) => c,
            Step::Poke(c) => return r.nested(Seg::Key("poke"), &c.0.at()),
            Step::Poison(c) => return r.nested(Seg::Key("poison"), &c.0.at()),
            Step::During(c) => c,
            Step::Fpd(c) => c,
            Step::MemError(c) => c,
            Step::SetRootEntry(_) | Step::ClearMemErrors(_) | Step::AtsAnswers(_) => return,
            Step::Heal(_)
            | Step::Invalidate(_)
            | Step::SetRtaddr(_)
            | Step::WriteRegister(_)
            | Step::RawTlp(_)
            | Step::WriteMemory(_)
            | Step::Descriptor(_)
            | Step::ReadRegister(_) => return,
        };
        r.nested(Seg::Key(self.keyword()), inner);
    }
}

impl UsesNames for During {
    fn names(&self, r: &mut Refs) {
        self.call.names(r);
        r.nested(Seg::Key("tlps"), &self.tlps);
    }
}

impl UsesNames for DomainAlloc {
    fn names(&self, r: &mut Refs) {
        r.uses_opt("mm", self.mm.as_ref());
        r.binds("name", Some(&self.name));
    }
}

impl UsesNames for DomainOnly {
    fn names(&self, r: &mut Refs) {
        r.uses("domain", &self.domain);
    }
}

impl UsesNames for DevOnly {
    fn names(&self, r: &mut Refs) {
        r.uses("dev", &self.dev);
    }
}

impl UsesNames for PasidOnly {
    fn names(&self, r: &mut Refs) {
        r.val("pasid", Some(&self.pasid));
    }
}

impl UsesNames for MmOnly {
    fn names(&self, r: &mut Refs) {
        r.uses("mm", &self.mm);
    }
}

impl UsesNames for DevDomain {
    fn names(&self, r: &mut Refs) {
        r.uses("dev", &self.dev);
        r.uses("domain", &self.domain);
    }
}

impl UsesNames for DevDomainPasid {
    fn names(&self, r: &mut Refs) {
        r.uses("domain", &self.domain);
        r.uses("dev", &self.dev);
        r.val("pasid", Some(&self.pasid));
    }
}

impl<const K: u8> UsesNames for DevReturns<K> {
    fn names(&self, r: &mut Refs) {
        r.uses("dev", &self.dev);
        r.val("returns", self.returns.as_ref());
        r.binds("as", self.bind.as_ref());
    }
}

impl UsesNames for MapCall {
    fn names(&self, r: &mut Refs) {
        r.uses("domain", &self.domain);
    }
}

impl UsesNames for UnmapCall {
    fn names(&self, r: &mut Refs) {
        r.uses("domain", &self.domain);
    }
}

impl UsesNames for DmaMap {
    fn names(&self, r: &mut Refs) {
        r.uses("dev", &self.dev);
        r.val("returns", self.returns.as_ref());
        r.binds("as", self.bind.as_ref());
    }
}

impl UsesNames for DmaUnmap {
    fn names(&self, r: &mut Refs) {
        r.uses("dev", &self.dev);
        r.val("addr", Some(&self.addr));
    }
}

impl UsesNames for MmCreate {
    fn names(&self, r: &mut Refs) {
        r.binds("as", Some(&self.bind));
    }
}

impl UsesNames for MmMapCall {
    fn names(&self, r: &mut Refs) {
        r.uses("mm", &self.mm);
    }
}

impl UsesNames for MmUnmapCall {
    fn names(&self, r: &mut Refs) {
        r.uses("mm", &self.mm);
    }
}

impl UsesNames for SvaBind {
    fn names(&self, r: &mut Refs) {
        r.uses("dev", &self.dev);
        r.uses("mm", &self.mm);
        r.val("returns", self.returns.as_ref());
        r.binds("as", self.bind.as_ref());
    }
}

impl UsesNames for DevMm {
    fn names(&self, r: &mut Refs) {
        r.uses("dev", &self.dev);
        r.uses("mm", &self.mm);
    }
}

impl UsesNames for Tlp {
    fn names(&self, r: &mut Refs) {
        r.dev("dev", &self.dev);
        r.val("pasid", self.pasid.as_ref());
        r.val("read", self.read.as_ref());
        r.val("write", self.write.as_ref());
    }
}

impl UsesNames for DeviceCache {
    fn names(&self, r: &mut Refs) {
        r.dev("dev", &self.dev);
        r.val("pasid", self.pasid.as_ref());
        r.val("iova", Some(&self.iova));
    }
}

impl UsesNames for EntryOf {
    fn names(&self, r: &mut Refs) {
        r.dev("dev", &self.dev);
        r.val("pasid", self.pasid.as_ref());
    }
}

impl UsesNames for PteOf {
    fn names(&self, r: &mut Refs) {
        r.dev("dev", &self.dev);
        r.val("pasid", self.pasid.as_ref());
        r.val("addr", Some(&self.addr));
    }
}

impl UsesNames for Locator {
    fn names(&self, r: &mut Refs) {
        r.dev_opt("root_entry", self.root_entry.as_ref());
        r.dev_opt("context_entry", self.context_entry.as_ref());
        r.nested(Seg::Key("pasid_dir_entry"), &self.pasid_dir_entry);
        r.nested(Seg::Key("pasid_entry"), &self.pasid_entry);
        r.nested(Seg::Key("pte"), &self.pte);
    }
}
