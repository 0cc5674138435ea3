//! One step of a promotion: set its canary, wait until every edge serves it (failing at once
//! on a certain breach meanwhile), then judge its window — pass, fail, hold and judge again
//! over a new window, or wait for traffic — until `--max-wait`.

use std::time::Duration;

use swarmgate_consul::KvOp;
use tokio::time::Instant;

use super::judge::{certain_breach, judge, Observed, Verdict};
use super::progress::Figures;
use super::run::{Stop, Walk, TICK};
use super::window::Window;
use crate::keys::Field;
use crate::records::unix_now;
use crate::traffic::Counts;
use crate::traffic_publish::TrafficRecord;

impl Walk<'_> {
    /// Sets step `i`, waits for the edges, judges its window.
    pub(super) async fn step(&mut self, i: usize, percent: u8) -> Result<(), Stop> {
        if self
            .d
            .require_passing(self.service, &self.promotion.color, false)
            .await
            .is_err()
        {
            return Err(Stop::Failed(format!(
                "{} has no passing {} instance",
                self.service, self.promotion.color
            )));
        }
        let before = self.promotion.clone();
        self.promotion.step = Some(i);
        self.promotion.step_unix = unix_now();
        let guard = KvOp::Cas {
            key: self.d.keys.setting(self.service, Field::Promotion),
            value: self.record_value(),
            index: self.record_index,
        };
        let written = self
            .d
            .write_canary(self.service, percent, self.active_index, vec![guard])
            .await?;
        let Some(index) = written else {
            self.promotion = before;
            return Err(self.lost().await);
        };
        // One transaction: the record's new ModifyIndex is the canary's.
        self.record_index = index;
        self.event(
            "step",
            format!("{percent}% of traffic to {}", self.promotion.color),
        );
        self.history("promote-step", format!("{percent}%")).await;

        // Until every edge serves the step, only a certain breach on what COLOR answered since
        // it was set can end it.
        let mut since_set = Window::new(0);
        let live = {
            let waiting = self.d.wait_live(self.service, index, self.plan.max_wait);
            tokio::pin!(waiting);
            loop {
                tokio::select! {
                    r = &mut waiting => break r,
                    _ = tokio::time::sleep(TICK) => {
                        let records = self.tick().await?;
                        since_set.feed(&records);
                        self.breach(&since_set)?;
                    }
                }
            }
        };
        let live = live.map_err(|e| {
            Stop::Inconclusive(format!(
                "the edges did not serve {percent}% within --max-wait: {e}"
            ))
        })?;
        self.event(
            "live",
            format!("{live}; judging over {}", humanize(self.plan.interval)),
        );

        let deadline = Instant::now() + self.plan.max_wait;
        let mut window = Window::new(index);
        window.feed(&self.tick().await?);
        let mut opened = Instant::now();
        let mut said = None::<&'static str>;
        // Why the step has no verdict yet (what an inconclusive end says).
        let mut pending = "no verdict within --max-wait".to_string();
        loop {
            tokio::time::sleep(TICK).await;
            window.feed(&self.tick().await?);
            let (canary, baseline) = self.figures(&window);
            self.breach(&window)?;
            let held_for = opened.elapsed();
            self.progress.live(
                &format!(
                    "{percent}% {}s/{}s",
                    held_for.as_secs(),
                    self.plan.interval.as_secs()
                ),
                &Figures::of(&self.promotion.color, &canary),
                &Figures::of(&self.promotion.from, &baseline),
            );
            let (c, b) = self.observed(&canary, &baseline);
            let verdict = judge(&self.plan.limits, &c, &b);
            let figures = || {
                Some((
                    Figures::of(&self.promotion.color, &canary),
                    Figures::of(&self.promotion.from, &baseline),
                ))
            };
            if held_for >= self.plan.interval {
                match verdict {
                    Verdict::Pass(m) => {
                        let f = figures();
                        self.event_with("passed", m, f);
                        return Ok(());
                    }
                    Verdict::Fail(m) => return Err(Stop::Failed(m)),
                    Verdict::Hold(m) => {
                        let f = figures();
                        self.event_with("holding", format!("{m}; judging again"), f);
                        said = Some("holding");
                        window = Window::new(index);
                        window.feed(&self.tick().await?);
                        opened = Instant::now();
                        if Instant::now() >= deadline {
                            return Err(Stop::Inconclusive(m));
                        }
                        pending = m;
                    }
                    Verdict::TooFew(m) => {
                        if Instant::now() >= deadline {
                            return Err(Stop::Inconclusive(m));
                        }
                        if said != Some("waiting") {
                            let f = figures();
                            self.event_with("waiting", format!("{m}; waiting for traffic"), f);
                            said = Some("waiting");
                        }
                        pending = m;
                    }
                }
            } else if Instant::now() >= deadline {
                return Err(Stop::Inconclusive(format!(
                    "{pending} (after --max-wait {})",
                    humanize(self.plan.max_wait)
                )));
            }
        }
    }

    /// COLOR's and the active colour's counts in `window`.
    fn figures(&self, window: &Window) -> (Counts, Counts) {
        (
            window.counts(&self.promotion.color),
            window.counts(&self.promotion.from),
        )
    }

    /// COLOR's and the active colour's counts, as the judge reads them.
    fn observed<'c>(
        &'c self,
        canary: &'c Counts,
        baseline: &'c Counts,
    ) -> (Observed<'c>, Observed<'c>) {
        (
            Observed {
                color: &self.promotion.color,
                counts: canary,
            },
            Observed {
                color: &self.promotion.from,
                counts: baseline,
            },
        )
    }

    fn breach(&self, window: &Window) -> Result<(), Stop> {
        let (canary, baseline) = self.figures(window);
        let (c, b) = self.observed(&canary, &baseline);
        let breach = certain_breach(&self.plan.limits, &c, &b);
        match breach {
            Some(why) => Err(Stop::Failed(why)),
            None => Ok(()),
        }
    }

    /// One look at KV: the walk stops when its record is gone or not its own any more;
    /// answers every edge's traffic record. A failed read is skipped (the deadline bounds it).
    async fn tick(&self) -> Result<Vec<TrafficRecord>, Stop> {
        match self.read_record().await {
            Ok(Some(f)) if self.ours(&f) && f.index == self.record_index => {}
            Ok(_) => {
                return Err(Stop::Aborted(format!(
                    "{}'s promotion was ended from outside (templater rollback)",
                    self.service
                )))
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the promotion record failed; retrying");
                return Ok(Vec::new());
            }
        }
        let dir = self.d.keys.traffic_dir(self.service);
        match self.d.client.kv_list(&dir, &Default::default(), true).await {
            Ok((pairs, _)) => Ok(pairs
                .iter()
                .filter(|p| self.d.keys.parse_traffic(&p.key).is_some())
                .filter_map(|p| serde_json::from_slice(&p.value).ok())
                .collect()),
            Err(e) => {
                tracing::warn!(error = %e, "reading the edges' traffic failed; retrying");
                Ok(Vec::new())
            }
        }
    }
}

/// `30s`, `2m`, `1m30s`.
pub(super) fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 60, s % 60) {
        (0, _) if d.subsec_millis() > 0 || s == 0 => format!("{}ms", d.as_millis()),
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}
