//! The Lua data plane's traffic counters through a real nginx (swarmgate.traffic, `GET /traffic`
//! on the control endpoint): per colour counts match what the client saw exactly, 5xx from a
//! backend, a retried request counted for the peer that answered, a service without a live peer
//! counted as failed. The templater side (metrics, dashboard): lua_plane_daemon.rs.

mod lua_plane;

use std::time::Duration;

use lua_plane::*;
use serde_json::Value;
use testkit::id_backend::IdBackend;
use testkit::{eventually, free_port};

/// `GET /traffic`, parsed.
async fn traffic(p: &Plane) -> Value {
    let (status, body) =
        testkit::lua_nginx::control_request(&p.nginx.control, "GET", "/traffic", b"")
            .await
            .expect("GET /traffic");
    assert_eq!(status, 200, "GET /traffic: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET /traffic is JSON ({e}): {body}"))
}

/// Waits until `app`'s figures of `color` have `field` == `want` (the log phase runs just after
/// the answer is sent), and answers the whole document.
async fn until(p: &Plane, color: &str, field: &str, want: u64) -> Value {
    eventually(Duration::from_secs(5), "traffic figures", || async {
        let t = traffic(p).await;
        match t["services"]["app"][color][field].as_u64() {
            Some(v) if v == want => Ok(t),
            _ => Err(format!("{color}.{field} != {want}: {t}")),
        }
    })
    .await
}

