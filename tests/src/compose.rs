//! Compose projects from `compose/`, each under a name of its own, driven through either compose
//! tool and removed (containers, networks, volumes) when dropped — after printing their logs
//! when a test failed. [`Stack`] is the single-host demo (compose/docker-compose.yml).

use std::path::PathBuf;
use std::process::{Command, Output};

use swarmgate_consul::{Client, ConsulConfig, QueryOptions, ServiceEntry};
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

/// One compose project: a file under `compose/`, a unique name, its environment.
pub struct Project {
    tool: ComposeTool,
    /// The compose project name.
    pub name: String,
    /// The compose file, then the overlays on it (`-f` each, in order).
    files: Vec<PathBuf>,
    env: Vec<(String, String)>,
}

impl Project {
    /// A project for `compose/<file>` (not started), with our images' tag and `env`.
    pub fn new(tool: ComposeTool, file: &str, prefix: &str, env: &[(&str, String)]) -> Self {
        images::ensure();
        let mut all = vec![("SWARMGATE_TAG".to_string(), images::tag().to_string())];
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
        Project {
            tool,
            name: unique(prefix),
            files: vec![workspace_root().join("compose").join(file)],
            env: all,
        }
    }

    /// Adds the overlay `compose/<file>` (a compose file merged over the others) to every later
    /// command.
    pub fn overlay(&mut self, file: &str) {
        self.files.push(workspace_root().join("compose").join(file));
    }

    /// Runs the compose tool with `args`; its output, or a panic with it.
    pub fn compose(&self, args: &[&str]) -> String {
        self.compose_env(&[], args)
    }

    /// Runs the compose tool with `args` and `env` set for this command only (compose files
    /// interpolate it: `FAIL_PERCENT=50`); its output, or a panic with it.
    pub fn compose_env(&self, env: &[(&str, &str)], args: &[&str]) -> String {
        let out = self.run(env, args);
        assert!(
            out.status.success(),
            "{:?} {} {}: {}{}",
            self.tool,
            self.name,
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs the compose tool with `args`, whatever the outcome.
    pub fn try_compose(&self, args: &[&str]) -> Output {
        self.run(&[], args)
    }

    fn run(&self, extra_env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut c = self.tool.command();
        c.current_dir(self.files[0].parent().expect("compose dir"))
            .arg("-p")
            .arg(&self.name);
        for file in &self.files {
            c.arg("-f").arg(file);
        }
        c.args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra_env.iter().copied());
        c.output().expect("run compose")
    }

    /// The ids of `service`'s containers.
    pub fn containers(&self, service: &str) -> Vec<String> {
        self.compose(&["ps", "-q", service])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.try_compose(&["logs", "--no-color", "--tail", "60"]);
            eprintln!(
                "--- logs of {} ---\n{}",
                self.name,
                String::from_utf8_lossy(&logs.stdout)
            );
        }
        let _ = self.try_compose(&["down", "-v", "--remove-orphans", "-t", "2"]);
    }
}

/// A Consul client for `host:port`.
pub fn consul_client(host: &str, port: u16) -> Client {
    let address = format!("http://{host}:{port}/").parse().expect("address");
    Client::new(&ConsulConfig::new(address)).expect("consul client")
}

/// The instances of service `name` in `consul`, passing ones only when `passing`.
pub async fn instances(
    consul: &Client,
    name: &str,
    passing: bool,
) -> anyhow::Result<Vec<ServiceEntry>> {
    Ok(consul
        .health_service(name, &QueryOptions::default(), passing)
        .await?
        .0)
}

/// `templater ARGS` on the host (this build's binary) against Consul at `consul_addr`: exit code
/// and all output.
pub fn templater_on_host(consul_addr: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(images::bin_dir().join("templater"))
        .args(args)
        .env("CONSUL_HTTP_ADDR", consul_addr)
        .output()
        .expect("run templater");
    text(out)
}

/// The single-host demo, compose/docker-compose.yml, on ports of its own.
pub struct Stack {
    pub project: Project,
    /// nginx's port on the host.
    pub edge_port: u16,
    /// Consul's HTTP port on the host.
    pub consul_port: u16,
    /// The templater's dashboard (and `/metrics`) on the host.
    pub dashboard_port: u16,
    /// A client for that Consul.
    pub consul: Client,
}

