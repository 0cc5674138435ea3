use super::*;

fn node(name: &str) -> CatalogNode {
    CatalogNode {
        node: name.into(),
        address: "10.0.0.1".into(),
    }
}

fn svc(id: &str, name: &str, addr: &str, port: u16, tags: &[&str]) -> AgentService {
    AgentService {
        id: id.into(),
        service: name.into(),
        tags: Some(tags.iter().map(|t| t.to_string()).collect()),
        address: addr.into(),
        port,
        meta: None,
    }
}

fn check(node: &str, service_id: &str, status: &str) -> CheckState {
    CheckState {
        node: node.into(),
        check_id: format!("c-{service_id}"),
        status: status.into(),
        service_id: service_id.into(),
        service_name: String::new(),
        output: String::new(),
    }
}

#[test]
fn health_is_the_worst_of_node_and_service_checks() {
    let nodes = vec![
        (
            node("n1"),
            [
                ("a".to_string(), svc("a", "web", "", 80, &["blue"])),
                ("b".to_string(), svc("b", "web", "10.0.0.9", 81, &[])),
            ]
            .into(),
        ),
        (
            node("n2"),
            [("c".to_string(), svc("c", "web", "10.0.0.7", 82, &[]))].into(),
        ),
    ];
    let checks = vec![
        check("n1", "a", "passing"),
        check("n1", "b", "warning"),
        check("n2", "", "critical"),
        check("n2", "c", "passing"),
    ];
    let (cat, dropped) = build(nodes, &checks);
    assert!(dropped.is_empty());
    let got: Vec<_> = cat.services["web"]
        .instances
        .iter()
        .map(|i| (i.id.as_str(), i.address.as_str(), i.health))
        .collect();
    assert_eq!(
        got,
        [
            ("a", "10.0.0.1", CheckStatus::Passing),
            ("b", "10.0.0.9", CheckStatus::Warning),
            ("c", "10.0.0.7", CheckStatus::Critical)
        ]
    );
}

#[test]
fn unusable_instances_are_kept_aside_with_their_reason() {
    let mut bad_meta = svc("m", "ok", "10.0.0.2", 80, &["fine", "bad\n}"]);
    bad_meta.meta = Some(
        [
            ("domain".to_string(), "x;\ny".to_string()),
            ("ns".to_string(), "team".to_string()),
        ]
        .into(),
    );
    let nodes = vec![(
        node("n1"),
        [
            ("x".to_string(), svc("x", "web;}", "10.0.0.2", 80, &[])),
            (
                "y".to_string(),
                svc("y", "api", "127.0.0.1;include /etc/passwd", 80, &[]),
            ),
            ("z".to_string(), svc("z", "api", "10.0.0.3", 0, &[])),
            ("d".to_string(), svc("..", "api", "10.0.0.3", 80, &[])),
            ("m".to_string(), bad_meta),
        ]
        .into(),
    )];
    let (cat, dropped) = build(nodes, &[]);
    assert_eq!(cat.services.keys().collect::<Vec<_>>(), ["api", "ok"]);
    assert!(cat.services["api"].instances.is_empty());
    let reasons: Vec<_> = cat.services["api"]
        .invalid
        .iter()
        .map(|i| i.id.as_str())
        .collect();
    assert_eq!(reasons, ["..", "y", "z"]);
    assert_eq!(cat.unnamed.len(), 1, "{:?}", cat.unnamed);
    let ok = &cat.services["ok"].instances[0];
    assert_eq!(ok.tags, ["fine"]);
    assert_eq!(ok.meta.keys().collect::<Vec<_>>(), ["ns"]);
    assert_eq!(
        dropped.len(),
        6,
        "2 entries and 4 registrations: {dropped:?}"
    );
}

#[test]
fn health_entries_go_through_the_same_validation() {
    let entries: Vec<ServiceEntry> = serde_json::from_value(serde_json::json!([
        {"Node": {"Node": "n1", "Address": "10.0.0.1"},
         "Service": {"ID": "good", "Service": "web", "Address": "10.0.0.5", "Port": 80},
         "Checks": [{"CheckID": "c", "Status": "warning"}]},
        {"Node": {"Node": "n1", "Address": "10.0.0.1"},
         "Service": {"ID": "evil", "Service": "web", "Address": "127.0.0.1;include /etc/passwd", "Port": 80},
         "Checks": []}
    ]))
    .expect("entries");
    let (cat, _) = from_entries(entries);
    let web = &cat.services["web"];
    assert_eq!(web.instances.len(), 1);
    assert_eq!(web.instances[0].health, CheckStatus::Warning);
    assert_eq!(web.invalid[0].id, "evil");
}

#[test]
fn addresses() {
    for ok in ["10.0.0.1", "fd00::1", "db.internal", "host-1"] {
        assert!(check_address(ok).is_ok(), "{ok}");
    }
    for bad in ["", "a b", "x;y", "-x", "{}", "a\nb"] {
        assert!(check_address(bad).is_err(), "{bad}");
    }
    assert!(is_ip("fd00::1") && !is_ip("db.internal"));
}
