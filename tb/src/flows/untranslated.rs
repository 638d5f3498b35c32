//! Checked random traffic through the untranslated path (GSTS.TES = 0).
//!
//! With translation disabled VT-d forwards requests unchanged; docs/contract.md section 3 still
//! rejects malformed memory requests (no forwarding, a UR completion for a non-posted one,
//! nothing for a posted one). Every expectation here comes from the TLP codec ([`crate::tlp`],
//! [`check::expect::Expect::codec`]): the generator builds well-formed and malformed TLPs,
//! the codec decides what each one is, and the streaming judge ([`crate::check::stream`])
//! pairs the DUT's egress and completions with them under random idle gaps on ingress and
//! random back-pressure on both egress ports.

use anyhow::{anyhow, bail, Result};
use iommu_model::golden::Outcome;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::check::{self, records::RecordReader, stream, stream::Traffic};
use crate::env::Env;
use crate::tlp::{self, At, Completion, CplStatus, MemRequest, PasidPrefix, TlpWords};
use iommu_model::regs;

pub use crate::dut::COMPLETER_ID;

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
            // Byte enables inconsistent with Length: any pair PCIe forbids (Last BE set at
            // Length 1; an all-zero First or Last BE, or a hole, at Length >= 2), at a DW
            // offset that keeps the request inside its page.
            req.addr = (req.addr & !0xfff) | (u64::from(rng.gen_range(0u8..8)) << 2);
            req.length_dw = rng.gen_range(1..=4);
            loop {
                req.first_be = rng.gen_range(0..16);
                req.last_be = rng.gen_range(0..16);
                if matches!(
                    req.malformation(),
                    Some(tlp::Malformed::BadByteEnables { .. })
                ) {
                    break;
                }
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

/// Sends `cfg.tlps` random TLPs through a DUT with translation disabled and checks every
/// forwarded header and completion with the streaming judge ([`crate::check::stream`]),
/// expectations from the codec. The TLP stream depends on `seed` only.
pub fn run(env: &mut Env, seed: u64, cfg: &Config) -> Result<Report> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stim = Vec::with_capacity(cfg.tlps);
    for _ in 0..cfg.tlps {
        let w = random_tlp(&mut rng, cfg)?;
        stim.push(check::expect::Expect::codec(&w)?);
    }
    let malformed = stim
        .iter()
        .filter(|x| x.answers[0].outcome == Outcome::Malformed)
        .count();
    // Separate streams for back-pressure so the DUT's own timing does not depend on the
    // stimulus content.
    let ready = 100 - cfg.backpressure_pct.min(100);
    let mut traffic = Traffic::new(seed ^ 0x5eed_bac4_f00d, cfg.gap_pct, ready, ready);
    let r = stream::run(env, stim, &mut traffic, &mut RecordReader::new())
        .map_err(|e| anyhow!("{e}"))?;
    let mut report = Report {
        sent: cfg.tlps,
        cycles: r.cycles,
        transcript: r.transcript,
        ..Report::default()
    };
    for (o, e) in r.outcomes.iter().zip(&r.egress) {
        match (o, e) {
            (_, Some(crate::env::tlp_agent::Egress::Tx(_))) => report.forwarded += 1,
            (
                _,
                Some(
                    crate::env::tlp_agent::Egress::Cpl(_) | crate::env::tlp_agent::Egress::CplD(..),
                ),
            ) => report.completed += 1,
            (_, None) => report.dropped += 1,
        }
    }
    let counted = env.read32(regs::MALFORMED)?;
    if counted as usize != malformed {
        bail!("MALFORMED counter reads {counted}, but {malformed} malformed requests were sent");
    }
    env.check_assertions()?;
    Ok(report)
}
