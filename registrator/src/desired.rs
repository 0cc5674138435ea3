//! The desired state: which services should be in Consul, in which [`Phase`] (in rotation, in
//! maintenance), with which Docker health, as Docker events and listings say. Pure bookkeeping:
//! every change answers the service ids it touched, and the registry converges Consul to it.
//!
//! A stop request is remembered per run of a container (its `StartedAt`): later listings, which
//! cannot tell a stopping container from a running one, leave it out of rotation until it dies,
//! is destroyed, or starts again.

use std::collections::{BTreeMap, HashMap, HashSet};

use swarmgate_consul::CheckStatus;

use crate::config::DeregisterMode;
use crate::container::{ContainerId, ContainerInfo};
use crate::phase::{is_clean_exit, Phase};
use crate::service::{services_for, ModelSettings, Service};
use crate::skipped::{SkipReason, Skipped};

/// One service as it should be in Consul.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    pub service: Service,
    pub container: ContainerId,
    pub phase: Phase,
    /// The mirrored Docker health, when the container has a health check.
    pub health: Option<CheckStatus>,
}

impl Want {
    /// `Some(reason)`: registered but out of rotation (derived from the phase).
    pub fn maintenance(&self) -> Option<String> {
        self.phase.maintenance_reason()
    }
}

/// A container the registrator follows: which run, in which phase, with which services.
#[derive(Debug)]
struct Tracked {
    name: String,
    started_at: String,
    phase: Phase,
    services: Vec<String>,
    /// Its own stop signal (`STOPSIGNAL`), when not a terminating one.
    stop_signal: Option<i32>,
}

/// Where an update about a running container comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// A `start`/`unpause` event.
    Started,
    /// A listing entry.
    Listed,
}

/// Every service that should be registered, by service id.
#[derive(Debug)]
pub struct DesiredState {
    settings: ModelSettings,
    deregister: DeregisterMode,
    services: BTreeMap<String, Want>,
    containers: HashMap<ContainerId, Tracked>,
    /// Stop requests for containers not followed yet (Docker's event history at start-up, a
    /// reconnect): a listing that shows one has it stopping.
    /// The signal of each hint: `None` for a terminating one, else a signal that is a stop request
    /// only if it is the container's own stop signal (known once it is inspected).
    stop_hints: HashMap<ContainerId, Option<i32>>,
    skipped: Vec<Skipped>,
}

