//! `templater canary SERVICE PERCENT`.

use crate::config::CanaryArgs;
use crate::deploy::{Deploy, DeployError};

pub async fn run(d: &Deploy, a: &CanaryArgs) -> Result<String, DeployError> {
    let outcome = d.canary(&a.service, &a.percent).await?;
    super::then_wait(d, &a.service, outcome, a.wait_live).await
}
