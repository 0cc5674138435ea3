use super::*;
use std::collections::BTreeMap;

use crate::model::Invalid;

pub(crate) fn inst(id: &str, tags: &[&str], health: CheckStatus) -> Instance {
    Instance {
        id: id.into(),
        node: "n1".into(),
        address: "10.0.0.1".into(),
        port: 8000,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        meta: BTreeMap::new(),
        health,
    }
}

pub(crate) fn opts() -> PlanOptions {
    PlanOptions {
        colors: vec!["blue".into(), "green".into()],
        health: HealthFilter::Passing,
        backup_inactive: true,
        domain: "example.com".into(),
        allow_hostnames: false,
        preview: false,
    }
}

fn catalog(services: Vec<(&str, Vec<Instance>)>) -> Catalog {
    Catalog {
        services: services
            .into_iter()
            .map(|(n, instances)| {
                (
                    n.to_string(),
                    ServiceView {
                        instances,
                        invalid: vec![],
                    },
                )
            })
            .collect(),
        unnamed: vec![],
    }
}

fn active(color: &str, canary: u8) -> DeploySettings {
    DeploySettings {
        active: Some(color.into()),
        canary,
        ..Default::default()
    }
}

struct Files(&'static [&'static str]);

impl FileProbe for Files {
    fn check(&self, path: &Path) -> Result<(), String> {
        if self.0.iter().any(|f| Path::new(f) == path) {
            Ok(())
        } else {
            Err(format!("{}: no such file", path.display()))
        }
    }
}

fn plan(cat: &Catalog, settings: &Settings, o: &PlanOptions) -> Plan {
    build(cat, settings, o, None, &Files(&[]))
}

fn weights(p: &ServicePlan) -> Vec<(&str, u32, bool)> {
    p.instances
        .iter()
        .map(|i| (i.id.as_str(), i.weight, i.backup))
        .collect()
}

#[test]
fn weights_follow_active_and_canary_and_uncoloured_count_as_active() {
    let cat = catalog(vec![(
        "web",
        vec![
            inst("b1", &["blue"], CheckStatus::Passing),
            inst("b2", &[], CheckStatus::Passing),
            inst("g1", &["green"], CheckStatus::Passing),
            inst("g2", &["green"], CheckStatus::Critical),
        ],
    )]);
    let settings: Settings = [("web".to_string(), active("blue", 10))].into();
    let p = plan(&cat, &settings, &opts());
    let web = &p.services["web"];
    // 2 active (b1, b2) vs 1 healthy green: 90·1 : 10·2 → 9 : 2 → 18 : 2 = 90 : 10.
    assert_eq!(
        weights(web),
        [("b1", 9, false), ("b2", 9, false), ("g1", 2, false)]
    );
    let green: f64 = web
        .instances
        .iter()
        .filter(|i| i.color.as_deref() == Some("green"))
        .map(|i| i.share)
        .sum();
    assert!((green - 10.0).abs() < 1e-9, "{green}");
    assert_eq!(web.upstream, "sg_web");
    assert_eq!(
        web.left_out,
        [LeftOut {
            id: "g2".into(),
            node: "n1".into(),
            color: Some("green".into()),
            reason: LeftOutReason::Unhealthy(CheckStatus::Critical)
        }]
    );
}

#[test]
fn no_active_key_means_every_healthy_instance_weight_one() {
    let cat = catalog(vec![(
        "web",
        vec![
            inst("b1", &["blue"], CheckStatus::Passing),
            inst("g1", &["green"], CheckStatus::Warning),
        ],
    )]);
    let mut o = opts();
    o.health = HealthFilter::Warning;
    let p = plan(&cat, &Settings::new(), &o);
    assert_eq!(
        weights(&p.services["web"]),
        [("b1", 1, false), ("g1", 1, false)]
    );
}

#[test]
fn canary_zero_keeps_the_inactive_colour_as_backup_or_leaves_it_out() {
    let cat = catalog(vec![(
        "web",
        vec![
            inst("b1", &["blue"], CheckStatus::Passing),
            inst("g1", &["green"], CheckStatus::Passing),
        ],
    )]);
    let settings: Settings = [("web".to_string(), active("blue", 0))].into();
    let p = plan(&cat, &settings, &opts());
    assert_eq!(
        weights(&p.services["web"]),
        [("b1", 1, false), ("g1", 1, true)]
    );
    assert_eq!(p.services["web"].instances[1].share, 0.0);
    let mut o = opts();
    o.backup_inactive = false;
    let p = plan(&cat, &settings, &o);
    assert_eq!(weights(&p.services["web"]), [("b1", 1, false)]);
    assert_eq!(
        p.services["web"].left_out[0].reason,
        LeftOutReason::NoBackup
    );
}

