//! Faults and hostile input across both daemons, real Consul, Docker and nginx: a minute without
//! Consul, the templater SIGKILLed mid-install again and again, Consul over TLS with client
//! certificates, and labels and KV values crafted to inject nginx syntax. Each scenario records
//! a row of the fault report (testkit::report).

use std::process::Command;
use std::time::{Duration, Instant};

use swarmgate_e2e::compose::templater_on_host;
use swarmgate_e2e::images::bin;
use testkit::daemons::{registrator, templater};
use testkit::http::{get, Load};
use testkit::report::secs;
use testkit::{eventually, unique, ConsulAgent, Container, NginxServer, TestImage};

const WAIT: Duration = Duration::from_secs(30);

/// An app container registered as `name` (public: served on `<name>.localhost`).
fn app(prefix: &str, name: &str, extra: &[&str]) -> Container {
    let mut args = vec![
        "-p".to_string(),
        "80".into(),
        "-l".into(),
        format!("SERVICE_NAME={name}"),
        "-l".into(),
        "SERVICE_TAGS=public".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(TestImage::ensure().into());
    Container::run(prefix, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The containers (hostnames) nginx reaches for `host`, over `n` requests.
async fn answering(port: u16, host: &str, n: usize) -> std::collections::BTreeSet<String> {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..n {
        if let Ok(body) = get(port, host).await {
            if let Some(h) = body.split_whitespace().nth(1) {
                seen.insert(h.to_string());
            }
        }
    }
    seen
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

fn nginx_check(nginx: &NginxServer) -> (bool, String) {
    let out = Command::new("sh")
        .args(["-c", &nginx.check_command()])
        .output()
        .expect("nginx -t");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_minute_without_consul_loses_nothing() {
    let outage = Duration::from_secs(
        std::env::var("SWARMGATE_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let row = testkit::report::Row::start(
        &format!("Consul unreachable for {} s while containers start and stop", outage.as_secs()),
        "both daemons stay up; nginx keeps the last good config; catalog, KV and nginx converge when Consul returns (empty)",
    );
    let mut consul = ConsulAgent::start().await;
    let nginx = NginxServer::start().await;
    let mut reg = registrator(
        &bin("registrator"),
        &unique("node"),
        &consul.uri(),
        &["-retry-attempts", "-1", "-retry-interval", "200"],
        &[],
    );
    let mut edge = templater(&bin("templater"), &consul.url(), &nginx, &[], &[]);
    let svc = unique("outage");
    let host = format!("{svc}.localhost");
    let stay = [app("stay", &svc, &[]), app("stay", &svc, &[])];
    let leaves = app("leaves", &svc, &[]);
    let all3: std::collections::BTreeSet<String> =
        stay.iter().chain([&leaves]).map(|c| short(&c.id)).collect();
    eventually(WAIT, "nginx serves all three", || async {
        let seen = answering(nginx.port, &host, 30).await;
        anyhow::ensure!(seen == all3, "{seen:?}");
        Ok(())
    })
    .await;
    let conf = nginx.conf_d().join("swarmgate-upstreams.conf");
    let before = std::fs::read(&conf).expect("upstreams");

    let load = Load::start(nginx.port, &host, 2);
    consul.stop();
    leaves.stop();
    let arrives = app("arrives", &svc, &[]);
    tokio::time::sleep(outage).await;
    assert!(
        reg.alive(),
        "registrator died during the outage:\n{}",
        reg.log()
    );
    assert!(
        edge.alive(),
        "templater died during the outage:\n{}",
        edge.log()
    );
    assert_eq!(
        std::fs::read(&conf).expect("upstreams"),
        before,
        "the last good config must stay through the outage"
    );

    consul.restart().await;
    let back = Instant::now();
    let want: std::collections::BTreeSet<String> = stay
        .iter()
        .chain([&arrives])
        .map(|c| short(&c.id))
        .collect();
    eventually(WAIT, "catalog and nginx converge", || async {
        let seen = answering(nginx.port, &host, 30).await;
        anyhow::ensure!(seen == want, "{seen:?}");
        anyhow::ensure!(consul.instances(&svc).await?.len() == 3, "catalog");
        Ok(())
    })
    .await;
    let converged = back.elapsed();
    let totals = load.finish().await;
    assert_eq!(totals.failed, 0, "{totals:?}");
    row.pass(&format!(
            "converged {} after Consul returned (the templater holds its last view for --hold 5s while Consul refills); {} requests, {} failed",
            secs(converged),
            totals.ok,
            totals.failed
        ));
}

/// True while the templater is between writing and settling an install (journal or temp file).
fn install_in_progress(nginx: &NginxServer) -> bool {
    std::fs::read_dir(nginx.conf_d()).is_ok_and(|dir| {
        dir.flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.ends_with("swarmgate-prev") || name.ends_with("swarmgate-tmp")
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn templater_sigkilled_mid_install_leaves_a_complete_valid_config() {
    let consul = ConsulAgent::start().await;
    let nginx = NginxServer::start().await;
    // Churn: a service whose instances change every few milliseconds, so installs never stop.
    let churn = {
        let http = consul.http.clone();
        let url = consul.url();
        tokio::spawn(async move {
            for i in 0u32.. {
                let body = serde_json::json!({
                    "ID": format!("churn-{}", i % 40), "Name": format!("churn{}", i % 7),
                    "Address": "127.0.0.1", "Port": 10000 + i % 5000, "Tags": ["public"],
                    "Meta": {"note": format!("rev {i}")}
                });
                let _ = http
                    .put(format!("{url}/v1/agent/service/register"))
                    .json(&body)
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    let kills = 30;
    let row = testkit::report::Row::start(
        &format!("templater SIGKILLed {kills} times during installs"),
        "after every kill, the files nginx includes pass `nginx -t`, are whole (balanced braces, final newline); the next start recovers",
    );
    let mut installs_seen = 0;
    let mut rolled_back = 0;
    let interrupted = "rolled back an install interrupted";
    for i in 0..kills {
        let mut edge = templater(
            &bin("templater"),
            &consul.url(),
            &nginx,
            &[],
            &["--wait", "0ms:20ms"],
        );
        if i % 2 == 0 {
            // Aim: kill the moment an install is under way (its journal or temp file exists).
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline && !install_in_progress(&nginx) {
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(150 + (i * 37 % 300) as u64)).await;
        }
        edge.signal("KILL");
        edge.wait();
        installs_seen += edge.log().matches("installed").count();
        rolled_back += edge.log().matches(interrupted).count();
        let (ok, err) = nginx_check(&nginx);
        assert!(ok, "after kill {i} nginx -t fails: {err}\n{}", edge.log());
        for entry in std::fs::read_dir(nginx.conf_d()).expect("conf.d") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "conf") {
                let text = std::fs::read_to_string(&path).expect("read");
                assert_eq!(
                    text.matches('{').count(),
                    text.matches('}').count(),
                    "{} is cut short after kill {i}",
                    path.display()
                );
                assert!(text.ends_with('\n'), "{} is cut short", path.display());
            }
        }
    }
    churn.abort();
    // A last start recovers whatever journal the last kill left, and serves.
    let edge = templater(&bin("templater"), &consul.url(), &nginx, &[], &[]);
    eventually(WAIT, "the last templater installs", || async {
        anyhow::ensure!(edge.log().contains("installed"), "not yet");
        Ok(())
    })
    .await;
    assert!(nginx_check(&nginx).0);
    rolled_back += edge.log().matches(interrupted).count();
    assert!(
        rolled_back > 0,
        "no kill landed mid-install ({installs_seen} installs seen): the scenario proved nothing"
    );
    row.pass(&format!(
            "{kills} kills over {installs_seen} installs ({rolled_back} caught mid-install, rolled back at the next start), 0 invalid configs"
        ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consul_over_tls_with_client_certificates() {
    let row = testkit::report::Row::start(
        "Consul over TLS, client certificates required (CA and certificates made by the test)",
        "registrator via consul-tls:// and CONSUL_CACERT/CLIENT_CERT/CLIENT_KEY, templater via --ca-cert/--client-cert/--client-key: a container is served; without a client certificate or the CA the CLI fails and says why",
    );
    let dir = std::env::temp_dir().join(unique("tls"));
    std::fs::create_dir_all(&dir).expect("tls dir");
    let consul_bin = testkit::tool("consul");
    for args in [
        vec!["tls", "ca", "create"],
        vec![
            "tls",
            "cert",
            "create",
            "-server",
            "-dc",
            "dc1",
            "-additional-ipaddress",
            "127.0.0.1",
        ],
        vec!["tls", "cert", "create", "-client", "-dc", "dc1"],
    ] {
        let out = Command::new(&consul_bin)
            .args(&args)
            .current_dir(&dir)
            .output()
            .expect("consul tls");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let f = |name: &str| dir.join(name).display().to_string();
    let (ca, client_cert, client_key) = (
        f("consul-agent-ca.pem"),
        f("dc1-client-consul-0.pem"),
        f("dc1-client-consul-0-key.pem"),
    );
    let https = testkit::free_port();
    let hcl = format!(
        "ports {{ https = {https} }} ca_file = \"{ca}\" cert_file = \"{}\" key_file = \"{}\" verify_incoming_https = true",
        f("dc1-server-consul-0.pem"),
        f("dc1-server-consul-0-key.pem")
    );
    let _consul = ConsulAgent::start_with(&["-hcl", &hcl]).await;
    let nginx = NginxServer::start().await;
    let tls_env = [
        ("CONSUL_CACERT", ca.as_str()),
        ("CONSUL_CLIENT_CERT", client_cert.as_str()),
        ("CONSUL_CLIENT_KEY", client_key.as_str()),
    ];
    let _reg = registrator(
        &bin("registrator"),
        &unique("node"),
        &format!("consul-tls://127.0.0.1:{https}"),
        &[],
        &tls_env,
    );
    let _edge = templater(
        &bin("templater"),
        &format!("https://127.0.0.1:{https}"),
        &nginx,
        &[
            "--ca-cert",
            &ca,
            "--client-cert",
            &client_cert,
            "--client-key",
            &client_key,
        ],
        &[],
    );
    let svc = unique("tls");
    let started = Instant::now();
    let c = app("tls", &svc, &[]);
    eventually(WAIT, "served over a TLS-only Consul", || async {
        let body = get(nginx.port, &format!("{svc}.localhost")).await?;
        anyhow::ensure!(body.contains(&short(&c.id)), "{body}");
        Ok(())
    })
    .await;
    let served = started.elapsed();

    // Without a client certificate Consul refuses, and the CLI says why.
    let tls_url = format!("https://127.0.0.1:{https}");
    let (code, text) = templater_on_host(&tls_url, &["--ca-cert", &ca, "status"]);
    let text = text.to_lowercase();
    assert_ne!(code, 0, "no client cert must fail");
    assert!(
        text.contains("certificate") || text.contains("tls") || text.contains("handshake"),
        "{text}"
    );
    // Without the CA the server is not trusted.
    let (code, _) = templater_on_host(&tls_url, &["status"]);
    assert_ne!(code, 0);
    let _ = std::fs::remove_dir_all(&dir);
    row.pass(&format!(
        "container start → served through nginx {}",
        secs(served)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_labels_and_kv_never_reach_nginx() {
    let row = testkit::report::Row::start(
        "hostile labels and KV values",
        "labels with ; } newlines # quotes $, over-long (600 B), binary, unicode names, ports 99999 and -1, a duplicate SERVICE_ID; KV canary 101 / ten, active `blue; }`, binary bytes: each rejected with a message naming container and label (or key), or escaped; `nginx -t` passes; none of it in the files nginx reads; CLI exits 2",
    );
    let consul = ConsulAgent::start().await;
    let nginx = NginxServer::start().await;
    let mut reg = registrator(
        &bin("registrator"),
        &unique("node"),
        &consul.uri(),
        &[],
        &[],
    );
    let svc = unique("target");
    let dup = unique("dup");
    let long = "a".repeat(600);
    // Escaped or harmless: accepted, and must reach nginx only as quoted strings, if at all.
    let good = app(
        "good",
        &svc,
        &[
            "-l",
            "SERVICE_NOTE=x\"; } server { listen 1; # '",
            "-l",
            "SERVICE_DOLLAR=$host ${evil}",
            "-l",
            "SERVICE_UNICODE=héllo ☃ 漢字",
            "-l",
            "SERVICE_NAMESPACE=a;b}",
        ],
    );
    // Rejected: each skipped with a warning naming the container and the label.
    let bad: Vec<(Container, &str)> = vec![
        (
            app("badname", "evil;}server{listen 1;", &[]),
            "SERVICE_NAME",
        ),
        (
            app("badnl", "x", &["-l", "SERVICE_NAME=a\nserver"]),
            "SERVICE_NAME",
        ),
        (
            app("badtag", &svc, &["-l", "SERVICE_TAGS=public,x}\n#y"]),
            "SERVICE_TAGS",
        ),
        (
            app("badlong", &svc, &["-l", &format!("SERVICE_NOTE={long}")]),
            "SERVICE_NOTE",
        ),
        (
            app("badbin", &svc, &["-l", "SERVICE_NOTE=\u{1}\u{2}\u{7f}"]),
            "SERVICE_NOTE",
        ),
        (
            app("badport", &svc, &["-l", "SERVICE_99999_NAME=x"]),
            "SERVICE_99999_NAME",
        ),
        (
            app("badneg", &svc, &["-l", "SERVICE_-1_NAME=x"]),
            "SERVICE_-1_NAME",
        ),
        (app("badutf", "sérvice", &[]), "SERVICE_NAME"),
    ];
    let first = app("dup1", &dup, &["-l", &format!("SERVICE_ID={dup}")]);
    testkit::eventually(
        WAIT,
        "the first of two duplicate ids is registered",
        || async {
            anyhow::ensure!(consul.instances(&dup).await?.len() == 1, "not yet");
            Ok(())
        },
    )
    .await;
    let _second = app("dup2", &dup, &["-l", &format!("SERVICE_ID={dup}")]);

    // KV values a hand or a script could write.
    for (key, value) in [
        ("canary", b"101".to_vec()),
        ("active", b"blue; }".to_vec()),
        ("previous", vec![0xff, 0x00, 0xfe]),
    ] {
        consul
            .http
            .put(format!("{}/v1/kv/deploy/{svc}/{key}", consul.url()))
            .body(value)
            .send()
            .await
            .expect("kv put");
    }
    let mut edge = templater(&bin("templater"), &consul.url(), &nginx, &[], &[]);
    eventually(WAIT, "the good container is served", || async {
        let body = get(nginx.port, &format!("{svc}.localhost")).await?;
        anyhow::ensure!(body.contains(&short(&good.id)), "{body}");
        Ok(())
    })
    .await;
    consul
        .kv_put(&format!("deploy/{svc}/canary"), "ten")
        .await
        .expect("kv");

    eventually(WAIT, "every bad label reported", || async {
        let log = reg.log();
        for (c, label) in &bad {
            let line = log
                .lines()
                .find(|l| l.contains(&short(&c.id)) && l.contains("bad label"))
                .ok_or_else(|| {
                    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
                    anyhow::anyhow!("{} ({label}) not reported in {warnings:#?}", c.name)
                })?;
            anyhow::ensure!(line.contains(label), "{line}");
        }
        anyhow::ensure!(
            log.contains("service id already used"),
            "duplicate not reported"
        );
        Ok(())
    })
    .await;
    eventually(WAIT, "the bad KV values reported", || async {
        let log = edge.log();
        for what in ["101", "ten", "previous"] {
            anyhow::ensure!(log.contains(what), "{what} not reported");
        }
        Ok(())
    })
    .await;
    let (ok, err) = nginx_check(&nginx);
    assert!(ok, "{err}");
    let mut all = String::new();
    for entry in std::fs::read_dir(nginx.conf_d()).expect("conf.d") {
        all += &std::fs::read_to_string(entry.expect("entry").path()).unwrap_or_default();
    }
    for injected in [
        "listen 1;",
        "evil",
        "x}",
        "a;b}",
        "${evil}",
        "blue; }",
        "sérvice",
    ] {
        assert!(
            !all.contains(injected),
            "{injected:?} reached nginx:\n{all}"
        );
    }
    let only = consul.instances(&dup).await.expect("dup");
    assert_eq!(only.len(), 1, "{only:?}");
    assert!(
        only[0].to_string().contains(&first.id),
        "the first container keeps its id: {only:?}"
    );
    for bad_canary in ["101", "ten", "-1"] {
        let (code, out) = templater_on_host(&consul.url(), &["canary", &svc, bad_canary]);
        assert_eq!(code, 2, "{out}");
        assert!(out.contains(bad_canary), "{out}");
    }
    assert!(reg.alive() && edge.alive(), "no process may crash");
    row.pass(&format!(
        "{} bad containers skipped, 1 duplicate refused, 0 crashes",
        bad.len()
    ));
}
