//! The data planes the daemon drives (`--dataplane`): what a pass asks of one (make this plan
//! live on top of the live one), what it answers ([`Applied`]) and why it can fail
//! ([`ApplyError`]). [`crate::reload_plane`] renders and reloads on every change;
//! [`crate::lua_plane`] pushes instances and weights to nginx's Lua balancer and reloads only
//! when the structure changes.

use std::path::PathBuf;
use std::time::Duration;

use crate::install::InstallError;
use crate::lua_plane::LuaPlane;
use crate::plan::Plan;
use crate::reload_plane::ReloadPlane;
use crate::render::Renderer;

/// Which data plane `templater run` drives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Render every change into config files and reload nginx (plain nginx).
    #[default]
    Reload,
    /// Push instances and weights to nginx's Lua balancer; reload only for structural changes
    /// (nginx with the Lua module: OpenResty, or Debian's libnginx-mod-http-lua).
    Lua,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Reload => "reload",
            Mode::Lua => "lua",
        }
    }
}

/// Why a pass could not make its plan live.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The templates fail whatever the services (a template's own error).
    #[error("{0}")]
    Render(String),
    #[error(transparent)]
    Install(#[from] InstallError),
    /// nginx refuses the config even without any changed service (its own config, a file it
    /// reads, changed under it).
    #[error("{0}")]
    Check(String),
    /// The files are installed and checked, but nginx did not take them.
    #[error("{0}")]
    Reload(String),
    /// nginx's Lua side refused the pushed state (400): the previous state stays live.
    #[error("{0}")]
    PushRefused(String),
    /// The state could not be pushed (nginx down or restarting): retried with backoff; the
    /// state file is written, so an nginx that starts serves it.
    #[error("{0}")]
    Push(String),
}

impl ApplyError {
    /// Refused whatever the retry: only an operator's fix (or a new plan) changes the answer.
    pub fn refused(&self) -> bool {
        matches!(
            self,
            ApplyError::Render(_) | ApplyError::Check(_) | ApplyError::PushRefused(_)
        )
    }
}

/// What a pass made live.
#[derive(Debug, Default)]
pub struct Applied {
    /// The plan live now: services whose new plan failed are held or excluded in it.
    pub plan: Plan,
    pub changed_files: Vec<PathBuf>,
    pub reloaded: bool,
    /// Checks spent finding refused services.
    pub extra_checks: usize,
    /// Lua data plane: the state was pushed in this pass (it changed, or nginx lost it).
    pub pushed: bool,
    /// Lua data plane: how long the push took (PUT sent → nginx answered).
    pub push_duration: Option<Duration>,
    /// Lua data plane: the state version nginx answered it holds.
    pub live_version: Option<u64>,
}

/// Timings of the last pass, for metrics and logs.
#[derive(Debug, Default, Clone)]
pub struct Timings {
    /// Rendering the templates (with the search for a service they cannot print).
    pub render: Option<Duration>,
    /// Writing the files that went live and swapping them in.
    pub install: Option<Duration>,
    /// Each `nginx -t` (more than one while refused services are searched for).
    pub checks: Vec<Duration>,
    pub reload: Option<Duration>,
    /// The last staging (the one that goes live when the pass commits).
    pub(crate) staged: Option<Duration>,
}

/// The data plane the daemon owns.
pub enum DataPlane {
    Reload(ReloadPlane),
    Lua(LuaPlane),
}

impl DataPlane {
    pub fn mode(&self) -> Mode {
        match self {
            DataPlane::Reload(_) => Mode::Reload,
            DataPlane::Lua(_) => Mode::Lua,
        }
    }

    fn files(&self) -> &ReloadPlane {
        match self {
            DataPlane::Reload(r) => r,
            DataPlane::Lua(l) => &l.files,
        }
    }

    /// The files the data plane writes (crash recovery looks at them).
    pub fn destinations(&self) -> Vec<PathBuf> {
        let mut dests = self.files().destinations();
        if let DataPlane::Lua(l) = self {
            dests.push(l.state_file().to_path_buf());
        }
        dests
    }

    /// Replaces the templates (SIGHUP, an edited template file).
    pub fn set_renderer(&mut self, renderer: Renderer) {
        match self {
            DataPlane::Reload(r) => r.renderer = renderer,
            DataPlane::Lua(l) => l.files.renderer = renderer,
        }
    }

    /// Makes `new` live on top of `base` (the plan live now).
    pub async fn apply(&mut self, new: Plan, base: &Plan) -> Result<Applied, ApplyError> {
        match self {
            DataPlane::Reload(r) => r.apply(new, base).await,
            DataPlane::Lua(l) => l.apply(new, base).await,
        }
    }

    /// The reload plane's timings of the last pass.
    pub fn timings(&self) -> Timings {
        self.files().timings()
    }
}
