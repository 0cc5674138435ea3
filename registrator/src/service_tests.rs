//! Unit tests of the service model: registrator's naming, id, address and meta rules.

use super::*;
use crate::container::{ContainerId, NetworkAddr};
use swarmgate_consul::CheckStatus;

fn settings() -> ModelSettings {
    ModelSettings {
        node: "host1".into(),
        fallback_ip: "192.0.2.1".into(),
        kv_prefix: crate::kv::KvPrefix::new("services").expect("valid"),
        ..ModelSettings::default()
    }
}

fn container(labels: &[(&str, &str)], ports: Vec<Port>) -> ContainerInfo {
    ContainerInfo {
        id: ContainerId("abcdef0123456789".into()),
        name: "web_1".into(),
        image: "registry.local:5000/acme/webapp:1.2".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        env: vec![],
        ports,
        networks: [(
            "bridge".to_string(),
            NetworkAddr {
                ipv4: "172.17.0.2".into(),
                ipv6: String::new(),
            },
        )]
        .into(),
        network_mode: "bridge".into(),
        health: None,
        paused: false,
        started_at: "t0".into(),
        config: Default::default(),
    }
}

fn published(port: u16, host_port: u16) -> Port {
    Port {
        container_port: port,
        proto: Proto::Tcp,
        binding: Some(("0.0.0.0".into(), host_port)),
    }
}

fn exposed(port: u16) -> Port {
    Port {
        container_port: port,
        proto: Proto::Tcp,
        binding: None,
    }
}

#[test]
fn one_published_port_defaults() {
    let built = services_for(
        &container(&[], vec![published(80, 32768), exposed(9000)]),
        &settings(),
    );
    assert!(built.skipped.is_empty(), "{:?}", built.skipped);
    let [svc] = built.services.as_slice() else {
        panic!("{:?}", built.services)
    };
    let r = &svc.registration;
    assert_eq!(r.name, "webapp");
    assert_eq!(r.id, "host1:web_1:80");
    assert_eq!((r.address.as_str(), r.port), ("192.0.2.1", 32768));
    assert_eq!(r.meta[OWNER_META_KEY], OWNER_META_VALUE);
    assert_eq!(r.meta[META_CONTAINER_ID], "abcdef0123456789");
    assert_eq!(r.meta[META_IMAGE], "registry.local:5000/acme/webapp:1.2");
    let (key, value) = svc.kv.as_ref().expect("kv on");
    assert_eq!(key, "services/webapp/host1:web_1:80");
    let json: serde_json::Value = serde_json::from_slice(value).expect("json");
    assert_eq!(json["port"], 32768);
    assert_eq!(json["container"], "web_1");
    assert_eq!(json["node"], "host1");
}

#[test]
fn several_ports_suffix_every_name_not_given_for_that_port() {
    let c = container(&[], vec![published(80, 1), published(443, 2)]);
    let names: Vec<_> = services_for(&c, &settings())
        .services
        .into_iter()
        .map(|s| s.registration.name)
        .collect();
    assert_eq!(names, ["webapp-80", "webapp-443"]);
    let c = container(
        &[("SERVICE_NAME", "web"), ("SERVICE_443_NAME", "web-tls")],
        vec![published(80, 1), published(443, 2)],
    );
    let names: Vec<_> = services_for(&c, &settings())
        .services
        .into_iter()
        .map(|s| s.registration.name)
        .collect();
    assert_eq!(names, ["web-80", "web-tls"]);
    // Ports are counted before SERVICE_<port>_IGNORE (gliderlabs: web + 443 ignored → web-80).
    let c = container(
        &[("SERVICE_NAME", "web"), ("SERVICE_443_IGNORE", "1")],
        vec![published(80, 1), published(443, 2)],
    );
    let names: Vec<_> = services_for(&c, &settings())
        .services
        .into_iter()
        .map(|s| s.registration.name)
        .collect();
    assert_eq!(names, ["web-80"]);
    let c = container(&[("SERVICE_NAME", "web")], vec![published(80, 1)]);
    assert_eq!(
        services_for(&c, &settings()).services[0].registration.name,
        "web"
    );
}

