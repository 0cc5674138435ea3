//! Label families, checks, Docker-health mirroring and address flags, against real parts; and
//! bad labels: skipped with a warning naming container and label, the agent keeps running.

mod common;

use common::{instances, status_becomes, Registrator, WAIT};
use testkit::{eventually, unique, ConsulAgent, Container, TestImage};

#[tokio::test]
async fn name_tags_id_meta_and_port_specific_labels() {
    let consul = ConsulAgent::start().await;
    let reg = Registrator::start(&consul, &["-tags", "dc1,edge"]);
    let (web, admin) = (unique("web"), unique("admin"));
    let _c = Container::run(
        "lbl",
        &[
            "-p",
            "80",
            "-p",
            "8080",
            "-e",
            "SERVICE_NAME=from-env-loses",
            "-l",
            &format!("SERVICE_NAME={web}"),
            "-l",
            &format!("SERVICE_8080_NAME={admin}"),
            "-l",
            "SERVICE_TAGS=green,v2",
            "-l",
            "SERVICE_VERSION=2.1",
            "-l",
            "SERVICE_8080_ID=custom-admin",
            "-l",
            "SERVICE_8080_TAGS=internal",
            TestImage::ensure(),
        ],
    );
    // SERVICE_NAME on a container with two ports: the port suffix, as gliderlabs names it.
    let [w] = instances(&consul, &format!("{web}-80"), 1)
        .await
        .try_into()
        .expect("one");
    assert_eq!(
        w["Service"]["Tags"],
        serde_json::json!(["green", "v2", "dc1", "edge"])
    );
    assert_eq!(w["Service"]["Meta"]["version"], "2.1");
    assert!(w["Service"]["ID"]
        .as_str()
        .expect("id")
        .starts_with(&reg.node));
    let [a] = instances(&consul, &admin, 1).await.try_into().expect("one");
    assert_eq!(a["Service"]["ID"], "custom-admin");
    assert_eq!(
        a["Service"]["Tags"],
        serde_json::json!(["internal", "dc1", "edge"])
    );
}

#[tokio::test]
async fn ignore_explicit_and_bad_labels_skip_only_what_they_must() {
    let consul = ConsulAgent::start().await;
    let reg = Registrator::start(&consul, &["-explicit"]);
    let (good, ignored) = (unique("good"), unique("ignored"));
    let unnamed = Container::run("unnamed", &["-p", "80", TestImage::ensure()]);
    let ignored_c = Container::run(
        "ign",
        &[
            "-p",
            "80",
            "-l",
            &format!("SERVICE_NAME={ignored}"),
            "-l",
            "SERVICE_IGNORE=true",
            TestImage::ensure(),
        ],
    );
    let bad = Container::run(
        "bad",
        &[
            "-p",
            "80",
            "-l",
            "SERVICE_NAME=web;}server{",
            TestImage::ensure(),
        ],
    );
    let bad_port = Container::run(
        "badport",
        &[
            "-p",
            "80",
            "-l",
            "SERVICE_NAME=x",
            "-l",
            "SERVICE_99999_NAME=y",
            "-l",
            "SERVICE_TAGS=a\u{1b}b",
            TestImage::ensure(),
        ],
    );
    let _good = Container::run(
        "good",
        &[
            "-p",
            "80",
            "-l",
            &format!("SERVICE_NAME={good}"),
            TestImage::ensure(),
        ],
    );
    instances(&consul, &good, 1).await;
    let log = eventually(WAIT, "warnings logged", || async {
        let log = reg.log();
        if log.contains("SERVICE_99999_NAME")
            && log.contains("SERVICE_TAGS")
            && log.contains(&bad.id[..12])
        {
            Ok(log)
        } else {
            anyhow::bail!("{log}")
        }
    })
    .await;
    assert!(log.contains("label=SERVICE_NAME"), "{log}");
    // Other suites' containers run meanwhile: look only at this test's.
    let ours = [&unnamed.name, &ignored_c.name, &bad.name, &bad_port.name];
    let services = consul.agent_services().await.expect("services");
    let registered: Vec<_> = services
        .values()
        .filter(|s| {
            ours.iter()
                .any(|n| s["Meta"]["container-name"] == n.as_str())
        })
        .collect();
    assert!(
        registered.is_empty(),
        "skipped containers were registered: {registered:?}"
    );
    assert!(reg.log().contains(&bad_port.id[..12]));
}

