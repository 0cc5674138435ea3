//! Talking to nginx itself: `nginx -t` (bounded in time, and killed with the daemon), and a
//! reload that is only reported done once nginx has taken it — SIGHUP to a master verified to
//! be nginx, then every worker running is one started after the signal.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Longest a check may run before it is killed and counted as failed.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long nginx gets to replace its workers after a SIGHUP.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// What went wrong asking nginx.
#[derive(Debug, thiserror::Error)]
pub enum NginxError {
    #[error("nginx check `{command}` failed: {output}")]
    CheckFailed { command: String, output: String },
    #[error("reloading nginx: {0}")]
    Reload(String),
}

/// How to check and reload nginx.
#[derive(Clone, Debug)]
pub struct Nginx {
    /// Shell command that validates the config (`nginx -t -q`); `None` skips the check.
    pub check: Option<String>,
    pub check_timeout: Duration,
    /// nginx's pid file; `None` means no reload is sent.
    pub pid_file: Option<PathBuf>,
}

impl Nginx {
    /// Runs the check; `Ok` when it passes or there is none.
    pub async fn check(&self) -> Result<(), NginxError> {
        let Some(cmd) = self.check.as_deref().filter(|c| !c.trim().is_empty()) else {
            return Ok(());
        };
        let failed = |output: String| NginxError::CheckFailed {
            command: cmd.into(),
            output,
        };
        let mut command = check_command(cmd);
        command
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null());
        swarmgate_runtime::child::die_with_parent(&mut command);
        let out = match tokio::time::timeout(self.check_timeout, command.output()).await {
            Err(_) => {
                return Err(failed(format!(
                    "timed out after {:?}; killed",
                    self.check_timeout
                )))
            }
            Ok(Err(e)) => return Err(failed(e.to_string())),
            Ok(Ok(out)) => out,
        };
        if out.status.success() {
            return Ok(());
        }
        let mut output = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if output.is_empty() {
            output = format!("exit status {}", out.status);
        }
        Err(failed(output))
    }

    /// Sends SIGHUP to nginx's master and waits until every worker running is one started
    /// with the new config. Answers false when no pid file is configured; an error when nginx
    /// did not take the config (it may have refused it, or not be running).
    pub async fn reload(&self) -> Result<bool, NginxError> {
        let Some(pid_file) = &self.pid_file else {
            return Ok(false);
        };
        let pid = master_pid(pid_file).map_err(NginxError::Reload)?;
        let before = workers(pid);
        kill(Pid::from_raw(pid), Signal::SIGHUP).map_err(|e| {
            NginxError::Reload(format!(
                "SIGHUP to pid {pid} from {}: {e}",
                pid_file.display()
            ))
        })?;
        let Some(before) = before else {
            // No view of the workers (no /proc children here): the signal is all we can do.
            return Ok(true);
        };
        let deadline = Instant::now() + RELOAD_TIMEOUT;
        while Instant::now() < deadline {
            // Live means no old worker remains: nginx starts the new workers before it tells
            // the old ones to stop accepting, so a new worker alone is not enough.
            if let Some(now) = workers(pid) {
                if !now.is_empty() && now.iter().all(|c| !before.contains(c)) {
                    return Ok(true);
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Err(NginxError::Reload(format!(
            "nginx (pid {pid}) still runs workers from before the reload after {RELOAD_TIMEOUT:?}; its error log says why"
        )))
    }
}

/// The check as a process: run directly when it is plain words (a shell costs ~2 ms on every
/// install), through `sh -c` when it uses shell syntax.
fn check_command(cmd: &str) -> tokio::process::Command {
    let shell_syntax = cmd.chars().any(|c| "|&;<>()$`\\\"'*?[]#~=%{}".contains(c));
    let mut words = cmd.split_whitespace();
    match (shell_syntax, words.next()) {
        (false, Some(program)) => {
            let mut c = tokio::process::Command::new(program);
            c.args(words);
            c
        }
        _ => {
            let mut c = tokio::process::Command::new("sh");
            c.args(["-c", cmd]);
            c
        }
    }
}

/// The pid in `path`, when it names a running nginx master: a pid file holding `-1` or `0`
/// (which would signal every process) or the pid of any other program is never signalled.
/// Pid 1 is signalled only when it is nginx: the master of an nginx container whose pid
/// namespace the templater shares (the compose edge).
pub fn master_pid(path: &Path) -> Result<i32, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("pid file {}: {e}", path.display()))?;
    let pid: i32 = text.trim().parse().map_err(|_| {
        format!(
            "pid file {} holds {:?}, not a pid",
            path.display(),
            text.trim()
        )
    })?;
    if pid <= 0 {
        return Err(format!(
            "pid file {} holds {pid}; refusing to signal it",
            path.display()
        ));
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() != "nginx" {
        return Err(format!(
            "pid {pid} from {} is not nginx ({:?}); refusing to signal it",
            path.display(),
            comm.trim()
        ));
    }
    Ok(pid)
}

/// nginx's worker pids (children of the master), from /proc; `None` when unreadable.
pub fn workers(pid: i32) -> Option<Vec<u32>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    Some(
        text.split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid_file(text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "sg-pid-{}-{}",
            std::process::id(),
            text.replace(['/', ' '], "_")
        ));
        std::fs::write(&p, text).expect("pid file");
        p
    }

    #[test]
    fn only_a_verified_nginx_master_is_signalled() {
        for bad in ["-1", "0", "1", "abc", &std::process::id().to_string()] {
            assert!(master_pid(&pid_file(bad)).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_check_that_hangs_is_killed_and_fails() {
        let n = Nginx {
            check: Some("sleep 30".into()),
            check_timeout: Duration::from_millis(200),
            pid_file: None,
        };
        let started = Instant::now();
        let err = n.check().await.expect_err("times out");
        assert!(err.to_string().contains("timed out"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_failing_check_says_what_it_printed() {
        let n = Nginx {
            check: Some("echo 'bad directive' >&2; exit 1".into()),
            check_timeout: DEFAULT_CHECK_TIMEOUT,
            pid_file: None,
        };
        let err = n.check().await.expect_err("fails");
        assert!(err.to_string().contains("bad directive"), "{err}");
    }
}
