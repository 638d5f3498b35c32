#include "iommu-tb/cpp/dut_shim.h"

#include <mutex>
#include <stdexcept>
#include <string>

#include IOMMU_TB_TOP_HEADER
#include "iommu-tb/src/dut/ffi.rs.h"
#include "verilated.h"
#include "verilated_fst_c.h"
#if VM_COVERAGE
#include "verilated_cov.h"
#endif

namespace iommu_tb {

class Model : public IOMMU_TB_TOP_CLASS {
   public:
    using IOMMU_TB_TOP_CLASS::IOMMU_TB_TOP_CLASS;
};

namespace {
// Verilator's random-reset generator is per thread and is reseeded whenever any context
// changes its seed; constructing under one lock makes each model's reset values depend on
// its own seed only. The same lock guards Verilator's process-wide "last context" pointer,
// which every change of a thread's context also writes.
std::mutex g_construct;

// The context this thread last handed to Verilator (its $error/$stop and scope
// bookkeeping go through the thread's context, not the model's).
thread_local VerilatedContext* t_current = nullptr;

void use_context(VerilatedContext* ctx) {
    if (t_current != ctx) {
        std::lock_guard<std::mutex> lock(g_construct);
        Verilated::threadContextp(ctx);
        t_current = ctx;
    }
}

// Simulated time units per clock cycle (1 unit = 1 ns: a 100 MHz clock in waveforms).
constexpr uint64_t kHalfPeriod = 5;
}  // namespace

DutShim::DutShim(uint64_t seed) : ctx_(new VerilatedContext) {
    std::lock_guard<std::mutex> lock(g_construct);
    Verilated::threadContextp(ctx_.get());
    t_current = ctx_.get();
    ctx_->randReset(2);
    // randSeed 0 means "seed from the clock": fold the 64-bit seed into a non-zero int.
    int s = static_cast<int>((seed ^ (seed >> 31)) & 0x7fffffff);
    ctx_->randSeed(s == 0 ? 1 : s);
    ctx_->fatalOnError(false);
    ctx_->traceEverOn(true);
    ctx_->timeunit(-9);
    ctx_->timeprecision(-9);
    model_.reset(new Model(ctx_.get(), "TOP"));
}

DutShim::~DutShim() {
    // The model's scopes unregister from the thread's context: make that this model's, and
    // leave no pointer to it behind once it is gone.
    use_context(ctx_.get());
    trace_close();
    if (model_) model_->final();
    model_.reset();
    {
        std::lock_guard<std::mutex> lock(g_construct);
        Verilated::threadContextp(nullptr);
        t_current = nullptr;
    }
    ctx_.reset();
}

void DutShim::step(const DutIn& in, DutOut& out) {
    use_context(ctx_.get());
    Model& m = *model_;
    m.rst_ni = in.rst_n;
    m.rx_valid_i = in.rx_valid;
    m.rx_nprefix_i = in.rx_nprefix;
    for (int i = 0; i < 4; i++) m.rx_prefix_i[i] = in.rx_prefix[i];
    for (int i = 0; i < 4; i++) m.rx_hdr_i[i] = in.rx_hdr[i];
    m.tx_ready_i = in.tx_ready;
    m.cpl_ready_i = in.cpl_ready;
    m.csr_valid_i = in.csr_valid;
    m.csr_write_i = in.csr_write;
    m.csr_addr_i = in.csr_addr;
    m.csr_size64_i = in.csr_size64;
    m.csr_wdata_i = in.csr_wdata;
    m.mem_req_ready_i = in.mem_req_ready;
    m.mem_rsp_valid_i = in.mem_rsp_valid;
    m.mem_rsp_rdata_i = in.mem_rsp_rdata;
    m.mem_rsp_error_i = in.mem_rsp_error;

    // Low phase: settle the combinational outputs for this cycle's inputs.
    m.clk_i = 0;
    m.eval();
    const uint64_t t = cycle_ * 2 * kHalfPeriod;
    if (tfp_) tfp_->dump(t);

    out.rx_ready = m.rx_ready_o;
    out.tx_valid = m.tx_valid_o;
    for (int i = 0; i < 4; i++) out.tx_hdr[i] = m.tx_hdr_o[i];
    out.cpl_valid = m.cpl_valid_o;
    for (int i = 0; i < 3; i++) out.cpl_hdr[i] = m.cpl_hdr_o[i];
    out.csr_ready = m.csr_ready_o;
    out.csr_rvalid = m.csr_rvalid_o;
    out.csr_rdata = m.csr_rdata_o;
    out.csr_error = m.csr_error_o;
    out.mem_req_valid = m.mem_req_valid_o;
    out.mem_req_write = m.mem_req_write_o;
    out.mem_req_addr = m.mem_req_addr_o;
    out.mem_req_wdata = m.mem_req_wdata_o;
    out.mem_req_wstrb = m.mem_req_wstrb_o;
    out.fault_irq = m.fault_irq_o;
    out.inv_irq = m.inv_irq_o;

    // Rising edge: handshakes in `out` complete here.
    m.clk_i = 1;
    m.eval();
    if (tfp_) tfp_->dump(t + kHalfPeriod);
    cycle_++;
    ctx_->time(cycle_ * 2 * kHalfPeriod);
    out.sim_error = ctx_->gotError();
}

void DutShim::trace_open(rust::Str path) {
    trace_close();
    std::unique_ptr<VerilatedFstC> tfp(new VerilatedFstC);
    model_->trace(tfp.get(), 99);
    tfp->open(std::string(path).c_str());
    if (!tfp->isOpen()) throw std::runtime_error("cannot open waveform file " + std::string(path));
    tfp_ = std::move(tfp);
}

void DutShim::trace_close() {
    if (tfp_) {
        tfp_->close();
        tfp_.reset();
    }
}

void DutShim::coverage_write(rust::Str path) {
#if VM_COVERAGE
    ctx_->coveragep()->write(std::string(path).c_str());
#else
    throw std::runtime_error("this build has no coverage: build with `--features coverage`");
#endif
}

std::unique_ptr<DutShim> new_dut_shim(uint64_t seed) { return std::unique_ptr<DutShim>(new DutShim(seed)); }

}  // namespace iommu_tb
