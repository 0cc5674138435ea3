//! A stopping container stays out of rotation until it is gone: under `-resync 1`, across a cut
//! and restored event stream, across a Consul agent wiped mid-grace (the `--verify-interval 1`
//! repair), and in maintenance — never passing — with `-deregister on-success`. A restart puts
//! it back.

mod common;

use std::time::{Duration, Instant};

use common::{instances, status, status_becomes, Registrator};
use testkit::lifecycle::{draining_app_on, is_running, stop_in_background};
use testkit::proxy::SocketProxy;
use testkit::{eventually, unique, ConsulAgent, Container, TestImage};

/// Seconds a stopping app keeps serving after SIGTERM; `docker stop` is given more.
const DRAIN_SECS: u32 = 5;

fn draining(prefix: &str, name: &str) -> Container {
    draining_on(prefix, name, "TERM")
}

/// A draining app whose stop signal is `signal` (`--stop-signal SIG<signal>`).
fn draining_on(prefix: &str, name: &str, signal: &str) -> Container {
    let mut args = vec![
        "--stop-signal".to_string(),
        format!("SIG{signal}"),
        "-p".into(),
        "80".into(),
        "-l".into(),
        format!("SERVICE_NAME={name}"),
        TestImage::ensure().into(),
    ];
    args.extend(draining_app_on(signal, DRAIN_SECS));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Container::run(prefix, &args)
}

