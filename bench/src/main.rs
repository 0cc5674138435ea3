//! `swarmgate-bench`: runs the benchmarks against real parts and prints one Markdown table (after
//! a line naming the date and the machine), each figure with its median, p90, target and the
//! floor measured in the same run.
//!
//! Build first: `cargo build --release --workspace`; then `target/release/swarmgate-bench`.

mod machine;
mod observe;
mod process;
mod registrator;
mod stats;
mod templater;
mod templater_lua;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "swarmgate benchmarks (real Docker, Consul, nginx); figures, not pass/fail")]
struct Args {
    #[command(subcommand)]
    which: Option<Which>,
    /// Samples per latency figure.
    #[arg(long, default_value_t = 30)]
    iterations: usize,
    /// Services (×4 instances) for the templater's large-catalog figures.
    #[arg(long, default_value_t = 500)]
    services: usize,
    /// Container counts for the start-up sync figure.
    #[arg(long, value_delimiter = ',', default_value = "50,1000")]
    sync_sizes: Vec<usize>,
}

#[derive(Subcommand, Clone, Copy)]
enum Which {
    /// Both daemons' figures, in one table.
    All,
    /// The registrator's figures.
    Registrator,
    /// The templater's figures.
    Templater,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!("{}", machine::describe());
    let which = args.which.unwrap_or(Which::All);
    let mut groups = Vec::new();
    if matches!(which, Which::All | Which::Registrator) {
        groups.push((
            "registrator",
            registrator::run(args.iterations, &args.sync_sizes).await?,
        ));
    }
    if matches!(which, Which::All | Which::Templater) {
        groups.push((
            "templater",
            templater::run(args.iterations, args.services).await?,
        ));
        groups.push((
            "templater, Lua data plane",
            templater_lua::run(args.iterations, templater::edge).await?,
        ));
    }
    stats::print_table(&groups);
    Ok(())
}
