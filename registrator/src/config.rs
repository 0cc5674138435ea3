//! Command line and environment: registrator's flags with registrator's meanings (both `-flag`
//! and `--flag` spellings), Consul's own environment variables, and the checked [`Config`].

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::{ArgAction, CommandFactory, Parser, ValueEnum};
use swarmgate_consul::{ConsulArgs, ConsulConfig};
use swarmgate_runtime::telemetry::LogFormat;

use crate::container::ContainerInfo;
use crate::service::ModelSettings;

/// Exit codes, documented in `--help`.
pub const EXIT_HELP: &str = "EXIT CODES:
    0   stopped by SIGINT/SIGTERM after draining (and --help, --version)
    1   a fatal runtime error (logged)
    64  bad flags or environment, clap's own errors included (the message names the input)
    69  Consul had no leader after -retry-attempts tries
    130 a second signal cut the drain short";

pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";
pub const DEFAULT_KV_PREFIX: &str = "services";
pub const DEFAULT_RETRY_INTERVAL_MS: u64 = 2000;
pub const DEFAULT_VERIFY_INTERVAL_SECS: u64 = 5;

/// When a dead container's services are removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum DeregisterMode {
    /// Whatever the exit code.
    #[default]
    Always,
    /// Only on exit code 0; a failed container stays registered, in maintenance.
    OnSuccess,
}

