//! The Lua data plane (`--dataplane lua`): the rendered config holds only what is structural
//! (upstreams with a `balancer_by_lua` hook, server blocks, vhosts, TLS, the control listener),
//! and each pass pushes the live state — per service its servers with their weights, backups
//! and colours, as the plan says — to nginx's control endpoint without a reload.
//!
//! A pass first runs the reload plane's render → install → check → reload: with the Lua
//! templates its files change only when the structure does (a service added or removed, a
//! host, TLS, stickiness, a template), so only then does nginx reload; services nginx refuses
//! are held or left out there, as in reload mode. Then, when the state document of what is live
//! differs from what nginx holds, it is written to the state file (installed atomically:
//! a fresh nginx loads it before any push) and PUT to nginx, which answers the version it now
//! holds. A refused push keeps the last good state; an unreachable nginx is retried by the
//! daemon with backoff.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::control::{Control, ControlAddr, ControlError};
use crate::dataplane::{Applied, ApplyError};
use crate::install;
use crate::plan::Plan;
use crate::reload_plane::ReloadPlane;
use crate::state_doc::StateDoc;

/// The state file's name by default, inside `--output-dir`: where nginx already reads its
/// config (so it can read this too), kept across reboots.
pub const DEFAULT_STATE_FILE: &str = "swarmgate-state.json";
/// Where the templater installs its Lua modules (`swarmgate/*.lua`) by default, inside
/// `--output-dir` (no `*.conf` there: an `include <dir>/*.conf` does not pick them up).
pub const DEFAULT_LUA_DIR: &str = "swarmgate-lua";
/// The shared dictionary's size by default.
pub const DEFAULT_DICT_SIZE: &str = "16m";

/// The Lua data plane's settings, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LuaOptions {
    pub control: ControlAddr,
    pub state_file: PathBuf,
    pub lua_dir: PathBuf,
    pub dict_size: String,
}

pub struct LuaPlane {
    /// The structural config: rendered, installed, checked and reloaded as in reload mode.
    pub files: ReloadPlane,
    control: Control,
    state_file: PathBuf,
    /// The highest version written to the state file or answered by nginx: the next
    /// document goes above it.
    version: u64,
    /// The document nginx answered it holds; `None` when unknown (not read yet, lost).
    held: Option<StateDoc>,
}

impl LuaPlane {
    /// Reads the version the state file and nginx hold, to start above both. nginx not
    /// answering is no error: the first pass pushes (and retries) anyway.
    pub async fn start(files: ReloadPlane, opts: &LuaOptions) -> Result<LuaPlane, String> {
        let control = Control::new(opts.control.clone())?;
        let on_disk = read_file_version(&opts.state_file);
        let held = match control.get().await {
            Ok(doc) => doc,
            Err(e) => {
                tracing::info!(error = %e, "nginx does not answer on its control endpoint yet");
                None
            }
        };
        let version = on_disk.max(held.as_ref().map_or(0, |d| d.version));
        if !files.dry_run {
            let modules = opts.lua_dir.join("swarmgate");
            for (flag, dir) in [
                ("--state-file", opts.state_file.parent()),
                ("--lua-dir", Some(modules.as_path())),
            ] {
                if let Some(dir) = dir {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("{flag} directory {}: {e}", dir.display()))?;
                }
            }
        }
        tracing::info!(
            version,
            nginx_holds = held.as_ref().map(|d| d.version),
            control = %opts.control,
            "lua data plane"
        );
        Ok(LuaPlane {
            files,
            control,
            state_file: opts.state_file.clone(),
            version,
            held,
        })
    }

    pub fn state_file(&self) -> &Path {
        &self.state_file
    }

    /// Makes `new` live on top of `base`: the structure through the reload path, then the
    /// state through a push when it differs from what nginx holds.
    pub async fn apply(&mut self, new: Plan, base: &Plan) -> Result<Applied, ApplyError> {
        let mut applied = self.files.apply(new, base).await?;
        let services = StateDoc::of(&applied.plan, 0).services;
        if self.files.dry_run {
            let doc = StateDoc {
                version: self.version + 1,
                services,
            };
            println!(
                "# ---- {} ----\n{}",
                self.state_file.display(),
                String::from_utf8_lossy(&doc.to_json())
            );
            return Ok(applied);
        }
        if let Some(held) = self.held.as_ref().filter(|h| h.services == services) {
            applied.live_version = Some(held.version);
            return Ok(applied);
        }
        let doc = StateDoc {
            version: self.version + 1,
            services,
        };
        // The push first (it is what moves traffic), the file after: the file always holds what
        // nginx took, or, while nginx does not answer, what it must serve when it starts.
        let started = Instant::now();
        match self.push(doc.clone()).await {
            Ok(answered) => {
                applied.pushed = true;
                applied.push_duration = Some(started.elapsed());
                applied.live_version = Some(answered);
                let held = self.held.clone().expect("a push nginx took is held");
                self.write_file(&held)?;
                Ok(applied)
            }
            Err(e @ ApplyError::Push(_)) => {
                self.write_file(&doc)?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Installs `doc` as the state file (all or nothing, like every rendered file).
    fn write_file(&mut self, doc: &StateDoc) -> Result<(), ApplyError> {
        install::stage(&[(self.state_file.clone(), doc.to_json())])?.commit();
        self.version = self.version.max(doc.version);
        Ok(())
    }

    /// PUTs `doc`; answers the version nginx holds. A stale version (nginx holds a newer one,
    /// from another templater or a file written by hand) is pushed again above it, once.
    async fn push(&mut self, mut doc: StateDoc) -> Result<u64, ApplyError> {
        for attempt in 0..2 {
            match self.control.put(&doc).await {
                Ok(version) => {
                    doc.version = version;
                    self.version = self.version.max(version);
                    self.held = Some(doc);
                    return Ok(version);
                }
                Err(ControlError::Stale { held }) if attempt == 0 => {
                    tracing::warn!(
                        pushed = doc.version,
                        held,
                        "nginx holds a newer state version; pushing above it"
                    );
                    doc.version = held.max(self.version) + 1;
                    self.version = doc.version;
                }
                Err(e @ ControlError::Refused(_)) => {
                    // Never reused: the next document is numbered above it.
                    self.version = self.version.max(doc.version);
                    return Err(ApplyError::PushRefused(e.to_string()));
                }
                Err(e) => {
                    self.held = None;
                    return Err(ApplyError::Push(e.to_string()));
                }
            }
        }
        Err(ApplyError::Push(
            "nginx answered stale twice; another writer pushes to it".into(),
        ))
    }

    /// Reads back what nginx holds; false when it is not the version last pushed (nginx lost
    /// it, or another writer changed it), so that the next pass pushes again. Nothing to
    /// check (no push answered yet) is true: a pass is due anyway.
    pub async fn verify(&mut self) -> bool {
        let Some(held) = &self.held else {
            return true;
        };
        match self.control.get().await {
            Ok(Some(doc)) if doc.version == held.version => true,
            Ok(doc) => {
                let holds = doc.map(|d| d.version);
                tracing::warn!(
                    expected = held.version,
                    holds,
                    "nginx does not hold the state last pushed; pushing again"
                );
                self.version = self.version.max(holds.unwrap_or(0));
                self.held = None;
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading back nginx's state failed; pushing again");
                self.held = None;
                false
            }
        }
    }
}

/// The version of the state file, 0 when it is missing or unreadable.
fn read_file_version(path: &Path) -> u64 {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<StateDoc>(&b).ok())
        .map_or(0, |d| d.version)
}

#[cfg(test)]
#[path = "lua_plane_tests.rs"]
mod tests;
