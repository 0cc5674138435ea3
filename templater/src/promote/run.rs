//! The walk of one promotion: lock it, run the acceptance check, then per step set the canary
//! (one check-and-set transaction with the record), wait until every edge serves it, judge
//! its window and move on; the last step makes COLOR active. Anything that stops it midway —
//! a failed or inconclusive step, a failed check, a signal, a Consul error — sends all traffic
//! back to the colour it started from before the command exits; `templater rollback`
//! aborts it from outside (the record vanishes and the walk stops without touching traffic).

use std::time::Duration;

use swarmgate_consul::KvOp;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::args::{Plan, PromoteArgs};
use super::check::{self, CheckEnv};
use super::judge::{certain_breach, judge, Observed, Verdict};
use super::progress::{Event, Figures, Progress};
use super::record::{self, Found, Promotion};
use super::signals::Signals;
use super::window::Window;
use crate::deploy::{Deploy, DeployError};
use crate::history::{self, Entry};
use crate::keys::Field;
use crate::records::unix_now;
use crate::settings::parse_color;
use crate::traffic_publish::TrafficRecord;

/// The CLI's session lives this long without a renewal: a killed CLI's lock is released
/// within one to two of these.
const SESSION_TTL_SECS: u64 = 10;
/// How often the window is read.
const TICK: Duration = Duration::from_secs(1);
/// How long a rollback waits for the edges to serve it before the command exits anyway.
const ROLLBACK_WAIT: Duration = Duration::from_secs(30);

/// Why a walk stopped before the end.
enum Stop {
    Failed(String),
    Inconclusive(String),
    /// Ended from outside (`rollback`): traffic is not ours to touch any more.
    Aborted(String),
    Signalled(&'static str, u8),
    Error(DeployError),
}

impl From<DeployError> for Stop {
    fn from(e: DeployError) -> Self {
        Stop::Error(e)
    }
}

impl From<swarmgate_consul::Error> for Stop {
    fn from(e: swarmgate_consul::Error) -> Self {
        Stop::Error(e.into())
    }
}

/// Runs `templater promote`; answers the final line, or the error whose exit code says how
/// it ended (4 already running, 6 failed or aborted, 7 inconclusive).
pub async fn promote(d: &Deploy, a: &PromoteArgs) -> Result<String, DeployError> {
    let plan = a.plan().map_err(DeployError::Invalid)?;
    Deploy::check_service(&a.service)?;
    if d.colors.len() != 2 {
        return Err(DeployError::Invalid(format!(
            "promote moves traffic between two colours; --colors names {}",
            d.colors.join(", ")
        )));
    }
    let service = a.service.as_str();
    let active = d.read(service, Field::Active).await?;
    let Some(from) = active
        .value
        .as_deref()
        .and_then(|v| parse_color(v, &d.colors).ok())
    else {
        return Err(DeployError::Refused(format!(
            "{service} has no active colour; run `templater flip {service} COLOR` first"
        )));
    };
    let color = match &a.color {
        Some(c) => parse_color(c, &d.colors).map_err(DeployError::Invalid)?,
        None => d.other_color(Some(&from), service)?,
    };
    if color == from {
        return Err(DeployError::Refused(format!("{color} is already active")));
    }
    d.require_passing(service, &color, false).await?;
    let mut signals = Signals::new().map_err(|e| DeployError::Invalid(e.to_string()))?;
    let session = d
        .client
        .session_create(&format!("templater promote {service}"), SESSION_TTL_SECS)
        .await?;
    let renewing = CancellationToken::new();
    tokio::spawn(renew(d.client.clone(), session.clone(), renewing.clone()));
    let mut walk = Walk {
        d,
        args: a,
        service,
        promotion: Promotion {
            color,
            from,
            steps: plan.steps.clone(),
            step: None,
            started_unix: unix_now(),
            step_unix: unix_now(),
            by: a.by.resolve(),
        },
        plan,
        session,
        record_index: 0,
        active_index: active.index,
        progress: Progress::new(a.json),
    };
    let outcome = match walk.lock().await {
        Ok(()) => {
            tokio::select! {
                r = walk.walk() => r,
                s = signals.recv() => Err(Stop::Signalled(s.0, s.1)),
            }
        }
        Err(e) => {
            renewing.cancel();
            let _ = d.client.session_destroy(&walk.session).await;
            return Err(e);
        }
    };
    let result = match outcome {
        Ok(message) => Ok(message),
        Err(stop) => Err(walk.stop(stop).await),
    };
    renewing.cancel();
    let _ = d.client.session_destroy(&walk.session).await;
    result
}

/// Keeps the session alive until cancelled.
async fn renew(client: swarmgate_consul::Client, session: String, token: CancellationToken) {
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(SESSION_TTL_SECS / 3)) => {}
        }
        match client.session_renew(&session).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("the promotion's Consul session is gone; the walk will stop");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "renewing the promotion's session failed"),
        }
    }
}

