//! A reservation (`POST /v1/sales/{id}/reserve {"uid"}`): the request, the 200 answer
//! (`Reserved`) and the refusals the edge acts on (`ReserveRefusal`, tagged by the `error`
//! code: a duplicate, a sale not started, sold out, ended).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A body that names the user: a reservation's, an extension's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UidBody {
    pub uid: String,
}

/// The `status` of a 200: the unit is the user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservedStatus {
    Reserved,
}

/// The unit is the user's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reserved {
    pub status: ReservedStatus,
    pub gid: String,
    /// `None` while the database branch is left to recovery (the order exists once it ran).
    pub order_id: Option<i64>,
    /// Whether the order exists already (`order_id` is set).
    pub confirmed: bool,
    /// Units left after this one; 0 means this one was the last.
    pub remaining_hint: i64,
}

/// Where an earlier transaction of the user stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxState {
    /// In flight.
    Submitted,
    Succeeded,
}

/// What an earlier transaction that succeeded came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxOutcome {
    Pending,
    Rejected,
}

/// A refusal of a reservation, by its `error` code (409 or 410).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum ReserveRefusal {
    /// 409: the user has a transaction in this sale already.
    Duplicate {
        gid: String,
        state: TxState,
        outcome: Option<TxOutcome>,
        order_id: Option<i64>,
    },
    /// 409: before the sale's start.
    NotStarted {
        #[serde(with = "time::serde::rfc3339")]
        starts_at: OffsetDateTime,
    },
    /// 410: no unit left. With `gid` and `order_id` when the database refused a unit Redis
    /// granted (that user's `rejected` order); without, the same answer for everyone.
    SoldOut {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gid: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order_id: Option<i64>,
    },
    /// 410: after the sale's end.
    Ended,
}

/// A refusal and its human message: `{"error": code, ...fields, "message": text}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused<R> {
    #[serde(flatten)]
    pub refusal: R,
    pub message: String,
}
