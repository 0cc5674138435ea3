//! The KV store: reads (plain, recursive, blocking), writes (plain and check-and-set) and deletes.

use base64::Engine as _;
use serde::Deserialize;

use crate::blocking::{QueryMeta, QueryOptions};
use crate::client::{encode_segment, Client};
use crate::error::{Error, Result};

/// One key and its value, decoded from Consul's base64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvPair {
    pub key: String,
    pub value: Vec<u8>,
    pub modify_index: u64,
    /// The session holding the key's lock, if one does ([`crate::session`]).
    pub session: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawPair {
    key: String,
    value: Option<String>,
    modify_index: u64,
    #[serde(default)]
    session: Option<String>,
}

impl RawPair {
    fn decode(self) -> Result<KvPair> {
        let value = match self.value {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| Error::Config(format!("kv {}: value is not base64: {e}", self.key)))?,
            None => Vec::new(),
        };
        Ok(KvPair {
            key: self.key,
            value,
            modify_index: self.modify_index,
            session: self.session.filter(|s| !s.is_empty()),
        })
    }
}

fn kv_path(key: &str) -> String {
    format!("/v1/kv/{}", encode_segment(key, true))
}

impl Client {
    /// One key, or `None` when it does not exist.
    pub async fn kv_get(&self, key: &str) -> Result<Option<KvPair>> {
        Ok(self
            .kv_list(key, &QueryOptions::default(), false)
            .await?
            .0
            .into_iter()
            .find(|p| p.key == key))
    }

    /// Every key under `prefix` with its value; a blocking read when `opts` carries an index.
    /// A prefix with no keys answers an empty list (Consul's 404), still with its index.
    pub async fn kv_list(
        &self,
        prefix: &str,
        opts: &QueryOptions,
        recurse: bool,
    ) -> Result<(Vec<KvPair>, QueryMeta)> {
        let path = kv_path(prefix);
        let mut req = self.query_request(&path, opts);
        if recurse {
            req = req.query(&[("recurse", "")]);
        }
        let resp = self.send_inner("GET", &path, req, true).await?;
        let meta = QueryMeta::from_headers(resp.headers());
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok((Vec::new(), meta));
        }
        let raw: Vec<RawPair> = self.decode(&path, resp).await?;
        let pairs = raw
            .into_iter()
            .map(RawPair::decode)
            .collect::<Result<Vec<_>>>()?;
        Ok((pairs, meta))
    }

    /// Writes `value` at `key`.
    pub async fn kv_put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.put(&kv_path(key), Some(value.to_vec())).await?;
        Ok(())
    }

    /// Deletes every key under `prefix`.
    pub async fn kv_delete_tree(&self, prefix: &str) -> Result<()> {
        let path = kv_path(prefix);
        let req = self
            .request(reqwest::Method::DELETE, &path)
            .query(&[("recurse", "")]);
        self.send("DELETE", &path, req).await?;
        Ok(())
    }

    /// Deletes `key`; a missing key is not an error.
    pub async fn kv_delete(&self, key: &str) -> Result<()> {
        self.delete(&kv_path(key)).await?;
        Ok(())
    }
}
