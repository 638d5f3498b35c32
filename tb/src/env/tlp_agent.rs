//! TLP agent: the random idle gaps on ingress and back-pressure on tx and cpl, the marker
//! completions that delimit an answer, and what left the unit ([`Egress`]).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::tlp::{self, Completion, CplStatus, TlpWords};
use iommu_model::golden::AtsEntry;

/// What left the unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Egress {
    /// A request (forwarded or translated) on tx.
    Tx([u32; 4]),
    /// A completion without data on cpl.
    Cpl([u32; 3]),
    /// A completion with data on cpl (a Translation Completion): header, then its data
    /// DWs, DW0 first on the wire.
    CplD([u32; 3], [u32; 2]),
}

impl Egress {
    /// What the completion port carries this cycle: a completion with data when its
    /// header's Fmt says so (Fmt bit 1, DW0 bit 30), else one without.
    pub fn of_cpl(hdr: [u32; 3], data: [u32; 2]) -> Self {
        if hdr[0] & (1 << 30) != 0 {
            Egress::CplD(hdr, data)
        } else {
            Egress::Cpl(hdr)
        }
    }
}

impl std::fmt::Display for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (port, w) = match *self {
            Egress::Tx(h) => ("tx", TlpWords::from_port([0; 4], 0, h)),
            Egress::Cpl(h) | Egress::CplD(h, _) => {
                ("cpl", TlpWords::from_port([0; 4], 0, [h[0], h[1], h[2], 0]))
            }
        };
        match tlp::decode_lenient(&w) {
            Ok((t, _)) => write!(f, "{port}: {t}")?,
            Err(_) => write!(f, "{port}: {w}")?,
        }
        if let Egress::CplD(_, d) = *self {
            match AtsEntry::decode(d) {
                Ok(e) => write!(f, ", data {:08x} {:08x} ({e})", d[0], d[1])?,
                Err(err) => write!(f, ", data {:08x} {:08x} ({err})", d[0], d[1])?,
            }
        }
        Ok(())
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
