//! The upstream plan: the one place traffic is decided. A pure function turns the validated
//! catalog, the deploy settings and the daemon's options into, per service, which instances
//! serve with which weight, exact share and backup flag, which are left out and why, the
//! stickiness, the virtual host, and whether the service can be served at all. Templates print
//! it, the Lua data plane is pushed it, the daemon publishes it, `status` shows it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use swarmgate_consul::{rules, CheckStatus};

use crate::model::{self, Catalog, Instance, ServiceView};
use crate::pin::{self, Pinning};
use crate::settings::{DeploySettings, Settings};
use crate::weights::{effective_shares, split, Assigned};

/// Prefix of every upstream the templater renders, so that no service name can capture an
/// operator's own `proxy_pass http://name`.
pub const UPSTREAM_PREFIX: &str = "sg_";

/// Which instances count as healthy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HealthFilter {
    /// Only passing instances.
    #[default]
    Passing,
    /// Passing and warning instances.
    Warning,
    /// Every instance.
    Any,
}

impl HealthFilter {
    pub fn admits(self, h: CheckStatus) -> bool {
        match self {
            HealthFilter::Passing => h == CheckStatus::Passing,
            HealthFilter::Warning => h <= CheckStatus::Warning,
            HealthFilter::Any => true,
        }
    }
}

/// The daemon's options that shape the plan (published with it, so `status` uses the same).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOptions {
    pub colors: Vec<String>,
    pub health: HealthFilter,
    /// With canary 0, keep the inactive colour as `backup` (else leave it out).
    pub backup_inactive: bool,
    /// Domain of public virtual hosts.
    pub domain: String,
    /// Serve instances registered at a host name (nginx resolves it when it loads the config).
    pub allow_hostnames: bool,
    /// Preview header on for every service (`--preview`), not only those with meta `preview`.
    #[serde(default)]
    pub preview: bool,
}

/// Why an instance does not serve.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum LeftOutReason {
    /// Consul holds something unusable (the detail says what).
    Invalid(String),
    /// Its health is below `--health`.
    Unhealthy(CheckStatus),
    /// Registered at a host name, which this edge does not serve.
    HostName(String),
    /// The inactive colour with canary 0 and `--no-backup`.
    NoBackup,
    /// A backup of a sticky service (nginx's hashing has no backups).
    StickyBackup,
}

impl std::fmt::Display for LeftOutReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeftOutReason::Invalid(why) => write!(f, "invalid: {why}"),
            LeftOutReason::Unhealthy(h) => write!(f, "{h}"),
            LeftOutReason::HostName(h) => write!(f, "registered at host name {h}"),
            LeftOutReason::NoBackup => f.write_str("inactive colour, no backup"),
            LeftOutReason::StickyBackup => f.write_str("inactive colour of a sticky service"),
        }
    }
}

/// An instance that serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Server {
    pub id: String,
    pub node: String,
    pub address: String,
    pub port: u16,
    /// `address:port`, IPv6 in brackets.
    pub server: String,
    pub color: Option<String>,
    pub health: CheckStatus,
    pub weight: u32,
    pub backup: bool,
    /// Percent of the service's traffic while every server answers (backups: 0).
    pub share: f64,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
}

/// An instance that does not serve, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeftOut {
    pub id: String,
    pub node: String,
    pub color: Option<String>,
    #[serde(flatten)]
    pub reason: LeftOutReason,
}

/// TLS files of a virtual host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tls {
    pub cert: String,
    pub key: String,
}

