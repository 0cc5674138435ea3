//! One bad service never freezes the edge, and no name takes over another's host: a set of
//! poisoned services sits in Consul while a healthy service flips, and each poisoned one is
//! reported as not served (status and /metrics) while the rest keeps updating.

mod common;

use common::*;
use serde_json::json;
use testkit::{eventually, unique, Backend, ConsulAgent, NginxServer};

async fn register_raw(consul: &ConsulAgent, body: serde_json::Value) {
    consul
        .put_json("/v1/agent/service/register", &body)
        .await
        .expect("register");
}

/// The services an edge reports as not served, with the reasons.
fn not_served(consul: &ConsulAgent) -> serde_json::Map<String, serde_json::Value> {
    let out = cli(consul, &["status", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    report["edges"][0]["not_served"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn poisoned_services_are_left_out_alone_and_take_no_host() {
    let row = testkit::report::Row::start(
        "poisoned services beside a healthy one (case-colliding names, a leading dot, missing TLS files, a host name, a namespace collision, a critical instance tagged public)",
        "flips of the healthy service go live and are served; no vhost is taken over; each poisoned service is reported as not served in `status` and /metrics",
    );
    let consul = ConsulAgent::start().await;
    let nginx = NginxServer::start().await;
    let (blue, green, incumbent, shop_api) = (
        Backend::start("blue"),
        Backend::start("green"),
        Backend::start("incumbent"),
        Backend::start("shop-api"),
    );
    let good = unique("good");
    register(
        &consul,
        "g-b",
        &good,
        blue.port,
        &["blue", "public"],
        "passing",
    )
    .await;
    register(
        &consul,
        "g-g",
        &good,
        green.port,
        &["green", "public"],
        "passing",
    )
    .await;
    let app = unique("app");
    register(
        &consul,
        "app-1",
        &app,
        incumbent.port,
        &["public"],
        "passing",
    )
    .await;
    let shop = unique("shop");
    register(
        &consul,
        "sa-1",
        &format!("{shop}-api"),
        shop_api.port,
        &["public"],
        "passing",
    )
    .await;
    let t = start_templater(&consul, &nginx, &[]);
    serves_only(&nginx, &format!("{app}.localhost"), "incumbent", 5).await;
    serves_only(&nginx, &format!("{shop}-api.localhost"), "shop-api", 5).await;

    // The poison.
    let evil = Backend::start("evil");
    let port = evil.port;
    register_raw(&consul, json!({"ID": "upper", "Name": app.to_uppercase(), "Address": "127.0.0.1", "Port": port, "Tags": ["public"]})).await;
    register_raw(&consul, json!({"ID": "dot", "Name": format!(".{app}"), "Address": "127.0.0.1", "Port": port, "Tags": ["public"]})).await;
    let tls = unique("tls");
    register_raw(
        &consul,
        json!({"ID": "tls", "Name": tls, "Address": "127.0.0.1", "Port": port, "Tags": ["public"],
        "Meta": {"tls_cert": "/nonexistent/cert.pem", "tls_key": "/nonexistent/key.pem"}}),
    )
    .await;
    let dns = unique("dns");
    register_raw(
        &consul,
        json!({"ID": "dns", "Name": dns, "Address": "no-such-host.invalid", "Port": port}),
    )
    .await;
    register_raw(
        &consul,
        json!({"ID": "ns", "Name": shop, "Address": "127.0.0.1", "Port": port, "Tags": ["public"],
        "Meta": {"namespace": "api"}}),
    )
    .await;
    let quiet = unique("quiet");
    register_raw(&consul, json!({"ID": "crit", "Name": quiet, "Address": "127.0.0.1", "Port": port, "Tags": ["public"],
        "Meta": {"tls_cert": "/nonexistent/c.pem", "tls_key": "/nonexistent/k.pem"},
        "Checks": [{"CheckID": "crit-ttl", "Name": "ttl", "TTL": "10m", "Status": "critical"}]})).await;

    // The healthy service still deploys, live and served, twice.
    for color in ["green", "blue"] {
        let (code, out) = cli_text(&consul, &["flip", &good, color, "--wait-live", "20"]);
        assert_eq!(code, 0, "{out}");
        for _ in 0..20 {
            assert_eq!(
                fetch(&nginx, &format!("{good}.localhost"))
                    .await
                    .expect("served"),
                color
            );
        }
    }
    // No host taken over: the incumbents still answer their hosts, a sub-domain is no one's.
    serves_only(&nginx, &format!("{app}.localhost"), "incumbent", 10).await;
    serves_only(&nginx, &format!("{shop}-api.localhost"), "shop-api", 10).await;
    let sub = fetch(&nginx, &format!("x.{app}.localhost")).await;
    assert!(
        sub.as_ref().is_err_and(|e| e.to_string().contains("404")),
        "{sub:?}"
    );
    let quiet_host = fetch(&nginx, &format!("{quiet}.localhost")).await;
    assert!(
        quiet_host
            .as_ref()
            .is_err_and(|e| e.to_string().contains("404")),
        "a critical instance cannot publish its service: {quiet_host:?}"
    );

    // Each poisoned service is reported, with its reason.
    let reported = eventually(WAIT, "poisoned services reported", || async {
        let n = not_served(&consul);
        anyhow::ensure!(n.len() >= 2, "{n:?}");
        Ok(n)
    })
    .await;
    assert!(
        reported[&app.to_uppercase()]
            .as_str()
            .expect("reason")
            .contains("collides"),
        "{reported:?}"
    );
    assert!(
        reported[&tls]
            .as_str()
            .expect("reason")
            .contains("/nonexistent/cert.pem"),
        "{reported:?}"
    );
    assert!(
        !reported.contains_key(&app),
        "the incumbent keeps its upstream"
    );
    let status = cli_text(&consul, &["status", &dns]).1;
    assert!(
        status.contains("left out: registered at host name no-such-host.invalid"),
        "a host name is left out, said: {status}"
    );
    let status = cli_text(&consul, &["status", &shop]).1;
    assert!(status.contains("also claimed"), "{status}");
    let log = t.log();
    assert!(
        log.contains(&format!(".{app}")),
        "the leading dot is reported: {log}"
    );
    let m = t.metrics().await;
    assert!(
        testkit::metrics::sample(&m, "templater_services_not_served") >= Some(2.0),
        "{m}"
    );
    assert_eq!(
        testkit::metrics::sample(&m, "templater_last_pass_failed"),
        Some(0.0)
    );
    row.pass(&format!(
        "{} poisoned services reported, 2 flips live and served",
        reported.len()
    ));
}

/// With host names allowed, one that does not resolve makes `nginx -t` fail: that service is
/// found (by halving) and held, every other keeps updating.
#[tokio::test]
async fn a_service_nginx_refuses_is_found_and_held_alone() {
    let row = testkit::report::Row::start(
        "a service whose config nginx refuses (an unresolvable host name, --allow-hostnames)",
        "the refused service is found by halving and held at its last good config or left out; a flip of another service goes live and is served",
    );
    let consul = ConsulAgent::start().await;
    let nginx = NginxServer::start().await;
    let (blue, green) = (Backend::start("blue"), Backend::start("green"));
    let good = unique("good");
    register(
        &consul,
        "g-b",
        &good,
        blue.port,
        &["blue", "public"],
        "passing",
    )
    .await;
    register(
        &consul,
        "g-g",
        &good,
        green.port,
        &["green", "public"],
        "passing",
    )
    .await;
    let dns = unique("dns");
    register(&consul, "d-ok", &dns, blue.port, &["public"], "passing").await;
    let t = start_templater(&consul, &nginx, &["--allow-hostnames"]);
    serves_only(&nginx, &format!("{dns}.localhost"), "blue", 5).await;
    register_raw(
        &consul,
        json!({"ID": "d-bad", "Name": dns, "Address": "no-such-host.invalid", "Port": 80}),
    )
    .await;
    let (code, out) = cli_text(&consul, &["flip", &good, "green", "--wait-live", "20"]);
    assert_eq!(code, 0, "{out}");
    serves_only(&nginx, &format!("{good}.localhost"), "green", 20).await;
    // The refused service keeps its last good config.
    serves_only(&nginx, &format!("{dns}.localhost"), "blue", 10).await;
    let reported = eventually(WAIT, "held service reported", || async {
        let n = not_served(&consul);
        anyhow::ensure!(n.contains_key(&dns), "{n:?}");
        Ok(n)
    })
    .await;
    assert!(
        reported[&dns]
            .as_str()
            .expect("reason")
            .contains("no-such-host.invalid"),
        "{reported:?}"
    );
    assert!(
        t.log().contains("held at its last good config"),
        "{}",
        t.log()
    );
    row.pass("—");
}
