//! The replies of the Lua scripts as typed values (`Reservation`, `Completion`, `HealStart`,
//! ...) and their parsers: a reply of another shape is `None`, which the caller turns into a
//! protocol error.

use std::time::Duration;

use flash_wire::{TxOutcome, TxState};
use redis::Value;

use crate::enum_text::parse;

/// What `reserve.lua` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// One unit taken; `left` units remain. `fence` is unique in this Redis's history: one
    /// handed out twice means Redis forgot writes.
    Reserved {
        left: i64,
        fence: i64,
    },
    /// The user's transaction exists already.
    Duplicate(EarlierTx),
    SoldOut,
    /// The sale is being rebuilt from PostgreSQL: no unit is handed out meanwhile.
    Healing,
    /// The sale has no stock key in Redis.
    Unknown,
    /// dtm's back-check failed this message before its reservation arrived: nothing taken.
    Refused,
}

/// The state of an earlier transaction, as a duplicate finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierTx {
    /// In flight (`submitted`) or `succeeded`.
    pub state: TxState,
    /// `pending` or `rejected` once succeeded.
    pub outcome: Option<TxOutcome>,
    pub order_id: Option<i64>,
}

/// What `claim.lua` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Transactions of the sale not completed, claimed or not.
    pub in_flight: i64,
    /// Claimed gids with their attempt number (1 for the first claim).
    pub claimed: Vec<(String, u32)>,
    /// How long until the earliest transaction left in the due set falls due (zero when some
    /// are due already); `None` when the set is empty.
    pub next_due_in: Option<Duration>,
}

/// What `active_sales.lua` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSales {
    /// The index's epoch: another one than last read means the index was lost meanwhile.
    pub epoch: String,
    /// The sales marked within the horizon, oldest mark first.
    pub sales: Vec<i64>,
}

/// A sale's Redis side at one moment, as reconcile's repair reads it before PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockSnapshot {
    /// `None` when the sale has no stock key.
    pub stock: Option<i64>,
    /// The stock's raises and repairs so far (`{s:<sale>}:restocks`).
    pub restocks: i64,
    /// Transactions not completed (the due set's size).
    pub in_flight: u64,
}

/// What `repair_stock.lua` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockRepair {
    /// The stock was set; it was `from` (`None`: no key).
    Repaired { from: Option<i64> },
    /// Transactions in flight: nothing changed.
    InFlight(u64),
    /// The stock moved since the snapshot: nothing changed.
    Moved,
}

/// What `complete.lua` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Marked succeeded now. `returned`: the unit went back to stock (a repeat of an older
    /// order). `closed`: PostgreSQL had no unit, so the stock was set to 0.
    Completed {
        returned: bool,
        closed: bool,
    },
    Already,
    Missing,
}

/// What `heal_begin.lua` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealStart {
    /// The lock is ours; `restocks` is the restock count now (the finish's guard).
    Started { restocks: i64 },
    /// Another healer holds the lock.
    Busy,
    /// The loss was healed since it was noticed.
    Healed,
}

/// How a sale's loss was noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// The stock key is gone.
    MissingStock,
    /// A fence of this epoch was handed out twice.
    RepeatedFence { epoch: i64 },
    /// PostgreSQL refused a unit handed out with a fence of this epoch: Redis had more units
    /// than the database (it lost reservations, whose barriers are gone too).
    Overcount { epoch: i64 },
    /// The books drift at a quiet moment (nothing in flight, nothing moved while PostgreSQL was
    /// read): Redis lost what no reservation meets, such as a returned unit.
    Drift { drift: i64 },
}

/// One order as a heal writes it back: gid, whether PostgreSQL rejected it, its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealedOrder {
    pub gid: String,
    pub rejected: bool,
    pub order_id: i64,
}

/// What `heal_finish.lua` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealFinish {
    Healed {
        stock: i64,
    },
    /// A unit came back during the heal; `restocks` is the count now.
    Moved {
        restocks: i64,
    },
    /// The lock expired or another healer took it.
    Lost,
}

pub(super) fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

pub(super) fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Int(n) => Some(*n),
        other => text(Some(other))?.parse().ok(),
    }
}

/// The epoch, then the sales; a member that is not a sale id (nothing writes one) is left out
/// rather than failing every poll.
pub(super) fn parse_active_sales(reply: &[Value]) -> Option<ActiveSales> {
    let (epoch, members) = reply.split_first()?;
    Some(ActiveSales {
        epoch: text(Some(epoch)).filter(|e| !e.is_empty())?,
        sales: members
            .iter()
            .filter_map(|m| text(Some(m))?.parse().ok())
            .collect(),
    })
}

pub(super) fn parse_completion(reply: &[Value]) -> Option<Completion> {
    Some(match text(reply.first())?.as_str() {
        "COMPLETED" => Completion::Completed {
            returned: int(reply.get(1))? == 1,
            closed: int(reply.get(2))? == 1,
        },
        "ALREADY" => Completion::Already,
        "MISSING" => Completion::Missing,
        _ => return None,
    })
}

pub(super) fn parse_heal_start(reply: &[Value]) -> Option<HealStart> {
    Some(match text(reply.first())?.as_str() {
        "STARTED" => HealStart::Started {
            restocks: int(reply.get(1))?,
        },
        "BUSY" => HealStart::Busy,
        "HEALED" => HealStart::Healed,
        _ => return None,
    })
}

pub(super) fn parse_heal_finish(reply: &[Value]) -> Option<HealFinish> {
    Some(match text(reply.first())?.as_str() {
        "HEALED" => HealFinish::Healed {
            stock: int(reply.get(1))?,
        },
        "MOVED" => HealFinish::Moved {
            restocks: int(reply.get(1))?,
        },
        "LOST" => HealFinish::Lost,
        _ => return None,
    })
}

/// An earlier transaction from its record's `state`, `outcome` and `order` (absent or empty:
/// `None`); a record without a state is still `submitted`.
pub(super) fn earlier_tx(
    state: Option<String>,
    outcome: Option<String>,
    order: Option<String>,
) -> Option<EarlierTx> {
    Some(EarlierTx {
        state: match state {
            Some(state) => parse(&state)?,
            None => TxState::Submitted,
        },
        outcome: match outcome {
            Some(outcome) => Some(parse(&outcome)?),
            None => None,
        },
        order_id: order.and_then(|s| s.parse().ok()),
    })
}

pub(super) fn parse_reservation(reply: &[Value]) -> Option<Reservation> {
    Some(match text(reply.first())?.as_str() {
        "RESERVED" => Reservation::Reserved {
            left: int(reply.get(1))?,
            fence: int(reply.get(2))?,
        },
        "DUPLICATE" => {
            let nonempty = |i| text(reply.get(i)).filter(|s| !s.is_empty());
            Reservation::Duplicate(earlier_tx(nonempty(1), nonempty(2), nonempty(3))?)
        }
        "SOLD_OUT" => Reservation::SoldOut,
        "HEALING" => Reservation::Healing,
        "UNKNOWN" => Reservation::Unknown,
        "REFUSED" => Reservation::Refused,
        _ => return None,
    })
}
