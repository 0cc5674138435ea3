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
        started_at: "t0".into(),
        config: Default::default(),
    }
}

fn cid(id: &str) -> ContainerId {
    ContainerId(id.into())
}

fn maintenance(s: &DesiredState, id: &str) -> Option<String> {
    s.get(id).and_then(Want::maintenance)
}

fn restarted(id: &str, at: &str) -> ContainerInfo {
    ContainerInfo {
        started_at: at.into(),
        ..info(id, &[])
    }
}

#[test]
fn the_containers_own_stop_signal_is_a_stop_request_and_another_signal_is_not() {
    let mut s = state(DeregisterMode::Always);
    let mut winch = info("a", &[]);
    winch.config.stop_signal = Some(28);
    s.started(&winch);
    assert!(s.signalled(&cid("a"), 1).is_empty(), "SIGHUP is no stop");
    assert!(!s.is_empty());
    assert_eq!(s.signalled(&cid("a"), 28), ["n:c-a:80"]);
    assert!(s.is_empty(), "out at its stop signal");
    // A listing during the grace period keeps it out.
    assert!(s.listed(&winch).is_empty());
    assert!(s.is_empty());
    // Docker's history (a restarted registrator): the listing that inspects it decides.
    let mut h = state(DeregisterMode::Always);
    assert!(h.signalled(&cid("a"), 28).is_empty(), "a hint");
    assert!(h.signalled(&cid("c"), 28).is_empty(), "a hint");
    assert!(h.listed(&winch).is_empty(), "its own stop signal: stopping");
    assert!(
        !h.listed(&info("c", &[])).is_empty(),
        "not its stop signal: in rotation"
    );
    // Without a stop signal of its own, SIGWINCH is nothing.
    let mut t = state(DeregisterMode::Always);
    t.started(&info("b", &[]));
    assert!(t.signalled(&cid("b"), 28).is_empty());
}

#[test]
fn start_then_stop_always_deregisters() {
    let mut s = state(DeregisterMode::Always);
    assert_eq!(s.started(&info("a", &[])), ["n:c-a:80"]);
    assert_eq!(s.stopping(&cid("a")), ["n:c-a:80"]);
    assert!(s.is_empty());
    assert!(s.died(&cid("a"), 0).is_empty());
}

#[test]
fn a_stopping_container_stays_out_through_listings_until_it_starts_again() {
    for mode in [DeregisterMode::Always, DeregisterMode::OnSuccess] {
        let mut s = state(mode);
        s.started(&info("a", &[]));
        s.stopping(&cid("a"));
        // Listings (resync, reconnect) still show it running, the same run.
        for _ in 0..3 {
            s.listed(&info("a", &[]));
            s.listing_complete(&[cid("a")]);
            match mode {
                DeregisterMode::Always => assert!(s.is_empty(), "{mode:?}"),
                DeregisterMode::OnSuccess => assert_eq!(
                    maintenance(&s, "n:c-a:80").as_deref(),
                    Some("container stopping")
                ),
            }
        }
        // `docker restart`: a new run, back in rotation.
        assert_eq!(s.started(&restarted("a", "t1")), ["n:c-a:80"]);
        assert_eq!(maintenance(&s, "n:c-a:80"), None);
        s.listed(&restarted("a", "t1"));
        assert_eq!(maintenance(&s, "n:c-a:80"), None);
    }
}

#[test]
fn a_listing_of_a_new_run_puts_a_stopped_container_back() {
    let mut s = state(DeregisterMode::Always);
    s.started(&info("a", &[]));
    s.stopping(&cid("a"));
    // The start event is still on its way; the listing already shows the new run.
    assert_eq!(s.listed(&restarted("a", "t1")), ["n:c-a:80"]);
}

#[test]
fn a_stop_hint_keeps_the_listed_container_out_and_a_start_clears_it() {
    let mut s = state(DeregisterMode::OnSuccess);
    assert!(s.stopping(&cid("a")).is_empty(), "not followed yet: a hint");
    s.listed(&info("a", &[]));
    assert_eq!(
        maintenance(&s, "n:c-a:80").as_deref(),
        Some("container stopping")
    );
    let mut s = state(DeregisterMode::Always);
    s.stopping(&cid("b"));
    s.listed(&info("b", &[]));
    assert!(s.is_empty());
    s.stopping(&cid("c"));
    s.started(&info("c", &[]));
    assert_eq!(s.len(), 1, "a start event means a new run");
}

