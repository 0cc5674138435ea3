//! The dashboard page, rendered on the server from [`DashboardState`]: the whole page for `/`
//! (a plain table that needs no JavaScript) and the same body alone for `/fragment`, which the
//! page's small script fetches to update itself in place. This is the only renderer, and
//! [`escape`] the only escaper: every value from Consul goes through it.

use std::fmt::Write as _;

use crate::dashboard::state::{ColorState, DashboardState, InstanceState, ServiceState};
use crate::live::{DeployEvent, Split};

/// `/`: the page around the fragment.
pub fn page(state: &DashboardState) -> String {
    let title = match &state.edge.name {
        Some(n) => format!("swarmgate edge {}", escape(n)),
        None => "swarmgate edge".into(),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<link rel=\"stylesheet\" href=\"/assets/dashboard.css\">\n\
         <script src=\"/assets/dashboard.js\" defer></script>\n\
         <noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>\n</head>\n<body>\n\
         <main id=\"live\">\n{}</main>\n</body>\n</html>\n",
        fragment(state)
    )
}

/// `/fragment`: the page's body, what the script swaps in.
pub fn fragment(state: &DashboardState) -> String {
    let mut out = String::new();
    edge(&mut out, state);
    if state.services.is_empty() {
        out += "<p class=\"empty\">No services yet.</p>\n";
    }
    for s in &state.services {
        service(&mut out, s);
    }
    history(&mut out, &state.history, state.generated_unix);
    out
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out += "&amp;",
            '<' => out += "&lt;",
            '>' => out += "&gt;",
            '"' => out += "&quot;",
            '\'' => out += "&#39;",
            c => out.push(c),
        }
    }
    out
}

fn edge(out: &mut String, state: &DashboardState) {
    let e = &state.edge;
    let now = state.generated_unix;
    let consul = if e.consul_up {
        "<span class=\"ok\">reachable</span>"
    } else {
        "<span class=\"bad\">unreachable</span>"
    };
    let _ = write!(
        out,
        "<header>\n<h1>swarmgate edge <span class=\"edge\">{}</span></h1>\n<dl>\
         <dt>data plane</dt><dd>{}</dd><dt>consul</dt><dd>{consul}</dd>\
         <dt>live version</dt><dd>{}</dd><dt>last install</dt><dd>{}</dd>\
         <dt>last reload</dt><dd>{}</dd><dt>last push</dt><dd>{}</dd>\
         <dt>services</dt><dd>{} served, {} not as Consul says</dd>\
         <dt>last error</dt><dd>{}</dd></dl>\n",
        escape(e.name.as_deref().unwrap_or("(starting)")),
        escape(e.dataplane.as_deref().unwrap_or("-")),
        e.live_version.map_or("-".into(), |v| v.to_string()),
        ago(e.last_install_unix, now),
        ago(e.last_reload_unix, now),
        ago(e.last_push_unix, now),
        e.services_served,
        e.services_not_served,
        match &e.last_error {
            Some(err) => format!(
                "<span class=\"bad\">{}</span> ({})",
                escape(err),
                ago(e.last_error_unix, now)
            ),
            None => "none".into(),
        },
    );
    if e.view_held {
        *out += "<p class=\"bad\">Holding the last catalog view (no leader, a reset or a mass loss).</p>\n";
    }
    *out += "</header>\n";
}

fn service(out: &mut String, s: &ServiceState) {
    let name = escape(&s.name);
    let _ = write!(
        out,
        "<section class=\"service\" data-service=\"{name}\">\n<h2>{name}{}</h2>\n\
         <p class=\"split\">active <b data-active>{}</b> · canary <b data-canary>{}%</b>{}</p>\n",
        if s.public {
            format!(" <small>{}</small>", escape(&s.host))
        } else {
            String::new()
        },
        escape(s.active.as_deref().unwrap_or("none")),
        s.canary,
        s.sticky
            .as_deref()
            .map_or(String::new(), |h| format!(" · sticky {}", escape(h))),
    );
    for (label, why) in [("not served", &s.excluded), ("held", &s.held)] {
        if let Some(why) = why {
            let _ = writeln!(out, "<p class=\"bad\">{label}: {}</p>", escape(why));
        }
    }
    colors(out, &s.colors);
    instances(out, &s.instances);
    *out += "</section>\n";
}

