//! The TLP values: field types, memory requests and their malformations, completions, the wire form.

use std::fmt;

use thiserror::Error;

use super::*;

// ---------------------------------------------------------------------------------------
// Small field types
// ---------------------------------------------------------------------------------------

/// Address Type field (DW0 bits 11:10).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum At {
    /// 00b: untranslated address.
    #[default]
    Untranslated,
    /// 01b: ATS translation request.
    TranslationRequest,
    /// 10b: translated address.
    Translated,
    /// 11b: reserved; a memory request carrying it is malformed.
    Reserved,
}

impl At {
    /// Decodes the two AT bits (higher bits are ignored).
    pub fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0b00 => At::Untranslated,
            0b01 => At::TranslationRequest,
            0b10 => At::Translated,
            _ => At::Reserved,
        }
    }

    /// The two-bit field value.
    pub fn bits(self) -> u8 {
        match self {
            At::Untranslated => 0b00,
            At::TranslationRequest => 0b01,
            At::Translated => 0b10,
            At::Reserved => 0b11,
        }
    }
}

/// Completion Status field (completion DW1 bits 15:13).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CplStatus {
    /// 000b: Successful Completion.
    Sc,
    /// 001b: Unsupported Request.
    Ur,
    /// 010b: Configuration Request Retry Status (Request Retry Status in newer revisions).
    Crs,
    /// 100b: Completer Abort.
    Ca,
    /// A reserved encoding (011b, 101b, 110b or 111b), kept so decoding is lossless.
    Reserved(u8),
}

impl CplStatus {
    /// Decodes the three status bits (higher bits are ignored).
    pub fn from_bits(bits: u8) -> Self {
        match bits & 0b111 {
            0b000 => CplStatus::Sc,
            0b001 => CplStatus::Ur,
            0b010 => CplStatus::Crs,
            0b100 => CplStatus::Ca,
            other => CplStatus::Reserved(other),
        }
    }

    /// The three-bit field value. `Reserved(v)` yields `v` unchanged; [`encode_completion`]
    /// rejects a `v` that is not a reserved encoding.
    pub fn bits(self) -> u8 {
        match self {
            CplStatus::Sc => 0b000,
            CplStatus::Ur => 0b001,
            CplStatus::Crs => 0b010,
            CplStatus::Ca => 0b100,
            CplStatus::Reserved(v) => v,
        }
    }
}

impl fmt::Display for CplStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CplStatus::Sc => f.write_str("SC"),
            CplStatus::Ur => f.write_str("UR"),
            CplStatus::Crs => f.write_str("CRS"),
            CplStatus::Ca => f.write_str("CA"),
            CplStatus::Reserved(v) => write!(f, "RSV({v:03b})"),
        }
    }
}

/// A Requester or Completer ID, displayed as `bus:dev.fn` (`00:02.0`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bdf(pub u16);

impl Bdf {
    /// Builds an ID from bus (8 bits), device (5 bits) and function (3 bits); excess bits
    /// of `dev` and `func` are dropped.
    pub fn new(bus: u8, dev: u8, func: u8) -> Self {
        Bdf((u16::from(bus) << 8) | (u16::from(dev & 0x1f) << 3) | u16::from(func & 0x7))
    }

    /// Bus number, bits 15:8.
    pub fn bus(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// Device number, bits 7:3.
    pub fn dev(self) -> u8 {
        ((self.0 >> 3) & 0x1f) as u8
    }

    /// Function number, bits 2:0.
    pub fn func(self) -> u8 {
        (self.0 & 0x7) as u8
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{:x}", self.bus(), self.dev(), self.func())
    }
}

/// The PASID end-to-end TLP prefix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PasidPrefix {
    /// Process Address Space ID, 20 bits.
    pub pasid: u32,
    /// Privileged Mode Requested (bit 23).
    pub pmr: bool,
    /// Execute Requested (bit 22).
    pub er: bool,
}

