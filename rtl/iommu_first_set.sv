// Index of the lowest set bit of `bits_i` (a trailing-zero count), and whether any is set.
// Used by the caches to pick the hitting way and the first free way.
module iommu_first_set #(
  parameter int unsigned Width = 32,
  localparam int unsigned IdxBits = (Width > 1) ? $clog2(Width) : 1
) (
  input  logic [Width-1:0]   bits_i,
  output logic               any_o,
  output logic [IdxBits-1:0] idx_o
);

  always_comb begin
    idx_o = '0;
    for (int i = Width - 1; i >= 0; i--) begin
      if (bits_i[i]) idx_o = IdxBits'(i);
    end
  end
  assign any_o = |bits_i;

endmodule
