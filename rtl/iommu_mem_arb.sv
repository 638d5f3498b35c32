// Memory-port arbiter: two clients (0: walker, 1: invalidation queue), one request
// outstanding on the port at a time, fixed priority to the walker so a translation in
// flight finishes first. The response goes to the client whose request is outstanding.
module iommu_mem_arb #(
  parameter int unsigned NumClients = 2,
  localparam int unsigned IdxBits = $clog2(NumClients)
) (
  input  logic        clk_i,
  input  logic        rst_ni,

  input  logic [NumClients-1:0]  req_valid_i,
  output logic [NumClients-1:0]  req_ready_o,
  input  logic [NumClients-1:0]  req_write_i,
  input  logic [NumClients-1:0][63:0] req_addr_i,
  input  logic [NumClients-1:0][63:0] req_wdata_i,
  input  logic [NumClients-1:0][7:0]  req_wstrb_i,
  output logic [NumClients-1:0]  rsp_valid_o,

  output logic        mem_req_valid_o,
  input  logic        mem_req_ready_i,
  output logic        mem_req_write_o,
  output logic [63:0] mem_req_addr_o,
  output logic [63:0] mem_req_wdata_o,
  output logic [7:0]  mem_req_wstrb_o,
  input  logic        mem_rsp_valid_i
);

  logic busy_q, busy_d;   // a request is outstanding
  logic [IdxBits-1:0] owner_q, owner_d, sel;
  logic any;

  // Round robin: the first requester after the last one granted.
  logic [NumClients-1:0] after;
  logic [IdxBits-1:0]    sel_hi, sel_lo;
  logic                  any_hi;
  always_comb begin
    for (int unsigned i = 0; i < NumClients; i++) after[i] = IdxBits'(i) > owner_q;
  end
  iommu_first_set #(.Width(NumClients)) u_hi (.bits_i(req_valid_i & after), .any_o(any_hi),
                                              .idx_o(sel_hi));
  iommu_first_set #(.Width(NumClients)) u_lo (.bits_i(req_valid_i), .any_o(any), .idx_o(sel_lo));
  assign sel = any_hi ? sel_hi : sel_lo;

  assign mem_req_valid_o = !busy_q && any;
  assign mem_req_write_o = req_write_i[sel];
  assign mem_req_addr_o  = req_addr_i[sel];
  assign mem_req_wdata_o = req_wdata_i[sel];
  assign mem_req_wstrb_o = req_wstrb_i[sel];

  always_comb begin
    req_ready_o = '0;
    if (!busy_q) req_ready_o[sel] = mem_req_ready_i;
  end

  always_comb begin
    rsp_valid_o = '0;
    rsp_valid_o[owner_q] = busy_q && mem_rsp_valid_i;
  end

  always_comb begin
    busy_d  = busy_q;
    owner_d = owner_q;
    if (mem_req_valid_o && mem_req_ready_i) begin
      busy_d  = 1'b1;
      owner_d = sel;
    end else if (busy_q && mem_rsp_valid_i) begin
      busy_d = 1'b0;
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      busy_q  <= 1'b0;
      owner_q <= '0;
    end else begin
      busy_q  <= busy_d;
      owner_q <= owner_d;
    end
  end

  // A memory response only for the request outstanding.
  `ASSERT_NEVER(RspWithoutReq_A, mem_rsp_valid_i && !busy_q)

endmodule
