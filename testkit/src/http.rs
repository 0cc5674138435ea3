//! HTTP through an nginx as clients see it: one GET per new connection (the case a reload must
//! not break), tallies of answers, and a load of concurrent clients that counts failures.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One `GET /` for virtual host `host` on a new connection to `127.0.0.1:port`; the body,
/// trimmed. Anything but a 200 is an error naming the status line.
pub async fn get(port: u16, host: &str) -> anyhow::Result<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET / HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    anyhow::ensure!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        text.lines().next().unwrap_or("no answer")
    );
    Ok(text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_string())
}

/// Counts the answers of `n` requests; a failed request counts under `error: <reason>`.
pub async fn tally(port: u16, host: &str, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let key = get(port, host)
            .await
            .unwrap_or_else(|e| format!("error: {e}"));
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// Concurrent clients sending requests, each on a new connection, until [`Load::finish`].
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

/// What a [`Load`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadTotals {
    pub ok: u64,
    pub failed: u64,
    /// The first few failures, for the assertion message.
    pub errors: Vec<String>,
}

impl Load {
    /// Starts `clients` clients against `127.0.0.1:port` with virtual host `host`.
    pub fn start(port: u16, host: &str, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let workers = (0..clients)
            .map(|_| {
                let (stop, ok, failed, errors) =
                    (stop.clone(), ok.clone(), failed.clone(), errors.clone());
                let host = host.to_string();
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match get(port, &host).await {
                            Ok(_) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                let mut errors = errors.lock().expect("errors lock");
                                if errors.len() < 10 {
                                    errors.push(e.to_string());
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            errors,
            workers,
        }
    }

    /// Stops the clients and answers the totals.
    pub async fn finish(self) -> LoadTotals {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            let _ = w.await;
        }
        LoadTotals {
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            errors: self.errors.lock().expect("errors lock").clone(),
        }
    }
}
