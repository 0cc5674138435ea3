//! The service model (registrator's): one service per published port, or per exposed port with
//! `-internal`; its name, id, address, tags, meta, checks and KV record.

use std::collections::BTreeMap;

use serde::Serialize;
use swarmgate_consul::ServiceRegistration;

use crate::checks::{docker_health_check, label_check, CheckTarget};
use crate::container::{ContainerInfo, Port, Proto};
use crate::kv::KvPrefix;
use crate::labels::{
    check_id, check_name, check_text, split_tags, LabelError, ServiceLabels, MAX_META_KEY_LEN,
};
use crate::template::TagTemplate;

/// The meta key and value that mark a service as ours; `-cleanup` removes only services bearing it.
pub const OWNER_META_KEY: &str = "managed-by";
pub const OWNER_META_VALUE: &str = "swarmgate-registrator";
/// Meta keys we always set; labels cannot override them.
pub const META_NODE: &str = "node";
pub const META_CONTAINER_ID: &str = "container-id";
pub const META_CONTAINER_NAME: &str = "container-name";
pub use swarmgate_consul::rules::META_IMAGE;
/// Label of a swarm task naming its swarm service.
pub const SWARM_SERVICE_LABEL: &str = "com.docker.swarm.service.name";

/// The settings (from flags) that shape services.
#[derive(Clone, Debug, Default)]
pub struct ModelSettings {
    /// This node's name: first part of every default service id, and the `node` meta.
    pub node: String,
    /// `-ip`: the address of every published port.
    pub host_ip: Option<String>,
    /// The host's address when a port is bound to all interfaces and `-ip` is not given.
    pub fallback_ip: String,
    /// `-internal`: register exposed ports at the container's address.
    pub internal: bool,
    /// `-explicit`: only containers that set `SERVICE_NAME`.
    pub explicit: bool,
    /// `-useIpFromLabel`: take the address from this label.
    pub ip_label: Option<String>,
    /// `-tags`: added to every service, rendered per container.
    pub tags: Option<TagTemplate>,
    /// `--network`: the network whose address a container is registered at.
    pub network: Option<String>,
    /// `--kv-prefix`; `None` turns the KV record off.
    pub kv_prefix: Option<KvPrefix>,
}

/// One service to register, with its KV record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub registration: ServiceRegistration,
    /// `(key, JSON value)` when KV records are on.
    pub kv: Option<(String, Vec<u8>)>,
    /// True when a Docker health check is mirrored as a TTL check.
    pub mirrors_docker_health: bool,
}

/// The JSON written at `<kv-prefix>/<name>/<id>`.
#[derive(Serialize)]
struct KvRecord<'a> {
    id: &'a str,
    name: &'a str,
    address: &'a str,
    port: u16,
    tags: &'a [String],
    meta: &'a BTreeMap<String, String>,
    container: &'a str,
    image: &'a str,
    node: &'a str,
}

/// Services of a container, and the ports skipped for bad labels.
#[derive(Debug, Default)]
pub struct Built {
    pub services: Vec<Service>,
    pub skipped: Vec<LabelError>,
}

