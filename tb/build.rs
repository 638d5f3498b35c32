//! Verilates the RTL named in `fusesoc.core` and links it, with the Verilator runtime and the
//! cxx bridge, into this crate.
//!
//! The RTL file list and the top module come from the core file's `waivers` and `rtl`
//! filesets and its `default` target, so cargo and FuseSoC build the same design. The build
//! reruns only when the core file, an RTL file, the shim or a file Verilator read changes.

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};

const MIN_VERILATOR: (u32, u32) = (5, 6);
const INSTALL_HINT: &str = "install it with `sudo apt-get install -y verilator zlib1g-dev` \
                            (Debian 12 ships 5.006), or put a newer one first on PATH";

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
    let mut files = yaml_files(&core, "waivers", root)?;
    files.extend(yaml_files(&core, "rtl", root)?);
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

fn verilator_version(bin: &str) -> Result<(u32, u32, String)> {
    let out = Command::new(bin).arg("--version").output().map_err(|_| {
        anyhow!("`{bin}` was not found on PATH; iommu-tb needs Verilator >= 5.006: {INSTALL_HINT}")
    })?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    // "Verilator 5.006 2022-12-11 rev v5.006"
    let ver = text
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow!("cannot read the version from `{bin} --version`: {text:?}"))?;
    let (maj, min) = ver
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or_else(|| anyhow!("cannot read the version from `{bin} --version`: {text:?}"))?;
    if (maj, min) < MIN_VERILATOR {
        bail!("found Verilator {ver}, iommu-tb needs >= 5.006: {INSTALL_HINT}");
    }
    Ok((maj, min, text))
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

    let core = read_core(&root)?;
    for f in &core.files {
        println!("cargo:rerun-if-changed={}", f.display());
    }

    let bin = env::var("VERILATOR").unwrap_or_else(|_| "verilator".to_owned());
    let (_, _, version_text) = verilator_version(&bin)?;
    let vroot = {
        let o = Command::new(&bin)
            .args(["--getenv", "VERILATOR_ROOT"])
            .output()
            .context("running verilator --getenv VERILATOR_ROOT")?;
        PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
    };
    let vinc = vroot.join("include");

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
    let rt_key = {
        let mut s = format!("{version_text}|{}|", vinc.display());
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
        b.compile(&rt_name);
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
        .file(manifest.join("cpp/dut_shim.cpp"));
    for (k, v) in &defines {
        b.define(k, v.as_str());
    }
    for k in [
        "VM_CLASSES_FAST",
        "VM_CLASSES_SLOW",
        "VM_SUPPORT_FAST",
        "VM_SUPPORT_SLOW",
    ] {
        for c in list(k) {
            b.file(vdir.join(format!("{c}.cpp")));
        }
    }
    b.compile("iommu_dut");
    // After the model: static archives resolve left to right.
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static={rt_name}");
    println!("cargo:rustc-link-lib=z");
    println!("cargo:rustc-link-lib=pthread");
    println!("cargo:rustc-env=IOMMU_TB_VERILATOR={version_text}");
    Ok(())
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
