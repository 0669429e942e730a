//! The SDK's HTTP client (`herald_shared::aws::http_client`, reqwest over HTTP/1.1) under an SDK
//! client, against a loopback HTTP/1.1 peer that answers SQS's `GetQueueUrl` — or hangs, or
//! drops the connection: timeouts and failures reach the SDK classified so that it retries what
//! is worth retrying, and connections are kept alive between requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::error::SdkError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the peer does with the request on each connection, by connection number (from 0).
#[derive(Clone, Copy)]
enum Behaviour {
    Answer,
    /// Reads the request and closes the connection without an answer.
    Drop,
    /// Reads the request and never answers.
    Hang,
}

#[derive(Default)]
struct Counts {
    connections: AtomicUsize,
    requests: AtomicUsize,
}

/// A loopback peer; `behaviour(n)` decides for the n-th connection.
async fn peer(behaviour: fn(usize) -> Behaviour) -> (String, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let counts = Arc::new(Counts::default());
    let seen = counts.clone();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let n = seen.connections.fetch_add(1, Ordering::SeqCst);
            let seen = seen.clone();
            tokio::spawn(serve(socket, behaviour(n), seen));
        }
    });
    (url, counts)
}

/// Serves requests on one connection until the client closes it.
async fn serve(mut socket: TcpStream, behaviour: Behaviour, counts: Arc<Counts>) {
    let mut buffer = Vec::new();
    loop {
        let Some(request_len) = read_request(&mut socket, &mut buffer).await else {
            return;
        };
        buffer.drain(..request_len);
        counts.requests.fetch_add(1, Ordering::SeqCst);
        match behaviour {
            Behaviour::Answer => {
                let body = r#"{"QueueUrl":"http://127.0.0.1/000000000000/q"}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\n\
                     x-amzn-requestid: r-1\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                socket.write_all(response.as_bytes()).await.unwrap();
            }
            Behaviour::Drop => return,
            Behaviour::Hang => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
        }
    }
}

/// Reads one request (headers and a `content-length` body) into `buffer`; its length, or `None`
/// when the connection closed first.
async fn read_request(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let headers = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let body_len = headers
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            if buffer.len() >= end + 4 + body_len {
                return Some(end + 4 + body_len);
            }
        }
        let mut chunk = [0u8; 4096];
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn client(url: &str, retry: RetryConfig, timeouts: TimeoutConfig) -> aws_sdk_sqs::Client {
    let sdk = herald_shared::aws::sdk_config(Some(url)).await;
    let config = aws_sdk_sqs::config::Builder::from(&sdk)
        .retry_config(retry)
        .timeout_config(timeouts)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

async fn get_queue_url(
    client: &aws_sdk_sqs::Client,
) -> Result<String, SdkError<aws_sdk_sqs::operation::get_queue_url::GetQueueUrlError>> {
    let out = client.get_queue_url().queue_name("q").send().await?;
    Ok(out.queue_url().unwrap_or_default().to_owned())
}

fn no_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder().build()
}

#[tokio::test]
async fn requests_on_one_client_share_a_kept_alive_connection() {
    let (url, counts) = peer(|_| Behaviour::Answer).await;
    let client = client(&url, RetryConfig::disabled(), no_timeouts()).await;
    for _ in 0..3 {
        assert_eq!(
            get_queue_url(&client).await.unwrap(),
            "http://127.0.0.1/000000000000/q"
        );
    }
    assert_eq!(counts.requests.load(Ordering::SeqCst), 3);
    assert_eq!(counts.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_silent_peer_is_a_timeout_at_the_read_timeout() {
    let (url, counts) = peer(|_| Behaviour::Hang).await;
    let timeouts = TimeoutConfig::builder()
        .read_timeout(Duration::from_millis(300))
        .build();
    let client = client(&url, RetryConfig::disabled(), timeouts).await;
    let started = Instant::now();
    let error = get_queue_url(&client).await.unwrap_err();
    let elapsed = started.elapsed();
    let SdkError::DispatchFailure(failure) = &error else {
        panic!("expected a dispatch failure, got {error:?}");
    };
    assert!(failure.is_timeout(), "{failure:?}");
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert_eq!(counts.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refused_connection_is_an_io_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = client(&url, RetryConfig::disabled(), no_timeouts()).await;
    let error = get_queue_url(&client).await.unwrap_err();
    let SdkError::DispatchFailure(failure) = &error else {
        panic!("expected a dispatch failure, got {error:?}");
    };
    assert!(failure.is_io(), "{failure:?}");
}

#[tokio::test]
async fn a_connection_dropped_without_an_answer_is_retried() {
    // The first connection reads the request and closes; the retry's new connection answers.
    let (url, counts) = peer(|n| {
        if n == 0 {
            Behaviour::Drop
        } else {
            Behaviour::Answer
        }
    })
    .await;
    let retry = RetryConfig::standard()
        .with_max_attempts(2)
        .with_initial_backoff(Duration::from_millis(1));
    let client = client(&url, retry, no_timeouts()).await;
    assert_eq!(
        get_queue_url(&client).await.unwrap(),
        "http://127.0.0.1/000000000000/q"
    );
    assert_eq!(counts.requests.load(Ordering::SeqCst), 2);
    assert_eq!(counts.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_same_failure_without_retries_reaches_the_caller_as_retryable() {
    let (url, _) = peer(|_| Behaviour::Drop).await;
    let client = client(&url, RetryConfig::disabled(), no_timeouts()).await;
    let error = get_queue_url(&client).await.unwrap_err();
    let SdkError::DispatchFailure(failure) = &error else {
        panic!("expected a dispatch failure, got {error:?}");
    };
    // hyper's "connection closed before message completed": transient, not a user error.
    assert!(!failure.is_user(), "{failure:?}");
    assert!(
        failure.is_io()
            || failure.as_other() == Some(aws_smithy_types::retry::ErrorKind::TransientError),
        "{failure:?}"
    );
}
