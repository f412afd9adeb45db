//! The metrics endpoint: a minimal HTTP/1.x responder on its own listener (`metrics.listen`),
//! for Prometheus and for health checks. `GET /metrics` answers the Prometheus text format,
//! `GET /health` answers `ok` (200) while the server admits sessions and `shutting down` (503)
//! once it stops; anything else gets 404 or 405. One request per connection, then close.
//!
//! Written here rather than on an HTTP framework: two fixed routes need no more, and the
//! bounds are ours to state. A request head may be at most [`MAX_HEAD`] bytes and must arrive
//! within [`READ_TIMEOUT`]; at most [`MAX_CONNECTIONS`] are served at once, later ones are
//! closed at once. Put it on a loopback or an operator-only address: it has no authentication
//! (it shows counts, never names or paths).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Longest request head read.
pub const MAX_HEAD: usize = 8192;
/// Time a client has to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Metrics,
    Health,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Routes a request head (`GET /metrics HTTP/1.1\r\n...`); a query string is ignored.
pub fn route(head: &[u8]) -> Route {
    let Some(line) = head.split(|&b| b == b'\n').next() else { return Route::BadRequest };
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return Route::BadRequest;
    }
    if method != "GET" && method != "HEAD" {
        return Route::MethodNotAllowed;
    }
    match target.split('?').next() {
        Some("/metrics") => Route::Metrics,
        Some("/health") => Route::Health,
        _ => Route::NotFound,
    }
}

/// What the endpoint reads from the server: the metrics text, and whether it is healthy.
pub trait Source: Send + Sync + 'static {
    fn metrics(&self) -> impl Future<Output = String> + Send;
    fn healthy(&self) -> impl Future<Output = bool> + Send;
}

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, source: Arc<impl Source>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors or a transient error: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else { continue };
        let source = source.clone();
        tokio::spawn(async move {
            let _ = answer(stream, &*source).await;
            drop(permit);
        });
    }
}

async fn answer(mut stream: TcpStream, source: &impl Source) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(head))) => head,
        Ok(Ok(None)) => {
            let refusal =
                "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            stream.write_all(refusal.as_bytes()).await?;
            stream.shutdown().await?;
            // Read what the client is still sending (briefly, boundedly) before closing: closed
            // with unread bytes, the socket is reset and the client may never see the 431.
            let mut rest = [0u8; 4096];
            let drain = async {
                for _ in 0..64 {
                    if matches!(stream.read(&mut rest).await, Ok(0) | Err(_)) {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
            return Ok(());
        }
        // Too slow, or gone: nothing to answer.
        _ => return Ok(()),
    };
    let send_body = !head.starts_with(b"HEAD ");
    let (status, content_type, body) = match route(&head) {
        Route::Metrics => {
            ("200 OK", prometheus_client::encoding::prometheus_text::CONTENT_TYPE, source.metrics().await)
        }
        Route::Health if source.healthy().await => ("200 OK", "text/plain", "ok\n".to_string()),
        Route::Health => ("503 Service Unavailable", "text/plain", "shutting down\n".to_string()),
        Route::NotFound => ("404 Not Found", "text/plain", "try /metrics or /health\n".to_string()),
        Route::MethodNotAllowed => ("405 Method Not Allowed", "text/plain", "GET only\n".to_string()),
        Route::BadRequest => ("400 Bad Request", "text/plain", "bad request\n".to_string()),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if send_body {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads until the blank line that ends a request head; `None` past [`MAX_HEAD`] bytes.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    loop {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Ok(Some(head));
        }
        head.extend_from_slice(&buffer[..read]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_requests() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"HEAD /health HTTP/1.1\r\n\r\n"), Route::Health);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::MethodNotAllowed);
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"GET /metrics SMTP/1.0\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b""), Route::BadRequest);
        assert_eq!(route(b"\xff\xfe"), Route::BadRequest);
    }
}
