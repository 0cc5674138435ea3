//! `templater rollback SERVICE`.

use crate::config::RollbackArgs;
use crate::deploy::{Deploy, DeployError};

pub async fn run(d: &Deploy, a: &RollbackArgs) -> Result<String, DeployError> {
    let outcome = d.rollback(&a.service, a.force).await?;
    super::then_wait(d, &a.service, outcome, a.wait_live).await
}
