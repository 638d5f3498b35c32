// Shared types, register map and fault codes of the VT-d scalable-mode translation unit.
// Bit positions follow the Intel VT-d specification (scalable mode) and docs/contract.md section 2.
package iommu_pkg;

  // The package names the whole VT-d register map and the TLP field encodings, and each
  // module uses the constants of its own block, so some are unused in any one elaboration;
  // its functions take whole request and entry structs and each reads only the fields its
  // check needs.
  /* verilator lint_off UNUSEDPARAM */
  /* verilator lint_off UNUSEDSIGNAL */

  // ---------------------------------------------------------------------------------------
  // Widths
  // ---------------------------------------------------------------------------------------
  localparam int unsigned HawBits    = 48;  // host address width
  localparam int unsigned PasidBits  = 20;
  localparam int unsigned DidBits    = 16;
  localparam int unsigned CsrAddrBits = 12;  // one 4 KiB register page
  localparam int unsigned MemIdBits  = 4;   // memory-port request ID: up to 16 outstanding

  typedef logic [15:0]          rid_t;     // requester ID: bus[15:8] dev[7:3] fn[2:0]
  typedef logic [PasidBits-1:0] pasid_t;
  typedef logic [DidBits-1:0]   did_t;
  typedef logic [MemIdBits-1:0] mem_id_t;  // tags a memory request and its response

  // ---------------------------------------------------------------------------------------
  // Register offsets (bytes). 32-bit registers that share an 8-byte slot with another sit
  // in its upper half (GSTS, FSTS, ICS, FEDATA).
  // ---------------------------------------------------------------------------------------
  localparam logic [CsrAddrBits-1:0] RegVer    = 12'h000;
  localparam logic [CsrAddrBits-1:0] RegCap    = 12'h008;
  localparam logic [CsrAddrBits-1:0] RegEcap   = 12'h010;
  localparam logic [CsrAddrBits-1:0] RegGcmd   = 12'h018;
  localparam logic [CsrAddrBits-1:0] RegGsts   = 12'h01C;
  localparam logic [CsrAddrBits-1:0] RegRtaddr = 12'h020;
  localparam logic [CsrAddrBits-1:0] RegFsts   = 12'h034;
  localparam logic [CsrAddrBits-1:0] RegFectl  = 12'h038;
  localparam logic [CsrAddrBits-1:0] RegFedata = 12'h03C;
  localparam logic [CsrAddrBits-1:0] RegFeaddr = 12'h040;
  localparam logic [CsrAddrBits-1:0] RegFeuaddr = 12'h044;
  localparam logic [CsrAddrBits-1:0] RegIqh    = 12'h080;
  localparam logic [CsrAddrBits-1:0] RegIqt    = 12'h088;
  localparam logic [CsrAddrBits-1:0] RegIqa    = 12'h090;
  localparam logic [CsrAddrBits-1:0] RegIcs    = 12'h09C;
  localparam logic [CsrAddrBits-1:0] RegIectl  = 12'h0A0;
  localparam logic [CsrAddrBits-1:0] RegIedata = 12'h0A4;
  localparam logic [CsrAddrBits-1:0] RegIeaddr = 12'h0A8;
  localparam logic [CsrAddrBits-1:0] RegIeuaddr = 12'h0AC;
  localparam logic [CsrAddrBits-1:0] RegIqer   = 12'h0B0;
  // Fault recording registers: CAP.FRO * 16.
  localparam logic [CsrAddrBits-1:0] RegFrcd   = 12'h200;
  // Implementation-specific, read-only: count of malformed TLPs rejected at ingress.
  localparam logic [CsrAddrBits-1:0] RegMalformed = 12'h1F0;
  localparam logic [9:0]             CapFro    = 10'(RegFrcd >> 4);

  // VER: major 1, minor 0.
  localparam logic [31:0] VerValue = 32'h0000_0010;

  // GCMD / GSTS bit positions.
  localparam int unsigned GcmdTe   = 31;
  localparam int unsigned GcmdSrtp = 30;
  localparam int unsigned GcmdQie  = 26;

  // FSTS bit positions.
  localparam int unsigned FstsPfo = 0;
  localparam int unsigned FstsPpf = 1;
  localparam int unsigned FstsIqe = 4;
  localparam int unsigned FstsIte = 6;

  // RTADDR.TTM encodings.
  localparam logic [1:0] TtmLegacy   = 2'b00;
  localparam logic [1:0] TtmScalable = 2'b01;

  // ---------------------------------------------------------------------------------------
  // Scalable-mode fault reasons (VT-d 7.1.3, the subset of docs/contract.md section 2)
  // ---------------------------------------------------------------------------------------
  typedef enum logic [7:0] {
    FrNone          = 8'h00,  // not a fault: used as "no fault" inside the pipeline
    FrRtaddrInvalid = 8'h30,
    FrRootRead      = 8'h38,
    FrRootNotPresent = 8'h39,
    FrRootReserved  = 8'h3A,
    FrCtxRead       = 8'h40,
    FrCtxNotPresent = 8'h41,
    FrCtxReserved   = 8'h42,
    FrDteDisabled   = 8'h44,  // Translation Request or translated request with DTE = 0
    FrPasidDisabled = 8'h45,
    FrPasidTooLarge = 8'h46,
    FrPdirRead      = 8'h50,
    FrPdirNotPresent = 8'h51,
    FrPdirReserved  = 8'h52,
    FrPteRead       = 8'h58,
    FrPteNotPresent = 8'h59,
    FrPteReserved   = 8'h5A,
    FrPgttInvalid   = 8'h5B,
    FrErDisabled    = 8'h5C,
    FrPmrDisabled   = 8'h5D,
    FrFsRead        = 8'h70,
    FrFsNotPresent  = 8'h71,
    FrFsReserved    = 8'h72,
    FrSsRead        = 8'h78,
    FrSsNotPresent  = 8'h79,
    FrSsReserved    = 8'h7A,
    FrFsNonCanonical = 8'h80,
    FrFsUserAccess  = 8'h81,
    FrFsExecute     = 8'h82,
    FrPtAddrTooWide = 8'h83,
    FrSsAddrTooWide = 8'h84,
    FrWriteDenied   = 8'h85,
    FrReadDenied    = 8'h86
  } fault_reason_e;

  // ---------------------------------------------------------------------------------------
  // Capability registers: advertise exactly what the unit implements.
  // ---------------------------------------------------------------------------------------
  // CAP: ND=6 (16-bit DIDs), SAGAW bit2 (4-level), MGAW=47, FRO, SLLPS 2M+1G, PSI,
  // NFR (filled in by the top from its parameter), MAMV=18 (1 GiB), FL1GP.
  function automatic logic [63:0] cap_value(input int unsigned num_frcd);
    logic [63:0] cap;
    cap = '0;
    cap[2:0]   = 3'd6;          // ND
    cap[12:8]  = 5'b00100;      // SAGAW: 4-level (48-bit) second stage
    cap[21:16] = 6'd47;         // MGAW
    cap[33:24] = CapFro;        // FRO
    cap[37:34] = 4'b0011;       // SLLPS: 2 MiB and 1 GiB second-stage pages
    cap[39]    = 1'b1;          // PSI: page-selective invalidation
    cap[47:40] = 8'(num_frcd - 1);  // NFR
    cap[53:48] = 6'd18;         // MAMV
    cap[56]    = 1'b1;          // FL1GP: first-stage 1 GiB pages
    return cap;
  endfunction

  // ECAP: C, QI, DT, PT, ERS, SRS, PSS=19 (20-bit PASIDs), PASID, SMTS, SSTS, FSTS.
  localparam logic [63:0] EcapValue =
      (64'd1 << 0)  |  // C: page walks are coherent
      (64'd1 << 1)  |  // QI: queued invalidation
      (64'd1 << 2)  |  // DT: device TLBs: Translation Requests, translated requests, types 3 and 8
      (64'd1 << 6)  |  // PT: pass-through
      (64'd1 << 30) |  // ERS: execute requests
      (64'd1 << 31) |  // SRS: supervisor requests
      (64'd19 << 35) | // PSS: PASID size - 1
      (64'd1 << 40) |  // PASID
      (64'd1 << 43) |  // SMTS: scalable-mode translation
      (64'd1 << 46) |  // SSTS: second-stage translation
      (64'd1 << 47);   // FSTS: first-stage translation

  // ---------------------------------------------------------------------------------------
  // TLP fields (PCIe, non-flit mode; DW0 byte 0 in bits 31:24)
  // ---------------------------------------------------------------------------------------
  localparam logic [2:0] FmtNoData3Dw = 3'b000;
  localparam logic [2:0] FmtNoData4Dw = 3'b001;
  localparam logic [2:0] FmtData3Dw   = 3'b010;
  localparam logic [2:0] FmtData4Dw   = 3'b011;
  localparam logic [4:0] TypeMem      = 5'b00000;
  localparam logic [4:0] TypeCpl      = 5'b01010;
  localparam logic [7:0] PrefixPasid  = 8'h91;
  localparam logic [2:0] CplStatusSc  = 3'b000;
  localparam logic [2:0] CplStatusUr  = 3'b001;
  localparam logic [2:0] CplStatusCa  = 3'b100;
  localparam int unsigned MaxPrefixes = 4;
  // Messages routed by ID (Type 10010b) of ATS invalidation (PCIe 10.3).
  localparam logic [4:0] TypeMsgId    = 5'b10010;
  localparam logic [7:0] MsgInvReq    = 8'b0000_0001;
  localparam logic [7:0] MsgInvCpl    = 8'b0000_0010;

  // An Invalidate Completion to `dest`: 4 DW without data, Message Code 0000_0010b,
  // Device ID (DW2 31:16) = dest. DW1 31:16 is the device, DW2 2:0 the Completion Count,
  // DW3 the ITag vector.
  function automatic logic is_inv_cpl(input logic [3:0][31:0] hdr, input logic [15:0] dest);
    return hdr[0][31:29] == FmtNoData4Dw && hdr[0][28:24] == TypeMsgId
           && hdr[1][7:0] == MsgInvCpl && hdr[2][31:16] == dest;
  endfunction

  // Why a TLP was rejected at ingress (diagnostic; not a VT-d fault).
  typedef enum logic [2:0] {
    MalNone        = 3'd0,
    MalCrossesPage = 3'd1,  // crosses a 4 KiB boundary
    MalPrefix      = 3'd2,  // unknown prefix, or more than one PASID prefix
    MalAt          = 3'd3,  // AT = 11b
    MalByteEnables = 3'd4,  // byte enables inconsistent with Length
    MalAddr64      = 3'd5   // 4DW header with an address below 4 GiB
  } malformed_e;

  // Address Type of a memory request (DW0 bits 11:10; 11b is malformed).
  typedef enum logic [1:0] {
    AtUntranslated = 2'b00,
    AtTransReq     = 2'b01,     // ATS Translation Request (a read)
    AtTranslated   = 2'b10
  } at_e;

  // One decoded memory request, as the translation pipeline sees it.
  typedef struct packed {
    at_e           at;
    logic          write;       // MWr (posted) vs MRd (non-posted)
    logic          addr64;      // 4DW header on ingress
    logic [63:0]   addr;
    rid_t          rid;
    logic [7:0]    tag;
    logic          has_pasid;
    pasid_t        pasid;
    logic          pmr;         // privileged mode requested
    logic          er;          // execute requested
  } mem_req_t;

  // One primary fault record (FRCD, docs/contract.md section 2).
  typedef struct packed {
    logic [63:12]  addr;        // faulting page address
    rid_t          sid;         // source ID (requester ID)
    logic          priv;        // privileged mode requested
    logic          exe;         // execute requested
    logic          pp;          // PASID present
    fault_reason_e reason;
    pasid_t        pasid;
    logic          read;        // T: 1 = read request
  } fault_rec_t;

  // ---------------------------------------------------------------------------------------
  // Translation
  // ---------------------------------------------------------------------------------------
  typedef logic [HawBits-1:12] pfn_t;   // a 4 KiB page number below the host address width

  // Page-table type of a PASID entry (internal encoding of PGTT 001/010/100).
  typedef enum logic [1:0] {
    PgttFs = 2'd0,
    PgttSs = 2'd1,
    PgttPt = 2'd2
  } pgtt_e;

  typedef enum logic [1:0] {
    Size4K = 2'd0,
    Size2M = 2'd1,
    Size1G = 2'd2
  } pgsize_e;

  // What a walk of root -> context -> PASID directory -> PASID entry yields for one
  // {RID, PASID}: the content of the context/PASID-entry cache.
  typedef struct packed {
    did_t   did;
    pgtt_e  pgtt;
    pfn_t   ptr;       // second- or first-stage table, as PGTT says
    logic   sre;
    logic   ere;
    logic   fpd;       // FPD set on a present entry of the path
    logic   dte;       // context DTE: the device may use ATS
    logic   rid_priv;  // context RID_PRIV: the privilege of requests without PASID
    pasid_t pasid;     // the PASID used (RID_PASID for requests without one)
  } pasid_info_t;

  // A leaf translation: what the IOTLB holds besides its tag.
  typedef struct packed {
    pfn_t    pa;       // page frame, aligned to size
    pgsize_e size;
    logic    r;
    logic    w;
    logic    us;
    logic    xd;
    logic    g;        // first-stage leaf G (global): reported in a Translation Completion
  } leaf_t;

  // Permissions accumulated down a page walk (the walker's AND of R, W, U/S and OR of XD
  // over the entries read so far): what a paging-structure cache entry holds besides the
  // next table's address.
  typedef struct packed {
    logic r;
    logic w;
    logic us;
    logic xd;
  } acc_t;

  // Cache invalidation command from the invalidation queue, applied in one cycle.
  typedef enum logic [2:0] {
    InvAll          = 3'd0,
    InvDid          = 3'd1,
    InvDidPage      = 3'd2,  // IOTLB: DID and address range
    InvDidPasid     = 3'd3,
    InvDidPasidPage = 3'd4,  // IOTLB: DID, PASID and address range
    InvSid          = 3'd5   // context/PASID cache: source ID under a function mask
  } inv_kind_e;

  typedef struct packed {
    logic       iotlb;     // applies to the IOTLB
    logic       pcache;    // applies to the context/PASID-entry cache
    inv_kind_e  kind;
    did_t       did;
    pasid_t     pasid;
    rid_t       sid;
    logic [2:0] sid_mask;  // low SID bits ignored (function mask)
    pfn_t       addr;
    logic [5:0] am;        // address mask: 2^am pages
    logic       ih;        // invalidation hint of a page-selective IOTLB invalidation: the
                           // paging-structure caches keep their entries (leaves still go)
  } inv_cmd_t;

  // ---------------------------------------------------------------------------------------
  // Translation structures in memory (VT-d scalable mode; host address width 48). Bits above
  // the host address width inside an address field are reserved; the walker's reserved-bit
  // masks say which other bits are. Fields named `ign` are accepted and ignored (cache
  // control, A/D and attribute bits), so tables written by real drivers never fault on them.
  // ---------------------------------------------------------------------------------------

  // Scalable-mode root entry, the half (lower or upper) that covers the device number.
  typedef struct packed {
    logic [63:12] ctp;       // context-table pointer
    logic [11:1]  rsvd;
    logic         p;
  } root_entry_t;

  // Scalable-mode context entry, quadwords 0 and 1 (2 and 3 are reserved).
  typedef struct packed {
    logic [63:12] pdir;      // PASID directory pointer
    logic [2:0]   pdts;      // PASID directory size: 2^(pdts + 7) entries
    logic [3:0]   rsvd;      // 8:5
    logic         pre;       // page requests (not offered; ignored)
    logic         paside;    // requests with a PASID prefix are allowed
    logic         dte;       // device-TLB enable: the device may use ATS
    logic         fpd;       // fault processing disable
    logic         p;
  } ctx_qw0_t;

  typedef struct packed {
    logic [63:21] rsvd;
    logic         rid_priv;  // privilege of requests without a PASID
    pasid_t       rid_pasid; // PASID of requests without a PASID
  } ctx_qw1_t;

  // PASID directory entry.
  typedef struct packed {
    logic [63:12] pt;        // PASID table pointer
    logic [11:2]  rsvd;
    logic         fpd;
    logic         p;
  } pdir_entry_t;

  // PGTT encodings of a PASID entry.
  typedef enum logic [2:0] {
    PgttEncFs = 3'b001,      // first stage only
    PgttEncSs = 3'b010,      // second stage only
    PgttEncPt = 3'b100       // pass-through
  } pgtt_enc_e;

  // Scalable-mode PASID table entry, quadwords 0..2 (3..7 are reserved).
  typedef struct packed {
    logic [63:12] ssptptr;   // second-stage table pointer
    logic [1:0]   rsvd;      // 11:10
    logic         ssade;     // second-stage A/D enable (ignored)
    pgtt_enc_e    pgtt;
    logic         ssee;      // second-stage execute enable (ignored)
    logic [2:0]   aw;        // second-stage address width: 3'b010 = 4-level, 48 bits
    logic         fpd;
    logic         p;
  } pasid_qw0_t;

  typedef struct packed {
    logic [63:23] ign;       // cache control and attributes
    logic [22:16] rsvd;
    did_t         did;
  } pasid_qw1_t;

  typedef struct packed {
    logic [63:12] fsptptr;   // first-stage table pointer
    logic [11:8]  rsvd;
    logic [7:4]   ign;       // first-stage controls (WPE, NXE, SMEP, EAFE)
    logic [1:0]   flpm;      // first-stage paging mode: 2'b00 = 4-level
    logic         ere;       // execute requests enable
    logic         sre;       // supervisor requests enable
  } pasid_qw2_t;

  // A paging-structure entry of either stage. Flag names are first stage / second stage.
  typedef struct packed {
    logic         xd;        // 63: execute disable (first stage)
    logic [62:52] ign_hi;
    logic [51:12] addr;      // next table or page frame
    logic [11:9]  ign_lo;
    logic         g;         // 8: global (first-stage leaf; reported to ATS, not checked)
    logic         ps;        // 7: page size (a leaf above level 1)
    logic [6:3]   ign_attr;  // accessed, dirty, cache attributes
    logic         us_x;      // 2: user/supervisor / execute
    logic         w;         // 1: read/write / write
    logic         p_r;       // 0: present / read
  } pte_t;

  // Invalidation descriptor types (256-bit descriptors, VT-d 6.5.2).
  typedef enum logic [3:0] {
    DescCc     = 4'd1,       // context-cache
    DescIotlb  = 4'd2,       // IOTLB
    DescDevTlb = 4'd3,       // device-TLB
    DescWait   = 4'd5,       // invalidation wait
    DescPiotlb = 4'd6,       // PASID-based IOTLB
    DescPc     = 4'd7,       // PASID-cache
    DescPdtlb  = 4'd8        // PASID-based device-TLB
  } desc_type_e;

  // The low 12 bits of quadword 0, common to every descriptor.
  typedef struct packed {
    logic [2:0]   type_hi;   // 11:9: type bits 6:4 (no type above 15 is offered)
    logic [2:0]   ctl;       // 8:6: IOTLB: DR, DW; wait: FN
    logic [1:0]   gran;      // granularity; wait: SW (5), IF (4)
    desc_type_e   typ;
  } desc_hdr_t;

  // Bits 51:32 of a context-cache invalidation.
  typedef struct packed {
    logic [1:0]   rsvd;
    logic [1:0]   fm;        // function mask: low SID bits ignored
    rid_t         sid;       // source ID
  } desc_cc_src_t;

  typedef union packed {
    pasid_t       pasid;     // types 6, 7
    desc_cc_src_t cc;        // type 1
  } desc_src_u;

  // Quadword 0 of a cache invalidation (types 1, 2, 6, 7).
  typedef struct packed {
    logic [63:52] rsvd_hi;
    desc_src_u    src;
    did_t         did;
    logic [15:12] rsvd_lo;
    desc_hdr_t    hdr;
  } desc_inv_qw0_t;

  // Quadword 0 of a wait descriptor.
  typedef struct packed {
    logic [31:0]  stat_data; // written to the status address (SW)
    logic [31:12] rsvd;
    logic [2:0]   type_hi;
    logic [1:0]   rsvd_lo;   // 8:7
    logic         fn;        // fence (accepted: descriptors complete in order anyway)
    logic         sw;        // status write
    logic         iflag;     // IF: set ICS.IWC
    desc_type_e   typ;
  } desc_wait_qw0_t;

  // Quadword 1 of a page-selective IOTLB invalidation (types 2, 6).
  typedef struct packed {
    logic [63:12] addr;
    logic [11:7]  rsvd;
    logic         ih;        // invalidation hint: paging-structure entries may stay
    logic [5:0]   am;        // address mask: 2^am pages
  } desc_addr_qw1_t;

  // Quadword 1 of a wait descriptor.
  typedef struct packed {
    logic [63:3]  stat_addr; // status address (a DW: bit 2 selects the half of the QW)
    logic         stat_hi;   // 2
    logic [1:0]   rsvd;
  } desc_wait_qw1_t;

  // Quadword 1 of a primary fault recording register as software reads it.
  typedef struct packed {
    logic          f;        // 63: fault (RW1C)
    logic          read;     // 62: T, 1 = read request
    logic [61:60]  at;       // address type: untranslated
    pasid_t        pasid;    // 59:40
    fault_reason_e reason;   // 39:32
    logic          pp;       // 31: PASID present
    logic          exe;      // 30
    logic          priv;     // 29
    logic [28:16]  rsvd;
    rid_t          sid;      // 15:0
  } frcd_qw1_t;

  // IQER.IQEI: why the invalidation queue stopped.
  localparam logic [3:0] IqeiTail     = 4'd1;  // IQT invalid (bit 4 with 256-bit descriptors, or beyond the queue)
  localparam logic [3:0] IqeiFetch    = 4'd2;  // memory error fetching a descriptor
  localparam logic [3:0] IqeiType     = 4'd3;  // unknown descriptor type
  localparam logic [3:0] IqeiReserved = 4'd4;  // reserved field set or granularity not supported
  localparam logic [3:0] IqeiWidth    = 4'd6;  // IQA.DW = 0: 128-bit descriptors are not supported

  // Effective privilege of a request: from the prefix, else the context entry's RID_PRIV.
  function automatic logic eff_pmr(input pasid_info_t p, input mem_req_t r);
    return r.has_pasid ? r.pmr : p.rid_priv;
  endfunction
  function automatic logic eff_er(input mem_req_t r);
    return r.has_pasid & r.er;
  endfunction

  // Step 7 of the check order: ER without ERE, then PMR without SRE.
  function automatic fault_reason_e entry_check(input pasid_info_t p, input mem_req_t r);
    if (eff_er(r) && !p.ere) return FrErDisabled;
    if (eff_pmr(p, r) && !p.sre) return FrPmrDisabled;
    return FrNone;
  endfunction

  // Step 8, before any walk: the address must fit the translation type.
  function automatic fault_reason_e addr_check(input pgtt_e pgtt, input logic [63:0] a);
    unique case (pgtt)
      PgttPt:  return (a[63:HawBits] != '0) ? FrPtAddrTooWide : FrNone;
      PgttSs:  return (a[63:HawBits] != '0) ? FrSsAddrTooWide : FrNone;
      default: return (a[63:47] != '0 && a[63:47] != '1) ? FrFsNonCanonical : FrNone;
    endcase
  endfunction

  // Step 8, after the walk: permissions of the leaf for this request.
  function automatic fault_reason_e leaf_check(input pgtt_e pgtt, input leaf_t l,
                                               input logic write, input logic pmr,
                                               input logic er);
    unique case (pgtt)
      PgttSs: begin
        if (!write && !l.r) return FrReadDenied;
        if (write && !l.w) return FrWriteDenied;
      end
      PgttFs: begin
        if (!pmr && !l.us) return FrFsUserAccess;
        if (write && !l.w) return FrWriteDenied;
        if (er && l.xd) return FrFsExecute;
      end
      default: ;
    endcase
    return FrNone;
  endfunction

  // Physical address of `a` through leaf `l`.
  function automatic logic [63:0] leaf_pa(input leaf_t l, input logic [63:0] a);
    logic [63:0] pa;
    pa = {{(64 - HawBits){1'b0}}, l.pa, a[11:0]};
    if (l.size != Size4K) pa[20:12] = a[20:12];
    if (l.size == Size1G) pa[29:21] = a[29:21];
    return pa;
  endfunction

  // ---------------------------------------------------------------------------------------
  // PCIe ordering at the translated-request port (docs/contract.md section 4, rule 2)
  // ---------------------------------------------------------------------------------------

  // What the ordering rules look at in a memory request.
  typedef struct packed {
    logic       posted;  // MWr (else MRd)
    logic [2:0] tc;      // DW0 22:20
    logic       ro;      // Attr[1], DW0 13
    logic       ido;     // Attr[2], DW0 18
    rid_t       rid;
  } order_t;

  function automatic order_t order_of(input logic [31:0] dw0, input logic posted, input rid_t rid);
    return '{posted: posted, tc: dw0[22:20], ro: dw0[13], ido: dw0[18], rid: rid};
  endfunction

  // Whether memory request `later` may leave on the translated-request port before
  // `earlier`: always across traffic classes and past a read; past a posted write only a
  // posted write with RO, or a request with IDO from another requester.
  function automatic logic may_pass(input order_t later, input order_t earlier);
    if (later.tc != earlier.tc || !earlier.posted) return 1'b1;
    if (later.posted && later.ro) return 1'b1;
    return later.ido && later.rid != earlier.rid;
  endfunction

  // A finished walk, as the requests it serves see it.
  typedef struct packed {
    fault_reason_e fault;   // a fault found by the walk (FrNone: leaf holds the page)
    logic          record;  // that fault is recorded
    pasid_info_t   info;
    leaf_t         leaf;
  } walk_res_t;

  // The outcome of one request: a walk's fault, else the leaf's check for this request.
  // A Translation Request is not checked against an access kind: its only leaf-level fault
  // is a user request to a supervisor first-stage page, and a leaf-level fault is answered
  // with R = W = 0 and never recorded (`ats_status`).
  typedef struct packed {
    fault_reason_e    fault;
    logic             record;
    logic [63:0]      pa;
    logic [1:0][31:0] ats;   // a Translation Request's completion data entry (ats_entry)
  } outcome_t;

  // Completion Status of the answer to a Translation Request that found `f` (docs/contract.md
  // section 6.2): a memory error reading any structure gives CA, any other fault before
  // the page walk (root, context incl. DTE = 0, PASID directory and entry, ER/PMR) UR; a
  // fault of the address check or the page walk gives a successful completion with
  // R = W = 0, and so does no fault at all (with the translation).
  function automatic logic [2:0] ats_status(input fault_reason_e f);
    unique case (f)
      FrRootRead, FrCtxRead, FrPdirRead, FrPteRead, FrFsRead, FrSsRead: return CplStatusCa;
      FrFsNotPresent, FrFsReserved, FrSsNotPresent, FrSsReserved, FrFsNonCanonical,
      FrFsUserAccess, FrFsExecute, FrPtAddrTooWide, FrSsAddrTooWide, FrWriteDenied,
      FrReadDenied, FrNone: return CplStatusSc;
      default: return CplStatusUr;
    endcase
  endfunction

  // The leaf-level check of a Translation Request: a user request to a first-stage page
  // whose U/S is 0 on the path gets no access.
  function automatic fault_reason_e ats_leaf_check(input pgtt_e pgtt, input leaf_t l,
                                                   input logic pmr);
    return (pgtt == PgttFs && !pmr && !l.us) ? FrFsUserAccess : FrNone;
  endfunction

  // The 8-byte Translation Completion data entry (PCIe ATS), DW0 first on the wire:
  // DW0 = translated address 63:32; DW1 = translated address 31:12, S 11, N 10, Global 5,
  // Priv 4, Exe 3, U 2, W 1, R 0. With S = 1 the lowest 0 bit of the address above bit 12
  // gives the size (2 MiB: bits 19:12 set; 1 GiB: bits 28:12 set). `f` is the request's
  // fault: any fault (a successful completion only for those of the page walk) gives the
  // all-zero entry, R = W = 0.
  function automatic logic [1:0][31:0] ats_entry(input pasid_info_t p, input leaf_t l,
                                                 input mem_req_t r, input fault_reason_e f);
    logic [63:0] a;
    logic        s, rd, wr, exe;
    a   = {r.addr[63:12], 12'h000};
    s   = 1'b0;
    rd  = 1'b1;
    wr  = 1'b1;
    exe = eff_er(r);
    if (p.pgtt != PgttPt) begin
      a = {{(64 - HawBits){1'b0}}, l.pa, 12'h000};
      unique case (l.size)
        Size2M:  begin a[19:12] = '1; s = 1'b1; end
        Size1G:  begin a[28:12] = '1; s = 1'b1; end
        default: ;
      endcase
      rd  = (p.pgtt == PgttSs) ? l.r : 1'b1;
      wr  = l.w;
      exe = eff_er(r) && !(p.pgtt == PgttFs && l.xd);
    end
    if (f != FrNone) return '0;
    // Element [1] is the upper half of the concatenation: DW1, then DW0 in [0].
    return {a[31:12], s, 1'b0, 4'b0000, r.has_pasid && p.pgtt == PgttFs && l.g,
            r.has_pasid && r.pmr, exe,
            1'b0, wr, rd, a[63:32]};
  endfunction

  function automatic outcome_t walk_outcome(input walk_res_t w, input mem_req_t r);
    outcome_t o;
    o.pa = leaf_pa(w.leaf, r.addr);
    if (w.fault != FrNone) begin
      o.fault  = w.fault;
      o.record = w.record;
    end else if (r.at == AtTranslated) begin
      // The walk stopped at a context entry with DTE = 1: forwarded unchanged.
      o.fault  = FrNone;
      o.record = 1'b0;
      o.pa     = r.addr;
    end else if (r.at == AtTransReq) begin
      o.fault  = ats_leaf_check(w.info.pgtt, w.leaf, eff_pmr(w.info, r));
      o.record = !w.info.fpd;
    end else begin
      o.fault  = leaf_check(w.info.pgtt, w.leaf, r.write, eff_pmr(w.info, r), eff_er(r));
      o.record = !w.info.fpd;
    end
    // A Translation Request's page-level fault is answered, not recorded.
    if (r.at == AtTransReq && ats_status(o.fault) == CplStatusSc) o.record = 1'b0;
    o.ats = (r.at == AtTransReq) ? ats_entry(w.info, w.leaf, r, o.fault) : '0;
    return o;
  endfunction

  /* verilator lint_on UNUSEDSIGNAL */
  /* verilator lint_on UNUSEDPARAM */
endpackage
