//! The templater's metric families on `/metrics`, declared once, and its `/health` verdict.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use swarmgate_runtime::http::Status;
use swarmgate_runtime::metrics::{
    encode_word, Counter, EncodeLabelSet, EncodeLabelValue, Exposition, Families, Family,
    FloatGauge, Gauge, Histogram, LabelValueEncoder,
};

use crate::dataplane::Timings;
use crate::plan::Plan;
use crate::traffic::Traffic;

mod traffic;

/// How a pass ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum PassOutcome {
    /// Changed files went live.
    Applied,
    /// Nothing to change.
    Unchanged,
    /// A template or nginx refused the config whatever the services.
    Refused,
    /// Installing or reloading failed.
    Failed,
}

impl PassOutcome {
    const ALL: [PassOutcome; 4] = [
        PassOutcome::Applied,
        PassOutcome::Unchanged,
        PassOutcome::Refused,
        PassOutcome::Failed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            PassOutcome::Applied => "applied",
            PassOutcome::Unchanged => "unchanged",
            PassOutcome::Refused => "refused",
            PassOutcome::Failed => "failed",
        }
    }
}

impl EncodeLabelValue for PassOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encode_word(self.as_str(), encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: PassOutcome,
}

/// A service's instances of one colour (`""` for uncoloured ones).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ServiceColor {
    service: String,
    color: String,
}

#[derive(Debug)]
pub struct Metrics {
    pub renders: Counter,
    pub installs: Counter,
    pub reloads: Counter,
    pub render_errors: Counter,
    pub check_failures: Counter,
    pub consul_errors: Counter,
    pub setting_errors: Counter,
    pub services: Gauge,
    pub consul_up: Gauge,
    /// 1 while the guard keeps the last view.
    pub held: Gauge,
    /// 1 when the last pass failed (render or check).
    pub last_pass_failed: Gauge,
    pub last_install_unix: Gauge,
    /// Services not served as Consul says (excluded, or held at an older plan).
    pub not_served: Gauge,
    pub render_duration: Histogram,
    pub install_duration: Histogram,
    pub check_duration: Histogram,
    pub reload_duration: Histogram,
    /// Lua data plane: state pushes nginx took, how long each took, the version nginx holds.
    pub pushes: Counter,
    pub push_failures: Counter,
    pub push_duration: Histogram,
    pub dataplane_version: Gauge,
    passes: Family<Outcome, Counter>,
    instances: Family<ServiceColor, Gauge>,
    share: Family<ServiceColor, FloatGauge>,
    /// The series of the last plan, so that those of services gone can be removed.
    shown: Mutex<BTreeSet<ServiceColor>>,
    /// Per service and colour traffic from the Lua data plane (`templater_upstream_*`).
    pub traffic: Arc<Traffic>,
    exposition: Exposition,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut f = Families::default();
        let passes = f.add(
            "templater_passes",
            "Render passes by outcome: applied, unchanged, refused (a template or nginx) or failed (install, reload)",
            Family::default(),
        );
        for outcome in PassOutcome::ALL {
            // Every outcome is shown from the start, at 0.
            let _ = passes.get_or_create(&Outcome { outcome });
        }
        let traffic = Arc::new(Traffic::default());
        f.collector(Box::new(traffic::Collector(traffic.clone())));
        Metrics {
            renders: f.counter("templater_renders", "Render passes"),
            installs: f.counter("templater_installs", "Passes that installed changed files"),
            reloads: f.counter("templater_reloads", "nginx reloads sent"),
            render_errors: f.counter(
                "templater_render_errors",
                "Passes whose templates failed to render",
            ),
            check_failures: f.counter(
                "templater_check_failures",
                "Installs rolled back because the nginx check failed",
            ),
            consul_errors: f.counter("templater_consul_errors", "Failed Consul reads (retried)"),
            setting_errors: f.counter(
                "templater_setting_errors",
                "Bad deploy settings found in KV",
            ),
            services: f.gauge("templater_services", "Services in the current view"),
            consul_up: f.gauge("templater_consul_up", "1 while Consul answers"),
            held: f.gauge(
                "templater_view_held",
                "1 while the last view is held (no leader, reset, mass loss)",
            ),
            last_pass_failed: f.gauge(
                "templater_last_pass_failed",
                "1 when the last render or install failed",
            ),
            last_install_unix: f.gauge(
                "templater_last_install_timestamp_seconds",
                "When files were last installed",
            ),
            not_served: f.gauge(
                "templater_services_not_served",
                "Services excluded or held at an older plan (see `templater status`)",
            ),
            render_duration: f.latency(
                "templater_render_duration_seconds",
                "Rendering the templates in one pass",
            ),
            install_duration: f.latency(
                "templater_install_duration_seconds",
                "Writing and swapping in the changed files of one pass",
            ),
            check_duration: f.latency("templater_check_duration_seconds", "One nginx config check"),
            reload_duration: f.latency(
                "templater_reload_duration_seconds",
                "One nginx reload, until nginx took the new config",
            ),
            pushes: f.counter(
                "templater_pushes",
                "State pushes nginx took (Lua data plane): a traffic change without a reload",
            ),
            push_failures: f.counter(
                "templater_push_failures",
                "State pushes nginx refused or did not answer (Lua data plane; retried)",
            ),
            push_duration: f.latency(
                "templater_push_duration_seconds",
                "One state push, sent until nginx answered the version it holds",
            ),
            dataplane_version: f.gauge(
                "templater_dataplane_version",
                "The state version nginx said it holds (Lua data plane; 0 before the first push)",
            ),
            passes,
            instances: f.add(
                "templater_service_instances",
                "Servers in the live plan, backups included, by service and colour",
                Family::default(),
            ),
            share: f.add(
                "templater_service_share_percent",
                "Percent of the service's traffic to the colour while every server answers",
                Family::default(),
            ),
            shown: Mutex::default(),
            traffic,
            exposition: f.finish(),
        }
    }
}

