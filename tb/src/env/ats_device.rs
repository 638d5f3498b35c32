//! The ATS side of the devices below the unit: takes the Invalidate Request messages the
//! unit sends on its `ats_inv` port, applies each to the addressed device's ATS cache
//! ([`iommu_model::devtlb::DevTlb`]) and answers with Invalidate Completion messages on
//! rx after a random (seeded) delay, or never (PCIe 10.3; docs/contract.md 6.3). Single
//! requests may also be answered late, after the unit's time-out, or not at all
//! ([`Fate`]): scripted one by one, or a seeded percentage of them.
//!
//! Completions go in on rx only in cycles no other agent drives it, so they queue behind
//! the device traffic already sent, as PCIe orders them.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use iommu_model::devtlb::{AtcEntry, DevTlb, InvalidateRequest};
use iommu_model::golden::Outcome;
use iommu_model::kernel::NO_PASID;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dut::{DutIn, DutOut, ATS_INV_TIMEOUT, COMPLETER_ID};

/// PCIe Msg routed by ID (Type 10010b) and the ATS invalidation message codes.
const TYPE_MSG_ID: u32 = 0b10010;
const MSG_INV_REQ: u32 = 0b0000_0001;
const MSG_INV_CPL: u32 = 0b0000_0010;
const PREFIX_PASID: u32 = 0x91;

/// One Invalidate Request as it left the unit, decoded field by field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvRequestMsg {
    /// The cycle it was taken.
    pub cycle: u64,
    pub hdr: [u32; 4],
    pub data: [u32; 2],
    /// The PASID prefix DW, if any.
    pub prefix: Option<u32>,
}

impl InvRequestMsg {
    /// Fmt 011b (4 DW with data), Type 10010b, Length 2, Message Code 0000_0001b; the
    /// reserved bits 15:13 of DW1, 15:0 of DW2 and all of DW3 clear.
    pub fn well_formed(&self) -> bool {
        self.hdr[0] >> 29 == 0b011
            && (self.hdr[0] >> 24) & 0x1F == TYPE_MSG_ID
            && self.hdr[0] & 0x3FF == 2
            && self.hdr[1] & 0xFF == MSG_INV_REQ
            && self.hdr[1] & 0xE000 == 0
            && self.hdr[2] & 0xFFFF == 0
            && self.hdr[3] == 0
            && self.prefix.map_or(true, |p| p >> 24 == PREFIX_PASID)
    }
    pub fn requester_id(&self) -> u16 {
        (self.hdr[1] >> 16) as u16
    }
    /// The destination device (DW2 31:16).
    pub fn device_id(&self) -> u16 {
        (self.hdr[2] >> 16) as u16
    }
    /// DW1 12:8: byte 6 bits 4:0, where other requests carry the Tag.
    pub fn itag(&self) -> u8 {
        ((self.hdr[1] >> 8) & 0x1F) as u8
    }
    /// Untranslated address 63:12 of the payload, as the device reads it.
    pub fn addr(&self) -> u64 {
        u64::from(self.data[0]) << 32 | u64::from(self.data[1] & !0xFFF)
    }
    pub fn size(&self) -> bool {
        self.data[1] & (1 << 11) != 0
    }
    pub fn global(&self) -> bool {
        self.data[1] & 1 != 0
    }
    pub fn pasid(&self) -> Option<u32> {
        self.prefix.map(|p| p & 0xF_FFFF)
    }
    /// What the device invalidates.
    pub fn request(&self) -> InvalidateRequest {
        let (lo, hi) = iommu_model::qi::ats_range(self.addr(), self.size());
        InvalidateRequest {
            device_id: self.device_id(),
            pasid: self.pasid(),
            global: self.global(),
            lo,
            hi,
        }
    }
}

impl fmt::Display for InvRequestMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "inv-req @{} dev={:#06x} req={:#06x} itag={} addr={:#x} s={} g={}",
            self.cycle,
            self.device_id(),
            self.requester_id(),
            self.itag(),
            self.addr(),
            self.size() as u8,
            self.global() as u8
        )?;
        match self.pasid() {
            Some(p) => write!(f, " pasid={p:#x}"),
            None => write!(f, " no-pasid"),
        }
    }
}

/// How the devices answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Each completion after a random delay in `min..=max` cycles.
    After { min: u64, max: u64 },
    /// Never (the unit's time-out must fire).
    Never,
}

/// What becomes of one Invalidate Request's completions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// As [`AtsDevice::answer`] says.
    Normal,
    /// The first completion after [`LATE_MIN`] to [`LATE_MAX`] cycles, when the unit's
    /// time-out has fired; the others (CC > 1) follow as [`AtsDevice::answer`] spaces them.
    Late,
    /// None: the completions are lost (the device has still applied the request).
    Lost,
}

