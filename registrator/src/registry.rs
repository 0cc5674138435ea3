//! The registry task: sole owner of the desired state, of what Consul is known to hold, and of
//! the registrator's condition. It applies the watcher's updates, converges each changed service
//! on the agent (concurrently across services, one call chain at a time per service) while its
//! KV record goes in a batched transaction beside it, retries failures with backoff, skips what
//! Consul refuses, and periodically reconciles against what Consul really holds.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use swarmgate_consul::{Client, Error};
use swarmgate_runtime::deadline;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::checks::DOCKER_HEALTH_TTL_SECS;
use crate::desired::DesiredState;
use crate::docker::DockerEvent;
use crate::health::Condition;
use crate::metrics::{Metrics, Seen};
use crate::phase::Phase;
use crate::reconcile::ConsulView;
use crate::records::{Planned, Records};
use crate::report::{Ask, ContainerReport, Report};
use crate::service::META_CONTAINER_NAME;
use crate::skipped::{SkipReason, Skipped};
use crate::sync::{converge, Applied, Done};
use crate::watcher::Update;

/// Services converged at once.
pub(crate) const MAX_IN_FLIGHT: usize = 32;

pub(crate) enum Outcome {
    Synced {
        id: String,
        target: Option<Applied>,
        result: Result<Done, Error>,
    },
    Records {
        planned: Vec<Planned>,
        result: Result<bool, Error>,
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
    pub(crate) client: Client,
    pub(crate) settings: RegistrySettings,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) desired: DesiredState,
    /// What the agent holds as far as we know; absent means unknown (re-send whole).
    pub(crate) applied: HashMap<String, Applied>,
    pub(crate) dirty: BTreeSet<String>,
    pub(crate) in_flight: HashSet<String>,
    pub(crate) failed: BTreeSet<String>,
    /// Services Consul refused (4xx), as they were wanted: not sent again until they change.
    pub(crate) refused: HashMap<String, Applied>,
    pub(crate) last_sync: HashMap<String, Instant>,
    pub(crate) records: Records,
    pub(crate) jobs: JoinSet<Outcome>,
    backoff: Box<dyn Iterator<Item = Duration> + Send>,
    retry_at: Option<Instant>,
    pub(crate) verifying: bool,
    pub(crate) want_full_verify: bool,
    /// A listing has completed since start: before that the desired state is partial, and
    /// `-cleanup` must not judge what Consul holds against it.
    pub(crate) listed_once: bool,
    /// The last listing (began, completed) until the full reconcile after it ends.
    pub(crate) listing: Option<(Instant, Instant)>,
    seen: Seen,
    condition: Condition,
    published: watch::Sender<Condition>,
    skipped_total: u64,
    /// When a full comparison with Consul last completed (for `/api/state`).
    pub(crate) last_full_sync_unix: Option<u64>,
    /// Times the Docker stream came up (the first, then each reconnection).
    docker_sessions: u64,
}

