//! Watching Consul with a constant number of connections however many services there are:
//! two blocking queries (the service list, every check's state) tell *when* something changed;
//! a snapshot (nodes, each node's services, check states; bounded concurrency) says *what*.
//! The guard judges each snapshot before it is published. A third blocking query follows the
//! deploy settings in KV.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{stream, StreamExt, TryStreamExt};
use swarmgate_consul::catalog::CheckState;
use swarmgate_consul::watch::{watch, Change};
use swarmgate_consul::{Client, QueryOptions};
use tokio::sync::{mpsc, watch as latest};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::guard::{Guard, Verdict};
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::model::{self, Catalog, Dropped};
use crate::settings::{self, Settings};

/// What the catalog watcher publishes: the newest view it accepts, and whether it is holding
/// an older one (no leader, a reset, a mass loss) instead of what Consul answers now.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    pub catalog: Arc<Catalog>,
    pub held: bool,
}

/// Node listings fetched at once during a snapshot.
const SNAPSHOT_CONCURRENCY: usize = 8;

/// A snapshot of the catalog, and whether every answer had a known leader.
pub async fn fetch_snapshot(
    client: &Client,
    consistent: bool,
) -> swarmgate_consul::Result<(Catalog, Vec<Dropped>, bool)> {
    let opts = QueryOptions {
        consistent,
        ..QueryOptions::default()
    };
    let (nodes, meta) = client.catalog_nodes(&opts).await?;
    if nodes.is_empty() {
        // Every cluster has at least the agent's own node: this is ACL filtering, not truth.
        return Err(swarmgate_consul::Error::Filtered(
            "an empty node list".into(),
        ));
    }
    let per_node: Vec<_> = stream::iter(nodes)
        .map(|node| {
            let opts = opts.clone();
            async move {
                let (services, meta) = client.catalog_node_services(&node.node, &opts).await?;
                Ok::<_, swarmgate_consul::Error>(((node, services), meta.known_leader))
            }
        })
        .buffer_unordered(SNAPSHOT_CONCURRENCY)
        .try_collect()
        .await?;
    // Checks are read after services, so no instance is newer than its health.
    let (checks, check_meta) = client.health_state_any(&opts).await?;
    let leader = meta.known_leader && check_meta.known_leader && per_node.iter().all(|(_, l)| *l);
    let nodes: Vec<_> = per_node.into_iter().map(|(n, _)| n).collect();
    let (catalog, dropped) = model::build(nodes, &checks);
    Ok((catalog, dropped, leader))
}

/// A failed watch read: an operator must act on a permission problem; anything else is retried
/// quietly (the snapshot loop reports outages).
fn log_watch_error(e: &swarmgate_consul::Error, what: &str) {
    if e.is_permission_denied() {
        tracing::error!(error = %e, watch = what, "consul denied a read; the token needs service_prefix and node_prefix read and key_prefix write on the KV prefix");
    } else {
        tracing::debug!(error = %e, watch = what, "consul watch failed; retrying");
    }
}

/// The statuses that matter in a health answer (outputs change without changing routing).
fn fingerprint(checks: &[CheckState]) -> Vec<(String, String, String)> {
    let mut f: Vec<_> = checks
        .iter()
        .map(|c| (c.node.clone(), c.check_id.clone(), c.status.clone()))
        .collect();
    f.sort();
    f
}

/// Publishes the guarded catalog view.
pub struct CatalogWatcher {
    pub client: Client,
    pub wait: Duration,
    pub guard: Guard,
    pub tx: latest::Sender<Option<View>>,
    pub metrics: Arc<Metrics>,
}

