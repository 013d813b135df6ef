//! An order, a soft hold, as its owner sees it (`GET /v1/orders/{id}`, extend, cancel, the
//! payment webhook's answer): its status and cancel reason as enums, the 200 answer
//! (`OrderAnswer`) and the 409 (`OrderRefused`, with the refusal's code).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Where an order stands (the `status` column of `orders`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// A live hold until `expires_at`.
    Pending,
    Paid,
    Cancelled,
    /// The database had no unit for it.
    Rejected,
}

/// Why an order was cancelled (the `cancel_reason` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// Its owner cancelled it.
    User,
    /// The hold lapsed (the sweeper).
    Expired,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: i64,
    pub sale: i64,
    pub uid: String,
    pub status: OrderStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub extended: bool,
    pub payment_id: Option<String>,
    pub cancel_reason: Option<CancelReason>,
}

/// The 200 of an operation on an order: the order and the seconds left on its hold (0 unless
/// pending).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderAnswer {
    #[serde(flatten)]
    pub order: Order,
    pub hold_remaining_seconds: i64,
}

/// Why an operation on an order was refused (409).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderRefusal {
    /// The hold lapsed (a payment after it is refunded).
    HoldExpired,
    /// Paid already, with another payment id.
    AlreadyPaid,
    /// A hold is extended once.
    AlreadyExtended,
    /// This payment id paid another order.
    PaymentIdUsed,
    /// A payment for an order bought for another uid.
    UidMismatch,
    AmountMismatch,
    CurrencyMismatch,
    /// The sweeper's cancel of a hold that is still live.
    NotExpired,
    OrderCancelled,
    OrderRejected,
    NotPending,
}

/// The 409 of an operation on an order: the code, the message and the order as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRefused {
    pub error: OrderRefusal,
    pub message: String,
    pub order: Order,
    pub status: OrderStatus,
}
