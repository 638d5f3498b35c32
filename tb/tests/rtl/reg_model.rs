//! Every register field of the DUT against the register model (`iommu_model::regs`: each
//! field's access type and reset value), the way a UVM register-model sequence checks a
//! block: reset values, random write/read-back of the RW fields, read-only fields unaffected
//! by writes, reserved bits reading 0, 32-bit halves of the 64-bit registers, write-1-to-
//! clear semantics of the status bits once hardware has set them, and side effects only when
//! their command bit is written. Every expectation is derived from the table
//! ([`RegDef::after_write`], [`RegDef::reset_value`]); the test types no register values.
//!
//! Also: the RTL's own copy of the register map (`Reg*` offsets, bit positions, CAP/ECAP,
//! `rtl/iommu_pkg.sv`) against the table.

use anyhow::{ensure, Context, Result};
use iommu_model::driver::DriverQuirks;
use iommu_model::golden::Outcome;
use iommu_model::kernel::Stage;
use iommu_model::mem::PhysMem;
use iommu_model::qi::Descriptor;
use iommu_model::regs::{self, instances, Access, RegDef, RegInstance, Width};
use iommu_tb::env::exchange;
use iommu_tb::env::Env;
use iommu_tb::env::MemTiming;
use iommu_tb::hw::system::*;
use iommu_tb::tlp::{self, MemRequest};
use iommu_tb::{run_test, TestFailure};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SEED: u64 = 0x7e9_5eed;
const LO: u64 = 0xFFFF_FFFF;
const HI: u64 = !LO;

fn reg(name: &str) -> Result<&'static RegDef> {
    regs::by_name(name).with_context(|| format!("{name} is not in the register table"))
}

fn read(env: &mut Env, r: &RegInstance) -> Result<u64> {
    Ok(match r.def.width {
        Width::W32 => u64::from(env.read32(r.offset)?),
        Width::W64 => env.read64(r.offset)?,
    })
}

fn write(env: &mut Env, r: &RegInstance, v: u64) -> Result<()> {
    match r.def.width {
        Width::W32 => env.write32(r.offset, v as u32)?,
        Width::W64 => env.write64(r.offset, v)?,
    }
    Ok(())
}

/// Reads `r` and checks it against `want` on the bits of `mask`, naming the fields that differ.
fn expect(env: &mut Env, r: &RegInstance, want: u64, mask: u64, what: &str) -> Result<u64> {
    let got = read(env, r)?;
    let diff = (got ^ want) & mask;
    if diff != 0 {
        let fields: Vec<String> = r
            .def
            .fields
            .iter()
            .filter(|f| f.mask() & diff != 0)
            .map(|f| {
                format!(
                    "{} ({:?}) = {:#x}, want {:#x}",
                    f.name,
                    f.access,
                    f.get(got),
                    f.get(want)
                )
            })
            .collect();
        let rsvd = diff & r.def.reserved_mask();
        anyhow::bail!(
            "{} at {:#05x} {what}: read {got:#x}, want {want:#x} (mask {mask:#x}): {}{}",
            r.name,
            r.offset,
            fields.join(", "),
            if rsvd != 0 {
                format!(" reserved bits {rsvd:#x} set")
            } else {
                String::new()
            }
        );
    }
    Ok(got)
}

#[test]
fn reset_values_and_halves_match_the_table() -> Result<(), TestFailure> {
    run_test("regmodel_reset", SEED, |env| {
        for r in instances() {
            let d = r.def;
            let full = expect(env, &r, d.reset_value(), d.reset_mask(), "after reset")?;
            if d.width == Width::W64 {
                let lo = u64::from(env.read32(r.offset)?);
                let hi = u64::from(env.read32(r.offset + 4)?);
                ensure!(
                    hi << 32 | lo == full,
                    "{}: 32-bit halves read {hi:#010x}_{lo:08x}, the 64-bit read {full:#x}",
                    r.name
                );
            }
        }
        Ok(())
    })
}

