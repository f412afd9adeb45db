//! How the process's heap gives memory back to the system.
//!
//! The native protocol moves a transfer's data in chunks of `chunk_bytes` (256 KiB by
//! default), and each chunk is a fresh allocation, freed a moment later on another thread:
//! a chunk read from a file and handed to the connection's writer, a data frame decoded and
//! handed to a disk worker, on the server and in the client alike. (The FTP front end
//! recycles two buffers per transfer instead.) With glibc's default, dynamic thresholds such
//! chunks keep getting fresh pages: freed memory goes back to the kernel (the heap's top is
//! trimmed once about twice a chunk lies free there) and the next chunks fault it in again,
//! a page at a time, zeroed. `tests/heap.rs` runs that pattern for 1 GiB of chunks: 228,940
//! page faults with the defaults, 328 with the settings below. A 1 GiB download from the
//! release server caused 33,600 to 39,600 page faults in it before, about 3,400 after, and
//! used 0.1 s less of its CPU. On a virtual machine that reports freed memory to its host,
//! such pages may have to come back from the hypervisor as well (docs/BENCHMARKS.md,
//! "Memory the host takes back").
//!
//! [`keep_freed_memory`] fixes both thresholds: allocations below `MMAP_THRESHOLD` come from
//! the heap (every chunk and frame at the default sizes, and up to `chunk_bytes` of 4 MiB; a
//! server configured with larger chunks maps each one, as before), and freed heap is kept for
//! reuse until `TRIM_THRESHOLD` of it lies free. The resident set then stays
//! at its peak (a few chunks per session in flight) instead of shrinking between chunks;
//! larger one-off allocations are still mapped and unmapped on their own.

/// Allocations of this size or more get their own mapping, returned on free.
pub const MMAP_THRESHOLD: usize = 4 << 20;

/// Free memory at the top of a heap is given back only past this much: eight default chunks.
/// It bounds what each of glibc's arenas (at most eight per core) keeps beyond its live data.
/// With 1 MiB the faults came back (65,570 on a 4 GiB download, against 3,651 with 2 MiB).
pub const TRIM_THRESHOLD: usize = 2 << 20;

/// Sets the heap thresholds above, and one heap (arena) per core instead of glibc's eight, so
/// that a chunk freed by one thread is reused by the next thread that needs one rather than
/// kept apart in the freeing thread's arena (glibc on Linux; elsewhere the allocator's
/// defaults stay).
/// Call it first thing in `main`, before any thread starts: glibc's `mallopt` may not race
/// the allocator's own initialization. Returns whether the thresholds were set.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes two of the allocator's tuning parameters; it is called
        // before the process starts any thread (see above), and both values are in range.
        let arenas = std::thread::available_parallelism().map_or(1, |cores| cores.get()).min(64);
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
                && libc::mallopt(libc::M_ARENA_MAX, arenas as libc::c_int) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
