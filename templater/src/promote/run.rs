//! The walk of one promotion: lock it, run the acceptance check, then per step set the canary
//! (one check-and-set transaction with the record), wait until every edge serves it, judge
//! its window and move on; the last step makes COLOR active. Anything that stops it midway —
//! a failed or inconclusive step, a failed check, a signal, a Consul error — sends all traffic
//! back to the colour it started from before the command exits; `templater rollback`
//! aborts it from outside (the record vanishes and the walk stops without touching traffic).

use std::time::Duration;

use swarmgate_consul::KvOp;
use tokio_util::sync::CancellationToken;

use super::args::{Plan, PromoteArgs};
use super::check::{self, CheckEnv};
use super::progress::{Event, Figures, Progress};
use super::record::{self, Found, Promotion};
use super::signals::Signals;
use crate::deploy::{Deploy, DeployError};
use crate::history::{self, Entry};
use crate::keys::Field;
use crate::records::unix_now;
use crate::settings::parse_color;

/// The CLI's session lives this long without a renewal: a killed CLI's lock is released
/// within one to two of these.
const SESSION_TTL_SECS: u64 = 10;
/// How often the window is read.
pub(super) const TICK: Duration = Duration::from_secs(1);
/// How long a rollback waits for the edges to serve it before the command exits anyway.
pub(super) const ROLLBACK_WAIT: Duration = Duration::from_secs(30);

/// Why a walk stopped before the end.
pub(super) enum Stop {
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

pub(super) struct Walk<'a> {
    pub(super) d: &'a Deploy,
    pub(super) args: &'a PromoteArgs,
    pub(super) service: &'a str,
    pub(super) promotion: Promotion,
    pub(super) plan: Plan,
    pub(super) session: String,
    /// The record's ModifyIndex as this walk last wrote it.
    pub(super) record_index: u64,
    /// `active`'s ModifyIndex when the walk began (it must not change until the end).
    pub(super) active_index: u64,
    pub(super) progress: Progress,
}

impl Walk<'_> {
    pub(super) fn event(&mut self, event: &'static str, message: impl Into<String>) {
        self.event_with(event, message, None);
    }

    pub(super) fn event_with(
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

    pub(super) async fn history(&self, action: &str, detail: String) {
        let p = &self.promotion;
        let entry = Entry::now(action, Some(&p.from), Some(&p.color), detail, &p.by);
        history::record(&self.d.client, &self.d.keys, self.service, entry).await;
    }

    pub(super) fn record_value(&self) -> Vec<u8> {
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

    pub(super) fn steps_text(&self) -> String {
        self.promotion
            .steps
            .iter()
            .map(|s| format!("{s}%"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(super) async fn read_record(&self) -> swarmgate_consul::Result<Option<Found>> {
        record::read(&self.d.client, &self.d.keys, self.service).await
    }

    /// Whether `found` is this walk's record (locked by its session, or released by it).
    pub(super) fn ours(&self, found: &Found) -> bool {
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

    /// A transaction of the walk lost: aborted from outside, or settings changed by another
    /// command.
    pub(super) async fn lost(&self) -> Stop {
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
}
