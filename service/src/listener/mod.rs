//! The one HTTP/1 listener of both services, in place of `axum::serve`, which has no timer: a
//! half-sent header or a silent connection would stay open for ever, and hyper would buffer
//! ~400 KB of header before anything refused it. Here, as nginx does in front:
//!
//! - a request head must arrive within `header_timeout_ms` of its first byte (of the accept, on a
//!   new connection: nginx's `client_header_timeout`), else the connection is closed;
//! - a connection with no request in flight and no byte moving for `idle_timeout_ms` is closed
//!   (`keepalive_timeout`);
//! - a request body must make progress every `body_timeout_ms` (`client_body_timeout`), else its
//!   read fails and the handler answers its own error;
//! - a head larger than `header_buffer_bytes` gets hyper's bare 431 and the connection is closed,
//!   with nothing read beyond the buffer (`large_client_header_buffers`);
//! - at most `max_connections` are open: beyond, the listener stops accepting and new connections
//!   wait in the kernel's listen backlog until one closes (`worker_connections`);
//! - on shutdown, accepting stops, idle connections close, requests in flight finish.
//!
//! Every request carries axum's `ConnectInfo<SocketAddr>` (the peer). Connections opened, closed
//! (by reason) and held at the cap are counted in [`ConnectionMetrics`].

mod activity;
mod config;
mod metrics;
mod timed_body;

use std::{future::Future, sync::Arc, time::Duration};

use axum::{body::Body, extract::ConnectInfo, Router};
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request};
use hyper_util::{rt::TokioIo, server::graceful::GracefulShutdown};
use tokio::{net::TcpListener, sync::Semaphore, time::Instant};
use tower::ServiceExt;

use activity::{Activity, Busy, Watched};
use metrics::ListenerLabel;
use timed_body::TimedBody;

pub use config::{ConnectionConfig, MIN_HEADER_BUFFER_BYTES};
pub use metrics::ConnectionMetrics;
pub use timed_body::BodyTimeout;

/// How often at most the "connection cap reached" warning is logged (every wait is counted).
const CAP_WARNING_EVERY: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits for
/// the connections to finish (idle ones close at once, the rest within their timeouts).
/// `name` labels the metrics and logs (`api`, `admin`).
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    router: Router,
    config: &ConnectionConfig,
    metrics: ConnectionMetrics,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        // The header timer is ours (from the head's first byte, not from the end of the last
        // answer, which hyper's would be: that would close idle keep-alive connections at 5 s).
        .header_read_timeout(None)
        .max_buf_size(config.header_buffer_bytes.max(MIN_HEADER_BUFFER_BYTES))
        .max_header_size(config.header_buffer_bytes);
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    let label = ListenerLabel { listener: name };
    let mut last_cap_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                metrics.waited.get_or_create(&label).inc();
                if last_cap_warning.is_none_or(|at| at.elapsed() >= CAP_WARNING_EVERY) {
                    last_cap_warning = Some(Instant::now());
                    tracing::warn!(
                        listener = name,
                        max_connections = config.max_connections,
                        "connection cap reached: new connections wait in the listen backlog"
                    );
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of descriptors, most likely: give the open connections time to close.
                    tracing::error!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        metrics.opened.get_or_create(&label).inc();
        metrics.open.get_or_create(&label).inc();
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            stream,
            activity: activity.clone(),
        });
        let service = {
            let activity = activity.clone();
            let router = router.clone();
            let body_timeout = config.body_timeout;
            service_fn(move |request: Request<Incoming>| {
                let router = router.clone();
                let busy = Busy::begin(activity.clone());
                async move {
                    let (mut parts, body) = request.into_parts();
                    parts.extensions.insert(ConnectInfo(peer));
                    let body = Body::new(TimedBody::new(body, body_timeout));
                    let answer = router.oneshot(Request::from_parts(parts, body)).await;
                    drop(busy);
                    answer
                }
            })
        };
        let connection = graceful.watch(builder.serve_connection(io, service));
        let config = config.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let reason = watch_connection(connection, &activity, &config).await;
            match reason {
                "closed" => tracing::trace!(listener = name, %peer, "connection closed"),
                "error" => tracing::debug!(listener = name, %peer, "connection failed"),
                _ => tracing::info!(listener = name, %peer, reason, "connection closed"),
            }
            metrics.closed(name, reason);
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Drives a connection until it ends, or drops it (closing the socket) when its head or idle
/// deadline passes; the reason it ended.
async fn watch_connection(
    connection: impl Future<Output = hyper::Result<()>>,
    activity: &Activity,
    config: &ConnectionConfig,
) -> &'static str {
    tokio::pin!(connection);
    loop {
        let deadline = activity.deadline(config);
        tokio::select! {
            result = &mut connection => {
                return match result {
                    Ok(()) => "closed",
                    Err(e) if e.is_parse_too_large() => "header_too_large",
                    Err(_) => "error",
                };
            }
            // A head began: its deadline may be earlier than the idle one being waited for.
            () = activity.head_begun.notified() => {}
            () = sleep_until(deadline.map(|(at, _)| at)) => {
                if let Some((at, reason)) = activity.deadline(config) {
                    if at <= Instant::now() {
                        return reason;
                    }
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

#[cfg(test)]
mod tests;
