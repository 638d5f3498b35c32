// Thin C++ owner of one verilated iommu_top: one VerilatedContext and one model per
// instance, so independent instances can simulate in parallel threads.
#pragma once
#include <cstdint>
#include <memory>

#include "rust/cxx.h"

class VerilatedContext;
class VerilatedFstC;

namespace iommu_tb {

struct DutIn;
struct DutOut;
class Model;

// `ports` bits of DutShim::step (the PORTS_* constants of src/dut/ffi.rs): which output
// groups to read back. `sim_error` is always read.
enum : uint8_t {
    kPortsRx = 1 << 0,   // rx_ready
    kPortsTx = 1 << 1,   // tx_valid, tx_hdr
    kPortsCpl = 1 << 2,  // cpl_valid, cpl_hdr, cpl_data
    kPortsCsr = 1 << 3,  // csr_ready, csr_rvalid, csr_rdata, csr_error
    kPortsMem = 1 << 4,  // mem_req_valid, mem_req_id, mem_req_write, mem_req_addr, mem_req_wdata, mem_req_wstrb
    kPortsIrq = 1 << 5,  // fault_irq, inv_irq
    kPortsAts = 1 << 6,  // ats_inv_valid, ats_inv_prefix_valid, ats_inv_prefix, ats_inv_hdr, ats_inv_data
};

class DutShim {
   public:
    explicit DutShim(uint64_t seed);
    ~DutShim();
    DutShim(const DutShim&) = delete;
    DutShim& operator=(const DutShim&) = delete;

    void step(const DutIn& in, uint8_t ports, DutOut& out);
    uint64_t cycle() const { return cycle_; }
    void trace_open(rust::Str path);
    void trace_close();
    bool tracing() const { return static_cast<bool>(tfp_); }
    void coverage_write(rust::Str path);

   private:
    std::unique_ptr<VerilatedContext> ctx_;
    std::unique_ptr<Model> model_;
    std::unique_ptr<VerilatedFstC> tfp_;
    uint64_t cycle_ = 0;
    // The narrow inputs last written to the model (DutIn's leading block; all zero from
    // construction on): they are written again only when they change.
    unsigned char applied_[16] = {};

    void apply_narrow(const DutIn& in);
};

std::unique_ptr<DutShim> new_dut_shim(uint64_t seed);

}  // namespace iommu_tb