impl DesiredState {
    pub fn new(settings: ModelSettings, deregister: DeregisterMode) -> Self {
        DesiredState {
            settings,
            deregister,
            services: BTreeMap::new(),
            containers: HashMap::new(),
            stop_hints: HashMap::new(),
            skipped: Vec::new(),
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

    /// Every container followed: id, name, phase and the ids of its services.
    pub fn containers(&self) -> impl Iterator<Item = (&ContainerId, &str, Phase, &[String])> {
        self.containers
            .iter()
            .map(|(id, t)| (id, t.name.as_str(), t.phase, t.services.as_slice()))
    }

    /// True when a container of this name runs (or was kept after a failed exit).
    pub fn runs_container_named(&self, name: &str) -> bool {
        self.containers
            .values()
            .any(|t| t.name == name && t.phase.is_live())
    }

    /// `-ip NAME` resolved anew; services pick it up as they are rebuilt (every listing does).
    pub fn set_host_ip(&mut self, ip: String) {
        self.settings.host_ip = Some(ip);
    }

    /// The services left out since the last call, to emit.
    pub fn take_skipped(&mut self) -> Vec<Skipped> {
        std::mem::take(&mut self.skipped)
    }

    /// A `start` or `unpause` event: a new run is in rotation (unless paused); an unpaused run
    /// that was asked to stop stays out.
    pub fn started(&mut self, info: &ContainerInfo) -> Vec<String> {
        self.stop_hints.remove(&info.id);
        self.seen(info, Seen::Started)
    }

    /// A listing entry: like a start, except that a run asked to stop (or hinted so) stays out.
    pub fn listed(&mut self, info: &ContainerInfo) -> Vec<String> {
        self.seen(info, Seen::Listed)
    }

    fn seen(&mut self, info: &ContainerInfo, from: Seen) -> Vec<String> {
        let same_run_stopping = self
            .containers
            .get(&info.id)
            .is_some_and(|t| t.started_at == info.started_at && t.phase == Phase::StopRequested);
        let hint = self.stop_hints.remove(&info.id);
        let hinted = from == Seen::Listed
            && hint.is_some_and(|signal| signal.is_none() || signal == info.config.stop_signal);
        let phase = if same_run_stopping || hinted {
            Phase::StopRequested
        } else {
            Phase::of_running(info.paused)
        };
        self.set_run(info, phase)
    }

    /// Rebuilds the services of `info`'s run in `phase`. Answers the ids whose wants changed.
    fn set_run(&mut self, info: &ContainerInfo, phase: Phase) -> Vec<String> {
        let old_ids = self
            .containers
            .remove(&info.id)
            .map(|t| t.services)
            .unwrap_or_default();
        // Take the container's old wants out: what is re-added unchanged is no change.
        let mut old: HashMap<String, Want> = old_ids
            .into_iter()
            .filter_map(|id| self.services.remove(&id).map(|w| (id, w)))
            .collect();
        let mut changed = Vec::new();
        let mut ids = Vec::new();
        if self.keeps_services(phase) {
            for service in self.build(info) {
                let id = service.registration.id.clone();
                let want = Want {
                    service,
                    container: info.id.clone(),
                    phase,
                    health: info.health,
                };
                if old.remove(&id).as_ref() != Some(&want) {
                    changed.push(id.clone());
                }
                self.services.insert(id.clone(), want);
                ids.push(id);
            }
        }
        // Services the container no longer has.
        changed.extend(old.into_keys());
        let tracked = Tracked {
            name: info.name.clone(),
            started_at: info.started_at.clone(),
            phase,
            services: ids,
            stop_signal: info.config.stop_signal,
        };
        self.containers.insert(info.id.clone(), tracked);
        dedup(changed)
    }

    /// The services of `info` that can be registered; the rest are recorded as skipped.
    fn build(&mut self, info: &ContainerInfo) -> Vec<Service> {
        let built = services_for(info, &self.settings);
        let skip = |reason| Skipped {
            container: info.id.clone(),
            container_name: info.name.clone(),
            reason,
        };
        self.skipped.extend(
            built
                .skipped
                .into_iter()
                .map(|e| skip(SkipReason::Label(e))),
        );
        let mut out = Vec::new();
        for service in built.services {
            let id = &service.registration.id;
            match self.services.get(id) {
                Some(other) => self.skipped.push(skip(SkipReason::IdTaken {
                    service_id: id.clone(),
                    owner: other.container.clone(),
                })),
                None => out.push(service),
            }
        }
        out
    }

    /// Whether a container in `phase` has services in Consul at all.
    fn keeps_services(&self, phase: Phase) -> bool {
        phase != Phase::StopRequested || self.deregister == DeregisterMode::OnSuccess
    }

    /// `stop` or a terminating `kill`: out of rotation before the container dies, and through
    /// every listing until then. For a container not followed yet, a hint for the next listing.
    pub fn stopping(&mut self, id: &ContainerId) -> Vec<String> {
        let Some(t) = self.containers.get(id) else {
            self.stop_hints.insert(id.clone(), None);
            return Vec::new();
        };
        if !matches!(t.phase, Phase::Running | Phase::Paused) {
            return Vec::new();
        }
        if self.keeps_services(Phase::StopRequested) {
            return self.set_phase(id, Phase::StopRequested);
        }
        let ids = self.drop_services(id);
        if let Some(t) = self.containers.get_mut(id) {
            t.phase = Phase::StopRequested;
        }
        ids
    }

    /// `kill` with a signal that ends no container by itself: a stop request when it is this
    /// container's own stop signal (what `docker stop` sends it first).
    pub fn signalled(&mut self, id: &ContainerId, signal: i32) -> Vec<String> {
        match self.containers.get(id) {
            Some(t) if t.stop_signal == Some(signal) => self.stopping(id),
            Some(_) => Vec::new(),
            None => {
                // Not inspected yet: the listing that shows it decides.
                self.stop_hints.entry(id.clone()).or_insert(Some(signal));
                Vec::new()
            }
        }
    }

    /// `die`: gone, unless `-deregister on-success` keeps a failed container (in maintenance).
    /// Exit 0 and signal exits (128–255) are clean.
    pub fn died(&mut self, id: &ContainerId, exit_code: i64) -> Vec<String> {
        self.stop_hints.remove(id);
        if self.deregister == DeregisterMode::OnSuccess && !is_clean_exit(exit_code) {
            return self.set_phase(id, Phase::Exited { code: exit_code });
        }
        self.forget(id)
    }

    /// `destroy`: gone whatever the mode.
    pub fn destroyed(&mut self, id: &ContainerId) -> Vec<String> {
        self.stop_hints.remove(id);
        self.forget(id)
    }

    /// `pause`/`unpause` of a running container (a stopping one stays out).
    pub fn paused(&mut self, id: &ContainerId, paused: bool) -> Vec<String> {
        match self.containers.get(id).map(|t| t.phase) {
            Some(Phase::Running | Phase::Paused) => self.set_phase(id, Phase::of_running(paused)),
            _ => Vec::new(),
        }
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

    /// A listing ended: these ran, nothing else does (exited containers kept by
    /// `-deregister on-success` excepted: they stay in maintenance until destroyed).
    pub fn listing_complete(&mut self, running: &[ContainerId]) -> Vec<String> {
        let listed: HashSet<&ContainerId> = running.iter().collect();
        self.stop_hints.retain(|id, _| listed.contains(id));
        let gone: Vec<ContainerId> = self
            .containers
            .iter()
            .filter(|(id, t)| (t.phase.is_live() || t.services.is_empty()) && !listed.contains(id))
            .map(|(id, _)| id.clone())
            .collect();
        let mut changed = Vec::new();
        for id in gone {
            changed.extend(self.forget(&id));
        }
        dedup(changed)
    }

    fn forget(&mut self, id: &ContainerId) -> Vec<String> {
        let ids = self.drop_services(id);
        self.containers.remove(id);
        ids
    }

    fn drop_services(&mut self, id: &ContainerId) -> Vec<String> {
        let ids = self
            .containers
            .get_mut(id)
            .map(|t| std::mem::take(&mut t.services))
            .unwrap_or_default();
        for sid in &ids {
            self.services.remove(sid);
        }
        ids
    }

    fn set_phase(&mut self, id: &ContainerId, phase: Phase) -> Vec<String> {
        if let Some(t) = self.containers.get_mut(id) {
            t.phase = phase;
        }
        self.each_service(id, |w| {
            let changed = w.phase != phase;
            w.phase = phase;
            changed
        })
    }

    fn each_service(
        &mut self,
        id: &ContainerId,
        mut f: impl FnMut(&mut Want) -> bool,
    ) -> Vec<String> {
        let ids = self
            .containers
            .get(id)
            .map(|t| t.services.clone())
            .unwrap_or_default();
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
