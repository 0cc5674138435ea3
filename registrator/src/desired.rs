//! The desired state: which services should be in Consul, in which mode (in rotation, in
//! maintenance), with which Docker health, as Docker events and listings say. Pure bookkeeping:
//! every change answers the service ids it touched, and the registry converges Consul to it.

use std::collections::{BTreeMap, HashMap};

use swarmgate_consul::CheckStatus;

use crate::config::DeregisterMode;
use crate::container::{ContainerId, ContainerInfo};
use crate::service::{services_for, ModelSettings, Service};

/// One service as it should be in Consul.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    pub service: Service,
    pub container: ContainerId,
    /// `Some(reason)`: registered but out of rotation.
    pub maintenance: Option<String>,
    /// The mirrored Docker health, when the container has a health check.
    pub health: Option<CheckStatus>,
}

/// Every service that should be registered, by service id.
#[derive(Debug)]
pub struct DesiredState {
    settings: ModelSettings,
    deregister: DeregisterMode,
    services: BTreeMap<String, Want>,
    by_container: HashMap<ContainerId, Vec<String>>,
    /// Label problems seen so far (a counter for /metrics).
    pub skipped_total: u64,
}

impl DesiredState {
    pub fn new(settings: ModelSettings, deregister: DeregisterMode) -> Self {
        DesiredState {
            settings,
            deregister,
            services: BTreeMap::new(),
            by_container: HashMap::new(),
            skipped_total: 0,
        }
    }

    pub fn get(&self, service_id: &str) -> Option<&Want> {
        self.services.get(service_id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Want)> {
        self.services.iter()
    }

    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    pub fn settings(&self) -> &ModelSettings {
        &self.settings
    }

    /// A container runs (started, listed, unpaused): its services are wanted, in rotation
    /// unless it is paused. Answers the ids whose wants changed (new, different or dropped).
    pub fn running(&mut self, info: &ContainerInfo) -> Vec<String> {
        let built = services_for(info, &self.settings);
        for err in &built.skipped {
            self.skipped_total += 1;
            tracing::warn!(container = %info.id, name = %info.name, label = %err.label, reason = %err.reason, "bad label; service skipped");
        }
        // Take the container's old wants out: what is re-added unchanged is no change.
        let old_ids = self.by_container.remove(&info.id).unwrap_or_default();
        let mut old: HashMap<String, Want> = old_ids
            .into_iter()
            .filter_map(|id| self.services.remove(&id).map(|w| (id, w)))
            .collect();
        let mut changed = Vec::new();
        let mut ids = Vec::new();
        for service in built.services {
            let id = service.registration.id.clone();
            if let Some(other) = self.services.get(&id) {
                self.skipped_total += 1;
                tracing::warn!(container = %info.id, name = %info.name, service_id = %id, owner = %other.container, "service id already used by another container; service skipped");
                continue;
            }
            let want = Want {
                service,
                container: info.id.clone(),
                maintenance: info.paused.then(|| "container paused".to_string()),
                health: info.health,
            };
            if old.remove(&id).as_ref() != Some(&want) {
                changed.push(id.clone());
            }
            self.services.insert(id.clone(), want);
            ids.push(id);
        }
        // Services the container no longer has.
        changed.extend(old.into_keys());
        if !ids.is_empty() {
            self.by_container.insert(info.id.clone(), ids);
        }
        dedup(changed)
    }

    /// `stop` or a terminating `kill`: out of rotation before the container dies.
    pub fn stopping(&mut self, id: &ContainerId) -> Vec<String> {
        match self.deregister {
            DeregisterMode::Always => self.forget(id),
            DeregisterMode::OnSuccess => self.set_maintenance(id, Some("container stopping")),
        }
    }

    /// `die`: gone, unless `-deregister on-success` keeps a failed container (in maintenance).
    pub fn died(&mut self, id: &ContainerId, exit_code: i64) -> Vec<String> {
        if self.deregister == DeregisterMode::OnSuccess && exit_code != 0 {
            let reason = format!("container exited with code {exit_code}");
            return self.set_maintenance(id, Some(&reason));
        }
        self.forget(id)
    }

    /// `destroy`: gone whatever the mode.
    pub fn destroyed(&mut self, id: &ContainerId) -> Vec<String> {
        self.forget(id)
    }

    /// `pause`/`unpause`.
    pub fn paused(&mut self, id: &ContainerId, paused: bool) -> Vec<String> {
        self.set_maintenance(id, paused.then_some("container paused"))
    }

    /// `health_status`.
    pub fn health(&mut self, id: &ContainerId, status: CheckStatus) -> Vec<String> {
        self.each_service(id, |w| {
            let changed = w.service.mirrors_docker_health && w.health != Some(status);
            if changed {
                w.health = Some(status);
            }
            changed
        })
    }

    /// A full listing: these run, nothing else does (failed `on-success` containers excepted:
    /// they stay in maintenance until destroyed, as events would have left them).
    pub fn snapshot(&mut self, running: &[ContainerInfo]) -> Vec<String> {
        let listed: std::collections::HashSet<&ContainerId> =
            running.iter().map(|c| &c.id).collect();
        let gone: Vec<ContainerId> = self
            .by_container
            .keys()
            .filter(|id| !listed.contains(id))
            .cloned()
            .collect();
        let mut changed = Vec::new();
        for id in gone {
            let kept = self.deregister == DeregisterMode::OnSuccess
                && self.by_container[&id].iter().any(|s| {
                    self.services[s]
                        .maintenance
                        .as_deref()
                        .is_some_and(|r| r.starts_with("container exited"))
                });
            if !kept {
                changed.extend(self.forget(&id));
            }
        }
        for info in running {
            changed.extend(self.running(info));
        }
        dedup(changed)
    }

    fn forget(&mut self, id: &ContainerId) -> Vec<String> {
        let ids = self.by_container.remove(id).unwrap_or_default();
        for sid in &ids {
            self.services.remove(sid);
        }
        ids
    }

    fn set_maintenance(&mut self, id: &ContainerId, reason: Option<&str>) -> Vec<String> {
        self.each_service(id, |w| {
            let changed = w.maintenance.as_deref() != reason;
            w.maintenance = reason.map(str::to_string);
            changed
        })
    }

    fn each_service(
        &mut self,
        id: &ContainerId,
        mut f: impl FnMut(&mut Want) -> bool,
    ) -> Vec<String> {
        let ids = self.by_container.get(id).cloned().unwrap_or_default();
        ids.into_iter()
            .filter(|sid| self.services.get_mut(sid).is_some_and(&mut f))
            .collect()
    }
}

fn dedup(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids.dedup();
    ids
}

#[cfg(test)]
#[path = "desired_tests.rs"]
mod tests;
