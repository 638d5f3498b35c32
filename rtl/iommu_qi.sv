// Queued invalidation (VT-d 6.5.2): fetches 256-bit descriptors from the queue at IQA
// between IQH and IQT and executes them in order.
//
//   1 context-cache, 2 IOTLB, 6 PASID-based IOTLB, 7 PASID-cache: one cache command,
//     applied in one cycle while translations and walks go on; a walk in flight then is
//     stale and fills no cache (iommu_walker), so none can install an entry the
//     invalidation removed.
//   3 device-TLB, 8 PASID-based device-TLB: handed to the ATS invalidation tracker
//     (iommu_ats_inv), which sends the Invalidate Request (a PASID prefix for type 8) and
//     tracks its ITag; the queue goes on at once.
//   5 wait: completes after every earlier descriptor (they are executed strictly in order),
//     after every Invalidate Request sent for them has been answered (ats_busy_i low; the
//     Invalidate Completions come in on rx, which stays open until then) and after the
//     pipeline has drained (quiesce_o stops new requests meanwhile), so no
//     TLP translated before it leaves after it, and no walk begun before it is still
//     running; then the status write (SW) and/or ICS.IWC (IF).
//
// Invalidation time-out (FSTS.ITE, VT-d 6.5.2 and the ITE description; docs/contract.md
// 6.5): while FSTS.ITE is set the queue fetches nothing, and a wait that is pending then
// is aborted: IQH moves past it with no status write and no IWC. Fetching resumes when
// software clears FSTS.ITE (Linux `qi_check_fault()` clears it and resubmits the batch
// whose wait was aborted).
//
// A descriptor with an unknown type, a granularity this unit does not offer, or a reserved
// bit set, a memory error while fetching, or an invalid IQT sets FSTS.IQE with the reason in
// IQER.IQEI and stops the queue with IQH at the offending descriptor; it resumes when
// software clears FSTS.IQE.
module iommu_qi
  import iommu_pkg::*;
