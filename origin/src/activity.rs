//! Marks of active sales: the index the recovery poller reads instead of going over every sale.
//!
//! Before an origin sends a sale a reservation (`purchase.rs`) or gives one of its units back
//! (`holds.rs`), the sale must be in `{recovery}:active` (`lua/mark_active.lua`, scored by Redis
//! TIME): the sale's own scripts cannot write the index (another hash slot in a cluster), so the
//! mark comes first, and a transaction in Redis always has its sale in the index. A sale is
//! marked at most once per [`MARK_EVERY`] by one origin, so a crowd costs one call per sale every
//! few seconds, none per attempt.
//!
//! Who waits for a mark: the first request of a sale not marked by this origin within
//! [`INDEXED_FOR`] sends it and waits (the sale's other requests wait for that one mark, never
//! send a second). Past [`MARK_EVERY`] but within [`INDEXED_FOR`] the sale is still in the index
//! from its last mark, which lasts [`HORIZON`]: the next mark is sent in the background and
//! nobody waits, so a slow or unreachable index node never holds a crowd back.
//!
//! A mark that fails (the index's node away) does not stop the purchase: it is counted, logged at
//! most every [`WARNING_EVERY`], marking pauses for [`FAILURE_BACKOFF`], and the poller is told
//! ([`Activity::take_failure`]) so that it goes over every sale once the index answers again. So
//! is a mark that finds its sale gone from the index although this origin marked it within
//! [`INDEXED_FOR`]: the index lost writes with no error seen (an older copy restored, a lagging
//! replica promoted). Each origin also keeps the sales it marked (or wanted to) within
//! [`HORIZON`]: the poller claims them besides the index's, so this origin's own work does not
//! depend on the index at all.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::Duration,
};

use tokio::time::Instant;

use crate::{metrics::Metrics, reservations::Reservations};

/// One origin marks a sale at most this often. A transaction reserved now relies on a mark at
/// most this old, so it has its sale in the index for `HORIZON - MARK_EVERY` at least.
pub const MARK_EVERY: Duration = Duration::from_secs(5);

/// A sale not marked for this long leaves the index. Every poller claims the sales of the index
/// and marks again those with transactions in flight, so a sale with work never ages out while
/// one origin polls; the margin over [`MARK_EVERY`] covers every origin being away (or Redis
/// timing out) for most of a minute. Longer than that, the full pass of the origin that starts
/// again, or of the poll after the failure, finds what is left.
pub const HORIZON: Duration = Duration::from_secs(60);

/// A mark sent less than this long ago is still in the index, unless the index lost it: half
/// the horizon, whatever the difference between this origin's clock and Redis's. Within it a
/// new mark is sent in the background; a mark that finds its sale gone reveals a loss.
pub const INDEXED_FOR: Duration = Duration::from_secs(HORIZON.as_secs() / 2);

/// After a failed mark, none is sent for this long: reservations go on without one.
pub const FAILURE_BACKOFF: Duration = Duration::from_secs(1);

/// A mark that keeps failing is logged at most this often.
pub const WARNING_EVERY: Duration = Duration::from_secs(10);

/// The marks of one origin, cloned freely.
#[derive(Clone)]
pub struct Activity {
    inner: Arc<Inner>,
}

struct Inner {
    redis: Reservations,
    metrics: Metrics,
    marks: Mutex<Marks>,
    /// A mark failed since the poller last asked: the index may lack a sale.
    failed: AtomicBool,
}

impl Activity {
    pub fn new(redis: Reservations, metrics: Metrics) -> Self {
        Self {
            inner: Arc::new(Inner {
                redis,
                metrics,
                marks: Mutex::default(),
                failed: AtomicBool::new(false),
            }),
        }
    }

    fn marks(&self) -> MutexGuard<'_, Marks> {
        // The map holds no invariant a panicking holder could break halfway.
        self.inner
            .marks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sees that `sale` is in the index before its reservation or return: marks it, unless this
    /// origin did within [`MARK_EVERY`] or marking is backing off after a failure; waits only
    /// when no mark of this origin is surely still there. Never fails: a failure is counted,
    /// logged and told to the poller.
    pub async fn mark(&self, sale: i64) {
        // The guard is dropped here, before any await.
        let next = self.marks().want(sale, Instant::now());
        match next {
            Next::Go => {}
            Next::Refresh(sending) => {
                // At most one mark in flight per sale; none when one is already.
                if let Ok(guard) = sending.try_lock_owned() {
                    let activity = self.clone();
                    tokio::spawn(async move {
                        activity.send_if_due(sale).await;
                        drop(guard);
                    });
                }
            }
            Next::Wait(sending) => {
                // The sale's other requests wait for this one mark, then find the sale fresh.
                let _sending = sending.lock().await;
                self.send_if_due(sale).await;
            }
        }
    }

