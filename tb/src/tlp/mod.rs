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
//! The checks of docs/contract.md section 3, in the order [`decode`] applies them (the first one that
//! fires is reported):
//!
//! 1. prefixes, in wire order: a prefix other than PASID ([`Malformed::UnknownPrefix`]),
//!    a second PASID prefix ([`Malformed::DuplicatePasidPrefix`]);
//! 2. a 4DW header whose address is below 4 GiB ([`Malformed::Addr64BelowFourGiB`]; PCIe
//!    requires the 3DW form there and leaves the Receiver's behaviour unspecified, this
//!    project treats it as malformed);
//! 3. AT = 11b, or AT = 01b on a write ([`Malformed::ReservedAt`]);
//! 4. byte enables ([`Malformed::BadByteEnables`], rules at [`byte_enables_valid`]);
//! 5. a 4 KiB boundary crossing ([`Malformed::CrossesPage`]).
//!
//! Checks 3-5 depend only on the header fields, so [`malformation`] reports them for a
//! [`MemRequest`] value; the wire-level ones (1-2) are produced by building the words with
//! [`TlpWords::push_prefix`] or [`encode_4dw`].

mod codec;
mod display;
#[cfg(test)]
mod tests;
mod types;

pub use codec::*;
pub use types::*;

/// Most end-to-end TLP prefixes a TLP may carry (PCIe) and the translation unit's port holds.
pub const MAX_PREFIXES: usize = 4;

/// Byte 0 of a PASID end-to-end TLP prefix: Fmt 100, Type 1_0001.
pub const PASID_PREFIX_BYTE0: u8 = 0x91;

/// Largest PASID value (20 bits).
pub const PASID_MAX: u32 = (1 << 20) - 1;

/// Largest 10-bit tag.
pub const TAG_MAX: u16 = (1 << 10) - 1;

pub(super) const FMT_PREFIX: u8 = 0b100;
pub(super) const TYPE_MEM: u8 = 0b0_0000;
pub(super) const TYPE_CPL: u8 = 0b0_1010;
pub(super) const FOUR_GIB: u64 = 1 << 32;
pub(super) const PAGE_SIZE: u64 = 4096;
