//! Catalog-wide reads the templater builds its view from: nodes, a node's services, and every
//! check's state. These stay a handful of requests however many services there are.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::agent::AgentService;
use crate::blocking::{QueryMeta, QueryOptions};
use crate::client::{encode_segment, Client};
use crate::error::Result;

/// A node as `/v1/catalog/nodes` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CatalogNode {
    pub node: String,
    pub address: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeServices {
    services: Option<BTreeMap<String, AgentService>>,
}

/// A check's state, as `/v1/health/state/any` and `/v1/health/service/:name` list it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckState {
    #[serde(default)]
    pub node: String,
    #[serde(rename = "CheckID")]
    pub check_id: String,
    pub status: String,
    #[serde(rename = "ServiceID", default)]
    pub service_id: String,
    #[serde(default)]
    pub service_name: String,
    #[serde(default)]
    pub output: String,
}

impl Client {
    /// Every node of the datacenter.
    pub async fn catalog_nodes(
        &self,
        opts: &QueryOptions,
    ) -> Result<(Vec<CatalogNode>, QueryMeta)> {
        self.query("/v1/catalog/nodes", opts).await
    }

    /// The services registered on `node` (empty when the node is gone).
    pub async fn catalog_node_services(
        &self,
        node: &str,
        opts: &QueryOptions,
    ) -> Result<(BTreeMap<String, AgentService>, QueryMeta)> {
        let path = format!("/v1/catalog/node/{}", encode_segment(node, false));
        let (found, meta): (Option<NodeServices>, _) = self.query(&path, opts).await?;
        Ok((found.and_then(|n| n.services).unwrap_or_default(), meta))
    }

    /// Every check in the datacenter with its status (node checks have an empty service id).
    pub async fn health_state_any(
        &self,
        opts: &QueryOptions,
    ) -> Result<(Vec<CheckState>, QueryMeta)> {
        self.query("/v1/health/state/any", opts).await
    }
}
