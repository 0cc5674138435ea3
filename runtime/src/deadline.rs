//! Waiting on something that may not be scheduled: the `select!` arm for an optional deadline
//! or an optional interval, pending forever when there is none.

use tokio::time::{Instant, Interval};

/// Sleeps until `at`; never returns when `at` is `None`.
pub async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The next tick of `interval`; never returns when there is none.
pub async fn tick(interval: Option<&mut Interval>) -> Instant {
    match interval {
        Some(i) => i.tick().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn none_never_fires_and_some_does() {
        let t0 = Instant::now();
        tokio::select! {
            _ = sleep_until(None) => panic!("no deadline fired"),
            _ = sleep_until(Some(t0 + Duration::from_secs(1))) => {}
        }
        assert_eq!(Instant::now(), t0 + Duration::from_secs(1));
        let mut every = tokio::time::interval(Duration::from_secs(5));
        tokio::select! {
            _ = tick(None) => panic!("no interval ticked"),
            _ = tick(Some(&mut every)) => {}
        }
    }
}
