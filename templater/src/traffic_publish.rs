//! The edge's traffic in KV: while `templater promote` walks a service (its settings hold a
//! `promotion`), every edge writes that service's per-colour totals, with the settings index
//! they are as of, to `<prefix>-templater/traffic/<service>/<edge>` every second when they
//! changed, so that the CLI can sum one window over every edge ([`TrafficRecord`]). Records of
//! services no longer promoted are deleted. Other services are not written: at 5,000
//! services a second's writes for all of them would be Consul's whole write budget.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use swarmgate_consul::Client;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::keys::Keys;
use crate::records;
use crate::settings::Settings;
use crate::traffic::{Counts, Traffic, POLL};

/// One edge's traffic for one service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrafficRecord {
    pub edge: String,
    /// The counting these totals belong to (one templater process): when it changes, the
    /// totals began again from zero.
    pub generation: String,
    /// When the totals were read (unix milliseconds).
    pub at_unix_ms: u64,
    /// The settings index the edge served before the totals were read: everything counted
    /// after them was served under that index or a later one.
    pub settings_index: u64,
    /// Totals per colour since `generation` began.
    pub colors: BTreeMap<String, Counts>,
    /// The last minute per colour (a rolling window, for people reading KV).
    #[serde(default)]
    pub last_minute: BTreeMap<String, Counts>,
}

impl TrafficRecord {
    /// The same totals at the same index (the time and the rolling window aside).
    fn same(&self, other: &TrafficRecord) -> bool {
        self.settings_index == other.settings_index
            && self.generation == other.generation
            && self.colors == other.colors
    }
}

/// Writes the traffic records of promoted services until cancelled, then deletes them.
pub struct TrafficPublisher {
    pub client: Client,
    pub keys: Keys,
    pub edge: String,
    pub traffic: Arc<Traffic>,
    pub settings: watch::Receiver<Option<Arc<Settings>>>,
}

impl TrafficPublisher {
    pub async fn run(self, token: CancellationToken) {
        let generation = format!("{}-{}", records::unix_now_ms(), std::process::id());
        let mut written: BTreeMap<String, TrafficRecord> = BTreeMap::new();
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tick.tick() => {}
            }
            let promoted: BTreeSet<String> = self
                .settings
                .borrow()
                .as_ref()
                .map(|s| {
                    s.iter()
                        .filter(|(_, d)| d.promoting)
                        .map(|(name, _)| name.clone())
                        .collect()
                })
                .unwrap_or_default();
            let mut puts = Vec::new();
            let mut next = BTreeMap::new();
            for service in &promoted {
                let Some(totals) = self.traffic.service_totals(service) else {
                    continue;
                };
                let record = TrafficRecord {
                    edge: self.edge.clone(),
                    generation: generation.clone(),
                    at_unix_ms: records::unix_now_ms(),
                    settings_index: totals.settings_index,
                    colors: totals.colors,
                    last_minute: self.traffic.service_window(service),
                };
                match written.get(service) {
                    Some(old) if old.same(&record) => {
                        next.insert(service.clone(), old.clone());
                    }
                    _ => {
                        let value = serde_json::to_vec(&record).expect("json always serialises");
                        puts.push((self.keys.traffic(service, &self.edge), value));
                        next.insert(service.clone(), record);
                    }
                }
            }
            let deletes: Vec<String> = written
                .keys()
                .filter(|s| !next.contains_key(*s))
                .map(|s| self.keys.traffic(s, &self.edge))
                .collect();
            if puts.is_empty() && deletes.is_empty() {
                continue;
            }
            match records::write(&self.client, puts, deletes).await {
                Ok(()) => written = next,
                // Tried again at the next tick (what was not written still differs).
                Err(e) => tracing::warn!(error = %e, "writing traffic records failed; retrying"),
            }
        }
        let deletes: Vec<String> = written
            .keys()
            .map(|s| self.keys.traffic(s, &self.edge))
            .collect();
        if !deletes.is_empty() {
            let withdraw = records::write(&self.client, Vec::new(), deletes);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), withdraw).await;
        }
    }
}
