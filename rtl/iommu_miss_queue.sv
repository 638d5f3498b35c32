// Miss queue: the requests whose translation needs a walk, one slot and one walker each,
// so up to Slots walks are in flight while stage A goes on answering hits.
//
// - Allocation: stage A hands over a request that missed. If a walker is already walking
//   the same page for the same requester and access kind (RID, PASID prefix, PMR, ER, AT,
//   address bits 63:12), not stale, the request follows that walk instead of starting its
//   own, and the walk fills the caches once.
// - Completion: one finished walk per cycle (lowest walker first) is acknowledged; its
//   result goes to its own slot and to every slot following it, each of which derives its
//   own outcome (the leaf's permission check for its own access). The caches are filled
//   from it when the walk is not stale and its own request translated (faults are never
//   cached).
// - Parking: stage A may also hand over a request whose outcome it already knows (a cache
//   hit) but which the ordering rules hold behind an older slot (`park_i`, with its
//   outcome). It takes a slot that is done at once and starts no walk, so stage A is free
//   for the next TLP (a later hit that may pass the held one goes on). The parked slot is
//   ordered and retired like any other.
// - Retirement (one per cycle, oldest first) of a slot whose outcome is known, where the
//   ordering rules allow it to leave (docs/contract.md section 4): a translated request
//   may not pass an older queued posted write unless `may_pass` says so; a fault that is
//   recorded waits until the slot is the oldest, so fault records keep request order;
//   a fault that is not recorded leaves nothing on the translated-request port and
//   waits for nothing. Stage A's request is younger than every slot: `cand_blocked_o` and
//   `empty_o` tell the same about it.
module iommu_miss_queue
  import iommu_pkg::*;
