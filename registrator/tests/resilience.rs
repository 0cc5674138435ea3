//! Never lose the truth: Consul restarted empty or unreachable, the Docker event stream cut,
//! the registrator SIGKILLed, orphans and ownership, leader wait and exit codes.

mod common;

use std::time::Duration;

use common::{instances, Registrator, WAIT};
use serde_json::json;
use testkit::proxy::SocketProxy;
use testkit::{eventually, unique, ConsulAgent, Container, TestImage};

fn named(prefix: &str, name: &str) -> Container {
    Container::run(
        prefix,
        &[
            "-p",
            "80",
            "-l",
            &format!("SERVICE_NAME={name}"),
            TestImage::ensure(),
        ],
    )
}

#[tokio::test]
async fn consul_restarted_empty_gets_everything_back_including_kv() {
    let row = testkit::report::Row::start(
        "a Consul agent restarted with its data wiped",
        "every running container's service and KV record come back without any Docker event",
    );
    let mut consul = ConsulAgent::start().await;
    let reg = Registrator::start(&consul, &[]);
    let name = unique("wiped");
    let _a = named("wa", &name);
    let _b = named("wb", &name);
    instances(&consul, &name, 2).await;
    consul.restart().await;
    let back = std::time::Instant::now();
    instances(&consul, &name, 2).await;
    let services_back = back.elapsed();
    eventually(WAIT, "kv records back", || async {
        let keys = consul.kv_keys(&format!("services/{name}/")).await?;
        if keys.len() == 2 {
            Ok(())
        } else {
            anyhow::bail!("{keys:?}")
        }
    })
    .await;
    assert!(reg.log().contains("re-sending"), "{}", reg.log());
    row.pass(&format!(
        "services back {} after the agent answered, KV {} (--verify-interval 1)",
        testkit::report::secs(services_back),
        testkit::report::secs(back.elapsed())
    ));
}

#[tokio::test]
async fn consul_unreachable_while_containers_come_and_go_converges_on_return() {
    let mut consul = ConsulAgent::start().await;
    let mut reg = Registrator::start(&consul, &[]);
    let (stays, leaves, arrives) = (unique("stays"), unique("leaves"), unique("arrives"));
    let _s = named("s", &stays);
    let l = named("l", &leaves);
    instances(&consul, &stays, 1).await;
    instances(&consul, &leaves, 1).await;
    consul.stop();
    l.stop();
    let _a = named("a", &arrives);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        reg.alive(),
        "registrator must survive a consul outage:\n{}",
        reg.log()
    );
    consul.restart().await;
    instances(&consul, &stays, 1).await;
    instances(&consul, &arrives, 1).await;
    instances(&consul, &leaves, 0).await;
}

#[tokio::test]
async fn a_cut_event_stream_is_resubscribed_and_reconciled() {
    let row = testkit::report::Row::start(
        "the Docker event stream cut (socket proxied and cut)",
        "the registrator stays up, resubscribes with backoff and reconciles: a container stopped during the cut is gone, one started is registered",
    );
    let consul = ConsulAgent::start().await;
    let proxy = SocketProxy::start();
    let mut reg = Registrator::start_env(
        &consul,
        &["-cleanup"],
        &[("DOCKER_HOST", &proxy.docker_host())],
    );
    let (before, during) = (unique("before"), unique("during"));
    let b = named("b", &before);
    instances(&consul, &before, 1).await;
    proxy.cut();
    b.stop();
    let _d = named("d", &during);
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();
    let restored = std::time::Instant::now();
    instances(&consul, &during, 1).await;
    instances(&consul, &before, 0).await;
    assert!(reg.alive());
    assert!(reg.log().contains("resubscribing"), "{}", reg.log());
    row.pass(&format!(
        "converged {} after the socket came back",
        testkit::report::secs(restored.elapsed())
    ));
}

