//! Per service and colour traffic figures, from either data plane: with Lua, nginx counts every
//! request in a shared dict (`templates/lua/swarmgate/traffic.lua`) and the daemon polls
//! `GET /traffic` every second ([`poll`]); with plain nginx, [`crate::traffic_syslog`] counts
//! nginx's access-log lines into the same readings. [`Traffic`] keeps
//! - totals mirrored from nginx's cumulative counters: as first read, then growing with them (a
//!   restart of nginx — a new epoch, or a counter going down — is a reset: what it counts next
//!   is added, so the totals never go down),
//!   exported on `/metrics` by [`crate::metrics`];
//! - a rolling window of the last [`WINDOW`] (one sample a poll) from which the dashboard's
//!   per-colour requests/s, error rate and p99 come ([`Figures`]).
//!
//! - the settings index each service's live plan followed before the last reading, which
//!   [`crate::traffic_publish`] publishes with the totals for `templater promote`.
//!
//! Services that are not in the live plan any more lose their totals and window.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use swarmgate_runtime::metrics::LATENCY_BUCKETS;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::control::Control;
use crate::live::LiveView;

/// How often nginx's counters are read.
pub const POLL: Duration = Duration::from_secs(1);
/// How far back the dashboard's figures look.
pub const WINDOW: Duration = Duration::from_secs(60);

/// One service/colour pair's counters, as `GET /traffic` answers them (cumulative). `failed`
/// (no peer answered; nginx's own 502/504) is also counted in `c5xx`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub requests: u64,
    #[serde(rename = "2xx")]
    pub c2xx: u64,
    #[serde(rename = "3xx")]
    pub c3xx: u64,
    #[serde(rename = "4xx")]
    pub c4xx: u64,
    #[serde(rename = "5xx")]
    pub c5xx: u64,
    pub failed: u64,
    /// Requests per latency bucket ([`LATENCY_BUCKETS`], not cumulative); slower ones are in none.
    pub buckets: Vec<u64>,
    pub sum_seconds: f64,
}

impl Counts {
    /// The classes as the metrics label them.
    pub fn classes(&self) -> [(&'static str, u64); 5] {
        [
            ("2xx", self.c2xx),
            ("3xx", self.c3xx),
            ("4xx", self.c4xx),
            ("5xx", self.c5xx),
            ("failed", self.failed),
        ]
    }

    fn bucket(&self, i: usize) -> u64 {
        self.buckets.get(i).copied().unwrap_or(0)
    }

    /// Requests slower than the last bucket's bound.
    pub fn overflow(&self) -> u64 {
        self.requests
            .saturating_sub((0..LATENCY_BUCKETS.len()).map(|i| self.bucket(i)).sum())
    }

    /// Whether any counter is below `earlier`'s: nginx started counting again.
    fn went_down(&self, earlier: &Counts) -> bool {
        let lower = |a: u64, b: u64| a < b;
        lower(self.requests, earlier.requests)
            || self
                .classes()
                .iter()
                .zip(earlier.classes())
                .any(|(a, b)| lower(a.1, b.1))
            || (0..LATENCY_BUCKETS.len()).any(|i| lower(self.bucket(i), earlier.bucket(i)))
    }

    /// Each counter as `f(self's, other's)`.
    fn zip(&self, other: &Counts, f: impl Fn(u64, u64) -> u64, sum: f64) -> Counts {
        Counts {
            requests: f(self.requests, other.requests),
            c2xx: f(self.c2xx, other.c2xx),
            c3xx: f(self.c3xx, other.c3xx),
            c4xx: f(self.c4xx, other.c4xx),
            c5xx: f(self.c5xx, other.c5xx),
            failed: f(self.failed, other.failed),
            buckets: (0..LATENCY_BUCKETS.len())
                .map(|i| f(self.bucket(i), other.bucket(i)))
                .collect(),
            sum_seconds: sum,
        }
    }

    pub fn plus(&self, d: &Counts) -> Counts {
        self.zip(d, u64::saturating_add, self.sum_seconds + d.sum_seconds)
    }

    /// What was counted since `earlier` (of the same counting).
    pub fn since(&self, earlier: &Counts) -> Counts {
        let sum = (self.sum_seconds - earlier.sum_seconds).max(0.0);
        self.zip(earlier, u64::saturating_sub, sum)
    }
}

/// `GET /traffic`'s answer: counters by service, then colour (`""` for peers without one, or
/// when no peer was tried), and the epoch of the nginx that counted them.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct TrafficDoc {
    #[serde(default)]
    pub epoch: f64,
    #[serde(default)]
    pub services: BTreeMap<String, BTreeMap<String, Counts>>,
}

