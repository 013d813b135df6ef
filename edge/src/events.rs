//! The sale event stream: a Redis pub/sub subscription to every sale's `{s:<sale>}:events`
//! channel, feeding the sold-out flags (`sold_out` sets, `restocked` clears). It reconnects with
//! backoff; on every (re)connection all flags are cleared, since events may have been missed.

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
    client: redis::Client,
    flags: SoldOut,
    metrics: Metrics,
    subscribed: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let session = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(PATTERN).await?;
            flags.clear_all();
            let _ = subscribed.send(true);
            tracing::info!(pattern = PATTERN, "subscribed to sale events");
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
        tokio::select! {
            result = session => {
                let _ = subscribed.send(false);
                match result {
                    Ok(()) => tracing::warn!("sale event stream ended, reconnecting"),
                    Err(error) => tracing::warn!(%error, ?backoff, "sale event stream failed, reconnecting"),
                }
            }
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
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
}
