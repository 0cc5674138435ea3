//! The templater binary: `run` (the daemon) and the deploy commands; maps errors to the exit
//! codes documented in `--help`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use swarmgate_consul::Client;
use templater::config::{run_config, Cli, Command};
use templater::deploy::{Deploy, DeployError};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
    swarmgate_runtime::telemetry::init(cli.common.log_format);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(1, &format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Run(ref r) => run(&cli, r).await,
            _ => deploy(cli).await,
        }
    })
}

fn fail(code: u8, msg: &str) -> ExitCode {
    eprintln!("templater: {msg}");
    ExitCode::from(code)
}

async fn run(cli: &Cli, r: &templater::config::RunArgs) -> ExitCode {
    let config = match run_config(&cli.common, r) {
        Ok(c) => c,
        Err(e) => return fail(2, &e),
    };
    let token = CancellationToken::new();
    if let Err(e) = swarmgate_runtime::shutdown::cancel_on_signal(token.clone()) {
        return fail(1, &format!("cannot install signal handlers: {e}"));
    }
    match templater::daemon::run(config, token).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = match e {
                templater::daemon::RunError::Template(_) => 2,
                _ => 1,
            };
            fail(code, &format!("{:#}", anyhow::Error::from(e)))
        }
    }
}

async fn deploy(cli: Cli) -> ExitCode {
    let setup = || -> Result<(Deploy, templater::context::ContextOptions), String> {
        let client = Client::new(&cli.common.consul_config()?).map_err(|e| e.to_string())?;
        let colors = cli.common.checked_colors()?;
        let opts = cli.common.context_options(None)?;
        Ok((
            Deploy {
                client,
                prefix: cli.common.kv_prefix.trim_matches('/').to_string(),
                colors,
            },
            opts,
        ))
    };
    let (d, opts) = match setup() {
        Ok(s) => s,
        Err(e) => return fail(2, &e),
    };
    let result = async {
        let (outcome, wait) = match &cli.command {
            Command::Flip {
                service,
                color,
                force,
                wait_live,
            } => (
                d.flip(service, color.as_deref(), *force).await?,
                wait_live.map(|w| (service, w)),
            ),
            Command::Canary {
                service,
                percent,
                wait_live,
            } => (
                d.canary(service, percent).await?,
                wait_live.map(|w| (service, w)),
            ),
            Command::Rollback {
                service,
                force,
                wait_live,
            } => (
                d.rollback(service, *force).await?,
                wait_live.map(|w| (service, w)),
            ),
            Command::Status { service, json } => {
                let report =
                    templater::status::gather(&d.client, &d.prefix, &opts, service.as_deref())
                        .await?;
                let text = if *json {
                    serde_json::to_string_pretty(&report).expect("report serialises")
                } else {
                    templater::status::to_text(&report)
                };
                return Ok::<_, DeployError>(text);
            }
            Command::Run(_) => unreachable!("handled by run"),
        };
        let (index, mut message) = outcome;
        if let Some((service, secs)) = wait {
            let live = d
                .wait_live(service, index, Duration::from_secs(secs))
                .await?;
            message = format!("{message}; {live}");
        }
        Ok(message)
    }
    .await;
    match result {
        Ok(text) => {
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.exit_code(), &format!("{:#}", anyhow::Error::from(e))),
    }
}
