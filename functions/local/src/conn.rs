//! The local server's HTTP/1 connections, served by hyper with the bounds a listener open to a
//! network needs against slow clients (slowloris):
//!
//! - a header-read timeout: a request's headers must arrive within it, counted from when the
//!   server starts waiting for them — on a new connection and after each answer — so it is also
//!   the idle timeout of a connection between requests (a silent connection is closed after it);
//! - a bound on concurrent connections per client address: one over it is closed at once.
//!
//! A request hyper cannot parse (a request line over 64 KB, a head over its buffer, a malformed
//! one) is answered by hyper itself with an empty body; [`JsonParseErrors`] gives that answer the
//! API's JSON error body.
//!
//! WebSocket upgrades (the feed socket) leave these bounds behind: the upgraded socket has its own
//! ping and expiry. On shutdown the listener stops accepting, connections finish their request
//! in flight, and the call returns when all are closed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The bounds of every connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a request's headers may take, and how long a connection may sit idle.
    pub header_read_timeout: Duration,
    /// Concurrent connections per client address.
    pub max_per_address: usize,
}

/// Serves `app` on `listener` until `shutdown` turns true, then waits for open connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let open = Arc::new(Mutex::new(HashMap::<IpAddr, usize>::new()));
    // Each connection holds a receiver; the sender is closed when all are dropped.
    let (all_closed, connection) = watch::channel(());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut shutdown) => break,
        };
        let Some(slot) = Slot::take(&open, peer.ip(), limits.max_per_address) else {
            tracing::warn!(peer = %peer.ip(), limit = limits.max_per_address, "too many connections from one address: closed");
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let mut stop = shutdown.clone();
        let held = connection.clone();
        tokio::spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let conn = builder
                .serve_connection(TokioIo::new(JsonParseErrors::new(stream)), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended");
                    }
                }
                () = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(slot);
            drop(held);
        });
    }
    drop(listener);
    drop(connection);
    all_closed.closed().await;
    Ok(())
}

/// When `shutdown` turns true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// One open connection counted against its address; uncounted when dropped.
struct Slot {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    address: IpAddr,
}

impl Slot {
    fn take(
        open: &Arc<Mutex<HashMap<IpAddr, usize>>>,
        address: IpAddr,
        max: usize,
    ) -> Option<Self> {
        let mut counts = open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(address).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Self {
            open: Arc::clone(open),
            address,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// The answers hyper writes itself for a request it cannot parse: status, code, message.
const PARSE_ERRORS: [(&str, &str, &str); 3] = [
    (
        "414",
        "uri_too_long",
        "the request line is over 64 KB: shorten the query (a cursor is a `nextCursor` as returned)",
    ),
    ("431", "headers_too_large", "the request head is too large"),
    (
        "400",
        "malformed_request",
        "the request is not valid HTTP/1.1",
    ),
];

/// A connection's stream that replaces hyper's own empty-bodied answer to an unparsable request
/// (its status line, then `content-length: 0`, nothing else) with the same status and the JSON
/// error body every other error has. Everything else passes through unchanged.
#[derive(Debug)]
pub struct JsonParseErrors<S> {
    inner: S,
    /// A replacement answer still to write, and how much of it is written.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> JsonParseErrors<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

/// The JSON answer for hyper's empty answer `head`, if it is one.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(head).ok()?;
    let rest = head.strip_prefix("HTTP/1.1 ")?;
    let (_, code, message) = PARSE_ERRORS
        .iter()
        .find(|(status, ..)| rest.starts_with(status))?;
    let lower = head.to_ascii_lowercase();
    if !head.ends_with("\r\n\r\n")
        || !lower.contains("\r\ncontent-length: 0\r\n")
        || lower.contains("content-type")
    {
        return None;
    }
    let reason = rest.lines().next()?.to_owned();
    let body =
        serde_json::json!({"error": {"code": code, "message": message, "field": null}}).to_string();
    Some(
        format!(
            "HTTP/1.1 {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<S: AsyncWrite + Unpin> JsonParseErrors<S> {
    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonParseErrors<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if let Some(answer) = replacement(buf) {
            this.pending = Some((answer, 0));
            // The replacement is ours to write now: hyper's bytes count as written.
            return match this.poll_pending(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Ready(Ok(buf.len())),
            };
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::replacement;

    #[test]
    fn only_hypers_empty_answers_to_unparsable_requests_are_replaced() {
        let hyper = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: Sun, 06 Dec 2026 02:30:00 GMT\r\n\r\n";
        let answer = String::from_utf8(replacement(hyper).expect("replaced")).expect("text");
        assert!(
            answer.starts_with("HTTP/1.1 414 URI Too Long\r\n"),
            "{answer}"
        );
        assert!(answer.contains(r#""code":"uri_too_long""#), "{answer}");
        // The API's own answers have a body and a content type.
        let api = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 80\r\n\r\n";
        assert!(replacement(api).is_none());
        assert!(replacement(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
    }
}
