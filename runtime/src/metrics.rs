//! Counters and gauges in Prometheus text format, with no registry machinery: a daemon keeps a
//! struct of [`Counter`]s and [`Gauge`]s and writes them with [`Exposition`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Builds one exposition document.
#[derive(Debug, Default)]
pub struct Exposition(String);

impl Exposition {
    /// Adds a metric family with one unlabelled sample.
    pub fn metric(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        value: impl std::fmt::Display,
    ) -> &mut Self {
        let _ = writeln!(
            self.0,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
        self
    }

    pub fn counter(&mut self, name: &str, help: &str, c: &Counter) -> &mut Self {
        self.metric(name, "counter", help, c.get())
    }

    pub fn gauge(&mut self, name: &str, help: &str, g: &Gauge) -> &mut Self {
        self.metric(name, "gauge", help, g.get())
    }

    /// Adds the process's own figures (resident memory).
    pub fn process(&mut self) -> &mut Self {
        self.metric(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory.",
            resident_bytes(),
        )
    }

    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.0)
    }
}

/// Resident memory of this process in bytes, from `/proc/self/statm`.
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let c = Counter::default();
        c.inc();
        c.inc();
        let g = Gauge::default();
        g.set(-3);
        let text = Exposition::default()
            .counter("x_total", "things", &c)
            .gauge("y", "level", &g)
            .finish();
        assert_eq!(
            text,
            "# HELP x_total things\n# TYPE x_total counter\nx_total 2\n# HELP y level\n# TYPE y gauge\ny -3\n"
        );
    }
}
