//! Parse-time scope of symbolic names: a name is bound before it is used, checked in document order.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use anyhow::Result;

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

pub(super) struct Scope {
    pub(super) names: BTreeMap<String, Kind>,
    pub(super) base: PathBuf,
    pub(super) kernel: bool,
}

thread_local! {
    pub(super) static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

pub(super) fn with_scope<R>(f: impl FnOnce(&mut Scope) -> Result<R, String>) -> Result<R, String> {
    SCOPE.with(|s| match s.borrow_mut().as_mut() {
        Some(sc) => f(sc),
        None => Err("vectors are read with vectors::parse_str or parse_file".into()),
    })
}

pub(super) fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == '-')
}
