//! Our images (`swarmgate/*:e2e-…`, [`tag`]) and the upstream ones, built once per test process by
//! `compose/images/build` from the debug binaries `cargo test` has just built, so the suite tests
//! exactly this checkout and needs no registry.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The tag the suites' images carry (never the user's `latest`): `e2e-<hash of this checkout's
/// path>`, so two checkouts testing at once on one Docker engine never run each other's images.
pub fn tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        // FNV-1a: stable across runs and toolchains (std's hasher is not).
        let path = testkit::workspace_root();
        let hash = path
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
            });
        format!("e2e-{:08x}", hash as u32)
    })
}

/// The directory holding this build's binaries (`target/debug`): the test executable lives in
/// its `deps/`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// Builds the images once; panics with the script's output when it fails.
pub fn ensure() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = bin_dir();
        for bin in ["registrator", "templater"] {
            assert!(
                dir.join(bin).exists(),
                "{} missing: run the suite with `cargo test --workspace`",
                dir.join(bin).display()
            );
        }
        let out = Command::new(testkit::workspace_root().join("compose/images/build"))
            .arg("--bin-dir")
            .arg(&dir)
            .env("SWARMGATE_TAG", tag())
            .output()
            .expect("run compose/images/build");
        assert!(
            out.status.success(),
            "compose/images/build failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// This build's binary `name` (`target/debug/<name>`).
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}
