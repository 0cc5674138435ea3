//! The process's own figures on every scrape, named as Prometheus' other clients name them:
//! memory, CPU, descriptors and start time, read from `/proc/self` and `getrusage`. A figure
//! that cannot be read is left out of that scrape.

use std::fmt;

use nix::sys::resource::{getrlimit, getrusage, Resource, UsageWho};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// Registered by [`crate::metrics::Families`] into every daemon's registry.
#[derive(Debug)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let bytes = |field| status_bytes(field).map(|b| b as f64);
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                bytes("VmRSS:"),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                bytes("VmSize:"),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                open_fds(),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                getrlimit(Resource::RLIMIT_NOFILE)
                    .ok()
                    .map(|(soft, _)| soft as f64),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                start_time_seconds(),
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(v).encode(m)?;
            }
        }
        if let Some(cpu) = cpu_seconds() {
            let m = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(cpu).encode(m)?;
        }
        Ok(())
    }
}

/// Resident memory of this process in bytes (`VmRSS` in `/proc/self/status`); 0 when unknown.
pub fn resident_bytes() -> u64 {
    status_bytes("VmRSS:").unwrap_or(0)
}

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line[field.len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn open_fds() -> Option<f64> {
    // The listing's own descriptor is among those counted, as in Prometheus' Go client.
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as f64)
}

fn cpu_seconds() -> Option<f64> {
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    // Summed in whole microseconds, so that the figure prints as `0.232841`, not with a
    // float sum's tail.
    let micros = |t: nix::sys::time::TimeVal| t.tv_sec() * 1_000_000 + t.tv_usec();
    Some((micros(usage.user_time()) + micros(usage.system_time())) as f64 / 1e6)
}

/// Boot time (`btime` in `/proc/stat`) plus the process's start in clock ticks after boot
/// (field 22 of `/proc/self/stat`).
fn start_time_seconds() -> Option<f64> {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let started: f64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let boot: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(boot + started / ticks as f64)
}
