//! What templates see: each service with its healthy instances, their colour, weight and backup
//! flag, the deploy settings, and the public virtual-host settings (NsGate pattern) taken from
//! tags and meta, validated here so that nothing unsafe reaches a template.

use serde::Serialize;

use crate::model::{Catalog, Instance};
use swarmgate_consul::CheckStatus;
use crate::settings::{DeploySettings, Settings};
use crate::weights::{split, Assigned};

/// Which instances count as healthy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
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

/// Settings of the context that come from flags.
#[derive(Clone, Debug)]
pub struct ContextOptions {
    pub colors: Vec<String>,
    pub health: HealthFilter,
    /// Render the inactive colour as `backup` when the canary is 0.
    pub backup_inactive: bool,
    /// Domain of public virtual hosts.
    pub domain: String,
    pub listen: u16,
    pub listen_tls: u16,
}

/// The whole template context.
#[derive(Clone, Debug, Serialize)]
pub struct Context<'a> {
    pub services: Vec<ServiceContext<'a>>,
    pub colors: &'a [String],
    pub domain: &'a str,
    pub listen: u16,
    pub listen_tls: u16,
}

#[derive(Clone, Debug, Serialize)]
pub struct ServiceContext<'a> {
    pub name: &'a str,
    pub active: Option<&'a str>,
    pub canary: u8,
    /// `ip_hash` or `hash` when the service asks for sticky sessions (meta `sticky`).
    pub sticky: Option<&'a str>,
    /// Served as a virtual host (tag `public` or meta `public=true`).
    pub public: bool,
    /// `<service>[-<namespace>].<domain>`.
    pub host: String,
    pub tls: Option<Tls<'a>>,
    pub instances: Vec<InstanceContext<'a>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tls<'a> {
    pub cert: &'a str,
    pub key: &'a str,
}

#[derive(Clone, Debug, Serialize)]
pub struct InstanceContext<'a> {
    pub id: &'a str,
    pub node: &'a str,
    pub address: &'a str,
    pub port: u16,
    /// `address:port`, IPv6 in brackets.
    pub server: String,
    pub tags: &'a [String],
    pub meta: &'a std::collections::BTreeMap<String, String>,
    pub health: CheckStatus,
    pub color: Option<&'a str>,
    pub weight: u32,
    pub backup: bool,
}

/// A problem with a service's public settings (the service is still upstreamed).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContextWarning(pub String);

/// Builds the context from the catalog and settings.
pub fn build<'a>(
    catalog: &'a Catalog,
    settings: &'a Settings,
    opts: &'a ContextOptions,
) -> (Context<'a>, Vec<ContextWarning>) {
    let mut warnings = Vec::new();
    static NONE: DeploySettings = DeploySettings {
        active: None,
        canary: 0,
        previous: None,
        index: 0,
    };
    let services = catalog
        .services
        .iter()
        .map(|(name, instances)| {
            service(
                name,
                instances,
                settings.get(name).unwrap_or(&NONE),
                opts,
                &mut warnings,
            )
        })
        .collect();
    let ctx = Context {
        services,
        colors: &opts.colors,
        domain: &opts.domain,
        listen: opts.listen,
        listen_tls: opts.listen_tls,
    };
    (ctx, warnings)
}

/// The colour of an instance: its first tag that is one of `colors`.
pub fn color_of<'a>(tags: &'a [String], colors: &[String]) -> Option<&'a String> {
    tags.iter().find(|t| colors.contains(t))
}

fn service<'a>(
    name: &'a str,
    all: &'a [Instance],
    s: &'a DeploySettings,
    opts: &'a ContextOptions,
    warnings: &mut Vec<ContextWarning>,
) -> ServiceContext<'a> {
    let healthy: Vec<&Instance> = all
        .iter()
        .filter(|i| opts.health.admits(i.health))
        .collect();
    let active = s.active.as_deref();
    let in_active = |i: &Instance| match (active, color_of(&i.tags, &opts.colors)) {
        (None, _) | (_, None) => true,
        (Some(a), Some(c)) => a == c,
    };
    let n_active = healthy.iter().filter(|i| in_active(i)).count();
    let (a, o) = if active.is_some() {
        split(
            n_active,
            healthy.len() - n_active,
            s.canary,
            opts.backup_inactive,
        )
    } else {
        (
            Assigned {
                weight: 1,
                backup: false,
            },
            Assigned {
                weight: 1,
                backup: false,
            },
        )
    };
    let instances = healthy
        .iter()
        .map(|i| {
            let w = if in_active(i) { a } else { o };
            instance(i, color_of(&i.tags, &opts.colors).map(String::as_str), w)
        })
        .collect();
    let attr = |key: &str| all.iter().find_map(|i| i.meta.get(key).map(String::as_str));
    let public = all.iter().any(|i| i.tags.iter().any(|t| t == "public"))
        || attr("public").is_some_and(|v| matches!(v, "true" | "1" | "yes"));
    let mut warn = |what: String| warnings.push(ContextWarning(format!("service {name}: {what}")));
    let namespace = attr("namespace").filter(|ns| {
        let ok = is_dns_label(ns);
        if !ok {
            warn(format!("meta namespace {ns:?} is not a DNS label; ignored"));
        }
        ok
    });
    let tls = match (attr("tls_cert"), attr("tls_key")) {
        (Some(cert), Some(key)) if is_plain_path(cert) && is_plain_path(key) => {
            Some(Tls { cert, key })
        }
        (None, None) => None,
        _ => {
            warn("meta tls_cert/tls_key must both be absolute plain paths; TLS off".into());
            None
        }
    };
    let sticky = attr("sticky").filter(|v| {
        let ok = matches!(*v, "ip_hash" | "hash");
        if !ok {
            warn(format!(
                "meta sticky {v:?} must be ip_hash or hash; ignored"
            ));
        }
        ok
    });
    let host = match &namespace {
        Some(ns) => format!("{name}-{ns}.{}", opts.domain),
        None => format!("{name}.{}", opts.domain),
    };
    ServiceContext {
        name,
        active: s.active.as_deref(),
        canary: s.canary,
        sticky,
        public,
        host,
        tls,
        instances,
    }
}

