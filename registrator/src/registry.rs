//! The registry task: sole owner of the desired state and of what Consul is known to hold.
//! It applies the watcher's updates, converges each changed service in Consul (concurrently
//! across services, one call chain at a time per service), retries failures with backoff,
//! and periodically reconciles against what Consul really holds.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{stream, StreamExt};
use swarmgate_consul::{Client, Error, ServiceRegistration};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::checks::DOCKER_HEALTH_TTL_SECS;
use crate::container::ContainerId;
use crate::desired::{DesiredState, Want};
use crate::docker::DockerEvent;
use crate::metrics::Metrics;
use crate::reconcile::{compare, read_view, ConsulView};
use crate::service::Service;
use crate::sync::{converge, refresh_ttl, Done};
use crate::watcher::Update;

/// Services converged at once.
const MAX_IN_FLIGHT: usize = 32;
/// How long shutdown waits for in-flight calls and for `--deregister-on-shutdown`.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

enum Outcome {
    Synced {
        id: String,
        want: Option<Box<Want>>,
        result: Result<Done, Error>,
    },
    Viewed {
        full: bool,
        started: Instant,
        result: Result<ConsulView, Error>,
    },
    Other(Result<(), Error>),
}

/// Settings of the registry loop.
#[derive(Clone, Debug)]
pub struct RegistrySettings {
    pub verify_interval: Duration,
    pub cleanup: bool,
    pub deregister_on_shutdown: bool,
}

pub struct Registry {
    client: Client,
    settings: RegistrySettings,
    metrics: Arc<Metrics>,
    desired: DesiredState,
    /// What Consul holds as far as we know; absent means unknown (re-send whole).
    applied: HashMap<String, Want>,
    dirty: BTreeSet<String>,
    in_flight: HashSet<String>,
    failed: BTreeSet<String>,
    last_sync: HashMap<String, Instant>,
    jobs: JoinSet<Outcome>,
    backoff: Box<dyn Iterator<Item = Duration> + Send>,
    retry_at: Option<Instant>,
    verifying: bool,
    want_full_verify: bool,
    consul_down: bool,
}

impl Registry {
    pub fn new(
        client: Client,
        desired: DesiredState,
        settings: RegistrySettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Registry {
            client,
            settings,
            metrics,
            desired,
            applied: HashMap::new(),
            dirty: BTreeSet::new(),
            in_flight: HashSet::new(),
            failed: BTreeSet::new(),
            last_sync: HashMap::new(),
            jobs: JoinSet::new(),
            backoff: Box::new(swarmgate_runtime::retry::default_backoff()),
            retry_at: None,
            verifying: false,
            want_full_verify: false,
            consul_down: false,
        }
    }

    /// Runs until `token` is cancelled or the watcher is gone, then drains.
    pub async fn run(mut self, mut updates: mpsc::Receiver<Update>, token: CancellationToken) {
        let mut verify = tokio::time::interval(self.settings.verify_interval);
        verify.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ttl_every = Duration::from_secs(DOCKER_HEALTH_TTL_SECS / 3);
        let mut ttl = tokio::time::interval_at(Instant::now() + ttl_every, ttl_every);
        loop {
            self.pump();
            let retry_at = self.retry_at;
            let retry = async move {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = token.cancelled() => break,
                Some(done) = self.jobs.join_next(), if !self.jobs.is_empty() => {
                    if let Ok(outcome) = done {
                        self.finish(outcome);
                    }
                }
                update = updates.recv() => match update {
                    Some(update) => self.apply(update),
                    None => break,
                },
                _ = retry => {
                    self.retry_at = None;
                    self.dirty.append(&mut self.failed);
                }
                _ = verify.tick() => self.start_verify(false),
                _ = ttl.tick() => self.refresh_ttls(),
            }
        }
        self.drain().await;
    }

    fn apply(&mut self, update: Update) {
        let changed = match update {
            Update::Snapshot(running) => {
                self.want_full_verify = true;
                self.desired.snapshot(&running)
            }
            Update::Running(info) => self.desired.running(&info),
            Update::Event(event) => self.on_event(event),
        };
        self.dirty.extend(changed);
        self.metrics.services.set(self.desired.len() as i64);
        self.metrics
            .skipped_services
            .set(self.desired.skipped_total as i64);
    }