struct Walk<'a> {
    d: &'a Deploy,
    args: &'a PromoteArgs,
    service: &'a str,
    promotion: Promotion,
    plan: Plan,
    session: String,
    /// The record's ModifyIndex as this walk last wrote it.
    record_index: u64,
    /// `active`'s ModifyIndex when the walk began (it must not change until the end).
    active_index: u64,
    progress: Progress,
}

impl Walk<'_> {
    fn event(&mut self, event: &'static str, message: impl Into<String>) {
        self.event_with(event, message, None);
    }

    fn event_with(
        &mut self,
        event: &'static str,
        message: impl Into<String>,
        figures: Option<(Figures, Figures)>,
    ) {
        let p = &self.promotion;
        let (canary, baseline) = figures.map_or((None, None), |(c, b)| (Some(c), Some(b)));
        let e = Event {
            event,
            service: self.service.to_string(),
            color: p.color.clone(),
            from: p.from.clone(),
            step: p.step.map(|i| i + 1),
            steps: p.steps.len(),
            percent: p.step.and_then(|i| p.steps.get(i).copied()),
            message: message.into(),
            canary,
            baseline,
            at_unix: 0,
        };
        self.progress.event(e);
    }

    async fn history(&self, action: &str, detail: String) {
        let p = &self.promotion;
        let entry = Entry::now(action, Some(&p.from), Some(&p.color), detail, &p.by);
        history::record(&self.d.client, &self.d.keys, self.service, entry).await;
    }

    fn record_value(&self) -> Vec<u8> {
        serde_json::to_vec(&self.promotion).expect("a promotion serialises")
    }

    /// Writes the record under this walk's session; a promotion whose CLI runs is refused
    /// (exit 4), one whose CLI is gone is taken over.
    async fn lock(&mut self) -> Result<(), DeployError> {
        let key = self.d.keys.setting(self.service, Field::Promotion);
        let before = record::read(&self.d.client, &self.d.keys, self.service).await?;
        let op = KvOp::Lock {
            key,
            value: self.record_value(),
            session: self.session.clone(),
        };
        if !self.d.client.kv_txn(&[op]).await? {
            let who = match record::read(&self.d.client, &self.d.keys, self.service).await? {
                Some(f) => record::describe(&f, unix_now()),
                None => "another promotion holds its lock".into(),
            };
            return Err(DeployError::Conflict(format!(
                "{} is already being promoted: {who}",
                self.service
            )));
        }
        let found = self.read_record().await?.ok_or_else(|| {
            DeployError::Conflict(format!("{}'s promotion vanished as it began", self.service))
        })?;
        self.record_index = found.index;
        let taken = before.map(|b| {
            format!(
                "; took over an interrupted promotion of {} at {}",
                b.promotion.color,
                b.promotion.step_text()
            )
        });
        let steps = self.steps_text();
        self.event(
            "started",
            format!(
                "{} → {} in steps {steps}{}",
                self.promotion.from,
                self.promotion.color,
                taken.clone().unwrap_or_default()
            ),
        );
        self.history(
            "promote",
            format!("steps {steps}{}", taken.unwrap_or_default()),
        )
        .await;
        Ok(())
    }

    fn steps_text(&self) -> String {
        self.promotion
            .steps
            .iter()
            .map(|s| format!("{s}%"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    async fn read_record(&self) -> swarmgate_consul::Result<Option<Found>> {
        record::read(&self.d.client, &self.d.keys, self.service).await
    }

    /// Whether `found` is this walk's record (locked by its session, or released by it).
    fn ours(&self, found: &Found) -> bool {
        match &found.session {
            Some(s) => *s == self.session,
            None => {
                found.promotion.started_unix == self.promotion.started_unix
                    && found.promotion.color == self.promotion.color
                    && found.promotion.by == self.promotion.by
            }
        }
    }

    async fn walk(&mut self) -> Result<String, Stop> {
        self.check(0).await?;
        for i in 0..self.promotion.steps.len() {
            let percent = self.promotion.steps[i];
            self.step(i, percent).await?;
            if self.args.check_each {
                self.check(percent).await?;
            }
        }
        self.finish().await
    }

    async fn check(&mut self, step: u8) -> Result<(), Stop> {
        let Some(cmd) = &self.args.check else {
            return Ok(());
        };
        let env = CheckEnv {
            service: self.service,
            color: &self.promotion.color,
            step,
            edge: &self.args.edge,
            preview_header: &self.args.preview_header,
        };
        let outcome = check::run(cmd, &env, self.plan.max_wait).await;
        match outcome {
            Ok(()) => {
                self.event("check", format!("--check passed at {step}%"));
                Ok(())
            }
            Err(why) => Err(Stop::Failed(why)),
        }
    }

    /// Sets step `i`, waits for the edges, judges its window.
    async fn step(&mut self, i: usize, percent: u8) -> Result<(), Stop> {
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
    fn figures(&self, window: &Window) -> (crate::traffic::Counts, crate::traffic::Counts) {
        (
            window.counts(&self.promotion.color),
            window.counts(&self.promotion.from),
        )
    }

    /// COLOR's and the active colour's counts, as the judge reads them.
    fn observed<'c>(
        &'c self,
        canary: &'c crate::traffic::Counts,
        baseline: &'c crate::traffic::Counts,
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

    /// A transaction of the walk lost: aborted from outside, or settings changed by another
    /// command.
    async fn lost(&self) -> Stop {
        match self.read_record().await {
            Ok(Some(f)) if self.ours(&f) => Stop::Failed(format!(
                "{}'s settings changed under the promotion (another deploy command?)",
                self.service
            )),
            Ok(_) => Stop::Aborted(format!(
                "{}'s promotion was ended from outside (templater rollback)",
                self.service
            )),
            Err(e) => Stop::Error(e.into()),
        }
    }

    /// The last step passed: COLOR becomes active with canary 0 and the record goes, in one
    /// transaction guarded by the record.
    async fn finish(&mut self) -> Result<String, Stop> {
        let key = self.d.keys.setting(self.service, Field::Promotion);
        let guard = vec![
            KvOp::CheckIndex {
                key: key.clone(),
                index: self.record_index,
            },
            KvOp::Delete { key },
        ];
        let (color, from) = (self.promotion.color.clone(), self.promotion.from.clone());
        if let Err(e) = self
            .d
            .commit(self.service, &color, Some(&from), self.active_index, guard)
            .await
        {
            return Err(match e {
                DeployError::Conflict(_) => self.lost().await,
                e => Stop::Error(e),
            });
        }
        let index = self.d.read(self.service, Field::Active).await?.index;
        self.promotion.step = None;
        let steps = self.steps_text();
        self.event(
            "promoted",
            format!("{color} is active (was {from}) after steps {steps}; canary 0"),
        );
        self.history("promote-passed", format!("after steps {steps}"))
            .await;
        let live = self
            .d
            .wait_live(self.service, index, self.plan.max_wait)
            .await?;
        let line = format!(
            "{}: {color} is active (was {from}) after steps {steps}; canary 0; {live}",
            self.service
        );
        Ok(self.final_line("promoted", line))
    }

    fn final_line(&self, event: &str, line: String) -> String {
        if !self.progress.json() {
            return line;
        }
        serde_json::json!({
            "event": "result",
            "outcome": event,
            "service": self.service,
            "color": self.promotion.color,
            "from": self.promotion.from,
            "message": line,
        })
        .to_string()
    }

    /// Ends a walk that stopped: traffic back on the colour it started from (unless it was
    /// aborted from outside), said and recorded; answers the error to exit with.
    async fn stop(&mut self, stop: Stop) -> DeployError {
        let (event, action, error) = match stop {
            Stop::Aborted(why) => {
                self.event("aborted", why.clone());
                self.history("promote-aborted", why.clone()).await;
                return DeployError::StepFailed(why);
            }
            Stop::Failed(why) => ("failed", "promote-failed", DeployError::StepFailed(why)),
            Stop::Inconclusive(why) => (
                "inconclusive",
                "promote-inconclusive",
                DeployError::Inconclusive(why),
            ),
            Stop::Signalled(name, code) => (
                "failed",
                "promote-failed",
                DeployError::Signalled(name, code),
            ),
            Stop::Error(e) => ("failed", "promote-failed", e),
        };
        let why = error.to_string();
        self.event(event, why.clone());
        let back = self.roll_back().await;
        self.event("rolled-back", back.clone());
        self.history(action, format!("{why}; {back}")).await;
        error
    }

    /// Canary 0 and the record deleted, if the record is still this walk's and the colour it
    /// started from still active; then waits (bounded) for the edges to serve it.
    async fn roll_back(&mut self) -> String {
        let from = self.promotion.from.clone();
        let attempt = async {
            let Some(found) = self.read_record().await? else {
                return Ok::<_, DeployError>("the promotion had already ended".to_string());
            };
            if !self.ours(&found) {
                return Ok("another promotion holds the service; traffic left as it is".into());
            }
            let active = self.d.read(self.service, Field::Active).await?;
            if active.value.as_deref() != Some(from.as_str()) {
                return Ok(format!(
                    "{from} is not active any more; traffic left as it is"
                ));
            }
            match self
                .d
                .end_promotion(self.service, found.index, active.index)
                .await?
            {
                None => Ok("the settings changed under the rollback; traffic left as it is".into()),
                Some(index) => {
                    let live = self
                        .d
                        .wait_live(self.service, index, ROLLBACK_WAIT)
                        .await
                        .unwrap_or_else(|e| e.to_string());
                    Ok(format!("all traffic back on {from}; canary 0; {live}"))
                }
            }
        };
        match attempt.await {
            Ok(line) => line,
            Err(e) => format!(
                "could not roll back ({e}): run `templater rollback {}`",
                self.service
            ),
        }
    }
}

/// `30s`, `2m`, `1m30s`.
fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 60, s % 60) {
        (0, _) if d.subsec_millis() > 0 || s == 0 => format!("{}ms", d.as_millis()),
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}
