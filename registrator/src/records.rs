//! The KV side of convergence: which record keys should hold which value, what Consul is known
//! to hold, and the batches that close the gap — one `/v1/txn` of up to 64 operations each,
//! sent beside the registrations rather than after them. Owned by the registry task.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use swarmgate_consul::{Error, KvOp, MAX_TXN_OPS};
use tokio::time::Instant;

/// Record transactions in flight at once.
const MAX_TXNS_IN_FLIGHT: usize = 2;

/// One key of a batch: what it is set to (`None`: deleted), as a digest.
pub type Planned = (String, Option<u64>);

/// A batch to send, and what it will have done.
pub struct Batch {
    pub ops: Vec<KvOp>,
    pub planned: Vec<Planned>,
}

/// The record keys: known state, work to do.
#[derive(Debug, Default)]
pub struct Records {
    /// key → (digest of the value Consul holds, when it was written). Absent: unknown or none.
    applied: HashMap<String, (u64, Instant)>,
    /// The key each service's record was last wanted at, to delete it when the key moves.
    by_service: HashMap<String, String>,
    dirty: BTreeSet<String>,
    in_flight: HashSet<String>,
    failed: BTreeSet<String>,
    /// Keys Consul refused in a batch: sent alone from now on, and given up when refused alone.
    solo: HashSet<String>,
    txns_in_flight: usize,
}

pub fn digest(value: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

impl Records {
    /// Service `id` now wants its record at `key` (`None`: no record): both the new and the old
    /// key need converging.
    pub fn service_changed(&mut self, id: &str, key: Option<&str>) {
        let old = match key {
            Some(k) => self.by_service.insert(id.to_string(), k.to_string()),
            None => self.by_service.remove(id),
        };
        self.dirty.extend(old);
        self.dirty.extend(key.map(str::to_string));
    }

    /// `key` needs converging (a repair, an orphan); with `unknown`, forget what it holds.
    pub fn touch(&mut self, key: String, unknown: bool) {
        if unknown {
            self.applied.remove(&key);
        }
        self.dirty.insert(key);
    }

    /// Failed keys are tried again.
    pub fn retry_failed(&mut self) {
        self.dirty.append(&mut self.failed);
    }

    pub fn pending(&self) -> usize {
        self.dirty.len() + self.in_flight.len() + self.failed.len()
    }

    /// True when nothing about `key` is under way and its last write came before `at`.
    pub fn settled(&self, key: &str, at: Instant) -> bool {
        !self.dirty.contains(key)
            && !self.in_flight.contains(key)
            && !self.failed.contains(key)
            && self.applied.get(key).is_none_or(|(_, t)| *t < at)
    }

    /// The next batches to send; `wanted` answers a key's value (`None`: it should not exist).
    pub fn next_batches<'a>(&mut self, wanted: impl Fn(&str) -> Option<&'a [u8]>) -> Vec<Batch> {
        let mut batches = Vec::new();
        while self.txns_in_flight < MAX_TXNS_IN_FLIGHT {
            let batch = self.next_batch(&wanted);
            if batch.ops.is_empty() {
                break;
            }
            self.txns_in_flight += 1;
            batches.push(batch);
        }
        batches
    }

    fn next_batch<'a>(&mut self, wanted: &impl Fn(&str) -> Option<&'a [u8]>) -> Batch {
        let mut batch = Batch {
            ops: Vec::new(),
            planned: Vec::new(),
        };
        let ready: Vec<String> = self
            .dirty
            .iter()
            .filter(|k| !self.in_flight.contains(*k))
            .cloned()
            .collect();
        for key in ready {
            let solo = self.solo.contains(&key);
            if solo && !batch.ops.is_empty() {
                continue;
            }
            self.dirty.remove(&key);
            let value = wanted(&key);
            let target = value.map(digest);
            let known = self.applied.get(&key).map(|(d, _)| *d);
            if value.is_some() && known == target {
                continue;
            }
            batch.ops.push(match value {
                Some(v) => KvOp::Set {
                    key: key.clone(),
                    value: v.to_vec(),
                },
                None => KvOp::Delete { key: key.clone() },
            });
            self.in_flight.insert(key.clone());
            batch.planned.push((key, target));
            if solo || batch.ops.len() >= MAX_TXN_OPS {
                break;
            }
        }
        batch
    }

    /// A batch came back. Answers the keys given up on (refused alone by Consul), to report.
    pub fn finish(&mut self, planned: Vec<Planned>, result: &Result<bool, Error>) -> Vec<String> {
        self.txns_in_flight = self.txns_in_flight.saturating_sub(1);
        let mut given_up = Vec::new();
        let refused = matches!(result, Err(e) if !e.is_retryable() && !e.is_permission_denied());
        let alone = planned.len() == 1;
        for (key, target) in planned {
            self.in_flight.remove(&key);
            match (result, target) {
                (Ok(_), Some(d)) => {
                    self.applied.insert(key.clone(), (d, Instant::now()));
                    self.solo.remove(&key);
                }
                (Ok(_), None) => {
                    self.applied.remove(&key);
                    self.solo.remove(&key);
                }
                (Err(_), Some(d)) if refused && alone => {
                    // Refused on its own: not retried until its value changes.
                    self.applied.insert(key.clone(), (d, Instant::now()));
                    given_up.push(key);
                }
                (Err(_), _) if refused => {
                    self.solo.insert(key.clone());
                    self.dirty.insert(key);
                }
                (Err(_), _) => {
                    self.applied.remove(&key);
                    self.failed.insert(key);
                }
            }
        }
        given_up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(k: &str) -> Option<&'static [u8]> {
        match k {
            "s/a/1" => Some(b"one"),
            "s/b/2" => Some(b"two"),
            _ => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn batches_write_what_differs_and_delete_moved_keys() {
        let mut r = Records::default();
        r.service_changed("1", Some("s/a/1"));
        r.service_changed("2", Some("s/b/2"));
        let batches = r.next_batches(values);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].ops.len(), 2);
        let planned = batches.into_iter().next().expect("one").planned;
        r.finish(planned, &Ok(true));
        assert_eq!(r.pending(), 0);
        // Unchanged: nothing to send. Moved: the old key is deleted.
        r.service_changed("1", Some("s/a/1"));
        assert!(r.next_batches(values).is_empty());
        r.service_changed("2", Some("s/c/2"));
        let moved = |k: &str| (k == "s/c/2").then_some(b"two".as_slice());
        let batch = r.next_batches(moved).into_iter().next().expect("a batch");
        assert_eq!(
            batch.ops,
            [
                KvOp::Delete {
                    key: "s/b/2".into()
                },
                KvOp::Set {
                    key: "s/c/2".into(),
                    value: b"two".to_vec()
                }
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn many_keys_go_in_transactions_of_64() {
        let mut r = Records::default();
        for i in 0..200 {
            r.touch(format!("k{i}"), false);
        }
        let batches = r.next_batches(|_| Some(b"v".as_slice()));
        assert_eq!(batches.len(), MAX_TXNS_IN_FLIGHT);
        assert!(batches.iter().all(|b| b.ops.len() == MAX_TXN_OPS));
    }
}
