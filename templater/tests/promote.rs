//! `templater promote` end to end: the real CLI against a real Consul and a real edge (nginx
//! with the Lua data plane fed by the real `templater run`), under generated traffic.
//!
//! A good green walks its steps and ends active; a green failing half its requests is rolled
//! back at its first step (exit 6) and users saw failures only from that step's share; no
//! traffic is inconclusive (exit 7); a baseline failing alike holds the step instead of
//! blaming the canary; a failing `--check` rolls back before any user reached green; SIGTERM
//! rolls back; a second promotion exits 4 and `rollback` aborts the first; a killed CLI leaves
//! its step, `status` says so, and `rollback` ends it. The good and the failing green run on
//! plain nginx too (the reload data plane, its traffic counted from nginx's syslog access log).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::lua_edge::{cli_async, Plane, PlaneEdge};
use common::*;
use serde_json::Value;
use testkit::http::{Load, LoadTotals};
use testkit::id_backend::IdBackend;
use testkit::{eventually, unique, ConsulAgent, NginxServer};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// Fast steps for tests: judged after 2 s on at least 20 requests.
const FAST: &[&str] = &["--interval", "2s", "--min-requests", "20"];

/// A service with two blue instances and one green behind an edge, blue active.
struct Stack {
    consul: ConsulAgent,
    edge: PlaneEdge,
    _templater: Templater,
    svc: String,
    host: String,
    blues: Vec<IdBackend>,
    green: IdBackend,
}

impl Stack {
    async fn start(blue_fail: u64, green_fail: u64) -> Stack {
        Self::start_with(blue_fail, green_fail, &[]).await
    }

    /// With `extra` flags for `templater run`.
    async fn start_with(blue_fail: u64, green_fail: u64, extra: &[&str]) -> Stack {
        Self::start_on(Plane::Lua, blue_fail, green_fail, extra).await
    }

    async fn start_on(plane: Plane, blue_fail: u64, green_fail: u64, extra: &[&str]) -> Stack {
        let consul = ConsulAgent::start().await;
        let edge = PlaneEdge::start(plane).await;
        let svc = unique("shop");
        let mut blues = Vec::new();
        for i in 0..2 {
            let b = IdBackend::start_failing(&format!("blue-{i}"), blue_fail).await;
            let id = format!("{svc}-blue-{i}");
            register(&consul, &id, &svc, b.port, &["blue", "public"], "passing").await;
            blues.push(b);
        }
        let green = IdBackend::start_failing("green-0", green_fail).await;
        let id = format!("{svc}-green-0");
        register(
            &consul,
            &id,
            &svc,
            green.port,
            &["green", "public"],
            "passing",
        )
        .await;
        let templater = edge.templater(&consul, extra);
        let host = format!("{svc}.localhost");
        let out = cli_async(&consul, &["flip", &svc, "blue", "--wait-live", "30"]).await;
        assert_eq!(out.0, 0, "flip blue: {}", out.1);
        Stack {
            consul,
            edge,
            _templater: templater,
            svc,
            host,
            blues,
            green,
        }
    }

    fn load(&self) -> Load {
        Load::start(self.edge.nginx().port, &self.host, 4)
    }

    /// `templater promote SVC ARGS --json` as a child process.
    fn promote(&self, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_templater"))
            .args([
                "--consul",
                &self.consul.url(),
                "promote",
                &self.svc,
                "--json",
            ])
            .args(args)
            .env_remove("CONSUL_HTTP_TOKEN")
            .env("BUILD_NUMBER", "77")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run templater promote")
    }

    async fn setting(&self, field: &str) -> Option<String> {
        self.consul
            .kv(&format!("deploy/{}/{field}", self.svc))
            .await
            .expect("kv")
    }

