// Paging-structure caches (docs/contract.md section 5): the non-leaf paging entries of both
// stages, one fully associative array per level (level 4: PML4E, L4Entries ways; level 3:
// PDPTE, L3Entries; level 2: PDE, L2Entries), each on an iommu_fa_cache (tree PLRU).
//
// An entry of level L maps the region of address bits 47 : 12 + 9 * (L - 1) (512 GiB,
// 1 GiB, 2 MiB). Its tag is {DID, stage (ss: second stage), PASID, region}: a first-stage
// entry belongs to one PASID; a second-stage entry serves every PASID of its DID (the PASID
// is stored and ignored), as second-stage translations do. Its data is the next table's page
// frame and the permissions accumulated down to and including the entry (acc_t, as the
// walker accumulates them). Not-present entries and entries of failed walks are never
// filled: the user fills only after a walk that translated.
//
// Lookup is combinational, by {DID, PASID used, stage, page}; every level is looked up and
// the deepest hit wins (2, else 3, else 4). lk_level_o is that level (0 without a hit): the
// walk resumes at level lk_level_o - 1 from the table at lk_ptr_o with the permissions
// lk_acc_o (both 0 without a hit). lk_use_i (the walk started from the hit) marks the winning
// way most recently used; without a hit it is ignored.
//
// Fill: one key (fill_did_i, fill_pasid_i, fill_ss_i, fill_page_i) and, for each level L
// the walk read that was not the leaf, fill_level_valid_i[L] with that entry's next-table
// frame fill_ptr_i[L] and accumulated permissions fill_acc_i[L]; all levels are written in
// the same cycle (fill_i). A level writes the valid way that already holds the key, else its
// lowest invalid way, else its PLRU victim, so no level ever holds a key twice. A fill and a
// used hit of the same level in the same cycle: only the fill updates that level's PLRU.
//
// Invalidation (commands with inv_cmd_i.iotlb set), in one cycle:
//   InvAll           every entry
//   InvDid           the DID's entries, both stages
//   InvDidPage       IH = 0: the DID's entries whose region overlaps [addr, addr + 2^am
//                    pages), both stages (legal over-invalidation, as the IOTLB does);
//                    IH = 1: none (the hint lets non-leaf entries stay)
//   InvDidPasid      the first-stage entries of (DID, PASID)
//   InvDidPasidPage  IH = 0: the first-stage entries of (DID, PASID) whose region overlaps
//                    the range; IH = 1: none
// Context- and PASID-cache commands remove nothing (the walk's own entries are not theirs).
module iommu_psc
  import iommu_pkg::*;
