//! Checking: what the DUT did, judged against the golden walker (exact) and the oracle (the
//! set of outcomes legal hardware may produce). One judge for everything: every flow sends
//! its TLPs as streams through [`stream`] and the [`scoreboard`] checks them.
//! - [`expect`]: a TLP's allowed answers (egress and fault record), from the golden walker,
//!   the oracle or the TLP codec.
//! - [`device_cache`]: what the devices' ATS caches hold, against the oracle.
//! - [`order`]: the PCIe ordering rules of the translated-request port.
//! - [`scoreboard`]: pairs every egress TLP with its request and checks answer, ordering,
//!   loss, duplicates and fault records (in order).
//! - [`records`]: drains the unit's fault records in the order it wrote them.
//! - [`stream`]: drives a stream through the DUT (gaps, back-pressure, record batches).
//! - [`judge`](mod@judge): one request, or one burst, against the golden walker (directed tests).
//! - [`iotlb_model`]: reference model of the RTL's PASID-entry cache and IOTLB (which
//!   requests must hit, which must walk), with [`psc_model`] for its paging-structure
//!   caches (how far down a walk starts).

pub(crate) mod device_cache;
pub(crate) mod expect;
pub(crate) mod iotlb_model;
pub(crate) mod judge;
pub(crate) mod order;
pub(crate) mod psc_model;
pub(crate) mod records;
pub(crate) mod scoreboard;
pub(crate) mod stream;

pub use iotlb_model::{CacheConfig, CacheModel, LeafSize, PcInfo, PcKey, RTL_HAS_PSC};
pub use judge::{
    check_burst, expected_egress, expected_record, golden_request, judge, take_fault_records,
    BurstReport, Judged,
};
pub use psc_model::PscConfig;

#[cfg(test)]
mod tests;
