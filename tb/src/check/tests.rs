//! The scoreboard on synthetic egress sequences (no RTL): the ordering rules in both
//! directions, loss, duplicates, TLPs from nowhere, and fault records in order.

use iommu_model::golden::{Outcome, Walk};
use iommu_model::oracle::AllowedSet;
use iommu_model::FaultReason;

use crate::check::expect::{expected_record, Expect};
use crate::check::scoreboard::{Scoreboard, WATCHDOG};
use crate::env::tlp_agent::Egress;
use crate::tlp::{self, MemRequest};

const PA: u64 = 0x8_0000_0000;

fn walk(outcome: Outcome) -> Walk {
    Walk {
        outcome,
        record: matches!(outcome, Outcome::Fault(_)),
        pasid: None,
        pasid_entry: None,
        leaf: None,
    }
}

fn wr(rid: u16, tag: u16) -> MemRequest {
    MemRequest::write(rid, tag, 0x1000 + u64::from(tag) * 8, 2)
}

fn rd(rid: u16, tag: u16) -> MemRequest {
    MemRequest::read(rid, tag, 0x1000 + u64::from(tag) * 8, 2)
}

/// Translated by the golden walker.
fn ok(r: &MemRequest) -> Expect {
    Expect::golden(r, &walk(Outcome::Translated(PA + r.addr))).expect("expect")
}

/// Faulting, recorded.
fn bad(r: &MemRequest) -> Expect {
    Expect::golden(r, &walk(Outcome::Fault(FaultReason::SsNotPresent))).expect("expect")
}

fn tx(r: &MemRequest) -> Egress {
    Egress::Tx(
        tlp::encode(&r.with_address(PA + r.addr))
            .expect("encode")
            .header,
    )
}

/// Accepts `reqs` in order, then feeds the egress of the requests at `order` (indices).
fn run(reqs: &[(MemRequest, Expect)], order: &[usize]) -> Result<Scoreboard, String> {
    let mut sb = Scoreboard::new();
    for (i, (_, x)) in reqs.iter().enumerate() {
        sb.accept(i as u64, x.clone());
    }
    for (c, &i) in order.iter().enumerate() {
        sb.egress(100 + c as u64, tx(&reqs[i].0))
            .map_err(|e| e.message)?;
    }
    sb.settle(200).map_err(|e| e.message)?;
    Ok(sb)
}

fn both(reqs: Vec<MemRequest>) -> Vec<(MemRequest, Expect)> {
    reqs.into_iter().map(|r| (r, ok(&r))).collect()
}

#[test]
fn in_order_passes() {
    let reqs = both(vec![wr(1, 1), rd(1, 2), wr(1, 3), rd(2, 4)]);
    assert!(run(&reqs, &[0, 1, 2, 3]).is_ok());
}

#[test]
fn reorders_the_rules_allow_pass() {
    // A write may pass a read; a read may pass a read.
    assert!(run(&both(vec![rd(1, 1), wr(1, 2)]), &[1, 0]).is_ok());
    assert!(run(&both(vec![rd(1, 1), rd(1, 2)]), &[1, 0]).is_ok());
    // A write with RO passes a write.
    let mut b = wr(1, 2);
    b.attr = 0b010;
    assert!(run(&both(vec![wr(1, 1), b]), &[1, 0]).is_ok());
    // IDO and a different requester: a write or a read passes a write.
    let mut b = wr(2, 2);
    b.attr = 0b100;
    assert!(run(&both(vec![wr(1, 1), b]), &[1, 0]).is_ok());
    let mut b = rd(2, 2);
    b.attr = 0b100;
    assert!(run(&both(vec![wr(1, 1), b]), &[1, 0]).is_ok());
    // Different traffic classes are unordered.
    let mut b = rd(1, 2);
    b.tc = 3;
    assert!(run(&both(vec![wr(1, 1), b]), &[1, 0]).is_ok());
}

#[test]
fn reorders_the_rules_forbid_fail() {
    let e = run(&both(vec![wr(1, 1), wr(1, 2)]), &[1, 0]).expect_err("write passed write");
    assert!(e.contains("ordering violation"), "{e}");
    let e = run(&both(vec![wr(1, 1), rd(1, 2)]), &[1, 0]).expect_err("read passed write");
    assert!(e.contains("ordering violation"), "{e}");
    // RO does not let a read pass a write.
    let mut b = rd(1, 2);
    b.attr = 0b010;
    assert!(run(&both(vec![wr(1, 1), b]), &[1, 0]).is_err());
    // IDO needs a different requester.
    let mut b = wr(1, 2);
    b.attr = 0b100;
    assert!(run(&both(vec![wr(1, 1), b]), &[1, 0]).is_err());
    // Passing two writes, one of them legally (RO only counts for the passing TLP).
    let mut c = wr(1, 3);
    c.attr = 0b010;
    assert!(run(&both(vec![wr(1, 1), wr(1, 2), c]), &[2, 0, 1]).is_ok());
    assert!(run(&both(vec![wr(1, 1), wr(1, 2), c]), &[0, 2, 1]).is_ok());
    assert!(run(&both(vec![wr(1, 1), wr(1, 2), rd(1, 3)]), &[0, 2, 1]).is_err());
}

