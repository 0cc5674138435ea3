//! Quiescence (`--wait MIN:MAX`): an isolated change goes out at once; a burst is coalesced,
//! rendering once the changes have been quiet for MIN, at most once per MIN, and no later than
//! MAX after the first change of the burst.

use std::time::Duration;

use tokio::time::Instant;

/// Default `--wait`.
pub const DEFAULT_WAIT: &str = "200ms:2s";

#[derive(Clone, Debug)]
pub struct Quiesce {
    min: Duration,
    max: Duration,
    last_render: Option<Instant>,
    first_pending: Option<Instant>,
    deadline: Option<Instant>,
}

impl Quiesce {
    pub fn new(min: Duration, max: Duration) -> Self {
        Quiesce {
            min,
            max: max.max(min),
            last_render: None,
            first_pending: None,
            deadline: None,
        }
    }

    /// Something changed at `now`.
    pub fn changed(&mut self, now: Instant) {
        let earliest = self.last_render.map_or(now, |t| (t + self.min).max(now));
        self.deadline = Some(match self.first_pending {
            None => {
                self.first_pending = Some(now);
                earliest
            }
            // A render already due takes this change along; it is read at render time.
            Some(_) if self.deadline.is_some_and(|d| d <= now) => self.deadline.unwrap_or(now),
            // first + max ≥ earliest, since a burst starts after the last render and max ≥ min.
            Some(first) => (now + self.min).max(earliest).min(first + self.max),
        });
    }

    /// When to render, if anything is pending.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// A render happened at `now`.
    pub fn rendered(&mut self, now: Instant) {
        self.last_render = Some(now);
        self.first_pending = None;
        self.deadline = None;
    }
}

fn parse_duration(raw: &str) -> Result<Duration, String> {
    swarmgate_consul::duration::parse_or_seconds(raw).map_err(|e| e.to_string())
}

/// Parses `MIN[:MAX]` (`250ms`, `2s`, `1m`); MAX defaults to 4×MIN.
pub fn parse_wait(raw: &str) -> Result<(Duration, Duration), String> {
    let (min, max) = match raw.split_once(':') {
        Some((a, b)) => (parse_duration(a)?, parse_duration(b)?),
        None => {
            let min = parse_duration(raw)?;
            (min, min * 4)
        }
    };
    if max < min {
        return Err(format!("--wait {raw:?}: MAX is below MIN"));
    }
    Ok((min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn an_isolated_change_goes_out_at_once() {
        let t0 = Instant::now();
        let mut q = Quiesce::new(200 * MS, 2000 * MS);
        q.changed(t0);
        assert_eq!(q.deadline(), Some(t0));
        q.rendered(t0);
        let later = t0 + 5000 * MS;
        q.changed(later);
        assert_eq!(
            q.deadline(),
            Some(later),
            "quiet for longer than MIN: at once again"
        );
    }

    #[test]
    fn a_change_while_a_render_is_due_does_not_delay_it() {
        let t0 = Instant::now();
        let mut q = Quiesce::new(200 * MS, 2000 * MS);
        q.changed(t0);
        q.changed(t0 + MS);
        assert_eq!(
            q.deadline(),
            Some(t0),
            "the second watch's first answer joins the first render"
        );
    }

    #[test]
    fn a_burst_waits_for_quiet_but_not_beyond_max() {
        let t0 = Instant::now();
        let mut q = Quiesce::new(200 * MS, 1000 * MS);
        q.changed(t0);
        q.rendered(t0);
        // A burst right after a render: never sooner than MIN after it.
        q.changed(t0 + 10 * MS);
        assert_eq!(q.deadline(), Some(t0 + 200 * MS));
        // Each change pushes the deadline to MIN after it...
        q.changed(t0 + 150 * MS);
        assert_eq!(q.deadline(), Some(t0 + 350 * MS));
        // ...but never past MAX after the first pending change.
        for step in 1..20 {
            q.changed(t0 + (150 + step * 100) * MS);
        }
        assert_eq!(q.deadline(), Some(t0 + 1010 * MS));
    }

    #[test]
    fn waits() {
        assert_eq!(parse_wait("200ms:2s"), Ok((200 * MS, 2000 * MS)));
        assert_eq!(parse_wait("1s"), Ok((1000 * MS, 4000 * MS)));
        assert_eq!(parse_wait("0:0"), Ok((Duration::ZERO, Duration::ZERO)));
        assert!(parse_wait("2s:1s").is_err());
        assert!(parse_wait("fast").is_err());
    }
}
