//! What the suites wait for and assert, the same for every stack: passing instances per colour in
//! Consul, and what nginx answers (the demo app answers "<colour> <container hostname>").

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use swarmgate_consul::Client;
use testkit::eventually;
use testkit::http::tally;

use crate::compose::instances;

/// The virtual host the app is served on (templater's default domain).
pub const HOST: &str = "app.localhost";
/// The longest any step may take on a busy machine.
pub const WAIT: Duration = Duration::from_secs(90);

/// Waits until `consul` has exactly `n` passing instances of `app` in `color`.
pub async fn passing(consul: &Client, color: &str, n: usize) {
    eventually(WAIT, &format!("{n} passing {color} instances"), || async {
        let all = instances(consul, "app", true).await?;
        let got = all
            .iter()
            .filter(|e| e.service.tags.iter().flatten().any(|t| t == color))
            .count();
        anyhow::ensure!(got == n, "{got} passing");
        Ok(())
    })
    .await;
}

/// The answers of `n` requests through nginx at `port`: counts by colour (failures count under
/// "error: …") and the containers that answered.
pub async fn answers(port: u16, n: usize) -> (BTreeMap<String, usize>, BTreeSet<String>) {
    let mut colors = BTreeMap::new();
    let mut containers = BTreeSet::new();
    for (body, count) in tally(port, HOST, n).await {
        if body.starts_with("error:") {
            *colors.entry(body).or_insert(0) += count;
            continue;
        }
        let mut words = body.split_whitespace();
        let color = words.next().unwrap_or_default().to_string();
        if let Some(host) = words.next() {
            containers.insert(host.to_string());
        }
        *colors.entry(color).or_insert(0) += count;
    }
    (colors, containers)
}

/// Waits until `n` requests in a row all answer `color`.
pub async fn serves_only(port: u16, color: &str, n: usize) {
    eventually(WAIT, &format!("all traffic to {color}"), || async {
        let (colors, _) = answers(port, n).await;
        anyhow::ensure!(
            colors.len() == 1 && colors.contains_key(color),
            "{colors:?}"
        );
        Ok(())
    })
    .await;
}

/// Waits until requests reach exactly `n` distinct containers; answers them.
pub async fn rotation_becomes(port: u16, n: usize) -> BTreeSet<String> {
    eventually(WAIT, &format!("{n} containers in rotation"), || async {
        let (colors, containers) = answers(port, 20 * n.max(1)).await;
        anyhow::ensure!(containers.len() == n, "{containers:?} {colors:?}");
        Ok(containers)
    })
    .await
}

/// The output of a command that must succeed (exit 0), or a panic naming `what`.
pub fn ok(what: &str, (code, out): (i32, String)) -> String {
    assert_eq!(code, 0, "{what}: {out}");
    out
}
