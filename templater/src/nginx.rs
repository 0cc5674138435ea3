//! Installing rendered files safely and reloading nginx: skip unchanged bytes; write a temp
//! file in the destination's directory and fsync it; journal the previous file as a hard link
//! (no copy: after the rename it still names the old contents); rename; fsync the directory;
//! run the check; on failure rename every journal back and keep serving; on success SIGHUP
//! nginx once and wait for a new worker. A journal left by a crash is rolled back at start-up.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// What went wrong installing.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("nginx check `{command}` failed; previous files restored: {output}")]
    CheckFailed { command: String, output: String },
    #[error("reloading nginx: {0}")]
    Reload(String),
}

/// What an install did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Installed {
    pub changed: Vec<PathBuf>,
    pub reloaded: bool,
}

/// How to check and reload nginx.
#[derive(Clone, Debug)]
pub struct Nginx {
    /// Shell command that validates the config (`nginx -t -q`); `None` skips the check.
    pub check: Option<String>,
    /// nginx's pid file; `None` means no reload is sent.
    pub pid_file: Option<PathBuf>,
}

fn journal_of(dest: &Path) -> PathBuf {
    sibling(dest, "swarmgate-prev")
}

fn absent_marker_of(dest: &Path) -> PathBuf {
    sibling(dest, "swarmgate-absent")
}

/// `.<name>.<suffix>` beside `dest`: never matched by an `include *.conf`.
fn sibling(dest: &Path, suffix: &str) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.{suffix}"))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to a fsynced temp file beside `dest`, answering its path.
fn write_temp(dest: &Path, bytes: &[u8]) -> Result<PathBuf, InstallError> {
    let tmp = sibling(dest, "swarmgate-tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    Ok(tmp)
}

/// Makes renames and links in the directories of `paths` durable.
fn sync_dirs<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) {
    let dirs: std::collections::BTreeSet<&Path> =
        paths.into_iter().filter_map(|p| p.parent()).collect();
    for dir in dirs {
        if let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        }) {
            let _ = d.sync_all();
        }
    }
}

/// Rolls back installs that were not confirmed (a failed check, or a crash): each journal is
/// renamed back over its file; a file that did not exist before is removed.
pub fn recover(dests: &[PathBuf]) -> Vec<PathBuf> {
    let mut restored = Vec::new();
    for dest in dests {
        let journal = journal_of(dest);
        let absent = absent_marker_of(dest);
        if journal.exists() {
            if std::fs::rename(&journal, dest).is_ok() {
                restored.push(dest.clone());
            }
        } else if absent.exists() {
            let _ = std::fs::remove_file(dest);
            restored.push(dest.clone());
        }
        let _ = std::fs::remove_file(&absent);
    }
    sync_dirs(dests);
    restored
}

impl Nginx {
    /// Installs `files`; see the module doc for the steps.
    pub async fn install(&self, files: &[(PathBuf, Vec<u8>)]) -> Result<Installed, InstallError> {
        let mut changed = Vec::new();
        for (dest, bytes) in files {
            let old = std::fs::read(dest).ok();
            if old.as_deref() != Some(bytes.as_slice()) {
                changed.push((dest, bytes, old));
            }
        }
        if changed.is_empty() {
            return Ok(Installed::default());
        }
        for (dest, bytes, old) in &changed {
            let tmp = write_temp(dest, bytes)?;
            let journal = journal_of(dest);
            let _ = std::fs::remove_file(&journal);
            match old {
                Some(_) => std::fs::hard_link(dest, &journal).map_err(io(&journal))?,
                None => drop(std::fs::File::create(absent_marker_of(dest)).map_err(io(dest))?),
            }
            std::fs::rename(&tmp, dest).map_err(io(dest))?;
        }
        let dests: Vec<PathBuf> = changed.iter().map(|(d, _, _)| d.to_path_buf()).collect();
        sync_dirs(&dests);
        let written = Instant::now();
        if let Err(e) = self.run_check().await {
            recover(&dests);
            return Err(e);
        }
        for d in &dests {
            let _ = std::fs::remove_file(journal_of(d));
            let _ = std::fs::remove_file(absent_marker_of(d));
        }
        let checked = Instant::now();
        let reloaded = self.reload().await?;
        tracing::debug!(
            check_us = checked.duration_since(written).as_micros() as u64,
            reload_us = checked.elapsed().as_micros() as u64,
            "nginx check and reload"
        );
        Ok(Installed {
            changed: dests,
            reloaded,
        })
    }