/// The earliest a late answer comes: 1.6 times the unit's time-out, so after the time-out
/// fired (it fires at most 1.5 times the time-out after the request left).
pub const LATE_MIN: u64 = ATS_INV_TIMEOUT * 8 / 5;
/// The latest a late answer comes: twice the time-out.
pub const LATE_MAX: u64 = ATS_INV_TIMEOUT * 2;

/// An Invalidate Completion header to the unit: Fmt 001b (4 DW, no data), Type 10010b,
/// Requester ID = the device, Device ID = the unit's Completer ID, CC (0 = 8), ITag vector.
pub fn completion_hdr(device: u16, cc: u8, itags: u32) -> [u32; 4] {
    [
        0b001 << 29 | TYPE_MSG_ID << 24,
        u32::from(device) << 16 | MSG_INV_CPL,
        u32::from(COMPLETER_ID) << 16 | u32::from(cc & 7),
        itags,
    ]
}

#[derive(Debug)]
pub struct AtsDevice {
    pub answer: Answer,
    /// Invalidate Completions per request (1..=8), each naming the ITag; sent as CC.
    pub completions: u8,
    /// Percentage of cycles the devices take an Invalidate Request.
    pub ready_pct: u32,
    /// The fates of the next Invalidate Requests, in order; once it is empty each request
    /// is answered late with probability `late_pct` % and lost with `lost_pct` %.
    pub fates: VecDeque<Fate>,
    pub late_pct: u32,
    pub lost_pct: u32,
    /// Requests answered late and requests never answered so far.
    pub late: u64,
    pub lost: u64,
    /// Every Invalidate Request taken, oldest first.
    pub requests: Vec<InvRequestMsg>,
    /// Each device's ATS cache, by Device ID: filled from the Translation Completions the
    /// unit returned ([`Self::cache`]), emptied by the Invalidate Requests it sends.
    pub atc: BTreeMap<u16, DevTlb>,
    /// Entries each device's cache holds.
    pub atc_capacity: usize,
    /// A full cache replaces a random entry (else the oldest).
    pub random_replacement: bool,
    /// Completions sent (accepted on rx).
    pub completions_sent: u64,
    /// Completions due: (cycle, header).
    pending: VecDeque<(u64, [u32; 4])>,
    injecting: bool,
    rng: ChaCha8Rng,
}