#[test]
fn sticky_services_have_no_backups() {
    let mut b1 = inst("b1", &["blue"], CheckStatus::Passing);
    b1.meta.insert("sticky".into(), "ip_hash".into());
    let cat = catalog(vec![(
        "web",
        vec![b1, inst("g1", &["green"], CheckStatus::Passing)],
    )]);
    let settings: Settings = [("web".to_string(), active("blue", 0))].into();
    let p = plan(&cat, &settings, &opts());
    let web = &p.services["web"];
    assert_eq!(web.sticky.as_deref(), Some("ip_hash"));
    assert_eq!(weights(web), [("b1", 1, false)]);
    assert_eq!(web.left_out[0].reason, LeftOutReason::StickyBackup);
}

#[test]
fn public_host_tls_and_sticky_from_passing_meta_validated() {
    let mut a = inst("a", &["public"], CheckStatus::Passing);
    a.meta = [
        ("namespace".to_string(), "shop".to_string()),
        ("tls_cert".to_string(), "/certs/a.pem".to_string()),
        ("tls_key".to_string(), "/certs/a.key".to_string()),
        ("sticky".to_string(), "ip_hash".to_string()),
    ]
    .into();
    let mut b = inst("b", &[], CheckStatus::Passing);
    b.meta = [
        ("public".to_string(), "true".to_string()),
        ("namespace".to_string(), "bad ns;".to_string()),
        ("tls_cert".to_string(), "/x;y".to_string()),
        ("tls_key".to_string(), "/k".to_string()),
        ("sticky".to_string(), "cookie".to_string()),
    ]
    .into();
    let cat = catalog(vec![("api", vec![a]), ("web", vec![b])]);
    let files = Files(&["/certs/a.pem", "/certs/a.key"]);
    let p = build(&cat, &Settings::new(), &opts(), None, &files);
    let api = &p.services["api"];
    assert!(api.public && api.served());
    assert_eq!(api.host, "api-shop.example.com");
    assert_eq!(
        api.tls,
        Some(Tls {
            cert: "/certs/a.pem".into(),
            key: "/certs/a.key".into()
        })
    );
    assert_eq!(api.sticky.as_deref(), Some("ip_hash"));
    let web = &p.services["web"];
    assert!(web.public && web.tls.is_none() && web.sticky.is_none());
    assert_eq!(web.host, "web.example.com");
    assert_eq!(web.warnings.len(), 3, "{:?}", web.warnings);
}

#[test]
fn a_critical_instance_cannot_publish_its_service_or_set_its_tls() {
    let mut evil = inst("evil", &["public"], CheckStatus::Critical);
    evil.meta.insert("tls_cert".into(), "/nonexistent".into());
    evil.meta.insert("tls_key".into(), "/nonexistent".into());
    let cat = catalog(vec![(
        "web",
        vec![inst("ok", &[], CheckStatus::Passing), evil],
    )]);
    let p = plan(&cat, &Settings::new(), &opts());
    let web = &p.services["web"];
    assert!(!web.public && web.tls.is_none() && web.served());
}

#[test]
fn a_service_whose_instances_all_fail_stays_published_as_it_was() {
    let cat = |health| catalog(vec![("web", vec![inst("a", &["public"], health)])]);
    let before = plan(&cat(CheckStatus::Passing), &Settings::new(), &opts());
    let p = build(
        &cat(CheckStatus::Critical),
        &Settings::new(),
        &opts(),
        Some(&before),
        &Files(&[]),
    );
    let web = &p.services["web"];
    assert!(
        web.public && web.instances.is_empty(),
        "published, answering 502"
    );
}

#[test]
fn missing_tls_files_exclude_the_service_alone() {
    let mut a = inst("a", &["public"], CheckStatus::Passing);
    a.meta.insert("tls_cert".into(), "/nonexistent.pem".into());
    a.meta.insert("tls_key".into(), "/nonexistent.key".into());
    let cat = catalog(vec![
        ("bad", vec![a]),
        ("good", vec![inst("g", &[], CheckStatus::Passing)]),
    ]);
    let p = plan(&cat, &Settings::new(), &opts());
    assert!(p.services["bad"]
        .excluded
        .as_deref()
        .is_some_and(|e| e.contains("/nonexistent.pem")));
    assert!(p.services["good"].served());
}

