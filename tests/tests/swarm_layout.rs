//! The multi-host layout (compose/swarm) on loopback "hosts": three Consul servers, a host with
//! a client agent, the registrator, the edge (edge.yml: the Lua data plane) and both colours'
//! app stacks. Registration at the host's address, a flip, and the Consul leader killed under
//! keep-alive load while containers start and stop: a new leader is elected, the catalog equals
//! the running containers, no running instance leaves nginx's state, no request fails, deploys
//! go on, and the old leader rejoins. Then the same edge in the reload data plane
//! (edge-reload.yml over edge.yml) serves and flips.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use swarmgate_e2e::compose::instances;
use swarmgate_e2e::expect::{ok, passing, serves_only, HOST};
use swarmgate_e2e::swarm::{SwarmLayout, AGENT_IP};
use swarmgate_e2e::ComposeTool;
use testkit::http::Load;
use testkit::report::secs;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swarm_layout_survives_losing_the_consul_leader() {
    let row = testkit::report::Row::start(
        "3-server Consul cluster: leader SIGKILLed while containers start and stop",
        "after re-election the catalog holds exactly the running containers; the instances running throughout never left nginx's state (Lua data plane); then the reload data plane serves and flips; a flip goes through on two servers; the old leader rejoins and agrees",
    );
    let mut layout = SwarmLayout::up(ComposeTool::V2, 2).await;
    let consul = layout.agent_consul();
    passing(&consul, "blue", 2).await;
    passing(&consul, "green", 2).await;

    // Each instance is registered at its host's address and the port Docker published.
    for e in instances(&consul, "app", false).await.expect("instances") {
        assert_eq!(e.service.address, AGENT_IP, "{e:?}");
        assert_ne!(e.service.port, 80, "{e:?}");
    }
    ok(
        "flip to blue",
        layout.templater(&["flip", "app", "blue", "--wait-live", "30"]),
    );
    serves_only(layout.edge_port, "blue", 20).await;

    // Kill the leader while traffic flows and containers start and stop.
    let blue: Vec<String> = instances(&consul, "app", true)
        .await
        .expect("instances")
        .iter()
        .filter(|e| e.service.tags.iter().flatten().any(|t| t == "blue"))
        .map(|e| format!("{}:{}", e.service.address, e.service.port))
        .collect();
    let nginx_id = layout.edge.containers("nginx")[0].clone();
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (sampling, blue) = (sampling.clone(), blue.clone());
        tokio::task::spawn_blocking(move || {
            let mut samples = 0;
            while sampling.load(Ordering::Relaxed) {
                let state = testkit::docker::docker(&[
                    "exec",
                    &nginx_id,
                    "cat",
                    "/etc/nginx/swarmgate/swarmgate-state.json",
                ]);
                let peers = state_peers(&state, "app");
                for addr in &blue {
                    assert!(
                        peers.contains(addr),
                        "running {addr} lost from nginx's state:\n{state}"
                    );
                }
                samples += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            samples
        })
    };
    let load = Load::keep_alive(layout.edge_port, HOST, 2);
    let old = layout.leader(None).await;
    let killed_at = Instant::now();
    let victim = &layout.servers[old];
    for id in victim.containers("consul-server") {
        testkit::docker::docker(&["kill", "-s", "KILL", &id]);
    }
    let stopped = layout.apps[1].containers("app")[0].clone();
    layout.apps[1].compose(&["up", "-d", "--scale", "app=3"]);
    testkit::docker::docker(&["stop", "-t", "1", &stopped]);
    let new = layout.leader(Some(old)).await;
    let elected = killed_at.elapsed();

    // After the election: every running container registered, nothing stopped remains.
    let running: std::collections::BTreeSet<String> = layout
        .apps
        .iter()
        .flat_map(|p| p.containers("app"))
        .filter(|id| {
            testkit::docker::docker(&["inspect", "-f", "{{.State.Running}}", id]) == "true"
        })
        .collect();
    testkit::eventually(
        swarmgate_e2e::expect::WAIT,
        "catalog equals the running containers",
        || async {
            let ids: std::collections::BTreeSet<String> = instances(&consul, "app", false)
                .await?
                .iter()
                .filter_map(|e| e.service.meta.as_ref()?.get("container-id").cloned())
                .collect();
            let short: std::collections::BTreeSet<String> =
                ids.iter().map(|i| i.chars().take(12).collect()).collect();
            let want: std::collections::BTreeSet<String> = running
                .iter()
                .map(|i| i.chars().take(12).collect())
                .collect();
            anyhow::ensure!(short == want, "catalog {short:?} running {want:?}");
            Ok(())
        },
    )
    .await;
    let converged = killed_at.elapsed();
    assert!(!running
        .iter()
        .any(|r| r.starts_with(&stopped) || stopped.starts_with(r.as_str())));

    // Deploys go on with two servers.
    ok(
        "flip to green without the old leader",
        layout.templater(&["flip", "app", "green", "--wait-live", "60"]),
    );
    serves_only(layout.edge_port, "green", 20).await;
    passing(&consul, "green", 2).await;
    sampling.store(false, Ordering::Relaxed);
    let samples = sampler.await.expect("sampler");
    let totals = load.finish().await;
    assert_eq!(totals.failed, 0, "{totals:?}");
    assert_ne!(new, old);
    row.pass(&format!(
            "new leader {}, catalog converged {}; {} keep-alive requests on {} connections, {} failed; {samples} state samples, 0 losses",
            secs(elected),
            secs(converged),
            totals.ok,
            totals.connections,
            totals.failed
        ));

    // The old leader comes back and rejoins; the catalog on it agrees.
    victim.compose(&["up", "-d"]);
    layout.members_alive(4).await;
    let back = layout.server_consul(old);
    testkit::eventually(
        swarmgate_e2e::expect::WAIT,
        "rejoined server sees 3 green",
        || async {
            let n = instances(&back, "app", true)
                .await?
                .iter()
                .filter(|e| e.service.tags.iter().flatten().any(|t| t == "green"))
                .count();
            anyhow::ensure!(n == 2, "{n}");
            Ok(())
        },
    )
    .await;

    // The reload data plane: plain nginx, every change rendered into its config. A fresh edge
    // (`down -v`: the volume holds the Lua plane's files) serves and flips.
    layout.edge.compose(&["down", "-v", "-t", "2"]);
    layout.edge.overlay("swarm/edge-reload.yml");
    layout.edge.compose(&["up", "-d"]);
    ok(
        "flip to blue in reload mode",
        layout.templater(&["flip", "app", "blue", "--wait-live", "60"]),
    );
    serves_only(layout.edge_port, "blue", 20).await;
    let nginx_id = layout.edge.containers("nginx")[0].clone();
    let conf = testkit::docker::docker(&[
        "exec",
        &nginx_id,
        "cat",
        "/etc/nginx/swarmgate/swarmgate-upstreams.conf",
    ]);
    for addr in &blue {
        assert!(conf.contains(addr), "{addr} not in nginx's config:\n{conf}");
    }
}

/// The `address:port` of every peer of `service` in a state document (the Lua data plane's state
/// file).
fn state_peers(state: &str, service: &str) -> Vec<String> {
    let doc: serde_json::Value =
        serde_json::from_str(state).unwrap_or_else(|e| panic!("state file: {e}: {state}"));
    doc["services"][service]["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{}:{}", p["address"].as_str().unwrap_or("?"), p["port"]))
        .collect()
}
