//! Checking: what the DUT did, judged against the golden walker (exact) and the oracle (the
//! set of outcomes legal hardware may produce).
//! - [`judge`]: one request against the golden walker: egress and fault record, field by field.
//! - [`scoreboard`]: streaming check of pipelined TLP bursts (order, loss, duplicates, watchdog).

pub mod judge;
pub mod scoreboard;
