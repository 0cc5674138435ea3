//! The multi-host layout (compose/swarm) on loopback "hosts": three Consul servers, a host with
//! a client agent, the registrator, the edge and both colours' app stacks. Registration at the
//! host's address, a flip, and the Consul leader killed under load: a new leader is elected,
//! no request fails, deploys and registrations go on, and the old leader rejoins.

use std::time::Instant;

use swarmgate_e2e::compose::instances;
use swarmgate_e2e::expect::{ok, passing, serves_only, HOST};
use swarmgate_e2e::swarm::{SwarmLayout, AGENT_IP, SERVER_IPS};
use swarmgate_e2e::ComposeTool;
use testkit::http::Load;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swarm_layout_survives_losing_the_consul_leader() {
    let layout = SwarmLayout::up(ComposeTool::V2, 2).await;
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

    // Kill the leader while traffic flows.
    let load = Load::start(layout.edge_port, HOST, 2);
    let old = layout.leader(None).await;
    let killed_at = Instant::now();
    let victim = &layout.servers[old];
    for id in victim.containers("consul-server") {
        testkit::docker::docker(&["kill", "-s", "KILL", &id]);
    }
    let new = layout.leader(Some(old)).await;
    let elected = killed_at.elapsed();
    assert_ne!(new, old, "leader still {}", SERVER_IPS[old]);
    eprintln!(
        "leader {} killed: {} elected after {:.1} s",
        SERVER_IPS[old],
        SERVER_IPS[new],
        elected.as_secs_f64()
    );

    // Deploys and registrations go on with two servers.
    ok(
        "flip to green without the old leader",
        layout.templater(&["flip", "app", "green", "--wait-live", "60"]),
    );
    serves_only(layout.edge_port, "green", 20).await;
    layout.apps[1].compose(&["up", "-d", "--scale", "app=3"]);
    passing(&consul, "green", 3).await;
    let totals = load.finish().await;
    assert_eq!(totals.failed, 0, "{totals:?}");
    eprintln!("{} requests through the leader kill, 0 failed", totals.ok);

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
            anyhow::ensure!(n == 3, "{n}");
            Ok(())
        },
    )
    .await;
}
