// Way management of a fully associative cache of Entries ways with tree-PLRU replacement,
// shared by the IOTLB and the PASID-entry cache: the valid bits, the hitting way, the way a
// fill writes and the replacement state. The user holds the entries (an unpacked array
// indexed by lk_idx_o and fill_idx_o, written on fill_i), compares tags and matches
// invalidations on them. (Holding the entries here and handing them out through an
// unpacked-array port costs Verilator about a fifth of the simulation speed.)
//
// Lookup is combinational: lk_match_i names the ways whose tag matches (valid or not); the
// lowest valid one hits (two ways can match after a mapping changed size: either is a legal
// translation until an invalidation removes both). A hit used (lk_use_i) or a fill marks its
// way most recently used.
//
// A fill writes the way that hit when fill_at_hit_i says the fill is for the key that hit
// (a re-walk replaces its entry), else the lowest valid way of fill_match_i (the ways whose
// tag equals the fill's key, for a user whose fill key differs from its lookup key; '0 when
// the user has no such compare), else the lowest invalid way, else the PLRU victim. An
// invalidation clears, in one cycle, the valid bit of every way in inv_hit_i; a fill in the
// same cycle sets its way's. A fill and a used hit in the same cycle: only the fill marks
// its way.
module iommu_fa_cache #(
  parameter int unsigned Entries = 8,
  localparam int unsigned IdxBits = (Entries > 1) ? $clog2(Entries) : 1
) (
  input  logic               clk_i,
  input  logic               rst_ni,

  // Lookup
  input  logic [Entries-1:0] lk_match_i,
  output logic               lk_hit_o,
  output logic [IdxBits-1:0] lk_idx_o,
  input  logic               lk_use_i,     // the hit was used: update replacement state

  // Fill
  input  logic               fill_i,
  input  logic               fill_at_hit_i, // the fill is for the key that hits: replace it
  input  logic [Entries-1:0] fill_match_i,  // ways whose tag equals the fill's key
  output logic [IdxBits-1:0] fill_idx_o,

  // Invalidation
  input  logic               inv_i,
  input  logic [Entries-1:0] inv_hit_i
);

  logic [Entries-1:0] valid_q, valid_d;

  // ---------------------------------------------------------------------------------------
  // Lookup
  // ---------------------------------------------------------------------------------------
  logic [Entries-1:0] match;
  logic [IdxBits-1:0] hit_idx;
  assign match = valid_q & lk_match_i;

  iommu_first_set #(
    .Width (Entries)
  ) u_hit_way (
    .bits_i (match),
    .any_o  (lk_hit_o),
    .idx_o  (hit_idx)
  );
  assign lk_idx_o = hit_idx;

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

  // A valid way that already holds the fill's key is overwritten.
  logic [IdxBits-1:0] same_idx;
  logic               any_same;
  iommu_first_set #(
    .Width (Entries)
  ) u_same_way (
    .bits_i (valid_q & fill_match_i),
    .any_o  (any_same),
    .idx_o  (same_idx)
  );

  always_comb begin
    if (fill_at_hit_i && lk_hit_o) fill_idx = hit_idx;
    else if (any_same)             fill_idx = same_idx;
    else if (any_free)             fill_idx = free_idx;
    else                           fill_idx = victim;
  end

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
  // Valid bits and entries
  // ---------------------------------------------------------------------------------------
  always_comb begin
    valid_d = valid_q;
    if (inv_i) valid_d = valid_q & ~inv_hit_i;
    if (fill_i) valid_d[fill_idx] = 1'b1;
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      valid_q <= '0;
    end else begin
      valid_q <= valid_d;
    end
  end

  assign fill_idx_o = fill_idx;

  // A hit names a valid way.
  `ASSERT(HitValid_A, !lk_hit_o || valid_q[hit_idx])

endmodule
