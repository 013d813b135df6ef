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

use std::time::Duration;

use deadpool_postgres::Transaction;
use flash_wire::{CancelReason, OrderRefusal, OrderStatus};
use time::OffsetDateTime;
use tokio_postgres::{error::SqlState, Row};

use crate::{
    activity::Activity,
    config::HoldsConfig,
    crash,
    database::Database,
    enum_text::{spelling, Text},
    error::{Error, Result},
    metrics::Metrics,
    payments::PaymentEvent,
    reservations::Reservations,
};

pub use flash_wire::Order;

/// Branch id and operation of the cancellation in the barrier table.
const CANCEL_BRANCH: &str = "02";
const OP_CANCEL: &str = "cancel";

/// The columns [`Order::from_row`] reads, by name.
const ORDER_COLUMNS: &str = "id, sale_id, uid, status, created_at, expires_at, extended, \
                             payment_id, cancel_reason";
/// PostgreSQL's clock at a read, selected beside [`ORDER_COLUMNS`] under this name.
const DB_NOW: &str = "now() AS db_now";

/// A user's cancel waits for the row (a payment or a sweep holding it finishes first, then the
/// user is told what it came to); the sweeper skips a locked row, which the next sweep sees.
const LOCK_WAITING: &str = "FOR UPDATE";
const LOCK_SKIPPING: &str = "FOR UPDATE SKIP LOCKED";

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

    /// Marks the order paid by a verified payment webhook (`payments.rs`) if it is still a live
    /// hold of `event.uid`, and the amount and currency are its sale's. One guarded UPDATE (the
    /// hold live by the database's clock, the price matching), so payment and expiry never both
    /// win. The same payment again answers the same and changes nothing; a payment after expiry
    /// is refused `hold_expired` (the shop refunds it).
    pub async fn confirm_payment(&self, event: &PaymentEvent) -> Result<Outcome> {
        let client = self.db.client().await?;
        let (id, uid, payment_id) = (
            event.order_id,
            event.uid.as_str(),
            event.payment_id.as_str(),
        );
        let paid = client
            .query_opt(
                &format!(
                    "UPDATE orders SET status = 'paid', payment_id = $3, paid_at = now()
                     WHERE id = $1 AND uid = $2 AND status = 'pending' AND expires_at > now()
                       AND EXISTS (SELECT 1 FROM sales WHERE sales.id = orders.sale_id
                                   AND price_cents = $4 AND currency = $5)
                     RETURNING {ORDER_COLUMNS}"
                ),
                &[&id, &uid, &payment_id, &event.amount_cents, &event.currency],
            )
            .await;
        let outcome = match paid {
            Ok(Some(row)) => {
                let order = Order::from_row(&row);
                self.metrics.hold("paid");
                tracing::info!(order = id, %uid, payment_id, "order paid");
                return Ok(Outcome::Done(order));
            }
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => match self.load(id).await? {
                Some(order) => Outcome::Refused {
                    code: OrderRefusal::PaymentIdUsed,
                    order,
                },
                None => Outcome::Unknown,
            },
            Err(e) => return Err(Error::postgres("pay order")(e)),
            Ok(None) => self.explain_payment(event).await?,
        };
        match &outcome {
            Outcome::Done(_) => tracing::info!(
                order = id,
                payment_id,
                "payment replayed: answered as before"
            ),
            Outcome::Refused { code, order } => tracing::warn!(
                order = id, %uid, payment_id, ?code, status = ?order.status,
                amount_cents = event.amount_cents, currency = %event.currency,
                "payment refused"
            ),
            _ => tracing::warn!(order = id, payment_id, "payment for an unknown order"),
        }
        Ok(outcome)
    }

    /// After the payment's guarded UPDATE changed nothing: why, checked in the order the
    /// UPDATE's guard reads (owner, price, then the hold); the same payment id on a paid order
    /// is the payment again.
    async fn explain_payment(&self, event: &PaymentEvent) -> Result<Outcome> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {ORDER_COLUMNS}, {DB_NOW},
                        (SELECT price_cents FROM sales WHERE sales.id = orders.sale_id) AS price_cents,
                        (SELECT currency FROM sales WHERE sales.id = orders.sale_id) AS currency
                     FROM orders WHERE id = $1"
                ),
                &[&event.order_id],
            )
            .await
            .map_err(Error::postgres("read order"))?;
        let Some(row) = row else {
            return Ok(Outcome::Unknown);
        };
        let order = Order::from_row(&row);
        let now: OffsetDateTime = row.get("db_now");
        let price: i64 = row.get("price_cents");
        let currency: String = row.get("currency");
        let code = if order.uid != event.uid {
            OrderRefusal::UidMismatch
        } else if price != event.amount_cents {
            OrderRefusal::AmountMismatch
        } else if currency != event.currency {
            OrderRefusal::CurrencyMismatch
        } else if order.status == OrderStatus::Paid
            && order.payment_id.as_deref() == Some(&event.payment_id)
        {
            return Ok(Outcome::Done(order));
        } else {
            order.refusal(now)
        };
        Ok(Outcome::Refused { code, order })
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

    /// The user `uid` cancels their pending hold (expired or not) and its unit goes back.
    pub async fn cancel_by_user(&self, id: i64, uid: &str) -> Result<Outcome> {
        let mut client = self.db.client().await?;
        let tx = begin_cancel(&mut client).await?;
        let Some(locked) = lock_order(&tx, id, LOCK_WAITING).await? else {
            return Ok(Outcome::Unknown);
        };
        if locked.order.uid != uid {
            return Ok(Outcome::NotYours);
        }
        if locked.order.status != OrderStatus::Pending {
            return Ok(locked.refused());
        }
        self.release(tx, locked, Cancellation::ByUser).await
    }

    /// The sweeper cancels an expired hold and its unit goes back; a hold still live, or one
    /// locked by a payment or a user at this moment, is left as it is.
    pub async fn expire(&self, id: i64) -> Result<Outcome> {
        let mut client = self.db.client().await?;
        let tx = begin_cancel(&mut client).await?;
        let Some(locked) = lock_order(&tx, id, LOCK_SKIPPING).await? else {
            return Ok(Outcome::Unknown);
        };
        if locked.order.status != OrderStatus::Pending {
            return Ok(locked.refused());
        }
        // The database's clock, as payment's guard (`expires_at > now()`) reads it: under the
        // row lock, exactly one of the two sees the hold live.
        if locked.order.expires_at > locked.now {
            return Ok(Outcome::Refused {
                code: OrderRefusal::NotExpired,
                order: locked.order,
            });
        }
        self.release(tx, locked, Cancellation::Expired).await
    }

    /// The shared core of a cancel, under the row lock of `tx`: the cancel barrier (a second
    /// cancel of the same order finds it), the order `cancelled`, `sold - 1` and the `returns`
    /// row in one commit, then the unit back in Redis (left to recovery when that fails).
    async fn release(
        &self,
        tx: Transaction<'_>,
        locked: Locked,
        why: Cancellation,
    ) -> Result<Outcome> {
        let Locked { order, gid, .. } = locked;
        let id = order.id;
        let barrier = tx
            .execute(
                "INSERT INTO barriers (gid, branch, op) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&gid, &CANCEL_BRANCH, &OP_CANCEL],
            )
            .await
            .map_err(Error::postgres("cancel barrier"))?;
        if barrier == 0 {
            return Ok(Outcome::Refused {
                code: OrderRefusal::OrderCancelled,
                order,
            });
        }
        let row = tx
            .query_one(
                &format!(
                    "UPDATE orders SET status = 'cancelled', cancelled_at = now(), cancel_reason = $2
                     WHERE id = $1 RETURNING {ORDER_COLUMNS}"
                ),
                &[&id, &spelling(why.reason())],
            )
            .await
            .map_err(Error::postgres("cancel order"))?;
        tx.execute(
            "UPDATE sales SET sold = sold - 1 WHERE id = $1",
            &[&order.sale],
        )
        .await
        .map_err(Error::postgres("release unit"))?;
        tx.execute(
            "INSERT INTO returns (order_id, sale_id, gid) VALUES ($1, $2, $3)",
            &[&id, &order.sale, &gid],
        )
        .await
        .map_err(Error::postgres("record return"))?;
        tx.commit()
            .await
            .map_err(Error::postgres("commit cancel"))?;
        self.metrics.hold(why.metric());
        tracing::info!(
            order = id,
            sale = order.sale,
            reason = ?why.reason(),
            "hold cancelled"
        );
        crash::point(crash::Point::AfterCancel);
        if let Err(error) = self.give_back(order.sale, id).await {
            tracing::warn!(order = id, %error, "unit return left to recovery");
        }
        Ok(Outcome::Done(Order::from_row(&row)))
    }

    /// The Redis side of a return, then the `returns` row marked done. Idempotent. The sale is
    /// marked active first, so the poller's look at the books sees it.
    async fn give_back(&self, sale: i64, order: i64) -> Result<()> {
        self.activity.mark(sale).await;
        if self.redis.restock(sale, order).await? {
            self.metrics.hold("returned");
            tracing::info!(order, sale, "unit back in stock");
        }
        crash::point(crash::Point::AfterRestock);
        let client = self.db.client().await?;
        client
            .execute(
                "UPDATE returns SET done_at = now() WHERE order_id = $1 AND done_at IS NULL",
                &[&order],
            )
            .await
            .map_err(Error::postgres("close return"))?;
        Ok(())
    }

    /// Cancels up to `sweep_batch` expired holds; returns how many it cancelled.
    pub async fn sweep_once(&self) -> Result<usize> {
        let batch = i64::from(self.config.sweep_batch);
        let ids: Vec<i64> = {
            let client = self.db.client().await?;
            client
                .query(
                    "SELECT id FROM orders WHERE status = 'pending' AND expires_at <= now()
                     ORDER BY expires_at LIMIT $1",
                    &[&batch],
                )
                .await
                .map_err(Error::postgres("find expired holds"))?
                .iter()
                .map(|r| r.get(0))
                .collect()
        };
        let mut cancelled = 0;
        for id in ids {
            if matches!(self.expire(id).await?, Outcome::Done(_)) {
                cancelled += 1;
            }
        }
        Ok(cancelled)
    }

    /// Finishes the returns left open longer than `older_than` (an origin died between the
    /// database cancel and the Redis return); returns how many it finished.
    pub async fn finish_returns(&self, older_than: Duration) -> Result<usize> {
        let rows = {
            let client = self.db.client().await?;
            client
                .query(
                    "SELECT order_id, sale_id FROM returns
                     WHERE done_at IS NULL AND created_at < now() - make_interval(secs => $1)
                     LIMIT 1000",
                    &[&older_than.as_secs_f64()],
                )
                .await
                .map_err(Error::postgres("find open returns"))?
        };
        for row in &rows {
            let (order, sale): (i64, i64) = (row.get(0), row.get(1));
            self.give_back(sale, order).await?;
            self.metrics.recovery("return");
            tracing::info!(order, sale, "unit return recovered");
        }
        Ok(rows.len())
    }

    /// Units cancelled in the database and not yet back in Redis, for reconcile.
    pub async fn returning(&self, sale: i64) -> Result<i64> {
        let client = self.db.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM returns WHERE sale_id = $1 AND done_at IS NULL",
                &[&sale],
            )
            .await
            .map_err(Error::postgres("count open returns"))?;
        Ok(row.get(0))
    }
}

