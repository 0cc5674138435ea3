//! The one event for a service left out of Consul: a label it cannot use, an id another container
//! already holds, or Consul refusing it (a 4xx). Emitting it writes the warning and the counter
//! together, so the two cannot drift.

use crate::container::ContainerId;
use crate::labels::LabelError;
use crate::metrics::Metrics;

/// Why a service was left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// A `SERVICE_*` label or env var it cannot use.
    Label(LabelError),
    /// Another container's service has this id.
    IdTaken {
        service_id: String,
        owner: ContainerId,
    },
    /// Consul answered 4xx to its registration (e.g. more than 64 meta keys); not retried until
    /// the container changes.
    Refused { service_id: String, error: String },
}

/// A service left out, naming its container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub container: ContainerId,
    pub container_name: String,
    pub reason: SkipReason,
}

impl Skipped {
    /// Logs the warning and counts it.
    pub fn emit(&self, metrics: &Metrics) {
        let (container, name) = (&self.container, &self.container_name);
        match &self.reason {
            SkipReason::Label(err) => {
                tracing::warn!(%container, %name, label = %err.label, reason = %err.reason, "bad label; service skipped");
            }
            SkipReason::IdTaken { service_id, owner } => {
                tracing::warn!(%container, %name, %service_id, %owner, "service id already used by another container; service skipped");
            }
            SkipReason::Refused { service_id, error } => {
                tracing::warn!(%container, %name, %service_id, %error, "consul refused the service; skipped until the container changes");
            }
        }
        metrics.skipped_services_total.inc();
    }
}
