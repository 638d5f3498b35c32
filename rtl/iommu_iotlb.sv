`ifndef IOMMU_ASSERT_SVH
`include "iommu_assert.svh"
`endif

// PASID-tagged IOTLB: fully associative, Entries ways, tree-PLRU replacement.
//
// Tag {DID, PASID, page number, page size (4K/2M/1G)}; data {PA frame, R, W, U/S, XD}.
// The PASID in the tag is the one the translation used: the prefix PASID, or RID_PASID for
// requests without a prefix, so RID- and PASID-tagged translations of one domain are
// separate entries, exactly as VT-d tags them.
//
// Lookup is combinational. A fill writes the way that hit (a re-walk after a failed
// permission check replaces its entry), else the first invalid way, else the PLRU victim.
// An invalidation removes, in one cycle, every entry whose tag meets the command; the
// address match covers any overlap of the entry's page and the 2^am-page range.
module iommu_iotlb
  import iommu_pkg::*;
#(
  parameter int unsigned Entries = 32,
  localparam int unsigned IdxBits = (Entries > 1) ? $clog2(Entries) : 1
) (
  input  logic     clk_i,
  input  logic     rst_ni,

  // Lookup
  input  did_t     lk_did_i,
  input  pasid_t   lk_pasid_i,
  input  pfn_t     lk_page_i,
  output logic     lk_hit_o,
  output leaf_t    lk_leaf_o,
  input  logic     lk_use_i,     // the hit was used: update replacement state

  // Fill
  input  logic     fill_i,
  input  did_t     fill_did_i,
  input  pasid_t   fill_pasid_i,
  input  pfn_t     fill_page_i,  // any page inside the leaf
  input  leaf_t    fill_leaf_i,

  // Invalidation
  input  logic     inv_i,
  input  inv_cmd_t inv_cmd_i
);

  typedef struct packed {
    did_t   did;
    pasid_t pasid;
    pfn_t   page;   // aligned to the leaf size
    leaf_t  leaf;
  } entry_t;

  logic   [Entries-1:0] valid_q, valid_d;
  entry_t               entry_q [Entries];

  // Page-number bits a leaf of `size` ignores.
  function automatic pfn_t size_mask(input pgsize_e size);
    unique case (size)
      Size2M:  return pfn_t'(9'h1ff);
      Size1G:  return pfn_t'(18'h3ffff);
      default: return '0;
    endcase
  endfunction

  function automatic pfn_t align(input pfn_t page, input pgsize_e size);
    return page & ~size_mask(size);
  endfunction

  // ---------------------------------------------------------------------------------------
  // Lookup
  // ---------------------------------------------------------------------------------------
  logic [Entries-1:0] match;
  logic [IdxBits-1:0] hit_idx;
  always_comb begin
    for (int unsigned i = 0; i < Entries; i++) begin
      match[i] = valid_q[i] && entry_q[i].did == lk_did_i && entry_q[i].pasid == lk_pasid_i
                 && entry_q[i].page == align(lk_page_i, entry_q[i].leaf.size);
    end
  end

  // Two ways can both match after a mapping changed size; either is a legal translation
  // until an invalidation removes both, so the lowest index wins.
  iommu_first_set #(
    .Width (Entries)
  ) u_hit_way (
    .bits_i (match),
    .any_o  (lk_hit_o),
    .idx_o  (hit_idx)
  );
  assign lk_leaf_o = entry_q[hit_idx].leaf;

  // ---------------------------------------------------------------------------------------
  // Replacement
  // ---------------------------------------------------------------------------------------
  logic [IdxBits-1:0] victim, free_idx, fill_idx;
  logic               any_free;
  iommu_first_set #(
    .Width (Entries)
  ) u_free_way (
    .bits_i (~valid_q),
    .any_o  (any_free),
    .idx_o  (free_idx)
  );

  // A fill for the address that hit replaces that entry.
  logic fill_hits;
  assign fill_hits = lk_hit_o && fill_did_i == lk_did_i && fill_pasid_i == lk_pasid_i
                     && fill_page_i == lk_page_i;
  assign fill_idx  = fill_hits ? hit_idx : (any_free ? free_idx : victim);

  iommu_plru #(
    .Entries (Entries)
  ) u_plru (
    .clk_i,
    .rst_ni,
    .use_i     ((lk_use_i && lk_hit_o) || fill_i),
    .use_idx_i (fill_i ? fill_idx : hit_idx),
    .victim_o  (victim)
  );

  // ---------------------------------------------------------------------------------------
  // Invalidation
  // ---------------------------------------------------------------------------------------
  logic [Entries-1:0] inv_hit;
  always_comb begin
    pfn_t range_mask;
    range_mask = (inv_cmd_i.am >= 6'd36) ? '1 : pfn_t'((64'd1 << inv_cmd_i.am) - 64'd1);
    for (int unsigned i = 0; i < Entries; i++) begin
      logic did_ok, pasid_ok, addr_ok;
      pfn_t ignore;
      // Two aligned power-of-two ranges overlap iff they agree above the larger one.
      ignore   = range_mask | size_mask(entry_q[i].leaf.size);
      did_ok   = entry_q[i].did == inv_cmd_i.did;
      pasid_ok = entry_q[i].pasid == inv_cmd_i.pasid;
      addr_ok  = ((entry_q[i].page ^ inv_cmd_i.addr) & ~ignore) == '0;
      unique case (inv_cmd_i.kind)
        InvAll:          inv_hit[i] = 1'b1;
        InvDid:          inv_hit[i] = did_ok;
        InvDidPage:      inv_hit[i] = did_ok && addr_ok;
        InvDidPasid:     inv_hit[i] = did_ok && pasid_ok;
        InvDidPasidPage: inv_hit[i] = did_ok && pasid_ok && addr_ok;
        default:         inv_hit[i] = 1'b0;
      endcase
    end
  end

  always_comb begin
    valid_d = valid_q;
    if (inv_i && inv_cmd_i.iotlb) valid_d = valid_q & ~inv_hit;
    if (fill_i) valid_d[fill_idx] = 1'b1;
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      valid_q <= '0;
    end else begin
      valid_q <= valid_d;
    end
  end

  // Entry payloads are qualified by valid_q and need no reset.
  always_ff @(posedge clk_i) begin
    if (fill_i) begin
      entry_q[fill_idx] <= '{
        did:   fill_did_i,
        pasid: fill_pasid_i,
        page:  align(fill_page_i, fill_leaf_i.size),
        leaf:  fill_leaf_i
      };
    end
  end

  logic unused_iotlb;
  assign unused_iotlb = ^{inv_cmd_i.pcache, inv_cmd_i.sid, inv_cmd_i.sid_mask};

  // The pipeline never fills and invalidates in the same cycle: invalidations run only
  // when no translation is in flight.
  `ASSERT_NEVER(FillInvExclusive_A, fill_i && inv_i)
  `ASSERT_NEVER(FillSizeValid_A, fill_i && fill_leaf_i.size == 2'd3)

endmodule
