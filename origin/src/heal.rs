//! Healing a sale whose Redis side lost data, from PostgreSQL, with no operator.
//!
//! Noticing, on the hot path and without a round trip of its own:
//! - a stock key that is gone (`reserve.lua` answers UNKNOWN for a sale PostgreSQL knows): Redis
//!   restarted empty, or a node was replaced by an empty one;
//! - a fence handed out twice. `reserve.lua` increments the sale's fence with every unit and
//!   returns it, so each value is unique in one Redis history; each origin remembers the fences it
//!   was handed ([`Fences`]). A Redis that went back in time (restarted from an older AOF or RDB,
//!   a replica promoted before it had the last writes) hands out again fences it had handed out
//!   before the loss, and the origin that saw them first notices.
//!
//! Healing ([`Healer`]): `heal_begin.lua` takes the sale's heal lock (while it is held
//! `reserve.lua` hands out nothing: `503 stock_unavailable`); the due set is read, then
//! PostgreSQL in one snapshot; `heal_keys.lua` writes back the barriers and records of every
//! order (earlier buyers are `duplicate` again) and the return barriers of every returned unit;
//! `heal_finish.lua` sets the stock to `total - live orders - units in flight without an order`,
//! guarded by the restock count, moves the fence to a new epoch, drops the lock and tells the
//! edges (`sold_out` or `restocked`). Two origins noticing one loss heal it once: the second finds
//! the lock, or a fence of a later epoch.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use time::OffsetDateTime;

use crate::{
    database::Database,
    error::Result,
    metrics::Metrics,
    reservations::{HealFinish, HealStart, HealedOrder, Loss, Reservations, FENCE_EPOCH},
};

/// Fences remembered per sale: far more than replies in flight at once, so a reply handled late
/// is never taken for a repeat.
const FENCES_KEPT: usize = 4096;

/// Orders written back per `heal_keys.lua` call.
const KEYS_PER_STEP: usize = 500;

/// Times a heal reads PostgreSQL again when units came back meanwhile.
const FINISH_TRIES: usize = 5;

/// The fences this origin was handed, per sale.
#[derive(Default)]
pub struct Fences {
    seen: Mutex<HashMap<i64, SeenFences>>,
}

#[derive(Default)]
struct SeenFences {
    order: VecDeque<i64>,
    set: HashSet<i64>,
}

impl Fences {
    /// Records `fence` of `sale`; the loss it reveals when it was handed out before (or is older
    /// than every fence remembered, all of which were handed out after it).
    pub fn observe(&self, sale: i64, fence: i64) -> Option<Loss> {
        let Ok(mut seen) = self.seen.lock() else {
            return None;
        };
        let fences = seen.entry(sale).or_default();
        let oldest = fences.order.front().copied();
        let repeated = fences.set.contains(&fence)
            || (fences.order.len() == FENCES_KEPT && oldest.is_some_and(|o| fence < o));
        if repeated {
            return Some(Loss::RepeatedFence {
                epoch: fence.div_euclid(FENCE_EPOCH),
            });
        }
        if fences.order.len() == FENCES_KEPT {
            if let Some(old) = fences.order.pop_front() {
                fences.set.remove(&old);
            }
        }
        fences.order.push_back(fence);
        fences.set.insert(fence);
        None
    }
}

/// When the keys of a sale ending at `ends_at` expire: `retention` after its end (unix ms), 0
/// for a sale without an end.
pub fn keys_expire_at(ends_at: Option<OffsetDateTime>, retention: Duration) -> i64 {
    ends_at.map_or(0, |end| {
        let end_ms = i64::try_from(end.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        end_ms.saturating_add(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX))
    })
}

/// What one heal came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Healed {
    /// This origin healed the sale: its stock now, the barriers and return barriers written.
    Healed {
        stock: i64,
        barriers: i64,
        returns: i64,
    },
    /// Another origin holds the lock.
    Busy,
    /// The loss was healed already.
    AlreadyHealed,
    /// The lock expired under this heal (another origin may heal now).
    LostLock,
    /// The sale ended longer than the key retention ago: nothing is brought back.
    Expired,
    /// PostgreSQL does not know the sale.
    Unknown,
}

/// Heals sales in the background, one heal per sale at a time in this origin.
#[derive(Clone)]
pub struct Healer {
    inner: Arc<Inner>,
}

struct Inner {
    redis: Reservations,
    db: Database,
    metrics: Metrics,
    lock: Duration,
    retention: Duration,
    running: Mutex<HashSet<i64>>,
    tokens: AtomicU64,
}

