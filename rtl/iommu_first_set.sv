// Index of the lowest set bit of `bits_i` (a trailing-zero count), and whether any is set.
// Used by the caches to pick the hitting way and the first free way. The count is a
// population count of the bits below the lowest set one, which Verilator evaluates in a
// constant number of operations (a priority loop costs it one branch per bit).
module iommu_first_set #(
  parameter int unsigned Width = 32,
  localparam int unsigned IdxBits = (Width > 1) ? $clog2(Width) : 1
) (
  input  logic [Width-1:0]   bits_i,
  output logic               any_o,
  output logic [IdxBits-1:0] idx_o
);

  logic [Width-1:0] lowest, below;
  assign lowest = bits_i & (~bits_i + Width'(1));  // the lowest set bit alone
  assign below  = lowest - Width'(1);               // the bits under it (all when none is set)
  assign any_o  = |bits_i;
  assign idx_o  = any_o ? IdxBits'($countones(below)) : '0;

endmodule
