//! The guard between Consul's answers and nginx: never blank upstreams because Consul restarted,
//! lost its leader or answered emptily during an election. Leaderless answers are held; a
//! service that suddenly has no instance, or a catalog that lost half its instances, is
//! confirmed with a consistent read first; after an index reset (a Consul that lost its data)
//! the last view is held until the catalog recovers or the hold time passes.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use crate::model::Catalog;

/// Default `--hold`.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(30);

/// What to do with a new view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Read again with `?consistent` and judge that answer with `confirmed`.
    Confirm,
    /// Keep the last view.
    Hold(String),
}

#[derive(Clone, Debug)]
pub struct Guard {
    hold: Duration,
    /// Since when a reset has been unresolved.
    reset_since: Option<Instant>,
}

impl Guard {
    pub fn new(hold: Duration) -> Self {
        Guard {
            hold,
            reset_since: None,
        }
    }

    /// Judges `new` against the last accepted view. `reset`: a watch saw the index go
    /// backwards since the last verdict. `confirmed`: `new` comes from a consistent read.
    pub fn judge(
        &mut self,
        last: Option<&Catalog>,
        new: &Catalog,
        known_leader: bool,
        reset: bool,
        confirmed: bool,
        now: Instant,
    ) -> Verdict {
        if !known_leader {
            return Verdict::Hold("consul has no leader; keeping the last view".into());
        }
        let Some(last) = last else {
            return Verdict::Accept;
        };
        if reset && self.reset_since.is_none() {
            self.reset_since = Some(now);
        }
        let lossy = lost_a_lot(last, new);
        if !lossy {
            self.reset_since = None;
            return Verdict::Accept;
        }
        if let Some(since) = self.reset_since {
            if now.duration_since(since) >= self.hold {
                self.reset_since = None;
                return Verdict::Accept;
            }
            return Verdict::Hold(format!(
                "consul's index went backwards and {} of {} instances vanished; keeping the last view for up to {:?}",
                missing(last, new),
                last.instance_count(),
                self.hold
            ));
        }
        if confirmed {
            Verdict::Accept
        } else {
            Verdict::Confirm
        }
    }
}

fn keys(c: &Catalog) -> HashSet<(&str, &str, &str)> {
    c.services
        .iter()
        .flat_map(|(name, list)| {
            list.instances
                .iter()
                .map(move |i| (name.as_str(), i.node.as_str(), i.id.as_str()))
        })
        .collect()
}

fn missing(last: &Catalog, new: &Catalog) -> usize {
    let now = keys(new);
    keys(last).difference(&now).count()
}

/// A service went from some instances to none, or half the instances are gone.
fn lost_a_lot(last: &Catalog, new: &Catalog) -> bool {
    let emptied = last.services.iter().any(|(name, list)| {
        !list.instances.is_empty()
            && new
                .services
                .get(name)
                .is_none_or(|s| s.instances.is_empty())
    });
    let gone = missing(last, new);
    emptied || (gone > 0 && gone * 2 >= last.instance_count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Instance;
    use swarmgate_consul::CheckStatus;

    fn cat(services: &[(&str, usize)]) -> Catalog {
        Catalog {
            services: services
                .iter()
                .map(|(name, n)| {
                    let list = (0..*n)
                        .map(|i| Instance {
                            id: format!("{name}-{i}"),
                            node: "n".into(),
                            address: "10.0.0.1".into(),
                            port: 80,
                            tags: vec![],
                            meta: Default::default(),
                            health: CheckStatus::Passing,
                        })
                        .collect();
                    (
                        name.to_string(),
                        crate::model::ServiceView {
                            instances: list,
                            invalid: vec![],
                        },
                    )
                })
                .collect(),
            unnamed: vec![],
        }
    }

    #[test]
    fn ordinary_changes_are_accepted() {
        let mut g = Guard::new(DEFAULT_HOLD);
        let now = Instant::now();
        assert_eq!(
            g.judge(None, &cat(&[]), true, false, false, now),
            Verdict::Accept
        );
        assert_eq!(
            g.judge(
                Some(&cat(&[("a", 4)])),
                &cat(&[("a", 3), ("b", 1)]),
                true,
                false,
                false,
                now
            ),
            Verdict::Accept
        );
    }

    #[test]
    fn leaderless_answers_are_held() {
        let mut g = Guard::new(DEFAULT_HOLD);
        assert!(matches!(
            g.judge(
                Some(&cat(&[("a", 2)])),
                &cat(&[("a", 2)]),
                false,
                false,
                false,
                Instant::now()
            ),
            Verdict::Hold(_)
        ));
    }

    #[test]
    fn an_emptied_service_is_confirmed_then_accepted() {
        let mut g = Guard::new(DEFAULT_HOLD);
        let (last, new) = (cat(&[("a", 4), ("b", 1)]), cat(&[("a", 4)]));
        let now = Instant::now();
        assert_eq!(
            g.judge(Some(&last), &new, true, false, false, now),
            Verdict::Confirm
        );
        assert_eq!(
            g.judge(Some(&last), &new, true, false, true, now),
            Verdict::Accept
        );
    }

    #[test]
    fn after_a_reset_the_last_view_is_held_until_recovery_or_the_hold_time() {
        let mut g = Guard::new(Duration::from_secs(30));
        let last = cat(&[("a", 4), ("b", 2)]);
        let t0 = Instant::now();
        assert!(matches!(
            g.judge(Some(&last), &cat(&[]), true, true, true, t0),
            Verdict::Hold(_)
        ));
        assert!(matches!(
            g.judge(
                Some(&last),
                &cat(&[("a", 1)]),
                true,
                false,
                true,
                t0 + Duration::from_secs(5)
            ),
            Verdict::Hold(_)
        ));
        // Registrators re-register: the view recovers and is accepted at once.
        assert_eq!(
            g.judge(
                Some(&last),
                &cat(&[("a", 4), ("b", 2)]),
                true,
                false,
                false,
                t0 + Duration::from_secs(6)
            ),
            Verdict::Accept
        );
        // A reset that never recovers is accepted after the hold.
        assert!(matches!(
            g.judge(
                Some(&last),
                &cat(&[]),
                true,
                true,
                true,
                t0 + Duration::from_secs(10)
            ),
            Verdict::Hold(_)
        ));
        assert_eq!(
            g.judge(
                Some(&last),
                &cat(&[]),
                true,
                false,
                true,
                t0 + Duration::from_secs(41)
            ),
            Verdict::Accept
        );
    }
}
