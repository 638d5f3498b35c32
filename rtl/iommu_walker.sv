// Translation walker: root entry -> scalable-mode context entry -> PASID directory entry ->
// PASID table entry, then the first-stage (IA-32e) or second-stage 4-level page walk, with
// every architected check in the order of docs/contract.md "Translation flow and check order"
// (the first fault wins). One memory read at a time through `mem_*`.
//
// Given a cached PASID-entry result (info_valid_i) it starts at the permission checks.
// ATS (docs/contract.md section 6.2): a Translation Request or a translated request whose
// context entry has DTE = 0 faults there (0x44); a translated request with DTE = 1 ends
// the walk at the context entry (it is forwarded untranslated and fills no cache).
// It reports the walk once (done_o, held until done_ack_i): a fault reason found on the
// way, with whether it is recorded (FPD clear on every present entry of the path so far),
// or the leaf (FrNone) with the PASID-entry result it used. The leaf's permission check is
// left to each request the walk serves (requests to one page with different access kinds
// share a walk), as is the fill decision.
//
// stale_o: an invalidation that may remove what this walk would cache took effect while
// the walk was in flight (or in the cycle it started). Every invalidation may, except a
// page-selective IOTLB one (type 2 or 6, granularity 3) whose range lies outside the
// 512 GiB region of the request's address: everything the walk can fill (a leaf of at most
// 1 GiB, non-leaf entries of at most 512 GiB, the PASID entry, which such an invalidation
// does not touch) lies inside that region. What it read may be older than the invalidation, so its results must not be
// cached (docs/contract.md section 4, rule 6); the requests it serves, all accepted before
// the invalidation's wait can complete, may still use them.
module iommu_walker
  import iommu_pkg::*;
