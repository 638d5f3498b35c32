//! Kernel-level steps below the IOMMU API that the random regression draws
//! ([`iommu_model::stimulus::Op`]): the fault-processing-disable bit of a structure through
//! the driver (`fpd`), `iommu_set_root_entry()` again (`set_root_entry`), memory errors on
//! the pages that hold the driver's structures (`mem_error`) and their end
//! (`clear_mem_errors`).
//!
//! They change nothing behind the kernel's back: the kernel records the poisoned scopes
//! (the oracle faults exactly the requests that read them), FPD only decides whether a
//! fault is recorded (the golden walker reads it from memory), and the root entry stays the
//! one in use. So the oracle keeps judging after them, and they may run inside `during:`.

use anyhow::{anyhow, Result};
use iommu_model::kernel::{FpdAt, MemErrAt, NO_PASID};
use serde::Deserialize;

use super::*;

/// The largest PASID (20 bits).
const MAX_PASID: u64 = 0xF_FFFF;

/// Which structure `fpd:` changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FpdPlace {
    /// The device's scalable-mode context entry.
    Context,
    /// The PASID-directory entry of `pasid` (index `pasid >> 6`).
    PasidDir,
    /// The PASID-table entry of `pasid` (0: the RID's entry).
    PasidEntry,
}

/// `fpd: {dev, at: context|pasid_dir|pasid_entry, pasid, disable}`: sets (`disable: true`,
/// the default) or clears the fault-processing-disable bit of one of the device's structures
/// through the driver, which invalidates what the change needs
/// (`Kernel::set_fault_processing`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FpdCall {
    pub dev: DevRef,
    pub at: FpdPlace,
    /// The PASID whose directory or table entry (default 0, the RID's).
    #[serde(default)]
    pub pasid: Option<PasidRef>,
    #[serde(default = "yes")]
    pub disable: bool,
    #[serde(default)]
    pub errno: Option<ErrnoName>,
}

impl Check for FpdCall {
    fn check(self) -> Result<Self, String> {
        if self.at == FpdPlace::Context && self.pasid.is_some() {
            return Err(
                "`pasid:` names a directory or PASID-table entry; `at: context` has none".into(),
            );
        }
        check_pasid(self.pasid.as_ref())?;
        Ok(self)
    }
}

/// Which structure's page `mem_error:` poisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemErrPlace {
    /// The root table.
    RootTable,
    /// The context table of the device's bus half.
    ContextTable,
    /// The first page of the device's PASID directory (PASIDs 0 to 32767).
    PasidDir,
    /// The PASID table that holds `pasid`'s entry.
    PasidTable,
    /// The level-`level` paging-structure page the walk of `addr` reads, in the page table
    /// of what is attached at `pasid`.
    PageTable,
}

/// `mem_error: {dev, at: root_table|context_table|pasid_dir|pasid_table|page_table, pasid,
/// level, addr}`: reads of the 4 KiB page that holds one of the device's structures fail
/// (an uncorrectable memory error), and the driver flushes every cache
/// (`Kernel::inject_memory_error`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemErrorCall {
    pub dev: DevRef,
    pub at: MemErrPlace,
    /// `pasid_table`, `page_table`: the PASID (default 0, the RID's).
    #[serde(default)]
    pub pasid: Option<PasidRef>,
    /// `page_table`: the level, 4 (top) to 1 (4 KiB leaves); default 1.
    #[serde(default)]
    pub level: Option<Num>,
    /// `page_table`: the address whose walk reads the page.
    #[serde(default)]
    pub addr: Option<Addr>,
    #[serde(default)]
    pub errno: Option<ErrnoName>,
}

impl Check for MemErrorCall {
    fn check(self) -> Result<Self, String> {
        let table = self.at == MemErrPlace::PageTable;
        match self.at {
            MemErrPlace::RootTable | MemErrPlace::ContextTable | MemErrPlace::PasidDir
                if self.pasid.is_some() =>
            {
                return Err(
                    "`pasid:` goes with `at: pasid_table` or `at: page_table`; this structure \
                     is the device's whatever the PASID"
                        .into(),
                )
            }
            _ => {}
        }
        if !table && (self.level.is_some() || self.addr.is_some()) {
            return Err("`level:` and `addr:` go with `at: page_table`".into());
        }
        if table && self.addr.is_none() {
            return Err("`at: page_table` needs `addr:` (whose walk reads the page)".into());
        }
        if self.level.is_some_and(|l| !(1..=4).contains(&l.0)) {
            return Err("paging levels are 1-4".into());
        }
        check_pasid(self.pasid.as_ref())?;
        Ok(self)
    }
}

fn check_pasid(p: Option<&PasidRef>) -> Result<(), String> {
    match p {
        Some(ValRef::Num(v)) if *v > MAX_PASID => {
            Err(format!("PASID {v:#x} is wider than 20 bits"))
        }
        _ => Ok(()),
    }
}

