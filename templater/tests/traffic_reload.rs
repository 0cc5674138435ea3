//! Per-colour traffic figures with the reload data plane, end to end: the real `templater run
//! --dataplane reload` (the default), a real Consul, a real plain nginx that sends its traffic
//! log over loopback syslog to the templater. On `/metrics`, exactly what the clients saw per
//! colour (a 10% canary), a backend's 500 as 5xx, a refused connection retried and counted for
//! the instance that answered, and nginx's own 502 (no live instance) as failed — the same
//! figures as the Lua twin (lua_plane_traffic.rs, lua_plane_daemon.rs).

mod common;

use std::collections::BTreeMap;

use common::*;
use testkit::id_backend::IdBackend;
use testkit::{eventually, free_port, unique, ConsulAgent, NginxServer};

/// `n` GETs of `host`, each on a new connection, counted by answer: the backend's id, or the
/// status line of anything but a 200.
async fn answers(nginx: &NginxServer, host: &str, n: usize) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let key = fetch(nginx, host).await.unwrap_or_else(|e| e.to_string());
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// The templater's `templater_upstream_requests_total` sample name for one pair and class.
fn requests(service: &str, color: &str, class: &str) -> String {
    format!("templater_upstream_requests_total{{service=\"{service}\",color=\"{color}\",class=\"{class}\"}}")
}

/// Waits until `/metrics` shows every `(color, class) == count` of `want` for `service`.
async fn metrics_show(t: &Templater, service: &str, want: &[(&str, &str, u64)]) -> String {
    eventually(WAIT, "the counts on /metrics", || async {
        let s = testkit::metrics::scrape(t.metrics_port).await?;
        for (color, class, n) in want {
            let seen = s.both(&requests(service, color, class))?;
            anyhow::ensure!(seen == *n as f64, "{color} {class}: {seen}, want {n}");
        }
        Ok(s.text)
    })
    .await
}

