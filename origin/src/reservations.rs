//! The Redis side of the two-phase message: the key layout of a sale and the Lua scripts of `lua/`
//! (the only code that changes stock and transaction keys), with their replies as typed values.
//! Scripts run by EVALSHA through `redis_layer` (one node or a cluster): every script's keys
//! share one hash tag, so a script runs on one node: the sale's `{s:<sale>}`, or `{recovery}` for
//! the index of active sales (`activity.rs`), which no sale's script can write for that reason.

use std::{sync::LazyLock, time::Duration};

use redis::{Script, Value};
use redis_layer::Redis;

use crate::{
    dtm::MessageGid,
    error::{Error, Result},
    gid::Gid,
};

mod heal;
mod keys;
mod replies;

pub use keys::SaleKeys;
use replies::{earlier_tx, int, parse_active_sales, parse_completion, parse_reservation, text};
pub use replies::{
    ActiveSales, Claim, Completion, EarlierTx, HealFinish, HealStart, HealedOrder, Loss,
    Reservation, StockRepair, StockSnapshot,
};

static RESERVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/reserve.lua")));
static COMPLETE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/complete.lua")));
static DTM_QUERY: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/dtm_query.lua")));
static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/claim.lua")));
static OPEN_STOCK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/open_stock.lua")));
static REPAIR_STOCK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/repair_stock.lua")));
static RESTOCK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/restock.lua")));
static MARK_ACTIVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/mark_active.lua")));
static ACTIVE_SALES: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/active_sales.lua")));

/// The recovery poller's index of active sales (`activity.rs`): a sorted set of sale ids scored
/// by their last mark (Redis TIME in ms), and the index's epoch. Its own hash tag, one slot.
pub const ACTIVE_SALES_KEY: &str = "{recovery}:active";

/// One fence epoch: a heal moves a sale's fence to the next multiple of this.
pub const FENCE_EPOCH: i64 = 1 << 32;

/// The Redis side of the sales, over the services' one Redis handle.
#[derive(Clone)]
pub struct Reservations {
    redis: Redis,
    branch_timeout_ms: u64,
    /// Replicas a winner's reservation waits for, and for how long at most.
    wait: Option<(u32, Duration)>,
}

impl Reservations {
    pub fn new(redis: Redis, branch_timeout: Duration) -> Self {
        Self {
            redis,
            branch_timeout_ms: u64::try_from(branch_timeout.as_millis()).unwrap_or(u64::MAX),
            wait: None,
        }
    }

    /// Makes [`Reservations::await_replicas`] wait for `replicas` (none when 0) up to `timeout`.
    pub fn waiting_for(mut self, replicas: u32, timeout: Duration) -> Self {
        self.wait = (replicas > 0).then_some((replicas, timeout));
        self
    }

    /// After a reservation of `sale`: waits until the configured number of replicas of the node
    /// holding the sale have it (`WAIT`), at most the configured time. `None` when no replica
    /// is asked for; else whether enough replicas acknowledged.
    pub async fn await_replicas(&self, sale: i64) -> Option<Result<bool>> {
        let (replicas, timeout) = self.wait?;
        let acked = self
            .redis
            .wait_replicas(&SaleKeys::new(sale).stock(), replicas, timeout)
            .await;
        Some(acked.map(|n| n >= replicas).map_err(Error::from))
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        what: &'static str,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        Ok(self.redis.script(what, invocation).await?)
    }

    /// Loads every script into Redis, so that no request pays for a NOSCRIPT retry.
    pub async fn preload(&self) -> Result<()> {
        Ok(self
            .redis
            .load(&[
                &RESERVE,
                &COMPLETE,
                &CLAIM,
                &OPEN_STOCK,
                &REPAIR_STOCK,
                &RESTOCK,
                &heal::HEAL_BEGIN,
                &heal::HEAL_KEYS,
                &heal::HEAL_FINISH,
                &MARK_ACTIVE,
                &ACTIVE_SALES,
                &DTM_QUERY,
            ])
            .await?)
    }

    /// Phase 1: barrier, stock and transaction record in one round trip. The barrier and the
    /// record expire at `expire_at_ms` (unix ms; 0: never).
    pub async fn reserve(&self, gid: &Gid, expire_at_ms: i64) -> Result<Reservation> {
        self.reserve_as(gid, None, expire_at_ms).await
    }

    /// Phase 1 of dtm's `message` (prepared at dtm): as [`Reservations::reserve`], refused when
    /// dtm's back-check failed the message already; the record names the message and says
    /// `coordinator = dtm`, which the recovery poller leaves to dtm.
    pub async fn reserve_message(
        &self,
        message: &MessageGid,
        expire_at_ms: i64,
    ) -> Result<Reservation> {
        self.reserve_as(&message.gid, Some(message), expire_at_ms)
            .await
    }

