//! The registrator's metric families, declared once; the registry, the Docker watcher and the
//! HTTP server share the handles.

use std::collections::HashMap;
use std::time::Instant;

use swarmgate_runtime::metrics::{Counter, Exposition, Families, Gauge, Histogram};

/// Shared by the registry, the Docker watcher and the HTTP server (atomics only).
#[derive(Debug)]
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
    /// A listing of the containers and the full reconcile that follows it.
    pub sync_duration: Histogram,
    /// A service's change seen (event or listing) until Consul took its registration.
    pub registration_duration: Histogram,
    exposition: Exposition,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut f = Families::default();
        Metrics {
            registrations: f.counter(
                "registrator_registrations",
                "Service registrations sent to Consul",
            ),
            deregistrations: f.counter(
                "registrator_deregistrations",
                "Service deregistrations sent to Consul",
            ),
            consul_errors: f.counter("registrator_consul_errors", "Failed Consul calls (retried)"),
            docker_events: f.counter(
                "registrator_docker_events",
                "Docker container events received",
            ),
            docker_reconnects: f.counter(
                "registrator_docker_reconnects",
                "Times the Docker event stream was re-established",
            ),
            reconciles: f.counter(
                "registrator_reconciles",
                "Comparisons of Consul with the desired state",
            ),
            repairs: f.counter(
                "registrator_repairs",
                "Services re-sent because Consul lost or changed them",
            ),
            skipped_services_total: f.counter(
                "registrator_skipped_services",
                "Services left out: bad labels, an id already taken, or refused by Consul",
            ),
            // Prometheus text only: in OpenMetrics the counter's family is itself named
            // `registrator_skipped_services` (its sample has `_total`), so the gauge would clash.
            skipped_services: f.text_only_gauge(
                "registrator_skipped_services",
                "Services skipped so far (alias of registrator_skipped_services_total)",
            ),
            services: f.gauge("registrator_services", "Services that should be registered"),
            pending: f.gauge(
                "registrator_pending_services",
                "Services not yet converged in Consul",
            ),
            consul_up: f.gauge("registrator_consul_up", "1 while Consul answers"),
            docker_up: f.gauge(
                "registrator_docker_up",
                "1 while the Docker event stream is connected",
            ),
            sync_duration: f.latency(
                "registrator_sync_duration_seconds",
                "One listing of the containers and the full reconcile that follows it",
            ),
            registration_duration: f.latency(
                "registrator_registration_duration_seconds",
                "From a container change seen to Consul accepting the registration",
            ),
            exposition: f.finish(),
        }
    }
}

impl Metrics {
    pub fn exposition(&self) -> &Exposition {
        &self.exposition
    }
}

/// When each service's pending change was first seen, for
/// [`Metrics::registration_duration`]; owned by the registry task.
#[derive(Debug, Default)]
pub struct Seen(HashMap<String, Instant>);

impl Seen {
    /// A change of `id` seen now; a change already waiting keeps its first moment.
    pub fn changed(&mut self, id: &str) {
        if !self.0.contains_key(id) {
            self.0.insert(id.to_string(), Instant::now());
        }
    }

    /// `id` converged: answers how long since its change was seen.
    pub fn converged(&mut self, id: &str) -> Option<std::time::Duration> {
        self.0.remove(id).map(|t| t.elapsed())
    }
}