    /// Sends a mark of `sale` unless another one made it fresh meanwhile; under its lock.
    async fn send_if_due(&self, sale: i64) {
        let sent_at = Instant::now();
        if !self.marks().due(sale, sent_at) {
            return;
        }
        match self.inner.redis.mark_active(sale).await {
            Ok(added) => {
                let lost = self.marks().marked(sale, sent_at, added);
                self.inner
                    .metrics
                    .activity_mark(if lost { "lost" } else { "marked" });
                if lost {
                    // Other sales' marks may be gone too.
                    self.inner.failed.store(true, Ordering::Relaxed);
                    tracing::warn!(
                        sale,
                        "the index of active sales had lost this sale's recent mark: the poller goes over every sale once"
                    );
                } else if added {
                    tracing::debug!(sale, "sale marked active");
                }
            }
            Err(error) => {
                self.inner.metrics.activity_mark("error");
                self.inner.failed.store(true, Ordering::Relaxed);
                if self.marks().failed(Instant::now()) {
                    tracing::warn!(
                        sale, %error,
                        backoff_ms = FAILURE_BACKOFF.as_millis(),
                        every_s = WARNING_EVERY.as_secs(),
                        "marking a sale active failed: the purchase goes on, and the poller goes over every sale once Redis answers (logged at most this often)"
                    );
                }
            }
        }
    }

    /// The sales this origin marked, or wanted to, within [`HORIZON`]; forgets older ones.
    pub fn recent(&self) -> Vec<i64> {
        self.marks().recent(Instant::now())
    }

    /// Whether a mark failed since the last call.
    pub fn take_failure(&self) -> bool {
        self.inner.failed.swap(false, Ordering::Relaxed)
    }
}

/// The in-memory side of the marks: when each sale was last marked and last wanted, and the
/// backoff after a failure. Times are passed in, so it is tested without a clock.
#[derive(Default)]
struct Marks {
    sales: HashMap<i64, SaleMark>,
    backoff_until: Option<Instant>,
    last_warning: Option<Instant>,
}

/// What a request does about its sale's mark.
#[derive(Debug)]
enum Next {
    /// Nothing: marked within [`MARK_EVERY`], or backing off.
    Go,
    /// Send a mark in the background and go on: the last one is still in the index.
    Refresh(Arc<tokio::sync::Mutex<()>>),
    /// Send a mark (or wait for the one in flight) under this lock before going on.
    Wait(Arc<tokio::sync::Mutex<()>>),
}

struct SaleMark {
    /// When the last mark that succeeded was sent (its score in Redis is no older).
    marked_at: Option<Instant>,
    /// When a reservation, a return or the poller last wanted the sale marked.
    wanted_at: Instant,
    /// Held while the sale's mark is in flight.
    sending: Arc<tokio::sync::Mutex<()>>,
}

impl Marks {
    /// Records that `sale` is wanted now, and what the caller does about its mark.
    fn want(&mut self, sale: i64, now: Instant) -> Next {
        let mark = self.sales.entry(sale).or_insert_with(|| SaleMark {
            marked_at: None,
            wanted_at: now,
            sending: Arc::default(),
        });
        mark.wanted_at = now;
        let (sending, marked_at) = (mark.sending.clone(), mark.marked_at);
        if !self.due(sale, now) {
            Next::Go
        } else if marked_at.is_some_and(|at| now.saturating_duration_since(at) < INDEXED_FOR) {
            Next::Refresh(sending)
        } else {
            Next::Wait(sending)
        }
    }

    /// Whether a mark of `sale` is to be sent now: none within [`MARK_EVERY`], no backoff.
    fn due(&self, sale: i64, now: Instant) -> bool {
        let fresh = self
            .sales
            .get(&sale)
            .and_then(|mark| mark.marked_at)
            .is_some_and(|at| now.saturating_duration_since(at) < MARK_EVERY);
        let backing_off = self.backoff_until.is_some_and(|until| now < until);
        !fresh && !backing_off
    }

    /// Records a mark sent at `sent_at` that Redis took (`added`: the sale was not in the index);
    /// whether the index lost an earlier mark: it did not have the sale although this origin
    /// had marked it well within the horizon, so no reader could have dropped it.
    fn marked(&mut self, sale: i64, sent_at: Instant, added: bool) -> bool {
        let Some(mark) = self.sales.get_mut(&sale) else {
            return false;
        };
        let lost = added
            && mark
                .marked_at
                .is_some_and(|at| sent_at.saturating_duration_since(at) < INDEXED_FOR);
        mark.marked_at = Some(sent_at);
        lost
    }

