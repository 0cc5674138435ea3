//! `templater history SERVICE [--json]`: the service's deploy history, newest last.

use crate::config::HistoryArgs;
use crate::deploy::{Deploy, DeployError};

pub async fn run(d: &Deploy, a: &HistoryArgs) -> Result<String, DeployError> {
    Deploy::check_service(&a.service)?;
    let entries = crate::history::read(&d.client, &d.keys, &a.service).await?;
    if a.json {
        return Ok(serde_json::to_string_pretty(&entries).expect("entries serialise"));
    }
    if entries.is_empty() {
        return Ok(format!("{}: no deploy recorded", a.service));
    }
    Ok(entries.iter().map(|e| format!("{e}\n")).collect())
}