/// Writes `v` as a whole and as 32-bit halves and checks each read-back with
/// [`RegDef::after_write`]. Write-only command bits are never set (see the GCMD tests).
fn write_and_check(env: &mut Env, r: &RegInstance, v: u64) -> Result<()> {
    let d = r.def;
    let v = v & d.width.mask() & !d.wo_mask();
    let before = read(env, r)?;
    write(env, r, v)?;
    expect(
        env,
        r,
        d.after_write(before, v),
        d.width.mask(),
        &format!("after writing {v:#x}"),
    )?;
    if d.width == Width::W64 {
        // Lower DW alone: the upper half keeps its value.
        let before = read(env, r)?;
        env.write32(r.offset, !v as u32)?;
        let want = d.after_write(before, !v & LO) & LO | before & HI;
        expect(
            env,
            r,
            want,
            d.width.mask(),
            &format!("after writing {:#x} to the lower DW", !v as u32),
        )?;
        // Upper DW alone: the lower half keeps its value.
        let before = read(env, r)?;
        env.write32(r.offset + 4, (v >> 32) as u32)?;
        let want = d.after_write(before, v & HI) & HI | before & LO;
        expect(
            env,
            r,
            want,
            d.width.mask(),
            &format!("after writing {:#x} to the upper DW", v >> 32),
        )?;
    }
    Ok(())
}

#[test]
fn every_field_behaves_as_its_access_type() -> Result<(), TestFailure> {
    run_test("regmodel_fields", SEED, |env| {
        let mut rng = ChaCha8Rng::seed_from_u64(SEED);
        for r in instances() {
            for v in [u64::MAX, 0, rng.gen(), rng.gen(), rng.gen(), rng.gen()] {
                write_and_check(env, &r, v)?;
            }
        }
        // After all that, nothing hardware-owned moved and the unit is still off.
        for name in ["GSTS", "FSTS", "IQH", "IQER", "MALFORMED"] {
            let d = reg(name)?;
            let r = RegInstance {
                name: name.into(),
                offset: d.offset,
                def: d,
            };
            expect(
                env,
                &r,
                d.reset_value(),
                d.reset_mask(),
                "after writing every register",
            )?;
        }
        ensure!(
            !env.out.fault_irq && !env.out.inv_irq,
            "an interrupt with nothing pending"
        );
        Ok(())
    })
}

fn inst(name: &str) -> Result<RegInstance> {
    instances()
        .into_iter()
        .find(|r| r.name.eq_ignore_ascii_case(name))
        .with_context(|| format!("no register instance {name}"))
}

fn field_mask(reg_name: &str, field: &str) -> Result<u64> {
    reg(reg_name)?
        .field(field)
        .map(|f| f.mask())
        .with_context(|| format!("{reg_name}.{field} is not in the table"))
}

/// Checks an RW1C bit hardware has set: writing 0 there (with every other bit random) keeps
/// it, writing 1 clears it; every other field behaves as its type says.
fn rw1c(env: &mut Env, r: &RegInstance, bit: u64, rng: &mut ChaCha8Rng) -> Result<()> {
    let d = r.def;
    let before = read(env, r)?;
    ensure!(
        before & bit != 0,
        "{}: bit {bit:#x} is not set to begin with",
        r.name
    );
    // Other RW1C bits of the register are written 0 too, so only RW fields move.
    let keep = rng.gen::<u64>() & !d.rw1c_mask() & !d.wo_mask() & d.width.mask();
    write(env, r, keep)?;
    let after = expect(
        env,
        r,
        d.after_write(before, keep),
        d.width.mask(),
        "after writing 0 to a set RW1C bit",
    )?;
    ensure!(after & bit != 0, "{}: writing 0 cleared {bit:#x}", r.name);
    write(env, r, keep | bit)?;
    let cleared = read(env, r)?;
    let want = d.after_write(after, keep | bit);
    // Clearing may end a condition other read-only status bits reflect: compare the rest.
    let volatile = d
        .fields
        .iter()
        .filter(|f| f.volatile && f.access == Access::Ro)
        .fold(0, |m, f| m | f.mask());
    ensure!(
        (cleared ^ want) & !volatile & d.width.mask() == 0,
        "{}: writing 1 to {bit:#x} read back {cleared:#x}, want {want:#x}",
        r.name
    );
    ensure!(
        cleared & bit == 0,
        "{}: writing 1 did not clear {bit:#x}",
        r.name
    );
    Ok(())
}

