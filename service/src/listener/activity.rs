//! What one connection is doing (a head being read, a request in flight, the last byte moved),
//! kept by its socket's reads and writes and by its requests, and the deadline that follows.

use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::Notify,
    time::Instant,
};

use super::ConnectionConfig;

/// No head being read.
const NO_HEAD: u64 = u64::MAX;

/// What a connection is doing, in milliseconds since its accept: written by its socket's reads
/// and writes and by its requests, read by its watcher (all on the connection's own task).
#[derive(Debug)]
pub(super) struct Activity {
    pub(super) accepted: Instant,
    in_flight: AtomicU32,
    /// When the head being read began (0 on a new connection: a head is due from the accept).
    head_began: AtomicU64,
    /// The last byte read or written, or the last answer.
    last_io: AtomicU64,
    pub(super) head_begun: Notify,
}

impl Activity {
    pub(super) fn new() -> Self {
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
    pub(super) fn moved(&self, read: bool) {
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
    pub(super) fn deadline(&self, config: &ConnectionConfig) -> Option<(Instant, &'static str)> {
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
pub(super) struct Busy(Arc<Activity>);

impl Busy {
    pub(super) fn begin(activity: Arc<Activity>) -> Self {
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
pub(super) struct Watched {
    pub(super) stream: TcpStream,
    pub(super) activity: Arc<Activity>,
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