#(
  parameter int unsigned L4Entries = 2,
  parameter int unsigned L3Entries = 4,
  parameter int unsigned L2Entries = 16
) (
  input  logic           clk_i,
  // The named assertions are disabled by `disable iff (!rst_ni)`, which reads the
  // asynchronous reset at the clock edge (a warning only while this module is the top).
  /* verilator lint_off SYNCASYNCNET */
  input  logic           rst_ni,
  /* verilator lint_on SYNCASYNCNET */

  // Lookup
  input  logic           lk_valid_i,       // a request is looked up: no hit otherwise
  input  did_t           lk_did_i,
  input  pasid_t         lk_pasid_i,       // the PASID used (ignored by second-stage entries)
  input  logic           lk_ss_i,          // second stage (PGTT), else first stage
  input  pfn_t           lk_page_i,        // the request's page number
  output logic           lk_hit_o,
  output logic [2:0]     lk_level_o,       // 2, 3 or 4: the deepest level that hits; 0: none
  output pfn_t           lk_ptr_o,         // next table (level lk_level_o - 1)
  output acc_t           lk_acc_o,         // permissions accumulated down to the hit entry
  input  logic           lk_use_i,         // a walk started from the hit: mark it used

  // Fill (one key, indexed by level 4..2)
  input  logic           fill_i,
  input  did_t           fill_did_i,
  input  pasid_t         fill_pasid_i,
  input  logic           fill_ss_i,
  input  pfn_t           fill_page_i,      // any page of the walk's address
  input  logic   [4:2]   fill_level_valid_i,
  input  pfn_t   [4:2]   fill_ptr_i,
  input  acc_t   [4:2]   fill_acc_i,

  // Invalidation
  input  logic           inv_i,
  input  inv_cmd_t       inv_cmd_i
);

  // Page-number bits a page-selective invalidation covers beyond its first page.
  pfn_t range_mask;
  assign range_mask = (inv_cmd_i.am >= 6'd36) ? '1 : pfn_t'((64'd1 << inv_cmd_i.am) - 64'd1);

  logic [4:2]       level_hit;
  pfn_t [4:2]       level_ptr;
  acc_t [4:2]       level_acc;

  for (genvar L = 2; L <= 4; L++) begin : g_level
    localparam int unsigned Entries = (L == 2) ? L2Entries : (L == 3) ? L3Entries : L4Entries;
    localparam int unsigned IdxBits = (Entries > 1) ? $clog2(Entries) : 1;
    // Lowest address bit of the region an entry maps: 21, 30, 39.
    localparam int unsigned Lo = 12 + 9 * (L - 1);

    // The entries, a field per array (valid bits in u_cache): {DID, stage, PASID (first
    // stage only; stored and ignored for second stage), region} and the next table's
    // address and permissions. Plain arrays cost the simulator a load per field read.
    did_t                way_did    [Entries];
    logic [Entries-1:0]  way_ss;
    pasid_t              way_pasid  [Entries];
    logic [HawBits-1:Lo] way_region [Entries];
    pfn_t                way_ptr    [Entries];
    acc_t                way_acc    [Entries];
    logic [Entries-1:0] lk_match, fill_match, inv_hit;
    logic [IdxBits-1:0] hit_idx, fill_idx;
    logic               hit, fill;

    assign fill = fill_i && fill_level_valid_i[L];

    // -------------------------------------------------------------------------------------
    // Tag compare: lookup key and fill key
    // -------------------------------------------------------------------------------------
    // The matches are computed only when they are used (the lookup, the fill, the
    // invalidation): the same logic, and no work for the simulator in the other cycles.
    always_comb begin
      lk_match = '0;
      if (lk_valid_i) begin
        for (int unsigned i = 0; i < Entries; i++) begin
          lk_match[i] = way_did[i] == lk_did_i && way_ss[i] == lk_ss_i
                        && (lk_ss_i || way_pasid[i] == lk_pasid_i)
                        && way_region[i] == lk_page_i[HawBits-1:Lo];
        end
      end
    end
    always_comb begin
      fill_match = '0;
      if (fill) begin
        for (int unsigned i = 0; i < Entries; i++) begin
          fill_match[i] = way_did[i] == fill_did_i && way_ss[i] == fill_ss_i
                          && (fill_ss_i || way_pasid[i] == fill_pasid_i)
                          && way_region[i] == fill_page_i[HawBits-1:Lo];
        end
      end
    end

    // -------------------------------------------------------------------------------------
    // Invalidation match
    // -------------------------------------------------------------------------------------
    always_comb begin
      logic did_ok, fs_pasid_ok, addr_ok;
      {did_ok, fs_pasid_ok, addr_ok} = '0;
      inv_hit = '0;
      if (inv_i) begin
        for (int unsigned i = 0; i < Entries; i++) begin
          did_ok      = way_did[i] == inv_cmd_i.did;
          fs_pasid_ok = !way_ss[i] && way_pasid[i] == inv_cmd_i.pasid;
          // Two aligned power-of-two ranges overlap iff they agree above the larger one.
          addr_ok     = ((way_region[i] ^ inv_cmd_i.addr[HawBits-1:Lo])
                         & ~range_mask[HawBits-1:Lo]) == '0;
          unique case (inv_cmd_i.kind)
            InvAll:          inv_hit[i] = 1'b1;
            InvDid:          inv_hit[i] = did_ok;
            InvDidPage:      inv_hit[i] = !inv_cmd_i.ih && did_ok && addr_ok;
            InvDidPasid:     inv_hit[i] = did_ok && fs_pasid_ok;
            InvDidPasidPage: inv_hit[i] = !inv_cmd_i.ih && did_ok && fs_pasid_ok && addr_ok;
            default:         inv_hit[i] = 1'b0;
          endcase
        end
      end
    end

    // -------------------------------------------------------------------------------------
    // Valid bits and replacement; the entries
    // -------------------------------------------------------------------------------------
    iommu_fa_cache #(
      .Entries (Entries)
    ) u_cache (
      .clk_i,
      .rst_ni,
      .lk_match_i    (lk_match),
      .lk_hit_o      (hit),
      .lk_idx_o      (hit_idx),
      .lk_use_i      (lk_use_i && lk_level_o == 3'(L)),
      .fill_i        (fill),
      .fill_match_i  (fill_match),
      .fill_idx_o    (fill_idx),
      .inv_i         (inv_i && inv_cmd_i.iotlb),
      .inv_hit_i     (inv_hit)
    );

    assign level_hit[L] = hit;
    assign level_ptr[L] = way_ptr[hit_idx];
    assign level_acc[L] = way_acc[hit_idx];

    // Entry payloads are qualified by the valid bits and need no reset.
    always_ff @(posedge clk_i) begin
      if (fill) begin
        way_did[fill_idx]    <= fill_did_i;
        way_ss[fill_idx]     <= fill_ss_i;
        way_pasid[fill_idx]  <= fill_pasid_i;
        way_region[fill_idx] <= fill_page_i[HawBits-1:Lo];
        way_ptr[fill_idx]    <= fill_ptr_i[L];
        way_acc[fill_idx]    <= fill_acc_i[L];
      end
    end

    // A fill for the key that hits this level replaces the way that hits.
    `ASSERT(FillReplacesHit_A, !(fill && hit && fill_match == lk_match) || fill_idx == hit_idx)
    `ASSERT_KNOWN_IF(FillPtrKnown_A, {fill_ptr_i[L], fill_acc_i[L]}, fill)
  end

  // ---------------------------------------------------------------------------------------
  // The deepest level that hits
  // ---------------------------------------------------------------------------------------
  always_comb begin
    lk_level_o = 3'd0;
    lk_ptr_o   = '0;
    lk_acc_o   = '0;
    if (level_hit[2]) begin
      lk_level_o = 3'd2;
      lk_ptr_o   = level_ptr[2];
      lk_acc_o   = level_acc[2];
    end else if (level_hit[3]) begin
      lk_level_o = 3'd3;
      lk_ptr_o   = level_ptr[3];
      lk_acc_o   = level_acc[3];
    end else if (level_hit[4]) begin
      lk_level_o = 3'd4;
      lk_ptr_o   = level_ptr[4];
      lk_acc_o   = level_acc[4];
    end
  end
  assign lk_hit_o = |level_hit;

  // The region tags start at bit 21: a page's offset inside its 2 MiB region is no part of
  // any key; context- and PASID-cache fields are not this cache's.
  logic unused_psc;
  assign unused_psc = ^{lk_page_i[20:12], fill_page_i[20:12], inv_cmd_i.addr[20:12],
                        range_mask[20:12], inv_cmd_i.pcache, inv_cmd_i.sid,
                        inv_cmd_i.sid_mask};

  // Never a fill and an invalidation in the same cycle: a walk in flight when an
  // invalidation takes effect is stale and fills nothing.
  `ASSERT_NEVER(FillInvExclusive_A, fill_i && inv_i)
  `ASSERT(LevelHit_A, lk_hit_o == (lk_level_o inside {3'd2, 3'd3, 3'd4}))
  `ASSERT_KNOWN_IF(FillKeyKnown_A, {fill_did_i, fill_pasid_i, fill_ss_i, fill_page_i,
                                    fill_level_valid_i}, fill_i)

endmodule
