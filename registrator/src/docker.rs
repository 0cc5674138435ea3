//! The Docker side: connecting (with API version negotiation), listing and inspecting running
//! containers, and the container event stream, all turned into the registrator's own types.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::models::{ContainerInspectResponse, EventMessage};
use bollard::query_parameters::{EventsOptionsBuilder, ListContainersOptions};
use bollard::Docker;
use futures_util::stream::{self, Stream, StreamExt};
use swarmgate_consul::CheckStatus;

use crate::container::{
    docker_health, ConfigFacts, ContainerId, ContainerInfo, NetworkAddr, Port, Proto,
};

/// How long reading the event history may take before what was read is used.
const HISTORY_TIMEOUT: Duration = Duration::from_secs(5);
/// Inspects run at once during a full listing.
const INSPECT_CONCURRENCY: usize = 16;
/// The container events the registrator acts on. Not `stop`: Docker reports it once the
/// container has stopped, after its `die` (a stop request shows as `kill` with the stop signal).
const EVENTS: [&str; 7] = [
    "start",
    "kill",
    "die",
    "destroy",
    "pause",
    "unpause",
    "health_status",
];

/// What a Docker event means for registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DockerEvent {
    Start(ContainerId),
    /// `kill` with a terminating signal (what `docker stop` sends first): out of rotation now.
    Stopping(ContainerId),
    /// `kill` with another signal: a stop request only if it is the container's own stop signal
    /// (`STOPSIGNAL`, `--stop-signal`), which the desired state knows from its inspect.
    Signalled {
        id: ContainerId,
        signal: i32,
    },
    Died {
        id: ContainerId,
        exit_code: i64,
    },
    Destroyed(ContainerId),
    Paused(ContainerId, bool),
    Health(ContainerId, CheckStatus),
}

/// Connects to `host` (`unix://…` or `tcp://…`) and negotiates the API version with the daemon.
pub async fn connect(host: &str) -> Result<Docker, bollard::errors::Error> {
    let host = if host.starts_with('/') {
        format!("unix://{host}")
    } else {
        host.to_string()
    };
    Docker::connect_with_host(&host)?.negotiate_version().await
}

/// Subscribes to container events that happen after `since` (Docker replays the ones between
/// `since` and the moment the subscription lands, so nothing falls in between).
pub fn events(
    docker: &Docker,
    since: SystemTime,
) -> impl Stream<Item = Result<EventMessage, bollard::errors::Error>> {
    let since = since.duration_since(UNIX_EPOCH).unwrap_or_default();
    let filters: HashMap<&str, Vec<&str>> =
        [("type", vec!["container"]), ("event", EVENTS.to_vec())].into();
    let options = EventsOptionsBuilder::default()
        .since(&format!("{}.{:09}", since.as_secs(), since.subsec_nanos()))
        .filters(&filters)
        .build();
    docker.events(Some(options))
}

/// Containers whose last lifecycle event between `since` and now was a `kill` with no `start` or
/// `die` after it, with that kill's signal (`None`: a terminating one; else a stop request only
/// if it is the container's own stop signal): if such a container still runs, it may be running
/// out its grace period. Docker's event history is a hint, bounded by `since` and by how
/// much history the daemon keeps; a failure to read it answers what was read.
pub async fn recent_stop_requests(
    docker: &Docker,
    since: SystemTime,
) -> Vec<(ContainerId, Option<i32>)> {
    let to_secs = |t: SystemTime| {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
    };
    let filters: HashMap<&str, Vec<&str>> = [
        ("type", vec!["container"]),
        ("event", vec!["start", "kill", "die"]),
    ]
    .into();
    let options = EventsOptionsBuilder::default()
        .since(&to_secs(since))
        .until(&to_secs(SystemTime::now()))
        .filters(&filters)
        .build();
    let mut last: HashMap<ContainerId, Option<Option<i32>>> = HashMap::new();
    let history = docker
        .events(Some(options))
        .take_while(|e| std::future::ready(e.is_ok()));
    let read = history.for_each(|event| {
        match event.ok().as_ref().and_then(classify) {
            Some(DockerEvent::Stopping(id)) => {
                last.insert(id, Some(None));
            }
            Some(DockerEvent::Signalled { id, signal }) => {
                // A terminating kill before it stays the request (docker stop's KILL follows).
                let kill = last.entry(id).or_insert(None);
                if kill.is_none() {
                    *kill = Some(Some(signal));
                }
            }
            Some(DockerEvent::Start(id) | DockerEvent::Died { id, .. }) => {
                last.insert(id, None);
            }
            _ => {}
        }
        std::future::ready(())
    });
    if tokio::time::timeout(HISTORY_TIMEOUT, read).await.is_err() {
        tracing::warn!("reading docker's event history timed out; using what was read");
    }
    let mut stopping: Vec<(ContainerId, Option<i32>)> = last
        .into_iter()
        .filter_map(|(id, kill)| Some((id, kill?)))
        .collect();
    stopping.sort();
    stopping
}

