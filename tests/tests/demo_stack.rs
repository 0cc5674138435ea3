//! The single-host demo stack (compose/docker-compose.yml) as a user drives it: blue serves,
//! green comes up and registers, flips, an exact canary, rollback, scaling, SIGKILL, 30 flips
//! under load with no failed request, and what Consul's UI shows. Once with the `docker compose`
//! plugin (everything), once with docker-compose v1 (up, flip, down).
//!
//! Both tests run one after the other: every registrator on a host registers every container on
//! that host, so two demo stacks at once would see each other's apps.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use swarmgate_e2e::{images, ComposeTool, Stack};
use testkit::eventually;
use testkit::http::{get, tally, Load};

const HOST: &str = "app.localhost";
const WAIT: Duration = Duration::from_secs(90);
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits until Consul has exactly `n` passing instances of `app` in `color`.
async fn passing(stack: &Stack, color: &str, n: usize) {
    eventually(WAIT, &format!("{n} passing {color} instances"), || async {
        let all = stack.instances("app", true).await?;
        let got = all
            .iter()
            .filter(|e| e.service.tags.iter().flatten().any(|t| t == color))
            .count();
        anyhow::ensure!(got == n, "{got} passing");
        Ok(())
    })
    .await;
}

/// The answers of `n` requests by colour and by container (the app answers "<colour> <host>").
async fn answers(stack: &Stack, n: usize) -> (BTreeMap<String, usize>, BTreeSet<String>) {
    let mut colors = BTreeMap::new();
    let mut containers = BTreeSet::new();
    for (body, count) in tally(stack.edge_port, HOST, n).await {
        let mut words = body.split_whitespace();
        let color = words.next().unwrap_or_default().to_string();
        if let Some(host) = words.next().filter(|_| !color.starts_with("error")) {
            containers.insert(host.to_string());
        }
        *colors.entry(color).or_insert(0) += count;
    }
    (colors, containers)
}

/// Waits until `n` requests in a row all answer `color`.
async fn serves_only(stack: &Stack, color: &str, n: usize) {
    eventually(WAIT, &format!("all traffic to {color}"), || async {
        let (colors, _) = answers(stack, n).await;
        anyhow::ensure!(
            colors.len() == 1 && colors.contains_key(color),
            "{colors:?}"
        );
        Ok(())
    })
    .await;
}

/// Waits until requests reach exactly `n` distinct containers.
async fn rotation_becomes(stack: &Stack, n: usize) -> BTreeSet<String> {
    eventually(WAIT, &format!("{n} containers in rotation"), || async {
        let (colors, containers) = answers(stack, 20 * n.max(1)).await;
        anyhow::ensure!(containers.len() == n, "{containers:?} {colors:?}");
        Ok(containers)
    })
    .await
}

fn ok(what: &str, (code, out): (i32, String)) -> String {
    assert_eq!(code, 0, "{what}: {out}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn demo_stack_flips_canaries_scales_and_never_drops_a_request() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::up(ComposeTool::V2, "docker-compose.yml", &[("app-green", 0)]);

    // Blue serves, once a deploy step (in the edge container) made it active.
    passing(&stack, "blue", 2).await;
    ok(
        "flip to blue in the edge container",
        stack.templater_in_edge(&["flip", "app", "blue", "--wait-live", "30"]),
    );
    serves_only(&stack, "blue", 40).await;

    // Green comes up, registers and passes its checks, and takes no traffic yet.
    stack.compose(&["up", "-d", "--scale", "app-green=2"]);
    passing(&stack, "green", 2).await;
    let (colors, _) = answers(&stack, 40).await;
    assert_eq!(colors, BTreeMap::from([("blue".to_string(), 40)]));

    // What Consul's UI shows: each instance with its colour, container and image.
    let all = stack.instances("app", false).await.expect("instances");
    assert_eq!(all.len(), 4, "{all:?}");
    let image = format!("swarmgate/demo-app:{}", images::TAG);
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
            assert!(name.contains(&stack.project), "{name}");
        }
    }

    // A flip from the host moves all traffic to green.
    ok(
        "flip from the host",
        stack.templater_on_host(&["flip", "app", "--wait-live", "30"]),
    );
    serves_only(&stack, "green", 40).await;

    // A 10% canary lands within ±3 points over 2,000 requests.
    ok(
        "canary 10",
        stack.templater_on_host(&["canary", "app", "10", "--wait-live", "30"]),
    );
    let (colors, _) = answers(&stack, 2000).await;
    let blue = colors.get("blue").copied().unwrap_or(0) as f64 / 20.0;
    assert_eq!(colors.values().sum::<usize>(), 2000);
    assert!((7.0..=13.0).contains(&blue), "blue got {blue}%: {colors:?}");

    // Rollback returns to blue.
    ok(
        "rollback",
        stack.templater_on_host(&["rollback", "app", "--wait-live", "30"]),
    );
    serves_only(&stack, "blue", 40).await;

    // Scaling blue up and down shows in nginx; a SIGKILLed container leaves rotation.
    stack.compose(&[
        "up",
        "-d",
        "--scale",
        "app-green=2",
        "--scale",
        "app-blue=3",
    ]);
    let three = rotation_becomes(&stack, 3).await;
    let victim = stack.containers("app-blue")[0].clone();
    testkit::docker::docker(&["kill", "-s", "KILL", &victim]);
    let two = rotation_becomes(&stack, 2).await;
    assert!(
        two.is_subset(&three) && !two.iter().any(|h| victim.starts_with(h.as_str())),
        "{victim} still in {two:?}"
    );
    passing(&stack, "blue", 2).await;
    stack.compose(&[
        "up",
        "-d",
        "--scale",
        "app-green=2",
        "--scale",
        "app-blue=1",
    ]);
    rotation_becomes(&stack, 1).await;
    stack.compose(&[
        "up",
        "-d",
        "--scale",
        "app-green=2",
        "--scale",
        "app-blue=2",
    ]);
    passing(&stack, "blue", 2).await;
    rotation_becomes(&stack, 2).await;

    // 30 flips under load, a new connection per request: not one request fails.
    let load = Load::start(stack.edge_port, HOST, 4);
    for i in 0..30 {
        let color = if i % 2 == 0 { "green" } else { "blue" };
        ok(
            &format!("flip {i} to {color}"),
            stack.templater_on_host(&["flip", "app", color, "--wait-live", "30"]),
        );
    }
    let totals = load.finish().await;
    assert_eq!(totals.failed, 0, "{totals:?}");
    assert!(totals.ok > 100, "{totals:?}");
    eprintln!("30 flips under load: {} requests, 0 failed", totals.ok);
    serves_only(&stack, "blue", 20).await;

    let status = ok("status", stack.templater_on_host(&["status", "app"]));
    assert!(status.contains("blue"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_stack_runs_under_docker_compose_v1() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::up(ComposeTool::V1, "docker-compose.yml", &[]);
    passing(&stack, "blue", 2).await;
    passing(&stack, "green", 2).await;
    ok(
        "flip to blue",
        stack.templater_in_edge(&["flip", "app", "blue", "--wait-live", "30"]),
    );
    serves_only(&stack, "blue", 20).await;
    ok(
        "flip to green",
        stack.templater_in_edge(&["flip", "app", "--wait-live", "30"]),
    );
    serves_only(&stack, "green", 20).await;
    assert!(get(stack.edge_port, "nothing.localhost").await.is_err());
}
