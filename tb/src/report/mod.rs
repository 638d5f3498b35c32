//! Machine-read reports: JUnit XML for CI dashboards. A tool layer: it knows nothing of the
//! DUT, and every command that reports results uses it.

pub mod junit;