/// Builds every service of `c`.
pub fn services_for(c: &ContainerInfo, s: &ModelSettings) -> Built {
    let labels = ServiceLabels::collect(
        c.env.iter().map(String::as_str),
        c.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let mut built = Built {
        skipped: labels.errors.clone(),
        ..Built::default()
    };
    let ports: Vec<&Port> = c
        .ports
        .iter()
        .filter(|p| s.internal || p.binding.is_some())
        .collect();
    let grouped = ports.len() > 1;
    for port in ports {
        if labels
            .get(port.container_port, "IGNORE")
            .is_some_and(|v| !v.value.is_empty())
        {
            continue;
        }
        if s.explicit && labels.get(port.container_port, "NAME").is_none() {
            continue;
        }
        match build_one(c, s, &labels, port, grouped) {
            Ok(service)
                if built
                    .services
                    .iter()
                    .any(|o| o.registration.id == service.registration.id) =>
            {
                built.skipped.push(LabelError::new(
                    "SERVICE_ID",
                    format!(
                        "id {:?} is used by another port of this container",
                        service.registration.id
                    ),
                ));
            }
            Ok(service) => built.services.push(service),
            Err(e) => built.skipped.push(e),
        }
    }
    built
}

fn build_one(
    c: &ContainerInfo,
    s: &ModelSettings,
    labels: &ServiceLabels,
    port: &Port,
    grouped: bool,
) -> Result<Service, LabelError> {
    let p = port.container_port;
    // gliderlabs: with several ports, any name not given for this very port (the image's, or
    // SERVICE_NAME) gets the port suffix; the ports are counted before SERVICE_<port>_IGNORE.
    let base = labels
        .get(p, "NAME")
        .map_or_else(|| default_name(c), |v| v.value.clone());
    let name = if grouped && !labels.is_port_specific(p, "NAME") {
        format!("{base}-{p}")
    } else {
        base
    };
    check_name(
        labels
            .get(p, "NAME")
            .map_or("image name", |v| v.label.as_str()),
        &name,
    )?;
    let udp = port.proto == Proto::Udp;
    let id = match labels.get(p, "ID") {
        Some(v) => {
            check_id(&v.label, &v.value)?;
            v.value.clone()
        }
        None => default_id(&s.node, &c.name, p, udp),
    };
    let (address, service_port) = address_of(c, s, labels, port)?;
    let tags = tags_of(c, labels, s, p, udp)?;
    let meta = meta_of(c, s, labels, p)?;
    let target = CheckTarget {
        ip: &address,
        service_port,
        container_id: &c.id.0,
    };
    let mut checks: Vec<_> = label_check(labels, p, &target)?.into_iter().collect();
    if let Some(health) = c.health {
        checks.push(docker_health_check(&id, health));
    }
    let registration = ServiceRegistration {
        id,
        name,
        tags,
        address,
        port: service_port,
        meta,
        checks,
    };
    let kv = s
        .kv_prefix
        .as_ref()
        .map(|prefix| kv_record(c, s, prefix, &registration));
    Ok(Service {
        registration,
        kv,
        mirrors_docker_health: c.health.is_some(),
    })
}

/// The default service id, gliderlabs' shape: `<node>:<container-name>:<port>[:udp]`.
pub fn default_id(node: &str, container: &str, port: u16, udp: bool) -> String {
    format!("{node}:{container}:{port}{}", if udp { ":udp" } else { "" })
}

/// `(node, container name)` of an id in gliderlabs' shape (its `serviceIDPattern`:
/// `^(.+?):([a-zA-Z0-9][a-zA-Z0-9_.-]+):[0-9]+(?::udp)?$`), else `None`.
pub fn parse_default_id(id: &str) -> Option<(&str, &str)> {
    let rest = id.strip_suffix(":udp").unwrap_or(id);
    let (rest, port) = rest.rsplit_once(':')?;
    let (node, container) = rest.rsplit_once(':')?;
    let port_ok = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    let mut chars = container.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = container.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    (port_ok && first_ok && rest_ok && !node.is_empty()).then_some((node, container))
}

/// Swarm service name for tasks, else the image's base name: `reg:5000/org/app:1.2` → `app`.
fn default_name(c: &ContainerInfo) -> String {
    if let Some(swarm) = c.labels.get(SWARM_SERVICE_LABEL) {
        return swarm.clone();
    }
    let image = c.image.split('@').next().unwrap_or(&c.image);
    let base = image.rsplit('/').next().unwrap_or(image);
    base.split(':').next().unwrap_or(base).to_string()
}

/// The address and port Consul should route to.
fn address_of(
    c: &ContainerInfo,
    s: &ModelSettings,
    labels: &ServiceLabels,
    port: &Port,
) -> Result<(String, u16), LabelError> {
    let (mut ip, service_port) = if s.internal {
        (container_ip(c, s, labels)?, port.container_port)
    } else {
        let (bound_ip, host_port) = port
            .binding
            .clone()
            .expect("only published ports reach here");
        let ip = match &s.host_ip {
            Some(ip) => ip.clone(),
            None if bound_ip.is_empty() || bound_ip == "0.0.0.0" || bound_ip == "::" => {
                s.fallback_ip.clone()
            }
            None => bound_ip,
        };
        (ip, host_port)
    };
    if let Some(label) = &s.ip_label {
        if let Some(v) = c.labels.get(label).filter(|v| !v.is_empty()) {
            let bare = v.split('/').next().unwrap_or(v);
            bare.parse::<std::net::IpAddr>()
                .map_err(|_| LabelError::new(label, format!("{v:?} is not an IP address")))?;
            ip = bare.to_string();
        }
    }
    Ok((ip, service_port))
}

/// The container's address on `SERVICE_NETWORK`/`--network`, else on its first network that has
/// one (the swarm ingress network last: it is not routable).
fn container_ip(
    c: &ContainerInfo,
    s: &ModelSettings,
    labels: &ServiceLabels,
) -> Result<String, LabelError> {
    let wanted = labels
        .get(0, "NETWORK")
        .map(|v| (v.label.as_str(), v.value.as_str()));
    let wanted = wanted.or(s.network.as_deref().map(|n| ("--network", n)));
    let pick = |a: &crate::container::NetworkAddr| {
        Some(if a.ipv4.is_empty() {
            a.ipv6.clone()
        } else {
            a.ipv4.clone()
        })
        .filter(|ip| !ip.is_empty())
    };
    if let Some((label, net)) = wanted {
        return c.networks.get(net).and_then(pick).ok_or_else(|| {
            LabelError::new(
                label,
                format!("container has no address on network {net:?}"),
            )
        });
    }
    let mut nets: Vec<_> = c.networks.iter().collect();
    nets.sort_by_key(|(name, _)| *name == "ingress");
    nets.into_iter()
        .find_map(|(_, a)| pick(a))
        .ok_or_else(|| LabelError::new("-internal", "container has no network address"))
}

fn tags_of(
    c: &ContainerInfo,
    labels: &ServiceLabels,
    s: &ModelSettings,
    p: u16,
    udp: bool,
) -> Result<Vec<String>, LabelError> {
    let mut tags = Vec::new();
    if let Some(v) = labels.get(p, "TAGS") {
        for tag in split_tags(&v.value) {
            check_text(&v.label, &tag)?;
            tags.push(tag);
        }
    }
    if let Some(template) = &s.tags {
        let rendered = template
            .render(c)
            .map_err(|e| LabelError::new("-tags", e.to_string()))?;
        for tag in split_tags(&rendered) {
            check_text("-tags", &tag)?;
            tags.push(tag);
        }
    }
    if udp {
        tags.push("udp".into());
    }
    let mut seen = std::collections::HashSet::new();
    tags.retain(|t| seen.insert(t.clone()));
    Ok(tags)
}

/// The attributes that are not meta: gliderlabs copies every other `SERVICE_*` attribute into
/// the service meta, `check_*` included.
fn is_reserved_key(key: &str) -> bool {
    matches!(key, "NAME" | "ID" | "TAGS")
}

fn meta_of(
    c: &ContainerInfo,
    s: &ModelSettings,
    labels: &ServiceLabels,
    p: u16,
) -> Result<BTreeMap<String, String>, LabelError> {
    let mut meta = BTreeMap::new();
    for (key, v) in labels.all_for(p) {
        if is_reserved_key(key) {
            continue;
        }
        let meta_key = key.to_ascii_lowercase();
        let key_ok = meta_key.len() <= MAX_META_KEY_LEN
            && !meta_key.starts_with("consul-")
            && meta_key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !key_ok {
            return Err(LabelError::new(
                &v.label,
                "is not usable as a Consul meta key",
            ));
        }
        check_text(&v.label, &v.value)?;
        meta.insert(meta_key, v.value.clone());
    }
    for (k, v) in [
        (OWNER_META_KEY, OWNER_META_VALUE),
        (META_NODE, s.node.as_str()),
        (META_CONTAINER_ID, c.id.0.as_str()),
        (META_CONTAINER_NAME, c.name.as_str()),
        (META_IMAGE, c.image.as_str()),
    ] {
        meta.insert(k.to_string(), v.to_string());
    }
    Ok(meta)
}

fn kv_record(
    c: &ContainerInfo,
    s: &ModelSettings,
    prefix: &KvPrefix,
    r: &ServiceRegistration,
) -> (String, Vec<u8>) {
    let key = prefix.key(&r.name, &r.id);
    let record = KvRecord {
        id: &r.id,
        name: &r.name,
        address: &r.address,
        port: r.port,
        tags: &r.tags,
        meta: &r.meta,
        container: &c.name,
        image: &c.image,
        node: &s.node,
    };
    (
        key,
        serde_json::to_vec(&record).expect("a record always serialises"),
    )
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
