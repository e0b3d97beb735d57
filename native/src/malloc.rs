//! glibc's allocator, told to keep one arena instead of one per thread.
//!
//! Each arena keeps the holes its thread's frees leave (a join storm's
//! welcomes and frames, the HTTP buffers freed at every upgrade) apart from
//! the others', so with several the resident memory grows past what is
//! live. One arena measured 4,233 -> 4,047 B per idle connection at 19,000
//! (BENCHMARKS.md, "Round two"); small allocations still come from each
//! thread's own cache (glibc's tcache) without the arena's lock.
//! `MALLOC_ARENA_MAX` in the environment, if set, wins.

/// Called first thing in `main`, before any thread exists.
pub fn one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; it is called
        // before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}
