use std::collections::{BTreeMap, VecDeque};

use super::line::tests::{datagram, line, proxied};
use super::*;
use crate::plan::{Server, ServicePlan};
use crate::traffic::Counts;

fn server(address: &str, port: u16, color: Option<&str>) -> Server {
    Server {
        id: format!("{address}-{port}"),
        node: "n1".into(),
        address: address.into(),
        port,
        server: if address.contains(':') {
            format!("[{address}]:{port}")
        } else {
            format!("{address}:{port}")
        },
        color: color.map(String::from),
        health: swarmgate_consul::CheckStatus::Passing,
        weight: 1,
        backup: false,
        share: 0.0,
        tags: Vec::new(),
        meta: BTreeMap::new(),
    }
}

/// A plan of `services`, each `(name, servers)`, upstream `sg_<name>`.
fn plan(services: Vec<(&str, Vec<Server>)>) -> Plan {
    let mut p = Plan::default();
    for (name, instances) in services {
        p.services.insert(
            name.to_string(),
            ServicePlan {
                name: name.to_string(),
                upstream: format!("sg_{name}"),
                active: Some("blue".into()),
                canary: 0,
                settings_index: 7,
                sticky: None,
                public: true,
                host: format!("{name}.localhost"),
                tls: None,
                instances,
                left_out: Vec::new(),
                excluded: None,
                held: None,
                warnings: Vec::new(),
                pinning: Default::default(),
            },
        );
    }
    p
}

fn app() -> Plan {
    plan(vec![(
        "app",
        vec![
            server("127.0.0.1", 8001, Some("blue")),
            server("127.0.0.1", 8002, Some("green")),
            server("0:0:0:0:0:0:0:1", 8003, Some("green")),
            server("127.0.0.1", 8004, None),
        ],
    )])
}

fn view(plan: Plan) -> Arc<LiveView> {
    Arc::new(LiveView {
        status: None,
        plan: Arc::new(plan),
        history: VecDeque::new(),
    })
}

/// The counts of `service`/`color` in `r`'s tally.
fn counts<'a>(r: &'a Receiver, service: &str, color: &str) -> Option<&'a Counts> {
    r.tally.get(service, color)
}

/// Settles every waiting line (as [`PENDING_WAIT`] later).
fn settled(r: &mut Receiver) {
    r.settle_waiting(Instant::now() + PENDING_WAIT);
}

#[test]
fn each_line_counts_for_the_live_service_and_the_colour_that_answered() {
    let (_tx, rx) = watch::channel(view(app()));
    let mut r = Receiver::new(rx);
    r.take(&line("sg_app", "127.0.0.1:8001", 200, "0.001", "0.001"));
    r.take(&line(
        "sg_app",
        "127.0.0.1:8009, 127.0.0.1:8002",
        200,
        "-, 0.1",
        "0.001, 0.2",
    ));
    r.take(&line("sg_app", "[::1]:8003", 503, "0.1", "0.3"));
    r.take(&line("sg_app", "127.0.0.1:8004", 404, "0.1", "31"));
    r.take(&line("sg_app", "sg_app", 502, "-", "0.000"));
    // A server the plan does not have: waits, then counts for no colour.
    r.take(&line("sg_app", "127.0.0.1:9999", 301, "0.1", "0.0011"));
    // Nothing of these is counted.
    r.take(&line("sg_other", "127.0.0.1:8001", 200, "0", "0"));
    r.take(&line("app", "127.0.0.1:8001", 200, "0", "0"));
    r.take(b"garbage");
    assert_eq!(r.pending.len(), 3);
    settled(&mut r);
    assert!(r.pending.is_empty());

    let blue = counts(&r, "app", "blue").expect("blue");
    assert_eq!((blue.requests, blue.c2xx), (1, 1));
    assert_eq!(blue.buckets[0], 1, "0.001 s is in the first bucket (<=)");
    let green = counts(&r, "app", "green").expect("green (the retry and the IPv6 server)");
    assert_eq!((green.requests, green.c2xx, green.c5xx), (2, 1, 1));
    assert_eq!(green.failed, 0, "the 503 came from the server");
    assert!((green.sum_seconds - 0.5).abs() < 1e-9, "{green:?}");
    let none = counts(&r, "app", "").expect("uncoloured, unknown and no server");
    assert_eq!(none.requests, 3);
    assert_eq!((none.c3xx, none.c4xx, none.c5xx, none.failed), (1, 1, 1, 1));
    assert_eq!(none.overflow(), 1, "31 s is slower than every bucket");
    assert_eq!(none.buckets[1], 1, "0.0011 s");
    assert_eq!(r.tally.doc(1.0).services.len(), 1, "{:?}", r.tally);
    assert_eq!(r.drops.by_reason.get("unknown_upstream"), Some(&2));
    assert_eq!(r.drops.by_reason.get("malformed"), Some(&1));
}