#[tokio::test]
async fn label_checks_run_in_consul() {
    let consul = ConsulAgent::start().await;
    let _reg = Registrator::start(&consul, &[]);
    let (http, tcp, ttl) = (unique("httpchk"), unique("tcpchk"), unique("ttlchk"));
    let common = ["-p", "80"];
    let _h = Container::run(
        "h",
        &[
            &common[..],
            &[
                "-l",
                &format!("SERVICE_NAME={http}"),
                "-l",
                "SERVICE_CHECK_HTTP=/index.html",
                "-l",
                "SERVICE_CHECK_INTERVAL=1s",
                TestImage::ensure(),
            ],
        ]
        .concat(),
    );
    let _t = Container::run(
        "t",
        &[
            &common[..],
            &[
                "-l",
                &format!("SERVICE_NAME={tcp}"),
                "-l",
                "SERVICE_CHECK_TCP=true",
                "-l",
                "SERVICE_CHECK_INTERVAL=1s",
                TestImage::ensure(),
            ],
        ]
        .concat(),
    );
    let _l = Container::run(
        "l",
        &[
            &common[..],
            &[
                "-l",
                &format!("SERVICE_NAME={ttl}"),
                "-l",
                "SERVICE_CHECK_TTL=30s",
                "-l",
                "SERVICE_CHECK_INITIAL_STATUS=warning",
                TestImage::ensure(),
            ],
        ]
        .concat(),
    );
    status_becomes(&consul, &http, "passing").await;
    status_becomes(&consul, &tcp, "passing").await;
    status_becomes(&consul, &ttl, "warning").await;
    let [h] = instances(&consul, &http, 1).await.try_into().expect("one");
    let http_check = h["Checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["Type"] == "http")
        .cloned()
        .expect("http check");
    assert!(
        http_check["Output"]
            .as_str()
            .unwrap_or_default()
            .contains("200"),
        "{http_check}"
    );
}

#[tokio::test]
async fn docker_healthcheck_is_mirrored_as_a_ttl_check() {
    let consul = ConsulAgent::start().await;
    let _reg = Registrator::start(&consul, &[]);
    let name = unique("healthy");
    let c = Container::run(
        "hc",
        &[
            "-p",
            "80",
            "-l",
            &format!("SERVICE_NAME={name}"),
            "--health-cmd",
            "test -f /www/health",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
            TestImage::ensure(),
        ],
    );
    status_becomes(&consul, &name, "warning").await; // starting
    status_becomes(&consul, &name, "passing").await;
    testkit::docker::docker(&["exec", &c.name, "rm", "/www/health"]);
    status_becomes(&consul, &name, "critical").await;
    testkit::docker::docker(&["exec", &c.name, "touch", "/www/health"]);
    status_becomes(&consul, &name, "passing").await;
}

#[tokio::test]
async fn internal_ip_label_and_host_ip() {
    let consul = ConsulAgent::start().await;
    let _internal = Registrator::start(&consul, &["-internal"]);
    let name = unique("internal");
    let c = Container::run(
        "int",
        &[
            "--expose",
            "9000",
            "-l",
            &format!("SERVICE_NAME={name}"),
            TestImage::ensure(),
        ],
    );
    let ip = testkit::docker::docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &c.name]);
    // Two exposed ports: gliderlabs' suffix on both names.
    let mut found = instances(&consul, &format!("{name}-80"), 1).await;
    found.extend(instances(&consul, &format!("{name}-9000"), 1).await);
    let mut ports: Vec<_> = found
        .iter()
        .map(|e| e["Service"]["Port"].as_u64().expect("port"))
        .collect();
    ports.sort();
    assert_eq!(
        ports,
        [80, 9000],
        "every exposed port, at the container's own port"
    );
    assert!(found.iter().all(|e| e["Service"]["Address"] == ip.as_str()));

    let consul2 = ConsulAgent::start().await;
    let _by_label = Registrator::start(&consul2, &["-useIpFromLabel", "edge.ip"]);
    let labelled = unique("labelled");
    let _l = Container::run(
        "lab",
        &[
            "-p",
            "80",
            "-l",
            &format!("SERVICE_NAME={labelled}"),
            "-l",
            "edge.ip=10.20.30.40/24",
            TestImage::ensure(),
        ],
    );
    let [e] = instances(&consul2, &labelled, 1)
        .await
        .try_into()
        .expect("one");
    assert_eq!(e["Service"]["Address"], "10.20.30.40");
}
