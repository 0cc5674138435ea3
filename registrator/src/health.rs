//! What the registrator reports about itself: its condition (Docker and Consul reachability,
//! pending work), owned by the registry task and published over a `watch` channel; and the
//! status that answers `/health` from that condition and `/metrics` from the metric families.

use std::sync::Arc;

use swarmgate_runtime::http::Status;
use swarmgate_runtime::metrics::Exposition;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// The registry's view of itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Condition {
    /// The Docker event stream is connected and a listing went through.
    pub docker_up: bool,
    /// Consul answered the last call.
    pub consul_up: bool,
    /// Services not converged in Consul yet (registrations and KV records).
    pub pending: usize,
}

/// `/metrics` and `/health`.
pub struct Endpoint {
    pub metrics: Arc<Metrics>,
    pub condition: watch::Receiver<Condition>,
}

impl Status for Endpoint {
    fn exposition(&self) -> &Exposition {
        self.metrics.exposition()
    }

    fn health(&self) -> Result<String, String> {
        let c = *self.condition.borrow();
        if c.docker_up && c.consul_up {
            return Ok("ok".into());
        }
        Err(format!(
            "docker_up={} consul_up={}",
            u8::from(c.docker_up),
            u8::from(c.consul_up)
        ))
    }
}
