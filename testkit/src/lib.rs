//! Helpers for the integration and end-to-end suites. Everything here talks to real parts:
//! a real `consul agent -dev`, the real Docker engine (through its CLI), real nginx.
//!
//! # Layout
//! - [`ports`]: free loopback ports.
//! - [`eventually`]: bounded waiting, never a bare sleep.
//! - [`browser`]: a headless Chromium driven over DevTools.
//! - [`consul`]: a throw-away Consul agent on free ports, with stop/start/wipe.
//! - [`consul_proxy`]: an HTTP proxy in front of Consul that runs a hook before a request.
//! - [`docker`]: the test image and containers that remove themselves.
//! - [`lifecycle`]: apps that drain on SIGTERM, background stops, "still running?".
//! - [`fake_docker`]: a fake Docker daemon whose event stream sends junk.
//! - [`proxy`]: a Docker socket proxy a test can cut.
//! - [`process`]: a daemon under test, its log, and its clean stop.
//! - [`daemons`]: the registrator and the templater as every suite starts them.
//! - [`nginx`]: a real nginx on a free port, and busybox httpd backends.
//! - [`lua_nginx`]: nginx with the Lua modules for the Lua data plane, and its control client.
//! - [`id_backend`]: in-process backends answering their id (keep-alive, upgrades).
//! - [`metrics`]: samples from a Prometheus exposition.
//! - [`http`]: requests through nginx on new connections, tallies, load with failure counts.
//! - [`report`]: the fault suite's rows (scenario, checked, result, figure).

pub mod browser;
pub mod consul;
pub mod consul_proxy;
pub mod daemons;
pub mod docker;
pub mod eventually;
pub mod fake_docker;
pub mod http;
pub mod id_backend;
pub mod lifecycle;
pub mod lua_nginx;
pub mod metrics;
pub mod nginx;
pub mod ports;
pub mod process;
pub mod proxy;
pub mod report;

pub use consul::ConsulAgent;
pub use docker::{serve_until_cue, unique, Container, TestImage};
pub use eventually::eventually;
pub use id_backend::IdBackend;
pub use lua_nginx::LuaNginx;
pub use nginx::{Backend, NginxServer};
pub use ports::free_port;
pub use process::Process;

/// The workspace root (where `.ci/bin` lives).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit sits in the workspace")
        .to_path_buf()
}

/// A binary from `.ci/bin` (installed by `.ci/install`), else from PATH.
pub fn tool(name: &str) -> std::path::PathBuf {
    let local = workspace_root().join(".ci/bin").join(name);
    if local.exists() {
        local
    } else {
        std::path::PathBuf::from(name)
    }
}
