//! What both benchmarks need of processes: the release daemons beside this binary (killed on
//! drop), a Consul client for an agent, and a process's resident memory.

use std::process::{Child, Command, Stdio};

use swarmgate_consul::{Client, ConsulConfig};
use testkit::ConsulAgent;

/// A daemon killed on drop.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the release binary `name` (built beside this one) with `args`, quietly.
pub fn spawn(name: &str, args: &[&str]) -> anyhow::Result<Daemon> {
    let bin = std::env::current_exe()?.with_file_name(name);
    let child = Command::new(&bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "start {} (cargo build --release --workspace): {e}",
                bin.display()
            )
        })?;
    Ok(Daemon(child))
}

/// The shared client, for `consul`.
pub fn client(consul: &ConsulAgent) -> anyhow::Result<Client> {
    Ok(Client::new(&ConsulConfig::new(consul.url().parse()?))?)
}

/// Resident and peak resident memory of `pid`, in MiB.
pub fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}