/// Registers every published Docker container port as a Consul service (catalog and KV).
#[derive(Debug, Parser)]
#[command(name = "registrator", version, after_help = EXIT_HELP)]
pub struct Args {
    /// Consul to register with: consul://HOST:PORT or consul-tls://HOST:PORT [default: $CONSUL_HTTP_ADDR, else 127.0.0.1:8500]
    #[arg(value_name = "URI")]
    pub uri: Option<String>,
    #[command(flatten)]
    pub consul: ConsulArgs,
    /// IP or host name to register published ports at (a name is resolved at start-up and
    /// before each listing) [default: the bound address, else this host's].
    #[arg(long = "ip", env = "REGISTRATOR_IP")]
    pub ip: Option<String>,
    /// Register exposed ports at the container's own address instead of published ports.
    #[arg(long, env = "REGISTRATOR_INTERNAL", default_value_t = false, action = ArgAction::Set, require_equals = true, num_args = 0..=1, default_missing_value = "true")]
    pub internal: bool,
    /// Only register containers that set SERVICE_NAME.
    #[arg(long, env = "REGISTRATOR_EXPLICIT", default_value_t = false, action = ArgAction::Set, require_equals = true, num_args = 0..=1, default_missing_value = "true")]
    pub explicit: bool,
    /// Take the service address from this container label.
    #[arg(
        long = "useIpFromLabel",
        alias = "use-ip-from-label",
        env = "REGISTRATOR_USE_IP_FROM_LABEL"
    )]
    pub use_ip_from_label: Option<String>,
    /// Comma list of tags added to every service; a Go template over the container's inspect
    /// data (`dc1,{{.Config.Hostname}}`), as gliderlabs reads it.
    #[arg(long, env = "REGISTRATOR_TAGS", default_value = "")]
    pub tags: String,
    /// gliderlabs' service TTL; Consul ignores it there, and so does swarmgate (a warning once).
    #[arg(
        long,
        env = "REGISTRATOR_TTL",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub ttl: i64,
    /// gliderlabs' TTL refresh interval; ignored like -ttl.
    #[arg(
        long = "ttl-refresh",
        env = "REGISTRATOR_TTL_REFRESH",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub ttl_refresh: i64,
    /// Seconds between full re-syncs with Docker (0: only on start and reconnect).
    #[arg(long, env = "REGISTRATOR_RESYNC", default_value_t = 0)]
    pub resync: u64,
    /// Remove services this registrator owns whose containers no longer run.
    #[arg(long, env = "REGISTRATOR_CLEANUP", default_value_t = false, action = ArgAction::Set, require_equals = true, num_args = 0..=1, default_missing_value = "true")]
    pub cleanup: bool,
    /// When a dead container is deregistered: always, or only when it exited 0.
    #[arg(long, env = "REGISTRATOR_DEREGISTER", value_enum, default_value_t = DeregisterMode::Always)]
    pub deregister: DeregisterMode,
    /// Tries to find a Consul leader at start-up (-1: forever; 0: one try).
    #[arg(
        long = "retry-attempts",
        env = "REGISTRATOR_RETRY_ATTEMPTS",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub retry_attempts: i64,
    /// Milliseconds between those tries.
    #[arg(long = "retry-interval", env = "REGISTRATOR_RETRY_INTERVAL", default_value_t = DEFAULT_RETRY_INTERVAL_MS)]
    pub retry_interval: u64,
    /// KV prefix of service records (<prefix>/<name>/<id>); empty turns them off.
    #[arg(long = "kv-prefix", env = "REGISTRATOR_KV_PREFIX", default_value = DEFAULT_KV_PREFIX)]
    pub kv_prefix: String,
    /// This node's name, the first part of service ids [default: the host name].
    #[arg(long = "node-name", env = "REGISTRATOR_NODE_NAME")]
    pub node_name: Option<String>,
    /// Network whose address containers are registered at (SERVICE_NETWORK overrides).
    #[arg(long, env = "REGISTRATOR_NETWORK")]
    pub network: Option<String>,
    /// Deregister every service of this node on SIGTERM/SIGINT.
    #[arg(long = "deregister-on-shutdown", env = "REGISTRATOR_DEREGISTER_ON_SHUTDOWN", default_value_t = false, action = ArgAction::Set, require_equals = true, num_args = 0..=1, default_missing_value = "true")]
    pub deregister_on_shutdown: bool,
    /// Serve /metrics (Prometheus) and /health on this address.
    #[arg(long = "metrics-addr", env = "REGISTRATOR_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Seconds between checks that Consul still holds what it should (a restarted agent).
    #[arg(long = "verify-interval", env = "REGISTRATOR_VERIFY_INTERVAL", default_value_t = DEFAULT_VERIFY_INTERVAL_SECS)]
    pub verify_interval: u64,
    /// Docker endpoint.
    #[arg(long = "docker-host", env = "DOCKER_HOST", default_value = DEFAULT_DOCKER_HOST)]
    pub docker_host: String,
    /// Log format.
    #[arg(long = "log-format", env = "REGISTRATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
}

impl Args {
    /// Parses the process arguments, accepting registrator's single-dash long flags; a bad
    /// flag or variable exits 64, like every other configuration error.
    pub fn parse_compat() -> Self {
        Args::try_parse_from(normalize_single_dash(std::env::args(), &long_flags()))
            .unwrap_or_else(|e| swarmgate_runtime::exit::clap_exit(e))
    }
}

fn long_flags() -> Vec<String> {
    Args::command()
        .get_arguments()
        .flat_map(|a| a.get_long_and_visible_aliases().unwrap_or_default())
        .chain(["help", "version"])
        .map(str::to_string)
        .collect()
}

/// Turns `-ip` into `--ip` and `-resync=5` into `--resync=5` for known long flags; leaves
/// everything after `--` alone.
pub fn normalize_single_dash(
    args: impl IntoIterator<Item = String>,
    longs: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = false;
    for arg in args {
        if arg == "--" {
            rest = true;
        }
        let name = arg
            .strip_prefix('-')
            .filter(|n| !rest && !n.starts_with('-') && n.len() > 1);
        match name.map(|n| n.split('=').next().unwrap_or(n)) {
            Some(flag) if longs.iter().any(|l| l == flag) => out.push(format!("-{arg}")),
            _ => out.push(arg),
        }
    }
    out
}