#[test]
fn a_preview_request_counts_for_its_service_and_colour() {
    use crate::pin::{PreviewColor, PreviewServer};
    let mut p = app();
    p.services.get_mut("app").expect("app").pinning.preview = Some(vec![PreviewColor {
        color: "green".into(),
        upstream: "sg_app__green".into(),
        servers: vec![PreviewServer {
            id: "g".into(),
            address: "127.0.0.1".into(),
            port: 8002,
            server: "127.0.0.1:8002".into(),
        }],
    }]);
    let (_tx, rx) = watch::channel(view(p));
    let mut r = Receiver::new(rx);
    r.take(&line(
        "sg_app__green",
        "127.0.0.1:8002",
        200,
        "0.001",
        "0.001",
    ));
    assert!(r.pending.is_empty(), "the preview upstream is known");
    assert_eq!(counts(&r, "app", "green").map(|c| c.requests), Some(1));
}

#[test]
fn a_line_nginx_sends_before_its_plan_is_published_waits_for_it() {
    let (tx, rx) = watch::channel(view(plan(vec![("api", vec![])])));
    let mut r = Receiver::new(rx);
    // nginx serves the new config (a new service; a new green server) before it is published.
    r.take(&line("sg_app", "127.0.0.1:8001", 200, "0", "0"));
    r.take(&line("sg_app", "127.0.0.1:8002", 200, "0", "0"));
    assert!(r.tally.doc(1.0).services.is_empty());
    tx.send_replace(view(app()));
    r.take(b"garbage"); // any datagram, or a reading, follows the plan
    assert!(r.pending.is_empty());
    assert_eq!(counts(&r, "app", "blue").map(|c| c.requests), Some(1));
    assert_eq!(counts(&r, "app", "green").map(|c| c.requests), Some(1));
    // The wait is bounded in lines as in time.
    for _ in 0..MAX_PENDING + 5 {
        r.take(&line("sg_new", "127.0.0.1:1", 200, "0", "0"));
    }
    assert_eq!(r.pending.len(), MAX_PENDING);
    assert_eq!(r.drops.by_reason.get("unknown_upstream"), Some(&5));
}

#[test]
fn the_plan_before_still_names_the_servers_old_workers_answer_from() {
    let (tx, rx) = watch::channel(view(app()));
    let mut r = Receiver::new(rx);
    // Green leaves the plan; a request an old worker finishes on it still counts as green.
    tx.send_replace(view(plan(vec![(
        "app",
        vec![server("127.0.0.1", 8001, Some("blue"))],
    )])));
    r.take(&line("sg_app", "127.0.0.1:8002", 200, "0", "0"));
    assert_eq!(counts(&r, "app", "green").map(|c| c.requests), Some(1));
    // Two plans later it is forgotten: no colour.
    tx.send_replace(view(plan(vec![("app", vec![])])));
    r.take(&line("sg_app", "127.0.0.1:8002", 200, "0", "0"));
    settled(&mut r);
    assert_eq!(counts(&r, "app", "").map(|c| c.requests), Some(1));
}

