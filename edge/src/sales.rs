//! What the edge knows of sales: each sale's public facts fetched from an origin
//! (`GET /v1/sales/{id}`) and kept for a second in a moka cache, so that polling browsers and the
//! sale page cost the origin about one request per sale and second on each edge (concurrent
//! requests for facts not held wait for one lookup); and the status a browser sees. The
//! origin's answer is read once, as the wire's `SaleFacts`.

use std::{sync::Arc, time::Duration};

use flash_wire::SaleFacts;
/// Where a sale stands: the wire's one `SaleState`, the origin's and the edge's.
pub use flash_wire::SaleState as State;
use http::{Method, StatusCode};
use moka::future::Cache;
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::{
    error::{Error, Result},
    forward::Origins,
    soldout::SoldOut,
};

/// How long the edge keeps a sale's facts: the staleness of a status, and the period of a
/// polled sale's lookups (one per sale and period on each edge).
pub const FACTS_TTL: Duration = Duration::from_secs(1);

/// Sales kept at most, unknown ids included: past it the least used go first (moka's TinyLFU,
/// so a flood of unknown ids cannot push out a sale being polled). Eviction runs in the
/// background of later calls, so the count may pass it briefly.
const MAX_ENTRIES: u64 = 10_000;

/// What the edge keeps of a sale's public facts (`SaleFacts`, as the origin gives them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleInfo {
    pub id: i64,
    pub name: String,
    pub stock: i64,
    /// Redis's count; `None` when the origin could not read it (Redis away): the status then
    /// goes without a count, on the time and the sold-out flag alone.
    pub remaining: Option<i64>,
    pub starts_at: OffsetDateTime,
    pub ends_at: Option<OffsetDateTime>,
    pub hold_seconds: i64,
    pub price_cents: i64,
    pub currency: String,
}

impl From<SaleFacts> for SaleInfo {
    fn from(facts: SaleFacts) -> Self {
        Self {
            id: facts.id,
            name: facts.name,
            stock: facts.stock,
            remaining: facts.remaining,
            starts_at: facts.starts_at,
            ends_at: facts.ends_at,
            hold_seconds: facts.hold_seconds,
            price_cents: facts.price_cents,
            currency: facts.currency,
        }
    }
}

/// The body of `GET /api/sales/{id}/status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub state: State,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ends_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub server_time: OffsetDateTime,
    /// Absent while Redis is away (the origin could not count).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_hint: Option<i64>,
}

impl SaleInfo {
    /// The status at `now`; `sold_out` is the edge's in-memory flag.
    pub fn status(&self, now: OffsetDateTime, sold_out: bool) -> Status {
        let state = if self.ends_at.is_some_and(|end| now >= end) {
            State::Ended
        } else if sold_out || self.remaining.is_some_and(|left| left <= 0) {
            State::SoldOut
        } else if now < self.starts_at {
            State::Upcoming
        } else {
            State::Live
        };
        Status {
            state,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            server_time: now,
            remaining_hint: if state == State::SoldOut {
                Some(0)
            } else {
                self.remaining.map(|left| left.max(0))
            },
        }
    }
}

/// Why a lookup got no facts, shared by the requests that waited on it.
#[derive(Debug)]
enum LookupFailure {
    /// No origin answered, or not 200 / 404.
    Unavailable(String),
    /// An answer that is not a sale's facts.
    BadAnswer(String),
}

impl From<&LookupFailure> for Error {
    fn from(failure: &LookupFailure) -> Self {
        match failure {
            LookupFailure::Unavailable(message) => Error::OriginUnavailable(message.clone()),
            LookupFailure::BadAnswer(message) => {
                Error::Internal(format!("origin sale answer: {message}"))
            }
        }
    }
}

/// Sale facts by id, each kept for `ttl` (unknown ids too: `None`). One request per sale asks an
/// origin when they are not held (`try_get_with`); the requests arriving meanwhile wait for its
/// answer instead of each asking (a crowd would otherwise send the origin a burst every `ttl`),
/// and share its failure, which is not kept: the next request asks again.
pub struct SaleDirectory {
    facts: Cache<i64, Option<Arc<SaleInfo>>>,
    lookups: Counter,
    /// Re-opened when a fetch finds units left in a sale flagged before it (a missed event).
    flags: Option<SoldOut>,
}

impl SaleDirectory {
    pub fn new(ttl: Duration) -> Self {
        Self {
            facts: Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(ttl)
                .build(),
            lookups: Counter::default(),
            flags: None,
        }
    }

    /// Lets each fetch that finds units left re-open the sale in `flags` if it was flagged sold
    /// out before the fetch was sent.
    pub fn reopening(mut self, flags: SoldOut) -> Self {
        self.flags = Some(flags);
        self
    }