/// A service and a colour.
pub type Pair = (String, String);

/// One pair's figures over the window; `None` until there is something to say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    pub requests_per_second: Option<f64>,
    /// Percent of requests answered 5xx (the failed ones are among them).
    pub error_rate: Option<f64>,
    /// The upper bound of the bucket holding the 99th percentile (the last bound when slower).
    pub p99_seconds: Option<f64>,
}

/// The figures of every pair with traffic data.
pub type Windows = BTreeMap<Pair, Figures>;

/// Per live service, the settings index its live plan followed just before a reading was
/// taken: everything counted after that reading was served under those settings or later.
pub type LiveIndex = BTreeMap<String, u64>;

/// One service's totals with the settings index they are as of ([`LiveIndex`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceTotals {
    pub settings_index: u64,
    /// Totals per colour (`""`: no colour).
    pub colors: BTreeMap<String, Counts>,
}

#[derive(Debug, Default)]
struct Inner {
    epoch: Option<f64>,
    /// When the last reading was taken.
    polled: Option<Instant>,
    /// nginx's counters at the last poll.
    last: BTreeMap<Pair, Counts>,
    /// Mirrored from nginx (see the module's comment), per pair of a live service.
    totals: BTreeMap<Pair, Counts>,
    /// Samples of `totals`, oldest first, reaching back to [`WINDOW`].
    samples: BTreeMap<Pair, VecDeque<(Instant, Counts)>>,
    /// The live index of the last reading.
    as_of: LiveIndex,
}

/// The traffic this edge's nginx counted, shared by the poller, `/metrics` and the dashboard.
#[derive(Debug, Default)]
pub struct Traffic {
    inner: Mutex<Inner>,
}

impl Traffic {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one reading of nginx's counters at `now`; `live` holds the services in the live
    /// plan (the others are dropped) with the settings index live before the reading began.
    pub fn observe(&self, doc: TrafficDoc, live: &LiveIndex, now: Instant) {
        let mut inner = self.lock();
        let restarted = inner.epoch.is_some_and(|e| e != doc.epoch);
        // When nginx's counts began, if within the window (they all happened since).
        let began = nginx_age(doc.epoch).and_then(|age| now.checked_sub(age));
        inner.epoch = Some(doc.epoch);
        let mut last = BTreeMap::new();
        for (service, colors) in doc.services {
            for (color, counts) in colors {
                let pair = (service.clone(), color);
                let delta = match inner.last.get(&pair) {
                    Some(prev) if !restarted && !counts.went_down(prev) => counts.since(prev),
                    _ => counts.clone(),
                };
                if live.contains_key(&service) {
                    let total = inner.totals.entry(pair.clone()).or_default();
                    *total = total.plus(&delta);
                }
                last.insert(pair, counts);
            }
        }
        inner.last = last;
        inner.totals.retain(|(s, _), _| live.contains_key(s));
        inner.as_of = live.clone();
        let Inner {
            totals,
            samples,
            polled,
            ..
        } = &mut *inner;
        samples.retain(|pair, _| totals.contains_key(pair));
        for (pair, total) in totals.iter() {
            let ring = samples.entry(pair.clone()).or_insert_with(|| {
                // A pair new since the last reading had nothing then (its total began with
                // what was counted since). At the first reading, nothing had been counted when
                // nginx started, if that was within the window; else its counts are history.
                polled
                    .or(began)
                    .map(|at| (at, Counts::default()))
                    .into_iter()
                    .collect()
            });
            ring.push_back((now, total.clone()));
            // Keep one sample at or before the window's start.
            while ring.len() > 2 && now.duration_since(ring[1].0) >= WINDOW {
                ring.pop_front();
            }
        }
        *polled = Some(now);
    }

