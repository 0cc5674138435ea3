//! Reconciliation: reading what Consul holds for this node (agent services with our ownership
//! marker, KV records, and unmarked services in gliderlabs' id shape) and comparing it with the
//! desired state, to find services Consul lost, services that drifted, and orphans this
//! registrator owns (or gliderlabs left behind) that no container backs.

use std::collections::BTreeMap;

use swarmgate_consul::{AgentService, Client, QueryOptions, Result};

use crate::desired::DesiredState;
use crate::kv::KvPrefix;
use crate::service::{parse_default_id, META_NODE, OWNER_META_KEY, OWNER_META_VALUE};

/// What Consul holds for this node.
#[derive(Debug, Default)]
pub struct ConsulView {
    /// This node's services with our marker.
    pub services: BTreeMap<String, AgentService>,
    /// Unmarked services whose id has gliderlabs' shape with this node's name
    /// (`<node>:<container>:<port>[:udp]`): what gliderlabs/registrator registered here.
    pub gliderlabs: BTreeMap<String, AgentService>,
    /// KV records (key → value) of this node, when read (`full` reconciles).
    pub kv: Option<BTreeMap<String, Vec<u8>>>,
}

/// What reconciling found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Desired services that the agent lacks or holds differently: re-send them whole.
    pub repair: Vec<String>,
    /// Desired KV records missing or different: write them again.
    pub rewrite: Vec<String>,
    /// Services we own that nothing backs: `(service id, KV key)`.
    pub orphans: Vec<(String, Option<String>)>,
    /// KV records we own that no service backs.
    pub orphan_keys: Vec<String>,
}

/// Reads this node's services, and with `full` its KV records too.
pub async fn read_view(
    client: &Client,
    node: &str,
    kv_prefix: Option<&KvPrefix>,
    full: bool,
) -> Result<ConsulView> {
    let mut services = BTreeMap::new();
    let mut gliderlabs = BTreeMap::new();
    for (id, svc) in client.agent_services(None).await? {
        let meta = |k: &str| svc.meta.as_ref().and_then(|m| m.get(k)).map(String::as_str);
        if meta(OWNER_META_KEY) == Some(OWNER_META_VALUE) {
            if meta(META_NODE) == Some(node) {
                services.insert(id, svc);
            }
        } else if parse_default_id(&id).is_some_and(|(n, _)| n == node) {
            gliderlabs.insert(id, svc);
        }
    }
    let kv = match kv_prefix.filter(|_| full) {
        Some(prefix) => {
            let (pairs, _) = client
                .kv_list(&prefix.dir(), &QueryOptions::default(), true)
                .await?;
            let ours = pairs
                .into_iter()
                .filter(|p| prefix.parse(&p.key).is_some())
                .filter(|p| record_node(&p.value).as_deref() == Some(node))
                .map(|p| (p.key, p.value))
                .collect();
            Some(ours)
        }
        None => None,
    };
    Ok(ConsulView {
        services,
        gliderlabs,
        kv,
    })
}

fn record_node(value: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(value).ok()?;
    Some(v.get("node")?.as_str()?.to_string())
}

