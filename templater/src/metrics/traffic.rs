//! `templater_upstream_requests_total{service,color,class}` and
//! `templater_upstream_response_seconds{service,color}`: the traffic totals of
//! [`crate::traffic`], encoded on every scrape by a collector. A collector rather than handles:
//! the values are totals mirrored from nginx's counters (a histogram handle could only be fed
//! one observation at a time, not set from bucket counts), and pairs of services gone simply
//! stop being encoded.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector as Collect;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;
use swarmgate_runtime::metrics::{EncodeLabelSet, LATENCY_BUCKETS};

use super::ServiceColor;
use crate::traffic::Traffic;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceColorClass {
    service: String,
    color: String,
    class: String,
}

/// Encodes [`Traffic::totals`].
#[derive(Debug)]
pub struct Collector(pub Arc<Traffic>);

impl Collect for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let totals = self.0.totals();
        if totals.is_empty() {
            // No traffic seen (none yet, or --once/--dry-run): no families at all. An empty family
            // followed by another is what strict OpenMetrics parsers refuse.
            return Ok(());
        }
        let mut m = encoder.encode_descriptor(
            "templater_upstream_requests",
            "Responses through nginx by service, colour (of the instance that answered) and class: 2xx, 3xx, 4xx, 5xx, and failed (no instance answered; also counted as 5xx); Lua data plane",
            None,
            MetricType::Counter,
        )?;
        for ((service, color), counts) in &totals {
            for (class, value) in counts.classes() {
                let labels = ServiceColorClass {
                    service: service.clone(),
                    color: color.clone(),
                    class: class.into(),
                };
                ConstCounter::new(value).encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = encoder.encode_descriptor(
            "templater_upstream_response_seconds",
            "Response time of the instance that answered (nginx's own answer time when none did), by service and colour",
            None,
            MetricType::Histogram,
        )?;
        for ((service, color), counts) in &totals {
            let labels = ServiceColor {
                service: service.clone(),
                color: color.clone(),
            };
            let mut buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
                .iter()
                .enumerate()
                .map(|(i, bound)| (*bound, counts.buckets.get(i).copied().unwrap_or(0)))
                .collect();
            buckets.push((f64::INFINITY, counts.overflow()));
            let in_buckets = buckets.iter().map(|b| b.1).sum();
            m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                counts.sum_seconds,
                in_buckets,
                &buckets,
                None,
            )?;
        }
        Ok(())
    }
}
