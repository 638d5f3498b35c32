//! Encoding TLP values to header and prefix words, and decoding words back, with typed errors.

use thiserror::Error;

use super::*;

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// A value that has no encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
pub enum EncodeError {
    /// Length outside `1..=1024` DWs (a request, or a CplD).
    #[error("length {0} DW outside 1..=1024")]
    LengthOutOfRange(u16),
    /// Address bits 1:0 set.
    #[error("address {0:#x} is not DW aligned")]
    UnalignedAddress(u64),
    /// PASID wider than 20 bits.
    #[error("PASID {0:#x} wider than 20 bits")]
    PasidOutOfRange(u32),
    /// Tag wider than 10 bits.
    #[error("tag {0:#x} wider than 10 bits")]
    TagOutOfRange(u16),
    /// TC wider than 3 bits.
    #[error("TC {0} wider than 3 bits")]
    TcOutOfRange(u8),
    /// Attr wider than 3 bits.
    #[error("Attr {0:#x} wider than 3 bits")]
    AttrOutOfRange(u8),
    /// A byte-enable field wider than 4 bits.
    #[error("byte enables {first:#x}/{last:#x} wider than 4 bits")]
    ByteEnableOutOfRange {
        /// First DW BE.
        first: u8,
        /// Last DW BE.
        last: u8,
    },
    /// Completion Byte Count outside `1..=4096`.
    #[error("byte count {0} outside 1..=4096")]
    ByteCountOutOfRange(u16),
    /// Lower Address wider than 7 bits.
    #[error("lower address {0:#x} wider than 7 bits")]
    LowerAddressOutOfRange(u8),
    /// A Cpl with a non-zero length, or a CplD with a length outside `1..=1024`.
    #[error("completion length {length_dw} DW invalid (with data: {with_data})")]
    CompletionLength {
        /// CplD when true.
        with_data: bool,
        /// The offending length.
        length_dw: u16,
    },
    /// `CplStatus::Reserved(v)` where `v` is not a reserved 3-bit encoding.
    #[error("completion status {0:#x} is not a reserved encoding")]
    StatusOutOfRange(u8),
    /// No room for another prefix DW.
    #[error("more than {MAX_PREFIXES} prefix DWs")]
    TooManyPrefixes,
}

