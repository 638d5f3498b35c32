//! Checked random traffic through the untranslated path (GSTS.TES = 0).
//!
//! With translation disabled VT-d forwards requests unchanged; docs/contract.md section 3 still
//! rejects malformed memory requests (no forwarding, a UR completion for a non-posted one,
//! nothing for a posted one). Every expectation here comes from the TLP codec ([`crate::tlp`]):
//! the generator builds well-formed and malformed TLPs, the codec decides what each one is,
//! and the checker compares the DUT's egress and completion streams with that, in order,
//! under random idle gaps on ingress and random back-pressure on both egress ports.

use std::collections::VecDeque;
use std::fmt::Write as _;

use anyhow::{anyhow, bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::env::Env;
use crate::tlp::{
    self, At, Completion, CplStatus, DecodeError, MemRequest, PasidPrefix, Tlp, TlpWords,
};
use iommu_model::regs;

/// Completer ID of the DUT (the `CompleterId` parameter of `iommu_top`).
pub const COMPLETER_ID: u16 = 0x0000;

/// Shape of one run.
#[derive(Clone, Debug)]
pub struct Config {
    /// TLPs to send.
    pub tlps: usize,
    /// Percentage of memory requests that are made malformed.
    pub malformed_pct: u32,
    /// Percentage of cycles with no TLP offered while one is waiting.
    pub gap_pct: u32,
    /// Percentage of cycles with `tx_ready`/`cpl_ready` low.
    pub backpressure_pct: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tlps: 400,
            malformed_pct: 25,
            gap_pct: 30,
            backpressure_pct: 30,
        }
    }
}

/// What the DUT must do with one TLP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Forward the header unchanged on tx.
    Forward([u32; 4], usize),
    /// Answer with this UR completion on cpl.
    Complete(Completion),
    /// Drop it (a malformed posted request).
    Drop,
}

/// Outcome of a passing run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub sent: usize,
    pub forwarded: usize,
    pub completed: usize,
    pub dropped: usize,
    pub cycles: u64,
    /// Hash of every egress/completion transfer with its cycle: equal runs, equal hashes.
    pub transcript: u64,
}

fn fnv(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x100_0000_01b3)
}

/// A random well-formed memory request (3DW or 4DW by address, optional PASID prefix).
pub fn random_request(rng: &mut ChaCha8Rng) -> MemRequest {
    let is_write = rng.gen_bool(0.5);
    let addr = if rng.gen_bool(0.3) {
        rng.gen_range(1u64 << 32..1u64 << 48) & !3
    } else {
        u64::from(rng.gen::<u32>()) & !3
    };
    let room_dw = ((0x1000 - (addr & 0xfff)) / 4) as u16;
    let length_dw = rng.gen_range(1..=room_dw.min(32));
    let contiguous_first = [0b1111, 0b1110, 0b1100, 0b1000];
    let contiguous_last = [0b1111, 0b0111, 0b0011, 0b0001];
    let (first_be, last_be) = match length_dw {
        1 => (rng.gen_range(0..16u8), 0),
        2 if addr & 4 == 0 => (rng.gen_range(1..16u8), rng.gen_range(1..16u8)),
        _ => (
            contiguous_first[rng.gen_range(0..4)],
            contiguous_last[rng.gen_range(0..4)],
        ),
    };
    MemRequest {
        is_write,
        addr,
        length_dw,
        requester_id: rng.gen(),
        tag: rng.gen_range(0..=tlp::TAG_MAX),
        first_be,
        last_be,
        tc: rng.gen_range(0..8),
        attr: rng.gen_range(0..8),
        at: At::Untranslated,
        td: rng.gen_bool(0.1),
        ep: rng.gen_bool(0.05),
        ln: false,
        pasid: rng.gen_bool(0.5).then(|| PasidPrefix {
            pasid: rng.gen_range(0..=tlp::PASID_MAX),
            pmr: rng.gen_bool(0.2),
            er: rng.gen_bool(0.2),
        }),
    }
}

