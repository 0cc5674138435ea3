//! Never serve a broken config, never lose the last good view: template edits, a failing
//! `nginx -t`, Consul stopped and restarted empty, and hostile names, tags, meta and KV values.

mod common;

use std::time::Duration;

use common::*;
use testkit::{eventually, unique, Backend, ConsulAgent, NginxServer};

const GOOD: &str = "{% for s in services %}upstream {{ s.upstream }} {\n{% for i in s.instances %}    server {{ i.server }} weight={{ i.weight }}{% if i.backup %} backup{% endif %};\n{% else %}    server 127.0.0.1:9 down;\n{% endfor %}}\nserver {\n    listen {{ listen }};\n    server_name {{ s.name }}.localhost;\n    location / { proxy_pass http://{{ s.upstream }}; }\n}\n{% endfor %}";

#[tokio::test]
async fn template_edits_rerender_and_a_failing_check_keeps_the_live_config() {
    let row = testkit::report::Row::start(
        "a template that renders invalid nginx syntax",
        "`nginx -t` fails: the file on disk and nginx's live config stay the last good ones, no temp or journal file is left; the error is in the log, /metrics and `templater status`; fixing the template recovers",
    );
    let consul = ConsulAgent::start().await;
    let nginx = NginxServer::start().await;
    let svc = unique("edit");
    let backend = Backend::start("x");
    register(&consul, "x1", &svc, backend.port, &[], "passing").await;
    let tdir = nginx.dir.join("templates");
    std::fs::create_dir_all(&tdir).expect("dir");
    let src = tdir.join("up.j2");
    std::fs::write(&src, GOOD).expect("template");
    let dest = nginx.conf_d().join("up.conf");
    let t = start_templater(
        &consul,
        &nginx,
        &[
            "--template",
            &format!("{}:{}", src.display(), dest.display()),
        ],
    );
    let read = || std::fs::read_to_string(&dest).unwrap_or_default();
    eventually(WAIT, "installed", || async {
        if read().contains(&svc) {
            Ok(())
        } else {
            anyhow::bail!(read())
        }
    })
    .await;

    // An edit (written as editors do: a new file renamed over the old) re-renders.
    let tmp = tdir.join(".up.j2.swp");
    std::fs::write(&tmp, format!("# edited\n{GOOD}")).expect("edit");
    std::fs::rename(&tmp, &src).expect("rename");
    eventually(WAIT, "edit re-rendered", || async {
        if read().starts_with("# edited") {
            Ok(())
        } else {
            anyhow::bail!(read())
        }
    })
    .await;
    let good = read();
    eventually(WAIT, "the edit is live (second reload)", || async {
        let reloads = testkit::metrics::sample(&t.metrics().await, "templater_reloads_total");
        anyhow::ensure!(reloads == Some(2.0), "{reloads:?}");
        Ok(())
    })
    .await;
    // Both formats parse strictly; every pass is counted by outcome and timed by step, and the
    // live plan shows per service.
    let m = testkit::metrics::scrape(t.metrics_port)
        .await
        .expect("scrape");
    let at_least = |name: &str, n: f64| {
        let v = m.both(name).expect("in both formats");
        assert!(v >= n, "{name} = {v}, want >= {n}");
    };
    at_least("templater_passes_total{outcome=\"applied\"}", 2.0);
    for step in ["render", "install", "check", "reload"] {
        at_least(&format!("templater_{step}_duration_seconds_count"), 2.0);
    }
    at_least("process_cpu_seconds_total", 0.0);
    at_least("process_resident_memory_bytes", 1e6);
    let of_svc = format!("{{service=\"{svc}\",color=\"\"}}");
    assert_eq!(
        m.both(&format!("templater_service_instances{of_svc}")).ok(),
        Some(1.0)
    );
    assert_eq!(
        m.both(&format!("templater_service_share_percent{of_svc}"))
            .ok(),
        Some(100.0)
    );
    let generation = nginx.workers();
    assert!(!generation.is_empty(), "nginx runs workers");

    // A template that renders invalid nginx: the check fails, nothing changes, it is reported.
    std::fs::write(&src, format!("{GOOD}\nthis_is_not_a_directive on;\n")).expect("break");
    eventually(WAIT, "check failure counted", || async {
        let m = t.metrics().await;
        if testkit::metrics::sample(&m, "templater_check_failures_total") == Some(1.0) {
            Ok(())
        } else {
            anyhow::bail!(m)
        }
    })
    .await;
    assert_eq!(read(), good, "the file on disk is the last good one");
    assert_eq!(nginx.workers(), generation, "nginx was not reloaded");
    assert_eq!(
        fetch(&nginx, &format!("{svc}.localhost"))
            .await
            .expect("served"),
        "x",
        "nginx still serves the last good config"
    );
    let leftovers: Vec<_> = std::fs::read_dir(nginx.conf_d())
        .expect("ls")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no journal or temp file left: {leftovers:?}"
    );
    assert!(t.log().contains("this_is_not_a_directive"), "{}", t.log());
    assert_eq!(
        testkit::metrics::sample(&t.metrics().await, "templater_last_pass_failed"),
        Some(1.0)
    );
    let m = testkit::metrics::scrape(t.metrics_port)
        .await
        .expect("scrape");
    assert_eq!(
        m.both("templater_passes_total{outcome=\"refused\"}").ok(),
        Some(1.0)
    );
    let (_, status) = cli_text(&consul, &["status", &svc]);
    assert!(
        status.contains("last error") && status.contains("nginx check"),
        "{status}"
    );

    // Fixed again: installs, and /health recovers.
    std::fs::write(&src, GOOD).expect("fix");
    eventually(WAIT, "fixed template installed", || async {
        if !read().starts_with("# edited") {
            Ok(())
        } else {
            anyhow::bail!(read())
        }
    })
    .await;
    eventually(WAIT, "healthy", || async {
        let m = t.metrics().await;
        if testkit::metrics::sample(&m, "templater_last_pass_failed") == Some(0.0) {
            Ok(())
        } else {
            anyhow::bail!(m)
        }
    })
    .await;
    row.pass("—");
}

