//! The registrator's `/api/state`: the containers it follows (with their phase, stopping ones
//! included), the services it wants and those Consul holds as far as it knows, its last full
//! sync and whether Docker and Consul answer. Asked of the registry task, the one owner of that
//! state, over a channel; answered from its own bookkeeping, never worked out again here.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

/// How long `/api/state` waits for the registry (busy with a listing, say) before it gives up.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// The `/api/state` document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub docker_up: bool,
    pub consul_up: bool,
    /// When a full comparison with what Consul holds last completed.
    pub last_sync_unix: Option<u64>,
    /// Services that should be in Consul.
    pub services_wanted: usize,
    /// Services the agent holds as far as the registrator knows.
    pub services_registered: usize,
    /// Services not converged yet (registrations and KV records).
    pub pending: usize,
    pub skipped_total: u64,
    /// Containers asked to stop that still run out their grace period: out of rotation.
    pub stopping: Vec<ContainerReport>,
    /// Every container followed, by name.
    pub containers: Vec<ContainerReport>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ContainerReport {
    pub id: String,
    pub name: String,
    /// `running`, `paused`, `stopping` or `exited`.
    pub phase: &'static str,
    pub services: Vec<String>,
}

/// A request for the report, answered by the registry task.
pub type Ask = oneshot::Sender<Report>;

/// `/api/state`, asking over `asks`.
pub fn routes(asks: mpsc::Sender<Ask>) -> Router {
    Router::new()
        .route("/api/state", get(api_state))
        .with_state(asks)
}

async fn api_state(State(asks): State<mpsc::Sender<Ask>>) -> Response {
    let (tx, rx) = oneshot::channel();
    let answer = async {
        asks.send(tx).await.ok()?;
        rx.await.ok()
    };
    match tokio::time::timeout(ANSWER_WITHIN, answer).await {
        Ok(Some(report)) => ([(header::CACHE_CONTROL, "no-store")], Json(report)).into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the registry did not answer in time\n",
        )
            .into_response(),
    }
}
