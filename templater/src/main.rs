//! The templater binary: parses the command line (bad flags exit 64) and hands over to
//! [`templater::cli`].

use std::process::ExitCode;

use clap::Parser;
use templater::config::Cli;

fn main() -> ExitCode {
    let cli = Cli::try_parse().unwrap_or_else(|e| swarmgate_runtime::exit::clap_exit(e));
    swarmgate_runtime::telemetry::init(cli.common.log_format);
    ExitCode::from(templater::cli::main(cli))
}
