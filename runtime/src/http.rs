//! A tiny HTTP/1.1 endpoint for `/metrics` (Prometheus text) and `/health`: enough for a scraper
//! and a container health check, with no web framework behind it. Bounded: a request head must
//! arrive whole within [`Limits::head_timeout`] and fit in [`Limits::max_head`] bytes, answers are
//! written within the same time, at most [`Limits::max_connections`] are served at once (the rest
//! get 503 at once), only GET and HEAD are answered, and every connection closes after one answer
//! (nothing idles).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// What the endpoint reports; implemented by each daemon's state.
pub trait Status: Send + Sync + 'static {
    /// The Prometheus exposition.
    fn metrics(&self) -> String;
    /// `Ok(detail)` answers 200, `Err(detail)` answers 503.
    fn health(&self) -> Result<String, String>;
}

/// How much one client may hold of the endpoint.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The whole request head must arrive within this; the answer must be written within it too.
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

/// Binds `addr` and serves until `token` is cancelled. Answers the bound address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    status: Arc<dyn Status>,
    token: CancellationToken,
) -> std::io::Result<SocketAddr> {
    serve_with(addr, status, token, Limits::default()).await
}

/// [`serve`] with other limits.
pub async fn serve_with(
    addr: SocketAddr,
    status: Arc<dyn Status>,
    token: CancellationToken,
    limits: Limits,
) -> std::io::Result<SocketAddr> {
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
            let status = status.clone();
            let slot = slots.clone().try_acquire_owned();
            tokio::spawn(async move {
                let answer = async {
                    match slot {
                        Ok(_slot) => serve_one(stream, status.as_ref(), &limits).await,
                        Err(_) => {
                            let busy = Answer::text("503 Service Unavailable", "busy\n");
                            write_answer(stream, &busy, false).await
                        }
                    }
                };
                // Each phase has its own deadline; this one also bounds the busy answer.
                let _ = tokio::time::timeout(limits.head_timeout * 2, answer).await;
            });
        }
    });
    Ok(bound)
}

struct Answer {
    code: &'static str,
    ctype: &'static str,
    body: String,
    allow: bool,
}

impl Answer {
    fn text(code: &'static str, body: &str) -> Self {
        Answer {
            code,
            ctype: "text/plain",
            body: body.into(),
            allow: false,
        }
    }
}

async fn serve_one(mut stream: TcpStream, status: &dyn Status, limits: &Limits) -> Option<()> {
    let head = tokio::time::timeout(limits.head_timeout, read_head(&mut stream, limits.max_head))
        .await
        .ok()?;
    let (answer, head_only) = match head {
        Head::Complete(text) => {
            let mut words = text.split_whitespace();
            let method = words.next().unwrap_or("");
            let path = words.next().unwrap_or("/");
            match method {
                "GET" => (respond(path, status), false),
                "HEAD" => (respond(path, status), true),
                _ => (
                    Answer {
                        allow: true,
                        ..Answer::text("405 Method Not Allowed", "GET or HEAD only\n")
                    },
                    false,
                ),
            }
        }
        Head::TooLarge => (
            Answer::text(
                "431 Request Header Fields Too Large",
                "request head too large\n",
            ),
            false,
        ),
        Head::Closed => return None,
    };
    tokio::time::timeout(
        limits.head_timeout,
        write_answer(stream, &answer, head_only),
    )
    .await
    .ok()?
}

enum Head {
    Complete(String),
    TooLarge,
    Closed,
}

/// Reads until the blank line that ends a request head.
async fn read_head(stream: &mut TcpStream, max: usize) -> Head {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Head::Closed,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Head::Complete(String::from_utf8_lossy(&buf[..end]).into_owned());
        }
        if buf.len() > max {
            return Head::TooLarge;
        }
    }
}

async fn write_answer(mut stream: TcpStream, answer: &Answer, head_only: bool) -> Option<()> {
    let allow = if answer.allow {
        "allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {}\r\ncontent-type: {}\r\ncontent-length: {}\r\n{allow}connection: close\r\n\r\n",
        answer.code,
        answer.ctype,
        answer.body.len()
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    if !head_only {
        stream.write_all(answer.body.as_bytes()).await.ok()?;
    }
    stream.shutdown().await.ok()
}

fn respond(path: &str, status: &dyn Status) -> Answer {
    match path.split('?').next().unwrap_or(path) {
        "/metrics" => Answer {
            code: "200 OK",
            ctype: "text/plain; version=0.0.4",
            body: status.metrics(),
            allow: false,
        },
        "/health" => match status.health() {
            Ok(detail) => Answer::text("200 OK", &(detail + "\n")),
            Err(detail) => Answer::text("503 Service Unavailable", &(detail + "\n")),
        },
        _ => Answer::text("404 Not Found", "not found\n"),
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
