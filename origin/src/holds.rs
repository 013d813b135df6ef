//! Holds and payment. An order is a soft hold: `pending` until `expires_at`. A payment, confirmed
//! only by the payment service's signed webhook (`payments.rs`), marks it `paid` in one guarded
//! UPDATE (still pending, not expired, the sale's amount and currency; idempotent by payment id,
//! which pays one order once). A hold
//! can be extended once. Expiry (the sweeper) or the user cancels it, and its unit goes back to
//! Redis through a second two-phase message: the database side first, in one transaction (barrier
//! row, `cancelled`, `sold - 1`, a `returns` row), then `restock.lua` with its Redis barrier, then
//! the `returns` row is marked done. A crash in between leaves the `returns` row open and any
//! origin's poller finishes it: the unit comes back exactly once. Payment and expiry race safely:
//! both are guarded by `status = 'pending'` under the row lock, so exactly one wins.
//!
//! Here the order as read from its row and the reads and the extension; payment in `payment`,
//! the cancels, the sweep and the returns in `cancel`.

mod cancel;
mod payment;

use flash_wire::{CancelReason, OrderRefusal, OrderStatus};
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::{
    activity::Activity,
    config::HoldsConfig,
    database::Database,
    enum_text::Text,
    error::{Error, Result},
    metrics::Metrics,
    reservations::Reservations,
};

pub use flash_wire::Order;

/// The columns [`Order::from_row`] reads, by name.
const ORDER_COLUMNS: &str = "id, sale_id, uid, status, created_at, expires_at, extended, \
                             payment_id, cancel_reason";
/// PostgreSQL's clock at a read, selected beside [`ORDER_COLUMNS`] under this name.
const DB_NOW: &str = "now() AS db_now";

/// An order (the wire's `Order`) as the origin reads it from its row, and the rules of a hold.
pub trait Hold {
    fn from_row(row: &Row) -> Self;
    /// Seconds left on a pending hold at `now` (0 otherwise).
    fn hold_remaining(&self, now: OffsetDateTime) -> i64;
    /// Why an operation that needs a live pending hold cannot happen to this order.
    fn refusal(&self, now: OffsetDateTime) -> OrderRefusal;
}

impl Hold for Order {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            sale: row.get("sale_id"),
            uid: row.get("uid"),
            status: row.get::<_, Text<OrderStatus>>("status").0,
            created_at: row.get("created_at"),
            expires_at: row.get("expires_at"),
            extended: row.get("extended"),
            payment_id: row.get("payment_id"),
            cancel_reason: row
                .get::<_, Option<Text<CancelReason>>>("cancel_reason")
                .map(|t| t.0),
        }
    }

    fn hold_remaining(&self, now: OffsetDateTime) -> i64 {
        if self.status == OrderStatus::Pending {
            (self.expires_at - now).whole_seconds().max(0)
        } else {
            0
        }
    }

    fn refusal(&self, now: OffsetDateTime) -> OrderRefusal {
        match (self.status, self.cancel_reason) {
            (OrderStatus::Pending, _) if self.expires_at <= now => OrderRefusal::HoldExpired,
            (OrderStatus::Cancelled, Some(CancelReason::Expired)) => OrderRefusal::HoldExpired,
            (OrderStatus::Cancelled, _) => OrderRefusal::OrderCancelled,
            (OrderStatus::Paid, _) => OrderRefusal::AlreadyPaid,
            (OrderStatus::Rejected, _) => OrderRefusal::OrderRejected,
            (OrderStatus::Pending, _) => OrderRefusal::NotPending,
        }
    }
}

/// What an operation on an order came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done now (or, for a payment, done before with the same payment id).
    Done(Order),
    /// Refused with a stable code (`hold_expired`, `already_paid`, ...); the order as it is.
    Refused {
        code: OrderRefusal,
        order: Order,
    },
    /// Another user's order: the API answers it exactly as [`Outcome::Unknown`], so order ids
    /// (sequential) tell a user nothing about other users' orders.
    NotYours,
    Unknown,
}

#[derive(Clone)]
pub struct Holds {
    db: Database,
    redis: Reservations,
    config: HoldsConfig,
    metrics: Metrics,
    activity: Activity,
}

impl Holds {
    pub fn new(
        db: Database,
        redis: Reservations,
        config: HoldsConfig,
        metrics: Metrics,
        activity: Activity,
    ) -> Self {
        Self {
            db,
            redis,
            config,
            metrics,
            activity,
        }
    }

    async fn load(&self, id: i64) -> Result<Option<Order>> {
        Ok(self.load_with_clock(id).await?.map(|(order, _)| order))
    }

    /// The order and PostgreSQL's clock at the read: holds expire by the database's clock
    /// (`expires_at` is written and compared there), never by an origin's.
    async fn load_with_clock(&self, id: i64) -> Result<Option<(Order, OffsetDateTime)>> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {ORDER_COLUMNS}, {DB_NOW} FROM orders WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(Error::postgres("read order"))?;
        Ok(row.map(|row| (Order::from_row(&row), row.get("db_now"))))
    }

    /// The order, if it is `uid`'s.
    pub async fn order(&self, id: i64, uid: &str) -> Result<Outcome> {
        Ok(match self.load(id).await? {
            None => Outcome::Unknown,
            Some(order) if order.uid != uid => Outcome::NotYours,
            Some(order) => Outcome::Done(order),
        })
    }

    /// After a guarded UPDATE changed nothing: why, from the order as it is now.
    async fn explain(&self, id: i64, uid: &str) -> Result<Outcome> {
        Ok(match self.load_with_clock(id).await? {
            None => Outcome::Unknown,
            Some((order, _)) if order.uid != uid => Outcome::NotYours,
            Some((order, now)) => Outcome::Refused {
                code: order.refusal(now),
                order,
            },
        })
    }

    /// Extends a live hold once, by `extend_seconds`, up to `max_hold_seconds` from creation;
    /// never shortens it (a sale may hold longer than `max_hold_seconds`: then it stays as is).
    pub async fn extend(&self, id: i64, uid: &str) -> Result<Outcome> {
        let client = self.db.client().await?;
        let extend = f64::from(self.config.extend_seconds);
        let max = f64::from(self.config.max_hold_seconds);
        let row = client
            .query_opt(
                &format!(
                    "UPDATE orders SET extended = true,
                        expires_at = greatest(expires_at,
                                              least(expires_at + make_interval(secs => $3),
                                                    created_at + make_interval(secs => $4)))
                     WHERE id = $1 AND uid = $2 AND status = 'pending' AND NOT extended
                       AND expires_at > now()
                     RETURNING {ORDER_COLUMNS}"
                ),
                &[&id, &uid, &extend, &max],
            )
            .await
            .map_err(Error::postgres("extend hold"))?;
        Ok(match row {
            Some(row) => {
                self.metrics.hold("extended");
                Outcome::Done(Order::from_row(&row))
            }
            None => match self.explain(id, uid).await? {
                Outcome::Refused { order, .. }
                    if order.status == OrderStatus::Pending && order.extended =>
                {
                    Outcome::Refused {
                        code: OrderRefusal::AlreadyExtended,
                        order,
                    }
                }
                other => other,
            },
        })
    }
}

#[cfg(test)]
mod tests;
