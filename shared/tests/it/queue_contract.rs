//! The queue contract (`herald_shared::queue::contract`) run against both engines — embedded
//! (redb) and SQS (through the AWS SDK against the emulator at `HERALD_TEST_AWS_ENDPOINT`) —
//! plus what only one engine has: the embedded queue's durability and both redrives.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_shared::queue::contract::{QueueFactory, QueuePair, QueueSpec};
use herald_shared::queue::embedded::{EmbeddedQueues, QueueSettings};
use herald_shared::queue::sqs::{self as sqs_engine, SqsQueue};
use herald_shared::queue::{MAX_BATCH, Outgoing, Queue, QueueError};

/// Fresh in-memory embedded queues per pair.
struct Embedded;

#[async_trait]
impl QueueFactory for Embedded {
    async fn create(&self, spec: QueueSpec) -> QueuePair {
        let queues = EmbeddedQueues::in_memory().expect("in-memory queue database");
        QueuePair {
            main: Arc::new(queues.queue("main", main_settings(spec))),
            dlq: Arc::new(queues.queue("main-dlq", QueueSettings::default())),
        }
    }
}

fn main_settings(spec: QueueSpec) -> QueueSettings {
    QueueSettings {
        visibility_timeout: spec.visibility_timeout,
        max_receives: spec.max_receives,
        dead_letter: Some("main-dlq".into()),
    }
}

/// Fresh SQS queues (unique names) per pair, on the emulator.
struct Sqs {
    client: aws_sdk_sqs::Client,
}

impl Sqs {
    async fn new() -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(&herald_testing::emulator::sdk_config().await),
        }
    }
}

#[async_trait]
impl QueueFactory for Sqs {
    async fn create(&self, spec: QueueSpec) -> QueuePair {
        let urls = sqs_engine::create_queue_with_dlq(
            &self.client,
            &herald_testing::emulator::unique("contract"),
            spec.visibility_timeout,
            spec.max_receives,
        )
        .await
        .expect("create SQS queues");
        QueuePair {
            main: Arc::new(SqsQueue::new(self.client.clone(), urls.main)),
            dlq: Arc::new(SqsQueue::new(self.client.clone(), urls.dead_letter)),
        }
    }
}

/// One test per contract case and engine: `embedded::<case>` and `sqs::<case>`.
macro_rules! contract_cases {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    herald_shared::queue::contract::$case(&super::Embedded).await;
                }
            )*
        }
        mod sqs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    herald_shared::queue::contract::$case(&super::Sqs::new().await).await;
                }
            )*
        }
    };
}

contract_cases!(
    sent_messages_are_all_received,
    messages_in_lanes_are_all_received,
    a_full_batch_is_delivered_and_one_more_is_refused,
    a_delayed_message_stays_hidden_until_due,
    a_received_message_comes_back_after_its_visibility_timeout,
    a_deleted_message_does_not_come_back,
    a_deleted_batch_does_not_come_back,
    change_visibility_to_zero_makes_a_message_visible_now,
    a_made_up_receipt_is_refused,
    after_max_receives_a_message_moves_to_the_dead_letter_queue,
    a_long_poll_returns_as_soon_as_a_message_arrives,
);

async fn receive_all(queue: &dyn Queue, n: usize) -> Vec<herald_shared::queue::Received> {
    let mut got = Vec::new();
    for _ in 0..10 {
        if got.len() >= n {
            break;
        }
        got.extend(
            queue
                .receive(MAX_BATCH, Duration::from_secs(1))
                .await
                .expect("receive"),
        );
    }
    got
}

mod embedded_only {
    use super::*;

