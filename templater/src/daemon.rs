//! `templater run`: the render loop. It owns the data plane and what is live; the Consul
//! watchers publish the latest catalog view and settings, SIGHUP and template edits ask for a
//! re-render, and quiescence decides when a pass runs. A pass builds the plan, makes it live
//! through the data plane, then publishes what is live. A failed pass is retried with backoff
//! without waiting for Consul to change.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use swarmgate_consul::{Client, ConsulConfig};
use swarmgate_runtime::deadline::{sleep_until, tick};
use tokio::sync::{mpsc, watch as latest};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::control::Control;
use crate::dataplane::{Applied, ApplyError, DataPlane};
use crate::guard::Guard;
use crate::install;
use crate::keys::Keys;
use crate::lua_plane::{LuaOptions, LuaPlane};
use crate::metrics::{Metrics, PassOutcome};
use crate::nginx::Nginx;
use crate::plan::{self, Disk, Plan, PlanOptions};
use crate::publish::Publisher;
use crate::quiesce::Quiesce;
use crate::reload_plane::ReloadPlane;
use crate::render::{Page, Renderer, TemplateSpec};
use crate::rerender::Rerender;
use crate::settings::Settings;
use crate::traffic_syslog::TrafficSocket;
use crate::watch::{watch_settings, CatalogWatcher, View};

/// How long a refused config waits before it is tried again (edits and Consul changes retry
/// at once).
const RETRY_REFUSED: Duration = Duration::from_secs(30);
/// How long a template edit must settle before it is read.
const EDIT_SETTLE: Duration = Duration::from_millis(100);

/// Everything `templater run` needs, checked.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub consul: ConsulConfig,
    pub keys: Keys,
    pub templates: Vec<TemplateSpec>,
    pub nginx: Nginx,
    pub wait: (Duration, Duration),
    /// Longest blocking-query wait.
    pub watch_wait: Duration,
    pub plan: PlanOptions,
    pub page: Page,
    pub once: bool,
    pub dry_run: bool,
    pub metrics_addr: Option<SocketAddr>,
    /// This templater's name in KV (records, acknowledgements).
    pub name: String,
    pub hold: Duration,
    /// The Lua data plane's settings; `None`: the reload data plane.
    pub lua: Option<LuaOptions>,
    /// Where nginx's traffic log is received (reload data plane, as a daemon); `None`: no
    /// receiver, and the templates print no traffic log.
    pub traffic_listen: Option<SocketAddr>,
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
    #[error("data plane: {0}")]
    DataPlane(String),
    #[error("traffic log receiver {addr}: {source}")]
    TrafficListen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Runs until cancelled (or after one pass with `--once`).
