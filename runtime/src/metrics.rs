//! Metrics on `prometheus-client`: each daemon declares its families once with a [`Families`]
//! (which also carries the [`process`] collector) and keeps the handles in a struct; this
//! module encodes the registry in the format a scraper asks for and holds the shared latency
//! buckets.

use std::fmt;

pub use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::metrics::histogram::Histogram;
pub use prometheus_client::registry::Registry;

pub use crate::process::{resident_bytes, ProcessCollector};

/// A gauge holding a float (shares, ratios).
pub type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// Upper bounds in seconds of every latency histogram: 1 ms to 30 s, covering an `nginx -t`
/// (tens of milliseconds), a reload, a Consul call and a full listing of a busy host.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The two exposition formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0 (ends with `# EOF`).
    OpenMetrics,
    /// Prometheus text 0.0.4, what classic parsers read.
    Text,
}

impl Format {
    /// OpenMetrics when `accept` names `application/openmetrics-text` (with a non-zero q),
    /// Prometheus text otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let wants_openmetrics = accept.unwrap_or("").split(',').any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            media.eq_ignore_ascii_case("application/openmetrics-text")
                && !parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f64>().ok())
                        .is_some_and(|q| q <= 0.0)
                })
        });
        if wants_openmetrics {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// A daemon's families, ready to encode.
#[derive(Debug, Default)]
pub struct Exposition {
    families: Registry,
    /// Old names kept for dashboards that clash with a family's name in OpenMetrics.
    text_only: Registry,
}

/// The whole exposition in `format`.
pub fn encode(exposition: &Exposition, format: Format) -> String {
    use prometheus_client::encoding::{prometheus_text, text};
    let mut out = String::with_capacity(4096);
    let written = match format {
        Format::OpenMetrics => text::encode(&mut out, &exposition.families),
        Format::Text => prometheus_text::encode(&mut out, &exposition.families)
            .and_then(|()| prometheus_text::encode(&mut out, &exposition.text_only)),
    };
    // Writing into a String cannot fail; a metric's own encoder erring is a bug upstream.
    debug_assert!(written.is_ok(), "encoding metrics failed");
    out
}

/// Declares a daemon's families, each under its full exposed name (a counter's without the
/// `_total` its samples get) and a help sentence (the registry adds the final period).
#[derive(Debug)]
pub struct Families(Exposition);

impl Default for Families {
    fn default() -> Self {
        let mut families = Registry::default();
        families.register_collector(Box::new(ProcessCollector));
        Families(Exposition {
            families,
            text_only: Registry::default(),
        })
    }
}

impl Families {
    /// Registers `metric` and hands it back (the handle shares its value with the registry).
    pub fn add<M>(&mut self, name: &str, help: &str, metric: M) -> M
    where
        M: prometheus_client::registry::Metric + Clone,
    {
        self.0.families.register(name, help, metric.clone());
        metric
    }

    /// An integer gauge served in the Prometheus text only (an old name that OpenMetrics
    /// cannot carry beside a counter's family of the same name).
    pub fn text_only_gauge(&mut self, name: &str, help: &str) -> Gauge {
        let gauge = Gauge::default();
        self.0.text_only.register(name, help, gauge.clone());
        gauge
    }

    /// A collector encoding families of its own on every scrape (values mirrored from
    /// elsewhere, which a handle could only approach by increments).
    pub fn collector(&mut self, collector: Box<dyn prometheus_client::collector::Collector>) {
        self.0.families.register_collector(collector);
    }

    /// An unlabelled counter.
    pub fn counter(&mut self, name: &str, help: &str) -> Counter {
        self.add(name, help, Counter::default())
    }

    /// An unlabelled integer gauge.
    pub fn gauge(&mut self, name: &str, help: &str) -> Gauge {
        self.add(name, help, Gauge::default())
    }

    /// A latency histogram in seconds with [`LATENCY_BUCKETS`].
    pub fn latency(&mut self, name: &str, help: &str) -> Histogram {
        self.add(name, help, Histogram::new(LATENCY_BUCKETS))
    }

    pub fn finish(self) -> Exposition {
        self.0
    }
}

/// Writes a label value that is one of a fixed set of words (an outcome, a reason).
pub fn encode_word(word: &str, encoder: &mut LabelValueEncoder) -> fmt::Result {
    fmt::Write::write_str(encoder, word)
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