fn field(t: &Value, color: &str, name: &str) -> u64 {
    t["services"]["app"][color][name].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn counts_per_colour_match_what_the_client_saw() {
    let blues = [
        IdBackend::start("blue-1").await,
        IdBackend::start("blue-2").await,
        IdBackend::start("blue-3").await,
    ];
    let green = IdBackend::start("green-1").await;
    // 10% canary: 3 blue at 30, 1 green at 10.
    let mut peers: Vec<_> = blues
        .iter()
        .map(|b| peer(&b.id, b.port, 30, false))
        .collect();
    peers.push(peer(&green.id, green.port, 10, false));
    let p = plane(2, Some(&doc(1, &peers))).await;
    let t = traffic(&p).await;
    assert_eq!(
        t["services"],
        serde_json::json!({}),
        "nothing counted yet: {t}"
    );
    assert!(t["epoch"].as_f64().is_some_and(|e| e > 0.0), "{t}");

    let counts = tally(&p.client(), &p.url(), 400).await;
    let blue: usize = blues
        .iter()
        .map(|b| counts.get(&b.id).copied().unwrap_or(0))
        .sum();
    let green_n = counts.get(&green.id).copied().unwrap_or(0);
    assert_eq!(blue + green_n, 400, "all served: {counts:?}");
    assert_eq!(green_n, 40, "exact 10%: {counts:?}");

    let t = until(&p, "green", "requests", green_n as u64).await;
    let t = if field(&t, "blue", "requests") == blue as u64 {
        t
    } else {
        until(&p, "blue", "requests", blue as u64).await
    };
    for (color, n) in [("blue", blue as u64), ("green", green_n as u64)] {
        assert_eq!(field(&t, color, "2xx"), n, "{t}");
        for other in ["3xx", "4xx", "5xx", "failed"] {
            assert_eq!(field(&t, color, other), 0, "{color} {other}: {t}");
        }
        let buckets = t["services"]["app"][color]["buckets"]
            .as_array()
            .expect("buckets");
        assert_eq!(buckets.len(), 14, "{t}");
        let in_buckets: u64 = buckets.iter().filter_map(Value::as_u64).sum();
        assert_eq!(in_buckets, n, "every request in a bucket: {t}");
        let sum = t["services"]["app"][color]["sum_seconds"]
            .as_f64()
            .expect("sum");
        assert!(sum >= 0.0 && sum < n as f64, "{t}");
    }
    println!("400 requests: blue {blue}, green {green_n}; /traffic: {t}");
}

#[tokio::test]
async fn a_500_counts_5xx_and_a_retry_counts_for_the_peer_that_answered() {
    let bad = IdBackend::start_failing("boom", 100).await;
    let bad_port = bad.port;
    let green = IdBackend::start("green-1").await;
    // red answers 500 (not retried); blue's port is closed (refused, retried on another peer).
    let dead = free_port();
    let peers = [
        peer("red-1", bad_port, 1, false),
        peer("blue-1", dead, 1, false),
        peer(&green.id, green.port, 1, false),
    ];
    let p = plane(1, Some(&doc(1, &peers))).await;
    let client = p.client();
    let mut answers = std::collections::BTreeMap::new();
    for _ in 0..30 {
        let r = client.get(p.url()).send().await.expect("answered");
        let status = r.status().as_u16();
        let body = r.text().await.expect("body");
        *answers.entry((status, body)).or_insert(0u64) += 1;
    }
    let five = answers
        .get(&(500, "boom".to_string()))
        .copied()
        .unwrap_or(0);
    let ok = answers.get(&(200, green.id.clone())).copied().unwrap_or(0);
    assert_eq!(
        five + ok,
        30,
        "only red's 500s and green's answers: {answers:?}"
    );
    assert!(five > 0 && ok > 10, "{answers:?}");

    let t = until(&p, "green", "requests", ok).await;
    let t = if field(&t, "red", "requests") == five {
        t
    } else {
        until(&p, "red", "requests", five).await
    };
    assert_eq!(field(&t, "red", "5xx"), five, "{t}");
    assert_eq!(field(&t, "red", "failed"), 0, "red answered: {t}");
    assert_eq!(field(&t, "green", "2xx"), ok, "{t}");
    assert!(
        t["services"]["app"].get("blue").is_none(),
        "the dead peer answered nothing, so nothing is counted for it: {t}"
    );
    println!("answers {answers:?}; /traffic: {t}");
}

#[tokio::test]
async fn a_service_without_a_live_peer_counts_failed() {
    let dead = free_port();
    let p = plane(1, None).await;
    let client = p.client();
    // Not in the state yet, then no peer at all: counted for colour "" (no peer was tried).
    for i in 0..5 {
        if i == 2 {
            p.push_ok(&doc(1, &[])).await;
        }
        let r = client.get(p.url()).send().await.expect("answered");
        assert_eq!(r.status().as_u16(), 502);
    }
    let t = until(&p, "", "failed", 5).await;
    assert_eq!(field(&t, "", "requests"), 5, "{t}");
    assert_eq!(field(&t, "", "5xx"), 5, "{t}");

    // Its only peer is down: every attempt failed, counted for that peer's colour.
    p.push_ok(&doc(2, &[peer("blue-1", dead, 1, false)])).await;
    for _ in 0..3 {
        let r = client.get(p.url()).send().await.expect("answered");
        assert_eq!(r.status().as_u16(), 502);
    }
    let t = until(&p, "blue", "failed", 3).await;
    assert_eq!(field(&t, "blue", "5xx"), 3, "{t}");
    assert_eq!(field(&t, "blue", "2xx"), 0, "{t}");
    println!("/traffic: {t}");
}

/// Requests/s through the same upstream with and without the counters (a server whose own
/// empty `log_by_lua_block` replaces the http-level hook), interleaved rounds in one nginx.
/// Ignored (timing on a shared machine): `cargo test -p templater --test lua_plane_traffic
/// -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn overhead_of_the_counters() {
    let backends = [
        IdBackend::start("blue-1").await,
        IdBackend::start("green-1").await,
    ];
    let peers: Vec<_> = backends
        .iter()
        .map(|b| peer(&b.id, b.port, 1, false))
        .collect();
    let p = plane(1, Some(&doc(1, &peers))).await;
    let (counted, uncounted) = (free_port(), free_port());
    p.nginx.write_conf(
        "40-bench.conf",
        &format!(
            "server {{ listen 127.0.0.1:{counted}; location / {{ proxy_pass http://sg_app; }} }}\n\
             server {{ listen 127.0.0.1:{uncounted}; location / {{ proxy_pass http://sg_app; \
             log_by_lua_block {{ }} }} }}\n"
        ),
    );
    p.nginx.reload().await;
    let round = |port: u16| async move {
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/");
        let started = std::time::Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move {
                    for _ in 0..500 {
                        get(&client, &url).await.expect("served");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("client");
        }
        4000.0 / started.elapsed().as_secs_f64()
    };
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        with.push(round(counted).await);
        without.push(round(uncounted).await);
    }
    let t = traffic(&p).await;
    let n: u64 = ["blue", "green"]
        .iter()
        .map(|c| field(&t, c, "requests"))
        .sum();
    assert_eq!(n, 20_000, "only the counted server counts: {t}");
    let (w, wo) = (percentile(&mut with, 50), percentile(&mut without, 50));
    println!(
        "counters: {w:.0} req/s with, {wo:.0} req/s without (median of 5 rounds of 4000, 8 keep-alive clients): {:+.1}%",
        (w - wo) / wo * 100.0
    );
}