pub async fn run(mut cfg: RunConfig, token: CancellationToken) -> Result<(), RunError> {
    let client = Client::new(&cfg.consul)?;
    // Bound before the first render, which prints its address.
    let traffic_socket = match cfg.traffic_listen {
        Some(addr) => Some(
            TrafficSocket::bind(addr)
                .await
                .map_err(|source| RunError::TrafficListen { addr, source })?,
        ),
        None => None,
    };
    cfg.page.traffic = traffic_socket
        .as_ref()
        .map(|s| crate::traffic_syslog::page(s.local_addr()));
    let renderer = Renderer::load(&cfg.templates).map_err(RunError::Template)?;
    let files = ReloadPlane::new(renderer, cfg.page.clone(), cfg.nginx.clone(), cfg.dry_run);
    let plane = match &cfg.lua {
        None => DataPlane::Reload(files),
        Some(opts) => DataPlane::Lua(
            LuaPlane::start(files, opts)
                .await
                .map_err(RunError::DataPlane)?,
        ),
    };
    if !cfg.dry_run {
        for restored in install::recover(&plane.destinations()) {
            tracing::warn!(file = %restored.display(), "rolled back an install interrupted by a crash");
        }
    }
    let metrics = Arc::new(Metrics::default());
    let publisher = Publisher::new(client.clone(), &cfg, plane.mode().as_str());
    if let Some(addr) = cfg.metrics_addr {
        let consul_up = {
            let m = metrics.clone();
            Arc::new(move || m.consul_up.get() == 1)
        };
        let routes = swarmgate_runtime::http::status_routes(metrics.clone()).merge(
            crate::dashboard::routes(publisher.live(), metrics.traffic.clone(), consul_up),
        );
        swarmgate_runtime::http::serve(addr, routes, token.clone())
            .await
            .map_err(RunError::Metrics)?;
    }
    let (catalog_tx, catalog_rx) = latest::channel(None);
    let (settings_tx, settings_rx) = latest::channel(None);
    let (rerender_tx, rerender_rx) = mpsc::channel(8);
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
            cfg.keys.clone(),
            cfg.plan.colors.clone(),
            cfg.watch_wait,
            settings_tx,
            metrics.clone(),
            token.child_token(),
        )
        .instrument(tracing::info_span!("settings")),
    );
    if let Some(opts) = cfg.lua.as_ref().filter(|_| !cfg.dry_run) {
        let control = Control::new(opts.control.clone()).map_err(RunError::DataPlane)?;
        tracker.spawn(
            crate::traffic::poll(
                control,
                metrics.traffic.clone(),
                publisher.live(),
                token.child_token(),
            )
            .instrument(tracing::info_span!("traffic")),
        );
    }
    if !cfg.dry_run {
        let publisher = crate::traffic_publish::TrafficPublisher {
            client: client.clone(),
            keys: cfg.keys.clone(),
            edge: cfg.name.clone(),
            traffic: metrics.traffic.clone(),
            settings: settings_rx.clone(),
        };
        tracker.spawn(
            publisher
                .run(token.child_token())
                .instrument(tracing::info_span!("traffic-publish")),
        );
    }
    if let Some(socket) = traffic_socket {
        tracker.spawn(
            socket
                .run(
                    metrics.traffic.clone(),
                    publisher.live(),
                    token.child_token(),
                )
                .instrument(tracing::info_span!("traffic")),
        );
    }
    let _file_watcher =
        crate::rerender::spawn(&cfg.templates, rerender_tx.clone(), token.child_token());
    if !cfg.dry_run {
        publisher.forget_legacy().await;
    }
    let mut daemon = Daemon {
        metrics,
        plane,
        quiesce: Quiesce::new(cfg.wait.0, cfg.wait.1),
        live: Plan::default(),
        publisher,
        backoff: Box::new(swarmgate_runtime::retry::default_backoff()),
        retry_at: None,
        warned: Default::default(),
        cfg,
    };
    let result = daemon
        .run(catalog_rx, settings_rx, rerender_rx, token.clone())
        .await;
    token.cancel();
    tracker.close();
    tracker.wait().await;
    if !daemon.cfg.dry_run {
        daemon.publisher.leave().await;
    }
    result
}

struct Daemon {
    cfg: RunConfig,
    metrics: Arc<Metrics>,
    plane: DataPlane,
    quiesce: Quiesce,
    /// The plan live now (what nginx took).
    live: Plan,
    publisher: Publisher,
    backoff: Box<dyn Iterator<Item = Duration> + Send>,
    /// When a failed pass (or an unwritten record) is tried again.
    retry_at: Option<Instant>,
    /// Plan warnings already logged.
    warned: std::collections::HashSet<(String, String)>,
}

