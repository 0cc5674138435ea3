//! `templater flip SERVICE [COLOR]`.

use crate::config::FlipArgs;
use crate::deploy::{Deploy, DeployError};

pub async fn run(d: &Deploy, a: &FlipArgs) -> Result<String, DeployError> {
    let outcome = d.flip(&a.service, a.color.as_deref(), a.force).await?;
    super::then_wait(d, &a.service, outcome, a.wait_live).await
}
