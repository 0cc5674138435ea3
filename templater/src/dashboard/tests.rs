//! The dashboard's JSON state and page, from hand-built live views.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use swarmgate_consul::CheckStatus;

use super::{page, state};
use crate::live::{DeployEvent, LiveView, Split};
use crate::plan::{LeftOut, LeftOutReason, Plan, Server, ServicePlan};
use crate::traffic::{Figures, Windows};

const HOSTILE: &str = "<script>alert(1)</script>";

fn server(id: &str, color: &str, weight: u32, share: f64, backup: bool) -> Server {
    Server {
        id: id.into(),
        node: "node-1".into(),
        address: "10.0.0.1".into(),
        port: 8080,
        server: "10.0.0.1:8080".into(),
        color: Some(color.into()),
        health: CheckStatus::Passing,
        weight,
        backup,
        share,
        tags: vec![color.into(), HOSTILE.into()],
        meta: BTreeMap::new(),
    }
}

fn app() -> ServicePlan {
    ServicePlan {
        name: "app".into(),
        upstream: "sg_app".into(),
        active: Some("blue".into()),
        canary: 10,
        settings_index: 42,
        sticky: None,
        public: true,
        host: "app.example.com".into(),
        tls: None,
        instances: vec![
            server("app-blue-1", "blue", 45, 45.0, false),
            server("app-blue-2", "blue", 45, 45.0, false),
            server(HOSTILE, "green", 10, 10.0, false),
        ],
        left_out: vec![LeftOut {
            id: "app-green-2".into(),
            node: HOSTILE.into(),
            color: Some("green".into()),
            reason: LeftOutReason::Invalid(format!("bad port {HOSTILE}")),
        }],
        excluded: None,
        held: None,
        warnings: vec![],
        pinning: Default::default(),
    }
}

fn view() -> LiveView {
    let mut plan = Plan::default();
    plan.services.insert("app".into(), app());
    let mut status = crate::live::tests::status();
    status.last_error = Some(format!("nginx said {HOSTILE}"));
    status.last_error_unix = Some(90);
    LiveView {
        status: Some(status),
        plan: Arc::new(plan),
        history: VecDeque::from([DeployEvent {
            unix: 95,
            service: "app".into(),
            from: Some(Split {
                active: Some("blue".into()),
                canary: 0,
            }),
            to: Split {
                active: Some("blue".into()),
                canary: 10,
            },
            settings_index: 42,
        }]),
    }
}

#[test]
fn the_state_has_each_colour_share_and_instance_as_the_plan_says() {
    let s = state::of(&view(), &Windows::new(), true, 100);
    let app = &s.services[0];
    assert_eq!((app.active.as_deref(), app.canary), (Some("blue"), 10));
    let shares: Vec<(&str, usize, usize, f64)> = app
        .colors
        .iter()
        .map(|c| (c.color.as_str(), c.serving, c.left_out, c.share))
        .collect();
    assert_eq!(shares, [("blue", 2, 0, 90.0), ("green", 1, 1, 10.0)]);
    assert_eq!(app.instances.len(), 4);
    let out = &app.instances[3];
    assert_eq!(out.health, "left out");
    assert!(out
        .left_out
        .as_deref()
        .expect("present")
        .starts_with("invalid: bad port"));
    assert!(s.edge.consul_up);
    assert_eq!(s.edge.services_served, 1);
    assert_eq!(s.history.len(), 1);
    let json = serde_json::to_value(&s).expect("present");
    assert_eq!(json["services"][0]["colors"][1]["share"], 10.0);
    assert_eq!(json["edge"]["name"], "edge-1");
}

#[test]
fn values_from_consul_are_text_never_markup() {
    let s = state::of(&view(), &Windows::new(), false, 100);
    for html in [page::page(&s), page::fragment(&s)] {
        assert!(!html.contains(HOSTILE), "unescaped value in {html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        // The only script is the page's own file.
        assert_eq!(
            html.matches("<script").count(),
            html.matches("<script src=\"/assets/dashboard.js\"").count()
        );
    }
}

#[test]
fn the_page_shows_the_split_the_colours_and_the_deploy() {
    let html = page::page(&state::of(&view(), &Windows::new(), true, 100));
    assert!(html.contains("data-service=\"app\""));
    assert!(html.contains("<b data-active>blue</b>"));
    assert!(html.contains("<b data-canary>10%</b>"));
    assert!(html.contains("<tr data-color=\"green\"><td>green</td><td>1</td><td>0</td><td>1</td><td class=\"share\">10.0%</td>"));
    assert!(html.contains("blue + 10% canary"));
    assert!(html.contains("<noscript><meta http-equiv=\"refresh\""));
}

#[test]
fn a_starting_edge_renders_without_a_plan() {
    let empty = LiveView {
        status: None,
        plan: Arc::default(),
        history: VecDeque::new(),
    };
    let html = page::page(&state::of(&empty, &Windows::new(), false, 1));
    assert!(html.contains("No services yet."));
    assert!(html.contains("unreachable"));
}

#[test]
fn each_colour_shows_its_traffic_figures() {
    let mut traffic = Windows::new();
    traffic.insert(
        ("app".into(), "green".into()),
        Figures {
            requests_per_second: Some(12.5),
            error_rate: Some(4.0),
            p99_seconds: Some(0.25),
        },
    );
    // Another service's figures of the same colour are not this one's.
    traffic.insert(
        ("other".into(), "blue".into()),
        Figures {
            requests_per_second: Some(99.0),
            ..Figures::default()
        },
    );
    let s = state::of(&view(), &traffic, true, 100);
    let colors = &s.services[0].colors;
    let (blue, green) = (&colors[0], &colors[1]);
    assert_eq!(blue.color, "blue");
    assert_eq!(
        (blue.requests_per_second, blue.error_rate, blue.p99_seconds),
        (None, None, None)
    );
    assert_eq!(
        (
            green.requests_per_second,
            green.error_rate,
            green.p99_seconds
        ),
        (Some(12.5), Some(4.0), Some(0.25))
    );
    let html = page::page(&s);
    assert!(html.contains("12.5"), "{html}");
    assert!(html.contains("4.00%"), "{html}");
    assert!(html.contains("250 ms"), "{html}");
}
