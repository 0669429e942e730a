//! The embedded queue's lanes: per-lane FIFO order, round robin between tenants, deferral in
//! place, per-tenant backlog counts — what the local delivery scheduler builds on.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use herald_shared::queue::embedded::{EmbeddedQueue, EmbeddedQueues, LaneRequest, QueueSettings};
use herald_shared::queue::{Outgoing, Queue, Received};

fn settings(max_receives: u32) -> QueueSettings {
    QueueSettings {
        visibility_timeout: Duration::from_secs(30),
        max_receives,
        dead_letter: Some("dispatch-dlq".into()),
    }
}

async fn send(queue: &EmbeddedQueue, lane: &str, bodies: impl IntoIterator<Item = String>) {
    let messages: Vec<Outgoing> = bodies
        .into_iter()
        .map(|b| Outgoing::now(b).in_group(lane))
        .collect();
    for chunk in messages.chunks(10) {
        queue.send_batch(chunk.to_vec()).await.expect("send");
    }
}

fn request(max: usize, per_lane: usize) -> LaneRequest {
    LaneRequest {
        max,
        per_lane,
        allowance: HashMap::new(),
        max_lanes: usize::MAX,
    }
}

fn bodies(messages: &[Received]) -> Vec<&str> {
    messages.iter().map(|m| m.body.as_str()).collect()
}

#[tokio::test]
async fn a_lane_gives_its_messages_in_send_order_no_more_than_its_allowance() {
    let queues = EmbeddedQueues::in_memory().expect("queues");
    let q = queues.queue("dispatch", settings(5));
    send(&q, "org-a/ch-1", (0..25).map(|i| format!("m{i}"))).await;

    let first = q.receive_lanes(request(100, 3)).await.expect("receive");
    assert_eq!(bodies(&first.messages), ["m0", "m1", "m2"]);
    assert!(
        first
            .messages
            .iter()
            .all(|m| m.group.as_deref() == Some("org-a/ch-1"))
    );

    // With the first three in flight, a lane allowed one more gets the fourth, not a later one.
    let next = q
        .receive_lanes(LaneRequest {
            max: 100,
            per_lane: 3,
            allowance: HashMap::from([("org-a/ch-1".to_owned(), 1)]),
            max_lanes: usize::MAX,
        })
        .await
        .expect("receive");
    assert_eq!(bodies(&next.messages), ["m3"]);
    let receipts: Vec<_> = first.messages.iter().map(|m| m.receipt.clone()).collect();
    q.delete_batch(&receipts).await.expect("delete");
    let after = q.receive_lanes(request(100, 2)).await.expect("receive");
    assert_eq!(
        bodies(&after.messages),
        ["m4", "m5"],
        "in-flight m3 is passed over"
    );
}

#[tokio::test]
async fn a_lane_allowed_hundreds_gives_hundreds_in_one_receive() {
    // `herald serve`'s ingest workers take up to 250 of one org's events per batch.
    let queues = EmbeddedQueues::in_memory().expect("queues");
    let q = queues.queue("ingest", settings(5));
    let sent: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
    send(&q, "org-a", sent.clone()).await;

    let got = q.receive_lanes(request(250, 250)).await.expect("receive");
    assert_eq!(bodies(&got.messages), sent[..250]);
    // As the worker does: the batch deleted, then the next receive takes the rest.
    let receipts: Vec<_> = got.messages.iter().map(|m| m.receipt.clone()).collect();
    q.delete_batch(&receipts).await.expect("delete");
    let rest = q.receive_lanes(request(250, 250)).await.expect("receive");
    assert_eq!(bodies(&rest.messages), sent[250..]);
}

#[tokio::test]
async fn tenants_are_served_round_robin_whatever_their_backlog() {
    let queues = EmbeddedQueues::in_memory().expect("queues");
    let q = queues.queue("dispatch", settings(5));
    // Org A: a backlog over three channels; org B: two messages sent after all of it.
    for ch in ["ch-1", "ch-2", "ch-3"] {
        send(
            &q,
            &format!("org-a/{ch}"),
            (0..200).map(|i| format!("a-{ch}-{i}")),
        )
        .await;
    }
    send(&q, "org-b/ch-9", ["b-0".to_owned(), "b-1".to_owned()]).await;

    let got = q.receive_lanes(request(4, 10)).await.expect("receive");
    let b: Vec<_> = bodies(&got.messages)
        .into_iter()
        .filter(|b| b.starts_with("b-"))
        .collect();
    assert_eq!(b, ["b-0", "b-1"], "{:?}", bodies(&got.messages));
    // A's lanes take turns within A.
    let a_lanes: Vec<_> = got
        .messages
        .iter()
        .filter_map(|m| m.group.as_deref())
        .filter(|g| g.starts_with("org-a/"))
        .collect();
    assert_eq!(a_lanes, ["org-a/ch-1", "org-a/ch-2"]);
}

