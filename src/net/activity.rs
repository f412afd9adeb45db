//! When bytes last moved on a connection, for stall timeouts that count the time in which no
//! byte moves rather than the time a whole frame takes: on a link of 30 kbit/s, a 256 KiB frame
//! takes over a minute, yet bytes arrive all along and the transfer is alive.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The last moment bytes moved through one or more [`Stamped`] streams.
#[derive(Debug)]
pub struct Activity {
    origin: Instant,
    /// Nanoseconds from `origin` to the last byte.
    last: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity { origin: Instant::now(), last: AtomicU64::new(0) })
    }

    fn touch(&self) {
        let now = self.origin.elapsed().as_nanos() as u64;
        self.last.store(now, Ordering::Relaxed);
    }

    /// How long no byte has moved (since the stream was made, if none has yet).
    pub fn quiet(&self) -> Duration {
        self.origin.elapsed().saturating_sub(Duration::from_nanos(self.last.load(Ordering::Relaxed)))
    }

    /// Runs `work` until it ends, or until `stall` passes in which `work` has been running and
    /// no byte has moved: `None` then.
    pub async fn unless_stalled<F: Future>(&self, stall: Duration, work: F) -> Option<F::Output> {
        let started = Instant::now();
        let stalled = async {
            loop {
                let quiet = self.quiet().min(started.elapsed());
                if quiet >= stall {
                    return;
                }
                tokio::time::sleep(stall - quiet).await;
            }
        };
        tokio::select! {
            output = work => Some(output),
            () = stalled => None,
        }
    }
}

/// A stream that stamps an [`Activity`] whenever bytes are read, and one (the same, or
/// another) whenever bytes are written.
#[derive(Debug)]
pub struct Stamped<S> {
    inner: S,
    on_read: Arc<Activity>,
    on_write: Arc<Activity>,
}

impl<S> Stamped<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Stamped<S> {
        Stamped { inner, on_read: activity.clone(), on_write: activity }
    }

    /// Stamps `received` on reads and `sent` on writes: the connection under TLS, so that
    /// every byte counts as it moves, not only whole records once decrypted (a record can take
    /// longer than a stall limit to arrive on a slow link).
    pub fn each_way(inner: S, received: Arc<Activity>, sent: Arc<Activity>) -> Stamped<S> {
        Stamped { inner, on_read: received, on_write: sent }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Stamped<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.on_read.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stamped<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.stamp(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.stamp(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S> Stamped<S> {
    fn stamp(&self, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(written)) = &polled
            && *written > 0
        {
            self.on_write.touch();
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_trickle_keeps_the_work_alive_and_silence_ends_it() {
        let activity = Activity::new();
        let (near, mut far) = tokio::io::duplex(64);
        let mut reader = Stamped::new(near, activity.clone());
        let trickle = tokio::spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                far.write_all(b"x").await.unwrap();
            }
            far // kept open: silence from here on
        });
        let stall = Duration::from_secs(5);
        // Ten bytes four seconds apart: 40 s of work with a 5 s stall limit, never stalled.
        let mut got = [0u8; 10];
        let read = activity.unless_stalled(stall, reader.read_exact(&mut got)).await;
        assert!(matches!(read, Some(Ok(10))), "{read:?}");
        let _far = trickle.await.unwrap();
        // Then nothing comes: given up after 5 s.
        let started = tokio::time::Instant::now();
        let mut more = [0u8; 1];
        assert!(activity.unless_stalled(stall, reader.read_exact(&mut more)).await.is_none());
        assert_eq!(started.elapsed(), stall);
    }

    #[tokio::test(start_paused = true)]
    async fn the_stall_counts_from_the_start_of_the_work_after_a_long_quiet() {
        let activity = Activity::new();
        tokio::time::sleep(Duration::from_secs(60)).await;
        let done = activity.unless_stalled(Duration::from_secs(5), tokio::time::sleep(Duration::from_secs(3))).await;
        assert!(done.is_some(), "an old quiet does not count against new work");
    }

    #[tokio::test]
    async fn writes_stamp_too() {
        let activity = Activity::new();
        let (near, mut far) = tokio::io::duplex(64);
        let mut writer = Stamped::new(near, activity.clone());
        std::thread::sleep(Duration::from_millis(50));
        assert!(activity.quiet() >= Duration::from_millis(50));
        writer.write_all(b"abc").await.unwrap();
        assert!(activity.quiet() < Duration::from_millis(50));
        let mut got = [0u8; 3];
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abc");
    }
}
