//! The command handlers: `run` and each deploy command in its own module, sharing the set-up
//! of a deploy client, the history entry of each settings change, the printing of results (a
//! closed stdout ends quietly), and the mapping of errors to the exit codes documented in `--help`.

mod canary;
mod flip;
mod history;
mod rollback;
mod run;
mod status;

use std::io::Write as _;
use std::time::Duration;

use swarmgate_consul::Client;
use swarmgate_runtime::exit;

use crate::config::{By, Cli, Command, Common};
use crate::deploy::{Change, Deploy, DeployError};
use crate::history::Entry;

/// Runs the command; answers the process's exit code.
pub fn main(cli: Cli) -> u8 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(exit::FAILURE, &format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async move {
        match &cli.command {
            Command::Run(r) => run::run(&cli.common, r).await,
            command => deploy(&cli.common, command).await,
        }
    })
}

/// Prints `msg` on stderr as the templater's error; answers `code`.
fn fail(code: u8, msg: &str) -> u8 {
    eprintln!("templater: {msg}");
    code
}

/// Prints `text` on stdout; a reader that went away (`| head -1`) is not an error.
fn print(text: &str) -> u8 {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{}", text.trim_end()).and_then(|()| out.flush()) {
        Ok(()) => exit::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::SUCCESS,
        Err(e) => fail(exit::FAILURE, &format!("writing to stdout: {e}")),
    }
}

fn deploy_client(common: &Common) -> Result<Deploy, String> {
    let client = Client::new(&common.consul_config()?).map_err(|e| e.to_string())?;
    Ok(Deploy {
        client,
        keys: common.keys()?,
        colors: common.checked_colors()?,
    })
}

async fn deploy(common: &Common, command: &Command) -> u8 {
    let d = match deploy_client(common) {
        Ok(d) => d,
        Err(e) => return fail(exit::USAGE, &e),
    };
    let result = match command {
        Command::Flip(a) => flip::run(&d, a).await,
        Command::Canary(a) => canary::run(&d, a).await,
        Command::Rollback(a) => rollback::run(&d, a).await,
        Command::Status(a) => status::run(&d, a).await,
        Command::Promote(a) => crate::promote::promote(&d, a).await,
        Command::History(a) => history::run(&d, a).await,
        Command::Run(_) => unreachable!("dispatched in main"),
    };
    match result {
        Ok(text) => print(&text),
        Err(e) => fail(e.exit_code(), &format!("{:#}", anyhow::Error::from(e))),
    }
}

/// Records a settings change that was made in the service's history (a failure only warns),
/// then answers its message, waiting for it to be live when asked.
async fn recorded_then_wait(
    d: &Deploy,
    service: &str,
    action: &str,
    change: Change,
    by: &By,
    wait_live: Option<u64>,
) -> Result<String, DeployError> {
    let entry = Entry::now(
        action,
        change.from.as_deref(),
        change.to.as_deref(),
        change.detail,
        &by.resolve(),
    );
    crate::history::record(&d.client, &d.keys, service, entry).await;
    match wait_live {
        Some(secs) => {
            let live = d
                .wait_live(service, change.index, Duration::from_secs(secs))
                .await?;
            Ok(format!("{}; {live}", change.message))
        }
        None => Ok(change.message),
    }
}
