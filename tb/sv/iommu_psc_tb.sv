// Directed checks of iommu_psc alone (inside iommu_top, the cache_model test compares it with
// the reference model, tb/src/check/psc_model.rs, through memory reads): deepest-level lookup, the PASID ignored by second-stage entries, fill of the levels
// named, refill of a held key in place, PLRU replacement at level 2, and invalidation by
// kind and IH. Prints PASS, or each failure and exits non-zero. From the repository top:
//
//   $ verilator --binary --assert -Wno-fatal -Wno-lint -Wno-style -Mdir target/psc_tb \
//     rtl/iommu_assert.sv rtl/iommu_pkg.sv rtl/iommu_first_set.sv rtl/iommu_plru.sv \
//     rtl/iommu_fa_cache.sv rtl/iommu_psc.sv tb/sv/iommu_psc_tb.sv --top-module iommu_psc_tb \
//   && target/psc_tb/Viommu_psc_tb
module iommu_psc_tb;
  import iommu_pkg::*;

  logic clk = 0, rst_n = 0;
  always #5 clk = ~clk;

  did_t       lk_did;
  pasid_t     lk_pasid;
  logic       lk_ss;
  pfn_t       lk_page;
  logic       lk_hit;
  logic [2:0] lk_level;
  pfn_t       lk_ptr;
  acc_t       lk_acc;
  logic       lk_use = 0;
  logic       fill = 0;
  did_t       fill_did;
  pasid_t     fill_pasid;
  logic       fill_ss;
  pfn_t       fill_page;
  logic [4:2] fill_lv;
  pfn_t [4:2] fill_ptr;
  acc_t [4:2] fill_acc;
  logic       inv = 0;
  inv_cmd_t   cmd;

  iommu_psc dut (
    .clk_i(clk), .rst_ni(rst_n),
    .lk_did_i(lk_did), .lk_pasid_i(lk_pasid), .lk_ss_i(lk_ss), .lk_page_i(lk_page),
    .lk_hit_o(lk_hit), .lk_level_o(lk_level), .lk_ptr_o(lk_ptr), .lk_acc_o(lk_acc),
    .lk_use_i(lk_use),
    .fill_i(fill), .fill_did_i(fill_did), .fill_pasid_i(fill_pasid), .fill_ss_i(fill_ss),
    .fill_page_i(fill_page), .fill_level_valid_i(fill_lv), .fill_ptr_i(fill_ptr),
    .fill_acc_i(fill_acc),
    .inv_i(inv), .inv_cmd_i(cmd)
  );

  int errors = 0;

  // Page number of 2 MiB region r (inside GiB g), page p.
  function automatic pfn_t pg(int g, int r, int p);
    return pfn_t'((64'(g) << 18) | (64'(r) << 9) | 64'(p));
  endfunction

  function automatic pfn_t ptr_of(pfn_t page, int l, int tag);
    // Depends only on the region of level l that holds page.
    return pfn_t'(((64'(page) >> (9 * (l - 1))) << 4) | 64'(l)) ^ pfn_t'(64'(tag) << 32);
  endfunction

  function automatic acc_t acc_of(int l);
    return acc_t'(4'(l * 3));
  endfunction

  task automatic do_fill(did_t did, pasid_t pasid, logic ss, pfn_t page, logic [4:2] lv,
                         int tag = 0);
    @(negedge clk);
    fill = 1; fill_did = did; fill_pasid = pasid; fill_ss = ss; fill_page = page; fill_lv = lv;
    for (int l = 2; l <= 4; l++) begin
      fill_ptr[l] = ptr_of(page, l, tag);
      fill_acc[l] = acc_of(l);
    end
    @(negedge clk);
    fill = 0;
  endtask

  // Looks up and checks the deepest level (0: miss); with use, marks the hit used.
  task automatic look(string what, did_t did, pasid_t pasid, logic ss, pfn_t page,
                      int want, int tag = 0, logic use_it = 0);
    @(negedge clk);
    lk_did = did; lk_pasid = pasid; lk_ss = ss; lk_page = page;
    #1;
    if (int'(lk_level) != want || lk_hit != (want != 0)
        || (want != 0 && (lk_ptr != ptr_of(page, want, tag) || lk_acc != acc_of(want)))) begin
      $display("FAIL %s: level %0d hit %0d ptr %h, want level %0d ptr %h", what, lk_level,
               lk_hit, lk_ptr, want, want != 0 ? ptr_of(page, want, tag) : '0);
      errors++;
    end
    if (use_it) begin
      lk_use = 1;
      @(negedge clk);
      lk_use = 0;
    end
  endtask

  task automatic do_inv(inv_kind_e kind, did_t did, pasid_t pasid, pfn_t addr, int am,
                        logic ih, logic iotlb = 1);
    @(negedge clk);
    inv = 1;
    cmd = '0;
    cmd.iotlb = iotlb; cmd.pcache = !iotlb; cmd.kind = kind; cmd.did = did;
    cmd.pasid = pasid; cmd.addr = addr; cmd.am = 6'(am); cmd.ih = ih;
    @(negedge clk);
    inv = 0;
  endtask

  localparam logic [4:2] All = 3'b111;

  initial begin
    fill_lv = '0; fill_ptr = '0; fill_acc = '0; cmd = '0;
    lk_did = '0; lk_pasid = '0; lk_ss = 0; lk_page = '0;
    fill_did = '0; fill_pasid = '0; fill_ss = 0; fill_page = '0;
    repeat (2) @(negedge clk);
    rst_n = 1;

    // Deepest level; second stage ignores the PASID.
    look("empty", 1, 0, 1, pg(0, 8, 0), 0);
    do_fill(1, 0, 1, pg(0, 8, 0), All);
    look("same 2M", 1, 0, 1, pg(0, 8, 5), 2);
    look("ss other pasid", 1, 9, 1, pg(0, 8, 5), 2);
    look("other stage", 1, 0, 0, pg(0, 8, 5), 0);
    look("other did", 2, 0, 1, pg(0, 8, 5), 0);
    look("same 1G", 1, 0, 1, pg(0, 9, 0), 3);
    look("same 512G", 1, 0, 1, pg(1, 0, 0), 4);
    look("other 512G", 1, 0, 1, pfn_t'(64'd1 << 27), 0);

    // First stage: the PASID is part of the tag.
    do_fill(2, 7, 0, pg(0, 8, 0), 3'b110);  // a 2M leaf: levels 4 and 3
    look("fs", 2, 7, 0, pg(0, 8, 1), 3);
    look("fs other pasid", 2, 8, 0, pg(0, 8, 1), 0);

    // Refill of the same key overwrites (new pointers), no second way.
    do_fill(1, 5, 1, pg(0, 8, 0), All, 1);
    look("refilled", 1, 0, 1, pg(0, 8, 3), 2, 1);

    // IH = 1 keeps, IH = 0 removes what overlaps; both stages of the DID.
    do_inv(InvDidPage, 1, 0, pg(0, 8, 3), 0, 1);
    look("ih=1 kept", 1, 0, 1, pg(0, 8, 3), 2, 1);
    do_inv(InvDidPage, 1, 0, pg(0, 9, 0), 9, 0);  // the next 2 MiB region: the PDPTE, PML4E
    look("ih=0 other region kept", 1, 0, 1, pg(0, 8, 3), 2, 1);
    look("ih=0 pdpte gone", 1, 0, 1, pg(0, 9, 0), 0);
    do_inv(InvDidPage, 1, 0, pg(0, 8, 3), 0, 0);
    look("ih=0 removed", 1, 0, 1, pg(0, 8, 3), 0);

    // Type 6: first-stage entries of (DID, PASID) only.
    do_fill(1, 7, 1, pg(0, 8, 0), All);
    do_inv(InvDidPasid, 1, 7, '0, 0, 0);
    look("type 6 keeps ss", 1, 7, 1, pg(0, 8, 0), 2);
    do_inv(InvDidPasid, 2, 8, '0, 0, 0);
    look("type 6 other pasid", 2, 7, 0, pg(0, 8, 0), 3);
    do_inv(InvDidPasidPage, 2, 7, pg(0, 8, 0), 0, 1);
    look("type 6 page ih=1", 2, 7, 0, pg(0, 8, 0), 3);
    do_inv(InvDidPasidPage, 2, 7, pg(0, 12, 0), 2, 0);
    look("type 6 page ih=0", 2, 7, 0, pg(0, 8, 0), 0);
    // Cache commands of the PASID cache do nothing; DID and global do.
    do_inv(InvAll, 1, 0, '0, 0, 0, 0);
    look("pcache inv", 1, 7, 1, pg(0, 8, 0), 2);
    do_inv(InvDid, 1, 0, '0, 0, 0);
    look("did inv", 1, 7, 1, pg(0, 8, 0), 0);

    // PLRU at level 2: 16 regions, use region 1, the 17th evicts region 0.
    do_inv(InvAll, 0, 0, '0, 0, 0);
    do_fill(3, 0, 1, pg(0, 0, 0), All);
    for (int r = 1; r < 16; r++) do_fill(3, 0, 1, pg(0, r, 0), 3'b001);
    for (int r = 0; r < 16; r++) look("16 held", 3, 0, 1, pg(0, r, 1), 2);
    do_fill(3, 0, 1, pg(0, 16, 0), 3'b001);
    look("17th", 3, 0, 1, pg(0, 16, 1), 2);
    look("evicted", 3, 0, 1, pg(0, 0, 1), 3);
    look("use r1", 3, 0, 1, pg(0, 1, 1), 2, 0, 1);
    do_fill(3, 0, 1, pg(0, 0, 0), 3'b001);  // takes way 8 (region 8)
    do_fill(3, 0, 1, pg(0, 17, 0), 3'b001); // takes way 4 (region 4)
    look("r1 kept", 3, 0, 1, pg(0, 1, 1), 2);
    look("r0 kept", 3, 0, 1, pg(0, 0, 1), 2);
    look("r8 gone", 3, 0, 1, pg(0, 8, 1), 3);
    look("r4 gone", 3, 0, 1, pg(0, 4, 1), 3);
    look("r5 kept", 3, 0, 1, pg(0, 5, 1), 2);

    if (errors != 0) $fatal(1, "%0d FAILURES", errors);
    $display("PASS");
    $finish;
  end
endmodule
