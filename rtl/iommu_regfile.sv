// VT-d register file: VER, CAP, ECAP, GCMD/GSTS, RTADDR, fault status/event registers,
// queued-invalidation registers and the primary fault recording registers.
//
// CSR bus: one request per cycle (valid/ready), response one cycle later on csr_rvalid_o
// for reads and writes alike. 32-bit accesses carry data in bits 31:0 and must be 4-byte
// aligned; 64-bit accesses must be 8-byte aligned. A misaligned access or an access to an
// offset that decodes to no register answers csr_error_o (reads return 0) and changes
// nothing. Writes to read-only registers are ignored, as VT-d specifies.
//
// GCMD is a command register: TE and QIE are levels (Linux writes the current status with
// one bit changed), SRTP is a one-shot. Status bits in GSTS follow only when the datapath
// is idle (xlate_idle_i / qi_idle_i), so a request is translated wholly in one mode and
// against one root-table pointer.
module iommu_regfile
  import iommu_pkg::*;
#(
  parameter int unsigned NumFrcd = 8
) (
  input  logic                   clk_i,
  input  logic                   rst_ni,

  // CSR bus
  input  logic                   csr_valid_i,
  output logic                   csr_ready_o,
  input  logic                   csr_write_i,
  input  logic [CsrAddrBits-1:0] csr_addr_i,
  input  logic                   csr_size64_i,
  input  logic [63:0]            csr_wdata_i,
  output logic                   csr_rvalid_o,
  output logic [63:0]            csr_rdata_o,
  output logic                   csr_error_o,

  // Configuration to the datapath
  output logic                   te_o,          // GSTS.TES
  output logic [HawBits-1:10]    rtaddr_o,      // active root-table pointer, TTM in 11:10
  output logic                   qie_o,         // GSTS.QIES
  output logic [HawBits-1:12]    iqa_base_o,
  output logic                   iqa_dw_o,      // 1: 256-bit descriptors
  output logic [2:0]             iqa_qs_o,
  output logic [18:4]            iqt_o,
  output logic                   cfg_pending_o, // TE/SRTP change waiting for idle: quiesce
  output logic                   iqe_o,         // FSTS.IQE
  output logic                   ite_o,         // FSTS.ITE

  // Status from the datapath
  input  logic                   xlate_idle_i,  // no request between ingress and egress
  input  logic                   qi_idle_i,     // invalidation queue not executing
  input  logic [18:4]            iqh_i,
  input  logic                   iqe_set_i,     // invalidation queue error
  input  logic [3:0]             iqei_i,        // ... and its IQER.IQEI code
  input  logic                   iwc_set_i,     // wait descriptor with IF completed
  input  logic                   ite_set_i,     // device-TLB invalidation timed out
  input  logic [31:0]            malformed_cnt_i,

  // Primary fault recording
  input  logic                   fault_valid_i,
  input  fault_rec_t             fault_i,

  // Interrupts (level): fault event and invalidation completion event
  output logic                   fault_irq_o,
  output logic                   inv_irq_o
);

  localparam int unsigned FrIdxBits = (NumFrcd > 1) ? $clog2(NumFrcd) : 1;
  // 8-byte slots of the 32-bit registers that sit in a slot's upper half.
  localparam logic [CsrAddrBits-1:0] SlotFsts = RegFsts & ~CsrAddrBits'(7);
  localparam logic [CsrAddrBits-1:0] SlotIcs  = RegIcs & ~CsrAddrBits'(7);
  localparam logic [CsrAddrBits-1:0] FrcdEnd = RegFrcd + CsrAddrBits'(NumFrcd * 16);

  // ---------------------------------------------------------------------------------------
  // State
  // ---------------------------------------------------------------------------------------
  logic                   tes_q, tes_d, te_req_q, te_req_d;
  logic                   rtps_q, rtps_d, srtp_pend_q, srtp_pend_d;
  logic                   qies_q, qies_d, qie_req_q, qie_req_d;
  logic [HawBits-1:10]    rtaddr_q, rtaddr_d;          // as written by software
  logic [HawBits-1:10]    rtaddr_act_q, rtaddr_act_d;  // latched by SRTP
  logic                   pfo_q, pfo_d, iqe_q, iqe_d, ite_q, ite_d;
  logic [3:0]             iqei_q, iqei_d;
  logic [FrIdxBits-1:0]   fri_q, fri_d;
  logic [FrIdxBits-1:0]   fr_next_q, fr_next_d;        // next record to fill
  logic                   fe_im_q, fe_im_d;
  logic [31:0]            fedata_q, fedata_d, feaddr_q, feaddr_d, feuaddr_q, feuaddr_d;
  logic [18:4]            iqt_q, iqt_d;
  logic [HawBits-1:12]    iqa_base_q, iqa_base_d;
  logic                   iqa_dw_q, iqa_dw_d;
  logic [2:0]             iqa_qs_q, iqa_qs_d;
  logic                   iwc_q, iwc_d;
  logic                   ie_im_q, ie_im_d;
  logic [31:0]            iedata_q, iedata_d, ieaddr_q, ieaddr_d, ieuaddr_q, ieuaddr_d;
  fault_rec_t             frcd_q [NumFrcd];
  logic                   frcd_we;
  logic [NumFrcd-1:0]     frcd_f_q, frcd_f_d;

  logic                   rvalid_q, rvalid_d;
  logic [63:0]            rdata_q, rdata_d;
  logic                   rerror_q, rerror_d;

  // ---------------------------------------------------------------------------------------
  // Address decode: an access covers the low and/or high 32-bit word of one 8-byte slot.
  // ---------------------------------------------------------------------------------------
  logic [CsrAddrBits-1:0] slot;
  logic                   acc_lo, acc_hi, misaligned;
  logic                   map_lo, map_hi;
  logic [63:0]            slot_rdata;
  logic [63:0]            wdata;        // write data placed at its position in the slot
  logic                   is_frcd;
  logic [FrIdxBits-1:0]   frcd_idx;
  logic                   frcd_qw1;

  assign slot       = {csr_addr_i[CsrAddrBits-1:3], 3'b000};
  assign misaligned = csr_size64_i ? (csr_addr_i[2:0] != 3'b000) : (csr_addr_i[1:0] != 2'b00);
  assign acc_lo     = csr_size64_i | ~csr_addr_i[2];
  assign acc_hi     = csr_size64_i | csr_addr_i[2];
  assign wdata      = (csr_size64_i || !csr_addr_i[2]) ? csr_wdata_i
                                                       : {csr_wdata_i[31:0], 32'h0};
  assign is_frcd    = (slot >= RegFrcd) && (slot < FrcdEnd);
  assign frcd_idx   = FrIdxBits'((slot - RegFrcd) >> 4);
  assign frcd_qw1   = slot[3];

  logic ppf;
  assign ppf = |frcd_f_q;

  // The access is decoded only while one is presented (no work for the simulator in the
  // other cycles); without one, nothing is mapped and nothing is written.
  always_comb begin
    fault_rec_t frcd_sel;
    frcd_qw1_t  frcd_qw1_rdata;
    map_lo     = 1'b0;
    map_hi     = 1'b0;
    slot_rdata = '0;
    frcd_sel   = '0;
    frcd_qw1_rdata = '0;
    if (!csr_valid_i) begin
      // no access
    end else if (is_frcd) begin
      frcd_sel       = frcd_q[frcd_idx];
      frcd_qw1_rdata = '{
        f:      frcd_f_q[frcd_idx],
        read:   frcd_sel.read,
        at:     '0,
        pasid:  frcd_sel.pasid,
        reason: frcd_sel.reason,
        pp:     frcd_sel.pp,
        exe:    frcd_sel.exe,
        priv:   frcd_sel.priv,
        rsvd:   '0,
        sid:    frcd_sel.sid
      };
      map_lo = 1'b1;
      map_hi = 1'b1;
      slot_rdata = frcd_qw1 ? frcd_qw1_rdata : {frcd_sel.addr, 12'h000};
    end else begin
      unique case (slot)
        RegVer: begin
          map_lo = 1'b1;
          slot_rdata = {32'h0, VerValue};
        end
        RegCap: begin
          {map_hi, map_lo} = 2'b11;
          slot_rdata = cap_value(NumFrcd);
        end
        RegEcap: begin
          {map_hi, map_lo} = 2'b11;
          slot_rdata = EcapValue;
        end
        RegGcmd: begin  // GCMD (write-only, reads 0) | GSTS
          {map_hi, map_lo} = 2'b11;
          slot_rdata[32+GcmdTe]   = tes_q;
          slot_rdata[32+GcmdSrtp] = rtps_q;
          slot_rdata[32+GcmdQie]  = qies_q;
        end
        RegRtaddr: begin
          {map_hi, map_lo} = 2'b11;
          slot_rdata[HawBits-1:10] = rtaddr_q;
        end
        SlotFsts: begin  // reserved | FSTS
          map_hi = 1'b1;
          slot_rdata[32+FstsPfo] = pfo_q;
          slot_rdata[32+FstsPpf] = ppf;
          slot_rdata[32+FstsIqe] = iqe_q;
          slot_rdata[32+FstsIte] = ite_q;
          slot_rdata[32+8 +: FrIdxBits] = fri_q;
        end
        RegFectl: begin  // FECTL | FEDATA
          {map_hi, map_lo} = 2'b11;
          slot_rdata[31] = fe_im_q;
          slot_rdata[30] = fe_im_q & (ppf | pfo_q | iqe_q | ite_q);
          slot_rdata[63:32] = fedata_q;
        end
        RegFeaddr: begin  // FEADDR | FEUADDR
          {map_hi, map_lo} = 2'b11;
          slot_rdata = {feuaddr_q, feaddr_q};
        end
        RegIqh: begin
          {map_hi, map_lo} = 2'b11;
          slot_rdata[18:4] = iqh_i;
        end
        RegIqt: begin
          {map_hi, map_lo} = 2'b11;
          slot_rdata[18:4] = iqt_q;
        end
        RegIqa: begin
          {map_hi, map_lo} = 2'b11;
          slot_rdata[HawBits-1:12] = iqa_base_q;
          slot_rdata[11] = iqa_dw_q;
          slot_rdata[2:0] = iqa_qs_q;
        end
        SlotIcs: begin  // reserved | ICS
          map_hi = 1'b1;
          slot_rdata[32] = iwc_q;
        end
        RegIectl: begin  // IECTL | IEDATA
          {map_hi, map_lo} = 2'b11;
          slot_rdata[31] = ie_im_q;
          slot_rdata[30] = ie_im_q & iwc_q;
          slot_rdata[63:32] = iedata_q;
        end
        RegIeaddr: begin  // IEADDR | IEUADDR
          {map_hi, map_lo} = 2'b11;
          slot_rdata = {ieuaddr_q, ieaddr_q};
        end
        RegIqer: begin
          {map_hi, map_lo} = 2'b11;
          slot_rdata[3:0] = iqei_q;
        end
        RegMalformed: begin
          map_lo = 1'b1;
          slot_rdata[31:0] = malformed_cnt_i;
        end
        default: ;
      endcase
    end
  end

  logic acc_ok, do_write;
  logic wr_lo, wr_hi;
  assign acc_ok   = !misaligned && (!acc_lo || map_lo) && (!acc_hi || map_hi);
  assign do_write = csr_valid_i && csr_ready_o && csr_write_i && acc_ok;
  assign wr_lo    = do_write && acc_lo;
  assign wr_hi    = do_write && acc_hi;

  // ---------------------------------------------------------------------------------------
  // Next state
  // ---------------------------------------------------------------------------------------
  always_comb begin
    tes_d        = tes_q;
    te_req_d     = te_req_q;
    rtps_d       = rtps_q;
    srtp_pend_d  = srtp_pend_q;
    qies_d       = qies_q;
    qie_req_d    = qie_req_q;
    rtaddr_d     = rtaddr_q;
    rtaddr_act_d = rtaddr_act_q;
    pfo_d        = pfo_q;
    iqe_d        = iqe_q;
    ite_d        = ite_q;
    iqei_d       = iqei_q;
    fri_d        = fri_q;
    fr_next_d    = fr_next_q;
    fe_im_d      = fe_im_q;
    fedata_d     = fedata_q;
    feaddr_d     = feaddr_q;
    feuaddr_d    = feuaddr_q;
    iqt_d        = iqt_q;
    iqa_base_d   = iqa_base_q;
    iqa_dw_d     = iqa_dw_q;
    iqa_qs_d     = iqa_qs_q;
    iwc_d        = iwc_q;
    ie_im_d      = ie_im_q;
    iedata_d     = iedata_q;
    ieaddr_d     = ieaddr_q;
    ieuaddr_d    = ieuaddr_q;
    frcd_f_d     = frcd_f_q;

    // Software writes (each qualified by wr_lo or wr_hi, so only with do_write: no work for
    // the simulator in the other cycles).
    if (do_write) begin
      if (wr_hi && slot == RegGcmd) begin
        // GSTS is read-only.
      end
      if (wr_lo && slot == RegGcmd) begin
        te_req_d  = wdata[GcmdTe];
        qie_req_d = wdata[GcmdQie];
        if (wdata[GcmdSrtp]) begin
          srtp_pend_d = 1'b1;
          rtps_d      = 1'b0;
        end
      end
      if (slot == RegRtaddr) begin
        if (wr_lo) rtaddr_d[31:10] = wdata[31:10];
        if (wr_hi) rtaddr_d[HawBits-1:32] = wdata[HawBits-1:32];
      end
      if (wr_hi && slot == SlotFsts) begin  // FSTS: PFO, IQE and ITE are RW1C
        if (wdata[32+FstsPfo]) pfo_d = 1'b0;
        if (wdata[32+FstsIte]) ite_d = 1'b0;
        if (wdata[32+FstsIqe]) begin
          iqe_d  = 1'b0;
          iqei_d = '0;
        end
      end
      if (slot == RegFectl) begin
        if (wr_lo) fe_im_d = wdata[31];
        if (wr_hi) fedata_d = wdata[63:32];
      end
      if (slot == RegFeaddr) begin
        if (wr_lo) feaddr_d = {wdata[31:2], 2'b00};
        if (wr_hi) feuaddr_d = wdata[63:32];
      end
      if (slot == RegIqt) begin
        if (wr_lo) iqt_d = wdata[18:4];
      end
      if (slot == RegIqa) begin
        if (wr_lo) begin
          iqa_base_d[31:12] = wdata[31:12];
          iqa_dw_d          = wdata[11];
          iqa_qs_d          = wdata[2:0];
        end
        if (wr_hi) iqa_base_d[HawBits-1:32] = wdata[HawBits-1:32];
      end
      if (wr_hi && slot == SlotIcs && wdata[32]) iwc_d = 1'b0;  // ICS.IWC is RW1C
      if (slot == RegIectl) begin
        if (wr_lo) ie_im_d = wdata[31];
        if (wr_hi) iedata_d = wdata[63:32];
      end
      if (slot == RegIeaddr) begin
        if (wr_lo) ieaddr_d = {wdata[31:2], 2'b00};
        if (wr_hi) ieuaddr_d = wdata[63:32];
      end
      if (wr_hi && is_frcd && frcd_qw1 && wdata[63]) frcd_f_d[frcd_idx] = 1'b0;  // F is RW1C
    end

    // Command handshakes: status follows when the datapath is idle.
    if (xlate_idle_i) begin
      tes_d = te_req_q;
      if (srtp_pend_q) begin
        rtaddr_act_d = rtaddr_q;
        srtp_pend_d  = 1'b0;
        rtps_d       = 1'b1;
      end
    end
    if (qie_req_q) begin
      qies_d = 1'b1;
    end else if (qi_idle_i) begin
      qies_d = 1'b0;
    end

    // Events from the datapath.
    if (iqe_set_i) begin
      iqe_d  = 1'b1;
      iqei_d = iqei_i;
    end
    if (iwc_set_i) iwc_d = 1'b1;
    if (ite_set_i) ite_d = 1'b1;

    // Primary fault logging (VT-d 7.2.1): a pending overflow or a full next record drops the
    // fault and sets PFO; the records already logged are never overwritten.
    if (fault_valid_i) begin
      if (pfo_q) begin
        // dropped
      end else if (frcd_f_q[fr_next_q]) begin
        pfo_d = 1'b1;
      end else begin
        frcd_f_d[fr_next_q] = 1'b1;
        if (!ppf) fri_d = fr_next_q;
        fr_next_d = (fr_next_q == FrIdxBits'(NumFrcd - 1)) ? '0 : fr_next_q + 1'b1;
      end
    end

    // CSR response.
    rvalid_d = csr_valid_i && csr_ready_o;
    rerror_d = csr_valid_i && csr_ready_o && !acc_ok;
    rdata_d  = '0;
    if (csr_valid_i && csr_ready_o && !csr_write_i && acc_ok) begin
      rdata_d = (csr_size64_i || !csr_addr_i[2]) ? slot_rdata : {32'h0, slot_rdata[63:32]};
    end
  end

  // ---------------------------------------------------------------------------------------
  // Flops
  // ---------------------------------------------------------------------------------------
  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      tes_q        <= 1'b0;
      te_req_q     <= 1'b0;
      rtps_q       <= 1'b0;
      srtp_pend_q  <= 1'b0;
      qies_q       <= 1'b0;
      qie_req_q    <= 1'b0;
      rtaddr_q     <= '0;
      rtaddr_act_q <= '0;
      pfo_q        <= 1'b0;
      iqe_q        <= 1'b0;
      ite_q        <= 1'b0;
      iqei_q       <= '0;
      fri_q        <= '0;
      fr_next_q    <= '0;
      fe_im_q      <= 1'b1;  // VT-d: interrupt mask set at reset
      fedata_q     <= '0;
      feaddr_q     <= '0;
      feuaddr_q    <= '0;
      iqt_q        <= '0;
      iqa_base_q   <= '0;
      iqa_dw_q     <= 1'b0;
      iqa_qs_q     <= '0;
      iwc_q        <= 1'b0;
      ie_im_q      <= 1'b1;
      iedata_q     <= '0;
      ieaddr_q     <= '0;
      ieuaddr_q    <= '0;
      frcd_f_q     <= '0;
      rvalid_q     <= 1'b0;
      rdata_q      <= '0;
      rerror_q     <= 1'b0;
    end else begin
      tes_q        <= tes_d;
      te_req_q     <= te_req_d;
      rtps_q       <= rtps_d;
      srtp_pend_q  <= srtp_pend_d;
      qies_q       <= qies_d;
      qie_req_q    <= qie_req_d;
      rtaddr_q     <= rtaddr_d;
      rtaddr_act_q <= rtaddr_act_d;
      pfo_q        <= pfo_d;
      iqe_q        <= iqe_d;
      ite_q        <= ite_d;
      iqei_q       <= iqei_d;
      fri_q        <= fri_d;
      fr_next_q    <= fr_next_d;
      fe_im_q      <= fe_im_d;
      fedata_q     <= fedata_d;
      feaddr_q     <= feaddr_d;
      feuaddr_q    <= feuaddr_d;
      iqt_q        <= iqt_d;
      iqa_base_q   <= iqa_base_d;
      iqa_dw_q     <= iqa_dw_d;
      iqa_qs_q     <= iqa_qs_d;
      iwc_q        <= iwc_d;
      ie_im_q      <= ie_im_d;
      iedata_q     <= iedata_d;
      ieaddr_q     <= ieaddr_d;
      ieuaddr_q    <= ieuaddr_d;
      frcd_f_q     <= frcd_f_d;
      rvalid_q     <= rvalid_d;
      rdata_q      <= rdata_d;
      rerror_q     <= rerror_d;
    end
  end

  // Fault record payloads are qualified by their F bit and need no reset. A fault is logged
  // in the next record unless it is dropped (see above).
  assign frcd_we = fault_valid_i && !pfo_q && !frcd_f_q[fr_next_q];
  always_ff @(posedge clk_i) begin
    if (frcd_we) frcd_q[fr_next_q] <= fault_i;
  end

  assign csr_ready_o  = 1'b1;
  assign csr_rvalid_o = rvalid_q;
  assign csr_rdata_o  = rdata_q;
  assign csr_error_o  = rerror_q;

  assign te_o       = tes_q;
  assign rtaddr_o   = rtaddr_act_q;
  assign qie_o      = qies_q;
  assign iqa_base_o = iqa_base_q;
  assign iqa_dw_o   = iqa_dw_q;
  assign iqa_qs_o   = iqa_qs_q;
  assign iqt_o      = iqt_q;
  assign cfg_pending_o = (te_req_q != tes_q) | srtp_pend_q;
  assign iqe_o         = iqe_q;
  assign ite_o         = ite_q;

  // Level interrupts: an unmasked pending condition.
  assign fault_irq_o = ~fe_im_q & (ppf | pfo_q | iqe_q | ite_q);
  assign inv_irq_o   = ~ie_im_q & iwc_q;

  // Invariants.
  // TE and the root-table pointer change only while no translation is in flight.
  `ASSERT(ModeChangeWhenIdle_A, xlate_idle_i || (tes_d == tes_q && rtaddr_act_d == rtaddr_act_q))
  // An error response carries no data.
  `ASSERT_NEVER(ErrorRspNoData_A, rvalid_q && rerror_q && rdata_q != 64'h0)

endmodule
