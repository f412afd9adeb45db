//! `ftp_actor::tuning::heap::keep_freed_memory` on the allocation pattern of a native transfer, next to
//! glibc's defaults: chunks of the shipped `chunk_bytes` allocated and filled, as many in flight
//! at a time as a streamed upload's jobs hold at most, then freed. The kernel counts the page
//! faults. With the defaults, freed chunks go back to the kernel and the next ones fault their
//! pages in again; with the kept heap they reuse them. The mallopt settings are process-wide and must precede any thread, so each
//! variant runs in a child process of this test binary (`harness = false`: `main` is ours).

/// The chunks a streamed upload's two jobs and their queues hold at most: four queued, four
/// being written, four waiting for the hashing job and four being hashed (the server's
/// `upload_stream`; the session holds two more).
const IN_FLIGHT: usize = 16;
const PAGE: usize = 4096;

/// The chunk size the server ships with.
fn chunk() -> usize {
    ftp_actor::config::Config::default().chunk_bytes
}

/// Chunks in 1 GiB.
fn chunks() -> usize {
    (1 << 30) / chunk()
}

/// Minor page faults of this process so far (`/proc/self/stat`, field 10).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    fields[7].parse().unwrap()
}

/// The transfer pattern, on one thread; returns the page faults it caused. Batches of
/// `IN_FLIGHT` chunks are allocated and filled, then all freed: the moment a transfer's
/// pipeline drains, when glibc's defaults give the freed chunks back. One thread, and nothing
/// else allocated in the loop, make that deterministic: with two threads (as in a transfer)
/// whether the defaults trimmed varied from run to run (260 to 163,475 faults), so the test
/// could not tell a missing setting from the machine's mood. The threads' sharing of arenas
/// is measured in docs/BENCHMARKS.md instead.
fn move_chunks() -> u64 {
    let (chunk, chunks) = (chunk(), chunks());
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(IN_FLIGHT);
    let before = minor_faults();
    for i in 0..chunks / IN_FLIGHT {
        batch.extend((0..IN_FLIGHT).map(|j| vec![(i + j) as u8; chunk]));
        assert!(batch.iter().all(|filled| filled[chunk / 2] == filled[0]));
        batch.clear();
    }
    minor_faults() - before
}

/// Runs this binary again as one variant; returns the faults it reports.
fn faults_of(variant: &str) -> u64 {
    let out = std::process::Command::new(std::env::current_exe().unwrap()).arg(variant).output().unwrap();
    assert!(out.status.success(), "{variant}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("kept") => {
            assert!(ftp_actor::tuning::heap::keep_freed_memory(), "mallopt refused the thresholds");
            println!("{}", move_chunks());
        }
        Some("default") => println!("{}", move_chunks()),
        // The test harness's own flags (--nocapture, filters) land here: run the test.
        _ => {
            let default = faults_of("default");
            let kept = faults_of("kept");
            let (chunk, chunks) = (chunk(), chunks());
            println!(
                "heap: {default} page faults with glibc's defaults, {kept} with the kept heap, {chunks} chunks of {chunk} bytes"
            );
            // One batch's pages: what a heap that keeps its memory faults in once, at the start.
            let batch_pages = (IN_FLIGHT * chunk).div_ceil(PAGE) as u64;
            assert!(default > 8 * batch_pages, "the defaults kept the chunks: the pattern no longer shows the problem");
            assert!(
                kept < 2 * batch_pages,
                "the kept heap faulted {kept} times, more than twice one batch's {batch_pages} pages"
            );
            println!("1 passed, 0 failed");
        }
    }
}
