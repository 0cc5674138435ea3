//! What the other deploy commands do about a promotion, on [`Deploy`]: `flip` and `canary` are
//! refused while one runs and end an interrupted one in their own transaction; `rollback`
//! aborts one (canary 0 on the colour it started from, the record deleted), which is also how
//! `promote` itself rolls back.

use swarmgate_consul::KvOp;

use super::record::Found;
use crate::deploy::{Change, Deploy, DeployError};
use crate::keys::Field;

impl Deploy {
    /// Ends `found`'s promotion with all traffic on the colour it started from: canary 0 and
    /// the record deleted in one transaction, only if the record is still the one read.
    pub(crate) async fn abort_promotion(
        &self,
        service: &str,
        found: &Found,
    ) -> Result<Change, DeployError> {
        let from = &found.promotion.from;
        let active = self.read(service, Field::Active).await?;
        if active.value.as_deref() != Some(from.as_str()) {
            return Err(DeployError::Conflict(format!(
                "{service}'s promotion started from {from} but {} is active; fix it with `templater flip`",
                active.value.as_deref().unwrap_or("no colour")
            )));
        }
        let index = self
            .end_promotion(service, found.index, active.index)
            .await?
            .ok_or_else(|| {
                DeployError::Conflict(format!(
                    "{service}'s promotion changed while this command ran; run it again"
                ))
            })?;
        Ok(Change {
            index,
            message: format!(
                "{service}: promotion of {} aborted, rolled back to {from}; canary 0",
                found.promotion.color
            ),
            from: Some(found.promotion.color.clone()),
            to: Some(from.clone()),
            detail: "aborted the promotion".into(),
        })
    }

    /// Canary 0 and the promotion record deleted, only while the record is at `record_index`
    /// and `active` at `active_index`. Answers the new settings index, or `None` when either
    /// changed (nothing was written).
    pub(crate) async fn end_promotion(
        &self,
        service: &str,
        record_index: u64,
        active_index: u64,
    ) -> Result<Option<u64>, DeployError> {
        let ops = [
            KvOp::CheckIndex {
                key: self.keys.setting(service, Field::Promotion),
                index: record_index,
            },
            KvOp::CheckIndex {
                key: self.keys.setting(service, Field::Active),
                index: active_index,
            },
            KvOp::Set {
                key: self.keys.setting(service, Field::Canary),
                value: b"0".to_vec(),
            },
            KvOp::Delete {
                key: self.keys.setting(service, Field::Promotion),
            },
        ];
        if !self.client.kv_txn(&ops).await? {
            return Ok(None);
        }
        Ok(Some(self.read(service, Field::Canary).await?.index))
    }

    /// What `flip` and `canary` must do about a promotion: none, go ahead; one whose CLI runs,
    /// refused (`rollback` aborts it); an interrupted one, ended in the same transaction.
    pub(crate) async fn promotion_guard(&self, service: &str) -> Result<Vec<KvOp>, DeployError> {
        match crate::promote::record::read(&self.client, &self.keys, service).await? {
            None => Ok(Vec::new()),
            Some(found) if found.session.is_some() => Err(DeployError::Conflict(format!(
                "{service} is being promoted to {} by {}; `templater rollback {service}` aborts it",
                found.promotion.color, found.promotion.by
            ))),
            Some(found) => {
                let key = self.keys.setting(service, Field::Promotion);
                Ok(vec![
                    KvOp::CheckIndex {
                        key: key.clone(),
                        index: found.index,
                    },
                    KvOp::Delete { key },
                ])
            }
        }
    }
}
