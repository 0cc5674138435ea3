//! The Lua data plane's state document (see the contract in README "Data planes"): per served
//! service, its stickiness and its peers with the weight, backup flag and colour the plan gave
//! them, and its pinning (the preview colours' peers, the canary cookie's active colour). It is
//! printed from the plan only: no weight or pin is worked out again here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::plan::{Plan, ServicePlan};

/// What the templater pushes to nginx and writes to the state file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDoc {
    pub version: u64,
    pub services: BTreeMap<String, ServiceState>,
}

/// One service as the balancer sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// `ip_hash` or `hash` (of the client address); `null` for weighted round-robin.
    pub sticky: Option<String>,
    /// Empty: nginx answers 502.
    #[serde(deserialize_with = "peers_or_empty_object")]
    pub peers: Vec<Peer>,
    /// Preview on: per colour of `--colors`, the peers a request naming it reaches (weight 1,
    /// no backup); an empty list answers 503. Absent: preview off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<BTreeMap<String, Vec<Peer>>>,
    /// The active colour while the canary cookie is live (meta canary_cookie, canary > 0);
    /// absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_cookie: Option<String>,
}

/// One server of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub id: String,
    /// An IP literal (no brackets).
    pub address: String,
    pub port: u16,
    pub weight: u32,
    pub backup: bool,
    pub color: Option<String>,
}

impl StateDoc {
    /// The document for the served services of `plan` (held ones at the plan they are held
    /// at), at `version`.
    pub fn of(plan: &Plan, version: u64) -> StateDoc {
        StateDoc {
            version,
            services: plan
                .served()
                .map(|s| (s.name.clone(), ServiceState::of(s)))
                .collect(),
        }
    }

    /// The JSON body, as pushed and written.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a state document serialises")
    }
}

impl ServiceState {
    fn of(s: &ServicePlan) -> ServiceState {
        ServiceState {
            sticky: s.sticky.clone(),
            peers: s
                .instances
                .iter()
                .map(|i| Peer {
                    id: i.id.clone(),
                    address: i.address.clone(),
                    port: i.port,
                    weight: i.weight,
                    backup: i.backup,
                    color: i.color.clone(),
                })
                .collect(),
            preview: s.pinning.preview.as_ref().map(|colors| {
                colors
                    .iter()
                    .map(|c| {
                        let peers = c.servers.iter().map(|i| Peer {
                            id: i.id.clone(),
                            address: i.address.clone(),
                            port: i.port,
                            weight: 1,
                            backup: false,
                            color: Some(c.color.clone()),
                        });
                        (c.color.clone(), peers.collect())
                    })
                    .collect()
            }),
            canary_cookie: s.cookie_active().map(String::from),
        }
    }
}