#[tokio::test]
async fn the_next_receive_starts_with_the_tenant_after_the_last_one_served() {
    let queues = EmbeddedQueues::in_memory().expect("queues");
    let q = queues.queue("match", settings(5));
    for org in ["org-a", "org-b", "org-c"] {
        send(&q, org, (0..5).map(|i| format!("{org}-{i}"))).await;
    }
    let mut order = Vec::new();
    for _ in 0..6 {
        let got = q.receive_lanes(request(1, 100)).await.expect("receive");
        order.extend(
            got.messages
                .into_iter()
                .map(|m| m.group.unwrap_or_default()),
        );
    }
    assert_eq!(
        order,
        ["org-a", "org-b", "org-c", "org-a", "org-b", "org-c"]
    );
}

#[tokio::test]
async fn a_deferred_message_keeps_its_place_and_holds_its_lane() {
    let queues = EmbeddedQueues::in_memory().expect("queues");
    let q = queues.queue("dispatch", settings(2));
    send(&q, "org-a/slack", (0..3).map(|i| format!("s{i}"))).await;
    send(&q, "org-a/hook", ["h0".to_owned()]).await;

    let got = q.receive_lanes(request(10, 1)).await.expect("receive");
    assert_eq!(bodies(&got.messages), ["h0", "s0"], "one from each lane");
    let until = SystemTime::now() + Duration::from_millis(400);
    q.defer(&got.messages[1].receipt, until)
        .await
        .expect("defer");

    let held = q.receive_lanes(request(10, 1)).await.expect("receive");
    assert!(held.messages.is_empty(), "{:?}", bodies(&held.messages));
    let wake = held.wake_at.expect("a wake-up at the hold's end");
    assert!(wake >= until - Duration::from_millis(1) && wake <= until + Duration::from_millis(1));

    tokio::time::sleep(Duration::from_millis(450)).await;
    // Deferred many times over, it is never dead-lettered: a deferral is not a receive.
    for _ in 0..3 {
        let again = q.receive_lanes(request(10, 1)).await.expect("receive");
        assert_eq!(bodies(&again.messages), ["s0"]);
        assert_eq!(again.messages[0].receive_count, 1);
        q.defer(&again.messages[0].receipt, SystemTime::now())
            .await
            .expect("defer");
    }
}

#[tokio::test]
async fn tenant_backlogs_count_what_each_tenant_has_queued() {
    let queues = EmbeddedQueues::in_memory().expect("queues");
    let ingest = queues.queue("ingest", settings(1));
    let dispatch = queues.queue("dispatch", settings(1));
    send(&ingest, "org-a", (0..7).map(|i| i.to_string())).await;
    send(&dispatch, "org-a/ch-1", (0..5).map(|i| i.to_string())).await;
    send(&dispatch, "org-b/ch-2", (0..2).map(|i| i.to_string())).await;
    ingest
        .send_batch(vec![Outgoing::now("no lane")])
        .await
        .expect("send");
    let backlog = |org: &'static str| {
        let queues = queues.clone();
        async move {
            queues
                .tenant_backlog(org, &["ingest", "match", "dispatch"])
                .await
                .expect("backlog")
        }
    };
    assert_eq!(backlog("org-a").await, 12);
    assert_eq!(backlog("org-b").await, 2);
    assert_eq!(backlog("org-c").await, 0);

    let got = dispatch
        .receive_lanes(request(3, 10))
        .await
        .expect("receive");
    let a: Vec<_> = got
        .messages
        .iter()
        .filter(|m| m.group.as_deref().is_some_and(|g| g.starts_with("org-a/")))
        .map(|m| m.receipt.clone())
        .collect();
    dispatch.delete_batch(&a).await.expect("delete");
    assert_eq!(backlog("org-a").await, 12 - a.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_backlogs_add_up_when_sends_and_deletes_share_commits() {
    let queues = EmbeddedQueues::in_memory().expect("queues");
    let q = queues.queue("dispatch", settings(5));
    // Concurrent batches of two tenants meet in the writer's groups, whose counts are stored
    // once per group.
    // Each batch in a lane of its own: a receive scans a bounded stretch of each lane.
    let sends = (0..40).map(|i| {
        let lane = if i % 2 == 0 {
            format!("org-a/ch-{i}")
        } else {
            format!("org-b/ch-{i}")
        };
        let batch = (0..25)
            .map(|j| Outgoing::now(format!("{i}-{j}")).in_group(&lane))
            .collect();
        let q = q.clone();
        async move { q.send_batch(batch).await.expect("send") }
    });
    futures::future::join_all(sends).await;
    let backlog = |org: &'static str| {
        let queues = queues.clone();
        async move {
            queues
                .tenant_backlog(org, &["dispatch"])
                .await
                .expect("backlog")
        }
    };
    assert_eq!((backlog("org-a").await, backlog("org-b").await), (500, 500));

    let received = q
        .receive_lanes(request(1000, 1000))
        .await
        .expect("receive")
        .messages;
    assert_eq!(received.len(), 1000);
    let receipts: Vec<_> = received.iter().map(|m| m.receipt.clone()).collect();
    // A delete and sends of the same tenant, concurrently.
    let more = (0..10)
        .map(|i| Outgoing::now(format!("more-{i}")).in_group("org-a/ch-more"))
        .collect();
    let (deleted, sent) = tokio::join!(q.delete_batch(&receipts[..700]), q.send_batch(more));
    deleted.expect("delete");
    sent.expect("send");
    let a_deleted = received[..700]
        .iter()
        .filter(|m| m.group.as_deref().is_some_and(|g| g.starts_with("org-a/")))
        .count() as u64;
    assert_eq!(backlog("org-a").await, 500 - a_deleted + 10);
    assert_eq!(backlog("org-b").await, 500 - (700 - a_deleted));

    q.delete_batch(&receipts[700..]).await.expect("delete");
    assert_eq!((backlog("org-a").await, backlog("org-b").await), (10, 0));
}