    async fn run_check(&self) -> Result<(), InstallError> {
        let Some(cmd) = self.check.as_deref().filter(|c| !c.trim().is_empty()) else {
            return Ok(());
        };
        let out = check_command(cmd)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| InstallError::CheckFailed {
                command: cmd.into(),
                output: e.to_string(),
            })?;
        if out.status.success() {
            return Ok(());
        }
        let mut output = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if output.is_empty() {
            output = format!("exit status {}", out.status);
        }
        Err(InstallError::CheckFailed {
            command: cmd.into(),
            output,
        })
    }

    /// Sends SIGHUP to nginx's master and waits (up to 2 s) until every worker running is one
    /// started with the new config. Answers false when no pid file is configured.
    async fn reload(&self) -> Result<bool, InstallError> {
        let Some(pid_file) = &self.pid_file else {
            return Ok(false);
        };
        let pid = read_pid(pid_file).map_err(InstallError::Reload)?;
        let before = children(pid);
        kill(Pid::from_raw(pid), Signal::SIGHUP).map_err(|e| {
            InstallError::Reload(format!(
                "SIGHUP to pid {pid} from {}: {e}",
                pid_file.display()
            ))
        })?;
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let now = children(pid);
            // Live means no old worker remains: nginx starts the new workers before it tells
            // the old ones to stop accepting, so a new worker alone is not enough.
            if before.is_empty() || (!now.is_empty() && now.iter().all(|c| !before.contains(c))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(true)
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

fn read_pid(path: &Path) -> Result<i32, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("pid file {}: {e}", path.display()))?;
    text.trim().parse().map_err(|_| {
        format!(
            "pid file {} holds {:?}, not a pid",
            path.display(),
            text.trim()
        )
    })
}

/// nginx's worker pids (children of the master), from /proc; empty when unreadable.
fn children(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sg-nginx-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    #[tokio::test]
    async fn unchanged_bytes_are_not_rewritten_and_nothing_is_reloaded() {
        let d = dir("same");
        let f = d.join("a.conf");
        std::fs::write(&f, "x").expect("write");
        let n = Nginx {
            check: Some("false".into()),
            pid_file: None,
        };
        assert_eq!(
            n.install(&[(f.clone(), b"x".to_vec())])
                .await
                .expect("no-op"),
            Installed::default()
        );
    }

    #[tokio::test]
    async fn a_failing_check_restores_every_file_and_leaves_no_debris() {
        let d = dir("fail");
        let (a, b) = (d.join("a.conf"), d.join("b.conf"));
        std::fs::write(&a, "old").expect("write");
        let n = Nginx {
            check: Some("echo 'bad directive' >&2; exit 1".into()),
            pid_file: None,
        };
        let err = n
            .install(&[(a.clone(), b"new".to_vec()), (b.clone(), b"new".to_vec())])
            .await
            .expect_err("check fails");
        assert!(err.to_string().contains("bad directive"), "{err}");
        assert_eq!(std::fs::read_to_string(&a).expect("a"), "old");
        assert!(!b.exists(), "a file that did not exist is removed again");
        let left: Vec<_> = std::fs::read_dir(&d)
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, ["a.conf"]);
    }

    #[tokio::test]
    async fn a_passing_check_installs() {
        let d = dir("ok");
        let a = d.join("a.conf");
        let n = Nginx {
            check: Some("true".into()),
            pid_file: None,
        };
        let done = n
            .install(&[(a.clone(), b"new".to_vec())])
            .await
            .expect("installs");
        assert_eq!(done.changed, std::slice::from_ref(&a));
        assert_eq!(std::fs::read_to_string(&a).expect("a"), "new");
    }

    #[test]
    fn a_crash_between_rename_and_check_is_rolled_back() {
        let d = dir("crash");
        let a = d.join("a.conf");
        std::fs::write(&a, "unchecked").expect("write");
        std::fs::write(journal_of(&a), "good").expect("journal");
        assert_eq!(recover(std::slice::from_ref(&a)), std::slice::from_ref(&a));
        assert_eq!(std::fs::read_to_string(&a).expect("a"), "good");
        assert!(!journal_of(&a).exists());
    }
}
