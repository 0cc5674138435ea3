//! Giving freed memory back to the system. Both daemons allocate in bursts (a catalog snapshot, a
//! container listing) and glibc keeps the freed heap resident; trimming after a burst keeps the
//! resident size near what is really live. Together with [`crate::child`], the workspace's only `unsafe` code.

/// Returns free heap pages to the system (glibc `malloc_trim`); a no-op elsewhere.
#[allow(unsafe_code)]
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory the allocator already considers free; it takes no
    // pointers and is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
