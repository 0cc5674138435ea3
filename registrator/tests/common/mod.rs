//! Harness of the registrator suites: the real binary against a real Consul and Docker.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;
use testkit::{eventually, ConsulAgent, Process};

pub const WAIT: Duration = Duration::from_secs(20);

/// A registrator process (see [`testkit::Process`]: stopped on drop, log printed on failure).
pub struct Registrator {
    pub process: Process,
    pub node: String,
}

impl std::ops::Deref for Registrator {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

impl std::ops::DerefMut for Registrator {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

impl Registrator {
    /// Starts `registrator ARGS --node-name <unique> -ip 127.0.0.1 <consul uri>`.
    pub fn start(consul: &ConsulAgent, args: &[&str]) -> Self {
        Self::start_env(consul, args, &[])
    }

    pub fn start_env(consul: &ConsulAgent, args: &[&str], env: &[(&str, &str)]) -> Self {
        let node = testkit::unique("node");
        Self::start_as(&node, &consul.uri(), args, env)
    }

    pub fn start_as(node: &str, uri: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_registrator"));
        Registrator {
            process: testkit::daemons::registrator(bin, node, uri, args, env),
            node: node.to_string(),
        }
    }
}

/// Waits until `service` has exactly `n` instances and answers them.
pub async fn instances(consul: &ConsulAgent, service: &str, n: usize) -> Vec<Value> {
    eventually(WAIT, &format!("{service} has {n} instances"), || async {
        let got = consul.instances(service).await?;
        if got.len() == n {
            Ok(got)
        } else {
            anyhow::bail!("{} instances: {got:?}", got.len())
        }
    })
    .await
}

/// The aggregated status of one instance's checks (`passing` with no checks).
pub fn status(entry: &Value) -> String {
    let rank = |s: &str| match s {
        "passing" => 0,
        "warning" => 1,
        _ => 2,
    };
    entry["Checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["Status"].as_str())
        .max_by_key(|s| rank(s))
        .unwrap_or("passing")
        .to_string()
}

/// Waits until `service`'s only instance has status `want`.
pub async fn status_becomes(consul: &ConsulAgent, service: &str, want: &str) {
    eventually(WAIT, &format!("{service} becomes {want}"), || async {
        let got = consul.instances(service).await?;
        match got.as_slice() {
            [one] if status(one) == want => Ok(()),
            _ => anyhow::bail!("{got:?}"),
        }
    })
    .await
}
