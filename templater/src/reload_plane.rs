//! The reload data plane (plain nginx): every change of the plan is rendered into config files,
//! installed all or none, checked with `nginx -t`, and made live with one SIGHUP. A service
//! whose new plan a template cannot print, or nginx refuses, is found and held at its last
//! good plan (or left out when it never had one), alone: every other service still updates.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use crate::dataplane::{Applied, ApplyError, Timings};
use crate::install::{self, Staged};
use crate::isolate::{changed, hold_or_exclude, isolate, merge};
use crate::nginx::Nginx;
use crate::plan::{Plan, ServicePlan};
use crate::render::{Page, Rendered, Renderer};

pub struct ReloadPlane {
    pub renderer: Renderer,
    pub page: Page,
    pub nginx: Nginx,
    pub dry_run: bool,
    /// New plans nginx or a template refused, by service, with the reason: the same plan is
    /// held again without spending a check on it.
    refused: HashMap<String, (ServicePlan, String)>,
    /// Files are installed and checked but nginx has not taken them yet.
    reload_owed: bool,
    /// Behind a lock only because checks run from `&self` (the search for refused services).
    timings: Mutex<Timings>,
}

impl ReloadPlane {
    pub fn new(renderer: Renderer, page: Page, nginx: Nginx, dry_run: bool) -> Self {
        ReloadPlane {
            renderer,
            page,
            nginx,
            dry_run,
            refused: HashMap::new(),
            reload_owed: false,
            timings: Mutex::default(),
        }
    }

    /// The files the templates write (crash recovery looks at them).
    pub fn destinations(&self) -> Vec<PathBuf> {
        self.renderer
            .specs()
            .iter()
            .map(|s| s.dest.clone())
            .collect()
    }

    /// What the last [`ReloadPlane::apply`] spent on each step.
    pub fn timings(&self) -> Timings {
        self.timed(|t| t.clone())
    }

    fn timed<R>(&self, f: impl FnOnce(&mut Timings) -> R) -> R {
        f(&mut self.timings.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Makes `new` live on top of `base` (the plan live now).
    pub async fn apply(&mut self, mut new: Plan, base: &Plan) -> Result<Applied, ApplyError> {
        self.timed(|t| *t = Timings::default());
        let rendering = Instant::now();
        let known: Vec<(String, String)> = self
            .refused
            .iter()
            .filter(|(name, (plan, _))| new.services.get(*name) == Some(plan))
            .map(|(name, (_, why))| (name.clone(), why.clone()))
            .collect();
        let fresh = new.clone();
        for (name, why) in known {
            hold_or_exclude(&mut new, base, &fresh, &name, &why);
        }
        let (_, culprits) = self
            .renderer
            .render_isolating(&new, &self.page)
            .map_err(ApplyError::Render)?;
        let fresh = new.clone();
        for (name, why) in culprits {
            let why = format!("a template cannot print it: {why}");
            self.remember(&fresh, &name, &why);
            hold_or_exclude(&mut new, base, &fresh, &name, &why);
        }
        let files = self.render(&new)?;
        self.timed(|t| t.render = Some(rendering.elapsed()));
        if self.dry_run {
            print_files(&files);
            return Ok(Applied {
                plan: new,
                ..Applied::default()
            });
        }
        let (staged, plan, extra_checks) = match self.stage_checked(&files).await {
            Ok(staged) => (staged, new, 0),
            Err(ApplyError::Check(why)) => self.isolate_refused(new, base, why).await?,
            Err(e) => return Err(e),
        };
        let changed_files = staged.changed.clone();
        let committing = Instant::now();
        staged.commit();
        if !changed_files.is_empty() {
            let committed = committing.elapsed();
            self.timed(|t| t.install = t.staged.map(|staged| staged + committed));
        }
        for name in plan.services.keys() {
            if plan.services[name].held.is_none() && plan.services[name].excluded.is_none() {
                self.refused.remove(name);
            }
        }
        let reloaded = self.reload_if(!changed_files.is_empty()).await?;
        Ok(Applied {
            plan,
            changed_files,
            reloaded,
            extra_checks,
            ..Applied::default()
        })
    }

    /// nginx refused the whole new plan: find the changes it refuses, make the rest live.
    async fn isolate_refused(
        &mut self,
        new: Plan,
        base: &Plan,
        why: String,
    ) -> Result<(Staged, Plan, usize), ApplyError> {
        // When nginx refuses even what is live now, no service is to blame: nginx's own config
        // or a file it reads changed under it.
        let base_files = self.render(base)?;
        if let Err(e) = self.stage_checked(&base_files).await.map(Staged::rollback) {
            return Err(match e {
                ApplyError::Check(_) => ApplyError::Check(why),
                other => other,
            });
        }
        tracing::warn!(error = %why, "nginx refused the new config; finding the services it refuses");
        let suspects = changed(base, &new);
        let found = {
            let this = &*self;
            isolate(base, &new, suspects, |candidate| async move {
                let files = this.render(&candidate).map_err(|e| e.to_string())?;
                match this.stage_checked(&files).await {
                    Ok(staged) => {
                        staged.rollback();
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                }
            })
            .await
        };
        let mut plan = merge(base, &new, &found.clean);
        for (name, why) in &found.refused {
            let why = format!("nginx refused its new config: {why}");
            self.remember(&new, name, &why);
            hold_or_exclude(&mut plan, base, &new, name, &why);
            tracing::warn!(service = %name, reason = %why, "service held at its last good config");
        }
        let files = self.render(&plan)?;
        let staged = self.stage_checked(&files).await?;
        Ok((staged, plan, found.checks))
    }

    fn remember(&mut self, new: &Plan, name: &str, why: &str) {
        if let Some(p) = new.services.get(name) {
            self.refused
                .insert(name.to_string(), (p.clone(), why.to_string()));
        }
    }

    fn render(&self, plan: &Plan) -> Result<Rendered, ApplyError> {
        let served: Vec<&ServicePlan> = plan.served().collect();
        self.renderer
            .render(&self.page.context(&served))
            .map_err(ApplyError::Render)
    }

    /// Installs `files` and checks them; a refused config is rolled back before answering.
    async fn stage_checked(&self, files: &Rendered) -> Result<Staged, ApplyError> {
        let staging = Instant::now();
        let staged = install::stage(files)?;
        self.timed(|t| t.staged = Some(staging.elapsed()));
        if staged.changed.is_empty() {
            return Ok(staged);
        }
        let started = Instant::now();
        let checked = self.nginx.check().await;
        let took = started.elapsed();
        self.timed(|t| t.checks.push(took));
        tracing::debug!(check_us = took.as_micros() as u64, "nginx check");
        match checked {
            Ok(()) => Ok(staged),
            Err(e) => {
                staged.rollback();
                Err(ApplyError::Check(e.to_string()))
            }
        }
    }

    /// Reloads when files changed or an earlier reload did not take.
    async fn reload_if(&mut self, changed: bool) -> Result<bool, ApplyError> {
        if !changed && !self.reload_owed {
            return Ok(false);
        }
        self.reload_owed = true;
        let started = Instant::now();
        let reloaded = self
            .nginx
            .reload()
            .await
            .map_err(|e| ApplyError::Reload(e.to_string()))?;
        self.timed(|t| t.reload = Some(started.elapsed()));
        self.reload_owed = false;
        Ok(reloaded)
    }
}

fn print_files(files: &Rendered) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    for (dest, bytes) in files {
        let _ = writeln!(
            out,
            "# ---- {} ----\n{}",
            dest.display(),
            String::from_utf8_lossy(bytes)
        );
    }
}
