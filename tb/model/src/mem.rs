//! Sparse modelled physical memory with a page allocator.
//!
//! Stands in for the DRAM that both the Linux driver (through `iommu_alloc_page_node()` /
//! `iommu_free_page()` in drivers/iommu/iommu-pages.h) and the DUT's table walker see.
//! Pages are 4 KiB and stored in a `BTreeMap`, so iteration order never depends on hashing.
//! Reads of addresses at or above the end of RAM, or inside a configured error range,
//! fail with [`MemError`]; the golden walker turns those into the *access error* faults
//! (0x38, 0x40, 0x50, 0x58, 0x70, 0x78).

use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// Size of a page, a table and the unit of the allocator.
pub const PAGE_SIZE: u64 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// Errors of the memory model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum MemError {
    #[error("address {0:#x} is not 8-byte aligned")]
    Unaligned(u64),
    #[error("address {0:#x} is not backed by memory")]
    Unbacked(u64),
    #[error("page allocator exhausted")]
    OutOfMemory,
    #[error("page {0:#x} was not allocated by this allocator")]
    BadFree(u64),
}

/// Read access to physical memory as the translation walker needs it.
pub trait PhysMem {
    /// Reads one little-endian 64-bit word at an 8-byte-aligned physical address.
    fn read64(&self, pa: u64) -> Result<u64, MemError>;
}

/// Sparse physical memory plus a deterministic page allocator.
#[derive(Clone, Debug)]
pub struct Mem {
    pages: BTreeMap<u64, Box<[u64; 512]>>,
    ram_top: u64,
    error_ranges: Vec<(u64, u64)>,
    alloc_base: u64,
    alloc_limit: u64,
    alloc_next: u64,
    free: BTreeMap<u32, BTreeSet<u64>>,
    allocated: BTreeMap<u64, u32>,
    /// Byte ranges written since the last [`Mem::take_journal`], while journaling.
    journal: Option<Vec<(u64, u64)>>,
}

impl Default for Mem {
    fn default() -> Self {
        Self::new()
    }
}

impl Mem {
    /// 1 TiB of RAM; the allocator hands out pages from [256 MiB, 1 GiB).
    pub fn new() -> Self {
        Self::with_layout(1 << 40, 0x1000_0000, 0x4000_0000)
    }

    /// RAM is `[0, ram_top)`; the page allocator owns `[alloc_base, alloc_limit)`.
    pub fn with_layout(ram_top: u64, alloc_base: u64, alloc_limit: u64) -> Self {
        Self {
            pages: BTreeMap::new(),
            ram_top,
            error_ranges: Vec::new(),
            alloc_base: alloc_base & !(PAGE_SIZE - 1),
            alloc_limit,
            alloc_next: alloc_base & !(PAGE_SIZE - 1),
            free: BTreeMap::new(),
            allocated: BTreeMap::new(),
            journal: None,
        }
    }

    /// The end of RAM.
    pub fn ram_top(&self) -> u64 {
        self.ram_top
    }

    /// Makes reads of `[start, end)` fail (a poisoned or unclaimed range on the bus). What
    /// reads return changes, so a journal counts it as a write of the range.
    pub fn add_error_range(&mut self, start: u64, end: u64) {
        self.error_ranges.push((start, end));
        if let Some(j) = &mut self.journal {
            j.push((start, end));
        }
    }

    /// Removes every error range (journaled as writes of the ranges, like
    /// [`Mem::add_error_range`]).
    pub fn clear_error_ranges(&mut self) {
        if let Some(j) = &mut self.journal {
            j.extend(self.error_ranges.iter().copied());
        }
        self.error_ranges.clear();
    }

    fn check(&self, pa: u64) -> Result<(), MemError> {
        if pa & 7 != 0 {
            return Err(MemError::Unaligned(pa));
        }
        if pa >= self.ram_top || self.error_ranges.iter().any(|&(s, e)| pa >= s && pa < e) {
            return Err(MemError::Unbacked(pa));
        }
        Ok(())
    }

    /// Starts (or stops) recording which ranges are written, for an observer that wants to
    /// look at memory after every write ([`crate::observe`]).
    pub fn set_journal(&mut self, on: bool) {
        self.journal = on.then(Vec::new);
    }

    /// The byte ranges `[start, end)` written since the last call (in order, one per
    /// [`Mem::write64`] and per zeroed page), emptying the journal.
    pub fn take_journal(&mut self) -> Vec<(u64, u64)> {
        self.journal
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Whether anything was written since the last [`Mem::take_journal`].
    pub fn journal_pending(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| !j.is_empty())
    }

    fn note(&mut self, start: u64, end: u64) {
        if let Some(j) = self.journal.as_mut() {
            j.push((start, end));
        }
    }

    /// Writes one little-endian 64-bit word. Writes to unbacked addresses fail.
    pub fn write64(&mut self, pa: u64, val: u64) -> Result<(), MemError> {
        self.check(pa)?;
        self.note(pa, pa + 8);
        let page = pa >> PAGE_SHIFT;
        let idx = ((pa & (PAGE_SIZE - 1)) >> 3) as usize;
        if val == 0 && !self.pages.contains_key(&page) {
            return Ok(());
        }
        let p = self.pages.entry(page).or_insert_with(|| Box::new([0; 512]));
        p[idx] = val;
        Ok(())
    }

