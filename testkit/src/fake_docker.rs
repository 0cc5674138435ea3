//! A fake Docker daemon on a unix socket for faults the real engine will not produce on demand:
//! it answers the version handshake and an empty container listing like Docker, and every event
//! subscription with junk, then hangs up. Counts the subscriptions it saw.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

/// The daemon; stops listening on drop.
pub struct JunkEventsDocker {
    pub path: PathBuf,
    subscriptions: Arc<AtomicUsize>,
    listings: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl JunkEventsDocker {
    /// Listens on a fresh socket. Must be called inside a tokio runtime.
    pub fn start() -> Self {
        let path = std::env::temp_dir().join(format!("{}.sock", crate::unique("junk-docker")));
        let listener = UnixListener::bind(&path).expect("bind fake docker socket");
        let subscriptions = Arc::new(AtomicUsize::new(0));
        let listings = Arc::new(AtomicUsize::new(0));
        let (subs, lists) = (subscriptions.clone(), listings.clone());
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, subs.clone(), lists.clone()));
            }
        });
        JunkEventsDocker {
            path,
            subscriptions,
            listings,
            task,
        }
    }

    /// `unix://PATH`, for `DOCKER_HOST`.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Event subscriptions so far.
    pub fn subscriptions(&self) -> usize {
        self.subscriptions.load(Ordering::Relaxed)
    }

    /// Container listings so far.
    pub fn listings(&self) -> usize {
        self.listings.load(Ordering::Relaxed)
    }
}

impl Drop for JunkEventsDocker {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Answers requests on one connection (keep-alive) until an event subscription ends it.
async fn serve(mut conn: UnixStream, subs: Arc<AtomicUsize>, lists: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = find_head_end(&buf) else {
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end + 4);
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let path = path.split('?').next().unwrap_or("/");
        if path.ends_with("/events") {
            subs.fetch_add(1, Ordering::Relaxed);
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{this is not json\n")
                .await;
            let _ = conn.shutdown().await;
            return;
        }
        let body = if path.ends_with("/version") {
            r#"{"ApiVersion":"1.41","MinAPIVersion":"1.12","Version":"20.10.24"}"#
        } else if path.ends_with("/containers/json") {
            lists.fetch_add(1, Ordering::Relaxed);
            "[]"
        } else if path.ends_with("/_ping") {
            "OK"
        } else {
            "{}"
        };
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\napi-version: 1.41\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if conn.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}