/// Reads one event; `None` for events that change nothing.
pub fn classify(event: &EventMessage) -> Option<DockerEvent> {
    let actor = event.actor.as_ref()?;
    let id = ContainerId(actor.id.clone()?);
    let attr = |k: &str| {
        actor
            .attributes
            .as_ref()
            .and_then(|a| a.get(k))
            .map(String::as_str)
    };
    let action = event.action.as_deref()?;
    Some(match action {
        "start" => DockerEvent::Start(id),
        "kill" => match attr("signal").and_then(signal_number)? {
            n if TERMINATING.contains(&n) => DockerEvent::Stopping(id),
            signal => DockerEvent::Signalled { id, signal },
        },
        "die" => DockerEvent::Died {
            id,
            exit_code: attr("exitCode").and_then(|c| c.parse().ok()).unwrap_or(-1),
        },
        "destroy" => DockerEvent::Destroyed(id),
        "pause" => DockerEvent::Paused(id, true),
        "unpause" => DockerEvent::Paused(id, false),
        a if a.starts_with("health_status") => {
            let status = a.rsplit(':').next().unwrap_or_default().trim();
            DockerEvent::Health(id, docker_health(status)?)
        }
        _ => return None,
    })
}

/// SIGINT, SIGQUIT, SIGKILL and SIGTERM end a container whatever it is; a SIGHUP or SIGUSR1
/// does not (unless it is the container's own stop signal).
const TERMINATING: [i32; 4] = [2, 3, 9, 15];

/// A signal as Docker writes it (`15`, `SIGTERM`, `TERM`, any case) as its Linux number.
pub fn signal_number(signal: &str) -> Option<i32> {
    let s = signal.trim();
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|sig| sig as i32)
}

/// The running containers, inspected concurrently; each is handed to `each` as soon as it is
/// inspected (so registration can start before the listing ends), and their ids are answered.
/// Containers that vanish meanwhile are left out.
pub async fn running_containers<F, Fut>(
    docker: &Docker,
    mut each: F,
) -> Result<Vec<ContainerId>, bollard::errors::Error>
where
    F: FnMut(ContainerInfo) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let list = docker
        .list_containers(None::<ListContainersOptions>)
        .await?;
    let ids = list.into_iter().filter_map(|c| c.id.map(ContainerId));
    let mut inspected = stream::iter(ids)
        .map(|id| async move { inspect(docker, &id).await })
        .buffer_unordered(INSPECT_CONCURRENCY);
    let mut out = Vec::new();
    while let Some(r) = inspected.next().await {
        if let Some(info) = r? {
            out.push(info.id.clone());
            each(info).await;
        }
    }
    out.sort();
    Ok(out)
}

