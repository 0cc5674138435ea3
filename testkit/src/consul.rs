//! A throw-away `consul agent -dev` on free loopback ports. Dev agents keep no state on disk, so
//! [`ConsulAgent::restart`] is "restarted with its data wiped".

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{eventually, free_port, tool};

/// The ACL policy README documents for `daemon` ("registrator" or "templater"): the `hcl` block
/// under its "### Consul ACL policy", so the suites test exactly what users are told to grant.
pub fn readme_policy(daemon: &str) -> String {
    let readme =
        std::fs::read_to_string(crate::workspace_root().join("README.md")).expect("README.md");
    let section = readme
        .split(&format!("\n## {daemon}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("README has no section {daemon}"));
    let policy = section
        .split("### Consul ACL policy")
        .nth(1)
        .and_then(|s| s.split("```hcl\n").nth(1))
        .and_then(|s| s.split("```").next())
        .unwrap_or_else(|| panic!("README's {daemon} section has no ACL policy"));
    policy.to_string()
}

/// The master token of agents started with [`ConsulAgent::acl_hcl`].
pub const ACL_MASTER: &str = "root";

/// A running Consul dev agent; killed on drop.
pub struct ConsulAgent {
    pub http_port: u16,
    ports: [u16; 3],
    extra: Vec<String>,
    child: Option<Child>,
    pub http: reqwest::Client,
}

impl ConsulAgent {
    /// Starts an agent and waits for its leader.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts an agent with extra arguments (e.g. `-hcl` for ACLs).
    pub async fn start_with(extra: &[&str]) -> Self {
        let mut agent = ConsulAgent {
            http_port: free_port(),
            ports: [free_port(), free_port(), free_port()],
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            http: reqwest::Client::new(),
        };
        agent.spawn().await;
        agent
    }

    async fn spawn(&mut self) {
        let [serf_lan, serf_wan, server] = self.ports;
        let child = Command::new(tool("consul"))
            .args([
                "agent",
                "-dev",
                "-bind",
                "127.0.0.1",
                "-client",
                "127.0.0.1",
                "-dns-port",
                "-1",
                "-grpc-port",
                "-1",
            ])
            .args(["-http-port", &self.http_port.to_string()])
            .args([
                "-serf-lan-port",
                &serf_lan.to_string(),
                "-serf-wan-port",
                &serf_wan.to_string(),
            ])
            .args(["-server-port", &server.to_string()])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start consul (run .ci/install first)");
        self.child = Some(child);
        let url = format!("{}/v1/status/leader", self.url());
        let http = self.http.clone();
        eventually(Duration::from_secs(30), "consul has a leader", || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let leader: String = http.get(&url).send().await?.json().await?;
                if leader.is_empty() {
                    anyhow::bail!("no leader yet")
                }
                Ok::<_, anyhow::Error>(())
            }
        })
        .await;
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// `consul://127.0.0.1:PORT`, the registrator's spelling.
    pub fn uri(&self) -> String {
        format!("consul://127.0.0.1:{}", self.http_port)
    }

    /// Kills the agent (its data goes with it).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports, empty.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// GET a path of the HTTP API as JSON (`Null` on 404).
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self
            .http
            .get(format!("{}{path}", self.url()))
            .send()
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(Value::Null);
        }
        Ok(resp.error_for_status()?.json().await?)
    }

    /// `/v1/health/service/NAME` entries.
    pub async fn instances(&self, service: &str) -> anyhow::Result<Vec<Value>> {
        let v = self.get(&format!("/v1/health/service/{service}")).await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// The agent's services (id → service).
    pub async fn agent_services(&self) -> anyhow::Result<serde_json::Map<String, Value>> {
        Ok(self
            .get("/v1/agent/services")
            .await?
            .as_object()
            .cloned()
            .unwrap_or_default())
    }

    /// A KV value as text, `None` when absent.
    pub async fn kv(&self, key: &str) -> anyhow::Result<Option<String>> {
        let resp = self
            .http
            .get(format!("{}/v1/kv/{key}?raw", self.url()))
            .send()
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(resp.error_for_status()?.text().await?))
    }

    /// KV keys under a prefix.
    pub async fn kv_keys(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let v = self.get(&format!("/v1/kv/{prefix}?keys")).await?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(String::from))
            .collect())
    }

    /// PUT a KV value.
    pub async fn kv_put(&self, key: &str, value: &str) -> anyhow::Result<()> {
        self.http
            .put(format!("{}/v1/kv/{key}", self.url()))
            .body(value.to_string())
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Registers a service on the agent (`/v1/agent/service/register`) from raw JSON.
    pub async fn register(&self, body: &Value) {
        self.put_json("/v1/agent/service/register", body)
            .await
            .expect("register a service");
    }

    /// The `-hcl` that turns ACLs on with default deny; the master token is [`ACL_MASTER`].
    pub fn acl_hcl() -> String {
        format!(
            r#"acl {{ enabled = true default_policy = "deny" tokens {{ master = "{ACL_MASTER}" agent = "{ACL_MASTER}" }} }}"#
        )
    }

    /// Creates a policy from `rules` (HCL) and a token holding only it; answers the token's
    /// secret. Needs an agent started with [`ConsulAgent::acl_hcl`].
    pub async fn acl_token(&self, rules: &str) -> anyhow::Result<String> {
        let name = crate::unique("policy");
        let send = |path: &str, body: Value| {
            self.http
                .put(format!("{}{path}", self.url()))
                .header("X-Consul-Token", ACL_MASTER)
                .json(&body)
                .send()
        };
        send(
            "/v1/acl/policy",
            serde_json::json!({"Name": name, "Rules": rules}),
        )
        .await?
        .error_for_status()?;
        let token: Value = send(
            "/v1/acl/token",
            serde_json::json!({"Policies": [{"Name": name}]}),
        )
        .await?
        .error_for_status()?
        .json()
        .await?;
        token["SecretID"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| anyhow::anyhow!("no SecretID in {token}"))
    }

    /// PUT an arbitrary API path with a JSON body.
    pub async fn put_json(&self, path: &str, body: &Value) -> anyhow::Result<()> {
        self.http
            .put(format!("{}{path}", self.url()))
            .json(body)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}

impl Drop for ConsulAgent {
    fn drop(&mut self) {
        self.stop();
    }
}
