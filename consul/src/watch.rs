//! The blocking-query loop every watch uses: Consul's index rules, a jittered wait, answers
//! handed on only when the index moved, and capped jittered backoff on errors; cancellable.
//! After a failed request the next one does not block: a Consul that came back empty has a
//! lower index and would otherwise hold our old one for the whole wait before we could see
//! that it went backwards. An answer that cannot have blocked (no `X-Consul-Index`, or the
//! same index answered well before the wait ran out: a proxy or a broken server) is backed off
//! too, so a watch never spins.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::blocking::{index_moved, jittered_wait, next_index, QueryMeta, QueryOptions};
use crate::error::Result;

/// Longest wait a watch asks Consul to hold a request by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// What a handler is told besides the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub meta: QueryMeta,
    /// The index went backwards (a restarted or restored Consul): the view may have lost data.
    pub reset: bool,
}

/// Runs `fetch` as a blocking query until `token` is cancelled, calling `handle` with each
/// answer whose index moved. The first fetch is sent at once (index 0). `on_error` hears every
/// failure before the backoff sleep.
pub async fn watch<T, F, Fut, H, E>(
    wait: Duration,
    mut fetch: F,
    mut handle: H,
    mut on_error: E,
    token: CancellationToken,
) where
    F: FnMut(QueryOptions) -> Fut,
    Fut: Future<Output = Result<(T, QueryMeta)>>,
    H: FnMut(T, Change),
    E: FnMut(&crate::Error),
{
    let mut index = 0u64;
    // The last index Consul answered, kept across errors to spot a reset.
    let mut seen = 0u64;
    let mut seed = std::process::id() as u64;
    let mut backoff = swarmgate_runtime::retry::default_backoff();
    loop {
        seed = seed.wrapping_add(1);
        let opts = QueryOptions::blocking(index, jittered_wait(wait, seed));
        let asked = tokio::time::Instant::now();
        let answer = tokio::select! {
            _ = token.cancelled() => return,
            answer = fetch(opts) => answer,
        };
        match answer {
            Ok((value, meta)) => {
                let moved = index_moved(index, meta.index);
                let reset = meta.index < seen;
                let blocked = index == 0 || moved || asked.elapsed() >= wait / 2;
                let spinning = meta.index == 0 || !blocked;
                index = next_index(index.max(seen), meta.index);
                seen = meta.index;
                if moved || reset {
                    handle(value, Change { meta, reset });
                }
                if !spinning {
                    backoff = swarmgate_runtime::retry::default_backoff();
                    continue;
                }
                let delay = backoff.next().unwrap_or(Duration::from_secs(10));
                tracing::debug!(
                    index = meta.index,
                    delay_ms = delay.as_millis() as u64,
                    "consul answered a blocking query without blocking; backing off"
                );
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Err(e) => {
                on_error(&e);
                index = 0;
                let delay = backoff.next().unwrap_or(Duration::from_secs(10));
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A scripted sequence of answers: indexes that move, repeat, go backwards, and an error.
    #[tokio::test(start_paused = true)]
    async fn hands_on_moves_skips_repeats_flags_resets_and_survives_errors() {
        let script = Arc::new(Mutex::new(vec![
            Ok(5u64),
            Ok(5),
            Err(()),
            Ok(9),
            Ok(3),
            Ok(0),
        ]));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let token = CancellationToken::new();
        let (s2, sent2, seen2, t2) = (script.clone(), sent.clone(), seen.clone(), token.clone());
        watch(
            Duration::from_secs(1),
            move |opts: QueryOptions| {
                let (script, sent, token) = (s2.clone(), sent2.clone(), t2.clone());
                async move {
                    sent.lock().expect("lock").push(opts.index);
                    let next = {
                        let mut s = script.lock().expect("lock");
                        if s.is_empty() {
                            None
                        } else {
                            Some(s.remove(0))
                        }
                    };
                    match next {
                        Some(Ok(i)) => Ok((
                            (),
                            QueryMeta {
                                index: i,
                                known_leader: true,
                                last_contact_ms: 0,
                            },
                        )),
                        Some(Err(())) => Err(crate::Error::Config("scripted".into())),
                        None => {
                            token.cancel();
                            std::future::pending().await
                        }
                    }
                }
            },
            move |(), change| {
                seen2
                    .lock()
                    .expect("lock")
                    .push((change.meta.index, change.reset))
            },
            |_| {},
            token,
        )
        .await;
        // After the error the next read does not block (0); an index below the last one seen
        // is a reset, and resets restart from 0.
        assert_eq!(*sent.lock().expect("lock"), [0, 5, 5, 0, 9, 0, 0]);
        assert_eq!(
            *seen.lock().expect("lock"),
            [(5, false), (9, false), (3, true), (0, true)]
        );
    }

    /// A server that answers at once without an index (or with the same one) is not polled in
    /// a loop: over two seconds the watch asks a handful of times, not thousands.
    #[tokio::test(start_paused = true)]
    async fn answers_that_did_not_block_are_backed_off() {
        for index in [0u64, 7] {
            let asked = Arc::new(Mutex::new(0u32));
            let token = CancellationToken::new();
            let (a, t) = (asked.clone(), token.clone());
            let stop = token.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                stop.cancel();
            });
            watch(
                Duration::from_secs(60),
                move |_opts: QueryOptions| {
                    let (asked, token) = (a.clone(), t.clone());
                    async move {
                        let mut n = asked.lock().expect("lock");
                        *n += 1;
                        if *n > 1000 {
                            token.cancel();
                        }
                        Ok((
                            (),
                            QueryMeta {
                                index,
                                known_leader: true,
                                last_contact_ms: 0,
                            },
                        ))
                    }
                },
                |(), _| {},
                |_| {},
                token,
            )
            .await;
            let n = *asked.lock().expect("lock");
            assert!(n <= 10, "index {index}: {n} requests in 2 s");
        }
    }
}
