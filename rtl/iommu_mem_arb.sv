// Memory-port arbiter: NumClients clients share one ID-tagged memory port. Client i's
// requests carry ID i. Each client has at most one request outstanding, but different
// clients may be outstanding at the same time, so the port carries up to NumClients
// requests; responses come back in any order and each goes to the client its ID names.
// Among the clients that request and have nothing outstanding, the grant goes round-robin
// (starting after the client granted last), so no client starves.
//
// In iommu_top: client 0 is the walker, client 1 the invalidation queue.
module iommu_mem_arb
  import iommu_pkg::*;
#(
  parameter int unsigned NumClients = 2  // 1 .. 2**MemIdBits
) (
  input  logic                        clk_i,
  input  logic                        rst_ni,

  input  logic [NumClients-1:0]       req_valid_i,
  output logic [NumClients-1:0]       req_ready_o,
  input  logic [NumClients-1:0]       req_write_i,
  input  logic [NumClients-1:0][63:0] req_addr_i,
  input  logic [NumClients-1:0][63:0] req_wdata_i,
  input  logic [NumClients-1:0][7:0]  req_wstrb_i,
  output logic [NumClients-1:0]       rsp_valid_o,

  output logic                        mem_req_valid_o,
  input  logic                        mem_req_ready_i,
  output mem_id_t                     mem_req_id_o,
  output logic                        mem_req_write_o,
  output logic [63:0]                 mem_req_addr_o,
  output logic [63:0]                 mem_req_wdata_o,
  output logic [7:0]                  mem_req_wstrb_o,
  input  logic                        mem_rsp_valid_i,
  input  mem_id_t                     mem_rsp_id_i
);

  logic [NumClients-1:0] out_q, out_d;   // client i has a request outstanding
  mem_id_t               next_q, next_d; // the client round-robin tries first
  logic [NumClients-1:0] cand;           // requesting, nothing outstanding
  logic [NumClients-1:0] gnt;            // one-hot: the client presented on the port
  logic [NumClients-1:0] rsp_hit;        // one-hot: the client the response's ID names

  assign cand = req_valid_i & ~out_q;

  // Round-robin: the first candidate at or after next_q, else the first candidate. (Word
  // operations: the lowest set bit of a vector v is v & -v.)
  logic [NumClients-1:0] from_next, pick;
  assign from_next = cand & ~((NumClients'(1) << next_q) - NumClients'(1));
  assign pick      = (from_next != '0) ? from_next : cand;
  assign gnt       = pick & (~pick + NumClients'(1));

  // The granted client's request (AND-OR mux on the one-hot grant).
  always_comb begin
    mem_req_id_o    = '0;
    mem_req_write_o = 1'b0;
    mem_req_addr_o  = '0;
    mem_req_wdata_o = '0;
    mem_req_wstrb_o = '0;
    for (int unsigned i = 0; i < NumClients; i++) begin
      if (gnt[i]) begin
        mem_req_id_o    = mem_req_id_o    | mem_id_t'(i);
        mem_req_write_o = mem_req_write_o | req_write_i[i];
        mem_req_addr_o  = mem_req_addr_o  | req_addr_i[i];
        mem_req_wdata_o = mem_req_wdata_o | req_wdata_i[i];
        mem_req_wstrb_o = mem_req_wstrb_o | req_wstrb_i[i];
      end
    end
  end

  assign mem_req_valid_o = |gnt;
  assign req_ready_o     = gnt & {NumClients{mem_req_ready_i}};

  assign rsp_hit = NumClients'(1) << mem_rsp_id_i;  // none for an ID past the last client
  assign rsp_valid_o = rsp_hit & out_q & {NumClients{mem_rsp_valid_i}};

  always_comb begin
    out_d  = out_q & ~rsp_valid_o;
    next_d = next_q;
    if (mem_req_valid_o && mem_req_ready_i) begin
      out_d  = out_d | gnt;
      next_d = (mem_req_id_o == mem_id_t'(NumClients - 1)) ? '0 : mem_req_id_o + 1'b1;
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      out_q  <= '0;
      next_q <= '0;
    end else begin
      out_q  <= out_d;
      next_q <= next_d;
    end
  end

  `ASSERT_INIT(NumClientsFitIds_A, NumClients >= 1 && NumClients <= 2 ** MemIdBits)
  // A response only for an ID with a request outstanding.
  `ASSERT_NEVER(RspWithoutReq_A, mem_rsp_valid_i && !(|(rsp_hit & out_q)))
  // A client never requests while its own request is outstanding.
  `ASSERT_NEVER(ReqWhileOutstanding_A, |(req_valid_i & out_q))
  // The grant is one client, and one that may request.
  `ASSERT(GntOneHot_A, $onehot0(gnt) && (gnt & ~cand) == '0)

endmodule
