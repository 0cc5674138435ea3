//! templater: keeps nginx's upstreams equal to what Consul says is healthy, with blue/green and
//! canary weights from Consul KV; and the deploy CLI that moves traffic between colours.
//!
//! # Layout
//! - [`model`]: the catalog view (services, instances, health), validated on one path.
//! - [`keys`]: every KV key the templater reads or writes.
//! - [`settings`]: deploy settings in KV (active colour, canary, previous).
//! - [`weights`]: exact traffic shares as integer nginx weights.
//! - [`pin`]: requests pinned to one colour (the preview header, the canary cookie).
//! - [`plan`]: the one decision of what serves: per service, servers, weights, shares, vhost.
//! - [`render`]: minijinja with nginx-safe printing; templates print the plan.
//! - [`install`]: installing rendered files all or none, and crash recovery.
//! - [`nginx`]: `nginx -t` and reloads nginx has taken.
//! - [`isolate`]: finding the services whose new config nginx refuses.
//! - [`dataplane`]: the data planes the daemon drives (`--dataplane reload|lua`).
//! - [`reload_plane`]: the reload data plane (render, install, check, SIGHUP).
//! - [`state_doc`]: the Lua data plane's state document, printed from the plan.
//! - [`control`]: nginx's control endpoint (`PUT`/`GET /state`) and where it listens.
//! - [`lua_plane`]: the Lua data plane (structure through the reload path, state pushed).
//! - [`traffic`]: per service and colour traffic figures (totals, the last minute), either plane.
//! - [`traffic_syslog`]: the same figures from plain nginx's traffic log (reload data plane).
//! - [`guard`]: holding the last view through leaderless, empty or reset answers.
//! - [`quiesce`]: coalescing bursts of changes (`--wait MIN:MAX`).
//! - [`watch`]: Consul watches (catalog view, deploy settings) with constant connections.
//! - [`rerender`]: SIGHUP and template-file edits.
//! - [`records`]: what an edge publishes (status, installed plans) and reading it back.
//! - [`publish`]: writing this edge's records when they change.
//! - [`daemon`]: `templater run`, the render loop.
//! - [`deploy`]: `flip`, `canary`, `rollback` and `--wait-live`.
//! - [`promote`]: `templater promote`, a canary walked up in judged steps.
//! - [`traffic_publish`]: this edge's traffic in KV while a service is promoted.
//! - [`status`]: `templater status`.
//! - [`history`]: the bounded deploy history in KV and `--by`.
//! - [`config`]: flags, environment and the checked configuration.
//! - [`cli`]: the command handlers and exit codes.
//! - [`metrics`]: `/metrics` and `/health`.
//! - [`live`]: the snapshot of what this edge has live, for the dashboard.
//! - [`dashboard`]: the read-only page and `/api/state`.

pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dashboard;
pub mod dataplane;
pub mod deploy;
pub mod guard;
pub mod history;
pub mod install;
pub mod isolate;
pub mod keys;
pub mod live;
pub mod lua_plane;
pub mod metrics;
pub mod model;
pub mod nginx;
pub mod pin;
pub mod plan;
pub mod promote;
pub mod publish;
pub mod quiesce;
pub mod records;
pub mod reload_plane;
pub mod render;
pub mod rerender;
pub mod settings;
pub mod state_doc;
pub mod status;
pub mod traffic;
pub mod traffic_publish;
pub mod traffic_syslog;
pub mod watch;
pub mod weights;