fn unmapped_read(i: u64) -> MemRequest {
    MemRequest::read(DEV, 0x21, 0x7700_0000 + i * 0x1000, 1)
}

#[test]
fn status_bits_are_write_1_to_clear() -> Result<(), TestFailure> {
    run_test("regmodel_rw1c", SEED, |tb| {
        let mut rng = ChaCha8Rng::seed_from_u64(SEED ^ 1);
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        let (d, _) = dma_domain_with_pasid(&mut k, Stage::Second)?;
        map(&mut k, d, 0x10_0000, 0x9_0000_0000, 0x1000, true, true)?;
        // Event registers hold what software wrote through all of the activity below.
        let event: Vec<(RegInstance, u64)> =
            ["FEDATA", "FEADDR", "FEUADDR", "IEDATA", "IEADDR", "IEUADDR"]
                .into_iter()
                .map(|n| Ok((inst(n)?, rng.gen::<u32>().into())))
                .collect::<Result<_>>()?;
        for (r, v) in &event {
            write(env(&mut k), r, *v)?;
        }
        // Fill every fault record and overflow once: FRCDn.F, FSTS.PPF and FSTS.PFO set.
        let nfr = regs::Caps::new(env(&mut k).read64(regs::CAP)?, 0).num_fault_records();
        // (Sent without the judge, which collects and clears each record.)
        for i in 0..=u64::from(nfr) {
            let got = exchange(env(&mut k), &tlp::encode(&unmapped_read(i))?, 4000)?;
            ensure!(
                got.len() == 1,
                "a faulting read gets one UR completion: {got:?}"
            );
        }
        let pfo = field_mask("FSTS", "PFO")?;
        let ppf = field_mask("FSTS", "PPF")?;
        let fsts = inst("FSTS")?;
        rw1c(env(&mut k), &fsts, pfo, &mut rng)?;
        for i in 0..nfr {
            let qw1 = inst(&format!("FRCD{i}.QW1"))?;
            rw1c(env(&mut k), &qw1, regs::frcd::QW1_F, &mut rng)?;
            let pending = env(&mut k).read32(regs::FSTS)?;
            ensure!(
                (u64::from(pending) & ppf != 0) == (i + 1 < nfr),
                "FSTS.PPF = {pending:#x} after clearing {} of {nfr} records",
                i + 1
            );
        }
        // FSTS.IQE: a tail with bit 4 set stops the queue (IQEI 1), even with the index at
        // the head (VT-d: IQT[4] is reserved with 256-bit descriptors).
        let e = env(&mut k);
        let tail = e.read64(regs::IQT)?;
        e.write64(regs::IQT, tail | 0x10)?;
        e.poll32(regs::FSTS, regs::FSTS_IQE, regs::FSTS_IQE, 1000)?;
        let iqer = e.read64(regs::IQER)?;
        ensure!(iqer == 1, "IQER {iqer:#x}: an invalid tail is IQEI 1");
        let iqe = field_mask("FSTS", "IQE")?;
        // Write 0 first (the queue stays stopped), then repair the tail and clear.
        let before = e.read32(regs::FSTS)?;
        e.write32(regs::FSTS, 0)?;
        ensure!(
            e.read32(regs::FSTS)? == before,
            "writing 0 to FSTS changed it"
        );
        e.write64(regs::IQT, tail)?;
        rw1c(e, &fsts, iqe, &mut rng)?;
        e.idle(50);
        ensure!(
            e.read32(regs::FSTS)? & regs::FSTS_IQE == 0,
            "IQE came back with a valid tail"
        );
        k.ops_mut().hw_mut().resync_tail()?;
        // ICS.IWC: a wait with IF set.
        let wait = Descriptor::Wait {
            intr: true,
            sw: false,
            fence: false,
            status_data: 0,
            status_addr: 0,
        };
        k.ops_mut().hw_mut().queue(&[wait.encode()])?;
        let e = env(&mut k);
        e.poll32(regs::ICS, regs::ICS_IWC, regs::ICS_IWC, 1000)?;
        let iectl = e.read32(regs::IECTL)?;
        ensure!(
            iectl == regs::FECTL_IM | regs::FECTL_IP,
            "IECTL = {iectl:#x} with IWC set and IM set: IP must be pending"
        );
        rw1c(e, &inst("ICS")?, u64::from(regs::ICS_IWC), &mut rng)?;
        for (r, v) in &event {
            expect(
                e,
                r,
                r.def.after_write(0, *v),
                r.def.width.mask(),
                "after faults and queue activity",
            )?;
        }
        // The translation still works.
        let j = check(&mut k, &MemRequest::read(DEV, 1, 0x10_0000, 1))?;
        ensure!(
            matches!(j.walk.outcome, Outcome::Translated(_)),
            "{}",
            j.walk.outcome
        );
        Ok(())
    })
}

