//! Waveform files: where FST files go, the handle that opens one per DUT of a traced run,
//! and the GTKWave save file that groups the interface signals.
//!
//! Tracing is compiled into every build and off by default (it costs nothing when off).

use std::cell::RefCell;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::Dut;

/// Where a traced run writes its waveforms, passed explicitly to every DUT it creates: the
/// first DUT gets the run's path, later ones `<stem>-2.fst`, `<stem>-3.fst`, ... Cloning
/// shares the set, so sibling environments of one test add to the same list.
#[derive(Clone, Debug, Default)]
pub struct Waves(Option<Rc<RefCell<WaveSet>>>);

#[derive(Debug)]
struct WaveSet {
    base: PathBuf,
    opened: Vec<PathBuf>,
}

impl Waves {
    /// No tracing.
    pub fn off() -> Self {
        Self(None)
    }

    /// Trace every DUT of the run, the first one into `base`.
    pub fn to(base: &Path) -> Self {
        Self(Some(Rc::new(RefCell::new(WaveSet {
            base: base.to_owned(),
            opened: Vec::new(),
        }))))
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Opens the next waveform of the run for `dut` (nothing when tracing is off).
    pub fn open(&self, dut: &mut Dut) {
        let Some(set) = &self.0 else { return };
        let mut set = set.borrow_mut();
        let path = if set.opened.is_empty() {
            set.base.clone()
        } else {
            let stem = set
                .base
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            set.base
                .with_file_name(format!("{stem}-{}.fst", set.opened.len() + 1))
        };
        if dut.trace_start(&path).is_ok() {
            set.opened.push(path);
        }
    }

    /// Every waveform opened so far, in order.
    pub fn opened(&self) -> Vec<PathBuf> {
        self.0
            .as_ref()
            .map(|s| s.borrow().opened.clone())
            .unwrap_or_default()
    }
}

/// Folder for waveforms: `$IOMMU_TB_WAVES_DIR`, else `target/waves` in the workspace.
pub fn waves_dir() -> PathBuf {
    match std::env::var_os("IOMMU_TB_WAVES_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let tb = Path::new(env!("CARGO_MANIFEST_DIR"));
            tb.parent().unwrap_or(tb).join("target").join("waves")
        }
    }
}

/// True when `IOMMU_TB_WAVES` asks for a waveform of every run.
pub fn always_trace() -> bool {
    matches!(
        std::env::var("IOMMU_TB_WAVES")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Ok("1" | "true" | "yes" | "on")
    )
}

/// `<dir>/<name>-seed<seed>.fst`, with `name` reduced to a safe file name.
pub fn wave_path(dir: &Path, name: &str, seed: u64) -> PathBuf {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{safe}-seed{seed:016x}.fst"))
}

/// Interface signals of `iommu_top`, grouped as GTKWave shows them: (group, [(name, width)]).
const GROUPS: &[(&str, &[(&str, u32)])] = &[
    ("Clock and reset", &[("clk_i", 1), ("rst_ni", 1)]),
    (
        "TLP ingress",
        &[
            ("rx_valid_i", 1),
            ("rx_ready_o", 1),
            ("rx_nprefix_i", 3),
            ("rx_prefix_i", 128),
            ("rx_hdr_i", 128),
        ],
    ),
    (
        "TLP egress",
        &[("tx_valid_o", 1), ("tx_ready_i", 1), ("tx_hdr_o", 128)],
    ),
    (
        "Completion",
        &[("cpl_valid_o", 1), ("cpl_ready_i", 1), ("cpl_hdr_o", 96)],
    ),
    (
        "CSR",
        &[
            ("csr_valid_i", 1),
            ("csr_ready_o", 1),
            ("csr_write_i", 1),
            ("csr_addr_i", 12),
            ("csr_size64_i", 1),
            ("csr_wdata_i", 64),
            ("csr_rvalid_o", 1),
            ("csr_rdata_o", 64),
            ("csr_error_o", 1),
        ],
    ),
    (
        "Memory",
        &[
            ("mem_req_valid_o", 1),
            ("mem_req_ready_i", 1),
            ("mem_req_write_o", 1),
            ("mem_req_addr_o", 64),
            ("mem_req_wdata_o", 64),
            ("mem_req_wstrb_o", 8),
            ("mem_rsp_valid_i", 1),
            ("mem_rsp_rdata_i", 64),
            ("mem_rsp_error_i", 1),
        ],
    ),
    ("Interrupts", &[("fault_irq_o", 1), ("inv_irq_o", 1)]),
];

/// Writes a GTKWave save file beside `fst` (same stem, `.gtkw`) that opens the waveform
/// with the interface signals in groups. Returns its path.
pub fn write_gtkw(fst: &Path) -> io::Result<PathBuf> {
    let mut s = String::new();
    s.push_str(&format!("[dumpfile] \"{}\"\n", fst.display()));
    s.push_str("[timestart] 0\n[sst_expanded] 1\n[signals_width] 260\n");
    for (group, sigs) in GROUPS {
        s.push_str(&format!("@800200\n-{group}\n"));
        for (name, width) in *sigs {
            if *width == 1 {
                s.push_str(&format!("@28\nTOP.iommu_top.{name}\n"));
            } else {
                s.push_str(&format!("@22\nTOP.iommu_top.{name}[{}:0]\n", width - 1));
            }
        }
        s.push_str(&format!("@1000200\n-{group}\n"));
    }
    let path = fst.with_extension("gtkw");
    fs::write(&path, s)?;
    Ok(path)
}
