//! The recovery poller, run by every origin: every poll it claims the due transactions of each
//! known sale (`claim.lua` leases them, with a lease that doubles per attempt, so two origins never
//! work one transaction at once), runs their branch again (idempotent) and completes them. It also
//! sweeps expired holds, finishes unit returns a crash left open, keeps the sale catalog fresh
//! from PostgreSQL and, as often, looks at each sale's books to heal what Redis lost.

use std::time::Duration;

use tokio::sync::watch;

use crate::{
    config::RecoveryConfig, holds::Holds, metrics::Metrics, purchase::Purchases,
    reservations::split_gid, sales::Catalog,
};

/// Polls between two refreshes of the sale catalog from PostgreSQL.
const CATALOG_REFRESH_POLLS: u64 = 25;

/// A claim that keeps failing (Redis away) is logged at most this often.
const CLAIM_WARNING_EVERY: Duration = Duration::from_secs(10);

/// Shortest wait between two polls, when transactions are due already (more than one claim
/// takes, or claimed by another origin whose lease ends at once).
const MIN_WAIT: Duration = Duration::from_millis(5);

/// What one poll did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Poll {
    /// Transactions completed.
    pub completed: usize,
    /// How long until the earliest transaction left in any sale's due set falls due.
    pub soonest_due: Option<Duration>,
}

pub struct Poller {
    pub purchases: Purchases,
    pub holds: Holds,
    pub catalog: Catalog,
    pub metrics: Metrics,
    pub config: RecoveryConfig,
    /// When a failed claim was last logged: Redis away fails every claim of every poll.
    pub last_claim_warning: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Poller {
    /// Runs until `shutdown` turns true. Polls at once, then every `poll_interval_ms`, or sooner
    /// when a transaction falls due before that (so an orphan is taken over when its
    /// `recovery.timeout` is up, not up to a poll later).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let interval = Duration::from_millis(self.config.poll_interval_ms);
        let mut wait = Duration::ZERO;
        let mut polls: u64 = 0;
        loop {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
            if polls % CATALOG_REFRESH_POLLS == 0 {
                self.refresh_catalog().await;
                self.check_books().await;
            }
            polls += 1;
            let poll = self.poll_once().await;
            self.sweep().await;
            wait = poll
                .soonest_due
                .map_or(interval, |due| due.clamp(MIN_WAIT, interval));
        }
        tracing::info!("recovery poller stopped");
    }

    async fn refresh_catalog(&self) {
        match self.purchases.db().recent_sales().await {
            Ok(sales) => {
                for sale in sales {
                    self.catalog.insert(sale);
                }
            }
            Err(error) => tracing::warn!(%error, "sale catalog refresh failed"),
        }
    }

    fn claim_failed(&self, sale: i64, error: &crate::error::Error) {
        self.metrics.recovery("claim_error");
        let Ok(mut last) = self.last_claim_warning.lock() else {
            return;
        };
        if last.is_none_or(|at| at.elapsed() >= CLAIM_WARNING_EVERY) {
            *last = Some(std::time::Instant::now());
            tracing::warn!(sale, %error, every_s = CLAIM_WARNING_EVERY.as_secs(), "claiming due transactions failed (logged at most this often)");
        }
    }

    /// Heals the sales whose books drift at a quiet moment (see `Healer::check_books`).
    async fn check_books(&self) {
        for id in self.catalog.ids() {
            let Some(sale) = self.catalog.get(id) else {
                continue;
            };
            if let Err(error) = self
                .purchases
                .healer()
                .check_books(id, i64::from(sale.total))
                .await
            {
                tracing::warn!(sale = id, %error, "checking the books failed");
            }
        }
    }

    /// Cancels expired holds (their units go back) and finishes returns a crash left open.
    pub async fn sweep(&self) {
        match self.holds.sweep_once().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(cancelled = n, "expired holds cancelled"),
            Err(error) => tracing::warn!(%error, "hold sweep failed"),
        }
        let older_than = Duration::from_millis(self.config.timeout_ms);
        if let Err(error) = self.holds.finish_returns(older_than).await {
            tracing::warn!(%error, "finishing open returns failed");
        }
    }

    /// One pass over every known sale.
    pub async fn poll_once(&self) -> Poll {
        let mut completed = 0;
        let mut in_flight = 0;
        let mut all_read = true;
        let mut soonest_due: Option<Duration> = None;
        for sale in self.catalog.ids() {
            self.metrics.claim();
            let claim = match self
                .purchases
                .redis()
                .claim_due(
                    sale,
                    Duration::from_millis(self.config.lease_ms),
                    Duration::from_millis(self.config.max_lease_ms),
                    self.config.batch,
                )
                .await
            {
                Ok(claim) => claim,
                Err(error) => {
                    all_read = false;
                    self.claim_failed(sale, &error);
                    continue;
                }
            };
            in_flight += claim.in_flight;
            if let Some(due) = claim.next_due_in {
                soonest_due = Some(soonest_due.map_or(due, |s| s.min(due)));
            }
            for (gid, attempt) in claim.claimed {
                let Some((_, uid)) = split_gid(&gid) else {
                    tracing::error!(%gid, "malformed gid in due set");
                    continue;
                };
                match self.purchases.finish(sale, uid, &gid).await {
                    Ok(outcome) => {
                        completed += 1;
                        self.metrics.recovery("completed");
                        tracing::info!(%gid, attempt, order_id = outcome.order_id,
                            rejected = outcome.rejected, "transaction recovered");
                    }
                    Err(error) => {
                        self.metrics.recovery("error");
                        tracing::warn!(%gid, attempt, %error, "recovery attempt failed, backing off");
                        // The rest of the batch keeps its lease and comes back after it.
                        break;
                    }
                }
            }
        }
        // A sale whose due set could not be read is not "nothing in flight": the gauge keeps its
        // last full reading.
        if all_read {
            self.metrics.set_in_flight(in_flight);
        }
        Poll {
            completed,
            soonest_due,
        }
    }
}
