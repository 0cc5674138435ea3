//! gliderlabs' checks and exits: `CHECK_CMD` as a script check inside the container (on an agent
//! with script checks on; dropped with a warning on one without), `CHECK_HTTP_METHOD`, and
//! signal exits counting as clean under `-deregister on-success`.

mod common;

use common::{instances, status_becomes, Registrator, WAIT};
use serde_json::Value;
use testkit::{eventually, serve_until_cue, unique, ConsulAgent, Container, TestImage};

fn run(prefix: &str, labels: &[&str]) -> Container {
    let mut args = vec!["-p", "80"];
    for l in labels {
        args.extend(["-l", l]);
    }
    args.push(TestImage::ensure());
    Container::run(prefix, &args)
}

/// The agent's definition of the label check of `service_id`.
async fn check_of(consul: &ConsulAgent, service_id: &str) -> Value {
    let checks = consul.get("/v1/agent/checks").await.expect("checks");
    checks
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .find(|c| {
            c["ServiceID"] == service_id && !c["CheckID"].as_str().unwrap_or("").starts_with('_')
        })
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn check_cmd_runs_inside_the_container_on_an_agent_with_script_checks() {
    let consul = ConsulAgent::start_with(&["-hcl", "enable_script_checks = true"]).await;
    let reg = Registrator::start(&consul, &[]);
    let (good, bad) = (unique("cmdok"), unique("cmdfail"));
    let g = run(
        "g",
        &[
            &format!("SERVICE_NAME={good}"),
            "SERVICE_CHECK_CMD=test -d /bin",
            "SERVICE_CHECK_INTERVAL=1s",
        ],
    );
    let _b = run(
        "b",
        &[
            &format!("SERVICE_NAME={bad}"),
            // Consul's script checks: exit 0 passing, 1 warning, anything else critical. A
            // check starts critical until its first run, so only an exit ≥ 2 stays critical.
            "SERVICE_CHECK_CMD=test -d /nope || { echo no /nope here; exit 2; }",
            "SERVICE_CHECK_INTERVAL=1s",
        ],
    );
    status_becomes(&consul, &good, "passing").await;
    // Ran (inside the container: /nope is not there) and failed, not just not run yet.
    testkit::eventually(
        std::time::Duration::from_secs(20),
        "the failing check ran",
        || async {
            let check = check_of(&consul, &format!("{}:{}:80", reg.node, _b.name)).await;
            let output = check["Output"].as_str().unwrap_or_default();
            anyhow::ensure!(
                check["Status"] == "critical" && output.contains("no /nope here"),
                "{check}"
            );
            Ok(())
        },
    )
    .await;
    status_becomes(&consul, &bad, "critical").await;
    let check = check_of(&consul, &format!("{}:{}:80", reg.node, g.name)).await;
    assert_eq!(check["Type"], "script", "{check}");
    let [entry] = instances(&consul, &good, 1).await.try_into().expect("one");
    assert_eq!(entry["Service"]["Meta"]["check_cmd"], "test -d /bin");
}

#[tokio::test]
async fn an_agent_without_script_checks_gets_the_service_without_them_and_a_warning() {
    let consul = ConsulAgent::start().await;
    let reg = Registrator::start(&consul, &[]);
    let name = unique("noscripts");
    let _c = run(
        "n",
        &[&format!("SERVICE_NAME={name}"), "SERVICE_CHECK_CMD=true"],
    );
    status_becomes(&consul, &name, "passing").await;
    eventually(WAIT, "the refusal is named", || async {
        let log = reg.log();
        anyhow::ensure!(log.contains("refuses script checks"), "{log}");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn http_check_method_is_passed_on() {
    let consul = ConsulAgent::start().await;
    let reg = Registrator::start(&consul, &[]);
    let name = unique("head");
    let c = run(
        "h",
        &[
            &format!("SERVICE_NAME={name}"),
            "SERVICE_80_CHECK_HTTP=/",
            "SERVICE_80_CHECK_HTTP_METHOD=HEAD",
        ],
    );
    let id = format!("{}:{}:80", reg.node, c.name);
    eventually(WAIT, "the check runs with the method", || async {
        // Consul 1.8 shows no check definition; its output names the method it used.
        let check = check_of(&consul, &id).await;
        let output = check["Output"].as_str().unwrap_or_default();
        anyhow::ensure!(output.starts_with("HTTP HEAD "), "{check}");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn on_success_counts_signal_exits_as_clean_and_keeps_failures_in_maintenance() {
    let consul = ConsulAgent::start().await;
    let _reg = Registrator::start(&consul, &["-deregister", "on-success"]);
    let (killed, failed) = (unique("killed"), unique("failed"));
    let k = run("k", &[&format!("SERVICE_NAME={killed}")]);
    let f = Container::run(
        "f",
        &[
            "-p",
            "80",
            "-l",
            &format!("SERVICE_NAME={failed}"),
            TestImage::ensure(),
            "sh",
            "-c",
            &serve_until_cue(3),
        ],
    );
    status_becomes(&consul, &killed, "passing").await;
    status_becomes(&consul, &failed, "passing").await;
    // docker kill: exit 137, the signal bit set — clean for gliderlabs, deregistered.
    k.kill("KILL");
    instances(&consul, &killed, 0).await;
    f.cue();
    // Exit 3 (no signal): deliberately kept, in maintenance — no traffic to a dead container.
    status_becomes(&consul, &failed, "critical").await;
    drop(f);
}
