//! `ftp_actor::heap::keep_freed_memory` against glibc's defaults, on the allocation pattern of
//! a native transfer: 256 KiB chunks allocated and filled on one thread, freed on another, a
//! few in flight at a time. The kernel counts the page faults. With the defaults, freed chunks
//! go back to the kernel and the next ones fault their pages in again; with the kept heap
//! they reuse them. The mallopt settings are process-wide and must precede any thread, so each
//! variant runs in a child process of this test binary (`harness = false`: `main` is ours).

use std::sync::mpsc::sync_channel;

const CHUNK: usize = 256 << 10;
const CHUNKS: usize = 4096; // 1 GiB through the heap
const IN_FLIGHT: usize = 4;

/// Minor page faults of this process so far (`/proc/self/stat`, field 10).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    fields[7].parse().unwrap()
}

/// The transfer pattern; returns the page faults it caused. The chunks go over in batches of
/// `IN_FLIGHT`, each batch freed by the other thread before the next is allocated: the moment
/// a transfer's pipeline drains, when glibc's defaults give the freed chunks back. (Left to
/// the scheduler, whether they do would vary from run to run: 459 to 62,993 faults.)
fn move_chunks() -> u64 {
    let before = minor_faults();
    let (batches, incoming) = sync_channel::<Vec<Vec<u8>>>(1);
    let (freed, done) = sync_channel::<()>(1);
    let consumer = std::thread::spawn(move || {
        for batch in incoming {
            assert!(batch.iter().all(|chunk| chunk[CHUNK / 2] == chunk[0]));
            drop(batch);
            freed.send(()).unwrap();
        }
    });
    for i in 0..CHUNKS / IN_FLIGHT {
        batches.send((0..IN_FLIGHT).map(|j| vec![(i + j) as u8; CHUNK]).collect()).unwrap();
        done.recv().unwrap();
    }
    drop(batches);
    consumer.join().unwrap();
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
            assert!(ftp_actor::heap::keep_freed_memory(), "mallopt refused the thresholds");
            println!("{}", move_chunks());
        }
        Some("default") => println!("{}", move_chunks()),
        // The test harness's own flags (--nocapture, filters) land here: run the test.
        _ => {
            let (default, kept) = (faults_of("default"), faults_of("kept"));
            println!("heap: {default} page faults with glibc's defaults, {kept} with the kept heap, {CHUNKS} chunks");
            // Refaulting a chunk costs 64 faults (256 KiB of 4 KiB pages).
            assert!(default > CHUNKS as u64, "the defaults did not trim: the pattern no longer shows the problem");
            assert!(kept < (CHUNKS / 8) as u64, "the kept heap still faulted {kept} times for {CHUNKS} chunks");
            println!("1 passed, 0 failed");
        }
    }
}
