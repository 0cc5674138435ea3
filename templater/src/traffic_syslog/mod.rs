//! Per service and colour traffic figures from the reload data plane (plain nginx, no Lua):
//! nginx sends one JSON access-log line per proxied request, as syslog over UDP, to a loopback
//! socket the templater binds when it starts ([`TrafficSocket`], `--traffic-listen`; port 0:
//! any free port, known before the first render). The templates print where:
//! `access_log {{ traffic.syslog }} {{ traffic.format }};` in each location that proxies to an
//! `sg_*` upstream, and `log_format swarmgate_traffic` (vhosts.conf.j2), whose line
//! [`line`] reads. No log file. The receiver
//! - reads each line as it arrives and counts it as swarmgate.traffic
//!   (templates/lua/swarmgate/traffic.lua) does in the Lua data plane ([`tally`]): the service
//!   is the one whose upstream the line names in the live plan (the line is trusted no further
//!   than that look-up), the colour the one of the server that answered (the last
//!   `$upstream_addr`: a retried request counts for the server that answered; `""` when no
//!   server did, e.g. nginx's `no live upstreams`); a line naming an upstream or a server the
//!   live plan does not have yet (nginx serves a new config a moment before it is published)
//!   waits up to [`PENDING_WAIT`] for it;
//! - keeps cumulative counts per pair since it started (its epoch), and every [`POLL`] takes
//!   the live index, drains what is waiting and hands the counts to [`Traffic::observe`], the
//!   one the Lua poller feeds: `/metrics`, the dashboard and KV read one [`Traffic`].
//!
//! A datagram that is too long, not such a line, or names no live upstream is dropped and
//! counted; drops are logged at most once per [`DROP_LOG_EVERY`]. Pairs exist only for
//! services and colours of the live plan and the one before it (which names the servers old
//! workers still answer from), so memory is bounded by the plan, a line by [`MAX_LINE`], and
//! the lines waiting by a cap.

mod line;
mod tally;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

pub use line::{parse, Dropped, Request, MAX_LINE};
pub use tally::{Attribution, Routes, Tally};

use crate::live::LiveView;
use crate::plan::Plan;
use crate::render::TrafficPage;
use crate::traffic::{live_index, LiveIndex, Traffic, TrafficDoc, POLL};

/// Where nginx's traffic log is received by default: loopback, any free port.
pub const DEFAULT_TRAFFIC_LISTEN: &str = "127.0.0.1:0";
/// The `log_format` the templates define and print in `access_log`.
pub const LOG_FORMAT: &str = "swarmgate_traffic";
/// The syslog tag nginx puts on each line.
pub const SYSLOG_TAG: &str = "swarmgate";
/// How often dropped datagrams may be logged.
pub const DROP_LOG_EVERY: Duration = Duration::from_secs(60);
/// How long a line naming an upstream or a server the live plan does not have (yet) waits for
/// the plan nginx already serves to be published, before it is dropped (or counted for colour
/// `""`, when only the server is unknown).
pub const PENDING_WAIT: Duration = Duration::from_secs(5);
/// Most lines waiting so; more are settled at once.
const MAX_PENDING: usize = 10_000;
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

/// Drops since they were last logged.
#[derive(Debug, Default)]
struct Drops {
    by_reason: BTreeMap<&'static str, u64>,
    logged: Option<Instant>,
}

impl Drops {
    fn count(&mut self, why: Dropped) {
        *self.by_reason.entry(why.as_str()).or_default() += 1;
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
                    traffic.observe(receiver.reading(&index, epoch, now), &index, now);
                    receiver.drops.log_if_due(now);
                }
            }
        }
    }
}

/// The receiver's state: the routes of the live plan and the one before it, the counts, and
/// the lines waiting for a plan that knows them.
struct Receiver {
    live: watch::Receiver<Arc<LiveView>>,
    plans: [Arc<Plan>; 2],
    routes: Routes,
    tally: Tally,
    pending: VecDeque<(Instant, Request<'static>)>,
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
            pending: VecDeque::new(),
            drops: Drops::default(),
        }
    }

    /// Follows the live plan when it changed, and counts the lines it now knows.
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
        for (at, r) in std::mem::take(&mut self.pending) {
            match self.routes.attribute(&r) {
                Attribution::Pair(service, color) => self.tally.add(service, color, &r),
                _ => self.pending.push_back((at, r)),
            }
        }
    }

    /// Counts one datagram.
    fn take(&mut self, datagram: &[u8]) {
        self.refresh();
        match parse(datagram) {
            Ok(Some(r)) => match self.routes.attribute(&r) {
                Attribution::Pair(service, color) => self.tally.add(service, color, &r),
                _ if self.pending.len() < MAX_PENDING => {
                    self.pending.push_back((Instant::now(), r.into_owned()));
                }
                unknown => settle(&mut self.tally, &mut self.drops, unknown, &r),
            },
            Ok(None) => {}
            Err(why) => self.drops.count(why),
        }
    }

    /// Settles the lines that waited [`PENDING_WAIT`] by `now`.
    fn settle_waiting(&mut self, now: Instant) {
        while let Some((at, _)) = self.pending.front() {
            if now.duration_since(*at) < PENDING_WAIT {
                break;
            }
            let (_, r) = self.pending.pop_front().expect("a front");
            settle(
                &mut self.tally,
                &mut self.drops,
                self.routes.attribute(&r),
                &r,
            );
        }
    }

    /// A reading at `now` for the live `index`: every pair counted, as nginx's dict holds them
    /// ([`Traffic::observe`] keeps the live ones). Services neither live nor routed are
    /// forgotten first (they start from nothing if they come back).
    fn reading(&mut self, index: &LiveIndex, epoch: f64, now: Instant) -> TrafficDoc {
        self.refresh();
        self.settle_waiting(now);
        let routes = &self.routes;
        self.tally
            .retain(|s| index.contains_key(s) || routes.has_service(s));
        self.tally.doc(epoch)
    }
}

/// Counts a line the routes still do not place: for colour `""` of its service, or dropped.
fn settle(tally: &mut Tally, drops: &mut Drops, who: Attribution, r: &Request) {
    match who {
        Attribution::Pair(service, color) => tally.add(service, color, r),
        Attribution::UnknownPeer(service) => tally.add(service, "", r),
        Attribution::UnknownUpstream => drops.count(Dropped::UnknownUpstream),
    }
}

#[cfg(test)]
mod tests;
