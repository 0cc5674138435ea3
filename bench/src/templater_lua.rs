//! The Lua data plane's benchmark: KV flip → nginx serving the new colour without a reload,
//! beside its floor measured in the same run (KV write → blocking-query wake-up, plus a state
//! push straight to nginx's control socket → serving); and 30 flips under keep-alive load (16
//! pooled connections), in both data planes, counting failed requests.

use std::time::{Duration, Instant};

use swarmgate_consul::{Client, ServiceRegistration};
use testkit::{Backend, ConsulAgent, LuaNginx, NginxServer};

use crate::process::{client, Daemon};
use crate::stats::{Row, Series};
use crate::templater::{edge_with, kv_floor, register_app, until_serving};

const HOST: &str = "app.localhost";

fn lua_edge(consul: &ConsulAgent, lua: &LuaNginx) -> anyhow::Result<Daemon> {
    let (state, control) = (
        lua.state_file.display().to_string(),
        lua.control.display().to_string(),
    );
    edge_with(
        consul,
        &lua.server,
        &lua.server.check_command(),
        &[
            "--dataplane",
            "lua",
            "--state-file",
            &state,
            "--control-socket",
            &control,
        ],
    )
}

/// KV flips, each timed until nginx serves the new colour.
pub async fn flips(client: &Client, port: u16, n: usize) -> anyhow::Result<Series> {
    let mut s = Series::default();
    for i in 0..n {
        let want = if i % 2 == 0 { "green" } else { "blue" };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t0 = Instant::now();
        client.kv_put("deploy/app/active", want.as_bytes()).await?;
        s.push(until_serving(port, HOST, want).await?.duration_since(t0));
    }
    Ok(s)
}

/// The floor of a push: the state nginx holds with every peer's backup flag swapped (the other
/// colour active), pushed straight to the control socket, timed until nginx serves it.
async fn push_floor(lua: &LuaNginx, n: usize) -> anyhow::Result<Series> {
    let mut s = Series::default();
    for _ in 0..n {
        let (_, body) = lua.control("GET", b"").await;
        let mut doc: serde_json::Value = serde_json::from_str(&body)?;
        let mut want = String::new();
        for peer in doc["services"]["app"]["peers"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            let backup = !peer["backup"].as_bool().unwrap_or(false);
            peer["backup"] = backup.into();
            if !backup {
                want = peer["color"].as_str().unwrap_or_default().to_string();
            }
        }
        doc["version"] = (doc["version"].as_u64().unwrap_or(0) + 1).into();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t0 = Instant::now();
        let (status, answer) = lua.push(&doc.to_string()).await;
        anyhow::ensure!(status == 200, "push refused: {answer}");
        s.push(
            until_serving(lua.server.port, HOST, &want)
                .await?
                .duration_since(t0),
        );
    }
    Ok(s)
}

/// A new blue instance registered in Consul, timed until nginx answers from it; then removed.
/// Each registration is an isolated change (the removal before it is older than `--wait`'s
/// MIN, 200 ms), so it goes out at once rather than coalesced with the removal.
async fn instance_added(client: &Client, port: u16, n: usize) -> anyhow::Result<Series> {
    let mut s = Series::default();
    for i in 0..n {
        let text = format!("blue-new-{i}");
        let backend = Backend::start(&text);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t0 = Instant::now();
        client
            .register_service(&ServiceRegistration {
                id: text.clone(),
                name: "app".into(),
                address: "127.0.0.1".into(),
                port: backend.port,
                tags: vec!["blue".into(), "public".into()],
                ..Default::default()
            })
            .await?;
        s.push(until_serving(port, HOST, &text).await?.duration_since(t0));
        client.deregister_service(&text).await?;
    }
    Ok(s)
}

