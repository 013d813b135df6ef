//! A purchase from end to end: phase 1 in Redis (`reserve.lua`), phase 2 in PostgreSQL (the
//! branch, written with other winners' in one transaction by `branches`) at once, then
//! completion in Redis (`complete.lua`). A failure after phase 1 is not
//! the client's loss: the transaction stays due and the recovery poller finishes it. With a dtm
//! coordinator (`with_dtm`), the same phases run as a dtm message (`purchase/with_dtm.rs`).

mod with_dtm;

use std::sync::Arc;

use flash_wire::{TxOutcome, TxState};

use crate::{
    activity::Activity,
    branches::{Branch, BranchOutcome, BranchWriter},
    crash,
    database::Database,
    dtm::Dtm,
    error::Result,
    gid::Gid,
    heal::{Fences, Healer},
    metrics::Metrics,
    reservations::{Completion, EarlierTx, Loss, Reservation, Reservations, FENCE_EPOCH},
};

/// What a reservation request comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purchase {
    /// The unit is the user's. `order_id` is `None` when the database branch is left to recovery
    /// (the order will exist once it has run).
    Reserved {
        gid: Gid,
        order_id: Option<i64>,
        left: i64,
    },
    /// The user has a transaction in this sale already.
    Duplicate {
        gid: Gid,
        earlier: EarlierTx,
    },
    SoldOut,
    /// Redis granted a unit the database did not have: a `rejected` order records it and the
    /// stock in Redis was closed (set to what PostgreSQL has left: none).
    RejectedByDatabase {
        gid: Gid,
        order_id: i64,
    },
    /// The sale is being rebuilt from PostgreSQL after Redis lost data: nothing was taken.
    Healing,
    /// Redis has no stock key for the sale: an unknown sale, or one whose stock Redis lost (the
    /// caller tells which, off the hot path).
    NoStock,
}

#[derive(Clone)]
pub struct Purchases {
    redis: Reservations,
    db: Database,
    branches: BranchWriter,
    metrics: Metrics,
    fences: Arc<Fences>,
    healer: Healer,
    activity: Activity,
    /// The dtm coordinator, when `[coordinator] kind = "dtm"`.
    dtm: Option<Dtm>,
}

impl Purchases {
    pub fn new(
        redis: Reservations,
        db: Database,
        branches: BranchWriter,
        metrics: Metrics,
        healer: Healer,
        activity: Activity,
    ) -> Self {
        Self {
            redis,
            db,
            branches,
            metrics,
            fences: Arc::default(),
            healer,
            activity,
            dtm: None,
        }
    }

    /// Runs every purchase as a message of the dtm server `dtm`.
    pub fn with_dtm(mut self, dtm: Dtm) -> Self {
        self.dtm = Some(dtm);
        self
    }

    pub fn healer(&self) -> &Healer {
        &self.healer
    }