/// One service's plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServicePlan {
    pub name: String,
    /// The nginx upstream: `sg_<name>`.
    pub upstream: String,
    pub active: Option<String>,
    pub canary: u8,
    /// The settings' ModifyIndex this plan follows (what a deploy waits to see acknowledged).
    pub settings_index: u64,
    /// `ip_hash` or `hash` (meta `sticky`).
    pub sticky: Option<String>,
    /// Served as a virtual host on `host` (tag `public` or meta `public=true`).
    pub public: bool,
    /// `<name>[-<namespace>].<domain>`.
    pub host: String,
    pub tls: Option<Tls>,
    /// The servers, sorted by node and id; empty: nginx answers 502.
    pub instances: Vec<Server>,
    pub left_out: Vec<LeftOut>,
    /// Set when the service is not served at all, with the reason.
    pub excluded: Option<String>,
    /// Set when the service is served as it was before, because its new plan failed.
    pub held: Option<String>,
    /// Problems that did not stop it from being served (a public setting ignored).
    pub warnings: Vec<String>,
    /// Requests pinned to one colour: the preview header, the canary cookie.
    #[serde(default)]
    pub pinning: Pinning,
}

impl ServicePlan {
    /// Served (possibly held at an older plan), as opposed to excluded.
    pub fn served(&self) -> bool {
        self.excluded.is_none()
    }
}

/// Every service's plan.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub services: BTreeMap<String, ServicePlan>,
}

impl Plan {
    pub fn served(&self) -> impl Iterator<Item = &ServicePlan> {
        self.services.values().filter(|s| s.served())
    }
}

/// Whether a file named in meta can be used (exists and reads); the daemon asks the disk.
pub trait FileProbe {
    fn check(&self, path: &Path) -> Result<(), String>;
}

/// The real disk: the file must open and read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Disk;

impl FileProbe for Disk {
    fn check(&self, path: &Path) -> Result<(), String> {
        std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut [0u8; 1]))
            .map(drop)
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Builds the plan. `previous` (the plan live now) decides who keeps a contested upstream name
/// or host: the service that already had it.
pub fn build(
    catalog: &Catalog,
    settings: &Settings,
    opts: &PlanOptions,
    previous: Option<&Plan>,
    files: &dyn FileProbe,
) -> Plan {
    static NONE: DeploySettings = DeploySettings {
        active: None,
        canary: 0,
        previous: None,
        promoting: false,
        index: 0,
    };
    let mut plan = Plan {
        services: catalog
            .services
            .iter()
            .map(|(name, view)| {
                let s = settings.get(name).unwrap_or(&NONE);
                let before = previous.and_then(|p| p.services.get(name));
                (name.clone(), service(name, view, s, opts, before, files))
            })
            .collect(),
    };
    resolve_collisions(&mut plan, previous);
    pin::resolve_collisions(&mut plan.services);
    plan
}

/// The colour of an instance: its first tag that is one of `colors`.
pub fn color_of<'a>(tags: &'a [String], colors: &[String]) -> Option<&'a String> {
    tags.iter().find(|t| colors.contains(t))
}

fn service(
    name: &str,
    view: &ServiceView,
    s: &DeploySettings,
    opts: &PlanOptions,
    before: Option<&ServicePlan>,
    files: &dyn FileProbe,
) -> ServicePlan {
    let mut p = ServicePlan {
        name: name.to_string(),
        upstream: format!("{UPSTREAM_PREFIX}{name}"),
        active: s.active.clone(),
        canary: s.canary,
        settings_index: s.index,
        sticky: None,
        public: false,
        host: String::new(),
        tls: None,
        instances: Vec::new(),
        left_out: Vec::new(),
        excluded: None,
        held: None,
        warnings: Vec::new(),
        pinning: Pinning::default(),
    };
    let color = |i: &Instance| color_of(&i.tags, &opts.colors).cloned();
    for bad in &view.invalid {
        p.left_out.push(LeftOut {
            id: bad.id.clone(),
            node: bad.node.clone(),
            color: None,
            reason: LeftOutReason::Invalid(bad.reason.clone()),
        });
    }
    let mut healthy = Vec::new();
    for i in &view.instances {
        let reason = if !opts.health.admits(i.health) {
            Some(LeftOutReason::Unhealthy(i.health))
        } else if !opts.allow_hostnames && !model::is_ip(&i.address) {
            Some(LeftOutReason::HostName(i.address.clone()))
        } else {
            None
        };
        match reason {
            Some(reason) => p.left_out.push(LeftOut::of(i, color(i), reason)),
            None => healthy.push(i),
        }
    }
    let switches = match before.filter(|_| {
        !view
            .instances
            .iter()
            .any(|i| i.health == CheckStatus::Passing)
    }) {
        // No instance passes: the service stays published as it was (nginx answers 502)
        // rather than vanishing into the default 404.
        Some(b) => {
            p.public = b.public;
            p.host = b.host.clone();
            p.tls = b.tls.clone();
            p.sticky = b.sticky.clone();
            (b.pinning.preview.is_some(), b.pinning.canary_cookie)
        }
        None => virtual_host(&mut p, view, opts, files),
    };
    assign(&mut p, &healthy, opts);
    p.pinning = pin::decide(&p, &healthy, switches, opts);
    if let Err(e) = rules::plain_name(name) {
        p.excluded = Some(format!("unservable: the name {e} in an nginx upstream"));
    }
    p
}