impl PasidPrefix {
    /// Decodes a prefix DW whose byte 0 is [`PASID_PREFIX_BYTE0`]; `None` otherwise.
    /// Reserved bits 21:20 are ignored.
    pub fn from_dw(dw: u32) -> Option<Self> {
        if (dw >> 24) as u8 != PASID_PREFIX_BYTE0 {
            return None;
        }
        Some(PasidPrefix {
            pasid: dw & PASID_MAX,
            pmr: dw & (1 << 23) != 0,
            er: dw & (1 << 22) != 0,
        })
    }

    /// The prefix DW.
    pub fn to_dw(self) -> Result<u32, EncodeError> {
        if self.pasid > PASID_MAX {
            return Err(EncodeError::PasidOutOfRange(self.pasid));
        }
        Ok((u32::from(PASID_PREFIX_BYTE0) << 24)
            | (u32::from(self.pmr) << 23)
            | (u32::from(self.er) << 22)
            | self.pasid)
    }
}

// ---------------------------------------------------------------------------------------
// Memory requests
// ---------------------------------------------------------------------------------------

/// A memory read (MRd, non-posted) or memory write (MWr, posted) request header.
///
/// The header form is not stored: [`encode`] uses the 3DW form for addresses below 4 GiB
/// and the 4DW form otherwise, as PCIe requires ([`encode_4dw`] forces the 4DW form to
/// build a malformed request).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemRequest {
    /// MWr (Fmt x1x, with data) when true, MRd (Fmt x0x) when false.
    pub is_write: bool,
    /// DW-aligned byte address (bits 1:0 must be 0).
    pub addr: u64,
    /// Length in DWs, `1..=1024` (1024 is encoded as Length 0).
    pub length_dw: u16,
    /// Requester ID (bus:dev.fn).
    pub requester_id: u16,
    /// Tag, `0..=1023`: bits 7:0 in DW1, bit 8 in T8, bit 9 in T9.
    pub tag: u16,
    /// First DW Byte Enables, 4 bits.
    pub first_be: u8,
    /// Last DW Byte Enables, 4 bits.
    pub last_be: u8,
    /// Traffic Class, 3 bits.
    pub tc: u8,
    /// Attributes, 3 bits: bit 2 IDO (DW0 bit 18), bit 1 RO (bit 13), bit 0 NS (bit 12).
    pub attr: u8,
    /// Address Type.
    pub at: At,
    /// TLP digest present.
    pub td: bool,
    /// Poisoned.
    pub ep: bool,
    /// Lightweight Notification (LN Read / LN Write).
    pub ln: bool,
    /// The PASID end-to-end prefix, if present.
    pub pasid: Option<PasidPrefix>,
}

impl Default for MemRequest {
    /// A one-DW untranslated read of address 0 with all four bytes enabled.
    fn default() -> Self {
        MemRequest {
            is_write: false,
            addr: 0,
            length_dw: 1,
            requester_id: 0,
            tag: 0,
            first_be: 0xf,
            last_be: 0,
            tc: 0,
            attr: 0,
            at: At::Untranslated,
            td: false,
            ep: false,
            ln: false,
            pasid: None,
        }
    }
}

impl MemRequest {
    /// A read of `length_dw` whole DWs at `addr` (all bytes enabled), no PASID.
    pub fn read(requester_id: u16, tag: u16, addr: u64, length_dw: u16) -> Self {
        Self::whole_dws(false, requester_id, tag, addr, length_dw)
    }

    /// A write of `length_dw` whole DWs at `addr` (all bytes enabled), no PASID.
    pub fn write(requester_id: u16, tag: u16, addr: u64, length_dw: u16) -> Self {
        Self::whole_dws(true, requester_id, tag, addr, length_dw)
    }

