//! The end-to-end harness: our images built from the binaries this `cargo test` just built,
//! a compose stack from `compose/` under a project name and ports of its own, and the ways a
//! user reaches it (nginx's published port, Consul's HTTP API, the templater CLI in the edge
//! container or on the host). Everything a stack starts is removed when it drops.
//!
//! # Layout
//! - [`images`]: `compose/images/build` once per test process.
//! - [`compose`]: the two compose tools and a running stack.

pub mod compose;
pub mod images;

pub use compose::{ComposeTool, Stack};