#(
  parameter int unsigned Slots = 8,
  localparam int unsigned IdxBits = (Slots > 1) ? $clog2(Slots) : 1
) (
  input  logic                    clk_i,
  input  logic                    rst_ni,

  input  pfn_t                    root_i,
  input  logic                    inv_i,             // an invalidation takes effect
  input  inv_cmd_t                inv_cmd_i,

  // Allocation (stage A's request missed)
  input  logic                    alloc_i,
  output logic                    alloc_ready_o,     // a slot is free
  input  mem_req_t                alloc_req_i,
  input  logic [3:0][31:0]        alloc_hdr_i,
  input  logic                    alloc_posted_i,
  input  logic [11:0]             alloc_byte_count_i,
  input  logic [6:0]              alloc_lower_addr_i,
  input  logic                    alloc_info_valid_i,  // cached PASID-entry result
  input  pasid_info_t             alloc_info_i,
  input  logic                    alloc_park_i,        // outcome known (alloc_out_i): no walk
  input  outcome_t                alloc_out_i,
  input  logic                    alloc_psc_valid_i,   // cached non-leaf entry (iommu_psc)
  input  logic [2:0]              alloc_psc_level_i,
  input  pfn_t                    alloc_psc_ptr_i,
  input  acc_t                    alloc_psc_acc_i,
  output logic                    alloc_walks_o,       // the allocation starts a walk

  // Ordering of stage A's request against the queue
  input  logic                    cand_valid_i,   // stage A holds a request (cand_ord_i)
  input  order_t                  cand_ord_i,
  output logic                    cand_blocked_o,
  output logic                    empty_o,

  // Retirement
  output logic                    ret_valid_o,
  input  logic                    ret_i,
  output mem_req_t                ret_req_o,
  output logic [3:0][31:0]        ret_hdr_o,
  output logic                    ret_posted_o,
  output logic [11:0]             ret_byte_count_o,
  output logic [6:0]              ret_lower_addr_o,
  output outcome_t                ret_outcome_o,

  // Cache fill from the walk acknowledged this cycle
  output logic                    fill_o,
  output logic                    fill_info_o,       // the walk read the PASID entry
  output logic                    fill_leaf_o,       // the walk read the leaf
  output mem_req_t                fill_req_o,
  output walk_res_t               fill_res_o,
  output logic [4:2]              fill_nl_valid_o,   // non-leaf entries the walk read
  output pfn_t [4:2]              fill_nl_ptr_o,
  output acc_t [4:2]              fill_nl_acc_o,

  // Memory reads, one port per walker
  output logic [Slots-1:0]        mem_req_valid_o,
  input  logic [Slots-1:0]        mem_req_ready_i,
  output logic [Slots-1:0][63:0]  mem_req_addr_o,
  input  logic [Slots-1:0]        mem_rsp_valid_i,
  input  logic [63:0]             mem_rsp_rdata_i,
  input  logic                    mem_rsp_error_i
);

  // ---------------------------------------------------------------------------------------
  // Slots
  // ---------------------------------------------------------------------------------------
  logic [Slots-1:0] valid_q, done_q, follow_q;
  logic [IdxBits-1:0] leader_q [Slots];
  // older_q[s][j]: slot j was allocated before slot s (s's request is younger). pass_q[s][j]:
  // s's request may pass j's (may_pass, fixed when s is allocated: j was there already).
  // Both are bit vectors per slot, so the ordering checks below are word operations.
  logic [Slots-1:0] older_q [Slots];
  logic [Slots-1:0] pass_q  [Slots];
  mem_req_t         req_q  [Slots];
  logic [3:0][31:0] hdr_q  [Slots];
  logic [Slots-1:0] posted_q;
  logic [11:0]      bc_q   [Slots];
  logic [6:0]       la_q   [Slots];
  order_t           ord_q  [Slots];
  outcome_t         out_q  [Slots];

  // ---------------------------------------------------------------------------------------
  // Walkers
  // ---------------------------------------------------------------------------------------
  logic [Slots-1:0] wk_start, wk_busy, wk_done, wk_ack, wk_stale, wk_info_new, wk_leaf_new;
  // A walker's result, field by field: the completing walker's fields are assembled into a
  // walk_res_t below (packing every walker's result into a struct array would cost the
  // simulator the packing of all of them in every evaluation).
  fault_reason_e    wk_fault [Slots];
  logic [Slots-1:0] wk_record;
  pasid_info_t      wk_info [Slots];
  leaf_t            wk_leaf [Slots];
  logic [4:2]       wk_nl_valid [Slots];
  pfn_t [4:2]       wk_nl_ptr   [Slots];
  acc_t [4:2]       wk_nl_acc   [Slots];

  for (genvar w = 0; w < Slots; w++) begin : g_walker
    iommu_walker u_walker (
      .clk_i,
      .rst_ni,
      .start_i         (wk_start[w]),
      .start_page_i    (alloc_req_i.addr[HawBits-1:12]),
      .req_i           (req_q[w]),
      .root_i,
      .info_valid_i    (alloc_info_valid_i),
      .info_i          (alloc_info_i),
      .psc_valid_i     (alloc_psc_valid_i),
      .psc_level_i     (alloc_psc_level_i),
      .psc_ptr_i       (alloc_psc_ptr_i),
      .psc_acc_i       (alloc_psc_acc_i),
      .inv_i,
      .inv_cmd_i,
      .busy_o          (wk_busy[w]),
      .done_o          (wk_done[w]),
      .done_ack_i      (wk_ack[w]),
      .fault_o         (wk_fault[w]),
      .record_o        (wk_record[w]),
      .info_new_o      (wk_info_new[w]),
      .info_o          (wk_info[w]),
      .leaf_new_o      (wk_leaf_new[w]),
      .leaf_o          (wk_leaf[w]),
      .stale_o         (wk_stale[w]),
      .nl_valid_o      (wk_nl_valid[w]),
      .nl_ptr_o        (wk_nl_ptr[w]),
      .nl_acc_o        (wk_nl_acc[w]),
      .mem_req_valid_o (mem_req_valid_o[w]),
      .mem_req_ready_i (mem_req_ready_i[w]),
      .mem_req_addr_o  (mem_req_addr_o[w]),
      .mem_rsp_valid_i (mem_rsp_valid_i[w]),
      .mem_rsp_rdata_i,
      .mem_rsp_error_i
    );
  end

  // ---------------------------------------------------------------------------------------
  // Allocation: the lowest free slot; follow a walk of the same page if one is running.
  // ---------------------------------------------------------------------------------------
  logic               any_free;
  logic [IdxBits-1:0] free_idx;
  iommu_first_set #(
    .Width (Slots)
  ) u_free (
    .bits_i (~valid_q),
    .any_o  (any_free),
    .idx_o  (free_idx)
  );
  assign alloc_ready_o = any_free;

  logic [Slots-1:0]   same_walk;
  logic               merge;
  logic [IdxBits-1:0] merge_idx;
  // Computed only when a request that walks is allocated, its only use (no work for the
  // simulator in the other cycles). A parked request follows no walk.
  always_comb begin
    same_walk = '0;
    if (alloc_i && !alloc_park_i) begin
      for (int unsigned s = 0; s < Slots; s++) begin
        same_walk[s] = valid_q[s] && !follow_q[s] && wk_busy[s] && !wk_done[s]
                       && !wk_stale[s] && !inv_i
                       && req_q[s].rid == alloc_req_i.rid && req_q[s].at == alloc_req_i.at
                       && req_q[s].has_pasid == alloc_req_i.has_pasid
                       && (!alloc_req_i.has_pasid || req_q[s].pasid == alloc_req_i.pasid)
                       && req_q[s].pmr == alloc_req_i.pmr && req_q[s].er == alloc_req_i.er
                       && req_q[s].addr[63:12] == alloc_req_i.addr[63:12];
      end
    end
  end
  iommu_first_set #(
    .Width (Slots)
  ) u_merge (
    .bits_i (same_walk),
    .any_o  (merge),
    .idx_o  (merge_idx)
  );

  always_comb begin
    wk_start = '0;
    if (alloc_walks_o) wk_start[free_idx] = 1'b1;
  end
  assign alloc_walks_o = alloc_i && !alloc_park_i && !merge;

  // ---------------------------------------------------------------------------------------
  // Completion: one walk per cycle; its result reaches its slot and its followers.
  // ---------------------------------------------------------------------------------------
  logic               cpl;
  logic [IdxBits-1:0] cpl_idx;
  iommu_first_set #(
    .Width (Slots)
  ) u_cpl (
    .bits_i (wk_done),
    .any_o  (cpl),
    .idx_o  (cpl_idx)
  );
  always_comb begin
    wk_ack = '0;
    if (cpl) wk_ack[cpl_idx] = 1'b1;
  end

  walk_res_t        cpl_res;
  logic [Slots-1:0] capture;
  outcome_t         cap_out [Slots];
  outcome_t         own_out;          // the outcome of the walk's own request
  // All of it is used only with a completion (the slots' outcomes, the fills): computed
  // only then, no work for the simulator in the other cycles.
  always_comb begin
    cpl_res = '0;
    own_out = '0;
    capture = '0;
    for (int unsigned s = 0; s < Slots; s++) cap_out[s] = '0;
    if (cpl) begin
      cpl_res = '{
        fault:  wk_fault[cpl_idx],
        record: wk_record[cpl_idx],
        info:   wk_info[cpl_idx],
        leaf:   wk_leaf[cpl_idx]
      };
      own_out = walk_outcome(cpl_res, req_q[cpl_idx]);
      for (int unsigned s = 0; s < Slots; s++) begin
        capture[s] = valid_q[s] && !done_q[s]
                     && (follow_q[s] ? leader_q[s] == cpl_idx : IdxBits'(s) == cpl_idx);
        // Only a slot that captures needs its outcome.
        if (capture[s]) cap_out[s] = walk_outcome(cpl_res, req_q[s]);
      end
    end
  end

  assign fill_o      = cpl && !wk_stale[cpl_idx] && !inv_i && own_out.fault == FrNone;
  assign fill_res_o  = cpl_res;
  // The rest of the fill, read only with fill_o (so only with a completion).
  always_comb begin
    fill_info_o     = 1'b0;
    fill_leaf_o     = 1'b0;
    fill_req_o      = '0;
    fill_nl_valid_o = '0;
    fill_nl_ptr_o   = '0;
    fill_nl_acc_o   = '0;
    if (cpl) begin
      fill_info_o     = wk_info_new[cpl_idx];
      fill_leaf_o     = wk_leaf_new[cpl_idx];
      fill_req_o      = req_q[cpl_idx];
      fill_nl_valid_o = wk_nl_valid[cpl_idx];
      fill_nl_ptr_o   = wk_nl_ptr[cpl_idx];
      fill_nl_acc_o   = wk_nl_acc[cpl_idx];
    end
  end

  // ---------------------------------------------------------------------------------------
  // Retirement: the oldest slot whose outcome is known and which the ordering rules let go.
  // ---------------------------------------------------------------------------------------
  logic [Slots-1:0] ready, oldest_ready;
  always_comb begin
    for (int unsigned s = 0; s < Slots; s++) begin
      logic blocked, has_older;
      has_older = (valid_q & older_q[s]) != '0;
      blocked   = (valid_q & older_q[s] & ~pass_q[s]) != '0;
      if (out_q[s].fault == FrNone) begin
        ready[s] = valid_q[s] && done_q[s] && !blocked;
      end else begin
        ready[s] = valid_q[s] && done_q[s] && !(out_q[s].record && has_older);
      end
    end
    for (int unsigned s = 0; s < Slots; s++) begin
      oldest_ready[s] = ready[s] && (ready & older_q[s]) == '0;
    end
  end

  // Stage A's request is younger than every slot (checked only with one there).
  always_comb begin
    cand_blocked_o = 1'b0;
    if (cand_valid_i) begin
      for (int unsigned s = 0; s < Slots; s++) begin
        if (valid_q[s] && !may_pass(cand_ord_i, ord_q[s])) cand_blocked_o = 1'b1;
      end
    end
  end

  logic [IdxBits-1:0] ret_idx;
  iommu_first_set #(
    .Width (Slots)
  ) u_ret (
    .bits_i (oldest_ready),
    .any_o  (ret_valid_o),
    .idx_o  (ret_idx)
  );
  // Read only with ret_valid_o: selected only then.
  always_comb begin
    ret_req_o        = '0;
    ret_hdr_o        = '0;
    ret_posted_o     = 1'b0;
    ret_byte_count_o = '0;
    ret_lower_addr_o = '0;
    ret_outcome_o    = '0;
    if (ret_valid_o) begin
      ret_req_o        = req_q[ret_idx];
      ret_hdr_o        = hdr_q[ret_idx];
      ret_posted_o     = posted_q[ret_idx];
      ret_byte_count_o = bc_q[ret_idx];
      ret_lower_addr_o = la_q[ret_idx];
      ret_outcome_o    = out_q[ret_idx];
    end
  end
  assign empty_o          = valid_q == '0;

  // ---------------------------------------------------------------------------------------
  // State
  // ---------------------------------------------------------------------------------------
  order_t alloc_ord;  // used only on an allocation: computed only then
  always_comb begin
    alloc_ord = '0;
    if (alloc_i) alloc_ord = order_of(alloc_hdr_i[0], alloc_posted_i, alloc_req_i.rid);
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      valid_q <= '0;
      done_q  <= '0;
    end else begin
      for (int unsigned s = 0; s < Slots; s++) begin
        if (capture[s]) done_q[s] <= 1'b1;
      end
      if (ret_i) valid_q[ret_idx] <= 1'b0;
      if (alloc_i) begin
        valid_q[free_idx] <= 1'b1;
        done_q[free_idx]  <= alloc_park_i;
      end
    end
  end

  // Payloads are qualified by valid_q and done_q and need no reset.
  always_ff @(posedge clk_i) begin
    for (int unsigned s = 0; s < Slots; s++) begin
      if (capture[s]) out_q[s] <= cap_out[s];
    end
    if (alloc_i) begin
      if (alloc_park_i) out_q[free_idx] <= alloc_out_i;
      follow_q[free_idx] <= merge;
      leader_q[free_idx] <= merge_idx;
      req_q[free_idx]    <= alloc_req_i;
      hdr_q[free_idx]    <= alloc_hdr_i;
      posted_q[free_idx] <= alloc_posted_i;
      bc_q[free_idx]     <= alloc_byte_count_i;
      la_q[free_idx]     <= alloc_lower_addr_i;
      ord_q[free_idx]    <= alloc_ord;
      older_q[free_idx]  <= valid_q;
      for (int unsigned j = 0; j < Slots; j++) begin
        older_q[j][free_idx] <= 1'b0;
        pass_q[free_idx][j]  <= may_pass(alloc_ord, ord_q[j]);
      end
    end
  end

  // ---------------------------------------------------------------------------------------
  // Invariants
  // ---------------------------------------------------------------------------------------
  // Allocation only into a free slot; retirement only of a known outcome.
  `ASSERT_NEVER(AllocWhenFull_A, alloc_i && !any_free)
  `ASSERT_NEVER(RetWithoutReady_A, ret_i && !ret_valid_o)
  // A parked request is held by the ordering rules: something older is queued.
  `ASSERT_NEVER(ParkWithoutOlder_A, alloc_i && alloc_park_i && valid_q == '0)
  logic unused_own;
  assign unused_own = ^{own_out.pa, own_out.record, own_out.ats};

  // A follower waiting for a result whose leader's walker is no longer busy. (A function
  // the assertion calls: evaluated once per clock edge, not in every evaluation.)
  function automatic logic any_orphan(input logic [Slots-1:0]   valid,
                                      input logic [Slots-1:0]   follow,
                                      input logic [Slots-1:0]   done,
                                      input logic [Slots-1:0]   busy,
                                      input logic [IdxBits-1:0] leader [Slots]);
    logic o;
    o = 1'b0;
    for (int unsigned s = 0; s < Slots; s++) begin
      if (valid[s] && follow[s] && !done[s] && !busy[leader[s]]) o = 1'b1;
    end
    return o;
  endfunction
  // A walker runs only for a slot that holds its request.
  `ASSERT_NEVER(WalkerHasSlot_A, (wk_busy & ~valid_q) != '0)
  // A follower's walk runs until the follower has its result.
  `ASSERT_NEVER(FollowerHasWalk_A, any_orphan(valid_q, follow_q, done_q, wk_busy, leader_q))

endmodule
