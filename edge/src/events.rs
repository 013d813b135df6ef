//! The sale event stream: a Redis pub/sub subscription to every sale's `{s:<sale>}:events`
//! channel, feeding the sold-out flags (`sold_out` sets, `restocked` clears). It reconnects with
//! backoff (doubling while Redis refuses, back to the first step after a session that was
//! subscribed); on every (re)connection all flags are cleared, since events may have been missed.
//!
//! In a cluster the scripts' classic `PUBLISH` reaches every node (primaries and replicas) over
//! the cluster bus, so one subscription to any node hears every sale, wherever its slot is: the
//! stream uses the seed nodes in turn from a random one, moving to the next when a session fails.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;

use crate::{metrics::Metrics, soldout::SoldOut};

/// The pattern covering every sale's channel.
pub const PATTERN: &str = "{s:*}:events";

/// The sale of a channel name `{s:<sale>}:events`.
pub fn sale_of_channel(channel: &str) -> Option<i64> {
    channel
        .strip_prefix("{s:")?
        .strip_suffix("}:events")?
        .parse()
        .ok()
}

/// Runs the subscription until `shutdown` turns true. `subscribed` turns true each time the
/// subscription is in place (tests wait on it).
pub async fn run(
    nodes: Vec<String>,
    flags: SoldOut,
    metrics: Metrics,
    subscribed: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::default();
    // Each edge starts at a node of its own, so that the edges' subscriptions spread over the
    // cluster rather than all landing on the first seed.
    let first = rand::random_range(0..nodes.len().max(1));
    for node in nodes.iter().cycle().skip(first) {
        let session = async {
            let client = redis::Client::open(node.as_str())?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(PATTERN).await?;
            flags.clear_all();
            let _ = subscribed.send(true);
            tracing::info!(pattern = PATTERN, %node, "subscribed to sale events");
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                let channel = msg.get_channel_name().to_string();
                let payload: String = msg.get_payload().unwrap_or_default();
                let Some(sale) = sale_of_channel(&channel) else {
                    continue;
                };
                match payload.as_str() {
                    "sold_out" => {
                        if flags.mark(sale) {
                            tracing::info!(sale, "sold out (event)");
                        }
                    }
                    "restocked" => {
                        if flags.clear(sale) {
                            tracing::info!(sale, "restocked (event)");
                        }
                    }
                    other => tracing::debug!(sale, event = other, "sale event ignored"),
                }
                metrics.event(&payload);
            }
            Ok::<(), redis::RedisError>(())
        };
        let wait = tokio::select! {
            result = session => {
                let was_up = subscribed.send_replace(false);
                let wait = backoff.after(was_up);
                match result {
                    Ok(()) => tracing::warn!(%node, ?wait, "sale event stream ended, reconnecting"),
                    Err(error) => tracing::warn!(%node, %error, ?wait, "sale event stream failed, reconnecting"),
                }
                wait
            }
            _ = shutdown.changed() => return,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The wait before the next connection attempt.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    /// The wait after a session: the first step if it was subscribed (a good session that
    /// ended), else the next step, each twice the one before, up to `MAX`.
    fn after(&mut self, was_up: bool) -> Duration {
        if was_up {
            self.next = Self::FIRST;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        wait
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_give_their_sale() {
        let check = |channel: &str, expected: Option<i64>| {
            assert_eq!(sale_of_channel(channel), expected, "{channel}");
        };
        check("{s:12}:events", Some(12));
        check("{s:x}:events", None);
        check("{u:12}:events", None);
        check("{s:12}:stock", None);
    }

    #[test]
    fn backoff_doubles_while_down_and_starts_over_after_a_good_session() {
        let mut backoff = Backoff::default();
        let waits: Vec<u128> = [false, false, false, false, false, false, false, true, false]
            .into_iter()
            .map(|was_up| backoff.after(was_up).as_millis())
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 100, 200]);
    }
}
