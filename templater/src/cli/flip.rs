//! `templater flip SERVICE [COLOR]`.

use crate::config::FlipArgs;
use crate::deploy::{Deploy, DeployError};

pub async fn run(d: &Deploy, a: &FlipArgs) -> Result<String, DeployError> {
    let change = d.flip(&a.service, a.color.as_deref(), a.force).await?;
    super::recorded_then_wait(d, &a.service, "flip", change, &a.by, a.wait_live).await
}
