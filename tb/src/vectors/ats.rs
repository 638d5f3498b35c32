//! The device side of ATS in vectors: `ats_translate` (a Translation Request whose
//! completion the device caches), `ats_translated` (a translated request from the device's
//! cache), `device_cache` (a pin on what the device caches), `ats_answers` (what becomes of
//! the answers to the next Invalidate Requests), the devices' cache size, replacement
//! policy and late or lost answers (`ats_device:`), and the device-cache check after every
//! step
//! ([`crate::check::device_cache`], the judge the regression uses after every operation).

use anyhow::{anyhow, ensure, Result};
use iommu_model::devtlb::AtcEntry;
use serde::Deserialize;

use crate::check::device_cache::check_device_caches;
use crate::env::{Env, Fate};
use crate::tlp::{self, Bdf};

use super::judging::first_byte_offset;
use super::*;

/// The ATS devices of the vector: `ats_device: {entries: 8, replacement: random,
/// late_pct: 5, lost_pct: 5}` (default: [`iommu_model::devtlb::DEFAULT_CAPACITY`] cache
/// entries, the oldest replaced, every Invalidate Request answered within 40 cycles).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AtsDeviceDecl {
    #[serde(default)]
    pub entries: Option<Num>,
    #[serde(default)]
    pub replacement: Replacement,
    /// Percentage of Invalidate Requests answered after the unit's time-out.
    #[serde(default)]
    pub late_pct: Option<Num>,
    /// Percentage of Invalidate Requests never answered.
    #[serde(default)]
    pub lost_pct: Option<Num>,
}

/// Which entry a full device cache gives up.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Replacement {
    #[default]
    Oldest,
    /// A random one (the vector's seed).
    Random,
}

impl Check for AtsDeviceDecl {
    fn check(self) -> Result<Self, String> {
        if let Some(Num(n)) = self.entries {
            if n == 0 || n > 4096 {
                return Err(format!(
                    "entries {n}: a device's ATS cache holds 1 to 4096 entries"
                ));
            }
        }
        let pct = |n: Option<Num>| n.map_or(0, |n| n.0);
        if pct(self.late_pct) + pct(self.lost_pct) > 100 {
            return Err("`late_pct` and `lost_pct` are percentages of one whole".into());
        }
        Ok(self)
    }
}

impl AtsDeviceDecl {
    /// Sets the devices of `env` up.
    pub(super) fn apply(&self, env: &mut Env) {
        if let Some(n) = self.entries {
            env.ats.atc_capacity = n.0 as usize;
        }
        env.ats.random_replacement = self.replacement == Replacement::Random;
        env.ats.late_pct = self.late_pct.map_or(0, |n| n.0 as u32);
        env.ats.lost_pct = self.lost_pct.map_or(0, |n| n.0 as u32);
    }
}

/// `ats_answers: {next: [lost, late, normal]}`: what becomes of the answers to the next
/// Invalidate Requests the devices take, one by one (`normal`: within 40 cycles; `late`:
/// after the unit's time-out fired; `lost`: never), before `ats_device:`'s percentages
/// apply again.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtsAnswers {
    pub next: Vec<AnswerFate>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AnswerFate {
    Normal,
    Late,
    Lost,
}

impl Check for AtsAnswers {
    fn check(self) -> Result<Self, String> {
        if self.next.is_empty() {
            return Err("`next:` lists at least one of normal, late, lost".into());
        }
        Ok(self)
    }
}

/// The request of an `ats_translate` (`REQUEST`) or `ats_translated` step: the fields of a
/// `tlp` step without `at:`, which the step sets.
#[derive(Clone, Debug, Deserialize)]
#[serde(transparent)]
pub struct AtsTlp<const REQUEST: bool>(pub Tlp);

impl<const REQUEST: bool> Check for AtsTlp<REQUEST> {
    fn check(self) -> Result<Self, String> {
        let mut t = self.0;
        if t.at != AtKind::Untranslated {
            return Err(format!(
                "`{}` sets the Address Type itself: leave out `at:`",
                if REQUEST {
                    "ats_translate"
                } else {
                    "ats_translated"
                }
            ));
        }
        if REQUEST {
            t.at = AtKind::TranslationRequest;
        }
        t.check().map(Self)
    }
}

/// `device_cache: {dev: d, pasid: p, iova: 0x1000, cached: false}`: whether the device's
/// ATS cache holds a translation of `iova` for `pasid` (none: the RID's, without PASID).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceCache {
    #[serde(alias = "rid")]
    pub dev: DevRef,
    #[serde(default)]
    pub pasid: Option<PasidRef>,
    pub iova: Addr,
    pub cached: bool,
}

impl Check for DeviceCache {
    fn check(self) -> Result<Self, String> {
        if let Some(ValRef::Num(p)) = self.pasid {
            if p > 0xF_FFFF {
                return Err(format!("PASID {p:#x} is wider than 20 bits"));
            }
        }
        Ok(self)
    }
}