/// Until every container has exited: `service` never has an instance that passes, and with
/// `absent` none at all. Answers how long the containers ran out their grace period.
async fn never_back_while_running(
    consul: &ConsulAgent,
    service: &str,
    containers: &[&Container],
    absent: bool,
) -> Duration {
    let started = Instant::now();
    while containers.iter().any(|c| is_running(&c.name)) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "containers never stopped"
        );
        let got = consul.instances(service).await.expect("read health");
        if absent {
            assert!(got.is_empty(), "back in Consul while stopping: {got:?}");
        }
        for entry in &got {
            assert_ne!(status(entry), "passing", "passing while stopping: {entry}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn stopping_containers_stay_out_through_resyncs_and_a_restart_brings_one_back() {
    let consul = ConsulAgent::start().await;
    let api = format!("127.0.0.1:{}", testkit::free_port());
    let _reg = Registrator::start(&consul, &["-resync", "1", "--metrics-addr", &api]);
    let name = unique("draining");
    let all: Vec<Container> = (0..3).map(|i| draining(&format!("dr{i}"), &name)).collect();
    instances(&consul, &name, 3).await;
    let stops: Vec<_> = all[..2]
        .iter()
        .map(|c| stop_in_background(&c.name, DRAIN_SECS + 5))
        .collect();
    instances(&consul, &name, 1).await;
    let stopping = [&all[0], &all[1]];
    // `/api/state` says which containers are stopping, from the registry's own bookkeeping.
    let state: serde_json::Value = reqwest::get(format!("http://{api}/api/state"))
        .await
        .expect("GET /api/state")
        .json()
        .await
        .expect("JSON");
    let listed = |key: &str| -> Vec<(String, String)> {
        state[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_string(),
                    c["phase"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    for c in stopping {
        assert!(
            listed("stopping").contains(&(c.name.clone(), "stopping".into())),
            "{} not stopping in {state}",
            c.name
        );
    }
    assert!(
        listed("containers").contains(&(all[2].name.clone(), "running".into())),
        "{state}"
    );
    assert_eq!(state["docker_up"], true, "{state}");
    assert!(state["last_sync_unix"].as_u64().is_some(), "{state}");
    let ran = never_back_while_running_one_left(&consul, &name, &stopping).await;
    assert!(
        ran >= Duration::from_secs(3),
        "resyncs happened meanwhile: {ran:?}"
    );
    for s in stops {
        s.wait();
    }
    // `docker restart` of a stopping container: a new run, back in rotation.
    let restarted = &all[2];
    let stop = stop_in_background(&restarted.name, DRAIN_SECS + 5);
    instances(&consul, &name, 0).await;
    testkit::docker::docker(&["restart", "-t", "0", &restarted.name]);
    instances(&consul, &name, 1).await;
    drop(stop);
}

/// Like [`never_back_while_running`], with one other instance of the service left running.
async fn never_back_while_running_one_left(
    consul: &ConsulAgent,
    service: &str,
    stopping: &[&Container],
) -> Duration {
    let started = Instant::now();
    while stopping.iter().any(|c| is_running(&c.name)) {
        let got = consul.instances(service).await.expect("read health");
        assert_eq!(got.len(), 1, "a stopping container is back: {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn a_stop_during_a_cut_event_stream_is_seen_on_reconnect_and_never_undone() {
    let consul = ConsulAgent::start().await;
    let proxy = SocketProxy::start();
    let reg = Registrator::start_env(
        &consul,
        &["-resync", "1"],
        &[("DOCKER_HOST", &proxy.docker_host())],
    );
    let (before, during, own) = (
        unique("stopbefore"),
        unique("stopduring"),
        unique("stopownsignal"),
    );
    let b = draining("sb", &before);
    let d = draining("sd", &during);
    let w = draining_on("sw", &own, "WINCH");
    instances(&consul, &before, 1).await;
    instances(&consul, &during, 1).await;
    instances(&consul, &own, 1).await;
    // One stop request seen live, then the stream cut; another while it is cut.
    let _sb = stop_in_background(&b.name, DRAIN_SECS + 5);
    instances(&consul, &before, 0).await;
    proxy.cut();
    let _sd = stop_in_background(&d.name, DRAIN_SECS + 5);
    let _sw = stop_in_background(&w.name, DRAIN_SECS + 5);
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();
    // The reconnect lists both as running; Docker's event history says they are stopping.
    eventually(common::WAIT, "resubscribed", || async {
        let log = reg.log();
        anyhow::ensure!(log.matches("watching docker events").count() >= 2, "{log}");
        Ok(())
    })
    .await;
    eventually(
        Duration::from_secs(2),
        "out of rotation after the reconnect",
        || async {
            for service in [&during, &own] {
                let got = consul.instances(service).await?;
                anyhow::ensure!(got.is_empty(), "{service}: {got:?}");
            }
            Ok(())
        },
    )
    .await;
    assert!(is_running(&d.name), "still within its grace period");
    assert!(is_running(&w.name), "still within its grace period");
    let (bs, ds, ws) = ([&b], [&d], [&w]);
    let (x, y, z) = tokio::join!(
        never_back_while_running(&consul, &before, &bs, true),
        never_back_while_running(&consul, &during, &ds, true),
        never_back_while_running(&consul, &own, &ws, true),
    );
    assert!(
        x.max(y).max(z) >= Duration::from_secs(2),
        "{x:?} {y:?} {z:?}"
    );
}

#[tokio::test]
async fn a_consul_wiped_mid_grace_is_repaired_without_the_stopping_container() {
    let mut consul = ConsulAgent::start().await;
    let _reg = Registrator::start(&consul, &[]);
    let (stays, stops) = (unique("repaired"), unique("stopping"));
    let _s = draining("rs", &stays);
    let c = draining("rc", &stops);
    instances(&consul, &stays, 1).await;
    instances(&consul, &stops, 1).await;
    let _stop = stop_in_background(&c.name, DRAIN_SECS + 5);
    instances(&consul, &stops, 0).await;
    consul.restart().await;
    // The repair (--verify-interval 1) brings back what runs, not what is stopping.
    instances(&consul, &stays, 1).await;
    never_back_while_running(&consul, &stops, &[&c], true).await;
}

#[tokio::test]
async fn on_success_keeps_a_stopping_container_in_maintenance_never_passing() {
    let mut consul = ConsulAgent::start().await;
    let _reg = Registrator::start(&consul, &["-deregister", "on-success", "-resync", "1"]);
    let name = unique("maint");
    let c = draining("m", &name);
    status_becomes(&consul, &name, "passing").await;
    let _stop = stop_in_background(&c.name, DRAIN_SECS + 5);
    status_becomes(&consul, &name, "critical").await;
    // A wiped agent mid-grace: re-registered straight into maintenance, never passing.
    consul.restart().await;
    eventually(common::WAIT, "re-registered", || async {
        let got = consul.instances(&name).await?;
        anyhow::ensure!(got.len() == 1, "{got:?}");
        Ok(())
    })
    .await;
    never_back_while_running(&consul, &name, &[&c], false).await;
    // It exited 0: deregistered.
    instances(&consul, &name, 0).await;
}

/// A container whose own stop signal ends nothing by itself (`--stop-signal SIGWINCH`, as nginx
/// images use SIGQUIT and some apps SIGWINCH or SIGUSR1): `docker stop` sends that signal first,
/// and the registrator takes it out at that `kill`, not only at `die`.
#[tokio::test]
async fn a_container_leaves_at_its_own_stop_signal() {
    let consul = ConsulAgent::start().await;
    let _reg = Registrator::start(&consul, &["-resync", "1"]);
    let name = unique("winch");
    let c = draining_on("winch", &name, "WINCH");
    instances(&consul, &name, 1).await;
    let stop = stop_in_background(&c.name, DRAIN_SECS + 5);
    instances(&consul, &name, 0).await;
    assert!(is_running(&c.name), "left Consul only when it died");
    let ran = never_back_while_running(&consul, &name, &[&c], true).await;
    assert!(
        ran >= Duration::from_secs(2),
        "it drained meanwhile: {ran:?}"
    );
    stop.wait();
}
