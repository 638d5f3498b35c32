// VT-d scalable-mode translation unit: top level. See rtl/README.md for the diagram.
//
//   rx -> stage A: decode, malformed check, PASID-cache + IOTLB lookup (or a walk on a
//         miss, stalling A in order) -> stage E: one registered TLP -> tx or cpl
//
// Outcomes of stage A: forward unchanged (GSTS.TES = 0, or not a memory request); a UR
// completion (malformed or faulting read) or nothing (malformed or faulting write); the
// request with the translated address. A fault is recorded unless FPD says otherwise.
// ATS (docs/contract.md section 6.2): a Translation Request (AT = 01b) is answered on the
// completion port, with a Translation Completion (CplD, one 8-byte entry on cpl_data_o)
// or with UR/CA; a translated request (AT = 10b) walks to its context entry and is
// forwarded unchanged when DTE = 1.
//
// The unit works on TLP headers; a write's payload travels beside it in the fabric.
// All ports use valid/ready: a transfer happens on a rising clk_i edge with both high.
module iommu_top
  import iommu_pkg::*;
#(
  parameter int unsigned IotlbEntries = 32,
  parameter int unsigned PcacheEntries = 8,
  parameter int unsigned NumFrcd      = 8,
  parameter int unsigned NumWalkers   = 8,
  parameter int unsigned PscL4Entries = 2,
  parameter int unsigned PscL3Entries = 4,
  parameter int unsigned PscL2Entries = 16,
  parameter logic [15:0] CompleterId  = 16'h0000,
  // Cycles an Invalidate Request may stay unanswered before FSTS.ITE (up to 1.5 times
  // this; iommu_ats_inv).
  parameter int unsigned AtsInvTimeout = 8192
) (
  input  logic                         clk_i,
  // The named assertions are disabled by `disable iff (!rst_ni)`, which reads the
  // asynchronous reset at the clock edge; no flop uses rst_ni synchronously.
  /* verilator lint_off SYNCASYNCNET */
  input  logic                         rst_ni,
  /* verilator lint_on SYNCASYNCNET */

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
  output logic [1:0][31:0]             cpl_data_o,  // CplD payload, DW0 first on the wire

  // ATS Invalidate Request egress (toward the device): header, 2 DW of data, and a PASID
  // prefix when ats_inv_prefix_valid_o. Invalidate Completions arrive on rx.
  output logic                         ats_inv_valid_o,
  input  logic                         ats_inv_ready_i,
  output logic                         ats_inv_prefix_valid_o,
  output logic [31:0]                  ats_inv_prefix_o,
  output logic [3:0][31:0]             ats_inv_hdr_o,
  output logic [1:0][31:0]             ats_inv_data_o,

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

  // Memory port: table walks, invalidation-queue fetches, status writes. Up to 16
  // requests outstanding (one per ID of MemIdBits); every request (read or write) gets
  // exactly one response, carrying its ID; responses come back in any order.
  output logic                         mem_req_valid_o,
  input  logic                         mem_req_ready_i,
  output logic [MemIdBits-1:0]         mem_req_id_o,
  output logic                         mem_req_write_o,
  output logic [63:0]                  mem_req_addr_o,
  output logic [63:0]                  mem_req_wdata_o,
  output logic [7:0]                   mem_req_wstrb_o,
  input  logic                         mem_rsp_valid_i,
  input  logic [MemIdBits-1:0]         mem_rsp_id_i,
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
  logic                qie, iqa_dw, cfg_pending, iqe, ite, ite_set;
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
    .iqe_o           (iqe),
    .ite_o           (ite),
    .xlate_idle_i    (xlate_idle),
    .qi_idle_i       (qi_idle),
    .iqh_i           (iqh),
    .iqe_set_i       (iqe_set),
    .iqei_i          (iqei),
    .iwc_set_i       (iwc_set),
    .ite_set_i       (ite_set),
    .malformed_cnt_i (malformed_cnt_q),
    .fault_valid_i   (fault_valid),
    .fault_i         (fault_rec),
    .fault_irq_o,
    .inv_irq_o
  );

  // ---------------------------------------------------------------------------------------
  // Invalidation queue and memory arbitration
  // ---------------------------------------------------------------------------------------
  logic     quiesce, inv;
  inv_cmd_t inv_cmd;

  // Device-TLB invalidations: queue -> ITag tracker; Invalidate Completions from stage A.
  logic         ats_req_valid, ats_req_ready, ats_req_pasid_valid, ats_req_global;
  logic         ats_req_size, ats_busy, ats_cpl_valid;
  logic [15:0]  ats_req_sid, ats_timeout_sid;
  logic [19:0]  ats_req_pasid;
  logic [63:12] ats_req_addr;

  // Memory clients: the walkers (0 .. NumWalkers-1), then the queue.
  localparam int unsigned MemClients = NumWalkers + 1;
  localparam int unsigned QiClient   = NumWalkers;

  logic [MemClients-1:0]       arb_req_valid, arb_req_ready, arb_req_write, arb_rsp_valid;
  logic [MemClients-1:0][63:0] arb_req_addr, arb_req_wdata;
  logic [MemClients-1:0][7:0]  arb_req_wstrb;

  iommu_qi u_qi (
    .clk_i,
    .rst_ni,
    .qie_i           (qie),
    .iqa_base_i      (iqa_base),
    .iqa_dw_i        (iqa_dw),
    .iqa_qs_i        (iqa_qs),
    .iqt_i           (iqt),
    .iqe_pending_i   (iqe),
    .iqh_o           (iqh),
    .idle_o          (qi_idle),
    .iqe_set_o       (iqe_set),
    .iqei_o          (iqei),
    .iwc_set_o       (iwc_set),
    .ite_pending_i   (ite),
    .ats_req_valid_o       (ats_req_valid),
    .ats_req_ready_i       (ats_req_ready),
    .ats_req_sid_o         (ats_req_sid),
    .ats_req_pasid_valid_o (ats_req_pasid_valid),
    .ats_req_pasid_o       (ats_req_pasid),
    .ats_req_global_o      (ats_req_global),
    .ats_req_size_o        (ats_req_size),
    .ats_req_addr_o        (ats_req_addr),
    .ats_busy_i            (ats_busy),
    .quiesce_o       (quiesce),
    .xlate_idle_i    (xlate_idle),
    .inv_o           (inv),
    .inv_cmd_o       (inv_cmd),
    .mem_req_valid_o (arb_req_valid[QiClient]),
    .mem_req_ready_i (arb_req_ready[QiClient]),
    .mem_req_write_o (arb_req_write[QiClient]),
    .mem_req_addr_o  (arb_req_addr[QiClient]),
    .mem_req_wdata_o (arb_req_wdata[QiClient]),
    .mem_req_wstrb_o (arb_req_wstrb[QiClient]),
    .mem_rsp_valid_i (arb_rsp_valid[QiClient]),
    .mem_rsp_rdata_i,
    .mem_rsp_error_i
  );

  iommu_ats_inv #(
    .NumItags      (32),
    .TimeoutCycles (AtsInvTimeout),
    .CompleterId   (CompleterId)
  ) u_ats_inv (
    .clk_i,
    .rst_ni,
    .req_valid_i        (ats_req_valid),
    .req_ready_o        (ats_req_ready),
    .req_sid_i          (ats_req_sid),
    .req_pasid_valid_i  (ats_req_pasid_valid),
    .req_pasid_i        (ats_req_pasid),
    .req_global_i       (ats_req_global),
    .req_size_i         (ats_req_size),
    .req_addr_i         (ats_req_addr),
    .busy_o             (ats_busy),
    .timeout_o          (ite_set),
    .timeout_sid_o      (ats_timeout_sid),
    .msg_valid_o        (ats_inv_valid_o),
    .msg_ready_i        (ats_inv_ready_i),
    .msg_prefix_valid_o (ats_inv_prefix_valid_o),
    .msg_prefix_o       (ats_inv_prefix_o),
    .msg_hdr_o          (ats_inv_hdr_o),
    .msg_data_o         (ats_inv_data_o),
    .cpl_valid_i        (ats_cpl_valid),
    .cpl_rid_i          (a_hdr_q[1][31:16]),
    .cpl_cc_i           (a_hdr_q[2][2:0]),
    .cpl_itags_i        (a_hdr_q[3])
  );

  // IQER.ITESID is not implemented (reserved): the SID of a time-out is not reported.
  logic unused_timeout_sid;
  assign unused_timeout_sid = ^ats_timeout_sid;

  // Clients of the memory port (their request IDs): the walkers, then the queue.
  iommu_mem_arb #(
    .NumClients (MemClients)
  ) u_mem_arb (
    .clk_i,
    .rst_ni,
    .req_valid_i     (arb_req_valid),
    .req_ready_o     (arb_req_ready),
    .req_write_i     (arb_req_write),
    .req_addr_i      (arb_req_addr),
    .req_wdata_i     (arb_req_wdata),
    .req_wstrb_i     (arb_req_wstrb),
    .rsp_valid_o     (arb_rsp_valid),
    .mem_req_valid_o,
    .mem_req_ready_i,
    .mem_req_id_o,
    .mem_req_write_o,
    .mem_req_addr_o,
    .mem_req_wdata_o,
    .mem_req_wstrb_o,
    .mem_rsp_valid_i,
    .mem_rsp_id_i
  );

  // ---------------------------------------------------------------------------------------
  // Stage A: one TLP, decoded.
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

  // An Invalidate Completion addressed to this unit is consumed by the ITag tracker, in
  // order behind the TLPs before it (a completion must not pass the device's earlier
  // posted writes). A wait quiesces the unit only once every completion is in.
  logic a_icpl;
  assign a_icpl = a_valid_q && is_inv_cpl(a_hdr_q, CompleterId);

  logic a_bad, a_fwd, a_xlate;
  assign a_bad   = a_valid_q && a_is_mem && (a_malformed != MalNone);
  assign a_fwd   = a_valid_q && !a_bad && !a_icpl && (!a_is_mem || !te);
  assign a_xlate = a_valid_q && !a_bad && a_is_mem && te;

  // ---------------------------------------------------------------------------------------
  // Caches (looked up by the request in stage A)
  // ---------------------------------------------------------------------------------------
  logic        pc_hit, tl_hit, lk_use;
  pasid_info_t pc_info;
  leaf_t       tl_leaf;

  logic        mq_fill, mq_fill_info, mq_fill_leaf;
  mem_req_t    mq_fill_req;
  walk_res_t   mq_fill_res;

  iommu_pasid_cache #(
    .Entries (PcacheEntries)
  ) u_pasid_cache (
    .clk_i,
    .rst_ni,
    .lk_valid_i       (a_xlate),
    .lk_rid_i         (a_req.rid),
    .lk_has_pasid_i   (a_req.has_pasid),
    .lk_pasid_i       (a_req.pasid),
    .lk_hit_o         (pc_hit),
    .lk_info_o        (pc_info),
    .lk_use_i         (lk_use),
    .fill_i           (mq_fill && mq_fill_info),
    .fill_rid_i       (mq_fill_req.rid),
    .fill_has_pasid_i (mq_fill_req.has_pasid),
    .fill_pasid_i     (mq_fill_req.pasid),
    .fill_info_i      (mq_fill_res.info),
    .inv_i            (inv),
    .inv_cmd_i        (inv_cmd)
  );

  iommu_iotlb #(
    .Entries (IotlbEntries)
  ) u_iotlb (
    .clk_i,
    .rst_ni,
    .lk_valid_i   (a_xlate),
    .lk_did_i     (pc_info.did),
    .lk_pasid_i   (pc_info.pasid),
    .lk_page_i    (a_req.addr[HawBits-1:12]),
    .lk_hit_o     (tl_hit),
    .lk_leaf_o    (tl_leaf),
    .lk_use_i     (lk_use),
    .fill_i       (mq_fill && mq_fill_leaf),
    .fill_did_i   (mq_fill_res.info.did),
    .fill_pasid_i (mq_fill_res.info.pasid),
    .fill_page_i  (mq_fill_req.addr[HawBits-1:12]),
    .fill_leaf_i  (mq_fill_res.leaf),
    .inv_i        (inv),
    .inv_cmd_i    (inv_cmd)
  );

  // Paging-structure caches: looked up with the IOTLB, used by a walk that starts from a
  // cached PASID entry; filled with the non-leaf entries of a walk that translated.
  logic          psc_hit, psc_use, mq_walks;
  logic [2:0]    psc_level;
  pfn_t          psc_ptr;
  acc_t          psc_acc;
  logic [4:2]    mq_fill_nl_valid;
  pfn_t [4:2]    mq_fill_nl_ptr;
  acc_t [4:2]    mq_fill_nl_acc;
  logic          psc_ok;

  iommu_psc #(
    .L4Entries (PscL4Entries),
    .L3Entries (PscL3Entries),
    .L2Entries (PscL2Entries)
  ) u_psc (
    .clk_i,
    .rst_ni,
    .lk_valid_i         (a_xlate),
    .lk_did_i           (pc_info.did),
    .lk_pasid_i         (pc_info.pasid),
    .lk_ss_i            (pc_info.pgtt == PgttSs),
    .lk_page_i          (a_req.addr[HawBits-1:12]),
    .lk_hit_o           (psc_hit),
    .lk_level_o         (psc_level),
    .lk_ptr_o           (psc_ptr),
    .lk_acc_o           (psc_acc),
    .lk_use_i           (psc_use),
    .fill_i             (mq_fill && mq_fill_leaf),
    .fill_did_i         (mq_fill_res.info.did),
    .fill_pasid_i       (mq_fill_res.info.pasid),
    .fill_ss_i          (mq_fill_res.info.pgtt == PgttSs),
    .fill_page_i        (mq_fill_req.addr[HawBits-1:12]),
    .fill_level_valid_i (mq_fill_nl_valid),
    .fill_ptr_i         (mq_fill_nl_ptr),
    .fill_acc_i         (mq_fill_nl_acc),
    .inv_i              (inv),
    .inv_cmd_i          (inv_cmd)
  );
  logic             a_treq, a_walk_ctx;
  logic [1:0][31:0] hit_ats;
  assign a_treq     = a_req.at == AtTransReq;
  assign a_walk_ctx = a_req.at == AtTranslated || (a_treq && !pc_info.dte);
  assign psc_ok  = pc_hit && !a_walk_ctx && pc_info.pgtt != PgttPt && psc_hit;
  assign psc_use = mq_walks && psc_ok;

  // Hit path: the same checks as the walker, in the same order, on cached results. A cached
  // translation whose permissions fail is walked again (faults are never cached). A
  // translated request, and a Translation Request whose cached context had DTE = 0, walk
  // from the root (the context entry decides, with its own FPD).
  logic          hit_ok;
  fault_reason_e hit_fault;
  logic          hit_record;
  logic [63:0]   hit_pa;
  always_comb begin
    fault_reason_e f;
    f          = FrNone;
    hit_ok     = 1'b0;
    hit_fault  = FrNone;
    hit_record = 1'b0;
    hit_pa     = a_req.addr;
    if (rtaddr[11:10] != TtmScalable) begin
      {hit_ok, hit_fault, hit_record} = {1'b1, FrRtaddrInvalid, 1'b1};
    end else if (pc_hit && !a_walk_ctx) begin
      f = entry_check(pc_info, a_req);
      if (f == FrNone) f = addr_check(pc_info.pgtt, a_req.addr);
      if (f != FrNone) begin
        {hit_ok, hit_fault, hit_record} = {1'b1, f, !pc_info.fpd && !(a_treq
                                           && ats_status(f) == CplStatusSc)};
      end else if (pc_info.pgtt == PgttPt) begin
        hit_ok = 1'b1;
      end else if (tl_hit && (a_treq ? ats_leaf_check(pc_info.pgtt, tl_leaf,
                                                      eff_pmr(pc_info, a_req))
                                     : leaf_check(pc_info.pgtt, tl_leaf, a_req.write,
                                                  eff_pmr(pc_info, a_req), eff_er(a_req)))
                            == FrNone) begin
        hit_ok = 1'b1;
        hit_pa = leaf_pa(tl_leaf, a_req.addr);
      end
    end
  end
  assign hit_ats = a_treq ? ats_entry(pc_info, tl_leaf, a_req, hit_fault) : '0;

  // ---------------------------------------------------------------------------------------
  // Misses: stage A hands the request to the miss queue and takes the next one.
  // ---------------------------------------------------------------------------------------
  logic     a_miss, a_park, mq_alloc, mq_alloc_ready, mq_blocked, mq_empty, mq_ret_valid, mq_ret;
  order_t   a_ord;
  outcome_t a_out;   // a parked request's outcome
  mem_req_t          mq_ret_req;
  logic [3:0][31:0]  mq_ret_hdr;
  logic              mq_ret_posted;
  logic [11:0]       mq_ret_byte_count;
  logic [6:0]        mq_ret_lower_addr;
  outcome_t          mq_ret_outcome;

  assign a_miss = a_xlate && !hit_ok;
  // Used only with a TLP in stage A (the miss queue's pass check, the allocation).
  always_comb begin
    a_ord = '0;
    if (a_valid_q) a_ord = order_of(a_hdr_q[0], a_posted, a_req.rid);
  end

  iommu_miss_queue #(
    .Slots (NumWalkers)
  ) u_miss_queue (
    .clk_i,
    .rst_ni,
    .root_i             (rtaddr[HawBits-1:12]),
    .inv_i              (inv),
    .inv_cmd_i          (inv_cmd),
    .alloc_i            (mq_alloc),
    .alloc_ready_o      (mq_alloc_ready),
    .alloc_req_i        (a_req),
    .alloc_hdr_i        (a_hdr_q),
    .alloc_posted_i     (a_posted),
    .alloc_byte_count_i (a_byte_count),
    .alloc_lower_addr_i (a_lower_addr),
    .alloc_park_i       (a_park),
    .alloc_out_i        (a_out),
    .alloc_info_valid_i (pc_hit && !a_walk_ctx),
    .alloc_info_i       (pc_info),
    .alloc_psc_valid_i  (psc_ok),
    .alloc_psc_level_i  (psc_level),
    .alloc_psc_ptr_i    (psc_ptr),
    .alloc_psc_acc_i    (psc_acc),
    .alloc_walks_o      (mq_walks),
    .cand_valid_i       (a_valid_q),
    .cand_ord_i         (a_ord),
    .cand_blocked_o     (mq_blocked),
    .empty_o            (mq_empty),
    .ret_valid_o        (mq_ret_valid),
    .ret_i              (mq_ret),
    .ret_req_o          (mq_ret_req),
    .ret_hdr_o          (mq_ret_hdr),
    .ret_posted_o       (mq_ret_posted),
    .ret_byte_count_o   (mq_ret_byte_count),
    .ret_lower_addr_o   (mq_ret_lower_addr),
    .ret_outcome_o      (mq_ret_outcome),
    .fill_o             (mq_fill),
    .fill_info_o        (mq_fill_info),
    .fill_leaf_o        (mq_fill_leaf),
    .fill_req_o         (mq_fill_req),
    .fill_res_o         (mq_fill_res),
    .fill_nl_valid_o    (mq_fill_nl_valid),
    .fill_nl_ptr_o      (mq_fill_nl_ptr),
    .fill_nl_acc_o      (mq_fill_nl_acc),
    .mem_req_valid_o    (arb_req_valid[NumWalkers-1:0]),
    .mem_req_ready_i    (arb_req_ready[NumWalkers-1:0]),
    .mem_req_addr_o     (arb_req_addr[NumWalkers-1:0]),
    .mem_rsp_valid_i    (arb_rsp_valid[NumWalkers-1:0]),
    .mem_rsp_rdata_i,
    .mem_rsp_error_i
  );
  assign arb_req_write[NumWalkers-1:0] = '0;
  assign arb_req_wdata[NumWalkers-1:0] = '0;
  assign arb_req_wstrb[NumWalkers-1:0] = '0;

  // ---------------------------------------------------------------------------------------
  // Retirement: one request per cycle leaves the unit (or is dropped), the miss queue's
  // oldest ready request first, else stage A's if its outcome is known and may leave: a
  // translated or forwarded memory request not past an older queued posted write it may
  // not pass, a recorded fault only when nothing older is queued (records in request
  // order), any other TLP only when nothing older is queued. A translated request or a
  // recorded fault that may not leave yet is parked in the miss queue with its outcome
  // (it then leaves from there, in order), so stage A takes the next TLP.
  // ---------------------------------------------------------------------------------------
  logic          a_res_ok, a_tx, a_may_go;
  fault_reason_e a_fault;
  logic          a_record;
  logic [63:0]   a_pa;
  always_comb begin
    a_res_ok = a_bad || a_fwd || a_icpl || (a_xlate && hit_ok);
    a_fault  = a_xlate ? hit_fault : FrNone;
    a_record = a_xlate && hit_record;
    a_pa     = a_xlate ? hit_pa : a_req.addr;
    a_tx     = a_fwd || (a_xlate && a_fault == FrNone && !a_treq);
    // A TLP that is not a memory request (a completion passing through) leaves after
    // every earlier request: PCIe does not let a completion pass a posted write, and
    // nothing is gained by finer rules for TLPs the unit only forwards.
    if (!a_is_mem) begin
      a_may_go = mq_empty;
    end else if (a_tx) begin
      a_may_go = !mq_blocked;
    end else begin
      a_may_go = !(a_fault != FrNone && a_record && !mq_empty);
    end
  end

  assign a_out = '{fault: a_fault, record: a_record, pa: a_pa, ats: hit_ats};

  logic             e_valid_q, e_cpl_q, e_done, e_free, a_ret, a_adv;
  logic [3:0][31:0] e_hdr_q, e_hdr_d;
  logic [1:0][31:0] e_data_q;

  assign e_done   = e_valid_q && (e_cpl_q ? cpl_ready_i : tx_ready_i);
  assign e_free   = !e_valid_q || e_done;
  assign mq_ret   = mq_ret_valid && e_free;
  assign a_ret    = a_valid_q && a_res_ok && a_may_go && e_free && !mq_ret;
  // A hit the ordering rules hold (its outcome known) is parked in the miss queue, so the
  // next TLP can be looked up: a later hit that may pass it need not wait behind it.
  assign a_park   = a_xlate && hit_ok && !a_may_go;
  assign mq_alloc = (a_miss || a_park) && mq_alloc_ready;
  assign a_adv    = a_ret || mq_alloc;
  assign lk_use   = (a_ret || mq_alloc && a_park) && a_xlate;

  assign rx_ready_o = (!a_valid_q || a_adv) && !cfg_pending && !quiesce;
  assign ats_cpl_valid = a_ret && a_icpl;
  assign xlate_idle = !a_valid_q && !e_valid_q && mq_empty;

  // The retiring request: the miss queue's when it has one ready (it then goes first), else
  // stage A's. Every use is qualified by r_go, and with r_go the choice equals mq_ret; made
  // from registers alone, it is evaluated once per cycle, not again for each change of the
  // egress ready inputs.
  logic             r_xlate, r_bad, r_fwd, r_posted;
  mem_req_t         r_req;
  logic [3:0][31:0] r_hdr;
  logic [11:0]      r_byte_count;
  logic [6:0]       r_lower_addr;
  fault_reason_e    r_fault;
  logic             r_record;
  logic [63:0]      r_pa;
  logic [1:0][31:0] r_ats;
  always_comb begin
    if (mq_ret_valid) begin
      {r_xlate, r_bad, r_fwd} = 3'b100;
      r_req        = mq_ret_req;
      r_hdr        = mq_ret_hdr;
      r_posted     = mq_ret_posted;
      r_byte_count = mq_ret_byte_count;
      r_lower_addr = mq_ret_lower_addr;
      r_fault      = mq_ret_outcome.fault;
      r_record     = mq_ret_outcome.record;
      r_pa         = mq_ret_outcome.pa;
      r_ats        = mq_ret_outcome.ats;
    end else begin
      {r_xlate, r_bad, r_fwd} = {a_xlate, a_bad, a_fwd};
      r_req        = a_req;
      r_hdr        = a_hdr_q;
      r_posted     = a_posted;
      r_byte_count = a_byte_count;
      r_lower_addr = a_lower_addr;
      r_fault      = a_fault;
      r_record     = a_record;
      r_pa         = a_pa;
      r_ats        = hit_ats;
    end
  end

  // What leaves: a forwarded or translated TLP on tx, a UR completion or the answer to a
  // Translation Request on cpl, or nothing for a malformed or faulting posted request.
  logic       r_go, r_emit, r_emit_cpl, r_treq, r_cpl_data;
  logic [2:0] r_status;
  assign r_go       = mq_ret || a_ret;
  assign r_treq     = r_xlate && r_req.at == AtTransReq;
  assign r_status   = r_treq ? ats_status(r_fault) : CplStatusUr;
  assign r_cpl_data = r_treq && r_status == CplStatusSc;
  assign r_emit_cpl = (r_bad || (r_xlate && r_fault != FrNone) || r_treq) && !r_posted;
  assign r_emit     = r_fwd || (r_xlate && r_fault == FrNone) || r_emit_cpl;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      a_valid_q <= 1'b0;
    end else begin
      if (rx_ready_o) begin
        a_valid_q <= rx_valid_i;
      end else if (a_adv) begin
        a_valid_q <= 1'b0;
      end
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
    end else if (a_bad && a_ret && malformed_cnt_q != '1) begin
      malformed_cnt_q <= malformed_cnt_q + 32'd1;
    end
  end

  // ---------------------------------------------------------------------------------------
  // Stage E: the registered egress TLP.
  // ---------------------------------------------------------------------------------------
  // Egress header: unchanged when forwarded; the translated address in the 3DW form below
  // 4 GiB and the 4DW form above, prefix removed; or a UR completion (Cpl, no data) with TC,
  // Attr[1:0] and the 10-bit tag (T9, T8) of the request.
  // A Translation Completion is a CplD of Length 2 and Byte Count 8 (one entry) with Lower
  // Address 0; UR and CA completions of a Translation Request are those of a read.
  always_comb begin
    e_hdr_d = r_hdr;
    if (r_emit_cpl) begin
      e_hdr_d[0] = {r_cpl_data ? FmtData3Dw : FmtNoData3Dw, TypeCpl, r_hdr[0][23],
                    r_hdr[0][22:20], r_hdr[0][19], 3'b000, 1'b0, 1'b0, r_hdr[0][13:12],
                    2'b00, r_cpl_data ? 10'd2 : 10'd0};
      e_hdr_d[1] = {CompleterId, r_status, 1'b0, r_cpl_data ? 12'd8 : r_byte_count};
      e_hdr_d[2] = {r_req.rid, r_req.tag, 1'b0, r_cpl_data ? 7'd0 : r_lower_addr};
      e_hdr_d[3] = '0;
    end else if (r_xlate && r_req.at != AtTranslated) begin
      e_hdr_d[0][29] = r_pa[63:32] != '0;
      if (r_pa[63:32] != '0) begin
        e_hdr_d[2] = r_pa[63:32];
        e_hdr_d[3] = {r_pa[31:2], 2'b00};
      end else begin
        e_hdr_d[2] = {r_pa[31:2], 2'b00};
        e_hdr_d[3] = '0;
      end
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      e_valid_q <= 1'b0;
    end else if (r_go) begin
      e_valid_q <= r_emit;
    end else if (e_done) begin
      e_valid_q <= 1'b0;
    end
  end

  always_ff @(posedge clk_i) begin
    if (r_go && r_emit) begin
      e_cpl_q  <= r_emit_cpl;
      e_hdr_q  <= e_hdr_d;
      e_data_q <= r_cpl_data ? r_ats : '0;
    end
  end

  assign tx_valid_o  = e_valid_q && !e_cpl_q;
  assign tx_hdr_o    = e_hdr_q;
  assign cpl_valid_o = e_valid_q && e_cpl_q;
  assign cpl_hdr_o   = e_hdr_q[2:0];
  assign cpl_data_o  = e_data_q;

  // ---------------------------------------------------------------------------------------
  // Fault recording
  // ---------------------------------------------------------------------------------------
  assign fault_valid = r_go && r_xlate && r_fault != FrNone && r_record;
  assign fault_rec   = '{
    addr:   r_req.addr[63:12],
    sid:    r_req.rid,
    priv:   r_req.pmr,
    exe:    r_req.er,
    pp:     r_req.has_pasid,
    reason: r_fault,
    pasid:  r_req.has_pasid ? r_req.pasid : '0,
    read:   !r_req.write
  };

  logic unused_top;
  assign unused_top = ^{r_req.addr64, r_pa[1:0], mq_fill_res.fault, mq_fill_res.record,
                        mq_fill_req.write, mq_fill_req.addr64, mq_fill_req.tag, mq_fill_req.pmr,
                        mq_fill_req.er, mq_fill_req.at};

  // ---------------------------------------------------------------------------------------
  // Invariants
  // ---------------------------------------------------------------------------------------
  // One TLP leaves on one port.
  `ASSERT_NEVER(TxCplExclusive_A, tx_valid_o && cpl_valid_o)
  // A malformed request is answered with a UR completion or dropped, never forwarded.
  `ASSERT_NEVER(MalformedNotForwarded_A, r_go && r_bad && r_emit && !r_emit_cpl)
  // A malformed request never reaches the miss queue.
  `ASSERT_NEVER(MalformedNotQueued_A, mq_alloc && !a_xlate)
  // A translated address fits the host address width.
  `ASSERT_NEVER(PaWithinHaw_A, r_go && r_xlate && r_fault == FrNone && r_req.at == AtUntranslated
                               && r_pa[63:HawBits] != '0)
  // A Translation Request is answered on the completion port, never forwarded.
  `ASSERT_NEVER(TransReqAnswered_A, r_go && r_treq && r_emit && !r_emit_cpl)

  // Every output is known out of reset; a payload whenever its valid is set.
  `ASSERT_KNOWN(RxReadyKnown_A, rx_ready_o)
  `ASSERT_KNOWN(TxValidKnown_A, tx_valid_o)
  `ASSERT_KNOWN_IF(TxHdrKnown_A, tx_hdr_o, tx_valid_o)
  `ASSERT_KNOWN(CplValidKnown_A, cpl_valid_o)
  `ASSERT_KNOWN_IF(CplHdrKnown_A, cpl_hdr_o, cpl_valid_o)
  `ASSERT_KNOWN_IF(CplDataKnown_A, cpl_data_o, cpl_valid_o && cpl_hdr_o[0][30])
  `ASSERT_KNOWN(CsrReadyKnown_A, csr_ready_o)
  `ASSERT_KNOWN(CsrRvalidKnown_A, csr_rvalid_o)
  `ASSERT_KNOWN_IF(CsrRdataKnown_A, csr_rdata_o, csr_rvalid_o)
  `ASSERT_KNOWN_IF(CsrErrorKnown_A, csr_error_o, csr_rvalid_o)
  `ASSERT_KNOWN(MemReqValidKnown_A, mem_req_valid_o)
  `ASSERT_KNOWN_IF(MemReqIdKnown_A, mem_req_id_o, mem_req_valid_o)
  `ASSERT_KNOWN_IF(MemReqWriteKnown_A, mem_req_write_o, mem_req_valid_o)
  `ASSERT_KNOWN_IF(MemReqAddrKnown_A, mem_req_addr_o, mem_req_valid_o)
  // Write data and strobes of a read are don't-care.
  `ASSERT_KNOWN_IF(MemReqWdataKnown_A, mem_req_wdata_o, mem_req_valid_o && mem_req_write_o)
  `ASSERT_KNOWN_IF(MemReqWstrbKnown_A, mem_req_wstrb_o, mem_req_valid_o && mem_req_write_o)
  `ASSERT_KNOWN(AtsInvValidKnown_A, ats_inv_valid_o)
  `ASSERT_KNOWN_IF(AtsInvHdrKnown_A, {ats_inv_prefix_valid_o, ats_inv_hdr_o, ats_inv_data_o},
                   ats_inv_valid_o)
  `ASSERT_KNOWN_IF(AtsInvPrefixKnown_A, ats_inv_prefix_o,
                   ats_inv_valid_o && ats_inv_prefix_valid_o)
  `ASSERT_KNOWN(FaultIrqKnown_A, fault_irq_o)
  `ASSERT_KNOWN(InvIrqKnown_A, inv_irq_o)

endmodule