fn whose(pasid: Option<u32>) -> String {
    pasid.map_or_else(
        || "without PASID".to_owned(),
        |p| format!("for PASID {p:#x}"),
    )
}

impl Runner {
    /// `ats_translate`: a Translation Request, judged as a `tlp` step; an answer that grants
    /// access goes into the device's cache ([`crate::env::AtsDevice::take_completion`]).
    pub(super) fn ats_translate(&mut self, t: &Tlp, at: &[Seg]) -> Result<()> {
        let req = self.request(t)?;
        let words = tlp::encode(&req).map_err(|e| anyhow!("encoding {req}: {e}"))?;
        let outcome = self.send(words, &req, false, t.expect.as_ref().map(|c| &c.0), at)?;
        let (rid, pasid) = (req.requester_id, req.pasid.map(|p| p.pasid));
        let cached = self
            .env()
            .ats
            .take_completion(rid, pasid, req.addr, &outcome);
        if let Some(e) = cached {
            self.note(at, format!("device {} caches {e}", Bdf(rid)));
        }
        Ok(())
    }

    /// `ats_translated`: the request as the device sends it from its cache: at the
    /// translated address of the entry that holds the untranslated address, with AT = 10b.
    /// The device sends only what an entry it holds grants.
    pub(super) fn ats_translated(&mut self, t: &Tlp, at: &[Seg]) -> Result<()> {
        let mut req = self.request(t)?;
        let pasid = req.pasid.map(|p| p.pasid);
        let first = req.addr + first_byte_offset(&req);
        let last = first + u64::from(req.byte_len().max(1)) - 1;
        let rid = req.requester_id;
        let e = self.cached(rid, pasid, first).ok_or_else(|| {
            anyhow!(
                "device {} caches no translation of {first:#x} {}: it cannot send this \
                 translated request",
                Bdf(rid),
                whose(pasid)
            )
        })?;
        ensure!(
            e.overlaps(last, last),
            "the request {first:#x}..={last:#x} leaves the device's cached translation {e}"
        );
        ensure!(
            if req.is_write { e.w } else { e.r },
            "the device's cached translation {e} grants no {}",
            if req.is_write { "write" } else { "read" }
        );
        req.addr = e.translate(req.addr);
        req.at = tlp::At::Translated;
        self.note(at, format!("device {} uses {e}", Bdf(rid)));
        let words = tlp::encode(&req).map_err(|e| anyhow!("encoding {req}: {e}"))?;
        self.send(words, &req, false, t.expect.as_ref().map(|c| &c.0), at)
            .map(|_| ())
    }

    /// The entry device `rid` would use for a request with `pasid` to `addr`.
    fn cached(&mut self, rid: u16, pasid: Option<u32>, addr: u64) -> Option<AtcEntry> {
        let t = self.env().ats.atc.get(&rid)?;
        t.lookup(pasid, addr).copied()
    }

    /// `ats_answers`: queues the fates of the next Invalidate Requests' answers.
    pub(super) fn ats_answers(&mut self, a: &AtsAnswers) {
        let ats = &mut self.env().ats;
        ats.fates.extend(a.next.iter().map(|f| match f {
            AnswerFate::Normal => Fate::Normal,
            AnswerFate::Late => Fate::Late,
            AnswerFate::Lost => Fate::Lost,
        }));
    }

    /// `device_cache`: the pin on whether the device caches a translation of the address.
    pub(super) fn device_cache(&mut self, c: &DeviceCache) -> Result<()> {
        let rid = self.devref(&c.dev)?;
        let pasid = c.pasid.as_ref().map(|p| self.pasid(p)).transpose()?;
        let iova = self.value(&c.iova)?;
        match (self.cached(rid, pasid, iova), c.cached) {
            (Some(_), true) | (None, false) => Ok(()),
            (Some(e), false) => Err(anyhow!(
                "pinned: device {} caches no translation of {iova:#x} {}; it caches {e}",
                Bdf(rid),
                whose(pasid)
            )),
            (None, true) => Err(anyhow!(
                "pinned: device {} caches a translation of {iova:#x} {}; it caches none",
                Bdf(rid),
                whose(pasid)
            )),
        }
    }

    /// Batches the driver has resubmitted after a device-TLB invalidation time-out (0 at
    /// hardware level).
    pub(super) fn resubmits(&self) -> u64 {
        match &self.sys {
            Sys::Kernel(k) => k.ops().resubmits(),
            Sys::Bare(_) => 0,
        }
    }

    /// After every step of a kernel-level vector whose tables software changed only
    /// through the kernel: every translation a device caches must be one the oracle allows
    /// now.
    pub(super) fn check_device_caches(&mut self, step: &str) -> Result<()> {
        if self.tainted {
            return Ok(());
        }
        let Sys::Kernel(k) = &self.sys else {
            return Ok(());
        };
        let k = k.as_ref();
        check_device_caches(k, &k.ops().hw().env.ats.atc, step).map_err(|e| anyhow!("{e}"))
    }
}
