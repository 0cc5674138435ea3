//! Converging one service on the Consul agent from what it holds (as far as we know) to what we
//! want: registration, maintenance mode and Docker-health TTL, sending only what differs. KV
//! records converge on their own, in batches (see [`crate::records`]).

use std::hash::{Hash, Hasher};

use swarmgate_consul::{CheckDefinition, CheckStatus, Client, Result, ServiceRegistration};

use crate::checks::docker_health_check_id;
use crate::desired::Want;
use crate::phase::Phase;

/// What the agent is known to hold for one service: enough to tell what to send next, far
/// smaller than the registration itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    /// A digest of the registration as built (health and the out-of-rotation check aside).
    registration: u64,
    health: Option<CheckStatus>,
    phase: Phase,
}

impl Applied {
    pub fn of(w: &Want) -> Applied {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        serde_json::to_vec(&w.service.registration)
            .expect("a registration always serialises")
            .hash(&mut h);
        Applied {
            registration: h.finish(),
            health: w.health,
            phase: w.phase,
        }
    }

    /// A service found in Consul that nothing wants: all that is needed to delete it.
    pub fn stray() -> Applied {
        Applied {
            registration: 0,
            health: None,
            phase: Phase::Running,
        }
    }

    pub fn health(&self) -> Option<CheckStatus> {
        self.health
    }
}

/// What a sync did, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Done {
    pub registered: bool,
    pub deregistered: bool,
}

/// The check that keeps a service registered out of rotation critical from the moment it is
/// registered, before the maintenance call lands (a listing or repair never shows it passing).
pub fn out_of_rotation_check_id(service_id: &str) -> String {
    format!("swarmgate-out-of-rotation:{service_id}")
}

/// Brings service `id` from `have` to `want`. A `have` of `None` means "unknown": everything is
/// (re)sent, which is safe because every call is idempotent.
pub async fn converge(
    client: &Client,
    id: &str,
    want: Option<&Want>,
    have: Option<&Applied>,
) -> Result<Done> {
    match (want, have) {
        (Some(w), have) => present(client, w, have).await,
        (None, Some(_)) => {
            client.deregister_service(id).await?;
            Ok(Done {
                deregistered: true,
                ..Done::default()
            })
        }
        (None, None) => Ok(Done::default()),
    }
}

async fn present(client: &Client, w: &Want, have: Option<&Applied>) -> Result<Done> {
    let reg = &w.service.registration;
    let target = Applied::of(w);
    let register = have.is_none_or(|h| h.registration != target.registration);
    let reason = w.maintenance();
    let had = have.and_then(|h| h.phase.maintenance_reason());
    if register {
        register_service(client, &as_sent(reg, w)).await?;
    } else if w.health != have.and_then(|h| h.health) {
        if let Some(status) = w.health {
            client
                .update_ttl_check(
                    &docker_health_check_id(&reg.id),
                    status,
                    "docker health_status",
                )
                .await?;
        }
    }
    if reason != had || (register && reason.is_some()) {
        client
            .service_maintenance(&reg.id, reason.is_some(), reason.as_deref().unwrap_or(""))
            .await?;
    }
    if reason.is_none() && had.is_some() && !register {
        // Registered out of rotation earlier, perhaps with the out-of-rotation check.
        client
            .deregister_check(&out_of_rotation_check_id(&reg.id))
            .await?;
    }
    Ok(Done {
        registered: register,
        ..Done::default()
    })
}

/// Registers `reg`; when the agent refuses script checks (registered over the HTTP API they need
/// `enable_script_checks`; `enable_local_script_checks` is not enough), warns and registers it
/// without them, so that the service itself is there.
async fn register_service(client: &Client, reg: &ServiceRegistration) -> Result<()> {
    let has_script = reg.checks.iter().any(|c| !c.args.is_empty());
    match client.register_service(reg).await {
        Err(e) if has_script && refuses_scripts(&e) => {
            tracing::warn!(service_id = %reg.id, error = %e, "the consul agent refuses script checks (it needs enable_script_checks); registered without them");
            let mut without = reg.clone();
            without.checks.retain(|c| c.args.is_empty());
            client.register_service(&without).await
        }
        other => other,
    }
}

/// Consul 1.8 answers 500 "Scripts are disabled on this agent…"; later versions a 4xx.
fn refuses_scripts(e: &swarmgate_consul::Error) -> bool {
    matches!(e, swarmgate_consul::Error::Status { body, .. }
        if body.to_ascii_lowercase().contains("scripts are disabled"))
}

/// The registration as sent: its Docker-health check at the health we last saw, and, out of
/// rotation, a critical check so that it is never passing between register and maintenance.
fn as_sent(reg: &ServiceRegistration, w: &Want) -> ServiceRegistration {
    let mut reg = reg.clone();
    if let Some(status) = w.health {
        let check_id = docker_health_check_id(&reg.id);
        for check in reg.checks.iter_mut().filter(|c| c.check_id == check_id) {
            check.status = Some(status.as_str().into());
        }
    }
    if let Some(reason) = w.maintenance() {
        reg.checks.push(CheckDefinition {
            check_id: out_of_rotation_check_id(&reg.id),
            name: "Out of rotation".into(),
            ttl: Some("87600h".into()),
            status: Some(CheckStatus::Critical.as_str().into()),
            notes: reason,
            ..CheckDefinition::default()
        });
    }
    reg
}

/// Refreshes the TTL of a Docker-health check (it would expire otherwise).
pub async fn refresh_ttl(client: &Client, w: &Want) -> Result<()> {
    match w.health {
        Some(status) => {
            let id = docker_health_check_id(&w.service.registration.id);
            client
                .update_ttl_check(&id, status, "docker health_status")
                .await
        }
        None => Ok(()),
    }
}