/// The checked configuration `run` takes. Tests build it directly.
#[derive(Clone, Debug)]
pub struct Config {
    pub consul: ConsulConfig,
    pub docker_host: String,
    pub model: ModelSettings,
    pub resync: Option<Duration>,
    pub verify_interval: Duration,
    pub cleanup: bool,
    pub deregister: DeregisterMode,
    /// Leader-wait tries at start-up; `None` is forever.
    pub retry_attempts: Option<u32>,
    pub retry_interval: Duration,
    pub deregister_on_shutdown: bool,
    pub metrics_addr: Option<SocketAddr>,
    /// `-ip` when it is a host name: resolved again before each listing.
    pub ip_name: Option<String>,
    /// Flags accepted for gliderlabs compatibility that do nothing here (warned about once).
    pub ignored_flags: Vec<&'static str>,
}

/// A flag or variable that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl TryFrom<Args> for Config {
    type Error = ConfigError;

    fn try_from(a: Args) -> Result<Self, ConfigError> {
        let consul = a
            .consul
            .config(a.uri.as_deref())
            .map_err(|e| ConfigError(e.to_string()))?;
        let (host_ip, ip_name) = match a.ip.as_deref() {
            None => (None, None),
            Some(ip) if ip.parse::<std::net::IpAddr>().is_ok() => (Some(ip.to_string()), None),
            Some(name) => {
                let ip = resolve_name(name).ok_or_else(|| {
                    ConfigError(format!(
                        "-ip {name:?}: not an IP address, and the name does not resolve"
                    ))
                })?;
                (Some(ip), Some(name.to_string()))
            }
        };
        let node = match a.node_name.clone() {
            Some(n) => n,
            None => swarmgate_runtime::host::host_name()
                .ok_or_else(|| ConfigError("cannot read the host name; pass --node-name".into()))?,
        };
        crate::labels::check_name("--node-name", &node).map_err(|e| ConfigError(e.to_string()))?;
        let tags = match a.tags.trim() {
            "" => None,
            raw => Some(
                crate::template::TagTemplate::parse(raw)
                    .map_err(|e| ConfigError(format!("-tags {raw:?}: {e}")))?,
            ),
        };
        if let Some(literal) = tags.as_ref().filter(|t| t.is_literal()) {
            let text = literal.render(&ContainerInfo::empty()).unwrap_or_default();
            for tag in crate::labels::split_tags(&text) {
                crate::labels::check_text("-tags", &tag).map_err(|e| ConfigError(e.to_string()))?;
            }
        }
        let ignored_flags = [("-ttl", a.ttl), ("-ttl-refresh", a.ttl_refresh)]
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .map(|(flag, _)| flag)
            .collect();
        if a.verify_interval == 0 {
            return Err(ConfigError(
                "--verify-interval must be at least 1 second".into(),
            ));
        }
        let fallback_ip = host_ip.clone().unwrap_or_else(|| resolve_host_ip(&node));
        Ok(Config {
            consul,
            docker_host: a.docker_host,
            model: ModelSettings {
                node,
                host_ip,
                fallback_ip,
                internal: a.internal,
                explicit: a.explicit,
                ip_label: a.use_ip_from_label,
                tags,
                network: a.network,
                kv_prefix: crate::kv::KvPrefix::new(&a.kv_prefix)
                    .map_err(|e| ConfigError(e.to_string()))?,
            },
            resync: (a.resync > 0).then(|| Duration::from_secs(a.resync)),
            verify_interval: Duration::from_secs(a.verify_interval),
            cleanup: a.cleanup,
            deregister: a.deregister,
            retry_attempts: u32::try_from(a.retry_attempts).ok(),
            retry_interval: Duration::from_millis(a.retry_interval),
            deregister_on_shutdown: a.deregister_on_shutdown,
            metrics_addr: a.metrics_addr,
            ip_name,
            ignored_flags,
        })
    }
}

