//! Waveform files: where FST files go, the handle that opens one per DUT of a traced run,
//! and the GTKWave save file that groups the interface signals.
//!
//! Tracing is compiled into every build and off by default (it costs nothing when off).

use std::cell::RefCell;
use std::ffi::OsString;
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

/// Folder for waveforms, found from the current directory when it is asked for (never a
/// path fixed when the binary was built): see [`waves_dir_from`].
pub fn waves_dir() -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    waves_dir_from(
        &cwd,
        std::env::var_os("IOMMU_TB_WAVES_DIR"),
        std::env::var_os("CARGO_TARGET_DIR"),
    )
}

/// Folder for waveforms of a run started in `start`, given the values of
/// `$IOMMU_TB_WAVES_DIR` (`waves_env`) and `$CARGO_TARGET_DIR` (`target_env`), first match:
///
/// 1. `$IOMMU_TB_WAVES_DIR`;
/// 2. `$CARGO_TARGET_DIR/waves` (the target folder Cargo itself uses when it is set);
/// 3. `<workspace>/target/waves`, the workspace being the nearest folder from `start` upward
///    whose `Cargo.toml` has a `[workspace]` table;
/// 4. `start` itself.
///
/// Relative values are taken from `start`, as the shell would; empty values count as unset.
pub fn waves_dir_from(
    start: &Path,
    waves_env: Option<OsString>,
    target_env: Option<OsString>,
) -> PathBuf {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty());
    if let Some(d) = set(waves_env) {
        return start.join(d);
    }
    if let Some(t) = set(target_env) {
        return start.join(t).join("waves");
    }
    match find_workspace(start) {
        Some(ws) => ws.join("target").join("waves"),
        None => start.to_path_buf(),
    }
}

/// The nearest folder from `start` upward (`start` included) whose `Cargo.toml` declares a
/// workspace (a `[workspace]` or `[workspace.*]` table).
pub fn find_workspace(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| {
            fs::read_to_string(d.join("Cargo.toml")).is_ok_and(|toml| {
                toml.lines().any(|l| {
                    l.trim()
                        .strip_prefix("[workspace")
                        .is_some_and(|rest| rest.starts_with(']') || rest.starts_with('.'))
                })
            })
        })
        .map(Path::to_path_buf)
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

/// How an interface signal of `iommu_top` is traced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sig {
    /// One bit.
    Bit,
    /// A vector of this many bits.
    Vector(u32),
    /// A packed array of this many 32-bit words (`[N-1:0][31:0]`, DW0 at index 0): traced
    /// (with `--trace-structs`) as one signal per word, never as one vector.
    Words(u32),
}

/// Interface signals of `iommu_top`, grouped as GTKWave shows them.
const GROUPS: &[(&str, &[(&str, Sig)])] = &[
    (
        "Clock and reset",
        &[("clk_i", Sig::Bit), ("rst_ni", Sig::Bit)],
    ),
    (
        "TLP ingress",
        &[
            ("rx_valid_i", Sig::Bit),
            ("rx_ready_o", Sig::Bit),
            ("rx_nprefix_i", Sig::Vector(3)),
            ("rx_prefix_i", Sig::Words(4)),
            ("rx_hdr_i", Sig::Words(4)),
        ],
    ),
    (
        "TLP egress",
        &[
            ("tx_valid_o", Sig::Bit),
            ("tx_ready_i", Sig::Bit),
            ("tx_hdr_o", Sig::Words(4)),
        ],
    ),
    (
        "Completion",
        &[
            ("cpl_valid_o", Sig::Bit),
            ("cpl_ready_i", Sig::Bit),
            ("cpl_hdr_o", Sig::Words(3)),
        ],
    ),
    (
        "CSR",
        &[
            ("csr_valid_i", Sig::Bit),
            ("csr_ready_o", Sig::Bit),
            ("csr_write_i", Sig::Bit),
            ("csr_addr_i", Sig::Vector(12)),
            ("csr_size64_i", Sig::Bit),
            ("csr_wdata_i", Sig::Vector(64)),
            ("csr_rvalid_o", Sig::Bit),
            ("csr_rdata_o", Sig::Vector(64)),
            ("csr_error_o", Sig::Bit),
        ],
    ),
    (
        "Memory",
        &[
            ("mem_req_valid_o", Sig::Bit),
            ("mem_req_ready_i", Sig::Bit),
            ("mem_req_id_o", Sig::Vector(4)),
            ("mem_req_write_o", Sig::Bit),
            ("mem_req_addr_o", Sig::Vector(64)),
            ("mem_req_wdata_o", Sig::Vector(64)),
            ("mem_req_wstrb_o", Sig::Vector(8)),
            ("mem_rsp_valid_i", Sig::Bit),
            ("mem_rsp_id_i", Sig::Vector(4)),
            ("mem_rsp_rdata_i", Sig::Vector(64)),
            ("mem_rsp_error_i", Sig::Bit),
        ],
    ),
    (
        "Interrupts",
        &[("fault_irq_o", Sig::Bit), ("inv_irq_o", Sig::Bit)],
    ),
];

/// True when this build's Verilator traces a packed array's words in a scope of the array's
/// own name (`rx_hdr_i.rx_hdr_i[0]`, Verilator 5.052) rather than beside it (`rx_hdr_i[0]`,
/// 5.006). `build.rs` reads it from the generated trace code.
pub fn fst_array_scopes() -> bool {
    env!("IOMMU_TB_FST_ARRAY_SCOPES") == "1"
}

