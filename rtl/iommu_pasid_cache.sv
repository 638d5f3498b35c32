// Context/PASID-entry cache: what a walk of root -> scalable context -> PASID directory ->
// PASID table produced for one {RID, PASID of the request} (no prefix: the context entry's
// RID_PASID, recorded in the entry). Fully associative, tree-PLRU replacement
// (iommu_fa_cache).
//
// Invalidation: context-cache descriptors remove a source ID's entries (under the function
// mask) or all of them; PASID-cache descriptors remove by DID, by DID and PASID, or all.
module iommu_pasid_cache
  import iommu_pkg::*;
#(
  parameter int unsigned Entries = 8
) (
  input  logic        clk_i,
  input  logic        rst_ni,

  // Lookup by request
  input  logic        lk_valid_i,      // a request is looked up: no hit otherwise
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

  function automatic pasid_t key_pasid(input logic has_pasid, input pasid_t pasid);
    return has_pasid ? pasid : '0;
  endfunction

  localparam int unsigned IdxBits = (Entries > 1) ? $clog2(Entries) : 1;

  // The entries, a field per array (valid bits in u_cache): the key {RID, has PASID, the
  // prefix PASID (0 for requests without one)} and what the walk found. Plain arrays cost
  // the simulator a load per field read.
  rid_t               way_rid       [Entries];
  logic [Entries-1:0] way_has_pasid;
  pasid_t             way_pasid     [Entries];
  pasid_info_t        way_info      [Entries];
  logic [Entries-1:0] tag_match, inv_hit;
  logic [IdxBits-1:0] hit_idx, fill_idx;

  // Matches are computed only when they are used (the lookup, the invalidation, the fill):
  // the same logic, and no work for the simulator in the other cycles.
  always_comb begin
    tag_match = '0;
    if (lk_valid_i) begin
      for (int unsigned i = 0; i < Entries; i++) begin
        tag_match[i] = way_rid[i] == lk_rid_i
                       && way_has_pasid[i] == lk_has_pasid_i
                       && way_pasid[i] == key_pasid(lk_has_pasid_i, lk_pasid_i);
      end
    end
  end

  always_comb begin
    logic did_ok, pasid_ok, sid_ok;
    {did_ok, pasid_ok, sid_ok} = '0;
    inv_hit = '0;
    if (inv_i) begin
      for (int unsigned i = 0; i < Entries; i++) begin
        did_ok   = way_info[i].did == inv_cmd_i.did;
        pasid_ok = way_info[i].pasid == inv_cmd_i.pasid;
        sid_ok   = {way_rid[i][15:3], way_rid[i][2:0] & ~inv_cmd_i.sid_mask}
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
  end

  // A fill replaces the entry with its key, if there is one (two walks for one key can run
  // side by side).
  logic [Entries-1:0] fill_match;
  always_comb begin
    fill_match = '0;
    if (fill_i) begin
      for (int unsigned i = 0; i < Entries; i++) begin
        fill_match[i] = way_rid[i] == fill_rid_i
                        && way_has_pasid[i] == fill_has_pasid_i
                        && way_pasid[i] == key_pasid(fill_has_pasid_i, fill_pasid_i);
      end
    end
  end
  iommu_fa_cache #(
    .Entries (Entries)
  ) u_cache (
    .clk_i,
    .rst_ni,
    .lk_match_i    (tag_match),
    .lk_hit_o,
    .lk_idx_o      (hit_idx),
    .lk_use_i      (lk_use_i),
    .fill_i,
    .fill_match_i  (fill_match),
    .fill_idx_o    (fill_idx),
    .inv_i         (inv_i && inv_cmd_i.pcache),
    .inv_hit_i     (inv_hit)
  );
  assign lk_info_o = way_info[hit_idx];

  // Entry payloads are qualified by the valid bits and need no reset.
  always_ff @(posedge clk_i) begin
    if (fill_i) begin
      way_rid[fill_idx]       <= fill_rid_i;
      way_has_pasid[fill_idx] <= fill_has_pasid_i;
      way_pasid[fill_idx]     <= key_pasid(fill_has_pasid_i, fill_pasid_i);
      way_info[fill_idx]      <= fill_info_i;
    end
  end

  logic unused_pcache;
  assign unused_pcache = ^{inv_cmd_i.iotlb, inv_cmd_i.addr, inv_cmd_i.am, inv_cmd_i.ih};

  // Never a fill and an invalidation in the same cycle: a walk in flight when an
  // invalidation takes effect is stale and fills nothing.
  `ASSERT_NEVER(FillInvExclusive_A, fill_i && inv_i)

endmodule
