//! Installs and acknowledgements tell the truth under faults: a destination that cannot be
//! written installs nothing and is retried once the cause is gone (no Consul change needed);
//! a reload nginx did not take is never acknowledged as live, and is retried.

mod common;

use common::*;
use testkit::{eventually, unique, Backend, ConsulAgent, NginxServer};

#[tokio::test]
async fn a_blocked_destination_installs_nothing_and_is_retried() {
    let row = testkit::report::Row::start(
        "a destination that cannot be written mid-install (its directory gone)",
        "no file of the pass is installed, nothing is left behind, nginx is not reloaded; once the directory is back the pass is retried and installs without any Consul change",
    );
    let consul = ConsulAgent::start().await;
    let nginx = NginxServer::start().await;
    let svc = unique("blocked");
    let backend = Backend::start("x");
    register(&consul, "b1", &svc, backend.port, &["public"], "passing").await;
    let extra = nginx.dir.join("extra");
    let tdir = nginx.dir.join("templates");
    std::fs::create_dir_all(&tdir).expect("dir");
    let src = tdir.join("list.j2");
    std::fs::write(&src, "{% for s in services %}# {{ s.name }}\n{% endfor %}").expect("template");
    let builtin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
    let first = nginx.conf_d().join("swarmgate-upstreams.conf");
    let vhosts = nginx.conf_d().join("swarmgate-vhosts.conf");
    let generation = nginx.workers();
    let templates = [
        format!(
            "{}:{}",
            builtin.join("upstreams.conf.j2").display(),
            first.display()
        ),
        format!(
            "{}:{}",
            builtin.join("vhosts.conf.j2").display(),
            vhosts.display()
        ),
        format!("{}:{}", src.display(), extra.join("list.txt").display()),
    ];
    let _t = start_templater(
        &consul,
        &nginx,
        &[
            "--template",
            &templates[0],
            "--template",
            &templates[1],
            "--template",
            &templates[2],
        ],
    );
    eventually(WAIT, "the failure is logged", || async {
        anyhow::ensure!(_t.log().contains("extra"), "not yet");
        Ok(())
    })
    .await;
    assert!(
        !first.exists(),
        "the first file of the pass is not left installed"
    );
    let left: Vec<_> = std::fs::read_dir(nginx.conf_d()).expect("ls").collect();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
    assert_eq!(nginx.workers(), generation, "nginx not reloaded");
    std::fs::create_dir_all(&extra).expect("the cause is gone");
    serves_only(&nginx, &format!("{svc}.localhost"), "x", 5).await;
    assert!(std::fs::read_to_string(extra.join("list.txt"))
        .expect("list")
        .contains(&svc));
    row.pass("—");
}

#[tokio::test]
async fn a_reload_nginx_did_not_take_is_never_acknowledged() {
    let row = testkit::report::Row::start(
        "a reload that fails (the pid file names no nginx)",
        "`flip --wait-live` is not acknowledged (exit 5) while nginx serves the old colour; once the pid file is right the reload is retried and the flip goes live",
    );
    let consul = ConsulAgent::start().await;
    let nginx = NginxServer::start().await;
    let svc = unique("ack");
    let (blue, green) = (Backend::start("blue"), Backend::start("green"));
    register(
        &consul,
        "b",
        &svc,
        blue.port,
        &["blue", "public"],
        "passing",
    )
    .await;
    register(&consul, "g", &svc, green.port, &["green"], "passing").await;
    let pid_file = nginx.dir.join("pid-for-templater");
    std::fs::copy(nginx.pid_file(), &pid_file).expect("pid copy");
    let _t = start_templater(
        &consul,
        &nginx,
        &["--nginx-pid", &pid_file.display().to_string()],
    );
    let (code, out) = cli_text(&consul, &["flip", &svc, "blue", "--wait-live", "20"]);
    assert_eq!(code, 0, "{out}");
    // The pid file now names a process that is not nginx.
    std::fs::write(&pid_file, std::process::id().to_string()).expect("wrong pid");
    let (code, out) = cli_text(&consul, &["flip", &svc, "green", "--wait-live", "3"]);
    assert_eq!(code, 5, "not acknowledged while nginx serves blue: {out}");
    assert_eq!(
        fetch(&nginx, &format!("{svc}.localhost"))
            .await
            .expect("served"),
        "blue"
    );
    assert!(_t.log().contains("not nginx"), "{}", _t.log());
    std::fs::copy(nginx.pid_file(), &pid_file).expect("pid fixed");
    serves_only(&nginx, &format!("{svc}.localhost"), "green", 10).await;
    let (code, out) = cli_text(&consul, &["canary", &svc, "0", "--wait-live", "20"]);
    assert_eq!(code, 0, "{out}");
    row.pass("—");
}
