//! Parsing a vector file: YAML to a checked [`Vector`], errors with `file:line:column`.

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
///
/// Three passes: serde_yaml reads the typed schema (no context: names are strings), a pass
/// over the parsed vector in document order checks that names are bound before use and
/// that steps fit the vector's level ([`check`]), and images are loaded. Errors of the later
/// passes are placed with [`locate`].
pub fn parse_str(text: &str, file: &Path, base: &Path) -> Result<Vector, VectorError> {
    let raw: RawVector = serde_yaml::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        VectorError::Parse {
            file: file.to_owned(),
            line,
            column,
            message: strip_location(&e.to_string()),
        }
    })?;
    let at = |path: &[Seg], message: String| {
        let (line, column) = locate(text, path);
        VectorError::Parse {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    };
    let kernel = !raw.devices.is_empty();
    if kernel && (raw.memory.is_some() || !raw.registers.is_empty()) {
        return Err(VectorError::Invalid {
            file: file.to_owned(),
            message: "a kernel-level vector (with `devices:`) changes hardware with steps \
                      (`poke`, `poison`, `set_rtaddr`, `write_register`), not with \
                      `memory:`/`registers:`"
                .into(),
        });
    }
    if !kernel && !raw.driver_bugs.is_empty() {
        return Err(at(
            &[Seg::Key("driver_bugs")],
            "`driver_bugs:` switch bugs of the model's driver: a kernel-level vector \
             (with `devices:`) needs them"
                .into(),
        ));
    }
    check(&raw).map_err(|(path, m)| at(&path, m))?;
    let mut memory = raw.memory.map(|m| m.0);
    if let Some(Checked(img)) = memory.as_mut().and_then(|m| m.image.as_mut()) {
        img.load(base)
            .map_err(|m| at(&[Seg::Key("memory"), Seg::Key("image")], m))?;
    }
    Ok(Vector {
        seed: raw.seed.map_or_else(|| name_seed(&raw.name), |s| s.0),
        name: raw.name,
        description: raw.description,
        devices: raw.devices,
        memory,
        registers: raw.registers.into_iter().map(|r| r.0).collect(),
        driver_bugs: raw.driver_bugs.into_iter().map(|b| b.0).collect(),
        timing: raw.timing.map(|t| t.0),
        expect_failure: raw.expect_failure,
        ats_device: raw.ats_device.map(|c| c.0),
        steps: raw.steps.into_iter().map(|s| s.0).collect(),
        file: file.to_owned(),
        source: text.to_owned(),
    })
}

/// The checks that need context, in document order: every name is bound before it is
/// used, with the right kind, and bound once; steps fit the vector's level. An error
/// carries the path of the offending node.
pub(super) fn check(raw: &RawVector) -> Result<(), (Vec<Seg>, String)> {
    let mut scope = Scope::default();
    scope.check(&[Seg::Key("devices")], &raw.devices)?;
    let kernel = !raw.devices.is_empty();
    for (i, StepIn(s)) in raw.steps.iter().enumerate() {
        let at = [Seg::Key("steps"), Seg::Index(i)];
        if !kernel && !s.hardware_level() {
            return Err((
                at.to_vec(),
                format!(
                    "`{}` needs the kernel: declare `devices:`; hardware-level vectors use \
                     `memory:`, `registers:`, `tlp`, `raw_tlp`, `write_memory`, `write_register`, \
                     `read_register`, `descriptor`, `ats_translate`, `ats_translated`, `ats_answers` \
                     and `device_cache`",
                    s.keyword()
                ),
            ));
        }
        scope.check(&at, s)?;
    }
    Ok(())
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
