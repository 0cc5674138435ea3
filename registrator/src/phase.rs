//! A container's phase, as the registrator follows it: running, paused, asked to stop (still
//! running out its grace period), exited. Desired state, registry and reconcile match on it;
//! the maintenance reason Consul shows is derived from it and never read back.

/// Where a container is in its life, for registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Runs and serves: in rotation.
    Running,
    /// Paused: registered, in maintenance.
    Paused,
    /// `stop`, or `kill` with a terminating signal: out of rotation until it dies or starts again,
    /// through every later listing.
    StopRequested,
    /// Exited with `code` and kept (only a failed exit under `-deregister on-success`).
    Exited { code: i64 },
}

impl Phase {
    /// The phase a freshly inspected, running container is in.
    pub fn of_running(paused: bool) -> Phase {
        if paused {
            Phase::Paused
        } else {
            Phase::Running
        }
    }

    /// The reason shown in Consul's maintenance check; `None` while in rotation.
    pub fn maintenance_reason(self) -> Option<String> {
        match self {
            Phase::Running => None,
            Phase::Paused => Some("container paused".into()),
            Phase::StopRequested => Some("container stopping".into()),
            Phase::Exited { code } => Some(format!("container exited with code {code}")),
        }
    }

    /// The phase in one word, for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::Paused => "paused",
            Phase::StopRequested => "stopping",
            Phase::Exited { .. } => "exited",
        }
    }

    /// True while the container still runs this start (a listing may show it).
    pub fn is_live(self) -> bool {
        !matches!(self, Phase::Exited { .. })
    }
}

/// Whether an exit counts as clean under `-deregister on-success`: exit 0, or killed by a signal
/// (Docker sets bit 128: 137 after SIGKILL, 143 after an unhandled SIGTERM), as gliderlabs counts.
pub fn is_clean_exit(code: i64) -> bool {
    code == 0 || (0..=255).contains(&code) && code & 128 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_derived_from_the_phase() {
        assert_eq!(Phase::Running.maintenance_reason(), None);
        assert_eq!(
            Phase::Exited { code: 3 }.maintenance_reason().as_deref(),
            Some("container exited with code 3")
        );
        assert!(Phase::StopRequested.maintenance_reason().is_some());
        assert!(Phase::of_running(true) == Phase::Paused);
    }

    #[test]
    fn signal_exits_are_clean() {
        for clean in [0, 128, 130, 137, 143, 255] {
            assert!(is_clean_exit(clean), "{clean}");
        }
        for failed in [1, 3, 127, 256, -1] {
            assert!(!is_clean_exit(failed), "{failed}");
        }
    }
}
