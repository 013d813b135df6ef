//! The JSON of each wire type, as docs/API.md shows it, both ways.

use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};
use time::macros::datetime;

use super::*;

/// `value` serialises to `expected`, and `expected` reads back as `value`.
fn check<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: T, expected: Value) {
    assert_eq!(serde_json::to_value(&value).ok(), Some(expected.clone()));
    assert_eq!(serde_json::from_value::<T>(expected).ok(), Some(value));
}

#[test]
fn reserve_answers_read_as_the_api_shows_them() {
    check(
        Reserved {
            status: ReservedStatus::Reserved,
            gid: "7/alice".into(),
            order_id: None,
            confirmed: false,
            remaining_hint: 0,
        },
        json!({"status": "reserved", "gid": "7/alice", "order_id": null, "confirmed": false,
               "remaining_hint": 0}),
    );
    let refused = |refusal| Refused {
        refusal,
        message: "m".into(),
    };
    check(
        refused(ReserveRefusal::Duplicate {
            gid: "7/alice".into(),
            state: TxState::Succeeded,
            outcome: Some(TxOutcome::Pending),
            order_id: Some(12),
        }),
        json!({"error": "duplicate", "message": "m", "gid": "7/alice", "state": "succeeded",
               "outcome": "pending", "order_id": 12}),
    );
    check(
        refused(ReserveRefusal::NotStarted {
            starts_at: datetime!(2026-11-22 18:00 UTC),
        }),
        json!({"error": "not_started", "message": "m", "starts_at": "2026-11-22T18:00:00Z"}),
    );
    check(
        refused(ReserveRefusal::SoldOut {
            gid: None,
            order_id: None,
        }),
        json!({"error": "sold_out", "message": "m"}),
    );
    check(
        refused(ReserveRefusal::SoldOut {
            gid: Some("7/alice".into()),
            order_id: Some(12),
        }),
        json!({"error": "sold_out", "message": "m", "gid": "7/alice", "order_id": 12}),
    );
    check(
        refused(ReserveRefusal::Ended),
        json!({"error": "ended", "message": "m"}),
    );
    let unknown = serde_json::from_value::<Refused<ReserveRefusal>>(
        json!({"error": "redis_unavailable", "message": "m"}),
    );
    assert!(unknown.is_err(), "{unknown:?}");
}

#[test]
fn orders_read_as_the_api_shows_them() {
    let order = Order {
        id: 3,
        sale: 7,
        uid: "alice".into(),
        status: OrderStatus::Cancelled,
        created_at: datetime!(2026-11-22 18:00 UTC),
        expires_at: datetime!(2026-11-22 18:10 UTC),
        extended: false,
        payment_id: None,
        cancel_reason: Some(CancelReason::Expired),
    };
    let order_json = json!({"id": 3, "sale": 7, "uid": "alice", "status": "cancelled",
        "created_at": "2026-11-22T18:00:00Z", "expires_at": "2026-11-22T18:10:00Z",
        "extended": false, "payment_id": null, "cancel_reason": "expired"});
    let mut answer_json = order_json.clone();
    answer_json["hold_remaining_seconds"] = json!(0);
    check(
        OrderAnswer {
            order: order.clone(),
            hold_remaining_seconds: 0,
        },
        answer_json,
    );
    check(
        OrderRefused {
            error: OrderRefusal::HoldExpired,
            message: "m".into(),
            order,
            status: OrderStatus::Cancelled,
        },
        json!({"error": "hold_expired", "message": "m", "order": order_json,
               "status": "cancelled"}),
    );
}

#[test]
fn a_sale_reads_as_the_api_shows_it() {
    check(
        SaleFacts {
            id: 1,
            name: "Sneakers".into(),
            stock: 500,
            remaining: None,
            sold: 380,
            state: SaleState::SoldOut,
            starts_at: datetime!(2026-11-22 18:00 UTC),
            ends_at: None,
            hold_seconds: 600,
            price_cents: 12900,
            currency: "EUR".into(),
            server_time: datetime!(2026-11-22 18:00:03 UTC),
        },
        json!({"id": 1, "name": "Sneakers", "stock": 500, "remaining": null, "sold": 380,
               "state": "sold_out", "starts_at": "2026-11-22T18:00:00Z", "ends_at": null,
               "hold_seconds": 600, "price_cents": 12900, "currency": "EUR",
               "server_time": "2026-11-22T18:00:03Z"}),
    );
    check(
        ErrorBody {
            error: "unknown_order".to_string(),
            message: "no such order".into(),
        },
        json!({"error": "unknown_order", "message": "no such order"}),
    );
}