fn colors(out: &mut String, colors: &[ColorState]) {
    *out += "<table class=\"colors\"><thead><tr><th>colour</th><th>serving</th><th>backup</th>\
             <th>left out</th><th>share</th><th>req/s</th><th>errors</th><th>p99</th></tr></thead><tbody>\n";
    let figure = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".into(), f);
    for c in colors {
        let _ = writeln!(
            out,
            "<tr data-color=\"{0}\"><td>{0}</td><td>{1}</td><td>{2}</td><td>{3}</td>\
             <td class=\"share\">{4:.1}%</td><td>{5}</td><td>{6}</td><td>{7}</td></tr>",
            escape(&c.color),
            c.serving,
            c.backups,
            c.left_out,
            c.share,
            figure(c.requests_per_second, &|v| format!("{v:.1}")),
            figure(c.error_rate, &|v| format!("{v:.2}%")),
            figure(c.p99_seconds, &|v| format!("{:.0} ms", v * 1000.0)),
        );
    }
    *out += "</tbody></table>\n";
}

fn instances(out: &mut String, instances: &[InstanceState]) {
    *out += "<table class=\"instances\"><thead><tr><th>instance</th><th>node</th><th>address</th>\
             <th>colour</th><th>health</th><th>weight</th><th>share</th><th>tags</th><th></th></tr></thead><tbody>\n";
    for i in instances {
        let class = match (i.left_out.is_some(), i.health.as_str()) {
            (true, _) => "out",
            (false, "passing") => "ok",
            _ => "warn",
        };
        let _ = writeln!(
            out,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{:.1}%</td><td class=\"tags\">{}</td><td>{}</td></tr>",
            escape(&i.id),
            escape(&i.node),
            escape(i.server.as_deref().unwrap_or("-")),
            escape(i.color.as_deref().unwrap_or("-")),
            escape(&i.health),
            i.weight,
            i.share,
            escape(&i.tags.join(", ")),
            match (&i.left_out, i.backup) {
                (Some(why), _) => format!("left out: {}", escape(why)),
                (None, true) => "backup".into(),
                (None, false) => String::new(),
            },
        );
    }
    *out += "</tbody></table>\n";
}

fn history(out: &mut String, events: &[DeployEvent], now: u64) {
    *out += "<section class=\"history\">\n<h2>Recent deploys on this edge</h2>\n";
    if events.is_empty() {
        *out += "<p class=\"empty\">None since this edge started.</p>\n</section>\n";
        return;
    }
    *out += "<table><thead><tr><th>when</th><th>service</th><th>from</th><th>to</th>\
             <th>settings index</th></tr></thead><tbody>\n";
    for e in events {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ago(Some(e.unix), now),
            escape(&e.service),
            e.from.as_ref().map_or("new".into(), split),
            split(&e.to),
            e.settings_index,
        );
    }
    *out += "</tbody></table>\n</section>\n";
}

fn split(s: &Split) -> String {
    let active = escape(s.active.as_deref().unwrap_or("none"));
    match s.canary {
        0 => active,
        c => format!("{active} + {c}% canary"),
    }
}

fn ago(at: Option<u64>, now: u64) -> String {
    match at {
        None => "never".into(),
        Some(at) => match now.saturating_sub(at) {
            s if s < 120 => format!("{s} s ago"),
            s if s < 7200 => format!("{} min ago", s / 60),
            s => format!("{} h ago", s / 3600),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_open_markup() {
        assert_eq!(
            escape(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }
}
