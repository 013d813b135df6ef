//! The recovery poller, run by every origin. Every poll reads the index of active sales
//! (`activity.rs`: one script call, whatever the number of sales) and claims the due transactions
//! of those sales only, with those this origin marked itself (`claim.lua` leases them, with a
//! lease that doubles per attempt, so two origins never work one transaction at once), runs
//! their branch again (idempotent) and completes them. A sale with transactions in flight is
//! marked again, so it stays in the index while it has work; an idle sale costs nothing.
//!
//! A full pass claims every sale of the catalog instead, once: the first poll after start (an
//! origin that died left orphans whose sale may have aged out of the index) and the first poll
//! that reads the index after a failure to reach Redis, or that finds the index new (its epoch
//! changed: it was lost), since the index may have lost marks then; its books check follows,
//! a slice per poll. The poller also sweeps expired holds, finishes unit returns a crash left
//! open, keeps the sale catalog fresh from PostgreSQL and, as often, looks at the active sales'
//! books to heal what Redis lost.

use std::{collections::BTreeSet, time::Duration};

use tokio::{sync::watch, time::Instant};

use crate::{
    activity::{self, Activity},
    config::RecoveryConfig,
    error::Error,
    gid::Gid,
    holds::Holds,
    metrics::Metrics,
    purchase::Purchases,
    sales::Catalog,
};

/// Polls between two refreshes of the sale catalog from PostgreSQL and two looks at the books.
const CATALOG_REFRESH_POLLS: u64 = 25;

/// A claim or an index read that keeps failing (Redis away) is logged at most this often.
const WARNING_EVERY: Duration = Duration::from_secs(10);

/// Sales whose books one poll looks at. A full pass's books (every known sale's: a stock
/// snapshot and a PostgreSQL read each) are read over several polls, so that the due transactions
/// of the active sales are not held back meanwhile.
const BOOKS_PER_POLL: usize = 500;

/// Shortest wait between two polls, when transactions are due already (more than one claim
/// takes, or claimed by another origin whose lease ends at once).
const MIN_WAIT: Duration = Duration::from_millis(5);

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poll {
    /// Transactions completed.
    pub completed: usize,
    /// How long until the earliest transaction left in any claimed sale's due set falls due.
    pub soonest_due: Option<Duration>,
    /// The sales claimed: the active ones, and every known one on a full pass.
    pub sales: Vec<i64>,
    /// Whether this poll was a full pass, every sale claimed without a failure (their books are
    /// read over the next polls).
    pub full_pass: bool,
}

/// What the claims of one poll add up to.
#[derive(Default)]
struct Tally {
    completed: usize,
    in_flight: i64,
    all_read: bool,
    soonest_due: Option<Duration>,
}

/// What the poller works with.
pub struct Parts {
    pub purchases: Purchases,
    pub holds: Holds,
    pub catalog: Catalog,
    pub metrics: Metrics,
    pub config: RecoveryConfig,
    pub activity: Activity,
}

pub struct Poller {
    parts: Parts,
    /// A full pass is owed: at start, after a failure, on a new index.
    full_pass_due: bool,
    /// The index's epoch at the last read.
    epoch: Option<String>,
    /// When a failed claim, and a failed index read, were last logged: Redis away fails every one.
    last_claim_warning: Option<Instant>,
    last_index_warning: Option<Instant>,
    /// Sales whose books are still to be looked at, [`BOOKS_PER_POLL`] a poll.
    books_left: Vec<i64>,
    /// The full pass whose books those are: when it started, and how many sales it claimed.
    pass_under_way: Option<(Instant, usize)>,
}

impl Poller {
    pub fn new(parts: Parts) -> Self {
        Self {
            parts,
            full_pass_due: true,
            epoch: None,
            last_claim_warning: None,
            last_index_warning: None,
            books_left: Vec::new(),
            pass_under_way: None,
        }
    }

