//! How the process's heap gives memory back to the system.
//!
//! The native protocol moves a transfer's data in chunks of `chunk_bytes` (256 KiB by
//! default), and each chunk is a fresh allocation, freed a moment later on another thread:
//! a chunk read from a file and handed to the connection's writer, a data frame decoded and
//! handed to a disk worker, on the server and in the client alike. (The FTP front end
//! recycles two buffers per transfer instead.) With glibc's default, dynamic thresholds such
//! chunks keep getting fresh pages: freed memory goes back to the kernel (the heap's top is
//! trimmed once about twice a chunk lies free there) and the next chunks fault it in again,
//! a page at a time, zeroed. And each thread allocates from its own arena (glibc makes up to
//! eight per core), so a chunk freed by a disk worker is kept for that worker, not for the
//! thread that allocates the next one.
//!
//! [`keep_freed_memory`] fixes both thresholds and allows one arena per core. Allocations below
//! `MMAP_THRESHOLD` come from the heap (every chunk and frame at the default sizes, and up to
//! `chunk_bytes` of 4 MiB; a server configured with larger chunks maps each one, as before);
//! freed heap is kept for reuse until `TRIM_THRESHOLD` of it lies free; and the threads share
//! a few arenas, so what one frees the next reuses. Measured (docs/BENCHMARKS.md, "Heap
//! settings"): `tests/heap.rs` runs the chunk pattern for 1 GiB, 253,518 page faults
//! with glibc's defaults and 1,024 with these settings (16 chunks in flight); a 1 GiB download
//! from the release server caused 22,400 to 37,600 page faults in it before and about 750
//! after; its peak memory over a 4 GiB upload and download went from 17.9 MiB to 12.5 MiB. On
//! a virtual machine that reports freed memory to its host, fewer pages given back also means
//! fewer pages the hypervisor must bring back.

/// Allocations of this size or more get their own mapping, returned on free.
pub const MMAP_THRESHOLD: usize = 4 << 20;

/// Free memory at the top of a heap is given back only past this much: nearly twice what a
/// streamed upload holds at most (18 default chunks, 4.5 MiB: see the server's
/// `upload_stream`). It bounds what each arena (one per core, see below) keeps beyond its live
/// data. With 1 MiB the faults came back (65,570 on a 4 GiB download, against 3,651 with
/// 2 MiB); with 2 MiB, once an upload's writer took its chunks in batches, a GiB put faulted
/// 5,400 to 7,600 times in the server (eight puts), and with 8 MiB 0 to 66 times after the
/// first (1,163).
pub const TRIM_THRESHOLD: usize = 8 << 20;

/// Sets the heap thresholds above, and one heap (arena) per core instead of glibc's eight, so
/// that a chunk freed by one thread is reused by the next thread that needs one rather than
/// kept apart in the freeing thread's arena (glibc on Linux; elsewhere the allocator's
/// defaults stay). Call it first thing in `main`, before any thread starts: glibc's `mallopt`
/// may not race the allocator's own initialization. Returns whether all three were set.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes three of the allocator's tuning parameters; it is
        // called before the process starts any thread (see above), and every value is in range.
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