    fn on_event(&mut self, event: DockerEvent) -> Vec<String> {
        let d = &mut self.desired;
        match event {
            DockerEvent::Start(_) => Vec::new(),
            DockerEvent::Stopping(id) => d.stopping(&id),
            DockerEvent::Died { id, exit_code } => d.died(&id, exit_code),
            DockerEvent::Destroyed(id) => d.destroyed(&id),
            DockerEvent::Paused(id, paused) => d.paused(&id, paused),
            DockerEvent::Health(id, status) => d.health(&id, status),
        }
    }

    /// Starts convergence of dirty services, up to the concurrency limit.
    fn pump(&mut self) {
        let room = MAX_IN_FLIGHT.saturating_sub(self.in_flight.len());
        let ready: Vec<String> = self
            .dirty
            .iter()
            .filter(|id| !self.in_flight.contains(*id))
            .take(room)
            .cloned()
            .collect();
        for id in ready {
            self.dirty.remove(&id);
            let want = self.desired.get(&id).cloned();
            let have = self.applied.get(&id).cloned();
            if want.is_some() && want == have {
                continue;
            }
            self.in_flight.insert(id.clone());
            let client = self.client.clone();
            self.jobs.spawn(async move {
                let started = std::time::Instant::now();
                let result = converge(&client, &id, want.as_ref(), have.as_ref()).await;
                tracing::debug!(service_id = %id, elapsed_us = started.elapsed().as_micros() as u64, "converged");
                Outcome::Synced { id, want: want.map(Box::new), result }
            });
        }
        if self.want_full_verify && !self.verifying {
            self.start_verify(true);
        }
        let pending = (self.dirty.len() + self.in_flight.len() + self.failed.len()) as i64;
        if pending == 0 && self.metrics.pending.get() > 0 {
            // A burst of work (a listing, a reconcile) just drained: give its memory back.
            swarmgate_runtime::memory::release_free_memory();
        }
        self.metrics.pending.set(pending);
    }

