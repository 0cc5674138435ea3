//! An HTTP proxy in front of a Consul agent that runs a test's hook just before it forwards the
//! first request matching a method and path prefix: "a second writer between your read and
//! your write", on demand, for check-and-set tests that must fail when the guard is removed.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Hook = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Forwards `127.0.0.1:port` to a Consul agent; every connection carries one request.
pub struct ConsulProxy {
    pub port: u16,
    hook: Arc<Mutex<Option<(String, String, Hook)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ConsulProxy {
    /// Listens on a free port, forwarding to `target` (`127.0.0.1:PORT`).
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let hook: Arc<Mutex<Option<(String, String, Hook)>>> = Arc::default();
        let h = hook.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (target, hook) = (target.clone(), h.clone());
                tokio::spawn(async move {
                    let _ = forward(client, &target, &hook).await;
                });
            }
        });
        ConsulProxy { port, hook, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs `hook` (to completion) before forwarding the next `method` request whose path
    /// starts with `path`; once.
    pub fn before<F, Fut>(&self, method: &str, path: &str, hook: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let boxed: Hook = Box::new(move || Box::pin(hook()));
        *self.hook.lock().expect("lock") = Some((method.into(), path.into(), boxed));
    }

    /// True once the hook ran.
    pub fn fired(&self) -> bool {
        self.hook.lock().expect("lock").is_none()
    }
}

impl Drop for ConsulProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Shared = Arc<Mutex<Option<(String, String, Hook)>>>;

async fn forward(mut client: TcpStream, target: &str, hook: &Shared) -> std::io::Result<()> {
    let request = read_request(&mut client).await?;
    let head = String::from_utf8_lossy(&request[..request.len().min(512)]).into_owned();
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let due = {
        let mut slot = hook.lock().expect("lock");
        let matches = slot
            .as_ref()
            .is_some_and(|(m, p, _)| m == method && path.starts_with(p.as_str()));
        if matches {
            slot.take().map(|(_, _, h)| h)
        } else {
            None
        }
    };
    if let Some(h) = due {
        h().await;
    }
    let mut upstream = TcpStream::connect(target).await?;
    upstream.write_all(&close_connection(&request)).await?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer).await?;
    client.write_all(&answer).await?;
    client.shutdown().await
}

/// Reads one request: the head, then `content-length` bytes of body.
async fn read_request(client: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = client.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(buf);
        }
    }
}

/// The request with `connection: close`, so the answer ends with the connection.
fn close_connection(request: &[u8]) -> Vec<u8> {
    let Some(end) = find(request, b"\r\n\r\n") else {
        return request.to_vec();
    };
    let head = String::from_utf8_lossy(&request[..end]);
    let mut out: Vec<u8> = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .flat_map(|l| format!("{l}\r\n").into_bytes())
        .collect();
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(&request[end + 4..]);
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