    fn settings(visibility: Duration) -> QueueSettings {
        QueueSettings {
            visibility_timeout: visibility,
            max_receives: 3,
            dead_letter: Some("work-dlq".into()),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn messages_and_in_flight_messages_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("queue.redb");
        let received_id = {
            let queues = EmbeddedQueues::open(&path).expect("open");
            let q = queues.queue("work", settings(Duration::from_secs(1)));
            q.send_batch(vec![Outgoing::now("a"), Outgoing::now("b")])
                .await
                .expect("send");
            let got = q.receive(1, Duration::ZERO).await.expect("receive");
            assert_eq!(got.len(), 1);
            got[0].message_id.clone()
        };

        let queues = EmbeddedQueues::open(&path).expect("reopen after the last handle dropped");
        assert_eq!(queues.approximate_count("work").await.expect("count"), 2);
        let q = queues.queue("work", settings(Duration::from_secs(1)));
        let mut got = receive_all(&q, 2).await;
        // On a loaded machine `b` may come back a second time while `a` waits out its
        // visibility (1 s): at-least-once, as SQS. What must hold: both came back.
        let mut seen = std::collections::HashSet::new();
        got.retain(|m| seen.insert(m.message_id.clone()));
        let mut bodies: Vec<_> = got.iter().map(|m| m.body.as_str()).collect();
        bodies.sort_unstable();
        assert_eq!(bodies, ["a", "b"]);
        let again = got
            .iter()
            .find(|m| m.message_id == received_id)
            .expect("in-flight one back");
        assert_eq!(
            again.receive_count, 2,
            "its first receive was remembered across the restart"
        );
    }

    /// Run only as the child of `sent_messages_survive_kill_9`.
    #[tokio::test]
    #[ignore = "the child half of sent_messages_survive_kill_9"]
    async fn child_sends_then_hangs() {
        let Ok(path) = std::env::var("HERALD_QUEUE_KILL_TEST_DB") else {
            return;
        };
        let queues = EmbeddedQueues::open(&path).expect("open");
        let q = queues.queue("work", QueueSettings::default());
        let batch = (0..MAX_BATCH)
            .map(|i| Outgoing::now(format!("m{i}")))
            .collect();
        q.send_batch(batch).await.expect("send");
        println!("SENT");
        tokio::time::sleep(Duration::from_secs(600)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sent_messages_survive_kill_9() {
        use std::io::BufRead;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("queue.redb");
        let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "queue_contract::embedded_only::child_sends_then_hangs",
                "--ignored",
                "--nocapture",
            ])
            .env("HERALD_QUEUE_KILL_TEST_DB", &path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let sent = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains("SENT"));
        child.kill().expect("SIGKILL the child");
        child.wait().expect("reap the child");
        assert!(sent, "the child did not report its send");

        let queues = EmbeddedQueues::open(&path).expect("open after kill -9");
        let q = queues.queue("work", QueueSettings::default());
        let got = receive_all(&q, MAX_BATCH).await;
        assert_eq!(
            got.len(),
            MAX_BATCH,
            "every message sent before the kill is there: {got:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_letter_queue_can_be_listed_and_redriven() {
        let queues = EmbeddedQueues::in_memory().expect("queues");
        let q = queues.queue(
            "work",
            QueueSettings {
                visibility_timeout: Duration::from_secs(30),
                max_receives: 1,
                dead_letter: Some("work-dlq".into()),
            },
        );
        q.send_batch(vec![Outgoing::now("poison")])
            .await
            .expect("send");
        let first = q.receive(1, Duration::ZERO).await.expect("receive");
        q.change_visibility(&first[0].receipt, Duration::ZERO)
            .await
            .expect("retime");
        assert!(
            q.receive(1, Duration::ZERO)
                .await
                .expect("receive")
                .is_empty()
        );

        assert_eq!(queues.approximate_count("work").await.expect("count"), 0);
        assert_eq!(
            queues.approximate_count("work-dlq").await.expect("count"),
            1
        );
        let listed = queues.peek("work-dlq", 10).await.expect("peek");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].body, "poison");
        assert_eq!(listed[0].message_id, first[0].message_id);

        assert_eq!(
            queues
                .redrive("work-dlq", "work", 100)
                .await
                .expect("redrive"),
            1
        );
        assert_eq!(
            queues.approximate_count("work-dlq").await.expect("count"),
            0
        );
        let back = q.receive(1, Duration::from_secs(2)).await.expect("receive");
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].body, "poison");
        assert_eq!(
            back[0].receive_count, 1,
            "a redriven message starts counting afresh"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_receipt_superseded_by_a_later_receive_deletes_nothing() {
        let queues = EmbeddedQueues::in_memory().expect("queues");
        let q = queues.queue("work", settings(Duration::from_secs(30)));
        q.send_batch(vec![Outgoing::now("x")]).await.expect("send");
        let first = q
            .receive(1, Duration::ZERO)
            .await
            .expect("receive")
            .remove(0);
        q.change_visibility(&first.receipt, Duration::ZERO)
            .await
            .expect("retime");
        let second = q
            .receive(1, Duration::ZERO)
            .await
            .expect("receive")
            .remove(0);

        let stale = q.delete(&first.receipt).await;

        assert!(
            matches!(stale, Err(QueueError::UnknownReceipt)),
            "{stale:?}"
        );
        assert_eq!(queues.approximate_count("work").await.expect("count"), 1);
        q.delete(&second.receipt)
            .await
            .expect("the current receipt deletes");
        assert_eq!(queues.approximate_count("work").await.expect("count"), 0);
        q.delete(&second.receipt)
            .await
            .expect("deleting twice is not an error");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_poll_wakes_when_an_in_flight_message_times_out() {
        let queues = EmbeddedQueues::in_memory().expect("queues");
        let q = queues.queue("work", settings(Duration::from_secs(1)));
        q.send_batch(vec![Outgoing::now("x")]).await.expect("send");
        let first = q.receive(1, Duration::ZERO).await.expect("receive");
        assert_eq!(first.len(), 1);

        let started = std::time::Instant::now();
        let again = q
            .receive(1, Duration::from_secs(20))
            .await
            .expect("long poll");
        assert_eq!(again.len(), 1, "the message came back within the wait");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "woke at {:?}",
            started.elapsed()
        );
    }
}

mod sqs_only {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_letter_queue_can_be_redriven() {
        let client = aws_sdk_sqs::Client::new(&herald_testing::emulator::sdk_config().await);
        let urls = sqs_engine::create_queue_with_dlq(
            &client,
            &herald_testing::emulator::unique("redrive"),
            Duration::from_secs(30),
            1,
        )
        .await
        .expect("create");
        let q = SqsQueue::new(client.clone(), &urls.main);
        q.send_batch(vec![Outgoing::now("poison")])
            .await
            .expect("send");
        let first = q.receive(1, Duration::from_secs(1)).await.expect("receive");
        q.change_visibility(&first[0].receipt, Duration::ZERO)
            .await
            .expect("retime");
        assert!(
            q.receive(1, Duration::from_secs(1))
                .await
                .expect("receive")
                .is_empty()
        );

        let dead = sqs_engine::approximate_count(&client, &urls.dead_letter)
            .await
            .expect("count");
        assert_eq!(dead, 1, "the dead-letter queue holds the message");

        let moved = sqs_engine::redrive(&client, &urls.dead_letter, &urls.main, 100)
            .await
            .expect("redrive");

        assert_eq!(moved, 1);
        let back = q.receive(1, Duration::from_secs(2)).await.expect("receive");
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].body, "poison");
        let dlq = SqsQueue::new(client, &urls.dead_letter);
        assert!(
            dlq.receive(10, Duration::from_secs(1))
                .await
                .expect("receive")
                .is_empty()
        );
    }
}
