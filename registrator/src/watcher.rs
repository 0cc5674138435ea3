//! The Docker watcher task: subscribes to container events, reads the recent stop requests from
//! Docker's event history, lists what runs, hands all of it to the registry in order, and when
//! the stream breaks backs off, resubscribes and lists again.

use std::time::{Duration, Instant, SystemTime};

use bollard::Docker;
use futures_util::StreamExt;
use swarmgate_runtime::deadline;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::container::{ContainerId, ContainerInfo};
use crate::docker::{self, DockerEvent};

/// How far back Docker's event history is read for stop requests at start-up: a grace period
/// longer than this, begun before the registrator started, goes unseen.
pub const STOP_HISTORY: Duration = Duration::from_secs(300);
/// A session that lasted this long (or delivered an event) resets the reconnect backoff; a
/// stream that breaks right after a successful listing does not.
pub const LASTING_SESSION: Duration = Duration::from_secs(30);

/// What the watcher tells the registry.
#[derive(Debug)]
pub enum Update {
    /// A container started or was unpaused (an event), freshly inspected.
    Started(ContainerInfo),
    /// A container seen running in a listing (which cannot tell a stopping container apart).
    Listed(ContainerInfo),
    /// A listing ended: these ran at that moment, nothing else did; the listing began at the
    /// instant given.
    ListingComplete(Vec<ContainerId>, tokio::time::Instant),
    /// Any other event.
    Event(DockerEvent),
    /// The event stream connected (after a listing) or broke.
    DockerUp(bool),
    /// `-ip NAME` resolved again, before a listing: the address of published ports.
    HostIp(String),
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
    /// `-ip` when it is a host name.
    pub ip_name: Option<String>,
    pub tx: mpsc::Sender<Update>,
}

/// What a session leaves for the next: whether it lasted, and from when history is unread.
struct Progress {
    lasted: bool,
    history_from: SystemTime,
}

impl Watcher {
    /// Watches until `token` is cancelled; never gives up on a broken daemon.
    pub async fn run(self, token: CancellationToken) {
        let mut backoff = swarmgate_runtime::retry::default_backoff();
        let mut progress = Progress {
            lasted: false,
            history_from: SystemTime::now() - STOP_HISTORY,
        };
        loop {
            let end = self.session(&token, &mut progress).await;
            if std::mem::take(&mut progress.lasted) {
                backoff = swarmgate_runtime::retry::default_backoff();
            }
            if token.is_cancelled() || matches!(end, Err(SessionEnd::RegistryGone)) {
                return;
            }
            if self.send(Update::DockerUp(false)).await.is_err() {
                return;
            }
            let delay = backoff.next().unwrap_or(Duration::from_secs(10));
            let error = end.err().map(|e| e.to_string()).unwrap_or_default();
            tracing::warn!(%error, delay_ms = delay.as_millis() as u64, "docker unavailable; resubscribing after backoff");
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn session(
        &self,
        token: &CancellationToken,
        progress: &mut Progress,
    ) -> Result<(), SessionEnd> {
        let docker = docker::connect(&self.docker_host).await?;
        // Subscribe from a moment ago, then list: Docker replays what happened in between.
        let mut events = Box::pin(docker::events(&docker, docker::subscription_start()));
        let unread_from = progress.history_from;
        for (id, signal) in docker::recent_stop_requests(&docker, unread_from).await {
            tracing::info!(container = %id, ?signal, "docker's event history shows a stop request");
            let event = match signal {
                None => DockerEvent::Stopping(id),
                Some(signal) => DockerEvent::Signalled { id, signal },
            };
            self.send(Update::Event(event)).await?;
        }
        self.list(&docker).await?;
        self.send(Update::DockerUp(true)).await?;
        tracing::info!(host = %self.docker_host, "watching docker events");
        let started = Instant::now();
        let mut resync = self
            .resync
            .map(|every| tokio::time::interval_at(tokio::time::Instant::now() + every, every));
        let result = loop {
            tokio::select! {
                _ = token.cancelled() => break Ok(()),
                _ = deadline::tick(resync.as_mut()) => {
                    tracing::debug!("periodic resync");
                    if let Err(e) = self.list(&docker).await {
                        break Err(e);
                    }
                }
                event = events.next() => {
                    let event = match event {
                        Some(Ok(event)) => event,
                        Some(Err(e)) => break Err(e.into()),
                        None => break Err(SessionEnd::Closed),
                    };
                    progress.lasted = true;
                    if let Some(classified) = docker::classify(&event) {
                        let lag_us = docker::event_lag(&event).map(|d| d.as_micros() as u64);
                        tracing::debug!(event = ?classified, lag_us, "docker event");
                        if let Err(e) = self.forward(&docker, classified).await {
                            break Err(e);
                        }
                    }
                }
            }
        };
        progress.lasted |= started.elapsed() >= LASTING_SESSION;
        // What happened while no stream was up is read from history by the next session.
        progress.history_from = SystemTime::now() - Duration::from_secs(1);
        result
    }

    /// Lists what runs: each container goes to the registry as soon as it is inspected, then
    /// the ids of all of them (what is not among them no longer runs).
    async fn list(&self, docker: &Docker) -> Result<(), SessionEnd> {
        let started = tokio::time::Instant::now();
        self.resolve_ip().await?;
        let gone = std::sync::atomic::AtomicBool::new(false);
        let running = docker::running_containers(docker, |info| async {
            if self.tx.send(Update::Listed(info)).await.is_err() {
                gone.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .await?;
        if gone.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(SessionEnd::RegistryGone);
        }
        self.send(Update::ListingComplete(running, started)).await
    }

    /// Resolves `-ip NAME` again; a failure keeps the last address, with a warning.
    async fn resolve_ip(&self) -> Result<(), SessionEnd> {
        let Some(name) = &self.ip_name else {
            return Ok(());
        };
        let addrs: Vec<_> = match tokio::net::lookup_host((name.as_str(), 0)).await {
            Ok(a) => a.collect(),
            Err(e) => {
                tracing::warn!(%name, error = %e, "-ip no longer resolves; keeping the last address");
                return Ok(());
            }
        };
        match addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()) {
            Some(addr) => self.send(Update::HostIp(addr.ip().to_string())).await,
            None => Ok(()),
        }
    }

    async fn forward(&self, docker: &Docker, event: DockerEvent) -> Result<(), SessionEnd> {
        match event {
            DockerEvent::Start(id) | DockerEvent::Paused(id, false) => {
                let started = std::time::Instant::now();
                let info = docker::inspect(docker, &id).await?;
                tracing::debug!(container = %id, inspect_us = started.elapsed().as_micros() as u64, "inspected");
                if let Some(info) = info {
                    self.send(Update::Started(info)).await?;
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
