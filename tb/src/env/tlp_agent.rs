//! TLP agent for directed tests: sends one TLP followed by a marker (a completion, which
//! the unit forwards unchanged) and collects everything that leaves on tx and cpl until the
//! marker arrives. The unit keeps PCIe order, so what came out before the marker is the
//! unit's whole answer to the TLP, including "nothing" for a dropped write.

use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::env::Env;
use crate::tlp::{self, Completion, CplStatus, TlpWords};

/// What left the unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Egress {
    /// A request (forwarded or translated) on tx.
    Tx([u32; 4]),
    /// A completion on cpl.
    Cpl([u32; 3]),
}

impl std::fmt::Display for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (port, w) = match *self {
            Egress::Tx(h) => ("tx", TlpWords::from_port([0; 4], 0, h)),
            Egress::Cpl(h) => ("cpl", TlpWords::from_port([0; 4], 0, [h[0], h[1], h[2], 0])),
        };
        match tlp::decode_lenient(&w) {
            Ok((t, _)) => write!(f, "{port}: {t}"),
            Err(_) => write!(f, "{port}: {w}"),
        }
    }
}

/// Random idle gaps and back-pressure of the TLP ports.
#[derive(Debug)]
pub struct TlpAgent {
    pub gap_pct: u32,
    pub tx_ready_pct: u32,
    pub cpl_ready_pct: u32,
    rng: ChaCha8Rng,
    marker_seq: u16,
}

impl TlpAgent {
    pub fn new(seed: u64) -> Self {
        Self {
            gap_pct: 0,
            tx_ready_pct: 100,
            cpl_ready_pct: 100,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x7e1e),
            marker_seq: 0,
        }
    }

    fn pct(&mut self, p: u32) -> bool {
        p >= 100 || self.rng.gen_range(0..100) < p
    }

    fn marker(&mut self) -> TlpWords {
        self.marker_seq = self.marker_seq.wrapping_add(1);
        let c = Completion {
            completer_id: 0xfeed,
            status: CplStatus::Sc,
            bcm: false,
            byte_count: 4,
            requester_id: 0xffff,
            tag: self.marker_seq & 0x3ff,
            lower_addr: 0,
            with_data: true,
            length_dw: 1,
            tc: 0,
            attr: 0,
            td: false,
            ep: false,
        };
        match tlp::encode_completion(&c) {
            Ok(w) => w,
            Err(e) => unreachable!("the marker completion is always encodable: {e}"),
        }
    }
}

/// Sends only a marker and waits for it: everything sent before has been answered (and a
/// dropped request's fault recorded) once it comes out.
pub fn drain(env: &mut Env, max_cycles: u64) -> Result<Vec<Egress>> {
    let marker = env.tlp.marker();
    let mut got = Vec::new();
    let start = env.dut.cycle();
    let mut sent = false;
    loop {
        if env.dut.cycle() - start > max_cycles {
            bail!("the unit did not drain within {max_cycles} cycles");
        }
        env.inp.rx_valid = !sent;
        env.inp.rx_nprefix = marker.prefix_count as u8;
        env.inp.rx_prefix = marker.prefix;
        env.inp.rx_hdr = marker.header;
        env.inp.tx_ready = true;
        env.inp.cpl_ready = true;
        let out = env.tick();
        sent |= out.rx_ready;
        if out.cpl_valid {
            got.push(Egress::Cpl(out.cpl_hdr));
        }
        if out.tx_valid {
            let n = marker.header_dws;
            if out.tx_hdr[..n] == marker.header[..n] {
                env.inp.rx_valid = false;
                return Ok(got);
            }
            got.push(Egress::Tx(out.tx_hdr));
        }
    }
}

/// Sends `w`, then a marker, and returns what the unit emitted for `w`.
pub fn exchange(env: &mut Env, w: &TlpWords, max_cycles: u64) -> Result<Vec<Egress>> {
    let marker = env.tlp.marker();
    let mut queue = [*w, marker].into_iter().peekable();
    let mut got = Vec::new();
    let start = env.dut.cycle();
    loop {
        if env.dut.cycle() - start > max_cycles {
            bail!(
                "no answer within {max_cycles} cycles for {} (so far: {})",
                TlpDisplay(w),
                got.iter()
                    .map(|e: &Egress| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        let gap_pct = env.tlp.gap_pct;
        let gap = gap_pct > 0 && env.tlp.pct(gap_pct);
        let offer = if gap { None } else { queue.peek().copied() };
        env.inp.rx_valid = offer.is_some();
        if let Some(o) = offer {
            env.inp.rx_nprefix = o.prefix_count as u8;
            env.inp.rx_prefix = o.prefix;
            env.inp.rx_hdr = o.header;
        }
        let (txp, cplp) = (env.tlp.tx_ready_pct, env.tlp.cpl_ready_pct);
        env.inp.tx_ready = env.tlp.pct(txp);
        env.inp.cpl_ready = env.tlp.pct(cplp);
        let out = env.tick();
        if offer.is_some() && out.rx_ready {
            queue.next();
        }
        if out.cpl_valid && env.inp.cpl_ready {
            got.push(Egress::Cpl(out.cpl_hdr));
        }
        if out.tx_valid && env.inp.tx_ready {
            let n = marker.header_dws;
            if out.tx_hdr[..n] == marker.header[..n] {
                env.inp.rx_valid = false;
                return Ok(got);
            }
            got.push(Egress::Tx(out.tx_hdr));
        }
    }
}

struct TlpDisplay<'a>(&'a TlpWords);

impl std::fmt::Display for TlpDisplay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match tlp::decode_lenient(self.0) {
            Ok((t, _)) => write!(f, "{t}"),
            Err(_) => write!(f, "{}", self.0),
        }
    }
}
