//! The refusals of a hold, by its status and the clock.

use super::*;
use time::macros::datetime;

#[test]
fn refusals_say_why() {
    let now = datetime!(2026-11-22 12:00 UTC);
    let order = |status, expires, cancel_reason| Order {
        id: 1,
        sale: 1,
        uid: "u".into(),
        status,
        created_at: now,
        expires_at: expires,
        extended: false,
        payment_id: None,
        cancel_reason,
    };
    let later = now + time::Duration::minutes(5);
    let check = |o: Order, expected| assert_eq!(o.refusal(now), expected, "{o:?}");
    use {CancelReason as Why, OrderRefusal as No, OrderStatus as S};
    check(order(S::Pending, now, None), No::HoldExpired);
    check(
        order(S::Cancelled, now, Some(Why::Expired)),
        No::HoldExpired,
    );
    check(
        order(S::Cancelled, now, Some(Why::User)),
        No::OrderCancelled,
    );
    check(order(S::Paid, later, None), No::AlreadyPaid);
    check(order(S::Rejected, now, None), No::OrderRejected);
    check(order(S::Pending, later, None), No::NotPending);
    assert_eq!(order(S::Pending, later, None).hold_remaining(now), 300);
    assert_eq!(order(S::Paid, later, None).hold_remaining(now), 0);
}
