//! The registry's periodic and final work: verifying what Consul holds (repairing what it lost,
//! and with `-cleanup` removing what nothing backs, once a listing has completed), refreshing the
//! Docker-health TTLs, and draining at shutdown.

use futures_util::{stream, StreamExt};
use swarmgate_consul::KvOp;
use tokio::time::Instant;

use crate::reconcile::{compare, read_view, ConsulView};
use crate::registry::{Outcome, Registry, MAX_IN_FLIGHT};
use crate::sync::{converge, refresh_ttl, Applied};

/// How long shutdown waits for in-flight calls and for `--deregister-on-shutdown`.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Registry {
    pub(crate) fn start_verify(&mut self, full: bool) {
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

    pub(crate) fn finish_verify(&mut self, view: ConsulView, full: bool, started: Instant) {
        if full {
            self.last_full_sync_unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs());
        }
        if let Some((began, _)) = self
            .listing
            .filter(|(_, listed)| full && started >= *listed)
        {
            self.metrics
                .sync_duration
                .observe(began.elapsed().as_secs_f64());
            self.listing = None;
        }
        let findings = compare(&view, &self.desired);
        let settled = |r: &Registry, id: &str| {
            !r.in_flight.contains(id)
                && !r.dirty.contains(id)
                && !r.failed.contains(id)
                && !r.refused.contains_key(id)
                && r.last_sync.get(id).is_none_or(|t| *t < started)
        };
        let repair: Vec<String> = findings
            .repair
            .into_iter()
            .filter(|id| settled(self, id))
            .collect();
        let rewrite: Vec<String> = findings
            .rewrite
            .into_iter()
            .filter(|k| self.records.settled(k, started))
            .collect();
        if !repair.is_empty() || !rewrite.is_empty() {
            tracing::info!(
                services = repair.len(),
                records = rewrite.len(),
                "consul lacks or changed services; re-sending them"
            );
            for id in repair {
                self.metrics.repairs.inc();
                self.applied.remove(&id);
                self.dirty.insert(id);
            }
            for key in rewrite {
                self.records.touch(key, true);
            }
            self.want_full_verify |= !full;
        }
        if !self.settings.cleanup || !self.listed_once {
            return;
        }
        for (id, kv_key) in findings.orphans {
            if settled(self, &id) && !self.applied.contains_key(&id) {
                tracing::info!(service_id = %id, "removing service whose container no longer runs");
                self.applied.insert(id.clone(), Applied::stray());
                self.dirty.insert(id);
                if let Some(key) = kv_key {
                    self.records.touch(key, false);
                }
            }
        }
        for key in findings.orphan_keys {
            if self.records.settled(&key, started) {
                self.records.touch(key, false);
            }
        }
    }

    /// Refreshes every Docker-health TTL in one job, `MAX_IN_FLIGHT` at a time.
    pub(crate) fn refresh_ttls(&mut self) {
        let due: Vec<_> = self
            .desired
            .iter()
            .filter(|(id, w)| {
                w.health.is_some()
                    && self
                        .applied
                        .get(*id)
                        .is_some_and(|a| a.health() == w.health)
            })
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

    /// Waits (bounded) for calls in flight; with `--deregister-on-shutdown`, removes every
    /// service of this node and its record.
    pub(crate) async fn drain(mut self) {
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
                let have = Applied::of(want);
                if let Err(e) = converge(client, id, None, Some(&have)).await {
                    tracing::warn!(service_id = %id, error = %e, "deregistration at shutdown failed");
                }
            })
            .buffer_unordered(MAX_IN_FLIGHT)
            .collect::<Vec<()>>();
        let deletes: Vec<KvOp> = self
            .desired
            .iter()
            .filter_map(|(_, w)| w.service.kv.as_ref())
            .map(|(key, _)| KvOp::Delete { key: key.clone() })
            .collect();
        let records = async {
            if let Err(e) = client.kv_txn_chunked(&deletes).await {
                tracing::warn!(error = %e, "removing kv records at shutdown failed");
            }
        };
        let both = futures_util::future::join(deregister, records);
        if tokio::time::timeout_at(deadline, both).await.is_err() {
            tracing::warn!("deregistration at shutdown did not finish in time");
        }
    }
}
