//! One TLP in, the unit's whole answer out: the TLP is followed by a marker (a completion,
//! which the unit forwards unchanged), and everything that leaves on tx and cpl before the
//! marker is the unit's answer, including "nothing" for a dropped write. Directed tests use
//! it; the streaming scoreboard does not need markers.

use anyhow::{bail, Result};

use super::tlp_agent::Egress;
use super::Env;
use crate::tlp::{self, TlpWords};

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
            got.push(Egress::of_cpl(out.cpl_hdr, out.cpl_data));
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
            got.push(Egress::of_cpl(out.cpl_hdr, out.cpl_data));
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