    /// Starts the backoff; whether to log this failure (at most every [`WARNING_EVERY`]).
    fn failed(&mut self, now: Instant) -> bool {
        self.backoff_until = Some(now + FAILURE_BACKOFF);
        let log = self
            .last_warning
            .is_none_or(|at| now.saturating_duration_since(at) >= WARNING_EVERY);
        if log {
            self.last_warning = Some(now);
        }
        log
    }

    fn recent(&mut self, now: Instant) -> Vec<i64> {
        self.sales
            .retain(|_, mark| now.saturating_duration_since(mark.wanted_at) < HORIZON);
        let mut sales: Vec<i64> = self.sales.keys().copied().collect();
        sales.sort_unstable();
        sales
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn kind(next: &Next) -> &'static str {
        match next {
            Next::Go => "go",
            Next::Refresh(_) => "refresh",
            Next::Wait(_) => "wait",
        }
    }

    #[test]
    fn a_sale_is_marked_once_per_period_and_waited_for_only_when_not_indexed() {
        let t0 = Instant::now();
        let mut marks = Marks::default();
        let check = |marks: &mut Marks, at: Duration, sale: i64, expected: &str| {
            let next = marks.want(sale, t0 + at);
            assert_eq!(kind(&next), expected, "sale {sale} at {at:?}");
        };
        check(&mut marks, Duration::ZERO, 1, "wait");
        // Not marked yet (in flight): the next request waits for the same lock.
        check(&mut marks, Duration::ZERO, 1, "wait");
        assert!(!marks.marked(1, t0, true), "a first mark is new");
        check(&mut marks, S, 1, "go");
        check(&mut marks, MARK_EVERY - Duration::from_millis(1), 1, "go");
        // Still in the index from its last mark: a new one goes out, nobody waits.
        check(&mut marks, MARK_EVERY, 1, "refresh");
        check(&mut marks, INDEXED_FOR - S, 1, "refresh");
        check(&mut marks, INDEXED_FOR, 1, "wait");
        check(&mut marks, MARK_EVERY, 2, "wait");
        // A failure: nothing is sent for a second, for any sale, then marking starts again.
        assert!(marks.failed(t0 + MARK_EVERY), "the first failure is logged");
        check(&mut marks, MARK_EVERY + S / 2, 2, "go");
        check(&mut marks, MARK_EVERY + S / 2, 1, "go");
        check(&mut marks, MARK_EVERY + FAILURE_BACKOFF, 2, "wait");
        check(&mut marks, MARK_EVERY + FAILURE_BACKOFF, 1, "refresh");
        assert!(
            !marks.failed(t0 + MARK_EVERY + S * 2),
            "logged at most every 10 s"
        );
        assert!(marks.failed(t0 + MARK_EVERY + WARNING_EVERY));
    }

    #[test]
    fn a_recent_mark_the_index_no_longer_has_was_lost() {
        let t0 = Instant::now();
        let mut marks = Marks::default();
        marks.want(1, t0);
        assert!(
            !marks.marked(1, t0, true),
            "new in the index: the first mark"
        );
        // (sent after the last mark, the sale new in the index?, lost?)
        let check = |marks: &mut Marks, after: Duration, added: bool, expected: bool| {
            let last = marks.sales[&1].marked_at.unwrap_or(t0);
            assert_eq!(
                marks.marked(1, last + after, added),
                expected,
                "{after:?} {added}"
            );
        };
        check(&mut marks, MARK_EVERY, false, false);
        check(&mut marks, MARK_EVERY, true, true);
        check(&mut marks, INDEXED_FOR - S, true, true);
        // Long enough for a reader to have dropped it: not a loss.
        check(&mut marks, INDEXED_FOR, true, false);
    }

    #[test]
    fn recent_sales_are_the_ones_wanted_within_the_horizon() {
        let t0 = Instant::now();
        let mut marks = Marks::default();
        marks.want(1, t0);
        marks.want(2, t0 + S * 10);
        // Wanted but never marked (Redis away): still this origin's work.
        marks.want(3, t0 + S * 20);
        assert!(!marks.marked(1, t0, true));
        assert_eq!(marks.recent(t0 + S * 30), vec![1, 2, 3]);
        assert_eq!(marks.recent(t0 + HORIZON), vec![2, 3]);
        // Wanted again (the poller found transactions in flight): kept.
        marks.want(2, t0 + HORIZON);
        assert_eq!(marks.recent(t0 + HORIZON + S * 20), vec![2]);
        assert!(marks.recent(t0 + HORIZON * 3).is_empty());
    }
}