/// The GTKWave names of `sig` (e.g. `TOP.iommu_top.csr_addr_i[11:0]`).
fn gtkw_names(name: &str, sig: Sig, array_scopes: bool) -> Vec<String> {
    let base = format!("TOP.iommu_top.{name}");
    match sig {
        Sig::Bit => vec![base],
        Sig::Vector(w) => vec![format!("{base}[{}:0]", w - 1)],
        Sig::Words(n) => (0..n)
            .map(|i| {
                if array_scopes {
                    format!("{base}.{name}[{i}][31:0]")
                } else {
                    format!("{base}[{i}][31:0]")
                }
            })
            .collect(),
    }
}

/// Every signal the GTKWave save file names, in order.
pub fn gtkw_signals() -> Vec<String> {
    GROUPS
        .iter()
        .flat_map(|(_, sigs)| sigs.iter())
        .flat_map(|(name, sig)| gtkw_names(name, *sig, fst_array_scopes()))
        .collect()
}

/// Writes a GTKWave save file beside `fst` (same stem, `.gtkw`) that opens the waveform
/// with the interface signals in groups. Returns its path.
pub fn write_gtkw(fst: &Path) -> io::Result<PathBuf> {
    let mut s = String::new();
    s.push_str(&format!("[dumpfile] \"{}\"\n", fst.display()));
    s.push_str("[timestart] 0\n[sst_expanded] 1\n[signals_width] 260\n");
    for (group, sigs) in GROUPS {
        s.push_str(&format!("@800200\n-{group}\n"));
        for (name, sig) in *sigs {
            // Flags: 28 = binary (one bit), 22 = hexadecimal.
            let flags = if *sig == Sig::Bit { "@28" } else { "@22" };
            for n in gtkw_names(name, *sig, fst_array_scopes()) {
                s.push_str(&format!("{flags}\n{n}\n"));
            }
        }
        s.push_str(&format!("@1000200\n-{group}\n"));
    }
    let path = fst.with_extension("gtkw");
    fs::write(&path, s)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder tree of its own under the system temp folder (tests run in parallel).
    fn scratch(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("iommu-tb-wavesdir-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn waves_go_under_the_workspace_found_from_the_start_folder() {
        let root = scratch("ws");
        fs::write(root.join("Cargo.toml"), "[workspace]\nmembers = [\"a\"]\n").expect("write");
        // A member package (no workspace table) between the start folder and the root.
        let member = root.join("a");
        let deep = member.join("src").join("deep");
        fs::create_dir_all(&deep).expect("mkdir");
        fs::write(member.join("Cargo.toml"), "[package]\nname = \"a\"\n").expect("write");
        assert_eq!(find_workspace(&deep), Some(root.clone()));
        assert_eq!(
            waves_dir_from(&deep, None, None),
            root.join("target").join("waves")
        );
        assert_eq!(
            waves_dir_from(&root, None, None),
            root.join("target").join("waves")
        );
        // `[workspace.package]` alone declares a workspace too.
        let nested = scratch("ws-dotted");
        fs::write(
            nested.join("Cargo.toml"),
            "[workspace.package]\nedition = \"2021\"\n",
        )
        .expect("write");
        assert_eq!(find_workspace(&nested), Some(nested.clone()));
        let _ = fs::remove_dir_all(&root);
        let _ = fs::remove_dir_all(&nested);
    }

    #[test]
    fn cargo_target_dir_then_the_start_folder() {
        let root = scratch("tgt");
        fs::write(root.join("Cargo.toml"), "[workspace]\n").expect("write");
        assert_eq!(
            waves_dir_from(&root, None, Some("/elsewhere/tgt".into())),
            Path::new("/elsewhere/tgt/waves")
        );
        // Relative to the start folder, as Cargo takes it.
        assert_eq!(
            waves_dir_from(&root, None, Some("build".into())),
            root.join("build").join("waves")
        );
        // Empty counts as unset.
        assert_eq!(
            waves_dir_from(&root, Some("".into()), Some("".into())),
            root.join("target").join("waves")
        );
        let _ = fs::remove_dir_all(&root);
        // No workspace above (the temp folder's ancestors have none, checked first).
        let bare = scratch("bare");
        if find_workspace(&bare).is_none() {
            assert_eq!(waves_dir_from(&bare, None, None), bare);
        }
        let _ = fs::remove_dir_all(&bare);
    }

    #[test]
    fn the_waves_variable_wins() {
        let root = scratch("env");
        fs::write(root.join("Cargo.toml"), "[workspace]\n").expect("write");
        assert_eq!(
            waves_dir_from(&root, Some("/w".into()), Some("/t".into())),
            Path::new("/w")
        );
        assert_eq!(
            waves_dir_from(&root, Some("mine".into()), None),
            root.join("mine")
        );
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn names_follow_the_trace_layout() {
        assert_eq!(
            gtkw_names("rx_hdr_i", Sig::Words(2), false),
            [
                "TOP.iommu_top.rx_hdr_i[0][31:0]",
                "TOP.iommu_top.rx_hdr_i[1][31:0]"
            ]
        );
        assert_eq!(
            gtkw_names("cpl_hdr_o", Sig::Words(1), true),
            ["TOP.iommu_top.cpl_hdr_o.cpl_hdr_o[0][31:0]"]
        );
        assert_eq!(
            gtkw_names("csr_addr_i", Sig::Vector(12), true),
            ["TOP.iommu_top.csr_addr_i[11:0]"]
        );
        assert_eq!(
            gtkw_names("clk_i", Sig::Bit, false),
            ["TOP.iommu_top.clk_i"]
        );
    }
}
