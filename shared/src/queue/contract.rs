//! The queue contract: what every [`Queue`] engine must do, written once and run against each
//! engine (embedded and SQS) by `shared/tests/queue_contract.rs`.
//!
//! Standard SQS queues do not promise order, so the cases compare sets. Timings are short
//! (visibility 1–2 s) and every wait has a generous bound: the cases check semantics, not speed.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{MAX_BATCH, Outgoing, Queue, QueueError, Receipt, Received};

/// How a case wants its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSpec {
    /// Whole seconds (SQS only takes whole seconds).
    pub visibility_timeout: Duration,
    /// Receives before a message moves to the dead-letter queue.
    pub max_receives: u32,
}

/// A fresh queue and the dead-letter queue it feeds.
#[derive(Debug, Clone)]
pub struct QueuePair {
    pub main: Arc<dyn Queue>,
    pub dlq: Arc<dyn Queue>,
}

/// Makes fresh, empty queues of one engine, each pair used by one case only.
#[async_trait]
pub trait QueueFactory: Send + Sync {
    async fn create(&self, spec: QueueSpec) -> QueuePair;
}

/// Longest any case waits for something that should happen.
const PATIENCE: Duration = Duration::from_secs(10);

fn spec(visibility_secs: u64, max_receives: u32) -> QueueSpec {
    QueueSpec {
        visibility_timeout: Duration::from_secs(visibility_secs),
        max_receives,
    }
}

fn bodies(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Receives until `n` messages arrived or [`PATIENCE`] ran out.
async fn receive_n(queue: &dyn Queue, n: usize) -> Vec<Received> {
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        let batch = queue
            .receive(MAX_BATCH, Duration::from_secs(1))
            .await
            .expect("receive");
        got.extend(batch);
    }
    got
}

/// Receives until a message arrives or [`PATIENCE`] runs out.
async fn receive_one(queue: &dyn Queue) -> Option<Received> {
    let mut got = receive_n(queue, 1).await;
    assert!(got.len() <= 1, "expected one message, got {got:?}");
    got.pop()
}

async fn send(queue: &dyn Queue, bodies: &[String]) {
    let messages = bodies.iter().map(Outgoing::now).collect();
    queue.send_batch(messages).await.expect("send_batch");
}

/// Every sent message is received once, with a receive count of 1 and its own id.
pub async fn sent_messages_are_all_received(factory: &dyn QueueFactory) {
    let q = factory.create(spec(30, 5)).await;
    let sent = bodies("all", 3);
    send(q.main.as_ref(), &sent).await;

    let got = receive_n(q.main.as_ref(), 3).await;

    let got_bodies: BTreeSet<_> = got.iter().map(|m| m.body.clone()).collect();
    assert_eq!(got_bodies, sent.into_iter().collect::<BTreeSet<_>>());
    assert!(
        got.iter().all(|m| m.receive_count == 1),
        "first receive counts 1: {got:?}"
    );
    let ids: HashSet<_> = got.iter().map(|m| m.message_id.clone()).collect();
    assert_eq!(ids.len(), 3, "message ids are distinct: {got:?}");
}

/// Messages sent in lanes (a tenant and a lane each; on SQS the tenant is the `MessageGroupId`
/// of a standard queue, which makes it a fair queue) and messages without one all arrive.
pub async fn messages_in_lanes_are_all_received(factory: &dyn QueueFactory) {
    let q = factory.create(spec(30, 5)).await;
    let sent = bodies("lane", 6);
    let messages = sent
        .iter()
        .enumerate()
        .map(|(i, body)| match i % 3 {
            0 => Outgoing::now(body).in_group("org-a/channel-1"),
            1 => Outgoing::now(body).in_group("org-b/channel-2"),
            _ => Outgoing::now(body),
        })
        .collect();
    q.main.send_batch(messages).await.expect("send_batch");

    let got = receive_n(q.main.as_ref(), 6).await;

    let got_bodies: BTreeSet<_> = got.iter().map(|m| m.body.clone()).collect();
    assert_eq!(got_bodies, sent.into_iter().collect::<BTreeSet<_>>());
}

