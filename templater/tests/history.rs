//! The deploy history against a real Consul, through the real binary: every flip, canary and
//! rollback leaves an entry (from → to, who), `--by` and the CI default, concurrent appends lose
//! nothing, the bound holds, a corrupt or unwritable history never fails a deploy; and
//! `status` shows the images each colour runs.

mod common;

use std::process::Command;

use common::*;
use serde_json::{json, Value};
use swarmgate_consul::{Client, ConsulConfig};
use templater::history::{self, Entry, MAX_ENTRIES};
use templater::keys::Keys;
use testkit::{unique, ConsulAgent};

/// `(exit code, stdout, stderr)` of a CLI command in an environment of `env` only (no CI
/// variable or `$USER` of the machine running the suite leaks in).
fn run(consul: &ConsulAgent, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_templater"))
        .args(["--consul", &consul.url()])
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run templater");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(consul: &ConsulAgent, args: &[&str], env: &[(&str, &str)]) -> String {
    let (code, out, err) = run(consul, args, env);
    assert_eq!(code, 0, "{args:?}: {out}{err}");
    out
}

fn entries(consul: &ConsulAgent, svc: &str) -> Vec<Entry> {
    serde_json::from_str(&ok(consul, &["history", svc, "--json"], &[])).expect("history json")
}

fn client(consul: &ConsulAgent) -> Client {
    let url = reqwest::Url::parse(&consul.url()).expect("url");
    Client::new(&ConsulConfig::new(url)).expect("client")
}

async fn two_colours(consul: &ConsulAgent, svc: &str) {
    register(consul, &format!("{svc}-b"), svc, 1001, &["blue"], "passing").await;
    register(
        consul,
        &format!("{svc}-g"),
        svc,
        1002,
        &["green"],
        "passing",
    )
    .await;
}

fn seen(e: &Entry) -> (&str, Option<&str>, Option<&str>, &str) {
    (
        e.action.as_str(),
        e.from.as_deref(),
        e.to.as_deref(),
        e.by.as_str(),
    )
}

#[tokio::test]
async fn every_deploy_command_leaves_an_entry_with_who() {
    let consul = ConsulAgent::start().await;
    let svc = unique("hist");
    two_colours(&consul, &svc).await;
    assert!(ok(&consul, &["history", &svc], &[]).contains("no deploy recorded"));
    ok(
        &consul,
        &["flip", &svc, "blue", "--by", "first deploy"],
        &[],
    );
    let jenkins = [("BUILD_NUMBER", "42"), ("JOB_NAME", "deploy-web")];
    ok(&consul, &["flip", &svc], &jenkins);
    ok(
        &consul,
        &["canary", &svc, "10"],
        &[("TEMPLATER_BY", "env-by")],
    );
    ok(&consul, &["rollback", &svc], &[("USER", "carol")]);
    ok(&consul, &["canary", &svc, "0"], &[]);
    let got = entries(&consul, &svc);
    let got: Vec<_> = got.iter().map(seen).collect();
    assert_eq!(
        got,
        vec![
            ("flip", None, Some("blue"), "first deploy"),
            ("flip", Some("blue"), Some("green"), "build deploy-web #42"),
            ("canary", Some("green"), Some("blue"), "env-by"),
            ("rollback", Some("green"), Some("blue"), "carol"),
            ("canary", Some("blue"), Some("green"), "unknown"),
        ]
    );
    let text = ok(&consul, &["history", &svc], &[]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines[1].ends_with("Z  flip  blue → green  by build deploy-web #42"),
        "{text}"
    );
    assert!(
        lines[2].ends_with("canary  green → blue  by env-by  (10%)"),
        "{text}"
    );
    assert!(lines[0].starts_with("20"), "a UTC timestamp first: {text}");
}

#[tokio::test]
async fn a_refused_deploy_leaves_no_entry() {
    let consul = ConsulAgent::start().await;
    let svc = unique("hist-refused");
    register(
        &consul,
        &format!("{svc}-b"),
        &svc,
        1001,
        &["blue"],
        "critical",
    )
    .await;
    let (code, out, err) = run(&consul, &["flip", &svc, "blue"], &[]);
    assert_eq!(code, 3, "{out}{err}");
    assert_eq!(entries(&consul, &svc), Vec::new());
}

#[tokio::test]
async fn concurrent_appends_lose_none() {
    let consul = ConsulAgent::start().await;
    let (client, keys) = (client(&consul), Keys::new("deploy").expect("keys"));
    let svc = unique("hist-race");
    let writer = |task: usize| {
        let (client, keys, svc) = (client.clone(), keys.clone(), svc.clone());
        tokio::spawn(async move {
            for i in 0..20 {
                let e = Entry::now("canary", None, None, format!("{task}-{i}"), "race");
                history::append(&client, &keys, &svc, e)
                    .await
                    .expect("append");
            }
        })
    };
    let (a, b) = (writer(1), writer(2));
    a.await.expect("task 1");
    b.await.expect("task 2");
    let got = history::read(&client, &keys, &svc).await.expect("read");
    assert_eq!(got.len(), 40, "{got:?}");
    for task in [1, 2] {
        let mine: Vec<&str> = got
            .iter()
            .map(|e| e.detail.as_str())
            .filter(|d| d.starts_with(&format!("{task}-")))
            .collect();
        let want: Vec<String> = (0..20).map(|i| format!("{task}-{i}")).collect();
        assert_eq!(mine, want, "each writer's entries, in its order");
    }
}

