//! The catalog view: every service with its instances (address, port, tags, meta, health), built
//! from per-node service lists and the check states, with anything unsafe for nginx left out.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use swarmgate_consul::catalog::{CatalogNode, CheckState};
use swarmgate_consul::{AgentService, CheckStatus};

/// One instance of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Instance {
    pub id: String,
    pub node: String,
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub health: CheckStatus,
}

/// Every service and its instances (sorted by node, then id).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    pub services: BTreeMap<String, Vec<Instance>>,
}

impl Catalog {
    pub fn instance_count(&self) -> usize {
        self.services.values().map(Vec::len).sum()
    }
}

/// Something left out of the view, said once per distinct problem.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Skipped {
    pub what: String,
    pub why: String,
}

/// Builds the view from each node's services and every check's state (consuming the listings:
/// a large catalog is not held twice).
pub fn build(
    nodes: Vec<(CatalogNode, BTreeMap<String, AgentService>)>,
    checks: &[CheckState],
) -> (Catalog, Vec<Skipped>) {
    let mut node_health: HashMap<&str, CheckStatus> = HashMap::new();
    let mut service_health: HashMap<(&str, &str), CheckStatus> = HashMap::new();
    for c in checks {
        let h = CheckStatus::parse(&c.status);
        let slot = if c.service_id.is_empty() {
            node_health.entry(&c.node).or_insert(CheckStatus::Passing)
        } else {
            service_health
                .entry((&c.node, &c.service_id))
                .or_insert(CheckStatus::Passing)
        };
        *slot = (*slot).max(h);
    }
    let mut catalog = Catalog::default();
    let mut skipped = Vec::new();
    for (node, services) in nodes {
        let on_node = node_health.get(node.node.as_str()).copied();
        for (_, svc) in services {
            let own = service_health
                .get(&(node.node.as_str(), svc.id.as_str()))
                .copied();
            let health = own
                .into_iter()
                .chain(on_node)
                .max()
                .unwrap_or(CheckStatus::Passing);
            match instance(&node, svc, health, &mut skipped) {
                Ok((name, inst)) => catalog.services.entry(name).or_default().push(inst),
                Err(s) => skipped.push(s),
            }
        }
    }
    for list in catalog.services.values_mut() {
        list.sort_by(|a, b| (&a.node, &a.id).cmp(&(&b.node, &b.id)));
    }
    skipped.sort();
    skipped.dedup();
    (catalog, skipped)
}

/// One instance, or why it is left out; tags and meta entries that are unsafe are dropped alone.
fn instance(
    node: &CatalogNode,
    svc: AgentService,
    health: CheckStatus,
    skipped: &mut Vec<Skipped>,
) -> Result<(String, Instance), Skipped> {
    let AgentService {
        id,
        service,
        tags: raw_tags,
        address: own_address,
        port,
        meta: raw_meta,
    } = svc;
    let what = || format!("service {service:?} instance {id:?} on {}", node.node);
    let fail = |why: String| Skipped { what: what(), why };
    check_service_name(&service).map_err(fail)?;
    let address = if own_address.is_empty() {
        node.address.clone()
    } else {
        own_address
    };
    check_address(&address).map_err(fail)?;
    if port == 0 {
        return Err(fail("port 0".into()));
    }
    let mut tags = Vec::new();
    for tag in raw_tags.into_iter().flatten() {
        match check_value(&tag) {
            Ok(()) => tags.push(tag),
            Err(why) => skipped.push(Skipped {
                what: format!("{}: tag {tag:?}", what()),
                why,
            }),
        }
    }
    let mut meta = BTreeMap::new();
    for (k, v) in raw_meta.into_iter().flatten() {
        match check_value(&k).and_then(|()| check_value(&v)) {
            Ok(()) => {
                meta.insert(k, v);
            }
            Err(why) => skipped.push(Skipped {
                what: format!("{}: meta {k:?}", what()),
                why,
            }),
        }
    }
    let inst = Instance {
        id: id.clone(),
        node: node.node.clone(),
        address,
        port,
        tags,
        meta,
        health,
    };
    Ok((service, inst))
}

/// Service names become nginx upstream names: `[A-Za-z0-9._-]`, 1 to 128 characters.
pub fn check_service_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name {name:?} is not usable in nginx: only A-Z a-z 0-9 . _ - (1-128)"
        ))
    }
}

/// An IP address, or a host name of letters, digits, dots and dashes.
pub fn check_address(addr: &str) -> Result<(), String> {
    if addr.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let host_ok = !addr.is_empty()
        && addr.len() <= 253
        && addr
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        && !addr.starts_with(['-', '.']);
    if host_ok {
        Ok(())
    } else {
        Err(format!("address {addr:?} is neither an IP nor a host name"))
    }
}

/// Tags and meta: no control characters, at most 512 bytes.
pub fn check_value(v: &str) -> Result<(), String> {
    if v.len() > 512 {
        return Err("longer than 512 bytes".into());
    }
    if v.chars().any(char::is_control) {
        return Err("contains control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
        let (cat, skipped) = build(nodes, &checks);
        assert!(skipped.is_empty());
        let web = &cat.services["web"];
        let got: Vec<_> = web
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
    fn unsafe_names_addresses_tags_and_meta_are_left_out_and_said() {
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
                ("y".to_string(), svc("y", "api", "1.2.3.4; evil", 80, &[])),
                ("z".to_string(), svc("z", "api", "10.0.0.3", 0, &[])),
                ("m".to_string(), bad_meta),
            ]
            .into(),
        )];
        let (cat, skipped) = build(nodes, &[]);
        assert_eq!(cat.services.keys().collect::<Vec<_>>(), ["ok"]);
        let ok = &cat.services["ok"][0];
        assert_eq!(ok.tags, ["fine"]);
        assert_eq!(ok.meta.keys().collect::<Vec<_>>(), ["ns"]);
        assert_eq!(skipped.len(), 5, "{skipped:?}");
    }

    #[test]
    fn addresses() {
        for ok in ["10.0.0.1", "fd00::1", "db.internal", "host-1"] {
            assert!(check_address(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "x;y", "-x", "{}", "a\nb"] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
    }
}
