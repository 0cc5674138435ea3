//! The exit codes both binaries share (BSD `sysexits` where one fits), documented in each
//! binary's `--help` and in README. Command-specific codes (the deploy CLI's) live with it.

/// Stopped by a signal after draining, or the command succeeded.
pub const SUCCESS: u8 = 0;
/// A fatal runtime error (logged).
pub const FAILURE: u8 = 1;
/// Bad flags or environment: the command line or configuration cannot be used (`EX_USAGE`).
pub const USAGE: u8 = 64;
/// A service we depend on is not available (`EX_UNAVAILABLE`): no Consul leader in time.
pub const UNAVAILABLE: u8 = 69;
/// A second signal cut the drain short (128 + SIGINT).
pub const FORCED: u8 = 130;

/// Ends a clap parse the way both binaries document: `--help` and `--version` print and exit 0,
/// anything else (a missing subcommand too) prints clap's message and exits [`USAGE`].
pub fn clap_exit(error: clap::Error) -> ! {
    let code = match error.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => SUCCESS,
        _ => USAGE,
    };
    let _ = error.print();
    std::process::exit(i32::from(code));
}
