//! Converging one service in Consul from what it has (as far as we know) to what we want:
//! register, KV record, maintenance mode and Docker-health TTL, sending only what differs.

use swarmgate_consul::{Client, Result, ServiceRegistration};

use crate::checks::docker_health_check_id;
use crate::desired::Want;

/// What a sync did, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Done {
    pub registered: bool,
    pub deregistered: bool,
}

/// Brings service `id` from `have` to `want`. A `have` of `None` means "unknown": everything is
/// (re)sent, which is safe because every call is idempotent.
pub async fn converge(
    client: &Client,
    id: &str,
    want: Option<&Want>,
    have: Option<&Want>,
) -> Result<Done> {
    match (want, have) {
        (Some(w), have) => present(client, w, have).await,
        (None, Some(h)) => {
            client.deregister_service(id).await?;
            if let Some((key, _)) = &h.service.kv {
                client.kv_delete(key).await?;
            }
            Ok(Done {
                deregistered: true,
                ..Done::default()
            })
        }
        (None, None) => Ok(Done::default()),
    }
}

async fn present(client: &Client, w: &Want, have: Option<&Want>) -> Result<Done> {
    let reg = &w.service.registration;
    let register = have.is_none_or(|h| h.service.registration != *reg);
    if register {
        client.register_service(&with_health(reg, w)).await?;
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
    let old_kv = have.and_then(|h| h.service.kv.as_ref());
    if let Some((key, value)) = &w.service.kv {
        if register || old_kv != w.service.kv.as_ref() {
            client.kv_put(key, value).await?;
        }
    }
    if let Some((old_key, _)) = old_kv {
        if w.service.kv.as_ref().is_none_or(|(k, _)| k != old_key) {
            client.kv_delete(old_key).await?;
        }
    }
    let had_maintenance = have.and_then(|h| h.maintenance.as_deref());
    if w.maintenance.as_deref() != had_maintenance || (register && w.maintenance.is_some()) {
        let reason = w.maintenance.as_deref().unwrap_or("");
        client
            .service_maintenance(&reg.id, w.maintenance.is_some(), reason)
            .await?;
    }
    Ok(Done {
        registered: register,
        ..Done::default()
    })
}

/// The registration with its Docker-health check set to the health we last saw.
fn with_health(reg: &ServiceRegistration, w: &Want) -> ServiceRegistration {
    let mut reg = reg.clone();
    if let Some(status) = w.health {
        let check_id = docker_health_check_id(&reg.id);
        for check in reg.checks.iter_mut().filter(|c| c.check_id == check_id) {
            check.status = Some(status.as_str().into());
        }
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