fn instance<'a>(i: &'a Instance, color: Option<&'a str>, w: Assigned) -> InstanceContext<'a> {
    let server = if i.address.contains(':') {
        format!("[{}]:{}", i.address, i.port)
    } else {
        format!("{}:{}", i.address, i.port)
    };
    InstanceContext {
        id: &i.id,
        node: &i.node,
        address: &i.address,
        port: i.port,
        server,
        tags: &i.tags,
        meta: &i.meta,
        health: i.health,
        color,
        weight: w.weight,
        backup: w.backup,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

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

    pub(crate) fn opts() -> ContextOptions {
        ContextOptions {
            colors: vec!["blue".into(), "green".into()],
            health: HealthFilter::Passing,
            backup_inactive: true,
            domain: "example.com".into(),
            listen: 80,
            listen_tls: 443,
        }
    }

    #[test]
    fn weights_follow_active_and_canary_and_uncoloured_count_as_active() {
        let cat = Catalog {
            services: [(
                "web".to_string(),
                vec![
                    inst("b1", &["blue"], CheckStatus::Passing),
                    inst("b2", &[], CheckStatus::Passing),
                    inst("g1", &["green"], CheckStatus::Passing),
                    inst("g2", &["green"], CheckStatus::Critical),
                ],
            )]
            .into(),
        };
        let settings: Settings = [(
            "web".to_string(),
            DeploySettings {
                active: Some("blue".into()),
                canary: 10,
                ..Default::default()
            },
        )]
        .into();
        let o = opts();
        let (ctx, _) = build(&cat, &settings, &o);
        let got: Vec<_> = ctx.services[0]
            .instances
            .iter()
            .map(|i| (i.id, i.weight, i.backup))
            .collect();
        // 2 active (b1, b2) vs 1 healthy green: 90·1 : 10·2 → 9 : 2 → 18 : 2 = 90 : 10.
        assert_eq!(got, [("b1", 9, false), ("b2", 9, false), ("g1", 2, false)]);
    }

    #[test]
    fn no_active_key_means_every_healthy_instance_weight_one() {
        let cat = Catalog {
            services: [(
                "web".to_string(),
                vec![
                    inst("b1", &["blue"], CheckStatus::Passing),
                    inst("g1", &["green"], CheckStatus::Warning),
                ],
            )]
            .into(),
        };
        let mut o = opts();
        o.health = HealthFilter::Warning;
        let none = Settings::new();
        let (ctx, _) = build(&cat, &none, &o);
        assert!(ctx.services[0]
            .instances
            .iter()
            .all(|i| i.weight == 1 && !i.backup));
        assert_eq!(ctx.services[0].instances.len(), 2);
    }

    #[test]
    fn public_host_tls_and_sticky_from_meta_validated() {
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
        let cat = Catalog {
            services: [("api".to_string(), vec![a]), ("web".to_string(), vec![b])].into(),
        };
        let (o, none) = (opts(), Settings::new());
        let (ctx, warnings) = build(&cat, &none, &o);
        let api = &ctx.services[0];
        assert!(api.public);
        assert_eq!(api.host, "api-shop.example.com");
        assert_eq!(
            api.tls,
            Some(Tls {
                cert: "/certs/a.pem",
                key: "/certs/a.key"
            })
        );
        assert_eq!(api.sticky, Some("ip_hash"));
        let web = &ctx.services[1];
        assert!(web.public && web.tls.is_none() && web.sticky.is_none());
        assert_eq!(web.host, "web.example.com");
        assert_eq!(warnings.len(), 3, "{warnings:?}");
    }

    #[test]
    fn ipv6_servers_are_bracketed() {
        let mut i = inst("a", &[], CheckStatus::Passing);
        i.address = "fd00::5".into();
        let cat = Catalog {
            services: [("v6".to_string(), vec![i])].into(),
        };
        let (o, none) = (opts(), Settings::new());
        let (ctx, _) = build(&cat, &none, &o);
        assert_eq!(ctx.services[0].instances[0].server, "[fd00::5]:8000");
    }
}