#[test]
fn the_tally_feeds_traffic_like_the_lua_poller_and_forgets_services_gone() {
    let traffic = Traffic::default();
    let (tx, rx) = watch::channel(view(app()));
    let mut r = Receiver::new(rx);
    let index: LiveIndex = [("app".to_string(), 7)].into();
    let gone = LiveIndex::new();
    let t0 = Instant::now();
    let at = |r: &mut Receiver, index: &LiveIndex, polls: u32| {
        let now = t0 + POLL * polls;
        traffic.observe(r.reading(index, 1.0, now), index, now);
    };
    for _ in 0..3 {
        r.take(&line("sg_app", "127.0.0.1:8001", 200, "0", "0.01"));
    }
    at(&mut r, &index, 0);
    r.take(&line("sg_app", "127.0.0.1:8001", 500, "0", "0.01"));
    at(&mut r, &index, 1);
    let totals = traffic.service_totals("app").expect("live");
    assert_eq!(totals.settings_index, 7);
    let blue = &totals.colors["blue"];
    assert_eq!((blue.requests, blue.c2xx, blue.c5xx), (4, 3, 1));

    // Not live: not in the totals; counted on while a plan still routes it, like nginx's dict.
    tx.send_replace(view(plan(vec![("api", vec![])])));
    r.take(&line("sg_app", "127.0.0.1:8001", 200, "0", "0.01"));
    at(&mut r, &gone, 2);
    assert!(traffic.service_totals("app").is_none());
    assert_eq!(counts(&r, "app", "blue").map(|c| c.requests), Some(5));
    // Two plans later forgotten here too; back, it is counted from nothing.
    tx.send_replace(view(plan(vec![("web", vec![])])));
    at(&mut r, &gone, 3);
    assert!(counts(&r, "app", "blue").is_none(), "{:?}", r.tally);
    tx.send_replace(view(app()));
    r.take(&line("sg_app", "127.0.0.1:8001", 200, "0", "0.01"));
    at(&mut r, &index, 4);
    let blue = &traffic.service_totals("app").expect("live").colors["blue"];
    assert_eq!(blue.requests, 1, "{blue:?}");
}

#[test]
fn the_shipped_log_format_is_the_line_the_parser_reads() {
    let renderer = crate::render::Renderer::load(&crate::render::TemplateSpec::defaults(
        std::path::Path::new("/out"),
    ))
    .expect("defaults compile");
    let page = crate::render::Page {
        colors: vec!["blue".into(), "green".into()],
        domain: "localhost".into(),
        listen: 80,
        listen_tls: 443,
        dataplane: "reload",
        lua: None,
        traffic: Some(page("127.0.0.1:5140".parse().expect("addr"))),
        preview_header: "X-Swarmgate-Color".into(),
        preview_var: "http_x_swarmgate_color".into(),
    };
    let app = app();
    let served: Vec<_> = app.served().collect();
    let files = renderer.render(&page.context(&served)).expect("renders");
    let text: String = files
        .iter()
        .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
        .collect();
    assert!(
        text.contains(
            "access_log syslog:server=127.0.0.1:5140,nohostname,tag=swarmgate swarmgate_traffic;"
        ),
        "{text}"
    );
    let format = text
        .lines()
        .find_map(|l| l.strip_prefix("log_format swarmgate_traffic escape=json '"))
        .and_then(|l| l.strip_suffix("';"))
        .expect("the log_format line");
    let values = [
        ("$proxy_host", "sg_app"),
        ("$upstream_addr", "127.0.0.1:8001"),
        ("$status", "200"),
        ("$upstream_header_time", "0.001"),
        ("$upstream_response_time", "0.002"),
        ("$request_time", "0.003"),
    ];
    let mut json = format.to_string();
    for (var, value) in values {
        assert!(json.contains(var), "{var} in {format}");
        json = json.replace(var, value);
    }
    assert!(!json.contains('$'), "every variable known: {format}");
    let r = proxied(datagram(&json));
    assert_eq!(
        (r.upstream.as_ref(), r.status, r.seconds),
        ("sg_app", 200, 0.002)
    );
}

#[test]
fn the_receiver_listens_on_loopback_only() {
    for ok in [
        "127.0.0.1:0",
        "127.0.0.1:5140",
        "[::1]:5140",
        " 127.0.0.2:1 ",
    ] {
        assert!(parse_listen(ok).is_ok(), "{ok}");
    }
    for bad in [
        "0.0.0.0:5140",
        "10.1.2.3:5140",
        "[::]:1",
        "localhost:5140",
        "5140",
        "",
    ] {
        let e = parse_listen(bad).expect_err(bad);
        assert!(e.contains("loopback"), "{bad}: {e}");
    }
    assert_eq!(
        page("[::1]:5140".parse().expect("addr")).syslog,
        "syslog:server=[::1]:5140,nohostname,tag=swarmgate"
    );
}

#[test]
fn drops_are_logged_at_most_once_per_interval() {
    let mut d = Drops::default();
    let t0 = Instant::now();
    d.count(Dropped::Malformed);
    d.log_if_due(t0);
    assert!(d.by_reason.is_empty(), "logged and reset");
    d.count(Dropped::TooLong);
    d.log_if_due(t0 + Duration::from_secs(1));
    assert_eq!(d.by_reason.get("too_long"), Some(&1), "kept until due");
    d.log_if_due(t0 + DROP_LOG_EVERY);
    assert!(d.by_reason.is_empty());
}