    /// Counts every lookup sent to an origin in `counter`.
    pub fn counting_lookups_in(mut self, counter: Counter) -> Self {
        self.lookups = counter;
        self
    }

    /// The sale's facts, `Err(UnknownSale)` when no origin knows it.
    pub async fn get(
        &self,
        origins: &Origins,
        sale: i64,
        request_id: &str,
    ) -> Result<Arc<SaleInfo>> {
        let known = self
            .facts
            .try_get_with(sale, self.fetch(origins, sale, request_id))
            .await
            .map_err(|failure| Error::from(&*failure))?;
        known.ok_or(Error::UnknownSale(sale))
    }

    /// Asks an origin for the sale's facts (`None`: it does not know the sale).
    async fn fetch(
        &self,
        origins: &Origins,
        sale: i64,
        request_id: &str,
    ) -> Result<Option<Arc<SaleInfo>>, LookupFailure> {
        self.lookups.inc();
        let asked = Instant::now();
        let answer = origins
            .send(Method::GET, &format!("/v1/sales/{sale}"), None, request_id)
            .await
            .map_err(|e| LookupFailure::Unavailable(e.to_string()))?;
        match answer.status {
            StatusCode::OK => {
                let info = SaleInfo::from(
                    serde_json::from_slice::<SaleFacts>(&answer.body)
                        .map_err(|e| LookupFailure::BadAnswer(e.to_string()))?,
                );
                let units_left = info.remaining.is_some_and(|n| n > 0);
                if let Some(flags) = self.flags.as_ref().filter(|_| units_left) {
                    if flags.reopen_if_marked_before(sale, asked) {
                        tracing::info!(sale, "re-opened: units left in Redis after the sold-out mark (a restocked event was missed)");
                    }
                }
                Ok(Some(Arc::new(info)))
            }
            StatusCode::NOT_FOUND => Ok(None),
            other => Err(LookupFailure::Unavailable(format!(
                "sale lookup answered {other}"
            ))),
        }
    }
}

/// `12900` cents of `EUR` → `129.00 EUR`.
pub fn format_price(cents: i64, currency: &str) -> String {
    format!("{}.{:02} {currency}", cents / 100, (cents % 100).abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-22 12:00 UTC);

    fn sale(remaining: impl Into<Option<i64>>, ends_at: Option<OffsetDateTime>) -> SaleInfo {
        SaleInfo {
            id: 1,
            name: "Sneakers".into(),
            stock: 10,
            remaining: remaining.into(),
            starts_at: NOW,
            ends_at,
            hold_seconds: 600,
            price_cents: 12900,
            currency: "EUR".into(),
        }
    }

    #[test]
    fn status_follows_time_stock_and_the_flag() {
        let check = |info: SaleInfo, at: OffsetDateTime, flag: bool, expected: State| {
            assert_eq!(info.status(at, flag).state, expected);
        };
        let later = NOW + time::Duration::hours(1);
        check(
            sale(5, None),
            NOW - time::Duration::seconds(1),
            false,
            State::Upcoming,
        );
        check(sale(5, None), NOW, false, State::Live);
        check(sale(5, None), NOW, true, State::SoldOut);
        check(sale(0, None), NOW, false, State::SoldOut);
        check(sale(5, Some(later)), later, false, State::Ended);
        assert_eq!(sale(5, None).status(NOW, true).remaining_hint, Some(0));
    }

    #[test]
    fn without_redis_s_count_the_status_goes_on_the_time_and_the_flag() {
        let check = |at: OffsetDateTime, flag: bool, expected: State, hint: Option<i64>| {
            let status = sale(None, None).status(at, flag);
            assert_eq!((status.state, status.remaining_hint), (expected, hint));
        };
        check(NOW, false, State::Live, None);
        check(
            NOW - time::Duration::seconds(1),
            false,
            State::Upcoming,
            None,
        );
        check(NOW, true, State::SoldOut, Some(0));
        let json = serde_json::to_value(sale(None, None).status(NOW, false)).ok();
        assert!(
            json.as_ref()
                .is_some_and(|j| j.get("remaining_hint").is_none()),
            "{json:?}"
        );
        let parsed: Result<SaleFacts, _> = serde_json::from_str(
            r#"{"id": 1, "name": "x", "stock": 3, "remaining": null, "sold": 1,
                "state": "live", "starts_at": "2026-11-22T12:00:00Z", "ends_at": null,
                "hold_seconds": 600, "price_cents": 100, "currency": "EUR",
                "server_time": "2026-11-22T12:00:01Z"}"#,
        );
        assert_eq!(parsed.ok().map(|s| s.remaining), Some(None));
    }

    #[test]
    fn prices_read_as_money() {
        assert_eq!(format_price(12900, "EUR"), "129.00 EUR");
        assert_eq!(format_price(5, "USD"), "0.05 USD");
    }
}
