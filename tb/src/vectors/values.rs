//! Scalar values of vectors (numbers, RIDs, names, fault codes, errno names, permissions) and cross-field checks.

use std::fmt;
use std::marker::PhantomData;

use anyhow::Result;
use iommu_model::kernel::{Errno, Prot, Rid};
use iommu_model::FaultReason;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::*;

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

pub(super) struct NumVisitor;

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
pub(super) fn scalar<'de, D, T, F>(d: D, f: F) -> Result<T, D::Error>
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
pub(super) fn number<'de, D, T, F>(d: D, f: F) -> Result<T, D::Error>
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

pub(super) fn show_rid(r: Rid) -> String {
    format!("{:02x}:{:02x}.{}", r >> 8, (r >> 3) & 0x1F, r & 7)
}

/// A name bound earlier in the document (`K` is its kind; checked after parsing, in
/// document order, by [`super::names::Scope`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name<const K: u8>(pub String);

impl<'de, const K: u8> Deserialize<'de> for Name<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar(d, |s| Ok(Name(s)))
    }
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
                        "{n:#x} is not a fault reason of docs/contract.md (one of {})",
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

pub(super) const ERRNOS: [Errno; 10] = [
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