    /// Traffic ends all blue with no promotion left behind.
    async fn back_on_blue(&self) {
        assert_eq!(self.setting("active").await.as_deref(), Some("blue"));
        assert_eq!(self.setting("canary").await.as_deref(), Some("0"));
        assert_eq!(self.setting("promotion").await, None, "record deleted");
        let (green, _) = self.green.answered();
        let counts = testkit::http::tally(self.edge.nginx().port, &self.host, 30).await;
        assert_eq!(
            self.green.answered().0,
            green,
            "only blue serves: {counts:?}"
        );
    }

    async fn history(&self) -> String {
        self.consul
            .kv(&format!("deploy-templater/history/{}", self.svc))
            .await
            .expect("kv")
            .unwrap_or_default()
    }
}

/// A finished promotion: exit code, its JSON events, stderr.
struct Finished {
    code: i32,
    events: Vec<Value>,
    stderr: String,
}

impl Finished {
    fn has(&self, event: &str) -> usize {
        self.events.iter().filter(|e| e["event"] == event).count()
    }
}

impl std::fmt::Debug for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "exit {}", self.code)?;
        for e in &self.events {
            writeln!(f, "  {e}")?;
        }
        write!(f, "stderr: {}", self.stderr)
    }
}

async fn finish(mut child: Child) -> Finished {
    let events = Events::of(&mut child);
    events.finish(child).await
}

/// A running promotion's JSON events, read as they come.
struct Events(tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>);

impl Events {
    fn of(child: &mut Child) -> Events {
        use tokio::io::AsyncBufReadExt;
        let stdout = child.stdout.take().expect("stdout");
        Events(tokio::io::BufReader::new(stdout).lines())
    }

    /// The rest of the events, the exit code and stderr.
    async fn finish(mut self, mut child: Child) -> Finished {
        let mut err = String::new();
        let mut stderr = child.stderr.take().expect("stderr");
        let mut events = Vec::new();
        let read = async {
            while let Ok(Some(line)) = self.0.next_line().await {
                if let Ok(v) = serde_json::from_str(&line) {
                    events.push(v);
                }
            }
        };
        let (_, _, status) = tokio::join!(read, stderr.read_to_string(&mut err), child.wait());
        Finished {
            code: status.expect("exit").code().unwrap_or(-1),
            events,
            stderr: err,
        }
    }

    /// Reads events until one named `event` arrives; answers it.
    async fn until(&mut self, event: &str) -> Value {
        let mut seen = Vec::new();
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = self.0.next_line().await {
                let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                if v["event"] == event {
                    return Some(v);
                }
                seen.push(v);
            }
            None
        })
        .await;
        match found {
            Ok(Some(v)) => v,
            _ => panic!("no {event} event in {seen:?}"),
        }
    }
}

fn assert_no_failures(load: &LoadTotals) {
    assert_eq!(load.failed, 0, "users saw failures: {:?}", load.errors);
}

#[tokio::test]
async fn a_good_green_walks_its_steps_and_ends_active() {
    good_green(Plane::Lua).await;
}

#[tokio::test]
async fn reload_plane_a_good_green_walks_its_steps_and_ends_active() {
    good_green(Plane::Reload).await;
}

