//! Requests pinned to one colour, past the weights: the preview header (meta `preview=true`, or
//! `--preview` for every service) reaches the healthy instances of the colour it names, or
//! answers 503 when that colour has none; the canary cookie (meta `canary_cookie=true`, Lua data
//! plane) keeps a user on the canary colour they were sent to while the canary lasts. Decided
//! here once, from the instances the plan admits; templates print it, the state document
//! carries it.

use serde::{Deserialize, Serialize};

use crate::model::Instance;
use crate::plan::{color_of, server_addr, PlanOptions, ServicePlan};

/// The default `--preview-header`.
pub const DEFAULT_PREVIEW_HEADER: &str = "X-Swarmgate-Color";

/// Between a service's upstream and a colour in a preview upstream: `sg_<name>__<colour>`.
pub const PREVIEW_SEPARATOR: &str = "__";

/// A service's pinning.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pinning {
    /// Preview on: every colour of `--colors`, in that order, with the instances it reaches.
    pub preview: Option<Vec<PreviewColor>>,
    /// Meta `canary_cookie=true` (live only while a colour is active and the canary is above 0:
    /// [`ServicePlan::cookie_active`]).
    pub canary_cookie: bool,
}

/// What a preview request naming one colour reaches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreviewColor {
    pub color: String,
    /// `sg_<name>__<colour>` (the reload data plane's upstream for it).
    pub upstream: String,
    /// The admitted instances of the colour, whatever their weight; empty: 503.
    pub servers: Vec<PreviewServer>,
}

/// One instance a preview request can reach.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewServer {
    pub id: String,
    /// An IP literal (no brackets) or, with `--allow-hostnames`, a host name.
    pub address: String,
    pub port: u16,
    /// `address:port`, IPv6 in brackets.
    pub server: String,
}

/// The meta switches of a service, read from its passing instances (as every per-service meta).
pub fn switches(passing: &[&Instance]) -> (bool, bool) {
    let on = |key: &str| {
        passing
            .iter()
            .find_map(|i| i.meta.get(key))
            .is_some_and(|v| matches!(v.as_str(), "true" | "1" | "yes"))
    };
    (on("preview"), on("canary_cookie"))
}

/// The pinning of service `p` (upstream set) with `admitted` instances: preview on when
/// `preview` (meta) or `--preview`.
pub fn decide(
    p: &ServicePlan,
    admitted: &[&Instance],
    (preview, canary_cookie): (bool, bool),
    opts: &PlanOptions,
) -> Pinning {
    let preview = (preview || opts.preview).then(|| {
        opts.colors
            .iter()
            .map(|c| PreviewColor {
                color: c.clone(),
                upstream: format!("{}{PREVIEW_SEPARATOR}{c}", p.upstream),
                servers: admitted
                    .iter()
                    .filter(|i| color_of(&i.tags, &opts.colors) == Some(c))
                    .map(|i| PreviewServer {
                        id: i.id.clone(),
                        address: i.address.clone(),
                        port: i.port,
                        server: server_addr(&i.address, i.port),
                    })
                    .collect(),
            })
            .collect()
    });
    Pinning {
        preview,
        canary_cookie,
    }
}

/// A preview upstream whose name (nginx ignores case) is another upstream's, main or preview:
/// that service's preview is turned off, with a warning (its main upstream is untouched).
pub fn resolve_collisions(services: &mut std::collections::BTreeMap<String, ServicePlan>) {
    let mut count = std::collections::HashMap::<String, usize>::new();
    let names = |s: &ServicePlan| -> Vec<String> {
        let previews = s.pinning.preview.iter().flatten();
        std::iter::once(s.upstream.to_ascii_lowercase())
            .chain(previews.map(|c| c.upstream.to_ascii_lowercase()))
            .collect()
    };
    for s in services.values().filter(|s| s.served()) {
        for n in names(s) {
            *count.entry(n).or_default() += 1;
        }
    }
    for s in services.values_mut().filter(|s| s.served()) {
        let Some(previews) = &s.pinning.preview else {
            continue;
        };
        if let Some(c) = previews
            .iter()
            .find(|c| count[&c.upstream.to_ascii_lowercase()] > 1)
        {
            s.warnings.push(format!(
                "preview off: its upstream {} collides (nginx ignores case) with another upstream",
                c.upstream
            ));
            s.pinning.preview = None;
        }
    }
}

impl ServicePlan {
    /// The active colour while the canary cookie is live: meta on, a colour active, canary > 0.
    pub fn cookie_active(&self) -> Option<&str> {
        self.active
            .as_deref()
            .filter(|_| self.pinning.canary_cookie && self.canary > 0)
    }
}

/// `--preview-header`: a header name nginx can name as `$http_<name>` (letters, digits, `-`).
pub fn check_header(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!(
            "--preview-header {name:?}: a header name of letters, digits and '-' (at most 64)"
        ))
    }
}

