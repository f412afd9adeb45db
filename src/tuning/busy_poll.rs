//! Busy polling: after answering a request, the serving thread keeps polling its sockets for a
//! short window instead of going to sleep at once.
//!
//! Why: a client that sends its next request right after an answer (a script, a sync tool
//! walking directories, a burst of logins) would otherwise find the server's thread asleep, and
//! waking a thread whose CPU went idle costs more than a cheap request itself. On the benchmark
//! machine (a KVM guest without guest halt polling) each such wake-up is a VM exit, and it was
//! most of a `pwd` round trip: see `docs/BENCHMARKS.md`. Polling for `busy_poll_us` (50 µs by
//! default) finds the next request awake; past the window the thread sleeps as before, so an
//! idle server spends at most one window of CPU per answer. Linux's `net.core.busy_read` and
//! the `haltpoll` idle governor make the same trade at other levels.
//!
//! How: one spinner task per runtime thread yields in a loop until its window closes. A task
//! that yields makes tokio's current-thread scheduler poll the I/O driver without blocking
//! (`epoll_wait` with a zero timeout) before its next turn, so every socket and timer stays
//! served and the other tasks run as usual; only the sleep is skipped.
//!
//! Sessions call [`stay_awake`] once a request is answered, never between the chunks of a
//! transfer: there the thread waits for the disk workers, which need the CPU themselves.
//!
//! Only a core nobody else wants is spent so: when more threads are runnable than there are
//! cores (clients on the same machine, the disk workers, other programs), a window would take
//! the CPU from one of them, and the thread sleeps at once instead ([`a_core_would_idle`]).

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The window of the current thread's spinner, and the signal that starts it.
struct Spinner {
    until: Cell<Instant>,
    start: tokio::sync::Notify,
}

thread_local! {
    static SPINNER: RefCell<Option<Rc<Spinner>>> = const { RefCell::new(None) };
    static LOAD: RefCell<LoadProbe> = RefCell::new(LoadProbe::open());
}

/// How long an answer of [`a_core_would_idle`] is used before the kernel is asked again: reading
/// it costs a system call, a few microseconds, which a reply every few microseconds should
/// not pay each time.
const LOAD_READ_EVERY: Duration = Duration::from_millis(1);

/// This thread's view of the machine's run queues: `/proc/loadavg`, kept open (each read at
/// offset 0 is computed afresh), and its last answer.
struct LoadProbe {
    file: Option<File>,
    read_at: Option<Instant>,
    idle_core: bool,
}

impl LoadProbe {
    fn open() -> LoadProbe {
        LoadProbe { file: File::open("/proc/loadavg").ok(), read_at: None, idle_core: true }
    }

    fn idle_core(&mut self) -> bool {
        let now = Instant::now();
        if self.read_at.is_some_and(|at| now.duration_since(at) < LOAD_READ_EVERY) {
            return self.idle_core;
        }
        self.read_at = Some(now);
        let mut text = [0u8; 128];
        // Where the kernel cannot tell, spin as configured.
        self.idle_core = match self.file.as_ref().and_then(|file| file.read_at(&mut text, 0).ok()) {
            Some(read) => runnable_threads(&text[..read]).is_none_or(|runnable| runnable <= cores()),
            None => true,
        };
        self.idle_core
    }
}

/// The threads runnable now, this one among them: the numerator of the fourth field of
/// `/proc/loadavg` (`0.52 0.58 0.59 3/467 12345`).
fn runnable_threads(loadavg: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(loadavg).ok()?;
    text.split_whitespace().nth(3)?.split_once('/')?.0.parse().ok()
}

fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |cores| cores.get()))
}

/// Would a core go idle if this thread slept now? No when more threads are runnable than
/// there are cores: one of them is waiting for a core, and would get this one.
pub fn a_core_would_idle() -> bool {
    LOAD.with(|probe| probe.borrow_mut().idle_core())
}

/// Keeps the current thread polling for `window` from now (extending a window already open),
/// unless other threads are waiting for the cores. A zero window does nothing. Call it from a
/// task of an actix arbiter (a tokio `LocalSet`).
pub fn stay_awake(window: Duration) {
    if !window.is_zero() && a_core_would_idle() {
        open_window(window);
    }
}

