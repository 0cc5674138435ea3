//! A step's window over every edge, from the edges' traffic records
//! ([`crate::traffic_publish::TrafficRecord`], cumulative totals): each edge's window begins
//! at its first record as of the step's settings index or later (everything counted after it
//! was served under the step's weights), and the window's counts are the sum, over edges, of
//! what each counted since. An edge whose counting began again (a new generation: the
//! templater restarted) keeps what it had counted and begins a new baseline.

use std::collections::BTreeMap;

use crate::traffic::Counts;
use crate::traffic_publish::TrafficRecord;

#[derive(Clone, Debug)]
struct EdgeWindow {
    generation: String,
    baseline: BTreeMap<String, Counts>,
    latest: BTreeMap<String, Counts>,
    /// Counted under earlier generations since the window opened.
    carried: BTreeMap<String, Counts>,
}

impl EdgeWindow {
    fn counted(&self, color: &str) -> Counts {
        let now = self.latest.get(color).cloned().unwrap_or_default();
        let then = self.baseline.get(color).cloned().unwrap_or_default();
        let carried = self.carried.get(color).cloned().unwrap_or_default();
        carried.plus(&now.since(&then))
    }
}

/// The window of one step.
#[derive(Clone, Debug)]
pub struct Window {
    /// Records as of an earlier settings index are not in it.
    index: u64,
    edges: BTreeMap<String, EdgeWindow>,
}

impl Window {
    /// A window of traffic served under settings `index` or later.
    pub fn new(index: u64) -> Window {
        Window {
            index,
            edges: BTreeMap::new(),
        }
    }

    /// Takes the newest records.
    pub fn feed(&mut self, records: &[TrafficRecord]) {
        for r in records.iter().filter(|r| r.settings_index >= self.index) {
            match self.edges.get_mut(&r.edge) {
                None => {
                    self.edges.insert(
                        r.edge.clone(),
                        EdgeWindow {
                            generation: r.generation.clone(),
                            baseline: r.colors.clone(),
                            latest: r.colors.clone(),
                            carried: BTreeMap::new(),
                        },
                    );
                }
                Some(e) if e.generation != r.generation => {
                    let colors: Vec<String> = e.latest.keys().cloned().collect();
                    for c in colors {
                        let counted = e.counted(&c);
                        e.carried.insert(c, counted);
                    }
                    e.generation = r.generation.clone();
                    e.baseline = r.colors.clone();
                    e.latest = r.colors.clone();
                }
                Some(e) => e.latest = r.colors.clone(),
            }
        }
    }

    /// The edges counted so far.
    pub fn edges(&self) -> Vec<&str> {
        self.edges.keys().map(String::as_str).collect()
    }

    /// `color`'s requests in the window, summed over edges.
    pub fn counts(&self, color: &str) -> Counts {
        self.edges
            .values()
            .fold(Counts::default(), |sum, e| sum.plus(&e.counted(color)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(edge: &str, generation: &str, index: u64, green: u64, errors: u64) -> TrafficRecord {
        TrafficRecord {
            edge: edge.into(),
            generation: generation.into(),
            at_unix_ms: 0,
            settings_index: index,
            colors: [(
                "green".to_string(),
                Counts {
                    requests: green,
                    c5xx: errors,
                    ..Counts::default()
                },
            )]
            .into(),
            last_minute: BTreeMap::new(),
        }
    }

    #[test]
    fn traffic_from_before_an_edge_served_the_step_is_not_in_the_window() {
        let mut w = Window::new(10);
        // e1 still serves index 9: its 500 requests are the previous step's.
        w.feed(&[record("e1", "g", 9, 500, 50), record("e2", "g", 10, 100, 0)]);
        assert_eq!(w.counts("green").requests, 0);
        w.feed(&[record("e1", "g", 9, 700, 70), record("e2", "g", 10, 130, 1)]);
        assert_eq!(w.counts("green").requests, 30);
        // e1 takes the step: its window begins now.
        w.feed(&[
            record("e1", "g", 10, 720, 72),
            record("e2", "g", 10, 160, 1),
        ]);
        assert_eq!(w.counts("green").requests, 60);
        w.feed(&[
            record("e1", "g", 11, 800, 72),
            record("e2", "g", 12, 160, 1),
        ]);
        let c = w.counts("green");
        assert_eq!((c.requests, c.c5xx), (140, 1));
        assert_eq!(w.edges(), ["e1", "e2"]);
        assert_eq!(w.counts("blue").requests, 0);
    }

    #[test]
    fn a_restarted_edge_keeps_what_it_counted_and_starts_again() {
        let mut w = Window::new(1);
        w.feed(&[record("e1", "a", 1, 100, 0)]);
        w.feed(&[record("e1", "a", 1, 150, 5)]);
        // A new templater: its first totals are nginx's history, not the window's.
        w.feed(&[record("e1", "b", 1, 9000, 900)]);
        w.feed(&[record("e1", "b", 1, 9010, 900)]);
        let c = w.counts("green");
        assert_eq!((c.requests, c.c5xx), (60, 5));
    }
}