#[tokio::test]
async fn the_history_keeps_the_newest_entries() {
    let consul = ConsulAgent::start().await;
    let svc = unique("hist-bound");
    two_colours(&consul, &svc).await;
    let old: Vec<Entry> = (0..MAX_ENTRIES)
        .map(|i| Entry::now("canary", None, None, format!("old-{i}"), "seed"))
        .collect();
    let key = Keys::new("deploy").expect("keys").history(&svc);
    consul
        .kv_put(&key, &serde_json::to_string(&old).expect("json"))
        .await
        .expect("seed");
    ok(&consul, &["flip", &svc, "green"], &[]);
    let got = entries(&consul, &svc);
    assert_eq!(got.len(), MAX_ENTRIES);
    assert_eq!(got[0].detail, "old-1", "the oldest went");
    assert_eq!(seen(&got[MAX_ENTRIES - 1]).0, "flip", "the newest is last");
    // A detail of any size stays bounded.
    let huge = "x".repeat(600 * 1024);
    let e = Entry::now("promote-failed", None, None, huge, "t");
    history::append(
        &client(&consul),
        &Keys::new("deploy").expect("keys"),
        &svc,
        e,
    )
    .await
    .expect("a huge detail is cut, not refused");
    let raw = consul.kv(&key).await.expect("kv").expect("history");
    assert!(raw.len() < 300 * 1024, "{} bytes", raw.len());
}

#[tokio::test]
async fn a_corrupt_or_unwritable_history_never_fails_a_deploy() {
    let consul = ConsulAgent::start().await;
    let svc = unique("hist-corrupt");
    two_colours(&consul, &svc).await;
    let key = Keys::new("deploy").expect("keys").history(&svc);
    consul.kv_put(&key, "{not json").await.expect("corrupt");
    let (code, _, err) = run(&consul, &["history", &svc], &[]);
    assert_eq!(code, 1, "a corrupt history is an error to read: {err}");
    let (code, out, err) = run(&consul, &["flip", &svc, "blue"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("does not parse"), "warned: {err}");
    assert_eq!(
        consul
            .kv(&format!("deploy/{svc}/active"))
            .await
            .expect("kv")
            .as_deref(),
        Some("blue")
    );
    let got = entries(&consul, &svc);
    assert_eq!(
        got.iter().map(seen).collect::<Vec<_>>(),
        vec![("flip", None, Some("blue"), "unknown")]
    );
}

#[tokio::test]
async fn a_history_write_refused_by_acl_only_warns() {
    let consul = ConsulAgent::start_with(&["-hcl", &ConsulAgent::acl_hcl()]).await;
    let svc = unique("hist-acl");
    let token = consul
        .acl_token(
            r#"key_prefix "deploy/" { policy = "write" }
key_prefix "deploy-templater/" { policy = "read" }
service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }"#,
        )
        .await
        .expect("token");
    let (code, out, err) = run(
        &consul,
        &["--token", &token, "flip", &svc, "blue", "--force"],
        &[],
    );
    assert_eq!(code, 0, "the flip stands: {out}{err}");
    assert!(out.contains("blue is active"), "{out}");
    assert!(err.contains("deploy history not written"), "warned: {err}");
}

#[tokio::test]
async fn status_shows_the_images_of_each_colour() {
    let consul = ConsulAgent::start().await;
    let svc = unique("hist-img");
    for (id, port, color, image) in [
        ("b1", 1001, "blue", "acme/web:1"),
        ("b2", 1002, "blue", "acme/web:1"),
        ("g1", 1003, "green", "acme/web:2"),
        ("g2", 1004, "green", "acme/web:3"),
    ] {
        let body = json!({
            "ID": format!("{svc}-{id}"), "Name": svc, "Address": "127.0.0.1", "Port": port,
            "Tags": [color], "Meta": {"image": image},
        });
        consul.register(&body).await;
    }
    let report: Value =
        serde_json::from_str(&ok(&consul, &["status", &svc, "--json"], &[])).expect("json");
    let colors = &report["services"][0]["colors"];
    assert_eq!(colors["blue"]["images"], json!(["acme/web:1"]), "{report}");
    assert_eq!(
        colors["green"]["images"],
        json!(["acme/web:2", "acme/web:3"])
    );
    let text = ok(&consul, &["status", &svc], &[]);
    assert!(
        text.contains("2 instances, 2 healthy, image acme/web:1\n"),
        "{text}"
    );
    assert!(text.contains("images acme/web:2, acme/web:3\n"), "{text}");
}