impl Registry {
    pub fn new(
        client: Client,
        desired: DesiredState,
        settings: RegistrySettings,
        metrics: Arc<Metrics>,
        published: watch::Sender<Condition>,
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
            refused: HashMap::new(),
            last_sync: HashMap::new(),
            records: Records::default(),
            jobs: JoinSet::new(),
            backoff: Box::new(swarmgate_runtime::retry::default_backoff()),
            retry_at: None,
            verifying: false,
            want_full_verify: false,
            listed_once: false,
            listing: None,
            seen: Seen::default(),
            condition: Condition {
                consul_up: true,
                ..Condition::default()
            },
            published,
            skipped_total: 0,
            last_full_sync_unix: None,
            docker_sessions: 0,
        }
    }

    /// Runs until `token` is cancelled or the watcher is gone, then drains.
    /// `asks` are `/api/state` requests, answered between updates.
    pub async fn run(
        mut self,
        mut updates: mpsc::Receiver<Update>,
        mut asks: mpsc::Receiver<Ask>,
        token: CancellationToken,
    ) {
        let mut verify = tokio::time::interval(self.settings.verify_interval);
        verify.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ttl_every = Duration::from_secs(DOCKER_HEALTH_TTL_SECS / 3);
        let mut ttl = tokio::time::interval_at(Instant::now() + ttl_every, ttl_every);
        loop {
            self.pump();
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
                _ = deadline::sleep_until(self.retry_at) => {
                    self.retry_at = None;
                    self.dirty.append(&mut self.failed);
                    self.records.retry_failed();
                }
                _ = verify.tick() => self.start_verify(false),
                _ = ttl.tick() => self.refresh_ttls(),
                Some(ask) = asks.recv() => { let _ = ask.send(self.report()); }
            }
        }
        self.drain().await;
    }

    fn apply(&mut self, update: Update) {
        let changed = match update {
            Update::Listed(info) => self.desired.listed(&info),
            Update::Started(info) => {
                self.metrics.docker_events.inc();
                self.desired.started(&info)
            }
            Update::ListingComplete(running, began) => {
                self.listed_once = true;
                self.listing = Some((began, Instant::now()));
                self.want_full_verify = true;
                self.desired.listing_complete(&running)
            }
            Update::Event(event) => {
                self.metrics.docker_events.inc();
                self.on_event(event)
            }
            Update::DockerUp(up) => {
                if up && !self.condition.docker_up {
                    self.docker_sessions += 1;
                    if self.docker_sessions > 1 {
                        self.metrics.docker_reconnects.inc();
                    }
                }
                self.condition.docker_up = up;
                Vec::new()
            }
            Update::HostIp(ip) => {
                // The listing that follows rebuilds every service with it.
                self.desired.set_host_ip(ip);
                Vec::new()
            }
        };
        for id in changed {
            let key = self.desired.get(&id).and_then(|w| w.service.kv.as_ref());
            self.records
                .service_changed(&id, key.map(|(k, _)| k.as_str()));
            self.seen.changed(&id);
            self.dirty.insert(id);
        }
        for skipped in self.desired.take_skipped() {
            self.record_skip(&skipped);
        }
        self.metrics.services.set(self.desired.len() as i64);
    }

    fn on_event(&mut self, event: DockerEvent) -> Vec<String> {
        let d = &mut self.desired;
        match event {
            DockerEvent::Start(_) => Vec::new(),
            DockerEvent::Stopping(id) => d.stopping(&id),
            DockerEvent::Signalled { id, signal } => d.signalled(&id, signal),
            DockerEvent::Died { id, exit_code } => d.died(&id, exit_code),
            DockerEvent::Destroyed(id) => d.destroyed(&id),
            DockerEvent::Paused(id, paused) => d.paused(&id, paused),
            DockerEvent::Health(id, status) => d.health(&id, status),
        }
    }

    /// What `/api/state` shows, from the registry's own bookkeeping.
    fn report(&self) -> Report {
        let mut containers: Vec<ContainerReport> = self
            .desired
            .containers()
            .map(|(id, name, phase, services)| ContainerReport {
                id: id.0.clone(),
                name: name.to_string(),
                phase: phase.as_str(),
                services: services.to_vec(),
            })
            .collect();
        containers.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Report {
            docker_up: self.condition.docker_up,
            consul_up: self.condition.consul_up,
            last_sync_unix: self.last_full_sync_unix,
            services_wanted: self.desired.len(),
            services_registered: self.applied.len(),
            pending: self.condition.pending,
            skipped_total: self.skipped_total,
            stopping: containers
                .iter()
                .filter(|c| c.phase == Phase::StopRequested.as_str())
                .cloned()
                .collect(),
            containers,
        }
    }

    pub(crate) fn record_skip(&mut self, skipped: &Skipped) {
        skipped.emit(&self.metrics);
        self.skipped_total += 1;
        self.metrics.skipped_services.set(self.skipped_total as i64);
    }

    /// Starts convergence of dirty services (up to the concurrency limit) and of dirty KV
    /// records (in transactions), then writes the condition out.
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
            self.spawn_sync(id);
        }
        self.pump_records();
        if self.want_full_verify && !self.verifying {
            self.start_verify(true);
        }
        self.publish();
    }

    fn spawn_sync(&mut self, id: String) {
        let want = self.desired.get(&id).cloned();
        let target = want.as_ref().map(Applied::of);
        let have = self.applied.get(&id).copied();
        if target.is_some() && (target == have || target == self.refused.get(&id).copied()) {
            self.seen.converged(&id);
            return;
        }
        self.in_flight.insert(id.clone());
        let client = self.client.clone();
        self.jobs.spawn(async move {
            let started = std::time::Instant::now();
            let result = converge(&client, &id, want.as_ref(), have.as_ref()).await;
            tracing::debug!(service_id = %id, elapsed_us = started.elapsed().as_micros() as u64, "converged");
            Outcome::Synced { id, target, result }
        });
    }

    fn pump_records(&mut self) {
        let (desired, prefix, refused) = (
            &self.desired,
            self.desired.settings().kv_prefix.as_ref(),
            &self.refused,
        );
        let wanted = |key: &str| -> Option<&[u8]> {
            let (_, id) = prefix?.parse(key)?;
            let want = desired.get(&id)?;
            if refused.contains_key(&id) {
                return None;
            }
            match &want.service.kv {
                Some((k, v)) if k == key => Some(v.as_slice()),
                _ => None,
            }
        };
        for batch in self.records.next_batches(wanted) {
            let client = self.client.clone();
            self.jobs.spawn(async move {
                let result = client.kv_txn(&batch.ops).await;
                Outcome::Records {
                    planned: batch.planned,
                    result,
                }
            });
        }
    }

    /// Writes the condition to `/health`'s channel and the gauges, and gives memory back when a
    /// burst of work (a listing, a reconcile) has just drained.
    fn publish(&mut self) {
        let pending =
            self.dirty.len() + self.in_flight.len() + self.failed.len() + self.records.pending();
        if pending == 0 && self.condition.pending > 0 {
            swarmgate_runtime::memory::release_free_memory();
        }
        self.condition.pending = pending;
        self.metrics.pending.set(pending as i64);
        self.metrics
            .consul_up
            .set(i64::from(self.condition.consul_up));
        self.metrics
            .docker_up
            .set(i64::from(self.condition.docker_up));
        self.published.send_if_modified(|c| {
            let changed = *c != self.condition;
            *c = self.condition;
            changed
        });
    }

    fn finish(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Synced { id, target, result } => self.finish_sync(id, target, result),
            Outcome::Records { planned, result } => {
                match &result {
                    Ok(_) => self.consul_ok(),
                    Err(e) => self.consul_failed(e, "consul kv transaction failed"),
                }
                for key in self.records.finish(planned, &result) {
                    tracing::warn!(%key, "consul refused the kv record; not retried until it changes");
                }
            }
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

    fn finish_sync(&mut self, id: String, target: Option<Applied>, result: Result<Done, Error>) {
        self.in_flight.remove(&id);
        // A failure that is retried keeps waiting from when the change was seen.
        let waited = match &result {
            Err(e) if !is_refusal(e) || target.is_none() => None,
            _ => self.seen.converged(&id),
        };
        match result {
            Ok(done) => {
                self.consul_ok();
                self.refused.remove(&id);
                if done.registered {
                    self.metrics.registrations.inc();
                    if let Some(waited) = waited {
                        self.metrics
                            .registration_duration
                            .observe(waited.as_secs_f64());
                    }
                    tracing::info!(service_id = %id, "registered");
                }
                if done.deregistered {
                    self.metrics.deregistrations.inc();
                    tracing::info!(service_id = %id, "deregistered");
                }
                match target {
                    Some(t) => {
                        self.applied.insert(id.clone(), t);
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
            Err(e) if is_refusal(&e) && target.is_some() => self.refuse(id, target, &e),
            Err(e) => {
                if target.is_some() {
                    self.applied.remove(&id);
                }
                tracing::warn!(service_id = %id, error = %e, "consul sync failed; will retry");
                self.consul_failed(&e, "consul sync failed");
                self.failed.insert(id);
            }
        }
    }

    /// Consul refused the registration (4xx): skipped with a warning naming the container,
    /// not retried until it changes; its KV record goes too.
    fn refuse(&mut self, id: String, target: Option<Applied>, e: &Error) {
        self.consul_ok();
        self.applied.remove(&id);
        let Some(want) = self.desired.get(&id) else {
            return;
        };
        let skipped = Skipped {
            container: want.container.clone(),
            container_name: want
                .service
                .registration
                .meta
                .get(META_CONTAINER_NAME)
                .cloned()
                .unwrap_or_default(),
            reason: SkipReason::Refused {
                service_id: id.clone(),
                error: e.to_string(),
            },
        };
        if let Some((key, _)) = &want.service.kv {
            self.records.touch(key.clone(), false);
        }
        if let Some(t) = target {
            self.refused.insert(id, t);
        }
        self.record_skip(&skipped);
    }

    pub(crate) fn consul_ok(&mut self) {
        self.backoff = Box::new(swarmgate_runtime::retry::default_backoff());
        if !self.condition.consul_up {
            self.condition.consul_up = true;
            self.want_full_verify = true;
            tracing::info!("consul answers again; reconciling");
        }
    }

    pub(crate) fn consul_failed(&mut self, e: &Error, what: &str) {
        self.metrics.consul_errors.inc();
        if e.is_retryable() {
            if self.condition.consul_up {
                tracing::warn!(error = %e, "{what}; consul unreachable, keeping desired state and retrying");
            }
            self.condition.consul_up = false;
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
}

/// A 4xx other than a permission problem: the same request will never succeed.
fn is_refusal(e: &Error) -> bool {
    matches!(e, Error::Status { status, .. } if status.is_client_error())
        && !e.is_retryable()
        && !e.is_permission_denied()
        && !e.is_not_found()
}
