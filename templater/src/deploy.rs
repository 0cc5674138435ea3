//! The deploy CLI: `flip`, `canary` and `rollback` change a service's settings in one KV
//! transaction guarded by check-and-set, so two deploys never interleave; `--wait-live` then
//! waits until every running templater acknowledges the change as installed in nginx.

use std::time::Duration;

use std::cell::RefCell;

use swarmgate_consul::watch::watch;
use swarmgate_consul::{Client, KvOp, QueryOptions};
use tokio_util::sync::CancellationToken;

use crate::keys::{Field, Keys};
use crate::plan::color_of;
use crate::records::{unix_now, EdgeStatus, Installed};
use crate::settings::{parse_canary, parse_color};

/// A deploy command's failure, with the exit code a CI step sees.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{0}")]
    Invalid(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not live after {0:?}: {1}")]
    NotLive(Duration, String),
    /// A promotion step failed (or was aborted); traffic is back on the active colour.
    #[error("rolled back: {0}")]
    StepFailed(String),
    /// A promotion reached no verdict in time; traffic is back on the active colour.
    #[error("inconclusive, rolled back: {0}")]
    Inconclusive(String),
    /// Stopped by a signal (after rolling back); the exit code is 128 + the signal.
    #[error("stopped by {0}, rolled back")]
    Signalled(&'static str, u8),
    #[error("{0}; the token needs key_prefix write on the KV prefix and service_prefix/node_prefix read")]
    Denied(swarmgate_consul::Error),
    #[error(transparent)]
    Consul(swarmgate_consul::Error),
}

impl From<swarmgate_consul::Error> for DeployError {
    fn from(e: swarmgate_consul::Error) -> Self {
        if e.is_permission_denied() {
            DeployError::Denied(e)
        } else {
            DeployError::Consul(e)
        }
    }
}

impl DeployError {
    /// Exit codes, documented in `--help`.
    pub fn exit_code(&self) -> u8 {
        match self {
            DeployError::Consul(_) | DeployError::Denied(_) => 1,
            DeployError::Invalid(_) => 2,
            DeployError::Refused(_) => 3,
            DeployError::Conflict(_) => 4,
            DeployError::NotLive(..) => 5,
            DeployError::StepFailed(_) => 6,
            DeployError::Inconclusive(_) => 7,
            DeployError::Signalled(_, code) => *code,
        }
    }
}

/// What the deploy commands share.
#[derive(Clone, Debug)]
pub struct Deploy {
    pub client: Client,
    pub keys: Keys,
    pub colors: Vec<String>,
}

/// A settings change that was made: the new settings index, which colours traffic moved
/// between (for the history), and the message the command prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub index: u64,
    pub from: Option<String>,
    pub to: Option<String>,
    pub detail: String,
    pub message: String,
}

/// A KV value with its ModifyIndex (0 when absent).
pub(crate) struct Current {
    pub value: Option<String>,
    pub index: u64,
}

impl Deploy {
    pub(crate) async fn read(&self, service: &str, field: Field) -> Result<Current, DeployError> {
        let pair = self
            .client
            .kv_get(&self.keys.setting(service, field))
            .await?;
        Ok(Current {
            value: pair
                .as_ref()
                .map(|p| String::from_utf8_lossy(&p.value).trim().to_string()),
            index: pair.map_or(0, |p| p.modify_index),
        })
    }

    /// Refuses a service name Consul cannot hold (exit 2).
    pub(crate) fn check_service(service: &str) -> Result<(), DeployError> {
        swarmgate_consul::rules::service_name(service)
            .map_err(|e| DeployError::Invalid(format!("service {service:?}: {e}")))
    }

    /// Passing instances of `service` with colour `color`.
    async fn passing(&self, service: &str, color: &str) -> Result<usize, DeployError> {
        let (entries, _) = self
            .client
            .health_service(service, &QueryOptions::default(), true)
            .await?;
        Ok(entries
            .iter()
            .filter(|e| {
                color_of(e.service.tags.as_deref().unwrap_or_default(), &self.colors)
                    .is_some_and(|c| c == color)
            })
            .count())
    }

    pub(crate) async fn require_passing(
        &self,
        service: &str,
        color: &str,
        force: bool,
    ) -> Result<(), DeployError> {
        if force {
            return Ok(());
        }
        match self.passing(service, color).await? {
            0 => Err(DeployError::Refused(format!("{service} has no passing {color} instance; traffic would fail (use --force to flip anyway)"))),
            _ => Ok(()),
        }
    }

