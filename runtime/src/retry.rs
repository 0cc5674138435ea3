//! The one retry policy: exponential from `min`, capped at `max`, jittered, unbounded in count,
//! restarted by the caller after a success. Every retry loop in both daemons uses this.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Where backoff starts by default.
pub const DEFAULT_MIN_DELAY: Duration = Duration::from_millis(100);
/// Where backoff stops growing by default.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(10);

/// A fresh, endless sequence of delays; take a new one after each success.
pub fn backoff(min: Duration, max: Duration) -> impl Iterator<Item = Duration> + Send {
    ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

/// The default policy.
pub fn default_backoff() -> impl Iterator<Item = Duration> + Send {
    backoff(DEFAULT_MIN_DELAY, DEFAULT_MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_never_ends() {
        let delays: Vec<_> = backoff(Duration::from_millis(10), Duration::from_millis(200))
            .take(20)
            .collect();
        assert_eq!(delays.len(), 20);
        // Jitter adds up to one more delay's worth; the cap bounds the base.
        assert!(
            delays.iter().all(|d| *d <= Duration::from_millis(400)),
            "{delays:?}"
        );
        assert!(delays[10] >= Duration::from_millis(200), "{delays:?}");
    }
}
