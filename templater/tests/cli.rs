//! The CLI's contract as scripts see it: exit codes for bad flags (64) and refused values (2),
//! `--help`, an unreachable Consul (1, naming it), and a closed stdout ending quietly.

mod common;

use std::process::{Command, Stdio};

use common::*;
use testkit::{unique, ConsulAgent};

fn templater(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_templater"))
        .args(args)
        .env_remove("CONSUL_HTTP_ADDR")
        .env_remove("CONSUL_HTTP_TOKEN")
        .output()
        .expect("run")
}

#[test]
fn bad_flags_and_environment_exit_64_and_help_exits_0() {
    for args in [
        &["--bogus", "status"][..],
        &["status", "--bogus"],
        &["run", "--wait", "fast"],
        &["run", "--hold", "soon"],
        &["--colors", "blue", "status"],
        &["--kv-prefix", "/", "status"],
        &["--consul", "etcd://x:1", "status"],
        &[],
    ] {
        let out = templater(args);
        assert_eq!(
            out.status.code(),
            Some(64),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty(), "{args:?} says why");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_templater"))
        .args(["status"])
        .env("TEMPLATER_HEALTH", "sometimes")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64), "a bad environment variable");
    for args in [&["--help"][..], &["--version"], &["flip", "--help"]] {
        let out = templater(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty());
    }
    let help = String::from_utf8(templater(&["--help"]).stdout).expect("utf8");
    assert!(help.contains("64") && help.contains("EXIT CODES"), "{help}");
}

#[test]
fn an_unreachable_consul_exits_1_and_names_it() {
    let port = testkit::free_port();
    let out = templater(&["--consul", &format!("127.0.0.1:{port}"), "status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[tokio::test]
async fn refused_values_exit_2_naming_them() {
    let consul = ConsulAgent::start().await;
    let svc = unique("vals");
    register(&consul, "b1", &svc, 1001, &["blue"], "passing").await;
    assert_eq!(cli_text(&consul, &["flip", &svc, "blue"]).0, 0);
    for (args, named) in [
        (vec!["canary", &svc, "101"], "101"),
        (vec!["flip", &svc, "red"], "red"),
        (vec!["flip", ".app", "blue"], ".app"),
        (vec!["status", "we;b"], "we;b"),
    ] {
        let (code, out) = cli_text(&consul, &args);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(out.contains(named), "{args:?}: {out}");
    }
}

/// `templater status | head -1` under `set -o pipefail`: exit 0, nothing on stderr.
#[tokio::test]
async fn a_closed_stdout_ends_quietly() {
    let consul = ConsulAgent::start().await;
    for i in 0..40 {
        register(
            &consul,
            &format!("i{i}"),
            &unique("many"),
            1000 + i,
            &["blue"],
            "passing",
        )
        .await;
    }
    let script = format!(
        "set -o pipefail; '{}' --consul '{}' status | head -1",
        env!("CARGO_BIN_EXE_templater"),
        consul.url()
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .stderr(Stdio::piped())
        .output()
        .expect("bash");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}
