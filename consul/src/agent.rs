//! The local agent's service endpoints: register, deregister, list, maintenance and TTL updates.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::blocking::QueryOptions;
use crate::check::CheckStatus;
use crate::client::{encode_segment, Client};
use crate::error::Result;

/// A service as `PUT /v1/agent/service/register` takes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceRegistration {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    pub port: u16,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckDefinition>,
}

/// One health check attached to a service registration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckDefinition {
    #[serde(rename = "CheckID", default, skip_serializing_if = "String::is_empty")]
    pub check_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(rename = "HTTP", default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// The HTTP check's method (GET when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(
        rename = "TLSSkipVerify",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub tls_skip_verify: bool,
    #[serde(rename = "TCP", default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    #[serde(rename = "GRPC", default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<String>,
    #[serde(
        rename = "GRPCUseTLS",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub grpc_use_tls: bool,
    #[serde(rename = "TTL", default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregister_critical_service_after: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
}

/// A service as `GET /v1/agent/services` lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AgentService {
    #[serde(rename = "ID")]
    pub id: String,
    pub service: String,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub port: u16,
    #[serde(default)]
    pub meta: Option<BTreeMap<String, String>>,
}

impl Client {
    /// Registers (or replaces) a service on the local agent.
    pub async fn register_service(&self, service: &ServiceRegistration) -> Result<()> {
        let body = serde_json::to_vec(service).expect("a registration always serialises");
        self.put("/v1/agent/service/register", Some(body)).await?;
        Ok(())
    }

    /// Removes a service from the local agent; a service the agent does not know is not an error.
    pub async fn deregister_service(&self, id: &str) -> Result<()> {
        let path = format!("/v1/agent/service/deregister/{}", encode_segment(id, false));
        match self.put(&path, None).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map(drop),
        }
    }

    /// The local agent's services, optionally narrowed by a filter expression.
    pub async fn agent_services(
        &self,
        filter: Option<&str>,
    ) -> Result<BTreeMap<String, AgentService>> {
        let opts = QueryOptions {
            filter: filter.map(str::to_string),
            ..QueryOptions::default()
        };
        Ok(self.query("/v1/agent/services", &opts).await?.0)
    }

    /// Puts a service in (or takes it out of) maintenance mode.
    pub async fn service_maintenance(&self, id: &str, enable: bool, reason: &str) -> Result<()> {
        let path = format!(
            "/v1/agent/service/maintenance/{}",
            encode_segment(id, false)
        );
        let req = self.request(reqwest::Method::PUT, &path).query(&[
            ("enable", if enable { "true" } else { "false" }),
            ("reason", reason),
        ]);
        self.send("PUT", &path, req).await?;
        Ok(())
    }

    /// Removes one check from the local agent; a check it does not know is not an error.
    pub async fn deregister_check(&self, check_id: &str) -> Result<()> {
        let path = format!(
            "/v1/agent/check/deregister/{}",
            encode_segment(check_id, false)
        );
        match self.put(&path, None).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map(drop),
        }
    }

    /// Sets a TTL check's status and output.
    pub async fn update_ttl_check(
        &self,
        check_id: &str,
        status: CheckStatus,
        output: &str,
    ) -> Result<()> {
        let path = format!("/v1/agent/check/update/{}", encode_segment(check_id, false));
        let body = serde_json::json!({ "Status": status.as_str(), "Output": output });
        self.put(&path, Some(body.to_string().into_bytes())).await?;
        Ok(())
    }
}
