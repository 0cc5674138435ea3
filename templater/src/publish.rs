//! Publishing what this edge has live: its status record and one installed record per service
//! (see [`crate::records`]), written when they change and withdrawn on a clean exit.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use swarmgate_consul::Client;

use crate::daemon::RunConfig;
use crate::keys::Keys;
use crate::live::{LiveFeed, LiveView};
use crate::plan::Plan;
use crate::records::{self, unix_now, EdgeStatus, Installed};

pub struct Publisher {
    client: Client,
    keys: Keys,
    status: EdgeStatus,
    /// The status record as last written.
    status_written: Option<EdgeStatus>,
    /// Installed records as last written, by service.
    written: HashMap<String, Installed>,
    /// The same status and plan, for the dashboard.
    feed: LiveFeed,
}

impl Publisher {
    pub fn new(client: Client, cfg: &RunConfig, dataplane: &str) -> Self {
        let now = unix_now();
        Publisher {
            client,
            keys: cfg.keys.clone(),
            status: EdgeStatus {
                name: cfg.name.clone(),
                options: cfg.plan.clone(),
                dataplane: dataplane.into(),
                started_unix: now,
                heartbeat_unix: now,
                last_install_unix: None,
                last_error: None,
                last_error_unix: None,
                services: 0,
                not_served: BTreeMap::new(),
                view_held: false,
                live_version: None,
                last_reload_unix: None,
                last_push_unix: None,
            },
            status_written: None,
            written: HashMap::new(),
            feed: LiveFeed::default(),
        }
    }

    /// What this edge has live, as the publisher last recorded it.
    pub fn live(&self) -> tokio::sync::watch::Receiver<std::sync::Arc<LiveView>> {
        self.feed.subscribe()
    }

    /// The state version nginx holds (Lua data plane), as nginx answered it: installed
    /// records written from now on name it.
    pub fn live_version(&mut self, version: Option<u64>) {
        if version.is_some() {
            self.status.live_version = version;
        }
    }

    /// A pass reloaded nginx and/or pushed it a state: the status record says when.
    pub fn took(&mut self, reloaded: bool, pushed: bool) {
        let now = Some(unix_now());
        if reloaded {
            self.status.last_reload_unix = now;
        }
        if pushed {
            self.status.last_push_unix = now;
        }
    }

    /// Records a failure that is not a pass's (a template that does not compile).
    pub fn failed(&mut self, error: &str) {
        self.status.last_error = Some(error.to_string());
        self.status.last_error_unix = Some(unix_now());
        self.feed.status(&self.status);
    }

    /// Publishes `live` after a pass: `outcome` is whether files changed, or the pass's error.
    /// Answers false when Consul could not be written (the caller retries).
    pub async fn publish(
        &mut self,
        live: &Plan,
        outcome: &Result<bool, String>,
        view_held: bool,
    ) -> bool {
        match outcome {
            Ok(changed) => {
                if *changed {
                    self.status.last_install_unix = Some(unix_now());
                }
                self.status.last_error = None;
                self.status.last_error_unix = None;
            }
            Err(e) => self.failed(e),
        }
        self.status.view_held = view_held;
        self.status.services = live.served().count();
        self.status.not_served = live
            .services
            .values()
            .filter_map(|s| {
                let why = s.excluded.as_ref().or(s.held.as_ref())?;
                Some((s.name.clone(), why.clone()))
            })
            .collect();
        for (name, why) in &self.status.not_served {
            let known = self
                .status_written
                .as_ref()
                .and_then(|w| w.not_served.get(name));
            if known != Some(why) {
                tracing::warn!(service = %name, reason = %why, "service not served as consul says");
            }
        }
        // The status record first: a deploy waiting on the installed records reads it to know
        // which edges must take the change.
        let status_ok = self.write_status(false).await;
        let records_ok = self.publish_installed(live).await;
        self.feed.update(&self.status, live);
        records_ok && status_ok
    }

    async fn publish_installed(&mut self, live: &Plan) -> bool {
        let mut puts = Vec::new();
        let mut fresh = Vec::new();
        for s in live.services.values() {
            let record = Installed::of(&self.status.name, s, self.status.live_version);
            if self.written.get(&s.name).is_some_and(|w| w.same(&record)) {
                continue;
            }
            let body = serde_json::to_vec(&record).expect("a record serialises");
            puts.push((self.keys.installed(&s.name, &self.status.name), body));
            fresh.push(record);
        }
        let gone: Vec<String> = self
            .written
            .keys()
            .filter(|name| !live.services.contains_key(*name))
            .cloned()
            .collect();
        if puts.is_empty() && gone.is_empty() {
            return true;
        }
        let deletes = gone
            .iter()
            .map(|name| self.keys.installed(name, &self.status.name))
            .collect();
        match records::write(&self.client, puts, deletes).await {
            Ok(()) => {
                for name in gone {
                    self.written.remove(&name);
                }
                for record in fresh {
                    self.written.insert(record.plan.name.clone(), record);
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "writing installed records failed; will retry");
                false
            }
        }
    }

    async fn write_status(&mut self, heartbeat: bool) -> bool {
        let unchanged = self.status_written.as_ref().is_some_and(|w| {
            let mut w = w.clone();
            w.heartbeat_unix = self.status.heartbeat_unix;
            w == self.status
        });
        if unchanged && !heartbeat {
            return true;
        }
        self.status.heartbeat_unix = unix_now();
        let body = serde_json::to_vec(&self.status).expect("status serialises");
        match self
            .client
            .kv_put(&self.keys.status(&self.status.name), &body)
            .await
        {
            Ok(()) => {
                self.status_written = Some(self.status.clone());
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "writing the status record failed");
                false
            }
        }
    }

    /// Refreshes the status record's heartbeat.
    pub async fn heartbeat(&mut self) {
        self.write_status(true).await;
    }

    /// Removes what releases before the records moved kept under the settings tree.
    pub async fn forget_legacy(&self) {
        let dir = self.keys.legacy_dir(&self.status.name);
        if let Err(e) = self.client.kv_delete_tree(&dir).await {
            tracing::debug!(error = %e, "could not remove legacy records");
        }
    }

    /// On a clean exit, withdraw this edge's records so deploys do not wait on it.
    pub async fn leave(&self) {
        let mut deletes: Vec<String> = self
            .written
            .keys()
            .map(|name| self.keys.installed(name, &self.status.name))
            .collect();
        deletes.push(self.keys.status(&self.status.name));
        let withdraw = records::write(&self.client, Vec::new(), deletes);
        let _ = tokio::time::timeout(Duration::from_secs(2), withdraw).await;
    }
}
