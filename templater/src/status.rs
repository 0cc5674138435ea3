//! `templater status`: per service, what Consul says now (settings, instances per colour with
//! health and the images they run) and, per edge, the plan that edge has live — read back
//! from its records, never worked out again here — with where it differs from what the edge's
//! own options make of Consul now (a change not taken yet, an instance not served yet). Then
//! every edge's state.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use swarmgate_consul::rules::META_IMAGE;
use swarmgate_consul::{CheckStatus, Client, QueryOptions};

use crate::deploy::DeployError;
use crate::keys::Field;
use crate::keys::Keys;
use crate::model::{self, Catalog, Invalid};
use crate::plan::{self, color_of, FileProbe, ServicePlan};
use crate::promote::record::{self as promotion, Promotion};
use crate::records::{self, unix_now, EdgeStatus, Installed};
use crate::settings::{self, Settings};

#[derive(Debug, Serialize)]
pub struct Report {
    pub services: Vec<ServiceReport>,
    pub edges: Vec<EdgeReport>,
}

#[derive(Debug, Serialize)]
pub struct EdgeReport {
    #[serde(flatten)]
    pub status: EdgeStatus,
    /// False when its heartbeat is too old: the edge is gone or cut off.
    pub fresh: bool,
}

#[derive(Debug, Serialize)]
pub struct ServiceReport {
    pub name: String,
    pub active: Option<String>,
    pub canary: u8,
    pub previous: Option<String>,
    pub settings_index: u64,
    /// colour (or "none") → instances and healthy ones, in Consul now.
    pub colors: BTreeMap<String, ColorCount>,
    /// The instances Consul holds now.
    pub instances: Vec<ConsulInstance>,
    /// Registrations Consul holds that cannot be used, and why.
    pub invalid: Vec<Invalid>,
    /// What each edge has live for this service.
    pub edges: Vec<EdgePlan>,
    /// A promotion walking the service, as its record says.
    pub promotion: Option<PromotionReport>,
}

#[derive(Debug, Serialize)]
pub struct PromotionReport {
    #[serde(flatten)]
    pub record: Promotion,
    /// False when its CLI is gone (its lock was released): traffic stays at its step.
    pub running: bool,
    pub text: String,
}

#[derive(Debug, Default, Serialize)]
pub struct ColorCount {
    pub instances: usize,
    pub healthy: usize,
    /// The images its instances run (the registrator's `image` meta), sorted.
    pub images: BTreeSet<String>,
}

#[derive(Debug, Serialize)]
pub struct ConsulInstance {
    pub id: String,
    pub node: String,
    pub address: String,
    pub port: u16,
    pub color: Option<String>,
    pub health: CheckStatus,
}

#[derive(Debug, Serialize)]
pub struct EdgePlan {
    pub edge: String,
    pub settings_index: u64,
    pub live_unix: u64,
    pub version: Option<u64>,
    pub plan: ServicePlan,
    /// Where the live plan and the edge's options applied to Consul now disagree.
    pub differences: Vec<String>,
}

/// Gathers the report for one service, or all.
pub async fn gather(
    client: &Client,
    keys: &Keys,
    colors: &[String],
    only: Option<&str>,
) -> Result<Report, DeployError> {
    let (pairs, _) = client
        .kv_list(&keys.settings_dir(), &QueryOptions::default(), true)
        .await?;
    let (settings, _) = settings::parse(&pairs, keys, colors, &Settings::default());
    let catalog = match only {
        Some(service) => {
            swarmgate_consul::rules::service_name(service)
                .map_err(|e| DeployError::Invalid(format!("service {service:?}: {e}")))?;
            let (entries, _) = client
                .health_service(service, &QueryOptions::default(), false)
                .await?;
            model::from_entries(entries).0
        }
        None => crate::watch::fetch_snapshot(client, false).await?.0,
    };
    let (edge_status, installed) = records::read_all(client, keys).await?;
    let now = unix_now();
    let mut names: Vec<String> = catalog.services.keys().cloned().collect();
    names.extend(installed.iter().map(|i| i.plan.name.clone()));
    names.extend(only.map(str::to_string));
    names.retain(|n| only.is_none_or(|o| o == n));
    names.sort();
    names.dedup();
    let mut services: Vec<ServiceReport> = names
        .iter()
        .map(|name| service_report(name, &catalog, &settings, &installed, &edge_status, colors))
        .collect();
    for pair in &pairs {
        let Some((name, Field::Promotion)) = keys.parse_setting(&pair.key) else {
            continue;
        };
        let (Some(found), Some(report)) = (
            promotion::from_pair(pair),
            services.iter_mut().find(|s| s.name == name),
        ) else {
            continue;
        };
        report.promotion = Some(PromotionReport {
            text: promotion::describe(&found, now),
            running: found.session.is_some(),
            record: found.promotion,
        });
    }
    let edges = edge_status
        .into_iter()
        .map(|status| EdgeReport {
            fresh: status.is_fresh(now),
            status,
        })
        .collect();
    Ok(Report { services, edges })
}

