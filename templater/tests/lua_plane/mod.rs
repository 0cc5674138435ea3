//! The Lua data plane's fixture: a real nginx with the Lua modules configured from the default
//! templates in lua mode (`dataplane.conf.j2`, the lua branch of `upstreams.conf.j2`, the stock
//! `vhosts.conf.j2`) for one service `app` on host `app.test`, plus a `reuseport` listener so new
//! connections spread over the workers; state documents; clients.

#![allow(dead_code)] // each test binary uses a part

use std::collections::BTreeMap;
use std::net::SocketAddr;

use minijinja::value::ValueKind;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Value};
use serde_json::json;
use templater::render::{lua_string, nginx_token};
use testkit::{free_port, LuaNginx};

pub const HOST: &str = "app.test";

/// Renders a default template with `ctx`, printing values as the templater does (strings through
/// `nginx_token`, numbers bare, the `lua_string` filter).
pub fn render(name: &str, ctx: serde_json::Value) -> String {
    let path = testkit::workspace_root().join("templates").join(name);
    let text = std::fs::read_to_string(&path).expect("template");
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::Custom("nginx"));
    env.set_keep_trailing_newline(true);
    env.set_formatter(|out, _state, value: &Value| {
        if value.is_safe() || matches!(value.kind(), ValueKind::Number | ValueKind::Bool) {
            return write!(out, "{value}").map_err(Error::from);
        }
        let s = value.as_str().unwrap_or_default();
        let token = nginx_token(s).map_err(|e| Error::new(ErrorKind::InvalidOperation, e))?;
        out.write_str(&token).map_err(Error::from)
    });
    env.add_filter("lua_string", lua_string);
    env.add_template_owned(name.to_string(), text)
        .expect("template compiles");
    env.get_template(name)
        .and_then(|t| t.render(Value::from_serialize(&ctx)))
        .expect("template renders")
}

/// The Lua unit tests (`tests/lua/unit.lua`), served at `/_unit` on the spread listener.
pub fn unit_tests() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lua/unit.lua")
}

/// A running Lua-plane nginx.
pub struct Plane {
    pub nginx: LuaNginx,
    /// Port of the stock vhost (`listen {{ listen }}`), host `app.test`.
    pub port: u16,
    /// A `reuseport` listener proxying to the same upstream: new connections spread over workers.
    pub spread: u16,
}

/// Configures (and, with `state`, writes the state file first) and starts nginx.
pub async fn plane(workers: u32, state: Option<&str>) -> Plane {
    let nginx = LuaNginx::prepare(workers);
    let dataplane = render(
        "dataplane.conf.j2",
        json!({
            "lua_dir": testkit::lua_nginx::lua_dir(),
            "state_file": nginx.state_file,
            "control_socket": nginx.control,
            "dict_size": "16m",
        }),
    );
    let upstreams = render(
        "upstreams.conf.j2",
        json!({"dataplane": "lua", "services": [{"name": "app", "upstream": "sg_app"}]}),
    );
    assert!(
        upstreams.contains(r#"balance("app")"#),
        "the name as a Lua string: {upstreams}"
    );
    let port = nginx.server.port;
    let vhosts = render(
        "vhosts.conf.j2",
        json!({"listen": port, "listen_tls": free_port(), "services": [
            {"name": "app", "upstream": "sg_app", "public": true, "host": HOST, "tls": null}]}),
    );
    let spread = free_port();
    nginx.write_conf("00-dataplane.conf", &dataplane);
    nginx.write_conf("10-upstreams.conf", &upstreams);
    nginx.write_conf("20-vhosts.conf", &vhosts);
    nginx.write_conf(
        "30-test.conf",
        &format!(
            "add_header X-Worker $pid always;\nserver {{\n    listen 127.0.0.1:{spread} reuseport;\n    \
             location / {{ proxy_pass http://sg_app; proxy_next_upstream error timeout http_502; }}\n    \
             location = /_unit {{ content_by_lua_file {}; }}\n}}\n",
            unit_tests().display()
        ),
    );
    if let Some(doc) = state {
        std::fs::write(&nginx.state_file, doc).expect("state file");
    }
    nginx.start().await;
    // Every worker up, so that a test comparing worker pids (no reload) starts from all of them.
    let want = workers as usize;
    testkit::eventually(
        std::time::Duration::from_secs(10),
        "every nginx worker",
        || async {
            let up = nginx.server.workers().len();
            anyhow::ensure!(up == want, "{up} of {want} workers");
            Ok(())
        },
    )
    .await;
    Plane {
        nginx,
        port,
        spread,
    }
}

/// One peer on 127.0.0.1 of a state document; its colour is the id up to the first `-`.
pub fn peer(id: &str, port: u16, weight: u32, backup: bool) -> serde_json::Value {
    peer_at(id, "127.0.0.1", port, weight, backup)
}

/// One peer at `address`.
pub fn peer_at(id: &str, address: &str, port: u16, weight: u32, backup: bool) -> serde_json::Value {
    json!({"id": id, "address": address, "port": port, "weight": weight,
           "backup": backup, "color": id.split('-').next()})
}

/// A state document for `app`.
pub fn doc(version: u64, peers: &[serde_json::Value]) -> String {
    sticky_doc(version, None, peers)
}

/// A state document for `app` with stickiness `sticky` ("ip_hash", "hash" or none).
pub fn sticky_doc(version: u64, sticky: Option<&str>, peers: &[serde_json::Value]) -> String {
    json!({"version": version, "services": {"app": {"sticky": sticky, "peers": peers}}}).to_string()
}

impl Plane {
    /// A keep-alive client resolving `app.test` to the vhost.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .resolve(HOST, SocketAddr::from(([127, 0, 0, 1], self.port)))
            .build()
            .expect("client")
    }

    /// A keep-alive client like [`Plane::client`] whose connections come from `ip`.
    pub fn client_from(&self, ip: std::net::IpAddr) -> reqwest::Client {
        reqwest::Client::builder()
            .resolve(HOST, SocketAddr::from(([127, 0, 0, 1], self.port)))
            .local_address(ip)
            .build()
            .expect("client")
    }

    pub fn url(&self) -> String {
        format!("http://{HOST}:{}/", self.port)
    }

    /// Pushes `doc` and insists on 200.
    pub async fn push_ok(&self, doc: &str) {
        let (status, body) = self.nginx.push(doc).await;
        assert_eq!(status, 200, "push refused: {body}");
    }
}

/// One GET on `client`: the body, or an error.
pub async fn get(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let r = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = r.status();
    let body = r.text().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("{status}: {body}"))
    }
}

/// Answers of `n` GETs on `client`, counted (failures as `error: ...`).
pub async fn tally(client: &reqwest::Client, url: &str, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let key = get(client, url)
            .await
            .unwrap_or_else(|e| format!("error: {e}"));
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// The p-th percentile (0..=100) of `xs` (sorted here).
pub fn percentile(xs: &mut [f64], p: usize) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[(xs.len() - 1) * p / 100]
}

/// One GET on a new connection: (body, worker pid from X-Worker).
pub async fn get_with_worker(port: u16) -> (String, String) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let r = client
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .expect("served");
    assert!(r.status().is_success(), "status {}", r.status());
    let worker = r
        .headers()
        .get("x-worker")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_string();
    (r.text().await.expect("body"), worker)
}
