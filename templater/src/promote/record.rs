//! The promotion record, `<prefix>/<service>/promotion`: written by `templater promote` when
//! it starts and at each step (in the same transaction as the step's canary), locked by the
//! CLI's Consul session while it runs, deleted when the promotion ends (and by `rollback`,
//! which aborts it). A record without a lock is a promotion whose CLI is gone: traffic stays
//! at its last step until someone runs `rollback` or `promote` again.

use serde::{Deserialize, Serialize};
use swarmgate_consul::{Client, KvPair};

use crate::keys::{Field, Keys};

/// What a running (or interrupted) promotion says of itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    /// The colour being promoted.
    pub color: String,
    /// The colour that was active when it began (where a failure sends traffic back).
    pub from: String,
    pub steps: Vec<u8>,
    /// The step live now (an index into `steps`); `None` before the first one.
    pub step: Option<usize>,
    pub started_unix: u64,
    /// When the current step was set.
    pub step_unix: u64,
    pub by: String,
}

impl Promotion {
    /// `25%` (step 2 of 4), or `before its first step`.
    pub fn step_text(&self) -> String {
        match self.step {
            Some(i) => format!(
                "{}% (step {} of {})",
                self.steps.get(i).copied().unwrap_or(0),
                i + 1,
                self.steps.len()
            ),
            None => "before its first step".into(),
        }
    }
}

/// The record as read, with whether a CLI holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub promotion: Promotion,
    /// The session holding the lock: a CLI is running.
    pub session: Option<String>,
    pub index: u64,
}

/// Reads `service`'s promotion record; `None` when there is none (or it is unreadable: a
/// record nobody can act on is reported, not trusted).
pub async fn read(
    client: &Client,
    keys: &Keys,
    service: &str,
) -> swarmgate_consul::Result<Option<Found>> {
    let pair = client
        .kv_get(&keys.setting(service, Field::Promotion))
        .await?;
    Ok(pair.as_ref().and_then(from_pair))
}

/// The record a promotion key holds.
pub fn from_pair(pair: &KvPair) -> Option<Found> {
    serde_json::from_slice(&pair.value)
        .map_err(|e| tracing::warn!(key = %pair.key, error = %e, "unreadable promotion record"))
        .ok()
        .map(|promotion| Found {
            promotion,
            session: pair.session.clone(),
            index: pair.modify_index,
        })
}

/// One line for `status`: who promotes what, where it stands, and whether its CLI runs.
pub fn describe(found: &Found, now_unix: u64) -> String {
    let p = &found.promotion;
    let since = now_unix.saturating_sub(p.step_unix);
    let who = if found.session.is_some() {
        "running".to_string()
    } else {
        format!(
            "INTERRUPTED (its CLI is gone; traffic stays here: run `templater rollback` to send it all back to {}, or `templater promote` again)",
            p.from
        )
    };
    format!(
        "promotion of {} (from {}) at {} for {since}s, by {}: {who}",
        p.color,
        p.from,
        p.step_text(),
        p.by
    )
}
