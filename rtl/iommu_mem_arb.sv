// Memory-port arbiter: two clients (0: walker, 1: invalidation queue), one request
// outstanding on the port at a time, fixed priority to the walker so a translation in
// flight finishes first. The response goes to the client whose request is outstanding.
module iommu_mem_arb (
  input  logic        clk_i,
  input  logic        rst_ni,

  input  logic [1:0]  req_valid_i,
  output logic [1:0]  req_ready_o,
  input  logic [1:0]  req_write_i,
  input  logic [1:0][63:0] req_addr_i,
  input  logic [1:0][63:0] req_wdata_i,
  input  logic [1:0][7:0]  req_wstrb_i,
  output logic [1:0]  rsp_valid_o,

  output logic        mem_req_valid_o,
  input  logic        mem_req_ready_i,
  output logic        mem_req_write_o,
  output logic [63:0] mem_req_addr_o,
  output logic [63:0] mem_req_wdata_o,
  output logic [7:0]  mem_req_wstrb_o,
  input  logic        mem_rsp_valid_i
);

  logic busy_q, busy_d;   // a request is outstanding
  logic owner_q, owner_d;
  logic sel;

  assign sel = req_valid_i[0] ? 1'b0 : 1'b1;

  assign mem_req_valid_o = !busy_q && |req_valid_i;
  assign mem_req_write_o = req_write_i[sel];
  assign mem_req_addr_o  = req_addr_i[sel];
  assign mem_req_wdata_o = req_wdata_i[sel];
  assign mem_req_wstrb_o = req_wstrb_i[sel];

  always_comb begin
    req_ready_o = '0;
    if (!busy_q) req_ready_o[sel] = mem_req_ready_i;
  end

  assign rsp_valid_o[0] = busy_q && mem_rsp_valid_i && !owner_q;
  assign rsp_valid_o[1] = busy_q && mem_rsp_valid_i && owner_q;

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
      owner_q <= 1'b0;
    end else begin
      busy_q  <= busy_d;
      owner_q <= owner_d;
    end
  end

  // A memory response only for the request outstanding.
  `ASSERT_NEVER(RspWithoutReq_A, mem_rsp_valid_i && !busy_q)

endmodule