    /// Runs until `shutdown` turns true. Polls at once, then every `poll_interval` (`poll_interval_ms`), or sooner
    /// when a transaction falls due before that (so an orphan is taken over when its
    /// `recovery.timeout` is up, not up to a poll later).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let interval = self.parts.config.poll_interval;
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
            let books_due = polls % CATALOG_REFRESH_POLLS == 0;
            if books_due {
                self.refresh_catalog().await;
            }
            polls += 1;
            let started = Instant::now();
            let poll = self.poll_once().await;
            if poll.full_pass {
                self.pass_under_way = Some((started, poll.sales.len()));
                self.books_left = poll.sales;
            } else if books_due && self.books_left.is_empty() {
                self.books_left = poll.sales;
            }
            self.check_books().await;
            self.sweep().await;
            wait = poll
                .soonest_due
                .map_or(interval, |due| due.clamp(MIN_WAIT, interval));
        }
        tracing::info!("recovery poller stopped");
    }

    async fn refresh_catalog(&self) {
        match self.parts.purchases.db().recent_sales().await {
            Ok(sales) => {
                for sale in sales {
                    self.parts.catalog.insert(sale);
                }
            }
            Err(error) => tracing::warn!(%error, "sale catalog refresh failed"),
        }
    }

    /// Whether a warning last logged at `last` is due again; records it when it is.
    fn warning_due(last: &mut Option<Instant>) -> bool {
        let due = last.is_none_or(|at| at.elapsed() >= WARNING_EVERY);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    fn claim_failed(&mut self, sale: i64, error: &Error) {
        self.parts.metrics.recovery("claim_error");
        if Self::warning_due(&mut self.last_claim_warning) {
            tracing::warn!(sale, %error, every_s = WARNING_EVERY.as_secs(), "claiming due transactions failed (logged at most this often)");
        }
    }

    /// Looks at the books of the next [`BOOKS_PER_POLL`] sales queued and heals those that drift
    /// at a quiet moment (see `Healer::check_books`); a full pass is done once its last sale's
    /// books are read.
    async fn check_books(&mut self) {
        let next = self.books_left.len().min(BOOKS_PER_POLL);
        let sales: Vec<i64> = self.books_left.drain(..next).collect();
        for id in sales {
            let Some(sale) = self.parts.catalog.get(id) else {
                continue;
            };
            if let Err(error) = self
                .parts
                .purchases
                .healer()
                .check_books(id, i64::from(sale.total))
                .await
            {
                tracing::warn!(sale = id, %error, "checking the books failed");
            }
        }
        if self.books_left.is_empty() {
            if let Some((started, sales)) = self.pass_under_way.take() {
                self.parts.metrics.full_pass();
                tracing::info!(
                    sales,
                    took_ms = started.elapsed().as_millis(),
                    "full pass over every known sale done (claims and books)"
                );
            }
        }
    }

    /// Cancels expired holds (their units go back) and finishes returns a crash left open.
    pub async fn sweep(&self) {
        match self.parts.holds.sweep_once().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(cancelled = n, "expired holds cancelled"),
            Err(error) => tracing::warn!(%error, "hold sweep failed"),
        }
        let older_than = self.parts.config.timeout;
        if let Err(error) = self.parts.holds.finish_returns(older_than).await {
            tracing::warn!(%error, "finishing open returns failed");
        }
    }

    /// The active sales (this origin's own marks, and the index's when it answers) and whether
    /// the index answered. A new epoch of the index owes a full pass.
    async fn active_sales(&mut self) -> (BTreeSet<i64>, bool) {
        let mut sales: BTreeSet<i64> = self.parts.activity.recent().into_iter().collect();
        self.parts.metrics.index_read();
        match self
            .parts
            .purchases
            .redis()
            .active_sales(activity::HORIZON)
            .await
        {
            Ok(index) => {
                if self.epoch.as_deref() != Some(index.epoch.as_str()) {
                    if let Some(old) = self.epoch.replace(index.epoch.clone()) {
                        tracing::warn!(old_epoch = %old, epoch = %index.epoch, "the index of active sales is new (Redis lost it): going over every sale once");
                    }
                    self.full_pass_due = true;
                }
                sales.extend(index.sales);
                (sales, true)
            }
            Err(error) => {
                // The index's node is away: it may come back without some marks.
                self.full_pass_due = true;
                self.parts.metrics.recovery("index_error");
                if Self::warning_due(&mut self.last_index_warning) {
                    tracing::warn!(%error, every_s = WARNING_EVERY.as_secs(), "reading the index of active sales failed: claiming this origin's own sales only (logged at most this often)");
                }
                (sales, false)
            }
        }
    }

    /// One poll: the active sales, or every known sale when a full pass is owed and the index
    /// answers. A full pass stops at its first failed claim (a node away would fail the rest
    /// too) and is owed again.
    pub async fn poll_once(&mut self) -> Poll {
        let (active, index_read) = self.active_sales().await;
        if self.parts.activity.take_failure() {
            self.full_pass_due = true;
        }
        let full = index_read && self.full_pass_due;
        let rest: Vec<i64> = if full {
            let mut ids = self.parts.catalog.ids();
            ids.retain(|id| !active.contains(id));
            ids.sort_unstable();
            ids
        } else {
            Vec::new()
        };
        if index_read {
            self.parts.metrics.set_active_sales(active.len());
        }
        let mut tally = Tally {
            all_read: true,
            ..Tally::default()
        };
        let mut sales: Vec<i64> = active.into_iter().collect();
        for &sale in &sales {
            self.claim(sale, &mut tally).await;
        }
        let mut passed = full;
        for &sale in &rest {
            if !self.claim(sale, &mut tally).await {
                passed = false;
                break;
            }
            sales.push(sale);
        }
        let full_pass = passed && tally.all_read;
        if full_pass {
            self.full_pass_due = false;
        } else if !tally.all_read {
            // A sale's node was away: it may come back without some writes.
            self.full_pass_due = true;
        }
        // A sale whose due set could not be read is not "nothing in flight": the gauge keeps its
        // last full reading.
        if index_read && tally.all_read {
            self.parts.metrics.set_in_flight(tally.in_flight);
        }
        Poll {
            completed: tally.completed,
            soonest_due: tally.soonest_due,
            sales,
            full_pass,
        }
    }

    /// Claims and finishes the due transactions of `sale`; `false` when the claim failed.
    async fn claim(&mut self, sale: i64, tally: &mut Tally) -> bool {
        self.parts.metrics.claim();
        let claim = match self
            .parts
            .purchases
            .redis()
            .claim_due(
                sale,
                self.parts.config.lease,
                self.parts.config.max_lease,
                self.parts.config.batch,
            )
            .await
        {
            Ok(claim) => claim,
            Err(error) => {
                tally.all_read = false;
                self.claim_failed(sale, &error);
                return false;
            }
        };
        tally.in_flight += claim.in_flight;
        if let Some(due) = claim.next_due_in {
            tally.soonest_due = Some(tally.soonest_due.map_or(due, |s| s.min(due)));
        }
        if claim.in_flight > 0 {
            // Work left: the sale stays in the index (at most one mark per MARK_EVERY).
            self.parts.activity.mark(sale).await;
        }
        for (text, attempt) in claim.claimed {
            let gid = match text.parse::<Gid>() {
                Ok(gid) if gid.sale == sale => gid,
                Ok(_) => {
                    tracing::error!(gid = %text, sale, "gid of another sale in the due set");
                    continue;
                }
                Err(error) => {
                    tracing::error!(gid = %text, %error, "malformed gid in due set");
                    continue;
                }
            };
            match self.parts.purchases.finish(&gid).await {
                Ok(outcome) => {
                    tally.completed += 1;
                    self.parts.metrics.recovery("completed");
                    tracing::info!(%gid, attempt, order_id = outcome.order_id,
                        rejected = outcome.rejected, "transaction recovered");
                }
                Err(error) => {
                    self.parts.metrics.recovery("error");
                    tracing::warn!(%gid, attempt, %error, "recovery attempt failed, backing off");
                    // The rest of the batch keeps its lease and comes back after it.
                    break;
                }
            }
        }
        true
    }
}