#[tokio::test]
async fn a_failing_check_command_installs_nothing_and_says_so() {
    let row = testkit::report::Row::start(
        "a check command that fails",
        "nothing is installed (the directory stays as it was), nginx is not signalled; the check's own message is in the log, /metrics and `templater status`",
    );
    let consul = ConsulAgent::start().await;
    let nginx = NginxServer::start().await;
    let svc = unique("refused");
    let backend = Backend::start("x");
    register(&consul, "r1", &svc, backend.port, &["public"], "passing").await;
    let generation = nginx.workers();
    let t = start_templater(
        &consul,
        &nginx,
        &[
            "--nginx-check",
            "sh -c 'echo refused by policy >&2; exit 3'",
        ],
    );
    // Between passes (the failed pass is retried, slowly) the directory is as it was.
    let renders = |m: &str| testkit::metrics::sample(m, "templater_renders_total");
    eventually(
        WAIT,
        "a failed pass, settled, installed nothing",
        || async {
            let before = t.metrics().await;
            anyhow::ensure!(
                testkit::metrics::sample(&before, "templater_last_pass_failed") == Some(1.0),
                "{before}"
            );
            let files: Vec<_> = std::fs::read_dir(nginx.conf_d())?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()?;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let after = t.metrics().await;
            anyhow::ensure!(renders(&before) == renders(&after), "a pass ran meanwhile");
            assert!(files.is_empty(), "nothing installed: {files:?}");
            Ok(())
        },
    )
    .await;
    assert_eq!(nginx.workers(), generation, "nginx was not signalled");
    assert!(t.log().contains("refused by policy"), "{}", t.log());
    let (_, status) = cli_text(&consul, &["status", &svc]);
    assert!(status.contains("refused by policy"), "{status}");
    row.pass("—");
}