    fn whole_dws(is_write: bool, requester_id: u16, tag: u16, addr: u64, length_dw: u16) -> Self {
        MemRequest {
            is_write,
            addr,
            length_dw,
            requester_id,
            tag,
            first_be: 0xf,
            last_be: if length_dw == 1 { 0 } else { 0xf },
            ..MemRequest::default()
        }
    }

    /// The request that accesses exactly the bytes `byte_addr .. byte_addr + byte_len`:
    /// DW address, Length and byte enables as a PCIe Requester forms them (contiguous
    /// enables; `byte_len == 0` gives the zero-length form, Length 1 with no byte enabled).
    /// Fails when the range needs more than 1024 DWs.
    pub fn covering(
        is_write: bool,
        requester_id: u16,
        tag: u16,
        byte_addr: u64,
        byte_len: u32,
    ) -> Result<Self, EncodeError> {
        let addr = byte_addr & !3;
        let mut req = Self::whole_dws(is_write, requester_id, tag, addr, 1);
        if byte_len == 0 {
            req.first_be = 0;
            return Ok(req);
        }
        let first_pad = (byte_addr & 3) as u32;
        let end = u64::from(first_pad) + u64::from(byte_len);
        let last_pad = ((4 - (end & 3)) & 3) as u32;
        let dws = (end + u64::from(last_pad)) / 4;
        if dws > 1024 {
            return Err(EncodeError::LengthOutOfRange(
                u16::try_from(dws).unwrap_or(u16::MAX),
            ));
        }
        req.length_dw = dws as u16;
        let first_be = (0xf_u8 << first_pad) & 0xf;
        let last_be = 0xf_u8 >> last_pad;
        if dws == 1 {
            req.first_be = first_be & last_be;
            req.last_be = 0;
        } else {
            req.first_be = first_be;
            req.last_be = last_be;
        }
        Ok(req)
    }

    /// The same request with a PASID prefix.
    pub fn with_pasid(mut self, pasid: u32, pmr: bool, er: bool) -> Self {
        self.pasid = Some(PasidPrefix { pasid, pmr, er });
        self
    }

    /// The form the translation unit forwards after translating this request to `pa`:
    /// the address replaced and the PASID prefix removed; every other field (including AT)
    /// is unchanged. [`encode`] then picks the 3DW form if `pa` is below 4 GiB, else 4DW.
    pub fn with_address(&self, pa: u64) -> Self {
        MemRequest {
            addr: pa,
            pasid: None,
            ..*self
        }
    }

    /// True for writes: MWr is posted, MRd is non-posted.
    pub fn is_posted(&self) -> bool {
        self.is_write
    }

    /// True when [`encode`] uses the 4DW (64-bit address) header.
    pub fn is_4dw(&self) -> bool {
        self.addr >= FOUR_GIB
    }

    /// The Fmt field [`encode`] writes.
    pub fn fmt_bits(&self) -> u8 {
        (u8::from(self.is_write) << 1) | u8::from(self.is_4dw())
    }

    /// Bytes the request spans from its Length and byte enables: the "total byte count"
    /// PCIe defines for a read's completions (Base Spec 2.3.1.1, "Calculating Byte Count
    /// from Length and Byte Enables"), `1..=4096`.
    ///
    /// * Length 1: from the lowest to the highest enabled byte of First DW BE (enabled
    ///   bytes in between need not be contiguous); 0000b (zero-length) counts as 1.
    /// * Length > 1: `Length * 4` minus the disabled bytes below the first enabled byte of
    ///   First DW BE and above the last enabled byte of Last DW BE.
    ///
    /// For byte enables PCIe forbids (an all-zero field with Length > 1) the same span
    /// rule is applied with that DW counting as having no enabled byte; the result is never
    /// below 1. A `length_dw` outside `1..=1024` is clamped into it.
    pub fn byte_len(&self) -> u32 {
        let len = u32::from(self.length_dw.clamp(1, 1024));
        let fbe = u32::from(self.first_be & 0xf);
        let lbe = u32::from(self.last_be & 0xf);
        if len == 1 {
            if fbe == 0 {
                return 1;
            }
            let highest = 31 - fbe.leading_zeros();
            let lowest = fbe.trailing_zeros();
            return highest - lowest + 1;
        }
        let below = if fbe == 0 { 4 } else { fbe.trailing_zeros() };
        let above = if lbe == 0 {
            4
        } else {
            3 - (31 - lbe.leading_zeros())
        };
        (len * 4).saturating_sub(below + above).max(1)
    }

