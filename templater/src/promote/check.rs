//! `--check CMD`: an acceptance command run through `sh -c`, with the service, colour, step
//! and the edge (and preview header) it should reach COLOR through in its environment. A
//! non-zero exit (or no exit within the bound) fails the promotion with the tail of what it
//! printed.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// Lines of the command's output a failure shows.
const TAIL_LINES: usize = 20;
/// Bytes of its output kept.
const KEEP_BYTES: usize = 64 << 10;

/// What the check is told.
pub struct CheckEnv<'a> {
    pub service: &'a str,
    pub color: &'a str,
    /// `0` before the first traffic step, else the step's percent.
    pub step: u8,
    pub edge: &'a str,
    pub preview_header: &'a str,
}

/// Runs `cmd`; `Err` holds why it failed and the tail of its output.
pub async fn run(cmd: &str, env: &CheckEnv<'_>, timeout: Duration) -> Result<(), String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("SWARMGATE_SERVICE", env.service)
        .env("SWARMGATE_COLOR", env.color)
        .env("SWARMGATE_STEP", env.step.to_string())
        .env("SWARMGATE_EDGE", env.edge)
        .env("SWARMGATE_PREVIEW_HEADER", env.preview_header)
        .env(
            "SWARMGATE_PREVIEW",
            format!("{}: {}", env.preview_header, env.color),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("--check could not start: {e}"))?;
    let (mut out, mut err) = (
        child.stdout.take().expect("piped"),
        child.stderr.take().expect("piped"),
    );
    let collect = async {
        let (mut a, b) = tokio::join!(drain(&mut out), drain(&mut err));
        a.extend_from_slice(&b);
        let status = child.wait().await;
        (status, a)
    };
    match tokio::time::timeout(timeout, collect).await {
        Err(_) => Err(format!("--check did not finish within {timeout:?}")),
        Ok((Err(e), _)) => Err(format!("--check: {e}")),
        Ok((Ok(status), _)) if status.success() => Ok(()),
        Ok((Ok(status), output)) => Err(format!(
            "--check failed ({status}); its output ends:\n{}",
            tail(&String::from_utf8_lossy(&output))
        )),
    }
}

/// Reads `r` to its end, keeping the last [`KEEP_BYTES`].
async fn drain(r: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(n) = r.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&chunk[..n]);
        if kept.len() > 2 * KEEP_BYTES {
            kept.drain(..kept.len() - KEEP_BYTES);
        }
    }
    kept
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    lines[start..]
        .iter()
        .map(|l| format!("  | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> CheckEnv<'static> {
        CheckEnv {
            service: "web",
            color: "green",
            step: 0,
            edge: "http://127.0.0.1:8080",
            preview_header: "X-Swarmgate-Color",
        }
    }

    #[tokio::test]
    async fn a_check_sees_its_environment_and_its_failure_shows_the_tail() {
        let ok = "test \"$SWARMGATE_SERVICE $SWARMGATE_COLOR $SWARMGATE_STEP $SWARMGATE_PREVIEW\" = 'web green 0 X-Swarmgate-Color: green'";
        assert_eq!(run(ok, &env(), Duration::from_secs(5)).await, Ok(()));
        let err = run(
            "seq 1 30; echo boom >&2; exit 3",
            &env(),
            Duration::from_secs(5),
        )
        .await
        .expect_err("fails");
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.contains("  | 30") && err.contains("  | boom"), "{err}");
        assert!(!err.contains("  | 5\n"), "only the tail: {err}");
    }

    #[tokio::test]
    async fn a_check_that_hangs_is_a_failure() {
        let err = run("sleep 5", &env(), Duration::from_millis(200))
            .await
            .expect_err("times out");
        assert!(err.contains("did not finish"), "{err}");
    }
}
