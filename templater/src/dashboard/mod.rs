//! The edge dashboard, served by `templater run` on the metrics listener: a read-only page at
//! `/` (server-rendered, live through `/fragment`), its data as JSON at `/api/state`, and the
//! page's two static assets, embedded in the binary. It shows this edge's live view only.
//!
//! - [`state`]: the `/api/state` document, from the live view.
//! - [`page`]: the HTML (the one renderer and escaper).

pub mod page;
pub mod state;

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::watch;

use crate::live::LiveView;
use crate::records::unix_now;
use crate::traffic::Traffic;

const SCRIPT: &str = include_str!("assets/dashboard.js");
const STYLE: &str = include_str!("assets/dashboard.css");
/// Scripts and styles from this origin only: a value that escaped escaping still could not run.
const POLICY: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                      img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Whether Consul answers now, as the daemon's watchers last found it.
pub type ConsulUp = Arc<dyn Fn() -> bool + Send + Sync>;

#[derive(Clone)]
struct Dashboard {
    live: watch::Receiver<Arc<LiveView>>,
    traffic: Arc<Traffic>,
    consul_up: ConsulUp,
}

impl Dashboard {
    fn state(&self) -> state::DashboardState {
        let view = self.live.borrow().clone();
        state::of(
            &view,
            &self.traffic.figures(),
            (self.consul_up)(),
            unix_now(),
        )
    }
}

/// The dashboard's routes.
pub fn routes(
    live: watch::Receiver<Arc<LiveView>>,
    traffic: Arc<Traffic>,
    consul_up: ConsulUp,
) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/fragment", get(fragment))
        .route("/api/state", get(api_state))
        .route("/assets/dashboard.js", get(script))
        .route("/assets/dashboard.css", get(style))
        .with_state(Dashboard {
            live,
            traffic,
            consul_up,
        })
}

fn html(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn index(State(d): State<Dashboard>) -> Response {
    html(page::page(&d.state()))
}

async fn fragment(State(d): State<Dashboard>) -> Response {
    html(page::fragment(&d.state()))
}

async fn api_state(State(d): State<Dashboard>) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(d.state())).into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        SCRIPT,
    )
        .into_response()
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        STYLE,
    )
        .into_response()
}

#[cfg(test)]
mod tests;
