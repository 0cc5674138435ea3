//! The one Consul HTTP client of swarmgate: both the registrator and the templater talk to Consul
//! through this crate and nothing else.
//!
//! # Layout
//! - [`config`]: where Consul is (URI spellings, unix sockets), token, TLS files, limits.
//! - [`cli`]: the Consul flags and environment variables both binaries flatten.
//! - [`rules`]: what names, ids and text values may be.
//! - [`duration`]: Go-style durations.
//! - [`check`]: check statuses and their ranking.
//! - [`client`]: the pooled HTTP transport and request helpers.
//! - [`blocking`]: blocking-query options, index headers and Consul's index rules.
//! - [`agent`]: service registration, deregistration, maintenance, TTL checks.
//! - [`kv`]: KV reads, writes, check-and-set and deletes.
//! - [`health`]: service instances with their health, and the catalog's service list.
//! - [`catalog`]: nodes, a node's services, every check's state.
//! - [`txn`]: atomic KV transactions with check-and-set and locks.
//! - [`session`]: leases that hold KV locks while renewed.
//! - [`status`]: leader discovery.
//! - [`watch`]: the blocking-query loop (index rules, jitter, backoff).
//! - [`error`]: the error type and which errors are retryable.

pub mod agent;
pub mod blocking;
pub mod catalog;
pub mod check;
pub mod cli;
pub mod client;
pub mod config;
pub mod duration;
pub mod error;
pub mod health;
pub mod kv;
pub mod rules;
pub mod session;
pub mod status;
pub mod txn;
pub mod watch;

pub use agent::{AgentService, CheckDefinition, ServiceRegistration};
pub use blocking::{QueryMeta, QueryOptions};
pub use check::CheckStatus;
pub use cli::ConsulArgs;
pub use client::Client;
pub use config::{parse_address, Address, ConsulConfig, DEFAULT_CONSUL_ADDR};
pub use error::{Error, Result};
pub use health::ServiceEntry;
pub use kv::KvPair;
pub use txn::{KvOp, MAX_TXN_OPS};
