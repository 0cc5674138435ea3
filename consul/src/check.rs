//! A check's status and Consul's ranking of them: an instance is as healthy as its worst check
//! (node checks included). The one place that ranks statuses.

use serde::{Deserialize, Serialize};

/// The status of a check, ordered from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Passing,
    Warning,
    Critical,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passing => "passing",
            CheckStatus::Warning => "warning",
            CheckStatus::Critical => "critical",
        }
    }

    /// Consul's status text; anything unknown (`maintenance`, garbage) counts as critical.
    pub fn parse(raw: &str) -> CheckStatus {
        match raw {
            "passing" => CheckStatus::Passing,
            "warning" => CheckStatus::Warning,
            _ => CheckStatus::Critical,
        }
    }

    /// The worst of `statuses`; passing when there is none (an instance without checks).
    pub fn worst(statuses: impl IntoIterator<Item = CheckStatus>) -> CheckStatus {
        statuses.into_iter().max().unwrap_or(CheckStatus::Passing)
    }
}

impl std::fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_wins_and_unknown_is_critical() {
        use CheckStatus::*;
        assert_eq!(CheckStatus::worst([Passing, Warning, Passing]), Warning);
        assert_eq!(CheckStatus::worst([Warning, Critical]), Critical);
        assert_eq!(CheckStatus::worst([]), Passing);
        assert_eq!(CheckStatus::parse("maintenance"), Critical);
        assert_eq!(CheckStatus::parse("passing"), Passing);
    }
}
