//! Each Docker event against the real engine and a real Consul: start, stop, kill, die, destroy,
//! pause/unpause, and `-deregister on-success`.

mod common;

use common::{instances, status_becomes, Registrator, WAIT};
use testkit::{eventually, serve_until_cue, unique, ConsulAgent, Container, TestImage};

#[tokio::test]
async fn start_registers_with_registrator_defaults_and_kv_then_stop_removes_both() {
    let consul = ConsulAgent::start().await;
    let port = testkit::free_port();
    let reg = Registrator::start(&consul, &["--metrics-addr", &format!("127.0.0.1:{port}")]);
    let image = TestImage::tagged(&unique("evtapp"));
    let name = image.0.trim_end_matches(":latest").to_string();
    let c = Container::run("evt", &["-p", "80", "-e", "SERVICE_TAGS=blue", &image.0]);
    let [entry] = instances(&consul, &name, 1).await.try_into().expect("one");
    let svc = &entry["Service"];
    let id = format!("{}:{}:80", reg.node, c.name);
    assert_eq!(svc["ID"], id.as_str());
    assert_eq!(svc["Address"], "127.0.0.1");
    assert_eq!(svc["Port"], c.host_port("80"));
    assert_eq!(svc["Tags"], serde_json::json!(["blue"]));
    assert_eq!(svc["Meta"]["container-id"], c.id.as_str());
    assert_eq!(svc["Meta"]["container-name"], c.name.as_str());
    assert_eq!(svc["Meta"]["image"], image.0.as_str());
    assert_eq!(svc["Meta"]["managed-by"], "swarmgate-registrator");
    let key = format!("services/{name}/{id}");
    let record: serde_json::Value =
        serde_json::from_str(&consul.kv(&key).await.expect("kv").expect("record")).expect("json");
    assert_eq!(record["port"], c.host_port("80"));
    assert_eq!(record["container"], c.name.as_str());
    assert_eq!(record["node"], reg.node.as_str());
    metrics_parse_and_count_the_registration(port).await;

    c.stop();
    instances(&consul, &name, 0).await;
    eventually(WAIT, "kv record removed", || async {
        match consul.kv(&key).await? {
            None => Ok(()),
            Some(v) => anyhow::bail!("still {v}"),
        }
    })
    .await;
}

#[tokio::test]
async fn sigkill_and_destroy_leave_rotation_but_sighup_does_not() {
    let consul = ConsulAgent::start().await;
    let _reg = Registrator::start(&consul, &[]);
    let name = unique("killed");
    let c = Container::run(
        "kill",
        &[
            "-p",
            "80",
            "-l",
            &format!("SERVICE_NAME={name}"),
            TestImage::ensure(),
        ],
    );
    instances(&consul, &name, 1).await;
    c.kill("HUP");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        consul.instances(&name).await.expect("read").len(),
        1,
        "SIGHUP must not deregister"
    );
    c.kill("KILL");
    instances(&consul, &name, 0).await;
    c.start();
    instances(&consul, &name, 1).await;
    c.remove();
    instances(&consul, &name, 0).await;
}

#[tokio::test]
async fn pause_puts_the_service_in_maintenance_and_unpause_takes_it_out() {
    let consul = ConsulAgent::start().await;
    let _reg = Registrator::start(&consul, &[]);
    let name = unique("paused");
    let c = Container::run(
        "pause",
        &[
            "-p",
            "80",
            "-l",
            &format!("SERVICE_NAME={name}"),
            TestImage::ensure(),
        ],
    );
    status_becomes(&consul, &name, "passing").await;
    c.pause(true);
    status_becomes(&consul, &name, "critical").await;
    c.pause(false);
    status_becomes(&consul, &name, "passing").await;
}

#[tokio::test]
async fn deregister_on_success_keeps_failed_containers_in_maintenance() {
    let consul = ConsulAgent::start().await;
    let _reg = Registrator::start(&consul, &["-deregister", "on-success"]);
    let failing = unique("failing");
    let clean = unique("clean");
    let f = Container::run(
        "fail",
        &[
            "-p",
            "80",
            "-l",
            &format!("SERVICE_NAME={failing}"),
            TestImage::ensure(),
            "sh",
            "-c",
            &serve_until_cue(3),
        ],
    );
    let ok = Container::run(
        "ok",
        &[
            "-p",
            "80",
            "-l",
            &format!("SERVICE_NAME={clean}"),
            TestImage::ensure(),
            "sh",
            "-c",
            &serve_until_cue(0),
        ],
    );
    status_becomes(&consul, &failing, "passing").await;
    instances(&consul, &clean, 1).await;
    f.cue();
    ok.cue();
    // The failed one stays registered, out of rotation; the clean exit is deregistered.
    status_becomes(&consul, &failing, "critical").await;
    instances(&consul, &clean, 0).await;
    f.remove();
    instances(&consul, &failing, 0).await;
    drop(ok);
}

/// /metrics in both formats, each read with a strict parser: the registration is counted and
/// timed from the container's start event, the listing and its reconcile are timed, and the
/// old gauge alias is in the Prometheus text only (OpenMetrics cannot carry it).
async fn metrics_parse_and_count_the_registration(port: u16) {
    let m = eventually(WAIT, "the listing's reconcile is timed", || async {
        let m = testkit::metrics::scrape(port).await?;
        anyhow::ensure!(m.both("registrator_sync_duration_seconds_count")? >= 1.0);
        Ok(m)
    })
    .await;
    for (name, least) in [
        ("registrator_registrations_total", 1.0),
        ("registrator_registration_duration_seconds_count", 1.0),
        ("registrator_docker_events_total", 1.0),
        ("registrator_docker_up", 1.0),
        ("registrator_skipped_services_total", 0.0),
        ("process_open_fds", 3.0),
    ] {
        let v = m.both(name).expect("in both formats");
        assert!(v >= least, "{name} = {v}, want >= {least}");
    }
    let alias = "registrator_skipped_services";
    assert_eq!(testkit::metrics::sample(&m.text, alias), Some(0.0));
    assert_eq!(testkit::metrics::sample(&m.openmetrics, alias), None);
    let health = reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
}
