//! Faults a real Consul will not produce on demand, from a scripted fake: answers without
//! `X-Consul-Index` (a proxy that strips it, a broken server) must not make the daemon's
//! watches spin.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers every request at once, with no index header; counts them.
async fn fake_consul(count: Arc<AtomicUsize>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                loop {
                    let Ok(n) = conn.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                    for request in head.split("\r\n\r\n").filter(|r| r.starts_with("GET")) {
                        count.fetch_add(1, Ordering::Relaxed);
                        let path = request.split_whitespace().nth(1).unwrap_or("/");
                        let (status, body) = answer(path);
                        let reply = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if conn.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

fn answer(path: &str) -> (&'static str, &'static str) {
    let path = path.split('?').next().unwrap_or(path);
    match path {
        "/v1/catalog/services" => ("200 OK", "{\"web\":[]}"),
        "/v1/health/state/any" => ("200 OK", "[]"),
        "/v1/catalog/nodes" => ("200 OK", "[{\"Node\":\"n1\",\"Address\":\"127.0.0.1\"}]"),
        p if p.starts_with("/v1/catalog/node/") => ("200 OK", "{\"Services\":{}}"),
        _ => ("404 Not Found", ""),
    }
}

#[tokio::test]
async fn answers_without_an_index_do_not_make_the_watches_spin() {
    let count = Arc::new(AtomicUsize::new(0));
    let port = fake_consul(count.clone()).await;
    let dir = std::env::temp_dir().join(testkit::unique("fake-out"));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut daemon = tokio::process::Command::new(env!("CARGO_BIN_EXE_templater"))
        .args([
            "--consul",
            &format!("127.0.0.1:{port}"),
            "run",
            "--nginx-check",
            "",
        ])
        .args(["--output-dir", &dir.display().to_string(), "--name", "fake"])
        .env_remove("CONSUL_HTTP_TOKEN")
        .kill_on_drop(true)
        .spawn()
        .expect("run");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = daemon.kill().await;
    let n = count.load(Ordering::Relaxed);
    assert!(n > 3, "the daemon talked to the fake: {n}");
    assert!(n < 150, "{n} requests in 3 s: a watch spins");
    let _ = std::fs::remove_dir_all(&dir);
}
