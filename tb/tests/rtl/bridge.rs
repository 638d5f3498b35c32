//! The bridge's partial reads: the shim reads back only the output groups asked for. Two
//! models with the same seed, one stepped with every port read, the other with a different
//! subset each cycle, must agree on every field read, and the fields not asked for must keep
//! their last value. (The other half, narrow inputs written only when they change, is the
//! same code on both models; every test that drives a handshake depends on it, and the
//! stimulus here checks that ingress, CSR and memory traffic all happen.)

use iommu_model::regs;
use iommu_tb::dut::{Dut, DutIn, DutOut, Ports};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Random inputs where each narrow port changes only now and then, as in a test, the CSR bus
/// writes nothing (a random register write could start work that never ends) and memory
/// answers only requests it took (the IDs in `pending`), in any order, with a random delay.
fn next_inputs(rng: &mut ChaCha8Rng, inp: &mut DutIn, pending: &mut Vec<u8>) {
    inp.mem_rsp_valid = !pending.is_empty() && rng.gen_ratio(1, 3);
    if inp.mem_rsp_valid {
        inp.mem_rsp_id = pending.swap_remove(rng.gen_range(0..pending.len()));
    }
    if rng.gen_ratio(1, 4) {
        match rng.gen_range(0..9) {
            0 => inp.rx_valid = !inp.rx_valid,
            1 => inp.rx_nprefix = rng.gen_range(0..2),
            2 => inp.tx_ready = !inp.tx_ready,
            3 => inp.cpl_ready = !inp.cpl_ready,
            4 => inp.csr_valid = !inp.csr_valid,
            5 => inp.csr_addr = rng.gen_range(0..0x20) * 8,
            6 => inp.csr_size64 = !inp.csr_size64,
            7 => inp.mem_req_ready = !inp.mem_req_ready,
            _ => inp.mem_rsp_error = !inp.mem_rsp_error,
        }
    }
    inp.csr_write = false;
    // Mostly one-DW memory reads and writes (3- and 4-DW headers), now and then anything.
    let dw0 = [0x0000_0001, 0x2000_0001, 0x4000_0001, rng.gen()][rng.gen_range(0..4)];
    let rid_tag = rng.gen::<u32>() & 0xffff_ff00;
    inp.rx_hdr = [
        dw0,
        rid_tag | 0x0f,
        rng.gen::<u32>() & !3,
        rng.gen::<u32>() & !3,
    ];
    inp.rx_prefix[0] = rng.gen();
    inp.mem_rsp_rdata = rng.gen();
    inp.csr_wdata = rng.gen();
}

/// `out`'s fields of `ports` (and `sim_error`) taken from `all`, the rest from `prev`.
fn expected(prev: &DutOut, all: &DutOut, ports: Ports) -> DutOut {
    let mut e = *prev;
    e.sim_error = all.sim_error;
    if ports.contains(Ports::RX) {
        e.rx_ready = all.rx_ready;
    }
    if ports.contains(Ports::TX) {
        e.tx_valid = all.tx_valid;
        e.tx_hdr = all.tx_hdr;
    }
    if ports.contains(Ports::CPL) {
        e.cpl_valid = all.cpl_valid;
        e.cpl_hdr = all.cpl_hdr;
        e.cpl_data = all.cpl_data;
    }
    if ports.contains(Ports::CSR) {
        e.csr_ready = all.csr_ready;
        e.csr_rvalid = all.csr_rvalid;
        e.csr_rdata = all.csr_rdata;
        e.csr_error = all.csr_error;
    }
    if ports.contains(Ports::MEM) {
        e.mem_req_valid = all.mem_req_valid;
        e.mem_req_id = all.mem_req_id;
        e.mem_req_write = all.mem_req_write;
        e.mem_req_addr = all.mem_req_addr;
        e.mem_req_wdata = all.mem_req_wdata;
        e.mem_req_wstrb = all.mem_req_wstrb;
    }
    if ports.contains(Ports::IRQ) {
        e.fault_irq = all.fault_irq;
        e.inv_irq = all.inv_irq;
    }
    e
}

/// One CSR write on both models, read back in full from both.
fn csr_write(full: &mut Dut, part: &mut Dut, inp: &mut DutIn, addr: u64, data: u64) {
    inp.csr_valid = true;
    inp.csr_write = true;
    inp.csr_addr = addr as u16;
    inp.csr_size64 = addr == regs::RTADDR;
    inp.csr_wdata = data;
    for _ in 0..16 {
        let out = full.step(inp);
        assert_eq!(out, part.step(inp));
        if out.csr_ready {
            break;
        }
    }
    inp.csr_valid = false;
    inp.csr_write = false;
    for _ in 0..8 {
        assert_eq!(full.step(inp), part.step(inp));
    }
}

#[test]
fn partial_port_transfers_match_full_ones() {
    let groups = [
        Ports::RX,
        Ports::TX,
        Ports::CPL,
        Ports::CSR,
        Ports::MEM,
        Ports::IRQ,
    ];
    let mut full = Dut::new(11);
    let mut part = Dut::new(11);
    full.reset(4);
    part.reset(4);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut inp = DutIn {
        rst_n: true,
        tx_ready: true,
        cpl_ready: true,
        ..DutIn::default()
    };
    // Translation on (over an empty root table: requests walk, then fault), so that the
    // memory port and the interrupt lines move too.
    csr_write(
        &mut full,
        &mut part,
        &mut inp,
        regs::RTADDR,
        0x1234_5000 | regs::RTADDR_TTM_SCALABLE,
    );
    csr_write(
        &mut full,
        &mut part,
        &mut inp,
        regs::GCMD,
        regs::GCMD_SRTP.into(),
    );
    csr_write(
        &mut full,
        &mut part,
        &mut inp,
        regs::GCMD,
        regs::GCMD_TE.into(),
    );
    let mut out = DutOut::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut seen_valid = [false; 3];
    for cycle in 0..20_000u32 {
        next_inputs(&mut rng, &mut inp, &mut pending);
        // A reset pulse near the end, which only the narrow block carries.
        inp.rst_n = !(15_000..15_003).contains(&cycle);
        if !inp.rst_n {
            pending.clear();
            inp.mem_rsp_valid = false;
        }
        let mut ports = groups[rng.gen_range(0..groups.len())];
        for &g in &groups {
            if rng.gen_ratio(1, 3) {
                ports = ports | g;
            }
        }
        let all = full.step(&inp);
        let want = expected(&out, &all, ports);
        part.step_into(&inp, ports, &mut out);
        assert_eq!(out, want, "cycle {cycle}, ports {ports:?}, inputs {inp:?}");
        if all.mem_req_valid && inp.mem_req_ready {
            pending.push(all.mem_req_id);
        }
        seen_valid[0] |= all.tx_valid;
        seen_valid[1] |= all.mem_req_valid;
        seen_valid[2] |= all.csr_rvalid;
    }
    assert_eq!(
        seen_valid, [true; 3],
        "stimulus too narrow: tx, memory and CSR answers must all appear"
    );
}