/// Breaks `req` in one of the ways docs/contract.md section 3 calls malformed and returns its wire form.
pub fn malformed_words(rng: &mut ChaCha8Rng, mut req: MemRequest) -> Result<TlpWords> {
    let words = match rng.gen_range(0..6) {
        0 => {
            // Cross a 4 KiB boundary.
            req.addr = (req.addr & !0xfff) | 0xff0;
            req.length_dw = rng.gen_range(5..=16);
            req.first_be = 0xf;
            req.last_be = 0xf;
            tlp::encode(&req)?
        }
        1 => {
            // An end-to-end prefix other than PASID, before or after any PASID prefix.
            let mut w = tlp::encode(&req)?;
            let byte0 = loop {
                let b = rng.gen_range(0x90..=0x9fu32);
                if b != 0x91 {
                    break b;
                }
            };
            w.push_prefix((byte0 << 24) | (rng.gen::<u32>() & 0x00ff_ffff))?;
            if w.prefix_count == 2 && rng.gen_bool(0.5) {
                w.prefix.swap(0, 1);
            }
            w
        }
        2 => {
            // Two PASID prefixes.
            let p = PasidPrefix {
                pasid: rng.gen_range(0..=tlp::PASID_MAX),
                pmr: false,
                er: false,
            };
            req.pasid = Some(p);
            let mut w = tlp::encode(&req)?;
            w.push_prefix(p.to_dw()?)?;
            w
        }
        3 => {
            let mut w = tlp::encode(&req)?;
            w.header[0] |= 0b11 << 10; // AT = 11b
            w
        }
        4 => {
            // Byte enables inconsistent with Length.
            if rng.gen_bool(0.5) {
                req.length_dw = 1;
                req.last_be = rng.gen_range(1..16);
            } else {
                req.addr = (req.addr & !0xfff) | 0x104;
                req.length_dw = 3;
                req.first_be = 0b0101;
                req.last_be = 0b0011;
            }
            tlp::encode(&req)?
        }
        _ => {
            req.addr &= 0xffff_fffc;
            tlp::encode_4dw(&req)?
        }
    };
    Ok(words)
}

/// What the codec says the DUT must do with `w` (with translation disabled).
pub fn expect(w: &TlpWords) -> Result<Expect> {
    match tlp::decode(w) {
        Ok(_) => Ok(Expect::Forward(w.header, w.header_dws)),
        Err(DecodeError::Malformed(_)) => {
            let (t, _) =
                tlp::decode_lenient(w).map_err(|e| anyhow!("stimulus cannot be decoded: {e}"))?;
            match t {
                Tlp::Mem(req) => Ok(match tlp::ur_completion(&req, COMPLETER_ID) {
                    Some(c) => Expect::Complete(c),
                    None => Expect::Drop,
                }),
                Tlp::Cpl(_) => bail!("generator produced a malformed completion"),
            }
        }
        Err(e) => bail!("generator produced a TLP the codec rejects outright: {e}"),
    }
}

/// A random TLP: mostly memory requests (some malformed), some completions passing through.
pub fn random_tlp(rng: &mut ChaCha8Rng, cfg: &Config) -> Result<TlpWords> {
    if rng.gen_range(0..100) < 5 {
        let c = Completion {
            completer_id: rng.gen(),
            status: CplStatus::Sc,
            bcm: false,
            byte_count: 4,
            requester_id: rng.gen(),
            tag: rng.gen_range(0..=0xff),
            lower_addr: 0,
            with_data: true,
            length_dw: 1,
            tc: 0,
            attr: 0,
            td: false,
            ep: false,
        };
        return Ok(tlp::encode_completion(&c)?);
    }
    let req = random_request(rng);
    if rng.gen_range(0..100) < cfg.malformed_pct {
        malformed_words(rng, req)
    } else {
        Ok(tlp::encode(&req)?)
    }
}

fn describe(w: &TlpWords) -> String {
    match tlp::decode_lenient(w) {
        Ok((t, m)) => {
            let mut s = format!("{t}");
            if let Some(m) = m {
                let _ = write!(s, " [malformed: {m}]");
            }
            s
        }
        Err(e) => format!("{w} [{e}]"),
    }
}