#[test]
fn dropped_and_completed_requests_impose_nothing() {
    // A faulting write (dropped) and a faulting read (UR on cpl) ahead of a write.
    let a = wr(1, 1);
    let b = rd(1, 2);
    let c = wr(1, 3);
    let mut sb = Scoreboard::new();
    sb.accept(0, bad(&a));
    sb.accept(1, bad(&b));
    sb.accept(2, ok(&c));
    sb.egress(10, tx(&c))
        .expect("c may pass the dropped a and the completed b");
    let cpl = bad(&b).answers[0].egress.expect("a UR completion");
    sb.egress(11, cpl).expect("b's completion");
    sb.settle(20).expect("settle");
    let recs = [
        expected_record(&a, FaultReason::SsNotPresent),
        expected_record(&b, FaultReason::SsNotPresent),
    ];
    sb.check_records(&recs).expect("records in order");

    // The oracle allows a translation or a fault: passing it is legal only if it is dropped.
    let mut set = AllowedSet::new();
    set.insert(Outcome::Translated(PA + a.addr));
    set.insert(Outcome::Fault(FaultReason::SsNotPresent));
    let maybe = Expect::oracle(&a, &set).expect("expect");
    let mut sb = Scoreboard::new();
    sb.accept(0, maybe.clone());
    sb.accept(1, ok(&c));
    sb.egress(10, tx(&c))
        .expect("c passes a, fine if a is dropped");
    sb.settle(30).expect("a dropped");
    sb.check_records(&recs[..1]).expect("a's record");
    let mut sb = Scoreboard::new();
    sb.accept(0, maybe);
    sb.accept(1, ok(&c));
    sb.egress(10, tx(&c)).expect("not known yet");
    let e = sb
        .egress(11, tx(&a))
        .expect_err("a reached tx after c passed it");
    assert!(e.message.contains("ordering violation"), "{e}");
}

#[test]
fn lost_duplicate_and_unknown_tlps_fail() {
    let a = rd(1, 1);
    let mut sb = Scoreboard::new();
    sb.accept(0, ok(&a));
    let e = sb.settle(10).expect_err("lost");
    assert!(e.message.contains("lost"), "{e}");
    assert_eq!(e.request, Some(0));

    let mut sb = Scoreboard::new();
    sb.accept(0, ok(&a));
    sb.watchdog(WATCHDOG).expect("not yet");
    assert!(sb.watchdog(WATCHDOG + 1).is_err());

    let mut sb = Scoreboard::new();
    sb.accept(0, ok(&a));
    sb.egress(5, tx(&a)).expect("answer");
    let e = sb.egress(6, tx(&a)).expect_err("duplicate");
    assert!(e.message.contains("duplicate"), "{e}");

    let mut sb = Scoreboard::new();
    sb.accept(0, ok(&a));
    let e = sb.egress(5, tx(&rd(7, 9))).expect_err("from nowhere");
    assert!(e.message.contains("no request"), "{e}");

    // Wrong contents: the right identity, another address.
    let mut sb = Scoreboard::new();
    sb.accept(0, ok(&a));
    let wrong = Egress::Tx(tlp::encode(&a.with_address(PA)).expect("encode").header);
    let e = sb.egress(5, wrong).expect_err("wrong address");
    assert!(
        e.message.contains("wrong answer") && e.message.contains("DUT did"),
        "{e}"
    );

    // A request that must be dropped leaves the unit.
    let w = wr(1, 4);
    let mut sb = Scoreboard::new();
    sb.accept(0, bad(&w));
    let e = sb.egress(5, tx(&w)).expect_err("must produce nothing");
    assert!(e.message.contains("must produce nothing"), "{e}");
}

#[test]
fn fault_records_are_checked_in_order() {
    let a = wr(1, 1);
    let b = wr(2, 2);
    let ra = expected_record(&a, FaultReason::SsNotPresent);
    let rb = expected_record(&b, FaultReason::SsNotPresent);
    let feed = |recs: &[_]| {
        let mut sb = Scoreboard::new();
        sb.accept(0, bad(&a));
        sb.accept(1, bad(&b));
        sb.settle(10).map_err(|e| e.message)?;
        sb.check_records(recs).map_err(|e| e.message)
    };
    assert!(feed(&[ra, rb]).is_ok());
    assert!(feed(&[rb, ra]).is_err(), "swapped records must fail");
    assert!(feed(&[ra]).is_err(), "a missing record must fail");
    assert!(feed(&[ra, rb, ra]).is_err(), "an extra record must fail");
}

#[test]
fn a_request_accepted_before_a_wait_leaves_before_its_status_write() {
    let reqs = both(vec![rd(1, 1), rd(1, 2)]);
    // Accepted at cycles 0 and 1, left at cycles 100 and 101.
    let sb = run(&reqs, &[0, 1]).expect("legal stream");
    // The wait was fetched after both were accepted: its status write must come after both.
    assert!(sb.check_wait(5, 101).is_ok());
    let e = sb
        .check_wait(5, 100)
        .expect_err("request #1 left after the status write");
    assert!(e.message.contains("rule 5"), "{}", e.message);
    assert_eq!(e.request, Some(1));
    // Fetched between the two acceptances: only the first one is bound by the wait.
    assert!(sb.check_wait(0, 100).is_ok());
    assert!(sb.check_wait(0, 99).is_err());
}