    /// Lower Address of the first enabled byte (Base Spec 2.3.1.1, "Calculating Lower
    /// Address from First DW BE"): address bits 6:2, and bits 1:0 from the position of the
    /// lowest enabled byte of First DW BE (00b when First DW BE is 0000b).
    pub fn lower_addr(&self) -> u8 {
        let fbe = self.first_be & 0xf;
        let offset = if fbe == 0 {
            0
        } else {
            fbe.trailing_zeros() as u8
        };
        ((self.addr & 0x7c) as u8) | offset
    }

    /// The header-level malformation of this request, if any (see [`malformation`]).
    pub fn malformation(&self) -> Option<Malformed> {
        malformation(self)
    }

    /// The UR completion this request gets when it is not serviced (see [`ur_completion`]).
    pub fn ur_completion(&self, completer_id: u16) -> Option<Completion> {
        ur_completion(self, completer_id)
    }

    /// Encodes the request (see [`encode`]).
    pub fn encode(&self) -> Result<TlpWords, EncodeError> {
        encode(self)
    }
}

/// Checks the PCIe First/Last DW Byte Enables rules (Base Spec 2.2.5):
///
/// * Length = 1 DW: Last DW BE must be 0000b. First DW BE may take any value, including
///   non-contiguous ones and 0000b (a zero-length request).
/// * Length > 1 DW: neither First DW BE nor Last DW BE may be 0000b.
/// * Non-contiguous byte enables are permitted for Length 1, and in both fields of a
///   QW-aligned (address bit 2 = 0) request of Length 2. Every other request, i.e. Length
///   2 not QW-aligned or Length >= 3, must enable only bytes contiguous with the data
///   between its first and last DW: First DW BE one of 1111b, 1110b, 1100b, 1000b and Last
///   DW BE one of 1111b, 0111b, 0011b, 0001b.
///
/// Bits above bit 3 of either field make the enables invalid. `length_dw` 0 is read as
/// 1024, as on the wire.
pub fn byte_enables_valid(first_be: u8, last_be: u8, length_dw: u16, addr: u64) -> bool {
    if first_be > 0xf || last_be > 0xf {
        return false;
    }
    let len = if length_dw == 0 { 1024 } else { length_dw };
    if len == 1 {
        return last_be == 0;
    }
    if first_be == 0 || last_be == 0 {
        return false;
    }
    if len == 2 && addr & 0x7 == 0 {
        return true;
    }
    matches!(first_be, 0b1111 | 0b1110 | 0b1100 | 0b1000)
        && matches!(last_be, 0b1111 | 0b0111 | 0b0011 | 0b0001)
}

