//! The testbench's own tests through the verilated RTL: one binary (it links the simulator
//! once), one module per topic.

mod ats;
mod bench_xlate;
mod bridge;
mod cache_model;
mod cli;
mod concurrency;
mod coverage;
mod devtlb;
mod driver_steps;
mod during;
mod fault_codes;
mod invalidation;
mod iotlb;
mod memport;
mod monitors;
mod queue;
mod recording;
mod reg_model;
mod registers;
mod regress;
mod scoreboard;
mod shrink;
mod timing;
mod translation;
mod untranslated;
mod vector_steps;
mod vectors;
mod waves;

/// Every `(step, at, what)`: the vector `name: t\n{head}steps:\n{step}` must be refused at
/// parse time with an error that starts with `at` (its `file:line:`) and contains `what`.
pub fn assert_parse_errors(head: &str, cases: &[(&str, &str, &str)]) {
    use std::path::Path;
    for (step, at, what) in cases {
        let text = format!("name: t\n{head}steps:\n{step}");
        let e = match iommu_tb::vectors::parse_str(&text, Path::new("bad.yaml"), Path::new(".")) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.starts_with(at) && e.contains(what),
            "expected `{at}`..`{what}`: {e}"
        );
    }
}