/// A batch of the engine's [`Queue::max_batch`] (SQS: 10; the embedded engine: its
/// `BATCH_LIMIT`) is one call and all of it arrives; one more is refused. Deleting what arrived
/// is one call too, and nothing comes back.
pub async fn a_full_batch_is_delivered_and_one_more_is_refused(factory: &dyn QueueFactory) {
    let q = factory.create(spec(30, 5)).await;
    let max = q.main.max_batch();
    assert!(max >= MAX_BATCH, "an engine takes at least SQS's 10: {max}");
    let sent = bodies("full", max);
    send(q.main.as_ref(), &sent).await;

    let too_many = bodies("one-more", max + 1)
        .iter()
        .map(Outgoing::now)
        .collect();
    let refused = q.main.send_batch(too_many).await;
    assert!(
        matches!(refused, Err(QueueError::Rejected(_))),
        "{} in a batch: {refused:?}",
        max + 1
    );

    let received = receive_n(q.main.as_ref(), max).await;
    let got: BTreeSet<_> = received.iter().map(|m| m.body.clone()).collect();
    assert_eq!(got, sent.into_iter().collect::<BTreeSet<_>>());

    let receipts: Vec<Receipt> = received.into_iter().map(|m| m.receipt).collect();
    q.main.delete_batch(&receipts).await.expect("delete_batch");
    let again = q
        .main
        .receive(MAX_BATCH, Duration::ZERO)
        .await
        .expect("receive");
    assert!(again.is_empty(), "deleted messages came back: {again:?}");
}

/// A delayed message is invisible until its delay has passed, then arrives.
pub async fn a_delayed_message_stays_hidden_until_due(factory: &dyn QueueFactory) {
    let q = factory.create(spec(30, 5)).await;
    let sent_at = Instant::now();
    let messages = vec![
        Outgoing::now("later").delayed(Duration::from_secs(3)),
        Outgoing::now("now"),
    ];
    q.main.send_batch(messages).await.expect("send_batch");

    let first = receive_one(q.main.as_ref())
        .await
        .expect("the undelayed message arrives");
    assert_eq!(first.body, "now");
    let early = q
        .main
        .receive(MAX_BATCH, Duration::ZERO)
        .await
        .expect("receive");
    if sent_at.elapsed() < Duration::from_secs(2) {
        assert!(
            early.is_empty(),
            "the delayed message is hidden before its delay: {early:?}"
        );
    }

    let later = receive_one(q.main.as_ref())
        .await
        .expect("the delayed message arrives");
    assert_eq!(later.body, "later");
    assert!(
        sent_at.elapsed() >= Duration::from_secs(2),
        "the delayed message arrived after {:?}, before its 3 s delay",
        sent_at.elapsed()
    );
}

/// A received message is hidden for the visibility timeout, then comes back with a receive
/// count of 2 and the same message id.
pub async fn a_received_message_comes_back_after_its_visibility_timeout(
    factory: &dyn QueueFactory,
) {
    let q = factory.create(spec(2, 5)).await;
    send(q.main.as_ref(), &["again".to_owned()]).await;

    let first = receive_one(q.main.as_ref()).await.expect("first receive");
    assert_eq!(first.receive_count, 1);
    let hidden = q
        .main
        .receive(MAX_BATCH, Duration::ZERO)
        .await
        .expect("receive");
    assert!(hidden.is_empty(), "in flight, so hidden: {hidden:?}");

    let second = receive_one(q.main.as_ref())
        .await
        .expect("comes back after the timeout");
    assert_eq!(second.message_id, first.message_id);
    assert_eq!(second.body, "again");
    assert_eq!(second.receive_count, 2);
    assert_ne!(
        second.receipt, first.receipt,
        "each receive has its own receipt"
    );
}

/// A deleted message never comes back, and its receipt no longer re-times anything.
pub async fn a_deleted_message_does_not_come_back(factory: &dyn QueueFactory) {
    let q = factory.create(spec(1, 5)).await;
    send(q.main.as_ref(), &["gone".to_owned()]).await;
    let got = receive_one(q.main.as_ref()).await.expect("receive");

    q.main.delete(&got.receipt).await.expect("delete");

    let after = q
        .main
        .receive(MAX_BATCH, Duration::from_secs(3))
        .await
        .expect("receive");
    assert!(after.is_empty(), "deleted, yet received again: {after:?}");
    let retimed = q.main.change_visibility(&got.receipt, Duration::ZERO).await;
    assert!(
        matches!(retimed, Err(QueueError::UnknownReceipt)),
        "{retimed:?}"
    );
}

