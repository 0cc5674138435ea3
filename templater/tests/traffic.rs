//! Traffic through a real nginx: blue serves; flip moves all of it; a 10% canary lands within
//! ±3 points over 2,000 requests; rollback; health changes follow Consul.

mod common;

use common::*;
use testkit::{unique, Backend, ConsulAgent, NginxServer};

#[tokio::test]
async fn flip_canary_and_rollback_move_traffic_exactly() {
    let consul = ConsulAgent::start().await;
    let nginx = NginxServer::start().await;
    let svc = unique("app");
    let (b1, b2, g1) = (
        Backend::start("blue"),
        Backend::start("blue"),
        Backend::start("green"),
    );
    register(&consul, "b1", &svc, b1.port, &["blue", "public"], "passing").await;
    register(&consul, "b2", &svc, b2.port, &["blue"], "passing").await;
    register(&consul, "g1", &svc, g1.port, &["green"], "passing").await;
    let _t = start_templater(&consul, &nginx, &[]);
    let host = format!("{svc}.localhost");

    let (code, out) = cli_text(&consul, &["flip", &svc, "blue", "--wait-live", "20"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("live on"), "{out}");
    serves_only(&nginx, &host, "blue", 20).await;

    let (code, out) = cli_text(&consul, &["flip", &svc, "--wait-live", "20"]);
    assert_eq!(code, 0, "{out}");
    // --wait-live returned: the very next requests must all be green.
    for _ in 0..50 {
        assert_eq!(fetch(&nginx, &host).await.expect("served"), "green");
    }

    let (code, out) = cli_text(&consul, &["canary", &svc, "10", "--wait-live", "20"]);
    assert_eq!(code, 0, "{out}");
    let counts = tally(&nginx, &host, 2000).await;
    let blue = *counts.get("blue").unwrap_or(&0) as f64 / 20.0;
    assert!(
        (7.0..=13.0).contains(&blue),
        "10% canary landed {blue}%: {counts:?}"
    );

    let (code, out) = cli_text(&consul, &["rollback", &svc, "--wait-live", "20"]);
    assert_eq!(code, 0, "{out}");
    for _ in 0..50 {
        assert_eq!(fetch(&nginx, &host).await.expect("served"), "blue");
    }
    let text = upstreams(&nginx);
    assert!(
        text.contains("backup"),
        "the inactive colour stands by as backup:\n{text}"
    );
}

#[tokio::test]
async fn health_changes_take_instances_in_and_out() {
    let consul = ConsulAgent::start().await;
    let nginx = NginxServer::start().await;
    let svc = unique("web");
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let ca = register(&consul, "a", &svc, a.port, &["public"], "passing").await;
    register(&consul, "b", &svc, b.port, &[], "critical").await;
    let _t = start_templater(&consul, &nginx, &[]);
    let host = format!("{svc}.localhost");
    serves_only(&nginx, &host, "a", 10).await;
    set_check(&consul, &ca, "critical").await;
    // No healthy instance: a valid upstream that answers 502, and nginx keeps loading.
    upstreams_become(&nginx, "empty upstream rendered as down", |t| {
        t.contains("127.0.0.1:9 down")
    })
    .await;
    testkit::eventually(WAIT, "nginx answers 502", || async {
        match fetch(&nginx, &host).await {
            Err(e) if e.to_string().contains("502") => Ok(()),
            other => anyhow::bail!("{other:?}"),
        }
    })
    .await;
    set_check(&consul, &ca, "passing").await;
    serves_only(&nginx, &host, "a", 10).await;
    set_check(&consul, "ttl-b", "passing").await;
    testkit::eventually(WAIT, "both serve", || async {
        let c = tally(&nginx, &host, 20).await;
        if c.len() == 2 {
            Ok(())
        } else {
            anyhow::bail!("{c:?}")
        }
    })
    .await;
}
