//! Harness of the templater suites: the real binary, a real Consul agent, a real nginx.

#![allow(dead_code)]

pub mod lua_edge;

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::json;
use testkit::{eventually, ConsulAgent, NginxServer};

pub const WAIT: Duration = Duration::from_secs(20);

/// A `templater run` process (see [`testkit::Process`]: stopped on drop, log printed on failure).
pub type Templater = testkit::daemons::TemplaterDaemon;

/// Runs the daemon for `nginx` with the built-in templates (plus `extra` flags).
pub fn start_templater(consul: &ConsulAgent, nginx: &NginxServer, extra: &[&str]) -> Templater {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_templater"));
    testkit::daemons::templater(bin, &consul.url(), nginx, &[], extra)
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

/// `templater --consul 127.0.0.1:1 run EXTRA` (nothing listens there): its exit code and stderr,
/// for flags refused before anything starts.
pub fn run_refused(extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_templater"))
        .args(["--consul", "127.0.0.1:1", "run"])
        .args(extra)
        .env_remove("TEMPLATER_TRAFFIC_LISTEN")
        .env_remove("TEMPLATER_DATAPLANE")
        .output()
        .expect("run templater");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}
