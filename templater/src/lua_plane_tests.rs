//! The Lua plane's answers to what nginx's control endpoint says, against a scripted endpoint
//! (refusals, stale versions and a missing nginx on demand; the real nginx is in
//! tests/lua_plane.rs).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use swarmgate_consul::CheckStatus::Passing;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::nginx::Nginx;
use crate::plan::build;
use crate::render::{Page, Renderer, TemplateSpec};
use crate::state_doc::tests::{catalog, opts, settings, NoFiles};

/// A control endpoint answering each request with the next scripted `(status, body)`; the
/// requests it got (`METHOD body`) are kept.
struct Script {
    port: u16,
    got: Arc<Mutex<Vec<String>>>,
}

async fn script(answers: Vec<(u16, &'static str)>) -> Script {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    tokio::spawn(async move {
        for (status, body) in answers {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let request = read_request(&mut conn).await;
            seen.lock().expect("lock").push(request);
            let answer = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(answer.as_bytes()).await;
        }
    });
    Script { port, got }
}

/// `METHOD body` of one HTTP/1.1 request.
async fn read_request(conn: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= len {
                let method = head.split(' ').next().unwrap_or_default();
                return format!("{method} {body}");
            }
        }
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&buf).to_string(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn dir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "sg-lua-plane-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).expect("dir");
    d
}

async fn plane(dir: &Path, control: &str) -> LuaPlane {
    let tmpl = dir.join("up.j2");
    std::fs::write(&tmpl, "{% for s in services %}{{ s.name }}\n{% endfor %}").expect("tmpl");
    let specs = [TemplateSpec {
        source: Some(tmpl),
        name: "up.j2".into(),
        dest: dir.join("up.conf"),
    }];
    let page = Page {
        colors: opts().colors,
        domain: "localhost".into(),
        listen: 80,
        listen_tls: 443,
        dataplane: "lua",
        preview_header: "X-Swarmgate-Color".into(),
        preview_var: "http_x_swarmgate_color".into(),
        lua: None,
        traffic: None,
    };
    let nginx = Nginx {
        check: None,
        check_timeout: Duration::from_secs(1),
        pid_file: None,
    };
    let files = ReloadPlane::new(Renderer::load(&specs).expect("load"), page, nginx, false);
    let opts = LuaOptions {
        control: ControlAddr::parse(control).expect("addr"),
        state_file: dir.join("state.json"),
        lua_dir: dir.to_path_buf(),
        dict_size: "1m".into(),
    };
    LuaPlane::start(files, &opts).await.expect("start")
}

/// The plan of service `app`: blue b1 active, green g1 with `canary`.
fn plan(canary: u8) -> Plan {
    let cat = catalog(&[
        ("app", "b1", "10.0.0.1", 80, "blue", Passing),
        ("app", "g1", "10.0.0.2", 80, "green", Passing),
    ]);
    build(
        &cat,
        &settings("app", "blue", canary),
        &opts(),
        None,
        &NoFiles,
    )
}

fn file(dir: &Path) -> StateDoc {
    serde_json::from_slice(&std::fs::read(dir.join("state.json")).expect("state file"))
        .expect("a state document")
}

#[tokio::test]
async fn a_refused_push_keeps_the_last_good_state_and_is_a_refusal() {
    let nginx = script(vec![
        (200, r#"{"version":null,"services":{}}"#),
        (200, r#"{"version":1}"#),
        (
            400,
            r#"{"error":"services.app.peers[1].weight: out of range"}"#,
        ),
        (200, r#"{"version":3}"#),
    ])
    .await;
    let d = dir();
    let mut lua = plane(&d, &format!("127.0.0.1:{}", nginx.port)).await;
    let first = lua.apply(plan(0), &Plan::default()).await.expect("pushed");
    assert!(first.pushed);
    assert_eq!(first.live_version, Some(1));
    assert_eq!(file(&d), StateDoc::of(&first.plan, 1));

    let err = lua
        .apply(plan(10), &first.plan)
        .await
        .expect_err("nginx refuses it");
    assert!(matches!(err, ApplyError::PushRefused(_)), "{err:?}");
    assert!(err.refused(), "reported like a refused config");
    assert!(err.to_string().contains("weight: out of range"), "{err}");
    assert_eq!(
        file(&d),
        StateDoc::of(&first.plan, 1),
        "the state file is back to what nginx holds"
    );

    let again = lua.apply(plan(10), &first.plan).await.expect("taken now");
    assert_eq!(again.live_version, Some(3));
    let got = nginx.got.lock().expect("lock").clone();
    assert!(got[0].starts_with("GET"), "{got:?}");
    assert!(got[2].contains(r#""version":2"#), "{got:?}");
    assert!(
        got[3].contains(r#""version":3"#),
        "a refused version is not reused: {got:?}"
    );
}

#[tokio::test]
async fn versions_start_above_nginx_and_the_file_and_a_stale_push_goes_above() {
    let nginx = script(vec![
        (200, r#"{"version":9,"services":{}}"#),
        (409, r#"{"error":"stale","version":15}"#),
        (200, r#"{"version":16}"#),
    ])
    .await;
    let d = dir();
    std::fs::write(d.join("state.json"), r#"{"version":7,"services":{}}"#).expect("old file");
    let mut lua = plane(&d, &format!("127.0.0.1:{}", nginx.port)).await;
    let applied = lua.apply(plan(0), &Plan::default()).await.expect("pushed");
    let got = nginx.got.lock().expect("lock").clone();
    assert!(
        got[1].contains(r#""version":10"#),
        "above nginx's 9: {got:?}"
    );
    assert!(
        got[2].contains(r#""version":16"#),
        "above the held 15: {got:?}"
    );
    assert_eq!(applied.live_version, Some(16));
    assert_eq!(file(&d).version, 16);

    // The same plan again: nginx holds it; nothing is pushed (the script has no answer left).
    let same = lua.apply(plan(0), &applied.plan).await.expect("no push");
    assert!(!same.pushed);
    assert_eq!(same.live_version, Some(16));
}

#[tokio::test]
async fn an_unreachable_nginx_is_retried_and_finds_the_state_file_written() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let d = dir();
    let mut lua = plane(&d, &format!("127.0.0.1:{port}")).await;
    let err = lua
        .apply(plan(0), &Plan::default())
        .await
        .expect_err("nobody listens");
    assert!(matches!(err, ApplyError::Push(_)), "{err:?}");
    assert!(!err.refused(), "retried with backoff, not held as refused");
    let written = file(&d);
    assert_eq!(written.version, 1);
    assert!(written.services.contains_key("app"), "{written:?}");
}

#[tokio::test]
async fn an_nginx_that_lost_the_state_is_pushed_again() {
    let nginx = script(vec![
        (200, r#"{"version":null,"services":{}}"#),
        (200, r#"{"version":1}"#),
        (200, r#"{"version":1,"services":{}}"#),
        (200, r#"{"version":null,"services":{}}"#),
        (200, r#"{"version":2}"#),
    ])
    .await;
    let d = dir();
    let mut lua = plane(&d, &format!("127.0.0.1:{}", nginx.port)).await;
    let first = lua.apply(plan(0), &Plan::default()).await.expect("pushed");
    assert!(lua.verify().await, "nginx holds version 1");
    assert!(!lua.verify().await, "nginx restarted with nothing");
    let again = lua.apply(plan(0), &first.plan).await.expect("pushed again");
    assert!(again.pushed, "the same plan is pushed again");
    assert_eq!(again.live_version, Some(2));
}
