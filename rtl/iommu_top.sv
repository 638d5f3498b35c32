// VT-d scalable-mode translation unit: top level.
//
//   rx (TLP header + end-to-end prefixes) -> ingress stage (decode, malformed check)
//     -> forward untranslated (GSTS.TES = 0, or not a memory request) -> tx
//     -> UR completion for a malformed non-posted request            -> cpl
//     -> translation (GSTS.TES = 1)                                  -> tx / cpl / fault
//
// The unit works on TLP headers; a write's payload travels beside it in the fabric.
// All ports use valid/ready: a transfer happens on a rising clk_i edge with both high.
module iommu_top
  import iommu_pkg::*;
#(
  parameter int unsigned NumFrcd      = 8,
  parameter logic [15:0] CompleterId  = 16'h0000
) (
  input  logic                         clk_i,
  input  logic                         rst_ni,

  // TLP ingress (from the device side)
  input  logic                         rx_valid_i,
  output logic                         rx_ready_o,
  input  logic [2:0]                   rx_nprefix_i,
  input  logic [MaxPrefixes-1:0][31:0] rx_prefix_i,
  input  logic [3:0][31:0]             rx_hdr_i,

  // Translated TLP egress (toward the host)
  output logic                         tx_valid_o,
  input  logic                         tx_ready_i,
  output logic [3:0][31:0]             tx_hdr_o,

  // Completion egress (back to the requester)
  output logic                         cpl_valid_o,
  input  logic                         cpl_ready_i,
  output logic [2:0][31:0]             cpl_hdr_o,

  // Register access
  input  logic                         csr_valid_i,
  output logic                         csr_ready_o,
  input  logic                         csr_write_i,
  input  logic [CsrAddrBits-1:0]       csr_addr_i,
  input  logic                         csr_size64_i,
  input  logic [63:0]                  csr_wdata_i,
  output logic                         csr_rvalid_o,
  output logic [63:0]                  csr_rdata_o,
  output logic                         csr_error_o,

  // Memory port: table walks, invalidation-queue fetches, status writes. One outstanding
  // request; every request (read or write) gets exactly one response.
  output logic                         mem_req_valid_o,
  input  logic                         mem_req_ready_i,
  output logic                         mem_req_write_o,
  output logic [63:0]                  mem_req_addr_o,
  output logic [63:0]                  mem_req_wdata_o,
  output logic [7:0]                   mem_req_wstrb_o,
  input  logic                         mem_rsp_valid_i,
  input  logic [63:0]                  mem_rsp_rdata_i,
  input  logic                         mem_rsp_error_i,

  // Interrupts (level)
  output logic                         fault_irq_o,
  output logic                         inv_irq_o
);

  // ---------------------------------------------------------------------------------------
  // Register file
  // ---------------------------------------------------------------------------------------
  logic                te;
  logic [HawBits-1:10] rtaddr;
  logic                qie, iqa_dw, cfg_pending;
  logic [HawBits-1:12] iqa_base;
  logic [2:0]          iqa_qs;
  logic [18:4]         iqt, iqh;
  logic                xlate_idle, qi_idle;
  logic                iqe_set, iwc_set;
  logic [3:0]          iqei;
  logic                fault_valid;
  fault_rec_t          fault_rec;
  logic [31:0]         malformed_cnt_q;

  iommu_regfile #(
    .NumFrcd (NumFrcd)
  ) u_regfile (
    .clk_i,
    .rst_ni,
    .csr_valid_i,
    .csr_ready_o,
    .csr_write_i,
    .csr_addr_i,
    .csr_size64_i,
    .csr_wdata_i,
    .csr_rvalid_o,
    .csr_rdata_o,
    .csr_error_o,
    .te_o            (te),
    .rtaddr_o        (rtaddr),
    .qie_o           (qie),
    .iqa_base_o      (iqa_base),
    .iqa_dw_o        (iqa_dw),
    .iqa_qs_o        (iqa_qs),
    .iqt_o           (iqt),
    .cfg_pending_o   (cfg_pending),
    .xlate_idle_i    (xlate_idle),
    .qi_idle_i       (qi_idle),
    .iqh_i           (iqh),
    .iqe_set_i       (iqe_set),
    .iqei_i          (iqei),
    .iwc_set_i       (iwc_set),
    .malformed_cnt_i (malformed_cnt_q),
    .fault_valid_i   (fault_valid),
    .fault_i         (fault_rec),
    .fault_irq_o,
    .inv_irq_o
  );

  // ---------------------------------------------------------------------------------------
  // Ingress stage: one TLP, decoded.
  // ---------------------------------------------------------------------------------------
  logic                         a_valid_q;
  logic [2:0]                   a_nprefix_q;
  logic [MaxPrefixes-1:0][31:0] a_prefix_q;
  logic [3:0][31:0]             a_hdr_q;
  logic                         a_is_mem, a_posted;
  malformed_e                   a_malformed;
  mem_req_t                     a_req;
  logic [11:0]                  a_byte_count;
  logic [6:0]                   a_lower_addr;

  iommu_tlp_decode u_decode (
    .nprefix_i    (a_nprefix_q),
    .prefix_i     (a_prefix_q),
    .hdr_i        (a_hdr_q),
    .is_mem_o     (a_is_mem),
    .posted_o     (a_posted),
    .malformed_o  (a_malformed),
    .req_o        (a_req),
    .byte_count_o (a_byte_count),
    .lower_addr_o (a_lower_addr)
  );

  logic a_bad, a_fwd, a_ur, a_drop, a_xlate, a_done;
  assign a_bad   = a_valid_q && a_is_mem && (a_malformed != MalNone);
  assign a_ur    = a_bad && !a_posted;
  assign a_drop  = a_bad && a_posted;
  assign a_fwd   = a_valid_q && !a_bad && (!a_is_mem || !te);
  assign a_xlate = a_valid_q && !a_bad && a_is_mem && te;
  // Requests needing translation wait here for the translation pipeline.
  assign a_done  = (a_fwd && tx_ready_i) || (a_ur && cpl_ready_i) || a_drop;

  assign rx_ready_o = (!a_valid_q || a_done) && !cfg_pending;
  assign xlate_idle = !a_valid_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      a_valid_q <= 1'b0;
    end else if (rx_ready_o) begin
      a_valid_q <= rx_valid_i;
    end else if (a_done) begin
      a_valid_q <= 1'b0;
    end
  end

  // Payload registers are qualified by a_valid_q and need no reset.
  always_ff @(posedge clk_i) begin
    if (rx_valid_i && rx_ready_o) begin
      a_nprefix_q <= rx_nprefix_i;
      a_prefix_q  <= rx_prefix_i;
      a_hdr_q     <= rx_hdr_i;
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      malformed_cnt_q <= '0;
    end else if (a_bad && a_done && malformed_cnt_q != '1) begin
      malformed_cnt_q <= malformed_cnt_q + 32'd1;
    end
  end

  // ---------------------------------------------------------------------------------------
  // Egress
  // ---------------------------------------------------------------------------------------
  assign tx_valid_o = a_fwd;
  assign tx_hdr_o   = a_hdr_q;

  // UR completion (Cpl, no data): TC, Attr[1:0] and the 10-bit tag (T9, T8) from the request.
  assign cpl_valid_o  = a_ur;
  assign cpl_hdr_o[0] = {FmtNoData3Dw, TypeCpl, a_hdr_q[0][23], a_hdr_q[0][22:20],
                         a_hdr_q[0][19], 3'b000, 1'b0, 1'b0, a_hdr_q[0][13:12], 2'b00, 10'd0};
  assign cpl_hdr_o[1] = {CompleterId, CplStatusUr, 1'b0, a_byte_count};
  assign cpl_hdr_o[2] = {a_req.rid, a_req.tag, 1'b0, a_lower_addr};

  // ---------------------------------------------------------------------------------------
  // Translation, invalidation queue and fault reporting attach here.
  // ---------------------------------------------------------------------------------------
  assign mem_req_valid_o = 1'b0;
  assign mem_req_write_o = 1'b0;
  assign mem_req_addr_o  = '0;
  assign mem_req_wdata_o = '0;
  assign mem_req_wstrb_o = '0;
  assign qi_idle         = 1'b1;
  assign iqh             = '0;
  assign iqe_set         = 1'b0;
  assign iqei            = '0;
  assign iwc_set         = 1'b0;
  assign fault_valid     = 1'b0;
  assign fault_rec       = '0;

  logic unused_top;
  assign unused_top = ^{mem_req_ready_i, mem_rsp_valid_i, mem_rsp_rdata_i, mem_rsp_error_i,
                        rtaddr, qie, iqa_base, iqa_dw, iqa_qs, iqt, a_xlate, a_req};

  // ---------------------------------------------------------------------------------------
  // Invariants
  // ---------------------------------------------------------------------------------------
  // Checked on the same (asynchronous-reset) edge as the flops they watch.
  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (rst_ni) begin
      assert (!(tx_valid_o && cpl_valid_o)) else $error("a TLP went to both tx and cpl");
      assert (!(a_bad && tx_valid_o)) else $error("a malformed request was forwarded");
    end
  end

endmodule
