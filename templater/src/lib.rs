//! templater: keeps nginx's upstreams equal to what Consul says is healthy, with blue/green and
//! canary weights from Consul KV; and the deploy CLI that moves traffic between colours.
//!
//! # Layout
//! - [`model`]: the catalog view (services, instances, health), validated for nginx.
//! - [`settings`]: deploy settings in KV (active colour, canary, previous).
//! - [`weights`]: exact traffic shares as integer nginx weights.
//! - [`context`]: what templates see.
//! - [`render`]: minijinja with nginx-safe printing.
//! - [`guard`]: holding the last view through leaderless, empty or reset answers.
//! - [`nginx`]: safe installs (journal, atomic rename, check, restore) and reloads.
//! - [`quiesce`]: coalescing bursts of changes (`--wait MIN:MAX`).
//! - [`watch`]: Consul watches (catalog view, deploy settings) with constant connections.
//! - [`reload`]: SIGHUP and template-file edits.
//! - [`report`]: status record and install acknowledgements in KV.
//! - [`daemon`]: `templater run`, the render loop.
//! - [`deploy`]: `flip`, `canary`, `rollback` and `--wait-live`.
//! - [`status`]: `templater status`.
//! - [`config`]: flags, environment and the checked configuration.
//! - [`metrics`]: `/metrics` and `/health`.

pub mod config;
pub mod context;
pub mod daemon;
pub mod deploy;
pub mod guard;
pub mod metrics;
pub mod model;
pub mod nginx;
pub mod quiesce;
pub mod reload;
pub mod render;
pub mod report;
pub mod settings;
pub mod status;
pub mod watch;
pub mod weights;
