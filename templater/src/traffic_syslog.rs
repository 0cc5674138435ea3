//! Per service and colour traffic figures from the reload data plane (plain nginx, no Lua):
//! nginx sends one JSON access-log line per proxied request, as syslog over UDP, to a loopback
//! socket the templater binds when it starts ([`TrafficSocket`], `--traffic-listen`; port 0:
//! any free port, known before the first render). The templates print where
//! (`access_log {{ traffic.syslog }} {{ traffic.format }};` in each location that proxies to an
//! `sg_*` upstream; `log_format swarmgate_traffic`, whose fields [`parse`] reads, in
//! vhosts.conf.j2). No log file. The receiver
//! - reads each line as it arrives and counts it as swarmgate.traffic
//!   (templates/lua/swarmgate/traffic.lua) does in the Lua data plane: the service is the live
//!   service whose upstream the line names (the line is trusted no further than that look-up),
//!   the colour the one of the server that answered (the last `$upstream_addr`, so a retried
//!   request counts for the server that answered; `""` when that is no server of the plan, e.g.
//!   nginx's `no live upstreams`); the class by `$status`, plus `failed` when nginx answered
//!   itself (status >= 500 and no response header from the last attempt); the latency the last
//!   `$upstream_response_time`, else `$request_time`. A line of a request nginx never sent
//!   upstream (empty `$upstream_addr`) is not counted, as the Lua side never sees those;
//! - keeps cumulative [`Counts`] per pair since it started (its epoch) and every [`POLL`] takes
//!   the live index, drains what is waiting and hands the counts to [`Traffic::observe`], the
//!   same one the Lua poller feeds: `/metrics`, the dashboard and KV read one [`Traffic`].
//!
//! A datagram that is too long, not such a line, or names no live upstream is dropped and
//! counted; drops are logged at most once per [`DROP_LOG_EVERY`]. Pairs exist only for
//! services and colours of the live plan (and the one before it, for requests old workers
//! finish), so memory is bounded by the plan, and a line by [`MAX_LINE`].

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use swarmgate_runtime::metrics::LATENCY_BUCKETS;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::live::LiveView;
use crate::plan::Plan;
use crate::render::TrafficPage;
use crate::traffic::{live_index, Counts, LiveIndex, Traffic, TrafficDoc, POLL};

/// Where nginx's traffic log is received by default: loopback, any free port.
pub const DEFAULT_TRAFFIC_LISTEN: &str = "127.0.0.1:0";
/// The `log_format` the templates define and print in `access_log`.
pub const LOG_FORMAT: &str = "swarmgate_traffic";
/// The syslog tag nginx puts on each line.
pub const SYSLOG_TAG: &str = "swarmgate";
/// Longest datagram read (a line with dozens of retried peers is a few kilobytes).
pub const MAX_LINE: usize = 16 * 1024;
/// How often dropped datagrams may be logged.
pub const DROP_LOG_EVERY: Duration = Duration::from_secs(60);
/// Most datagrams read in one drain, so that a flood cannot hold a reading off.
const MAX_DRAIN: usize = 100_000;

/// Checks `--traffic-listen`: a loopback `IP:PORT` only (port 0: any free port), so that the
/// receiver is never reachable from outside the host.
pub fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    match raw.trim().parse::<SocketAddr>() {
        Ok(a) if a.ip().is_loopback() => Ok(a),
        Ok(a) => Err(format!(
            "{a}: nginx's traffic log is received on loopback only (127.0.0.1:PORT, [::1]:PORT; port 0: any free port)"
        )),
        Err(_) => Err(format!("{raw:?}: expected a loopback IP:PORT")),
    }
}

/// What the templates print for a receiver on `addr`.
pub fn page(addr: SocketAddr) -> TrafficPage {
    TrafficPage {
        syslog: format!("syslog:server={addr},nohostname,tag={SYSLOG_TAG}"),
        format: LOG_FORMAT.to_string(),
    }
}

/// One line as `log_format swarmgate_traffic` prints it (every value a JSON string).
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    upstream: Cow<'a, str>,
    #[serde(borrow)]
    addr: Cow<'a, str>,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(borrow)]
    header_time: Cow<'a, str>,
    #[serde(borrow)]
    response_time: Cow<'a, str>,
    #[serde(borrow)]
    request_time: Cow<'a, str>,
}

/// One proxied request, read from its line.
#[derive(Debug, PartialEq)]
pub struct Request<'a> {
    /// The upstream the line names (`$proxy_host`), to be looked up in the live plan.
    pub upstream: Cow<'a, str>,
    /// The server that answered (the last `$upstream_addr`), when that is an address.
    pub peer: Option<SocketAddr>,
    pub status: u16,
    /// nginx answered itself: no response header from the last attempt.
    pub failed: bool,
    pub seconds: f64,
}