fn service_report(
    name: &str,
    catalog: &Catalog,
    settings: &Settings,
    installed: &[Installed],
    edges: &[EdgeStatus],
    colors: &[String],
) -> ServiceReport {
    let s = settings.get(name).cloned().unwrap_or_default();
    let view = catalog.services.get(name).cloned().unwrap_or_default();
    let mut counts: BTreeMap<String, ColorCount> = BTreeMap::new();
    let instances = view
        .instances
        .iter()
        .map(|i| {
            let color = color_of(&i.tags, colors).cloned();
            let c = counts
                .entry(color.clone().unwrap_or_else(|| "none".into()))
                .or_default();
            c.instances += 1;
            c.healthy += usize::from(i.health == CheckStatus::Passing);
            c.images.extend(i.meta.get(META_IMAGE).cloned());
            ConsulInstance {
                id: i.id.clone(),
                node: i.node.clone(),
                address: i.address.clone(),
                port: i.port,
                color,
                health: i.health,
            }
        })
        .collect();
    let edge_plans = installed
        .iter()
        .filter(|i| i.plan.name == name)
        .map(|i| {
            let options = edges.iter().find(|e| e.name == i.edge).map(|e| &e.options);
            let differences = options
                .map(|o| {
                    let now = plan::build(catalog, settings, o, None, &EdgeFiles);
                    differences(&i.plan, now.services.get(name), s.index)
                })
                .unwrap_or_else(|| vec!["the edge has no status record".into()]);
            EdgePlan {
                edge: i.edge.clone(),
                settings_index: i.settings_index,
                live_unix: i.live_unix,
                version: i.version,
                plan: i.plan.clone(),
                differences,
            }
        })
        .collect();
    ServiceReport {
        name: name.to_string(),
        active: s.active,
        canary: s.canary,
        previous: s.previous,
        settings_index: s.index,
        colors: counts,
        instances,
        invalid: view.invalid,
        edges: edge_plans,
        promotion: None,
    }
}

/// The edge's files cannot be seen from here: they are taken as usable (the edge's own record
/// says when they are not).
struct EdgeFiles;

impl FileProbe for EdgeFiles {
    fn check(&self, _: &std::path::Path) -> Result<(), String> {
        Ok(())
    }
}

/// What differs between the plan an edge has live and the plan its options give now.
fn differences(live: &ServicePlan, now: Option<&ServicePlan>, settings_index: u64) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(why) = live.excluded.as_ref().or(live.held.as_ref()) {
        out.push(format!("not served as Consul says: {why}"));
    }
    if live.settings_index < settings_index {
        out.push(format!(
            "has not taken the latest settings yet (index {} < {settings_index})",
            live.settings_index
        ));
    }
    let Some(now) = now else {
        out.push("Consul no longer holds this service".into());
        return out;
    };
    let weight = |p: &ServicePlan| -> BTreeMap<String, (u32, bool)> {
        p.instances
            .iter()
            .map(|i| (i.id.clone(), (i.weight, i.backup)))
            .collect()
    };
    let (have, want) = (weight(live), weight(now));
    for id in want.keys().filter(|id| !have.contains_key(*id)) {
        out.push(format!("{id} is not served yet"));
    }
    for id in have.keys().filter(|id| !want.contains_key(*id)) {
        out.push(format!("{id} is still served"));
    }
    for (id, w) in &want {
        if have.get(id).is_some_and(|h| h != w) {
            out.push(format!("{id} has weight {:?}, would have {w:?}", have[id]));
        }
    }
    out
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
        if let Some(p) = &s.promotion {
            out += &format!("  {}\n", p.text);
        }
        for (color, c) in &s.colors {
            out += &format!(
                "  {color:<8} {} instances, {} healthy{}\n",
                c.instances,
                c.healthy,
                images_text(&c.images)
            );
        }
        for bad in &s.invalid {
            out += &format!(
                "  invalid in consul: {} on {}: {}\n",
                bad.id, bad.node, bad.reason
            );
        }
        if s.edges.is_empty() {
            out += "  no edge reports serving it\n";
        }
        for e in &s.edges {
            edge_plan_text(&mut out, e);
        }
    }
    if r.edges.is_empty() {
        out += "edges: none has reported\n";
    }
    for e in &r.edges {
        edge_text(&mut out, e);
    }
    out
}

/// `, image acme/web:1.2` or `, images a, b`; nothing when no instance names one.
fn images_text(images: &BTreeSet<String>) -> String {
    let list: Vec<&str> = images.iter().map(String::as_str).collect();
    match list.as_slice() {
        [] => String::new(),
        [one] => format!(", image {one}"),
        many => format!(", images {}", many.join(", ")),
    }
}

fn edge_plan_text(out: &mut String, e: &EdgePlan) {
    *out += &format!(
        "  edge {}: live {}s ago, settings index {}\n",
        e.edge,
        unix_now().saturating_sub(e.live_unix),
        e.settings_index
    );
    for i in &e.plan.instances {
        *out += &format!(
            "    {:<40} {:<7} {:<8} {:>6.2}%{} {}\n",
            i.id,
            i.color.as_deref().unwrap_or("-"),
            i.health.as_str(),
            i.share,
            if i.backup { " backup" } else { "" },
            i.server
        );
    }
    for l in &e.plan.left_out {
        *out += &format!("    {:<40} left out: {}\n", l.id, l.reason);
    }
    for w in &e.plan.warnings {
        *out += &format!("    note: {w}\n");
    }
    for d in &e.differences {
        *out += &format!("    ! {d}\n");
    }
}

fn edge_text(out: &mut String, e: &EdgeReport) {
    let ago = |at: Option<u64>| {
        at.map_or_else(
            || "never".to_string(),
            |a| format!("{}s ago", unix_now().saturating_sub(a)),
        )
    };
    let t = &e.status;
    *out += &format!(
        "edge {} ({}{}{}): last install {}, last error {}{}\n",
        t.name,
        t.dataplane,
        t.live_version
            .map_or_else(String::new, |v| format!(", nginx holds state version {v}")),
        if e.fresh { "" } else { ", gone: no heartbeat" },
        ago(t.last_install_unix),
        t.last_error.as_deref().map_or_else(
            || "none".to_string(),
            |err| format!("{} ({err})", ago(t.last_error_unix))
        ),
        if t.view_held {
            ", holding its last view"
        } else {
            ""
        }
    );
    for (name, why) in &t.not_served {
        *out += &format!("  {name}: {why}\n");
    }
}
