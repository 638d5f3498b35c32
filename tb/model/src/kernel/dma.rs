//! DMA API on top of the kernel model (Linux drivers/iommu/dma-iommu.c
//! `iommu_dma_map_page()` / `iommu_dma_unmap_page()`, `dma_info_to_prot()`, and the IOVA
//! allocator of drivers/iommu/iova.c `alloc_iova_fast()`), so that tests read like a driver.
//!
//! Strict mode: every unmap is followed by `iotlb_sync` before it returns.

use super::{DomainType, Errno, IommuOps, Kernel, Prot, Rid};
use crate::mem::PAGE_SIZE;
use std::collections::BTreeMap;

/// `enum dma_data_direction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DmaDirection {
    Bidirectional,
    /// The device reads the buffer.
    ToDevice,
    /// The device writes the buffer.
    FromDevice,
}

impl DmaDirection {
    /// `dma_info_to_prot()`.
    pub fn prot(self) -> Prot {
        match self {
            Self::Bidirectional => Prot {
                read: true,
                write: true,
            },
            Self::ToDevice => Prot {
                read: true,
                write: false,
            },
            Self::FromDevice => Prot {
                read: false,
                write: true,
            },
        }
    }
}

/// IOVAs of 32-bit-capable PCI devices are first tried below 4 GiB.
pub const DMA_32BIT_LIMIT: u64 = 1 << 32;

/// Size-aligned, top-down IOVA allocator (`alloc_iova_fast(..., size_aligned = true)`):
/// lengths are rounded up to a power of two pages and aligned to it; the highest free
/// block below the limit wins; IOVA page 0 is never handed out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IovaAllocator {
    used: BTreeMap<u64, u64>,
}

impl IovaAllocator {
    /// Allocates `len` bytes below `limit`; returns the base.
    pub fn alloc(&mut self, len: u64, limit: u64) -> Result<u64, Errno> {
        let pages = len.div_ceil(PAGE_SIZE).max(1);
        let size = pages
            .checked_next_power_of_two()
            .and_then(|p| p.checked_mul(PAGE_SIZE))
            .ok_or(Errno::ENOMEM)?;
        let mut hi = limit;
        let mut found = None;
        for (&s, &l) in self.used.iter().rev() {
            let e = s + l;
            if e < hi && hi >= size {
                let c = (hi - size) & !(size - 1);
                if c >= e {
                    found = Some(c);
                    break;
                }
            }
            hi = hi.min(s);
        }
        if found.is_none() && hi >= size {
            let c = (hi - size) & !(size - 1);
            if c >= PAGE_SIZE {
                found = Some(c);
            }
        }
        let base = found.ok_or(Errno::ENOMEM)?;
        self.used.insert(base, size);
        Ok(base)
    }

    /// Frees the block containing `addr`; returns (base, size).
    pub fn free(&mut self, addr: u64) -> Result<(u64, u64), Errno> {
        let (&b, &s) = self.used.range(..=addr).next_back().ok_or(Errno::EINVAL)?;
        if addr >= b + s {
            return Err(Errno::EINVAL);
        }
        self.used.remove(&b);
        Ok((b, s))
    }

    /// The block containing `addr`.
    pub fn find(&self, addr: u64) -> Option<(u64, u64)> {
        let (&b, &s) = self.used.range(..=addr).next_back()?;
        (addr < b + s).then_some((b, s))
    }
}

/// Whole pages covering `size` bytes at page offset `off`.
fn dma_len(off: u64, size: u64) -> Result<u64, Errno> {
    off.checked_add(size)
        .map(|x| x.div_ceil(PAGE_SIZE))
        .and_then(|p| p.checked_mul(PAGE_SIZE))
        .ok_or(Errno::EINVAL)
}

impl<O: IommuOps> Kernel<O> {
    /// `dma_map_single()`: maps `[pa, pa + size)` for `dev` in its RID domain and returns the
    /// DMA address. Identity domains return `pa` itself.
    pub fn dma_map_single(
        &mut self,
        dev: Rid,
        pa: u64,
        size: u64,
        dir: DmaDirection,
    ) -> Result<u64, Errno> {
        if size == 0 {
            return Err(Errno::EINVAL);
        }
        let d = self.state.devices.get(&dev).ok_or(Errno::ENODEV)?;
        let dom = d.rid_domain.ok_or(Errno::ENODEV)?;
        let ty = self.state.domains.get(&dom).ok_or(Errno::ENODEV)?.ty;
        match ty {
            DomainType::Identity => Ok(pa),
            DomainType::Paging(_) => {
                let off = pa & (PAGE_SIZE - 1);
                let len = dma_len(off, size)?;
                let limit = DMA_32BIT_LIMIT.min(self.aperture_end(dom)?.saturating_add(1));
                let iova = self.domain_mut(dom)?.iova.alloc(len, limit)?;
                if let Err(e) = self.map(dom, iova, pa - off, len, dir.prot()) {
                    let _ = self.domain_mut(dom)?.iova.free(iova);
                    return Err(e);
                }
                Ok(iova + off)
            }
            _ => Err(Errno::ENODEV),
        }
    }

    /// `dma_unmap_single()`: unmaps and synchronously flushes (strict mode).
    pub fn dma_unmap_single(
        &mut self,
        dev: Rid,
        addr: u64,
        size: u64,
        _dir: DmaDirection,
    ) -> Result<(), Errno> {
        let d = self.state.devices.get(&dev).ok_or(Errno::ENODEV)?;
        let dom = d.rid_domain.ok_or(Errno::ENODEV)?;
        let ty = self.state.domains.get(&dom).ok_or(Errno::ENODEV)?.ty;
        match ty {
            DomainType::Identity => Ok(()),
            DomainType::Paging(_) => {
                let (base, _) = self.domain(dom)?.iova.find(addr).ok_or(Errno::EINVAL)?;
                let off = addr & (PAGE_SIZE - 1);
                if addr.saturating_add(size)
                    > base + self.domain(dom)?.iova.find(addr).map_or(0, |x| x.1)
                {
                    return Err(Errno::EINVAL);
                }
                let len = dma_len(off, size)?;
                self.unmap(dom, addr - off, len)?;
                self.iotlb_sync(dom)?;
                self.domain_mut(dom)?.iova.free(base)?;
                Ok(())
            }
            _ => Err(Errno::ENODEV),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iova_allocator_is_top_down_and_size_aligned() {
        let mut a = IovaAllocator::default();
        let x = a.alloc(PAGE_SIZE, 1 << 32).unwrap();
        assert_eq!(x, (1 << 32) - PAGE_SIZE);
        let y = a.alloc(3 * PAGE_SIZE, 1 << 32).unwrap();
        assert_eq!(y % (4 * PAGE_SIZE), 0);
        assert!(y + 4 * PAGE_SIZE <= x);
        assert_eq!(a.free(x + 5), Ok((x, PAGE_SIZE)));
        assert_eq!(a.alloc(PAGE_SIZE, 1 << 32), Ok(x), "freed block is reused");
        assert_eq!(a.free(0x1000), Err(Errno::EINVAL));
        let mut small = IovaAllocator::default();
        assert_eq!(small.alloc(PAGE_SIZE, 2 * PAGE_SIZE), Ok(PAGE_SIZE));
        assert_eq!(
            small.alloc(PAGE_SIZE, 2 * PAGE_SIZE),
            Err(Errno::ENOMEM),
            "page 0 is never used"
        );
    }
}