(
  input  logic                clk_i,
  input  logic                rst_ni,

  input  logic                qie_i,        // GSTS.QIES
  input  logic [HawBits-1:12] iqa_base_i,
  input  logic                iqa_dw_i,
  input  logic [2:0]          iqa_qs_i,
  input  logic [18:4]         iqt_i,
  input  logic                iqe_pending_i, // FSTS.IQE: the queue stays stopped while set
  output logic [18:4]         iqh_o,
  output logic                idle_o,

  output logic                iqe_set_o,
  output logic [3:0]          iqei_o,
  output logic                iwc_set_o,
  input  logic                ite_pending_i, // FSTS.ITE: fetch nothing, abort a pending wait

  // Device-TLB invalidations (types 3 and 8) to the ATS invalidation tracker
  output logic                ats_req_valid_o,
  input  logic                ats_req_ready_i,
  output logic [15:0]         ats_req_sid_o,
  output logic                ats_req_pasid_valid_o,
  output logic [19:0]         ats_req_pasid_o,
  output logic                ats_req_global_o,
  output logic                ats_req_size_o,
  output logic [63:12]        ats_req_addr_o,
  input  logic                ats_busy_i,

  // Quiesce handshake with the translation pipeline
  output logic                quiesce_o,
  input  logic                xlate_idle_i,

  // Cache invalidation (one cycle)
  output logic                inv_o,
  output inv_cmd_t            inv_cmd_o,

  // Memory: descriptor fetches and status writes
  output logic                mem_req_valid_o,
  input  logic                mem_req_ready_i,
  output logic                mem_req_write_o,
  output logic [63:0]         mem_req_addr_o,
  output logic [63:0]         mem_req_wdata_o,
  output logic [7:0]          mem_req_wstrb_o,
  input  logic                mem_rsp_valid_i,
  input  logic [63:0]         mem_rsp_rdata_i,
  input  logic                mem_rsp_error_i
);

  typedef enum logic [2:0] { SIdle, SFetch, SDecode, SDrain, SStatus, SError } state_e;

  state_e              state_q, state_d;
  logic                waiting_q, waiting_d;
  logic [1:0]          cnt_q, cnt_d;
  logic [13:0]         head_q, head_d;    // descriptor index (256-bit descriptors)
  logic [63:0]         qw0_q, qw0_d, qw1_q, qw1_d;
  logic                rest_nz_q, rest_nz_d;
  logic                status_sent_q;

  // Queue length in 256-bit descriptors: 2^(QS+12) bytes / 32.
  logic [14:0] entries;
  assign entries = 15'd1 << (4'd7 + {1'b0, iqa_qs_i});

  logic [13:0] tail;
  assign tail = iqt_i[18:5];

  logic tail_bad;
  assign tail_bad = iqt_i[4] || ({1'b0, tail} >= entries);

  // ---------------------------------------------------------------------------------------
  // Descriptor decode (fields as docs/contract.md and VT-d 6.5.2)
  // ---------------------------------------------------------------------------------------
  // Views of the two quadwords that matter (2 and 3 are reserved in every type).
  desc_inv_qw0_t  inv_qw0;
  desc_wait_qw0_t wait_qw0;
  desc_addr_qw1_t addr_qw1;
  desc_wait_qw1_t wait_qw1;
  assign inv_qw0  = desc_inv_qw0_t'(qw0_q);
  assign wait_qw0 = desc_wait_qw0_t'(qw0_q);
  assign addr_qw1 = desc_addr_qw1_t'(qw1_q);
  assign wait_qw1 = desc_wait_qw1_t'(qw1_q);

  // Reserved fields are checked through the masks below; the views read the others.
  logic unused_views;
  assign unused_views = ^{inv_qw0.rsvd_hi, inv_qw0.rsvd_lo, wait_qw0.rsvd, wait_qw0.type_hi,
                          wait_qw0.rsvd_lo, wait_qw0.fn, wait_qw0.typ, addr_qw1.rsvd,
                          wait_qw1.rsvd};

  desc_type_e typ;
  logic [1:0] gran;
  assign typ  = inv_qw0.hdr.typ;
  assign gran = inv_qw0.hdr.gran;

  function automatic logic [63:0] bits(input int unsigned hi, input int unsigned lo);
    return (64'hFFFF_FFFF_FFFF_FFFF >> (63 - hi)) & ~((64'd1 << lo) - 64'd1);
  endfunction

  logic       dec_type_bad, dec_rsvd_bad, dec_is_wait, dec_is_devtlb;
  inv_cmd_t   dec_cmd;
  always_comb begin
    dec_type_bad = !(typ inside {DescCc, DescIotlb, DescDevTlb, DescWait, DescPiotlb, DescPc,
                                 DescPdtlb})
                   || inv_qw0.hdr.type_hi != 3'b000;
    dec_rsvd_bad = rest_nz_q;
    dec_is_wait  = typ == DescWait;
    dec_is_devtlb = typ inside {DescDevTlb, DescPdtlb};
    dec_cmd      = '{
      iotlb:    1'b0,
      pcache:   1'b0,
      kind:     InvAll,
      did:      inv_qw0.did,
      pasid:    inv_qw0.src.pasid,
      sid:      inv_qw0.src.cc.sid,
      sid_mask: '0,
      addr:     addr_qw1.addr[HawBits-1:12],
      am:       addr_qw1.am,
      ih:       1'b0
    };
    unique case (typ)
      DescCc: begin  // context-cache: 1 global, 2 domain, 3 device (SID, FM)
        dec_cmd.pcache = 1'b1;
        unique case (inv_qw0.src.cc.fm)
          2'd0:    dec_cmd.sid_mask = 3'b000;
          2'd1:    dec_cmd.sid_mask = 3'b100;
          2'd2:    dec_cmd.sid_mask = 3'b110;
          default: dec_cmd.sid_mask = 3'b111;
        endcase
        dec_cmd.kind = (gran == 2'd3) ? InvSid : InvAll;
        if (gran == 2'd0) dec_rsvd_bad = 1'b1;
        if ((qw0_q & ~(bits(5, 0) | bits(49, 16))) != '0 || qw1_q != '0) dec_rsvd_bad = 1'b1;
      end
      DescIotlb: begin  // IOTLB: 1 global, 2 domain, 3 page-selective (DR/DW hints accepted)
        dec_cmd.iotlb = 1'b1;
        unique case (gran)
          2'd1:    dec_cmd.kind = InvAll;
          2'd2:    dec_cmd.kind = InvDid;
          default: dec_cmd.kind = InvDidPage;
        endcase
        dec_cmd.ih = gran == 2'd3 && addr_qw1.ih;  // IH: page-selective only
        if (gran == 2'd0) dec_rsvd_bad = 1'b1;
        if ((qw0_q & ~(bits(7, 0) | bits(31, 16))) != '0
            || (qw1_q & ~(bits(6, 0) | bits(63, 12))) != '0) dec_rsvd_bad = 1'b1;
      end
      DescWait: begin  // wait
        if ((qw0_q & ~(bits(6, 0) | bits(63, 32))) != '0 || qw1_q[1:0] != 2'b00) begin
          dec_rsvd_bad = 1'b1;
        end
      end
      DescPiotlb: begin  // PASID-based IOTLB: 2 PASID-selective, 3 page-selective within PASID
        dec_cmd.iotlb = 1'b1;
        dec_cmd.kind  = (gran == 2'd3) ? InvDidPasidPage : InvDidPasid;
        dec_cmd.ih    = gran == 2'd3 && addr_qw1.ih;  // IH: page-selective only
        if (gran inside {2'd0, 2'd1}) dec_rsvd_bad = 1'b1;
        if ((qw0_q & ~(bits(5, 0) | bits(51, 16))) != '0
            || (qw1_q & ~(bits(6, 0) | bits(63, 12))) != '0) dec_rsvd_bad = 1'b1;
      end
      DescDevTlb: begin  // device-TLB: PFSID, MIP/QDEP and SID in QW0; S and ADDR in QW1
        if ((qw0_q & ~(bits(3, 0) | bits(20, 12) | bits(47, 32) | bits(63, 52))) != '0
            || (qw1_q & ~(bits(0, 0) | bits(63, 12))) != '0) dec_rsvd_bad = 1'b1;
      end
      DescPdtlb: begin  // PASID-based device-TLB: QDEP, PFSID, SID, PASID; G, S and ADDR
        if ((qw0_q & ~(bits(8, 0) | bits(51, 12) | bits(63, 52))) != '0
            || (qw1_q & ~(bits(0, 0) | bits(11, 11) | bits(63, 12))) != '0) begin
          dec_rsvd_bad = 1'b1;
        end
      end
      DescPc: begin  // PASID-cache: 0 DID, 1 DID+PASID, 3 global
        dec_cmd.pcache = 1'b1;
        unique case (gran)
          2'd0:    dec_cmd.kind = InvDid;
          2'd1:    dec_cmd.kind = InvDidPasid;
          default: dec_cmd.kind = InvAll;
        endcase
        if (gran == 2'd2) dec_rsvd_bad = 1'b1;
        if ((qw0_q & ~(bits(5, 0) | bits(51, 16))) != '0 || qw1_q != '0) dec_rsvd_bad = 1'b1;
      end
      default: ;
    endcase
  end

  // ---------------------------------------------------------------------------------------
  // Sequencing
  // ---------------------------------------------------------------------------------------
  logic reading, rsp;
  assign reading = state_q == SFetch;
  assign rsp     = waiting_q && mem_rsp_valid_i;

  // A cache invalidation executes in SDrain (see there). Decided from the registers alone,
  // apart from the block below that also reads the memory response: everything the
  // invalidation reaches (every cache's match, every walker) then depends on no input, and
  // the simulator evaluates it once per cycle instead of again for each input change.
  assign inv_o = state_q == SDrain && !dec_is_devtlb && !dec_is_wait;

  always_comb begin
    state_d   = state_q;
    waiting_d = waiting_q;
    cnt_d     = cnt_q;
    head_d    = head_q;
    qw0_d     = qw0_q;
    qw1_d     = qw1_q;
    rest_nz_d = rest_nz_q;
    iqe_set_o = 1'b0;
    iqei_o    = '0;
    iwc_set_o = 1'b0;

    if (mem_req_valid_o && mem_req_ready_i) waiting_d = 1'b1;
    if (rsp) waiting_d = 1'b0;

    unique case (state_q)
      SIdle: begin
        // An invalid tail (bit 4 set with 256-bit descriptors) is an error even when its
        // index equals the head: VT-d treats IQT[4] as reserved then, and docs/contract.md
        // section 2.4 lists "bit 4 set" as IQEI 1 whatever the index.
        if (qie_i && !iqe_pending_i && !ite_pending_i
            && (head_q != tail || (iqa_dw_i && iqt_i[4]))) begin
          if (!iqa_dw_i) begin
            {iqe_set_o, iqei_o, state_d} = {1'b1, IqeiWidth, SError};
          end else if (tail_bad) begin
            {iqe_set_o, iqei_o, state_d} = {1'b1, IqeiTail, SError};
          end else begin
            cnt_d     = '0;
            rest_nz_d = 1'b0;
            state_d   = SFetch;
          end
        end
      end
      SFetch: if (rsp) begin
        unique case (cnt_q)
          2'd0:    qw0_d = mem_rsp_rdata_i;
          2'd1:    qw1_d = mem_rsp_rdata_i;
          default: rest_nz_d = rest_nz_q | (mem_rsp_rdata_i != '0);
        endcase
        cnt_d = cnt_q + 2'd1;
        if (mem_rsp_error_i) begin
          {iqe_set_o, iqei_o, state_d} = {1'b1, IqeiFetch, SError};
        end else if (cnt_q == 2'd3) begin
          state_d = SDecode;
        end
      end
      SDecode: begin
        if (dec_type_bad) begin
          {iqe_set_o, iqei_o, state_d} = {1'b1, IqeiType, SError};
        end else if (dec_rsvd_bad) begin
          {iqe_set_o, iqei_o, state_d} = {1'b1, IqeiReserved, SError};
        end else begin
          state_d = SDrain;
        end
      end
      SDrain: begin
        // A cache invalidation takes effect at once, with translations and walks in
        // flight (walks in flight are marked stale and fill nothing). A wait raises
        // quiesce_o and completes once nothing is in flight.
        if (dec_is_devtlb) begin
          if (ats_req_ready_i) begin
            head_d  = next_head(head_q);
            state_d = SIdle;
          end
        end else if (!dec_is_wait) begin
          // inv_o (below)
          head_d  = next_head(head_q);
          state_d = SIdle;
        end else if (ite_pending_i) begin
          // Aborted by the invalidation time-out.
          head_d  = next_head(head_q);
          state_d = SIdle;
        end else if (xlate_idle_i && !ats_busy_i) begin
          if (wait_qw0.iflag) iwc_set_o = 1'b1;
          if (wait_qw0.sw) begin
            state_d = SStatus;
          end else begin
            head_d  = next_head(head_q);
            state_d = SIdle;
          end
        end
      end
      SStatus: begin
        // A failed status write is not architected as a queue error; the write is dropped.
        if (rsp) begin
          head_d  = next_head(head_q);
          state_d = SIdle;
        end
      end
      SError: begin
        if (!iqe_pending_i && !iqe_set_o) state_d = SIdle;
      end
      default: state_d = SIdle;
    endcase

    // Disabling QI resets the head.
    if (!qie_i) head_d = '0;
  end

  function automatic logic [13:0] next_head(input logic [13:0] h);
    return ({1'b0, h} + 15'd1 >= entries) ? '0 : h + 14'd1;
  endfunction

  assign mem_req_valid_o = (reading || state_q == SStatus) && !waiting_q
                           && !(state_q == SStatus && status_sent_q);
  assign mem_req_write_o = state_q == SStatus;
  assign mem_req_addr_o  = (state_q == SStatus)
      ? {wait_qw1.stat_addr, 3'b000}
      : {{(64 - HawBits){1'b0}}, iqa_base_i, 12'h000} + {45'h0, head_q, 5'h0} + {59'h0, cnt_q, 3'h0};
  assign mem_req_wdata_o = {2{wait_qw0.stat_data}};
  assign mem_req_wstrb_o = wait_qw1.stat_hi ? 8'hF0 : 8'h0F;

  // The status write is issued once per wait descriptor.
  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      status_sent_q <= 1'b0;
    end else if (state_q != SStatus) begin
      status_sent_q <= 1'b0;
    end else if (mem_req_valid_o && mem_req_ready_i) begin
      status_sent_q <= 1'b1;
    end
  end

  assign quiesce_o = state_q == SDrain && dec_is_wait && !ats_busy_i;

  // Device-TLB descriptors: type 3 SID 47:32, type 8 SID 31:16 and PASID 51:32, G 0 and S
  // 11 of QW1 (type 3: S 0).
  assign ats_req_valid_o       = state_q == SDrain && dec_is_devtlb;
  assign ats_req_pasid_valid_o = typ == DescPdtlb;
  assign ats_req_sid_o         = (typ == DescPdtlb) ? qw0_q[31:16] : qw0_q[47:32];
  assign ats_req_pasid_o       = qw0_q[51:32];
  assign ats_req_global_o      = (typ == DescPdtlb) && qw1_q[0];
  assign ats_req_size_o        = (typ == DescPdtlb) ? qw1_q[11] : qw1_q[0];
  assign ats_req_addr_o        = qw1_q[63:12];
  assign inv_cmd_o = dec_cmd;
  assign iqh_o     = {head_q, 1'b0};
  assign idle_o    = state_q inside {SIdle, SError} && !waiting_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      state_q   <= SIdle;
      waiting_q <= 1'b0;
      head_q    <= '0;
    end else begin
      state_q   <= state_d;
      waiting_q <= waiting_d;
      head_q    <= head_d;
    end
  end

  always_ff @(posedge clk_i) begin
    cnt_q     <= cnt_d;
    qw0_q     <= qw0_d;
    qw1_q     <= qw1_d;
    rest_nz_q <= rest_nz_d;
  end

  // An invalidation takes effect only with no translation in flight.
  // A memory response only for the request outstanding.
  `ASSERT_NEVER(RspWithoutReq_A, mem_rsp_valid_i && !waiting_q)

endmodule