impl AtsDevice {
    pub fn new(seed: u64) -> Self {
        Self {
            answer: Answer::After { min: 1, max: 40 },
            completions: 1,
            ready_pct: 100,
            fates: VecDeque::new(),
            late_pct: 0,
            lost_pct: 0,
            late: 0,
            lost: 0,
            requests: Vec::new(),
            atc: BTreeMap::new(),
            atc_capacity: iommu_model::devtlb::DEFAULT_CAPACITY,
            random_replacement: false,
            completions_sent: 0,
            pending: VecDeque::new(),
            injecting: false,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0xa75d),
        }
    }

    /// Stores what a Translation Completion to device `rid` granted in its cache.
    pub fn cache(&mut self, rid: u16, e: AtcEntry) {
        let victim = if self.random_replacement {
            self.rng.gen_range(0..self.atc_capacity.max(1))
        } else {
            0
        };
        let cap = self.atc_capacity;
        self.atc
            .entry(rid)
            .or_insert_with(|| DevTlb::new(cap))
            .fill_replacing(e, victim);
    }

    /// What the device does with the answer `o` to its Translation Request for `addr`
    /// (with `pasid`, if any): an entry that grants access goes into its cache (returned);
    /// R = W = 0 and answers to other requests are not cached.
    ///
    /// A completion to a request whose PASID prefix names PASID 0 is not cached either:
    /// Linux uses PASID 0 as RID_PASID (`IOMMU_NO_PASID`) and never gives it to a device
    /// for PASID DMA, so no device under it caches translations with that prefix; and a
    /// type 3 invalidation, which is what Linux sends for the RID's cache tag, reaches only
    /// entries obtained without a PASID (docs/contract.md 6.3).
    pub fn take_completion(
        &mut self,
        rid: u16,
        pasid: Option<u32>,
        addr: u64,
        o: &Outcome,
    ) -> Option<AtcEntry> {
        if pasid == Some(NO_PASID) {
            return None;
        }
        let Outcome::Ats(e) = o else { return None };
        let c = e.atc_entry(pasid, addr)?;
        self.cache(rid, c);
        Some(c)
    }

    /// Completions not yet accepted by the unit.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The cycle the next completion is due.
    pub fn next_due(&self) -> Option<u64> {
        self.pending.front().map(|&(due, _)| due)
    }

    /// Before the clock edge: the ready of the `ats_inv` port, and a due completion on rx
    /// when no other agent drives it.
    pub(crate) fn drive(&mut self, cycle: u64, inp: &mut DutIn) {
        inp.ats_inv_ready = self.ready_pct >= 100 || self.rng.gen_range(0..100) < self.ready_pct;
        self.injecting = false;
        if inp.rx_valid {
            return;
        }
        if let Some(&(due, hdr)) = self.pending.front() {
            if due <= cycle {
                inp.rx_valid = true;
                inp.rx_nprefix = 0;
                inp.rx_hdr = hdr;
                self.injecting = true;
            }
        }
    }

    /// After the clock edge: a request taken, a completion accepted; rx is left undriven.
    pub(crate) fn observe(&mut self, cycle: u64, inp: &mut DutIn, out: &DutOut) {
        if self.injecting {
            if out.rx_ready {
                self.pending.pop_front();
                self.completions_sent += 1;
            }
            inp.rx_valid = false;
            self.injecting = false;
        }
        if out.ats_inv_valid && inp.ats_inv_ready {
            let m = InvRequestMsg {
                cycle,
                hdr: out.ats_inv_hdr,
                data: out.ats_inv_data,
                prefix: out.ats_inv_prefix_valid.then_some(out.ats_inv_prefix),
            };
            let req = m.request();
            if let Some(t) = self.atc.get_mut(&req.device_id) {
                t.invalidate(&req);
            }
            self.requests.push(m);
            let fate = self.fate();
            let n = self.completions.clamp(1, 8);
            let hdr = completion_hdr(m.device_id(), n, 1 << m.itag());
            let spacing = match self.answer {
                Answer::After { min, max } => Some((min, max.max(min))),
                Answer::Never => None,
            };
            let mut due = cycle;
            match (fate, spacing) {
                (Fate::Lost, _) => self.lost += 1,
                (Fate::Normal, None) => {}
                (Fate::Late, _) => {
                    self.late += 1;
                    due += self.rng.gen_range(LATE_MIN..=LATE_MAX);
                    self.pending.push_back((due, hdr));
                    for _ in 1..n {
                        due += spacing.map_or(1, |(lo, hi)| self.rng.gen_range(lo..=hi));
                        self.pending.push_back((due, hdr));
                    }
                }
                (Fate::Normal, Some((lo, hi))) => {
                    for _ in 0..n {
                        due += self.rng.gen_range(lo..=hi);
                        self.pending.push_back((due, hdr));
                    }
                }
            }
            // Answers to different requests may come back in any order.
            let v = self.pending.make_contiguous();
            v.sort_by_key(|&(d, _)| d);
        }
    }

    /// The next request's fate: scripted, else drawn (no draw when both percentages are 0,
    /// so a device that always answers sees the same delays as before they existed).
    fn fate(&mut self) -> Fate {
        if let Some(f) = self.fates.pop_front() {
            return f;
        }
        if self.late_pct == 0 && self.lost_pct == 0 {
            return Fate::Normal;
        }
        let x = self.rng.gen_range(0..100);
        if x < self.lost_pct {
            Fate::Lost
        } else if x < self.lost_pct + self.late_pct {
            Fate::Late
        } else {
            Fate::Normal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_headers_carry_cc_and_the_itag_vector() {
        let h = completion_hdr(0x0180, 8, 1 << 5);
        assert_eq!(h[0] >> 29, 0b001);
        assert_eq!((h[0] >> 24) & 0x1F, TYPE_MSG_ID);
        assert_eq!(h[1], 0x0180 << 16 | 2);
        assert_eq!(h[2] & 7, 0, "CC 8 is sent as 0");
        assert_eq!(h[3], 1 << 5);
    }

    #[test]
    fn request_fields_decode() {
        let m = InvRequestMsg {
            cycle: 0,
            hdr: [
                0b011 << 29 | TYPE_MSG_ID << 24 | 2,
                0x1234_0701,
                0x0180_0000,
                0,
            ],
            data: [0x1, 0x2345_6000 | 1 << 11 | 1],
            prefix: Some(0x9100_0005),
        };
        assert!(m.well_formed());
        assert_eq!(m.addr(), 0x1_2345_6000);
        assert_eq!((m.device_id(), m.itag(), m.pasid()), (0x0180, 7, Some(5)));
        assert!(m.size() && m.global());
        assert_eq!(m.requester_id(), 0x1234);
        // DW3 is reserved: an ITag there is not the request's ITag.
        let dw3 = InvRequestMsg {
            hdr: [m.hdr[0], 0x1234_0001, m.hdr[2], 7],
            ..m
        };
        assert!(!dw3.well_formed());
        assert_eq!(dw3.itag(), 0);
    }
}
