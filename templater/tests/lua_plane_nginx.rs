//! The Lua data plane's nginx side through a real nginx with libnginx-mod-http-lua: pushes that
//! move traffic without a reload (also under keep-alive load and past a long-lived upgraded
//! connection), refused pushes that keep the previous state, the state file at start and across
//! a reload, and no control on the public listener (the balancer itself: lua_plane_balancer.rs).
//! Figures print with `--nocapture`; nothing here is timed.

mod lua_plane;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lua_plane::*;
use testkit::id_backend::{IdBackend, Upgraded};

#[tokio::test]
async fn a_push_moves_the_next_request_without_a_reload() {
    let (blue, green) = (
        IdBackend::start("blue-1").await,
        IdBackend::start("green-1").await,
    );
    let p = plane(2, None).await;
    let workers = p.nginx.server.workers();
    let client = p.client();
    let url = p.url();
    let mut latencies = Vec::new();
    for v in 1..=50u64 {
        let to = if v % 2 == 0 { &green } else { &blue };
        let started = Instant::now();
        p.push_ok(&doc(v, &[peer(&to.id, to.port, 1, false)])).await;
        // The push answered: the very next request follows it.
        assert_eq!(
            get(&client, &url).await.as_deref(),
            Ok(to.id.as_str()),
            "push {v}"
        );
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(p.nginx.held_version().await, Some(v));
    }
    assert_eq!(
        p.nginx.server.workers(),
        workers,
        "no reload: the same workers"
    );
    assert!(
        !p.nginx.server.error_log().contains("reconfiguring"),
        "no reload"
    );
    println!(
        "push -> next request served by the new peer, 50 pushes: p50 {:.2} ms, p90 {:.2} ms",
        percentile(&mut latencies, 50),
        percentile(&mut latencies, 90)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keep_alive_clients_see_no_failure_across_30_pushes() {
    let (blue, green) = (
        IdBackend::start("blue-1").await,
        IdBackend::start("green-1").await,
    );
    let p = plane(2, Some(&doc(1, &[peer(&blue.id, blue.port, 1, false)]))).await;
    let workers = p.nginx.server.workers();
    let client = p.client();
    let (stop, ok, failed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (client.clone(), p.url());
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match get(&client, &url).await {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            eprintln!("failed: {e}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    for v in 2..=31u64 {
        let to = if v % 2 == 0 { &green } else { &blue };
        p.push_ok(&doc(v, &[peer(&to.id, to.port, 1, false)])).await;
        tokio::time::sleep(Duration::from_millis(30)).await; // pacing, not waiting
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client task");
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!(
        "keep-alive load across 30 pushes (8 tasks, one pooled client): {ok} ok, {failed} failed"
    );
    assert!(ok > 100, "the load ran: {ok}");
    assert_eq!(failed, 0, "no failed request");
    assert_eq!(p.nginx.server.workers(), workers, "no reload");
}

#[tokio::test]
async fn an_upgraded_connection_outlives_10_pushes() {
    let (blue, green) = (
        IdBackend::start("blue-1").await,
        IdBackend::start("green-1").await,
    );
    let p = plane(2, Some(&doc(1, &[peer(&blue.id, blue.port, 1, false)]))).await;
    let mut ws = Upgraded::open(p.port, HOST).await;
    assert_eq!(ws.echo("before").await, "blue-1:before");
    for v in 2..=11u64 {
        let to = if v % 2 == 0 { &green } else { &blue };
        p.push_ok(&doc(v, &[peer(&to.id, to.port, 1, false)])).await;
    }
    assert_eq!(get(&p.client(), &p.url()).await.as_deref(), Ok("blue-1"));
    p.push_ok(&doc(12, &[peer(&green.id, green.port, 1, false)]))
        .await;
    assert_eq!(get(&p.client(), &p.url()).await.as_deref(), Ok("green-1"));
    assert_eq!(ws.echo("after").await, "blue-1:after", "still open");
}

#[tokio::test]
async fn malformed_pushes_are_refused_and_the_previous_state_stays() {
    let (blue, green) = (
        IdBackend::start("blue-1").await,
        IdBackend::start("green-1").await,
    );
    let p = plane(1, None).await;
    p.push_ok(&doc(5, &[peer(&blue.id, blue.port, 1, false)]))
        .await;
    let good = peer(&green.id, green.port, 1, false);
    let with = |field: &str, value: serde_json::Value| {
        let mut bad = good.clone();
        bad[field] = value;
        doc(9, &[bad])
    };
    let too_big = format!("{{\"version\":9,\"pad\":\"{}\"}}", "x".repeat(33 << 20));
    let cases: Vec<(&str, String, u16)> = vec![
        ("bad JSON", "{\"version\":9,".into(), 400),
        ("host name", with("address", "green.internal".into()), 400),
        ("port 0", with("port", 0.into()), 400),
        ("port 70000", with("port", 70000.into()), 400),
        ("weight 0", with("weight", 0.into()), 400),
        ("weight 1.5", with("weight", 1.5.into()), 400),
        ("backup string", with("backup", "no".into()), 400),
        ("missing version", r#"{"services":{}}"#.into(), 400),
        (
            "bad name",
            r#"{"version":9,"services":{"a b":{"peers":[]}}}"#.into(),
            400,
        ),
        ("stale version", doc(4, std::slice::from_ref(&good)), 409),
        ("body too big", too_big, 413),
    ];
    for (what, body, want) in cases {
        let (status, answer) = p.nginx.push(&body).await;
        assert_eq!(status, want, "{what}: {answer}");
        assert_eq!(
            p.nginx.held_version().await,
            Some(5),
            "{what}: the previous state stays"
        );
        assert_eq!(
            get(&p.client(), &p.url()).await.as_deref(),
            Ok("blue-1"),
            "{what}: traffic unchanged"
        );
        println!("{what}: {status} {}", answer.lines().next().unwrap_or(""));
    }
    let (status, answer) = p.nginx.push(&doc(5, &[good])).await;
    assert_eq!(
        (status, answer.as_str()),
        (200, r#"{"version":5}"#),
        "the held version again: idempotent"
    );
}

#[tokio::test]
async fn a_fresh_nginx_serves_the_state_file_and_a_reload_keeps_a_newer_push() {
    let (blue, green) = (
        IdBackend::start("blue-1").await,
        IdBackend::start("green-1").await,
    );
    let p = plane(2, Some(&doc(5, &[peer(&green.id, green.port, 1, false)]))).await;
    assert_eq!(
        get(&p.client(), &p.url()).await.as_deref(),
        Ok("green-1"),
        "the first request follows the file"
    );
    assert_eq!(p.nginx.held_version().await, Some(5));

    p.push_ok(&doc(6, &[peer(&blue.id, blue.port, 1, false)]))
        .await;
    p.nginx.reload().await;
    assert_eq!(
        get(&p.client(), &p.url()).await.as_deref(),
        Ok("blue-1"),
        "the pushed v6 beats the file's v5"
    );
    assert_eq!(p.nginx.held_version().await, Some(6));

    std::fs::write(
        &p.nginx.state_file,
        doc(7, &[peer(&green.id, green.port, 1, false)]),
    )
    .expect("state file");
    p.nginx.reload().await;
    assert_eq!(
        get(&p.client(), &p.url()).await.as_deref(),
        Ok("green-1"),
        "a newer file wins at reload"
    );
    assert_eq!(p.nginx.held_version().await, Some(7));
}

#[tokio::test]
async fn the_control_endpoint_is_not_on_the_public_listener() {
    let blue = IdBackend::start("blue-1").await;
    let p = plane(1, None).await;
    p.push_ok(&doc(3, &[peer(&blue.id, blue.port, 1, false)]))
        .await;
    let client = reqwest::Client::new();
    let evil = doc(99, &[]);
    for host in ["localhost", "swarmgate-control", HOST] {
        let url = format!("http://127.0.0.1:{}/state", p.port);
        let got = client
            .get(&url)
            .header("Host", host)
            .send()
            .await
            .expect("answered");
        let (status, body) = (got.status().as_u16(), got.text().await.unwrap_or_default());
        assert!(
            !body.contains("\"version\""),
            "GET /state on the public listener ({host}): {status} {body}"
        );
        if host != HOST {
            assert_eq!(status, 404, "{host}: {body}");
        }
        let put = client
            .put(&url)
            .header("Host", host)
            .body(evil.clone())
            .send()
            .await
            .expect("answered");
        if host != HOST {
            assert_eq!(put.status().as_u16(), 404, "{host}");
        }
    }
    assert_eq!(
        p.nginx.held_version().await,
        Some(3),
        "no public request changed the state"
    );
}

#[tokio::test]
async fn a_push_of_500_services_by_4_peers_is_taken_whole() {
    let blue = IdBackend::start("blue-1").await;
    let p = plane(2, None).await;
    let mut services = serde_json::Map::new();
    for s in 0..500u32 {
        let peers: Vec<_> = (0..4u32)
            .map(|i| {
                peer_at(
                    &format!("blue-{s}-{i}"),
                    &format!("10.{}.{}.{i}", s / 250, s % 250),
                    8080,
                    9,
                    i == 3,
                )
            })
            .collect();
        services.insert(
            format!("svc-{s}"),
            serde_json::json!({"sticky": null, "peers": peers}),
        );
    }
    services.insert(
        "app".into(),
        serde_json::json!({"sticky": null, "peers": [peer(&blue.id, blue.port, 1, false)]}),
    );
    let body = serde_json::json!({"version": 1, "services": services}).to_string();
    let started = Instant::now();
    p.push_ok(&body).await;
    let pushed = started.elapsed();
    assert_eq!(get(&p.client(), &p.url()).await.as_deref(), Ok("blue-1"));
    let served = started.elapsed();
    let (status, held) = p.nginx.control("GET", b"").await;
    assert_eq!(status, 200);
    let held: serde_json::Value = serde_json::from_str(&held).expect("JSON");
    assert_eq!(held["services"].as_object().map(|s| s.len()), Some(501));
    println!(
        "500 services x 4 peers: {} bytes pushed in {:.1} ms; first request after it served at {:.1} ms",
        body.len(),
        pushed.as_secs_f64() * 1000.0,
        served.as_secs_f64() * 1000.0
    );
}

#[tokio::test]
async fn lua_units_pass() {
    let p = plane(1, None).await;
    let answer = reqwest::get(format!("http://127.0.0.1:{}/_unit", p.spread))
        .await
        .expect("answered");
    let status = answer.status();
    let body = answer.text().await.expect("body");
    println!("Lua unit tests: {}", body.trim());
    assert!(
        status.is_success() && body.starts_with("ok "),
        "{status}: {body}"
    );
}

#[test]
fn the_control_listener_is_the_unix_socket_or_the_loopback_port_given() {
    let conf = |socket: &str| {
        render(
            "dataplane.conf.j2",
            serde_json::json!({"lua_dir": "/opt/sg/lua", "state_file": "/run/sg/state.json",
                               "control_socket": socket, "dict_size": "16m"}),
        )
    };
    let unix = conf("/run/nginx/swarmgate.sock");
    assert!(
        unix.contains("    listen unix:/run/nginx/swarmgate.sock;\n"),
        "{unix}"
    );
    let tcp = conf("127.0.0.1:9180");
    assert!(tcp.contains("    listen 127.0.0.1:9180;\n"), "{tcp}");
    assert!(tcp.contains(r#"load_file("/run/sg/state.json")"#), "{tcp}");
    assert!(
        tcp.contains(r#"lua_package_path "/opt/sg/lua/?.lua;;";"#),
        "{tcp}"
    );
}
