//! Checking: what the DUT did, judged against the golden walker (exact) and the oracle (the
//! set of outcomes legal hardware may produce). One judge for everything: every flow sends
//! its TLPs as streams through [`stream`] and the [`scoreboard`] checks them.
//! - [`expect`]: a TLP's allowed answers (egress and fault record), from the golden walker,
//!   the oracle or the TLP codec.
//! - [`order`]: the PCIe ordering rules of the translated-request port.
//! - [`scoreboard`]: pairs every egress TLP with its request and checks answer, ordering,
//!   loss, duplicates and fault records (in order).
//! - [`records`]: drains the unit's fault records in the order it wrote them.
//! - [`stream`]: drives a stream through the DUT (gaps, back-pressure, record batches).
//! - [`judge`]: one request, or one burst, against the golden walker (directed tests).
//! - [`iotlb_model`]: reference model of the RTL's PASID-entry cache and IOTLB (which
//!   requests must hit, which must walk), with [`psc_model`] for its paging-structure
//!   caches (how far down a walk starts).

pub mod expect;
pub mod iotlb_model;
pub mod judge;
pub mod order;
pub mod psc_model;
pub mod records;
pub mod scoreboard;
pub mod stream;

#[cfg(test)]
mod tests;
