//! The operation mix of generated sequences, by name (`iommu-tb regress --weights`).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Relative frequency of each kind of operation in a generated sequence. The default mix
/// (29 in all) favours map/unmap and RID and PASID attach (unmaps through PASID
/// attachments are what the regression's device-TLB check needs to catch a missing type 8
/// invalidation); a weight of 0 leaves a kind out.
///
/// `fpd` sets the fault-processing-disable bit of a context, PASID-directory or PASID-table
/// entry through the driver (the generator clears it again with the next operation);
/// `set_root_entry` re-programs the root table in use (SRTP and the global invalidations);
/// `mem_error` makes reads of one translation-structure page fail (root, context,
/// PASID-directory, PASID or page table), as an uncorrectable memory error would, until the
/// next operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weights {
    pub domain_alloc: u32,
    pub attach_device: u32,
    pub enable_dma_pasid: u32,
    pub disable_dma_pasid: u32,
    pub attach_device_pasid: u32,
    pub detach_device_pasid: u32,
    pub map: u32,
    pub unmap: u32,
    pub iotlb_sync: u32,
    pub dma_map_single: u32,
    pub dma_unmap_single: u32,
    pub mm_create: u32,
    pub mm_map: u32,
    pub mm_unmap: u32,
    pub sva_bind: u32,
    pub sva_unbind: u32,
    pub fpd: u32,
    pub set_root_entry: u32,
    pub mem_error: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            domain_alloc: 1,
            attach_device: 2,
            enable_dma_pasid: 2,
            disable_dma_pasid: 1,
            attach_device_pasid: 3,
            detach_device_pasid: 1,
            map: 4,
            unmap: 4,
            iotlb_sync: 1,
            dma_map_single: 1,
            dma_unmap_single: 1,
            mm_create: 1,
            mm_map: 1,
            mm_unmap: 1,
            sva_bind: 1,
            sva_unbind: 1,
            fpd: 1,
            set_root_entry: 1,
            mem_error: 1,
        }
    }
}

/// The kinds, numbered as [`Weights::entries`] lists them.
pub(crate) mod kind {
    pub const DOMAIN_ALLOC: usize = 0;
    pub const ATTACH_DEVICE: usize = 1;
    pub const ENABLE_DMA_PASID: usize = 2;
    pub const DISABLE_DMA_PASID: usize = 3;
    pub const ATTACH_DEVICE_PASID: usize = 4;
    pub const DETACH_DEVICE_PASID: usize = 5;
    pub const MAP: usize = 6;
    pub const UNMAP: usize = 7;
    pub const IOTLB_SYNC: usize = 8;
    pub const DMA_MAP_SINGLE: usize = 9;
    pub const DMA_UNMAP_SINGLE: usize = 10;
    pub const MM_CREATE: usize = 11;
    pub const MM_MAP: usize = 12;
    pub const MM_UNMAP: usize = 13;
    pub const SVA_BIND: usize = 14;
    pub const SVA_UNBIND: usize = 15;
    pub const FPD: usize = 16;
    pub const SET_ROOT_ENTRY: usize = 17;
    pub const MEM_ERROR: usize = 18;
}