#[test]
fn unpausing_a_stopping_container_keeps_it_out() {
    let mut s = state(DeregisterMode::OnSuccess);
    s.started(&info("a", &[]));
    s.stopping(&cid("a"));
    s.started(&info("a", &[]));
    assert_eq!(
        maintenance(&s, "n:c-a:80").as_deref(),
        Some("container stopping")
    );
}

#[test]
fn on_success_keeps_failed_containers_in_maintenance() {
    let mut s = state(DeregisterMode::OnSuccess);
    s.started(&info("a", &[]));
    assert_eq!(s.stopping(&cid("a")), ["n:c-a:80"]);
    assert_eq!(
        maintenance(&s, "n:c-a:80").as_deref(),
        Some("container stopping")
    );
    s.died(&cid("a"), 1);
    assert_eq!(
        maintenance(&s, "n:c-a:80").as_deref(),
        Some("container exited with code 1")
    );
    // A late `stop` event (Docker sends it after `die`) changes nothing.
    assert!(s.stopping(&cid("a")).is_empty());
    // A listing without it keeps it; destroy removes it.
    assert!(s.listing_complete(&[]).is_empty());
    assert_eq!(s.destroyed(&cid("a")), ["n:c-a:80"]);
    assert!(s.is_empty());
}

#[test]
fn on_success_deregisters_clean_and_signal_exits() {
    for code in [0, 137, 143] {
        let mut s = state(DeregisterMode::OnSuccess);
        s.started(&info("a", &[]));
        s.stopping(&cid("a"));
        assert_eq!(s.died(&cid("a"), code), ["n:c-a:80"], "{code}");
        assert!(s.is_empty());
    }
}

#[test]
fn restart_clears_maintenance() {
    let mut s = state(DeregisterMode::OnSuccess);
    s.started(&info("a", &[]));
    s.died(&cid("a"), 2);
    s.started(&restarted("a", "t1"));
    assert_eq!(s.get("n:c-a:80").map(Want::maintenance), Some(None));
}

#[test]
fn pause_and_health() {
    let mut s = state(DeregisterMode::Always);
    let mut c = info("a", &[]);
    c.health = Some(CheckStatus::Warning);
    s.started(&c);
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
fn a_listing_adds_missing_removes_gone_and_leaves_unchanged_alone() {
    let mut s = state(DeregisterMode::Always);
    s.started(&info("a", &[]));
    s.started(&info("b", &[]));
    let mut changed = s.listed(&info("b", &[]));
    changed.extend(s.listed(&info("c", &[])));
    changed.extend(s.listing_complete(&[cid("b"), cid("c")]));
    assert_eq!(changed, ["n:c-c:80", "n:c-a:80"]);
    assert!(s.get("n:c-a:80").is_none());
}

#[test]
fn duplicate_ids_across_containers_keep_the_first() {
    let mut s = state(DeregisterMode::Always);
    s.started(&info("a", &[("SERVICE_ID", "dup")]));
    assert!(s.started(&info("b", &[("SERVICE_ID", "dup")])).is_empty());
    assert_eq!(s.get("dup").map(|w| w.container.clone()), Some(cid("a")));
    let skipped = s.take_skipped();
    assert!(
        matches!(&skipped[..], [Skipped { reason: SkipReason::IdTaken { owner, .. }, .. }] if *owner == cid("a")),
        "{skipped:?}"
    );
}

#[test]
fn a_changed_container_drops_services_it_no_longer_has() {
    let mut s = state(DeregisterMode::Always);
    s.started(&info("a", &[]));
    let changed = s.started(&info("a", &[("SERVICE_NAME", "renamed")]));
    assert_eq!(changed, ["n:c-a:80"]);
    assert_eq!(
        s.get("n:c-a:80")
            .map(|w| w.service.registration.name.as_str()),
        Some("renamed")
    );
    assert!(
        s.started(&info("a", &[("SERVICE_NAME", "renamed")]))
            .is_empty(),
        "the same container again changes nothing"
    );
}