    /// The totals, per pair of a live service.
    pub fn totals(&self) -> Vec<(Pair, Counts)> {
        self.lock()
            .totals
            .iter()
            .map(|(p, c)| (p.clone(), c.clone()))
            .collect()
    }

    /// One service's totals as of the last reading; `None` when it is not live.
    pub fn service_totals(&self, service: &str) -> Option<ServiceTotals> {
        let inner = self.lock();
        let settings_index = *inner.as_of.get(service)?;
        let colors = inner
            .totals
            .range((service.to_string(), String::new())..)
            .take_while(|((s, _), _)| s == service)
            .map(|((_, c), counts)| (c.clone(), counts.clone()))
            .collect();
        Some(ServiceTotals {
            settings_index,
            colors,
        })
    }

    /// One service's counts per colour over the window (the last [`WINDOW`]).
    pub fn service_window(&self, service: &str) -> BTreeMap<String, Counts> {
        self.lock()
            .samples
            .range((service.to_string(), String::new())..)
            .take_while(|((s, _), _)| s == service)
            .filter_map(|((_, c), ring)| {
                let ((_, first), (_, last)) = (ring.front()?, ring.back()?);
                Some((c.clone(), last.since(first)))
            })
            .collect()
    }

    /// Each pair's figures over the window.
    pub fn figures(&self) -> Windows {
        self.lock()
            .samples
            .iter()
            .map(|(pair, ring)| (pair.clone(), figures(ring)))
            .collect()
    }
}

/// How long ago nginx started counting (its epoch), when that is less than [`WINDOW`] ago.
fn nginx_age(epoch: f64) -> Option<Duration> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    let age = now - epoch;
    (0.0..WINDOW.as_secs_f64())
        .contains(&age)
        .then(|| Duration::from_secs_f64(age))
}

/// The figures between the oldest and the newest sample.
fn figures(ring: &VecDeque<(Instant, Counts)>) -> Figures {
    let (Some((t0, first)), Some((t1, last))) = (ring.front(), ring.back()) else {
        return Figures::default();
    };
    let elapsed = t1.duration_since(*t0).as_secs_f64();
    if elapsed <= 0.0 {
        return Figures::default();
    }
    let d = last.since(first);
    let n = d.requests as f64;
    Figures {
        requests_per_second: Some(n / elapsed),
        error_rate: (d.requests > 0).then(|| d.c5xx as f64 * 100.0 / n),
        p99_seconds: quantile(&d, 0.99),
    }
}

/// The upper bound of the bucket holding quantile `q` of `d`'s requests.
pub fn quantile(d: &Counts, q: f64) -> Option<f64> {
    if d.requests == 0 {
        return None;
    }
    let rank = (q * d.requests as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
        seen += d.bucket(i);
        if seen >= rank {
            return Some(*bound);
        }
    }
    LATENCY_BUCKETS.last().copied()
}

/// Polls nginx's counters every [`POLL`] until cancelled; a failed read is skipped (nginx
/// restarting), logged once until reads work again.
pub async fn poll(
    control: Control,
    traffic: Arc<Traffic>,
    live: watch::Receiver<Arc<LiveView>>,
    token: CancellationToken,
) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let index = live_index(&live.borrow());
        match control.get_traffic().await {
            Ok(doc) => {
                failing = false;
                traffic.observe(doc, &index, Instant::now());
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "reading nginx's traffic counters failed; retrying");
            }
            Err(_) => {}
        }
    }
}

/// The served services of `view` with the settings index each one's live plan follows.
pub fn live_index(view: &LiveView) -> LiveIndex {
    view.plan
        .served()
        .map(|s| (s.name.clone(), s.settings_index))
        .collect()
}

#[cfg(test)]
#[path = "traffic_tests.rs"]
mod tests;
