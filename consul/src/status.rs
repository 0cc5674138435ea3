//! Cluster status: is there a leader.

use crate::client::Client;
use crate::error::Result;

impl Client {
    /// The leader's address, or `None` while the cluster has none (an election, a lone server
    /// that lost quorum).
    pub async fn leader(&self) -> Result<Option<String>> {
        let leader: String = self.get_json("/v1/status/leader").await?;
        Ok(Some(leader).filter(|l| !l.is_empty()))
    }
}