    /// Makes `color` (default: the other colour) active with canary 0. Answers the new
    /// settings index and a message.
    pub async fn flip(
        &self,
        service: &str,
        color: Option<&str>,
        force: bool,
    ) -> Result<Change, DeployError> {
        Self::check_service(service)?;
        let active = self.read(service, Field::Active).await?;
        let current = active
            .value
            .as_deref()
            .and_then(|v| parse_color(v, &self.colors).ok());
        let target = match color {
            Some(c) => parse_color(c, &self.colors).map_err(DeployError::Invalid)?,
            None => self.other_color(current.as_deref(), service)?,
        };
        self.require_passing(service, &target, force).await?;
        let ended = self.promotion_guard(service).await?;
        self.commit(service, &target, current.as_deref(), active.index, ended)
            .await?;
        let was = current
            .as_deref()
            .map_or_else(|| "no active colour".to_string(), |c| format!("was {c}"));
        let index = self.read(service, Field::Active).await?.index;
        Ok(Change {
            index,
            message: format!("{service}: {target} is active ({was}); canary 0"),
            from: current,
            to: Some(target),
            detail: forced(force),
        })
    }

    /// Back to the previous colour, canary 0; during a promotion (running or interrupted),
    /// back to the colour it started from, ending the promotion.
    pub async fn rollback(&self, service: &str, force: bool) -> Result<Change, DeployError> {
        Self::check_service(service)?;
        if let Some(found) = crate::promote::record::read(&self.client, &self.keys, service).await?
        {
            return self.abort_promotion(service, &found).await;
        }
        let active = self.read(service, Field::Active).await?;
        let previous = self.read(service, Field::Previous).await?;
        let target = previous
            .value
            .as_deref()
            .and_then(|p| parse_color(p, &self.colors).ok())
            .ok_or_else(|| {
                DeployError::Refused(format!("{service} has no previous colour to roll back to"))
            })?;
        self.require_passing(service, &target, force).await?;
        let current = active
            .value
            .as_deref()
            .and_then(|v| parse_color(v, &self.colors).ok());
        self.commit(
            service,
            &target,
            current.as_deref(),
            active.index,
            Vec::new(),
        )
        .await?;
        let index = self.read(service, Field::Active).await?.index;
        Ok(Change {
            index,
            message: format!("{service}: rolled back to {target}; canary 0"),
            from: current,
            to: Some(target),
            detail: forced(force),
        })
    }

    /// Sends `percent` of traffic to the colours that are not active.
    pub async fn canary(&self, service: &str, percent: &str) -> Result<Change, DeployError> {
        Self::check_service(service)?;
        let percent =
            parse_canary(percent).map_err(|e| DeployError::Invalid(format!("canary {e}")))?;
        let active = self.read(service, Field::Active).await?;
        let Some(active_color) = active.value else {
            return Err(DeployError::Refused(format!(
                "{service} has no active colour; run `templater flip {service} COLOR` first"
            )));
        };
        let ended = self.promotion_guard(service).await?;
        let index = self
            .write_canary(service, percent, active.index, ended)
            .await?
            .ok_or_else(|| {
                DeployError::Conflict(format!(
                    "{service}'s settings changed while this command ran; run it again"
                ))
            })?;
        let others: Vec<&str> = self
            .colors
            .iter()
            .map(String::as_str)
            .filter(|c| *c != active_color)
            .collect();
        Ok(Change {
            index,
            message: format!("{service}: {percent}% to the colours other than {active_color}"),
            to: Some(others.join(",")),
            from: Some(active_color),
            detail: format!("{percent}%"),
        })
    }

    pub(crate) fn other_color(
        &self,
        current: Option<&str>,
        service: &str,
    ) -> Result<String, DeployError> {
        let others: Vec<&String> = self
            .colors
            .iter()
            .filter(|c| Some(c.as_str()) != current)
            .collect();
        match (current, others.as_slice()) {
            (Some(_), [only]) => Ok((*only).clone()),
            (None, _) => Err(DeployError::Invalid(format!(
                "{service} has no active colour yet; name one: templater flip {service} COLOR"
            ))),
            _ => Err(DeployError::Invalid(format!(
                "more than two colours; name one of {}",
                self.colors.join(", ")
            ))),
        }
    }

    /// canary := `percent`, only while `active` is at `active_index` (its colour unchanged),
    /// with `extra` operations in the same transaction. Answers the canary's new index, or
    /// `None` when a check lost (nothing was written).
    pub(crate) async fn write_canary(
        &self,
        service: &str,
        percent: u8,
        active_index: u64,
        extra: Vec<KvOp>,
    ) -> Result<Option<u64>, DeployError> {
        let canary = self.read(service, Field::Canary).await?;
        let mut ops = vec![
            KvOp::CheckIndex {
                key: self.keys.setting(service, Field::Active),
                index: active_index,
            },
            KvOp::Cas {
                key: self.keys.setting(service, Field::Canary),
                value: percent.to_string().into_bytes(),
                index: canary.index,
            },
        ];
        ops.extend(extra);
        if !self.client.kv_txn(&ops).await? {
            return Ok(None);
        }
        Ok(Some(self.read(service, Field::Canary).await?.index))
    }

