//! `templater run`: the render loop. It owns the renderer and the install state; the Consul
//! watchers publish the latest catalog and settings, SIGHUP and template edits ask for a
//! reload, and quiescence decides when a pass runs. A pass renders, installs, reloads nginx
//! once, then acknowledges the deploy settings it made live and updates its status record.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use swarmgate_consul::{Client, ConsulConfig};
use tokio::sync::{mpsc, watch as latest};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::context::{self, ContextOptions, ContextWarning};
use crate::guard::Guard;
use crate::metrics::Metrics;
use crate::model::Catalog;
use crate::nginx::{self, InstallError, Nginx};
use crate::quiesce::Quiesce;
use crate::render::{Renderer, TemplateSpec};
use crate::report::{ack_key, daemon_dir, status_key, unix_now, Ack, DaemonStatus};
use crate::settings::Settings;
use crate::watch::{watch_settings, CatalogWatcher};

/// How long a template edit must settle before it is read.
const EDIT_SETTLE: Duration = Duration::from_millis(100);

/// Everything `templater run` needs, checked.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub consul: ConsulConfig,
    pub kv_prefix: String,
    pub templates: Vec<TemplateSpec>,
    pub nginx: Nginx,
    pub wait: (Duration, Duration),
    /// Longest blocking-query wait.
    pub watch_wait: Duration,
    pub context: ContextOptions,
    pub once: bool,
    pub dry_run: bool,
    pub metrics_addr: Option<SocketAddr>,
    /// This templater's name in KV (acknowledgements, status).
    pub name: String,
    pub hold: Duration,
}

/// Why `run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Consul(#[from] swarmgate_consul::Error),
    #[error("{0}")]
    Template(String),
    #[error("metrics endpoint: {0}")]
    Metrics(#[source] std::io::Error),
    #[error("the render pass failed: {0}")]
    PassFailed(String),
}

/// Runs until cancelled (or after one pass with `--once`).
pub async fn run(cfg: RunConfig, token: CancellationToken) -> Result<(), RunError> {
    let client = Client::new(&cfg.consul)?;
    let dests: Vec<PathBuf> = cfg.templates.iter().map(|t| t.dest.clone()).collect();
    if !cfg.dry_run {
        for restored in nginx::recover(&dests) {
            tracing::warn!(file = %restored.display(), "rolled back an install interrupted by a crash");
        }
    }
    let renderer = Renderer::load(&cfg.templates).map_err(RunError::Template)?;
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = cfg.metrics_addr {
        swarmgate_runtime::http::serve(addr, metrics.clone(), token.clone())
            .await
            .map_err(RunError::Metrics)?;
    }
    let (catalog_tx, catalog_rx) = latest::channel(None);
    let (settings_tx, settings_rx) = latest::channel(None);
    let (reload_tx, reload_rx) = mpsc::channel(8);
    let tracker = TaskTracker::new();
    let watcher = CatalogWatcher {
        client: client.clone(),
        wait: cfg.watch_wait,
        guard: Guard::new(cfg.hold),
        tx: catalog_tx,
        metrics: metrics.clone(),
    };
    tracker.spawn(
        watcher
            .run(token.child_token())
            .instrument(tracing::info_span!("catalog")),
    );
    tracker.spawn(
        watch_settings(
            client.clone(),
            cfg.kv_prefix.clone(),
            cfg.context.colors.clone(),
            cfg.watch_wait,
            settings_tx,
            metrics.clone(),
            token.child_token(),
        )
        .instrument(tracing::info_span!("settings")),
    );
    let _file_watcher =
        crate::reload::spawn(&cfg.templates, reload_tx.clone(), token.child_token());
    let mut daemon = Daemon {
        client,
        metrics,
        renderer,
        quiesce: Quiesce::new(cfg.wait.0, cfg.wait.1),
        acked: HashMap::new(),
        warned: HashSet::new(),
        status: DaemonStatus {
            name: cfg.name.clone(),
            ..DaemonStatus::default()
        },
        written: None,
        cfg,
    };
    let result = daemon
        .run(catalog_rx, settings_rx, reload_rx, token.clone())
        .await;
    token.cancel();
    tracker.close();
    tracker.wait().await;
    daemon.leave().await;
    result
}

struct Daemon {
    client: Client,
    cfg: RunConfig,
    metrics: Arc<Metrics>,
    renderer: Renderer,
    quiesce: Quiesce,
    /// Settings index each service was last acknowledged at.
    acked: HashMap<String, u64>,
    warned: HashSet<ContextWarning>,
    status: DaemonStatus,
    written: Option<DaemonStatus>,
}

impl Daemon {
    async fn run(
        &mut self,
        mut catalog: latest::Receiver<Option<Arc<Catalog>>>,
        mut settings: latest::Receiver<Option<Arc<Settings>>>,
        mut reloads: mpsc::Receiver<crate::reload::Reload>,
        token: CancellationToken,
    ) -> Result<(), RunError> {
        let mut reload_at: Option<Instant> = None;
        loop {
            let ready = catalog.borrow().is_some() && settings.borrow().is_some();
            let render_at = self.quiesce.deadline().filter(|_| ready);
            tokio::select! {
                _ = token.cancelled() => return Ok(()),
                r = catalog.changed() => { if r.is_err() { return Ok(()) } self.quiesce.changed(Instant::now()) }
                r = settings.changed() => { if r.is_err() { return Ok(()) } self.quiesce.changed(Instant::now()) }
                Some(why) = reloads.recv() => {
                    let settle = if why == crate::reload::Reload::Signal { Duration::ZERO } else { EDIT_SETTLE };
                    reload_at = Some(Instant::now() + settle);
                }
                _ = sleep_until(reload_at) => {
                    reload_at = None;
                    self.reload_templates();
                    self.quiesce.changed(Instant::now());
                }
                _ = sleep_until(render_at) => {
                    let c = catalog.borrow().clone().expect("ready");
                    let s = settings.borrow().clone().expect("ready");
                    let result = self.pass(&c, &s).await;
                    self.quiesce.rendered(Instant::now());
                    if self.cfg.once {
                        return result.map_err(RunError::PassFailed);
                    }
                }
            }
        }
    }

