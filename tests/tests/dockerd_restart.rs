//! The Docker daemon itself restarted under a running registrator: every container stops with
//! it (no live-restore), the event stream ends, and only containers with a restart policy come
//! back. The registrator must stay up, resubscribe, and leave Consul holding exactly what runs.
//!
//! A test binary of its own: restarting dockerd stops every container on the host, so nothing
//! else may run beside it (cargo runs test binaries one after another).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use swarmgate_e2e::images::bin;
use testkit::daemons::registrator;
use testkit::report::secs;
use testkit::{eventually, unique, ConsulAgent, Container, TestImage};

const WAIT: Duration = Duration::from_secs(60);

/// Stops dockerd (SIGTERM, as an init system would) and starts it again with the same command
/// line, detached; waits until it answers. Answers when it was stopped and when it answered.
async fn restart_dockerd() -> (Instant, Instant) {
    // The running dockerd, found in /proc (no procps needed).
    let pid = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "dockerd")
        })
        .expect("a running dockerd");
    let cmdline: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
        .expect("dockerd's command line")
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let stopped = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    eventually(WAIT, "dockerd stopped", || async {
        anyhow::ensure!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "still up"
        );
        Ok(())
    })
    .await;
    let log = std::fs::File::create("/tmp/dockerd-restarted.log").expect("log");
    Command::new("setsid")
        .arg("-f")
        .args(&cmdline)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .status()
        .expect("start dockerd again");
    eventually(WAIT, "dockerd answers again", || async {
        let ok = Command::new("docker")
            .arg("info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?
            .success();
        anyhow::ensure!(ok, "not yet");
        Ok(())
    })
    .await;
    (stopped, Instant::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerd_restart_is_survived_and_reconciled() {
    let row = testkit::report::Row::start(
        "dockerd restarted (SIGTERM, started again; no live-restore)",
        "the registrator stays up and resubscribes; the container without a restart policy is deregistered, the one with `--restart always` is registered again at its new port",
    );
    let consul = ConsulAgent::start().await;
    let mut reg = registrator(
        &bin("registrator"),
        &unique("node"),
        &consul.uri(),
        &[
            "-cleanup",
            "-retry-attempts",
            "-1",
            "-retry-interval",
            "200",
        ],
        &[],
    );
    let (comes_back, stays_down) = (unique("always"), unique("once"));
    let image = TestImage::ensure();
    let always = Container::run(
        "always",
        &[
            "--restart",
            "always",
            "-p",
            "80",
            "-l",
            &format!("SERVICE_NAME={comes_back}"),
            image,
        ],
    );
    let _once = Container::run(
        "once",
        &[
            "-p",
            "80",
            "-l",
            &format!("SERVICE_NAME={stays_down}"),
            image,
        ],
    );
    let count = |name: String| {
        let consul = &consul;
        async move { consul.instances(&name).await.map(|v| v.len()) }
    };
    eventually(WAIT, "both registered", || async {
        anyhow::ensure!(count(comes_back.clone()).await? == 1, "always");
        anyhow::ensure!(count(stays_down.clone()).await? == 1, "once");
        Ok(())
    })
    .await;

    let (stopped, answered) = restart_dockerd().await;
    eventually(WAIT, "Consul holds exactly what runs", || async {
        anyhow::ensure!(
            count(comes_back.clone()).await? == 1,
            "restarted container missing"
        );
        anyhow::ensure!(
            count(stays_down.clone()).await? == 0,
            "stopped container still there"
        );
        Ok(())
    })
    .await;
    let (down, converged) = (answered - stopped, answered.elapsed());
    // The restarted container is registered at its new published port.
    let port = testkit::docker::docker(&["port", &always.name, "80"]);
    let entries = consul.instances(&comes_back).await.expect("instances");
    let want: u64 = port
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("published port");
    assert_eq!(
        entries[0]["Service"]["Port"].as_u64(),
        Some(want),
        "{entries:?}"
    );
    assert!(
        reg.alive(),
        "the registrator must survive dockerd restarting:\n{}",
        reg.log()
    );
    assert!(reg.log().contains("resubscribing"), "{}", reg.log());
    row.pass(&format!(
        "dockerd down {}; Consul matched the running containers {} after it answered again",
        secs(down),
        secs(converged)
    ));
}
