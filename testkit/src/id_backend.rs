//! In-process HTTP backends on free loopback ports, each answering its own id: plain requests
//! get `<id>` (keep-alive kept), an `Upgrade` request gets `101` and then every line it sends
//! echoed back as `<id>:<line>`, so a test can hold a long-lived upgraded connection through
//! nginx. A backend may answer a share of its requests `500` ([`IdBackend::start_failing`]),
//! evenly spread, and counts what it answered. No busybox; stopped (port closed, connections
//! cut) on drop.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A backend answering `id`; its accept loop and connections end on drop.
pub struct IdBackend {
    pub id: String,
    pub ip: IpAddr,
    pub port: u16,
    answers: Arc<Answers>,
    task: JoinHandle<()>,
}

/// What a backend answered, and how often it fails.
#[derive(Debug, Default)]
struct Answers {
    fail_percent: u64,
    requests: AtomicU64,
    failed: AtomicU64,
}

impl Answers {
    /// Counts one request; answers whether it gets a 500 (request n fails when
    /// ⌊(n+1)·p/100⌋ > ⌊n·p/100⌋, so failures spread evenly).
    fn next_fails(&self) -> bool {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let p = self.fail_percent;
        let fails = (n + 1) * p / 100 > n * p / 100;
        if fails {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        fails
    }
}

impl IdBackend {
    /// On 127.0.0.1.
    pub async fn start(id: &str) -> Self {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), id).await
    }

    /// On 127.0.0.1, answering `fail_percent`% of its plain requests `500`.
    pub async fn start_failing(id: &str, fail_percent: u64) -> Self {
        Self::start_with(IpAddr::V4(Ipv4Addr::LOCALHOST), id, fail_percent.min(100)).await
    }

    /// On `ip` (e.g. `::1`).
    pub async fn start_on(ip: IpAddr, id: &str) -> Self {
        Self::start_with(ip, id, 0).await
    }

    async fn start_with(ip: IpAddr, id: &str, fail_percent: u64) -> Self {
        let answers = Arc::new(Answers {
            fail_percent,
            ..Answers::default()
        });
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))
            .await
            .expect("bind a backend port");
        let port = listener.local_addr().expect("local addr").port();
        let owned = id.to_string();
        let shared = answers.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                conns.spawn(serve(stream, owned.clone(), shared.clone()));
                while conns.try_join_next().is_some() {}
            }
        });
        IdBackend {
            id: id.to_string(),
            ip,
            port,
            answers,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// Plain requests answered so far (upgrades aside), and how many of them got a 500.
    pub fn answered(&self) -> (u64, u64) {
        (
            self.answers.requests.load(Ordering::Relaxed),
            self.answers.failed.load(Ordering::Relaxed),
        )
    }
}

impl Drop for IdBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection: requests until the client closes; an upgrade turns it into a line echo.
async fn serve(stream: TcpStream, id: String, answers: Arc<Answers>) {
    let mut conn = BufReader::new(stream);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match conn.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" || line == "\n" => break,
                Ok(_) => head.push_str(&line),
            }
        }
        let lower = head.to_ascii_lowercase();
        if lower.contains("\nupgrade:") {
            let reply = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
            if conn.get_mut().write_all(reply.as_bytes()).await.is_err() {
                return;
            }
            return echo(conn, &id).await;
        }
        if let Some(len) = content_length(&lower) {
            let mut body = vec![0; len];
            if conn.read_exact(&mut body).await.is_err() {
                return;
            }
        }
        let status = if answers.next_fails() {
            "500 Internal Server Error"
        } else {
            "200 OK"
        };
        let reply = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{id}",
            id.len()
        );
        if conn.get_mut().write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn content_length(lower_head: &str) -> Option<usize> {
    lower_head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The upgraded connection: each line comes back as `<id>:<line>`.
async fn echo(mut conn: BufReader<TcpStream>, id: &str) {
    loop {
        let mut line = String::new();
        match conn.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let reply = format!("{id}:{line}");
                if conn.get_mut().write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A client's upgraded (WebSocket-style) connection through a proxy to an [`IdBackend`].
pub struct Upgraded(BufReader<TcpStream>);

impl Upgraded {
    /// Sends `GET /ws` with `Upgrade: websocket` for virtual host `host` to 127.0.0.1:`port` and
    /// reads the `101` answer's head.
    pub async fn open(port: u16, host: &str) -> Upgraded {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let mut ws = BufReader::new(stream);
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        );
        ws.get_mut()
            .write_all(request.as_bytes())
            .await
            .expect("upgrade request");
        let mut line = String::new();
        ws.read_line(&mut line).await.expect("status line");
        assert!(line.starts_with("HTTP/1.1 101"), "{line}");
        while line != "\r\n" {
            line.clear();
            ws.read_line(&mut line).await.expect("header");
        }
        Upgraded(ws)
    }

    /// Sends `text` as a line; answers the line that comes back (`<id>:<text>`), within 5 s.
    pub async fn echo(&mut self, text: &str) -> String {
        self.0
            .get_mut()
            .write_all(format!("{text}\n").as_bytes())
            .await
            .expect("send on the upgraded connection");
        let mut line = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            self.0.read_line(&mut line),
        )
        .await
        .expect("an answer within 5 s")
        .expect("read");
        line.trim_end().to_string()
    }
}
