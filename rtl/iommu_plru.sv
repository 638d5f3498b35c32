// Tree pseudo-LRU replacement for Entries ways (a power of two). `use_i` marks way
// `use_idx_i` as most recently used; `victim_o` is the way the tree points away from.
module iommu_plru #(
  parameter int unsigned Entries = 32,
  localparam int unsigned IdxBits = (Entries > 1) ? $clog2(Entries) : 1
) (
  input  logic               clk_i,
  input  logic               rst_ni,
  input  logic               use_i,
  input  logic [IdxBits-1:0] use_idx_i,
  output logic [IdxBits-1:0] victim_o
);

  localparam int unsigned Nodes = (Entries > 1) ? Entries - 1 : 1;

  // Node n has children 2n+1 (bit 0: go left) and 2n+2 (bit 1: go right).
  logic [Nodes-1:0] tree_q;

  always_comb begin
    int unsigned node;
    node = 0;
    victim_o = '0;
    if (Entries > 1) begin
      for (int unsigned l = 0; l < IdxBits; l++) begin
        victim_o[IdxBits-1-l] = tree_q[node];
        node = 2 * node + 1 + 32'(tree_q[node]);
      end
    end
  end

  // The tree after a use of way `idx`: each node on its path points away from the used half.
  function automatic logic [Nodes-1:0] used(input logic [Nodes-1:0] tree,
                                            input logic [IdxBits-1:0] idx);
    int unsigned node;
    logic [Nodes-1:0] t;
    node = 0;
    t = tree;
    for (int unsigned l = 0; l < IdxBits; l++) begin
      t[node] = ~idx[IdxBits-1-l];
      node = 2 * node + 1 + 32'(idx[IdxBits-1-l]);
    end
    return t;
  endfunction

  // Updated only on a use (the update is then the only work for the simulator).
  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      tree_q <= '0;
    end else if (use_i && Entries > 1) begin
      tree_q <= used(tree_q, use_idx_i);
    end
  end

  // The tree needs a power-of-two number of ways, at least 2.
  `ASSERT_INIT(EntriesPow2_A, Entries >= 2 && (Entries & (Entries - 1)) == 0)

endmodule
