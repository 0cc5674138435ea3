//! The templater's counters and gauges on `/metrics`, and its `/health` verdict.

use swarmgate_runtime::http::Status;
use swarmgate_runtime::metrics::{Counter, Exposition, Gauge};

#[derive(Debug, Default)]
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
}

impl Status for Metrics {
    fn metrics(&self) -> String {
        Exposition::default()
            .counter("templater_renders_total", "Render passes.", &self.renders)
            .counter(
                "templater_installs_total",
                "Passes that installed changed files.",
                &self.installs,
            )
            .counter(
                "templater_reloads_total",
                "nginx reloads sent.",
                &self.reloads,
            )
            .counter(
                "templater_render_errors_total",
                "Passes whose templates failed to render.",
                &self.render_errors,
            )
            .counter(
                "templater_check_failures_total",
                "Installs rolled back because the nginx check failed.",
                &self.check_failures,
            )
            .counter(
                "templater_consul_errors_total",
                "Failed Consul reads (retried).",
                &self.consul_errors,
            )
            .counter(
                "templater_setting_errors_total",
                "Bad deploy settings found in KV.",
                &self.setting_errors,
            )
            .gauge(
                "templater_services",
                "Services in the current view.",
                &self.services,
            )
            .gauge(
                "templater_consul_up",
                "1 while Consul answers.",
                &self.consul_up,
            )
            .gauge(
                "templater_view_held",
                "1 while the last view is held (no leader, reset, mass loss).",
                &self.held,
            )
            .gauge(
                "templater_last_pass_failed",
                "1 when the last render or install failed.",
                &self.last_pass_failed,
            )
            .gauge(
                "templater_last_install_timestamp_seconds",
                "When files were last installed.",
                &self.last_install_unix,
            )
            .gauge(
                "templater_services_not_served",
                "Services excluded or held at an older plan (see `templater status`).",
                &self.not_served,
            )
            .process()
            .finish()
    }

    fn health(&self) -> Result<String, String> {
        match (self.consul_up.get(), self.last_pass_failed.get()) {
            (1, 0) => Ok("ok".into()),
            (c, f) => Err(format!("consul_up={c} last_pass_failed={f}")),
        }
    }
}