/// One push of `services` × 4 peers straight to nginx: (bytes, milliseconds until it answered).
async fn large_push(lua: &LuaNginx, services: usize) -> anyhow::Result<(usize, f64)> {
    let (_, body) = lua.control("GET", b"").await;
    let held: serde_json::Value = serde_json::from_str(&body)?;
    let mut all = serde_json::Map::new();
    for s in 0..services {
        let peers: Vec<_> = (0..4)
            .map(|p| {
                serde_json::json!({"id": format!("svc-{s}-{p}"), "address": format!("10.1.{}.{}", s / 250, s % 250 + 1),
                    "port": 8000 + p, "weight": 1, "backup": false, "color": if p % 2 == 0 { "blue" } else { "green" }})
            })
            .collect();
        all.insert(
            format!("svc-{s}"),
            serde_json::json!({"sticky": null, "peers": peers}),
        );
    }
    let doc =
        serde_json::json!({"version": held["version"].as_u64().unwrap_or(0) + 1, "services": all})
            .to_string();
    let t0 = Instant::now();
    let (status, answer) = lua.push(&doc).await;
    anyhow::ensure!(status == 200, "the large push was refused: {answer}");
    Ok((doc.len(), t0.elapsed().as_secs_f64() * 1000.0))
}

/// 30 KV flips while 16 keep-alive clients send requests: (ok, failed).
pub async fn flips_under_keepalive(client: &Client, port: u16) -> anyhow::Result<(u64, u64)> {
    let load = testkit::http::Load::keep_alive(port, HOST, 16);
    for i in 0..30 {
        let want = if i % 2 == 0 { "green" } else { "blue" };
        client.kv_put("deploy/app/active", want.as_bytes()).await?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let totals = load.finish().await;
    Ok((totals.ok, totals.failed))
}

/// Runs the Lua data plane's figures, and the keep-alive figure of the reload plane beside it.
pub async fn run(
    iterations: usize,
    reload_edge: impl Fn(&ConsulAgent, &NginxServer) -> anyhow::Result<Daemon>,
) -> anyhow::Result<Vec<Row>> {
    let consul = ConsulAgent::start().await;
    let c = client(&consul)?;
    let (blue, green) = (Backend::start("blue"), Backend::start("green"));
    register_app(&c, &blue, &green).await?;
    let kv = kv_floor(&c, iterations).await?;

    let reload_keepalive = {
        let nginx = NginxServer::start().await;
        let _edge = reload_edge(&consul, &nginx)?;
        until_serving(nginx.port, HOST, "blue").await?;
        flips_under_keepalive(&c, nginx.port).await?
    };
    c.kv_put("deploy/app/active", b"blue").await?;

    let lua = LuaNginx::prepare(2);
    lua.start().await;
    let edge = lua_edge(&consul, &lua)?;
    until_serving(lua.server.port, HOST, "blue").await?;
    let workers = lua.server.workers();
    let flip = flips(&c, lua.server.port, iterations).await?;
    let lua_keepalive = flips_under_keepalive(&c, lua.server.port).await?;
    let added = instance_added(&c, lua.server.port, iterations).await?;
    let reloaded = lua.server.workers() != workers;
    drop(edge);
    let push = push_floor(&lua, iterations).await?;
    let (bytes, push_ms) = large_push(&lua, 500).await?;
    let mut floor = Series::default();
    for (a, b) in kv.samples.iter().zip(push.samples.iter()) {
        floor.push_ms(a + b);
    }
    let failed = |(ok, failed): (u64, u64), plane: &str| {
        Row::single(
            &format!(
                "{plane}: 30 flips under keep-alive load, failed of {} requests (16 connections)",
                ok + failed
            ),
            failed as f64,
            "req",
            "0",
        )
    };
    Ok(vec![
        Row::timing("floor: state push → nginx serving (Lua)", &push, "—", None),
        Row::timing(
            "Lua data plane: KV flip → nginx serving the new colour, no reload",
            &flip,
            "≤ 2× floor",
            Some(("KV wake + push", &floor)),
        ),
        Row::timing(
            "Lua data plane: instance registered → nginx serving it",
            &added,
            "—",
            Some(("KV wake + push", &floor)),
        ),
        Row::single(
            &format!("Lua data plane: a 500 services × 4 instances push ({bytes} bytes)"),
            push_ms,
            "ms",
            "—",
        ),
        Row::single(
            "Lua data plane: nginx reloads during the flips and instance changes",
            f64::from(u8::from(reloaded)),
            "",
            "0",
        ),
        failed(reload_keepalive, "reload data plane"),
        failed(lua_keepalive, "Lua data plane"),
    ])
}
