//! Child processes that must not outlive the daemon that started them (`nginx -t`): the kernel
//! kills them when the daemon dies, even by SIGKILL.

/// Asks the kernel to SIGKILL the child when this process's thread that spawned it dies.
pub fn die_with_parent(command: &mut tokio::process::Command) {
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the child between fork and exec and only makes the
    // async-signal-safe prctl(PR_SET_PDEATHSIG) system call; it allocates nothing and takes
    // no lock.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
}