impl Metrics {
    /// Counts a pass and its steps' durations.
    pub fn pass(&self, outcome: PassOutcome, timings: &Timings) {
        self.passes.get_or_create(&Outcome { outcome }).inc();
        let steps: [(&Histogram, Option<Duration>); 3] = [
            (&self.render_duration, timings.render),
            (&self.install_duration, timings.install),
            (&self.reload_duration, timings.reload),
        ];
        for (histogram, took) in steps {
            if let Some(took) = took {
                histogram.observe(took.as_secs_f64());
            }
        }
        for took in &timings.checks {
            self.check_duration.observe(took.as_secs_f64());
        }
    }

    /// Counts a state push nginx took (Lua data plane) and the version it now holds.
    pub fn pushed(&self, took: Option<Duration>, version: Option<u64>) {
        self.pushes.inc();
        if let Some(took) = took {
            self.push_duration.observe(took.as_secs_f64());
        }
        if let Some(v) = version {
            self.dataplane_version
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }

    /// Sets the per-service gauges from the plan live now; services gone lose their series.
    pub fn live_plan(&self, plan: &Plan) {
        let mut now: BTreeMap<ServiceColor, (i64, f64)> = BTreeMap::new();
        for s in plan.served() {
            for i in &s.instances {
                let key = ServiceColor {
                    service: s.name.clone(),
                    color: i.color.clone().unwrap_or_default(),
                };
                let slot = now.entry(key).or_default();
                slot.0 += 1;
                slot.1 += i.share;
            }
        }
        let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        for gone in shown.iter().filter(|k| !now.contains_key(*k)) {
            self.instances.remove(gone);
            self.share.remove(gone);
        }
        for (key, (count, share)) in &now {
            self.instances.get_or_create(key).set(*count);
            self.share.get_or_create(key).set(*share);
        }
        *shown = now.into_keys().collect();
    }
}

impl Status for Metrics {
    fn exposition(&self) -> &Exposition {
        &self.exposition
    }