/// Compares `view` with `desired`.
pub fn compare(view: &ConsulView, desired: &DesiredState) -> Findings {
    let mut f = Findings::default();
    for (id, want) in desired.iter() {
        let reg = &want.service.registration;
        let same = view.services.get(id).is_some_and(|have| {
            have.service == reg.name
                && have.address == reg.address
                && have.port == reg.port
                && have.tags.as_deref().unwrap_or_default() == reg.tags.as_slice()
                && have
                    .meta
                    .as_ref()
                    .map_or(reg.meta.is_empty(), |m| *m == reg.meta)
        });
        if !same {
            f.repair.push(id.clone());
        }
        if let (Some(kv), Some((key, value))) = (&view.kv, &want.service.kv) {
            if kv.get(key) != Some(value) {
                f.rewrite.push(key.clone());
            }
        }
    }
    let prefix = desired.settings().kv_prefix.as_ref();
    for (id, have) in &view.services {
        if desired.get(id).is_none() {
            let key = prefix.map(|p| p.key(&have.service, id));
            f.orphans.push((id.clone(), key));
        }
    }
    for id in view.gliderlabs.keys() {
        let backed =
            parse_default_id(id).is_some_and(|(_, name)| desired.runs_container_named(name));
        if !backed && desired.get(id).is_none() {
            f.orphans.push((id.clone(), None));
        }
    }
    if let Some(kv) = &view.kv {
        let wanted: std::collections::HashSet<&str> = desired
            .iter()
            .filter_map(|(_, w)| w.service.kv.as_ref().map(|(k, _)| k.as_str()))
            .collect();
        let orphan_service_keys: std::collections::HashSet<&str> =
            f.orphans.iter().filter_map(|(_, k)| k.as_deref()).collect();
        f.orphan_keys = kv
            .keys()
            .filter(|k| !wanted.contains(k.as_str()) && !orphan_service_keys.contains(k.as_str()))
            .cloned()
            .collect();
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DeregisterMode;
    use crate::container::{ContainerId, ContainerInfo, Port, Proto};
    use crate::service::ModelSettings;

    fn desired() -> DesiredState {
        let settings = ModelSettings {
            node: "n".into(),
            fallback_ip: "10.0.0.1".into(),
            kv_prefix: crate::kv::KvPrefix::new("services").expect("valid"),
            ..ModelSettings::default()
        };
        let mut d = DesiredState::new(settings, DeregisterMode::Always);
        d.listed(&ContainerInfo {
            id: ContainerId("a".into()),
            name: "a".into(),
            image: "app".into(),
            labels: Default::default(),
            env: vec![],
            ports: vec![Port {
                container_port: 80,
                proto: Proto::Tcp,
                binding: Some(("0.0.0.0".into(), 8000)),
            }],
            networks: Default::default(),
            network_mode: "bridge".into(),
            health: None,
            paused: false,
            started_at: "t0".into(),
            config: Default::default(),
        });
        d
    }

    fn as_agent(d: &DesiredState, id: &str) -> AgentService {
        let r = &d.get(id).expect("wanted").service.registration;
        AgentService {
            id: r.id.clone(),
            service: r.name.clone(),
            tags: Some(r.tags.clone()),
            address: r.address.clone(),
            port: r.port,
            meta: Some(r.meta.clone()),
        }
    }

    #[test]
    fn in_sync_finds_nothing() {
        let d = desired();
        let (key, value) = d
            .get("n:a:80")
            .and_then(|w| w.service.kv.clone())
            .expect("kv");
        let view = ConsulView {
            services: [("n:a:80".to_string(), as_agent(&d, "n:a:80"))].into(),
            gliderlabs: BTreeMap::new(),
            kv: Some([(key, value)].into()),
        };
        assert_eq!(compare(&view, &d), Findings::default());
    }

    #[test]
    fn lost_drifted_and_orphaned() {
        let d = desired();
        let mut drifted = as_agent(&d, "n:a:80");
        drifted.port = 1;
        let mut orphan = drifted.clone();
        orphan.id = "n:gone:80".into();
        orphan.service = "gone".into();
        let view = ConsulView {
            services: [
                ("n:a:80".to_string(), drifted),
                ("n:gone:80".to_string(), orphan),
            ]
            .into(),
            gliderlabs: [("n:gone2:80".to_string(), AgentService::default())].into(),
            kv: Some(
                [
                    ("services/old/x".to_string(), b"{}".to_vec()),
                    ("services/gone/n:gone:80".to_string(), b"{}".to_vec()),
                ]
                .into(),
            ),
        };
        let f = compare(&view, &d);
        assert_eq!(f.repair, ["n:a:80"]);
        assert_eq!(f.rewrite, ["services/app/n:a:80"]);
        assert_eq!(
            f.orphans,
            [
                (
                    "n:gone:80".to_string(),
                    Some("services/gone/n:gone:80".to_string())
                ),
                ("n:gone2:80".to_string(), None)
            ]
        );
        assert_eq!(f.orphan_keys, ["services/old/x"]);
        assert!(compare(&ConsulView::default(), &d).repair == ["n:a:80"]);
    }
}
