//! `templater status`: per service the active colour, canary, instances per colour with health,
//! the share of traffic each instance gets, and every templater's last install and last error.

use std::collections::BTreeMap;

use serde::Serialize;
use swarmgate_consul::{Client, QueryOptions};

use crate::context::{self, color_of, ContextOptions};
use crate::deploy::DeployError;
use crate::model::{Catalog, Instance};
use swarmgate_consul::CheckStatus;
use crate::report::{parse_status_key, unix_now, DaemonStatus};
use crate::settings::{self, STATUS_DIR};
use crate::weights::{effective_shares, Assigned};

#[derive(Debug, Serialize)]
pub struct Report {
    pub services: Vec<ServiceReport>,
    pub templaters: Vec<DaemonStatus>,
}

#[derive(Debug, Serialize)]
pub struct ServiceReport {
    pub name: String,
    pub active: Option<String>,
    pub canary: u8,
    pub previous: Option<String>,
    /// colour (or "none") → (instances, healthy)
    pub colors: BTreeMap<String, ColorCount>,
    pub instances: Vec<InstanceReport>,
}

#[derive(Debug, Default, Serialize)]
pub struct ColorCount {
    pub instances: usize,
    pub healthy: usize,
}

#[derive(Debug, Serialize)]
pub struct InstanceReport {
    pub id: String,
    pub node: String,
    pub address: String,
    pub port: u16,
    pub color: Option<String>,
    pub health: CheckStatus,
    /// Percent of the service's traffic.
    pub share: f64,
    pub backup: bool,
}

/// Gathers the report for one service, or all.
pub async fn gather(
    client: &Client,
    prefix: &str,
    opts: &ContextOptions,
    only: Option<&str>,
) -> Result<Report, DeployError> {
    let dir = format!("{}/", prefix.trim_end_matches('/'));
    let (pairs, _) = client.kv_list(&dir, &QueryOptions::default(), true).await?;
    let (settings, _) = settings::parse(&pairs, prefix, &opts.colors, &Default::default());
    let catalog = match only {
        Some(service) => {
            crate::model::check_service_name(service).map_err(DeployError::Invalid)?;
            let (entries, _) = client
                .health_service(service, &QueryOptions::default(), false)
                .await?;
            let list = entries
                .iter()
                .map(|e| Instance {
                    id: e.service.id.clone(),
                    node: e.node.node.clone(),
                    address: e.address().to_string(),
                    port: e.service.port,
                    tags: e.service.tags.clone().unwrap_or_default(),
                    meta: e.service.meta.clone().unwrap_or_default(),
                    health: e.status(),
                })
                .collect();
            Catalog {
                services: [(service.to_string(), list)].into(),
            }
        }
        None => crate::watch::fetch_snapshot(client, false).await?.0,
    };
    let (ctx, _) = context::build(&catalog, &settings, opts);
    let services = catalog
        .services
        .iter()
        .map(|(name, all)| {
            let s = settings.get(name).cloned().unwrap_or_default();
            let live = ctx.services.iter().find(|c| c.name == name);
            let assigned: Vec<(&str, Assigned)> = live
                .map(|c| {
                    c.instances
                        .iter()
                        .map(|i| {
                            (
                                i.id,
                                Assigned {
                                    weight: i.weight,
                                    backup: i.backup,
                                },
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let shares = effective_shares(&assigned.iter().map(|(_, a)| *a).collect::<Vec<_>>());
            let mut colors: BTreeMap<String, ColorCount> = BTreeMap::new();
            let instances = all
                .iter()
                .map(|i| {
                    let color = color_of(&i.tags, &opts.colors).cloned();
                    let count = colors
                        .entry(color.clone().unwrap_or_else(|| "none".into()))
                        .or_default();
                    count.instances += 1;
                    count.healthy += usize::from(opts.health.admits(i.health));
                    let pos = assigned.iter().position(|(id, _)| *id == i.id);
                    InstanceReport {
                        id: i.id.clone(),
                        node: i.node.clone(),
                        address: i.address.clone(),
                        port: i.port,
                        color,
                        health: i.health,
                        share: pos.map_or(0.0, |p| shares[p]),
                        backup: pos.is_some_and(|p| assigned[p].1.backup),
                    }
                })
                .collect();
            ServiceReport {
                name: name.clone(),
                active: s.active,
                canary: s.canary,
                previous: s.previous,
                colors,
                instances,
            }
        })
        .collect();
    let templaters = pairs
        .iter()
        .filter(|p| p.key.contains(STATUS_DIR) && parse_status_key(prefix, &p.key).is_some())
        .filter_map(|p| serde_json::from_slice(&p.value).ok())
        .collect();
    Ok(Report {
        services,
        templaters,
    })
}

/// The human-readable form.
pub fn to_text(r: &Report) -> String {
    let mut out = String::new();
    for s in &r.services {
        out += &format!(
            "{}  active={} canary={}% previous={}\n",
            s.name,
            s.active.as_deref().unwrap_or("-"),
            s.canary,
            s.previous.as_deref().unwrap_or("-")
        );
        for (color, c) in &s.colors {
            out += &format!(
                "  {color:<8} {} instances, {} healthy\n",
                c.instances, c.healthy
            );
        }
        for i in &s.instances {
            out += &format!(
                "    {:<40} {:<7} {:<8} {:>6.2}%{} {}:{}\n",
                i.id,
                i.color.as_deref().unwrap_or("-"),
                format!("{:?}", i.health).to_lowercase(),
                i.share,
                if i.backup { " backup" } else { "" },
                i.address,
                i.port
            );
        }
    }
    if r.templaters.is_empty() {
        out += "templaters: none has reported\n";
    }
    for t in &r.templaters {
        let ago = |at: Option<u64>| {
            at.map_or_else(
                || "never".to_string(),
                |a| format!("{}s ago", unix_now().saturating_sub(a)),
            )
        };
        out += &format!(
            "templater {}: last install {}, last error {}{}\n",
            t.name,
            ago(t.last_install_unix),
            t.last_error.as_deref().map_or_else(
                || "none".to_string(),
                |e| format!("{} ({e})", ago(t.last_error_unix))
            ),
            if t.held {
                ", holding its last view"
            } else {
                ""
            }
        );
    }
    out
}
