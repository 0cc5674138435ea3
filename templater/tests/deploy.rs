//! The deploy CLI as a CI step runs it: exit codes, refusals, `--force`, check-and-set under
//! concurrent deploys, `status` read back from the edges, and `--wait-live` with no templater
//! running.

mod common;

use common::*;
use testkit::{unique, ConsulAgent};

#[tokio::test]
async fn refusals_force_and_exit_codes() {
    let consul = ConsulAgent::start().await;
    let svc = unique("svc");
    register(&consul, "b1", &svc, 1001, &["blue"], "passing").await;
    register(&consul, "g1", &svc, 1002, &["green"], "critical").await;

    let (code, out) = cli_text(&consul, &["flip", &svc]);
    assert_eq!(code, 2, "no active colour yet and none named: {out}");
    assert!(out.contains("name one"), "{out}");
    let (code, out) = cli_text(&consul, &["canary", &svc, "10"]);
    assert_eq!(code, 3, "canary before any flip: {out}");
    let (code, out) = cli_text(&consul, &["flip", &svc, "blue"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli_text(&consul, &["flip", &svc]);
    assert_eq!(code, 3, "green has no passing instance: {out}");
    assert!(
        out.contains("no passing green instance") && out.contains("--force"),
        "{out}"
    );
    assert_eq!(
        consul
            .kv(&format!("deploy/{svc}/active"))
            .await
            .expect("kv")
            .as_deref(),
        Some("blue"),
        "a refusal changes nothing"
    );
    let (code, out) = cli_text(&consul, &["flip", &svc, "--force"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        consul
            .kv(&format!("deploy/{svc}/previous"))
            .await
            .expect("kv")
            .as_deref(),
        Some("blue")
    );
    let (code, out) = cli_text(&consul, &["rollback", &svc]);
    assert_eq!(code, 0, "blue is passing: {out}");
    assert_eq!(
        consul
            .kv(&format!("deploy/{svc}/active"))
            .await
            .expect("kv")
            .as_deref(),
        Some("blue")
    );
    let (code, out) = cli_text(&consul, &["flip", &svc, "purple"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("purple"), "{out}");
    let (code, out) = cli_text(&consul, &["flip", "bad;name", "blue"]);
    assert_eq!(code, 2, "{out}");
    let (code, out) = cli_text(&consul, &["flip", &svc, "blue", "--wait-live", "1"]);
    assert_eq!(code, 5, "no templater acknowledges: {out}");
    assert!(out.contains("no templater"), "{out}");
    let help = String::from_utf8_lossy(&cli(&consul, &["--help"]).stdout).to_string();
    assert!(
        help.contains("EXIT CODES") && help.contains("conflict"),
        "{help}"
    );

    let unreachable = std::process::Command::new(env!("CARGO_BIN_EXE_templater"))
        .args([
            "--consul",
            &format!("127.0.0.1:{}", testkit::free_port()),
            "flip",
            &svc,
            "blue",
        ])
        .output()
        .expect("run");
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("consul unreachable"));
}

#[tokio::test]
async fn concurrent_deploys_never_interleave() {
    let consul = ConsulAgent::start().await;
    let svc = unique("race");
    register(&consul, "b1", &svc, 1001, &["blue"], "passing").await;
    register(&consul, "g1", &svc, 1002, &["green"], "passing").await;
    assert_eq!(cli_text(&consul, &["flip", &svc, "blue"]).0, 0);
    let url = consul.url();
    let handles: Vec<_> = (0..12)
        .map(|i| {
            let (url, svc) = (url.clone(), svc.clone());
            std::thread::spawn(move || {
                let color = if i % 2 == 0 { "green" } else { "blue" };
                std::process::Command::new(env!("CARGO_BIN_EXE_templater"))
                    .args(["--consul", &url, "flip", &svc, color])
                    .output()
                    .expect("run")
            })
        })
        .collect();
    let codes: Vec<i32> = handles
        .into_iter()
        .map(|h| h.join().expect("thread").status.code().unwrap_or(-1))
        .collect();
    assert!(
        codes.iter().all(|c| *c == 0 || *c == 4),
        "only success or conflict: {codes:?}"
    );
    let active = consul
        .kv(&format!("deploy/{svc}/active"))
        .await
        .expect("kv")
        .expect("set");
    let previous = consul
        .kv(&format!("deploy/{svc}/previous"))
        .await
        .expect("kv");
    assert_eq!(
        consul
            .kv(&format!("deploy/{svc}/canary"))
            .await
            .expect("kv")
            .as_deref(),
        Some("0")
    );
    if let Some(prev) = previous {
        assert_ne!(
            prev, active,
            "previous is always the colour before the last winning flip"
        );
    }
}

/// A second writer between the command's read and its transaction: every command loses
/// (exit 4) and writes nothing, whatever the timing. Fails when any check-and-set is removed.
#[tokio::test]
async fn a_write_between_read_and_commit_always_conflicts() {
    let consul = ConsulAgent::start().await;
    let svc = unique("cas");
    register(&consul, "b1", &svc, 1001, &["blue"], "passing").await;
    register(&consul, "g1", &svc, 1002, &["green"], "passing").await;
    assert_eq!(cli_text(&consul, &["flip", &svc, "blue"]).0, 0);
    assert_eq!(cli_text(&consul, &["flip", &svc, "green"]).0, 0);
    let proxy =
        testkit::consul_proxy::ConsulProxy::start(format!("127.0.0.1:{}", consul.http_port)).await;
    // (command, the key the second writer changes, its new value). Consul ignores a write of
    // the value a key already holds, so the second writer always changes it.
    let cases: [(&[&str], &str, &str); 4] = [
        (&["flip", &svc, "blue"], "active", "blue"),
        (&["rollback", &svc], "active", "green"),
        (&["canary", &svc, "20"], "active", "blue"),
        (&["canary", &svc, "30"], "canary", "7"),
    ];
    for (args, raced, value) in cases {
        let key = format!("deploy/{svc}/{raced}");
        let (url, k, v) = (consul.url(), key.clone(), value.to_string());
        proxy.before("PUT", "/v1/txn", move || async move {
            reqwest::Client::new()
                .put(format!("{url}/v1/kv/{k}"))
                .body(v)
                .send()
                .await
                .expect("second writer");
        });
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_templater"))
            .args(["--consul", &proxy.url()])
            .args(args)
            .output()
            .await
            .expect("run");
        assert!(proxy.fired(), "{args:?}: the second writer ran");
        assert_eq!(
            out.status.code(),
            Some(4),
            "{args:?} must lose to a write to {key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            consul.kv(&key).await.expect("kv").as_deref(),
            Some(value),
            "{args:?}: the second writer's value stands"
        );
        if args[0] == "canary" && raced == "active" {
            let canary = consul
                .kv(&format!("deploy/{svc}/canary"))
                .await
                .expect("kv");
            assert_ne!(canary.as_deref(), Some("20"), "the canary was not written");
        }
    }
}

/// `status` shows what the edge serves, read back from the edge's own record: its options
/// (`--no-backup`), its validation (a hostile address gets no share), its shares.
#[tokio::test]
async fn status_shows_the_plan_each_edge_has_live() {
    let consul = ConsulAgent::start().await;
    let nginx = testkit::NginxServer::start().await;
    let svc = unique("stat");
    for (id, color, status) in [
        ("b1", "blue", "passing"),
        ("b2", "blue", "passing"),
        ("b3", "blue", "passing"),
        ("g1", "green", "passing"),
        ("g2", "green", "critical"),
    ] {
        register(&consul, id, &svc, 1000, &[color], status).await;
    }
    consul
        .put_json(
            "/v1/agent/service/register",
            &serde_json::json!({"ID": "evil", "Name": svc, "Address": "127.0.0.1;include /etc/passwd",
                                "Port": 80, "Tags": ["blue"]}),
        )
        .await
        .expect("register evil");
    assert_eq!(cli_text(&consul, &["flip", &svc, "blue"]).0, 0);
    let (code, text) = cli_text(&consul, &["status", &svc]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("no edge reports serving it"), "{text}");

    let _edge = start_templater(&consul, &nginx, &["--no-backup"]);
    let (code, out) = cli_text(&consul, &["canary", &svc, "10", "--wait-live", "20"]);
    assert_eq!(code, 0, "{out}");
    let report = status_json(&consul, &svc);
    let s = &report["services"][0];
    assert_eq!(s["active"], "blue");
    assert_eq!(s["canary"], 10);
    assert_eq!(s["colors"]["green"]["instances"], 2);
    assert_eq!(s["colors"]["green"]["healthy"], 1);
    assert_eq!(s["invalid"][0]["id"], "evil", "{s}");
    let plan = &s["edges"][0]["plan"];
    let share = |id: &str| {
        plan["instances"]
            .as_array()
            .expect("list")
            .iter()
            .find(|i| i["id"] == id)
            .map(|i| i["share"].as_f64().expect("share"))
    };
    assert!((share("b1").expect("b1") - 30.0).abs() < 1e-9, "{plan}");
    assert!((share("g1").expect("g1") - 10.0).abs() < 1e-9, "{plan}");
    assert_eq!(share("g2"), None, "critical: left out");
    assert_eq!(share("evil"), None, "a hostile address never gets a share");
    assert!(
        s["edges"][0]["differences"]
            .as_array()
            .expect("list")
            .is_empty(),
        "{s}"
    );

    // Canary 0 under the edge's --no-backup: green is left out, not a backup.
    let (code, out) = cli_text(&consul, &["canary", &svc, "0", "--wait-live", "20"]);
    assert_eq!(code, 0, "{out}");
    let report = status_json(&consul, &svc);
    let plan = &report["services"][0]["edges"][0]["plan"];
    let left: Vec<_> = plan["left_out"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|l| l["reason"] == "no_backup")
        .map(|l| l["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(left, ["g1"], "{plan}");
    assert_eq!(report["edges"][0]["options"]["backup_inactive"], false);
    let (code, text) = cli_text(&consul, &["status"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&svc) && text.contains("canary=0%"), "{text}");
}

fn status_json(consul: &ConsulAgent, svc: &str) -> serde_json::Value {
    let out = cli(consul, &["status", svc, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[tokio::test]
async fn acl_default_deny_names_the_missing_permissions() {
    let row = testkit::report::Row::start(
        "templater with Consul ACLs, default deny",
        "without a token: the CLI exits 1 naming key_prefix, the daemon renders nothing and names the missing read permissions; with a token holding README's policy: flip and run --once succeed",
    );
    let consul = ConsulAgent::start_with(&["-hcl", &ConsulAgent::acl_hcl()]).await;
    let svc = unique("locked");
    let token = consul
        .acl_token(&testkit::consul::readme_policy("templater"))
        .await
        .expect("token");
    let (code, out) = cli_text(&consul, &["flip", &svc, "blue", "--force"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("token") && out.contains("key_prefix"), "{out}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_templater"))
        .args([
            "--consul",
            &consul.url(),
            "--token",
            &token,
            "flip",
            &svc,
            "blue",
            "--force",
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A daemon without a token must not render the (filtered, empty) catalog.
    let dir = std::env::temp_dir().join(unique("acl-out"));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_templater"))
        .args([
            "--consul",
            &consul.url(),
            "run",
            "--nginx-check",
            "",
            "--output-dir",
            &dir.display().to_string(),
        ])
        .env_remove("CONSUL_HTTP_TOKEN")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let _ = run.kill();
    let out = run.wait_with_output().expect("output");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("missing read permissions"), "{log}");
    assert_eq!(
        std::fs::read_dir(&dir).expect("ls").count(),
        0,
        "nothing rendered from a filtered catalog"
    );
    // With README's minimal policy the daemon renders and acknowledges.
    let dir_arg = dir.display().to_string();
    let out = cli(
        &consul,
        &[
            "--token",
            &token,
            "run",
            "--once",
            "--nginx-check",
            "",
            "--output-dir",
            &dir_arg,
        ],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(!log.contains("permission"), "{log}");
    assert!(
        std::fs::read_dir(&dir).expect("ls").count() > 0,
        "rendered with the minimal token"
    );
    let _ = std::fs::remove_dir_all(&dir);
    row.pass("—");
}