#[tokio::test]
async fn messages_received_too_often_are_dead_lettered_with_their_lane_and_redriven_into_it() {
    let queues = EmbeddedQueues::in_memory().expect("queues");
    let q = queues.queue("dispatch", settings(1));
    send(&q, "org-a/ch-1", ["poison".to_owned()]).await;
    let got = q.receive_lanes(request(10, 1)).await.expect("receive");
    assert_eq!(bodies(&got.messages), ["poison"]);
    q.change_visibility(&got.messages[0].receipt, Duration::ZERO)
        .await
        .expect("release");

    let again = q.receive_lanes(request(10, 1)).await.expect("receive");
    assert!(again.messages.is_empty(), "moved to the DLQ instead");
    assert_eq!(
        queues
            .tenant_backlog("org-a", &["dispatch"])
            .await
            .expect("backlog"),
        0
    );
    assert_eq!(
        queues
            .tenant_backlog("org-a", &["dispatch-dlq"])
            .await
            .expect("backlog"),
        1
    );
    assert_eq!(
        queues
            .redrive("dispatch-dlq", "dispatch", 10)
            .await
            .expect("redrive"),
        1
    );
    let back = q.receive_lanes(request(10, 1)).await.expect("receive");
    assert_eq!(bodies(&back.messages), ["poison"]);
    assert_eq!(back.messages[0].group.as_deref(), Some("org-a/ch-1"));
}

#[tokio::test]
async fn lanes_and_holds_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue.redb");
    {
        let queues = EmbeddedQueues::open(&path).expect("open");
        let q = queues.queue("dispatch", settings(5));
        send(&q, "org-a/ch-1", (0..3).map(|i| format!("m{i}"))).await;
        let got = q.receive_lanes(request(1, 1)).await.expect("receive");
        q.defer(
            &got.messages[0].receipt,
            SystemTime::now() + Duration::from_millis(300),
        )
        .await
        .expect("defer");
    }
    let queues = EmbeddedQueues::open(&path).expect("reopen");
    let q = queues.queue("dispatch", settings(5));
    assert!(
        q.receive_lanes(request(10, 10))
            .await
            .expect("receive")
            .messages
            .is_empty(),
        "the hold outlives the process"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let got = q.receive_lanes(request(10, 10)).await.expect("receive");
    assert_eq!(bodies(&got.messages), ["m0", "m1", "m2"]);
    assert_eq!(
        queues
            .tenant_backlog("org-a", &["dispatch"])
            .await
            .expect("backlog"),
        3
    );
}

