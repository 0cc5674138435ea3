//! The multi-host layout of compose/swarm on one machine: each "host" is a loopback address
//! (127.0.0.11-13 for the three Consul servers, 127.0.0.21 for the host that runs the agent,
//! the registrator, the edge and the apps), every daemon on host networking, exactly as the
//! files run on real hosts with real addresses.

use std::time::Duration;

use swarmgate_consul::Client;
use testkit::{eventually, free_port};

use crate::compose::{consul_client, templater_on_host, ComposeTool, Project};
use crate::images;

/// The server "hosts".
pub const SERVER_IPS: [&str; 3] = ["127.0.0.11", "127.0.0.12", "127.0.0.13"];
/// The app and edge "host".
pub const AGENT_IP: &str = "127.0.0.21";

/// The layout, up. Dropping it removes every project (apps first).
pub struct SwarmLayout {
    /// `app.yml` per colour: blue, green.
    pub apps: Vec<Project>,
    pub edge: Project,
    pub agent: Project,
    /// `consul-server.yml` per server host, in [`SERVER_IPS`] order.
    pub servers: Vec<Project>,
    /// nginx's port on the agent host.
    pub edge_port: u16,
}

fn host_env(name: &str, ip: &str) -> Vec<(&'static str, String)> {
    vec![
        ("NODE_NAME", name.to_string()),
        ("HOST_IP", ip.to_string()),
        ("CONSUL_SERVER_1", SERVER_IPS[0].to_string()),
        ("CONSUL_SERVER_2", SERVER_IPS[1].to_string()),
        ("CONSUL_SERVER_3", SERVER_IPS[2].to_string()),
    ]
}

impl SwarmLayout {
    /// Starts the three servers, the agent host (Consul client + registrator), the edge and
    /// `replicas` instances of the app in each colour; waits for a leader and the agent's join.
    pub async fn up(tool: ComposeTool, replicas: u32) -> Self {
        let servers: Vec<Project> = SERVER_IPS
            .iter()
            .enumerate()
            .map(|(i, ip)| {
                let p = Project::new(
                    tool,
                    "swarm/consul-server.yml",
                    "sg-swarm-server",
                    &host_env(&format!("sg-server-{}", i + 1), ip),
                );
                p.compose(&["up", "-d"]);
                p
            })
            .collect();
        let agent = Project::new(
            tool,
            "swarm/agent.yml",
            "sg-swarm-agent",
            &host_env("sg-agent-1", AGENT_IP),
        );
        agent.compose(&["up", "-d"]);
        let edge_port = free_port();
        let mut edge_env = host_env("sg-agent-1", AGENT_IP);
        edge_env.push(("EDGE_PORT", edge_port.to_string()));
        let edge = Project::new(tool, "swarm/edge.yml", "sg-swarm-edge", &edge_env);
        edge.compose(&["up", "-d"]);
        let apps = ["blue", "green"]
            .iter()
            .map(|color| {
                let p = Project::new(
                    tool,
                    "swarm/app.yml",
                    &format!("sg-swarm-{color}"),
                    &[
                        ("COLOR", color.to_string()),
                        ("APP_IMAGE", format!("swarmgate/demo-app:{}", images::tag())),
                    ],
                );
                p.compose(&["up", "-d", "--scale", &format!("app={replicas}")]);
                p
            })
            .collect();
        let layout = SwarmLayout {
            apps,
            edge,
            agent,
            servers,
            edge_port,
        };
        layout.members_alive(4).await;
        layout
    }

    /// A client for the agent host's Consul agent (what the registrator and templater use).
    pub fn agent_consul(&self) -> Client {
        consul_client(AGENT_IP, 8500)
    }

    /// A client for server `i`.
    pub fn server_consul(&self, i: usize) -> Client {
        consul_client(SERVER_IPS[i], 8500)
    }

    /// Waits until the agent sees a leader and `n` alive members.
    pub async fn members_alive(&self, n: usize) {
        let consul = self.agent_consul();
        eventually(
            Duration::from_secs(120),
            &format!("a leader and {n} alive members"),
            || async {
                anyhow::ensure!(consul.leader().await?.is_some(), "no leader");
                let nodes = consul
                    .catalog_nodes(&swarmgate_consul::QueryOptions::default())
                    .await?
                    .0;
                anyhow::ensure!(nodes.len() >= n, "{} nodes", nodes.len());
                Ok(())
            },
        )
        .await;
    }

    /// The index in [`SERVER_IPS`] of the current leader, once it is not `not`.
    pub async fn leader(&self, not: Option<usize>) -> usize {
        let consul = self.agent_consul();
        eventually(Duration::from_secs(60), "a leader", || async {
            let leader = consul.leader().await?.unwrap_or_default();
            let i = SERVER_IPS
                .iter()
                .position(|ip| leader.starts_with(&format!("{ip}:")))
                .ok_or_else(|| anyhow::anyhow!("leader {leader:?}"))?;
            anyhow::ensure!(Some(i) != not, "leader still {leader}");
            Ok(i)
        })
        .await
    }

    /// `templater ARGS` on the host against the agent host's Consul.
    pub fn templater(&self, args: &[&str]) -> (i32, String) {
        templater_on_host(&format!("{AGENT_IP}:8500"), args)
    }
}