/// Sends `cfg.tlps` random TLPs through a DUT with translation disabled and checks every
/// forwarded header and completion. The TLP stream depends on `seed` only.
pub fn run(env: &mut Env, seed: u64, cfg: &Config) -> Result<Report> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stim = Vec::with_capacity(cfg.tlps);
    for _ in 0..cfg.tlps {
        let w = random_tlp(&mut rng, cfg)?;
        let e = expect(&w)?;
        stim.push((w, e));
    }
    let malformed = stim
        .iter()
        .filter(|(_, e)| !matches!(e, Expect::Forward(..)))
        .count();
    // Separate streams for back-pressure so the DUT's own timing does not depend on the
    // stimulus content.
    let mut bp = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_bac4_f00d);

    let start = env.dut.cycle();
    let watchdog =
        64 + 8 * cfg.tlps as u64 * (1 + u64::from(cfg.gap_pct.max(cfg.backpressure_pct)) / 10);
    let mut next = 0usize;
    let mut want_tx: VecDeque<usize> = VecDeque::new();
    let mut want_cpl: VecDeque<usize> = VecDeque::new();
    let mut report = Report {
        sent: cfg.tlps,
        transcript: 0xcbf2_9ce4_8422_2325,
        ..Report::default()
    };

    while next < stim.len() || !want_tx.is_empty() || !want_cpl.is_empty() {
        let cyc = env.dut.cycle() - start;
        if cyc > watchdog {
            bail!(
                "watchdog: {cyc} cycles, {} of {} TLPs accepted, {} forwards and {} completions \
                 still owed (next owed: {})",
                next,
                stim.len(),
                want_tx.len(),
                want_cpl.len(),
                want_tx
                    .front()
                    .or(want_cpl.front())
                    .map(|&i| describe(&stim[i].0))
                    .unwrap_or_default()
            );
        }
        let offer = next < stim.len() && bp.gen_range(0..100) >= cfg.gap_pct;
        env.inp.rx_valid = offer;
        if offer {
            let w = &stim[next].0;
            env.inp.rx_nprefix = w.prefix_count as u8;
            env.inp.rx_prefix = w.prefix;
            env.inp.rx_hdr = w.header;
        }
        env.inp.tx_ready = bp.gen_range(0..100) >= cfg.backpressure_pct;
        env.inp.cpl_ready = bp.gen_range(0..100) >= cfg.backpressure_pct;
        let out = env.tick();

        if out.tx_valid && env.inp.tx_ready {
            let Some(i) = want_tx.pop_front() else {
                bail!(
                    "cycle {cyc}: unexpected TLP on tx: {}",
                    describe(&TlpWords::from_port([0; 4], 0, out.tx_hdr))
                );
            };
            let Expect::Forward(hdr, n) = stim[i].1 else {
                unreachable!("only forwards are queued on tx")
            };
            if out.tx_hdr[..n] != hdr[..n] {
                bail!(
                    "cycle {cyc}: TLP #{i} forwarded wrongly\n  sent:     {}\n  expected: {:08x?}\n  DUT sent: {:08x?} = {}",
                    describe(&stim[i].0),
                    &hdr[..n],
                    &out.tx_hdr[..n],
                    describe(&TlpWords::from_port([0; 4], 0, out.tx_hdr))
                );
            }
            report.forwarded += 1;
            report.transcript = fnv(
                fnv(report.transcript, cyc),
                u64::from(out.tx_hdr[0]) ^ (u64::from(out.tx_hdr[2]) << 32),
            );
        }
        if out.cpl_valid && env.inp.cpl_ready {
            let got = TlpWords::from_port(
                [0; 4],
                0,
                [out.cpl_hdr[0], out.cpl_hdr[1], out.cpl_hdr[2], 0],
            );
            let Some(i) = want_cpl.pop_front() else {
                bail!("cycle {cyc}: unexpected completion: {}", describe(&got));
            };
            let Expect::Complete(c) = &stim[i].1 else {
                unreachable!("only completions are queued on cpl")
            };
            let want = tlp::encode_completion(c)?;
            if got.header[..3] != want.header[..3] {
                bail!(
                    "cycle {cyc}: wrong completion for TLP #{i}\n  sent:     {}\n  expected: {}\n  DUT sent: {}",
                    describe(&stim[i].0),
                    Tlp::Cpl(*c),
                    describe(&got)
                );
            }
            report.completed += 1;
            report.transcript = fnv(
                fnv(report.transcript, cyc),
                u64::from(out.cpl_hdr[1]) ^ (u64::from(out.cpl_hdr[2]) << 32),
            );
        }
        if offer && out.rx_ready {
            match &stim[next].1 {
                Expect::Forward(..) => want_tx.push_back(next),
                Expect::Complete(_) => want_cpl.push_back(next),
                Expect::Drop => report.dropped += 1,
            }
            next += 1;
        }
    }
    env.inp.rx_valid = false;
    env.inp.tx_ready = true;
    env.inp.cpl_ready = true;
    env.idle(4);
    if env.out.tx_valid || env.out.cpl_valid {
        bail!("the DUT still offers a TLP after every expected one was seen");
    }
    let counted = env.read32(regs::MALFORMED)?;
    if counted as usize != malformed {
        bail!("MALFORMED counter reads {counted}, but {malformed} malformed requests were sent");
    }
    env.check_assertions()?;
    report.cycles = env.dut.cycle() - start;
    Ok(report)
}