/// Why a datagram was not counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    TooLong,
    Malformed,
    UnknownUpstream,
}

/// The last value of a list nginx prints for a request's attempts (`"a, b : c"`): the attempt
/// that answered.
fn last(list: &str) -> Option<&str> {
    list.split([' ', ','])
        .filter(|t| !t.is_empty() && *t != ":")
        .last()
}

/// A time nginx printed, when it is one.
fn seconds(v: Option<&str>) -> Option<f64> {
    v?.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
}

/// Reads one datagram (`<PRI>TIMESTAMP TAG: {json}`): the request, `None` for a request nginx
/// never sent upstream.
pub fn parse(datagram: &[u8]) -> Result<Option<Request<'_>>, Dropped> {
    if datagram.len() > MAX_LINE {
        return Err(Dropped::TooLong);
    }
    let text = std::str::from_utf8(datagram).map_err(|_| Dropped::Malformed)?;
    // The syslog header (priority, time, tag) holds no brace.
    let json = text
        .find('{')
        .map(|i| &text[i..])
        .ok_or(Dropped::Malformed)?;
    let line: Line = serde_json::from_str(json.trim_end()).map_err(|_| Dropped::Malformed)?;
    let Some(peer) = last(&line.addr) else {
        return Ok(None);
    };
    let status = line
        .status
        .parse::<u16>()
        .ok()
        .filter(|s| (100..1000).contains(s))
        .ok_or(Dropped::Malformed)?;
    let peer = peer.parse::<SocketAddr>().ok();
    Ok(Some(Request {
        peer,
        status,
        failed: status >= 500 && last(&line.header_time) == Some("-"),
        seconds: seconds(last(&line.response_time))
            .or_else(|| seconds(Some(&line.request_time)))
            .unwrap_or(0.0),
        upstream: line.upstream,
    }))
}

/// The live services by upstream, with the colour of each of their servers.
#[derive(Debug, Default)]
struct Routes {
    upstreams: HashMap<String, Route>,
}

#[derive(Debug)]
struct Route {
    service: String,
    colors: HashMap<SocketAddr, String>,
}

impl Routes {
    /// The served services of `plans`, a later plan's names winning.
    fn of(plans: &[&Plan]) -> Routes {
        let mut upstreams: HashMap<String, Route> = HashMap::new();
        for s in plans.iter().flat_map(|p| p.served()) {
            let route = upstreams
                .entry(s.upstream.clone())
                .or_insert_with(|| Route {
                    service: s.name.clone(),
                    colors: HashMap::new(),
                });
            route.service.clone_from(&s.name);
            for i in &s.instances {
                // A server at a host name cannot be told apart by the address nginx prints.
                if let Ok(addr) = i.server.parse::<SocketAddr>() {
                    route
                        .colors
                        .insert(addr, i.color.clone().unwrap_or_default());
                }
            }
        }
        Routes { upstreams }
    }

    /// The service and colour `r` counts for.
    fn attribute(&self, r: &Request) -> Option<(&str, &str)> {
        let route = self.upstreams.get(r.upstream.as_ref())?;
        let color = r.peer.and_then(|p| route.colors.get(&p));
        Some((&route.service, color.map_or("", String::as_str)))
    }
}

/// Cumulative counts by service, then colour, as `GET /traffic` answers them.
#[derive(Debug, Default)]
pub struct Tally {
    services: BTreeMap<String, BTreeMap<String, Counts>>,
}

impl Tally {
    /// Counts `r` for `service` and `color`.
    pub fn add(&mut self, service: &str, color: &str, r: &Request) {
        if !self.services.contains_key(service) {
            self.services.insert(service.to_string(), BTreeMap::new());
        }
        let colors = self.services.get_mut(service).expect("inserted above");
        if !colors.contains_key(color) {
            let fresh = Counts {
                buckets: vec![0; LATENCY_BUCKETS.len()],
                ..Counts::default()
            };
            colors.insert(color.to_string(), fresh);
        }
        let c = colors.get_mut(color).expect("inserted above");
        c.requests += 1;
        match r.status / 100 {
            2 => c.c2xx += 1,
            3 => c.c3xx += 1,
            4 => c.c4xx += 1,
            5 => c.c5xx += 1,
            _ => {} // 1xx: a request only
        }
        if r.failed {
            c.failed += 1;
        }
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| r.seconds <= *b) {
            c.buckets[i] += 1;
        }
        c.sum_seconds += r.seconds;
    }

    /// Forgets the services `keep` says no to (they start from nothing if they come back).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.services.retain(|s, _| keep(s));
    }

    /// The counts as a reading taken at `epoch`'s counting.
    pub fn doc(&self, epoch: f64) -> TrafficDoc {
        TrafficDoc {
            epoch,
            services: self.services.clone(),
        }
    }
}