#[tokio::test]
async fn a_receive_serves_no_more_lanes_than_asked_and_the_rest_wait_their_turn() {
    let queues = EmbeddedQueues::in_memory().expect("queues");
    let q = queues.queue("dispatch", settings(5));
    for lane in ["org-a/ch-1", "org-a/ch-2", "org-b/ch-3"] {
        send(&q, lane, (0..4).map(|i| format!("{lane}:{i}"))).await;
    }

    let two = q
        .receive_lanes(LaneRequest {
            max_lanes: 2,
            ..request(100, 4)
        })
        .await
        .expect("receive");
    let mut lanes: Vec<_> = two
        .messages
        .iter()
        .filter_map(|m| m.group.clone())
        .collect();
    lanes.sort();
    lanes.dedup();
    assert_eq!(lanes.len(), 2, "two lanes served: {lanes:?}");
    assert_eq!(
        two.messages.len(),
        8,
        "every due message of those two lanes"
    );
    assert!(
        lanes.iter().any(|l| l.starts_with("org-a"))
            && lanes.iter().any(|l| l.starts_with("org-b")),
        "round robin between orgs comes first: {lanes:?}"
    );

    let rest = q.receive_lanes(request(100, 4)).await.expect("receive");
    assert_eq!(rest.messages.len(), 4, "the third lane's turn");
}

/// An ingest queue whose messages received come back 300 ms later unless deleted.
fn ingest_queue(queues: &EmbeddedQueues) -> EmbeddedQueue {
    queues.queue(
        "ingest",
        QueueSettings {
            visibility_timeout: Duration::from_millis(300),
            ..settings(5)
        },
    )
}

/// Events e0, e1 and e2 of org-a.
fn three_events() -> Vec<Outgoing> {
    (0..3)
        .map(|i| Outgoing::now(format!("e{i}")).in_group("org-a"))
        .collect()
}

#[tokio::test]
async fn messages_sent_received_are_in_flight_until_deleted_or_their_visibility_timeout() {
    let queues = EmbeddedQueues::in_memory().expect("queues");
    let q = ingest_queue(&queues);
    let got = q
        .send_received(three_events())
        .await
        .expect("send received");
    assert_eq!(bodies(&got), ["e0", "e1", "e2"]);
    assert!(got.iter().all(|m| m.receive_count == 1));
    assert!(got.iter().all(|m| m.group.as_deref() == Some("org-a")));
    let backlog = || async {
        queues
            .tenant_backlog("org-a", &["ingest"])
            .await
            .expect("backlog")
    };
    assert_eq!(backlog().await, 3);
    // In flight: no receiver sees them, and when they come back is known.
    let now = q.receive_lanes(request(10, 10)).await.expect("receive");
    assert!(now.messages.is_empty());
    assert!(now.wake_at.is_some_and(|at| at > SystemTime::now()));

    // Settled like received messages: by their receipts.
    q.delete_batch(&[got[0].receipt.clone(), got[2].receipt.clone()])
        .await
        .expect("delete");
    assert_eq!(backlog().await, 1);

    // The one left unsettled comes back, its first receive counted.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = q.receive_lanes(request(10, 10)).await.expect("receive");
    assert_eq!(bodies(&again.messages), ["e1"]);
    assert_eq!(again.messages[0].receive_count, 2);
    assert_eq!(again.messages[0].message_id, got[1].message_id);
    // Its old receipt no longer settles it.
    assert!(q.delete(&got[1].receipt).await.is_err());
}

