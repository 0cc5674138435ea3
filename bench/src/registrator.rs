//! The registrator's benchmark: Docker `start` → visible in Consul's health endpoint, `die` →
//! gone, start-up sync of N running containers, resident memory; each beside its floor measured
//! in the same run: Consul's own register → visible (plus one Docker inspect for a start), and
//! Consul's own bulk floor (registrations 32 at a time beside KV transactions of 64).

use std::time::{Duration, Instant, SystemTime};

use swarmgate_consul::{Client, ServiceRegistration};
use testkit::docker::{docker, docker_quiet};
use testkit::{unique, ConsulAgent, TestImage};

use crate::observe::{docker_events, ms_between, next_event, watch_instances};
use crate::process::{client, rss_mib, spawn, Daemon};
use crate::stats::{Row, Series};

fn start_registrator(consul: &ConsulAgent, extra: &[&str]) -> anyhow::Result<Daemon> {
    let node = unique("bench");
    let mut args = vec![
        "--node-name",
        &node,
        "-ip",
        "127.0.0.1",
        "-retry-attempts",
        "-1",
        "-retry-interval",
        "20",
    ];
    args.extend_from_slice(extra);
    let uri = consul.uri();
    args.push(&uri);
    spawn("registrator", &args)
}

/// Consul's own floor: PUT register → seen by a blocking query.
async fn consul_floor(consul: &ConsulAgent, n: usize) -> anyhow::Result<Series> {
    let client = client(consul)?;
    let mut s = Series::default();
    for i in 0..n {
        let name = format!("floor-{i}");
        let (armed, watch) = watch_instances(client.clone(), name.clone(), 1);
        armed.await?;
        // The first answer is in; give the loop a moment to have its blocking request in flight.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t0 = SystemTime::now();
        client
            .register_service(&ServiceRegistration {
                id: name.clone(),
                name: name.clone(),
                port: 80,
                ..Default::default()
            })
            .await?;
        let seen = watch.await??;
        s.push_ms(ms_between(t0, seen));
        client.deregister_service(&name).await?;
    }
    Ok(s)
}

/// Docker start → visible, and die → gone, `n` times.
async fn event_latency(consul: &ConsulAgent, n: usize) -> anyhow::Result<(Series, Series)> {
    let client = client(consul)?;
    let _reg = start_registrator(consul, &[])?;
    let docker_api = bollard::Docker::connect_with_local_defaults()?
        .negotiate_version()
        .await?;
    let mut events = docker_events(docker_api);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut start, mut die) = (Series::default(), Series::default());
    for _ in 0..n {
        let name = unique("lat");
        let id = docker(&[
            "create",
            "--label",
            "swarmgate-test=1",
            "-p",
            "80",
            "-l",
            &format!("SERVICE_NAME={name}"),
            TestImage::ensure(),
            "sh",
            "-c",
            "httpd -p 80 -h /; while [ ! -f /stop ]; do usleep 2000; done",
        ]);
        let (armed, watch) = watch_instances(client.clone(), name.clone(), 1);
        armed.await?;
        // The first answer is in; give the loop a moment to have its blocking request in flight.
        tokio::time::sleep(Duration::from_millis(20)).await;
        docker(&["start", &id]);
        let started = next_event(&mut events, &id, "start").await?;
        let seen = watch.await??;
        start.push_ms(ms_between(started, seen));
        let (armed, watch) = watch_instances(client.clone(), name.clone(), 0);
        armed.await?;
        // The first answer is in; give the loop a moment to have its blocking request in flight.
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The container may exit before `docker exec` collects touch's status (the loop polls
        // every 2 ms), which fails the exec: the `die` event below is what counts.
        docker_quiet(&["exec", &id, "touch", "/stop"]);
        let died = next_event(&mut events, &id, "die").await?;
        let gone = watch.await??;
        die.push_ms(ms_between(died, gone));
        docker_quiet(&["rm", "-f", &id]);
    }
    Ok((start, die))
}