#[tokio::test]
async fn cleanup_removes_only_what_this_node_owns() {
    let consul = ConsulAgent::start().await;
    let node = unique("owner");
    let register = |id: &str, name: &str, meta: serde_json::Value| {
        let body = json!({"ID": id, "Name": name, "Port": 1, "Meta": meta});
        let consul = &consul;
        async move { consul.register(&body).await }
    };
    let orphan = unique("orphan");
    register(
        &format!("{node}:gone:80"),
        &orphan,
        json!({"managed-by": "swarmgate-registrator", "node": node}),
    )
    .await;
    register("foreign-1", &orphan, json!({})).await;
    register(
        "other-node:x:80",
        &orphan,
        json!({"managed-by": "swarmgate-registrator", "node": "other-node"}),
    )
    .await;
    // No marker, but gliderlabs' id shape with this node's name and no container behind it:
    // what gliderlabs left on this host; removed (the migration path).
    register(&format!("{node}:lookalike:80"), &orphan, json!({})).await;
    // The same shape with another node's name, or not quite the shape: never touched.
    register("other-node:y:80", &orphan, json!({})).await;
    register(&format!("{node}:notaport"), &orphan, json!({})).await;
    consul
        .kv_put(
            &format!("services/{orphan}/{node}:gone:80"),
            &json!({"node": node}).to_string(),
        )
        .await
        .expect("kv");
    consul
        .kv_put(
            &format!("services/{orphan}/stale"),
            &json!({"node": node}).to_string(),
        )
        .await
        .expect("kv");
    consul
        .kv_put(
            &format!("services/{orphan}/theirs"),
            &json!({"node": "other-node"}).to_string(),
        )
        .await
        .expect("kv");
    let _reg = Registrator::start_as(&node, &consul.uri(), &["-cleanup"], &[]);
    let left = instances(&consul, &orphan, 4).await;
    let mut ids: Vec<_> = left
        .iter()
        .map(|e| e["Service"]["ID"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    let mut want = vec![
        "foreign-1".to_string(),
        "other-node:x:80".to_string(),
        "other-node:y:80".to_string(),
        format!("{node}:notaport"),
    ];
    want.sort();
    assert_eq!(ids, want);
    eventually(WAIT, "only the other node's kv record is left", || async {
        let keys = consul.kv_keys(&format!("services/{orphan}/")).await?;
        if keys == [format!("services/{orphan}/theirs")] {
            Ok(())
        } else {
            anyhow::bail!("{keys:?}")
        }
    })
    .await;
}

#[tokio::test]
async fn sigkilled_and_restarted_leaves_no_duplicates_and_no_dangling_services() {
    let row = testkit::report::Row::start(
        "the registrator SIGKILLed and restarted",
        "a container stopped while it was dead is removed; the one still running is registered once (no duplicate, no dangling service)",
    );
    let consul = ConsulAgent::start().await;
    let node = unique("phoenix");
    let mut reg = Registrator::start_as(&node, &consul.uri(), &["-cleanup"], &[]);
    let (keeps, dies) = (unique("keeps"), unique("dies"));
    let _k = named("k", &keeps);
    let d = named("d", &dies);
    instances(&consul, &keeps, 1).await;
    instances(&consul, &dies, 1).await;
    reg.signal("KILL");
    reg.wait();
    d.stop();
    let reg = Registrator::start_as(&node, &consul.uri(), &["-cleanup"], &[]);
    instances(&consul, &dies, 0).await;
    let [k] = instances(&consul, &keeps, 1)
        .await
        .try_into()
        .expect("one, not two");
    let keeps_id = k["Service"]["ID"].as_str().expect("id").to_string();
    assert!(keeps_id.starts_with(&node));
    // -cleanup judges Consul only after the first complete listing: the running container's
    // service was never taken away at start-up, not even briefly.
    let log = reg.log();
    let removed: Vec<_> = log
        .lines()
        .filter(|l| l.contains("removing service") || l.contains("deregistered"))
        .filter(|l| l.contains(&keeps_id))
        .collect();
    assert!(removed.is_empty(), "{removed:?}");
    row.pass("—");
}

#[tokio::test]
async fn leader_wait_follows_the_retry_flags_and_exit_codes_are_documented() {
    let port = testkit::free_port();
    let uri = format!("consul://127.0.0.1:{port}");
    let mut once = Registrator::start_as(&unique("noleader"), &uri, &["-retry-attempts", "0"], &[]);
    assert_eq!(once.wait(), Some(69));
    assert!(once.log().contains("no leader"), "{}", once.log());

    let mut bad = Registrator::start_as(&unique("badflag"), "etcd://x:1", &[], &[]);
    assert_eq!(bad.wait(), Some(64));
    assert!(bad.log().contains("etcd://x:1"), "{}", bad.log());

    let help = std::process::Command::new(env!("CARGO_BIN_EXE_registrator"))
        .arg("--help")
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("EXIT CODES") && help.contains("69"), "{help}");
}

#[tokio::test]
async fn deregister_on_shutdown_removes_this_nodes_services() {
    let consul = ConsulAgent::start().await;
    let mut reg = Registrator::start(&consul, &["--deregister-on-shutdown"]);
    let name = unique("leaving");
    let _c = named("c", &name);
    instances(&consul, &name, 1).await;
    reg.signal("TERM");
    assert_eq!(reg.wait(), Some(0));
    instances(&consul, &name, 0).await;
}

#[tokio::test]
async fn acl_default_deny_without_a_token_is_reported_and_a_token_works() {
    let row = testkit::report::Row::start(
        "registrator with Consul ACLs, default deny",
        "without a token: keeps running and names the missing permission (service:write); with a token holding README's policy: registers service and KV, no denial",
    );
    let consul = ConsulAgent::start_with(&["-hcl", &ConsulAgent::acl_hcl()]).await;
    let name = unique("guarded");
    let _c = named("g", &name);
    let mut denied = Registrator::start(&consul, &[]);
    eventually(WAIT, "the missing permission is named", || async {
        let log = denied.log();
        if log.contains("permission denied") && log.contains("service:write") {
            Ok(())
        } else {
            anyhow::bail!("{log}")
        }
    })
    .await;
    assert!(
        denied.alive(),
        "a refused registration does not stop the agent"
    );
    drop(denied);
    // A token holding exactly the policy README documents is enough.
    let token = consul
        .acl_token(&testkit::consul::readme_policy("registrator"))
        .await
        .expect("token");
    let started = std::time::Instant::now();
    let ok = Registrator::start_env(&consul, &["-cleanup"], &[("CONSUL_HTTP_TOKEN", &token)]);
    eventually(
        WAIT,
        "registered with the minimal token, KV too",
        || async {
            let get = |path: String| {
                consul
                    .http
                    .get(format!("{}{path}", consul.url()))
                    .header("X-Consul-Token", testkit::consul::ACL_MASTER)
                    .send()
            };
            let body = get(format!("/v1/health/service/{name}"))
                .await?
                .text()
                .await?;
            anyhow::ensure!(body.contains(&name), "{body}");
            let kv = get(format!("/v1/kv/services/{name}/?keys"))
                .await?
                .text()
                .await?;
            anyhow::ensure!(kv.contains(&name), "{kv}");
            Ok(())
        },
    )
    .await;
    assert!(
        !ok.log().contains("permission denied"),
        "the documented policy must be enough:\n{}",
        ok.log()
    );
    row.pass(&format!(
        "registered {} after start with the minimal token",
        testkit::report::secs(started.elapsed())
    ));
}