impl Daemon {
    async fn run(
        &mut self,
        mut catalog: latest::Receiver<Option<View>>,
        mut settings: latest::Receiver<Option<Arc<Settings>>>,
        mut rerenders: mpsc::Receiver<Rerender>,
        token: CancellationToken,
    ) -> Result<(), RunError> {
        let mut reload_at: Option<Instant> = None;
        let mut heartbeat = tokio::time::interval_at(
            Instant::now() + crate::records::HEARTBEAT,
            crate::records::HEARTBEAT,
        );
        loop {
            let ready = catalog.borrow().is_some() && settings.borrow().is_some();
            let render_at = self.quiesce.deadline().filter(|_| ready);
            tokio::select! {
                _ = token.cancelled() => return Ok(()),
                r = catalog.changed() => { if r.is_err() { return Ok(()) } self.quiesce.changed(Instant::now()) }
                r = settings.changed() => { if r.is_err() { return Ok(()) } self.quiesce.changed(Instant::now()) }
                Some(why) = rerenders.recv() => {
                    let settle = if why == Rerender::Signal { Duration::ZERO } else { EDIT_SETTLE };
                    reload_at = Some(Instant::now() + settle);
                }
                _ = sleep_until(reload_at) => {
                    reload_at = None;
                    self.reload_templates();
                    self.quiesce.changed(Instant::now());
                }
                _ = sleep_until(self.retry_at) => {
                    self.retry_at = None;
                    self.quiesce.changed(Instant::now());
                }
                _ = tick(Some(&mut heartbeat)), if !self.cfg.dry_run => {
                    self.publisher.heartbeat().await;
                    if let DataPlane::Lua(lua) = &mut self.plane {
                        if !lua.verify().await {
                            self.quiesce.changed(Instant::now());
                        }
                    }
                }
                _ = sleep_until(render_at) => {
                    let view = catalog.borrow().clone().expect("ready");
                    let s = settings.borrow().clone().expect("ready");
                    let result = self.pass(&view, &s).await;
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
                self.plane.set_renderer(r);
            }
            Err(e) => {
                self.metrics.render_errors.inc();
                tracing::error!(error = %e, "template does not compile; keeping the last good templates");
                self.publisher.failed(&e);
            }
        }
    }

    async fn pass(&mut self, view: &View, settings: &Settings) -> Result<(), String> {
        self.metrics.renders.inc();
        let started = std::time::Instant::now();
        let new = plan::build(
            &view.catalog,
            settings,
            &self.cfg.plan,
            Some(&self.live),
            &Disk,
        );
        self.warn_once(&new);
        let result = self.plane.apply(new, &self.live).await;
        tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, "pass");
        let refused = result.as_ref().err().is_some_and(ApplyError::refused);
        self.metrics
            .pass(pass_outcome(&result), &self.plane.timings());
        let outcome = match result {
            Ok(applied) => Ok(self.took(applied)),
            Err(e) => {
                match &e {
                    ApplyError::Render(_) => {
                        self.metrics.render_errors.inc();
                    }
                    ApplyError::Check(_) => {
                        self.metrics.check_failures.inc();
                    }
                    ApplyError::PushRefused(_) | ApplyError::Push(_) => {
                        self.metrics.push_failures.inc();
                    }
                    _ => {}
                }
                Err(e.to_string())
            }
        };
        self.metrics
            .last_pass_failed
            .set(i64::from(outcome.is_err()));
        self.metrics.live_plan(&self.live);
        self.metrics.not_served.set(
            self.live
                .services
                .values()
                .filter(|s| !s.served() || s.held.is_some())
                .count() as i64,
        );
        let published = if self.cfg.dry_run {
            true
        } else {
            self.publisher
                .publish(&self.live, &outcome, view.held)
                .await
        };
        match &outcome {
            Ok(_) if published => {
                self.backoff = Box::new(swarmgate_runtime::retry::default_backoff());
            }
            Ok(_) => self.retry_later("writing records to consul failed", false),
            Err(e) => {
                tracing::error!(error = %e, "render pass failed; the last good config stays live");
                self.retry_later("the pass failed", refused);
            }
        }
        swarmgate_runtime::memory::release_free_memory();
        match outcome {
            Ok(_) if !published && self.cfg.once => Err(
                "the config is live but this edge's records could not be written to consul".into(),
            ),
            other => other.map(drop),
        }
    }

    /// Counts and logs what a pass made live, which becomes the live plan; answers whether
    /// anything changed in nginx (files installed, or state pushed).
    fn took(&mut self, applied: Applied) -> bool {
        if !applied.changed_files.is_empty() {
            self.metrics.installs.inc();
            self.metrics
                .last_install_unix
                .set(crate::records::unix_now() as i64);
            let files: Vec<_> = applied
                .changed_files
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            tracing::info!(files = ?files, reloaded = applied.reloaded, "installed");
        }
        if applied.reloaded {
            self.metrics.reloads.inc();
        }
        if applied.pushed {
            self.metrics
                .pushed(applied.push_duration, applied.live_version);
            tracing::info!(
                version = applied.live_version,
                push_us = applied.push_duration.map(|d| d.as_micros() as u64),
                "state pushed to nginx"
            );
        }
        self.publisher.live_version(applied.live_version);
        self.publisher.took(applied.reloaded, applied.pushed);
        self.live = applied.plan;
        !applied.changed_files.is_empty() || applied.pushed
    }

    /// Logs each service's plan warnings (a public setting ignored, a contested host) once.
    fn warn_once(&mut self, plan: &Plan) {
        for s in plan.services.values() {
            for w in &s.warnings {
                if self.warned.insert((s.name.clone(), w.clone())) {
                    tracing::warn!(service = %s.name, warning = %w, "service setting ignored");
                }
            }
        }
    }

    /// Schedules the next try. A config refused whatever the services (a template, or nginx's
    /// own config) is tried again slowly: only an operator's fix can change the answer.
    fn retry_later(&mut self, why: &str, refused: bool) {
        let delay = self.backoff.next().unwrap_or(Duration::from_secs(10));
        let delay = if refused {
            delay.max(RETRY_REFUSED)
        } else {
            delay
        };
        tracing::info!(delay_ms = delay.as_millis() as u64, "{why}; retrying");
        self.retry_at = Some(Instant::now() + delay);
    }
}

fn pass_outcome(result: &Result<Applied, ApplyError>) -> PassOutcome {
    match result {
        Ok(applied) if applied.changed_files.is_empty() && !applied.pushed => {
            PassOutcome::Unchanged
        }
        Ok(_) => PassOutcome::Applied,
        Err(e) if e.refused() => PassOutcome::Refused,
        Err(_) => PassOutcome::Failed,
    }
}
