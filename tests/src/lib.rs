//! The end-to-end harness: our images built from the binaries this `cargo test` just built,
//! a compose stack from `compose/` under a project name and ports of its own, and the ways a
//! user reaches it (nginx's published port, Consul's HTTP API, the templater CLI in the edge
//! container or on the host). Everything a stack starts is removed when it drops.
//!
//! # Layout
//! - [`images`]: `compose/images/build` once per test process.
//! - [`compose`]: the two compose tools, a compose project, the demo stack.
//! - [`swarm`]: the multi-host layout (compose/swarm) on loopback addresses of this machine.
//! - [`expect`]: what the suites wait for and assert.
//! - [`dashboard`]: the edge dashboard in a real browser.

pub mod compose;
pub mod dashboard;
pub mod expect;
pub mod images;
pub mod swarm;

pub use compose::{ComposeTool, Project, Stack};
