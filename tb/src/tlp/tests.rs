//! Round trips, hand-checked byte images and malformation rules of the codec.

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
    // A Translation Request is a read: on a write AT = 01b is malformed too.
    let wr = MemRequest {
        at: At::TranslationRequest,
        ..MemRequest::write(1, 0, 0x1000, 1)
    };
    assert_eq!(wr.malformation(), Some(Malformed::ReservedAt));
    assert_eq!(mal(&encode(&wr).unwrap()), Malformed::ReservedAt);
}

#[test]
fn translation_completion_is_a_cpld_of_one_entry() {
    let req = MemRequest {
        at: At::TranslationRequest,
        tc: 3,
        attr: 0b111,
        ..MemRequest::read(0x0180, 0x2a5, 0x1_2345_6000, 2)
    };
    let c = translation_completion(&req, 0);
    let w = encode_completion(&c).unwrap();
    // CplD, Length 2, TC and Attr[1:0] copied, T9/T8 of tag 0x2a5.
    assert_eq!(w.header[0] >> 24, 0b010_01010);
    assert_eq!(w.header[0] & 0x3FF, 2);
    assert_eq!((w.header[0] >> 20) & 7, 3);
    assert_eq!((w.header[0] >> 12) & 3, 0b11);
    assert_eq!((w.header[0] >> 18) & 1, 0);
    assert_eq!(((w.header[0] >> 23) & 1, (w.header[0] >> 19) & 1), (1, 0));
    // SC, Byte Count 8; Requester ID, tag, Lower Address 0.
    assert_eq!(w.header[1], 0x0000_0008);
    assert_eq!(w.header[2], 0x0180_a500);
    assert_eq!(decode(&w), Ok(Tlp::Cpl(c)));
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
    let mut cpl = encode_completion(&ur_completion(&MemRequest::default(), 0).unwrap()).unwrap();
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
        let mut req = MemRequest::covering(base.is_write, base.requester_id, base.tag, start, len)
            .expect("fits one page");
        req.tc = base.tc;
        req.attr = base.attr;
        req.td = base.td;
        req.ep = base.ep;
        req.ln = base.ln;
        req.pasid = base.pasid;
        req.at = match base.at {
            At::Reserved => At::Untranslated,
            // A Translation Request is a read.
            At::TranslationRequest if req.is_write => At::Translated,
            at => at,
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