    async fn reserve_as(
        &self,
        gid: &Gid,
        message: Option<&MessageGid>,
        expire_at_ms: i64,
    ) -> Result<Reservation> {
        let keys = SaleKeys::new(gid.sale);
        let message = message.map(ToString::to_string).unwrap_or_default();
        let mut inv = RESERVE.prepare_invoke();
        inv.key(keys.stock())
            .key(keys.barrier(gid))
            .key(keys.tx(gid))
            .key(keys.due())
            .key(keys.healing())
            .key(keys.fence())
            .key(keys.restocks())
            .key(keys.marker(&message))
            .arg(gid.to_string())
            .arg(&gid.uid)
            .arg(self.branch_timeout_ms)
            .arg(keys.events())
            .arg(expire_at_ms)
            .arg(&message);
        let reply: Vec<Value> = self.run("reserve", &inv).await?;
        parse_reservation(&reply).ok_or(Error::Protocol("reserve.lua reply"))
    }

    /// What `reserve.lua` would answer a loser, read without writing (one MULTI/EXEC): `None`
    /// when a unit may be had. With dtm, a loser costs this read and no call to dtm.
    pub async fn loser(&self, gid: &Gid) -> Result<Option<Reservation>> {
        let keys = SaleKeys::new(gid.sale);
        let pipe = redis::pipe()
            .atomic()
            .exists(keys.barrier(gid))
            .cmd("HMGET")
            .arg(keys.tx(gid))
            .arg("state")
            .arg("outcome")
            .arg("order")
            .exists(keys.healing())
            .get(keys.stock())
            .clone();
        type Read = (
            bool,
            (Option<String>, Option<String>, Option<String>),
            bool,
            Option<i64>,
        );
        let (barrier, (state, outcome, order), healing, stock): Read =
            self.redis.pipeline("loser check", &pipe).await?;
        let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
        Ok(if barrier {
            let earlier = earlier_tx(nonempty(state), nonempty(outcome), nonempty(order))
                .ok_or(Error::Protocol("transaction record"))?;
            Some(Reservation::Duplicate(earlier))
        } else if healing {
            Some(Reservation::Healing)
        } else {
            match stock {
                None => Some(Reservation::Unknown),
                Some(left) if left <= 0 => Some(Reservation::SoldOut),
                Some(_) => None,
            }
        })
    }

    /// dtm's back-check of `message` (`dtm_query.lua`): `true` when its reservation exists;
    /// else the marker that refuses a later one is written (expiring at `expire_at_ms`, unix
    /// ms, 0: never) and the answer is `false`.
    pub async fn query_prepared(&self, message: &MessageGid, expire_at_ms: i64) -> Result<bool> {
        let keys = SaleKeys::new(message.gid.sale);
        let text = message.to_string();
        let mut inv = DTM_QUERY.prepare_invoke();
        inv.key(keys.tx(&message.gid))
            .key(keys.marker(&text))
            .arg(&text)
            .arg(expire_at_ms);
        let reply: String = self.run("dtm_query", &inv).await?;
        match reply.as_str() {
            "PREPARED" => Ok(true),
            "FAILURE" => Ok(false),
            _ => Err(Error::Protocol("dtm_query.lua reply")),
        }
    }

    /// Marks a transaction succeeded (idempotent). A `rejected` order closes the stock; a repeat
    /// (`fresh` false) of an order older than the transaction gives its unit back.
    pub async fn complete(
        &self,
        gid: &Gid,
        rejected: bool,
        order_id: i64,
        fresh: bool,
    ) -> Result<Completion> {
        let keys = SaleKeys::new(gid.sale);
        let mut inv = COMPLETE.prepare_invoke();
        inv.key(keys.stock())
            .key(keys.tx(gid))
            .key(keys.due())
            .key(keys.restocks())
            .arg(gid.to_string())
            .arg(if rejected { "rejected" } else { "pending" })
            .arg(order_id)
            .arg(keys.events())
            .arg(if fresh { "fresh" } else { "repeat" });
        let reply: Vec<Value> = self.run("complete", &inv).await?;
        parse_completion(&reply).ok_or(Error::Protocol("complete.lua reply"))
    }

