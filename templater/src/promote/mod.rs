//! `templater promote SERVICE [COLOR]`: moves traffic to COLOR in steps, judging each step on
//! the traffic every edge counted for it, and rolls back by itself.
//!
//! - [`args`]: the flags, checked.
//! - [`record`]: the promotion record in KV (what `status` shows, what `rollback` ends).
//! - [`window`]: a step's window summed over the edges' traffic records.
//! - [`judge`]: the judging maths (limits, baseline, too few requests).
//! - [`check`]: the `--check` acceptance command.
//! - [`progress`]: the lines and JSON events it prints.
//! - [`signals`]: SIGINT/SIGTERM roll back.
//! - [`run`]: the walk.

pub mod args;
pub mod check;
pub mod judge;
pub mod progress;
pub mod record;
pub mod run;
pub mod signals;
pub mod window;

pub use args::PromoteArgs;
pub use run::promote;
