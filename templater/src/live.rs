//! What this edge has live, as one snapshot for the dashboard: the status record and the plan
//! exactly as the publisher writes them to Consul (never worked out a second time), and the
//! recent deploys this edge took (a service's active colour or canary changing in its live plan).
//! The publisher owns the [`LiveFeed`]; readers hold a `watch` receiver of [`LiveView`].

use std::collections::VecDeque;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::watch;

use crate::plan::{Plan, ServicePlan};
use crate::records::{unix_now, EdgeStatus};

/// Deploys remembered for the dashboard.
pub const HISTORY: usize = 50;

/// One deploy this edge took: a service's traffic split changed in its live plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeployEvent {
    pub unix: u64,
    pub service: String,
    /// `None` for a service this edge had not served before.
    pub from: Option<Split>,
    pub to: Split,
    pub settings_index: u64,
}

/// A service's traffic split: the active colour and the canary percent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Split {
    pub active: Option<String>,
    pub canary: u8,
}

impl Split {
    fn of(p: &ServicePlan) -> Split {
        Split {
            active: p.active.clone(),
            canary: p.canary,
        }
    }
}

/// The snapshot readers get.
#[derive(Clone, Debug)]
pub struct LiveView {
    /// `None` until the first pass is published.
    pub status: Option<EdgeStatus>,
    pub plan: Arc<Plan>,
    /// Newest first.
    pub history: VecDeque<DeployEvent>,
}

/// The writing side, owned by the publisher.
#[derive(Debug)]
pub struct LiveFeed {
    tx: watch::Sender<Arc<LiveView>>,
    /// A plan has been published: later changes are deploys.
    planned: bool,
}

impl Default for LiveFeed {
    fn default() -> Self {
        let (tx, _) = watch::channel(Arc::new(LiveView {
            status: None,
            plan: Arc::default(),
            history: VecDeque::new(),
        }));
        LiveFeed { tx, planned: false }
    }
}

impl LiveFeed {
    pub fn subscribe(&self) -> watch::Receiver<Arc<LiveView>> {
        self.tx.subscribe()
    }

    /// Publishes `status` and `plan` as live, remembering the deploys `plan` brings.
    pub fn update(&mut self, status: &EdgeStatus, plan: &Plan) {
        let before = self.tx.borrow().clone();
        let mut history = before.history.clone();
        // The first plan is where this edge started, not a deploy.
        if std::mem::replace(&mut self.planned, true) {
            for event in deploys(&before.plan, plan, unix_now()).into_iter().rev() {
                history.push_front(event);
            }
        }
        history.truncate(HISTORY);
        let plan = if *before.plan == *plan {
            before.plan.clone()
        } else {
            Arc::new(plan.clone())
        };
        self.tx.send_replace(Arc::new(LiveView {
            status: Some(status.clone()),
            plan,
            history,
        }));
    }

    /// Publishes a new status record with the plan unchanged (a heartbeat, a failure).
    pub fn status(&self, status: &EdgeStatus) {
        self.tx.send_modify(|v| {
            let mut next = (**v).clone();
            next.status = Some(status.clone());
            *v = Arc::new(next);
        });
    }
}

/// The deploys between two live plans: every served service whose split changed, or that is new.
pub fn deploys(before: &Plan, after: &Plan, unix: u64) -> Vec<DeployEvent> {
    after
        .served()
        .filter_map(|p| {
            let from = before
                .services
                .get(&p.name)
                .filter(|b| b.served())
                .map(Split::of);
            let to = Split::of(p);
            (from.as_ref() != Some(&to)).then(|| DeployEvent {
                unix,
                service: p.name.clone(),
                from,
                to,
                settings_index: p.settings_index,
            })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::plan::ServicePlan;

    fn plan(services: &[(&str, Option<&str>, u8)]) -> Plan {
        let mut p = Plan::default();
        for (name, active, canary) in services {
            let s = ServicePlan {
                name: name.to_string(),
                upstream: format!("sg_{name}"),
                active: active.map(String::from),
                canary: *canary,
                settings_index: 1,
                sticky: None,
                public: false,
                host: String::new(),
                tls: None,
                instances: Vec::new(),
                left_out: Vec::new(),
                excluded: None,
                held: None,
                warnings: Vec::new(),
                pinning: Default::default(),
            };
            p.services.insert(name.to_string(), s);
        }
        p
    }

    pub(crate) fn status() -> EdgeStatus {
        EdgeStatus {
            name: "edge-1".into(),
            options: crate::plan::PlanOptions {
                colors: vec!["blue".into(), "green".into()],
                health: Default::default(),
                backup_inactive: true,
                domain: "localhost".into(),
                allow_hostnames: false,
                preview: false,
            },
            dataplane: "reload".into(),
            started_unix: 1,
            heartbeat_unix: 1,
            last_install_unix: None,
            last_error: None,
            last_error_unix: None,
            services: 0,
            not_served: Default::default(),
            view_held: false,
            live_version: None,
            last_reload_unix: None,
            last_push_unix: None,
        }
    }

    #[test]
    fn a_changed_split_is_a_deploy_and_an_unchanged_one_is_not() {
        let before = plan(&[("app", Some("blue"), 0), ("api", Some("blue"), 0)]);
        let after = plan(&[("app", Some("green"), 0), ("api", Some("blue"), 0)]);
        let events = deploys(&before, &after, 7);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].service, "app");
        assert_eq!(
            events[0].from.as_ref().expect("present").active.as_deref(),
            Some("blue")
        );
        assert_eq!(events[0].to.active.as_deref(), Some("green"));
    }

    #[test]
    fn the_first_plan_is_no_deploy_and_later_ones_are_kept_newest_first() {
        let mut feed = LiveFeed::default();
        let rx = feed.subscribe();
        feed.update(&status(), &plan(&[("app", Some("blue"), 0)]));
        assert!(rx.borrow().history.is_empty());
        feed.update(&status(), &plan(&[("app", Some("blue"), 10)]));
        feed.update(&status(), &plan(&[("app", Some("green"), 0)]));
        let h = &rx.borrow().history;
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].to.active.as_deref(), Some("green"));
        assert_eq!(h[1].to.canary, 10);
    }

    #[test]
    fn history_is_bounded() {
        let mut feed = LiveFeed::default();
        for i in 0..(HISTORY + 10) {
            feed.update(&status(), &plan(&[("app", Some("blue"), (i % 100) as u8)]));
        }
        assert_eq!(feed.subscribe().borrow().history.len(), HISTORY);
    }

    #[test]
    fn an_excluded_service_is_no_deploy() {
        let mut after = plan(&[("app", Some("green"), 0)]);
        after.services.get_mut("app").expect("present").excluded = Some("bad".into());
        assert!(deploys(&Plan::default(), &after, 1).is_empty());
    }
}
