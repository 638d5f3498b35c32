//! TLPs decoded field by field for humans: the form every failure message shows.

use std::fmt;

use super::*;

// ---------------------------------------------------------------------------------------
// Display
// ---------------------------------------------------------------------------------------

/// Writes an address as `0x` and 12 hex digits (16 when it needs more than 48 bits) in
/// groups of four: `0x0000_7fff_1000`.
pub(super) struct Addr(u64);

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups = if self.0 >> 48 != 0 { 4 } else { 3 };
        f.write_str("0x")?;
        for i in (0..groups).rev() {
            write!(f, "{:04x}", (self.0 >> (16 * i)) & 0xffff)?;
            if i != 0 {
                f.write_str("_")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for MemRequest {
    /// One line, field by field:
    /// `MRd 3DW RID 00:02.0 tag 0x12 addr 0x0000_7fff_1000 len 4DW FBE 1111 LBE 1111
    /// PASID 0x00001 PMR=0 ER=0 AT=00 TC=0 Attr=000`, followed by ` TD`, ` EP`, ` LN` when
    /// those bits are set. Without a prefix the PASID part reads `no-PASID`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} RID {} tag {:#04x} addr {} len {}DW FBE {:04b} LBE {:04b} ",
            if self.is_write { "MWr" } else { "MRd" },
            if self.is_4dw() { "4DW" } else { "3DW" },
            Bdf(self.requester_id),
            self.tag,
            Addr(self.addr),
            self.length_dw,
            self.first_be,
            self.last_be,
        )?;
        match self.pasid {
            Some(p) => write!(
                f,
                "PASID {:#07x} PMR={} ER={}",
                p.pasid,
                u8::from(p.pmr),
                u8::from(p.er)
            )?,
            None => f.write_str("no-PASID")?,
        }
        write!(
            f,
            " AT={:02b} TC={} Attr={:03b}",
            self.at.bits(),
            self.tc,
            self.attr
        )?;
        for (set, name) in [(self.td, " TD"), (self.ep, " EP"), (self.ln, " LN")] {
            if set {
                f.write_str(name)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Completion {
    /// One line, field by field:
    /// `Cpl UR CID 00:00.0 RID 00:02.0 tag 0x12 BC 16 LA 0x00 BCM=0 TC=0 Attr=000`; a
    /// CplD adds `len 4DW` after the status, and ` TD`, ` EP` follow when set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.with_data {
            write!(f, "CplD {} len {}DW", self.status, self.length_dw)?;
        } else {
            write!(f, "Cpl {}", self.status)?;
        }
        write!(
            f,
            " CID {} RID {} tag {:#04x} BC {} LA {:#04x} BCM={} TC={} Attr={:03b}",
            Bdf(self.completer_id),
            Bdf(self.requester_id),
            self.tag,
            self.byte_count,
            self.lower_addr,
            u8::from(self.bcm),
            self.tc,
            self.attr
        )?;
        for (set, name) in [(self.td, " TD"), (self.ep, " EP")] {
            if set {
                f.write_str(name)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Tlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tlp::Mem(req) => req.fmt(f),
            Tlp::Cpl(cpl) => cpl.fmt(f),
        }
    }
}

impl fmt::Display for TlpWords {
    /// The valid DWs in hex, prefixes then header: `[91c12345] 60840002 0310a5ff ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for dw in self.prefixes() {
            if !first {
                f.write_str(" ")?;
            }
            write!(f, "[{dw:08x}]")?;
            first = false;
        }
        for dw in self.header_used() {
            if !first {
                f.write_str(" ")?;
            }
            write!(f, "{dw:08x}")?;
            first = false;
        }
        Ok(())
    }
}
