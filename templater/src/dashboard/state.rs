//! The dashboard's data (`/api/state`): this edge's live view reshaped for people — per service
//! the split, the per-colour totals and every instance with its health, weight and share, then
//! the recent deploys and the daemon's own condition. Everything comes from the [`LiveView`] the
//! publisher wrote and the traffic figures of [`crate::traffic`] (either data plane); nothing about
//! traffic is decided here.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::live::{DeployEvent, LiveView};
use crate::plan::{LeftOutReason, ServicePlan};
use crate::traffic::{Figures, Windows};

/// The whole `/api/state` answer.
#[derive(Debug, Serialize)]
pub struct DashboardState {
    pub generated_unix: u64,
    pub edge: EdgeState,
    pub services: Vec<ServiceState>,
    /// Newest first.
    pub history: Vec<DeployEvent>,
    /// A running promotion (none until `templater promote` exists).
    pub promotion: Option<serde_json::Value>,
}

/// The daemon's own condition.
#[derive(Debug, Serialize)]
pub struct EdgeState {
    /// `None` before the first pass is published.
    pub name: Option<String>,
    pub dataplane: Option<String>,
    pub consul_up: bool,
    pub started_unix: Option<u64>,
    pub last_install_unix: Option<u64>,
    pub last_error: Option<String>,
    pub last_error_unix: Option<u64>,
    pub view_held: bool,
    /// The state version nginx holds (Lua data plane).
    pub live_version: Option<u64>,
    pub last_reload_unix: Option<u64>,
    pub last_push_unix: Option<u64>,
    pub services_served: usize,
    pub services_not_served: usize,
}

#[derive(Debug, Serialize)]
pub struct ServiceState {
    pub name: String,
    pub host: String,
    pub public: bool,
    pub active: Option<String>,
    pub canary: u8,
    pub sticky: Option<String>,
    /// Why it is not served at all, or why it is held at an older plan.
    pub excluded: Option<String>,
    pub held: Option<String>,
    pub colors: Vec<ColorState>,
    pub instances: Vec<InstanceState>,
}

/// Per colour (`none` for instances without one): what serves and its share of traffic.
#[derive(Debug, Serialize)]
pub struct ColorState {
    pub color: String,
    pub serving: usize,
    pub backups: usize,
    pub left_out: usize,
    pub share: f64,
    /// Traffic over the last minute at this edge (`None` without figures).
    pub requests_per_second: Option<f64>,
    pub error_rate: Option<f64>,
    pub p99_seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct InstanceState {
    pub id: String,
    pub node: String,
    pub server: Option<String>,
    pub color: Option<String>,
    /// `passing`/`warning`/`critical`, or why it is left out.
    pub health: String,
    pub weight: u32,
    pub backup: bool,
    pub share: f64,
    /// Set when it does not serve.
    pub left_out: Option<String>,
    /// Its Consul tags (servers only).
    pub tags: Vec<String>,
}

/// Builds the answer from the live view and the traffic figures.
pub fn of(view: &LiveView, traffic: &Windows, consul_up: bool, now_unix: u64) -> DashboardState {
    let status = view.status.as_ref();
    let services: Vec<ServiceState> = view
        .plan
        .services
        .values()
        .map(|p| service(p, traffic))
        .collect();
    DashboardState {
        generated_unix: now_unix,
        edge: EdgeState {
            name: status.map(|s| s.name.clone()),
            dataplane: status.map(|s| s.dataplane.clone()),
            consul_up,
            started_unix: status.map(|s| s.started_unix),
            last_install_unix: status.and_then(|s| s.last_install_unix),
            last_error: status.and_then(|s| s.last_error.clone()),
            last_error_unix: status.and_then(|s| s.last_error_unix),
            view_held: status.is_some_and(|s| s.view_held),
            live_version: status.and_then(|s| s.live_version),
            last_reload_unix: status.and_then(|s| s.last_reload_unix),
            last_push_unix: status.and_then(|s| s.last_push_unix),
            services_served: view.plan.served().count(),
            services_not_served: services
                .iter()
                .filter(|s| s.excluded.is_some() || s.held.is_some())
                .count(),
        },
        services,
        history: view.history.iter().cloned().collect(),
        promotion: None,
    }
}

fn service(p: &ServicePlan, traffic: &Windows) -> ServiceState {
    let serving = p.instances.iter().map(|s| InstanceState {
        id: s.id.clone(),
        node: s.node.clone(),
        server: Some(s.server.clone()),
        color: s.color.clone(),
        health: s.health.as_str().into(),
        weight: s.weight,
        backup: s.backup,
        share: s.share,
        left_out: None,
        tags: s.tags.clone(),
    });
    let left_out = p.left_out.iter().map(|l| InstanceState {
        id: l.id.clone(),
        node: l.node.clone(),
        server: None,
        color: l.color.clone(),
        health: match &l.reason {
            LeftOutReason::Unhealthy(h) => h.as_str().into(),
            _ => "left out".into(),
        },
        weight: 0,
        backup: false,
        share: 0.0,
        left_out: Some(l.reason.to_string()),
        tags: Vec::new(),
    });
    let instances: Vec<InstanceState> = serving.chain(left_out).collect();
    ServiceState {
        name: p.name.clone(),
        host: p.host.clone(),
        public: p.public,
        active: p.active.clone(),
        canary: p.canary,
        sticky: p.sticky.clone(),
        excluded: p.excluded.clone(),
        held: p.held.clone(),
        colors: colors_of(&p.name, &instances, traffic),
        instances,
    }
}

/// Per-colour totals of a service's instances with their traffic, sorted by colour.
fn colors_of(service: &str, instances: &[InstanceState], traffic: &Windows) -> Vec<ColorState> {
    let mut colors: BTreeMap<&str, ColorState> = BTreeMap::new();
    for i in instances {
        let name = i.color.as_deref().unwrap_or("none");
        let c = colors.entry(name).or_insert_with(|| {
            // The traffic's colour of instances without one is "".
            let key = (service.to_string(), i.color.clone().unwrap_or_default());
            let f = traffic.get(&key).cloned().unwrap_or_default();
            let Figures {
                requests_per_second,
                error_rate,
                p99_seconds,
            } = f;
            ColorState {
                color: name.to_string(),
                serving: 0,
                backups: 0,
                left_out: 0,
                share: 0.0,
                requests_per_second,
                error_rate,
                p99_seconds,
            }
        });
        match (&i.left_out, i.backup) {
            (Some(_), _) => c.left_out += 1,
            (None, true) => c.backups += 1,
            (None, false) => c.serving += 1,
        }
        c.share += i.share;
    }
    colors.into_values().collect()
}
