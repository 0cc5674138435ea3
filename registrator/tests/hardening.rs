//! Hostile and unlucky input: `.` and `..` names and ids never reach a key outside the prefix
//! nor stay in the catalog; a service Consul refuses (more than 64 meta keys) is skipped with a
//! warning, not retried forever; an event stream of junk is retried with a growing backoff.

mod common;

use std::time::Duration;

use common::{instances, Registrator, WAIT};
use testkit::fake_docker::JunkEventsDocker;
use testkit::{eventually, unique, ConsulAgent, Container, TestImage};

fn labelled(prefix: &str, labels: &[String]) -> Container {
    let mut args: Vec<String> = vec!["-p".into(), "80".into()];
    for l in labels {
        args.extend(["-l".into(), l.clone()]);
    }
    args.push(TestImage::ensure().into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Container::run(prefix, &args)
}

/// Every KV key, anywhere.
async fn all_keys(consul: &ConsulAgent) -> Vec<String> {
    consul.kv_keys("").await.expect("keys")
}

#[tokio::test]
async fn dot_names_and_ids_touch_no_key_outside_the_prefix_and_leave_nothing_behind() {
    let consul = ConsulAgent::start().await;
    consul.kv_put("rootkey", "operator's").await.expect("kv");
    consul.kv_put("rootkey2", "operator's").await.expect("kv");
    let reg = Registrator::start(&consul, &[]);
    let sentinel = unique("sentinel");
    let hostile: Vec<Container> = [
        ["SERVICE_NAME=..", "SERVICE_ID=rootkey"],
        ["SERVICE_NAME=.", "SERVICE_ID=rootkey"],
        [&format!("SERVICE_NAME={sentinel}x"), "SERVICE_ID=.."],
        [&format!("SERVICE_NAME={sentinel}y"), "SERVICE_ID=."],
        [
            &format!("SERVICE_NAME={sentinel}z"),
            "SERVICE_ID=a/../../rootkey2",
        ],
    ]
    .iter()
    .enumerate()
    .map(|(i, l)| labelled(&format!("dot{i}"), &l.map(String::from)))
    .collect();
    let ok = labelled("ok", &[format!("SERVICE_NAME={sentinel}")]);
    instances(&consul, &sentinel, 1).await;
    eventually(WAIT, "each hostile label is named", || async {
        let n = reg.log().matches("bad label; service skipped").count();
        anyhow::ensure!(
            n >= hostile.len(),
            "{n} of {}:\n{}",
            hostile.len(),
            reg.log()
        );
        Ok(())
    })
    .await;
    let check = || async {
        assert_eq!(
            consul.kv("rootkey").await.expect("kv").as_deref(),
            Some("operator's")
        );
        assert_eq!(
            consul.kv("rootkey2").await.expect("kv").as_deref(),
            Some("operator's")
        );
        for key in all_keys(&consul).await {
            assert!(
                key.starts_with("services/") || key.starts_with("rootkey"),
                "a key outside the prefix: {key}"
            );
        }
        let services = consul.agent_services().await.expect("services");
        for id in ["rootkey", "..", ".", "a/../../rootkey2"] {
            assert!(!services.contains_key(id), "{id} registered: {services:?}");
        }
    };
    check().await;
    drop(hostile);
    drop(ok);
    instances(&consul, &sentinel, 0).await;
    check().await;
    let services = consul.agent_services().await.expect("services");
    assert!(services.is_empty(), "left behind: {services:?}");
}

#[tokio::test]
async fn a_service_consul_refuses_is_skipped_with_a_warning_naming_it_and_not_retried() {
    let consul = ConsulAgent::start().await;
    let reg = Registrator::start(&consul, &["-resync", "1"]);
    let (refused, fine) = (unique("refused"), unique("fine"));
    let mut labels = vec![format!("SERVICE_NAME={refused}")];
    labels.extend((0..70).map(|i| format!("SERVICE_META{i}=v")));
    let r = labelled("meta70", &labels);
    let _f = labelled("fine", &[format!("SERVICE_NAME={fine}")]);
    instances(&consul, &fine, 1).await;
    eventually(WAIT, "the refusal is named", || async {
        let log = reg.log();
        anyhow::ensure!(
            log.contains("consul refused the service") && log.contains(&r.name),
            "{log}"
        );
        Ok(())
    })
    .await;
    // Three seconds of resyncs and verifies (-resync 1, --verify-interval 1): no retry.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = reg.log();
    assert_eq!(
        log.matches("consul refused the service").count(),
        1,
        "{log}"
    );
    assert!(!log.contains("will retry"), "{log}");
    assert!(consul.instances(&refused).await.expect("read").is_empty());
    assert!(consul
        .kv_keys(&format!("services/{refused}/"))
        .await
        .expect("kv")
        .is_empty());
}

#[tokio::test]
async fn an_event_stream_of_junk_backs_off_although_listing_succeeds() {
    let consul = ConsulAgent::start().await;
    let docker = JunkEventsDocker::start();
    let _reg = Registrator::start_env(&consul, &[], &[("DOCKER_HOST", &docker.docker_host())]);
    eventually(WAIT, "the fake daemon is used", || async {
        anyhow::ensure!(docker.listings() >= 1, "no listing yet");
        Ok(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Backoff from 100 ms doubling (with jitter) allows about 6 sessions in 6 s (each lists
    // once); resetting after every successful listing would make about 40.
    let listings = docker.listings();
    assert!((2..=9).contains(&listings), "{listings} listings in 6 s");
    assert!(
        docker.subscriptions() >= listings,
        "each session subscribes"
    );
}
