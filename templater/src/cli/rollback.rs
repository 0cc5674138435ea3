//! `templater rollback SERVICE`.

use crate::config::RollbackArgs;
use crate::deploy::{Deploy, DeployError};

pub async fn run(d: &Deploy, a: &RollbackArgs) -> Result<String, DeployError> {
    let change = d.rollback(&a.service, a.force).await?;
    super::recorded_then_wait(d, &a.service, "rollback", change, &a.by, a.wait_live).await
}
