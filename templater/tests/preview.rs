//! The preview header and the canary cookie through the real `templater run`, a real Consul and
//! a real nginx, on both data planes: a header naming a colour reaches it at canary 0 (the Lua
//! plane also answers `X-Swarmgate-Color`); a colour with no healthy instance answers 503 naming
//! it, never the other colour; garbage is ignored; without meta `preview` (or `--preview`) the
//! header does nothing. Lua plane only: the canary cookie keeps a user on the canary while it
//! lasts, and is ignored at canary 0.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use common::lua_edge::{Plane, PlaneEdge};
use common::*;
use serde_json::json;
use templater::state_doc::StateDoc;
use testkit::{eventually, unique, Backend, ConsulAgent};

const HEADER: &str = "X-Swarmgate-Color";

/// One answer through the edge.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
    /// `X-Swarmgate-Color`, when answered.
    served: Option<String>,
    set_cookie: Vec<String>,
}

/// A client of the edge on `port` for virtual host `host`.
struct Edge {
    client: reqwest::Client,
    url: String,
}

impl Edge {
    fn new(port: u16, host: &str) -> Edge {
        Edge {
            client: reqwest::Client::builder()
                .resolve(host, SocketAddr::from(([127, 0, 0, 1], port)))
                .build()
                .expect("client"),
            url: format!("http://{host}:{port}/"),
        }
    }

    /// A GET with `headers`.
    async fn get(&self, headers: &[(&str, &str)]) -> anyhow::Result<Answer> {
        let mut req = self.client.get(&self.url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await?;
        let h = r.headers();
        let served = h
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let set_cookie = h
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(String::from))
            .collect();
        Ok(Answer {
            status: r.status().as_u16(),
            served,
            set_cookie,
            body: r.text().await?.trim().to_string(),
        })
    }

    /// Answers of `n` GETs with `headers`, as "<status> <body>".
    async fn tally(&self, headers: &[(&str, &str)], n: usize) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for _ in 0..n {
            let key = match self.get(headers).await {
                Ok(a) => format!("{} {}", a.status, a.body),
                Err(e) => format!("error: {e}"),
            };
            *counts.entry(key).or_insert(0) += 1;
        }
        counts
    }

    /// Waits until `n` GETs with `headers` all answer `want` ("<status> <body>").
    async fn only(&self, headers: &[(&str, &str)], want: &str, n: usize) {
        eventually(
            WAIT,
            &format!("{headers:?} answers only {want:?}"),
            || async {
                let got = self.tally(headers, n).await;
                anyhow::ensure!(got.len() == 1 && got.contains_key(want), "{got:?}");
                Ok(())
            },
        )
        .await;
    }
}

/// Registers `id` of `service` on `backend`'s port with `color`, tag `public` and `meta`, and a
/// passing TTL check; answers the check id.
async fn register(
    consul: &ConsulAgent,
    (service, id, color): (&str, &str, &str),
    backend: &Backend,
    meta: &[(&str, &str)],
) -> String {
    let check = format!("ttl-{id}");
    let meta: BTreeMap<&str, &str> = meta.iter().copied().collect();
    let body = json!({
        "ID": id, "Name": service, "Address": "127.0.0.1", "Port": backend.port,
        "Tags": [color, "public"], "Meta": meta,
        "Checks": [{"CheckID": check, "Name": "ttl", "TTL": "10m", "Status": "passing"}],
    });
    consul
        .put_json("/v1/agent/service/register", &body)
        .await
        .expect("register");
    check
}

/// An edge of `plane` and the templater driving it.
struct Stack {
    edge: PlaneEdge,
    _templater: Templater,
}

impl Stack {
    async fn start(consul: &ConsulAgent, plane: Plane, extra: &[&str]) -> Stack {
        let edge = PlaneEdge::start(plane).await;
        let templater = edge.templater(consul, extra);
        Stack {
            edge,
            _templater: templater,
        }
    }

    fn port(&self) -> u16 {
        self.edge.nginx().port
    }
}

fn flip(consul: &ConsulAgent, svc: &str, color: &str) {
    let (code, out) = cli_text(consul, &["flip", svc, color, "--wait-live", "20"]);
    assert_eq!(code, 0, "flip: {out}");
}

