//! Parsing a vector file: YAML to a checked [`Vector`], errors with `file:line:column`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::*;

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

/// FNV-1a of the name: the default seed.
pub(super) fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Reads a vector from text; `file` names it in errors and image paths are relative to
/// `base`.
pub fn parse_str(text: &str, file: &Path, base: &Path) -> Result<Vector, VectorError> {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            SCOPE.with(|s| *s.borrow_mut() = None);
        }
    }
    SCOPE.with(|s| {
        *s.borrow_mut() = Some(Scope {
            names: BTreeMap::new(),
            base: base.to_owned(),
            kernel: false,
        })
    });
    let _reset = Reset;
    let raw: RawVector = serde_yaml::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        VectorError::Parse {
            file: file.to_owned(),
            line,
            column,
            message: strip_location(&e.to_string()),
        }
    })?;
    let devices = raw.devices.map(|d| d.0).unwrap_or_default();
    if !devices.is_empty() && (raw.memory.is_some() || !raw.registers.is_empty()) {
        return Err(VectorError::Invalid {
            file: file.to_owned(),
            message: "a kernel-level vector (with `devices:`) changes hardware with steps \
                      (`poke`, `poison`, `set_rtaddr`, `write_register`), not with \
                      `memory:`/`registers:`"
                .into(),
        });
    }
    Ok(Vector {
        seed: raw.seed.map_or_else(|| name_seed(&raw.name), |s| s.0),
        name: raw.name,
        description: raw.description,
        devices,
        memory: raw.memory.map(|m| m.0),
        registers: raw.registers.into_iter().map(|r| r.0).collect(),
        steps: raw.steps.into_iter().map(|s| s.0).collect(),
        file: file.to_owned(),
    })
}

/// serde_yaml appends " at line L column C"; the location is reported in front instead.
pub(super) fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Reads a vector file.
pub fn parse_file(path: &Path) -> Result<Vector, VectorError> {
    let text = std::fs::read_to_string(path).map_err(|source| VectorError::Io {
        file: path.to_owned(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_str(&text, path, base)
}

/// The vector files under `paths`: files as given, directories' `*.yaml`/`*.yml` (sorted).
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading directory {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            v.sort();
            out.extend(v);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("{}: no such file or directory", p.display());
        }
    }
    Ok(out)
}