/// Drops since they were last logged.
#[derive(Debug, Default)]
struct Drops {
    by_reason: BTreeMap<&'static str, u64>,
    logged: Option<Instant>,
}

impl Drops {
    fn count(&mut self, why: Dropped) {
        let reason = match why {
            Dropped::TooLong => "too_long",
            Dropped::Malformed => "malformed",
            Dropped::UnknownUpstream => "unknown_upstream",
        };
        *self.by_reason.entry(reason).or_default() += 1;
    }

    fn log_if_due(&mut self, now: Instant) {
        let due = self
            .logged
            .is_none_or(|at| now.duration_since(at) >= DROP_LOG_EVERY);
        if self.by_reason.is_empty() || !due {
            return;
        }
        let dropped = std::mem::take(&mut self.by_reason);
        tracing::warn!(
            ?dropped,
            "traffic log datagrams dropped (not a swarmgate_traffic line, or no live upstream)"
        );
        self.logged = Some(now);
    }
}

/// The bound socket nginx's traffic log goes to.
#[derive(Debug)]
pub struct TrafficSocket {
    socket: UdpSocket,
    addr: SocketAddr,
}

impl TrafficSocket {
    /// Binds `addr` (port 0: any free port).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<TrafficSocket> {
        let socket = UdpSocket::bind(addr).await?;
        let addr = socket.local_addr()?;
        Ok(TrafficSocket { socket, addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Receives and counts until cancelled (see the module's comment).
    pub async fn run(
        self,
        traffic: Arc<Traffic>,
        live: watch::Receiver<Arc<LiveView>>,
        token: CancellationToken,
    ) {
        // The start of this counting, as nginx's start is the Lua side's.
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut receiver = Receiver::new(live);
        let mut buf = vec![0u8; MAX_LINE + 1];
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tracing::info!(addr = %self.addr, "receiving nginx's traffic log");
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, _)) => receiver.take(&buf[..n]),
                    Err(e) => tracing::debug!(error = %e, "traffic log receive failed"),
                },
                _ = tick.tick() => {
                    let index = live_index(&receiver.live.borrow());
                    for _ in 0..MAX_DRAIN {
                        match self.socket.try_recv_from(&mut buf) {
                            Ok((n, _)) => receiver.take(&buf[..n]),
                            Err(_) => break,
                        }
                    }
                    let now = Instant::now();
                    traffic.observe(receiver.reading(&index, epoch), &index, now);
                    receiver.drops.log_if_due(now);
                }
            }
        }
    }
}

/// The receiver's state: the routes of the live plan (and the one before), the counts.
struct Receiver {
    live: watch::Receiver<Arc<LiveView>>,
    plans: [Arc<Plan>; 2],
    routes: Routes,
    tally: Tally,
    drops: Drops,
}

impl Receiver {
    fn new(live: watch::Receiver<Arc<LiveView>>) -> Receiver {
        let plan = live.borrow().plan.clone();
        Receiver {
            routes: Routes::of(&[&plan]),
            plans: [plan.clone(), plan],
            live,
            tally: Tally::default(),
            drops: Drops::default(),
        }
    }

    /// Follows the live plan when it changed.
    fn refresh(&mut self) {
        if !matches!(self.live.has_changed(), Ok(true)) {
            return;
        }
        let plan = self.live.borrow_and_update().plan.clone();
        if Arc::ptr_eq(&plan, &self.plans[1]) {
            return;
        }
        self.plans = [self.plans[1].clone(), plan];
        self.routes = Routes::of(&[&self.plans[0], &self.plans[1]]);
    }

    /// A reading of the counts of `index`'s services; the others are forgotten, so a service
    /// that comes back is counted from nothing (as a pair new to [`Traffic::observe`]).
    fn reading(&mut self, index: &LiveIndex, epoch: f64) -> TrafficDoc {
        self.tally.retain(|s| index.contains_key(s));
        self.tally.doc(epoch)
    }

    /// Counts one datagram.
    fn take(&mut self, datagram: &[u8]) {
        self.refresh();
        match parse(datagram) {
            Ok(Some(r)) => match self.routes.attribute(&r) {
                Some((service, color)) => self.tally.add(service, color, &r),
                None => self.drops.count(Dropped::UnknownUpstream),
            },
            Ok(None) => {}
            Err(why) => self.drops.count(why),
        }
    }
}

#[cfg(test)]
#[path = "traffic_syslog_tests.rs"]
mod tests;
