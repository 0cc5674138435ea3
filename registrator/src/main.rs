//! The registrator binary: parses flags, sets up logs and signals, runs, maps errors to exit codes.

use std::process::ExitCode;

use registrator::config::{Args, Config};
use registrator::RunError;
use swarmgate_runtime::exit;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args = Args::parse_compat();
    swarmgate_runtime::telemetry::init(args.log_format);
    let config = match Config::try_from(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("registrator: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("registrator: cannot start the runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    runtime.block_on(async {
        let token = CancellationToken::new();
        if let Err(e) = swarmgate_runtime::shutdown::cancel_on_signal(token.clone()) {
            eprintln!("registrator: cannot install signal handlers: {e}");
            return ExitCode::from(exit::FAILURE);
        }
        match registrator::run(config, token).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let code = exit_code(&e);
                eprintln!("registrator: {:#}", anyhow::Error::from(e));
                ExitCode::from(code)
            }
        }
    })
}

fn exit_code(e: &RunError) -> u8 {
    match e {
        RunError::NoLeader { .. } => exit::UNAVAILABLE,
        RunError::Consul(swarmgate_consul::Error::Config(_)) => exit::USAGE,
        _ => exit::FAILURE,
    }
}
