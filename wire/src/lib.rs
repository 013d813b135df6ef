//! The wire between the origin and the edge: every answer of the origin that the edge reads,
//! as serde types the origin serialises and the edge deserialises once (`sale`, `reserve`,
//! `order`), the error body every refusal shares (`ErrorBody`), and the states and codes as
//! enums, so that a misspelt code is a compile error. Types only: no behaviour, no I/O; the two
//! services still talk HTTP, and the JSON is the one docs/API.md shows.
#![forbid(unsafe_code)]

pub mod order;
pub mod reserve;
pub mod sale;

pub use order::{CancelReason, Order, OrderAnswer, OrderRefusal, OrderRefused, OrderStatus};
pub use reserve::{Refused, ReserveRefusal, Reserved, ReservedStatus, TxOutcome, TxState, UidBody};
pub use sale::{SaleFacts, SaleState};

use serde::{Deserialize, Serialize};

/// The body of an answer that is not the thing asked for: a stable code and a human message.
/// Answers that say more (a duplicate's earlier outcome, a refused order) have their own types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody<C = String> {
    pub error: C,
    pub message: String,
}

#[cfg(test)]
mod tests;
