// Pure C++ Verilator harness for the `sim` FuseSoC target. It resets the unit, programs a
// few registers, streams memory reads through the untranslated path and reports simulated
// cycles per second: the speed baseline for the Rust bridge (`iommu-tb bench-bridge` runs
// the same stimulus and prints the same output hash).
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "Viommu_top.h"
#include "verilated.h"

namespace {

struct Harness {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<Viommu_top> top;

    Harness() : ctx(new VerilatedContext) {
        ctx->randReset(2);
        ctx->randSeed(1);
        ctx->fatalOnError(false);
        top.reset(new Viommu_top(ctx.get(), "TOP"));
        // Inputs start random (--x-initial unique): drive every one.
        top->rst_ni = 0;
        top->rx_valid_i = 0;
        top->rx_nprefix_i = 0;
        for (int i = 0; i < 4; i++) top->rx_prefix_i[i] = 0;
        for (int i = 0; i < 4; i++) top->rx_hdr_i[i] = 0;
        top->tx_ready_i = 1;
        top->cpl_ready_i = 1;
        top->ats_inv_ready_i = 1;
        top->csr_valid_i = 0;
        top->csr_write_i = 0;
        top->csr_addr_i = 0;
        top->csr_size64_i = 0;
        top->csr_wdata_i = 0;
        top->mem_req_ready_i = 0;
        top->mem_rsp_valid_i = 0;
        top->mem_rsp_id_i = 0;
        top->mem_rsp_rdata_i = 0;
        top->mem_rsp_error_i = 0;
    }

    // One cycle exactly as the Rust bridge does it: inputs applied, clock low and settled
    // (outputs sampled here by the caller), then the rising edge.
    void low() {
        top->clk_i = 0;
        top->eval();
    }
    void rise() {
        top->clk_i = 1;
        top->eval();
    }
    void step() {
        low();
        rise();
    }

    uint64_t csr(bool write, uint32_t addr, bool size64, uint64_t wdata) {
        top->csr_valid_i = 1;
        top->csr_write_i = write;
        top->csr_addr_i = addr;
        top->csr_size64_i = size64;
        top->csr_wdata_i = wdata;
        step();
        top->csr_valid_i = 0;
        low();
        const bool err = top->csr_error_o;
        const uint64_t rdata = top->csr_rdata_o;
        rise();
        if (err) {
            std::fprintf(stderr, "CSR %s 0x%03x answered with an error\n", write ? "write" : "read", addr);
            std::exit(1);
        }
        return rdata;
    }
};

}  // namespace

int main(int argc, char** argv) {
    uint64_t cycles = 2000000;
    for (int i = 1; i < argc; i++) {
        if (std::strncmp(argv[i], "+cycles=", 8) == 0) cycles = std::strtoull(argv[i] + 8, nullptr, 0);
    }
    Harness h;
    for (int i = 0; i < 4; i++) h.step();
    h.top->rst_ni = 1;
    h.step();

    const uint64_t ver = h.csr(false, 0x000, false, 0);
    const uint64_t cap = h.csr(false, 0x008, true, 0);
    const uint64_t ecap = h.csr(false, 0x010, true, 0);
    std::printf("VER 0x%08" PRIx64 " CAP 0x%016" PRIx64 " ECAP 0x%016" PRIx64 "\n", ver, cap, ecap);
    h.csr(true, 0x020, true, 0x0000000012345400ULL);  // RTADDR, TTM = 01b

    // Stream: one MRd per cycle, tx always ready; hash every forwarded header (FNV-1a).
    uint64_t hash = 0xcbf29ce484222325ULL;
    uint64_t forwarded = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < cycles; i++) {
        h.top->rx_valid_i = 1;
        h.top->rx_nprefix_i = 0;
        h.top->rx_hdr_i[0] = 0x00000001u;
        h.top->rx_hdr_i[1] = (0x0100u << 16) | ((uint32_t)(i & 0xff) << 8) | 0x0fu;
        h.top->rx_hdr_i[2] = (uint32_t)(i << 6) & 0xfffffffcu;
        h.top->rx_hdr_i[3] = 0;
        h.low();
        if (h.top->tx_valid_o) {
            for (int w = 0; w < 4; w++) {
                hash ^= h.top->tx_hdr_o[w];
                hash *= 0x100000001b3ULL;
            }
            forwarded++;
        }
        h.rise();
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("cycles %" PRIu64 " forwarded %" PRIu64 " hash 0x%016" PRIx64 " seconds %.3f cycles/s %.0f\n",
                cycles, forwarded, hash, secs, (double)cycles / secs);
    h.top->final();
    return forwarded > 0 ? 0 : 1;
}