#[test]
fn every_service_attribute_goes_into_meta_and_slashes_stay_in_names() {
    let c = container(
        &[
            ("SERVICE_NAME", "service1/v1"),
            ("SERVICE_CHECK_HTTP", "/health"),
            ("SERVICE_TAGS", r"a\,b,c"),
            ("SERVICE_80_OWNER", "team"),
        ],
        vec![published(80, 1)],
    );
    let svc = &services_for(&c, &settings()).services[0];
    let r = &svc.registration;
    assert_eq!(r.name, "service1/v1");
    assert_eq!(r.tags, ["a,b", "c"]);
    assert_eq!(r.meta["check_http"], "/health");
    assert_eq!(r.meta["owner"], "team");
    assert!(!r.meta.contains_key("name") && !r.meta.contains_key("tags"));
    let (key, _) = svc.kv.as_ref().expect("kv");
    assert_eq!(key, "services/service1%2Fv1/host1:web_1:80");
}

#[test]
fn internal_uses_container_address_and_exposed_ports() {
    let s = ModelSettings {
        internal: true,
        ..settings()
    };
    let built = services_for(
        &container(&[], vec![published(80, 32768), exposed(9000)]),
        &s,
    );
    let addrs: Vec<_> = built
        .services
        .iter()
        .map(|s| (s.registration.address.as_str(), s.registration.port))
        .collect();
    assert_eq!(addrs, [("172.17.0.2", 80), ("172.17.0.2", 9000)]);
}

#[test]
fn ip_flag_and_specific_binding_and_ip_label() {
    let s = ModelSettings {
        host_ip: Some("10.1.1.1".into()),
        ..settings()
    };
    let r = &services_for(&container(&[], vec![published(80, 8080)]), &s).services[0].registration;
    assert_eq!(r.address, "10.1.1.1");
    let bound = Port {
        binding: Some(("127.0.0.5".into(), 8080)),
        ..published(80, 8080)
    };
    let r = &services_for(&container(&[], vec![bound]), &settings()).services[0].registration;
    assert_eq!(r.address, "127.0.0.5");
    let s = ModelSettings {
        ip_label: Some("my.ip".into()),
        ..settings()
    };
    let r = &services_for(
        &container(&[("my.ip", "10.9.9.9/24")], vec![published(80, 8080)]),
        &s,
    )
    .services[0]
        .registration;
    assert_eq!(r.address, "10.9.9.9");
}

#[test]
fn tags_meta_udp_and_extra_tags() {
    let s = ModelSettings {
        tags: Some(crate::template::TagTemplate::parse("prod").expect("literal")),
        ..settings()
    };
    let udp = Port {
        proto: Proto::Udp,
        ..published(53, 5353)
    };
    let c = container(
        &[
            ("SERVICE_TAGS", "blue, dns"),
            ("SERVICE_VERSION", "1.2"),
            ("SERVICE_53_ZONE", "x"),
        ],
        vec![udp],
    );
    let r = &services_for(&c, &s).services[0].registration;
    assert_eq!(r.id, "host1:web_1:53:udp");
    assert_eq!(r.tags, ["blue", "dns", "prod", "udp"]);
    assert_eq!(r.meta["version"], "1.2");
    assert_eq!(r.meta["zone"], "x");
}

#[test]
fn our_meta_cannot_be_overridden() {
    let c = container(&[("SERVICE_MANAGED_BY", "me")], vec![published(80, 1)]);
    let r = &services_for(&c, &settings()).services[0].registration;
    assert_eq!(r.meta["managed_by"], "me");
    assert_eq!(r.meta[OWNER_META_KEY], OWNER_META_VALUE);
}

#[test]
fn ignore_explicit_and_service_id() {
    let c = container(&[("SERVICE_IGNORE", "true")], vec![published(80, 1)]);
    assert!(services_for(&c, &settings()).services.is_empty());
    let c = container(
        &[("SERVICE_443_IGNORE", "1")],
        vec![published(80, 1), published(443, 2)],
    );
    assert_eq!(services_for(&c, &settings()).services.len(), 1);
    let s = ModelSettings {
        explicit: true,
        ..settings()
    };
    assert!(services_for(&container(&[], vec![published(80, 1)]), &s)
        .services
        .is_empty());
    let c = container(
        &[("SERVICE_NAME", "x"), ("SERVICE_ID", "custom:1")],
        vec![published(80, 1)],
    );
    assert_eq!(services_for(&c, &s).services[0].registration.id, "custom:1");
}

