//! KV transactions (`/v1/txn`): several KV writes applied all or none, with check-and-set, so two
//! deploy steps can never interleave.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::client::Client;
use crate::error::{Error, Result};

/// The most operations Consul takes in one transaction.
pub const MAX_TXN_OPS: usize = 64;

/// One KV operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOp {
    /// Write unconditionally.
    Set { key: String, value: Vec<u8> },
    /// Write only if the key's ModifyIndex is `index` (0: only if absent).
    Cas {
        key: String,
        value: Vec<u8>,
        index: u64,
    },
    /// Delete unconditionally.
    Delete { key: String },
    /// Write and take the key's lock for `session` ([`crate::session`]); loses (the whole
    /// transaction with it) when another session holds it.
    Lock {
        key: String,
        value: Vec<u8>,
        session: String,
    },
    /// Fails the transaction unless the key's ModifyIndex is `index`; writes nothing.
    CheckIndex { key: String, index: u64 },
}

impl KvOp {
    fn to_json(&self) -> Value {
        let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
        match self {
            KvOp::Set { key, value } => {
                json!({"KV": {"Verb": "set", "Key": key, "Value": b64(value)}})
            }
            KvOp::Cas { key, value, index } => {
                json!({"KV": {"Verb": "cas", "Key": key, "Value": b64(value), "Index": index}})
            }
            KvOp::Delete { key } => json!({"KV": {"Verb": "delete", "Key": key}}),
            KvOp::Lock {
                key,
                value,
                session,
            } => {
                json!({"KV": {"Verb": "lock", "Key": key, "Value": b64(value), "Session": session}})
            }
            KvOp::CheckIndex { key, index } => {
                json!({"KV": {"Verb": "check-index", "Key": key, "Index": index}})
            }
        }
    }
}

impl Client {
    /// Applies any number of unconditional `ops` in transactions of up to [`MAX_TXN_OPS`], one
    /// after the other: each chunk is atomic, the whole is not (a failure leaves the chunks
    /// before it applied).
    pub async fn kv_txn_chunked(&self, ops: &[KvOp]) -> Result<()> {
        for chunk in ops.chunks(MAX_TXN_OPS) {
            self.kv_txn(chunk).await?;
        }
        Ok(())
    }

    /// Applies `ops` atomically. Answers `false` when a check-and-set lost (nothing was written).
    pub async fn kv_txn(&self, ops: &[KvOp]) -> Result<bool> {
        let body: Vec<Value> = ops.iter().map(KvOp::to_json).collect();
        let body = serde_json::to_vec(&body).expect("json always serialises");
        match self.put("/v1/txn", Some(body)).await {
            Ok(_) => Ok(true),
            Err(Error::Status { status, .. }) if status == reqwest::StatusCode::CONFLICT => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}
