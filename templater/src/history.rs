//! The deploy history: every deploy action on a service (flip, canary, rollback, promote and
//! its steps) as one bounded JSON array at [`Keys::history`], appended with check-and-set so
//! that concurrent deploys never lose an entry; who did it (`--by` and its default from CI
//! variables); and the one-line form `templater history` prints.
//!
//! A history write comes after the deploy it records has happened: callers warn on failure
//! ([`record`]) and never fail the deploy. A value that does not parse is set aside with a
//! warning and a new array starts; it never stops a deploy.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use swarmgate_consul::{Client, Error, KvOp};

use crate::keys::Keys;
use crate::records::unix_now;

/// Entries kept per service (the newest).
pub const MAX_ENTRIES: usize = 200;
/// Longest `detail` kept, in characters.
pub const MAX_DETAIL: usize = 1000;
/// Longest `by` kept, in characters.
pub const MAX_BY: usize = 200;
/// The serialised array stays under this many bytes (Consul refuses values over 512 KiB).
pub const MAX_BYTES: usize = 256 * 1024;
/// Check-and-set attempts before an append gives up.
const ATTEMPTS: u32 = 12;

/// One deploy action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Unix seconds.
    pub at: u64,
    /// `flip`, `canary`, `rollback`, `promote`, `promote-step`, `promote-passed`,
    /// `promote-failed`, `promote-inconclusive`, `promote-aborted`.
    pub action: String,
    /// The colour traffic moved from (the active colour before).
    pub from: Option<String>,
    /// The colour traffic moved to.
    pub to: Option<String>,
    /// Free text: the canary percent, a step's figures, why a promotion failed.
    pub detail: String,
    /// Who or what did it (`--by`, default [`default_by`]).
    pub by: String,
}

impl Entry {
    /// An entry stamped now.
    pub fn now(
        action: &str,
        from: Option<&str>,
        to: Option<&str>,
        detail: impl Into<String>,
        by: &str,
    ) -> Entry {
        Entry {
            at: unix_now(),
            action: action.to_string(),
            from: from.map(str::to_string),
            to: to.map(str::to_string),
            detail: detail.into(),
            by: by.to_string(),
        }
    }

    /// Cuts `detail` and `by` to their bounds.
    fn bounded(mut self) -> Entry {
        self.detail = truncate(&self.detail, MAX_DETAIL);
        self.by = truncate(&self.by, MAX_BY);
        self
    }
}

/// `2026-12-04T01:02:03Z  flip  blue → green  by ci #42  (detail)`.
impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}  {}", rfc3339(self.at), self.action)?;
        if self.from.is_some() || self.to.is_some() {
            let side = |c: &Option<String>| c.clone().unwrap_or_else(|| "-".into());
            write!(f, "  {} → {}", side(&self.from), side(&self.to))?;
        }
        write!(f, "  by {}", self.by)?;
        if !self.detail.is_empty() {
            write!(f, "  ({})", self.detail)?;
        }
        Ok(())
    }
}

/// Appends `entry` to `service`'s history, keeping the newest [`MAX_ENTRIES`]; retries when
/// another writer got in between (a lost check-and-set), then answers Consul's conflict.
pub async fn append(
    client: &Client,
    keys: &Keys,
    service: &str,
    entry: Entry,
) -> Result<(), Error> {
    let key = keys.history(service);
    let entry = entry.bounded();
    for attempt in 0..ATTEMPTS {
        let (mut entries, index) = match client.kv_get(&key).await? {
            Some(pair) => (parse_or_restart(&pair.value, service), pair.modify_index),
            None => (Vec::new(), 0),
        };
        entries.push(entry.clone());
        let value = encode_bounded(&mut entries);
        let op = KvOp::Cas {
            key: key.clone(),
            value,
            index,
        };
        if client.kv_txn(&[op]).await? {
            return Ok(());
        }
        tokio::time::sleep(backoff(attempt)).await;
    }
    Err(Error::Status {
        method: "PUT",
        path: "/v1/txn".into(),
        status: reqwest::StatusCode::CONFLICT,
        body: format!("the history of {service} kept changing; {ATTEMPTS} check-and-sets lost"),
    })
}

/// [`append`], logging a warning on failure: the deploy it records has already happened.
pub async fn record(client: &Client, keys: &Keys, service: &str, entry: Entry) {
    if let Err(e) = append(client, keys, service, entry).await {
        tracing::warn!(service, error = %e, "deploy history not written; the deploy itself stands");
    }
}

