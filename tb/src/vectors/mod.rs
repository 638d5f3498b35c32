//! YAML test vectors (`vectors/*.yaml`; the format is documented in `vectors/README.md`).
//!
//! A vector is a scenario: a list of steps run on one DUT. A *kernel-level* vector declares
//! `devices:`; the model's kernel and VT-d driver program the DUT ([`crate::hw::rtl_hw::RtlHw`])
//! and the steps are kernel and DMA API calls with symbolic names (devices, domains, PASIDs,
//! mms, DMA addresses), the driver's operations below that API (FPD, the root entry, memory
//! errors on its structures: `maint.rs`), TLPs, and hardware-level changes to the tables the
//! driver built. A *hardware-level* vector has no devices: a memory image (`memory:`),
//! register writes (`registers:`) and raw TLPs, so tables written by any software can be
//! replayed.
//!
//! Every TLP is judged twice over, as the regression does: the DUT must do exactly what the
//! golden walker does on the memory it walks, fault record included ([`crate::check::judge`](mod@crate::check::judge)), and
//! in kernel-level vectors the outcome must be in the oracle's allowed set (while an unmap's
//! flush is pending, only the oracle judges: the old translation is allowed). A pinned
//! `expect:` is checked in addition.
//!
//! Parsing checks everything that can be checked without the DUT (unknown keys, numbers,
//! RIDs, fault codes, errno names, symbolic names used before they are bound, exclusive
//! fields, image files) and reports `file:line:column: message`. Failures while running name
//! the file and the step.

mod ats;
mod batch;
mod concurrent;
mod during;
mod hw_run;
mod hw_steps;
mod judging;
mod maint;
mod names;
mod parse;
mod run;
mod schema;
mod values;

pub use ats::*;
pub use batch::*;
pub use concurrent::*;
pub use during::*;
pub use hw_steps::*;
pub use judging::{first_byte_offset, short_outcome, short_request};
pub use maint::*;
use names::*;
pub use names::{locate, Seg};
pub use parse::*;
pub use run::*;
pub use schema::*;
pub use values::*;

use std::path::PathBuf;

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// A vector that cannot be read: where and why.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    #[error("{}: {source}", file.display())]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", file.display())]
    Parse {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {message}", file.display())]
    Invalid { file: PathBuf, message: String },
}
