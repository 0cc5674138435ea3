//! The Docker watcher task: subscribes to container events, lists what runs, hands both to the
//! registry in order, and when the stream breaks backs off, resubscribes and lists again.

use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::container::ContainerInfo;
use crate::docker::{self, DockerEvent};
use crate::metrics::Metrics;

/// What the watcher tells the registry.
#[derive(Debug)]
pub enum Update {
    /// Everything that runs now; anything else does not.
    Snapshot(Vec<ContainerInfo>),
    /// A container runs (started, unpaused), freshly inspected.
    Running(ContainerInfo),
    /// Any other event.
    Event(DockerEvent),
}

/// Why a watch session ended.
#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    #[error("docker: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("docker event stream closed")]
    Closed,
    #[error("registry stopped")]
    RegistryGone,
}

pub struct Watcher {
    pub docker_host: String,
    pub resync: Option<Duration>,
    pub tx: mpsc::Sender<Update>,
    pub metrics: Arc<Metrics>,
}

impl Watcher {
    /// Watches until `token` is cancelled; never gives up on a broken daemon.
    pub async fn run(self, token: CancellationToken) {
        let mut backoff = swarmgate_runtime::retry::default_backoff();
        loop {
            let mut listed = false;
            let end = self.session(&token, &mut listed).await;
            if listed {
                backoff = swarmgate_runtime::retry::default_backoff();
            }
            self.metrics.docker_up.set(0);
            if token.is_cancelled() || matches!(end, Err(SessionEnd::RegistryGone)) {
                return;
            }
            let delay = backoff.next().unwrap_or(Duration::from_secs(10));
            let error = end.err().map(|e| e.to_string()).unwrap_or_default();
            tracing::warn!(%error, delay_ms = delay.as_millis() as u64, "docker unavailable; resubscribing after backoff");
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            self.metrics.docker_reconnects.inc();
        }
    }

    async fn session(
        &self,
        token: &CancellationToken,
        listed: &mut bool,
    ) -> Result<(), SessionEnd> {
        let docker = docker::connect(&self.docker_host).await?;
        // Subscribe from a moment ago, then list: Docker replays what happened in between.
        let mut events = Box::pin(docker::events(&docker, docker::subscription_start()));
        self.list(&docker).await?;
        self.metrics.docker_up.set(1);
        *listed = true;
        tracing::info!(host = %self.docker_host, "watching docker events");
        let mut resync = self
            .resync
            .map(|every| tokio::time::interval_at(tokio::time::Instant::now() + every, every));
        loop {
            let resync_tick = async {
                match resync.as_mut() {
                    Some(i) => i.tick().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = token.cancelled() => return Ok(()),
                _ = resync_tick => {
                    tracing::debug!("periodic resync");
                    self.list(&docker).await?;
                }
                event = events.next() => {
                    let event = event.ok_or(SessionEnd::Closed)??;
                    self.metrics.docker_events.inc();
                    if let Some(classified) = docker::classify(&event) {
                        let lag_us = docker::event_lag(&event).map(|d| d.as_micros() as u64);
                        tracing::debug!(event = ?classified, lag_us, "docker event");
                        self.forward(&docker, classified).await?;
                    }
                }
            }
        }
    }

    /// Lists what runs: each container goes to the registry as soon as it is inspected, then
    /// the whole listing (which removes what no longer runs).
    async fn list(&self, docker: &Docker) -> Result<(), SessionEnd> {
        let gone = std::sync::atomic::AtomicBool::new(false);
        let running = docker::running_containers(docker, |info| async {
            if self.tx.send(Update::Running(info)).await.is_err() {
                gone.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .await?;
        if gone.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(SessionEnd::RegistryGone);
        }
        self.send(Update::Snapshot(running)).await
    }

    async fn forward(&self, docker: &Docker, event: DockerEvent) -> Result<(), SessionEnd> {
        match event {
            DockerEvent::Start(id) | DockerEvent::Paused(id, false) => {
                let started = std::time::Instant::now();
                let info = docker::inspect(docker, &id).await?;
                tracing::debug!(container = %id, inspect_us = started.elapsed().as_micros() as u64, "inspected");
                if let Some(info) = info {
                    self.send(Update::Running(info)).await?;
                }
                Ok(())
            }
            other => self.send(Update::Event(other)).await,
        }
    }

    async fn send(&self, update: Update) -> Result<(), SessionEnd> {
        self.tx
            .send(update)
            .await
            .map_err(|_| SessionEnd::RegistryGone)
    }
}
