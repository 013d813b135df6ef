//! A purchase as a dtm message (`[coordinator] kind = "dtm"`), and the branch dtm calls back.
//! A loser is told by a read-only look at Redis (sold out, duplicate, healing): no call to dtm.
//! A possible winner: prepare at dtm, `reserve.lua` (refused if dtm's back-check failed the
//! message meanwhile), submit; the buyer is told `reserved`, and dtm calls the branch, which
//! writes the order (group commit, barrier row) and completes in Redis. A submit that fails
//! after the reservation changes nothing for the buyer: dtm's back-check finds the reservation
//! and submits the message itself. Recovery is dtm's: the poller leaves these transactions alone.

use crate::{
    branches::BranchOutcome,
    crash,
    dtm::{Dtm, MessageGid},
    error::Result,
    gid::Gid,
    reservations::Reservation,
};

use super::{Purchase, Purchases};

impl Purchases {
    pub(super) async fn reserve_with_dtm(
        &self,
        dtm: &Dtm,
        gid: Gid,
        expire_at_ms: i64,
    ) -> Result<Purchase> {
        if let Some(loser) = self.redis.loser(&gid).await.inspect_err(|_| {
            self.metrics.reservation("error");
        })? {
            return self.loser(gid, loser);
        }
        let message = MessageGid::new(gid);
        let prepared = dtm.prepare(&message).await;
        self.count("prepare", &prepared);
        prepared.inspect_err(|_| self.metrics.reservation("error"))?;
        crash::point(crash::Point::AfterPrepare);
        let reservation = match self.redis.reserve_message(&message, expire_at_ms).await {
            Ok(r) => r,
            Err(e) => {
                // Whether the script ran is unknown: dtm's back-check tells, not an abort.
                self.metrics.reservation("error");
                return Err(e);
            }
        };
        let MessageGid { gid, .. } = &message;
        let Reservation::Reserved { left, fence } = reservation else {
            // No unit was taken: the message is failed at once instead of back-checked later.
            let aborted = dtm.abort(&message).await;
            self.count("abort", &aborted);
            if let Err(error) = aborted {
                tracing::warn!(%message, %error, "abort failed, left to dtm's back-check");
            }
            return self.loser(message.gid, reservation);
        };
        if let Some(loss) = self.fences.observe(gid.sale, fence) {
            self.healer.notice(gid.sale, loss);
        }
        self.metrics.reservation("reserved");
        tracing::debug!(%gid, %message, left, "reserved");
        crash::point(crash::Point::AfterReserve);
        let submitted = dtm.submit(&message).await;
        self.count("submit", &submitted);
        if let Err(error) = submitted {
            tracing::warn!(%gid, %message, %error, "submit failed, left to dtm's back-check");
        }
        Ok(Purchase::Reserved {
            gid: message.gid,
            order_id: None,
            left,
        })
    }

    fn count(&self, call: &'static str, result: &Result<()>) {
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.metrics.dtm_call(call, outcome);
    }

    /// The branch of a dtm message, as dtm calls it (again after any answer it did not get):
    /// the order written (its barrier row makes a repeat a read), then completed in Redis.
    /// A repeat is this message's branch run again, so its unit is the order's, as a recovery
    /// re-run's is (`complete.lua`'s "fresh" path; the heal's look at the books catches a
    /// repeat of an order Redis had forgotten).
    pub async fn dtm_branch(&self, gid: &Gid) -> Result<BranchOutcome> {
        let outcome = self.branch(gid).await?;
        self.complete(
            gid,
            BranchOutcome {
                fresh: true,
                ..outcome
            },
        )
        .await?;
        Ok(outcome)
    }
}
