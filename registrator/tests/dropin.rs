//! swarmgate's registrator as a drop-in for gliderlabs/registrator: the flags and URIs real
//! compose files pass, names, tags and meta as gliderlabs registers them, and the migration
//! clean-up of what gliderlabs left behind. Deliberate deviations are asserted as such.

mod common;

use std::process::Command;

use common::{instances, Registrator, WAIT};
use serde_json::{json, Value};
use testkit::{eventually, unique, ConsulAgent, Container, Process, TestImage};

/// The registrator with exactly `args` (no `-ip` added), as a user's command line has them.
fn registrator_raw(args: &[&str], env: &[(&str, &str)]) -> Process {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_registrator"));
    cmd.args(args)
        .env("RUST_LOG", "info")
        .env_remove("CONSUL_HTTP_ADDR")
        .env_remove("CONSUL_HTTP_TOKEN")
        .envs(env.iter().copied());
    Process::spawn(cmd, &unique("raw-registrator"))
}

fn run(prefix: &str, flags: &[&str], labels: &[&str]) -> Container {
    let mut args: Vec<&str> = flags.to_vec();
    for l in labels {
        args.extend(["-l", l]);
    }
    args.push(TestImage::ensure());
    Container::run(prefix, &args)
}

fn ids(entries: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = entries
        .iter()
        .map(|e| e["Service"]["ID"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn unix_socket_and_every_uri_spelling_real_files_use() {
    let socket = std::env::temp_dir().join(format!("{}.sock", unique("consul")));
    let hcl = format!(
        r#"addresses {{ http = "127.0.0.1 unix://{}" }}"#,
        socket.display()
    );
    let consul = ConsulAgent::start_with(&["-hcl", &hcl]).await;
    let name = unique("uris");
    let _c = run("uri", &["-p", "80"], &[&format!("SERVICE_NAME={name}")]);
    let (a, b, c) = (unique("unix"), unique("colon"), unique("hostless"));
    let unix = format!("consul-unix://{}", socket.display());
    let colon = format!("consul:http://127.0.0.1:{}", consul.http_port);
    let addr = format!("127.0.0.1:{}", consul.http_port);
    let _ra = Registrator::start_as(&a, &unix, &[], &[]);
    let _rb = Registrator::start_as(&b, &colon, &[], &[]);
    let _rc = Registrator::start_as(&c, "consul://", &[], &[("CONSUL_HTTP_ADDR", &addr)]);
    let got = instances(&consul, &name, 3).await;
    let nodes: Vec<_> = got
        .iter()
        .map(|e| {
            e["Service"]["Meta"]["node"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    for node in [&a, &b, &c] {
        assert!(nodes.contains(node), "{node} missing: {nodes:?}");
    }
    let _ = std::fs::remove_file(&socket);
}

#[tokio::test]
async fn gliderlabs_flags_ttl_ip_host_name_and_tag_templates() {
    let consul = ConsulAgent::start().await;
    let node = unique("flags");
    // A field outside the template subset, or a name that does not resolve: exit 64.
    let mut bad = registrator_raw(&["-tags", "{{.Config.Nope}}", &consul.uri()], &[]);
    assert_eq!(bad.wait(), Some(64), "{}", bad.log());
    assert!(bad.log().contains(".Config.Nope"), "{}", bad.log());
    let mut unresolvable = registrator_raw(&["-ip", "no-such-host.invalid", &consul.uri()], &[]);
    assert_eq!(unresolvable.wait(), Some(64), "{}", unresolvable.log());
    assert!(unresolvable.log().contains("no-such-host.invalid"));

    let reg = registrator_raw(
        &[
            "-ttl",
            "30",
            "-ttl-refresh",
            "10",
            "-ip",
            "localhost",
            "-tags",
            r#"dc1,{{.Config.Hostname}},team-{{index .Config.Labels "team" | toLower}}"#,
            "--node-name",
            &node,
            &consul.uri(),
        ],
        &[],
    );
    let name = unique("tagged");
    let c = run(
        "tpl",
        &["-p", "80"],
        &[&format!("SERVICE_NAME={name}"), "team=Payments"],
    );
    let [entry] = instances(&consul, &name, 1).await.try_into().expect("one");
    let svc = &entry["Service"];
    assert_eq!(svc["Address"], "127.0.0.1", "-ip localhost resolved");
    let hostname = &c.id[..12];
    assert_eq!(svc["Tags"], json!(["dc1", hostname, "team-payments"]));
    let log = reg.log();
    assert_eq!(
        log.matches("ignored").count(),
        2,
        "one warning per flag: {log}"
    );
}

#[tokio::test]
async fn names_tags_and_meta_as_gliderlabs_registers_them() {
    let consul = ConsulAgent::start().await;
    let reg = Registrator::start(&consul, &[]);
    let base = unique("consul");
    // SERVICE_NAME on several ports: each gets the port suffix; UDP gets `:udp` and a tag.
    let c = run(
        "multi",
        &[
            "-p", "8400", "-p", "8500", "-p", "53/udp", "--expose", "8400", "--expose", "8500",
            "--expose", "53/udp",
        ],
        &[&format!("SERVICE_NAME={base}")],
    );
    for port in ["8400", "8500"] {
        let [e] = instances(&consul, &format!("{base}-{port}"), 1)
            .await
            .try_into()
            .expect("one");
        assert_eq!(
            e["Service"]["ID"],
            format!("{}:{}:{port}", reg.node, c.name)
        );
    }
    let [udp] = instances(&consul, &format!("{base}-53"), 1)
        .await
        .try_into()
        .expect("one");
    assert_eq!(
        udp["Service"]["ID"],
        format!("{}:{}:53:udp", reg.node, c.name)
    );
    assert_eq!(udp["Service"]["Tags"], json!(["udp"]));
    assert_eq!(udp["Service"]["Port"], c.host_port("53/udp"));

    // Ports are counted before SERVICE_<port>_IGNORE: web + 443 ignored → web-80.
    let web = unique("web");
    let _w = run(
        "ign",
        &["-p", "80", "-p", "443", "--expose", "443"],
        &[&format!("SERVICE_NAME={web}"), "SERVICE_443_IGNORE=1"],
    );
    instances(&consul, &format!("{web}-80"), 1).await;
    assert!(consul.instances(&web).await.expect("read").is_empty());

    // A name with `/`, escaped commas, every SERVICE_* attribute in meta.
    let slashed = format!("{}/v1", unique("service1"));
    let s = run(
        "slash",
        &["-p", "80"],
        &[
            &format!("SERVICE_80_NAME={slashed}"),
            r"SERVICE_TAGS=a\,b,c",
            "SERVICE_CHECK_TCP=true",
            "SERVICE_OWNER=team",
        ],
    );
    let path = slashed.replace('/', "%2F");
    let [e] = instances(&consul, &path, 1).await.try_into().expect("one");
    let svc = &e["Service"];
    assert_eq!(svc["Service"], slashed.as_str());
    assert_eq!(svc["Tags"], json!(["a,b", "c"]));
    assert_eq!(svc["Meta"]["check_tcp"], "true");
    assert_eq!(svc["Meta"]["owner"], "team");
    assert_eq!(svc["Meta"]["managed-by"], "swarmgate-registrator");
    let id = format!("{}:{}:80", reg.node, s.name);
    let key = format!("services/{}/{id}", slashed.replace('/', "%252F"));
    eventually(WAIT, "the KV key encodes the slash", || async {
        consul
            .kv(&key)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no {key}"))
    })
    .await;
}

#[tokio::test]
async fn a_user_network_registers_the_published_binding_deliberately() {
    let consul = ConsulAgent::start().await;
    let _reg = Registrator::start(&consul, &[]);
    let net = unique("usernet");
    testkit::docker::docker(&[
        "network",
        "create",
        "--label",
        testkit::docker::TEST_LABEL,
        &net,
    ]);
    let name = unique("onnet");
    let c = run(
        "net",
        &["--network", &net, "-p", "80"],
        &[&format!("SERVICE_NAME={name}")],
    );
    let [e] = instances(&consul, &name, 1).await.try_into().expect("one");
    // gliderlabs would take the container's address on the user network with the host port;
    // swarmgate registers the published binding (-ip, host port), which is reachable.
    assert_eq!(e["Service"]["Address"], "127.0.0.1");
    assert_eq!(e["Service"]["Port"], c.host_port("80"));
    drop(c);
    testkit::docker::docker_quiet(&["network", "rm", &net]);
}

#[tokio::test]
async fn cleanup_removes_what_gliderlabs_left_and_takes_over_what_still_runs() {
    let consul = ConsulAgent::start().await;
    let node = unique("migrated");
    let name = unique("legacy");
    let running = run("live", &["-p", "80"], &[&format!("SERVICE_NAME={name}")]);
    // What gliderlabs registered on this host: no marker, its id shape, this node's name.
    for (id, port) in [
        (
            format!("{node}:{}:80", running.name),
            running.host_port("80"),
        ),
        (format!("{node}:long-gone:80"), 1),
        (format!("{node}:long-gone:53:udp"), 2),
    ] {
        consul
            .register(&json!({"ID": id, "Name": name, "Port": port, "Address": "127.0.0.1"}))
            .await;
    }
    instances(&consul, &name, 3).await;
    let _reg = Registrator::start_as(&node, &consul.uri(), &["-cleanup"], &[]);
    let left = instances(&consul, &name, 1).await;
    assert_eq!(ids(&left), [format!("{node}:{}:80", running.name)]);
    eventually(WAIT, "the running one is ours now", || async {
        let got = consul.instances(&name).await?;
        anyhow::ensure!(
            got.first()
                .is_some_and(|e| e["Service"]["Meta"]["managed-by"] == "swarmgate-registrator"),
            "{got:?}"
        );
        Ok(())
    })
    .await;
}
