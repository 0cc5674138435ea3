//! Blocking queries: the options we send, the index headers we read back, and Consul's documented
//! index rules (reset when the index goes backwards, never below 1), plus the wait jitter.

use std::time::Duration;

use reqwest::header::HeaderMap;

/// Options of one read: blocking index and wait, consistency mode, server-side filter.
#[derive(Clone, Debug, Default)]
pub struct QueryOptions {
    /// Block until the result's index exceeds this (0: answer at once).
    pub index: u64,
    /// Longest time Consul may hold the request.
    pub wait: Option<Duration>,
    /// Read through the leader with a quorum check (`?consistent`).
    pub consistent: bool,
    /// Any server may answer (`?stale`).
    pub stale: bool,
    /// A `filter` expression (Consul ≥ 1.5).
    pub filter: Option<String>,
}

impl QueryOptions {
    /// A blocking read after `index`, held at most `wait`.
    pub fn blocking(index: u64, wait: Duration) -> Self {
        QueryOptions {
            index,
            wait: Some(wait),
            ..QueryOptions::default()
        }
    }

    pub(crate) fn params(&self) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        if self.index > 0 {
            params.push(("index", self.index.to_string()));
            if let Some(wait) = self.wait {
                params.push(("wait", format!("{}ms", wait.as_millis().max(1))));
            }
        }
        if self.consistent {
            params.push(("consistent", String::new()));
        } else if self.stale {
            params.push(("stale", String::new()));
        }
        if let Some(filter) = &self.filter {
            params.push(("filter", filter.clone()));
        }
        params
    }
}

/// What Consul said about the answer's freshness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryMeta {
    /// `X-Consul-Index`.
    pub index: u64,
    /// `X-Consul-KnownLeader`: false while the cluster has no leader.
    pub known_leader: bool,
    /// `X-Consul-LastContact` in milliseconds.
    pub last_contact_ms: u64,
}

impl QueryMeta {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        QueryMeta {
            index: num("x-consul-index"),
            known_leader: headers
                .get("x-consul-knownleader")
                .is_none_or(|v| v.as_bytes() == b"true"),
            last_contact_ms: num("x-consul-lastcontact"),
        }
    }
}

/// The index to send next, given the one we sent and the one Consul answered, per Consul's
/// "Implementation Details" for blocking queries: an index that went backwards (a snapshot
/// restore, a wiped server) resets the loop to 0 so the next read answers at once; otherwise
/// the index is at least 1 so that a buggy 0 never turns the loop into a busy poll.
pub fn next_index(sent: u64, answered: u64) -> u64 {
    if answered < sent {
        0
    } else {
        answered.max(1)
    }
}

/// True when the answer reflects a change (as opposed to a timed-out wait that returns the
/// same index, or a reset). Callers still compare payloads: an index bump does not promise a
/// different result.
pub fn index_moved(sent: u64, answered: u64) -> bool {
    sent == 0 || answered != sent
}

/// Spreads waits over ±1/16 so that many watchers started together do not wake together.
pub fn jittered_wait(base: Duration, seed: u64) -> Duration {
    let spread = base.as_millis() as u64 / 16;
    if spread == 0 {
        return base;
    }
    let offset = splitmix(seed) % (2 * spread + 1);
    Duration::from_millis(base.as_millis() as u64 - spread + offset)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_goes_forward() {
        assert_eq!(next_index(0, 42), 42);
        assert_eq!(next_index(42, 42), 42);
        assert_eq!(next_index(42, 50), 50);
    }

    #[test]
    fn index_backwards_resets_to_zero() {
        assert_eq!(next_index(50, 7), 0);
    }

    #[test]
    fn index_never_below_one_after_an_answer() {
        assert_eq!(next_index(0, 0), 1);
    }

    #[test]
    fn change_detection() {
        assert!(index_moved(0, 5));
        assert!(!index_moved(5, 5));
        assert!(index_moved(5, 6));
    }

    #[test]
    fn jitter_stays_within_a_sixteenth() {
        let base = Duration::from_secs(64);
        for seed in 0..1000 {
            let w = jittered_wait(base, seed);
            assert!(
                w >= Duration::from_secs(60) && w <= Duration::from_secs(68),
                "{w:?}"
            );
        }
        assert_eq!(
            jittered_wait(Duration::from_millis(10), 3),
            Duration::from_millis(10)
        );
    }

    #[test]
    fn params_only_block_with_an_index() {
        let opts = QueryOptions::blocking(0, Duration::from_secs(5));
        assert!(opts.params().is_empty());
        let opts = QueryOptions::blocking(9, Duration::from_secs(5));
        assert_eq!(
            opts.params(),
            vec![("index", "9".into()), ("wait", "5000ms".into())]
        );
    }
}
