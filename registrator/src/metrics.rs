//! The registrator's counters and gauges, served on `/metrics`, and its `/health` verdict.

use swarmgate_runtime::http::Status;
use swarmgate_runtime::metrics::{Counter, Exposition, Gauge};

/// Shared by the registry, the Docker watcher and the HTTP endpoint (atomics only).
#[derive(Debug, Default)]
pub struct Metrics {
    pub registrations: Counter,
    pub deregistrations: Counter,
    pub consul_errors: Counter,
    pub docker_events: Counter,
    pub docker_reconnects: Counter,
    pub reconciles: Counter,
    pub repairs: Counter,
    /// Alias of `skipped_services_total`, kept for dashboards that read the old gauge.
    pub skipped_services: Gauge,
    pub skipped_services_total: Counter,
    pub services: Gauge,
    pub pending: Gauge,
    pub consul_up: Gauge,
    pub docker_up: Gauge,
}

impl Status for Metrics {
    fn metrics(&self) -> String {
        Exposition::default()
            .counter(
                "registrator_registrations_total",
                "Service registrations sent to Consul.",
                &self.registrations,
            )
            .counter(
                "registrator_deregistrations_total",
                "Service deregistrations sent to Consul.",
                &self.deregistrations,
            )
            .counter(
                "registrator_consul_errors_total",
                "Failed Consul calls (retried).",
                &self.consul_errors,
            )
            .counter(
                "registrator_docker_events_total",
                "Docker container events received.",
                &self.docker_events,
            )
            .counter(
                "registrator_docker_reconnects_total",
                "Times the Docker event stream was re-established.",
                &self.docker_reconnects,
            )
            .counter(
                "registrator_reconciles_total",
                "Comparisons of Consul with the desired state.",
                &self.reconciles,
            )
            .counter(
                "registrator_repairs_total",
                "Services re-sent because Consul lost or changed them.",
                &self.repairs,
            )
            .counter(
                "registrator_skipped_services_total",
                "Services left out: bad labels, an id already taken, or refused by Consul.",
                &self.skipped_services_total,
            )
            .gauge(
                "registrator_skipped_services",
                "Services skipped so far (alias of registrator_skipped_services_total).",
                &self.skipped_services,
            )
            .gauge(
                "registrator_services",
                "Services that should be registered.",
                &self.services,
            )
            .gauge(
                "registrator_pending_services",
                "Services not yet converged in Consul.",
                &self.pending,
            )
            .gauge(
                "registrator_consul_up",
                "1 while Consul answers.",
                &self.consul_up,
            )
            .gauge(
                "registrator_docker_up",
                "1 while the Docker event stream is connected.",
                &self.docker_up,
            )
            .process()
            .finish()
    }

    fn health(&self) -> Result<String, String> {
        match (self.docker_up.get(), self.consul_up.get()) {
            (1, 1) => Ok("ok".into()),
            (d, c) => Err(format!("docker_up={d} consul_up={c}")),
        }
    }
}