    fn finish(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Synced { id, want, result } => self.finish_sync(id, want, result),
            Outcome::Viewed {
                full,
                started,
                result,
            } => {
                self.verifying = false;
                match result {
                    Ok(view) => {
                        self.consul_ok();
                        self.finish_verify(view, full, started);
                    }
                    Err(e) => {
                        self.want_full_verify |= full;
                        self.consul_failed(&e, "reading consul state failed");
                    }
                }
            }
            Outcome::Other(Err(e)) => self.consul_failed(&e, "consul call failed"),
            Outcome::Other(Ok(())) => self.consul_ok(),
        }
    }

    fn finish_sync(&mut self, id: String, want: Option<Box<Want>>, result: Result<Done, Error>) {
        self.in_flight.remove(&id);
        match result {
            Ok(done) => {
                self.consul_ok();
                if done.registered {
                    self.metrics.registrations.inc();
                    tracing::info!(service_id = %id, "registered");
                }
                if done.deregistered {
                    self.metrics.deregistrations.inc();
                    tracing::info!(service_id = %id, "deregistered");
                }
                match want {
                    Some(w) => {
                        self.applied.insert(id.clone(), *w);
                        self.last_sync.insert(id, Instant::now());
                    }
                    None => {
                        // Forget it entirely: ids come and go with containers. A stale view
                        // can at worst send the (idempotent) deregistration again.
                        self.applied.remove(&id);
                        self.last_sync.remove(&id);
                    }
                }
            }
            Err(e) => {
                if want.is_some() {
                    self.applied.remove(&id);
                }
                tracing::warn!(service_id = %id, error = %e, "consul sync failed; will retry");
                self.consul_failed(&e, "consul sync failed");
                self.failed.insert(id);
            }
        }
    }

    fn consul_ok(&mut self) {
        self.backoff = Box::new(swarmgate_runtime::retry::default_backoff());
        self.metrics.consul_up.set(1);
        if self.consul_down {
            self.consul_down = false;
            self.want_full_verify = true;
            tracing::info!("consul answers again; reconciling");
        }
    }

    fn consul_failed(&mut self, e: &Error, what: &str) {
        self.metrics.consul_errors.inc();
        if e.is_retryable() {
            if !self.consul_down {
                tracing::warn!(error = %e, "{what}; consul unreachable, keeping desired state and retrying");
            }
            self.consul_down = true;
            self.metrics.consul_up.set(0);
        } else if e.is_permission_denied() {
            tracing::error!(error = %e, "{what}: permission denied; the token needs service:write and key:write on the KV prefix");
        } else {
            tracing::error!(error = %e, "{what}");
        }
        if self.retry_at.is_none() {
            let delay = self.backoff.next().unwrap_or(Duration::from_secs(10));
            self.retry_at = Some(Instant::now() + delay);
        }
    }

    fn start_verify(&mut self, full: bool) {
        if self.verifying {
            return;
        }
        self.verifying = true;
        self.want_full_verify &= !full;
        self.metrics.reconciles.inc();
        let client = self.client.clone();
        let node = self.desired.settings().node.clone();
        let prefix = self.desired.settings().kv_prefix.clone();
        let started = Instant::now();
        self.jobs.spawn(async move {
            let result = read_view(&client, &node, prefix.as_ref(), full).await;
            Outcome::Viewed {
                full,
                started,
                result,
            }
        });
    }

    fn finish_verify(&mut self, view: ConsulView, full: bool, started: Instant) {
        let findings = compare(&view, &self.desired);
        let settled = |r: &Registry, id: &str| {
            !r.in_flight.contains(id)
                && !r.dirty.contains(id)
                && !r.failed.contains(id)
                && r.last_sync.get(id).is_none_or(|t| *t < started)
        };
        let repair: Vec<String> = findings
            .repair
            .into_iter()
            .filter(|id| settled(self, id))
            .collect();
        if !repair.is_empty() {
            tracing::info!(
                count = repair.len(),
                "consul lacks or changed services; re-sending them"
            );
            for id in repair {
                self.metrics.repairs.inc();
                self.applied.remove(&id);
                self.dirty.insert(id);
            }
            self.want_full_verify |= !full;
        }
        if !self.settings.cleanup {
            return;
        }
        for (id, kv_key) in findings.orphans {
            if settled(self, &id) && !self.applied.contains_key(&id) {
                tracing::info!(service_id = %id, "removing service whose container no longer runs");
                self.applied.insert(id.clone(), orphan(&id, kv_key));
                self.dirty.insert(id);
            }
        }
        for key in findings.orphan_keys {
            let client = self.client.clone();
            self.jobs
                .spawn(async move { Outcome::Other(client.kv_delete(&key).await) });
        }
    }

    /// Refreshes every Docker-health TTL in one job, `MAX_IN_FLIGHT` at a time.
    fn refresh_ttls(&mut self) {
        let due: Vec<Want> = self
            .desired
            .iter()
            .filter(|(id, w)| w.health.is_some() && self.applied.get(*id) == Some(w))
            .map(|(_, w)| w.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        let client = self.client.clone();
        self.jobs.spawn(async move {
            let results: Vec<_> = stream::iter(due)
                .map(|w| {
                    let client = client.clone();
                    async move { refresh_ttl(&client, &w).await }
                })
                .buffer_unordered(MAX_IN_FLIGHT)
                .collect()
                .await;
            Outcome::Other(
                results
                    .into_iter()
                    .collect::<Result<Vec<()>, _>>()
                    .map(drop),
            )
        });
    }

    async fn drain(mut self) {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while tokio::time::timeout_at(deadline, self.jobs.join_next())
            .await
            .ok()
            .flatten()
            .is_some()
        {}
        if !self.settings.deregister_on_shutdown {
            return;
        }
        tracing::info!(
            count = self.desired.len(),
            "deregistering this node's services before exit"
        );
        let client = &self.client;
        let deregister = stream::iter(self.desired.iter())
            .map(|(id, want)| async move {
                if let Err(e) = converge(client, id, None, Some(want)).await {
                    tracing::warn!(service_id = %id, error = %e, "deregistration at shutdown failed");
                }
            })
            .buffer_unordered(MAX_IN_FLIGHT)
            .collect::<Vec<()>>();
        if tokio::time::timeout_at(deadline, deregister).await.is_err() {
            tracing::warn!("deregistration at shutdown did not finish in time");
        }
    }
}

/// A stand-in for a service found in Consul that we own but no longer want: enough to delete it.
fn orphan(id: &str, kv_key: Option<String>) -> Want {
    Want {
        service: Service {
            registration: ServiceRegistration {
                id: id.to_string(),
                ..ServiceRegistration::default()
            },
            kv: kv_key.map(|k| (k, Vec::new())),
            mirrors_docker_health: false,
        },
        container: ContainerId(String::new()),
        maintenance: None,
        health: None,
    }
}
