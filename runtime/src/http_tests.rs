//! The server's bounds and routes, through real sockets on loopback.

use super::*;
use crate::metrics::{Counter, Families, Family};
use std::time::Instant;
use tokio::io::AsyncReadExt;

struct Fixed {
    exposition: Exposition,
    healthy: bool,
}

impl Status for Fixed {
    fn exposition(&self) -> &Exposition {
        &self.exposition
    }
    fn health(&self) -> Result<String, String> {
        if self.healthy {
            Ok("ok".into())
        } else {
            Err("consul_up=0".into())
        }
    }
}

fn fixed(healthy: bool) -> Arc<Fixed> {
    let mut families = Families::default();
    families.counter("up", "Always one").inc();
    Arc::new(Fixed {
        exposition: families.finish(),
        healthy,
    })
}

async fn server_of(status: Arc<dyn Status>, limits: Limits) -> (SocketAddr, CancellationToken) {
    let token = CancellationToken::new();
    let router = status_routes(status).merge(Router::new().route("/other", get(|| async { "x" })));
    let addr = serve_with(
        "127.0.0.1:0".parse().expect("addr"),
        router,
        token.clone(),
        limits,
    )
    .await
    .expect("bind");
    (addr, token)
}

async fn server(limits: Limits) -> (SocketAddr, CancellationToken) {
    server_of(fixed(true), limits).await
}

/// Sends `request` and reads until the server closes.
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

/// Waits (at most 5 s) for the server to close `s` without a further byte; answers how long.
async fn closed_unanswered(s: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("closed by the server, not by this test");
    assert!(out.is_empty(), "{out:?}");
    started.elapsed()
}

#[tokio::test]
async fn get_and_head_are_answered_and_nothing_else() {
    let (addr, _t) = server(Limits::default()).await;
    let get = exchange(addr, b"GET /metrics HTTP/1.1\r\nconnection: close\r\n\r\n").await;
    assert!(get.starts_with("HTTP/1.1 200"), "{get}");
    assert!(
        get.contains("\r\n\r\n# HELP up_total Always one.\n"),
        "{get}"
    );
    let head = exchange(addr, b"HEAD /health HTTP/1.1\r\nconnection: close\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains("content-length: 3") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let req =
            format!("{method} /metrics HTTP/1.1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        let out = exchange(addr, req.as_bytes()).await;
        assert!(out.starts_with("HTTP/1.1 405"), "{out}");
        assert!(out.contains("allow: GET, HEAD"), "{out}");
    }
    let elsewhere = exchange(addr, b"PUT /nope HTTP/1.1\r\nconnection: close\r\n\r\n").await;
    assert!(elsewhere.starts_with("HTTP/1.1 405"), "{elsewhere}");
    let merged = exchange(addr, b"GET /other HTTP/1.1\r\nconnection: close\r\n\r\n").await;
    assert!(
        merged.starts_with("HTTP/1.1 200") && merged.ends_with("x"),
        "{merged}"
    );
    let missing = exchange(addr, b"GET /nope HTTP/1.1\r\nconnection: close\r\n\r\n").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}

#[tokio::test]
async fn metrics_follow_the_accept_header_and_health_the_status() {
    let (addr, _t) = server_of(fixed(false), Limits::default()).await;
    let om = exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\naccept: application/openmetrics-text;version=1.0.0;q=0.5,text/plain;q=0.4\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(
        om.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{om}"
    );
    assert!(
        om.contains("# TYPE up counter\n") && om.ends_with("# EOF\n"),
        "{om}"
    );
    let text = exchange(addr, b"GET /metrics HTTP/1.1\r\nconnection: close\r\n\r\n").await;
    assert!(
        text.contains("content-type: text/plain; version=0.0.4"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE up_total counter\n") && !text.contains("# EOF"),
        "{text}"
    );
    let health = exchange(addr, b"GET /health HTTP/1.1\r\nconnection: close\r\n\r\n").await;
    assert!(
        health.starts_with("HTTP/1.1 503") && health.ends_with("consul_up=0\n"),
        "{health}"
    );
}

#[tokio::test]
async fn a_head_sent_in_pieces_is_read_whole_and_an_oversized_one_is_refused() {
    let (addr, _t) = server(Limits::default()).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    for piece in [
        "GET /hea",
        "lth HTTP/1.1\r\n",
        "connection: close\r\n",
        "\r\n",
    ] {
        s.write_all(piece.as_bytes()).await.expect("write");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("ok\n"),
        "{out}"
    );
    // Just under the limit is fine; just over it, or a head that never ends, is refused.
    let fits = format!(
        "GET /health HTTP/1.1\r\nx: {}\r\nconnection: close\r\n\r\n",
        "a".repeat(7_900)
    );
    assert!(exchange(addr, fits.as_bytes())
        .await
        .starts_with("HTTP/1.1 200"));
    let big = format!("GET /health HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(9_000));
    let out = exchange(addr, big.as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    let endless = format!("GET /health HTTP/1.1\r\nx: {}", "a".repeat(20_000));
    let out = exchange(addr, endless.as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
}

#[tokio::test]
async fn a_silent_client_and_an_idle_keep_alive_are_dropped_after_the_head_timeout() {
    let limits = Limits {
        head_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let (addr, _t) = server(limits).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\n")
        .await
        .expect("write");
    assert!(closed_unanswered(&mut s).await < Duration::from_secs(3));

    // Keep-alive: two answers on one connection, then it is closed once idle.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    for _ in 0..2 {
        s.write_all(b"GET /health HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.expect("read");
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"),
            "{answer}"
        );
    }
    let idle = closed_unanswered(&mut s).await;
    assert!(idle >= Duration::from_millis(250), "{idle:?}");
}

#[tokio::test]
async fn connections_past_the_cap_are_turned_away_and_the_server_recovers() {
    let limits = Limits {
        max_connections: 2,
        head_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let (addr, _t) = server(limits).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let busy = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\nconnection: close\r\n\r\n").await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

#[tokio::test]
async fn a_client_that_stops_reading_loses_its_slot() {
    // An exposition far larger than what the sockets buffer.
    let mut families = Families::default();
    let many: Family<Vec<(String, String)>, Counter> =
        families.add("many", "Series", Family::default());
    for i in 0..60_000 {
        many.get_or_create(&vec![("series".into(), format!("{i:0>100}"))])
            .inc();
    }
    let status = Arc::new(Fixed {
        exposition: families.finish(),
        healthy: true,
    });
    let limits = Limits {
        max_connections: 1,
        head_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let (addr, _t) = server_of(status, limits).await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small buffer");
    let mut stalled = socket.connect(addr).await.expect("connect");
    stalled
        .write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let busy = exchange(addr, b"GET /health HTTP/1.1\r\nconnection: close\r\n\r\n").await;
    assert!(
        busy.starts_with("HTTP/1.1 503"),
        "the stalled client holds the slot: {busy}"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let ok = exchange(addr, b"GET /health HTTP/1.1\r\nconnection: close\r\n\r\n").await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    drop(stalled);
}
