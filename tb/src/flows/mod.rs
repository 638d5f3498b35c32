//! What the CLI and the tests run.
//! - [`regress`]: seeded kernel-API sequences on the RTL, every request judged.
//! - [`untranslated`]: checked random traffic through the untranslated path (TE = 0).
//! - [`bench`](mod@bench): translation figures (walk cycles, hit throughput) for `iommu-tb bench-xlate`.
//! - [`shrink`]: a failing regression seed shrunk to a short YAML vector.

pub mod bench;
pub mod regress;
pub mod shrink;
pub mod untranslated;