/// No fields but an optional `errno:`: `set_root_entry: {}`, `clear_mem_errors: {}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrnoOnly {
    #[serde(default)]
    pub errno: Option<ErrnoName>,
}

impl UsesNames for FpdCall {
    fn names(&self, r: &mut Refs) {
        r.dev("dev", &self.dev);
        r.val("pasid", self.pasid.as_ref());
    }
}

impl UsesNames for MemErrorCall {
    fn names(&self, r: &mut Refs) {
        r.dev("dev", &self.dev);
        r.val("pasid", self.pasid.as_ref());
        r.val("addr", self.addr.as_ref());
    }
}

impl Runner {
    /// The PASID of a field that defaults to the RID's (`IOMMU_NO_PASID`).
    fn pasid_or_none(&self, p: Option<&PasidRef>) -> Result<u32> {
        let v = p.map_or(Ok(NO_PASID), |p| self.pasid(p))?;
        if u64::from(v) > MAX_PASID {
            return Err(anyhow!("PASID {v:#x} is wider than 20 bits"));
        }
        Ok(v)
    }

    /// `fpd:`.
    pub(super) fn fpd(&mut self, c: &FpdCall) -> Result<()> {
        let dev = self.devref(&c.dev)?;
        let p = self.pasid_or_none(c.pasid.as_ref())?;
        let at = match c.at {
            FpdPlace::Context => FpdAt::Context,
            FpdPlace::PasidDir => FpdAt::PasidDir(p >> 6),
            FpdPlace::PasidEntry => FpdAt::PasidEntry(p),
        };
        let r = self.k()?.set_fault_processing(dev, at, c.disable);
        if r.is_ok() {
            if c.disable {
                self.fpd_on.insert((dev, at));
            } else {
                self.fpd_on.remove(&(dev, at));
            }
        }
        errno_msg(
            &format!(
                "set_fault_processing({}, {at:?}, disable={})",
                show_rid(dev),
                c.disable
            ),
            r,
            c.errno,
        )?;
        Ok(())
    }

    /// `e`, failing an oracle-judged TLP, with a note when it is a fault record the unit
    /// did not write while an `fpd` step left FPD set: the oracle does not model FPD.
    pub(super) fn fpd_note(&self, e: anyhow::Error) -> anyhow::Error {
        if self.fpd_on.is_empty() || !format!("{e:#}").contains("must write a record") {
            return e;
        }
        let set: Vec<String> = self
            .fpd_on
            .iter()
            .map(|(d, at)| format!("{} {at:?}", show_rid(*d)))
            .collect();
        e.context(format!(
            "note: FPD is set ({}); this TLP is judged by the oracle (during a call or an \
             unmap's pending flush), which does not model FPD and expects every fault \
             recorded: send such TLPs to other devices, or ones that translate",
            set.join(", ")
        ))
    }

    /// `set_root_entry:`: the driver's root table again (it also undoes a `set_rtaddr`).
    pub(super) fn set_root_entry(&mut self, c: &ErrnoOnly) -> Result<()> {
        let k = self.k()?;
        let r = k.set_root_entry();
        let rtaddr = k.ops().rtaddr();
        if errno_msg("set_root_entry", r, c.errno)? {
            self.hw.rtaddr = rtaddr;
        }
        Ok(())
    }

    /// `mem_error:`.
    pub(super) fn mem_error(&mut self, c: &MemErrorCall) -> Result<()> {
        let dev = self.devref(&c.dev)?;
        let p = self.pasid_or_none(c.pasid.as_ref())?;
        let at = match c.at {
            MemErrPlace::RootTable => MemErrAt::RootTable,
            MemErrPlace::ContextTable => MemErrAt::ContextTable,
            MemErrPlace::PasidDir => MemErrAt::PasidDir,
            MemErrPlace::PasidTable => MemErrAt::PasidTable(p >> 6),
            MemErrPlace::PageTable => MemErrAt::PageTable {
                pasid: p,
                level: c.level.map_or(1, |l| l.0 as u32),
                addr: match &c.addr {
                    Some(a) => self.value(a)?,
                    None => return Err(input("`at: page_table` needs `addr:`")),
                },
            },
        };
        let r = self.k()?.inject_memory_error(dev, at);
        errno_msg(
            &format!("inject_memory_error({}, {at:?})", show_rid(dev)),
            r,
            c.errno,
        )?;
        Ok(())
    }

    /// `clear_mem_errors:` (every memory error ends, those of `poison` steps included).
    pub(super) fn clear_mem_errors(&mut self, c: &ErrnoOnly) -> Result<()> {
        let r = self.k()?.clear_memory_errors();
        errno_msg("clear_memory_errors", r, c.errno)?;
        Ok(())
    }
}
