//! Register agent: drives the CSR bus of `iommu_top` (one access at a time, valid/ready,
//! then the read data or error response). The register map is the model's
//! ([`iommu_model::regs`]).

use iommu_model::regs::{self, Width};
use thiserror::Error;

use super::Env;

/// Cycles a CSR access may take before it is reported as hung.
pub const CSR_TIMEOUT: u32 = 64;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CsrError {
    #[error("CSR {op} at 0x{addr:03x} ({width:?}) answered with an error (misaligned or no register there)")]
    Slave {
        op: &'static str,
        addr: u64,
        width: Width,
    },
    #[error("CSR {op} at 0x{addr:03x}: no response within {cycles} cycles")]
    Timeout {
        op: &'static str,
        addr: u64,
        cycles: u32,
    },
    #[error("CSR offset 0x{addr:x} is outside the 4 KiB register page")]
    OutOfRange { addr: u64 },
}

impl Env {
    fn csr(&mut self, write: bool, addr: u64, width: Width, wdata: u64) -> Result<u64, CsrError> {
        let op = if write { "write" } else { "read" };
        if addr >= regs::PAGE {
            return Err(CsrError::OutOfRange { addr });
        }
        self.inp.csr_valid = true;
        self.inp.csr_write = write;
        self.inp.csr_addr = addr as u16;
        self.inp.csr_size64 = width == Width::W64;
        self.inp.csr_wdata = wdata;
        let mut waited = 0;
        loop {
            let out = self.tick();
            if out.csr_ready {
                break;
            }
            waited += 1;
            if waited >= CSR_TIMEOUT {
                self.inp.csr_valid = false;
                return Err(CsrError::Timeout {
                    op,
                    addr,
                    cycles: waited,
                });
            }
        }
        self.inp.csr_valid = false;
        loop {
            let out = self.tick();
            if out.csr_rvalid {
                if out.csr_error {
                    return Err(CsrError::Slave { op, addr, width });
                }
                return Ok(out.csr_rdata);
            }
            waited += 1;
            if waited >= CSR_TIMEOUT {
                return Err(CsrError::Timeout {
                    op,
                    addr,
                    cycles: waited,
                });
            }
        }
    }

    pub fn read32(&mut self, addr: u64) -> Result<u32, CsrError> {
        self.csr(false, addr, Width::W32, 0).map(|v| v as u32)
    }

    pub fn read64(&mut self, addr: u64) -> Result<u64, CsrError> {
        self.csr(false, addr, Width::W64, 0)
    }

    pub fn write32(&mut self, addr: u64, v: u32) -> Result<(), CsrError> {
        self.csr(true, addr, Width::W32, u64::from(v)).map(|_| ())
    }

    pub fn write64(&mut self, addr: u64, v: u64) -> Result<(), CsrError> {
        self.csr(true, addr, Width::W64, v).map(|_| ())
    }

    /// Polls a 32-bit register until `(value & mask) == want`; returns the cycles it took.
    pub fn poll32(
        &mut self,
        addr: u64,
        mask: u32,
        want: u32,
        max_cycles: u64,
    ) -> anyhow::Result<u64> {
        let start = self.dut.cycle();
        loop {
            let v = self.read32(addr)?;
            if v & mask == want {
                return Ok(self.dut.cycle() - start);
            }
            if self.dut.cycle() - start > max_cycles {
                anyhow::bail!(
                    "register 0x{addr:03x} = 0x{v:08x}: mask 0x{mask:08x} never reached 0x{want:08x} \
                     within {max_cycles} cycles"
                );
            }
        }
    }
}