/// A host name's address, IPv4 first (gliderlabs: `-ip ${HOST_NAME}`, `-ip localhost`).
pub fn resolve_name(name: &str) -> Option<String> {
    let addrs: Vec<_> = (name, 0).to_socket_addrs().ok()?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(|a| a.ip().to_string())
}

/// The host's address as registrator finds it: its name resolved, first non-loopback IPv4.
fn resolve_host_ip(host: &str) -> String {
    (host, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.find(|a| a.is_ipv4() && !a.ip().is_loopback()))
        .map_or_else(|| "127.0.0.1".to_string(), |a| a.ip().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        let argv = std::iter::once("registrator")
            .chain(args.iter().copied())
            .map(str::to_string);
        Args::try_parse_from(normalize_single_dash(argv, &long_flags())).expect("parses")
    }

    #[test]
    fn single_and_double_dash_spellings() {
        let a = parse(&[
            "-ip",
            "10.0.0.1",
            "-internal",
            "--cleanup",
            "-resync=30",
            "-tags",
            "a,b",
            "-useIpFromLabel",
            "ip",
            "consul://c:8500",
        ]);
        assert_eq!(a.ip.as_deref(), Some("10.0.0.1"));
        assert!(a.internal && a.cleanup);
        assert_eq!(a.resync, 30);
        assert_eq!(a.tags, "a,b");
        assert_eq!(a.use_ip_from_label.as_deref(), Some("ip"));
        assert_eq!(a.uri.as_deref(), Some("consul://c:8500"));
    }

    #[test]
    fn bool_flags_take_explicit_values_and_deregister_modes() {
        let a = parse(&[
            "-internal=false",
            "-deregister",
            "on-success",
            "-retry-attempts",
            "-1",
        ]);
        assert!(!a.internal);
        assert_eq!(a.deregister, DeregisterMode::OnSuccess);
        assert_eq!(a.retry_attempts, -1);
    }

    #[test]
    fn normalize_leaves_short_and_unknown_flags() {
        let longs = vec!["ip".to_string()];
        let out = normalize_single_dash(["-h", "-ip", "-x", "--", "-ip"].map(String::from), &longs);
        assert_eq!(out, ["-h", "--ip", "-x", "--", "-ip"]);
    }

    #[test]
    fn gliderlabs_flags_are_accepted() {
        let a = parse(&[
            "--node-name",
            "n1",
            "-ttl",
            "30",
            "-ttl-refresh",
            "10",
            "-ip",
            "localhost",
        ]);
        let c = Config::try_from(a).expect("valid");
        assert_eq!(c.ignored_flags, ["-ttl", "-ttl-refresh"]);
        assert_eq!(c.model.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(c.ip_name.as_deref(), Some("localhost"));
        let a = parse(&["--node-name", "n1", "-tags", "{{.Config.Nope}}"]);
        let err = Config::try_from(a).expect_err("unknown field").to_string();
        assert!(
            err.contains("-tags") && err.contains(".Config.Nope"),
            "{err}"
        );
    }

    #[test]
    fn config_checks_inputs_and_names_them() {
        let mut a = parse(&["--node-name", "n1", "consul-tls://c:8501"]);
        let c = Config::try_from(a).expect("valid");
        assert_eq!(c.consul.address.to_string(), "https://c:8501/");
        assert_eq!(c.retry_attempts, Some(0));
        a = parse(&["--node-name", "n1", "-ip", "nope.invalid"]);
        assert!(Config::try_from(a)
            .expect_err("bad ip")
            .to_string()
            .contains("-ip"));
        a = parse(&["--node-name", "bad name"]);
        assert!(Config::try_from(a)
            .expect_err("bad node")
            .to_string()
            .contains("--node-name"));
        a = parse(&["--node-name", "n", "etcd://x"]);
        assert!(Config::try_from(a)
            .expect_err("bad uri")
            .to_string()
            .contains("etcd://x"));
    }
}