/// One container's facts, or `None` when it is gone or not running.
pub async fn inspect(
    docker: &Docker,
    id: &ContainerId,
) -> Result<Option<ContainerInfo>, bollard::errors::Error> {
    match docker.inspect_container(&id.0, None).await {
        Ok(resp) => Ok(to_info(resp)),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn to_info(resp: ContainerInspectResponse) -> Option<ContainerInfo> {
    let state = resp.state.unwrap_or_default();
    if state.running != Some(true) || state.restarting == Some(true) {
        return None;
    }
    let config = resp.config.unwrap_or_default();
    let net = resp.network_settings.unwrap_or_default();
    let network_mode = resp
        .host_config
        .and_then(|h| h.network_mode)
        .unwrap_or_default();
    let health = state
        .health
        .and_then(|h| h.status)
        .and_then(|s| docker_health(s.as_ref()));
    let ports = ports_of(
        net.ports.unwrap_or_default(),
        config.exposed_ports.unwrap_or_default(),
        network_mode == "host",
    );
    let networks = net
        .networks
        .unwrap_or_default()
        .into_iter()
        .map(|(name, ep)| {
            let addr = NetworkAddr {
                ipv4: ep.ip_address.unwrap_or_default(),
                ipv6: ep.global_ipv6_address.unwrap_or_default(),
            };
            (name, addr)
        })
        .collect();
    Some(ContainerInfo {
        id: ContainerId(resp.id?),
        name: resp
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image: config.image.or(resp.image).unwrap_or_default(),
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        env: config.env.unwrap_or_default(),
        ports,
        networks,
        network_mode,
        health,
        paused: state.paused == Some(true),
        started_at: state.started_at.unwrap_or_default(),
        config: ConfigFacts {
            hostname: config.hostname.unwrap_or_default(),
            domainname: config.domainname.unwrap_or_default(),
            user: config.user.unwrap_or_default(),
            working_dir: config.working_dir.unwrap_or_default(),
            stop_signal: config.stop_signal.as_deref().and_then(signal_number),
        },
    })
}

type PortMap = HashMap<String, Option<Vec<bollard::models::PortBinding>>>;

/// Published ports with their first binding (IPv4 preferred), plus exposed-only ports. In host
/// network mode an exposed port is the host's own.
fn ports_of(published: PortMap, exposed: Vec<String>, host_mode: bool) -> Vec<Port> {
    let mut by_key: BTreeMap<(u16, Proto), Option<(String, u16)>> = BTreeMap::new();
    for key in exposed {
        if let Some(k) = Proto::parse_port_key(&key) {
            by_key.insert(k, host_mode.then(|| (String::new(), k.0)));
        }
    }
    for (key, bindings) in published {
        let Some(k) = Proto::parse_port_key(&key) else {
            continue;
        };
        let mut bindings: Vec<(String, u16)> = bindings
            .unwrap_or_default()
            .into_iter()
            .filter_map(|b| Some((b.host_ip.unwrap_or_default(), b.host_port?.parse().ok()?)))
            .collect();
        bindings.sort_by_key(|(ip, _)| ip.contains(':'));
        let entry = by_key.entry(k).or_insert(None);
        if let Some(first) = bindings.into_iter().next() {
            *entry = Some(first);
        }
    }
    by_key
        .into_iter()
        .map(|((container_port, proto), binding)| Port {
            container_port,
            proto,
            binding,
        })
        .collect()
}

/// How long ago Docker stamped `event`.
pub fn event_lag(event: &EventMessage) -> Option<Duration> {
    let at = UNIX_EPOCH + Duration::from_nanos(u64::try_from(event.time_nano?).ok()?);
    SystemTime::now().duration_since(at).ok()
}

/// Seconds since the epoch, a little in the past: the `since` of a subscription made now.
pub fn subscription_start() -> SystemTime {
    SystemTime::now() - Duration::from_millis(500)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{EventActor, PortBinding};

    fn event(action: &str, attrs: &[(&str, &str)]) -> EventMessage {
        EventMessage {
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some("c1".into()),
                attributes: Some(
                    attrs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
            }),
            ..EventMessage::default()
        }
    }

    #[test]
    fn signals_read_as_docker_writes_them() {
        for (text, n) in [
            ("15", Some(15)),
            ("SIGTERM", Some(15)),
            ("term", Some(15)),
            ("SIGWINCH", Some(28)),
            ("WINCH", Some(28)),
            (" 28 ", Some(28)),
            ("SIGUSR1", Some(10)),
            ("0", None),
            ("65", None),
            ("SIGRTMIN+3", None),
            ("", None),
        ] {
            assert_eq!(signal_number(text), n, "{text:?}");
        }
    }

    #[test]
    fn classifies_events() {
        let id = || ContainerId("c1".into());
        assert_eq!(
            classify(&event("start", &[])),
            Some(DockerEvent::Start(id()))
        );
        assert_eq!(
            classify(&event("kill", &[("signal", "15")])),
            Some(DockerEvent::Stopping(id()))
        );
        assert_eq!(
            classify(&event("kill", &[("signal", "1")])),
            Some(DockerEvent::Signalled {
                id: id(),
                signal: 1
            })
        );
        assert_eq!(classify(&event("kill", &[("signal", "nonsense")])), None);
        // `stop` comes after `die` (the container has stopped): no request against a later run,
        // e.g. one dockerd restarts while the registrator is disconnected.
        assert_eq!(classify(&event("stop", &[])), None);
        assert_eq!(
            classify(&event("die", &[("exitCode", "137")])),
            Some(DockerEvent::Died {
                id: id(),
                exit_code: 137
            })
        );
        assert_eq!(
            classify(&event("health_status: unhealthy", &[])),
            Some(DockerEvent::Health(id(), CheckStatus::Critical))
        );
        assert_eq!(
            classify(&event("pause", &[])),
            Some(DockerEvent::Paused(id(), true))
        );
        assert_eq!(classify(&event("exec_start: sh", &[])), None);
    }

    #[test]
    fn ports_prefer_ipv4_bindings_and_keep_exposed() {
        let binding = |ip: &str, port: &str| PortBinding {
            host_ip: Some(ip.into()),
            host_port: Some(port.into()),
        };
        let published: PortMap = [
            (
                "80/tcp".to_string(),
                Some(vec![binding("::", "8080"), binding("0.0.0.0", "8080")]),
            ),
            (
                "53/udp".to_string(),
                Some(vec![binding("127.0.0.1", "5353")]),
            ),
            ("9000/tcp".to_string(), None),
        ]
        .into();
        let ports = ports_of(published, vec!["9000/tcp".into(), "7000/tcp".into()], false);
        let got: Vec<_> = ports
            .iter()
            .map(|p| (p.container_port, p.proto, p.binding.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (53, Proto::Udp, Some(("127.0.0.1".into(), 5353))),
                (80, Proto::Tcp, Some(("0.0.0.0".into(), 8080))),
                (7000, Proto::Tcp, None),
                (9000, Proto::Tcp, None),
            ]
        );
        let host = ports_of(PortMap::new(), vec!["8500/tcp".into()], true);
        assert_eq!(host[0].binding, Some((String::new(), 8500)));
    }
}
