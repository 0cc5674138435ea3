//! The catalog view: every service with its instances (address, port, tags, meta, health),
//! built from Consul's answers through one validating path — the daemon's snapshot and
//! `templater status` both come through here, so what one sees the other sees. An instance
//! that cannot be used is kept aside with the reason (the plan reports it); a tag or meta entry
//! that cannot be used is dropped alone.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use swarmgate_consul::catalog::{CatalogNode, CheckState};
use swarmgate_consul::{rules, AgentService, CheckStatus, ServiceEntry};

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

/// An instance Consul holds that cannot be used, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Invalid {
    pub id: String,
    pub node: String,
    pub reason: String,
}

/// One service: its usable instances (sorted by node, then id) and the ones left aside.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceView {
    pub instances: Vec<Instance>,
    pub invalid: Vec<Invalid>,
}

/// Every service Consul holds, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    pub services: BTreeMap<String, ServiceView>,
    /// Registrations whose service name itself is unusable (no service to put them under).
    pub unnamed: Vec<Invalid>,
}

impl Catalog {
    pub fn instance_count(&self) -> usize {
        self.services.values().map(|s| s.instances.len()).sum()
    }
}

/// Something left out, said once in the log: an unusable registration, or a tag or meta entry
/// dropped from an instance that is otherwise used.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dropped {
    pub what: String,
    pub why: String,
}

/// Builds the view from each node's services and every check's state (consuming the listings:
/// a large catalog is not held twice).
pub fn build(
    nodes: Vec<(CatalogNode, BTreeMap<String, AgentService>)>,
    checks: &[CheckState],
) -> (Catalog, Vec<Dropped>) {
    let mut node_health: HashMap<&str, CheckStatus> = HashMap::new();
    let mut service_health: HashMap<(&str, &str), CheckStatus> = HashMap::new();
    for c in checks {
        let slot = if c.service_id.is_empty() {
            node_health.entry(&c.node).or_insert(CheckStatus::Passing)
        } else {
            service_health
                .entry((&c.node, &c.service_id))
                .or_insert(CheckStatus::Passing)
        };
        *slot = (*slot).max(CheckStatus::parse(&c.status));
    }
    let mut builder = Builder::default();
    for (node, services) in nodes {
        let on_node = node_health.get(node.node.as_str()).copied();
        for (_, svc) in services {
            let own = service_health
                .get(&(node.node.as_str(), svc.id.as_str()))
                .copied();
            let health = CheckStatus::worst(own.into_iter().chain(on_node));
            builder.add(&node, svc, health);
        }
    }
    builder.finish()
}

/// Builds the view of one service from `/v1/health/service/:name` entries.
pub fn from_entries(entries: Vec<ServiceEntry>) -> (Catalog, Vec<Dropped>) {
    let mut builder = Builder::default();
    for entry in entries {
        let health = entry.status();
        let node = CatalogNode {
            node: entry.node.node,
            address: entry.node.address,
        };
        builder.add(&node, entry.service, health);
    }
    builder.finish()
}

#[derive(Default)]
struct Builder {
    catalog: Catalog,
    dropped: Vec<Dropped>,
}

impl Builder {
    fn add(&mut self, node: &CatalogNode, svc: AgentService, health: CheckStatus) {
        let name = svc.service.clone();
        let id = svc.id.clone();
        let invalid = |reason: String| Invalid {
            id,
            node: node.node.clone(),
            reason,
        };
        if let Err(e) = rules::service_name(&name) {
            let why = format!("service name {name:?}: {e}");
            self.dropped.push(Dropped {
                what: format!("instance {:?} on {}", svc.id, node.node),
                why: why.clone(),
            });
            self.catalog.unnamed.push(invalid(why));
            return;
        }
        let what = format!(
            "service {name:?} instance {id:?} on {}",
            node.node,
            id = svc.id
        );
        let view = self.catalog.services.entry(name).or_default();
        match instance(node, svc, health, &mut self.dropped) {
            Ok(inst) => view.instances.push(inst),
            Err(reason) => {
                self.dropped.push(Dropped {
                    what,
                    why: reason.clone(),
                });
                view.invalid.push(invalid(reason));
            }
        }
    }

    fn finish(mut self) -> (Catalog, Vec<Dropped>) {
        for view in self.catalog.services.values_mut() {
            view.instances
                .sort_by(|a, b| (&a.node, &a.id).cmp(&(&b.node, &b.id)));
            view.invalid.sort();
        }
        self.catalog.unnamed.sort();
        self.dropped.sort();
        self.dropped.dedup();
        (self.catalog, self.dropped)
    }
}

/// One instance, or why it cannot be used; tags and meta entries that are unsafe are dropped.
fn instance(
    node: &CatalogNode,
    svc: AgentService,
    health: CheckStatus,
    dropped: &mut Vec<Dropped>,
) -> Result<Instance, String> {
    let AgentService {
        id,
        service,
        tags: raw_tags,
        address: own_address,
        port,
        meta: raw_meta,
    } = svc;
    rules::service_id(&id).map_err(|e| format!("id {e}"))?;
    let address = if own_address.is_empty() {
        node.address.clone()
    } else {
        own_address
    };
    check_address(&address)?;
    if port == 0 {
        return Err("port 0".into());
    }
    let what = || format!("service {service:?} instance {id:?} on {}", node.node);
    let mut tags = Vec::new();
    for tag in raw_tags.into_iter().flatten() {
        match rules::text(&tag) {
            Ok(()) => tags.push(tag),
            Err(e) => dropped.push(Dropped {
                what: format!("{}: tag {tag:?}", what()),
                why: e.to_string(),
            }),
        }
    }
    let mut meta = BTreeMap::new();
    for (k, v) in raw_meta.into_iter().flatten() {
        match rules::text(&k).and_then(|()| rules::text(&v)) {
            Ok(()) => {
                meta.insert(k, v);
            }
            Err(e) => dropped.push(Dropped {
                what: format!("{}: meta {k:?}", what()),
                why: e.to_string(),
            }),
        }
    }
    Ok(Instance {
        id,
        node: node.node.clone(),
        address,
        port,
        tags,
        meta,
        health,
    })
}

/// An IP address, or a host name of letters, digits, dots and dashes (whether host names may
/// be served is the plan's decision).
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

/// True when `addr` is an IP literal (what nginx can use without resolving).
pub fn is_ip(addr: &str) -> bool {
    addr.parse::<std::net::IpAddr>().is_ok()
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
