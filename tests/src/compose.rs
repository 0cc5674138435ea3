//! A compose stack from `compose/` under its own project name and ports, driven through either
//! compose tool, and removed (containers, networks, volumes) when it drops — after printing its
//! logs when a test failed.

use std::path::PathBuf;
use std::process::{Command, Output};

use swarmgate_consul::{parse_address, Client, ConsulConfig, QueryOptions, ServiceEntry};
use testkit::{free_port, unique, workspace_root};

use crate::images;

/// The two compose tools users run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComposeTool {
    /// `docker-compose` 1.x (Python).
    V1,
    /// The `docker compose` plugin.
    V2,
}

impl ComposeTool {
    fn command(self) -> Command {
        match self {
            ComposeTool::V1 => Command::new("docker-compose"),
            ComposeTool::V2 => {
                let mut c = Command::new("docker");
                c.arg("compose");
                c
            }
        }
    }
}

/// A running stack.
pub struct Stack {
    tool: ComposeTool,
    /// The compose project name (unique per stack).
    pub project: String,
    file: PathBuf,
    /// nginx's port on the host.
    pub edge_port: u16,
    /// Consul's HTTP port on the host.
    pub consul_port: u16,
    /// A client for that Consul.
    pub consul: Client,
}

impl Stack {
    /// Builds the images (once per process) and brings up `compose/<file>` with `tool`, each
    /// `(service, n)` in `scale` scaled to `n`.
    pub fn up(tool: ComposeTool, file: &str, scale: &[(&str, u32)]) -> Self {
        images::ensure();
        let consul_port = free_port();
        let address = parse_address(&format!("127.0.0.1:{consul_port}"), false).expect("address");
        let stack = Stack {
            tool,
            project: unique("sg-e2e"),
            file: workspace_root().join("compose").join(file),
            edge_port: free_port(),
            consul_port,
            consul: Client::new(&ConsulConfig::new(address)).expect("consul client"),
        };
        let mut args = vec!["up".to_string(), "-d".to_string()];
        for (service, n) in scale {
            args.push("--scale".into());
            args.push(format!("{service}={n}"));
        }
        stack.compose(&args.iter().map(String::as_str).collect::<Vec<_>>());
        stack
    }

    fn command(&self) -> Command {
        let mut c = self.tool.command();
        c.current_dir(self.file.parent().expect("compose dir"))
            .arg("-p")
            .arg(&self.project)
            .arg("-f")
            .arg(&self.file)
            .env("SWARMGATE_TAG", images::TAG)
            .env("EDGE_PORT", self.edge_port.to_string())
            .env("CONSUL_PORT", self.consul_port.to_string());
        c
    }

    /// Runs the compose tool with `args`; its output, or a panic with it.
    pub fn compose(&self, args: &[&str]) -> String {
        let out = self.try_compose(args);
        assert!(
            out.status.success(),
            "{:?} {}: {}{}",
            self.tool,
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs the compose tool with `args`, whatever the outcome.
    pub fn try_compose(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run compose")
    }

    /// `templater ARGS` inside the edge's templater container: exit code and all output.
    pub fn templater_in_edge(&self, args: &[&str]) -> (i32, String) {
        let mut all = vec!["exec", "-T", "templater", "templater"];
        all.extend_from_slice(args);
        text(self.try_compose(&all))
    }

    /// `templater ARGS` on the host (this build's binary), against the stack's Consul.
    pub fn templater_on_host(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(images::bin_dir().join("templater"))
            .args(args)
            .env(
                "CONSUL_HTTP_ADDR",
                format!("127.0.0.1:{}", self.consul_port),
            )
            .output()
            .expect("run templater");
        text(out)
    }

    /// The ids of `service`'s containers.
    pub fn containers(&self, service: &str) -> Vec<String> {
        self.compose(&["ps", "-q", service])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The instances of Consul service `name`, passing ones only when `passing`.
    pub async fn instances(&self, name: &str, passing: bool) -> anyhow::Result<Vec<ServiceEntry>> {
        Ok(self
            .consul
            .health_service(name, &QueryOptions::default(), passing)
            .await?
            .0)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.try_compose(&["logs", "--no-color", "--tail", "60"]);
            eprintln!(
                "--- logs of {} ---\n{}",
                self.project,
                String::from_utf8_lossy(&logs.stdout)
            );
        }
        let _ = self.try_compose(&["down", "-v", "--remove-orphans", "-t", "2"]);
    }
}

fn text(out: Output) -> (i32, String) {
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