impl Stack {
    /// Brings the demo up with `tool`, each `(service, n)` in `scale` scaled to `n`.
    pub fn up(tool: ComposeTool, scale: &[(&str, u32)]) -> Self {
        let (edge_port, consul_port, dashboard_port) = (free_port(), free_port(), free_port());
        let project = Project::new(
            tool,
            "docker-compose.yml",
            "sg-e2e",
            &[
                ("EDGE_PORT", edge_port.to_string()),
                ("CONSUL_PORT", consul_port.to_string()),
                ("DASHBOARD_PORT", dashboard_port.to_string()),
            ],
        );
        let mut args = vec!["up".to_string(), "-d".to_string()];
        for (service, n) in scale {
            args.push("--scale".into());
            args.push(format!("{service}={n}"));
        }
        project.compose(&args.iter().map(String::as_str).collect::<Vec<_>>());
        Stack {
            project,
            edge_port,
            consul_port,
            dashboard_port,
            consul: consul_client("127.0.0.1", consul_port),
        }
    }

    /// Runs the compose tool with `args` in this stack.
    pub fn compose(&self, args: &[&str]) -> String {
        self.project.compose(args)
    }

    /// The ids of `service`'s containers.
    pub fn containers(&self, service: &str) -> Vec<String> {
        self.project.containers(service)
    }

    /// Recreates green's `n` containers with `FAIL_PERCENT=fail` and waits until exactly those
    /// pass in Consul.
    pub async fn recreate_green(&self, n: u32, fail: u32) {
        let scale = format!("app-green={n}");
        let fail = fail.to_string();
        self.project.compose_env(
            &[("FAIL_PERCENT", fail.as_str())],
            &[
                "up",
                "-d",
                "--no-deps",
                "--force-recreate",
                "--scale",
                &scale,
                "app-green",
            ],
        );
        let ids: std::collections::BTreeSet<String> =
            self.containers("app-green").into_iter().collect();
        testkit::eventually(
            std::time::Duration::from_secs(60),
            "the recreated green instances pass",
            || async {
                let passing = self.instances("app", true).await?;
                let green: std::collections::BTreeSet<String> = passing
                    .iter()
                    .filter(|e| e.service.tags.iter().flatten().any(|t| t == "green"))
                    .filter_map(|e| e.service.meta.as_ref()?.get("container-id").cloned())
                    .collect();
                let new = green
                    .iter()
                    .filter(|id| {
                        ids.iter()
                            .any(|c| id.starts_with(c.as_str()) || c.starts_with(id.as_str()))
                    })
                    .count();
                anyhow::ensure!(
                    new == n as usize && green.len() == n as usize,
                    "green passing: {green:?}, containers {ids:?}"
                );
                Ok(())
            },
        )
        .await;
    }

    /// `templater ARGS` inside the edge's templater container: exit code and all output.
    pub fn templater_in_edge(&self, args: &[&str]) -> (i32, String) {
        let mut all = vec!["exec", "-T", "templater", "templater"];
        all.extend_from_slice(args);
        text(self.project.try_compose(&all))
    }

    /// `templater ARGS` on the host, against the stack's Consul.
    pub fn templater_on_host(&self, args: &[&str]) -> (i32, String) {
        templater_on_host(&format!("127.0.0.1:{}", self.consul_port), args)
    }

    /// The instances of Consul service `name`, passing ones only when `passing`.
    pub async fn instances(&self, name: &str, passing: bool) -> anyhow::Result<Vec<ServiceEntry>> {
        instances(&self.consul, name, passing).await
    }

    /// The edge templater's `templater_reloads_total` (nginx reloads it made), from `/metrics`.
    pub async fn reloads(&self) -> f64 {
        testkit::metrics::scrape(self.dashboard_port)
            .await
            .and_then(|m| m.both("templater_reloads_total"))
            .expect("templater_reloads_total on the edge templater's /metrics")
    }

    /// The file `path` in the edge's nginx container.
    pub fn edge_file(&self, path: &str) -> String {
        self.compose(&["exec", "-T", "nginx", "cat", path])
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
