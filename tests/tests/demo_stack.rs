//! The single-host demo stack (compose/docker-compose.yml, the Lua data plane on OpenResty) as a
//! user drives it: blue serves, green comes up and registers, flips, an exact canary, rollback,
//! scaling, SIGKILL, 30 flips under keep-alive load with no failed request and no nginx reload,
//! and what Consul's UI shows. Once with the `docker compose` plugin (everything), once with
//! docker-compose v1 (up, flip, down).
//!
//! Both tests run one after the other: every registrator on a host registers every container on
//! that host, so two demo stacks at once would see each other's apps.

use std::collections::BTreeMap;

use swarmgate_consul::agent::ServiceRegistration;
use swarmgate_e2e::dashboard::{self, shows};
use swarmgate_e2e::expect::{answers, ok, rotation_becomes, serves_only, HOST};
use swarmgate_e2e::{expect, images, ComposeTool, Stack};
use testkit::browser::Browser;
use testkit::http::{get, Load};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn demo_stack_flips_canaries_scales_and_never_drops_a_request() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::up(ComposeTool::V2, &[("app-green", 0)]);

    // Blue serves, once a deploy step (in the edge container) made it active.
    expect::passing(&stack.consul, "blue", 2).await;
    ok(
        "flip to blue in the edge container",
        stack.templater_in_edge(&["flip", "app", "blue", "--wait-live", "30"]),
    );
    serves_only(stack.edge_port, "blue", 40).await;
    // In the Lua data plane a request without Upgrade sends no `Connection: close` upstream, so
    // the upstreams' keepalive connections are reused.
    let vhosts = stack.edge_file("/etc/nginx/swarmgate/swarmgate-vhosts.conf");
    assert!(vhosts.contains("''      \"\";"), "{vhosts}");

    // Green comes up, registers and passes its checks, and takes no traffic yet.
    stack.compose(&["up", "-d", "--scale", "app-green=2"]);
    expect::passing(&stack.consul, "green", 2).await;
    let (colors, _) = answers(stack.edge_port, 40).await;
    assert_eq!(colors, BTreeMap::from([("blue".to_string(), 40)]));

    // The edge's dashboard in a real browser shows the service, both colours and what is live.
    // The page is opened once: every later change must reach it without a reload.
    let url = format!("http://127.0.0.1:{}/", stack.dashboard_port);
    let mut browser = Browser::open(&url)
        .await
        .expect("chromium on the dashboard");
    browser
        .eval("window.sgOpenedOnce = 42")
        .await
        .expect("mark the page");
    let app = dashboard::service("app");
    shows(&mut browser, &app, "blue live, green registered", |t| {
        t.contains("active blue · canary 0%") && t.contains("green") && t.contains("blue")
    })
    .await;

    // What Consul's UI shows: each instance with its colour, container and image.
    let all = stack.instances("app", false).await.expect("instances");
    assert_eq!(all.len(), 4, "{all:?}");
    let image = format!("swarmgate/demo-app:{}", images::tag());
    for color in ["blue", "green"] {
        let ids = stack.containers(&format!("app-{color}"));
        for e in all
            .iter()
            .filter(|e| e.service.tags.iter().flatten().any(|t| t == color))
        {
            let meta = e.service.meta.clone().unwrap_or_default();
            assert_eq!(
                meta.get("color").map(String::as_str),
                Some(color),
                "{meta:?}"
            );
            assert_eq!(meta.get("image"), Some(&image), "{meta:?}");
            let id = meta.get("container-id").expect("container-id meta");
            assert!(
                ids.iter().any(|c| id.starts_with(c.as_str())),
                "{id} not in {ids:?}"
            );
            let name = meta.get("container-name").expect("container-name meta");
            assert!(name.contains(&stack.project.name), "{name}");
        }
    }

    // A flip from the host moves all traffic to green.
    ok(
        "flip from the host",
        stack.templater_on_host(&["flip", "app", "--wait-live", "30"]),
    );
    serves_only(stack.edge_port, "green", 40).await;

    // A 10% canary lands within ±3 points over 2,000 requests.
    ok(
        "canary 10",
        stack.templater_on_host(&["canary", "app", "10", "--wait-live", "30"]),
    );
    let (colors, _) = answers(stack.edge_port, 2000).await;
    let blue = colors.get("blue").copied().unwrap_or(0) as f64 / 20.0;
    assert_eq!(colors.values().sum::<usize>(), 2000);
    assert!((7.0..=13.0).contains(&blue), "blue got {blue}%: {colors:?}");
    let text = shows(&mut browser, &app, "the 10% canary", |t| {
        t.contains("active green · canary 10%")
    })
    .await;
    let share = |color: &str| {
        let row = text.lines().find(|l| l.starts_with(&format!("{color}\t")));
        row.and_then(|r| r.split('\t').nth(4)).map(str::to_string)
    };
    assert_eq!(
        (share("green").as_deref(), share("blue").as_deref()),
        (Some("90.0%"), Some("10.0%")),
        "{text}"
    );

    // Rollback returns to blue.
    ok(
        "rollback",
        stack.templater_on_host(&["rollback", "app", "--wait-live", "30"]),
    );
    serves_only(stack.edge_port, "blue", 40).await;
    shows(&mut browser, &app, "the rollback", |t| {
        t.contains("active blue · canary 0%")
    })
    .await;
    let history = shows(&mut browser, "section.history", "the deploys", |t| {
        t.contains("green + 10% canary")
    })
    .await;
    assert!(history.contains("app"), "{history}");

    // A hostile tag shows as text: nothing from Consul becomes markup or script on the page.
    let hostile = "<script>window.sgInjected=1</script><img src=x onerror=\"window.sgInjected=2\">";
    stack
        .consul
        .register_service(&ServiceRegistration {
            id: "hostile-1".into(),
            name: "hostile".into(),
            tags: vec![hostile.into()],
            address: "127.0.0.1".into(),
            port: 9,
            ..Default::default()
        })
        .await
        .expect("register a hostile service");
    shows(
        &mut browser,
        &dashboard::service("hostile"),
        "the hostile tag as text",
        |t| t.contains(hostile),
    )
    .await;
    let scripts = browser
        .eval("[document.scripts.length, document.images.length, window.sgInjected === undefined]")
        .await
        .expect("evaluate");
    assert_eq!(
        scripts,
        serde_json::json!([1, 0, true]),
        "markup from Consul ran"
    );
    assert_eq!(
        browser.eval("window.sgOpenedOnce").await.expect("evaluate"),
        42,
        "the page was reloaded: the dashboard must update in place"
    );
    drop(browser);
    stack
        .consul
        .deregister_service("hostile-1")
        .await
        .expect("deregister the hostile service");

    // Scaling blue up and down shows in nginx; a SIGKILLed container leaves rotation.
    stack.compose(&[
        "up",
        "-d",
        "--scale",
        "app-green=2",
        "--scale",
        "app-blue=3",
    ]);
    let three = rotation_becomes(stack.edge_port, 3).await;
    let victim = stack.containers("app-blue")[0].clone();
    testkit::docker::docker(&["kill", "-s", "KILL", &victim]);
    let two = rotation_becomes(stack.edge_port, 2).await;
    assert!(
        two.is_subset(&three) && !two.iter().any(|h| victim.starts_with(h.as_str())),
        "{victim} still in {two:?}"
    );
    expect::passing(&stack.consul, "blue", 2).await;
    stack.compose(&[
        "up",
        "-d",
        "--scale",
        "app-green=2",
        "--scale",
        "app-blue=1",
    ]);
    rotation_becomes(stack.edge_port, 1).await;
    stack.compose(&[
        "up",
        "-d",
        "--scale",
        "app-green=2",
        "--scale",
        "app-blue=2",
    ]);
    expect::passing(&stack.consul, "blue", 2).await;
    rotation_becomes(stack.edge_port, 2).await;

    // 30 flips under load, from clients on kept-alive connections (browsers, connection pools:
    // the ones a reload breaks) and clients on a new connection per request: not one request
    // fails, and nginx is not reloaded once (the Lua data plane takes every flip as a push).
    let reloads = stack.reloads().await;
    let kept = Load::keep_alive(stack.edge_port, HOST, 4);
    let fresh = Load::start(stack.edge_port, HOST, 2);
    for i in 0..30 {
        let color = if i % 2 == 0 { "green" } else { "blue" };
        ok(
            &format!("flip {i} to {color}"),
            stack.templater_on_host(&["flip", "app", color, "--wait-live", "30"]),
        );
    }
    let (kept, fresh) = (kept.finish().await, fresh.finish().await);
    let reloads = stack.reloads().await - reloads;
    eprintln!(
        "30 flips under load: keep-alive {} requests on {} connections, {} failed; new connection \
         per request {} requests, {} failed; {reloads} nginx reloads",
        kept.ok, kept.connections, kept.failed, fresh.ok, fresh.failed
    );
    assert_eq!((kept.failed, fresh.failed), (0, 0), "{kept:?} {fresh:?}");
    assert!(kept.ok > 100 && fresh.ok > 20, "{kept:?} {fresh:?}");
    assert!(
        kept.connections * 10 < kept.ok,
        "connections were not kept alive: {kept:?}"
    );
    assert_eq!(reloads, 0.0, "flips reloaded nginx");
    serves_only(stack.edge_port, "blue", 20).await;

    let status = ok("status", stack.templater_on_host(&["status", "app"]));
    assert!(status.contains("blue"), "{status}");

    // A bad release: green answers half of its requests 500. `promote` rolls it back at its
    // first step by itself (exit 6), and users saw failures from that step's share only.
    stack.recreate_green(2, 50).await;
    let load = Load::start(stack.edge_port, HOST, 4);
    let (code, out) = stack.templater_on_host(&[
        "promote",
        "app",
        "green",
        "--steps",
        "10,50,100",
        "--interval",
        "3s",
        "--min-requests",
        "30",
        "--max-wait",
        "60s",
    ]);
    let users = load.finish().await;
    assert_eq!(code, 6, "{out}");
    assert!(
        out.contains("step 1/3 10%: failed") && out.contains("green: 5xx"),
        "{out}"
    );
    serves_only(stack.edge_port, "blue", 20).await;
    let seen = users.ok + users.failed;
    eprintln!(
        "bad release: users saw {} failed of {seen} requests",
        users.failed
    );
    assert!(
        users.failed * 100 <= seen * 8,
        "more failures than the 10% step's share of a 50% failure: {users:?}"
    );

    // A good release goes through every step under load and ends active, no request failed.
    stack.recreate_green(2, 0).await;
    let load = Load::start(stack.edge_port, HOST, 4);
    let (code, out) = stack.templater_on_host(&[
        "promote",
        "app",
        "--steps",
        "20,100",
        "--interval",
        "3s",
        "--min-requests",
        "30",
    ]);
    let users = load.finish().await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(users.failed, 0, "{users:?}");
    serves_only(stack.edge_port, "green", 20).await;
    let history = ok("history", stack.templater_on_host(&["history", "app"]));
    assert!(
        history.contains("promote-failed") && history.contains("promote-passed"),
        "{history}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_stack_runs_under_docker_compose_v1() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::up(ComposeTool::V1, &[]);
    expect::passing(&stack.consul, "blue", 2).await;
    expect::passing(&stack.consul, "green", 2).await;
    ok(
        "flip to blue",
        stack.templater_in_edge(&["flip", "app", "blue", "--wait-live", "30"]),
    );
    serves_only(stack.edge_port, "blue", 20).await;
    ok(
        "flip to green",
        stack.templater_in_edge(&["flip", "app", "--wait-live", "30"]),
    );
    serves_only(stack.edge_port, "green", 20).await;
    assert!(get(stack.edge_port, "nothing.localhost").await.is_err());
}
