// ATS invalidation (PCIe 10.3; docs/contract.md 6.3, 6.5): turns the device-TLB
// invalidations of the queue (descriptor types 3 and 8) into Invalidate Request messages
// and tracks them by ITag until the device's Invalidate Completions arrive.
//
//   - An accepted invalidation takes the lowest free ITag (NumItags of them) and waits in
//     the egress register until the fabric takes the message; from then on it is
//     outstanding. The queue is told to wait (req_ready_o low) only when no ITag is free
//     or the egress register is full.
//   - Invalidate Request: Msg routed by ID with 2 DW of data (Fmt 011b, Type 10010b,
//     Length 2), Requester ID = CompleterId, Message Code 0000_0001b, Device ID = the
//     descriptor's SID in DW2 31:16, ITag in DW1 12:8 (byte 6 bits 4:0, where other
//     requests carry the Tag), DW3 reserved; payload DW0 = untranslated address
//     63:32, DW1 = address 31:12, S in bit 11, Global Invalidate in bit 0. Type 8 adds a
//     PASID prefix (PMR = ER = 0).
//   - Invalidate Completion (decoded by the top level): the ITag vector names the ITags it
//     completes and CC says how many completions the device sends for each of them (0
//     means 8). An ITag is free again once CC completions naming it have arrived from the
//     device it was sent to; completions naming free ITags or coming from another device
//     change nothing.
//   - Time-out: time is counted in epochs of TimeoutCycles / 2 cycles; an outstanding
//     ITag that sees its third epoch boundary (so unanswered for more than TimeoutCycles
//     and at most 1.5 x TimeoutCycles) times out: timeout_o pulses with its SID and every
//     outstanding ITag is dropped (the queue aborts what waits for them, VT-d FSTS.ITE).
module iommu_ats_inv
  import iommu_pkg::*;
