//! What the registrator knows of one container: the facts, taken from Docker's inspect answer,
//! that decide its services. Kept free of bollard types so the service logic is testable alone.

use std::collections::BTreeMap;
use std::fmt;

use swarmgate_consul::CheckStatus;

/// A Docker container id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(pub String);

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0[..self.0.len().min(12)])
    }
}

/// A transport protocol of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// `80/tcp` → (80, Tcp); `53/udp` → (53, Udp); sctp and garbage → none.
    pub fn parse_port_key(key: &str) -> Option<(u16, Proto)> {
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return None,
        };
        Some((port.parse().ok()?, proto))
    }
}

/// One container port, with its host binding when published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub container_port: u16,
    pub proto: Proto,
    /// `(host ip, host port)` of the first binding, when published.
    pub binding: Option<(String, u16)>,
}

/// A network the container is attached to, with its addresses on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkAddr {
    pub ipv4: String,
    pub ipv6: String,
}

/// The parts of `Config` a `-tags` template may print (besides image, labels and env).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigFacts {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub working_dir: String,
    /// `Config.StopSignal` as a number, when the image or container sets one: `docker stop`
    /// sends it first, so a `kill` with it is a stop request whatever the signal.
    pub stop_signal: Option<i32>,
}

/// The facts about one container that decide its services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: ContainerId,
    /// The name without Docker's leading `/`.
    pub name: String,
    /// The image as the container was created from it (`Config.Image`).
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub env: Vec<String>,
    /// Published and exposed ports, sorted by port and protocol.
    pub ports: Vec<Port>,
    pub networks: BTreeMap<String, NetworkAddr>,
    /// `HostConfig.NetworkMode` (`host` means the ports are the host's).
    pub network_mode: String,
    /// Docker's health, when the image or container defines a `HEALTHCHECK`.
    pub health: Option<CheckStatus>,
    pub paused: bool,
    /// `State.StartedAt`: which run of the container this is (every `start` gives a new one).
    pub started_at: String,
    pub config: ConfigFacts,
}

impl ContainerInfo {
    /// A container with no facts at all (to check a template's literal text).
    pub fn empty() -> Self {
        ContainerInfo {
            id: ContainerId(String::new()),
            name: String::new(),
            image: String::new(),
            labels: BTreeMap::new(),
            env: Vec::new(),
            ports: Vec::new(),
            networks: BTreeMap::new(),
            network_mode: String::new(),
            health: None,
            paused: false,
            started_at: String::new(),
            config: ConfigFacts::default(),
        }
    }
}

/// Maps a Docker health status (an inspect answer's or a `health_status` event's) to the Consul
/// status we mirror it as. The only such mapping.
pub fn docker_health(status: &str) -> Option<CheckStatus> {
    match status {
        "healthy" => Some(CheckStatus::Passing),
        "unhealthy" => Some(CheckStatus::Critical),
        "starting" => Some(CheckStatus::Warning),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_keys() {
        assert_eq!(Proto::parse_port_key("80/tcp"), Some((80, Proto::Tcp)));
        assert_eq!(Proto::parse_port_key("53/udp"), Some((53, Proto::Udp)));
        assert_eq!(Proto::parse_port_key("9/sctp"), None);
        assert_eq!(Proto::parse_port_key("x/tcp"), None);
    }

    #[test]
    fn health_mapping() {
        assert_eq!(docker_health("healthy"), Some(CheckStatus::Passing));
        assert_eq!(docker_health("unhealthy"), Some(CheckStatus::Critical));
        assert_eq!(docker_health("starting"), Some(CheckStatus::Warning));
        assert_eq!(docker_health("none"), None);
    }
}