/// Weights, backups and shares of the healthy instances.
fn assign(p: &mut ServicePlan, healthy: &[&Instance], opts: &PlanOptions) {
    let in_active = |i: &Instance| match (&p.active, color_of(&i.tags, &opts.colors)) {
        (None, _) | (_, None) => true,
        (Some(a), Some(c)) => a == c,
    };
    let n_active = healthy.iter().filter(|i| in_active(i)).count();
    let (a, o) = match p.active {
        Some(_) => split(
            n_active,
            healthy.len() - n_active,
            p.canary,
            opts.backup_inactive,
        ),
        None => (Assigned::ONE, Assigned::ONE),
    };
    let mut chosen = Vec::new();
    for i in healthy {
        let w = if in_active(i) { a } else { o };
        let color = color_of(&i.tags, &opts.colors).cloned();
        let reason = if w.weight == 0 {
            Some(LeftOutReason::NoBackup)
        } else if w.backup && p.sticky.is_some() {
            Some(LeftOutReason::StickyBackup)
        } else {
            None
        };
        match reason {
            Some(reason) => p.left_out.push(LeftOut::of(i, color, reason)),
            None => chosen.push((*i, color, w)),
        }
    }
    let shares = effective_shares(&chosen.iter().map(|(_, _, w)| *w).collect::<Vec<_>>());
    p.instances = chosen
        .into_iter()
        .zip(shares)
        .map(|((i, color, w), share)| Server {
            id: i.id.clone(),
            node: i.node.clone(),
            address: i.address.clone(),
            port: i.port,
            server: server_addr(&i.address, i.port),
            color,
            health: i.health,
            weight: w.weight,
            backup: w.backup,
            share,
            tags: i.tags.clone(),
            meta: i.meta.clone(),
        })
        .collect();
}

/// `address:port`, an IPv6 address in brackets.
pub(crate) fn server_addr(address: &str, port: u16) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// Public, namespace, TLS and sticky settings, from passing instances only: an instance that
/// fails its checks cannot change how its service is published. Answers the pinning switches
/// (meta `preview`, `canary_cookie`), read the same way.
fn virtual_host(
    p: &mut ServicePlan,
    view: &ServiceView,
    opts: &PlanOptions,
    files: &dyn FileProbe,
) -> (bool, bool) {
    let passing: Vec<&Instance> = view
        .instances
        .iter()
        .filter(|i| i.health == CheckStatus::Passing)
        .collect();
    let attr = |key: &str| {
        passing
            .iter()
            .find_map(|i| i.meta.get(key).map(String::as_str))
    };
    p.public = passing.iter().any(|i| i.tags.iter().any(|t| t == "public"))
        || attr("public").is_some_and(|v| matches!(v, "true" | "1" | "yes"));
    let namespace = attr("namespace").filter(|ns| {
        let ok = is_dns_label(ns);
        if !ok {
            p.warnings
                .push(format!("meta namespace {ns:?} is not a DNS label; ignored"));
        }
        ok
    });
    p.host = match namespace {
        Some(ns) => format!("{}-{ns}.{}", p.name, opts.domain),
        None => format!("{}.{}", p.name, opts.domain),
    };
    p.sticky = attr("sticky").and_then(|v| {
        if matches!(v, "ip_hash" | "hash") {
            Some(v.to_string())
        } else {
            p.warnings.push(format!(
                "meta sticky {v:?} must be ip_hash or hash; ignored"
            ));
            None
        }
    });
    match (attr("tls_cert"), attr("tls_key")) {
        (None, None) => {}
        (Some(cert), Some(key)) if is_plain_path(cert) && is_plain_path(key) => {
            let unusable: Vec<String> = [cert, key]
                .iter()
                .filter_map(|f| files.check(Path::new(f)).err())
                .collect();
            if unusable.is_empty() {
                p.tls = Some(Tls {
                    cert: cert.into(),
                    key: key.into(),
                });
            } else {
                p.excluded = Some(format!("TLS files unusable: {}", unusable.join("; ")));
            }
        }
        _ => p
            .warnings
            .push("meta tls_cert/tls_key must both be absolute plain paths; TLS off".into()),
    }
    pin::switches(&passing)
}

