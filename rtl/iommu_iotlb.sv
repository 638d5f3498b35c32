// PASID-tagged IOTLB: fully associative, Entries ways, tree-PLRU replacement
// (iommu_fa_cache).
//
// Tag {DID, PASID, page number, page size (4K/2M/1G)}; data {PA frame, R, W, U/S, XD}.
// The PASID in the tag is the one the translation used: the prefix PASID, or RID_PASID for
// requests without a prefix, so RID- and PASID-tagged translations of one domain are
// separate entries, exactly as VT-d tags them.
//
// Lookup is combinational. A fill writes the way holding its tag (a re-walk after a failed
// permission check replaces its entry), else the first invalid way, else the PLRU victim.
// An invalidation removes, in one cycle, every entry whose tag meets the command; the
// address match covers any overlap of the entry's page and the 2^am-page range.
module iommu_iotlb
  import iommu_pkg::*;
#(
  parameter int unsigned Entries = 32
) (
  input  logic     clk_i,
  input  logic     rst_ni,

  // Lookup
  input  logic     lk_valid_i,   // a request is looked up: no hit otherwise
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

  localparam int unsigned IdxBits = (Entries > 1) ? $clog2(Entries) : 1;

  // The entries, a field per array (valid bits in u_cache): the tag {DID, PASID, page
  // aligned to the leaf size}, the page-number bits the leaf ignores, and the leaf. Plain
  // arrays cost the simulator a load per field read, where fields of a packed entry wider
  // than 64 bits cost shifts across words.
  did_t               way_did   [Entries];
  pasid_t             way_pasid [Entries];
  pfn_t               way_page  [Entries];
  pfn_t               way_mask  [Entries];
  leaf_t              way_leaf  [Entries];
  logic [Entries-1:0] tag_match, inv_hit;
  logic [IdxBits-1:0] hit_idx, fill_idx;

  // ---------------------------------------------------------------------------------------
  // Tag compare
  // ---------------------------------------------------------------------------------------
  // Matches are computed only when they are used (the lookup, the fill, the invalidation):
  // the same logic, and no work for the simulator in the other cycles. An entry's page is
  // aligned to its size, so it matches when the two agree above the size.
  always_comb begin
    tag_match = '0;
    if (lk_valid_i) begin
      for (int unsigned i = 0; i < Entries; i++) begin
        tag_match[i] = way_did[i] == lk_did_i && way_pasid[i] == lk_pasid_i
                       && ((way_page[i] ^ lk_page_i) & ~way_mask[i]) == '0;
      end
    end
  end

  // A fill replaces the entry with its tag, if there is one.
  logic [Entries-1:0] fill_match;
  always_comb begin
    fill_match = '0;
    if (fill_i) begin
      for (int unsigned i = 0; i < Entries; i++) begin
        fill_match[i] = way_did[i] == fill_did_i && way_pasid[i] == fill_pasid_i
                        && way_leaf[i].size == fill_leaf_i.size
                        && way_page[i] == align(fill_page_i, fill_leaf_i.size);
      end
    end
  end

  // ---------------------------------------------------------------------------------------
  // Invalidation match
  // ---------------------------------------------------------------------------------------
  always_comb begin
    pfn_t range_mask, ignore;
    logic did_ok, pasid_ok, addr_ok;
    {range_mask, ignore, did_ok, pasid_ok, addr_ok} = '0;
    inv_hit = '0;
    if (inv_i) begin
      range_mask = (inv_cmd_i.am >= 6'd36) ? '1 : pfn_t'((64'd1 << inv_cmd_i.am) - 64'd1);
      for (int unsigned i = 0; i < Entries; i++) begin
        // Two aligned power-of-two ranges overlap iff they agree above the larger one.
        ignore   = range_mask | way_mask[i];
        did_ok   = way_did[i] == inv_cmd_i.did;
        pasid_ok = way_pasid[i] == inv_cmd_i.pasid;
        addr_ok  = ((way_page[i] ^ inv_cmd_i.addr) & ~ignore) == '0;
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
  end

  // ---------------------------------------------------------------------------------------
  // Valid bits and replacement; the entries
  // ---------------------------------------------------------------------------------------
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
    .inv_i         (inv_i && inv_cmd_i.iotlb),
    .inv_hit_i     (inv_hit)
  );
  assign lk_leaf_o = way_leaf[hit_idx];

  // Entry payloads are qualified by the valid bits and need no reset.
  always_ff @(posedge clk_i) begin
    if (fill_i) begin
      way_did[fill_idx]   <= fill_did_i;
      way_pasid[fill_idx] <= fill_pasid_i;
      way_page[fill_idx]  <= align(fill_page_i, fill_leaf_i.size);
      way_mask[fill_idx]  <= size_mask(fill_leaf_i.size);
      way_leaf[fill_idx]  <= fill_leaf_i;
    end
  end

  logic unused_iotlb;
  assign unused_iotlb = ^{inv_cmd_i.pcache, inv_cmd_i.sid, inv_cmd_i.sid_mask, inv_cmd_i.ih};

  // Never a fill and an invalidation in the same cycle: a walk in flight when an
  // invalidation takes effect is stale and fills nothing.
  `ASSERT_NEVER(FillInvExclusive_A, fill_i && inv_i)
  `ASSERT_NEVER(FillSizeValid_A, fill_i && fill_leaf_i.size == 2'd3)

endmodule