    fn health(&self) -> Result<String, String> {
        match (self.consul_up.get(), self.last_pass_failed.get()) {
            (1, 0) => Ok("ok".into()),
            (c, f) => Err(format!("consul_up={c} last_pass_failed={f}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Server, ServicePlan};
    use swarmgate_runtime::metrics::{encode, Format};

    fn server(color: &str, share: f64) -> Server {
        Server {
            id: format!("{color}-{share}"),
            node: "n".into(),
            address: "127.0.0.1".into(),
            port: 80,
            server: "127.0.0.1:80".into(),
            color: (!color.is_empty()).then(|| color.into()),
            health: swarmgate_consul::CheckStatus::Passing,
            weight: 1,
            backup: false,
            share,
            tags: Vec::new(),
            meta: BTreeMap::new(),
        }
    }

    fn plan(services: &[(&str, Vec<Server>)]) -> Plan {
        let mut p = Plan::default();
        for (name, instances) in services {
            let s = ServicePlan {
                name: name.to_string(),
                upstream: format!("sg_{name}"),
                active: None,
                canary: 0,
                settings_index: 0,
                sticky: None,
                public: false,
                host: String::new(),
                tls: None,
                instances: instances.clone(),
                left_out: vec![],
                excluded: None,
                held: None,
                warnings: vec![],
                pinning: Default::default(),
            };
            p.services.insert(name.to_string(), s);
        }
        p
    }

    #[test]
    fn per_service_series_follow_the_live_plan() {
        let m = Metrics::default();
        m.live_plan(&plan(&[
            (
                "web",
                vec![
                    server("blue", 45.0),
                    server("blue", 45.0),
                    server("green", 10.0),
                ],
            ),
            ("api", vec![server("", 100.0)]),
        ]));
        let text = encode(m.exposition(), Format::Text);
        for line in [
            "templater_service_instances{service=\"web\",color=\"blue\"} 2\n",
            "templater_service_share_percent{service=\"web\",color=\"blue\"} 90.0\n",
            "templater_service_share_percent{service=\"web\",color=\"green\"} 10.0\n",
            "templater_service_instances{service=\"api\",color=\"\"} 1\n",
        ] {
            assert!(text.contains(line), "{line}in:\n{text}");
        }
        m.live_plan(&plan(&[("web", vec![server("green", 100.0)])]));
        let text = encode(m.exposition(), Format::Text);
        assert!(!text.contains("service=\"api\""), "{text}");
        assert!(!text.contains("color=\"blue\""), "{text}");
        assert!(
            text.contains("templater_service_instances{service=\"web\",color=\"green\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn traffic_totals_are_counters_and_a_histogram() {
        let m = Metrics::default();
        let body = r#"{"epoch":1,"services":{"web":{"blue":{"requests":5,"2xx":3,"3xx":0,
            "4xx":0,"5xx":2,"failed":1,"buckets":[3,0,0,0,0,0,0,0,0,1,0,0,0,0],"sum_seconds":1.5}}}}"#;
        let live: crate::traffic::LiveIndex = [("web".to_string(), 1)].into();
        let now = tokio::time::Instant::now();
        m.traffic
            .observe(serde_json::from_str(body).expect("doc"), &live, now);
        let text = encode(m.exposition(), Format::Text);
        for line in [
            "templater_upstream_requests_total{service=\"web\",color=\"blue\",class=\"2xx\"} 3\n",
            "templater_upstream_requests_total{service=\"web\",color=\"blue\",class=\"failed\"} 1\n",
            "templater_upstream_response_seconds_count{service=\"web\",color=\"blue\"} 5\n",
            "templater_upstream_response_seconds_bucket{service=\"web\",color=\"blue\",le=\"0.001\"} 3\n",
            "templater_upstream_response_seconds_bucket{service=\"web\",color=\"blue\",le=\"30\"} 4\n",
            "templater_upstream_response_seconds_bucket{service=\"web\",color=\"blue\",le=\"+Inf\"} 5\n",
        ] {
            assert!(text.contains(line), "{line}in:\n{text}");
        }
    }

    #[test]
    fn every_outcome_is_shown_from_the_start() {
        let m = Metrics::default();
        m.pass(PassOutcome::Applied, &Timings::default());
        let text = encode(m.exposition(), Format::Text);
        assert!(
            text.contains("templater_passes_total{outcome=\"applied\"} 1\n"),
            "{text}"
        );
        for idle in ["unchanged", "refused", "failed"] {
            assert!(
                text.contains(&format!("templater_passes_total{{outcome=\"{idle}\"}} 0\n")),
                "{text}"
            );
        }
    }
}