/// Why a memory request is malformed (docs/contract.md section 3). The translation unit neither
/// translates nor forwards such a request and records no fault; a non-posted one gets a
/// UR completion ([`ur_completion`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
pub enum Malformed {
    /// An end-to-end prefix other than PASID (the whole prefix DW).
    #[error("unknown TLP prefix {0:#010x}")]
    UnknownPrefix(u32),
    /// More than one PASID prefix.
    #[error("more than one PASID prefix")]
    DuplicatePasidPrefix,
    /// A 4DW header with an address below 4 GiB, where PCIe requires the 3DW form.
    #[error("4DW header with address {addr:#x} below 4 GiB")]
    Addr64BelowFourGiB {
        /// The address the header carries.
        addr: u64,
    },
    /// AT = 11b, or AT = 01b (a Translation Request, which is a read) on a write.
    #[error("reserved AT value 11b, or a write with AT 01b")]
    ReservedAt,
    /// Byte enables that break the rules of [`byte_enables_valid`].
    #[error("invalid byte enables: first {first:04b} last {last:04b} for length {length} DW")]
    BadByteEnables {
        /// First DW BE.
        first: u8,
        /// Last DW BE.
        last: u8,
        /// Length in DWs (1..=1024).
        length: u16,
    },
    /// The DWs `addr .. addr + len_bytes` (Length * 4 bytes) cross a 4 KiB boundary.
    #[error("request at {addr:#x} of {len_bytes} bytes crosses a 4 KiB boundary")]
    CrossesPage {
        /// The request address.
        addr: u64,
        /// Length * 4.
        len_bytes: u32,
    },
}

/// The first header-level malformation of `req`, in the order AT, byte enables, 4 KiB
/// crossing (see the module documentation). The wire-level malformations (prefixes, 4DW
/// form below 4 GiB) cannot occur in a [`MemRequest`] value and are reported by [`decode`].
/// A `length_dw` of 0 is read as 1024, as on the wire.
pub fn malformation(req: &MemRequest) -> Option<Malformed> {
    let length = if req.length_dw == 0 {
        1024
    } else {
        req.length_dw
    };
    if req.at == At::Reserved || (req.at == At::TranslationRequest && req.is_write) {
        return Some(Malformed::ReservedAt);
    }
    if !byte_enables_valid(req.first_be, req.last_be, length, req.addr) {
        return Some(Malformed::BadByteEnables {
            first: req.first_be,
            last: req.last_be,
            length,
        });
    }
    let len_bytes = u32::from(length) * 4;
    if (req.addr & (PAGE_SIZE - 1)) + u64::from(len_bytes) > PAGE_SIZE {
        return Some(Malformed::CrossesPage {
            addr: req.addr,
            len_bytes,
        });
    }
    None
}

/// The completion the translation unit returns for a non-posted request it does not
/// service (malformed, or blocked by a translation fault); `None` for a posted request,
/// which gets no completion.
///
/// Fields, following the PCIe Completion Rules (Base Spec 2.2.9, 2.3.1.1, 2.3.2):
///
/// * Cpl (no data), status UR, BCM 0, TD 0, EP 0, Length 0.
/// * Requester ID, Tag (all 10 bits), TC and Attr\[1:0\] copied from the request. Attr\[2\]
///   (IDO) is 0: a Completer may set it only when its IDO Completion Enable is set, and
///   it is never required to copy it.
/// * A UR completion to a memory read is that read's final completion, sent before any
///   data, so Byte Count is the remaining byte count of the whole request: the total
///   byte count from Length and byte enables ([`MemRequest::byte_len`]; 4096 is encoded
///   as 0). Lower Address is that of the first enabled byte
///   ([`MemRequest::lower_addr`]), both as for a memory read completion. The values PCIe
///   gives completions of other request kinds (Byte Count 4, Lower Address 0) are not
///   used.
pub fn ur_completion(req: &MemRequest, completer_id: u16) -> Option<Completion> {
    if req.is_posted() {
        return None;
    }
    Some(Completion {
        completer_id,
        status: CplStatus::Ur,
        bcm: false,
        byte_count: req.byte_len() as u16,
        requester_id: req.requester_id,
        tag: req.tag,
        lower_addr: req.lower_addr(),
        with_data: false,
        length_dw: 0,
        tc: req.tc,
        attr: req.attr & 0b011,
        td: false,
        ep: false,
    })
}