    /// Claims up to `batch` due transactions of a sale, each with a lease that doubles per attempt.
    pub async fn claim_due(
        &self,
        sale: i64,
        lease: Duration,
        max_lease: Duration,
        batch: u32,
    ) -> Result<Claim> {
        let keys = SaleKeys::new(sale);
        let mut inv = CLAIM.prepare_invoke();
        inv.key(keys.due())
            .arg(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX))
            .arg(u64::try_from(max_lease.as_millis()).unwrap_or(u64::MAX))
            .arg(batch)
            .arg(keys.tx_prefix());
        let reply: Vec<Value> = self.run("claim", &inv).await?;
        let in_flight = int(reply.first()).ok_or(Error::Protocol("claim.lua reply"))?;
        let next_due_ms = int(reply.get(1)).ok_or(Error::Protocol("claim.lua reply"))?;
        let next_due_in = (next_due_ms >= 0 || in_flight > 0)
            .then(|| Duration::from_millis(u64::try_from(next_due_ms).unwrap_or(0)));
        let claimed = reply[2..]
            .chunks(2)
            .map(|pair| {
                let gid = text(pair.first())?;
                let attempt = u32::try_from(int(pair.get(1))?).ok()?;
                Some((gid, attempt))
            })
            .collect::<Option<Vec<_>>>()
            .ok_or(Error::Protocol("claim.lua reply"))?;
        Ok(Claim {
            in_flight,
            claimed,
            next_due_in,
        })
    }

    /// Marks `sale` active in the index (`mark_active.lua`, scored by Redis TIME); `true` when it
    /// was not there.
    pub async fn mark_active(&self, sale: i64) -> Result<bool> {
        let mut inv = MARK_ACTIVE.prepare_invoke();
        inv.key(ACTIVE_SALES_KEY).arg(sale);
        let added: i64 = self.run("mark_active", &inv).await?;
        Ok(added == 1)
    }

    /// Reads the index of active sales, dropping those not marked within `horizon`
    /// (`active_sales.lua`).
    pub async fn active_sales(&self, horizon: Duration) -> Result<ActiveSales> {
        let mut inv = ACTIVE_SALES.prepare_invoke();
        inv.key(ACTIVE_SALES_KEY).arg(millis(horizon));
        let reply: Vec<Value> = self.run("active_sales", &inv).await?;
        parse_active_sales(&reply).ok_or(Error::Protocol("active_sales.lua reply"))
    }

    /// Puts a new sale's stock into Redis once; `false` when it was already there.
    pub async fn open_stock(&self, sale: i64, stock: u32) -> Result<bool> {
        let keys = SaleKeys::new(sale);
        let mut inv = OPEN_STOCK.prepare_invoke();
        inv.key(keys.stock()).arg(stock);
        let set: i64 = self.run("open_stock", &inv).await?;
        Ok(set == 1)
    }

    /// The stock, the restock count and the transactions in flight, read at one moment
    /// (MULTI/EXEC).
    pub async fn stock_snapshot(&self, sale: i64) -> Result<StockSnapshot> {
        let keys = SaleKeys::new(sale);
        let pipe = redis::pipe()
            .atomic()
            .get(keys.stock())
            .get(keys.restocks())
            .zcard(keys.due())
            .clone();
        let (stock, restocks, in_flight): (Option<i64>, Option<i64>, u64) =
            self.redis.pipeline("stock snapshot", &pipe).await?;
        Ok(StockSnapshot {
            stock,
            restocks: restocks.unwrap_or(0),
            in_flight,
        })
    }

    /// Sets the stock to `stock` if Redis is still as `seen` (read before PostgreSQL) and nothing
    /// is in flight.
    pub async fn repair_stock(
        &self,
        sale: i64,
        stock: i64,
        seen: &StockSnapshot,
    ) -> Result<StockRepair> {
        let keys = SaleKeys::new(sale);
        let mut inv = REPAIR_STOCK.prepare_invoke();
        inv.key(keys.stock())
            .key(keys.due())
            .key(keys.restocks())
            .arg(stock)
            .arg(keys.events())
            .arg(seen.stock.map(|n| n.to_string()).unwrap_or_default())
            .arg(seen.restocks);
        let reply: Vec<Value> = self.run("repair_stock", &inv).await?;
        match (text(reply.first()).as_deref(), int(reply.get(1))) {
            (Some("REPAIRED"), Some(old)) => Ok(StockRepair::Repaired {
                from: (old >= 0).then_some(old),
            }),
            (Some("IN_FLIGHT"), Some(n)) => {
                Ok(StockRepair::InFlight(u64::try_from(n).unwrap_or(0)))
            }
            (Some("MOVED"), _) => Ok(StockRepair::Moved),
            _ => Err(Error::Protocol("repair_stock.lua reply")),
        }
    }

    /// Gives a cancelled order's unit back, once (`restock.lua`); `true` when it went back now,
    /// `false` when an earlier call had returned it.
    pub async fn restock(&self, sale: i64, order_id: i64) -> Result<bool> {
        let keys = SaleKeys::new(sale);
        let mut inv = RESTOCK.prepare_invoke();
        inv.key(keys.stock())
            .key(keys.returned(order_id))
            .key(keys.restocks())
            .arg(keys.events());
        let reply: Vec<Value> = self.run("restock", &inv).await?;
        match text(reply.first()).as_deref() {
            Some("RESTOCKED") => Ok(true),
            Some("ALREADY") => Ok(false),
            _ => Err(Error::Protocol("restock.lua reply")),
        }
    }

    /// Units left in Redis, `None` when the sale has no stock key.
    pub async fn remaining(&self, sale: i64) -> Result<Option<i64>> {
        let cmd = redis::cmd("GET").arg(SaleKeys::new(sale).stock()).clone();
        Ok(self.redis.query("get stock", &cmd).await?)
    }

    /// Gids of a sale's transactions still in flight (not completed).
    pub async fn in_flight(&self, sale: i64) -> Result<Vec<String>> {
        let cmd = redis::cmd("ZRANGE")
            .arg(SaleKeys::new(sale).due())
            .arg(0)
            .arg(-1)
            .clone();
        Ok(self.redis.query("in flight", &cmd).await?)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
