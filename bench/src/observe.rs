//! Observers: a blocking-query watch on a service's instances (through the shared Consul client),
//! and the Docker event stream with the daemon's own timestamps.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::StreamExt;
use swarmgate_consul::watch::watch;
use swarmgate_consul::Client;
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Watches `service` (the shared blocking-query loop) until it has `n` instances, answering when
/// that was seen. `armed` fires once the first answer is in (the next request, sent right
/// after, blocks): act a moment after it, so the watch is blocking when the change happens.
pub fn watch_instances(
    client: Client,
    service: String,
    n: usize,
) -> (
    oneshot::Receiver<()>,
    JoinHandle<anyhow::Result<SystemTime>>,
) {
    let (armed_tx, armed) = oneshot::channel();
    let handle = tokio::spawn(async move {
        let token = CancellationToken::new();
        let mut armed_tx = Some(armed_tx);
        let mut seen = None;
        let watching = watch(
            Duration::from_secs(30),
            |opts| {
                let (client, service) = (client.clone(), service.clone());
                async move { client.health_service(&service, &opts, false).await }
            },
            |entries: Vec<swarmgate_consul::ServiceEntry>, _| {
                if let Some(tx) = armed_tx.take() {
                    let _ = tx.send(());
                }
                if entries.len() == n {
                    seen = Some(SystemTime::now());
                    token.cancel();
                }
            },
            |_| {},
            token.clone(),
        );
        let _ = tokio::time::timeout(Duration::from_secs(60), watching).await;
        seen.ok_or_else(|| anyhow::anyhow!("{service} never reached {n} instances"))
    });
    (armed, handle)
}

/// A Docker event with the daemon's timestamp.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub action: String,
    pub at: SystemTime,
}

/// Streams container events into a channel.
pub fn docker_events(docker: bollard::Docker) -> mpsc::UnboundedReceiver<Event> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let filters: HashMap<&str, Vec<&str>> = [("type", vec!["container"])].into();
        let mut stream = docker.events(Some(
            EventsOptionsBuilder::default().filters(&filters).build(),
        ));
        while let Some(Ok(ev)) = stream.next().await {
            let at = UNIX_EPOCH + Duration::from_nanos(ev.time_nano.unwrap_or_default() as u64);
            let id = ev.actor.and_then(|a| a.id).unwrap_or_default();
            if tx
                .send(Event {
                    id,
                    action: ev.action.unwrap_or_default(),
                    at,
                })
                .is_err()
            {
                return;
            }
        }
    });
    rx
}

/// The next event `action` of container `id`.
pub async fn next_event(
    rx: &mut mpsc::UnboundedReceiver<Event>,
    id: &str,
    action: &str,
) -> anyhow::Result<SystemTime> {
    let wait = async {
        while let Some(ev) = rx.recv().await {
            if ev.id == id && ev.action == action {
                return Some(ev.at);
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no {action} event for {id}"))
}

/// `later - earlier` in milliseconds (negative when `later` came first).
pub fn ms_between(earlier: SystemTime, later: SystemTime) -> f64 {
    match later.duration_since(earlier) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    }
}
