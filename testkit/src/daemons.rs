//! Our two daemons as the suites start them: the binary under test (each suite passes its own
//! path: `CARGO_BIN_EXE_*` in a crate's suites, the build's `target/` in the end-to-end ones)
//! with the flags every suite wants, logs into a [`Process`].

use std::path::Path;
use std::process::Command;

use crate::{free_port, unique, NginxServer, Process};

/// `registrator --node-name NODE -ip 127.0.0.1 --verify-interval 1 ARGS URI`, `env` added.
pub fn registrator(
    bin: &Path,
    node: &str,
    uri: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Process {
    let mut cmd = Command::new(bin);
    cmd.args([
        "--node-name",
        node,
        "-ip",
        "127.0.0.1",
        "--verify-interval",
        "1",
    ])
    .args(args)
    .arg(uri)
    // TEST_REG_LOG (e.g. `registrator=debug`) widens the log a failing test prints.
    .env(
        "RUST_LOG",
        std::env::var("TEST_REG_LOG").unwrap_or("info".into()),
    )
    .env_remove("CONSUL_HTTP_TOKEN")
    .envs(env.iter().copied());
    Process::spawn(cmd, node)
}

/// A templater daemon for `nginx`.
pub struct TemplaterDaemon {
    pub process: Process,
    /// Its `--name` (the key of its status and acknowledgements).
    pub name: String,
    pub metrics_port: u16,
}

/// `templater --consul URL run` for `nginx` with the built-in templates, short quiescence and
/// hold, metrics on a free port, plus `extra` flags (flags before `run` go in `global`).
pub fn templater(
    bin: &Path,
    consul_url: &str,
    nginx: &NginxServer,
    global: &[&str],
    extra: &[&str],
) -> TemplaterDaemon {
    let name = unique("edge");
    let metrics_port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args(["--consul", consul_url])
        .args(global)
        .args(["run", "--name", &name])
        .args(["--output-dir", &nginx.conf_d().display().to_string()]);
    // Defaults the suites want, unless `extra` sets the flag itself (clap refuses repeats).
    let check = nginx.check_command();
    let listen = nginx.port.to_string();
    let pid = nginx.pid_file().display().to_string();
    for (flag, value) in [
        ("--nginx-pid", pid.as_str()),
        ("--nginx-check", check.as_str()),
        ("--listen", listen.as_str()),
        ("--wait", "20ms:200ms"),
        ("--hold", "5s"),
    ] {
        if !extra.contains(&flag) {
            cmd.args([flag, value]);
        }
    }
    cmd.args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
        .args(extra)
        .env("RUST_LOG", "info")
        .env_remove("CONSUL_HTTP_TOKEN")
        .env_remove("CONSUL_HTTP_ADDR");
    TemplaterDaemon {
        process: Process::spawn(cmd, &name),
        name,
        metrics_port,
    }
}

impl TemplaterDaemon {
    /// Its `/metrics` text; empty while the endpoint does not answer (yet).
    pub async fn metrics(&self) -> String {
        match crate::metrics::scrape(self.metrics_port).await {
            Ok(m) => m.text,
            Err(e) => {
                eprintln!("templater /metrics: {e:#}");
                String::new()
            }
        }
    }
}

impl std::ops::Deref for TemplaterDaemon {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

impl std::ops::DerefMut for TemplaterDaemon {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}
