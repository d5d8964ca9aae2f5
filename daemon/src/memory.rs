//! Giving freed memory back to the system. glibc keeps the freed heap pages of its per-thread
//! arenas; after a backup of 200,000 files that is tens of MB an idle daemon would hold for
//! nothing.

/// Returns free heap memory to the kernel (glibc `malloc_trim`); a no-op on other C libraries.
/// It walks the allocator's arenas, so call it off the async threads.
#[allow(unsafe_code)]
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only works on glibc's own arenas, under their locks; it has no
    // preconditions and may be called from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