impl Healer {
    /// `lock`: the heal lock's lifetime (renewed by each step); `retention`: how long after its
    /// end a sale's keys live.
    pub fn new(
        redis: Reservations,
        db: Database,
        metrics: Metrics,
        lock: Duration,
        retention: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                redis,
                db,
                metrics,
                lock,
                retention,
                running: Mutex::new(HashSet::new()),
                tokens: AtomicU64::new(0),
            }),
        }
    }

    /// `loss` was noticed for `sale`: heals it in the background unless this origin is healing
    /// it already.
    pub fn notice(&self, sale: i64, loss: Loss) {
        let how = match loss {
            Loss::MissingStock => "missing_stock",
            Loss::RepeatedFence { .. } => "repeated_fence",
            Loss::Overcount { .. } => "overcount",
            Loss::Drift { .. } => "drift",
        };
        let fresh = self
            .inner
            .running
            .lock()
            .is_ok_and(|mut running| running.insert(sale));
        if !fresh {
            return;
        }
        self.inner.metrics.loss(how);
        tracing::warn!(
            sale,
            how,
            ?loss,
            "Redis lost data of this sale: healing it from PostgreSQL"
        );
        let healer = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let outcome = healer.heal(sale, loss).await;
            healer.report(sale, outcome, started);
            if let Ok(mut running) = healer.inner.running.lock() {
                running.remove(&sale);
            }
        });
    }

    fn report(&self, sale: i64, outcome: Result<Healed>, started: Instant) {
        let took_ms = started.elapsed().as_millis();
        let metrics = &self.inner.metrics;
        match outcome {
            Ok(Healed::Healed {
                stock,
                barriers,
                returns,
            }) => {
                metrics.heal("healed");
                metrics.healed_in(started.elapsed().as_secs_f64());
                tracing::warn!(
                    sale,
                    stock,
                    barriers,
                    returns,
                    took_ms,
                    "sale healed from PostgreSQL"
                );
            }
            Ok(Healed::Busy) => {
                metrics.heal("busy");
                tracing::info!(sale, "another origin is healing this sale");
            }
            Ok(Healed::AlreadyHealed) => {
                metrics.heal("already_healed");
                tracing::info!(sale, "the loss was healed already");
            }
            Ok(Healed::LostLock) => {
                metrics.heal("lost_lock");
                tracing::error!(
                    sale,
                    took_ms,
                    "the heal lock expired during the heal: the next loss noticed heals again"
                );
            }
            Ok(Healed::Expired) => {
                metrics.heal("expired");
                tracing::info!(sale, "the sale ended beyond the key retention: not healed");
            }
            Ok(Healed::Unknown) => {
                metrics.heal("error");
                tracing::error!(
                    sale,
                    "a loss was noticed for a sale PostgreSQL does not know"
                );
            }
            Err(error) => {
                metrics.heal("error");
                tracing::error!(sale, %error, took_ms, "heal failed: the next loss noticed tries again");
            }
        }
    }

    /// Looks at the books of `sale` (of `total` units) at a quiet moment, and heals it when they
    /// drift: nothing in flight, no unit on its way back, and Redis unchanged while PostgreSQL
    /// was read (so the drift is not a purchase or a return in the middle). Three reads, off the
    /// hot path.
    pub async fn check_books(&self, sale: i64, total: i64) -> Result<()> {
        let inner = &self.inner;
        let seen = inner.redis.stock_snapshot(sale).await?;
        if seen.in_flight > 0 {
            return Ok(());
        }
        let held = inner.db.units_held(sale).await?;
        if held.returning > 0 {
            return Ok(());
        }
        let drift = total - seen.stock.unwrap_or(0) - held.live;
        if drift == 0 || inner.redis.stock_snapshot(sale).await? != seen {
            return Ok(());
        }
        self.notice(
            sale,
            match seen.stock {
                Some(_) => Loss::Drift { drift },
                None => Loss::MissingStock,
            },
        );
        Ok(())
    }

    /// One heal of `sale` (see the module's summary).
    pub async fn heal(&self, sale: i64, loss: Loss) -> Result<Healed> {
        let inner = &self.inner;
        let token = format!(
            "{}-{}-{}",
            std::process::id(),
            OffsetDateTime::now_utc().unix_timestamp_nanos(),
            inner.tokens.fetch_add(1, Ordering::Relaxed)
        );
        // Before the lock: a sale past its keys' retention is left alone, with nothing written.
        let Some(stored) = inner.db.sale(sale).await? else {
            return Ok(Healed::Unknown);
        };
        let expire_at = keys_expire_at(stored.ends_at, inner.retention);
        if expire_at > 0 && expire_at <= now_ms() {
            return Ok(Healed::Expired);
        }
        let mut restocks = match inner
            .redis
            .heal_begin(sale, &token, inner.lock, loss)
            .await?
        {
            HealStart::Started { restocks } => restocks,
            HealStart::Busy => return Ok(Healed::Busy),
            HealStart::Healed => return Ok(Healed::AlreadyHealed),
        };
        let (mut barriers, mut returns) = (0, 0);
        for _ in 0..FINISH_TRIES {
            // Redis before PostgreSQL: a transaction in flight now either has its order in the
            // snapshot (counted as live) or not yet (its unit counted as taken here).
            let in_flight = inner.redis.in_flight(sale).await?;
            let Some(source) = inner.db.heal_source(sale).await? else {
                return Ok(Healed::Unknown);
            };
            let ordered: HashSet<&str> = source.orders.iter().map(|o| o.gid.as_str()).collect();
            let without_order = i64::try_from(
                in_flight
                    .iter()
                    .filter(|g| !ordered.contains(g.as_str()))
                    .count(),
            )
            .unwrap_or(i64::MAX);
            let mut chunks: Vec<&[HealedOrder]> = source.orders.chunks(KEYS_PER_STEP).collect();
            if chunks.is_empty() {
                chunks.push(&[]);
            }
            for (i, chunk) in chunks.iter().enumerate() {
                // The returns go with the first step.
                let returned: &[i64] = if i == 0 { &source.returns } else { &[] };
                let Some((b, r)) = inner
                    .redis
                    .heal_keys(sale, &token, inner.lock, expire_at, chunk, returned)
                    .await?
                else {
                    return Ok(Healed::LostLock);
                };
                barriers += b;
                returns += r;
            }
            let stock = source.total - source.live - without_order;
            match inner
                .redis
                .heal_finish(sale, &token, stock, restocks)
                .await?
            {
                HealFinish::Healed { stock } => {
                    return Ok(Healed::Healed {
                        stock,
                        barriers,
                        returns,
                    })
                }
                HealFinish::Moved { restocks: now } => {
                    tracing::info!(
                        sale,
                        "a unit came back during the heal: reading PostgreSQL again"
                    );
                    restocks = now;
                }
                HealFinish::Lost => return Ok(Healed::LostLock),
            }
        }
        Ok(Healed::LostLock)
    }
}

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
