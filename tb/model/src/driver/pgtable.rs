//! The driver's page tables: installing and clearing leaves, and freeing the page-table
//! pages an unmap or a superpage makes obsolete, as drivers/iommu/intel/iommu.c does
//! (`pfn_to_dma_pte()`, `__domain_mapping()`, `switch_to_super_page()`, `domain_unmap()`,
//! `dma_pte_clear_level()`, `dma_pte_list_pagetables()`, `domain_exit()`).

use super::{mem_err, Driver, IommuHw};
use crate::kernel::{DomainId, Errno, MmId};
use crate::tables::{self, ss};

/// Whose tables a leaf goes into: a paging domain's or an mm's (SVA).
#[derive(Clone, Copy, Debug)]
pub(super) enum Owner {
    Domain(DomainId),
    Mm(MmId),
}

/// The level whose entry maps a page of `pgsize` (1: 4 KiB, 2: 2 MiB, 3: 1 GiB).
fn leaf_level(pgsize: u64) -> Result<u32, Errno> {
    match pgsize {
        0x1000 => Ok(1),
        0x20_0000 => Ok(2),
        0x4000_0000 => Ok(3),
        _ => Err(Errno::EINVAL),
    }
}

impl<H: IommuHw> Driver<H> {
    /// Walks/extends a 4-level table to the entry for `va` at `level`.
    fn pte_slot(
        &mut self,
        pgd: u64,
        va: u64,
        level: u32,
        table_bits: u64,
        alloc: bool,
    ) -> Result<Option<u64>, Errno> {
        let mut table = pgd;
        for l in (level + 1..=4).rev() {
            let slot = table + tables::level_index(va, l) * 8;
            let e = self.read_mem(slot)?;
            if e == 0 {
                if !alloc {
                    return Ok(None);
                }
                let t = self.hw.mem().alloc_page().map_err(mem_err)?;
                self.write_mem(slot, t | table_bits)?;
                table = t;
            } else if e & ss::PS != 0 {
                return Err(Errno::EEXIST);
            } else {
                table = e & tables::ADDR_MASK;
            }
        }
        Ok(Some(table + tables::level_index(va, level) * 8))
    }

    /// Whether a table subtree holds no present entry; frees it if so.
    fn free_if_empty(&mut self, table: u64, level: u32) -> Result<bool, Errno> {
        for i in 0..512 {
            let e = self.read_mem(table + i * 8)?;
            if e == 0 {
                continue;
            }
            if level > 1
                && e & ss::PS == 0
                && self.free_if_empty(e & tables::ADDR_MASK, level - 1)?
            {
                self.write_mem(table + i * 8, 0)?;
                continue;
            }
            return Ok(false);
        }
        self.hw.mem().free_pages(table).map_err(mem_err)?;
        Ok(true)
    }

    /// Installs one leaf of `pgsize` at `va` in the tables of `owner`.
    ///
    /// If the slot of a superpage holds an old, empty page table, Linux 6.12
    /// `__domain_mapping()` calls `switch_to_super_page()`: `dma_pte_free_pagetable()`
    /// clears the entry and frees the table pages at once, then
    /// `cache_tag_flush_range(domain, start, end, 0)` flushes with IH = 0 (the unit may
    /// hold the old non-leaf entry in its paging-structure caches), and only then is the
    /// superpage written. The model does the same, in that order. The table maps nothing
    /// by then (the kernel refuses overlapping maps), so it is replaced only if empty.
    /// For an mm (SVA) the CPU's page-table code frees the table and the mmu notifier
    /// flushes the range the same way (`intel_arch_invalidate_secondary_tlbs()`, IH = 0).
    pub(super) fn set_leaf(
        &mut self,
        owner: Owner,
        pgd: u64,
        va: u64,
        pgsize: u64,
        leaf: u64,
        table_bits: u64,
    ) -> Result<(), Errno> {
        let level = leaf_level(pgsize)?;
        let slot = self
            .pte_slot(pgd, va, level, table_bits, true)?
            .ok_or(Errno::ENOMEM)?;
        let old = self.read_mem(slot)?;
        if old != 0 {
            if level > 1
                && old & ss::PS == 0
                && self.free_if_empty(old & tables::ADDR_MASK, level - 1)?
            {
                self.write_mem(slot, 0)?;
                let last = va + (pgsize - 1);
                match owner {
                    Owner::Domain(id) => {
                        self.flush_range(id, va, last, false, "switch to super page")?
                    }
                    Owner::Mm(mm) => self.flush_mm(mm, va, last, "switch to super page")?,
                }
            } else {
                return Err(Errno::EEXIST);
            }
        }
        let ps = if level > 1 { ss::PS } else { 0 };
        self.write_mem(slot, leaf | ps)
    }