#(
  parameter int unsigned NumItags      = 32,
  parameter int unsigned TimeoutCycles = 8192,
  parameter logic [15:0] CompleterId   = 16'h0000,
  localparam int unsigned ItagBits     = $clog2(NumItags)
) (
  input  logic                clk_i,
  input  logic                rst_ni,

  // One device-TLB invalidation from the queue
  input  logic                req_valid_i,
  output logic                req_ready_o,
  input  logic [15:0]         req_sid_i,
  input  logic                req_pasid_valid_i,
  input  logic [19:0]         req_pasid_i,
  input  logic                req_global_i,
  input  logic                req_size_i,
  input  logic [63:12]        req_addr_i,
  output logic                busy_o,        // a message waits to leave or an ITag is out
  output logic                timeout_o,     // pulse: outstanding ITags dropped
  output logic [15:0]         timeout_sid_o,

  // Invalidate Request egress
  output logic                msg_valid_o,
  input  logic                msg_ready_i,
  output logic                msg_prefix_valid_o,
  output logic [31:0]         msg_prefix_o,
  output logic [3:0][31:0]    msg_hdr_o,
  output logic [1:0][31:0]    msg_data_o,

  // Invalidate Completion ingress (one per cycle)
  input  logic                cpl_valid_i,
  input  logic [15:0]         cpl_rid_i,     // the device that sent it
  input  logic [2:0]          cpl_cc_i,
  input  logic [31:0]         cpl_itags_i
);

  `ASSERT_INIT(NumItags_A, NumItags >= 2 && NumItags <= 32 && (1 << ItagBits) == NumItags)
  `ASSERT_INIT(Timeout_A, TimeoutCycles >= 4)

  localparam int unsigned EpochCycles = TimeoutCycles / 2;
  localparam int unsigned EpochBits   = $clog2(EpochCycles + 1);

  // ---------------------------------------------------------------------------------------
  // ITag pool
  // ---------------------------------------------------------------------------------------
  logic [NumItags-1:0]             out_q;     // outstanding (message sent)
  logic [NumItags-1:0]             seen_q;    // a completion with its CC arrived
  logic [NumItags-1:0][3:0]        left_q;    // completions still to come once seen
  logic [NumItags-1:0][1:0]        age_q;     // epoch boundaries seen while outstanding
  logic [NumItags-1:0][15:0]       sid_q;

  logic                            eg_valid_q;
  logic [ItagBits-1:0]             eg_itag_q;

  // The egress register's ITag is taken too.
  logic [NumItags-1:0] taken;
  assign taken = out_q | ({NumItags{eg_valid_q}} & (NumItags'(1) << eg_itag_q));

  // The lowest free ITag, searched only while the queue offers an invalidation.
  logic                free_any;
  logic [ItagBits-1:0] free_idx;
  assign free_any = !(&taken);
  always_comb begin
    free_idx = '0;
    if (req_valid_i) begin
      for (int i = NumItags - 1; i >= 0; i--) begin
        if (!taken[i]) free_idx = ItagBits'(i);
      end
    end
  end

  logic accept, sent;
  assign req_ready_o = free_any && !eg_valid_q;
  assign accept      = req_valid_i && req_ready_o;
  assign sent        = msg_valid_o && msg_ready_i;

  // ---------------------------------------------------------------------------------------
  // Epochs and time-out
  // ---------------------------------------------------------------------------------------
  logic [EpochBits-1:0] epoch_q;
  logic                 tick;
  assign tick = epoch_q == EpochBits'(EpochCycles - 1);

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      epoch_q <= '0;
    end else begin
      epoch_q <= tick ? '0 : epoch_q + EpochBits'(1);
    end
  end

  // Computed only at an epoch boundary: whether an ITag expires, and the lowest one.
  logic                expired_any;
  logic [ItagBits-1:0] expired_idx;
  always_comb begin
    expired_any = 1'b0;
    expired_idx = '0;
    if (tick) begin
      for (int i = NumItags - 1; i >= 0; i--) begin
        if (out_q[i] && age_q[i] == 2'd2) begin
          expired_any = 1'b1;
          expired_idx = ItagBits'(i);
        end
      end
    end
  end

  assign timeout_o     = expired_any;
  assign timeout_sid_o = sid_q[expired_idx];

  // ---------------------------------------------------------------------------------------
  // Completions: computed only in the cycle one arrives.
  // ---------------------------------------------------------------------------------------
  logic [NumItags-1:0]      done, named;
  logic [NumItags-1:0][3:0] left_d;
  always_comb begin
    done   = '0;
    named  = '0;
    left_d = left_q;
    if (cpl_valid_i) begin
      for (int unsigned i = 0; i < NumItags; i++) begin
        if (cpl_itags_i[i] && out_q[i] && sid_q[i] == cpl_rid_i) begin
          named[i]  = 1'b1;
          // The first completion says how many there are (CC, 0 = 8); this one counts.
          left_d[i] = (seen_q[i] ? left_q[i] : {cpl_cc_i == 3'd0, cpl_cc_i}) - 4'd1;
          done[i]   = left_d[i] == 4'd0;
        end
      end
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      out_q      <= '0;
      seen_q     <= '0;
      eg_valid_q <= 1'b0;
    end else begin
      if (expired_any) begin
        out_q  <= '0;
        seen_q <= '0;
      end else if (cpl_valid_i) begin
        seen_q <= (seen_q | named) & ~done;
        out_q  <= out_q & ~done;
      end
      if (sent) begin
        out_q[eg_itag_q]  <= 1'b1;
        seen_q[eg_itag_q] <= 1'b0;
      end
      if (accept) begin
        eg_valid_q <= 1'b1;
      end else if (sent) begin
        eg_valid_q <= 1'b0;
      end
    end
  end

  // Qualified by out_q / seen_q / eg_valid_q: no reset.
  always_ff @(posedge clk_i) begin
    if (cpl_valid_i) left_q <= left_d;
    if (tick) begin
      for (int unsigned i = 0; i < NumItags; i++) begin
        if (out_q[i] && age_q[i] != 2'd3) age_q[i] <= age_q[i] + 2'd1;
      end
    end
    if (sent) age_q[eg_itag_q] <= '0;
    if (accept) begin
      eg_itag_q        <= free_idx;
      sid_q[free_idx]  <= req_sid_i;
    end
  end

  // ---------------------------------------------------------------------------------------
  // The message in the egress register
  // ---------------------------------------------------------------------------------------
  logic                eg_pasid_valid_q, eg_global_q, eg_size_q;
  logic [19:0]         eg_pasid_q;
  logic [63:12]        eg_addr_q;

  always_ff @(posedge clk_i) begin
    if (accept) begin
      eg_pasid_valid_q <= req_pasid_valid_i;
      eg_pasid_q       <= req_pasid_i;
      eg_global_q      <= req_global_i;
      eg_size_q        <= req_size_i;
      eg_addr_q        <= req_addr_i;
    end
  end

  assign msg_valid_o        = eg_valid_q;
  assign msg_prefix_valid_o = eg_pasid_valid_q;
  assign msg_prefix_o       = {PrefixPasid, 4'b0000, eg_pasid_q};
  assign msg_hdr_o[0]       = {FmtData4Dw, TypeMsgId, 14'h0, 10'd2};
  assign msg_hdr_o[1]       = {CompleterId, {(8 - ItagBits){1'b0}}, eg_itag_q, MsgInvReq};
  assign msg_hdr_o[2]       = {sid_q[eg_itag_q], 16'h0000};
  assign msg_hdr_o[3]       = '0;
  assign msg_data_o[0]      = eg_addr_q[63:32];
  assign msg_data_o[1]      = {eg_addr_q[31:12], eg_size_q, 10'h000, eg_global_q};

  assign busy_o = eg_valid_q || (out_q != '0);

  `ASSERT_NEVER(SendTakenItag_A, sent && out_q[eg_itag_q])

endmodule