/// Why a set of words is not a TLP of this codec's kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
pub enum DecodeError {
    /// A malformed memory request: the translation unit answers UR when non-posted.
    #[error("malformed memory request: {0}")]
    Malformed(#[from] Malformed),
    /// A header that is neither MRd/MWr nor Cpl/CplD (including Fmt 100 in DW0 and the
    /// reserved Fmt values).
    #[error("unsupported TLP: Fmt {fmt:03b} Type {typ:05b}")]
    UnsupportedType {
        /// Fmt field of DW0.
        fmt: u8,
        /// Type field of DW0.
        typ: u8,
    },
    /// A memory request with TH = 1 (TLP Processing Hints), which this codec and the
    /// translation unit do not model.
    #[error("memory request with TH=1 (TLP processing hints) is not supported")]
    TphUnsupported,
    /// `header_dws` disagrees with the header length Fmt calls for.
    #[error("header_dws {header_dws} but Fmt {fmt:03b} calls for {expected}")]
    HeaderLengthMismatch {
        /// Fmt field of DW0.
        fmt: u8,
        /// `TlpWords::header_dws`.
        header_dws: usize,
        /// The length Fmt calls for.
        expected: usize,
    },
    /// More prefix DWs than a TLP (and the port) can carry.
    #[error("{0} prefix DWs, at most {MAX_PREFIXES} allowed")]
    TooManyPrefixes(usize),
    /// A DW in a prefix slot whose Fmt is not 100.
    #[error("prefix slot holds {0:#010x}, which is not a prefix DW")]
    NotAPrefix(u32),
    /// A prefix on a completion (the PASID prefix belongs to requests).
    #[error("completion carries prefix {0:#010x}")]
    PrefixOnCompletion(u32),
    /// A DW stream too short for the header its DW0 announces ([`TlpWords::from_dws`]).
    #[error("{available} DWs where the TLP needs {needed}")]
    Truncated {
        /// DWs needed.
        needed: usize,
        /// DWs given.
        available: usize,
    },
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

/// Encodes a memory request: the PASID prefix (if any) and a 3DW header when the address
/// is below 4 GiB, else a 4DW header.
///
/// Only unrepresentable values fail. Representable but malformed requests (AT = 11b, bad
/// byte enables, a 4 KiB crossing) encode as given, so tests can send them; see
/// [`malformation`].
pub fn encode(req: &MemRequest) -> Result<TlpWords, EncodeError> {
    encode_mem(req, req.is_4dw())
}

/// Encodes a memory request with the 4DW header whatever its address. Below 4 GiB this
/// builds the malformed form [`Malformed::Addr64BelowFourGiB`].
pub fn encode_4dw(req: &MemRequest) -> Result<TlpWords, EncodeError> {
    encode_mem(req, true)
}

pub(super) fn check_common(tag: u16, tc: u8, attr: u8) -> Result<(), EncodeError> {
    if tag > TAG_MAX {
        return Err(EncodeError::TagOutOfRange(tag));
    }
    if tc > 7 {
        return Err(EncodeError::TcOutOfRange(tc));
    }
    if attr > 7 {
        return Err(EncodeError::AttrOutOfRange(attr));
    }
    Ok(())
}

/// DW0 bits shared by requests and completions: T9, TC, T8, Attr, TD, EP.
pub(super) fn dw0_common(fmt: u8, typ: u8, tag: u16, tc: u8, attr: u8, td: bool, ep: bool) -> u32 {
    (u32::from(fmt) << 29)
        | (u32::from(typ) << 24)
        | (u32::from((tag >> 9) & 1) << 23)
        | (u32::from(tc) << 20)
        | (u32::from((tag >> 8) & 1) << 19)
        | (u32::from((attr >> 2) & 1) << 18)
        | (u32::from(td) << 15)
        | (u32::from(ep) << 14)
        | (u32::from(attr & 0b11) << 12)
}

pub(super) fn length_field(length_dw: u16) -> u32 {
    u32::from(length_dw) & 0x3ff
}

pub(super) fn encode_mem(req: &MemRequest, four_dw: bool) -> Result<TlpWords, EncodeError> {
    if req.length_dw == 0 || req.length_dw > 1024 {
        return Err(EncodeError::LengthOutOfRange(req.length_dw));
    }
    if req.addr & 3 != 0 {
        return Err(EncodeError::UnalignedAddress(req.addr));
    }
    check_common(req.tag, req.tc, req.attr)?;
    if req.first_be > 0xf || req.last_be > 0xf {
        return Err(EncodeError::ByteEnableOutOfRange {
            first: req.first_be,
            last: req.last_be,
        });
    }
    let mut words = TlpWords::default();
    if let Some(p) = req.pasid {
        words.push_prefix(p.to_dw()?)?;
    }
    let fmt = (u8::from(req.is_write) << 1) | u8::from(four_dw);
    words.header[0] = dw0_common(fmt, TYPE_MEM, req.tag, req.tc, req.attr, req.td, req.ep)
        | (u32::from(req.ln) << 17)
        | (u32::from(req.at.bits()) << 10)
        | length_field(req.length_dw);
    words.header[1] = (u32::from(req.requester_id) << 16)
        | (u32::from(req.tag & 0xff) << 8)
        | (u32::from(req.last_be) << 4)
        | u32::from(req.first_be);
    if four_dw {
        words.header[2] = (req.addr >> 32) as u32;
        words.header[3] = req.addr as u32;
        words.header_dws = 4;
    } else {
        words.header[2] = req.addr as u32;
        words.header_dws = 3;
    }
    Ok(words)
}

/// Encodes a completion (always a 3DW header, no prefix).
pub fn encode_completion(cpl: &Completion) -> Result<TlpWords, EncodeError> {
    check_common(cpl.tag, cpl.tc, cpl.attr)?;
    let length_ok = if cpl.with_data {
        (1..=1024).contains(&cpl.length_dw)
    } else {
        cpl.length_dw == 0
    };
    if !length_ok {
        return Err(EncodeError::CompletionLength {
            with_data: cpl.with_data,
            length_dw: cpl.length_dw,
        });
    }
    if cpl.byte_count == 0 || cpl.byte_count > 4096 {
        return Err(EncodeError::ByteCountOutOfRange(cpl.byte_count));
    }
    if cpl.lower_addr > 0x7f {
        return Err(EncodeError::LowerAddressOutOfRange(cpl.lower_addr));
    }
    let status = cpl.status.bits();
    if CplStatus::from_bits(status) != cpl.status || status > 7 {
        return Err(EncodeError::StatusOutOfRange(status));
    }
    let fmt = u8::from(cpl.with_data) << 1;
    let dw0 = dw0_common(fmt, TYPE_CPL, cpl.tag, cpl.tc, cpl.attr, cpl.td, cpl.ep)
        | length_field(cpl.length_dw);
    let dw1 = (u32::from(cpl.completer_id) << 16)
        | (u32::from(status) << 13)
        | (u32::from(cpl.bcm) << 12)
        | (u32::from(cpl.byte_count) & 0xfff);
    let dw2 = (u32::from(cpl.requester_id) << 16)
        | (u32::from(cpl.tag & 0xff) << 8)
        | u32::from(cpl.lower_addr);
    Ok(TlpWords {
        header: [dw0, dw1, dw2, 0],
        header_dws: 3,
        ..TlpWords::default()
    })
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

/// Decodes words into a TLP, rejecting malformed memory requests with
/// [`DecodeError::Malformed`] (checks and their order in the module documentation).
pub fn decode(words: &TlpWords) -> Result<Tlp, DecodeError> {
    match decode_lenient(words)? {
        (tlp, None) => Ok(tlp),
        (_, Some(m)) => Err(DecodeError::Malformed(m)),
    }
}

/// Decodes words and reports a malformation next to the decoded TLP instead of failing,
/// so a test can still read the fields of a malformed request (for instance to build its
/// UR completion). With several PASID prefixes the first one is kept; unknown prefixes
/// are dropped. Never returns [`DecodeError::Malformed`].
pub fn decode_lenient(words: &TlpWords) -> Result<(Tlp, Option<Malformed>), DecodeError> {
    if words.prefix_count > MAX_PREFIXES {
        return Err(DecodeError::TooManyPrefixes(words.prefix_count));
    }
    if let Some(&dw) = words
        .prefixes()
        .iter()
        .find(|&&dw| fmt_of(dw) != FMT_PREFIX)
    {
        return Err(DecodeError::NotAPrefix(dw));
    }
    let dw0 = words.header[0];
    let (fmt, typ) = (fmt_of(dw0), type_of(dw0));
    let is_mem = fmt <= 0b011 && typ == TYPE_MEM;
    let is_cpl = (fmt == 0b000 || fmt == 0b010) && typ == TYPE_CPL;
    if !is_mem && !is_cpl {
        return Err(DecodeError::UnsupportedType { fmt, typ });
    }
    let expected = header_dws_for_fmt(fmt);
    if words.header_dws != expected {
        return Err(DecodeError::HeaderLengthMismatch {
            fmt,
            header_dws: words.header_dws,
            expected,
        });
    }
    if is_cpl {
        if let Some(&dw) = words.prefixes().first() {
            return Err(DecodeError::PrefixOnCompletion(dw));
        }
        return Ok((Tlp::Cpl(decode_completion(&words.header)), None));
    }
    if dw0 & (1 << 16) != 0 {
        return Err(DecodeError::TphUnsupported);
    }

    let mut malformed = None;
    let mut pasid = None;
    for &dw in words.prefixes() {
        match PasidPrefix::from_dw(dw) {
            Some(_) if pasid.is_some() => {
                malformed = malformed.or(Some(Malformed::DuplicatePasidPrefix));
            }
            Some(p) => pasid = Some(p),
            None => malformed = malformed.or(Some(Malformed::UnknownPrefix(dw))),
        }
    }

    let h = &words.header;
    let four_dw = expected == 4;
    let addr = if four_dw {
        (u64::from(h[2]) << 32) | u64::from(h[3] & !3)
    } else {
        u64::from(h[2] & !3)
    };
    let tag = tag_from(dw0, h[1] >> 8);
    let req = MemRequest {
        is_write: fmt & 0b010 != 0,
        addr,
        length_dw: length_from(dw0),
        requester_id: (h[1] >> 16) as u16,
        tag,
        first_be: (h[1] & 0xf) as u8,
        last_be: ((h[1] >> 4) & 0xf) as u8,
        tc: ((dw0 >> 20) & 0x7) as u8,
        attr: attr_from(dw0),
        at: At::from_bits((dw0 >> 10) as u8),
        td: dw0 & (1 << 15) != 0,
        ep: dw0 & (1 << 14) != 0,
        ln: dw0 & (1 << 17) != 0,
        pasid,
    };
    if malformed.is_none() && four_dw && addr < FOUR_GIB {
        malformed = Some(Malformed::Addr64BelowFourGiB { addr });
    }
    Ok((Tlp::Mem(req), malformed.or_else(|| malformation(&req))))
}

pub(super) fn tag_from(dw0: u32, low8: u32) -> u16 {
    (((dw0 >> 23) & 1) << 9 | ((dw0 >> 19) & 1) << 8 | (low8 & 0xff)) as u16
}

pub(super) fn attr_from(dw0: u32) -> u8 {
    ((((dw0 >> 18) & 1) << 2) | ((dw0 >> 12) & 0b11)) as u8
}

pub(super) fn length_from(dw0: u32) -> u16 {
    match (dw0 & 0x3ff) as u16 {
        0 => 1024,
        n => n,
    }
}

pub(super) fn decode_completion(h: &[u32; 4]) -> Completion {
    let dw0 = h[0];
    let with_data = fmt_of(dw0) & 0b010 != 0;
    Completion {
        completer_id: (h[1] >> 16) as u16,
        status: CplStatus::from_bits((h[1] >> 13) as u8),
        bcm: h[1] & (1 << 12) != 0,
        byte_count: match (h[1] & 0xfff) as u16 {
            0 => 4096,
            n => n,
        },
        requester_id: (h[2] >> 16) as u16,
        tag: tag_from(dw0, h[2] >> 8),
        lower_addr: (h[2] & 0x7f) as u8,
        with_data,
        length_dw: if with_data { length_from(dw0) } else { 0 },
        tc: ((dw0 >> 20) & 0x7) as u8,
        attr: attr_from(dw0),
        td: dw0 & (1 << 15) != 0,
        ep: dw0 & (1 << 14) != 0,
    }
}

/// True when `words` decode (leniently) and re-encode to exactly the same words: every
/// reserved bit is 0, unused slots are 0 and the prefixes are in the order and number this
/// codec writes. Use it to check what a transmitter (the DUT) produced.
pub fn is_canonical(words: &TlpWords) -> bool {
    let Ok((tlp, malformed)) = decode_lenient(words) else {
        return false;
    };
    let reencoded = match (tlp, malformed) {
        (Tlp::Mem(req), Some(Malformed::Addr64BelowFourGiB { .. })) => encode_4dw(&req),
        (Tlp::Mem(_), Some(Malformed::UnknownPrefix(_) | Malformed::DuplicatePasidPrefix)) => {
            return false
        }
        (tlp, _) => tlp.encode(),
    };
    reencoded.is_ok_and(|w| w == *words)
}