/// `delete_batch` deletes every message of a received batch.
pub async fn a_deleted_batch_does_not_come_back(factory: &dyn QueueFactory) {
    let q = factory.create(spec(1, 5)).await;
    send(q.main.as_ref(), &bodies("batch", 3)).await;
    let got = receive_n(q.main.as_ref(), 3).await;
    assert_eq!(got.len(), 3);

    let receipts: Vec<Receipt> = got.iter().map(|m| m.receipt.clone()).collect();
    q.main.delete_batch(&receipts).await.expect("delete_batch");

    let after = q
        .main
        .receive(MAX_BATCH, Duration::from_secs(3))
        .await
        .expect("receive");
    assert!(after.is_empty(), "deleted, yet received again: {after:?}");
}

/// `change_visibility(0)` makes an in-flight message visible at once.
pub async fn change_visibility_to_zero_makes_a_message_visible_now(factory: &dyn QueueFactory) {
    let q = factory.create(spec(60, 5)).await;
    send(q.main.as_ref(), &["retry".to_owned()]).await;
    let first = receive_one(q.main.as_ref()).await.expect("receive");

    q.main
        .change_visibility(&first.receipt, Duration::ZERO)
        .await
        .expect("change_visibility");

    let again = q
        .main
        .receive(MAX_BATCH, Duration::from_secs(5))
        .await
        .expect("receive");
    assert_eq!(
        again.len(),
        1,
        "visible again well before its 60 s timeout: {again:?}"
    );
    assert_eq!(again[0].message_id, first.message_id);
    assert_eq!(again[0].receive_count, 2);
}

/// A receipt that no receive handed out is refused.
pub async fn a_made_up_receipt_is_refused(factory: &dyn QueueFactory) {
    let q = factory.create(spec(30, 5)).await;
    send(q.main.as_ref(), &["real".to_owned()]).await;
    receive_one(q.main.as_ref()).await.expect("receive");

    let bogus = Receipt("not-a-receipt".into());
    let result = q.main.change_visibility(&bogus, Duration::ZERO).await;
    assert!(
        matches!(result, Err(QueueError::UnknownReceipt)),
        "{result:?}"
    );
}

/// After `max_receives` receives, the next receive moves the message to the dead-letter queue,
/// where it can be received.
pub async fn after_max_receives_a_message_moves_to_the_dead_letter_queue(
    factory: &dyn QueueFactory,
) {
    let q = factory.create(spec(30, 2)).await;
    send(q.main.as_ref(), &["poison".to_owned()]).await;

    for n in 1..=2 {
        let got = receive_one(q.main.as_ref()).await.expect("receive");
        assert_eq!(got.receive_count, n);
        q.main
            .change_visibility(&got.receipt, Duration::ZERO)
            .await
            .expect("change_visibility");
    }

    let third = q
        .main
        .receive(MAX_BATCH, Duration::from_secs(2))
        .await
        .expect("receive");
    assert!(
        third.is_empty(),
        "received more than max_receives times: {third:?}"
    );
    let dead = receive_one(q.dlq.as_ref())
        .await
        .expect("the message is in the dead-letter queue");
    assert_eq!(dead.body, "poison");
}

/// A long poll on an empty queue returns as soon as a message is sent, not at the end of its
/// wait.
pub async fn a_long_poll_returns_as_soon_as_a_message_arrives(factory: &dyn QueueFactory) {
    let q = factory.create(spec(30, 5)).await;
    let wait = Duration::from_secs(20);
    let main = Arc::clone(&q.main);
    let started = Instant::now();
    let poll = tokio::spawn(async move { main.receive(1, wait).await });

    tokio::time::sleep(Duration::from_millis(500)).await;
    send(q.main.as_ref(), &["wake".to_owned()]).await;
    let got = poll.await.expect("poll task").expect("receive");

    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body, "wake");
    assert!(
        started.elapsed() < PATIENCE,
        "the poll returned after {:?}, as if it waited out its {wait:?}",
        started.elapsed()
    );
}
