//! How a promotion ends: the last step passed makes COLOR active (one transaction guarded by
//! the record); anything else sends all traffic back to the colour it started from, says so
//! and records it, unless `rollback` ended it from outside.

use swarmgate_consul::KvOp;

use super::run::{Stop, Walk, ROLLBACK_WAIT};
use crate::deploy::DeployError;
use crate::keys::Field;

impl Walk<'_> {
    /// The last step passed: COLOR becomes active with canary 0 and the record goes, in one
    /// transaction guarded by the record.
    pub(super) async fn finish(&mut self) -> Result<String, Stop> {
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
    pub(super) async fn stop(&mut self, stop: Stop) -> DeployError {
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
