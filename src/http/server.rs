//! Serving connections: HTTP/1.1 and HTTP/2 (cleartext, prior knowledge)
//! on one port, with the deadlines that keep slow clients from holding the
//! server (hyper behind poem's endpoints; poem's own `Server` offers only an
//! idle timeout, which a client sending one byte a second never trips).
//!
//! Each connection has a watchdog that closes it (drops it: the socket is
//! closed, nothing more is read or answered) when
//!
//! - a request's head has not fully arrived within the header timeout of
//!   its first byte (of the connection's opening, for the first request):
//!   half a header, a byte at a time, is cut after that timeout;
//! - no request is in flight and nothing arrived for the idle timeout
//!   (a keep-alive connection nobody uses);
//! - the pipeline gave up on a body that did not arrive within the body
//!   timeout ([`ConnectionHandle::close`], see [`super::body`]).
//!
//! While a request is being handled no deadline runs here: the body
//! timeout covers its upload, and handlers end on their own.
//!
//! On HTTP/2 any frame (a ping, a window update) that arrives while no
//! request is in flight counts as the start of a request: an idle HTTP/2
//! connection that keeps sending control frames is closed after the header
//! timeout rather than the idle timeout, which clients handle by reconnecting.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How long a client may take (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionTimeouts {
    /// From a request's first byte to its last header line.
    pub header: Duration,
    /// From a request's head to the last byte of its body (enforced by the
    /// pipeline, which reads the body).
    pub body: Duration,
    /// A keep-alive connection with nothing in flight and nothing arriving.
    pub idle: Duration,
}

/// Serves `endpoint` on `listener` until `stop` turns true; then lets
/// requests in flight finish within `grace` and drops what is left.
pub async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    timeouts: ConnectionTimeouts,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) -> io::Result<()>
where
    E: Endpoint<Output = Response> + 'static,
{
    let endpoint = Arc::new(endpoint);
    let local = listener.local_addr()?;
    let for_connections = stop.clone();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(
                        stream,
                        local,
                        remote,
                        endpoint.clone(),
                        timeouts,
                        for_connections.clone(),
                    ));
                }
                Err(e) => {
                    // Out of file descriptors, usually: wait for some to close.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Reap finished connections so the set stays as large as the
            // number of open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // Each connection saw `stop` too: it answers what is in flight, then closes.
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still busy after the shutdown timeout; closing them"
        );
    }
    connections.shutdown().await;
    Ok(())
}

/// Resolves once `stop` turns true (the guard `wait_for` returns is not
/// `Send`, so it must not live in a `select!`).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// One connection: HTTP/1.1, or HTTP/2 when it opens with the preface.
async fn serve_connection<E>(
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    endpoint: Arc<E>,
    timeouts: ConnectionTimeouts,
    mut stop: watch::Receiver<bool>,
) where
    E: Endpoint<Output = Response> + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(WatchedIo {
        inner: stream,
        activity: activity.clone(),
    });
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |mut req: hyper::Request<Incoming>| {
            let in_flight = activity.request_started();
            req.extensions_mut()
                .insert(ConnectionHandle(activity.clone()));
            let endpoint = endpoint.clone();
            async move {
                let req = Request::from((
                    req,
                    LocalAddr(Addr::SocketAddr(local)),
                    RemoteAddr(Addr::SocketAddr(remote)),
                    Scheme::HTTP,
                ));
                let resp = endpoint.get_response(req).await;
                drop(in_flight);
                Ok::<_, Infallible>(hyper::Response::<BoxBody<Bytes, io::Error>>::from(resp))
            }
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_pending_accept_reset_streams(Some(20))
        .max_header_list_size(16 * 1024);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let expired = activity.expired(timeouts);
    tokio::pin!(expired);
    tokio::select! {
        _ = conn.as_mut() => return,
        reason = &mut expired => {
            tracing::debug!(%remote, reason, "closing the connection");
            return;
        }
        () = stopped(&mut stop) => {}
    }
    // Shutting down: finish what is in flight, take nothing new.
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        _ = conn => {}
        _ = expired => {}
    }
}

/// Lets the pipeline close the connection a request came on (a body that
/// did not arrive in time). Present in every request's extensions.
#[derive(Clone)]
pub struct ConnectionHandle(Arc<Activity>);

impl ConnectionHandle {
    /// Closes the connection now: nothing more is read or answered on it.
    pub fn close(&self) {
        self.0.lock().closed = true;
        self.0.changed.notify_one();
    }
}

/// What a connection is doing, for its deadlines.
struct Activity {
    state: Mutex<ActivityState>,
    changed: Notify,
}

struct ActivityState {
    /// Requests handed to the pipeline and not answered yet.
    in_flight: usize,
    /// When the first byte of a request not yet handed over arrived (the
    /// connection's opening for the first one).
    receiving_since: Option<Instant>,
    /// When the last request in flight was answered.
    idle_since: Instant,
    closed: bool,
}

impl Activity {
    fn new() -> Activity {
        let now = Instant::now();
        Activity {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                receiving_since: Some(now),
                idle_since: now,
                closed: false,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived: with nothing in flight, a request has begun.
    fn bytes_arrived(&self) {
        let mut state = self.lock();
        if state.in_flight == 0 && state.receiving_since.is_none() {
            state.receiving_since = Some(Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    /// A request's head arrived; the returned guard ends it when dropped.
    fn request_started(self: &Arc<Self>) -> InFlight {
        let mut state = self.lock();
        state.in_flight += 1;
        state.receiving_since = None;
        drop(state);
        self.changed.notify_one();
        InFlight(self.clone())
    }

    /// When the connection must close unless something happens first, and why.
    fn deadline(&self, timeouts: ConnectionTimeouts) -> Option<(Instant, &'static str)> {
        let state = self.lock();
        if state.closed {
            Some((Instant::now(), "the request body did not arrive in time"))
        } else if state.in_flight > 0 {
            None
        } else if let Some(since) = state.receiving_since {
            Some((
                since + timeouts.header,
                "the request head did not arrive in time",
            ))
        } else {
            Some((state.idle_since + timeouts.idle, "idle"))
        }
    }

    /// Resolves when a deadline passes, with the reason.
    async fn expired(&self, timeouts: ConnectionTimeouts) -> &'static str {
        loop {
            // Registered before reading the state, so no change is missed.
            let changed = self.changed.notified();
            match self.deadline(timeouts) {
                Some((at, reason)) if at <= Instant::now() => return reason,
                Some((at, _)) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// A request in flight; dropped when it is answered (or abandoned).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight -= 1;
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
        }
        drop(state);
        self.0.changed.notify_one();
    }
}

/// The socket, telling its connection's [`Activity`] when bytes arrive.
struct WatchedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