/// The header of the Translation Completion the unit returns for a Translation Request
/// (AT = 01b) that it answers with one translation (docs/contract.md section 6.2): CplD,
/// status SC, Length 2 and Byte Count 8 (one 8-byte entry, whatever Length the request
/// had: PCIe lets the translation agent return fewer translations than asked for), Lower
/// Address 0; Requester ID, Tag, TC and Attr\[1:0\] copied as in [`ur_completion`]. The
/// entry itself is [`iommu_model::golden::AtsEntry`].
pub fn translation_completion(req: &MemRequest, completer_id: u16) -> Completion {
    Completion {
        completer_id,
        status: CplStatus::Sc,
        bcm: false,
        byte_count: 8,
        requester_id: req.requester_id,
        tag: req.tag,
        lower_addr: 0,
        with_data: true,
        length_dw: 2,
        tc: req.tc,
        attr: req.attr & 0b011,
        td: false,
        ep: false,
    }
}

// ---------------------------------------------------------------------------------------
// Completions
// ---------------------------------------------------------------------------------------

/// A completion header: Cpl (no data) or CplD (with data).
///
/// Completions are always 3DW and carry no prefix here. The AT, TH and LN bits of DW0 are
/// not used by (ordinary) completions: they are written as 0 and ignored on decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Completion {
    /// Completer ID.
    pub completer_id: u16,
    /// Completion Status.
    pub status: CplStatus,
    /// Byte Count Modified (set only by PCI-X completers).
    pub bcm: bool,
    /// Byte Count, `1..=4096` (4096 is encoded as 0).
    pub byte_count: u16,
    /// Requester ID of the request being completed.
    pub requester_id: u16,
    /// Tag of the request being completed, `0..=1023`.
    pub tag: u16,
    /// Lower Address, 7 bits.
    pub lower_addr: u8,
    /// CplD (Fmt 010) when true, Cpl (Fmt 000) when false.
    pub with_data: bool,
    /// Payload length: `1..=1024` for CplD; 0 for Cpl, whose Length field carries nothing
    /// (written as 0, ignored on decode).
    pub length_dw: u16,
    /// Traffic Class, 3 bits.
    pub tc: u8,
    /// Attributes, 3 bits (as [`MemRequest::attr`]).
    pub attr: u8,
    /// TLP digest present.
    pub td: bool,
    /// Poisoned.
    pub ep: bool,
}

impl Completion {
    /// Encodes the completion (see [`encode_completion`]).
    pub fn encode(&self) -> Result<TlpWords, EncodeError> {
        encode_completion(self)
    }
}

/// A decoded TLP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tlp {
    /// MRd or MWr.
    Mem(MemRequest),
    /// Cpl or CplD.
    Cpl(Completion),
}

impl Tlp {
    /// Encodes the TLP.
    pub fn encode(&self) -> Result<TlpWords, EncodeError> {
        match self {
            Tlp::Mem(req) => encode(req),
            Tlp::Cpl(cpl) => encode_completion(cpl),
        }
    }
}

impl From<MemRequest> for Tlp {
    fn from(req: MemRequest) -> Self {
        Tlp::Mem(req)
    }
}

impl From<Completion> for Tlp {
    fn from(cpl: Completion) -> Self {
        Tlp::Cpl(cpl)
    }
}

// ---------------------------------------------------------------------------------------
// Wire form
// ---------------------------------------------------------------------------------------

/// A TLP header as the translation unit's port carries it: up to [`MAX_PREFIXES`]
/// end-to-end prefix DWs in wire order, then a header of 3 or 4 DWs.
///
/// The fields map one to one onto the port: `prefix[i]` is valid for `i < prefix_count`,
/// `header[0..header_dws]` is the header (DW0 first). Unused slots are 0 in what this
/// module produces and are ignored by [`decode`]. Fields are public so a test can build
/// any bit pattern; [`decode`] validates them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlpWords {
    /// Prefix DWs, wire order.
    pub prefix: [u32; MAX_PREFIXES],
    /// Number of valid prefix DWs, `0..=MAX_PREFIXES`.
    pub prefix_count: usize,
    /// Header DWs, DW0 first.
    pub header: [u32; 4],
    /// Number of valid header DWs: 3 or 4, as Fmt bit 29 says.
    pub header_dws: usize,
}