impl CatalogWatcher {
    pub async fn run(mut self, token: CancellationToken) {
        let (trigger_tx, mut trigger) = mpsc::channel::<()>(1);
        let reset = Arc::new(AtomicBool::new(false));
        self.spawn_triggers(&trigger_tx, &reset, &token);
        let mut warned: HashSet<Dropped> = HashSet::new();
        let mut last: Option<Arc<Catalog>> = None;
        let mut recheck: Option<Instant> = None;
        let mut backoff = swarmgate_runtime::retry::default_backoff();
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                t = trigger.recv() => if t.is_none() { return },
                _ = swarmgate_runtime::deadline::sleep_until(recheck) => {}
            }
            recheck = None;
            match self
                .snapshot_judged(last.as_deref(), reset.swap(false, Ordering::Relaxed))
                .await
            {
                Ok(Some((catalog, dropped))) => {
                    backoff = swarmgate_runtime::retry::default_backoff();
                    for d in dropped.into_iter().filter(|d| warned.insert(d.clone())) {
                        tracing::warn!(what = %d.what, reason = %d.why, "left out of nginx config");
                    }
                    if last.as_deref() != Some(&catalog) {
                        self.metrics.services.set(catalog.services.len() as i64);
                        last = Some(Arc::new(catalog));
                    }
                    self.publish(last.clone(), false);
                }
                Ok(None) => {
                    self.publish(last.clone(), true);
                    recheck = Some(Instant::now() + Duration::from_secs(1));
                }
                Err(e) => {
                    self.metrics.consul_errors.inc();
                    self.metrics.consul_up.set(0);
                    let delay = backoff.next().unwrap_or(Duration::from_secs(10));
                    if e.is_permission_denied() {
                        tracing::error!(error = %e, delay_ms = delay.as_millis() as u64, "consul snapshot refused; keeping the last view (the token needs service_prefix and node_prefix read)");
                    } else {
                        tracing::warn!(error = %e, delay_ms = delay.as_millis() as u64, "consul snapshot failed; keeping the last view");
                    }
                    recheck = Some(Instant::now() + delay);
                }
            }
        }
    }

    /// Publishes the view when it differs from the one published last.
    fn publish(&self, catalog: Option<Arc<Catalog>>, held: bool) {
        let Some(catalog) = catalog else { return };
        self.metrics.held.set(i64::from(held));
        let view = View { catalog, held };
        if self.tx.borrow().as_ref() != Some(&view) {
            self.tx.send_replace(Some(view));
        }
    }

    /// A snapshot the guard accepts, or `None` while it holds the last view.
    async fn snapshot_judged(
        &mut self,
        last: Option<&Catalog>,
        reset: bool,
    ) -> swarmgate_consul::Result<Option<(Catalog, Vec<Dropped>)>> {
        let started = std::time::Instant::now();
        let (catalog, dropped, leader) = fetch_snapshot(&self.client, false).await?;
        tracing::debug!(
            services = catalog.services.len(),
            instances = catalog.instance_count(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "snapshot"
        );
        self.metrics.consul_up.set(1);
        let mut verdict = self
            .guard
            .judge(last, &catalog, leader, reset, false, Instant::now());
        let mut answer = (catalog, dropped);
        if verdict == Verdict::Confirm {
            let (catalog, dropped, leader) = fetch_snapshot(&self.client, true).await?;
            verdict = self
                .guard
                .judge(last, &catalog, leader, false, true, Instant::now());
            answer = (catalog, dropped);
        }
        match verdict {
            Verdict::Accept => Ok(Some(answer)),
            Verdict::Hold(why) => {
                tracing::warn!(reason = %why, "holding the last good view");
                Ok(None)
            }
            Verdict::Confirm => unreachable!("a confirmed read is never asked to confirm again"),
        }
    }

    fn spawn_triggers(
        &self,
        trigger: &mpsc::Sender<()>,
        reset: &Arc<AtomicBool>,
        token: &CancellationToken,
    ) {
        let on_change = |trigger: mpsc::Sender<()>, reset: Arc<AtomicBool>| {
            move |change: Change| {
                if change.reset {
                    reset.store(true, Ordering::Relaxed);
                }
                let _ = trigger.try_send(());
            }
        };
        let metrics = self.metrics.clone();
        let on_error = move |e: &swarmgate_consul::Error| {
            metrics.consul_errors.inc();
            metrics.consul_up.set(0);
            log_watch_error(e, "catalog");
        };
        let (client, wait) = (self.client.clone(), self.wait);
        let notify = on_change(trigger.clone(), reset.clone());
        tokio::spawn(watch(
            wait,
            move |opts| {
                let c = client.clone();
                async move { c.catalog_services(&opts).await }
            },
            move |_, change| notify(change),
            on_error.clone(),
            token.clone(),
        ));
        let client = self.client.clone();
        let notify = on_change(trigger.clone(), reset.clone());
        let mut last_fp = None;
        tokio::spawn(watch(
            wait,
            move |opts| {
                let c = client.clone();
                async move { c.health_state_any(&opts).await }
            },
            move |checks: Vec<CheckState>, change| {
                let fp = fingerprint(&checks);
                if last_fp.as_ref() != Some(&fp) || change.reset {
                    last_fp = Some(fp);
                    notify(change);
                }
            },
            on_error,
            token.clone(),
        ));
    }
}

/// Follows the deploy settings and publishes them when they change.
pub async fn watch_settings(
    client: Client,
    keys: Keys,
    colors: Vec<String>,
    wait: Duration,
    tx: latest::Sender<Option<Arc<Settings>>>,
    metrics: Arc<Metrics>,
    token: CancellationToken,
) {
    let dir = keys.settings_dir();
    let mut warned = HashSet::new();
    let on_error = {
        let metrics = metrics.clone();
        move |e: &swarmgate_consul::Error| {
            metrics.consul_errors.inc();
            log_watch_error(e, "deploy settings");
        }
    };
    watch(
        wait,
        |opts| {
            let (c, dir) = (client.clone(), dir.clone());
            async move { c.kv_list(&dir, &opts, true).await }
        },
        |pairs, _| {
            let previous = tx.borrow().clone().unwrap_or_default();
            let (parsed, errors) = settings::parse(&pairs, &keys, &colors, &previous);
            for e in errors.into_iter().filter(|e| warned.insert(e.clone())) {
                tracing::error!(key = %e.key, reason = %e.reason, "bad deploy setting");
                metrics.setting_errors.inc();
            }
            if tx.borrow().as_deref() != Some(&parsed) {
                tx.send_replace(Some(Arc::new(parsed)));
            }
        },
        on_error,
        token,
    )
    .await;
}
