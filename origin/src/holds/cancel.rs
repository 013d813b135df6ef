//! Cancels and returns: the user's cancel and the sweeper's expiry over one shared core
//! (`release`), the unit's way back to Redis (`give_back`), the sweep and the poller that finishes
//! returns an origin left open.

use std::time::Duration;

use deadpool_postgres::Transaction;
use flash_wire::{CancelReason, OrderRefusal, OrderStatus};
use time::OffsetDateTime;

use super::{Hold, Holds, Order, Outcome, DB_NOW, ORDER_COLUMNS};
use crate::{
    crash,
    enum_text::spelling,
    error::{Error, Result},
};

/// Branch id and operation of the cancellation in the barrier table.
const CANCEL_BRANCH: &str = "02";
const OP_CANCEL: &str = "cancel";

/// A user's cancel waits for the row (a payment or a sweep holding it finishes first, then the
/// user is told what it came to); the sweeper skips a locked row, which the next sweep sees.
const LOCK_WAITING: &str = "FOR UPDATE";
const LOCK_SKIPPING: &str = "FOR UPDATE SKIP LOCKED";

impl Holds {
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