    /// active := target, canary := 0, previous := current, all or nothing, only if `active` is
    /// still at `index`, with `extra` operations in the same transaction.
    pub(crate) async fn commit(
        &self,
        service: &str,
        target: &str,
        current: Option<&str>,
        index: u64,
        extra: Vec<KvOp>,
    ) -> Result<(), DeployError> {
        let mut ops = vec![
            KvOp::Cas {
                key: self.keys.setting(service, Field::Active),
                value: target.as_bytes().to_vec(),
                index,
            },
            KvOp::Set {
                key: self.keys.setting(service, Field::Canary),
                value: b"0".to_vec(),
            },
        ];
        if let Some(prev) = current.filter(|c| *c != target) {
            ops.push(KvOp::Set {
                key: self.keys.setting(service, Field::Previous),
                value: prev.as_bytes().to_vec(),
            });
        }
        ops.extend(extra);
        if self.client.kv_txn(&ops).await? {
            Ok(())
        } else {
            Err(DeployError::Conflict(format!(
                "{service}'s active colour changed while this command ran; run it again"
            )))
        }
    }

    /// Waits until every running edge has `service` live at settings `index` or later, as its
    /// installed record says (written only once nginx has taken the change).
    pub async fn wait_live(
        &self,
        service: &str,
        index: u64,
        timeout: Duration,
    ) -> Result<String, DeployError> {
        let dir = self.keys.installed_dir(service);
        let token = CancellationToken::new();
        let verdict: RefCell<Option<Result<String, String>>> = RefCell::new(None);
        let last = RefCell::new(
            "no templater has reported (is one running with this --kv-prefix?)".to_string(),
        );
        // Each wake-up reads which edges are running, then judges their records.
        let watching = watch(
            Duration::from_secs(5),
            |opts| {
                let (client, dir) = (self.client.clone(), dir.clone());
                async move {
                    let (pairs, meta) = client.kv_list(&dir, &opts, true).await?;
                    let edges = self.running_edges().await?;
                    Ok(((pairs, edges), meta))
                }
            },
            |(pairs, edges): (Vec<swarmgate_consul::KvPair>, Vec<String>), _| {
                if edges.is_empty() {
                    return;
                }
                let records: Vec<Installed> = pairs
                    .iter()
                    .filter(|p| self.keys.parse_installed(&p.key).is_some())
                    .filter_map(|p| serde_json::from_slice(&p.value).ok())
                    .collect();
                match judge(&edges, &records, index) {
                    Judged::Live(names) => {
                        *verdict.borrow_mut() = Some(Ok(format!("live on {}", names.join(", "))));
                        token.cancel();
                    }
                    Judged::Never(why) => {
                        *verdict.borrow_mut() = Some(Err(why));
                        token.cancel();
                    }
                    Judged::Waiting(why) => *last.borrow_mut() = why,
                }
            },
            |e| *last.borrow_mut() = format!("consul: {e}"),
            token.clone(),
        );
        let _ = tokio::time::timeout(timeout, watching).await;
        match verdict.into_inner() {
            Some(Ok(message)) => Ok(message),
            Some(Err(why)) => Err(DeployError::NotLive(timeout, why)),
            None => Err(DeployError::NotLive(timeout, last.into_inner())),
        }
    }

    /// The edges whose status record has a recent heartbeat.
    async fn running_edges(&self) -> swarmgate_consul::Result<Vec<String>> {
        let (pairs, _) = self
            .client
            .kv_list(&self.keys.status_dir(), &QueryOptions::default(), true)
            .await?;
        let now = unix_now();
        Ok(pairs
            .iter()
            .filter(|p| self.keys.parse_status(&p.key).is_some())
            .filter_map(|p| serde_json::from_slice::<EdgeStatus>(&p.value).ok())
            .filter(|s| s.is_fresh(now))
            .map(|s| s.name)
            .collect())
    }
}

/// The history's detail of a flip or rollback.
fn forced(force: bool) -> String {
    if force {
        "--force: no passing-instance check".into()
    } else {
        String::new()
    }
}

/// Where a deploy stands on the edges that must take it.
#[derive(Debug, PartialEq, Eq)]
enum Judged {
    Live(Vec<String>),
    Waiting(String),
    /// An edge will not serve the service at all.
    Never(String),
}

fn judge(edges: &[String], records: &[Installed], index: u64) -> Judged {
    let mut behind = Vec::new();
    for edge in edges {
        match records.iter().find(|r| &r.edge == edge) {
            None => behind.push(format!("{edge} (no record for this service yet)")),
            Some(r) if r.plan.excluded.is_some() => {
                let why = r.plan.excluded.clone().unwrap_or_default();
                return Judged::Never(format!("{edge} does not serve this service: {why}"));
            }
            Some(r) if r.settings_index < index => behind.push(match &r.plan.held {
                Some(why) => format!("{edge} (holding its last good config: {why})"),
                None => format!("{edge} (at settings index {})", r.settings_index),
            }),
            Some(_) => {}
        }
    }
    if behind.is_empty() {
        Judged::Live(edges.to_vec())
    } else {
        Judged::Waiting(format!("waiting for {}", behind.join(", ")))
    }
}
