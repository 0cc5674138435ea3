//! The Lua data plane end to end: the real `templater run --dataplane lua`, a real Consul, a
//! real nginx with the Lua module. Flips and canary changes reach nginx without a reload (same
//! workers, `templater_reloads_total` unchanged) with exact shares; keep-alive clients see no
//! failure across 30 flips, canary changes, scaling and a failing check, and an upgraded
//! connection outlives them all; a new service renders and reloads once; nginx keeps serving with
//! the templater killed, and a restarted nginx serves the state file before any push;
//! `--wait-live` returns once nginx holds the version; per-colour traffic reaches `/metrics` and
//! the dashboard. Push latency is printed (`--nocapture`).

mod common;

use std::time::{Duration, Instant};

use common::lua_edge::{cli_async, LuaEdge};
use common::*;
use testkit::id_backend::{IdBackend, Upgraded};
use testkit::{eventually, unique, Backend, ConsulAgent, NginxServer};

async fn ok(consul: &ConsulAgent, args: &[&str]) -> String {
    let (code, out) = cli_async(consul, args).await;
    assert_eq!(code, 0, "templater {args:?}: {out}");
    out
}

async fn reloads(t: &Templater) -> f64 {
    eventually(WAIT, "metrics answer", || async {
        testkit::metrics::sample(&t.metrics().await, "templater_reloads_total")
            .ok_or_else(|| anyhow::anyhow!("no templater_reloads_total"))
    })
    .await
}

/// Registers `n` instances of `color` for `service`, public.
async fn instances(consul: &ConsulAgent, service: &str, color: &str, n: usize) -> Vec<Backend> {
    let mut backends = Vec::new();
    for i in 0..n {
        let b = Backend::start(color);
        let id = format!("{service}-{color}-{i}");
        register(consul, &id, service, b.port, &[color, "public"], "passing").await;
        backends.push(b);
    }
    backends
}

/// How a flip is made in [`timed_flip`].
#[derive(Clone, Copy)]
enum FlipBy {
    /// `templater flip` (a process start and the CLI's reads and check-and-set included).
    Cli,
    /// A bare KV write of `<prefix>/<service>/active` (the part the data plane owns).
    Kv,
}

