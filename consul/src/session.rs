//! Sessions: a lease that holds KV locks while its owner renews it. When the owner stops
//! renewing (killed, partitioned), Consul invalidates the session after its TTL and releases
//! its locks, keeping the keys (behaviour `release`), so others can see what was left.

use serde::Deserialize;
use serde_json::json;

use crate::client::{encode_segment, Client};
use crate::error::Result;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Created {
    #[serde(rename = "ID")]
    id: String,
}

impl Client {
    /// Creates a session named `name` that lives `ttl_secs` (10–86400) without renewal, bound
    /// to no health check, with no lock delay, releasing its locks when invalidated.
    pub async fn session_create(&self, name: &str, ttl_secs: u64) -> Result<String> {
        let body = json!({
            "Name": name,
            "TTL": format!("{}s", ttl_secs.clamp(10, 86_400)),
            "Behavior": "release",
            "LockDelay": "0s",
            "Checks": [],
        });
        let resp = self
            .put("/v1/session/create", Some(body.to_string().into_bytes()))
            .await?;
        let created: Created = self.decode("/v1/session/create", resp).await?;
        Ok(created.id)
    }

    /// Renews `id`'s TTL; answers `false` when the session is gone (invalidated or destroyed).
    pub async fn session_renew(&self, id: &str) -> Result<bool> {
        let path = format!("/v1/session/renew/{}", encode_segment(id, false));
        match self.put(&path, None).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Destroys `id`, releasing its locks at once.
    pub async fn session_destroy(&self, id: &str) -> Result<()> {
        let path = format!("/v1/session/destroy/{}", encode_segment(id, false));
        self.put(&path, None).await?;
        Ok(())
    }
}
