//! Swarm tasks (a single-node swarm): registered under the swarm service's name, at their
//! address on the network named by `--network`/`SERVICE_NETWORK`.

mod common;

use std::time::Duration;

use common::instances;
use testkit::docker::{docker, docker_quiet};
use testkit::{eventually, unique, ConsulAgent, TestImage};

/// Joins a single-node swarm for the test, leaving it afterwards if it was not there before.
struct Swarm {
    created: bool,
    cleanup: Vec<Vec<String>>,
}

impl Swarm {
    fn ensure() -> Self {
        let state = docker(&["info", "-f", "{{.Swarm.LocalNodeState}}"]);
        let created = state != "active";
        if created {
            docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        }
        Swarm {
            created,
            cleanup: Vec::new(),
        }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for args in self.cleanup.iter().rev() {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            docker_quiet(&args);
        }
        if self.created {
            docker_quiet(&["swarm", "leave", "--force"]);
        }
    }
}

#[tokio::test]
async fn swarm_tasks_register_under_the_swarm_service_name_on_the_named_network() {
    let mut swarm = Swarm::ensure();
    let consul = ConsulAgent::start().await;
    let net = unique("sgnet");
    docker(&["network", "create", "-d", "overlay", "--attachable", &net]);
    swarm
        .cleanup
        .push(vec!["network".into(), "rm".into(), net.clone()]);
    let svc = unique("shop");
    docker(&[
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        &svc,
        "--network",
        &net,
        "--replicas",
        "2",
        "--label",
        "swarmgate-test=1",
        TestImage::ensure(),
    ]);
    swarm
        .cleanup
        .push(vec!["service".into(), "rm".into(), svc.clone()]);
    let _reg = common::Registrator::start(&consul, &["-internal", "--network", &net]);
    let found = instances(&consul, &svc, 2).await;
    for e in &found {
        let addr = e["Service"]["Address"].as_str().expect("address");
        assert!(
            addr.starts_with("10."),
            "overlay address expected, got {addr}"
        );
        assert_eq!(e["Service"]["Port"], 80);
    }
    let tasks = || {
        docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.swarm.service.name={svc}"),
        ])
        .lines()
        .count()
    };
    docker(&["service", "scale", "--detach", &format!("{svc}=1")]);
    // Swarm's own pace is not the registrator's: first Docker shows one task, then Consul.
    eventually(
        Duration::from_secs(60),
        "swarm scaled the service down to one task",
        || async {
            let n = tasks();
            if n == 1 {
                Ok(())
            } else {
                anyhow::bail!("{n} task containers")
            }
        },
    )
    .await;
    instances(&consul, &svc, 1).await;
}
