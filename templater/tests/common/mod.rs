//! Harness of the templater suites: the real binary, a real Consul agent, a real nginx.

#![allow(dead_code)]

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::json;
use testkit::{eventually, free_port, unique, ConsulAgent, NginxServer, Process};

pub const WAIT: Duration = Duration::from_secs(20);

/// A `templater run` process (see [`testkit::Process`]: stopped on drop, log printed on failure).
pub struct Templater {
    pub process: Process,
    pub name: String,
    pub metrics_port: u16,
}

impl std::ops::Deref for Templater {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

impl std::ops::DerefMut for Templater {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

impl Templater {
    /// Runs the daemon for `nginx` with the built-in templates (plus `extra` flags).
    pub fn start(consul: &ConsulAgent, nginx: &NginxServer, extra: &[&str]) -> Self {
        let name = unique("edge");
        let metrics_port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_templater"));
        cmd.args(["--consul", &consul.url(), "run", "--name", &name])
            .args(["--output-dir", &nginx.conf_d().display().to_string()])
            .args(["--nginx-pid", &nginx.pid_file().display().to_string()])
            .args(["--nginx-check", &nginx.check_command()])
            .args([
                "--listen",
                &nginx.port.to_string(),
                "--wait",
                "20ms:200ms",
                "--hold",
                "5s",
            ])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("CONSUL_HTTP_TOKEN")
            .env_remove("CONSUL_HTTP_ADDR");
        Templater {
            process: Process::spawn(cmd, &name),
            name,
            metrics_port,
        }
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }
}

/// Runs a `templater` CLI command against `consul`.
pub fn cli(consul: &ConsulAgent, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_templater"))
        .args(["--consul", &consul.url()])
        .args(args)
        .env_remove("CONSUL_HTTP_TOKEN")
        .output()
        .expect("run templater")
}

/// `(exit code, stdout + stderr)` of a CLI command.
pub fn cli_text(consul: &ConsulAgent, args: &[&str]) -> (i32, String) {
    let out = cli(consul, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Registers an instance of `service` at 127.0.0.1:`port` with `tags`, and a TTL check that
/// starts `status`; answers the check id.
pub async fn register(
    consul: &ConsulAgent,
    id: &str,
    service: &str,
    port: u16,
    tags: &[&str],
    status: &str,
) -> String {
    let check = format!("ttl-{id}");
    let body = json!({
        "ID": id, "Name": service, "Address": "127.0.0.1", "Port": port, "Tags": tags,
        "Checks": [{"CheckID": check, "Name": "ttl", "TTL": "10m", "Status": status}],
    });
    consul
        .put_json("/v1/agent/service/register", &body)
        .await
        .expect("register");
    check
}

/// Sets a TTL check's status.
pub async fn set_check(consul: &ConsulAgent, check: &str, status: &str) {
    consul
        .put_json(
            &format!("/v1/agent/check/update/{check}"),
            &json!({"Status": status}),
        )
        .await
        .expect("check update");
}

/// GETs `/` through nginx for virtual host `host` on a new connection; the body (trimmed).
pub async fn fetch(nginx: &NginxServer, host: &str) -> anyhow::Result<String> {
    testkit::http::get(nginx.port, host).await
}

/// Waits until every one of `n` requests answers `want`.
pub async fn serves_only(nginx: &NginxServer, host: &str, want: &str, n: usize) {
    eventually(WAIT, &format!("{host} serves only {want}"), || async {
        for _ in 0..n {
            let got = fetch(nginx, host).await?;
            anyhow::ensure!(got == want, "got {got}");
        }
        Ok(())
    })
    .await;
}

/// Counts answers over `n` requests.
pub async fn tally(
    nginx: &NginxServer,
    host: &str,
    n: usize,
) -> std::collections::BTreeMap<String, usize> {
    testkit::http::tally(nginx.port, host, n).await
}

/// The installed upstreams file.
pub fn upstreams(nginx: &NginxServer) -> String {
    std::fs::read_to_string(nginx.conf_d().join("swarmgate-upstreams.conf")).unwrap_or_default()
}

/// Waits until the installed upstreams file satisfies `pred`.
pub async fn upstreams_become(
    nginx: &NginxServer,
    what: &str,
    pred: impl Fn(&str) -> bool,
) -> String {
    eventually(WAIT, what, || async {
        let text = upstreams(nginx);
        if pred(&text) {
            Ok(text)
        } else {
            anyhow::bail!("{text}")
        }
    })
    .await
}
