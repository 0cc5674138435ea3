//! A tiny HTTP/1.1 endpoint for `/metrics` (Prometheus text) and `/health`: enough for a scraper
//! and a container health check, with no web framework behind it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What the endpoint reports; implemented by each daemon's state.
pub trait Status: Send + Sync + 'static {
    /// The Prometheus exposition.
    fn metrics(&self) -> String;
    /// `Ok(detail)` answers 200, `Err(detail)` answers 503.
    fn health(&self) -> Result<String, String>;
}

/// Binds `addr` and serves until `token` is cancelled. Answers the bound address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    status: Arc<dyn Status>,
    token: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                _ = token.cancelled() => return,
                conn = listener.accept() => conn,
            };
            let Ok((mut stream, _)) = conn else { continue };
            let status = status.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                let n = match stream.read(&mut buf).await {
                    Ok(n) => n,
                    Err(_) => return,
                };
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let (code, ctype, body) = respond(path, status.as_ref());
                let head = format!(
                    "HTTP/1.1 {code}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(bound)
}

fn respond(path: &str, status: &dyn Status) -> (&'static str, &'static str, String) {
    match path.split('?').next().unwrap_or(path) {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", status.metrics()),
        "/health" => match status.health() {
            Ok(detail) => ("200 OK", "text/plain", detail + "\n"),
            Err(detail) => ("503 Service Unavailable", "text/plain", detail + "\n"),
        },
        _ => ("404 Not Found", "text/plain", "not found\n".into()),
    }
}
