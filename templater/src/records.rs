//! What an edge publishes in KV (keys in [`crate::keys`]), read back by `status`,
//! `--wait-live` and the other edges' operators: its status record (what it runs with, its
//! last install and error, a heartbeat) and, per service, the plan it has live and the
//! settings index that plan follows. Records are written only when they change (the heartbeat
//! aside), in transactions of at most 64 operations.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use swarmgate_consul::{Client, KvOp};

use crate::keys::Keys;
use crate::plan::{PlanOptions, ServicePlan};

/// How often an edge refreshes its status record even when nothing changed.
pub const HEARTBEAT: Duration = Duration::from_secs(30);
/// A status record older than this is an edge that is gone (killed, partitioned).
pub const STALE_AFTER: Duration = Duration::from_secs(90);
/// Consul's limits on one transaction.
const TXN_OPS: usize = 64;
const TXN_BYTES: usize = 384 << 10;

/// An edge's status record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgeStatus {
    pub name: String,
    /// The options its plans are made with.
    pub options: PlanOptions,
    /// `reload` or `lua`.
    pub dataplane: String,
    pub started_unix: u64,
    pub heartbeat_unix: u64,
    pub last_install_unix: Option<u64>,
    /// The last pass's failure; `None` once a pass succeeds.
    pub last_error: Option<String>,
    pub last_error_unix: Option<u64>,
    /// Services served.
    pub services: usize,
    /// Services not served as Consul says, with the reason (excluded, or held at an older plan).
    pub not_served: BTreeMap<String, String>,
    /// True while it keeps its last catalog view (no leader, a reset, a mass loss).
    pub view_held: bool,
    /// The data plane's state version nginx holds (Lua data plane).
    pub live_version: Option<u64>,
    /// When this edge last reloaded nginx, and last pushed a state to it (Lua data plane).
    #[serde(default)]
    pub last_reload_unix: Option<u64>,
    #[serde(default)]
    pub last_push_unix: Option<u64>,
}

impl EdgeStatus {
    /// True when the record's heartbeat is recent enough to count the edge as running.
    pub fn is_fresh(&self, now_unix: u64) -> bool {
        now_unix.saturating_sub(self.heartbeat_unix) <= STALE_AFTER.as_secs()
    }
}

/// What an edge has live for one service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Installed {
    pub edge: String,
    /// The settings index this plan follows: a deploy that wrote index N is live on this edge
    /// once this is N or more.
    pub settings_index: u64,
    pub live_unix: u64,
    /// The first data-plane state version that held it (Lua data plane).
    pub version: Option<u64>,
    /// The plan (servers without their tags and meta, which Consul holds).
    pub plan: ServicePlan,
}

impl Installed {
    /// The record for `plan`; tags and meta are left out to keep it small.
    pub fn of(edge: &str, plan: &ServicePlan, version: Option<u64>) -> Installed {
        let mut plan = plan.clone();
        for s in &mut plan.instances {
            s.tags.clear();
            s.meta.clear();
        }
        Installed {
            edge: edge.to_string(),
            settings_index: plan.settings_index,
            live_unix: unix_now(),
            version,
            plan,
        }
    }

    /// The same plan at the same settings index (when, and in which data-plane version, it
    /// went live aside: a later version still holds it, so records are not rewritten for it).
    pub fn same(&self, other: &Installed) -> bool {
        self.settings_index == other.settings_index && self.plan == other.plan
    }
}

/// Writes `puts` and deletes `deletes` in as few transactions as Consul's limits allow.
pub async fn write(
    client: &Client,
    puts: Vec<(String, Vec<u8>)>,
    deletes: Vec<String>,
) -> swarmgate_consul::Result<()> {
    let ops = puts
        .into_iter()
        .map(|(key, value)| KvOp::Set { key, value })
        .chain(deletes.into_iter().map(|key| KvOp::Delete { key }));
    let mut batch: Vec<KvOp> = Vec::new();
    let mut bytes = 0;
    for op in ops {
        let size = match &op {
            KvOp::Set { key, value }
            | KvOp::Cas { key, value, .. }
            | KvOp::Lock { key, value, .. } => key.len() + value.len(),
            KvOp::Delete { key } | KvOp::CheckIndex { key, .. } => key.len(),
        };
        if size > TXN_BYTES {
            // Too big for a transaction: a plain write takes values up to 512 KiB.
            if let KvOp::Set { key, value } = &op {
                client.kv_put(key, value).await?;
                continue;
            }
        }
        if !batch.is_empty() && (batch.len() == TXN_OPS || bytes + size > TXN_BYTES) {
            client.kv_txn(&std::mem::take(&mut batch)).await?;
            bytes = 0;
        }
        bytes += size;
        batch.push(op);
    }
    if !batch.is_empty() {
        client.kv_txn(&batch).await?;
    }
    Ok(())
}

/// Reads every edge's status record and every installed record under `keys`.
pub async fn read_all(
    client: &Client,
    keys: &Keys,
) -> swarmgate_consul::Result<(Vec<EdgeStatus>, Vec<Installed>)> {
    let (pairs, _) = client
        .kv_list(&keys.records_dir(), &Default::default(), true)
        .await?;
    let mut edges = Vec::new();
    let mut installed = Vec::new();
    for p in pairs {
        if keys.parse_status(&p.key).is_some() {
            if let Ok(s) = serde_json::from_slice(&p.value) {
                edges.push(s);
            }
        } else if keys.parse_installed(&p.key).is_some() {
            if let Ok(i) = serde_json::from_slice(&p.value) {
                installed.push(i);
            }
        }
    }
    Ok((edges, installed))
}

pub fn unix_now() -> u64 {
    unix_now_ms() / 1000
}

pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
