//! Container lifecycles the drain suites need: an app that takes its grace period to stop, a
//! `docker stop` that runs in the background (the CLI blocks for the whole grace period), and
//! whether a container still runs.

use std::process::{Child, Command, Stdio};

/// The test image's httpd under a shell that, on SIGTERM, keeps serving for `drain_secs` and
/// then exits 0: what an app with graceful shutdown does. Pass after the image.
pub fn draining_app(drain_secs: u32) -> Vec<String> {
    draining_app_on("TERM", drain_secs)
}

/// [`draining_app`] that drains on `signal` (e.g. `WINCH`, for `--stop-signal SIGWINCH`).
pub fn draining_app_on(signal: &str, drain_secs: u32) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("trap 'sleep {drain_secs}; exit 0' {signal}; httpd -f -p 80 -h / & wait"),
    ]
}

/// A `docker stop` running in the background; waited for on drop.
pub struct BackgroundStop(Child);

impl BackgroundStop {
    /// Waits for the stop to return.
    pub fn wait(mut self) {
        let _ = self.0.wait();
    }
}

impl Drop for BackgroundStop {
    fn drop(&mut self) {
        let _ = self.0.wait();
    }
}

/// `docker stop -t GRACE NAME`, not waited for.
pub fn stop_in_background(name: &str, grace_secs: u32) -> BackgroundStop {
    let child = Command::new("docker")
        .args(["stop", "-t", &grace_secs.to_string(), name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run docker stop");
    BackgroundStop(child)
}

/// True while the container runs (a stopping one still does).
pub fn is_running(name: &str) -> bool {
    Command::new("docker")
        .args(["inspect", "-f", "{{.State.Running}}", name])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "true")
        .unwrap_or(false)
}
