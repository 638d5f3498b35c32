// TLP ingress decode (combinational): recognises memory requests, extracts the PASID
// end-to-end prefix, applies the malformed-request rules of docs/contract.md section 3 and
// computes what a UR completion for the request must carry (PCIe Byte Count and Lower
// Address rules for memory reads). The Address Type is passed on: AT = 01b is an ATS
// Translation Request (a read; on a write it is malformed, like AT = 11b), AT = 10b a
// translated request.
module iommu_tlp_decode
  import iommu_pkg::*;
(
  input  logic [2:0]                       nprefix_i,  // end-to-end prefix DWs (0..4)
  input  logic [MaxPrefixes-1:0][31:0]     prefix_i,   // [0] first on the wire
  input  logic [3:0][31:0]                 hdr_i,      // header DW0..DW3

  output logic                             is_mem_o,   // memory read or write request
  output logic                             posted_o,   // memory write
  output malformed_e                       malformed_o,
  output mem_req_t                         req_o,
  output logic [11:0]                      byte_count_o,  // 0 encodes 4096
  output logic [6:0]                       lower_addr_o
);

  logic [2:0] fmt;
  logic [4:0] typ;
  logic [1:0] at;
  logic [9:0] len_field;
  logic [10:0] len_dw;  // 1..1024
  logic [3:0] first_be, last_be;
  logic [63:0] addr;

  assign fmt       = hdr_i[0][31:29];
  assign typ       = hdr_i[0][28:24];
  assign at        = hdr_i[0][11:10];
  assign len_field = hdr_i[0][9:0];
  assign len_dw    = (len_field == 10'd0) ? 11'd1024 : {1'b0, len_field};
  assign first_be  = hdr_i[1][3:0];
  assign last_be   = hdr_i[1][7:4];
  assign addr      = fmt[0] ? {hdr_i[2], hdr_i[3][31:2], 2'b00}
                            : {32'h0, hdr_i[2][31:2], 2'b00};

  assign is_mem_o = (typ == TypeMem) && (fmt[2] == 1'b0);
  assign posted_o = fmt[1];

  // PASID prefix: every prefix must be a PASID prefix and there may be only one.
  logic       has_pasid, prefix_bad;
  logic [31:0] pasid_dw;
  always_comb begin
    has_pasid  = 1'b0;
    prefix_bad = (nprefix_i > 3'(MaxPrefixes));
    pasid_dw   = '0;
    for (int unsigned i = 0; i < MaxPrefixes; i++) begin
      if (3'(i) < nprefix_i) begin
        if (prefix_i[i][31:24] != PrefixPasid || has_pasid) begin
          prefix_bad = 1'b1;
        end else begin
          has_pasid = 1'b1;
          pasid_dw  = prefix_i[i];
        end
      end
    end
  end

  // Byte enables (PCIe "Byte Enable Rules"): Length 1 has Last BE 0000; longer requests have
  // both non-zero; non-contiguous patterns only for Length 1, or Length 2 QW-aligned.
  function automatic logic first_contig(input logic [3:0] be);  // ends at byte 3
    return be inside {4'b1000, 4'b1100, 4'b1110, 4'b1111};
  endfunction
  function automatic logic last_contig(input logic [3:0] be);   // starts at byte 0
    return be inside {4'b0001, 4'b0011, 4'b0111, 4'b1111};
  endfunction

  logic be_bad;
  always_comb begin
    if (len_dw == 11'd1) begin
      be_bad = (last_be != 4'b0000);
    end else if (first_be == 4'b0000 || last_be == 4'b0000) begin
      be_bad = 1'b1;
    end else if (len_dw == 11'd2 && addr[2] == 1'b0) begin
      be_bad = 1'b0;
    end else begin
      be_bad = !first_contig(first_be) || !last_contig(last_be);
    end
  end

  logic crosses;
  assign crosses = ({1'b0, addr[11:2]} + len_dw) > 11'd1024;

  always_comb begin
    malformed_o = MalNone;
    if (is_mem_o) begin
      // Same order as the testbench's TLP codec, so both name the same first reason.
      if (prefix_bad)                         malformed_o = MalPrefix;
      else if (fmt[0] && addr[63:32] == '0)   malformed_o = MalAddr64;
      else if (at == 2'b11 || (at == AtTransReq && posted_o)) malformed_o = MalAt;
      else if (be_bad)                        malformed_o = MalByteEnables;
      else if (crosses)                       malformed_o = MalCrossesPage;
    end
  end

  assign req_o = '{
    at:        at_e'(at),
    write:     posted_o,
    addr64:    fmt[0],
    addr:      addr,
    rid:       hdr_i[1][31:16],
    tag:       hdr_i[1][15:8],
    has_pasid: has_pasid,
    pasid:     pasid_dw[19:0],
    pmr:       has_pasid & pasid_dw[23],
    er:        has_pasid & pasid_dw[22]
  };

  // Byte Count and Lower Address of a (single) completion for this read. For byte enables
  // PCIe forbids (an all-zero First or Last BE with Length > 1, always malformed) a DW
  // with no enabled byte counts 4 disabled bytes, and the count is at least 1.
  logic [1:0] lead;          // disabled bytes below the first enabled byte of First BE
  logic [2:0] skip, trail;   // bytes left out of the count below / above
  logic [12:0] bc;
  always_comb begin
    unique casez (first_be)
      4'b???1: lead = 2'd0;
      4'b??10: lead = 2'd1;
      4'b?100: lead = 2'd2;
      4'b1000: lead = 2'd3;
      default: lead = 2'd0;  // 0000: Lower Address bits 1:0 are 00b
    endcase
    skip  = (first_be == 4'b0000) ? 3'd4 : {1'b0, lead};
    trail = 3'd0;
    if (len_dw == 11'd1) begin
      unique casez (first_be)
        4'b1??1: bc = 13'd4;
        4'b01?1, 4'b1?10: bc = 13'd3;
        4'b0011, 4'b0110, 4'b1100: bc = 13'd2;
        default: bc = 13'd1;  // one enabled byte, or 0000b: a zero-length read
      endcase
    end else begin
      unique casez (last_be)
        4'b1???: trail = 3'd0;
        4'b01??: trail = 3'd1;
        4'b001?: trail = 3'd2;
        4'b0001: trail = 3'd3;
        default: trail = 3'd4;  // 0000b
      endcase
      bc = {len_dw, 2'b00} - 13'(skip) - 13'(trail);
      if (bc == 13'd0) bc = 13'd1;
    end
  end
  assign byte_count_o = bc[11:0];
  assign lower_addr_o = {addr[6:2], lead};

  logic unused_decode;
  assign unused_decode = ^{bc[12], pasid_dw[31:24], pasid_dw[21:20], hdr_i[0][23:12]};

endmodule