    /// Zeroes `len` bytes (multiple of 8) at `pa`.
    pub fn zero(&mut self, pa: u64, len: u64) -> Result<(), MemError> {
        let end = pa.saturating_add(len);
        let mut a = pa;
        while a < end {
            if a & (PAGE_SIZE - 1) == 0 && a.saturating_add(PAGE_SIZE) <= end {
                self.check(a)?;
                if self.pages.remove(&(a >> PAGE_SHIFT)).is_some() {
                    self.note(a, a + PAGE_SIZE);
                }
                a += PAGE_SIZE;
            } else {
                self.write64(a, 0)?;
                a += 8;
            }
        }
        Ok(())
    }

    /// Allocates `2^order` contiguous, naturally aligned, zeroed pages (lowest free first).
    pub fn alloc_pages(&mut self, order: u32) -> Result<u64, MemError> {
        if order > 30 {
            return Err(MemError::OutOfMemory);
        }
        let size = PAGE_SIZE << order;
        let pa = if let Some(pa) = self.free.get_mut(&order).and_then(|s| s.pop_first()) {
            pa
        } else {
            let pa = self.alloc_next.div_ceil(size) * size;
            if pa
                .checked_add(size)
                .map_or(true, |end| end > self.alloc_limit)
            {
                return Err(MemError::OutOfMemory);
            }
            // Pages skipped for alignment go back to the order-0 free list.
            let mut gap = self.alloc_next;
            while gap < pa {
                self.free.entry(0).or_default().insert(gap);
                gap += PAGE_SIZE;
            }
            self.alloc_next = pa + size;
            pa
        };
        self.zero(pa, size)?;
        self.allocated.insert(pa, order);
        Ok(pa)
    }

    /// Allocates one zeroed page.
    pub fn alloc_page(&mut self) -> Result<u64, MemError> {
        self.alloc_pages(0)
    }

    /// Returns pages obtained from [`Mem::alloc_pages`]; their contents are zeroed.
    pub fn free_pages(&mut self, pa: u64) -> Result<(), MemError> {
        let order = self.allocated.remove(&pa).ok_or(MemError::BadFree(pa))?;
        self.zero(pa, PAGE_SIZE << order)?;
        self.free.entry(order).or_default().insert(pa);
        Ok(())
    }

    /// Number of allocations currently outstanding.
    pub fn allocated_count(&self) -> usize {
        self.allocated.len()
    }

    /// Whether `pa` is the base of an outstanding allocation.
    pub fn is_allocated(&self, pa: u64) -> bool {
        self.allocated.contains_key(&pa)
    }

    /// The allocator's region.
    pub fn alloc_region(&self) -> (u64, u64) {
        (self.alloc_base, self.alloc_limit)
    }

    /// Populated pages in ascending order: `(page base, 512 words)`. For dumping an image.
    pub fn populated(&self) -> impl Iterator<Item = (u64, &[u64; 512])> {
        self.pages.iter().map(|(p, w)| (p << PAGE_SHIFT, &**w))
    }
}

impl PhysMem for Mem {
    fn read64(&self, pa: u64) -> Result<u64, MemError> {
        self.check(pa)?;
        let idx = ((pa & (PAGE_SIZE - 1)) >> 3) as usize;
        Ok(self.pages.get(&(pa >> PAGE_SHIFT)).map_or(0, |p| p[idx]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_and_errors() {
        let mut m = Mem::with_layout(1 << 30, 0x100000, 0x200000);
        assert_eq!(m.read64(0x5000), Ok(0));
        m.write64(0x5008, 0xdead_beef).unwrap();
        assert_eq!(m.read64(0x5008), Ok(0xdead_beef));
        assert_eq!(m.read64(0x5004), Err(MemError::Unaligned(0x5004)));
        assert_eq!(m.read64(1 << 30), Err(MemError::Unbacked(1 << 30)));
        m.add_error_range(0x5000, 0x6000);
        assert_eq!(m.read64(0x5008), Err(MemError::Unbacked(0x5008)));
        m.clear_error_ranges();
        assert_eq!(m.read64(0x5008), Ok(0xdead_beef));
    }

    #[test]
    fn allocator_is_aligned_zeroed_and_reuses_lowest() {
        let mut m = Mem::with_layout(1 << 30, 0x100000, 0x120000);
        let a = m.alloc_page().unwrap();
        let b = m.alloc_pages(2).unwrap();
        assert_eq!(b % (4 * PAGE_SIZE), 0);
        assert!(b > a);
        m.write64(a + 8, 7).unwrap();
        m.free_pages(a).unwrap();
        assert_eq!(m.free_pages(a), Err(MemError::BadFree(a)));
        let c = m.alloc_page().unwrap();
        assert_eq!(c, a, "lowest free page first");
        assert_eq!(m.read64(c + 8), Ok(0), "pages come back zeroed");
        let mut n = 0;
        while m.alloc_page().is_ok() {
            n += 1;
        }
        assert!(n > 0);
        assert_eq!(m.alloc_page(), Err(MemError::OutOfMemory));
    }
}