/// Two served services whose upstreams (nginx compares them case-insensitively) or public
/// hosts would be the same: the one that already had it keeps it; the others lose it, and
/// with no such incumbent none gets it. Every party is told.
fn resolve_collisions(plan: &mut Plan, previous: Option<&Plan>) {
    let had = |name: &str, pick: &dyn Fn(&ServicePlan) -> bool| {
        previous
            .and_then(|p| p.services.get(name))
            .is_some_and(|s| s.served() && pick(s))
    };
    let upstreams = groups(plan, |s| {
        s.served().then(|| s.upstream.to_ascii_lowercase())
    });
    for names in upstreams {
        let keeper = names.iter().find(|n| had(n, &|_| true)).cloned();
        for name in &names {
            let others: Vec<&str> = names
                .iter()
                .filter(|n| *n != name)
                .map(String::as_str)
                .collect();
            let s = plan.services.get_mut(name).expect("grouped from the plan");
            let msg = format!(
                "upstream name collides (nginx ignores case) with {}",
                others.join(", ")
            );
            if keeper.as_deref() == Some(name.as_str()) {
                s.warnings.push(format!("{msg}; kept: it had it first"));
            } else {
                s.excluded = Some(msg);
            }
        }
    }
    let hosts = groups(plan, |s| {
        (s.served() && s.public).then(|| s.host.to_ascii_lowercase())
    });
    for names in hosts {
        let keeper = names.iter().find(|n| had(n, &|s| s.public)).cloned();
        for name in &names {
            let others: Vec<&str> = names
                .iter()
                .filter(|n| *n != name)
                .map(String::as_str)
                .collect();
            let s = plan.services.get_mut(name).expect("grouped from the plan");
            let msg = format!("host {} is also claimed by {}", s.host, others.join(", "));
            if keeper.as_deref() == Some(name.as_str()) {
                s.warnings.push(format!("{msg}; kept: it had it first"));
            } else {
                s.public = false;
                s.warnings.push(format!("{msg}; not published"));
            }
        }
    }
}

/// Names of services that share a key with another, grouped.
fn groups(plan: &Plan, key: impl Fn(&ServicePlan) -> Option<String>) -> Vec<Vec<String>> {
    let mut by_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in plan.services.values() {
        if let Some(k) = key(s) {
            by_key.entry(k).or_default().insert(s.name.clone());
        }
    }
    by_key
        .into_values()
        .filter(|names| names.len() > 1)
        .map(|names| names.into_iter().collect())
        .collect()
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_plain_path(p: &str) -> bool {
    p.starts_with('/')
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))
        && !p.contains("..")
}

impl LeftOut {
    fn of(i: &Instance, color: Option<String>, reason: LeftOutReason) -> Self {
        LeftOut {
            id: i.id.clone(),
            node: i.node.clone(),
            color,
            reason,
        }
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
