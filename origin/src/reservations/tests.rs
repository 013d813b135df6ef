//! The replies of the Lua scripts read as typed values, and unknown replies refused.

use flash_wire::{TxOutcome, TxState};
use redis::Value;

use super::{replies::*, *};

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

#[test]
fn replies_parse_into_outcomes() {
    let check = |reply: Vec<Value>, expected: Option<Reservation>| {
        assert_eq!(parse_reservation(&reply), expected, "{reply:?}");
    };
    check(
        vec![bulk("RESERVED"), Value::Int(3), Value::Int(17)],
        Some(Reservation::Reserved { left: 3, fence: 17 }),
    );
    check(vec![bulk("RESERVED"), Value::Int(3)], None);
    check(vec![bulk("SOLD_OUT")], Some(Reservation::SoldOut));
    check(vec![bulk("HEALING")], Some(Reservation::Healing));
    check(vec![bulk("UNKNOWN")], Some(Reservation::Unknown));
    check(
        vec![
            bulk("DUPLICATE"),
            bulk("succeeded"),
            bulk("pending"),
            bulk("42"),
        ],
        Some(Reservation::Duplicate(EarlierTx {
            state: TxState::Succeeded,
            outcome: Some(TxOutcome::Pending),
            order_id: Some(42),
        })),
    );
    check(
        vec![bulk("DUPLICATE"), bulk("submitted"), bulk(""), bulk("")],
        Some(Reservation::Duplicate(EarlierTx {
            state: TxState::Submitted,
            outcome: None,
            order_id: None,
        })),
    );
    check(vec![bulk("WHAT")], None);
    check(vec![], None);
}

#[test]
fn completion_and_heal_replies_parse() {
    let check = |reply: Vec<Value>, expected: Option<Completion>| {
        assert_eq!(parse_completion(&reply), expected, "{reply:?}");
    };
    check(
        vec![bulk("COMPLETED"), Value::Int(0), Value::Int(1)],
        Some(Completion::Completed {
            returned: false,
            closed: true,
        }),
    );
    check(
        vec![bulk("COMPLETED"), Value::Int(1), Value::Int(0)],
        Some(Completion::Completed {
            returned: true,
            closed: false,
        }),
    );
    check(vec![bulk("COMPLETED"), Value::Int(1)], None);
    check(vec![bulk("ALREADY")], Some(Completion::Already));
    check(vec![bulk("MISSING")], Some(Completion::Missing));
    check(vec![bulk("DONE")], None);

    let check = |reply: Vec<Value>, expected: Option<HealStart>| {
        assert_eq!(parse_heal_start(&reply), expected, "{reply:?}");
    };
    check(
        vec![bulk("STARTED"), Value::Int(4)],
        Some(HealStart::Started { restocks: 4 }),
    );
    check(vec![bulk("STARTED")], None);
    check(vec![bulk("BUSY")], Some(HealStart::Busy));
    check(vec![bulk("HEALED")], Some(HealStart::Healed));

    let check = |reply: Vec<Value>, expected: Option<HealFinish>| {
        assert_eq!(parse_heal_finish(&reply), expected, "{reply:?}");
    };
    check(
        vec![bulk("HEALED"), Value::Int(0)],
        Some(HealFinish::Healed { stock: 0 }),
    );
    check(
        vec![bulk("MOVED"), Value::Int(9)],
        Some(HealFinish::Moved { restocks: 9 }),
    );
    check(vec![bulk("LOST")], Some(HealFinish::Lost));
    check(vec![bulk("MOVED")], None);
}

#[test]
fn the_index_reply_parses_into_its_epoch_and_sales() {
    let check = |reply: Vec<Value>, expected: Option<(&str, Vec<i64>)>| {
        let expected = expected.map(|(epoch, sales)| ActiveSales {
            epoch: epoch.into(),
            sales,
        });
        assert_eq!(parse_active_sales(&reply), expected, "{reply:?}");
    };
    check(vec![bulk("17000001")], Some(("17000001", vec![])));
    check(
        vec![bulk("17000001"), bulk("3"), bulk("12")],
        Some(("17000001", vec![3, 12])),
    );
    check(
        vec![bulk("17000001"), bulk("x"), bulk("4")],
        Some(("17000001", vec![4])),
    );
    check(vec![bulk("")], None);
    check(vec![], None);
}

#[test]
fn keys_share_a_slot() {
    let k = SaleKeys::new(7);
    let gid = Gid::new(7, "u");
    assert_eq!(k.barrier(&gid), "{s:7}:b:7/u");
    assert_eq!(k.tx(&gid), "{s:7}:tx:7/u");
    for key in [
        k.stock(),
        k.barrier(&gid),
        k.tx(&gid),
        k.due(),
        k.restocks(),
        k.returned(3),
        k.healing(),
        k.fence(),
        k.prefix(),
    ] {
        assert!(key.starts_with("{s:7}:"), "{key}");
    }
}
