//! registrator: watches Docker and keeps Consul's catalog and KV equal to the containers that run.
//!
//! # Layout
//! - [`config`]: flags (registrator's spellings), environment, the checked [`config::Config`].
//! - [`labels`]: `SERVICE_*` labels and env vars, and their validation.
//! - [`container`]: the facts about a container that decide its services.
//! - [`phase`]: a container's phase (running, paused, stop requested, exited) and exit rules.
//! - [`template`]: `-tags` as a Go-template subset over a container's inspect data.
//! - [`service`]: the service model: names, ids, addresses, tags, meta, KV records.
//! - [`kv`]: the map of KV keys: prefix, `<prefix>/<name>/<id>`, encoding, parsing.
//! - [`checks`]: Consul checks from labels, and the Docker-health mirror.
//! - [`docker`]: bollard calls: connect, list, inspect, events.
//! - [`watcher`]: the task that follows Docker and feeds the registry.
//! - [`desired`]: what should be registered, updated by each event and listing.
//! - [`skipped`]: the one event for a service left out (warning and counter together).
//! - [`sync`]: converging one service on the Consul agent.
//! - [`records`]: converging KV records, in transactions of up to 64 operations.
//! - [`reconcile`]: reading what Consul holds and comparing it with the desired state.
//! - [`registry`]: the task that owns the state and drives Consul.
//! - [`upkeep`]: the registry's verify, TTL refresh and shutdown drain.
//! - [`report`]: `/api/state`, answered by the registry task.
//! - [`health`]: the registry's condition, and what `/health` and `/metrics` answer.
//! - [`metrics`]: the metric families (counters, gauges, latency histograms).

pub mod checks;
pub mod config;
pub mod container;
pub mod desired;
pub mod docker;
pub mod health;
pub mod kv;
pub mod labels;
pub mod metrics;
pub mod phase;
pub mod reconcile;
pub mod records;
pub mod registry;
pub mod report;
pub mod service;
pub mod skipped;
pub mod sync;
pub mod template;
pub mod upkeep;
pub mod watcher;

use std::sync::Arc;

use swarmgate_consul::Client;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::Config;
use crate::desired::DesiredState;
use crate::health::{Condition, Endpoint};
use crate::metrics::Metrics;
use crate::registry::{Registry, RegistrySettings};
use crate::watcher::Watcher;

/// Why the registrator stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Consul(#[from] swarmgate_consul::Error),
    #[error("consul at {address} has no leader after {attempts} tries")]
    NoLeader { address: String, attempts: u32 },
    #[error("metrics endpoint: {0}")]
    Metrics(#[source] std::io::Error),
}

/// Runs the registrator until `token` is cancelled.
pub async fn run(config: Config, token: CancellationToken) -> Result<(), RunError> {
    for flag in &config.ignored_flags {
        tracing::warn!(%flag, "accepted for gliderlabs compatibility and ignored: Consul has no service TTL to refresh");
    }
    let client = Client::new(&config.consul)?;
    if !wait_for_leader(&client, &config, &token).await? {
        return Ok(());
    }
    let metrics = Arc::new(Metrics::default());
    let (condition_tx, condition) = watch::channel(Condition::default());
    let (asks, asks_rx) = mpsc::channel(8);
    if let Some(addr) = config.metrics_addr {
        let endpoint = Endpoint {
            metrics: metrics.clone(),
            condition,
        };
        let routes =
            swarmgate_runtime::http::status_routes(Arc::new(endpoint)).merge(report::routes(asks));
        swarmgate_runtime::http::serve(addr, routes, token.clone())
            .await
            .map_err(RunError::Metrics)?;
    }
    let (tx, rx) = mpsc::channel(1024);
    let tracker = TaskTracker::new();
    let watcher = Watcher {
        docker_host: config.docker_host.clone(),
        resync: config.resync,
        ip_name: config.ip_name.clone(),
        tx,
    };
    tracker.spawn(
        watcher
            .run(token.clone())
            .instrument(tracing::info_span!("docker")),
    );
    let desired = DesiredState::new(config.model.clone(), config.deregister);
    let settings = RegistrySettings {
        verify_interval: config.verify_interval,
        cleanup: config.cleanup,
        deregister_on_shutdown: config.deregister_on_shutdown,
    };
    tracing::info!(consul = %client.address(), node = %config.model.node, "registrator started");
    Registry::new(client, desired, settings, metrics, condition_tx)
        .run(rx, asks_rx, token.clone())
        .instrument(tracing::info_span!("registry"))
        .await;
    token.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// Waits for a Consul leader, trying `-retry-attempts` more times `-retry-interval` apart.
/// Answers false when cancelled meanwhile.
async fn wait_for_leader(
    client: &Client,
    config: &Config,
    token: &CancellationToken,
) -> Result<bool, RunError> {
    let mut tries = 0u32;
    loop {
        let error = match client.leader().await {
            Ok(Some(_)) => return Ok(true),
            Ok(None) => "no leader yet".to_string(),
            Err(e) if e.is_retryable() => e.to_string(),
            Err(e) => return Err(e.into()),
        };
        tries += 1;
        if config.retry_attempts.is_some_and(|max| tries > max) {
            return Err(RunError::NoLeader {
                address: client.address().to_string(),
                attempts: tries,
            });
        }
        tracing::warn!(%error, tries, "waiting for a consul leader");
        tokio::select! {
            _ = token.cancelled() => return Ok(false),
            _ = tokio::time::sleep(config.retry_interval) => {}
        }
    }
}