    fn reload_templates(&mut self) {
        match Renderer::load(&self.cfg.templates) {
            Ok(r) => {
                tracing::info!("templates reloaded");
                self.renderer = r;
            }
            Err(e) => {
                self.metrics.render_errors.inc();
                tracing::error!(error = %e, "template does not compile; keeping the last good templates");
                self.status.last_error = Some(e);
                self.status.last_error_unix = Some(unix_now());
            }
        }
    }

    async fn pass(&mut self, catalog: &Catalog, settings: &Settings) -> Result<(), String> {
        self.metrics.renders.inc();
        let started = std::time::Instant::now();
        // The context borrows the catalog; it is dropped before installing.
        let (rendered, services) = {
            let (ctx, warnings) = context::build(catalog, settings, &self.cfg.context);
            for w in warnings
                .into_iter()
                .filter(|w| self.warned.insert(w.clone()))
            {
                tracing::warn!(warning = %w.0, "public settings ignored");
            }
            (self.renderer.render(&ctx), ctx.services.len())
        };
        let result = match rendered {
            Err(e) => {
                self.metrics.render_errors.inc();
                Err(e)
            }
            Ok(files) if self.cfg.dry_run => {
                for (dest, bytes) in files {
                    println!(
                        "# ---- {} ----\n{}",
                        dest.display(),
                        String::from_utf8_lossy(&bytes)
                    );
                }
                Ok(())
            }
            Ok(files) => {
                let rendered_us = started.elapsed().as_micros() as u64;
                let r = self.install(&files).await;
                tracing::debug!(
                    rendered_us,
                    installed_us = started.elapsed().as_micros() as u64,
                    "pass"
                );
                r
            }
        };
        self.metrics
            .last_pass_failed
            .set(i64::from(result.is_err()));
        match &result {
            Ok(()) => {}
            Err(e) => {
                tracing::error!(error = %e, "render pass failed; the last good config stays live");
                self.status.last_error = Some(e.clone());
                self.status.last_error_unix = Some(unix_now());
            }
        }
        if !self.cfg.dry_run {
            self.status.services = services;
            self.status.held = self.metrics.held.get() == 1;
            if result.is_ok() {
                self.acknowledge(settings).await;
            }
            self.write_status().await;
        }
        swarmgate_runtime::memory::release_free_memory();
        result
    }

    async fn install(&mut self, files: &[(PathBuf, Vec<u8>)]) -> Result<(), String> {
        match self.cfg.nginx.install(files).await {
            Ok(done) => {
                if !done.changed.is_empty() {
                    self.metrics.installs.inc();
                    let now = unix_now();
                    self.metrics.last_install_unix.set(now as i64);
                    self.status.last_install_unix = Some(now);
                    let changed: Vec<_> = done
                        .changed
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect();
                    tracing::info!(files = ?changed, reloaded = done.reloaded, "installed");
                }
                if done.reloaded {
                    self.metrics.reloads.inc();
                }
                Ok(())
            }
            Err(e) => {
                if matches!(e, InstallError::CheckFailed { .. }) {
                    self.metrics.check_failures.inc();
                }
                Err(e.to_string())
            }
        }
    }

    /// Writes an acknowledgement for each service whose settings changed since the last one.
    async fn acknowledge(&mut self, settings: &Settings) {
        let due: Vec<_> = settings
            .iter()
            .filter(|(svc, s)| self.acked.get(*svc) != Some(&s.index))
            .collect();
        let (prefix, name, client) = (&self.cfg.kv_prefix, &self.cfg.name, &self.client);
        let done: Vec<_> = futures_util::stream::iter(due)
            .map(|(svc, s)| async move {
                let ack = Ack {
                    index: s.index,
                    active: s.active.clone(),
                    canary: s.canary,
                    at_unix: unix_now(),
                };
                let body = serde_json::to_vec(&ack).expect("ack serialises");
                client
                    .kv_put(&ack_key(prefix, name, svc), &body)
                    .await
                    .map(|()| (svc.clone(), s.index))
            })
            .buffer_unordered(8)
            .collect()
            .await;
        for r in done {
            match r {
                Ok((svc, index)) => {
                    self.acked.insert(svc, index);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "writing an install acknowledgement failed; will retry next pass")
                }
            }
        }
    }

    async fn write_status(&mut self) {
        if self.written.as_ref() == Some(&self.status) {
            return;
        }
        let body = serde_json::to_vec(&self.status).expect("status serialises");
        match self
            .client
            .kv_put(&status_key(&self.cfg.kv_prefix, &self.cfg.name), &body)
            .await
        {
            Ok(()) => self.written = Some(self.status.clone()),
            Err(e) => tracing::warn!(error = %e, "writing the status record failed"),
        }
    }

    /// On a clean exit, withdraw this daemon's acknowledgements so deploys do not wait on it.
    async fn leave(&self) {
        if self.cfg.dry_run {
            return;
        }
        let tree = format!(
            "{}installed/",
            daemon_dir(&self.cfg.kv_prefix, &self.cfg.name)
        );
        let _ =
            tokio::time::timeout(Duration::from_secs(2), self.client.kv_delete_tree(&tree)).await;
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
