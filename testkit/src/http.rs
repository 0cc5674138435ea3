//! HTTP through an nginx as clients see it: one GET per new connection (the case a reload must
//! not break), GETs on a kept-alive connection (browsers, connection pools: the case a reload
//! breaks when an old worker closes an idle connection a client is sending on), tallies of
//! answers, and a load of concurrent clients of either kind that counts failures.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

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

/// A kept-alive HTTP/1.1 connection to `127.0.0.1:port`.
pub struct KeepAlive {
    conn: BufReader<TcpStream>,
    /// False once the server said `Connection: close`.
    open: bool,
}

impl KeepAlive {
    /// Opens a connection.
    pub async fn connect(port: u16) -> anyhow::Result<Self> {
        let s = TcpStream::connect(("127.0.0.1", port)).await?;
        Ok(KeepAlive {
            conn: BufReader::new(s),
            open: true,
        })
    }

    /// Whether the server keeps the connection open for another request.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// One `GET /` for `host` on this connection (within 10 s); the body, trimmed. Anything but
    /// a complete 200 is an error (a connection closed before the answer included).
    pub async fn get(&mut self, host: &str) -> anyhow::Result<String> {
        tokio::time::timeout(Duration::from_secs(10), self.exchange(host))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within 10 s"))?
    }

    async fn exchange(&mut self, host: &str) -> anyhow::Result<String> {
        anyhow::ensure!(self.open, "the server closed this connection");
        self.conn
            .get_mut()
            .write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .await?;
        let mut status = String::new();
        anyhow::ensure!(
            self.conn.read_line(&mut status).await? > 0,
            "connection closed before the answer"
        );
        anyhow::ensure!(status.starts_with("HTTP/1.1 200"), "{}", status.trim());
        let (mut length, mut chunked) = (None, false);
        loop {
            let mut line = String::new();
            anyhow::ensure!(self.conn.read_line(&mut line).await? > 0, "cut in headers");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            let (name, value) = (name.to_ascii_lowercase(), value.trim().to_ascii_lowercase());
            match name.as_str() {
                "content-length" => length = Some(value.parse::<usize>()?),
                "transfer-encoding" => chunked = value.contains("chunked"),
                "connection" if value == "close" => self.open = false,
                _ => {}
            }
        }
        let body = if chunked {
            self.chunked_body().await?
        } else {
            let length = length.ok_or_else(|| anyhow::anyhow!("no length: cannot keep alive"))?;
            let mut body = vec![0; length];
            self.conn.read_exact(&mut body).await?;
            body
        };
        Ok(String::from_utf8_lossy(&body).trim().to_string())
    }

    async fn chunked_body(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            self.conn.read_line(&mut size).await?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)?;
            let mut chunk = vec![0; size + 2];
            self.conn.read_exact(&mut chunk).await?;
            if size == 0 {
                return Ok(body);
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
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

/// Concurrent clients sending requests, each on a new connection ([`Load::start`]) or on
/// kept-alive connections ([`Load::keep_alive`]), until [`Load::finish`].
pub struct Load {
    tally: Arc<Tally>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

/// What a [`Load`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadTotals {
    pub ok: u64,
    pub failed: u64,
    /// Connections opened (one per request for [`Load::start`]).
    pub connections: u64,
    /// The first few failures, for the assertion message.
    pub errors: Vec<String>,
}

/// Counters the clients of one [`Load`] share.
#[derive(Default)]
struct Tally {
    stop: AtomicBool,
    ok: AtomicU64,
    failed: AtomicU64,
    connections: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Tally {
    fn count(&self, result: anyhow::Result<String>) {
        match result {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut errors = self.errors.lock().expect("errors lock");
                if errors.len() < 10 {
                    errors.push(e.to_string());
                }
            }
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

impl Load {
    /// Starts `clients` clients against `127.0.0.1:port` with virtual host `host`, each request
    /// on a new connection.
    pub fn start(port: u16, host: &str, clients: usize) -> Self {
        Self::spawn(clients, move |tally| {
            let host = host.to_string();
            async move {
                while !tally.stopped() {
                    tally.connections.fetch_add(1, Ordering::Relaxed);
                    tally.count(get(port, &host).await);
                }
            }
        })
    }

    /// Starts `clients` clients that each keep one connection open and send request after request
    /// on it (a new one only when the server closed it with `Connection: close`, or after a
    /// failure). A connection the server drops under a waiting request is a failure.
    pub fn keep_alive(port: u16, host: &str, clients: usize) -> Self {
        Self::spawn(clients, move |tally| {
            let host = host.to_string();
            async move {
                let mut conn: Option<KeepAlive> = None;
                while !tally.stopped() {
                    let c = match conn.as_mut() {
                        Some(c) if c.is_open() => c,
                        _ => {
                            tally.connections.fetch_add(1, Ordering::Relaxed);
                            match KeepAlive::connect(port).await {
                                Ok(c) => conn.insert(c),
                                Err(e) => {
                                    tally.count(Err(e));
                                    continue;
                                }
                            }
                        }
                    };
                    let result = c.get(&host).await;
                    if result.is_err() {
                        conn = None;
                    }
                    tally.count(result);
                }
            }
        })
    }

    fn spawn<F, Fut>(clients: usize, client: F) -> Self
    where
        F: Fn(Arc<Tally>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let tally = Arc::new(Tally::default());
        let workers = (0..clients)
            .map(|_| tokio::spawn(client(tally.clone())))
            .collect();
        Load { tally, workers }
    }

    /// Stops the clients and answers the totals.
    pub async fn finish(self) -> LoadTotals {
        let t = &self.tally;
        t.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            let _ = w.await;
        }
        LoadTotals {
            ok: t.ok.load(Ordering::Relaxed),
            failed: t.failed.load(Ordering::Relaxed),
            connections: t.connections.load(Ordering::Relaxed),
            errors: t.errors.lock().expect("errors lock").clone(),
        }
    }
}
