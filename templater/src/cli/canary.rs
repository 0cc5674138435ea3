//! `templater canary SERVICE PERCENT`.

use crate::config::CanaryArgs;
use crate::deploy::{Deploy, DeployError};

pub async fn run(d: &Deploy, a: &CanaryArgs) -> Result<String, DeployError> {
    let change = d.canary(&a.service, &a.percent).await?;
    super::recorded_then_wait(d, &a.service, "canary", change, &a.by, a.wait_live).await
}
