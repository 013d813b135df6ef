//! A sale as the origin shows it (`GET /v1/sales/{id}`, and the answer of its creation), and
//! where a sale stands: the one `SaleState` of both services.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Where a sale stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaleState {
    Upcoming,
    Live,
    SoldOut,
    Ended,
}

/// A sale's public facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleFacts {
    pub id: i64,
    pub name: String,
    /// Units the sale opened with.
    pub stock: i64,
    /// Redis's count; `None` (`null`) when the origin could not read it (Redis away).
    pub remaining: Option<i64>,
    /// PostgreSQL's live orders.
    pub sold: i64,
    /// At `server_time`, judged on `remaining` (on `stock - sold` while Redis is away).
    pub state: SaleState,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ends_at: Option<OffsetDateTime>,
    pub hold_seconds: i64,
    /// Price in the currency's minor unit.
    pub price_cents: i64,
    /// ISO 4217 code.
    pub currency: String,
    #[serde(with = "time::serde::rfc3339")]
    pub server_time: OffsetDateTime,
}
