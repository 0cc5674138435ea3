//! The test image (busybox httpd, built locally FROM scratch: nothing is pulled) and containers
//! that remove themselves when the test ends, pass or fail. Uses the Docker CLI, as a user would.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use crate::workspace_root;

/// The image every suite runs.
pub const TEST_IMAGE: &str = "swarmgate-test/app:latest";
/// Label on everything the suites create, for clean-up by hand.
pub const TEST_LABEL: &str = "swarmgate-test=1";

/// A name no other test or run uses: `prefix-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `docker ARGS`, answering trimmed stdout; panics with stderr on failure.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Like [`docker`] but ignores failure (for clean-up).
pub fn docker_quiet(args: &[&str]) {
    let _ = Command::new("docker").args(args).output();
}

/// The locally built test image.
pub struct TestImage;

impl TestImage {
    /// Builds the image once per process (cheap when Docker has it cached).
    pub fn ensure() -> &'static str {
        static BUILT: OnceLock<()> = OnceLock::new();
        BUILT.get_or_init(|| {
            let ctx = std::env::temp_dir().join(unique("swarmgate-image"));
            std::fs::create_dir_all(&ctx).expect("build dir");
            // The demo app's script (compose/images/app) in a FROM scratch image, so the
            // suites need no base image at all.
            let root = workspace_root();
            for (from, to) in [
                ("testkit/images/app/Dockerfile", "Dockerfile"),
                ("compose/images/app/app.sh", "app.sh"),
            ] {
                std::fs::copy(root.join(from), ctx.join(to)).expect("copy build file");
            }
            std::fs::copy("/bin/busybox", ctx.join("busybox"))
                .expect("busybox-static (run .ci/install)");
            docker(&[
                "build",
                "-q",
                "-t",
                TEST_IMAGE,
                ctx.to_str().expect("utf8 path"),
            ]);
            let _ = std::fs::remove_dir_all(&ctx);
        });
        TEST_IMAGE
    }

    /// The image under another name (`NAME:latest`), so default service names are unique per
    /// test. The tag is removed on drop.
    pub fn tagged(name: &str) -> ImageTag {
        let image = format!("{name}:latest");
        docker(&["tag", Self::ensure(), &image]);
        ImageTag(image)
    }
}

/// An image tag removed on drop.
pub struct ImageTag(pub String);

impl Drop for ImageTag {
    fn drop(&mut self) {
        docker_quiet(&["rmi", "--no-prune", &self.0]);
    }
}

/// A container removed (with `rm -f`) on drop.
pub struct Container {
    pub id: String,
    pub name: String,
}

impl Container {
    /// `docker run -d --name <unique> --label swarmgate-test=1 ARGS…` (ARGS end with the image).
    pub fn run(prefix: &str, args: &[&str]) -> Self {
        let name = unique(prefix);
        let mut all = vec!["run", "-d", "--name", &name, "--label", TEST_LABEL];
        all.extend_from_slice(args);
        let id = docker(&all);
        Container { id, name }
    }

    /// The host port a container port is published on.
    pub fn host_port(&self, port: &str) -> u16 {
        let out = docker(&["port", &self.name, port]);
        out.lines()
            .next()
            .and_then(|l| l.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no host port for {port}: {out}"))
    }

    pub fn stop(&self) {
        docker(&["stop", "-t", "1", &self.name]);
    }

    pub fn start(&self) {
        docker(&["start", &self.name]);
    }

    pub fn kill(&self, signal: &str) {
        docker(&["kill", "-s", signal, &self.name]);
    }

    pub fn pause(&self, paused: bool) {
        docker(&[if paused { "pause" } else { "unpause" }, &self.name]);
    }

    pub fn remove(&self) {
        docker_quiet(&["rm", "-f", "-v", &self.name]);
    }

    /// `docker exec <name> ARGS…`, its output.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut all = vec!["exec", self.name.as_str()];
        all.extend_from_slice(args);
        docker(&all)
    }

    /// Lets a container running [`serve_until_cue`] exit.
    pub fn cue(&self) {
        self.exec(&["touch", "/cue"]);
    }
}

/// A shell command for the test image: serve HTTP on port 80 until [`Container::cue`], then
/// exit with `code` (the test decides when, not a timer racing a loaded machine).
pub fn serve_until_cue(code: i32) -> String {
    format!("httpd -p 80 -h /; while [ ! -e /cue ]; do sleep 0.1; done; exit {code}")
}

impl Drop for Container {
    fn drop(&mut self) {
        self.remove();
    }
}
