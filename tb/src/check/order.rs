//! PCIe ordering at the translated-request port (docs/contract.md section 4, rule 2).
//!
//! Within one traffic class, for a later request B and an earlier request A:
//! - B a posted write, A a posted write: B must not pass A unless B has RO = 1, or B has
//!   IDO = 1 and a Requester ID different from A's;
//! - B a read, A a posted write: B must not pass A unless B has IDO = 1 and a different
//!   Requester ID;
//! - A a read: B may pass it.
//!
//! Different TCs impose nothing on each other. Completions travelling through the unit
//! are outside the table and impose nothing here. Requests that never reach the port (rule
//! 3) are handled by the scoreboard: it asks this module only about requests that may.

/// The ordering-relevant fields of a TLP, from its header as it entered the unit (the
/// egress copy carries the same TC, attributes and Requester ID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderAttrs {
    /// What the table's rows and columns are.
    pub class: Class,
    /// Traffic class (DW0 bits 22:20).
    pub tc: u8,
    /// Relaxed Ordering, `Attr[1]` (DW0 bit 13).
    pub ro: bool,
    /// ID-based Ordering, `Attr[2]` (DW0 bit 18).
    pub ido: bool,
    /// Requester ID (DW1 bits 31:16 of a request).
    pub rid: u16,
}

/// The kinds of TLP the ordering table distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A memory write (MWr): posted.
    Posted,
    /// A memory read (MRd).
    Read,
    /// Anything else (completions passing through): outside the table.
    Other,
}

const TYPE_MEM: u32 = 0;

impl OrderAttrs {
    /// From the first two header DWs of a TLP.
    pub fn of_header(h: &[u32; 4]) -> Self {
        let dw0 = h[0];
        let fmt = dw0 >> 29;
        let ty = (dw0 >> 24) & 0x1f;
        let class = match (fmt, ty) {
            (0b000 | 0b001, TYPE_MEM) => Class::Read,
            (0b010 | 0b011, TYPE_MEM) => Class::Posted,
            _ => Class::Other,
        };
        Self {
            class,
            tc: ((dw0 >> 20) & 7) as u8,
            ro: dw0 >> 13 & 1 == 1,
            ido: dw0 >> 18 & 1 == 1,
            rid: (h[1] >> 16) as u16,
        }
    }
}

/// Whether `later` may leave the port before `earlier` (both accepted in that order).
pub fn may_pass(later: &OrderAttrs, earlier: &OrderAttrs) -> bool {
    if later.tc != earlier.tc {
        return true;
    }
    match (later.class, earlier.class) {
        (Class::Other, _) | (_, Class::Other) => true,
        (_, Class::Read) => true,
        (Class::Posted, Class::Posted) => later.ro || (later.ido && later.rid != earlier.rid),
        (Class::Read, Class::Posted) => later.ido && later.rid != earlier.rid,
    }
}

/// Why `later` may not pass an earlier posted write, for failure messages.
pub fn rule_broken(later: &OrderAttrs) -> &'static str {
    match later.class {
        Class::Posted => {
            "a posted write passed an earlier posted write of its TC without RO = 1 or (IDO = 1 \
             and a different Requester ID) (docs/contract.md section 4, rule 2)"
        }
        _ => {
            "a read passed an earlier posted write of its TC without IDO = 1 and a different \
             Requester ID (docs/contract.md section 4, rule 2)"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(class: Class, tc: u8, ro: bool, ido: bool, rid: u16) -> OrderAttrs {
        OrderAttrs {
            class,
            tc,
            ro,
            ido,
            rid,
        }
    }

    #[test]
    fn the_table_of_section_4() {
        let w = a(Class::Posted, 0, false, false, 1);
        let r = a(Class::Read, 0, false, false, 1);
        // Nothing passes a posted write by default.
        assert!(!may_pass(&w, &w));
        assert!(!may_pass(&r, &w));
        // Anything may pass a read.
        assert!(may_pass(&w, &r));
        assert!(may_pass(&r, &r));
        // RO lets a write pass a write, not a read pass a write.
        assert!(may_pass(&a(Class::Posted, 0, true, false, 1), &w));
        assert!(!may_pass(&a(Class::Read, 0, true, false, 1), &w));
        // IDO needs a different requester.
        assert!(!may_pass(&a(Class::Posted, 0, false, true, 1), &w));
        assert!(may_pass(&a(Class::Posted, 0, false, true, 2), &w));
        assert!(!may_pass(&a(Class::Read, 0, false, true, 1), &w));
        assert!(may_pass(&a(Class::Read, 0, false, true, 2), &w));
        // Different TCs are unordered.
        assert!(may_pass(&a(Class::Read, 1, false, false, 1), &w));
        // Completions are outside the table.
        assert!(may_pass(&a(Class::Other, 0, false, false, 1), &w));
        assert!(may_pass(&r, &a(Class::Other, 0, false, false, 1)));
    }

    #[test]
    fn attributes_come_from_the_header_bits() {
        // MWr 3DW, TC 5, RO and IDO set, RID 0x1234.
        let h = [0x4000_0001 | 5 << 20 | 1 << 13 | 1 << 18, 0x1234_0000, 0, 0];
        assert_eq!(
            OrderAttrs::of_header(&h),
            a(Class::Posted, 5, true, true, 0x1234)
        );
        let h = [0x2000_0001, 0x0010_0000, 0, 0]; // MRd 4DW
        assert_eq!(OrderAttrs::of_header(&h).class, Class::Read);
        let h = [0x4a00_0001, 0, 0, 0]; // CplD
        assert_eq!(OrderAttrs::of_header(&h).class, Class::Other);
    }
}
