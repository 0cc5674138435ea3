//! A real nginx with the Lua modules (Debian's libnginx-mod-http-lua, lua-resty-core, lua-cjson)
//! for the Lua data plane: its own prefix, a control unix socket, a state file, and a small
//! client for the control endpoint. The test writes the `conf.d/` files (rendered dataplane,
//! upstreams, a vhost), then starts it; stopped on drop (it is an [`NginxServer`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::{eventually, free_port, unique, workspace_root, NginxServer};

/// The directory holding `swarmgate/*.lua`.
pub fn lua_dir() -> PathBuf {
    workspace_root().join("templates/lua")
}

/// An nginx prepared (config written) and, after [`LuaNginx::start`], running.
pub struct LuaNginx {
    pub server: NginxServer,
    /// The control listener's unix socket.
    pub control: PathBuf,
    /// Where the state document is written for nginx to load at start.
    pub state_file: PathBuf,
}

impl LuaNginx {
    /// Writes `nginx.conf` (the Lua modules loaded, `workers` worker processes, `include
    /// conf.d/*.conf;` in `http`); nothing runs yet.
    pub fn prepare(workers: u32) -> Self {
        let dir = std::env::temp_dir().join(unique("nginx-lua"));
        std::fs::create_dir_all(dir.join("conf.d")).expect("conf.d");
        std::fs::create_dir_all(dir.join("tmp")).expect("tmp");
        let d = dir.display();
        let conf = format!(
            "load_module /usr/lib/nginx/modules/ndk_http_module.so;\n\
             load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;\n\
             worker_processes {workers};\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 1024; }}\nhttp {{\n  access_log off;\n  \
             client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy; \
             fastcgi_temp_path {d}/tmp/fcgi; uwsgi_temp_path {d}/tmp/uwsgi; \
             scgi_temp_path {d}/tmp/scgi;\n  include {d}/conf.d/*.conf;\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        LuaNginx {
            control: dir.join("control.sock"),
            state_file: dir.join("state.json"),
            server: NginxServer {
                dir,
                port: free_port(),
            },
        }
    }

    /// Writes `conf.d/<name>`.
    pub fn write_conf(&self, name: &str, text: &str) {
        std::fs::write(self.server.conf_d().join(name), text).expect("write conf.d file");
    }

    /// Checks and starts nginx; waits for its workers.
    pub async fn start(&self) {
        let out = Command::new("nginx")
            .args(self.args())
            .arg("-t")
            .output()
            .expect("run nginx -t (apt-get install nginx-light libnginx-mod-http-lua)");
        assert!(
            out.status.success(),
            "nginx -t refused the config: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let status = Command::new("nginx")
            .args(self.args())
            .status()
            .expect("run nginx");
        assert!(
            status.success(),
            "nginx did not start: {}",
            self.server.error_log()
        );
        let pid = self.server.pid_file();
        eventually(Duration::from_secs(10), "nginx writes its pid", || {
            let pid = pid.clone();
            async move { std::fs::read_to_string(&pid).map(drop) }
        })
        .await;
        self.wait_workers(|w| !w.is_empty()).await;
    }

    fn args(&self) -> Vec<String> {
        vec![
            "-c".into(),
            self.server.conf().display().to_string(),
            "-p".into(),
            self.server.dir.display().to_string(),
        ]
    }

    /// Reloads (SIGHUP) and waits until none of the old workers is left.
    pub async fn reload(&self) {
        let old = self.server.workers();
        let status = Command::new("kill")
            .args(["-HUP", &self.server.master_pid().to_string()])
            .status()
            .expect("kill -HUP");
        assert!(status.success(), "SIGHUP nginx");
        self.wait_workers(move |w| !w.is_empty() && w.iter().all(|p| !old.contains(p)))
            .await;
    }

    async fn wait_workers(&self, done: impl Fn(&[u32]) -> bool) {
        let done = &done;
        eventually(Duration::from_secs(10), "nginx workers", || async move {
            let w = self.server.workers();
            if done(&w) {
                Ok(())
            } else {
                Err(format!("workers now {w:?}"))
            }
        })
        .await;
    }

    /// One request to the control endpoint: `(status, body)`.
    pub async fn control(&self, method: &str, body: &[u8]) -> (u16, String) {
        control_request(&self.control, method, "/state", body)
            .await
            .unwrap_or_else(|e| panic!("control {method}: {e}"))
    }

    /// PUT /state with `doc`.
    pub async fn push(&self, doc: &str) -> (u16, String) {
        self.control("PUT", doc.as_bytes()).await
    }

    /// The version GET /state reports (None before the first document).
    pub async fn held_version(&self) -> Option<u64> {
        let (status, body) = self.control("GET", b"").await;
        assert_eq!(status, 200, "GET /state: {body}");
        let doc: serde_json::Value = serde_json::from_str(&body).expect("GET /state is JSON");
        doc["version"].as_u64()
    }
}

/// An HTTP/1.1 request on a new unix-socket connection (closed after the answer).
pub async fn control_request(
    socket: &Path,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut conn = UnixStream::connect(socket).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: control\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    // nginx may answer (413) before reading a large body and close: a failed write is no error.
    let _ = conn.write_all(body).await;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP status in {text:?}")))?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok((status, dechunk(body)));
    }
    Ok((status, body.trim_end().to_string()))
}

/// The body of a chunked answer (nginx chunks Lua output).
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        match usize::from_str_radix(size.trim(), 16) {
            Ok(n) if n > 0 && tail.len() >= n => {
                out.push_str(&tail[..n]);
                rest = tail[n..].strip_prefix("\r\n").unwrap_or(&tail[n..]);
            }
            _ => break,
        }
    }
    out.trim_end().to_string()
}