/// nginx's variable of request header `name`: `http_x_swarmgate_color`.
pub fn header_variable(name: &str) -> String {
    format!("http_{}", name.to_ascii_lowercase().replace('-', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Catalog, ServiceView};
    use crate::plan::{build, Plan};
    use crate::settings::{DeploySettings, Settings};
    use crate::state_doc::tests::{opts, NoFiles};
    use swarmgate_consul::CheckStatus::{self, *};

    fn inst(id: &str, color: &str, health: CheckStatus, meta: &[(&str, &str)]) -> Instance {
        Instance {
            id: id.into(),
            node: "n1".into(),
            address: format!("10.0.0.{}", id.len()),
            port: 80,
            tags: vec![color.into()],
            meta: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            health,
        }
    }

    fn plan_of(services: Vec<(&str, Vec<Instance>)>, o: &PlanOptions, canary: u8) -> Plan {
        let mut settings = Settings::new();
        let mut catalog = Catalog::default();
        for (name, instances) in services {
            let d = DeploySettings {
                active: Some("blue".into()),
                canary,
                ..Default::default()
            };
            settings.insert(name.into(), d);
            let view = ServiceView {
                instances,
                invalid: vec![],
            };
            catalog.services.insert(name.into(), view);
        }
        build(&catalog, &settings, o, None, &NoFiles)
    }

    fn ids(c: &PreviewColor) -> Vec<&str> {
        c.servers.iter().map(|s| s.id.as_str()).collect()
    }

    /// Preview reaches every admitted instance of a colour, even one the weights leave out
    /// (a sticky service's standby colour, `--no-backup`), and never an unhealthy one.
    #[test]
    fn preview_holds_every_admitted_instance_per_colour() {
        let on = [("preview", "true"), ("sticky", "ip_hash")];
        let web = vec![
            inst("b1", "blue", Passing, &on),
            inst("g1", "green", Passing, &[]),
            inst("g22", "green", Critical, &[]),
        ];
        let mut o = opts();
        o.backup_inactive = false;
        let p = plan_of(vec![("web", web)], &o, 0);
        let web = &p.services["web"];
        assert!(
            web.instances.iter().all(|i| i.id == "b1"),
            "green stands by"
        );
        let preview = web.pinning.preview.as_ref().expect("meta preview=true");
        assert_eq!(preview.len(), 2, "every colour of --colors");
        assert_eq!(
            (preview[0].color.as_str(), ids(&preview[0])),
            ("blue", vec!["b1"])
        );
        assert_eq!(ids(&preview[1]), ["g1"], "green's healthy instance only");
        assert_eq!(preview[1].upstream, "sg_web__green");
        assert_eq!(preview[1].servers[0].server, "10.0.0.2:80");
    }

    /// Off unless meta says so on a passing instance, or `--preview`.
    #[test]
    fn preview_is_off_unless_passing_meta_or_the_flag() {
        let services = || {
            vec![
                ("quiet", vec![inst("b1", "blue", Passing, &[])]),
                (
                    "failing",
                    vec![
                        inst("b1", "blue", Passing, &[]),
                        inst("g1", "green", Critical, &[("preview", "true")]),
                    ],
                ),
                (
                    "yes",
                    vec![inst("b1", "blue", Passing, &[("preview", "yes")])],
                ),
            ]
        };
        let p = plan_of(services(), &opts(), 0);
        assert_eq!(p.services["quiet"].pinning.preview, None);
        assert_eq!(
            p.services["failing"].pinning.preview, None,
            "a failing instance"
        );
        assert!(p.services["yes"].pinning.preview.is_some());
        let mut o = opts();
        o.preview = true;
        let p = plan_of(services(), &o, 0);
        assert!(p.services.values().all(|s| s.pinning.preview.is_some()));
    }

    /// A preview upstream another upstream already names (nginx ignores case): preview off for
    /// that service, its main upstream kept.
    #[test]
    fn a_colliding_preview_upstream_turns_preview_off() {
        let mut o = opts();
        o.preview = true;
        let p = plan_of(
            vec![
                ("a", vec![inst("b1", "blue", Passing, &[])]),
                ("A__GREEN", vec![inst("b1", "blue", Passing, &[])]),
                ("c", vec![inst("b1", "blue", Passing, &[])]),
            ],
            &o,
            0,
        );
        let a = &p.services["a"];
        assert!(a.served() && a.pinning.preview.is_none(), "{a:?}");
        assert!(a.warnings.iter().any(|w| w.contains("sg_a__green")));
        assert!(p.services["A__GREEN"].served());
        assert!(
            p.services["A__GREEN"].pinning.preview.is_some(),
            "its own names are unique"
        );
        assert!(p.services["c"].pinning.preview.is_some());
    }

    /// The canary cookie is live only with its meta, a colour active and canary > 0.
    #[test]
    fn the_canary_cookie_lives_while_the_canary_does() {
        let on = [("canary_cookie", "true")];
        let services = || {
            vec![
                ("on", vec![inst("b1", "blue", Passing, &on)]),
                ("off", vec![inst("b1", "blue", Passing, &[])]),
            ]
        };
        let p = plan_of(services(), &opts(), 10);
        assert_eq!(p.services["on"].cookie_active(), Some("blue"));
        assert_eq!(p.services["off"].cookie_active(), None);
        let p = plan_of(services(), &opts(), 0);
        assert_eq!(p.services["on"].cookie_active(), None, "canary 0");
    }

    #[test]
    fn the_header_must_be_a_plain_name() {
        assert_eq!(
            header_variable("X-Swarmgate-Color"),
            "http_x_swarmgate_color"
        );
        assert!(check_header("X-Ci-Colour").is_ok());
        for bad in ["", "-x", "x y", "x_y", "x$y", "x\ny", &"x".repeat(65)] {
            assert!(check_header(bad).is_err(), "{bad:?}");
        }
    }
}