#[tokio::test]
async fn consul_outage_and_empty_restart_never_blank_a_running_upstream() {
    let mut consul = ConsulAgent::start().await;
    let nginx = NginxServer::start().await;
    let svc = unique("steady");
    let backend = Backend::start("steady");
    register(&consul, "s1", &svc, backend.port, &["public"], "passing").await;
    let mut t = start_templater(&consul, &nginx, &[]);
    let host = format!("{svc}.localhost");
    serves_only(&nginx, &host, "steady", 5).await;
    let before = upstreams(&nginx);

    consul.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(t.alive(), "templater must outlive a consul outage");
    assert_eq!(
        upstreams(&nginx),
        before,
        "nothing is rewritten during the outage"
    );
    serves_only(&nginx, &host, "steady", 5).await;

    // Back, but empty (its data wiped): the last view is held, not blanked.
    consul.restart().await;
    eventually(
        WAIT,
        "the templater notices the empty consul and holds",
        || async {
            let log = t.log();
            if log.contains("holding the last good view") {
                Ok(())
            } else {
                anyhow::bail!("{log}")
            }
        },
    )
    .await;
    assert_eq!(
        upstreams(&nginx),
        before,
        "an empty restart must not blank the upstream"
    );
    serves_only(&nginx, &host, "steady", 5).await;

    // Registrators put things back: the templater resumes and follows changes again.
    register(&consul, "s1", &svc, backend.port, &["public"], "passing").await;
    let other = Backend::start("new");
    let svc2 = unique("arrived");
    register(&consul, "n1", &svc2, other.port, &["public"], "passing").await;
    serves_only(&nginx, &format!("{svc2}.localhost"), "new", 5).await;
    serves_only(&nginx, &host, "steady", 5).await;
    assert!(t.alive());
}

#[tokio::test]
async fn hostile_names_tags_meta_and_kv_never_reach_nginx_unescaped() {
    let consul = ConsulAgent::start().await;
    let nginx = NginxServer::start().await;
    let svc = unique("target");
    let backend = Backend::start("ok");
    let put = |body: serde_json::Value| {
        let consul = &consul;
        async move { consul.register(&body).await }
    };
    put(serde_json::json!({"ID": "evil-name", "Name": "x;}server{listen 81;", "Port": backend.port, "Address": "127.0.0.1"})).await;
    put(serde_json::json!({"ID": "evil-addr", "Name": svc, "Port": backend.port, "Address": "127.0.0.1;include /etc/passwd"})).await;
    put(serde_json::json!({"ID": "evil-meta", "Name": svc, "Port": backend.port, "Address": "127.0.0.1", "Tags": ["public", "blue\n}"],
        "Meta": {"namespace": "a;b", "tls_cert": "/x;y", "tls_key": "/k", "sticky": "$evil", "note": "x$y"}})).await;
    for (k, v) in [("active", "blue;}"), ("canary", "ten")] {
        consul
            .kv_put(&format!("deploy/{svc}/{k}"), v)
            .await
            .expect("kv");
    }
    consul
        .kv_put("deploy/we}b/active", "blue")
        .await
        .expect("kv");
    let mut t = start_templater(&consul, &nginx, &[]);
    serves_only(&nginx, &format!("{svc}.localhost"), "ok", 5).await;
    let all = format!(
        "{}{}",
        upstreams(&nginx),
        std::fs::read_to_string(nginx.conf_d().join("swarmgate-vhosts.conf")).expect("vhosts")
    );
    for bad in [
        "x;}",
        "listen 81",
        "include /etc/passwd",
        "a;b",
        "/x;y",
        "$evil",
        "blue;}",
        "we}b",
    ] {
        assert!(!all.contains(bad), "{bad:?} reached nginx:\n{all}");
    }
    let log = t.log();
    for named in ["evil-name", "evil-addr", "deploy/", "canary", "namespace"] {
        assert!(log.contains(named), "{named} not reported:\n{log}");
    }
    assert!(t.alive());
    // Out-of-range and non-numeric canaries are refused by the CLI with a clear message.
    for bad in ["101", "ten", "-1", "1.5"] {
        let (code, out) = cli_text(&consul, &["canary", &svc, bad]);
        assert_eq!(code, 2, "{out}");
        assert!(out.contains(bad), "{out}");
    }
}

#[tokio::test]
async fn once_and_dry_run() {
    let consul = ConsulAgent::start().await;
    let svc = unique("once");
    register(&consul, "o1", &svc, 8080, &[], "passing").await;
    let dir = std::env::temp_dir().join(unique("dry"));
    std::fs::create_dir_all(&dir).expect("dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_templater"))
        .args([
            "--consul",
            &consul.url(),
            "run",
            "--once",
            "--dry-run",
            "--output-dir",
            &dir.display().to_string(),
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("upstream sg_{svc} {{")) && stdout.contains("127.0.0.1:8080"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).expect("ls").count(),
        0,
        "dry run touches no file"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_templater"))
        .args([
            "--consul",
            &consul.url(),
            "run",
            "--once",
            "--nginx-check",
            "",
            "--output-dir",
            &dir.display().to_string(),
            "--name",
            "oncer",
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read_to_string(dir.join("swarmgate-upstreams.conf"))
            .expect("written")
            .contains(&svc)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
