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

    /// The preview of `color`, when preview is on and `color` is one of `--colors`.
    pub fn preview_of(&self, color: &str) -> Option<&PreviewColor> {
        self.pinning.preview.iter().flatten().find(|c| c.color == color)
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