/// Blue active at canary 0 with a passing green: the header reaches green, garbage and unknown
/// colours are ignored; green's only instance failing: 503 naming green, never blue.
async fn preview_reaches_the_colour_and_never_another(plane: Plane) {
    let consul = ConsulAgent::start().await;
    let svc = unique("pv");
    let (blue, green) = (Backend::start("blue"), Backend::start("green"));
    let meta = [("preview", "true")];
    register(&consul, (&svc, &format!("{svc}-b"), "blue"), &blue, &meta).await;
    let g = register(&consul, (&svc, &format!("{svc}-g"), "green"), &green, &meta).await;
    let stack = Stack::start(&consul, plane, &[]).await;
    flip(&consul, &svc, "blue");
    let edge = Edge::new(stack.port(), &format!("{svc}.localhost"));

    edge.only(&[], "200 blue", 10).await;
    edge.only(&[(HEADER, "green")], "200 green", 10).await;
    edge.only(&[(HEADER, "blue")], "200 blue", 5).await;
    let a = edge.get(&[(HEADER, "green")]).await.expect("answer");
    if plane == Plane::Lua {
        assert_eq!(a.served.as_deref(), Some("green"), "{a:?}");
    }
    for garbage in ["purple", "GREEN", "green;blue", "gr\"een", ""] {
        let got = edge.tally(&[(HEADER, garbage)], 5).await;
        assert_eq!(got.keys().collect::<Vec<_>>(), ["200 blue"], "{garbage:?}");
    }

    set_check(&consul, &g, "critical").await;
    let no_green = format!("503 swarmgate: {svc} has no healthy green instance");
    edge.only(&[(HEADER, "green")], &no_green, 20).await;
    edge.only(&[], "200 blue", 5).await;
    if let Some(lua) = stack.edge.lua() {
        // nginx's canonical form of the pinning reads back as what the templater pushed.
        let (status, held) = lua.control("GET", b"").await;
        assert_eq!(status, 200, "{held}");
        let held: StateDoc = serde_json::from_str(&held).expect("GET /state");
        let file = std::fs::read(&lua.state_file).expect("state file");
        let pushed: StateDoc = serde_json::from_slice(&file).expect("state file");
        assert_eq!(held, pushed);
        assert_eq!(
            held.services[&svc]
                .preview
                .as_ref()
                .map(|p| p["green"].len()),
            Some(0)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_plane_preview_reaches_the_colour_and_never_another() {
    preview_reaches_the_colour_and_never_another(Plane::Reload).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lua_plane_preview_reaches_the_colour_and_never_another() {
    preview_reaches_the_colour_and_never_another(Plane::Lua).await;
}

/// Without meta `preview` the header does nothing; `--preview` (here with its own header name)
/// turns it on for every service.
async fn preview_is_off_unless_asked(plane: Plane) {
    let consul = ConsulAgent::start().await;
    let svc = unique("off");
    let (blue, green) = (Backend::start("blue"), Backend::start("green"));
    register(&consul, (&svc, &format!("{svc}-b"), "blue"), &blue, &[]).await;
    register(&consul, (&svc, &format!("{svc}-g"), "green"), &green, &[]).await;
    let host = format!("{svc}.localhost");
    {
        let stack = Stack::start(&consul, plane, &[]).await;
        flip(&consul, &svc, "blue");
        let edge = Edge::new(stack.port(), &host);
        edge.only(&[], "200 blue", 5).await;
        let got = edge.tally(&[(HEADER, "green")], 20).await;
        assert_eq!(got.keys().collect::<Vec<_>>(), ["200 blue"], "{got:?}");
        let a = edge.get(&[(HEADER, "green")]).await.expect("answer");
        assert_eq!(a.served, None, "no preview, no header");
    }
    let stack = Stack::start(
        &consul,
        plane,
        &["--preview", "--preview-header", "X-Ci-Colour"],
    )
    .await;
    let edge = Edge::new(stack.port(), &host);
    edge.only(&[("X-Ci-Colour", "green")], "200 green", 10)
        .await;
    let got = edge.tally(&[(HEADER, "green")], 10).await;
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        ["200 blue"],
        "the other header name: {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_plane_preview_is_off_unless_asked() {
    preview_is_off_unless_asked(Plane::Reload).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lua_plane_preview_is_off_unless_asked() {
    preview_is_off_unless_asked(Plane::Lua).await;
}

/// Lua plane, meta `canary_cookie=true`, canary 50: a user sent to green gets the cookie and then
/// only green; a user on blue gets none; at canary 0 the cookie is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lua_plane_canary_cookie_keeps_a_user_on_the_canary() {
    let consul = ConsulAgent::start().await;
    let svc = unique("ck");
    let (blue, green) = (Backend::start("blue"), Backend::start("green"));
    let meta = [("canary_cookie", "true")];
    register(&consul, (&svc, &format!("{svc}-b"), "blue"), &blue, &meta).await;
    register(&consul, (&svc, &format!("{svc}-g"), "green"), &green, &meta).await;
    let stack = Stack::start(&consul, Plane::Lua, &[]).await;
    flip(&consul, &svc, "blue");
    let (code, out) = cli_text(&consul, &["canary", &svc, "50", "--wait-live", "20"]);
    assert_eq!(code, 0, "canary: {out}");
    let edge = Edge::new(stack.port(), &format!("{svc}.localhost"));
    let key = format!("swarmgate_{svc}");

    let mut cookie = None;
    for _ in 0..20 {
        let a = edge.get(&[]).await.expect("answer");
        match a.body.as_str() {
            "green" => {
                assert_eq!(
                    a.set_cookie,
                    [format!("{key}=green; Path=/; HttpOnly")],
                    "{a:?}"
                );
                cookie = Some(format!("{key}=green"));
            }
            _ => assert!(a.set_cookie.is_empty(), "blue sets no cookie: {a:?}"),
        }
    }
    let cookie = cookie.expect("50% canary: some of 20 requests reached green");
    let with = [("Cookie", cookie.as_str())];
    let got = edge.tally(&with, 20).await;
    assert_eq!(got.keys().collect::<Vec<_>>(), ["200 green"], "{got:?}");
    let other = format!("a=1; {cookie}; b=2");
    let got = edge.tally(&[("Cookie", other.as_str())], 10).await;
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        ["200 green"],
        "among cookies: {got:?}"
    );
    let bogus = format!("{key}=purple");
    let got = edge.tally(&[("Cookie", bogus.as_str())], 20).await;
    assert_eq!(got.len(), 2, "an unknown colour: normal weights: {got:?}");

    let (code, out) = cli_text(&consul, &["canary", &svc, "0", "--wait-live", "20"]);
    assert_eq!(code, 0, "canary 0: {out}");
    edge.only(&with, "200 blue", 20).await;
    let a = edge.get(&with).await.expect("answer");
    assert!(a.set_cookie.is_empty(), "canary 0 sets no cookie: {a:?}");
}
