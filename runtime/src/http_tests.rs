//! The endpoint's bounds, through real sockets on loopback.

use super::*;
use std::time::Instant;

struct Fixed;

impl Status for Fixed {
    fn metrics(&self) -> String {
        "up 1\n".into()
    }
    fn health(&self) -> Result<String, String> {
        Ok("ok".into())
    }
}

async fn endpoint(limits: Limits) -> (SocketAddr, CancellationToken) {
    let token = CancellationToken::new();
    let addr = serve_with(
        "127.0.0.1:0".parse().expect("addr"),
        Arc::new(Fixed),
        token.clone(),
        limits,
    )
    .await
    .expect("bind");
    (addr, token)
}

async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

#[tokio::test]
async fn get_and_head_are_answered_and_nothing_else() {
    let (addr, _t) = endpoint(Limits::default()).await;
    let get = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        get.starts_with("HTTP/1.1 200") && get.ends_with("up 1\n"),
        "{get}"
    );
    let head = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains("content-length: 5") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    let post = exchange(addr, b"POST /metrics HTTP/1.1\r\ncontent-length: 0\r\n\r\n").await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    assert!(post.contains("allow: GET, HEAD"), "{post}");
}

#[tokio::test]
async fn a_head_sent_in_pieces_is_read_whole_and_an_oversized_one_is_refused() {
    let (addr, _t) = endpoint(Limits::default()).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    for piece in ["GET /hea", "lth HTTP/1.1\r\n", "Host: x\r\n", "\r\n"] {
        s.write_all(piece.as_bytes()).await.expect("write");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("ok\n"),
        "{out}"
    );
    let big = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(20_000));
    let out = exchange(addr, big.as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_head_timeout() {
    let limits = Limits {
        head_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let (addr, _t) = endpoint(limits).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("closed by the endpoint, not by this test");
    assert!(out.is_empty(), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn connections_past_the_cap_are_turned_away_and_the_endpoint_recovers() {
    let limits = Limits {
        max_connections: 2,
        head_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let (addr, _t) = endpoint(limits).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let busy = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}
