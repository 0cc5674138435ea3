//! Health and catalog reads: the instances of a service with their checks, and the service list.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::agent::AgentService;
use crate::blocking::{QueryMeta, QueryOptions};
use crate::catalog::CheckState;
use crate::check::CheckStatus;
use crate::client::{encode_segment, Client};
use crate::error::Result;

/// One instance of a service as `/v1/health/service/:name` answers it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceEntry {
    pub node: Node,
    pub service: AgentService,
    #[serde(default)]
    pub checks: Vec<CheckState>,
}

/// The node an instance runs on.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Node {
    pub node: String,
    pub address: String,
}

impl ServiceEntry {
    /// The instance's health: the worst of its checks (node checks included).
    pub fn status(&self) -> CheckStatus {
        CheckStatus::worst(self.checks.iter().map(|c| CheckStatus::parse(&c.status)))
    }

    /// The address to reach the instance at: the service's, else its node's.
    pub fn address(&self) -> &str {
        if self.service.address.is_empty() {
            &self.node.address
        } else {
            &self.service.address
        }
    }
}

impl Client {
    /// The instances of `service`; only passing ones when `passing_only`.
    pub async fn health_service(
        &self,
        service: &str,
        opts: &QueryOptions,
        passing_only: bool,
    ) -> Result<(Vec<ServiceEntry>, QueryMeta)> {
        let path = format!("/v1/health/service/{}", encode_segment(service, false));
        let mut req = self.query_request(&path, opts);
        if passing_only {
            req = req.query(&[("passing", "true")]);
        }
        let resp = self.send("GET", &path, req).await?;
        let meta = QueryMeta::from_headers(resp.headers());
        Ok((self.decode(&path, resp).await?, meta))
    }

    /// Every service name in the catalog with the union of its tags.
    pub async fn catalog_services(
        &self,
        opts: &QueryOptions,
    ) -> Result<(BTreeMap<String, Vec<String>>, QueryMeta)> {
        self.query("/v1/catalog/services", opts).await
    }
}
