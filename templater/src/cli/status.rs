//! `templater status [SERVICE] [--json]`.

use crate::config::StatusArgs;
use crate::deploy::{Deploy, DeployError};

pub async fn run(d: &Deploy, a: &StatusArgs) -> Result<String, DeployError> {
    let report = crate::status::gather(&d.client, &d.keys, &d.colors, a.service.as_deref()).await?;
    Ok(if a.json {
        serde_json::to_string_pretty(&report).expect("a report serialises")
    } else {
        crate::status::to_text(&report)
    })
}
