//! Checking: what the DUT did, judged against the golden walker (exact) and the oracle (the
//! set of outcomes legal hardware may produce).
//! - [`iotlb_model`]: reference model of the RTL's PASID-entry cache and IOTLB (which
//!   requests must hit, which must walk).
//! - [`judge`]: one request against the golden walker: egress and fault record, field by field.
//! - [`scoreboard`]: streaming check of pipelined TLP bursts (order, loss, duplicates, watchdog).

pub mod iotlb_model;
pub mod judge;
pub mod scoreboard;
