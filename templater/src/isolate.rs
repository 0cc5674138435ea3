//! Finding the services whose new plans nginx refuses, so that one bad service never freezes
//! every other: starting from the plan live now (which nginx took), the changed services are
//! tried in halves, each try a real check, until every refused change stands alone. The
//! number of tries is bounded; what is left untried when the budget runs out counts as refused
//! (held at its last good plan, tried again on the next pass).

use std::collections::BTreeSet;

use crate::plan::{Plan, ServicePlan};

/// Checks one pass may spend finding culprits.
pub const CHECK_BUDGET: usize = 24;

/// `base` with the plans of `take` replaced by (or, when absent there, removed as in) `new`.
pub fn merge(base: &Plan, new: &Plan, take: &BTreeSet<String>) -> Plan {
    let mut out = base.clone();
    for name in take {
        match new.services.get(name) {
            Some(s) => {
                out.services.insert(name.clone(), s.clone());
            }
            None => {
                out.services.remove(name);
            }
        }
    }
    out
}

/// The services whose plan differs between `base` and `new` (added and removed ones too).
pub fn changed(base: &Plan, new: &Plan) -> Vec<String> {
    let names: BTreeSet<&String> = base.services.keys().chain(new.services.keys()).collect();
    names
        .into_iter()
        .filter(|n| base.services.get(*n) != new.services.get(*n))
        .cloned()
        .collect()
}

/// What isolating found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Isolated {
    /// Changes that pass together on top of the base.
    pub clean: BTreeSet<String>,
    /// Changes refused, each with the check's message (or why it was not tried).
    pub refused: Vec<(String, String)>,
    pub checks: usize,
}

/// Splits `suspects` into changes that pass on top of `base` and changes refused, calling
/// `check` (render, install, `nginx -t`, roll back) on candidate plans.
pub async fn isolate<F, Fut>(
    base: &Plan,
    new: &Plan,
    suspects: Vec<String>,
    mut check: F,
) -> Isolated
where
    F: FnMut(Plan) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut found = Isolated::default();
    let mut queue = vec![suspects];
    while let Some(set) = queue.pop() {
        if set.is_empty() {
            continue;
        }
        if found.checks >= CHECK_BUDGET {
            for name in set {
                found.refused.push((
                    name,
                    "not tried: the pass ran out of checks; retried next pass".into(),
                ));
            }
            continue;
        }
        let mut take = found.clean.clone();
        take.extend(set.iter().cloned());
        found.checks += 1;
        match check(merge(base, new, &take)).await {
            Ok(()) => found.clean.extend(set),
            Err(why) if set.len() == 1 => found
                .refused
                .push((set.into_iter().next().expect("one"), why)),
            Err(_) => {
                let mut first = set;
                let second = first.split_off(first.len() / 2);
                // Try the first half first: the queue is a stack.
                queue.push(second);
                queue.push(first);
            }
        }
    }
    found.refused.sort();
    found
}

/// Puts `name` back as `base` had it (held, with `reason`), or, when `base` did not serve it,
/// as `new` has it but excluded.
pub fn hold_or_exclude(plan: &mut Plan, base: &Plan, new: &Plan, name: &str, reason: &str) {
    let replacement = match base.services.get(name).filter(|s| s.served()) {
        Some(old) => {
            let mut held: ServicePlan = old.clone();
            held.held = Some(reason.to_string());
            held
        }
        None => {
            let Some(mut excluded) = new.services.get(name).cloned() else {
                return;
            };
            excluded.excluded = Some(reason.to_string());
            excluded.held = None;
            excluded
        }
    };
    plan.services.insert(name.to_string(), replacement);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn plan(names: &[(&str, u8)]) -> Plan {
        Plan {
            services: names
                .iter()
                .map(|(n, canary)| {
                    (
                        n.to_string(),
                        ServicePlan {
                            name: n.to_string(),
                            upstream: format!("sg_{n}"),
                            active: None,
                            canary: *canary,
                            settings_index: 0,
                            sticky: None,
                            public: false,
                            host: String::new(),
                            tls: None,
                            instances: vec![],
                            left_out: vec![],
                            excluded: None,
                            held: None,
                            warnings: vec![],
                            pinning: Default::default(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// nginx refuses any plan where a service has canary 99.
    fn nginx_check(p: &Plan) -> Result<(), String> {
        match p.served().find(|s| s.canary == 99) {
            Some(s) => Err(format!("{} is bad", s.name)),
            None => Ok(()),
        }
    }

    #[tokio::test]
    async fn each_refused_change_stands_alone_and_the_rest_go_through() {
        let base = plan(&[("a", 0), ("b", 0), ("gone", 0)]);
        let new = plan(&[("a", 10), ("b", 99), ("c", 5), ("d", 99), ("e", 1)]);
        let suspects = changed(&base, &new);
        assert_eq!(suspects, ["a", "b", "c", "d", "e", "gone"]);
        let checks = Cell::new(0);
        let found = isolate(&base, &new, suspects, |p| {
            checks.set(checks.get() + 1);
            std::future::ready(nginx_check(&p))
        })
        .await;
        assert_eq!(
            found.refused,
            [
                ("b".to_string(), "b is bad".to_string()),
                ("d".to_string(), "d is bad".to_string())
            ]
        );
        assert_eq!(
            found.clean,
            ["a", "c", "e", "gone"].map(String::from).into()
        );
        assert!(found.checks <= CHECK_BUDGET && found.checks == checks.get());
        let mut result = merge(&base, &new, &found.clean);
        for (name, why) in &found.refused {
            hold_or_exclude(&mut result, &base, &new, name, why);
        }
        assert!(nginx_check(&result).is_ok());
        assert_eq!(result.services["a"].canary, 10);
        assert!(!result.services.contains_key("gone"));
        assert_eq!(
            result.services["b"].held.as_deref(),
            Some("b is bad"),
            "b keeps its old plan"
        );
        assert_eq!(result.services["b"].canary, 0);
        assert!(
            result.services["d"].excluded.is_some(),
            "d was never served"
        );
    }

    #[tokio::test]
    async fn the_budget_bounds_the_checks() {
        let base = plan(&[]);
        let names: Vec<(String, u8)> = (0..200).map(|i| (format!("s{i:03}"), 99)).collect();
        let refs: Vec<(&str, u8)> = names.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        let new = plan(&refs);
        let found = isolate(&base, &new, changed(&base, &new), |p| {
            std::future::ready(nginx_check(&p))
        })
        .await;
        assert_eq!(found.checks, CHECK_BUDGET);
        assert_eq!(found.refused.len(), 200);
    }
}
