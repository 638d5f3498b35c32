//! A PCIe device's Address Translation Cache (ATC, the "device-TLB" of VT-d chapter 4)
//! and the Invalidate Requests that reach it (PCIe Base Specification 10.3 "ATS
//! Invalidation"; docs/contract.md 6.3).
//!
//! The cache is filled from Translation Completions and keyed by the PASID the Translation
//! Request carried (none for a request without a PASID prefix) and the untranslated page.
//! It holds a bounded number of entries and replaces the oldest one when full.
//!
//! An Invalidate Request without a PASID prefix (descriptor type 3) removes the entries in
//! its range that were filled without a PASID; one with a PASID prefix (type 8) removes the
//! entries of that PASID in its range and, with the Global Invalidate bit, the global
//! entries of every PASID. This is why Linux issues one descriptor per cache tag: a type 3
//! for the RID's attachment leaves the PASID attachments' entries in place (the fix to
//! `cache_tag_flush_all()` that replaced its type-3-only `cache_tag_flush_devtlb_all()`
//! rests on the same reading).

use crate::qi::{ats_range, Descriptor};
use std::collections::VecDeque;
use std::fmt;

/// Entries a device cache holds before it replaces the oldest.
pub const DEFAULT_CAPACITY: usize = 64;

/// One cached translation: what a Translation Completion granted for an untranslated range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AtcEntry {
    /// PASID of the Translation Request, `None` without a prefix.
    pub pasid: Option<u32>,
    /// Untranslated base address (aligned to `size`).
    pub base: u64,
    /// Range size in bytes (a power of two, at least 4 KiB).
    pub size: u64,
    /// Translated base address.
    pub pa: u64,
    pub r: bool,
    pub w: bool,
    /// The completion's Global bit: the entry serves every PASID.
    pub global: bool,
}

impl AtcEntry {
    /// Whether the entry's untranslated range overlaps `[lo, hi]`.
    pub fn overlaps(&self, lo: u64, hi: u64) -> bool {
        self.base <= hi && lo <= self.base + (self.size - 1)
    }
    /// The translated address of `addr`, which must lie in the entry.
    pub fn translate(&self, addr: u64) -> u64 {
        self.pa + (addr - self.base)
    }
}

impl fmt::Display for AtcEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pasid {
            Some(p) => write!(f, "pasid={p:#x} ")?,
            None => write!(f, "no-pasid ")?,
        }
        write!(
            f,
            "{:#x}+{:#x} -> {:#x} r={} w={} g={}",
            self.base, self.size, self.pa, self.r as u8, self.w as u8, self.global as u8
        )
    }
}

/// The content of one PCIe Invalidate Request message as the device reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidateRequest {
    /// Destination Device ID (the descriptor's SID).
    pub device_id: u16,
    /// PASID prefix, `None` for type 3.
    pub pasid: Option<u32>,
    /// Global Invalidate (type 8 G).
    pub global: bool,
    /// Untranslated byte range `[lo, hi]` from the address and S bit.
    pub lo: u64,
    pub hi: u64,
}

impl InvalidateRequest {
    /// The request a type 3 or type 8 descriptor turns into; `None` for other types.
    pub fn from_descriptor(d: &Descriptor) -> Option<Self> {
        match *d {
            Descriptor::DevTlb {
                sid, addr, size, ..
            } => {
                let (lo, hi) = ats_range(addr, size);
                Some(Self {
                    device_id: sid,
                    pasid: None,
                    global: false,
                    lo,
                    hi,
                })
            }
            Descriptor::PasidDevTlb {
                sid,
                pasid,
                addr,
                size,
                global,
                ..
            } => {
                let (lo, hi) = ats_range(addr, size);
                Some(Self {
                    device_id: sid,
                    pasid: Some(pasid),
                    global,
                    lo,
                    hi,
                })
            }
            _ => None,
        }
    }

    /// Whether the request removes `e` from the device's cache.
    pub fn covers(&self, e: &AtcEntry) -> bool {
        if !e.overlaps(self.lo, self.hi) {
            return false;
        }
        match self.pasid {
            None => e.pasid.is_none(),
            Some(p) => e.pasid == Some(p) || (self.global && e.global && e.pasid.is_some()),
        }
    }
}

/// One device's ATS cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevTlb {
    capacity: usize,
    /// Oldest first.
    entries: VecDeque<AtcEntry>,
}