/// Waits until the plan the templater has live (nginx took it; the dashboard's `/api/state`)
/// serves `service` from `n` servers.
async fn live_servers(t: &Templater, service: &str, n: usize) {
    let url = format!("http://127.0.0.1:{}/api/state", t.metrics_port);
    eventually(WAIT, "the plan is live", || async {
        let state: serde_json::Value = reqwest::get(&url).await?.json().await?;
        let serving = state["services"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == service))
            .and_then(|s| s["instances"].as_array())
            .map(|i| i.iter().filter(|i| i["server"].is_string()).count());
        anyhow::ensure!(serving == Some(n), "{serving:?} servers live: {state}");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn per_colour_counts_match_what_the_clients_saw() {
    let consul = ConsulAgent::start().await;
    let nginx = NginxServer::start().await;
    let svc = unique("app");
    let host = format!("{svc}.localhost");
    let mut backends = Vec::new();
    for (i, color) in ["blue", "blue", "blue", "green"].iter().enumerate() {
        let b = IdBackend::start(&format!("{color}-{i}")).await;
        let id = format!("{svc}-{i}");
        register(&consul, &id, &svc, b.port, &[color, "public"], "passing").await;
        backends.push(b);
    }
    let t = start_templater(&consul, &nginx, &[]);
    let (code, out) = cli_text(&consul, &["flip", &svc, "blue", "--wait-live", "20"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli_text(&consul, &["canary", &svc, "10", "--wait-live", "20"]);
    assert_eq!(code, 0, "{out}");
    let vhosts = std::fs::read_to_string(nginx.conf_d().join("swarmgate-vhosts.conf"))
        .expect("vhosts installed");
    assert!(
        vhosts.contains("access_log syslog:server=127.0.0.1:") && vhosts.contains("log_format"),
        "the traffic log goes to the templater:\n{vhosts}"
    );

    let seen = answers(&nginx, &host, 500).await;
    let by_color = |color: &str| -> u64 {
        seen.iter()
            .filter(|(id, _)| id.starts_with(color))
            .map(|(_, n)| n)
            .sum()
    };
    let (blue, green) = (by_color("blue"), by_color("green"));
    assert_eq!(blue + green, 500, "all served: {seen:?}");
    assert!((35..=65).contains(&green), "about 10%: {seen:?}");
    let text = metrics_show(
        &t,
        &svc,
        &[
            ("blue", "2xx", blue),
            ("green", "2xx", green),
            ("blue", "5xx", 0),
            ("green", "failed", 0),
        ],
    )
    .await;
    let count =
        format!("templater_upstream_response_seconds_count{{service=\"{svc}\",color=\"green\"}}");
    assert_eq!(testkit::metrics::sample(&text, &count), Some(green as f64));

    let url = format!("http://127.0.0.1:{}/api/state", t.metrics_port);
    let colors = eventually(WAIT, "the dashboard's traffic figures", || async {
        let state: serde_json::Value = reqwest::get(&url).await?.json().await?;
        let service = state["services"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == svc.as_str()))
            .ok_or_else(|| anyhow::anyhow!("no {svc}: {state}"))?;
        let colors = service["colors"].clone();
        for c in colors.as_array().into_iter().flatten() {
            let rate = c["requests_per_second"].as_f64().unwrap_or(0.0);
            anyhow::ensure!(rate > 0.0, "no req/s yet: {colors}");
        }
        Ok(colors)
    })
    .await;
    println!("500 requests: blue {blue}, green {green}; dashboard: {colors}");
}

#[tokio::test]
async fn a_500_is_5xx_and_a_refused_connection_counts_for_the_instance_that_answered() {
    let consul = ConsulAgent::start().await;
    let nginx = NginxServer::start().await;
    let svc = unique("app");
    let host = format!("{svc}.localhost");
    let bad = IdBackend::start_failing("boom", 100).await;
    let bad_port = bad.port;
    let green = IdBackend::start("green-1").await;
    let dead = free_port();
    // No active colour: all three serve, weight 1. red answers 500 (not retried); blue's port
    // is closed (refused: retried on another instance).
    register(
        &consul,
        "red",
        &svc,
        bad_port,
        &["red", "public"],
        "passing",
    )
    .await;
    register(&consul, "blue", &svc, dead, &["blue", "public"], "passing").await;
    register(
        &consul,
        "green",
        &svc,
        green.port,
        &["green", "public"],
        "passing",
    )
    .await;
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_templater"));
    let t = testkit::daemons::templater(
        bin,
        &consul.url(),
        &nginx,
        &["--colors", "blue,green,red"],
        &[],
    );
    live_servers(&t, &svc, 3).await;
    let seen = answers(&nginx, &host, 30).await;
    let five = seen
        .get("HTTP/1.1 500 Internal Server Error")
        .copied()
        .unwrap_or(0);
    let ok = seen.get("green-1").copied().unwrap_or(0);
    assert_eq!(
        five + ok,
        30,
        "only red's 500s and green's answers: {seen:?}"
    );
    assert!(five > 0 && ok > 10, "{seen:?}");
    assert!(
        nginx.error_log().contains("Connection refused"),
        "blue was tried and refused:\n{}",
        nginx.error_log()
    );
    let text = metrics_show(
        &t,
        &svc,
        &[
            ("red", "5xx", five),
            ("red", "failed", 0),
            ("green", "2xx", ok),
            ("green", "5xx", 0),
        ],
    )
    .await;
    assert!(
        !text.contains(&format!(
            "templater_upstream_requests_total{{service=\"{svc}\",color=\"blue\""
        )),
        "the dead instance answered nothing, so nothing is counted for it:\n{text}"
    );
}

#[tokio::test]
async fn nginx_answering_itself_counts_failed() {
    let consul = ConsulAgent::start().await;
    let nginx = NginxServer::start().await;
    let svc = unique("app");
    let host = format!("{svc}.localhost");
    let dead = free_port();
    // The only instance's port is closed: every attempt refused, counted for its colour.
    let check = register(&consul, "blue", &svc, dead, &["blue", "public"], "passing").await;
    let t = start_templater(&consul, &nginx, &[]);
    live_servers(&t, &svc, 1).await;
    let seen = answers(&nginx, &host, 3).await;
    assert_eq!(seen.get("HTTP/1.1 502 Bad Gateway"), Some(&3), "{seen:?}");
    metrics_show(&t, &svc, &[("blue", "failed", 3), ("blue", "5xx", 3)]).await;

    // No live instance at all (`server 127.0.0.1:9 down`): nginx's `no live upstreams`,
    // counted for colour "" as the Lua data plane does.
    set_check(&consul, &check, "critical").await;
    live_servers(&t, &svc, 0).await;
    assert!(upstreams(&nginx).contains("127.0.0.1:9 down"));
    let seen = answers(&nginx, &host, 5).await;
    assert_eq!(seen.get("HTTP/1.1 502 Bad Gateway"), Some(&5), "{seen:?}");
    metrics_show(
        &t,
        &svc,
        &[("", "failed", 5), ("", "5xx", 5), ("blue", "failed", 3)],
    )
    .await;
}

#[test]
fn the_traffic_listener_is_loopback_and_reload_mode_only() {
    for (extra, says) in [
        (&["--traffic-listen", "0.0.0.0:5140"][..], "loopback"),
        (&["--traffic-listen", "10.1.2.3:5140"][..], "loopback"),
        (&["--traffic-listen", "syslog"][..], "loopback IP:PORT"),
        (
            &["--dataplane", "lua", "--traffic-listen", "127.0.0.1:5140"][..],
            "--dataplane reload",
        ),
    ] {
        let (code, err) = run_refused(extra);
        assert_eq!(code, Some(64), "{extra:?}: {err}");
        assert!(err.contains(says), "{extra:?}: {err}");
    }
}