/// Who cancels a hold: the `cancel_reason` written and the `holds` metric counted.
#[derive(Debug, Clone, Copy)]
enum Cancellation {
    ByUser,
    Expired,
}

impl Cancellation {
    fn reason(self) -> CancelReason {
        match self {
            Self::ByUser => CancelReason::User,
            Self::Expired => CancelReason::Expired,
        }
    }

    fn metric(self) -> &'static str {
        match self {
            Self::ByUser => "cancelled",
            Self::Expired => "expired",
        }
    }
}

/// An order read under its row lock, with its gid and PostgreSQL's clock at the read.
struct Locked {
    order: Order,
    gid: String,
    now: OffsetDateTime,
}

impl Locked {
    /// Not a pending hold: why it cannot be cancelled.
    fn refused(self) -> Outcome {
        Outcome::Refused {
            code: self.order.refusal(self.now),
            order: self.order,
        }
    }
}

async fn begin_cancel(client: &mut deadpool_postgres::Object) -> Result<Transaction<'_>> {
    client
        .transaction()
        .await
        .map_err(Error::postgres("begin cancel"))
}

/// The order `id` locked by `lock` ([`LOCK_WAITING`] or [`LOCK_SKIPPING`]) until `tx` ends;
/// `None` when there is no such order (or, skipping, it is locked now).
async fn lock_order(tx: &Transaction<'_>, id: i64, lock: &str) -> Result<Option<Locked>> {
    let row = tx
        .query_opt(
            &format!("SELECT {ORDER_COLUMNS}, gid, {DB_NOW} FROM orders WHERE id = $1 {lock}"),
            &[&id],
        )
        .await
        .map_err(Error::postgres("lock order"))?;
    Ok(row.map(|row| Locked {
        order: Order::from_row(&row),
        gid: row.get("gid"),
        now: row.get("db_now"),
    }))
}

#[cfg(test)]
mod tests {
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
}
