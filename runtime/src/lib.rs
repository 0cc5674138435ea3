//! What both swarmgate daemons share besides the Consul client.
//!
//! # Layout
//! - [`telemetry`]: tracing set-up, plain or JSON, filtered by `RUST_LOG`.
//! - [`shutdown`]: SIGINT/SIGTERM cancel a token; a second signal exits at once.
//! - [`retry`]: the one backoff policy (capped, jittered, exponential) every retry loop uses.
//! - [`http`]: a tiny HTTP endpoint serving `/metrics` and `/health`.
//! - [`metrics`]: counters and gauges rendered in Prometheus text format.
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
pub mod retry;
pub mod shutdown;
pub mod telemetry;