/// In a session (one commit, as `herald serve`'s API ingests a request), messages sent received
/// are settled, re-timed and received again before anything is committed: the queue reads as it
/// does across commits.
#[tokio::test]
async fn in_one_session_messages_sent_received_read_as_stored_until_deleted() {
    let queues = EmbeddedQueues::in_memory().expect("queues");
    let q = ingest_queue(&queues);
    let got = q
        .db()
        .session(async {
            let got = q
                .send_received(three_events())
                .await
                .expect("send received");
            q.delete(&got[0].receipt).await.expect("delete");
            // Made visible at once, then received again, in the same commit.
            q.change_visibility(&got[2].receipt, Duration::ZERO)
                .await
                .expect("change visibility");
            let again = q.receive_lanes(request(10, 10)).await.expect("receive");
            assert_eq!(bodies(&again.messages), ["e2"]);
            assert_eq!(again.messages[0].receive_count, 2);
            assert!(
                q.delete(&got[2].receipt).await.is_err(),
                "the receipt of the first receive no longer settles it"
            );
            q.delete(&again.messages[0].receipt)
                .await
                .expect("delete e2");
            got
        })
        .await
        .expect("the session committed");
    assert_eq!(
        queues
            .tenant_backlog("org-a", &["ingest"])
            .await
            .expect("backlog"),
        1,
        "e1, in flight"
    );
    assert!(
        q.delete(&got[0].receipt).await.is_ok(),
        "deleting twice is fine"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let back = q.receive_lanes(request(10, 10)).await.expect("receive");
    assert_eq!(bodies(&back.messages), ["e1"]);
    assert_eq!(back.messages[0].receive_count, 2);
    assert_eq!(back.messages[0].message_id, got[1].message_id);
}

#[tokio::test]
async fn a_delayed_message_cannot_be_sent_received() {
    let queues = EmbeddedQueues::in_memory().expect("queues");
    let q = queues.queue("ingest", settings(5));
    let refused = q
        .send_received(vec![
            Outgoing::now("now").in_group("org-a"),
            Outgoing::now("later")
                .in_group("org-a")
                .delayed(Duration::from_secs(1)),
        ])
        .await
        .expect_err("a delay is refused");
    assert!(
        matches!(&refused, herald_shared::queue::QueueError::Rejected(m) if m.contains("delayed")),
        "{refused}"
    );
    assert_eq!(
        queues
            .tenant_backlog("org-a", &["ingest"])
            .await
            .expect("backlog"),
        0
    );
}

#[tokio::test]
async fn a_parked_receive_gets_what_the_next_send_stores_in_the_same_commit() {
    let queues = EmbeddedQueues::in_memory().expect("queues");
    let q = queues.queue("dispatch", settings(5));
    let mut parked = q.park(request(10, 10));
    // Another handle on the same queue sends.
    let sender = queues.queue("dispatch", settings(5));
    send(&sender, "org-a/ch-1", ["m0".to_owned(), "m1".to_owned()]).await;
    tokio::time::timeout(Duration::from_secs(5), parked.taken())
        .await
        .expect("the send ran the parked receive");
    let got = parked.cancel().await.expect("taken").expect("received");
    assert_eq!(bodies(&got.messages), ["m0", "m1"]);
    assert!(got.messages.iter().all(|m| m.receive_count == 1));
    // Received: in flight, settled by their receipts.
    let after = q.receive_lanes(request(10, 10)).await.expect("receive");
    assert!(after.messages.is_empty());
    let receipts: Vec<_> = got.messages.iter().map(|m| m.receipt.clone()).collect();
    q.delete_batch(&receipts).await.expect("delete");
    assert_eq!(
        queues.approximate_count("dispatch").await.expect("count"),
        0
    );
}

#[tokio::test]
async fn a_parked_receive_taken_back_before_a_send_received_nothing() {
    let queues = EmbeddedQueues::in_memory().expect("queues");
    let q = queues.queue("dispatch", settings(5));
    assert!(q.park(request(10, 10)).cancel().await.is_none());
    send(&q, "org-a/ch-1", ["m0".to_owned()]).await;
    let got = q.receive_lanes(request(10, 10)).await.expect("receive");
    assert_eq!(bodies(&got.messages), ["m0"]);

    // Parked again, then replaced by another park: the first is never run.
    let first = q.park(request(10, 10));
    let mut second = q.park(request(10, 10));
    send(&q, "org-a/ch-1", ["m1".to_owned()]).await;
    assert!(first.cancel().await.is_none());
    second.taken().await;
    let got = second.cancel().await.expect("taken").expect("received");
    assert_eq!(bodies(&got.messages), ["m1"]);
}

#[tokio::test]
async fn a_parked_receive_keeps_its_lane_allowances_and_a_delayed_send_leaves_it_parked() {
    let queues = EmbeddedQueues::in_memory().expect("queues");
    let q = queues.queue("dispatch", settings(5));
    // A lane with a run in flight may take nothing more.
    let mut parked = q.park(LaneRequest {
        allowance: HashMap::from([("org-a/ch-1".to_owned(), 0)]),
        ..request(10, 10)
    });
    q.send_batch(vec![
        Outgoing::now("later")
            .in_group("org-b/ch-2")
            .delayed(Duration::from_secs(60)),
    ])
    .await
    .expect("send");
    send(&q, "org-a/ch-1", ["busy".to_owned()]).await;
    send(&q, "org-b/ch-2", ["free".to_owned()]).await;
    parked.taken().await;
    // The delayed send left it parked; the first send with something due ran it, and it took
    // only what its allowances let it (the second send found nothing parked).
    let got = parked.cancel().await.expect("taken").expect("received");
    assert!(got.messages.is_empty(), "{:?}", bodies(&got.messages));
    let rest = q.receive_lanes(request(10, 10)).await.expect("receive");
    assert_eq!(bodies(&rest.messages), ["busy", "free"]);
}