/// `service`'s history, oldest first; empty when there is none. A value that does not parse is
/// Consul's decode error (the next append starts a new array).
pub async fn read(client: &Client, keys: &Keys, service: &str) -> Result<Vec<Entry>, Error> {
    let key = keys.history(service);
    match client.kv_get(&key).await? {
        None => Ok(Vec::new()),
        Some(pair) => parse(&pair.value).map_err(|source| Error::Decode {
            path: format!("/v1/kv/{key}"),
            source,
        }),
    }
}

/// Who runs this deploy, from common CI variables, else the user, else `unknown`.
pub fn default_by() -> String {
    by_from(|name| std::env::var(name).ok())
}

/// A CI system: the variable numbering its run, then job and user candidates.
struct Ci {
    name: &'static str,
    run: &'static str,
    job: &'static [&'static str],
    user: &'static [&'static str],
}

/// Checked in order: the first whose run variable is set names the deploy.
const CI: &[Ci] = &[
    Ci {
        name: "github",
        run: "GITHUB_RUN_ID",
        job: &["GITHUB_WORKFLOW"],
        user: &["GITHUB_ACTOR"],
    },
    Ci {
        name: "gitlab",
        run: "CI_JOB_ID",
        job: &["CI_PROJECT_PATH", "CI_JOB_NAME"],
        user: &["GITLAB_USER_LOGIN"],
    },
    Ci {
        name: "circleci",
        run: "CIRCLE_BUILD_NUM",
        job: &["CIRCLE_PROJECT_REPONAME"],
        user: &["CIRCLE_USERNAME"],
    },
    Ci {
        name: "buildkite",
        run: "BUILDKITE_BUILD_NUMBER",
        job: &["BUILDKITE_PIPELINE_SLUG"],
        user: &["BUILDKITE_BUILD_CREATOR"],
    },
    // Jenkins and TeamCity both set BUILD_NUMBER.
    Ci {
        name: "build",
        run: "BUILD_NUMBER",
        job: &[
            "JOB_NAME",
            "TEAMCITY_BUILDCONF_NAME",
            "TEAMCITY_PROJECT_NAME",
        ],
        user: &["BUILD_USER_ID"],
    },
];

/// [`default_by`] over any environment (tests never touch the process's own).
fn by_from(env: impl Fn(&str) -> Option<String>) -> String {
    let var = |name: &str| {
        env(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let first = |names: &[&str]| names.iter().find_map(|n| var(n));
    for ci in CI {
        let Some(run) = var(ci.run) else { continue };
        let mut by = ci.name.to_string();
        if let Some(job) = first(ci.job) {
            by += &format!(" {job}");
        }
        by += &format!(" #{run}");
        if let Some(user) = first(ci.user) {
            by += &format!(" ({user})");
        }
        return truncate(&by, MAX_BY);
    }
    first(&["USER", "LOGNAME"]).map_or_else(|| "unknown".into(), |u| truncate(&u, MAX_BY))
}

/// An empty value is an empty history.
fn parse(value: &[u8]) -> Result<Vec<Entry>, serde_json::Error> {
    if value.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    serde_json::from_slice(value)
}

fn parse_or_restart(value: &[u8], service: &str) -> Vec<Entry> {
    parse(value).unwrap_or_else(|e| {
        tracing::warn!(service, error = %e, "deploy history in KV does not parse; starting a new one");
        Vec::new()
    })
}

/// Drops the oldest entries beyond [`MAX_ENTRIES`] or [`MAX_BYTES`]; answers the JSON.
fn encode_bounded(entries: &mut Vec<Entry>) -> Vec<u8> {
    if entries.len() > MAX_ENTRIES {
        entries.drain(..entries.len() - MAX_ENTRIES);
    }
    loop {
        let value = serde_json::to_vec(&entries).expect("entries always serialise");
        if value.len() <= MAX_BYTES || entries.len() <= 1 {
            return value;
        }
        let drop = (entries.len() / 10).max(1);
        entries.drain(..drop);
    }
}

/// 20, 40, 80 … ms, capped at 500 ms, with jitter so that two writers fall apart.
fn backoff(attempt: u32) -> Duration {
    let base = (20u64 << attempt.min(5)).min(500);
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()),
    ) % base.max(1);
    Duration::from_millis(base / 2 + jitter)
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn rfc3339(unix: u64) -> String {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
