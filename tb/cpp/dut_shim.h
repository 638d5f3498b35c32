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

class DutShim {
   public:
    explicit DutShim(uint64_t seed);
    ~DutShim();
    DutShim(const DutShim&) = delete;
    DutShim& operator=(const DutShim&) = delete;

    void step(const DutIn& in, DutOut& out);
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
};

std::unique_ptr<DutShim> new_dut_shim(uint64_t seed);

}  // namespace iommu_tb
