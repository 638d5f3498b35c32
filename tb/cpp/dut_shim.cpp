#include "iommu-tb/cpp/dut_shim.h"

#include <cstddef>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

#include IOMMU_TB_TOP_HEADER
#include IOMMU_TB_ROOT_HEADER
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

using Root = IOMMU_TB_ROOT_CLASS;

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
    // Inputs start random (--x-initial unique): the narrow ones start idle, as `applied_`
    // says, until the first step changes them.
    apply_narrow(DutIn{});
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

// DutIn's narrow ports are its first 14 bytes, with no padding between them (a padding
// byte would make the block compare unequal at random, costing a rewrite, never a miss).
constexpr size_t kNarrowBytes = offsetof(DutIn, ats_inv_ready) + sizeof(bool);
static_assert(offsetof(DutIn, csr_addr) == 0 && offsetof(DutIn, rst_n) == 2 &&
                  offsetof(DutIn, mem_rsp_error) == 12 && offsetof(DutIn, mem_rsp_id) == 13 &&
                  offsetof(DutIn, ats_inv_ready) == 14 && offsetof(DutIn, rx_prefix) == 16,
              "DutIn's narrow ports must lead it, packed (src/dut/ffi.rs)");

void DutShim::apply_narrow(const DutIn& in) {
    static_assert(kNarrowBytes <= sizeof(applied_), "applied_ holds DutIn's narrow block");
    Root& r = *model_->rootp;
    r.rst_ni = in.rst_n;
    r.rx_valid_i = in.rx_valid;
    r.rx_nprefix_i = in.rx_nprefix;
    r.tx_ready_i = in.tx_ready;
    r.cpl_ready_i = in.cpl_ready;
    r.csr_valid_i = in.csr_valid;
    r.csr_write_i = in.csr_write;
    r.csr_addr_i = in.csr_addr;
    r.csr_size64_i = in.csr_size64;
    r.mem_req_ready_i = in.mem_req_ready;
    r.mem_rsp_valid_i = in.mem_rsp_valid;
    r.mem_rsp_error_i = in.mem_rsp_error;
    r.mem_rsp_id_i = in.mem_rsp_id;
    r.ats_inv_ready_i = in.ats_inv_ready;
    std::memcpy(applied_, &in, kNarrowBytes);
}

void DutShim::step(const DutIn& in, uint8_t ports, DutOut& out) {
    use_context(ctx_.get());
    // The ports themselves live in the root module; the model's members are references to
    // them, which the compiler would reload after every byte stored.
    Root& r = *model_->rootp;

    // Narrow inputs: only when one of them changed since the last cycle.
    if (std::memcmp(&in, applied_, kNarrowBytes) != 0) apply_narrow(in);
    // Wide inputs: a plain copy is as cheap as comparing them.
    std::memcpy(r.rx_prefix_i.data(), in.rx_prefix.data(), sizeof(in.rx_prefix));
    std::memcpy(r.rx_hdr_i.data(), in.rx_hdr.data(), sizeof(in.rx_hdr));
    r.csr_wdata_i = in.csr_wdata;
    r.mem_rsp_rdata_i = in.mem_rsp_rdata;

    // Low phase: settle the combinational outputs for this cycle's inputs.
    const uint64_t t = cycle_ * 2 * kHalfPeriod;
    r.clk_i = 0;
    model_->eval();
    if (tfp_) tfp_->dump(t);

    // Egress first: every caller reads it, and most read nothing else.
    if (ports & kPortsTx) {
        out.tx_valid = r.tx_valid_o;
        std::memcpy(out.tx_hdr.data(), r.tx_hdr_o.data(), sizeof(out.tx_hdr));
    }
    if (ports & ~kPortsTx) {
        if (ports & kPortsRx) out.rx_ready = r.rx_ready_o;
        if (ports & kPortsCpl) {
            out.cpl_valid = r.cpl_valid_o;
            std::memcpy(out.cpl_hdr.data(), r.cpl_hdr_o.data(), sizeof(out.cpl_hdr));
            // A 64-bit port: element [0] (DW0) in bits 31:0.
            out.cpl_data[0] = static_cast<uint32_t>(r.cpl_data_o);
            out.cpl_data[1] = static_cast<uint32_t>(r.cpl_data_o >> 32);
        }
        if (ports & kPortsCsr) {
            out.csr_ready = r.csr_ready_o;
            out.csr_rvalid = r.csr_rvalid_o;
            out.csr_rdata = r.csr_rdata_o;
            out.csr_error = r.csr_error_o;
        }
        if (ports & kPortsMem) {
            out.mem_req_valid = r.mem_req_valid_o;
            out.mem_req_id = r.mem_req_id_o;
            out.mem_req_write = r.mem_req_write_o;
            out.mem_req_addr = r.mem_req_addr_o;
            out.mem_req_wdata = r.mem_req_wdata_o;
            out.mem_req_wstrb = r.mem_req_wstrb_o;
        }
        if (ports & kPortsIrq) {
            out.fault_irq = r.fault_irq_o;
            out.inv_irq = r.inv_irq_o;
        }
        if (ports & kPortsAts) {
            out.ats_inv_valid = r.ats_inv_valid_o;
            out.ats_inv_prefix_valid = r.ats_inv_prefix_valid_o;
            out.ats_inv_prefix = r.ats_inv_prefix_o;
            std::memcpy(out.ats_inv_hdr.data(), r.ats_inv_hdr_o.data(), sizeof(out.ats_inv_hdr));
            // A 64-bit port: element [0] (payload DW0) is bits 31:0.
            out.ats_inv_data[0] = static_cast<uint32_t>(r.ats_inv_data_o);
            out.ats_inv_data[1] = static_cast<uint32_t>(r.ats_inv_data_o >> 32);
        }
    }

    // Rising edge: handshakes in `out` complete here.
    r.clk_i = 1;
    model_->eval();
    if (tfp_) tfp_->dump(t + kHalfPeriod);
    cycle_++;
    ctx_->time(t + 2 * kHalfPeriod);
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
