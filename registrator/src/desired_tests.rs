//! Unit tests of the desired-state transitions each Docker event causes.

use super::*;
use crate::container::{NetworkAddr, Port, Proto};

fn state(mode: DeregisterMode) -> DesiredState {
    let settings = ModelSettings {
        node: "n".into(),
        fallback_ip: "10.0.0.1".into(),
        kv_prefix: crate::kv::KvPrefix::new("services").expect("valid"),
        ..ModelSettings::default()
    };
    DesiredState::new(settings, mode)
}

fn info(id: &str, labels: &[(&str, &str)]) -> ContainerInfo {
    ContainerInfo {
        id: ContainerId(id.into()),
        name: format!("c-{id}"),
        image: "app:1".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        env: vec![],
        ports: vec![Port {
            container_port: 80,
            proto: Proto::Tcp,
            binding: Some(("0.0.0.0".into(), 8000)),
        }],
        networks: [("bridge".to_string(), NetworkAddr::default())].into(),
        network_mode: "bridge".into(),
        health: None,
        paused: false,
    }
}

fn cid(id: &str) -> ContainerId {
    ContainerId(id.into())
}

#[test]
fn start_then_stop_always_deregisters() {
    let mut s = state(DeregisterMode::Always);
    assert_eq!(s.running(&info("a", &[])), ["n:c-a:80"]);
    assert_eq!(s.stopping(&cid("a")), ["n:c-a:80"]);
    assert!(s.is_empty());
    assert!(s.died(&cid("a"), 0).is_empty());
}

#[test]
fn on_success_keeps_failed_containers_in_maintenance() {
    let mut s = state(DeregisterMode::OnSuccess);
    s.running(&info("a", &[]));
    assert_eq!(s.stopping(&cid("a")), ["n:c-a:80"]);
    assert_eq!(
        s.get("n:c-a:80").and_then(|w| w.maintenance.as_deref()),
        Some("container stopping")
    );
    s.died(&cid("a"), 1);
    assert_eq!(
        s.get("n:c-a:80").and_then(|w| w.maintenance.as_deref()),
        Some("container exited with code 1")
    );
    // A listing without it keeps it; destroy removes it.
    assert!(s.snapshot(&[]).is_empty());
    assert_eq!(s.destroyed(&cid("a")), ["n:c-a:80"]);
    assert!(s.is_empty());
}

#[test]
fn on_success_deregisters_clean_exits() {
    let mut s = state(DeregisterMode::OnSuccess);
    s.running(&info("a", &[]));
    s.stopping(&cid("a"));
    assert_eq!(s.died(&cid("a"), 0), ["n:c-a:80"]);
    assert!(s.is_empty());
}

#[test]
fn restart_clears_maintenance() {
    let mut s = state(DeregisterMode::OnSuccess);
    s.running(&info("a", &[]));
    s.died(&cid("a"), 2);
    s.running(&info("a", &[]));
    assert_eq!(s.get("n:c-a:80").map(|w| w.maintenance.clone()), Some(None));
}

#[test]
fn pause_and_health() {
    let mut s = state(DeregisterMode::Always);
    let mut c = info("a", &[]);
    c.health = Some(CheckStatus::Warning);
    s.running(&c);
    assert_eq!(s.paused(&cid("a"), true), ["n:c-a:80"]);
    assert!(s.paused(&cid("a"), true).is_empty(), "no change, no work");
    assert_eq!(s.paused(&cid("a"), false), ["n:c-a:80"]);
    assert_eq!(s.health(&cid("a"), CheckStatus::Passing), ["n:c-a:80"]);
    assert!(s.health(&cid("a"), CheckStatus::Passing).is_empty());
    assert_eq!(
        s.get("n:c-a:80").and_then(|w| w.health),
        Some(CheckStatus::Passing)
    );
}

#[test]
fn snapshot_adds_missing_removes_gone_and_leaves_unchanged_alone() {
    let mut s = state(DeregisterMode::Always);
    s.running(&info("a", &[]));
    s.running(&info("b", &[]));
    let changed = s.snapshot(&[info("b", &[]), info("c", &[])]);
    assert_eq!(changed, ["n:c-a:80", "n:c-c:80"]);
    assert!(s.get("n:c-a:80").is_none());
}

#[test]
fn duplicate_ids_across_containers_keep_the_first() {
    let mut s = state(DeregisterMode::Always);
    s.running(&info("a", &[("SERVICE_ID", "dup")]));
    assert!(s.running(&info("b", &[("SERVICE_ID", "dup")])).is_empty());
    assert_eq!(s.get("dup").map(|w| w.container.clone()), Some(cid("a")));
    assert_eq!(s.skipped_total, 1);
}

#[test]
fn a_changed_container_drops_services_it_no_longer_has() {
    let mut s = state(DeregisterMode::Always);
    s.running(&info("a", &[]));
    let changed = s.running(&info("a", &[("SERVICE_NAME", "renamed")]));
    assert_eq!(changed, ["n:c-a:80"]);
    assert_eq!(
        s.get("n:c-a:80")
            .map(|w| w.service.registration.name.as_str()),
        Some("renamed")
    );
    assert!(
        s.running(&info("a", &[("SERVICE_NAME", "renamed")]))
            .is_empty(),
        "the same container again changes nothing"
    );
}