/// Lua's JSON encoder prints an empty table as `{}`: read it as no peers.
fn peers_or_empty_object<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Peer>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Peers {
        List(Vec<Peer>),
        Empty(BTreeMap<String, serde_json::Value>),
    }
    match Peers::deserialize(d)? {
        Peers::List(p) => Ok(p),
        Peers::Empty(m) if m.is_empty() => Ok(Vec::new()),
        Peers::Empty(_) => Err(serde::de::Error::custom("peers: expected a list")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Catalog, Instance};
    use crate::plan::{build, HealthFilter, PlanOptions};
    use crate::settings::{DeploySettings, Settings};
    use swarmgate_consul::CheckStatus;

    pub(crate) struct NoFiles;
    impl crate::plan::FileProbe for NoFiles {
        fn check(&self, _: &std::path::Path) -> Result<(), String> {
            Ok(())
        }
    }

    pub(crate) fn opts() -> PlanOptions {
        PlanOptions {
            colors: vec!["blue".into(), "green".into()],
            health: HealthFilter::Passing,
            backup_inactive: true,
            domain: "localhost".into(),
            allow_hostnames: false,
            preview: false,
        }
    }

    pub(crate) fn catalog(instances: &[(&str, &str, &str, u16, &str, CheckStatus)]) -> Catalog {
        let mut cat = Catalog::default();
        for (svc, id, addr, port, color, health) in instances {
            cat.services
                .entry(svc.to_string())
                .or_default()
                .instances
                .push(Instance {
                    id: id.to_string(),
                    node: "n1".into(),
                    address: addr.to_string(),
                    port: *port,
                    tags: vec![color.to_string()],
                    meta: Default::default(),
                    health: *health,
                });
        }
        cat
    }

    pub(crate) fn settings(service: &str, active: &str, canary: u8) -> Settings {
        let mut s = Settings::new();
        s.insert(
            service.into(),
            DeploySettings {
                active: Some(active.into()),
                canary,
                previous: None,
                promoting: false,
                index: 7,
            },
        );
        s
    }

    #[test]
    fn peers_carry_the_plans_weights_backups_and_colours() {
        use CheckStatus::*;
        let cat = catalog(&[
            ("app", "b1", "10.0.0.1", 80, "blue", Passing),
            ("app", "b2", "10.0.0.2", 80, "blue", Passing),
            ("app", "b3", "10.0.0.3", 80, "blue", Passing),
            ("app", "g1", "fd00::1", 81, "green", Passing),
            ("app", "g2", "10.0.0.9", 81, "green", Critical),
        ]);
        let plan = build(&cat, &settings("app", "blue", 10), &opts(), None, &NoFiles);
        let doc = StateDoc::of(&plan, 3);
        let app = &doc.services["app"];
        let want: Vec<(String, u32, bool)> = plan.services["app"]
            .instances
            .iter()
            .map(|i| (i.id.clone(), i.weight, i.backup))
            .collect();
        let got: Vec<(String, u32, bool)> = app
            .peers
            .iter()
            .map(|p| (p.id.clone(), p.weight, p.backup))
            .collect();
        assert_eq!(got, want, "the plan's weights, not new ones");
        let total: u32 = app.peers.iter().map(|p| p.weight).sum();
        let green: u32 = app
            .peers
            .iter()
            .filter(|p| p.color.as_deref() == Some("green"))
            .map(|p| p.weight)
            .sum();
        assert_eq!(green * 10, total, "10% canary");
        assert!(app.peers.iter().all(|p| p.id != "g2"), "unhealthy left out");
        let v6 = app.peers.iter().find(|p| p.id == "g1").expect("g1");
        assert_eq!(v6.address, "fd00::1", "an IP literal, no brackets");

        let flipped = build(&cat, &settings("app", "blue", 0), &opts(), None, &NoFiles);
        let doc = StateDoc::of(&flipped, 4);
        let g1 = doc.services["app"]
            .peers
            .iter()
            .find(|p| p.id == "g1")
            .expect("g1 stands by");
        assert!(g1.backup, "canary 0: the inactive colour is a backup");
    }

    #[test]
    fn excluded_services_are_left_out_and_the_shape_is_the_contracts() {
        use CheckStatus::*;
        let cat = catalog(&[
            ("app", "a1", "10.0.0.1", 8080, "blue", Passing),
            ("gone", "x1", "10.0.0.2", 80, "blue", Passing),
        ]);
        let mut plan = build(&cat, &Settings::new(), &opts(), None, &NoFiles);
        plan.services.get_mut("gone").expect("gone").excluded = Some("refused".into());
        let doc = StateDoc::of(&plan, 42);
        let json: serde_json::Value =
            serde_json::from_slice(&doc.to_json()).expect("json document");
        assert_eq!(
            json,
            serde_json::json!({"version": 42, "services": {"app": {"sticky": null, "peers": [
                {"id": "a1", "address": "10.0.0.1", "port": 8080, "weight": 1,
                 "backup": false, "color": "blue"}]}}})
        );
        let back: StateDoc = serde_json::from_slice(&doc.to_json()).expect("reads back");
        assert_eq!(back, doc);
        let lua: StateDoc = serde_json::from_str(r#"{"version":3,"services":{"x":{"peers":{}}}}"#)
            .expect("lua's empty table and a missing null");
        assert_eq!(lua.services["x"].peers, Vec::new());
        assert_eq!(lua.services["x"].sticky, None);
    }

    /// The pinning, printed from the plan: every colour's preview peers (weight 1, no backup,
    /// an empty list for a colour with none), the cookie's active colour only while canary > 0.
    #[test]
    fn the_pinning_is_the_plans() {
        use CheckStatus::*;
        let mut cat = catalog(&[
            ("app", "b1", "10.0.0.1", 80, "blue", Passing),
            ("app", "g1", "10.0.0.2", 81, "green", Critical),
        ]);
        let meta = [("preview", "true"), ("canary_cookie", "true")];
        cat.services.get_mut("app").expect("app").instances[0].meta = meta
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let plan = build(&cat, &settings("app", "blue", 10), &opts(), None, &NoFiles);
        let json: serde_json::Value =
            serde_json::from_slice(&StateDoc::of(&plan, 5).to_json()).expect("json");
        let app = &json["services"]["app"];
        assert_eq!(
            app["preview"],
            serde_json::json!({"blue": [{"id": "b1", "address": "10.0.0.1", "port": 80,
                "weight": 1, "backup": false, "color": "blue"}], "green": []})
        );
        assert_eq!(app["canary_cookie"], "blue");
        let at_zero = build(&cat, &settings("app", "blue", 0), &opts(), None, &NoFiles);
        let doc = StateDoc::of(&at_zero, 6);
        assert_eq!(
            doc.services["app"].canary_cookie, None,
            "canary 0: no cookie"
        );
        let back: StateDoc = serde_json::from_slice(&doc.to_json()).expect("reads back");
        assert_eq!(back, doc);
    }
}
