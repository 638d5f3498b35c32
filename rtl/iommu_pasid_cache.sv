`ifndef IOMMU_ASSERT_SVH
`include "iommu_assert.svh"
`endif

// Context/PASID-entry cache: what a walk of root -> scalable context -> PASID directory ->
// PASID table produced for one {RID, PASID of the request} (no prefix: the context entry's
// RID_PASID, recorded in the entry). Fully associative, tree-PLRU replacement.
//
// Invalidation: context-cache descriptors remove a source ID's entries (under the function
// mask) or all of them; PASID-cache descriptors remove by DID, by DID and PASID, or all.
module iommu_pasid_cache
  import iommu_pkg::*;
#(
  parameter int unsigned Entries = 8,
  localparam int unsigned IdxBits = (Entries > 1) ? $clog2(Entries) : 1
) (
  input  logic        clk_i,
  input  logic        rst_ni,

  // Lookup by request
  input  rid_t        lk_rid_i,
  input  logic        lk_has_pasid_i,
  input  pasid_t      lk_pasid_i,
  output logic        lk_hit_o,
  output pasid_info_t lk_info_o,
  input  logic        lk_use_i,

  // Fill (key as for lookup)
  input  logic        fill_i,
  input  rid_t        fill_rid_i,
  input  logic        fill_has_pasid_i,
  input  pasid_t      fill_pasid_i,
  input  pasid_info_t fill_info_i,

  // Invalidation
  input  logic        inv_i,
  input  inv_cmd_t    inv_cmd_i
);

  typedef struct packed {
    rid_t        rid;
    logic        has_pasid;
    pasid_t      pasid;    // the prefix PASID (0 for requests without one)
    pasid_info_t info;
  } entry_t;

  logic [Entries-1:0] valid_q, valid_d;
  entry_t             entry_q [Entries];

  function automatic pasid_t key_pasid(input logic has_pasid, input pasid_t pasid);
    return has_pasid ? pasid : '0;
  endfunction

  logic [Entries-1:0] match;
  logic [IdxBits-1:0] hit_idx;
  always_comb begin
    for (int unsigned i = 0; i < Entries; i++) begin
      match[i] = valid_q[i] && entry_q[i].rid == lk_rid_i
                 && entry_q[i].has_pasid == lk_has_pasid_i
                 && entry_q[i].pasid == key_pasid(lk_has_pasid_i, lk_pasid_i);
    end
  end

  iommu_first_set #(
    .Width (Entries)
  ) u_hit_way (
    .bits_i (match),
    .any_o  (lk_hit_o),
    .idx_o  (hit_idx)
  );
  assign lk_info_o = entry_q[hit_idx].info;

  logic [IdxBits-1:0] victim, free_idx, fill_idx;
  logic               any_free;
  iommu_first_set #(
    .Width (Entries)
  ) u_free_way (
    .bits_i (~valid_q),
    .any_o  (any_free),
    .idx_o  (free_idx)
  );
  // The pipeline fills only after a miss for the same key, so a fill never duplicates.
  assign fill_idx = any_free ? free_idx : victim;

  iommu_plru #(
    .Entries (Entries)
  ) u_plru (
    .clk_i,
    .rst_ni,
    .use_i     ((lk_use_i && lk_hit_o) || fill_i),
    .use_idx_i (fill_i ? fill_idx : hit_idx),
    .victim_o  (victim)
  );

  logic [Entries-1:0] inv_hit;
  always_comb begin
    for (int unsigned i = 0; i < Entries; i++) begin
      logic did_ok, pasid_ok, sid_ok;
      did_ok   = entry_q[i].info.did == inv_cmd_i.did;
      pasid_ok = entry_q[i].info.pasid == inv_cmd_i.pasid;
      sid_ok   = {entry_q[i].rid[15:3], entry_q[i].rid[2:0] & ~inv_cmd_i.sid_mask}
                 == {inv_cmd_i.sid[15:3], inv_cmd_i.sid[2:0] & ~inv_cmd_i.sid_mask};
      unique case (inv_cmd_i.kind)
        InvAll:      inv_hit[i] = 1'b1;
        InvDid:      inv_hit[i] = did_ok;
        InvDidPasid: inv_hit[i] = did_ok && pasid_ok;
        InvSid:      inv_hit[i] = sid_ok;
        default:     inv_hit[i] = 1'b0;
      endcase
    end
  end

  always_comb begin
    valid_d = valid_q;
    if (inv_i && inv_cmd_i.pcache) valid_d = valid_q & ~inv_hit;
    if (fill_i) valid_d[fill_idx] = 1'b1;
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      valid_q <= '0;
    end else begin
      valid_q <= valid_d;
    end
  end

  always_ff @(posedge clk_i) begin
    if (fill_i) begin
      entry_q[fill_idx] <= '{
        rid:       fill_rid_i,
        has_pasid: fill_has_pasid_i,
        pasid:     key_pasid(fill_has_pasid_i, fill_pasid_i),
        info:      fill_info_i
      };
    end
  end

  logic unused_pcache;
  assign unused_pcache = ^{inv_cmd_i.iotlb, inv_cmd_i.addr, inv_cmd_i.am};

  // The pipeline never fills and invalidates in the same cycle.
  `ASSERT_NEVER(FillInvExclusive_A, fill_i && inv_i)
  // A fill never duplicates a key the cache holds.
  `ASSERT_NEVER(FillNoDuplicate_A, fill_i && lk_hit_o && lk_rid_i == fill_rid_i
                                   && lk_has_pasid_i == fill_has_pasid_i
                                   && key_pasid(lk_has_pasid_i, lk_pasid_i)
                                      == key_pasid(fill_has_pasid_i, fill_pasid_i))

endmodule
