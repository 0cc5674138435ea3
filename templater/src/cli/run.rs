//! `templater run`: the daemon, until SIGINT/SIGTERM (or one pass with `--once`).

use swarmgate_runtime::exit;
use tokio_util::sync::CancellationToken;

use crate::config::{run_config, Common, RunArgs};
use crate::daemon::RunError;

pub async fn run(common: &Common, r: &RunArgs) -> u8 {
    let config = match run_config(common, r) {
        Ok(c) => c,
        Err(e) => return super::fail(exit::USAGE, &e),
    };
    let token = CancellationToken::new();
    if let Err(e) = swarmgate_runtime::shutdown::cancel_on_signal(token.clone()) {
        return super::fail(
            exit::FAILURE,
            &format!("cannot install signal handlers: {e}"),
        );
    }
    match crate::daemon::run(config, token).await {
        Ok(()) => exit::SUCCESS,
        Err(e) => {
            let code = match &e {
                RunError::Template(_) => 2,
                RunError::Consul(swarmgate_consul::Error::Config(_)) => exit::USAGE,
                _ => exit::FAILURE,
            };
            super::fail(code, &format!("{:#}", anyhow::Error::from(e)))
        }
    }
}
