//! The one HTTP server of both daemons: `/metrics` and `/health` ([`status_routes`]) plus
//! whatever routes a daemon merges in, served by axum over hyper's HTTP/1.1 connections.
//! Bounded so that a scraper or a stray client cannot hold it: a request head must arrive
//! whole within [`Limits::head_timeout`] (counted from when the connection starts waiting for
//! it, so an idle keep-alive connection is closed after the same time) and fit in
//! [`Limits::max_head`] bytes (431 otherwise); a write the client does not drain within the
//! same time ends the connection; at most [`Limits::max_connections`] are served at once (the
//! rest get 503 at once); only GET and HEAD are answered (405 with `allow` otherwise).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::metrics::{encode, Exposition, Format};

/// What `/metrics` and `/health` report; implemented by each daemon's state.
pub trait Status: Send + Sync + 'static {
    /// The families `/metrics` exposes.
    fn exposition(&self) -> &Exposition;
    /// `Ok(detail)` answers 200, `Err(detail)` answers 503.
    fn health(&self) -> Result<String, String>;
}

/// How much one client may hold of the server.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A request head must arrive within this, an idle connection is closed after it, and a
    /// write must make progress within it.
    pub head_timeout: Duration,
    /// A larger request head is answered 431.
    pub max_head: usize,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            head_timeout: Duration::from_secs(10),
            max_head: 8 * 1024,
            max_connections: 256,
        }
    }
}

/// `GET /metrics` (Prometheus text 0.0.4, or OpenMetrics 1.0.0 when the `accept` header asks
/// for it) and `GET /health`.
pub fn status_routes(status: Arc<dyn Status>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(status)
}

async fn metrics(State(status): State<Arc<dyn Status>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let body = encode(status.exposition(), format);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

async fn health(State(status): State<Arc<dyn Status>>) -> Response {
    match status.health() {
        Ok(detail) => (StatusCode::OK, detail + "\n").into_response(),
        Err(detail) => (StatusCode::SERVICE_UNAVAILABLE, detail + "\n").into_response(),
    }
}

/// Binds `addr` and serves `router` until `token` is cancelled. Answers the bound address
/// (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    token: CancellationToken,
) -> io::Result<SocketAddr> {
    serve_with(addr, router, token, Limits::default()).await
}

/// [`serve`] with other limits.
pub async fn serve_with(
    addr: SocketAddr,
    router: Router,
    token: CancellationToken,
    limits: Limits,
) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                _ = token.cancelled() => return,
                conn = listener.accept() => conn,
            };
            let Ok((stream, _)) = conn else {
                // Out of descriptors and the like: do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            match slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    let conn = connection(stream, router.clone(), limits, token.clone(), slot);
                    tokio::spawn(conn);
                }
                Err(_) => {
                    tokio::spawn(turn_away(stream, limits.head_timeout));
                }
            }
        }
    });
    Ok(bound)
}

/// Serves one connection until the client leaves, a bound ends it, or shutdown.
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: Limits,
    token: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let router = router.clone();
        async move {
            if req.method() == Method::GET || req.method() == Method::HEAD {
                router.oneshot(req).await
            } else {
                Ok::<_, Infallible>(not_allowed())
            }
        }
    });
    let io = WriteDeadline {
        io: TokioIo::new(stream),
        limit: limits.head_timeout,
        stalled: None,
    };
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_header_size(limits.max_head)
        .max_buf_size(limits.max_head.max(8 * 1024))
        .serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = token.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limits.head_timeout, conn).await;
        }
    }
}

fn not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "GET, HEAD")],
        "GET or HEAD only\n",
    )
        .into_response()
}

/// Answers 503 without reading the request: every slot is taken.
async fn turn_away(mut stream: TcpStream, within: Duration) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
        content-length: 5\r\nconnection: close\r\n\r\nbusy\n";
    let _ = tokio::time::timeout(within, async {
        stream.write_all(BUSY).await?;
        stream.shutdown().await
    })
    .await;
}

/// Fails a write that the client has not let through within `limit` (hyper has no write
/// timeout of its own): a client that stops reading cannot hold its slot.
struct WriteDeadline<T> {
    io: T,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteDeadline<T> {
    fn bound<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let limit = self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for WriteDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for WriteDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.bound(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.bound(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.bound(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_shutdown(cx);
        self.bound(cx, poll)
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
