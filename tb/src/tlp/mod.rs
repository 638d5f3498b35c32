//! Bit-exact codec for the PCIe TLPs that cross the translation unit's ports.
//!
//! Scope: memory requests (MRd/MWr, 3DW and 4DW headers) with an optional PASID end-to-end
//! TLP prefix, and completions (Cpl/CplD), all in the non-flit header layout of the PCIe
//! Base Specification. Only headers are modelled: payload DWs and the ECRC digest are not
//! part of [`TlpWords`].
//!
//! # Wire conventions
//!
//! Every DW is a `u32` whose bits 31:24 hold byte 0 as it appears on the wire (byte 0 is
//! the first byte transmitted), so the bit numbers below are the PCIe header-figure bit
//! numbers. A TLP is zero to [`MAX_PREFIXES`] end-to-end prefix DWs followed by a 3- or
//! 4-DW header.
//!
//! DW0 of every header (non-flit mode):
//!
//! | bits  | field      | notes                                                    |
//! |-------|------------|----------------------------------------------------------|
//! | 31:29 | Fmt        | 000 3DW no data, 001 4DW no data, 010 3DW data, 011 4DW data, 100 prefix |
//! | 28:24 | Type       | 00000 memory request, 01010 completion                   |
//! | 23    | T9         | Tag\[9\] (10-bit tags)                                    |
//! | 22:20 | TC         |                                                          |
//! | 19    | T8         | Tag\[8\] (10-bit tags)                                    |
//! | 18    | Attr\[2\]  | ID-based ordering                                        |
//! | 17    | LN         | Lightweight Notification request / completion            |
//! | 16    | TH         | TLP Processing Hints present                             |
//! | 15    | TD         | TLP digest (ECRC) present                                |
//! | 14    | EP         | poisoned                                                 |
//! | 13:12 | Attr\[1:0\]| relaxed ordering (13), no snoop (12)                     |
//! | 11:10 | AT         | 00 untranslated, 01 translation request, 10 translated, 11 reserved |
//! | 9:0   | Length     | DWs; 0 encodes 1024                                      |
//!
//! Memory request DW1: Requester ID 31:16, Tag\[7:0\] 15:8, Last DW BE 7:4, First DW BE
//! 3:0. 3DW form: DW2 = address\[31:2\] << 2. 4DW form: DW2 = address\[63:32\], DW3 =
//! address\[31:2\] << 2. Address bits 1:0 are reserved (they carry PH only when TH = 1).
//!
//! Completion DW1: Completer ID 31:16, Completion Status 15:13, BCM 12, Byte Count 11:0.
//! DW2: Requester ID 31:16, Tag\[7:0\] 15:8, bit 7 reserved, Lower Address 6:0.
//!
//! PASID end-to-end prefix: byte 0 = 0x91 (Fmt 100, Type 1_0001), bit 23 Privileged Mode
//! Requested, bit 22 Execute Requested, bits 21:20 reserved, bits 19:0 PASID.
//!
//! # How DW0 bits 23..16 are treated
//!
//! * T9/T8 are decoded faithfully: tags are 10 bits wide (`tag` is `0..=1023`). With
//!   8-bit tags both bits are 0 and nothing changes.
//! * Attr\[2\] (IDO) is decoded faithfully: `attr` is the 3-bit value {Attr\[2\], Attr\[1:0\]}.
//! * LN is decoded faithfully into [`MemRequest::ln`]. An LN request is an ordinary memory
//!   request with one more attribute; a Completer without LN support handles it like any
//!   other request, so it is neither malformed nor unsupported here. Completions do not
//!   carry it (see [`Completion`]).
//! * TH = 1 on a memory request is rejected with [`DecodeError::TphUnsupported`]: with TH
//!   set, PCIe moves the Processing Hint into address bits 1:0 and the Steering Tag into
//!   the Tag (writes) or byte-enable (reads) fields, so the header no longer means what this
//!   codec models. The translation unit does not advertise TPH Completer support, so a
//!   conforming Requester never sends it one. For completions bit 16 is reserved.
//!
//! Reserved bits (request address bits 1:0, PASID prefix bits 21:20, completion DW2 bit 7,
//! and the fields a completion does not use: TH, LN, AT, and Length of a Cpl) are ignored
//! on decode, as PCIe requires of a Receiver, and written as 0 on encode. To check that a
//! transmitter left them 0, use [`is_canonical`].
//!
//! # Malformed memory requests
//!
//! The checks of SPEC section 3, in the order [`decode`] applies them (the first one that
//! fires is reported):
//!
//! 1. prefixes, in wire order: a prefix other than PASID ([`Malformed::UnknownPrefix`]),
//!    a second PASID prefix ([`Malformed::DuplicatePasidPrefix`]);
//! 2. a 4DW header whose address is below 4 GiB ([`Malformed::Addr64BelowFourGiB`]; PCIe
//!    requires the 3DW form there and leaves the Receiver's behaviour unspecified, this
//!    project treats it as malformed);
//! 3. AT = 11b ([`Malformed::ReservedAt`]);
//! 4. byte enables ([`Malformed::BadByteEnables`], rules at [`byte_enables_valid`]);
//! 5. a 4 KiB boundary crossing ([`Malformed::CrossesPage`]).
//!
//! Checks 3-5 depend only on the header fields, so [`malformation`] reports them for a
//! [`MemRequest`] value; the wire-level ones (1-2) are produced by building the words with
//! [`TlpWords::push_prefix`] or [`encode_4dw`].

use std::fmt;

use thiserror::Error;

/// Most end-to-end TLP prefixes a TLP may carry (PCIe) and the translation unit's port holds.
pub const MAX_PREFIXES: usize = 4;

/// Byte 0 of a PASID end-to-end TLP prefix: Fmt 100, Type 1_0001.
pub const PASID_PREFIX_BYTE0: u8 = 0x91;

/// Largest PASID value (20 bits).
pub const PASID_MAX: u32 = (1 << 20) - 1;

/// Largest 10-bit tag.
pub const TAG_MAX: u16 = (1 << 10) - 1;