/// Flips `service` to `color` without waiting and answers how long until nginx serves it.
async fn timed_flip(
    consul: &ConsulAgent,
    nginx: &NginxServer,
    (host, service): (&str, &str),
    color: &str,
    by: FlipBy,
) -> Duration {
    let started = Instant::now();
    match by {
        FlipBy::Cli => drop(ok(consul, &["flip", service, color]).await),
        FlipBy::Kv => consul
            .kv_put(&format!("deploy/{service}/active"), color)
            .await
            .expect("kv write"),
    }
    loop {
        if fetch(nginx, host).await.ok().as_deref() == Some(color) {
            return started.elapsed();
        }
        assert!(started.elapsed() < WAIT, "{color} never served");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// p50 and max of 10 alternating flips, one at a time.
async fn flip_latency(
    consul: &ConsulAgent,
    nginx: &NginxServer,
    target: (&str, &str),
    by: FlipBy,
) -> (Duration, Duration) {
    let mut latencies = Vec::new();
    for i in 0..10 {
        // Spaced past the quiescence MIN (20 ms here): each flip is an isolated change, as a
        // deploy's is, not part of a burst that quiescence coalesces.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let color = if i % 2 == 0 { "green" } else { "blue" };
        latencies.push(timed_flip(consul, nginx, target, color, by).await);
    }
    latencies.sort();
    (
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flips_and_canary_reach_nginx_without_a_reload() {
    let consul = ConsulAgent::start().await;
    let edge = LuaEdge::start().await;
    let svc = unique("app");
    let host = format!("{svc}.localhost");
    let _blue = instances(&consul, &svc, "blue", 3).await;
    let _green = instances(&consul, &svc, "green", 1).await;
    let t = edge.templater(&consul, &[]);
    ok(&consul, &["flip", &svc, "blue", "--wait-live", "20"]).await;
    serves_only(edge.nginx(), &host, "blue", 20).await;
    let workers = edge.nginx().workers();
    let reloads_before = reloads(&t).await;

    let out = ok(&consul, &["flip", &svc, "green", "--wait-live", "20"]).await;
    assert!(out.contains("live on"), "{out}");
    // --wait-live returned: nginx holds the version, so the very next requests are green.
    for _ in 0..50 {
        assert_eq!(fetch(edge.nginx(), &host).await.expect("served"), "green");
    }
    // The version the edge reports is the one nginx says it holds.
    let report: serde_json::Value =
        serde_json::from_str(&ok(&consul, &["status", &svc, "--json"]).await).expect("json");
    let reported = report["edges"][0]["live_version"].as_u64();
    assert!(reported.is_some(), "{report}");
    assert_eq!(reported, edge.lua.held_version().await, "{report}");
    ok(&consul, &["flip", &svc, "blue", "--wait-live", "20"]).await;
    ok(&consul, &["canary", &svc, "10", "--wait-live", "20"]).await;
    let counts = tally(edge.nginx(), &host, 2000).await;
    let green = *counts.get("green").unwrap_or(&0) as f64 / 20.0;
    println!("lua data plane: 10% canary over 2000 requests landed {green}% ({counts:?})");
    assert!(
        (9.0..=11.0).contains(&green),
        "10% canary landed {green}%: {counts:?}"
    );

    ok(&consul, &["canary", &svc, "0", "--wait-live", "20"]).await;
    for by in [FlipBy::Cli, FlipBy::Kv] {
        let (p50, max) = flip_latency(&consul, edge.nginx(), (&host, &svc), by).await;
        let what = match by {
            FlipBy::Cli => "`templater flip` started",
            FlipBy::Kv => "KV active written",
        };
        println!(
            "lua data plane: {what} -> nginx serves the new colour: p50 {p50:?}, max {max:?} (10 flips)"
        );
    }

    assert_eq!(
        edge.nginx().workers(),
        workers,
        "nginx's workers are the same: no reload"
    );
    assert_eq!(
        reloads(&t).await,
        reloads_before,
        "templater_reloads_total unchanged"
    );
    let exposition = t.metrics().await;
    let pushes = testkit::metrics::sample(&exposition, "templater_pushes_total").unwrap_or(0.0);
    assert!(pushes >= 20.0, "every flip is a push: {pushes}");
    let live = testkit::metrics::sample(&exposition, "templater_dataplane_version").unwrap_or(0.0);
    let held = edge.lua.held_version().await;
    assert_eq!(
        Some(live as u64),
        held,
        "the version on /metrics is the one nginx holds"
    );
    let status = ok(&consul, &["status", &svc]).await;
    assert!(
        status.contains("(lua, nginx holds state version"),
        "status shows the data plane and its live version:\n{status}"
    );
}

/// Registers an in-process backend answering `color` (and echoing on an upgraded connection).
async fn id_instance(
    consul: &ConsulAgent,
    service: &str,
    color: &str,
    i: usize,
) -> (String, String, IdBackend) {
    let b = IdBackend::start(color).await;
    let id = format!("{service}-{color}-{i}");
    let check = register(consul, &id, service, b.port, &[color, "public"], "passing").await;
    (id, check, b)
}

/// Waits until the state nginx holds has `n` peers for `service`.
async fn peers_become(edge: &LuaEdge, service: &str, n: usize) {
    eventually(WAIT, "nginx's state has the peers", || async {
        let (_, body) = edge.lua.control("GET", b"").await;
        let doc: serde_json::Value = serde_json::from_str(&body)?;
        let peers = doc["services"][service]["peers"]
            .as_array()
            .map_or(0, Vec::len);
        anyhow::ensure!(peers == n, "{peers} peers: {body}");
        Ok(())
    })
    .await;
}

/// Every kind of traffic change while keep-alive clients run: 30 flips, canary changes, scale
/// up and down, an instance failing its check. Not one request fails, nginx never reloads, and
/// an upgraded connection opened before them all still answers after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_traffic_change_under_keep_alive_load_fails_nothing_and_reloads_nothing() {
    let consul = ConsulAgent::start().await;
    let edge = LuaEdge::start().await;
    let svc = unique("ka");
    let host = format!("{svc}.localhost");
    let mut blue = Vec::new();
    let mut green = Vec::new();
    for i in 0..2 {
        blue.push(id_instance(&consul, &svc, "blue", i).await);
        green.push(id_instance(&consul, &svc, "green", i).await);
    }
    let t = edge.templater(&consul, &[]);
    ok(&consul, &["flip", &svc, "blue", "--wait-live", "20"]).await;
    serves_only(edge.nginx(), &host, "blue", 10).await;
    let (workers, reloads_before) = (edge.nginx().workers(), reloads(&t).await);
    let mut ws = Upgraded::open(edge.nginx().port, &host).await;
    assert_eq!(ws.echo("before").await, "blue:before");

    let load = testkit::http::Load::keep_alive(edge.nginx().port, &host, 8);
    for i in 0..30 {
        let color = if i % 2 == 0 { "green" } else { "blue" };
        ok(&consul, &["flip", &svc, color, "--wait-live", "20"]).await;
    }
    for percent in ["10", "50", "0"] {
        ok(&consul, &["canary", &svc, percent, "--wait-live", "20"]).await;
    }
    // Scale up: a third blue instance serves; scale down: one goes.
    blue.push(id_instance(&consul, &svc, "blue", 2).await);
    peers_become(&edge, &svc, 5).await;
    let (gone, _, _) = green.pop().expect("a green instance");
    consul
        .put_json(
            &format!("/v1/agent/service/deregister/{gone}"),
            &serde_json::json!({}),
        )
        .await
        .expect("deregister");
    peers_become(&edge, &svc, 4).await;
    // An instance failing its check leaves rotation.
    let (_, failing, _) = &blue[0];
    set_check(&consul, failing, "critical").await;
    peers_become(&edge, &svc, 3).await;
    let totals = load.finish().await;
    let (served, errors) = (totals.ok, totals.errors);

    println!(
        "lua data plane: 30 flips, 3 canary changes, scale up and down, a failing check under 8 keep-alive clients: {served} served, {} failed",
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "failures: {:?}",
        &errors[..errors.len().min(5)]
    );
    assert!(served > 100, "the clients ran: {served}");
    assert_eq!(
        edge.nginx().workers(),
        workers,
        "no reload across the changes"
    );
    assert_eq!(
        reloads(&t).await,
        reloads_before,
        "templater_reloads_total unchanged"
    );
    assert_eq!(
        ws.echo("after").await,
        "blue:after",
        "the upgraded connection is still open"
    );
}

#[tokio::test]
async fn a_new_service_renders_and_reloads_once() {
    let consul = ConsulAgent::start().await;
    let edge = LuaEdge::start().await;
    let (one, two) = (unique("one"), unique("two"));
    let _a = instances(&consul, &one, "blue", 1).await;
    let t = edge.templater(&consul, &[]);
    serves_only(edge.nginx(), &format!("{one}.localhost"), "blue", 5).await;
    let before = reloads(&t).await;
    let workers = edge.nginx().workers();
    let _b = instances(&consul, &two, "green", 1).await;
    serves_only(edge.nginx(), &format!("{two}.localhost"), "green", 5).await;
    assert_eq!(
        reloads(&t).await,
        before + 1.0,
        "one reload for the new upstream"
    );
    assert_ne!(edge.nginx().workers(), workers, "nginx reloaded");
    let installed = edge
        .nginx()
        .conf_d()
        .join("swarmgate-lua/swarmgate/balancer.lua");
    assert_eq!(
        std::fs::read(&installed).ok(),
        std::fs::read(testkit::lua_nginx::lua_dir().join("swarmgate/balancer.lua")).ok(),
        "the templater installs its Lua modules for nginx"
    );
    assert!(
        upstreams(edge.nginx()).contains("balancer_by_lua_block"),
        "lua upstreams rendered:\n{}",
        upstreams(edge.nginx())
    );
    // A scale-up of an existing service is a push, not a reload.
    let workers = edge.nginx().workers();
    let _c = Backend::start("blue2");
    register(
        &consul,
        "one-extra",
        &one,
        _c.port,
        &["blue", "public"],
        "passing",
    )
    .await;
    eventually(WAIT, "the new instance serves", || async {
        let c = tally(edge.nginx(), &format!("{one}.localhost"), 20).await;
        anyhow::ensure!(c.contains_key("blue2"), "{c:?}");
        Ok(())
    })
    .await;
    assert_eq!(edge.nginx().workers(), workers, "scale-up without a reload");
    assert_eq!(reloads(&t).await, before + 1.0);
}

#[tokio::test]
async fn nginx_serves_the_last_state_without_the_templater_and_after_a_restart() {
    let consul = ConsulAgent::start().await;
    let edge = LuaEdge::start().await;
    let svc = unique("keep");
    let host = format!("{svc}.localhost");
    let _blue = instances(&consul, &svc, "blue", 1).await;
    let _green = instances(&consul, &svc, "green", 1).await;
    let mut t = edge.templater(&consul, &[]);
    ok(&consul, &["flip", &svc, "green", "--wait-live", "20"]).await;
    serves_only(edge.nginx(), &host, "green", 10).await;

    t.signal("KILL");
    t.wait();
    serves_only(edge.nginx(), &host, "green", 10).await;
    // Consul changes while the templater is down: nginx keeps the last pushed state.
    let (code, out) = cli_text(&consul, &["flip", &svc, "blue"]);
    assert_eq!(code, 0, "{out}");
    edge.restart_nginx().await;
    // A fresh nginx (empty dictionary) with no templater: the state file alone.
    for _ in 0..20 {
        assert_eq!(
            fetch(edge.nginx(), &host)
                .await
                .expect("served from the state file"),
            "green"
        );
    }
    let state = std::fs::read_to_string(&edge.lua.state_file).expect("state file");
    assert!(state.contains(&svc), "{state}");

    // A new templater starts above the version nginx holds and pushes what Consul says now.
    let _t2 = edge.templater(&consul, &[]);
    serves_only(edge.nginx(), &host, "blue", 10).await;
}

/// The colour whose peers are active (not backup) for `service` in the state file.
fn active_in_state_file(edge: &LuaEdge, service: &str) -> Option<String> {
    let text = std::fs::read_to_string(&edge.lua.state_file).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    doc["services"][service]["peers"]
        .as_array()?
        .iter()
        .find(|p| p["backup"] == false)
        .and_then(|p| p["color"].as_str().map(str::to_string))
}

#[tokio::test]
async fn a_change_made_while_nginx_is_down_is_in_the_state_file_and_pushed_once_it_is_back() {
    let consul = ConsulAgent::start().await;
    let edge = LuaEdge::start().await;
    let svc = unique("down");
    let host = format!("{svc}.localhost");
    let _blue = instances(&consul, &svc, "blue", 1).await;
    let _green = instances(&consul, &svc, "green", 1).await;
    let t = edge.templater(&consul, &[]);
    ok(&consul, &["flip", &svc, "blue", "--wait-live", "20"]).await;
    serves_only(edge.nginx(), &host, "blue", 5).await;

    edge.stop_nginx().await;
    ok(&consul, &["flip", &svc, "green"]).await;
    eventually(WAIT, "the state file has the flip", || async {
        let active = active_in_state_file(&edge, &svc);
        anyhow::ensure!(active.as_deref() == Some("green"), "{active:?}");
        Ok(())
    })
    .await;
    eventually(WAIT, "the push failure is retried", || async {
        anyhow::ensure!(t.log().contains("retrying"), "not yet");
        Ok(())
    })
    .await;
    edge.lua.start().await;
    // The fresh nginx serves the file at once; the retried push then lands above it.
    for _ in 0..20 {
        assert_eq!(fetch(edge.nginx(), &host).await.expect("served"), "green");
    }
    let out = ok(&consul, &["flip", &svc, "blue", "--wait-live", "20"]).await;
    assert!(out.contains("live on"), "{out}");
    for _ in 0..20 {
        assert_eq!(fetch(edge.nginx(), &host).await.expect("served"), "blue");
    }
}

#[test]
fn lua_flags_are_checked_before_anything_starts() {
    let run = |extra: &[&str]| run_refused(&[&["--dataplane", "lua"], extra].concat());
    for (extra, says) in [
        (&["--control-socket", "0.0.0.0:9000"][..], "loopback"),
        (&["--control-socket", "10.1.2.3:80"][..], "loopback"),
        (&["--control-socket", "relative.sock"][..], "absolute"),
        (&["--allow-hostnames"][..], "IP addresses only"),
        (&["--dict-size", "lots"][..], "--dict-size"),
        (&["--state-file", "/tmp/a b.json"][..], "--state-file"),
    ] {
        let (code, err) = run(extra);
        assert_eq!(code, Some(64), "{extra:?}: {err}");
        assert!(err.contains(says), "{extra:?}: {err}");
    }
}

/// Traffic through nginx shows on the templater's `/metrics` (per colour, exactly what the
/// client saw, in both formats) and as req/s and error rate in the dashboard's `/api/state`.
#[tokio::test]
async fn per_colour_traffic_reaches_the_metrics_and_the_dashboard() {
    let consul = ConsulAgent::start().await;
    let edge = LuaEdge::start().await;
    let svc = unique("app");
    let host = format!("{svc}.localhost");
    let _blue = instances(&consul, &svc, "blue", 3).await;
    let _green = instances(&consul, &svc, "green", 1).await;
    let t = edge.templater(&consul, &[]);
    ok(&consul, &["flip", &svc, "blue", "--wait-live", "20"]).await;
    ok(&consul, &["canary", &svc, "10", "--wait-live", "20"]).await;
    let counts = tally(edge.nginx(), &host, 500).await;
    assert_eq!(counts.get("green"), Some(&50), "{counts:?}");
    let requests = |color: &str, class: &str| {
        format!("templater_upstream_requests_total{{service=\"{svc}\",color=\"{color}\",class=\"{class}\"}}")
    };
    let scrape = eventually(WAIT, "the counts on /metrics", || async {
        let s = testkit::metrics::scrape(t.metrics_port).await?;
        for color in ["blue", "green"] {
            let seen = s.both(&requests(color, "2xx"))?;
            anyhow::ensure!(
                seen == counts[color] as f64,
                "{color}: {seen} of {counts:?}"
            );
        }
        Ok(s)
    })
    .await;
    assert_eq!(scrape.both(&requests("blue", "5xx")).expect("5xx"), 0.0);
    assert_eq!(
        scrape.both(&requests("green", "failed")).expect("failed"),
        0.0
    );
    let count =
        format!("templater_upstream_response_seconds_count{{service=\"{svc}\",color=\"green\"}}");
    assert_eq!(scrape.both(&count).expect("histogram"), 50.0);

    let url = format!("http://127.0.0.1:{}/api/state", t.metrics_port);
    let colors = eventually(WAIT, "the dashboard's traffic figures", || async {
        let state: serde_json::Value = reqwest::get(&url).await?.json().await?;
        let service = state["services"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == svc.as_str()))
            .ok_or_else(|| anyhow::anyhow!("no {svc}: {state}"))?;
        let colors = service["colors"].clone();
        let listed = colors.as_array().map_or(0, Vec::len);
        anyhow::ensure!(listed == 2, "blue and green: {colors}");
        for c in colors.as_array().into_iter().flatten() {
            let rate = c["requests_per_second"].as_f64().unwrap_or(0.0);
            anyhow::ensure!(rate > 0.0, "no req/s yet: {colors}");
            anyhow::ensure!(c["error_rate"] == 0.0, "error rate: {colors}");
        }
        Ok(colors)
    })
    .await;
    println!("dashboard colours after 500 requests: {colors}");
}
