//! Attributing read requests to a service and colour through the live plan ([`Routes`]), and
//! counting them cumulatively per pair ([`Tally`]) the way swarmgate.traffic counts in nginx's
//! shared dict, so that a reading is a [`TrafficDoc`] like `GET /traffic`'s.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use swarmgate_runtime::metrics::LATENCY_BUCKETS;

use super::line::Request;
use crate::plan::Plan;
use crate::traffic::{Counts, TrafficDoc};

/// The served services of some plans by upstream, with the colour of each of their servers.
#[derive(Debug, Default)]
pub struct Routes {
    upstreams: HashMap<String, Route>,
}

#[derive(Debug)]
struct Route {
    service: String,
    colors: HashMap<SocketAddr, String>,
}

/// Who a request counts for, as far as the routes know.
#[derive(Debug, PartialEq, Eq)]
pub enum Attribution<'r> {
    /// A service and colour (`""`: an uncoloured server, or no server answered).
    Pair(&'r str, &'r str),
    /// The service's upstream, but a server the routes do not know (yet).
    UnknownPeer(&'r str),
    UnknownUpstream,
}

impl Routes {
    /// The served services of `plans`, a later plan's names winning.
    pub fn of(plans: &[&Plan]) -> Routes {
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
            // Preview requests go through `sg_<name>__<colour>`: they count for the service
            // and colour too, as in the Lua data plane.
            for c in s.pinning.preview.iter().flatten() {
                let route = upstreams
                    .entry(c.upstream.clone())
                    .or_insert_with(|| Route {
                        service: s.name.clone(),
                        colors: HashMap::new(),
                    });
                route.service.clone_from(&s.name);
                for server in &c.servers {
                    if let Ok(addr) = server.server.parse::<SocketAddr>() {
                        route.colors.insert(addr, c.color.clone());
                    }
                }
            }
        }
        Routes { upstreams }
    }

    /// Who `r` counts for.
    pub fn attribute(&self, r: &Request) -> Attribution<'_> {
        let Some(route) = self.upstreams.get(r.upstream.as_ref()) else {
            return Attribution::UnknownUpstream;
        };
        match r.peer.map(|p| route.colors.get(&p)) {
            None => Attribution::Pair(&route.service, ""),
            Some(Some(color)) => Attribution::Pair(&route.service, color),
            Some(None) => Attribution::UnknownPeer(&route.service),
        }
    }

    /// Whether `service` is one of the routes'.
    pub fn has_service(&self, service: &str) -> bool {
        self.upstreams.values().any(|r| r.service == service)
    }
}

/// Cumulative counts by service, then colour.
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

    /// `service`'s counts of `color`.
    pub fn get(&self, service: &str, color: &str) -> Option<&Counts> {
        self.services.get(service)?.get(color)
    }

    /// Forgets the services `keep` says no to (they start from nothing if they come back).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.services.retain(|s, _| keep(s));
    }

    /// The counts as a reading of the counting that began at `epoch`.
    pub fn doc(&self, epoch: f64) -> TrafficDoc {
        TrafficDoc {
            epoch,
            services: self.services.clone(),
        }
    }
}
