//! The cxx bridge: one call per clock cycle. The inputs go in by reference and the shim
//! writes to the model only the narrow ports that changed since the last cycle; the outputs
//! come back only for the port groups the caller asks for.
//! Kept in a file of its own because any edit to it rebuilds the C++.

#[cxx::bridge(namespace = "iommu_tb")]
pub mod bridge {
    /// Every input port of `iommu_top` except the clock. Wide ports are u32 words, word 0
    /// holding bits 31:0 (header DW0 in `rx_hdr[0]`).
    ///
    /// The field order is the shim's: the narrow ports first, packed without padding (the
    /// shim compares those 15 bytes with the last applied ones as one block; its
    /// static_asserts check the offsets), then the wide ports, which it copies every cycle.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct DutIn {
        pub csr_addr: u16,
        pub rst_n: bool,
        pub rx_valid: bool,
        pub rx_nprefix: u8,
        pub tx_ready: bool,
        pub cpl_ready: bool,
        pub csr_valid: bool,
        pub csr_write: bool,
        pub csr_size64: bool,
        pub mem_req_ready: bool,
        pub mem_rsp_valid: bool,
        pub mem_rsp_error: bool,
        /// The ID of the response presented (`mem_rsp_id_i`, `MemIdBits` = 4 bits).
        pub mem_rsp_id: u8,
        pub ats_inv_ready: bool,
        pub rx_prefix: [u32; 4],
        pub rx_hdr: [u32; 4],
        pub csr_wdata: u64,
        pub mem_rsp_rdata: u64,
    }

    /// Every output port of `iommu_top`, sampled after the inputs of the same `step` settled
    /// and before the rising edge: a handshake in this struct completes at that edge.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct DutOut {
        pub rx_ready: bool,
        pub tx_valid: bool,
        pub tx_hdr: [u32; 4],
        pub cpl_valid: bool,
        pub cpl_hdr: [u32; 3],
        /// The completion's data (a Translation Completion's entry), DW0 first on the wire;
        /// meaningful when `cpl_hdr` says the completion carries data.
        pub cpl_data: [u32; 2],
        pub csr_ready: bool,
        pub csr_rvalid: bool,
        pub csr_rdata: u64,
        pub csr_error: bool,
        pub mem_req_valid: bool,
        /// The request's ID (`mem_req_id_o`): its response carries it back.
        pub mem_req_id: u8,
        pub mem_req_write: bool,
        pub mem_req_addr: u64,
        pub mem_req_wdata: u64,
        pub mem_req_wstrb: u8,
        pub fault_irq: bool,
        pub inv_irq: bool,
        /// ATS Invalidate Request egress: header, 2 DW of data, PASID prefix if
        /// `ats_inv_prefix_valid`.
        pub ats_inv_valid: bool,
        pub ats_inv_prefix_valid: bool,
        pub ats_inv_prefix: u32,
        pub ats_inv_hdr: [u32; 4],
        pub ats_inv_data: [u32; 2],
        /// An RTL assertion failed (or `$stop`/`$fatal` ran) at or before this cycle.
        pub sim_error: bool,
    }

    unsafe extern "C++" {
        include!("iommu-tb/cpp/dut_shim.h");

        type DutShim;

        /// A new model with its own `VerilatedContext`, random reset values seeded by `seed`.
        fn new_dut_shim(seed: u64) -> UniquePtr<DutShim>;
        /// One clock cycle. `ports` is a mask of `PORTS_*` groups: only those fields of `out`
        /// (and `sim_error`, always) are written.
        fn step(self: Pin<&mut DutShim>, inp: &DutIn, ports: u8, out: &mut DutOut);
        fn cycle(self: &DutShim) -> u64;
        fn trace_open(self: Pin<&mut DutShim>, path: &str) -> Result<()>;
        fn trace_close(self: Pin<&mut DutShim>);
        fn tracing(self: &DutShim) -> bool;
        fn coverage_write(self: Pin<&mut DutShim>, path: &str) -> Result<()>;
    }
}

/// `ports` bits of `DutShim::step`; tb/cpp/dut_shim.h has the same values.
pub const PORTS_RX: u8 = 1 << 0;
pub const PORTS_TX: u8 = 1 << 1;
pub const PORTS_CPL: u8 = 1 << 2;
pub const PORTS_CSR: u8 = 1 << 3;
pub const PORTS_MEM: u8 = 1 << 4;
pub const PORTS_IRQ: u8 = 1 << 5;
pub const PORTS_ATS: u8 = 1 << 6;

// SAFETY: a DutShim owns its VerilatedContext and model outright and touches no shared
// state after construction (which is serialised inside the shim), so moving one to
// another thread is sound; it is not Sync and is only used through `&mut`.
unsafe impl Send for bridge::DutShim {}
