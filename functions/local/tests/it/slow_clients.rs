//! Slow clients against the real `herald serve` on loopback: connections that trickle a request's
//! headers and connections that send nothing are closed after the header timeout, one address's
//! connections are bounded, and a normal request is answered meanwhile.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::Herald;

const SLOW: usize = 20;
/// What the server is started with.
const HEADER_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long after the timeout a connection may still be open: scheduling slack on a busy machine.
const SLACK: Duration = Duration::from_secs(5);

fn address(herald: &Herald) -> String {
    herald
        .started
        .url
        .strip_prefix("http://")
        .expect("an http URL")
        .to_owned()
}

/// Reads until the server closes the connection (end of stream or reset), at most `within`;
/// answers how long that took, or `None` if it stayed open.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        let left = within.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn trickled_headers_and_silent_connections_are_closed_while_others_are_served() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = Herald::start_with(
        &dir.path().join("data"),
        &[],
        &["--header-timeout-ms", "1000"],
    );
    let addr = address(&herald);
    let start = Instant::now();

    // Slowloris: a request line, then one header byte every 200 ms, never the blank line.
    let mut trickling = Vec::new();
    for _ in 0..SLOW {
        let mut stream = TcpStream::connect(&addr).await.expect("connects");
        trickling.push(tokio::spawn(async move {
            let _ = stream
                .write_all(b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .await;
            // Bounded: 100 bytes over 20 s, far past the timeout.
            for _ in 0..100 {
                if stream.write_all(b"a").await.is_err() {
                    return Some(start.elapsed());
                }
                let mut buf = [0u8; 256];
                let read =
                    tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
                if let Ok(Ok(0) | Err(_)) = read {
                    return Some(start.elapsed());
                }
            }
            None
        }));
    }
    let mut silent = Vec::new();
    for _ in 0..SLOW {
        silent.push(TcpStream::connect(&addr).await.expect("connects"));
    }

    // Meanwhile a client that sends its request is answered.
    let (status, list) = herald.get("/notifications/channels").await;
    assert_eq!(status, 200, "{list}");

    for mut stream in silent {
        let closed = closed_within(&mut stream, HEADER_TIMEOUT + SLACK).await;
        assert!(
            closed.is_some(),
            "a silent connection is still open {:?} after it was made",
            start.elapsed()
        );
    }
    for task in trickling {
        let closed = task.await.expect("the trickling task");
        assert!(
            closed.is_some_and(|at| at <= HEADER_TIMEOUT + SLACK),
            "a connection trickling its headers was not closed in time: {closed:?}"
        );
    }

    // And the server still answers.
    let (status, list) = herald.get("/notifications/channels").await;
    assert_eq!(status, 200, "{list}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = Herald::start_with(
        &dir.path().join("data"),
        &[],
        &["--header-timeout-ms", "1000"],
    );
    let mut stream = TcpStream::connect(address(&herald))
        .await
        .expect("connects");
    stream
        .write_all(b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("a request");
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.expect("an answer");
    assert_eq!(&head, b"HTTP/1.1 200");
    // The answer is read to the end, or not: either way the connection is closed once idle.
    let closed = closed_within(&mut stream, HEADER_TIMEOUT + SLACK).await;
    assert!(closed.is_some(), "the idle connection stayed open");
}

#[tokio::test]
async fn one_address_holds_a_bounded_number_of_connections() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let herald = Herald::start_with(
        &dir.path().join("data"),
        &[],
        &["--max-connections-per-address", "8"],
    );
    let addr = address(&herald);
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(&addr).await.expect("connects"));
    }
    // The ninth is closed at once, long before the (default, 10 s) header timeout.
    let mut ninth = TcpStream::connect(&addr).await.expect("connects");
    let _ = ninth
        .write_all(b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    let closed = closed_within(&mut ninth, Duration::from_secs(3)).await;
    assert!(
        closed.is_some(),
        "a ninth connection from one address was served"
    );

    // Once one closes, a request is served again.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = reqwest::Client::new()
            .get(format!("{}/openapi.json", herald.started.url))
            .send()
            .await;
        if r.as_ref().is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no request served after a slot freed: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