async fn good_green(plane: Plane) {
    let s = Stack::start_on(plane, 0, 0, &[]).await;
    let load = s.load();
    let mut args = vec!["--steps", "20,50,100"];
    args.extend_from_slice(FAST);
    let done = finish(s.promote(&args)).await;
    let load = load.finish().await;
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(done.has("passed"), 3, "{done:?}");
    let result = done.events.last().expect("a result");
    assert_eq!(result["outcome"], "promoted", "{done:?}");
    for step in done.events.iter().filter(|e| e["event"] == "passed") {
        assert!(step["canary"]["requests"].as_u64() >= Some(20), "{step}");
        assert_eq!(step["canary"]["errors"], 0, "{step}");
    }
    assert_no_failures(&load);
    assert_eq!(s.setting("active").await.as_deref(), Some("green"));
    assert_eq!(s.setting("canary").await.as_deref(), Some("0"));
    assert_eq!(s.setting("previous").await.as_deref(), Some("blue"));
    assert_eq!(s.setting("promotion").await, None);
    let history = s.history().await;
    for action in ["\"promote\"", "\"promote-step\"", "\"promote-passed\""] {
        assert!(history.contains(action), "{action} in {history}");
    }
    assert!(history.contains("77"), "by the build: {history}");
    let green = s.green.answered().0;
    assert!(green > 0, "green served");
    // The edges' traffic records are withdrawn once the promotion ends.
    eventually(WAIT, "traffic records withdrawn", || async {
        let keys = s
            .consul
            .kv_keys(&format!("deploy-templater/traffic/{}/", s.svc))
            .await?;
        anyhow::ensure!(keys.is_empty(), "{keys:?}");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_failing_green_is_rolled_back_at_its_first_step() {
    failing_green(Plane::Lua).await;
}

#[tokio::test]
async fn reload_plane_a_failing_green_is_rolled_back_at_its_first_step() {
    failing_green(Plane::Reload).await;
}

async fn failing_green(plane: Plane) {
    let s = Stack::start_on(plane, 0, 50, &[]).await;
    let load = s.load();
    let mut args = vec!["--steps", "10,50,100", "--max-wait", "30s"];
    args.extend_from_slice(FAST);
    let done = finish(s.promote(&args)).await;
    let load = load.finish().await;
    assert_eq!(done.code, 6, "{done:?}");
    let failed = done
        .events
        .iter()
        .find(|e| e["event"] == "failed")
        .expect("a failed event");
    assert_eq!(failed["step"], 1, "at its first step: {done:?}");
    assert!(
        done.stderr.contains("green: 5xx") && done.stderr.contains("(blue: 0% over"),
        "names the figure and the baseline: {done:?}"
    );
    s.back_on_blue().await;
    // What users saw fail is green's 500s, and green only ever had the first step's share.
    let (green, green_failed) = s.green.answered();
    let blue: u64 = s.blues.iter().map(|b| b.answered().0).sum();
    assert_eq!(load.failed, green_failed, "{:?}", load.errors);
    let share = green as f64 * 100.0 / (green + blue) as f64;
    assert!(share <= 15.0, "green got {share:.1}% (10% step)");
    println!(
        "users saw {} failed of {} requests",
        load.failed,
        load.ok + load.failed
    );
    assert!(s.history().await.contains("promote-failed"));
}

#[tokio::test]
async fn no_traffic_is_inconclusive() {
    let s = Stack::start(0, 0).await;
    let mut args = vec!["--steps", "50,100", "--max-wait", "5s"];
    args.extend_from_slice(FAST);
    let done = finish(s.promote(&args)).await;
    assert_eq!(done.code, 7, "{done:?}");
    assert!(done.has("waiting") >= 1, "{done:?}");
    assert!(done.stderr.contains("--min-requests"), "{done:?}");
    s.back_on_blue().await;
}

#[tokio::test]
async fn a_baseline_failing_alike_holds_the_step_instead_of_blaming_the_canary() {
    let s = Stack::start(30, 30).await;
    let load = s.load();
    let mut args = vec!["--steps", "50,100", "--max-wait", "8s"];
    args.extend_from_slice(FAST);
    let done = finish(s.promote(&args)).await;
    let _ = load.finish().await;
    assert_eq!(done.code, 7, "inconclusive, not failed: {done:?}");
    assert!(done.has("holding") >= 1, "{done:?}");
    assert!(done.stderr.contains("baseline is as bad"), "{done:?}");
    s.back_on_blue().await;
}

#[tokio::test]
async fn a_failing_check_rolls_back_before_any_user_reaches_green() {
    let s = Stack::start(0, 0).await;
    let load = s.load();
    let mut args = vec![
        "--check",
        "echo smoke test of $SWARMGATE_COLOR via $SWARMGATE_EDGE; exit 3",
    ];
    args.extend_from_slice(FAST);
    let done = finish(s.promote(&args)).await;
    let load = load.finish().await;
    assert_eq!(done.code, 6, "{done:?}");
    assert!(
        done.stderr.contains("| smoke test of green via"),
        "the tail of its output: {done:?}"
    );
    assert_eq!(done.has("step"), 0, "no traffic step: {done:?}");
    assert_eq!(s.green.answered().0, 0, "no user reached green");
    assert_no_failures(&load);
    s.back_on_blue().await;
}

#[tokio::test]
async fn a_check_reaches_green_through_the_preview_header_before_any_user() {
    let s = Stack::start_with(0, 0, &["--preview"]).await;
    let edge = format!("http://127.0.0.1:{}", s.edge.nginx().port);
    let check = format!(
        "answer=$(curl -fsS -H \"$SWARMGATE_PREVIEW\" -H 'Host: {}' \"$SWARMGATE_EDGE/\"); \
         echo \"preview answered $answer\"; test \"$answer\" = green-0",
        s.host
    );
    let mut args = vec![
        "--check",
        &check,
        "--edge",
        &edge,
        "--steps",
        "100",
        "--max-wait",
        "3s",
    ];
    args.extend_from_slice(FAST);
    let done = finish(s.promote(&args)).await;
    assert_eq!(done.has("check"), 1, "the check passed: {done:?}");
    // Only the check reached green; with no user traffic the step is inconclusive.
    assert_eq!(s.green.answered().0, 1, "{done:?}");
    assert_eq!(done.code, 7, "{done:?}");
    s.back_on_blue().await;
}

#[tokio::test]
async fn sigterm_mid_promotion_rolls_back() {
    let s = Stack::start(0, 0).await;
    let load = s.load();
    let mut args = vec!["--steps", "30,100", "--interval", "60s"];
    args.extend_from_slice(&FAST[2..]);
    let mut child = s.promote(&args);
    let mut events = Events::of(&mut child);
    events.until("live").await;
    assert_eq!(s.setting("canary").await.as_deref(), Some("30"));
    let pid = child.id().expect("pid") as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGTERM)
        .expect("signal");
    let done = events.finish(child).await;
    let load = load.finish().await;
    assert_eq!(done.code, 143, "{done:?}");
    assert!(done.has("rolled-back") == 1, "{done:?}");
    assert_no_failures(&load);
    s.back_on_blue().await;
}

#[tokio::test]
async fn a_second_promotion_exits_4_and_rollback_aborts_the_first() {
    let s = Stack::start(0, 0).await;
    let load = s.load();
    let mut args = vec!["--steps", "25,100", "--interval", "60s"];
    args.extend_from_slice(&FAST[2..]);
    let mut first = s.promote(&args);
    let mut events = Events::of(&mut first);
    events.until("live").await;
    let second = finish(s.promote(&args)).await;
    assert_eq!(second.code, 4, "{second:?}");
    assert!(
        second.stderr.contains("already being promoted"),
        "{second:?}"
    );
    // flip and canary refuse while it runs.
    let (code, out) = cli_async(&s.consul, &["canary", &s.svc, "50"]).await;
    assert_eq!(code, 4, "{out}");
    let (code, out) = cli_async(&s.consul, &["rollback", &s.svc, "--wait-live", "20"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("aborted"), "{out}");
    let done = events.finish(first).await;
    let load = load.finish().await;
    assert_eq!(done.code, 6, "{done:?}");
    assert!(done.has("aborted") >= 1, "{done:?}");
    assert_no_failures(&load);
    s.back_on_blue().await;
    assert!(s.history().await.contains("promote-aborted"));
}

#[tokio::test]
async fn a_killed_cli_leaves_its_step_and_status_says_so() {
    let s = Stack::start(0, 0).await;
    let mut args = vec!["--steps", "40,100", "--interval", "60s"];
    args.extend_from_slice(&FAST[2..]);
    let mut child = s.promote(&args);
    Events::of(&mut child).until("live").await;
    child.start_kill().expect("kill");
    let _ = child.wait().await;
    assert_eq!(s.setting("canary").await.as_deref(), Some("40"), "stays");
    // Once Consul lets the CLI's session go, status calls the promotion interrupted.
    eventually(
        Duration::from_secs(45),
        "status says interrupted",
        || async {
            let (code, out) = cli_async(&s.consul, &["status", &s.svc]).await;
            anyhow::ensure!(code == 0, "{out}");
            anyhow::ensure!(
                out.contains("promotion of green") && out.contains("40%"),
                "{out}"
            );
            anyhow::ensure!(out.contains("INTERRUPTED"), "{out}");
            Ok(())
        },
    )
    .await;
    let (code, out) = cli_async(&s.consul, &["rollback", &s.svc, "--wait-live", "20"]).await;
    assert_eq!(code, 0, "{out}");
    s.back_on_blue().await;
}

#[tokio::test]
async fn a_window_never_holds_traffic_an_edge_served_before_it_took_the_step() {
    let s = Stack::start(0, 0).await;
    // A second edge on plain nginx that will lag: its nginx master stopped, it cannot take the
    // step (no reload), while its workers keep serving the old weights (all blue) and its
    // templater keeps publishing what they count.
    let lagging = NginxServer::start().await;
    let b = start_templater(&s.consul, &lagging, &[]);
    testkit::eventually(
        WAIT,
        "the second edge serves blue and reports it",
        || async {
            let body = testkit::http::get(lagging.port, &s.host).await?;
            anyhow::ensure!(body.starts_with("blue"), "{body}");
            let (_, status) = cli_async(&s.consul, &["status", &s.svc]).await;
            anyhow::ensure!(status.contains(&format!("edge {}:", b.name)), "{status}");
            Ok(())
        },
    )
    .await;
    let master = nix::unistd::Pid::from_raw(lagging.master_pid() as i32);
    nix::sys::signal::kill(master, nix::sys::signal::SIGSTOP).expect("stop nginx's master");
    let mut child = s.promote(&[
        "--steps",
        "50",
        "--interval",
        "3s",
        "--min-requests",
        "10",
        "--max-wait",
        "40s",
    ]);
    let mut events = Events::of(&mut child);
    events.until("step").await;
    // Both edges publish their traffic now (a promotion runs); the lagging one as of the old
    // settings. Then 300 requests at the old weights on it, after the step was set.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stale = testkit::http::tally(lagging.port, &s.host, 300).await;
    assert!(stale.keys().all(|k| k.starts_with("blue")), "{stale:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    nix::sys::signal::kill(master, nix::sys::signal::SIGCONT).expect("resume nginx's master");
    let live = events.until("live").await;
    let message = live["message"].as_str().unwrap_or_default();
    assert!(message.contains(&b.name), "both edges serve it: {live}");
    // Under the step's weights on both edges: 40 requests each, half green.
    let a = testkit::http::tally(s.edge.nginx().port, &s.host, 40).await;
    let b = testkit::http::tally(lagging.port, &s.host, 40).await;
    let passed = events.until("passed").await;
    let (green, blue) = (
        passed["canary"]["requests"].as_u64().unwrap_or(0),
        passed["baseline"]["requests"].as_u64().unwrap_or(0),
    );
    assert!(green >= 10, "{passed}");
    assert!(
        green + blue <= 80,
        "the window holds requests from before the lagging edge took the step: {passed} \
         (after: {a:?} {b:?})"
    );
    let promoted = events.until("result").await;
    assert_eq!(promoted["outcome"], "promoted", "{promoted}");
    let status = child.wait().await.expect("exit");
    assert_eq!(status.code(), Some(0));
}