/// Polls (every 25 ms; a blocking query would re-download the whole list on every one of
/// the N registrations and slow Consul down) until `service` has `count` instances.
async fn poll_until(client: &Client, service: &str, count: usize) -> anyhow::Result<SystemTime> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (entries, _) = client
            .health_service(service, &swarmgate_consul::QueryOptions::default(), false)
            .await?;
        if entries.len() >= count {
            return Ok(SystemTime::now());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{service}: {} of {count} after 120 s",
            entries.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One Docker inspect of a running container, `n` times: the part of the start path the
/// registrator cannot skip (the event carries no ports, labels or env).
async fn inspect_floor(n: usize) -> anyhow::Result<Series> {
    let docker_api = bollard::Docker::connect_with_local_defaults()?
        .negotiate_version()
        .await?;
    let id = docker(&[
        "run",
        "-d",
        "--label",
        "swarmgate-test=1",
        TestImage::ensure(),
        "sleep",
        "600",
    ]);
    let mut s = Series::default();
    let result = async {
        for _ in 0..n {
            let t0 = Instant::now();
            docker_api.inspect_container(&id, None).await?;
            s.push(t0.elapsed());
        }
        anyhow::Ok(())
    }
    .await;
    docker_quiet(&["rm", "-f", &id]);
    result.map(|()| s)
}

/// `a[i] + b[i]`: one sample of a path made of both steps.
fn sum_series(a: &Series, b: &Series) -> Series {
    let mut s = Series::default();
    for (x, y) in a.samples.iter().zip(&b.samples) {
        s.push_ms(x + y);
    }
    s
}

/// Consul's own floor for a bulk sync: `count` registrations sent directly, 32 at a time, beside
/// their KV records in transactions of 64 (the fastest Consul takes them), until all are visible.
async fn bulk_floor(count: usize) -> anyhow::Result<Duration> {
    use futures_util::StreamExt;
    use swarmgate_consul::{KvOp, MAX_TXN_OPS};
    let consul = ConsulAgent::start().await;
    let client = client(&consul)?;
    let service = unique("bulkfloor");
    let t0 = Instant::now();
    let registrations = futures_util::stream::iter(0..count)
        .map(|i| {
            let (client, service) = (client.clone(), service.clone());
            async move {
                let reg = ServiceRegistration {
                    id: format!("floor:{i}:80"),
                    name: service.clone(),
                    address: "10.0.0.1".into(),
                    port: 80,
                    ..Default::default()
                };
                client.register_service(&reg).await
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>();
    let ops: Vec<KvOp> = (0..count)
        .map(|i| KvOp::Set {
            key: format!("services/{service}/floor:{i}:80"),
            value: br#"{"id":"x"}"#.to_vec(),
        })
        .collect();
    let records = futures_util::stream::iter(ops.chunks(MAX_TXN_OPS).map(<[KvOp]>::to_vec))
        .map(|chunk| {
            let client = client.clone();
            async move { client.kv_txn(&chunk).await.map(drop) }
        })
        .buffer_unordered(2)
        .collect::<Vec<_>>();
    let (regs, kvs) = futures_util::future::join(registrations, records).await;
    regs.into_iter().collect::<Result<Vec<_>, _>>()?;
    kvs.into_iter().collect::<Result<Vec<_>, _>>()?;
    poll_until(&client, &service, count).await?;
    Ok(t0.elapsed())
}

/// Runs `count` idle containers (exposed port, no publishing, so no docker-proxy per container).
fn run_idle(count: usize, service: &str) -> Vec<String> {
    let ids = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for worker in 0..4 {
            let ids = &ids;
            s.spawn(move || {
                for _ in (worker..count).step_by(4) {
                    let id = docker(&[
                        "run",
                        "-d",
                        "--label",
                        "swarmgate-test=1",
                        "--expose",
                        "80",
                        "-l",
                        &format!("SERVICE_NAME={service}"),
                        TestImage::ensure(),
                        "sleep",
                        "100000",
                    ]);
                    ids.lock().expect("ids").push(id);
                }
            });
        }
    });
    ids.into_inner().expect("ids")
}

fn remove_all(ids: &[String]) {
    for chunk in ids.chunks(100) {
        let mut args = vec!["rm", "-f"];
        args.extend(chunk.iter().map(String::as_str));
        docker_quiet(&args);
    }
}

/// Start-up sync of `count` running containers, `runs` times, each against an empty Consul.
async fn sync(count: usize, runs: usize) -> anyhow::Result<(Series, f64, f64)> {
    let service = unique("sync");
    let ids = run_idle(count, &service);
    let mut s = Series::default();
    let (mut rss, mut peak) = (0.0f64, 0.0f64);
    let result = async {
        for _ in 0..runs {
            let consul = ConsulAgent::start().await;
            let client = client(&consul)?;
            let t0 = Instant::now();
            let reg = start_registrator(&consul, &["-internal"])?;
            poll_until(&client, &service, count).await?;
            s.push(t0.elapsed());
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (r, p) = rss_mib(reg.0.id());
            rss = rss.max(r);
            peak = peak.max(p);
        }
        anyhow::Ok(())
    }
    .await;
    remove_all(&ids);
    result.map(|()| (s, rss, peak))
}

/// Runs every registrator figure and answers the rows.
pub async fn run(iterations: usize, sizes: &[usize]) -> anyhow::Result<Vec<Row>> {
    TestImage::ensure();
    let consul = ConsulAgent::start().await;
    let floor = consul_floor(&consul, iterations).await?;
    let inspect = inspect_floor(iterations).await?;
    let start_floor = sum_series(&floor, &inspect);
    let (start, die) = event_latency(&consul, iterations).await?;
    let mut rows = vec![
        Row::timing("consul floor: register → visible", &floor, "—", None),
        Row::timing(
            "floor: register → visible + one docker inspect",
            &start_floor,
            "—",
            None,
        ),
        Row::timing(
            "docker start → visible in health",
            &start,
            "p50 ≤ 2× floor (gliderlabs 6.6 ms)",
            Some(("register→visible + inspect", &start_floor)),
        ),
        Row::timing(
            "docker die → gone from health",
            &die,
            "p50 ≤ 10 ms (gliderlabs 141)",
            Some(("register→visible", &floor)),
        ),
    ];
    for &n in sizes {
        let runs = if n > 100 { 3 } else { 5 };
        let mut floor = Series::default();
        for _ in 0..runs {
            floor.push(bulk_floor(n).await?);
        }
        let (s, rss, peak) = sync(n, runs).await?;
        rows.push(Row::timing(
            &format!("consul floor: {n} registrations (32 at a time) ∥ KV txns of 64"),
            &floor,
            "—",
            None,
        ));
        rows.push(Row::timing(
            &format!("start-up sync of {n} containers (process start → all visible)"),
            &s,
            if n >= 1000 { "≤ 1.3× floor" } else { "—" },
            Some(("bulk floor", &floor)),
        ));
        rows.push(Row::single(
            &format!("registrator RSS with {n} services (peak {peak:.1})"),
            rss,
            "MiB",
            if n >= 1000 {
                "≤ 12 MiB (gliderlabs 12.4)"
            } else {
                "≤ 8 MiB (gliderlabs 12.4)"
            },
        ));
    }
    Ok(rows)
}