    pub fn redis(&self) -> &Reservations {
        &self.redis
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    /// Reserves a unit of `sale` for `uid` and turns it into an order. The Redis keys of the
    /// purchase expire at `expire_at_ms` (unix ms, 0: never). The sale is marked active first
    /// (at most once per `activity::MARK_EVERY`), so the poller finds the transaction.
    pub async fn reserve(&self, sale: i64, uid: &str, expire_at_ms: i64) -> Result<Purchase> {
        let gid = Gid::new(sale, uid);
        self.activity.mark(sale).await;
        if let Some(dtm) = &self.dtm {
            return self.reserve_with_dtm(dtm, gid, expire_at_ms).await;
        }
        let reservation = match self.redis.reserve(&gid, expire_at_ms).await {
            Ok(r) => r,
            Err(e) => {
                self.metrics.reservation("error");
                return Err(e);
            }
        };
        let (left, fence) = match reservation {
            Reservation::Reserved { left, fence } => {
                if let Some(loss) = self.fences.observe(sale, fence) {
                    self.healer.notice(sale, loss);
                }
                (left, fence)
            }
            loser => return self.loser(gid, loser),
        };
        self.metrics.reservation("reserved");
        tracing::debug!(%gid, left, "reserved");
        crash::point(crash::Point::AfterReserve);

        // With `redis.wait_replicas`, the reservation reaches the replicas while PostgreSQL
        // writes the order: the answer waits for both, and a failover after it keeps the
        // reservation (and so the order of a buyer told "reserved" before the branch ran).
        let (branch, replicas) = tokio::join!(self.branch(&gid), self.redis.await_replicas(sale));
        match replicas {
            None => {}
            Some(Ok(true)) => self.metrics.replica_wait("acked"),
            Some(Ok(false)) => {
                self.metrics.replica_wait("short");
                tracing::debug!(%gid, "fewer replicas than asked have the reservation");
            }
            Some(Err(error)) => {
                self.metrics.replica_wait("error");
                tracing::warn!(%gid, %error, "waiting for replicas failed");
            }
        }
        let outcome = match branch {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::warn!(%gid, %error, "branch failed, left to recovery");
                return Ok(Purchase::Reserved {
                    gid,
                    order_id: None,
                    left,
                });
            }
        };
        if let Err(error) = self.complete(&gid, outcome).await {
            tracing::warn!(%gid, %error, "completion failed, left to recovery");
        }
        if outcome.rejected && outcome.fresh {
            self.healer.notice(
                sale,
                Loss::Overcount {
                    epoch: fence.div_euclid(FENCE_EPOCH),
                },
            );
        }
        if !outcome.fresh {
            // The gid's order predates this reservation: Redis had lost its barrier. The unit
            // went back (complete.lua) and the buyer is told about the order they have.
            tracing::warn!(%gid, order_id = outcome.order_id, "a purchase repeated an order Redis had forgotten");
            return Ok(Purchase::Duplicate {
                gid,
                earlier: EarlierTx {
                    state: TxState::Succeeded,
                    outcome: Some(if outcome.rejected {
                        TxOutcome::Rejected
                    } else {
                        TxOutcome::Pending
                    }),
                    order_id: Some(outcome.order_id),
                },
            });
        }
        Ok(if outcome.rejected {
            Purchase::RejectedByDatabase {
                gid,
                order_id: outcome.order_id,
            }
        } else {
            Purchase::Reserved {
                gid,
                order_id: Some(outcome.order_id),
                left,
            }
        })
    }

    /// The answer to a reservation that took no unit, counted.
    fn loser(&self, gid: Gid, reservation: Reservation) -> Result<Purchase> {
        let (counted, purchase) = match reservation {
            Reservation::Healing => ("healing", Purchase::Healing),
            Reservation::Duplicate(earlier) => ("duplicate", Purchase::Duplicate { gid, earlier }),
            Reservation::SoldOut => ("sold_out", Purchase::SoldOut),
            Reservation::Unknown => return Ok(Purchase::NoStock),
            Reservation::Refused => {
                self.metrics.reservation("error");
                return Err(crate::error::Error::dtm(
                    "reserve",
                    "dtm's back-check failed the message before its reservation",
                ));
            }
            Reservation::Reserved { .. } => {
                return Err(crate::error::Error::Protocol("a reservation as a loser"))
            }
        };
        self.metrics.reservation(counted);
        Ok(purchase)
    }

    /// Phase 2 and completion for a transaction found due; idempotent.
    pub async fn finish(&self, gid: &Gid) -> Result<BranchOutcome> {
        let outcome = self.branch(gid).await?;
        self.complete(gid, outcome).await?;
        Ok(outcome)
    }

    /// Phase 2: the order row's columns (`sale_id`, `uid`, `gid` as text) queued for a writer.
    async fn branch(&self, gid: &Gid) -> Result<BranchOutcome> {
        let outcome = self
            .branches
            .run(Branch {
                sale: gid.sale,
                uid: gid.uid.clone(),
                gid: gid.to_string(),
            })
            .await;
        self.metrics.branch(match &outcome {
            Ok(o) if !o.fresh => "repeat",
            Ok(o) if o.rejected => "rejected",
            Ok(_) => "pending",
            Err(_) => "error",
        });
        let outcome = outcome?;
        if outcome.rejected && outcome.fresh {
            tracing::warn!(%gid, order_id = outcome.order_id, "database refused a unit Redis granted");
        }
        crash::point(crash::Point::AfterCommit);
        Ok(outcome)
    }

    async fn complete(&self, gid: &Gid, outcome: BranchOutcome) -> Result<()> {
        match self
            .redis
            .complete(gid, outcome.rejected, outcome.order_id, outcome.fresh)
            .await?
        {
            Completion::Completed { returned, closed } => {
                if returned {
                    tracing::info!(%gid, "unit of a repeated order returned to stock");
                }
                if closed {
                    self.metrics.gate_closed();
                    tracing::warn!(%gid, "PostgreSQL had no unit left: the stock in Redis is set to 0 (sold out)");
                }
            }
            Completion::Missing => {
                tracing::warn!(%gid, "transaction record missing in Redis at completion")
            }
            Completion::Already => {}
        }
        Ok(())
    }
}