impl TlpWords {
    /// Words from a port's raw signals, with `header_dws` taken from the Fmt field of
    /// `header[0]` (4 when Fmt bit 0 is set, else 3).
    pub fn from_port(prefix: [u32; MAX_PREFIXES], prefix_count: usize, header: [u32; 4]) -> Self {
        TlpWords {
            prefix,
            prefix_count,
            header,
            header_dws: header_dws_for_fmt(fmt_of(header[0])),
        }
    }

    /// The valid prefix DWs (at most [`MAX_PREFIXES`], even if `prefix_count` is larger).
    pub fn prefixes(&self) -> &[u32] {
        &self.prefix[..self.prefix_count.min(MAX_PREFIXES)]
    }

    /// The valid header DWs (at most 4).
    pub fn header_used(&self) -> &[u32] {
        &self.header[..self.header_dws.min(4)]
    }

    /// Appends a prefix DW after the existing ones (e.g. to build a malformed request).
    pub fn push_prefix(&mut self, dw: u32) -> Result<(), EncodeError> {
        if self.prefix_count >= MAX_PREFIXES {
            return Err(EncodeError::TooManyPrefixes);
        }
        self.prefix[self.prefix_count] = dw;
        self.prefix_count += 1;
        Ok(())
    }

    /// Prefixes then header, as one DW stream.
    pub fn to_dws(&self) -> Vec<u32> {
        self.prefixes()
            .iter()
            .chain(self.header_used())
            .copied()
            .collect()
    }

    /// The wire bytes, byte 0 first.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_dws()
            .iter()
            .flat_map(|dw| dw.to_be_bytes())
            .collect()
    }

    /// Splits a DW stream into prefixes and header: leading DWs with Fmt 100 are prefixes,
    /// the next DW is header DW0 and its Fmt gives the header length. DWs after the header
    /// (payload, digest) are not examined.
    pub fn from_dws(dws: &[u32]) -> Result<Self, DecodeError> {
        let n_prefixes = dws
            .iter()
            .take_while(|&&dw| fmt_of(dw) == FMT_PREFIX)
            .count();
        if n_prefixes > MAX_PREFIXES {
            return Err(DecodeError::TooManyPrefixes(n_prefixes));
        }
        let rest = &dws[n_prefixes..];
        let Some(&dw0) = rest.first() else {
            return Err(DecodeError::Truncated {
                needed: n_prefixes + 1,
                available: dws.len(),
            });
        };
        let header_dws = header_dws_for_fmt(fmt_of(dw0));
        if rest.len() < header_dws {
            return Err(DecodeError::Truncated {
                needed: n_prefixes + header_dws,
                available: dws.len(),
            });
        }
        let mut words = TlpWords {
            prefix_count: n_prefixes,
            header_dws,
            ..TlpWords::default()
        };
        words.prefix[..n_prefixes].copy_from_slice(&dws[..n_prefixes]);
        words.header[..header_dws].copy_from_slice(&rest[..header_dws]);
        Ok(words)
    }

    /// Splits a byte stream (wire order) into DWs and calls [`TlpWords::from_dws`]; a
    /// trailing partial DW is ignored.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let dws: Vec<u32> = bytes
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Self::from_dws(&dws)
    }
}

pub(super) fn fmt_of(dw0: u32) -> u8 {
    (dw0 >> 29) as u8
}

pub(super) fn type_of(dw0: u32) -> u8 {
    ((dw0 >> 24) & 0x1f) as u8
}

pub(super) fn header_dws_for_fmt(fmt: u8) -> usize {
    if fmt & 1 != 0 {
        4
    } else {
        3
    }
}