#[test]
fn duplicate_ids_within_a_container_keep_the_first() {
    let c = container(
        &[("SERVICE_ID", "same")],
        vec![published(80, 1), published(81, 2)],
    );
    let built = services_for(&c, &settings());
    assert_eq!(built.services.len(), 1);
    assert!(built.skipped[0].reason.contains("same"));
}

#[test]
fn bad_labels_skip_only_the_affected_service_and_name_the_label() {
    let c = container(
        &[
            ("SERVICE_80_NAME", "bad name"),
            ("SERVICE_81_TAGS", "ok,\u{7}bell"),
            ("SERVICE_99999_NAME", "x"),
        ],
        vec![published(80, 1), published(81, 2), published(82, 3)],
    );
    let built = services_for(&c, &settings());
    let labels: Vec<_> = built.skipped.iter().map(|e| e.label.as_str()).collect();
    assert_eq!(
        labels,
        ["SERVICE_99999_NAME", "SERVICE_80_NAME", "SERVICE_81_TAGS"]
    );
    assert_eq!(built.services.len(), 1);
    assert_eq!(built.services[0].registration.port, 3);
}

#[test]
fn injection_attempts_are_rejected() {
    for (k, v) in [
        ("SERVICE_NAME", "web;}server{"),
        ("SERVICE_NAME", "web\nlisten 81"),
        ("SERVICE_ID", "x;y"),
        ("SERVICE_TAGS", "blue\n}"),
        ("SERVICE_OWNER", "a\r\nb"),
        ("SERVICE_WEIRD;KEY", "v"),
    ] {
        let built = services_for(&container(&[(k, v)], vec![published(80, 1)]), &settings());
        assert!(built.services.is_empty(), "{k}={v:?} was accepted");
        assert_eq!(built.skipped[0].label, k);
    }
}

#[test]
fn swarm_tasks_use_the_swarm_service_name_and_the_named_network() {
    let mut c = container(
        &[
            (SWARM_SERVICE_LABEL, "shop_api"),
            ("SERVICE_NETWORK", "backend"),
        ],
        vec![exposed(8080)],
    );
    c.networks.insert(
        "ingress".into(),
        NetworkAddr {
            ipv4: "10.0.0.9".into(),
            ipv6: String::new(),
        },
    );
    c.networks.insert(
        "backend".into(),
        NetworkAddr {
            ipv4: String::new(),
            ipv6: "fd00::7".into(),
        },
    );
    let s = ModelSettings {
        internal: true,
        ..settings()
    };
    let r = &services_for(&c, &s).services[0].registration;
    assert_eq!(
        (r.name.as_str(), r.address.as_str(), r.port),
        ("shop_api", "fd00::7", 8080)
    );
    c.labels.insert("SERVICE_NETWORK".into(), "nope".into());
    assert_eq!(services_for(&c, &s).skipped[0].label, "SERVICE_NETWORK");
}

#[test]
fn docker_health_adds_a_ttl_check_at_the_current_status() {
    let mut c = container(&[("SERVICE_CHECK_TCP", "1")], vec![published(80, 1)]);
    c.health = Some(CheckStatus::Warning);
    let svc = &services_for(&c, &settings()).services[0];
    assert!(svc.mirrors_docker_health);
    let checks = &svc.registration.checks;
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[1].ttl.as_deref(), Some("60s"));
    assert_eq!(checks[1].status.as_deref(), Some("warning"));
}

#[test]
fn kv_off_with_empty_prefix() {
    let s = ModelSettings {
        kv_prefix: None,
        ..settings()
    };
    assert!(
        services_for(&container(&[], vec![published(80, 1)]), &s).services[0]
            .kv
            .is_none()
    );
}

#[test]
fn default_ids_have_gliderlabs_shape_and_parse_back() {
    assert_eq!(default_id("h1", "web_1", 80, true), "h1:web_1:80:udp");
    assert_eq!(parse_default_id("h1:web_1:80:udp"), Some(("h1", "web_1")));
    assert_eq!(parse_default_id("a:b:web.2:8080"), Some(("a:b", "web.2")));
    for other in [
        "web",
        "h1:web_1",
        "h1:web_1:x",
        ":web_1:80",
        "h1:_w:80",
        "h1:w:80",
    ] {
        assert_eq!(parse_default_id(other), None, "{other}");
    }
}