    /// `intel_iommu_unmap()` / `domain_unmap()` for `[start, last]`: clears every leaf in
    /// the range and every non-leaf entry whose whole region the range covers, putting the
    /// page-table pages below such an entry on the domain's freelist
    /// (`dma_pte_clear_level()`, `dma_pte_list_pagetables()`). The pages stay allocated,
    /// contents untouched, until `iotlb_sync` has flushed. Linux also frees the root
    /// table when the range is the whole address space; the model's kernel never unmaps
    /// that much, and the root stays.
    pub(super) fn domain_unmap(
        &mut self,
        id: DomainId,
        pgd: u64,
        start: u64,
        last: u64,
    ) -> Result<(), Errno> {
        let mut freelist = Vec::new();
        let r = self.clear_level(pgd, 4, 0, start, last, &mut freelist);
        if let Some(d) = self.domains.get_mut(&id) {
            d.freelist.extend(freelist);
        }
        r
    }

    /// `dma_pte_clear_level()`: the entries of `table` (at `level`, mapping from `base`
    /// on) that `[start, last]` touches.
    fn clear_level(
        &mut self,
        table: u64,
        level: u32,
        base: u64,
        start: u64,
        last: u64,
        freelist: &mut Vec<u64>,
    ) -> Result<(), Errno> {
        let size = tables::level_size(level);
        let mut va = start.max(base) & !(size - 1);
        loop {
            let slot = table + tables::level_index(va, level) * 8;
            let e = self.read_mem(slot)?;
            if e != 0 {
                let superpage = level > 1 && e & ss::PS != 0;
                if start <= va && last >= va + (size - 1) {
                    if level > 1 && !superpage {
                        self.list_tables(e & tables::ADDR_MASK, level - 1, freelist)?;
                    }
                    self.write_mem(slot, 0)?;
                } else if level > 1 && !superpage {
                    let next = e & tables::ADDR_MASK;
                    self.clear_level(next, level - 1, va, start, last, freelist)?;
                }
            }
            va += size;
            if tables::level_index(va, level) == 0 || va > last {
                return Ok(());
            }
        }
    }

    /// `dma_pte_list_pagetables()`: `table` (at `level`) and every table below it.
    fn list_tables(
        &mut self,
        table: u64,
        level: u32,
        freelist: &mut Vec<u64>,
    ) -> Result<(), Errno> {
        freelist.push(table);
        if level == 1 {
            return Ok(());
        }
        for i in 0..512 {
            let e = self.read_mem(table + i * 8)?;
            if e != 0 && e & ss::PS == 0 {
                self.list_tables(e & tables::ADDR_MASK, level - 1, freelist)?;
            }
        }
        Ok(())
    }

    /// Frees the pages of a freelist (`iommu_put_pages_list()`).
    pub(super) fn put_pages(&mut self, pages: Vec<u64>) -> Result<(), Errno> {
        for pa in pages {
            self.hw.mem().free_pages(pa).map_err(mem_err)?;
        }
        Ok(())
    }

    /// Clears the leaf of `pgsize` at `va` (the CPU side of an mm; page tables stay).
    pub(super) fn clear_leaf(
        &mut self,
        pgd: u64,
        va: u64,
        pgsize: u64,
        table_bits: u64,
    ) -> Result<(), Errno> {
        let level = leaf_level(pgsize)?;
        match self.pte_slot(pgd, va, level, table_bits, false)? {
            Some(slot) => self.write_mem(slot, 0),
            None => Ok(()),
        }
    }

    pub(super) fn free_table(&mut self, table: u64, level: u32) {
        if level > 1 {
            for i in 0..512 {
                if let Ok(e) = self.read_mem(table + i * 8) {
                    if e != 0 && e & ss::PS == 0 {
                        self.free_table(e & tables::ADDR_MASK, level - 1);
                    }
                }
            }
        }
        let _ = self.hw.mem().free_pages(table);
    }
}
