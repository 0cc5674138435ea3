//! What both swarmgate daemons share besides the Consul client.
//!
//! # Layout
//! - [`telemetry`]: tracing set-up, plain or JSON, filtered by `RUST_LOG`.
//! - [`shutdown`]: SIGINT/SIGTERM cancel a token; a second signal exits at once.
//! - [`retry`]: the one backoff policy (capped, jittered, exponential) every retry loop uses.
//! - [`http`]: the bounded HTTP server (axum on hyper) with `/metrics` and `/health`.
//! - [`metrics`]: declaring families on prometheus-client, and encoding them as asked.
//! - [`process`]: the process's own figures (memory, CPU, descriptors, start time).
//! - [`memory`]: returning freed heap to the system after a burst.
//! - [`child`]: child processes that die with the daemon.
//! - [`deadline`]: `select!` arms for optional deadlines and intervals.
//! - [`host`]: this host's name.
//! - [`exit`]: the exit codes both binaries share.

pub mod child;
pub mod deadline;
pub mod exit;
pub mod host;
pub mod http;
pub mod memory;
pub mod metrics;
pub mod process;
pub mod retry;
pub mod shutdown;
pub mod telemetry;