impl Default for DevTlb {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl DevTlb {
    /// An empty cache of `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: VecDeque::new(),
        }
    }

    /// Stores what a Translation Completion granted. An entry of the same PASID that
    /// overlaps it is replaced; when full, the oldest entry goes.
    pub fn fill(&mut self, e: AtcEntry) {
        self.fill_replacing(e, 0);
    }

    /// [`Self::fill`], replacing the entry `victim` places from the oldest (modulo the
    /// number held) when full: a device's own replacement policy.
    pub fn fill_replacing(&mut self, e: AtcEntry, victim: usize) {
        self.entries
            .retain(|x| !(x.pasid == e.pasid && x.overlaps(e.base, e.base + (e.size - 1))));
        if self.entries.len() == self.capacity {
            self.entries.remove(victim % self.entries.len());
        }
        self.entries.push_back(e);
    }

    /// The entries a request with `pasid` may use, oldest first: its own PASID's (or,
    /// without a PASID, the RID's), and for a request with a PASID the global ones.
    pub fn usable(&self, pasid: Option<u32>) -> impl DoubleEndedIterator<Item = &AtcEntry> {
        self.entries
            .iter()
            .filter(move |e| e.pasid == pasid || (pasid.is_some() && e.global && e.pasid.is_some()))
    }

    /// The entry a request with `pasid` to `addr` would use: the newest usable one
    /// ([`Self::usable`]) that holds `addr`.
    pub fn lookup(&self, pasid: Option<u32>, addr: u64) -> Option<&AtcEntry> {
        self.usable(pasid).rev().find(|e| e.overlaps(addr, addr))
    }

    /// Applies one Invalidate Request; returns what it removed.
    pub fn invalidate(&mut self, req: &InvalidateRequest) -> Vec<AtcEntry> {
        let mut gone = Vec::new();
        self.entries.retain(|e| {
            let hit = req.covers(e);
            if hit {
                gone.push(*e);
            }
            !hit
        });
        gone
    }

    pub fn entries(&self) -> impl Iterator<Item = &AtcEntry> {
        self.entries.iter()
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pasid: Option<u32>, base: u64) -> AtcEntry {
        AtcEntry {
            pasid,
            base,
            size: 0x1000,
            pa: 0x8000_0000 + base,
            r: true,
            w: true,
            global: false,
        }
    }

    #[test]
    fn type_3_removes_only_entries_without_pasid() {
        let mut t = DevTlb::new(8);
        t.fill(entry(None, 0x4000));
        t.fill(entry(Some(5), 0x4000));
        let d = Descriptor::dev_tlb(0x0108, 0x0108, 32, 0x4000, 0);
        let req = InvalidateRequest::from_descriptor(&d).expect("type 3");
        assert_eq!(req.device_id, 0x0108);
        assert_eq!(t.invalidate(&req), vec![entry(None, 0x4000)]);
        assert!(t.lookup(Some(5), 0x4123).is_some());
        assert!(t.lookup(None, 0x4123).is_none());
    }

    #[test]
    fn type_8_removes_its_pasid_and_with_g_the_global_entries() {
        let mut t = DevTlb::new(8);
        let g = AtcEntry {
            global: true,
            ..entry(Some(9), 0x2000)
        };
        t.fill(entry(Some(5), 0x0000));
        t.fill(entry(Some(6), 0x1000));
        t.fill(g);
        t.fill(entry(None, 0x1000));
        let mut d = Descriptor::pasid_dev_tlb(0x0108, 0x0108, 5, 32, 0, 2);
        let req = InvalidateRequest::from_descriptor(&d).expect("type 8");
        assert_eq!((req.lo, req.hi), (0, 0x3FFF));
        assert_eq!(t.invalidate(&req), vec![entry(Some(5), 0)]);
        if let Descriptor::PasidDevTlb { global, .. } = &mut d {
            *global = true;
        }
        let req = InvalidateRequest::from_descriptor(&d).expect("type 8");
        assert_eq!(t.invalidate(&req), vec![g]);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn oldest_entry_is_replaced_when_full() {
        let mut t = DevTlb::new(2);
        t.fill(entry(None, 0x1000));
        t.fill(entry(None, 0x2000));
        t.fill(entry(None, 0x1000));
        assert_eq!(t.len(), 2);
        t.fill(entry(None, 0x3000));
        let bases: Vec<u64> = t.entries().map(|e| e.base).collect();
        assert_eq!(bases, vec![0x1000, 0x3000]);
    }

    #[test]
    fn a_chosen_victim_is_replaced_when_full() {
        let mut t = DevTlb::new(3);
        for b in [0x1000, 0x2000, 0x3000] {
            t.fill(entry(None, b));
        }
        // The second oldest goes; a victim index past the end wraps around.
        t.fill_replacing(entry(None, 0x4000), 1);
        t.fill_replacing(entry(None, 0x5000), 5);
        let bases: Vec<u64> = t.entries().map(|e| e.base).collect();
        assert_eq!(bases, vec![0x1000, 0x3000, 0x5000]);
    }
}
