//! Machine-read reports: JUnit XML for CI dashboards. A tool layer: it knows nothing of the
//! DUT, and every command that reports results uses it.

pub(crate) mod junit;

pub use junit::{Case, Suite, Verdict};
