//! The templater's benchmark: KV flip → nginx serving the new colour, beside the floors measured
//! in the same run (KV write → blocking-query wake-up; nginx reload → new config serving); 30
//! flips under HTTP load with a new connection per request; 500 services × 4 instances: first
//! render, a change re-rendered, resident memory, connections to Consul, failed Consul calls.

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use swarmgate_consul::{Client, QueryOptions, ServiceRegistration};
use testkit::http::{get, Load};
use testkit::{unique, Backend, ConsulAgent, NginxServer};

use crate::process::{client, rss_mib, spawn, Daemon};
use crate::stats::{Row, Series};

fn templater(consul: &ConsulAgent, args: &[&str]) -> anyhow::Result<Daemon> {
    let url = consul.url();
    let mut all = vec!["--consul", &url, "run"];
    all.extend_from_slice(args);
    spawn("templater", &all)
}

pub fn edge(consul: &ConsulAgent, nginx: &NginxServer) -> anyhow::Result<Daemon> {
    edge_checked(consul, nginx, &nginx.check_command())
}

fn edge_checked(consul: &ConsulAgent, nginx: &NginxServer, check: &str) -> anyhow::Result<Daemon> {
    edge_with(consul, nginx, check, &[])
}

/// `templater run` for `nginx`, checked with `check`, with `extra` flags.
pub fn edge_with(
    consul: &ConsulAgent,
    nginx: &NginxServer,
    check: &str,
    extra: &[&str],
) -> anyhow::Result<Daemon> {
    let (name, dir, pid, port) = (
        unique("bench-edge"),
        nginx.conf_d().display().to_string(),
        nginx.pid_file().display().to_string(),
        nginx.port.to_string(),
    );
    let mut args = vec![
        "--name",
        &name,
        "--output-dir",
        &dir,
        "--nginx-pid",
        &pid,
        "--nginx-check",
        check,
        "--listen",
        &port,
    ];
    args.extend_from_slice(extra);
    templater(consul, &args)
}

pub async fn until_serving(port: u16, host: &str, want: &str) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if get(port, host).await.is_ok_and(|b| b == want) {
            return Ok(Instant::now());
        }
        anyhow::ensure!(Instant::now() < deadline, "{host} never served {want}");
    }
}

