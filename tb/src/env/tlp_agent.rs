//! TLP agent: the random idle gaps on ingress and back-pressure on tx and cpl, the marker
//! completions that delimit an answer, and what left the unit ([`Egress`]).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

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

    pub(crate) fn pct(&mut self, p: u32) -> bool {
        p >= 100 || self.rng.gen_range(0..100) < p
    }

    pub(crate) fn marker(&mut self) -> TlpWords {
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
