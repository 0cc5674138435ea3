//! `eventually`: poll a condition until it holds or a deadline passes, then fail with the last
//! observation. The only way these suites wait.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `probe` every 50 ms for up to `within`; returns its first `Ok`, or panics with `what`
/// and the last `Err`.
pub async fn eventually<T, E: Debug, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => {
                panic!("{what}: not true after {within:?}; last: {e:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
