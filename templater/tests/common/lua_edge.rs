//! An edge with the Lua data plane as the suites start it: a real nginx with the Lua modules
//! and the real `templater run --dataplane lua` feeding it; and the CLI run off the runtime's
//! threads, so that a load keeps running meanwhile. [`PlaneEdge`]: an edge of either data plane.

use std::process::Command;

use testkit::{eventually, ConsulAgent, LuaNginx, NginxServer};

use super::{start_templater, Templater, WAIT};

/// An nginx with the Lua modules and the templater's Lua data-plane paths.
pub struct LuaEdge {
    pub lua: LuaNginx,
}

impl LuaEdge {
    /// nginx with an empty `conf.d/`: the templater's first pass renders the data plane's
    /// files, checks them and reloads.
    pub async fn start() -> LuaEdge {
        let lua = LuaNginx::prepare(2);
        lua.start().await;
        LuaEdge { lua }
    }

    pub fn nginx(&self) -> &NginxServer {
        &self.lua.server
    }

    /// Stops nginx (gracefully: its unix sockets are removed) and starts a fresh one: an
    /// empty shared dictionary, only the state file to go by.
    pub async fn restart_nginx(&self) {
        self.stop_nginx().await;
        self.lua.start().await;
    }

    /// Stops nginx gracefully and waits until it is gone.
    pub async fn stop_nginx(&self) {
        let pid = self.nginx().master_pid();
        let _ = Command::new("kill")
            .args(["-QUIT", &pid.to_string()])
            .status();
        eventually(WAIT, "nginx exits", || async move {
            anyhow::ensure!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "still running"
            );
            Ok(())
        })
        .await;
    }

    pub fn templater(&self, consul: &ConsulAgent, extra: &[&str]) -> Templater {
        // The Lua modules: the templater's own, installed into <output-dir>/swarmgate-lua.
        let (state, socket) = (
            self.lua.state_file.display().to_string(),
            self.lua.control.display().to_string(),
        );
        let mut args = vec![
            "--dataplane",
            "lua",
            "--state-file",
            &state,
            "--control-socket",
            &socket,
        ];
        args.extend_from_slice(extra);
        start_templater(consul, self.nginx(), &args)
    }
}

/// The CLI off the runtime's threads (the load keeps running meanwhile).
pub async fn cli_async(consul: &ConsulAgent, args: &[&str]) -> (i32, String) {
    let url = consul.url();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_templater"))
            .args(["--consul", &url])
            .args(&args)
            .env_remove("CONSUL_HTTP_TOKEN")
            .output()
            .expect("run templater");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    })
    .await
    .expect("cli task")
}

/// Which data plane an edge runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plane {
    Lua,
    Reload,
}

/// An edge's nginx of either data plane (plain nginx for reload).
pub enum PlaneEdge {
    Lua(LuaEdge),
    Reload(NginxServer),
}

impl PlaneEdge {
    pub async fn start(plane: Plane) -> PlaneEdge {
        match plane {
            Plane::Lua => PlaneEdge::Lua(LuaEdge::start().await),
            Plane::Reload => PlaneEdge::Reload(NginxServer::start().await),
        }
    }

    pub fn nginx(&self) -> &NginxServer {
        match self {
            PlaneEdge::Lua(e) => e.nginx(),
            PlaneEdge::Reload(n) => n,
        }
    }

    /// The Lua plane's nginx (state file, control socket); `None` for reload.
    pub fn lua(&self) -> Option<&LuaNginx> {
        match self {
            PlaneEdge::Lua(e) => Some(&e.lua),
            PlaneEdge::Reload(_) => None,
        }
    }

    /// `templater run` for this edge's data plane, plus `extra`.
    pub fn templater(&self, consul: &ConsulAgent, extra: &[&str]) -> Templater {
        match self {
            PlaneEdge::Lua(e) => e.templater(consul, extra),
            PlaneEdge::Reload(n) => start_templater(consul, n, extra),
        }
    }
}