/// Keeps the current thread polling for `window` from now, whatever the load.
fn open_window(window: Duration) {
    let until = Instant::now() + window;
    SPINNER.with(|slot| {
        let mut slot = slot.borrow_mut();
        // The task holds the other reference; alone, this one outlived its runtime (a thread
        // that ran an earlier actix system), so a new task is needed.
        if slot.as_ref().is_none_or(|spinner| Rc::strong_count(spinner) == 1) {
            let spinner = Rc::new(Spinner { until: Cell::new(until), start: tokio::sync::Notify::new() });
            tokio::task::spawn_local(spin(spinner.clone()));
            *slot = Some(spinner);
        }
        let spinner = slot.as_ref().expect("set above");
        if spinner.until.get() < until {
            spinner.until.set(until);
        }
        spinner.start.notify_one();
    });
}

async fn spin(spinner: Rc<Spinner>) {
    loop {
        spinner.start.notified().await;
        while Instant::now() < spinner.until.get() {
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// CPU time of the calling thread, from /proc (clock ticks, usually 10 ms).
    fn thread_cpu() -> Duration {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc/thread-self/stat");
        let fields: Vec<&str> = stat.rsplit_once(')').expect("comm").1.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10)
    }

    /// Opens a window and sleeps through it; returns the CPU the thread spent meanwhile.
    async fn cpu_while_awake(window: Duration) -> Duration {
        let before = thread_cpu();
        open_window(window);
        tokio::time::sleep(window).await;
        thread_cpu() - before
    }

    fn on_local_runtime<F: Future<Output = ()>>(test: F) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        tokio::task::LocalSet::new().block_on(&runtime, test);
    }

    #[test]
    fn the_thread_polls_during_the_window_and_sleeps_after_it() {
        on_local_runtime(async {
            let awake = cpu_while_awake(Duration::from_millis(400)).await;
            // A sleeping thread uses next to nothing; even sharing a busy CPU, a spinning one
            // gets a good part of it.
            assert!(awake >= Duration::from_millis(60), "spun only {awake:?} of 400 ms");

            tokio::time::sleep(Duration::from_millis(20)).await;
            let before = thread_cpu();
            tokio::time::sleep(Duration::from_millis(400)).await;
            let asleep = thread_cpu() - before;
            assert!(asleep <= Duration::from_millis(100), "still spinning after the window: {asleep:?} of 400 ms");
        });
    }

    #[test]
    fn sockets_and_timers_are_served_while_the_thread_polls() {
        on_local_runtime(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let echo = tokio::task::spawn_local(async move {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut byte = [0u8; 1];
                stream.read_exact(&mut byte).await.unwrap();
                stream.write_all(&byte).await.unwrap();
            });
            let window = Duration::from_secs(5);
            let started = Instant::now();
            open_window(window);
            let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
            client.write_all(b"x").await.unwrap();
            let mut byte = [0u8; 1];
            client.read_exact(&mut byte).await.unwrap();
            echo.await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert_eq!(&byte, b"x");
            assert!(started.elapsed() < window, "the echo and the timer waited for the window to close");
        });
    }

    #[test]
    fn a_later_runtime_on_the_same_thread_gets_its_own_spinner() {
        for _ in 0..2 {
            on_local_runtime(async {
                let awake = cpu_while_awake(Duration::from_millis(300)).await;
                assert!(awake >= Duration::from_millis(40), "spun only {awake:?} of 300 ms");
            });
        }
    }

    #[test]
    fn runnable_threads_are_read_from_loadavg() {
        assert_eq!(runnable_threads(b"0.52 0.58 0.59 3/467 12345\n"), Some(3));
        assert_eq!(runnable_threads(b"1.00 1.00 1.00 17/90 1"), Some(17));
        assert_eq!(runnable_threads(b"garbage"), None);
        assert_eq!(runnable_threads(b"0.1 0.1 0.1 x/90 1"), None);
    }

    #[test]
    fn no_window_opens_while_every_core_is_wanted() {
        // More spinning threads than cores, each holding its core: the kernel counts them all
        // runnable, and a window would take a core from one of them.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hogs: Vec<_> = (0..cores() + 2)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || while !stop.load(std::sync::atomic::Ordering::Relaxed) {})
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        let crowded = (0..20).any(|_| {
            std::thread::sleep(LOAD_READ_EVERY);
            !a_core_would_idle()
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        hogs.into_iter().for_each(|hog| hog.join().unwrap());
        assert!(crowded, "{} threads spinning on {} cores, yet a core was said to be idle", cores() + 2, cores());
    }

    #[test]
    fn a_zero_window_starts_nothing() {
        on_local_runtime(async {
            stay_awake(Duration::ZERO);
            assert!(SPINNER.with(|slot| slot.borrow().is_none()));
        });
    }
}
