//! Traffic shares: with an active colour, the active colour gets (100 − canary)% of a service's
//! traffic and the other colours canary%, exactly, whatever the instance counts: per-instance
//! integer weights normalised by the counts and reduced by their gcd.

use serde::Serialize;

/// What one instance gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Assigned {
    /// nginx `weight=`; 0 means "not rendered".
    pub weight: u32,
    /// nginx `backup`: used only when no primary server is available.
    pub backup: bool,
}

impl Assigned {
    pub const ONE: Assigned = Assigned {
        weight: 1,
        backup: false,
    };
    const BACKUP: Assigned = Assigned {
        weight: 1,
        backup: true,
    };
    const OUT: Assigned = Assigned {
        weight: 0,
        backup: false,
    };
}

/// The weights of the active group (active colour and uncoloured instances) and of the other
/// group (instances of any other colour), for `n_active` and `n_other` healthy instances.
pub fn split(
    n_active: usize,
    n_other: usize,
    canary: u8,
    backup_inactive: bool,
) -> (Assigned, Assigned) {
    let canary = u64::from(canary.min(100));
    let standby = if backup_inactive {
        Assigned::BACKUP
    } else {
        Assigned::OUT
    };
    match (n_active, n_other) {
        (_, 0) => (Assigned::ONE, Assigned::OUT),
        (0, _) => (Assigned::OUT, Assigned::ONE),
        _ if canary == 0 => (Assigned::ONE, standby),
        _ if canary == 100 => (standby, Assigned::ONE),
        _ => {
            let a = (100 - canary) * n_other as u64;
            let o = canary * n_active as u64;
            let g = gcd(a, o);
            let weight = |w: u64| u32::try_from(w / g).unwrap_or(u32::MAX);
            (
                Assigned {
                    weight: weight(a),
                    backup: false,
                },
                Assigned {
                    weight: weight(o),
                    backup: false,
                },
            )
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// Each instance's share of the service's traffic in percent, given the assignments: backups
/// and unrendered instances get 0 while any primary exists.
pub fn effective_shares(assigned: &[Assigned]) -> Vec<f64> {
    let total: u64 = assigned
        .iter()
        .filter(|a| !a.backup)
        .map(|a| u64::from(a.weight))
        .sum();
    assigned
        .iter()
        .map(|a| {
            if a.backup || total == 0 {
                0.0
            } else {
                100.0 * f64::from(a.weight) / total as f64
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn worked_examples() {
        // 3 blue, 1 green, 10% canary: a = 90·1, o = 10·3, gcd 30 → 3 and 1; 3·3 : 1·1 = 90 : 10.
        let (a, o) = split(3, 1, 10, true);
        assert_eq!((a.weight, o.weight), (3, 1));
        assert_eq!(split(2, 2, 0, true), (Assigned::ONE, Assigned::BACKUP));
        assert_eq!(split(2, 2, 0, false), (Assigned::ONE, Assigned::OUT));
        assert_eq!(split(2, 2, 100, true), (Assigned::BACKUP, Assigned::ONE));
        assert_eq!(split(2, 2, 50, true), (Assigned::ONE, Assigned::ONE));
        assert_eq!(
            split(0, 2, 10, true),
            (Assigned::OUT, Assigned::ONE),
            "active colour has none: serve the other"
        );
        assert_eq!(split(2, 0, 10, true), (Assigned::ONE, Assigned::OUT));
    }

    proptest! {
        /// The other group's share is exactly the canary, for any counts and percentage.
        #[test]
        fn shares_are_exact(n_active in 1usize..200, n_other in 1usize..200, canary in 1u8..100) {
            let (a, o) = split(n_active, n_other, canary, true);
            prop_assert!(a.weight >= 1 && o.weight >= 1);
            let total_a = u64::from(a.weight) * n_active as u64;
            let total_o = u64::from(o.weight) * n_other as u64;
            // total_o / (total_a + total_o) == canary / 100, in integers.
            prop_assert_eq!(total_o * 100, u64::from(canary) * (total_a + total_o));
            prop_assert_eq!(gcd(u64::from(a.weight), u64::from(o.weight)), 1);
        }

        #[test]
        fn effective_shares_sum_to_100(n_active in 1usize..50, n_other in 1usize..50, canary in 0u8..=100) {
            let (a, o) = split(n_active, n_other, canary, true);
            let all: Vec<_> = std::iter::repeat_n(a, n_active).chain(std::iter::repeat_n(o, n_other)).collect();
            let sum: f64 = effective_shares(&all).iter().sum();
            prop_assert!((sum - 100.0).abs() < 1e-6);
            let other_share: f64 = effective_shares(&all)[n_active..].iter().sum();
            prop_assert!((other_share - f64::from(canary)).abs() < 1e-6);
        }
    }
}