const FMT_PREFIX: u8 = 0b100;
const TYPE_MEM: u8 = 0b0_0000;
const TYPE_CPL: u8 = 0b0_1010;
const FOUR_GIB: u64 = 1 << 32;
const PAGE_SIZE: u64 = 4096;

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

/// Why a memory request is malformed (SPEC section 3). The translation unit neither
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
    /// AT = 11b.
    #[error("reserved AT value 11b")]
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
    if req.at == At::Reserved {
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

fn fmt_of(dw0: u32) -> u8 {
    (dw0 >> 29) as u8
}

fn type_of(dw0: u32) -> u8 {
    ((dw0 >> 24) & 0x1f) as u8
}

fn header_dws_for_fmt(fmt: u8) -> usize {
    if fmt & 1 != 0 {
        4
    } else {
        3
    }
}

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

fn check_common(tag: u16, tc: u8, attr: u8) -> Result<(), EncodeError> {
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
fn dw0_common(fmt: u8, typ: u8, tag: u16, tc: u8, attr: u8, td: bool, ep: bool) -> u32 {
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

fn length_field(length_dw: u16) -> u32 {
    u32::from(length_dw) & 0x3ff
}

fn encode_mem(req: &MemRequest, four_dw: bool) -> Result<TlpWords, EncodeError> {
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

fn tag_from(dw0: u32, low8: u32) -> u16 {
    (((dw0 >> 23) & 1) << 9 | ((dw0 >> 19) & 1) << 8 | (low8 & 0xff)) as u16
}

fn attr_from(dw0: u32) -> u8 {
    ((((dw0 >> 18) & 1) << 2) | ((dw0 >> 12) & 0b11)) as u8
}

fn length_from(dw0: u32) -> u16 {
    match (dw0 & 0x3ff) as u16 {
        0 => 1024,
        n => n,
    }
}

fn decode_completion(h: &[u32; 4]) -> Completion {
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

// ---------------------------------------------------------------------------------------
// Display
// ---------------------------------------------------------------------------------------

/// Writes an address as `0x` and 12 hex digits (16 when it needs more than 48 bits) in
/// groups of four: `0x0000_7fff_1000`.
struct Addr(u64);

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups = if self.0 >> 48 != 0 { 4 } else { 3 };
        f.write_str("0x")?;
        for i in (0..groups).rev() {
            write!(f, "{:04x}", (self.0 >> (16 * i)) & 0xffff)?;
            if i != 0 {
                f.write_str("_")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for MemRequest {
    /// One line, field by field:
    /// `MRd 3DW RID 00:02.0 tag 0x12 addr 0x0000_7fff_1000 len 4DW FBE 1111 LBE 1111
    /// PASID 0x00001 PMR=0 ER=0 AT=00 TC=0 Attr=000`, followed by ` TD`, ` EP`, ` LN` when
    /// those bits are set. Without a prefix the PASID part reads `no-PASID`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} RID {} tag {:#04x} addr {} len {}DW FBE {:04b} LBE {:04b} ",
            if self.is_write { "MWr" } else { "MRd" },
            if self.is_4dw() { "4DW" } else { "3DW" },
            Bdf(self.requester_id),
            self.tag,
            Addr(self.addr),
            self.length_dw,
            self.first_be,
            self.last_be,
        )?;
        match self.pasid {
            Some(p) => write!(
                f,
                "PASID {:#07x} PMR={} ER={}",
                p.pasid,
                u8::from(p.pmr),
                u8::from(p.er)
            )?,
            None => f.write_str("no-PASID")?,
        }
        write!(
            f,
            " AT={:02b} TC={} Attr={:03b}",
            self.at.bits(),
            self.tc,
            self.attr
        )?;
        for (set, name) in [(self.td, " TD"), (self.ep, " EP"), (self.ln, " LN")] {
            if set {
                f.write_str(name)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Completion {
    /// One line, field by field:
    /// `Cpl UR CID 00:00.0 RID 00:02.0 tag 0x12 BC 16 LA 0x00 BCM=0 TC=0 Attr=000`; a
    /// CplD adds `len 4DW` after the status, and ` TD`, ` EP` follow when set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.with_data {
            write!(f, "CplD {} len {}DW", self.status, self.length_dw)?;
        } else {
            write!(f, "Cpl {}", self.status)?;
        }
        write!(
            f,
            " CID {} RID {} tag {:#04x} BC {} LA {:#04x} BCM={} TC={} Attr={:03b}",
            Bdf(self.completer_id),
            Bdf(self.requester_id),
            self.tag,
            self.byte_count,
            self.lower_addr,
            u8::from(self.bcm),
            self.tc,
            self.attr
        )?;
        for (set, name) in [(self.td, " TD"), (self.ep, " EP")] {
            if set {
                f.write_str(name)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Tlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tlp::Mem(req) => req.fmt(f),
            Tlp::Cpl(cpl) => cpl.fmt(f),
        }
    }
}

impl fmt::Display for TlpWords {
    /// The valid DWs in hex, prefixes then header: `[91c12345] 60840002 0310a5ff ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for dw in self.prefixes() {
            if !first {
                f.write_str(" ")?;
            }
            write!(f, "[{dw:08x}]")?;
            first = false;
        }
        for dw in self.header_used() {
            if !first {
                f.write_str(" ")?;
            }
            write!(f, "{dw:08x}")?;
            first = false;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    // The header images spell out zero-valued fields bit by bit.
    #![allow(clippy::identity_op)]

    use super::*;
    use proptest::prelude::*;

    const RID_00_02_0: u16 = 0x0010; // bus 0x00, dev 2 (bits 7:3 = 00010), fn 0

    // --- hand-checked images -----------------------------------------------------------

    /// 3DW MRd, RID 00:02.0, tag 0x12, TC 2, Attr RO, address 0x7fff_1000, 4 DW.
    #[test]
    fn image_3dw_mrd() {
        let req = MemRequest {
            tc: 2,
            attr: 0b010,
            ..MemRequest::read(RID_00_02_0, 0x12, 0x7fff_1000, 4)
        };
        // DW0: Fmt 000 (31:29) | Type 00000 (28:24) | T9 0 (23) | TC 010 (22:20) -> 0x0020_0000
        //      | T8 0 (19) | Attr[2] 0 (18) | LN 0 (17) | TH 0 (16) | TD 0 (15) | EP 0 (14)
        //      | Attr[1:0] 10 (13:12) -> 0x0000_2000 | AT 00 (11:10) | Length 4 (9:0) -> 0x004
        let dw0: u32 = (0b000 << 29) | (0b00000 << 24) | (0b010 << 20) | (0b10 << 12) | 4;
        assert_eq!(dw0, 0x0020_2004);
        // DW1: RID 0x0010 (31:16) | Tag 0x12 (15:8) | Last BE 1111 (7:4) | First BE 1111 (3:0)
        let dw1: u32 = (0x0010 << 16) | (0x12 << 8) | (0b1111 << 4) | 0b1111;
        assert_eq!(dw1, 0x0010_12ff);
        // DW2: address[31:2] << 2, bits 1:0 reserved (0)
        let dw2: u32 = 0x7fff_1000;
        let w = encode(&req).unwrap();
        assert_eq!(w.prefixes(), &[] as &[u32]);
        assert_eq!(w.header_used(), &[dw0, dw1, dw2]);
        assert_eq!(w.header[3], 0);
        assert_eq!(
            w.to_bytes(),
            [0x00, 0x20, 0x20, 0x04, 0x00, 0x10, 0x12, 0xff, 0x7f, 0xff, 0x10, 0x00]
        );
        assert_eq!(decode(&w), Ok(Tlp::Mem(req)));
        assert_eq!(
            req.to_string(),
            "MRd 3DW RID 00:02.0 tag 0x12 addr 0x0000_7fff_1000 len 4DW FBE 1111 LBE 1111 \
             no-PASID AT=00 TC=2 Attr=010"
        );
    }

    /// 4DW MWr with a PASID prefix (PMR=1, ER=1), RID 03:02.0, 10-bit tag 0x2a5, IDO,
    /// address 0x1_2345_6780, 2 DW.
    #[test]
    fn image_4dw_mwr_pasid() {
        let req = MemRequest {
            attr: 0b100,
            ..MemRequest::write(Bdf::new(3, 2, 0).0, 0x2a5, 0x1_2345_6780, 2)
                .with_pasid(0x1_2345, true, true)
        };
        // Prefix: byte 0 = 1001_0001 (Fmt 100, Type 1_0001) | PMR (23) | ER (22)
        //         | reserved 21:20 = 00 | PASID 0x12345 (19:0)
        let prefix: u32 = (0x91 << 24) | (1 << 23) | (1 << 22) | 0x1_2345;
        assert_eq!(prefix, 0x91c1_2345);
        // DW0: Fmt 011 (31:29) -> 0x6000_0000 | Type 00000 | T9 = tag[9] = 1 (23) -> 0x0080_0000
        //      | TC 000 | T8 = tag[8] = 0 (19) | Attr[2] = 1 (18) -> 0x0004_0000
        //      | LN 0 | TH 0 | TD 0 | EP 0 | Attr[1:0] 00 | AT 00 | Length 2
        let dw0: u32 = (0b011 << 29) | (1 << 23) | (1 << 18) | 2;
        assert_eq!(dw0, 0x6084_0002);
        // DW1: RID 03:02.0 = 0000_0011 00010 000 = 0x0310 | Tag[7:0] 0xa5 | LBE 1111 | FBE 1111
        let dw1: u32 = (0x0310 << 16) | (0xa5 << 8) | (0b1111 << 4) | 0b1111;
        assert_eq!(dw1, 0x0310_a5ff);
        // DW2: address[63:32]; DW3: address[31:2] << 2
        let (dw2, dw3): (u32, u32) = (0x0000_0001, 0x2345_6780);
        let w = encode(&req).unwrap();
        assert_eq!(w.prefixes(), &[prefix]);
        assert_eq!(w.header_used(), &[dw0, dw1, dw2, dw3]);
        assert_eq!(w.to_dws(), vec![prefix, dw0, dw1, dw2, dw3]);
        assert_eq!(TlpWords::from_dws(&w.to_dws()), Ok(w));
        assert_eq!(TlpWords::from_bytes(&w.to_bytes()), Ok(w));
        assert_eq!(TlpWords::from_port(w.prefix, 1, w.header), w);
        assert_eq!(decode(&w), Ok(Tlp::Mem(req)));
        assert_eq!(
            req.to_string(),
            "MWr 4DW RID 03:02.0 tag 0x2a5 addr 0x0001_2345_6780 len 2DW FBE 1111 LBE 1111 \
             PASID 0x12345 PMR=1 ER=1 AT=00 TC=0 Attr=100"
        );
        assert_eq!(
            w.to_string(),
            "[91c12345] 60840002 0310a5ff 00000001 23456780"
        );
    }

    /// UR completion for a 3DW MRd at 0x7fff_1004, 4 DW, FBE 1100, LBE 0011, TC 2, Attr
    /// IDO+RO, completer 00:01.0.
    #[test]
    fn image_ur_completion() {
        let req = MemRequest {
            first_be: 0b1100,
            last_be: 0b0011,
            tc: 2,
            attr: 0b110,
            ..MemRequest::read(RID_00_02_0, 0x12, 0x7fff_1004, 4)
        };
        assert_eq!(req.malformation(), None);
        // Byte count: 4 DW = 16 bytes, minus 2 disabled below the first enabled byte
        // (FBE 1100) and 2 above the last (LBE 0011) = 12.
        // Lower address: address[6:2] = 0x04, plus offset 2 of FBE 1100 = 0x06.
        let cpl = ur_completion(&req, Bdf::new(0, 1, 0).0).unwrap();
        assert_eq!(
            cpl,
            Completion {
                completer_id: 0x0008,
                status: CplStatus::Ur,
                bcm: false,
                byte_count: 12,
                requester_id: RID_00_02_0,
                tag: 0x12,
                lower_addr: 0x06,
                with_data: false,
                length_dw: 0,
                tc: 2,
                attr: 0b010,
                td: false,
                ep: false,
            }
        );
        // DW0: Fmt 000 | Type 01010 (28:24) -> 0x0a00_0000 | TC 010 -> 0x0020_0000
        //      | Attr[2] 0 (IDO not copied) | Attr[1:0] 10 -> 0x0000_2000 | Length 0
        let dw0: u32 = (0b000 << 29) | (0b01010 << 24) | (0b010 << 20) | (0b10 << 12);
        assert_eq!(dw0, 0x0a20_2000);
        // DW1: Completer ID 0x0008 (31:16) | Status 001 (15:13) -> 0x2000 | BCM 0 (12)
        //      | Byte Count 12 (11:0)
        let dw1: u32 = (0x0008 << 16) | (0b001 << 13) | 12;
        assert_eq!(dw1, 0x0008_200c);
        // DW2: Requester ID 0x0010 (31:16) | Tag 0x12 (15:8) | R (7) | Lower Address 0x06
        let dw2: u32 = (0x0010 << 16) | (0x12 << 8) | 0x06;
        assert_eq!(dw2, 0x0010_1206);
        let w = encode_completion(&cpl).unwrap();
        assert_eq!(w.header_used(), &[dw0, dw1, dw2]);
        assert_eq!(decode(&w), Ok(Tlp::Cpl(cpl)));
        assert_eq!(
            cpl.to_string(),
            "Cpl UR CID 00:01.0 RID 00:02.0 tag 0x12 BC 12 LA 0x06 BCM=0 TC=2 Attr=010"
        );
        assert_eq!(
            ur_completion(
                &MemRequest {
                    is_write: true,
                    ..req
                },
                8
            ),
            None
        );
    }

    #[test]
    fn ur_completion_full_page_byte_count_4096() {
        let req = MemRequest::read(1, 2, 0x1000, 1024);
        let cpl = req.ur_completion(0).unwrap();
        assert_eq!(cpl.byte_count, 4096);
        let w = cpl.encode().unwrap();
        assert_eq!(w.header[1] & 0xfff, 0);
        assert_eq!(w.header[0] & 0x3ff, 0);
        assert_eq!(decode(&w), Ok(Tlp::Cpl(cpl)));
    }

    #[test]
    fn cpld_image() {
        let cpl = Completion {
            completer_id: 0x0100,
            status: CplStatus::Sc,
            bcm: true,
            byte_count: 0x123,
            requester_id: 0xabcd,
            tag: 0x301,
            lower_addr: 0x7f,
            with_data: true,
            length_dw: 1024,
            tc: 7,
            attr: 0b101,
            td: true,
            ep: true,
        };
        // DW0: Fmt 010 | Type 01010 | T9 1 | TC 111 | T8 1 | Attr[2] 1 | TD | EP | Attr[1:0] 01
        //      | Length 0 (1024)
        let dw0: u32 = (0b010 << 29)
            | (0b01010 << 24)
            | (1 << 23)
            | (0b111 << 20)
            | (1 << 19)
            | (1 << 18)
            | (1 << 15)
            | (1 << 14)
            | (0b01 << 12);
        assert_eq!(dw0, 0x4afc_d000);
        let dw1: u32 = (0x0100 << 16) | (1 << 12) | 0x123;
        let dw2: u32 = (0xabcd << 16) | (0x01 << 8) | 0x7f;
        let w = encode_completion(&cpl).unwrap();
        assert_eq!(w.header_used(), &[dw0, dw1, dw2]);
        assert_eq!(decode(&w), Ok(Tlp::Cpl(cpl)));
        assert_eq!(
            cpl.to_string(),
            "CplD SC len 1024DW CID 01:00.0 RID ab:19.5 tag 0x301 BC 291 LA 0x7f BCM=1 TC=7 \
             Attr=101 TD EP"
        );
    }

    // --- one test per malformed form ---------------------------------------------------

    fn mal(w: &TlpWords) -> Malformed {
        match decode(w) {
            Err(DecodeError::Malformed(m)) => m,
            other => panic!("expected a malformed request, got {other:?}"),
        }
    }

    #[test]
    fn malformed_crosses_page() {
        let req = MemRequest::read(1, 1, 0x1ffc, 2);
        let expected = Malformed::CrossesPage {
            addr: 0x1ffc,
            len_bytes: 8,
        };
        assert_eq!(req.malformation(), Some(expected));
        assert_eq!(mal(&encode(&req).unwrap()), expected);
        // Exactly up to the boundary is fine, also with Length 1024 (encoded as 0).
        assert_eq!(MemRequest::read(1, 1, 0x1ff8, 2).malformation(), None);
        assert_eq!(MemRequest::write(1, 1, 0x2000, 1024).malformation(), None);
        let w = encode(&MemRequest::write(1, 1, 0x2004, 1024)).unwrap();
        assert_eq!(
            mal(&w),
            Malformed::CrossesPage {
                addr: 0x2004,
                len_bytes: 4096
            }
        );
    }

    #[test]
    fn malformed_unknown_prefix() {
        let mut w = encode(&MemRequest::read(1, 1, 0x1000, 1)).unwrap();
        // Extended TPH end-to-end prefix: Fmt 100, Type 1_0000.
        w.push_prefix(0x9000_0000).unwrap();
        assert_eq!(mal(&w), Malformed::UnknownPrefix(0x9000_0000));
        // A local prefix (Type 0_xxxx), behind a valid PASID prefix.
        let mut w = encode(&MemRequest::read(1, 1, 0x1000, 1).with_pasid(5, false, false)).unwrap();
        w.push_prefix(0x8e00_0000).unwrap();
        assert_eq!(mal(&w), Malformed::UnknownPrefix(0x8e00_0000));
        let (tlp, m) = decode_lenient(&w).unwrap();
        assert_eq!(m, Some(Malformed::UnknownPrefix(0x8e00_0000)));
        let Tlp::Mem(req) = tlp else { panic!() };
        assert_eq!(req.pasid.map(|p| p.pasid), Some(5));
    }

    #[test]
    fn malformed_duplicate_pasid_prefix() {
        let req = MemRequest::read(1, 1, 0x1000, 1).with_pasid(7, false, false);
        let mut w = encode(&req).unwrap();
        w.push_prefix(
            PasidPrefix {
                pasid: 9,
                pmr: false,
                er: false,
            }
            .to_dw()
            .unwrap(),
        )
        .unwrap();
        assert_eq!(mal(&w), Malformed::DuplicatePasidPrefix);
        // Even an identical second copy.
        let mut w = encode(&req).unwrap();
        w.push_prefix(w.prefix[0]).unwrap();
        assert_eq!(mal(&w), Malformed::DuplicatePasidPrefix);
        assert_eq!(decode_lenient(&w).unwrap().0, Tlp::Mem(req));
    }

    #[test]
    fn malformed_reserved_at() {
        let req = MemRequest {
            at: At::Reserved,
            ..MemRequest::read(1, 1, 0x1000, 1)
        };
        assert_eq!(req.malformation(), Some(Malformed::ReservedAt));
        let w = encode(&req).unwrap();
        assert_eq!((w.header[0] >> 10) & 3, 0b11);
        assert_eq!(mal(&w), Malformed::ReservedAt);
        for at in [At::Untranslated, At::TranslationRequest, At::Translated] {
            let req = MemRequest { at, ..req };
            assert_eq!(decode(&encode(&req).unwrap()), Ok(Tlp::Mem(req)));
        }
    }

    #[test]
    fn malformed_bad_byte_enables() {
        let bad = |first: u8, last: u8, length: u16, addr: u64| {
            let req = MemRequest {
                first_be: first,
                last_be: last,
                ..MemRequest::write(1, 1, addr, length)
            };
            let expected = Malformed::BadByteEnables {
                first,
                last,
                length,
            };
            assert_eq!(req.malformation(), Some(expected), "{req}");
            assert_eq!(mal(&encode(&req).unwrap()), expected, "{req}");
        };
        bad(0b1111, 0b0001, 1, 0x1000); // Length 1 with Last BE set
        bad(0b0000, 0b1111, 2, 0x1000); // Length > 1 with First BE 0000
        bad(0b1111, 0b0000, 3, 0x1000); // Length > 1 with Last BE 0000
        bad(0b0101, 0b1111, 3, 0x1000); // non-contiguous First BE, Length 3
        bad(0b1111, 0b1110, 3, 0x1000); // Last BE not contiguous with the data
        bad(0b0111, 0b1111, 2, 0x1004); // First BE not reaching byte 3, Length 2 not QW-aligned
        bad(0b1111, 0b1010, 2, 0x1004); // non-contiguous Last BE, Length 2 not QW-aligned

        let ok = |first: u8, last: u8, length: u16, addr: u64| {
            assert!(byte_enables_valid(first, last, length, addr));
        };
        ok(0b0000, 0b0000, 1, 0x1000); // zero-length
        ok(0b1010, 0b0000, 1, 0x1004); // non-contiguous, Length 1
        ok(0b0101, 0b1010, 2, 0x1008); // non-contiguous, Length 2 QW-aligned
        ok(0b1000, 0b0001, 2, 0x100c); // contiguous, Length 2 not QW-aligned
        ok(0b1100, 0b0111, 1024, 0x1000);
    }

    #[test]
    fn malformed_addr64_below_4gib() {
        let req = MemRequest::read(1, 1, 0xffff_f000, 1);
        let w = encode_4dw(&req).unwrap();
        assert_eq!(w.header_dws, 4);
        assert_eq!(mal(&w), Malformed::Addr64BelowFourGiB { addr: 0xffff_f000 });
        assert_eq!(decode_lenient(&w).unwrap().0, Tlp::Mem(req));
        // The normal encoding picks 3DW, and 4DW for 4 GiB and up.
        assert_eq!(encode(&req).unwrap().header_dws, 3);
        assert_eq!(
            encode(&MemRequest::read(1, 1, 1 << 32, 1))
                .unwrap()
                .header_dws,
            4
        );
    }

    #[test]
    fn malformed_order_prefix_first() {
        let mut w = encode(&MemRequest {
            at: At::Reserved,
            ..MemRequest::read(1, 1, 0xffc, 2)
        })
        .unwrap();
        assert_eq!(mal(&w), Malformed::ReservedAt);
        w.push_prefix(0x9e00_0000).unwrap();
        assert_eq!(mal(&w), Malformed::UnknownPrefix(0x9e00_0000));
    }

    // --- other decode errors -----------------------------------------------------------

    #[test]
    fn decode_errors() {
        let good = encode(&MemRequest::read(1, 1, 0x1000, 1)).unwrap();
        // MRdLk (Type 00001), IO read (00010), a message (Fmt 001 Type 10000), CplD 4DW.
        for (dw0, fmt, typ) in [
            (0x0100_0001, 0b000, 0b00001),
            (0x0200_0001, 0b000, 0b00010),
            (0x3000_0000, 0b001, 0b10000),
            (0x6a00_0001, 0b011, 0b01010),
            (0x9100_0000, 0b100, 0b10001),
            (0xe000_0001, 0b111, 0b00000),
        ] {
            let w = TlpWords {
                header: [dw0, 0, 0, 0],
                ..good
            };
            assert_eq!(decode(&w), Err(DecodeError::UnsupportedType { fmt, typ }));
        }
        let th = TlpWords {
            header: [
                good.header[0] | (1 << 16),
                good.header[1],
                good.header[2],
                0,
            ],
            ..good
        };
        assert_eq!(decode(&th), Err(DecodeError::TphUnsupported));
        let short = TlpWords {
            header_dws: 4,
            ..good
        };
        assert_eq!(
            decode(&short),
            Err(DecodeError::HeaderLengthMismatch {
                fmt: 0,
                header_dws: 4,
                expected: 3
            })
        );
        let many = TlpWords {
            prefix_count: 5,
            ..good
        };
        assert_eq!(decode(&many), Err(DecodeError::TooManyPrefixes(5)));
        let not_prefix = TlpWords {
            prefix: [0x0000_0001, 0, 0, 0],
            prefix_count: 1,
            ..good
        };
        assert_eq!(decode(&not_prefix), Err(DecodeError::NotAPrefix(1)));
        let mut cpl =
            encode_completion(&ur_completion(&MemRequest::default(), 0).unwrap()).unwrap();
        cpl.push_prefix(0x9100_0001).unwrap();
        assert_eq!(
            decode(&cpl),
            Err(DecodeError::PrefixOnCompletion(0x9100_0001))
        );
        assert_eq!(
            TlpWords::from_dws(&[0x9100_0001; 5]),
            Err(DecodeError::TooManyPrefixes(5))
        );
        assert_eq!(
            TlpWords::from_dws(&[0x9100_0001, 0x6000_0001, 0]),
            Err(DecodeError::Truncated {
                needed: 5,
                available: 3
            })
        );
        assert_eq!(
            TlpWords::from_dws(&[]),
            Err(DecodeError::Truncated {
                needed: 1,
                available: 0
            })
        );
    }

    #[test]
    fn reserved_bits_ignored_but_not_canonical() {
        let req = MemRequest::read(1, 1, 0x1000, 1).with_pasid(3, false, true);
        let w = encode(&req).unwrap();
        assert!(is_canonical(&w));
        let mut dirty = w;
        dirty.header[2] |= 0b11; // reserved address bits
        dirty.prefix[0] |= 0b11 << 20; // reserved prefix bits
        assert_eq!(decode(&dirty), Ok(Tlp::Mem(req)));
        assert!(!is_canonical(&dirty));
        let mut dirty = w;
        dirty.header[3] = 0xdead_beef; // unused DW of a 3DW header
        assert!(!is_canonical(&dirty));
        let cpl_words = encode_completion(&ur_completion(&req, 0).unwrap()).unwrap();
        assert!(is_canonical(&cpl_words));
        let mut dirty = cpl_words;
        dirty.header[2] |= 1 << 7;
        dirty.header[0] |= (1 << 16) | (1 << 17) | (0b11 << 10) | 5;
        assert_eq!(decode(&dirty), decode(&cpl_words));
        assert!(!is_canonical(&dirty));
        assert!(is_canonical(&encode_4dw(&req).unwrap()));
    }

    // --- encode errors ---------------------------------------------------------------

    #[test]
    fn encode_errors() {
        let r = MemRequest::read(1, 1, 0x1000, 1);
        let e = |req: MemRequest| encode(&req).unwrap_err();
        assert_eq!(
            e(MemRequest { length_dw: 0, ..r }),
            EncodeError::LengthOutOfRange(0)
        );
        assert_eq!(
            e(MemRequest {
                length_dw: 1025,
                ..r
            }),
            EncodeError::LengthOutOfRange(1025)
        );
        assert_eq!(
            e(MemRequest { addr: 0x1002, ..r }),
            EncodeError::UnalignedAddress(0x1002)
        );
        assert_eq!(
            e(r.with_pasid(1 << 20, false, false)),
            EncodeError::PasidOutOfRange(1 << 20)
        );
        assert_eq!(
            e(MemRequest { tag: 1024, ..r }),
            EncodeError::TagOutOfRange(1024)
        );
        assert_eq!(e(MemRequest { tc: 8, ..r }), EncodeError::TcOutOfRange(8));
        assert_eq!(
            e(MemRequest { attr: 8, ..r }),
            EncodeError::AttrOutOfRange(8)
        );
        assert_eq!(
            e(MemRequest {
                first_be: 0x10,
                ..r
            }),
            EncodeError::ByteEnableOutOfRange {
                first: 0x10,
                last: 0
            }
        );
        let c = ur_completion(&r, 0).unwrap();
        let ce = |cpl: Completion| encode_completion(&cpl).unwrap_err();
        assert_eq!(
            ce(Completion { byte_count: 0, ..c }),
            EncodeError::ByteCountOutOfRange(0)
        );
        assert_eq!(
            ce(Completion {
                byte_count: 4097,
                ..c
            }),
            EncodeError::ByteCountOutOfRange(4097)
        );
        assert_eq!(
            ce(Completion {
                lower_addr: 0x80,
                ..c
            }),
            EncodeError::LowerAddressOutOfRange(0x80)
        );
        assert_eq!(
            ce(Completion { length_dw: 1, ..c }),
            EncodeError::CompletionLength {
                with_data: false,
                length_dw: 1
            }
        );
        assert_eq!(
            ce(Completion {
                with_data: true,
                ..c
            }),
            EncodeError::CompletionLength {
                with_data: true,
                length_dw: 0
            }
        );
        assert_eq!(
            ce(Completion {
                status: CplStatus::Reserved(1),
                ..c
            }),
            EncodeError::StatusOutOfRange(1)
        );
        assert_eq!(
            ce(Completion {
                status: CplStatus::Reserved(9),
                ..c
            }),
            EncodeError::StatusOutOfRange(9)
        );
        let ok = Completion {
            status: CplStatus::Reserved(0b110),
            ..c
        };
        assert_eq!(decode(&encode_completion(&ok).unwrap()), Ok(Tlp::Cpl(ok)));
        let mut w = encode(&r.with_pasid(1, false, false)).unwrap();
        for _ in 0..3 {
            w.push_prefix(0x9000_0000).unwrap();
        }
        assert_eq!(
            w.push_prefix(0x9000_0000),
            Err(EncodeError::TooManyPrefixes)
        );
    }

    // --- helpers -----------------------------------------------------------------------

    /// Every row of PCIe's "Calculating Byte Count from Length and Byte Enables" table.
    #[test]
    fn byte_len_table() {
        let len1 = |fbe: u8| {
            MemRequest {
                first_be: fbe,
                ..MemRequest::read(0, 0, 0, 1)
            }
            .byte_len()
        };
        for fbe in 0..16u8 {
            let expected = match fbe {
                0b1001 | 0b1011 | 0b1101 | 0b1111 => 4, // 1xx1
                0b0101 | 0b0111 => 3,                   // 01x1
                0b1010 | 0b1110 => 3,                   // 1x10
                0b0011 | 0b0110 | 0b1100 => 2,
                0b0001 | 0b0010 | 0b0100 | 0b1000 | 0b0000 => 1,
                _ => unreachable!(),
            };
            assert_eq!(len1(fbe), expected, "FBE {fbe:04b}");
        }
        for length in [2u16, 3, 1024] {
            for fbe in 1..16u8 {
                for lbe in 1..16u8 {
                    let below = match fbe {
                        f if f & 1 != 0 => 0, // xxx1
                        f if f & 2 != 0 => 1, // xx10
                        f if f & 4 != 0 => 2, // x100
                        _ => 3,               // 1000
                    };
                    let above = match lbe {
                        l if l & 8 != 0 => 0, // 1xxx
                        l if l & 4 != 0 => 1, // 01xx
                        l if l & 2 != 0 => 2, // 001x
                        _ => 3,               // 0001
                    };
                    let req = MemRequest {
                        first_be: fbe,
                        last_be: lbe,
                        ..MemRequest::read(0, 0, 0, length)
                    };
                    assert_eq!(req.byte_len(), u32::from(length) * 4 - below - above);
                }
            }
        }
    }

    #[test]
    fn lower_addr_table() {
        for (fbe, low) in [
            (0b0000, 0),
            (0b0001, 0),
            (0b1111, 0),
            (0b0010, 1),
            (0b1110, 1),
            (0b0100, 2),
            (0b1100, 2),
            (0b1000, 3),
        ] {
            let req = MemRequest {
                first_be: fbe,
                ..MemRequest::read(0, 0, 0x1234_5ff8, 1)
            };
            assert_eq!(req.lower_addr(), 0x78 | low);
        }
    }

    #[test]
    fn covering_examples() {
        let r = MemRequest::covering(false, 1, 2, 0x1001, 2).unwrap();
        assert_eq!(
            (r.addr, r.length_dw, r.first_be, r.last_be),
            (0x1000, 1, 0b0110, 0)
        );
        let r = MemRequest::covering(true, 1, 2, 0x1003, 6).unwrap();
        assert_eq!(
            (r.addr, r.length_dw, r.first_be, r.last_be),
            (0x1000, 3, 0b1000, 0b0001)
        );
        let r = MemRequest::covering(false, 1, 2, 0x1005, 0).unwrap();
        assert_eq!(
            (r.addr, r.length_dw, r.first_be, r.last_be),
            (0x1004, 1, 0, 0)
        );
        assert_eq!(r.byte_len(), 1);
        assert!(MemRequest::covering(false, 1, 2, 0x1000, 4096).is_ok());
        assert_eq!(
            MemRequest::covering(false, 1, 2, 0x1001, 4096),
            Err(EncodeError::LengthOutOfRange(1025))
        );
    }

    #[test]
    fn with_address_drops_prefix_and_picks_form() {
        let req = MemRequest::read(0x0010, 0x12, 0x7fff_1000, 4).with_pasid(1, false, false);
        let hi = req.with_address(0x1_0000_2000);
        assert_eq!(hi.pasid, None);
        assert_eq!(hi.addr, 0x1_0000_2000);
        let w = encode(&hi).unwrap();
        assert_eq!((w.prefix_count, w.header_dws), (0, 4));
        let w = encode(&req.with_address(0x2000)).unwrap();
        assert_eq!((w.prefix_count, w.header_dws), (0, 3));
    }

    #[test]
    fn display_formats() {
        assert_eq!(Bdf::new(0xab, 0x1f, 7).to_string(), "ab:1f.7");
        assert_eq!(Bdf(0x0010).to_string(), "00:02.0");
        let req = MemRequest {
            td: true,
            ep: true,
            ln: true,
            at: At::Translated,
            ..MemRequest::write(0x0010, 0x12, 0xffff_0000_0000_1000, 1).with_pasid(1, false, false)
        };
        assert_eq!(
            req.to_string(),
            "MWr 4DW RID 00:02.0 tag 0x12 addr 0xffff_0000_0000_1000 len 1DW FBE 1111 LBE 0000 \
             PASID 0x00001 PMR=0 ER=0 AT=10 TC=0 Attr=000 TD EP LN"
        );
        assert_eq!(CplStatus::Reserved(5).to_string(), "RSV(101)");
    }

    // --- property tests --------------------------------------------------------------

    fn any_request() -> impl Strategy<Value = MemRequest> {
        let addr = prop_oneof![
            any::<u32>().prop_map(u64::from),
            any::<u64>(),
            (0u64..16).prop_map(|p| p << 12),
        ]
        .prop_map(|a| a & !3);
        (
            (
                any::<bool>(),
                addr,
                1u16..=1024,
                any::<u16>(),
                0u16..=TAG_MAX,
            ),
            (0u8..16, 0u8..16, 0u8..8, 0u8..8, 0u8..4),
            (any::<bool>(), any::<bool>(), any::<bool>()),
            proptest::option::of((0..=PASID_MAX, any::<bool>(), any::<bool>())),
        )
            .prop_map(
                |(
                    (is_write, addr, length_dw, requester_id, tag),
                    (fb, lb, tc, attr, at),
                    (td, ep, ln),
                    p,
                )| {
                    MemRequest {
                        is_write,
                        addr,
                        length_dw,
                        requester_id,
                        tag,
                        first_be: fb,
                        last_be: lb,
                        tc,
                        attr,
                        at: At::from_bits(at),
                        td,
                        ep,
                        ln,
                        pasid: p.map(|(pasid, pmr, er)| PasidPrefix { pasid, pmr, er }),
                    }
                },
            )
    }

    /// Requests that are well formed: contiguous enables inside one page.
    fn valid_request() -> impl Strategy<Value = MemRequest> {
        (any_request(), 0u32..=4096, any::<u16>()).prop_map(|(base, len, off)| {
            let page = base.addr & !0xfff;
            let len = len.min(4096 - u32::from(off & 0xfff));
            let start = page | u64::from(off & 0xfff);
            let mut req =
                MemRequest::covering(base.is_write, base.requester_id, base.tag, start, len)
                    .expect("fits one page");
            req.tc = base.tc;
            req.attr = base.attr;
            req.td = base.td;
            req.ep = base.ep;
            req.ln = base.ln;
            req.pasid = base.pasid;
            req.at = if base.at == At::Reserved {
                At::Untranslated
            } else {
                base.at
            };
            req
        })
    }

    fn any_completion() -> impl Strategy<Value = Completion> {
        (
            (
                any::<u16>(),
                0u8..8,
                any::<bool>(),
                1u16..=4096,
                any::<u16>(),
            ),
            (0u16..=TAG_MAX, 0u8..0x80, any::<bool>(), 1u16..=1024),
            (0u8..8, 0u8..8, any::<bool>(), any::<bool>()),
        )
            .prop_map(
                |(
                    (completer_id, st, bcm, byte_count, requester_id),
                    (tag, lower_addr, with_data, len),
                    (tc, attr, td, ep),
                )| {
                    Completion {
                        completer_id,
                        status: CplStatus::from_bits(st),
                        bcm,
                        byte_count,
                        requester_id,
                        tag,
                        lower_addr,
                        with_data,
                        length_dw: if with_data { len } else { 0 },
                        tc,
                        attr,
                        td,
                        ep,
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn valid_requests_round_trip(req in valid_request()) {
            prop_assert_eq!(req.malformation(), None);
            let w = encode(&req).unwrap();
            prop_assert_eq!(decode(&w), Ok(Tlp::Mem(req)));
            prop_assert!(is_canonical(&w));
            prop_assert_eq!(TlpWords::from_dws(&w.to_dws()), Ok(w));
            prop_assert_eq!(w.header_dws == 4, req.addr >= 1 << 32);
            prop_assert_eq!(w.prefix_count, usize::from(req.pasid.is_some()));
        }

        /// Any representable request decodes to itself, and decode reports exactly the
        /// malformation `malformation()` predicts.
        #[test]
        fn decode_agrees_with_malformation(req in any_request()) {
            let w = encode(&req).unwrap();
            prop_assert_eq!(decode_lenient(&w), Ok((Tlp::Mem(req), req.malformation())));
            match req.malformation() {
                None => prop_assert_eq!(decode(&w), Ok(Tlp::Mem(req))),
                Some(m) => prop_assert_eq!(decode(&w), Err(DecodeError::Malformed(m))),
            }
        }

        #[test]
        fn byte_len_and_ur_completion_in_range(req in any_request()) {
            let n = req.byte_len();
            prop_assert!((1..=4096).contains(&n));
            prop_assert!(n <= u32::from(req.length_dw) * 4);
            if let Some(cpl) = ur_completion(&req, 0x0008) {
                let w = encode_completion(&cpl).unwrap();
                prop_assert_eq!(decode(&w), Ok(Tlp::Cpl(cpl)));
            }
        }

        #[test]
        fn covering_is_exact(start in any::<u64>(), len in 1u32..=4096) {
            if let Ok(req) = MemRequest::covering(false, 0, 0, start, len) {
                prop_assert!(byte_enables_valid(req.first_be, req.last_be, req.length_dw, req.addr));
                prop_assert_eq!(req.byte_len(), len);
                prop_assert_eq!(u64::from(req.lower_addr()), start & 0x7f);
            }
        }

        #[test]
        fn completions_round_trip(cpl in any_completion()) {
            let w = encode_completion(&cpl).unwrap();
            prop_assert_eq!(decode(&w), Ok(Tlp::Cpl(cpl)));
            prop_assert!(is_canonical(&w));
        }

        /// Arbitrary words never panic, and whatever decodes re-encodes to words that
        /// decode to the same thing.
        #[test]
        fn random_words_never_panic(
            prefix in any::<[u32; 4]>(),
            prefix_count in 0usize..8,
            header in any::<[u32; 4]>(),
            header_dws in 0usize..6,
            stream in proptest::collection::vec(any::<u32>(), 0..10),
        ) {
            let w = TlpWords { prefix, prefix_count, header, header_dws };
            let _ = w.to_string();
            let _ = w.to_bytes();
            let _ = is_canonical(&w);
            if let Ok((tlp, m)) = decode_lenient(&w) {
                let _ = tlp.to_string();
                if let Some(m) = m { let _ = m.to_string(); }
                if let Tlp::Mem(req) = tlp {
                    let _ = req.byte_len();
                    let _ = req.ur_completion(0);
                }
                if let Ok(again) = tlp.encode() {
                    prop_assert_eq!(decode_lenient(&again).map(|(t, _)| t), Ok(tlp));
                }
            }
            let _ = decode(&TlpWords::from_port(prefix, prefix_count, header));
            if let Ok(w) = TlpWords::from_dws(&stream) {
                let _ = decode(&w);
            }
        }

        /// Words with a plausible header: set Fmt/Type to MRd/MWr/Cpl/CplD, so decoding
        /// gets past the type check and exercises the field logic.
        #[test]
        fn random_plausible_headers(
            fmt_type in prop_oneof![Just(0x00u8), Just(0x20), Just(0x40), Just(0x60), Just(0x0a), Just(0x4a)],
            header in any::<[u32; 4]>(),
            prefixes in proptest::collection::vec(prop_oneof![any::<u32>().prop_map(|p| (p & 0x00ff_ffff) | 0x9100_0000), any::<u32>().prop_map(|p| (p & 0x1fff_ffff) | 0x8000_0000)], 0..=4),
        ) {
            let mut header = header;
            header[0] = (header[0] & 0x00fe_ffff) | (u32::from(fmt_type) << 24);
            let mut w = TlpWords::from_port([0; 4], 0, header);
            for p in prefixes { w.push_prefix(p).unwrap(); }
            let r = decode_lenient(&w);
            if fmt_type & 0x1f == 0 {
                let (tlp, _) = r.unwrap();
                prop_assert!(matches!(tlp, Tlp::Mem(_)));
            } else if w.prefix_count == 0 {
                let (tlp, m) = r.unwrap();
                prop_assert!(matches!(tlp, Tlp::Cpl(_)));
                prop_assert_eq!(m, None);
            }
        }
    }
}