impl Weights {
    /// Every kind with its name and weight, in the order the generator numbers them.
    pub fn entries(&self) -> [(&'static str, u32); 19] {
        [
            ("domain_alloc", self.domain_alloc),
            ("attach_device", self.attach_device),
            ("enable_dma_pasid", self.enable_dma_pasid),
            ("disable_dma_pasid", self.disable_dma_pasid),
            ("attach_device_pasid", self.attach_device_pasid),
            ("detach_device_pasid", self.detach_device_pasid),
            ("map", self.map),
            ("unmap", self.unmap),
            ("iotlb_sync", self.iotlb_sync),
            ("dma_map_single", self.dma_map_single),
            ("dma_unmap_single", self.dma_unmap_single),
            ("mm_create", self.mm_create),
            ("mm_map", self.mm_map),
            ("mm_unmap", self.mm_unmap),
            ("sva_bind", self.sva_bind),
            ("sva_unbind", self.sva_unbind),
            ("fpd", self.fpd),
            ("set_root_entry", self.set_root_entry),
            ("mem_error", self.mem_error),
        ]
    }

    fn slot(&mut self, name: &str) -> Option<&mut u32> {
        Some(match name {
            "domain_alloc" => &mut self.domain_alloc,
            "attach_device" => &mut self.attach_device,
            "enable_dma_pasid" => &mut self.enable_dma_pasid,
            "disable_dma_pasid" => &mut self.disable_dma_pasid,
            "attach_device_pasid" => &mut self.attach_device_pasid,
            "detach_device_pasid" => &mut self.detach_device_pasid,
            "map" => &mut self.map,
            "unmap" => &mut self.unmap,
            "iotlb_sync" => &mut self.iotlb_sync,
            "dma_map_single" => &mut self.dma_map_single,
            "dma_unmap_single" => &mut self.dma_unmap_single,
            "mm_create" => &mut self.mm_create,
            "mm_map" => &mut self.mm_map,
            "mm_unmap" => &mut self.mm_unmap,
            "sva_bind" => &mut self.sva_bind,
            "sva_unbind" => &mut self.sva_unbind,
            "fpd" => &mut self.fpd,
            "set_root_entry" => &mut self.set_root_entry,
            "mem_error" => &mut self.mem_error,
            _ => return None,
        })
    }

    /// Sets one weight by name (as `entries` names them).
    pub fn set(&mut self, name: &str, w: u32) -> Result<(), String> {
        match self.slot(name) {
            Some(s) => {
                *s = w;
                Ok(())
            }
            None => {
                let names: Vec<&str> = self.entries().iter().map(|(n, _)| *n).collect();
                Err(format!(
                    "unknown operation `{name}` (known: {})",
                    names.join(", ")
                ))
            }
        }
    }

    /// Parses `name=weight,name=weight,...` on top of the default mix.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut w = Self::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}`: expected name=weight"))?;
            let value: u32 = value
                .trim()
                .parse()
                .map_err(|_| format!("`{item}`: the weight is not a whole number"))?;
            w.set(name.trim(), value)?;
        }
        if w.entries().iter().all(|(_, v)| *v == 0) {
            return Err("every weight is 0: nothing to generate".into());
        }
        Ok(w)
    }

    /// Picks a kind (an index into [`Weights::entries`]) with probability weight / total.
    pub(crate) fn pick(&self, rng: &mut ChaCha8Rng) -> usize {
        let e = self.entries();
        let total: u32 = e.iter().map(|(_, w)| w).sum();
        let mut r = rng.gen_range(0..total.max(1));
        for (i, (_, w)) in e.iter().enumerate() {
            if r < *w {
                return i;
            }
            r -= w;
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn picks_follow_the_weights() {
        let w = Weights::default();
        let mut r = ChaCha8Rng::seed_from_u64(9);
        let mut n = [0u32; 19];
        for _ in 0..29_000 {
            n[w.pick(&mut r)] += 1;
        }
        for (i, (name, wt)) in w.entries().iter().enumerate() {
            let want = 1000 * wt;
            assert!(
                n[i].abs_diff(want) < want / 5 + 60,
                "{name}: {} picks for weight {wt}",
                n[i]
            );
        }
    }

    #[test]
    fn weights_parse_and_reject() {
        let w = Weights::parse("map=6, unmap=0,sva_bind=2,fpd=3").expect("valid");
        assert_eq!(
            (w.map, w.unmap, w.sva_bind, w.attach_device, w.fpd),
            (6, 0, 2, 2, 3)
        );
        assert!(Weights::parse("set_root_entry=0").is_ok());
        assert!(Weights::parse("mapp=1")
            .unwrap_err()
            .contains("unknown operation `mapp`"));
        assert!(Weights::parse("map")
            .unwrap_err()
            .contains("expected name=weight"));
        assert!(Weights::parse("map=-1")
            .unwrap_err()
            .contains("whole number"));
        let all_zero: Vec<String> = Weights::default()
            .entries()
            .iter()
            .map(|(n, _)| format!("{n}=0"))
            .collect();
        assert!(Weights::parse(&all_zero.join(",")).is_err());
        // A zero weight leaves the kind out.
        let w = Weights::parse("map=0").expect("valid");
        let mut r = ChaCha8Rng::seed_from_u64(1);
        assert!((0..5000).all(|_| w.pick(&mut r) != kind::MAP));
    }
}