#[test]
fn gcmd_side_effects_only_when_their_bit_is_written() -> Result<(), TestFailure> {
    run_test("regmodel_gcmd", SEED, |tb| {
        let mut k = system_on(tb, MemTiming::default(), DriverQuirks::default())?;
        let (d, _) = dma_domain_with_pasid(&mut k, Stage::Second)?;
        map(&mut k, d, 0x10_0000, 0x9_0000_0000, 0x1000, true, true)?;
        let root = k.ops().rtaddr();
        let levels = field_mask("GCMD", "TE")? | field_mask("GCMD", "QIE")?;
        let gsts = env(&mut k).read32(regs::GSTS)?;
        ensure!(
            gsts == (regs::GSTS_TES | regs::GSTS_RTPS | regs::GSTS_QIES),
            "GSTS {gsts:#x}"
        );
        // A copy of the root table elsewhere: latching it would translate the same.
        let copy = {
            let mem = &mut k.ops_mut().hw_mut().mem_agent().mem;
            let copy = mem.alloc_page()?;
            let base = root & regs::RTADDR_PTR_MASK;
            for i in 0..512 {
                let v = mem.read64(base + 8 * i)?;
                mem.write64(copy + 8 * i, v)?;
            }
            copy
        };
        let req = MemRequest::read(DEV, 2, 0x10_0000, 1);
        let first_read = |k: &mut RtlKernel| -> Result<u64> {
            flush_all(k)?;
            take_reads(k);
            let j = check(k, &req)?;
            ensure!(
                matches!(j.walk.outcome, Outcome::Translated(_)),
                "{}",
                j.walk.outcome
            );
            let log = &k.ops_mut().hw_mut().mem_agent().log;
            log.iter()
                .find(|a| !a.write)
                .map(|a| a.addr & regs::RTADDR_PTR_MASK)
                .context("no walk")
        };
        ensure!(first_read(&mut k)? == root & regs::RTADDR_PTR_MASK);
        // New RTADDR, GCMD rewritten with TE and QIE as they are and no SRTP: nothing moves.
        let e = env(&mut k);
        e.write64(regs::RTADDR, copy | regs::RTADDR_TTM_SCALABLE)?;
        e.write32(regs::GCMD, gsts & levels as u32)?;
        // Nothing changed, so nothing is due: the unit must not touch memory.
        e.expect_idle();
        e.idle(20);
        e.check_assertions()?;
        ensure!(
            e.read32(regs::GSTS)? == gsts,
            "GCMD with TE/QIE unchanged changed GSTS"
        );
        ensure!(
            first_read(&mut k)? == root & regs::RTADDR_PTR_MASK,
            "a GCMD write without SRTP latched the new RTADDR"
        );
        // SRTP latches it.
        let e = env(&mut k);
        e.write32(regs::GCMD, gsts & levels as u32 | regs::GCMD_SRTP)?;
        e.poll32(regs::GSTS, regs::GSTS_RTPS, regs::GSTS_RTPS, 200)?;
        ensure!(e.read32(regs::GSTS)? == gsts);
        ensure!(first_read(&mut k)? == copy, "SRTP did not latch RTADDR");
        // QIE rewritten as 1 while already enabled: the queue is not restarted (no fetch).
        let e = env(&mut k);
        let (iqh, iqt) = (e.read64(regs::IQH)?, e.read64(regs::IQT)?);
        e.write32(regs::GCMD, gsts & levels as u32)?;
        e.expect_idle();
        e.idle(20);
        e.check_assertions()?;
        ensure!(
            (e.read64(regs::IQH)?, e.read64(regs::IQT)?) == (iqh, iqt),
            "IQH/IQT moved"
        );
        flush_all(&mut k)?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// The RTL's copy of the register map
// ---------------------------------------------------------------------------------------------

fn rtl_source(file: &str) -> Result<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../rtl")
        .join(file);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// A SystemVerilog sized or plain number: `12'h01C`, `6'd47`, `3'b011`, `19`.
fn sv_number(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    let Some((_, rest)) = s.split_once('\'') else {
        return s.parse().ok();
    };
    let (radix, digits) = rest.split_at(1);
    let radix = match radix {
        "h" | "H" => 16,
        "d" | "D" => 10,
        "b" | "B" => 2,
        _ => return None,
    };
    u64::from_str_radix(digits, radix).ok()
}

/// `localparam <type> Name = value;` of the package, by name.
fn localparams(src: &str) -> Vec<(String, String)> {
    src.lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("localparam ")?;
            let (lhs, rhs) = l.split_once('=')?;
            let name = lhs.split_whitespace().last()?.to_owned();
            let value = rhs.split(';').next()?.trim().to_owned();
            Some((name, value))
        })
        .collect()
}

#[test]
fn rtl_package_matches_the_register_table() -> Result<()> {
    let pkg = rtl_source("iommu_pkg.sv")?;
    let params = localparams(&pkg);
    let param = |name: &str| -> Result<u64> {
        let v = params
            .iter()
            .find(|(n, _)| n == name)
            .with_context(|| format!("no localparam {name} in rtl/iommu_pkg.sv"))?;
        sv_number(&v.1).with_context(|| format!("{name} = {} is not a number", v.1))
    };
    // Every Reg* offset names a register of the table at the same offset, and every
    // register of the table has one.
    let mut seen = 0;
    for (name, value) in &params {
        let Some(reg_name) = name.strip_prefix("Reg") else {
            continue;
        };
        let off = sv_number(value).with_context(|| format!("{name} = {value}"))?;
        seen += 1;
        if reg_name == "Frcd" {
            assert_eq!(off, regs::FRCD_OFFSET, "RegFrcd");
            continue;
        }
        let r = regs::by_name(reg_name)
            .with_context(|| format!("{name}: no {reg_name} in the table"))?;
        assert_eq!(
            off, r.offset,
            "{name} is {off:#x}, the table says {} is at {:#x}",
            r.name, r.offset
        );
    }
    assert_eq!(
        seen,
        regs::REGISTERS.len() + 1,
        "Reg* localparams vs table registers (+ RegFrcd)"
    );
    assert_eq!(param("VerValue")?, u64::from(regs::VER_VALUE));
    for (p, reg_name, field) in [
        ("GcmdTe", "GCMD", "TE"),
        ("GcmdSrtp", "GCMD", "SRTP"),
        ("GcmdQie", "GCMD", "QIE"),
        ("FstsPfo", "FSTS", "PFO"),
        ("FstsPpf", "FSTS", "PPF"),
        ("FstsIqe", "FSTS", "IQE"),
        ("FstsIte", "FSTS", "ITE"),
    ] {
        let lsb = reg(reg_name)?.field(field).map(|f| u64::from(f.lsb));
        assert_eq!(Some(param(p)?), lsb, "{p} vs {reg_name}.{field}");
    }
    // ECAP: `(64'd<value> << <bit>)` terms.
    let ecap_src = pkg
        .split("localparam logic [63:0] EcapValue")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .context("no EcapValue")?;
    let mut ecap = 0u64;
    for term in ecap_src.split('(').skip(1) {
        let term = term.split(')').next().unwrap_or_default();
        let (v, sh) = term
            .split_once("<<")
            .with_context(|| format!("ECAP term {term}"))?;
        let (v, sh) = (
            sv_number(v).context("ECAP value")?,
            sv_number(sh).context("ECAP shift")?,
        );
        ecap |= v << sh;
    }
    assert_eq!(
        ecap,
        regs::ECAP_VALUE,
        "EcapValue {ecap:#x} vs ECAP_VALUE {:#x}",
        regs::ECAP_VALUE
    );
    // CAP: `cap[hi:lo] = value;` assignments in cap_value(); FRO and NFR are symbolic.
    let top = rtl_source("iommu_top.sv")?;
    let top_param = |name: &str| -> Result<u64> {
        let at = top
            .find(&format!(" {name} "))
            .with_context(|| format!("no parameter {name}"))?;
        let rest = &top[at..];
        let v = rest
            .split('=')
            .nth(1)
            .and_then(|s| s.split([',', '\n']).next())
            .context(name.to_owned())?;
        sv_number(v).with_context(|| format!("{name} = {v}"))
    };
    let num_frcd = top_param("NumFrcd")?;
    let mut cap = 0u64;
    for line in pkg.lines().map(str::trim).filter(|l| l.starts_with("cap[")) {
        let (lhs, rhs) = line.split_once('=').context("cap assignment")?;
        let range = lhs.trim().trim_start_matches("cap[").trim_end_matches(']');
        let (hi, lo) = match range.split_once(':') {
            Some((h, l)) => (h.parse::<u32>()?, l.parse::<u32>()?),
            None => (range.parse()?, range.parse()?),
        };
        let rhs = rhs.split(';').next().unwrap_or_default().trim();
        let v = match rhs {
            "CapFro" => param("RegFrcd")? >> 4,
            r if r.contains("num_frcd - 1") => num_frcd - 1,
            r => sv_number(r).with_context(|| format!("cap[{range}] = {r}"))?,
        };
        let width = hi - lo + 1;
        assert!(v < 1 << width, "cap[{range}] = {v:#x} does not fit");
        cap |= v << lo;
    }
    assert_eq!(
        cap,
        regs::CAP_VALUE,
        "cap_value() {cap:#x} vs CAP_VALUE {:#x}",
        regs::CAP_VALUE
    );
    assert_eq!(
        num_frcd,
        u64::from(regs::FRCD_COUNT),
        "iommu_top NumFrcd vs FRCD_COUNT"
    );
    // The cache sizes the reference cache model assumes by default.
    let sizes = iommu_tb::check::CacheConfig::default();
    assert_eq!(top_param("IotlbEntries")?, sizes.iotlb_entries as u64);
    assert_eq!(top_param("PcacheEntries")?, sizes.pcache_entries as u64);
    // The paging-structure caches: iommu_psc's defaults are the model's, and the top's
    // sizes too once it has them (iotlb_model::RTL_HAS_PSC).
    let psc = rtl_source("iommu_psc.sv")?;
    let psc_param = |name: &str| -> Result<u64> {
        let at = psc
            .find(&format!("unsigned {name} "))
            .with_context(|| format!("no parameter {name}"))?;
        let v = psc[at..]
            .split('=')
            .nth(1)
            .and_then(|s| s.split([',', '\n']).next())
            .context(name.to_owned())?;
        sv_number(v).with_context(|| format!("{name} = {v}"))
    };
    let want = iommu_tb::check::PscConfig::default();
    assert_eq!(psc_param("L4Entries")?, want.l4_entries as u64);
    assert_eq!(psc_param("L3Entries")?, want.l3_entries as u64);
    assert_eq!(psc_param("L2Entries")?, want.l2_entries as u64);
    if let Some(p) = sizes.psc {
        assert_eq!(top_param("PscL4Entries")?, p.l4_entries as u64);
        assert_eq!(top_param("PscL3Entries")?, p.l3_entries as u64);
        assert_eq!(top_param("PscL2Entries")?, p.l2_entries as u64);
    }
    Ok(())
}