#[test]
fn host_names_are_served_only_when_allowed() {
    let mut h = inst("h", &[], CheckStatus::Passing);
    h.address = "no-such-host.invalid".into();
    let cat = catalog(vec![(
        "web",
        vec![h, inst("ip", &[], CheckStatus::Passing)],
    )]);
    let p = plan(&cat, &Settings::new(), &opts());
    assert_eq!(weights(&p.services["web"]), [("ip", 1, false)]);
    assert!(matches!(
        p.services["web"].left_out[0].reason,
        LeftOutReason::HostName(_)
    ));
    let mut o = opts();
    o.allow_hostnames = true;
    assert_eq!(
        plan(&cat, &Settings::new(), &o).services["web"]
            .instances
            .len(),
        2
    );
}

#[test]
fn invalid_instances_are_reported_as_left_out() {
    let mut cat = catalog(vec![("web", vec![inst("ok", &[], CheckStatus::Passing)])]);
    cat.services
        .get_mut("web")
        .expect("web")
        .invalid
        .push(Invalid {
            id: "evil".into(),
            node: "n1".into(),
            reason: "address \"1.2.3.4;x\" is neither an IP nor a host name".into(),
        });
    let p = plan(&cat, &Settings::new(), &opts());
    let web = &p.services["web"];
    assert_eq!(web.instances.len(), 1);
    assert!(matches!(&web.left_out[0].reason, LeftOutReason::Invalid(r) if r.contains("1.2.3.4")));
}

#[test]
fn names_nginx_cannot_print_are_unservable() {
    let cat = catalog(vec![("svc/v1", vec![inst("a", &[], CheckStatus::Passing)])]);
    let p = plan(&cat, &Settings::new(), &opts());
    assert!(p.services["svc/v1"]
        .excluded
        .as_deref()
        .is_some_and(|e| e.starts_with("unservable")));
}

#[test]
fn case_colliding_upstreams_leave_the_incumbent_alone() {
    let cat = catalog(vec![
        ("APP", vec![inst("x", &[], CheckStatus::Passing)]),
        ("app", vec![inst("y", &[], CheckStatus::Passing)]),
    ]);
    let fresh = plan(&cat, &Settings::new(), &opts());
    assert!(
        !fresh.services["APP"].served() && !fresh.services["app"].served(),
        "no incumbent: neither"
    );
    let before = plan(
        &catalog(vec![("app", vec![inst("y", &[], CheckStatus::Passing)])]),
        &Settings::new(),
        &opts(),
    );
    let p = build(&cat, &Settings::new(), &opts(), Some(&before), &Files(&[]));
    assert!(p.services["app"].served());
    assert!(p.services["APP"]
        .excluded
        .as_deref()
        .is_some_and(|e| e.contains("app")));
}

#[test]
fn a_namespace_cannot_take_another_services_host() {
    let mut shop = inst("s", &["public"], CheckStatus::Passing);
    shop.meta.insert("namespace".into(), "api".into());
    let cat = catalog(vec![
        ("shop", vec![shop]),
        (
            "shop-api",
            vec![inst("a", &["public"], CheckStatus::Passing)],
        ),
    ]);
    let before = plan(
        &catalog(vec![(
            "shop-api",
            vec![inst("a", &["public"], CheckStatus::Passing)],
        )]),
        &Settings::new(),
        &opts(),
    );
    let p = build(&cat, &Settings::new(), &opts(), Some(&before), &Files(&[]));
    assert!(p.services["shop-api"].public);
    assert!(!p.services["shop"].public && p.services["shop"].served());
    assert!(p.services["shop"]
        .warnings
        .iter()
        .any(|w| w.contains("shop-api")));
    let fresh = plan(&cat, &Settings::new(), &opts());
    assert!(!fresh.services["shop"].public && !fresh.services["shop-api"].public);
}

#[test]
fn ipv6_servers_are_bracketed() {
    let mut i = inst("a", &[], CheckStatus::Passing);
    i.address = "fd00::5".into();
    let p = plan(&catalog(vec![("v6", vec![i])]), &Settings::new(), &opts());
    assert_eq!(p.services["v6"].instances[0].server, "[fd00::5]:8000");
}