/// KV write → a blocking query on that key wakes.
pub async fn kv_floor(client: &Client, n: usize) -> anyhow::Result<Series> {
    let mut s = Series::default();
    let key = unique("floor/kv");
    client.kv_put(&key, b"0").await?;
    for i in 0..n {
        let (_, meta) = client
            .kv_list(&key, &QueryOptions::default(), false)
            .await?;
        let c = client.clone();
        let k = key.clone();
        let waiter = tokio::spawn(async move {
            c.kv_list(
                &k,
                &QueryOptions::blocking(meta.index, Duration::from_secs(30)),
                false,
            )
            .await
            .map(|_| Instant::now())
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t0 = Instant::now();
        client.kv_put(&key, i.to_string().as_bytes()).await?;
        s.push(waiter.await??.duration_since(t0));
    }
    Ok(s)
}

/// nginx reload → the new config serves: a static upstream switched between two backends.
async fn reload_floor(blue: &Backend, green: &Backend, n: usize) -> anyhow::Result<Series> {
    let nginx = NginxServer::start().await;
    let conf = |port: u16| {
        format!("upstream f {{ server 127.0.0.1:{port}; }}\nserver {{ listen 127.0.0.1:{}; location / {{ proxy_pass http://f; }} }}\n", nginx.port)
    };
    let file = nginx.conf_d().join("floor.conf");
    std::fs::write(&file, conf(blue.port))?;
    nix_hup(nginx.master_pid());
    until_serving(nginx.port, "x", "blue").await?;
    let mut s = Series::default();
    for i in 0..n {
        let (port, want) = if i % 2 == 0 {
            (green.port, "green")
        } else {
            (blue.port, "blue")
        };
        let t0 = Instant::now();
        std::fs::write(&file, conf(port))?;
        nix_hup(nginx.master_pid());
        s.push(
            until_serving(nginx.port, "x", want)
                .await?
                .duration_since(t0),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(s)
}

fn nix_hup(pid: u32) {
    let _ = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status();
}

async fn flips(
    client: &Client,
    nginx: &NginxServer,
    host: &str,
    n: usize,
) -> anyhow::Result<Series> {
    let mut s = Series::default();
    for i in 0..n {
        let want = if i % 2 == 0 { "green" } else { "blue" };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t0 = Instant::now();
        client.kv_put("deploy/app/active", want.as_bytes()).await?;
        s.push(
            until_serving(nginx.port, host, want)
                .await?
                .duration_since(t0),
        );
    }
    Ok(s)
}

/// 30 flips while 4 clients send requests, each on a new connection.
async fn flips_under_load(
    client: &Client,
    nginx: &NginxServer,
    host: &str,
) -> anyhow::Result<(u64, u64)> {
    let load = Load::start(nginx.port, host, 4);
    for i in 0..30 {
        let want = if i % 2 == 0 { "green" } else { "blue" };
        client.kv_put("deploy/app/active", want.as_bytes()).await?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let totals = load.finish().await;
    Ok((totals.ok, totals.failed))
}

/// Registers `services` × 4 instances, 32 at a time.
async fn populate(client: &Client, services: usize) -> anyhow::Result<()> {
    let results: Vec<_> = futures_util::stream::iter(0..services * 4)
        .map(|i| {
            let client = client.clone();
            async move {
                let (svc, n) = (i / 4, i % 4);
                let reg = ServiceRegistration {
                    id: format!("s{svc}-{n}"),
                    name: format!("svc{svc}"),
                    address: format!("10.{}.{}.{}", svc / 250, svc % 250, n + 1),
                    port: 8000 + n as u16,
                    tags: vec![if n < 2 { "blue".into() } else { "green".into() }],
                    ..Default::default()
                };
                client.register_service(&reg).await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(())
}

/// TCP connections from `pid` to `port`.
fn connections(pid: u32, port: u16) -> usize {
    let out = Command::new("ss")
        .args([
            "-tnpH",
            "state",
            "established",
            &format!("( dport = :{port} )"),
        ])
        .output();
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains(&format!("pid={pid},")))
            .count()
    })
    .unwrap_or(0)
}

async fn metric(port: u16, name: &str) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok();
    let text = match text {
        Some(r) => r.text().await.unwrap_or_default(),
        None => String::new(),
    };
    text.lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name} "))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(f64::NAN)
}

/// 500 services × 4 instances: start → first file, one change → re-rendered, RSS, connections.
async fn large(services: usize, runs: usize) -> anyhow::Result<Vec<Row>> {
    let consul = ConsulAgent::start().await;
    let c = client(&consul)?;
    populate(&c, services).await?;
    let (mut first, mut change) = (Series::default(), Series::default());
    let (mut rss, mut conns, mut errors) = (0.0f64, 0usize, 0.0f64);
    for _ in 0..runs {
        let dir = std::env::temp_dir().join(unique("bench-out"));
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("swarmgate-upstreams.conf");
        let metrics_port = testkit::free_port();
        let t0 = Instant::now();
        let d = templater(
            &consul,
            &[
                "--output-dir",
                &dir.display().to_string(),
                "--nginx-check",
                "",
                "--name",
                &unique("big"),
                "--metrics-addr",
                &format!("127.0.0.1:{metrics_port}"),
            ],
        )?;
        while !std::fs::read_to_string(&file)
            .is_ok_and(|t| t.contains(&format!("upstream sg_svc{} ", services - 1)))
        {
            anyhow::ensure!(t0.elapsed() < Duration::from_secs(30), "no first render");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        first.push(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(500)).await;
        for i in 0..5 {
            let before = std::fs::read(&file)?;
            let t0 = Instant::now();
            c.register_service(&ServiceRegistration {
                id: format!("extra-{i}"),
                name: "svc0".into(),
                address: "10.9.9.9".into(),
                port: 9000 + i,
                ..Default::default()
            })
            .await?;
            while std::fs::read(&file)? == before {
                anyhow::ensure!(
                    t0.elapsed() < Duration::from_secs(30),
                    "change never rendered"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            change.push(t0.elapsed());
            c.deregister_service(&format!("extra-{i}")).await?;
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        rss = rss.max(rss_mib(d.0.id()).0);
        conns = conns.max(connections(d.0.id(), consul.http_port));
        errors = errors.max(metric(metrics_port, "templater_consul_errors_total").await);
        drop(d);
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(vec![
        Row::timing(
            &format!("{services}×4: start → first render installed"),
            &first,
            "≤ 100 ms (consul-template 700)",
            None,
        ),
        Row::timing(
            &format!("{services}×4: one registration → re-rendered"),
            &change,
            "—",
            None,
        ),
        Row::single(
            &format!("{services}×4: templater RSS"),
            rss,
            "MiB",
            "≤ 15 MB (consul-template 38)",
        ),
        Row::single(
            &format!("{services}×4: connections to Consul (max seen)"),
            conns as f64,
            "conns",
            "≪ 200",
        ),
        Row::single(
            &format!("{services}×4: failed Consul calls / resets"),
            errors,
            "calls",
            "0 (consul-template 159 resets)",
        ),
    ])
}

/// Registers service `app` with one blue and one green instance, blue active.
pub async fn register_app(c: &Client, blue: &Backend, green: &Backend) -> anyhow::Result<()> {
    for (id, port, tag) in [("b", blue.port, "blue"), ("g", green.port, "green")] {
        c.register_service(&ServiceRegistration {
            id: id.into(),
            name: "app".into(),
            address: "127.0.0.1".into(),
            port,
            tags: vec![tag.into(), "public".into()],
            ..Default::default()
        })
        .await?;
    }
    c.kv_put("deploy/app/active", b"blue").await?;
    Ok(())
}

/// Runs every templater figure.
pub async fn run(iterations: usize, services: usize) -> anyhow::Result<Vec<Row>> {
    let consul = ConsulAgent::start().await;
    let c = client(&consul)?;
    let (blue, green) = (Backend::start("blue"), Backend::start("green"));
    let kv = kv_floor(&c, iterations).await?;
    let reload = reload_floor(&blue, &green, iterations).await?;
    let nginx = NginxServer::start().await;
    register_app(&c, &blue, &green).await?;
    let _edge = edge(&consul, &nginx)?;
    until_serving(nginx.port, "app.localhost", "blue").await?;
    let flip = flips(&c, &nginx, "app.localhost", iterations).await?;
    let (ok, failed) = flips_under_load(&c, &nginx, "app.localhost").await?;
    drop(_edge);
    let unchecked = {
        let _edge = edge_checked(&consul, &nginx, "")?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        flips(&c, &nginx, "app.localhost", iterations).await?
    };
    let mut floor = Series::default();
    for (a, b) in kv.samples.iter().zip(reload.samples.iter()) {
        floor.push_ms(a + b);
    }
    let mut rows = vec![
        Row::timing("floor: KV write → blocking-query wake-up", &kv, "—", None),
        Row::timing(
            "floor: nginx reload → new config serving",
            &reload,
            "—",
            None,
        ),
        Row::timing(
            "KV flip → nginx serving the new colour",
            &flip,
            "p50 ≤ 15 ms (consul-template 122)",
            Some(("KV wake + reload", &floor)),
        ),
        Row::timing(
            "the same, with --nginx-check \"\" (no validation)",
            &unchecked,
            "—",
            Some(("KV wake + reload", &floor)),
        ),
        Row::single(
            &format!(
                "30 flips under load: failed of {} requests (new connection each)",
                ok + failed
            ),
            failed as f64,
            "req",
            "0",
        ),
    ];
    rows.extend(large(services, 3).await?);
    Ok(rows)
}
