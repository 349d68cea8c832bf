//! Giving freed heap memory back to the operating system.
//!
//! glibc keeps freed memory in its per-thread arenas for reuse. RocksDB's flushes and
//! compactions allocate and free tens of MiB at a time on their own threads, so without this a
//! member's RSS climbs to the high-water mark of every arena and stays there (a 10-minute
//! soak showed ~240 MiB resident for ~50 MiB of live data). `malloc_trim` returns the free
//! pages of every arena; it runs on a blocking thread every few seconds and took 0.3–0.8 ms
//! during a 100-client put load.

/// Returns free heap pages to the operating system (a no-op where the C library is not
/// glibc).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only inspects and shrinks the allocator's own free lists; it
    // takes each arena's lock like any allocation and touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}
