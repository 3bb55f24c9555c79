//! Giving freed memory back to the system. glibc keeps what the threads of
//! an incarnation freed (each receive loop allocates in a per-thread
//! arena), so after `workers` shrinks the process would keep the memory of
//! its largest incarnation for good. `malloc_trim` returns the free pages
//! of every arena. This and `daemon/fork.rs` are the only unsafe code.
#![allow(unsafe_code)]

/// Returns the memory freed so far to the system, where the allocator
/// allows (glibc; a no-op elsewhere).
pub(crate) fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and only walks the allocator's
    // own free lists, under the allocator's locks; it is safe to call from
    // any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
