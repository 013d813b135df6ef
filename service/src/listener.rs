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

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{body::Body, extract::ConnectInfo, Router};
use hyper::{
    body::{Bytes, Frame, Incoming},
    server::conn::http1,
    service::service_fn,
    Request,
};
use hyper_util::{rt::TokioIo, server::graceful::GracefulShutdown};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use serde::Deserialize;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Notify, Semaphore},
    time::{Instant, Sleep},
};
use tower::ServiceExt;

use crate::config::{fields::millis, Problems};

/// hyper refuses a read buffer smaller than this (`max_buf_size` panics below it).
pub const MIN_HEADER_BUFFER_BYTES: usize = 8192;

/// How often at most the "connection cap reached" warning is logged (every wait is counted).
const CAP_WARNING_EVERY: Duration = Duration::from_secs(10);

/// The `[http.connections]` table of both services (nginx's value beside each default).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionConfig {
    /// `header_timeout_ms`: time allowed for a request head (request line and headers) from its
    /// first byte; on a new connection, from the accept. nginx: `client_header_timeout 5s`.
    #[serde(rename = "header_timeout_ms", with = "millis")]
    pub header_timeout: Duration,
    /// `idle_timeout_ms`: a connection with no request in flight is closed after this long
    /// without a byte read or written. nginx: `keepalive_timeout 15s` towards browsers; here
    /// longer than the pool idle time of this service's own client (nginx keeps upstream
    /// connections 60 s, the edge keeps origin connections 30 s), so that the client, never this
    /// side, closes an idle connection and no request is sent on a connection being closed.
    #[serde(rename = "idle_timeout_ms", with = "millis")]
    pub idle_timeout: Duration,
    /// `body_timeout_ms`: time allowed between two reads of a request body. nginx:
    /// `client_body_timeout 5s`.
    #[serde(rename = "body_timeout_ms", with = "millis")]
    pub body_timeout: Duration,
    /// Largest request head read, in bytes: above it hyper answers 431 and closes, reading no
    /// further. nginx: `large_client_header_buffers 4 8k` (32 KB). At least 8192.
    pub header_buffer_bytes: usize,
    /// Connections open at once; beyond, new ones wait in the listen backlog until one closes.
    /// nginx: `worker_connections 4096`.
    pub max_connections: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(75),
            body_timeout: Duration::from_secs(5),
            header_buffer_bytes: 32_768,
            max_connections: 4096,
        }
    }
}

impl ConnectionConfig {
    /// Every bad field, named under `table` (such as `http.connections`).
    pub fn validate(&self, table: &str, problems: &mut Problems) {
        let field = |name: &str| format!("{table}.{name}");
        for (name, value) in [
            ("header_timeout_ms", self.header_timeout),
            ("body_timeout_ms", self.body_timeout),
        ] {
            problems.range(&field(name), value.as_millis(), 100..=600_000);
        }
        problems.range(
            &field("idle_timeout_ms"),
            self.idle_timeout.as_millis(),
            100..=3_600_000,
        );
        problems.range(
            &field("header_buffer_bytes"),
            self.header_buffer_bytes,
            MIN_HEADER_BUFFER_BYTES..=1 << 20,
        );
        problems.range(
            &field("max_connections"),
            self.max_connections,
            1..=1_000_000,
        );
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClosedLabels {
    listener: &'static str,
    reason: &'static str,
}

/// Connection counters of a service's listeners, by listener name.
#[derive(Debug, Clone, Default)]
pub struct ConnectionMetrics {
    opened: Family<ListenerLabel, Counter>,
    closed: Family<ClosedLabels, Counter>,
    open: Family<ListenerLabel, Gauge>,
    waited: Family<ListenerLabel, Counter>,
}

impl ConnectionMetrics {
    /// Adds the counters to a service's registry (names under its prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "connections_opened",
            "Connections accepted, by listener",
            self.opened.clone(),
        );
        registry.register(
            "connections_closed",
            "Connections closed, by listener and reason (closed, header_timeout, idle_timeout, \
             header_too_large, error)",
            self.closed.clone(),
        );
        registry.register(
            "connections_open",
            "Connections open now, by listener",
            self.open.clone(),
        );
        registry.register(
            "connections_waited",
            "Times the listener stopped accepting because max_connections were open",
            self.waited.clone(),
        );
    }

    fn closed(&self, listener: &'static str, reason: &'static str) {
        self.closed
            .get_or_create(&ClosedLabels { listener, reason })
            .inc();
        self.open.get_or_create(&ListenerLabel { listener }).dec();
    }
}

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

/// No head being read.
const NO_HEAD: u64 = u64::MAX;

/// What a connection is doing, in milliseconds since its accept: written by its socket's reads
/// and writes and by its requests, read by its watcher (all on the connection's own task).
#[derive(Debug)]
struct Activity {
    accepted: Instant,
    in_flight: AtomicU32,
    /// When the head being read began (0 on a new connection: a head is due from the accept).
    head_began: AtomicU64,
    /// The last byte read or written, or the last answer.
    last_io: AtomicU64,
    head_begun: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            accepted: Instant::now(),
            in_flight: AtomicU32::new(0),
            head_began: AtomicU64::new(0),
            last_io: AtomicU64::new(0),
            head_begun: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.accepted + Duration::from_millis(ms)
    }

    /// Bytes moved; a read with no request in flight begins a head.
    fn moved(&self, read: bool) {
        let now = self.now();
        self.last_io.store(now, Ordering::Relaxed);
        if read
            && self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_began.load(Ordering::Relaxed) == NO_HEAD
        {
            self.head_began.store(now, Ordering::Relaxed);
            self.head_begun.notify_one();
        }
    }

    /// When the connection is to be closed, and why: none while a request is in flight (its
    /// handler's own deadlines and the body timeout bound it).
    fn deadline(&self, config: &ConnectionConfig) -> Option<(Instant, &'static str)> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        match self.head_began.load(Ordering::Relaxed) {
            NO_HEAD => Some((
                self.at(self.last_io.load(Ordering::Relaxed)) + config.idle_timeout,
                "idle_timeout",
            )),
            began => Some((self.at(began) + config.header_timeout, "header_timeout")),
        }
    }
}

/// A request in flight on a connection, from its head to its answer.
struct Busy(Arc<Activity>);

impl Busy {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.head_began.store(NO_HEAD, Ordering::Relaxed);
        Self(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let now = self.0.now();
        self.0.last_io.store(now, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The socket, reporting every byte moved to its connection's [`Activity`].
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.moved(true);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.moved(false);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.moved(false);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A request body whose next frame must come within `timeout` of the previous one (of the
/// first read); past it the read fails, and the handler answers its bad-body error.
struct TimedBody {
    inner: Incoming,
    timeout: Duration,
    /// Started on the first read that has to wait: a request nobody reads the body of (every
    /// GET) costs no timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl TimedBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            timer: None,
        }
    }
}

/// The body of a request stopped arriving.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "request body: nothing received for {} ms",
            self.0.as_millis()
        )
    }
}

impl std::error::Error for BodyTimeout {}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(timer) = &mut this.timer {
                    timer.as_mut().reset(Instant::now() + this.timeout);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(timeout))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
