//! `templater promote SERVICE [COLOR]`: moves traffic to COLOR in steps, judging each step on
//! the traffic every edge counted for it, and rolls back by itself.
//!
//! - [`args`]: the flags, checked.
//! - [`record`]: the promotion record in KV (what `status` shows, what `rollback` ends).
//! - [`window`]: a step's window summed over the edges' traffic records.
//! - [`judge`]: the judging maths (limits, baseline, too few requests).
//! - [`commands`]: what `flip`, `canary` and `rollback` do about a promotion.
//! - [`check`]: the `--check` acceptance command.
//! - [`progress`]: the lines and JSON events it prints.
//! - [`signals`]: SIGINT/SIGTERM roll back.
//! - [`run`]: the walk: lock, check, steps, end.
//! - [`step`]: one step: set, wait for the edges, judge its window.
//! - [`end`]: promoted, or rolled back.

pub mod args;
pub mod check;
mod commands;
mod end;
pub mod judge;
pub mod progress;
pub mod record;
pub mod run;
pub mod signals;
mod step;
pub mod window;

pub use args::PromoteArgs;
pub use run::promote;