(
  input  logic           clk_i,
  input  logic           rst_ni,

  input  logic           start_i,
  input  pfn_t           start_page_i, // the page of the request being started (start_i)
  input  mem_req_t       req_i,        // held stable from the cycle after start_i to done_ack_i
  input  pfn_t           root_i,       // RTADDR root-table pointer
  input  logic           info_valid_i, // a cached PASID-entry result for this request
  input  pasid_info_t    info_i,
  input  logic           psc_valid_i,  // with it, a cached non-leaf entry for the address:
  input  logic [2:0]     psc_level_i,  //   its level (2..4),
  input  pfn_t           psc_ptr_i,    //   the next table,
  input  acc_t           psc_acc_i,    //   the permissions down to it
  input  logic           inv_i,        // an invalidation takes effect this cycle
  input  inv_cmd_t       inv_cmd_i,
  output logic           busy_o,

  output logic           done_o,
  input  logic           done_ack_i,
  output fault_reason_e  fault_o,      // FrNone: leaf_o is the page's translation
  output logic           record_o,     // the fault is recorded (no FPD on the path)
  output logic           info_new_o,   // info_o comes from this walk (PASID cache fill)
  output pasid_info_t    info_o,
  output logic           leaf_new_o,   // leaf_o comes from a page walk (IOTLB fill)
  output leaf_t          leaf_o,
  output logic           stale_o,
  // The non-leaf paging entries this walk read (paging-structure cache fill), by level
  output logic [4:2]     nl_valid_o,
  output pfn_t [4:2]     nl_ptr_o,
  output acc_t [4:2]     nl_acc_o,

  // Memory reads
  output logic           mem_req_valid_o,
  input  logic           mem_req_ready_i,
  output logic [63:0]    mem_req_addr_o,
  input  logic           mem_rsp_valid_i,
  input  logic [63:0]    mem_rsp_rdata_i,
  input  logic           mem_rsp_error_i
);

  typedef enum logic [2:0] {
    SIdle, SRoot, SCtx, SPdir, SPte, SCheck, SWalk, SDone
  } state_e;

  // Reserved bits (VT-d; host address width 48). Cache-control and A/D-related fields are
  // accepted and ignored so that tables written by real drivers never fault on them.
  localparam logic [63:0] AboveHaw    = 64'hFFFF_0000_0000_0000;
  localparam logic [63:0] RootRsvd    = AboveHaw | 64'hFFE;
  localparam logic [63:0] CtxQw0Rsvd  = AboveHaw | 64'h1E0;
  localparam logic [63:0] CtxQw1Rsvd  = ~64'h1F_FFFF;
  localparam logic [63:0] PdirRsvd    = AboveHaw | 64'hFFC;
  localparam logic [63:0] PteQw0Rsvd  = 64'hC00;
  localparam logic [63:0] PteQw1Rsvd  = 64'h7F_0000;
  localparam logic [63:0] PteQw2Rsvd  = 64'hF00;
  localparam logic [63:0] PteAboveHaw = 64'h000F_0000_0000_0000;  // bits 51:48 of a PTE

  state_e        state_q;
  logic          waiting_q;        // a read is outstanding
  logic [2:0]    cnt_q;            // quadword within an entry
  logic [63:0]   qw0_q, qw1_q, qw2_q;
  logic          rest_nz_q;        // a reserved trailing quadword was non-zero
  pfn_t          ptr_q;            // next structure or table to read
  logic          rid_priv_q;
  logic          dte_q;
  logic          fpd_q;
  pasid_t        pasid_q;
  logic [2:0]    level_q;
  logic          acc_r_q, acc_w_q, acc_us_q, acc_xd_q;
  fault_reason_e fault_q;
  logic          record_q;
  logic          stale_q;
  logic          psc_q;            // start the page walk from the cached entry
  logic [2:0]    psc_level_q;
  pfn_t          psc_ptr_q;
  acc_t          psc_acc_q;
  logic [4:2]    nl_valid_q;
  pfn_t [4:2]    nl_ptr_q;
  acc_t [4:2]    nl_acc_q;
  logic          info_new_q;
  pasid_info_t   info_q;
  logic          leaf_new_q;
  leaf_t         leaf_q;

  // Whether the invalidation this cycle may touch what this walk would cache.
  logic inv_hits;
  always_comb begin
    pfn_t ignore;
    ignore   = '0;
    inv_hits = 1'b0;
    if (inv_i) begin  // (no work for the simulator in the other cycles)
      ignore = pfn_t'(64'h7FF_FFFF);  // page-number bits inside a 512 GiB region
      if (inv_cmd_i.am >= 6'd27) ignore = '1;
      else ignore |= pfn_t'((64'd1 << inv_cmd_i.am) - 64'd1);
      if (inv_cmd_i.kind inside {InvDidPage, InvDidPasidPage} && !inv_cmd_i.pcache) begin
        // In the cycle a walk starts, req_i still holds the slot's previous request.
        inv_hits = (((start_i ? start_page_i : req_i.addr[HawBits-1:12]) ^ inv_cmd_i.addr)
                    & ~ignore) == '0;
      end else begin
        inv_hits = 1'b1;
      end
    end
  end

  logic unused_inv;
  assign unused_inv = ^{inv_cmd_i.iotlb, inv_cmd_i.did, inv_cmd_i.pasid, inv_cmd_i.sid,
                        inv_cmd_i.sid_mask, inv_cmd_i.ih};

  logic [7:0] bus, devfn;
  assign bus   = req_i.rid[15:8];
  assign devfn = req_i.rid[7:0];

  // Address of the read the current state needs.
  always_comb begin
    logic [63:0] base;
    base = {{(64 - HawBits){1'b0}}, ptr_q, 12'h000};
    unique case (state_q)
      SRoot:   mem_req_addr_o = base + {52'h0, bus, 4'h0} + (devfn[7] ? 64'd8 : 64'd0);
      SCtx:    mem_req_addr_o = base + {52'h0, devfn[6:0], 5'h0} + {58'h0, cnt_q, 3'h0};
      SPdir:   mem_req_addr_o = base + {47'h0, pasid_q[19:6], 3'h0};
      SPte:    mem_req_addr_o = base + {52'h0, pasid_q[5:0], 6'h0} + {58'h0, cnt_q, 3'h0};
      SWalk:   mem_req_addr_o = base + {52'h0, walk_index(req_i.addr[47:12], level_q), 3'h0};
      default: mem_req_addr_o = base;
    endcase
  end

  function automatic logic [8:0] walk_index(input logic [47:12] a, input logic [2:0] level);
    unique case (level)
      3'd4:    return a[47:39];
      3'd3:    return a[38:30];
      3'd2:    return a[29:21];
      default: return a[20:12];
    endcase
  endfunction

  logic reading;
  assign reading         = state_q inside {SRoot, SCtx, SPdir, SPte, SWalk};
  assign mem_req_valid_o = reading && !waiting_q;
  assign busy_o          = state_q != SIdle;

  logic [63:0] e;
  logic        rsp, err;
  assign e   = mem_rsp_rdata_i;
  assign rsp = reading && waiting_q && mem_rsp_valid_i;
  assign err = mem_rsp_error_i;

  // The response and the quadwords read so far, as the structures they are. Reserved bits
  // are checked against the masks above on the raw quadwords.
  root_entry_t root;
  pdir_entry_t pdir;
  pte_t        pte;
  ctx_qw0_t    ctx0;
  ctx_qw1_t    ctx1;
  pasid_qw0_t  pe0;
  pasid_qw1_t  pe1;
  pasid_qw2_t  pe2;
  assign root = root_entry_t'(e);
  assign pdir = pdir_entry_t'(e);
  assign pte  = pte_t'(e);
  assign ctx0 = ctx_qw0_t'(qw0_q);
  assign ctx1 = ctx_qw1_t'(qw1_q);
  assign pe0  = pasid_qw0_t'(qw0_q);
  assign pe1  = pasid_qw1_t'(qw1_q);
  assign pe2  = pasid_qw2_t'(qw2_q);

  logic unused_views;
  assign unused_views = ^{root.rsvd, pdir.rsvd, pte.ign_hi, pte.ign_lo, pte.ign_attr,
                          ctx0.rsvd, ctx0.pre, ctx1.rsvd, pe0.rsvd, pe0.ssade,
                          pe0.ssee, pe1.ign, pe1.rsvd, pe2.rsvd, pe2.ign};

  // The state machine is one clocked process: each register is written where the step
  // that changes it is decided, and keeps its value otherwise. (Eight walkers run side by
  // side; a separate next-state block would copy every register of every walker in every
  // evaluation, which costs the simulator more than all the rest of a walker.)
  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      state_q     <= SIdle;
      waiting_q   <= 1'b0;
      cnt_q       <= '0;
      qw0_q       <= '0;
      qw1_q       <= '0;
      qw2_q       <= '0;
      rest_nz_q   <= 1'b0;
      ptr_q       <= '0;
      rid_priv_q  <= 1'b0;
      dte_q       <= 1'b0;
      fpd_q       <= 1'b0;
      pasid_q     <= '0;
      level_q     <= '0;
      acc_r_q     <= 1'b0;
      acc_w_q     <= 1'b0;
      acc_us_q    <= 1'b0;
      acc_xd_q    <= 1'b0;
      fault_q     <= FrNone;
      record_q    <= 1'b0;
      stale_q     <= 1'b0;
      psc_q       <= 1'b0;
      psc_level_q <= '0;
      psc_ptr_q   <= '0;
      psc_acc_q   <= '0;
      nl_valid_q  <= '0;
      nl_ptr_q    <= '0;
      nl_acc_q    <= '0;
      info_new_q  <= 1'b0;
      info_q      <= '0;
      leaf_new_q  <= 1'b0;
      leaf_q      <= '0;
    end else begin
      if (inv_hits) stale_q <= 1'b1;
      if (mem_req_valid_o && mem_req_ready_i) waiting_q <= 1'b1;
      if (rsp) waiting_q <= 1'b0;

      unique case (state_q)
        SIdle: begin
          if (start_i) begin
            stale_q     <= inv_hits;
            psc_q       <= info_valid_i && psc_valid_i;
            psc_level_q <= psc_level_i;
            psc_ptr_q   <= psc_ptr_i;
            psc_acc_q   <= psc_acc_i;
            nl_valid_q  <= '0;
            fault_q     <= FrNone;
            record_q    <= 1'b0;
            info_new_q  <= 1'b0;
            leaf_new_q  <= 1'b0;
            cnt_q       <= '0;
            rest_nz_q   <= 1'b0;
            if (info_valid_i) begin
              info_q  <= info_i;
              state_q <= SCheck;
            end else begin
              ptr_q   <= root_i;
              fpd_q   <= 1'b0;
              state_q <= SRoot;
            end
          end
        end

        SRoot: if (rsp) begin
          record_q <= 1'b1;
          if (err)                  {fault_q, state_q} <= {FrRootRead, SDone};
          else if (!root.p)         {fault_q, state_q} <= {FrRootNotPresent, SDone};
          else if ((e & RootRsvd) != '0) {fault_q, state_q} <= {FrRootReserved, SDone};
          else begin
            ptr_q   <= root.ctp[HawBits-1:12];
            state_q <= SCtx;
          end
        end

        SCtx: if (rsp) begin
          // Context-entry faults are recorded whatever the entry's FPD says.
          record_q <= 1'b1;
          unique case (cnt_q)
            3'd0:    qw0_q <= e;
            3'd1:    qw1_q <= e;
            default: rest_nz_q <= rest_nz_q | (e != '0);
          endcase
          cnt_q <= cnt_q + 3'd1;
          if (err) begin
            {fault_q, state_q} <= {FrCtxRead, SDone};
          end else if (cnt_q == 3'd3) begin
            pasid_t pasid;
            pasid = req_i.has_pasid ? req_i.pasid : ctx1.rid_pasid;
            cnt_q      <= '0;
            fpd_q      <= ctx0.fpd;
            rid_priv_q <= ctx1.rid_priv;
            dte_q      <= ctx0.dte;
            pasid_q    <= pasid;
            if (!ctx0.p) begin
              {fault_q, state_q} <= {FrCtxNotPresent, SDone};
            end else if ((qw0_q & CtxQw0Rsvd) != '0 || (qw1_q & CtxQw1Rsvd) != '0
                         || rest_nz_q || e != '0) begin
              {fault_q, state_q} <= {FrCtxReserved, SDone};
            end else begin
              record_q <= !ctx0.fpd;
              if (req_i.at != AtUntranslated && !ctx0.dte) begin
                {fault_q, state_q} <= {FrDteDisabled, SDone};
              end else if (req_i.at == AtTranslated) begin
                state_q <= SDone;
              end else if (req_i.has_pasid && !ctx0.paside) begin
                {fault_q, state_q} <= {FrPasidDisabled, SDone};
              end else if ({1'b0, pasid[19:6]} >= (15'd1 << (4'd7 + {1'b0, ctx0.pdts}))) begin
                {fault_q, state_q} <= {FrPasidTooLarge, SDone};
              end else begin
                ptr_q   <= ctx0.pdir[HawBits-1:12];
                state_q <= SPdir;
              end
            end
          end
        end

        SPdir: if (rsp) begin
          record_q <= !fpd_q;
          if (err)                       {fault_q, state_q} <= {FrPdirRead, SDone};
          else if (!pdir.p)              {fault_q, state_q} <= {FrPdirNotPresent, SDone};
          else if ((e & PdirRsvd) != '0) {fault_q, state_q} <= {FrPdirReserved, SDone};
          else begin
            fpd_q   <= fpd_q | pdir.fpd;
            ptr_q   <= pdir.pt[HawBits-1:12];
            state_q <= SPte;
          end
        end

        SPte: if (rsp) begin
          record_q <= !fpd_q;
          unique case (cnt_q)
            3'd0:    qw0_q <= e;
            3'd1:    qw1_q <= e;
            3'd2:    qw2_q <= e;
            default: rest_nz_q <= rest_nz_q | (e != '0);
          endcase
          cnt_q <= cnt_q + 3'd1;
          if (err) begin
            {fault_q, state_q} <= {FrPteRead, SDone};
          end else if (cnt_q == 3'd7) begin
            logic       pgtt_ok, ptr_rsvd;
            pgtt_e      pgtt;
            pgtt_ok  = 1'b1;
            unique case (pe0.pgtt)
              PgttEncFs: pgtt = PgttFs;
              PgttEncSs: pgtt = PgttSs;
              PgttEncPt: pgtt = PgttPt;
              default: begin
                pgtt    = PgttPt;
                pgtt_ok = 1'b0;
              end
            endcase
            ptr_rsvd = pgtt_ok && ((pgtt == PgttSs && pe0.ssptptr[63:HawBits] != '0)
                                   || (pgtt == PgttFs && pe2.fsptptr[63:HawBits] != '0));
            if (!pe0.p) begin
              {fault_q, state_q} <= {FrPteNotPresent, SDone};
            end else if ((qw0_q & PteQw0Rsvd) != '0 || (qw1_q & PteQw1Rsvd) != '0
                         || (qw2_q & PteQw2Rsvd) != '0 || rest_nz_q || e != '0 || ptr_rsvd) begin
              {fault_q, state_q} <= {FrPteReserved, SDone};
            end else begin
              fpd_q    <= fpd_q | pe0.fpd;
              record_q <= !(fpd_q | pe0.fpd);
              if (!pgtt_ok || (pgtt == PgttSs && pe0.aw != 3'b010)
                  || (pgtt == PgttFs && pe2.flpm != 2'b00)) begin
                {fault_q, state_q} <= {FrPgttInvalid, SDone};
              end else begin
                info_q <= '{
                  did:      pe1.did,
                  pgtt:     pgtt,
                  ptr:      (pgtt == PgttFs) ? pe2.fsptptr[HawBits-1:12]
                                             : pe0.ssptptr[HawBits-1:12],
                  sre:      pe2.sre,
                  ere:      pe2.ere,
                  fpd:      fpd_q | pe0.fpd,
                  dte:      dte_q,
                  rid_priv: rid_priv_q,
                  pasid:    pasid_q
                };
                info_new_q <= 1'b1;
                state_q    <= SCheck;
              end
            end
          end
        end

        SCheck: begin
          fault_reason_e f;
          record_q <= !info_q.fpd;
          f = entry_check(info_q, req_i);
          if (f == FrNone) f = addr_check(info_q.pgtt, req_i.addr);
          if (f != FrNone) begin
            {fault_q, state_q} <= {f, SDone};
          end else if (info_q.pgtt == PgttPt) begin
            leaf_q  <= '{pa: req_i.addr[HawBits-1:12], size: Size4K, r: 1'b1, w: 1'b1,
                         us: 1'b1, xd: 1'b0, g: 1'b0};
            state_q <= SDone;
          end else if (psc_q) begin
            // Resume below the cached non-leaf entry.
            ptr_q    <= psc_ptr_q;
            level_q  <= psc_level_q - 3'd1;
            acc_r_q  <= psc_acc_q.r;
            acc_w_q  <= psc_acc_q.w;
            acc_us_q <= psc_acc_q.us;
            acc_xd_q <= psc_acc_q.xd;
            state_q  <= SWalk;
          end else begin
            ptr_q    <= info_q.ptr;
            level_q  <= 3'd4;
            acc_r_q  <= 1'b1;
            acc_w_q  <= 1'b1;
            acc_us_q <= 1'b1;
            acc_xd_q <= 1'b0;
            state_q  <= SWalk;
          end
        end

        SWalk: if (rsp) begin
          logic        ss, ps, leaf;
          logic [63:0] low;
          ss   = info_q.pgtt == PgttSs;
          ps   = pte.ps;
          leaf = (level_q == 3'd1) || ps;
          // Frame bits below a superpage's size are reserved (first stage: bit 12 is PAT).
          unique case ({leaf, level_q})
            {1'b1, 3'd2}: low = ss ? 64'h1F_F000 : 64'h1F_E000;
            {1'b1, 3'd3}: low = ss ? 64'h3FFF_F000 : 64'h3FFF_E000;
            default:      low = '0;
          endcase
          if (err) begin
            {fault_q, state_q} <= {ss ? FrSsRead : FrFsRead, SDone};
          end else if (ss ? ({pte.w, pte.p_r} == 2'b00) : !pte.p_r) begin
            {fault_q, state_q} <= {ss ? FrSsNotPresent : FrFsNotPresent, SDone};
          end else if ((e & PteAboveHaw) != '0 || (ps && level_q == 3'd4) || (e & low) != '0) begin
            {fault_q, state_q} <= {ss ? FrSsReserved : FrFsReserved, SDone};
          end else begin
            logic r, w, us, xd;
            r  = acc_r_q & (ss ? pte.p_r : 1'b1);
            w  = acc_w_q & pte.w;
            us = acc_us_q & (ss ? 1'b1 : pte.us_x);
            xd = acc_xd_q | (ss ? 1'b0 : pte.xd);
            acc_r_q  <= r;
            acc_w_q  <= w;
            acc_us_q <= us;
            acc_xd_q <= xd;
            if (leaf) begin
              leaf_t l;
              l.size = (level_q == 3'd3) ? Size1G : (level_q == 3'd2) ? Size2M : Size4K;
              l.pa   = pte.addr[HawBits-1:12];
              if (level_q == 3'd3) l.pa[29:12] = '0;
              if (level_q == 3'd2) l.pa[20:12] = '0;
              l.r    = r;
              l.w    = w;
              l.us   = us;
              l.xd   = xd;
              l.g    = !ss && pte.g;
              leaf_q     <= l;
              leaf_new_q <= 1'b1;
              state_q    <= SDone;
            end else begin
              ptr_q   <= pte.addr[HawBits-1:12];
              level_q <= level_q - 3'd1;
              for (int unsigned lv = 2; lv <= 4; lv++) begin
                if (level_q == 3'(lv)) begin
                  nl_valid_q[lv] <= 1'b1;
                  nl_ptr_q[lv]   <= pte.addr[HawBits-1:12];
                  nl_acc_q[lv]   <= '{r: r, w: w, us: us, xd: xd};
                end
              end
            end
          end
        end

        SDone: if (done_ack_i) state_q <= SIdle;

        default: state_q <= SIdle;
      endcase
    end
  end

  assign done_o     = state_q == SDone;
  assign fault_o    = fault_q;
  assign record_o   = record_q;
  assign info_new_o = info_new_q && fault_q == FrNone;
  assign info_o     = info_q;
  assign leaf_new_o = leaf_new_q && fault_q == FrNone;
  assign leaf_o     = leaf_q;
  assign stale_o    = stale_q;
  assign nl_valid_o = nl_valid_q;
  assign nl_ptr_o   = nl_ptr_q;
  assign nl_acc_o   = nl_acc_q;

  // Started only when idle; acknowledged only when done.
  `ASSERT_NEVER(StartWhenIdle_A, start_i && busy_o)
  `ASSERT_NEVER(AckWhenDone_A, done_ack_i && !done_o)
  // A memory response only for the request outstanding.
  `ASSERT_NEVER(RspWithoutReq_A, mem_rsp_valid_i && !waiting_q)
  // A translation names a page size that exists.
  `ASSERT_NEVER(LeafSizeValid_A, done_o && fault_q == FrNone && leaf_q.size == 2'd3)

endmodule
